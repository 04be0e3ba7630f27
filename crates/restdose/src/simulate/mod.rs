//! `restdose simulate`: a deterministic, seeded simulation of a day or a week of the service,
//! driven through the real use cases on either backend with a manual clock and a mailer that
//! records instead of sending (GitHub issue #13). See docs/simulation.md.
//!
//! - `scenario`: the TOML scenario file and its checks;
//! - `population`: people, practices and offers drawn from it;
//! - `world`: a fresh database and the real services around it;
//! - `mailbox`: the recording mailer (and the bounce of dead addresses);
//! - `run`: the time-stepped driver, which writes the event `log`;
//! - `observe`: the figures, computed from the log alone;
//! - `report` and `svg`: report.md, figures.json and the charts.

pub mod log;
pub mod mailbox;
pub mod observe;
pub mod population;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
mod svg;
pub mod world;

use anyhow::Context;
use restdose_domain::ManualClock;
use std::path::{Path, PathBuf};

pub use observe::Figures;
pub use scenario::Scenario;
pub use world::Backend;

/// One run: which scenario, with which seed, on which backend, written where.
pub struct RunRequest<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub backend: Backend,
    /// PostgreSQL server URL with the right to create databases (postgres only).
    pub admin_url: &'a str,
    pub out: &'a Path,
}

/// What a finished run produced.
pub struct RunSummary {
    pub figures: Figures,
    pub wall_seconds: f64,
    pub out: PathBuf,
}

/// The default output folder: `./data/simulations/<scenario>-<seed>/`.
pub fn default_out(scenario: &str, seed: u64) -> PathBuf {
    PathBuf::from("data/simulations").join(format!("{scenario}-{seed}"))
}

/// Runs one scenario end to end and writes its report.
pub async fn simulate(request: &RunRequest<'_>) -> anyhow::Result<RunSummary> {
    let wall = std::time::Instant::now();
    let scenario = request.scenario;
    let database = world::Database::create(request.backend, request.admin_url).await?;
    let result = async {
        let clock = ManualClock::new(scenario.start);
        let mailer = mailbox::RecordingMailer::default();
        let services = world::services(&database.url, &clock, &mailer).await?;
        let population = population::draw(scenario, request.seed, &services.gazetteer)
            .map_err(|e| anyhow::anyhow!("scenario {}: {e}", scenario.name))?;
        let cap = world::daily_invitation_cap(&services);
        let result = run::run(
            scenario,
            request.seed,
            &population,
            &services,
            &clock,
            &mailer,
            cap,
        )
        .await
        .with_context(|| format!("simulation of {} failed", scenario.name))?;
        anyhow::Ok(result)
    }
    .await;
    database.close().await?;
    let result = result?;
    let figures = observe::figures(&result.log);
    let wall_seconds = wall.elapsed().as_secs_f64();
    report::write(
        request.out,
        &report::RunInfo {
            scenario: &scenario.name,
            description: &scenario.description,
            seed: request.seed,
            backend: request.backend.name(),
            wall_seconds,
            outbox_left: result.outbox_left,
            start: scenario.start,
        },
        &figures,
    )?;
    Ok(RunSummary {
        figures,
        wall_seconds,
        out: request.out.to_owned(),
    })
}

/// The few lines printed after a run.
pub fn summary_line(name: &str, seed: u64, backend: Backend, s: &RunSummary) -> String {
    let t = &s.figures.totals;
    let targets = report::targets(&s.figures);
    let missed: Vec<&str> = targets.iter().filter(|t| !t.met).map(|t| t.name).collect();
    format!(
        "{name} (seed {seed}, {}): {:.1} s\n  offered {} placed {} wasted {} (while willing in reach {}) withdrawn {} no-shows {}\n  \
         invitations {} mails {} inversions {} pauses {} (wrongful {}) max invitations/person/day {}\n  targets: {}\n  report: {}",
        backend.name(),
        s.wall_seconds,
        t.offered,
        t.placed,
        t.wasted,
        t.wasted_while_willing,
        t.withdrawn,
        t.no_shows,
        t.invitations,
        t.mails,
        t.inversions,
        t.pauses,
        t.wrongful_pauses,
        t.max_invitations_per_person_day,
        if missed.is_empty() {
            "all met".to_owned()
        } else {
            format!("missed: {}", missed.join(", "))
        },
        s.out.join("report.md").display()
    )
}
