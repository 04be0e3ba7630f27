//! Conformance cases for offers and bookings (`PortalStore`, second half), and for what
//! deleting a registrant or an account does to them.

use chrono::{DateTime, Duration, Utc};
use restdose_domain::Postcode;
use uuid::Uuid;

use super::accounts::{
    SignUp, account_token, insert_practice_at, new_account, new_api_token, new_session,
};
use super::{
    assert_conflict, insert_active_person, join_all, minutes, ms, random_bytes, t0, warm_up,
};
use crate::{
    AccountTokenPurpose, Booking, BookingStatus, CheckInOutcome, NewBooking, NewOffer, Offer,
    OfferStatus, PracticeStatus, Role, Store,
};

// --- fixtures ---------------------------------------------------------------------------------

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 12 random characters of Crockford base32, as codes are stored.
pub(super) fn booking_code() -> String {
    random_bytes(12)
        .into_iter()
        .map(|b| char::from(CROCKFORD[usize::from(b % 32)]))
        .collect()
}

pub(super) fn new_offer(practice_id: Uuid, at: DateTime<Utc>) -> NewOffer {
    NewOffer {
        id: Uuid::new_v4(),
        practice_id,
        vaccine: "Influenza 2026/27".to_owned(),
        doses: 3,
        starts_at: at + Duration::hours(1),
        ends_at: at + Duration::hours(3) + ms(500),
        claim_minutes: 30,
        radius_km: 10,
        note: "Bitte Impfpass mitbringen.".to_owned(),
        postcode: Postcode::from_trusted("10115".to_owned()),
        created_at: at,
    }
}

/// What `offer()` must return right after `insert_offer(new)`.
fn offer_as_inserted(new: &NewOffer) -> Offer {
    Offer {
        id: new.id,
        practice_id: new.practice_id,
        vaccine: new.vaccine.clone(),
        doses: new.doses,
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        claim_minutes: new.claim_minutes,
        radius_km: new.radius_km,
        note: new.note.clone(),
        postcode: new.postcode.clone(),
        status: OfferStatus::Open,
        created_at: new.created_at,
        closed_at: None,
    }
}

/// An approved practice.
pub(super) async fn practice(store: &dyn Store) -> SignUp {
    let rows = insert_practice_at(store, t0()).await;
    store
        .set_practice_status(rows.account.id, PracticeStatus::Approved, t0())
        .await
        .expect("set_practice_status failed");
    rows
}

async fn insert_offer_at(store: &dyn Store, practice_id: Uuid, at: DateTime<Utc>) -> NewOffer {
    let offer = new_offer(practice_id, at);
    store
        .insert_offer(&offer)
        .await
        .expect("insert_offer failed");
    offer
}

/// A practice with one open offer.
async fn offer(store: &dyn Store) -> NewOffer {
    let rows = practice(store).await;
    insert_offer_at(store, rows.account.id, t0()).await
}

pub(super) async fn get_offer(store: &dyn Store, id: Uuid) -> Offer {
    store
        .offer(id)
        .await
        .expect("offer() failed")
        .unwrap_or_else(|| panic!("offer {id} not found"))
}

fn new_booking(offer_id: Uuid, registrant_id: Option<Uuid>, at: DateTime<Utc>) -> NewBooking {
    NewBooking {
        id: Uuid::new_v4(),
        offer_id,
        registrant_id,
        code: booking_code(),
        created_at: at,
    }
}

pub(super) async fn book(
    store: &dyn Store,
    offer_id: Uuid,
    registrant_id: Option<Uuid>,
    at: DateTime<Utc>,
) -> NewBooking {
    let booking = new_booking(offer_id, registrant_id, at);
    store
        .insert_booking(&booking)
        .await
        .expect("insert_booking failed");
    booking
}

/// A confirmed person on the waiting list.
async fn registrant(store: &dyn Store) -> Uuid {
    insert_active_person(store, t0(), t0()).await.0.id
}

