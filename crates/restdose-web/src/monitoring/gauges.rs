//! The database gauges of `/metrics`, cached so that scrapes cannot load the database.

use chrono::{DateTime, Utc};
use restdose_core::Services;
use restdose_store::OperationalCounts;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long database gauges are reused, so that scrapes cannot load the database.
pub const GAUGE_CACHE: Duration = Duration::from_secs(5);

/// Database gauges, read at most every [`GAUGE_CACHE`].
#[derive(Default)]
pub struct GaugeCache {
    last: Mutex<Option<(Instant, OperationalCounts, DateTime<Utc>)>>,
}

impl GaugeCache {
    pub(crate) async fn get(
        &self,
        services: &Services,
    ) -> Result<(OperationalCounts, DateTime<Utc>), String> {
        if let Ok(last) = self.last.lock()
            && let Some((at, counts, now)) = last.as_ref()
            && at.elapsed() < GAUGE_CACHE
        {
            return Ok((counts.clone(), *now));
        }
        let now = services.clock.now();
        let counts = services
            .store
            .operational_counts(now)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), counts.clone(), now));
        }
        Ok((counts, now))
    }
}

pub(crate) fn write_gauges(out: &mut String, c: &OperationalCounts, now: DateTime<Utc>) {
    let age = |t: Option<DateTime<Utc>>| {
        t.map_or(0.0, |t| {
            ((now - t).num_milliseconds().max(0) as f64) / 1000.0
        })
    };
    let _ = writeln!(
        out,
        "# HELP restdose_people People on the waitlist by state.\n# TYPE restdose_people gauge"
    );
    for (state, n) in [
        ("unconfirmed", c.people_unconfirmed),
        ("waiting", c.people_waiting),
        ("paused", c.people_paused),
        ("booked", c.people_booked),
    ] {
        let _ = writeln!(out, "restdose_people{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP restdose_open_offers Offers open for claims.\n# TYPE restdose_open_offers gauge\nrestdose_open_offers {}",
        c.open_offers
    );
    let _ = writeln!(
        out,
        "# HELP restdose_outbox_depth Mails waiting in the outbox.\n# TYPE restdose_outbox_depth gauge\nrestdose_outbox_depth {}",
        c.outbox_depth
    );
    let _ = writeln!(
        out,
        "# HELP restdose_outbox_oldest_age_seconds Age of the oldest mail in the outbox (0 when empty).\n# TYPE restdose_outbox_oldest_age_seconds gauge\nrestdose_outbox_oldest_age_seconds {}",
        age(c.outbox_oldest)
    );
}
