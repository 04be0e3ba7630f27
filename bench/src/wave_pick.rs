//! `wave-pick`: the time to pick one wave among many waiting people on PostgreSQL.
//!
//! Each pick is what the matcher does for an offer: the postcodes within the offer's radius
//! from the neighbour index, then `MatcherStore::candidates` (the store's real query, a LATERAL
//! top-N per postcode over the partial index `registrants_waiting_by_postcode`). The same picks
//! also run as the naive single scan, `postcode = ANY(…) ORDER BY created_at LIMIT n`, as a
//! comparison, and optionally a proposed rewrite (`--alt-sql`); every form must return the
//! same people as the store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use restdose_domain::geo::builtin_germany;
use restdose_domain::matching::{NeighbourIndex, builtin_germany_neighbours};
use restdose_store::{CandidateQuery, MatcherStore, Store};
use restdose_store_sql::PgStore;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::explain;
use crate::report::{
    Agreement, Explained, Machine, PostcodeStats, Ratio, Report, Server, Stats, Variant, thousands,
};
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
    /// Timed picks per run (each runs every query below once).
    #[arg(long, default_value_t = 300)]
    picks: u32,
    /// Runs over the same picks; the report gives the median of each figure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed picks first, so the runs start from a warm cache.
    #[arg(long, default_value_t = 30)]
    warmup: u32,
    /// Wave sizes to measure (the matcher's waves are 1–500 people).
    #[arg(long, value_delimiter = ',', default_value = "30,300")]
    limits: Vec<u32>,
    /// Wave sizes for the naive comparison query (it reads the whole area whatever the
    /// limit, so one is enough by default).
    #[arg(long, value_delimiter = ',', default_value = "30")]
    naive_limits: Vec<u32>,
    /// Skip the naive comparison query.
    #[arg(long)]
    no_naive: bool,
    /// Also time this statement (a proposed rewrite of the store's query) at every limit, on
    /// the same picks, and check it returns the same people. Binds: $1 offer id, $2 postcodes
    /// (text[]), $3 their distances (real[]), $4 invited_before, $5 limit; columns as the
    /// store's: id, postcode, distance_km, created_at, language, email_key_id,
    /// email_ciphertext, email_index.
    #[arg(long, value_name = "FILE")]
    alt_sql: Option<PathBuf>,
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

type CandidateRow = (
    Uuid,
    String,
    f32,
    DateTime<Utc>,
    String,
    i32,
    Vec<u8>,
    Vec<u8>,
);

/// The statements timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `MatcherStore::candidates` itself.
    Store,
    Naive,
    /// `--alt-sql`.
    Alt,
}

impl Form {
    fn key(self) -> &'static str {
        match self {
            Form::Store => "store",
            Form::Naive => "naive",
            Form::Alt => "alt",
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
        args.limits.iter().chain(&args.naive_limits).all(|&l| l > 0),
        "limits must be positive"
    );
    let alt = match &args.alt_sql {
        Some(path) => Some(Alt {
            name: path.display().to_string(),
            sql: std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .into(),
        }),
        None => None,
    };
    let started = Instant::now();
    let db = BenchDb::create(&args.postgres_url).await?;
    eprintln!("restdose-bench: database {}", db.name);
    let outcome = tokio::select! {
        outcome = measure(&db, &args, alt.as_ref()) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if args.keep {
        eprintln!("restdose-bench: kept the database: {}", redacted(&db.url));
    } else if let Err(e) = db.drop().await {
        eprintln!("restdose-bench: warning: {e:#}");
    }
    let mut report = outcome?;
    report.total_s = started.elapsed().as_secs_f64();
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A statement given with `--alt-sql`.
struct Alt {
    name: String,
    sql: std::sync::Arc<str>,
}

fn redacted(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| seed::redact(&u))
}

async fn measure(db: &BenchDb, args: &Args, alt: Option<&Alt>) -> anyhow::Result<Report> {
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
        thousands(u64::from(args.people))
    );
    let (load, offers) = seed::seed(
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
        &offers,
    );
    let (warmup, timed) = picks.split_at(args.warmup as usize);
    let invited_before = now - chrono::Duration::minutes(THROTTLE_MINUTES);
    let mut variants: Vec<(Form, u32)> = args.limits.iter().map(|&l| (Form::Store, l)).collect();
    if !args.no_naive {
        variants.extend(args.naive_limits.iter().map(|&l| (Form::Naive, l)));
    }
    if alt.is_some() {
        variants.extend(args.limits.iter().map(|&l| (Form::Alt, l)));
    }

    // The store as the app opens it.
    let store = PgStore::connect(&db.url, 2).await?;
    let caller = Caller {
        store: &store,
        invited_before,
        alt,
    };
    // Also past the first five executions per connection, which use custom plans.
    eprintln!("restdose-bench: {} warm-up picks …", warmup.len());
    for pick in warmup {
        for &(form, limit) in &variants {
            caller.call(form, pick, limit).await?;
        }
    }

