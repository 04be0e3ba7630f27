//! The authorization matrix, on both backends, through the real HTTP server: every route of the
//! practice portal, the admin pages and the practice API, asked by every kind of caller. The
//! tables below are the specification: one row per route, one column per caller, each cell the
//! status that caller must get.
//!
//! State-changing forms of logged-in callers carry their session's valid CSRF token, so that the
//! matrix tests authorization and nothing else; the last table then shows that every such form
//! without (or with a wrong) token is refused and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_core::Decision;
use restdose_domain::Lang;
use restdose_store::{BookingStatus, OfferStatus, PracticeStatus};
use restdose_tests::portal::{
    Browser, PASSWORD, approved_practice, book, logged_in, post_offer, sign_up_fields,
    sign_up_practice, vaccine, verified_practice,
};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    every_route_answers_every_caller_as_designed,
    every_api_route_answers_every_bearer_token_as_designed,
    every_state_changing_session_post_needs_the_sessions_csrf_token,
    the_bearer_scheme_is_matched_without_regard_to_case,
);

/// The callers of the session matrix, in column order.
const CALLERS: [&str; 5] = ["anonymous", "pending", "other", "owner", "admin"];
const ANONYMOUS: usize = 0;
const PENDING: usize = 1;
const OTHER: usize = 2;
const OWNER: usize = 3;
const ADMIN: usize = 4;

/// What the password row changes every password to.
const NEW_PASSWORD: &str = "a completely different passphrase";
/// A well-formed token that no session, form or API token has.
const FORGED: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// The note of every offer posted by `post_offer`: must never reach another practice.
const NOTE: &str = "Bitte Impfpass mitbringen.";

type Form = Vec<(&'static str, String)>;

/// A logged-in account.
struct Actor {
    browser: Browser,
    email: String,
    id: Uuid,
}

/// One of each caller: practice A ("owner") whose offers, bookings and tokens the routes name,
/// another approved practice B ("other"), a verified practice not yet approved ("pending"), an
/// admin, and a browser that never logged in.
struct Cast {
    anonymous: Browser,
    pending: Actor,
    other: Actor,
    owner: Actor,
    admin: Actor,
}

impl Cast {
    async fn new(app: &TestApp) -> Cast {
        let owner = approved_practice(app, "owner").await;
        let other = approved_practice(app, "other").await;
        let pending_email = unique_email("pending");
        let pending_id = verified_practice(app, &pending_email).await;
        let admin_email = unique_email("admin");
        let admin_id = app
            .services
            .create_admin(&admin_email, PASSWORD)
            .await
            .unwrap();
        Cast {
            anonymous: Browser::new(app),
            pending: Actor {
                browser: logged_in(app, &pending_email, PASSWORD).await,
                email: pending_email,
                id: pending_id,
            },
            other: Actor {
                browser: other.browser,
                email: other.email,
                id: other.id,
            },
            owner: Actor {
                browser: owner.browser,
                email: owner.email,
                id: owner.id,
            },
            admin: Actor {
                browser: logged_in(app, &admin_email, PASSWORD).await,
                email: admin_email,
                id: admin_id,
            },
        }
    }

    fn actor(&self, caller: usize) -> Option<&Actor> {
        match caller {
            PENDING => Some(&self.pending),
            OTHER => Some(&self.other),
            OWNER => Some(&self.owner),
            ADMIN => Some(&self.admin),
            _ => None,
        }
    }

    fn browser(&self, caller: usize) -> &Browser {
        self.actor(caller)
            .map_or(&self.anonymous, |actor| &actor.browser)
    }

    /// A new browser for the same caller: logged in afresh (a second session of the account),
    /// or never logged in for the anonymous caller. For rows that end sessions.
    async fn fresh(&self, app: &TestApp, caller: usize) -> Browser {
        match self.actor(caller) {
            Some(actor) => logged_in(app, &actor.email, PASSWORD).await,
            None => Browser::new(app),
        }
    }
}

/// Where the `csrf` field of a POST comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Csrf {
    /// No field (GETs, the verification link, the API).
    None,
    /// The session's token, read from a page of the session (`/portal/password`); the anonymous
    /// caller gets the login form there and sends that form's token.
    Session,
    /// A form shown before login: the double-submit token of the row's own page.
    OwnPage,
}

enum Body {
    Form([Form; 5]),
    Json(Value),
}

