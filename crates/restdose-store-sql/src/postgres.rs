//! What is PostgreSQL's own: connecting (JIT off), error codes, one-statement sign-ups and
//! bulk inserts that bind arrays (`UNNEST`), and the `FOR UPDATE SKIP LOCKED` leases and the
//! candidate query that live in the matcher.

use std::str::FromStr;
use std::time::Duration;

use restdose_store::{NewRegistrant, NewToken, OutboxRow, PostcodeRow, StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::{PgStore, radius_to_db};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a request waits for a pooled connection before the store reports `Unavailable`
/// (the service passes `database_acquire_timeout_ms` instead).
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening the store may wait for its first connection: longer than a request may
/// wait, so that a database still starting up or a busy machine does not fail a start.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Rows per `INSERT` when importing postcodes (sent as three arrays, so no bind-parameter limit;
/// chunks keep single statements and their memory small).
const POSTCODE_CHUNK: usize = 5_000;
/// Postcodes sort bytewise, as on SQLite, whatever the database's locale.
pub(crate) const BYTEWISE: &str = "COLLATE \"C\"";
/// Locks the rows a read-then-write transaction reads.
pub(crate) const FOR_UPDATE: &str = "FOR UPDATE";
pub(crate) const NAME: &str = "postgres";

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
}

/// Waits for the pool's first connection, retrying the (short) acquire time-out until
/// `STARTUP_TIMEOUT`; other errors (bad credentials, a missing database) end the wait at once.
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

/// The one place where PostgreSQL's errors become store errors.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
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

/// A write transaction: PostgreSQL locks rows as statements reach them.
pub(crate) async fn begin_write(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    pool.begin().await.map_err(db_error)
}

/// A person, their links and mails in one statement.
pub(crate) async fn insert_registrant_and_mails(
    pool: &PgPool,
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
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Postcodes in chunks bound as three arrays, later entries winning.
pub(crate) async fn upsert_postcodes(
    pool: &PgPool,
    country: &str,
    entries: &[&PostcodeRow],
) -> StoreResult<u64> {
    let mut tx = begin_write(pool).await?;
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

// --- lifecycle ---

/// Several workers may purge at once: each takes an offer no other worker holds.
pub(crate) const PURGE_OFFER_LOCK: &str = "FOR UPDATE SKIP LOCKED";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