    let mut samples: Vec<Vec<Vec<Duration>>> = vec![Vec::new(); variants.len()];
    let mut rows: Vec<u64> = vec![0; variants.len()];
    let mut agreement: BTreeMap<(&'static str, u32), (u64, u64)> = BTreeMap::new();
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
            for (v, &(form, limit)) in variants.iter().enumerate() {
                let reference = variants.iter().position(|&x| x == (Form::Store, limit));
                if let (true, Some(reference)) = (form != Form::Store, reference) {
                    let (same, compared) = agreement.entry((form.key(), limit)).or_default();
                    *compared += 1;
                    *same += u64::from(ids[v] == ids[reference]);
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
                query: form.key(),
                label: label(form, alt),
                limit,
                median: Stats::median_of(&runs),
                runs,
                rows_mean: found as f64 / calls.max(1) as f64,
            }
        })
        .collect();
    let ratios = ratios(&results);
    let agreement = agreement
        .into_iter()
        .map(|((query, limit), (same, compared))| Agreement {
            query,
            limit,
            same,
            compared,
        })
        .collect();

    let (explain, explain_error) = if args.no_explain {
        (Vec::new(), None)
    } else {
        eprintln!("restdose-bench: EXPLAIN of the largest pick …");
        match explain_largest(&db.url, timed, &variants, invited_before, alt).await {
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
        total_s: 0.0,
        machine: Machine::probe(),
        server,
        load,
        postcodes_per_pick: postcode_stats(timed),
        results,
        ratios,
        agreement,
        target_p99_ms: TARGET_P99_MS,
        explain,
        explain_error,
    })
}

fn label(form: Form, alt: Option<&Alt>) -> String {
    match (form, alt) {
        (Form::Store, _) => "store `candidates` (LATERAL top-N per postcode)".to_owned(),
        (Form::Naive, _) => "naive (`postcode = ANY(…)` ORDER BY … LIMIT)".to_owned(),
        (Form::Alt, Some(alt)) => format!("`{}`", alt.name),
        (Form::Alt, None) => "alternative".to_owned(),
    }
}

/// Runs one query for one pick and times it.
struct Caller<'a> {
    store: &'a PgStore,
    invited_before: DateTime<Utc>,
    alt: Option<&'a Alt>,
}

impl Caller<'_> {
    async fn call(
        &self,
        form: Form,
        pick: &Pick,
        limit: u32,
    ) -> anyhow::Result<(Duration, Vec<Uuid>)> {
        let sql = match (form, self.alt) {
            (Form::Store, _) => {
                let query = CandidateQuery {
                    offer_id: pick.offer_id,
                    postcodes: pick.postcodes.clone(),
                    invited_before: self.invited_before,
                    // The matcher's daily cap, as it runs (nobody in the seed is near it).
                    counted_since: self.invited_before - chrono::Duration::hours(24),
                    max_invitations_since: 10,
                    limit,
                };
                let started = Instant::now();
                let found = self.store.candidates(&query).await?;
                let elapsed = started.elapsed();
                return Ok((elapsed, found.iter().map(|c| c.registrant_id).collect()));
            }
            (Form::Naive, _) | (Form::Alt, None) => sqlx::AssertSqlSafe(NAIVE_SQL.into()),
            (Form::Alt, Some(alt)) => sqlx::AssertSqlSafe(alt.sql.clone()),
        };
        let started = Instant::now();
        // Inside the timing, as the store's own preparation of the arrays is.
        let (codes, distances): (Vec<&str>, Vec<f32>) =
            pick.postcodes.iter().map(|(c, d)| (c.as_str(), *d)).unzip();
        let found: Vec<CandidateRow> = sqlx::query_as(sql)
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

/// Offers at random postcodes with a radius of 10–50 km; the same seed gives the same picks.
/// Every other pick is a later wave of an offer that already has invitations (so "not invited
/// to this offer before" has something to check), the others a first wave.
fn make_picks(
    n: u32,
    seed: u64,
    postcodes: &[&str],
    neighbours: &NeighbourIndex,
    offers: &[Uuid],
) -> Vec<Pick> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let postcode = postcodes[rng.below(postcodes.len() as u64) as usize];
            let radius_km = rng.between(10, 50) as u32;
            let offer_id = match offers.len() {
                len if len > 0 && i % 2 == 1 => offers[rng.below(len as u64) as usize],
                _ => rng.uuid(),
            };
            Pick {
                offer_id,
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

/// Every other query against the store's at the same limit.
fn ratios(results: &[Variant]) -> Vec<Ratio> {
    results
        .iter()
        .filter(|v| v.query != Form::Store.key())
        .filter_map(|other| {
            let store = results
                .iter()
                .find(|v| v.query == Form::Store.key() && v.limit == other.limit)?;
            let (o, s) = (&other.median, &store.median);
            let r = |o: f64, s: f64| if s > 0.0 { o / s } else { 0.0 };
            Some(Ratio {
                query: other.query,
                label: other.label.clone(),
                limit: other.limit,
                p50: r(o.p50_ms, s.p50_ms),
                p90: r(o.p90_ms, s.p90_ms),
                p99: r(o.p99_ms, s.p99_ms),
                max: r(o.max_ms, s.max_ms),
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
    alt: Option<&Alt>,
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
        let caller = Caller {
            store: &store,
            invited_before,
            alt,
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
            query: form.key(),
            label: label(form, alt),
            limit,
            offer_postcode: pick.postcode.clone(),
            radius_km: pick.radius_km,
            postcodes: pick.postcodes.len(),
            plan: explain::plan_of(&plan),
        });
    }
    Ok(out)
}
