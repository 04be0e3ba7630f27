//! The practice portal end to end, on both backends, through the real HTTP server with mail
//! received by a real SMTP server: sign-up and approval, offers and check-in, login throttling,
//! sessions, password reset and change, API tokens, and CSRF on every form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use restdose_tests::portal::{
    Browser, PASSWORD, account_id, admin, approved_practice, book, csrf_from, location, log_in_as,
    logged_in, post_offer, registrant_id, session_cookie_value, set_cookies, sign_up_fields,
    sign_up_practice, vaccine, verified_practice,
};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};

/// Form fields as posted.
type Fields<'a> = Vec<(&'a str, &'a str)>;

on_both_backends!(
    practice_signs_up_verifies_is_approved_and_posts_an_offer_by_form,
    offer_page_checks_in_marks_no_shows_adds_doses_and_closes,
    cancelling_an_offer_mails_everyone_who_booked,
    form_errors_keep_input_beside_the_fields_but_never_the_password,
    five_wrong_passwords_lock_the_login_until_the_back_off_ends,
    unverified_login_gets_403_and_a_new_link,
    every_state_changing_form_refuses_a_missing_or_wrong_csrf_token,
    roles_and_states_get_the_designed_statuses,
    logout_ends_the_session_on_the_server,
    password_reset_by_mailed_link_ends_old_sessions,
    changing_the_password_keeps_this_browser_and_ends_other_sessions,
    an_idle_session_ends_after_thirty_minutes,
    api_tokens_are_shown_once_and_can_be_revoked,
);

async fn practice_signs_up_verifies_is_approved_and_posts_an_offer_by_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("praxis");

    // Sign-up page and form.
    let visitor = Browser::new(&app);
    let (status, html) = visitor.page("/portal/signup").await;
    assert_eq!(status, 200);
    for field in [
        "name", "street", "postcode", "city", "phone", "email", "password", "csrf",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "missing field {field}"
        );
    }
    let verify = sign_up_practice(&app, &email).await;

    // The password is stored as argon2id with the pinned parameters.
    let account = app
        .services
        .store
        .account_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    assert!(
        account
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "not a pinned argon2id PHC string"
    );
    assert!(!app.db.dump().await.contains(PASSWORD));

    // The link opens a page with a button; only the POST verifies, and only once.
    let (status, html) = visitor.page(&verify).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("action=\"{verify}\"")) && html.contains("method=\"post\""));
    assert!(
        app.services
            .store
            .account_by_email(&email)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at
            .is_none()
    );
    assert_eq!(visitor.post(&verify, &[]).await.status(), 200);
    assert_eq!(visitor.post(&verify, &[]).await.status(), 404);

    // Before approval the practice may log in and sees its status, but may not post.
    let browser = logged_in(&app, &email, PASSWORD).await;
    let (status, html) = browser.page("/portal").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-status=\"pending\""), "{html}");
    assert!(!html.contains("href=\"/portal/offers/new\""));
    assert_eq!(browser.get("/portal/offers/new").await.status(), 403);

    let id = account_id(&app, &email).await;
    app.services
        .decide_practice_as_operator(id, restdose_core::Decision::Approve)
        .await
        .unwrap();
    let (status, html) = browser.page("/portal").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-status=\"approved\""));
    assert!(
        html.contains("href=\"/portal/offers/new\""),
        "a Post spare doses button"
    );

    // Post an offer by form.
    let (status, html) = browser.page("/portal/offers/new").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("<option value=\"{}\"", vaccine(&app))));
    assert!(html.contains("name=\"claim_minutes\"") && html.contains("value=\"15\""));
    assert!(html.contains("name=\"radius_km\"") && html.contains("value=\"10\""));
    assert!(html.contains("type=\"datetime-local\""));
    let offer = post_offer(&app, &browser).await;

    let (status, html) = browser.page(&format!("/portal/offers/{offer}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("04.05.2026 16:00–18:00"),
        "window in local time: {html}"
    );
    assert!(html.contains("data-status=\"open\""));
    assert!(html.contains("id=\"doses\">10<") && html.contains("id=\"remaining\">10<"));
    assert!(html.contains("id=\"claimed\">0<") && html.contains("id=\"checked-in\">0<"));
    assert!(
        html.contains("8 Std. 0 Min."),
        "time left until 18:00 from 10:00"
    );
    assert!(html.contains("Bitte Impfpass mitbringen."));

    let (_, html) = browser.page("/portal").await;
    assert!(html.contains(&format!("href=\"/portal/offers/{offer}\"")));
    app.stop().await;
}

