//! The open statistics over HTTP: `/statistics` (page with server-rendered SVG charts),
//! `/statistics.csv` and `/api/v1/statistics` (docs/statistics.md, docs/api.md). The figures
//! come from `Services::public_statistics`; this module only caches and translates them.

pub(crate) mod cache;
pub(crate) mod figures;
pub(crate) mod open_data;
mod page;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/statistics", web::get().to(page::statistics_page))
        .route("/statistics.csv", web::get().to(open_data::statistics_csv))
        .route(
            "/api/v1/statistics",
            web::get().to(open_data::statistics_json),
        );
}
