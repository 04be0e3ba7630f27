//! The words of every mail, in German (default) and English, as plain text and HTML.
//!
//! Links are absolute URLs built by the caller; they carry secret tokens, so the mails must not
//! load anything from elsewhere (no images, no tracking) and the HTML is self-contained.

use restdose_domain::Lang;

/// What one mail says. `unsubscribe_url` becomes the RFC 8058 `List-Unsubscribe` header.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe_url: Option<String>,
    /// Files attached after the text and HTML parts (e.g. a calendar entry).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub filename: String,
    /// e.g. `text/calendar; charset=utf-8; method=PUBLISH`
    pub content_type: String,
    pub body: String,
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
        /// What is being confirmed: the postcode and radius given at sign-up.
        postcode: &'a str,
        radius_km: u16,
    },
    /// Someone signed up again with an address that is already confirmed: we say so to the
    /// address only, never to whoever filled the form.
    AlreadyRegistered {
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
}

/// Mails to practice and admin accounts.
pub enum AccountTemplate<'a> {
    /// Verify the login address after the practice signed up.
    VerifyEmail {
        verify_url: &'a str,
        valid_hours: i64,
    },
    /// A practice signed up again with an address that has an account.
    AlreadyRegistered {
        login_url: &'a str,
        reset_url: &'a str,
    },
    /// An admin decided.
    Approved {
        practice: &'a str,
        login_url: &'a str,
    },
    Rejected {
        practice: &'a str,
    },
    Suspended {
        practice: &'a str,
        /// Whether it had open offers (they end with the suspension).
        had_open_offers: bool,
    },
    /// An admin ended one of the practice's offers; `told` people who had booked were mailed.
    OfferClosedByAdmin {
        practice: &'a str,
        vaccine: &'a str,
        window: &'a str,
        told: usize,
    },
    PasswordReset {
        reset_url: &'a str,
        valid_minutes: i64,
    },
}

