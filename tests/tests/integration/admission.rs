//! Admission control from outside: the per-client sign-up limit (429 + Retry-After; from
//! `restdose_core::limits`), which address counts (X-Forwarded-For only from a trusted proxy),
//! and a saturated budget answering 503 + Retry-After at once while other budgets and the
//! health check keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_tests::{Backend, TestApp, unique_email};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

async fn api_sign_up(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/registrations"))
        .json(&json!({ "email": unique_email("rate"), "postcode": "10115" }));
    if let Some(addr) = forwarded_for {
        request = request.header("X-Forwarded-For", addr);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_beyond_the_per_address_limit_get_429_and_other_addresses_are_unaffected() {
    // Arrange: 3 sign-ups per address and minute; the test client's proxy (127.0.0.1) is
    // trusted.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.signup_rate_per_ip_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1".to_owned()];
    })
    .await;

    // Act + assert: three pass, the next one from the same client is refused.
    for _ in 0..3 {
        assert_eq!(api_sign_up(&app, Some("203.0.113.7")).await.status(), 202);
    }
    let refused = api_sign_up(&app, Some("203.0.113.7")).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // The form is limited too, with a page in the visitor's language.
    let page = app
        .client
        .post(app.url("/"))
        .header("X-Forwarded-For", "203.0.113.7")
        .form(&[
            ("email", unique_email("form").as_str()),
            ("postcode", "10115"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(retry_after(&page) >= 1);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("Anmeldungen"));

    // Another client behind the same proxy, and an IPv6 one, still get through.
    assert_eq!(api_sign_up(&app, Some("203.0.113.8")).await.status(), 202);
    assert_eq!(api_sign_up(&app, Some("2001:db8::7")).await.status(), 202);
    // A client cannot escape by writing its own entry to the left of the proxy's.
    assert_eq!(
        api_sign_up(&app, Some("198.51.100.1, 203.0.113.7"))
            .await
            .status(),
        429
    );
    // Reading pages is not limited.
    assert_eq!(app.get("/").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Arrange: no trusted proxies, so every request counts for the peer 127.0.0.1.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.signup_rate_per_ip_per_minute = 2;
        c.trusted_proxies = vec!["10.0.0.0/8".to_owned()];
    })
    .await;

    // Act: each request claims to come from somewhere else.
    let statuses = [
        api_sign_up(&app, Some("203.0.113.1")).await.status(),
        api_sign_up(&app, Some("203.0.113.2")).await.status(),
        api_sign_up(&app, Some("203.0.113.3")).await.status(),
        api_sign_up(&app, None).await.status(),
    ];

    // Assert: the header changed nothing: two pass, then the peer is limited.
    assert_eq!(statuses.map(|s| s.as_u16()), [202, 202, 429, 429]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_public_budget_answers_503_at_once_while_practices_and_health_answer() {
    // Arrange: one public request at a time, 50 ms of queueing, a recognisable Retry-After.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.admission_public_concurrency = 1;
        c.admission_queue_wait_ms = 50;
        c.admission_retry_after_secs = 7;
    })
    .await;
    // One sign-up whose body never finishes: the handler waits for it, holding the only slot.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 200\r\n\r\nemail=slow"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    slow.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app.get("/").await.status() == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow request never took the slot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Act + assert: public pages are turned away quickly, with Retry-After…
    let started = Instant::now();
    let page = app.get("/").await;
    let elapsed = started.elapsed();
    assert_eq!(page.status(), 503);
    assert_eq!(retry_after(&page), 7);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("7 Sekunden"));
    // …the JSON API in JSON…
    let api = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": unique_email("busy"), "postcode": "10115" }),
        )
        .await;
    assert_eq!(api.status(), 503);
    assert_eq!(retry_after(&api), 7);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    // …while the practice portal, claims and the health check have their own budgets.
    assert_eq!(app.get("/portal/login").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let claim_page = app.get("/invitations/not-a-token").await.status();
    assert!(
        claim_page.is_client_error(),
        "claims are not limited by the public budget: {claim_page}"
    );

    // When the slow request goes away, the slot is free again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.get("/").await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "no 5xx other than 503");
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}
