//! The registrant journey: sign up, confirm (double opt-in), manage, pause, leave.

use chrono::{DateTime, Utc};
use restdose_crypto::SecretToken;
use restdose_domain::{Email, Lang, Postcode, RadiusKm};
use restdose_mail::{OutgoingMail, Template, render};
use restdose_store::{
    NewRegistrant, NewToken, Registrant, RegistrantStatus, StoreError, StoredEmail, TokenPurpose,
};
use uuid::Uuid;

use crate::limits::Action;
use crate::validation::{RadiusInput, validate_preferences};
use crate::{ServiceError, Services, SignUpRequest};

/// What the self-service page shows: everything stored about the person, decrypted for them.
#[derive(Debug, Clone)]
pub struct RegistrantView {
    pub email: Email,
    pub postcode: Postcode,
    pub radius: RadiusKm,
    pub status: RegistrantStatus,
    pub language: Lang,
    pub signed_up_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    /// When a mail to the address was refused for good (they were paused then); cleared when
    /// they resume or confirm.
    pub undeliverable_at: Option<DateTime<Utc>>,
}

/// What a confirmation link confirms: the settings stored at sign-up.
#[derive(Debug, Clone)]
pub struct ConfirmView {
    pub postcode: Postcode,
    pub radius: RadiusKm,
}

impl Services {
    /// Registers a person, or re-sends their link. The outcome is the same for new and known
    /// addresses, so the answer never tells whether an address is registered. Limited per
    /// client (`Throttled`) and per address: over the address's mail limit nothing is stored
    /// or sent, and the answer is the same.
    #[tracing::instrument(skip_all)]
    pub async fn sign_up(
        &self,
        request: SignUpRequest,
        client: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.limit_client(Action::RegistrantSignUp, client).await?;
        if !self
            .mail_allowed(Action::RegistrantSignUp, &request.email.normalised())
            .await?
        {
            return Ok(());
        }
        let now = self.clock.now();
        let index = self.keys.blind_index(&request.email.normalised());
        // No look-up first: new addresses are the common case, and the unique blind index
        // turns a known one into `Conflict` below (one round trip less per sign-up on
        // PostgreSQL, docs/performance.md S1).
        let id = Uuid::new_v4();
        let (key_id, ciphertext) = self
            .keys
            .encrypt(request.email.as_str().as_bytes(), id.as_bytes())?;
        let confirm = SecretToken::generate()?;
        let manage = SecretToken::generate()?;
        let new = NewRegistrant {
            id,
            email: StoredEmail {
                key_id,
                ciphertext,
                index,
            },
            postcode: request.postcode.clone(),
            radius_km: request.radius.km(),
            language: request.lang,
            created_at: now,
            last_mail_at: Some(now),
        };
        let tokens = [
            self.token(&confirm, id, TokenPurpose::Confirm, now),
            self.token(&manage, id, TokenPurpose::Manage, now),
        ];
        let mail = self.confirmation_mail(
            &request.email,
            request.lang,
            &confirm,
            &manage,
            (&new.postcode, new.radius_km),
        );
        let outbox = self.outbox_row_about(&mail, now, Some(id), None)?;
        // The person, their links and the confirmation mail are stored together: the answer
        // does not wait for the mail server, and no mail is lost if it is down.
        match self
            .store
            .insert_registrant_with_mails(&new, &tokens, std::slice::from_ref(&outbox))
            .await
        {
            Ok(()) => {}
            // The address is registered (perhaps a moment ago, by a racing request): a repeat.
            Err(StoreError::Conflict) => {
                let existing = self
                    .store
                    .registrant_by_email_index(&new.email.index)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                return self.sign_up_again(existing, &request, now).await;
            }
            Err(e) => return Err(e.into()),
        }

        tracing::info!(registrant = %id, "sign-up stored, confirmation queued");
        Ok(())
    }