async fn offer_page_checks_in_marks_no_shows_adds_doses_and_closes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "checkin").await;
    let browser = &practice.browser;
    let offer = post_offer(&app, browser).await;
    let first = book(&app, offer, None).await;
    let second = book(&app, offer, None).await;
    let page = format!("/portal/offers/{offer}");

    let (_, html) = browser.page(&page).await;
    assert!(
        html.contains(&first.display()),
        "codes shown as XXXX-XXXX-XXXX"
    );
    assert!(html.contains("id=\"claimed\">2<") && html.contains("id=\"remaining\">8<"));
    assert!(html.contains(&format!(
        "action=\"/portal/offers/{offer}/bookings/{}/no-show\"",
        first.as_str()
    )));

    // Typed the way people read codes out: lower case, with hyphens.
    let checkins = format!("/portal/offers/{offer}/checkins");
    let typed = first.display().to_lowercase();
    let response = browser.submit(&page, &checkins, &[("code", &typed)]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("data-notice=\"portal.checkin.done\""),
        "{html}"
    );
    assert!(html.contains(&format!(
        "data-code=\"{}\" data-status=\"checked_in\"",
        first.as_str()
    )));
    assert!(html.contains("id=\"checked-in\">1<"));

    let response = browser
        .submit(&page, &checkins, &[("code", first.as_str())])
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("data-alert=\"portal.checkin.used\"")
    );

    let response = browser
        .submit(&page, &checkins, &[("code", "ZZZZ-ZZZZ-ZZZZ")])
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("data-alert=\"portal.checkin.unknown\""));
    assert!(
        html.contains("value=\"ZZZZ-ZZZZ-ZZZZ\""),
        "a mistyped code is kept for correction"
    );

    // No-show.
    let no_show = format!(
        "/portal/offers/{offer}/bookings/{}/no-show",
        second.as_str()
    );
    let response = browser.submit(&page, &no_show, &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{page}?notice=no_show"));
    let (_, html) = browser.page(&location(&response)).await;
    assert!(html.contains(&format!(
        "data-code=\"{}\" data-status=\"no_show\"",
        second.as_str()
    )));
    assert!(html.contains("data-notice=\"portal.offer.no_show_done\""));
    let response = browser.submit(&page, &no_show, &[]).await;
    assert_eq!(
        location(&response),
        format!("{page}?notice=no_show_refused")
    );
    let response = browser
        .submit(&page, &checkins, &[("code", second.as_str())])
        .await;
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("data-alert=\"portal.checkin.used\"")
    );

    // Add doses; a bad number is shown beside the field and kept.
    let doses = format!("/portal/offers/{offer}/doses");
    let response = browser.submit(&page, &doses, &[("doses", "5")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{page}?notice=doses_added"));
    let (_, html) = browser.page(&page).await;
    assert!(html.contains("id=\"doses\">15<") && html.contains("id=\"remaining\">13<"));
    let response = browser.submit(&page, &doses, &[("doses", "0")]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("id=\"doses-error\"") && html.contains("aria-describedby=\"doses-error\"")
    );
    assert!(html.contains(
        "name=\"doses\" type=\"number\" min=\"1\" max=\"200\" step=\"1\" required value=\"0\""
    ));

    // Close early: bookings stay; closing twice or adding doses afterwards is refused.
    let close = format!("/portal/offers/{offer}/close");
    let response = browser.submit(&page, &close, &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{page}?notice=closed"));
    let (_, html) = browser.page(&page).await;
    assert!(html.contains("id=\"offer-status\" data-status=\"closed\""));
    assert!(
        !html.contains(&format!("action=\"{close}\"")),
        "no close button on a closed offer"
    );
    let csrf = csrf_from(&html);
    let response = browser.post(&close, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 409);
    let response = browser
        .post(&doses, &[("csrf", &csrf), ("doses", "1")])
        .await;
    assert_eq!(response.status(), 409);
    app.stop().await;
}

async fn cancelling_an_offer_mails_everyone_who_booked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "cancel").await;
    let offer = post_offer(&app, &practice.browser).await;
    let person = unique_email("booked");
    let manage = app.sign_up_confirmed(&person, "10115").await;
    let registrant = registrant_id(&app, &manage).await;
    let code = book(&app, offer, Some(registrant)).await;
    let before = app.smtp.count_for(&person);
    let page = format!("/portal/offers/{offer}");

    let (_, html) = practice.browser.page(&page).await;
    assert!(
        html.contains("id=\"cancel-warning\""),
        "the page warns that everyone gets a mail"
    );
    let response = practice
        .browser
        .submit(&page, &format!("{page}/cancel"), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{page}?notice=cancelled"));

    let mail = app.smtp.wait_for(&person, before + 1).await.pop().unwrap();
    assert!(mail.subject().contains("Abgesagt"), "{}", mail.subject());
    assert!(mail.text().contains("04.05.2026 16:00–18:00"));
    let (_, html) = practice.browser.page(&page).await;
    assert!(html.contains("id=\"offer-status\" data-status=\"cancelled\""));
    assert!(html.contains(&format!(
        "data-code=\"{}\" data-status=\"cancelled\"",
        code.as_str()
    )));

    let csrf = csrf_from(&html);
    let again = practice
        .browser
        .post(&format!("{page}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status(), 409);
    app.stop().await;
}

async fn form_errors_keep_input_beside_the_fields_but_never_the_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Sign-up.
    let visitor = Browser::new(&app);
    let secret = "kurz";
    let response = visitor
        .submit(
            "/portal/signup",
            "/portal/signup",
            &[
                ("name", "Praxis Am Markt"),
                ("street", "Markt 3"),
                ("postcode", "1011"),
                ("city", "Berlin"),
                ("phone", "call me"),
                ("email", "not-an-address"),
                ("password", secret),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    for kept in [
        "value=\"Praxis Am Markt\"",
        "value=\"Markt 3\"",
        "value=\"1011\"",
        "value=\"call me\"",
        "value=\"not-an-address\"",
    ] {
        assert!(html.contains(kept), "lost {kept}");
    }
    assert!(
        !html.contains(&format!("value=\"{secret}\"")),
        "the password is never sent back"
    );
    for field in ["postcode", "phone", "email", "password"] {
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "no error for {field}"
        );
    }
    assert!(
        html.contains("aria-describedby=\"phone-error\"") && html.contains("aria-invalid=\"true\"")
    );
    assert!(!html.contains("id=\"name-error\""));
    assert!(
        html.contains("mindestens 12 Zeichen"),
        "password_too_short explained"
    );
    assert_eq!(app.db.count("accounts").await, 0);

    // Offer form.
    let practice = approved_practice(&app, "errors").await;
    let long_note = "x".repeat(501);
    let response = practice
        .browser
        .submit(
            "/portal/offers/new",
            "/portal/offers",
            &[
                ("vaccine", "Wundermittel"),
                ("doses", "500"),
                ("starts_at", "2026-05-04T09:00"),
                ("ends_at", "2026-05-04T08:00"),
                ("claim_minutes", "2"),
                ("radius_km", "80"),
                ("note", &long_note),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    for field in [
        "vaccine",
        "doses",
        "starts_at",
        "ends_at",
        "claim_minutes",
        "radius_km",
        "note",
    ] {
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "no error for {field}"
        );
    }
    for kept in [
        "value=\"500\"",
        "value=\"2026-05-04T09:00\"",
        "value=\"2026-05-04T08:00\"",
        "value=\"2\"",
        "value=\"80\"",
    ] {
        assert!(html.contains(kept), "lost {kept}");
    }
    assert!(html.contains(&format!(">{long_note}</textarea>")));
    assert!(html.contains("in der Vergangenheit") && html.contains("nach dem Beginn"));

    // Typed text is kept and escaped, never interpreted.
    let response = practice
        .browser
        .submit(
            "/portal/offers/new",
            "/portal/offers",
            &[("vaccine", &vaccine(&app)), ("doses", "<b>3</b>")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("value=\"&#60;b&#62;3&#60;/b&#62;\"")
            || html.contains("value=\"&lt;b&gt;3&lt;/b&gt;\""),
        "escaped"
    );
    assert!(
        html.contains(&format!("<option value=\"{}\" selected>", vaccine(&app))),
        "the choice is kept"
    );
    assert!(
        html.contains("id=\"starts_at-error\""),
        "missing start is required"
    );
    app.stop().await;
}

async fn five_wrong_passwords_lock_the_login_until_the_back_off_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "throttle").await;
    let browser = Browser::new(&app);

    // (Failures also count per client address: a sixth failure from here would lock too.)
    for attempt in 1..=5 {
        let response = log_in_as(&browser, &practice.email, "wrong password, sorry").await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
        let html = response.text().await.unwrap();
        assert!(html.contains("E-Mail-Adresse oder Passwort stimmen nicht."));
        assert!(!html.contains("wrong password, sorry"));
        assert!(
            html.contains(&format!("value=\"{}\"", practice.email)),
            "the address is kept"
        );
    }

    // The sixth attempt is refused even with the right password.
    let response = log_in_as(&browser, &practice.email, PASSWORD).await;
    assert_eq!(response.status(), 429);
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert!(session_cookie_value(&response).is_none());

    app.clock.advance(Duration::seconds(retry + 1));
    let response = log_in_as(&browser, &practice.email, PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal");
    app.stop().await;
}

async fn unverified_login_gets_403_and_a_new_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("unverified");
    let first = sign_up_practice(&app, &email).await;

    let response = log_in_as(&Browser::new(&app), &email, PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert!(session_cookie_value(&response).is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("neuen Bestätigungslink")
    );
    let mail = app.smtp.wait_for(&email, 2).await.pop().unwrap();
    let second = mail.link_path("/portal/verify/");
    assert_ne!(first, second);

    // An unknown address gets the same answer as a wrong password.
    let visitor = Browser::new(&app);
    let wrong = log_in_as(&visitor, &email, "wrong password, sorry").await;
    assert_eq!(wrong.status(), 401);
    let unknown = log_in_as(&visitor, &unique_email("nobody"), PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    let message = "E-Mail-Adresse oder Passwort stimmen nicht.";
    assert!(
        wrong.text().await.unwrap().contains(message)
            && unknown.text().await.unwrap().contains(message)
    );

    // Bad links are 404; the new one works.
    assert_eq!(
        visitor
            .post("/portal/verify/not-a-token", &[])
            .await
            .status(),
        404
    );
    assert_eq!(visitor.post(&second, &[]).await.status(), 200);
    let response = log_in_as(&visitor, &email, PASSWORD).await;
    assert_eq!(response.status(), 303);
    app.stop().await;
}

async fn every_state_changing_form_refuses_a_missing_or_wrong_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "csrf").await;
    let browser = &practice.browser;
    let offer = post_offer(&app, browser).await;
    let code = book(&app, offer, None).await;
    let token_page = browser
        .submit(
            "/portal/tokens",
            "/portal/tokens",
            &[("name", "Praxissoftware")],
        )
        .await
        .text()
        .await
        .unwrap();
    let token_id = token_page
        .split("data-token=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let vaccine = vaccine(&app);

    let session_forms: Vec<(String, Fields)> = vec![
        ("/portal/logout".into(), vec![]),
        (
            "/portal/offers".into(),
            vec![
                ("vaccine", &vaccine),
                ("doses", "3"),
                ("starts_at", "2026-05-04T16:00"),
                ("ends_at", "2026-05-04T17:00"),
            ],
        ),
        (
            format!("/portal/offers/{offer}/checkins"),
            vec![("code", code.as_str())],
        ),
        (
            format!("/portal/offers/{offer}/bookings/{}/no-show", code.as_str()),
            vec![],
        ),
        (
            format!("/portal/offers/{offer}/doses"),
            vec![("doses", "5")],
        ),
        (format!("/portal/offers/{offer}/close"), vec![]),
        (format!("/portal/offers/{offer}/cancel"), vec![]),
        ("/portal/tokens".into(), vec![("name", "noch einer")]),
        (format!("/portal/tokens/{token_id}/revoke"), vec![]),
        (
            "/portal/password".into(),
            vec![
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        ),
    ];
    let stranger = Browser::new(&app);
    for (path, fields) in &session_forms {
        let response = browser.post(path, fields).await;
        assert_eq!(response.status(), 403, "missing CSRF on {path}");
        let mut wrong = vec![("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")];
        wrong.extend_from_slice(fields);
        let response = browser.post(path, &wrong).await;
        assert_eq!(response.status(), 403, "wrong CSRF on {path}");
        // A bare POST without any form body is refused the same way.
        let response = browser.client.post(browser.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 403, "bare POST on {path}");
        // Without a session the answer is 401, whatever the token.
        let response = stranger.post(path, &wrong).await;
        assert_eq!(response.status(), 401, "no session on {path}");
    }

    // Nothing changed: still logged in, offer open, booking booked, one live token, old password.
    let (status, html) = browser.page(&format!("/portal/offers/{offer}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"offer-status\" data-status=\"open\"")
            && html.contains("id=\"doses\">10<")
    );
    assert!(html.contains(&format!(
        "data-code=\"{}\" data-status=\"booked\"",
        code.as_str()
    )));
    let (_, html) = browser.page("/portal/tokens").await;
    assert_eq!(html.matches("data-token=").count(), 1);
    assert!(!html.contains("Widerrufen am"));
    assert_eq!(
        app.services
            .offers(&restdose_core::Principal::Practice {
                id: practice.id,
                status: restdose_store::PracticeStatus::Approved
            })
            .await
            .unwrap()
            .len(),
        1
    );
    logged_in(&app, &practice.email, PASSWORD).await;

    // Forms shown before login: the double-submit cookie and the field must match.
    let reset = "/portal/password/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let email = unique_email("anon");
    let signup_fields = sign_up_fields(&email);
    let signup: Vec<(&str, &str)> = signup_fields
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let anonymous_forms: Vec<(&str, &str, Fields)> = vec![
        ("/portal/signup", "/portal/signup", signup),
        (
            "/portal/login",
            "/portal/login",
            vec![("email", &practice.email), ("password", PASSWORD)],
        ),
        (
            "/portal/password/forgot",
            "/portal/password/forgot",
            vec![("email", &practice.email)],
        ),
        (
            reset,
            reset,
            vec![("new_password", "a brand new passphrase")],
        ),
    ];
    for (page, action, fields) in &anonymous_forms {
        // No cookie, no field.
        assert_eq!(
            Browser::new(&app).post(action, fields).await.status(),
            403,
            "{action}"
        );
        // A field but no cookie (as from another site).
        let other = Browser::new(&app);
        let token = Browser::new(&app).csrf(page).await;
        let mut with_field = vec![("csrf", token.as_str())];
        with_field.extend_from_slice(fields);
        assert_eq!(
            other.post(action, &with_field).await.status(),
            403,
            "{action}"
        );
        // The cookie, but a wrong or missing field.
        let visitor = Browser::new(&app);
        visitor.csrf(page).await;
        let mut wrong = vec![("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")];
        wrong.extend_from_slice(fields);
        assert_eq!(visitor.post(action, &wrong).await.status(), 403, "{action}");
        assert_eq!(visitor.post(action, fields).await.status(), 403, "{action}");
    }
    assert!(
        app.services
            .store
            .account_by_email(&email)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.smtp.count_for(&practice.email),
        2,
        "verification and approval only; no reset mail"
    );
    app.stop().await;
}

async fn roles_and_states_get_the_designed_statuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = approved_practice(&app, "owner").await;
    let offer = post_offer(&app, &owner.browser).await;
    let other = approved_practice(&app, "other").await;
    let pending_email = unique_email("pending");
    verified_practice(&app, &pending_email).await;
    let pending = logged_in(&app, &pending_email, PASSWORD).await;
    let admin = admin(&app).await;
    let anonymous = Browser::new(&app);
    let offer_page = format!("/portal/offers/{offer}");

    // Anonymous: 401 with the login form.
    for path in [
        "/portal",
        "/portal/offers/new",
        offer_page.as_str(),
        "/portal/tokens",
        "/portal/password",
    ] {
        let (status, html) = anonymous.page(path).await;
        assert_eq!(status, 401, "{path}");
        assert!(
            html.contains("action=\"/portal/login\""),
            "{path} shows the login form"
        );
    }
    for path in ["/portal/login", "/portal/signup", "/portal/password/forgot"] {
        assert_eq!(anonymous.get(path).await.status(), 200, "{path}");
    }

    // Admin: the dashboard sends them to /admin; practice pages are forbidden.
    let response = admin.get("/portal").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin");
    for path in ["/portal/offers/new", offer_page.as_str(), "/portal/tokens"] {
        assert_eq!(admin.get(path).await.status(), 403, "admin on {path}");
    }
    let csrf = admin.csrf("/portal/password").await;
    let response = admin
        .post("/portal/offers", &[("csrf", &csrf), ("doses", "1")])
        .await;
    assert_eq!(response.status(), 403);
    let response = admin
        .post(&format!("{offer_page}/close"), &[("csrf", &csrf)])
        .await;
    assert_eq!(response.status(), 403);

    // Pending practice: its status page, nothing else.
    let (status, html) = pending.page("/portal").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-status=\"pending\""));
    for path in ["/portal/offers/new", "/portal/tokens", offer_page.as_str()] {
        assert_eq!(pending.get(path).await.status(), 403, "pending on {path}");
    }
    let csrf = pending.csrf("/portal/password").await;
    let vaccine = vaccine(&app);
    let response = pending
        .post(
            "/portal/offers",
            &[
                ("csrf", &csrf),
                ("vaccine", &vaccine),
                ("doses", "3"),
                ("starts_at", "2026-05-04T16:00"),
                ("ends_at", "2026-05-04T17:00"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        pending
            .post("/portal/tokens", &[("csrf", &csrf), ("name", "x")])
            .await
            .status(),
        403
    );

    // Another practice's offer does not exist for this one.
    assert_eq!(other.browser.get(&offer_page).await.status(), 404);
    assert_eq!(
        other
            .browser
            .get("/portal/offers/not-a-uuid")
            .await
            .status(),
        404
    );
    let csrf = other.browser.csrf("/portal/password").await;
    for action in ["close", "cancel", "checkins", "doses"] {
        let response = other
            .browser
            .post(
                &format!("{offer_page}/{action}"),
                &[("csrf", &csrf), ("code", "ZZZZZZZZZZZZ"), ("doses", "1")],
            )
            .await;
        assert_eq!(
            response.status(),
            404,
            "{action} on another practice's offer"
        );
    }
    let (_, html) = owner.browser.page(&offer_page).await;
    assert!(html.contains("id=\"offer-status\" data-status=\"open\""));
    app.stop().await;
}

async fn logout_ends_the_session_on_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "logout").await;
    let browser = Browser::new(&app);
    let login = log_in_as(&browser, &practice.email, PASSWORD).await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let cookie = set_cookies(&login)
        .into_iter()
        .find(|c| c.starts_with("restdose_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let value = session_cookie_value(&login).unwrap();

    let response = browser.submit("/portal", "/portal/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal/login");
    let expired = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("restdose_session="))
        .expect("the cookie is expired");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert_eq!(browser.get("/portal").await.status(), 401);

    // The old cookie value no longer works anywhere.
    let replay = app
        .client
        .get(app.url("/portal"))
        .header("cookie", format!("restdose_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    // The other browser of the practice is still logged in.
    assert_eq!(practice.browser.get("/portal").await.status(), 200);
    app.stop().await;
}

async fn password_reset_by_mailed_link_ends_old_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "reset").await;
    let visitor = Browser::new(&app);
    let before = app.smtp.count_for(&practice.email);

    // The same answer for a known and an unknown address.
    let known = visitor
        .submit(
            "/portal/password/forgot",
            "/portal/password/forgot",
            &[("email", &practice.email)],
        )
        .await;
    assert_eq!(known.status(), 200);
    let known = known.text().await.unwrap();
    let unknown = visitor
        .submit(
            "/portal/password/forgot",
            "/portal/password/forgot",
            &[("email", &unique_email("nobody"))],
        )
        .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(known, unknown.text().await.unwrap());

    let mail = app
        .smtp
        .wait_for_matching(&practice.email, |m| {
            m.text().contains("/portal/password/reset/")
        })
        .await;
    assert_eq!(
        app.smtp.count_for(&practice.email),
        before + 1,
        "one mail, for the known address only"
    );
    let link = mail.link_path("/portal/password/reset/");
    let (status, html) = visitor.page(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("action=\"{link}\"")));

    let response = visitor
        .submit(&link, &link, &[("new_password", "too short")])
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"new_password-error\"") && !html.contains("value=\"too short\""));

    let new_password = "a completely new passphrase";
    let response = visitor
        .submit(&link, &link, &[("new_password", new_password)])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        practice.browser.get("/portal").await.status(),
        401,
        "the old session ended"
    );
    assert_eq!(
        log_in_as(&Browser::new(&app), &practice.email, PASSWORD)
            .await
            .status(),
        401
    );
    logged_in(&app, &practice.email, new_password).await;

    // The link works once; a forged one is 404 too.
    let response = visitor
        .submit(&link, &link, &[("new_password", "yet another passphrase")])
        .await;
    assert_eq!(response.status(), 404);
    let forged = "/portal/password/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        visitor
            .submit(forged, forged, &[("new_password", new_password)])
            .await
            .status(),
        404
    );
    app.stop().await;
}

