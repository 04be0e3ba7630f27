//! Passwords: the length rules, and argon2id hashing with pinned parameters (m=19456 KiB, t=2,
//! p=1: OWASP's recommendation). Hashing takes ~50 ms of CPU, so it runs on the blocking pool,
//! never on the async threads.

use crate::{FieldError, ServiceError};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

/// A password moved to the blocking pool; never printed.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Checks the rules for a new password of the account with login `email`.
pub fn validate_new_password(
    password: &str,
    email: &str,
    field: &'static str,
) -> Result<(), FieldError> {
    let chars = password.chars().count();
    let code = if chars == 0 {
        "required"
    } else if chars < MIN_LEN {
        "password_too_short"
    } else if chars > MAX_LEN {
        "password_too_long"
    } else if password.trim().eq_ignore_ascii_case(email.trim()) {
        "password_is_email"
    } else {
        return Ok(());
    };
    Err(FieldError { field, code })
}

fn argon2() -> Result<Argon2<'static>, ServiceError> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of a new salted argon2id hash.
pub async fn hash(password: &str) -> Result<String, ServiceError> {
    let password = Secret(password.to_owned());
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        argon2()?
            .hash_password(password.0.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// Whether `password` matches `phc`. A malformed stored hash counts as no match.
pub async fn verify(password: &str, phc: &str) -> Result<bool, ServiceError> {
    let password = Secret(password.to_owned());
    let phc = phc.to_owned();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        Ok(argon2()?
            .verify_password(password.0.as_bytes(), phc.as_str())
            .is_ok())
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// Verifying against this when the account does not exist makes a wrong address take as long as
/// a wrong password, so timing does not reveal which addresses have accounts.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7pzuTjZl5Swb6Y5sYbnHFDCq0Ncjf8ucx3hSWNnclB0";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn length_and_email_rules() {
        assert_eq!(
            validate_new_password("", "a@b.de", "password")
                .unwrap_err()
                .code,
            "required"
        );
        assert_eq!(
            validate_new_password("short", "a@b.de", "password")
                .unwrap_err()
                .code,
            "password_too_short"
        );
        assert_eq!(
            validate_new_password(&"x".repeat(129), "a@b.de", "password")
                .unwrap_err()
                .code,
            "password_too_long"
        );
        assert_eq!(
            validate_new_password("praxis@example.de", "Praxis@Example.de", "password")
                .unwrap_err()
                .code,
            "password_is_email"
        );
        assert!(validate_new_password("correct horse battery", "a@b.de", "password").is_ok());
        assert!(
            validate_new_password(&"ä".repeat(12), "a@b.de", "password").is_ok(),
            "characters, not bytes"
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_with_the_pinned_parameters_and_verify() {
        let phc = hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc).await.unwrap());
        assert!(!verify("wrong horse battery", &phc).await.unwrap());
        assert!(!verify("x", "not a hash").await.unwrap());
        assert!(!verify("x", DUMMY_HASH).await.unwrap());
    }
}
