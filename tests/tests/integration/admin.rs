//! The admin pages end to end, on both backends: an admin logs in through the portal's login
//! page, lists practices, approves, rejects and suspends them (each decision mails the
//! practice); anonymous visitors, practices, forged forms and impossible decisions are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::cookie::{CookieStore, Jar};
use restdose_core::PracticeSignUp;
use restdose_domain::Lang;
use restdose_store::{Practice, PracticeStatus};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use std::sync::Arc;

on_both_backends!(
    admin_approves_suspends_and_rejects_practices_and_each_is_told_by_mail,
    the_list_shows_every_detail_and_filters_by_status,
    anonymous_visitors_get_401_with_a_link_to_the_login,
    practices_are_refused_with_403_and_change_nothing,
    forms_without_the_session_token_are_refused_with_403,
    unknown_practices_and_decisions_are_404,
    approving_a_practice_before_it_verified_its_address_is_409_and_sends_nothing,
    a_practice_that_signed_up_in_english_is_written_to_in_english,
    suspending_a_practice_closes_its_open_offers_and_tells_everyone_who_booked,
    an_admin_closes_a_single_offer_with_the_session_token_and_bookers_are_told,
    practice_names_with_hidden_characters_are_refused_in_both_languages,
);

const ADMIN_PASSWORD: &str = "admin-passphrase-42";
const PRACTICE_PASSWORD: &str = "practice-passphrase-42";

/// A browser: keeps cookies, does not follow redirects (the tests look at them).
fn browser() -> reqwest::Client {
    browser_with_jar().0
}

fn browser_with_jar() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

/// The CSRF token of the session whose cookie is in `jar`, straight from the services (so the
/// test does not depend on which portal page shows it).
async fn session_csrf(app: &TestApp, jar: &Jar) -> String {
    let url = reqwest::Url::parse(&app.base).unwrap();
    let cookies = jar.cookies(&url).expect("cookies");
    let value = cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("restdose_session="))
        .expect("a session cookie")
        .to_owned();
    app.services
        .session(&value)
        .await
        .unwrap()
        .expect("a live session")
        .csrf_token
}

