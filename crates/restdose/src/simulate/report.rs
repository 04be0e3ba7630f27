//! The report of a run: `report.md` (a table per hour, totals, targets met or missed, charts),
//! `figures.json` (the same figures, machine-readable and identical for the same seed and
//! backend) and the SVG charts.

use anyhow::Context;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

use super::observe::Figures;
use super::svg::{self, Series};

/// Everything about a run that is not a figure of the service.
pub struct RunInfo<'a> {
    pub scenario: &'a str,
    pub description: &'a str,
    pub seed: u64,
    pub backend: &'a str,
    pub wall_seconds: f64,
    pub outbox_left: u64,
    pub start: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct Json<'a> {
    scenario: &'a str,
    seed: u64,
    backend: &'a str,
    outbox_left_at_end: u64,
    targets: Vec<Target>,
    #[serde(flatten)]
    figures: &'a Figures,
}

#[derive(Serialize, Clone)]
pub struct Target {
    pub name: &'static str,
    pub value: i64,
    pub limit: i64,
    pub met: bool,
}

pub fn targets(f: &Figures) -> Vec<Target> {
    let t = &f.totals;
    let target = |name, value: i64, limit: i64| Target {
        name,
        value,
        limit,
        met: value <= limit,
    };
    vec![
        target("line-order inversions", t.inversions, 0),
        target("wrongful pauses", t.wrongful_pauses, 0),
        target(
            "doses wasted while a willing person was in reach",
            t.wasted_while_willing,
            0,
        ),
        target(
            "most invitations to one person in a day (cap)",
            t.max_invitations_per_person_day,
            i64::from(t.daily_cap),
        ),
    ]
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}

pub fn write(out: &Path, info: &RunInfo<'_>, f: &Figures) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string_pretty(&Json {
        scenario: info.scenario,
        seed: info.seed,
        backend: info.backend,
        outbox_left_at_end: info.outbox_left,
        targets: targets(f),
        figures: f,
    })?;
    std::fs::write(out.join("figures.json"), json + "\n")?;
    let charts = charts(f);
    for (name, text) in &charts {
        std::fs::write(out.join(name), text)?;
    }
    std::fs::write(out.join("report.md"), markdown(info, f, &charts))?;
    Ok(())
}

fn charts(f: &Figures) -> Vec<(&'static str, String)> {
    let hourly = |pick: fn(&super::observe::Hourly) -> i64| -> Vec<(f64, f64)> {
        f.hourly
            .iter()
            .map(|h| (h.hour as f64, pick(h) as f64))
            .collect()
    };
    let doses = svg::bars(
        "Doses per hour",
        "hour since start",
        &[
            Series {
                name: "offered".into(),
                points: hourly(|h| h.offered),
            },
            Series {
                name: "placed".into(),
                points: hourly(|h| h.placed),
            },
            Series {
                name: "wasted".into(),
                points: hourly(|h| h.wasted),
            },
            Series {
                name: "wasted (willing in reach)".into(),
                points: hourly(|h| h.wasted_while_willing),
            },
        ],
    );
    let n = f.fill_minutes.len().max(1) as f64;
    let fill = svg::lines(
        "Time to fill (share of filled offers filled within x minutes)",
        "minutes from posting to the last dose booked",
        &[Series {
            name: "filled offers".into(),
            points: f
                .fill_minutes
                .iter()
                .enumerate()
                .map(|(i, m)| (*m, (i + 1) as f64 / n))
                .collect(),
        }],
    );
    // The areas with the most waves, at most eight.
    let mut areas: Vec<(&String, usize)> =
        f.overbooking.iter().map(|(a, h)| (a, h.len())).collect();
    areas.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let over = svg::lines(
        "Overbooking per area (mean of the waves per hour)",
        "hour since start",
        &areas
            .iter()
            .take(8)
            .map(|(a, _)| Series {
                name: format!("area {a}"),
                points: f.overbooking[*a]
                    .iter()
                    .map(|(h, v)| (*h as f64, *v))
                    .collect(),
            })
            .collect::<Vec<_>>(),
    );
    let per_person = svg::bars(
        "People by number of invitations they got",
        "invitations",
        &[Series {
            name: "people".into(),
            points: f
                .invitations_per_person
                .iter()
                .enumerate()
                .map(|(n, c)| (n as f64, *c as f64))
                .collect(),
        }],
    );
    vec![
        ("doses.svg", doses),
        ("time-to-fill.svg", fill),
        ("overbooking.svg", over),
        ("invitations-per-person.svg", per_person),
    ]
}

