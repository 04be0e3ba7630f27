//! The practice portal: sign-up, e-mail verification, login/logout, password change and reset,
//! the dashboard, the "spare doses" form, the offer page (check-in, no-show, add doses, close,
//! cancel) and API tokens.
//!
//! Only translation lives here: forms become calls on `Services`, results become pages. Who may
//! do what is decided by the use cases (`Principal`); statuses come from `error::status_of`.
//! Every POST of a session checks the session first (401), then its CSRF token (403); forms
//! shown before login use the double-submit cookie from `auth`.

#![allow(
    clippy::result_large_err,
    reason = "the Err is the finished answer (a page), built at most once per request"
)]

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use restdose_core::offers::{DEFAULT_CLAIM_MINUTES, NumberInput, OfferInput, TimeInput};
use restdose_core::{
    FieldError, PracticeSignUp, Principal, RadiusInput, ServiceError, SessionContext,
};
use restdose_domain::{BookingCode, RadiusKm};
use restdose_store::{BookingStatus, CheckInOutcome, OfferStatus, PracticeStatus, Role};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::auth;
use crate::error::{log_failure, status_of};
use crate::i18n::T;
use crate::pages::{field_message, page};
use crate::request_lang::{RequestLang, request_lang};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/portal", web::get().to(dashboard))
        .route("/portal/signup", web::get().to(signup_form))
        .route("/portal/signup", web::post().to(signup_submit))
        .route("/portal/verify/{token}", web::get().to(verify_page))
        .route("/portal/verify/{token}", web::post().to(verify_submit))
        .route("/portal/login", web::get().to(login_form))
        .route("/portal/login", web::post().to(login_submit))
        .route("/portal/logout", web::post().to(logout))
        .route("/portal/password", web::get().to(password_form))
        .route("/portal/password", web::post().to(password_submit))
        .route("/portal/password/forgot", web::get().to(forgot_form))
        .route("/portal/password/forgot", web::post().to(forgot_submit))
        .route("/portal/password/reset/{token}", web::get().to(reset_form))
        .route(
            "/portal/password/reset/{token}",
            web::post().to(reset_submit),
        )
        // Before `/portal/offers/{id}`, which would otherwise take "new" as an id.
        .route("/portal/offers/new", web::get().to(offer_form))
        .route("/portal/offers", web::post().to(offer_submit))
        .route("/portal/offers/{id}", web::get().to(offer_page))
        .route(
            "/portal/offers/{id}/checkins",
            web::post().to(offer_check_in),
        )
        .route(
            "/portal/offers/{id}/bookings/{code}/no-show",
            web::post().to(offer_no_show),
        )
        .route("/portal/offers/{id}/doses", web::post().to(offer_add_doses))
        .route("/portal/offers/{id}/close", web::post().to(offer_close))
        .route("/portal/offers/{id}/cancel", web::post().to(offer_cancel))
        .route("/portal/tokens", web::get().to(tokens_page))
        .route("/portal/tokens", web::post().to(token_create))
        .route("/portal/tokens/{id}/revoke", web::post().to(token_revoke));
}

/// Unwraps a step that may already have produced the answer (a 401, 403 or error page).
macro_rules! attempt {
    ($step:expr) => {
        match $step {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

// --- forms ---------------------------------------------------------------------------------

/// Every form carries `csrf`; the other fields default to empty so that a form missing them
/// still reaches the CSRF check and the use case (which name the missing fields).
trait CsrfField {
    fn csrf(&self) -> &str;
}

macro_rules! forms {
    ($($name:ident { $($field:ident),* $(,)? })*) => {
        $(
            // No `Debug`: some carry passwords.
            #[derive(Deserialize, Default)]
            #[serde(default)]
            pub struct $name {
                csrf: String,
                $($field: String,)*
            }

            impl CsrfField for $name {
                fn csrf(&self) -> &str {
                    &self.csrf
                }
            }
        )*
    };
}

forms! {
    CsrfForm {}
    SignupForm { name, street, postcode, city, phone, email, password }
    LoginForm { email, password }
    PasswordForm { current_password, new_password }
    ForgotForm { email }
    OfferForm { vaccine, doses, starts_at, ends_at, claim_minutes, radius_km, note }
    CheckInForm { code }
    DosesForm { doses }
    TokenForm { name }
}

/// The reset form's field is `new_password`; `password` is accepted too.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetForm {
    csrf: String,
    #[serde(alias = "password")]
    new_password: String,
}

impl CsrfField for ResetForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

type FormResult<F> = Result<web::Form<F>, actix_web::Error>;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

// --- pages ---------------------------------------------------------------------------------

/// The navigation of a logged-in page; its logout button needs the session's CSRF token.
struct Nav {
    csrf: String,
    approved: bool,
    admin: bool,
}

fn nav(session: &SessionContext) -> Option<Nav> {
    Some(Nav {
        csrf: session.csrf_token.clone(),
        approved: session.principal.approved_practice().is_ok(),
        admin: session.principal.admin().is_ok(),
    })
}

#[derive(Template)]
#[template(path = "portal_message.html")]
struct MessagePage {
    t: T,
    nav: Option<Nav>,
    title: &'static str,
    body: String,
    link: Option<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "portal_signup.html")]
struct SignupPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    name: String,
    street: String,
    postcode: String,
    city: String,
    phone: String,
    email: String,
    name_error: Option<&'static str>,
    street_error: Option<&'static str>,
    postcode_error: Option<&'static str>,
    city_error: Option<&'static str>,
    phone_error: Option<&'static str>,
    email_error: Option<&'static str>,
    password_error: Option<&'static str>,
    has_errors: bool,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_verify.html")]
struct VerifyPage {
    t: T,
    nav: Option<Nav>,
    token: String,
}

#[derive(Template)]
#[template(path = "portal_login.html")]
struct LoginPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    email: String,
    alert: Option<String>,
}

