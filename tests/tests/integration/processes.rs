//! Several `restdose` processes on one PostgreSQL database, run as the compiled binary: 500
//! people clicking "claim" at once through two web processes, and a delivery worker killed in
//! the middle of a batch. PostgreSQL only: on SQLite one runs a single process.
//!
//! The binary must have been built by `cargo test --workspace` (or `cargo build -p restdose`);
//! see `restdose_tests::processes::restdose_binary`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration as TimeSpan, Utc};
use restdose_core::Services;
use restdose_crypto::SecretToken;
use restdose_domain::Email;
use restdose_mail::{MailContent, OutgoingMail};
use restdose_store::{
    AccountTokenPurpose, NewAccount, NewAccountToken, NewInvitation, NewOffer, NewPractice,
    NewRegistrant, NewToken, NewWave, PracticeStatus, Role, StoredEmail, TokenPurpose,
};
use restdose_tests::processes::{Deployment, SlowSmtp, WAIT, free_port};
use restdose_tests::{TestSmtp, unique_email};
use sqlx::Connection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PEOPLE: usize = 500;
const DOSES: i32 = 5;
const POSTCODE: &str = "10115";

/// One invited person: the secret of their invitation link and who they are.
struct Invited {
    secret: SecretToken,
    registrant_id: Uuid,
    email: String,
    message_id: String,
}

struct Seeded {
    offer_id: Uuid,
    invited: Vec<Invited>,
}

fn mail_to(to: &str, message_id: String, subject: &str, text: String) -> OutgoingMail {
    OutgoingMail {
        to: Email::from_trusted(to.to_owned()),
        message_id,
        content: MailContent {
            subject: subject.to_owned(),
            html: format!("<p>{text}</p>"),
            text,
            unsubscribe_url: None,
            attachments: Vec::new(),
        },
    }
}

/// An approved practice with a verified login, one open offer of `doses` starting in an hour
/// at its postcode, `people` confirmed people there, and a first wave inviting all of them (the
/// invitation mails wait in the outbox). Everything through the store and the services, with
/// the deployment's keys.
async fn seed_offer_with_open_invitations(
    services: &Services,
    people: usize,
    doses: i32,
) -> Seeded {
    let store = &services.store;
    let now = Utc::now();

    let account_id = Uuid::new_v4();
    let verify = SecretToken::generate().unwrap();
    store
        .insert_practice(
            &NewAccount {
                id: account_id,
                role: Role::Practice,
                email: unique_email("practice"),
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
    let practice = store.practice(account_id).await.unwrap().unwrap();
    assert!(practice.email_verified && practice.status == PracticeStatus::Approved);

    let offer_id = Uuid::new_v4();
    store
        .insert_offer(&NewOffer {
            id: offer_id,
            practice_id: account_id,
            vaccine: services.policy.vaccines[0].clone(),
            doses,
            starts_at: now + TimeSpan::hours(1),
            ends_at: now + TimeSpan::hours(3),
            claim_minutes: 15,
            radius_km: 10,
            note: "Bitte Impfpass mitbringen.".to_owned(),
            postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
            created_at: now,
        })
        .await
        .unwrap();

    // Sign-up and double opt-in, as the store sees them, in parallel: as many at a time as the
    // pool has connections, so that on a busy machine no set-up step waits out the pool's
    // acquire time-out (this test is about the claims, not about a burst of sign-ups).
    let mut sign_ups = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    for i in 0..people {
        let services = services.clone();
        let slots = slots.clone();
        sign_ups.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let id = Uuid::new_v4();
            let email = format!("claim{i}.{}@example.de", Uuid::new_v4().simple());
            let address = Email::from_trusted(email.clone());
            let (key_id, ciphertext) = services
                .keys
                .encrypt(email.as_bytes(), id.as_bytes())
                .unwrap();
            let confirm = SecretToken::generate().unwrap();
            services
                .store
                .insert_registrant(
                    &NewRegistrant {
                        id,
                        email: StoredEmail {
                            key_id,
                            ciphertext,
                            index: services.keys.blind_index(&address.normalised()),
                        },
                        postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
                        radius_km: 10,
                        language: restdose_domain::Lang::De,
                        created_at: now - TimeSpan::seconds((people - i) as i64),
                        last_mail_at: Some(now),
                    },
                    &[NewToken {
                        hash: confirm.hash(),
                        registrant_id: id,
                        purpose: TokenPurpose::Confirm,
                        created_at: now,
                        expires_at: now + TimeSpan::hours(1),
                    }],
                )
                .await
                .unwrap();
            let confirmed = services
                .store
                .confirm_registrant(&confirm.hash(), now)
                .await
                .unwrap();
            assert_eq!(confirmed, Some(id));
            (i, id, email)
        });
    }
    let mut people_in_line: Vec<(usize, Uuid, String)> = sign_ups.join_all().await;
    people_in_line.sort_by_key(|(i, _, _)| *i);

    let expires_at = now + TimeSpan::minutes(15);
    let mut invited = Vec::with_capacity(people);
    let mut invitations = Vec::with_capacity(people);
    for (_, registrant_id, email) in people_in_line {
        let secret = SecretToken::generate().unwrap();
        let invitation_id = Uuid::new_v4();
        let message_id = services.links.message_id(invitation_id);
        let link = services
            .links
            .portal(&format!("/invitations/{}", secret.expose()));
        let mail = mail_to(&email, message_id.clone(), "Eine Impfdosis ist frei", link);
        invitations.push((
            NewInvitation {
                id: invitation_id,
                registrant_id,
                token_hash: secret.hash(),
                distance_km: 0.0,
                expires_at,
            },
            services.outbox_row(&mail, now).unwrap(),
        ));
        invited.push(Invited {
            secret,
            registrant_id,
            email,
            message_id,
        });
    }
    let recorded = store
        .record_wave(&NewWave {
            offer_id,
            wave: 1,
            last_call: false,
            created_at: now,
            next_wave_at: expires_at,
            claimed_seen: 0,
            invitations,
        })
        .await
        .unwrap();
    assert_eq!(recorded as usize, people, "every invitation is stored");
    Seeded { offer_id, invited }
}

