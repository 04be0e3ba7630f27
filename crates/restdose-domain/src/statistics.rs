//! The rules of the open statistics (docs/statistics.md), without I/O: small-cell
//! suppression, the median of a fill-time histogram, and the expected-wait range a person is
//! shown.

/// Counts from 1 to `SUPPRESS_BELOW - 1` are never published.
pub const SUPPRESS_BELOW: u64 = 10;

/// A published count: its value, or suppressed because it is small (1–9). Zero is published:
/// a true zero says nothing about anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Value(u64),
    Suppressed,
}

impl Cell {
    pub fn count(n: u64) -> Cell {
        if n > 0 && n < SUPPRESS_BELOW {
            Cell::Suppressed
        } else {
            Cell::Value(n)
        }
    }

    /// Like `count`, for a signed counter (negative values count as zero).
    pub fn count_i64(n: i64) -> Cell {
        Cell::count(u64::try_from(n).unwrap_or(0))
    }

    pub fn value(self) -> Option<u64> {
        match self {
            Cell::Value(v) => Some(v),
            Cell::Suppressed => None,
        }
    }

    pub fn is_suppressed(self) -> bool {
        self == Cell::Suppressed
    }
}

/// A share (0–1) derived from two counts; suppressed when either count would be (so the
/// share cannot give a small count away), and absent when there is nothing to divide by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Value(f64),
    Suppressed,
    NoData,
}

pub fn share(part: u64, whole: u64) -> Share {
    if whole == 0 {
        return Share::NoData;
    }
    if Cell::count(part).is_suppressed() || Cell::count(whole).is_suppressed() {
        return Share::Suppressed;
    }
    Share::Value(part as f64 / whole as f64)
}

/// The median of a histogram of (minutes, how many) pairs, in minutes: the middle value, or
/// the mean of the two middle values. None when empty.
pub fn median_minutes(histogram: &[(i64, u64)]) -> Option<f64> {
    let mut sorted: Vec<(i64, u64)> = histogram.iter().copied().filter(|(_, n)| *n > 0).collect();
    sorted.sort_unstable();
    let total: u64 = sorted.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // 0-based ranks of the middle element(s).
    let lower = (total - 1) / 2;
    let upper = total / 2;
    let at = |rank: u64| {
        let mut seen = 0;
        for (minutes, n) in &sorted {
            seen += n;
            if rank < seen {
                return *minutes;
            }
        }
        sorted.last().map_or(0, |(m, _)| *m)
    };
    Some((at(lower) as f64 + at(upper) as f64) / 2.0)
}

/// A median published only when it rests on at least `SUPPRESS_BELOW` offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Median {
    Minutes(f64),
    Suppressed,
    NoData,
}

pub fn published_median(histogram: &[(i64, u64)]) -> Median {
    let total: u64 = histogram.iter().map(|(_, n)| n).sum();
    match median_minutes(histogram) {
        None => Median::NoData,
        Some(_) if total < SUPPRESS_BELOW => Median::Suppressed,
        Some(m) => Median::Minutes(m),
    }
}

/// Fewer doses placed in reach over the estimation window than this: no estimate.
pub const MIN_PLACED_FOR_ESTIMATE: u64 = SUPPRESS_BELOW;

/// What a person is told about their wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedWait {
    /// Too few doses were placed within reach to estimate.
    NotEnoughData,
    /// Between `low` and `high` days (whole days, `low <= high`, `high >= 1`).
    Days { low: u64, high: u64 },
}

/// The expected wait of someone at `position` (1 = next) when `placed` doses were placed
/// within their reach over the last `window_days` days: position ÷ (placed per day), shown as
/// a range from half to twice that (offers come in bursts), rounded out to whole days.
pub fn expected_wait(position: u64, placed: u64, window_days: u64) -> ExpectedWait {
    if placed < MIN_PLACED_FOR_ESTIMATE || window_days == 0 || position == 0 {
        return ExpectedWait::NotEnoughData;
    }
    let days = position as f64 * window_days as f64 / placed as f64;
    let low = (days / 2.0).floor() as u64;
    let high = ((days * 2.0).ceil() as u64).max(1);
    ExpectedWait::Days { low, high }
}

