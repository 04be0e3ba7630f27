//! `MatcherStore` for SQLite: waves of invitations, claims, expiry, booking links and the mail
//! outbox (tables from `0003_matcher_outbox.sql`).
//!
//! SQLite has one writer at a time, so every read-then-write runs in a `BEGIN IMMEDIATE`
//! transaction: racing claims, leases and expiries queue on the write lock and each sees what
//! the previous one committed. The conditional statements are the same as on PostgreSQL, so
//! the two backends answer alike.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_store::{
    Acceptance, AnswerCounts, BookingRecord, BookingStatus, Candidate, CandidateQuery,
    ClaimOutcome, ExpiredInvitation, Invitation, InvitationStatus, MatcherStore, NewClaim,
    NewRegistrant, NewToken, NewWave, Offer, OfferCancellation, OfferProgress, OutboxRow,
    StoreError, StoreResult, StoredEmail, mails_for_holders,
};
use sqlx::{FromRow, SqliteConnection};
use uuid::Uuid;

use crate::portal::{OFFER_COLUMNS, OfferRow};
use crate::{BEGIN_WRITE, SqliteStore, corrupt, db_error, from_millis, from_opt_millis, millis};

/// Longest error text kept on an outbox row.
const OUTBOX_ERROR_CHARS: usize = 500;

/// `next_wave_at` of an offer the matcher should never look at again (NULL means "due now").
const NEVER: i64 = i64::MAX;

fn int<T: TryFrom<i64>>(value: i64, what: &str, id: Uuid) -> StoreResult<T> {
    T::try_from(value).map_err(|_| corrupt(format!("{what} of {id} out of range: {value}")))
}

// --- rows -------------------------------------------------------------------------------------

#[derive(FromRow)]
struct ProgressRow {
    id: Uuid,
    claimed: i64,
    invited: i64,
    waves: i64,
    next_wave_at: Option<i64>,
    last_call_sent: bool,
}

#[derive(FromRow)]
struct CandidateRow {
    registrant_id: Uuid,
    postcode: String,
    created_at: i64,
    language: String,
    email_key_id: i64,
    email_ciphertext: Vec<u8>,
    email_index: Vec<u8>,
}

#[derive(FromRow)]
struct InvitationRow {
    id: Uuid,
    offer_id: Uuid,
    registrant_id: Uuid,
    wave: i64,
    last_call: bool,
    distance_km: f64,
    status: String,
    created_at: i64,
    expires_at: i64,
    answered_at: Option<i64>,
}

const INVITATION_COLUMNS: &str = "id, offer_id, registrant_id, wave, last_call, distance_km, \
     status, created_at, expires_at, answered_at";

fn invitation_status(s: &str, id: Uuid) -> StoreResult<InvitationStatus> {
    InvitationStatus::parse(s)
        .ok_or_else(|| corrupt(format!("invitation {id}: unknown status {s:?}")))
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;

    fn try_from(row: InvitationRow) -> StoreResult<Invitation> {
        Ok(Invitation {
            id: row.id,
            offer_id: row.offer_id,
            registrant_id: row.registrant_id,
            wave: int(row.wave, "wave", row.id)?,
            last_call: row.last_call,
            // Stored from an f32, so this is exact.
            distance_km: row.distance_km as f32,
            status: invitation_status(&row.status, row.id)?,
            created_at: from_millis(row.created_at)?,
            expires_at: from_millis(row.expires_at)?,
            answered_at: from_opt_millis(row.answered_at)?,
        })
    }
}

/// What a claim needs to know about its invitation.
#[derive(FromRow)]
struct ClaimedInvitationRow {
    id: Uuid,
    offer_id: Uuid,
    registrant_id: Uuid,
    status: String,
    expires_at: i64,
}

#[derive(FromRow)]
struct OfferStateRow {
    status: String,
    ends_at: i64,
}

#[derive(FromRow)]
struct ExpiringRow {
    id: Uuid,
    registrant_id: Uuid,
    offer_id: Uuid,
    expires_at: i64,
}

