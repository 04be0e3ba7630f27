//! Conformance cases for the portal's accounts, practices, account links, sessions, login
//! throttling and API tokens (`PortalStore`, first half).

use chrono::{DateTime, Duration, Utc};
use restdose_domain::{Lang, Postcode};
use uuid::Uuid;

use super::{assert_conflict, join_all, minutes, ms, random_bytes, t0, warm_up};
use crate::{
    Account, AccountTokenPurpose, ApiTokenInfo, NewAccount, NewAccountToken, NewApiToken,
    NewPractice, NewSession, Practice, PracticeStatus, Role, SessionRecord, Store, StoreError,
    ThrottleState,
};

// --- fixtures ---------------------------------------------------------------------------------

/// A login address no other case uses.
pub(super) fn unique_email() -> String {
    format!("practice-{}@example.test", Uuid::new_v4().simple())
}

/// A PHC string shaped like the real ones; the store never looks inside.
fn password_hash() -> String {
    format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}$hash",
        Uuid::new_v4().simple()
    )
}

pub(super) fn new_account(role: Role, at: DateTime<Utc>) -> NewAccount {
    NewAccount {
        id: Uuid::new_v4(),
        role,
        email: unique_email(),
        password_hash: password_hash(),
        created_at: at,
        email_verified_at: None,
        // Not the column's default, so a store that drops it fails the comparisons below.
        language: Lang::En,
    }
}

pub(super) fn account_token(
    account_id: Uuid,
    purpose: AccountTokenPurpose,
    at: DateTime<Utc>,
    valid_for: Duration,
) -> NewAccountToken {
    NewAccountToken {
        hash: random_bytes(32),
        account_id,
        purpose,
        created_at: at,
        expires_at: at + valid_for,
    }
}

/// The three rows of a practice sign-up.
pub(super) struct SignUp {
    pub account: NewAccount,
    pub practice: NewPractice,
    pub verify: NewAccountToken,
}

pub(super) fn sign_up(at: DateTime<Utc>) -> SignUp {
    let account = new_account(Role::Practice, at);
    let practice = NewPractice {
        account_id: account.id,
        name: "Praxis Dr. Beispiel".to_owned(),
        street: "Invalidenstraße 1".to_owned(),
        postcode: Postcode::from_trusted("10115".to_owned()),
        city: "Berlin".to_owned(),
        phone: "+49 30 1234567".to_owned(),
        created_at: at,
    };
    let verify = account_token(
        account.id,
        AccountTokenPurpose::VerifyEmail,
        at,
        Duration::hours(48),
    );
    SignUp {
        account,
        practice,
        verify,
    }
}

pub(super) async fn insert_practice_at(store: &dyn Store, at: DateTime<Utc>) -> SignUp {
    let rows = sign_up(at);
    store
        .insert_practice(&rows.account, &rows.practice, &rows.verify)
        .await
        .expect("insert_practice failed");
    rows
}

/// What `account()` must return right after inserting `new`.
fn account_as_inserted(new: &NewAccount) -> Account {
    Account {
        id: new.id,
        role: new.role,
        email: new.email.clone(),
        password_hash: new.password_hash.clone(),
        email_verified_at: new.email_verified_at,
        created_at: new.created_at,
        password_changed_at: new.created_at,
        language: new.language,
    }
}

/// What `practice()` must return right after `insert_practice`.
fn practice_as_inserted(rows: &SignUp) -> Practice {
    Practice {
        id: rows.account.id,
        name: rows.practice.name.clone(),
        street: rows.practice.street.clone(),
        postcode: rows.practice.postcode.clone(),
        city: rows.practice.city.clone(),
        phone: rows.practice.phone.clone(),
        status: PracticeStatus::Pending,
        email: rows.account.email.clone(),
        email_verified: false,
        created_at: rows.practice.created_at,
        decided_at: None,
        language: rows.account.language,
    }
}

async fn get_account(store: &dyn Store, id: Uuid) -> Account {
    store
        .account(id)
        .await
        .expect("account() failed")
        .unwrap_or_else(|| panic!("account {id} not found"))
}

async fn get_practice(store: &dyn Store, id: Uuid) -> Practice {
    store
        .practice(id)
        .await
        .expect("practice() failed")
        .unwrap_or_else(|| panic!("practice {id} not found"))
}

