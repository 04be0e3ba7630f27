//! The one place where failures become HTTP statuses: `status_of` for pages, `ApiError` (the
//! JSON error shape) for the APIs. The API's error schema in the OpenAPI document is derived
//! from the same types that write the answer (`ErrorBody`, `ApiError` as `ErrorDetail`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use restdose_core::ServiceError;
use restdose_store::StoreError;
use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 30;

/// The JSON error shape: `{"error":{"code","message","field"}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ErrorDetail)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Machine-readable: e.g. `invalid_json`, `unknown_field`, `required`, `invalid_email`,
    /// `unauthenticated`, `forbidden`, `not_found`, `conflict`, `rate_limited`,
    /// `payload_too_large`, `unsupported_media_type`, `service_unavailable`.
    pub code: &'static str,
    /// For people: what went wrong and what to do.
    pub message: String,
    /// The request field the error is about, if any.
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

/// Every error: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub(crate) error: ApiError,
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
        response.json(ErrorBody {
            error: self.clone(),
        })
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
        ServiceError::Store(StoreError::Unavailable(_)) | ServiceError::Busy => {
            StatusCode::SERVICE_UNAVAILABLE
        }
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
            ServiceError::Store(StoreError::Unavailable(_)) | ServiceError::Busy => ApiError::new(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every password hash permit taken: 503 with `Retry-After`, as JSON under the API.
    #[test]
    fn busy_is_503_with_retry_after() {
        assert_eq!(
            status_of(&ServiceError::Busy),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let error = ApiError::from(ServiceError::Busy);
        assert_eq!(error.code, "service_unavailable");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .unwrap()
                .to_str()
                .unwrap(),
            RETRY_AFTER_SECS.to_string()
        );
    }
}
