//! The conformance suite every `Store` backend must pass.
//!
//! Test code in a library so that the PostgreSQL and SQLite backends run the very same cases:
//! each case is a `pub async fn(&dyn Store)` that panics on failure. No runtime and no SQL here;
//! the harness (`tests/tests/integration/store_conformance.rs`) gives every case a fresh
//! database per backend. Compiled only with the `conformance` feature, which only the test
//! crate (`tests/`) enables: production builds do not contain it.
//!
//! Cases only touch rows they created themselves (random ids, blind indexes, token hashes and
//! postcode countries), so they may also share one database and run concurrently.
//!
//! The registrant cases live here; the practice portal's (`PortalStore`) in `accounts.rs`
//! (accounts, links, sessions, throttling, API tokens) and `offers.rs` (offers, bookings); the
//! matcher's and the outbox's (`MatcherStore`) in `matcher.rs`, which take a
//! [`MatcherCaseStore`] (see there for the few cases that need a database of their own); the
//! data lifecycle's (`LifecycleStore`: purges, counters, inactivity, key rotation) in
//! `lifecycle.rs`, which run in an era of their own (see there).
//!
//! To add a case: write it as a top-level `pub async fn` in this file or in a file of
//! `conformance/` (re-exported here with `pub use`). That is all: the test crate's build script
//! (`tests/build.rs`) finds every top-level `pub async fn` in these files and generates one test
//! per case and backend, so every top-level `pub async fn` here is a case; helpers stay private
//! (or `pub(crate)`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod lifecycle;
mod matcher;
mod offers;
mod rate_limits;
mod statistics;

pub use accounts::*;
pub use lifecycle::*;
pub use matcher::*;
pub use offers::*;
pub use rate_limits::*;
pub use statistics::*;

use crate::{
    NewRegistrant, NewToken, PostcodeRow, Registrant, RegistrantStatus, Store, StoreError,
    StoredEmail, TokenPurpose, TokenRecord,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use restdose_domain::{Lang, Postcode};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use uuid::Uuid;

// --- fixtures ---------------------------------------------------------------------------------

/// The suite's clock starts here: a fixed instant with a non-zero millisecond part, so that a
/// backend that drops milliseconds fails.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::milliseconds(123)
}

fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    out.truncate(len);
    out
}

/// A fresh pending person created at `created_at`, with random id, ciphertext and blind index.
fn person(created_at: DateTime<Utc>) -> NewRegistrant {
    NewRegistrant {
        id: Uuid::new_v4(),
        email: StoredEmail {
            key_id: 1,
            // nonce (12) + ciphertext + tag (16), as the crypto crate lays it out
            ciphertext: random_bytes(12 + 24 + 16),
            index: random_bytes(32),
        },
        postcode: Postcode::from_trusted("10115".to_owned()),
        radius_km: 10,
        language: Lang::De,
        created_at,
        last_mail_at: Some(created_at),
    }
}

fn token(
    registrant_id: Uuid,
    purpose: TokenPurpose,
    created_at: DateTime<Utc>,
    valid_for: Duration,
) -> NewToken {
    NewToken {
        hash: random_bytes(32),
        registrant_id,
        purpose,
        created_at,
        expires_at: created_at + valid_for,
    }
}

/// What `registrant()` must return right after `insert_registrant(new, ..)`.
fn as_inserted(new: &NewRegistrant) -> Registrant {
    Registrant {
        id: new.id,
        email: new.email.clone(),
        postcode: new.postcode.clone(),
        radius_km: new.radius_km,
        status: RegistrantStatus::Pending,
        language: new.language,
        created_at: new.created_at,
        confirmed_at: None,
        paused_at: None,
        last_mail_at: new.last_mail_at,
        undeliverable_at: None,
    }
}

async fn get(store: &dyn Store, id: Uuid) -> Registrant {
    store
        .registrant(id)
        .await
        .expect("registrant() failed")
        .unwrap_or_else(|| panic!("registrant {id} not found"))
}

