//! The registrant journey end to end, on both backends, through the real HTTP server with mail
//! received by a real SMTP server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use serde_json::{Value, json};

on_both_backends!(
    sign_up_confirm_and_manage_through_the_api,
    sign_up_through_the_form_keeps_input_and_shows_errors_beside_fields,
    bad_inputs_get_precise_errors_and_store_nothing,
    repeat_sign_up_looks_the_same_and_resends_at_most_every_ten_minutes,
    confirmed_person_signing_up_again_keeps_settings_and_gets_a_reminder,
    pending_repeat_sign_up_never_changes_settings_and_confirms_what_was_first_given,
    database_dump_holds_no_plaintext_address,
    links_opened_with_get_never_change_state,
    self_service_changes_pauses_resumes_and_deletes,
    one_click_unsubscribe_deletes_everything,
    expired_or_forged_links_are_refused,
    english_is_used_when_the_person_asks_for_it,
    sign_up_survives_a_mail_server_outage_and_its_mail_follows,
    unconfirmed_sign_ups_and_expired_links_are_deleted,
);

async fn unconfirmed_sign_ups_and_expired_links_are_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stale = unique_email("stale");
    let confirmed = unique_email("kept");
    app.sign_up(&stale, "10115").await;
    let manage = app.sign_up_confirmed(&confirmed, "10115").await;

    // Just before the confirmation link expires nothing goes.
    app.clock
        .advance(Duration::hours(48) - Duration::seconds(1));
    let report = app.services.expire_stale_records().await.unwrap();
    assert_eq!(report.unconfirmed_deleted, 0);
    assert_eq!(app.db.count("registrants").await, 2);

    app.clock.advance(Duration::seconds(2));
    let report = app.services.expire_stale_records().await.unwrap();
    assert_eq!(
        report.unconfirmed_deleted, 1,
        "the mail promised deletion after 48 hours"
    );
    assert_eq!(app.db.count("registrants").await, 1);
    assert!(
        app.get(&manage)
            .await
            .text()
            .await
            .unwrap()
            .contains("data-status=\"active\"")
    );

    // Self-service links expire after 180 days; the person stays on the list.
    app.clock.advance(Duration::days(180));
    let report = app.services.expire_stale_records().await.unwrap();
    assert_eq!(report.unconfirmed_deleted, 0);
    assert_eq!(
        report.tokens_deleted, 2,
        "the mailed link and the one from the confirmation page"
    );
    assert_eq!(app.get(&manage).await.status(), 404);
    assert_eq!(app.db.count("registrants").await, 1);
    assert_eq!(app.db.count("registrant_tokens").await, 0);
    app.stop().await;
}

async fn sign_up_confirm_and_manage_through_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("journey");

    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "10115", "radius_km": 25 }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "pending_confirmation" }));
    assert_eq!(app.db.count("registrants").await, 1);

    let mail = app.smtp.wait_for(&email, 1).await.pop().unwrap();
    assert!(
        mail.subject().contains("bestätigen"),
        "German by default: {}",
        mail.subject()
    );
    assert!(mail.html().contains("/confirm/"));
    assert!(mail.message_id().contains('@'));
    let manage = mail.link_path("/manage/");
    assert_eq!(
        mail.header("List-Unsubscribe").unwrap(),
        format!(
            "<{}{}>",
            app.base,
            manage.replace("/manage/", "/unsubscribe/")
        )
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );

    // The link opens a page with a button; only the POST confirms.
    let confirm = mail.link_path("/confirm/");
    let page = app.get(&confirm).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{confirm}\"")) && html.contains("method=\"post\""));
    let status = app.get(&manage).await.text().await.unwrap();
    assert!(status.contains("data-status=\"pending\""));

    let confirmed = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    let confirmed = confirmed.text().await.unwrap();
    let fresh_manage = confirmed
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/manage/"))
        .map(|s| format!("/manage/{}", &s[..43]))
        .expect("confirmation page links to the self-service page");

    for link in [&manage, &fresh_manage] {
        let page = app.get(link).await.text().await.unwrap();
        assert!(page.contains("data-status=\"active\""), "{page}");
        assert!(page.contains(&email), "the person sees their own address");
        assert!(page.contains("10115") && page.contains("25 km"));
    }

    // A confirmation link works once.
    assert_eq!(
        app.client
            .post(app.url(&confirm))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.stop().await;
}

