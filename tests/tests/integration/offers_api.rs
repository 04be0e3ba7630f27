//! The practice API end to end, on both backends: a token made on the portal, offers posted,
//! read, checked in and closed with it, strict validation with one error shape, and the token
//! stored only as its hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, FixedOffset, Utc};
use restdose_domain::{BookingCode, Clock};
use restdose_store::BookingStatus;
use restdose_tests::portal::{Practice, approved_practice, book, vaccine};
use restdose_tests::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

on_both_backends!(
    practice_software_posts_reads_checks_in_and_closes_an_offer,
    invalid_offers_get_one_error_shape_and_nothing_is_stored,
    unknown_and_malformed_offer_ids_are_404,
    the_token_is_stored_only_as_its_hash,
);

/// Creates a token on the portal; returns the secret the page shows once.
async fn create_token(practice: &Practice, name: &str) -> String {
    let response = practice
        .browser
        .submit("/portal/tokens", "/portal/tokens", &[("name", name)])
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    html.split("value=\"rdk_")
        .nth(1)
        .map(|rest| format!("rdk_{}", rest.split('"').next().unwrap()))
        .expect("the secret is shown")
}

/// An approved practice and its API token.
async fn practice_software(app: &TestApp) -> (Practice, String) {
    let practice = approved_practice(app, "api").await;
    let secret = create_token(&practice, "Praxissoftware").await;
    (practice, secret)
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app.client.post(app.url(path)),
    }
    .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, headers, json)
}

