//! restdose-bench: benchmarks against a real PostgreSQL server. Run them with `scripts/bench`,
//! never from the test suite (they load millions of rows). `wave-pick` times the matcher's
//! candidate query; `claim-seed`, `claim-count` and `mail-seed` prepare the load scenarios of
//! `scripts/bench-load`. docs/performance.md explains what is measured and records the results.

mod copy;
mod explain;
mod load_seed;
mod report;
mod rng;
mod seed;
mod wave_pick;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "restdose-bench",
    version,
    about = "Benchmarks for restdose (see docs/performance.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time picking one wave (MatcherStore::candidates) among many waiting people on
    /// PostgreSQL, next to the naive one-scan query; prints a Markdown table.
    WavePick(wave_pick::Args),
    /// S4 of scripts/bench-load: one offer, many invited people; writes their claim links'
    /// secrets to a file and prints the offer id. Uses the service's configuration.
    ClaimSeed(load_seed::ClaimSeedArgs),
    /// S4 of scripts/bench-load: prints the number of live bookings of an offer.
    ClaimCount(load_seed::ClaimCountArgs),
    /// S5 of scripts/bench-load: fills the outbox with invitation mails, all due now.
    MailSeed(load_seed::MailSeedArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    explain::install();
    match cli.command {
        Command::WavePick(args) => wave_pick::run(args).await,
        Command::ClaimSeed(args) => load_seed::claim_seed(args).await,
        Command::ClaimCount(args) => load_seed::claim_count(args).await,
        Command::MailSeed(args) => load_seed::mail_seed(args).await,
    }
}
