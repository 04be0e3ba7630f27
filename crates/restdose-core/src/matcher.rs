//! The matcher: offers doses to the longest-waiting people nearby, in waves.
//!
//! Each step is a `*_once` function that does one unit of work and returns what it did, so
//! tests drive it with a controllable clock and the process loop stays a thin wrapper.
//!
//! The wave rule itself (sizing, last call, answer time) is `restdose_domain::matching::WavePlan`;
//! this module reads what it needs from the store, applies it and sends the mails.
//!
//! A wave invites ceil(remaining × overbooking) people, each for the offer's claim window.
//! Overbooking is the inverse of the acceptance rate estimated from this offer's earlier waves
//! and the area's recent history. When the appointment starts in less than one claim window,
//! the wave becomes a "last call": a larger group, first come first served. When the wave's
//! time is up and doses remain, the next wave goes out; the offer stops when it is full,
//! closed, cancelled or its window has ended. When the last dose is claimed, the offer's other
//! open invitations are withdrawn at once (no strike, no throttle: those people are free for the
//! next offer nearby). A dose handed back (cancelled booking) makes the offer due again at once,
//! whatever the matcher was doing with the offer at that moment.

use chrono::{DateTime, Duration, Utc};
use restdose_crypto::{SecretToken, random_u64};
use restdose_domain::matching::{WaveInput, WavePlan, WavePolicy};
use restdose_domain::{BookingCode, Email};
use restdose_mail::calendar::{Appointment, ics_attachment};
use restdose_mail::{BookingTemplate, OutgoingMail, render_booking};
use restdose_store::{
    BookingRecord, CandidateQuery, ClaimOutcome, Invitation, InvitationStatus, NewClaim,
    NewInvitation, NewToken, NewWave, Offer, Practice, StoredEmail, TokenPurpose,
};
use uuid::Uuid;

use crate::{ServiceError, Services};

/// Tunables of the matcher (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct MatcherPolicy {
    pub wave: WavePolicy,
    /// Nobody is invited again sooner than this after their last invitation.
    pub throttle: Duration,
    /// A worker holds an offer this long while it prepares a wave.
    pub lease: Duration,
    /// When no one (or too few) qualified, look again after this: people become free all the
    /// time (answers, fills elsewhere), and a dose must not wait long for them.
    pub retry_empty: Duration,
    /// How far back the area's acceptance history reaches.
    pub area_history: Duration,
    /// Unanswered invitations in a row that pause a person.
    pub pause_after_unanswered: i32,
    /// Nobody gets more invitations than this in 24 hours. Invitations an offer withdraws
    /// (it filled) lift the throttle, so in a busy area one person could otherwise be invited
    /// by offer after offer.
    pub max_invitations_per_day: u32,
}

impl Default for MatcherPolicy {
    fn default() -> Self {
        MatcherPolicy {
            wave: WavePolicy::default(),
            throttle: Duration::minutes(30),
            lease: Duration::seconds(60),
            retry_empty: Duration::minutes(1),
            area_history: Duration::days(30),
            pause_after_unanswered: 3,
            max_invitations_per_day: 10,
        }
    }
}

/// What one wave step did.
#[derive(Debug, Clone, PartialEq)]
pub enum WaveOutcome {
    /// An offer got a wave of this many invitations.
    Invited {
        offer_id: Uuid,
        wave: i32,
        invited: u32,
        last_call: bool,
        overbooking: f64,
    },
    /// An offer is full; it waits until a dose is handed back.
    Filled { offer_id: Uuid },
    /// Nobody qualifies right now; looked at again later.
    NoCandidates { offer_id: Uuid },
    /// The offer looked full, but a dose came back before it could be parked: due again now.
    DoseReturned { offer_id: Uuid },
    /// As many people as the wave would invite are still asked; looked at again when the
    /// first of their invitations runs out.
    AwaitingAnswers { offer_id: Uuid },
    /// The practice is not approved (any more); looked at again later.
    PracticeNotApproved { offer_id: Uuid },
}