/// Asserts `{"error":{"code","message","field"}}` and nothing else.
fn assert_error(body: &Value, code: &str, field: Option<&str>, case: &str) {
    let outer = body.as_object().unwrap_or_else(|| panic!("{case}: {body}"));
    assert_eq!(outer.len(), 1, "{case}: only `error`: {body}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{case}: {body}"));
    assert_eq!(error["code"], code, "{case}: {body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "{case}: a message: {body}");
    match field {
        Some(field) => assert_eq!(error.get("field"), Some(&json!(field)), "{case}: {body}"),
        None => assert!(!error.contains_key("field"), "{case}: no field: {body}"),
    }
    assert!(
        error
            .keys()
            .all(|k| ["code", "message", "field"].contains(&k.as_str())),
        "{case}: {body}"
    );
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A valid body: 6 doses from in an hour for two hours.
fn valid_offer(app: &TestApp) -> Value {
    let now = app.clock.now();
    json!({
        "vaccine": vaccine(app),
        "doses": 6,
        "starts_at": rfc3339(now + Duration::hours(1)),
        "ends_at": rfc3339(now + Duration::hours(3)),
    })
}

fn booking_statuses(body: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = body["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["code"].as_str().unwrap().to_owned(),
                b["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

async fn practice_software_posts_reads_checks_in_and_closes_an_offer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_practice, token) = practice_software(&app).await;
    assert!(
        token.starts_with("rdk_") && token.len() == 4 + 43,
        "{token}"
    );

    // Post: times with any offset, stored as instants.
    let now = app.clock.now();
    let berlin = FixedOffset::east_opt(2 * 3600).unwrap();
    let starts = now + Duration::hours(1);
    let ends = now + Duration::hours(3);
    let body = json!({
        "vaccine": vaccine(&app),
        "doses": 6,
        "starts_at": starts.with_timezone(&berlin).to_rfc3339(),
        "ends_at": rfc3339(ends),
        "claim_minutes": 20,
        "radius_km": 15,
        "note": "Bitte Impfpass mitbringen.",
    });
    let (status, headers, offer) = send(&app, "POST", "/api/v1/offers", &token, Some(&body)).await;
    assert_eq!(status, 201, "{offer}");
    let id = Uuid::parse_str(offer["id"].as_str().unwrap()).unwrap();
    let path = format!("/api/v1/offers/{id}");
    assert_eq!(headers["location"], path.as_str());
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(offer["status"], "open");
    assert_eq!(offer["vaccine"], vaccine(&app));
    assert_eq!(offer["doses"], 6);
    assert_eq!(offer["claimed"], 0);
    assert_eq!(offer["checked_in"], 0);
    assert_eq!(offer["remaining"], 6);
    assert_eq!(instant(&offer["starts_at"]), starts);
    assert_eq!(instant(&offer["ends_at"]), ends);
    assert_eq!(offer["claim_minutes"], 20);
    assert_eq!(offer["radius_km"], 15);
    assert_eq!(offer["note"], "Bitte Impfpass mitbringen.");
    assert_eq!(offer["postcode"], "10115", "the practice's postcode");
    assert_eq!(offer["bookings"], json!([]));
    assert_eq!(app.db.count("offers").await, 1);

    // The optional fields have their defaults.
    let (status, _, defaults) = send(
        &app,
        "POST",
        "/api/v1/offers",
        &token,
        Some(&valid_offer(&app)),
    )
    .await;
    assert_eq!(status, 201, "{defaults}");
    assert_eq!(defaults["claim_minutes"], 15);
    assert_eq!(defaults["radius_km"], 10);
    assert_eq!(defaults["note"], "");
    let elsewhere = Uuid::parse_str(defaults["id"].as_str().unwrap()).unwrap();
    assert_ne!(elsewhere, id);

    // Read, with bookings (as the matcher would make them).
    let first = book(&app, id, None).await;
    let second = book(&app, id, None).await;
    let foreign = book(&app, elsewhere, None).await;
    let (status, headers, view) = send(&app, "GET", &path, &token, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(view["id"], id.to_string());
    assert_eq!(view["status"], "open");
    assert_eq!(view["doses"], 6);
    assert_eq!(view["claimed"], 2);
    assert_eq!(view["checked_in"], 0);
    assert_eq!(view["remaining"], 4);
    assert_eq!(view["note"], "Bitte Impfpass mitbringen.");
    let mut expected = vec![
        (first.display(), "booked".to_owned()),
        (second.display(), "booked".to_owned()),
    ];
    expected.sort();
    assert_eq!(booking_statuses(&view), expected, "codes as XXXX-XXXX-XXXX");

    // Check-in.
    let checkins = format!("{path}/checkins");
    let unbooked = loop {
        let code = BookingCode::from_random(Uuid::new_v4().as_u128() as u64);
        if code != first && code != second && code != foreign {
            break code;
        }
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "code": first.display() }), "checked_in"),
        (json!({ "code": first.display() }), "already_used"),
        // Typed the way people read codes out: any case, without hyphens.
        (
            json!({ "code": first.as_str().to_lowercase() }),
            "already_used",
        ),
        (json!({ "code": unbooked.display() }), "unknown"),
        (json!({ "code": "not-a-code" }), "unknown"),
        (json!({ "code": "U" }), "unknown"),
        // A code of another offer of the same practice does not count here.
        (json!({ "code": foreign.display() }), "unknown"),
    ];
    for (body, result) in &cases {
        let (status, _, answer) = send(&app, "POST", &checkins, &token, Some(body)).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(answer, json!({ "result": result }), "{body}");
    }
    for (body, code) in [
        (json!({}), "required"),
        (json!({ "code": "" }), "required"),
        (json!({ "code": null }), "required"),
        (json!({ "code": 42 }), "invalid_type"),
    ] {
        let (status, _, answer) = send(&app, "POST", &checkins, &token, Some(&body)).await;
        assert_eq!(status, 422, "{body}");
        assert_error(&answer, code, Some("code"), &body.to_string());
    }
    let (status, _, answer) = send(
        &app,
        "POST",
        &checkins,
        &token,
        Some(&json!({ "code": first.display(), "offer": 1 })),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&answer, "unknown_field", Some("offer"), "unknown field");

    let (_, _, view) = send(&app, "GET", &path, &token, None).await;
    assert_eq!(view["checked_in"], 1);
    assert_eq!(view["claimed"], 2);
    assert_eq!(view["remaining"], 4);
    let mut expected = vec![
        (first.display(), "checked_in".to_owned()),
        (second.display(), "booked".to_owned()),
    ];
    expected.sort();
    assert_eq!(booking_statuses(&view), expected);
    let untouched = app.services.store.bookings_of(elsewhere).await.unwrap();
    assert_eq!(untouched[0].status, BookingStatus::Booked);

    // Close, once.
    let close = format!("{path}/close");
    let (status, _, closed) = send(&app, "POST", &close, &token, None).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["id"], id.to_string());
    assert_eq!(closed["checked_in"], 1);
    let (status, _, again) = send(&app, "POST", &close, &token, None).await;
    assert_eq!(status, 409);
    assert_error(&again, "conflict", None, "closing twice");
    let (_, _, view) = send(&app, "GET", &path, &token, None).await;
    assert_eq!(view["status"], "closed");
    // Bookings made stay valid after closing.
    let (status, _, answer) = send(
        &app,
        "POST",
        &checkins,
        &token,
        Some(&json!({ "code": second.display() })),
    )
    .await;
    assert_eq!((status, answer), (200, json!({ "result": "checked_in" })));
    assert_eq!(app.db.count("offers").await, 2);
    app.stop().await;
}

