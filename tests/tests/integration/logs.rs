//! What the service writes to its logs, at TRACE, on both backends: a whole journey (people
//! sign up and confirm, a practice signs up, logs in, posts an offer, a wave goes out, a claim,
//! check-ins by form and API, a decline, deletion on request, one-click unsubscribe, invitation
//! expiry, the purge) plus bad input (an invalid address holding a real one, wrong passwords,
//! forged and misused links, a forged API token, addresses in paths) must leave no address, no
//! link secret, no booking code, no password, no session and no key material in any log line,
//! nor in any answer that goes to someone else (error bodies, the practice's pages).
//!
//! Logging is global per process, so this is a single test that runs in a process of its own
//! (`restdose_tests::isolation`: the integration binary started again for this test only); it
//! runs the journey on SQLite and then on PostgreSQL and captures everything in memory as JSON
//! lines. Every line of
//! a request carries the request id (a generated UUID here) in its `request` span.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use restdose_crypto::SecretToken;
use restdose_domain::Email;
use restdose_tests::portal::{
    Browser, PASSWORD, approved_practice, csrf_from, location, log_in_as, post_offer,
    session_cookie_value,
};
use restdose_tests::{Backend, CapturedMail, TestApp, unique_email};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::filter::LevelFilter;
use uuid::Uuid;

// --- capturing every log line ------------------------------------------------------------------

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// Installs (once) a subscriber that writes every event at every level, as JSON lines, into
/// memory; `log` records of dependencies come in through the same subscriber.
fn captured() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
        tracing_subscriber::fmt()
            .json()
            .with_max_level(LevelFilter::TRACE)
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .try_init()
            .expect("another subscriber was installed first");
        buffer
    })
}

