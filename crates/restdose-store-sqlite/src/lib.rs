//! SQLite backend of the restdose `Store`, for single-instance deployments.
//!
//! One database file in WAL mode. UUIDs are stored as 16-byte BLOBs (sqlx's `Uuid` encoding),
//! times as INTEGER milliseconds since the Unix epoch (UTC), so comparisons are numeric and
//! exact. Write transactions that read first start with `BEGIN IMMEDIATE`: a deferred
//! transaction that later upgrades its read lock to a write lock can fail with SQLITE_BUSY at
//! once, without waiting for the busy timeout.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_store::{
    NewRegistrant, NewToken, OperationalCounts, OutboxRow, PostcodeRow, Registrant,
    RegistrantStatus, Store, StoreError, StoreResult, StoredEmail, TokenPurpose, TokenRecord,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

mod lifecycle;
mod matcher;
mod portal;
mod statistics;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a request waits for a pooled connection before the store reports `Unavailable`
/// (the service passes `database_acquire_timeout_ms` instead).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening the store may wait for its first connection: longer than a request may
/// wait, so that a database still starting up or a busy machine does not fail a start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long SQLite waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts a write transaction holding the write lock from the start.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// Rows per `INSERT` when importing postcodes: 4 bind parameters each, SQLite allows 32766.
const POSTCODE_CHUNK: usize = 1_000;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database file named by `url`,
    /// e.g. `sqlite://data/restdose.db` (relative to the working directory) or
    /// `sqlite:///var/lib/restdose/restdose.db`.
    ///
    /// In-memory databases are refused: every pooled connection would see its own.
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
        Self::connect_with_acquire_timeout(url, max_connections, ACQUIRE_TIMEOUT).await
    }

    /// As `connect`, waiting at most `acquire_timeout` for a pooled connection (then
    /// `StoreError::Unavailable`, answered 503): a saturated pool turns away work quickly
    /// instead of piling it up.
    pub async fn connect_with_acquire_timeout(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<SqliteStore, StoreError> {
        if is_in_memory(url) {
            return Err(StoreError::other(format!(
                "refusing SQLite URL {url:?}: in-memory databases are not supported (every pooled \
                 connection would get its own empty database); use a file such as \
                 sqlite://data/restdose.db"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Deleted rows must not linger in free pages of the file: the purge promises
            // that nothing about a person survives, on disk included.
            .pragma("secure_delete", "ON");

        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::other(format!(
                    "cannot create directory {} for the SQLite database: {e}",
                    dir.display()
                ))
            })?;
        }

        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        first_connection(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub fn from_pool(pool: SqlitePool) -> SqliteStore {
        SqliteStore { pool }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `Store::insert_registrant` and `MatcherStore::insert_registrant_with_mails`.
    async fn insert_registrant_and_mails(
        &self,
        new: &NewRegistrant,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO registrants (id, email_key_id, email_ciphertext, email_index, postcode, \
             radius_km, status, language, created_at, last_mail_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)",
        )
        .bind(new.id)
        .bind(new.email.key_id)
        .bind(&new.email.ciphertext)
        .bind(&new.email.index)
        .bind(&new.postcode)
        .bind(i64::from(new.radius_km))
        .bind(&new.language)
        .bind(millis(new.created_at))
        .bind(new.last_mail_at.map(millis))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_tokens_on(&mut tx, tokens).await?;
        matcher::insert_outbox_on(&mut tx, mails).await?;
        tx.commit().await.map_err(db_error)
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
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
                insert_tokens_on(&mut tx, tokens).await?;
                matcher::insert_outbox_on(&mut tx, mails).await?;
                tx.commit().await.map_err(db_error)
            }
        }
    }
}

/// `sqlite::memory:`, `sqlite://:memory:`, `?mode=memory` and an empty file name (a private
/// temporary database per connection).
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database.is_empty()
        || database == ":memory:"
        || params
            .split('&')
            .any(|p| p.eq_ignore_ascii_case("mode=memory"))
}

/// The one place where sqlx errors become store errors.
fn db_error(e: sqlx::Error) -> StoreError {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    match e {
        sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict,
        // Another connection held the lock for longer than the busy timeout.
        sqlx::Error::Database(ref db)
            if db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED)) =>
        {
            StoreError::unavailable(e)
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::unavailable(e)
        }
        other => StoreError::other(other),
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::other(what.into())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(format!("time {ms} out of range")))
}

fn from_opt_millis(ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(from_millis).transpose()
}

