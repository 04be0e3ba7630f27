//! The person on the waiting list, their links, and the store itself (`Store`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use macro_rules_attribute::apply;
use restdose_domain::Postcode;
use restdose_store::{
    NewRegistrant, NewToken, OperationalCounts, OutboxRow, PostcodeRow, Registrant,
    RegistrantStatus, Store, StoreError, StoreResult, StoredEmail, TokenPurpose, TokenRecord,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::encode::{Ts, ts};
use crate::{SqlStore, corrupt, for_both_databases, lang, radius_to_db};

#[derive(FromRow)]
pub(crate) struct RegistrantRow {
    id: Uuid,
    email_key_id: i32,
    email_ciphertext: Vec<u8>,
    email_index: Vec<u8>,
    postcode: String,
    radius_km: i16,
    status: String,
    language: String,
    created_at: Ts,
    confirmed_at: Option<Ts>,
    paused_at: Option<Ts>,
    last_mail_at: Option<Ts>,
    undeliverable_at: Option<Ts>,
}

pub(crate) const REGISTRANT_COLUMNS: &str = "id, email_key_id, email_ciphertext, email_index, postcode, \
     radius_km, status, language, created_at, confirmed_at, paused_at, last_mail_at, \
     undeliverable_at";

impl TryFrom<RegistrantRow> for Registrant {
    type Error = StoreError;

    fn try_from(row: RegistrantRow) -> StoreResult<Registrant> {
        Ok(Registrant {
            id: row.id,
            email: StoredEmail {
                key_id: row.email_key_id,
                ciphertext: row.email_ciphertext,
                index: row.email_index,
            },
            postcode: Postcode::from_trusted(row.postcode),
            radius_km: u16::try_from(row.radius_km)
                .map_err(|_| corrupt(format!("registrant {}: negative radius", row.id)))?,
            status: parse_status(&row.status)?,
            language: lang(&row.language)?,
            created_at: row.created_at.0,
            confirmed_at: row.confirmed_at.map(Into::into),
            paused_at: row.paused_at.map(Into::into),
            last_mail_at: row.last_mail_at.map(Into::into),
            undeliverable_at: row.undeliverable_at.map(Into::into),
        })
    }
}

fn parse_status(s: &str) -> StoreResult<RegistrantStatus> {
    RegistrantStatus::parse(s).ok_or_else(|| corrupt(format!("unknown registrant status {s:?}")))
}

#[derive(FromRow)]
struct TokenRow {
    registrant_id: Uuid,
    purpose: String,
    expires_at: Ts,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> StoreResult<TokenRecord> {
        Ok(TokenRecord {
            registrant_id: row.registrant_id,
            purpose: TokenPurpose::parse(&row.purpose)
                .ok_or_else(|| corrupt(format!("unknown token purpose {:?}", row.purpose)))?,
            expires_at: row.expires_at.0,
        })
    }
}

#[derive(FromRow)]
struct PostcodeDbRow {
    postcode: String,
    lat: f64,
    lon: f64,
}

/// Keeps the last entry per postcode: "later wins", and PostgreSQL refuses to update one row
/// twice in a statement.
fn last_entry_per_postcode(entries: &[PostcodeRow]) -> Vec<&PostcodeRow> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut out: Vec<&PostcodeRow> = entries
        .iter()
        .rev()
        .filter(|e| seen.insert(e.postcode.as_str()))
        .collect();
    out.reverse();
    out
}

#[apply(for_both_databases!)]
impl SqlStore<Db> {
    /// `Store::insert_tokens` and `MatcherStore::insert_tokens_with_mails`.
    pub(crate) async fn insert_tokens_and_mails(
        &self,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        match (tokens, mails) {
            ([], []) => Ok(()),
            // A single row needs no transaction.
            ([one], []) => {
                let mut conn = self.pool.acquire().await.map_err(db_error)?;
                Self::insert_tokens_on(&mut conn, std::slice::from_ref(one)).await
            }
            _ => {
                let mut tx = dialect::begin_write(&self.pool).await?;
                Self::insert_tokens_on(&mut tx, tokens).await?;
                Self::insert_outbox_on(&mut tx, mails).await?;
                tx.commit().await.map_err(db_error)
            }
        }
    }

