//! Conformance cases for the matcher and the mail outbox (`MatcherStore`): waves, candidates,
//! leases of due offers, claims (also racing ones), declines, expiry, pausing after silence,
//! cancelling through the booking link, and the outbox.
//!
//! Some methods work on the whole database rather than on rows a case names:
//! `lease_due_offer`, `expire_invitations`, `lease_outbox` and `outbox_depth`. The cases that
//! call the first two use their own era (years away from [`t0`]), so other cases' rows are never
//! due for them. The outbox is one queue: cases look at their mails through [`stored_mails`],
//! which leases every row up to [`far`] and filters by id, and the outbox case itself expects
//! the queue to be its own (the harness gives every case a fresh database).

use chrono::{DateTime, Duration, TimeZone, Utc};
use restdose_domain::Postcode;
use std::collections::HashSet;
use uuid::Uuid;

use super::offers::{book, booking_code, get_offer, new_offer, practice};
use super::{
    assert_conflict, insert_active_person, insert_person, join_all, minutes, ms, person,
    random_bytes, t0, token, warm_up,
};
use crate::{
    Acceptance, AnswerCounts, BookingRecord, BookingStatus, Candidate, CandidateQuery,
    CheckInOutcome, ClaimOutcome, ExpiredInvitation, Invitation, InvitationStatus, MatcherStore,
    NewClaim, NewInvitation, NewOffer, NewWave, OfferCancellation, OfferProgress, OfferStatus,
    OutboxRow, RegistrantStatus, Store, TokenPurpose,
};

/// What the matcher cases need: the whole store. (Until `MatcherStore` is a supertrait of
/// `Store`; then this is every `Store`.)
pub trait MatcherCaseStore: Store + MatcherStore {}

impl<T: Store + MatcherStore + ?Sized> MatcherCaseStore for T {}

// --- fixtures ---------------------------------------------------------------------------------

/// Later than any time a case uses: leasing every mail up to here shows all of them.
pub(super) fn far() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).unwrap()
}

/// A mail due at `at`, about nobody in particular.
pub(super) fn mail(at: DateTime<Utc>) -> OutboxRow {
    OutboxRow {
        id: Uuid::new_v4(),
        key_id: 1,
        payload: random_bytes(64),
        created_at: at,
        attempts: 0,
        next_attempt_at: at,
        registrant_id: None,
        offer_id: None,
    }
}

/// A mail due at `at` about a person and/or an offer.
pub(super) fn mail_about(
    at: DateTime<Utc>,
    registrant_id: Option<Uuid>,
    offer_id: Option<Uuid>,
) -> OutboxRow {
    OutboxRow {
        registrant_id,
        offer_id,
        ..mail(at)
    }
}

pub(super) fn invitation(
    registrant_id: Uuid,
    distance_km: f32,
    expires_at: DateTime<Utc>,
) -> NewInvitation {
    NewInvitation {
        id: Uuid::new_v4(),
        registrant_id,
        token_hash: random_bytes(32),
        distance_km,
        expires_at,
    }
}

pub(super) fn wave(
    offer_id: Uuid,
    number: i32,
    at: DateTime<Utc>,
    invitations: &[NewInvitation],
) -> NewWave {
    NewWave {
        offer_id,
        wave: number,
        last_call: false,
        created_at: at,
        next_wave_at: at + minutes(30),
        claimed_seen: 0,
        invitations: invitations
            .iter()
            .map(|i| {
                let about = mail_about(at, Some(i.registrant_id), Some(offer_id));
                (i.clone(), about)
            })
            .collect(),
    }
}

async fn progress(store: &dyn MatcherCaseStore, offer_id: Uuid) -> OfferProgress {
    store
        .offer_progress(offer_id)
        .await
        .expect("offer_progress failed")
        .unwrap_or_else(|| panic!("offer {offer_id} has no progress"))
}

