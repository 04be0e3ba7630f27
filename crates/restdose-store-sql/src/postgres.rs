//! What is PostgreSQL's own: connecting (JIT off), error codes, one-statement sign-ups and
//! bulk inserts that bind arrays (`UNNEST`), and the `FOR UPDATE SKIP LOCKED` leases and the
//! candidate query that live in the matcher.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use restdose_store::{
    Candidate, CandidateQuery, ExpiredInvitation, NewRegistrant, NewToken, OutboxRow, PostcodeRow,
    StoreError, StoreResult,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::encode::Ts;
use crate::matcher::rows::{CandidateRow, ExpiredRow, OutboxDbRow};
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
    .bind(new.postcode.as_str())
    .bind(radius)
    .bind(new.language.code())
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

// --- matcher ------------------------------------------------------------------------------------

/// Added to a subquery that picks rows to lease: rows another worker holds are skipped.
pub(crate) const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";
/// "No next wave" (NULL means "due at once").
pub(crate) const NEVER: &str = "'infinity'::timestamptz";

/// Milliseconds from time `from` to time `to` (SQL expressions).
pub(crate) fn millis_between(from: &str, to: &str) -> String {
    format!("(EXTRACT(EPOCH FROM ({to}) - ({from})) * 1000)")
}

/// The unique index that allows one live booking per person.
pub(crate) fn is_one_live_booking(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.constraint() == Some("bookings_one_live_per_person")
}

/// The oldest people in reach (see `MatcherStore::candidates`), from postcodes with their
/// distances, each postcode once.
pub(crate) async fn candidates(
    pool: &PgPool,
    query: &CandidateQuery,
    postcodes: Vec<(String, f32)>,
) -> StoreResult<Vec<Candidate>> {
    let (codes, distances): (Vec<String>, Vec<f32>) = postcodes.into_iter().unzip();
    // The wave lies entirely at or before a cut-off time that is cheap to find: take each
    // postcode's ceil(limit / postcodes) oldest candidates ("heads"); the limit-th oldest
    // head is the cut-off, since at least `limit` candidates are that old. Then read, from
    // the postcodes whose head is before it, only candidates up to it (a range of the
    // partial index (postcode, created_at) WHERE status = 'active'), oldest `limit` overall.
    // Measured in docs/performance.md: p99 ~8 ms at 2,000,000 people instead of ~130 ms
    // for the plain top-`limit`-per-postcode form, with the same result.
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "WITH p AS MATERIALIZED ( \
             SELECT * FROM UNNEST($2::text[], $3::real[]) AS p (postcode, distance_km) \
         ), \
         heads AS MATERIALIZED ( \
             SELECT p.postcode, p.distance_km, h.created_at \
             FROM p CROSS JOIN LATERAL ( \
                 SELECT r.created_at \
                 FROM registrants r \
                 WHERE r.postcode = p.postcode AND r.status = 'active' \
                   AND r.radius_km >= p.distance_km \
                   AND (r.last_invited_at IS NULL OR r.last_invited_at <= $4) \
                   AND NOT EXISTS (SELECT 1 FROM invitations i \
                       WHERE i.registrant_id = r.id AND i.status = 'open') \
                   AND NOT EXISTS (SELECT 1 FROM bookings b \
                       WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in')) \
                   AND r.id NOT IN (SELECT i.registrant_id FROM invitations i WHERE i.offer_id = $1) \
                   AND (SELECT count(*) FROM invitations i \
                       WHERE i.registrant_id = r.id AND i.created_at > $6) < $7 \
                 ORDER BY r.created_at \
                 LIMIT ($5 + GREATEST(cardinality($2), 1) - 1) / GREATEST(cardinality($2), 1) \
             ) h \
         ), \
         cutoff AS ( \
             SELECT created_at FROM heads ORDER BY created_at OFFSET $5 - 1 LIMIT 1 \
         ), \
         near AS ( \
             SELECT postcode, min(distance_km) AS distance_km \
             FROM heads \
             WHERE created_at <= COALESCE((SELECT created_at FROM cutoff), 'infinity') \
             GROUP BY postcode \
         ) \
         SELECT c.id AS registrant_id, c.postcode, p.distance_km, c.created_at, c.language, \
             c.email_key_id, c.email_ciphertext, c.email_index \
         FROM near p CROSS JOIN LATERAL ( \
             SELECT r.id, r.postcode, r.created_at, r.language, r.email_key_id, \
                 r.email_ciphertext, r.email_index \
             FROM registrants r \
             WHERE r.postcode = p.postcode AND r.status = 'active' \
               AND r.created_at <= COALESCE((SELECT created_at FROM cutoff), 'infinity') \
               AND r.radius_km >= p.distance_km \
               AND (r.last_invited_at IS NULL OR r.last_invited_at <= $4) \
               AND NOT EXISTS (SELECT 1 FROM invitations i \
                   WHERE i.registrant_id = r.id AND i.status = 'open') \
               AND NOT EXISTS (SELECT 1 FROM bookings b \
                   WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in')) \
               AND r.id NOT IN (SELECT i.registrant_id FROM invitations i WHERE i.offer_id = $1) \
               AND (SELECT count(*) FROM invitations i \
                   WHERE i.registrant_id = r.id AND i.created_at > $6) < $7 \
             ORDER BY r.created_at, r.id \
             LIMIT $5 \
         ) c \
         ORDER BY c.created_at, c.id \
         LIMIT $5 \
         ",
    )
    .bind(query.offer_id)
    .bind(codes)
    .bind(distances)
    .bind(Ts(query.invited_before))
    .bind(i64::from(query.limit))
    .bind(Ts(query.counted_since))
    .bind(i64::from(query.max_invitations_since))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.into_iter().map(Candidate::try_from).collect()
}

