//! The portal's shared answers: the navigation, message and failure pages, redirects, cookies,
//! and how statuses and moments are shown.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use restdose_core::{ServiceError, SessionContext};
use restdose_store::{BookingStatus, OfferStatus, PracticeStatus};

use crate::auth;
use crate::error::{log_failure, status_of};
use crate::html::page;
use crate::i18n::T;
use crate::request_lang::RequestLang;
use crate::state::AppState;

/// Unwraps a step that may already have produced the answer (a 401, 403 or error page).
macro_rules! attempt {
    ($step:expr) => {
        match $step {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}
pub(crate) use attempt;

/// The navigation of a logged-in page; its logout button needs the session's CSRF token.
pub(crate) struct Nav {
    pub(crate) csrf: String,
    pub(crate) approved: bool,
    pub(crate) admin: bool,
}

pub(crate) fn nav(session: &SessionContext) -> Option<Nav> {
    Some(Nav {
        csrf: session.csrf_token.clone(),
        approved: session.principal.approved_practice().is_ok(),
        admin: session.principal.admin().is_ok(),
    })
}

#[derive(Template)]
#[template(path = "portal_message.html")]
pub(crate) struct MessagePage {
    t: T,
    nav: Option<Nav>,
    title: &'static str,
    body: String,
    link: Option<(String, &'static str)>,
}

pub(crate) fn with_cookie(
    mut response: HttpResponse,
    cookie: Option<Cookie<'static>>,
) -> HttpResponse {
    if let Some(cookie) = cookie
        && let Err(e) = response.add_cookie(&cookie)
    {
        tracing::error!(error = %e, "could not set a cookie");
    }
    response
}

pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A message page, with the navigation when logged in.
pub(crate) fn say(
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
pub(crate) fn portal_failure(
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

pub(crate) fn retry_after(mut response: HttpResponse, secs: i64) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// A form whose CSRF token is missing or wrong: nothing was done.
pub(crate) fn csrf_refused(state: &AppState, lang: &RequestLang, nav: Option<Nav>) -> HttpResponse {
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
pub(crate) fn failure_alert(e: &ServiceError) -> &'static str {
    log_failure(e);
    if matches!(e, ServiceError::Throttled { .. }) {
        "portal.throttled.body"
    } else if status_of(e) == StatusCode::SERVICE_UNAVAILABLE {
        "portal.error.busy"
    } else {
        "error.internal"
    }
}

/// The double-submit token for a form shown before login, and the cookie to set if it is new.
pub(crate) fn anonymous_token(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
) -> Result<(String, Option<Cookie<'static>>), HttpResponse> {
    auth::anonymous_csrf(req, state.options.secure_cookies)
        .map_err(|e| portal_failure(state, lang, None, &e))
}

/// A moment as the practice reads it: in the service's time zone.
pub(crate) fn moment(state: &AppState, t: DateTime<Utc>) -> String {
    t.with_timezone(&state.services.policy.timezone)
        .format("%d.%m.%Y %H:%M")
        .to_string()
}

pub(crate) fn offer_status(status: OfferStatus) -> (&'static str, &'static str) {
    match status {
        OfferStatus::Open => ("open", "portal.offer_status.open"),
        OfferStatus::Closed => ("closed", "portal.offer_status.closed"),
        OfferStatus::Cancelled => ("cancelled", "portal.offer_status.cancelled"),
    }
}

pub(crate) fn booking_status(status: BookingStatus) -> (&'static str, &'static str) {
    match status {
        BookingStatus::Booked => ("booked", "portal.booking_status.booked"),
        BookingStatus::CheckedIn => ("checked_in", "portal.booking_status.checked_in"),
        BookingStatus::NoShow => ("no_show", "portal.booking_status.no_show"),
        BookingStatus::Cancelled => ("cancelled", "portal.booking_status.cancelled"),
    }
}

pub(crate) fn practice_status(status: PracticeStatus) -> (&'static str, &'static str) {
    match status {
        PracticeStatus::Pending => ("pending", "portal.practice_status.pending"),
        PracticeStatus::Approved => ("approved", "portal.practice_status.approved"),
        PracticeStatus::Rejected => ("rejected", "portal.practice_status.rejected"),
        PracticeStatus::Suspended => ("suspended", "portal.practice_status.suspended"),
    }
}