#[derive(Template)]
#[template(path = "portal_dashboard.html")]
struct DashboardPage {
    t: T,
    nav: Option<Nav>,
    practice_name: String,
    status: &'static str,
    status_key: &'static str,
    approved: bool,
    offers: Vec<OfferRow>,
    /// The practice's own figures: (label key, last 30 days, all time).
    figures: Vec<(&'static str, String, String)>,
}

struct OfferRow {
    id: Uuid,
    vaccine: String,
    window: String,
    doses: i32,
    status: &'static str,
    status_key: &'static str,
}

#[derive(Template)]
#[template(path = "portal_offer_new.html")]
struct OfferFormPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    vaccines: Vec<VaccineOption>,
    doses: String,
    starts_at: String,
    ends_at: String,
    claim_minutes: String,
    radius_km: String,
    note: String,
    vaccine_error: Option<&'static str>,
    doses_error: Option<&'static str>,
    starts_at_error: Option<&'static str>,
    ends_at_error: Option<&'static str>,
    claim_minutes_error: Option<&'static str>,
    radius_km_error: Option<&'static str>,
    note_error: Option<&'static str>,
    has_errors: bool,
}

struct VaccineOption {
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "portal_offer.html")]
struct OfferPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    vaccine: String,
    window: String,
    status: &'static str,
    status_key: &'static str,
    open: bool,
    cancelled: bool,
    doses: i32,
    claimed: i32,
    checked_in: i32,
    remaining: i32,
    time_left: String,
    claim_minutes: i32,
    radius_km: u16,
    note: String,
    bookings: Vec<BookingRow>,
    notice: Option<&'static str>,
    alert: Option<&'static str>,
    code: String,
    more_doses: String,
    doses_error: Option<&'static str>,
}

struct BookingRow {
    /// As stored (no separators), for URLs and hidden fields.
    code: String,
    /// XXXX-XXXX-XXXX.
    shown: String,
    status: &'static str,
    status_key: &'static str,
    booked: bool,
}

#[derive(Template)]
#[template(path = "portal_tokens.html")]
struct TokensPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    tokens: Vec<TokenRow>,
    secret: Option<String>,
    name: String,
    name_error: Option<&'static str>,
    notice: Option<&'static str>,
}

struct TokenRow {
    id: Uuid,
    name: String,
    created: String,
    last_used: Option<String>,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "portal_password.html")]
struct PasswordPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    current_error: Option<&'static str>,
    new_error: Option<&'static str>,
    notice: Option<&'static str>,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_forgot.html")]
struct ForgotPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    email: String,
    email_error: Option<&'static str>,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_reset.html")]
struct ResetPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    token: String,
    password_error: Option<&'static str>,
    alert: Option<&'static str>,
}

// --- shared answers ------------------------------------------------------------------------