/// The people a wave invited, after all its invitations are in (see `matcher.rs`).
pub(crate) async fn mark_invited(
    conn: &mut PgConnection,
    people: &[Uuid],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE registrants SET last_invited_at = $2 WHERE id = ANY($1)")
        .bind(people)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Expires up to `limit` invitations due at `now`, counting each person's unanswered ones.
pub(crate) async fn expire_invitations(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<ExpiredInvitation>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // One statement: rows another worker is expiring (or a claim holds) are skipped, and a
    // person has at most one open invitation, so nobody is counted twice.
    let rows: Vec<ExpiredRow> = sqlx::query_as(
        "WITH due AS ( \
             SELECT id FROM invitations \
             WHERE status = 'open' AND expires_at <= $1 \
             ORDER BY expires_at, id \
             LIMIT $2 \
             FOR UPDATE SKIP LOCKED \
         ), expired AS ( \
             UPDATE invitations i SET status = 'expired' \
             FROM due WHERE i.id = due.id AND i.status = 'open' \
             RETURNING i.id, i.registrant_id, i.offer_id, i.expires_at \
         ), counted AS ( \
             UPDATE registrants r SET unanswered_in_a_row = r.unanswered_in_a_row + 1 \
             FROM expired e WHERE r.id = e.registrant_id \
             RETURNING r.id, r.unanswered_in_a_row \
         ) \
         SELECT e.id AS invitation_id, e.registrant_id, e.offer_id, c.unanswered_in_a_row \
         FROM expired e JOIN counted c ON c.id = e.registrant_id \
         ORDER BY e.expires_at, e.id",
    )
    .bind(Ts(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|r| ExpiredInvitation {
            invitation_id: r.invitation_id,
            registrant_id: r.registrant_id,
            offer_id: r.offer_id,
            unanswered_in_a_row: r.unanswered_in_a_row,
        })
        .collect())
}

/// Leases up to `limit` due mails until `lease_until`.
pub(crate) async fn lease_outbox(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<OutboxRow>> {
    let rows: Vec<OutboxDbRow> = sqlx::query_as(
        // `= ANY(ARRAY(...))` rather than `IN (...)`: the planner then fetches the leased
        // rows by primary key instead of hashing a scan of the whole outbox.
        "UPDATE outbox SET locked_until = $2 \
         WHERE id = ANY(ARRAY( \
             SELECT id FROM outbox \
             WHERE next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
             ORDER BY next_attempt_at, created_at, id \
             LIMIT $3 \
             FOR UPDATE SKIP LOCKED)) \
         RETURNING id, key_id, payload, created_at, attempts, next_attempt_at, \
             registrant_id, offer_id",
    )
    .bind(Ts(now))
    .bind(Ts(lease_until))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(OutboxRow::from).collect())
}

/// Ends the open invitations of an offer that filled, closed or was cancelled: they become
/// `withdrawn` and their people's throttle is lifted, so the next offer nearby may invite them
/// at once. `last_invited_at` can simply be cleared: the withdrawn invitation was the person's
/// newest (nobody holds two open ones), and the one before it lies beyond the throttle, or
/// this one could not have been sent.
///
/// The caller holds the offer's row. An invitation locked by someone else is being answered
/// right now (a claim waiting for the offer row, a decline, an expiry) and is skipped: it ends
/// by that answer, and waiting for it while holding the offer would deadlock with a claim.
/// Invitations before people, as everywhere (see the module header).
pub(crate) async fn withdraw_open_invitations(
    conn: &mut PgConnection,
    offer_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "WITH ended AS ( \
             UPDATE invitations SET status = 'withdrawn', answered_at = $2 \
             WHERE id IN (SELECT id FROM invitations \
                 WHERE offer_id = $1 AND status = 'open' \
                 ORDER BY registrant_id FOR UPDATE SKIP LOCKED) \
             RETURNING registrant_id) \
         UPDATE registrants SET last_invited_at = NULL \
         WHERE id IN (SELECT registrant_id FROM ended)",
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
