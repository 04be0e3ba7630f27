//! What is SQLite's own: one database file in WAL mode, `secure_delete`, write transactions
//! that take the write lock at `BEGIN` (a deferred transaction that later upgrades its read
//! lock can fail with SQLITE_BUSY at once, without waiting for the busy timeout), error codes,
//! and multi-row `VALUES` where PostgreSQL binds arrays. UUIDs are 16-byte BLOBs (sqlx's
//! encoding); times and days are encoded by `encode`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use restdose_store::{
    Candidate, CandidateQuery, ExpiredInvitation, NewRegistrant, NewToken, OutboxRow, PostcodeRow,
    StoreError, StoreResult,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use crate::encode::{Ts, ts};
use crate::matcher::rows::{CandidateRow, OutboxDbRow};
use crate::{SqliteStore, postgres};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long SQLite waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per `INSERT` when importing postcodes: 4 bind parameters each, SQLite allows 32766.
const POSTCODE_CHUNK: usize = 1_000;
/// Postcodes sort bytewise (SQLite's default collation).
pub(crate) const BYTEWISE: &str = "";
/// No row locks: `begin_write` holds the whole database's write lock.
pub(crate) const FOR_UPDATE: &str = "";
pub(crate) const NAME: &str = "sqlite";

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database file named by `url`,
    /// e.g. `sqlite://data/restdose.db` (relative to the working directory) or
    /// `sqlite:///var/lib/restdose/restdose.db`.
    ///
    /// In-memory databases are refused: every pooled connection would see its own.
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
        Self::connect_with_acquire_timeout(url, max_connections, postgres::ACQUIRE_TIMEOUT).await
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

        make_private(options.get_filename()).map_err(|e| {
            StoreError::other(format!(
                "cannot prepare the SQLite database {}: {e}",
                options.get_filename().display()
            ))
        })?;

        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        first_connection(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

/// The database holds encrypted addresses, but also names, postcodes and the blind index: it
/// and its directory are for the service's user only, whatever the umask. A missing directory
/// is created 0700; a missing database file is created empty with mode 0600 before SQLite opens
/// it (SQLite gives its `-wal`, `-shm` and `-journal` files the database file's mode); an
/// existing database or side file that others may read is tightened to 0600 (e.g. one left by
/// an older version; another user's file is only warned about). An existing directory is the operator's: it is left as it is, with a
/// warning when others may read it.
fn make_private(file: &std::path::Path) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = dir {
            if dir.exists() {
                let mode = std::fs::metadata(dir)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = format!("{:o}", mode & 0o777),
                        "the directory of the SQLite database is open to other users: chmod 700 it"
                    );
                }
            } else {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            let mode = match std::fs::metadata(&path) {
                Ok(metadata) => metadata.permissions().mode(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if mode & 0o077 != 0 {
                match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                    Ok(()) => tracing::warn!(
                        file = %path.display(),
                        "the SQLite file was open to other users: its mode is now 600"
                    ),
                    // Another user's file (a shared set-up): say so, and open it as before.
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => tracing::warn!(
                        file = %path.display(),
                        mode = format!("{:o}", mode & 0o777),
                        "the SQLite file is open to other users and not ours to change: chmod 600 it"
                    ),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
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

/// Waits for the pool's first connection, retrying the (short) acquire time-out until the
/// start-up time-out; other errors (a missing directory, a locked file) end the wait at once.
async fn first_connection(pool: &SqlitePool) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + postgres::STARTUP_TIMEOUT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::PoolTimedOut) if std::time::Instant::now() < deadline => {}
            Err(e) => return Err(db_error(e)),
        }
    }
}

/// The one place where SQLite's errors become store errors.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
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

/// A transaction that holds the write lock from its start: racing writers queue on the lock
/// and each sees the previous one's result.
pub(crate) async fn begin_write(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
}

