//! Figures in words and numbers as pages show them: the public statistics, a registrant's odds
//! and a practice's own figures.

use restdose_core::statistics::{PersonalOdds, PracticeFigures, PracticeWindow};
use restdose_domain::statistics::{Cell, ExpectedWait, Median, SUPPRESS_BELOW, Share, WaitWords};

use crate::i18n::T;

pub(crate) fn cell_value(cell: Cell) -> Option<f64> {
    cell.value().map(|v| v as f64)
}

pub(crate) fn show_cell(cell: Cell) -> String {
    match cell {
        Cell::Value(v) => v.to_string(),
        Cell::Suppressed => format!("<{SUPPRESS_BELOW}"),
    }
}

pub(crate) fn show_share(share: Share) -> String {
    match share {
        Share::Value(v) => format!("{:.0} %", v * 100.0),
        Share::Suppressed => format!("<{SUPPRESS_BELOW}"),
        Share::NoData => "–".to_owned(),
    }
}

pub(crate) fn show_median(t: &T, median: Median) -> String {
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
