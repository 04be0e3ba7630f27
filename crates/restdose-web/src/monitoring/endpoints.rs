//! `/readyz` (can this process serve requests?) and `/metrics` (Prometheus text).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::monitoring::gauges::{GaugeCache, write_gauges};
use crate::monitoring::prometheus;
use crate::state::AppState;

/// `GET /metrics`: the process's counters and histograms plus the database gauges.
pub(crate) async fn metrics(
    state: web::Data<AppState>,
    gauges: web::Data<GaugeCache>,
) -> HttpResponse {
    let handle = prometheus();
    handle.run_upkeep();
    let mut body = handle.render();
    match gauges.get(&state.services).await {
        Ok((counts, now)) => write_gauges(&mut body, &counts, now),
        Err(error) => {
            tracing::error!(error = %error, "metrics: cannot read the database gauges");
            body.push_str("# database gauges unavailable\n");
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The answer of `/readyz`: each check `ok` or `failed`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadinessChecks,
}

/// Each check: `ok` or `failed`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadinessChecks {
    /// The database answers.
    #[schema(example = "ok")]
    pub database: &'static str,
    /// Every migration of this build is applied.
    #[schema(example = "ok")]
    pub migrations: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// Whether this process can serve requests: database reachable, migrations current. Never
/// depends on the mail server or the outbox (shared by every process: a stuck mail must not take
/// them all out of rotation; `/metrics` and the alerts watch it). 503 names the failed check. No
/// personal data, no error details (they go to the log).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready; `checks` says why.", body = Readiness),
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.services.store;
    let database = match store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readyz: database unreachable");
            false
        }
    };
    let migrations = database
        && match store.migrations_current().await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(error = %e, "readyz: cannot read the migrations");
                false
            }
        };
    let ready = database && migrations;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: ReadinessChecks {
            database: verdict(database),
            migrations: verdict(migrations),
        },
    };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
