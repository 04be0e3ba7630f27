//! `MatcherStore`: waves of invitations, claims, expiry, booking links and the mail outbox
//! (tables from `0003_matcher_outbox.sql`).
//!
//! Several matcher processes may share a PostgreSQL database, so work is handed out with
//! `FOR UPDATE SKIP LOCKED` there (due offers, expiring invitations, outbox rows; see the
//! dialect modules) and every state change that must not race is a conditional statement; on
//! SQLite, one process, write transactions hold the database's write lock from their start. To
//! keep waits free of cycles: an offer's row is locked before its bookings (claim, cancel); a
//! wave inserts its invitations in person order and updates people only after all of them, so
//! a wave that waits for an invitation being answered or expired holds no person's row
//! meanwhile.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use macro_rules_attribute::apply;
use restdose_store::{
    Acceptance, AnswerCounts, BookingRecord, BookingStatus, Candidate, CandidateQuery,
    ClaimOutcome, ExpiredInvitation, Invitation, MatcherStore, NewClaim, NewRegistrant, NewToken,
    NewWave, OUTBOX_ACK_CHUNK, Offer, OfferCancellation, OfferProgress, OutboxRow, StoreError,
    StoreResult, mails_for_holders,
};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::encode::{Ts, ts};
use crate::portal::{OFFER_COLUMNS, OfferRow};
use crate::{SqlStore, corrupt, count, for_both_databases};

mod claim;
pub(crate) mod rows;

use rows::{BookingRecordRow, INVITATION_COLUMNS, InvitationRow, ProgressRow};

/// Longest error text kept on an outbox row.
const OUTBOX_ERROR_CHARS: usize = 500;

// --- helpers ----------------------------------------------------------------------------------

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