fn with_cookie(mut response: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie
        && let Err(e) = response.add_cookie(&cookie)
    {
        tracing::error!(error = %e, "could not set a cookie");
    }
    response
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A message page, with the navigation when logged in.
fn say(
    state: &AppState,
    lang: &RequestLang,
    nav: Option<Nav>,
    status: StatusCode,
    title: &'static str,
    body: &'static str,
    link: Option<(String, &'static str)>,
) -> HttpResponse {
    let t = T::new(lang.lang);
    let policy = &state.services.policy;
    let body = t.fill(
        body,
        &[
            ("hours", policy.verify_link_ttl.num_hours()),
            ("minutes", policy.reset_link_ttl.num_minutes()),
        ],
    );
    let rendered = MessagePage {
        t,
        nav,
        title,
        body,
        link,
    }
    .render();
    page(state, lang, status, rendered)
}

/// A failed use case as a portal page; the status comes from the one mapping in `error.rs`.
fn portal_failure(
    state: &AppState,
    lang: &RequestLang,
    nav: Option<Nav>,
    e: &ServiceError,
) -> HttpResponse {
    log_failure(e);
    let status = status_of(e);
    let (title, body, link) = match e {
        ServiceError::InvalidLink => (
            "portal.link.title",
            "portal.link.body",
            ("/portal/login", "portal.login.title"),
        ),
        ServiceError::NotFound => (
            "portal.not_found.title",
            "portal.not_found.body",
            ("/portal", "portal.nav.dashboard"),
        ),
        ServiceError::Forbidden => (
            "portal.forbidden.title",
            "portal.forbidden.body",
            ("/portal", "portal.nav.dashboard"),
        ),
        ServiceError::Unauthenticated => (
            "portal.login.title",
            "portal.login.required",
            ("/portal/login", "portal.login.title"),
        ),
        ServiceError::EmailNotVerified => (
            "portal.unverified.title",
            "portal.unverified.body",
            ("/portal/login", "portal.login.title"),
        ),
        ServiceError::Conflict(_) => (
            "portal.conflict.title",
            "portal.conflict.body",
            ("/portal", "portal.nav.dashboard"),
        ),
        ServiceError::Throttled { .. } => (
            "portal.throttled.title",
            "portal.throttled.body",
            ("/portal/login", "portal.login.title"),
        ),
        ServiceError::Validation(_) => (
            "error.title",
            "error.bad_form",
            ("/portal", "portal.nav.dashboard"),
        ),
        _ if status == StatusCode::SERVICE_UNAVAILABLE => (
            "error.title",
            "portal.error.busy",
            ("/portal", "portal.nav.dashboard"),
        ),
        _ => (
            "error.title",
            "error.internal",
            ("/portal", "portal.nav.dashboard"),
        ),
    };
    let response = say(
        state,
        lang,
        nav,
        status,
        title,
        body,
        Some((link.0.to_owned(), link.1)),
    );
    match e {
        ServiceError::Throttled { retry_after_secs } => retry_after(response, *retry_after_secs),
        _ => response,
    }
}

fn retry_after(mut response: HttpResponse, secs: i64) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// A form whose CSRF token is missing or wrong: nothing was done.
fn csrf_refused(state: &AppState, lang: &RequestLang, nav: Option<Nav>) -> HttpResponse {
    say(
        state,
        lang,
        nav,
        StatusCode::FORBIDDEN,
        "portal.csrf.title",
        "portal.csrf.body",
        Some(("/portal".to_owned(), "portal.nav.dashboard")),
    )
}

/// The alert for a failure shown on a re-rendered form.
fn failure_alert(e: &ServiceError) -> &'static str {
    log_failure(e);
    if status_of(e) == StatusCode::SERVICE_UNAVAILABLE {
        "portal.error.busy"
    } else {
        "error.internal"
    }
}

/// The form, or an empty one when the request carried no form at all (a bare POST), so that the
/// session and CSRF checks still give their answers (401/403) instead of 415. A body that is too
/// large or malformed keeps its own page.
fn form_or_empty<F: Default>(form: FormResult<F>) -> Result<F, HttpResponse> {
    match form {
        Ok(form) => Ok(form.into_inner()),
        Err(e) if e.as_response_error().status_code() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Ok(F::default())
        }
        Err(e) => Err(e.error_response()),
    }
}

/// The live session of the request; without one, 401 with the login form.
async fn session_or_login(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
) -> Result<SessionContext, HttpResponse> {
    match auth::current_session(state, req).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(login_required(state, req, lang)),
        Err(e) => Err(portal_failure(state, lang, None, &e)),
    }
}

/// For a POST of a session: the session (401 without), then the form's CSRF token (403 when
/// missing or wrong). Only then may the use case run.
async fn session_post<F: CsrfField + Default>(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    form: FormResult<F>,
) -> Result<(SessionContext, F), HttpResponse> {
    let session = session_or_login(state, req, lang).await?;
    let form = form_or_empty(form)?;
    if !auth::csrf_ok(&session, form.csrf()) {
        return Err(csrf_refused(state, lang, nav(&session)));
    }
    Ok((session, form))
}

/// For a form shown before login: the double-submit token must match its cookie (403 otherwise).
fn anonymous_post<F: CsrfField + Default>(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    form: FormResult<F>,
) -> Result<F, HttpResponse> {
    let form = form_or_empty(form)?;
    if !auth::anonymous_csrf_ok(req, form.csrf()) {
        return Err(csrf_refused(state, lang, None));
    }
    Ok(form)
}