/// Mails about offers and bookings, to people on the list.
pub enum BookingTemplate<'a> {
    /// An offer near the person: the button leads to a page where a POST claims or declines.
    Invitation {
        practice: &'a str,
        address: &'a str,
        distance_km: f32,
        window: &'a str,
        vaccine: &'a str,
        note: &'a str,
        /// Local time until which the invitation holds.
        answer_by: &'a str,
        offer_url: &'a str,
        last_call: bool,
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
    /// The person claimed a dose.
    Confirmed {
        code: &'a str,
        practice: &'a str,
        address: &'a str,
        window: &'a str,
        vaccine: &'a str,
        note: &'a str,
        booking_url: &'a str,
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
    /// Paused for long: the data goes in `days` days unless the person resumes.
    InactivityWarning {
        days: i64,
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
    /// Three invitations in a row went unanswered: offers stop until the person resumes.
    PausedAfterSilence {
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
    /// The practice called the offer off.
    CancelledByPractice {
        practice: &'a str,
        address: &'a str,
        window: &'a str,
        manage_url: &'a str,
        unsubscribe_url: &'a str,
    },
}

pub fn render_account(lang: Lang, template: &AccountTemplate<'_>) -> MailContent {
    let de = lang == Lang::De;
    match template {
        AccountTemplate::VerifyEmail {
            verify_url,
            valid_hours,
        } => {
            let body = if de {
                format!(
                    "Bitte bestätigen Sie die Anmelde-Adresse Ihrer Praxis bei restdose. Der Link gilt {valid_hours} Stunden. Danach prüfen wir Ihre Praxis und schalten sie frei."
                )
            } else {
                format!(
                    "Please confirm your practice's login address for restdose. The link works for {valid_hours} hours. We then check your practice and approve it."
                )
            };
            let (subject, button) = if de {
                (
                    "Bitte bestätigen Sie Ihre E-Mail-Adresse",
                    "E-Mail-Adresse bestätigen",
                )
            } else {
                (
                    "Please confirm your e-mail address",
                    "Confirm e-mail address",
                )
            };
            compose(
                lang,
                subject,
                &[&body],
                Some((button, verify_url)),
                &[],
                None,
            )
        }
        AccountTemplate::AlreadyRegistered {
            login_url,
            reset_url,
        } => {
            let (subject, body, button, after) = if de {
                (
                    "Ihre Praxis hat schon ein Konto",
                    "Mit dieser Adresse wurde erneut ein Praxiskonto beantragt. Es gibt bereits eines; melden Sie sich damit an.",
                    "Anmelden",
                    format!("Passwort vergessen? {reset_url}"),
                )
            } else {
                (
                    "Your practice already has an account",
                    "Someone asked for a practice account with this address again. One exists already; please log in with it.",
                    "Log in",
                    format!("Forgot your password? {reset_url}"),
                )
            };
            compose(
                lang,
                subject,
                &[body],
                Some((button, login_url)),
                &[&after],
                None,
            )
        }
        AccountTemplate::Approved {
            practice,
            login_url,
        } => {
            let (subject, body, button) = if de {
                (
                    "Ihre Praxis ist freigeschaltet",
                    format!(
                        "{practice} ist jetzt bei restdose freigeschaltet. Sie können übrige Impfdosen anbieten."
                    ),
                    "Anmelden",
                )
            } else {
                (
                    "Your practice is approved",
                    format!("{practice} is now approved on restdose. You can offer spare doses."),
                    "Log in",
                )
            };
            compose(
                lang,
                subject,
                &[&body],
                Some((button, login_url)),
                &[],
                None,
            )
        }
        AccountTemplate::Rejected { practice } => {
            let (subject, body) = if de {
                (
                    "Ihre Praxis wurde nicht freigeschaltet",
                    format!(
                        "Wir konnten {practice} leider nicht freischalten. Bei Fragen antworten Sie bitte auf diese Mail."
                    ),
                )
            } else {
                (
                    "Your practice was not approved",
                    format!(
                        "We could not approve {practice}. If you have questions, please reply to this mail."
                    ),
                )
            };
            compose(lang, subject, &[&body], None, &[], None)
        }
        AccountTemplate::Suspended {
            practice,
            had_open_offers,
        } => {
            let (subject, body) = if de {
                (
                    "Ihr Praxiskonto ist gesperrt",
                    format!(
                        "Das Konto von {practice} wurde gesperrt; Sie können vorerst keine Dosen anbieten.{}",
                        if *had_open_offers {
                            " Ihre offenen Angebote sind beendet; wer einen Termin gebucht hatte, ist per E-Mail benachrichtigt."
                        } else {
                            ""
                        }
                    ),
                )
            } else {
                (
                    "Your practice account is suspended",
                    format!(
                        "The account of {practice} is suspended; you cannot offer doses for now.{}",
                        if *had_open_offers {
                            " Your open offers have ended; everyone who had booked an appointment has been told by e-mail."
                        } else {
                            ""
                        }
                    ),
                )
            };
            compose(lang, subject, &[&body], None, &[], None)
        }
        AccountTemplate::OfferClosedByAdmin {
            practice,
            vaccine,
            window,
            told,
        } => {
            let (subject, body) = if de {
                (
                    "Ihr Angebot wurde beendet",
                    format!(
                        "Die Betreiber von restdose haben das Angebot von {practice} beendet: {vaccine}, {window}. Es nimmt keine Buchungen mehr an. {}Bei Fragen antworten Sie bitte auf diese Mail.",
                        match told {
                            0 => String::new(),
                            1 => "Die eine Person, die gebucht hatte, ist per E-Mail benachrichtigt. ".to_owned(),
                            n => format!("Die {n} Personen, die gebucht hatten, sind per E-Mail benachrichtigt. "),
                        }
                    ),
                )
            } else {
                (
                    "Your offer was ended",
                    format!(
                        "The operators of restdose ended the offer of {practice}: {vaccine}, {window}. It takes no more bookings. {}If you have questions, please reply to this mail.",
                        match told {
                            0 => String::new(),
                            1 =>
                                "The one person who had booked has been told by e-mail. ".to_owned(),
                            n =>
                                format!("The {n} people who had booked have been told by e-mail. "),
                        }
                    ),
                )
            };
            compose(lang, subject, &[&body], None, &[], None)
        }
        AccountTemplate::PasswordReset {
            reset_url,
            valid_minutes,
        } => {
            let (subject, body, button, after) = if de {
                (
                    "Neues Passwort für restdose",
                    format!(
                        "Sie (oder jemand) haben ein neues Passwort angefordert. Der Link gilt {valid_minutes} Minuten und nur einmal."
                    ),
                    "Neues Passwort setzen",
                    "Waren Sie das nicht? Dann ignorieren Sie diese Mail; Ihr Passwort bleibt unverändert.",
                )
            } else {
                (
                    "New password for restdose",
                    format!(
                        "You (or someone) asked for a new password. The link works for {valid_minutes} minutes and only once."
                    ),
                    "Set a new password",
                    "Not you? Ignore this mail; your password stays as it is.",
                )
            };
            compose(
                lang,
                subject,
                &[&body],
                Some((button, reset_url)),
                &[after],
                None,
            )
        }
    }
}

pub fn render_booking(lang: Lang, template: &BookingTemplate<'_>) -> MailContent {
    let de = lang == Lang::De;
    match template {
        BookingTemplate::Invitation {
            practice,
            address,
            distance_km,
            window,
            vaccine,
            note,
            answer_by,
            offer_url,
            last_call,
            manage_url,
            unsubscribe_url,
        } => {
            let distance = format!("{distance_km:.0}");
            let (subject, body, details, button, after) = if de {
                (
                    if *last_call {
                        format!("Letzter Aufruf: Impfdosis heute bei {practice}")
                    } else {
                        format!("Impfdosis frei bei {practice}")
                    },
                    format!(
                        "{practice} hat eine Impfdosis ({vaccine}) übrig, etwa {distance} km von Ihnen entfernt."
                    ),
                    format!("Termin: {window}\nOrt: {address}"),
                    "Termin ansehen und zusagen",
                    format!(
                        "Bitte sagen Sie bis {answer_by} zu oder ab. Wer zuerst zusagt, bekommt die Dosis; wenn Sie nicht können, behalten Sie Ihren Platz auf der Warteliste."
                    ),
                )
            } else {
                (
                    if *last_call {
                        format!("Last call: a vaccine dose today at {practice}")
                    } else {
                        format!("A vaccine dose is free at {practice}")
                    },
                    format!(
                        "{practice} has a spare dose ({vaccine}), about {distance} km from you."
                    ),
                    format!("Appointment: {window}\nPlace: {address}"),
                    "See the appointment and accept",
                    format!(
                        "Please accept or decline by {answer_by}. Whoever accepts first gets the dose; if you cannot come, you keep your place on the list."
                    ),
                )
            };
            compose_with_note(
                lang,
                &subject,
                &[&body, &details],
                Some((button, offer_url)),
                practice_note(lang, note),
                &[&after],
                Some((manage_url, unsubscribe_url)),
            )
        }
        BookingTemplate::Confirmed {
            code,
            practice,
            address,
            window,
            vaccine,
            note,
            booking_url,
            manage_url,
            unsubscribe_url,
        } => {
            let (subject, body, details, button, after) = if de {
                (
                    format!("Ihr Impftermin: {window}"),
                    format!(
                        "Sie haben eine Dosis {vaccine} bei {practice}. Ihr Buchungscode: {code}"
                    ),
                    format!(
                        "Termin: {window}\nOrt: {address}\nBitte nennen Sie den Buchungscode in der Praxis. Den Termin für Ihren Kalender finden Sie im Anhang."
                    ),
                    "Termin absagen",
                    "Können Sie doch nicht? Sagen Sie bitte ab, dann geht die Dosis sofort an die nächste Person.",
                )
            } else {
                (
                    format!("Your vaccination appointment: {window}"),
                    format!(
                        "You have a dose of {vaccine} at {practice}. Your booking code: {code}"
                    ),
                    format!(
                        "Appointment: {window}\nPlace: {address}\nPlease give the booking code at the practice. The calendar entry is attached."
                    ),
                    "Cancel the appointment",
                    "Cannot come after all? Please cancel, so the dose goes to the next person at once.",
                )
            };
            compose_with_note(
                lang,
                &subject,
                &[&body, &details],
                Some((button, booking_url)),
                practice_note(lang, note),
                &[after],
                Some((manage_url, unsubscribe_url)),
            )
        }
        BookingTemplate::InactivityWarning {
            days,
            manage_url,
            unsubscribe_url,
        } => {
            let (subject, body, button) = if de {
                (
                    "Ihre Anmeldung ist seit Langem pausiert",
                    format!(
                        "Sie haben Ihre Angebote vor langer Zeit pausiert. Wenn Sie nicht fortsetzen, löschen wir Ihre Daten in {days} Tagen."
                    ),
                    "Fortsetzen oder Daten ansehen",
                )
            } else {
                (
                    "Your sign-up has been paused for a long time",
                    format!(
                        "You paused your offers a long time ago. Unless you resume, we delete your data in {days} days."
                    ),
                    "Resume or see your data",
                )
            };
            compose(
                lang,
                subject,
                &[&body],
                Some((button, manage_url)),
                &[],
                Some((manage_url, unsubscribe_url)),
            )
        }
        BookingTemplate::PausedAfterSilence {
            manage_url,
            unsubscribe_url,
        } => {
            let (subject, body, button) = if de {
                (
                    "Wir haben Ihre Angebote pausiert",
                    "Sie haben auf drei Angebote nacheinander nicht geantwortet. Damit keine Dosis verfällt, schicken wir Ihnen vorerst keine Angebote mehr. Ihr Platz auf der Warteliste bleibt erhalten.",
                    "Wieder Angebote bekommen",
                )
            } else {
                (
                    "We have paused your offers",
                    "You did not answer three offers in a row. So that no dose is wasted, we send you no more offers for now. You keep your place on the list.",
                    "Get offers again",
                )
            };
            compose(
                lang,
                subject,
                &[body],
                Some((button, manage_url)),
                &[],
                Some((manage_url, unsubscribe_url)),
            )
        }
        BookingTemplate::CancelledByPractice {
            practice,
            address,
            window,
            manage_url,
            unsubscribe_url,
        } => {
            let (subject, body, after) = if lang == Lang::De {
                (
                    "Abgesagt: Ihr Impftermin",
                    format!(
                        "{practice} ({address}) hat die Impfdosen für {window} leider abgesagt. Ihr Termin entfällt."
                    ),
                    "Sie bleiben auf der Warteliste und behalten Ihren Platz.",
                )
            } else {
                (
                    "Cancelled: your vaccination appointment",
                    format!(
                        "{practice} ({address}) has called off the doses for {window}. Your appointment is cancelled."
                    ),
                    "You stay on the waiting list and keep your place.",
                )
            };
            compose(
                lang,
                subject,
                &[&body],
                None,
                &[after],
                Some((manage_url, unsubscribe_url)),
            )
        }
    }
}

pub fn render(lang: Lang, template: &Template<'_>) -> MailContent {
    match template {
        Template::Confirmation {
            confirm_url,
            manage_url,
            unsubscribe_url,
            valid_hours,
            postcode,
            radius_km,
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
            let given = match lang {
                Lang::De => format!("Postleitzahl: {postcode}\nUmkreis: {radius_km} km"),
                Lang::En => format!("Postcode: {postcode}\nRadius: {radius_km} km"),
            };
            compose(
                lang,
                subject,
                &[intro, &given],
                Some((button, confirm_url)),
                &[&outro],
                Some((manage_url, unsubscribe_url)),
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
                Some((manage_url, unsubscribe_url)),
            )
        }
    }
}

/// A practice's note with its label, or None when there is none.
fn practice_note(lang: Lang, note: &str) -> Option<(&'static str, &str)> {
    let note = note.trim();
    if note.is_empty() {
        return None;
    }
    let label = match lang {
        Lang::De => "Hinweis der Praxis:",
        Lang::En => "Note from the practice:",
    };
    Some((label, note))
}

fn compose(
    lang: Lang,
    subject: &str,
    paragraphs: &[&str],
    button: Option<(&str, &str)>,
    after: &[&str],
    registrant_links: Option<(&str, &str)>,
) -> MailContent {
    compose_with_note(
        lang,
        subject,
        paragraphs,
        button,
        None,
        after,
        registrant_links,
    )
}

/// `compose` with a practice's note (label, text) after the button: text the practice wrote
/// comes below our own link, never above it, and is set apart — quoted (`> `) in the text
/// part, a blockquote in the HTML part — with nothing in it made a link (see `unlinked`).
fn compose_with_note(
    lang: Lang,
    subject: &str,
    paragraphs: &[&str],
    button: Option<(&str, &str)>,
    note: Option<(&str, &str)>,
    after: &[&str],
    registrant_links: Option<(&str, &str)>,
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
    if let Some((label, note)) = note {
        text.push_str(label);
        text.push('\n');
        for line in note.lines().map(str::trim_end) {
            text.push('>');
            if !line.is_empty() {
                text.push(' ');
                text.push_str(line);
            }
            text.push('\n');
        }
        text.push('\n');
        let lines: Vec<String> = note.lines().map(|l| unlinked(l.trim_end())).collect();
        html.push_str(&format!(
            "<p>{}</p><blockquote style=\"margin:0 0 1em 0;padding:0 0 0 12px;border-left:4px solid #999;color:#333\">\
             <p>{}</p></blockquote>",
            escape(label),
            lines.join("<br>")
        ));
    }
    for p in after {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
    }
    // Mails to people on the list carry their self-service link and the promise; mails to
    // practices (accounts) carry neither.
    let unsubscribe_url = registrant_links.map(|(manage_url, unsubscribe_url)| {
        text.push_str(&format!("-- \n{manage_label}:\n{manage_url}\n\n{footer}\n"));
        html.push_str(&format!(
            "<hr><p><a href=\"{}\">{}</a></p><p style=\"font-size:14px;color:#444\">{}</p>",
            escape(manage_url),
            escape(manage_label),
            escape(footer)
        ));
        unsubscribe_url.to_owned()
    });
    html.push_str("</body></html>");
    MailContent {
        subject: subject.to_owned(),
        text,
        html,
        unsubscribe_url,
        attachments: Vec::new(),
    }
}

/// Escapes text a practice wrote so that mail programs do not turn what looks like an address
/// in it into a link: every `.`, `:`, `/` and `@` gets a zero-width word joiner (U+2060)
/// after it, which breaks the patterns that auto-linking looks for and shows nothing. The
/// text part stays as written (it is quoted, and its reader sees the link text in full).
fn unlinked(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        match c {
            '.' | ':' | '/' | '@' => {
                out.push(c);
                out.push_str("&#8288;");
            }
            _ => out.push_str(&escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out
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
#[allow(clippy::unwrap_used)]
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
                    postcode: "10115",
                    radius_km: 25,
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
    fn account_mails_have_no_registrant_footer_and_fill_their_numbers() {
        let mail = render_account(
            Lang::En,
            &AccountTemplate::PasswordReset {
                reset_url: "https://r.example/portal/reset/x",
                valid_minutes: 60,
            },
        );
        assert!(
            mail.text.contains("60 minutes")
                && mail.text.contains("https://r.example/portal/reset/x")
        );
        assert!(mail.unsubscribe_url.is_none());
        assert!(!mail.text.contains("24"));
        let mail = render_account(
            Lang::De,
            &AccountTemplate::Approved {
                practice: "Praxis <Dr. B>",
                login_url: "u",
            },
        );
        assert!(mail.html.contains("Praxis &lt;Dr. B&gt;"));
    }

    fn invitation(lang: Lang, note: &str) -> MailContent {
        render_booking(
            lang,
            &BookingTemplate::Invitation {
                practice: "Praxis Dr. A",
                address: "Hauptstr. 1, 10115 Berlin",
                distance_km: 3.0,
                window: "04.05.2026 16:00–18:00",
                vaccine: "Comirnaty",
                note,
                answer_by: "16:15",
                offer_url: "https://r.example/offer/real",
                last_call: false,
                manage_url: "https://r.example/manage/m",
                unsubscribe_url: "https://r.example/unsubscribe/m",
            },
        )
    }

    const FAKE_NOTE: &str =
        "Neuer Termin-Link:\nhttps://evil.example/offer/claim\n\nBitte <b>pünktlich</b>.";

    #[test]
    fn practice_note_is_quoted_below_the_real_link_in_the_text_part() {
        for (lang, label) in [
            (Lang::De, "Hinweis der Praxis:"),
            (Lang::En, "Note from the practice:"),
        ] {
            for mail in [
                invitation(lang, FAKE_NOTE),
                render_booking(
                    lang,
                    &BookingTemplate::Confirmed {
                        code: "ABC123",
                        practice: "Praxis Dr. A",
                        address: "Hauptstr. 1",
                        window: "heute",
                        vaccine: "Comirnaty",
                        note: FAKE_NOTE,
                        booking_url: "https://r.example/offer/real",
                        manage_url: "https://r.example/manage/m",
                        unsubscribe_url: "https://r.example/unsubscribe/m",
                    },
                ),
            ] {
                let text = &mail.text;
                let real = text.find("https://r.example/offer/real").unwrap();
                let fake = text.find("evil.example").unwrap();
                let label_at = text.find(label).unwrap();
                assert!(real < label_at && label_at < fake, "{text}");
                assert!(text.contains(&format!(
                    "{label}\n> Neuer Termin-Link:\n> https://evil.example/offer/claim\n>\n> Bitte <b>pünktlich</b>.\n"
                )));
                // Every line of the note is quoted; none stands alone like our own link.
                for line in text
                    .lines()
                    .filter(|l| l.contains("evil") || l.contains("pünktlich"))
                {
                    assert!(line.starts_with("> "), "unquoted note line: {line:?}");
                }
            }
        }
    }

    #[test]
    fn practice_note_makes_no_link_in_the_html_part() {
        let html = invitation(Lang::De, FAKE_NOTE).html;
        assert!(!html.contains("https://evil.example"), "{html}");
        assert!(!html.contains("evil.example/"), "{html}");
        assert!(!html.contains("href=\"https://evil"));
        assert_eq!(
            html.matches("<a ").count(),
            2,
            "button and self-service link only"
        );
        let real = html.find("https://r.example/offer/real").unwrap();
        let quote = html.find("<blockquote").unwrap();
        assert!(real < quote && quote < html.find("evil").unwrap());
        assert!(html.contains("&lt;b&gt;pünktlich&lt;/"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn mails_without_a_note_have_no_note_block() {
        let mail = invitation(Lang::De, "  ");
        assert!(!mail.text.contains("Hinweis der Praxis"));
        assert!(!mail.html.contains("<blockquote"));
    }

    #[test]
    fn confirmation_shows_the_postcode_and_radius_being_confirmed() {
        for (lang, words) in [
            (Lang::De, ["Postleitzahl: 10115", "Umkreis: 25 km"]),
            (Lang::En, ["Postcode: 10115", "Radius: 25 km"]),
        ] {
            let mail = render(
                lang,
                &Template::Confirmation {
                    confirm_url: "https://r.example/confirm/abc",
                    manage_url: "https://r.example/manage/def",
                    unsubscribe_url: "https://r.example/unsubscribe/def",
                    valid_hours: 36,
                    postcode: "10115",
                    radius_km: 25,
                },
            );
            for word in words {
                assert!(
                    mail.text.contains(word) && mail.html.contains(word),
                    "{word}"
                );
            }
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
