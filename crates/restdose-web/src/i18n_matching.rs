//! Texts of the invitation and booking pages: (key, German, English). See `i18n.rs`.

pub static MESSAGES: &[(&str, &str, &str)] = &[
    (
        "invite.title",
        "Eine Impfdosis ist frei",
        "A vaccine dose is free",
    ),
    ("invite.practice", "Praxis", "Practice"),
    ("invite.address", "Adresse", "Address"),
    (
        "invite.distance",
        "Entfernung (ungefähr)",
        "Distance (approximately)",
    ),
    ("invite.window", "Termin", "Appointment"),
    ("invite.vaccine", "Impfstoff", "Vaccine"),
    (
        "invite.note",
        "Hinweis der Praxis",
        "Note from the practice",
    ),
    ("invite.remaining", "Noch freie Dosen", "Doses still free"),
    ("invite.answer_by", "Antwort bis", "Answer by"),
    ("invite.claim", "Ja, ich komme", "Yes, I will come"),
    ("invite.decline", "Ich kann nicht", "I cannot come"),
    (
        "invite.help",
        "Wer zuerst zusagt, bekommt die Dosis. Wenn Sie absagen oder nicht antworten, behalten Sie Ihren Platz auf der Warteliste.",
        "Whoever accepts first gets the dose. If you decline or do not answer, you keep your place on the list.",
    ),
    (
        "invite.state.claimed",
        "Sie haben zugesagt. Ihren Buchungscode finden Sie in der Bestätigungsmail.",
        "You have accepted. Your booking code is in the confirmation mail.",
    ),
    (
        "invite.state.declined",
        "Sie haben abgesagt. Sie behalten Ihren Platz auf der Warteliste.",
        "You declined. You keep your place on the list.",
    ),
    (
        "invite.state.expired",
        "Dieses Angebot ist abgelaufen. Sie behalten Ihren Platz auf der Warteliste.",
        "This offer has expired. You keep your place on the list.",
    ),
    (
        "invite.state.missed",
        "Alle Dosen sind vergeben – Sie behalten Ihren Platz auf der Warteliste.",
        "All doses are taken – you keep your place in line.",
    ),
    (
        "invite.state.ended",
        "Die Praxis hat dieses Angebot beendet. Sie behalten Ihren Platz auf der Warteliste.",
        "The practice has ended this offer. You keep your place on the list.",
    ),
    (
        "invite.state.booked_elsewhere",
        "Sie haben bereits einen Termin. Sagen Sie ihn ab, wenn Sie lieber diesen möchten.",
        "You already hold an appointment. Cancel it if you would rather take this one.",
    ),
    (
        "invite.declined",
        "Sie haben abgesagt. Sie behalten Ihren Platz auf der Warteliste.",
        "You declined. You keep your place on the list.",
    ),
    (
        "booking.title",
        "Ihr Impftermin",
        "Your vaccination appointment",
    ),
    (
        "booking.code",
        "Ihr Buchungscode – bitte in der Praxis nennen:",
        "Your booking code – please give it at the practice:",
    ),
    (
        "booking.booked",
        "Die Dosis ist für Sie reserviert. Die Bestätigung mit Kalendereintrag ist per E-Mail unterwegs.",
        "The dose is reserved for you. The confirmation with a calendar entry is on its way by e-mail.",
    ),
    (
        "booking.cancel_title",
        "Doch verhindert?",
        "Cannot come after all?",
    ),
    (
        "booking.cancel_help",
        "Sagen Sie bitte ab, dann geht die Dosis sofort an die nächste Person. Sie behalten Ihren Platz auf der Warteliste.",
        "Please cancel, so the dose goes to the next person at once. You keep your place on the list.",
    ),
    ("booking.cancel", "Termin absagen", "Cancel the appointment"),
    (
        "booking.cancelled",
        "Der Termin ist abgesagt. Danke – die Dosis geht an die nächste Person.",
        "The appointment is cancelled. Thank you – the dose goes to the next person.",
    ),
    (
        "booking.status.cancelled",
        "Dieser Termin ist abgesagt.",
        "This appointment is cancelled.",
    ),
    (
        "booking.status.no_show",
        "Dieser Termin wurde nicht wahrgenommen.",
        "This appointment was missed.",
    ),
];
