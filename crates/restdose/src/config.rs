//! Configuration: built-in defaults < `restdose.toml` < `RESTDOSE_*` environment variables.
//! Unknown keys are refused so that a typo fails loudly. Every key is documented in
//! docs/configuration.md and in `restdose config example`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use url::Url;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Database URL; the scheme picks the backend (`sqlite://` or `postgres://`).
    /// Unset: `sqlite://<data_dir>/restdose.db`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    pub listen: String,
    /// The URL people reach the service at; links in mails start with it.
    /// Unset: `http://<listen>`.
    pub public_url: Option<String>,
    /// `smtp://host:port`, `smtp://host:587?tls=required`, `smtps://user:pass@host`.
    /// Unset: mails are written as `.eml` files to `<data_dir>/outbox/`.
    #[serde(serialize_with = "redact_secret")]
    pub smtp_url: Option<SecretString>,
    pub smtp_max_connections: u32,
    pub mail_from: String,
    pub data_dir: PathBuf,
    /// Key file (`restdose keys generate`). Unset: `<data_dir>/keys.toml`, generated with a
    /// warning if missing (development only).
    pub keys_file: Option<PathBuf>,
    /// The key file's content itself (e.g. from a secret store via `RESTDOSE_KEYS`); takes
    /// precedence over `keys_file`.
    #[serde(serialize_with = "redact_secret")]
    pub keys: Option<SecretString>,
    /// Country whose postcodes are accepted (built-in: DE; others via `restdose geo import`).
    pub country: String,
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 = one per core.
    pub http_workers: usize,
    pub confirm_link_hours: i64,
    pub manage_link_days: i64,
    pub resend_interval_minutes: i64,
    /// `text` or `json`.
    pub log_format: String,
    /// Address for a separate listener serving only `/metrics` (e.g. `127.0.0.1:9100`); then
    /// the main listener does not serve it. Unset: `/metrics` is on the main listener.
    pub metrics_listen: Option<String>,
    /// Vaccines practices can choose from on the "spare doses" form.
    pub vaccines: Vec<String>,
    /// IANA time zone in which practices type appointment times.
    pub timezone: String,
    pub session_idle_minutes: i64,
    pub session_max_hours: i64,
    pub verify_link_hours: i64,
    pub reset_link_minutes: i64,
    /// Failed logins per account and per (account, client) before the back-off starts.
    pub login_max_failures: i32,
    /// Failed logins per client address, whatever the account, before its back-off starts.
    pub login_max_failures_per_ip: i32,
    /// Mails to one address (sign-up links, reset links, verification links, reminders) per
    /// clock hour and per UTC day, whoever asks; beyond it the answer is the same, no mail.
    pub mails_per_address_per_hour: i64,
    pub mails_per_address_per_day: i64,
    /// Practice sign-ups, password resets and logins per client address, action and minute,
    /// and per hour; beyond it 429.
    pub account_requests_per_ip_per_minute: i64,
    pub account_requests_per_ip_per_hour: i64,
    /// Overbooking of a new offer's first wave (people invited per dose), before answers teach
    /// the matcher better.
    pub matcher_initial_overbooking: f64,
    /// Nobody is invited again sooner than this after their last invitation.
    pub matcher_throttle_minutes: i64,
    /// Nobody gets more invitations than this in 24 hours (invitations withdrawn because their
    /// offer filled lift the throttle, so this is what keeps a busy area from flooding anyone).
    pub matcher_max_invitations_per_day: u32,
    /// The share of the claim window waves are sized for: a yes counts towards the acceptance
    /// estimate only within it, and the next wave tops up after it. Smaller fills faster and
    /// sends more mails (docs/matching.md has the measured trade-off).
    pub matcher_answer_share: f64,
    /// Mails sent at the same time by the delivery worker.
    pub mail_parallel: usize,
    /// A delivery worker holds the mails it took this long; after a crash another worker
    /// sends them once the time is up.
    pub mail_lease_seconds: i64,
    /// A mail that keeps failing temporarily (no connection, 4xx) is retried with back-off
    /// until it is this many hours old, then dropped. Refused for good (5xx): dropped at once.
    pub mail_max_age_hours: i64,
    /// How often idle workers look for work, in milliseconds.
    pub worker_poll_ms: u64,
    /// Allow the automatically generated development keys on a public URL (a demo only).
    pub demo: bool,
    /// Allow the `.eml` file outbox (no `smtp_url`) on a public (non-local) URL: `serve` and
    /// `matcher` refuse to start without it, and warn loudly with it.
    pub file_outbox_on_public_url: bool,
    /// Everything about an offer and the people who booked it is deleted this many hours after
    /// the appointment window ends.
    pub retention_hours_after_appointment: i64,
    /// People paused this many days get a warning mail...
    pub paused_warning_days: i64,
    /// ...and are deleted this many days after it if still paused.
    pub paused_grace_days: i64,
    /// Admission control (docs/configuration.md, "Overload"): how long a request waits for a
    /// pooled database connection before it is answered 503.
    pub database_acquire_timeout_ms: u64,
    /// Requests in flight per budget; more wait up to `admission_queue_wait_ms`, then get 503.
    pub admission_public_concurrency: usize,
    pub admission_claims_concurrency: usize,
    pub admission_practice_concurrency: usize,
    pub admission_admin_concurrency: usize,
    pub admission_queue_wait_ms: u64,
    /// Requests that may wait for a slot per budget; beyond that 503 at once.
    pub admission_max_queued: usize,
    /// `Retry-After` on 503 answers, in seconds.
    pub admission_retry_after_secs: u32,
    /// Password hashes (argon2id, 19 MiB each) running at once; 0 = one per core. A login that
    /// finds none free waits up to `password_hash_wait_ms`, then gets 503.
    pub password_hash_concurrency: usize,
    pub password_hash_wait_ms: u64,
    /// Registrant sign-ups (form and API) per client address and minute (0 = no limit).
    pub signup_rate_per_ip_per_minute: i64,
    /// Reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

