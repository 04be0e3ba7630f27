//! The data lifecycle end to end, on both backends: everything about a person and an offer is
//! gone 24 hours after the appointment (proved on a dump of every table), a key rotation while
//! the service runs leaves every address and every waiting mail readable with the new key alone,
//! and unconfirmed sign-ups, long-paused people, expired sessions and reset links go on time.
//! Mail is received by a real SMTP server; the purge and the matcher are driven by the tests
//! with the clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use restdose::Config;
use restdose_core::matcher::WaveOutcome;
use restdose_core::{RadiusInput, Services, validate_sign_up};
use restdose_crypto::{Keyring, SecretToken};
use restdose_domain::{Clock, Email, Lang, ManualClock};
use restdose_mail::{OutgoingMail, Template, render};
use restdose_store::{EncryptedColumn, Metric, PurgePreview, RegistrantStatus, StatRow};
use restdose_tests::portal::{Browser, approved_practice, location, post_offer, registrant_id};
use restdose_tests::{Backend, CapturedMail, TestApp, on_both_backends, unique_email};
use std::sync::Arc;
use uuid::Uuid;

on_both_backends!(
    everything_about_the_person_and_the_offer_is_gone_24_hours_after_the_appointment,
    a_key_rotation_during_a_run_leaves_every_address_readable_with_only_the_new_key,
    unconfirmed_and_long_paused_people_go_and_links_and_sessions_expire,
);

// --- people ----------------------------------------------------------------------------------

/// Someone on the waiting list.
struct Person {
    /// The address as the mails are addressed (domain in punycode).
    email: String,
    /// The self-service path `/manage/<token>`.
    manage: String,
    id: Uuid,
}

