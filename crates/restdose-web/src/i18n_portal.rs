//! Texts of the practice portal's shared parts and account (navigation, sign-up, login,
//! passwords, field errors): (key, German, English). See `i18n.rs`.

pub static MESSAGES: &[(&str, &str, &str)] = &[
    // --- navigation and shared -------------------------------------------------------------
    ("portal.nav.label", "Praxisportal", "Practice portal"),
    ("portal.nav.dashboard", "Übersicht", "Dashboard"),
    ("portal.nav.admin", "Verwaltung", "Administration"),
    ("portal.nav.new_offer", "Neues Angebot", "New offer"),
    ("portal.nav.tokens", "API-Schlüssel", "API tokens"),
    ("portal.nav.password", "Passwort", "Password"),
    ("portal.nav.logout", "Abmelden", "Log out"),
    (
        "portal.back",
        "Zurück zur Übersicht",
        "Back to the dashboard",
    ),
    (
        "portal.error.busy",
        "Der Dienst ist gerade überlastet oder kann keine E-Mails senden. Bitte versuchen Sie es in einer Minute noch einmal.",
        "The service is busy or cannot send mail right now. Please try again in a minute.",
    ),
    ("portal.csrf.title", "Formular abgelaufen", "Form expired"),
    (
        "portal.csrf.body",
        "Das Formular war veraltet oder kam nicht von dieser Seite; es wurde nichts geändert. Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.",
        "The form was out of date or did not come from this site; nothing was changed. Please reload the page and try again.",
    ),
    ("portal.forbidden.title", "Nicht erlaubt", "Not allowed"),
    (
        "portal.forbidden.body",
        "Mit diesem Konto geht das nicht. Praxen können Angebote erst einstellen, wenn wir sie freigeschaltet haben.",
        "This account may not do this. Practices can post offers only once we have approved them.",
    ),
    ("portal.not_found.title", "Nicht gefunden", "Not found"),
    (
        "portal.not_found.body",
        "Das gibt es nicht, oder es gehört nicht zu Ihrer Praxis.",
        "This does not exist, or it does not belong to your practice.",
    ),
    (
        "portal.conflict.title",
        "Das geht gerade nicht",
        "Not possible now",
    ),
    (
        "portal.conflict.body",
        "Der aktuelle Stand erlaubt das nicht (zum Beispiel ist das Angebot schon beendet).",
        "The current state does not allow this (for example, the offer has ended).",
    ),
    (
        "portal.link.title",
        "Dieser Link gilt nicht (mehr)",
        "This link is not valid (any more)",
    ),
    (
        "portal.link.body",
        "Der Link ist abgelaufen oder wurde schon benutzt. Bestätigungslinks gelten {hours} Stunden, Links zum Zurücksetzen des Passworts {minutes} Minuten. Beim Anmelden schicken wir Ihnen bei Bedarf einen neuen Bestätigungslink; ein neues Passwort können Sie erneut anfordern.",
        "The link has expired or was already used. Confirmation links work for {hours} hours, password reset links for {minutes} minutes. When you log in we send a new confirmation link if needed; you can ask for a new password again.",
    ),
    // --- sign-up and verification ----------------------------------------------------------
    (
        "portal.signup.title",
        "Praxis registrieren",
        "Register a practice",
    ),
    (
        "portal.signup.intro",
        "Haben Sie Impfdosen übrig? Registrieren Sie Ihre Praxis. Nach der Bestätigung Ihrer E-Mail-Adresse prüfen wir Ihre Angaben und schalten Sie frei.",
        "Do you have doses left over? Register your practice. After you confirm your e-mail address we check your details and approve you.",
    ),
    (
        "portal.signup.next",
        "Sie bekommen gleich eine E-Mail mit einem Bestätigungslink.",
        "You will get an e-mail with a confirmation link.",
    ),
    ("portal.signup.submit", "Registrieren", "Register"),
    (
        "portal.signup.have_account",
        "Schon registriert?",
        "Already registered?",
    ),
    (
        "portal.signup.done_title",
        "Bitte schauen Sie in Ihr Postfach",
        "Please check your mail",
    ),
    (
        "portal.signup.done_body",
        "Wir haben Ihnen eine E-Mail geschickt. Klicken Sie auf den Link darin, um Ihre Adresse zu bestätigen; er gilt {hours} Stunden. Danach prüfen wir Ihre Praxis und schreiben Ihnen, sobald sie freigeschaltet ist.",
        "We have sent you an e-mail. Click the link in it to confirm your address; it works for {hours} hours. We then check your practice and write to you once it is approved.",
    ),
    (
        "portal.verify.title",
        "E-Mail-Adresse bestätigen",
        "Confirm your e-mail address",
    ),
    (
        "portal.verify.body",
        "Ein Klick noch: Bestätigen Sie, dass diese Adresse zu Ihrer Praxis gehört.",
        "One more click: confirm that this address belongs to your practice.",
    ),
    (
        "portal.verify.submit",
        "Adresse bestätigen",
        "Confirm address",
    ),
    (
        "portal.verified.title",
        "Adresse bestätigt",
        "Address confirmed",
    ),
    (
        "portal.verified.body",
        "Danke! Wir prüfen jetzt Ihre Praxis und schreiben Ihnen, sobald sie freigeschaltet ist. Anmelden können Sie sich schon.",
        "Thank you! We are now checking your practice and will write to you once it is approved. You can already log in.",
    ),
    // --- login -----------------------------------------------------------------------------
    ("portal.login.title", "Anmelden", "Log in"),
    ("portal.login.submit", "Anmelden", "Log in"),
    (
        "portal.login.required",
        "Bitte melden Sie sich an.",
        "Please log in.",
    ),
    (
        "portal.login.failed",
        "E-Mail-Adresse oder Passwort stimmen nicht.",
        "The e-mail address or the password is wrong.",
    ),
    (
        "portal.login.throttled",
        "Zu viele Fehlversuche. Bitte warten Sie {minutes} Minute(n) und versuchen Sie es dann noch einmal.",
        "Too many failed attempts. Please wait {minutes} minute(s), then try again.",
    ),
    (
        "portal.login.forgot",
        "Passwort vergessen?",
        "Forgot your password?",
    ),
    (
        "portal.login.no_account",
        "Noch kein Konto?",
        "No account yet?",
    ),
    (
        "portal.throttled.title",
        "Zu viele Versuche",
        "Too many attempts",
    ),
    (
        "portal.throttled.body",
        "Bitte warten Sie kurz und versuchen Sie es dann noch einmal.",
        "Please wait a little, then try again.",
    ),
    (
        "portal.unverified.title",
        "Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse",
        "Please confirm your e-mail address first",
    ),
    (
        "portal.unverified.body",
        "Wir haben Ihnen einen neuen Bestätigungslink geschickt; er gilt {hours} Stunden. Nach der Bestätigung können Sie sich anmelden.",
        "We have sent you a new confirmation link; it works for {hours} hours. After confirming you can log in.",
    ),
    // --- fields ----------------------------------------------------------------------------
    (
        "portal.field.practice_name",
        "Name der Praxis",
        "Name of the practice",
    ),
    (
        "portal.field.street",
        "Straße und Hausnummer",
        "Street and number",
    ),
    ("portal.field.city", "Ort", "Town or city"),
    ("portal.field.phone", "Telefon", "Phone"),
    ("portal.field.email", "E-Mail-Adresse", "E-mail address"),
    ("portal.field.password", "Passwort", "Password"),
    (
        "portal.field.current_password",
        "Jetziges Passwort",
        "Current password",
    ),
    (
        "portal.field.new_password",
        "Neues Passwort",
        "New password",
    ),
    (
        "portal.field.password_rules",
        "12 bis 128 Zeichen, nicht Ihre E-Mail-Adresse. Ein Satz aus mehreren Wörtern ist gut zu merken.",
        "12 to 128 characters, not your e-mail address. A sentence of several words is easy to remember.",
    ),
    ("portal.field.vaccine", "Impfstoff", "Vaccine"),
    (
        "portal.field.doses",
        "Anzahl Dosen (1–200)",
        "Number of doses (1–200)",
    ),
    ("portal.field.starts_at", "Termine ab", "Appointments from"),
    ("portal.field.ends_at", "Termine bis", "Appointments until"),
    (
        "portal.field.time_help",
        "Ortszeit, zum Beispiel 2026-05-04T16:00; höchstens 7 Tage im Voraus.",
        "Local time, for example 2026-05-04T16:00; at most 7 days ahead.",
    ),
    (
        "portal.field.claim_minutes",
        "Minuten zum Zusagen (5–120)",
        "Minutes to accept (5–120)",
    ),
    (
        "portal.field.radius_km",
        "Umkreis in Kilometern (1–50)",
        "Radius in kilometres (1–50)",
    ),
    (
        "portal.field.note",
        "Hinweis für die Impflinge (höchstens 500 Zeichen)",
        "Note for the people coming (at most 500 characters)",
    ),
    // --- passwords -------------------------------------------------------------------------
    (
        "portal.password.title",
        "Passwort ändern",
        "Change password",
    ),
    (
        "portal.password.intro",
        "Nach der Änderung werden alle anderen Anmeldungen beendet.",
        "After the change every other login session ends.",
    ),
    (
        "portal.password.submit",
        "Passwort ändern",
        "Change password",
    ),
    (
        "portal.password.changed",
        "Ihr Passwort ist geändert. Alle anderen Anmeldungen sind beendet.",
        "Your password has been changed. All other sessions have ended.",
    ),
    (
        "portal.forgot.title",
        "Passwort vergessen",
        "Forgot password",
    ),
    (
        "portal.forgot.intro",
        "Geben Sie die Anmelde-Adresse Ihrer Praxis ein. Wir schicken Ihnen einen Link, mit dem Sie ein neues Passwort setzen.",
        "Enter your practice's login address. We send you a link to set a new password.",
    ),
    ("portal.forgot.submit", "Link schicken", "Send link"),
    (
        "portal.forgot.sent_title",
        "Bitte schauen Sie in Ihr Postfach",
        "Please check your mail",
    ),
    (
        "portal.forgot.sent_body",
        "Wenn es zu dieser Adresse ein Konto gibt, haben wir einen Link zum Zurücksetzen geschickt. Er gilt {minutes} Minuten und nur einmal.",
        "If an account exists for this address, we have sent a link to reset the password. It works for {minutes} minutes and only once.",
    ),
    (
        "portal.reset.title",
        "Neues Passwort setzen",
        "Set a new password",
    ),
    ("portal.reset.submit", "Passwort speichern", "Save password"),
    (
        "portal.reset.done_title",
        "Neues Passwort gespeichert",
        "New password saved",
    ),
    (
        "portal.reset.done_body",
        "Ihr Passwort ist geändert; alle bisherigen Anmeldungen sind beendet. Melden Sie sich mit dem neuen Passwort an.",
        "Your password has been changed; every earlier session has ended. Log in with the new password.",
    ),
    // --- field errors used by the portal's use cases ---------------------------------------
    (
        "field.invalid",
        "Diese Eingabe ist ungültig.",
        "This input is not valid.",
    ),
    (
        "field.too_long",
        "Die Eingabe ist zu lang.",
        "This is too long.",
    ),
    (
        "field.invalid_characters",
        "Die Eingabe enthält unsichtbare oder steuernde Zeichen (z. B. Textrichtungs-, Null-Breiten- oder Zeilentrennzeichen). Bitte tippen Sie sie neu, statt sie einzufügen.",
        "This contains invisible or control characters (such as text-direction, zero-width or line-separator characters). Please type it rather than pasting it.",
    ),
    (
        "field.invalid_phone",
        "Bitte eine Telefonnummer mit 5 bis 20 Ziffern eingeben (erlaubt sind auch + - / ( ) und Leerzeichen).",
        "Please enter a phone number with 5 to 20 digits (+ - / ( ) and spaces are allowed too).",
    ),
    (
        "field.password_too_short",
        "Das Passwort ist zu kurz (mindestens 12 Zeichen).",
        "The password is too short (at least 12 characters).",
    ),
    (
        "field.password_too_long",
        "Das Passwort ist zu lang (höchstens 128 Zeichen).",
        "The password is too long (at most 128 characters).",
    ),
    (
        "field.password_is_email",
        "Das Passwort darf nicht Ihre E-Mail-Adresse sein.",
        "The password must not be your e-mail address.",
    ),
    (
        "field.wrong_password",
        "Das jetzige Passwort stimmt nicht.",
        "The current password is wrong.",
    ),
    (
        "field.invalid_vaccine",
        "Bitte wählen Sie einen Impfstoff aus der Liste.",
        "Please choose a vaccine from the list.",
    ),
    (
        "field.invalid_doses",
        "Bitte eine ganze Zahl von 1 bis 200 eingeben.",
        "Please enter a whole number from 1 to 200.",
    ),
    (
        "field.invalid_time",
        "Das ist kein gültiger Zeitpunkt (Beispiel: 2026-05-04T16:00; in der API mit Zeitzone: 2026-05-04T16:00:00+02:00).",
        "This is not a valid time (example: 2026-05-04T16:00; in the API with a zone: 2026-05-04T16:00:00+02:00).",
    ),
    (
        "field.in_past",
        "Dieser Zeitpunkt liegt in der Vergangenheit.",
        "This time is in the past.",
    ),
    (
        "field.end_before_start",
        "Das Ende muss nach dem Beginn liegen.",
        "The end must be after the start.",
    ),
    (
        "field.too_far_ahead",
        "Höchstens 7 Tage im Voraus.",
        "At most 7 days ahead.",
    ),
    (
        "field.invalid_claim_minutes",
        "Bitte eine ganze Zahl von 5 bis 120 eingeben.",
        "Please enter a whole number from 5 to 120.",
    ),
    (
        "field.note_too_long",
        "Der Hinweis ist zu lang (höchstens 500 Zeichen).",
        "The note is too long (at most 500 characters).",
    ),
    (
        "field.invalid_note",
        "Der Hinweis enthält unsichtbare oder steuernde Zeichen, die nicht erlaubt sind (Zeilenumbrüche sind erlaubt).",
        "The note contains invisible or control characters that are not allowed (line breaks are fine).",
    ),
];
