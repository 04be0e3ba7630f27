use chrono::{DateTime, Utc};
use restdose_domain::Lang;
use restdose_domain::Postcode;
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrantStatus {
    /// Signed up, has not clicked the confirmation yet: never matched.
    Pending,
    /// Confirmed and waiting for a dose.
    Active,
    /// Confirmed but does not want offers for now.
    Paused,
}

impl RegistrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrantStatus::Pending => "pending",
            RegistrantStatus::Active => "active",
            RegistrantStatus::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RegistrantStatus::Pending),
            "active" => Some(RegistrantStatus::Active),
            "paused" => Some(RegistrantStatus::Paused),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Double opt-in link; single use.
    Confirm,
    /// Self-service link carried by every mail.
    Manage,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Confirm => "confirm",
            TokenPurpose::Manage => "manage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirm" => Some(TokenPurpose::Confirm),
            "manage" => Some(TokenPurpose::Manage),
            _ => None,
        }
    }
}

/// The address as stored: AES-256-GCM ciphertext (nonce first) under `key_id`, plus the
/// HMAC blind index used for uniqueness and look-up. The plaintext never reaches a backend.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEmail {
    pub key_id: i32,
    pub ciphertext: Vec<u8>,
    pub index: Vec<u8>,
}

impl fmt::Debug for StoredEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredEmail {{ key_id: {}, .. }}", self.key_id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRegistrant {
    pub id: Uuid,
    pub email: StoredEmail,
    pub postcode: Postcode,
    pub radius_km: u16,
    pub language: Lang,
    pub created_at: DateTime<Utc>,
    /// When the first mail (the confirmation) went out: starts the resend throttle.
    pub last_mail_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registrant {
    pub id: Uuid,
    pub email: StoredEmail,
    pub postcode: Postcode,
    pub radius_km: u16,
    pub status: RegistrantStatus,
    pub language: Lang,
    /// The person's place in line.
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub last_mail_at: Option<DateTime<Utc>>,
    /// When a mail to the person was refused for good (`MatcherStore::outbox_dropped`); they
    /// were paused then. Cleared when they resume or confirm.
    pub undeliverable_at: Option<DateTime<Utc>>,
}

/// Tokens are stored only as the SHA-256 of the secret that was mailed.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub hash: Vec<u8>,
    pub registrant_id: Uuid,
    pub purpose: TokenPurpose,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub registrant_id: Uuid,
    pub purpose: TokenPurpose,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostcodeRow {
    pub postcode: String,
    pub lat: f64,
    pub lon: f64,
}

/// Aggregate counts for monitoring (`Store::operational_counts`).
///
/// People states: `booked` = holds a live booking (booked or checked in), whatever else;
/// otherwise `unconfirmed` (pending double opt-in), `paused`, or `waiting` (confirmed, active).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationalCounts {
    pub people_unconfirmed: u64,
    pub people_waiting: u64,
    pub people_paused: u64,
    pub people_booked: u64,
    /// Offers with status open.
    pub open_offers: u64,
    /// Mails in the outbox (not yet delivered).
    pub outbox_depth: u64,
    /// Creation time of the oldest mail in the outbox.
    pub outbox_oldest: Option<DateTime<Utc>>,
    /// Creation time of the oldest undelivered mail that is due (`next_attempt_at <= now`) or
    /// failed before (see `Store::outbox_oldest_due`).
    pub outbox_oldest_due: Option<DateTime<Utc>>,
}