/// Invites `people` to the offer in its next wave at `at`, each until `expires_at`; all must
/// be written.
async fn invite_until(
    store: &dyn MatcherCaseStore,
    offer_id: Uuid,
    people: &[Uuid],
    at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Vec<NewInvitation> {
    let next = progress(store, offer_id).await.waves + 1;
    let invitations: Vec<NewInvitation> = people
        .iter()
        .map(|p| invitation(*p, 1.5, expires_at))
        .collect();
    let written = store
        .record_wave(&wave(offer_id, next, at, &invitations))
        .await
        .expect("record_wave failed");
    assert_eq!(
        written as usize,
        people.len(),
        "record_wave wrote {written} of {} invitations",
        people.len()
    );
    invitations
}

/// Invites `people` at `at` for 30 minutes.
async fn invite(
    store: &dyn MatcherCaseStore,
    offer_id: Uuid,
    people: &[Uuid],
    at: DateTime<Utc>,
) -> Vec<NewInvitation> {
    invite_until(store, offer_id, people, at, at + minutes(30)).await
}

async fn invitation_of(store: &dyn MatcherCaseStore, new: &NewInvitation) -> Invitation {
    store
        .invitation_by_token(&new.token_hash)
        .await
        .expect("invitation_by_token failed")
        .unwrap_or_else(|| panic!("invitation {} not found", new.id))
}

pub(super) fn new_claim(invitation: &NewInvitation, now: DateTime<Utc>) -> NewClaim {
    NewClaim {
        invitation_token_hash: invitation.token_hash.clone(),
        now,
        booking_id: Uuid::new_v4(),
        code: booking_code(),
        booking_token_hash: random_bytes(32),
        confirmation: mail_about(now, Some(invitation.registrant_id), None),
    }
}

async fn claim(store: &dyn MatcherCaseStore, claim: &NewClaim) -> ClaimOutcome {
    store.claim(claim).await.expect("claim failed")
}

/// Every mail in the outbox (leased up to [`far`], so this never hides rows from itself).
pub(super) async fn stored_mails(store: &dyn Store) -> Vec<OutboxRow> {
    store
        .lease_outbox(far(), far(), 1_000_000)
        .await
        .expect("lease_outbox failed")
}

/// Which of `mails` are in the outbox, compared in full.
pub(super) async fn stored_of(store: &dyn Store, mails: &[&OutboxRow]) -> Vec<OutboxRow> {
    let all = stored_mails(store).await;
    mails
        .iter()
        .filter_map(|m| all.iter().find(|row| row.id == m.id).cloned())
        .collect()
}

pub(super) async fn is_stored(store: &dyn Store, mail: &OutboxRow) -> bool {
    match stored_of(store, &[mail]).await.as_slice() {
        [] => false,
        [row] => {
            assert_eq!(row, mail, "the stored mail differs from the one given");
            true
        }
        _ => unreachable!(),
    }
}

/// A confirmed person waiting at `postcode` within `radius_km`, in line since `created_at`.
async fn waiting_at(
    store: &dyn MatcherCaseStore,
    postcode: &str,
    radius_km: u16,
    created_at: DateTime<Utc>,
) -> Uuid {
    let mut new = person(created_at);
    new.postcode = Postcode::from_trusted(postcode.to_owned());
    new.radius_km = radius_km;
    let confirm = token(
        new.id,
        TokenPurpose::Confirm,
        created_at,
        Duration::hours(48),
    );
    store
        .insert_registrant(&new, std::slice::from_ref(&confirm))
        .await
        .expect("insert_registrant failed");
    store
        .confirm_registrant(&confirm.hash, created_at)
        .await
        .expect("confirm_registrant failed")
        .expect("fresh confirmation token must confirm");
    new.id
}

/// A confirmed person (postcode 10115).
async fn waiting(store: &dyn MatcherCaseStore) -> Uuid {
    insert_active_person(store, t0(), t0()).await.0.id
}

/// A postcode no other case uses.
fn unique_postcode() -> String {
    format!("P{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// An open offer of `doses` by a new approved practice, created at `at` (ends 3 h later).
async fn offer_at(store: &dyn MatcherCaseStore, doses: i32, at: DateTime<Utc>) -> NewOffer {
    let rows = practice(store).await;
    let mut offer = new_offer(rows.account.id, at);
    offer.doses = doses;
    store
        .insert_offer(&offer)
        .await
        .expect("insert_offer failed");
    offer
}

async fn offer(store: &dyn MatcherCaseStore, doses: i32) -> NewOffer {
    offer_at(store, doses, t0()).await
}

fn query(
    offer_id: Uuid,
    postcodes: &[(&str, f32)],
    invited_before: DateTime<Utc>,
) -> CandidateQuery {
    CandidateQuery {
        offer_id,
        postcodes: postcodes
            .iter()
            .map(|(p, d)| ((*p).to_owned(), *d))
            .collect(),
        invited_before,
        counted_since: invited_before,
        max_invitations_since: 1000,
        limit: 100,
    }
}

async fn candidate_ids(store: &dyn MatcherCaseStore, query: &CandidateQuery) -> Vec<Uuid> {
    store
        .candidates(query)
        .await
        .expect("candidates failed")
        .into_iter()
        .map(|c| c.registrant_id)
        .collect()
}

// --- waves ------------------------------------------------------------------------------------

pub async fn wave_is_recorded_with_its_mails_and_totals(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let (a, b, c) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    assert_eq!(
        progress(store, offer.id).await,
        OfferProgress {
            claimed: 0,
            invited: 0,
            waves: 0,
            next_wave_at: None,
            last_call_sent: false,
        }
    );
    assert_eq!(store.offer_progress(Uuid::new_v4()).await.unwrap(), None);

    let at = t0() + minutes(1) + ms(7);
    let inv_a = invitation(a, 2.5, at + minutes(30));
    let inv_b = invitation(b, 0.0, at + minutes(30) + ms(1));
    let first = wave(offer.id, 1, at, &[inv_a.clone(), inv_b.clone()]);
    assert_eq!(store.record_wave(&first).await.unwrap(), 2);

    assert_eq!(
        progress(store, offer.id).await,
        OfferProgress {
            claimed: 0,
            invited: 2,
            waves: 1,
            next_wave_at: Some(first.next_wave_at),
            last_call_sent: false,
        }
    );
    assert_eq!(
        invitation_of(store, &inv_a).await,
        Invitation {
            id: inv_a.id,
            offer_id: offer.id,
            registrant_id: a,
            wave: 1,
            last_call: false,
            distance_km: 2.5,
            status: InvitationStatus::Open,
            created_at: at,
            expires_at: inv_a.expires_at,
            answered_at: None,
        }
    );
    assert_eq!(
        invitation_of(store, &inv_b).await.expires_at,
        inv_b.expires_at
    );
    assert_eq!(
        store.invitation_by_token(&random_bytes(32)).await.unwrap(),
        None
    );
    let mails: Vec<&OutboxRow> = first.invitations.iter().map(|(_, m)| m).collect();
    assert_eq!(
        stored_of(store, &mails).await,
        mails.iter().map(|m| (*m).clone()).collect::<Vec<_>>(),
        "every invitation's mail is stored with it"
    );

    // A second worker recording wave 1 again finds the offer moved on: nothing is written.
    let inv_c = invitation(c, 1.0, at + minutes(30));
    let again = wave(offer.id, 1, at + ms(1), std::slice::from_ref(&inv_c));
    assert_eq!(store.record_wave(&again).await.unwrap(), 0);
    assert_eq!(
        store.invitation_by_token(&inv_c.token_hash).await.unwrap(),
        None
    );
    assert!(!is_stored(store, &again.invitations[0].1).await);
    // Nor can a wave number be skipped.
    let skipping = wave(offer.id, 3, at + ms(1), std::slice::from_ref(&inv_c));
    assert_eq!(store.record_wave(&skipping).await.unwrap(), 0);
    assert_eq!(progress(store, offer.id).await.waves, 1);
    assert_eq!(progress(store, offer.id).await.invited, 2);

    // The last call is remembered by later waves.
    let t2 = at + minutes(30);
    let mut second = wave(offer.id, 2, t2, std::slice::from_ref(&inv_c));
    second.last_call = true;
    assert_eq!(store.record_wave(&second).await.unwrap(), 1);
    let invited_c = invitation_of(store, &inv_c).await;
    assert_eq!((invited_c.wave, invited_c.last_call), (2, true));
    assert_eq!(invited_c.created_at, t2);
    let empty = wave(offer.id, 3, t2 + minutes(5), &[]);
    assert_eq!(store.record_wave(&empty).await.unwrap(), 0);
    assert_eq!(
        progress(store, offer.id).await,
        OfferProgress {
            claimed: 0,
            invited: 3,
            waves: 3,
            next_wave_at: Some(empty.next_wave_at),
            last_call_sent: true,
        }
    );

    // No waves on an offer that is no longer open.
    assert!(
        store
            .finish_offer(offer.id, OfferStatus::Closed, t2 + minutes(6))
            .await
            .unwrap()
    );
    let d = waiting(store).await;
    let late = wave(
        offer.id,
        4,
        t2 + minutes(7),
        &[invitation(d, 1.0, t2 + minutes(40))],
    );
    assert_eq!(store.record_wave(&late).await.unwrap(), 0);
    assert_eq!(progress(store, offer.id).await.waves, 3);
    assert!(!is_stored(store, &late.invitations[0].1).await);
}

/// A person holds one open invitation at a time and is invited to an offer at most once;
/// whoever is skipped is skipped with their mail.
pub async fn wave_skips_people_already_invited_and_their_mails(store: &dyn MatcherCaseStore) {
    let x = offer(store, 3).await;
    let y = offer(store, 3).await;
    let (p, q, r) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = t0() + minutes(1);
    let on_x = invite(store, x.id, &[p], t1).await;

    // p holds the invitation to X: only q is invited to Y.
    let inv_p = invitation(p, 1.0, t1 + minutes(31));
    let inv_q = invitation(q, 1.0, t1 + minutes(31));
    let first = wave(y.id, 1, t1 + ms(1), &[inv_p.clone(), inv_q.clone()]);
    assert_eq!(store.record_wave(&first).await.unwrap(), 1);
    assert_eq!(
        store.invitation_by_token(&inv_p.token_hash).await.unwrap(),
        None
    );
    assert_eq!(invitation_of(store, &inv_q).await.registrant_id, q);
    assert!(!is_stored(store, &first.invitations[0].1).await, "p's mail");
    assert!(is_stored(store, &first.invitations[1].1).await, "q's mail");
    assert_eq!(progress(store, y.id).await.invited, 1);
    assert_eq!(progress(store, y.id).await.waves, 1);
    assert_eq!(
        progress(store, y.id).await.next_wave_at,
        Some(first.next_wave_at)
    );

    // Once p has answered X, p may be invited to Y; q, invited to Y before, may not again, not
    // even after answering; the same person twice in one wave is invited once.
    let t2 = t1 + minutes(2);
    assert!(store.decline(&on_x[0].token_hash, t2).await.unwrap());
    assert!(store.decline(&inv_q.token_hash, t2).await.unwrap());
    let inv_p2 = invitation(p, 1.0, t2 + minutes(30));
    let inv_p3 = invitation(p, 1.0, t2 + minutes(30));
    let inv_q2 = invitation(q, 1.0, t2 + minutes(30));
    let second = wave(y.id, 2, t2, &[inv_q2.clone(), inv_p2, inv_p3]);
    assert_eq!(store.record_wave(&second).await.unwrap(), 1);
    assert_eq!(
        store.invitation_by_token(&inv_q2.token_hash).await.unwrap(),
        None
    );
    assert!(
        !is_stored(store, &second.invitations[0].1).await,
        "q's second mail"
    );
    let stored = stored_of(store, &[&second.invitations[1].1, &second.invitations[2].1]).await;
    assert_eq!(stored.len(), 1, "p is invited (and mailed) once");
    assert_eq!(progress(store, y.id).await.invited, 2);

    // People who paused (or left) meanwhile are skipped as well.
    store.set_paused(r, true, t2).await.unwrap();
    let inv_r = invitation(r, 1.0, t2 + minutes(30));
    let third = wave(y.id, 3, t2 + ms(1), std::slice::from_ref(&inv_r));
    assert_eq!(store.record_wave(&third).await.unwrap(), 0);
    assert_eq!(
        store.invitation_by_token(&inv_r.token_hash).await.unwrap(),
        None
    );
    assert!(!is_stored(store, &third.invitations[0].1).await);
    assert_eq!(progress(store, y.id).await.waves, 3);
    // A wave that placed nobody leaves the offer due, not waiting for a claim window.
    assert_eq!(
        progress(store, y.id).await.next_wave_at,
        Some(third.created_at)
    );
}

// --- candidates -------------------------------------------------------------------------------

pub async fn candidates_come_in_line_order_within_reach_up_to_the_limit(
    store: &dyn MatcherCaseStore,
) {
    let target = offer(store, 3).await;
    let (near, far, elsewhere) = (unique_postcode(), unique_postcode(), unique_postcode());
    // Created out of order on purpose.
    let p4 = waiting_at(store, &near, 10, t0() + ms(3)).await;
    let p1 = waiting_at(store, &near, 10, t0() + ms(1)).await;
    let p2 = waiting_at(store, &far, 5, t0()).await;
    let too_far = waiting_at(store, &far, 4, t0() + ms(2)).await;
    let _not_asked = waiting_at(store, &elsewhere, 50, t0()).await;
    let tie_a = waiting_at(store, &near, 10, t0() + ms(4)).await;
    let tie_b = waiting_at(store, &near, 10, t0() + ms(4)).await;
    let (tie_first, tie_second) = if tie_a < tie_b {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };

    let mut q = query(target.id, &[(&near, 0.0), (&far, 5.0)], t0());
    let found = store.candidates(&q).await.unwrap();
    assert_eq!(
        found.iter().map(|c| c.registrant_id).collect::<Vec<_>>(),
        vec![p2, p1, p4, tie_first, tie_second],
        "oldest first, ties by id; the radius must reach the distance (5 km reaches 5 km, 4 km \
         does not: {too_far})"
    );
    let oldest = get_registrant(store, p2).await;
    assert_eq!(
        found[0],
        Candidate {
            registrant_id: p2,
            postcode: Postcode::from_trusted(far.clone()),
            distance_km: 5.0,
            created_at: t0(),
            language: oldest.language,
            email: oldest.email,
        }
    );
    assert_eq!(found[1].distance_km, 0.0);
    assert_eq!(found[1].postcode.as_str(), near);

    // The limit takes the oldest across all postcodes.
    q.limit = 2;
    assert_eq!(candidate_ids(store, &q).await, vec![p2, p1]);
    q.limit = 1;
    assert_eq!(candidate_ids(store, &q).await, vec![p2]);
    q.limit = 0;
    assert_eq!(candidate_ids(store, &q).await, Vec::<Uuid>::new());

    // Nobody is listed twice, even if a postcode is.
    let twice = query(target.id, &[(&near, 3.0), (&near, 1.0)], t0());
    assert_eq!(
        candidate_ids(store, &twice).await,
        vec![p1, p4, tie_first, tie_second]
    );
    assert_eq!(
        candidate_ids(store, &query(target.id, &[], t0())).await,
        Vec::<Uuid>::new()
    );
}

async fn get_registrant(store: &dyn MatcherCaseStore, id: Uuid) -> crate::Registrant {
    store
        .registrant(id)
        .await
        .unwrap()
        .expect("registrant gone")
}

pub async fn candidates_skip_the_recently_invited_the_busy_and_those_not_waiting(
    store: &dyn MatcherCaseStore,
) {
    let target = offer(store, 3).await;
    let other = offer(store, 3).await;
    let place = unique_postcode();
    let mut at = t0();
    let mut next = || {
        at += ms(1);
        at
    };
    let free = waiting_at(store, &place, 10, next()).await;
    let recent = waiting_at(store, &place, 10, next()).await;
    let holding = waiting_at(store, &place, 10, next()).await;
    let booked = waiting_at(store, &place, 10, next()).await;
    let checked_in = waiting_at(store, &place, 10, next()).await;
    let no_show = waiting_at(store, &place, 10, next()).await;
    let cancelled = waiting_at(store, &place, 10, next()).await;
    let invited_here = waiting_at(store, &place, 10, next()).await;
    let paused = waiting_at(store, &place, 10, next()).await;
    let mut pending_person = person(next());
    pending_person.postcode = Postcode::from_trusted(place.clone());
    store.insert_registrant(&pending_person, &[]).await.unwrap();

    let t1 = t0() + minutes(10) + ms(5);
    // `recent` and `holding` are invited elsewhere; `recent` answers, `holding` does not.
    let elsewhere = invite(store, other.id, &[recent, holding], t1).await;
    assert!(
        store
            .decline(&elsewhere[0].token_hash, t1 + ms(1))
            .await
            .unwrap()
    );
    // `invited_here` was invited to this offer before and answered.
    let before = invite(store, target.id, &[invited_here], t0() + ms(100)).await;
    assert!(
        store
            .decline(&before[0].token_hash, t0() + ms(200))
            .await
            .unwrap()
    );
    // Bookings elsewhere: live ones keep people out, finished ones do not.
    let third = offer(store, 3).await;
    book(store, other.id, Some(booked), t1).await;
    let done = book(store, other.id, Some(checked_in), t1).await;
    assert_eq!(
        store.check_in(other.id, &done.code, t1).await.unwrap(),
        CheckInOutcome::CheckedIn
    );
    let missed = book(store, other.id, Some(no_show), t1).await;
    assert!(
        store
            .mark_no_show(other.id, &missed.code, t1)
            .await
            .unwrap()
    );
    book(store, third.id, Some(cancelled), t1).await;
    assert!(
        store
            .finish_offer(third.id, OfferStatus::Cancelled, t1)
            .await
            .unwrap()
    );
    store.set_paused(paused, true, t1).await.unwrap();

    // Invited at t1: out of the throttle window ending just before, in at t1 itself.
    let q = query(target.id, &[(&place, 1.0)], t1 - ms(1));
    assert_eq!(
        candidate_ids(store, &q).await,
        vec![free, no_show, cancelled]
    );
    let q = query(target.id, &[(&place, 1.0)], t1);
    assert_eq!(
        candidate_ids(store, &q).await,
        vec![free, recent, no_show, cancelled]
    );
}

// --- leases of due offers ---------------------------------------------------------------------

/// Runs ten years after [`t0`], when every other case's offers are over.
pub async fn due_offer_is_leased_to_one_worker_until_the_lease_ends(store: &dyn MatcherCaseStore) {
    let base = t0() + Duration::days(3650);
    let a = offer_at(store, 3, base).await;
    let b = offer_at(store, 3, base - minutes(1)).await;
    let closed = offer_at(store, 3, base - minutes(2)).await;
    assert!(
        store
            .finish_offer(closed.id, OfferStatus::Closed, base)
            .await
            .unwrap()
    );
    let _ended = offer_at(store, 3, base - Duration::hours(4)).await;
    let later = offer_at(store, 3, base - minutes(3)).await;
    store
        .reschedule_offer(later.id, Some(base + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(
        progress(store, later.id).await.next_wave_at,
        Some(base + Duration::hours(1))
    );
    let never = offer_at(store, 3, base - minutes(4)).await;
    store.reschedule_offer(never.id, None).await.unwrap();
    assert_eq!(progress(store, never.id).await.next_wave_at, None);
    // Oldest and due, but its practice is suspended: never leased (nobody is invited to it).
    let suspended = offer_at(store, 3, base - minutes(5)).await;
    store
        .set_practice_status(
            suspended.practice_id,
            crate::PracticeStatus::Suspended,
            base,
        )
        .await
        .unwrap();

    let lease = |now: DateTime<Utc>| async move {
        store
            .lease_due_offer(now, now + minutes(5))
            .await
            .expect("lease_due_offer failed")
            .map(|o| o.id)
    };

    // Never looked at: oldest first, each handed out once.
    let now = base + minutes(1);
    let leased = store
        .lease_due_offer(now, now + minutes(5))
        .await
        .unwrap()
        .expect("an offer is due");
    assert_eq!(
        leased,
        get_offer(store, b.id).await,
        "the full offer comes back"
    );
    assert_eq!(lease(now).await, Some(a.id));
    assert_eq!(lease(now).await, None);
    assert_eq!(
        progress(store, b.id).await.next_wave_at,
        Some(now + minutes(5))
    );

    // The lease ends by itself.
    let until = now + minutes(5);
    assert_eq!(lease(until - ms(1)).await, None);
    assert_eq!(lease(until).await, Some(b.id));
    assert_eq!(lease(until).await, Some(a.id));
    assert_eq!(lease(until).await, None);

    // Or when the wave is recorded with its next time.
    let mut wave_b = wave(b.id, 1, until + ms(1), &[]);
    wave_b.next_wave_at = base + Duration::hours(2);
    assert_eq!(store.record_wave(&wave_b).await.unwrap(), 0);
    let t = base + Duration::hours(1);
    assert_eq!(lease(t).await, Some(a.id), "a's lease ended first");
    assert_eq!(lease(t).await, Some(later.id));
    assert_eq!(lease(t).await, None);

    // Racing workers get one offer each.
    let t = base + Duration::hours(2) + minutes(1);
    warm_up(store).await;
    let results = join_all((0..8).map(|_| lease(t)).collect()).await;
    let got: Vec<Uuid> = results.into_iter().flatten().collect();
    let distinct: HashSet<Uuid> = got.iter().copied().collect();
    assert_eq!(got.len(), 3, "racing leases handed out {got:?}");
    assert_eq!(distinct, HashSet::from([a.id, b.id, later.id]));
}

// --- claims -----------------------------------------------------------------------------------

pub async fn claim_books_a_dose_once(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let p = waiting(store).await;
    let t1 = t0() + minutes(1);
    let inv = invite(store, offer.id, &[p], t1).await.remove(0);

    let t2 = t1 + minutes(3) + ms(9);
    let first = new_claim(&inv, t2);
    assert_eq!(claim(store, &first).await, ClaimOutcome::Booked);

    let answered = invitation_of(store, &inv).await;
    assert_eq!(answered.status, InvitationStatus::Claimed);
    assert_eq!(answered.answered_at, Some(t2));
    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert_eq!(
        store
            .booking_by_token(&first.booking_token_hash)
            .await
            .unwrap(),
        Some(BookingRecord {
            id: first.booking_id,
            offer_id: offer.id,
            registrant_id: Some(p),
            code: first.code.clone(),
            status: BookingStatus::Booked,
            created_at: t2,
        })
    );
    let bookings = store.bookings_of(offer.id).await.unwrap();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].code, first.code);
    assert_eq!(bookings[0].updated_at, t2);
    assert!(is_stored(store, &first.confirmation).await);
    assert_eq!(
        store.booking_by_token(&random_bytes(32)).await.unwrap(),
        None
    );

    // The same link again.
    let second = new_claim(&inv, t2 + ms(1));
    assert_eq!(
        claim(store, &second).await,
        ClaimOutcome::AlreadyAnswered(InvitationStatus::Claimed)
    );
    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert_eq!(store.bookings_of(offer.id).await.unwrap().len(), 1);
    assert!(!is_stored(store, &second.confirmation).await);
    assert!(!store.decline(&inv.token_hash, t2 + ms(2)).await.unwrap());

    let unknown = new_claim(&invitation(p, 1.0, t2 + minutes(9)), t2);
    assert_eq!(claim(store, &unknown).await, ClaimOutcome::Unknown);
}

/// An offer whose practice is not approved (suspended while the offer was still open) takes no
/// booking: the claim finds it over, and nothing is written.
pub async fn claim_on_an_offer_of_a_suspended_practice_finds_it_expired(
    store: &dyn MatcherCaseStore,
) {
    let offer = offer(store, 3).await;
    let p = waiting(store).await;
    let t1 = t0() + minutes(1);
    let inv = invite(store, offer.id, &[p], t1).await.remove(0);
    store
        .set_practice_status(offer.practice_id, crate::PracticeStatus::Suspended, t1)
        .await
        .expect("set_practice_status failed");

    let attempt = new_claim(&inv, t1 + minutes(2));
    assert_eq!(claim(store, &attempt).await, ClaimOutcome::Expired);
    assert_eq!(progress(store, offer.id).await.claimed, 0);
    assert!(store.bookings_of(offer.id).await.unwrap().is_empty());
    assert!(!is_stored(store, &attempt.confirmation).await);
    assert_eq!(
        invitation_of(store, &inv).await.status,
        InvitationStatus::Open
    );
}

pub async fn claims_beyond_the_doses_find_them_all_taken(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 1).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p, q], t1).await;

    let t2 = t1 + minutes(2);
    assert_eq!(
        claim(store, &new_claim(&invs[0], t2)).await,
        ClaimOutcome::Booked
    );
    let late = new_claim(&invs[1], t2 + ms(3));
    assert_eq!(claim(store, &late).await, ClaimOutcome::AllTaken);

    let missed = invitation_of(store, &invs[1]).await;
    assert_eq!(missed.status, InvitationStatus::Missed);
    assert_eq!(missed.answered_at, Some(t2 + ms(3)));
    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert_eq!(
        store
            .booking_by_token(&late.booking_token_hash)
            .await
            .unwrap(),
        None
    );
    assert!(!is_stored(store, &late.confirmation).await);
    assert_eq!(
        claim(store, &new_claim(&invs[1], t2 + ms(4))).await,
        ClaimOutcome::AlreadyAnswered(InvitationStatus::Missed)
    );
}

