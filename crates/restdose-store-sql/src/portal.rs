//! `PortalStore`: accounts, sessions, login throttling, account links, API tokens, offers and
//! bookings (tables from `0002_practices_offers.sql`).
//!
//! State changes that must not race (consuming a link, finishing an offer, checking a code in)
//! are single conditional statements or `DELETE … RETURNING`, so two concurrent requests cannot
//! both succeed. On PostgreSQL (READ COMMITTED) the second one waits for the first's row lock
//! and then re-checks its `WHERE` clause against the committed row; on SQLite multi-statement
//! writes run in `BEGIN IMMEDIATE` transactions (`dialect::begin_write`), so writers queue on
//! the busy timeout instead of failing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use macro_rules_attribute::apply;
use restdose_domain::Postcode;
use restdose_store::{
    Account, AccountTokenPurpose, ApiTokenInfo, Booking, BookingStatus, CheckInOutcome, NewAccount,
    NewAccountToken, NewApiToken, NewBooking, NewOffer, NewPractice, NewSession, Offer,
    OfferStatus, PortalStore, Practice, PracticeStatus, Role, SessionRecord, StoreError,
    StoreResult, ThrottleState,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::encode::{Ts, ts};
use crate::{SqlStore, corrupt, for_both_databases, lang, radius_to_db};

/// `run!(query.execute(conn), sql; args…)` is `sqlx::query(sql).bind(arg)….execute(conn)` with
/// errors mapped by the dialect's `db_error` (so it is expanded inside `for_both_databases!`);
/// likewise `query_as` / `query_scalar` with `fetch_one`, `fetch_optional`, `fetch_all`.
/// Statement and arguments stay on a few lines each (rustfmt leaves the call as written).
macro_rules! run {
    ($query:ident.$run:ident($conn:expr), $sql:expr $(; $($arg:expr),+ $(,)?)?) => {
        sqlx::$query($sql)$($(.bind($arg))+)?.$run($conn).await.map_err(db_error)
    };
}

// --- rows -------------------------------------------------------------------------------------

#[derive(FromRow)]
struct AccountRow {
    id: Uuid,
    role: String,
    email: String,
    password_hash: String,
    email_verified_at: Option<Ts>,
    created_at: Ts,
    password_changed_at: Ts,
    language: String,
}

const ACCOUNT_SELECT: &str = "SELECT id, role, email, password_hash, email_verified_at, \
     created_at, password_changed_at, language FROM accounts";

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> StoreResult<Account> {
        Ok(Account {
            id: row.id,
            role: Role::parse(&row.role)
                .ok_or_else(|| corrupt(format!("account {}: unknown role", row.id)))?,
            email: row.email,
            password_hash: row.password_hash,
            email_verified_at: row.email_verified_at.map(Into::into),
            created_at: row.created_at.0,
            password_changed_at: row.password_changed_at.0,
            language: lang(&row.language)?,
        })
    }
}

#[derive(FromRow)]
struct PracticeRow {
    id: Uuid,
    name: String,
    street: String,
    postcode: String,
    city: String,
    phone: String,
    status: String,
    email: String,
    /// A boolean on PostgreSQL, INTEGER 0/1 on SQLite: `bool` decodes both.
    email_verified: bool,
    created_at: Ts,
    decided_at: Option<Ts>,
    language: String,
}

const PRACTICE_SELECT: &str = "SELECT p.account_id AS id, p.name, p.street, p.postcode, \
     p.city, p.phone, p.status, a.email, a.email_verified_at IS NOT NULL AS email_verified, \
     p.created_at, p.decided_at, a.language \
     FROM practices p JOIN accounts a ON a.id = p.account_id";

impl TryFrom<PracticeRow> for Practice {
    type Error = StoreError;

    fn try_from(row: PracticeRow) -> StoreResult<Practice> {
        Ok(Practice {
            id: row.id,
            name: row.name,
            street: row.street,
            postcode: Postcode::from_trusted(row.postcode),
            city: row.city,
            phone: row.phone,
            status: PracticeStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("practice {}: unknown status", row.id)))?,
            email: row.email,
            email_verified: row.email_verified,
            created_at: row.created_at.0,
            decided_at: row.decided_at.map(Into::into),
            language: lang(&row.language)?,
        })
    }
}