struct Row {
    post: bool,
    route: &'static str,
    paths: [String; 5],
    body: Body,
    csrf: Csrf,
    /// Act in a fresh session of the caller (the row ends sessions: logout, password).
    fresh: bool,
    expect: [u16; 5],
}

fn same<T: Clone>(value: T) -> [T; 5] {
    std::array::from_fn(|_| value.clone())
}

fn get(route: &'static str, path: impl Into<String>, expect: [u16; 5]) -> Row {
    Row {
        post: false,
        route,
        paths: same(path.into()),
        body: Body::Form(same(Vec::new())),
        csrf: Csrf::None,
        fresh: false,
        expect,
    }
}

/// A form of a session: sent with the caller's valid CSRF token.
fn post(route: &'static str, path: impl Into<String>, form: Form, expect: [u16; 5]) -> Row {
    Row {
        post: true,
        route,
        paths: same(path.into()),
        body: Body::Form(same(form)),
        csrf: Csrf::Session,
        fresh: false,
        expect,
    }
}

/// A JSON request of the practice API, sent with the caller's cookies but no bearer token.
fn api_post(route: &'static str, path: impl Into<String>, body: Value, expect: [u16; 5]) -> Row {
    Row {
        post: true,
        route,
        paths: same(path.into()),
        body: Body::Json(body),
        csrf: Csrf::None,
        fresh: false,
        expect,
    }
}

impl Row {
    fn paths(mut self, paths: [String; 5]) -> Row {
        self.paths = paths;
        self
    }

    fn forms(mut self, forms: [Form; 5]) -> Row {
        self.body = Body::Form(forms);
        self
    }

    /// A form shown before login (double-submit token of its own page).
    fn before_login(mut self) -> Row {
        self.csrf = Csrf::OwnPage;
        self
    }

    fn without_csrf(mut self) -> Row {
        self.csrf = Csrf::None;
        self
    }

    fn in_fresh_session(mut self) -> Row {
        self.fresh = true;
        self
    }
}

/// What one cell answered.
struct Seen {
    status: u16,
    location: Option<String>,
    www_authenticate: Option<String>,
    body: String,
}