pub(super) fn new_session(account_id: Uuid, at: DateTime<Utc>, valid_for: Duration) -> NewSession {
    NewSession {
        id_hash: random_bytes(32),
        account_id,
        csrf_token: Uuid::new_v4().simple().to_string(),
        created_at: at,
        expires_at: at + valid_for,
    }
}

async fn insert_session_at(
    store: &dyn Store,
    account_id: Uuid,
    at: DateTime<Utc>,
    valid_for: Duration,
) -> NewSession {
    let session = new_session(account_id, at, valid_for);
    store
        .insert_session(&session)
        .await
        .expect("insert_session failed");
    session
}

fn throttle_key() -> String {
    format!("ip:test-{}", Uuid::new_v4().simple())
}

pub(super) fn new_api_token(practice_id: Uuid, name: &str, at: DateTime<Utc>) -> NewApiToken {
    NewApiToken {
        id: Uuid::new_v4(),
        practice_id,
        name: name.to_owned(),
        hash: random_bytes(32),
        created_at: at,
    }
}

fn api_token_info(token: &NewApiToken) -> ApiTokenInfo {
    ApiTokenInfo {
        id: token.id,
        name: token.name.clone(),
        created_at: token.created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// The rows of `all` whose ids are in `mine`, in the order of `all` (other cases may share the
/// database).
fn only<'a>(all: &'a [Practice], mine: &[Uuid]) -> Vec<&'a Practice> {
    all.iter().filter(|p| mine.contains(&p.id)).collect()
}

// --- accounts and practices -------------------------------------------------------------------

pub async fn insert_and_read_back_a_practice(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;

    assert_eq!(
        get_account(store, rows.account.id).await,
        account_as_inserted(&rows.account),
        "password_changed_at starts at created_at"
    );
    assert_eq!(
        store
            .account_by_email(&rows.account.email)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(rows.account.id)
    );
    assert_eq!(
        get_practice(store, rows.account.id).await,
        practice_as_inserted(&rows)
    );

    assert_eq!(store.account(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.practice(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.account_by_email(&unique_email()).await.unwrap(), None);
}

pub async fn duplicate_practice_email_is_a_conflict_and_stores_nothing(store: &dyn Store) {
    let first = insert_practice_at(store, t0()).await;

    let mut second = sign_up(t0() + minutes(1));
    second.account.email = first.account.email.clone();
    assert_conflict(
        store
            .insert_practice(&second.account, &second.practice, &second.verify)
            .await,
        "second practice with the same address",
    );

    assert_eq!(store.account(second.account.id).await.unwrap(), None);
    assert_eq!(store.practice(second.account.id).await.unwrap(), None);
    assert_eq!(
        store
            .take_account_token(
                &second.verify.hash,
                AccountTokenPurpose::VerifyEmail,
                t0() + minutes(2)
            )
            .await
            .unwrap(),
        None,
        "the rejected sign-up's link must not be stored"
    );
    // The first practice is untouched.
    assert_eq!(
        store
            .account_by_email(&first.account.email)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(first.account.id)
    );
    assert_eq!(
        get_practice(store, first.account.id).await,
        practice_as_inserted(&first)
    );

    // Admins share the address space.
    let mut admin = new_account(Role::Admin, t0());
    admin.email = first.account.email.clone();
    assert_conflict(
        store.insert_admin(&admin).await,
        "admin with a practice's address",
    );
    assert_eq!(store.account(admin.id).await.unwrap(), None);
}

/// Account and practice go in before the link: when the link fails, the sign-up is rolled back.
pub async fn failing_link_insert_stores_no_practice(store: &dyn Store) {
    let first = insert_practice_at(store, t0()).await;

    let mut second = sign_up(t0() + minutes(1));
    second.verify.hash = first.verify.hash.clone();
    assert_conflict(
        store
            .insert_practice(&second.account, &second.practice, &second.verify)
            .await,
        "sign-up whose link hash is taken",
    );
    assert_eq!(store.account(second.account.id).await.unwrap(), None);
    assert_eq!(store.practice(second.account.id).await.unwrap(), None);
    assert_eq!(
        store.account_by_email(&second.account.email).await.unwrap(),
        None
    );

    // The address is still free.
    second.verify.hash = random_bytes(32);
    store
        .insert_practice(&second.account, &second.practice, &second.verify)
        .await
        .expect("sign-up after a rolled-back one failed");
}

pub async fn admins_are_accounts_without_a_practice(store: &dyn Store) {
    let mut admin = new_account(Role::Admin, t0());
    admin.email_verified_at = Some(t0());
    store.insert_admin(&admin).await.unwrap();

    assert_eq!(
        get_account(store, admin.id).await,
        account_as_inserted(&admin)
    );
    assert_eq!(
        store
            .account_by_email(&admin.email)
            .await
            .unwrap()
            .map(|a| a.role),
        Some(Role::Admin)
    );
    assert_eq!(store.practice(admin.id).await.unwrap(), None);
    assert!(
        store
            .practices(None)
            .await
            .unwrap()
            .iter()
            .all(|p| p.id != admin.id)
    );
    assert_conflict(store.insert_admin(&admin).await, "the same admin twice");
}

pub async fn practices_are_listed_oldest_first_and_by_status(store: &dyn Store) {
    let middle = insert_practice_at(store, t0() + ms(1)).await;
    let first = insert_practice_at(store, t0()).await;
    let last = insert_practice_at(store, t0() + ms(2)).await;
    let mine = [middle.account.id, first.account.id, last.account.id];

    let all = store.practices(None).await.unwrap();
    let ids: Vec<Uuid> = only(&all, &mine).iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        vec![first.account.id, middle.account.id, last.account.id]
    );
    assert_eq!(
        *only(&all, &[first.account.id])[0],
        practice_as_inserted(&first)
    );

    store
        .set_practice_status(
            middle.account.id,
            PracticeStatus::Approved,
            t0() + minutes(1),
        )
        .await
        .unwrap();

    let pending = store
        .practices(Some(PracticeStatus::Pending))
        .await
        .unwrap();
    assert!(pending.iter().all(|p| p.status == PracticeStatus::Pending));
    let ids: Vec<Uuid> = only(&pending, &mine).iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![first.account.id, last.account.id]);

    let approved = store
        .practices(Some(PracticeStatus::Approved))
        .await
        .unwrap();
    assert!(
        approved
            .iter()
            .all(|p| p.status == PracticeStatus::Approved)
    );
    let ids: Vec<Uuid> = only(&approved, &mine).iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![middle.account.id]);

    let rejected = store
        .practices(Some(PracticeStatus::Rejected))
        .await
        .unwrap();
    assert!(only(&rejected, &mine).is_empty());
}

