//! Admission control: what the service does when more people arrive than it can serve.
//!
//! Every route belongs to a *budget* (`Budget::of`): public pages and the registration API,
//! claims (`/invitations…`, `/bookings…`), the practice portal and API, the admin pages, and
//! ops endpoints (`/healthz`, `/readyz`, `/metrics`), which are never limited. Each budget but
//! ops holds a bounded number of requests in flight (a semaphore) and a bounded queue in front
//! of it: a request that finds the queue full is answered at once with `503` and
//! `Retry-After`, and one that waits in the queue longer than `queue_wait` gets the same.
//! Under a sustained overload the queue stays full, so the surplus is turned away in well under
//! a millisecond while short bursts are still absorbed. Separate budgets mean a rush of sign-ups
//! can fill only its own slots: claims and practices keep theirs.
//!
//! Sign-up POSTs (the form and the JSON API) are also limited per client address (GCRA via
//! `governor`) → `429` with `Retry-After`. The client address is the peer's, or — only when the
//! peer is a configured trusted proxy — taken from `X-Forwarded-For` (`client_addr`).
//!
//! Rejections are counted in `restdose_admission_rejected_total{budget}`; the responses
//! themselves come from `error::rejection_response` (the one mapping to HTTP).

use actix_web::HttpRequest;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Rejection, rejection_response};

/// Limits of admission control (config keys `admission_*`, `signup_rate_per_ip_per_minute`,
/// `signup_burst_per_ip`, `trusted_proxies`; see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct AdmissionOptions {
    /// Requests in flight per budget.
    pub public_concurrency: usize,
    pub claims_concurrency: usize,
    pub practice_concurrency: usize,
    pub admin_concurrency: usize,
    /// How long a request may wait for a slot before it is turned away.
    pub queue_wait: Duration,
    /// Requests that may wait for a slot, per budget; more are turned away at once.
    pub max_queued: usize,
    /// `Retry-After` on every 503 and on budget rejections, in seconds.
    pub retry_after_secs: u32,
    /// Sign-up POSTs per client address and minute; 0 switches the limit off.
    pub signup_rate_per_ip_per_minute: u32,
    /// Sign-up POSTs a client address may send at once before the rate applies.
    pub signup_burst_per_ip: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for AdmissionOptions {
    /// Sized for a 2-core machine with `database_max_connections = 16`: the public budget
    /// stays below the pool so that claims and practices always find a connection.
    fn default() -> Self {
        AdmissionOptions {
            public_concurrency: 12,
            claims_concurrency: 16,
            practice_concurrency: 8,
            admin_concurrency: 4,
            queue_wait: Duration::from_millis(200),
            max_queued: 32,
            retry_after_secs: 2,
            signup_rate_per_ip_per_minute: 60,
            signup_burst_per_ip: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The budget a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Public,
    Claims,
    Practice,
    Admin,
    /// Health and metrics: never limited, so that a loaded instance is not taken for a dead one.
    Ops,
}

impl Budget {
    /// Classifies a request path (the path only: no query, no secrets are logged from it).
    pub fn of(path: &str) -> Budget {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "healthz" | "readyz" | "metrics" => Budget::Ops,
            "invitations" | "bookings" => Budget::Claims,
            "portal" => Budget::Practice,
            "admin" => Budget::Admin,
            "api" if path.starts_with("/api/v1/offers") => Budget::Practice,
            _ => Budget::Public,
        }
    }

    /// The label in `restdose_admission_rejected_total{budget}`.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Public => "public",
            Budget::Claims => "claims",
            Budget::Practice => "practice",
            Budget::Admin => "admin",
            Budget::Ops => "ops",
        }
    }
}

/// The label for sign-ups refused by the per-address limit.
const SIGNUP_RATE_LABEL: &str = "signup_per_ip";

/// Sign-up checks between two sweeps of idle addresses out of the limiter.
const SWEEP_EVERY: u64 = 1024;

/// The slots of one budget and the queue in front of them.
struct Gate {
    slots: Semaphore,
    queued: AtomicUsize,
}

impl Gate {
    fn new(slots: usize) -> Gate {
        Gate {
            slots: Semaphore::new(slots.max(1)),
            queued: AtomicUsize::new(0),
        }
    }

