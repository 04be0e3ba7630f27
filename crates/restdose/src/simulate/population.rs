//! Who takes part: people, practices and the offer schedule, drawn from the scenario with its
//! seed before the run starts.
//!
//! Places: the built-in gazetteer has no population figures, so postcode density stands in for
//! population: a place is a postcode drawn evenly from the gazetteer (optionally only those
//! starting with one of the scenario's prefixes). Dense cities have many small postcodes, so
//! they get more people, as they should.

use chrono::{DateTime, Duration, Utc};
use restdose_domain::geo::Gazetteer;

use super::rng::{Rng, tag};
use super::scenario::{Scenario, WeightedKm};

#[derive(Debug, Clone)]
pub struct PlannedPerson {
    pub email: String,
    pub postcode: String,
    pub radius_km: u16,
    pub signs_up_at: DateTime<Utc>,
    pub willing: bool,
    pub dead: bool,
}

#[derive(Debug, Clone)]
pub struct PlannedPractice {
    pub email: String,
    pub name: String,
    pub postcode: String,
}

#[derive(Debug, Clone)]
pub struct PlannedOffer {
    pub practice: usize,
    pub posted_at: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub doses: i32,
    pub claim_minutes: i64,
    pub radius_km: u16,
    /// When the practice calls it off, if it does.
    pub cancelled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Population {
    pub people: Vec<PlannedPerson>,
    pub practices: Vec<PlannedPractice>,
    pub offers: Vec<PlannedOffer>,
}

/// The postcodes places are drawn from, sorted (the gazetteer's own order is not stable).
fn postcode_pool(gazetteer: &Gazetteer, regions: &[String]) -> Vec<String> {
    let mut codes: Vec<String> = gazetteer
        .iter()
        .map(|(code, _)| code.to_owned())
        .filter(|code| regions.is_empty() || regions.iter().any(|r| code.starts_with(r.as_str())))
        .collect();
    codes.sort();
    codes
}

fn radius(rng: &mut Rng, choices: &[WeightedKm]) -> u16 {
    let weights: Vec<f64> = choices.iter().map(|c| c.weight).collect();
    choices
        .get(rng.weighted(&weights))
        .map(|c| c.km.clamp(1, 50) as u16)
        .unwrap_or(10)
}

/// Makes times strictly increasing by at least a millisecond, so that the service's
/// "oldest first" orders never fall back to comparing random ids.
fn distinct(times: &mut [DateTime<Utc>]) {
    for i in 1..times.len() {
        if times[i] <= times[i - 1] {
            times[i] = times[i - 1] + Duration::milliseconds(1);
        }
    }
}

fn whole_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub fn draw(scenario: &Scenario, seed: u64, gazetteer: &Gazetteer) -> Result<Population, String> {
    let start = scenario.start;
    let period = Duration::hours(scenario.duration.hours());

    let people_pool = postcode_pool(gazetteer, &scenario.people.regions);
    if people_pool.is_empty() {
        return Err("people.regions match no postcode of the gazetteer".into());
    }
    let practice_pool = postcode_pool(gazetteer, &scenario.practices.regions);
    if practice_pool.is_empty() {
        return Err("practices.regions match no postcode of the gazetteer".into());
    }

    // People: places and radii from one stream, sign-up times from another, then ordered by
    // sign-up time so that the index is the place in line.
    let mut rng = Rng::derive(seed, &[tag("people")]);
    let count = scenario.people.count as usize;
    let waiting = (count as f64 * scenario.people.waiting_at_start).round() as usize;
    let since = Duration::days(scenario.people.waiting_since_days);
    let mut drafts: Vec<(DateTime<Utc>, String, u16)> = (0..count)
        .map(|i| {
            let postcode = people_pool[rng.index(people_pool.len())].clone();
            let radius_km = radius(&mut rng, &scenario.people.radius);
            let at = if i < waiting {
                let span = since.num_seconds().max(1);
                start - since + Duration::seconds(rng.range(0, span - 1))
            } else {
                start + Duration::seconds(rng.range(0, period.num_seconds() - 1))
            };
            (whole_ms(at), postcode, radius_km)
        })
        .collect();
    drafts.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut times: Vec<DateTime<Utc>> = drafts.iter().map(|d| d.0).collect();
    distinct(&mut times);
    let people = drafts
        .into_iter()
        .zip(times)
        .enumerate()
        .map(|(i, ((_, postcode, radius_km), signs_up_at))| {
            let mut profile = Rng::derive(seed, &[tag("profile"), i as u64]);
            PlannedPerson {
                email: format!("person{i:06}@sim.restdose.example"),
                postcode,
                radius_km,
                signs_up_at,
                willing: profile.chance(scenario.behaviour.click_share),
                dead: profile.chance(scenario.behaviour.dead_share),
            }
        })
        .collect();

    let mut rng = Rng::derive(seed, &[tag("practices")]);
    let practices: Vec<PlannedPractice> = (0..scenario.practices.count as usize)
        .map(|i| PlannedPractice {
            email: format!("practice{i:04}@sim.restdose.example"),
            name: format!("Praxis {i:04}"),
            postcode: practice_pool[rng.index(practice_pool.len())].clone(),
        })
        .collect();

    let offers = draw_offers(scenario, seed, practices.len());
    Ok(Population {
        people,
        practices,
        offers,
    })
}

fn draw_offers(scenario: &Scenario, seed: u64, practices: usize) -> Vec<PlannedOffer> {
    let o = &scenario.offers;
    let start = scenario.start;
    let mut rng = Rng::derive(seed, &[tag("offers")]);
    let mut offers: Vec<PlannedOffer> = Vec::new();
    if o.list.is_empty() {
        for hour in 0..scenario.duration.hours() {
            let rate = o.per_hour.get((hour % 24) as usize).copied().unwrap_or(0.0);
            for _ in 0..rng.poisson(rate) {
                let posted_at =
                    start + Duration::hours(hour) + Duration::seconds(rng.range(0, 3599));
                let starts_at = posted_at
                    + Duration::minutes(
                        rng.range(o.start_after_minutes[0], o.start_after_minutes[1]),
                    );
                offers.push(PlannedOffer {
                    practice: rng.index(practices),
                    posted_at,
                    starts_at,
                    ends_at: starts_at
                        + Duration::minutes(rng.range(o.window_minutes[0], o.window_minutes[1])),
                    doses: rng.range(o.doses[0], o.doses[1]) as i32,
                    claim_minutes: o.claim_minutes,
                    radius_km: radius(&mut rng, &o.radius),
                    cancelled_at: None,
                });
            }
        }
    } else {
        for l in &o.list {
            let posted_at = start + Duration::minutes(l.at_minute);
            let starts_at = posted_at + Duration::minutes(l.start_after_minutes);
            offers.push(PlannedOffer {
                practice: l.practice as usize,
                posted_at,
                starts_at,
                ends_at: starts_at + Duration::minutes(l.window_minutes),
                doses: l.doses as i32,
                claim_minutes: l.claim_minutes.unwrap_or(o.claim_minutes),
                radius_km: l
                    .radius_km
                    .map(|k| k as u16)
                    .unwrap_or_else(|| radius(&mut rng, &o.radius)),
                cancelled_at: None,
            });
        }
    }
    offers.sort_by_key(|o| o.posted_at);
    let mut times: Vec<DateTime<Utc>> = offers.iter().map(|o| whole_ms(o.posted_at)).collect();
    distinct(&mut times);
    let c = &scenario.cancellations;
    for (i, (offer, posted_at)) in offers.iter_mut().zip(times).enumerate() {
        offer.posted_at = posted_at;
        let mut r = Rng::derive(seed, &[tag("offer-cancel"), i as u64]);
        if r.chance(c.offer_share) {
            let at = posted_at
                + Duration::minutes(r.range(c.offer_after_minutes[0], c.offer_after_minutes[1]));
            offer.cancelled_at = (at < offer.ends_at).then_some(at);
        }
    }
    offers
}
