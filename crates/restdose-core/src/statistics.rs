//! The open statistics (docs/statistics.md): the public aggregate, a person's odds on their
//! self-service page and a practice's own figures. Every figure comes from the anonymous
//! counters the purge keeps (`daily_stats`, `wave_stats`, `fill_times`, `practice_stats`),
//! except the live counts of people waiting, which are aggregated in the query.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use restdose_domain::statistics::{
    Cell, ExpectedWait, Median, Share, expected_wait, median_minutes, published_median, share,
};
use restdose_store::{Metric, RegistrantStatus};
use uuid::Uuid;

use crate::{Principal, ServiceError, Services};

/// How far back the public statistics reach.
pub const PUBLIC_WINDOW_DAYS: i64 = 90;
/// The window the expected wait is estimated from.
pub const ESTIMATE_WINDOW_DAYS: i64 = 30;

/// One day of the public statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct DayFigures {
    pub day: NaiveDate,
    pub doses_offered: Cell,
    pub doses_placed: Cell,
    pub doses_unused: Cell,
    /// Median minutes from posting to the last dose placed, of the offers filled that day.
    pub median_fill_minutes: Median,
}

/// Invitations of one wave number over the whole window.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveFigures {
    pub wave: i32,
    pub invited: Cell,
    pub claimed: Cell,
    pub share_claimed: Share,
}

/// The public aggregate behind `/statistics`, `/statistics.csv` and `/api/v1/statistics`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicStatistics {
    /// First and last day covered (UTC dates; the last is today).
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// People waiting now, per 2-digit postcode area.
    pub waiting_by_area: Vec<(String, Cell)>,
    /// Days that have any counter, oldest first.
    pub days: Vec<DayFigures>,
    /// Sums over the window.
    pub total_offered: Cell,
    pub total_placed: Cell,
    pub total_unused: Cell,
    /// Median over every offer filled in the window.
    pub median_fill_minutes: Median,
    pub waves: Vec<WaveFigures>,
}

/// What a waiting person is told about their odds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalOdds {
    /// 1 = the next to be invited among the people waiting within the person's radius.
    pub position: u64,
    /// People waiting within the radius, the person included.
    pub waiting_in_reach: u64,
    /// Doses offered in the person's areas (the 2-digit areas of the postcodes within their
    /// radius) over the last 7 and 30 days.
    pub offered_7_days: Cell,
    pub offered_30_days: Cell,
    pub wait: ExpectedWait,
}

/// A practice's own figures over one span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PracticeWindow {
    pub doses_placed: i64,
    pub median_fill_minutes: Option<f64>,
    /// no-shows ÷ (check-ins + no-shows); None before any was recorded.
    pub no_show_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PracticeFigures {
    pub last_30_days: PracticeWindow,
    pub all_time: PracticeWindow,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The first day "all time" starts from (before restdose existed).
fn beginning() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN)
}

impl Services {
    /// The public aggregate over the last `PUBLIC_WINDOW_DAYS` days (callers cache it).
    #[tracing::instrument(skip_all)]
    pub async fn public_statistics(&self) -> Result<PublicStatistics, ServiceError> {
        let to = self.clock.now().date_naive();
        let from = to - Duration::days(PUBLIC_WINDOW_DAYS - 1);
        let waiting = self.store.waiting_by_area().await?;
        let counters = self.store.stats(from, to).await?;
        let fills = self.store.fill_times(from, to, None).await?;
        let waves = self.store.wave_stats(from, to).await?;

        // Per day: offered, placed, unused; per day: fill-time histogram.
        let mut per_day: BTreeMap<NaiveDate, [u64; 3]> = BTreeMap::new();
        for row in &counters {
            let slot = match row.metric {
                Metric::DosesOffered => 0,
                Metric::DosesPlaced => 1,
                Metric::DosesUnused => 2,
                _ => continue,
            };
            per_day.entry(row.day).or_default()[slot] += count(row.value);
        }
        let mut fill_per_day: BTreeMap<NaiveDate, BTreeMap<i64, u64>> = BTreeMap::new();
        let mut fill_all: BTreeMap<i64, u64> = BTreeMap::new();
        for row in &fills {
            *fill_per_day
                .entry(row.day)
                .or_default()
                .entry(row.minutes)
                .or_default() += count(row.offers);
            *fill_all.entry(row.minutes).or_default() += count(row.offers);
        }
        let days: BTreeSet<NaiveDate> =
            per_day.keys().chain(fill_per_day.keys()).copied().collect();
        let histogram = |h: Option<&BTreeMap<i64, u64>>| -> Vec<(i64, u64)> {
            h.map(|h| h.iter().map(|(m, n)| (*m, *n)).collect())
                .unwrap_or_default()
        };
        let days: Vec<DayFigures> = days
            .into_iter()
            .map(|day| {
                let [offered, placed, unused] = per_day.get(&day).copied().unwrap_or_default();
                DayFigures {
                    day,
                    doses_offered: Cell::count(offered),
                    doses_placed: Cell::count(placed),
                    doses_unused: Cell::count(unused),
                    median_fill_minutes: published_median(&histogram(fill_per_day.get(&day))),
                }
            })
            .collect();
        let totals = per_day.values().fold([0u64; 3], |mut acc, d| {
            for i in 0..3 {
                acc[i] += d[i];
            }
            acc
        });

        let mut per_wave: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for row in &waves {
            let entry = per_wave.entry(row.wave).or_default();
            entry.0 += count(row.invited);
            entry.1 += count(row.claimed);
        }
        Ok(PublicStatistics {
            from,
            to,
            waiting_by_area: waiting
                .into_iter()
                .map(|a| (a.area, Cell::count(a.waiting)))
                .collect(),
            days,
            total_offered: Cell::count(totals[0]),
            total_placed: Cell::count(totals[1]),
            total_unused: Cell::count(totals[2]),
            median_fill_minutes: published_median(&histogram(Some(&fill_all))),
            waves: per_wave
                .into_iter()
                .map(|(wave, (invited, claimed))| WaveFigures {
                    wave,
                    invited: Cell::count(invited),
                    claimed: Cell::count(claimed),
                    share_claimed: share(claimed, invited),
                })
                .collect(),
        })
    }