async fn sign_up_through_the_form_keeps_input_and_shows_errors_beside_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for needle in [
        "<form method=\"post\" action=\"/\"",
        "name=\"email\"",
        "name=\"postcode\"",
        "name=\"radius_km\"",
        "lang=\"de\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }

    let response = app
        .post_form(
            "/",
            &[
                ("email", "not-an-address"),
                ("postcode", "99999"),
                ("radius_km", "7"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("value=\"not-an-address\""),
        "typed address is kept"
    );
    assert!(html.contains("value=\"99999\"") && html.contains("value=\"7\""));
    assert!(
        html.contains("id=\"email-error\"") && html.contains("aria-describedby=\"email-error\"")
    );
    assert!(html.contains("id=\"postcode-error\""));
    assert!(!html.contains("id=\"radius-error\""));
    assert_eq!(app.db.count("registrants").await, 0);

    let email = unique_email("form");
    let response = app
        .post_form(
            "/",
            &[("email", &email), ("postcode", "80331"), ("radius_km", "")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Postfach"));
    let mail = app.smtp.wait_for(&email, 1).await.pop().unwrap();
    let manage = mail.link_path("/manage/");
    let page = app.get(&manage).await.text().await.unwrap();
    assert!(
        page.contains("80331") && page.contains("10 km"),
        "default radius is 10 km"
    );
    app.stop().await;
}

/// (what, body as sent, content type, expected status, expected code, expected field)
type Case = (
    &'static str,
    Vec<u8>,
    &'static str,
    u16,
    &'static str,
    Option<&'static str>,
);

fn json_case(
    what: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    (
        what,
        serde_json::to_vec(&body).unwrap(),
        "application/json",
        status,
        code,
        field,
    )
}

async fn bad_inputs_get_precise_errors_and_store_nothing(backend: Backend) {
    // Thirty-odd sign-up POSTs from one address: with the per-address limit on (burst 30), the
    // last ones would be answered 429 before their body is read. The limit has its own tests
    // (admission.rs); here every body must reach validation.
    let app = TestApp::spawn_with(backend, |c| c.signup_rate_per_ip_per_minute = 0).await;
    let ok = "good@example.de";
    let local_65 = format!("{}@example.de", "a".repeat(65));
    let address_255 = format!(
        "{}@{}.{}.{}.dexx",
        "a".repeat(64),
        "b".repeat(60),
        "c".repeat(60),
        "d".repeat(63)
    );
    assert_eq!(address_255.len(), 255);
    let cases: Vec<Case> = vec![
        json_case(
            "empty address",
            json!({"email": "", "postcode": "10115"}),
            422,
            "required",
            Some("email"),
        ),
        json_case(
            "blank address",
            json!({"email": "   ", "postcode": "10115"}),
            422,
            "required",
            Some("email"),
        ),
        json_case(
            "missing address",
            json!({"postcode": "10115"}),
            422,
            "required",
            Some("email"),
        ),
        json_case(
            "null address",
            json!({"email": null, "postcode": "10115"}),
            422,
            "required",
            Some("email"),
        ),
        json_case(
            "address is a number",
            json!({"email": 42, "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "255-character address",
            json!({"email": address_255, "postcode": "10115"}),
            422,
            "email_too_long",
            Some("email"),
        ),
        json_case(
            "65-character local part",
            json!({"email": local_65, "postcode": "10115"}),
            422,
            "email_local_too_long",
            Some("email"),
        ),
        json_case(
            "no @",
            json!({"email": "anna.example.de", "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "two @",
            json!({"email": "a@b@example.de", "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "unicode local part",
            json!({"email": "jürgen@example.de", "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "no domain dot",
            json!({"email": "anna@localhost", "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "SQL meta-characters",
            json!({"email": "x'; DROP TABLE registrants;--@example.de", "postcode": "10115"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        json_case(
            "SQL in postcode",
            json!({"email": ok, "postcode": "1' OR '1'='1"}),
            422,
            "invalid_postcode",
            Some("postcode"),
        ),
        json_case(
            "missing postcode",
            json!({"email": ok}),
            422,
            "required",
            Some("postcode"),
        ),
        json_case(
            "empty postcode",
            json!({"email": ok, "postcode": ""}),
            422,
            "required",
            Some("postcode"),
        ),
        json_case(
            "postcode 1234",
            json!({"email": ok, "postcode": "1234"}),
            422,
            "invalid_postcode",
            Some("postcode"),
        ),
        json_case(
            "postcode 00000",
            json!({"email": ok, "postcode": "00000"}),
            422,
            "unknown_postcode",
            Some("postcode"),
        ),
        json_case(
            "postcode ABCDE",
            json!({"email": ok, "postcode": "ABCDE"}),
            422,
            "invalid_postcode",
            Some("postcode"),
        ),
        json_case(
            "postcode 123456",
            json!({"email": ok, "postcode": "123456"}),
            422,
            "invalid_postcode",
            Some("postcode"),
        ),
        json_case(
            "postcode as number",
            json!({"email": ok, "postcode": 10115}),
            422,
            "invalid_postcode",
            Some("postcode"),
        ),
        json_case(
            "radius 0",
            json!({"email": ok, "postcode": "10115", "radius_km": 0}),
            422,
            "invalid_radius",
            Some("radius_km"),
        ),
        json_case(
            "radius 51",
            json!({"email": ok, "postcode": "10115", "radius_km": 51}),
            422,
            "invalid_radius",
            Some("radius_km"),
        ),
        json_case(
            "radius -5",
            json!({"email": ok, "postcode": "10115", "radius_km": -5}),
            422,
            "invalid_radius",
            Some("radius_km"),
        ),
        json_case(
            "radius \"ten\"",
            json!({"email": ok, "postcode": "10115", "radius_km": "ten"}),
            422,
            "invalid_radius",
            Some("radius_km"),
        ),
        json_case(
            "radius 2.5",
            json!({"email": ok, "postcode": "10115", "radius_km": 2.5}),
            422,
            "invalid_radius",
            Some("radius_km"),
        ),
        json_case(
            "unknown field",
            json!({"email": ok, "postcode": "10115", "name": "Anna"}),
            400,
            "unknown_field",
            Some("name"),
        ),
        json_case(
            "array body",
            json!([ok, "10115"]),
            400,
            "invalid_json",
            None,
        ),
        (
            "malformed JSON",
            b"{\"email\": ".to_vec(),
            "application/json",
            400,
            "invalid_json",
            None,
        ),
        (
            "form body to the JSON API",
            b"email=good%40example.de&postcode=10115".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "text/plain",
            b"{}".to_vec(),
            "text/plain",
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "10 MB body",
            {
                let mut big = b"{\"email\":\"".to_vec();
                big.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
                big.extend_from_slice(b"@example.de\",\"postcode\":\"10115\"}");
                big
            },
            "application/json",
            413,
            "payload_too_large",
            None,
        ),
    ];
    assert!(cases.len() >= 25);

    for (what, body, content_type, status, code, field) in cases {
        let response = app
            .client
            .post(app.url("/api/v1/registrations"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
        assert_eq!(response.status().as_u16(), status, "{what}");
        let error: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        match field {
            Some(field) => assert_eq!(error["error"]["field"], field, "{what}"),
            None => assert!(error["error"].get("field").is_none(), "{what}: {error}"),
        }
        assert_eq!(
            app.db.count("registrants").await,
            0,
            "{what}: something was stored"
        );
        assert_eq!(
            app.db.count("registrant_tokens").await,
            0,
            "{what}: a token was stored"
        );
    }
    assert_eq!(app.smtp.count_for(ok), 0, "no mail for rejected input");

    // Accepted spellings: surrounding spaces, IDN domain, postcode with spaces around it.
    let idn = format!("{}@müller-{}.de", "max", uuid::Uuid::new_v4().simple());
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": format!("  {idn} "), "postcode": " 10115 " }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let punycode = format!("max@{}", idna_ascii(idn.split('@').nth(1).unwrap()));
    let mail = app.smtp.wait_for(&punycode, 1).await.pop().unwrap();
    assert!(mail.to[0].contains("xn--"));
    app.stop().await;
}

fn idna_ascii(domain: &str) -> String {
    // The same conversion the service promises (IDN domain to punycode), done independently.
    url::Url::parse(&format!("http://{domain}/"))
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned()
}

async fn repeat_sign_up_looks_the_same_and_resends_at_most_every_ten_minutes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("repeat");
    let first = app.sign_up(&email, "10115").await;

    // Again, immediately, and with different case: same answer, no new row, no new mail.
    for spelling in [email.clone(), email.to_uppercase()] {
        let response = app
            .post_json(
                "/api/v1/registrations",
                &json!({ "email": spelling, "postcode": "20095" }),
            )
            .await;
        assert_eq!(response.status(), 202);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({ "status": "pending_confirmation" })
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count_for(&email), 1);
    assert_eq!(app.db.count("registrants").await, 1);

    // After ten minutes a new confirmation goes out, for what was first given.
    app.clock.advance(Duration::minutes(10));
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "20095" }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let second = app.smtp.wait_for(&email, 2).await.pop().unwrap();
    assert_ne!(second.link_path("/confirm/"), first.link_path("/confirm/"));
    assert_eq!(app.db.count("registrants").await, 1);
    let page = app
        .get(&second.link_path("/manage/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("10115") && !page.contains("20095"));
    // Both confirmation links work until one is used.
    assert_eq!(
        app.client
            .post(app.url(&first.link_path("/confirm/")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

async fn confirmed_person_signing_up_again_keeps_settings_and_gets_a_reminder(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("known");
    let manage = app.sign_up_confirmed(&email, "10115").await;
    app.clock.advance(Duration::minutes(11));
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "80331", "radius_km": 50 }),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "pending_confirmation" })
    );
    let reminder = app.smtp.wait_for(&email, 2).await.pop().unwrap();
    assert!(
        reminder.subject().contains("bereits"),
        "{}",
        reminder.subject()
    );
    assert!(!reminder.text().contains("/confirm/"));
    let page = app.get(&manage).await.text().await.unwrap();
    assert!(
        page.contains("10115") && page.contains("data-status=\"active\""),
        "a stranger cannot change settings"
    );
    app.stop().await;
}

/// Whoever fills the form need not own the address: a repeat sign-up of a person who has not
/// confirmed yet changes nothing they gave, and the new mail and the confirm page show what the
/// link confirms.
async fn pending_repeat_sign_up_never_changes_settings_and_confirms_what_was_first_given(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("pending-repeat");
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "10115", "radius_km": 10 }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let first = app.smtp.wait_for(&email, 1).await.pop().unwrap();
    assert!(first.text().contains("10115") && first.text().contains("10 km"));

    app.clock.advance(Duration::minutes(11));
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "80331", "radius_km": 50 }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let second = app.smtp.wait_for(&email, 2).await.pop().unwrap();

    // The mail confirms what was first given.
    assert!(second.text().contains("/confirm/"));
    assert!(
        second.text().contains("Postleitzahl: 10115") && second.text().contains("Umkreis: 10 km"),
        "{}",
        second.text()
    );
    assert!(!second.text().contains("80331") && !second.text().contains("50 km"));

    // The page behind the link (before the POST) shows it too.
    let confirm = second.link_path("/confirm/");
    let page = app.get(&confirm).await.text().await.unwrap();
    assert!(
        page.contains("id=\"confirm-postcode\">10115<")
            && page.contains("id=\"confirm-radius\">10 km<"),
        "{page}"
    );
    assert!(!page.contains("80331"));

    // And what is stored, and confirmed, is what was first given.
    let response = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let manage = app
        .get(&second.link_path("/manage/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        manage.contains("id=\"stored-postcode\">10115<")
            && manage.contains("id=\"stored-radius\">10 km<"),
        "{manage}"
    );
    app.stop().await;
}

async fn database_dump_holds_no_plaintext_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut addresses = Vec::new();
    for i in 0..3 {
        let email = unique_email(&format!("secret{i}"));
        if i == 0 {
            app.sign_up_confirmed(&email, "10115").await;
        } else {
            app.sign_up(&email, "50667").await;
        }
        addresses.push(email);
    }
    let dump = app.db.dump().await;
    assert!(
        dump.contains("10115"),
        "the dump is real: {}",
        &dump[..dump.len().min(400)]
    );
    for email in &addresses {
        let local = email.split('@').next().unwrap();
        let hex: String = local.bytes().map(|b| format!("{b:02X}")).collect();
        for needle in [
            email.clone(),
            email.to_uppercase(),
            local.to_owned(),
            hex.clone(),
            hex.to_lowercase(),
        ] {
            assert!(!dump.contains(&needle), "the dump reveals an address");
        }
    }
    app.stop().await;
}

async fn links_opened_with_get_never_change_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("scanner");
    let mail = app.sign_up(&email, "10115").await;
    // A mail scanner follows every link in the mail.
    for link in mail.links() {
        let response = app.get(&link).await;
        assert!(response.status().is_success(), "{}", response.status());
    }
    let manage = mail.link_path("/manage/");
    for suffix in ["/pause", "/resume", "/delete", "/preferences"] {
        let response = app.get(&format!("{manage}{suffix}")).await;
        assert_eq!(response.status(), 404, "GET {suffix} must not exist");
    }
    assert_eq!(app.db.count("registrants").await, 1);
    let page = app.get(&manage).await.text().await.unwrap();
    assert!(
        page.contains("data-status=\"pending\""),
        "still unconfirmed"
    );
    app.stop().await;
}

async fn self_service_changes_pauses_resumes_and_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("self");
    let manage = app.sign_up_confirmed(&email, "10115").await;

    let response = app
        .post_form(
            &format!("{manage}/preferences"),
            &[("postcode", "12345"), ("radius_km", "60")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("value=\"12345\"") && html.contains("value=\"60\""),
        "input kept"
    );
    assert!(html.contains("id=\"postcode-error\"") && html.contains("id=\"radius-error\""));

    let response = app
        .post_form(
            &format!("{manage}/preferences"),
            &[("postcode", "01067"), ("radius_km", "30")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("{manage}?notice=saved")
    );
    let page = app.get(&manage).await.text().await.unwrap();
    assert!(page.contains("01067") && page.contains("30 km"));

    assert_eq!(
        app.post_form(&format!("{manage}/pause"), &[])
            .await
            .status(),
        303
    );
    assert!(
        app.get(&manage)
            .await
            .text()
            .await
            .unwrap()
            .contains("data-status=\"paused\"")
    );
    assert_eq!(
        app.post_form(&format!("{manage}/resume"), &[])
            .await
            .status(),
        303
    );
    assert!(
        app.get(&manage)
            .await
            .text()
            .await
            .unwrap()
            .contains("data-status=\"active\"")
    );

    let response = app.post_form(&format!("{manage}/delete"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.db.count("registrants").await, 0);
    assert_eq!(app.db.count("registrant_tokens").await, 0);
    assert_eq!(app.get(&manage).await.status(), 404);
    app.stop().await;
}

async fn one_click_unsubscribe_deletes_everything(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("unsub");
    let mail = app.sign_up(&email, "10115").await;
    let header = mail.header("List-Unsubscribe").unwrap();
    let url = header.trim_start_matches('<').trim_end_matches('>');
    // RFC 8058: the mail client POSTs exactly this body.
    let response = app
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.db.count("registrants").await, 0);
    assert_eq!(app.db.count("registrant_tokens").await, 0);
    // The confirmation link from the same mail is dead too.
    assert_eq!(app.get(&mail.link_path("/confirm/")).await.status(), 404);
    app.stop().await;
}

async fn expired_or_forged_links_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("late");
    let mail = app.sign_up(&email, "10115").await;
    let confirm = mail.link_path("/confirm/");
    for forged in [
        "/confirm/abc",
        "/confirm/' OR 1=1 --",
        "/manage/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(app.get(forged).await.status(), 404, "{forged}");
    }
    app.clock
        .advance(Duration::hours(48) + Duration::seconds(1));
    assert_eq!(app.get(&confirm).await.status(), 404);
    let response = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("48"));
    let page = app
        .get(&mail.link_path("/manage/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("data-status=\"pending\""),
        "an expired link confirms nobody"
    );
    app.stop().await;
}

async fn english_is_used_when_the_person_asks_for_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app
        .client
        .get(app.url("/"))
        .header("accept-language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("lang=\"en\"") && html.contains("Sign up"));
    let chosen = app.get("/?lang=en").await;
    let cookie = chosen.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("lang=en"));

    let email = unique_email("english");
    let response = app
        .client
        .post(app.url("/api/v1/registrations"))
        .header("accept-language", "en")
        .json(&json!({ "email": email, "postcode": "10115" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let mail = app.smtp.wait_for(&email, 1).await.pop().unwrap();
    assert!(mail.subject().contains("confirm"), "{}", mail.subject());
    assert!(mail.text().contains("Confirm sign-up"));
    app.stop().await;
}

async fn sign_up_survives_a_mail_server_outage_and_its_mail_follows(backend: Backend) {
    // The mail server is down: nothing listens on this port yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(backend, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into())
    })
    .await;
    let email = unique_email("outage");
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": email, "postcode": "10115" }),
        )
        .await;
    assert_eq!(
        response.status(),
        202,
        "the sign-up does not wait for the mail server"
    );
    let form = app
        .post_form(
            "/",
            &[
                ("email", &unique_email("form")),
                ("postcode", "10115"),
                ("radius_km", "5"),
            ],
        )
        .await;
    assert_eq!(form.status(), 200);
    assert_eq!(app.db.count("registrants").await, 2);

    // The delivery worker tried, failed, and keeps the mails for a retry.
    for _ in 0..500 {
        if app.services.store.outbox_depth().await.unwrap().0 == 2
            && app.db.count("outbox WHERE attempts > 0").await == 2
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.db.count("outbox WHERE attempts > 0").await, 2);

    // The server comes back; after the back-off the mail goes out, and the row is gone.
    let smtp =
        restdose_tests::TestSmtp::start(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    app.clock.advance(Duration::seconds(31));
    let mail = smtp.wait_for(&email, 1).await.pop().unwrap();
    assert!(mail.text().contains("/confirm/"));
    for _ in 0..500 {
        if app.db.count("outbox").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.db.count("outbox").await,
        0,
        "sent mails are deleted from the outbox"
    );
    app.stop().await;
}