#[apply(for_both_databases!)]
#[async_trait]
impl MatcherStore for SqlStore<Db> {
    // --- waves -------------------------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(offer))]
    async fn lease_due_offer(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<Offer>> {
        // On PostgreSQL rows another worker is leasing right now are skipped, not waited for;
        // the subquery's row lock (taken on the latest row version, re-checked against the
        // WHERE clause) is what hands the offer to one worker. SQLite's write lock does that.
        let mut tx = dialect::begin_write(&self.pool).await?;
        let row: Option<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET next_wave_at = $2 \
             WHERE id = ( \
                 SELECT id FROM offers \
                 WHERE status = 'open' AND ends_at > $1 \
                   AND (next_wave_at IS NULL OR next_wave_at <= $1) \
                   AND EXISTS (SELECT 1 FROM practices p \
                       WHERE p.account_id = offers.practice_id AND p.status = 'approved') \
                 ORDER BY next_wave_at NULLS FIRST, created_at, id \
                 LIMIT 1 {skip_locked}) \
             RETURNING {OFFER_COLUMNS}",
            skip_locked = dialect::SKIP_LOCKED
        )))
        .bind(Ts(now))
        .bind(Ts(lease_until))
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
        // `dialect::NEVER` is how `reschedule_offer(None)` says "never".
        let row: Option<ProgressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT claimed, invited, waves, \
                 CASE WHEN next_wave_at <> {never} THEN next_wave_at END AS next_wave_at, \
                 last_call_sent \
             FROM offers WHERE id = $1",
            never = dialect::NEVER
        )))
        .bind(offer_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|r| OfferProgress {
            claimed: r.claimed,
            invited: r.invited,
            waves: r.waves,
            next_wave_at: r.next_wave_at.map(Into::into),
            last_call_sent: r.last_call_sent,
        }))
    }

    #[tracing::instrument(skip_all, fields(offer = %query.offer_id, postcodes = query.postcodes.len(), limit = query.limit, found))]
    async fn candidates(&self, query: &CandidateQuery) -> StoreResult<Vec<Candidate>> {
        let postcodes = distinct_postcodes(&query.postcodes);
        if postcodes.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let found = dialect::candidates(&self.pool, query, postcodes).await?;
        tracing::Span::current().record("found", found.len());
        Ok(found)
    }

    #[tracing::instrument(skip_all, fields(offer = %wave.offer_id, wave = wave.wave, invitations = wave.invitations.len(), inserted))]
    async fn record_wave(&self, wave: &NewWave) -> StoreResult<u32> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        // The optimistic check: a second worker recording the same wave finds `waves` moved on.
        let claimed_wave = sqlx::query(
            "UPDATE offers SET waves = $2, next_wave_at = $3, \
                 last_call_sent = last_call_sent OR $4 \
             WHERE id = $1 AND status = 'open' AND waves = $2 - 1",
        )
        .bind(wave.offer_id)
        .bind(wave.wave)
        .bind(Ts(wave.next_wave_at))
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
            .bind(Ts(wave.created_at))
            .bind(Ts(invitation.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if inserted.rows_affected() == 1 {
                Self::insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
                invited.push(invitation.registrant_id);
            }
        }

        if !invited.is_empty() {
            // People last, after every invitation is in (see the module header).
            dialect::mark_invited(&mut tx, &invited, wave.created_at).await?;
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
        .bind(ts(wave.due_again_if(inserted)))
        .bind(wave.claimed_seen)
        .bind(Ts(wave.created_at))
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
        // NULL means "due" (a new offer), so "never" is stored as `dialect::NEVER`.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET next_wave_at = COALESCE($2, {never}) WHERE id = $1",
            never = dialect::NEVER
        )))
        .bind(offer_id)
        .bind(ts(next_wave_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(offer = %offer_id, parked))]
    async fn park_full_offer(&self, offer_id: Uuid) -> StoreResult<bool> {
        let parked = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET next_wave_at = {never} WHERE id = $1 AND claimed >= doses",
            never = dialect::NEVER
        )))
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
        let (n, earliest): (i64, Option<Ts>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM invitations \
             WHERE offer_id = $1 AND status = 'open' AND expires_at > $2 \
               AND created_at > $3",
        )
        .bind(offer_id)
        .bind(Ts(now))
        .bind(Ts(created_after))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let n = u32::try_from(n).map_err(|_| corrupt(format!("offer {offer_id}: {n} awaiting")))?;
        Ok((n, earliest.map(Into::into)))
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
        // Only real answers count (see `AnswerCounts`). Times compare in milliseconds on
        // both databases; `substr` rather than LIKE, so `%` and `_` in `area` mean nothing.
        let waited = |until: &str| dialect::millis_between("i.created_at", until);
        let (area_answered, area_accepted, offer_answered, offer_accepted): (i64, i64, i64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT \
                     count(*) FILTER (WHERE in_area AND answered), \
                     count(*) FILTER (WHERE in_area AND accepted), \
                     count(*) FILTER (WHERE own AND answered), \
                     count(*) FILTER (WHERE own AND accepted) \
                 FROM ( \
                     SELECT own, in_area, \
                         (status IN ('claimed', 'missed') AND answer <= t \
                             OR status IN ('declined', 'expired') OR so_far > t) AS answered, \
                         (status IN ('claimed', 'missed') AND answer <= t) AS accepted \
                     FROM ( \
                         SELECT i.offer_id = $3 AS own, i.status, \
                             (substr(o.postcode, 1, length($1)) = $1 AND i.created_at >= $2) \
                                 AS in_area, \
                             {answer} AS answer, {so_far} AS so_far, \
                             o.claim_minutes * 60000.0 * $4 AS t \
                         FROM invitations i JOIN offers o ON o.id = i.offer_id \
                         WHERE (substr(o.postcode, 1, length($1)) = $1 AND i.created_at >= $2) \
                             OR i.offer_id = $3) AS invited) AS answers",
                answer = waited("i.answered_at"),
                so_far = waited("COALESCE(i.answered_at, $5)"),
            )))
            .bind(area)
            .bind(Ts(since))
            .bind(offer_id)
            .bind(quick)
            .bind(Ts(now))
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
        let outcome = self.claim_on(claim).await?;
        tracing::Span::current().record("outcome", tracing::field::debug(outcome));
        Ok(outcome)
    }

    #[tracing::instrument(skip_all)]
    async fn claim_all_taken(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        let missed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE invitations SET status = 'missed', answered_at = $2 \
             WHERE token_hash = $1 AND status IN ('open', 'withdrawn') AND expires_at > $2 \
               AND EXISTS (SELECT 1 FROM offers o WHERE o.id = invitations.offer_id \
                   AND o.status = 'open' AND o.ends_at > $2 AND o.claimed >= o.doses) \
               AND NOT EXISTS (SELECT 1 FROM bookings b \
                   WHERE b.registrant_id = invitations.registrant_id \
                   AND b.status IN ('booked', 'checked_in')) \
             RETURNING registrant_id",
        )
        .bind(hash)
        .bind(Ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(registrant) = missed else {
            return Ok(false);
        };
        // An answer, even a late one, shows the person still reads their mail.
        Self::reset_unanswered(&mut tx, registrant).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(registrant))]
    async fn decline(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = dialect::begin_write(&self.pool).await?;
        let answered: Option<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE invitations SET status = 'declined', answered_at = $2 \
             WHERE token_hash = $1 AND status = 'open' AND expires_at > $2 \
             RETURNING registrant_id, offer_id",
        )
        .bind(hash)
        .bind(Ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((registrant, offer_id)) = answered else {
            return Ok(false);
        };
        tracing::Span::current().record("registrant", tracing::field::display(registrant));
        // An answer, even "no", shows the person still reads their mail.
        Self::reset_unanswered(&mut tx, registrant).await?;
        tx.commit().await.map_err(db_error)?;
        // Someone else may take the place at once. A scheduling hint only, after the commit
        // and holding no lock: if it is lost, the next wave comes when the window ends.
        sqlx::query(
            "UPDATE offers SET next_wave_at = $2 \
             WHERE id = $1 AND status = 'open' AND claimed < doses AND next_wave_at > $2",
        )
        .bind(offer_id)
        .bind(Ts(now))
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
        let expired = dialect::expire_invitations(&self.pool, now, limit).await?;
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
        let mut tx = dialect::begin_write(&self.pool).await?;
        let paused = sqlx::query(
            "UPDATE registrants SET status = 'paused', paused_at = $2 \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(registrant_id)
        .bind(Ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if paused.rows_affected() == 0 {
            return Ok(false);
        }
        Self::insert_outbox_on(&mut tx, std::slice::from_ref(mail)).await?;
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
        let mut tx = dialect::begin_write(&self.pool).await?;
        // The offer's row first (claims queue on it, then find it cancelled): the bookings
        // read next are all there will be.
        let done = sqlx::query(
            "UPDATE offers SET status = 'cancelled', closed_at = $2 \
             WHERE id = $1 AND status = 'open'",
        )
        .bind(offer_id)
        .bind(Ts(now))
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
        .bind(Ts(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(mails) = mails_for_holders(&holders, holder_mails) else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(OfferCancellation::HoldersChanged);
        };
        Self::insert_outbox_on(&mut tx, &mails).await?;
        dialect::withdraw_open_invitations(&mut tx, offer_id, now).await?;
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
            created_at: row.created_at.0,
        }))
    }

    #[tracing::instrument(skip_all, fields(offer))]
    async fn cancel_booking(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Uuid>> {
        let mut tx = dialect::begin_write(&self.pool).await?;
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
            "UPDATE offers SET claimed = CASE WHEN claimed > 0 THEN claimed - 1 ELSE 0 END, next_wave_at = $2 \
             WHERE id = $1",
        )
        .bind(offer_id)
        .bind(Ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let cancelled = sqlx::query(
            "UPDATE bookings SET status = 'cancelled', updated_at = $2 \
             WHERE token_hash = $1 AND status = 'booked'",
        )
        .bind(hash)
        .bind(Ts(now))
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
        dialect::insert_registrant_and_mails(&self.pool, new, tokens, mails).await
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
                Self::insert_outbox_on(&mut conn, std::slice::from_ref(one)).await
            }
            _ => {
                let mut tx = dialect::begin_write(&self.pool).await?;
                Self::insert_outbox_on(&mut tx, rows).await?;
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
        let mut rows = dialect::lease_outbox(&self.pool, now, lease_until, limit).await?;
        tracing::Span::current().record("leased", rows.len());
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

    #[tracing::instrument(skip_all, fields(mails = ids.len()))]
    async fn outbox_delivered_many(&self, ids: &[Uuid]) -> StoreResult<()> {
        // One statement for both databases: the ids as bound parameters of an `IN` list.
        for chunk in ids.chunks(OUTBOX_ACK_CHUNK) {
            let mut query = QueryBuilder::<Db>::new("DELETE FROM outbox WHERE id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(")");
            query.build().execute(&self.pool).await.map_err(db_error)?;
        }
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
        .bind(Ts(next_attempt_at))
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
        let mut tx = dialect::begin_write(&self.pool).await?;
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
            .bind(Ts(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn outbox_depth(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (depth, oldest): (i64, Option<Ts>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok((count(depth)?, oldest.map(Into::into)))
    }
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