/// A person, their links and mails in one transaction.
pub(crate) async fn insert_registrant_and_mails(
    pool: &SqlitePool,
    new: &NewRegistrant,
    tokens: &[NewToken],
    mails: &[OutboxRow],
) -> StoreResult<()> {
    let mut tx = begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO registrants (id, email_key_id, email_ciphertext, email_index, postcode, \
         radius_km, status, language, created_at, last_mail_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
    )
    .bind(new.id)
    .bind(new.email.key_id)
    .bind(&new.email.ciphertext)
    .bind(&new.email.index)
    .bind(new.postcode.as_str())
    .bind(i64::from(new.radius_km))
    .bind(new.language.code())
    .bind(Ts(new.created_at))
    .bind(ts(new.last_mail_at))
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    SqliteStore::insert_tokens_on(&mut tx, tokens).await?;
    SqliteStore::insert_outbox_on(&mut tx, mails).await?;
    tx.commit().await.map_err(db_error)
}

/// Postcodes in chunks of multi-row `VALUES`, later entries winning.
pub(crate) async fn upsert_postcodes(
    pool: &SqlitePool,
    country: &str,
    entries: &[&PostcodeRow],
) -> StoreResult<u64> {
    let mut tx = begin_write(pool).await?;
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

// --- matcher ------------------------------------------------------------------------------------

/// Nothing to add: the write transaction holds the whole database.
pub(crate) const SKIP_LOCKED: &str = "";
/// "No next wave" (NULL means "due at once"): the largest time there is.
pub(crate) const NEVER: &str = "9223372036854775807";

/// Milliseconds from time `from` to time `to` (SQL expressions; times are milliseconds).
pub(crate) fn millis_between(from: &str, to: &str) -> String {
    format!("(({to}) - ({from}))")
}

/// The unique index that allows one live booking per person (SQLite names the column, not
/// the index).
pub(crate) fn is_one_live_booking(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.is_unique_violation() && e.message().contains("bookings.registrant_id")
}

/// The oldest people in reach (see `MatcherStore::candidates`), from postcodes with their
/// distances, each postcode once. No LATERAL in SQLite: the oldest `limit` per postcode (an
/// index range scan each, on one snapshot), merged here.
pub(crate) async fn candidates(
    pool: &SqlitePool,
    query: &CandidateQuery,
    postcodes: Vec<(String, f32)>,
) -> StoreResult<Vec<Candidate>> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let mut found: Vec<Candidate> = Vec::new();
    for (postcode, distance_km) in postcodes {
        let rows: Vec<CandidateRow> = sqlx::query_as(
            "SELECT r.id AS registrant_id, r.postcode, $2 AS distance_km, r.created_at, \
                 r.language, r.email_key_id, r.email_ciphertext, r.email_index \
             FROM registrants r \
             WHERE r.postcode = $1 AND r.status = 'active' \
               AND r.radius_km >= $2 \
               AND (r.last_invited_at IS NULL OR r.last_invited_at <= $3) \
               AND NOT EXISTS (SELECT 1 FROM invitations i \
                   WHERE i.registrant_id = r.id AND i.status = 'open') \
               AND NOT EXISTS (SELECT 1 FROM bookings b \
                   WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in')) \
               AND NOT EXISTS (SELECT 1 FROM invitations i \
                   WHERE i.offer_id = $4 AND i.registrant_id = r.id) \
               AND (SELECT COUNT(*) FROM invitations i \
                   WHERE i.registrant_id = r.id AND i.created_at > $6) < $7 \
             ORDER BY r.created_at, r.id \
             LIMIT $5",
        )
        .bind(&postcode)
        .bind(distance_km)
        .bind(Ts(query.invited_before))
        .bind(query.offer_id)
        .bind(i64::from(query.limit))
        .bind(Ts(query.counted_since))
        .bind(i64::from(query.max_invitations_since))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for row in rows {
            found.push(Candidate::try_from(row)?);
        }
    }
    tx.rollback().await.map_err(db_error)?;
    // Same order as PostgreSQL: uuids compare bytewise on both.
    found.sort_by_key(|c| (c.created_at, c.registrant_id));
    found.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    Ok(found)
}

