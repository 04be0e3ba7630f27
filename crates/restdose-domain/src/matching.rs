//! The matching policy, without I/O: who is near whom, how many people a wave invites, and how
//! the overbooking factor learns from the answers.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::geo::{Coordinates, Gazetteer, haversine_km};

/// The largest radius anyone may choose; neighbour lists are cut here.
pub const MAX_RADIUS_KM: f64 = 50.0;

/// For every postcode, the postcodes whose centroids lie within `MAX_RADIUS_KM`, nearest first
/// (itself included, at 0 km). Built once at start: ~8,200 German postcodes give a few hundred
/// neighbours each; a grid keeps the build near-linear instead of comparing every pair.
#[derive(Debug, Default)]
pub struct NeighbourIndex {
    neighbours: HashMap<String, Vec<(String, f32)>>,
}

/// Grid cell size in degrees: 0.5° latitude is ~55 km, more than the largest radius, so the
/// 3 × 3 cells around a point hold every neighbour in latitude; longitude cells are widened by
/// the cosine of the latitude.
const CELL_DEG: f64 = 0.5;

impl NeighbourIndex {
    pub fn build(gazetteer: &Gazetteer) -> NeighbourIndex {
        let mut grid: HashMap<(i32, i32), Vec<(&str, Coordinates)>> = HashMap::new();
        for (code, c) in gazetteer.iter() {
            grid.entry(cell(c)).or_default().push((code, c));
        }
        let mut neighbours = HashMap::with_capacity(gazetteer.len());
        for (code, c) in gazetteer.iter() {
            let (row, col) = cell(c);
            // How many longitude cells 50 km spans at this latitude (at least one).
            let km_per_cell = 111.32 * CELL_DEG * c.lat.to_radians().cos().max(0.05);
            let span = (MAX_RADIUS_KM / km_per_cell).ceil() as i32;
            let mut near = Vec::new();
            for r in row - 1..=row + 1 {
                for k in col - span..=col + span {
                    for (other, oc) in grid.get(&(r, k)).into_iter().flatten() {
                        let d = haversine_km(c, *oc);
                        if d <= MAX_RADIUS_KM {
                            near.push(((*other).to_owned(), d as f32));
                        }
                    }
                }
            }
            near.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            neighbours.insert(code.to_owned(), near);
        }
        NeighbourIndex { neighbours }
    }

    /// Postcodes within `radius_km` of `postcode`, nearest first, with their distance.
    pub fn within(&self, postcode: &str, radius_km: f64) -> impl Iterator<Item = (&str, f32)> + '_ {
        self.neighbours
            .get(postcode)
            .into_iter()
            .flatten()
            .take_while(move |(_, d)| f64::from(*d) <= radius_km)
            .map(|(code, d)| (code.as_str(), *d))
    }

    pub fn distance_km(&self, from: &str, to: &str) -> Option<f32> {
        self.neighbours
            .get(from)?
            .iter()
            .find(|(code, _)| code == to)
            .map(|(_, d)| *d)
    }

    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }
}

/// The neighbour index of the built-in German postcodes, built on first use and shared.
pub fn builtin_germany_neighbours() -> std::sync::Arc<NeighbourIndex> {
    static INDEX: std::sync::OnceLock<std::sync::Arc<NeighbourIndex>> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| std::sync::Arc::new(NeighbourIndex::build(crate::geo::builtin_germany())))
        .clone()
}

fn cell(c: Coordinates) -> (i32, i32) {
    (
        (c.lat / CELL_DEG).floor() as i32,
        (c.lon / CELL_DEG).floor() as i32,
    )
}

/// How waves are sized. Overbooking > 1 invites more people than doses because not everyone
/// answers within the claim window; it adapts per offer to the answers seen so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavePolicy {
    /// Overbooking before anything is known.
    pub initial_overbooking: f64,
    pub min_overbooking: f64,
    pub max_overbooking: f64,
    /// How many invitations the prior is worth: small, so real answers dominate quickly.
    pub prior_weight: f64,
    /// The last-call wave invites this many times the usual wave, first come first served.
    pub last_call_factor: f64,
    /// Never invite more than this many people in one wave.
    pub max_wave: usize,
    /// The "answer time" as a share of the claim window: a yes counts towards the acceptance
    /// rate only if it came within it, and waves come (topping up) every answer time, so the
    /// doses are expected to be taken by then rather than by the window's end.
    pub quick_answer: f64,
}

impl Default for WavePolicy {
    fn default() -> Self {
        WavePolicy {
            initial_overbooking: 2.0,
            min_overbooking: 1.0,
            max_overbooking: 10.0,
            prior_weight: 10.0,
            last_call_factor: 3.0,
            max_wave: 500,
            // Measured in docs/matching.md (the rush-day simulation): 2/3 places as many doses
            // as a whole window with fewer waves' delay, for a few more mails.
            quick_answer: 0.67,
        }
    }
}

