//! Every word a page shows, in German (default) and English. Templates call `t.get("key")`;
//! a test checks that every key used in a template exists here.

use restdose_domain::Lang;

/// Every table of (key, German, English); each part of the site keeps its own.
static TABLES: &[&[(&str, &str, &str)]] = &[
    MESSAGES,
    crate::i18n_portal::MESSAGES,
    crate::i18n_portal_offers::MESSAGES,
    crate::i18n_admin::MESSAGES,
    crate::i18n_matching::MESSAGES,
    crate::i18n_stats::MESSAGES,
];

/// (key, German, English): the registrant pages.
static MESSAGES: &[(&str, &str, &str)] = &[
    ("site.name", "restdose", "restdose"),
    (
        "site.tagline",
        "Restimpfdosen für Menschen in der Nähe",
        "Spare vaccine doses for people nearby",
    ),
    ("site.switch", "English", "Deutsch"),
    (
        "site.footer",
        "Wir speichern nur Ihre E-Mail-Adresse (verschlüsselt) und Ihre Postleitzahl. Alles wird 24 Stunden nach Ihrem Termin gelöscht. Quelloffen.",
        "We store only your e-mail address (encrypted) and your postcode. Everything is deleted 24 hours after your appointment. Open source.",
    ),
    ("site.skip", "Zum Inhalt springen", "Skip to content"),
    (
        "signup.title",
        "Auf die Warteliste für Restimpfdosen",
        "Join the waiting list for spare vaccine doses",
    ),
    (
        "signup.intro",
        "Wenn eine Praxis in Ihrer Nähe Impfdosen übrig hat, bekommen Sie eine E-Mail. Wer zuerst zusagt, bekommt den Termin.",
        "When a practice near you has doses left over, you get an e-mail. Whoever accepts first gets the appointment.",
    ),
    ("signup.email", "E-Mail-Adresse", "E-mail address"),
    ("signup.postcode", "Postleitzahl", "Postcode"),
    (
        "signup.radius",
        "Umkreis in Kilometern (1–50)",
        "Radius in kilometres (1–50)",
    ),
    ("signup.submit", "Anmelden", "Sign up"),
    (
        "signup.privacy",
        "Sie bekommen gleich eine E-Mail mit einem Bestätigungslink. Erst nach der Bestätigung stehen Sie auf der Liste.",
        "You will get an e-mail with a confirmation link. You are on the list only after confirming.",
    ),
    (
        "signup.errors",
        "Bitte prüfen Sie die markierten Felder.",
        "Please check the marked fields.",
    ),
    (
        "done.title",
        "Bitte schauen Sie in Ihr Postfach",
        "Please check your inbox",
    ),
    (
        "done.body",
        "Wir haben Ihnen eine E-Mail geschickt. Klicken Sie auf den Link darin, um Ihre Anmeldung zu bestätigen. Keine Mail bekommen? Schauen Sie im Spam-Ordner nach; nach {minutes} Minuten können Sie sich erneut anmelden.",
        "We have sent you an e-mail. Click the link in it to confirm your sign-up. No mail? Look in your spam folder; after {minutes} minutes you can sign up again.",
    ),
    (
        "confirm.title",
        "Anmeldung bestätigen",
        "Confirm your sign-up",
    ),
    (
        "confirm.body",
        "Ein Klick noch: Bestätigen Sie, dass Sie Angebote für Restimpfdosen per E-Mail bekommen möchten.",
        "One more click: confirm that you want offers of spare doses by e-mail.",
    ),
    (
        "confirm.settings",
        "Sie bestätigen diese Angaben; ändern können Sie sie danach über Ihren persönlichen Link.",
        "You confirm these details; you can change them afterwards through your personal link.",
    ),
    ("confirm.radius", "Umkreis", "Radius"),
    (
        "confirm.submit",
        "Ja, ich möchte auf die Warteliste",
        "Yes, put me on the waiting list",
    ),
    (
        "confirmed.title",
        "Sie stehen auf der Warteliste",
        "You are on the waiting list",
    ),
    (
        "confirmed.body",
        "Danke! Sobald eine Praxis in Ihrer Nähe Dosen übrig hat, schreiben wir Ihnen.",
        "Thank you! As soon as a practice near you has doses left over, we will write to you.",
    ),
    (
        "confirmed.manage",
        "Angaben ansehen oder ändern",
        "See or change your details",
    ),
    ("manage.title", "Ihre Angaben", "Your details"),
    (
        "manage.stored",
        "Das ist alles, was wir über Sie speichern:",
        "This is everything we store about you:",
    ),
    ("manage.status", "Status", "Status"),
    (
        "manage.signed_up",
        "Angemeldet am (Ihr Platz in der Warteschlange)",
        "Signed up on (your place in line)",
    ),
    ("manage.language", "Sprache", "Language"),
    (
        "status.pending",
        "Noch nicht bestätigt: bitte klicken Sie auf den Link in der Bestätigungsmail.",
        "Not confirmed yet: please click the link in the confirmation mail.",
    ),
    ("status.active", "Auf der Warteliste", "On the waiting list"),
    (
        "status.paused",
        "Pausiert: Sie bekommen keine Angebote, Ihr Platz bleibt erhalten.",
        "Paused: you get no offers and keep your place.",
    ),
    (
        "manage.change",
        "Postleitzahl und Umkreis ändern",
        "Change postcode and radius",
    ),
    ("manage.save", "Speichern", "Save"),
    ("manage.saved", "Gespeichert.", "Saved."),
    (
        "manage.paused",
        "Pausiert. Sie behalten Ihren Platz.",
        "Paused. You keep your place.",
    ),
    (
        "manage.resumed",
        "Willkommen zurück: Sie bekommen wieder Angebote.",
        "Welcome back: you will get offers again.",
    ),
    ("manage.pause", "Pausieren", "Pause"),
    (
        "manage.pause_help",
        "Keine Angebote mehr, bis Sie fortsetzen. Ihr Platz bleibt erhalten.",
        "No offers until you resume. You keep your place.",
    ),
    ("manage.resume", "Fortsetzen", "Resume"),
    (
        "manage.undeliverable",
        "E-Mails an Ihre Adresse wurden am {date} abgewiesen; wir haben deshalb aufgehört, Ihnen Angebote zu schicken. Wenn die Adresse wieder E-Mails empfängt, setzen Sie unten fort.",
        "Mail to your address was refused on {date}; we stopped sending invitations. If the address receives mail again, resume below.",
    ),
    (
        "manage.delete",
        "Alle meine Daten jetzt löschen",
        "Delete all my data now",
    ),
    (
        "manage.delete_help",
        "Sofort und endgültig. Sie können sich später wieder anmelden, stehen dann aber hinten in der Schlange.",
        "Immediately and for good. You can sign up again later, but will be at the back of the line.",
    ),
    (
        "deleted.title",
        "Ihre Daten sind gelöscht",
        "Your data has been deleted",
    ),
    (
        "deleted.body",
        "Wir haben Ihre Adresse und alle Angaben gelöscht. Sie bekommen keine E-Mails mehr von uns.",
        "We have deleted your address and all details. You will get no more e-mails from us.",
    ),
    ("deleted.again", "Erneut anmelden", "Sign up again"),
    (
        "unsubscribe.title",
        "Von der Warteliste abmelden",
        "Leave the waiting list",
    ),
    (
        "unsubscribe.body",
        "Damit löschen wir Ihre Adresse und alle Angaben sofort.",
        "This deletes your address and all details immediately.",
    ),
    (
        "unsubscribe.submit",
        "Abmelden und Daten löschen",
        "Leave and delete my data",
    ),
    (
        "link.title",
        "Dieser Link gilt nicht (mehr)",
        "This link is not valid (any more)",
    ),
    (
        "link.body",
        "Der Link ist abgelaufen, wurde schon benutzt, oder die Daten dazu wurden gelöscht. Bestätigungslinks gelten {hours} Stunden. Sie können sich einfach neu anmelden.",
        "The link has expired, was already used, or its data was deleted. Confirmation links work for {hours} hours. You can simply sign up again.",
    ),
    (
        "error.title",
        "Etwas ist schiefgegangen",
        "Something went wrong",
    ),
    (
        "error.busy",
        "Der Dienst ist gerade überlastet oder kann keine E-Mails senden. Bitte versuchen Sie es in einer Minute noch einmal; Ihre Eingaben sind unten erhalten.",
        "The service is busy or cannot send mail right now. Please try again in a minute; what you typed is kept below.",
    ),
    (
        "error.internal",
        "Ein interner Fehler ist aufgetreten. Bitte versuchen Sie es später noch einmal.",
        "An internal error occurred. Please try again later.",
    ),
    (
        "error.not_found",
        "Diese Seite gibt es nicht.",
        "This page does not exist.",
    ),
    (
        "error.bad_form",
        "Das Formular kam unvollständig oder in einem unbekannten Format an. Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.",
        "The form arrived incomplete or in an unknown format. Please reload the page and try again.",
    ),
    (
        "error.too_large",
        "Die Eingaben sind zu lang.",
        "What was sent is too long.",
    ),
    (
        "error.overloaded",
        "Gerade kommen mehr Anfragen an, als der Dienst beantworten kann. Bitte versuchen Sie es in {seconds} Sekunden noch einmal.",
        "More requests are arriving than the service can answer right now. Please try again in {seconds} seconds.",
    ),
    (
        "error.rate_limited",
        "Von Ihrer Adresse kamen in kurzer Zeit sehr viele Anmeldungen. Bitte versuchen Sie es in {seconds} Sekunden noch einmal.",
        "Too many sign-ups came from your address in a short time. Please try again in {seconds} seconds.",
    ),
    ("error.home", "Zur Startseite", "To the start page"),
    (
        "field.required",
        "Bitte füllen Sie dieses Feld aus.",
        "Please fill in this field.",
    ),
    (
        "field.invalid_email",
        "Das ist keine gültige E-Mail-Adresse (Beispiel: name@beispiel.de).",
        "This is not a valid e-mail address (example: name@example.com).",
    ),
    (
        "field.email_too_long",
        "Die E-Mail-Adresse ist zu lang (höchstens 254 Zeichen).",
        "The e-mail address is too long (at most 254 characters).",
    ),
    (
        "field.email_local_too_long",
        "Der Teil vor dem @ ist zu lang (höchstens 64 Zeichen).",
        "The part before the @ is too long (at most 64 characters).",
    ),
    (
        "field.invalid_postcode",
        "Das ist keine gültige Postleitzahl (in Deutschland: fünf Ziffern).",
        "This is not a valid postcode (in Germany: five digits).",
    ),
    (
        "field.unknown_postcode",
        "Diese Postleitzahl kennen wir nicht.",
        "We do not know this postcode.",
    ),
    (
        "field.invalid_radius",
        "Bitte eine ganze Zahl von 1 bis 50 eingeben.",
        "Please enter a whole number from 1 to 50.",
    ),
];

