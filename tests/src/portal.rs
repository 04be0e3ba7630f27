//! Helpers for the practice portal tests: a browser-like client with its own cookie jar, CSRF
//! tokens read from pages, and the steps that make a verified, approved, logged-in practice.

use crate::TestApp;
use restdose_core::Decision;
use restdose_domain::{BookingCode, Clock};
use restdose_store::{NewBooking, Store, TokenPurpose};
use uuid::Uuid;

/// Every test practice uses this password (long enough for the rules).
pub const PASSWORD: &str = "correct horse battery staple";

/// One browser: its own cookie jar; redirects are not followed, so tests see them.
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    base: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            base: app.base.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Status and body of a GET.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token in the form of `page` (anonymous pages also set the cookie it pairs with).
    pub async fn csrf(&self, page: &str) -> String {
        let (_, html) = self.page(page).await;
        csrf_from(&html)
    }

    /// Opens `page` like a person would, then posts `form` to `action` with the page's token.
    pub async fn submit(
        &self,
        page: &str,
        action: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = self.csrf(page).await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field in page: {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location header ({})", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Every `Set-Cookie` header of a response, as text.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value the server gave the session cookie in this response.
pub fn session_cookie_value(response: &reqwest::Response) -> Option<String> {
    set_cookies(response).into_iter().find_map(|c| {
        c.strip_prefix("restdose_session=")
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The form fields of a valid practice sign-up.
pub fn sign_up_fields(email: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", "Hausarztpraxis Dr. Beispiel".to_owned()),
        ("street", "Invalidenstraße 1".to_owned()),
        ("postcode", "10115".to_owned()),
        ("city", "Berlin".to_owned()),
        ("phone", "030 1234567".to_owned()),
        ("email", email.to_owned()),
        ("password", PASSWORD.to_owned()),
    ]
}

/// Signs a practice up through the form; returns the verification link path from its mail.
pub async fn sign_up_practice(app: &TestApp, email: &str) -> String {
    let browser = Browser::new(app);
    let before = app.smtp.count_for(email);
    let fields = sign_up_fields(email);
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = browser
        .submit("/portal/signup", "/portal/signup", &form)
        .await;
    assert_eq!(
        response.status(),
        200,
        "sign-up: {}",
        response.text().await.unwrap()
    );
    let mail = app.smtp.wait_for(email, before + 1).await.pop().unwrap();
    mail.link_path("/portal/verify/")
}

/// The account (and practice) id behind a login address.
pub async fn account_id(app: &TestApp, email: &str) -> Uuid {
    app.services
        .store
        .account_by_email(&email.to_ascii_lowercase())
        .await
        .unwrap()
        .expect("no account for this address")
        .id
}

/// Signs up and verifies the address; returns the practice id (still pending).
pub async fn verified_practice(app: &TestApp, email: &str) -> Uuid {
    let verify = sign_up_practice(app, email).await;
    let response = Browser::new(app).post(&verify, &[]).await;
    assert_eq!(response.status(), 200);
    account_id(app, email).await
}

/// Logs in through the form; asserts the redirect and returns the response.
pub async fn log_in_as(browser: &Browser, email: &str, password: &str) -> reqwest::Response {
    browser
        .submit(
            "/portal/login",
            "/portal/login",
            &[("email", email), ("password", password)],
        )
        .await
}

/// A fresh browser, logged in.
pub async fn logged_in(app: &TestApp, email: &str, password: &str) -> Browser {
    let browser = Browser::new(app);
    let response = log_in_as(&browser, email, password).await;
    assert_eq!(
        response.status(),
        303,
        "login failed: {}",
        response.text().await.unwrap()
    );
    browser
}

/// A practice that signed up, verified, was approved and is logged in.
pub struct Practice {
    pub browser: Browser,
    pub id: Uuid,
    pub email: String,
}

pub async fn approved_practice(app: &TestApp, prefix: &str) -> Practice {
    let email = crate::unique_email(prefix);
    let id = verified_practice(app, &email).await;
    app.services
        .decide_practice_as_operator(id, Decision::Approve)
        .await
        .unwrap();
    // Mail leaves through the outbox: wait for the approval so later mail counts start clean.
    app.smtp
        .wait_for_matching(&email, |m| m.subject().contains("freigeschaltet"))
        .await;
    let browser = logged_in(app, &email, PASSWORD).await;
    Practice { browser, id, email }
}

/// An admin account, logged in.
pub async fn admin(app: &TestApp) -> Browser {
    let email = crate::unique_email("admin");
    app.services.create_admin(&email, PASSWORD).await.unwrap();
    logged_in(app, &email, PASSWORD).await
}

/// The vaccine every test offer uses (the first of the configured list).
pub fn vaccine(app: &TestApp) -> String {
    app.services.policy.vaccines[0].clone()
}

/// Posts an offer through the form (16:00–18:00 local time on the test day, 10 doses); returns
/// its id.
pub async fn post_offer(app: &TestApp, browser: &Browser) -> Uuid {
    let vaccine = vaccine(app);
    let response = browser
        .submit(
            "/portal/offers/new",
            "/portal/offers",
            &[
                ("vaccine", &vaccine),
                ("doses", "10"),
                ("starts_at", "2026-05-04T16:00"),
                ("ends_at", "2026-05-04T18:00"),
                ("claim_minutes", "15"),
                ("radius_km", "10"),
                ("note", "Bitte Impfpass mitbringen."),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let path = location(&response);
    path.strip_prefix("/portal/offers/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("unexpected redirect {path}"))
}

/// Books a dose of the offer directly in the store (the matcher that normally does this does
/// not exist yet); returns the code.
pub async fn book(app: &TestApp, offer_id: Uuid, registrant_id: Option<Uuid>) -> BookingCode {
    let code = BookingCode::from_random(Uuid::new_v4().as_u128() as u64);
    app.services
        .store
        .insert_booking(&NewBooking {
            id: Uuid::new_v4(),
            offer_id,
            registrant_id,
            code: code.as_str().to_owned(),
            created_at: app.clock.now(),
        })
        .await
        .unwrap();
    code
}

/// The registrant behind a self-service path `/manage/<token>`.
pub async fn registrant_id(app: &TestApp, manage_path: &str) -> Uuid {
    let token = manage_path.trim_start_matches("/manage/");
    let token = restdose_crypto::SecretToken::parse(token).unwrap();
    Store::find_token(
        app.services.store.as_ref(),
        &token.hash(),
        TokenPurpose::Manage,
        app.clock.now(),
    )
    .await
    .unwrap()
    .expect("the manage link works")
    .registrant_id
}

/// Like `approved_practice`, for a practice at another address (e.g. in another postcode
/// area than the default Berlin 10115).
pub async fn approved_practice_at(
    app: &TestApp,
    prefix: &str,
    street: &str,
    postcode: &str,
    city: &str,
) -> Practice {
    let email = crate::unique_email(prefix);
    let fields: Vec<(&str, String)> = sign_up_fields(&email)
        .into_iter()
        .map(|(key, value)| match key {
            "street" => (key, street.to_owned()),
            "postcode" => (key, postcode.to_owned()),
            "city" => (key, city.to_owned()),
            _ => (key, value),
        })
        .collect();
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let before = app.smtp.count_for(&email);
    let response = Browser::new(app)
        .submit("/portal/signup", "/portal/signup", &form)
        .await;
    assert_eq!(
        response.status(),
        200,
        "sign-up: {}",
        response.text().await.unwrap()
    );
    let mail = app.smtp.wait_for(&email, before + 1).await.pop().unwrap();
    let verify = mail.link_path("/portal/verify/");
    assert_eq!(Browser::new(app).post(&verify, &[]).await.status(), 200);
    let id = account_id(app, &email).await;
    app.services
        .decide_practice_as_operator(id, Decision::Approve)
        .await
        .unwrap();
    app.smtp
        .wait_for_matching(&email, |m| m.subject().contains("freigeschaltet"))
        .await;
    let browser = logged_in(app, &email, PASSWORD).await;
    Practice { browser, id, email }
}