pub async fn late_claims_are_expired(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let (p, q, r, s) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p, q], t1).await;

    // The invitation's time is up at `expires_at` exactly.
    let at_expiry = new_claim(&invs[0], invs[0].expires_at);
    assert_eq!(claim(store, &at_expiry).await, ClaimOutcome::Expired);
    assert_eq!(
        claim(store, &new_claim(&invs[1], invs[1].expires_at - ms(1))).await,
        ClaimOutcome::Booked
    );

    // The offer is over, though the invitation is not.
    let over = invite_until(
        store,
        offer.id,
        &[r],
        t1 + ms(1),
        offer.ends_at + minutes(60),
    )
    .await
    .remove(0);
    assert_eq!(
        claim(store, &new_claim(&over, offer.ends_at)).await,
        ClaimOutcome::Expired
    );

    // The practice closed the offer.
    let closed_offer = offer_at(store, 3, t0()).await;
    let closed = invite(store, closed_offer.id, &[s], t1).await.remove(0);
    assert!(
        store
            .finish_offer(closed_offer.id, OfferStatus::Closed, t1 + ms(5))
            .await
            .unwrap()
    );
    assert_eq!(
        claim(store, &new_claim(&closed, t1 + ms(6))).await,
        ClaimOutcome::Expired
    );

    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert_eq!(progress(store, closed_offer.id).await.claimed, 0);
    assert!(!is_stored(store, &at_expiry.confirmation).await);
    assert_eq!(
        store
            .booking_by_token(&at_expiry.booking_token_hash)
            .await
            .unwrap(),
        None
    );
}

/// A person holds one live (booked or checked-in) booking; cancelled ones do not count.
pub async fn person_with_a_live_booking_cannot_claim(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let elsewhere = offer_at(store, 3, t0()).await;
    let called_off = offer_at(store, 3, t0()).await;
    let (p, q, r) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = t0() + minutes(1);
    book(store, elsewhere.id, Some(p), t1).await;
    let visited = book(store, elsewhere.id, Some(q), t1).await;
    assert_eq!(
        store
            .check_in(elsewhere.id, &visited.code, t1)
            .await
            .unwrap(),
        CheckInOutcome::CheckedIn
    );
    book(store, called_off.id, Some(r), t1).await;
    assert!(
        store
            .finish_offer(called_off.id, OfferStatus::Cancelled, t1)
            .await
            .unwrap()
    );

    let invs = invite(store, offer.id, &[p, q, r], t1 + ms(1)).await;
    let t2 = t1 + minutes(2);
    let by_p = new_claim(&invs[0], t2);
    assert_eq!(claim(store, &by_p).await, ClaimOutcome::AlreadyBooked);
    assert_eq!(
        claim(store, &new_claim(&invs[1], t2)).await,
        ClaimOutcome::AlreadyBooked
    );
    assert_eq!(
        claim(store, &new_claim(&invs[2], t2)).await,
        ClaimOutcome::Booked
    );

    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert!(!is_stored(store, &by_p.confirmation).await);
    // The refused invitation stays open: the person may still say no.
    assert_eq!(
        invitation_of(store, &invs[0]).await.status,
        InvitationStatus::Open
    );
    assert!(store.decline(&invs[0].token_hash, t2).await.unwrap());
}

