//! `POST /api/v1/registrations`: signing up for the waitlist through the JSON API.

use actix_web::{HttpRequest, HttpResponse, web};
use restdose_core::{RadiusInput, ServiceError, validate_sign_up};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::ObjectBuilder;

use crate::api::json_body::{JsonRequest, radius, radius_km_schema, read_request, string_field};
use crate::error::{ApiError, ErrorBody};
use crate::request_lang::request_lang;
use crate::state::AppState;

/// Sign up for the waitlist. A confirmation link is mailed; nothing else happens until it is
/// clicked. The answer is the same whether or not the address is already registered.
// `deny_unknown_fields` only documents `additionalProperties: false`: the body is read by
// `from_fields`, which refuses an unknown field with `unknown_field`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrationRequest {
    /// The address the confirmation link goes to.
    #[schema(example = "alex@example.org")]
    pub(crate) email: String,
    /// A postcode of the service's country (e.g. a German PLZ).
    #[schema(example = "10115")]
    pub(crate) postcode: String,
    #[schema(value_type = Option<i64>, schema_with = radius_schema)]
    pub(crate) radius_km: RadiusInput<'static>,
}

impl JsonRequest for RegistrationRequest {
    const FIELDS: &'static [&'static str] = &["email", "postcode", "radius_km"];

    fn from_fields(body: &Map<String, Value>) -> Result<Self, ApiError> {
        Ok(RegistrationRequest {
            email: string_field(body, "email", "invalid_email")?,
            postcode: string_field(body, "postcode", "invalid_postcode")?,
            radius_km: radius(body, "radius_km"),
        })
    }
}

/// `radius_km` of a sign-up, from the rule itself (`RadiusKm`).
fn radius_schema() -> ObjectBuilder {
    radius_km_schema("How far the person travels")
}

/// The sign-up was taken; a confirmation mail is on its way.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    #[schema(example = "pending_confirmation")]
    pub status: &'static str,
}

/// Sign up for the waitlist (double opt-in).
#[utoipa::path(
    post,
    path = "/api/v1/registrations",
    tag = "registrations",
    request_body(content = RegistrationRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Taken; a confirmation link was mailed (also when the address is already registered).", body = RegistrationAccepted),
        (status = 400, description = "Malformed JSON, not an object, or an unknown field.", body = ErrorBody),
        (status = 413, description = "Body larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json.", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; `field` names it.", body = ErrorBody),
        (status = 429, description = "Too many sign-ups; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The service is busy; retry later.", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
    )
)]
pub(crate) async fn create_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: RegistrationRequest =
        read_request(&req, payload, state.options.max_body_bytes).await?;
    let lang = request_lang(&req).lang;
    let request = validate_sign_up(
        &body.email,
        &body.postcode,
        body.radius_km,
        lang,
        &state.services.gazetteer,
    )
    .map_err(|errors| ApiError::from(ServiceError::Validation(errors)))?;
    state
        .services
        .sign_up(request, crate::auth::client_ip(&req).as_deref())
        .await?;
    Ok(HttpResponse::Accepted().json(RegistrationAccepted {
        status: "pending_confirmation",
    }))
}
