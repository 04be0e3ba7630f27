//! PostgreSQL backend of the restdose `Store`.
//!
//! Runtime-checked queries (`sqlx::query` / `query_as` with `FromRow` rows) rather than the
//! `query!` macros, so the crate builds without a database or offline query data. Migrations
//! from `migrations/postgres` are embedded at build time.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_store::{
    NewRegistrant, NewToken, OperationalCounts, OutboxRow, PostcodeRow, Registrant,
    RegistrantStatus, Store, StoreError, StoreResult, StoredEmail, TokenPurpose, TokenRecord,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

mod lifecycle;
mod matcher;
mod portal;
mod statistics;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a request waits for a pooled connection before the store reports `Unavailable`
/// (the service passes `database_acquire_timeout_ms` instead).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening the store may wait for its first connection: longer than a request may
/// wait, so that a database still starting up or a busy machine does not fail a start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Rows per `INSERT` when importing postcodes (sent as three arrays, so no bind-parameter limit;
/// chunks keep single statements and their memory small).
const POSTCODE_CHUNK: usize = 5_000;

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Opens a pool to `url` (a `postgres://` URL). Fails when the server cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        Self::connect_with_acquire_timeout(url, max_connections, ACQUIRE_TIMEOUT).await
    }

    /// As `connect`, waiting at most `acquire_timeout` for a pooled connection (then
    /// `StoreError::Unavailable`, answered 503): a saturated pool turns away work quickly
    /// instead of piling it up.
    pub async fn connect_with_acquire_timeout(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<PgStore, StoreError> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(db_error)?
            // The wave pick's first executions on a connection are planned with real arrays and
            // estimated above the JIT threshold; compiling costs 15-200 ms per query, far more
            // than the query (docs/performance.md).
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        first_connection(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn from_pool(pool: PgPool) -> PgStore {
        PgStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `Store::insert_registrant` and `MatcherStore::insert_registrant_with_mails`.
    async fn insert_registrant_and_mails(
        &self,
        new: &NewRegistrant,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        let radius = radius_to_db(new.radius_km)?;
        // One statement with data-modifying CTEs instead of BEGIN, one INSERT per row and
        // COMMIT: a sign-up is one round trip to the server, and a statement is atomic on its
        // own (a taken address fails the whole statement). The foreign keys of the links and
        // mails are checked at the end of the statement, after the person's row is in.
        // Measured in docs/performance.md (S1).
        sqlx::query(
            "WITH person AS ( \
                 INSERT INTO registrants (id, email_key_id, email_ciphertext, email_index, \
                     postcode, radius_km, status, language, created_at, last_mail_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)), \
             links AS ( \
                 INSERT INTO registrant_tokens (token_hash, registrant_id, purpose, created_at, \
                     expires_at) \
                 SELECT * FROM UNNEST($10::bytea[], $11::uuid[], $12::text[], \
                     $13::timestamptz[], $14::timestamptz[])), \
             mails AS ( \
                 INSERT INTO outbox (id, key_id, payload, created_at, attempts, next_attempt_at, \
                     registrant_id, offer_id) \
                 SELECT * FROM UNNEST($15::uuid[], $16::integer[], $17::bytea[], \
                     $18::timestamptz[], $19::integer[], $20::timestamptz[], $21::uuid[], \
                     $22::uuid[])) \
             SELECT 1",
        )
        .bind(new.id)
        .bind(new.email.key_id)
        .bind(&new.email.ciphertext)
        .bind(&new.email.index)
        .bind(&new.postcode)
        .bind(radius)
        .bind(&new.language)
        .bind(new.created_at)
        .bind(new.last_mail_at)
        .bind(tokens.iter().map(|t| t.hash.as_slice()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.registrant_id).collect::<Vec<_>>())
        .bind(
            tokens
                .iter()
                .map(|t| t.purpose.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(tokens.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.expires_at).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.id).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.key_id).collect::<Vec<_>>())
        .bind(
            mails
                .iter()
                .map(|m| m.payload.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(mails.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.attempts).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.next_attempt_at).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.registrant_id).collect::<Vec<_>>())
        .bind(mails.iter().map(|m| m.offer_id).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// `Store::insert_tokens` and `MatcherStore::insert_tokens_with_mails`.
    async fn insert_tokens_and_mails(
        &self,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        match (tokens, mails) {
            ([], []) => Ok(()),
            // A single row needs no transaction.
            ([one], []) => {
                let mut conn = self.pool.acquire().await.map_err(db_error)?;
                insert_tokens_on(&mut conn, std::slice::from_ref(one)).await
            }
            _ => {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                insert_tokens_on(&mut tx, tokens).await?;
                matcher::insert_outbox_on(&mut tx, mails).await?;
                tx.commit().await.map_err(db_error)
            }
        }
    }
}

/// The one place where sqlx errors become store errors.
fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(ref db)
            if db.code().is_some_and(|code| {
                // 08: connection exception, 53: insufficient resources (too many connections,
                // disk full), 57P01-57P03: server shutting down or starting up.
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(&*code, "57P01" | "57P02" | "57P03")
            }) =>
        {
            StoreError::unavailable(e)
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::unavailable(e),
        other => StoreError::other(other),
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::other(what.into())
}

fn radius_to_db(radius_km: u16) -> StoreResult<i16> {
    i16::try_from(radius_km).map_err(|_| corrupt(format!("radius {radius_km} km out of range")))
}

#[derive(FromRow)]
struct RegistrantRow {
    id: Uuid,
    email_key_id: i32,
    email_ciphertext: Vec<u8>,
    email_index: Vec<u8>,
    postcode: String,
    radius_km: i16,
    status: String,
    language: String,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    paused_at: Option<DateTime<Utc>>,
    last_mail_at: Option<DateTime<Utc>>,
    undeliverable_at: Option<DateTime<Utc>>,
}

const REGISTRANT_COLUMNS: &str = "id, email_key_id, email_ciphertext, email_index, postcode, \
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
            postcode: row.postcode,
            radius_km: u16::try_from(row.radius_km)
                .map_err(|_| corrupt(format!("registrant {}: negative radius", row.id)))?,
            status: parse_status(&row.status)?,
            language: row.language,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
            paused_at: row.paused_at,
            last_mail_at: row.last_mail_at,
            undeliverable_at: row.undeliverable_at,
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
    expires_at: DateTime<Utc>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> StoreResult<TokenRecord> {
        Ok(TokenRecord {
            registrant_id: row.registrant_id,
            purpose: TokenPurpose::parse(&row.purpose)
                .ok_or_else(|| corrupt(format!("unknown token purpose {:?}", row.purpose)))?,
            expires_at: row.expires_at,
        })
    }
}

#[derive(FromRow)]
struct PostcodeDbRow {
    postcode: String,
    lat: f64,
    lon: f64,
}

async fn insert_tokens_on(conn: &mut PgConnection, tokens: &[NewToken]) -> StoreResult<()> {
    for token in tokens {
        sqlx::query(
            "INSERT INTO registrant_tokens (token_hash, registrant_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.hash)
        .bind(token.registrant_id)
        .bind(token.purpose.as_str())
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Keeps the last entry per postcode: PostgreSQL refuses to update one row twice in a statement.
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

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
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
        let embedded: Vec<_> = MIGRATOR
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
        let (depth, oldest, oldest_due): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at), \
             MIN(CASE WHEN next_attempt_at <= $1 OR attempts > 0 THEN created_at END) FROM outbox",
            )
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        counts.outbox_depth = to_u64(depth)?;
        counts.outbox_oldest = oldest;
        counts.outbox_oldest_due = oldest_due;
        Ok(counts)
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_oldest_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let (oldest,): (Option<DateTime<Utc>>,) = sqlx::query_as(
            "SELECT MIN(created_at) FROM outbox WHERE next_attempt_at <= $1 OR attempts > 0",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(oldest)
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
        self.insert_registrant_and_mails(new, tokens, &[]).await
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
        .bind(now)
        .bind(previous_before)
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
            .bind(reserved_at)
            .bind(previous)
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
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM registrant_tokens WHERE expires_at <= $1")
            .bind(now)
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
        postcode: &str,
        radius_km: u16,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE registrants SET postcode = $2, radius_km = $3 WHERE id = $1")
                .bind(id)
                .bind(postcode)
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
        // Right-hand sides see the row as it was before the update.
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
        .bind(now)
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
        // (ON DELETE CASCADE); the booking stays, cancelled, for the practice's count.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "UPDATE offers SET claimed = GREATEST(claimed - 1, 0), next_wave_at = NULL \
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
        .bind(now)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let token: Option<TokenRow> = sqlx::query_as(
            "SELECT registrant_id, purpose, expires_at FROM registrant_tokens \
             WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(confirm_token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(token) = token else {
            return Ok(None);
        };
        if token.purpose != TokenPurpose::Confirm.as_str() || token.expires_at <= now {
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
        .bind(now)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut written = 0;
        for chunk in entries.chunks(POSTCODE_CHUNK) {
            let postcodes: Vec<&str> = chunk.iter().map(|e| e.postcode.as_str()).collect();
            let lats: Vec<f64> = chunk.iter().map(|e| e.lat).collect();
            let lons: Vec<f64> = chunk.iter().map(|e| e.lon).collect();
            written += sqlx::query(
                "INSERT INTO geo_postcodes (country, postcode, lat, lon) \
                 SELECT $1, p.postcode, p.lat, p.lon \
                 FROM UNNEST($2::text[], $3::float8[], $4::float8[]) AS p (postcode, lat, lon) \
                 ON CONFLICT (country, postcode) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon",
            )
            .bind(country)
            .bind(postcodes)
            .bind(lats)
            .bind(lons)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(written)
    }

    #[tracing::instrument(skip_all, fields(country = %country))]
    async fn postcodes(&self, country: &str) -> StoreResult<Vec<PostcodeRow>> {
        let rows: Vec<PostcodeDbRow> = sqlx::query_as(
            "SELECT postcode, lat, lon FROM geo_postcodes WHERE country = $1 ORDER BY postcode COLLATE \"C\"",
        )
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

/// Waits for the pool's first connection, retrying the (short) acquire time-out until
/// `STARTUP_TIMEOUT`; other errors (bad credentials, a missing file) end the wait at once.
async fn first_connection(pool: &PgPool) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    // The pool retries a refused connection until its acquire time-out, which reads as "busy"
    // below; one direct attempt first tells a server that is not there (fail now) from one
    // that is slow to answer (wait for it).
    match tokio::time::timeout(STARTUP_TIMEOUT, pool.connect_options().connect()).await {
        Ok(Ok(probe)) => {
            // Only a probe: a failure to say goodbye changes nothing.
            let _ = probe.close().await;
        }
        Ok(Err(e)) => return Err(db_error(e)),
        Err(_) => return Err(db_error(sqlx::Error::PoolTimedOut)),
    }
    let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::PoolTimedOut) if std::time::Instant::now() < deadline => {}
            Err(e) => return Err(db_error(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
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

    #[test]
    fn pool_and_io_errors_are_unavailable() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(matches!(db_error(e), StoreError::Unavailable(_)));
        }
        assert!(matches!(
            db_error(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }

    /// Nothing listens on port 1: connecting must fail as `Unavailable`, within the acquire
    /// timeout.
    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let started = std::time::Instant::now();
        let err = PgStore::connect("postgres://postgres@127.0.0.1:1/postgres", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(2));
    }
}
