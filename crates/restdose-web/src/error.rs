//! The one place where failures become HTTP statuses, plus request logging that never writes a
//! URL (links carry secret tokens) — only the route pattern.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use restdose_core::ServiceError;
use restdose_store::StoreError;
use serde::Serialize;
use std::fmt;
use std::time::Instant;

use crate::AppState;

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 30;

/// The JSON error shape: `{"error":{"code","message","field"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds for `Retry-After` on 429/503 (default `RETRY_AFTER_SECS`).
    #[serde(skip)]
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ApiError,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            let secs = self.retry_after.unwrap_or(i64::from(RETRY_AFTER_SECS));
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(Envelope { error: self })
    }
}

/// How each kind of service failure is answered. Causes go to the log, never to the client.
pub fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceError::InvalidLink | ServiceError::NotFound => StatusCode::NOT_FOUND,
        ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ServiceError::EmailNotVerified | ServiceError::Forbidden => StatusCode::FORBIDDEN,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ServiceError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Store(_) | ServiceError::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn log_failure(e: &ServiceError) {
    if status_of(e).is_server_error() {
        // `{:#}`-style chains are fine: no error in these crates carries personal data.
        tracing::error!(error = %e, cause = ?std::error::Error::source(e).map(|s| s.to_string()), "request failed");
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        log_failure(&e);
        let status = status_of(&e);
        match e {
            ServiceError::Validation(errors) => {
                let first = errors.first();
                let field = first.map_or("", |f| f.field);
                let code = first.map_or("invalid", |f| f.code);
                let message =
                    crate::i18n::lookup(restdose_domain::Lang::En, &format!("field.{code}"))
                        .unwrap_or("Invalid input.");
                ApiError::new(status, code, message).with_field(field)
            }
            ServiceError::InvalidLink => ApiError::new(
                status,
                "invalid_link",
                "This link is not valid or has expired.",
            ),
            ServiceError::Store(StoreError::Unavailable(_)) => ApiError::new(
                status,
                "service_unavailable",
                "The service is busy; please try again shortly.",
            ),
            ServiceError::Unauthenticated => ApiError::new(
                status,
                "unauthenticated",
                "Send a valid API token as `Authorization: Bearer rdk_…`.",
            ),
            ServiceError::EmailNotVerified => ApiError::new(
                status,
                "email_not_verified",
                "Verify the login address first; a new link was sent.",
            ),
            ServiceError::Forbidden => ApiError::new(
                status,
                "forbidden",
                "This account may not do this (is the practice approved?).",
            ),
            ServiceError::NotFound => ApiError::new(status, "not_found", "No such resource."),
            ServiceError::Conflict(why) => {
                ApiError::new(status, "conflict", format!("Not possible now: {why}."))
            }
            ServiceError::Throttled { retry_after_secs } => {
                let mut e = ApiError::new(
                    status,
                    "rate_limited",
                    format!("Too many attempts; try again in {retry_after_secs} s."),
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            ServiceError::Store(_) | ServiceError::Crypto(_) | ServiceError::Internal(_) => {
                ApiError::new(status, "internal", "An internal error occurred.")
            }
        }
    }
}

/// Why admission control turned a request away (`admission.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No slot in the route's budget within the queue wait.
    Busy,
    /// The client address has used up its sign-ups for now.
    RateLimited,
}

/// The answer to a rejected request: `503` (busy) or `429` (rate limited) with `Retry-After`;
/// JSON for `/api/…`, otherwise a short page in the visitor's language.
pub fn rejection_response(
    req: &HttpRequest,
    why: Rejection,
    retry_after_secs: u32,
) -> HttpResponse {
    let (status, code, message, page_body) = match why {
        Rejection::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is busy; please try again shortly.",
            "error.overloaded",
        ),
        Rejection::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many sign-ups from this address; try again later.",
            "error.rate_limited",
        ),
    };
    let state = req.app_data::<web::Data<AppState>>();
    let mut response = match state {
        Some(state) if !req.path().starts_with("/api/") => crate::pages::retry_later_page(
            state,
            &crate::request_lang::request_lang(req),
            status,
            page_body,
            retry_after_secs,
        ),
        _ => {
            let mut e = ApiError::new(status, code, message);
            e.retry_after = Some(i64::from(retry_after_secs));
            e.error_response()
        }
    };
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(retry_after_secs),
    );
    response
}

/// Logs method, route pattern (never the path: it may hold a token), status and latency, counts
/// the request for `/metrics`, and gives it a request id: taken from `X-Request-Id` when that
/// is a short safe token, else a new UUID; returned in `X-Request-Id` and attached (as the
/// `request` span) to every log line written while the request is handled.
pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use tracing::Instrument;
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = crate::monitoring::request_id(
        req.headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static(X_REQUEST_ID), value);
    }
    let elapsed = started.elapsed();
    crate::monitoring::record_request(method.as_str(), &route, response.status().as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status = response.status().as_u16(),
            micros = elapsed.as_micros() as u64,
            "request"
        )
    });
    Ok(response)
}

const X_REQUEST_ID: &str = "x-request-id";
