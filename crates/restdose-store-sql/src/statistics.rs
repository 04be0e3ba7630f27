//! `StatisticsStore` (tables from `0005_statistics.sql`; days are `Day`). The counters
//! themselves are written by the purge (lifecycle.rs).

use async_trait::async_trait;
use chrono::NaiveDate;
use macro_rules_attribute::apply;
use restdose_store::{
    AreaCount, FillTimeRow, PracticeCounts, StatisticsStore, StoreError, StoreResult,
    WaitingPosition, WaveStatRow,
};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::encode::Day;
use crate::{SqlStore, corrupt, count, for_both_databases};

#[apply(for_both_databases!)]
#[async_trait]
impl StatisticsStore for SqlStore<Db> {
    #[tracing::instrument(skip_all)]
    async fn waiting_by_area(&self) -> StoreResult<Vec<AreaCount>> {
        // The subquery lets PostgreSQL order the output column bytewise.
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT area, waiting FROM ( \
                 SELECT substr(postcode, 1, 2) AS area, COUNT(*) AS waiting FROM registrants \
                 WHERE status = 'active' GROUP BY substr(postcode, 1, 2)) AS counts \
             ORDER BY area {}",
            dialect::BYTEWISE
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(area, n)| {
                Ok(AreaCount {
                    area,
                    waiting: count(n)?,
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
        // One statement (PostgreSQL's bound `= ANY($2)` array and SQLite's read of the person,
        // then of the count, in one transaction before): the person's row is joined to the
        // people waiting in `postcodes`; no row means the person is gone. An empty list is
        // `IN (NULL)`, which matches nobody.
        let mut query = QueryBuilder::<Db>::new(
            "SELECT \
                 COUNT(*) FILTER (WHERE (r.created_at, r.id) < (me.created_at, me.id)) AS ahead, \
                 COUNT(r.id) AS total \
             FROM registrants me \
             LEFT JOIN registrants r ON r.status = 'active' AND r.postcode IN (",
        );
        if postcodes.is_empty() {
            query.push("NULL");
        }
        let mut list = query.separated(", ");
        for code in postcodes {
            list.push_bind(code);
        }
        query.push(") WHERE me.id = ").push_bind(registrant_id);
        query.push(" GROUP BY me.id");
        let row: Option<(i64, i64)> = query
            .build_query_as()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let (ahead, total) = row.ok_or(StoreError::NotFound)?;
        Ok(WaitingPosition {
            ahead: count(ahead)?,
            total: count(total)?,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn wave_stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WaveStatRow>> {
        let rows: Vec<(Day, i32, i64, i64)> = sqlx::query_as(
            "SELECT day, wave, invited, claimed FROM wave_stats \
             WHERE day >= $1 AND day <= $2 ORDER BY day, wave",
        )
        .bind(Day(from))
        .bind(Day(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(day, wave, invited, claimed)| WaveStatRow {
                day: day.0,
                wave,
                invited,
                claimed,
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
        // PostgreSQL sums BIGINT to numeric: cast back. sqlx sends $3's type (uuid), so
        // `$3 IS NULL` needs no cast.
        let rows: Vec<(Day, String, i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, area, minutes, CAST(SUM(offers) AS BIGINT) AS offers FROM fill_times \
             WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR practice_id = $3) \
             GROUP BY day, area, minutes ORDER BY day, area {}, minutes",
            dialect::BYTEWISE
        )))
        .bind(Day(from))
        .bind(Day(to))
        .bind(practice_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(day, area, minutes, offers)| FillTimeRow {
                day: day.0,
                area,
                minutes: i64::from(minutes),
                offers,
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
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT metric, CAST(SUM(value) AS BIGINT) AS value FROM practice_stats \
             WHERE practice_id = $1 AND day >= $2 AND day <= $3 GROUP BY metric",
        )
        .bind(practice_id)
        .bind(Day(from))
        .bind(Day(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut counts = PracticeCounts::default();
        for (metric, value) in rows {
            match metric.as_str() {
                "doses_placed" => counts.doses_placed = value,
                "checked_in" => counts.checked_in = value,
                "no_show" => counts.no_show = value,
                other => return Err(corrupt(format!("unknown practice metric {other:?}"))),
            }
        }
        Ok(counts)
    }
}
