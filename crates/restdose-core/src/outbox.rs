//! The durable mail outbox: a mail is stored (encrypted) in the same transaction as the state
//! change that causes it, and a delivery worker sends it with retries and back-off.
//!
//! At-least-once: a row is deleted only after the SMTP server accepted the mail. If the process
//! dies in between, the lease runs out and the mail is sent again with the same Message-ID, so
//! the receiver can recognise the duplicate.

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use restdose_mail::OutgoingMail;
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
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            batch: 200,
            parallel: 8,
            lease: Duration::minutes(2),
            first_retry: Duration::seconds(30),
            max_retry: Duration::hours(1),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub failed: u32,
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
        let results: Vec<Result<bool, ServiceError>> = futures_util::stream::iter(rows)
            .map(|row| async move { self.deliver_one(row).await })
            .buffer_unordered(policy.parallel.max(1))
            .collect()
            .await;
        let mut report = DeliveryReport::default();
        for result in results {
            match result? {
                true => report.sent += 1,
                false => report.failed += 1,
            }
        }
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            "outbox delivery step"
        );
        Ok(report)
    }

    /// True when sent; false when it failed and was scheduled for a retry.
    async fn deliver_one(&self, row: OutboxRow) -> Result<bool, ServiceError> {
        let outcome = match self.open_outbox_row(&row) {
            Ok(mail) => self.mailer.send(&mail).await.map_err(|e| e.to_string()),
            // A row we cannot read (key removed?) is retried slowly and shows up in the logs
            // and the outbox depth rather than being dropped silently.
            Err(e) => Err(format!("cannot open payload: {e}")),
        };
        match outcome {
            Ok(()) => {
                self.store.outbox_delivered(row.id).await?;
                Ok(true)
            }
            Err(error) => {
                let policy = &self.delivery;
                let factor = 1_i32 << row.attempts.clamp(0, 16);
                let wait = (policy.first_retry * factor).min(policy.max_retry);
                tracing::warn!(mail = %row.id, attempts = row.attempts + 1, error = %error, "mail delivery failed; will retry");
                crate::telemetry::mail_failed();
                self.store
                    .outbox_failed(row.id, self.clock.now() + wait, &error)
                    .await?;
                Ok(false)
            }
        }
    }
}
