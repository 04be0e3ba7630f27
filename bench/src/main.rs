//! restdose-bench: benchmarks against a real PostgreSQL server. Run them with `scripts/bench`,
//! never from the test suite (they load millions of rows). `wave-pick` times the matcher's
//! candidate query; docs/performance.md explains what is measured and records the results.

mod copy;
mod explain;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    explain::install();
    match cli.command {
        Command::WavePick(args) => wave_pick::run(args).await,
    }
}
