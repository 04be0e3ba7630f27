//! `restdose`: the one binary. Without a subcommand it serves.

mod admin_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use restdose::Config;
use restdose::config::EXAMPLE;
use restdose::workers::WorkerSet;
use restdose_domain::SystemClock;
use restdose_domain::geo::parse_geonames;
use restdose_store::PostcodeRow;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "restdose",
    version,
    about = "Waitlist matching for leftover vaccine doses",
    long_about = "Waitlist matching for leftover vaccine doses.\n\nWithout a subcommand, `restdose` serves \
                  (same as `restdose serve`). Configuration: built-in defaults < restdose.toml < RESTDOSE_* \
                  environment variables; see `restdose config example`."
)]
struct Cli {
    /// Configuration file (default: ./restdose.toml if present).
    #[arg(long, global = true, env = "RESTDOSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web service (the default) and, unless --no-workers, the background workers
    /// (matcher, invitation expiry, mail delivery, housekeeping). Migrations run first.
    Serve {
        /// Serve HTTP only; run the workers elsewhere with `restdose matcher`.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run only the background workers (matcher, invitation expiry, mail delivery,
    /// housekeeping). Several may run against one PostgreSQL; on SQLite run one process.
    Matcher,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Delete what is due once and exit: offers (and the people who booked them) 24 h after
    /// the appointment, unconfirmed sign-ups, expired links and sessions, long-paused people
    /// after their warning, `.eml` files of the file outbox 24 h after they were written.
    /// `serve` and `matcher` do this every minute by themselves.
    Purge {
        /// Print what would be deleted, deleting nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Postcode data for countries other than the built-in Germany.
    Geo {
        #[command(subcommand)]
        action: GeoAction,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        action: restdose::keys_cli::KeysAction,
    },
    /// Administrator accounts and decisions on practices (approve, reject, suspend).
    Admin {
        #[command(subcommand)]
        action: admin_cli::AdminAction,
    },
    /// Simulate a day or a week of the service, deterministically, and write a report.
    #[command(long_about = SIMULATE_ABOUT)]
    Simulate(SimulateArgs),
}

const SIMULATE_ABOUT: &str = "Simulate a day or a week of the service and write a report.\n\n\
People sign up and confirm, practices post and cancel offers, the matcher invites in waves and \
people claim, decline, ignore or cancel: all through the real use cases, on a fresh database, \
with a simulated clock and a mailer that records mails instead of sending them. Everything the \
simulation decides is drawn from the seed, so the same seed and backend give the same figures.\n\n\
SCENARIO is a built-in name (quiet-day, rush-day, dead-addresses) or a path to a TOML file \
(format: docs/simulation.md). Each run writes report.md, figures.json and SVG charts to its \
output folder and prints a short summary. Needs no configuration file.";

#[derive(clap::Args)]
struct SimulateArgs {
    /// Scenarios to run, one after the other: built-in names or TOML files.
    #[arg(required = true, value_name = "SCENARIO")]
    scenarios: Vec<String>,
    /// Storage backend: a fresh temporary SQLite file, or a fresh PostgreSQL database created
    /// through --database-url and dropped afterwards.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: restdose::simulate::Backend,
    /// PostgreSQL server URL allowed to create databases (postgres backend only).
    #[arg(
        long,
        env = "RESTDOSE_SIMULATE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Seed for everything the simulation decides (default: the scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder (default: ./data/simulations/<scenario>-<seed>/). With several scenarios,
    /// each gets a subfolder <scenario>-<seed> of it.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a complete, commented restdose.toml with every key at its default.
    Example,
}

#[derive(Subcommand)]
enum GeoAction {
    /// Load a GeoNames postal-code file (e.g. AT.txt) into the database. Accepted postcodes are
    /// those of the configured `country`.
    Import { file: PathBuf },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands that need no configuration.
    if let Some(Command::Simulate(args)) = &cli.command {
        return simulate(args);
    }
    match &cli.command {
        Some(Command::Config {
            action: ConfigAction::Example,
        }) => {
            print!("{EXAMPLE}");
            return Ok(());
        }
        Some(Command::Keys {
            action: restdose::keys_cli::KeysAction::Generate,
        }) => {
            print!("{}", restdose_crypto::Keyring::generate()?.to_toml());
            return Ok(());
        }
        _ => {}
    }
    let (file, explicit) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("restdose.toml"), false),
    };
    let config = Config::load(&file, explicit)?;
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            None => serve(config, false).await,
            Some(Command::Serve { no_workers }) => serve(config, no_workers).await,
            Some(Command::Matcher) => {
                restdose::check_file_outbox(&config)?;
                let services = restdose::build_services(&config, Arc::new(SystemClock)).await?;
                restdose::start_metrics_listener(
                    &config,
                    &services,
                    &restdose_web::WebOptions::default(),
                )?;
                restdose::workers::spawn(&services, WorkerSet::ALL, config.worker_poll());
                // With log_format = "json" every line on stderr is a JSON object: no banners.
                let text = config.log_format != "json";
                if text {
                    eprintln!("restdose matcher is running (workers only)");
                }
                tracing::info!("matcher running (workers only)");
                shutdown_signal().await?;
                if text {
                    eprintln!("restdose matcher stopping");
                }
                Ok(())
            }
            Some(Command::Migrate) => {
                let store = restdose::open_store(&config).await?;
                println!("migrations applied ({})", store.backend());
                Ok(())
            }
            Some(Command::Purge { dry_run }) => {
                let services = restdose::build_services(&config, Arc::new(SystemClock)).await?;
                if dry_run {
                    let p = services.purge_preview().await?;
                    let mail_files = services.mail_files_to_purge().await?;
                    println!(
                        "would delete: {} finished offer(s) with {} person(s) who booked them, {} unconfirmed sign-up(s), {} expired link(s), {} expired session(s), {} long-paused person(s), {} mail file(s)",
                        p.finished_offers, p.people_of_finished_offers, p.unconfirmed, p.expired_links, p.expired_sessions, p.inactive_paused, mail_files
                    );
                } else {
                    let r = services.purge_once().await?;
                    println!(
                        "deleted: {} finished offer(s) with {} person(s) who booked them, {} unconfirmed sign-up(s), {} expired link(s), {} expired session(s), {} long-paused person(s) ({} warned), {} mail file(s)",
                        r.offers, r.people_of_offers, r.unconfirmed, r.expired_links, r.expired_sessions, r.inactive_deleted, r.inactive_warned, r.mail_files
                    );
                }
                Ok(())
            }
            Some(Command::Keys { action }) => restdose::keys_cli::run(&config, action).await,
            Some(Command::Geo {
                action: GeoAction::Import { file },
            }) => geo_import(&config, &file).await,
            Some(Command::Admin { action }) => admin_cli::run(&config, action).await,
            Some(Command::Config { .. } | Command::Simulate(_)) => Ok(()),
        }
    })
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    use restdose::simulate::{RunRequest, Scenario, default_out, simulate, summary_line};
    // Load every scenario first: a typo in the third must not wait for two runs.
    let scenarios = args
        .scenarios
        .iter()
        .map(|s| Scenario::load(s))
        .collect::<Result<Vec<_>, _>>()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for scenario in &scenarios {
            let seed = args.seed.unwrap_or(scenario.seed);
            let out = match (&args.out, scenarios.len()) {
                (Some(dir), 1) => dir.clone(),
                (Some(dir), _) => dir.join(format!("{}-{seed}", scenario.name)),
                (None, _) => default_out(&scenario.name, seed),
            };
            let summary = simulate(&RunRequest {
                scenario,
                seed,
                backend: args.backend,
                admin_url: &args.database_url,
                out: &out,
            })
            .await?;
            println!(
                "{}",
                summary_line(&scenario.name, seed, args.backend, &summary)
            );
        }
        Ok(())
    })
}