/// Twenty people click at once for three doses: three bookings, never more.
pub async fn racing_claims_never_book_more_than_the_doses(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let mut people = Vec::new();
    for _ in 0..20 {
        people.push(waiting(store).await);
    }
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &people, t1).await;
    let claims: Vec<NewClaim> = invs.iter().map(|i| new_claim(i, t1 + minutes(2))).collect();
    warm_up(store).await;

    let outcomes: Vec<ClaimOutcome> = join_all(claims.iter().map(|c| store.claim(c)).collect())
        .await
        .into_iter()
        .map(|r| r.expect("racing claim failed"))
        .collect();
    let booked: Vec<&NewClaim> = claims
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == ClaimOutcome::Booked)
        .map(|(c, _)| c)
        .collect();
    assert_eq!(booked.len(), 3, "outcomes: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ClaimOutcome::Booked | ClaimOutcome::AllTaken)),
        "outcomes: {outcomes:?}"
    );
    assert_eq!(progress(store, offer.id).await.claimed, 3);
    assert_eq!(store.bookings_of(offer.id).await.unwrap().len(), 3);

    let confirmations: Vec<&OutboxRow> = claims.iter().map(|c| &c.confirmation).collect();
    let stored: HashSet<Uuid> = stored_of(store, &confirmations)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    let expected: HashSet<Uuid> = booked.iter().map(|c| c.confirmation.id).collect();
    assert_eq!(
        stored, expected,
        "exactly the winners' confirmations are stored"
    );

    let mut statuses = Vec::new();
    for inv in &invs {
        statuses.push(invitation_of(store, inv).await.status);
    }
    let claimed = statuses
        .iter()
        .filter(|s| **s == InvitationStatus::Claimed)
        .count();
    let missed = statuses
        .iter()
        .filter(|s| **s == InvitationStatus::Missed)
        .count();
    assert_eq!((claimed, missed), (3, 17));
}

/// A link clicked several times at once books once.
pub async fn racing_clicks_on_one_link_book_once(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let p = waiting(store).await;
    let t1 = t0() + minutes(1);
    let inv = invite(store, offer.id, &[p], t1).await.remove(0);
    let claims: Vec<NewClaim> = (0..8).map(|_| new_claim(&inv, t1 + minutes(1))).collect();
    warm_up(store).await;

    let outcomes: Vec<ClaimOutcome> = join_all(claims.iter().map(|c| store.claim(c)).collect())
        .await
        .into_iter()
        .map(|r| r.expect("racing claim failed"))
        .collect();
    let booked = outcomes
        .iter()
        .filter(|o| **o == ClaimOutcome::Booked)
        .count();
    assert_eq!(booked, 1, "outcomes: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            ClaimOutcome::Booked | ClaimOutcome::AlreadyAnswered(InvitationStatus::Claimed)
        )),
        "outcomes: {outcomes:?}"
    );
    assert_eq!(progress(store, offer.id).await.claimed, 1);
    assert_eq!(store.bookings_of(offer.id).await.unwrap().len(), 1);
}

// --- answers and expiry -----------------------------------------------------------------------

pub async fn decline_answers_an_open_invitation_once(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p, q], t1).await;

    let t2 = t1 + minutes(4) + ms(2);
    assert!(store.decline(&invs[0].token_hash, t2).await.unwrap());
    let declined = invitation_of(store, &invs[0]).await;
    assert_eq!(declined.status, InvitationStatus::Declined);
    assert_eq!(declined.answered_at, Some(t2));
    assert!(
        !store
            .decline(&invs[0].token_hash, t2 + ms(1))
            .await
            .unwrap()
    );
    assert_eq!(
        claim(store, &new_claim(&invs[0], t2 + ms(2))).await,
        ClaimOutcome::AlreadyAnswered(InvitationStatus::Declined)
    );
    assert_eq!(progress(store, offer.id).await.claimed, 0);

    // Too late at `expires_at`.
    assert!(
        !store
            .decline(&invs[1].token_hash, invs[1].expires_at)
            .await
            .unwrap()
    );
    assert_eq!(
        invitation_of(store, &invs[1]).await.status,
        InvitationStatus::Open
    );
    assert!(!store.decline(&random_bytes(32), t2).await.unwrap());
}

/// Runs in 2001, long before every other case's invitations expire.
pub async fn expired_invitations_are_counted_once_per_person(store: &dyn MatcherCaseStore) {
    let era = Utc.with_ymd_and_hms(2001, 1, 1, 8, 0, 0).unwrap() + ms(321);
    let mut offers = Vec::new();
    for _ in 0..7 {
        offers.push(offer_at(store, 3, era).await.id);
    }
    let (p, q) = (waiting(store).await, waiting(store).await);

    let first = invite(store, offers[0], &[p, q], era).await;
    let due = first[0].expires_at;
    assert_eq!(
        store.expire_invitations(due - ms(1), 10).await.unwrap(),
        vec![]
    );
    let mut expired = store.expire_invitations(due, 10).await.unwrap();
    expired.sort_by_key(|e| e.invitation_id);
    let mut expected = vec![
        ExpiredInvitation {
            invitation_id: first[0].id,
            registrant_id: p,
            offer_id: offers[0],
            unanswered_in_a_row: 1,
        },
        ExpiredInvitation {
            invitation_id: first[1].id,
            registrant_id: q,
            offer_id: offers[0],
            unanswered_in_a_row: 1,
        },
    ];
    expected.sort_by_key(|e| e.invitation_id);
    assert_eq!(expired, expected);
    assert_eq!(
        store
            .expire_invitations(due + minutes(1), 10)
            .await
            .unwrap(),
        vec![]
    );
    let gone = invitation_of(store, &first[0]).await;
    assert_eq!(gone.status, InvitationStatus::Expired);
    assert_eq!(
        claim(store, &new_claim(&first[0], due - ms(1))).await,
        ClaimOutcome::Expired,
        "an expired invitation stays expired, whatever the clock says"
    );
    assert!(
        !store
            .decline(&first[0].token_hash, due - ms(1))
            .await
            .unwrap()
    );

    // Unanswered in a row: 2 ...
    let t = era + Duration::hours(1);
    let second = invite(store, offers[1], &[p], t).await;
    let expired = store
        .expire_invitations(second[0].expires_at, 10)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].registrant_id, expired[0].unanswered_in_a_row),
        (p, 2)
    );

    // ... an answer starts the count again, a "no" ...
    let t = era + Duration::hours(2);
    let third = invite(store, offers[2], &[p], t).await;
    assert!(
        store
            .decline(&third[0].token_hash, t + ms(1))
            .await
            .unwrap()
    );
    let fourth = invite(store, offers[3], &[p], t + minutes(1)).await;
    let expired = store
        .expire_invitations(fourth[0].expires_at, 10)
        .await
        .unwrap();
    assert_eq!(expired[0].unanswered_in_a_row, 1);

    // ... as well as a claim.
    let t = era + Duration::hours(3);
    let fifth = invite(store, offers[4], &[p], t).await;
    assert_eq!(
        claim(store, &new_claim(&fifth[0], t + ms(1))).await,
        ClaimOutcome::Booked
    );
    let sixth = invite(store, offers[5], &[p], t + minutes(1)).await;
    let expired = store
        .expire_invitations(sixth[0].expires_at, 10)
        .await
        .unwrap();
    assert_eq!(expired[0].unanswered_in_a_row, 1);

    // Racing expiries with a limit: each invitation is expired and counted once.
    let mut people = Vec::new();
    for _ in 0..6 {
        people.push(waiting(store).await);
    }
    let t = era + Duration::hours(4);
    let last = invite(store, offers[6], &people, t).await;
    let due = last[0].expires_at;
    warm_up(store).await;
    let batches = join_all((0..3).map(|_| store.expire_invitations(due, 2)).collect()).await;
    let mut all: Vec<ExpiredInvitation> = Vec::new();
    for batch in batches {
        let batch = batch.expect("racing expire_invitations failed");
        assert!(batch.len() <= 2, "limit exceeded: {batch:?}");
        all.extend(batch);
    }
    all.extend(store.expire_invitations(due, 10).await.unwrap());
    let ids: HashSet<Uuid> = all.iter().map(|e| e.invitation_id).collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(ids, last.iter().map(|i| i.id).collect::<HashSet<_>>());
    assert!(all.iter().all(|e| e.unanswered_in_a_row == 1), "{all:?}");
}

pub async fn pause_for_silence_pauses_only_active_people(store: &dyn MatcherCaseStore) {
    let p = waiting(store).await;
    let (pending, _, _) = insert_person(store, t0()).await;
    let t1 = t0() + minutes(10) + ms(1);

    let told = mail(t1);
    assert!(store.pause_for_silence(p, t1, &told).await.unwrap());
    let after = get_registrant(store, p).await;
    assert_eq!(after.status, RegistrantStatus::Paused);
    assert_eq!(after.paused_at, Some(t1));
    assert!(is_stored(store, &told).await);

    let again = mail(t1 + ms(1));
    assert!(
        !store
            .pause_for_silence(p, t1 + ms(1), &again)
            .await
            .unwrap()
    );
    assert_eq!(get_registrant(store, p).await.paused_at, Some(t1));
    assert!(!is_stored(store, &again).await);

    let to_pending = mail(t1);
    assert!(
        !store
            .pause_for_silence(pending.id, t1, &to_pending)
            .await
            .unwrap()
    );
    assert_eq!(
        get_registrant(store, pending.id).await.status,
        RegistrantStatus::Pending
    );
    let to_nobody = mail(t1);
    assert!(
        !store
            .pause_for_silence(Uuid::new_v4(), t1, &to_nobody)
            .await
            .unwrap()
    );
    assert!(!is_stored(store, &to_pending).await);
    assert!(!is_stored(store, &to_nobody).await);
}

// --- bookings through their link --------------------------------------------------------------