async fn changing_the_password_keeps_this_browser_and_ends_other_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "change").await;
    let other = logged_in(&app, &practice.email, PASSWORD).await;
    let browser = &practice.browser;

    let response = browser
        .submit(
            "/portal/password",
            "/portal/password",
            &[
                ("current_password", "not my password"),
                ("new_password", "a fresh passphrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("id=\"current_password-error\"")
            && html.contains("Das jetzige Passwort stimmt nicht.")
    );

    let new_password = "a fresh passphrase";
    let response = browser
        .submit(
            "/portal/password",
            "/portal/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        session_cookie_value(&response).is_some(),
        "a new session cookie"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("data-notice=\"portal.password.changed\""));

    // The page's forms carry the new session's token: logging out from it works.
    assert_eq!(browser.get("/portal").await.status(), 200);
    assert_eq!(other.get("/portal").await.status(), 401);
    let logout = browser
        .post("/portal/logout", &[("csrf", &csrf_from(&html))])
        .await;
    assert_eq!(logout.status(), 303);
    logged_in(&app, &practice.email, new_password).await;
    app.stop().await;
}

async fn an_idle_session_ends_after_thirty_minutes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "idle").await;
    let browser = &practice.browser;

    // Activity keeps the session alive...
    app.clock.advance(Duration::minutes(20));
    assert_eq!(browser.get("/portal").await.status(), 200);
    app.clock.advance(Duration::minutes(20));
    assert_eq!(browser.get("/portal").await.status(), 200);
    // ...31 idle minutes end it.
    app.clock.advance(Duration::minutes(31));
    let (status, html) = browser.page("/portal").await;
    assert_eq!(status, 401);
    assert!(html.contains("action=\"/portal/login\""));
    app.stop().await;
}