    /// The odds of the person behind a self-service link; None unless they are waiting
    /// (confirmed and not paused).
    #[tracing::instrument(skip_all)]
    pub async fn personal_odds(&self, token: &str) -> Result<Option<PersonalOdds>, ServiceError> {
        let person = self.registrant_for(token).await?;
        if person.status != RegistrantStatus::Active {
            return Ok(None);
        }
        let postcodes: Vec<String> = self
            .neighbours
            .within(person.postcode.as_str(), f64::from(person.radius_km))
            .map(|(code, _)| code.to_owned())
            .collect();
        let areas: BTreeSet<String> = postcodes
            .iter()
            .map(|code| restdose_domain::postcode::area(code).to_owned())
            .collect();
        let position = self.store.waiting_position(person.id, &postcodes).await?;
        let today = self.clock.now().date_naive();
        let from_30 = today - Duration::days(ESTIMATE_WINDOW_DAYS - 1);
        let from_7 = today - Duration::days(6);
        let counters = self.store.stats(from_30, today).await?;
        let (mut offered_7, mut offered_30, mut placed_30) = (0u64, 0u64, 0u64);
        for row in counters.iter().filter(|r| areas.contains(&r.area)) {
            match row.metric {
                Metric::DosesOffered => {
                    offered_30 += count(row.value);
                    if row.day >= from_7 {
                        offered_7 += count(row.value);
                    }
                }
                Metric::DosesPlaced => placed_30 += count(row.value),
                _ => {}
            }
        }
        let place = position.ahead + 1;
        Ok(Some(PersonalOdds {
            position: place,
            waiting_in_reach: position.total.max(place),
            offered_7_days: Cell::count(offered_7),
            offered_30_days: Cell::count(offered_30),
            wait: expected_wait(place, placed_30, ESTIMATE_WINDOW_DAYS as u64),
        }))
    }

    /// The practice's own figures (doses placed, median time to fill, no-show rate) over the
    /// last 30 days and all time. `Forbidden` unless an approved practice.
    #[tracing::instrument(skip_all)]
    pub async fn practice_statistics(
        &self,
        principal: &Principal,
    ) -> Result<PracticeFigures, ServiceError> {
        let practice_id = principal.approved_practice()?;
        let today = self.clock.now().date_naive();
        Ok(PracticeFigures {
            last_30_days: self
                .practice_window(practice_id, today - Duration::days(29), today)
                .await?,
            all_time: self
                .practice_window(practice_id, beginning(), today)
                .await?,
        })
    }

    async fn practice_window(
        &self,
        practice_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<PracticeWindow, ServiceError> {
        let counts = self.store.practice_counts(practice_id, from, to).await?;
        let mut histogram: BTreeMap<i64, u64> = BTreeMap::new();
        for row in self.store.fill_times(from, to, Some(practice_id)).await? {
            *histogram.entry(row.minutes).or_default() += count(row.offers);
        }
        let histogram: Vec<(i64, u64)> = histogram.into_iter().collect();
        let attended = counts.checked_in + counts.no_show;
        Ok(PracticeWindow {
            doses_placed: counts.doses_placed,
            median_fill_minutes: median_minutes(&histogram),
            no_show_rate: (attended > 0).then(|| counts.no_show as f64 / attended as f64),
        })
    }
}