pub async fn cancelled_booking_frees_its_dose_once(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 1).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = t0() + minutes(1);
    let inv_p = invite(store, offer.id, &[p], t1).await.remove(0);
    let booked = new_claim(&inv_p, t1 + minutes(1));
    assert_eq!(claim(store, &booked).await, ClaimOutcome::Booked);
    assert_eq!(progress(store, offer.id).await.claimed, 1);

    let t2 = t1 + minutes(20) + ms(8);
    assert_eq!(
        store
            .cancel_booking(&booked.booking_token_hash, t2)
            .await
            .unwrap(),
        Some(offer.id)
    );
    let record = store
        .booking_by_token(&booked.booking_token_hash)
        .await
        .unwrap()
        .expect("the booking stays, cancelled");
    assert_eq!(record.status, BookingStatus::Cancelled);
    assert_eq!(store.bookings_of(offer.id).await.unwrap()[0].updated_at, t2);
    let after = progress(store, offer.id).await;
    assert_eq!(after.claimed, 0);
    assert_eq!(
        after.next_wave_at,
        Some(t2),
        "the matcher looks again at once"
    );

    // Only once.
    assert_eq!(
        store
            .cancel_booking(&booked.booking_token_hash, t2 + ms(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(progress(store, offer.id).await.claimed, 0);
    assert_eq!(
        store.cancel_booking(&random_bytes(32), t2).await.unwrap(),
        None
    );

    // The dose is free for the next person; once checked in, a booking cannot be cancelled.
    let inv_q = invite(store, offer.id, &[q], t2).await.remove(0);
    let second = new_claim(&inv_q, t2 + minutes(1));
    assert_eq!(claim(store, &second).await, ClaimOutcome::Booked);
    assert_eq!(
        store
            .check_in(offer.id, &second.code, t2 + minutes(30))
            .await
            .unwrap(),
        CheckInOutcome::CheckedIn
    );
    assert_eq!(
        store
            .cancel_booking(&second.booking_token_hash, t2 + minutes(31))
            .await
            .unwrap(),
        None
    );
    assert_eq!(progress(store, offer.id).await.claimed, 1);
}

/// The cancel link clicked several times at once gives the dose back once.
pub async fn racing_cancellations_free_the_dose_once(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 2).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p, q], t1).await;
    let booked = new_claim(&invs[0], t1 + minutes(1));
    assert_eq!(claim(store, &booked).await, ClaimOutcome::Booked);
    assert_eq!(
        claim(store, &new_claim(&invs[1], t1 + minutes(1))).await,
        ClaimOutcome::Booked
    );
    warm_up(store).await;

    let t2 = t1 + minutes(5);
    let results = join_all(
        (0..8)
            .map(|_| store.cancel_booking(&booked.booking_token_hash, t2))
            .collect(),
    )
    .await;
    let cancelled: Vec<Uuid> = results
        .into_iter()
        .filter_map(|r| r.expect("racing cancel_booking failed"))
        .collect();
    assert_eq!(
        cancelled,
        vec![offer.id],
        "racing cancellations: {cancelled:?}"
    );
    assert_eq!(progress(store, offer.id).await.claimed, 1);
}

/// `acceptance` learns from real answers only: claims, late clicks and declines count, open
/// invitations and those withdrawn because the offer filled count as neither (else the factor
/// could only rise).
pub async fn acceptance_counts_real_answers_only(store: &dyn MatcherCaseStore) {
    let area = unique_postcode();
    let rows = practice(store).await;
    let mut in_area = new_offer(rows.account.id, t0());
    in_area.postcode = Postcode::from_trusted(format!("{area}01"));
    in_area.doses = 5;
    store.insert_offer(&in_area).await.unwrap();
    let mut fills = new_offer(rows.account.id, t0());
    fills.postcode = Postcode::from_trusted(format!("{area}99"));
    fills.doses = 1;
    store.insert_offer(&fills).await.unwrap();
    let mut outside = new_offer(rows.account.id, t0());
    outside.postcode = Postcode::from_trusted(unique_postcode());
    store.insert_offer(&outside).await.unwrap();

    let mut people = Vec::new();
    for _ in 0..9 {
        people.push(waiting(store).await);
    }
    let since = t0() + minutes(10);
    // In the area: one unanswered before `since`, one claimed and one unanswered at it.
    invite(store, in_area.id, &[people[0]], since - ms(1)).await;
    let recent = invite(store, in_area.id, &[people[1], people[2]], since).await;
    assert_eq!(
        claim(store, &new_claim(&recent[0], since + minutes(1))).await,
        ClaimOutcome::Booked
    );
    // The one-dose offer: a decline, a claim that fills it, and two invitations the fill ends.
    let other = invite(
        store,
        fills.id,
        &[people[3], people[5], people[6], people[7]],
        since + ms(1),
    )
    .await;
    assert!(
        store
            .decline(&other[0].token_hash, since + minutes(1))
            .await
            .unwrap()
    );
    assert_eq!(
        claim(store, &new_claim(&other[1], since + minutes(1))).await,
        ClaimOutcome::Booked
    );
    for ended in &other[2..] {
        assert_eq!(
            invitation_of(store, ended).await.status,
            InvitationStatus::Withdrawn
        );
    }
    assert_eq!(
        claim(store, &new_claim(&other[3], since + minutes(2))).await,
        ClaimOutcome::AllTaken,
        "a click on a withdrawn invitation while the offer runs"
    );
    let far = invite(store, outside.id, &[people[4]], since).await;
    assert_eq!(
        claim(store, &new_claim(&far[0], since + minutes(1))).await,
        ClaimOutcome::Booked
    );

    let counts = |answered, accepted| AnswerCounts { answered, accepted };
    let (area_of_in_area, in_area_id) = (area.clone(), in_area.id);
    let of = |area: String, since, offer| async move {
        store
            .acceptance(&area, since, offer, 1.0, since + minutes(2))
            .await
            .unwrap()
    };
    assert_eq!(
        of(area.clone(), since, in_area.id).await,
        Acceptance {
            area: counts(4, 3),
            offer: counts(1, 1)
        }
    );
    assert_eq!(
        of(area.clone(), since - ms(1), fills.id).await.area,
        counts(4, 3)
    );
    assert_eq!(of(area.clone(), since, fills.id).await.offer, counts(3, 2));
    assert_eq!(
        of(area.clone(), since + ms(2), outside.id).await,
        Acceptance {
            area: counts(0, 0),
            offer: counts(1, 1)
        }
    );
    assert_eq!(
        of(format!("{area}9"), since, Uuid::new_v4()).await,
        Acceptance {
            area: counts(3, 2),
            offer: counts(0, 0)
        }
    );
    // A yes a minute after the invitation is not quick within 1/60 of a 30-minute window.
    // Within T = 30 s (1/60 of the window), two minutes on: the claim after a minute is a
    // known "not within T", and so are the two invitations still open after two minutes.
    // T = 1 min: the claim is in time. T = 30 min: the open ones tell nothing yet; 40 minutes
    // on they do.
    for (quick, now, known, accepted) in [
        (1.0 / 60.0, since + minutes(2), 3, 0),
        (1.0 / 30.0, since + minutes(2), 3, 1),
        (1.0, since + minutes(2), 1, 1),
        (1.0, since + minutes(40), 3, 1),
    ] {
        let got = store
            .acceptance(&area_of_in_area, since, in_area_id, quick, now)
            .await
            .unwrap();
        assert_eq!(got.offer, counts(known, accepted), "quick {quick} at {now}");
    }
    // The invitation withdrawn one minute after it was sent: after T = 30 s, a known "no".
    let fills_known = store
        .acceptance(
            &area_of_in_area,
            since,
            fills.id,
            1.0 / 60.0,
            since + minutes(2),
        )
        .await
        .unwrap()
        .offer;
    assert_eq!(fills_known, counts(4, 0));
    // An area is a plain prefix, not a pattern.
    assert_eq!(
        of("%".to_owned(), t0(), Uuid::new_v4()).await,
        Acceptance::default()
    );
    assert_eq!(
        of(
            format!("{}_", &area[..area.len() - 1]),
            t0(),
            Uuid::new_v4()
        )
        .await,
        Acceptance::default()
    );
}

/// The reproduction of issue 13: an offer of 3 doses invites 6; when the third dose is claimed
/// the other open invitations end in the same transaction (withdrawn, no strike), their people
/// are candidates for the next offer at once — throttle lifted — and a late click on one finds
/// the doses gone. Runs in 2048 (it expires invitations).
pub async fn a_filled_offer_withdraws_its_open_invitations(store: &dyn MatcherCaseStore) {
    let era = Utc.with_ymd_and_hms(2048, 2, 1, 9, 0, 0).unwrap() + ms(21);
    let first = offer_at(store, 3, era).await;
    let next = offer_at(store, 3, era).await;
    let mut people = Vec::new();
    for _ in 0..6 {
        people.push(waiting(store).await);
    }
    // People 4 and 5 let an earlier invitation run out: one unanswered each.
    let earlier = offer_at(store, 3, era - minutes(120)).await;
    let silent = invite_until(
        store,
        earlier.id,
        &people[3..5],
        era - minutes(60),
        era - minutes(30),
    )
    .await;
    let expired = store
        .expire_invitations(era - minutes(29), 10)
        .await
        .unwrap();
    assert_eq!(expired.len(), silent.len());
    assert!(expired.iter().all(|e| e.unanswered_in_a_row == 1));
    let t1 = era + minutes(1);
    let invs = invite(store, first.id, &people, t1).await;
    for inv in &invs[..2] {
        assert_eq!(
            claim(store, &new_claim(inv, t1 + minutes(1))).await,
            ClaimOutcome::Booked
        );
    }
    // Not full yet: the others are still open.
    assert_eq!(
        invitation_of(store, &invs[2]).await.status,
        InvitationStatus::Open
    );
    let t2 = t1 + minutes(2);
    assert_eq!(
        claim(store, &new_claim(&invs[2], t2)).await,
        ClaimOutcome::Booked
    );
    for inv in &invs[3..] {
        assert_eq!(
            invitation_of(store, inv).await.status,
            InvitationStatus::Withdrawn
        );
    }
    // Within the throttle (30 min after t1), the freed people are candidates, first in line.
    let throttled_until = t1 + minutes(30);
    let q = query(
        next.id,
        &[("10115", 1.0)],
        throttled_until - minutes(30) - ms(1),
    );
    let found = candidate_ids(store, &q).await;
    for p in &people[3..] {
        assert!(found.contains(p), "a freed person is no candidate");
    }
    for p in &people[..3] {
        assert!(!found.contains(p), "a person who booked is a candidate");
    }
    // A late click finds every dose taken and is recorded as one (no strike either).
    assert_eq!(
        claim(store, &new_claim(&invs[3], t2 + ms(1))).await,
        ClaimOutcome::AllTaken
    );
    let late = invitation_of(store, &invs[3]).await;
    assert_eq!(late.status, InvitationStatus::Missed);
    assert_eq!(late.answered_at, Some(t2 + ms(1)));
    // The cheap path does the same for a withdrawn invitation.
    assert!(
        store
            .claim_all_taken(&invs[4].token_hash, t2 + ms(2))
            .await
            .unwrap()
    );
    assert_eq!(
        invitation_of(store, &invs[4]).await.status,
        InvitationStatus::Missed
    );
    // Nothing is left for the expiry: no strike for anyone.
    assert_eq!(
        store
            .expire_invitations(invs[5].expires_at + minutes(1), 100)
            .await
            .unwrap(),
        vec![]
    );
    for p in &people[3..] {
        assert_eq!(super::get(store, *p).await.status, RegistrantStatus::Active);
    }
    assert_eq!(progress(store, first.id).await.claimed, 3);
    // The late clicks were answers: people 4 and 5 start counting silences again.
    let t3 = invs[5].expires_at + minutes(2);
    let again = invite(store, next.id, &people[3..5], t3).await;
    let mut counted = store
        .expire_invitations(again[0].expires_at, 10)
        .await
        .unwrap();
    counted.sort_by_key(|e| e.registrant_id);
    let mut expected: Vec<(Uuid, i32)> = people[3..5].iter().map(|p| (*p, 1)).collect();
    expected.sort();
    assert_eq!(
        counted
            .iter()
            .map(|e| (e.registrant_id, e.unanswered_in_a_row))
            .collect::<Vec<_>>(),
        expected
    );
}

