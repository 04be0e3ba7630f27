#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::client_addr::*;
use super::*;
use ipnet::IpNet;
use std::net::IpAddr;

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
fn budgets_follow_the_path_the_router_matches_not_the_raw_one() {
    for (uri, budget) in [
        ("/%70ortal/login", Budget::Practice),
        ("/api/v1/%6Fffers", Budget::Practice),
        ("/%61dmin", Budget::Admin),
        ("/%68ealthz", Budget::Ops),
        ("/api/v1/%72egistrations", Budget::Public),
    ] {
        let req = actix_web::test::TestRequest::with_uri(uri).to_srv_request();
        assert_eq!(Budget::of(routed_path(&req)), budget, "{uri}");
    }
}
