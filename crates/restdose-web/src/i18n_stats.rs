//! (key, German, English): the statistics page, the odds on the self-service page and the
//! practice's own figures.

pub static MESSAGES: &[(&str, &str, &str)] = &[
    ("stats.title", "Offene Statistik", "Open statistics"),
    (
        "stats.intro",
        "Was restdose erreicht, aus anonymen Zählern, die das Löschen der persönlichen Daten überdauern. Kein Wert beschreibt eine einzelne Person.",
        "What restdose achieves, from anonymous counters that survive the deletion of personal data. No figure describes a single person.",
    ),
    ("stats.span", "Zeitraum:", "Period:"),
    (
        "stats.suppression",
        "Zahlen von 1 bis 9 zeigen wir nicht (»<10«), ebenso Anteile und Mediane, die auf so kleinen Zahlen beruhen. Angebote zählen ab dem Tag nach dem Löschen ihrer Daten (24 Stunden nach dem Termin).",
        "Counts from 1 to 9 are not shown (“<10”), nor are shares and medians based on such small counts. Offers are counted once their data is deleted (24 hours after the appointment).",
    ),
    (
        "stats.waiting",
        "Wartende Menschen je Postleitzahlbereich (2 Ziffern)",
        "People waiting per postcode area (2 digits)",
    ),
    ("stats.area", "Bereich", "Area"),
    ("stats.people", "Menschen", "People"),
    (
        "stats.doses",
        "Impfdosen je Tag des Termins",
        "Doses per day of the appointment",
    ),
    ("stats.day", "Tag", "Day"),
    ("stats.offered", "Angebotene Dosen", "Doses offered"),
    ("stats.placed", "Vermittelte Dosen", "Doses placed"),
    ("stats.unused", "Ungenutzte Dosen", "Doses unused"),
    (
        "stats.fill",
        "Median der Zeit vom Einstellen bis zur letzten vermittelten Dosis",
        "Median time from posting to the last dose placed",
    ),
    ("stats.minutes", "{n} Min.", "{n} min"),
    (
        "stats.share",
        "Anteil angenommener Einladungen je Welle",
        "Share of invitations claimed per wave",
    ),
    ("stats.wave", "Welle", "Wave"),
    ("stats.invited", "Eingeladen", "Invited"),
    ("stats.claimed", "Angenommen", "Claimed"),
    ("stats.share_col", "Anteil", "Share"),
    (
        "stats.open_data",
        "Dieselben Zahlen als offene Daten:",
        "The same figures as open data:",
    ),
    ("stats.link", "Offene Statistik", "Open statistics"),
    ("odds.title", "Ihre Aussichten", "Your odds"),
    (
        "odds.position",
        "Ihr Platz unter den Wartenden in Ihrem Umkreis",
        "Your place among the people waiting within your radius",
    ),
    ("odds.of", "{position} von {total}", "{position} of {total}"),
    (
        "odds.offered_7",
        "Angebotene Dosen in Ihrer Gegend, letzte 7 Tage",
        "Doses offered in your area, last 7 days",
    ),
    (
        "odds.offered_30",
        "Angebotene Dosen in Ihrer Gegend, letzte 30 Tage",
        "Doses offered in your area, last 30 days",
    ),
    ("odds.wait", "Voraussichtliche Wartezeit", "Expected wait"),
    (
        "odds.wait_unknown",
        "In den letzten 30 Tagen wurden in Ihrer Nähe zu wenige Dosen vermittelt, um eine Wartezeit zu schätzen.",
        "Not enough doses were placed near you in the last 30 days to estimate.",
    ),
    (
        "odds.wait_days",
        "etwa {low} bis {high} Tage",
        "about {low} to {high} days",
    ),
    (
        "odds.wait_weeks",
        "etwa {low} bis {high} Wochen",
        "about {low} to {high} weeks",
    ),
    (
        "odds.wait_months",
        "etwa {low} bis {high} Monate",
        "about {low} to {high} months",
    ),
    (
        "odds.how",
        "So rechnen wir: Ihr Platz geteilt durch die in Ihrer Gegend vermittelten Dosen pro Tag (letzte 30 Tage), als Spanne von der Hälfte bis zum Doppelten. »Gegend« sind die Postleitzahlbereiche (2 Ziffern) in Ihrem Umkreis; Zahlen unter 10 zeigen wir nicht.",
        "How we compute it: your place divided by the doses placed per day in your area (last 30 days), as a range from half to twice that. “Area” means the 2-digit postcode areas within your radius; counts under 10 are not shown.",
    ),
    (
        "odds.not_waiting",
        "Sie stehen gerade nicht auf der Warteliste (unbestätigt oder pausiert), daher zeigen wir keine Aussichten.",
        "You are not on the waiting list right now (unconfirmed or paused), so no odds are shown.",
    ),
    ("practice_stats.title", "Ihre Zahlen", "Your figures"),
    ("practice_stats.last_30", "Letzte 30 Tage", "Last 30 days"),
    ("practice_stats.all_time", "Insgesamt", "All time"),
    ("practice_stats.placed", "Vermittelte Dosen", "Doses placed"),
    (
        "practice_stats.fill",
        "Median der Zeit bis alle Dosen vergeben waren",
        "Median time to fill",
    ),
    (
        "practice_stats.no_show",
        "Nicht erschienen (Anteil)",
        "No-show rate",
    ),
    (
        "practice_stats.note",
        "Aus anonymen Zählern, die beim Löschen eines Angebots (24 Stunden nach dem Termin) geschrieben werden.",
        "From anonymous counters written when an offer is purged (24 hours after the appointment).",
    ),
];
