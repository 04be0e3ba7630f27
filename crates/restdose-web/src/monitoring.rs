//! Operations endpoints: `/readyz` (can this process serve requests?), `/metrics` (Prometheus
//! text), the process-wide metrics recorder, and the request id. docs/monitoring.md lists every
//! series.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use restdose_store::OperationalCounts;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::AppState;

/// HTTP requests by method, route pattern and status.
pub const HTTP_REQUESTS: &str = "restdose_http_requests_total";
/// HTTP latency by method and route pattern.
pub const HTTP_DURATION: &str = "restdose_http_request_duration_seconds";

/// Buckets for request latencies, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for the time an offer takes to fill, in seconds (30 s … 1 day).
const FILL_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

/// How long database gauges are reused, so that scrapes cannot load the database.
pub const GAUGE_CACHE: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use (once per process, however many
/// servers the process starts: tests start many). If another recorder was installed first, the
/// handle still renders, only without the facade's counters.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full(restdose_core::telemetry::OFFER_TIME_TO_FILL.to_owned()),
                FILL_BUCKETS,
            )
            .and_then(|b| b.set_buckets(LATENCY_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows gauges only");
        }
        describe();
        handle
    })
}

fn describe() {
    use restdose_core::telemetry as t;
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by method, route pattern and status."
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by method, route pattern and status."
    );
    metrics::describe_counter!(t::INVITATIONS_SENT, "Invitations sent by the matcher.");
    metrics::describe_counter!(t::INVITATIONS_CLAIMED, "Invitations that became a booking.");
    metrics::describe_histogram!(
        t::OFFER_TIME_TO_FILL,
        metrics::Unit::Seconds,
        "Time from an offer being posted to its last dose being claimed."
    );
    metrics::describe_counter!(
        t::MAIL_FAILURES,
        "Failed mail delivery attempts (retried, or dropped: see restdose_mail_dropped_total)."
    );
    metrics::describe_counter!(
        t::MAIL_DROPPED,
        "Mails removed from the outbox undelivered, by reason (permanent, expired, unreadable)."
    );
    metrics::describe_counter!(t::PURGED, "Records deleted by the purge, by kind.");
    // Present from the start (at zero), so dashboards and alerts see the series.
    metrics::counter!(t::INVITATIONS_SENT).increment(0);
    metrics::counter!(t::INVITATIONS_CLAIMED).increment(0);
    metrics::counter!(t::MAIL_FAILURES).increment(0);
    for reason in restdose_core::outbox::DropReason::ALL {
        metrics::counter!(t::MAIL_DROPPED, "reason" => reason.as_str()).increment(0);
    }
}

/// Counts one answered request (route = the matched pattern, never the raw path).
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        HTTP_REQUESTS,
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    // By status too: an overloaded service answers 503 in a millisecond, which would otherwise
    // hide the latency of the requests it accepted.
    metrics::histogram!(
        HTTP_DURATION,
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// An incoming `X-Request-Id` is kept only if it is a short, safe token (1–64 of `A-Z a-z 0-9
/// - _ .`); anything else (including anything that could carry an address) is replaced.
pub fn request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Database gauges, read at most every [`GAUGE_CACHE`].
#[derive(Default)]
pub struct GaugeCache {
    last: Mutex<Option<(Instant, OperationalCounts, DateTime<Utc>)>>,
}

impl GaugeCache {
    async fn get(&self, state: &AppState) -> Result<(OperationalCounts, DateTime<Utc>), String> {
        if let Ok(last) = self.last.lock()
            && let Some((at, counts, now)) = last.as_ref()
            && at.elapsed() < GAUGE_CACHE
        {
            return Ok((counts.clone(), *now));
        }
        let now = state.services.clock.now();
        let counts = state
            .services
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

/// `GET /metrics`: the process's counters and histograms plus the database gauges.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let handle = prometheus();
    handle.run_upkeep();
    let mut body = handle.render();
    match state.gauges.get(&state).await {
        Ok((counts, now)) => write_gauges(&mut body, &counts, now),
        Err(error) => {
            tracing::error!(error = %error, "metrics: cannot read the database gauges");
            body.push_str("# database gauges unavailable\n");
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn write_gauges(out: &mut String, c: &OperationalCounts, now: DateTime<Utc>) {
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

/// The answer of `/readyz`: each check `ok` or `failed`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadinessChecks,
}

/// Each check: `ok` or `failed`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadinessChecks {
    /// The database answers.
    #[schema(example = "ok")]
    pub database: &'static str,
    /// Every migration of this build is applied.
    #[schema(example = "ok")]
    pub migrations: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// Whether this process can serve requests: database reachable, migrations current. Never
/// depends on the mail server or the outbox (shared by every process: a stuck mail must not take
/// them all out of rotation; `/metrics` and the alerts watch it). 503 names the failed check. No
/// personal data, no error details (they go to the log).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready; `checks` says why.", body = Readiness),
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.services.store;
    let database = match store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readyz: database unreachable");
            false
        }
    };
    let migrations = database
        && match store.migrations_current().await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(error = %e, "readyz: cannot read the migrations");
                false
            }
        };
    let ready = database && migrations;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: ReadinessChecks {
            database: verdict(database),
            migrations: verdict(migrations),
        },
    };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
