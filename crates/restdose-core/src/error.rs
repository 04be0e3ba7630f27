use restdose_crypto::CryptoError;
use restdose_mail::MailError;
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
    /// The mail could not be handed to the mail server; nothing was kept, try again.
    #[error("mail delivery unavailable")]
    MailUnavailable(#[source] MailError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}
