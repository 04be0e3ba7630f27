//! Security headers on every page, and no external asset on any page (no browser needed):
//! a CSP without `unsafe-inline` that forbids framing, `nosniff`, `Referrer-Policy: no-referrer`
//! (tokens live in URLs), HSTS exactly when the public URL is https.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_tests::portal::{admin, approved_practice, post_offer};
use restdose_tests::{Backend, TestApp, unique_email};

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Asserts the headers every response must carry.
fn assert_security_headers(what: &str, response: &reqwest::Response, https: bool) {
    let csp = header(response, "content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(
        header(response, "x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(response, "referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    let hsts = header(response, "strict-transport-security");
    if https {
        let hsts = hsts.unwrap_or_else(|| panic!("{what}: no HSTS although https"));
        assert!(hsts.contains("max-age="), "{what}: {hsts}");
    } else {
        assert_eq!(hsts, None, "{what}: HSTS on plain http");
    }
}

/// Every `src`/`href` of an asset-loading tag points at this site (relative), and no page
/// carries a script.
fn assert_no_external_assets(what: &str, html: &str) {
    assert!(!html.contains("<script"), "{what}: a script");
    for tag in [
        "<link", "<img", "<iframe", "<object", "<embed", "<source", "<video", "<audio",
    ] {
        for (i, _) in html.match_indices(tag) {
            let end = html[i..].find('>').map(|e| i + e).unwrap_or(html.len());
            let element = &html[i..end];
            for attr in ["src=\"", "href=\"", "srcset=\"", "data=\""] {
                if let Some(start) = element.find(attr) {
                    let value = element[start + attr.len()..].split('"').next().unwrap();
                    assert!(
                        value.starts_with('/') && !value.starts_with("//"),
                        "{what}: external or odd asset {element}>"
                    );
                }
            }
        }
    }
}

/// The pages a visitor, a practice and an admin can reach, each fetched once.
async fn check_every_page(app: &TestApp, https: bool) {
    let manage = app
        .sign_up_confirmed(&unique_email("headers"), "10115")
        .await;
    let unconfirmed = app.sign_up(&unique_email("headers2"), "10115").await;
    let practice = approved_practice(app, "headers-practice").await;
    let offer = post_offer(app, &practice.browser).await;
    let admin = admin(app).await;

    let anonymous = [
        "/".to_owned(),
        "/?lang=en".to_owned(),
        unconfirmed.link_path("/confirm/"),
        manage.clone(),
        "/portal/login".to_owned(),
        "/portal/signup".to_owned(),
        "/portal/password/forgot".to_owned(),
        "/does-not-exist".to_owned(),
        "/invitations/not-a-token".to_owned(),
        "/static/style.css".to_owned(),
        "/healthz".to_owned(),
    ];
    for path in &anonymous {
        let response = app.get(path).await;
        assert_security_headers(path, &response, https);
        let html = response.text().await.unwrap();
        assert_no_external_assets(path, &html);
    }
    let logged_in = [
        "/portal".to_owned(),
        "/portal/offers/new".to_owned(),
        format!("/portal/offers/{offer}"),
        "/portal/tokens".to_owned(),
        "/portal/password".to_owned(),
    ];
    for path in &logged_in {
        let response = practice.browser.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_security_headers(path, &response, https);
        assert_no_external_assets(path, &response.text().await.unwrap());
    }
    let response = admin.get("/admin").await;
    assert_security_headers("/admin", &response, https);
    assert_no_external_assets("/admin", &response.text().await.unwrap());

    // Error pages from a POST, and the JSON API.
    let response = app
        .post_form("/", &[("email", "kaputt"), ("postcode", "1")])
        .await;
    assert_eq!(response.status(), 422);
    assert_security_headers("POST / with errors", &response, https);
    assert_no_external_assets("POST /", &response.text().await.unwrap());
    let response = app
        .post_json("/api/v1/registrations", &serde_json::json!({}))
        .await;
    assert_security_headers("POST /api/v1/registrations", &response, https);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_security_headers_and_no_external_asset_on_http() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    check_every_page(&app, false).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_public_url_adds_hsts() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.public_url = Some("https://restdose.example".to_owned());
        // The test's generated keys are development keys; say this is a demo so https allows them.
        config.demo = true;
    })
    .await;
    // Cookies are Secure on https, so the logged-in part cannot run over the test's plain
    // http: check the anonymous pages.
    for path in ["/", "/portal/login", "/does-not-exist", "/static/style.css"] {
        let response = app.get(path).await;
        assert_security_headers(path, &response, true);
    }
    app.stop().await;
}
