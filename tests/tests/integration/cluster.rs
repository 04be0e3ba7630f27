//! The production shape: two API processes (`restdose serve --no-workers`) and two matcher
//! processes (`restdose matcher`) on one PostgreSQL database, every mail to one SMTP server.
//! A whole scenario goes through BOTH API ports: people sign up and confirm (alternating
//! ports), an approved practice posts offers through the bearer API (one per port), both
//! matchers send waves, people claim and decline on both ports. Then:
//!
//! - nobody was invited twice to the same offer, and nobody holds two open invitations;
//! - nobody holds two live bookings, no offer has more bookings than doses;
//! - every mail was delivered exactly once (no crash here, so not even the duplicate that
//!   docs/architecture.md allows after a delivery worker dies between send and delete), and
//!   every invitation and booking has its mail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration as TimeSpan, Utc};
use restdose_core::Principal;
use restdose_crypto::SecretToken;
use restdose_store::{
    AccountTokenPurpose, NewAccount, NewAccountToken, NewPractice, PracticeStatus, Role,
};
use restdose_tests::processes::{Deployment, WAIT};
use restdose_tests::{CapturedMail, TestSmtp, unique_email};
use serde_json::json;
use sqlx::Connection;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

const PEOPLE: usize = 14;
const POSTCODE: &str = "10115";

/// An approved practice with a verified login at `POSTCODE`, and an API token for it (what an
/// operator and the portal do; the test seeds it through the library with the deployment's
/// keys).
async fn practice_token(deployment: &Deployment) -> String {
    let services = deployment.services().await;
    let store = &services.store;
    let now = Utc::now();
    let account_id = Uuid::new_v4();
    let verify = SecretToken::generate().unwrap();
    store
        .insert_practice(
            &NewAccount {
                id: account_id,
                role: Role::Practice,
                email: unique_email("cluster-practice"),
                password_hash: restdose_core::password::hash("correct horse battery staple")
                    .await
                    .unwrap(),
                created_at: now,
                email_verified_at: None,
                language: restdose_domain::Lang::De,
            },
            &NewPractice {
                account_id,
                name: "Hausarztpraxis Dr. Beispiel".to_owned(),
                street: "Invalidenstraße 1".to_owned(),
                postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
                city: "Berlin".to_owned(),
                phone: "030 1234567".to_owned(),
                created_at: now,
            },
            &NewAccountToken {
                hash: verify.hash(),
                account_id,
                purpose: AccountTokenPurpose::VerifyEmail,
                created_at: now,
                expires_at: now + TimeSpan::hours(48),
            },
        )
        .await
        .unwrap();
    services
        .verify_practice_email(verify.expose())
        .await
        .unwrap();
    store
        .set_practice_status(account_id, PracticeStatus::Approved, now)
        .await
        .unwrap();
    services
        .create_api_token(
            &Principal::Practice {
                id: account_id,
                status: PracticeStatus::Approved,
            },
            "cluster test",
        )
        .await
        .unwrap()
        .secret
}