/// Everything logged since the last call.
fn take_logs() -> String {
    let bytes = std::mem::take(&mut *captured().0.lock().unwrap());
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Crates that run in this process only as the test's own tools, never in the service (none of
/// them is in `cargo tree -p restdose`): the SMTP server that receives the mails (it traces every
/// SMTP line it reads, recipients included) and the HTTP client of the test with its cookie jar
/// (which logs every cookie it stores).
const TEST_SIDE_TARGETS: &[&str] = &[
    "mailin",
    "mailin_embedded",
    "reqwest",
    "hyper",
    "hyper_util",
    "cookie_store",
];

fn is_test_side(target: &str) -> bool {
    TEST_SIDE_TARGETS
        .iter()
        .any(|t| target == *t || target.starts_with(&format!("{t}::")))
}

// --- secrets -----------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 (as in the key file), decoded without another dependency.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// What must not leak, in every form it could take, and whose it is.
#[derive(Default)]
struct Secrets(Vec<Secret>);

struct Secret {
    /// Who may see it: a person, "practice", "booking" (the code: the person and the
    /// practice), or nobody ("service").
    owner: &'static str,
    what: String,
    needle: String,
}

impl Secrets {
    fn add(&mut self, owner: &'static str, what: &str, value: &str) {
        assert!(
            value.len() >= 8,
            "{what}: too short to search for: {value:?}"
        );
        for form in [value.to_owned(), value.to_uppercase(), value.to_lowercase()] {
            if !self.0.iter().any(|s| s.needle == form) {
                self.0.push(Secret {
                    owner,
                    what: what.to_owned(),
                    needle: form,
                });
            }
        }
    }

    fn address(&mut self, owner: &'static str, typed: &str) {
        self.add(owner, "address", typed);
        let stored = Email::parse(typed).unwrap();
        self.add(owner, "address", stored.as_str());
        let local = typed.split('@').next().unwrap();
        self.add(owner, "local part of an address", local);
    }

    fn code(&mut self, code: &str) {
        self.add("booking", "booking code", code);
        self.add("booking", "booking code", &code.replace('-', ""));
    }

    /// Every link secret in a mail (text, HTML and the List-Unsubscribe header).
    fn links_of(&mut self, owner: &'static str, mail: &CapturedMail) -> usize {
        let mut found = 0;
        let header = mail.header("List-Unsubscribe").unwrap_or_default();
        for text in [mail.text(), mail.html(), header] {
            for (at, _) in text.match_indices('/') {
                let secret: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                if secret.len() == 43 && SecretToken::parse(&secret).is_ok() {
                    self.add(owner, "link secret", &secret);
                    found += 1;
                }
            }
        }
        found
    }

    /// The key file: every key as written, as bytes in hex, and as a Rust byte array.
    fn key_file(&mut self, text: &str) {
        let mut keys = 0;
        for line in text.lines() {
            let Some((_, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            if value.len() < 40 {
                continue;
            }
            let bytes = base64_decode(value).expect("a base64 key");
            assert_eq!(bytes.len(), 32, "a 32-byte key");
            self.add("service", "key (base64)", value);
            self.add("service", "key (hex)", &hex(&bytes));
            let array = format!("{:?}", &bytes[..8]);
            self.add("service", "key (bytes)", array.trim_end_matches(']'));
            keys += 1;
        }
        assert!(
            keys >= 2,
            "the key file holds an encryption and a blind-index key"
        );
    }

    /// Each secret found in `haystack`, unless the request itself carried it (`sent`) or it
    /// belongs to one of `allowed`.
    fn found_in(&self, haystack: &str, sent: &str, allowed: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| {
                haystack.contains(s.needle.as_str())
                    && !sent.contains(s.needle.as_str())
                    && !allowed.contains(&s.owner)
            })
            .map(|s| format!("{}'s {} {:?}", s.owner, s.what, s.needle))
            .collect()
    }
}

// --- the journey -------------------------------------------------------------------------------

/// A response and what it said.
async fn read(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Where an answer went, what the request carried, whose secrets it may show, and what it said.
struct Answer {
    what: String,
    sent: String,
    allowed: &'static [&'static str],
    body: String,
}

struct Journey {
    secrets: Secrets,
    /// Answers that must not carry anything secret (except what their own request carried).
    answers: Vec<Answer>,
    logs: String,
}

fn answer(
    answers: &mut Vec<Answer>,
    what: &str,
    sent: &str,
    allowed: &'static [&'static str],
    body: String,
) {
    answers.push(Answer {
        what: what.to_owned(),
        sent: sent.to_owned(),
        allowed,
        body,
    });
}

/// Signs up through the API and returns the confirmation mail.
async fn sign_up(app: &TestApp, typed: &str) -> CapturedMail {
    let to = Email::parse(typed).unwrap().as_str().to_owned();
    let before = app.smtp.count_for(&to);
    let response = app
        .post_json(
            "/api/v1/registrations",
            &json!({ "email": typed, "postcode": "10115" }),
        )
        .await;
    assert_eq!(response.status(), 202);
    app.smtp.wait_for(&to, before + 1).await.pop().unwrap()
}

async fn confirm(app: &TestApp, mail: &CapturedMail) -> String {
    let response = app
        .client
        .post(app.url(&mail.link_path("/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    mail.link_path("/manage/")
}

async fn settle(app: &TestApp) {
    for _ in 0..500 {
        if app.services.store.outbox_depth().await.unwrap().0 == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drain");
}

async fn journey(backend: Backend) -> Journey {
    take_logs();
    let app = TestApp::spawn(backend).await;
    let mut secrets = Secrets::default();
    let mut answers = Vec::new();
    secrets.add("practice", "password", PASSWORD);
    let wrong_password = "wrong horse battery staple";
    secrets.add("practice", "password", wrong_password);

    // A practice signs up, is approved, logs in, makes an API token.
    let practice = approved_practice(&app, "logs-practice").await;
    secrets.address("practice", &practice.email);
    let browser = Browser::new(&app);
    let login = log_in_as(&browser, &practice.email, PASSWORD).await;
    assert_eq!(login.status(), 303);
    let session = session_cookie_value(&login).expect("a session cookie");
    secrets.add("practice", "session cookie", &session);
    let (_, tokens_page) = read(browser.get("/portal/tokens").await).await;
    secrets.add("practice", "CSRF token", &csrf_from(&tokens_page));
    let response = browser
        .submit(
            "/portal/tokens",
            "/portal/tokens",
            &[("name", "Praxissoftware")],
        )
        .await;
    let html = response.text().await.unwrap();
    let api_token = html
        .split("value=\"rdk_")
        .nth(1)
        .map(|rest| format!("rdk_{}", rest.split('"').next().unwrap()))
        .expect("the API token is shown once");
    secrets.add("practice", "API token", &api_token);
    secrets.add(
        "practice",
        "API token",
        api_token.trim_start_matches("rdk_"),
    );

    // Bad practice input: a wrong password, an unknown address, a password reset.
    for (email, password) in [
        (practice.email.as_str(), wrong_password),
        ("nobody.logs@example.de", PASSWORD),
    ] {
        let stranger = Browser::new(&app);
        let (status, body) = read(log_in_as(&stranger, email, password).await).await;
        assert_ne!(status, 303, "logged in with a wrong password");
        answer(&mut answers, "a failed login", email, &[], body);
    }
    let visitor = Browser::new(&app);
    let (status, body) = read(
        visitor
            .submit(
                "/portal/password/forgot",
                "/portal/password/forgot",
                &[("email", &practice.email)],
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    answer(&mut answers, "the reset form", &practice.email, &[], body);
    app.smtp
        .wait_for_matching(&practice.email, |m| {
            m.text().contains("/portal/password/reset/")
        })
        .await;

    // People: Anna (an internationalised domain) and Bernd confirm; Carla never does.
    let anna_typed = format!("Anna.{}@Bäckerei-Müller.de", Uuid::new_v4().simple());
    let anna = Email::parse(&anna_typed).unwrap().as_str().to_owned();
    let bernd = unique_email("bernd.logs");
    let carla = unique_email("carla.logs");
    secrets.address("anna", &anna_typed);
    secrets.address("bernd", &bernd);
    secrets.address("carla", &carla);
    let anna_manage = confirm(&app, &sign_up(&app, &anna_typed).await).await;
    app.clock.advance(Duration::minutes(1));
    let bernd_manage = confirm(&app, &sign_up(&app, &bernd).await).await;
    let carla_mail = sign_up(&app, &carla).await;
    // A repeat sign-up (reminder) for Anna, after the resend interval.
    app.clock.advance(Duration::minutes(11));
    sign_up(&app, &anna_typed).await;

    // Bad input: the real address with junk, by API and by form, and as a JSON key.
    for junk in [
        format!("{anna} <junk>"),
        format!("x{anna}@@junk"),
        format!("{anna}\u{0}"),
        format!("\"{anna}\"@example.de"),
    ] {
        let (status, body) = read(
            app.post_json(
                "/api/v1/registrations",
                &json!({ "email": junk, "postcode": "10115" }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{junk:?} was accepted: {body}");
        // The error goes to whoever sent it, who need not own the address inside.
        answer(
            &mut answers,
            "the API's answer to an invalid address",
            "",
            &[],
            body,
        );
        let (status, _) = read(
            app.post_form("/", &[("email", &junk), ("postcode", "10115")])
                .await,
        )
        .await;
        assert_eq!(status, 422);
    }
    let (status, body) = read(
        app.client
            .post(app.url("/api/v1/registrations"))
            .header("content-type", "application/json")
            .body(format!("{{\"email\": \"{anna}\", \"postcode\": "))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    answer(
        &mut answers,
        "the API's answer to broken JSON",
        "",
        &[],
        body,
    );

    // Forged and misused links; addresses in paths.
    let forged = SecretToken::generate().unwrap();
    let forged = forged.expose().to_owned();
    secrets.add("service", "forged link secret", &forged);
    let anna_secret = anna_manage.trim_start_matches("/manage/").to_owned();
    for token in [forged.as_str(), anna_secret.as_str()] {
        for (method, path) in [
            ("GET", format!("/confirm/{token}")),
            ("POST", format!("/confirm/{token}")),
            ("GET", format!("/invitations/{token}")),
            ("POST", format!("/invitations/{token}/claim")),
            ("POST", format!("/invitations/{token}/decline")),
            ("GET", format!("/bookings/{token}")),
            ("POST", format!("/bookings/{token}/cancel")),
            ("GET", format!("/portal/verify/{token}")),
            ("GET", format!("/portal/password/reset/{token}")),
        ] {
            let request = match method {
                "GET" => app.client.get(app.url(&path)),
                _ => app.client.post(app.url(&path)),
            };
            let (status, body) = read(request.send().await.unwrap()).await;
            assert!(status < 500, "{method} {path}: {status}");
            answer(
                &mut answers,
                &format!("{method} with a wrong link"),
                token,
                &[],
                body,
            );
        }
    }
    for path in [
        format!("/manage/{forged}"),
        format!("/unsubscribe/{forged}"),
    ] {
        let (status, body) = read(app.get(&path).await).await;
        assert_eq!(status, 404, "{path}");
        answer(&mut answers, "a forged link", &forged, &[], body);
    }
    for path in [
        format!("/manage/{anna}"),
        format!("/bookings/{anna}"),
        format!("/nowhere/{anna}"),
        format!("/?email={anna}"),
    ] {
        let (status, _) = read(app.get(&path).await).await;
        assert!(status == 404 || status == 200, "{path}: {status}");
    }

    // The offer, a wave, a claim, a decline.
    let offer = post_offer(&app, &practice.browser).await;
    let outcome = app.services.run_wave_once().await.unwrap();
    assert!(outcome.is_some());
    let invitation = |email: String| {
        let app = &app;
        async move {
            app.smtp
                .wait_for_matching(&email, |m| m.subject().contains("Impfdosis"))
                .await
                .link_path("/invitations/")
        }
    };
    let anna_invitation = invitation(anna.clone()).await;
    let bernd_invitation = invitation(bernd.clone()).await;
    let response = app
        .post_form(&format!("{anna_invitation}/claim"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let booking = location(&response).split('?').next().unwrap().to_owned();
    let (_, html) = read(app.get(&booking).await).await;
    let marker = "id=\"booking-code\">";
    let code = html[html.find(marker).unwrap() + marker.len()..]
        .split('<')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    secrets.code(&code);
    let (_, body) = read(app.get(&bernd_invitation).await).await;
    answer(
        &mut answers,
        "Bernd's invitation page",
        "",
        &["bernd"],
        body,
    );
    let response = app
        .post_form(&format!("{bernd_invitation}/decline"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let (_, body) = read(app.get(&bernd_manage).await).await;
    answer(
        &mut answers,
        "Bernd's self-service page",
        "",
        &["bernd"],
        body,
    );

    // Check-ins: a wrong code and a forged token by API, the real code by API and by form.
    let offer_page = format!("/portal/offers/{offer}");
    let checkins = format!("/api/v1/offers/{offer}/checkins");
    for (token, typed) in [
        (api_token.as_str(), "ZZZZ-ZZZZ-ZZZZ"),
        (
            "rdk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            code.as_str(),
        ),
        (api_token.as_str(), code.as_str()),
        (api_token.as_str(), code.as_str()),
    ] {
        let (_, body) = read(
            app.client
                .post(app.url(&checkins))
                .bearer_auth(token)
                .json(&json!({ "code": typed }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        answer(
            &mut answers,
            "an API check-in",
            &format!("{token} {typed}"),
            &["practice", "booking"],
            body,
        );
    }
    let (_, body) = read(
        practice
            .browser
            .submit(
                &offer_page,
                &format!("{offer_page}/checkins"),
                &[("code", &code)],
            )
            .await,
    )
    .await;
    answer(
        &mut answers,
        "the practice's check-in page",
        "",
        &["practice", "booking"],
        body,
    );
    // The practice sees codes, never people.
    let (_, page) = read(practice.browser.get(&offer_page).await).await;
    assert!(page.contains(&code));
    answer(
        &mut answers,
        "the practice's offer page",
        "",
        &["practice", "booking"],
        page,
    );
    let (_, body) = read(
        app.client
            .get(app.url(&format!("/api/v1/offers/{offer}")))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer(
        &mut answers,
        "the practice API's offer",
        "",
        &["practice", "booking"],
        body,
    );

    // Leaving: Bernd deletes himself, Carla unsubscribes with one click.
    let response = app.post_form(&format!("{bernd_manage}/delete"), &[]).await;
    assert!(response.status().is_success() || response.status().is_redirection());
    let header = carla_mail
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let unsubscribe = url::Url::parse(header.trim_matches(|c| c == '<' || c == '>'))
        .unwrap()
        .path()
        .to_owned();
    let response = app
        .client
        .post(app.url(&unsubscribe))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success() || response.status().is_redirection());

    // Time passes: invitations expire, the purge runs.
    app.clock.advance(Duration::minutes(20));
    app.services.expire_invitations_once().await.unwrap();
    app.clock.advance(Duration::days(2));
    let report = app.services.purge_once().await.unwrap();
    assert_eq!(report.offers, 1, "{report:?}");
    settle(&app).await;

    // Every link in every mail to anyone, and the keys.
    for (owner, email) in [
        ("anna", &anna),
        ("bernd", &bernd),
        ("carla", &carla),
        ("practice", &practice.email),
    ] {
        for mail in app.smtp.mails_for(email) {
            secrets.links_of(owner, &mail);
        }
    }
    let key_file = std::fs::read_to_string(app.data_dir.path().join("keys.toml")).unwrap();
    secrets.key_file(&key_file);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.stop().await;
    Journey {
        secrets,
        answers,
        logs: take_logs(),
    }
}

/// Messages the service is expected to log along the way.
const EXPECTED_EVENTS: &[&str] = &[
    "request",
    "sign-up stored, confirmation queued",
    "registrant confirmed",
    "repeat sign-up, mail queued",
    "logged in",
    "login failed",
    "offer posted",
    "wave sent",
    "claim",
    "check-in",
    "registrant deleted on request",
    "outbox delivery step",
    "purge",
];

#[test]
fn no_address_link_code_password_or_key_reaches_the_logs_or_a_stranger() {
    let name = restdose_tests::isolation::test_name(
        module_path!(),
        "no_address_link_code_password_or_key_reaches_the_logs_or_a_stranger",
    );
    restdose_tests::isolation::in_own_process(&name, || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build a tokio runtime")
            .block_on(logs_carry_no_secrets());
    });
}

/// The test itself, run in the process of its own, where the capture is the only subscriber.
async fn logs_carry_no_secrets() {
    captured();
    let mut problems = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let journey = journey(backend).await;
        let mut product_lines = 0;
        let mut test_side_hits = 0;
        let mut messages = std::collections::HashSet::new();
        // Events logged while handling a request carry its id (the `request` span).
        let mut with_request_id = std::collections::HashSet::new();
        for line in journey.logs.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
            let target = event["target"].as_str().unwrap_or_default();
            let found = journey.secrets.found_in(line, "", &[]);
            if is_test_side(target) {
                test_side_hits += usize::from(!found.is_empty());
                continue;
            }
            product_lines += 1;
            if let Some(message) = event["fields"]["message"].as_str() {
                messages.insert(message.to_owned());
                let request_id = event["spans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|span| span["name"] == "request")
                    .and_then(|span| span["request_id"].as_str());
                if let Some(id) = request_id {
                    assert!(
                        uuid::Uuid::parse_str(id).is_ok(),
                        "a generated request id is a UUID: {line}"
                    );
                    with_request_id.insert(message.to_owned());
                } else {
                    assert_ne!(message, "request", "a request line without its id: {line}");
                }
                for key in ["timestamp", "level"] {
                    assert!(event[key].is_string(), "no {key} in {line}");
                }
            }
            if !found.is_empty() {
                let shown: String = line.chars().take(400).collect();
                problems.push(format!(
                    "{backend:?}: log line of {target} holds {}: {shown}",
                    found.join(", ")
                ));
            }
        }
        assert!(
            test_side_hits > 0,
            "{backend:?}: the capture did not even see the test SMTP server trace a recipient"
        );
        assert!(
            product_lines > 100,
            "{backend:?}: only {product_lines} lines"
        );
        for expected in EXPECTED_EVENTS {
            if !messages.contains(*expected) {
                problems.push(format!("{backend:?}: no {expected:?} event was logged"));
            }
        }
        for expected in ["request", "claim", "offer posted"] {
            if !with_request_id.contains(expected) {
                problems.push(format!(
                    "{backend:?}: no {expected:?} event carried a request id"
                ));
            }
        }
        for answer in &journey.answers {
            let found = journey
                .secrets
                .found_in(&answer.body, &answer.sent, answer.allowed);
            if !found.is_empty() {
                problems.push(format!(
                    "{backend:?}: {} holds {}",
                    answer.what,
                    found.join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
