//! `restdose admin …` as an operator uses it, on the zero-configuration SQLite database in a
//! temporary directory: creating admins (password from the environment or standard input),
//! listing and deciding on practices, and clear refusals with a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_core::PracticeSignUp;
use restdose_domain::{Lang, SystemClock};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

fn restdose(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restdose"));
    cmd.current_dir(dir);
    // The tests must not pick up the developer's own settings.
    for (key, _) in std::env::vars() {
        if key.starts_with("RESTDOSE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs with `stdin` written to standard input (then closed).
fn run_with_input(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn create_admin(dir: &Path, email: &str) -> Command {
    let mut cmd = restdose(dir);
    cmd.args(["admin", "create-admin", "--email", email]);
    cmd
}

#[test]
fn create_admin_takes_the_password_from_the_environment_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();

    let mut cmd = create_admin(dir.path(), "first@example.org");
    cmd.env("RESTDOSE_ADMIN_PASSWORD", "a long enough passphrase");
    let out = run_with_input(cmd, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("first@example.org"),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains("passphrase") && !stderr(&out).contains("passphrase"),
        "the password is never printed"
    );

    let out = run_with_input(
        create_admin(dir.path(), "second@example.org"),
        "another long passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("second@example.org"));
}

#[test]
fn create_admin_refuses_duplicates_short_passwords_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_input(
        create_admin(dir.path(), "admin@example.org"),
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The same address again, in another spelling.
    let out = run_with_input(
        create_admin(dir.path(), "Admin@Example.org"),
        "a different passphrase\n",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));

    let out = run_with_input(create_admin(dir.path(), "short@example.org"), "short\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 12 characters"),
        "{}",
        stderr(&out)
    );

    let out = run_with_input(create_admin(dir.path(), "none@example.org"), "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("RESTDOSE_ADMIN_PASSWORD"),
        "{}",
        stderr(&out)
    );

    let out = run_with_input(
        create_admin(dir.path(), "not an address"),
        "a long enough passphrase\n",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid e-mail address"),
        "{}",
        stderr(&out)
    );

    // A refused attempt keeps nothing: the address is still free.
    let out = run_with_input(
        create_admin(dir.path(), "short@example.org"),
        "now long enough, really\n",
    );
    assert!(
        out.status.success(),
        "the refused address was not kept: {}",
        stderr(&out)
    );
}

#[test]
fn practices_list_starts_empty_and_accepts_a_status_filter() {
    let dir = tempfile::tempdir().unwrap();
    let out = restdose(dir.path())
        .args(["admin", "practices", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no practices"));

    let out = restdose(dir.path())
        .args(["admin", "practices", "list", "--status", "pending"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = restdose(dir.path())
        .args(["admin", "practices", "list", "--status", "waiting"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pending, approved, rejected, suspended"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn decisions_on_bad_or_unknown_ids_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = restdose(dir.path())
        .args(["admin", "practices", "approve", "12345"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a practice id"),
        "{}",
        stderr(&out)
    );

    for decision in ["approve", "reject", "suspend"] {
        let out = restdose(dir.path())
            .args([
                "admin",
                "practices",
                decision,
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("no practice with id 67e55044-10b1-426f-9247-bb680e5fe0c8"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn every_admin_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["admin", "--help"][..],
        &["admin", "create-admin", "--help"],
        &["admin", "practices", "--help"],
        &["admin", "practices", "list", "--help"],
        &["admin", "practices", "approve", "--help"],
        &["admin", "practices", "reject", "--help"],
        &["admin", "practices", "suspend", "--help"],
        &["admin", "close-offer", "--help"],
    ] {
        let out = restdose(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage: restdose admin"), "{args:?}");
    }
    let out = restdose(dir.path())
        .args(["admin", "create-admin", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("RESTDOSE_ADMIN_PASSWORD"));
}

/// Undo quoted-printable soft line breaks and `=3D`, enough to read a link.
fn unfold_quoted_printable(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// Every mail in the file outbox, unfolded.
fn outbox(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("data/outbox")) else {
        return Vec::new();
    };
    entries
        .map(|e| unfold_quoted_printable(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practices_are_listed_and_decided_and_unverified_ones_cannot_be_approved() {
    let dir = tempfile::tempdir().unwrap();
    // A practice signs up, as the portal would do it, on the database the binary uses.
    let config = restdose::Config {
        data_dir: dir.path().join("data"),
        ..restdose::Config::default()
    };
    let services = restdose::build_services(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let input = PracticeSignUp {
        name: "Praxis am Kanal".to_owned(),
        street: "Kanalstraße 3".to_owned(),
        postcode: "10115".to_owned(),
        city: "Berlin".to_owned(),
        phone: "030 7654321".to_owned(),
        email: "kanal@example.de".to_owned(),
        password: "practice-passphrase-42".to_owned(),
    };
    services
        .sign_up_practice(&input, Lang::De, None)
        .await
        .unwrap();
    // Mails wait in the outbox until a delivery worker sends them; this test has none running.
    assert_eq!(services.deliver_outbox_once().await.unwrap().sent, 1);
    let id = services.store.practices(None).await.unwrap()[0]
        .id
        .to_string();

    let out = restdose(dir.path())
        .args(["admin", "practices", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("a row for the practice");
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            id.as_str(),
            "pending",
            "no",
            "Praxis am Kanal",
            "10115",
            "Berlin",
            "kanal@example.de"
        ]
    );
    assert!(
        table.lines().next().unwrap().starts_with("ID"),
        "a header line"
    );

    let out = restdose(dir.path())
        .args(["admin", "practices", "approve", &id])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has not verified its login e-mail address"),
        "{}",
        stderr(&out)
    );

    // The practice follows its link; now approval works and mails it.
    let mails = outbox(dir.path());
    let verify_mail = mails
        .iter()
        .find(|m| m.contains("/portal/verify/"))
        .expect("verification mail");
    let start = verify_mail.find("/portal/verify/").unwrap() + "/portal/verify/".len();
    let token: String = verify_mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    services.verify_practice_email(&token).await.unwrap();

    let out = restdose(dir.path())
        .args(["admin", "practices", "approve", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("approved"), "{}", stdout(&out));
    assert_eq!(
        outbox(dir.path()).len(),
        mails.len() + 1,
        "the practice is told by mail"
    );

    let out = restdose(dir.path())
        .args(["admin", "practices", "list", "--status", "pending"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("no practices"), "{}", stdout(&out));
    let out = restdose(dir.path())
        .args(["admin", "practices", "list", "--status", "approved"])
        .output()
        .unwrap();
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("approved") && l.contains("yes"))
    );

    for (decision, status) in [("suspend", "suspended"), ("reject", "rejected")] {
        let out = restdose(dir.path())
            .args(["admin", "practices", decision, &id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(status), "{}", stdout(&out));
    }
    assert_eq!(outbox(dir.path()).len(), mails.len() + 3);
}

/// `admin close-offer` closes one offer; `admin practices suspend` closes every open offer of
/// the practice (the people who booked are told: see the web tests, same use case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_offer_and_suspend_end_open_offers() {
    use restdose_core::offers::{NumberInput, OfferInput, TimeInput};
    use restdose_core::{Decision, Principal, RadiusInput};
    use restdose_store::{OfferStatus, PracticeStatus};

    let dir = tempfile::tempdir().unwrap();
    let config = restdose::Config {
        data_dir: dir.path().join("data"),
        ..restdose::Config::default()
    };
    let services = restdose::build_services(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let input = PracticeSignUp {
        name: "Praxis am Deich".to_owned(),
        street: "Deichstraße 1".to_owned(),
        postcode: "10115".to_owned(),
        city: "Berlin".to_owned(),
        phone: "030 1111111".to_owned(),
        email: "deich@example.de".to_owned(),
        password: "practice-passphrase-42".to_owned(),
    };
    services
        .sign_up_practice(&input, Lang::De, None)
        .await
        .unwrap();
    services.deliver_outbox_once().await.unwrap();
    let mail = outbox(dir.path())
        .into_iter()
        .find(|m| m.contains("/portal/verify/"))
        .expect("verification mail");
    let start = mail.find("/portal/verify/").unwrap() + "/portal/verify/".len();
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    services.verify_practice_email(&token).await.unwrap();
    let id = services.store.practices(None).await.unwrap()[0].id;
    services
        .decide_practice_as_operator(id, Decision::Approve)
        .await
        .unwrap();
    let principal = Principal::Practice {
        id,
        status: PracticeStatus::Approved,
    };
    let now = chrono::Utc::now();
    let (starts, ends) = (
        (now + chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(3)).to_rfc3339(),
    );
    let vaccine = services.policy.vaccines[0].clone();
    let offer_input = OfferInput {
        vaccine: &vaccine,
        doses: NumberInput::Number(2),
        starts_at: TimeInput::Rfc3339(&starts),
        ends_at: TimeInput::Rfc3339(&ends),
        claim_minutes: NumberInput::Missing,
        radius_km: RadiusInput::Missing,
        note: "",
    };
    let closed = services.post_offer(&principal, &offer_input).await.unwrap();
    let left_open = services.post_offer(&principal, &offer_input).await.unwrap();
    let status = |offer: uuid::Uuid| {
        let services = &services;
        async move { services.store.offer(offer).await.unwrap().unwrap().status }
    };

    for (arg, message) in [
        ("12345".to_owned(), "not an offer id".to_owned()),
        (
            "67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned(),
            "no offer with id 67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned(),
        ),
    ] {
        let out = restdose(dir.path())
            .args(["admin", "close-offer", &arg])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains(&message), "{}", stderr(&out));
    }

    let out = restdose(dir.path())
        .args(["admin", "close-offer", &closed.id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is closed; 0 people"),
        "{}",
        stdout(&out)
    );
    assert_eq!(status(closed.id).await, OfferStatus::Cancelled);
    assert_eq!(status(left_open.id).await, OfferStatus::Open);

    let out = restdose(dir.path())
        .args(["admin", "close-offer", &closed.id.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not open"), "{}", stderr(&out));

    let out = restdose(dir.path())
        .args(["admin", "practices", "suspend", &id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("open offers are closed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(status(left_open.id).await, OfferStatus::Cancelled);
}
