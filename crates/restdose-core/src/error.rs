use restdose_crypto::CryptoError;
use restdose_store::StoreError;

use crate::FieldError;

/// What a use case can answer besides success. The web layer maps each kind to a status once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that breaks a rule; each error names its field.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// A link that is unknown, expired, already used, or whose person is gone. Deliberately one
    /// kind: the answer must not tell which.
    #[error("invalid or expired link")]
    InvalidLink,
    /// Not logged in, or the credentials do not match (one answer for unknown account and
    /// wrong password).
    #[error("not authenticated")]
    Unauthenticated,
    /// The password was right but the login address is not verified yet; a new link was sent.
    #[error("e-mail address not verified")]
    EmailNotVerified,
    /// Logged in, but this role or state may not do this.
    #[error("forbidden")]
    Forbidden,
    /// No such thing, or not this principal's (deliberately the same answer).
    #[error("not found")]
    NotFound,
    /// The thing exists but its state does not allow this (e.g. the offer is closed).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Too many failed logins; try again after this many seconds.
    #[error("too many attempts")]
    Throttled { retry_after_secs: i64 },
    /// Too much to do at once right now (every password hash permit is taken); try again
    /// shortly.
    #[error("busy")]
    Busy,
    #[error("internal: {0}")]
    Internal(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}
