//! The promise kept: everything about a person and an offer is deleted 24 hours after the
//! appointment, unconfirmed sign-ups and expired links go, long-paused people are warned and
//! then deleted. Only anonymous daily counters per 2-digit postcode area survive.

use chrono::{DateTime, Duration, Utc};
use restdose_mail::{BookingTemplate, OutgoingMail, render_booking};
use restdose_store::{EncryptedColumn, Metric, PurgePreview};
use uuid::Uuid;

use crate::{ServiceError, Services};

/// Tunables of the purge (see docs/configuration.md and docs/privacy.md).
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Everything about an offer and the people who booked it goes this long after the
    /// appointment window ends.
    pub after_appointment: Duration,
    /// Paused people are warned after this long paused...
    pub paused_warning_after: Duration,
    /// ...and deleted this long after the warning if still paused.
    pub paused_grace: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            after_appointment: Duration::hours(24),
            paused_warning_after: Duration::days(90),
            paused_grace: Duration::days(14),
        }
    }
}

/// What one purge pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub offers: u64,
    pub people_of_offers: u64,
    pub unconfirmed: u64,
    pub expired_links: u64,
    pub expired_sessions: u64,
    pub inactive_warned: u64,
    pub inactive_deleted: u64,
    /// Sent mails the transport kept (the `.eml` files of the file outbox), deleted
    /// `after_appointment` after they were written.
    pub mail_files: u64,
}

/// What a key rotation step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub reencrypted: u64,
    /// Rows changed by someone else meanwhile; the next step takes them again.
    pub skipped: u64,
}

impl Services {
    /// One full purge pass (the worker runs it every minute; `restdose purge` once).
    #[tracing::instrument(skip_all)]
    pub async fn purge_once(&self) -> Result<PurgeReport, ServiceError> {
        let now = self.clock.now();
        let retention = &self.retention;
        let mut report = PurgeReport::default();
        loop {
            let purged = self
                .store
                .purge_finished_offers(now - retention.after_appointment, 100)
                .await?;
            report.offers += purged.len() as u64;
            report.people_of_offers += purged.iter().map(|p| p.people_deleted).sum::<u64>();
            if purged.len() < 100 {
                break;
            }
        }
        let expiry = self.expire_stale_records().await?;
        report.unconfirmed = expiry.unconfirmed_deleted;
        report.expired_links =
            expiry.tokens_deleted + self.store.purge_expired_account_tokens(now).await?;
        report.expired_sessions = self.store.purge_expired_sessions(now).await?;
        self.store
            .purge_old_login_failures(now - self.policy.login_failure_memory)
            .await?;
        // The longest abuse-limit window is a day; older windows count for nothing.
        self.store
            .purge_rate_counters(now - chrono::Duration::days(2))
            .await?;
        report.inactive_warned = self.warn_inactive_paused(now).await?;
        report.inactive_deleted = self
            .store
            .purge_inactive_paused(now - retention.paused_grace)
            .await?;
        report.mail_files = self
            .mailer
            .delete_kept_before(now - retention.after_appointment)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        crate::telemetry::purged(&[
            ("offers", report.offers),
            ("people_of_offers", report.people_of_offers),
            ("unconfirmed", report.unconfirmed),
            ("expired_links", report.expired_links),
            ("expired_sessions", report.expired_sessions),
            ("inactive_paused", report.inactive_deleted),
            ("mail_files", report.mail_files),
        ]);
        if report != PurgeReport::default() {
            tracing::info!(
                offers = report.offers,
                people_of_offers = report.people_of_offers,
                unconfirmed = report.unconfirmed,
                expired_links = report.expired_links,
                expired_sessions = report.expired_sessions,
                inactive_warned = report.inactive_warned,
                inactive_deleted = report.inactive_deleted,
                mail_files = report.mail_files,
                "purge"
            );
        }
        Ok(report)
    }

    /// What `purge_once` would delete now, deleting nothing.
    pub async fn purge_preview(&self) -> Result<PurgePreview, ServiceError> {
        let now = self.clock.now();
        Ok(self
            .store
            .purge_preview(
                now - self.retention.after_appointment,
                now - self.policy.confirm_link_ttl,
                now,
                now - self.retention.paused_grace,
            )
            .await?)
    }

    /// How many kept mail files (the `.eml` outbox) `purge_once` would delete now.
    pub async fn mail_files_to_purge(&self) -> Result<u64, ServiceError> {
        self.mailer
            .count_kept_before(self.clock.now() - self.retention.after_appointment)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    async fn warn_inactive_paused(&self, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        let mut warned = 0;
        let people = self
            .store
            .paused_to_warn(now - self.retention.paused_warning_after, 200)
            .await?;
        for person in people {
            let email = self.decrypt_email(person.id, &person.email)?;
            let (manage, manage_row) = self.manage_token(person.id, now)?;
            self.store
                .insert_tokens(std::slice::from_ref(&manage_row))
                .await?;
            let lang = person.language;
            let content = render_booking(
                lang,
                &BookingTemplate::InactivityWarning {
                    days: self.retention.paused_grace.num_days(),
                    manage_url: &self.links.manage(&manage),
                    unsubscribe_url: &self.links.unsubscribe(&manage),
                },
            );
            let mail = OutgoingMail {
                to: email,
                message_id: self.links.message_id(Uuid::new_v4()),
                content,
            };
            let row = self.outbox_row_about(&mail, now, Some(person.id), None)?;
            if self
                .store
                .mark_inactivity_warned(person.id, now, &row)
                .await?
            {
                warned += 1;
            }
        }
        Ok(warned)
    }

    /// Counts a confirmed sign-up in the anonymous statistics.
    pub(crate) async fn count_signup(
        &self,
        postcode: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        self.store
            .bump_stat(
                at.date_naive(),
                restdose_domain::postcode::area(postcode),
                Metric::Signups,
                1,
            )
            .await?;
        Ok(())
    }

    /// Re-encrypts up to `batch` ciphertexts per table under the current key. Run it until it
    /// reports nothing re-encrypted; meanwhile the service keeps running (every write already
    /// uses the current key, and each row is swapped only if unchanged).
    #[tracing::instrument(skip_all)]
    pub async fn rotate_keys_once(&self, batch: u32) -> Result<RotationReport, ServiceError> {
        let current = self.keys.current_key_id();
        let mut report = RotationReport::default();
        for column in [
            EncryptedColumn::RegistrantEmail,
            EncryptedColumn::OutboxPayload,
        ] {
            for old in self
                .store
                .ciphertexts_not_under(column, current, batch)
                .await?
            {
                let plain = self
                    .keys
                    .decrypt(old.key_id, &old.blob, old.id.as_bytes())?;
                let (key_id, blob) = self.keys.encrypt(&plain, old.id.as_bytes())?;
                if self
                    .store
                    .replace_ciphertext(column, &old, key_id, &blob)
                    .await?
                {
                    report.reencrypted += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
        if report.reencrypted > 0 {
            tracing::info!(
                reencrypted = report.reencrypted,
                key = current,
                "key rotation step"
            );
        }
        Ok(report)
    }

    /// How many ciphertexts each key id still protects (registrants, outbox).
    pub async fn ciphertexts_by_key(
        &self,
    ) -> Result<Vec<(EncryptedColumn, Vec<(i32, u64)>)>, ServiceError> {
        let mut out = Vec::new();
        for column in [
            EncryptedColumn::RegistrantEmail,
            EncryptedColumn::OutboxPayload,
        ] {
            out.push((column, self.store.ciphertexts_by_key(column).await?));
        }
        Ok(out)
    }
}
