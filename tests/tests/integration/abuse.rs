//! The abuse table (issue #17): every route that mails an address or checks a password, hit
//! the way an attacker would — many requests for one address from many clients, many from one
//! client — with the statuses each request must get and the mails the target address may
//! receive. One server per backend runs all rows in turn; each row has its own target address
//! and its own client addresses (`X-Forwarded-For` from the trusted test client), so rows do
//! not disturb each other.
//!
//! To add a row: a `Row` in `rows()`; for a new kind of request, a `Req` variant and its arm
//! in `send`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_core::PracticeSignUp;
use restdose_domain::Lang;
use restdose_tests::portal::{Browser, PASSWORD, csrf_from};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use std::collections::HashMap;
use std::time::Duration;

on_both_backends!(abuse_table, the_reproductions_of_issue_17_hold_no_more);

// The limits the table is written for (set in `abuse_table`).
const MAILS_PER_HOUR: usize = 3;
const MAILS_PER_DAY: usize = 5;
const REQUESTS_PER_MINUTE: usize = 6;
const REQUESTS_PER_HOUR: usize = 10;
const SIGNUPS_PER_MINUTE: usize = 6;
const LOGIN_FAILURES: usize = 3;
const LOGIN_FAILURES_PER_IP: usize = 5;

/// What exists for the target address before the row runs.
#[derive(Debug, Clone, Copy)]
enum Given {
    Nothing,
    /// A practice that verified its address (one mail, one count on the address).
    VerifiedPractice,
    /// A practice that did not (one mail, one count on the address).
    UnverifiedPractice,
}