/// Signs up with the address as typed (through the API) and confirms; the mails go to the
/// address as stored (domain in punycode). The clock moves a minute afterwards, so whoever
/// signs up next stands behind them in line.
async fn typed_person(app: &TestApp, typed: &str, postcode: &str) -> Person {
    let email = Email::parse(typed).unwrap().as_str().to_owned();
    let before = app.smtp.count_for(&email);
    let response = app
        .post_json(
            "/api/v1/registrations",
            &serde_json::json!({ "email": typed, "postcode": postcode }),
        )
        .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let mail = app.smtp.wait_for(&email, before + 1).await.pop().unwrap();
    let response = app
        .client
        .post(app.url(&mail.link_path("/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let manage = mail.link_path("/manage/");
    let id = registrant_id(app, &manage).await;
    app.clock.advance(Duration::minutes(1));
    Person { email, manage, id }
}

async fn person(app: &TestApp, prefix: &str, postcode: &str) -> Person {
    typed_person(app, &unique_email(prefix), postcode).await
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The status the self-service page shows, or None when the link no longer works.
async fn manage_status(app: &TestApp, manage: &str) -> Option<String> {
    let (status, html) = page(app, manage).await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{html}");
    let marker = "id=\"status\" data-status=\"";
    let start = html.find(marker).expect("no status on the page") + marker.len();
    Some(html[start..].split('"').next().unwrap().to_owned())
}

/// Waits until every mail in the outbox was accepted by the SMTP server.
async fn settle(app: &TestApp) {
    for _ in 0..500 {
        if app.services.store.outbox_depth().await.unwrap().0 == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drain");
}

async fn mail_about(app: &TestApp, email: &str, marker: &str) -> CapturedMail {
    app.smtp
        .wait_for_matching(email, |m| m.subject().contains(marker))
        .await
}

/// Claims through the invitation page; returns the booking path.
async fn claim_booked(app: &TestApp, invitation: &str) -> String {
    let response = app.post_form(&format!("{invitation}/claim"), &[]).await;
    assert_eq!(response.status(), 303, "claim did not book");
    let to = location(&response);
    let path = to.split('?').next().unwrap().to_owned();
    assert!(path.starts_with("/bookings/"), "redirected to {to}");
    path
}

fn booking_code(html: &str) -> String {
    let marker = "id=\"booking-code\">";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no booking code on the page: {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap().trim().to_owned()
}

// --- secrets and where they must not be -------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every form in which something about the person or the offer could show up in a dump.
#[derive(Default)]
struct Secrets {
    /// (what it is, the text to look for)
    text: Vec<(String, String)>,
    /// (what it is, the bytes to look for in a raw database file)
    bytes: Vec<(String, Vec<u8>)>,
}

impl Secrets {
    fn text(&mut self, what: &str, value: &str) {
        for form in [
            value.to_owned(),
            value.to_uppercase(),
            value.to_lowercase(),
            value.to_ascii_uppercase(),
            value.to_ascii_lowercase(),
        ] {
            if !self.text.iter().any(|(_, v)| *v == form) {
                self.text.push((what.to_owned(), form));
            }
        }
    }

    fn bytes(&mut self, what: &str, value: &[u8]) {
        self.text(&format!("{what} (hex)"), &hex(value));
        self.bytes.push((what.to_owned(), value.to_vec()));
    }

    fn uuid(&mut self, what: &str, id: Uuid) {
        self.text(what, &id.hyphenated().to_string());
        self.text(what, &id.simple().to_string());
        self.bytes(what, id.as_bytes());
    }

    /// A link secret: as mailed, and as stored (its SHA-256).
    fn token(&mut self, what: &str, secret: &str) {
        self.text(what, secret);
        let token = SecretToken::parse(secret)
            .unwrap_or_else(|_| panic!("{what}: {secret:?} is not a link secret"));
        self.bytes(&format!("{what} (stored hash)"), &token.hash());
    }

    /// Every link secret in a mail: text, HTML, headers and attachments.
    fn tokens_of_mail(&mut self, mail: &CapturedMail) -> usize {
        let raw = String::from_utf8_lossy(&mail.raw).into_owned();
        let mut found = 0;
        for text in [mail.text(), mail.html(), raw] {
            for marker in [
                "/confirm/",
                "/manage/",
                "/unsubscribe/",
                "/invitations/",
                "/bookings/",
            ] {
                for (at, _) in text.match_indices(marker) {
                    let secret: String = text[at + marker.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if secret.len() == 43 && SecretToken::parse(&secret).is_ok() {
                        self.token(&format!("{} link", marker.trim_matches('/')), &secret);
                        found += 1;
                    }
                }
            }
        }
        found
    }

    /// Every secret found in `haystack`, named, with the line around it.
    fn found_in(&self, haystack: &str, place: &str) -> Vec<String> {
        self.text
            .iter()
            .filter(|(_, needle)| haystack.contains(needle.as_str()))
            .map(|(what, needle)| {
                let at = haystack.find(needle.as_str()).unwrap();
                let line_start = haystack[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = haystack[at..].find('\n').map_or(haystack.len(), |i| at + i);
                let line: String = haystack[line_start..line_end].chars().take(200).collect();
                format!("{place}: {what} {needle:?} in: {line}")
            })
            .collect()
    }

    /// Every secret found in raw bytes (a database file), named.
    fn found_in_bytes(&self, haystack: &[u8], place: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .bytes
            .iter()
            .filter(|(_, needle)| {
                haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
            })
            .map(|(what, _)| format!("{place}: {what} (binary)"))
            .collect();
        found.extend(self.found_in(&String::from_utf8_lossy(haystack), place));
        found
    }

    /// Panics naming every secret found in `haystack`.
    fn assert_absent_from(&self, haystack: &str, place: &str) {
        let found = self.found_in(haystack, place);
        assert!(found.is_empty(), "still there:\n{}", found.join("\n"));
    }

    /// Sanity: the search does find what is there.
    fn count_in(&self, haystack: &str) -> usize {
        self.text
            .iter()
            .filter(|(_, needle)| haystack.contains(needle.as_str()))
            .count()
    }
}

// --- the tests -------------------------------------------------------------------------------

async fn everything_about_the_person_and_the_offer_is_gone_24_hours_after_the_appointment(
    backend: Backend,
) {
    // Arrange: Anna (an internationalised domain), Bernd who is only invited, Clara who books
    // and cancels; a practice posts 10 doses for 16:00–18:00 local time.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "purge").await;
    let typed = format!("Anna.{}@Bäckerei-Müller.de", Uuid::new_v4().simple());
    let anna = typed_person(&app, &typed, "10117").await;
    assert!(
        anna.email.contains("@xn--"),
        "stored with a punycode domain: {}",
        anna.email
    );
    let bernd = person(&app, "bernd", "10115").await;
    let clara = person(&app, "clara", "10119").await;
    let offer = post_offer(&app, &practice.browser).await;
    let outcome = app.services.run_wave_once().await.unwrap();
    assert!(
        matches!(outcome, Some(WaveOutcome::Invited { offer_id, invited: 3, .. }) if offer_id == offer),
        "{outcome:?}"
    );

    // Act: Anna claims, gets her confirmation and is checked in; Clara books and cancels.
    let invitation = |p: &Person| {
        let email = p.email.clone();
        let app = &app;
        async move {
            mail_about(app, &email, "Impfdosis")
                .await
                .link_path("/invitations/")
        }
    };
    let anna_booking = claim_booked(&app, &invitation(&anna).await).await;
    let (status, html) = page(&app, &anna_booking).await;
    assert_eq!(status, 200);
    let code = booking_code(&html);
    let confirmation = mail_about(&app, &anna.email, "Ihr Impftermin").await;
    assert!(confirmation.text().contains(&code));
    let clara_booking = claim_booked(&app, &invitation(&clara).await).await;
    let response = app.post_form(&format!("{clara_booking}/cancel"), &[]).await;
    assert_eq!(response.status(), 303);
    invitation(&bernd).await;
    let offer_page = format!("/portal/offers/{offer}");
    let response = practice
        .browser
        .submit(
            &offer_page,
            &format!("{offer_page}/checkins"),
            &[("code", &code)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("data-notice=\"portal.checkin.done\"")
    );
    settle(&app).await;

    // Collect every trace of Anna and of the offer.
    let mut secrets = Secrets::default();
    for address in [typed.as_str(), anna.email.as_str()] {
        secrets.text("address", address);
        secrets.text("local part", address.split('@').next().unwrap());
    }
    secrets.text("domain as typed", typed.split('@').nth(1).unwrap());
    let anna_mails = app.smtp.mails_for(&anna.email);
    assert_eq!(
        anna_mails.len(),
        3,
        "confirmation, invitation, booking: {:?}",
        anna_mails
            .iter()
            .map(CapturedMail::subject)
            .collect::<Vec<_>>()
    );
    for mail in &anna_mails {
        assert!(
            secrets.tokens_of_mail(mail) >= 2,
            "no links found in {}",
            mail.subject()
        );
        let message_id = mail.message_id();
        let row = message_id
            .split('@')
            .next()
            .unwrap()
            .trim_start_matches('<');
        secrets.uuid("row id in a Message-ID", Uuid::parse_str(row).unwrap());
    }
    secrets.text("booking code", &code);
    secrets.text("booking code", &code.replace('-', ""));
    secrets.uuid("offer id", offer);
    secrets.uuid("person id", anna.id);
    let stored = app
        .services
        .store
        .registrant(anna.id)
        .await
        .unwrap()
        .unwrap();
    secrets.bytes("email_ciphertext", &stored.email.ciphertext);
    secrets.bytes("email_index", &stored.email.index);
    // The search works: before the purge, the dump holds Anna and the offer.
    let before = app.db.dump().await;
    assert!(
        before.contains(&code.replace('-', "")),
        "the code is stored"
    );
    assert!(
        secrets.count_in(&before) >= 6,
        "only {} secrets found before the purge",
        secrets.count_in(&before)
    );

    // Act: a minute before the 24 hours are up.
    let ends_at = app
        .services
        .store
        .offer(offer)
        .await
        .unwrap()
        .unwrap()
        .ends_at;
    app.clock
        .set(ends_at + Duration::hours(23) + Duration::minutes(59));
    assert_eq!(
        app.services.purge_preview().await.unwrap().finished_offers,
        0
    );
    let report = app.services.purge_once().await.unwrap();

    // Assert: the appointment still stands.
    assert_eq!((report.offers, report.people_of_offers), (0, 0));
    assert!(app.services.store.offer(offer).await.unwrap().is_some());
    assert!(
        app.services
            .store
            .registrant(anna.id)
            .await
            .unwrap()
            .is_some()
    );
    let (status, html) = page(&app, &anna_booking).await;
    assert_eq!(status, 200);
    assert_eq!(booking_code(&html), code, "the booking page shows the code");
    assert_eq!(app.db.count("bookings").await, 2);

    // Act: a minute after; first what `restdose purge --dry-run` shows.
    app.clock
        .set(ends_at + Duration::hours(24) + Duration::minutes(1));
    let preview: PurgePreview = app.services.purge_preview().await.unwrap();
    assert_eq!(preview.finished_offers, 1, "{preview:?}");
    assert_eq!(preview.people_of_finished_offers, 1, "{preview:?}");
    assert!(app.services.store.offer(offer).await.unwrap().is_some());
    assert!(
        app.services
            .store
            .registrant(anna.id)
            .await
            .unwrap()
            .is_some(),
        "the preview deletes nothing"
    );
    assert_eq!(app.db.count("bookings").await, 2);
    let report = app.services.purge_once().await.unwrap();

    // Assert: nothing of Anna or the offer in any table, in any form.
    assert_eq!(
        (report.offers, report.people_of_offers),
        (1, 1),
        "{report:?}"
    );
    settle(&app).await;
    let dump = app.db.dump().await;
    // The tables as a dump shows them (for SQLite, the dump ends with the raw file, read
    // separately below so that each finding names its place).
    let tables = match dump.find("SQLite format 3\0") {
        Some(at) => &dump[..at],
        None => dump.as_str(),
    };
    let mut found = secrets.found_in(tables, "a table");
    if let Some(path) = app.db.sqlite_path() {
        found.extend(secrets.found_in_bytes(&std::fs::read(&path).unwrap(), "the SQLite file"));
        let wal = path.with_extension("db-wal");
        if wal.exists() {
            found.extend(secrets.found_in_bytes(&std::fs::read(&wal).unwrap(), "the SQLite WAL"));
        }
    }
    assert!(
        found.is_empty(),
        "the database still holds, after the purge:\n{}",
        found.join("\n")
    );
    for table in ["offers", "bookings", "invitations"] {
        assert_eq!(app.db.count(table).await, 0, "{table}");
    }
    for path in [&anna.manage, &anna_booking] {
        assert_eq!(page(&app, path).await.0, 404, "{path} still works");
    }

    // Assert: Bernd and Clara stay on the list and can use their links.
    for p in [&bernd, &clara] {
        assert!(
            app.services.store.registrant(p.id).await.unwrap().is_some(),
            "{} was deleted",
            p.email
        );
        assert_eq!(
            manage_status(&app, &p.manage).await.as_deref(),
            Some("active")
        );
    }
    assert_eq!(app.db.count("registrants").await, 2);

    // Assert: only anonymous counters survive.
    let day = test_day();
    let stats = app.services.store.stats(day, day).await.unwrap();
    let value = |metric: Metric| {
        stats
            .iter()
            .filter(|s: &&StatRow| s.metric == metric && s.area == "10")
            .map(|s| s.value)
            .sum::<i64>()
    };
    assert_eq!(value(Metric::Offers), 1, "{stats:?}");
    assert_eq!(value(Metric::DosesOffered), 10, "{stats:?}");
    assert_eq!(value(Metric::DosesPlaced), 1, "{stats:?}");
    assert_eq!(value(Metric::DosesUnused), 9, "{stats:?}");
    assert_eq!(value(Metric::Invitations), 3, "{stats:?}");
    assert_eq!(value(Metric::Claims), 2, "{stats:?}");
    assert_eq!(value(Metric::Signups), 3, "{stats:?}");
    let counters: String = dump
        .lines()
        .filter(|l| l.starts_with("daily_stats"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!counters.is_empty());
    let mut ids = Secrets::default();
    for id in [offer, anna.id, bernd.id, clara.id, practice.id] {
        ids.uuid("id", id);
    }
    ids.assert_absent_from(&counters, "daily_stats");
    app.stop().await;
}

/// The test day (offers start on it).
fn test_day() -> chrono::NaiveDate {
    restdose_tests::test_start().date_naive()
}

// --- key rotation ----------------------------------------------------------------------------

/// A configuration for more services on the app's database, reading keys from `keys_file`.
fn config_like(app: &TestApp, keys_file: std::path::PathBuf) -> Config {
    Config {
        database_url: Some(app.db.url.clone()),
        database_max_connections: 4,
        public_url: Some(app.base.clone()),
        smtp_url: Some(format!("smtp://127.0.0.1:{}", app.smtp.port()).into()),
        data_dir: app.data_dir.path().to_owned(),
        keys_file: Some(keys_file),
        ..Config::default()
    }
}

async fn services_with(
    app: &TestApp,
    ring: &Keyring,
    name: &str,
    clock: Arc<dyn Clock>,
) -> Services {
    let path = app.data_dir.path().join(name);
    std::fs::write(&path, ring.to_toml()).unwrap();
    restdose::build_services(&config_like(app, path), clock)
        .await
        .unwrap()
}

async fn sign_up_through(services: &Services, email: &str) {
    let request = validate_sign_up(
        email,
        "10115",
        RadiusInput::Missing,
        Lang::De,
        &services.gazetteer,
    )
    .unwrap();
    services.sign_up(request, None).await.unwrap();
}

fn decrypted_address(services: &Services, row: &restdose_store::Registrant) -> String {
    let plain = services
        .keys
        .decrypt(row.email.key_id, &row.email.ciphertext, row.id.as_bytes())
        .unwrap_or_else(|e| panic!("the address of {} does not open: {e}", row.id));
    String::from_utf8(plain.to_vec()).unwrap()
}

async fn key_ids(services: &Services) -> Vec<(EncryptedColumn, Vec<i32>)> {
    services
        .ciphertexts_by_key()
        .await
        .unwrap()
        .into_iter()
        .map(|(column, keys)| {
            (
                column,
                keys.into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, _)| k)
                    .collect(),
            )
        })
        .collect()
}

async fn a_key_rotation_during_a_run_leaves_every_address_readable_with_only_the_new_key(
    backend: Backend,
) {
    // Arrange: people under the first key, confirmed and pending, and mails waiting in the
    // outbox for a retry.
    let app = TestApp::spawn(backend).await;
    let mut everyone: Vec<String> = Vec::new();
    let mut manage_links: Vec<(String, String)> = Vec::new();
    for i in 0..3 {
        let p = person(&app, &format!("old{i}"), "10115").await;
        manage_links.push((p.email.clone(), p.manage.clone()));
        everyone.push(p.email);
    }
    for i in 0..2 {
        let email = unique_email(&format!("oldpending{i}"));
        let mail = app.sign_up(&email, "10117").await;
        manage_links.push((email.clone(), mail.link_path("/manage/")));
        everyone.push(email);
    }
    settle(&app).await;
    let now = app.clock.now();
    let mut waiting_mails = Vec::new();
    for email in &everyone[..3] {
        let mail = OutgoingMail {
            to: Email::parse(email).unwrap(),
            message_id: format!("<{}@retry.test>", Uuid::new_v4().simple()),
            content: render(
                Lang::De,
                &Template::AlreadyRegistered {
                    manage_url: "http://127.0.0.1/manage/x",
                    unsubscribe_url: "http://127.0.0.1/unsubscribe/x",
                },
            ),
        };
        let mut row = app
            .services
            .outbox_row_about(&mail, now, None, None)
            .unwrap();
        // Failed once; the retry is due in half an hour.
        row.attempts = 1;
        row.next_attempt_at = now + Duration::minutes(30);
        waiting_mails.push(mail.message_id.clone());
        app.services
            .store
            .enqueue_mails(std::slice::from_ref(&row))
            .await
            .unwrap();
    }
    let old_key = app.services.keys.current_key_id();

    // Act: a new key is added (`restdose keys add`); services with it sign more people up.
    let key_file = std::fs::read_to_string(app.data_dir.path().join("keys.toml")).unwrap();
    let mut ring = Keyring::from_toml(&key_file).unwrap();
    let new_key = ring.add_key().unwrap();
    assert_ne!(new_key, old_key);
    let added = services_with(&app, &ring, "keys-added.toml", Arc::new(app.clock.clone())).await;
    for i in 0..3 {
        let email = unique_email(&format!("new{i}"));
        sign_up_through(&added, &email).await;
        everyone.push(email);
    }
    // A repeat sign-up of a confirmed person (after the resend interval): a reminder under the
    // new key.
    app.clock.advance(Duration::minutes(11));
    sign_up_through(&added, &everyone[0]).await;
    let mixed = key_ids(&added).await;
    assert!(
        mixed
            .iter()
            .any(|(_, keys)| keys.contains(&old_key) && keys.contains(&new_key)),
        "both keys in use before the rotation: {mixed:?}"
    );

    // Act: `restdose keys rotate`, in small steps, while people keep signing up.
    let mut steps = 0;
    loop {
        let report = added.rotate_keys_once(2).await.unwrap();
        steps += 1;
        assert!(steps < 100, "the rotation never ends");
        if steps == 2 {
            // Someone signs up through the running service meanwhile.
            let email = unique_email("during");
            app.sign_up(&email, "10119").await;
            everyone.push(email.clone());
            let during_new = unique_email("during-new");
            sign_up_through(&added, &during_new).await;
            everyone.push(during_new);
        }
        if report == Default::default() {
            break;
        }
    }
    assert!(steps > 3, "the rotation went in several steps ({steps})");
    assert_eq!(
        key_ids(&added).await,
        vec![
            (EncryptedColumn::RegistrantEmail, vec![new_key]),
            (EncryptedColumn::OutboxPayload, vec![new_key]),
        ]
    );

    // Act: `restdose keys retire`: services that hold only the new key, a few hours later
    // (every waiting mail is due).
    ring.retire_old_keys();
    assert_eq!(ring.key_ids(), vec![new_key]);
    let later = ManualClock::new(app.clock.now() + Duration::hours(3));
    let retired = services_with(&app, &ring, "keys-retired.toml", Arc::new(later)).await;

    // Assert: every address opens with the new key alone.
    for email in &everyone {
        let index = retired
            .keys
            .blind_index(&Email::parse(email).unwrap().normalised());
        let row = retired
            .store
            .registrant_by_email_index(&index)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{email} is gone"));
        assert_eq!(row.email.key_id, new_key);
        assert_eq!(decrypted_address(&retired, &row), *email);
    }
    for (email, manage) in &manage_links {
        let view = retired
            .view(manage.trim_start_matches("/manage/"))
            .await
            .unwrap();
        assert_eq!(view.email.as_str(), email);
    }

    // Assert: every waiting mail opens and goes out.
    let (waiting, _) = retired.store.outbox_depth().await.unwrap();
    assert!(waiting >= 8, "{waiting} mails waiting");
    let mut sent = 0;
    for _ in 0..50 {
        let report = retired.deliver_outbox_once().await.unwrap();
        assert_eq!(report.failed, 0, "a mail did not open or send");
        sent += report.sent;
        if retired.store.outbox_depth().await.unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(retired.store.outbox_depth().await.unwrap().0, 0);
    assert!(sent as u64 <= waiting && sent > 0);
    for (i, message_id) in waiting_mails.iter().enumerate() {
        let email = &everyone[i];
        let id = message_id.trim_matches(|c| c == '<' || c == '>');
        app.smtp
            .wait_for_matching(email, |m| m.message_id() == id)
            .await;
    }
    for email in &everyone[5..8] {
        let mail = mail_about(&app, email, "").await;
        let manage = mail.link_path("/manage/");
        assert_eq!(
            retired
                .view(manage.trim_start_matches("/manage/"))
                .await
                .unwrap()
                .email
                .as_str(),
            email
        );
    }
    assert!(
        key_ids(&retired)
            .await
            .iter()
            .all(|(_, keys)| keys.iter().all(|k| *k == new_key)),
        "only the new key"
    );
    app.stop().await;
}

// --- housekeeping ----------------------------------------------------------------------------

async fn unconfirmed_and_long_paused_people_go_and_links_and_sessions_expire(backend: Backend) {
    // Arrange: a logged-in practice that asked for a reset link; someone who never confirms;
    // two people who pause; one who stays active.
    let app = TestApp::spawn(backend).await;
    let start = app.clock.now();
    let practice = approved_practice(&app, "expiry").await;
    let visitor = Browser::new(&app);
    let response = visitor
        .submit(
            "/portal/password/forgot",
            "/portal/password/forgot",
            &[("email", &practice.email)],
        )
        .await;
    assert_eq!(response.status(), 200);
    app.smtp
        .wait_for_matching(&practice.email, |m| {
            m.text().contains("/portal/password/reset/")
        })
        .await;
    assert!(app.db.count("sessions").await >= 1);
    assert!(app.db.count("account_tokens").await >= 1);

    let unconfirmed = unique_email("never");
    let unconfirmed_mail = app.sign_up(&unconfirmed, "10115").await;
    let unconfirmed_manage = unconfirmed_mail.link_path("/manage/");
    let unconfirmed_id = registrant_id(&app, &unconfirmed_manage).await;
    let signed_up = app.clock.now();
    let stays = person(&app, "stays", "10115").await;
    let gone = person(&app, "paused-gone", "10115").await;
    let back = person(&app, "paused-back", "10117").await;
    for p in [&gone, &back] {
        let response = app.post_form(&format!("{}/pause", p.manage), &[]).await;
        assert_eq!(response.status(), 303);
        assert_eq!(
            manage_status(&app, &p.manage).await.as_deref(),
            Some("paused")
        );
    }
    let paused_at = app.clock.now();

    // Act: 29 minutes later, then 61.
    app.clock.set(start + Duration::minutes(29));
    let early = app.services.purge_once().await.unwrap();
    let sessions_early = app.db.count("sessions").await;
    let links_early = app.db.count("account_tokens").await;
    app.clock.set(start + Duration::minutes(61));
    let report = app.services.purge_once().await.unwrap();

    // Assert: the reset link (60 minutes) and the idle session (30 minutes) are gone, not
    // before.
    assert_eq!(early.expired_links, 0, "{early:?}");
    assert!(links_early >= 1);
    assert!(sessions_early >= 1);
    assert!(report.expired_links >= 1, "{report:?}");
    assert!(report.expired_sessions >= 1, "{report:?}");
    assert_eq!(app.db.count("account_tokens").await, 0);
    assert_eq!(app.db.count("sessions").await, 0);
    let response = practice.browser.get("/portal").await;
    assert_eq!(response.status(), 401, "the session still works");

    // Act: just before and just after the 48 hours of the confirmation link.
    app.clock
        .set(signed_up + Duration::hours(48) - Duration::minutes(1));
    let report = app.services.purge_once().await.unwrap();
    assert_eq!(report.unconfirmed, 0);
    assert!(
        app.services
            .store
            .registrant(unconfirmed_id)
            .await
            .unwrap()
            .is_some()
    );
    app.clock
        .set(signed_up + Duration::hours(48) + Duration::minutes(1));
    let report = app.services.purge_once().await.unwrap();

    // Assert: the unconfirmed sign-up is gone with its links; nobody else.
    assert_eq!(report.unconfirmed, 1, "{report:?}");
    assert!(
        app.services
            .store
            .registrant(unconfirmed_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(manage_status(&app, &unconfirmed_manage).await, None);
    assert_eq!(app.db.count("registrants").await, 3);

    // Act: 90 days paused.
    app.clock
        .set(paused_at + Duration::days(90) - Duration::minutes(1));
    assert_eq!(app.services.purge_once().await.unwrap().inactive_warned, 0);
    app.clock
        .set(paused_at + Duration::days(90) + Duration::minutes(1));
    let warned_at = app.clock.now();
    let report = app.services.purge_once().await.unwrap();

    // Assert: both are warned by mail, once, with a working self-service link; nobody goes.
    assert_eq!(report.inactive_warned, 2, "{report:?}");
    assert_eq!(report.inactive_deleted, 0);
    let again = app.services.purge_once().await.unwrap();
    assert_eq!(again.inactive_warned, 0, "warned only once");
    let mut links = Vec::new();
    for p in [&gone, &back] {
        let mail = mail_about(&app, &p.email, "pausiert").await;
        assert_eq!(mail.subject(), "Ihre Anmeldung ist seit Langem pausiert");
        assert!(mail.text().contains("14 Tagen"), "{}", mail.text());
        assert!(mail.header("List-Unsubscribe").is_some());
        let link = mail.link_path("/manage/");
        assert_eq!(manage_status(&app, &link).await.as_deref(), Some("paused"));
        links.push(link);
    }
    settle(&app).await;
    assert_eq!(
        app.smtp
            .mails_for(&gone.email)
            .iter()
            .filter(|m| m.subject().contains("pausiert"))
            .count(),
        1
    );
    assert_eq!(
        manage_status(&app, &stays.manage).await.as_deref(),
        Some("active")
    );

    // Act: one resumes from the warning mail; 14 days pass.
    let response = app.post_form(&format!("{}/resume", links[1]), &[]).await;
    assert_eq!(response.status(), 303);
    app.clock
        .set(warned_at + Duration::days(14) - Duration::minutes(1));
    assert_eq!(app.services.purge_once().await.unwrap().inactive_deleted, 0);
    assert!(
        app.services
            .store
            .registrant(gone.id)
            .await
            .unwrap()
            .is_some()
    );
    app.clock
        .set(warned_at + Duration::days(14) + Duration::minutes(1));
    let report = app.services.purge_once().await.unwrap();

    // Assert: the one still paused is gone; the one who resumed and the active one stay.
    assert_eq!(report.inactive_deleted, 1, "{report:?}");
    assert!(
        app.services
            .store
            .registrant(gone.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(manage_status(&app, &links[0]).await, None);
    assert_eq!(manage_status(&app, &gone.manage).await, None);
    let kept = app
        .services
        .store
        .registrant(back.id)
        .await
        .unwrap()
        .expect("the person who resumed is kept");
    assert_eq!(kept.status, RegistrantStatus::Active);
    assert_eq!(
        manage_status(&app, &links[1]).await.as_deref(),
        Some("active")
    );
    assert_eq!(
        manage_status(&app, &stays.manage).await.as_deref(),
        Some("active")
    );
    assert_eq!(app.db.count("registrants").await, 2);
    app.stop().await;
}