/// What one claim got back.
struct Answer {
    person: usize,
    took: Duration,
    status: u16,
    location: Option<String>,
    body: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_simultaneous_claims_on_two_processes_book_exactly_five() {
    let started = Instant::now();
    // Nothing may be delivered (--no-workers); a private server would show it if it were.
    let smtp = TestSmtp::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let mut deployment = Deployment::postgres().await;
    deployment.set("smtp_url", format!("smtp://127.0.0.1:{}", smtp.port()));
    deployment.set("database_max_connections", "20");
    // All 500 clicks arrive within milliseconds at a debug build on a shared machine; with the
    // default queue (32 places, 200 ms) most would be answered 503 by the admission control
    // (tested in admission.rs, measured in scripts/bench-load S4). Here every click must
    // reach the claim, so they may queue as long as the test waits.
    deployment.set("admission_queue_wait_ms", WAIT.as_millis().to_string());
    deployment.set("admission_max_queued", PEOPLE.to_string());
    let services = deployment.services().await;
    let seeded = seed_offer_with_open_invitations(&services, PEOPLE, DOSES).await;
    let seeded_at = started.elapsed();

    let (mut a, mut b) = (
        deployment.spawn("serve-a", &["serve", "--no-workers"], Some(free_port())),
        deployment.spawn("serve-b", &["serve", "--no-workers"], Some(free_port())),
    );
    tokio::join!(a.wait_healthy(), b.wait_healthy());
    let up_at = started.elapsed();

    // Every click waits at the barrier, then all go at once, alternating between the two
    // processes, on four runtime threads. Redirects are not followed: the 303 is the answer.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap();
    let bases = [a.base_url(), b.base_url()];
    let barrier = Arc::new(tokio::sync::Barrier::new(PEOPLE));
    let mut clicks = Vec::with_capacity(PEOPLE);
    for (person, invited) in seeded.invited.iter().enumerate() {
        let url = format!(
            "{}/invitations/{}/claim",
            bases[person % 2],
            invited.secret.expose()
        );
        let (client, barrier) = (client.clone(), barrier.clone());
        clicks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sent = Instant::now();
            let response = client
                .post(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("claim {person} got no answer: {e}"));
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap();
            Answer {
                person,
                took: sent.elapsed(),
                status,
                location,
                body,
            }
        }));
    }
    let fired = Instant::now();
    let answers: Vec<Answer> = tokio::time::timeout(WAIT * 2, async {
        let mut answers = Vec::with_capacity(PEOPLE);
        for click in clicks {
            answers.push(click.await.expect("a claim task panicked"));
        }
        answers
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the {PEOPLE} claims were not all answered within {:?}",
            WAIT * 2
        )
    });
    let claims_took = fired.elapsed();
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let (p50, p99, slowest) = (
        percentile(50),
        percentile(99),
        latencies[latencies.len() - 1],
    );
    a.assert_running();
    b.assert_running();

    // Exactly five were sent to their booking, everyone else read "all doses are taken".
    let mut booked: Vec<(usize, String)> = Vec::new();
    let mut missed = 0;
    let mut other: BTreeMap<u16, (usize, String)> = BTreeMap::new();
    for answer in &answers {
        match (answer.status, &answer.location) {
            (303, Some(location)) if location.starts_with("/bookings/") => {
                booked.push((answer.person, location.clone()));
            }
            (200, _) if answer.body.contains("data-state=\"missed\"") => missed += 1,
            (status, _) => {
                let entry = other
                    .entry(status)
                    .or_insert_with(|| (0, answer.body.chars().take(600).collect()));
                entry.0 += 1;
            }
        }
    }
    assert!(
        other.is_empty(),
        "unexpected answers (status: count, first body): {other:#?}\nlog of serve-a:\n{}\nlog of serve-b:\n{}",
        a.log_tail(),
        b.log_tail()
    );
    assert_eq!(booked.len(), DOSES as usize, "booked: {booked:?}");
    assert_eq!(missed, PEOPLE - DOSES as usize);

    // The database agrees: five bookings for five different people, the counter at five, and
    // the winners are exactly those who got the 303.
    let mut db = sqlx::PgConnection::connect(&deployment.db.url)
        .await
        .unwrap();
    let bookings: Vec<(Uuid, Option<Uuid>, Vec<u8>)> = sqlx::query_as(
        "SELECT id, registrant_id, token_hash FROM bookings WHERE offer_id = $1 AND status = 'booked'",
    )
    .bind(seeded.offer_id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let (all_bookings,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bookings")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(bookings.len(), DOSES as usize);
    assert_eq!(
        all_bookings,
        i64::from(DOSES),
        "no booking of another status"
    );
    let booked_people: HashSet<Uuid> = bookings.iter().filter_map(|(_, r, _)| *r).collect();
    assert_eq!(booked_people.len(), DOSES as usize, "five different people");
    let winners: HashSet<Uuid> = booked
        .iter()
        .map(|(person, _)| seeded.invited[*person].registrant_id)
        .collect();
    assert_eq!(winners, booked_people, "the 303s went to the people booked");
    let booking_links: HashSet<Vec<u8>> = booked
        .iter()
        .map(|(_, location)| {
            let secret = location
                .trim_start_matches("/bookings/")
                .split('?')
                .next()
                .unwrap();
            SecretToken::parse(secret).unwrap().hash()
        })
        .collect();
    let stored_links: HashSet<Vec<u8>> = bookings.iter().map(|(_, _, h)| h.clone()).collect();
    assert_eq!(booking_links, stored_links, "each 303 leads to its booking");

    let (claimed, invited): (i32, i32) =
        sqlx::query_as("SELECT claimed, invited FROM offers WHERE id = $1")
            .bind(seeded.offer_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!((claimed, invited), (DOSES, PEOPLE as i32));
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM invitations WHERE offer_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(seeded.offer_id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        statuses,
        vec![
            ("claimed".to_owned(), i64::from(DOSES)),
            ("missed".to_owned(), (PEOPLE - DOSES as usize) as i64),
        ]
    );
    let claimed_by: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT registrant_id FROM invitations WHERE offer_id = $1 AND status = 'claimed'",
    )
    .bind(seeded.offer_id)
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(claimed_by, booked_people);

    // The outbox holds the 500 invitations and exactly five confirmations, one per booking,
    // to the people booked; nothing was delivered (no workers anywhere).
    let rows: Vec<(Uuid, i32, Vec<u8>)> = sqlx::query_as("SELECT id, key_id, payload FROM outbox")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let invitation_ids: HashSet<&str> = seeded
        .invited
        .iter()
        .map(|i| i.message_id.as_str())
        .collect();
    let mut invitation_mails = 0;
    let mut confirmations: HashMap<String, String> = HashMap::new();
    for (id, key_id, payload) in &rows {
        let json = services
            .keys
            .decrypt(*key_id, payload, id.as_bytes())
            .unwrap();
        let mail: OutgoingMail = serde_json::from_slice(&json).unwrap();
        if invitation_ids.contains(mail.message_id.as_str()) {
            invitation_mails += 1;
        } else {
            confirmations.insert(mail.message_id, mail.to.as_str().to_owned());
        }
    }
    assert_eq!(invitation_mails, PEOPLE);
    let expected: HashMap<String, String> = bookings
        .iter()
        .map(|(booking_id, registrant, _)| {
            let person = seeded
                .invited
                .iter()
                .find(|i| Some(i.registrant_id) == *registrant)
                .unwrap();
            (services.links.message_id(*booking_id), person.email.clone())
        })
        .collect();
    assert_eq!(
        confirmations, expected,
        "one confirmation per booking, to its holder"
    );
    for email in expected.values() {
        assert_eq!(smtp.count_for(email), 0, "--no-workers delivered a mail");
    }
    db.close().await.ok();
    drop((a, b));
    eprintln!(
        "timings: seeded {PEOPLE} people and invitations in {seeded_at:?}, both processes up at \
         {up_at:?}, {PEOPLE} claims answered in {claims_took:?} (each: p50 {p50:?}, p99 {p99:?}, max \
         {slowest:?}), total {:?}",
        started.elapsed()
    );
}

const MAILS: usize = 300;
/// Kill the worker once this many mails arrived (of `MAILS`).
const KILL_AFTER: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_delivery_worker_mid_batch_loses_no_mail() {
    let started = Instant::now();
    // 20 ms per mail with 4 at a time: the batch takes well over a second.
    let smtp = SlowSmtp::start(Duration::from_millis(20));
    let mut deployment = Deployment::postgres().await;
    deployment.set("smtp_url", smtp.url());
    deployment.set("mail_parallel", "4");
    // The killed worker's mails come back after their lease; 2 s instead of 2 minutes.
    deployment.set("mail_lease_seconds", "2");
    deployment.set("worker_poll_ms", "100");
    let services = deployment.services().await;

    let mut expected: HashMap<String, String> = HashMap::new();
    for i in 0..MAILS {
        let to = format!("outbox{i}.{}@example.de", Uuid::new_v4().simple());
        let message_id = services.links.message_id(Uuid::new_v4());
        let mail = mail_to(&to, message_id.clone(), "Test", format!("Mail {i}"));
        services.enqueue(&mail).await.unwrap();
        // mail-parser gives the Message-ID without its angle brackets.
        let bare = message_id
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        expected.insert(to, bare);
    }
    assert_eq!(services.store.outbox_depth().await.unwrap().0, MAILS as u64);

    let mut first = deployment.matcher("matcher-1");
    let deadline = Instant::now() + WAIT;
    while smtp.count() < KILL_AFTER {
        first.assert_running();
        assert!(
            Instant::now() < deadline,
            "the first worker delivered {} mail(s) within {WAIT:?}:\n{}",
            smtp.count(),
            first.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill();
    let killed_at = started.elapsed();
    let received_before_kill = smtp.count();
    assert!(
        received_before_kill < MAILS,
        "every mail arrived before the kill: the SMTP server must be slower for this test"
    );
    let (left, _) = services.store.outbox_depth().await.unwrap();
    assert!(left > 0, "the outbox is empty right after the kill");

    let mut second = deployment.matcher("matcher-2");
    let restarted = Instant::now();
    let deadline = restarted + WAIT;
    loop {
        let (depth, _) = services.store.outbox_depth().await.unwrap();
        if depth == 0 {
            break;
        }
        second.assert_running();
        assert!(
            Instant::now() < deadline,
            "{depth} mail(s) still in the outbox {WAIT:?} after the second worker started:\n{}",
            second.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_in = restarted.elapsed();
    second.kill();

    // Everyone got their mail; a mail sent twice carries the same Message-ID both times.
    let mut received: HashMap<String, Vec<String>> = HashMap::new();
    for mail in smtp.mails() {
        let message_id = mail.message_id();
        for to in &mail.to {
            received
                .entry(to.to_ascii_lowercase())
                .or_default()
                .push(message_id.clone());
        }
    }
    let strangers: Vec<&String> = received
        .keys()
        .filter(|to| !expected.contains_key(*to))
        .collect();
    assert!(
        strangers.is_empty(),
        "mail to unknown recipients: {strangers:?}"
    );
    let mut twice = 0;
    for (to, message_id) in &expected {
        let got = received
            .get(to)
            .unwrap_or_else(|| panic!("{to} never got their mail"));
        assert!(
            got.iter().all(|id| id == message_id),
            "{to} got {got:?}, expected {message_id} every time"
        );
        if got.len() > 1 {
            twice += 1;
        }
    }
    eprintln!(
        "timings: killed the first worker at {killed_at:?} after {received_before_kill} of \
         {MAILS} mails ({left} left in the outbox); the second worker emptied it in \
         {drained_in:?}; {twice} mail(s) delivered twice (same Message-ID); total {:?}",
        started.elapsed()
    );
}

/// Issue #17: the abuse limits live in the database, so two web processes together allow no
/// more than one process's limit for an address. 20 password-reset requests for one practice
/// address, sent at once and split over two processes: the address
/// gets `mails_per_address_per_hour` mails in all (the sign-up's verification mail included),
/// and every request gets the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_web_processes_share_the_per_address_mail_limit() {
    const CAP: usize = 3;
    const REQUESTS: usize = 20;
    let mut deployment = Deployment::postgres().await;
    // All requests come from 127.0.0.1 here: the per-client limit must not be what stops them.
    deployment.set("account_requests_per_ip_per_minute", "1000");
    deployment.set("mails_per_address_per_hour", CAP.to_string());
    let services = deployment.services().await;
    let email = unique_email("two-processes");
    let fields = restdose_tests::portal::sign_up_fields(&email);
    let value = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    // Counted windows are clock hours: do not start in the last seconds of one.
    let into_hour = Utc::now().timestamp() % 3600;
    if into_hour > 3590 {
        tokio::time::sleep(Duration::from_secs((3601 - into_hour) as u64)).await;
    }
    services
        .sign_up_practice(
            &restdose_core::PracticeSignUp {
                name: value("name"),
                street: value("street"),
                postcode: value("postcode"),
                city: value("city"),
                phone: value("phone"),
                email: email.clone(),
                password: value("password"),
            },
            restdose_domain::Lang::De,
            None,
        )
        .await
        .unwrap();
    let a = deployment.serve_no_workers("web-a").await;
    let b = deployment.serve_no_workers("web-b").await;

    // The anonymous CSRF token is a double-submit cookie: one token serves both processes.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/portal/password/forgot", a.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = restdose_tests::portal::csrf_from(&page);
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base_url()
            } else {
                b.base_url()
            };
            tokio::spawn(
                client
                    .post(format!("{base}/portal/password/forgot"))
                    .form(&[("csrf", csrf.as_str()), ("email", email.as_str())])
                    .send(),
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap().unwrap().status().as_u16());
    }

    assert_eq!(
        statuses,
        vec![200; REQUESTS],
        "every request gets the same answer"
    );
    // No workers run: every mail is still in the outbox. Reset links are queued just after the
    // answer, so wait for the cap to fill, then a little longer for any mail beyond it.
    let deadline = Instant::now() + WAIT;
    while services.store.outbox_depth().await.unwrap().0 < CAP as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = services.store.outbox_depth().await.unwrap().0;
    assert_eq!(queued, CAP as u64, "mails queued for the address");
}
