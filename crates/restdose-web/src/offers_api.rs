//! The practice API for practice software: bearer-token authenticated offers and check-ins,
//! with the same validation and error shape as the sign-up API.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use restdose_core::offers::{NumberInput, OfferInput, OfferView, TimeInput};
use restdose_core::{Principal, RadiusInput, ServiceError};
use restdose_domain::BookingCode;
use restdose_store::{CheckInOutcome, Offer};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::AppState;
use crate::api::read_json_object;
use crate::error::ApiError;

const OFFER_FIELDS: &[&str] = &[
    "vaccine",
    "doses",
    "starts_at",
    "ends_at",
    "claim_minutes",
    "radius_km",
    "note",
];

pub fn routes(cfg: &mut web::ServiceConfig) {
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

/// A booking of the offer: its code and status (`booked`, `checked_in`, `no_show`,
/// `cancelled`); never who booked.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BookingJson {
    code: String,
    status: &'static str,
}

/// An offer as the practice API shows it. `status` is `open`, `closed` or `cancelled`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OfferJson {
    id: Uuid,
    status: &'static str,
    vaccine: String,
    doses: i32,
    claimed: i32,
    checked_in: i32,
    remaining: i32,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    ends_at: String,
    claim_minutes: i32,
    radius_km: u16,
    note: String,
    postcode: String,
    bookings: Vec<BookingJson>,
}

fn offer_json(view: OfferView) -> OfferJson {
    let Offer {
        id,
        status,
        vaccine,
        doses,
        starts_at,
        ends_at,
        claim_minutes,
        radius_km,
        note,
        postcode,
        ..
    } = view.offer;
    OfferJson {
        id,
        status: status.as_str(),
        vaccine,
        doses,
        claimed: view.claimed,
        checked_in: view.checked_in,
        remaining: view.remaining,
        starts_at: starts_at.to_rfc3339(),
        ends_at: ends_at.to_rfc3339(),
        claim_minutes,
        radius_km,
        note,
        postcode,
        bookings: view
            .bookings
            .into_iter()
            .map(|b| BookingJson {
                code: BookingCode::parse(&b.code)
                    .map(|c| c.display())
                    .unwrap_or(b.code),
                status: b.status.as_str(),
            })
            .collect(),
    }
}

fn number(body: &Map<String, Value>, field: &str) -> NumberInput<'static> {
    match body.get(field) {
        None | Some(Value::Null) => NumberInput::Missing,
        Some(Value::Number(n)) => n.as_i64().map_or(NumberInput::Invalid, NumberInput::Number),
        Some(_) => NumberInput::Invalid,
    }
}

fn time<'a>(body: &'a Map<String, Value>, field: &str) -> TimeInput<'a> {
    match body.get(field) {
        None | Some(Value::Null) => TimeInput::Missing,
        Some(Value::String(s)) => TimeInput::Rfc3339(s),
        Some(_) => TimeInput::Invalid,
    }
}

fn text<'a>(body: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            format!("The field \"{field}\" must be a string."),
        )
        .with_field(field)),
    }
}

/// Offer spare doses; the matcher starts inviting people at once.
#[utoipa::path(
    post,
    path = "/api/v1/offers",
    tag = "offers",
    security(("bearer" = [])),
    request_body(content = crate::openapi::OfferRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Posted.", body = OfferJson,
            headers(("Location" = String, description = "`/api/v1/offers/{id}`"))),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or unknown bearer token.", body = crate::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 422, description = "A field is missing or invalid; `field` names it.", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn create_offer(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&state, &req).await?;
    let body = read_json_object(&req, payload, state.options.max_body_bytes, OFFER_FIELDS).await?;
    let radius_km = match body.get("radius_km") {
        None | Some(Value::Null) => RadiusInput::Missing,
        Some(Value::Number(n)) => n.as_i64().map_or(RadiusInput::Invalid, RadiusInput::Number),
        Some(_) => RadiusInput::Invalid,
    };
    let input = OfferInput {
        vaccine: text(&body, "vaccine")?,
        doses: number(&body, "doses"),
        starts_at: time(&body, "starts_at"),
        ends_at: time(&body, "ends_at"),
        claim_minutes: number(&body, "claim_minutes"),
        radius_km,
        note: text(&body, "note")?,
    };
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
        (status = 401, description = "No or unknown bearer token.", body = crate::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = crate::openapi::ErrorBody),
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
        (status = 401, description = "No or unknown bearer token.", body = crate::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The offer cannot be closed now.", body = crate::openapi::ErrorBody),
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
    request_body(content = crate::openapi::CheckInRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Checked in, already used, or unknown code.", body = crate::openapi::CheckInResult),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or unknown bearer token.", body = crate::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The practice may not do this (not approved, suspended, or not its offer).", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many requests; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 404, description = "No such offer.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The offer does not take check-ins now.", body = crate::openapi::ErrorBody),
        (status = 422, description = "`code` is missing or not a string.", body = crate::openapi::ErrorBody),
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
    let body = read_json_object(&req, payload, state.options.max_body_bytes, &["code"]).await?;
    let code = match body.get("code") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "required",
                "The field \"code\" is required.",
            )
            .with_field("code"));
        }
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_type",
                "The field \"code\" must be a string.",
            )
            .with_field("code"));
        }
    };
    let result = match state.services.check_in(&principal, id, &code).await? {
        CheckInOutcome::CheckedIn => "checked_in",
        CheckInOutcome::AlreadyUsed => "already_used",
        CheckInOutcome::Unknown => "unknown",
    };
    Ok(HttpResponse::Ok().json(crate::openapi::CheckInResult { result }))
}
