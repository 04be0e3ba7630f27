//! The OpenAPI 3.1 document of the JSON API, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `/api/v1/openapi.json`, and the API explorer (Swagger UI, compiled
//! into the binary: no CDN) at `/api/docs/`.
//!
//! Adding a JSON route to the document is one line: annotate the handler with
//! `#[utoipa::path(...)]` (method, path, responses with their schemas, `security` if it needs
//! a token) and add the handler to `paths(...)` of [`ApiDoc`] below, e.g.
//! `crate::statistics::statistics_json,` for `/api/v1/statistics`. Response types derive
//! `utoipa::ToSchema` and are found through the `body = ...` of the annotations.
//! `tests/tests/integration/operations.rs` checks the expected paths, and `scripts/lib/schemathesis.sh`
//! checks that the running service answers as documented.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the explorer is served.
pub const EXPLORER_PREFIX: &str = "/api/docs/";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "restdose API",
        description = "Sign-ups for the waitlist (public) and offers of spare doses by practices \
                       (bearer token `rdk_…`, created in the practice portal). Every error has the \
                       body `{\"error\":{\"code\",\"message\",\"field\"?}}`; 429 and 503 carry \
                       `Retry-After`, 401 carries `WWW-Authenticate: Bearer`. Every response carries \
                       `X-Request-Id`.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::api::create_registration,
        crate::offers_api::create_offer,
        crate::offers_api::get_offer,
        crate::offers_api::close_offer,
        crate::offers_api::check_in,
        crate::monitoring::readyz,
        crate::statistics::statistics_json,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "registrations", description = "Public sign-up for the waitlist (double opt-in)."),
        (name = "offers", description = "The practice API: spare doses and check-ins."),
        (name = "operations", description = "Health of the service."),
        (name = "statistics", description = "Open data: anonymous aggregates that survive the 24 h deletion."),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: `Authorization: Bearer rdk_…`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("rdk_…".to_owned());
        scheme.description =
            Some("A practice's API token (created in the portal under \"API tokens\").".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document at `/api/v1/openapi.json` and the explorer under `/api/docs/`.
pub fn service() -> SwaggerUi {
    SwaggerUi::new(format!("{EXPLORER_PREFIX}{{_:.*}}")).url(OPENAPI_PATH, document())
}

/// The explorer runs its own (same-origin) scripts and inline styles; every other page keeps
/// the strict policy of `security_headers`, which only fills in a header not set here.
pub async fn explorer_policy(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let explorer = req.path().starts_with(EXPLORER_PREFIX) || req.path() == "/api/docs";
    let mut response = next.call(req).await?;
    if explorer {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
    }
    Ok(response)
}

// --- schemas of the documented bodies ---------------------------------------------------------
// The handlers read their bodies field by field (to give a precise error for each), so the
// request shapes are described here; responses use the types the handlers serialise.

/// Sign up for the waitlist. A confirmation link is mailed; nothing else happens until it is
/// clicked. The answer is the same whether or not the address is already registered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RegistrationRequest {
    /// The address the confirmation link goes to.
    #[schema(example = "alex@example.org")]
    email: String,
    /// A postcode of the service's country (e.g. a German PLZ).
    #[schema(example = "10115")]
    postcode: String,
    /// How far the person travels, in km (5–100 in steps the service accepts; default 10).
    #[schema(example = 10)]
    radius_km: Option<i64>,
}

/// The sign-up was taken; a confirmation mail is on its way.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    #[schema(example = "pending_confirmation")]
    pub status: &'static str,
}

/// A new offer of spare doses at the practice's address.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OfferRequest {
    /// One of the vaccines the service is configured with.
    vaccine: String,
    /// Doses on offer (1–1000).
    doses: i64,
    /// Start of the appointment window (RFC 3339), in the future.
    #[schema(format = DateTime)]
    starts_at: String,
    /// End of the appointment window (RFC 3339), after `starts_at`.
    #[schema(format = DateTime)]
    ends_at: String,
    /// Minutes an invited person has to claim (default set by the service).
    claim_minutes: Option<i64>,
    /// How far around the practice people are invited, in km.
    radius_km: Option<i64>,
    /// A note shown to the people who book (optional).
    note: Option<String>,
}

/// Check a person in by their booking code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CheckInRequest {
    /// The booking code from the person's confirmation, with or without dashes.
    #[schema(example = "K7QF-M2XR")]
    code: String,
}

/// The result of a check-in.
#[derive(Serialize, ToSchema)]
pub struct CheckInResult {
    /// `checked_in`, `already_used` (this code was checked in before) or `unknown`.
    #[schema(example = "checked_in")]
    pub result: &'static str,
}

/// Every error: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Machine-readable: e.g. `invalid_json`, `unknown_field`, `required`, `invalid_email`,
    /// `unauthenticated`, `forbidden`, `not_found`, `conflict`, `rate_limited`,
    /// `payload_too_large`, `unsupported_media_type`, `service_unavailable`.
    code: String,
    /// For people: what went wrong and what to do.
    message: String,
    /// The request field the error is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}