fn booking_as_inserted(new: &NewBooking) -> Booking {
    Booking {
        id: new.id,
        offer_id: new.offer_id,
        code: new.code.clone(),
        status: BookingStatus::Booked,
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

async fn booking(store: &dyn Store, new: &NewBooking) -> Booking {
    store
        .bookings_of(new.offer_id)
        .await
        .expect("bookings_of failed")
        .into_iter()
        .find(|b| b.id == new.id)
        .unwrap_or_else(|| panic!("booking {} not found", new.id))
}

// --- offers -----------------------------------------------------------------------------------

pub async fn insert_and_read_back_an_offer(store: &dyn Store) {
    let new = offer(store).await;
    assert_eq!(get_offer(store, new.id).await, offer_as_inserted(&new));
    assert_eq!(store.offer(Uuid::new_v4()).await.unwrap(), None);

    // Offers belong to a practice.
    let orphan = new_offer(Uuid::new_v4(), t0());
    assert!(store.insert_offer(&orphan).await.is_err());
    assert_eq!(store.offer(orphan.id).await.unwrap(), None);
    // The same id twice.
    assert_conflict(store.insert_offer(&new).await, "the same offer twice");
}

pub async fn offers_of_lists_own_offers_newest_first(store: &dyn Store) {
    let rows = practice(store).await;
    let id = rows.account.id;
    let other = practice(store).await;
    assert_eq!(store.offers_of(id).await.unwrap(), vec![]);

    let oldest = insert_offer_at(store, id, t0()).await;
    let newest = insert_offer_at(store, id, t0() + ms(2)).await;
    let middle = insert_offer_at(store, id, t0() + ms(1)).await;
    let foreign = insert_offer_at(store, other.account.id, t0() + ms(3)).await;

    assert_eq!(
        store.offers_of(id).await.unwrap(),
        vec![
            offer_as_inserted(&newest),
            offer_as_inserted(&middle),
            offer_as_inserted(&oldest),
        ]
    );
    assert_eq!(
        store.offers_of(other.account.id).await.unwrap(),
        vec![offer_as_inserted(&foreign)]
    );
}

pub async fn finish_offer_works_only_once(store: &dyn Store) {
    let new = offer(store).await;
    let person = registrant(store).await;
    let kept = book(store, new.id, Some(person), t0() + ms(1)).await;

    let t1 = t0() + minutes(40) + ms(4);
    assert!(
        store
            .finish_offer(new.id, OfferStatus::Closed, t1)
            .await
            .unwrap()
    );
    let closed = Offer {
        status: OfferStatus::Closed,
        closed_at: Some(t1),
        ..offer_as_inserted(&new)
    };
    assert_eq!(get_offer(store, new.id).await, closed);
    assert_eq!(
        booking(store, &kept).await,
        booking_as_inserted(&kept),
        "closing keeps bookings valid"
    );

    let t2 = t1 + minutes(1);
    assert!(
        !store
            .finish_offer(new.id, OfferStatus::Closed, t2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_offer(new.id, OfferStatus::Cancelled, t2)
            .await
            .unwrap(),
        "a closed offer cannot be cancelled"
    );
    assert_eq!(get_offer(store, new.id).await, closed);
    assert_eq!(booking(store, &kept).await, booking_as_inserted(&kept));

    assert!(
        !store
            .finish_offer(Uuid::new_v4(), OfferStatus::Cancelled, t2)
            .await
            .unwrap()
    );

    // Cancelled offers are final too.
    let other = offer(store).await;
    assert!(
        store
            .finish_offer(other.id, OfferStatus::Cancelled, t1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_offer(other.id, OfferStatus::Closed, t2)
            .await
            .unwrap()
    );
    assert_eq!(
        get_offer(store, other.id).await,
        Offer {
            status: OfferStatus::Cancelled,
            closed_at: Some(t1),
            ..offer_as_inserted(&other)
        }
    );
}

pub async fn cancelling_an_offer_cancels_only_live_bookings(store: &dyn Store) {
    let new = offer(store).await;
    let live = book(store, new.id, Some(registrant(store).await), t0() + ms(1)).await;
    let anonymous = book(store, new.id, None, t0() + ms(2)).await;
    let came = book(store, new.id, Some(registrant(store).await), t0() + ms(3)).await;
    let missed = book(store, new.id, Some(registrant(store).await), t0() + ms(4)).await;
    let elsewhere_offer = offer(store).await;
    let elsewhere = book(store, elsewhere_offer.id, None, t0() + ms(5)).await;

    let t1 = t0() + minutes(10);
    assert_eq!(
        store.check_in(new.id, &came.code, t1).await.unwrap(),
        CheckInOutcome::CheckedIn
    );
    assert!(store.mark_no_show(new.id, &missed.code, t1).await.unwrap());

    let t2 = t1 + minutes(5) + ms(6);
    assert!(
        store
            .finish_offer(new.id, OfferStatus::Cancelled, t2)
            .await
            .unwrap()
    );
    assert_eq!(
        store.bookings_of(new.id).await.unwrap(),
        vec![
            Booking {
                status: BookingStatus::Cancelled,
                updated_at: t2,
                ..booking_as_inserted(&live)
            },
            Booking {
                status: BookingStatus::Cancelled,
                updated_at: t2,
                ..booking_as_inserted(&anonymous)
            },
            Booking {
                status: BookingStatus::CheckedIn,
                updated_at: t1,
                ..booking_as_inserted(&came)
            },
            Booking {
                status: BookingStatus::NoShow,
                updated_at: t1,
                ..booking_as_inserted(&missed)
            },
        ]
    );
    assert_eq!(
        get_offer(store, new.id).await.status,
        OfferStatus::Cancelled
    );
    assert_eq!(
        booking(store, &elsewhere).await,
        booking_as_inserted(&elsewhere),
        "other offers' bookings are untouched"
    );
}

pub async fn add_doses_only_to_open_offers_and_up_to_1000(store: &dyn Store) {
    let new = offer(store).await;
    assert_eq!(new.doses, 3);

    assert_eq!(store.add_doses(new.id, 2).await.unwrap(), Some(5));
    assert_eq!(get_offer(store, new.id).await.doses, 5);
    assert_eq!(store.add_doses(new.id, 996).await.unwrap(), None);
    assert_eq!(
        get_offer(store, new.id).await.doses,
        5,
        "refused: unchanged"
    );
    assert_eq!(store.add_doses(new.id, 995).await.unwrap(), Some(1000));
    assert_eq!(store.add_doses(new.id, 1).await.unwrap(), None);
    assert_eq!(store.add_doses(new.id, i32::MAX).await.unwrap(), None);
    assert_eq!(get_offer(store, new.id).await.doses, 1000);

    // Nothing to add.
    let small = offer(store).await;
    for more in [0, -1, i32::MIN] {
        assert_eq!(store.add_doses(small.id, more).await.unwrap(), None);
    }
    assert_eq!(get_offer(store, small.id).await.doses, 3);

    // Not open any more.
    let t1 = t0() + minutes(1);
    store
        .finish_offer(small.id, OfferStatus::Closed, t1)
        .await
        .unwrap();
    assert_eq!(store.add_doses(small.id, 1).await.unwrap(), None);
    let cancelled = offer(store).await;
    store
        .finish_offer(cancelled.id, OfferStatus::Cancelled, t1)
        .await
        .unwrap();
    assert_eq!(store.add_doses(cancelled.id, 1).await.unwrap(), None);
    assert_eq!(get_offer(store, small.id).await.doses, 3);
    assert_eq!(get_offer(store, cancelled.id).await.doses, 3);

    assert_eq!(store.add_doses(Uuid::new_v4(), 1).await.unwrap(), None);
}

// --- bookings ---------------------------------------------------------------------------------

pub async fn insert_and_list_bookings_oldest_first(store: &dyn Store) {
    let new = offer(store).await;
    assert_eq!(store.bookings_of(new.id).await.unwrap(), vec![]);

    let second = book(store, new.id, Some(registrant(store).await), t0() + ms(2)).await;
    let first = book(store, new.id, None, t0() + ms(1)).await;
    let other_offer = offer(store).await;
    let foreign = book(store, other_offer.id, None, t0()).await;

    assert_eq!(
        store.bookings_of(new.id).await.unwrap(),
        vec![booking_as_inserted(&first), booking_as_inserted(&second)]
    );
    assert_eq!(
        store.bookings_of(other_offer.id).await.unwrap(),
        vec![booking_as_inserted(&foreign)]
    );
    assert_eq!(store.bookings_of(Uuid::new_v4()).await.unwrap(), vec![]);

    // Codes are unique across offers.
    let mut clash = new_booking(other_offer.id, None, t0());
    clash.code = first.code.clone();
    assert_conflict(
        store.insert_booking(&clash).await,
        "booking with a taken code",
    );
    assert_eq!(store.bookings_of(other_offer.id).await.unwrap().len(), 1);

    // Bookings belong to an offer.
    let orphan = new_booking(Uuid::new_v4(), None, t0());
    assert!(store.insert_booking(&orphan).await.is_err());
}

pub async fn check_in_tells_checked_in_already_used_and_unknown(store: &dyn Store) {
    let new = offer(store).await;
    let person = registrant(store).await;
    let good = book(store, new.id, Some(person), t0() + ms(1)).await;
    let missed = book(store, new.id, None, t0() + ms(2)).await;
    let other_offer = offer(store).await;
    let foreign = book(store, other_offer.id, None, t0() + ms(3)).await;

    let t1 = t0() + Duration::hours(1) + ms(11);
    assert_eq!(
        store.check_in(new.id, &good.code, t1).await.unwrap(),
        CheckInOutcome::CheckedIn
    );
    assert_eq!(
        booking(store, &good).await,
        Booking {
            status: BookingStatus::CheckedIn,
            updated_at: t1,
            ..booking_as_inserted(&good)
        }
    );

    // Twice: already used, and the first check-in time stays.
    assert_eq!(
        store
            .check_in(new.id, &good.code, t1 + minutes(1))
            .await
            .unwrap(),
        CheckInOutcome::AlreadyUsed
    );
    assert_eq!(booking(store, &good).await.updated_at, t1);

    // A no-show cannot be checked in afterwards.
    assert!(store.mark_no_show(new.id, &missed.code, t1).await.unwrap());
    assert_eq!(
        store
            .check_in(new.id, &missed.code, t1 + minutes(2))
            .await
            .unwrap(),
        CheckInOutcome::AlreadyUsed
    );
    assert_eq!(booking(store, &missed).await.status, BookingStatus::NoShow);

    // A code of another offer is unknown here, and stays booked there.
    assert_eq!(
        store.check_in(new.id, &foreign.code, t1).await.unwrap(),
        CheckInOutcome::Unknown
    );
    assert_eq!(
        booking(store, &foreign).await,
        booking_as_inserted(&foreign)
    );

    assert_eq!(
        store.check_in(new.id, &booking_code(), t1).await.unwrap(),
        CheckInOutcome::Unknown
    );
    assert_eq!(
        store
            .check_in(Uuid::new_v4(), &good.code, t1)
            .await
            .unwrap(),
        CheckInOutcome::Unknown
    );

    // A cancelled booking is used up too.
    let t2 = t1 + minutes(3);
    store
        .finish_offer(other_offer.id, OfferStatus::Cancelled, t2)
        .await
        .unwrap();
    assert_eq!(
        store
            .check_in(other_offer.id, &foreign.code, t2)
            .await
            .unwrap(),
        CheckInOutcome::AlreadyUsed
    );
}

pub async fn no_show_marks_only_booked_codes_of_the_offer(store: &dyn Store) {
    let new = offer(store).await;
    let missed = book(store, new.id, Some(registrant(store).await), t0() + ms(1)).await;
    let came = book(store, new.id, None, t0() + ms(2)).await;
    let other_offer = offer(store).await;
    let foreign = book(store, other_offer.id, None, t0() + ms(3)).await;

    let t1 = t0() + Duration::hours(4) + ms(8);
    assert!(store.mark_no_show(new.id, &missed.code, t1).await.unwrap());
    assert_eq!(
        booking(store, &missed).await,
        Booking {
            status: BookingStatus::NoShow,
            updated_at: t1,
            ..booking_as_inserted(&missed)
        }
    );
    assert!(
        !store
            .mark_no_show(new.id, &missed.code, t1 + ms(1))
            .await
            .unwrap()
    );
    assert_eq!(booking(store, &missed).await.updated_at, t1);

    store.check_in(new.id, &came.code, t1).await.unwrap();
    assert!(!store.mark_no_show(new.id, &came.code, t1).await.unwrap());
    assert_eq!(booking(store, &came).await.status, BookingStatus::CheckedIn);

    assert!(!store.mark_no_show(new.id, &foreign.code, t1).await.unwrap());
    assert_eq!(
        booking(store, &foreign).await,
        booking_as_inserted(&foreign)
    );
    assert!(
        !store
            .mark_no_show(new.id, &booking_code(), t1)
            .await
            .unwrap()
    );
}

/// The same code scanned at two desks at once is checked in exactly once.
pub async fn racing_check_ins_check_in_once(store: &dyn Store) {
    let new = offer(store).await;
    let code = book(store, new.id, None, t0()).await.code;
    warm_up(store).await;
    let now = t0() + Duration::hours(1);
    let results = join_all((0..8).map(|_| store.check_in(new.id, &code, now)).collect()).await;
    let outcomes: Vec<CheckInOutcome> = results
        .into_iter()
        .map(|r| r.expect("racing check_in failed"))
        .collect();
    let checked_in = outcomes
        .iter()
        .filter(|o| **o == CheckInOutcome::CheckedIn)
        .count();
    assert_eq!(checked_in, 1, "racing check-ins: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, CheckInOutcome::CheckedIn | CheckInOutcome::AlreadyUsed)),
        "racing check-ins: {outcomes:?}"
    );
}

pub async fn a_person_holds_one_live_booking(store: &dyn Store) {
    let person = registrant(store).await;
    let first_offer = offer(store).await;
    let second_offer = offer(store).await;
    let first = book(store, first_offer.id, Some(person), t0()).await;

    let second = new_booking(second_offer.id, Some(person), t0() + ms(1));
    assert_conflict(
        store.insert_booking(&second).await,
        "second live booking of the same person",
    );
    assert_eq!(store.bookings_of(second_offer.id).await.unwrap(), vec![]);
    // On the same offer too.
    assert_conflict(
        store
            .insert_booking(&new_booking(first_offer.id, Some(person), t0() + ms(1)))
            .await,
        "second booking of the same person on the same offer",
    );

    // Once the first is cancelled, the person may book again.
    store
        .finish_offer(first_offer.id, OfferStatus::Cancelled, t0() + minutes(1))
        .await
        .unwrap();
    assert_eq!(
        booking(store, &first).await.status,
        BookingStatus::Cancelled
    );
    store
        .insert_booking(&second)
        .await
        .expect("booking after the first was cancelled failed");

    // And after being checked in.
    store
        .check_in(second_offer.id, &second.code, t0() + minutes(2))
        .await
        .unwrap();
    let third_offer = offer(store).await;
    book(store, third_offer.id, Some(person), t0() + minutes(3)).await;

    // Bookings without a person (the person was deleted) never clash.
    book(store, third_offer.id, None, t0()).await;
    book(store, third_offer.id, None, t0()).await;
}

pub async fn booked_registrants_are_listed_by_status(store: &dyn Store) {
    let new = offer(store).await;
    let came = registrant(store).await;
    let missed = registrant(store).await;
    let waiting = registrant(store).await;
    let later = registrant(store).await;
    let came_booking = book(store, new.id, Some(came), t0()).await;
    let missed_booking = book(store, new.id, Some(missed), t0() + ms(1)).await;
    book(store, new.id, Some(later), t0() + ms(3)).await;
    book(store, new.id, Some(waiting), t0() + ms(2)).await;
    book(store, new.id, None, t0() + ms(4)).await;
    let other_offer = offer(store).await;
    let elsewhere = registrant(store).await;
    book(store, other_offer.id, Some(elsewhere), t0()).await;

    let t1 = t0() + Duration::hours(2);
    store
        .check_in(new.id, &came_booking.code, t1)
        .await
        .unwrap();
    store
        .mark_no_show(new.id, &missed_booking.code, t1)
        .await
        .unwrap();

    let of = |status| async move { store.booked_registrants(new.id, status).await.unwrap() };
    assert_eq!(of(BookingStatus::Booked).await, vec![waiting, later]);
    assert_eq!(of(BookingStatus::CheckedIn).await, vec![came]);
    assert_eq!(of(BookingStatus::NoShow).await, vec![missed]);
    assert_eq!(of(BookingStatus::Cancelled).await, Vec::<Uuid>::new());

    store
        .finish_offer(new.id, OfferStatus::Cancelled, t1 + minutes(1))
        .await
        .unwrap();
    assert_eq!(of(BookingStatus::Cancelled).await, vec![waiting, later]);
    assert_eq!(of(BookingStatus::Booked).await, Vec::<Uuid>::new());
    assert_eq!(
        store
            .booked_registrants(other_offer.id, BookingStatus::Booked)
            .await
            .unwrap(),
        vec![elsewhere]
    );
}

/// The practice's records outlive the person: the booking stays, cancelled (nobody will come
/// for it), and only the link to the person goes.
pub async fn deleting_a_registrant_keeps_the_booking(store: &dyn Store) {
    let new = offer(store).await;
    let person = registrant(store).await;
    let kept = book(store, new.id, Some(person), t0()).await;

    assert!(store.delete_registrant(person).await.unwrap());

    assert_eq!(
        store.bookings_of(new.id).await.unwrap(),
        vec![Booking {
            status: BookingStatus::Cancelled,
            ..booking_as_inserted(&kept)
        }]
    );
    assert_eq!(
        store
            .booked_registrants(new.id, BookingStatus::Booked)
            .await
            .unwrap(),
        Vec::<Uuid>::new()
    );
    // The code no longer admits anyone.
    assert_eq!(
        store
            .check_in(new.id, &kept.code, t0() + Duration::hours(1))
            .await
            .unwrap(),
        CheckInOutcome::AlreadyUsed
    );
}

// --- account deletion -------------------------------------------------------------------------

/// Deleting a practice's account removes its practice, offers, bookings, API tokens, sessions
/// and links; other practices and the registrants stay.
pub async fn deleting_a_practice_account_cascades(store: &dyn Store) {
    let rows = practice(store).await;
    let id = rows.account.id;
    let bystander = practice(store).await;
    let person = registrant(store).await;

    let gone_offer = insert_offer_at(store, id, t0()).await;
    let gone_booking = book(store, gone_offer.id, Some(person), t0()).await;
    let token = new_api_token(id, "Praxissoftware", t0());
    store.insert_api_token(&token).await.unwrap();
    let session = new_session(id, t0(), Duration::days(1));
    store.insert_session(&session).await.unwrap();
    let reset = account_token(id, AccountTokenPurpose::ResetPassword, t0(), minutes(60));
    store.insert_account_token(&reset).await.unwrap();

    let kept_offer = insert_offer_at(store, bystander.account.id, t0()).await;
    let kept_token = new_api_token(bystander.account.id, "Andere", t0());
    store.insert_api_token(&kept_token).await.unwrap();

    assert!(store.delete_account(id).await.unwrap());

    let t1 = t0() + minutes(1);
    assert_eq!(store.account(id).await.unwrap(), None);
    assert_eq!(
        store.account_by_email(&rows.account.email).await.unwrap(),
        None
    );
    assert_eq!(store.practice(id).await.unwrap(), None);
    assert_eq!(store.offer(gone_offer.id).await.unwrap(), None);
    assert_eq!(store.offers_of(id).await.unwrap(), vec![]);
    assert_eq!(store.bookings_of(gone_offer.id).await.unwrap(), vec![]);
    assert_eq!(store.api_tokens(id).await.unwrap(), vec![]);
    assert_eq!(
        store.practice_for_api_token(&token.hash, t1).await.unwrap(),
        None
    );
    assert_eq!(store.session(&session.id_hash, t1).await.unwrap(), None);
    assert_eq!(
        store
            .take_account_token(&reset.hash, AccountTokenPurpose::ResetPassword, t1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_account_token(&rows.verify.hash, AccountTokenPurpose::VerifyEmail, t1)
            .await
            .unwrap(),
        None
    );

    // The rows are really gone: the booking code and the person's live booking are free.
    let mut again = new_booking(kept_offer.id, Some(person), t1);
    again.code = gone_booking.code.clone();
    store
        .insert_booking(&again)
        .await
        .expect("booking after the practice's deletion failed");

    // Others stay.
    assert!(store.registrant(person).await.unwrap().is_some());
    assert!(
        store
            .practice(bystander.account.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        get_offer(store, kept_offer.id).await,
        offer_as_inserted(&kept_offer)
    );
    assert_eq!(
        store
            .practice_for_api_token(&kept_token.hash, t1)
            .await
            .unwrap(),
        Some(bystander.account.id)
    );

    // Already gone.
    assert!(!store.delete_account(id).await.unwrap());
    assert!(!store.delete_account(Uuid::new_v4()).await.unwrap());

    // Admins can be deleted too, and their address is free again.
    let admin = new_account(Role::Admin, t0());
    store.insert_admin(&admin).await.unwrap();
    let admin_session = new_session(admin.id, t0(), Duration::days(1));
    store.insert_session(&admin_session).await.unwrap();
    assert!(store.delete_account(admin.id).await.unwrap());
    assert_eq!(store.account(admin.id).await.unwrap(), None);
    assert_eq!(
        store.session(&admin_session.id_hash, t1).await.unwrap(),
        None
    );
    store
        .insert_admin(&admin)
        .await
        .expect("re-creating a deleted admin failed");
}