/// Sends every cell, row by row and in column order, and fails with every mismatch at once.
async fn run(app: &TestApp, cast: &Cast, rows: &[Row]) -> Vec<Vec<Seen>> {
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for row in rows {
        let mut cells = Vec::new();
        for caller in 0..CALLERS.len() {
            let fresh;
            let browser = if row.fresh {
                fresh = cast.fresh(app, caller).await;
                &fresh
            } else {
                cast.browser(caller)
            };
            let path = &row.paths[caller];
            let response = if row.post {
                let token = match row.csrf {
                    Csrf::None => None,
                    Csrf::Session => Some(browser.csrf("/portal/password").await),
                    Csrf::OwnPage => Some(browser.csrf(path).await),
                };
                match &row.body {
                    Body::Form(forms) => {
                        let mut fields: Vec<(&str, &str)> = Vec::new();
                        if let Some(token) = &token {
                            fields.push(("csrf", token));
                        }
                        fields.extend(forms[caller].iter().map(|(k, v)| (*k, v.as_str())));
                        browser.post(path, &fields).await
                    }
                    Body::Json(json) => browser
                        .client
                        .post(browser.url(path))
                        .json(json)
                        .send()
                        .await
                        .unwrap(),
                }
            } else {
                browser.get(path).await
            };
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let cell = Seen {
                status: response.status().as_u16(),
                location: header("location"),
                www_authenticate: header("www-authenticate"),
                body: String::new(),
            };
            let cell = Seen {
                body: response.text().await.unwrap(),
                ..cell
            };
            if cell.status != row.expect[caller] {
                wrong.push(format!(
                    "{} {} as {}: expected {}, got {}",
                    if row.post { "POST" } else { "GET" },
                    row.route,
                    CALLERS[caller],
                    row.expect[caller],
                    cell.status
                ));
            }
            cells.push(cell);
        }
        seen.push(cells);
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ from the matrix:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    seen
}

fn row_index(rows: &[Row], route: &str, post: bool) -> usize {
    rows.iter()
        .position(|r| r.route == route && r.post == post)
        .unwrap_or_else(|| panic!("no row {route}"))
}

/// Creates an API token on the portal; returns the secret shown once and the token's id.
async fn create_token(app: &TestApp, actor: &Actor, name: &str) -> (String, Uuid) {
    let response = actor
        .browser
        .submit("/portal/tokens", "/portal/tokens", &[("name", name)])
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let secret = html
        .split("value=\"rdk_")
        .nth(1)
        .map(|rest| format!("rdk_{}", rest.split('"').next().unwrap()))
        .expect("the secret is shown");
    let id = app
        .services
        .store
        .api_tokens(actor.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .expect("the token is listed")
        .id;
    (secret, id)
}

/// The form of a valid offer (local times on the test day).
fn offer_form(app: &TestApp) -> Form {
    vec![
        ("vaccine", vaccine(app)),
        ("doses", "3".to_owned()),
        ("starts_at", "2026-05-04T16:00".to_owned()),
        ("ends_at", "2026-05-04T17:00".to_owned()),
    ]
}

/// The JSON body of a valid offer.
fn offer_json(app: &TestApp) -> Value {
    json!({
        "vaccine": vaccine(app),
        "doses": 3,
        "starts_at": "2026-05-04T14:00:00Z",
        "ends_at": "2026-05-04T15:00:00Z",
    })
}

fn login_form(email: &str, password: &str) -> Form {
    vec![
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ]
}

async fn practice_status(app: &TestApp, id: Uuid) -> PracticeStatus {
    app.services
        .store
        .practice(id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn every_route_answers_every_caller_as_designed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cast = Cast::new(&app).await;
    let owner = &cast.owner;

    // What the routes name: offers, bookings and a token of the owner; a practice for the admin
    // to decide on; and links that are themselves the permission (one per caller, used once).
    let offer = post_offer(&app, &owner.browser).await;
    let to_close = post_offer(&app, &owner.browser).await;
    let to_cancel = post_offer(&app, &owner.browser).await;
    let arriving = book(&app, offer, None).await;
    let absent = book(&app, offer, None).await;
    let (_, owner_token) = create_token(&app, owner, "Kasse").await;
    let candidate = verified_practice(&app, &unique_email("candidate")).await;
    let unknown = Uuid::new_v4();
    let mut verify_links = Vec::new();
    for _ in CALLERS {
        verify_links.push(sign_up_practice(&app, &unique_email("verify")).await);
    }
    // One account per link: using a reset link ends the other reset links of its account.
    let mut reset_links = Vec::new();
    for _ in CALLERS {
        let forgetful = unique_email("forgetful");
        verified_practice(&app, &forgetful).await;
        let before = app.smtp.count_for(&forgetful);
        app.services
            .request_password_reset(&forgetful, Lang::De, None)
            .await
            .unwrap();
        let mail = app
            .smtp
            .wait_for(&forgetful, before + 1)
            .await
            .pop()
            .unwrap();
        reset_links.push(mail.link_path("/portal/password/reset/"));
    }
    let verify_links: [String; 5] = verify_links.try_into().unwrap();
    let reset_links: [String; 5] = reset_links.try_into().unwrap();
    let sign_ups: [Form; 5] = std::array::from_fn(|_| sign_up_fields(&unique_email("signup")));
    // Each caller logs in as itself; the anonymous one as the owner.
    let logins: [Form; 5] = std::array::from_fn(|caller| {
        let email = cast.actor(caller).map_or(&owner.email, |a| &a.email);
        login_form(email, PASSWORD)
    });
    let resets: [Form; 5] = std::array::from_fn(|caller| {
        vec![("new_password", format!("the forgetful passphrase {caller}"))]
    });
    let nobody = vec![("email", unique_email("nobody"))];
    let change_password = vec![
        ("current_password", PASSWORD.to_owned()),
        ("new_password", NEW_PASSWORD.to_owned()),
    ];
    let offer_page = format!("/portal/offers/{offer}");

    #[rustfmt::skip]
    let rows = vec![
        //                                                                             anon pend other owner admin
        // --- pages -------------------------------------------------------------------------------
        get("/portal", "/portal",                                                     [401, 200, 200, 200, 303]),
        get("/portal/signup", "/portal/signup",                                       [200, 200, 200, 200, 200]),
        get("/portal/verify/{token}", "",                                             [200, 200, 200, 200, 200])
            .paths(verify_links.clone()),
        get("/portal/login", "/portal/login",                                         [200, 200, 200, 200, 200]),
        get("/portal/password", "/portal/password",                                   [401, 200, 200, 200, 200]),
        get("/portal/password/forgot", "/portal/password/forgot",                     [200, 200, 200, 200, 200]),
        get("/portal/password/reset/{token}", "",                                     [200, 200, 200, 200, 200])
            .paths(reset_links.clone()),
        get("/portal/offers/new", "/portal/offers/new",                               [401, 403, 200, 200, 403]),
        get("/portal/offers/{id}", offer_page.clone(),                                [401, 403, 404, 200, 403]),
        get("/portal/offers/{unknown id}", format!("/portal/offers/{unknown}"),       [401, 403, 404, 404, 403]),
        get("/portal/offers/{not a uuid}", "/portal/offers/not-a-uuid",               [401, 403, 404, 404, 403]),
        get("/portal/tokens", "/portal/tokens",                                       [401, 403, 200, 200, 403]),
        get("/admin", "/admin",                                                       [401, 403, 403, 403, 200]),
        get("/admin?status=pending", "/admin?status=pending",                         [401, 403, 403, 403, 200]),
        // --- the practice API: a session cookie is no credential there ---------------------------
        get("/api/v1/offers/{id}", format!("/api/v1/offers/{offer}"),                 [401, 401, 401, 401, 401]),
        api_post("/api/v1/offers", "/api/v1/offers", offer_json(&app),                [401, 401, 401, 401, 401]),
        api_post("/api/v1/offers/{id}/checkins", format!("/api/v1/offers/{offer}/checkins"),
                 json!({ "code": arriving.display() }),                               [401, 401, 401, 401, 401]),
        api_post("/api/v1/offers/{id}/close", format!("/api/v1/offers/{to_close}/close"),
                 json!({}),                                                           [401, 401, 401, 401, 401]),
        // --- forms shown before login: open to everyone, guarded by the double-submit token ------
        post("/portal/signup", "/portal/signup", Vec::new(),                          [200, 200, 200, 200, 200])
            .forms(sign_ups).before_login(),
        post("/portal/verify/{token}", "", Vec::new(),                                [200, 200, 200, 200, 200])
            .paths(verify_links).without_csrf(),
        post("/portal/login", "/portal/login", Vec::new(),                            [303, 303, 303, 303, 303])
            .forms(logins).before_login().in_fresh_session(),
        post("/portal/password/forgot", "/portal/password/forgot", nobody,            [200, 200, 200, 200, 200])
            .before_login(),
        post("/portal/password/reset/{token}", "", Vec::new(),                        [200, 200, 200, 200, 200])
            .paths(reset_links).forms(resets).before_login(),
        // --- forms of a session, each with the session's valid CSRF token ------------------------
        post("/portal/offers", "/portal/offers", offer_form(&app),                    [401, 403, 303, 303, 403]),
        post("/portal/offers/{id}/checkins", format!("{offer_page}/checkins"),
             vec![("code", arriving.display())],                                      [401, 403, 404, 200, 403]),
        post("/portal/offers/{id}/bookings/{code}/no-show",
             format!("{offer_page}/bookings/{}/no-show", absent.as_str()), Vec::new(), [401, 403, 404, 303, 403]),
        post("/portal/offers/{id}/doses", format!("{offer_page}/doses"),
             vec![("doses", "1".to_owned())],                                         [401, 403, 404, 303, 403]),
        post("/portal/offers/{id}/close", format!("/portal/offers/{to_close}/close"),
             Vec::new(),                                                              [401, 403, 404, 303, 403]),
        post("/portal/offers/{id}/cancel", format!("/portal/offers/{to_cancel}/cancel"),
             Vec::new(),                                                              [401, 403, 404, 303, 403]),
        post("/portal/offers/{unknown id}/close", format!("/portal/offers/{unknown}/close"),
             Vec::new(),                                                              [401, 403, 404, 404, 403]),
        post("/portal/tokens", "/portal/tokens", vec![("name", "Praxissoftware".to_owned())],
                                                                                      [401, 403, 200, 200, 403]),
        post("/portal/tokens/{id}/revoke", format!("/portal/tokens/{owner_token}/revoke"),
             Vec::new(),                                                              [401, 403, 404, 303, 403]),
        post("/admin/practices/{id}/{decision}", format!("/admin/practices/{candidate}/approve"),
             Vec::new(),                                                              [401, 403, 403, 403, 303]),
        post("/admin/practices/{unknown id}/{decision}", format!("/admin/practices/{unknown}/suspend"),
             Vec::new(),                                                              [401, 403, 403, 403, 404]),
        // The handler reads the path before the use case asks "is this an admin?", so a path
        // that cannot name a decision is 404 even for practices. Nothing about any practice can
        // be learned from it (the path is malformed whoever asks); see the report.
        post("/admin/practices/{not a uuid}/{decision}", "/admin/practices/not-a-uuid/approve",
             Vec::new(),                                                              [401, 404, 404, 404, 404]),
        post("/admin/practices/{id}/{unknown decision}", format!("/admin/practices/{candidate}/promote"),
             Vec::new(),                                                              [401, 404, 404, 404, 404]),
        // --- rows that end sessions: a fresh session of each caller ------------------------------
        post("/portal/logout", "/portal/logout", Vec::new(),                          [401, 303, 303, 303, 303])
            .in_fresh_session(),
        post("/portal/password", "/portal/password", change_password,                 [401, 200, 200, 200, 200])
            .in_fresh_session(),
    ];
    let seen = run(&app, &cast, &rows).await;
    let at = |route: &str, post: bool, caller: usize| &seen[row_index(&rows, route, post)][caller];

    // Where the redirects go.
    assert_eq!(
        at("/portal", false, ADMIN).location.as_deref(),
        Some("/admin")
    );
    for caller in [ANONYMOUS, PENDING, OTHER, OWNER] {
        assert_eq!(
            at("/portal/login", true, caller).location.as_deref(),
            Some("/portal"),
            "{}",
            CALLERS[caller]
        );
    }
    assert_eq!(
        at("/portal/login", true, ADMIN).location.as_deref(),
        Some("/admin")
    );
    let expected_redirects = [
        (
            "/portal/offers/{id}/bookings/{code}/no-show",
            format!("{offer_page}?notice=no_show"),
        ),
        (
            "/portal/offers/{id}/doses",
            format!("{offer_page}?notice=doses_added"),
        ),
        (
            "/portal/offers/{id}/close",
            format!("/portal/offers/{to_close}?notice=closed"),
        ),
        (
            "/portal/offers/{id}/cancel",
            format!("/portal/offers/{to_cancel}?notice=cancelled"),
        ),
        (
            "/portal/tokens/{id}/revoke",
            "/portal/tokens?notice=revoked".to_owned(),
        ),
        ("/portal/logout", "/portal/login".to_owned()),
    ];
    for (route, target) in &expected_redirects {
        assert_eq!(
            at(route, true, OWNER).location.as_ref(),
            Some(target),
            "{route}"
        );
    }
    assert_eq!(
        at("/admin/practices/{id}/{decision}", true, ADMIN)
            .location
            .as_deref(),
        Some("/admin?notice=approved")
    );
    assert!(
        at("/portal/offers/{id}/checkins", true, OWNER)
            .body
            .contains("data-notice=\"portal.checkin.done\""),
        "the owner's check-in is the first: nobody else checked the code in"
    );

    // Anonymous pages of a session show the login form; the API asks for a bearer token.
    for route in [
        "/portal",
        "/portal/password",
        "/portal/offers/new",
        "/portal/tokens",
    ] {
        assert!(
            at(route, false, ANONYMOUS)
                .body
                .contains("action=\"/portal/login\""),
            "{route}"
        );
    }
    for caller in 0..CALLERS.len() {
        let cell = at("/api/v1/offers", true, caller);
        assert_eq!(cell.www_authenticate.as_deref(), Some("Bearer"));
        let body: Value = serde_json::from_str(&cell.body).unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }

    // Another practice learns nothing about the owner's offer: the same answer as for an id
    // that does not exist, and nothing of the offer in it.
    for route in ["/portal/offers/{id}", "/portal/offers/{id}/checkins"] {
        let body = &at(route, route.ends_with("checkins"), OTHER).body;
        assert!(
            !body.contains(NOTE) && !body.contains(&offer.to_string()),
            "{route}"
        );
        assert!(!body.contains(arriving.as_str()) && !body.contains(&arriving.display()));
    }
    assert!(
        !at("/portal/offers/{id}/bookings/{code}/no-show", true, OTHER)
            .body
            .contains(NOTE)
    );

    // Only the allowed cells changed anything.
    let store = &app.services.store;
    let stored = store.offer(offer).await.unwrap().unwrap();
    assert_eq!(stored.status, OfferStatus::Open);
    assert_eq!(stored.doses, 11, "only the owner added a dose");
    for booking in store.bookings_of(offer).await.unwrap() {
        let expected = if booking.code == arriving.as_str() {
            BookingStatus::CheckedIn
        } else {
            assert_eq!(booking.code, absent.as_str());
            BookingStatus::NoShow
        };
        assert_eq!(booking.status, expected);
    }
    let status_of_offer = |id: Uuid| async move { store.offer(id).await.unwrap().unwrap().status };
    assert_eq!(status_of_offer(to_close).await, OfferStatus::Closed);
    assert_eq!(status_of_offer(to_cancel).await, OfferStatus::Cancelled);
    assert_eq!(store.offers_of(owner.id).await.unwrap().len(), 4);
    assert_eq!(store.offers_of(cast.other.id).await.unwrap().len(), 1);
    assert!(store.offers_of(cast.pending.id).await.unwrap().is_empty());
    let owner_tokens = store.api_tokens(owner.id).await.unwrap();
    assert_eq!(owner_tokens.len(), 2);
    assert!(
        owner_tokens
            .iter()
            .find(|t| t.id == owner_token)
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.api_tokens(cast.other.id).await.unwrap().len(), 1);
    assert!(store.api_tokens(cast.pending.id).await.unwrap().is_empty());
    assert_eq!(
        practice_status(&app, candidate).await,
        PracticeStatus::Approved
    );
    assert_eq!(
        practice_status(&app, cast.pending.id).await,
        PracticeStatus::Pending
    );
    assert_eq!(
        practice_status(&app, owner.id).await,
        PracticeStatus::Approved
    );
    app.stop().await;
}

/// Method, route, path, JSON body and the status for each column of `TOKENS`.
type ApiRow<'a> = (&'a str, &'a str, String, Option<&'a Value>, [u16; 8]);

/// The callers of the API matrix, in column order: `Authorization` headers.
const TOKENS: [&str; 8] = [
    "none",
    "basic",
    "malformed",
    "forged",
    "revoked",
    "suspended",
    "other",
    "owner",
];

async fn every_api_route_answers_every_bearer_token_as_designed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = approved_practice(&app, "owner").await;
    let owner = Actor {
        browser: owner.browser,
        email: owner.email,
        id: owner.id,
    };
    let other = approved_practice(&app, "other").await;
    let other = Actor {
        browser: other.browser,
        email: other.email,
        id: other.id,
    };
    let suspended = approved_practice(&app, "suspended").await;
    let suspended = Actor {
        browser: suspended.browser,
        email: suspended.email,
        id: suspended.id,
    };

    let offer = post_offer(&app, &owner.browser).await;
    let to_close = post_offer(&app, &owner.browser).await;
    let code = book(&app, offer, None).await;
    let (owner_secret, _) = create_token(&app, &owner, "Kasse").await;
    let (revoked_secret, revoked_id) = create_token(&app, &owner, "Alt").await;
    let response = owner
        .browser
        .submit(
            "/portal/tokens",
            &format!("/portal/tokens/{revoked_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (other_secret, _) = create_token(&app, &other, "Kasse B").await;
    let suspended_offer = post_offer(&app, &suspended.browser).await;
    let (suspended_secret, _) = create_token(&app, &suspended, "Kasse C").await;
    app.services
        .decide_practice_as_operator(suspended.id, Decision::Suspend)
        .await
        .unwrap();
    let unknown = Uuid::new_v4();

    let headers: [Option<String>; 8] = [
        None,
        Some("Basic b3duZXI6cGFzc3dvcmQ=".to_owned()),
        Some("Bearer not-a-token".to_owned()),
        Some(format!("Bearer rdk_{FORGED}")),
        Some(format!("Bearer {revoked_secret}")),
        Some(format!("Bearer {suspended_secret}")),
        Some(format!("Bearer {other_secret}")),
        Some(format!("Bearer {owner_secret}")),
    ];
    let create = offer_json(&app);
    let check_in = json!({ "code": code.display() });

    #[rustfmt::skip]
    let rows: Vec<ApiRow> = vec![
        //                                                                                none basic malf forged revoked susp other owner
        ("GET", "/api/v1/offers/{id}", format!("/api/v1/offers/{offer}"), None,           [401, 401, 401, 401, 401, 403, 404, 200]),
        ("GET", "/api/v1/offers/{unknown id}", format!("/api/v1/offers/{unknown}"), None, [401, 401, 401, 401, 401, 403, 404, 404]),
        // A malformed id is an unknown id: the use case decides, as for any other id.
        ("GET", "/api/v1/offers/{not a uuid}", "/api/v1/offers/not-a-uuid".to_owned(), None,
                                                                                          [401, 401, 401, 401, 401, 403, 404, 404]),
        ("GET", "/api/v1/offers/{own id of the suspended}", format!("/api/v1/offers/{suspended_offer}"), None,
                                                                                          [401, 401, 401, 401, 401, 403, 404, 404]),
        ("POST", "/api/v1/offers", "/api/v1/offers".to_owned(), Some(&create),            [401, 401, 401, 401, 401, 403, 201, 201]),
        ("POST", "/api/v1/offers/{id}/checkins", format!("/api/v1/offers/{offer}/checkins"), Some(&check_in),
                                                                                          [401, 401, 401, 401, 401, 403, 404, 200]),
        ("POST", "/api/v1/offers/{id}/close", format!("/api/v1/offers/{to_close}/close"), None,
                                                                                          [401, 401, 401, 401, 401, 403, 404, 200]),
    ];
    let mut wrong = Vec::new();
    let mut seen: Vec<Vec<(u16, Option<String>, Value)>> = Vec::new();
    for (method, route, path, body, expect) in &rows {
        let mut cells = Vec::new();
        for (column, header) in headers.iter().enumerate() {
            let mut request = if *method == "GET" {
                app.client.get(app.url(path))
            } else {
                app.client.post(app.url(path))
            };
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let json: Value = response.json().await.unwrap();
            if status != expect[column] {
                wrong.push(format!(
                    "{method} {route} with {} token: expected {}, got {status} {json}",
                    TOKENS[column], expect[column]
                ));
            }
            cells.push((status, challenge, json));
        }
        seen.push(cells);
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ from the matrix:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Every refusal has the error shape; 401 names the scheme to use.
    for cells in &seen {
        for (status, challenge, json) in cells {
            let code = match status {
                401 => "unauthenticated",
                403 => "forbidden",
                404 => "not_found",
                _ => continue,
            };
            assert_eq!(json["error"]["code"], code, "{json}");
            assert_eq!(challenge.is_some(), *status == 401);
            if *status == 401 {
                assert_eq!(challenge.as_deref(), Some("Bearer"));
            }
        }
    }
    // The other practice gets exactly what a made-up id gets: ids cannot be probed.
    let other_column = 6;
    assert_eq!(seen[0][other_column].2, seen[1][other_column].2);
    assert_eq!(seen[5][other_column].2, seen[1][other_column].2);
    assert_eq!(seen[6][other_column].2, seen[1][other_column].2);
    // The owner's answers show that nobody else touched the offer first.
    let owner_column = 7;
    assert_eq!(seen[0][owner_column].2["id"], offer.to_string());
    assert_eq!(seen[5][owner_column].2["result"], "checked_in");
    assert_eq!(seen[6][owner_column].2["status"], "closed");
    let store = &app.services.store;
    assert_eq!(store.offers_of(owner.id).await.unwrap().len(), 3);
    assert_eq!(store.offers_of(other.id).await.unwrap().len(), 1);
    assert_eq!(store.offers_of(suspended.id).await.unwrap().len(), 1);
    // The suspension itself ended the suspended practice's offer; nothing it sent changed it
    // since (it would say `closed`).
    assert_eq!(
        store.offer(suspended_offer).await.unwrap().unwrap().status,
        OfferStatus::Cancelled
    );
    app.stop().await;
}

async fn every_state_changing_session_post_needs_the_sessions_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cast = Cast::new(&app).await;
    let owner = &cast.owner;
    let offer = post_offer(&app, &owner.browser).await;
    let code = book(&app, offer, None).await;
    let (secret, token) = create_token(&app, owner, "Kasse").await;
    let candidate = verified_practice(&app, &unique_email("candidate")).await;
    let offer_page = format!("/portal/offers/{offer}");
    let change_password = vec![
        ("current_password", PASSWORD.to_owned()),
        ("new_password", NEW_PASSWORD.to_owned()),
    ];

    #[rustfmt::skip]
    let forms: Vec<(&Actor, String, Form)> = vec![
        (owner, "/portal/logout".to_owned(), Vec::new()),
        (owner, "/portal/password".to_owned(), change_password.clone()),
        (owner, "/portal/offers".to_owned(), offer_form(&app)),
        (owner, format!("{offer_page}/checkins"), vec![("code", code.display())]),
        (owner, format!("{offer_page}/bookings/{}/no-show", code.as_str()), Vec::new()),
        (owner, format!("{offer_page}/doses"), vec![("doses", "5".to_owned())]),
        (owner, format!("{offer_page}/close"), Vec::new()),
        (owner, format!("{offer_page}/cancel"), Vec::new()),
        (owner, "/portal/tokens".to_owned(), vec![("name", "noch einer".to_owned())]),
        (owner, format!("/portal/tokens/{token}/revoke"), Vec::new()),
        (&cast.pending, "/portal/logout".to_owned(), Vec::new()),
        (&cast.pending, "/portal/password".to_owned(), change_password.clone()),
        (&cast.admin, "/portal/logout".to_owned(), Vec::new()),
        (&cast.admin, "/portal/password".to_owned(), change_password),
        (&cast.admin, format!("/admin/practices/{candidate}/approve"), Vec::new()),
        (&cast.admin, format!("/admin/practices/{}/suspend", owner.id), Vec::new()),
    ];
    // A valid token, but of another session.
    let foreign = cast.other.browser.csrf("/portal/password").await;
    let sessions = app.db.count("sessions").await;
    let mut wrong = Vec::new();
    for (actor, path, form) in &forms {
        // The token this very browser got before login (the double-submit cookie's value).
        let pre_login = actor.browser.csrf("/portal/login").await;
        let variants: [(&str, Option<&str>); 5] = [
            ("missing", None),
            ("empty", Some("")),
            ("forged", Some(FORGED)),
            ("another session's", Some(&foreign)),
            ("this browser's pre-login", Some(&pre_login)),
        ];
        for (name, token) in variants {
            let mut fields: Vec<(&str, &str)> = Vec::new();
            if let Some(token) = token {
                fields.push(("csrf", token));
            }
            fields.extend(form.iter().map(|(k, v)| (*k, v.as_str())));
            let status = actor.browser.post(path, &fields).await.status().as_u16();
            if status != 403 {
                wrong.push(format!(
                    "POST {path} with a {name} token: expected 403, got {status}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} forms were not refused:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Nothing changed: every session lives, the offer is open with its ten doses and its booking
    // unused, one offer and one live token, the passwords and the practices' statuses as before.
    assert_eq!(app.db.count("sessions").await, sessions);
    for actor in [owner, &cast.pending, &cast.admin] {
        let expected = if actor.id == cast.admin.id { 303 } else { 200 };
        assert_eq!(actor.browser.get("/portal").await.status(), expected);
    }
    assert_eq!(cast.admin.browser.get("/admin").await.status(), 200);
    let store = &app.services.store;
    let stored = store.offer(offer).await.unwrap().unwrap();
    assert_eq!(stored.status, OfferStatus::Open);
    assert_eq!(stored.doses, 10);
    let bookings = store.bookings_of(offer).await.unwrap();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].status, BookingStatus::Booked);
    assert_eq!(app.db.count("offers").await, 1);
    assert_eq!(app.db.count("api_tokens").await, 1);
    let response = app
        .client
        .get(app.url(&format!("/api/v1/offers/{offer}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the token still works");
    for actor in [owner, &cast.pending, &cast.admin] {
        logged_in(&app, &actor.email, PASSWORD).await;
    }
    assert_eq!(
        practice_status(&app, candidate).await,
        PracticeStatus::Pending
    );
    assert_eq!(
        practice_status(&app, owner.id).await,
        PracticeStatus::Approved
    );
    app.stop().await;
}

/// RFC 9110 section 11.1: "It uses a case-insensitive token to identify the authentication
/// scheme", so `bearer` and `BEARER` name the same scheme as `Bearer`.
async fn the_bearer_scheme_is_matched_without_regard_to_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = approved_practice(&app, "owner").await;
    let owner = Actor {
        browser: owner.browser,
        email: owner.email,
        id: owner.id,
    };
    let offer = post_offer(&app, &owner.browser).await;
    let (secret, _) = create_token(&app, &owner, "Kasse").await;
    let path = app.url(&format!("/api/v1/offers/{offer}"));
    let mut wrong = Vec::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        for (token, expected) in [(secret.clone(), 200), (format!("rdk_{FORGED}"), 401)] {
            let status = app
                .client
                .get(&path)
                .header("authorization", format!("{scheme} {token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status != expected {
                wrong.push(format!("{scheme} with a {expected} token: got {status}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.stop().await;
}
