//! `MatcherStore` for PostgreSQL: waves of invitations, claims, expiry, booking links and the
//! mail outbox (tables from `0003_matcher_outbox.sql`).
//!
//! Several matcher processes may share the database, so work is handed out with
//! `FOR UPDATE SKIP LOCKED` (due offers, expiring invitations, outbox rows) and every state
//! change that must not race is a conditional statement. To keep waits free of cycles: an
//! offer's row is locked before its bookings (claim, cancel); a wave inserts its invitations in
//! person order and updates people only after all of them, so a wave that waits for an
//! invitation being answered or expired holds no person's row meanwhile.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use restdose_store::{
    Acceptance, AnswerCounts, BookingRecord, BookingStatus, Candidate, CandidateQuery,
    ClaimOutcome, ExpiredInvitation, Invitation, InvitationStatus, MatcherStore, NewClaim,
    NewRegistrant, NewToken, NewWave, Offer, OfferCancellation, OfferProgress, OutboxRow,
    StoreError, StoreResult, StoredEmail, mails_for_holders,
};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::portal::{OFFER_COLUMNS, OfferRow};
use crate::{PgStore, corrupt, db_error};

/// Longest error text kept on an outbox row.
const OUTBOX_ERROR_CHARS: usize = 500;

/// The unique index that allows one live booking per person.
const ONE_LIVE_BOOKING: &str = "bookings_one_live_per_person";

// --- rows -------------------------------------------------------------------------------------

#[derive(FromRow)]
struct ProgressRow {
    claimed: i32,
    invited: i32,
    waves: i32,
    next_wave_at: Option<DateTime<Utc>>,
    last_call_sent: bool,
}

#[derive(FromRow)]
struct CandidateRow {
    registrant_id: Uuid,
    postcode: String,
    distance_km: f32,
    created_at: DateTime<Utc>,
    language: String,
    email_key_id: i32,
    email_ciphertext: Vec<u8>,
    email_index: Vec<u8>,
}

impl From<CandidateRow> for Candidate {
    fn from(row: CandidateRow) -> Candidate {
        Candidate {
            registrant_id: row.registrant_id,
            postcode: row.postcode,
            distance_km: row.distance_km,
            created_at: row.created_at,
            language: row.language,
            email: StoredEmail {
                key_id: row.email_key_id,
                ciphertext: row.email_ciphertext,
                index: row.email_index,
            },
        }
    }
}

