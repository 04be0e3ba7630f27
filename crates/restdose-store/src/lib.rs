//! restdose storage: the `Store` trait every backend implements, the rows it speaks in, its
//! errors, and (with the `conformance` feature, for tests only) the conformance suite both
//! backends must pass. No sqlx here: the web and core crates depend on this crate only, so they
//! cannot reach for SQL.
//!
//! Times and decisions are computed by the caller and passed in (`now`, cut-offs), so the
//! backends stay dumb and tests can move the clock.

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod lifecycle;
mod matcher;
mod model;
mod portal;
mod statistics;

pub use error::{StoreError, StoreResult};
pub use lifecycle::*;
pub use matcher::*;
pub use model::*;
pub use portal::*;
pub use statistics::*;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_domain::Postcode;
use uuid::Uuid;

#[async_trait]
pub trait Store:
    PortalStore + MatcherStore + LifecycleStore + StatisticsStore + Send + Sync + 'static
{
    /// "postgres" or "sqlite", for logs.
    fn backend(&self) -> &'static str;

    /// Applies the embedded migrations (forward only).
    async fn migrate(&self) -> StoreResult<()>;

    /// Cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// True when every migration embedded in this build is applied (same checksum) and none
    /// failed half-way; false when the database is behind (or ahead of, or differs from) the
    /// code. For `/readyz`.
    async fn migrations_current(&self) -> StoreResult<bool>;

    /// Counts for monitoring (`/metrics`): people by state, open offers, the outbox.
    /// Aggregates only, never personal data. `now` decides which outbox rows are due.
    async fn operational_counts(&self, now: DateTime<Utc>) -> StoreResult<OperationalCounts>;

    /// Creation time of the oldest undelivered mail that is due (`next_attempt_at <= now`) or
    /// has failed before (a mail in back-off is late, not "not yet due"): the cheap part of
    /// `operational_counts`.
    async fn outbox_oldest_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;

    // --- registrants -------------------------------------------------------------------------

    /// Inserts a person together with their first tokens, atomically.
    /// `StoreError::Conflict` when the blind index is taken (the address is registered).
    async fn insert_registrant(&self, new: &NewRegistrant, tokens: &[NewToken]) -> StoreResult<()>;

    async fn registrant(&self, id: Uuid) -> StoreResult<Option<Registrant>>;

    async fn registrant_by_email_index(&self, index: &[u8]) -> StoreResult<Option<Registrant>>;

    /// Marks that a mail goes to the person now, unless one went after `not_after_previous`
    /// (then returns false). Atomic, so two racing requests cannot both send.
    async fn reserve_mail_slot(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        previous_before: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives back a slot taken by `reserve_mail_slot` at `reserved_at` whose mail could not be
    /// sent, restoring `previous`; a no-op if another mail was recorded since.
    async fn release_mail_slot(
        &self,
        id: Uuid,
        reserved_at: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    async fn insert_tokens(&self, tokens: &[NewToken]) -> StoreResult<()>;

    /// Changes where a person lives and how far they travel. `NotFound` if gone.
    async fn update_preferences(
        &self,
        id: Uuid,
        postcode: &Postcode,
        radius_km: u16,
    ) -> StoreResult<()>;

    /// Pauses an active person or resumes a paused one; pending people are left alone.
    /// Resuming (`paused = false`) also clears `inactivity_warned_at` and `undeliverable_at`
    /// (they read their mail again). Returns the status after the call. `NotFound` if gone.
    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<RegistrantStatus>;

    /// Hard delete of the person and everything hanging off them. False if already gone.
    async fn delete_registrant(&self, id: Uuid) -> StoreResult<bool>;

    // --- tokens ------------------------------------------------------------------------------

    /// A token that exists, has this purpose and has not expired at `now`.
    async fn find_token(
        &self,
        hash: &[u8],
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<TokenRecord>>;

    /// Consumes a valid confirmation token and makes a pending person active, atomically.
    /// Returns the person's id, or None when the token is unknown, expired or already used.
    /// Confirming an already active person again is harmless. Either way the person's
    /// `undeliverable_at` is cleared (they evidently read mail sent to the address).
    async fn confirm_registrant(
        &self,
        confirm_token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    // --- expiry ------------------------------------------------------------------------------

    /// Deletes people still unconfirmed whose last confirmation mail went out before `cutoff`
    /// (their links have expired). Returns how many.
    async fn purge_unconfirmed(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes tokens that expired at or before `now`. Returns how many.
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // --- postcodes imported for other countries ----------------------------------------------

    /// Inserts or replaces postcode centroids; returns how many rows were written.
    async fn upsert_postcodes(&self, country: &str, entries: &[PostcodeRow]) -> StoreResult<u64>;

    async fn postcodes(&self, country: &str) -> StoreResult<Vec<PostcodeRow>>;
}
