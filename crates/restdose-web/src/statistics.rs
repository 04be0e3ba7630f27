//! The open statistics over HTTP: `/statistics` (page with server-rendered SVG charts),
//! `/statistics.csv` and `/api/v1/statistics` (docs/statistics.md, docs/api.md). The figures
//! come from `Services::public_statistics`; this module only caches and translates them.

use std::sync::{Arc, Mutex};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use restdose_core::statistics::{PersonalOdds, PracticeFigures, PracticeWindow, PublicStatistics};
use restdose_domain::statistics::{Cell, ExpectedWait, Median, SUPPRESS_BELOW, Share, WaitWords};
use serde_json::{Value, json};

use crate::AppState;
use crate::charts::{Chart, Point, bar_chart, line_chart};
use crate::error::ApiError;
use crate::i18n::T;
use crate::pages::{failure, page};
use crate::request_lang::request_lang;

/// How long one computed aggregate is served (by the service clock).
const CACHE_SECONDS: i64 = 60;

/// The last aggregate and when it was computed; shared by the workers of one process.
#[derive(Default)]
pub(crate) struct StatisticsCache {
    slot: Mutex<Option<(DateTime<Utc>, Arc<PublicStatistics>)>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/statistics", web::get().to(statistics_page))
        .route("/statistics.csv", web::get().to(statistics_csv))
        .route("/api/v1/statistics", web::get().to(statistics_json));
}

async fn cached(state: &AppState) -> Result<Arc<PublicStatistics>, restdose_core::ServiceError> {
    let now = state.services.clock.now();
    if let Ok(slot) = state.statistics.slot.lock()
        && let Some((at, stats)) = slot.as_ref()
        && now >= *at
        && now - *at < Duration::seconds(CACHE_SECONDS)
    {
        return Ok(Arc::clone(stats));
    }
    let stats = Arc::new(state.services.public_statistics().await?);
    if let Ok(mut slot) = state.statistics.slot.lock() {
        *slot = Some((now, Arc::clone(&stats)));
    }
    Ok(stats)
}

fn cell_value(cell: Cell) -> Option<f64> {
    cell.value().map(|v| v as f64)
}

fn show_cell(cell: Cell) -> String {
    match cell {
        Cell::Value(v) => v.to_string(),
        Cell::Suppressed => format!("<{SUPPRESS_BELOW}"),
    }
}

fn show_share(share: Share) -> String {
    match share {
        Share::Value(v) => format!("{:.0} %", v * 100.0),
        Share::Suppressed => format!("<{SUPPRESS_BELOW}"),
        Share::NoData => "–".to_owned(),
    }
}

fn show_median(t: &T, median: Median) -> String {
    match median {
        Median::Minutes(m) => t.fill("stats.minutes", &[("n", m.round() as i64)]),
        Median::Suppressed => format!("<{SUPPRESS_BELOW}"),
        Median::NoData => "–".to_owned(),
    }
}

/// A plain-language expected wait, in the page's language.
pub(crate) fn wait_text(t: &T, wait: ExpectedWait) -> String {
    match wait {
        ExpectedWait::NotEnoughData => t.get("odds.wait_unknown").to_owned(),
        ExpectedWait::Days { low, high } => {
            let (key, low, high) = match restdose_domain::statistics::wait_words(low, high) {
                WaitWords::Days { low, high } => ("odds.wait_days", low, high),
                WaitWords::Weeks { low, high } => ("odds.wait_weeks", low, high),
                WaitWords::Months { low, high } => ("odds.wait_months", low, high),
            };
            t.fill(
                key,
                &[
                    ("low", i64::try_from(low).unwrap_or(i64::MAX)),
                    ("high", i64::try_from(high).unwrap_or(i64::MAX)),
                ],
            )
        }
    }
}

/// The odds as the self-service page shows them.
pub(crate) struct OddsView {
    pub position: String,
    pub offered_7_days: String,
    pub offered_30_days: String,
    pub wait: String,
}

pub(crate) fn odds_view(t: &T, odds: PersonalOdds) -> OddsView {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    OddsView {
        position: t.fill(
            "odds.of",
            &[
                ("position", n(odds.position)),
                ("total", n(odds.waiting_in_reach)),
            ],
        ),
        offered_7_days: show_cell(odds.offered_7_days),
        offered_30_days: show_cell(odds.offered_30_days),
        wait: wait_text(t, odds.wait),
    }
}