/// The daily cap: a person with `max_invitations_since` invitations after `counted_since` is no
/// candidate; withdrawn invitations count too (each was a mail).
pub async fn candidates_skip_people_at_the_daily_invitation_cap(store: &dyn MatcherCaseStore) {
    let postcode = unique_postcode();
    let busy = waiting_at(store, &postcode, 10, t0()).await;
    let calm = waiting_at(store, &postcode, 10, t0() + ms(1)).await;
    let t1 = t0() + minutes(1);
    // Two one-dose offers filled by someone else withdraw `busy`'s invitations.
    for round in 0..2 {
        let at = t1 + minutes(round);
        let full = offer_at(store, 1, t0()).await;
        let other = waiting_at(store, &unique_postcode(), 10, t0()).await;
        let invs = invite(store, full.id, &[busy, other], at).await;
        assert_eq!(
            claim(store, &new_claim(&invs[1], at + ms(10))).await,
            ClaimOutcome::Booked
        );
        assert_eq!(
            invitation_of(store, &invs[0]).await.status,
            InvitationStatus::Withdrawn
        );
    }
    let next = offer(store, 3).await;
    let mut q = query(next.id, &[(postcode.as_str(), 1.0)], t1 + minutes(5));
    q.counted_since = t1 - ms(1);
    q.max_invitations_since = 2;
    assert_eq!(candidate_ids(store, &q).await, vec![calm], "at the cap");
    q.max_invitations_since = 3;
    assert_eq!(
        candidate_ids(store, &q).await,
        vec![busy, calm],
        "under the cap"
    );
    // Only invitations after `counted_since` count.
    q.max_invitations_since = 2;
    q.counted_since = t1;
    assert_eq!(
        candidate_ids(store, &q).await,
        vec![busy, calm],
        "one is older"
    );
}

/// A dose freed while the matcher works on a full offer is never lost: parking fails once a
/// booking was cancelled, and a wave sized before a cancellation leaves the offer due.
pub async fn a_dose_freed_while_the_matcher_works_is_offered_again(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 1).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p], t1).await;
    let booked = new_claim(&invs[0], t1 + minutes(1));
    assert_eq!(claim(store, &booked).await, ClaimOutcome::Booked);
    // Full: parking works, and the offer is never due.
    assert!(store.park_full_offer(offer.id).await.unwrap());
    assert_eq!(progress(store, offer.id).await.next_wave_at, None);
    // The person cancels (the matcher read "full" just before): parking must now fail and the
    // offer stays due at the cancellation's time.
    let t2 = t1 + minutes(2);
    assert_eq!(
        store
            .cancel_booking(&booked.booking_token_hash, t2)
            .await
            .unwrap(),
        Some(offer.id)
    );
    assert!(!store.park_full_offer(offer.id).await.unwrap());
    assert_eq!(progress(store, offer.id).await.next_wave_at, Some(t2));

    // A wave sized when 1 dose was claimed, recorded after that dose came back: due at once.
    let stale = offer_at(store, 2, t0()).await;
    let (a, b) = (waiting(store).await, waiting(store).await);
    let first = invite(store, stale.id, &[a], t1).await;
    let held = new_claim(&first[0], t1 + minutes(1));
    assert_eq!(claim(store, &held).await, ClaimOutcome::Booked);
    let seen = progress(store, stale.id).await.claimed;
    assert_eq!(seen, 1);
    store
        .cancel_booking(&held.booking_token_hash, t2)
        .await
        .unwrap();
    let t3 = t2 + minutes(1);
    let mut late = wave(stale.id, 2, t3, &[invitation(b, 1.0, t3 + minutes(30))]);
    late.claimed_seen = seen;
    assert_eq!(store.record_wave(&late).await.unwrap(), 1);
    assert_eq!(progress(store, stale.id).await.next_wave_at, Some(t3));
    // Without a cancellation in between, the wave's own time holds.
    let steady = offer_at(store, 2, t0()).await;
    let mut normal = wave(steady.id, 1, t3, &[invitation(q, 1.0, t3 + minutes(30))]);
    normal.claimed_seen = 0;
    assert_eq!(store.record_wave(&normal).await.unwrap(), 1);
    assert_eq!(
        progress(store, steady.id).await.next_wave_at,
        Some(t3 + minutes(30))
    );
}

/// `awaiting_answers` counts the offer's open, unexpired invitations sent after a given time and
/// the earliest of them; a decline makes an open offer with doses left due at once (someone else
/// may take the place).
pub async fn a_decline_makes_its_offer_due_and_awaiting_answers_counts_the_rest(
    store: &dyn MatcherCaseStore,
) {
    let offer = offer(store, 1).await;
    let (a, b, c) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = t0() + minutes(1);
    let early = invite_until(store, offer.id, &[a], t1, t1 + minutes(10)).await;
    let late = invite_until(store, offer.id, &[b, c], t1 + ms(1), t1 + minutes(20)).await;
    let before = t1 - ms(1);
    assert_eq!(
        store
            .awaiting_answers(offer.id, t1 + minutes(2), before)
            .await
            .unwrap(),
        (3, Some(t1))
    );
    // Only those asked after `created_after` count.
    assert_eq!(
        store
            .awaiting_answers(offer.id, t1 + minutes(2), t1)
            .await
            .unwrap(),
        (2, Some(t1 + ms(1)))
    );
    // The wave's own time (30 minutes on) until someone declines.
    assert_eq!(
        progress(store, offer.id).await.next_wave_at,
        Some(t1 + ms(1) + minutes(30))
    );
    let t2 = t1 + minutes(3);
    assert!(store.decline(&late[0].token_hash, t2).await.unwrap());
    assert_eq!(progress(store, offer.id).await.next_wave_at, Some(t2));
    assert_eq!(
        store.awaiting_answers(offer.id, t2, before).await.unwrap(),
        (2, Some(t1))
    );
    // Past the first one's end it no longer counts, even before the expiry marks it.
    assert_eq!(
        store
            .awaiting_answers(offer.id, early[0].expires_at, before)
            .await
            .unwrap(),
        (1, Some(t1 + ms(1)))
    );
    assert_eq!(
        store
            .awaiting_answers(Uuid::new_v4(), t2, before)
            .await
            .unwrap(),
        (0, None)
    );
    // A full offer is not made due by a decline (nothing to take).
    assert_eq!(
        claim(store, &new_claim(&late[1], t2 + ms(1))).await,
        ClaimOutcome::Booked
    );
    assert!(store.park_full_offer(offer.id).await.unwrap());
    assert!(
        !store
            .decline(&early[0].token_hash, t2 + ms(2))
            .await
            .unwrap(),
        "withdrawn by the fill"
    );
    assert_eq!(progress(store, offer.id).await.next_wave_at, None);
}

/// A practice's cancellation writes each holder's mail in its own transaction; a holder without
/// a prepared mail (booked meanwhile) makes it write nothing. Runs in 2049 (it expires nothing,
/// but its withdrawn invitations must stay out of other cases' way).
pub async fn cancelling_an_offer_writes_each_holders_mail_with_it(store: &dyn MatcherCaseStore) {
    let era = Utc.with_ymd_and_hms(2049, 2, 1, 9, 0, 0).unwrap() + ms(7);
    let offer = offer_at(store, 3, era).await;
    let (a, b, c) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = era + minutes(1);
    let invs = invite(store, offer.id, &[a, b, c], t1).await;
    for inv in &invs[..2] {
        assert_eq!(
            claim(store, &new_claim(inv, t1 + minutes(1))).await,
            ClaimOutcome::Booked
        );
    }
    let t2 = t1 + minutes(2);
    let mail_a = mail_about(t2, Some(a), None);
    let mail_b = mail_about(t2, Some(b), None);
    let stranger = mail_about(t2, Some(c), None);
    // Only a's mail prepared: b holds a booking without one, so nothing is written.
    assert_eq!(
        store
            .cancel_offer(offer.id, t2, std::slice::from_ref(&mail_a))
            .await
            .unwrap(),
        OfferCancellation::HoldersChanged
    );
    assert_eq!(get_offer(store, offer.id).await.status, OfferStatus::Open);
    assert!(!is_stored(store, &mail_a).await);
    assert_eq!(
        invitation_of(store, &invs[2]).await.status,
        InvitationStatus::Open
    );
    // Both prepared (and one for c, who holds no booking: dropped).
    let mut told = vec![a, b];
    told.sort();
    assert_eq!(
        store
            .cancel_offer(
                offer.id,
                t2,
                &[mail_a.clone(), mail_b.clone(), stranger.clone()]
            )
            .await
            .unwrap(),
        OfferCancellation::Cancelled { told }
    );
    assert_eq!(
        get_offer(store, offer.id).await.status,
        OfferStatus::Cancelled
    );
    assert!(is_stored(store, &mail_a).await);
    assert!(is_stored(store, &mail_b).await);
    assert!(!is_stored(store, &stranger).await);
    assert_eq!(
        invitation_of(store, &invs[2]).await.status,
        InvitationStatus::Withdrawn
    );
    for inv in &invs[..2] {
        assert_eq!(
            claim(store, &new_claim(inv, t2 + ms(1))).await,
            ClaimOutcome::AlreadyAnswered(InvitationStatus::Claimed)
        );
    }
    assert_eq!(
        store.cancel_offer(offer.id, t2, &[]).await.unwrap(),
        OfferCancellation::NotOpen
    );
}

// --- outbox -----------------------------------------------------------------------------------