/// `failures, last_failure_at, locked_until` of `login_throttle`.
type ThrottleRow = (i32, Ts, Option<Ts>);

fn throttle_state((failures, last_failure_at, locked_until): ThrottleRow) -> ThrottleState {
    ThrottleState {
        failures,
        last_failure_at: last_failure_at.0,
        locked_until: locked_until.map(Into::into),
    }
}

/// `id, name, created_at, last_used_at, revoked_at` of `api_tokens`.
type ApiTokenRow = (Uuid, String, Ts, Option<Ts>, Option<Ts>);

fn api_token_info((id, name, created_at, last_used_at, revoked_at): ApiTokenRow) -> ApiTokenInfo {
    ApiTokenInfo {
        id,
        name,
        created_at: created_at.0,
        last_used_at: last_used_at.map(Into::into),
        revoked_at: revoked_at.map(Into::into),
    }
}

/// Also read by the matcher (`RETURNING {OFFER_COLUMNS}`).
#[derive(FromRow)]
pub(crate) struct OfferRow {
    id: Uuid,
    practice_id: Uuid,
    vaccine: String,
    doses: i32,
    starts_at: Ts,
    ends_at: Ts,
    claim_minutes: i32,
    radius_km: i16,
    note: String,
    postcode: String,
    status: String,
    created_at: Ts,
    closed_at: Option<Ts>,
}

pub(crate) const OFFER_COLUMNS: &str = "id, practice_id, vaccine, doses, starts_at, ends_at, \
     claim_minutes, radius_km, note, postcode, status, created_at, closed_at";

impl TryFrom<OfferRow> for Offer {
    type Error = StoreError;

    fn try_from(row: OfferRow) -> StoreResult<Offer> {
        Ok(Offer {
            id: row.id,
            practice_id: row.practice_id,
            vaccine: row.vaccine,
            doses: row.doses,
            starts_at: row.starts_at.0,
            ends_at: row.ends_at.0,
            claim_minutes: row.claim_minutes,
            radius_km: u16::try_from(row.radius_km)
                .map_err(|_| corrupt(format!("offer {}: negative radius", row.id)))?,
            note: row.note,
            postcode: Postcode::from_trusted(row.postcode),
            status: OfferStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("offer {}: unknown status", row.id)))?,
            created_at: row.created_at.0,
            closed_at: row.closed_at.map(Into::into),
        })
    }
}

#[derive(FromRow)]
struct BookingRow {
    id: Uuid,
    offer_id: Uuid,
    code: String,
    status: String,
    created_at: Ts,
    updated_at: Ts,
}

impl TryFrom<BookingRow> for Booking {
    type Error = StoreError;