/// The double-submit token for a form shown before login, and the cookie to set if it is new.
fn anonymous_token(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
) -> Result<(String, Option<Cookie<'static>>), HttpResponse> {
    auth::anonymous_csrf(req, state.options.secure_cookies)
        .map_err(|e| portal_failure(state, lang, None, &e))
}

/// An id that cannot exist is asked for as the nil id, so the use case still decides between
/// `Forbidden` (not an approved practice) and `NotFound`.
fn parse_id(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or(Uuid::nil())
}

fn number(text: &str) -> NumberInput<'_> {
    if text.trim().is_empty() {
        NumberInput::Missing
    } else {
        NumberInput::Text(text)
    }
}

fn local_time(text: &str) -> TimeInput<'_> {
    if text.trim().is_empty() {
        TimeInput::Missing
    } else {
        TimeInput::Local(text)
    }
}

fn radius(text: &str) -> RadiusInput<'_> {
    if text.trim().is_empty() {
        RadiusInput::Missing
    } else {
        RadiusInput::Text(text)
    }
}

/// A moment as the practice reads it: in the service's time zone.
fn moment(state: &AppState, t: DateTime<Utc>) -> String {
    t.with_timezone(&state.services.policy.timezone)
        .format("%d.%m.%Y %H:%M")
        .to_string()
}

fn offer_status(status: OfferStatus) -> (&'static str, &'static str) {
    match status {
        OfferStatus::Open => ("open", "portal.offer_status.open"),
        OfferStatus::Closed => ("closed", "portal.offer_status.closed"),
        OfferStatus::Cancelled => ("cancelled", "portal.offer_status.cancelled"),
    }
}

fn booking_status(status: BookingStatus) -> (&'static str, &'static str) {
    match status {
        BookingStatus::Booked => ("booked", "portal.booking_status.booked"),
        BookingStatus::CheckedIn => ("checked_in", "portal.booking_status.checked_in"),
        BookingStatus::NoShow => ("no_show", "portal.booking_status.no_show"),
        BookingStatus::Cancelled => ("cancelled", "portal.booking_status.cancelled"),
    }
}

fn practice_status(status: PracticeStatus) -> (&'static str, &'static str) {
    match status {
        PracticeStatus::Pending => ("pending", "portal.practice_status.pending"),
        PracticeStatus::Approved => ("approved", "portal.practice_status.approved"),
        PracticeStatus::Rejected => ("rejected", "portal.practice_status.rejected"),
        PracticeStatus::Suspended => ("suspended", "portal.practice_status.suspended"),
    }
}

// --- sign-up and verification --------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn render_signup(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    csrf: String,
    form: &SignupForm,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let rendered = SignupPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        name: form.name.clone(),
        street: form.street.clone(),
        postcode: form.postcode.clone(),
        city: form.city.clone(),
        phone: form.phone.clone(),
        email: form.email.clone(),
        name_error: field_message(errors, "name"),
        street_error: field_message(errors, "street"),
        postcode_error: field_message(errors, "postcode"),
        city_error: field_message(errors, "city"),
        phone_error: field_message(errors, "phone"),
        email_error: field_message(errors, "email"),
        password_error: field_message(errors, "password"),
        has_errors: !errors.is_empty(),
        alert,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn signup_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let (csrf, cookie) = attempt!(anonymous_token(&state, &req, &lang));
    let response = render_signup(
        &state,
        &lang,
        StatusCode::OK,
        csrf,
        &SignupForm::default(),
        &[],
        None,
    );
    with_cookie(response, cookie)
}

pub async fn signup_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<SignupForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let input = PracticeSignUp {
        name: form.name.clone(),
        street: form.street.clone(),
        postcode: form.postcode.clone(),
        city: form.city.clone(),
        phone: form.phone.clone(),
        email: form.email.clone(),
        password: form.password.clone(),
    };
    let result = state.services.sign_up_practice(&input, lang.lang).await;
    let (csrf, cookie) = attempt!(anonymous_token(&state, &req, &lang));
    let response = match result {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.signup.done_title",
            "portal.signup.done_body",
            None,
        ),
        Err(ServiceError::Validation(errors)) => render_signup(
            &state,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            csrf,
            &form,
            &errors,
            None,
        ),
        Err(e) => render_signup(
            &state,
            &lang,
            status_of(&e),
            csrf,
            &form,
            &[],
            Some(failure_alert(&e)),
        ),
    };
    with_cookie(response, cookie)
}

/// The link from the verification mail opens a page with a button; mail scanners follow GET
/// links, so only the POST verifies.
pub async fn verify_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let rendered = VerifyPage {
        t: T::new(lang.lang),
        nav: None,
        token: token.into_inner(),
    }
    .render();
    page(&state, &lang, StatusCode::OK, rendered)
}

