//! Offers of spare doses: the "spare doses" form and API, the practice's offer page, check-in,
//! no-shows, adding doses, closing early and cancelling (with mails to everyone who booked).

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use restdose_domain::{BookingCode, RadiusKm};
use restdose_mail::{
    AccountTemplate, BookingTemplate, OutgoingMail, render_account, render_booking,
};
use restdose_store::{
    Booking, BookingStatus, CheckInOutcome, NewOffer, Offer, OfferCancellation, OfferStatus,
    OutboxRow,
};
use uuid::Uuid;

use crate::{FieldError, Principal, RadiusInput, ServiceError, Services};

pub const MAX_DOSES: i64 = 200;
pub const MAX_TOTAL_DOSES: i32 = 1000;
pub const MIN_CLAIM_MINUTES: i64 = 5;
pub const MAX_CLAIM_MINUTES: i64 = 120;
pub const DEFAULT_CLAIM_MINUTES: i64 = 15;
pub const MAX_NOTE_CHARS: usize = 500;
pub const MAX_DAYS_AHEAD: i64 = 7;
/// Rounds of preparing holders' mails before a cancellation gives up (see `cancel_offer`).
const CANCEL_ATTEMPTS: usize = 5;
/// How far in the past a start may lie and still mean "now".
pub const START_GRACE: Duration = Duration::minutes(5);

/// A whole number as it arrived (form text or JSON number).
#[derive(Debug, Clone, PartialEq)]
pub enum NumberInput<'a> {
    Missing,
    Number(i64),
    Text(&'a str),
    Invalid,
}

impl NumberInput<'_> {
    fn value(&self, default: Option<i64>) -> Option<i64> {
        match self {
            NumberInput::Missing => default,
            NumberInput::Number(n) => Some(*n),
            NumberInput::Text(t) if t.trim().is_empty() => default,
            NumberInput::Text(t) => t.trim().parse().ok(),
            NumberInput::Invalid => None,
        }
    }
}

/// A point in time as it arrived: the form's `datetime-local` (in the service's time zone) or
/// the API's RFC 3339.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeInput<'a> {
    Missing,
    Local(&'a str),
    Rfc3339(&'a str),
    Invalid,
}

#[derive(Debug, Clone)]
pub struct OfferInput<'a> {
    pub vaccine: &'a str,
    pub doses: NumberInput<'a>,
    pub starts_at: TimeInput<'a>,
    pub ends_at: TimeInput<'a>,
    pub claim_minutes: NumberInput<'a>,
    pub radius_km: RadiusInput<'a>,
    pub note: &'a str,
}

/// What the offer page and the API show.
#[derive(Debug, Clone)]
pub struct OfferView {
    pub offer: Offer,
    pub bookings: Vec<Booking>,
    /// Bookings that hold a dose (booked, checked in or no-show).
    pub claimed: i32,
    pub checked_in: i32,
    pub remaining: i32,
    /// Until the appointment window ends; zero when it has.
    pub time_left: Duration,
}

fn err(field: &'static str, code: &'static str) -> FieldError {
    FieldError { field, code }
}

