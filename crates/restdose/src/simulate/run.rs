//! The time-stepped driver. Everything that changes state goes through the real use cases
//! (`Services` methods), as the web pages and workers would call them; the store is read only
//! to learn the practices' ids. Each step of `tick_minutes`:
//!
//! 1. what is due within the step happens at its own time, in time order: sign-ups, offers
//!    posted, answers to invitations (claim or decline), cancellations by people and practices;
//! 2. at the end of the step the matcher runs until idle (expiry, then waves until none is due)
//!    and the outbox is delivered until nothing is due;
//! 3. the simulated people read what arrived: they confirm sign-ups at once, and decide when
//!    and how to answer each invitation.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use restdose_core::offers::{NumberInput, OfferInput, TimeInput};
use restdose_core::{
    Decision, PracticeSignUp, Principal, RadiusInput, ServiceError, Services, SignUpRequest,
    matcher::WaveOutcome,
};
use restdose_domain::{Clock, Email, Lang, ManualClock, Postcode, RadiusKm};
use restdose_store::{ClaimOutcome, PracticeStatus};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

use super::log::{Answer, Entry, Event, InvitationInfo, Log, MailKind, OfferInfo, PersonInfo};
use super::mailbox::{Received, RecordingMailer};
use super::population::Population;
use super::rng::{Rng, tag};
use super::scenario::Scenario;

#[derive(Debug, Clone)]
enum Action {
    SignUp(usize),
    PostOffer(usize),
    CancelOffer(usize),
    Answer {
        invitation: usize,
        token: String,
        decline: bool,
    },
    CancelBooking {
        invitation: usize,
        token: String,
    },
    /// Near the end of the window the practice checks the person in or marks a no-show.
    Attend {
        invitation: usize,
        token: String,
        no_show: bool,
    },
}

/// What a run hands to the report besides its log.
pub struct RunResult {
    pub log: Log,
    /// Mails still waiting in the outbox at the end (e.g. retries to dead addresses).
    pub outbox_left: u64,
}

struct Driver<'a> {
    scenario: &'a Scenario,
    seed: u64,
    services: &'a Services,
    clock: &'a ManualClock,
    mailer: &'a RecordingMailer,
    population: &'a Population,
    log: Log,
    seq: u64,
    queue: BTreeMap<(DateTime<Utc>, u64), Action>,
    queued: u64,
    person_by_email: HashMap<String, usize>,
    people_by_postcode: HashMap<String, Vec<usize>>,
    confirmed: Vec<bool>,
    paused: Vec<bool>,
    principals: Vec<Principal>,
    offer_ids: Vec<Option<Uuid>>,
    offer_by_id: HashMap<Uuid, usize>,
    /// (offer, wave number) → index of its `Wave` entry.
    waves: HashMap<(usize, i32), usize>,
    seen_invitations: HashSet<String>,
}

