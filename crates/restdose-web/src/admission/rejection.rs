//! The answer to a request that admission control turned away.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::ApiError;
use crate::html::retry_later_page;
use crate::request_lang::request_lang;
use crate::state::AppState;

/// Why admission control turned a request away.
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
        Some(state) if !req.path().starts_with("/api/") => retry_later_page(
            state,
            &request_lang(req),
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