fn redact_secret<S: serde::Serializer>(
    value: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("[REDACTED]"),
        None => s.serialize_none(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            database_max_connections: 16,
            listen: "127.0.0.1:8080".to_owned(),
            public_url: None,
            smtp_url: None,
            smtp_max_connections: 4,
            mail_from: "restdose <noreply@restdose.localhost>".to_owned(),
            data_dir: PathBuf::from("data"),
            keys_file: None,
            keys: None,
            country: "DE".to_owned(),
            max_body_bytes: 16 * 1024,
            http_workers: 0,
            confirm_link_hours: 48,
            manage_link_days: 180,
            resend_interval_minutes: 10,
            log_format: "text".to_owned(),
            metrics_listen: None,
            vaccines: restdose_core::default_vaccines(),
            timezone: "Europe/Berlin".to_owned(),
            session_idle_minutes: 30,
            session_max_hours: 12,
            verify_link_hours: 48,
            reset_link_minutes: 60,
            login_max_failures: 5,
            login_max_failures_per_ip: 20,
            mails_per_address_per_hour: 5,
            mails_per_address_per_day: 20,
            account_requests_per_ip_per_minute: 10,
            account_requests_per_ip_per_hour: 100,
            matcher_initial_overbooking: 2.0,
            matcher_throttle_minutes: 30,
            matcher_max_invitations_per_day: 10,
            matcher_answer_share: restdose_domain::matching::WavePolicy::default().quick_answer,
            mail_parallel: 4,
            mail_lease_seconds: 120,
            mail_max_age_hours: 24,
            worker_poll_ms: 1000,
            demo: false,
            file_outbox_on_public_url: false,
            retention_hours_after_appointment: 24,
            paused_warning_days: 90,
            paused_grace_days: 14,
            database_acquire_timeout_ms: 500,
            admission_public_concurrency: 12,
            admission_claims_concurrency: 16,
            admission_practice_concurrency: 8,
            admission_admin_concurrency: 4,
            admission_queue_wait_ms: 200,
            admission_max_queued: 32,
            admission_retry_after_secs: 2,
            password_hash_concurrency: 0,
            password_hash_wait_ms: 300,
            signup_rate_per_ip_per_minute: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Loads defaults, then `file` (if it exists, or if it was named explicitly), then the
    /// environment. `explicit_file` makes a missing file an error.
    pub fn load(file: &Path, explicit_file: bool) -> Result<Config, ConfigError> {
        if explicit_file && !file.exists() {
            return Err(invalid(
                "config file",
                format!("{} does not exist", file.display()),
            ));
        }
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::file(file))
                .merge(
                    // RESTDOSE_CONFIG names the file, RESTDOSE_ADMIN_PASSWORD feeds
                    // `admin create-admin`, RESTDOSE_SIMULATE_DATABASE_URL `simulate`,
                    // RESTDOSE_TEST_* and RESTDOSE_BENCH_* belong to the test suite and the
                    // benchmarks.
                    Env::prefixed("RESTDOSE_")
                        .ignore(&["CONFIG", "ADMIN_PASSWORD", "SIMULATE_DATABASE_URL"])
                        .filter(|key| {
                            let key = key.as_str().to_ascii_lowercase();
                            !key.starts_with("test_") && !key.starts_with("bench_")
                        }),
                ),
        )
    }

    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:// or postgres://",
            ));
        }
        self.public_url()?;
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("listen", "must be an address like 127.0.0.1:8080"));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid("log_format", "must be text or json"));
        }
        if let Some(addr) = &self.metrics_listen
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics_listen",
                "must be an address like 127.0.0.1:9100",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "must be at least 1024"));
        }
        self.timezone()?;
        if self.vaccines.is_empty() || self.vaccines.iter().any(|v| v.trim().is_empty()) {
            return Err(invalid(
                "vaccines",
                "must list at least one vaccine, none empty",
            ));
        }
        if !(1.0..=10.0).contains(&self.matcher_initial_overbooking) {
            return Err(invalid(
                "matcher_initial_overbooking",
                "must be from 1 to 10",
            ));
        }
        if self.matcher_throttle_minutes < 0 {
            return Err(invalid("matcher_throttle_minutes", "must not be negative"));
        }
        if !(0.1..=1.0).contains(&self.matcher_answer_share) {
            return Err(invalid("matcher_answer_share", "must be from 0.1 to 1"));
        }
        if self.matcher_max_invitations_per_day < 1 {
            return Err(invalid(
                "matcher_max_invitations_per_day",
                "must be at least 1",
            ));
        }
        if self.mail_lease_seconds < 1 {
            return Err(invalid("mail_lease_seconds", "must be at least 1"));
        }
        if self.mail_parallel == 0 {
            return Err(invalid("mail_parallel", "must be at least 1"));
        }
        if self.mail_max_age_hours < 1 {
            return Err(invalid("mail_max_age_hours", "must be at least 1"));
        }
        if self.worker_poll_ms == 0 {
            return Err(invalid("worker_poll_ms", "must be at least 1"));
        }
        self.admission()?;
        if self.database_acquire_timeout_ms == 0 {
            return Err(invalid("database_acquire_timeout_ms", "must be at least 1"));
        }
        if self.login_max_failures < 1 {
            return Err(invalid("login_max_failures", "must be at least 1"));
        }
        if self.login_max_failures_per_ip < 1 {
            return Err(invalid("login_max_failures_per_ip", "must be at least 1"));
        }
        for (key, value) in [
            (
                "mails_per_address_per_hour",
                self.mails_per_address_per_hour,
            ),
            ("mails_per_address_per_day", self.mails_per_address_per_day),
            (
                "account_requests_per_ip_per_minute",
                self.account_requests_per_ip_per_minute,
            ),
            (
                "account_requests_per_ip_per_hour",
                self.account_requests_per_ip_per_hour,
            ),
            (
                "signup_rate_per_ip_per_minute",
                self.signup_rate_per_ip_per_minute,
            ),
        ] {
            if value < 0 {
                return Err(invalid(key, "must not be negative"));
            }
        }
        for (key, value) in [
            ("confirm_link_hours", self.confirm_link_hours),
            ("manage_link_days", self.manage_link_days),
            ("resend_interval_minutes", self.resend_interval_minutes),
            ("session_idle_minutes", self.session_idle_minutes),
            ("session_max_hours", self.session_max_hours),
            ("verify_link_hours", self.verify_link_hours),
            ("reset_link_minutes", self.reset_link_minutes),
            (
                "retention_hours_after_appointment",
                self.retention_hours_after_appointment,
            ),
            ("paused_warning_days", self.paused_warning_days),
            ("paused_grace_days", self.paused_grace_days),
        ] {
            if value <= 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/restdose.db", self.data_dir.display()))
    }

    pub fn public_url(&self) -> Result<Url, ConfigError> {
        let raw = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        let url = Url::parse(&raw).map_err(|e| invalid("public_url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("public_url", "must be an http(s) URL with a host"));
        }
        // Pages link to root-relative paths, so the service must own the whole origin.
        if url.path() != "/" || url.query().is_some() {
            return Err(invalid(
                "public_url",
                "must not have a path or query (serve restdose at the root of its host)",
            ));
        }
        Ok(url)
    }

    pub fn timezone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| {
            invalid(
                "timezone",
                format!(
                    "unknown time zone {:?} (use an IANA name such as Europe/Berlin)",
                    self.timezone
                ),
            )
        })
    }

    /// The use-case tunables this configuration sets.
    pub fn policy(&self) -> Result<restdose_core::Policy, ConfigError> {
        use chrono::Duration;
        Ok(restdose_core::Policy {
            confirm_link_ttl: Duration::hours(self.confirm_link_hours),
            manage_link_ttl: Duration::days(self.manage_link_days),
            resend_interval: Duration::minutes(self.resend_interval_minutes),
            session_idle: Duration::minutes(self.session_idle_minutes),
            session_max: Duration::hours(self.session_max_hours),
            verify_link_ttl: Duration::hours(self.verify_link_hours),
            reset_link_ttl: Duration::minutes(self.reset_link_minutes),
            login_max_failures: self.login_max_failures,
            login_max_failures_per_client: self.login_max_failures_per_ip,
            limits: restdose_core::limits::RateLimits {
                mails_per_address_per_hour: self.mails_per_address_per_hour,
                mails_per_address_per_day: self.mails_per_address_per_day,
                account_requests_per_client_per_minute: self.account_requests_per_ip_per_minute,
                account_requests_per_client_per_hour: self.account_requests_per_ip_per_hour,
                signups_per_client_per_minute: self.signup_rate_per_ip_per_minute,
            },
            vaccines: self.vaccines.iter().map(|v| v.trim().to_owned()).collect(),
            timezone: self.timezone()?,
            ..restdose_core::Policy::default()
        })
    }

    /// Whether the public URL points at this machine only (development).
    pub fn public_url_is_local(&self) -> Result<bool, ConfigError> {
        let url = self.public_url()?;
        Ok(match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        })
    }

    pub fn retention_policy(&self) -> restdose_core::lifecycle::RetentionPolicy {
        restdose_core::lifecycle::RetentionPolicy {
            after_appointment: chrono::Duration::hours(self.retention_hours_after_appointment),
            paused_warning_after: chrono::Duration::days(self.paused_warning_days),
            paused_grace: chrono::Duration::days(self.paused_grace_days),
        }
    }

    pub fn worker_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.worker_poll_ms)
    }

    pub fn matcher_policy(&self) -> restdose_core::matcher::MatcherPolicy {
        let defaults = restdose_core::matcher::MatcherPolicy::default();
        restdose_core::matcher::MatcherPolicy {
            wave: restdose_domain::matching::WavePolicy {
                initial_overbooking: self.matcher_initial_overbooking,
                quick_answer: self.matcher_answer_share,
                ..defaults.wave
            },
            throttle: chrono::Duration::minutes(self.matcher_throttle_minutes),
            max_invitations_per_day: self.matcher_max_invitations_per_day,
            ..defaults
        }
    }

    pub fn delivery_policy(&self) -> restdose_core::outbox::DeliveryPolicy {
        restdose_core::outbox::DeliveryPolicy {
            parallel: self.mail_parallel,
            lease: chrono::Duration::seconds(self.mail_lease_seconds),
            max_age: chrono::Duration::hours(self.mail_max_age_hours),
            ..restdose_core::outbox::DeliveryPolicy::default()
        }
    }

    pub fn smtp_url(&self) -> Option<&str> {
        self.smtp_url.as_ref().map(|s| s.expose_secret())
    }

    /// The admission control settings for the HTTP layer.
    pub fn admission(&self) -> Result<restdose_web::AdmissionOptions, ConfigError> {
        for (key, value) in [
            (
                "admission_public_concurrency",
                self.admission_public_concurrency,
            ),
            (
                "admission_claims_concurrency",
                self.admission_claims_concurrency,
            ),
            (
                "admission_practice_concurrency",
                self.admission_practice_concurrency,
            ),
            (
                "admission_admin_concurrency",
                self.admission_admin_concurrency,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.admission_retry_after_secs == 0 {
            return Err(invalid("admission_retry_after_secs", "must be at least 1"));
        }
        let trusted_proxies = restdose_web::admission::parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|reason| invalid("trusted_proxies", reason))?;
        Ok(restdose_web::AdmissionOptions {
            public_concurrency: self.admission_public_concurrency,
            claims_concurrency: self.admission_claims_concurrency,
            practice_concurrency: self.admission_practice_concurrency,
            admin_concurrency: self.admission_admin_concurrency,
            queue_wait: std::time::Duration::from_millis(self.admission_queue_wait_ms),
            max_queued: self.admission_max_queued,
            retry_after_secs: self.admission_retry_after_secs,
            trusted_proxies,
        })
    }

    /// The bound on password hashing (`password_hash_concurrency`, `password_hash_wait_ms`).
    pub fn password_hashing(&self) -> restdose_core::password::PasswordHashing {
        restdose_core::password::PasswordHashing::new(
            self.password_hash_concurrency,
            std::time::Duration::from_millis(self.password_hash_wait_ms),
        )
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn keys_path(&self) -> PathBuf {
        self.keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys.toml"))
    }
}

/// A complete, commented configuration file with every key at its default.
pub const EXAMPLE: &str = r#"# restdose.toml — every key with its default. Environment variables override this file:
# the key in upper case with the prefix RESTDOSE_, e.g. RESTDOSE_DATABASE_URL.

# Database; the scheme picks the backend. Default: sqlite://<data_dir>/restdose.db
# database_url = "postgres://restdose@127.0.0.1:5432/restdose"
database_max_connections = 16

# Address and port to listen on.
listen = "127.0.0.1:8080"

# The URL people reach the service at; every link in a mail starts with it.
# Default: http://<listen>
# public_url = "https://restdose.example.org"

# Outgoing mail. Unset: mails are written as .eml files (mode 0600) to <data_dir>/outbox/,
# deleted by the purge retention_hours_after_appointment after they were written; refused on a
# public URL unless file_outbox_on_public_url = true.
# smtp_url = "smtp://127.0.0.1:2525"
# smtp_url = "smtps://user:password@mail.example.org:465"
smtp_max_connections = 4
mail_from = "restdose <noreply@restdose.localhost>"

# Where the SQLite database, development keys and the file outbox live. Created with mode
# 0700 and its files 0600, whatever the umask; an existing one open to other users is warned
# about at start.
data_dir = "data"

# Encryption and blind-index keys (create with `restdose keys generate > keys.toml`).
# Default: <data_dir>/keys.toml, generated with a loud warning if missing (development only).
# keys_file = "/etc/restdose/keys.toml"
# Or the key file's content itself, e.g. from a secret store (takes precedence over keys_file):
# RESTDOSE_KEYS="$(cat /run/secrets/restdose-keys.toml)"

# Country whose postcodes are accepted. DE is built in; others: `restdose geo import FILE`.
country = "DE"

# Largest accepted request body in bytes.
max_body_bytes = 16384

# HTTP worker threads; 0 = one per CPU core.
http_workers = 0

# How long a confirmation link works (unconfirmed sign-ups are deleted after this).
confirm_link_hours = 48
# How long the self-service link in a mail works.
manage_link_days = 180
# A repeated sign-up re-sends the mail at most this often per address.
resend_interval_minutes = 10

# Log format: text or json (one JSON object per line).
log_format = "text"

# Monitoring (docs/monitoring.md). /metrics is served on the main listener unless
# metrics_listen gives it a listener of its own (then only there), e.g. "127.0.0.1:9100".
# metrics_listen = "127.0.0.1:9100"

# Practice portal.
# Vaccines practices can choose from on the "spare doses" form.
vaccines = ["Comirnaty (BioNTech/Pfizer)", "Spikevax (Moderna)", "Nuvaxovid (Novavax)", "Influenza", "Imvanex (Mpox)"]
# Time zone in which practices type appointment times (IANA name).
timezone = "Europe/Berlin"
# A portal session ends after this many idle minutes, and after this many hours in any case.
session_idle_minutes = 30
session_max_hours = 12
# How long a practice's e-mail verification link and a password-reset link work.
verify_link_hours = 48
reset_link_minutes = 60
# Failed logins per account and per (account, client address) before a doubling back-off
# starts (30 s, 60 s, ... up to an hour). The account's back-off stops only clients that failed
# on it themselves, so the owner can still log in during an attack (docs/portal.md).
login_max_failures = 5
# Failed logins per client address, whatever the account, before its back-off starts.
login_max_failures_per_ip = 20

# Abuse limits, shared by all processes through the database (0 = no limit). Mails to one
# address (links, reminders) per clock hour and per UTC day, whoever asks; beyond them the
# answer stays the same but no mail goes out.
mails_per_address_per_hour = 5
mails_per_address_per_day = 20
# Practice sign-ups, password resets and logins per client address, action and minute, and per
# hour; beyond them 429 with Retry-After.
account_requests_per_ip_per_minute = 10
account_requests_per_ip_per_hour = 100

# Matcher and mail delivery (see docs/matching.md).
# People invited per dose in an offer's first wave; later waves learn from the answers.
matcher_initial_overbooking = 2.0
# Nobody is invited again sooner than this many minutes after their last invitation.
matcher_throttle_minutes = 30
# Nobody gets more invitations than this in 24 hours.
matcher_max_invitations_per_day = 10
# The share of the claim window waves are sized for (a yes within it counts as acceptance; the
# next wave tops up after it). Smaller fills faster and sends more mails.
matcher_answer_share = 0.67
# Mails sent at the same time by the delivery worker (keep <= smtp_max_connections).
mail_parallel = 4
# A delivery worker holds the mails it took this long; after a crash another worker sends them
# once the time is up (at-least-once delivery; a duplicate keeps its Message-ID).
mail_lease_seconds = 120
# A mail that keeps failing temporarily (mail server unreachable, 4xx) is retried with back-off
# until it is this many hours old, then dropped and counted. One refused for good (5xx) is
# dropped at once and its recipient paused (docs/monitoring.md).
mail_max_age_hours = 24
# How often idle workers look for work, in milliseconds.
worker_poll_ms = 1000

# Allow the automatically generated development keys on a public (non-local) URL. Only for a
# demo: anyone with the data directory can read every stored address.
demo = false

# Without smtp_url, mails are written as .eml files to <data_dir>/outbox/: nobody receives
# them, and they hold addresses and live links. `serve` and `matcher` refuse that on a public
# (non-local) URL unless this is true (then they warn loudly).
file_outbox_on_public_url = false

# Data lifecycle (see docs/privacy.md). Everything about an offer and the people who booked it
# is deleted this many hours after the appointment window ends; so are .eml files of the file
# outbox this many hours after they were written.
retention_hours_after_appointment = 24
# People paused this many days get a warning mail, and are deleted this many days later if
# still paused.
paused_warning_days = 90
paused_grace_days = 14

# Overload (see docs/performance.md). Every route belongs to a budget with a bounded number of
# requests in flight: public pages and sign-ups, claims (invitation and booking links), the
# practice portal and API, admin. A request that finds the budget's queue full, no free slot
# within the queue wait, or no database connection within the acquire time-out, is answered
# 503 with Retry-After.
# Keep admission_public_concurrency below database_max_connections.
database_acquire_timeout_ms = 500
admission_public_concurrency = 12
admission_claims_concurrency = 16
admission_practice_concurrency = 8
admission_admin_concurrency = 4
admission_queue_wait_ms = 200
admission_max_queued = 32
admission_retry_after_secs = 2
# Password hashes (argon2id: ~50 ms of CPU and 19 MiB of memory each) running at once, for
# logins, sign-ups and password changes; 0 = one per CPU core. One that finds none free waits
# up to password_hash_wait_ms, then is answered 503 with Retry-After.
password_hash_concurrency = 0
password_hash_wait_ms = 300
# Registrant sign-ups (form and API) per client address and minute (0 = no limit), shared by
# all processes. Refused sign-ups get 429 with Retry-After.
signup_rate_per_ip_per_minute = 60
# Reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For header is believed;
# the client is then the right-most address in it that is not one of them. Empty: the peer.
trusted_proxies = []
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let from_example: Config = toml::from_str(EXAMPLE).unwrap();
        let defaults = Config::default();
        assert_eq!(
            serde_json_like(&from_example),
            serde_json_like(&defaults),
            "EXAMPLE and Config::default() disagree"
        );
    }

    fn serde_json_like(c: &Config) -> String {
        toml::to_string(c).unwrap()
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "restdose.toml",
                "listen = \"127.0.0.1:9000\"\ncountry = \"AT\"\n",
            )?;
            jail.set_env("RESTDOSE_LISTEN", "127.0.0.1:9100");
            // Variables of the test suite and the benchmarks are not configuration keys.
            jail.set_env("RESTDOSE_TEST_UPDATE_SCREENS", "1");
            jail.set_env("RESTDOSE_BENCH_POSTGRES_URL", "postgres://nowhere/");
            // Nor is the one `simulate` reads through its own flag.
            jail.set_env("RESTDOSE_SIMULATE_DATABASE_URL", "postgres://nowhere/");
            let c = Config::load(Path::new("restdose.toml"), false).unwrap();
            assert_eq!(c.listen, "127.0.0.1:9100");
            assert_eq!(c.country, "AT");
            assert_eq!(c.database_url(), "sqlite://data/restdose.db");
            assert_eq!(c.public_url().unwrap().as_str(), "http://127.0.0.1:9100/");
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_fail_loudly() {
        Jail::expect_with(|jail| {
            jail.create_file("restdose.toml", "lisen = \"x\"\n")?;
            assert!(Config::load(Path::new("restdose.toml"), false).is_err());
            jail.create_file("restdose.toml", "database_url = \"mysql://x\"\n")?;
            assert!(Config::load(Path::new("restdose.toml"), false).is_err());
            assert!(Config::load(Path::new("missing.toml"), true).is_err());
            Ok(())
        });
    }

    #[test]
    fn smtp_url_is_redacted_when_printed() {
        let c = Config {
            smtp_url: Some(SecretString::from("smtps://u:hunter2@x")),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!toml::to_string(&c).unwrap().contains("hunter2"));
    }
}