impl Driver<'_> {
    fn push(&mut self, event: Event) -> usize {
        self.seq += 1;
        self.log.entries.push(Entry {
            seq: self.seq,
            at: self.clock.now(),
            event,
        });
        self.log.entries.len() - 1
    }

    fn schedule(&mut self, at: DateTime<Utc>, action: Action) {
        self.queued += 1;
        self.queue.insert((at, self.queued), action);
    }

    /// Sets up the practices: sign-up, address verification, approval by the operator.
    async fn practices(&mut self) -> anyhow::Result<()> {
        let s = self.services;
        for p in &self.population.practices {
            s.sign_up_practice(
                &PracticeSignUp {
                    name: p.name.clone(),
                    street: "Hauptstraße 1".into(),
                    postcode: p.postcode.clone(),
                    city: "Simstadt".into(),
                    phone: "030 1234567".into(),
                    email: p.email.clone(),
                    password: "simulated practice passphrase".into(),
                },
                Lang::En,
                None,
            )
            .await
            .context("practice sign-up failed")?;
        }
        self.deliver().await?;
        for mail in self.mailer.take() {
            if let Some(token) = mail.link("/portal/verify/") {
                s.verify_practice_email(&token)
                    .await
                    .context("practice verification failed")?;
            }
        }
        let by_email: HashMap<String, Uuid> = s
            .store
            .practices(None)
            .await?
            .into_iter()
            .map(|p| (p.email, p.id))
            .collect();
        for p in &self.population.practices {
            let id = *by_email
                .get(&p.email)
                .with_context(|| format!("practice {} was not stored", p.email))?;
            s.decide_practice_as_operator(id, Decision::Approve)
                .await
                .context("approving a practice failed")?;
            // What the practice's session resolves to after logging in.
            self.principals.push(Principal::Practice {
                id,
                status: PracticeStatus::Approved,
            });
        }
        self.deliver().await?;
        self.mailer.take();
        Ok(())
    }

    async fn deliver(&self) -> anyhow::Result<()> {
        loop {
            let r = self.services.deliver_outbox_once().await?;
            if r.sent + r.failed == 0 {
                return Ok(());
            }
        }
    }

    async fn sign_up(&mut self, person: usize) -> anyhow::Result<()> {
        let p = &self.population.people[person];
        let request = SignUpRequest {
            email: Email::parse(&p.email).map_err(|e| anyhow::anyhow!("bad address: {e:?}"))?,
            postcode: Postcode::from_trusted(p.postcode.clone()),
            radius: RadiusKm::new(i64::from(p.radius_km))
                .map_err(|_| anyhow::anyhow!("bad radius {}", p.radius_km))?,
            lang: Lang::En,
        };
        self.services.sign_up(request, None).await?;
        Ok(())
    }

    async fn post_offer(&mut self, offer: usize) -> anyhow::Result<()> {
        let o = &self.population.offers[offer];
        let starts = o.starts_at.to_rfc3339();
        let ends = o.ends_at.to_rfc3339();
        let input = OfferInput {
            vaccine: self
                .services
                .policy
                .vaccines
                .first()
                .map(String::as_str)
                .unwrap_or("Influenza"),
            doses: NumberInput::Number(i64::from(o.doses)),
            starts_at: TimeInput::Rfc3339(&starts),
            ends_at: TimeInput::Rfc3339(&ends),
            claim_minutes: NumberInput::Number(o.claim_minutes),
            radius_km: RadiusInput::Number(i64::from(o.radius_km)),
            note: "",
        };
        let principal = self.principals[o.practice].clone();
        let stored = match self.services.post_offer(&principal, &input).await {
            Ok(stored) => stored,
            Err(ServiceError::Validation(errors)) => {
                anyhow::bail!("offer {offer} refused: {errors:?}")
            }
            Err(e) => return Err(e.into()),
        };
        let postcode = self.population.practices[o.practice].postcode.clone();
        let mut reach = Vec::new();
        for (code, d) in self
            .services
            .neighbours
            .within(&postcode, f64::from(o.radius_km))
        {
            for &q in self.people_by_postcode.get(code).into_iter().flatten() {
                if f64::from(self.population.people[q].radius_km) >= f64::from(d) {
                    reach.push((q, d));
                }
            }
        }
        reach.sort_by_key(|(q, _)| *q);
        debug_assert_eq!(self.log.offers.len(), offer);
        self.log.offers.push(OfferInfo {
            posted_at: stored.created_at,
            starts_at: o.starts_at,
            ends_at: o.ends_at,
            doses: o.doses,
            claim_minutes: o.claim_minutes,
            radius_km: o.radius_km,
            postcode,
            reach,
        });
        self.offer_ids[offer] = Some(stored.id);
        self.offer_by_id.insert(stored.id, offer);
        self.push(Event::OfferPosted { offer });
        if let Some(at) = o.cancelled_at {
            self.schedule(at, Action::CancelOffer(offer));
        }
        Ok(())
    }

    async fn act(&mut self, action: Action) -> anyhow::Result<()> {
        let s = self.services;
        match action {
            Action::SignUp(person) => self.sign_up(person).await?,
            Action::PostOffer(offer) => self.post_offer(offer).await?,
            Action::CancelOffer(offer) => {
                let (Some(id), Some(practice)) = (
                    self.offer_ids[offer],
                    self.population.offers.get(offer).map(|o| o.practice),
                ) else {
                    return Ok(());
                };
                match s.cancel_offer(&self.principals[practice], id).await {
                    Ok(_) => {
                        self.push(Event::OfferCancelled { offer });
                    }
                    Err(ServiceError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Action::Answer {
                invitation,
                token,
                decline,
            } => {
                let answer = if decline {
                    match s.decline(&token).await {
                        Ok(true) => Answer::Declined,
                        Ok(false) | Err(ServiceError::InvalidLink) => Answer::Late,
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    match s.claim(&token).await {
                        Ok((ClaimOutcome::Booked, booking)) => {
                            self.booked(invitation, booking.map(|b| b.expose().to_owned()));
                            return Ok(());
                        }
                        Ok((ClaimOutcome::AllTaken, _)) => Answer::Missed,
                        Ok((ClaimOutcome::AlreadyBooked, _)) => Answer::AlreadyBooked,
                        Ok(_) | Err(ServiceError::InvalidLink) => Answer::Late,
                        Err(e) => return Err(e.into()),
                    }
                };
                self.push(Event::Answered {
                    invitation,
                    answer,
                    no_show: false,
                });
            }
            Action::CancelBooking { invitation, token } => {
                if s.cancel_booking(&token).await? {
                    self.push(Event::BookingCancelled { invitation });
                }
            }
            Action::Attend {
                invitation,
                token,
                no_show,
            } => {
                let view = match s.booking_view(&token).await {
                    Ok(view) => view,
                    Err(ServiceError::InvalidLink) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                if view.booking.status != restdose_store::BookingStatus::Booked {
                    return Ok(());
                }
                let offer = self.log.invitations[invitation].offer;
                let principal = self.principals[self.population.offers[offer].practice].clone();
                if no_show {
                    if s.mark_no_show(&principal, view.offer.id, view.code.as_str())
                        .await?
                    {
                        self.push(Event::NoShow { invitation });
                    }
                } else {
                    s.check_in(&principal, view.offer.id, view.code.as_str())
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A claim got a dose: will the person come, and will they cancel?
    fn booked(&mut self, invitation: usize, booking_token: Option<String>) {
        let info = &self.log.invitations[invitation];
        let (person, offer) = (info.person, info.offer);
        let mut rng = Rng::derive(self.seed, &[tag("booking"), person as u64, offer as u64]);
        let c = &self.scenario.cancellations;
        let no_show = rng.chance(self.scenario.behaviour.no_show_share);
        let cancels = rng.chance(c.booking_share);
        let delay = c.booking_delay.draw(&mut rng);
        self.push(Event::Answered {
            invitation,
            answer: Answer::Booked,
            no_show,
        });
        let now = self.clock.now();
        let at = now + minutes(delay);
        let ends_at = self.log.offers[offer].ends_at;
        let Some(token) = booking_token else {
            return;
        };
        if cancels && at < ends_at {
            self.schedule(
                at,
                Action::CancelBooking {
                    invitation,
                    token: token.clone(),
                },
            );
        }
        self.schedule(
            (ends_at - Duration::minutes(1)).max(now),
            Action::Attend {
                invitation,
                token,
                no_show,
            },
        );
    }

    /// The matcher and the mail delivery, until idle; then the people read their mail.
    async fn service_step(&mut self) -> anyhow::Result<()> {
        let s = self.services;
        self.seq += 1;
        let expiry_seq = self.seq;
        loop {
            let r = s.expire_invitations_once().await?;
            if r.expired < 500 {
                break;
            }
        }
        while let Some(outcome) = s.run_wave_once().await? {
            if let WaveOutcome::Invited {
                offer_id,
                wave,
                invited,
                last_call,
                overbooking,
            } = outcome
                && let Some(&offer) = self.offer_by_id.get(&offer_id)
            {
                let entry = self.push(Event::Wave {
                    offer,
                    invited,
                    overbooking,
                    last_call,
                    invitations: Vec::new(),
                });
                self.waves.insert((offer, wave), entry);
            }
        }
        self.deliver().await?;
        self.read_mail(expiry_seq).await
    }

    async fn read_mail(&mut self, expiry_seq: u64) -> anyhow::Result<()> {
        let mut mails: Vec<(usize, MailKind, Received)> = self
            .mailer
            .take()
            .into_iter()
            .filter_map(|m| {
                let person = *self.person_by_email.get(&m.to)?;
                Some((person, m.kind(), m))
            })
            .collect();
        // Delivery runs in parallel: read in a fixed order.
        mails.sort_by(|a, b| (a.0, a.1, &a.2.text).cmp(&(b.0, b.1, &b.2.text)));
        let now = self.clock.now();
        for (person, kind, mail) in mails {
            self.push(Event::Mail {
                person,
                kind,
                bounced: mail.bounced,
            });
            match kind {
                MailKind::SignUpConfirmation if !mail.bounced && !self.confirmed[person] => {
                    let Some(token) = mail.link("/confirm/") else {
                        continue;
                    };
                    self.services.confirm(&token).await?;
                    self.confirmed[person] = true;
                    self.push(Event::Confirmed { person });
                    if self.population.people[person].dead {
                        self.mailer.kill(&self.population.people[person].email);
                    }
                }
                MailKind::Invitation => {
                    let Some(token) = mail.link("/invitations/") else {
                        continue;
                    };
                    if !self.seen_invitations.insert(token.clone()) {
                        continue;
                    }
                    self.invitation(person, token, mail.bounced, now).await?;
                }
                MailKind::Paused if !self.paused[person] => {
                    self.paused[person] = true;
                    self.log.entries.push(Entry {
                        seq: expiry_seq,
                        at: now,
                        event: Event::Paused { person },
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn invitation(
        &mut self,
        person: usize,
        token: String,
        bounced: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // The invitation page: which offer, and until when.
        let view = self.services.invitation_view(&token).await?;
        let Some(&offer) = self.offer_by_id.get(&view.offer.id) else {
            return Ok(());
        };
        self.log.invitations.push(InvitationInfo {
            person,
            offer,
            created_at: view.invitation.created_at,
            expires_at: view.invitation.expires_at,
        });
        let id = self.log.invitations.len() - 1;
        let entry = match self.waves.get(&(offer, view.invitation.wave)) {
            Some(&entry) => entry,
            None => {
                let entry = self.push(Event::Wave {
                    offer,
                    invited: 0,
                    overbooking: 0.0,
                    last_call: view.invitation.last_call,
                    invitations: Vec::new(),
                });
                self.waves.insert((offer, view.invitation.wave), entry);
                entry
            }
        };
        if let Event::Wave { invitations, .. } = &mut self.log.entries[entry].event {
            invitations.push(id);
        }
        if bounced || !self.population.people[person].willing {
            return Ok(());
        }
        let mut rng = Rng::derive(self.seed, &[tag("answer"), person as u64, offer as u64]);
        let delay = self.scenario.behaviour.answer_delay.draw(&mut rng);
        let decline = rng.chance(self.scenario.behaviour.decline_share);
        self.schedule(
            now + minutes(delay),
            Action::Answer {
                invitation: id,
                token,
                decline,
            },
        );
        Ok(())
    }
}

fn minutes(m: f64) -> Duration {
    Duration::milliseconds((m.max(0.0) * 60_000.0).round() as i64)
}

/// Runs the scenario on `services` (whose clock is `clock` and mailer `mailer`).
pub async fn run(
    scenario: &Scenario,
    seed: u64,
    population: &Population,
    services: &Services,
    clock: &ManualClock,
    mailer: &RecordingMailer,
    daily_cap: u32,
) -> anyhow::Result<RunResult> {
    let start = scenario.start;
    let period_end = start + Duration::hours(scenario.duration.hours());
    let tick = Duration::minutes(scenario.tick_minutes);
    let people: Vec<PersonInfo> = population
        .people
        .iter()
        .map(|p| PersonInfo {
            signed_up_at: p.signs_up_at,
            postcode: p.postcode.clone(),
            radius_km: p.radius_km,
            willing: p.willing,
            dead: p.dead,
        })
        .collect();
    let mut people_by_postcode: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in population.people.iter().enumerate() {
        people_by_postcode
            .entry(p.postcode.clone())
            .or_default()
            .push(i);
    }
    let mut d = Driver {
        scenario,
        seed,
        services,
        clock,
        mailer,
        population,
        log: Log {
            start,
            period_end,
            end: period_end,
            tick,
            throttle: services.matcher.throttle,
            daily_cap,
            pause_after: u32::try_from(services.matcher.pause_after_unanswered).unwrap_or(0),
            people,
            offers: Vec::new(),
            invitations: Vec::new(),
            entries: Vec::new(),
        },
        seq: 0,
        queue: BTreeMap::new(),
        queued: 0,
        person_by_email: population
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.email.clone(), i))
            .collect(),
        people_by_postcode,
        confirmed: vec![false; population.people.len()],
        paused: vec![false; population.people.len()],
        principals: Vec::new(),
        offer_ids: vec![None; population.offers.len()],
        offer_by_id: HashMap::new(),
        waves: HashMap::new(),
        seen_invitations: HashSet::new(),
    };

    // Before the period: the practices, then the people already waiting, confirmed in batches
    // (within the confirmation link's lifetime).
    let earliest = population
        .people
        .first()
        .map(|p| p.signs_up_at.min(start))
        .unwrap_or(start);
    clock.set(earliest - Duration::hours(1));
    d.practices().await?;
    let mut batch_started: Option<DateTime<Utc>> = None;
    let mut batch = 0;
    for (i, p) in population.people.iter().enumerate() {
        if p.signs_up_at >= start {
            d.schedule(p.signs_up_at, Action::SignUp(i));
            continue;
        }
        if batch_started.is_some_and(|b| p.signs_up_at - b > Duration::hours(1)) || batch >= 200 {
            d.service_step().await?;
            batch_started = None;
            batch = 0;
        }
        clock.set(p.signs_up_at);
        d.sign_up(i).await?;
        batch_started.get_or_insert(p.signs_up_at);
        batch += 1;
    }
    clock.set(start);
    d.service_step().await?;
    for (i, o) in population.offers.iter().enumerate() {
        d.schedule(o.posted_at, Action::PostOffer(i));
    }

    let hard_end = period_end + Duration::hours(24);
    let mut t = start;
    let wall = std::time::Instant::now();
    loop {
        let next = t + tick;
        while let Some(entry) = d.queue.first_entry() {
            if entry.key().0 > next {
                break;
            }
            let ((at, _), action) = entry.remove_entry();
            clock.set(at.max(t));
            d.act(action).await?;
        }
        clock.set(next);
        d.service_step().await?;
        d.push(Event::Tick);
        t = next;
        if (t - start).num_minutes() % 60 == 0 {
            tracing::debug!(hour = (t - start).num_hours(), elapsed = ?wall.elapsed(), "simulated hour");
        }
        let offers_running =
            d.offer_ids.iter().any(Option::is_none) || d.log.offers.iter().any(|o| o.ends_at > t);
        if t >= hard_end || (t >= period_end && !offers_running) {
            break;
        }
    }
    d.log.end = t;
    let (outbox_left, _) = services.store.outbox_depth().await?;
    Ok(RunResult {
        log: d.log,
        outbox_left,
    })
}