fn markdown(info: &RunInfo<'_>, f: &Figures, charts: &[(&str, String)]) -> String {
    let t = &f.totals;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Simulation: {} (seed {}, {})\n",
        info.scenario, info.seed, info.backend
    );
    if !info.description.is_empty() {
        let _ = writeln!(md, "{}\n", info.description);
    }
    let _ = writeln!(
        md,
        "Simulated from {} (UTC); {} people, {} offers. Wall-clock time: {:.1} s. Definitions: \
         docs/simulation.md.\n",
        info.start.format("%Y-%m-%d %H:%M"),
        t.people,
        t.offers,
        info.wall_seconds
    );
    let _ = writeln!(
        md,
        "## Targets\n\n| target | value | limit | |\n|---|---:|---:|---|"
    );
    for target in targets(f) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            target.name,
            target.value,
            target.limit,
            if target.met { "met" } else { "**missed**" }
        );
    }
    let _ = writeln!(md, "\n## Totals\n\n| figure | value |\n|---|---:|");
    let rows: Vec<(&str, String)> = vec![
        ("doses offered", t.offered.to_string()),
        (
            "doses placed (booked, not cancelled at the end)",
            t.placed.to_string(),
        ),
        (
            "doses wasted (window ended, not placed)",
            t.wasted.to_string(),
        ),
        (
            "doses wasted while a willing person was in reach",
            t.wasted_while_willing.to_string(),
        ),
        (
            "doses withdrawn (offers cancelled by the practice)",
            t.withdrawn.to_string(),
        ),
        (
            "doses of offers still open at the end",
            t.open_at_end.to_string(),
        ),
        ("no-shows", t.no_shows.to_string()),
        (
            "offers that ever held more bookings than doses",
            t.overbooked_offers.to_string(),
        ),
        ("offers filled", t.offers_filled.to_string()),
        ("time to fill p50 (min)", opt(t.time_to_fill_p50_minutes)),
        ("time to fill p95 (min)", opt(t.time_to_fill_p95_minutes)),
        ("invitations", t.invitations.to_string()),
        (
            "invitations per placed dose",
            opt(t.invitations_per_placed_dose),
        ),
        (
            "mails to people (sign-up confirmations not counted)",
            t.mails.to_string(),
        ),
        ("mails per placed dose", opt(t.mails_per_placed_dose)),
        ("bounced mail attempts", t.bounces.to_string()),
        (
            "people known undeliverable",
            t.people_known_undeliverable.to_string(),
        ),
        (
            "mails left in the outbox at the end",
            info.outbox_left.to_string(),
        ),
        ("line-order inversions", t.inversions.to_string()),
        ("pauses", t.pauses.to_string()),
        ("wrongful pauses", t.wrongful_pauses.to_string()),
        (
            "most mails to one person in a day",
            t.max_mails_per_person_day.to_string(),
        ),
        (
            "most invitations to one person in a day",
            t.max_invitations_per_person_day.to_string(),
        ),
        (
            "waves (last call)",
            format!("{} ({})", t.waves, t.last_call_waves),
        ),
        (
            "declines / missed (all taken) / late clicks",
            format!("{} / {} / {}", t.declines, t.missed, t.late),
        ),
        (
            "bookings cancelled by people",
            t.bookings_cancelled_by_people.to_string(),
        ),
        (
            "offers cancelled by practices",
            t.offers_cancelled.to_string(),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(md, "| {name} | {value} |");
    }
    if !f.worst_inversions.is_empty() {
        let _ = writeln!(
            md,
            "\n## Worst line-order inversions\n\n| minute | offer | booked person | passed over | waited longer (min) |\n|---:|---:|---:|---:|---:|"
        );
        for e in &f.worst_inversions {
            let _ = writeln!(
                md,
                "| {} | #{} | #{} | #{} | {} |",
                e.minute,
                e.offer,
                e.booked_person,
                e.passed_over,
                e.passed_over_waited_longer_minutes
            );
        }
    }
    let _ = writeln!(md, "\n## Charts\n");
    for (name, _) in charts {
        let _ = writeln!(md, "![{name}]({name})\n");
    }
    let _ = writeln!(
        md,
        "## Per hour\n\nHour 0 begins at the start. Offered by posting hour, placed by booking hour, wasted and no-shows by the hour the window ended.\n\n\
         | hour | offered | placed | wasted | wasted, willing in reach | withdrawn | no-shows | invitations | mails | bounces | inversions | pauses | wrongful pauses |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for h in &f.hourly {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            h.hour,
            h.offered,
            h.placed,
            h.wasted,
            h.wasted_while_willing,
            h.withdrawn,
            h.no_shows,
            h.invitations,
            h.mails,
            h.bounces,
            h.inversions,
            h.pauses,
            h.wrongful_pauses
        );
    }
    md
}