/// One request (or, for `ClockForward`, a step of the test clock).
#[derive(Debug, Clone, Copy)]
enum Req {
    /// `POST /portal/password/forgot` for the target.
    Forgot,
    /// `POST /portal/signup` with the target as login address.
    PracticeSignUp,
    /// `POST /portal/login` as the target, with the right or a wrong password.
    Login { right: bool },
    /// `POST /portal/login` with a wrong password for a new unknown address each time.
    LoginElsewhere,
    /// `POST /api/v1/registrations` (at `path`) for the target or a new address each time.
    ApiSignUp { path: &'static str, target: bool },
    /// `POST /` (the sign-up form) for the target or a new address each time.
    FormSignUp { target: bool },
    /// Moves the test clock on by this many minutes (no request; `expect` is ignored).
    ClockForward(i64),
}

/// Who sends: a new client address (and cookie jar) for every request, or client `n` of the
/// row (the same address and cookie jar each time).
#[derive(Debug, Clone, Copy)]
enum Who {
    Fresh,
    Client(u8),
}

#[derive(Debug, Clone, Copy)]
struct Step {
    req: Req,
    who: Who,
    times: usize,
    /// The status every one of these requests gets.
    expect: u16,
}

const fn step(req: Req, who: Who, times: usize, expect: u16) -> Step {
    Step {
        req,
        who,
        times,
        expect,
    }
}

struct Row {
    name: &'static str,
    given: Given,
    steps: Vec<Step>,
    /// Mails the target address has in the end (the setup's included), when checked.
    mails: Option<usize>,
}

fn row(name: &'static str, given: Given, steps: Vec<Step>, mails: Option<usize>) -> Row {
    Row {
        name,
        given,
        steps,
        mails,
    }
}

const API: &str = "/api/v1/registrations";
const WRONG: Req = Req::Login { right: false };
const RIGHT: Req = Req::Login { right: true };
use Given::{Nothing, UnverifiedPractice, VerifiedPractice};
use Who::{Client, Fresh};

fn rows() -> Vec<Row> {
    let n = REQUESTS_PER_MINUTE;
    vec![
        // --- forgot password ------------------------------------------------------------------
        row(
            "forgot: one request mails the link",
            VerifiedPractice,
            vec![step(Req::Forgot, Fresh, 1, 200)],
            Some(2),
        ),
        row(
            "forgot: 40 clients for one address mail at most the hourly cap",
            VerifiedPractice,
            vec![step(Req::Forgot, Fresh, 40, 200)],
            Some(MAILS_PER_HOUR),
        ),
        row(
            "forgot: 40 clients for an unknown address get the same answer, no mail",
            Nothing,
            vec![step(Req::Forgot, Fresh, 40, 200)],
            Some(0),
        ),
        row(
            "forgot: one client is refused after its cap (known address)",
            VerifiedPractice,
            vec![
                step(Req::Forgot, Client(1), n, 200),
                step(Req::Forgot, Client(1), 1, 429),
            ],
            Some(MAILS_PER_HOUR),
        ),
        row(
            "forgot: one client is refused after its cap (unknown address)",
            Nothing,
            vec![
                step(Req::Forgot, Client(1), n, 200),
                step(Req::Forgot, Client(1), 1, 429),
            ],
            Some(0),
        ),
        row(
            "forgot: another client still gets its answer while one is refused",
            VerifiedPractice,
            vec![
                step(Req::Forgot, Client(3), n, 200),
                step(Req::Forgot, Client(3), 1, 429),
                step(Req::Forgot, Client(4), 1, 200),
            ],
            None,
        ),
        row(
            "forgot: the daily cap holds across hours",
            VerifiedPractice,
            vec![
                step(Req::Forgot, Fresh, 5, 200),
                step(Req::ClockForward(61), Fresh, 1, 0),
                step(Req::Forgot, Fresh, 5, 200),
                step(Req::ClockForward(61), Fresh, 1, 0),
                step(Req::Forgot, Fresh, 5, 200),
            ],
            Some(MAILS_PER_DAY),
        ),
        row(
            "forgot: one client is refused after its hourly cap, minute by minute",
            Nothing,
            vec![
                step(Req::Forgot, Client(1), n, 200),
                step(Req::ClockForward(1), Client(1), 1, 0),
                step(Req::Forgot, Client(1), REQUESTS_PER_HOUR - n, 200),
                step(Req::Forgot, Client(1), 1, 429),
            ],
            Some(0),
        ),
        // --- practice sign-up -----------------------------------------------------------------
        row(
            "practice sign-up: a new address gets its verification link",
            Nothing,
            vec![step(Req::PracticeSignUp, Fresh, 1, 200)],
            Some(1),
        ),
        row(
            "practice sign-up: a known address from 10 clients is mailed at most the cap",
            VerifiedPractice,
            vec![step(Req::PracticeSignUp, Fresh, 10, 200)],
            Some(MAILS_PER_HOUR),
        ),
        row(
            "practice sign-up: a new address from 10 clients is mailed at most the cap",
            Nothing,
            vec![step(Req::PracticeSignUp, Fresh, 10, 200)],
            Some(MAILS_PER_HOUR),
        ),
        row(
            "practice sign-up: one client is refused after its cap",
            VerifiedPractice,
            vec![
                step(Req::PracticeSignUp, Client(1), n, 200),
                step(Req::PracticeSignUp, Client(1), 1, 429),
            ],
            Some(MAILS_PER_HOUR),
        ),
        row(
            "mails to one address share one cap over every route",
            VerifiedPractice,
            vec![
                step(Req::PracticeSignUp, Fresh, 2, 200),
                step(Req::Forgot, Fresh, 2, 200),
                step(RIGHT, Fresh, 1, 303),
            ],
            Some(MAILS_PER_HOUR),
        ),
        // --- login ------------------------------------------------------------------------------
        row(
            "login: the right password logs in",
            VerifiedPractice,
            vec![step(RIGHT, Fresh, 1, 303)],
            Some(1),
        ),
        row(
            "login: wrong passwords up to the limit get 401",
            VerifiedPractice,
            vec![step(WRONG, Client(1), LOGIN_FAILURES, 401)],
            None,
        ),
        row(
            "login: one more from that client is locked, the right password too",
            VerifiedPractice,
            vec![
                step(WRONG, Client(1), LOGIN_FAILURES, 401),
                step(RIGHT, Client(1), 1, 429),
            ],
            None,
        ),
        row(
            "login: an unknown address locks the same way (no enumeration)",
            Nothing,
            vec![
                step(WRONG, Client(1), LOGIN_FAILURES, 401),
                step(WRONG, Client(1), 1, 429),
            ],
            None,
        ),
        row(
            "login: the owner logs in from a clean client during an attack from 5 others",
            VerifiedPractice,
            vec![step(WRONG, Fresh, 5, 401), step(RIGHT, Client(9), 1, 303)],
            Some(1),
        ),
        row(
            "login: an attacking client is locked by the account's failures",
            VerifiedPractice,
            vec![
                step(WRONG, Client(1), 1, 401),
                step(WRONG, Fresh, LOGIN_FAILURES, 401),
                step(RIGHT, Client(1), 1, 429),
            ],
            None,
        ),
        row(
            "login: a device cookie keeps the owner in when attacked from their own address",
            VerifiedPractice,
            vec![
                // The owner logged in here before (client 1 keeps the device cookie).
                step(RIGHT, Client(1), 1, 303),
                // An attacker behind the same address (client 2: same IP, no cookie).
                step(WRONG, Client(2), LOGIN_FAILURES, 401),
                step(WRONG, Client(2), 1, 429),
                step(RIGHT, Client(1), 1, 303),
            ],
            None,
        ),
        row(
            "login: one client guessing across many accounts is locked",
            Nothing,
            vec![
                step(Req::LoginElsewhere, Client(1), LOGIN_FAILURES_PER_IP, 401),
                step(Req::LoginElsewhere, Client(1), 1, 429),
            ],
            None,
        ),
        row(
            "login: an unverified account gets 403 and a new link",
            UnverifiedPractice,
            vec![step(RIGHT, Fresh, 1, 403)],
            Some(2),
        ),
        row(
            "login: an unverified account from 10 clients is re-sent at most the cap",
            UnverifiedPractice,
            vec![step(RIGHT, Fresh, 10, 403)],
            Some(MAILS_PER_HOUR),
        ),
        // --- registrant sign-up -------------------------------------------------------------------
        row(
            "api sign-up: a new address gets its confirmation",
            Nothing,
            vec![step(
                Req::ApiSignUp {
                    path: API,
                    target: true,
                },
                Fresh,
                1,
                202,
            )],
            Some(1),
        ),
        row(
            "api sign-up: one address from 10 clients gets one mail",
            Nothing,
            vec![step(
                Req::ApiSignUp {
                    path: API,
                    target: true,
                },
                Fresh,
                10,
                202,
            )],
            Some(1),
        ),
        row(
            "api sign-up: one client is refused after its cap",
            Nothing,
            vec![
                step(
                    Req::ApiSignUp {
                        path: API,
                        target: false,
                    },
                    Client(1),
                    SIGNUPS_PER_MINUTE,
                    202,
                ),
                step(
                    Req::ApiSignUp {
                        path: API,
                        target: false,
                    },
                    Client(1),
                    1,
                    429,
                ),
            ],
            None,
        ),
        row(
            "api sign-up: a percent-encoded path counts for the same limit",
            Nothing,
            vec![
                step(
                    Req::ApiSignUp {
                        path: "/api/v1/%72egistrations",
                        target: false,
                    },
                    Client(1),
                    SIGNUPS_PER_MINUTE,
                    202,
                ),
                step(
                    Req::ApiSignUp {
                        path: "/api/v1/%72egistrations",
                        target: false,
                    },
                    Client(1),
                    1,
                    429,
                ),
                step(
                    Req::ApiSignUp {
                        path: API,
                        target: false,
                    },
                    Client(1),
                    1,
                    429,
                ),
            ],
            None,
        ),
        row(
            "form sign-up: one address from 10 clients gets one mail",
            Nothing,
            vec![step(Req::FormSignUp { target: true }, Fresh, 10, 200)],
            Some(1),
        ),
        row(
            "form sign-up: one client is refused after its cap",
            Nothing,
            vec![
                step(
                    Req::FormSignUp { target: false },
                    Client(1),
                    SIGNUPS_PER_MINUTE,
                    200,
                ),
                step(Req::FormSignUp { target: false }, Client(1), 1, 429),
            ],
            None,
        ),
        row(
            "form and api sign-ups share the client's cap",
            Nothing,
            vec![
                step(
                    Req::FormSignUp { target: false },
                    Client(1),
                    SIGNUPS_PER_MINUTE / 2,
                    200,
                ),
                step(
                    Req::ApiSignUp {
                        path: API,
                        target: false,
                    },
                    Client(1),
                    SIGNUPS_PER_MINUTE / 2,
                    202,
                ),
                step(Req::FormSignUp { target: false }, Client(1), 1, 429),
            ],
            None,
        ),
    ]
}

/// The clients of one row: an address each and a cookie jar each.
struct Clients {
    row: usize,
    fresh: usize,
    jars: HashMap<u8, Browser>,
}

impl Clients {
    /// The address and browser for one request.
    fn get(&mut self, app: &TestApp, who: Who) -> (String, Browser) {
        match who {
            Fresh => {
                self.fresh += 1;
                let ip = format!(
                    "10.{}.{}.{}",
                    self.row,
                    100 + self.fresh / 250,
                    self.fresh % 250 + 1
                );
                (ip, Browser::new(app))
            }
            // Clients 1 and 2 share an address (an office behind one NAT), with their own jars.
            Client(n) => {
                let ip = format!("10.{}.{}.1", self.row, if n == 2 { 1 } else { n });
                let browser = self
                    .jars
                    .entry(n)
                    .or_insert_with(|| Browser::new(app))
                    .clone();
                (ip, browser)
            }
        }
    }
}

/// A CSRF-protected portal form: the page first (for the token and its cookie), then the POST.
async fn portal_form(
    browser: &Browser,
    ip: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let html = browser
        .client
        .get(browser.url(path))
        .header("X-Forwarded-For", ip)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_from(&html);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    browser
        .client
        .post(browser.url(path))
        .header("X-Forwarded-For", ip)
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Sends one request; returns its status.
async fn send(app: &TestApp, req: Req, target: &str, ip: &str, browser: &Browser) -> u16 {
    let other = unique_email("abuse-other");
    let response = match req {
        Req::Forgot => {
            portal_form(browser, ip, "/portal/password/forgot", &[("email", target)]).await
        }
        Req::PracticeSignUp => {
            let fields = restdose_tests::portal::sign_up_fields(target);
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            portal_form(browser, ip, "/portal/signup", &form).await
        }
        Req::Login { right } => {
            let password = if right {
                PASSWORD
            } else {
                "not the password at all"
            };
            portal_form(
                browser,
                ip,
                "/portal/login",
                &[("email", target), ("password", password)],
            )
            .await
        }
        Req::LoginElsewhere => {
            portal_form(
                browser,
                ip,
                "/portal/login",
                &[("email", &other), ("password", "wrong wrong")],
            )
            .await
        }
        Req::ApiSignUp {
            path,
            target: to_target,
        } => browser
            .client
            .post(browser.url(path))
            .header("X-Forwarded-For", ip)
            .json(&serde_json::json!({
                "email": if to_target { target } else { other.as_str() },
                "postcode": "10115",
            }))
            .send()
            .await
            .unwrap(),
        Req::FormSignUp { target: to_target } => browser
            .client
            .post(browser.url("/"))
            .header("X-Forwarded-For", ip)
            .form(&[
                ("email", if to_target { target } else { other.as_str() }),
                ("postcode", "10115"),
            ])
            .send()
            .await
            .unwrap(),
        Req::ClockForward(minutes) => {
            app.clock.advance(chrono::Duration::minutes(minutes));
            return 0;
        }
    };
    let status = response.status().as_u16();
    if status == 429 {
        assert!(
            response.headers().contains_key("retry-after"),
            "429 without Retry-After"
        );
        let portal = matches!(
            req,
            Req::Forgot | Req::PracticeSignUp | Req::Login { .. } | Req::LoginElsewhere
        );
        let body = response.text().await.unwrap();
        if portal {
            assert!(
                body.contains("Bitte warten Sie"),
                "a 429 page asks to wait: {body}"
            );
        }
    }
    status
}

/// Prepares the target address; waits for the setup's mail.
async fn given(app: &TestApp, given: Given, target: &str) {
    if matches!(given, Nothing) {
        return;
    }
    let mut fields = restdose_tests::portal::sign_up_fields(target)
        .into_iter()
        .map(|(_, v)| v);
    let mut next = || fields.next().unwrap();
    let input = PracticeSignUp {
        name: next(),
        street: next(),
        postcode: next(),
        city: next(),
        phone: next(),
        email: next(),
        password: next(),
    };
    app.services
        .sign_up_practice(&input, Lang::De, None)
        .await
        .unwrap();
    let mail = app.smtp.wait_for(target, 1).await.pop().unwrap();
    if matches!(given, VerifiedPractice) {
        let verify = mail.link_path("/portal/verify/");
        assert_eq!(Browser::new(app).post(&verify, &[]).await.status(), 200);
    }
}

/// Mails for `address` once delivery has caught up (all mails of a row are queued by now).
async fn settled_mails(app: &TestApp, address: &str, expected: usize) -> usize {
    if expected > 0 {
        app.smtp.wait_for(address, expected).await;
    }
    // Long enough for the delivery worker (polling every 20 ms) to send anything still queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.smtp.count_for(address)
}

async fn abuse_table(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1".to_owned()];
        c.mails_per_address_per_hour = MAILS_PER_HOUR as i64;
        c.mails_per_address_per_day = MAILS_PER_DAY as i64;
        c.account_requests_per_ip_per_minute = REQUESTS_PER_MINUTE as i64;
        c.account_requests_per_ip_per_hour = REQUESTS_PER_HOUR as i64;
        c.signup_rate_per_ip_per_minute = SIGNUPS_PER_MINUTE as i64;
        c.login_max_failures = LOGIN_FAILURES as i32;
        c.login_max_failures_per_ip = LOGIN_FAILURES_PER_IP as i32;
    })
    .await;
    let rows = rows();
    assert!(rows.len() >= 25, "the table has {} rows", rows.len());
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        // Rows start in a fresh clock hour, so the hourly caps begin empty for everyone.
        app.clock.advance(chrono::Duration::minutes(61));
        let target = unique_email("abuse");
        given(&app, row.given, &target).await;
        let mut clients = Clients {
            row: i + 1,
            fresh: 0,
            jars: HashMap::new(),
        };
        for (s, step) in row.steps.iter().enumerate() {
            for k in 0..step.times {
                let (ip, browser) = clients.get(&app, step.who);
                let status = send(&app, step.req, &target, &ip, &browser).await;
                if !matches!(step.req, Req::ClockForward(_)) && status != step.expect {
                    failures.push(format!(
                        "{}: step {s} request {k}: {status}, expected {}",
                        row.name, step.expect
                    ));
                }
            }
        }
        if let Some(expected) = row.mails {
            let got = settled_mails(&app, &target, expected).await;
            if got != expected {
                failures.push(format!("{}: {got} mails, expected {expected}", row.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

/// Issue #17's reproductions, with the default limits: each sent as many mails (or got as
/// many answers) as it asked for before the limits; now each stops at its limit.
async fn the_reproductions_of_issue_17_hold_no_more(backend: Backend) {
    let defaults = restdose::Config::default();
    let hourly = usize::try_from(defaults.mails_per_address_per_hour).unwrap();
    let per_client = usize::try_from(defaults.account_requests_per_ip_per_minute).unwrap();
    let signups = usize::try_from(defaults.signup_rate_per_ip_per_minute).unwrap();
    let app = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1".to_owned()];
        c.mails_per_address_per_hour = defaults.mails_per_address_per_hour;
        c.mails_per_address_per_day = defaults.mails_per_address_per_day;
        c.account_requests_per_ip_per_minute = defaults.account_requests_per_ip_per_minute;
        c.account_requests_per_ip_per_hour = defaults.account_requests_per_ip_per_hour;
        c.signup_rate_per_ip_per_minute = defaults.signup_rate_per_ip_per_minute;
    })
    .await;
    let mut row = 200;
    let mut next_row = |app: &TestApp| {
        app.clock.advance(chrono::Duration::minutes(61));
        row += 1;
        Clients {
            row,
            fresh: 0,
            jars: HashMap::new(),
        }
    };
    let send_all = async |clients: &mut Clients, req: Req, who: Who, times: usize, target: &str| {
        let mut statuses = Vec::new();
        for _ in 0..times {
            let (ip, browser) = clients.get(&app, who);
            statuses.push(send(&app, req, target, &ip, &browser).await);
        }
        statuses
    };

    // 40 forgot-password requests for one practice address from 40 clients sent 40 mails.
    let mut clients = next_row(&app);
    let practice = unique_email("issue17-forgot");
    given(&app, VerifiedPractice, &practice).await;
    let statuses = send_all(&mut clients, Req::Forgot, Fresh, 40, &practice).await;
    assert_eq!(statuses, vec![200; 40]);
    assert_eq!(settled_mails(&app, &practice, hourly).await, hourly);

    // 200 from one client in half a second sent 200.
    let mut clients = next_row(&app);
    let practice = unique_email("issue17-one-client");
    given(&app, VerifiedPractice, &practice).await;
    let statuses = send_all(&mut clients, Req::Forgot, Client(1), 200, &practice).await;
    assert_eq!(statuses[..per_client], vec![200; per_client]);
    assert_eq!(statuses[per_client..], vec![429; 200 - per_client]);
    assert_eq!(settled_mails(&app, &practice, hourly).await, hourly);

    // Practice sign-up with a known address mailed each time, without any cap.
    let mut clients = next_row(&app);
    let practice = unique_email("issue17-known");
    given(&app, VerifiedPractice, &practice).await;
    let statuses = send_all(&mut clients, Req::PracticeSignUp, Fresh, 40, &practice).await;
    assert_eq!(statuses, vec![200; 40]);
    assert_eq!(settled_mails(&app, &practice, hourly).await, hourly);

    // Login to an unverified account mailed each time too.
    let mut clients = next_row(&app);
    let practice = unique_email("issue17-unverified");
    given(&app, UnverifiedPractice, &practice).await;
    let statuses = send_all(&mut clients, RIGHT, Fresh, 40, &practice).await;
    assert_eq!(statuses, vec![403; 40]);
    assert_eq!(settled_mails(&app, &practice, hourly).await, hourly);

    // 80 POSTs to /api/v1/%72egistrations from one client were all answered 202.
    let mut clients = next_row(&app);
    let encoded = Req::ApiSignUp {
        path: "/api/v1/%72egistrations",
        target: false,
    };
    let statuses = send_all(&mut clients, encoded, Client(1), 80, "").await;
    assert_eq!(statuses[..signups], vec![202; signups]);
    assert_eq!(statuses[signups..], vec![429; 80 - signups]);

    // Five wrong passwords from five addresses, and the right one from a sixth got 429 — the
    // admin's account included.
    let mut clients = next_row(&app);
    let admin = unique_email("issue17-admin");
    app.services.create_admin(&admin, PASSWORD).await.unwrap();
    let statuses = send_all(&mut clients, WRONG, Fresh, 5, &admin).await;
    assert_eq!(statuses, vec![401; 5]);
    let statuses = send_all(&mut clients, RIGHT, Fresh, 1, &admin).await;
    assert_eq!(statuses, vec![303], "the admin logs in from a clean client");
    // ...while the attack goes on: an attacking address is refused after its first failure
    // (the account is locked for clients with failures), and the admin still logs in.
    let statuses = send_all(&mut clients, WRONG, Client(1), 2, &admin).await;
    assert_eq!(statuses, vec![401, 429]);
    let statuses = send_all(&mut clients, WRONG, Fresh, 20, &admin).await;
    assert_eq!(statuses, vec![401; 20], "each new address gets one guess");
    let statuses = send_all(&mut clients, RIGHT, Fresh, 1, &admin).await;
    assert_eq!(statuses, vec![303]);
    app.stop().await;
}
