//! Conformance cases for the data lifecycle (`LifecycleStore`): the purge after an appointment
//! and its anonymous counters, expiry of sessions, account links and login failures, the
//! inactivity warning and purge, the purge preview, key rotation, and the outbox rows that go
//! with a deleted person or offer.
//!
//! Most of these methods work on the whole database (every finished offer, every expired
//! session, every ciphertext). The cases that call them run in the 1980s ([`era`]), before any
//! other case's rows, so their cut-offs never reach rows of other cases; the totals they check
//! (purged offers, preview counts, ciphertexts per key) expect the database to be their own
//! (the harness gives every case a fresh database).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use restdose_domain::Postcode;
use std::collections::HashSet;
use uuid::Uuid;

use super::accounts::{account_token, new_session};
use super::matcher::{
    invitation, is_stored, mail, mail_about, new_claim, stored_mails, stored_of, wave,
};
use super::offers::{book, new_offer, practice};
use super::{
    get, insert_active_person, insert_person, join_all, minutes, ms, person, random_bytes, token,
    warm_up,
};
use crate::{
    AccountTokenPurpose, BookingStatus, CheckInOutcome, Ciphertext, ClaimOutcome, EncryptedColumn,
    Metric, NewBooking, NewClaim, NewInvitation, NewOffer, NewWave, OutboxRow, PurgePreview,
    PurgedOffer, RegistrantStatus, StatRow, Store, StoredEmail, TokenPurpose,
};

// --- fixtures ---------------------------------------------------------------------------------

/// The lifecycle cases' clock: long before every other case's rows.
pub(super) fn era() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1985, 6, 1, 9, 0, 0).unwrap() + ms(456)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

pub(super) fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn stat(day: NaiveDate, area: &str, metric: Metric, value: i64) -> StatRow {
    StatRow {
        day,
        area: area.to_owned(),
        metric,
        value,
    }
}

/// Rows in the order `stats()` returns them: by day, area, metric name.
fn sorted(mut rows: Vec<StatRow>) -> Vec<StatRow> {
    rows.sort_by(|a, b| {
        (a.day, a.area.as_str(), a.metric.as_str()).cmp(&(
            b.day,
            b.area.as_str(),
            b.metric.as_str(),
        ))
    });
    rows
}

/// The six counters one purged offer (or several, summed) adds.
#[allow(clippy::too_many_arguments)]
fn offer_stats(
    day: NaiveDate,
    area: &str,
    offers: i64,
    doses_offered: i64,
    doses_placed: i64,
    doses_unused: i64,
    invitations: i64,
    claims: i64,
) -> Vec<StatRow> {
    vec![
        stat(day, area, Metric::Offers, offers),
        stat(day, area, Metric::DosesOffered, doses_offered),
        stat(day, area, Metric::DosesPlaced, doses_placed),
        stat(day, area, Metric::DosesUnused, doses_unused),
        stat(day, area, Metric::Invitations, invitations),
        stat(day, area, Metric::Claims, claims),
    ]
}

/// An open offer of `doses` at `postcode` by `practice_id`, created at `at` (it starts an hour
/// later and ends 3 h 500 ms after `at`).
pub(super) async fn offer_at(
    store: &dyn Store,
    practice_id: Uuid,
    at: DateTime<Utc>,
    doses: i32,
    postcode: &str,
) -> NewOffer {
    let mut offer = new_offer(practice_id, at);
    offer.doses = doses;
    offer.postcode = Postcode::from_trusted(postcode.to_owned());
    store
        .insert_offer(&offer)
        .await
        .expect("insert_offer failed");
    offer
}

/// A confirmed person in line since `at`, with their manage link's hash.
pub(super) async fn waiting_since(store: &dyn Store, at: DateTime<Utc>) -> (Uuid, Vec<u8>) {
    let (new, manage) = insert_active_person(store, at, at).await;
    (new.id, manage.hash)
}

/// Invites `people` in wave `number` at `at` (each mail is about the person and the offer).
pub(super) async fn invite(
    store: &dyn Store,
    offer_id: Uuid,
    number: i32,
    people: &[Uuid],
    at: DateTime<Utc>,
) -> NewWave {
    let invitations: Vec<NewInvitation> = people
        .iter()
        .map(|p| invitation(*p, 1.0, at + minutes(30)))
        .collect();
    let recorded = wave(offer_id, number, at, &invitations);
    assert_eq!(
        store
            .record_wave(&recorded)
            .await
            .expect("record_wave failed") as usize,
        people.len()
    );
    recorded
}

/// Books the dose of an invitation at `now`; the confirmation is about the person and the
/// offer.
pub(super) async fn claimed(
    store: &dyn Store,
    invitation: &NewInvitation,
    offer_id: Uuid,
    now: DateTime<Utc>,
) -> NewClaim {
    let mut claim = new_claim(invitation, now);
    claim.confirmation.offer_id = Some(offer_id);
    assert_eq!(
        store.claim(&claim).await.expect("claim failed"),
        ClaimOutcome::Booked
    );
    claim
}

