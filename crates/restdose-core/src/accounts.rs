//! Practice and admin accounts: sign-up with e-mail verification, login with throttling,
//! sessions with CSRF tokens and idle timeout, password reset and change, admin decisions.

use chrono::{DateTime, Duration, Utc};
use restdose_crypto::SecretToken;
use restdose_domain::{Email, Lang, Postcode};
use restdose_mail::{AccountTemplate, MailContent, OutgoingMail, render_account};
use restdose_store::{
    Account, AccountTokenPurpose, NewAccount, NewAccountToken, NewPractice, NewSession,
    OfferStatus, Practice, PracticeStatus, Role, StoreError,
};
use uuid::Uuid;

use crate::limits::Action;
use crate::validation::text_field;
use crate::{FieldError, ServiceError, Services, password};

/// Who is acting: resolved from a session cookie or an API token. Authorization decisions are
/// made on this in the use cases, not in the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { id: Uuid },
    Practice { id: Uuid, status: PracticeStatus },
}

impl Principal {
    /// The practice id, if this is an approved practice; `Forbidden` otherwise.
    pub fn approved_practice(&self) -> Result<Uuid, ServiceError> {
        match self {
            Principal::Practice {
                id,
                status: PracticeStatus::Approved,
            } => Ok(*id),
            _ => Err(ServiceError::Forbidden),
        }
    }

    /// The practice id of any practice (pending ones may see their own status page).
    pub fn any_practice(&self) -> Result<Uuid, ServiceError> {
        match self {
            Principal::Practice { id, .. } => Ok(*id),
            Principal::Admin { .. } => Err(ServiceError::Forbidden),
        }
    }

    pub fn admin(&self) -> Result<Uuid, ServiceError> {
        match self {
            Principal::Admin { id } => Ok(*id),
            Principal::Practice { .. } => Err(ServiceError::Forbidden),
        }
    }

    pub fn account_id(&self) -> Uuid {
        match self {
            Principal::Admin { id } | Principal::Practice { id, .. } => *id,
        }
    }
}

/// A logged-in browser session.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub principal: Principal,
    pub account: Account,
    pub practice: Option<Practice>,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf_token: String,
    pub(crate) id_hash: Vec<u8>,
}

/// What the browser gets after a successful login: the cookie value (secret) and where to go.
#[derive(Debug)]
pub struct Login {
    pub cookie: SecretToken,
    pub role: Role,
    /// The device cookie for this account (secret; see `log_in`), set anew at every login.
    pub device: String,
}

/// What a practice types to sign up.
#[derive(Debug, Clone, Default)]
pub struct PracticeSignUp {
    pub name: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub phone: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Suspend,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            "suspend" => Some(Decision::Suspend),
            _ => None,
        }
    }

    fn status(self) -> PracticeStatus {
        match self {
            Decision::Approve => PracticeStatus::Approved,
            Decision::Reject => PracticeStatus::Rejected,
            Decision::Suspend => PracticeStatus::Suspended,
        }
    }
}

/// Throttle keys of one login attempt.
struct LoginKeys {
    /// This client's failures on this account: the device cookie's, else (account, IP).
    own: String,
    /// This IP's failures on any account (none for a device-cookie holder).
    client: Option<String>,
    /// The account's failures from any client.
    account: String,
}

/// Throttle keys name an address without storing it.
fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn login_email(value: &str, field: &'static str, errors: &mut Vec<FieldError>) -> Option<String> {
    match Email::parse(value) {
        Ok(email) => Some(email.normalised()),
        Err(e) => {
            errors.push(FieldError {
                field,
                code: match e {
                    restdose_domain::EmailError::Empty => "required",
                    restdose_domain::EmailError::TooLong => "email_too_long",
                    restdose_domain::EmailError::LocalTooLong => "email_local_too_long",
                    restdose_domain::EmailError::Invalid => "invalid_email",
                },
            });
            None
        }
    }
}

fn valid_phone(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-/()".contains(c))
}