/// The value of the first hidden input named `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Logs `browser` in through the portal's login form (double-submit CSRF); returns where the
/// login sends it.
async fn log_in(app: &TestApp, browser: &reqwest::Client, email: &str, password: &str) -> String {
    let form = browser.get(app.url("/portal/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csrf = hidden(&form.text().await.unwrap(), "csrf").expect("login form has a CSRF token");
    let response = browser
        .post(app.url("/portal/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        303,
        "login failed: {}",
        response.text().await.unwrap()
    );
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A new admin, logged in: the browser and the page's CSRF token.
async fn admin_browser(app: &TestApp) -> (reqwest::Client, String) {
    let email = unique_email("admin");
    app.services
        .create_admin(&email, ADMIN_PASSWORD)
        .await
        .unwrap();
    let browser = browser();
    assert_eq!(
        log_in(app, &browser, &email, ADMIN_PASSWORD).await,
        "/admin",
        "admins land on /admin"
    );
    let page = browser.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf =
        hidden(&page.text().await.unwrap(), "csrf").expect("admin page carries the CSRF token");
    (browser, csrf)
}

/// A practice that signed up (verification mail received), not yet verified.
async fn signed_up_practice(app: &TestApp, name: &str) -> Practice {
    signed_up_practice_in(app, name, Lang::De).await
}

/// As `signed_up_practice`, with the sign-up form shown in `lang`.
async fn signed_up_practice_in(app: &TestApp, name: &str, lang: Lang) -> Practice {
    let email = unique_email("practice");
    let input = PracticeSignUp {
        name: name.to_owned(),
        street: "Invalidenstraße 1".to_owned(),
        postcode: "10115".to_owned(),
        city: "Berlin".to_owned(),
        phone: "030 1234567".to_owned(),
        email: email.clone(),
        password: PRACTICE_PASSWORD.to_owned(),
    };
    app.services
        .sign_up_practice(&input, lang, None)
        .await
        .unwrap();
    app.smtp.wait_for(&email, 1).await;
    practice_by_email(app, &email).await
}

/// A practice that also followed the link in its verification mail.
async fn verified_practice(app: &TestApp, name: &str) -> Practice {
    verify(app, signed_up_practice(app, name).await).await
}

/// Follows the link of the practice's latest mail (its verification mail).
async fn verify(app: &TestApp, practice: Practice) -> Practice {
    let mail = app.smtp.mails_for(&practice.email).pop().unwrap();
    let verify = mail.link_path("/portal/verify/");
    // The link opens a page whose button posts back to the same address.
    let browser = browser();
    let page = browser.get(app.url(&verify)).send().await.unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap_or_default();
    let response = browser
        .post(app.url(&verify))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success() || response.status().is_redirection(),
        "verification failed: {}",
        response.status()
    );
    let practice = practice_by_email(app, &practice.email).await;
    assert!(practice.email_verified);
    practice
}

async fn practice_by_email(app: &TestApp, email: &str) -> Practice {
    app.services
        .store
        .practices(None)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.email == email)
        .expect("practice stored")
}

async fn status_of(app: &TestApp, practice: &Practice) -> PracticeStatus {
    app.services
        .store
        .practice(practice.id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn post_decision(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    csrf: Option<&str>,
) -> reqwest::Response {
    let request = browser.post(app.url(path));
    let request = match csrf {
        Some(csrf) => request.form(&[("csrf", csrf)]),
        None => request.form(&[("filter", "")]),
    };
    request.send().await.unwrap()
}

async fn admin_approves_suspends_and_rejects_practices_and_each_is_told_by_mail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let good = verified_practice(&app, "Praxis Dr. Gut").await;
    let doubtful = verified_practice(&app, "Praxis Zweifel").await;
    let mails_before = app.smtp.count_for(&good.email);

    // Approve: the practice is told, the list says so.
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", good.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/admin?"), "{location}");
    assert_eq!(status_of(&app, &good).await, PracticeStatus::Approved);
    let mail = app
        .smtp
        .wait_for(&good.email, mails_before + 1)
        .await
        .pop()
        .unwrap();
    assert!(
        mail.subject().contains("freigeschaltet"),
        "{}",
        mail.subject()
    );
    assert!(mail.text().contains("Praxis Dr. Gut"));
    let page = admin
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("role=\"status\""), "the list shows a notice");
    assert!(page.contains(&format!(
        "id=\"practice-{}\" data-status=\"approved\"",
        good.id
    )));

    // The approved practice can now log in and is not sent to /admin.
    let practice_browser = browser();
    assert_ne!(
        log_in(&app, &practice_browser, &good.email, PRACTICE_PASSWORD).await,
        "/admin"
    );

    // Suspend.
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/suspend", good.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(status_of(&app, &good).await, PracticeStatus::Suspended);
    let mail = app
        .smtp
        .wait_for(&good.email, mails_before + 2)
        .await
        .pop()
        .unwrap();
    assert!(mail.subject().contains("gesperrt"), "{}", mail.subject());
    // It had no offers, so the mail does not speak of ended ones.
    assert!(!mail.text().contains("Angebote"), "{}", mail.text());

    // Reject another one.
    let before = app.smtp.count_for(&doubtful.email);
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/reject", doubtful.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(status_of(&app, &doubtful).await, PracticeStatus::Rejected);
    let mail = app
        .smtp
        .wait_for(&doubtful.email, before + 1)
        .await
        .pop()
        .unwrap();
    assert!(
        mail.subject().contains("nicht freigeschaltet"),
        "{}",
        mail.subject()
    );

    // A suspended practice can be approved again.
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", good.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(status_of(&app, &good).await, PracticeStatus::Approved);
    app.stop().await;
}

