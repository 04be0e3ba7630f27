//! Passwords and account links end to end: a used reset or verification link ends the other
//! links of its kind, a password change ends every link of the account, and password hashing
//! is bounded (a login that finds every hash permit taken is answered 503 with Retry-After).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_tests::portal::{
    Browser, PASSWORD, approved_practice, location, log_in_as, logged_in, sign_up_practice,
};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};

on_both_backends!(
    a_used_reset_link_ends_the_other_reset_links,
    a_password_change_ends_the_reset_links,
    a_used_verification_link_ends_the_other_verification_links,
);

/// Asks for a reset link for `email`; returns the link's path from the mail.
async fn request_reset(app: &TestApp, email: &str) -> String {
    let before = app.smtp.count_for(email);
    let response = Browser::new(app)
        .submit(
            "/portal/password/forgot",
            "/portal/password/forgot",
            &[("email", email)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let mail = app.smtp.wait_for(email, before + 1).await.pop().unwrap();
    mail.link_path("/portal/password/reset/")
}

/// The status of submitting a new password through a reset link (its form page is shown for
/// any link; whether the link works is known when it is used).
async fn use_reset_link(app: &TestApp, link: &str, new_password: &str) -> u16 {
    Browser::new(app)
        .submit(link, link, &[("new_password", new_password)])
        .await
        .status()
        .as_u16()
}

async fn a_used_reset_link_ends_the_other_reset_links(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "twolinks").await;
    let first = request_reset(&app, &practice.email).await;
    let second = request_reset(&app, &practice.email).await;
    assert_ne!(first, second);

    let new_password = "the passphrase of the newer link";
    assert_eq!(use_reset_link(&app, &second, new_password).await, 200);

    assert_eq!(
        use_reset_link(&app, &first, "the passphrase of the older link").await,
        404,
        "the older link ended when the newer one was used"
    );
    logged_in(&app, &practice.email, new_password).await;
    app.stop().await;
}

async fn a_password_change_ends_the_reset_links(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "changeafterreset").await;
    let link = request_reset(&app, &practice.email).await;

    let new_password = "a fresh passphrase";
    let response = practice
        .browser
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

    assert_eq!(
        use_reset_link(&app, &link, "the passphrase of the stale link").await,
        404,
        "the reset link ended with the password change"
    );
    logged_in(&app, &practice.email, new_password).await;
    app.stop().await;
}

async fn a_used_verification_link_ends_the_other_verification_links(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email("twoverify");
    let first = sign_up_practice(&app, &email).await;
    // Logging in unverified sends a second link.
    let before = app.smtp.count_for(&email);
    let response = log_in_as(&Browser::new(&app), &email, PASSWORD).await;
    assert_eq!(response.status(), 403);
    let mail = app.smtp.wait_for(&email, before + 1).await.pop().unwrap();
    let second = mail.link_path("/portal/verify/");
    assert_ne!(first, second);

    let visitor = Browser::new(&app);
    assert_eq!(visitor.post(&second, &[]).await.status(), 200);
    assert_eq!(
        visitor.post(&first, &[]).await.status(),
        404,
        "the first link ended when the second was used"
    );
    logged_in(&app, &email, PASSWORD).await;
    app.stop().await;
}

/// One hash at a time and no wait: of logins arriving together, the one that gets the permit
/// proceeds and the others are answered at once with 503, Retry-After and the login page in
/// the visitor's language. Never more than one hash runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_hash_permits_get_503_with_retry_after_while_one_proceeds() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.password_hash_concurrency = 1;
        c.password_hash_wait_ms = 0;
    })
    .await;
    let email = unique_email("storm");
    app.services.create_admin(&email, PASSWORD).await.unwrap();
    assert_eq!(app.services.passwords.limit(), 1);

    let (mut proceeded, mut busy) = (0, 0);
    // Logins arriving together overlap on any machine within a few rounds.
    for _ in 0..10 {
        let mut logins = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let browser = Browser::new(&app);
            let csrf = browser.csrf("/portal/login").await;
            let email = email.clone();
            logins.spawn(async move {
                browser
                    .post(
                        "/portal/login",
                        &[
                            ("csrf", csrf.as_str()),
                            ("email", email.as_str()),
                            ("password", PASSWORD),
                        ],
                    )
                    .await
            });
        }
        for response in logins.join_all().await {
            match response.status().as_u16() {
                303 => {
                    assert_eq!(location(&response), "/admin");
                    proceeded += 1;
                }
                503 => {
                    let retry: u64 = response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!(retry >= 1, "Retry-After {retry}");
                    let html = response.text().await.unwrap();
                    assert!(html.contains("Der Dienst ist gerade überlastet"), "{html}");
                    busy += 1;
                }
                other => panic!("login answered {other}"),
            }
        }
        if proceeded > 0 && busy > 0 {
            break;
        }
    }
    assert!(proceeded > 0, "no login proceeded");
    assert!(busy > 0, "no login was turned away");
    assert_eq!(
        app.services.passwords.most_at_once(),
        1,
        "more hashes ran at once than permits"
    );
    app.stop().await;
}