/// The ids of `mine` still in the outbox.
async fn mails_left(store: &dyn Store, mine: &[&OutboxRow]) -> HashSet<Uuid> {
    stored_of(store, mine).await.iter().map(|m| m.id).collect()
}

fn ids(mails: &[&OutboxRow]) -> HashSet<Uuid> {
    mails.iter().map(|m| m.id).collect()
}

pub(super) async fn exists(store: &dyn Store, id: Uuid) -> bool {
    store
        .registrant(id)
        .await
        .expect("registrant() failed")
        .is_some()
}

async fn has_manage_link(store: &dyn Store, hash: &[u8]) -> bool {
    store
        .find_token(hash, TokenPurpose::Manage, era())
        .await
        .expect("find_token failed")
        .is_some()
}

// --- the purge after the appointment ----------------------------------------------------------

pub async fn purge_deletes_a_finished_offer_with_the_people_who_came(store: &dyn Store) {
    let e = era();
    let rows = practice(store).await;
    let practice_id = rows.account.id;
    let done = offer_at(store, practice_id, e, 5, "10115").await;
    // Ends an hour after `done`: within the cut-off.
    let later = offer_at(store, practice_id, e + hours(1), 2, "10115").await;

    let (booked, booked_link) = waiting_since(store, e).await;
    let (checked_in, checked_in_link) = waiting_since(store, e).await;
    let (no_show, no_show_link) = waiting_since(store, e).await;
    let (cancelled, cancelled_link) = waiting_since(store, e).await;
    let (invited, invited_link) = waiting_since(store, e).await;
    let (bystander, bystander_link) = waiting_since(store, e).await;
    let (later_booked, later_booked_link) = waiting_since(store, e).await;

    let t1 = e + minutes(1);
    let first = invite(
        store,
        done.id,
        1,
        &[booked, checked_in, no_show, cancelled, invited],
        t1,
    )
    .await;
    let invs: Vec<&NewInvitation> = first.invitations.iter().map(|(i, _)| i).collect();
    let t2 = t1 + minutes(1);
    let claims = [
        claimed(store, invs[0], done.id, t2).await,
        claimed(store, invs[1], done.id, t2).await,
        claimed(store, invs[2], done.id, t2).await,
        claimed(store, invs[3], done.id, t2).await,
    ];
    let at_the_door = done.starts_at + minutes(5);
    assert_eq!(
        store
            .check_in(done.id, &claims[1].code, at_the_door)
            .await
            .unwrap(),
        CheckInOutcome::CheckedIn
    );
    assert!(
        store
            .mark_no_show(done.id, &claims[2].code, at_the_door)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .cancel_booking(&claims[3].booking_token_hash, t2 + minutes(1))
            .await
            .unwrap(),
        Some(done.id)
    );

    let later_wave = invite(
        store,
        later.id,
        1,
        &[later_booked],
        e + hours(1) + minutes(1),
    )
    .await;
    let later_claim = claimed(
        store,
        &later_wave.invitations[0].0,
        later.id,
        e + hours(1) + minutes(2),
    )
    .await;

    let about_booked = mail_about(e, Some(booked), None);
    let about_done = mail_about(e, None, Some(done.id));
    let about_cancelled = mail_about(e, Some(cancelled), None);
    let about_bystander = mail_about(e, Some(bystander), None);
    let neutral = mail(e);
    store
        .enqueue_mails(&[
            about_booked.clone(),
            about_done.clone(),
            about_cancelled.clone(),
            about_bystander.clone(),
            neutral.clone(),
        ])
        .await
        .unwrap();

    let mut all_mails: Vec<&OutboxRow> = first.invitations.iter().map(|(_, m)| m).collect();
    all_mails.extend(claims.iter().map(|c| &c.confirmation));
    all_mails.extend([
        &later_wave.invitations[0].1,
        &later_claim.confirmation,
        &about_booked,
        &about_done,
        &about_cancelled,
        &about_bystander,
        &neutral,
    ]);
    assert_eq!(
        stored_of(store, &all_mails).await,
        all_mails.iter().map(|m| (*m).clone()).collect::<Vec<_>>(),
        "every mail is stored with the person and offer it is about"
    );

    // Only offers that ended before the cut-off.
    assert_eq!(
        store.purge_finished_offers(done.ends_at, 10).await.unwrap(),
        vec![]
    );
    let cut_off = done.ends_at + ms(1);
    assert_eq!(
        store.purge_finished_offers(cut_off, 0).await.unwrap(),
        vec![]
    );
    assert!(store.offer(done.id).await.unwrap().is_some());
    assert_eq!(
        store.purge_finished_offers(cut_off, 10).await.unwrap(),
        vec![PurgedOffer {
            offer_id: done.id,
            people_deleted: 3,
        }]
    );

    // The offer with its invitations and bookings.
    assert_eq!(store.offer(done.id).await.unwrap(), None);
    assert_eq!(store.bookings_of(done.id).await.unwrap(), vec![]);
    for inv in &invs {
        assert_eq!(
            store.invitation_by_token(&inv.token_hash).await.unwrap(),
            None
        );
    }
    for claim in &claims {
        assert_eq!(
            store
                .booking_by_token(&claim.booking_token_hash)
                .await
                .unwrap(),
            None
        );
    }
    // The people who booked, came or did not come, with their links.
    for (id, link) in [
        (booked, &booked_link),
        (checked_in, &checked_in_link),
        (no_show, &no_show_link),
    ] {
        assert!(!exists(store, id).await, "person {id} was kept");
        assert!(!has_manage_link(store, link).await);
    }
    // Not those who cancelled, were only invited, or had nothing to do with the offer.
    for (id, link) in [
        (cancelled, &cancelled_link),
        (invited, &invited_link),
        (bystander, &bystander_link),
        (later_booked, &later_booked_link),
    ] {
        assert!(exists(store, id).await, "person {id} was deleted");
        assert!(has_manage_link(store, link).await);
    }
    // Mails about the offer or about the deleted people are gone; the rest stay.
    assert_eq!(
        mails_left(store, &all_mails).await,
        ids(&[
            &later_wave.invitations[0].1,
            &later_claim.confirmation,
            &about_cancelled,
            &about_bystander,
            &neutral,
        ])
    );

    // The other offer, the practice and its account stay.
    let kept = store.bookings_of(later.id).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, BookingStatus::Booked);
    assert_eq!(
        store
            .booking_by_token(&later_claim.booking_token_hash)
            .await
            .unwrap()
            .map(|b| b.registrant_id),
        Some(Some(later_booked))
    );
    assert!(store.offer(later.id).await.unwrap().is_some());
    assert!(store.practice(practice_id).await.unwrap().is_some());
    assert!(store.account(practice_id).await.unwrap().is_some());

    // Only counters are left of it: on the day it took place, in its postcode area.
    let on = done.starts_at.date_naive();
    assert_eq!(
        store.stats(on, on).await.unwrap(),
        sorted(offer_stats(on, "10", 1, 5, 2, 3, 5, 4))
    );

    // Nothing is purged twice.
    assert_eq!(
        store.purge_finished_offers(cut_off, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.stats(on, on).await.unwrap(),
        sorted(offer_stats(on, "10", 1, 5, 2, 3, 5, 4))
    );
}

