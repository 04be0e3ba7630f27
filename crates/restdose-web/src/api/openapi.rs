//! The OpenAPI 3.1 document of the JSON API, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `/api/v1/openapi.json`, and the API explorer (Swagger UI, compiled
//! into the binary: no CDN) at `/api/docs/`.
//!
//! Adding a JSON route to the document is one line: annotate the handler with
//! `#[utoipa::path(...)]` (method, path, responses with their schemas, `security` if it needs
//! a token) and add the handler to `paths(...)` of [`ApiDoc`] below, e.g.
//! `crate::statistics::open_data::statistics_json,` for `/api/v1/statistics`. Request bodies
//! are the types the handlers parse into (`json_body::JsonRequest`), response bodies the types
//! they serialise; both derive `utoipa::ToSchema` and are found through the `request_body` and
//! `body = ...` of the annotations.
//! `tests/tests/integration/operations.rs` checks the expected paths, and `scripts/lib/schemathesis.sh`
//! checks that the running service answers as documented.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
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
        crate::api::registrations::create_registration,
        crate::api::offers::create_offer,
        crate::api::offers::get_offer,
        crate::api::offers::close_offer,
        crate::api::offers::check_in,
        crate::monitoring::endpoints::readyz,
        crate::statistics::open_data::statistics_json,
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
