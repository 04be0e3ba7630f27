//! Passwords: the length rules, and argon2id hashing with pinned parameters (m=19456 KiB, t=2,
//! p=1: OWASP's recommendation). Hashing takes ~50 ms of CPU, so it runs on the blocking pool,
//! never on the async threads.
//!
//! Each hash also takes 19 MiB of memory, so the service hashes through [`PasswordHashing`]:
//! at most `limit` hashes run at once (one per core by default), and a hash that finds no free
//! permit waits for one at most `wait`, then the request is answered [`ServiceError::Busy`]
//! (503 with `Retry-After`). Memory for hashing is thus bounded by `limit` × 19 MiB, however
//! many logins arrive at once. The working memory of those hashes is allocated once per permit
//! and reused (`Memories`): freed and allocated anew for every hash, 19 MiB blocks stay behind
//! in glibc's heap and in the per-thread arenas of the blocking pool, and the process grows far
//! beyond `limit` × 19 MiB (docs/performance.md, "Password storm").

use crate::{FieldError, ServiceError};
use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// The pinned memory cost in KiB (= blocks of 1 KiB).
const M_COST: u32 = 19_456;

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

fn params() -> Result<Params, ServiceError> {
    Params::new(M_COST, 2, 1, None).map_err(internal)
}

fn argon2() -> Result<Argon2<'static>, ServiceError> {
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params()?))
}

/// Working memories of finished hashes, for the next ones: never more than the permits, since
/// each running hash holds one.
#[derive(Default)]
struct Memories(Mutex<Vec<Vec<Block>>>);

impl Memories {
    fn take(&self) -> Vec<Block> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| vec![Block::new(); M_COST as usize])
    }

    fn give_back(&self, memory: Vec<Block>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(memory);
    }
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
    memories: Memories,
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
                memories: Memories::default(),
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
        self.run(move |memory| hash_in(&password, memory)).await
    }

    /// Whether `password` matches `phc`. A malformed stored hash counts as no match.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, ServiceError> {
        let password = Secret(password.to_owned());
        let phc = phc.to_owned();
        self.run(move |memory| verify_in(&password, &phc, memory))
            .await
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
        job: impl FnOnce(&mut [Block]) -> Result<T, ServiceError> + Send + 'static,
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
            let mut memory = gate.memories.take();
            let result = job(&mut memory);
            gate.memories.give_back(memory);
            result
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }
}

/// A new salted hash, computed in `memory` (the pinned parameters' size).
fn hash_in(password: &Secret, memory: &mut [Block]) -> Result<String, ServiceError> {
    let params = params()?;
    let salt = argon2::password_hash::try_generate_salt().map_err(internal)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.0.as_bytes(), &salt, &mut out, memory)
        .map_err(internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(internal)?,
        salt: Some(Salt::new(&salt).map_err(internal)?),
        hash: Some(Output::new(&out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches `phc`, computed in `memory` when the stored hash has the pinned
/// memory cost (else in memory of its own). A malformed stored hash counts as no match.
fn verify_in(password: &Secret, phc: &str, memory: &mut [Block]) -> Result<bool, ServiceError> {
    let Ok(stored) = PasswordHash::new(phc) else {
        return Ok(false);
    };
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Ok(false);
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(stored.algorithm.as_str()),
        stored
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(&stored),
    ) else {
        return Ok(false);
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = if params.block_count() == memory.len() {
        argon2.hash_password_into_with_memory(password.0.as_bytes(), salt, &mut out, memory)
    } else {
        argon2.hash_password_into(password.0.as_bytes(), salt, &mut out)
    };
    // `Output` compares in constant time.
    Ok(computed.is_ok() && Output::new(&out).is_ok_and(|out| out == *expected))
}

/// A new salted hash by the argon2 crate alone (memory of its own).
fn hash_now(password: &Secret) -> Result<String, ServiceError> {
    argon2()?
        .hash_password(password.0.as_bytes())
        .map(|h| h.to_string())
        .map_err(internal)
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

    /// The argon2 crate's own verification, as the reference.
    fn reference_verify(password: &str, phc: &str) -> bool {
        use argon2::password_hash::PasswordVerifier;
        argon2()
            .unwrap()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
    }

    /// Hashes computed in reused memory are the crate's hashes: each verifies the other's, also
    /// with memory left over from another password, and for other parameters.
    #[test]
    fn hashing_in_reused_memory_agrees_with_the_argon2_crate() {
        let mut memory = vec![Block::new(); M_COST as usize];
        let secret = |s: &str| Secret(s.to_owned());
        let ours = hash_in(&secret("correct horse battery"), &mut memory).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(reference_verify("correct horse battery", &ours));
        assert!(!reference_verify("wrong horse battery", &ours));
        let theirs = hash_now(&secret("another passphrase")).unwrap();
        for (password, phc, matches) in [
            ("another passphrase", theirs.as_str(), true),
            ("correct horse battery", theirs.as_str(), false),
            ("correct horse battery", ours.as_str(), true),
            ("another passphrase", ours.as_str(), false),
            ("x", DUMMY_HASH, false),
            ("x", "not a hash", false),
            ("x", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ", false),
        ] {
            assert_eq!(
                verify_in(&secret(password), phc, &mut memory).unwrap(),
                matches,
                "{password} against {phc}"
            );
        }
        // Other parameters (an older or future setting) verify in memory of their own.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"small passphrase")
        .unwrap()
        .to_string();
        assert!(verify_in(&secret("small passphrase"), &small, &mut memory).unwrap());
        assert!(!verify_in(&secret("other passphrase"), &small, &mut memory).unwrap());
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
        let kept = hashing.gate.memories.0.lock().unwrap().len();
        assert!((1..=2).contains(&kept), "{kept} working memories kept");
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
