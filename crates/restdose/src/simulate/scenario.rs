//! A scenario file (TOML): who signs up where and when, which practices offer how many doses,
//! and how people answer. Documented field by field in docs/simulation.md. Unknown keys are
//! refused (a typo must not silently fall back to a default) and every value is checked with a
//! message naming the field.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::path::Path;

/// The standard scenarios, built into the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("quiet-day", include_str!("../../scenarios/quiet-day.toml")),
    ("rush-day", include_str!("../../scenarios/rush-day.toml")),
    (
        "dead-addresses",
        include_str!("../../scenarios/dead-addresses.toml"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the output folder; defaults to the file name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: u64,
    /// When the simulated period begins (UTC).
    #[serde(default = "default_start")]
    pub start: DateTime<Utc>,
    pub duration: Period,
    /// Simulated minutes per step.
    #[serde(default = "one")]
    pub tick_minutes: i64,
    pub people: People,
    pub practices: Practices,
    pub offers: Offers,
    pub behaviour: Behaviour,
    #[serde(default)]
    pub cancellations: Cancellations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
}

impl Period {
    pub fn hours(self) -> i64 {
        match self {
            Period::Day => 24,
            Period::Week => 24 * 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct People {
    pub count: u32,
    /// Postcode prefixes people live in ("10" = Berlin centre); empty = all of Germany.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The radius each person picks, as weighted choices.
    pub radius: Vec<WeightedKm>,
    /// Share of `count` already on the list when the period begins...
    pub waiting_at_start: f64,
    /// ...who signed up evenly over this many days before it. The rest arrive evenly over the
    /// period.
    #[serde(default = "thirty")]
    pub waiting_since_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedKm {
    pub km: i64,
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Practices {
    pub count: u32,
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offers {
    /// Mean number of offers posted in each hour of each simulated day (24 values; the first is
    /// the hour after `start`); the count per hour is Poisson. Used when `list` is empty.
    #[serde(default)]
    pub per_hour: Vec<f64>,
    /// Explicit offers instead of `per_hour`.
    #[serde(default)]
    pub list: Vec<ListedOffer>,
    /// Doses per offer, drawn evenly from [min, max].
    pub doses: [i64; 2],
    /// Minutes from posting to the start of the appointment window, evenly from [min, max].
    pub start_after_minutes: [i64; 2],
    /// Length of the appointment window in minutes, evenly from [min, max].
    pub window_minutes: [i64; 2],
    /// How long an invitation may be answered.
    #[serde(default = "fifteen")]
    pub claim_minutes: i64,
    pub radius: Vec<WeightedKm>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedOffer {
    /// Minutes after the start of the period.
    pub at_minute: i64,
    /// Index of the practice (0-based, below `practices.count`).
    pub practice: u32,
    pub doses: i64,
    pub start_after_minutes: i64,
    pub window_minutes: i64,
    pub claim_minutes: Option<i64>,
    pub radius_km: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Share of people who answer invitations at all ("willing"); the others never click.
    pub click_share: f64,
    /// How long a willing person takes to answer after the mail arrived.
    pub answer_delay: Delay,
    /// Share of answers that are "no, thanks" instead of a claim.
    #[serde(default)]
    pub decline_share: f64,
    /// Share of people whose address is dead after they confirmed (SMTP 550 from then on).
    #[serde(default)]
    pub dead_share: f64,
    /// Share of bookings whose holder does not come.
    #[serde(default)]
    pub no_show_share: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Delay {
    Exponential { mean_minutes: f64 },
    Lognormal { median_minutes: f64, sigma: f64 },
    Fixed { minutes: f64 },
}

impl Delay {
    /// A delay in minutes.
    pub fn draw(self, rng: &mut super::rng::Rng) -> f64 {
        match self {
            Delay::Exponential { mean_minutes } => rng.exponential(mean_minutes),
            Delay::Lognormal {
                median_minutes,
                sigma,
            } => rng.log_normal(median_minutes, sigma),
            Delay::Fixed { minutes } => minutes,
        }
    }

    fn check(self, field: &str, errors: &mut Vec<String>) {
        let ok = match self {
            Delay::Exponential { mean_minutes } => mean_minutes > 0.0,
            Delay::Lognormal {
                median_minutes,
                sigma,
            } => median_minutes > 0.0 && sigma >= 0.0,
            Delay::Fixed { minutes } => minutes >= 0.0,
        };
        if !ok {
            errors.push(format!(
                "{field}: minutes must be positive (and sigma not negative)"
            ));
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancellations {
    /// Share of bookings the person cancels later...
    #[serde(default)]
    pub booking_share: f64,
    /// ...this long after booking (only if before the appointment ends).
    #[serde(default = "default_cancel_delay")]
    pub booking_delay: Delay,
    /// Share of offers the practice calls off...
    #[serde(default)]
    pub offer_share: f64,
    /// ...this many minutes after posting, evenly from [min, max] (only before the window ends).
    #[serde(default = "default_offer_cancel")]
    pub offer_after_minutes: [i64; 2],
}

impl Default for Cancellations {
    fn default() -> Self {
        Cancellations {
            booking_share: 0.0,
            booking_delay: default_cancel_delay(),
            offer_share: 0.0,
            offer_after_minutes: default_offer_cancel(),
        }
    }
}

fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-04T04:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}
fn one() -> i64 {
    1
}
fn thirty() -> i64 {
    30
}
fn fifteen() -> i64 {
    15
}
fn default_cancel_delay() -> Delay {
    Delay::Exponential {
        mean_minutes: 120.0,
    }
}
fn default_offer_cancel() -> [i64; 2] {
    [10, 120]
}

fn share(value: f64, field: &str, errors: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&value) || value.is_nan() {
        errors.push(format!(
            "{field} must be a share between 0 and 1, got {value}"
        ));
    }
}

fn range(value: [i64; 2], min: i64, max: i64, field: &str, errors: &mut Vec<String>) {
    if value[0] > value[1] || value[0] < min || value[1] > max {
        errors.push(format!(
            "{field} must be [low, high] with {min} <= low <= high <= {max}, got [{}, {}]",
            value[0], value[1]
        ));
    }
}

fn radii(list: &[WeightedKm], field: &str, errors: &mut Vec<String>) {
    if list.is_empty() {
        errors.push(format!(
            "{field} needs at least one {{ km, weight }} choice"
        ));
    }
    for choice in list {
        if !(1..=50).contains(&choice.km) {
            errors.push(format!(
                "{field}: km must be between 1 and 50, got {}",
                choice.km
            ));
        }
        if choice.weight.is_nan() || choice.weight < 0.0 {
            errors.push(format!(
                "{field}: weight must not be negative, got {}",
                choice.weight
            ));
        }
    }
    if !list.is_empty() && list.iter().map(|c| c.weight).sum::<f64>() <= 0.0 {
        errors.push(format!("{field}: the weights must not all be zero"));
    }
}

fn regions(list: &[String], field: &str, errors: &mut Vec<String>) {
    for r in list {
        if r.is_empty() || r.len() > 5 || !r.chars().all(|c| c.is_ascii_digit()) {
            errors.push(format!(
                "{field}: {r:?} is not a postcode prefix (one to five digits)"
            ));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {0}: {1}")]
    Read(String, std::io::Error),
    #[error("scenario {0} is not valid TOML for a scenario: {1}")]
    Parse(String, String),
    #[error("scenario {0} has bad values:\n  - {1}")]
    Invalid(String, String),
    #[error(
        "no scenario {0:?}: name a file or one of the built-in scenarios (quiet-day, rush-day, dead-addresses)"
    )]
    Unknown(String),
}

impl Scenario {
    /// Parses and checks a scenario; `origin` names it in errors and is the default name.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse(origin.to_owned(), e.to_string()))?;
        if scenario.name.trim().is_empty() {
            scenario.name = origin.to_owned();
        }
        let errors = scenario.problems();
        if errors.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid(
                origin.to_owned(),
                errors.join("\n  - "),
            ))
        }
    }

    /// A built-in scenario by name, or a file.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text, name);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::Unknown(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read(name_or_path.to_owned(), e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_owned());
        Scenario::parse(&text, &stem)
    }

    /// Every bad value, each with its field name.
    pub fn problems(&self) -> Vec<String> {
        let mut e = Vec::new();
        if !(1..=60).contains(&self.tick_minutes) {
            e.push(format!(
                "tick_minutes must be between 1 and 60, got {}",
                self.tick_minutes
            ));
        }
        if self.people.count == 0 || self.people.count > 1_000_000 {
            e.push(format!(
                "people.count must be between 1 and 1000000, got {}",
                self.people.count
            ));
        }
        share(
            self.people.waiting_at_start,
            "people.waiting_at_start",
            &mut e,
        );
        if !(0..=365).contains(&self.people.waiting_since_days) {
            e.push(format!(
                "people.waiting_since_days must be between 0 and 365, got {}",
                self.people.waiting_since_days
            ));
        }
        radii(&self.people.radius, "people.radius", &mut e);
        regions(&self.people.regions, "people.regions", &mut e);
        if self.practices.count == 0 || self.practices.count > 10_000 {
            e.push(format!(
                "practices.count must be between 1 and 10000, got {}",
                self.practices.count
            ));
        }
        regions(&self.practices.regions, "practices.regions", &mut e);
        let o = &self.offers;
        if o.list.is_empty() {
            if o.per_hour.len() != 24 {
                e.push(format!(
                    "offers.per_hour must have 24 values (one per hour of the day), got {}",
                    o.per_hour.len()
                ));
            }
            if o.per_hour.iter().any(|r| r.is_nan() || *r < 0.0) {
                e.push("offers.per_hour values must not be negative".to_owned());
            }
        }
        range(o.doses, 1, 200, "offers.doses", &mut e);
        range(
            o.start_after_minutes,
            0,
            7 * 24 * 60 - 1,
            "offers.start_after_minutes",
            &mut e,
        );
        range(
            o.window_minutes,
            1,
            7 * 24 * 60,
            "offers.window_minutes",
            &mut e,
        );
        if !(5..=120).contains(&o.claim_minutes) {
            e.push(format!(
                "offers.claim_minutes must be between 5 and 120, got {}",
                o.claim_minutes
            ));
        }
        radii(&o.radius, "offers.radius", &mut e);
        let minutes = self.duration.hours() * 60;
        for (i, l) in o.list.iter().enumerate() {
            let f = format!("offers.list[{i}]");
            if !(0..minutes).contains(&l.at_minute) {
                e.push(format!(
                    "{f}.at_minute must lie within the period (0..{minutes})"
                ));
            }
            if l.practice >= self.practices.count {
                e.push(format!(
                    "{f}.practice must be below practices.count ({})",
                    self.practices.count
                ));
            }
            if !(1..=200).contains(&l.doses) {
                e.push(format!("{f}.doses must be between 1 and 200"));
            }
            if l.start_after_minutes < 0 || l.window_minutes < 1 {
                e.push(format!(
                    "{f}: start_after_minutes must be >= 0 and window_minutes >= 1"
                ));
            }
            if l.claim_minutes.is_some_and(|m| !(5..=120).contains(&m)) {
                e.push(format!("{f}.claim_minutes must be between 5 and 120"));
            }
            if l.radius_km.is_some_and(|k| !(1..=50).contains(&k)) {
                e.push(format!("{f}.radius_km must be between 1 and 50"));
            }
        }
        let b = &self.behaviour;
        share(b.click_share, "behaviour.click_share", &mut e);
        share(b.decline_share, "behaviour.decline_share", &mut e);
        share(b.dead_share, "behaviour.dead_share", &mut e);
        share(b.no_show_share, "behaviour.no_show_share", &mut e);
        b.answer_delay.check("behaviour.answer_delay", &mut e);
        let c = &self.cancellations;
        share(c.booking_share, "cancellations.booking_share", &mut e);
        share(c.offer_share, "cancellations.offer_share", &mut e);
        c.booking_delay.check("cancellations.booking_delay", &mut e);
        range(
            c.offer_after_minutes,
            0,
            7 * 24 * 60,
            "cancellations.offer_after_minutes",
            &mut e,
        );
        e
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
seed = 1
duration = "day"
[people]
count = 10
waiting_at_start = 0.5
radius = [{ km = 10, weight = 1 }]
[practices]
count = 2
[offers]
per_hour = [0,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0]
doses = [1, 3]
start_after_minutes = [30, 60]
window_minutes = [60, 120]
radius = [{ km = 10, weight = 1 }]
[behaviour]
click_share = 0.7
answer_delay = { kind = "lognormal", median_minutes = 5, sigma = 1.0 }
"#;

    #[test]
    fn every_built_in_scenario_parses() {
        for (name, text) in BUILTIN {
            let s = Scenario::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
        }
    }

    #[test]
    fn a_small_scenario_gets_its_defaults() {
        let s = Scenario::parse(SMALL, "small").unwrap();
        assert_eq!(s.name, "small");
        assert_eq!(s.tick_minutes, 1);
        assert_eq!(s.offers.claim_minutes, 15);
        assert_eq!(s.cancellations.booking_share, 0.0);
        assert_eq!(s.duration.hours(), 24);
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let text = SMALL.replace("click_share", "clik_share");
        let e = Scenario::parse(&text, "small").unwrap_err().to_string();
        assert!(e.contains("clik_share"), "{e}");
    }

    #[test]
    fn bad_values_are_all_named() {
        let text = SMALL
            .replace("click_share = 0.7", "click_share = 1.5")
            .replace("doses = [1, 3]", "doses = [3, 1]")
            .replace(
                "km = 10, weight = 1 }]\n[practices]",
                "km = 80, weight = 1 }]\n[practices]",
            )
            .replace("duration = \"day\"", "duration = \"day\"\ntick_minutes = 0");
        let e = Scenario::parse(&text, "small").unwrap_err().to_string();
        assert!(
            e.contains("behaviour.click_share must be a share between 0 and 1, got 1.5"),
            "{e}"
        );
        assert!(e.contains("offers.doses must be [low, high]"), "{e}");
        assert!(
            e.contains("people.radius: km must be between 1 and 50, got 80"),
            "{e}"
        );
        assert!(
            e.contains("tick_minutes must be between 1 and 60, got 0"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_duration_or_delay_kind_is_refused() {
        let e = Scenario::parse(&SMALL.replace("\"day\"", "\"month\""), "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("month"), "{e}");
        let e = Scenario::parse(&SMALL.replace("lognormal", "gaussian"), "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gaussian"), "{e}");
        let e = Scenario::parse(&SMALL.replace("per_hour = [0,", "per_hour = ["), "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("offers.per_hour must have 24 values"), "{e}");
    }

    #[test]
    fn an_unknown_name_says_what_exists() {
        let e = Scenario::load("no-such-scenario").unwrap_err().to_string();
        assert!(e.contains("quiet-day, rush-day, dead-addresses"), "{e}");
    }
}