impl WavePolicy {
    /// The overbooking factor after `answered` invitations with a real answer of which
    /// `accepted` wanted the dose (earlier waves of this offer, plus the area's recent
    /// history): the inverse of the estimated acceptance rate, shrunk towards the prior while
    /// data is thin (the prior is worth `prior_weight` answers) and bounded by
    /// `min_overbooking..=max_overbooking`. Invitations without an answer (still open, or
    /// withdrawn because the offer filled) must not be passed in as refusals: they would cap
    /// the learned rate at 1/factor and the factor could only rise.
    pub fn overbooking(&self, answered: u64, accepted: u64) -> f64 {
        let prior_rate = 1.0 / self.initial_overbooking;
        let rate = (accepted as f64 + self.prior_weight * prior_rate)
            / (answered as f64 + self.prior_weight);
        (1.0 / rate.max(1e-6)).clamp(self.min_overbooking, self.max_overbooking)
    }

    /// The answer time of a claim window: its quick share, at least a minute.
    pub fn answer_time(&self, claim_window: Duration) -> Duration {
        Duration::milliseconds(
            ((claim_window.num_milliseconds() as f64) * self.quick_answer).round() as i64,
        )
        .max(Duration::minutes(1))
    }

    /// People to invite for `remaining` doses: ceil(remaining × overbooking), capped.
    pub fn wave_size(&self, remaining: u32, overbooking: f64, last_call: bool) -> usize {
        let factor = if last_call {
            overbooking * self.last_call_factor
        } else {
            overbooking
        };
        ((f64::from(remaining) * factor).ceil() as usize).min(self.max_wave)
    }
}

/// What the matcher knows about an offer when it is due: its times, the doses left, the answers
/// learned from (`answered`, `accepted`: the area's recent ones and the offer's own), and the
/// invitations still awaiting an answer that were sent within the last answer time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaveInput {
    pub now: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub claim_minutes: i32,
    pub remaining: u32,
    pub answered: u64,
    pub accepted: u64,
    pub awaiting: u32,
    pub first_awaiting: Option<DateTime<Utc>>,
}

/// The wave rule's decision for a due offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WavePlan {
    /// Invite up to `size` more people, each until `expires_at`.
    Invite {
        size: usize,
        last_call: bool,
        overbooking: f64,
        expires_at: DateTime<Utc>,
    },
    /// As many people as the wave would invite are still asked: look again at `until`, when
    /// the first of their answer times has passed.
    Wait { until: DateTime<Utc> },
}

impl WavePlan {
    /// The whole wave rule. When the appointment starts in less than one claim window, the wave
    /// is a "last call": a larger group, first come first served. Overbooking is learned from
    /// real answers only, so it falls as well as rises. Waves come every "answer time" (the
    /// quick share of the claim window, the time the estimate sizes them for) and top up to
    /// their size: people asked within the last answer time still count towards it; those
    /// asked earlier who have not answered are unlikely to, so the doses are offered to more
    /// people without waiting for the whole window (their invitations stay valid: first come,
    /// first served). `retry_empty` is how soon to look again when nobody is awaited.
    pub fn decide(policy: &WavePolicy, input: &WaveInput, retry_empty: Duration) -> WavePlan {
        let claim_window = Duration::minutes(i64::from(input.claim_minutes));
        let last_call = input.starts_at - input.now < claim_window;
        let overbooking = policy.overbooking(input.answered, input.accepted);
        let answer_time = policy.answer_time(claim_window);
        let size = policy
            .wave_size(input.remaining, overbooking, last_call)
            .saturating_sub(input.awaiting as usize);
        if size == 0 {
            let until = input
                .first_awaiting
                .map_or(input.now + retry_empty, |t| t + answer_time);
            return WavePlan::Wait { until };
        }
        WavePlan::Invite {
            size,
            last_call,
            overbooking,
            expires_at: (input.now + claim_window).min(input.ends_at),
        }
    }

