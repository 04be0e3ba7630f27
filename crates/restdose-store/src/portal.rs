//! Storage for the practice portal: accounts, sessions, login throttling, account links, API
//! tokens, offers and bookings. Part of `Store` (a supertrait), split out to keep files small.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_domain::Lang;
use restdose_domain::Postcode;
use std::fmt;
use uuid::Uuid;

use crate::StoreResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Practice,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Practice => "practice",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "practice" => Some(Role::Practice),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PracticeStatus {
    /// Signed up; waits for an admin.
    Pending,
    Approved,
    Rejected,
    Suspended,
}

impl PracticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PracticeStatus::Pending => "pending",
            PracticeStatus::Approved => "approved",
            PracticeStatus::Rejected => "rejected",
            PracticeStatus::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<PracticeStatus> {
        match s {
            "pending" => Some(PracticeStatus::Pending),
            "approved" => Some(PracticeStatus::Approved),
            "rejected" => Some(PracticeStatus::Rejected),
            "suspended" => Some(PracticeStatus::Suspended),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub id: Uuid,
    pub role: Role,
    /// Lower-cased login address.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// Admins created on the command line count as verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// The language of the mails sent to the account without a request to read
    /// it from (an admin's decision, a new verification link at login).
    pub language: Lang,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub role: Role,
    pub email: String,
    pub password_hash: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    /// The language of mails sent to the account (see `NewAccount::language`).
    pub language: Lang,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPractice {
    pub account_id: Uuid,
    pub name: String,
    pub street: String,
    pub postcode: Postcode,
    pub city: String,
    pub phone: String,
    pub created_at: DateTime<Utc>,
}

/// A practice with its login address and verification state (for admins and the portal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    pub id: Uuid,
    pub name: String,
    pub street: String,
    pub postcode: Postcode,
    pub city: String,
    pub phone: String,
    pub status: PracticeStatus,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The account's language (see `NewAccount::language`).
    pub language: Lang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl AccountTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountTokenPurpose::VerifyEmail => "verify_email",
            AccountTokenPurpose::ResetPassword => "reset_password",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewAccountToken {
    pub hash: Vec<u8>,
    pub account_id: Uuid,
    pub purpose: AccountTokenPurpose,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for NewAccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccountToken")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    pub account_id: Uuid,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub account_id: Uuid,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: i32,
    pub last_failure_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub id: Uuid,
    pub practice_id: Uuid,
    pub name: String,
    pub hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the token list shows (never the secret or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferStatus {
    Open,
    /// Closed early by the practice or filled; bookings stay valid.
    Closed,
    /// Called off; every booking is cancelled.
    Cancelled,
}

impl OfferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Open => "open",
            OfferStatus::Closed => "closed",
            OfferStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<OfferStatus> {
        match s {
            "open" => Some(OfferStatus::Open),
            "closed" => Some(OfferStatus::Closed),
            "cancelled" => Some(OfferStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOffer {
    pub id: Uuid,
    pub practice_id: Uuid,
    pub vaccine: String,
    pub doses: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub claim_minutes: i32,
    pub radius_km: u16,
    pub note: String,
    pub postcode: Postcode,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: Uuid,
    pub practice_id: Uuid,
    pub vaccine: String,
    pub doses: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub claim_minutes: i32,
    pub radius_km: u16,
    pub note: String,
    pub postcode: Postcode,
    pub status: OfferStatus,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    Booked,
    CheckedIn,
    NoShow,
    Cancelled,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::NoShow => "no_show",
            BookingStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<BookingStatus> {
        match s {
            "booked" => Some(BookingStatus::Booked),
            "checked_in" => Some(BookingStatus::CheckedIn),
            "no_show" => Some(BookingStatus::NoShow),
            "cancelled" => Some(BookingStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    pub id: Uuid,
    pub offer_id: Uuid,
    pub registrant_id: Option<Uuid>,
    /// 12 characters, Crockford base32, stored without separators.
    pub code: String,
    pub created_at: DateTime<Utc>,
}

/// A booking as a practice may see it: the code, never the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: Uuid,
    pub offer_id: Uuid,
    pub code: String,
    pub status: BookingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInOutcome {
    CheckedIn,
    /// Already checked in, marked no-show or cancelled.
    AlreadyUsed,
    /// No such code on this offer.
    Unknown,
}

#[async_trait]
pub trait PortalStore: Send + Sync {
    // --- accounts ----------------------------------------------------------------------------

    /// Creates a practice account, its practice row (status pending) and its e-mail
    /// verification link, atomically. `Conflict` when the address is taken.
    async fn insert_practice(
        &self,
        account: &NewAccount,
        practice: &NewPractice,
        verification: &NewAccountToken,
    ) -> StoreResult<()>;

    /// Creates an admin account. `Conflict` when the address is taken.
    async fn insert_admin(&self, account: &NewAccount) -> StoreResult<()>;

    async fn account(&self, id: Uuid) -> StoreResult<Option<Account>>;

    /// By lower-cased address.
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>>;

    async fn practice(&self, id: Uuid) -> StoreResult<Option<Practice>>;

    /// All practices, or those with `status`, oldest first.
    async fn practices(&self, status: Option<PracticeStatus>) -> StoreResult<Vec<Practice>>;

    /// `NotFound` when there is no such practice.
    async fn set_practice_status(
        &self,
        id: Uuid,
        status: PracticeStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn insert_account_token(&self, token: &NewAccountToken) -> StoreResult<()>;

    /// The account of a valid account link, without consuming it.
    async fn peek_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Deletes an account and everything hanging off it (practice, offers, tokens, sessions).
    async fn delete_account(&self, id: Uuid) -> StoreResult<bool>;

    /// Consumes a valid (unexpired, matching purpose) account link; returns its account.
    /// Every other link of the same purpose of that account ends with it, and for `VerifyEmail`
    /// it also sets `email_verified_at` (first time only), atomically.
    async fn take_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Sets a new password hash and ends every session and every account link (verification
    /// and reset) of the account, atomically.
    /// `NotFound` when there is no such account.
    async fn set_password(
        &self,
        account_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    // --- sessions ----------------------------------------------------------------------------

    async fn insert_session(&self, session: &NewSession) -> StoreResult<()>;

    /// A session whose `expires_at` is after `now`.
    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>>;

    /// Records activity: `last_seen_at = now`, `expires_at = expires_at`.
    async fn touch_session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()>;

    // --- login throttling --------------------------------------------------------------------

    async fn throttle_state(&self, key: &str) -> StoreResult<Option<ThrottleState>>;

    /// Counts one more failure (creating the row) and returns the new state.
    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ThrottleState>;

    async fn lock_login(&self, key: &str, until: DateTime<Utc>) -> StoreResult<()>;

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;

    // --- abuse limits ------------------------------------------------------------------------

    /// Counts one hit on the fixed-window counter `(key, window_start)` (creating it) and
    /// returns its hits including this one. One atomic statement: concurrent hits from any
    /// number of processes are all counted.
    async fn count_hit(&self, key: &[u8], window_start: DateTime<Utc>) -> StoreResult<i64>;

    // --- API tokens --------------------------------------------------------------------------

    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()>;

    /// Newest first, revoked ones included.
    async fn api_tokens(&self, practice_id: Uuid) -> StoreResult<Vec<ApiTokenInfo>>;

    /// False when the token does not exist, belongs to another practice or is revoked already.
    async fn revoke_api_token(
        &self,
        practice_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// The practice behind a live (unrevoked) token; records `last_used_at = now`.
    async fn practice_for_api_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    // --- offers and bookings -----------------------------------------------------------------

    async fn insert_offer(&self, offer: &NewOffer) -> StoreResult<()>;

    async fn offer(&self, id: Uuid) -> StoreResult<Option<Offer>>;

    /// A practice's offers, newest first.
    async fn offers_of(&self, practice_id: Uuid) -> StoreResult<Vec<Offer>>;

    /// Moves an open offer to `Closed` or `Cancelled`, setting `closed_at`; false when it was not
    /// open. Cancelling also cancels every live booking, atomically.
    async fn finish_offer(
        &self,
        id: Uuid,
        status: OfferStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Adds doses to an open offer; returns the new total, or None when the offer is not open.
    async fn add_doses(&self, id: Uuid, more: i32) -> StoreResult<Option<i32>>;

    async fn insert_booking(&self, booking: &NewBooking) -> StoreResult<()>;

    /// Every booking of an offer, oldest first.
    async fn bookings_of(&self, offer_id: Uuid) -> StoreResult<Vec<Booking>>;

    /// The registrants holding bookings of `offer_id` with `status` (for mails).
    async fn booked_registrants(
        &self,
        offer_id: Uuid,
        status: BookingStatus,
    ) -> StoreResult<Vec<Uuid>>;

    /// Checks a code in, atomically: only a `Booked` booking of this offer becomes `CheckedIn`.
    async fn check_in(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<CheckInOutcome>;

    /// Marks a `Booked` booking of this offer as no-show; false otherwise.
    async fn mark_no_show(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}
