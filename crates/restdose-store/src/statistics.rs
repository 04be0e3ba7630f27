//! Storage for the open statistics (docs/statistics.md): live counts of people waiting (no
//! personal data leaves the query) and the anonymous counters the purge of an offer writes
//! (`wave_stats`, `fill_times`, `practice_stats` next to `daily_stats`). Part of `Store`.

use async_trait::async_trait;
use chrono::NaiveDate;
use uuid::Uuid;

use crate::StoreResult;

/// People waiting (confirmed, not paused) in one 2-digit postcode area right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaCount {
    pub area: String,
    pub waiting: u64,
}

/// Where one person stands among the people waiting in a set of postcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingPosition {
    /// Waiting people in those postcodes who signed up earlier (ties broken by id, as the
    /// matcher does).
    pub ahead: u64,
    /// Waiting people in those postcodes, the person included if they wait there.
    pub total: u64,
}

/// Invitations sent and claimed in one wave number, on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveStatRow {
    pub day: NaiveDate,
    pub wave: i32,
    pub invited: i64,
    pub claimed: i64,
}

/// How many filled offers took `minutes` from posting to their last dose placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillTimeRow {
    pub day: NaiveDate,
    pub area: String,
    pub minutes: i64,
    pub offers: i64,
}

/// The per-practice counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PracticeCounts {
    pub doses_placed: i64,
    pub checked_in: i64,
    pub no_show: i64,
}

#[async_trait]
pub trait StatisticsStore: Send + Sync {
    /// People waiting (status active) per 2-digit area, ordered by area.
    async fn waiting_by_area(&self) -> StoreResult<Vec<AreaCount>>;

    /// The position of `registrant_id` among the people waiting in `postcodes`: how many of
    /// them signed up before the person (by `created_at`, then id), and how many there are.
    /// `NotFound` if the person is gone.
    async fn waiting_position(
        &self,
        registrant_id: Uuid,
        postcodes: &[String],
    ) -> StoreResult<WaitingPosition>;

    /// Wave counters with `from <= day <= to`, ordered by day, wave.
    async fn wave_stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WaveStatRow>>;

    /// Fill-time histogram rows with `from <= day <= to` (summed over practices, or of one
    /// practice), ordered by day, area, minutes.
    async fn fill_times(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        practice_id: Option<Uuid>,
    ) -> StoreResult<Vec<FillTimeRow>>;

    /// The practice's counters summed over `from <= day <= to`.
    async fn practice_counts(
        &self,
        practice_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<PracticeCounts>;
}