/// The practice's figures as the dashboard shows them: (label key, last 30 days, all time).
pub(crate) fn practice_rows(
    t: &T,
    figures: &PracticeFigures,
) -> Vec<(&'static str, String, String)> {
    let placed = |w: &PracticeWindow| w.doses_placed.to_string();
    let fill = |w: &PracticeWindow| {
        w.median_fill_minutes.map_or_else(
            || "–".to_owned(),
            |m| t.fill("stats.minutes", &[("n", m.round() as i64)]),
        )
    };
    let no_show = |w: &PracticeWindow| {
        w.no_show_rate
            .map_or_else(|| "–".to_owned(), |r| format!("{:.0} %", r * 100.0))
    };
    vec![
        (
            "practice_stats.placed",
            placed(&figures.last_30_days),
            placed(&figures.all_time),
        ),
        (
            "practice_stats.fill",
            fill(&figures.last_30_days),
            fill(&figures.all_time),
        ),
        (
            "practice_stats.no_show",
            no_show(&figures.last_30_days),
            no_show(&figures.all_time),
        ),
    ]
}

struct DayRow {
    day: String,
    offered: String,
    placed: String,
    unused: String,
    median: String,
}

struct WaveRow {
    wave: i32,
    invited: String,
    claimed: String,
    share: String,
}

#[derive(Template)]
#[template(path = "statistics.html")]
struct StatisticsPage {
    t: T,
    from: String,
    to: String,
    total_offered: String,
    total_placed: String,
    total_unused: String,
    median_fill: String,
    areas: Vec<(String, String)>,
    area_chart: String,
    days: Vec<DayRow>,
    offered_chart: String,
    placed_chart: String,
    unused_chart: String,
    fill_chart: String,
    waves: Vec<WaveRow>,
    wave_chart: String,
}

async fn statistics_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let stats = match cached(&state).await {
        Ok(stats) => stats,
        Err(e) => return failure(&state, &lang, &e),
    };
    let t = T::new(lang.lang);
    let missing = format!("<{SUPPRESS_BELOW}");
    let day_points = |pick: &dyn Fn(&restdose_core::statistics::DayFigures) -> Option<f64>| {
        stats
            .days
            .iter()
            .map(|d| Point {
                label: d.day.format("%d.%m.").to_string(),
                value: pick(d),
            })
            .collect::<Vec<_>>()
    };
    let area_points: Vec<Point> = stats
        .waiting_by_area
        .iter()
        .map(|(area, cell)| Point {
            label: area.clone(),
            value: cell_value(*cell),
        })
        .collect();
    let offered = day_points(&|d| cell_value(d.doses_offered));
    let placed = day_points(&|d| cell_value(d.doses_placed));
    let unused = day_points(&|d| cell_value(d.doses_unused));
    let fill = day_points(&|d| match d.median_fill_minutes {
        Median::Minutes(m) => Some(m),
        _ => None,
    });
    let wave_points: Vec<Point> = stats
        .waves
        .iter()
        .map(|w| Point {
            label: w.wave.to_string(),
            value: match w.share_claimed {
                Share::Value(v) => Some(v),
                _ => None,
            },
        })
        .collect();
    let chart = |title: &str, points: &[Point], percent: bool, line: bool| {
        let chart = Chart {
            title,
            points,
            missing: &missing,
            percent,
        };
        if line {
            line_chart(&chart)
        } else {
            bar_chart(&chart)
        }
    };
    let rendered = StatisticsPage {
        t,
        from: stats.from.format("%d.%m.%Y").to_string(),
        to: stats.to.format("%d.%m.%Y").to_string(),
        total_offered: show_cell(stats.total_offered),
        total_placed: show_cell(stats.total_placed),
        total_unused: show_cell(stats.total_unused),
        median_fill: show_median(&t, stats.median_fill_minutes),
        areas: stats
            .waiting_by_area
            .iter()
            .map(|(area, cell)| (area.clone(), show_cell(*cell)))
            .collect(),
        area_chart: chart(t.get("stats.waiting"), &area_points, false, false),
        days: stats
            .days
            .iter()
            .map(|d| DayRow {
                day: d.day.format("%d.%m.%Y").to_string(),
                offered: show_cell(d.doses_offered),
                placed: show_cell(d.doses_placed),
                unused: show_cell(d.doses_unused),
                median: show_median(&t, d.median_fill_minutes),
            })
            .collect(),
        offered_chart: chart(t.get("stats.offered"), &offered, false, false),
        placed_chart: chart(t.get("stats.placed"), &placed, false, false),
        unused_chart: chart(t.get("stats.unused"), &unused, false, false),
        fill_chart: chart(t.get("stats.fill"), &fill, false, true),
        waves: stats
            .waves
            .iter()
            .map(|w| WaveRow {
                wave: w.wave,
                invited: show_cell(w.invited),
                claimed: show_cell(w.claimed),
                share: show_share(w.share_claimed),
            })
            .collect(),
        wave_chart: chart(t.get("stats.share"), &wave_points, true, false),
    }
    .render();
    let mut response = page(&state, &lang, StatusCode::OK, rendered);
    if response.status() == StatusCode::OK {
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=60"),
        );
        headers.insert(
            header::VARY,
            header::HeaderValue::from_static("Cookie, Accept-Language"),
        );
    }
    response
}

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

async fn statistics_csv(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = cached(&state).await?;
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
         body = crate::openapi::ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub(crate) async fn statistics_json(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = cached(&state).await?;
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
