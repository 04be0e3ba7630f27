//! `LifecycleStore`: the purge after an appointment (keeping anonymous daily counters), expiry
//! of sessions and account links, the inactivity purge, and key rotation (tables from
//! `0004_lifecycle.sql`; days are `Day`).
//!
//! Each offer is purged in its own write transaction, so it is counted into `daily_stats`
//! exactly once. PostgreSQL lets several workers purge at once: each takes an offer with
//! `FOR UPDATE SKIP LOCKED` (`dialect::SKIP_LOCKED`), and the people of an offer are locked
//! in id order before they are deleted, so two workers purging offers that share people wait
//! for each other instead of deadlocking. SQLite's `BEGIN IMMEDIATE` holds the write lock
//! instead: the offer is read, counted and deleted under it.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use macro_rules_attribute::apply;
use restdose_store::{
    Ciphertext, EncryptedColumn, LifecycleStore, Metric, OutboxRow, PurgePreview, PurgedOffer,
    Registrant, StatRow, StoreResult,
};
use sqlx::{FromRow, QueryBuilder};
use uuid::Uuid;

use crate::encode::{Day, Ts};
use crate::registrants::{REGISTRANT_COLUMNS, RegistrantRow};
use crate::{SqlStore, corrupt, count, for_both_databases};

/// Counter tables for `add_counters_on`: (table, key column, primary key).
const DAILY_STATS: (&str, &str, &str) = ("daily_stats", "area", "day, area, metric");
const PRACTICE_STATS: (&str, &str, &str) =
    ("practice_stats", "practice_id", "practice_id, day, metric");

/// The booking statuses of people who came (or were due to): they go with the offer.
const STATUSES_OF_PEOPLE_WHO_GO: &str = "'booked', 'checked_in', 'no_show'";

#[derive(FromRow)]
struct FinishedOfferRow {
    id: Uuid,
    practice_id: Uuid,
    doses: i32,
    postcode: String,
    starts_at: Ts,
    created_at: Ts,
}

/// Table and columns of an encrypted column: (table, key id column, ciphertext column).
/// Only these constants are ever put into SQL text.
fn encrypted_column(column: EncryptedColumn) -> (&'static str, &'static str, &'static str) {
    match column {
        EncryptedColumn::RegistrantEmail => ("registrants", "email_key_id", "email_ciphertext"),
        EncryptedColumn::OutboxPayload => ("outbox", "key_id", "payload"),
    }
}

/// Whole minutes from posting to the last dose placed (never negative; saturating).
fn fill_minutes(created_at: DateTime<Utc>, last_placed_at: DateTime<Utc>) -> i32 {
    let minutes = (last_placed_at - created_at).num_minutes().max(0);
    i32::try_from(minutes).unwrap_or(i32::MAX)
}

#[apply(for_both_databases!)]
impl SqlStore<Db> {
    /// Adds to counters of one day (`daily_stats` by area, `practice_stats` by practice),
    /// creating them, in one statement: `counters` are (metric, by) and name each metric once.
    async fn add_counters_on<K>(
        conn: &mut <Db as sqlx::Database>::Connection,
        (table, key_column, conflict): (&str, &str, &str),
        day: NaiveDate,
        key: K,
        counters: &[(&str, i64)],
    ) -> StoreResult<()>
    where
        K: Copy + for<'t> sqlx::Encode<'t, Db> + sqlx::Type<Db>,
    {
        if counters.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::<Db>::new(format!(
            "INSERT INTO {table} (day, {key_column}, metric, value) "
        ));
        insert.push_values(counters, |mut row, (metric, by)| {
            row.push_bind(Day(day))
                .push_bind(key)
                .push_bind(*metric)
                .push_bind(*by);
        });
        insert.push(format!(
            " ON CONFLICT ({conflict}) DO UPDATE SET value = {table}.value + excluded.value"
        ));
        insert.build().execute(&mut *conn).await.map_err(db_error)?;
        Ok(())
    }

