//! The durable mail outbox: a mail is stored (encrypted) in the same transaction as the state
//! change that causes it, and a delivery worker sends it with retries and back-off.
//!
//! At-least-once: a row is deleted once the SMTP server accepted the mail. The rows of accepted
//! mails are deleted in batches, one statement each (`MatcherStore::outbox_delivered_many`): at
//! most `ACK_BATCH` at once, none waiting longer than `ACK_WAIT`, and whatever is left at the end
//! of a delivery step, also one that failed midway. If the process dies before a mail's batch
//! is deleted, the lease runs out and the mail is sent again with the same Message-ID, so the
//! receiver can recognise the duplicate: a crash re-sends at most the mails of the unflushed
//! batch (and those whose sending was under way).
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
use std::future::Future;
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

/// Accepted mails acknowledged (deleted) by one statement at most...
const ACK_BATCH: usize = 100;
/// ...and the longest an accepted mail waits for its batch (far below any sensible lease).
const ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Accepted by the SMTP server; its row is still to be deleted (see `attempt_all`).
    Sent,
    Failed,
    Dropped,
}

/// Runs `attempt` on every row, `parallel` at a time, and acknowledges the sent mails through
/// `ack` in batches (see the module documentation). Every row is attempted and every sent mail
/// acknowledged even after an error; then the first error is returned.
async fn attempt_all<A, AF, K, KF>(
    rows: Vec<OutboxRow>,
    parallel: usize,
    attempt: A,
    mut ack: K,
) -> Result<DeliveryReport, ServiceError>
where
    A: Fn(OutboxRow) -> AF,
    AF: Future<Output = Result<Attempt, ServiceError>>,
    K: FnMut(Vec<Uuid>) -> KF,
    KF: Future<Output = Result<(), ServiceError>>,
{
    let mut attempts = futures_util::stream::iter(rows)
        .map(|row| {
            let id = row.id;
            let attempt = attempt(row);
            async move { (id, attempt.await) }
        })
        .buffer_unordered(parallel.max(1));
    let mut report = DeliveryReport::default();
    let mut first_error: Option<ServiceError> = None;
    let mut unacked: Vec<Uuid> = Vec::new();
    // When the oldest of `unacked` was sent.
    let mut oldest: Option<tokio::time::Instant> = None;
    loop {
        let next = match oldest {
            None => attempts.next().await,
            // `next` is cancel-safe: a timeout loses no attempt.
            Some(since) => match tokio::time::timeout_at(since + ACK_WAIT, attempts.next()).await {
                Ok(next) => next,
                Err(_) => {
                    flush(&mut ack, &mut unacked, &mut first_error).await;
                    oldest = None;
                    continue;
                }
            },
        };
        let Some((id, result)) = next else { break };
        match result {
            Ok(Attempt::Sent) => {
                report.sent += 1;
                oldest.get_or_insert_with(tokio::time::Instant::now);
                unacked.push(id);
                if unacked.len() >= ACK_BATCH {
                    flush(&mut ack, &mut unacked, &mut first_error).await;
                    oldest = None;
                }
            }
            Ok(Attempt::Failed) => report.failed += 1,
            Ok(Attempt::Dropped) => report.dropped += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    flush(&mut ack, &mut unacked, &mut first_error).await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Acknowledges `unacked` (if any) with one call; a failure is kept as the step's error (the
/// mails then go again when their lease runs out).
async fn flush<K, KF>(ack: &mut K, unacked: &mut Vec<Uuid>, first_error: &mut Option<ServiceError>)
where
    K: FnMut(Vec<Uuid>) -> KF,
    KF: Future<Output = Result<(), ServiceError>>,
{
    if unacked.is_empty() {
        return;
    }
    if let Err(e) = ack(std::mem::take(unacked)).await {
        first_error.get_or_insert(e);
    }
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
        let report = attempt_all(
            rows,
            policy.parallel,
            |row| self.deliver_one(row),
            |ids| async move {
                self.store.outbox_delivered_many(&ids).await?;
                Ok(())
            },
        )
        .await?;
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            dropped = report.dropped,
            "outbox delivery step"
        );
        Ok(report)
    }

    /// One attempt; a sent mail's row is left for `attempt_all` to delete.
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
            Ok(()) => return Ok(Attempt::Sent),
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

    /// Runs `attempt_all` with attempts that end as `outcome(index)` says, recording every
    /// acknowledgement call.
    async fn step(
        rows: &[OutboxRow],
        outcome: impl Fn(usize) -> Result<Attempt, ServiceError>,
    ) -> (Result<DeliveryReport, ServiceError>, Vec<Vec<Uuid>>) {
        let acks = std::sync::Mutex::new(Vec::new());
        let index = |id: Uuid| rows.iter().position(|r| r.id == id).unwrap();
        let result = attempt_all(
            rows.to_vec(),
            4,
            |row| {
                let result = outcome(index(row.id));
                async move {
                    tokio::task::yield_now().await;
                    result
                }
            },
            |ids| {
                acks.lock().unwrap().push(ids);
                async { Ok(()) }
            },
        )
        .await;
        (result, acks.into_inner().unwrap())
    }

    fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_step_acknowledges_its_sent_mails_in_one_batch_and_never_the_failed_ones() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let rows: Vec<OutboxRow> = (0..12).map(|_| row(now, 0)).collect();
        let outcome = |i: usize| match i % 4 {
            1 => Attempt::Failed,
            2 if i < 8 => Attempt::Dropped,
            _ => Attempt::Sent,
        };
        let (result, acks) = step(&rows, |i| Ok(outcome(i))).await;
        assert_eq!(
            result.unwrap(),
            DeliveryReport {
                sent: 7,
                failed: 3,
                dropped: 2
            }
        );
        let sent: Vec<Uuid> = (0..rows.len())
            .filter(|&i| outcome(i) == Attempt::Sent)
            .map(|i| rows[i].id)
            .collect();
        assert_eq!(acks.len(), 1, "one batch: {acks:?}");
        assert_eq!(sorted(acks[0].clone()), sorted(sent));

        // Nothing sent: no call at all.
        let (result, acks) = step(&rows, |_| Ok(Attempt::Failed)).await;
        assert_eq!(result.unwrap().failed, 12);
        assert!(acks.is_empty());
    }

    #[tokio::test]
    async fn a_step_that_fails_midway_still_acknowledges_every_sent_mail() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let rows: Vec<OutboxRow> = (0..6).map(|_| row(now, 0)).collect();
        let (result, acks) = step(&rows, |i| match i {
            2 => Err(ServiceError::Internal("store gone".into())),
            3 => Ok(Attempt::Failed),
            _ => Ok(Attempt::Sent),
        })
        .await;
        assert!(matches!(result, Err(ServiceError::Internal(_))));
        assert_eq!(acks.len(), 1);
        assert_eq!(
            sorted(acks[0].clone()),
            sorted(vec![rows[0].id, rows[1].id, rows[4].id, rows[5].id])
        );
    }

    #[tokio::test]
    async fn many_sent_mails_are_acknowledged_in_batches_of_ack_batch() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let rows: Vec<OutboxRow> = (0..ACK_BATCH * 2 + 5).map(|_| row(now, 0)).collect();
        let (result, acks) = step(&rows, |_| Ok(Attempt::Sent)).await;
        assert_eq!(result.unwrap().sent as usize, rows.len());
        assert_eq!(
            acks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![ACK_BATCH, ACK_BATCH, 5]
        );
        assert_eq!(
            sorted(acks.concat()),
            sorted(rows.iter().map(|r| r.id).collect())
        );
    }

    #[tokio::test]
    async fn a_sent_mail_waits_at_most_ack_wait_for_its_batch() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let rows: Vec<OutboxRow> = (0..2).map(|_| row(now, 0)).collect();
        let slow = rows[1].id;
        let acks = std::sync::Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let report = attempt_all(
            rows.clone(),
            2,
            |row| async move {
                if row.id == slow {
                    tokio::time::sleep(ACK_WAIT * 10).await;
                }
                Ok(Attempt::Sent)
            },
            |ids| {
                acks.lock().unwrap().push((ids, start.elapsed()));
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
        assert_eq!(report.sent, 2);
        let acks = acks.into_inner().unwrap();
        // The quick mail is acknowledged on its own once it waited ACK_WAIT, long before the
        // slow one is sent.
        assert_eq!(acks.len(), 2, "{acks:?}");
        assert_eq!(acks[0].0, vec![rows[0].id]);
        assert!(
            acks[0].1 >= ACK_WAIT && acks[0].1 < ACK_WAIT * 10,
            "{acks:?}"
        );
        assert_eq!(acks[1].0, vec![slow]);
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
