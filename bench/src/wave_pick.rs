//! `wave-pick`: the time to pick one wave among many waiting people on PostgreSQL.
//!
//! Each pick is what the matcher does for an offer: the postcodes within the offer's radius
//! from the neighbour index, then `MatcherStore::candidates` (the store's real query, a LATERAL
//! top-N per postcode over the partial index `registrants_waiting_by_postcode`). The same picks
//! also run as the naive single scan, `postcode = ANY(…) ORDER BY created_at LIMIT n`, as a
//! comparison: the two must return the same people.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use restdose_domain::geo::builtin_germany;
use restdose_domain::matching::{NeighbourIndex, builtin_germany_neighbours};
use restdose_store::{CandidateQuery, MatcherStore, Store};
use restdose_store_postgres::PgStore;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::explain;
use crate::report::{Explained, Machine, PostcodeStats, Ratio, Report, Server, Stats, Variant};
use crate::rng::Rng;
use crate::seed::{self, BenchDb, Population, THROTTLE_MINUTES};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Admin URL of the server; a fresh database is created (and dropped) through it.
    #[arg(
        long,
        env = "RESTDOSE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    postgres_url: String,
    /// Waiting people to load.
    #[arg(long, default_value_t = 2_000_000)]
    people: u32,
    /// Timed picks per run.
    #[arg(long, default_value_t = 1_000)]
    picks: u32,
    /// Runs over the same picks; the report gives the median of each figure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed picks first, so the runs start from a warm cache.
    #[arg(long, default_value_t = 100)]
    warmup: u32,
    /// Wave sizes to measure (the matcher's waves are 1–500 people).
    #[arg(long, value_delimiter = ',', default_value = "30,300")]
    limits: Vec<u32>,
    /// Skip the naive comparison query.
    #[arg(long)]
    no_naive: bool,
    /// Skip the EXPLAIN (ANALYZE, BUFFERS) of the largest pick.
    #[arg(long)]
    no_explain: bool,
    /// Seed of the synthetic people and the picks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the database afterwards (its URL is printed).
    #[arg(long)]
    keep: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// The p99 the issue asks for.
const TARGET_P99_MS: f64 = 10.0;

/// Executions of a statement before its plan is shown: after five, PostgreSQL may switch a
/// prepared statement to its generic plan, which is then what the timed picks run.
const EXPLAIN_EXECUTIONS: usize = 6;

/// The comparison: every waiting person in the area in one scan, sorted, same filters as the
/// store's query (so both return the same people).
const NAIVE_SQL: &str = "SELECT r.id, r.postcode, p.distance_km, r.created_at, r.language, \
         r.email_key_id, r.email_ciphertext, r.email_index \
     FROM registrants r \
     JOIN UNNEST($2::text[], $3::real[]) AS p (postcode, distance_km) ON p.postcode = r.postcode \
     WHERE r.status = 'active' AND r.postcode = ANY($2::text[]) \
       AND r.radius_km >= p.distance_km \
       AND (r.last_invited_at IS NULL OR r.last_invited_at <= $4) \
       AND NOT EXISTS (SELECT 1 FROM invitations i \
           WHERE i.registrant_id = r.id AND i.status = 'open') \
       AND NOT EXISTS (SELECT 1 FROM bookings b \
           WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in')) \
       AND NOT EXISTS (SELECT 1 FROM invitations i \
           WHERE i.offer_id = $1 AND i.registrant_id = r.id) \
     ORDER BY r.created_at, r.id \
     LIMIT $5";

type NaiveRow = (
    Uuid,
    String,
    f32,
    DateTime<Utc>,
    String,
    i32,
    Vec<u8>,
    Vec<u8>,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Lateral,
    Naive,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Lateral => "lateral",
            Form::Naive => "naive",
        }
    }
}

