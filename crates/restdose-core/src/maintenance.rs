//! Housekeeping that keeps the promises made in every mail: unconfirmed sign-ups disappear
//! once their confirmation link has expired, and expired links are forgotten.
//! `purge_once` (lifecycle.rs) runs this together with the 24-hours-after-the-appointment purge.

use crate::{ServiceError, Services};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    pub unconfirmed_deleted: u64,
    pub tokens_deleted: u64,
}

impl Services {
    /// One pass; callers run it periodically (the `serve` process every minute).
    #[tracing::instrument(skip_all)]
    pub async fn expire_stale_records(&self) -> Result<ExpiryReport, ServiceError> {
        let now = self.clock.now();
        let unconfirmed_deleted = self
            .store
            .purge_unconfirmed(now - self.policy.confirm_link_ttl)
            .await?;
        let tokens_deleted = self.store.purge_expired_tokens(now).await?;
        let report = ExpiryReport {
            unconfirmed_deleted,
            tokens_deleted,
        };
        if report != ExpiryReport::default() {
            tracing::info!(
                unconfirmed_deleted,
                tokens_deleted,
                "expired sign-ups and links deleted"
            );
        }
        Ok(report)
    }
}
