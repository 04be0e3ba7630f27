//! Storage for the data lifecycle: the purge 24 hours after an appointment (keeping only
//! anonymous daily counters), expiry of sessions and account links, the inactivity purge of
//! long-paused people, and key rotation. Part of `Store`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::{OutboxRow, Registrant, StoreResult};

/// The anonymous counters kept per day and 2-digit postcode area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Confirmed sign-ups.
    Signups,
    Offers,
    DosesOffered,
    /// Doses of bookings that were not cancelled and not marked no-show.
    DosesPlaced,
    /// Offered minus placed.
    DosesUnused,
    Invitations,
    /// Bookings made (whatever became of them).
    Claims,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Signups,
        Metric::Offers,
        Metric::DosesOffered,
        Metric::DosesPlaced,
        Metric::DosesUnused,
        Metric::Invitations,
        Metric::Claims,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Signups => "signups",
            Metric::Offers => "offers",
            Metric::DosesOffered => "doses_offered",
            Metric::DosesPlaced => "doses_placed",
            Metric::DosesUnused => "doses_unused",
            Metric::Invitations => "invitations",
            Metric::Claims => "claims",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub day: NaiveDate,
    /// First two characters of the postcode.
    pub area: String,
    pub metric: Metric,
    pub value: i64,
}

/// What one offer's purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgedOffer {
    pub offer_id: Uuid,
    /// People who held a booking of it (booked, checked in or no-show) — deleted with it.
    pub people_deleted: u64,
}

/// What a purge would delete now (for `restdose purge --dry-run`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgePreview {
    pub finished_offers: u64,
    pub people_of_finished_offers: u64,
    pub unconfirmed: u64,
    pub expired_links: u64,
    pub expired_sessions: u64,
    pub inactive_paused: u64,
}

/// A ciphertext to re-encrypt under the current key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    pub id: Uuid,
    pub key_id: i32,
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ciphertext")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The tables holding ciphertexts (each bound to its row id as associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedColumn {
    /// `registrants.email_ciphertext` under `email_key_id`.
    RegistrantEmail,
    /// `outbox.payload` under `key_id`.
    OutboxPayload,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Purges up to `limit` offers whose window ended before `ended_before`, each in its own
    /// transaction: adds the offer's counters to `daily_stats` (day = the UTC date of
    /// `starts_at`, area = first two characters of the offer's postcode; offers, doses_offered,
    /// doses_placed, doses_unused, invitations, claims — adding to existing rows), deletes the
    /// registrants holding a booking of it with status booked, checked_in or no_show (their
    /// tokens, invitations and outbox rows go by cascade), then deletes the offer (its
    /// invitations, bookings and outbox rows go by cascade).
    async fn purge_finished_offers(
        &self,
        ended_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PurgedOffer>>;

    /// Adds `by` to a counter (creating it).
    async fn bump_stat(
        &self,
        day: NaiveDate,
        area: &str,
        metric: Metric,
        by: i64,
    ) -> StoreResult<()>;

    /// Counters with `from <= day <= to`, ordered by day, area, metric.
    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<StatRow>>;

    /// Deletes sessions with `expires_at <= now`; returns how many.
    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes account links (verification, reset) with `expires_at <= now`; returns how many.
    async fn purge_expired_account_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes login-throttle rows whose last failure is before `before` and that are not
    /// locked at `before`; returns how many.
    async fn purge_old_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes rate counters whose window started before `before`; returns how many.
    async fn purge_rate_counters(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Paused people with `paused_at < paused_before` not warned yet, at most `limit`.
    async fn paused_to_warn(
        &self,
        paused_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Registrant>>;

    /// Records the warning (`inactivity_warned_at = now`) and stores its mail, atomically;
    /// false when the person is no longer paused.
    async fn mark_inactivity_warned(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
        mail: &OutboxRow,
    ) -> StoreResult<bool>;

    /// Deletes people still paused whose warning is older than `warned_before`; returns how many.
    async fn purge_inactive_paused(&self, warned_before: DateTime<Utc>) -> StoreResult<u64>;

    /// Counts what a purge with these cut-offs would delete, deleting nothing.
    async fn purge_preview(
        &self,
        offers_ended_before: DateTime<Utc>,
        unconfirmed_before: DateTime<Utc>,
        now: DateTime<Utc>,
        warned_before: DateTime<Utc>,
    ) -> StoreResult<PurgePreview>;

    // --- key rotation ------------------------------------------------------------------------

    /// Up to `limit` ciphertexts of `column` not under `key_id`, by row id (stable order, so a
    /// rotation walks the table once).
    async fn ciphertexts_not_under(
        &self,
        column: EncryptedColumn,
        key_id: i32,
        limit: u32,
    ) -> StoreResult<Vec<Ciphertext>>;

    /// Replaces a ciphertext if the row still holds `old` (compare-and-swap, so a concurrent
    /// write is never overwritten); false otherwise.
    async fn replace_ciphertext(
        &self,
        column: EncryptedColumn,
        old: &Ciphertext,
        new_key_id: i32,
        new_blob: &[u8],
    ) -> StoreResult<bool>;

    /// How many ciphertexts of `column` are under each key id.
    async fn ciphertexts_by_key(&self, column: EncryptedColumn) -> StoreResult<Vec<(i32, u64)>>;
}