    pub(crate) async fn insert_tokens_on(
        conn: &mut <Db as sqlx::Database>::Connection,
        tokens: &[NewToken],
    ) -> StoreResult<()> {
        for token in tokens {
            sqlx::query(
                "INSERT INTO registrant_tokens (token_hash, registrant_id, purpose, created_at, \
                     expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token.hash)
            .bind(token.registrant_id)
            .bind(token.purpose.as_str())
            .bind(Ts(token.created_at))
            .bind(Ts(token.expires_at))
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }

    /// Mails into the outbox, on the caller's connection or transaction.
    pub(crate) async fn insert_outbox_on(
        conn: &mut <Db as sqlx::Database>::Connection,
        rows: &[OutboxRow],
    ) -> StoreResult<()> {
        for row in rows {
            sqlx::query(
                "INSERT INTO outbox (id, key_id, payload, created_at, attempts, next_attempt_at, \
                     registrant_id, offer_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(row.id)
            .bind(row.key_id)
            .bind(&row.payload)
            .bind(Ts(row.created_at))
            .bind(row.attempts)
            .bind(Ts(row.next_attempt_at))
            .bind(row.registrant_id)
            .bind(row.offer_id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }
}

#[apply(for_both_databases!)]
#[async_trait]
impl Store for SqlStore<Db> {
    fn backend(&self) -> &'static str {
        dialect::NAME
    }

    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        dialect::MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(inner) => db_error(inner),
                other => StoreError::other(other),
            })
    }

    #[tracing::instrument(skip_all)]
    async fn migrations_current(&self) -> StoreResult<bool> {
        // sqlx records applied migrations in `_sqlx_migrations`; a missing table means none.
        let applied: Vec<(i64, bool, Vec<u8>)> =
            match sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations")
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows,
                Err(sqlx::Error::Database(_)) => return Ok(false),
                Err(e) => return Err(db_error(e)),
            };
        let embedded: Vec<_> = dialect::MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let all_applied = embedded.iter().all(|m| {
            applied
                .iter()
                .any(|(v, ok, sum)| *v == m.version && *ok && sum.as_slice() == &*m.checksum)
        });
        let none_unknown = applied
            .iter()
            .all(|(v, _, _)| embedded.iter().any(|m| m.version == *v));
        Ok(all_applied && none_unknown)
    }