pub async fn purge_counters_add_up_per_day_and_area(store: &dyn Store) {
    let e = era();
    let first_day = day(1985, 6, 1);
    let second_day = day(1985, 6, 2);
    let practice_id = practice(store).await.account.id;
    store
        .bump_stat(first_day, "10", Metric::Signups, 7)
        .await
        .unwrap();

    // x: 3 invited, 2 claimed, one of them cancelled.
    let x = offer_at(store, practice_id, e, 4, "10115").await;
    let (p1, p2, p3) = (
        waiting_since(store, e).await.0,
        waiting_since(store, e).await.0,
        waiting_since(store, e).await.0,
    );
    let x_wave = invite(store, x.id, 1, &[p1, p2, p3], e + minutes(1)).await;
    claimed(store, &x_wave.invitations[0].0, x.id, e + minutes(2)).await;
    let to_cancel = claimed(store, &x_wave.invitations[1].0, x.id, e + minutes(2)).await;
    store
        .cancel_booking(&to_cancel.booking_token_hash, e + minutes(3))
        .await
        .unwrap()
        .expect("the booking is cancelled");

    // y: the same day and area, overbooked by hand (two bookings of one dose), one of them
    // without a person.
    let y = offer_at(store, practice_id, e + minutes(1), 1, "10117").await;
    let q1 = waiting_since(store, e).await.0;
    book(store, y.id, Some(q1), e + minutes(2)).await;
    book(store, y.id, None, e + minutes(2)).await;

    // z: another area, nobody came.
    let z = offer_at(store, practice_id, e + minutes(2), 2, "80331").await;

    // w: the next day, one no-show.
    let w = offer_at(store, practice_id, e + Duration::days(1), 3, "10115").await;
    let q2 = waiting_since(store, e).await.0;
    let missed: NewBooking = book(store, w.id, Some(q2), e + Duration::days(1)).await;
    assert!(
        store
            .mark_no_show(w.id, &missed.code, w.starts_at)
            .await
            .unwrap()
    );

    // Oldest end first, at most `limit` per call.
    let cut_off = w.ends_at + ms(1);
    assert_eq!(
        store.purge_finished_offers(cut_off, 2).await.unwrap(),
        vec![
            PurgedOffer {
                offer_id: x.id,
                people_deleted: 1,
            },
            PurgedOffer {
                offer_id: y.id,
                people_deleted: 1,
            },
        ]
    );
    assert_eq!(
        store.purge_finished_offers(cut_off, 10).await.unwrap(),
        vec![
            PurgedOffer {
                offer_id: z.id,
                people_deleted: 0,
            },
            PurgedOffer {
                offer_id: w.id,
                people_deleted: 1,
            },
        ]
    );
    for (id, kept) in [
        (p1, false),
        (p2, true),
        (p3, true),
        (q1, false),
        (q2, false),
    ] {
        assert_eq!(exists(store, id).await, kept, "person {id}");
    }

    let mut expected = offer_stats(first_day, "10", 2, 5, 3, 3, 3, 4);
    expected.push(stat(first_day, "10", Metric::Signups, 7));
    expected.extend(offer_stats(first_day, "80", 1, 2, 0, 2, 0, 0));
    expected.extend(offer_stats(second_day, "10", 1, 3, 0, 3, 0, 1));
    assert_eq!(
        store.stats(first_day, second_day).await.unwrap(),
        sorted(expected)
    );
}