async fn the_list_shows_every_detail_and_filters_by_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let waiting = verified_practice(&app, "Praxis Wartend").await;
    let unverified = signed_up_practice(&app, "Praxis Unbestätigt").await;
    let approved = verified_practice(&app, "Praxis Aktiv").await;
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", approved.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);

    let response = admin.get(app.url("/admin?lang=en")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    for text in [
        "Praxis Wartend",
        "Invalidenstraße 1",
        "10115 Berlin",
        "030 1234567",
        &waiting.email,
        &unverified.email,
    ] {
        assert!(page.contains(text), "{text} missing from the list");
    }
    assert!(
        page.contains("<th scope=\"col\">"),
        "a table with column headers"
    );
    assert!(
        page.contains("aria-label=\"Approve: Praxis Wartend\""),
        "buttons name the practice"
    );
    assert!(page.contains(&format!(
        "action=\"/admin/practices/{}/approve\"",
        waiting.id
    )));
    assert!(page.contains(&format!(
        "action=\"/admin/practices/{}/reject\"",
        waiting.id
    )));
    assert!(page.contains(&format!(
        "action=\"/admin/practices/{}/suspend\"",
        approved.id
    )));
    assert!(
        !page.contains(&format!(
            "action=\"/admin/practices/{}/approve\"",
            unverified.id
        )),
        "no approve button before the address is verified"
    );
    assert!(page.contains("action=\"/portal/logout\""), "a logout form");
    assert_eq!(hidden(&page, "csrf").as_deref(), Some(csrf.as_str()));
    // Pending practices come first.
    let first_pending = page.find("data-status=\"pending\"").unwrap();
    let first_approved = page.find("data-status=\"approved\"").unwrap();
    assert!(first_pending < first_approved);
    // Verified yes/no.
    assert!(page.contains("data-verified=\"false\"") && page.contains("data-verified=\"true\""));

    let page = admin
        .get(app.url("/admin?status=approved"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Praxis Aktiv"));
    assert!(!page.contains("Praxis Wartend") && !page.contains("Praxis Unbestätigt"));
    let page = admin
        .get(app.url("/admin?status=pending"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Praxis Wartend") && page.contains("Praxis Unbestätigt"));
    assert!(!page.contains("Praxis Aktiv"));
    let page = admin
        .get(app.url("/admin?status=suspended"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"no-practices\""));

    // The logout form in the page header ends the session.
    let response = admin
        .post(app.url("/portal/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        admin.get(app.url("/admin")).send().await.unwrap().status(),
        401
    );
    app.stop().await;
}

async fn anonymous_visitors_get_401_with_a_link_to_the_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = verified_practice(&app, "Praxis Anonym").await;
    let before = app.smtp.count_for(&practice.email);

    let response = app.get("/admin").await;
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("href=\"/portal/login\"")
    );

    let response = post_decision(
        &app,
        &browser(),
        &format!("/admin/practices/{}/approve", practice.id),
        Some("x"),
    )
    .await;
    assert_eq!(response.status(), 401);
    // Even without any form body the session check comes first.
    let response = app
        .client
        .post(app.url(&format!("/admin/practices/{}/approve", practice.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(status_of(&app, &practice).await, PracticeStatus::Pending);
    assert_eq!(app.smtp.count_for(&practice.email), before);
    app.stop().await;
}

async fn practices_are_refused_with_403_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, admin_csrf) = admin_browser(&app).await;
    let practice = verified_practice(&app, "Praxis Neugierig").await;
    let other = verified_practice(&app, "Praxis Andere").await;
    // Even an approved practice is not an admin.
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", practice.id),
        Some(&admin_csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    let (practice_browser, jar) = browser_with_jar();
    log_in(&app, &practice_browser, &practice.email, PRACTICE_PASSWORD).await;

    let response = practice_browser
        .get(app.url("/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        !response.text().await.unwrap().contains(&other.email),
        "no practice data leaks"
    );

    // With its own session's valid CSRF token it is still refused.
    let own_csrf = session_csrf(&app, &jar).await;
    let before = app.smtp.count_for(&other.email);
    let response = post_decision(
        &app,
        &practice_browser,
        &format!("/admin/practices/{}/approve", other.id),
        Some(&own_csrf),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(status_of(&app, &other).await, PracticeStatus::Pending);
    assert_eq!(app.smtp.count_for(&other.email), before);
    app.stop().await;
}

async fn forms_without_the_session_token_are_refused_with_403(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let practice = verified_practice(&app, "Praxis Gefälscht").await;
    let before = app.smtp.count_for(&practice.email);
    let path = format!("/admin/practices/{}/approve", practice.id);

    assert_eq!(post_decision(&app, &admin, &path, None).await.status(), 403);
    assert_eq!(
        post_decision(&app, &admin, &path, Some("")).await.status(),
        403
    );
    let forged = format!("{}x", &csrf[..csrf.len() - 1]);
    assert_eq!(
        post_decision(&app, &admin, &path, Some(&forged))
            .await
            .status(),
        403
    );
    // Another admin's token does not fit this session.
    let (_, other_csrf) = admin_browser(&app).await;
    assert_eq!(
        post_decision(&app, &admin, &path, Some(&other_csrf))
            .await
            .status(),
        403
    );

    assert_eq!(status_of(&app, &practice).await, PracticeStatus::Pending);
    assert_eq!(app.smtp.count_for(&practice.email), before);
    app.stop().await;
}

async fn unknown_practices_and_decisions_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let practice = verified_practice(&app, "Praxis Unbekannt").await;
    let before = app.smtp.count_for(&practice.email);

    let unknown_id = uuid::Uuid::new_v4();
    for path in [
        format!("/admin/practices/{unknown_id}/approve"),
        format!("/admin/practices/{unknown_id}/suspend"),
        "/admin/practices/not-a-uuid/approve".to_owned(),
        format!("/admin/practices/{}/delete", practice.id),
        format!("/admin/practices/{}/Approve", practice.id),
    ] {
        let response = post_decision(&app, &admin, &path, Some(&csrf)).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(status_of(&app, &practice).await, PracticeStatus::Pending);
    assert_eq!(app.smtp.count_for(&practice.email), before);
    app.stop().await;
}

async fn approving_a_practice_before_it_verified_its_address_is_409_and_sends_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let practice = signed_up_practice(&app, "Praxis Eilig").await;
    let before = app.smtp.count_for(&practice.email);

    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", practice.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("href=\"/admin\""));
    assert_eq!(status_of(&app, &practice).await, PracticeStatus::Pending);
    assert_eq!(app.smtp.count_for(&practice.email), before);

    // Rejecting needs no verified address.
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/reject", practice.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(status_of(&app, &practice).await, PracticeStatus::Rejected);
    app.smtp.wait_for(&practice.email, before + 1).await;
    app.stop().await;
}

/// Mails that reach a practice without a request of its own (a new verification link at a
/// login before verifying, the admin's decisions) are in the language it signed up in.
async fn a_practice_that_signed_up_in_english_is_written_to_in_english(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, csrf) = admin_browser(&app).await;
    let practice = signed_up_practice_in(&app, "Practice Dr. Good", Lang::En).await;
    let sign_up_mail = app.smtp.mails_for(&practice.email).pop().unwrap();
    assert_eq!(sign_up_mail.subject(), "Please confirm your e-mail address");

    // Logging in before verifying sends a fresh link, in English.
    let before = app.smtp.count_for(&practice.email);
    let refused = app
        .services
        .log_in(&practice.email, PRACTICE_PASSWORD, None, None)
        .await;
    assert!(refused.is_err(), "an unverified practice cannot log in");
    let mail = app
        .smtp
        .wait_for(&practice.email, before + 1)
        .await
        .pop()
        .unwrap();
    assert_eq!(mail.subject(), sign_up_mail.subject());
    assert!(mail.text().contains("Please confirm"), "{}", mail.text());

    let practice = verify(&app, practice).await;
    let before = app.smtp.count_for(&practice.email);
    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/approve", practice.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    let mail = app
        .smtp
        .wait_for(&practice.email, before + 1)
        .await
        .pop()
        .unwrap();
    assert_eq!(mail.subject(), "Your practice is approved");
    assert!(mail.text().contains("Practice Dr. Good"));

    let response = post_decision(
        &app,
        &admin,
        &format!("/admin/practices/{}/suspend", practice.id),
        Some(&csrf),
    )
    .await;
    assert_eq!(response.status(), 303);
    let mail = app
        .smtp
        .wait_for(&practice.email, before + 2)
        .await
        .pop()
        .unwrap();
    assert_eq!(mail.subject(), "Your practice account is suspended");
    app.stop().await;
}

/// Item 6 of #17: a suspended practice's open offer took bookings and nobody could close it.
async fn suspending_a_practice_closes_its_open_offers_and_tells_everyone_who_booked(
    backend: Backend,
) {
    use restdose_store::{BookingStatus, OfferStatus};
    use restdose_tests::portal as p;
    let app = TestApp::spawn(backend).await;
    let practice = p::approved_practice(&app, "suspended-offers").await;
    let booked = p::post_offer(&app, &practice.browser).await;
    let unbooked = p::post_offer(&app, &practice.browser).await;
    let person = unique_email("holder");
    let manage = app.sign_up_confirmed(&person, "10115").await;
    let code = p::book(&app, booked, Some(p::registrant_id(&app, &manage).await)).await;
    let before = app.smtp.count_for(&person);

    // The admin sees the practice's open offers where they decide.
    let admin = p::admin(&app).await;
    let (_, list) = admin.page("/admin").await;
    for offer in [booked, unbooked] {
        assert!(list.contains(&format!("id=\"offer-{offer}\"")), "{list}");
        assert!(list.contains(&format!("action=\"/admin/offers/{offer}/close\"")));
    }

    let response = admin
        .submit(
            "/admin",
            &format!("/admin/practices/{}/suspend", practice.id),
            &[("filter", "")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(p::location(&response), "/admin?notice=suspended");

    // Both offers take no more bookings; the booking is cancelled and its holder told.
    for offer in [booked, unbooked] {
        let stored = app.services.store.offer(offer).await.unwrap().unwrap();
        assert_eq!(stored.status, OfferStatus::Cancelled, "offer {offer}");
    }
    let bookings = app.services.store.bookings_of(booked).await.unwrap();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].code, code.as_str());
    assert_eq!(bookings[0].status, BookingStatus::Cancelled);
    let mail = app.smtp.wait_for(&person, before + 1).await.pop().unwrap();
    assert!(mail.subject().contains("Abgesagt"), "{}", mail.subject());
    assert!(mail.text().contains("04.05.2026 16:00–18:00"));
    let told = app
        .smtp
        .wait_for_matching(&practice.email, |m| m.subject().contains("gesperrt"))
        .await;
    assert!(told.text().contains("offenen Angebote sind beendet"));

    // Nothing is left to close, and the list shows no offers any more.
    let (_, list) = admin.page("/admin").await;
    assert!(!list.contains(&format!("id=\"offer-{booked}\"")));
    let response = admin
        .submit("/admin", &format!("/admin/offers/{unbooked}/close"), &[])
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(app.smtp.count_for(&person), before + 1, "told once");
    app.stop().await;
}

async fn an_admin_closes_a_single_offer_with_the_session_token_and_bookers_are_told(
    backend: Backend,
) {
    use restdose_store::{BookingStatus, OfferStatus};
    use restdose_tests::portal as p;
    let app = TestApp::spawn(backend).await;
    let practice = p::approved_practice(&app, "closed-by-admin").await;
    let closing = p::post_offer(&app, &practice.browser).await;
    let other = p::post_offer(&app, &practice.browser).await;
    let person = unique_email("holder");
    let manage = app.sign_up_confirmed(&person, "10115").await;
    p::book(&app, closing, Some(p::registrant_id(&app, &manage).await)).await;
    let before = app.smtp.count_for(&person);
    let admin = p::admin(&app).await;
    let action = format!("/admin/offers/{closing}/close");
    let status = |id| {
        let app = &app;
        async move { app.services.store.offer(id).await.unwrap().unwrap().status }
    };

    // Without the session's token, or as the practice itself: refused, nothing changes.
    assert_eq!(admin.post(&action, &[]).await.status(), 403);
    assert_eq!(
        admin.post(&action, &[("csrf", "forged")]).await.status(),
        403
    );
    let response = practice.browser.submit("/portal", &action, &[]).await;
    assert_eq!(response.status(), 403);
    let anonymous = p::Browser::new(&app);
    assert_eq!(anonymous.post(&action, &[]).await.status(), 401);
    assert_eq!(status(closing).await, OfferStatus::Open);

    let response = admin
        .submit("/admin", &action, &[("filter", "approved")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        p::location(&response),
        "/admin?status=approved&notice=offer_closed"
    );
    assert_eq!(status(closing).await, OfferStatus::Cancelled);
    assert_eq!(status(other).await, OfferStatus::Open, "only that offer");
    let bookings = app.services.store.bookings_of(closing).await.unwrap();
    assert_eq!(bookings[0].status, BookingStatus::Cancelled);
    let mail = app.smtp.wait_for(&person, before + 1).await.pop().unwrap();
    assert!(mail.subject().contains("Abgesagt"), "{}", mail.subject());
    // The practice is told too, with how many people were.
    let told = app
        .smtp
        .wait_for_matching(&practice.email, |m| {
            m.subject().contains("Angebot wurde beendet")
        })
        .await;
    assert!(
        told.text().contains("Die eine Person, die gebucht hatte"),
        "{}",
        told.text()
    );
    let (_, list) = admin.page("/admin?notice=offer_closed").await;
    assert!(list.contains("Das Angebot ist beendet"));
    assert!(!list.contains(&format!("id=\"offer-{closing}\"")));
    assert!(list.contains(&format!("id=\"offer-{other}\"")));
    assert_eq!(
        status_of(&app, &practice_record(&app, practice.id).await).await,
        PracticeStatus::Approved
    );

    // Again: not open any more. Unknown offers are 404.
    assert_eq!(admin.submit("/admin", &action, &[]).await.status(), 409);
    let unknown = format!("/admin/offers/{}/close", uuid::Uuid::new_v4());
    assert_eq!(admin.submit("/admin", &unknown, &[]).await.status(), 404);
    assert_eq!(app.smtp.count_for(&person), before + 1);
    app.stop().await;
}

async fn practice_record(app: &TestApp, id: uuid::Uuid) -> Practice {
    app.services.store.practice(id).await.unwrap().unwrap()
}

/// Item 6 of #17: bidi overrides, zero-width and line-separator characters in a practice's
/// name spoofed the admin list and broke the command line's table.
async fn practice_names_with_hidden_characters_are_refused_in_both_languages(backend: Backend) {
    use restdose_tests::portal as p;
    let app = TestApp::spawn(backend).await;
    let spoofs = [
        ("name", "Praxis Dr. \u{202E}nnamredoG"),
        ("name", "Praxis\u{200B}Am Markt"),
        ("name", "Praxis \u{2066}Nord\u{2069}"),
        ("street", "Markt 3\u{2028}Hinterhaus"),
        ("city", "Berlin\u{FEFF}"),
        ("city", "Ber\u{200F}lin"),
    ];
    for (lang, message) in [
        ("de", "unsichtbare oder steuernde Zeichen"),
        ("en", "invisible or control characters"),
    ] {
        for (field, value) in spoofs {
            let email = unique_email("spoof");
            let mut fields = p::sign_up_fields(&email);
            for (key, v) in &mut fields {
                if *key == field {
                    *v = value.to_owned();
                }
            }
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = format!("/portal/signup?lang={lang}");
            let response = p::Browser::new(&app).submit(&page, &page, &form).await;
            assert_eq!(response.status(), 422, "{field} {value:?}");
            let html = response.text().await.unwrap();
            assert!(
                html.contains(&format!("id=\"{field}-error\"")),
                "{field}: {html}"
            );
            assert!(html.contains(message), "{lang} {field}");
        }
    }
    assert_eq!(app.db.count("accounts").await, 0);

    // The use case names the rule for the JSON error shape too.
    let err = app
        .services
        .sign_up_practice(
            &PracticeSignUp {
                name: "Praxis \u{202E}tset".to_owned(),
                street: "Markt 3".to_owned(),
                postcode: "10115".to_owned(),
                city: "Berlin".to_owned(),
                phone: "030 1234567".to_owned(),
                email: unique_email("spoof"),
                password: PRACTICE_PASSWORD.to_owned(),
            },
            Lang::En,
            None,
        )
        .await
        .unwrap_err();
    match err {
        restdose_core::ServiceError::Validation(errors) => {
            let codes: Vec<_> = errors.iter().map(|e| (e.field, e.code)).collect();
            assert_eq!(codes, vec![("name", "invalid_characters")]);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    app.stop().await;
}
