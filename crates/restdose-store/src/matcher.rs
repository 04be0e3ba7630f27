//! Storage for the matcher and the mail outbox: waves of invitations, atomic claims, booking
//! links, expiry of unanswered invitations, and mails waiting to be sent. Part of `Store`.
//!
//! Concurrency contract (several matcher processes on one PostgreSQL; one process on SQLite):
//! - `lease_due_offer` hands an offer to one worker at a time (PostgreSQL: `FOR UPDATE SKIP
//!   LOCKED`); the lease ends when `record_wave`/`reschedule_offer` set the next time, or by
//!   itself at `lease_until` if the worker died.
//! - `record_wave` never gives a person a second open invitation (unique partial index; such
//!   rows are skipped together with their mail) and never invites anyone twice to one offer.
//! - `claim` never books more than `doses` (a conditional `UPDATE offers SET claimed = claimed
//!   + 1 WHERE claimed < doses`), and a person never holds two live bookings.
//! - `lease_outbox` hands each due mail to one worker until `lease_until`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_domain::Lang;
use restdose_domain::Postcode;
use std::fmt;
use uuid::Uuid;

use crate::{Offer, StoreResult, StoredEmail};

/// A mail as stored in the outbox: AES-256-GCM ciphertext of the serialised mail (recipient,
/// texts, links) under `key_id`, with the row id as associated data.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: Uuid,
    pub key_id: i32,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// The person the mail is about (or to): the mail goes when they are deleted.
    pub registrant_id: Option<Uuid>,
    /// The offer the mail concerns: the mail goes when the offer is deleted or purged.
    pub offer_id: Option<Uuid>,
}

impl fmt::Debug for OutboxRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRow")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The matcher's running totals of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferProgress {
    /// Bookings holding a dose (not cancelled).
    pub claimed: i32,
    pub invited: i32,
    pub waves: i32,
    pub next_wave_at: Option<DateTime<Utc>>,
    pub last_call_sent: bool,
}

/// Who may be invited to an offer. `postcodes` are those within the offer's radius, each with
/// its distance; a person qualifies when their own radius reaches that distance, they are
/// active, hold no open invitation and no live (booked or checked-in) booking, were not
/// invited to this offer before, were last invited at or before `invited_before` (or never),
/// and got fewer than `max_invitations_since` invitations created after `counted_since`.
#[derive(Debug, Clone)]
pub struct CandidateQuery {
    pub offer_id: Uuid,
    pub postcodes: Vec<(String, f32)>,
    pub invited_before: DateTime<Utc>,
    /// The daily cap: invitations created after `counted_since` (withdrawn ones included: each
    /// was a mail) must number fewer than `max_invitations_since`.
    pub counted_since: DateTime<Utc>,
    pub max_invitations_since: u32,
    pub limit: u32,
}

/// A person to invite, longest waiting first.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub registrant_id: Uuid,
    pub postcode: Postcode,
    pub distance_km: f32,
    pub created_at: DateTime<Utc>,
    pub language: Lang,
    pub email: StoredEmail,
}

