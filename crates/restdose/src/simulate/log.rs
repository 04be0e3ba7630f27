//! What happened in a run, as the simulated people and practices saw it: who was on the list,
//! which offers went out, each invitation and answer, cancellations, pauses, bounces and mails.
//! The figures (`observe`) are computed from this log alone, so they can be tested on small
//! hand-made logs.

use chrono::{DateTime, Duration, Utc};

/// One simulated person (index = anonymous id).
#[derive(Debug, Clone)]
pub struct PersonInfo {
    /// Their place in line (the sign-up time the service stored).
    pub signed_up_at: DateTime<Utc>,
    pub postcode: String,
    pub radius_km: u16,
    /// Whether their profile answers invitations at all.
    pub willing: bool,
    /// Whether their address dies after confirmation.
    pub dead: bool,
}

/// One offer a practice posted.
#[derive(Debug, Clone)]
pub struct OfferInfo {
    pub posted_at: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub doses: i32,
    pub claim_minutes: i64,
    pub radius_km: u16,
    pub postcode: String,
    /// The people in reach: distance ≤ min(offer radius, their radius), with the distance.
    pub reach: Vec<(usize, f32)>,
}

impl OfferInfo {
    /// First two digits of the postcode.
    pub fn area(&self) -> String {
        self.postcode.chars().take(2).collect()
    }
}

/// One invitation, learned from its mail and the invitation page.
#[derive(Debug, Clone)]
pub struct InvitationInfo {
    pub person: usize,
    pub offer: usize,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    /// Claimed and got the dose.
    Booked,
    /// "No, thanks".
    Declined,
    /// Clicked after every dose was taken.
    Missed,
    /// Clicked after the claim window closed: silence, as far as the service knows.
    Late,
    /// Clicked while holding another booking.
    AlreadyBooked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MailKind {
    SignUpConfirmation,
    Invitation,
    BookingConfirmation,
    Paused,
    Other,
}

#[derive(Debug, Clone)]
pub enum Event {
    Confirmed {
        person: usize,
    },
    OfferPosted {
        offer: usize,
    },
    /// A wave of the matcher; `invitations` are filled in as their mails arrive.
    Wave {
        offer: usize,
        invited: u32,
        overbooking: f64,
        last_call: bool,
        invitations: Vec<usize>,
    },
    Answered {
        invitation: usize,
        answer: Answer,
        /// For bookings: whether the person will not come (the practice marks it at the end).
        no_show: bool,
    },
    /// The person cancelled the booking they got through this invitation.
    BookingCancelled {
        invitation: usize,
    },
    /// The practice marked the booking a no-show (the person may be invited again).
    NoShow {
        invitation: usize,
    },
    /// The practice called the offer off (every booking of it is cancelled).
    OfferCancelled {
        offer: usize,
    },
    /// The service paused the person after unanswered invitations.
    Paused {
        person: usize,
    },
    /// A mail to the person was attempted; `bounced` when the server refused it for good.
    Mail {
        person: usize,
        kind: MailKind,
        bounced: bool,
    },
    /// The end of a step: the matcher and the mail delivery have run until idle.
    Tick,
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Order of events; entries with the same `seq` happened in one step of the service (a
    /// pause found by the expiry step is filed under that step, before the waves after it).
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Log {
    pub start: DateTime<Utc>,
    /// End of the scenario's period (no sign-ups or offers after it).
    pub period_end: DateTime<Utc>,
    /// When the run stopped (after the last offer ended, at most a day after `period_end`).
    pub end: DateTime<Utc>,
    pub tick: Duration,
    /// The matcher's throttle and daily cap, for the definition of "free".
    pub throttle: Duration,
    pub daily_cap: u32,
    /// Silences in a row that pause a person (the matcher's `pause_after_unanswered`).
    pub pause_after: u32,
    pub people: Vec<PersonInfo>,
    pub offers: Vec<OfferInfo>,
    pub invitations: Vec<InvitationInfo>,
    pub entries: Vec<Entry>,
}

impl Log {
    /// Entries in the order they happened.
    pub fn ordered(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// The hour (from `start`) a time falls in.
    pub fn hour(&self, t: DateTime<Utc>) -> usize {
        ((t - self.start).num_minutes().max(0) / 60) as usize
    }

    /// Number of hours the run covered.
    pub fn hours(&self) -> usize {
        self.hour(self.end - Duration::milliseconds(1)) + 1
    }
}
