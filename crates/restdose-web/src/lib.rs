//! restdose web: the HTTP layer (actix-web). It only translates: requests into calls on
//! `restdose_core::Services`, their results into pages and JSON. No SQL, no business rules.

mod admin;
pub mod admission;
mod api;
mod auth;
mod charts;
mod error;
pub mod i18n;
mod i18n_admin;
mod i18n_matching;
mod i18n_portal;
mod i18n_stats;
mod matching_pages;
pub mod monitoring;
mod offers_api;
pub mod openapi;
mod pages;
mod portal;
mod request_lang;
mod statistics;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, web};
use restdose_core::Services;
use std::net::TcpListener;

pub use admission::AdmissionOptions;
pub use error::ApiError;

/// Limits of the HTTP layer (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Set the `Secure` flag on cookies (public URL is https).
    pub secure_cookies: bool,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Budgets, queue wait, sign-up rate limit, trusted proxies (admission.rs).
    pub admission: AdmissionOptions,
    /// Serve `/metrics` on the main listener (false when `metrics_listen` gives it its own).
    pub metrics_on_main: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            max_body_bytes: 16 * 1024,
            secure_cookies: false,
            workers: 0,
            admission: AdmissionOptions::default(),
            metrics_on_main: true,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub services: Services,
    pub options: WebOptions,
    pub statistics: std::sync::Arc<statistics::StatisticsCache>,
    pub gauges: std::sync::Arc<monitoring::GaugeCache>,
}

/// Starts serving on an already bound listener (port 0 in tests). The returned server is a
/// future that runs until stopped through its handle.
pub fn start(
    listener: TcpListener,
    services: Services,
    options: WebOptions,
) -> std::io::Result<(Server, ServerHandle)> {
    let workers = options.workers;
    monitoring::prometheus();
    // One set of budgets for all workers of this server.
    let admission = web::Data::new(admission::Admission::new(options.admission.clone()));
    let state = AppState {
        services,
        options,
        statistics: Default::default(),
        gauges: Default::default(),
    };
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(admission.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(state.options.max_body_bytes)
                    .error_handler(pages::bad_form),
            )
            .wrap(actix_web::middleware::from_fn(admission::admit))
            .wrap(actix_web::middleware::from_fn(openapi::explorer_policy))
            .wrap(security_headers(state.options.secure_cookies))
            .wrap(actix_web::middleware::from_fn(error::log_requests))
            .configure(|cfg| {
                if state.options.metrics_on_main {
                    cfg.route("/metrics", web::get().to(monitoring::metrics));
                }
            })
            .configure(routes)
    })
    .listen(listener)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.run();
    let handle = server.handle();
    Ok((server, handle))
}

/// Serves only `GET /metrics` on its own listener (`metrics_listen`), one worker.
pub fn start_metrics(
    listener: TcpListener,
    services: Services,
    options: WebOptions,
) -> std::io::Result<(Server, ServerHandle)> {
    monitoring::prometheus();
    let state = AppState {
        services,
        options,
        statistics: Default::default(),
        gauges: Default::default(),
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/metrics", web::get().to(monitoring::metrics))
    })
    .workers(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    Ok((server, handle))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::signup_form))
        .route("/", web::post().to(pages::signup_submit))
        .route("/confirm/{token}", web::get().to(pages::confirm_page))
        .route("/confirm/{token}", web::post().to(pages::confirm_submit))
        .route("/manage/{token}", web::get().to(pages::manage_page))
        .route(
            "/manage/{token}/preferences",
            web::post().to(pages::manage_preferences),
        )
        .route("/manage/{token}/pause", web::post().to(pages::manage_pause))
        .route(
            "/manage/{token}/resume",
            web::post().to(pages::manage_resume),
        )
        .route(
            "/manage/{token}/delete",
            web::post().to(pages::manage_delete),
        )
        .route(
            "/unsubscribe/{token}",
            web::get().to(pages::unsubscribe_page),
        )
        .route(
            "/unsubscribe/{token}",
            web::post().to(pages::unsubscribe_submit),
        )
        .route(
            "/api/v1/registrations",
            web::post().to(api::create_registration),
        )
        .configure(portal::routes)
        .configure(admin::routes)
        .configure(offers_api::routes)
        .configure(matching_pages::routes)
        .configure(statistics::routes)
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(monitoring::readyz))
        .service(openapi::service())
        .route("/static/style.css", web::get().to(stylesheet))
        .default_service(web::to(pages::not_found));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/style.css"))
}

/// Tokens live in URLs, so no page may leak them through a Referer; no external assets at all.
/// `https` (the public URL is https, see `WebOptions::secure_cookies`) adds HSTS.
fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    if https {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}