#[derive(FromRow)]
struct BookingRecordRow {
    id: Uuid,
    offer_id: Uuid,
    registrant_id: Option<Uuid>,
    code: String,
    status: String,
    created_at: i64,
}

#[derive(FromRow)]
struct OutboxDbRow {
    id: Uuid,
    key_id: i64,
    payload: Vec<u8>,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    registrant_id: Option<Uuid>,
    offer_id: Option<Uuid>,
}

impl TryFrom<OutboxDbRow> for OutboxRow {
    type Error = StoreError;

    fn try_from(row: OutboxDbRow) -> StoreResult<OutboxRow> {
        Ok(OutboxRow {
            id: row.id,
            key_id: int(row.key_id, "key id", row.id)?,
            payload: row.payload,
            created_at: from_millis(row.created_at)?,
            attempts: int(row.attempts, "attempts", row.id)?,
            next_attempt_at: from_millis(row.next_attempt_at)?,
            registrant_id: row.registrant_id,
            offer_id: row.offer_id,
        })
    }
}

// --- helpers ----------------------------------------------------------------------------------

pub(crate) async fn insert_outbox_on(
    conn: &mut SqliteConnection,
    rows: &[OutboxRow],
) -> StoreResult<()> {
    for row in rows {
        sqlx::query(
            "INSERT INTO outbox (id, key_id, payload, created_at, attempts, next_attempt_at, \
                 registrant_id, offer_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(row.id)
        .bind(row.key_id)
        .bind(&row.payload)
        .bind(millis(row.created_at))
        .bind(row.attempts)
        .bind(millis(row.next_attempt_at))
        .bind(row.registrant_id)
        .bind(row.offer_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
}

/// Each postcode once, with its shortest distance (a repeated postcode must not list its
/// people twice).
fn distinct_postcodes(postcodes: &[(String, f32)]) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = Vec::with_capacity(postcodes.len());
    for (postcode, distance) in postcodes {
        match out.iter_mut().find(|(p, _)| p == postcode) {
            Some((_, d)) => *d = d.min(*distance),
            None => out.push((postcode.clone(), *distance)),
        }
    }
    out
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn limit_to_db(limit: u32) -> i64 {
    i64::from(limit)
}

#[async_trait]
impl MatcherStore for SqliteStore {
    // --- waves -------------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(offer))]
    async fn lease_due_offer(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<Offer>> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        // SQLite sorts NULLs first, like `NULLS FIRST` on PostgreSQL.
        let row: Option<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET next_wave_at = ?2 \
             WHERE id = ( \
                 SELECT id FROM offers \
                 WHERE status = 'open' AND ends_at > ?1 \
                   AND (next_wave_at IS NULL OR next_wave_at <= ?1) \
                 ORDER BY next_wave_at, created_at, id \
                 LIMIT 1) \
             RETURNING {OFFER_COLUMNS}"
        )))
        .bind(millis(now))
        .bind(millis(lease_until))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let offer = row.map(Offer::try_from).transpose()?;
        if let Some(offer) = &offer {
            tracing::Span::current().record("offer", tracing::field::display(offer.id));
        }
        Ok(offer)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn offer_progress(&self, offer_id: Uuid) -> StoreResult<Option<OfferProgress>> {
        let row: Option<ProgressRow> = sqlx::query_as(
            "SELECT id, claimed, invited, waves, \
                 CASE WHEN next_wave_at = ?2 THEN NULL ELSE next_wave_at END AS next_wave_at, \
                 last_call_sent \
             FROM offers WHERE id = ?1",
        )
        .bind(offer_id)
        .bind(NEVER)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(OfferProgress {
                claimed: int(r.claimed, "claimed", r.id)?,
                invited: int(r.invited, "invited", r.id)?,
                waves: int(r.waves, "waves", r.id)?,
                next_wave_at: from_opt_millis(r.next_wave_at)?,
                last_call_sent: r.last_call_sent,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, fields(offer = %query.offer_id, postcodes = query.postcodes.len(), limit = query.limit, found))]
    async fn candidates(&self, query: &CandidateQuery) -> StoreResult<Vec<Candidate>> {
        let postcodes = distinct_postcodes(&query.postcodes);
        if postcodes.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        // No LATERAL in SQLite: the oldest `limit` per postcode (an index range scan each,
        // on one snapshot), merged here.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut found: Vec<Candidate> = Vec::new();
        for (postcode, distance_km) in postcodes {
            let rows: Vec<CandidateRow> = sqlx::query_as(
                "SELECT r.id AS registrant_id, r.postcode, r.created_at, r.language, \
                     r.email_key_id, r.email_ciphertext, r.email_index \
                 FROM registrants r \
                 WHERE r.postcode = ?1 AND r.status = 'active' \
                   AND r.radius_km >= ?2 \
                   AND (r.last_invited_at IS NULL OR r.last_invited_at <= ?3) \
                   AND NOT EXISTS (SELECT 1 FROM invitations i \
                       WHERE i.registrant_id = r.id AND i.status = 'open') \
                   AND NOT EXISTS (SELECT 1 FROM bookings b \
                       WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in')) \
                   AND NOT EXISTS (SELECT 1 FROM invitations i \
                       WHERE i.offer_id = ?4 AND i.registrant_id = r.id) \
                   AND (SELECT COUNT(*) FROM invitations i \
                       WHERE i.registrant_id = r.id AND i.created_at > ?6) < ?7 \
                 ORDER BY r.created_at, r.id \
                 LIMIT ?5",
            )
            .bind(&postcode)
            .bind(f64::from(distance_km))
            .bind(millis(query.invited_before))
            .bind(query.offer_id)
            .bind(limit_to_db(query.limit))
            .bind(millis(query.counted_since))
            .bind(i64::from(query.max_invitations_since))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            for row in rows {
                found.push(Candidate {
                    registrant_id: row.registrant_id,
                    postcode: row.postcode,
                    distance_km,
                    created_at: from_millis(row.created_at)?,
                    language: row.language,
                    email: StoredEmail {
                        key_id: int(row.email_key_id, "key id", row.registrant_id)?,
                        ciphertext: row.email_ciphertext,
                        index: row.email_index,
                    },
                });
            }
        }
        tx.rollback().await.map_err(db_error)?;
        // Same order as PostgreSQL: uuids compare bytewise on both.
        found.sort_by_key(|c| (c.created_at, c.registrant_id));
        found.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
        tracing::Span::current().record("found", found.len());
        Ok(found)
    }

    #[tracing::instrument(skip_all, fields(offer = %wave.offer_id, wave = wave.wave, invitations = wave.invitations.len(), inserted))]
    async fn record_wave(&self, wave: &NewWave) -> StoreResult<u32> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let claimed_wave = sqlx::query(
            "UPDATE offers SET waves = ?2, next_wave_at = ?3, \
                 last_call_sent = (last_call_sent OR ?4) \
             WHERE id = ?1 AND status = 'open' AND waves = ?2 - 1",
        )
        .bind(wave.offer_id)
        .bind(wave.wave)
        .bind(millis(wave.next_wave_at))
        .bind(wave.last_call)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if claimed_wave.rows_affected() == 0 {
            tx.rollback().await.map_err(db_error)?;
            tracing::Span::current().record("inserted", 0);
            return Ok(0);
        }

        let mut inserted: u32 = 0;
        for (invitation, mail) in &wave.invitations {
            // Both unique indexes (one open invitation per person, once per offer) end in
            // DO NOTHING; people who left the waiting list meanwhile are skipped too.
            let done = sqlx::query(
                "INSERT INTO invitations (id, offer_id, registrant_id, token_hash, wave, \
                     last_call, distance_km, status, created_at, expires_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?9 \
                 WHERE EXISTS (SELECT 1 FROM registrants WHERE id = ?3 AND status = 'active') \
                 ON CONFLICT DO NOTHING",
            )
            .bind(invitation.id)
            .bind(wave.offer_id)
            .bind(invitation.registrant_id)
            .bind(&invitation.token_hash)
            .bind(wave.wave)
            .bind(wave.last_call)
            .bind(f64::from(invitation.distance_km))
            .bind(millis(wave.created_at))
            .bind(millis(invitation.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if done.rows_affected() == 1 {
                insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
                sqlx::query("UPDATE registrants SET last_invited_at = ?2 WHERE id = ?1")
                    .bind(invitation.registrant_id)
                    .bind(millis(wave.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                inserted += 1;
            }
        }
        // A dose handed back since the wave was sized is offered at once.
        sqlx::query(
            "UPDATE offers SET invited = invited + ?2, \
                 next_wave_at = CASE WHEN claimed < ?4 THEN ?5 \
                     ELSE COALESCE(?3, next_wave_at) END \
             WHERE id = ?1",
        )
        .bind(wave.offer_id)
        .bind(i64::from(inserted))
        .bind(wave.due_again_if(inserted).map(millis))
        .bind(wave.claimed_seen)
        .bind(millis(wave.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::Span::current().record("inserted", inserted);
        Ok(inserted)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, never = next_wave_at.is_none()))]
    async fn reschedule_offer(
        &self,
        offer_id: Uuid,
        next_wave_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE offers SET next_wave_at = ?2 WHERE id = ?1")
            .bind(offer_id)
            .bind(next_wave_at.map_or(NEVER, millis))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, parked))]
    async fn park_full_offer(&self, offer_id: Uuid) -> StoreResult<bool> {
        let parked =
            sqlx::query("UPDATE offers SET next_wave_at = ?2 WHERE id = ?1 AND claimed >= doses")
                .bind(offer_id)
                .bind(NEVER)
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected()
                > 0;
        tracing::Span::current().record("parked", parked);
        Ok(parked)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn awaiting_answers(
        &self,
        offer_id: Uuid,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> StoreResult<(u32, Option<DateTime<Utc>>)> {
        let (n, earliest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM invitations \
             WHERE offer_id = ?1 AND status = 'open' AND expires_at > ?2 \
               AND created_at > ?3",
        )
        .bind(offer_id)
        .bind(millis(now))
        .bind(millis(created_after))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let n = u32::try_from(n).map_err(|_| corrupt(format!("offer {offer_id}: {n} awaiting")))?;
        Ok((n, from_opt_millis(earliest)?))
    }

    #[tracing::instrument(skip_all, fields(area = %area, offer = %offer_id))]
    async fn acceptance(
        &self,
        area: &str,
        since: DateTime<Utc>,
        offer_id: Uuid,
        quick: f64,
        now: DateTime<Utc>,
    ) -> StoreResult<Acceptance> {
        // A prefix test without LIKE, so `%` and `_` in `area` mean nothing special. Only real
        // answers count (see `AnswerCounts`).
        let (area_answered, area_accepted, offer_answered, offer_accepted): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT \
                     COALESCE(SUM(in_area AND answered), 0), COALESCE(SUM(in_area AND accepted), 0), \
                     COALESCE(SUM(own AND answered), 0), COALESCE(SUM(own AND accepted), 0) \
                 FROM ( \
                     SELECT i.offer_id = ?3 AS own, \
                         (substr(o.postcode, 1, length(?1)) = ?1 AND i.created_at >= ?2) AS in_area, \
                         (i.status IN ('claimed', 'missed') AND i.answered_at - i.created_at <= (o.claim_minutes * 60000.0 * ?4) \
                             OR i.status IN ('declined', 'expired') \
                             OR COALESCE(i.answered_at, ?5) - i.created_at > (o.claim_minutes * 60000.0 * ?4)) AS answered, \
                         (i.status IN ('claimed', 'missed') AND i.answered_at - i.created_at <= (o.claim_minutes * 60000.0 * ?4)) \
                             AS accepted \
                     FROM invitations i JOIN offers o ON o.id = i.offer_id \
                     WHERE (substr(o.postcode, 1, length(?1)) = ?1 AND i.created_at >= ?2) \
                         OR i.offer_id = ?3)",
            )
            .bind(area)
            .bind(millis(since))
            .bind(offer_id)
            .bind(quick)
            .bind(millis(now))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(Acceptance {
            area: AnswerCounts {
                answered: count(area_answered)?,
                accepted: count(area_accepted)?,
            },
            offer: AnswerCounts {
                answered: count(offer_answered)?,
                accepted: count(offer_accepted)?,
            },
        })
    }

    // --- answers -----------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(invitation))]
    async fn invitation_by_token(&self, hash: &[u8]) -> StoreResult<Option<Invitation>> {
        let row: Option<InvitationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if let Some(row) = &row {
            tracing::Span::current().record("invitation", tracing::field::display(row.id));
        }
        row.map(Invitation::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(booking = %claim.booking_id, invitation, offer, outcome))]
    async fn claim(&self, claim: &NewClaim) -> StoreResult<ClaimOutcome> {
        let outcome = claim_on(self, claim).await?;
        tracing::Span::current().record("outcome", tracing::field::debug(outcome));
        Ok(outcome)
    }

    #[tracing::instrument(skip_all)]
    async fn claim_all_taken(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let missed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE invitations SET status = 'missed', answered_at = ?2 \
             WHERE token_hash = ?1 AND status IN ('open', 'withdrawn') AND expires_at > ?2 \
               AND EXISTS (SELECT 1 FROM offers o WHERE o.id = invitations.offer_id \
                   AND o.status = 'open' AND o.ends_at > ?2 AND o.claimed >= o.doses) \
               AND NOT EXISTS (SELECT 1 FROM bookings b \
                   WHERE b.registrant_id = invitations.registrant_id \
                   AND b.status IN ('booked', 'checked_in')) \
             RETURNING registrant_id",
        )
        .bind(hash)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(registrant) = missed else {
            return Ok(false);
        };
        // An answer, even a late one, shows the person still reads their mail.
        sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = ?1")
            .bind(registrant)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(registrant))]
    async fn decline(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let answered: Option<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE invitations SET status = 'declined', answered_at = ?2 \
             WHERE token_hash = ?1 AND status = 'open' AND expires_at > ?2 \
             RETURNING registrant_id, offer_id",
        )
        .bind(hash)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((registrant, offer_id)) = answered else {
            return Ok(false);
        };
        tracing::Span::current().record("registrant", tracing::field::display(registrant));
        // An answer, even "no", shows the person still reads their mail.
        sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = ?1")
            .bind(registrant)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        // Someone else may take the place at once. A scheduling hint only, after the commit
        // and holding no lock: if it is lost, the next wave comes when the window ends.
        sqlx::query(
            "UPDATE offers SET next_wave_at = ?2 \
             WHERE id = ?1 AND status = 'open' AND claimed < doses AND next_wave_at > ?2",
        )
        .bind(offer_id)
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(limit = limit, expired))]
    async fn expire_invitations(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ExpiredInvitation>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let mut rows: Vec<ExpiringRow> = sqlx::query_as(
            "UPDATE invitations SET status = 'expired' \
             WHERE id IN ( \
                 SELECT id FROM invitations \
                 WHERE status = 'open' AND expires_at <= ?1 \
                 ORDER BY expires_at, id \
                 LIMIT ?2) \
             RETURNING id, registrant_id, offer_id, expires_at",
        )
        .bind(millis(now))
        .bind(limit_to_db(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        rows.sort_by_key(|r| (r.expires_at, r.id));
        let mut expired = Vec::with_capacity(rows.len());
        for row in rows {
            let unanswered: i64 = sqlx::query_scalar(
                "UPDATE registrants SET unanswered_in_a_row = unanswered_in_a_row + 1 \
                 WHERE id = ?1 RETURNING unanswered_in_a_row",
            )
            .bind(row.registrant_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            expired.push(ExpiredInvitation {
                invitation_id: row.id,
                registrant_id: row.registrant_id,
                offer_id: row.offer_id,
                unanswered_in_a_row: int(unanswered, "unanswered count", row.registrant_id)?,
            });
        }
        tx.commit().await.map_err(db_error)?;
        tracing::Span::current().record("expired", expired.len());
        Ok(expired)
    }

    #[tracing::instrument(skip_all, fields(registrant = %registrant_id, mail = %mail.id))]
    async fn pause_for_silence(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
        mail: &OutboxRow,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let paused = sqlx::query(
            "UPDATE registrants SET status = 'paused', paused_at = ?2 \
             WHERE id = ?1 AND status = 'active'",
        )
        .bind(registrant_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if paused.rows_affected() == 0 {
            return Ok(false);
        }
        insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, mails = holder_mails.len()))]
    async fn cancel_offer(
        &self,
        offer_id: Uuid,
        now: DateTime<Utc>,
        holder_mails: &[OutboxRow],
    ) -> StoreResult<OfferCancellation> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE offers SET status = 'cancelled', closed_at = ?2 \
             WHERE id = ?1 AND status = 'open'",
        )
        .bind(offer_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(OfferCancellation::NotOpen);
        }
        let holders: Vec<Option<Uuid>> = sqlx::query_scalar(
            "UPDATE bookings SET status = 'cancelled', updated_at = ?2 \
             WHERE offer_id = ?1 AND status = 'booked' \
             RETURNING registrant_id",
        )
        .bind(offer_id)
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(mails) = mails_for_holders(&holders, holder_mails) else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(OfferCancellation::HoldersChanged);
        };
        insert_outbox_on(&mut tx, &mails).await?;
        withdraw_open_invitations(&mut tx, offer_id, millis(now)).await?;
        tx.commit().await.map_err(db_error)?;
        let mut told: Vec<Uuid> = mails.iter().filter_map(|m| m.registrant_id).collect();
        told.sort();
        Ok(OfferCancellation::Cancelled { told })
    }

    // --- bookings through their link ---------------------------------------------------------

    #[tracing::instrument(skip_all, fields(booking))]
    async fn booking_by_token(&self, hash: &[u8]) -> StoreResult<Option<BookingRecord>> {
        let row: Option<BookingRecordRow> = sqlx::query_as(
            "SELECT id, offer_id, registrant_id, code, status, created_at FROM bookings \
             WHERE token_hash = ?1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        tracing::Span::current().record("booking", tracing::field::display(row.id));
        Ok(Some(BookingRecord {
            id: row.id,
            offer_id: row.offer_id,
            registrant_id: row.registrant_id,
            status: BookingStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("booking {}: unknown status", row.id)))?,
            code: row.code,
            created_at: from_millis(row.created_at)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(offer))]
    async fn cancel_booking(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Uuid>> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let offer_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE bookings SET status = 'cancelled', updated_at = ?2 \
             WHERE token_hash = ?1 AND status = 'booked' \
             RETURNING offer_id",
        )
        .bind(hash)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(offer_id) = offer_id else {
            return Ok(None);
        };
        tracing::Span::current().record("offer", tracing::field::display(offer_id));
        // The dose goes straight back to the matcher.
        sqlx::query(
            "UPDATE offers SET claimed = MAX(claimed - 1, 0), next_wave_at = ?2 WHERE id = ?1",
        )
        .bind(offer_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(offer_id))
    }

    // --- outbox ------------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(id = %new.id, tokens = tokens.len(), mails = mails.len()))]
    async fn insert_registrant_with_mails(
        &self,
        new: &NewRegistrant,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        self.insert_registrant_and_mails(new, tokens, mails).await
    }

    #[tracing::instrument(skip_all, fields(tokens = tokens.len(), mails = mails.len()))]
    async fn insert_tokens_with_mails(
        &self,
        tokens: &[NewToken],
        mails: &[OutboxRow],
    ) -> StoreResult<()> {
        self.insert_tokens_and_mails(tokens, mails).await
    }

    #[tracing::instrument(skip_all, fields(mails = rows.len()))]
    async fn enqueue_mails(&self, rows: &[OutboxRow]) -> StoreResult<()> {
        match rows {
            [] => Ok(()),
            [one] => {
                let mut conn = self.pool.acquire().await.map_err(db_error)?;
                insert_outbox_on(&mut conn, std::slice::from_ref(one)).await
            }
            _ => {
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
                insert_outbox_on(&mut tx, rows).await?;
                tx.commit().await.map_err(db_error)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(limit = limit, leased))]
    async fn lease_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let rows: Vec<OutboxDbRow> = sqlx::query_as(
            "UPDATE outbox SET locked_until = ?2 \
             WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE next_attempt_at <= ?1 AND (locked_until IS NULL OR locked_until <= ?1) \
                 ORDER BY next_attempt_at, created_at, id \
                 LIMIT ?3) \
             RETURNING id, key_id, payload, created_at, attempts, next_attempt_at, \
                 registrant_id, offer_id",
        )
        .bind(millis(now))
        .bind(millis(lease_until))
        .bind(limit_to_db(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::Span::current().record("leased", rows.len());
        let mut rows = rows
            .into_iter()
            .map(OutboxRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING keeps no order.
        rows.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at, a.id).cmp(&(b.next_attempt_at, b.created_at, b.id))
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all, fields(mail = %id))]
    async fn outbox_delivered(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM outbox WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(mail = %id))]
    async fn outbox_failed(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, \
                 locked_until = NULL, last_error = ?3 \
             WHERE id = ?1",
        )
        .bind(id)
        .bind(millis(next_attempt_at))
        .bind(truncate_chars(error, OUTBOX_ERROR_CHARS))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(mail = %id, undeliverable = undeliverable.is_some()))]
    async fn outbox_dropped(
        &self,
        id: Uuid,
        undeliverable: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        sqlx::query("DELETE FROM outbox WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(registrant_id) = undeliverable {
            // Right-hand sides see the row as it was before the update: an active person is
            // paused now, a pending or paused one keeps status and `paused_at`.
            sqlx::query(
                "UPDATE registrants SET \
                    undeliverable_at = ?2, \
                    status = CASE WHEN status = 'active' THEN 'paused' ELSE status END, \
                    paused_at = CASE WHEN status = 'active' THEN ?2 ELSE paused_at END \
                 WHERE id = ?1",
            )
            .bind(registrant_id)
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_depth(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (depth, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok((count(depth)?, from_opt_millis(oldest)?))
    }
}

/// The claim transaction (see the contract on `MatcherStore::claim`).
async fn claim_on(store: &SqliteStore, claim: &NewClaim) -> StoreResult<ClaimOutcome> {
    let span = tracing::Span::current();
    let now = millis(claim.now);
    // IMMEDIATE: racing claims queue on the write lock and each sees the previous one's result.
    let mut tx = store.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
    let invitation: Option<ClaimedInvitationRow> = sqlx::query_as(
        "SELECT id, offer_id, registrant_id, status, expires_at FROM invitations \
         WHERE token_hash = ?1",
    )
    .bind(&claim.invitation_token_hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(invitation) = invitation else {
        return Ok(ClaimOutcome::Unknown);
    };
    span.record("invitation", tracing::field::display(invitation.id));
    span.record("offer", tracing::field::display(invitation.offer_id));
    match invitation_status(&invitation.status, invitation.id)? {
        InvitationStatus::Open => {}
        InvitationStatus::Expired => return Ok(ClaimOutcome::Expired),
        // Ended by the offer: a click while it runs came too late (every dose taken).
        InvitationStatus::Withdrawn => {
            if !offer_is_running(&mut tx, invitation.offer_id, now).await? {
                return Ok(ClaimOutcome::Expired);
            }
            mark_missed(&mut tx, invitation.id, invitation.registrant_id, now).await?;
            tx.commit().await.map_err(db_error)?;
            return Ok(ClaimOutcome::AllTaken);
        }
        answered => return Ok(ClaimOutcome::AlreadyAnswered(answered)),
    }
    if invitation.expires_at <= now || !offer_is_running(&mut tx, invitation.offer_id, now).await? {
        return Ok(ClaimOutcome::Expired);
    }
    let booked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bookings \
             WHERE registrant_id = ?1 AND status IN ('booked', 'checked_in'))",
    )
    .bind(invitation.registrant_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if booked {
        return Ok(ClaimOutcome::AlreadyBooked);
    }

    // Some(true) when this claim took the last dose.
    let taken: Option<bool> = sqlx::query_scalar(
        "UPDATE offers SET claimed = claimed + 1 \
         WHERE id = ?1 AND status = 'open' AND ends_at > ?2 AND claimed < doses \
         RETURNING claimed >= doses",
    )
    .bind(invitation.offer_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(filled) = taken else {
        mark_missed(&mut tx, invitation.id, invitation.registrant_id, now).await?;
        tx.commit().await.map_err(db_error)?;
        return Ok(ClaimOutcome::AllTaken);
    };

    let inserted = sqlx::query(
        "INSERT INTO bookings (id, offer_id, registrant_id, code, status, created_at, \
             updated_at, token_hash, invitation_id) \
         VALUES (?1, ?2, ?3, ?4, 'booked', ?5, ?5, ?6, ?7)",
    )
    .bind(claim.booking_id)
    .bind(invitation.offer_id)
    .bind(invitation.registrant_id)
    .bind(&claim.code)
    .bind(now)
    .bind(&claim.booking_token_hash)
    .bind(invitation.id)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // Cannot happen under the write lock after the check above; kept for parity with
        // PostgreSQL. SQLite names the index's column, not the index.
        Err(sqlx::Error::Database(db))
            if db.is_unique_violation() && db.message().contains("bookings.registrant_id") =>
        {
            tx.rollback().await.map_err(db_error)?;
            return Ok(ClaimOutcome::AlreadyBooked);
        }
        Err(e) => return Err(db_error(e)),
    }
    sqlx::query("UPDATE invitations SET status = 'claimed', answered_at = ?2 WHERE id = ?1")
        .bind(invitation.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = ?1")
        .bind(invitation.registrant_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    insert_outbox_on(&mut tx, std::slice::from_ref(&claim.confirmation)).await?;
    if filled {
        withdraw_open_invitations(&mut tx, invitation.offer_id, now).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(ClaimOutcome::Booked)
}

/// Ends the open invitations of an offer that filled, closed or was cancelled: they become
/// `withdrawn` and their people's throttle is lifted, so the next offer nearby may invite them
/// at once. `last_invited_at` can simply be cleared: the withdrawn invitation was the person's
/// newest (nobody holds two open ones), and the one before it lies beyond the throttle, or
/// this one could not have been sent.
pub(crate) async fn withdraw_open_invitations(
    conn: &mut SqliteConnection,
    offer_id: Uuid,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE registrants SET last_invited_at = NULL \
         WHERE id IN (SELECT registrant_id FROM invitations \
             WHERE offer_id = ?1 AND status = 'open')",
    )
    .bind(offer_id)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "UPDATE invitations SET status = 'withdrawn', answered_at = ?2 \
         WHERE offer_id = ?1 AND status = 'open'",
    )
    .bind(offer_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// A click that came too late (every dose taken): the invitation is `missed`, and like any
/// answer it shows the person reads their mail, so their unanswered count starts again.
async fn mark_missed(
    conn: &mut SqliteConnection,
    invitation_id: Uuid,
    registrant_id: Uuid,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE invitations SET status = 'missed', answered_at = ?2 WHERE id = ?1")
        .bind(invitation_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = ?1")
        .bind(registrant_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Open and not over at `now` (milliseconds).
async fn offer_is_running(
    conn: &mut SqliteConnection,
    offer_id: Uuid,
    now: i64,
) -> StoreResult<bool> {
    let offer: Option<OfferStateRow> =
        sqlx::query_as("SELECT status, ends_at FROM offers WHERE id = ?1")
            .bind(offer_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
    Ok(offer.is_some_and(|o| o.status == "open" && o.ends_at > now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_postcodes_keep_the_shortest_distance() {
        let given = [
            ("10115".to_owned(), 3.0),
            ("10117".to_owned(), 1.0),
            ("10115".to_owned(), 2.0),
        ];
        assert_eq!(
            distinct_postcodes(&given),
            vec![("10115".to_owned(), 2.0), ("10117".to_owned(), 1.0)]
        );
    }

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_chars("äöü", 2), "äö");
        assert_eq!(truncate_chars("abc", 5), "abc");
        assert_eq!(truncate_chars(&"é".repeat(600), 500).chars().count(), 500);
    }
}