/// One offer to pick a wave for.
struct Pick {
    offer_id: Uuid,
    postcode: String,
    radius_km: u32,
    postcodes: Vec<(String, f32)>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.limits.is_empty(), "--limits needs at least one value");
    anyhow::ensure!(
        args.limits.iter().all(|&l| l > 0),
        "--limits must be positive"
    );
    let db = BenchDb::create(&args.postgres_url).await?;
    eprintln!("restdose-bench: database {}", db.name);
    let outcome = tokio::select! {
        outcome = measure(&db, &args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if args.keep {
        eprintln!("restdose-bench: kept the database: {}", redacted(&db.url));
    } else if let Err(e) = db.drop().await {
        eprintln!("restdose-bench: warning: {e:#}");
    }
    let report = outcome?;
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn redacted(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| seed::redact(&u))
}

async fn measure(db: &BenchDb, args: &Args) -> anyhow::Result<Report> {
    let mut postcodes: Vec<&str> = builtin_germany().iter().map(|(code, _)| code).collect();
    postcodes.sort_unstable();
    let neighbours = builtin_germany_neighbours();
    let now = Utc::now();

    let load_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await?;
    PgStore::from_pool(load_pool.clone())
        .migrate()
        .await
        .context("migrating the benchmark database")?;
    eprintln!(
        "restdose-bench: loading {} people …",
        crate::report::thousands(u64::from(args.people))
    );
    let load = seed::seed(
        &load_pool,
        &Population {
            people: args.people,
            seed: args.seed,
            now,
            postcodes: &postcodes,
        },
    )
    .await?;
    eprintln!(
        "restdose-bench: loaded in {:.1} s + {:.1} s, VACUUM (ANALYZE) {:.1} s",
        load.copy_registrants_s, load.copy_others_s, load.vacuum_analyze_s
    );
    let server = Server::probe(&load_pool).await?;
    load_pool.close().await;

    let picks = make_picks(
        args.warmup + args.picks,
        args.seed ^ 0x5eed,
        &postcodes,
        &neighbours,
    );
    let (warmup, timed) = picks.split_at(args.warmup as usize);
    let invited_before = now - chrono::Duration::minutes(THROTTLE_MINUTES);
    let mut variants: Vec<(Form, u32)> = args.limits.iter().map(|&l| (Form::Lateral, l)).collect();
    if !args.no_naive {
        variants.extend(args.limits.iter().map(|&l| (Form::Naive, l)));
    }

    // The store as the app opens it.
    let store = PgStore::connect(&db.url, 2).await?;
    let mut caller = Caller {
        store: &store,
        invited_before,
    };
    eprintln!("restdose-bench: {} warm-up picks …", warmup.len());
    for pick in warmup {
        for &(form, limit) in &variants {
            caller.call(form, pick, limit).await?;
        }
    }

    let mut samples: Vec<Vec<Vec<Duration>>> = vec![Vec::new(); variants.len()];
    let mut rows: Vec<u64> = vec![0; variants.len()];
    let (mut same, mut compared) = (0u64, 0u64);
    for run in 0..args.runs {
        eprintln!(
            "restdose-bench: run {} of {}: {} picks × {} queries …",
            run + 1,
            args.runs,
            timed.len(),
            variants.len()
        );
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(timed.len()); variants.len()];
        for (j, pick) in timed.iter().enumerate() {
            let mut ids: Vec<Vec<Uuid>> = vec![Vec::new(); variants.len()];
            // Rotate the order so no query always runs first on a cold area.
            for k in 0..variants.len() {
                let v = (j + k) % variants.len();
                let (form, limit) = variants[v];
                let (elapsed, found) = caller.call(form, pick, limit).await?;
                times[v].push(elapsed);
                rows[v] += found.len() as u64;
                ids[v] = found;
            }
            for (a, &(form, limit)) in variants.iter().enumerate() {
                if form != Form::Lateral {
                    continue;
                }
                if let Some(b) = variants.iter().position(|&v| v == (Form::Naive, limit)) {
                    compared += 1;
                    same += u64::from(ids[a] == ids[b]);
                }
            }
        }
        for (v, t) in times.into_iter().enumerate() {
            samples[v].push(t);
        }
    }
    store.pool().close().await;

    let calls = u64::from(args.runs) * timed.len() as u64;
    let results: Vec<Variant> = variants
        .iter()
        .zip(&samples)
        .zip(&rows)
        .map(|((&(form, limit), runs), &found)| {
            let runs: Vec<Stats> = runs.iter().map(|t| Stats::of(t)).collect();
            Variant {
                query: form.name(),
                limit,
                median: Stats::median_of(&runs),
                runs,
                rows_mean: found as f64 / calls.max(1) as f64,
            }
        })
        .collect();
    let ratios = ratios(&results);
    let smallest = args.limits.iter().copied().min().unwrap_or(0);
    let target_met = results
        .iter()
        .find(|v| v.query == "lateral" && v.limit == smallest)
        .is_some_and(|v| v.median.p99_ms < TARGET_P99_MS);

    let (explain, explain_error) = if args.no_explain {
        (Vec::new(), None)
    } else {
        eprintln!("restdose-bench: EXPLAIN of the largest pick …");
        match explain_largest(&db.url, timed, &variants, invited_before).await {
            Ok(plans) => (plans, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    };

    Ok(Report {
        benchmark: "wave-pick",
        people: args.people,
        picks: timed.len() as u32,
        runs: args.runs,
        warmup: warmup.len() as u32,
        seed: args.seed,
        machine: Machine::probe(),
        server,
        load,
        postcodes_per_pick: postcode_stats(timed),
        results,
        ratios,
        same_result: same,
        compared,
        target_p99_ms: TARGET_P99_MS,
        target_met,
        explain,
        explain_error,
    })
}

/// Runs one query for one pick and times it.
struct Caller<'a> {
    store: &'a PgStore,
    invited_before: DateTime<Utc>,
}

impl Caller<'_> {
    async fn call(
        &mut self,
        form: Form,
        pick: &Pick,
        limit: u32,
    ) -> anyhow::Result<(Duration, Vec<Uuid>)> {
        match form {
            Form::Lateral => {
                let query = CandidateQuery {
                    offer_id: pick.offer_id,
                    postcodes: pick.postcodes.clone(),
                    invited_before: self.invited_before,
                    limit,
                };
                let started = Instant::now();
                let found = self.store.candidates(&query).await?;
                let elapsed = started.elapsed();
                Ok((elapsed, found.iter().map(|c| c.registrant_id).collect()))
            }
            Form::Naive => {
                let started = Instant::now();
                // Inside the timing, as the store's own preparation of the arrays is.
                let (codes, distances): (Vec<&str>, Vec<f32>) =
                    pick.postcodes.iter().map(|(c, d)| (c.as_str(), *d)).unzip();
                let found: Vec<NaiveRow> = sqlx::query_as(NAIVE_SQL)
                    .bind(pick.offer_id)
                    .bind(codes)
                    .bind(distances)
                    .bind(self.invited_before)
                    .bind(i64::from(limit))
                    .fetch_all(self.store.pool())
                    .await?;
                let elapsed = started.elapsed();
                Ok((elapsed, found.into_iter().map(|row| row.0).collect()))
            }
        }
    }
}