/// Runs in 1990, before every other case's mails are due; expects the outbox to be its own.
pub async fn outbox_hands_out_due_mails_oldest_first_with_leases_and_backoff(
    store: &dyn MatcherCaseStore,
) {
    let e = Utc.with_ymd_and_hms(1990, 5, 1, 10, 0, 0).unwrap() + ms(250);
    assert_eq!(store.outbox_depth().await.unwrap(), (0, None));
    let m1 = mail(e);
    let m2 = mail(e + ms(1));
    let m3 = mail(e + ms(2));
    let m4 = mail(e + Duration::hours(1));
    store
        .enqueue_mails(&[m3.clone(), m1.clone(), m4.clone()])
        .await
        .unwrap();
    store
        .enqueue_mails(std::slice::from_ref(&m2))
        .await
        .unwrap();
    store.enqueue_mails(&[]).await.unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), (4, Some(e)));

    let lease = |now: DateTime<Utc>, limit: u32| async move {
        store
            .lease_outbox(now, now + minutes(5), limit)
            .await
            .expect("lease_outbox failed")
    };

    // Oldest due first, each handed out once per lease; m4 is not due.
    let now = e + minutes(1);
    assert_eq!(lease(now, 2).await, vec![m1.clone(), m2.clone()]);
    assert_eq!(lease(now, 10).await, vec![m3.clone()]);
    assert_eq!(lease(now, 10).await, vec![]);
    assert_eq!(lease(now, 0).await, vec![]);

    // A worker that died: its lease ends by itself.
    let until = now + minutes(5);
    assert_eq!(lease(until - ms(1), 10).await, vec![]);
    assert_eq!(
        lease(until, 10).await,
        vec![m1.clone(), m2.clone(), m3.clone()]
    );

    // Sent: gone. Failed: counted, retried later.
    store.outbox_delivered(m1.id).await.unwrap();
    let retry_at = e + minutes(30);
    let long_error = "Zustellung fehlgeschlagen: ".repeat(100);
    store
        .outbox_failed(m2.id, retry_at, &long_error)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_depth().await.unwrap(),
        (3, Some(m2.created_at))
    );
    // m3 is still leased; m2 waits for its retry time.
    assert_eq!(lease(until + ms(1), 10).await, vec![]);
    assert_eq!(lease(retry_at - ms(1), 10).await, vec![m3.clone()]);
    store.outbox_delivered(m3.id).await.unwrap();
    let retried = OutboxRow {
        attempts: 1,
        next_attempt_at: retry_at,
        ..m2.clone()
    };
    assert_eq!(lease(retry_at, 10).await, vec![retried.clone()]);
    store
        .outbox_failed(m2.id, retry_at + minutes(10), "again")
        .await
        .unwrap();
    assert_eq!(
        lease(retry_at + minutes(10), 10).await,
        vec![OutboxRow {
            attempts: 2,
            next_attempt_at: retry_at + minutes(10),
            ..m2.clone()
        }]
    );
    store.outbox_delivered(m2.id).await.unwrap();
    assert_eq!(lease(e + Duration::hours(1), 10).await, vec![m4.clone()]);
    store.outbox_delivered(m4.id).await.unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), (0, None));
    // Unknown ids are no error.
    store.outbox_delivered(m4.id).await.unwrap();
    store
        .outbox_failed(Uuid::new_v4(), e, "nothing")
        .await
        .unwrap();

    // Racing workers get disjoint mails.
    let batch: Vec<OutboxRow> = (0..6).map(|i| mail(e + ms(i))).collect();
    store.enqueue_mails(&batch).await.unwrap();
    warm_up(store).await;
    let t = e + Duration::hours(2);
    let leased = join_all((0..3).map(|_| lease(t, 10)).collect()).await;
    let ids: Vec<Uuid> = leased.iter().flatten().map(|m| m.id).collect();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 6, "racing leases: {ids:?}");
    assert_eq!(distinct, batch.iter().map(|m| m.id).collect::<HashSet<_>>());
}

/// `outbox_delivered_many` deletes exactly the rows it is given, ignores unknown ids (and ids
/// given twice), does nothing for an empty list, and deletes lists longer than one statement's
/// `OUTBOX_ACK_CHUNK` whole.
pub async fn outbox_acknowledges_delivered_mails_in_batches(store: &dyn MatcherCaseStore) {
    let t = t0();
    let mails: Vec<OutboxRow> = (0..5).map(|i| mail(t + ms(i))).collect();
    store.enqueue_mails(&mails).await.unwrap();
    let stored = |rows: &[OutboxRow]| {
        let rows = rows.to_vec();
        async move {
            let mut out = Vec::new();
            for row in &rows {
                out.push(is_stored(store, row).await);
            }
            out
        }
    };

    store.outbox_delivered_many(&[]).await.unwrap();
    assert_eq!(stored(&mails).await, vec![true; 5]);

    store
        .outbox_delivered_many(&[mails[0].id, Uuid::new_v4(), mails[3].id, mails[0].id])
        .await
        .unwrap();
    assert_eq!(stored(&mails).await, vec![false, true, true, false, true]);
    // Again, and only unknown ids: no error, nothing else deleted.
    store
        .outbox_delivered_many(&[mails[3].id, Uuid::new_v4()])
        .await
        .unwrap();
    assert_eq!(stored(&mails).await, vec![false, true, true, false, true]);

    // More ids than one statement takes.
    let many: Vec<OutboxRow> = (0..crate::OUTBOX_ACK_CHUNK + 3)
        .map(|i| mail(t + ms(10 + i64::try_from(i).unwrap())))
        .collect();
    store.enqueue_mails(&many).await.unwrap();
    let mut ids: Vec<Uuid> = many.iter().map(|m| m.id).collect();
    ids.push(mails[1].id);
    store.outbox_delivered_many(&ids).await.unwrap();
    assert_eq!(stored(&mails).await, vec![false, false, true, false, true]);
    assert_eq!(
        stored_of(store, &many.iter().collect::<Vec<_>>()).await,
        vec![]
    );
}

pub async fn sign_up_and_links_are_stored_with_their_mails(store: &dyn MatcherCaseStore) {
    let new = person(t0());
    let confirm = token(new.id, TokenPurpose::Confirm, t0(), Duration::hours(48));
    let welcome = mail(t0());
    store
        .insert_registrant_with_mails(
            &new,
            std::slice::from_ref(&confirm),
            std::slice::from_ref(&welcome),
        )
        .await
        .unwrap();
    assert_eq!(
        get_registrant(store, new.id).await.status,
        RegistrantStatus::Pending
    );
    assert!(
        store
            .find_token(&confirm.hash, TokenPurpose::Confirm, t0())
            .await
            .unwrap()
            .is_some()
    );
    assert!(is_stored(store, &welcome).await);

    // The same address again: nothing is stored, not even the mail.
    let mut twin = person(t0());
    twin.email.index = new.email.index.clone();
    let twin_mail = mail(t0());
    assert_conflict(
        store
            .insert_registrant_with_mails(&twin, &[], std::slice::from_ref(&twin_mail))
            .await,
        "a registered address with a mail",
    );
    assert_eq!(store.registrant(twin.id).await.unwrap(), None);
    assert!(!is_stored(store, &twin_mail).await);

    // Links and their mails.
    let manage = token(new.id, TokenPurpose::Manage, t0(), Duration::days(30));
    let link_mail = mail(t0() + ms(1));
    store
        .insert_tokens_with_mails(
            std::slice::from_ref(&manage),
            std::slice::from_ref(&link_mail),
        )
        .await
        .unwrap();
    assert!(
        store
            .find_token(&manage.hash, TokenPurpose::Manage, t0())
            .await
            .unwrap()
            .is_some()
    );
    assert!(is_stored(store, &link_mail).await);

    let orphan = token(
        Uuid::new_v4(),
        TokenPurpose::Manage,
        t0(),
        Duration::days(30),
    );
    let orphan_mail = mail(t0());
    assert!(
        store
            .insert_tokens_with_mails(
                &[manage.clone(), orphan.clone()],
                std::slice::from_ref(&orphan_mail)
            )
            .await
            .is_err(),
        "a link for nobody was accepted"
    );
    assert!(!is_stored(store, &orphan_mail).await);

    let alone = mail(t0());
    store
        .insert_tokens_with_mails(&[], std::slice::from_ref(&alone))
        .await
        .unwrap();
    assert!(is_stored(store, &alone).await);
    store.insert_tokens_with_mails(&[], &[]).await.unwrap();
    let plain = person(t0());
    store
        .insert_registrant_with_mails(&plain, &[], &[])
        .await
        .unwrap();
    assert!(store.registrant(plain.id).await.unwrap().is_some());
}

