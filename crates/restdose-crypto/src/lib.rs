//! restdose crypto: encryption of addresses at rest (AES-256-GCM under versioned keys), the
//! HMAC-SHA256 blind index used to find an address without decrypting, and the random tokens
//! mailed in links (only their SHA-256 is stored). No I/O except reading the OS CSPRNG.

mod keyring;
mod token;

pub use keyring::{KeyFileError, Keyring};
pub use token::{SecretToken, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("no key with id {0} in the keyring")]
    UnknownKey(i32),
    #[error("ciphertext is malformed or was not made for this row")]
    Decrypt,
}

/// 64 random bits from the OS CSPRNG (booking codes take 60 of them).
pub fn random_u64() -> Result<u64, CryptoError> {
    let mut buf = [0u8; 8];
    random_bytes(&mut buf)?;
    Ok(u64::from_le_bytes(buf))
}

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|_| CryptoError::Random)
}