    /// The counters of the open statistics (`0005_statistics.sql`) for one offer being purged:
    /// invitations and claims per wave, the practice's placed / checked-in / no-show doses, and
    /// the time from posting to the last dose placed if the offer was filled.
    async fn add_open_statistics_on(
        conn: &mut <Db as sqlx::Database>::Connection,
        offer: &FinishedOfferRow,
        day: NaiveDate,
        area: &str,
        placed: i64,
    ) -> StoreResult<()> {
        // Counted and added in one statement (the sources read the waves, then wrote each).
        sqlx::query(
            "INSERT INTO wave_stats (day, wave, invited, claimed) \
             SELECT $1, i.wave, COUNT(*), COUNT(*) FILTER (WHERE EXISTS \
                 (SELECT 1 FROM bookings b WHERE b.invitation_id = i.id)) \
             FROM invitations i WHERE i.offer_id = $2 GROUP BY i.wave \
             ON CONFLICT (day, wave) DO UPDATE SET \
                 invited = wave_stats.invited + excluded.invited, \
                 claimed = wave_stats.claimed + excluded.claimed",
        )
        .bind(Day(day))
        .bind(offer.id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        let (checked_in, no_show, last_placed_at): (i64, i64, Option<Ts>) = sqlx::query_as(
            "SELECT \
                 COUNT(*) FILTER (WHERE status = 'checked_in'), \
                 COUNT(*) FILTER (WHERE status = 'no_show'), \
                 MAX(created_at) FILTER (WHERE status IN ('booked', 'checked_in', 'no_show')) \
             FROM bookings WHERE offer_id = $1",
        )
        .bind(offer.id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let counters: Vec<(&str, i64)> = [
            ("doses_placed", placed),
            ("checked_in", checked_in),
            ("no_show", no_show),
        ]
        .into_iter()
        .filter(|(_, value)| *value != 0)
        .collect();
        Self::add_counters_on(conn, PRACTICE_STATS, day, offer.practice_id, &counters).await?;
        // Filled: every dose went to someone who booked (no-shows included: the dose was placed).
        let filled = no_show + placed >= i64::from(offer.doses);
        if let (true, Some(last)) = (filled, last_placed_at) {
            sqlx::query(
                "INSERT INTO fill_times (day, area, practice_id, minutes, offers) \
                 VALUES ($1, $2, $3, $4, 1) \
                 ON CONFLICT (day, area, practice_id, minutes) \
                     DO UPDATE SET offers = fill_times.offers + 1",
            )
            .bind(Day(day))
            .bind(area)
            .bind(offer.practice_id)
            .bind(fill_minutes(offer.created_at.0, last.0))
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }

    /// Purges the oldest finished offer (on PostgreSQL: that no other worker holds) in one
    /// transaction; None when there is none left.
    async fn purge_one_offer(
        &self,
        ended_before: DateTime<Utc>,
    ) -> StoreResult<Option<PurgedOffer>> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        let offer: Option<FinishedOfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, practice_id, doses, postcode, starts_at, created_at FROM offers \
             WHERE ends_at < $1 \
             ORDER BY ends_at, id \
             LIMIT 1 {}",
            dialect::SKIP_LOCKED
        )))
        .bind(Ts(ended_before))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(offer) = offer else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(None);
        };

        // Counted from the rows, before anything is deleted.
        let (placed, claims, invitations): (i64, i64, i64) = sqlx::query_as(
            "SELECT \
                 (SELECT COUNT(*) FROM bookings \
                     WHERE offer_id = $1 AND status IN ('booked', 'checked_in')) AS placed, \
                 (SELECT COUNT(*) FROM bookings WHERE offer_id = $1) AS claims, \
                 (SELECT COUNT(*) FROM invitations WHERE offer_id = $1) AS invitations",
        )
        .bind(offer.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let doses = i64::from(offer.doses);
        let day = offer.starts_at.0.date_naive();
        let area = restdose_domain::postcode::area(&offer.postcode).to_owned();
        let counters = [
            (Metric::Offers, 1),
            (Metric::DosesOffered, doses),
            (Metric::DosesPlaced, placed),
            (Metric::DosesUnused, (doses - placed).max(0)),
            (Metric::Invitations, invitations),
            (Metric::Claims, claims),
        ]
        .map(|(metric, value)| (metric.as_str(), value));
        Self::add_counters_on(&mut tx, DAILY_STATS, day, area.as_str(), &counters).await?;
        Self::add_open_statistics_on(&mut tx, &offer, day, &area, placed).await?;

        // The people who came (or were due to), listed (and on PostgreSQL locked, in id order)
        // first: deleting them rewrites the bookings the list comes from. Their tokens,
        // invitations and mails go by cascade, their other bookings keep no link to them.
        let people: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM registrants WHERE id IN ( \
                 SELECT registrant_id FROM bookings \
                 WHERE offer_id = $1 AND status IN ({STATUSES_OF_PEOPLE_WHO_GO})) \
             ORDER BY id {}",
            dialect::FOR_UPDATE
        )))
        .bind(offer.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let people_deleted = if people.is_empty() {
            0
        } else {
            let mut delete = QueryBuilder::<Db>::new("DELETE FROM registrants WHERE id IN (");
            let mut ids = delete.separated(", ");
            for person in &people {
                ids.push_bind(*person);
            }
            delete.push(")");
            delete
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected()
        };
        // Invitations, bookings and mails of the offer go by cascade.
        sqlx::query("DELETE FROM offers WHERE id = $1")
            .bind(offer.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(PurgedOffer {
            offer_id: offer.id,
            people_deleted,
        }))
    }

    /// Runs a purge (`DELETE`) whose one parameter `$1` is a time; returns how many rows went.
    async fn lifecycle_delete(&self, sql: &'static str, t: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(sql)
            .bind(Ts(t))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

#[apply(for_both_databases!)]
#[async_trait]
impl LifecycleStore for SqlStore<Db> {
    #[tracing::instrument(skip_all, fields(limit = limit, purged))]
    async fn purge_finished_offers(
        &self,
        ended_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PurgedOffer>> {
        let mut purged = Vec::new();
        while purged.len() < limit as usize {
            match self.purge_one_offer(ended_before).await? {
                Some(offer) => purged.push(offer),
                None => break,
            }
        }
        tracing::Span::current().record("purged", purged.len());
        Ok(purged)
    }

    #[tracing::instrument(skip_all, fields(metric = metric.as_str()))]
    async fn bump_stat(
        &self,
        day: NaiveDate,
        area: &str,
        metric: Metric,
        by: i64,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let counter = [(metric.as_str(), by)];
        Self::add_counters_on(&mut conn, DAILY_STATS, day, area, &counter).await
    }

    #[tracing::instrument(skip_all)]
    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<StatRow>> {
        let rows: Vec<(Day, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, area, metric, value FROM daily_stats \
             WHERE day >= $1 AND day <= $2 \
             ORDER BY day, area {0}, metric {0}",
            dialect::BYTEWISE
        )))
        .bind(Day(from))
        .bind(Day(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(day, area, metric, value)| {
                Ok(StatRow {
                    metric: Metric::parse(&metric)
                        .ok_or_else(|| corrupt(format!("unknown metric {metric:?}")))?,
                    day: day.0,
                    area,
                    value,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.lifecycle_delete("DELETE FROM sessions WHERE expires_at <= $1", now)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_account_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.lifecycle_delete("DELETE FROM account_tokens WHERE expires_at <= $1", now)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_rate_counters(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.lifecycle_delete("DELETE FROM rate_counters WHERE window_start < $1", before)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_old_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.lifecycle_delete(
            "DELETE FROM login_throttle \
             WHERE last_failure_at < $1 AND (locked_until IS NULL OR locked_until <= $1)",
            before,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(limit = limit))]
    async fn paused_to_warn(
        &self,
        paused_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Registrant>> {
        let rows: Vec<RegistrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRANT_COLUMNS} FROM registrants \
             WHERE status = 'paused' AND paused_at < $1 AND inactivity_warned_at IS NULL \
             ORDER BY paused_at, id \
             LIMIT $2"
        )))
        .bind(Ts(paused_before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Registrant::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(registrant = %registrant_id, mail = %mail.id))]
    async fn mark_inactivity_warned(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
        mail: &OutboxRow,
    ) -> StoreResult<bool> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        let warned = sqlx::query(
            "UPDATE registrants SET inactivity_warned_at = $2 \
             WHERE id = $1 AND status = 'paused'",
        )
        .bind(registrant_id)
        .bind(Ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if warned.rows_affected() == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        Self::insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_inactive_paused(&self, warned_before: DateTime<Utc>) -> StoreResult<u64> {
        self.lifecycle_delete(
            "DELETE FROM registrants WHERE status = 'paused' AND inactivity_warned_at < $1",
            warned_before,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_preview(
        &self,
        offers_ended_before: DateTime<Utc>,
        unconfirmed_before: DateTime<Utc>,
        now: DateTime<Utc>,
        warned_before: DateTime<Utc>,
    ) -> StoreResult<PurgePreview> {
        // The same conditions as the purges themselves; a person booked on several finished
        // offers is deleted once, so counted once.
        let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT \
                 (SELECT COUNT(*) FROM offers WHERE ends_at < $1) AS finished_offers, \
                 (SELECT COUNT(DISTINCT b.registrant_id) FROM bookings b \
                     JOIN offers o ON o.id = b.offer_id \
                     WHERE o.ends_at < $1 AND b.registrant_id IS NOT NULL \
                       AND b.status IN ({STATUSES_OF_PEOPLE_WHO_GO})) \
                     AS people_of_finished_offers, \
                 (SELECT COUNT(*) FROM registrants \
                     WHERE status = 'pending' AND COALESCE(last_mail_at, created_at) < $2) \
                     AS unconfirmed, \
                 (SELECT COUNT(*) FROM registrant_tokens WHERE expires_at <= $3) \
                     + (SELECT COUNT(*) FROM account_tokens WHERE expires_at <= $3) \
                     AS expired_links, \
                 (SELECT COUNT(*) FROM sessions WHERE expires_at <= $3) AS expired_sessions, \
                 (SELECT COUNT(*) FROM registrants \
                     WHERE status = 'paused' AND inactivity_warned_at < $4) AS inactive_paused"
        )))
        .bind(Ts(offers_ended_before))
        .bind(Ts(unconfirmed_before))
        .bind(Ts(now))
        .bind(Ts(warned_before))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(PurgePreview {
            finished_offers: count(row.0)?,
            people_of_finished_offers: count(row.1)?,
            unconfirmed: count(row.2)?,
            expired_links: count(row.3)?,
            expired_sessions: count(row.4)?,
            inactive_paused: count(row.5)?,
        })
    }

    // --- key rotation ------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(column = ?column, key_id = key_id, limit = limit))]
    async fn ciphertexts_not_under(
        &self,
        column: EncryptedColumn,
        key_id: i32,
        limit: u32,
    ) -> StoreResult<Vec<Ciphertext>> {
        let (table, key_column, blob_column) = encrypted_column(column);
        let rows: Vec<(Uuid, i32, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {key_column} AS key_id, {blob_column} AS blob FROM {table} \
             WHERE {key_column} <> $1 \
             ORDER BY id \
             LIMIT $2"
        )))
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, key_id, blob)| Ciphertext { id, key_id, blob })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(column = ?column, id = %old.id, from = old.key_id, to = new_key_id))]
    async fn replace_ciphertext(
        &self,
        column: EncryptedColumn,
        old: &Ciphertext,
        new_key_id: i32,
        new_blob: &[u8],
    ) -> StoreResult<bool> {
        let (table, key_column, blob_column) = encrypted_column(column);
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {key_column} = $4, {blob_column} = $5 \
             WHERE id = $1 AND {key_column} = $2 AND {blob_column} = $3"
        )))
        .bind(old.id)
        .bind(old.key_id)
        .bind(&old.blob)
        .bind(new_key_id)
        .bind(new_blob)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(column = ?column))]
    async fn ciphertexts_by_key(&self, column: EncryptedColumn) -> StoreResult<Vec<(i32, u64)>> {
        let (table, key_column, _) = encrypted_column(column);
        let rows: Vec<(i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {key_column}, COUNT(*) FROM {table} GROUP BY {key_column} ORDER BY {key_column}"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(key_id, n)| Ok((key_id, count(n)?)))
            .collect()
    }
}