pub async fn deleting_a_registrant_removes_their_invitations(store: &dyn MatcherCaseStore) {
    let offer = offer(store, 3).await;
    let (p, q, bystander) = (
        waiting(store).await,
        waiting(store).await,
        waiting(store).await,
    );
    let t1 = t0() + minutes(1);
    let invs = invite(store, offer.id, &[p, q, bystander], t1).await;
    let booked = new_claim(&invs[1], t1 + minutes(1));
    assert_eq!(claim(store, &booked).await, ClaimOutcome::Booked);

    assert!(store.delete_registrant(p).await.unwrap());
    assert!(store.delete_registrant(q).await.unwrap());
    assert_eq!(
        store
            .invitation_by_token(&invs[0].token_hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .invitation_by_token(&invs[1].token_hash)
            .await
            .unwrap(),
        None
    );
    // The practice keeps the booking, cancelled and without the person; the dose is free.
    let record = store
        .booking_by_token(&booked.booking_token_hash)
        .await
        .unwrap()
        .expect("the booking stays");
    assert_eq!(record.registrant_id, None);
    assert_eq!(record.status, BookingStatus::Cancelled);
    assert_eq!(
        invitation_of(store, &invs[2]).await.status,
        InvitationStatus::Open
    );
    assert_eq!(progress(store, offer.id).await.claimed, 0);
}

// --- what deleting a person and finishing an offer do to the matcher ---------------------------

/// Runs in 2045, when every other case's offers are over (it leases due offers).
pub async fn deleting_a_person_with_a_booking_frees_the_dose(store: &dyn MatcherCaseStore) {
    let era = Utc.with_ymd_and_hms(2045, 6, 1, 9, 0, 0).unwrap() + ms(77);
    let offer = offer_at(store, 2, era).await;
    let (p, q) = (waiting(store).await, waiting(store).await);
    let t1 = era + minutes(1);
    let invs = invite(store, offer.id, &[p, q], t1).await;
    let by_p = new_claim(&invs[0], t1 + minutes(1));
    let by_q = new_claim(&invs[1], t1 + minutes(1));
    assert_eq!(claim(store, &by_p).await, ClaimOutcome::Booked);
    assert_eq!(claim(store, &by_q).await, ClaimOutcome::Booked);
    assert_eq!(progress(store, offer.id).await.claimed, 2);
    // The wave's time is not up: the offer is not due.
    let now = t1 + minutes(5);
    assert_eq!(
        store.lease_due_offer(now, now + minutes(5)).await.unwrap(),
        None
    );

    assert!(store.delete_registrant(p).await.unwrap());

    // The dose is free again, and the matcher may offer it at once.
    assert_eq!(progress(store, offer.id).await.claimed, 1);
    let record = store
        .booking_by_token(&by_p.booking_token_hash)
        .await
        .unwrap()
        .expect("the booking row stays for the practice's count");
    assert_eq!(record.status, BookingStatus::Cancelled);
    assert_eq!(record.registrant_id, None, "no link to the deleted person");
    assert_eq!(record.code, by_p.code);
    let others = store
        .booking_by_token(&by_q.booking_token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (others.status, others.registrant_id),
        (BookingStatus::Booked, Some(q)),
        "another person's booking is untouched"
    );
    assert_eq!(store.bookings_of(offer.id).await.unwrap().len(), 2);
    let leased = store
        .lease_due_offer(now, now + minutes(5))
        .await
        .unwrap()
        .map(|o| o.id);
    assert_eq!(leased, Some(offer.id), "the offer is due again at once");
    // The freed dose can be claimed by someone new.
    let r = waiting(store).await;
    let inv_r = invite(store, offer.id, &[r], now + ms(1)).await.remove(0);
    assert_eq!(
        claim(store, &new_claim(&inv_r, now + minutes(1))).await,
        ClaimOutcome::Booked
    );
    assert_eq!(progress(store, offer.id).await.claimed, 2);
}

/// Runs in 2046 and 2047, when nobody else's invitations expire (it expires invitations).
pub async fn finishing_an_offer_ends_its_open_invitations_without_counting_them(
    store: &dyn MatcherCaseStore,
) {
    for (year, status) in [(2046, OfferStatus::Closed), (2047, OfferStatus::Cancelled)] {
        let era = Utc.with_ymd_and_hms(year, 2, 1, 9, 0, 0).unwrap() + ms(33);
        let finished = offer_at(store, 3, era).await;
        let next = offer_at(store, 3, era).await;
        let (p, declined) = (waiting(store).await, waiting(store).await);
        let t1 = era + minutes(1);
        let invs = invite(store, finished.id, &[p, declined], t1).await;
        let t2 = t1 + minutes(2);
        assert!(store.decline(&invs[1].token_hash, t2).await.unwrap());

        let t3 = t2 + minutes(1) + ms(5);
        assert!(store.finish_offer(finished.id, status, t3).await.unwrap());

        // The open invitation is withdrawn; the answered one keeps its answer.
        let ended = invitation_of(store, &invs[0]).await;
        assert_eq!(ended.status, InvitationStatus::Withdrawn, "{status:?}");
        assert_eq!(
            claim(store, &new_claim(&invs[0], t3 + ms(1))).await,
            ClaimOutcome::Expired,
            "{status:?}"
        );
        assert_eq!(
            invitation_of(store, &invs[1]).await.status,
            InvitationStatus::Declined,
            "{status:?}"
        );
        // Nothing is left for the expiry to count, not even once its time is up.
        assert_eq!(
            store
                .expire_invitations(invs[0].expires_at, 10)
                .await
                .unwrap(),
            vec![],
            "{status:?}"
        );

        // The person can be invited by another offer at once...
        let q = query(next.id, &[("10115", 1.0)], t3);
        assert!(
            candidate_ids(store, &q).await.contains(&p),
            "{status:?}: not a candidate"
        );
        let again = invite(store, next.id, &[p], t3 + ms(1)).await.remove(0);
        assert_eq!(
            invitation_of(store, &again).await.status,
            InvitationStatus::Open
        );

        // ... and the invitation of the finished offer did not count as unanswered.
        let expired = store
            .expire_invitations(again.expires_at, 10)
            .await
            .unwrap();
        assert_eq!(
            expired,
            vec![ExpiredInvitation {
                invitation_id: again.id,
                registrant_id: p,
                offer_id: next.id,
                unanswered_in_a_row: 1,
            }],
            "{status:?}"
        );
    }
}

// --- monitoring -------------------------------------------------------------------------------

/// `operational_counts`: people by state (a live booking wins over the person's status), open
/// offers only, the outbox with its oldest and oldest *due* mail; `migrations_current` is true
/// on a freshly migrated database.
pub async fn operational_counts_tell_people_by_state_offers_and_the_outbox(
    store: &dyn MatcherCaseStore,
) {
    assert!(store.migrations_current().await.unwrap());
    let now = t0();
    assert_eq!(
        store.operational_counts(now).await.unwrap(),
        crate::OperationalCounts::default()
    );
    insert_person(store, now).await;
    insert_person(store, now).await;
    let booked = waiting(store).await;
    waiting(store).await;
    let paused = waiting(store).await;
    store.set_paused(paused, true, now).await.unwrap();
    let open = offer(store, 2).await;
    let closed = offer(store, 1).await;
    assert!(
        store
            .finish_offer(closed.id, OfferStatus::Closed, now)
            .await
            .unwrap()
    );
    let t1 = now + minutes(1);
    let inv = invite(store, open.id, &[booked], t1).await.remove(0);
    assert_eq!(
        claim(store, &new_claim(&inv, t1 + minutes(1))).await,
        ClaimOutcome::Booked
    );
    let (depth, oldest) = store.outbox_depth().await.unwrap();
    let counts = store.operational_counts(t1 + minutes(1)).await.unwrap();
    assert_eq!(
        counts,
        crate::OperationalCounts {
            people_unconfirmed: 2,
            people_waiting: 1,
            people_paused: 1,
            people_booked: 1,
            open_offers: 1,
            outbox_depth: depth,
            outbox_oldest: oldest,
            outbox_oldest_due: oldest,
        }
    );
    assert!(
        depth >= 2,
        "the invitation and the confirmation wait in the outbox"
    );
    // Before any mail is due, none is "oldest due"; a mail in back-off is not due either.
    let early = store.operational_counts(t1 - ms(1)).await.unwrap();
    assert_eq!(early.outbox_oldest_due, None);
    assert_eq!(early.outbox_depth, depth);
    assert_eq!(store.outbox_oldest_due(t1 - ms(1)).await.unwrap(), None);
    assert_eq!(
        store.outbox_oldest_due(t1 + minutes(1)).await.unwrap(),
        oldest
    );
    // A mail in back-off after a failure is late, not "not yet due".
    let late = mail(t1 - minutes(30));
    store
        .enqueue_mails(std::slice::from_ref(&late))
        .await
        .unwrap();
    store.outbox_failed(late.id, far(), "down").await.unwrap();
    assert_eq!(
        store.outbox_oldest_due(t1 - ms(1)).await.unwrap(),
        Some(late.created_at)
    );
    assert_eq!(
        store
            .operational_counts(t1 - ms(1))
            .await
            .unwrap()
            .outbox_oldest_due,
        Some(late.created_at)
    );
}

// --- mails given up on ------------------------------------------------------------------------

pub async fn dropped_mail_is_deleted_and_pauses_and_marks_an_undeliverable_person(
    store: &dyn MatcherCaseStore,
) {
    let target = offer(store, 3).await;
    let place = unique_postcode();
    let bouncing = waiting_at(store, &place, 10, t0()).await;
    let neighbour = waiting_at(store, &place, 10, t0() + ms(1)).await;
    let (pending, pending_confirm, _) = insert_person(store, t0()).await;
    let paused = waiting(store).await;
    let paused_at = t0() + minutes(1);
    store.set_paused(paused, true, paused_at).await.unwrap();
    let gone = waiting(store).await;

    let bounced = mail_about(t0(), Some(bouncing), Some(target.id));
    let later_to_bouncing = mail_about(t0() + ms(1), Some(bouncing), None);
    let to_neighbour = mail_about(t0(), Some(neighbour), Some(target.id));
    let expired = mail_about(t0(), Some(neighbour), None);
    let to_pending = mail_about(t0(), Some(pending.id), None);
    let to_paused = mail_about(t0(), Some(paused), None);
    let to_gone = mail_about(t0(), Some(gone), None);
    let unrelated = mail(t0());
    store
        .enqueue_mails(&[
            bounced.clone(),
            later_to_bouncing.clone(),
            to_neighbour.clone(),
            expired.clone(),
            to_pending.clone(),
            to_paused.clone(),
            to_gone.clone(),
            unrelated.clone(),
        ])
        .await
        .unwrap();
    let q = query(target.id, &[(&place, 1.0)], t0() + Duration::hours(1));
    assert_eq!(candidate_ids(store, &q).await, vec![bouncing, neighbour]);

    // Refused for good: the row goes, the active person is paused and marked, in line as before.
    let t1 = t0() + minutes(5) + ms(7);
    store
        .outbox_dropped(bounced.id, Some(bouncing), t1)
        .await
        .unwrap();
    assert!(!is_stored(store, &bounced).await);
    let after = get_registrant(store, bouncing).await;
    assert_eq!(after.status, RegistrantStatus::Paused);
    assert_eq!(after.paused_at, Some(t1));
    assert_eq!(after.undeliverable_at, Some(t1));
    assert_eq!(after.created_at, t0());
    // No waiting-list query finds them any more; everyone and everything else is untouched.
    assert_eq!(candidate_ids(store, &q).await, vec![neighbour]);
    let untouched = get_registrant(store, neighbour).await;
    assert_eq!(untouched.status, RegistrantStatus::Active);
    assert_eq!(
        (untouched.paused_at, untouched.undeliverable_at),
        (None, None)
    );
    for other in [
        &later_to_bouncing,
        &to_neighbour,
        &expired,
        &to_pending,
        &to_paused,
        &to_gone,
        &unrelated,
    ] {
        assert!(is_stored(store, other).await, "another mail went too");
    }

    // Given up without blaming the address (expired, unreadable): only the row goes.
    store.outbox_dropped(expired.id, None, t1).await.unwrap();
    assert!(!is_stored(store, &expired).await);
    assert_eq!(get_registrant(store, neighbour).await, untouched);

    // A pending person is marked, not paused; a paused one keeps when they paused.
    store
        .outbox_dropped(to_pending.id, Some(pending.id), t1)
        .await
        .unwrap();
    let marked = get_registrant(store, pending.id).await;
    assert_eq!(marked.status, RegistrantStatus::Pending);
    assert_eq!(
        (marked.paused_at, marked.undeliverable_at),
        (None, Some(t1))
    );
    store
        .outbox_dropped(to_paused.id, Some(paused), t1)
        .await
        .unwrap();
    let marked = get_registrant(store, paused).await;
    assert_eq!(marked.status, RegistrantStatus::Paused);
    assert_eq!(
        (marked.paused_at, marked.undeliverable_at),
        (Some(paused_at), Some(t1))
    );
    assert!(!is_stored(store, &to_pending).await && !is_stored(store, &to_paused).await);

    // A person deleted meanwhile, a row already gone: no error, nothing else changes.
    assert!(store.delete_registrant(gone).await.unwrap());
    store
        .outbox_dropped(to_gone.id, Some(gone), t1)
        .await
        .unwrap();
    assert!(store.registrant(gone).await.unwrap().is_none());
    store
        .outbox_dropped(bounced.id, Some(bouncing), t1 + ms(1))
        .await
        .unwrap();
    store
        .outbox_dropped(Uuid::new_v4(), None, t1)
        .await
        .unwrap();
    assert!(is_stored(store, &later_to_bouncing).await);
    assert!(is_stored(store, &unrelated).await);

    // Resuming clears the mark (they read mail again), as does confirming.
    let t2 = t1 + minutes(1);
    assert_eq!(
        store.set_paused(bouncing, false, t2).await.unwrap(),
        RegistrantStatus::Active
    );
    let resumed = get_registrant(store, bouncing).await;
    assert_eq!((resumed.paused_at, resumed.undeliverable_at), (None, None));
    assert_eq!(candidate_ids(store, &q).await, vec![bouncing, neighbour]);
    assert_eq!(
        store
            .confirm_registrant(&pending_confirm.hash, t2)
            .await
            .unwrap(),
        Some(pending.id)
    );
    let confirmed = get_registrant(store, pending.id).await;
    assert_eq!(confirmed.status, RegistrantStatus::Active);
    assert_eq!(confirmed.confirmed_at, Some(t2));
    assert_eq!(confirmed.undeliverable_at, None);
    // Pausing again does not mark anyone.
    store.set_paused(bouncing, true, t2).await.unwrap();
    assert_eq!(get_registrant(store, bouncing).await.undeliverable_at, None);

    for row in [&later_to_bouncing, &to_neighbour, &unrelated] {
        store.outbox_delivered(row.id).await.unwrap();
    }
}
