//! restdose core: the use cases (sign up, confirm, manage, leave) that tie the domain, crypto,
//! storage and mail together. No HTTP here (the web crate only translates requests into these
//! calls) and no SQL (storage is reached through the `Store` trait only).

mod error;
mod links;
pub mod maintenance;
pub mod registration;
mod validation;

pub use error::ServiceError;
pub use links::Links;
pub use validation::{
    FieldError, RadiusInput, SignUpRequest, validate_preferences, validate_sign_up,
};

use chrono::Duration;
use restdose_crypto::Keyring;
use restdose_domain::Clock;
use restdose_domain::geo::Gazetteer;
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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            confirm_link_ttl: Duration::hours(48),
            manage_link_ttl: Duration::days(180),
            resend_interval: Duration::minutes(10),
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
}