#[derive(FromRow)]
struct RegistrantRow {
    id: Uuid,
    email_key_id: i64,
    email_ciphertext: Vec<u8>,
    email_index: Vec<u8>,
    postcode: String,
    radius_km: i64,
    status: String,
    language: String,
    created_at: i64,
    confirmed_at: Option<i64>,
    paused_at: Option<i64>,
    last_mail_at: Option<i64>,
    undeliverable_at: Option<i64>,
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
                key_id: i32::try_from(row.email_key_id)
                    .map_err(|_| corrupt(format!("registrant {}: key id out of range", row.id)))?,
                ciphertext: row.email_ciphertext,
                index: row.email_index,
            },
            postcode: row.postcode,
            radius_km: u16::try_from(row.radius_km)
                .map_err(|_| corrupt(format!("registrant {}: radius out of range", row.id)))?,
            status: parse_status(&row.status)?,
            language: row.language,
            created_at: from_millis(row.created_at)?,
            confirmed_at: from_opt_millis(row.confirmed_at)?,
            paused_at: from_opt_millis(row.paused_at)?,
            last_mail_at: from_opt_millis(row.last_mail_at)?,
            undeliverable_at: from_opt_millis(row.undeliverable_at)?,
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
    expires_at: i64,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> StoreResult<TokenRecord> {
        Ok(TokenRecord {
            registrant_id: row.registrant_id,
            purpose: TokenPurpose::parse(&row.purpose)
                .ok_or_else(|| corrupt(format!("unknown token purpose {:?}", row.purpose)))?,
            expires_at: from_millis(row.expires_at)?,
        })
    }
}

#[derive(FromRow)]
struct PostcodeDbRow {
    postcode: String,
    lat: f64,
    lon: f64,
}

