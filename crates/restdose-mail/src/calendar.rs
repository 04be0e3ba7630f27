//! The calendar entry attached to a booking confirmation (RFC 5545, via the `icalendar` crate).

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike};

use crate::Attachment;

/// What the calendar entry says about an appointment.
pub struct Appointment<'a> {
    /// Stable per booking, so a re-sent mail updates the same entry.
    pub uid: &'a str,
    pub summary: &'a str,
    pub location: &'a str,
    pub description: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub fn ics_attachment(appointment: &Appointment<'_>) -> Attachment {
    let calendar = Calendar::new()
        .name("restdose")
        .push(
            Event::new()
                .uid(appointment.uid)
                .timestamp(appointment.created_at)
                .summary(appointment.summary)
                .location(appointment.location)
                .description(appointment.description)
                .starts(appointment.starts_at)
                .ends(appointment.ends_at)
                .done(),
        )
        .done();
    Attachment {
        filename: "termin.ics".to_owned(),
        content_type: "text/calendar; charset=utf-8; method=PUBLISH".to_owned(),
        body: calendar.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_valid_vcalendar_with_utc_times_and_escaped_text() {
        let at = Utc.with_ymd_and_hms(2026, 5, 4, 14, 0, 0).unwrap();
        let ics = ics_attachment(&Appointment {
            uid: "booking-1@restdose.example",
            summary: "Impfung: Comirnaty",
            location: "Praxis Dr. B, Hauptstr. 1, 10115 Berlin",
            description: "Buchungscode 7K3M-Q9ZT-2W4H; bitte mitbringen",
            starts_at: at,
            ends_at: at + chrono::Duration::hours(2),
            created_at: at - chrono::Duration::hours(1),
        });
        let body = &ics.body;
        assert!(
            body.starts_with("BEGIN:VCALENDAR\r\n") && body.trim_end().ends_with("END:VCALENDAR")
        );
        assert!(body.contains("DTSTART:20260504T140000Z"));
        assert!(body.contains("DTEND:20260504T160000Z"));
        assert!(body.contains("UID:booking-1@restdose.example"));
        assert!(
            body.contains("Hauptstr. 1\\, 10115 Berlin"),
            "commas escaped: {body}"
        );
        assert!(body.contains("\\;"), "semicolons escaped");
        assert!(body.lines().all(|l| l.len() <= 75), "folded lines");
    }
}
