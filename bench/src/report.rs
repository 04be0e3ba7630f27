//! Statistics over timings, the machine and server they were taken on, and the output: a
//! Markdown table on stdout and, optionally, the same as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::seed::SeedReport;

/// Latency of one kind of call over many picks, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean = if ms.is_empty() {
            0.0
        } else {
            ms.iter().sum::<f64>() / ms.len() as f64
        };
        Stats {
            p50_ms: percentile(&ms, 50.0),
            p90_ms: percentile(&ms, 90.0),
            p99_ms: percentile(&ms, 99.0),
            max_ms: ms.last().copied().unwrap_or(0.0),
            mean_ms: mean,
        }
    }

    /// The median of each figure separately over several runs.
    pub fn median_of(runs: &[Stats]) -> Stats {
        let figure = |f: fn(&Stats) -> f64| median(runs.iter().map(f).collect());
        Stats {
            p50_ms: figure(|s| s.p50_ms),
            p90_ms: figure(|s| s.p90_ms),
            p99_ms: figure(|s| s.p99_ms),
            max_ms: figure(|s| s.max_ms),
            mean_ms: figure(|s| s.mean_ms),
        }
    }
}

/// Nearest-rank percentile of sorted values (p99 of 1,000 samples is the 990th smallest).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let cpu_model = read("/proc/cpuinfo").and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        let memory_gib = read("/proc/meminfo").and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| kib / (1024.0 * 1024.0))
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib,
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub version: String,
    /// Settings that shape these plans and timings.
    pub settings: Vec<(String, String)>,
}

impl Server {
    pub async fn probe(pool: &PgPool) -> anyhow::Result<Server> {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(pool)
            .await?;
        let settings: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, setting || COALESCE(unit, '') FROM pg_settings \
             WHERE name IN ('shared_buffers', 'effective_cache_size', 'work_mem', \
                 'random_page_cost', 'jit', 'fsync', 'synchronous_commit', \
                 'max_parallel_workers_per_gather', 'plan_cache_mode') \
             ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        Ok(Server { version, settings })
    }
}

/// One kind of call at one limit.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// `store`: `MatcherStore::candidates` as the store runs it; `naive`: one scan of the
    /// whole area, sorted; `alt`: the statement from `--alt-sql`.
    pub query: &'static str,
    pub label: String,
    pub limit: u32,
    pub runs: Vec<Stats>,
    pub median: Stats,
    pub rows_mean: f64,
}

/// Another query's medians divided by the store's, at the same limit.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub query: &'static str,
    pub label: String,
    pub limit: u32,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Calls (picks × runs) where another query returned the same people in the same order as