/// What the person sees on the invitation page.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub invitation: Invitation,
    pub offer: Offer,
    pub practice: Practice,
    pub remaining: i32,
}

/// What the person sees on the booking page.
#[derive(Debug, Clone)]
pub struct BookingView {
    pub booking: BookingRecord,
    pub code: BookingCode,
    pub offer: Offer,
    pub practice: Practice,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvitationExpiryReport {
    pub expired: u32,
    pub paused: u32,
}

fn address(practice: &Practice) -> String {
    format!(
        "{}, {} {}",
        practice.street, practice.postcode, practice.city
    )
}

impl Services {
    /// The address of a person, decrypted (bound to their row id).
    pub(crate) fn decrypt_email(
        &self,
        id: Uuid,
        email: &StoredEmail,
    ) -> Result<Email, ServiceError> {
        let plain = self
            .keys
            .decrypt(email.key_id, &email.ciphertext, id.as_bytes())?;
        let text =
            String::from_utf8(plain.to_vec()).map_err(|_| restdose_crypto::CryptoError::Decrypt)?;
        Ok(Email::from_trusted(text))
    }

    /// A new self-service link for a person: the secret and the row to store.
    pub(crate) fn manage_token(
        &self,
        registrant_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(SecretToken, NewToken), ServiceError> {
        let token = SecretToken::generate()?;
        let row = NewToken {
            hash: token.hash(),
            registrant_id,
            purpose: TokenPurpose::Manage,
            created_at: now,
            expires_at: now + self.policy.manage_link_ttl,
        };
        Ok((token, row))
    }

    fn local_time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.policy.timezone)
            .format("%d.%m.%Y %H:%M")
            .to_string()
    }

