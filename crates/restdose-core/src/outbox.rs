//! The durable mail outbox: a mail is stored (encrypted) in the same transaction as the state
//! change that causes it, and a delivery worker sends it with retries and back-off.
//!
//! At-least-once: a row is deleted once the SMTP server accepted the mail. If the process dies
//! in between, the lease runs out and the mail is sent again with the same Message-ID, so the
//! receiver can recognise the duplicate.
//!
//! A mail that can never go out is dropped (row deleted, counted in
//! `restdose_mail_dropped_total` by reason) instead of being retried forever:
//! - `permanent`: the SMTP server refused it for good (5xx). When the mail concerns a person
//!   (`registrant_id`), their address is marked undeliverable and, if they were waiting, they
//!   are paused in the same transaction: no more invitations until they resume.
//! - `expired`: temporary failures (4xx, no connection, timeout, TLS) went on until the mail
//!   was older than `DeliveryPolicy::max_age`. A payload under a key this process does not
//!   hold counts as temporary too: during a key rotation another process may hold it.
//! - `unreadable`: the payload does not decrypt under its key or does not decode, or the mail
//!   cannot be built into a message (`MailError::Build`). Neither changes with retries. The
//!   person is not marked: nothing says their address is at fault.

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use restdose_crypto::CryptoError;
use restdose_mail::{MailError, OutgoingMail};
use restdose_store::OutboxRow;
use uuid::Uuid;

use crate::{ServiceError, Services};

/// How the delivery worker behaves (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Mails taken per step.
    pub batch: u32,
    /// Mails sent at the same time (SMTP connections in use).
    pub parallel: usize,
    /// A taken mail is someone else's to retry after this, should this worker die.
    pub lease: Duration,
    /// First retry after a failure; doubles per attempt...
    pub first_retry: Duration,
    /// ...up to this.
    pub max_retry: Duration,
    /// A mail that still fails temporarily once it is older than this (since it was stored)
    /// is dropped.
    pub max_age: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            batch: 200,
            parallel: 8,
            lease: Duration::minutes(2),
            first_retry: Duration::seconds(30),
            max_retry: Duration::hours(1),
            max_age: Duration::hours(24),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    /// Failed and scheduled for another try.
    pub failed: u32,
    /// Failed and removed from the outbox (see the module documentation).
    pub dropped: u32,
}

/// Why a mail left the outbox undelivered: the `reason` of `restdose_mail_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The SMTP server refused it for good.
    Permanent,
    /// Temporary failures until it was older than `DeliveryPolicy::max_age`.
    Expired,
    /// Its payload cannot be read, or it cannot be built into a message.
    Unreadable,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::Permanent,
        DropReason::Expired,
        DropReason::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Permanent => "permanent",
            DropReason::Expired => "expired",
            DropReason::Unreadable => "unreadable",
        }
    }
}

/// What a failed attempt was, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// May work later.
    Temporary,
    /// Refused for good by the server.
    Permanent,
    /// The stored mail cannot be read or built.
    Unreadable,
}

impl FailureKind {
    pub fn of(error: &MailError) -> FailureKind {
        match error {
            MailError::Permanent(_) => FailureKind::Permanent,
            MailError::Build(_) => FailureKind::Unreadable,
            // A configuration error can be fixed by the operator: keep the mail meanwhile.
            MailError::Temporary(_) | MailError::Config(_) => FailureKind::Temporary,
        }
    }
}

/// What becomes of a mail after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (back-off).
    Retry(DateTime<Utc>),
    /// Remove it from the outbox.
    Drop(DropReason),
}