async fn api_tokens_are_shown_once_and_can_be_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "tokens").await;
    let browser = &practice.browser;

    let response = browser
        .submit("/portal/tokens", "/portal/tokens", &[("name", "")])
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("id=\"name-error\""));

    let response = browser
        .submit(
            "/portal/tokens",
            "/portal/tokens",
            &[("name", "Praxissoftware")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    let secret = html
        .split("value=\"rdk_")
        .nth(1)
        .map(|rest| format!("rdk_{}", rest.split('"').next().unwrap()))
        .expect("the secret is shown");
    assert!(html.contains("id=\"secret-warning\""));
    assert!(app.services.authenticate_api_token(&secret).await.is_ok());

    // Shown once: the list never has it again.
    let (status, html) = browser.page("/portal/tokens").await;
    assert_eq!(status, 200);
    assert!(!html.contains(&secret) && html.contains("Praxissoftware"));
    let id = html
        .split("data-token=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    let revoke = format!("/portal/tokens/{id}/revoke");
    let response = browser.submit("/portal/tokens", &revoke, &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/portal/tokens?notice=revoked");
    let (_, html) = browser.page("/portal/tokens?notice=revoked").await;
    assert!(
        html.contains("data-notice=\"portal.tokens.revoked\"") && html.contains("Widerrufen am")
    );
    assert!(app.services.authenticate_api_token(&secret).await.is_err());
    let response = browser.submit("/portal/tokens", &revoke, &[]).await;
    assert_eq!(response.status(), 404, "revoking twice");
    app.stop().await;
}
