//! Operations: the process-wide metrics recorder and the request id (here), the database gauges
//! (`gauges`), the endpoints `/readyz` and `/metrics` (`endpoints`) and request logging
//! (`request_log`). docs/monitoring.md lists every series.

pub mod endpoints;
pub mod gauges;
pub mod request_log;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

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
