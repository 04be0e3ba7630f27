//! Counters and histograms of the use cases, through the `metrics` facade (no I/O here: without
//! an installed recorder they cost nothing). The names are shared with operators' dashboards;
//! docs/monitoring.md lists them. The web layer installs the Prometheus recorder.

/// Invitations written by the matcher (one per person per wave).
pub const INVITATIONS_SENT: &str = "restdose_invitations_sent_total";
/// Invitations that became a booking.
pub const INVITATIONS_CLAIMED: &str = "restdose_invitations_claimed_total";
/// Seconds from an offer being posted to its last dose being claimed.
pub const OFFER_TIME_TO_FILL: &str = "restdose_offer_time_to_fill_seconds";
/// Delivery attempts that failed (retried later, or dropped: see `MAIL_DROPPED`).
pub const MAIL_FAILURES: &str = "restdose_mail_failures_total";
/// Mails removed from the outbox undelivered, by `reason` (`permanent`, `expired`,
/// `unreadable`; see `outbox`).
pub const MAIL_DROPPED: &str = "restdose_mail_dropped_total";
/// Records deleted by the purge, by `kind`.
pub const PURGED: &str = "restdose_purged_total";

pub(crate) fn invitations_sent(n: u64) {
    metrics::counter!(INVITATIONS_SENT).increment(n);
}

pub(crate) fn invitation_claimed() {
    metrics::counter!(INVITATIONS_CLAIMED).increment(1);
}

pub(crate) fn offer_filled(seconds: f64) {
    metrics::histogram!(OFFER_TIME_TO_FILL).record(seconds.max(0.0));
}

pub(crate) fn mail_failed() {
    metrics::counter!(MAIL_FAILURES).increment(1);
}

pub(crate) fn mail_dropped(reason: &'static str) {
    metrics::counter!(MAIL_DROPPED, "reason" => reason).increment(1);
}

/// Records deleted by one purge, by kind. Every kind is recorded even at zero, so the series
/// exist from the first purge on.
pub(crate) fn purged(by_kind: &[(&'static str, u64)]) {
    for &(kind, n) in by_kind {
        metrics::counter!(PURGED, "kind" => kind).increment(n);
    }
}
