//! Operating the service: `/healthz`, `/readyz` (ready whatever the outbox holds; not ready
//! when the migrations are not current), `/metrics` parsed with a Prometheus text parser after
//! a scenario (every series of docs/monitoring.md, plausible values, route labels that are
//! patterns), mail that cannot be delivered (an address the SMTP server refuses with `550
//! 5.1.1`, a mail deferred for longer than `mail_max_age_hours`, an unreadable one: dropped and
//! counted, the service stays ready), `metrics_listen`, the OpenAPI document and the API
//! explorer (no external assets), `X-Request-Id`, and the JSON log lines of the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use prometheus_parse::{Sample, Scrape, Value};
use restdose_core::offers::{NumberInput, OfferInput, TimeInput};
use restdose_core::{Principal, RadiusInput};
use restdose_domain::{Clock, Email, Lang};
use restdose_mail::{OutgoingMail, Template, render};
use restdose_store::{OutboxRow, PracticeStatus, RegistrantStatus};
use restdose_tests::portal::{approved_practice, post_offer, registrant_id, vaccine};
use restdose_tests::processes::{Deployment, free_port};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use serde_json::Value as Json;
use sqlx::Connection;
use std::sync::OnceLock;
use uuid::Uuid;

on_both_backends!(
    health_readiness_and_metrics_after_a_scenario,
    an_address_refused_for_good_is_dropped_and_paused_and_the_service_stays_ready,
);

async fn scrape(app: &TestApp, url: &str) -> Scrape {
    parse(&scrape_text(app, url).await)
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("not Prometheus text")
}

/// The labelled samples of `name`, read strictly from the text. (`prometheus-parse` skips
/// samples whose label values hold `{` or `}`, as route patterns like `/confirm/{token}` do.)
fn labelled(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("a sample line");
            let mut pairs = Vec::new();
            let mut remaining = labels;
            while !remaining.is_empty() {
                let (key, after) = remaining.split_once("=\"").expect("key=\"value\"");
                let (value, after) = after.split_once('"').expect("a closing quote");
                pairs.push((key.to_owned(), value.to_owned()));
                remaining = after.strip_prefix(',').unwrap_or(after);
            }
            (pairs, value.trim().parse::<f64>().expect("a number"))
        })
        .collect()
}

async fn scrape_text(app: &TestApp, url: &str) -> String {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

fn samples<'a>(scrape: &'a Scrape, name: &str) -> Vec<&'a Sample> {
    scrape.samples.iter().filter(|s| s.metric == name).collect()
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => f64::NAN,
    }
}

/// The one sample of `name` whose labels include `labels`.
fn one(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = samples(scrape, name)
        .into_iter()
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one sample {name}{labels:?}, found {}: {:?}",
        found.len(),
        scrape.samples.iter().map(|s| &s.metric).collect::<Vec<_>>()
    );
    number(found[0])
}

