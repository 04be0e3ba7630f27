//! The practice API for practice software: bearer-token authenticated offers and check-ins,
//! with the same validation and error shape as the sign-up API.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use restdose_core::{Principal, ServiceError};
use restdose_store::CheckInOutcome;
use uuid::Uuid;

use crate::api::json_body::read_request;
use crate::api::offer_bodies::{
    CheckInRequest, CheckInResult, OfferJson, OfferRequest, offer_json,
};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/offers", web::post().to(create_offer))
        .route("/api/v1/offers/{id}", web::get().to(get_offer))
        .route("/api/v1/offers/{id}/close", web::post().to(close_offer))
        .route("/api/v1/offers/{id}/checkins", web::post().to(check_in));
}

/// `Authorization: Bearer rdk_…` → the practice. Missing or unknown → 401.
async fn principal(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // RFC 9110: the scheme name is case-insensitive.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::from(ServiceError::Unauthenticated))?;
    Ok(state.services.authenticate_api_token(bearer).await?)
}

/// A malformed id becomes the nil id, which matches no offer: the use case then answers as for
/// any unknown id (403 for a practice that may not act, 404 otherwise).
fn offer_id(raw: &str) -> Result<Uuid, ApiError> {
    Ok(Uuid::parse_str(raw).unwrap_or(Uuid::nil()))
}

/// Offer spare doses; the matcher starts inviting people at once.
#[utoipa::path(
    post,
    path = "/api/v1/offers",
    tag = "offers",
    security(("bearer" = [])),
    request_body(content = OfferRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Posted.", body = OfferJson,
            headers(("Location" = String, description = "`/api/v1/offers/{id}`"))),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 422, description = "A field is missing or invalid; `field` names it.", body = ErrorBody),
    )
)]
pub(crate) async fn create_offer(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&state, &req).await?;
    let body: OfferRequest = read_request(&req, payload, state.options.max_body_bytes).await?;
    let input = body.input();
    let offer = state.services.post_offer(&principal, &input).await?;
    let view = state.services.offer_view(&principal, offer.id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/offers/{}", offer.id)))
        .json(offer_json(view)))
}

/// An offer with its progress and bookings (codes and status only, never who booked).
#[utoipa::path(
    get,
    path = "/api/v1/offers/{id}",
    tag = "offers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The offer's id (a UUID).")),
    responses(
        (status = 200, description = "The offer.", body = OfferJson),
        (status = 401, description = "No or unknown bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = ErrorBody),
    )
)]
pub(crate) async fn get_offer(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&state, &req).await?;
    let view = state
        .services
        .offer_view(&principal, offer_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(offer_json(view)))
}

/// Close an open offer: nobody more is invited; bookings stay.
#[utoipa::path(
    post,
    path = "/api/v1/offers/{id}/close",
    tag = "offers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The offer's id (a UUID).")),
    responses(
        (status = 200, description = "Closed (or already closed).", body = OfferJson),
        (status = 401, description = "No or unknown bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = ErrorBody),
        (status = 409, description = "The offer cannot be closed now.", body = ErrorBody),
    )
)]
pub(crate) async fn close_offer(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&state, &req).await?;
    let id = offer_id(&id)?;
    state.services.close_offer(&principal, id).await?;
    let view = state.services.offer_view(&principal, id).await?;
    Ok(HttpResponse::Ok().json(offer_json(view)))
}

/// Check a person in by their booking code.
#[utoipa::path(
    post,
    path = "/api/v1/offers/{id}/checkins",
    tag = "offers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The offer's id (a UUID).")),
    request_body(content = CheckInRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Checked in, already used, or unknown code.", body = CheckInResult),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = ErrorBody),
        (status = 409, description = "The offer does not take check-ins now.", body = ErrorBody),
        (status = 422, description = "`code` is missing or not a string.", body = ErrorBody),
    )
)]
pub(crate) async fn check_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&state, &req).await?;
    let id = offer_id(&id)?;
    let body: CheckInRequest = read_request(&req, payload, state.options.max_body_bytes).await?;
    let result = match state.services.check_in(&principal, id, &body.code).await? {
        CheckInOutcome::CheckedIn => "checked_in",
        CheckInOutcome::AlreadyUsed => "already_used",
        CheckInOutcome::Unknown => "unknown",
    };
    Ok(HttpResponse::Ok().json(CheckInResult { result }))
}
