//! `restdose simulate` end to end on both backends: a tiny scenario runs through the real use
//! cases, never books more than the doses, writes its report, and gives the same figures for
//! the same seed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose::simulate::{Backend as SimBackend, RunRequest, Scenario, simulate};
use restdose_tests::{Backend, on_both_backends, postgres_admin_url};

on_both_backends!(a_tiny_scenario_books_within_the_doses_reports_and_repeats_itself);

const TINY: &str = r#"
seed = 11
duration = "day"
tick_minutes = 5
[people]
count = 80
regions = ["10"]
waiting_at_start = 0.8
waiting_since_days = 5
radius = [{ km = 5, weight = 1 }, { km = 10, weight = 2 }]
[practices]
count = 3
regions = ["10"]
[offers]
per_hour = [1, 2, 2, 1, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]
doses = [1, 4]
start_after_minutes = [30, 60]
window_minutes = [30, 90]
claim_minutes = 15
radius = [{ km = 10, weight = 1 }]
[behaviour]
click_share = 0.6
answer_delay = { kind = "exponential", mean_minutes = 8 }
decline_share = 0.2
dead_share = 0.1
no_show_share = 0.1
[cancellations]
booking_share = 0.2
booking_delay = { kind = "exponential", mean_minutes = 20 }
offer_share = 0.2
offer_after_minutes = [5, 40]
"#;

async fn a_tiny_scenario_books_within_the_doses_reports_and_repeats_itself(backend: Backend) {
    let scenario = Scenario::parse(TINY, "tiny").unwrap();
    let backend = match backend {
        Backend::Sqlite => SimBackend::Sqlite,
        Backend::Postgres => SimBackend::Postgres,
    };
    let admin = postgres_admin_url();
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for attempt in 0..2 {
        let out = dir.path().join(format!("run{attempt}"));
        let summary = simulate(&RunRequest {
            scenario: &scenario,
            seed: scenario.seed,
            backend,
            admin_url: &admin,
            out: &out,
        })
        .await
        .unwrap();
        assert!(out.join("report.md").exists());
        assert!(out.join("figures.json").exists());
        assert!(out.join("doses.svg").exists());
        runs.push(summary.figures);
    }
    let t = &runs[0].totals;
    assert!(t.offers > 0 && t.offered > 0, "{t:?}");
    assert!(t.invitations > 0 && t.placed > 0, "nothing happened: {t:?}");
    assert_eq!(
        t.overbooked_offers, 0,
        "an offer held more bookings than doses"
    );
    assert!(t.placed + t.withdrawn <= t.offered, "{t:?}");
    for h in &runs[0].hourly {
        assert!(h.wasted_while_willing <= h.wasted);
    }
    assert_eq!(runs[0], runs[1], "the same seed gave different figures");
}