    async fn sign_up_again(
        &self,
        existing: Registrant,
        request: &SignUpRequest,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let window_start = now - self.policy.resend_interval;
        if !self
            .store
            .reserve_mail_slot(existing.id, now, window_start)
            .await?
        {
            tracing::info!(registrant = %existing.id, "repeat sign-up within the resend interval; no mail");
            return Ok(());
        }
        let manage = SecretToken::generate()?;
        let lang = existing.language;
        let (tokens, mail) = if existing.status == RegistrantStatus::Pending {
            // Not confirmed yet: a fresh confirmation link goes out, for what was first given.
            // The form's postcode and radius are ignored: whoever fills the form need not own
            // the address, and the link confirms what the mail and the confirm page show.
            let confirm = SecretToken::generate()?;
            let tokens = vec![
                self.token(&confirm, existing.id, TokenPurpose::Confirm, now),
                self.token(&manage, existing.id, TokenPurpose::Manage, now),
            ];
            (
                tokens,
                self.confirmation_mail(
                    &request.email,
                    request.lang,
                    &confirm,
                    &manage,
                    (&existing.postcode, existing.radius_km),
                ),
            )
        } else {
            // Confirmed people keep their settings (a stranger must not change them) and get a
            // reminder with their self-service link.
            let tokens = vec![self.token(&manage, existing.id, TokenPurpose::Manage, now)];
            let mail = self.mail(
                &request.email,
                render(
                    lang,
                    &Template::AlreadyRegistered {
                        manage_url: &self.links.manage(&manage),
                        unsubscribe_url: &self.links.unsubscribe(&manage),
                    },
                ),
            );
            (tokens, mail)
        };
        let outbox = self.outbox_row_about(&mail, now, Some(existing.id), None)?;
        if let Err(e) = self
            .store
            .insert_tokens_with_mails(&tokens, std::slice::from_ref(&outbox))
            .await
        {
            // Let the person retry right away instead of waiting out the resend interval.
            self.store
                .release_mail_slot(existing.id, now, existing.last_mail_at)
                .await?;
            return Err(e.into());
        }
        tracing::info!(registrant = %existing.id, "repeat sign-up, mail queued");
        Ok(())
    }

