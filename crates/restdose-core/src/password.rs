//! Passwords: the length rules, and argon2id hashing with pinned parameters (m=19456 KiB, t=2,
//! p=1: OWASP's recommendation). Hashing takes ~50 ms of CPU, so it runs on the blocking pool,
//! never on the async threads.
//!
//! Each hash also takes 19 MiB of memory, so the service hashes through [`PasswordHashing`]:
//! at most `limit` hashes run at once (one per core by default), and a hash that finds no free
//! permit waits for one at most `wait`, then the request is answered [`ServiceError::Busy`]
//! (503 with `Retry-After`). Memory for hashing is thus bounded by `limit` × 19 MiB, however
//! many logins arrive at once.

use crate::{FieldError, ServiceError};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The bounded door to the blocking pool for every hash and verification of the service. Clones
/// share one set of permits.
#[derive(Clone)]
pub struct PasswordHashing {
    gate: Arc<Gate>,
}

struct Gate {
    permits: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("limit", &self.gate.limit)
            .field("wait", &self.gate.wait)
            .finish_non_exhaustive()
    }
}

/// Counts a running hash; uncounted when dropped (also when the hash panics).
struct Running<'a>(&'a Gate);

impl<'a> Running<'a> {
    fn start(gate: &'a Gate) -> Running<'a> {
        let now = gate.running.fetch_add(1, Ordering::AcqRel) + 1;
        gate.most_at_once.fetch_max(now, Ordering::AcqRel);
        Running(gate)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHashing {
    /// At most `concurrency` hashes at once (0: one per available core); a hash waits at most
    /// `wait` for its turn.
    pub fn new(concurrency: usize, wait: Duration) -> PasswordHashing {
        let limit = match concurrency {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        };
        PasswordHashing {
            gate: Arc::new(Gate {
                permits: Arc::new(Semaphore::new(limit)),
                limit,
                wait,
                running: AtomicUsize::new(0),
                most_at_once: AtomicUsize::new(0),
            }),
        }
    }

    /// How many hashes may run at once.
    pub fn limit(&self) -> usize {
        self.gate.limit
    }

    /// The most hashes that ever ran at once (never more than `limit`).
    pub fn most_at_once(&self) -> usize {
        self.gate.most_at_once.load(Ordering::Acquire)
    }

    /// The PHC string of a new salted argon2id hash.
    pub async fn hash(&self, password: &str) -> Result<String, ServiceError> {
        let password = Secret(password.to_owned());
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches `phc`. A malformed stored hash counts as no match.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, ServiceError> {
        let password = Secret(password.to_owned());
        let phc = phc.to_owned();
        self.run(move || verify_now(&password, &phc)).await
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        let permits = &self.gate.permits;
        if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(self.gate.wait, Arc::clone(permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or (never: the semaphore is not closed) closed.
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("restdose_password_hash_busy_total").increment(1);
                Err(ServiceError::Busy)
            }
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let permit = self.permit().await?;
        let gate = Arc::clone(&self.gate);
        let span = tracing::Span::current();
        // The permit goes with the job: when the request is dropped (the client left), the hash
        // still runs to its end on the blocking pool, and its memory is still taken until then.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::start(&gate);
            let _entered = span.enter();
            job()
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }
}

fn hash_now(password: &Secret) -> Result<String, ServiceError> {
    argon2()?
        .hash_password(password.0.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

fn verify_now(password: &Secret, phc: &str) -> Result<bool, ServiceError> {
    Ok(argon2()?
        .verify_password(password.0.as_bytes(), phc)
        .is_ok())
}

/// The PHC string of a new salted argon2id hash, outside any bound: for tools that seed
/// accounts (tests, benchmarks). The service hashes through [`PasswordHashing`].
pub async fn hash(password: &str) -> Result<String, ServiceError> {
    let password = Secret(password.to_owned());
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        hash_now(&password)
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
        let hashing = PasswordHashing::new(0, Duration::from_secs(60));
        assert!(hashing.limit() >= 1);
        for phc in [
            hashing.hash("correct horse battery").await.unwrap(),
            hash("correct horse battery").await.unwrap(),
        ] {
            assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
            assert!(hashing.verify("correct horse battery", &phc).await.unwrap());
            assert!(!hashing.verify("wrong horse battery", &phc).await.unwrap());
        }
        assert!(!hashing.verify("x", "not a hash").await.unwrap());
        assert!(!hashing.verify("x", DUMMY_HASH).await.unwrap());
    }

    /// Many verifications at once: never more hashes running than permits, and with a generous
    /// wait every one of them is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_permits() {
        let hashing = PasswordHashing::new(2, Duration::from_secs(600));
        let phc = hash("correct horse battery").await.unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let hashing = hashing.clone();
                let phc = phc.clone();
                tokio::spawn(async move { hashing.verify("correct horse battery", &phc).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap());
        }
        assert_eq!(hashing.limit(), 2);
        assert!(
            (1..=2).contains(&hashing.most_at_once()),
            "{} hashes ran at once",
            hashing.most_at_once()
        );
    }

    /// With every permit taken and no time to wait, a hash is refused as `Busy` at once; it runs
    /// again as soon as a permit is free.
    #[tokio::test]
    async fn a_hash_without_a_permit_is_busy() {
        let hashing = PasswordHashing::new(1, Duration::ZERO);
        let held = hashing.permit().await.unwrap();
        assert!(matches!(
            hashing.verify("x", DUMMY_HASH).await,
            Err(ServiceError::Busy)
        ));
        assert!(matches!(
            hashing.hash("correct horse battery").await,
            Err(ServiceError::Busy)
        ));
        assert_eq!(hashing.most_at_once(), 0, "nothing ran");
        drop(held);
        assert!(!hashing.verify("x", DUMMY_HASH).await.unwrap());
        assert_eq!(hashing.most_at_once(), 1);
    }

    /// A request that goes away while its hash runs does not give the permit back early: the
    /// hash (and its memory) still runs until it ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_keeps_its_permit_until_its_hash_ends() {
        let hashing = PasswordHashing::new(1, Duration::ZERO);
        let first = {
            let hashing = hashing.clone();
            tokio::spawn(async move { hashing.verify("x", DUMMY_HASH).await })
        };
        // Until the hash started, its permit is taken.
        while hashing.most_at_once() == 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        assert!(matches!(
            hashing.verify("x", DUMMY_HASH).await,
            Err(ServiceError::Busy)
        ));
    }
}
