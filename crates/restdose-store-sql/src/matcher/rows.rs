//! The matcher's rows as the databases return them, and their conversions.

use restdose_domain::Postcode;
use restdose_store::{
    Candidate, Invitation, InvitationStatus, OutboxRow, StoreError, StoreResult, StoredEmail,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::encode::Ts;
use crate::{corrupt, lang};

#[derive(FromRow)]
pub(crate) struct ProgressRow {
    pub(crate) claimed: i32,
    pub(crate) invited: i32,
    pub(crate) waves: i32,
    pub(crate) next_wave_at: Option<Ts>,
    pub(crate) last_call_sent: bool,
}

#[derive(FromRow)]
pub(crate) struct CandidateRow {
    pub(crate) registrant_id: Uuid,
    pub(crate) postcode: String,
    pub(crate) distance_km: f32,
    pub(crate) created_at: Ts,
    pub(crate) language: String,
    pub(crate) email_key_id: i32,
    pub(crate) email_ciphertext: Vec<u8>,
    pub(crate) email_index: Vec<u8>,
}

impl TryFrom<CandidateRow> for Candidate {
    type Error = StoreError;

    fn try_from(row: CandidateRow) -> StoreResult<Candidate> {
        Ok(Candidate {
            registrant_id: row.registrant_id,
            postcode: Postcode::from_trusted(row.postcode),
            distance_km: row.distance_km,
            created_at: row.created_at.0,
            language: lang(&row.language)?,
            email: StoredEmail {
                key_id: row.email_key_id,
                ciphertext: row.email_ciphertext,
                index: row.email_index,
            },
        })
    }
}

#[derive(FromRow)]
pub(crate) struct InvitationRow {
    pub(crate) id: Uuid,
    pub(crate) offer_id: Uuid,
    pub(crate) registrant_id: Uuid,
    pub(crate) wave: i32,
    pub(crate) last_call: bool,
    pub(crate) distance_km: f32,
    pub(crate) status: String,
    pub(crate) created_at: Ts,
    pub(crate) expires_at: Ts,
    pub(crate) answered_at: Option<Ts>,
}

pub(crate) const INVITATION_COLUMNS: &str = "id, offer_id, registrant_id, wave, last_call, distance_km, \
     status, created_at, expires_at, answered_at";

pub(crate) fn invitation_status(s: &str, id: Uuid) -> StoreResult<InvitationStatus> {
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
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            answered_at: row.answered_at.map(Into::into),
        })
    }
}

/// What a claim needs to know about its invitation.
#[derive(FromRow)]
pub(crate) struct ClaimedInvitationRow {
    pub(crate) id: Uuid,
    pub(crate) offer_id: Uuid,
    pub(crate) registrant_id: Uuid,
    pub(crate) status: String,
    pub(crate) expires_at: Ts,
}

#[derive(FromRow)]
pub(crate) struct OfferStateRow {
    pub(crate) status: String,
    pub(crate) ends_at: Ts,
}

#[derive(FromRow)]
pub(crate) struct ExpiredRow {
    pub(crate) invitation_id: Uuid,
    pub(crate) registrant_id: Uuid,
    pub(crate) offer_id: Uuid,
    pub(crate) unanswered_in_a_row: i32,
}

#[derive(FromRow)]
pub(crate) struct BookingRecordRow {
    pub(crate) id: Uuid,
    pub(crate) offer_id: Uuid,
    pub(crate) registrant_id: Option<Uuid>,
    pub(crate) code: String,
    pub(crate) status: String,
    pub(crate) created_at: Ts,
}

#[derive(FromRow)]
pub(crate) struct OutboxDbRow {
    pub(crate) id: Uuid,
    pub(crate) key_id: i32,
    pub(crate) payload: Vec<u8>,
    pub(crate) created_at: Ts,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: Ts,
    pub(crate) registrant_id: Option<Uuid>,
    pub(crate) offer_id: Option<Uuid>,
}

impl From<OutboxDbRow> for OutboxRow {
    fn from(row: OutboxDbRow) -> OutboxRow {
        OutboxRow {
            id: row.id,
            key_id: row.key_id,
            payload: row.payload,
            created_at: row.created_at.0,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.0,
            registrant_id: row.registrant_id,
            offer_id: row.offer_id,
        }
    }
}