/// Several workers purging at once: every offer is purged and counted exactly once.
pub async fn racing_purges_purge_each_offer_once(store: &dyn Store) {
    let e = era();
    let practice_id = practice(store).await.account.id;
    let mut offers = Vec::new();
    let mut people = Vec::new();
    for n in 0..6 {
        let offer = offer_at(store, practice_id, e + ms(n), 2, "10115").await;
        let person = waiting_since(store, e).await.0;
        let booking = book(store, offer.id, Some(person), e).await;
        assert_eq!(
            store
                .check_in(offer.id, &booking.code, offer.starts_at)
                .await
                .unwrap(),
            CheckInOutcome::CheckedIn
        );
        offers.push(offer.id);
        people.push(person);
    }
    warm_up(store).await;
    let cut_off = e + hours(4);
    let results = join_all(
        (0..4)
            .map(|_| store.purge_finished_offers(cut_off, 10))
            .collect(),
    )
    .await;
    let purged: Vec<PurgedOffer> = results
        .into_iter()
        .flat_map(|r| r.expect("purge_finished_offers failed"))
        .collect();
    let purged_ids: HashSet<Uuid> = purged.iter().map(|p| p.offer_id).collect();
    assert_eq!(purged.len(), offers.len(), "racing purges: {purged:?}");
    assert_eq!(purged_ids, offers.iter().copied().collect::<HashSet<_>>());
    assert_eq!(
        purged.iter().map(|p| p.people_deleted).sum::<u64>(),
        people.len() as u64
    );
    for id in people {
        assert!(!exists(store, id).await);
    }
    let on = day(1985, 6, 1);
    assert_eq!(
        store.stats(on, on).await.unwrap(),
        sorted(offer_stats(on, "10", 6, 12, 6, 6, 0, 6))
    );
}

pub async fn stats_are_bumped_and_read_by_day_range(store: &dyn Store) {
    let d1 = day(1984, 2, 10);
    let (d0, d2, d3) = (day(1984, 2, 9), day(1984, 2, 11), day(1984, 2, 12));
    assert_eq!(store.stats(d0, d3).await.unwrap(), vec![]);

    store.bump_stat(d1, "10", Metric::Signups, 1).await.unwrap();
    store.bump_stat(d1, "10", Metric::Signups, 2).await.unwrap();
    store.bump_stat(d1, "10", Metric::Claims, 4).await.unwrap();
    store.bump_stat(d2, "80", Metric::Offers, 5).await.unwrap();
    store
        .bump_stat(d2, "10", Metric::Invitations, 6)
        .await
        .unwrap();
    store.bump_stat(d0, "10", Metric::Signups, 1).await.unwrap();
    store.bump_stat(d3, "10", Metric::Signups, 1).await.unwrap();

    // Both ends are included; by day, area and metric.
    assert_eq!(
        store.stats(d1, d2).await.unwrap(),
        vec![
            stat(d1, "10", Metric::Claims, 4),
            stat(d1, "10", Metric::Signups, 3),
            stat(d2, "10", Metric::Invitations, 6),
            stat(d2, "80", Metric::Offers, 5),
        ]
    );
    assert_eq!(
        store.stats(d3, d3).await.unwrap(),
        vec![stat(d3, "10", Metric::Signups, 1)]
    );
    assert_eq!(store.stats(d2, d1).await.unwrap(), vec![]);
    assert_eq!(store.stats(d0, d3).await.unwrap().len(), 6);
}

// --- expiry -----------------------------------------------------------------------------------