    /// Whether a confirmation link is still good, and what it confirms (for the page that shows
    /// the button).
    pub async fn check_confirm_link(&self, token: &str) -> Result<ConfirmView, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let id = self
            .store
            .find_token(&token.hash(), TokenPurpose::Confirm, self.clock.now())
            .await?
            .map(|t| t.registrant_id)
            .ok_or(ServiceError::InvalidLink)?;
        let registrant = self
            .store
            .registrant(id)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        Ok(ConfirmView {
            postcode: registrant.postcode,
            radius: RadiusKm::new(i64::from(registrant.radius_km)).unwrap_or_default(),
        })
    }

    /// The double opt-in click (a POST). Returns a fresh self-service link for the next page.
    #[tracing::instrument(skip_all)]
    pub async fn confirm(&self, token: &str) -> Result<SecretToken, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let now = self.clock.now();
        let id = self
            .store
            .confirm_registrant(&token.hash(), now)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let manage = SecretToken::generate()?;
        self.store
            .insert_tokens(&[self.token(&manage, id, TokenPurpose::Manage, now)])
            .await?;
        // Count each person once, at their first confirmation (a second link may confirm
        // again). Stored times are rounded (milliseconds, microseconds), hence the tolerance.
        if let Some(person) = self.store.registrant(id).await?
            && person
                .confirmed_at
                .is_some_and(|at| (now - at).num_milliseconds().abs() < 1000)
        {
            self.count_signup(person.postcode.as_str(), now).await?;
        }
        tracing::info!(registrant = %id, "registrant confirmed");
        Ok(manage)
    }

    /// The person behind a self-service link.
    pub async fn view(&self, token: &str) -> Result<RegistrantView, ServiceError> {
        let registrant = self.registrant_for(token).await?;
        Ok(RegistrantView {
            email: self.decrypt_email(registrant.id, &registrant.email)?,
            postcode: registrant.postcode,
            radius: RadiusKm::new(i64::from(registrant.radius_km)).unwrap_or_default(),
            status: registrant.status,
            language: registrant.language,
            signed_up_at: registrant.created_at,
            confirmed_at: registrant.confirmed_at,
            paused_at: registrant.paused_at,
            undeliverable_at: registrant.undeliverable_at,
        })
    }

    pub async fn update_preferences(
        &self,
        token: &str,
        postcode: &str,
        radius: RadiusInput<'_>,
    ) -> Result<(), ServiceError> {
        let id = self.registrant_id_for(token).await?;
        let (postcode, radius) = validate_preferences(postcode, radius, &self.gazetteer)
            .map_err(ServiceError::Validation)?;
        self.store
            .update_preferences(id, &postcode, radius.km())
            .await
            .map_err(not_found_is_invalid_link)?;
        tracing::info!(registrant = %id, "preferences changed");
        Ok(())
    }

    /// Pause (no offers) or resume; the place in line is kept either way.
    pub async fn set_paused(
        &self,
        token: &str,
        paused: bool,
    ) -> Result<RegistrantStatus, ServiceError> {
        let id = self.registrant_id_for(token).await?;
        let status = self
            .store
            .set_paused(id, paused, self.clock.now())
            .await
            .map_err(not_found_is_invalid_link)?;
        tracing::info!(registrant = %id, status = status.as_str(), "pause toggled");
        Ok(status)
    }

    /// Hard delete, from the self-service page or a one-click unsubscribe.
    pub async fn delete(&self, token: &str) -> Result<(), ServiceError> {
        let id = self.registrant_id_for(token).await?;
        self.store.delete_registrant(id).await?;
        tracing::info!(registrant = %id, "registrant deleted on request");
        Ok(())
    }

    async fn registrant_id_for(&self, token: &str) -> Result<Uuid, ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        self.store
            .find_token(&token.hash(), TokenPurpose::Manage, self.clock.now())
            .await?
            .map(|t| t.registrant_id)
            .ok_or(ServiceError::InvalidLink)
    }

    pub(crate) async fn registrant_for(&self, token: &str) -> Result<Registrant, ServiceError> {
        let id = self.registrant_id_for(token).await?;
        self.store
            .registrant(id)
            .await?
            .ok_or(ServiceError::InvalidLink)
    }

    fn token(
        &self,
        token: &SecretToken,
        id: Uuid,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> NewToken {
        let ttl = match purpose {
            TokenPurpose::Confirm => self.policy.confirm_link_ttl,
            TokenPurpose::Manage => self.policy.manage_link_ttl,
        };
        NewToken {
            hash: token.hash(),
            registrant_id: id,
            purpose,
            created_at: now,
            expires_at: now + ttl,
        }
    }

    fn confirmation_mail(
        &self,
        to: &Email,
        lang: Lang,
        confirm: &SecretToken,
        manage: &SecretToken,
        (postcode, radius_km): (&Postcode, u16),
    ) -> OutgoingMail {
        self.mail(
            to,
            render(
                lang,
                &Template::Confirmation {
                    confirm_url: &self.links.confirm(confirm),
                    manage_url: &self.links.manage(manage),
                    unsubscribe_url: &self.links.unsubscribe(manage),
                    valid_hours: self.policy.confirm_link_ttl.num_hours(),
                    postcode: postcode.as_str(),
                    radius_km,
                },
            ),
        )
    }

    fn mail(&self, to: &Email, content: restdose_mail::MailContent) -> OutgoingMail {
        OutgoingMail {
            to: to.clone(),
            message_id: self.links.message_id(Uuid::new_v4()),
            content,
        }
    }
}

fn not_found_is_invalid_link(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::InvalidLink,
        other => other.into(),
    }
}
