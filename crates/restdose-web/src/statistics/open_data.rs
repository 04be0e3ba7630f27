//! The open data: `/statistics.csv` and `/api/v1/statistics` (docs/statistics.md, docs/api.md).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use restdose_core::statistics::PublicStatistics;
use restdose_domain::statistics::{Cell, Median, SUPPRESS_BELOW, Share};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::statistics::cache::StatisticsCache;
use crate::statistics::figures::cell_value;

/// One published figure: (series, key, value, suppressed). Figures without data are left out.
type Row = (&'static str, String, Option<f64>, bool);

/// The aggregate as rows, shared by the CSV and the JSON (docs/api.md lists the series).
fn rows(stats: &PublicStatistics) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let cell = |cell: Cell| (cell_value(cell), cell.is_suppressed());
    let push_cell = |rows: &mut Vec<Row>, series, key: String, c: Cell| {
        let (value, suppressed) = cell(c);
        rows.push((series, key, value, suppressed));
    };
    for (area, c) in &stats.waiting_by_area {
        push_cell(&mut rows, "waiting_by_area", area.clone(), *c);
    }
    for (series, c) in [
        ("doses_offered", stats.total_offered),
        ("doses_placed", stats.total_placed),
        ("doses_unused", stats.total_unused),
    ] {
        push_cell(&mut rows, series, "total".to_owned(), c);
    }
    let median = |rows: &mut Vec<Row>, key: String, m: Median| match m {
        Median::Minutes(v) => rows.push(("median_fill_minutes", key, Some(v), false)),
        Median::Suppressed => rows.push(("median_fill_minutes", key, None, true)),
        Median::NoData => {}
    };
    median(&mut rows, "total".to_owned(), stats.median_fill_minutes);
    for d in &stats.days {
        let key = d.day.to_string();
        push_cell(&mut rows, "doses_offered", key.clone(), d.doses_offered);
        push_cell(&mut rows, "doses_placed", key.clone(), d.doses_placed);
        push_cell(&mut rows, "doses_unused", key.clone(), d.doses_unused);
        median(&mut rows, key, d.median_fill_minutes);
    }
    for w in &stats.waves {
        let key = w.wave.to_string();
        push_cell(&mut rows, "wave_invited", key.clone(), w.invited);
        push_cell(&mut rows, "wave_claimed", key.clone(), w.claimed);
        match w.share_claimed {
            Share::Value(v) => rows.push(("wave_share_claimed", key, Some(v), false)),
            Share::Suppressed => rows.push(("wave_share_claimed", key, None, true)),
            Share::NoData => {}
        }
    }
    rows
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

pub(crate) async fn statistics_csv(
    state: web::Data<AppState>,
    cache: web::Data<StatisticsCache>,
) -> Result<HttpResponse, ApiError> {
    let stats = cache.get(&state.services).await?;
    let mut body = String::from("series,key,value,suppressed\n");
    for (series, key, value, suppressed) in rows(&stats) {
        body.push_str(&format!(
            "{series},{key},{},{suppressed}\n",
            value.map(number).unwrap_or_default()
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "inline; filename=\"restdose-statistics.csv\"",
        ))
        .body(body))
}

/// The open data at `/api/v1/statistics` (shape documented in docs/api.md).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct StatisticsDocument {
    /// First day covered (UTC date, YYYY-MM-DD).
    from: String,
    /// Last day covered (today, UTC).
    to: String,
    /// Counts below this are suppressed (value null, suppressed true).
    suppressed_below: u64,
    rows: Vec<StatisticsRow>,
}

/// One figure: a series (e.g. `waiting_by_area`, `doses_offered`), its key (an area, a day,
/// a wave or `total`) and its value.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct StatisticsRow {
    series: String,
    key: String,
    /// Counts are integers, shares and medians decimals; null when suppressed.
    #[schema(value_type = Option<f64>)]
    value: Value,
    suppressed: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/statistics",
    tag = "statistics",
    responses(
        (status = 200, description = "The open statistics (anonymous aggregates, small cells suppressed).",
         body = StatisticsDocument),
        (status = 503, description = "Busy or the database is unavailable; retry after `Retry-After` seconds.",
         body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub(crate) async fn statistics_json(
    state: web::Data<AppState>,
    cache: web::Data<StatisticsCache>,
) -> Result<HttpResponse, ApiError> {
    let stats = cache.get(&state.services).await?;
    let rows: Vec<StatisticsRow> = rows(&stats)
        .into_iter()
        .map(|(series, key, value, suppressed)| {
            // Counts as integers, shares and medians as decimals.
            let value = match value {
                Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => json!(v as i64),
                Some(v) => json!(v),
                None => Value::Null,
            };
            StatisticsRow {
                series: series.to_owned(),
                key,
                value,
                suppressed,
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(StatisticsDocument {
            from: stats.from.to_string(),
            to: stats.to.to_string(),
            suppressed_below: SUPPRESS_BELOW,
            rows,
        }))
}
