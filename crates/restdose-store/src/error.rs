use std::error::Error as StdError;

pub type StoreResult<T> = Result<T, StoreError>;

type Source = Box<dyn StdError + Send + Sync>;

/// Few kinds on purpose: callers decide on these, the cause goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict with an existing row")]
    Conflict,
    /// The database cannot take more work right now (pool exhausted, connection refused):
    /// worth a 503 and a retry.
    #[error("storage unavailable")]
    Unavailable(#[source] Source),
    #[error("storage failure")]
    Other(#[source] Source),
}

impl StoreError {
    pub fn other(e: impl Into<Source>) -> Self {
        StoreError::Other(e.into())
    }
    pub fn unavailable(e: impl Into<Source>) -> Self {
        StoreError::Unavailable(e.into())
    }
}