pub async fn verify_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    match state.services.verify_practice_email(&token).await {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.verified.title",
            "portal.verified.body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(e) => portal_failure(&state, &lang, None, &e),
    }
}

// --- login and logout ----------------------------------------------------------------------

fn render_login(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    email: &str,
    alert: Option<String>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = LoginPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        email: email.to_owned(),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

/// 401 with the login form; a session cookie that no longer works is removed.
fn login_required(state: &AppState, req: &HttpRequest, lang: &RequestLang) -> HttpResponse {
    let t = T::new(lang.lang);
    let response = render_login(
        state,
        req,
        lang,
        StatusCode::UNAUTHORIZED,
        "",
        Some(t.get("portal.login.required").to_owned()),
    );
    let stale = req
        .cookie(auth::SESSION_COOKIE)
        .map(|_| auth::expired_session_cookie(state.options.secure_cookies));
    with_cookie(response, stale)
}

pub async fn login_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    render_login(&state, &req, &lang, StatusCode::OK, "", None)
}

pub async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<LoginForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let t = T::new(lang.lang);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let ip = auth::client_ip(&req);
    match state
        .services
        .log_in(&form.email, &form.password, ip.as_deref())
        .await
    {
        Ok(login) => {
            let target = match login.role {
                Role::Admin => "/admin",
                Role::Practice => "/portal",
            };
            let cookie = auth::session_cookie(login.cookie.expose(), state.options.secure_cookies);
            with_cookie(see_other(target), Some(cookie))
        }
        Err(ServiceError::Unauthenticated) => render_login(
            &state,
            &req,
            &lang,
            StatusCode::UNAUTHORIZED,
            &form.email,
            Some(t.get("portal.login.failed").to_owned()),
        ),
        Err(e @ ServiceError::Throttled { retry_after_secs }) => {
            let minutes = (retry_after_secs + 59) / 60;
            let response = render_login(
                &state,
                &req,
                &lang,
                status_of(&e),
                &form.email,
                Some(t.fill("portal.login.throttled", &[("minutes", minutes)])),
            );
            retry_after(response, retry_after_secs)
        }
        Err(e @ ServiceError::EmailNotVerified) => portal_failure(&state, &lang, None, &e),
        Err(e) => render_login(
            &state,
            &req,
            &lang,
            status_of(&e),
            &form.email,
            Some(t.get(failure_alert(&e)).to_owned()),
        ),
    }
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    match state.services.log_out(&session).await {
        Ok(()) => with_cookie(
            see_other("/portal/login"),
            Some(auth::expired_session_cookie(state.options.secure_cookies)),
        ),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

// --- password ------------------------------------------------------------------------------

fn render_password(
    state: &AppState,
    lang: &RequestLang,
    nav: Option<Nav>,
    status: StatusCode,
    errors: &[FieldError],
    notice: Option<&'static str>,
    alert: Option<&'static str>,
) -> HttpResponse {
    let rendered = PasswordPage {
        t: T::new(lang.lang),
        csrf: nav.as_ref().map(|n| n.csrf.clone()).unwrap_or_default(),
        nav,
        current_error: field_message(errors, "current_password"),
        new_error: field_message(errors, "new_password"),
        notice,
        alert,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn password_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    render_password(
        &state,
        &lang,
        nav(&session),
        StatusCode::OK,
        &[],
        None,
        None,
    )
}

pub async fn password_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<PasswordForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .change_password(&session, &form.current_password, &form.new_password)
        .await
    {
        Ok(login) => {
            // Every session ended, this one too; the page's forms need the new one's token.
            let fresh = match state.services.session(login.cookie.expose()).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => {
                    return portal_failure(
                        &state,
                        &lang,
                        None,
                        &ServiceError::Internal("new session missing".to_owned()),
                    );
                }
                Err(e) => return portal_failure(&state, &lang, None, &e),
            };
            let cookie = auth::session_cookie(login.cookie.expose(), state.options.secure_cookies);
            let response = render_password(
                &state,
                &lang,
                nav(&fresh),
                StatusCode::OK,
                &[],
                Some("portal.password.changed"),
                None,
            );
            with_cookie(response, Some(cookie))
        }
        Err(ServiceError::Validation(errors)) => render_password(
            &state,
            &lang,
            nav(&session),
            StatusCode::UNPROCESSABLE_ENTITY,
            &errors,
            None,
            None,
        ),
        Err(e) => render_password(
            &state,
            &lang,
            nav(&session),
            status_of(&e),
            &[],
            None,
            Some(failure_alert(&e)),
        ),
    }
}

fn render_forgot(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    email: &str,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = ForgotPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        email: email.to_owned(),
        email_error: field_message(errors, "email"),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

pub async fn forgot_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    render_forgot(&state, &req, &lang, StatusCode::OK, "", &[], None)
}

