//! The words of every mail, in German (default) and English, as plain text and HTML.
//!
//! Links are absolute URLs built by the caller; they carry secret tokens, so the mails must not
//! load anything from elsewhere (no images, no tracking) and the HTML is self-contained.

use restdose_domain::Lang;

/// What one mail says. `unsubscribe_url` becomes the RFC 8058 `List-Unsubscribe` header.
#[derive(Clone, PartialEq, Eq)]
pub struct MailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe_url: Option<String>,
}

impl std::fmt::Debug for MailContent {
    // Bodies carry secret links: show the subject only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailContent")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

pub enum Template<'a> {
    /// Double opt-in after a sign-up.
    Confirmation {
        confirm_url: &'a str,
        manage_url: &'a str,
        unsubscribe_url: &'a str,
        /// How long the link works; unconfirmed sign-ups are deleted after that.
        valid_hours: i64,
    },
    /// Someone signed up again with an address that is already confirmed: we say so to the
    /// address only, never to whoever filled the form.
    AlreadyRegistered {
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
}

pub fn render(lang: Lang, template: &Template<'_>) -> MailContent {
    match template {
        Template::Confirmation {
            confirm_url,
            manage_url,
            unsubscribe_url,
            valid_hours,
        } => {
            let (subject, intro, button, outro) = match lang {
                Lang::De => (
                    "Bitte bestätigen Sie Ihre Anmeldung bei restdose",
                    "Sie haben sich (oder jemand hat Sie) für die Restimpfdosen-Warteliste angemeldet. \
                     Bitte bestätigen Sie die Anmeldung, damit wir Ihnen Angebote aus Praxen in Ihrer Nähe schicken können.",
                    "Anmeldung bestätigen",
                    "Waren Sie das nicht? Dann ignorieren Sie diese Mail: unbestätigte Anmeldungen löschen wir nach {hours} Stunden.",
                ),
                Lang::En => (
                    "Please confirm your sign-up with restdose",
                    "You (or someone) signed you up for the spare vaccine dose waiting list. \
                     Please confirm so that we can send you offers from practices near you.",
                    "Confirm sign-up",
                    "Not you? Ignore this mail: unconfirmed sign-ups are deleted after {hours} hours.",
                ),
            };
            let outro = outro.replace("{hours}", &valid_hours.to_string());
            compose(
                lang,
                subject,
                &[intro],
                Some((button, confirm_url)),
                &[&outro],
                manage_url,
                unsubscribe_url,
            )
        }
        Template::AlreadyRegistered {
            manage_url,
            unsubscribe_url,
        } => {
            let (subject, intro) = match lang {
                Lang::De => (
                    "Sie stehen bereits auf der restdose-Warteliste",
                    "Diese Adresse wurde erneut angemeldet. Sie stehen schon auf der Warteliste, Ihr Platz bleibt erhalten. \
                     Über den Link unten können Sie Postleitzahl und Umkreis ändern, pausieren oder sich abmelden.",
                ),
                Lang::En => (
                    "You are already on the restdose waiting list",
                    "This address was signed up again. You are already on the waiting list and keep your place. \
                     Use the link below to change postcode and radius, pause, or leave.",
                ),
            };
            compose(
                lang,
                subject,
                &[intro],
                None,
                &[],
                manage_url,
                unsubscribe_url,
            )
        }
    }
}

fn compose(
    lang: Lang,
    subject: &str,
    paragraphs: &[&str],
    button: Option<(&str, &str)>,
    after: &[&str],
    manage_url: &str,
    unsubscribe_url: &str,
) -> MailContent {
    let (manage_label, footer) = match lang {
        Lang::De => (
            "Ihre Daten ansehen, ändern, pausieren oder löschen",
            "restdose speichert nur Ihre E-Mail-Adresse (verschlüsselt) und Ihre Postleitzahl und löscht alles 24 Stunden nach Ihrem Termin.",
        ),
        Lang::En => (
            "See, change, pause or delete your data",
            "restdose stores only your e-mail address (encrypted) and your postcode, and deletes everything 24 hours after your appointment.",
        ),
    };
    let greeting = match lang {
        Lang::De => "Guten Tag,",
        Lang::En => "Hello,",
    };

    let mut text = format!("{greeting}\n\n");
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;font-size:18px;line-height:1.5;color:#111;max-width:40em\">\
         <p>{}</p>",
        lang.code(),
        escape(subject),
        escape(greeting)
    );
    for p in paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
    }
    if let Some((label, url)) = button {
        text.push_str(&format!("{label}:\n{url}\n\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\" style=\"display:inline-block;padding:12px 20px;background:#0b5394;color:#fff;\
             text-decoration:none;border-radius:6px;font-weight:bold\">{}</a></p>",
            escape(url),
            escape(label)
        ));
    }
    for p in after {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
    }
    text.push_str(&format!("-- \n{manage_label}:\n{manage_url}\n\n{footer}\n"));
    html.push_str(&format!(
        "<hr><p><a href=\"{}\">{}</a></p><p style=\"font-size:14px;color:#444\">{}</p></body></html>",
        escape(manage_url),
        escape(manage_label),
        escape(footer)
    ));
    MailContent {
        subject: subject.to_owned(),
        text,
        html,
        unsubscribe_url: Some(unsubscribe_url.to_owned()),
    }
}

/// Minimal HTML escaping for text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_carries_both_links_in_both_parts_and_languages() {
        for lang in [Lang::De, Lang::En] {
            let mail = render(
                lang,
                &Template::Confirmation {
                    confirm_url: "https://r.example/confirm/abc",
                    manage_url: "https://r.example/manage/def",
                    unsubscribe_url: "https://r.example/unsubscribe/def",
                    valid_hours: 36,
                },
            );
            for body in [&mail.text, &mail.html] {
                assert!(body.contains("https://r.example/confirm/abc"));
                assert!(body.contains("https://r.example/manage/def"));
            }
            assert_eq!(
                mail.unsubscribe_url.as_deref(),
                Some("https://r.example/unsubscribe/def")
            );
            assert!(mail.text.contains("36") && !mail.text.contains("{hours}"));
        }
        let de = render(
            Lang::De,
            &Template::AlreadyRegistered {
                manage_url: "u",
                unsubscribe_url: "v",
            },
        );
        assert!(de.subject.contains("bereits"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