    fn try_from(row: BookingRow) -> StoreResult<Booking> {
        Ok(Booking {
            id: row.id,
            offer_id: row.offer_id,
            code: row.code,
            status: BookingStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("booking {}: unknown status", row.id)))?,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

// --- helpers ----------------------------------------------------------------------------------

/// Refuses rows that would link to the wrong account: a programming error, not a user error.
fn check_practice_rows(
    account: &NewAccount,
    practice: &NewPractice,
    verification: &NewAccountToken,
) -> StoreResult<()> {
    let problem = if account.role != Role::Practice {
        "insert_practice needs a practice account"
    } else if practice.account_id != account.id || verification.account_id != account.id {
        "insert_practice: practice and link must belong to the new account"
    } else if verification.purpose != AccountTokenPurpose::VerifyEmail {
        "insert_practice: the link must be an e-mail verification"
    } else {
        return Ok(());
    };
    Err(StoreError::other(problem))
}

#[apply(for_both_databases!)]
impl SqlStore<Db> {
    /// `password_changed_at` starts at `created_at`.
    async fn insert_account_on(
        conn: &mut <Db as sqlx::Database>::Connection,
        account: &NewAccount,
    ) -> StoreResult<()> {
        run!(query.execute(&mut *conn),
            "INSERT INTO accounts (id, role, email, password_hash, email_verified_at, \
             created_at, password_changed_at, language) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)";
            account.id, account.role.as_str(), &account.email, &account.password_hash,
            ts(account.email_verified_at), Ts(account.created_at), account.language.code())?;
        Ok(())
    }

    async fn insert_account_token_on(
        conn: &mut <Db as sqlx::Database>::Connection,
        token: &NewAccountToken,
    ) -> StoreResult<()> {
        run!(query.execute(&mut *conn),
            "INSERT INTO account_tokens (token_hash, account_id, purpose, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)";
            &token.hash, token.account_id, token.purpose.as_str(), Ts(token.created_at),
            Ts(token.expires_at))?;
        Ok(())
    }

    /// Moves a `Booked` booking of this offer to `status` (checked in, no-show) in one
    /// conditional statement; false when there is none (codes are unique: at most one).
    async fn mark_booked_as(
        &self,
        offer_id: Uuid,
        code: &str,
        status: BookingStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = run!(query.execute(&self.pool),
            "UPDATE bookings SET status = $4, updated_at = $3 \
             WHERE offer_id = $1 AND code = $2 AND status = 'booked'";
            offer_id, code, Ts(now), status.as_str())?;
        Ok(done.rows_affected() == 1)
    }
}

#[apply(for_both_databases!)]
#[async_trait]
impl PortalStore for SqlStore<Db> {
    // --- accounts ----------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(account = %account.id))]
    async fn insert_practice(
        &self,
        account: &NewAccount,
        practice: &NewPractice,
        verification: &NewAccountToken,
    ) -> StoreResult<()> {
        check_practice_rows(account, practice, verification)?;
        let mut tx = dialect::begin_write(&self.pool).await?;
        Self::insert_account_on(&mut tx, account).await?;
        run!(query.execute(&mut *tx),
            "INSERT INTO practices (account_id, name, street, postcode, city, phone, status, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)";
            practice.account_id, &practice.name, &practice.street, practice.postcode.as_str(),
            &practice.city, &practice.phone, Ts(practice.created_at))?;
        Self::insert_account_token_on(&mut tx, verification).await?;
        tx.commit().await.map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(account = %account.id))]
    async fn insert_admin(&self, account: &NewAccount) -> StoreResult<()> {
        if account.role != Role::Admin {
            return Err(StoreError::other("insert_admin needs an admin account"));
        }
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        Self::insert_account_on(&mut conn, account).await
    }

    #[tracing::instrument(skip_all, fields(account = %id))]
    async fn account(&self, id: Uuid) -> StoreResult<Option<Account>> {
        let sql = format!("{ACCOUNT_SELECT} WHERE id = $1");
        let row: Option<AccountRow> =
            run!(query_as.fetch_optional(&self.pool), sqlx::AssertSqlSafe(sql); id)?;
        row.map(Account::try_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        let sql = format!("{ACCOUNT_SELECT} WHERE email = $1");
        let row: Option<AccountRow> =
            run!(query_as.fetch_optional(&self.pool), sqlx::AssertSqlSafe(sql); email)?;
        row.map(Account::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(practice = %id))]
    async fn practice(&self, id: Uuid) -> StoreResult<Option<Practice>> {
        let sql = format!("{PRACTICE_SELECT} WHERE p.account_id = $1");
        let row: Option<PracticeRow> =
            run!(query_as.fetch_optional(&self.pool), sqlx::AssertSqlSafe(sql); id)?;
        row.map(Practice::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(status = status.map(PracticeStatus::as_str)))]
    async fn practices(&self, status: Option<PracticeStatus>) -> StoreResult<Vec<Practice>> {
        // PostgreSQL's version cast `$1::text`, which SQLite cannot parse. Not needed: sqlx
        // declares the parameter's type (text) when it prepares the statement.
        let sql = format!(
            "{PRACTICE_SELECT} WHERE ($1 IS NULL OR p.status = $1) \
             ORDER BY p.created_at, p.account_id"
        );
        let rows: Vec<PracticeRow> = run!(query_as.fetch_all(&self.pool), sqlx::AssertSqlSafe(sql);
            status.map(PracticeStatus::as_str))?;
        rows.into_iter().map(Practice::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(practice = %id, status = status.as_str()))]
    async fn set_practice_status(
        &self,
        id: Uuid,
        status: PracticeStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = run!(query.execute(&self.pool),
            "UPDATE practices SET status = $2, decided_at = $3 WHERE account_id = $1";
            id, status.as_str(), Ts(now))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(account = %token.account_id, purpose = token.purpose.as_str()))]
    async fn insert_account_token(&self, token: &NewAccountToken) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        Self::insert_account_token_on(&mut conn, token).await
    }