/// Ctrl-C or SIGTERM (what service managers send).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

async fn serve(config: Config, no_workers: bool) -> anyhow::Result<()> {
    restdose::check_file_outbox(&config)?;
    let listener = std::net::TcpListener::bind(&config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let app = restdose::Application::build(&config, Arc::new(SystemClock), listener).await?;
    let public = config.public_url()?;
    tracing::info!(listen = %config.listen, public_url = %public, backend = app.services.store.backend(), "restdose is serving");
    if config.log_format != "json" {
        eprintln!("restdose is serving at {public}");
    }
    if !no_workers {
        restdose::workers::spawn(&app.services, WorkerSet::ALL, config.worker_poll());
    }
    app.server.await.context("server failed")
}

async fn geo_import(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entries = parse_geonames(&text)
        .with_context(|| format!("{} is not a GeoNames postal-code file", file.display()))?;
    if entries.is_empty() {
        anyhow::bail!("{} holds no postcodes", file.display());
    }
    let store = restdose::open_store(config).await?;
    let mut by_country: std::collections::BTreeMap<String, Vec<PostcodeRow>> = Default::default();
    for e in entries {
        by_country
            .entry(e.country.to_ascii_uppercase())
            .or_default()
            .push(PostcodeRow {
                postcode: e.postcode,
                lat: e.coordinates.lat,
                lon: e.coordinates.lon,
            });
    }
    for (country, rows) in &by_country {
        let written = store.upsert_postcodes(country, rows).await?;
        println!("{country}: {written} postcodes imported");
    }
    if !by_country.contains_key(&config.country.to_ascii_uppercase()) {
        eprintln!(
            "note: the configured country is {}; set RESTDOSE_COUNTRY to use the imported postcodes",
            config.country
        );
    }
    Ok(())
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
