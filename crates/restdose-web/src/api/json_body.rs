//! Reading JSON request bodies. Strict on purpose: wrong content type, oversized bodies,
//! unknown fields and wrong types are refused with a precise error before anything is stored.
//!
//! Each body is a type that implements [`JsonRequest`] and derives `utoipa::ToSchema`: the
//! handler parses into it and the OpenAPI document is generated from it, so what is documented
//! is what is read (`api/tests.rs` holds the two against each other).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use restdose_core::RadiusInput;
use restdose_core::offers::NumberInput;
use restdose_domain::RadiusKm;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};

use crate::error::ApiError;

/// A JSON request body: the fields it takes and how each is read from the object.
pub(crate) trait JsonRequest: ToSchema + Sized {
    /// Every field the body may have, in the order the `unknown_field` error lists them.
    const FIELDS: &'static [&'static str];

    /// Reads the fields; a field of the wrong JSON type is refused here, the values themselves
    /// are judged by the use case.
    fn from_fields(body: &Map<String, Value>) -> Result<Self, ApiError>;
}

/// Reads the body as `R` (see [`read_json_object`] for what is refused).
pub(crate) async fn read_request<R: JsonRequest>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<R, ApiError> {
    let body = read_json_object(req, payload, limit, R::FIELDS).await?;
    R::from_fields(&body)
}

/// A required string field; missing or null gives `required`, another JSON type `type_code`
/// (an empty string is left for the use case to refuse).
pub(crate) fn string_field(
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

/// An optional string field: missing or null reads as empty.
pub(crate) fn optional_string(
    body: &Map<String, Value>,
    field: &'static str,
) -> Result<String, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            format!("The field \"{field}\" must be a string."),
        )
        .with_field(field)),
    }
}

/// A whole number; anything else is left for the use case to refuse.
pub(crate) fn number(body: &Map<String, Value>, field: &str) -> NumberInput<'static> {
    match body.get(field) {
        None | Some(Value::Null) => NumberInput::Missing,
        Some(Value::Number(n)) => n.as_i64().map_or(NumberInput::Invalid, NumberInput::Number),
        Some(_) => NumberInput::Invalid,
    }
}

/// The radius in km; anything but a whole number is left for the use case to refuse.
pub(crate) fn radius(body: &Map<String, Value>, field: &str) -> RadiusInput<'static> {
    match body.get(field) {
        None | Some(Value::Null) => RadiusInput::Missing,
        Some(Value::Number(n)) => n.as_i64().map_or(RadiusInput::Invalid, RadiusInput::Number),
        Some(_) => RadiusInput::Invalid,
    }
}

/// A radius as both APIs take it: whole km within `RadiusKm::MIN..=MAX`, missing or null for
/// the default.
pub(crate) fn radius_km_schema(what: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(RadiusKm::MIN))
        .maximum(Some(RadiusKm::MAX))
        .description(Some(format!(
            "{what}, in whole km ({}–{}; default {}).",
            RadiusKm::MIN,
            RadiusKm::MAX,
            RadiusKm::DEFAULT.km()
        )))
        .examples([json!(RadiusKm::DEFAULT.km())])
}

/// Reads a JSON object body: `415` unless `application/json`, `413` past `limit` bytes (told by
/// Content-Length up front, or counted while streaming), `400` for malformed JSON, a non-object,
/// or a field not in `allowed`.
async fn read_json_object(
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