    /// A slot: at once if one is free, else after waiting in the queue; `None` when the queue
    /// is full or the wait is over.
    async fn enter(&self, max_queued: usize, wait: Duration) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        let _place = QueuePlace::take(&self.queued, max_queued)?;
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            // Timed out, or (never: the semaphore is not closed) closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// A place in a gate's queue, given back when dropped (also when the client goes away while
/// waiting and actix drops the request).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<QueuePlace<'a>> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Shared by all workers of one server.
pub(crate) struct Admission {
    options: AdmissionOptions,
    public: Gate,
    claims: Gate,
    practice: Gate,
    admin: Gate,
    signups: Option<DefaultKeyedRateLimiter<IpAddr>>,
    signup_checks: AtomicU64,
}

impl Admission {
    pub(crate) fn new(options: AdmissionOptions) -> Admission {
        let signups = NonZeroU32::new(options.signup_rate_per_ip_per_minute).map(|rate| {
            let burst = NonZeroU32::new(options.signup_burst_per_ip).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Admission {
            public: Gate::new(options.public_concurrency),
            claims: Gate::new(options.claims_concurrency),
            practice: Gate::new(options.practice_concurrency),
            admin: Gate::new(options.admin_concurrency),
            signups,
            signup_checks: AtomicU64::new(0),
            options,
        }
    }

    fn gate(&self, budget: Budget) -> Option<&Gate> {
        match budget {
            Budget::Public => Some(&self.public),
            Budget::Claims => Some(&self.claims),
            Budget::Practice => Some(&self.practice),
            Budget::Admin => Some(&self.admin),
            Budget::Ops => None,
        }
    }

    /// `Err(seconds to wait)` when this address has used up its sign-ups.
    fn check_signup(&self, client: IpAddr) -> Result<(), u32> {
        let Some(limiter) = &self.signups else {
            return Ok(());
        };
        // Addresses whose state is back to "fresh" are dropped now and then, so the map holds
        // only the addresses seen within the last burst/rate minutes.
        if self.signup_checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX)
        })
    }
}

/// True for the two sign-up endpoints.
fn is_signup(req: &ServiceRequest) -> bool {
    req.method() == Method::POST && matches!(req.path(), "/" | "/api/v1/registrations")
}

