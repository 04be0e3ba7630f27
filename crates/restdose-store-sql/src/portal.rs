//! TEMPORARY stand-in until the portal area is merged in.
use crate::encode::Ts;
use restdose_store::{Offer, OfferStatus, StoreError, StoreResult};
use sqlx::FromRow;
use uuid::Uuid;

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
                .map_err(|_| crate::corrupt(format!("offer {}: negative radius", row.id)))?,
            note: row.note,
            postcode: row.postcode,
            status: OfferStatus::parse(&row.status)
                .ok_or_else(|| crate::corrupt(format!("offer {}: unknown status", row.id)))?,
            created_at: row.created_at.0,
            closed_at: row.closed_at.map(Into::into),
        })
    }
}