async fn invalid_offers_get_one_error_shape_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_practice, token) = practice_software(&app).await;
    let now = app.clock.now();
    let at = |d: Duration| rfc3339(now + d);
    let with = |changes: Value| {
        let mut body = valid_offer(&app);
        for (k, v) in changes.as_object().unwrap() {
            if v == &json!("<remove>") {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let h = Duration::hours;
    let d = Duration::days;

    #[rustfmt::skip]
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        ("missing vaccine", with(json!({ "vaccine": "<remove>" })), 422, "required", Some("vaccine")),
        ("empty vaccine", with(json!({ "vaccine": " " })), 422, "required", Some("vaccine")),
        ("unknown vaccine", with(json!({ "vaccine": "Unobtainium" })), 422, "invalid_vaccine", Some("vaccine")),
        ("vaccine not a string", with(json!({ "vaccine": 7 })), 422, "invalid_type", Some("vaccine")),
        ("missing doses", with(json!({ "doses": "<remove>" })), 422, "required", Some("doses")),
        ("doses 0", with(json!({ "doses": 0 })), 422, "invalid_doses", Some("doses")),
        ("doses -1", with(json!({ "doses": -1 })), 422, "invalid_doses", Some("doses")),
        ("doses 201", with(json!({ "doses": 201 })), 422, "invalid_doses", Some("doses")),
        ("doses \"six\"", with(json!({ "doses": "six" })), 422, "invalid_doses", Some("doses")),
        ("doses 2.5", with(json!({ "doses": 2.5 })), 422, "invalid_doses", Some("doses")),
        ("missing start", with(json!({ "starts_at": "<remove>" })), 422, "required", Some("starts_at")),
        ("start in the past", with(json!({ "starts_at": at(-h(1)), "ends_at": at(h(1)) })), 422, "in_past", Some("starts_at")),
        ("start 6 minutes ago", with(json!({ "starts_at": at(-Duration::minutes(6)) })), 422, "in_past", Some("starts_at")),
        ("end before start", with(json!({ "starts_at": at(h(3)), "ends_at": at(h(1)) })), 422, "end_before_start", Some("ends_at")),
        ("end equal to start", with(json!({ "starts_at": at(h(1)), "ends_at": at(h(1)) })), 422, "end_before_start", Some("ends_at")),
        ("start more than 7 days ahead", with(json!({ "starts_at": at(d(8)), "ends_at": at(d(8) + h(2)) })), 422, "too_far_ahead", Some("starts_at")),
        ("end more than 7 days ahead", with(json!({ "starts_at": at(d(6)), "ends_at": at(d(7) + h(1)) })), 422, "too_far_ahead", Some("ends_at")),
        ("time not RFC 3339", with(json!({ "starts_at": "2026-05-04 16:00" })), 422, "invalid_time", Some("starts_at")),
        ("time without offset", with(json!({ "starts_at": "2026-05-04T16:00" })), 422, "invalid_time", Some("starts_at")),
        ("time as a number", with(json!({ "ends_at": 1_777_900_000 })), 422, "invalid_time", Some("ends_at")),
        ("claim_minutes 4", with(json!({ "claim_minutes": 4 })), 422, "invalid_claim_minutes", Some("claim_minutes")),
        ("claim_minutes 121", with(json!({ "claim_minutes": 121 })), 422, "invalid_claim_minutes", Some("claim_minutes")),
        ("claim_minutes \"15\"", with(json!({ "claim_minutes": "15" })), 422, "invalid_claim_minutes", Some("claim_minutes")),
        ("radius 0", with(json!({ "radius_km": 0 })), 422, "invalid_radius", Some("radius_km")),
        ("radius 51", with(json!({ "radius_km": 51 })), 422, "invalid_radius", Some("radius_km")),
        ("radius \"ten\"", with(json!({ "radius_km": "ten" })), 422, "invalid_radius", Some("radius_km")),
        ("note of 501 characters", with(json!({ "note": "ä".repeat(501) })), 422, "note_too_long", Some("note")),
        ("note with a control character", with(json!({ "note": "Bitte\u{7} klingeln" })), 422, "invalid_note", Some("note")),
        ("note with a bidi override", with(json!({ "note": "Bitte \u{202E}nlegnilk" })), 422, "invalid_note", Some("note")),
        ("note with a zero-width space", with(json!({ "note": "https://r\u{200B}.example" })), 422, "invalid_note", Some("note")),
        ("note with a line separator", with(json!({ "note": "Bitte\u{2028}klingeln" })), 422, "invalid_note", Some("note")),
        ("note not a string", with(json!({ "note": ["a"] })), 422, "invalid_type", Some("note")),
        ("unknown field", with(json!({ "colour": "blue" })), 400, "unknown_field", Some("colour")),
        ("not an object", json!([valid_offer(&app)]), 400, "invalid_json", None),
    ];
    for (case, body, status, code, field) in &cases {
        let (got, headers, answer) = send(&app, "POST", "/api/v1/offers", &token, Some(body)).await;
        assert_eq!(got, *status, "{case}: {answer}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{case}"
        );
        assert_error(&answer, code, *field, case);
        if *status == 422 && *code != "invalid_type" {
            // The message is the field's own, not a generic one.
            assert_ne!(answer["error"]["message"], "Invalid input.", "{case}");
        }
        assert_eq!(app.db.count("offers").await, 0, "{case} stored an offer");
    }

    // Bodies refused before they are read as JSON.
    let valid = serde_json::to_vec(&valid_offer(&app)).unwrap();
    let post = || {
        app.client
            .post(app.url("/api/v1/offers"))
            .bearer_auth(&token)
    };
    let too_large = serde_json::to_vec(&with(json!({ "note": "x".repeat(20_000) }))).unwrap();
    let raw: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "text/plain",
            post()
                .header("content-type", "text/plain")
                .body(valid.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "form content type",
            post()
                .header("content-type", "application/x-www-form-urlencoded")
                .body(valid.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            post().body(valid.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "body too large",
            post()
                .header("content-type", "application/json")
                .body(too_large),
            413,
            "payload_too_large",
        ),
        (
            "malformed JSON",
            post()
                .header("content-type", "application/json")
                .body("{\"vaccine\": "),
            400,
            "invalid_json",
        ),
    ];
    for (case, request, status, code) in raw {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{case}");
        let answer: Value = response.json().await.unwrap();
        assert_error(&answer, code, None, case);
        assert_eq!(app.db.count("offers").await, 0, "{case} stored an offer");
    }

    // The edges themselves are allowed.
    #[rustfmt::skip]
    let edges: Vec<(&str, Value)> = vec![
        ("doses 1", with(json!({ "doses": 1 }))),
        ("doses 200", with(json!({ "doses": 200 }))),
        ("claim_minutes 5", with(json!({ "claim_minutes": 5 }))),
        ("claim_minutes 120", with(json!({ "claim_minutes": 120 }))),
        ("radius 1", with(json!({ "radius_km": 1 }))),
        ("radius 50", with(json!({ "radius_km": 50 }))),
        ("note of 500 characters", with(json!({ "note": "ä".repeat(500) }))),
        ("starting a moment ago", with(json!({ "starts_at": at(-Duration::minutes(4)) }))),
        ("up to 7 days ahead", with(json!({ "starts_at": at(d(7) - h(2)), "ends_at": at(d(7)) }))),
        ("explicit nulls", with(json!({ "claim_minutes": null, "radius_km": null, "note": null }))),
    ];
    for (n, (case, body)) in edges.iter().enumerate() {
        let (status, _, answer) = send(&app, "POST", "/api/v1/offers", &token, Some(body)).await;
        assert_eq!(status, 201, "{case}: {answer}");
        assert_eq!(app.db.count("offers").await, n as i64 + 1, "{case}");
    }
    app.stop().await;
}

async fn unknown_and_malformed_offer_ids_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_practice, token) = practice_software(&app).await;
    let check_in = json!({ "code": "7K3M-Q9ZT-2W4H" });
    let unknown = Uuid::new_v4();
    for id in [
        unknown.to_string(),
        "not-a-uuid".to_owned(),
        Uuid::nil().to_string(),
    ] {
        let requests: [(&str, String, Option<&Value>); 3] = [
            ("GET", format!("/api/v1/offers/{id}"), None),
            ("POST", format!("/api/v1/offers/{id}/close"), None),
            (
                "POST",
                format!("/api/v1/offers/{id}/checkins"),
                Some(&check_in),
            ),
        ];
        for (method, path, body) in requests {
            let (status, _, answer) = send(&app, method, &path, &token, body).await;
            assert_eq!(status, 404, "{method} {path}");
            assert_error(&answer, "not_found", None, &path);
        }
    }
    assert_eq!(app.db.count("offers").await, 0);
    app.stop().await;
}

