//! restdose web: the HTTP layer (actix-web). It only translates: requests into calls on
//! `restdose_core::Services`, their results into pages and JSON. No SQL, no business rules.

mod admin;
pub mod admission;
mod api;
mod auth;
mod charts;
mod error;
mod html;
pub mod i18n;
mod i18n_admin;
mod i18n_matching;
mod i18n_portal;
mod i18n_portal_offers;
mod i18n_stats;
mod matching_pages;
pub mod monitoring;
mod options;
mod portal;
mod registrant;
mod request_lang;
mod state;
mod statistics;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, web};
use restdose_core::Services;
use std::net::TcpListener;

use monitoring::gauges::GaugeCache;
use state::AppState;
use statistics::cache::StatisticsCache;

pub use api::openapi;
pub use error::ApiError;
pub use options::{AdmissionOptions, WebOptions};

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
    // Caches shared by all workers of this server.
    let statistics = web::Data::new(StatisticsCache::default());
    let gauges = web::Data::new(GaugeCache::default());
    let state = AppState { services, options };
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(admission.clone())
            .app_data(statistics.clone())
            .app_data(gauges.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(state.options.max_body_bytes)
                    .error_handler(html::bad_form),
            )
            .wrap(actix_web::middleware::from_fn(admission::admit))
            .wrap(actix_web::middleware::from_fn(
                api::openapi::explorer_policy,
            ))
            .wrap(security_headers(state.options.secure_cookies))
            .wrap(actix_web::middleware::from_fn(
                monitoring::request_log::log_requests,
            ))
            .configure(|cfg| {
                if state.options.metrics_on_main {
                    cfg.route("/metrics", web::get().to(monitoring::endpoints::metrics));
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
    let gauges = web::Data::new(GaugeCache::default());
    let state = AppState { services, options };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(gauges.clone())
            .route("/metrics", web::get().to(monitoring::endpoints::metrics))
    })
    .workers(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    Ok((server, handle))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(registrant::routes)
        .configure(api::routes)
        .configure(portal::routes)
        .configure(admin::routes)
        .configure(matching_pages::routes)
        .configure(statistics::routes)
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(monitoring::endpoints::readyz))
        .service(api::openapi::service())
        .route("/static/style.css", web::get().to(stylesheet))
        .default_service(web::to(html::not_found));
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
