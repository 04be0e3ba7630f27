//! Abuse limits for every use case that mails an address or checks a password: practice
//! sign-up, password reset, login (and the verification link it re-sends), registrant sign-up.
//!
//! Two kinds of limit, both fixed-window counters in the database (`Store::count_hit`), so all
//! web processes share them:
//! - per **client** address and action: beyond it the use case answers `Throttled` (`429` with
//!   `Retry-After`). That tells the client about itself only.
//! - per **target** address, over all actions and clients: beyond it the use case answers
//!   exactly as usual but sends no mail. An error here would tell whether the address was
//!   asked for; this way the answer never depends on the address.
//!
//! Counter keys are HMACs (the keyring's blind index) of scope, window and value: the table
//! holds no address and no IP in clear.

use chrono::{DateTime, Duration, Utc};

use crate::{ServiceError, Services};

/// The limits (config keys in docs/configuration.md, "Abuse limits"). `0` switches one off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Mails to one address per clock hour, whoever asks.
    pub mails_per_address_per_hour: i64,
    /// ...and per UTC day.
    pub mails_per_address_per_day: i64,
    /// Account requests (practice sign-up, password reset, login) per client, action and
    /// minute...
    pub account_requests_per_client_per_minute: i64,
    /// ...and per hour.
    pub account_requests_per_client_per_hour: i64,
    /// Registrant sign-ups (form and API) per client and minute (people behind one NAT share
    /// an address, hence generous).
    pub signups_per_client_per_minute: i64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            mails_per_address_per_hour: 5,
            mails_per_address_per_day: 20,
            account_requests_per_client_per_minute: 10,
            account_requests_per_client_per_hour: 100,
            signups_per_client_per_minute: 60,
        }
    }
}

/// What a client asks for; each has its own per-client counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RegistrantSignUp,
    PracticeSignUp,
    PasswordReset,
    Login,
}

impl Action {
    /// Also the `action` label of `restdose_rate_limited_total`.
    pub fn name(self) -> &'static str {
        match self {
            Action::RegistrantSignUp => "registrant_signup",
            Action::PracticeSignUp => "practice_signup",
            Action::PasswordReset => "password_reset",
            Action::Login => "login",
        }
    }
}

/// Counted in `restdose_rate_limited_total{limit, action}`.
pub const RATE_LIMITED: &str = "restdose_rate_limited_total";

/// The start of the fixed window of `len` that holds `now` (windows are aligned to the epoch,
/// so every process computes the same one).
fn window_start(now: DateTime<Utc>, len: Duration) -> DateTime<Utc> {
    let len_ms = len.num_milliseconds().max(1);
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(len_ms)).unwrap_or(now)
}

impl Services {
    /// Counts one hit on `(scope, value)` in the window of `len` holding now. `Some(seconds to
    /// the end of the window)` when the hit is over `max`.
    async fn hit(
        &self,
        scope: &str,
        value: &str,
        len: Duration,
        max: i64,
    ) -> Result<Option<i64>, ServiceError> {
        if max <= 0 {
            return Ok(None);
        }
        let now = self.clock.now();
        let start = window_start(now, len);
        let key = self
            .keys
            .blind_index(&format!("rate:{scope}:{}:{value}", len.num_seconds()));
        let hits = self.store.count_hit(&key, start).await?;
        Ok((hits > max).then(|| (start + len - now).num_seconds().max(1)))
    }

    /// Counts a request of `client` for `action`; `Throttled` when the client is over its
    /// limit. Requests without a known client address (not over HTTP) are not limited.
    pub async fn limit_client(
        &self,
        action: Action,
        client: Option<&str>,
    ) -> Result<(), ServiceError> {
        let Some(client) = client else {
            return Ok(());
        };
        let limits = &self.policy.limits;
        let windows = match action {
            Action::RegistrantSignUp => {
                vec![(Duration::minutes(1), limits.signups_per_client_per_minute)]
            }
            _ => vec![
                (
                    Duration::minutes(1),
                    limits.account_requests_per_client_per_minute,
                ),
                (
                    Duration::hours(1),
                    limits.account_requests_per_client_per_hour,
                ),
            ],
        };
        let scope = format!("client:{}", action.name());
        for (len, max) in windows {
            if let Some(retry_after_secs) = self.hit(&scope, client, len, max).await? {
                metrics::counter!(RATE_LIMITED, "limit" => "client", "action" => action.name())
                    .increment(1);
                tracing::info!(action = action.name(), "client over its request limit");
                return Err(ServiceError::Throttled { retry_after_secs });
            }
        }
        Ok(())
    }

    /// Counts a request that may mail `normalised` (whether or not the address is known, so
    /// the counting itself reveals nothing); false when the address has had its mails for
    /// this hour or day: the caller then answers as usual without mailing.
    pub(crate) async fn mail_allowed(
        &self,
        action: Action,
        normalised: &str,
    ) -> Result<bool, ServiceError> {
        let limits = &self.policy.limits;
        for (len, max) in [
            (Duration::hours(1), limits.mails_per_address_per_hour),
            (Duration::days(1), limits.mails_per_address_per_day),
        ] {
            if self.hit("mail", normalised, len, max).await?.is_some() {
                metrics::counter!(RATE_LIMITED, "limit" => "address", "action" => action.name())
                    .increment(1);
                tracing::info!(
                    action = action.name(),
                    "address over its mail limit; no mail"
                );
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let at = |h, m, s| {
            Utc.with_ymd_and_hms(2026, 3, 1, h, m, s)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(
            window_start(at(12, 34, 56), Duration::hours(1)),
            at(12, 0, 0)
        );
        assert_eq!(
            window_start(at(12, 34, 56), Duration::minutes(1)),
            at(12, 34, 0)
        );
        assert_eq!(window_start(at(12, 34, 56), Duration::days(1)), at(0, 0, 0));
        assert_eq!(window_start(at(12, 0, 0), Duration::hours(1)), at(12, 0, 0));
    }
}