#[derive(FromRow)]
struct InvitationRow {
    id: Uuid,
    offer_id: Uuid,
    registrant_id: Uuid,
    wave: i32,
    last_call: bool,
    distance_km: f32,
    status: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
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
            wave: row.wave,
            last_call: row.last_call,
            distance_km: row.distance_km,
            status: invitation_status(&row.status, row.id)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            answered_at: row.answered_at,
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
    expires_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct OfferStateRow {
    status: String,
    ends_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct ExpiredRow {
    invitation_id: Uuid,
    registrant_id: Uuid,
    offer_id: Uuid,
    unanswered_in_a_row: i32,
}

#[derive(FromRow)]
struct BookingRecordRow {
    id: Uuid,
    offer_id: Uuid,
    registrant_id: Option<Uuid>,
    code: String,
    status: String,
    created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct OutboxDbRow {
    id: Uuid,
    key_id: i32,
    payload: Vec<u8>,
    created_at: DateTime<Utc>,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    registrant_id: Option<Uuid>,
    offer_id: Option<Uuid>,
}

impl From<OutboxDbRow> for OutboxRow {
    fn from(row: OutboxDbRow) -> OutboxRow {
        OutboxRow {
            id: row.id,
            key_id: row.key_id,
            payload: row.payload,
            created_at: row.created_at,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            registrant_id: row.registrant_id,
            offer_id: row.offer_id,
        }
    }
}

// --- helpers ----------------------------------------------------------------------------------

pub(crate) async fn insert_outbox_on(
    conn: &mut PgConnection,
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
        .bind(row.created_at)
        .bind(row.attempts)
        .bind(row.next_attempt_at)
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
pub(crate) fn distinct_postcodes(postcodes: &[(String, f32)]) -> Vec<(String, f32)> {
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

#[async_trait]
impl MatcherStore for PgStore {
    // --- waves -------------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(offer))]
    async fn lease_due_offer(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<Offer>> {
        // Rows another worker is leasing right now are skipped, not waited for; the
        // subquery's row lock (taken on the latest row version, re-checked against the WHERE
        // clause) is what hands the offer to one worker.
        let row: Option<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET next_wave_at = $2 \
             WHERE id = ( \
                 SELECT id FROM offers \
                 WHERE status = 'open' AND ends_at > $1 \
                   AND (next_wave_at IS NULL OR next_wave_at <= $1) \
                 ORDER BY next_wave_at NULLS FIRST, created_at, id \
                 LIMIT 1 \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING {OFFER_COLUMNS}"
        )))
        .bind(now)
        .bind(lease_until)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let offer = row.map(Offer::try_from).transpose()?;
        if let Some(offer) = &offer {
            tracing::Span::current().record("offer", tracing::field::display(offer.id));
        }
        Ok(offer)
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id))]
    async fn offer_progress(&self, offer_id: Uuid) -> StoreResult<Option<OfferProgress>> {
        // 'infinity' is how `reschedule_offer(None)` says "never".
        let row: Option<ProgressRow> = sqlx::query_as(
            "SELECT claimed, invited, waves, \
                 CASE WHEN isfinite(next_wave_at) THEN next_wave_at END AS next_wave_at, \
                 last_call_sent \
             FROM offers WHERE id = $1",
        )
        .bind(offer_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|r| OfferProgress {
            claimed: r.claimed,
            invited: r.invited,
            waves: r.waves,
            next_wave_at: r.next_wave_at,
            last_call_sent: r.last_call_sent,
        }))
    }

    #[tracing::instrument(skip_all, fields(offer = %query.offer_id, postcodes = query.postcodes.len(), limit = query.limit, found))]
    async fn candidates(&self, query: &CandidateQuery) -> StoreResult<Vec<Candidate>> {
        let postcodes = distinct_postcodes(&query.postcodes);
        if postcodes.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
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
        .bind(query.invited_before)
        .bind(i64::from(query.limit))
        .bind(query.counted_since)
        .bind(i64::from(query.max_invitations_since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        tracing::Span::current().record("found", rows.len());
        Ok(rows.into_iter().map(Candidate::from).collect())
    }

    #[tracing::instrument(skip_all, fields(offer = %wave.offer_id, wave = wave.wave, invitations = wave.invitations.len(), inserted))]
    async fn record_wave(&self, wave: &NewWave) -> StoreResult<u32> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The optimistic check: a second worker recording the same wave finds `waves` moved on.
        let claimed_wave = sqlx::query(
            "UPDATE offers SET waves = $2, next_wave_at = $3, \
                 last_call_sent = last_call_sent OR $4 \
             WHERE id = $1 AND status = 'open' AND waves = $2 - 1",
        )
        .bind(wave.offer_id)
        .bind(wave.wave)
        .bind(wave.next_wave_at)
        .bind(wave.last_call)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if claimed_wave.rows_affected() == 0 {
            tx.rollback().await.map_err(db_error)?;
            tracing::Span::current().record("inserted", 0);
            return Ok(0);
        }

        // In person order, so that racing waves wait for each other instead of deadlocking.
        let mut invitations: Vec<_> = wave.invitations.iter().collect();
        invitations.sort_by_key(|(invitation, _)| invitation.registrant_id);

        let mut invited: Vec<Uuid> = Vec::with_capacity(invitations.len());
        for (invitation, mail) in invitations {
            // Both unique indexes (one open invitation per person, once per offer) end in
            // DO NOTHING; people who left the waiting list meanwhile are skipped too.
            let inserted = sqlx::query(
                "INSERT INTO invitations (id, offer_id, registrant_id, token_hash, wave, \
                     last_call, distance_km, status, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, 'open', $8, $9 \
                 WHERE EXISTS (SELECT 1 FROM registrants WHERE id = $3 AND status = 'active') \
                 ON CONFLICT DO NOTHING",
            )
            .bind(invitation.id)
            .bind(wave.offer_id)
            .bind(invitation.registrant_id)
            .bind(&invitation.token_hash)
            .bind(wave.wave)
            .bind(wave.last_call)
            .bind(invitation.distance_km)
            .bind(wave.created_at)
            .bind(invitation.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if inserted.rows_affected() == 1 {
                insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
                invited.push(invitation.registrant_id);
            }
        }

        if !invited.is_empty() {
            // People last, after every invitation is in (see the module header).
            sqlx::query("UPDATE registrants SET last_invited_at = $2 WHERE id = ANY($1)")
                .bind(&invited)
                .bind(wave.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let inserted = u32::try_from(invited.len())
            .map_err(|_| StoreError::other("more invitations than fit into a wave"))?;
        // A dose handed back since the wave was sized is offered at once.
        sqlx::query(
            "UPDATE offers SET invited = invited + $2, \
                 next_wave_at = CASE WHEN claimed < $4 THEN $5 \
                     ELSE COALESCE($3, next_wave_at) END \
             WHERE id = $1",
        )
        .bind(wave.offer_id)
        .bind(i32::try_from(inserted).map_err(|_| StoreError::other("wave too large"))?)
        .bind(wave.due_again_if(inserted))
        .bind(wave.claimed_seen)
        .bind(wave.created_at)
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
        // NULL means "due" (a new offer), so "never" is stored as 'infinity'.
        sqlx::query(
            "UPDATE offers SET next_wave_at = COALESCE($2, 'infinity'::timestamptz) \
             WHERE id = $1",
        )
        .bind(offer_id)
        .bind(next_wave_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, parked))]
    async fn park_full_offer(&self, offer_id: Uuid) -> StoreResult<bool> {
        let parked = sqlx::query(
            "UPDATE offers SET next_wave_at = 'infinity'::timestamptz \
             WHERE id = $1 AND claimed >= doses",
        )
        .bind(offer_id)
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
        let (n, earliest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM invitations \
             WHERE offer_id = $1 AND status = 'open' AND expires_at > $2 \
               AND created_at > $3",
        )
        .bind(offer_id)
        .bind(now)
        .bind(created_after)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let n = u32::try_from(n).map_err(|_| corrupt(format!("offer {offer_id}: {n} awaiting")))?;
        Ok((n, earliest))
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
        // Only real answers count (see `AnswerCounts`).
        let (area_answered, area_accepted, offer_answered, offer_accepted): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT \
                     count(*) FILTER (WHERE in_area AND answered), \
                     count(*) FILTER (WHERE in_area AND accepted), \
                     count(*) FILTER (WHERE own AND answered), \
                     count(*) FILTER (WHERE own AND accepted) \
                 FROM ( \
                     SELECT i.offer_id = $3 AS own, \
                         (starts_with(o.postcode, $1) AND i.created_at >= $2) AS in_area, \
                         (i.status IN ('claimed', 'missed') AND i.answered_at - i.created_at <= t \
                             OR i.status IN ('declined', 'expired') \
                             OR COALESCE(i.answered_at, $5) - i.created_at > t) AS answered, \
                         (i.status IN ('claimed', 'missed') AND i.answered_at - i.created_at <= t) \
                             AS accepted \
                     FROM invitations i JOIN offers o ON o.id = i.offer_id, \
                         LATERAL (SELECT o.claim_minutes * $4 * interval '1 minute' AS t) q \
                     WHERE (starts_with(o.postcode, $1) AND i.created_at >= $2) \
                         OR i.offer_id = $3) AS answers",
            )
            .bind(area)
            .bind(since)
            .bind(offer_id)
            .bind(quick)
            .bind(now)
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
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1"
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
        // One statement: the late click, and (an answer shows the person reads their mail)
        // their unanswered count starting again.
        let missed: i64 = sqlx::query_scalar(
            "WITH missed AS ( \
                 UPDATE invitations i SET status = 'missed', answered_at = $2 \
                 WHERE i.token_hash = $1 AND i.status IN ('open', 'withdrawn') \
                   AND i.expires_at > $2 \
                   AND EXISTS (SELECT 1 FROM offers o WHERE o.id = i.offer_id \
                       AND o.status = 'open' AND o.ends_at > $2 AND o.claimed >= o.doses) \
                   AND NOT EXISTS (SELECT 1 FROM bookings b \
                       WHERE b.registrant_id = i.registrant_id \
                       AND b.status IN ('booked', 'checked_in')) \
                 RETURNING i.registrant_id), \
             reset AS ( \
                 UPDATE registrants SET unanswered_in_a_row = 0 \
                 WHERE id IN (SELECT registrant_id FROM missed) AND unanswered_in_a_row <> 0) \
             SELECT count(*) FROM missed",
        )
        .bind(hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(missed > 0)
    }

    #[tracing::instrument(skip_all, fields(registrant))]
    async fn decline(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let answered: Option<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE invitations SET status = 'declined', answered_at = $2 \
             WHERE token_hash = $1 AND status = 'open' AND expires_at > $2 \
             RETURNING registrant_id, offer_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((registrant, offer_id)) = answered else {
            return Ok(false);
        };
        tracing::Span::current().record("registrant", tracing::field::display(registrant));
        // An answer, even "no", shows the person still reads their mail.
        sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = $1")
            .bind(registrant)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        // Someone else may take the place at once. A scheduling hint only, after the commit
        // and holding no lock: if it is lost, the next wave comes when the window ends.
        sqlx::query(
            "UPDATE offers SET next_wave_at = $2 \
             WHERE id = $1 AND status = 'open' AND claimed < doses AND next_wave_at > $2",
        )
        .bind(offer_id)
        .bind(now)
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
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        tracing::Span::current().record("expired", rows.len());
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

    #[tracing::instrument(skip_all, fields(registrant = %registrant_id, mail = %mail.id))]
    async fn pause_for_silence(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
        mail: &OutboxRow,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let paused = sqlx::query(
            "UPDATE registrants SET status = 'paused', paused_at = $2 \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(registrant_id)
        .bind(now)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The offer's row first (claims queue on it, then find it cancelled): the bookings
        // read next are all there will be.
        let done = sqlx::query(
            "UPDATE offers SET status = 'cancelled', closed_at = $2 \
             WHERE id = $1 AND status = 'open'",
        )
        .bind(offer_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(OfferCancellation::NotOpen);
        }
        let holders: Vec<Option<Uuid>> = sqlx::query_scalar(
            "UPDATE bookings SET status = 'cancelled', updated_at = $2 \
             WHERE offer_id = $1 AND status = 'booked' \
             RETURNING registrant_id",
        )
        .bind(offer_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(mails) = mails_for_holders(&holders, holder_mails) else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(OfferCancellation::HoldersChanged);
        };
        insert_outbox_on(&mut tx, &mails).await?;
        withdraw_open_invitations(&mut tx, offer_id, now).await?;
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
             WHERE token_hash = $1",
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
            created_at: row.created_at,
        }))
    }

    #[tracing::instrument(skip_all, fields(offer))]
    async fn cancel_booking(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Uuid>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let offer_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT offer_id FROM bookings WHERE token_hash = $1 AND status = 'booked'",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(offer_id) = offer_id else {
            return Ok(None);
        };
        tracing::Span::current().record("offer", tracing::field::display(offer_id));
        // The offer first, as claims do. The dose goes straight back to the matcher.
        sqlx::query(
            "UPDATE offers SET claimed = GREATEST(claimed - 1, 0), next_wave_at = $2 \
             WHERE id = $1",
        )
        .bind(offer_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let cancelled = sqlx::query(
            "UPDATE bookings SET status = 'cancelled', updated_at = $2 \
             WHERE token_hash = $1 AND status = 'booked'",
        )
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if cancelled.rows_affected() == 0 {
            // A racing cancel (or a check-in) came first: undo the offer's update.
            tx.rollback().await.map_err(db_error)?;
            return Ok(None);
        }
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
                let mut tx = self.pool.begin().await.map_err(db_error)?;
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
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        tracing::Span::current().record("leased", rows.len());
        let mut rows: Vec<OutboxRow> = rows.into_iter().map(OutboxRow::from).collect();
        // RETURNING keeps no order.
        rows.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at, a.id).cmp(&(b.next_attempt_at, b.created_at, b.id))
        });
        Ok(rows)
    }