/// Waits until `address` has `count` mails whose subject contains `marker`.
async fn wait_mails(
    smtp: &TestSmtp,
    address: &str,
    marker: &str,
    count: usize,
) -> Vec<CapturedMail> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mails: Vec<CapturedMail> = smtp
            .mails_for(address)
            .into_iter()
            .filter(|m| m.subject().contains(marker))
            .collect();
        if mails.len() >= count {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{address} got {} of {count} mails about {marker:?}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_and_two_matcher_processes_serve_one_scenario_without_doubles() {
    let started = Instant::now();
    let smtp = TestSmtp::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let mut deployment = Deployment::postgres().await;
    deployment.set("smtp_url", format!("smtp://127.0.0.1:{}", smtp.port()));
    deployment.set("worker_poll_ms", "100");
    deployment.set("database_max_connections", "8");
    let token = practice_token(&deployment).await;

    let mut api_a = deployment.serve_no_workers("api-a").await;
    let mut api_b = deployment.serve_no_workers("api-b").await;
    let mut matcher_1 = deployment.matcher("matcher-1");
    let mut matcher_2 = deployment.matcher("matcher-2");
    let apis = [api_a.base_url(), api_b.base_url()];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap();

    // People sign up on alternating ports and confirm on the other one.
    let people: Vec<String> = (0..PEOPLE).map(|_| unique_email("cluster")).collect();
    for (i, email) in people.iter().enumerate() {
        let response = client
            .post(format!("{}/api/v1/registrations", apis[i % 2]))
            .json(&json!({ "email": email, "postcode": POSTCODE }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "sign-up {i}");
    }
    for (i, email) in people.iter().enumerate() {
        let mail = wait_mails(&smtp, email, "", 1).await.remove(0);
        let confirm = mail.link_path("/confirm/");
        let response = client
            .post(format!("{}{confirm}", apis[(i + 1) % 2]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "confirmation {i}");
    }

    // The practice offers doses through the API, once on each port.
    let now = Utc::now();
    let mut doses_of: HashMap<Uuid, i64> = HashMap::new();
    for (port, doses) in [(0, 3_i64), (1, 2_i64)] {
        let response = client
            .post(format!("{}/api/v1/offers", apis[port]))
            .bearer_auth(&token)
            .json(&json!({
                "vaccine": deployment.config().vaccines[0],
                "doses": doses,
                "starts_at": (now + TimeSpan::hours(2)).to_rfc3339(),
                "ends_at": (now + TimeSpan::hours(4)).to_rfc3339(),
                "claim_minutes": 15,
                "radius_km": 10,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let offer: serde_json::Value = response.json().await.unwrap();
        doses_of.insert(
            Uuid::parse_str(offer["id"].as_str().unwrap()).unwrap(),
            doses,
        );
    }
    let total_doses: i64 = doses_of.values().sum();

    // The matchers invite (both offers get a first wave), and the invitations are delivered.
    let services = deployment.services().await;
    let mut db = sqlx::PgConnection::connect(&deployment.db.url)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (offers_with_waves,): (i64,) =
            sqlx::query_as("SELECT COUNT(DISTINCT offer_id) FROM invitations")
                .fetch_one(&mut db)
                .await
                .unwrap();
        let depth = services.store.outbox_depth().await.unwrap();
        if offers_with_waves == 2 && depth.0 == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the matchers sent no waves: {offers_with_waves} of 2 offers invited, outbox {depth:?}\n\
             matcher-1:\n{}\nmatcher-2:\n{}",
            matcher_1.log_tail(),
            matcher_2.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let invited: Vec<(String, CapturedMail)> = people
        .iter()
        .flat_map(|p| {
            smtp.mails_for(p)
                .into_iter()
                .filter(|m| m.subject().contains("Impfdosis"))
                .map(|m| (p.clone(), m))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        invited.len() as i64 >= total_doses,
        "only {} invitations for {total_doses} doses",
        invited.len()
    );

    // Every third invited person declines, the others claim, on alternating ports; each
    // clicks twice (a double click, on the other port) to tempt a double booking.
    let mut booked = 0;
    let mut declined = 0;
    for (i, (_, mail)) in invited.iter().enumerate() {
        let link = mail.link_path("/invitations/");
        let (first, second) = (&apis[i % 2], &apis[(i + 1) % 2]);
        if i % 3 == 2 {
            let response = client
                .post(format!("{first}{link}/decline"))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success() || response.status() == 303);
            declined += 1;
            continue;
        }
        let (a, b) = tokio::join!(
            client.post(format!("{first}{link}/claim")).send(),
            client.post(format!("{second}{link}/claim")).send(),
        );
        let locations: Vec<String> = [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|r| r.status() == 303)
            .filter_map(|r| r.headers().get("location"))
            .map(|l| l.to_str().unwrap().to_owned())
            .filter(|l| l.starts_with("/bookings/"))
            .collect();
        // Both answers may lead to the one booking; never to two different ones.
        let distinct: HashSet<&String> = locations.iter().collect();
        assert!(
            distinct.len() <= 1,
            "two bookings from one invitation: {locations:?}"
        );
        booked += usize::from(!distinct.is_empty());
    }
    assert!(
        booked >= 1 && declined >= 1,
        "booked {booked}, declined {declined}"
    );
    assert!(
        booked as i64 <= total_doses,
        "{booked} bookings for {total_doses} doses"
    );

    // Wait until every mail has left the outbox.
    let deadline = Instant::now() + WAIT;
    while services.store.outbox_depth().await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for process in [&mut api_a, &mut api_b, &mut matcher_1, &mut matcher_2] {
        process.assert_running();
    }

    // The database's view.
    let twice: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT offer_id, registrant_id, COUNT(*) FROM invitations \
         GROUP BY offer_id, registrant_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(twice.is_empty(), "invited twice to one offer: {twice:?}");
    let open_twice: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT registrant_id, COUNT(*) FROM invitations WHERE status = 'open' \
         GROUP BY registrant_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(
        open_twice.is_empty(),
        "two open invitations: {open_twice:?}"
    );
    let double_booked: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT registrant_id, COUNT(*) FROM bookings WHERE status IN ('booked', 'checked_in') \
         GROUP BY registrant_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(
        double_booked.is_empty(),
        "double bookings: {double_booked:?}"
    );
    let per_offer: Vec<(Uuid, i64, i32, i32)> = sqlx::query_as(
        "SELECT o.id, (SELECT COUNT(*) FROM bookings b WHERE b.offer_id = o.id \
                       AND b.status <> 'cancelled'), o.claimed, o.doses FROM offers o",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(per_offer.len(), 2);
    let mut bookings_total = 0;
    for (offer, bookings, claimed, doses) in &per_offer {
        assert_eq!(i64::from(*doses), doses_of[offer]);
        assert!(
            *bookings <= i64::from(*doses),
            "offer {offer}: {bookings} > {doses}"
        );
        assert_eq!(
            *bookings,
            i64::from(*claimed),
            "offer {offer}: claimed is off"
        );
        bookings_total += bookings;
    }
    assert_eq!(bookings_total, booked as i64);
    let (invitations,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invitations")
        .fetch_one(&mut db)
        .await
        .unwrap();

    // The mails: each exactly once; one per invitation and one per booking.
    let mails: Vec<CapturedMail> = people.iter().flat_map(|p| smtp.mails_for(p)).collect();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for mail in &mails {
        *ids.entry(mail.message_id()).or_default() += 1;
    }
    let duplicates: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "delivered more than once: {duplicates:?}"
    );
    assert!(ids.keys().all(|id| !id.is_empty()));
    let invitation_mails = mails
        .iter()
        .filter(|m| m.subject().contains("Impfdosis"))
        .count();
    assert_eq!(invitation_mails as i64, invitations);
    let booking_mails = mails
        .iter()
        .filter(|m| m.text().contains("Buchungscode"))
        .count();
    assert!(
        booking_mails >= booked,
        "{booking_mails} booking mails for {booked} bookings"
    );
    let confirmations = people
        .iter()
        .filter(|p| !smtp.mails_for(p).is_empty())
        .count();
    assert_eq!(confirmations, PEOPLE);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the cluster scenario took {:?}",
        started.elapsed()
    );
}