    /// When the next wave is due after inviting `invited` of `size` people: fewer than wanted,
    /// look again soon for more (people become free all the time); otherwise when this wave's
    /// answers are due. Never after the invitations run out.
    pub fn next_wave_at(
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        answer_time: Duration,
        short: bool,
        retry_empty: Duration,
    ) -> DateTime<Utc> {
        let next = if short { retry_empty } else { answer_time };
        (now + next).min(expires_at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::geo::builtin_germany;
    use proptest::prelude::*;

    #[test]
    fn neighbours_are_complete_sorted_and_symmetric() {
        let index = NeighbourIndex::build(builtin_germany());
        assert_eq!(index.len(), builtin_germany().len());
        let berlin: Vec<_> = index.within("10115", 10.0).collect();
        assert_eq!(berlin[0], ("10115", 0.0));
        assert!(berlin.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(berlin.iter().any(|(c, _)| *c == "10117"));
        assert!(
            index
                .within("10115", 50.0)
                .all(|(c, _)| !c.starts_with('2')),
            "Hamburg is far"
        );
        // The grid misses nothing: compare with brute force for one postcode.
        let me = builtin_germany().lookup("80331").unwrap();
        let brute = builtin_germany()
            .iter()
            .filter(|(_, c)| haversine_km(me, *c) <= MAX_RADIUS_KM)
            .count();
        assert_eq!(index.within("80331", MAX_RADIUS_KM).count(), brute);
        let d1 = index.distance_km("10115", "10117").unwrap();
        let d2 = index.distance_km("10117", "10115").unwrap();
        assert!((d1 - d2).abs() < 1e-3);
    }

    #[test]
    fn waves_and_overbooking() {
        let p = WavePolicy::default();
        assert_eq!(p.overbooking(0, 0), 2.0);
        assert_eq!(p.wave_size(6, 2.0, false), 12);
        assert_eq!(p.wave_size(5, 1.5, false), 8, "ceil");
        assert_eq!(p.wave_size(5, 2.0, true), 30);
        assert_eq!(p.wave_size(1000, 10.0, true), 500, "capped");
        // Everyone says yes: overbooking falls towards 1.
        assert!(p.overbooking(100, 100) < 1.2);
        // Nobody answers: it rises to the cap.
        assert_eq!(p.overbooking(1000, 0), 10.0);
        // One in four: about 4.
        assert!((p.overbooking(400, 100) - 4.0).abs() < 0.3);
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minute)
    }

    fn input(remaining: u32, awaiting: u32) -> WaveInput {
        WaveInput {
            now: at(0),
            starts_at: at(120),
            ends_at: at(240),
            claim_minutes: 30,
            remaining,
            answered: 0,
            accepted: 0,
            awaiting,
            first_awaiting: (awaiting > 0).then(|| at(-5)),
        }
    }

    #[test]
    fn a_wave_tops_up_to_its_size_and_otherwise_waits_for_answers() {
        let p = WavePolicy::default();
        let retry = Duration::minutes(1);
        // Nothing known yet: overbooking 2, so 3 doses ask 6 people, for the claim window.
        assert_eq!(
            WavePlan::decide(&p, &input(3, 0), retry),
            WavePlan::Invite {
                size: 6,
                last_call: false,
                overbooking: 2.0,
                expires_at: at(30),
            }
        );
        // Four still asked within the answer time: two more.
        assert!(matches!(
            WavePlan::decide(&p, &input(3, 4), retry),
            WavePlan::Invite { size: 2, .. }
        ));
        // Six asked five minutes ago: look again when their answer time (0.67 × 30 min) has
        // passed.
        assert_eq!(
            WavePlan::decide(&p, &input(3, 6), retry),
            WavePlan::Wait {
                until: at(-5) + Duration::seconds(20 * 60 + 6)
            }
        );
    }

    #[test]
    fn within_a_claim_window_of_the_start_a_wave_is_a_last_call() {
        let p = WavePolicy::default();
        let soon = WaveInput {
            starts_at: at(20),
            ends_at: at(25),
            ..input(2, 0)
        };
        assert_eq!(
            WavePlan::decide(&p, &soon, Duration::minutes(1)),
            WavePlan::Invite {
                size: 12,
                last_call: true,
                overbooking: 2.0,
                // Never beyond the end of the window.
                expires_at: at(25),
            }
        );
    }

    #[test]
    fn the_next_wave_comes_after_the_answer_time_or_soon_when_short() {
        let answer = Duration::minutes(20);
        let retry = Duration::minutes(1);
        assert_eq!(
            WavePlan::next_wave_at(at(0), at(30), answer, false, retry),
            at(20)
        );
        assert_eq!(
            WavePlan::next_wave_at(at(0), at(30), answer, true, retry),
            at(1)
        );
        assert_eq!(
            WavePlan::next_wave_at(at(0), at(10), answer, false, retry),
            at(10)
        );
        assert_eq!(
            WavePolicy::default().answer_time(Duration::minutes(1)),
            Duration::minutes(1)
        );
    }

    proptest! {
        #[test]
        fn overbooking_stays_within_bounds(invited in 0u64..10_000, share in 0.0f64..=1.0) {
            let p = WavePolicy::default();
            let claimed = (invited as f64 * share) as u64;
            let o = p.overbooking(invited, claimed);
            prop_assert!((p.min_overbooking..=p.max_overbooking).contains(&o));
        }
    }
}