impl DeliveryPolicy {
    /// The decision after attempt number `row.attempts + 1` failed with `kind` at `now`:
    /// permanent and unreadable failures drop the mail at once; a temporary one is retried
    /// after `first_retry` doubled per earlier attempt (at most `max_retry`), unless the mail
    /// is older than `max_age` by then.
    pub fn after_failure(
        &self,
        row: &OutboxRow,
        kind: FailureKind,
        now: DateTime<Utc>,
    ) -> AfterFailure {
        match kind {
            FailureKind::Permanent => AfterFailure::Drop(DropReason::Permanent),
            FailureKind::Unreadable => AfterFailure::Drop(DropReason::Unreadable),
            FailureKind::Temporary if now - row.created_at > self.max_age => {
                AfterFailure::Drop(DropReason::Expired)
            }
            FailureKind::Temporary => {
                let factor = 1_i32 << row.attempts.clamp(0, 16);
                let wait = (self.first_retry * factor).min(self.max_retry);
                AfterFailure::Retry(now + wait)
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Failed,
    Dropped,
}

impl Services {
    /// Encrypts a mail that concerns no person on the list (e.g. to a practice).
    pub fn outbox_row(
        &self,
        mail: &OutgoingMail,
        now: DateTime<Utc>,
    ) -> Result<OutboxRow, ServiceError> {
        self.outbox_row_about(mail, now, None, None)
    }

    /// Encrypts a mail into an outbox row due now, tied to the person and the offer it
    /// concerns: purging either deletes the mail too if it is still waiting.
    pub fn outbox_row_about(
        &self,
        mail: &OutgoingMail,
        now: DateTime<Utc>,
        registrant_id: Option<Uuid>,
        offer_id: Option<Uuid>,
    ) -> Result<OutboxRow, ServiceError> {
        let id = Uuid::new_v4();
        let json = serde_json::to_vec(mail).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (key_id, payload) = self.keys.encrypt(&json, id.as_bytes())?;
        Ok(OutboxRow {
            id,
            key_id,
            payload,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            registrant_id,
            offer_id,
        })
    }

    fn open_outbox_row(&self, row: &OutboxRow) -> Result<OutgoingMail, ServiceError> {
        let json = self
            .keys
            .decrypt(row.key_id, &row.payload, row.id.as_bytes())?;
        serde_json::from_slice(&json).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Stores a mail for delivery (for mails not tied to another write).
    pub async fn enqueue(&self, mail: &OutgoingMail) -> Result<(), ServiceError> {
        let row = self.outbox_row(mail, self.clock.now())?;
        self.store.enqueue_mails(std::slice::from_ref(&row)).await?;
        Ok(())
    }

    /// One delivery step: takes due mails and sends them, `parallel` at a time.
    #[tracing::instrument(skip_all)]
    pub async fn deliver_outbox_once(&self) -> Result<DeliveryReport, ServiceError> {
        let policy = &self.delivery;
        let now = self.clock.now();
        let rows = self
            .store
            .lease_outbox(now, now + policy.lease, policy.batch)
            .await?;
        if rows.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let results: Vec<Result<Attempt, ServiceError>> = futures_util::stream::iter(rows)
            .map(|row| async move { self.deliver_one(row).await })
            .buffer_unordered(policy.parallel.max(1))
            .collect()
            .await;
        let mut report = DeliveryReport::default();
        for result in results {
            match result? {
                Attempt::Sent => report.sent += 1,
                Attempt::Failed => report.failed += 1,
                Attempt::Dropped => report.dropped += 1,
            }
        }
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            dropped = report.dropped,
            "outbox delivery step"
        );
        Ok(report)
    }

    async fn deliver_one(&self, row: OutboxRow) -> Result<Attempt, ServiceError> {
        let outcome = match self.open_outbox_row(&row) {
            Ok(mail) => self
                .mailer
                .send(&mail)
                .await
                .map_err(|e| (FailureKind::of(&e), e.to_string())),
            Err(e) => {
                let kind = match e {
                    // Written by a process that already has a newer key (a rotation rolling
                    // out): one that holds it can send it.
                    ServiceError::Crypto(CryptoError::UnknownKey(_)) => FailureKind::Temporary,
                    _ => FailureKind::Unreadable,
                };
                Err((kind, format!("cannot open payload: {e}")))
            }
        };
        let (kind, error) = match outcome {
            Ok(()) => {
                self.store.outbox_delivered(row.id).await?;
                return Ok(Attempt::Sent);
            }
            Err(failure) => failure,
        };
        crate::telemetry::mail_failed();
        let now = self.clock.now();
        match self.delivery.after_failure(&row, kind, now) {
            AfterFailure::Retry(at) => {
                tracing::warn!(mail = %row.id, attempts = row.attempts + 1, error = %error, "mail delivery failed; will retry");
                self.store.outbox_failed(row.id, at, &error).await?;
                Ok(Attempt::Failed)
            }
            AfterFailure::Drop(reason) => {
                let undeliverable = match reason {
                    DropReason::Permanent => row.registrant_id,
                    DropReason::Expired | DropReason::Unreadable => None,
                };
                tracing::warn!(
                    mail = %row.id,
                    attempts = row.attempts + 1,
                    error = %error,
                    reason = reason.as_str(),
                    registrant = ?undeliverable,
                    "mail delivery failed; mail dropped"
                );
                self.store
                    .outbox_dropped(row.id, undeliverable, now)
                    .await?;
                crate::telemetry::mail_dropped(reason.as_str());
                Ok(Attempt::Dropped)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use restdose_domain::{Clock, ManualClock};

    fn row(created_at: DateTime<Utc>, attempts: i32) -> OutboxRow {
        OutboxRow {
            id: Uuid::new_v4(),
            key_id: 1,
            payload: Vec::new(),
            created_at,
            attempts,
            next_attempt_at: created_at,
            registrant_id: Some(Uuid::new_v4()),
            offer_id: None,
        }
    }

    #[test]
    fn temporary_failures_back_off_until_the_mail_is_older_than_max_age_then_drop() {
        let policy = DeliveryPolicy::default();
        let clock = ManualClock::new(
            DateTime::parse_from_rfc3339("2026-05-04T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let created = clock.now();
        let mut mail = row(created, 0);
        // Retried with doubling waits, capped at max_retry, for as long as the mail is young.
        let mut waits = Vec::new();
        loop {
            match policy.after_failure(&mail, FailureKind::Temporary, clock.now()) {
                AfterFailure::Retry(at) => {
                    assert!(at > clock.now());
                    waits.push(at - clock.now());
                    clock.set(at);
                    mail.attempts += 1;
                }
                AfterFailure::Drop(reason) => {
                    assert_eq!(reason, DropReason::Expired);
                    break;
                }
            }
            assert!(mail.attempts < 100, "never dropped");
        }
        assert_eq!(waits[0], Duration::seconds(30));
        assert_eq!(waits[1], Duration::minutes(1));
        assert!(waits.iter().all(|w| *w <= policy.max_retry));
        assert_eq!(*waits.last().unwrap(), policy.max_retry);
        // Dropped on the first failure after max_age, not before.
        assert!(clock.now() - created > policy.max_age);
        assert!(clock.now() - created <= policy.max_age + policy.max_retry);

        // Exactly at max_age it is still retried; a moment later it goes.
        let fresh = row(created, 20);
        assert!(matches!(
            policy.after_failure(&fresh, FailureKind::Temporary, created + policy.max_age),
            AfterFailure::Retry(_)
        ));
        assert_eq!(
            policy.after_failure(
                &fresh,
                FailureKind::Temporary,
                created + policy.max_age + Duration::milliseconds(1)
            ),
            AfterFailure::Drop(DropReason::Expired)
        );
    }

    #[test]
    fn permanent_and_unreadable_failures_drop_at_once() {
        let policy = DeliveryPolicy::default();
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let young = row(now, 0);
        assert_eq!(
            policy.after_failure(&young, FailureKind::Permanent, now),
            AfterFailure::Drop(DropReason::Permanent)
        );
        assert_eq!(
            policy.after_failure(&young, FailureKind::Unreadable, now),
            AfterFailure::Drop(DropReason::Unreadable)
        );
        assert_eq!(
            FailureKind::of(&MailError::Permanent(
                "SMTP permanent rejection (550)".into()
            )),
            FailureKind::Permanent
        );
        assert_eq!(
            FailureKind::of(&MailError::Temporary(
                "SMTP temporary rejection (451)".into()
            )),
            FailureKind::Temporary
        );
        assert_eq!(
            FailureKind::of(&MailError::Build("bad address".into())),
            FailureKind::Unreadable
        );
        assert_eq!(
            FailureKind::of(&MailError::Config("sender".into())),
            FailureKind::Temporary
        );
    }
}