pub async fn forgot_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<ForgotForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    match state
        .services
        .request_password_reset(&form.email, lang.lang)
        .await
    {
        // The same answer whether or not the address has an account.
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.forgot.sent_title",
            "portal.forgot.sent_body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(ServiceError::Validation(errors)) => render_forgot(
            &state,
            &req,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            &errors,
            None,
        ),
        Err(e) => render_forgot(
            &state,
            &req,
            &lang,
            status_of(&e),
            &form.email,
            &[],
            Some(failure_alert(&e)),
        ),
    }
}

fn render_reset(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    token: String,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = ResetPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        token,
        password_error: field_message(errors, "password"),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

/// Shows the form; whether the link works is known only when it is used (there is no use case
/// that checks a reset link without consuming it).
pub async fn reset_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    render_reset(
        &state,
        &req,
        &lang,
        StatusCode::OK,
        token.into_inner(),
        &[],
        None,
    )
}

pub async fn reset_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: FormResult<ResetForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let token = token.into_inner();
    match state
        .services
        .reset_password(&token, &form.new_password)
        .await
    {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.reset.done_title",
            "portal.reset.done_body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(ServiceError::Validation(errors)) => render_reset(
            &state,
            &req,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            &errors,
            None,
        ),
        Err(e @ ServiceError::InvalidLink) => portal_failure(&state, &lang, None, &e),
        Err(e) => render_reset(
            &state,
            &req,
            &lang,
            status_of(&e),
            token,
            &[],
            Some(failure_alert(&e)),
        ),
    }
}

// --- dashboard -----------------------------------------------------------------------------

pub async fn dashboard(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    if let Principal::Admin { .. } = session.principal {
        return see_other("/admin");
    }
    // A practice that is not approved may not list offers; it sees its status instead.
    let (offers, approved) = match state.services.offers(&session.principal).await {
        Ok(offers) => (offers, true),
        Err(ServiceError::Forbidden) => (Vec::new(), false),
        Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
    };
    let (status, status_key) = session
        .practice
        .as_ref()
        .map_or(("pending", "portal.practice_status.pending"), |p| {
            practice_status(p.status)
        });
    let offers = offers
        .into_iter()
        .map(|offer| {
            let (status, status_key) = offer_status(offer.status);
            OfferRow {
                id: offer.id,
                window: state.services.format_window(offer.starts_at, offer.ends_at),
                vaccine: offer.vaccine,
                doses: offer.doses,
                status,
                status_key,
            }
        })
        .collect();
    let t = T::new(lang.lang);
    let figures = if approved {
        match state.services.practice_statistics(&session.principal).await {
            Ok(figures) => crate::statistics::practice_rows(&t, &figures),
            Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
        }
    } else {
        Vec::new()
    };
    let rendered = DashboardPage {
        t,
        nav: nav(&session),
        practice_name: session
            .practice
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        status,
        status_key,
        approved,
        offers,
        figures,
    }
    .render();
    page(&state, &lang, StatusCode::OK, rendered)
}

// --- posting an offer ----------------------------------------------------------------------

