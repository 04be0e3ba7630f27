//! What every HTML page shares: rendering with the chosen language remembered, the message
//! page, the failure page, field messages for forms, and the pages for an unreadable form and an
//! unknown path. Every page works without JavaScript; every state change is a POST (mail
//! scanners follow GET links).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{FieldError, ServiceError};

use crate::error::{RETRY_AFTER_SECS, log_failure, status_of};
use crate::i18n::T;
use crate::request_lang::{RequestLang, lang_cookie, request_lang};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    t: T,
    title: &'static str,
    body: String,
    link: Option<(String, &'static str)>,
}

/// Renders a page; remembers an explicitly chosen language in a cookie.
pub(crate) fn page(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    rendered: askama::Result<String>,
) -> HttpResponse {
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body("internal error");
        }
    };
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if lang.chosen {
        response.cookie(lang_cookie(lang.lang, state.options.secure_cookies));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
    }
    response.body(body)
}

pub(crate) fn message(
    state: &AppState,
    lang: &RequestLang,
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
            ("hours", policy.confirm_link_ttl.num_hours()),
            ("minutes", policy.resend_interval.num_minutes()),
        ],
    );
    page(
        state,
        lang,
        status,
        MessagePage {
            t,
            title,
            body,
            link,
        }
        .render(),
    )
}

/// A request turned away by admission control, as a page saying when to come back (the status
/// and `Retry-After` come from `admission::rejection`).
pub(crate) fn retry_later_page(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    body: &'static str,
    seconds: u32,
) -> HttpResponse {
    let t = T::new(lang.lang);
    let body = t.fill(body, &[("seconds", i64::from(seconds))]);
    page(
        state,
        lang,
        status,
        MessagePage {
            t,
            title: "error.title",
            body,
            link: Some(("/".to_owned(), "error.home")),
        }
        .render(),
    )
}

/// A failed use case as a page; the status comes from the one mapping in `error.rs`.
pub(crate) fn failure(state: &AppState, lang: &RequestLang, e: &ServiceError) -> HttpResponse {
    log_failure(e);
    let status = status_of(e);
    let (title, body) = match status {
        StatusCode::NOT_FOUND => ("link.title", "link.body"),
        StatusCode::SERVICE_UNAVAILABLE => ("error.title", "error.busy"),
        _ => ("error.title", "error.internal"),
    };
    message(
        state,
        lang,
        status,
        title,
        body,
        Some(("/".to_owned(), "error.home")),
    )
}

/// The message key for the error of `field`, if it has one (`field.<code>` in the tables).
pub(crate) fn field_message(errors: &[FieldError], field: &str) -> Option<&'static str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| crate::i18n::field_key(e.code))
}

/// A form body that could not be read (wrong type, too large, not URL-encoded): a page, not
/// actix's plain-text error.
pub fn bad_form(err: actix_web::error::UrlencodedError, req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::UrlencodedError;
    let (status, body) = match &err {
        UrlencodedError::Overflow { .. } | UrlencodedError::UnknownLength => {
            (StatusCode::PAYLOAD_TOO_LARGE, "error.too_large")
        }
        UrlencodedError::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "error.bad_form"),
        _ => (StatusCode::BAD_REQUEST, "error.bad_form"),
    };
    let response = match req.app_data::<web::Data<AppState>>() {
        Some(state) => message(
            state,
            &request_lang(req),
            status,
            "error.title",
            body,
            Some(("/".to_owned(), "error.home")),
        ),
        None => HttpResponse::build(status).finish(),
    };
    actix_web::error::InternalError::from_response(err, response).into()
}

pub async fn not_found(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    message(
        &state,
        &lang,
        StatusCode::NOT_FOUND,
        "error.title",
        "error.not_found",
        Some(("/".to_owned(), "error.home")),
    )
}
