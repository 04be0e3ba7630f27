//! `PortalStore` for PostgreSQL: accounts, sessions, login throttling, account links, API
//! tokens, offers and bookings (tables from `0002_practices_offers.sql`).
//!
//! State changes that must not race (consuming a link, finishing an offer, checking a code in)
//! are single conditional statements or `DELETE … RETURNING`, so two concurrent requests cannot
//! both succeed: under READ COMMITTED the second one waits for the first's row lock and then
//! re-checks its `WHERE` clause against the committed row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_store::{
    Account, AccountTokenPurpose, ApiTokenInfo, Booking, BookingStatus, CheckInOutcome, NewAccount,
    NewAccountToken, NewApiToken, NewBooking, NewOffer, NewPractice, NewSession, Offer,
    OfferStatus, PortalStore, Practice, PracticeStatus, Role, SessionRecord, StoreError,
    StoreResult, ThrottleState,
};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::{PgStore, corrupt, db_error, radius_to_db};

// --- rows -------------------------------------------------------------------------------------

#[derive(FromRow)]
struct AccountRow {
    id: Uuid,
    role: String,
    email: String,
    password_hash: String,
    email_verified_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    password_changed_at: DateTime<Utc>,
    language: String,
}

const ACCOUNT_COLUMNS: &str = "id, role, email, password_hash, email_verified_at, created_at, \
     password_changed_at, language";

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> StoreResult<Account> {
        Ok(Account {
            id: row.id,
            role: Role::parse(&row.role)
                .ok_or_else(|| corrupt(format!("account {}: unknown role", row.id)))?,
            email: row.email,
            password_hash: row.password_hash,
            email_verified_at: row.email_verified_at,
            created_at: row.created_at,
            password_changed_at: row.password_changed_at,
            language: row.language,
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
    email_verified: bool,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
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
            postcode: row.postcode,
            city: row.city,
            phone: row.phone,
            status: PracticeStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("practice {}: unknown status", row.id)))?,
            email: row.email,
            email_verified: row.email_verified,
            created_at: row.created_at,
            decided_at: row.decided_at,
            language: row.language,
        })
    }
}

