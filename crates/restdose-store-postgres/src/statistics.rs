//! `StatisticsStore` for PostgreSQL (tables from `0005_statistics.sql`). The counters
//! themselves are written by the purge (lifecycle.rs).

use async_trait::async_trait;
use chrono::NaiveDate;
use restdose_store::{
    AreaCount, FillTimeRow, PracticeCounts, StatisticsStore, StoreError, StoreResult,
    WaitingPosition, WaveStatRow,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{PgStore, corrupt, db_error};

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
}

#[derive(FromRow)]
struct AreaRow {
    area: String,
    waiting: i64,
}

#[derive(FromRow)]
struct PositionRow {
    ahead: i64,
    total: i64,
}

#[derive(FromRow)]
struct WaveRow {
    day: NaiveDate,
    wave: i32,
    invited: i64,
    claimed: i64,
}

#[derive(FromRow)]
struct FillRow {
    day: NaiveDate,
    area: String,
    minutes: i32,
    offers: i64,
}

#[derive(FromRow)]
struct MetricRow {
    metric: String,
    value: i64,
}

#[async_trait]
impl StatisticsStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn waiting_by_area(&self) -> StoreResult<Vec<AreaCount>> {
        let rows: Vec<AreaRow> = sqlx::query_as(
            "SELECT area, waiting FROM ( \
                 SELECT substr(postcode, 1, 2) AS area, COUNT(*) AS waiting FROM registrants \
                 WHERE status = 'active' GROUP BY 1) AS counts \
             ORDER BY area COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(AreaCount {
                    area: r.area,
                    waiting: count(r.waiting)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(postcodes = postcodes.len()))]
    async fn waiting_position(
        &self,
        registrant_id: Uuid,
        postcodes: &[String],
    ) -> StoreResult<WaitingPosition> {
        let row: Option<PositionRow> = sqlx::query_as(
            "SELECT \
                 COUNT(*) FILTER (WHERE (r.created_at, r.id) < (me.created_at, me.id)) AS ahead, \
                 COUNT(r.id) AS total \
             FROM registrants me \
             LEFT JOIN registrants r ON r.status = 'active' AND r.postcode = ANY($2) \
             WHERE me.id = $1 GROUP BY me.id",
        )
        .bind(registrant_id)
        .bind(postcodes)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(WaitingPosition {
            ahead: count(row.ahead)?,
            total: count(row.total)?,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn wave_stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WaveStatRow>> {
        let rows: Vec<WaveRow> = sqlx::query_as(
            "SELECT day, wave, invited, claimed FROM wave_stats \
             WHERE day >= $1 AND day <= $2 ORDER BY day, wave",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| WaveStatRow {
                day: r.day,
                wave: r.wave,
                invited: r.invited,
                claimed: r.claimed,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn fill_times(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        practice_id: Option<Uuid>,
    ) -> StoreResult<Vec<FillTimeRow>> {
        let rows: Vec<FillRow> = sqlx::query_as(
            "SELECT day, area, minutes, SUM(offers)::BIGINT AS offers FROM fill_times \
             WHERE day >= $1 AND day <= $2 AND ($3::UUID IS NULL OR practice_id = $3) \
             GROUP BY day, area, minutes ORDER BY day, area COLLATE \"C\", minutes",
        )
        .bind(from)
        .bind(to)
        .bind(practice_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| FillTimeRow {
                day: r.day,
                area: r.area,
                minutes: i64::from(r.minutes),
                offers: r.offers,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn practice_counts(
        &self,
        practice_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<PracticeCounts> {
        let rows: Vec<MetricRow> = sqlx::query_as(
            "SELECT metric, SUM(value)::BIGINT AS value FROM practice_stats \
             WHERE practice_id = $1 AND day >= $2 AND day <= $3 GROUP BY metric",
        )
        .bind(practice_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut counts = PracticeCounts::default();
        for row in rows {
            match row.metric.as_str() {
                "doses_placed" => counts.doses_placed = row.value,
                "checked_in" => counts.checked_in = row.value,
                "no_show" => counts.no_show = row.value,
                other => return Err(corrupt(format!("unknown practice metric {other:?}"))),
            }
        }
        Ok(counts)
    }
}