async fn readyz(app: &TestApp) -> (u16, Json) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn health_readiness_and_metrics_after_a_scenario(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Alive and ready.
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok"}
        })
    );

    // A scenario: three people confirm, one does not; a practice offers one dose; a wave
    // invites; one claims (which fills the offer); the purge runs.
    let mut manage = Vec::new();
    let emails: Vec<String> = (0..3).map(|_| unique_email("ops")).collect();
    for email in &emails {
        manage.push(app.sign_up_confirmed(email, "10115").await);
    }
    app.sign_up(&unique_email("ops-unconfirmed"), "10115").await;
    let practice = approved_practice(&app, "ops-practice").await;
    let principal = Principal::Practice {
        id: practice.id,
        status: PracticeStatus::Approved,
    };
    let now = app.clock.now();
    let (starts, ends) = (
        (now + Duration::hours(2)).to_rfc3339(),
        (now + Duration::hours(4)).to_rfc3339(),
    );
    let vaccine = vaccine(&app);
    let offer = app
        .services
        .post_offer(
            &principal,
            &OfferInput {
                vaccine: &vaccine,
                doses: NumberInput::Number(1),
                starts_at: TimeInput::Rfc3339(&starts),
                ends_at: TimeInput::Rfc3339(&ends),
                claim_minutes: NumberInput::Number(15),
                radius_km: RadiusInput::Number(10),
                note: "",
            },
        )
        .await
        .unwrap();
    let mut invited = 0;
    while let Some(outcome) = app.services.run_wave_once().await.unwrap() {
        if let restdose_core::matcher::WaveOutcome::Invited {
            offer_id,
            invited: n,
            ..
        } = outcome
            && offer_id == offer.id
        {
            invited += n;
        }
    }
    assert!(invited >= 1, "the wave invited nobody");
    // Claim through the mailed link.
    let mut claimed = false;
    'people: for _ in 0..250 {
        for email in &emails {
            for mail in app.smtp.mails_for(email) {
                if mail.subject().contains("Impfdosis") {
                    let link = mail.link_path("/invitations/");
                    let response = app.post_form(&format!("{link}/claim"), &[]).await;
                    assert_eq!(response.status(), 303, "the claim did not book");
                    claimed = true;
                    break 'people;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(claimed, "no invitation arrived");
    // A second, untouched offer stays open.
    app.services
        .post_offer(
            &principal,
            &OfferInput {
                vaccine: &vaccine,
                doses: NumberInput::Number(5),
                starts_at: TimeInput::Rfc3339(&starts),
                ends_at: TimeInput::Rfc3339(&ends),
                claim_minutes: NumberInput::Number(15),
                radius_km: RadiusInput::Number(10),
                note: "",
            },
        )
        .await
        .unwrap();
    app.services.purge_once().await.unwrap();

    let text = scrape_text(&app, &app.url("/metrics")).await;
    let metrics = parse(&text);
    // Gauges read from this database.
    assert_eq!(
        one(&metrics, "restdose_people", &[("state", "waiting")]),
        2.0
    );
    assert_eq!(
        one(&metrics, "restdose_people", &[("state", "booked")]),
        1.0
    );
    assert_eq!(
        one(&metrics, "restdose_people", &[("state", "unconfirmed")]),
        1.0
    );
    assert_eq!(
        one(&metrics, "restdose_people", &[("state", "paused")]),
        0.0
    );
    assert_eq!(one(&metrics, "restdose_open_offers", &[]), 2.0);
    let depth = one(&metrics, "restdose_outbox_depth", &[]);
    let age = one(&metrics, "restdose_outbox_oldest_age_seconds", &[]);
    assert!(depth >= 0.0 && age >= 0.0 && (depth > 0.0 || age == 0.0));
    // Counters of the process (other tests in this binary add to them too).
    assert!(one(&metrics, "restdose_invitations_sent_total", &[]) >= f64::from(invited));
    assert!(one(&metrics, "restdose_invitations_claimed_total", &[]) >= 1.0);
    assert!(one(&metrics, "restdose_mail_failures_total", &[]) >= 0.0);
    for reason in ["permanent", "expired", "unreadable"] {
        assert!(
            one(
                &metrics,
                "restdose_mail_dropped_total",
                &[("reason", reason)]
            ) >= 0.0
        );
    }
    assert!(
        one(
            &metrics,
            "restdose_purged_total",
            &[("kind", "unconfirmed")]
        ) >= 0.0
    );
    assert!(one(&metrics, "restdose_purged_total", &[("kind", "offers")]) >= 0.0);
    let fill_count = samples(&metrics, "restdose_offer_time_to_fill_seconds_count");
    let fill = samples(&metrics, "restdose_offer_time_to_fill_seconds");
    assert!(
        fill_count.iter().map(|s| number(s)).sum::<f64>() >= 1.0
            || fill.iter().map(|s| number(s)).sum::<f64>() >= 1.0,
        "no time to fill was observed"
    );
    // HTTP: per route pattern, never a raw path.
    let requests = labelled(&text, "restdose_http_requests_total");
    let count = |method: &str, route: &str, status: &str| -> f64 {
        requests
            .iter()
            .filter(|(labels, _)| {
                let get = |k: &str| {
                    labels
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.as_str())
                };
                get("method") == Some(method)
                    && get("route") == Some(route)
                    && get("status") == Some(status)
            })
            .map(|(_, n)| *n)
            .sum()
    };
    assert!(
        count("POST", "/confirm/{token}", "200") >= 3.0,
        "{requests:?}"
    );
    assert!(count("POST", "/invitations/{token}/claim", "303") >= 1.0);
    assert!(count("POST", "/api/v1/registrations", "202") >= 4.0);
    assert!(count("GET", "/readyz", "200") >= 1.0);
    let durations = labelled(&text, "restdose_http_request_duration_seconds_count");
    assert!(
        durations.iter().any(|(labels, n)| *n >= 3.0
            && labels.contains(&("route".to_owned(), "/confirm/{token}".to_owned()))
            && labels.contains(&("status".to_owned(), "200".to_owned()))),
        "no latency histogram for /confirm/{{token}}"
    );
    assert!(text.contains("# TYPE restdose_http_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE restdose_offer_time_to_fill_seconds histogram"));
    for (labels, _) in requests.iter().chain(durations.iter()) {
        let route = &labels
            .iter()
            .find(|(k, _)| k == "route")
            .expect("a route label")
            .1;
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "odd route label {route}"
        );
        for path in &manage {
            let token = path.trim_start_matches("/manage/");
            assert!(!route.contains(token), "a token in a route label: {route}");
        }
    }

    // Mail that does not go out never makes the process unready. A mail the server defers
    // (451) stays in the outbox for retries; one nobody can read is dropped at once.
    let ready = serde_json::json!({
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"}
    });
    let before = parse(&scrape_text(&app, &app.url("/metrics")).await);
    let dropped_before = |reason| {
        one(
            &before,
            "restdose_mail_dropped_total",
            &[("reason", reason)],
        )
    };
    let (expired_before, unreadable_before) =
        (dropped_before("expired"), dropped_before("unreadable"));
    let deferred = unique_email("ops-deferred");
    app.smtp.defer(&deferred);
    let mail = OutgoingMail {
        to: Email::parse(&deferred).unwrap(),
        message_id: app.services.links.message_id(Uuid::new_v4()),
        content: render(
            Lang::De,
            &Template::AlreadyRegistered {
                manage_url: "http://127.0.0.1/manage/x",
                unsubscribe_url: "http://127.0.0.1/unsubscribe/x",
            },
        ),
    };
    let stored_at = app.clock.now();
    let deferred_row = app.services.outbox_row(&mail, stored_at).unwrap();
    let unreadable_row = OutboxRow {
        id: Uuid::new_v4(),
        key_id: 1,
        payload: vec![0; 40],
        created_at: stored_at,
        attempts: 0,
        next_attempt_at: stored_at,
        registrant_id: None,
        offer_id: None,
    };
    app.services
        .store
        .enqueue_mails(&[deferred_row, unreadable_row])
        .await
        .unwrap();
    wait_until(
        &app,
        "the deferred mail tried, the unreadable one dropped",
        async || {
            app.db.count("outbox").await == 1
                && app.db.count("outbox WHERE attempts > 0").await == 1
        },
    )
    .await;
    // Longer than the old 15-minute threshold, and hours (22 h 15 min in all): still ready,
    // the mail still queued.
    for advance in [
        Duration::seconds(901),
        Duration::hours(2),
        Duration::hours(20),
    ] {
        app.clock.advance(advance);
        let (status, body) = readyz(&app).await;
        assert_eq!((status, &body), (200, &ready));
    }
    assert_eq!(
        app.db.count("outbox").await,
        1,
        "dropped before mail_max_age_hours"
    );
    assert_eq!(app.smtp.count_for(&deferred), 0);
    // Past mail_max_age_hours (24) the next failure drops it.
    app.clock.advance(Duration::hours(2));
    wait_until(&app, "the deferred mail dropped", async || {
        app.db.count("outbox").await == 0
    })
    .await;
    assert!(app.clock.now() - stored_at > app.services.delivery.max_age);
    let (status, body) = readyz(&app).await;
    assert_eq!((status, &body), (200, &ready));
    let after = parse(&scrape_text(&app, &app.url("/metrics")).await);
    // At least: the other backend's run of this test counts in this process too.
    assert!(
        one(
            &after,
            "restdose_mail_dropped_total",
            &[("reason", "expired")]
        ) >= expired_before + 1.0
    );
    assert!(
        one(
            &after,
            "restdose_mail_dropped_total",
            &[("reason", "unreadable")]
        ) >= unreadable_before + 1.0
    );
    app.smtp.accept(&deferred);

    // The database is behind the code: a migration is missing.
    let forget =
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(forget).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(forget).execute(&mut conn).await.unwrap();
        }
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["migrations"], "failed");
    // Still alive.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