async fn insert_tokens_on(conn: &mut SqliteConnection, tokens: &[NewToken]) -> StoreResult<()> {
    for token in tokens {
        sqlx::query(
            "INSERT INTO registrant_tokens (token_hash, registrant_id, purpose, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&token.hash)
        .bind(token.registrant_id)
        .bind(token.purpose.as_str())
        .bind(millis(token.created_at))
        .bind(millis(token.expires_at))
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Keeps the last entry per postcode, so "later wins" and the count match PostgreSQL.
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let (depth, oldest, oldest_due): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at), \
             MIN(CASE WHEN next_attempt_at <= ?1 OR attempts > 0 THEN created_at END) FROM outbox",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        counts.outbox_depth = to_u64(depth)?;
        counts.outbox_oldest = from_opt_millis(oldest)?;
        counts.outbox_oldest_due = from_opt_millis(oldest_due)?;
        Ok(counts)
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_oldest_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let (oldest,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(created_at) FROM outbox WHERE next_attempt_at <= ?1 OR attempts > 0",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        from_opt_millis(oldest)
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
            "SELECT {REGISTRANT_COLUMNS} FROM registrants WHERE id = ?1"
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
            "SELECT {REGISTRANT_COLUMNS} FROM registrants WHERE email_index = ?1"
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
            "UPDATE registrants SET last_mail_at = ?2 \
             WHERE id = ?1 AND (last_mail_at IS NULL OR last_mail_at <= ?3)",
        )
        .bind(id)
        .bind(millis(now))
        .bind(millis(previous_before))
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
        sqlx::query("UPDATE registrants SET last_mail_at = ?3 WHERE id = ?1 AND last_mail_at = ?2")
            .bind(id)
            .bind(millis(reserved_at))
            .bind(previous.map(millis))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_unconfirmed(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM registrants \
             WHERE status = 'pending' AND COALESCE(last_mail_at, created_at) < ?1",
        )
        .bind(millis(cutoff))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM registrant_tokens WHERE expires_at <= ?1")
            .bind(millis(now))
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
            sqlx::query("UPDATE registrants SET postcode = ?2, radius_km = ?3 WHERE id = ?1")
                .bind(id)
                .bind(postcode)
                .bind(i64::from(radius_km))
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
                    WHEN ?2 THEN 'paused' \
                    ELSE 'active' END, \
                paused_at = CASE \
                    WHEN status = 'active' AND ?2 THEN ?3 \
                    WHEN status = 'paused' AND NOT ?2 THEN NULL \
                    ELSE paused_at END, \
                inactivity_warned_at = CASE \
                    WHEN NOT ?2 THEN NULL \
                    ELSE inactivity_warned_at END, \
                undeliverable_at = CASE \
                    WHEN NOT ?2 THEN NULL \
                    ELSE undeliverable_at END \
             WHERE id = ?1 \
             RETURNING status",
        )
        .bind(id)
        .bind(paused)
        .bind(millis(now))
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        sqlx::query(
            "UPDATE offers SET claimed = MAX(claimed - 1, 0), next_wave_at = NULL \
             WHERE status = 'open' AND id IN \
             (SELECT offer_id FROM bookings WHERE registrant_id = ?1 AND status = 'booked')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE bookings SET status = 'cancelled', registrant_id = NULL, invitation_id = NULL \
             WHERE registrant_id = ?1 AND status = 'booked'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM registrants WHERE id = ?1")
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
             WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(millis(now))
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
        // IMMEDIATE: we read the token and then write; holding the write lock from the start
        // serialises racing confirmations instead of failing one with SQLITE_BUSY.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let token: Option<TokenRow> = sqlx::query_as(
            "SELECT registrant_id, purpose, expires_at FROM registrant_tokens \
             WHERE token_hash = ?1",
        )
        .bind(confirm_token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(token) = token else {
            return Ok(None);
        };
        if token.purpose != TokenPurpose::Confirm.as_str() || token.expires_at <= millis(now) {
            return Ok(None);
        }
        tracing::Span::current().record("id", tracing::field::display(token.registrant_id));

        let deleted = sqlx::query("DELETE FROM registrant_tokens WHERE token_hash = ?1")
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
                confirmed_at = CASE WHEN status = 'pending' THEN ?2 ELSE confirmed_at END, \
                undeliverable_at = NULL \
             WHERE id = ?1",
        )
        .bind(token.registrant_id)
        .bind(millis(now))
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let mut written = 0;
        for chunk in entries.chunks(POSTCODE_CHUNK) {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO geo_postcodes (country, postcode, lat, lon) ");
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(country)
                    .push_bind(entry.postcode.as_str())
                    .push_bind(entry.lat)
                    .push_bind(entry.lon);
            });
            insert.push(
                " ON CONFLICT (country, postcode) DO UPDATE SET lat = excluded.lat, lon = excluded.lon",
            );
            written += insert
                .build()
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
            "SELECT postcode, lat, lon FROM geo_postcodes WHERE country = ?1 ORDER BY postcode",
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
async fn first_connection(pool: &SqlitePool) -> Result<(), StoreError> {
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
    fn in_memory_urls_are_recognised() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:",
            "sqlite://",
            "sqlite://db.sqlite?mode=memory",
            "sqlite://?mode=memory&cache=shared",
        ] {
            assert!(is_in_memory(url), "{url}");
        }
        for url in [
            "sqlite://data/restdose.db",
            "sqlite:///var/lib/restdose/restdose.db",
            "sqlite:restdose.db?mode=rwc",
        ] {
            assert!(!is_in_memory(url), "{url}");
        }
    }

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

    #[tokio::test]
    async fn connect_refuses_memory_and_creates_the_directory() {
        let err = SqliteStore::connect("sqlite::memory:", 1)
            .await
            .unwrap_err();
        assert!(err.source_text().contains("in-memory"), "{err:?}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/deeper/restdose.db");
        let url = format!("sqlite://{}", file.display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        assert!(file.exists());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store.pool().close().await;
    }

    /// Migration 0008 rebuilds `invitations` (SQLite cannot alter a CHECK): a database with
    /// data from before keeps every invitation and every booking's link to its invitation, and
    /// foreign keys are back on afterwards.
    #[tokio::test]
    async fn rebuilding_invitations_keeps_rows_and_booking_links() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        MIGRATOR.run_to(7, store.pool()).await.unwrap();
        let (invitation, booking) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let mut conn = store.pool().acquire().await.unwrap();
        // Rows of an offer and a person that need not exist for this check.
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO invitations (id, offer_id, registrant_id, token_hash, wave, last_call, \
                 distance_km, status, created_at, expires_at) \
             VALUES (?1, ?2, ?3, x'01', 1, 0, 1.5, 'claimed', 10, 20)",
        )
        .bind(invitation)
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO bookings (id, offer_id, code, status, created_at, updated_at, \
                 invitation_id) VALUES (?1, ?2, 'C', 'booked', 10, 10, ?3)",
        )
        .bind(booking)
        .bind(uuid::Uuid::new_v4())
        .bind(invitation)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);

        store.migrate().await.unwrap();

        let linked: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT invitation_id FROM bookings WHERE id = ?1")
                .bind(booking)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(linked, Some(invitation));
        let status: String = sqlx::query_scalar("SELECT status FROM invitations WHERE id = ?1")
            .bind(invitation)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(status, "claimed");
        sqlx::query("UPDATE invitations SET status = 'withdrawn' WHERE id = ?1")
            .bind(invitation)
            .execute(store.pool())
            .await
            .unwrap();
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invitations' \
             AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            indexes,
            [
                "invitations_by_registrant_and_time",
                "invitations_once_per_offer",
                "invitations_one_open_per_person",
                "invitations_open_by_expiry",
            ]
        );
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store.pool().close().await;
    }

    trait SourceText {
        fn source_text(&self) -> String;
    }

    impl SourceText for StoreError {
        fn source_text(&self) -> String {
            std::error::Error::source(self)
                .map(ToString::to_string)
                .unwrap_or_default()
        }
    }
}