/// The people a wave invited, after all its invitations are in.
pub(crate) async fn mark_invited(
    conn: &mut SqliteConnection,
    people: &[Uuid],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    for person in people {
        sqlx::query("UPDATE registrants SET last_invited_at = $2 WHERE id = $1")
            .bind(person)
            .bind(Ts(at))
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Expires up to `limit` invitations due at `now`, counting each person's unanswered ones.
pub(crate) async fn expire_invitations(
    pool: &SqlitePool,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<ExpiredInvitation>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = begin_write(pool).await?;
    let mut rows: Vec<(Uuid, Uuid, Uuid, Ts)> = sqlx::query_as(
        "UPDATE invitations SET status = 'expired' \
         WHERE id IN ( \
             SELECT id FROM invitations \
             WHERE status = 'open' AND expires_at <= $1 \
             ORDER BY expires_at, id \
             LIMIT $2) \
         RETURNING id, registrant_id, offer_id, expires_at",
    )
    .bind(Ts(now))
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    rows.sort_by_key(|(id, _, _, expires_at)| (*expires_at, *id));
    let mut expired = Vec::with_capacity(rows.len());
    for (invitation_id, registrant_id, offer_id, _) in rows {
        let unanswered_in_a_row: i32 = sqlx::query_scalar(
            "UPDATE registrants SET unanswered_in_a_row = unanswered_in_a_row + 1 \
             WHERE id = $1 RETURNING unanswered_in_a_row",
        )
        .bind(registrant_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        expired.push(ExpiredInvitation {
            invitation_id,
            registrant_id,
            offer_id,
            unanswered_in_a_row,
        });
    }
    tx.commit().await.map_err(db_error)?;
    Ok(expired)
}

/// Leases up to `limit` due mails until `lease_until`.
pub(crate) async fn lease_outbox(
    pool: &SqlitePool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<OutboxRow>> {
    let mut tx = begin_write(pool).await?;
    let rows: Vec<OutboxDbRow> = sqlx::query_as(
        "UPDATE outbox SET locked_until = $2 \
         WHERE id IN ( \
             SELECT id FROM outbox \
             WHERE next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
             ORDER BY next_attempt_at, created_at, id \
             LIMIT $3) \
         RETURNING id, key_id, payload, created_at, attempts, next_attempt_at, \
             registrant_id, offer_id",
    )
    .bind(Ts(now))
    .bind(Ts(lease_until))
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(rows.into_iter().map(OutboxRow::from).collect())
}

/// Ends the open invitations of an offer that filled, closed or was cancelled: they become
/// `withdrawn` and their people's throttle is lifted, so the next offer nearby may invite them
/// at once. `last_invited_at` can simply be cleared: the withdrawn invitation was the person's
/// newest (nobody holds two open ones), and the one before it lies beyond the throttle, or
/// this one could not have been sent. The caller holds the write lock.
pub(crate) async fn withdraw_open_invitations(
    conn: &mut SqliteConnection,
    offer_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE registrants SET last_invited_at = NULL \
         WHERE id IN (SELECT registrant_id FROM invitations \
             WHERE offer_id = $1 AND status = 'open')",
    )
    .bind(offer_id)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "UPDATE invitations SET status = 'withdrawn', answered_at = $2 \
         WHERE offer_id = $1 AND status = 'open'",
    )
    .bind(offer_id)
    .bind(Ts(now))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use restdose_store::Store;

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

    #[tokio::test]
    async fn connect_refuses_memory_and_creates_the_directory() {
        let err = SqliteStore::connect("sqlite::memory:", 1)
            .await
            .unwrap_err();
        let source = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("in-memory"), "{err:?}");

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
        let secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(secure, 1);
        store.pool().close().await;
    }

    #[cfg(unix)]
    fn mode(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The database, its WAL and shared-memory files and a directory created for them are the
    /// service user's only; a database file left readable by an older version is tightened.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_its_side_files_and_a_new_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data/restdose.db");
        let url = format!("sqlite://{}", file.display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let (wal, shm) = (
            dir.path().join("data/restdose.db-wal"),
            dir.path().join("data/restdose.db-shm"),
        );
        assert!(
            wal.exists() && shm.exists(),
            "WAL mode keeps both while open"
        );
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(mode(&shm), 0o600);
        store.pool().close().await;

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(mode(&file), 0o600);
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
}