pub async fn set_practice_status_records_the_decision(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;

    let t1 = t0() + minutes(5) + ms(3);
    store
        .set_practice_status(id, PracticeStatus::Approved, t1)
        .await
        .unwrap();
    assert_eq!(
        get_practice(store, id).await,
        Practice {
            status: PracticeStatus::Approved,
            decided_at: Some(t1),
            ..practice_as_inserted(&rows)
        },
        "only status and decided_at change"
    );

    let t2 = t1 + Duration::days(3);
    store
        .set_practice_status(id, PracticeStatus::Suspended, t2)
        .await
        .unwrap();
    let suspended = get_practice(store, id).await;
    assert_eq!(suspended.status, PracticeStatus::Suspended);
    assert_eq!(suspended.decided_at, Some(t2));

    match store
        .set_practice_status(Uuid::new_v4(), PracticeStatus::Approved, t2)
        .await
    {
        Err(StoreError::NotFound) => {}
        other => {
            panic!("set_practice_status of a missing practice: expected NotFound, got {other:?}")
        }
    }
}

// --- account links ----------------------------------------------------------------------------

pub async fn verify_link_is_consumed_once_and_verifies(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let t1 = t0() + minutes(3) + ms(7);

    assert_eq!(
        store
            .take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(get_account(store, id).await.email_verified_at, Some(t1));
    assert!(get_practice(store, id).await.email_verified);

    // Single use.
    assert_eq!(
        store
            .take_account_token(
                &rows.verify.hash,
                AccountTokenPurpose::VerifyEmail,
                t1 + ms(1)
            )
            .await
            .unwrap(),
        None
    );

    // A second link (a resent mail) is consumed too, but the first verification time stays.
    let again = account_token(
        id,
        AccountTokenPurpose::VerifyEmail,
        t1,
        Duration::hours(48),
    );
    store.insert_account_token(&again).await.unwrap();
    let t2 = t1 + minutes(10);
    assert_eq!(
        store
            .take_account_token(&again.hash, AccountTokenPurpose::VerifyEmail, t2)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(get_account(store, id).await.email_verified_at, Some(t1));
    assert_eq!(
        store
            .take_account_token(&again.hash, AccountTokenPurpose::VerifyEmail, t2)
            .await
            .unwrap(),
        None
    );

    // Unknown link.
    assert_eq!(
        store
            .take_account_token(&random_bytes(32), AccountTokenPurpose::VerifyEmail, t2)
            .await
            .unwrap(),
        None
    );
}

/// A link works only for its own purpose, and trying it for another does not use it up.
pub async fn reset_link_cannot_verify_and_verify_link_cannot_reset(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let reset = account_token(id, AccountTokenPurpose::ResetPassword, t0(), minutes(60));
    store.insert_account_token(&reset).await.unwrap();
    let t1 = t0() + minutes(1);

    assert_eq!(
        store
            .take_account_token(&reset.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(get_account(store, id).await.email_verified_at, None);
    assert!(!get_practice(store, id).await.email_verified);

    assert_eq!(
        store
            .take_account_token(&rows.verify.hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        None
    );

    // Both links still work for what they are.
    assert_eq!(
        store
            .take_account_token(&reset.hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        get_account(store, id).await.email_verified_at,
        None,
        "a password reset does not verify the address"
    );
    assert_eq!(
        store
            .take_account_token(&reset.hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        None,
        "reset links are single use"
    );
    assert_eq!(
        store
            .take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(get_account(store, id).await.email_verified_at, Some(t1));
}

pub async fn expired_account_link_is_refused(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let expires = rows.verify.expires_at;

    for now in [expires, expires + Duration::days(3)] {
        assert_eq!(
            store
                .take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, now)
                .await
                .unwrap(),
            None,
            "expired link accepted at {now}"
        );
        assert_eq!(get_account(store, id).await.email_verified_at, None);
    }
    // Expiry is exclusive: the millisecond before still works.
    assert_eq!(
        store
            .take_account_token(
                &rows.verify.hash,
                AccountTokenPurpose::VerifyEmail,
                expires - ms(1)
            )
            .await
            .unwrap(),
        Some(id)
    );
}

/// Peeking (to show the new-password form before it is submitted) leaves the link usable.
pub async fn peek_shows_a_valid_link_without_consuming_it(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let reset = account_token(id, AccountTokenPurpose::ResetPassword, t0(), minutes(60));
    store.insert_account_token(&reset).await.unwrap();
    let t1 = t0() + minutes(1);
    let peek = |hash: Vec<u8>, purpose, now| async move {
        store.peek_account_token(&hash, purpose, now).await.unwrap()
    };

    for _ in 0..2 {
        assert_eq!(
            peek(reset.hash.clone(), AccountTokenPurpose::ResetPassword, t1).await,
            Some(id)
        );
    }
    assert_eq!(
        peek(reset.hash.clone(), AccountTokenPurpose::VerifyEmail, t1).await,
        None
    );
    assert_eq!(
        peek(
            reset.hash.clone(),
            AccountTokenPurpose::ResetPassword,
            reset.expires_at - ms(1)
        )
        .await,
        Some(id)
    );
    assert_eq!(
        peek(
            reset.hash.clone(),
            AccountTokenPurpose::ResetPassword,
            reset.expires_at
        )
        .await,
        None
    );
    assert_eq!(
        peek(random_bytes(32), AccountTokenPurpose::ResetPassword, t1).await,
        None
    );

    // Peeking at a verification link does not verify.
    assert_eq!(
        peek(
            rows.verify.hash.clone(),
            AccountTokenPurpose::VerifyEmail,
            t1
        )
        .await,
        Some(id)
    );
    assert_eq!(get_account(store, id).await.email_verified_at, None);

    // The link is still there to be taken, once.
    assert_eq!(
        store
            .take_account_token(&reset.hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        peek(reset.hash.clone(), AccountTokenPurpose::ResetPassword, t1).await,
        None
    );
}

/// Links hang off an account: storing one for nobody must fail (foreign keys are enforced).
pub async fn account_links_for_a_missing_account_are_refused(store: &dyn Store) {
    let orphan = account_token(
        Uuid::new_v4(),
        AccountTokenPurpose::ResetPassword,
        t0(),
        minutes(60),
    );
    assert!(
        store.insert_account_token(&orphan).await.is_err(),
        "link for a missing account was accepted"
    );
    assert_eq!(
        store
            .take_account_token(&orphan.hash, AccountTokenPurpose::ResetPassword, t0())
            .await
            .unwrap(),
        None
    );

    // And a hash is unique.
    let rows = insert_practice_at(store, t0()).await;
    let mut clash = account_token(
        rows.account.id,
        AccountTokenPurpose::ResetPassword,
        t0(),
        minutes(60),
    );
    clash.hash = rows.verify.hash.clone();
    assert_conflict(
        store.insert_account_token(&clash).await,
        "link with a taken hash",
    );
}

/// The same verification link opened several times at once is consumed exactly once.
pub async fn racing_verify_links_verify_once(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    warm_up(store).await;
    let now = t0() + minutes(1);
    let results = join_all(
        (0..8)
            .map(|_| {
                store.take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, now)
            })
            .collect(),
    )
    .await;
    let taken: Vec<Uuid> = results
        .into_iter()
        .filter_map(|r| r.expect("racing take_account_token failed"))
        .collect();
    assert_eq!(taken, vec![rows.account.id], "racing takes: {taken:?}");
    assert_eq!(
        get_account(store, rows.account.id).await.email_verified_at,
        Some(now)
    );
}

/// Using one link ends every other link of its purpose of that account (an older reset mail, a
/// resent verification mail); links of the other purpose and of other accounts stay.
pub async fn taking_an_account_link_ends_the_others_of_its_kind(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let bystander = insert_practice_at(store, t0()).await;
    let link = |account, purpose, at| account_token(account, purpose, at, Duration::hours(1));
    let resets = [
        link(id, AccountTokenPurpose::ResetPassword, t0()),
        link(id, AccountTokenPurpose::ResetPassword, t0() + ms(1)),
        link(id, AccountTokenPurpose::ResetPassword, t0() + ms(2)),
    ];
    let second_verify = link(id, AccountTokenPurpose::VerifyEmail, t0() + ms(3));
    let other_reset = link(
        bystander.account.id,
        AccountTokenPurpose::ResetPassword,
        t0(),
    );
    for token in resets.iter().chain([&second_verify, &other_reset]) {
        store.insert_account_token(token).await.unwrap();
    }
    let t1 = t0() + minutes(5);
    let peek = |hash: Vec<u8>, purpose| async move {
        store.peek_account_token(&hash, purpose, t1).await.unwrap()
    };

    // The middle reset link is used: the older and the newer one end with it.
    assert_eq!(
        store
            .take_account_token(&resets[1].hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        Some(id)
    );
    for (n, reset) in resets.iter().enumerate() {
        assert_eq!(
            peek(reset.hash.clone(), AccountTokenPurpose::ResetPassword).await,
            None,
            "reset link {n} still valid after another was used"
        );
        assert_eq!(
            store
                .take_account_token(&reset.hash, AccountTokenPurpose::ResetPassword, t1)
                .await
                .unwrap(),
            None,
            "reset link {n} taken after another was used"
        );
    }
    // Verification links are another kind: both still work.
    for verify in [&rows.verify, &second_verify] {
        assert_eq!(
            peek(verify.hash.clone(), AccountTokenPurpose::VerifyEmail).await,
            Some(id)
        );
    }
    assert_eq!(
        peek(other_reset.hash.clone(), AccountTokenPurpose::ResetPassword).await,
        Some(bystander.account.id),
        "another account's link is left alone"
    );

    // The same for verification links: the newer one used, the first one is gone.
    assert_eq!(
        store
            .take_account_token(&second_verify.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(get_account(store, id).await.email_verified_at, Some(t1));
    assert_eq!(
        store
            .take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        None,
        "verification link still valid after another was used"
    );
    assert_eq!(
        peek(
            bystander.verify.hash.clone(),
            AccountTokenPurpose::VerifyEmail
        )
        .await,
        Some(bystander.account.id),
        "another account's link is left alone"
    );
}

/// A new password ends every link of the account, of both purposes, with the sessions.
pub async fn set_password_ends_every_account_link(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let bystander = insert_practice_at(store, t0()).await;
    let reset = account_token(id, AccountTokenPurpose::ResetPassword, t0(), minutes(60));
    let other_reset = account_token(
        bystander.account.id,
        AccountTokenPurpose::ResetPassword,
        t0(),
        minutes(60),
    );
    for token in [&reset, &other_reset] {
        store.insert_account_token(token).await.unwrap();
    }
    let t1 = t0() + minutes(2);

    store.set_password(id, &password_hash(), t1).await.unwrap();

    for (hash, purpose) in [
        (&reset.hash, AccountTokenPurpose::ResetPassword),
        (&rows.verify.hash, AccountTokenPurpose::VerifyEmail),
    ] {
        assert_eq!(
            store.peek_account_token(hash, purpose, t1).await.unwrap(),
            None,
            "{} link still valid after a password change",
            purpose.as_str()
        );
        assert_eq!(
            store.take_account_token(hash, purpose, t1).await.unwrap(),
            None,
            "{} link taken after a password change",
            purpose.as_str()
        );
    }
    assert_eq!(get_account(store, id).await.email_verified_at, None);
    for (hash, purpose) in [
        (&other_reset.hash, AccountTokenPurpose::ResetPassword),
        (&bystander.verify.hash, AccountTokenPurpose::VerifyEmail),
    ] {
        assert_eq!(
            store.peek_account_token(hash, purpose, t1).await.unwrap(),
            Some(bystander.account.id),
            "another account's {} link is left alone",
            purpose.as_str()
        );
    }
}

pub async fn set_password_changes_the_hash_and_ends_sessions(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let id = rows.account.id;
    let other = insert_practice_at(store, t0()).await;
    let day = Duration::days(1);
    let one = insert_session_at(store, id, t0(), day).await;
    let two = insert_session_at(store, id, t0() + ms(1), day).await;
    let bystander = insert_session_at(store, other.account.id, t0(), day).await;

    let t1 = t0() + minutes(30) + ms(5);
    let new_hash = password_hash();
    store.set_password(id, &new_hash, t1).await.unwrap();

    assert_eq!(
        get_account(store, id).await,
        Account {
            password_hash: new_hash,
            password_changed_at: t1,
            ..account_as_inserted(&rows.account)
        }
    );
    for session in [&one, &two] {
        assert_eq!(
            store.session(&session.id_hash, t1).await.unwrap(),
            None,
            "sessions must end with a password change"
        );
    }
    assert!(
        store
            .session(&bystander.id_hash, t1)
            .await
            .unwrap()
            .is_some(),
        "other accounts keep their sessions"
    );
    assert_eq!(
        get_account(store, other.account.id).await,
        account_as_inserted(&other.account)
    );

    match store
        .set_password(Uuid::new_v4(), &password_hash(), t1)
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("set_password of a missing account: expected NotFound, got {other:?}"),
    }
}

// --- sessions ---------------------------------------------------------------------------------

pub async fn sessions_expire_at_their_boundary(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let session = insert_session_at(store, rows.account.id, t0(), minutes(30)).await;
    let expected = SessionRecord {
        account_id: rows.account.id,
        csrf_token: session.csrf_token.clone(),
        created_at: t0(),
        last_seen_at: t0(),
        expires_at: session.expires_at,
    };

    assert_eq!(
        store.session(&session.id_hash, t0()).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .session(&session.id_hash, session.expires_at - ms(1))
            .await
            .unwrap(),
        Some(expected)
    );
    assert_eq!(
        store
            .session(&session.id_hash, session.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .session(&session.id_hash, session.expires_at + Duration::days(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.session(&random_bytes(32), t0()).await.unwrap(), None);

    // Sessions hang off an account, and the hash is unique.
    let orphan = new_session(Uuid::new_v4(), t0(), minutes(30));
    assert!(store.insert_session(&orphan).await.is_err());
    let mut clash = new_session(rows.account.id, t0(), minutes(30));
    clash.id_hash = session.id_hash.clone();
    assert_conflict(
        store.insert_session(&clash).await,
        "session with a taken hash",
    );
}

pub async fn touch_extends_a_live_session(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let session = insert_session_at(store, rows.account.id, t0(), minutes(30)).await;

    let t1 = t0() + minutes(20) + ms(9);
    let extended = t1 + minutes(30);
    store
        .touch_session(&session.id_hash, t1, extended)
        .await
        .unwrap();
    let after_old_expiry = session.expires_at + minutes(1);
    assert_eq!(
        store
            .session(&session.id_hash, after_old_expiry)
            .await
            .unwrap(),
        Some(SessionRecord {
            account_id: rows.account.id,
            csrf_token: session.csrf_token.clone(),
            created_at: t0(),
            last_seen_at: t1,
            expires_at: extended,
        })
    );
    assert_eq!(
        store.session(&session.id_hash, extended).await.unwrap(),
        None
    );

    // An expired session cannot be brought back by a late touch.
    store
        .touch_session(&session.id_hash, extended, extended + minutes(30))
        .await
        .unwrap();
    assert_eq!(
        store
            .session(&session.id_hash, extended + ms(1))
            .await
            .unwrap(),
        None
    );

    // Touching an unknown session is harmless.
    store
        .touch_session(&random_bytes(32), t1, extended)
        .await
        .unwrap();
}

pub async fn deleted_session_is_gone_and_others_stay(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let day = Duration::days(1);
    let gone = insert_session_at(store, rows.account.id, t0(), day).await;
    let kept = insert_session_at(store, rows.account.id, t0(), day).await;

    store.delete_session(&gone.id_hash).await.unwrap();
    assert_eq!(store.session(&gone.id_hash, t0()).await.unwrap(), None);
    assert!(store.session(&kept.id_hash, t0()).await.unwrap().is_some());
    // Twice is fine.
    store.delete_session(&gone.id_hash).await.unwrap();
}

// --- login throttling -------------------------------------------------------------------------

pub async fn login_failures_are_counted_locked_and_cleared(store: &dyn Store) {
    let key = throttle_key();
    let bystander = throttle_key();
    assert_eq!(store.throttle_state(&key).await.unwrap(), None);

    let t1 = t0() + ms(1);
    let first = ThrottleState {
        failures: 1,
        last_failure_at: t1,
        locked_until: None,
    };
    assert_eq!(store.record_login_failure(&key, t1).await.unwrap(), first);
    assert_eq!(store.throttle_state(&key).await.unwrap(), Some(first));
    store.record_login_failure(&bystander, t1).await.unwrap();

    let t2 = t1 + minutes(1);
    let second = store.record_login_failure(&key, t2).await.unwrap();
    assert_eq!(
        second,
        ThrottleState {
            failures: 2,
            last_failure_at: t2,
            locked_until: None,
        }
    );

    let until = t2 + minutes(15) + ms(3);
    store.lock_login(&key, until).await.unwrap();
    let locked = ThrottleState {
        locked_until: Some(until),
        ..second
    };
    assert_eq!(store.throttle_state(&key).await.unwrap(), Some(locked));

    // Further failures count on and keep the lock.
    let t3 = t2 + minutes(1);
    assert_eq!(
        store.record_login_failure(&key, t3).await.unwrap(),
        ThrottleState {
            failures: 3,
            last_failure_at: t3,
            locked_until: Some(until),
        }
    );

    // A successful login clears everything.
    store.clear_login_failures(&key).await.unwrap();
    assert_eq!(store.throttle_state(&key).await.unwrap(), None);
    assert_eq!(
        store.record_login_failure(&key, t3 + ms(1)).await.unwrap(),
        ThrottleState {
            failures: 1,
            last_failure_at: t3 + ms(1),
            locked_until: None,
        }
    );
    // Clearing an unknown key is harmless.
    store.clear_login_failures(&throttle_key()).await.unwrap();

    // Other keys are separate.
    assert_eq!(
        store.throttle_state(&bystander).await.unwrap(),
        Some(ThrottleState {
            failures: 1,
            last_failure_at: t1,
            locked_until: None,
        })
    );

    // A lock follows failures: a key without any stays without a row.
    let quiet = throttle_key();
    store.lock_login(&quiet, until).await.unwrap();
    assert_eq!(store.throttle_state(&quiet).await.unwrap(), None);
}

/// Parallel guesses against one account must all be counted.
pub async fn racing_login_failures_are_all_counted(store: &dyn Store) {
    let key = throttle_key();
    warm_up(store).await;
    let now = t0() + minutes(1);
    let results = join_all(
        (0..8)
            .map(|_| store.record_login_failure(&key, now))
            .collect(),
    )
    .await;
    let mut counts: Vec<i32> = results
        .into_iter()
        .map(|r| r.expect("racing record_login_failure failed").failures)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=8).collect::<Vec<i32>>());
    assert_eq!(
        store
            .throttle_state(&key)
            .await
            .unwrap()
            .map(|s| s.failures),
        Some(8)
    );
}

// --- API tokens -------------------------------------------------------------------------------

pub async fn api_tokens_are_listed_newest_first_per_practice(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let practice = rows.account.id;
    let other = insert_practice_at(store, t0()).await;

    assert_eq!(store.api_tokens(practice).await.unwrap(), vec![]);
    let older = new_api_token(practice, "Praxissoftware", t0());
    let newer = new_api_token(practice, "Terminbuch", t0() + ms(1));
    let foreign = new_api_token(other.account.id, "Andere", t0() + ms(2));
    for token in [&older, &newer, &foreign] {
        store.insert_api_token(token).await.unwrap();
    }

    assert_eq!(
        store.api_tokens(practice).await.unwrap(),
        vec![api_token_info(&newer), api_token_info(&older)]
    );
    assert_eq!(
        store.api_tokens(other.account.id).await.unwrap(),
        vec![api_token_info(&foreign)]
    );

    // The secret's hash is unique.
    let mut clash = new_api_token(practice, "Kopie", t0());
    clash.hash = older.hash.clone();
    assert_conflict(
        store.insert_api_token(&clash).await,
        "API token with a taken hash",
    );

    // Tokens belong to practices: not to nobody, not to an admin.
    let orphan = new_api_token(Uuid::new_v4(), "Niemand", t0());
    assert!(store.insert_api_token(&orphan).await.is_err());
    let admin = new_account(Role::Admin, t0());
    store.insert_admin(&admin).await.unwrap();
    let admins = new_api_token(admin.id, "Admin", t0());
    assert!(store.insert_api_token(&admins).await.is_err());
    assert_eq!(
        store
            .practice_for_api_token(&admins.hash, t0())
            .await
            .unwrap(),
        None
    );
}

pub async fn api_token_authenticates_until_revoked(store: &dyn Store) {
    let rows = insert_practice_at(store, t0()).await;
    let practice = rows.account.id;
    let other = insert_practice_at(store, t0()).await;
    let token = new_api_token(practice, "Praxissoftware", t0());
    store.insert_api_token(&token).await.unwrap();

    let t1 = t0() + minutes(1) + ms(1);
    assert_eq!(
        store.practice_for_api_token(&token.hash, t1).await.unwrap(),
        Some(practice)
    );
    assert_eq!(
        store.api_tokens(practice).await.unwrap(),
        vec![ApiTokenInfo {
            last_used_at: Some(t1),
            ..api_token_info(&token)
        }],
        "use is recorded"
    );

    // Another practice cannot revoke it.
    let t2 = t1 + minutes(1);
    assert!(
        !store
            .revoke_api_token(other.account.id, token.id, t2)
            .await
            .unwrap()
    );
    assert_eq!(
        store.practice_for_api_token(&token.hash, t2).await.unwrap(),
        Some(practice)
    );

    let t3 = t2 + minutes(1);
    assert!(
        store
            .revoke_api_token(practice, token.id, t3)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_api_token(practice, token.id, t3 + ms(1))
            .await
            .unwrap(),
        "revoking twice"
    );
    assert_eq!(
        store
            .practice_for_api_token(&token.hash, t3 + ms(2))
            .await
            .unwrap(),
        None,
        "a revoked token must not authenticate"
    );
    assert_eq!(
        store.api_tokens(practice).await.unwrap(),
        vec![ApiTokenInfo {
            last_used_at: Some(t2),
            revoked_at: Some(t3),
            ..api_token_info(&token)
        }],
        "revoked tokens stay listed; a refused use is not recorded"
    );

    assert!(
        !store
            .revoke_api_token(practice, Uuid::new_v4(), t3)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .practice_for_api_token(&random_bytes(32), t3)
            .await
            .unwrap(),
        None
    );
}