#[derive(FromRow)]
struct SessionRow {
    account_id: Uuid,
    csrf_token: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> SessionRecord {
        SessionRecord {
            account_id: row.account_id,
            csrf_token: row.csrf_token,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(FromRow)]
struct ThrottleRow {
    failures: i32,
    last_failure_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

impl From<ThrottleRow> for ThrottleState {
    fn from(row: ThrottleRow) -> ThrottleState {
        ThrottleState {
            failures: row.failures,
            last_failure_at: row.last_failure_at,
            locked_until: row.locked_until,
        }
    }
}

#[derive(FromRow)]
struct ApiTokenRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenRow> for ApiTokenInfo {
    fn from(row: ApiTokenRow) -> ApiTokenInfo {
        ApiTokenInfo {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct OfferRow {
    id: Uuid,
    practice_id: Uuid,
    vaccine: String,
    doses: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    claim_minutes: i32,
    radius_km: i16,
    note: String,
    postcode: String,
    status: String,
    created_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
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
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            claim_minutes: row.claim_minutes,
            radius_km: u16::try_from(row.radius_km)
                .map_err(|_| corrupt(format!("offer {}: negative radius", row.id)))?,
            note: row.note,
            postcode: row.postcode,
            status: OfferStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("offer {}: unknown status", row.id)))?,
            created_at: row.created_at,
            closed_at: row.closed_at,
        })
    }
}

#[derive(FromRow)]
struct BookingRow {
    id: Uuid,
    offer_id: Uuid,
    code: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            created_at: row.created_at,
            updated_at: row.updated_at,
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
    if account.role != Role::Practice {
        return Err(StoreError::other(
            "insert_practice needs a practice account",
        ));
    }
    if practice.account_id != account.id || verification.account_id != account.id {
        return Err(StoreError::other(
            "insert_practice: practice and link must belong to the new account",
        ));
    }
    if verification.purpose != AccountTokenPurpose::VerifyEmail {
        return Err(StoreError::other(
            "insert_practice: the link must be an e-mail verification",
        ));
    }
    Ok(())
}

/// `password_changed_at` starts at `created_at`.
async fn insert_account_on(conn: &mut PgConnection, account: &NewAccount) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO accounts (id, role, email, password_hash, email_verified_at, created_at, \
         password_changed_at, language) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind(account.id)
    .bind(account.role.as_str())
    .bind(&account.email)
    .bind(&account.password_hash)
    .bind(account.email_verified_at)
    .bind(account.created_at)
    .bind(&account.language)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_account_token_on(
    conn: &mut PgConnection,
    token: &NewAccountToken,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, account_id, purpose, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.hash)
    .bind(token.account_id)
    .bind(token.purpose.as_str())
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl PortalStore for PgStore {
    // --- accounts ----------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(account = %account.id))]
    async fn insert_practice(
        &self,
        account: &NewAccount,
        practice: &NewPractice,
        verification: &NewAccountToken,
    ) -> StoreResult<()> {
        check_practice_rows(account, practice, verification)?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_account_on(&mut tx, account).await?;
        sqlx::query(
            "INSERT INTO practices (account_id, name, street, postcode, city, phone, status, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
        )
        .bind(practice.account_id)
        .bind(&practice.name)
        .bind(&practice.street)
        .bind(&practice.postcode)
        .bind(&practice.city)
        .bind(&practice.phone)
        .bind(practice.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_account_token_on(&mut tx, verification).await?;
        tx.commit().await.map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(account = %account.id))]
    async fn insert_admin(&self, account: &NewAccount) -> StoreResult<()> {
        if account.role != Role::Admin {
            return Err(StoreError::other("insert_admin needs an admin account"));
        }
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        insert_account_on(&mut conn, account).await
    }

    #[tracing::instrument(skip_all, fields(account = %id))]
    async fn account(&self, id: Uuid) -> StoreResult<Option<Account>> {
        let row: Option<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Account::try_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        let row: Option<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Account::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(practice = %id))]
    async fn practice(&self, id: Uuid) -> StoreResult<Option<Practice>> {
        let row: Option<PracticeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{PRACTICE_SELECT} WHERE p.account_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Practice::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(status = status.map(PracticeStatus::as_str)))]
    async fn practices(&self, status: Option<PracticeStatus>) -> StoreResult<Vec<Practice>> {
        let rows: Vec<PracticeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{PRACTICE_SELECT} WHERE ($1::text IS NULL OR p.status = $1) \
             ORDER BY p.created_at, p.account_id"
        )))
        .bind(status.map(PracticeStatus::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Practice::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(practice = %id, status = status.as_str()))]
    async fn set_practice_status(
        &self,
        id: Uuid,
        status: PracticeStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE practices SET status = $2, decided_at = $3 WHERE account_id = $1")
                .bind(id)
                .bind(status.as_str())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(account = %token.account_id, purpose = token.purpose.as_str()))]
    async fn insert_account_token(&self, token: &NewAccountToken) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        insert_account_token_on(&mut conn, token).await
    }

    #[tracing::instrument(skip_all, fields(purpose = purpose.as_str()))]
    async fn peek_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        sqlx::query_scalar(
            "SELECT account_id FROM account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(account = %id))]
    async fn delete_account(&self, id: Uuid) -> StoreResult<bool> {
        // Practice, offers with their bookings, API tokens, sessions and links go with the row
        // (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, fields(purpose = purpose.as_str(), account))]
    async fn take_account_token(
        &self,
        hash: &[u8],
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A link of another purpose or an expired one is left alone (and refused).
        let account_id: Option<Uuid> = sqlx::query_scalar(
            "DELETE FROM account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
             RETURNING account_id",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(account_id) = account_id else {
            return Ok(None);
        };
        tracing::Span::current().record("account", tracing::field::display(account_id));
        if purpose == AccountTokenPurpose::VerifyEmail {
            sqlx::query(
                "UPDATE accounts SET email_verified_at = $2 \
                 WHERE id = $1 AND email_verified_at IS NULL",
            )
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
        )
        .bind(account_id)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    // --- sessions ----------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(account = %session.account_id))]
    async fn insert_session(&self, session: &NewSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at, \
             expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(&session.id_hash)
        .bind(session.account_id)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT account_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(SessionRecord::from))
    }

    #[tracing::instrument(skip_all)]
    async fn touch_session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        // An expired session stays expired: touching cannot bring it back.
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3 \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    // --- login throttling --------------------------------------------------------------------

    #[tracing::instrument(skip_all)]
    async fn throttle_state(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        let row: Option<ThrottleRow> = sqlx::query_as(
            "SELECT failures, last_failure_at, locked_until FROM login_throttle \
             WHERE throttle_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(ThrottleState::from))
    }

    #[tracing::instrument(skip_all)]
    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ThrottleState> {
        let row: ThrottleRow = sqlx::query_as(
            "INSERT INTO login_throttle (throttle_key, failures, last_failure_at) \
             VALUES ($1, 1, $2) \
             ON CONFLICT (throttle_key) DO UPDATE \
             SET failures = login_throttle.failures + 1, last_failure_at = EXCLUDED.last_failure_at \
             RETURNING failures, last_failure_at, locked_until",
        )
        .bind(key)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.into())
    }

    #[tracing::instrument(skip_all)]
    async fn lock_login(&self, key: &str, until: DateTime<Utc>) -> StoreResult<()> {
        // Locks follow recorded failures; a key without any has nothing to lock.
        sqlx::query("UPDATE login_throttle SET locked_until = $2 WHERE throttle_key = $1")
            .bind(key)
            .bind(until)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    // --- API tokens --------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(practice = %token.practice_id, token = %token.id))]
    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, practice_id, name, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id)
        .bind(token.practice_id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id))]
    async fn api_tokens(&self, practice_id: Uuid) -> StoreResult<Vec<ApiTokenInfo>> {
        let rows: Vec<ApiTokenRow> = sqlx::query_as(
            "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens \
             WHERE practice_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(practice_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(ApiTokenInfo::from).collect())
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id, token = %id))]
    async fn revoke_api_token(
        &self,
        practice_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 \
             WHERE id = $2 AND practice_id = $1 AND revoked_at IS NULL",
        )
        .bind(practice_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(practice))]
    async fn practice_for_api_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let practice: Option<Uuid> = sqlx::query_scalar(
            "UPDATE api_tokens SET last_used_at = $2 \
             WHERE token_hash = $1 AND revoked_at IS NULL \
             RETURNING practice_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if let Some(practice) = practice {
            tracing::Span::current().record("practice", tracing::field::display(practice));
        }
        Ok(practice)
    }

    // --- offers and bookings -----------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(practice = %offer.practice_id, offer = %offer.id))]
    async fn insert_offer(&self, offer: &NewOffer) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO offers (id, practice_id, vaccine, doses, starts_at, ends_at, \
             claim_minutes, radius_km, note, postcode, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11)",
        )
        .bind(offer.id)
        .bind(offer.practice_id)
        .bind(&offer.vaccine)
        .bind(offer.doses)
        .bind(offer.starts_at)
        .bind(offer.ends_at)
        .bind(offer.claim_minutes)
        .bind(radius_to_db(offer.radius_km)?)
        .bind(&offer.note)
        .bind(&offer.postcode)
        .bind(offer.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %id))]
    async fn offer(&self, id: Uuid) -> StoreResult<Option<Offer>> {
        let row: Option<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Offer::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(practice = %practice_id))]
    async fn offers_of(&self, practice_id: Uuid) -> StoreResult<Vec<Offer>> {
        let rows: Vec<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {OFFER_COLUMNS} FROM offers WHERE practice_id = $1 \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(practice_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE offers SET status = $2, closed_at = $3 WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if status == OfferStatus::Cancelled {
            sqlx::query(
                "UPDATE bookings SET status = 'cancelled', updated_at = $2 \
                 WHERE offer_id = $1 AND status = 'booked'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        // Open invitations of a finished offer cannot be claimed any more: end them now, so
        // their people can be invited elsewhere and the silence does not count against them.
        crate::matcher::withdraw_open_invitations(&mut tx, id, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(offer = %id, more = more))]
    async fn add_doses(&self, id: Uuid, more: i32) -> StoreResult<Option<i32>> {
        if more < 1 {
            return Ok(None);
        }
        // `1000 - more` cannot overflow for a positive `more`.
        let doses: Option<i32> = sqlx::query_scalar(
            "UPDATE offers SET doses = doses + $2 \
             WHERE id = $1 AND status = 'open' AND doses <= 1000 - $2 \
             RETURNING doses",
        )
        .bind(id)
        .bind(more)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(doses)
    }

    #[tracing::instrument(skip_all, fields(offer = %booking.offer_id, booking = %booking.id))]
    async fn insert_booking(&self, booking: &NewBooking) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO bookings (id, offer_id, registrant_id, code, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 'booked', $5, $5)",
        )
        .bind(booking.id)
        .bind(booking.offer_id)
        .bind(booking.registrant_id)
        .bind(&booking.code)
        .bind(booking.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn bookings_of(&self, offer_id: Uuid) -> StoreResult<Vec<Booking>> {
        let rows: Vec<BookingRow> = sqlx::query_as(
            "SELECT id, offer_id, code, status, created_at, updated_at FROM bookings \
             WHERE offer_id = $1 ORDER BY created_at, id",
        )
        .bind(offer_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Booking::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, status = status.as_str()))]
    async fn booked_registrants(
        &self,
        offer_id: Uuid,
        status: BookingStatus,
    ) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar(
            "SELECT registrant_id FROM bookings \
             WHERE offer_id = $1 AND status = $2 AND registrant_id IS NOT NULL \
             ORDER BY created_at, id",
        )
        .bind(offer_id)
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn check_in(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<CheckInOutcome> {
        let done = sqlx::query(
            "UPDATE bookings SET status = 'checked_in', updated_at = $3 \
             WHERE offer_id = $1 AND code = $2 AND status = 'booked'",
        )
        .bind(offer_id)
        .bind(code)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if done.rows_affected() > 0 {
            return Ok(CheckInOutcome::CheckedIn);
        }
        // No booking ever returns to 'booked', so this answer cannot go stale.
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM bookings WHERE offer_id = $1 AND code = $2")
                .bind(offer_id)
                .bind(code)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(match exists {
            Some(_) => CheckInOutcome::AlreadyUsed,
            None => CheckInOutcome::Unknown,
        })
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn mark_no_show(
        &self,
        offer_id: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE bookings SET status = 'no_show', updated_at = $3 \
             WHERE offer_id = $1 AND code = $2 AND status = 'booked'",
        )
        .bind(offer_id)
        .bind(code)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}