fn render_offer_form(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    status: StatusCode,
    form: &OfferForm,
    errors: &[FieldError],
) -> HttpResponse {
    let vaccines = state
        .services
        .policy
        .vaccines
        .iter()
        .map(|name| VaccineOption {
            name: name.clone(),
            selected: *name == form.vaccine,
        })
        .collect();
    let rendered = OfferFormPage {
        t: T::new(lang.lang),
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        vaccines,
        doses: form.doses.clone(),
        starts_at: form.starts_at.clone(),
        ends_at: form.ends_at.clone(),
        claim_minutes: form.claim_minutes.clone(),
        radius_km: form.radius_km.clone(),
        note: form.note.clone(),
        vaccine_error: field_message(errors, "vaccine"),
        doses_error: field_message(errors, "doses"),
        starts_at_error: field_message(errors, "starts_at"),
        ends_at_error: field_message(errors, "ends_at"),
        claim_minutes_error: field_message(errors, "claim_minutes"),
        radius_km_error: field_message(errors, "radius_km"),
        note_error: field_message(errors, "note"),
        has_errors: !errors.is_empty(),
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn offer_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    if let Err(e) = session.principal.approved_practice() {
        return portal_failure(&state, &lang, nav(&session), &e);
    }
    let form = OfferForm {
        claim_minutes: DEFAULT_CLAIM_MINUTES.to_string(),
        radius_km: RadiusKm::DEFAULT.km().to_string(),
        ..OfferForm::default()
    };
    render_offer_form(&state, &lang, &session, StatusCode::OK, &form, &[])
}

pub async fn offer_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<OfferForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let input = OfferInput {
        vaccine: &form.vaccine,
        doses: number(&form.doses),
        starts_at: local_time(&form.starts_at),
        ends_at: local_time(&form.ends_at),
        claim_minutes: number(&form.claim_minutes),
        radius_km: radius(&form.radius_km),
        note: &form.note,
    };
    match state.services.post_offer(&session.principal, &input).await {
        Ok(offer) => see_other(&format!("/portal/offers/{}", offer.id)),
        Err(ServiceError::Validation(errors)) => render_offer_form(
            &state,
            &lang,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
        ),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

// --- the offer page ------------------------------------------------------------------------

/// What a re-rendered offer page adds to the stored state.
#[derive(Default)]
struct OfferExtras {
    notice: Option<&'static str>,
    alert: Option<&'static str>,
    code: String,
    more_doses: String,
    doses_error: Option<&'static str>,
}

async fn render_offer(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    id: Uuid,
    status: StatusCode,
    extras: OfferExtras,
) -> HttpResponse {
    let view = match state.services.offer_view(&session.principal, id).await {
        Ok(view) => view,
        Err(e) => return portal_failure(state, lang, nav(session), &e),
    };
    let t = T::new(lang.lang);
    let minutes = view.time_left.num_minutes();
    let (offer_status_name, offer_status_key) = offer_status(view.offer.status);
    let bookings = view
        .bookings
        .iter()
        .map(|booking| {
            let (status, status_key) = booking_status(booking.status);
            BookingRow {
                code: booking.code.clone(),
                shown: BookingCode::parse(&booking.code)
                    .map_or_else(|_| booking.code.clone(), |c| c.display()),
                status,
                status_key,
                booked: booking.status == BookingStatus::Booked,
            }
        })
        .collect();
    let rendered = OfferPage {
        t,
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        id: view.offer.id,
        window: state
            .services
            .format_window(view.offer.starts_at, view.offer.ends_at),
        vaccine: view.offer.vaccine.clone(),
        status: offer_status_name,
        status_key: offer_status_key,
        open: view.offer.status == OfferStatus::Open,
        cancelled: view.offer.status == OfferStatus::Cancelled,
        doses: view.offer.doses,
        claimed: view.claimed,
        checked_in: view.checked_in,
        remaining: view.remaining,
        time_left: t.fill(
            "portal.offer.time_left_value",
            &[("hours", minutes / 60), ("minutes", minutes % 60)],
        ),
        claim_minutes: view.offer.claim_minutes,
        radius_km: view.offer.radius_km,
        note: view.offer.note.clone(),
        bookings,
        notice: extras.notice,
        alert: extras.alert,
        code: extras.code,
        more_doses: extras.more_doses,
        doses_error: extras.doses_error,
    }
    .render();
    page(state, lang, status, rendered)
}

fn see_offer(id: Uuid, notice: &str) -> HttpResponse {
    see_other(&format!("/portal/offers/{id}?notice={notice}"))
}

pub async fn offer_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    let (notice, alert) = match query.notice.as_deref() {
        Some("no_show") => (Some("portal.offer.no_show_done"), None),
        Some("no_show_refused") => (None, Some("portal.offer.no_show_refused")),
        Some("doses_added") => (Some("portal.offer.doses_added"), None),
        Some("closed") => (Some("portal.offer.closed"), None),
        Some("cancelled") => (Some("portal.offer.cancelled"), None),
        _ => (None, None),
    };
    let extras = OfferExtras {
        notice,
        alert,
        ..OfferExtras::default()
    };
    render_offer(
        &state,
        &lang,
        &session,
        parse_id(&id),
        StatusCode::OK,
        extras,
    )
    .await
}

pub async fn offer_check_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CheckInForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    let extras = match state
        .services
        .check_in(&session.principal, id, &form.code)
        .await
    {
        Ok(CheckInOutcome::CheckedIn) => OfferExtras {
            notice: Some("portal.checkin.done"),
            ..OfferExtras::default()
        },
        Ok(CheckInOutcome::AlreadyUsed) => OfferExtras {
            alert: Some("portal.checkin.used"),
            ..OfferExtras::default()
        },
        // Kept, so a mistyped code can be corrected.
        Ok(CheckInOutcome::Unknown) => OfferExtras {
            alert: Some("portal.checkin.unknown"),
            code: form.code,
            ..OfferExtras::default()
        },
        Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
    };
    render_offer(&state, &lang, &session, id, StatusCode::OK, extras).await
}