impl Services {
    fn parse_time(
        &self,
        input: &TimeInput<'_>,
        field: &'static str,
    ) -> Result<DateTime<Utc>, FieldError> {
        match input {
            TimeInput::Missing => Err(err(field, "required")),
            TimeInput::Invalid => Err(err(field, "invalid_time")),
            TimeInput::Rfc3339(s) => DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| err(field, "invalid_time")),
            TimeInput::Local(s) if s.trim().is_empty() => Err(err(field, "required")),
            TimeInput::Local(s) => {
                let s = s.trim();
                let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                    .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
                    .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
                    .map_err(|_| err(field, "invalid_time"))?;
                // In the hour that is skipped when clocks go forward there is no such local
                // time; in the repeated hour we take the earlier one.
                self.policy
                    .timezone
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| err(field, "invalid_time"))
            }
        }
    }

    /// Checks the "spare doses" form or API body; one error per broken field.
    pub fn validate_offer(&self, input: &OfferInput<'_>) -> Result<ValidOffer, Vec<FieldError>> {
        let now = self.clock.now();
        let mut errors = Vec::new();
        let vaccine = input.vaccine.trim();
        if vaccine.is_empty() {
            errors.push(err("vaccine", "required"));
        } else if !self.policy.vaccines.iter().any(|v| v == vaccine) {
            errors.push(err("vaccine", "invalid_vaccine"));
        }
        let doses = input
            .doses
            .value(None)
            .filter(|d| (1..=MAX_DOSES).contains(d));
        if doses.is_none() {
            errors.push(err(
                "doses",
                if input.doses == NumberInput::Missing {
                    "required"
                } else {
                    "invalid_doses"
                },
            ));
        }
        let starts_at = self
            .parse_time(&input.starts_at, "starts_at")
            .map_err(|e| errors.push(e))
            .ok();
        let ends_at = self
            .parse_time(&input.ends_at, "ends_at")
            .map_err(|e| errors.push(e))
            .ok();
        if let Some(start) = starts_at {
            // "Today from now until 18:00" must work: the form has minute precision and
            // typing takes a moment, so a start up to `START_GRACE` ago still counts as now.
            if start < now - START_GRACE {
                errors.push(err("starts_at", "in_past"));
            } else if start > now + Duration::days(MAX_DAYS_AHEAD) {
                errors.push(err("starts_at", "too_far_ahead"));
            }
        }
        if let (Some(start), Some(end)) = (starts_at, ends_at) {
            if end <= start {
                errors.push(err("ends_at", "end_before_start"));
            } else if end <= now {
                errors.push(err("ends_at", "in_past"));
            } else if end > now + Duration::days(MAX_DAYS_AHEAD) {
                errors.push(err("ends_at", "too_far_ahead"));
            }
        }
        let claim_minutes = input
            .claim_minutes
            .value(Some(DEFAULT_CLAIM_MINUTES))
            .filter(|m| (MIN_CLAIM_MINUTES..=MAX_CLAIM_MINUTES).contains(m));
        if claim_minutes.is_none() {
            errors.push(err("claim_minutes", "invalid_claim_minutes"));
        }
        let radius = match &input.radius_km {
            RadiusInput::Missing => Ok(RadiusKm::DEFAULT),
            RadiusInput::Number(n) => RadiusKm::new(*n),
            RadiusInput::Text(t) => RadiusKm::parse(t),
            RadiusInput::Invalid => Err(restdose_domain::RadiusError),
        }
        .map_err(|_| errors.push(err("radius_km", "invalid_radius")))
        .ok();
        let note = input.note.trim();
        if note.chars().count() > MAX_NOTE_CHARS {
            errors.push(err("note", "note_too_long"));
        } else if note
            .chars()
            .any(|c| crate::validation::is_hidden_character(c) && !matches!(c, '\n' | '\r' | '\t'))
        {
            errors.push(err("note", "invalid_note"));
        }
        match (doses, starts_at, ends_at, claim_minutes, radius) {
            (Some(doses), Some(starts_at), Some(ends_at), Some(claim_minutes), Some(radius))
                if errors.is_empty() =>
            {
                Ok(ValidOffer {
                    vaccine: vaccine.to_owned(),
                    doses: doses as i32,
                    starts_at,
                    ends_at,
                    claim_minutes: claim_minutes as i32,
                    radius,
                    note: note.to_owned(),
                })
            }
            _ => Err(errors),
        }
    }

    /// Publishes an offer at the practice's address.
    #[tracing::instrument(skip_all)]
    pub async fn post_offer(
        &self,
        principal: &Principal,
        input: &OfferInput<'_>,
    ) -> Result<Offer, ServiceError> {
        let practice_id = principal.approved_practice()?;
        let valid = self
            .validate_offer(input)
            .map_err(ServiceError::Validation)?;
        let practice = self
            .store
            .practice(practice_id)
            .await?
            .ok_or(ServiceError::Forbidden)?;
        let offer = NewOffer {
            id: Uuid::new_v4(),
            practice_id,
            vaccine: valid.vaccine,
            doses: valid.doses,
            starts_at: valid.starts_at,
            ends_at: valid.ends_at,
            claim_minutes: valid.claim_minutes,
            radius_km: valid.radius.km(),
            note: valid.note,
            postcode: practice.postcode,
            created_at: self.clock.now(),
        };
        self.store.insert_offer(&offer).await?;
        tracing::info!(offer = %offer.id, practice = %practice_id, doses = offer.doses, "offer posted");
        self.store
            .offer(offer.id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// An offer of this practice; another practice's offer is `NotFound`, not `Forbidden`, so
    /// ids of other practices' offers cannot be probed.
    async fn own_offer(&self, principal: &Principal, id: Uuid) -> Result<Offer, ServiceError> {
        let practice_id = principal.approved_practice()?;
        self.store
            .offer(id)
            .await?
            .filter(|offer| offer.practice_id == practice_id)
            .ok_or(ServiceError::NotFound)
    }

    pub async fn offers(&self, principal: &Principal) -> Result<Vec<Offer>, ServiceError> {
        let practice_id = principal.approved_practice()?;
        Ok(self.store.offers_of(practice_id).await?)
    }

    pub async fn offer_view(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<OfferView, ServiceError> {
        let offer = self.own_offer(principal, id).await?;
        let bookings = self.store.bookings_of(id).await?;
        let claimed = bookings
            .iter()
            .filter(|b| b.status != BookingStatus::Cancelled)
            .count() as i32;
        let checked_in = bookings
            .iter()
            .filter(|b| b.status == BookingStatus::CheckedIn)
            .count() as i32;
        let now = self.clock.now();
        Ok(OfferView {
            remaining: (offer.doses - claimed).max(0),
            time_left: (offer.ends_at - now).max(Duration::zero()),
            offer,
            bookings,
            claimed,
            checked_in,
        })
    }

    /// Checks a booking code in. A code that cannot exist is simply `Unknown`.
    pub async fn check_in(
        &self,
        principal: &Principal,
        offer_id: Uuid,
        code: &str,
    ) -> Result<CheckInOutcome, ServiceError> {
        self.own_offer(principal, offer_id).await?;
        let Ok(code) = BookingCode::parse(code) else {
            return Ok(CheckInOutcome::Unknown);
        };
        let outcome = self
            .store
            .check_in(offer_id, code.as_str(), self.clock.now())
            .await?;
        tracing::info!(offer = %offer_id, outcome = ?outcome, "check-in");
        Ok(outcome)
    }

    pub async fn mark_no_show(
        &self,
        principal: &Principal,
        offer_id: Uuid,
        code: &str,
    ) -> Result<bool, ServiceError> {
        self.own_offer(principal, offer_id).await?;
        let Ok(code) = BookingCode::parse(code) else {
            return Ok(false);
        };
        Ok(self
            .store
            .mark_no_show(offer_id, code.as_str(), self.clock.now())
            .await?)
    }

    pub async fn add_doses(
        &self,
        principal: &Principal,
        offer_id: Uuid,
        more: NumberInput<'_>,
    ) -> Result<i32, ServiceError> {
        self.own_offer(principal, offer_id).await?;
        let more = more
            .value(None)
            .filter(|n| (1..=MAX_DOSES).contains(n))
            .ok_or_else(|| ServiceError::Validation(vec![err("doses", "invalid_doses")]))?;
        let total =
            self.store
                .add_doses(offer_id, more as i32)
                .await?
                .ok_or(ServiceError::Conflict(
                    "the offer is not open, or would exceed 1000 doses",
                ))?;
        // A full offer waits for nothing; new doses must reach people at once.
        self.store
            .reschedule_offer(offer_id, Some(self.clock.now()))
            .await?;
        Ok(total)
    }

    /// Stops inviting; bookings already made stay valid.
    pub async fn close_offer(
        &self,
        principal: &Principal,
        offer_id: Uuid,
    ) -> Result<(), ServiceError> {
        self.own_offer(principal, offer_id).await?;
        if !self
            .store
            .finish_offer(offer_id, OfferStatus::Closed, self.clock.now())
            .await?
        {
            return Err(ServiceError::Conflict("the offer is not open"));
        }
        tracing::info!(offer = %offer_id, "offer closed early");
        Ok(())
    }

    /// Calls the offer off: every booking is cancelled and its holder told by mail.
    pub async fn cancel_offer(
        &self,
        principal: &Principal,
        offer_id: Uuid,
    ) -> Result<usize, ServiceError> {
        let offer = self.own_offer(principal, offer_id).await?;
        if offer.ends_at <= self.clock.now() {
            // Nobody should get a cancellation mail after their appointment.
            return Err(ServiceError::Conflict("the appointment window is over"));
        }
        self.call_off(&offer)
            .await?
            .ok_or(ServiceError::Conflict("the offer is not open"))
    }

    /// An admin closes any practice's open offer for good: no more invitations or bookings,
    /// open invitations withdrawn, and — while its appointment window runs — every booking
    /// cancelled with the same mail as the practice's own cancel. Returns how many people were
    /// told.
    pub async fn close_offer_as_admin(
        &self,
        principal: &Principal,
        offer_id: Uuid,
    ) -> Result<usize, ServiceError> {
        principal.admin()?;
        self.close_offer_as_operator(offer_id).await
    }

    /// The same for the command line, where the operator is trusted.
    pub async fn close_offer_as_operator(&self, offer_id: Uuid) -> Result<usize, ServiceError> {
        let offer = self
            .store
            .offer(offer_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let told = self
            .end_offer(&offer)
            .await?
            .ok_or(ServiceError::Conflict("the offer is not open"))?;
        tracing::info!(offer = %offer_id, told, "offer closed by an operator");
        // The practice learns it from us, not from a patient who was told.
        if let Some(practice) = self.store.practice(offer.practice_id).await? {
            let window = self.format_window(offer.starts_at, offer.ends_at);
            let template = AccountTemplate::OfferClosedByAdmin {
                practice: &practice.name,
                vaccine: &offer.vaccine,
                window: &window,
                told,
            };
            self.mail_account(
                &practice.email,
                render_account(practice.language, &template),
            )
            .await?;
        }
        Ok(told)
    }

    /// A practice's open offers, for the admin page (where the admin decides on it).
    pub async fn open_offers_of_practice(
        &self,
        principal: &Principal,
        practice_id: Uuid,
    ) -> Result<Vec<Offer>, ServiceError> {
        principal.admin()?;
        let mut offers = self.store.offers_of(practice_id).await?;
        offers.retain(|o| o.status == OfferStatus::Open);
        Ok(offers)
    }

    /// Ends every open offer of a practice that may not offer doses any more (suspended or
    /// rejected), as `close_offer_as_admin` does one. Returns (offers ended, people told).
    pub(crate) async fn end_offers_of(
        &self,
        practice_id: Uuid,
    ) -> Result<(usize, usize), ServiceError> {
        let (mut ended, mut told) = (0, 0);
        for offer in self.store.offers_of(practice_id).await? {
            if let Some(n) = self.end_offer(&offer).await? {
                ended += 1;
                told += n;
            }
        }
        Ok((ended, told))
    }

    /// Ends an open offer so that it takes no more bookings. While its appointment window runs
    /// it is called off (bookings cancelled, holders told, as `cancel_offer`); once the window
    /// is over it is only closed (the appointments are past; nobody is mailed). Returns how
    /// many people were told, or None when the offer was not open.
    async fn end_offer(&self, offer: &Offer) -> Result<Option<usize>, ServiceError> {
        if offer.status != OfferStatus::Open {
            return Ok(None);
        }
        let now = self.clock.now();
        if offer.ends_at <= now {
            let closed = self
                .store
                .finish_offer(offer.id, OfferStatus::Closed, now)
                .await?;
            return Ok(closed.then_some(0));
        }
        self.call_off(offer).await
    }

    /// Cancels an open offer and tells everyone who booked (see `MatcherStore::cancel_offer`).
    /// Returns how many were told, or None when the offer was not open.
    async fn call_off(&self, offer: &Offer) -> Result<Option<usize>, ServiceError> {
        let offer_id = offer.id;
        let practice = self
            .store
            .practice(offer.practice_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let address = format!(
            "{}, {} {}",
            practice.street, practice.postcode, practice.city
        );
        let window = self.format_window(offer.starts_at, offer.ends_at);
        // Each holder's mail is written in the cancellation's own transaction, so nobody who
        // held a dose goes unwarned. Someone booking while the mails are prepared makes the
        // store refuse them all; prepare again (a few rounds at most: booking needs a free
        // dose, and every round sees more of them taken).
        for _ in 0..CANCEL_ATTEMPTS {
            let holders = self
                .store
                .booked_registrants(offer_id, BookingStatus::Booked)
                .await?;
            let mut mails = Vec::with_capacity(holders.len());
            for id in &holders {
                if let Some(row) = self
                    .booking_cancelled_mail(*id, &practice.name, &address, &window)
                    .await?
                {
                    mails.push(row);
                }
            }
            match self
                .store
                .cancel_offer(offer_id, self.clock.now(), &mails)
                .await?
            {
                OfferCancellation::Cancelled { told } => {
                    tracing::info!(offer = %offer_id, told = told.len(), "offer cancelled");
                    return Ok(Some(told.len()));
                }
                OfferCancellation::NotOpen => return Ok(None),
                OfferCancellation::HoldersChanged => {
                    tracing::info!(offer = %offer_id, "a booking came in while cancelling; again");
                }
            }
        }
        Err(ServiceError::Conflict(
            "bookings keep arriving; try cancelling again",
        ))
    }

    /// The mail telling a holder their booking is cancelled (with a fresh self-service link,
    /// stored now), or None when the person is gone.
    async fn booking_cancelled_mail(
        &self,
        registrant_id: Uuid,
        practice: &str,
        address: &str,
        window: &str,
    ) -> Result<Option<OutboxRow>, ServiceError> {
        let Some(registrant) = self.store.registrant(registrant_id).await? else {
            return Ok(None);
        };
        let email = self.decrypt_email(registrant.id, &registrant.email)?;
        let now = self.clock.now();
        let (manage, manage_row) = self.manage_token(registrant_id, now)?;
        self.store
            .insert_tokens(std::slice::from_ref(&manage_row))
            .await?;
        let lang = registrant.language;
        let content = render_booking(
            lang,
            &BookingTemplate::CancelledByPractice {
                practice,
                address,
                window,
                manage_url: &self.links.manage(&manage),
                unsubscribe_url: &self.links.unsubscribe(&manage),
            },
        );
        let mail = OutgoingMail {
            to: email,
            message_id: self.links.message_id(Uuid::new_v4()),
            content,
        };
        Ok(Some(self.outbox_row_about(
            &mail,
            now,
            Some(registrant_id),
            None,
        )?))
    }

    /// "04.05.2026 16:00–18:00" in the service's time zone.
    pub fn format_window(&self, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> String {
        let tz = self.policy.timezone;
        let start = starts_at.with_timezone(&tz);
        let end = ends_at.with_timezone(&tz);
        if start.date_naive() == end.date_naive() {
            format!("{}–{}", start.format("%d.%m.%Y %H:%M"), end.format("%H:%M"))
        } else {
            format!(
                "{} – {}",
                start.format("%d.%m.%Y %H:%M"),
                end.format("%d.%m.%Y %H:%M")
            )
        }
    }

    /// A local time for a form field (`datetime-local`).
    pub fn local_input(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.policy.timezone)
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    }
}

/// A checked offer, ready to store.
#[derive(Debug, Clone)]
pub struct ValidOffer {
    pub vaccine: String,
    pub doses: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub claim_minutes: i32,
    pub radius: RadiusKm,
    pub note: String,
}
