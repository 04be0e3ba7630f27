//! The last computed aggregate, shared by the workers of one process: the figures change slowly
//! and computing them reads every table.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use restdose_core::statistics::PublicStatistics;
use restdose_core::{ServiceError, Services};

/// How long one computed aggregate is served (by the service clock).
const CACHE_SECONDS: i64 = 60;

/// The last aggregate and when it was computed; shared by the workers of one process.
#[derive(Default)]
pub(crate) struct StatisticsCache {
    slot: Mutex<Option<(DateTime<Utc>, Arc<PublicStatistics>)>>,
}

impl StatisticsCache {
    /// The cached aggregate, or a new one when it is older than `CACHE_SECONDS`.
    pub(crate) async fn get(
        &self,
        services: &Services,
    ) -> Result<Arc<PublicStatistics>, ServiceError> {
        let now = services.clock.now();
        if let Ok(slot) = self.slot.lock()
            && let Some((at, stats)) = slot.as_ref()
            && now >= *at
            && now - *at < Duration::seconds(CACHE_SECONDS)
        {
            return Ok(Arc::clone(stats));
        }
        let stats = Arc::new(services.public_statistics().await?);
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some((now, Arc::clone(&stats)));
        }
        Ok(stats)
    }
}
