//! restdose core: the use cases (sign up, confirm, manage, leave) that tie the domain, crypto,
//! storage and mail together. No HTTP here (the web crate only translates requests into these
//! calls) and no SQL (storage is reached through the `Store` trait only).

pub mod accounts;
pub mod api_tokens;
mod error;
pub mod lifecycle;
pub mod limits;
mod links;
pub mod maintenance;
pub mod matcher;
pub mod offers;
pub mod outbox;
pub mod password;
pub mod registration;
pub mod statistics;
pub mod telemetry;
mod validation;

pub use accounts::{Decision, Login, PracticeSignUp, Principal, SessionContext};
pub use error::ServiceError;
pub use links::Links;
pub use validation::{
    FieldError, RadiusInput, SignUpRequest, is_hidden_character, validate_preferences,
    validate_sign_up,
};

use chrono::Duration;
use restdose_crypto::Keyring;
use restdose_domain::Clock;
use restdose_domain::geo::Gazetteer;
use restdose_domain::matching::NeighbourIndex;
use restdose_mail::Mailer;
use restdose_store::Store;
use std::sync::Arc;

/// Tunables of the registrant journey (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long a confirmation link works; unconfirmed sign-ups are purged after this too.
    pub confirm_link_ttl: Duration,
    /// How long a self-service link from a mail works.
    pub manage_link_ttl: Duration,
    /// A repeated sign-up re-sends mail at most this often per address.
    pub resend_interval: Duration,
    /// A portal session ends after this long without a request...
    pub session_idle: Duration,
    /// ...and after this long in any case.
    pub session_max: Duration,
    /// How long a practice's e-mail verification link works.
    pub verify_link_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_link_ttl: Duration,
    /// Failed logins per account (counted against clients with failures of their own) and
    /// per (account, client) before the back-off starts.
    pub login_max_failures: i32,
    /// Failed logins per client address, whatever the account, before its back-off starts.
    pub login_max_failures_per_client: i32,
    /// First lock after `login_max_failures`; doubles with each further failure...
    pub login_base_lock: Duration,
    /// ...up to this.
    pub login_max_lock: Duration,
    /// Failures older than this are forgotten.
    pub login_failure_memory: Duration,
    /// Requests per client and mails per address (`limits`).
    pub limits: limits::RateLimits,
    /// The vaccines a practice can choose from.
    pub vaccines: Vec<String>,
    /// Practices type local times; they are read in this zone.
    pub timezone: chrono_tz::Tz,
}

/// The default vaccine list (configurable as `vaccines`).
pub fn default_vaccines() -> Vec<String> {
    [
        "Comirnaty (BioNTech/Pfizer)",
        "Spikevax (Moderna)",
        "Nuvaxovid (Novavax)",
        "Influenza",
        "Imvanex (Mpox)",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            confirm_link_ttl: Duration::hours(48),
            manage_link_ttl: Duration::days(180),
            resend_interval: Duration::minutes(10),
            session_idle: Duration::minutes(30),
            session_max: Duration::hours(12),
            verify_link_ttl: Duration::hours(48),
            reset_link_ttl: Duration::minutes(60),
            login_max_failures: 5,
            login_max_failures_per_client: 20,
            login_base_lock: Duration::seconds(30),
            login_max_lock: Duration::hours(1),
            login_failure_memory: Duration::hours(1),
            limits: limits::RateLimits::default(),
            vaccines: default_vaccines(),
            timezone: chrono_tz::Europe::Berlin,
        }
    }
}

/// Everything a use case needs, shared by the web handlers and the workers.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub keys: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
    pub gazetteer: Arc<Gazetteer>,
    pub links: Links,
    pub policy: Policy,
    /// Every postcode's neighbours within 50 km, built once at start.
    pub neighbours: Arc<NeighbourIndex>,
    pub matcher: matcher::MatcherPolicy,
    pub delivery: outbox::DeliveryPolicy,
    pub retention: lifecycle::RetentionPolicy,
    /// Every password hash and verification goes through this (bounded: see `password`).
    pub passwords: password::PasswordHashing,
}