/// The middleware: per-address limit for sign-ups, then a slot in the route's budget.
pub(crate) async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(admission) = req.app_data::<web::Data<Admission>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let budget = Budget::of(req.path());
    if budget == Budget::Ops {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let retry_after = admission.options.retry_after_secs;

    if is_signup(&req)
        && let Some(client) = client_addr_of(req.request(), &admission.options.trusted_proxies)
        && let Err(wait) = admission.check_signup(client)
    {
        metrics::counter!("restdose_admission_rejected_total", "budget" => SIGNUP_RATE_LABEL)
            .increment(1);
        let response = rejection_response(req.request(), Rejection::RateLimited, wait.max(1));
        return Ok(req.into_response(response).map_into_right_body());
    }

    let Some(gate) = admission.gate(budget) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let options = &admission.options;
    let permit = match gate.enter(options.max_queued, options.queue_wait).await {
        Some(permit) => permit,
        None => {
            metrics::counter!("restdose_admission_rejected_total", "budget" => budget.name())
                .increment(1);
            let response = rejection_response(req.request(), Rejection::Busy, retry_after);
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    let mut response = next.call(req).await?;
    drop(permit);
    // Every 503 inside a budget (a saturated database pool included) carries the configured
    // Retry-After.
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    Ok(response.map_into_left_body())
}

/// The client address of a request, as `client_addr` decides it, with the trusted proxies
/// configured for this server.
pub(crate) fn client_addr_of(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_addr(peer, forwarded, trusted)
}

/// The address of the client: the peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
/// were written by the client and may be forged). An entry that cannot be read stops the walk:
/// the last trusted hop is the best that is known. Several header lines count as one list in
/// order. IPv4-mapped IPv6 addresses are treated as IPv4.
pub fn client_addr<'a>(
    peer: Option<IpAddr>,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = forwarded.flat_map(|line| line.split(',')).collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        match parse_forwarded_entry(entry) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return Some(ip),
            None => return Some(nearest),
        }
    }
    Some(nearest)
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:5000`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `trusted_proxies` entries: single addresses or CIDR networks.
pub fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR network"))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_turns_away_at_once_and_places_are_given_back() {
        let gate = Gate::new(1);
        let wait = Duration::from_secs(30);
        let slot = gate.enter(1, wait).await.expect("a free slot");

        // No queue at all: turned away without waiting for the 30 s.
        let quick = tokio::time::timeout(Duration::from_secs(5), gate.enter(0, wait)).await;
        assert!(matches!(quick, Ok(None)), "no place in a queue of 0");

        // One place: the first waiter takes it, the second is turned away at once.
        let first = gate.enter(1, wait);
        tokio::pin!(first);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut first)
                .await
                .is_err(),
            "the first waiter waits"
        );
        assert_eq!(gate.queued.load(Ordering::Acquire), 1);
        let second = tokio::time::timeout(Duration::from_secs(5), gate.enter(1, wait)).await;
        assert!(matches!(second, Ok(None)), "the queue is full");

        // The slot comes free: the waiter gets it and its place is given back.
        drop(slot);
        let got = tokio::time::timeout(Duration::from_secs(5), &mut first)
            .await
            .expect("the waiter is let in");
        assert!(got.is_some());
        assert_eq!(gate.queued.load(Ordering::Acquire), 0);
        drop(got);

        // A waiter that gives up (time-out) gives its place back too.
        let held = gate.enter(1, wait).await.expect("free again");
        assert!(gate.enter(1, Duration::from_millis(20)).await.is_none());
        assert_eq!(gate.queued.load(Ordering::Acquire), 0);
        drop(held);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        parse_trusted_proxies(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn client_address_table() {
        let proxies = nets(&["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
        // (peer, X-Forwarded-For lines, expected client)
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            // Untrusted peer: the header is ignored, whatever it says.
            ("198.51.100.9", &["203.0.113.7"], Some("198.51.100.9")),
            ("198.51.100.9", &[], Some("198.51.100.9")),
            ("198.51.100.9", &["garbage"], Some("198.51.100.9")),
            // Trusted peer without a header: the peer itself.
            ("10.1.2.3", &[], Some("10.1.2.3")),
            // Trusted peer: the right-most entry.
            ("10.1.2.3", &["203.0.113.7"], Some("203.0.113.7")),
            // A client forging entries to the left is not believed.
            ("10.1.2.3", &["1.2.3.4, 203.0.113.7"], Some("203.0.113.7")),
            ("10.1.2.3", &["1.2.3.4", "203.0.113.7"], Some("203.0.113.7")),
            // Chains of trusted proxies are skipped from the right.
            ("10.1.2.3", &["203.0.113.7, 10.9.9.9"], Some("203.0.113.7")),
            (
                "127.0.0.1",
                &["203.0.113.7,10.9.9.9, 127.0.0.1"],
                Some("203.0.113.7"),
            ),
            // All entries trusted: the left-most of them.
            ("10.1.2.3", &["10.4.4.4, 10.5.5.5"], Some("10.4.4.4")),
            // Garbage stops the walk at the last trusted hop.
            ("10.1.2.3", &["203.0.113.7, not-an-ip"], Some("10.1.2.3")),
            (
                "10.1.2.3",
                &["203.0.113.7, unknown, 10.9.9.9"],
                Some("10.9.9.9"),
            ),
            ("10.1.2.3", &[""], Some("10.1.2.3")),
            // IPv6, bracketed with a port, and v4 with a port.
            ("fd00::1", &["2001:db8::7"], Some("2001:db8::7")),
            ("10.1.2.3", &["[2001:db8::7]:443"], Some("2001:db8::7")),
            ("10.1.2.3", &["203.0.113.7:5000"], Some("203.0.113.7")),
            ("2001:db8::1", &["203.0.113.7"], Some("2001:db8::1")),
            // IPv4-mapped IPv6 peers count as their IPv4 address.
            ("::ffff:127.0.0.1", &["203.0.113.7"], Some("203.0.113.7")),
            (
                "::ffff:198.51.100.9",
                &["203.0.113.7"],
                Some("198.51.100.9"),
            ),
        ];
        for (peer, lines, expected) in cases {
            let got = client_addr(Some(ip(peer)), lines.iter().copied(), &proxies);
            assert_eq!(
                got,
                expected.map(ip),
                "peer {peer}, X-Forwarded-For {lines:?}"
            );
        }
        assert_eq!(
            client_addr(None, ["203.0.113.7"].into_iter(), &proxies),
            None
        );
        // Without trusted proxies nobody's header counts.
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), ["203.0.113.7"].into_iter(), &[]),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_networks() {
        let parsed = nets(&["192.0.2.1", "10.0.0.0/8", "::1", "fd00::/8"]);
        assert_eq!(parsed.len(), 4);
        assert!(parsed[0].contains(&ip("192.0.2.1")));
        assert!(!parsed[0].contains(&ip("192.0.2.2")));
        assert!(parse_trusted_proxies(&["10.0.0.0/33".to_owned()]).is_err());
        assert!(parse_trusted_proxies(&["proxy-host".to_owned()]).is_err());
    }

    #[test]
    fn routes_fall_into_their_budgets() {
        for (path, budget) in [
            ("/", Budget::Public),
            ("/confirm/abc", Budget::Public),
            ("/manage/abc/pause", Budget::Public),
            ("/api/v1/registrations", Budget::Public),
            ("/static/style.css", Budget::Public),
            ("/invitations/abc/claim", Budget::Claims),
            ("/bookings/abc", Budget::Claims),
            ("/portal/login", Budget::Practice),
            ("/portal", Budget::Practice),
            ("/api/v1/offers/1/close", Budget::Practice),
            ("/admin", Budget::Admin),
            ("/healthz", Budget::Ops),
            ("/readyz", Budget::Ops),
            ("/metrics", Budget::Ops),
            ("/portalx", Budget::Public),
        ] {
            assert_eq!(Budget::of(path), budget, "{path}");
        }
    }

    #[test]
    fn the_signup_limit_allows_the_burst_then_refuses_per_address() {
        let admission = Admission::new(AdmissionOptions {
            signup_rate_per_ip_per_minute: 1,
            signup_burst_per_ip: 3,
            ..AdmissionOptions::default()
        });
        let a = ip("203.0.113.7");
        for _ in 0..3 {
            assert_eq!(admission.check_signup(a), Ok(()));
        }
        let wait = admission.check_signup(a).unwrap_err();
        assert!((1..=61).contains(&wait), "{wait}");
        assert_eq!(admission.check_signup(ip("203.0.113.8")), Ok(()));
        let off = Admission::new(AdmissionOptions {
            signup_rate_per_ip_per_minute: 0,
            ..AdmissionOptions::default()
        });
        for _ in 0..100 {
            assert_eq!(off.check_signup(a), Ok(()));
        }
    }
}
