//! `LifecycleStore` for SQLite: the purge after an appointment (keeping anonymous daily
//! counters), expiry of sessions and account links, the inactivity purge, and key rotation
//! (tables from `0004_lifecycle.sql`; days are TEXT 'YYYY-MM-DD').
//!
//! Each offer is purged in its own `BEGIN IMMEDIATE` transaction: it is read, counted and
//! deleted under the write lock, so it is counted into `daily_stats` exactly once.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use restdose_store::{
    Ciphertext, EncryptedColumn, LifecycleStore, Metric, OutboxRow, PurgePreview, PurgedOffer,
    Registrant, StatRow, StoreResult,
};
use sqlx::{FromRow, SqliteConnection};
use uuid::Uuid;

use crate::{
    BEGIN_WRITE, REGISTRANT_COLUMNS, RegistrantRow, SqliteStore, corrupt, db_error, millis,
};

/// The booking statuses of people who came (or were due to): they go with the offer.
const STATUSES_OF_PEOPLE_WHO_GO: &str = "'booked', 'checked_in', 'no_show'";

/// How days are stored.
const DAY_FORMAT: &str = "%Y-%m-%d";

#[derive(FromRow)]
struct FinishedOfferRow {
    id: Uuid,
    practice_id: Uuid,
    doses: i64,
    postcode: String,
    starts_at: i64,
    created_at: i64,
}

#[derive(FromRow)]
struct BookingCountsRow {
    checked_in: i64,
    no_show: i64,
    last_placed_at: Option<i64>,
}

#[derive(FromRow)]
struct WaveCountsRow {
    wave: i64,
    invited: i64,
    claimed: i64,
}

#[derive(FromRow)]
struct OfferCountsRow {
    placed: i64,
    claims: i64,
    invitations: i64,
}

#[derive(FromRow)]
struct StatDbRow {
    day: String,
    area: String,
    metric: String,
    value: i64,
}

#[derive(FromRow)]
struct CiphertextRow {
    id: Uuid,
    key_id: i64,
    blob: Vec<u8>,
}

#[derive(FromRow)]
struct PreviewRow {
    finished_offers: i64,
    people_of_finished_offers: i64,
    unconfirmed: i64,
    expired_links: i64,
    expired_sessions: i64,
    inactive_paused: i64,
}

/// Table and columns of an encrypted column: (table, key id column, ciphertext column).
/// Only these constants are ever put into SQL text.
fn encrypted_column(column: EncryptedColumn) -> (&'static str, &'static str, &'static str) {
    match column {
        EncryptedColumn::RegistrantEmail => ("registrants", "email_key_id", "email_ciphertext"),
        EncryptedColumn::OutboxPayload => ("outbox", "key_id", "payload"),
    }
}

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
}

fn key_id_from_db(value: i64, id: Uuid) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| corrupt(format!("key id of {id} out of range: {value}")))
}

fn day_to_db(day: NaiveDate) -> String {
    day.format(DAY_FORMAT).to_string()
}

fn day_from_db(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(s, DAY_FORMAT).map_err(|_| corrupt(format!("bad day {s:?}")))
}

/// The 2-digit postcode area the counters are kept by.
fn area_of(postcode: &str) -> String {
    postcode.chars().take(2).collect()
}

