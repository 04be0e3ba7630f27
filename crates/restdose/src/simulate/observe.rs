//! The figures of a run, computed from its log by replaying it in order. Definitions (also in
//! docs/simulation.md):
//!
//! - **offered**: doses of every posted offer, by the hour it was posted. Offers the practice
//!   cancelled count as **withdrawn** and are left out of placed and wasted.
//! - **placed**: bookings not cancelled at the end, by the hour of booking.
//! - **wasted**: for offers not cancelled whose window ended before the run stopped, doses −
//!   placed, by the hour the window ended. Offers still running at the end are **open at end**.
//! - **no-shows**: placed doses whose holder did not come (the scenario decides), separately.
//! - **free** (a person at time t): holds no live booking (booked, not cancelled); holds no
//!   open unexpired invitation to an offer that was open and still had a dose left; has no
//!   invitation created within the matcher's throttle before t that ended by a real answer or
//!   silence (one whose offer filled, closed or was cancelled while it was open does not
//!   throttle); and got fewer than the daily cap of invitations in the 24 h up to t.
//! - **eligible** (at t): confirmed, not paused, not known undeliverable (a mail to them
//!   bounced at or before t), and free.
//! - **wasted while a willing person was in reach**: the wasted doses of an offer for which, at
//!   the end of some step while it was open with doses left, at least one claim window before
//!   its end, and fewer invitations awaiting an answer than doses left (the matcher was not
//!   asking enough people), an eligible person whose profile answers ("willing") was in reach
//!   and had never been invited to it — at the end of that step and of the one before (the
//!   matcher ran in between and could have asked them).
//! - **line-order inversion**: a booking by P at offer O whose invitation was created at t,
//!   when at t (before that wave) some eligible Q in reach of O, who signed up before P, had
//!   never been invited to O (nor in that wave).
//! - **wrongful pause**: a pause that needed an invitation whose offer filled, closed or was
//!   cancelled while it was open and unanswered: among the person's invitations since their
//!   last answer (claim, decline, or a click that came too late) that ran out, fewer than the
//!   matcher's `pause_after_unanswered` ran out while their offer still wanted an answer.
//! - **time to fill**: offer posted → last placed dose booked, for offers fully placed at the end.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