/// Offers at random postcodes with a radius of 10–50 km; the same seed gives the same picks.
fn make_picks(n: u32, seed: u64, postcodes: &[&str], neighbours: &NeighbourIndex) -> Vec<Pick> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let postcode = postcodes[rng.below(postcodes.len() as u64) as usize];
            let radius_km = rng.between(10, 50) as u32;
            Pick {
                offer_id: rng.uuid(),
                postcode: postcode.to_owned(),
                radius_km,
                postcodes: neighbours
                    .within(postcode, f64::from(radius_km))
                    .map(|(code, d)| (code.to_owned(), d))
                    .collect(),
            }
        })
        .collect()
}

fn postcode_stats(picks: &[Pick]) -> PostcodeStats {
    let mut counts: Vec<usize> = picks.iter().map(|p| p.postcodes.len()).collect();
    counts.sort_unstable();
    let n = counts.len().max(1) as f64;
    PostcodeStats {
        mean: counts.iter().sum::<usize>() as f64 / n,
        median: counts.get(counts.len() / 2).copied().unwrap_or(0) as f64,
        min: counts.first().copied().unwrap_or(0),
        max: counts.last().copied().unwrap_or(0),
    }
}

fn ratios(results: &[Variant]) -> Vec<Ratio> {
    let by_key: BTreeMap<(&str, u32), &Stats> = results
        .iter()
        .map(|v| ((v.query, v.limit), &v.median))
        .collect();
    by_key
        .iter()
        .filter(|((query, _), _)| *query == "lateral")
        .filter_map(|(&(_, limit), lateral)| {
            let naive = by_key.get(&("naive", limit))?;
            let r = |n: f64, l: f64| if l > 0.0 { n / l } else { 0.0 };
            Some(Ratio {
                limit,
                p50: r(naive.p50_ms, lateral.p50_ms),
                p90: r(naive.p90_ms, lateral.p90_ms),
                p99: r(naive.p99_ms, lateral.p99_ms),
                max: r(naive.max_ms, lateral.max_ms),
            })
        })
        .collect()
}

/// The plans of the pick with the most postcodes, each on a connection of its own that runs
/// `auto_explain`, as the timed picks ran them (from the sixth execution on).
async fn explain_largest(
    url: &str,
    picks: &[Pick],
    variants: &[(Form, u32)],
    invited_before: DateTime<Utc>,
) -> anyhow::Result<Vec<Explained>> {
    let Some(pick) = picks.iter().max_by_key(|p| p.postcodes.len()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for &(form, limit) in variants {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql(explain::AUTO_EXPLAIN).execute(conn).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .context("connecting with auto_explain (needs a superuser)")?;
        let store = PgStore::from_pool(pool.clone());
        let mut caller = Caller {
            store: &store,
            invited_before,
        };
        let mut last = None;
        for _ in 0..EXPLAIN_EXECUTIONS {
            explain::take();
            caller.call(form, pick, limit).await?;
            last = explain::take().pop();
        }
        pool.close().await;
        let plan = last.context("auto_explain reported no plan")?;
        out.push(Explained {
            query: form.name(),
            limit,
            offer_postcode: pick.postcode.clone(),
            radius_km: pick.radius_km,
            postcodes: pick.postcodes.len(),
            plan: explain::plan_of(&plan),
        });
    }
    Ok(out)
}