    /// One wave for one due offer, if any is due.
    #[tracing::instrument(skip_all)]
    pub async fn run_wave_once(&self) -> Result<Option<WaveOutcome>, ServiceError> {
        let policy = &self.matcher;
        let now = self.clock.now();
        let Some(offer) = self.store.lease_due_offer(now, now + policy.lease).await? else {
            return Ok(None);
        };
        let progress = self
            .store
            .offer_progress(offer.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let practice = self
            .store
            .practice(offer.practice_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if practice.status != restdose_store::PracticeStatus::Approved {
            // A suspended (or rejected) practice's offers invite nobody until it is approved.
            self.store
                .reschedule_offer(offer.id, Some(now + policy.retry_empty))
                .await?;
            return Ok(Some(WaveOutcome::PracticeNotApproved {
                offer_id: offer.id,
            }));
        }
        let remaining = offer.doses - progress.claimed;
        if remaining <= 0 {
            // Parked only if still full: a cancellation since the read above must not lose
            // its dose (it made the offer due; parking unconditionally would undo that).
            if self.store.park_full_offer(offer.id).await? {
                return Ok(Some(WaveOutcome::Filled { offer_id: offer.id }));
            }
            self.store.reschedule_offer(offer.id, Some(now)).await?;
            return Ok(Some(WaveOutcome::DoseReturned { offer_id: offer.id }));
        }
        let area = offer.postcode.area();
        let acceptance = self
            .store
            .acceptance(
                area,
                now - policy.area_history,
                offer.id,
                policy.wave.quick_answer,
                now,
            )
            .await?;
        let claim_window = Duration::minutes(i64::from(offer.claim_minutes));
        let answer_time = policy.wave.answer_time(claim_window);
        let (awaiting, first_awaiting) = self
            .store
            .awaiting_answers(offer.id, now, now - answer_time)
            .await?;
        // The area's history includes this offer's own answers, so they weigh double: the
        // offer adapts first to its own people.
        let plan = WavePlan::decide(
            &policy.wave,
            &WaveInput {
                now,
                starts_at: offer.starts_at,
                ends_at: offer.ends_at,
                claim_minutes: offer.claim_minutes,
                remaining: remaining as u32,
                answered: acceptance.area.answered + acceptance.offer.answered,
                accepted: acceptance.area.accepted + acceptance.offer.accepted,
                awaiting,
                first_awaiting,
            },
            policy.retry_empty,
        );
        let (size, last_call, overbooking, expires_at) = match plan {
            WavePlan::Wait { until } => {
                self.store.reschedule_offer(offer.id, Some(until)).await?;
                return Ok(Some(WaveOutcome::AwaitingAnswers { offer_id: offer.id }));
            }
            WavePlan::Invite {
                size,
                last_call,
                overbooking,
                expires_at,
            } => (size, last_call, overbooking, expires_at),
        };
        let postcodes: Vec<(String, f32)> = self
            .neighbours
            .within(offer.postcode.as_str(), f64::from(offer.radius_km))
            .map(|(code, d)| (code.to_owned(), d))
            .collect();
        let candidates = self
            .store
            .candidates(&CandidateQuery {
                offer_id: offer.id,
                postcodes,
                invited_before: now - policy.throttle,
                counted_since: now - Duration::hours(24),
                max_invitations_since: policy.max_invitations_per_day,
                limit: size as u32,
            })
            .await?;
        if candidates.is_empty() {
            self.store
                .reschedule_offer(offer.id, Some(now + policy.retry_empty))
                .await?;
            tracing::info!(offer = %offer.id, "no one to invite right now");
            return Ok(Some(WaveOutcome::NoCandidates { offer_id: offer.id }));
        }

        let next_wave_at = WavePlan::next_wave_at(
            now,
            expires_at,
            answer_time,
            candidates.len() < size,
            policy.retry_empty,
        );
        let window = self.format_window(offer.starts_at, offer.ends_at);
        let answer_by = self.local_time(expires_at);
        let practice_address = address(&practice);
        let mut invitations = Vec::with_capacity(candidates.len());
        let mut manage_tokens = Vec::with_capacity(candidates.len());
        for candidate in &candidates {
            let email = self.decrypt_email(candidate.registrant_id, &candidate.email)?;
            let invite = SecretToken::generate()?;
            let (manage, manage_row) = self.manage_token(candidate.registrant_id, now)?;
            manage_tokens.push(manage_row);
            let lang = candidate.language;
            let content = render_booking(
                lang,
                &BookingTemplate::Invitation {
                    practice: &practice.name,
                    address: &practice_address,
                    distance_km: candidate.distance_km,
                    window: &window,
                    vaccine: &offer.vaccine,
                    note: &offer.note,
                    answer_by: &answer_by,
                    offer_url: &self
                        .links
                        .portal(&format!("/invitations/{}", invite.expose())),
                    last_call,
                    manage_url: &self.links.manage(&manage),
                    unsubscribe_url: &self.links.unsubscribe(&manage),
                },
            );
            let invitation_id = Uuid::new_v4();
            let mail = OutgoingMail {
                to: email,
                message_id: self.links.message_id(invitation_id),
                content,
            };
            invitations.push((
                NewInvitation {
                    id: invitation_id,
                    registrant_id: candidate.registrant_id,
                    token_hash: invite.hash(),
                    distance_km: candidate.distance_km,
                    expires_at,
                },
                self.outbox_row_about(&mail, now, Some(candidate.registrant_id), Some(offer.id))?,
            ));
        }
        // The self-service links in the mails must work; a token for someone the wave then
        // skips is harmless and expires.
        self.store.insert_tokens(&manage_tokens).await?;
        let wave = progress.waves + 1;
        let invited = self
            .store
            .record_wave(&NewWave {
                offer_id: offer.id,
                wave,
                last_call,
                created_at: now,
                next_wave_at,
                claimed_seen: progress.claimed,
                invitations,
            })
            .await?;
        tracing::info!(offer = %offer.id, wave, invited, last_call, overbooking, remaining, "wave sent");
        crate::telemetry::invitations_sent(u64::from(invited));
        Ok(Some(WaveOutcome::Invited {
            offer_id: offer.id,
            wave,
            invited,
            last_call,
            overbooking,
        }))
    }

    /// Expires unanswered invitations; pauses people after too many in a row and tells them.
    #[tracing::instrument(skip_all)]
    pub async fn expire_invitations_once(&self) -> Result<InvitationExpiryReport, ServiceError> {
        let now = self.clock.now();
        let expired = self.store.expire_invitations(now, 500).await?;
        let mut report = InvitationExpiryReport {
            expired: expired.len() as u32,
            paused: 0,
        };
        for e in expired
            .iter()
            .filter(|e| e.unanswered_in_a_row >= self.matcher.pause_after_unanswered)
        {
            let Some(registrant) = self.store.registrant(e.registrant_id).await? else {
                continue;
            };
            let email = self.decrypt_email(registrant.id, &registrant.email)?;
            let (manage, manage_row) = self.manage_token(registrant.id, now)?;
            let lang = registrant.language;
            let content = render_booking(
                lang,
                &BookingTemplate::PausedAfterSilence {
                    manage_url: &self.links.manage(&manage),
                    unsubscribe_url: &self.links.unsubscribe(&manage),
                },
            );
            let mail = OutgoingMail {
                to: email,
                message_id: self.links.message_id(Uuid::new_v4()),
                content,
            };
            self.store
                .insert_tokens(std::slice::from_ref(&manage_row))
                .await?;
            if self
                .store
                .pause_for_silence(
                    registrant.id,
                    now,
                    &self.outbox_row_about(&mail, now, Some(registrant.id), None)?,
                )
                .await?
            {
                report.paused += 1;
                tracing::info!(registrant = %registrant.id, "paused after unanswered invitations");
            }
        }
        Ok(report)
    }

    pub async fn invitation_view(&self, token: &str) -> Result<InvitationView, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let invitation = self
            .store
            .invitation_by_token(&token.hash())
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let offer = self
            .store
            .offer(invitation.offer_id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let practice = self
            .store
            .practice(offer.practice_id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let progress = self
            .store
            .offer_progress(offer.id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        Ok(InvitationView {
            remaining: (offer.doses - progress.claimed).max(0),
            invitation,
            offer,
            practice,
        })
    }

    /// The person clicks "claim" (a POST). Returns the outcome and, when booked, the secret of
    /// the booking link (the booking page shows the code).
    #[tracing::instrument(skip_all)]
    pub async fn claim(
        &self,
        token: &str,
    ) -> Result<(ClaimOutcome, Option<SecretToken>), ServiceError> {
        let view = self.invitation_view(token).await?;
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let now = self.clock.now();
        // Answers that need no booking are given before any decryption, rendering or token
        // writing (a claim storm is mostly these). An invitation never returns to `Open`, so
        // an answered or expired one is answered from what was read...
        match view.invitation.status {
            InvitationStatus::Open if view.invitation.expires_at > now => {}
            InvitationStatus::Open | InvitationStatus::Expired => {
                return Ok((ClaimOutcome::Expired, None));
            }
            // Ended by the offer: every dose taken, or closed or cancelled. A click while it
            // runs came too late and is recorded as `Missed` (the person wanted the dose, which
            // the overbooking estimate learns from).
            InvitationStatus::Withdrawn => {
                let running = view.offer.status == restdose_store::OfferStatus::Open
                    && view.offer.ends_at > now;
                if !running {
                    return Ok((ClaimOutcome::Expired, None));
                }
                self.store.claim_all_taken(&token.hash(), now).await?;
                return Ok((ClaimOutcome::AllTaken, None));
            }
            answered => return Ok((ClaimOutcome::AlreadyAnswered(answered), None)),
        }
        // ...and a claim on a full offer by one conditional statement. The store's `claim`
        // stays the arbiter whenever a dose may be left.
        if view.remaining == 0 && self.store.claim_all_taken(&token.hash(), now).await? {
            tracing::info!(offer = %view.offer.id, outcome = ?ClaimOutcome::AllTaken, "claim");
            return Ok((ClaimOutcome::AllTaken, None));
        }
        let registrant = self
            .store
            .registrant(view.invitation.registrant_id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let email = self.decrypt_email(registrant.id, &registrant.email)?;
        let code = BookingCode::from_random(random_u64()?);
        let booking_token = SecretToken::generate()?;
        let booking_id = Uuid::new_v4();
        let (manage, manage_row) = self.manage_token(registrant.id, now)?;
        let window = self.format_window(view.offer.starts_at, view.offer.ends_at);
        let place = address(&view.practice);
        let lang = registrant.language;
        let mut content = render_booking(
            lang,
            &BookingTemplate::Confirmed {
                code: &code.display(),
                practice: &view.practice.name,
                address: &place,
                window: &window,
                vaccine: &view.offer.vaccine,
                note: &view.offer.note,
                booking_url: &self
                    .links
                    .portal(&format!("/bookings/{}", booking_token.expose())),
                manage_url: &self.links.manage(&manage),
                unsubscribe_url: &self.links.unsubscribe(&manage),
            },
        );
        let summary = format!("{}: {}", view.practice.name, view.offer.vaccine);
        let description = format!("Buchungscode / booking code: {}", code.display());
        let uid = format!("{}@{}", booking_id.simple(), self.links.host());
        content.attachments.push(ics_attachment(&Appointment {
            uid: &uid,
            summary: &summary,
            location: &place,
            description: &description,
            starts_at: view.offer.starts_at,
            ends_at: view.offer.ends_at,
            created_at: now,
        }));
        let mail = OutgoingMail {
            to: email,
            message_id: self.links.message_id(booking_id),
            content,
        };
        let claim = NewClaim {
            invitation_token_hash: token.hash(),
            now,
            booking_id,
            code: code.as_str().to_owned(),
            booking_token_hash: booking_token.hash(),
            confirmation: self.outbox_row_about(
                &mail,
                now,
                Some(registrant.id),
                Some(view.offer.id),
            )?,
        };
        self.store
            .insert_tokens(std::slice::from_ref(&manage_row))
            .await?;
        let outcome = self.store.claim(&claim).await?;
        tracing::info!(offer = %view.offer.id, outcome = ?outcome, "claim");
        if outcome == ClaimOutcome::Booked {
            crate::telemetry::invitation_claimed();
            // The dose just placed was the last one: the offer is filled.
            if let Some(progress) = self.store.offer_progress(view.offer.id).await?
                && progress.claimed >= view.offer.doses
            {
                let took = now - view.offer.created_at;
                crate::telemetry::offer_filled(took.num_milliseconds() as f64 / 1000.0);
            }
        }
        Ok(match outcome {
            ClaimOutcome::Booked => (outcome, Some(booking_token)),
            other => (other, None),
        })
    }

    /// The person cannot come: they keep their place and the next wave may invite them again.
    pub async fn decline(&self, token: &str) -> Result<bool, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        self.store
            .invitation_by_token(&token.hash())
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        Ok(self.store.decline(&token.hash(), self.clock.now()).await?)
    }

    pub async fn booking_view(&self, token: &str) -> Result<BookingView, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let booking = self
            .store
            .booking_by_token(&token.hash())
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let offer = self
            .store
            .offer(booking.offer_id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let practice = self
            .store
            .practice(offer.practice_id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let code = BookingCode::parse(&booking.code).map_err(|_| ServiceError::InvalidLink)?;
        Ok(BookingView {
            booking,
            code,
            offer,
            practice,
        })
    }

    /// The person cancels their booking; the dose goes straight back to the matcher.
    pub async fn cancel_booking(&self, token: &str) -> Result<bool, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        self.store
            .booking_by_token(&token.hash())
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let cancelled = self
            .store
            .cancel_booking(&token.hash(), self.clock.now())
            .await?;
        if let Some(offer) = cancelled {
            tracing::info!(offer = %offer, "booking cancelled by the person; dose handed back");
        }
        Ok(cancelled.is_some())
    }

    /// Whether an invitation is still worth answering (for the page).
    pub fn invitation_open(&self, view: &InvitationView) -> bool {
        let now = self.clock.now();
        view.invitation.status == InvitationStatus::Open
            && view.invitation.expires_at > now
            && view.offer.status == restdose_store::OfferStatus::Open
            && view.offer.ends_at > now
    }
}