/// Inserts a person with a confirmation and a manage token, returns all three.
async fn insert_person(
    store: &dyn Store,
    at: DateTime<Utc>,
) -> (NewRegistrant, NewToken, NewToken) {
    let new = person(at);
    let confirm = token(new.id, TokenPurpose::Confirm, at, Duration::hours(48));
    let manage = token(new.id, TokenPurpose::Manage, at, Duration::days(365));
    store
        .insert_registrant(&new, &[confirm.clone(), manage.clone()])
        .await
        .expect("insert_registrant failed");
    (new, confirm, manage)
}

/// Inserts and confirms a person at `confirmed_at`.
async fn insert_active_person(
    store: &dyn Store,
    at: DateTime<Utc>,
    confirmed_at: DateTime<Utc>,
) -> (NewRegistrant, NewToken) {
    let (new, confirm, manage) = insert_person(store, at).await;
    let confirmed = store
        .confirm_registrant(&confirm.hash, confirmed_at)
        .await
        .expect("confirm_registrant failed");
    assert_eq!(
        confirmed,
        Some(new.id),
        "fresh confirmation token must confirm"
    );
    (new, manage)
}

/// Polls all futures concurrently until each is done (a runtime-free `join_all`), so that racing
/// calls really overlap on the database.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// Makes the backend open several connections first, so that racing calls start together
/// instead of queueing behind connection set-up.
async fn warm_up(store: &dyn Store) {
    for result in join_all((0..8).map(|_| store.ping()).collect()).await {
        result.expect("ping failed");
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

// --- cases ------------------------------------------------------------------------------------

pub async fn backend_answers_ping(store: &dyn Store) {
    store.ping().await.expect("ping failed");
    assert!(
        matches!(store.backend(), "postgres" | "sqlite"),
        "unexpected backend name {:?}",
        store.backend()
    );
    // Applying the migrations again is a no-op.
    store.migrate().await.expect("second migrate() failed");
}

pub async fn insert_and_read_back_a_registrant(store: &dyn Store) {
    let (new, _, _) = insert_person(store, t0()).await;

    let by_id = get(store, new.id).await;
    assert_eq!(by_id, as_inserted(&new));

    let by_index = store
        .registrant_by_email_index(&new.email.index)
        .await
        .unwrap()
        .expect("registrant not found by its blind index");
    assert_eq!(by_index, by_id);

    // A person without a first mail has no throttle yet.
    let mut quiet = person(t0() + ms(1));
    quiet.last_mail_at = None;
    quiet.postcode = Postcode::from_trusted("80331".to_owned());
    quiet.radius_km = 50;
    quiet.language = Lang::En;
    quiet.email.key_id = 7;
    store.insert_registrant(&quiet, &[]).await.unwrap();
    assert_eq!(get(store, quiet.id).await, as_inserted(&quiet));

    assert_eq!(store.registrant(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store
            .registrant_by_email_index(&random_bytes(32))
            .await
            .unwrap(),
        None
    );
}

pub async fn duplicate_email_index_is_a_conflict_and_stores_nothing(store: &dyn Store) {
    let (first, _, _) = insert_person(store, t0()).await;

    let mut second = person(t0() + minutes(1));
    second.email.index = first.email.index.clone();
    let second_token = token(second.id, TokenPurpose::Confirm, t0(), Duration::hours(48));

    assert_conflict(
        store
            .insert_registrant(&second, std::slice::from_ref(&second_token))
            .await,
        "second registration with the same blind index",
    );

    assert_eq!(store.registrant(second.id).await.unwrap(), None);
    assert_eq!(
        store
            .find_token(&second_token.hash, TokenPurpose::Confirm, t0())
            .await
            .unwrap(),
        None,
        "the rejected registration's token must not be stored"
    );
    // The first person is untouched.
    assert_eq!(
        store
            .registrant_by_email_index(&first.email.index)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(first.id)
    );
}

/// The registrant row goes in first, the tokens after it: when a token fails, the whole
/// registration must be rolled back.
pub async fn failing_token_insert_stores_no_registrant(store: &dyn Store) {
    let (_, taken, _) = insert_person(store, t0()).await;

    let new = person(t0() + minutes(1));
    let fresh = token(new.id, TokenPurpose::Manage, t0(), Duration::days(30));
    let mut clash = token(new.id, TokenPurpose::Confirm, t0(), Duration::hours(48));
    clash.hash = taken.hash.clone();

    assert_conflict(
        store.insert_registrant(&new, &[fresh.clone(), clash]).await,
        "registration whose token hash is taken",
    );
    assert_eq!(store.registrant(new.id).await.unwrap(), None);
    assert_eq!(
        store
            .registrant_by_email_index(&new.email.index)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_token(&fresh.hash, TokenPurpose::Manage, t0())
            .await
            .unwrap(),
        None
    );
    // The blind index is still free.
    store.insert_registrant(&new, &[fresh]).await.unwrap();
}

pub async fn tokens_are_found_only_with_their_purpose_and_before_expiry(store: &dyn Store) {
    let new = person(t0());
    let confirm = token(new.id, TokenPurpose::Confirm, t0(), Duration::hours(1));
    store
        .insert_registrant(&new, std::slice::from_ref(&confirm))
        .await
        .unwrap();
    let manage = token(
        new.id,
        TokenPurpose::Manage,
        t0() + ms(5),
        Duration::days(30),
    );
    store
        .insert_tokens(std::slice::from_ref(&manage))
        .await
        .unwrap();
    store.insert_tokens(&[]).await.unwrap();

    let expected_confirm = TokenRecord {
        registrant_id: new.id,
        purpose: TokenPurpose::Confirm,
        expires_at: confirm.expires_at,
    };
    let expected_manage = TokenRecord {
        registrant_id: new.id,
        purpose: TokenPurpose::Manage,
        expires_at: manage.expires_at,
    };

    let find = |hash: Vec<u8>, purpose, now| async move {
        store.find_token(&hash, purpose, now).await.unwrap()
    };

    assert_eq!(
        find(confirm.hash.clone(), TokenPurpose::Confirm, t0()).await,
        Some(expected_confirm.clone())
    );
    assert_eq!(
        find(manage.hash.clone(), TokenPurpose::Manage, t0()).await,
        Some(expected_manage)
    );
    // Wrong purpose.
    assert_eq!(
        find(confirm.hash.clone(), TokenPurpose::Manage, t0()).await,
        None
    );
    assert_eq!(
        find(manage.hash.clone(), TokenPurpose::Confirm, t0()).await,
        None
    );
    // Expiry is exclusive: valid until the millisecond before `expires_at`.
    assert_eq!(
        find(
            confirm.hash.clone(),
            TokenPurpose::Confirm,
            confirm.expires_at - ms(1)
        )
        .await,
        Some(expected_confirm)
    );
    assert_eq!(
        find(
            confirm.hash.clone(),
            TokenPurpose::Confirm,
            confirm.expires_at
        )
        .await,
        None
    );
    assert_eq!(
        find(
            confirm.hash.clone(),
            TokenPurpose::Confirm,
            confirm.expires_at + minutes(1)
        )
        .await,
        None
    );
    // Unknown hash.
    assert_eq!(
        find(random_bytes(32), TokenPurpose::Confirm, t0()).await,
        None
    );
}

/// Tokens hang off a person: storing one for nobody must fail (foreign keys are enforced).
pub async fn tokens_for_a_missing_person_are_refused(store: &dyn Store) {
    let orphan = token(
        Uuid::new_v4(),
        TokenPurpose::Manage,
        t0(),
        Duration::days(30),
    );
    let result = store.insert_tokens(std::slice::from_ref(&orphan)).await;
    assert!(result.is_err(), "token for a missing person was accepted");
    assert_eq!(
        store
            .find_token(&orphan.hash, TokenPurpose::Manage, t0())
            .await
            .unwrap(),
        None
    );
}

pub async fn confirm_consumes_the_token_and_activates_once(store: &dyn Store) {
    let (new, confirm, manage) = insert_person(store, t0()).await;
    let t1 = t0() + minutes(3) + ms(7);

    assert_eq!(
        store.confirm_registrant(&confirm.hash, t1).await.unwrap(),
        Some(new.id)
    );
    let after = get(store, new.id).await;
    assert_eq!(after.status, RegistrantStatus::Active);
    assert_eq!(after.confirmed_at, Some(t1));
    assert_eq!(after.paused_at, None);
    assert_eq!(
        after.created_at, new.created_at,
        "place in line must not move"
    );

    // Single use.
    assert_eq!(
        store
            .find_token(&confirm.hash, TokenPurpose::Confirm, t1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .confirm_registrant(&confirm.hash, t1 + ms(1))
            .await
            .unwrap(),
        None
    );
    // The manage token is not touched.
    assert!(
        store
            .find_token(&manage.hash, TokenPurpose::Manage, t1)
            .await
            .unwrap()
            .is_some()
    );

    // Confirming an already active person again (a second confirmation mail) is harmless:
    // the token is consumed, the first confirmation time stays.
    let again = token(new.id, TokenPurpose::Confirm, t1, Duration::hours(48));
    store
        .insert_tokens(std::slice::from_ref(&again))
        .await
        .unwrap();
    let t2 = t1 + minutes(10);
    assert_eq!(
        store.confirm_registrant(&again.hash, t2).await.unwrap(),
        Some(new.id)
    );
    let after_again = get(store, new.id).await;
    assert_eq!(after_again.status, RegistrantStatus::Active);
    assert_eq!(after_again.confirmed_at, Some(t1));
    assert_eq!(
        store
            .find_token(&again.hash, TokenPurpose::Confirm, t2)
            .await
            .unwrap(),
        None
    );

    // Unknown token.
    assert_eq!(
        store
            .confirm_registrant(&random_bytes(32), t2)
            .await
            .unwrap(),
        None
    );
}

pub async fn manage_token_does_not_confirm(store: &dyn Store) {
    let (new, _, manage) = insert_person(store, t0()).await;
    assert_eq!(
        store
            .confirm_registrant(&manage.hash, t0() + minutes(1))
            .await
            .unwrap(),
        None
    );
    let after = get(store, new.id).await;
    assert_eq!(after.status, RegistrantStatus::Pending);
    assert_eq!(after.confirmed_at, None);
    assert!(
        store
            .find_token(&manage.hash, TokenPurpose::Manage, t0() + minutes(1))
            .await
            .unwrap()
            .is_some(),
        "a failed confirmation must not consume the manage token"
    );
}

pub async fn expired_confirm_token_does_not_confirm(store: &dyn Store) {
    let new = person(t0());
    let confirm = token(new.id, TokenPurpose::Confirm, t0(), Duration::hours(1));
    store
        .insert_registrant(&new, std::slice::from_ref(&confirm))
        .await
        .unwrap();

    for now in [confirm.expires_at, confirm.expires_at + Duration::days(3)] {
        assert_eq!(
            store.confirm_registrant(&confirm.hash, now).await.unwrap(),
            None,
            "expired token confirmed at {now}"
        );
        let after = get(store, new.id).await;
        assert_eq!(after.status, RegistrantStatus::Pending);
        assert_eq!(after.confirmed_at, None);
    }
}

pub async fn mail_slot_is_reserved_once_per_window(store: &dyn Store) {
    let window = minutes(10);
    let mut new = person(t0());
    new.last_mail_at = None;
    store.insert_registrant(&new, &[]).await.unwrap();

    // Never mailed: the slot is free.
    let t1 = t0() + ms(1);
    assert!(
        store
            .reserve_mail_slot(new.id, t1, t1 - window)
            .await
            .unwrap()
    );
    assert_eq!(get(store, new.id).await.last_mail_at, Some(t1));

    // Within the window: refused, and the time of the last mail stays.
    let t2 = t1 + minutes(1);
    assert!(
        !store
            .reserve_mail_slot(new.id, t2, t2 - window)
            .await
            .unwrap()
    );
    assert_eq!(get(store, new.id).await.last_mail_at, Some(t1));

    // A second caller racing with the same clock gets nothing either.
    assert!(
        !store
            .reserve_mail_slot(new.id, t1, t1 - window)
            .await
            .unwrap()
    );

    // Exactly one window later (`previous_before` is inclusive): free again.
    let t3 = t1 + window;
    assert!(
        store
            .reserve_mail_slot(new.id, t3, t3 - window)
            .await
            .unwrap()
    );
    assert_eq!(get(store, new.id).await.last_mail_at, Some(t3));

    // A person whose confirmation mail just went out is throttled from the start.
    let (mailed, _, _) = insert_person(store, t0()).await;
    assert!(
        !store
            .reserve_mail_slot(mailed.id, t0() + minutes(1), t0() + minutes(1) - window)
            .await
            .unwrap()
    );

    // Nobody to mail.
    assert!(
        !store
            .reserve_mail_slot(Uuid::new_v4(), t3, t3 - window)
            .await
            .unwrap()
    );
}

/// Several requests (say, double-clicked "resend" buttons) race for the same mail slot: exactly
/// one wins.
pub async fn racing_mail_slot_reservations_grant_one(store: &dyn Store) {
    let mut new = person(t0());
    new.last_mail_at = None;
    store.insert_registrant(&new, &[]).await.unwrap();
    warm_up(store).await;

    let now = t0() + minutes(1);
    let results = join_all(
        (0..8)
            .map(|_| store.reserve_mail_slot(new.id, now, now - minutes(10)))
            .collect(),
    )
    .await;
    let granted = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(granted, 1, "racing reservations granted {granted} slots");
    assert_eq!(get(store, new.id).await.last_mail_at, Some(now));
}

/// The same confirmation link opened several times at once confirms exactly once.
pub async fn racing_confirmations_confirm_once(store: &dyn Store) {
    let (new, confirm, _) = insert_person(store, t0()).await;
    warm_up(store).await;
    let now = t0() + minutes(1);
    let results = join_all(
        (0..8)
            .map(|_| store.confirm_registrant(&confirm.hash, now))
            .collect(),
    )
    .await;
    let confirmed: Vec<Uuid> = results
        .into_iter()
        .filter_map(|r| r.expect("racing confirm_registrant failed"))
        .collect();
    assert_eq!(
        confirmed,
        vec![new.id],
        "racing confirmations: {confirmed:?}"
    );
    let after = get(store, new.id).await;
    assert_eq!(after.status, RegistrantStatus::Active);
    assert_eq!(after.confirmed_at, Some(now));
}

pub async fn pause_and_resume_keep_place_in_line(store: &dyn Store) {
    let t1 = t0() + minutes(1);
    let (new, _) = insert_active_person(store, t0(), t1).await;

    let t2 = t1 + Duration::days(2) + ms(9);
    assert_eq!(
        store.set_paused(new.id, true, t2).await.unwrap(),
        RegistrantStatus::Paused
    );
    let paused = get(store, new.id).await;
    assert_eq!(paused.status, RegistrantStatus::Paused);
    assert_eq!(paused.paused_at, Some(t2));
    assert_eq!(paused.created_at, new.created_at);
    assert_eq!(paused.confirmed_at, Some(t1));

    // Pausing again keeps the original pause time.
    assert_eq!(
        store
            .set_paused(new.id, true, t2 + minutes(5))
            .await
            .unwrap(),
        RegistrantStatus::Paused
    );
    assert_eq!(get(store, new.id).await.paused_at, Some(t2));

    let t3 = t2 + Duration::days(7);
    assert_eq!(
        store.set_paused(new.id, false, t3).await.unwrap(),
        RegistrantStatus::Active
    );
    let resumed = get(store, new.id).await;
    assert_eq!(resumed.status, RegistrantStatus::Active);
    assert_eq!(resumed.paused_at, None);
    assert_eq!(
        resumed.created_at, new.created_at,
        "place in line must not move"
    );
    assert_eq!(resumed.confirmed_at, Some(t1));

    // Resuming an active person is a no-op.
    assert_eq!(
        store.set_paused(new.id, false, t3 + ms(1)).await.unwrap(),
        RegistrantStatus::Active
    );
    assert_eq!(get(store, new.id).await, resumed);

    match store.set_paused(Uuid::new_v4(), true, t3).await {
        Err(StoreError::NotFound) => {}
        other => panic!("set_paused on a missing person: expected NotFound, got {other:?}"),
    }
}

pub async fn pending_person_cannot_be_paused(store: &dyn Store) {
    let (new, _, _) = insert_person(store, t0()).await;
    for paused in [true, false] {
        assert_eq!(
            store
                .set_paused(new.id, paused, t0() + minutes(1))
                .await
                .unwrap(),
            RegistrantStatus::Pending
        );
        assert_eq!(get(store, new.id).await, as_inserted(&new));
    }
}

/// A late click on a second confirmation link must not resume a paused person.
pub async fn paused_person_stays_paused_when_confirmed_again(store: &dyn Store) {
    let t1 = t0() + minutes(1);
    let (new, _) = insert_active_person(store, t0(), t1).await;
    let t2 = t1 + minutes(1);
    store.set_paused(new.id, true, t2).await.unwrap();

    let again = token(new.id, TokenPurpose::Confirm, t1, Duration::hours(48));
    store
        .insert_tokens(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(
        store
            .confirm_registrant(&again.hash, t2 + minutes(1))
            .await
            .unwrap(),
        Some(new.id)
    );
    let after = get(store, new.id).await;
    assert_eq!(after.status, RegistrantStatus::Paused);
    assert_eq!(after.paused_at, Some(t2));
    assert_eq!(after.confirmed_at, Some(t1));
}

pub async fn update_preferences_changes_postcode_and_radius(store: &dyn Store) {
    let (new, _, _) = insert_person(store, t0()).await;
    store
        .update_preferences(new.id, &Postcode::from_trusted("20095".to_owned()), 42)
        .await
        .unwrap();
    let after = get(store, new.id).await;
    assert_eq!(after.postcode, "20095");
    assert_eq!(after.radius_km, 42);
    assert_eq!(
        after,
        Registrant {
            postcode: Postcode::from_trusted("20095".to_owned()),
            radius_km: 42,
            ..as_inserted(&new)
        },
        "only postcode and radius change"
    );
}

pub async fn update_preferences_of_missing_person_is_not_found(store: &dyn Store) {
    match store
        .update_preferences(
            Uuid::new_v4(),
            &Postcode::from_trusted("10115".to_owned()),
            5,
        )
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub async fn delete_removes_person_and_tokens(store: &dyn Store) {
    let (new, confirm, manage) = insert_person(store, t0()).await;
    let (bystander, bystander_confirm, _) = insert_person(store, t0()).await;

    assert!(store.delete_registrant(new.id).await.unwrap());

    assert_eq!(store.registrant(new.id).await.unwrap(), None);
    assert_eq!(
        store
            .registrant_by_email_index(&new.email.index)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_token(&confirm.hash, TokenPurpose::Confirm, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_token(&manage.hash, TokenPurpose::Manage, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.confirm_registrant(&confirm.hash, t0()).await.unwrap(),
        None
    );

    // Already gone.
    assert!(!store.delete_registrant(new.id).await.unwrap());
    assert!(!store.delete_registrant(Uuid::new_v4()).await.unwrap());

    // The token rows are really gone (not just hidden): the same hashes and blind index can
    // be stored again.
    store
        .insert_registrant(&new, &[confirm, manage])
        .await
        .expect("re-registering after deletion failed");

    // Others are untouched.
    assert_eq!(get(store, bystander.id).await, as_inserted(&bystander));
    assert!(
        store
            .find_token(&bystander_confirm.hash, TokenPurpose::Confirm, t0())
            .await
            .unwrap()
            .is_some()
    );
}

fn unique_country() -> String {
    // Real country codes are two letters; a random one keeps cases apart in a shared database.
    format!("T{}", Uuid::new_v4().simple())
}

fn pc(postcode: &str, lat: f64, lon: f64) -> PostcodeRow {
    PostcodeRow {
        postcode: postcode.to_owned(),
        lat,
        lon,
    }
}

pub async fn postcodes_upsert_replaces(store: &dyn Store) {
    let country = unique_country();
    let other = unique_country();

    assert_eq!(store.postcodes(&country).await.unwrap(), vec![]);
    assert_eq!(store.upsert_postcodes(&country, &[]).await.unwrap(), 0);

    let first = vec![
        pc("1010", 48.208_49, 16.372_08),
        pc("8010", 47.070_71, 15.439_55),
    ];
    assert_eq!(store.upsert_postcodes(&country, &first).await.unwrap(), 2);
    assert_eq!(store.postcodes(&country).await.unwrap(), first);

    store
        .upsert_postcodes(&other, &[pc("1010", 1.0, 2.0)])
        .await
        .unwrap();

    let second = vec![
        pc("8010", -33.868_82, 151.209_29),
        pc("5020", 47.809_49, 13.055_01),
    ];
    assert_eq!(store.upsert_postcodes(&country, &second).await.unwrap(), 2);
    assert_eq!(
        store.postcodes(&country).await.unwrap(),
        vec![
            pc("1010", 48.208_49, 16.372_08),
            pc("5020", 47.809_49, 13.055_01),
            pc("8010", -33.868_82, 151.209_29),
        ],
        "rows come back ordered by postcode, replaced in place"
    );

    // The same postcode twice in one batch: the later entry wins.
    store
        .upsert_postcodes(&country, &[pc("1010", 0.5, 0.5), pc("1010", 0.25, 0.75)])
        .await
        .unwrap();
    assert_eq!(
        store.postcodes(&country).await.unwrap()[0],
        pc("1010", 0.25, 0.75)
    );

    // Other countries are separate.
    assert_eq!(
        store.postcodes(&other).await.unwrap(),
        vec![pc("1010", 1.0, 2.0)]
    );
}

/// More rows than fit into one statement's bind parameters on either backend.
pub async fn postcodes_upsert_handles_large_batches(store: &dyn Store) {
    let country = unique_country();
    let rows: Vec<PostcodeRow> = (0..20_000)
        .map(|i| {
            pc(
                &format!("{i:05}"),
                47.0 + f64::from(i) / 10_000.0,
                5.0 + f64::from(i) / 7.0,
            )
        })
        .collect();
    assert_eq!(
        store.upsert_postcodes(&country, &rows).await.unwrap(),
        20_000
    );
    assert_eq!(store.postcodes(&country).await.unwrap(), rows);
}

pub async fn times_round_trip_at_millisecond_precision(store: &dyn Store) {
    let created = t0() + ms(876);
    let mut new = person(created);
    new.last_mail_at = Some(created + ms(1));
    let confirm = token(
        new.id,
        TokenPurpose::Confirm,
        created,
        Duration::hours(48) + ms(999),
    );
    store
        .insert_registrant(&new, std::slice::from_ref(&confirm))
        .await
        .unwrap();

    let read = get(store, new.id).await;
    assert_eq!(read.created_at, created);
    assert_eq!(read.created_at.timestamp_subsec_millis(), 999);
    assert_eq!(read.last_mail_at, Some(created + ms(1)));

    let found = store
        .find_token(&confirm.hash, TokenPurpose::Confirm, created)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.expires_at, confirm.expires_at);

    let confirmed_at = created + ms(3);
    store
        .confirm_registrant(&confirm.hash, confirmed_at)
        .await
        .unwrap()
        .unwrap();
    let paused_at = created + ms(5);
    store.set_paused(new.id, true, paused_at).await.unwrap();
    let read = get(store, new.id).await;
    assert_eq!(read.confirmed_at, Some(confirmed_at));
    assert_eq!(read.paused_at, Some(paused_at));

    // Times before 1970 and far ahead survive too (epoch-based encodings).
    let mut old = person(Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap() + ms(1));
    old.last_mail_at = Some(Utc.with_ymd_and_hms(2199, 12, 31, 23, 59, 59).unwrap() + ms(999));
    store.insert_registrant(&old, &[]).await.unwrap();
    assert_eq!(get(store, old.id).await, as_inserted(&old));
}

pub async fn released_mail_slot_can_be_taken_again(store: &dyn Store) {
    let window = minutes(10);
    let new = person(t0());
    store.insert_registrant(&new, &[]).await.unwrap();
    let t1 = t0() + minutes(11);
    assert!(
        store
            .reserve_mail_slot(new.id, t1, t1 - window)
            .await
            .unwrap()
    );
    // The mail failed: give the slot back.
    store
        .release_mail_slot(new.id, t1, Some(t0()))
        .await
        .unwrap();
    assert_eq!(get(store, new.id).await.last_mail_at, Some(t0()));
    let t2 = t1 + ms(5);
    assert!(
        store
            .reserve_mail_slot(new.id, t2, t2 - window)
            .await
            .unwrap()
    );
    // Releasing a slot that was since taken again changes nothing.
    store
        .release_mail_slot(new.id, t1, Some(t0()))
        .await
        .unwrap();
    assert_eq!(get(store, new.id).await.last_mail_at, Some(t2));
}

pub async fn unconfirmed_people_are_purged_after_their_last_link_expires(store: &dyn Store) {
    let old_pending = person(t0());
    let mut reminded = person(t0());
    reminded.last_mail_at = Some(t0() + minutes(60));
    let confirmed = person(t0());
    let confirm = token(confirmed.id, TokenPurpose::Confirm, t0(), minutes(60));
    store.insert_registrant(&old_pending, &[]).await.unwrap();
    store.insert_registrant(&reminded, &[]).await.unwrap();
    store
        .insert_registrant(&confirmed, std::slice::from_ref(&confirm))
        .await
        .unwrap();
    store
        .confirm_registrant(&confirm.hash, t0() + ms(1))
        .await
        .unwrap()
        .unwrap();

    // A cut-off between the first and the latest mail removes only the stale sign-up.
    let purged = store.purge_unconfirmed(t0() + minutes(30)).await.unwrap();
    assert_eq!(purged, 1);
    assert!(store.registrant(old_pending.id).await.unwrap().is_none());
    assert!(store.registrant(reminded.id).await.unwrap().is_some());
    assert!(
        store.registrant(confirmed.id).await.unwrap().is_some(),
        "confirmed people stay"
    );
    assert_eq!(
        store.purge_unconfirmed(t0() + minutes(30)).await.unwrap(),
        0
    );
}

pub async fn expired_tokens_are_purged(store: &dyn Store) {
    let new = person(t0());
    let short = token(new.id, TokenPurpose::Manage, t0(), minutes(5));
    let long = token(new.id, TokenPurpose::Manage, t0(), minutes(50));
    store
        .insert_registrant(&new, &[short.clone(), long.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired_tokens(t0() + minutes(5)).await.unwrap(),
        1
    );
    let later = t0() + minutes(6);
    assert!(
        store
            .find_token(&short.hash, TokenPurpose::Manage, later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_token(&long.hash, TokenPurpose::Manage, later)
            .await
            .unwrap()
            .is_some()
    );
}