    #[tracing::instrument(skip_all, fields(purpose = purpose.as_str()))]
    async fn peek_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        run!(query_scalar.fetch_optional(&self.pool),
            "SELECT account_id FROM account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3";
            hash, purpose.as_str(), Ts(now))
    }

    #[tracing::instrument(skip_all, fields(account = %id))]
    async fn delete_account(&self, id: Uuid) -> StoreResult<bool> {
        // Practice, offers with their bookings, API tokens, sessions and links go with the row
        // (ON DELETE CASCADE; on SQLite foreign keys are on for every connection).
        let done = run!(query.execute(&self.pool), "DELETE FROM accounts WHERE id = $1"; id)?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, fields(purpose = purpose.as_str(), account))]
    async fn take_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        // A link of another purpose or an expired one is left alone (and refused).
        let account_id: Option<Uuid> = run!(query_scalar.fetch_optional(&mut *tx),
            "DELETE FROM account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
             RETURNING account_id";
            hash, purpose.as_str(), Ts(now))?;
        let Some(account_id) = account_id else {
            return Ok(None);
        };
        tracing::Span::current().record("account", tracing::field::display(account_id));
        // One link used ends every other of its kind of the account (an older reset mail, a
        // resent verification mail), in the same transaction.
        run!(query.execute(&mut *tx),
            "DELETE FROM account_tokens WHERE account_id = $1 AND purpose = $2";
            account_id, purpose.as_str())?;
        if purpose == AccountTokenPurpose::VerifyEmail {
            run!(query.execute(&mut *tx),
                "UPDATE accounts SET email_verified_at = $2 \
                 WHERE id = $1 AND email_verified_at IS NULL";
                account_id, Ts(now))?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(account_id))
    }

    #[tracing::instrument(skip_all, fields(account = %account_id))]
    async fn set_password(
        &self,
        account_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        let done = run!(query.execute(&mut *tx),
            "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1";
            account_id, password_hash, Ts(now))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        run!(query.execute(&mut *tx), "DELETE FROM sessions WHERE account_id = $1"; account_id)?;
        run!(query.execute(&mut *tx),
            "DELETE FROM account_tokens WHERE account_id = $1"; account_id)?;
        tx.commit().await.map_err(db_error)
    }

    // --- sessions ----------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(account = %session.account_id))]
    async fn insert_session(&self, session: &NewSession) -> StoreResult<()> {
        run!(query.execute(&self.pool),
            "INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at, \
             expires_at) VALUES ($1, $2, $3, $4, $4, $5)";
            &session.id_hash, session.account_id, &session.csrf_token, Ts(session.created_at),
            Ts(session.expires_at))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let row: Option<(Uuid, String, Ts, Ts, Ts)> = run!(query_as.fetch_optional(&self.pool),
            "SELECT account_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions \
             WHERE id_hash = $1 AND expires_at > $2";
            id_hash, Ts(now))?;
        Ok(row.map(
            |(account_id, csrf_token, created, seen, expires)| SessionRecord {
                account_id,
                csrf_token,
                created_at: created.0,
                last_seen_at: seen.0,
                expires_at: expires.0,
            },
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn touch_session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        // An expired session stays expired: touching cannot bring it back.
        run!(query.execute(&self.pool),
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3 \
             WHERE id_hash = $1 AND expires_at > $2";
            id_hash, Ts(now), Ts(expires_at))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        run!(query.execute(&self.pool), "DELETE FROM sessions WHERE id_hash = $1"; id_hash)?;
        Ok(())
    }

    // --- login throttling --------------------------------------------------------------------

    #[tracing::instrument(skip_all)]
    async fn throttle_state(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        let row: Option<ThrottleRow> = run!(query_as.fetch_optional(&self.pool),
            "SELECT failures, last_failure_at, locked_until FROM login_throttle \
             WHERE throttle_key = $1"; key)?;
        Ok(row.map(throttle_state))
    }

    #[tracing::instrument(skip_all)]
    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ThrottleState> {
        let row: ThrottleRow = run!(query_as.fetch_one(&self.pool),
            "INSERT INTO login_throttle (throttle_key, failures, last_failure_at) \
             VALUES ($1, 1, $2) \
             ON CONFLICT (throttle_key) DO UPDATE \
             SET failures = login_throttle.failures + 1, \
                 last_failure_at = EXCLUDED.last_failure_at \
             RETURNING failures, last_failure_at, locked_until";
            key, Ts(now))?;
        Ok(throttle_state(row))
    }

    #[tracing::instrument(skip_all)]
    async fn lock_login(&self, key: &str, until: DateTime<Utc>) -> StoreResult<()> {
        // Locks follow recorded failures; a key without any has nothing to lock.
        run!(query.execute(&self.pool),
            "UPDATE login_throttle SET locked_until = $2 WHERE throttle_key = $1"; key, Ts(until))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        run!(query.execute(&self.pool), "DELETE FROM login_throttle WHERE throttle_key = $1"; key)?;
        Ok(())
    }

    // --- abuse limits ------------------------------------------------------------------------

    #[tracing::instrument(skip_all)]
    async fn count_hit(&self, key: &[u8], window_start: DateTime<Utc>) -> StoreResult<i64> {
        let hits: i32 = run!(query_scalar.fetch_one(&self.pool),
            "INSERT INTO rate_counters (counter_key, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (counter_key, window_start) DO UPDATE \
             SET hits = rate_counters.hits + 1 \
             RETURNING hits";
            key, Ts(window_start))?;
        Ok(i64::from(hits))
    }

    // --- API tokens --------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(practice = %token.practice_id, token = %token.id))]
    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        run!(query.execute(&self.pool),
            "INSERT INTO api_tokens (id, practice_id, name, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)";
            token.id, token.practice_id, &token.name, &token.hash, Ts(token.created_at))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id))]
    async fn api_tokens(&self, practice_id: Uuid) -> StoreResult<Vec<ApiTokenInfo>> {
        let rows: Vec<ApiTokenRow> = run!(query_as.fetch_all(&self.pool),
            "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens \
             WHERE practice_id = $1 ORDER BY created_at DESC, id DESC"; practice_id)?;
        Ok(rows.into_iter().map(api_token_info).collect())
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id, token = %id))]
    async fn revoke_api_token(
        &self,
        practice_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = run!(query.execute(&self.pool),
            "UPDATE api_tokens SET revoked_at = $3 \
             WHERE id = $2 AND practice_id = $1 AND revoked_at IS NULL";
            practice_id, id, Ts(now))?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(practice))]
    async fn practice_for_api_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let practice: Option<Uuid> = run!(query_scalar.fetch_optional(&self.pool),
            "UPDATE api_tokens SET last_used_at = $2 \
             WHERE token_hash = $1 AND revoked_at IS NULL \
             RETURNING practice_id";
            hash, Ts(now))?;
        if let Some(practice) = practice {
            tracing::Span::current().record("practice", tracing::field::display(practice));
        }
        Ok(practice)
    }

    // --- offers and bookings -----------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(practice = %offer.practice_id, offer = %offer.id))]
    async fn insert_offer(&self, offer: &NewOffer) -> StoreResult<()> {
        run!(query.execute(&self.pool),
            "INSERT INTO offers (id, practice_id, vaccine, doses, starts_at, ends_at, \
             claim_minutes, radius_km, note, postcode, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11)";
            offer.id, offer.practice_id, &offer.vaccine, offer.doses, Ts(offer.starts_at),
            Ts(offer.ends_at), offer.claim_minutes, radius_to_db(offer.radius_km)?,
            &offer.note, offer.postcode.as_str(), Ts(offer.created_at))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %id))]
    async fn offer(&self, id: Uuid) -> StoreResult<Option<Offer>> {
        let sql = format!("SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1");
        let row: Option<OfferRow> =
            run!(query_as.fetch_optional(&self.pool), sqlx::AssertSqlSafe(sql); id)?;
        row.map(Offer::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id))]
    async fn offers_of(&self, practice_id: Uuid) -> StoreResult<Vec<Offer>> {
        let sql = format!(
            "SELECT {OFFER_COLUMNS} FROM offers WHERE practice_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let rows: Vec<OfferRow> =
            run!(query_as.fetch_all(&self.pool), sqlx::AssertSqlSafe(sql); practice_id)?;
        rows.into_iter().map(Offer::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(offer = %id, status = status.as_str()))]
    async fn finish_offer(
        &self,
        id: Uuid,
        status: OfferStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        if status == OfferStatus::Open {
            return Err(StoreError::other(
                "finish_offer needs Closed or Cancelled, not Open",
            ));
        }
        let mut tx = dialect::begin_write(&self.pool).await?;
        let done = run!(query.execute(&mut *tx),
            "UPDATE offers SET status = $2, closed_at = $3 WHERE id = $1 AND status = 'open'";
            id, status.as_str(), Ts(now))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if status == OfferStatus::Cancelled {
            run!(query.execute(&mut *tx),
                "UPDATE bookings SET status = 'cancelled', updated_at = $2 \
                 WHERE offer_id = $1 AND status = 'booked'";
                id, Ts(now))?;
        }
        // Open invitations of a finished offer cannot be claimed any more: end them now, so
        // their people can be invited elsewhere and the silence does not count against them.
        dialect::withdraw_open_invitations(&mut tx, id, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(offer = %id, more = more))]
    async fn add_doses(&self, id: Uuid, more: i32) -> StoreResult<Option<i32>> {
        if more < 1 {
            return Ok(None);
        }
        // `1000 - more` cannot overflow for a positive `more`.
        run!(query_scalar.fetch_optional(&self.pool),
            "UPDATE offers SET doses = doses + $2 \
             WHERE id = $1 AND status = 'open' AND doses <= 1000 - $2 \
             RETURNING doses";
            id, more)
    }

    #[tracing::instrument(skip_all, fields(offer = %booking.offer_id, booking = %booking.id))]
    async fn insert_booking(&self, booking: &NewBooking) -> StoreResult<()> {
        run!(query.execute(&self.pool),
            "INSERT INTO bookings (id, offer_id, registrant_id, code, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 'booked', $5, $5)";
            booking.id, booking.offer_id, booking.registrant_id, &booking.code,
            Ts(booking.created_at))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn bookings_of(&self, offer_id: Uuid) -> StoreResult<Vec<Booking>> {
        let rows: Vec<BookingRow> = run!(query_as.fetch_all(&self.pool),
            "SELECT id, offer_id, code, status, created_at, updated_at FROM bookings \
             WHERE offer_id = $1 ORDER BY created_at, id"; offer_id)?;
        rows.into_iter().map(Booking::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, status = status.as_str()))]
    async fn booked_registrants(
        &self,
        offer_id: Uuid,
        status: BookingStatus,
    ) -> StoreResult<Vec<Uuid>> {
        run!(query_scalar.fetch_all(&self.pool),
            "SELECT registrant_id FROM bookings \
             WHERE offer_id = $1 AND status = $2 AND registrant_id IS NOT NULL \
             ORDER BY created_at, id";
            offer_id, status.as_str())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn check_in(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<CheckInOutcome> {
        if self
            .mark_booked_as(offer_id, code, BookingStatus::CheckedIn, now)
            .await?
        {
            return Ok(CheckInOutcome::CheckedIn);
        }
        // No booking ever returns to 'booked', so this answer cannot go stale.
        let exists: Option<i32> = run!(query_scalar.fetch_optional(&self.pool),
            "SELECT 1 FROM bookings WHERE offer_id = $1 AND code = $2"; offer_id, code)?;
        Ok(exists.map_or(CheckInOutcome::Unknown, |_| CheckInOutcome::AlreadyUsed))
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn mark_no_show(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.mark_booked_as(offer_id, code, BookingStatus::NoShow, now)
            .await
    }
}