/// Adds `by` to a counter, creating it.
async fn add_stat_on(
    conn: &mut SqliteConnection,
    day: NaiveDate,
    area: &str,
    metric: Metric,
    by: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO daily_stats (day, area, metric, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (day, area, metric) DO UPDATE SET value = daily_stats.value + excluded.value",
    )
    .bind(day_to_db(day))
    .bind(area)
    .bind(metric.as_str())
    .bind(by)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The counters of the open statistics (`0005_statistics.sql`) for one offer being purged:
/// invitations and claims per wave, the practice's placed / checked-in / no-show doses, and
/// the time from posting to the last dose placed if the offer was filled.
async fn add_statistics_on(
    conn: &mut SqliteConnection,
    offer: &FinishedOfferRow,
    day: NaiveDate,
    area: &str,
    placed: i64,
) -> StoreResult<()> {
    let waves: Vec<WaveCountsRow> = sqlx::query_as(
        "SELECT i.wave AS wave, COUNT(*) AS invited, \
             SUM(CASE WHEN EXISTS (SELECT 1 FROM bookings b WHERE b.invitation_id = i.id) \
                 THEN 1 ELSE 0 END) AS claimed \
         FROM invitations i WHERE i.offer_id = ?1 GROUP BY i.wave ORDER BY i.wave",
    )
    .bind(offer.id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    for w in waves {
        sqlx::query(
            "INSERT INTO wave_stats (day, wave, invited, claimed) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (day, wave) DO UPDATE SET invited = wave_stats.invited + excluded.invited, \
                 claimed = wave_stats.claimed + excluded.claimed",
        )
        .bind(day_to_db(day))
        .bind(w.wave)
        .bind(w.invited)
        .bind(w.claimed)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    let bookings: BookingCountsRow = sqlx::query_as(
        "SELECT \
             (SELECT COUNT(*) FROM bookings WHERE offer_id = ?1 AND status = 'checked_in') \
                 AS checked_in, \
             (SELECT COUNT(*) FROM bookings WHERE offer_id = ?1 AND status = 'no_show') \
                 AS no_show, \
             (SELECT MAX(created_at) FROM bookings \
                 WHERE offer_id = ?1 AND status IN ('booked', 'checked_in', 'no_show')) \
                 AS last_placed_at",
    )
    .bind(offer.id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    for (metric, value) in [
        ("doses_placed", placed),
        ("checked_in", bookings.checked_in),
        ("no_show", bookings.no_show),
    ] {
        if value == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO practice_stats (day, practice_id, metric, value) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (practice_id, day, metric) \
                 DO UPDATE SET value = practice_stats.value + excluded.value",
        )
        .bind(day_to_db(day))
        .bind(offer.practice_id)
        .bind(metric)
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    // Filled: every dose went to someone who booked (no-shows included: the dose was placed).
    let filled = bookings.no_show + placed >= offer.doses;
    if let (true, Some(last)) = (filled, bookings.last_placed_at) {
        let minutes = ((last - offer.created_at).max(0)) / 60_000;
        sqlx::query(
            "INSERT INTO fill_times (day, area, practice_id, minutes, offers) \
             VALUES (?1, ?2, ?3, ?4, 1) \
             ON CONFLICT (day, area, practice_id, minutes) \
                 DO UPDATE SET offers = fill_times.offers + 1",
        )
        .bind(day_to_db(day))
        .bind(area)
        .bind(offer.practice_id)
        .bind(minutes)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Purges the oldest finished offer in one transaction; None when there is none left.
async fn purge_one_offer(
    store: &SqliteStore,
    ended_before: DateTime<Utc>,
) -> StoreResult<Option<PurgedOffer>> {
    let mut tx = store.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
    let offer: Option<FinishedOfferRow> = sqlx::query_as(
        "SELECT id, practice_id, doses, postcode, starts_at, created_at FROM offers \
         WHERE ends_at < ?1 \
         ORDER BY ends_at, id \
         LIMIT 1",
    )
    .bind(millis(ended_before))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(offer) = offer else {
        tx.rollback().await.map_err(db_error)?;
        return Ok(None);
    };

    // Counted from the rows, before anything is deleted.
    let counts: OfferCountsRow = sqlx::query_as(
        "SELECT \
             (SELECT COUNT(*) FROM bookings \
                 WHERE offer_id = ?1 AND status IN ('booked', 'checked_in')) AS placed, \
             (SELECT COUNT(*) FROM bookings WHERE offer_id = ?1) AS claims, \
             (SELECT COUNT(*) FROM invitations WHERE offer_id = ?1) AS invitations",
    )
    .bind(offer.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let starts_at = DateTime::from_timestamp_millis(offer.starts_at)
        .ok_or_else(|| corrupt(format!("offer {}: start out of range", offer.id)))?;
    let day = starts_at.date_naive();
    let area = area_of(&offer.postcode);
    let doses = offer.doses;
    for (metric, value) in [
        (Metric::Offers, 1),
        (Metric::DosesOffered, doses),
        (Metric::DosesPlaced, counts.placed),
        (Metric::DosesUnused, (doses - counts.placed).max(0)),
        (Metric::Invitations, counts.invitations),
        (Metric::Claims, counts.claims),
    ] {
        add_stat_on(&mut tx, day, &area, metric, value).await?;
    }
    add_statistics_on(&mut tx, &offer, day, &area, counts.placed).await?;

    // The people who came (or were due to); their tokens, invitations and mails go by cascade,
    // their other bookings keep no link to them. Listed first: deleting them rewrites the
    // bookings the list comes from.
    let people: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT registrant_id FROM bookings \
         WHERE offer_id = ?1 AND registrant_id IS NOT NULL \
           AND status IN ({STATUSES_OF_PEOPLE_WHO_GO}) \
         ORDER BY registrant_id"
    )))
    .bind(offer.id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut people_deleted = 0;
    for person in &people {
        people_deleted += sqlx::query("DELETE FROM registrants WHERE id = ?1")
            .bind(person)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    // Invitations, bookings and mails of the offer go by cascade.
    sqlx::query("DELETE FROM offers WHERE id = ?1")
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

#[async_trait]
impl LifecycleStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(limit = limit, purged))]
    async fn purge_finished_offers(
        &self,
        ended_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PurgedOffer>> {
        let mut purged = Vec::new();
        while purged.len() < limit as usize {
            match purge_one_offer(self, ended_before).await? {
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
        add_stat_on(&mut conn, day, area, metric, by).await
    }

    #[tracing::instrument(skip_all)]
    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<StatRow>> {
        let rows: Vec<StatDbRow> = sqlx::query_as(
            "SELECT day, area, metric, value FROM daily_stats \
             WHERE day >= ?1 AND day <= ?2 \
             ORDER BY day, area, metric",
        )
        .bind(day_to_db(from))
        .bind(day_to_db(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(StatRow {
                    day: day_from_db(&r.day)?,
                    metric: Metric::parse(&r.metric)
                        .ok_or_else(|| corrupt(format!("unknown metric {:?}", r.metric)))?,
                    area: r.area,
                    value: r.value,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_account_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM account_tokens WHERE expires_at <= ?1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_old_login_failures(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM login_throttle \
             WHERE last_failure_at < ?1 AND (locked_until IS NULL OR locked_until <= ?1)",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all, fields(limit = limit))]
    async fn paused_to_warn(
        &self,
        paused_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Registrant>> {
        let rows: Vec<RegistrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRANT_COLUMNS} FROM registrants \
             WHERE status = 'paused' AND paused_at < ?1 AND inactivity_warned_at IS NULL \
             ORDER BY paused_at, id \
             LIMIT ?2"
        )))
        .bind(millis(paused_before))
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let warned = sqlx::query(
            "UPDATE registrants SET inactivity_warned_at = ?2 \
             WHERE id = ?1 AND status = 'paused'",
        )
        .bind(registrant_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if warned.rows_affected() == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        crate::matcher::insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_inactive_paused(&self, warned_before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM registrants WHERE status = 'paused' AND inactivity_warned_at < ?1",
        )
        .bind(millis(warned_before))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
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
        let row: PreviewRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT \
                 (SELECT COUNT(*) FROM offers WHERE ends_at < ?1) AS finished_offers, \
                 (SELECT COUNT(DISTINCT b.registrant_id) FROM bookings b \
                     JOIN offers o ON o.id = b.offer_id \
                     WHERE o.ends_at < ?1 AND b.registrant_id IS NOT NULL \
                       AND b.status IN ({STATUSES_OF_PEOPLE_WHO_GO})) \
                     AS people_of_finished_offers, \
                 (SELECT COUNT(*) FROM registrants \
                     WHERE status = 'pending' AND COALESCE(last_mail_at, created_at) < ?2) \
                     AS unconfirmed, \
                 (SELECT COUNT(*) FROM registrant_tokens WHERE expires_at <= ?3) \
                     + (SELECT COUNT(*) FROM account_tokens WHERE expires_at <= ?3) \
                     AS expired_links, \
                 (SELECT COUNT(*) FROM sessions WHERE expires_at <= ?3) AS expired_sessions, \
                 (SELECT COUNT(*) FROM registrants \
                     WHERE status = 'paused' AND inactivity_warned_at < ?4) AS inactive_paused"
        )))
        .bind(millis(offers_ended_before))
        .bind(millis(unconfirmed_before))
        .bind(millis(now))
        .bind(millis(warned_before))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(PurgePreview {
            finished_offers: count(row.finished_offers)?,
            people_of_finished_offers: count(row.people_of_finished_offers)?,
            unconfirmed: count(row.unconfirmed)?,
            expired_links: count(row.expired_links)?,
            expired_sessions: count(row.expired_sessions)?,
            inactive_paused: count(row.inactive_paused)?,
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
        let rows: Vec<CiphertextRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {key_column} AS key_id, {blob_column} AS blob FROM {table} \
             WHERE {key_column} <> ?1 \
             ORDER BY id \
             LIMIT ?2"
        )))
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(Ciphertext {
                    key_id: key_id_from_db(r.key_id, r.id)?,
                    id: r.id,
                    blob: r.blob,
                })
            })
            .collect()
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
            "UPDATE {table} SET {key_column} = ?4, {blob_column} = ?5 \
             WHERE id = ?1 AND {key_column} = ?2 AND {blob_column} = ?3"
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {key_column}, COUNT(*) FROM {table} GROUP BY {key_column} ORDER BY {key_column}"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(key, n)| {
                let key = i32::try_from(key)
                    .map_err(|_| corrupt(format!("key id out of range: {key}")))?;
                Ok((key, count(n)?))
            })
            .collect()
    }
}