#[derive(Clone, PartialEq)]
pub struct NewInvitation {
    pub id: Uuid,
    pub registrant_id: Uuid,
    pub token_hash: Vec<u8>,
    pub distance_km: f32,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for NewInvitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewInvitation")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One wave: invitations each with its mail, written atomically with the offer's totals.
#[derive(Debug, Clone)]
pub struct NewWave {
    pub offer_id: Uuid,
    /// The wave number this is (1-based); recorded only if the offer has `wave - 1` waves.
    pub wave: i32,
    pub last_call: bool,
    pub created_at: DateTime<Utc>,
    /// When the matcher should look at the offer again. If the wave invites nobody although
    /// it names people (a racing wave invited them elsewhere, or they left), the offer is due
    /// again at `created_at` instead: the next pick finds other people or none.
    pub next_wave_at: DateTime<Utc>,
    /// The offer's `claimed` the wave was sized for. If it is lower when the wave is recorded
    /// (a booking was cancelled meanwhile), the offer is due again at `created_at`: the freed
    /// dose must not wait for this wave's claim window.
    pub claimed_seen: i32,
    pub invitations: Vec<(NewInvitation, OutboxRow)>,
}

impl NewWave {
    /// For the stores: the offer's next time after `inserted` of the wave's invitations went
    /// in, when it differs from `next_wave_at` (see there; a freed dose is the stores' own
    /// check against `claimed_seen`).
    pub fn due_again_if(&self, inserted: u32) -> Option<DateTime<Utc>> {
        (inserted == 0 && !self.invitations.is_empty()).then_some(self.created_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Open,
    Claimed,
    Declined,
    Expired,
    /// Clicked "claim" after every dose was taken.
    Missed,
    /// Ended by the offer before the person answered (`answered_at` is when): every dose was
    /// taken, or the practice closed or cancelled the offer. No strike and no throttle.
    Withdrawn,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Open => "open",
            InvitationStatus::Claimed => "claimed",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Expired => "expired",
            InvitationStatus::Missed => "missed",
            InvitationStatus::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(InvitationStatus::Open),
            "claimed" => Some(InvitationStatus::Claimed),
            "declined" => Some(InvitationStatus::Declined),
            "expired" => Some(InvitationStatus::Expired),
            "missed" => Some(InvitationStatus::Missed),
            "withdrawn" => Some(InvitationStatus::Withdrawn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: Uuid,
    pub offer_id: Uuid,
    pub registrant_id: Uuid,
    pub wave: i32,
    pub last_call: bool,
    pub distance_km: f32,
    pub status: InvitationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
}

/// A claim as the core prepares it: the booking to create and its confirmation mail.
#[derive(Clone)]
pub struct NewClaim {
    pub invitation_token_hash: Vec<u8>,
    pub now: DateTime<Utc>,
    pub booking_id: Uuid,
    /// Crockford base32, 12 characters, no separators.
    pub code: String,
    pub booking_token_hash: Vec<u8>,
    pub confirmation: OutboxRow,
}

impl fmt::Debug for NewClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewClaim")
            .field("booking_id", &self.booking_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The dose is the person's; the booking and its mail are stored.
    Booked,
    /// Every dose was taken first; the invitation is now `Missed`.
    AllTaken,
    /// The invitation's time ran out (or the offer was closed, cancelled or is over).
    Expired,
    /// This invitation was answered before (claimed, declined or missed).
    AlreadyAnswered(InvitationStatus),
    /// The person holds another live booking.
    AlreadyBooked,
    Unknown,
}

/// Answers to invitations, for the overbooking estimate (see `MatcherStore::acceptance`):
/// `answered` counts the invitations whose outcome within the quick share of their claim window
/// is known, `accepted` those of them with a yes in that time. An invitation withdrawn or still
/// open before that time passed is in neither: its answer is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    pub answered: u64,
    pub accepted: u64,
}

/// The answers the overbooking estimate learns from: the area's recent ones (this offer's
/// included) and this offer's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acceptance {
    pub area: AnswerCounts,
    pub offer: AnswerCounts,
}

/// What a practice's cancellation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferCancellation {
    /// Cancelled; these people held a booking, each now has their mail in the outbox.
    Cancelled { told: Vec<Uuid> },
    /// The offer was not open; nothing changed.
    NotOpen,
    /// Someone booked after the mails were prepared (they have none); nothing changed, prepare
    /// again.
    HoldersChanged,
}

/// For the stores' `cancel_offer`: each cancelled holder's mail (the row whose `registrant_id`
/// is theirs), or None when a holder has none. Holders whose account is gone (None) need no mail.
pub fn mails_for_holders(holders: &[Option<Uuid>], mails: &[OutboxRow]) -> Option<Vec<OutboxRow>> {
    holders
        .iter()
        .flatten()
        .map(|holder| {
            mails
                .iter()
                .find(|m| m.registrant_id == Some(*holder))
                .cloned()
        })
        .collect()
}

/// An invitation that ran out, with the person's count of unanswered ones in a row after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredInvitation {
    pub invitation_id: Uuid,
    pub registrant_id: Uuid,
    pub offer_id: Uuid,
    pub unanswered_in_a_row: i32,
}

/// A booking seen through its link (the person's view).
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRecord {
    pub id: Uuid,
    pub offer_id: Uuid,
    pub registrant_id: Option<Uuid>,
    pub code: String,
    pub status: crate::BookingStatus,
    pub created_at: DateTime<Utc>,
}

