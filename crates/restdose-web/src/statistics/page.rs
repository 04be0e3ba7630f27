//! `/statistics`: the open statistics as a page with server-rendered SVG charts.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_domain::statistics::{Median, SUPPRESS_BELOW, Share};

use crate::charts::{Chart, Point, bar_chart, line_chart};
use crate::html::{failure, page};
use crate::i18n::T;
use crate::request_lang::request_lang;
use crate::state::AppState;
use crate::statistics::cache::StatisticsCache;
use crate::statistics::figures::{cell_value, show_cell, show_median, show_share};

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

pub(crate) async fn statistics_page(
    state: web::Data<AppState>,
    cache: web::Data<StatisticsCache>,
    req: HttpRequest,
) -> HttpResponse {
    let lang = request_lang(&req);
    let stats = match cache.get(&state.services).await {
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