    #[tracing::instrument(skip_all)]
    async fn operational_counts(&self, now: DateTime<Utc>) -> StoreResult<OperationalCounts> {
        let to_u64 = |n: i64| u64::try_from(n).map_err(StoreError::other);
        let mut counts = OperationalCounts::default();
        let people: Vec<(String, i64)> = sqlx::query_as(
            "SELECT CASE \
             WHEN EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = r.id \
                          AND b.status IN ('booked', 'checked_in')) THEN 'booked' \
             WHEN r.status = 'pending' THEN 'unconfirmed' \
             WHEN r.status = 'paused' THEN 'paused' \
             ELSE 'waiting' END AS state, COUNT(*) \
             FROM registrants r GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for (state, n) in people {
            let n = to_u64(n)?;
            match state.as_str() {
                "booked" => counts.people_booked = n,
                "unconfirmed" => counts.people_unconfirmed = n,
                "paused" => counts.people_paused = n,
                _ => counts.people_waiting = n,
            }
        }
        let (open,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM offers WHERE status = 'open'")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        counts.open_offers = to_u64(open)?;
        let (depth, oldest, oldest_due): (i64, Option<Ts>, Option<Ts>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at), \
             MIN(CASE WHEN next_attempt_at <= $1 OR attempts > 0 THEN created_at END) FROM outbox",
        )
        .bind(Ts(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        counts.outbox_depth = to_u64(depth)?;
        counts.outbox_oldest = oldest.map(Into::into);
        counts.outbox_oldest_due = oldest_due.map(Into::into);
        Ok(counts)
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_oldest_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let (oldest,): (Option<Ts>,) = sqlx::query_as(
            "SELECT MIN(created_at) FROM outbox WHERE next_attempt_at <= $1 OR attempts > 0",
        )
        .bind(Ts(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(oldest.map(Into::into))
    }

    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(id = %new.id, postcode = %new.postcode, tokens = tokens.len()))]
    async fn insert_registrant(&self, new: &NewRegistrant, tokens: &[NewToken]) -> StoreResult<()> {
        dialect::insert_registrant_and_mails(&self.pool, new, tokens, &[]).await
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn registrant(&self, id: Uuid) -> StoreResult<Option<Registrant>> {
        let row: Option<RegistrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRANT_COLUMNS} FROM registrants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Registrant::try_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn registrant_by_email_index(&self, index: &[u8]) -> StoreResult<Option<Registrant>> {
        let row: Option<RegistrantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRANT_COLUMNS} FROM registrants WHERE email_index = $1"
        )))
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Registrant::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn reserve_mail_slot(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        previous_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE registrants SET last_mail_at = $2 \
             WHERE id = $1 AND (last_mail_at IS NULL OR last_mail_at <= $3)",
        )
        .bind(id)
        .bind(Ts(now))
        .bind(Ts(previous_before))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(registrant = %id))]
    async fn release_mail_slot(
        &self,
        id: Uuid,
        reserved_at: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE registrants SET last_mail_at = $3 WHERE id = $1 AND last_mail_at = $2")
            .bind(id)
            .bind(Ts(reserved_at))
            .bind(ts(previous))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_unconfirmed(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM registrants \
             WHERE status = 'pending' AND COALESCE(last_mail_at, created_at) < $1",
        )
        .bind(Ts(cutoff))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM registrant_tokens WHERE expires_at <= $1")
            .bind(Ts(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all, fields(tokens = tokens.len()))]
    async fn insert_tokens(&self, tokens: &[NewToken]) -> StoreResult<()> {
        self.insert_tokens_and_mails(tokens, &[]).await
    }

    #[tracing::instrument(skip_all, fields(id = %id, postcode = %postcode, radius_km = radius_km))]
    async fn update_preferences(
        &self,
        id: Uuid,
        postcode: &Postcode,
        radius_km: u16,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE registrants SET postcode = $2, radius_km = $3 WHERE id = $1")
                .bind(id)
                .bind(postcode.as_str())
                .bind(radius_to_db(radius_km)?)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(id = %id, paused = paused))]
    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<RegistrantStatus> {
        // Right-hand sides see the row as it was before the update; RETURNING the new one.
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE registrants SET \
                status = CASE \
                    WHEN status = 'pending' THEN status \
                    WHEN $2 THEN 'paused' \
                    ELSE 'active' END, \
                paused_at = CASE \
                    WHEN status = 'active' AND $2 THEN $3 \
                    WHEN status = 'paused' AND NOT $2 THEN NULL \
                    ELSE paused_at END, \
                inactivity_warned_at = CASE \
                    WHEN NOT $2 THEN NULL \
                    ELSE inactivity_warned_at END, \
                undeliverable_at = CASE \
                    WHEN NOT $2 THEN NULL \
                    ELSE undeliverable_at END \
             WHERE id = $1 \
             RETURNING status",
        )
        .bind(id)
        .bind(paused)
        .bind(Ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        match status {
            Some(s) => parse_status(&s),
            None => Err(StoreError::NotFound),
        }
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn delete_registrant(&self, id: Uuid) -> StoreResult<bool> {
        // A booked dose goes back to its offer (due again at once) instead of waiting for
        // someone who no longer exists. Tokens, invitations and mails go with the row
        // (ON DELETE CASCADE; foreign keys are on for every connection); the booking stays,
        // cancelled, for the practice's count.
        let mut tx = dialect::begin_write(&self.pool).await?;
        sqlx::query(
            "UPDATE offers SET claimed = CASE WHEN claimed > 0 THEN claimed - 1 ELSE 0 END, next_wave_at = NULL \
             WHERE status = 'open' AND id IN \
             (SELECT offer_id FROM bookings WHERE registrant_id = $1 AND status = 'booked')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE bookings SET status = 'cancelled', registrant_id = NULL, invitation_id = NULL \
             WHERE registrant_id = $1 AND status = 'booked'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM registrants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, fields(purpose = purpose.as_str()))]
    async fn find_token(
        &self,
        hash: &[u8],
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<TokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT registrant_id, purpose, expires_at FROM registrant_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(Ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(TokenRecord::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(id))]
    async fn confirm_registrant(
        &self,
        confirm_token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        // Read, then write: the write transaction (and the row lock on PostgreSQL) serialises
        // racing confirmations.
        let mut tx = dialect::begin_write(&self.pool).await?;
        let token: Option<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT registrant_id, purpose, expires_at FROM registrant_tokens \
             WHERE token_hash = $1 {}",
            dialect::FOR_UPDATE
        )))
        .bind(confirm_token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(token) = token else {
            return Ok(None);
        };
        if token.purpose != TokenPurpose::Confirm.as_str() || token.expires_at <= Ts(now) {
            return Ok(None);
        }
        tracing::Span::current().record("id", tracing::field::display(token.registrant_id));

        let deleted = sqlx::query("DELETE FROM registrant_tokens WHERE token_hash = $1")
            .bind(confirm_token_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() != 1 {
            // Consumed by a concurrent confirmation (cannot happen while the row is locked).
            return Ok(None);
        }
        sqlx::query(
            "UPDATE registrants SET \
                status = CASE WHEN status = 'pending' THEN 'active' ELSE status END, \
                confirmed_at = CASE WHEN status = 'pending' THEN $2 ELSE confirmed_at END, \
                undeliverable_at = NULL \
             WHERE id = $1",
        )
        .bind(token.registrant_id)
        .bind(Ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(token.registrant_id))
    }

    #[tracing::instrument(skip_all, fields(country = %country, entries = entries.len()))]
    async fn upsert_postcodes(&self, country: &str, entries: &[PostcodeRow]) -> StoreResult<u64> {
        let entries = last_entry_per_postcode(entries);
        if entries.is_empty() {
            return Ok(0);
        }
        dialect::upsert_postcodes(&self.pool, country, &entries).await
    }

    #[tracing::instrument(skip_all, fields(country = %country))]
    async fn postcodes(&self, country: &str) -> StoreResult<Vec<PostcodeRow>> {
        let rows: Vec<PostcodeDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT postcode, lat, lon FROM geo_postcodes WHERE country = $1 ORDER BY postcode {}",
            dialect::BYTEWISE
        )))
        .bind(country)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| PostcodeRow {
                postcode: r.postcode,
                lat: r.lat,
                lon: r.lon,
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn later_postcode_entries_win() {
        let rows = [
            PostcodeRow {
                postcode: "1".into(),
                lat: 1.0,
                lon: 1.0,
            },
            PostcodeRow {
                postcode: "2".into(),
                lat: 2.0,
                lon: 2.0,
            },
            PostcodeRow {
                postcode: "1".into(),
                lat: 3.0,
                lon: 3.0,
            },
        ];
        let kept: Vec<(&str, f64)> = last_entry_per_postcode(&rows)
            .into_iter()
            .map(|r| (r.postcode.as_str(), r.lat))
            .collect();
        assert_eq!(kept, vec![("2", 2.0), ("1", 3.0)]);
    }
}