pub async fn offer_no_show(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let (id, code) = path.into_inner();
    let id = parse_id(&id);
    match state
        .services
        .mark_no_show(&session.principal, id, &code)
        .await
    {
        Ok(true) => see_offer(id, "no_show"),
        Ok(false) => see_offer(id, "no_show_refused"),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn offer_add_doses(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<DosesForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state
        .services
        .add_doses(&session.principal, id, number(&form.doses))
        .await
    {
        Ok(_) => see_offer(id, "doses_added"),
        Err(ref e @ ServiceError::Validation(ref errors)) => {
            let extras = OfferExtras {
                doses_error: field_message(errors, "doses"),
                more_doses: form.doses,
                ..OfferExtras::default()
            };
            render_offer(&state, &lang, &session, id, status_of(e), extras).await
        }
        Err(e @ ServiceError::Conflict(_)) => {
            let extras = OfferExtras {
                alert: Some("portal.offer.doses_refused"),
                more_doses: form.doses,
                ..OfferExtras::default()
            };
            render_offer(&state, &lang, &session, id, status_of(&e), extras).await
        }
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn offer_close(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state.services.close_offer(&session.principal, id).await {
        Ok(()) => see_offer(id, "closed"),
        Err(e) => offer_action_failed(&state, &lang, &session, id, &e).await,
    }
}

pub async fn offer_cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state.services.cancel_offer(&session.principal, id).await {
        Ok(_) => see_offer(id, "cancelled"),
        Err(e) => offer_action_failed(&state, &lang, &session, id, &e).await,
    }
}

/// A refused close or cancel shows the offer as it is (409); other failures get their page.
async fn offer_action_failed(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    id: Uuid,
    e: &ServiceError,
) -> HttpResponse {
    match e {
        ServiceError::Conflict(_) => {
            let extras = OfferExtras {
                alert: Some("portal.offer.not_open"),
                ..OfferExtras::default()
            };
            render_offer(state, lang, session, id, status_of(e), extras).await
        }
        _ => portal_failure(state, lang, nav(session), e),
    }
}

// --- API tokens ----------------------------------------------------------------------------

#[derive(Default)]
struct TokenExtras {
    secret: Option<String>,
    name: String,
    name_error: Option<&'static str>,
    notice: Option<&'static str>,
}

async fn render_tokens(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    status: StatusCode,
    extras: TokenExtras,
) -> HttpResponse {
    let tokens = match state.services.api_tokens(&session.principal).await {
        Ok(tokens) => tokens,
        Err(e) => return portal_failure(state, lang, nav(session), &e),
    };
    let tokens = tokens
        .into_iter()
        .map(|token| TokenRow {
            id: token.id,
            created: moment(state, token.created_at),
            last_used: token.last_used_at.map(|t| moment(state, t)),
            revoked: token.revoked_at.map(|t| moment(state, t)),
            name: token.name,
        })
        .collect();
    let rendered = TokensPage {
        t: T::new(lang.lang),
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        tokens,
        secret: extras.secret,
        name: extras.name,
        name_error: extras.name_error,
        notice: extras.notice,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn tokens_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    let extras = TokenExtras {
        notice: (query.notice.as_deref() == Some("revoked")).then_some("portal.tokens.revoked"),
        ..TokenExtras::default()
    };
    render_tokens(&state, &lang, &session, StatusCode::OK, extras).await
}

pub async fn token_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<TokenForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .create_api_token(&session.principal, &form.name)
        .await
    {
        // Shown this once; only its hash is stored. `page` sends `Cache-Control: no-store`.
        Ok(created) => {
            let extras = TokenExtras {
                secret: Some(created.secret),
                ..TokenExtras::default()
            };
            render_tokens(&state, &lang, &session, StatusCode::OK, extras).await
        }
        Err(ref e @ ServiceError::Validation(ref errors)) => {
            let extras = TokenExtras {
                name_error: field_message(errors, "name"),
                name: form.name,
                ..TokenExtras::default()
            };
            render_tokens(&state, &lang, &session, status_of(e), extras).await
        }
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn token_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .revoke_api_token(&session.principal, parse_id(&id))
        .await
    {
        Ok(()) => see_other("/portal/tokens?notice=revoked"),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::i18n::lookup;
    use restdose_domain::Lang;

    /// The scan in `i18n.rs` checks two-part keys only; the portal's keys have three parts.
    #[test]
    fn every_portal_key_used_here_exists_in_both_languages() {
        let source = include_str!("../src/portal.rs");
        let mut checked = 0;
        // (The quote is written as an escape so that this file's own strings keep their parity.)
        for piece in source.split('\u{22}').skip(1).step_by(2) {
            let is_key = piece.split('.').count() >= 2
                && piece.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if is_key && piece.starts_with("portal.") {
                checked += 1;
                for lang in [Lang::De, Lang::En] {
                    assert!(
                        lookup(lang, piece).is_some(),
                        "missing {lang:?} text for {piece}"
                    );
                }
            }
        }
        assert!(checked > 40, "only {checked} keys found");
    }
}