/// A plain-language unit for a range of days: days up to two weeks, then weeks, then months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitWords {
    Days { low: u64, high: u64 },
    Weeks { low: u64, high: u64 },
    Months { low: u64, high: u64 },
}

pub fn wait_words(low_days: u64, high_days: u64) -> WaitWords {
    if high_days <= 14 {
        WaitWords::Days {
            low: low_days,
            high: high_days,
        }
    } else if high_days <= 90 {
        WaitWords::Weeks {
            low: low_days / 7,
            high: high_days.div_ceil(7),
        }
    } else {
        WaitWords::Months {
            low: low_days / 30,
            high: high_days.div_ceil(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed_zero_and_ten_are_not() {
        assert_eq!(Cell::count(0), Cell::Value(0));
        for n in 1..10 {
            assert_eq!(Cell::count(n), Cell::Suppressed, "{n}");
        }
        assert_eq!(Cell::count(10), Cell::Value(10));
        assert_eq!(Cell::count_i64(-3), Cell::Value(0));
        assert_eq!(Cell::count_i64(12).value(), Some(12));
    }

    #[test]
    fn shares_from_small_counts_are_suppressed() {
        assert_eq!(share(5, 0), Share::NoData);
        assert_eq!(share(3, 9), Share::Suppressed);
        assert_eq!(share(3, 20), Share::Suppressed);
        assert_eq!(share(0, 20), Share::Value(0.0));
        assert_eq!(share(10, 40), Share::Value(0.25));
    }

    #[test]
    fn median_of_histograms() {
        assert_eq!(median_minutes(&[]), None);
        assert_eq!(median_minutes(&[(7, 0)]), None);
        assert_eq!(median_minutes(&[(30, 1)]), Some(30.0));
        // 10, 20, 20, 40 -> (20 + 20) / 2
        assert_eq!(median_minutes(&[(40, 1), (10, 1), (20, 2)]), Some(20.0));
        // 10, 30 -> 20
        assert_eq!(median_minutes(&[(30, 1), (10, 1)]), Some(20.0));
        // 5 x 1, 6 x 100 -> 100
        assert_eq!(median_minutes(&[(1, 5), (100, 6)]), Some(100.0));
    }

    #[test]
    fn medians_of_few_offers_are_suppressed() {
        assert_eq!(published_median(&[]), Median::NoData);
        assert_eq!(published_median(&[(12, 9)]), Median::Suppressed);
        assert_eq!(published_median(&[(12, 9), (14, 1)]), Median::Minutes(12.0));
    }

    #[test]
    fn expected_wait_is_a_range_around_position_over_rate() {
        assert_eq!(expected_wait(5, 9, 30), ExpectedWait::NotEnoughData);
        assert_eq!(expected_wait(0, 90, 30), ExpectedWait::NotEnoughData);
        // 30 placed in 30 days = 1 a day; position 10 -> 10 days -> 5 to 20.
        assert_eq!(
            expected_wait(10, 30, 30),
            ExpectedWait::Days { low: 5, high: 20 }
        );
        // Next in line with plenty of doses: 0 to 1 day.
        assert_eq!(
            expected_wait(1, 300, 30),
            ExpectedWait::Days { low: 0, high: 1 }
        );
    }

    #[test]
    fn wait_words_pick_a_readable_unit() {
        assert_eq!(wait_words(2, 8), WaitWords::Days { low: 2, high: 8 });
        assert_eq!(wait_words(5, 20), WaitWords::Weeks { low: 0, high: 3 });
        assert_eq!(wait_words(60, 240), WaitWords::Months { low: 2, high: 8 });
    }
}
