//! The JSON API for sign-ups. Strict on purpose: wrong content type, oversized bodies, unknown
//! fields and wrong types are refused with a precise error before anything is stored.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use restdose_core::{RadiusInput, ServiceError, validate_sign_up};
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::ApiError;
use crate::request_lang::request_lang;

const SIGN_UP_FIELDS: &[&str] = &["email", "postcode", "radius_km"];

/// Sign up for the waitlist (double opt-in).
#[utoipa::path(
    post,
    path = "/api/v1/registrations",
    tag = "registrations",
    request_body(content = crate::openapi::RegistrationRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Taken; a confirmation link was mailed (also when the address is already registered).", body = crate::openapi::RegistrationAccepted),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is missing or invalid; `field` names it.", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many sign-ups; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
    )
)]
pub async fn create_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body =
        read_json_object(&req, payload, state.options.max_body_bytes, SIGN_UP_FIELDS).await?;
    let email = string_field(&body, "email", "invalid_email")?;
    let postcode = string_field(&body, "postcode", "invalid_postcode")?;
    let radius = match body.get("radius_km") {
        None | Some(Value::Null) => RadiusInput::Missing,
        Some(Value::Number(n)) => n.as_i64().map_or(RadiusInput::Invalid, RadiusInput::Number),
        Some(_) => RadiusInput::Invalid,
    };
    let lang = request_lang(&req).lang;
    let request = validate_sign_up(&email, &postcode, radius, lang, &state.services.gazetteer)
        .map_err(|errors| ApiError::from(ServiceError::Validation(errors)))?;
    state.services.sign_up(request).await?;
    Ok(
        HttpResponse::Accepted().json(crate::openapi::RegistrationAccepted {
            status: "pending_confirmation",
        }),
    )
}

/// A required string field; missing or empty gives `required`, another JSON type `type_code`.
fn string_field(
    body: &Map<String, Value>,
    field: &'static str,
    type_code: &'static str,
) -> Result<String, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            format!("The field \"{field}\" is required."),
        )
        .with_field(field)),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            type_code,
            format!("The field \"{field}\" must be a string."),
        )
        .with_field(field)),
    }
}

/// Reads a JSON object body: `415` unless `application/json`, `413` past `limit` bytes (told by
/// Content-Length up front, or counted while streaming), `400` for malformed JSON, a non-object,
/// or a field not in `allowed`.
pub async fn read_json_object(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    allowed: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json.",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body is larger than {limit} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "The body could not be read.",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("The body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body must be a JSON object.",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            format!("Unknown field; allowed are: {}.", allowed.join(", ")),
        )
        .with_field(unknown.clone()));
    }
    Ok(map)
}