/// the store.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub query: &'static str,
    pub limit: u32,
    pub same: u64,
    pub compared: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostcodeStats {
    pub mean: f64,
    pub median: f64,
    pub min: usize,
    pub max: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    pub query: &'static str,
    pub label: String,
    pub limit: u32,
    pub offer_postcode: String,
    pub radius_km: u32,
    pub postcodes: usize,
    pub plan: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub people: u32,
    pub picks: u32,
    pub runs: u32,
    pub warmup: u32,
    pub seed: u64,
    /// Wall time of the whole benchmark, loading included.
    pub total_s: f64,
    pub machine: Machine,
    pub server: Server,
    pub load: SeedReport,
    pub postcodes_per_pick: PostcodeStats,
    pub results: Vec<Variant>,
    pub ratios: Vec<Ratio>,
    pub agreement: Vec<Agreement>,
    pub target_p99_ms: f64,
    pub explain: Vec<Explained>,
    pub explain_error: Option<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "## Wave pick: {} waiting people, {} picks × {} runs (after {} warm-up picks)\n",
            thousands(u64::from(self.people)),
            thousands(u64::from(self.picks)),
            self.runs,
            self.warmup
        );
        let m = &self.machine;
        let _ = writeln!(
            w,
            "- Machine: {} CPUs ({}), {} GiB RAM, Linux {}",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            m.memory_gib.map_or("?".to_owned(), |g| format!("{g:.1}")),
            m.kernel.as_deref().unwrap_or("?")
        );
        let settings: Vec<String> = self
            .server
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            w,
            "- PostgreSQL {} ({})",
            self.server.version,
            settings.join(", ")
        );
        let l = &self.load;
        let _ = writeln!(
            w,
            "- Loaded {} people in {:.1} s (binary COPY); {} open invitations, {} past ones and \
             {} live bookings on {} offers in {:.1} s; VACUUM (ANALYZE) {:.1} s. registrants: \
             {:.0} MB heap + {:.0} MB indexes (registrants_waiting_by_postcode {:.0} MB)",
            thousands(l.people),
            l.copy_registrants_s,
            thousands(l.open_invitations),
            thousands(l.past_invitations),
            thousands(l.live_bookings),
            l.offers,
            l.copy_others_s,
            l.vacuum_analyze_s,
            l.registrants_table_mb,
            l.registrants_indexes_mb,
            l.waiting_index_mb
        );
        let p = &self.postcodes_per_pick;
        let _ = writeln!(
            w,
            "- Postcodes per pick (offer at a random postcode, radius 10–50 km): mean {:.1}, \
             median {:.0}, min {}, max {}",
            p.mean, p.median, p.min, p.max
        );
        let _ = writeln!(w, "- Whole benchmark: {:.1} min\n", self.total_s / 60.0);

        let _ = writeln!(
            w,
            "Milliseconds per call, wall time in the client; each figure is the median of the \
             runs' figures:\n"
        );
        let _ = writeln!(
            w,
            "| query | limit | p50 | p90 | p99 | max | mean | rows (mean) |"
        );
        let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for v in &self.results {
            let s = &v.median;
            let _ = writeln!(
                w,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
                v.label, v.limit, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.mean_ms, v.rows_mean
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(
                w,
                "\n| ÷ store at the same limit | limit | p50 | p90 | p99 | max |"
            );
            let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|");
            for r in &self.ratios {
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.label,
                    r.limit,
                    times(r.p50),
                    times(r.p90),
                    times(r.p99),
                    times(r.max)
                );
            }
        }
        let _ = writeln!(w, "\np99 of each run (ms):\n");
        for v in &self.results {
            let runs: Vec<String> = v.runs.iter().map(|s| format!("{:.2}", s.p99_ms)).collect();
            let _ = writeln!(w, "- {} limit {}: {}", v.label, v.limit, runs.join(" / "));
        }
        for a in &self.agreement {
            let _ = writeln!(
                w,
                "\n{} limit {}: the same people in the same order as the store in {} of {} calls.",
                self.label_of(a.query),
                a.limit,
                thousands(a.same),
                thousands(a.compared)
            );
        }
        let _ = writeln!(w, "\nTarget p99 under {:.0} ms:", self.target_p99_ms);
        for v in self.results.iter().filter(|v| v.query != "naive") {
            let verdict = if v.median.p99_ms < self.target_p99_ms {
                "met"
            } else {
                "missed"
            };
            let _ = writeln!(
                w,
                "- {} limit {}: **{verdict}** (p99 {:.2} ms)",
                v.label, v.limit, v.median.p99_ms
            );
        }

        if let Some(e) = &self.explain_error {
            let _ = writeln!(w, "\nEXPLAIN skipped: {e}");
        }
        for e in &self.explain {
            let _ = writeln!(
                w,
                "\n### EXPLAIN (ANALYZE, BUFFERS): {} limit {}\n\nOffer at {}, radius {} km \
                 ({} postcodes, the largest pick); the 6th execution on a fresh connection, \
                 from `auto_explain`.\n\n```text\n{}\n```",
                e.label,
                e.limit,
                e.offer_postcode,
                e.radius_km,
                e.postcodes,
                e.plan.trim_end()
            );
        }
        out
    }

    fn label_of<'a>(&'a self, query: &'a str) -> &'a str {
        self.results
            .iter()
            .find(|v| v.query == query)
            .map_or(query, |v| v.label.as_str())
    }
}

fn times(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}×")
    } else if ratio >= 0.1 {
        format!("{ratio:.2}×")
    } else {
        format!("{ratio:.3}×")
    }
}

/// 2000000 → "2,000,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let s = Stats::of(&samples);
        assert_eq!(
            (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms),
            (500.0, 900.0, 990.0, 1000.0)
        );
        assert_eq!(s.mean_ms, 500.5);
    }

    #[test]
    fn the_median_of_runs_is_taken_per_figure() {
        let run = |p99_ms: f64, max_ms: f64| Stats {
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms,
            max_ms,
            mean_ms: 1.0,
        };
        let m = Stats::median_of(&[run(9.0, 30.0), run(3.0, 10.0), run(5.0, 20.0)]);
        assert_eq!((m.p99_ms, m.max_ms), (5.0, 20.0));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(2_000_000), "2,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