/// Polls `done` every 20 ms for up to 10 s.
async fn wait_until(app: &TestApp, what: &str, done: impl AsyncFn() -> bool) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "timed out waiting: {what} (outbox: {} rows)",
        app.db.count("outbox").await
    );
}

/// `restdose_mail_dropped_total{reason}` of this process.
async fn dropped(app: &TestApp, reason: &str) -> f64 {
    let metrics = parse(&scrape_text(app, &app.url("/metrics")).await);
    one(
        &metrics,
        "restdose_mail_dropped_total",
        &[("reason", reason)],
    )
}

/// The bounce test counts permanent drops exactly; its two backends take turns, since the
/// counter belongs to the process.
fn permanent_drops_counted_alone() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Issue #13: one address that bounces must not take the service out of rotation. People sign
/// up through the running service; the SMTP server refuses one of them with `550 5.1.1` at
/// `RCPT TO`. Their invitation is dropped (not retried), they are paused and marked, everyone
/// else gets their mail, `/readyz` stays 200 long past the old threshold, and the drop is
/// counted once. Their page says why; resuming there clears the mark.
async fn an_address_refused_for_good_is_dropped_and_paused_and_the_service_stays_ready(
    backend: Backend,
) {
    let _alone = permanent_drops_counted_alone().lock().await;
    let app = TestApp::spawn(backend).await;
    let emails: Vec<String> = (0..4).map(|_| unique_email("bounce")).collect();
    let mut manage = Vec::new();
    for email in &emails {
        manage.push(app.sign_up_confirmed(email, "10115").await);
    }
    let (bouncing, bouncing_page) = (&emails[1], &manage[1]);
    let bouncing_id = registrant_id(&app, bouncing_page).await;
    let practice = approved_practice(&app, "bounce-practice").await;
    let permanent_before = dropped(&app, "permanent").await;
    app.smtp.refuse(bouncing);

    // A wave invites all four (10 doses); the mail server refuses one address for good.
    post_offer(&app, &practice.browser).await;
    let mut invited = 0;
    while let Some(outcome) = app.services.run_wave_once().await.unwrap() {
        if let restdose_core::matcher::WaveOutcome::Invited { invited: n, .. } = outcome {
            invited += n;
        }
    }
    assert_eq!(invited, 4);
    for email in emails.iter().filter(|e| *e != bouncing) {
        app.smtp
            .wait_for_matching(email, |m| m.subject().contains("Impfdosis"))
            .await;
    }
    wait_until(&app, "the refused mail dropped", async || {
        app.db.count("outbox").await == 0
    })
    .await;
    for _ in 0..500 {
        if dropped(&app, "permanent").await > permanent_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(dropped(&app, "permanent").await, permanent_before + 1.0);
    // Not retried: only the confirmation ever reached the address, however long we wait.
    assert_eq!(app.smtp.count_for(bouncing), 1);
    let person = app
        .services
        .store
        .registrant(bouncing_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(person.status, RegistrantStatus::Paused);
    assert_eq!(person.undeliverable_at, Some(app.clock.now()));
    assert_eq!(person.paused_at, Some(app.clock.now()));
    assert_eq!(app.db.count("registrants WHERE status = 'paused'").await, 1);
    assert_eq!(
        app.db
            .count("registrants WHERE undeliverable_at IS NOT NULL")
            .await,
        1
    );

    // Not invited again: a new offer's waves pass them by.
    post_offer(&app, &practice.browser).await;
    while app.services.run_wave_once().await.unwrap().is_some() {}
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.smtp.count_for(bouncing), 1);
    assert_eq!(dropped(&app, "permanent").await, permanent_before + 1.0);

    // Ready, now and long after the old 15-minute threshold.
    let ready = serde_json::json!({
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"}
    });
    for advance in [
        Duration::zero(),
        Duration::seconds(901),
        Duration::hours(30),
    ] {
        app.clock.advance(advance);
        let (status, body) = readyz(&app).await;
        assert_eq!((status, &body), (200, &ready));
    }

    // Their page says why they are paused; resuming there clears the mark.
    let page = app.get(bouncing_page).await.text().await.unwrap();
    assert!(page.contains("id=\"undeliverable\""), "{page}");
    assert!(page.contains("am 2026-05-04 abgewiesen"), "{page}");
    assert!(page.contains("data-status=\"paused\""), "{page}");
    let others = app.get(&manage[0]).await.text().await.unwrap();
    assert!(!others.contains("id=\"undeliverable\""));
    let resumed = app.post_form(&format!("{bouncing_page}/resume"), &[]).await;
    assert_eq!(resumed.status(), 303);
    let person = app
        .services
        .store
        .registrant(bouncing_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(person.status, RegistrantStatus::Active);
    assert_eq!(person.undeliverable_at, None);
    let page = app.get(bouncing_page).await.text().await.unwrap();
    assert!(!page.contains("id=\"undeliverable\""), "{page}");
    app.smtp.accept(bouncing);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_on_its_own_port_only() {
    let port = free_port();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.metrics_listen = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let metrics = scrape(&app, &format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(one(&metrics, "restdose_open_offers", &[]), 0.0);
    assert_eq!(app.get("/metrics").await.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_and_explorer_are_served_from_the_binary() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Json = response.json().await.expect("the document is not JSON");
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "openapi {version}");
    for (path, method) in [
        ("/api/v1/registrations", "post"),
        ("/api/v1/offers", "post"),
        ("/api/v1/offers/{id}", "get"),
        ("/api/v1/offers/{id}/close", "post"),
        ("/api/v1/offers/{id}/checkins", "post"),
        ("/readyz", "get"),
        ("/api/v1/statistics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let offers = &doc["paths"]["/api/v1/offers"]["post"];
    assert!(offers["security"].is_array());
    for status in [
        "201", "400", "401", "403", "413", "415", "422", "429", "503",
    ] {
        assert!(
            offers["responses"][status].is_object(),
            "POST /api/v1/offers does not document {status}"
        );
    }
    assert!(
        offers["responses"]["429"]["headers"]["Retry-After"].is_object(),
        "429 without Retry-After"
    );

    let explorer = app.get("/api/docs/").await;
    assert_eq!(explorer.status(), 200);
    let html = explorer.text().await.unwrap();
    assert!(html.contains("swagger"), "not the explorer: {html}");
    let lower = html.to_ascii_lowercase();
    for external in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "//cdn",
    ] {
        assert!(
            !lower.contains(external),
            "external asset ({external}) in {html}"
        );
    }
    // Its scripts come from the binary too, and point at our document.
    let initializer = app.get("/api/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), 200);
    let script = initializer.text().await.unwrap();
    assert!(script.contains("/api/v1/openapi.json"), "{script}");
    assert!(!script.contains("http://") && !script.contains("https://"));
    let bundle = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_when_safe_and_generated_otherwise() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let get = |id: Option<&'static str>| {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };
    let echoed = get(Some("abc-123_DEF.4")).await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123_DEF.4");
    for bad in [
        None,
        Some("alex@example.org"),
        Some("has space"),
        Some("a-very-long-identifier-that-goes-on-and-on-and-on-beyond-sixty-four-characters"),
    ] {
        let response = get(bad).await.unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(Uuid::parse_str(id).is_ok(), "{bad:?} gave {id}");
    }
    // Also on errors and on JSON answers.
    let response = app
        .post_json("/api/v1/registrations", &serde_json::json!({"nope": 1}))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key("x-request-id"));
    app.stop().await;
}

/// The real binary with `log_format = "json"`: every line of its output is one JSON object with
/// timestamp, level, target and fields (with the message), and a request's lines carry its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_of_the_binary_are_one_object_per_line_with_the_request_id() {
    let mut deployment = Deployment::postgres().await;
    deployment.set("log_format", "json");
    let mut api = deployment.serve_no_workers("json-logs").await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/readyz", api.base_url()))
        .header("X-Request-Id", "json-log-check-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "json-log-check-1");
    let mut seen = false;
    for _ in 0..100 {
        if api.log_tail().contains("json-log-check-1") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the request was not logged:\n{}", api.log_tail());
    api.assert_running();
    let log = api.log_tail();
    // The tail may start in the middle of a line.
    let lines: Vec<&str> = log.lines().skip(usize::from(log.len() >= 4000)).collect();
    assert!(!lines.is_empty());
    let mut request_lines = 0;
    for line in lines {
        let event: Json =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(event[key].is_string(), "no {key} in {line}");
        }
        assert!(
            event["fields"]["message"].is_string(),
            "no message in {line}"
        );
        if event["fields"]["message"] == "request" && line.contains("/readyz") {
            request_lines += 1;
            assert_eq!(event["span"]["request_id"], "json-log-check-1", "{line}");
            assert_eq!(event["fields"]["route"], "/readyz");
        }
    }
    assert_eq!(request_lines, 1);
}
