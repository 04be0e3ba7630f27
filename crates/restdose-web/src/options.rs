//! The options of the HTTP layer, as the configuration sets them (docs/configuration.md).

use ipnet::IpNet;
use std::time::Duration;

/// Limits of the HTTP layer (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Set the `Secure` flag on cookies (public URL is https).
    pub secure_cookies: bool,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Budgets, queue wait, sign-up rate limit, trusted proxies (`admission`).
    pub admission: AdmissionOptions,
    /// Serve `/metrics` on the main listener (false when `metrics_listen` gives it its own).
    pub metrics_on_main: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            max_body_bytes: 16 * 1024,
            secure_cookies: false,
            workers: 0,
            admission: AdmissionOptions::default(),
            metrics_on_main: true,
        }
    }
}

/// Limits of admission control (config keys `admission_*`, `trusted_proxies`; see
/// docs/configuration.md).
#[derive(Debug, Clone)]
pub struct AdmissionOptions {
    /// Requests in flight per budget.
    pub public_concurrency: usize,
    pub claims_concurrency: usize,
    pub practice_concurrency: usize,
    pub admin_concurrency: usize,
    /// How long a request may wait for a slot before it is turned away.
    pub queue_wait: Duration,
    /// Requests that may wait for a slot, per budget; more are turned away at once.
    pub max_queued: usize,
    /// `Retry-After` on every 503 and on budget rejections, in seconds.
    pub retry_after_secs: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for AdmissionOptions {
    /// Sized for a 2-core machine with `database_max_connections = 16`: the public budget
    /// stays below the pool so that claims and practices always find a connection.
    fn default() -> Self {
        AdmissionOptions {
            public_concurrency: 12,
            claims_concurrency: 16,
            practice_concurrency: 8,
            admin_concurrency: 4,
            queue_wait: Duration::from_millis(200),
            max_queued: 32,
            retry_after_secs: 2,
            trusted_proxies: Vec::new(),
        }
    }
}
