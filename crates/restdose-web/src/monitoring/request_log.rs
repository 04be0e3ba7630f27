//! Request logging that never writes a URL (links carry secret tokens), only the route pattern.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use std::time::Instant;

use crate::monitoring::{record_request, request_id};

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
    let request_id = request_id(
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
    record_request(method.as_str(), &route, response.status().as_u16(), elapsed);
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