async fn column_lengths(app: &TestApp, sql: &str) -> Vec<i64> {
    match app.db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("octet_length", "length")))
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
    }
}

async fn the_token_is_stored_only_as_its_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (practice, token) = practice_software(&app).await;
    let second = create_token(&practice, "Zweitgerät").await;
    // Used once, so that every column a use writes is filled too.
    let (status, _, _) = send(
        &app,
        "POST",
        "/api/v1/offers",
        &token,
        Some(&valid_offer(&app)),
    )
    .await;
    assert_eq!(status, 201);

    assert_eq!(app.db.count("api_tokens").await, 2);
    let lengths = column_lengths(
        &app,
        "SELECT CAST(octet_length(token_hash) AS BIGINT) FROM api_tokens",
    )
    .await;
    assert_eq!(lengths, vec![32, 32], "SHA-256, 32 bytes");

    let dump = app.db.dump().await;
    for secret in [&token, &second] {
        let bare = secret.strip_prefix("rdk_").unwrap();
        assert!(!dump.contains(bare), "the secret is in the database");
        // Nor any recognisable part of it.
        assert!(
            !dump.contains(&bare[..16]),
            "a part of the secret is in the database"
        );
        let hash: String = restdose_crypto::SecretToken::parse(bare)
            .unwrap()
            .hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            dump.to_lowercase().contains(&hash),
            "the stored hash is SHA-256 of the secret"
        );
    }
    app.stop().await;
}