    #[tracing::instrument(skip_all, fields(mail = %id))]
    async fn outbox_delivered(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
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
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                 locked_until = NULL, last_error = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt_at)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(registrant_id) = undeliverable {
            // Right-hand sides see the row as it was before the update: an active person is
            // paused now, a pending or paused one keeps status and `paused_at`.
            sqlx::query(
                "UPDATE registrants SET \
                    undeliverable_at = $2, \
                    status = CASE WHEN status = 'active' THEN 'paused' ELSE status END, \
                    paused_at = CASE WHEN status = 'active' THEN $2 ELSE paused_at END \
                 WHERE id = $1",
            )
            .bind(registrant_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_depth(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (depth, oldest): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok((count(depth)?, oldest))
    }
}

/// The claim transaction (see the contract on `MatcherStore::claim`).
async fn claim_on(store: &PgStore, claim: &NewClaim) -> StoreResult<ClaimOutcome> {
    let span = tracing::Span::current();
    let mut tx = store.pool.begin().await.map_err(db_error)?;
    // The lock makes a second click on the same link wait and then see the answer.
    let invitation: Option<ClaimedInvitationRow> = sqlx::query_as(
        "SELECT id, offer_id, registrant_id, status, expires_at FROM invitations \
         WHERE token_hash = $1 FOR UPDATE",
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
            if !offer_is_running(&mut tx, invitation.offer_id, claim.now).await? {
                return Ok(ClaimOutcome::Expired);
            }
            mark_missed(&mut tx, invitation.id, invitation.registrant_id, claim.now).await?;
            tx.commit().await.map_err(db_error)?;
            return Ok(ClaimOutcome::AllTaken);
        }
        answered => return Ok(ClaimOutcome::AlreadyAnswered(answered)),
    }
    if invitation.expires_at <= claim.now
        || !offer_is_running(&mut tx, invitation.offer_id, claim.now).await?
    {
        return Ok(ClaimOutcome::Expired);
    }
    let booked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bookings \
             WHERE registrant_id = $1 AND status IN ('booked', 'checked_in'))",
    )
    .bind(invitation.registrant_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if booked {
        return Ok(ClaimOutcome::AlreadyBooked);
    }

    // The dose itself: racing claims queue on the offer row and re-check `claimed < doses`.
    // Some(true) when this claim took the last dose.
    let taken: Option<bool> = sqlx::query_scalar(
        "UPDATE offers SET claimed = claimed + 1 \
         WHERE id = $1 AND status = 'open' AND ends_at > $2 AND claimed < doses \
         RETURNING claimed >= doses",
    )
    .bind(invitation.offer_id)
    .bind(claim.now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(filled) = taken else {
        // Closed or over while we waited for the row: that is not "all taken".
        if !offer_is_running(&mut tx, invitation.offer_id, claim.now).await? {
            return Ok(ClaimOutcome::Expired);
        }
        mark_missed(&mut tx, invitation.id, invitation.registrant_id, claim.now).await?;
        tx.commit().await.map_err(db_error)?;
        return Ok(ClaimOutcome::AllTaken);
    };

    let inserted = sqlx::query(
        "INSERT INTO bookings (id, offer_id, registrant_id, code, status, created_at, \
             updated_at, token_hash, invitation_id) \
         VALUES ($1, $2, $3, $4, 'booked', $5, $5, $6, $7)",
    )
    .bind(claim.booking_id)
    .bind(invitation.offer_id)
    .bind(invitation.registrant_id)
    .bind(&claim.code)
    .bind(claim.now)
    .bind(&claim.booking_token_hash)
    .bind(invitation.id)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // A booking of the same person committed after our check.
        Err(sqlx::Error::Database(db)) if db.constraint() == Some(ONE_LIVE_BOOKING) => {
            tx.rollback().await.map_err(db_error)?;
            return Ok(ClaimOutcome::AlreadyBooked);
        }
        Err(e) => return Err(db_error(e)),
    }
    sqlx::query("UPDATE invitations SET status = 'claimed', answered_at = $2 WHERE id = $1")
        .bind(invitation.id)
        .bind(claim.now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = $1")
        .bind(invitation.registrant_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    insert_outbox_on(&mut tx, std::slice::from_ref(&claim.confirmation)).await?;
    if filled {
        withdraw_open_invitations(&mut tx, invitation.offer_id, claim.now).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(ClaimOutcome::Booked)
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
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// A click that came too late (every dose taken): the invitation is `missed`, and like any
/// answer it shows the person reads their mail, so their unanswered count starts again.
async fn mark_missed(
    conn: &mut PgConnection,
    invitation_id: Uuid,
    registrant_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE invitations SET status = 'missed', answered_at = $2 WHERE id = $1")
        .bind(invitation_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = $1")
        .bind(registrant_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Open and not over at `now`.
async fn offer_is_running(
    conn: &mut PgConnection,
    offer_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let offer: Option<OfferStateRow> =
        sqlx::query_as("SELECT status, ends_at FROM offers WHERE id = $1")
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