/// Most ids one statement of `MatcherStore::outbox_delivered_many` deletes (bound parameters
/// stay far below either database's limit).
pub const OUTBOX_ACK_CHUNK: usize = 500;

#[async_trait]
pub trait MatcherStore: Send + Sync {
    // --- waves -------------------------------------------------------------------------------

    /// Takes one open offer whose next wave is due (`next_wave_at` NULL or ≤ now), whose
    /// window has not ended (`ends_at > now`) and whose practice is approved, oldest due first,
    /// and sets its `next_wave_at` to `lease_until` so no other worker takes it meanwhile.
    async fn lease_due_offer(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<Offer>>;

    async fn offer_progress(&self, offer_id: Uuid) -> StoreResult<Option<OfferProgress>>;

    /// Candidates per the query's rules, ordered by `created_at` (place in line), at most
    /// `limit`.
    async fn candidates(&self, query: &CandidateQuery) -> StoreResult<Vec<Candidate>>;

    /// Writes a wave atomically: each invitation with its outbox mail (skipping, with its
    /// mail, any whose person meanwhile got another open invitation or was invited to this
    /// offer before), the invited people's `last_invited_at = created_at`, and the offer's
    /// `waves = wave`, `invited += inserted`, `next_wave_at`, `last_call_sent |= last_call`.
    /// Returns how many invitations were written; 0 and nothing written when the offer is no
    /// longer open or already has `wave` waves.
    async fn record_wave(&self, wave: &NewWave) -> StoreResult<u32>;

    /// Sets when the matcher looks at the offer next (None: never again, e.g. it is over).
    async fn reschedule_offer(
        &self,
        offer_id: Uuid,
        next_wave_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    /// Parks a full offer (no next wave) only if it is still full: true when parked. False when
    /// a dose came back since the caller looked (a cancellation), so it is not lost; the offer
    /// then keeps the time the cancellation gave it.
    async fn park_full_offer(&self, offer_id: Uuid) -> StoreResult<bool>;

    /// Invitations of the offer still awaiting an answer at `now` (open, unexpired) that were
    /// created after `created_after`, and the earliest creation time among them.
    async fn awaiting_answers(
        &self,
        offer_id: Uuid,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> StoreResult<(u32, Option<DateTime<Utc>>)>;

    /// Answers within T = `quick` × the offer's claim window (0 < quick ≤ 1) to invitations
    /// created since `since` in offers at postcodes starting with `area`, and to all invitations
    /// of `offer_id` (see `AnswerCounts`): `accepted` counts a yes (claimed, or clicked too late)
    /// within T of the invitation; `answered` counts every invitation whose outcome by T is
    /// known at `now` — a yes within T, a decline, an expiry, or no yes for longer than T
    /// (answered late, withdrawn after T, or still open after T). An invitation withdrawn (the
    /// offer filled) or still open before T passed tells nothing and counts as neither.
    async fn acceptance(
        &self,
        area: &str,
        since: DateTime<Utc>,
        offer_id: Uuid,
        quick: f64,
        now: DateTime<Utc>,
    ) -> StoreResult<Acceptance>;

    // --- answers -----------------------------------------------------------------------------

    async fn invitation_by_token(&self, hash: &[u8]) -> StoreResult<Option<Invitation>>;

    /// Claims a dose, atomically (see the module contract). `AllTaken` marks the invitation
    /// `Missed` and resets the person's unanswered count. On `Booked` also: the invitation
    /// becomes `Claimed` (answered_at = now), the person's `unanswered_in_a_row` resets to 0,
    /// and the confirmation mail is in the outbox; when that was the last dose, the offer's
    /// other open invitations become `Withdrawn` and their people's throttle is lifted
    /// (`last_invited_at` cleared), in the same transaction. A withdrawn invitation answers
    /// `AllTaken` while its offer runs (and becomes `Missed`: the person wanted the dose),
    /// `Expired` after. An offer runs while it is open, before its end, and its practice is
    /// approved: a claim on a suspended practice's offer is `Expired`.
    async fn claim(&self, claim: &NewClaim) -> StoreResult<ClaimOutcome>;

    /// The cheap answer to a claim on a full offer: when the invitation is open or withdrawn
    /// and unexpired, its offer running with every dose claimed and the person holds no live
    /// booking, the invitation becomes `Missed` (answered_at = now), the person's
    /// `unanswered_in_a_row` resets to 0 (any answer shows they read their mail) and the result
    /// is true — what `claim` would have answered `AllTaken`. Otherwise nothing
    /// changes and the result is false (the caller then runs the full `claim`).
    async fn claim_all_taken(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool>;

    /// Declines an open, unexpired invitation (resets the person's unanswered count) and makes
    /// its offer due at once if it is open with doses left (the matcher asks someone in the
    /// decliner's place instead of waiting for the wave's window to end); false otherwise.
    async fn decline(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool>;

    /// Marks open invitations with `expires_at ≤ now` as expired (at most `limit`), adds one to
    /// each person's `unanswered_in_a_row`, and returns them.
    async fn expire_invitations(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ExpiredInvitation>>;

    /// Pauses an active person after unanswered invitations and stores the mail telling them,
    /// atomically; false (and no mail) when they are not active any more.
    async fn pause_for_silence(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
        mail: &OutboxRow,
    ) -> StoreResult<bool>;

    /// The practice calls the offer off, atomically: the offer becomes `Cancelled`, every
    /// `Booked` booking `Cancelled`, open invitations `Withdrawn` (throttle lifted), and each
    /// cancelled holder's mail — the row in `holder_mails` whose `registrant_id` is theirs —
    /// goes into the outbox. Rows for people who hold no booking any more are dropped; a
    /// holder without a row means nothing is written (`HoldersChanged`).
    async fn cancel_offer(
        &self,
        offer_id: Uuid,
        now: DateTime<Utc>,
        holder_mails: &[OutboxRow],
    ) -> StoreResult<OfferCancellation>;

    // --- bookings through their link ---------------------------------------------------------

    async fn booking_by_token(&self, hash: &[u8]) -> StoreResult<Option<BookingRecord>>;

    /// The person cancels: a `Booked` booking becomes `Cancelled`, the offer's `claimed` drops
    /// by one and its `next_wave_at` becomes `now` (the dose goes straight back to the
    /// matcher), atomically. Returns the offer id, or None when there was nothing to cancel.
    async fn cancel_booking(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Uuid>>;

    // --- outbox ------------------------------------------------------------------------------

    /// `Store::insert_registrant` plus mails, in the same transaction (the sign-up and its
    /// confirmation mail are stored together or not at all).
    async fn insert_registrant_with_mails(
        &self,
        new: &crate::NewRegistrant,
        tokens: &[crate::NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()>;

    /// `Store::insert_tokens` plus mails, in the same transaction.
    async fn insert_tokens_with_mails(
        &self,
        tokens: &[crate::NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()>;

    /// Stores mails that are not tied to another write.
    async fn enqueue_mails(&self, rows: &[OutboxRow]) -> StoreResult<()>;

    /// Due mails (`next_attempt_at ≤ now`, not leased or lease expired), oldest first, at most
    /// `limit`, leased to the caller until `lease_until`.
    async fn lease_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>>;

    /// Sent: the row is deleted.
    async fn outbox_delivered(&self, id: Uuid) -> StoreResult<()>;

    /// Sent, many at once: the rows with these ids are deleted, in one statement per
    /// `OUTBOX_ACK_CHUNK` ids. Ids without a row (already deleted) are ignored; an empty list
    /// does nothing.
    async fn outbox_delivered_many(&self, ids: &[Uuid]) -> StoreResult<()>;

    /// Not sent: `attempts += 1`, next try at `next_attempt_at`, lease released, error kept
    /// (a short description without personal data).
    async fn outbox_failed(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()>;

    /// Gives up on a mail, in one transaction: the row is deleted, and when `undeliverable`
    /// names a person (the server refused their address for good), their `undeliverable_at`
    /// becomes `now` and, if they are active, they are paused (`paused_at = now`) so that no
    /// waiting-list query finds them. A pending or already paused person is only marked; a
    /// person who is gone, or a row that is gone, is no error.
    async fn outbox_dropped(
        &self,
        id: Uuid,
        undeliverable: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Mails waiting, and the creation time of the oldest.
    async fn outbox_depth(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)>;
}