pub async fn expired_sessions_account_links_and_old_login_failures_are_purged(store: &dyn Store) {
    let e = era();
    let account = practice(store).await.account.id;

    // Sessions: expired at `now`, or a millisecond later.
    let gone = new_session(account, e - hours(1), hours(1));
    let kept = new_session(account, e - hours(1), hours(1) + ms(1));
    store.insert_session(&gone).await.unwrap();
    store.insert_session(&kept).await.unwrap();
    assert_eq!(store.purge_expired_sessions(e).await.unwrap(), 1);
    assert_eq!(
        store.session(&gone.id_hash, e - hours(1)).await.unwrap(),
        None
    );
    assert!(store.session(&kept.id_hash, e).await.unwrap().is_some());
    assert_eq!(store.purge_expired_sessions(e).await.unwrap(), 0);

    // Account links, either purpose.
    let verify = account_token(
        account,
        AccountTokenPurpose::VerifyEmail,
        e - hours(2),
        hours(2),
    );
    let reset = account_token(
        account,
        AccountTokenPurpose::ResetPassword,
        e - hours(3),
        hours(1),
    );
    let live = account_token(account, AccountTokenPurpose::ResetPassword, e, ms(1));
    for link in [&verify, &reset, &live] {
        store.insert_account_token(link).await.unwrap();
    }
    assert_eq!(store.purge_expired_account_tokens(e).await.unwrap(), 2);
    assert_eq!(
        store
            .peek_account_token(&verify.hash, AccountTokenPurpose::VerifyEmail, e - hours(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .peek_account_token(
                &reset.hash,
                AccountTokenPurpose::ResetPassword,
                e - hours(3)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .peek_account_token(&live.hash, AccountTokenPurpose::ResetPassword, e)
            .await
            .unwrap(),
        Some(account)
    );
    assert_eq!(store.purge_expired_account_tokens(e).await.unwrap(), 0);

    // Login failures: old and not locked at the cut-off.
    let key = || format!("ip:lifecycle-{}", Uuid::new_v4().simple());
    let (stale, recent, locked, lock_ended) = (key(), key(), key(), key());
    store
        .record_login_failure(&stale, e - hours(1))
        .await
        .unwrap();
    store.record_login_failure(&recent, e).await.unwrap();
    store
        .record_login_failure(&locked, e - hours(1))
        .await
        .unwrap();
    store.lock_login(&locked, e + minutes(1)).await.unwrap();
    store
        .record_login_failure(&lock_ended, e - hours(1))
        .await
        .unwrap();
    store.lock_login(&lock_ended, e).await.unwrap();
    assert_eq!(store.purge_old_login_failures(e).await.unwrap(), 2);
    assert_eq!(store.throttle_state(&stale).await.unwrap(), None);
    assert_eq!(store.throttle_state(&lock_ended).await.unwrap(), None);
    assert!(store.throttle_state(&recent).await.unwrap().is_some());
    assert!(store.throttle_state(&locked).await.unwrap().is_some());
    assert_eq!(store.purge_old_login_failures(e).await.unwrap(), 0);
}

// --- inactivity -------------------------------------------------------------------------------

pub async fn paused_people_are_warned_and_purged_only_while_still_paused(store: &dyn Store) {
    let e = era();
    let pause = |id: Uuid, at: DateTime<Utc>| async move {
        assert_eq!(
            store.set_paused(id, true, at).await.unwrap(),
            RegistrantStatus::Paused
        );
    };
    let p1 = waiting_since(store, e).await.0;
    let p2 = waiting_since(store, e).await.0;
    let p3 = waiting_since(store, e).await.0;
    let active = waiting_since(store, e).await.0;
    let (pending, _, _) = insert_person(store, e).await;
    pause(p1, e).await;
    pause(p2, e + minutes(1)).await;
    pause(p3, e + hours(2)).await;

    let to_warn = |before: DateTime<Utc>, limit: u32| async move {
        store
            .paused_to_warn(before, limit)
            .await
            .expect("paused_to_warn failed")
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<Uuid>>()
    };
    // Paused before the cut-off, longest paused first.
    let cut_off = e + hours(1);
    assert_eq!(to_warn(cut_off, 10).await, vec![p1, p2]);
    assert_eq!(to_warn(cut_off, 1).await, vec![p1]);
    assert_eq!(to_warn(e, 10).await, Vec::<Uuid>::new());
    let full = store.paused_to_warn(cut_off, 1).await.unwrap();
    assert_eq!(full, vec![get(store, p1).await]);

    // Warned once: with the mail, atomically.
    let w = e + hours(2);
    let warning = mail_about(w, Some(p1), None);
    assert!(store.mark_inactivity_warned(p1, w, &warning).await.unwrap());
    assert!(is_stored(store, &warning).await);
    assert_eq!(to_warn(cut_off, 10).await, vec![p2]);
    // Not paused: no warning, no mail.
    for id in [active, pending.id, Uuid::new_v4()] {
        let not_sent = mail_about(w, None, None);
        assert!(
            !store
                .mark_inactivity_warned(id, w, &not_sent)
                .await
                .unwrap()
        );
        assert!(!is_stored(store, &not_sent).await);
    }
    let warning_2 = mail_about(w, Some(p2), None);
    assert!(
        store
            .mark_inactivity_warned(p2, w, &warning_2)
            .await
            .unwrap()
    );
    assert_eq!(to_warn(cut_off, 10).await, Vec::<Uuid>::new());

    // Coming back clears the warning: paused again, p2 is warned again in time.
    assert_eq!(
        store.set_paused(p2, false, w + minutes(1)).await.unwrap(),
        RegistrantStatus::Active
    );
    assert_eq!(get(store, p2).await.paused_at, None);
    pause(p2, w + minutes(2)).await;
    assert_eq!(to_warn(w + minutes(3), 10).await, vec![p3, p2]);

    // Only people warned before the cut-off and still paused are deleted, with their mails.
    assert_eq!(store.purge_inactive_paused(w).await.unwrap(), 0);
    assert_eq!(store.purge_inactive_paused(w + ms(1)).await.unwrap(), 1);
    assert!(!exists(store, p1).await);
    assert!(!is_stored(store, &warning).await);
    for id in [p2, p3, active, pending.id] {
        assert!(exists(store, id).await, "person {id} was deleted");
    }
    assert!(is_stored(store, &warning_2).await);
    assert_eq!(
        store
            .purge_inactive_paused(w + Duration::days(365))
            .await
            .unwrap(),
        0
    );
}

// --- preview ----------------------------------------------------------------------------------

pub async fn purge_preview_counts_what_the_purges_delete(store: &dyn Store) {
    let e = era();
    let now = e + Duration::days(1);
    let offers_ended_before = now;
    let unconfirmed_before = e;
    let warned_before = now;
    let preview = || async move {
        store
            .purge_preview(offers_ended_before, unconfirmed_before, now, warned_before)
            .await
            .expect("purge_preview failed")
    };
    assert_eq!(preview().await, PurgePreview::default());

    // Two finished offers; `a` did not come to the first and came to the second (counted once),
    // `b` booked the first; a booking without a person. A running offer is not counted.
    let practice_id = practice(store).await.account.id;
    let f1 = offer_at(store, practice_id, e, 3, "10115").await;
    let f2 = offer_at(store, practice_id, e + minutes(1), 3, "10115").await;
    let running = offer_at(store, practice_id, now, 3, "10115").await;
    let a = waiting_since(store, e).await.0;
    let b = waiting_since(store, e).await.0;
    let a_first = book(store, f1.id, Some(a), e).await;
    assert!(
        store
            .mark_no_show(f1.id, &a_first.code, f1.starts_at)
            .await
            .unwrap()
    );
    let a_second = book(store, f2.id, Some(a), e).await;
    assert_eq!(
        store
            .check_in(f2.id, &a_second.code, f2.starts_at)
            .await
            .unwrap(),
        CheckInOutcome::CheckedIn
    );
    book(store, f1.id, Some(b), e).await;
    book(store, f2.id, None, e).await;
    let c = waiting_since(store, e).await.0;
    book(store, running.id, Some(c), e).await;

    // Unconfirmed: last mail before the cut-off (the other one at it).
    let mut unconfirmed = person(e - hours(30));
    unconfirmed.last_mail_at = Some(e - ms(1));
    store.insert_registrant(&unconfirmed, &[]).await.unwrap();
    let mut fresh = person(e - hours(30));
    fresh.last_mail_at = Some(e);
    store.insert_registrant(&fresh, &[]).await.unwrap();

    // Expired links: one of a person, one of an account.
    let v = waiting_since(store, e).await.0;
    let old_link = token(v, TokenPurpose::Manage, e, hours(1));
    store
        .insert_tokens(std::slice::from_ref(&old_link))
        .await
        .unwrap();
    let old_verify = account_token(practice_id, AccountTokenPurpose::VerifyEmail, e, hours(1));
    store.insert_account_token(&old_verify).await.unwrap();

    // Sessions: one expired.
    let expired = new_session(practice_id, e, hours(1));
    let live = new_session(practice_id, e, Duration::days(2));
    store.insert_session(&expired).await.unwrap();
    store.insert_session(&live).await.unwrap();

    // Paused and warned: before the cut-off, and at it.
    let i = waiting_since(store, e).await.0;
    let j = waiting_since(store, e).await.0;
    for (id, warned_at) in [(i, e + hours(1)), (j, warned_before)] {
        store.set_paused(id, true, e).await.unwrap();
        assert!(
            store
                .mark_inactivity_warned(id, warned_at, &mail_about(warned_at, Some(id), None))
                .await
                .unwrap()
        );
    }

    let expected = PurgePreview {
        finished_offers: 2,
        people_of_finished_offers: 2,
        unconfirmed: 1,
        expired_links: 2,
        expired_sessions: 1,
        inactive_paused: 1,
    };
    assert_eq!(preview().await, expected);
    // Nothing was deleted.
    assert_eq!(preview().await, expected);
    assert!(store.offer(f1.id).await.unwrap().is_some());
    assert_eq!(store.bookings_of(f2.id).await.unwrap().len(), 2);
    for id in [a, b, unconfirmed.id, i] {
        assert!(exists(store, id).await);
    }
    assert!(
        store
            .find_token(&old_link.hash, TokenPurpose::Manage, e)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.session(&expired.id_hash, e).await.unwrap().is_some());

    // The purges delete exactly that.
    let purged = store
        .purge_finished_offers(offers_ended_before, 100)
        .await
        .unwrap();
    assert_eq!(purged.len() as u64, expected.finished_offers);
    assert_eq!(
        purged.iter().map(|p| p.people_deleted).sum::<u64>(),
        expected.people_of_finished_offers
    );
    assert_eq!(
        store.purge_unconfirmed(unconfirmed_before).await.unwrap(),
        expected.unconfirmed
    );
    assert_eq!(
        store.purge_expired_tokens(now).await.unwrap()
            + store.purge_expired_account_tokens(now).await.unwrap(),
        expected.expired_links
    );
    assert_eq!(
        store.purge_expired_sessions(now).await.unwrap(),
        expected.expired_sessions
    );
    assert_eq!(
        store.purge_inactive_paused(warned_before).await.unwrap(),
        expected.inactive_paused
    );
    assert_eq!(preview().await, PurgePreview::default());
    for (id, kept) in [
        (a, false),
        (b, false),
        (c, true),
        (unconfirmed.id, false),
        (fresh.id, true),
        (v, true),
        (i, false),
        (j, true),
    ] {
        assert_eq!(exists(store, id).await, kept, "person {id}");
    }
    assert!(store.offer(running.id).await.unwrap().is_some());
}

// --- key rotation -----------------------------------------------------------------------------

/// Expects the database to be its own (it walks every ciphertext).
pub async fn key_rotation_walks_both_columns_and_swaps_only_unchanged_ciphertexts(
    store: &dyn Store,
) {
    let e = era();
    let under = |key_id: i32| {
        let mut new = person(e);
        new.email.key_id = key_id;
        new
    };
    let (r1, r2, r3) = (under(1), under(2), under(1));
    for new in [&r1, &r2, &r3] {
        store.insert_registrant(new, &[]).await.unwrap();
    }
    let mail_under = |key_id: i32| OutboxRow { key_id, ..mail(e) };
    let (m1, m2, m3) = (mail_under(1), mail_under(2), mail_under(3));
    store
        .enqueue_mails(&[m1.clone(), m2.clone(), m3.clone()])
        .await
        .unwrap();

    let regs = EncryptedColumn::RegistrantEmail;
    let outbox = EncryptedColumn::OutboxPayload;
    assert_eq!(
        store.ciphertexts_by_key(regs).await.unwrap(),
        vec![(1, 2), (2, 1)]
    );
    assert_eq!(
        store.ciphertexts_by_key(outbox).await.unwrap(),
        vec![(1, 1), (2, 1), (3, 1)]
    );

    // Not under key 2, by row id.
    let mut old_regs: Vec<Ciphertext> = [&r1, &r3]
        .iter()
        .map(|r| Ciphertext {
            id: r.id,
            key_id: 1,
            blob: r.email.ciphertext.clone(),
        })
        .collect();
    old_regs.sort_by_key(|c| c.id);
    assert_eq!(
        store.ciphertexts_not_under(regs, 2, 10).await.unwrap(),
        old_regs
    );
    assert_eq!(
        store.ciphertexts_not_under(regs, 2, 1).await.unwrap(),
        old_regs[..1].to_vec()
    );
    assert_eq!(
        store.ciphertexts_not_under(regs, 2, 0).await.unwrap(),
        vec![]
    );
    let mut old_mails: Vec<Ciphertext> = [&m1, &m3]
        .iter()
        .map(|m| Ciphertext {
            id: m.id,
            key_id: m.key_id,
            blob: m.payload.clone(),
        })
        .collect();
    old_mails.sort_by_key(|c| c.id);
    assert_eq!(
        store.ciphertexts_not_under(outbox, 2, 10).await.unwrap(),
        old_mails
    );

    // Swapped once: a second swap from the same old value is refused.
    let first = &old_regs[0];
    let index = |id: Uuid| {
        [&r1, &r3]
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.email.index.clone())
            .unwrap()
    };
    let new_blob = random_bytes(52);
    assert!(
        store
            .replace_ciphertext(regs, first, 2, &new_blob)
            .await
            .unwrap()
    );
    let swapped = StoredEmail {
        key_id: 2,
        ciphertext: new_blob.clone(),
        index: index(first.id),
    };
    assert_eq!(get(store, first.id).await.email, swapped);
    assert!(
        !store
            .replace_ciphertext(regs, first, 3, &random_bytes(52))
            .await
            .unwrap()
    );
    assert_eq!(get(store, first.id).await.email, swapped);

    // Stale blob, stale key, unknown row, wrong table: refused, nothing changed.
    let second = &old_regs[1];
    for stale in [
        Ciphertext {
            blob: random_bytes(52),
            ..second.clone()
        },
        Ciphertext {
            key_id: 2,
            ..second.clone()
        },
        Ciphertext {
            id: Uuid::new_v4(),
            ..second.clone()
        },
    ] {
        assert!(
            !store
                .replace_ciphertext(regs, &stale, 2, &random_bytes(52))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .replace_ciphertext(outbox, second, 2, &random_bytes(52))
            .await
            .unwrap()
    );
    assert_eq!(
        get(store, second.id).await.email,
        StoredEmail {
            key_id: 1,
            ciphertext: second.blob.clone(),
            index: index(second.id),
        }
    );
    assert_eq!(
        store.ciphertexts_not_under(regs, 2, 10).await.unwrap(),
        vec![second.clone()]
    );
    assert!(
        store
            .replace_ciphertext(regs, second, 2, &random_bytes(52))
            .await
            .unwrap()
    );
    assert_eq!(
        store.ciphertexts_not_under(regs, 2, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(store.ciphertexts_by_key(regs).await.unwrap(), vec![(2, 3)]);

    // The outbox the same way; the mail keeps everything else.
    let new_payload = random_bytes(80);
    let m1_old = old_mails.iter().find(|c| c.id == m1.id).unwrap();
    assert!(
        store
            .replace_ciphertext(outbox, m1_old, 2, &new_payload)
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_ciphertext(outbox, m1_old, 2, &new_payload)
            .await
            .unwrap()
    );
    let stored = stored_mails(store).await;
    let m1_now = stored.iter().find(|m| m.id == m1.id).unwrap();
    assert_eq!(
        *m1_now,
        OutboxRow {
            key_id: 2,
            payload: new_payload,
            ..m1.clone()
        }
    );
    let m3_old = old_mails.iter().find(|c| c.id == m3.id).unwrap();
    assert!(
        store
            .replace_ciphertext(outbox, m3_old, 2, &random_bytes(80))
            .await
            .unwrap()
    );
    assert_eq!(
        store.ciphertexts_not_under(outbox, 2, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.ciphertexts_by_key(outbox).await.unwrap(),
        vec![(2, 3)]
    );
}

// --- mails go with their person and offer -----------------------------------------------------

pub async fn deleting_a_registrant_or_an_offer_deletes_their_mails(store: &dyn Store) {
    let at = super::t0();
    let rows = practice(store).await;
    let offer = offer_at(store, rows.account.id, at, 3, "10115").await;
    let p = waiting_since(store, at).await.0;
    let q = waiting_since(store, at).await.0;

    let about_p = mail_about(at, Some(p), None);
    let about_p_and_offer = mail_about(at, Some(p), Some(offer.id));
    let about_offer = mail_about(at, None, Some(offer.id));
    let about_q = mail_about(at, Some(q), None);
    let neutral = mail(at);
    let all = [
        &about_p,
        &about_p_and_offer,
        &about_offer,
        &about_q,
        &neutral,
    ];
    store
        .enqueue_mails(&all.iter().map(|m| (*m).clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    // Read back in full, with whom and what they are about.
    assert_eq!(
        stored_of(store, &all).await,
        all.iter().map(|m| (*m).clone()).collect::<Vec<_>>()
    );

    // A mail about nobody who exists is refused.
    let orphan = mail_about(at, Some(Uuid::new_v4()), None);
    assert!(
        store
            .enqueue_mails(std::slice::from_ref(&orphan))
            .await
            .is_err()
    );
    let orphan_offer = mail_about(at, None, Some(Uuid::new_v4()));
    assert!(
        store
            .enqueue_mails(std::slice::from_ref(&orphan_offer))
            .await
            .is_err()
    );

    assert!(store.delete_registrant(p).await.unwrap());
    assert_eq!(
        mails_left(store, &all).await,
        ids(&[&about_offer, &about_q, &neutral])
    );

    // Deleting the practice's account deletes its offers, and with them their mails.
    assert!(store.delete_account(rows.account.id).await.unwrap());
    assert_eq!(store.offer(offer.id).await.unwrap(), None);
    assert_eq!(mails_left(store, &all).await, ids(&[&about_q, &neutral]));
    assert!(exists(store, q).await);
}