impl Services {
    fn account_token(
        &self,
        token: &SecretToken,
        account_id: Uuid,
        purpose: AccountTokenPurpose,
        now: DateTime<Utc>,
    ) -> NewAccountToken {
        let ttl = match purpose {
            AccountTokenPurpose::VerifyEmail => self.policy.verify_link_ttl,
            AccountTokenPurpose::ResetPassword => self.policy.reset_link_ttl,
        };
        NewAccountToken {
            hash: token.hash(),
            account_id,
            purpose,
            created_at: now,
            expires_at: now + ttl,
        }
    }

    /// Account mails go through the outbox like every other mail (durable, retried).
    pub(crate) async fn mail_account(
        &self,
        to: &str,
        content: MailContent,
    ) -> Result<(), ServiceError> {
        let mail = OutgoingMail {
            to: Email::from_trusted(to.to_owned()),
            message_id: self.links.message_id(Uuid::new_v4()),
            content,
        };
        self.enqueue(&mail).await
    }

    /// A practice asks for an account. The answer is the same for a new and a known address;
    /// the known address gets a mail saying so instead. Limited per client (`Throttled`) and
    /// per address (over its mail limit nothing is stored or sent; the answer is the same).
    #[tracing::instrument(skip_all)]
    pub async fn sign_up_practice(
        &self,
        input: &PracticeSignUp,
        lang: Lang,
        client: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.limit_client(Action::PracticeSignUp, client).await?;
        let mut errors = Vec::new();
        let name = text_field(&input.name, "name", 200, &mut errors);
        let street = text_field(&input.street, "street", 200, &mut errors);
        let postcode = match Postcode::parse(&input.postcode, &self.gazetteer) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(FieldError {
                    field: "postcode",
                    code: match e {
                        restdose_domain::PostcodeError::Empty => "required",
                        restdose_domain::PostcodeError::Invalid => "invalid_postcode",
                        restdose_domain::PostcodeError::Unknown => "unknown_postcode",
                    },
                });
                None
            }
        };
        let city = text_field(&input.city, "city", 100, &mut errors);
        let phone = input.phone.trim().to_owned();
        if phone.is_empty() {
            errors.push(FieldError {
                field: "phone",
                code: "required",
            });
        } else if !valid_phone(&phone) {
            errors.push(FieldError {
                field: "phone",
                code: "invalid_phone",
            });
        }
        let email = login_email(&input.email, "email", &mut errors);
        if let Err(e) = password::validate_new_password(&input.password, &input.email, "password") {
            errors.push(e);
        }
        let (Some(email), Some(postcode), true) = (email, postcode, errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        if !self.mail_allowed(Action::PracticeSignUp, &email).await? {
            return Ok(());
        }

        let now = self.clock.now();
        let id = Uuid::new_v4();
        let password_hash = self.passwords.hash(&input.password).await?;
        let verify = SecretToken::generate()?;
        let account = NewAccount {
            id,
            role: Role::Practice,
            email: email.clone(),
            password_hash,
            created_at: now,
            email_verified_at: None,
            language: lang,
        };
        let practice = NewPractice {
            account_id: id,
            name,
            street,
            postcode,
            city,
            phone,
            created_at: now,
        };
        let token = self.account_token(&verify, id, AccountTokenPurpose::VerifyEmail, now);
        match self
            .store
            .insert_practice(&account, &practice, &token)
            .await
        {
            Ok(()) => {
                let content = render_account(
                    lang,
                    &AccountTemplate::VerifyEmail {
                        verify_url: &self
                            .links
                            .portal(&format!("/portal/verify/{}", verify.expose())),
                        valid_hours: self.policy.verify_link_ttl.num_hours(),
                    },
                );
                if let Err(e) = self.mail_account(&email, content).await {
                    // No mail, no way to verify: keep nothing so the practice can simply retry.
                    if let Err(cleanup) = self.store.delete_account(id).await {
                        tracing::error!(error = %cleanup, "could not remove practice after mail failure");
                    }
                    return Err(e);
                }
                tracing::info!(account = %id, "practice signed up, verification sent");
                Ok(())
            }
            Err(StoreError::Conflict) => {
                let reset = self.links.portal("/portal/password/forgot");
                let content = render_account(
                    lang,
                    &AccountTemplate::AlreadyRegistered {
                        login_url: &self.links.portal("/portal/login"),
                        reset_url: &reset,
                    },
                );
                self.mail_account(&email, content).await?;
                tracing::info!("practice sign-up for a known address; reminder sent");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The link from the verification mail (a POST from its page).
    pub async fn verify_practice_email(&self, token: &str) -> Result<(), ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let id = self
            .store
            .take_account_token(
                &token.hash(),
                AccountTokenPurpose::VerifyEmail,
                self.clock.now(),
            )
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        tracing::info!(account = %id, "login address verified");
        Ok(())
    }

    /// Logs in. Unknown address and wrong password get the same answer and take the same time.
    ///
    /// Failures are counted per (account, client), per client and per account (keys hashed:
    /// the throttle table holds no address). Each key locks for a back-off that starts at its
    /// limit and doubles with every further failure. The account's lock stops only clients
    /// that failed on this account themselves, so an attacker cannot lock the owner out: a
    /// clean client, or one holding a device cookie from an earlier login to this account
    /// (`device`; OWASP "device cookies"), is judged by its own failures alone.
    #[tracing::instrument(skip_all)]
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
        device: Option<&str>,
    ) -> Result<Login, ServiceError> {
        self.limit_client(Action::Login, client_ip).await?;
        let now = self.clock.now();
        let normalised = Email::parse(email)
            .map(|e| e.normalised())
            .unwrap_or_else(|_| email.trim().to_ascii_lowercase());
        let keys = self.login_keys(&normalised, client_ip, device);
        let max = self.policy.login_max_failures;
        let mut own = vec![(keys.own.as_str(), max)];
        if let Some(client) = &keys.client {
            own.push((client.as_str(), self.policy.login_max_failures_per_client));
        }
        let own_state = self.store.throttle_state(&keys.own).await?;
        for (key, _) in &own {
            self.refuse_if_locked(key, now).await?;
        }
        // The account's lock, only for clients with failures of their own on it.
        if own_state.is_some_and(|state| state.failures > 0) {
            self.refuse_if_locked(&keys.account, now).await?;
        }
        let account = self.store.account_by_email(&normalised).await?;
        let phc = account
            .as_ref()
            .map_or(password::DUMMY_HASH, |a| a.password_hash.as_str());
        let matches = self.passwords.verify(password, phc).await? && account.is_some();
        let Some(account) = account.filter(|_| matches) else {
            if keys.own != keys.account {
                own.push((keys.account.as_str(), max));
            }
            for (key, max) in own {
                self.count_failure(key, now, max).await?;
            }
            tracing::info!("login failed");
            return Err(ServiceError::Unauthenticated);
        };
        // The account's own failures are left to expire: clearing them would lift the lock
        // for the attacker's clients too.
        self.store.clear_login_failures(&keys.own).await?;
        if account.email_verified_at.is_none() {
            if self.mail_allowed(Action::Login, &normalised).await? {
                self.resend_verification(&account, now).await?;
            }
            return Err(ServiceError::EmailNotVerified);
        }
        // A fresh session id at every login (no fixation).
        let cookie = SecretToken::generate()?;
        let csrf = SecretToken::generate()?;
        self.store
            .insert_session(&NewSession {
                id_hash: cookie.hash(),
                account_id: account.id,
                csrf_token: csrf.expose().to_owned(),
                created_at: now,
                expires_at: now + self.policy.session_idle,
            })
            .await?;
        tracing::info!(account = %account.id, role = account.role.as_str(), "logged in");
        Ok(Login {
            cookie,
            role: account.role,
            device: self.device_cookie(&normalised)?,
        })
    }

    async fn resend_verification(
        &self,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let verify = SecretToken::generate()?;
        self.store
            .insert_account_token(&self.account_token(
                &verify,
                account.id,
                AccountTokenPurpose::VerifyEmail,
                now,
            ))
            .await?;
        let content = render_account(
            account.language,
            &AccountTemplate::VerifyEmail {
                verify_url: &self
                    .links
                    .portal(&format!("/portal/verify/{}", verify.expose())),
                valid_hours: self.policy.verify_link_ttl.num_hours(),
            },
        );
        self.mail_account(&account.email, content).await
    }

    /// A device cookie for an address: a random nonce and the keyed MAC of address and nonce
    /// (nothing stored; only this service can make one).
    fn device_cookie(&self, normalised: &str) -> Result<String, ServiceError> {
        let nonce = SecretToken::generate()?;
        let mac = self.device_mac(normalised, nonce.expose());
        Ok(format!("{}.{mac}", nonce.expose()))
    }

    fn device_mac(&self, normalised: &str, nonce: &str) -> String {
        self.keys
            .blind_index(&format!("device:{normalised}:{nonce}"))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The throttle keys of a login attempt.
    fn login_keys(
        &self,
        normalised: &str,
        client_ip: Option<&str>,
        device: Option<&str>,
    ) -> LoginKeys {
        let account = format!("account:{}", sha256_hex(normalised));
        // A valid device cookie for this address stands for the client; compared as hashes so
        // the comparison takes no time that depends on the secret.
        let device = device.and_then(|cookie| {
            let (nonce, mac) = cookie.split_once('.')?;
            (sha256_hex(mac) == sha256_hex(&self.device_mac(normalised, nonce)))
                .then(|| sha256_hex(cookie))
        });
        match (device, client_ip) {
            (Some(device), _) => LoginKeys {
                own: format!("device:{device}"),
                client: None,
                account,
            },
            (None, Some(ip)) => LoginKeys {
                own: format!("pair:{}", sha256_hex(&format!("{normalised}\n{ip}"))),
                client: Some(format!("ip:{}", sha256_hex(ip))),
                account,
            },
            // Not over HTTP (no client): the account is all there is.
            (None, None) => LoginKeys {
                own: account.clone(),
                client: None,
                account,
            },
        }
    }

    async fn refuse_if_locked(&self, key: &str, now: DateTime<Utc>) -> Result<(), ServiceError> {
        match self
            .store
            .throttle_state(key)
            .await?
            .and_then(|state| state.locked_until)
            .filter(|until| *until > now)
        {
            Some(until) => Err(ServiceError::Throttled {
                retry_after_secs: (until - now).num_seconds().max(1),
            }),
            None => Ok(()),
        }
    }

    async fn count_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        max_failures: i32,
    ) -> Result<(), ServiceError> {
        // Failures long ago do not count against today.
        let stale =
            self.store.throttle_state(key).await?.is_some_and(|state| {
                state.last_failure_at < now - self.policy.login_failure_memory
            });
        if stale {
            self.store.clear_login_failures(key).await?;
        }
        let state = self.store.record_login_failure(key, now).await?;
        let over = state.failures - max_failures;
        if over >= 0 {
            let factor = 1_i64 << over.clamp(0, 20);
            let lock =
                (self.policy.login_base_lock * factor as i32).min(self.policy.login_max_lock);
            self.store.lock_login(key, now + lock).await?;
        }
        Ok(())
    }

    /// The session behind a cookie value, if it is live; records activity (sliding idle
    /// timeout, capped by the absolute lifetime).
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionContext>, ServiceError> {
        let Ok(token) = SecretToken::parse(cookie) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let hash = token.hash();
        let Some(record) = self.store.session(&hash, now).await? else {
            return Ok(None);
        };
        let Some(account) = self.store.account(record.account_id).await? else {
            return Ok(None);
        };
        let practice = match account.role {
            Role::Practice => self.store.practice(account.id).await?,
            Role::Admin => None,
        };
        let principal = match (&account.role, &practice) {
            (Role::Admin, _) => Principal::Admin { id: account.id },
            (Role::Practice, Some(p)) => Principal::Practice {
                id: p.id,
                status: p.status,
            },
            (Role::Practice, None) => return Ok(None),
        };
        let expires_at =
            (now + self.policy.session_idle).min(record.created_at + self.policy.session_max);
        // Writing on every request would turn reads into writes; once a minute is enough.
        if now - record.last_seen_at >= Duration::minutes(1) {
            self.store.touch_session(&hash, now, expires_at).await?;
        }
        Ok(Some(SessionContext {
            principal,
            account,
            practice,
            csrf_token: record.csrf_token,
            id_hash: hash,
        }))
    }

    pub async fn log_out(&self, session: &SessionContext) -> Result<(), ServiceError> {
        self.store.delete_session(&session.id_hash).await?;
        tracing::info!(account = %session.account.id, "logged out");
        Ok(())
    }

    /// Mails a one-time reset link if the address has an account; answers the same otherwise.
    /// Limited per client (`Throttled`) and per address (over its mail limit: the same answer,
    /// no mail), the address counted whether or not it has an account.
    pub async fn request_password_reset(
        &self,
        email: &str,
        lang: Lang,
        client: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.limit_client(Action::PasswordReset, client).await?;
        let mut errors = Vec::new();
        let Some(email) = login_email(email, "email", &mut errors) else {
            return Err(ServiceError::Validation(errors));
        };
        if !self.mail_allowed(Action::PasswordReset, &email).await? {
            return Ok(());
        }
        let Some(account) = self.store.account_by_email(&email).await? else {
            tracing::info!("password reset for an unknown address; nothing sent");
            return Ok(());
        };
        // The link is written and queued after the answer, so a known address is not answered
        // measurably later than an unknown one.
        let services = self.clone();
        tokio::spawn(async move {
            if let Err(e) = services.send_reset_link(&account, lang).await {
                tracing::error!(error = %e, account = %account.id, "could not queue a password reset link");
            }
        });
        Ok(())
    }

    async fn send_reset_link(&self, account: &Account, lang: Lang) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let token = SecretToken::generate()?;
        self.store
            .insert_account_token(&self.account_token(
                &token,
                account.id,
                AccountTokenPurpose::ResetPassword,
                now,
            ))
            .await?;
        let content = render_account(
            lang,
            &AccountTemplate::PasswordReset {
                reset_url: &self
                    .links
                    .portal(&format!("/portal/password/reset/{}", token.expose())),
                valid_minutes: self.policy.reset_link_ttl.num_minutes(),
            },
        );
        self.mail_account(&account.email, content).await?;
        tracing::info!(account = %account.id, "password reset link sent");
        Ok(())
    }

    /// Sets a new password from a reset link; every session of the account ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
    ) -> Result<(), ServiceError> {
        let token = SecretToken::parse(token).map_err(|_| ServiceError::InvalidLink)?;
        let now = self.clock.now();
        // Validate before consuming the link, so a too-short password can be corrected.
        let record = self
            .store
            .peek_account_token(&token.hash(), AccountTokenPurpose::ResetPassword, now)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        let account = self
            .store
            .account(record)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        password::validate_new_password(new_password, &account.email, "password")
            .map_err(|e| ServiceError::Validation(vec![e]))?;
        let hash = self.passwords.hash(new_password).await?;
        let id = self
            .store
            .take_account_token(&token.hash(), AccountTokenPurpose::ResetPassword, now)
            .await?
            .ok_or(ServiceError::InvalidLink)?;
        self.store.set_password(id, &hash, now).await?;
        tracing::info!(account = %id, "password reset");
        Ok(())
    }

    /// Changes the password of the logged-in account. Other sessions end; the caller gets a
    /// fresh session (the old id is gone).
    pub async fn change_password(
        &self,
        session: &SessionContext,
        current: &str,
        new_password: &str,
    ) -> Result<Login, ServiceError> {
        if !self
            .passwords
            .verify(current, &session.account.password_hash)
            .await?
        {
            return Err(ServiceError::Validation(vec![FieldError {
                field: "current_password",
                code: "wrong_password",
            }]));
        }
        password::validate_new_password(new_password, &session.account.email, "new_password")
            .map_err(|e| ServiceError::Validation(vec![e]))?;
        let now = self.clock.now();
        let hash = self.passwords.hash(new_password).await?;
        self.store
            .set_password(session.account.id, &hash, now)
            .await?;
        let cookie = SecretToken::generate()?;
        let csrf = SecretToken::generate()?;
        self.store
            .insert_session(&NewSession {
                id_hash: cookie.hash(),
                account_id: session.account.id,
                csrf_token: csrf.expose().to_owned(),
                created_at: now,
                expires_at: now + self.policy.session_idle,
            })
            .await?;
        tracing::info!(account = %session.account.id, "password changed");
        Ok(Login {
            cookie,
            role: session.account.role,
            device: self.device_cookie(&session.account.email)?,
        })
    }

    /// `restdose admin create-admin`.
    pub async fn create_admin(
        &self,
        email: &str,
        password_text: &str,
    ) -> Result<Uuid, ServiceError> {
        let mut errors = Vec::new();
        let email = login_email(email, "email", &mut errors);
        if let Err(e) = password::validate_new_password(
            password_text,
            email.as_deref().unwrap_or(""),
            "password",
        ) {
            errors.push(e);
        }
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let account = NewAccount {
            id,
            role: Role::Admin,
            email,
            password_hash: self.passwords.hash(password_text).await?,
            created_at: now,
            email_verified_at: Some(now),
            language: Lang::default(),
        };
        self.store
            .insert_admin(&account)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => {
                    ServiceError::Conflict("an account with this address exists")
                }
                other => other.into(),
            })?;
        tracing::info!(account = %id, "admin created");
        Ok(id)
    }

    /// Practices for the admin list, optionally by status.
    pub async fn list_practices(
        &self,
        principal: &Principal,
        status: Option<PracticeStatus>,
    ) -> Result<Vec<Practice>, ServiceError> {
        principal.admin()?;
        Ok(self.store.practices(status).await?)
    }

    /// Approve, reject or suspend a practice, and tell it by mail.
    pub async fn decide_practice(
        &self,
        principal: &Principal,
        id: Uuid,
        decision: Decision,
    ) -> Result<Practice, ServiceError> {
        principal.admin()?;
        self.decide_practice_as_operator(id, decision).await
    }

    /// The same for the command line, where the operator is trusted.
    pub async fn decide_practice_as_operator(
        &self,
        id: Uuid,
        decision: Decision,
    ) -> Result<Practice, ServiceError> {
        let practice = self
            .store
            .practice(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let ends_offers = decision != Decision::Approve;
        if practice.status == decision.status() {
            // Nothing changes, so nobody is mailed again; an offer left open is still ended.
            if ends_offers {
                self.end_offers_of(id).await?;
            }
            return Ok(practice);
        }
        if decision == Decision::Approve && !practice.email_verified {
            return Err(ServiceError::Conflict(
                "the practice has not verified its login address yet",
            ));
        }
        let had_open_offers = ends_offers
            && self
                .store
                .offers_of(id)
                .await?
                .iter()
                .any(|offer| offer.status == OfferStatus::Open);
        self.store
            .set_practice_status(id, decision.status(), self.clock.now())
            .await?;
        let login_url = self.links.portal("/portal/login");
        let template = match decision {
            Decision::Approve => AccountTemplate::Approved {
                practice: &practice.name,
                login_url: &login_url,
            },
            Decision::Reject => AccountTemplate::Rejected {
                practice: &practice.name,
            },
            Decision::Suspend => AccountTemplate::Suspended {
                practice: &practice.name,
                had_open_offers,
            },
        };
        let lang = practice.language;
        self.mail_account(&practice.email, render_account(lang, &template))
            .await?;
        tracing::info!(practice = %id, status = decision.status().as_str(), "practice decided");
        if ends_offers {
            // A practice that may not offer doses takes no more bookings: its open offers end
            // and the people who booked are told, as when it cancels them itself. After the
            // practice's mail, so that if this fails, repeating the decision finishes it.
            let (ended, told) = self.end_offers_of(id).await?;
            tracing::info!(practice = %id, offers = ended, told, "open offers ended");
        }
        self.store.practice(id).await?.ok_or(ServiceError::NotFound)
    }
}
