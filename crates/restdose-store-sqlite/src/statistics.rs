//! `StatisticsStore` for SQLite (tables from `0005_statistics.sql`; days are TEXT
//! 'YYYY-MM-DD'). The counters themselves are written by the purge (lifecycle.rs).

use async_trait::async_trait;
use chrono::NaiveDate;
use restdose_store::{
    AreaCount, FillTimeRow, PracticeCounts, StatisticsStore, StoreError, StoreResult,
    WaitingPosition, WaveStatRow,
};
use sqlx::{FromRow, QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::{SqliteStore, corrupt, db_error};

const DAY_FORMAT: &str = "%Y-%m-%d";

fn day_to_db(day: NaiveDate) -> String {
    day.format(DAY_FORMAT).to_string()
}

fn day_from_db(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(s, DAY_FORMAT).map_err(|_| corrupt(format!("bad day {s:?}")))
}

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
}

#[derive(FromRow)]
struct AreaRow {
    area: String,
    waiting: i64,
}

#[derive(FromRow)]
struct PersonRow {
    created_at: i64,
}

#[derive(FromRow)]
struct PositionRow {
    ahead: i64,
    total: i64,
}

#[derive(FromRow)]
struct WaveRow {
    day: String,
    wave: i64,
    invited: i64,
    claimed: i64,
}

#[derive(FromRow)]
struct FillRow {
    day: String,
    area: String,
    minutes: i64,
    offers: i64,
}

#[derive(FromRow)]
struct MetricRow {
    metric: String,
    value: i64,
}

#[async_trait]
impl StatisticsStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn waiting_by_area(&self) -> StoreResult<Vec<AreaCount>> {
        let rows: Vec<AreaRow> = sqlx::query_as(
            "SELECT substr(postcode, 1, 2) AS area, COUNT(*) AS waiting FROM registrants \
             WHERE status = 'active' GROUP BY substr(postcode, 1, 2) ORDER BY area",
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let person: Option<PersonRow> =
            sqlx::query_as("SELECT created_at FROM registrants WHERE id = ?1")
                .bind(registrant_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some(person) = person else {
            return Err(StoreError::NotFound);
        };
        if postcodes.is_empty() {
            return Ok(WaitingPosition { ahead: 0, total: 0 });
        }
        let mut query = QueryBuilder::<Sqlite>::new("SELECT COALESCE(SUM(CASE WHEN created_at < ");
        query
            .push_bind(person.created_at)
            .push(" OR (created_at = ")
            .push_bind(person.created_at)
            .push(" AND id < ")
            .push_bind(registrant_id)
            .push(
                ") THEN 1 ELSE 0 END), 0) AS ahead, COUNT(*) AS total FROM registrants \
                   WHERE status = 'active' AND postcode IN (",
            );
        let mut separated = query.separated(", ");
        for code in postcodes {
            separated.push_bind(code);
        }
        query.push(")");
        let row: PositionRow = query
            .build_query_as()
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.rollback().await.map_err(db_error)?;
        Ok(WaitingPosition {
            ahead: count(row.ahead)?,
            total: count(row.total)?,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn wave_stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WaveStatRow>> {
        let rows: Vec<WaveRow> = sqlx::query_as(
            "SELECT day, wave, invited, claimed FROM wave_stats \
             WHERE day >= ?1 AND day <= ?2 ORDER BY day, wave",
        )
        .bind(day_to_db(from))
        .bind(day_to_db(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(WaveStatRow {
                    day: day_from_db(&r.day)?,
                    wave: i32::try_from(r.wave)
                        .map_err(|_| corrupt(format!("wave out of range: {}", r.wave)))?,
                    invited: r.invited,
                    claimed: r.claimed,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn fill_times(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        practice_id: Option<Uuid>,
    ) -> StoreResult<Vec<FillTimeRow>> {
        let rows: Vec<FillRow> = sqlx::query_as(
            "SELECT day, area, minutes, SUM(offers) AS offers FROM fill_times \
             WHERE day >= ?1 AND day <= ?2 AND (?3 IS NULL OR practice_id = ?3) \
             GROUP BY day, area, minutes ORDER BY day, area, minutes",
        )
        .bind(day_to_db(from))
        .bind(day_to_db(to))
        .bind(practice_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(FillTimeRow {
                    day: day_from_db(&r.day)?,
                    area: r.area,
                    minutes: r.minutes,
                    offers: r.offers,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn practice_counts(
        &self,
        practice_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<PracticeCounts> {
        let rows: Vec<MetricRow> = sqlx::query_as(
            "SELECT metric, SUM(value) AS value FROM practice_stats \
             WHERE practice_id = ?1 AND day >= ?2 AND day <= ?3 GROUP BY metric",
        )
        .bind(practice_id)
        .bind(day_to_db(from))
        .bind(day_to_db(to))
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
