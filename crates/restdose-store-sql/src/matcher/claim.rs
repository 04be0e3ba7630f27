//! The claim transaction (see the contract on `MatcherStore::claim`) and the small steps it
//! shares with the other answers.

use chrono::{DateTime, Utc};
use macro_rules_attribute::apply;
use restdose_store::{ClaimOutcome, InvitationStatus, NewClaim, StoreResult};
use uuid::Uuid;

use super::rows::{ClaimedInvitationRow, OfferStateRow, invitation_status};
use crate::encode::Ts;
use crate::{SqlStore, for_both_databases};

#[apply(for_both_databases!)]
impl SqlStore<Db> {
    /// The claim transaction (see the contract on `MatcherStore::claim`).
    pub(super) async fn claim_on(&self, claim: &NewClaim) -> StoreResult<ClaimOutcome> {
        let span = tracing::Span::current();
        let mut tx = dialect::begin_write(&self.pool).await?;
        // The lock (the row's on PostgreSQL, the database's on SQLite) makes a second click on
        // the same link wait and then see the answer.
        let invitation: Option<ClaimedInvitationRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, offer_id, registrant_id, status, expires_at FROM invitations \
             WHERE token_hash = $1 {}",
                dialect::FOR_UPDATE
            )))
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
                if !Self::offer_is_running(&mut tx, invitation.offer_id, claim.now).await? {
                    return Ok(ClaimOutcome::Expired);
                }
                Self::mark_missed(&mut tx, invitation.id, invitation.registrant_id, claim.now)
                    .await?;
                tx.commit().await.map_err(db_error)?;
                return Ok(ClaimOutcome::AllTaken);
            }
            answered => return Ok(ClaimOutcome::AlreadyAnswered(answered)),
        }
        if invitation.expires_at.0 <= claim.now
            || !Self::offer_is_running(&mut tx, invitation.offer_id, claim.now).await?
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
        .bind(Ts(claim.now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(filled) = taken else {
            // Closed or over while we waited for the row: that is not "all taken".
            if !Self::offer_is_running(&mut tx, invitation.offer_id, claim.now).await? {
                return Ok(ClaimOutcome::Expired);
            }
            Self::mark_missed(&mut tx, invitation.id, invitation.registrant_id, claim.now).await?;
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
        .bind(Ts(claim.now))
        .bind(&claim.booking_token_hash)
        .bind(invitation.id)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // A booking of the same person committed after our check.
            Err(sqlx::Error::Database(db)) if dialect::is_one_live_booking(&*db) => {
                tx.rollback().await.map_err(db_error)?;
                return Ok(ClaimOutcome::AlreadyBooked);
            }
            Err(e) => return Err(db_error(e)),
        }
        sqlx::query("UPDATE invitations SET status = 'claimed', answered_at = $2 WHERE id = $1")
            .bind(invitation.id)
            .bind(Ts(claim.now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Self::reset_unanswered(&mut tx, invitation.registrant_id).await?;
        Self::insert_outbox_on(&mut tx, std::slice::from_ref(&claim.confirmation)).await?;
        if filled {
            dialect::withdraw_open_invitations(&mut tx, invitation.offer_id, claim.now).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(ClaimOutcome::Booked)
    }

    /// A click that came too late (every dose taken): the invitation is `missed`, and like any
    /// answer it shows the person reads their mail, so their unanswered count starts again.
    pub(super) async fn mark_missed(
        conn: &mut <Db as sqlx::Database>::Connection,
        invitation_id: Uuid,
        registrant_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE invitations SET status = 'missed', answered_at = $2 WHERE id = $1")
            .bind(invitation_id)
            .bind(Ts(now))
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        Self::reset_unanswered(conn, registrant_id).await
    }

    /// Open, not over at `now`, and of a practice that is approved (a suspended practice's
    /// offer takes no bookings even if it was not closed yet).
    pub(super) async fn offer_is_running(
        conn: &mut <Db as sqlx::Database>::Connection,
        offer_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let offer: Option<OfferStateRow> = sqlx::query_as(
            "SELECT o.status, o.ends_at FROM offers o \
             JOIN practices p ON p.account_id = o.practice_id AND p.status = 'approved' \
             WHERE o.id = $1",
        )
        .bind(offer_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        Ok(offer.is_some_and(|o| o.status == "open" && o.ends_at.0 > now))
    }

    /// Any answer shows the person reads their mail: their unanswered count starts again.
    pub(crate) async fn reset_unanswered(
        conn: &mut <Db as sqlx::Database>::Connection,
        registrant_id: Uuid,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE registrants SET unanswered_in_a_row = 0 WHERE id = $1")
            .bind(registrant_id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