#[derive(Debug, Clone, Copy)]
pub struct T {
    pub lang: Lang,
}

impl T {
    pub fn new(lang: Lang) -> T {
        T { lang }
    }

    /// The text for `key`; a missing key shows itself (and fails the key test).
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        lookup(self.lang, key).unwrap_or(key)
    }

    /// The text for `key` with `{name}` placeholders filled in.
    pub fn fill(&self, key: &str, args: &[(&str, i64)]) -> String {
        args.iter()
            .fold(self.get(key).to_owned(), |text, (name, value)| {
                text.replace(&format!("{{{name}}}"), &value.to_string())
            })
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The other language, for the switch link.
    pub fn other_code(&self) -> &'static str {
        match self.lang {
            Lang::De => "en",
            Lang::En => "de",
        }
    }
}

/// The key of the message for a field error code (`field.<code>`), or the generic one.
pub fn field_key(code: &str) -> &'static str {
    TABLES
        .iter()
        .flat_map(|table| table.iter())
        .find(|(k, _, _)| k.strip_prefix("field.") == Some(code))
        .map_or("field.invalid", |(k, _, _)| k)
}

pub fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    TABLES
        .iter()
        .flat_map(|table| table.iter())
        .find(|(k, _, _)| *k == key)
        .map(|(_, de, en)| match lang {
            Lang::De => *de,
            Lang::En => *en,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every `t.get("…")`/`t.fill("…")` in a template and every quoted `word.word` in the Rust
    /// sources of this crate must have both languages.
    #[test]
    fn every_key_used_in_a_template_or_handler_exists_in_both_languages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        let mut check = |key: &str| {
            checked += 1;
            for lang in [Lang::De, Lang::En] {
                assert!(
                    lookup(lang, key).is_some_and(|s| !s.is_empty()),
                    "missing {lang:?} text for {key}"
                );
            }
        };
        for entry in std::fs::read_dir(root.join("templates")).unwrap() {
            let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for piece in source.split('"').collect::<Vec<_>>().windows(2) {
                if (piece[0].ends_with("t.get(") || piece[0].ends_with("t.fill("))
                    && piece[1].contains('.')
                {
                    check(piece[1]);
                }
            }
        }
        // Every Rust file under src/, in its folders too.
        let mut files = Vec::new();
        let mut folders = vec![root.join("src")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("i18n") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for piece in source.split('"').skip(1).step_by(2) {
                let is_file = [".html", ".css", ".json", ".ics"]
                    .iter()
                    .any(|ext| piece.ends_with(ext));
                let is_key = !is_file
                    && piece.split('.').count() == 2
                    && piece.split('.').all(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    });
                if is_key {
                    check(piece);
                }
            }
        }
        assert!(
            checked > 60,
            "only {checked} keys found; is the scan broken?"
        );
    }

    #[test]
    fn keys_are_unique() {
        let mut keys: Vec<_> = TABLES
            .iter()
            .flat_map(|t| t.iter())
            .map(|(k, _, _)| *k)
            .collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
    }
}