use super::log::{Answer, Event, Log, MailKind};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Hourly {
    pub hour: usize,
    pub offered: i64,
    pub placed: i64,
    pub wasted: i64,
    pub wasted_while_willing: i64,
    pub withdrawn: i64,
    pub no_shows: i64,
    pub invitations: i64,
    pub mails: i64,
    pub bounces: i64,
    pub inversions: i64,
    pub pauses: i64,
    pub wrongful_pauses: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InversionExample {
    pub offer: usize,
    pub minute: i64,
    /// Who was booked...
    pub booked_person: usize,
    /// ...and the longest-waiting eligible person passed over.
    pub passed_over: usize,
    pub passed_over_waited_longer_minutes: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub people: usize,
    pub offers: usize,
    pub offered: i64,
    pub placed: i64,
    pub wasted: i64,
    pub wasted_while_willing: i64,
    pub withdrawn: i64,
    pub open_at_end: i64,
    pub no_shows: i64,
    pub offers_filled: usize,
    pub time_to_fill_p50_minutes: Option<f64>,
    pub time_to_fill_p95_minutes: Option<f64>,
    pub invitations: i64,
    pub invitations_per_placed_dose: Option<f64>,
    /// Mails delivered to people, sign-up confirmations not counted.
    pub mails: i64,
    pub mails_per_placed_dose: Option<f64>,
    pub bounces: i64,
    pub people_known_undeliverable: usize,
    pub inversions: i64,
    pub pauses: i64,
    pub wrongful_pauses: i64,
    pub max_mails_per_person_day: i64,
    pub max_invitations_per_person_day: i64,
    pub daily_cap: u32,
    /// Offers that at some moment held more live bookings than doses (must stay 0).
    pub overbooked_offers: i64,
    pub waves: i64,
    pub last_call_waves: i64,
    pub bookings_cancelled_by_people: i64,
    pub offers_cancelled: i64,
    pub declines: i64,
    pub missed: i64,
    pub late: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Figures {
    pub totals: Totals,
    pub hourly: Vec<Hourly>,
    pub worst_inversions: Vec<InversionExample>,
    /// Mean overbooking of the waves per area (first two postcode digits) and hour.
    pub overbooking: BTreeMap<String, BTreeMap<usize, f64>>,
    /// Number of people who got n invitations in the whole run (index n).
    pub invitations_per_person: Vec<i64>,
    /// Minutes to fill, per filled offer (sorted).
    pub fill_minutes: Vec<f64>,
}

#[derive(Default, Clone)]
struct PersonState {
    confirmed: bool,
    paused: bool,
    undeliverable: bool,
    live_bookings: i32,
    invitations: Vec<usize>,
}

#[derive(Default, Clone)]
struct InvitationState {
    answer: Option<Answer>,
    /// Its offer filled, closed or was cancelled while it was open and unanswered.
    gone_while_open: bool,
    booking_cancelled: bool,
    no_show: bool,
    booked_at: Option<DateTime<Utc>>,
}

#[derive(Default, Clone)]
struct OfferState {
    booked: i32,
    cancelled: bool,
    invited: HashSet<usize>,
    invitations: Vec<usize>,
    willing_missed: bool,
    /// Willing, eligible, uninvited people in reach at the end of the previous step.
    missed_last_step: HashSet<usize>,
}

struct Replay<'a> {
    log: &'a Log,
    people: Vec<PersonState>,
    invitations: Vec<InvitationState>,
    offers: Vec<OfferState>,
}

impl Replay<'_> {
    fn offer_open(&self, offer: usize, t: DateTime<Utc>) -> bool {
        let info = &self.log.offers[offer];
        !self.offers[offer].cancelled && info.ends_at > t && info.posted_at <= t
    }

    /// See "free" in the module documentation.
    fn free(&self, person: usize, t: DateTime<Utc>) -> bool {
        let state = &self.people[person];
        if state.live_bookings > 0 {
            return false;
        }
        let day_ago = t - Duration::hours(24);
        let mut today = 0u32;
        for &i in state.invitations.iter().rev() {
            let info = &self.log.invitations[i];
            if info.created_at <= day_ago {
                break;
            }
            today += 1;
            let inv = &self.invitations[i];
            let open = inv.answer.is_none() && info.expires_at > t;
            if open
                && self.offer_open(info.offer, t)
                && self.offers[info.offer].booked < self.log.offers[info.offer].doses
            {
                return false;
            }
            let throttles = !inv.gone_while_open && t - info.created_at < self.log.throttle;
            if throttles {
                return false;
            }
        }
        today < self.log.daily_cap
    }

    fn eligible(&self, person: usize, t: DateTime<Utc>) -> bool {
        let s = &self.people[person];
        s.confirmed && !s.paused && !s.undeliverable && self.free(person, t)
    }

    /// The offer cannot be answered any more: every invitation still open loses its point.
    fn offer_gone(&mut self, offer: usize, t: DateTime<Utc>) {
        for &i in &self.offers[offer].invitations {
            let open =
                self.invitations[i].answer.is_none() && self.log.invitations[i].expires_at > t;
            if open {
                self.invitations[i].gone_while_open = true;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn per(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// Computes every figure from the log.
pub fn figures(log: &Log) -> Figures {
    let ordered = log.ordered();
    let hours = log.hours();
    let mut hourly: Vec<Hourly> = (0..hours)
        .map(|hour| Hourly {
            hour,
            ..Hourly::default()
        })
        .collect();
    let hour_of = |t: DateTime<Utc>| log.hour(t).min(hours - 1);
    // Which invitations end in a booking: only their waves need the (costly) inversion check.
    let mut booked_invitations = HashSet::new();
    for e in &ordered {
        if let Event::Answered {
            invitation,
            answer: Answer::Booked,
            ..
        } = e.event
        {
            booked_invitations.insert(invitation);
        }
    }
    let mut r = Replay {
        log,
        people: vec![PersonState::default(); log.people.len()],
        invitations: vec![InvitationState::default(); log.invitations.len()],
        offers: vec![OfferState::default(); log.offers.len()],
    };
    let mut t = Totals {
        people: log.people.len(),
        offers: log.offers.len(),
        daily_cap: log.daily_cap,
        ..Totals::default()
    };
    let mut inversions: Vec<InversionExample> = Vec::new();
    let mut overbooking_sum: BTreeMap<String, BTreeMap<usize, (f64, u32)>> = BTreeMap::new();
    let mut mails_per_day: BTreeMap<(usize, i64), i64> = BTreeMap::new();
    let mut invitations_per_day: BTreeMap<(usize, i64), i64> = BTreeMap::new();
    let day = |at: DateTime<Utc>| (at - log.start).num_days();

    for entry in ordered {
        let at = entry.at;
        match &entry.event {
            Event::Confirmed { person } => r.people[*person].confirmed = true,
            Event::OfferPosted { offer } => {
                hourly[hour_of(at)].offered += i64::from(log.offers[*offer].doses);
            }
            Event::Wave {
                offer,
                overbooking,
                last_call,
                invitations,
                ..
            } => {
                t.waves += 1;
                if *last_call {
                    t.last_call_waves += 1;
                }
                let cell = overbooking_sum
                    .entry(log.offers[*offer].area())
                    .or_default()
                    .entry(hour_of(at))
                    .or_default();
                cell.0 += overbooking;
                cell.1 += 1;
                // This wave's people count as invited to the offer for the check below.
                for &i in invitations {
                    r.offers[*offer].invited.insert(log.invitations[i].person);
                }
                for &i in invitations {
                    if !booked_invitations.contains(&i) {
                        continue;
                    }
                    let p = log.invitations[i].person;
                    let p_since = log.people[p].signed_up_at;
                    let created = log.invitations[i].created_at;
                    let passed_over = log.offers[*offer]
                        .reach
                        .iter()
                        .map(|(q, _)| *q)
                        .filter(|q| {
                            *q != p
                                && log.people[*q].signed_up_at < p_since
                                && !r.offers[*offer].invited.contains(q)
                                && r.eligible(*q, created)
                        })
                        .min_by_key(|q| (log.people[*q].signed_up_at, *q));
                    if let Some(q) = passed_over {
                        hourly[hour_of(created)].inversions += 1;
                        inversions.push(InversionExample {
                            offer: *offer,
                            minute: (created - log.start).num_minutes(),
                            booked_person: p,
                            passed_over: q,
                            passed_over_waited_longer_minutes: (p_since
                                - log.people[q].signed_up_at)
                                .num_minutes(),
                        });
                    }
                }
                for &i in invitations {
                    let info = &log.invitations[i];
                    r.people[info.person].invitations.push(i);
                    r.offers[*offer].invitations.push(i);
                    hourly[hour_of(info.created_at)].invitations += 1;
                    *invitations_per_day
                        .entry((info.person, day(info.created_at)))
                        .or_default() += 1;
                }
            }
            Event::Answered {
                invitation, answer, ..
            } => {
                let i = *invitation;
                let info = &log.invitations[i];
                r.invitations[i].answer = Some(*answer);
                match answer {
                    Answer::Booked => {
                        // A no-show is counted when the practice marks it.
                        r.invitations[i].booked_at = Some(at);
                        r.people[info.person].live_bookings += 1;
                        r.offers[info.offer].booked += 1;
                        if r.offers[info.offer].booked == log.offers[info.offer].doses + 1 {
                            t.overbooked_offers += 1;
                        }
                        if r.offers[info.offer].booked >= log.offers[info.offer].doses {
                            r.offer_gone(info.offer, at);
                        }
                    }
                    Answer::Declined => t.declines += 1,
                    Answer::Missed => t.missed += 1,
                    Answer::Late => {
                        // Silence, as far as the service knows: the answer is forgotten.
                        r.invitations[i].answer = None;
                        t.late += 1;
                    }
                    Answer::AlreadyBooked => {}
                }
            }
            Event::BookingCancelled { invitation } => {
                let i = *invitation;
                let info = &log.invitations[i];
                if !r.invitations[i].booking_cancelled
                    && !r.invitations[i].no_show
                    && r.invitations[i].booked_at.is_some()
                {
                    r.invitations[i].booking_cancelled = true;
                    r.people[info.person].live_bookings -= 1;
                    r.offers[info.offer].booked -= 1;
                    t.bookings_cancelled_by_people += 1;
                }
            }
            Event::NoShow { invitation } => {
                let i = *invitation;
                if r.invitations[i].booked_at.is_some()
                    && !r.invitations[i].booking_cancelled
                    && !r.invitations[i].no_show
                {
                    // The dose stays used; the person holds no live booking any more.
                    r.invitations[i].no_show = true;
                    r.people[log.invitations[i].person].live_bookings -= 1;
                }
            }
            Event::OfferCancelled { offer } => {
                t.offers_cancelled += 1;
                r.offer_gone(*offer, at);
                r.offers[*offer].cancelled = true;
                let held: Vec<usize> = r.offers[*offer].invitations.clone();
                for i in held {
                    if r.invitations[i].booked_at.is_some() && !r.invitations[i].booking_cancelled {
                        r.invitations[i].booking_cancelled = true;
                        r.people[log.invitations[i].person].live_bookings -= 1;
                        r.offers[*offer].booked -= 1;
                    }
                }
                hourly[hour_of(log.offers[*offer].posted_at)].withdrawn +=
                    i64::from(log.offers[*offer].doses);
            }
            Event::Paused { person } => {
                if r.people[*person].paused {
                    continue;
                }
                r.people[*person].paused = true;
                hourly[hour_of(at)].pauses += 1;
                // The pause needs `pause_after` silences since the person's last answer
                // (claim, decline, or a click that came too late). It was wrongful if it could
                // not have come without an invitation whose offer filled, closed or was
                // cancelled while it was open: fewer real silences than that among them.
                let (mut silences, mut ended) = (0u32, 0u32);
                for &i in r.people[*person].invitations.iter().rev() {
                    match r.invitations[i].answer {
                        Some(Answer::Booked | Answer::Declined | Answer::Missed) => break,
                        _ if log.invitations[i].expires_at > at => {}
                        _ if r.invitations[i].gone_while_open => ended += 1,
                        _ => silences += 1,
                    }
                }
                let wrongful = ended > 0 && silences < log.pause_after;
                if wrongful {
                    hourly[hour_of(at)].wrongful_pauses += 1;
                }
            }
            Event::Mail {
                person,
                kind,
                bounced,
            } => {
                if *bounced {
                    hourly[hour_of(at)].bounces += 1;
                    r.people[*person].undeliverable = true;
                } else if *kind != MailKind::SignUpConfirmation {
                    hourly[hour_of(at)].mails += 1;
                    *mails_per_day.entry((*person, day(at))).or_default() += 1;
                }
            }
            Event::Tick => {
                for offer in 0..log.offers.len() {
                    let info = &log.offers[offer];
                    if r.offers[offer].willing_missed {
                        continue;
                    }
                    if !r.offer_open(offer, at)
                        || r.offers[offer].booked >= info.doses
                        || at + Duration::minutes(info.claim_minutes) > info.ends_at
                    {
                        r.offers[offer].missed_last_step.clear();
                        continue;
                    }
                    // Still waiting for as many answers as doses are left: the matcher is
                    // asking enough people; the doses are not yet at risk from its side.
                    let pending = r.offers[offer]
                        .invitations
                        .iter()
                        .filter(|&&i| {
                            r.invitations[i].answer.is_none() && log.invitations[i].expires_at > at
                        })
                        .count() as i64;
                    if pending >= i64::from(info.doses - r.offers[offer].booked) {
                        r.offers[offer].missed_last_step.clear();
                        continue;
                    }
                    // Passed over for a whole step: the person was free and uninvited at the
                    // end of the previous step too, so the matcher ran in between and could
                    // have asked them (someone freed late in a step, after the matcher ran,
                    // is not its miss yet).
                    let now_missed: HashSet<usize> = info
                        .reach
                        .iter()
                        .map(|(q, _)| *q)
                        .filter(|q| {
                            log.people[*q].willing
                                && !r.offers[offer].invited.contains(q)
                                && r.eligible(*q, at)
                        })
                        .collect();
                    let missed = now_missed
                        .iter()
                        .any(|q| r.offers[offer].missed_last_step.contains(q));
                    r.offers[offer].missed_last_step = now_missed;
                    r.offers[offer].willing_missed = missed;
                }
            }
        }
    }

    // Placed, wasted and time to fill, per offer.
    let mut fill_minutes = Vec::new();
    for (o, info) in log.offers.iter().enumerate() {
        let state = &r.offers[o];
        let placed: Vec<usize> = state
            .invitations
            .iter()
            .copied()
            .filter(|i| {
                r.invitations[*i].booked_at.is_some() && !r.invitations[*i].booking_cancelled
            })
            .collect();
        for &i in &placed {
            if let Some(b) = r.invitations[i].booked_at {
                hourly[hour_of(b)].placed += 1;
            }
            if r.invitations[i].no_show {
                hourly[hour_of(info.ends_at)].no_shows += 1;
            }
        }
        if state.cancelled {
            continue;
        }
        let placed_n = placed.len() as i64;
        if info.ends_at > log.end {
            t.open_at_end += i64::from(info.doses) - placed_n;
        } else {
            let wasted = (i64::from(info.doses) - placed_n).max(0);
            hourly[hour_of(info.ends_at)].wasted += wasted;
            if state.willing_missed {
                hourly[hour_of(info.ends_at)].wasted_while_willing += wasted;
            }
        }
        if placed_n >= i64::from(info.doses)
            && let Some(last) = placed
                .iter()
                .filter_map(|i| r.invitations[*i].booked_at)
                .max()
        {
            fill_minutes.push((last - info.posted_at).num_seconds() as f64 / 60.0);
        }
    }
    fill_minutes.sort_by(f64::total_cmp);

    for h in &hourly {
        t.offered += h.offered;
        t.placed += h.placed;
        t.wasted += h.wasted;
        t.wasted_while_willing += h.wasted_while_willing;
        t.withdrawn += h.withdrawn;
        t.no_shows += h.no_shows;
        t.invitations += h.invitations;
        t.mails += h.mails;
        t.bounces += h.bounces;
        t.inversions += h.inversions;
        t.pauses += h.pauses;
        t.wrongful_pauses += h.wrongful_pauses;
    }
    t.offers_filled = fill_minutes.len();
    t.time_to_fill_p50_minutes = percentile(&fill_minutes, 0.5);
    t.time_to_fill_p95_minutes = percentile(&fill_minutes, 0.95);
    t.invitations_per_placed_dose = per(t.invitations, t.placed);
    t.mails_per_placed_dose = per(t.mails, t.placed);
    t.people_known_undeliverable = r.people.iter().filter(|p| p.undeliverable).count();
    t.max_mails_per_person_day = mails_per_day.values().copied().max().unwrap_or(0);
    t.max_invitations_per_person_day = invitations_per_day.values().copied().max().unwrap_or(0);

    let mut per_person = Vec::new();
    for p in &r.people {
        let n = p.invitations.len();
        if per_person.len() <= n {
            per_person.resize(n + 1, 0);
        }
        per_person[n] += 1;
    }
    inversions.sort_by(|a, b| {
        b.passed_over_waited_longer_minutes
            .cmp(&a.passed_over_waited_longer_minutes)
            .then(a.minute.cmp(&b.minute))
            .then(a.booked_person.cmp(&b.booked_person))
    });
    inversions.truncate(5);
    Figures {
        totals: t,
        hourly,
        worst_inversions: inversions,
        overbooking: overbooking_sum
            .into_iter()
            .map(|(area, hours)| {
                (
                    area,
                    hours
                        .into_iter()
                        .map(|(h, (sum, n))| (h, sum / f64::from(n.max(1))))
                        .collect(),
                )
            })
            .collect(),
        invitations_per_person: per_person,
        fill_minutes,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::simulate::log::{Entry, InvitationInfo, OfferInfo, PersonInfo};
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 4, 0, 0).unwrap() + Duration::minutes(minute)
    }

    /// Three willing people in reach of one offer of `doses` posted at minute 0, ending at 120;
    /// person 0 waited longest.
    fn world(doses: i32) -> Log {
        let person = |since: i64| PersonInfo {
            signed_up_at: at(since),
            postcode: "10115".into(),
            radius_km: 10,
            willing: true,
            dead: false,
        };
        Log {
            start: at(0),
            period_end: at(180),
            end: at(180),
            tick: Duration::minutes(1),
            throttle: Duration::minutes(30),
            daily_cap: 10,
            pause_after: 3,
            people: vec![person(-300), person(-200), person(-100)],
            offers: vec![OfferInfo {
                posted_at: at(0),
                starts_at: at(60),
                ends_at: at(120),
                doses,
                claim_minutes: 15,
                radius_km: 10,
                postcode: "10115".into(),
                reach: vec![(0, 0.0), (1, 0.0), (2, 0.0)],
            }],
            invitations: Vec::new(),
            entries: Vec::new(),
        }
    }

    struct Builder {
        log: Log,
        seq: u64,
    }

    impl Builder {
        fn new(log: Log) -> Builder {
            let mut b = Builder { log, seq: 0 };
            for p in 0..b.log.people.len() {
                b.push(-1000, Event::Confirmed { person: p });
            }
            b
        }
        fn push(&mut self, minute: i64, event: Event) {
            self.seq += 1;
            self.log.entries.push(Entry {
                seq: self.seq,
                at: at(minute),
                event,
            });
        }
        fn offer(&mut self, offer: usize) {
            let m = (self.log.offers[offer].posted_at - at(0)).num_minutes();
            self.push(m, Event::OfferPosted { offer });
        }
        /// A wave inviting `people` to `offer` at `minute`; returns the invitation ids.
        fn wave(&mut self, offer: usize, minute: i64, people: &[usize]) -> Vec<usize> {
            let claim = self.log.offers[offer].claim_minutes;
            let ids: Vec<usize> = people
                .iter()
                .map(|&person| {
                    self.log.invitations.push(InvitationInfo {
                        person,
                        offer,
                        created_at: at(minute),
                        expires_at: at(minute + claim),
                    });
                    self.log.invitations.len() - 1
                })
                .collect();
            self.push(
                minute,
                Event::Wave {
                    offer,
                    invited: people.len() as u32,
                    overbooking: 2.0,
                    last_call: false,
                    invitations: ids.clone(),
                },
            );
            ids
        }
        fn answer(&mut self, minute: i64, invitation: usize, answer: Answer) {
            self.push(
                minute,
                Event::Answered {
                    invitation,
                    answer,
                    no_show: false,
                },
            );
        }
    }

    #[test]
    fn booking_someone_newer_while_the_longest_waiting_is_free_is_an_inversion() {
        let mut b = Builder::new(world(1));
        b.offer(0);
        let inv = b.wave(0, 1, &[2]);
        b.answer(5, inv[0], Answer::Booked);
        let f = figures(&b.log);
        assert_eq!(f.totals.inversions, 1);
        assert_eq!(f.worst_inversions[0].passed_over, 0);
        assert_eq!(f.worst_inversions[0].booked_person, 2);
        assert_eq!(f.worst_inversions[0].passed_over_waited_longer_minutes, 200);
    }

    #[test]
    fn passing_over_someone_invited_in_the_same_wave_or_busy_elsewhere_is_no_inversion() {
        // Person 0 holds an open invitation to another offer that still has doses: not free.
        let mut log = world(1);
        let mut other = log.offers[0].clone();
        other.doses = 5;
        log.offers.push(other);
        let mut b = Builder::new(log);
        b.offer(0);
        b.offer(1);
        b.wave(1, 0, &[0]);
        let inv = b.wave(0, 1, &[1, 2]);
        b.answer(5, inv[1], Answer::Booked);
        let f = figures(&b.log);
        assert_eq!(f.totals.inversions, 0, "{:?}", f.worst_inversions);
    }

    #[test]
    fn an_invitation_whose_offer_filled_does_not_keep_its_person_from_being_free() {
        // Person 0 was invited to offer 1 (one dose), which person 1 filled at minute 2; at
        // minute 3 person 0 is free again although invited within the throttle.
        let mut log = world(1);
        log.offers.push(log.offers[0].clone());
        let mut b = Builder::new(log);
        b.offer(0);
        b.offer(1);
        let first = b.wave(1, 0, &[0, 1]);
        b.answer(2, first[1], Answer::Booked);
        let inv = b.wave(0, 3, &[2]);
        b.answer(5, inv[0], Answer::Booked);
        let f = figures(&b.log);
        assert_eq!(f.totals.inversions, 1);
        assert_eq!(f.worst_inversions[0].passed_over, 0);
    }

    #[test]
    fn a_declined_invitation_within_the_throttle_keeps_its_person_busy() {
        let mut log = world(1);
        log.offers.push(log.offers[0].clone());
        let mut b = Builder::new(log);
        b.offer(0);
        b.offer(1);
        let first = b.wave(1, 0, &[0]);
        b.answer(1, first[0], Answer::Declined);
        // Person 1 is passed over too unless busy: give them a live booking elsewhere.
        let mut third = b.log.offers[0].clone();
        third.doses = 3;
        b.log.offers.push(third);
        b.offer(2);
        let held = b.wave(2, 0, &[1]);
        b.answer(1, held[0], Answer::Booked);
        let inv = b.wave(0, 10, &[2]);
        b.answer(12, inv[0], Answer::Booked);
        assert_eq!(figures(&b.log).totals.inversions, 0);
        // Forty minutes later the throttle is over: the same booking would be an inversion.
        let mut b2 = Builder::new(b.log.clone());
        b2.log.entries.retain(|e| e.seq <= 10);
        b2.seq = 100;
        let later = b2.wave(0, 40, &[2]);
        b2.answer(42, later[0], Answer::Booked);
        let f = figures(&b2.log);
        assert_eq!(f.totals.inversions, 1);
        assert_eq!(f.worst_inversions[0].passed_over, 0);
    }

    #[test]
    fn a_pause_after_invitations_whose_offers_filled_is_wrongful() {
        let mut log = world(1);
        log.offers[0].doses = 1;
        let mut b = Builder::new(log);
        b.offer(0);
        let inv = b.wave(0, 1, &[0, 1]);
        b.answer(3, inv[1], Answer::Booked); // filled while person 0's invitation was open
        b.push(16, Event::Paused { person: 0 });
        let f = figures(&b.log);
        assert_eq!(f.totals.pauses, 1);
        assert_eq!(f.totals.wrongful_pauses, 1);
    }

    #[test]
    fn a_pause_after_plain_silence_is_not_wrongful() {
        let mut b = Builder::new(world(2));
        b.offer(0);
        let inv = b.wave(0, 1, &[0, 1]);
        b.answer(3, inv[1], Answer::Booked);
        b.push(16, Event::Paused { person: 0 });
        let f = figures(&b.log);
        assert_eq!((f.totals.pauses, f.totals.wrongful_pauses), (1, 0));
    }

    #[test]
    fn a_pause_after_three_real_silences_is_not_wrongful_with_a_filled_offer_among_them() {
        let mut log = world(1);
        for _ in 0..3 {
            let mut other = log.offers[0].clone();
            other.doses = 5;
            log.offers.push(other);
        }
        let mut b = Builder::new(log);
        for offer in 0..4 {
            b.offer(offer);
        }
        let filled = b.wave(0, 1, &[0, 1]);
        b.answer(3, filled[1], Answer::Booked);
        for (offer, minute) in [(1, 20), (2, 40), (3, 60)] {
            b.wave(offer, minute, &[0]);
        }
        b.push(100, Event::Paused { person: 0 });
        let f = figures(&b.log);
        assert_eq!((f.totals.pauses, f.totals.wrongful_pauses), (1, 0));
    }

    #[test]
    fn unplaced_doses_count_as_wasted_while_willing_only_if_someone_was_left_uninvited() {
        let mut b = Builder::new(world(3));
        b.offer(0);
        let inv = b.wave(0, 1, &[0]);
        b.answer(3, inv[0], Answer::Booked);
        b.push(4, Event::Tick);
        // One step is not yet a miss: the matcher may not have run since they became free.
        assert_eq!(figures(&b.log).totals.wasted_while_willing, 0);
        b.push(5, Event::Tick);
        let f = figures(&b.log);
        assert_eq!(
            (f.totals.offered, f.totals.placed, f.totals.wasted),
            (3, 1, 2)
        );
        assert_eq!(f.totals.wasted_while_willing, 2);

        // Everyone invited: nothing more the matcher could have done.
        let mut b = Builder::new(world(3));
        b.offer(0);
        let inv = b.wave(0, 1, &[0, 1, 2]);
        b.answer(3, inv[0], Answer::Booked);
        b.push(4, Event::Tick);
        b.push(5, Event::Tick);
        let f = figures(&b.log);
        assert_eq!((f.totals.wasted, f.totals.wasted_while_willing), (2, 0));
    }

    #[test]
    fn a_cancelled_offer_is_withdrawn_not_wasted_and_its_bookings_not_placed() {
        let mut b = Builder::new(world(2));
        b.offer(0);
        let inv = b.wave(0, 1, &[0]);
        b.answer(3, inv[0], Answer::Booked);
        b.push(30, Event::OfferCancelled { offer: 0 });
        let f = figures(&b.log);
        assert_eq!(
            (
                f.totals.offered,
                f.totals.placed,
                f.totals.wasted,
                f.totals.withdrawn
            ),
            (2, 0, 0, 2)
        );
    }

    #[test]
    fn a_person_marked_no_show_holds_no_live_booking_any_more() {
        let mut log = world(1);
        log.offers.push(log.offers[0].clone());
        log.offers[1].posted_at = at(60);
        let mut b = Builder::new(log);
        b.offer(0);
        let first = b.wave(0, 1, &[0]);
        b.answer(2, first[0], Answer::Booked);
        b.push(
            119,
            Event::NoShow {
                invitation: first[0],
            },
        );
        b.offer(1);
        let inv = b.wave(1, 125, &[2]);
        b.answer(126, inv[0], Answer::Booked);
        let f = figures(&b.log);
        assert_eq!(f.totals.no_shows, 1);
        assert_eq!(f.totals.placed, 2);
        // Person 0 (free again) and person 1 waited longer than person 2.
        assert_eq!(f.totals.inversions, 1);
        assert_eq!(f.worst_inversions[0].passed_over, 0);
    }

    #[test]
    fn time_to_fill_runs_from_posting_to_the_last_placed_dose() {
        let mut b = Builder::new(world(2));
        b.offer(0);
        let inv = b.wave(0, 1, &[0, 1]);
        b.answer(4, inv[0], Answer::Booked);
        b.answer(9, inv[1], Answer::Booked);
        let f = figures(&b.log);
        assert_eq!(f.totals.time_to_fill_p50_minutes, Some(9.0));
        assert_eq!(f.totals.offers_filled, 1);
        assert_eq!(f.totals.invitations_per_placed_dose, Some(1.0));
    }
}
