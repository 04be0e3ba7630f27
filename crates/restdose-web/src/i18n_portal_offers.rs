//! Texts of the practice portal's dashboard, offers and API tokens: (key, German, English).
//! See `i18n.rs`.

pub static MESSAGES: &[(&str, &str, &str)] = &[
    // --- dashboard -------------------------------------------------------------------------
    ("portal.dashboard.title", "Übersicht", "Dashboard"),
    (
        "portal.dashboard.post",
        "Übrige Dosen anbieten",
        "Post spare doses",
    ),
    ("portal.dashboard.offers", "Ihre Angebote", "Your offers"),
    (
        "portal.dashboard.no_offers",
        "Sie haben noch keine Angebote eingestellt.",
        "You have not posted any offers yet.",
    ),
    (
        "portal.practice_status.pending",
        "Ihre Praxis wartet auf die Freischaltung. Wir prüfen Ihre Angaben und schreiben Ihnen, sobald Sie Angebote einstellen können.",
        "Your practice is waiting for approval. We check your details and write to you once you can post offers.",
    ),
    (
        "portal.practice_status.approved",
        "Ihre Praxis ist freigeschaltet.",
        "Your practice is approved.",
    ),
    (
        "portal.practice_status.rejected",
        "Ihre Praxis wurde nicht freigeschaltet. Bei Fragen antworten Sie bitte auf unsere E-Mail.",
        "Your practice was not approved. If you have questions, please reply to our e-mail.",
    ),
    (
        "portal.practice_status.suspended",
        "Ihr Praxiskonto ist gesperrt; Sie können keine Angebote einstellen. Bei Fragen antworten Sie bitte auf unsere E-Mail.",
        "Your practice account is suspended; you cannot post offers. If you have questions, please reply to our e-mail.",
    ),
    // --- offers ----------------------------------------------------------------------------
    (
        "portal.offer_new.title",
        "Übrige Dosen anbieten",
        "Post spare doses",
    ),
    (
        "portal.offer_new.intro",
        "Menschen auf der Warteliste in der Nähe Ihrer Praxis bekommen eine E-Mail; wer zuerst zusagt, bekommt einen Buchungscode.",
        "People on the waiting list near your practice get an e-mail; whoever accepts first gets a booking code.",
    ),
    ("portal.offer_new.choose", "Bitte wählen", "Please choose"),
    (
        "portal.offer_new.submit",
        "Angebot veröffentlichen",
        "Publish offer",
    ),
    ("portal.offer.title", "Angebot", "Offer"),
    ("portal.offer.window", "Zeitraum", "Time"),
    ("portal.offer.status", "Status", "Status"),
    ("portal.offer.doses", "Dosen", "Doses"),
    ("portal.offer.claimed", "Vergeben", "Claimed"),
    ("portal.offer.checked_in", "Erschienen", "Checked in"),
    ("portal.offer.remaining", "Noch frei", "Remaining"),
    ("portal.offer.time_left", "Verbleibende Zeit", "Time left"),
    (
        "portal.offer.time_left_value",
        "{hours} Std. {minutes} Min.",
        "{hours} h {minutes} min",
    ),
    ("portal.offer.bookings", "Buchungen", "Bookings"),
    (
        "portal.offer.no_bookings",
        "Noch keine Buchungen.",
        "No bookings yet.",
    ),
    ("portal.offer.actions", "Aktionen", "Actions"),
    ("portal.offer.add_doses", "Dosen hinzufügen", "Add doses"),
    (
        "portal.offer.more_doses",
        "Weitere Dosen (1–200)",
        "More doses (1–200)",
    ),
    ("portal.offer.close", "Vorzeitig schließen", "Close early"),
    (
        "portal.offer.close_help",
        "Es werden keine weiteren Menschen eingeladen. Wer schon gebucht hat, behält den Termin.",
        "Nobody else is invited. Everyone who has booked keeps the appointment.",
    ),
    ("portal.offer.cancel", "Angebot absagen", "Cancel the offer"),
    (
        "portal.offer.cancel_warning",
        "Achtung: Alle Buchungen verfallen, und jede Person, die gebucht hat, bekommt eine Absage per E-Mail. Das lässt sich nicht rückgängig machen.",
        "Warning: every booking is cancelled, and everyone who booked gets a cancellation e-mail. This cannot be undone.",
    ),
    (
        "portal.offer.no_show_done",
        "Als nicht erschienen markiert.",
        "Marked as no-show.",
    ),
    (
        "portal.offer.no_show_refused",
        "Diese Buchung ist nicht mehr offen; sie wurde nicht geändert.",
        "This booking is no longer open; it was not changed.",
    ),
    (
        "portal.offer.doses_added",
        "Dosen hinzugefügt.",
        "Doses added.",
    ),
    (
        "portal.offer.doses_refused",
        "Keine Dosen hinzugefügt: Das Angebot ist nicht mehr offen, oder es wären mehr als 1000 Dosen.",
        "No doses added: the offer is no longer open, or it would exceed 1000 doses.",
    ),
    (
        "portal.offer.closed",
        "Das Angebot ist geschlossen. Bestehende Buchungen gelten weiter.",
        "The offer is closed. Existing bookings stay valid.",
    ),
    (
        "portal.offer.cancelled",
        "Das Angebot ist abgesagt; alle, die gebucht hatten, bekommen eine E-Mail.",
        "The offer is cancelled; everyone who had booked gets an e-mail.",
    ),
    (
        "portal.offer.not_open",
        "Das Angebot ist nicht mehr offen.",
        "The offer is no longer open.",
    ),
    ("portal.offer_status.open", "Offen", "Open"),
    ("portal.offer_status.closed", "Geschlossen", "Closed"),
    ("portal.offer_status.cancelled", "Abgesagt", "Cancelled"),
    ("portal.booking_status.booked", "Gebucht", "Booked"),
    (
        "portal.booking_status.checked_in",
        "Erschienen",
        "Checked in",
    ),
    (
        "portal.booking_status.no_show",
        "Nicht erschienen",
        "No-show",
    ),
    ("portal.booking_status.cancelled", "Abgesagt", "Cancelled"),
    ("portal.booking.no_show", "Nicht erschienen", "No-show"),
    ("portal.checkin.title", "Einchecken", "Check in"),
    ("portal.checkin.code", "Buchungscode", "Booking code"),
    (
        "portal.checkin.code_help",
        "12 Zeichen, zum Beispiel 7K3M-Q9ZT-2W4H; Groß- und Kleinschreibung und Bindestriche sind egal.",
        "12 characters, for example 7K3M-Q9ZT-2W4H; case and hyphens do not matter.",
    ),
    ("portal.checkin.submit", "Einchecken", "Check in"),
    (
        "portal.checkin.done",
        "Eingecheckt: Der Code ist gültig.",
        "Checked in: the code is valid.",
    ),
    (
        "portal.checkin.used",
        "Dieser Code wurde schon benutzt (eingecheckt, nicht erschienen oder abgesagt).",
        "This code has already been used (checked in, no-show or cancelled).",
    ),
    (
        "portal.checkin.unknown",
        "Diesen Code gibt es für dieses Angebot nicht. Bitte prüfen Sie die Eingabe.",
        "There is no such code for this offer. Please check what you typed.",
    ),
    // --- API tokens ------------------------------------------------------------------------
    ("portal.tokens.title", "API-Schlüssel", "API tokens"),
    (
        "portal.tokens.intro",
        "Mit einem API-Schlüssel kann Ihre Praxissoftware Angebote einstellen. Behandeln Sie ihn wie ein Passwort.",
        "With an API token your practice software can post offers. Treat it like a password.",
    ),
    ("portal.tokens.new", "Neuer Schlüssel", "New token"),
    ("portal.tokens.name", "Bezeichnung", "Name"),
    ("portal.tokens.create", "Schlüssel erzeugen", "Create token"),
    (
        "portal.tokens.created",
        "Der Schlüssel wurde erzeugt.",
        "The token has been created.",
    ),
    ("portal.tokens.secret", "Ihr Schlüssel", "Your token"),
    (
        "portal.tokens.once",
        "Kopieren Sie ihn jetzt: Er wird nur dieses eine Mal angezeigt. Wir speichern ihn nicht im Klartext.",
        "Copy it now: it is shown only this once. We do not store it in plain text.",
    ),
    ("portal.tokens.list", "Ihre Schlüssel", "Your tokens"),
    (
        "portal.tokens.none",
        "Noch keine Schlüssel.",
        "No tokens yet.",
    ),
    ("portal.tokens.created_at", "Erzeugt", "Created"),
    ("portal.tokens.last_used", "Zuletzt benutzt", "Last used"),
    ("portal.tokens.never", "nie", "never"),
    ("portal.tokens.revoke", "Widerrufen", "Revoke"),
    ("portal.tokens.revoked_at", "Widerrufen am", "Revoked on"),
    (
        "portal.tokens.revoked",
        "Der Schlüssel ist widerrufen und funktioniert nicht mehr.",
        "The token is revoked and no longer works.",
    ),
];
