//! The binary as an operator uses it: zero-configuration start, sign-up leaving an `.eml` in
//! `data/outbox`, following the link; `migrate`, `config example`, `keys generate`, `geo import`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn restdose(dir: &Path) -> Command {
    without_own_settings(Command::new(env!("CARGO_BIN_EXE_restdose")), dir)
}

/// `restdose` started by a shell with the common umask 022 (files 0644, directories 0755
/// unless the program says otherwise). The shell first creates `umask-control` in `dir` so the
/// test can check the umask really applied.
fn restdose_under_umask_022(dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && : > umask-control && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_restdose"));
    without_own_settings(cmd, dir)
}

fn without_own_settings(mut cmd: Command, dir: &Path) -> Command {
    cmd.current_dir(dir);
    // The tests must not pick up the developer's own settings.
    for (key, _) in std::env::vars() {
        if key.starts_with("RESTDOSE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client over a raw socket: the binary is tested without extra dependencies.
fn http(port: u16, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16) -> Running {
    start_command(restdose(dir), port)
}

/// Runs `command` (a `restdose` invocation) listening on `port`, once it accepts connections.
fn start_command(mut command: Command, port: u16) -> Running {
    let child = command
        .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "restdose did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

/// Undo quoted-printable soft line breaks and `=3D`, enough to read a link.
fn unfold_quoted_printable(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[test]
fn zero_configuration_start_signs_up_into_the_file_outbox_and_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start(dir.path(), port);

    let (status, page) = http(port, "GET", "/", "text/plain", "");
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\" action=\"/\""));

    let (status, _) = http(
        port,
        "POST",
        "/api/v1/registrations",
        "application/json",
        r#"{"email":"zero@example.de","postcode":"10115"}"#,
    );
    assert_eq!(status, 202);

    let data = dir.path().join("data");
    // The mail leaves through the outbox; the delivery worker writes it within a poll or two.
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_dir(data.join("outbox")).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "no mail in data/outbox");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the writer finish the file it just created.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        data.join("restdose.db").exists(),
        "SQLite file under ./data"
    );
    assert!(
        data.join("keys.toml").exists(),
        "development keys generated"
    );
    let outbox: Vec<_> = std::fs::read_dir(data.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].extension().unwrap(), "eml");
    let eml = unfold_quoted_printable(&std::fs::read_to_string(&outbox[0]).unwrap());
    assert!(eml.contains("To: zero@example.de"));
    let prefix = format!("http://127.0.0.1:{port}/confirm/");
    let start = eml.find(&prefix).expect("confirmation link in the mail");
    let token: String = eml[start + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43);

    let (status, page) = http(port, "GET", &format!("/confirm/{token}"), "text/plain", "");
    assert_eq!(status, 200);
    assert!(page.contains("method=\"post\""));
    let (status, page) = http(
        port,
        "POST",
        &format!("/confirm/{token}"),
        "application/x-www-form-urlencoded",
        "",
    );
    assert_eq!(status, 200);
    assert!(page.contains("Warteliste"));
}

#[test]
fn migrate_creates_the_database_and_config_example_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let out = restdose(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sqlite"));
    assert!(dir.path().join("data/restdose.db").exists());

    let out = restdose(dir.path())
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let example = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.path().join("restdose.toml"), &example).unwrap();
    // The printed file is accepted as it is.
    let out = restdose(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(dir.path().join("restdose.toml"), "databse_url = \"x\"\n").unwrap();
    let out = restdose(dir.path()).arg("migrate").output().unwrap();
    assert!(!out.status.success(), "a typo in the file must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("databse_url"));
}

#[test]
fn development_keys_are_refused_on_a_public_url_unless_it_is_a_demo() {
    let dir = tempfile::tempdir().unwrap();
    let out = restdose(dir.path())
        .env("RESTDOSE_PUBLIC_URL", "https://restdose.example.org")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate needs no keys");
    let port = free_port();
    let out = restdose(dir.path())
        .env("RESTDOSE_PUBLIC_URL", "https://restdose.example.org")
        // The file outbox has a rule of its own on a public URL (tested below): allow it here.
        .env("RESTDOSE_FILE_OUTBOX_ON_PUBLIC_URL", "true")
        .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to use development keys"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data/keys.toml").exists(),
        "no key was generated"
    );

    let port = free_port();
    let _demo = Running(
        restdose(dir.path())
            .env("RESTDOSE_PUBLIC_URL", "https://restdose.example.org")
            .env("RESTDOSE_DEMO", "true")
            .env("RESTDOSE_FILE_OUTBOX_ON_PUBLIC_URL", "true")
            .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Started means: it generated its development keys and answers on its port.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(dir.path().join("data/keys.toml").exists()
        && TcpStream::connect(("127.0.0.1", port)).is_ok())
    {
        assert!(Instant::now() < deadline, "the demo did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keys_generate_prints_a_usable_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = restdose(dir.path())
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("current_key_id = 1") && text.contains("blind_index_key"));
    std::fs::write(dir.path().join("prod-keys.toml"), &text).unwrap();
    let out = restdose(dir.path())
        .env("RESTDOSE_KEYS_FILE", "prod-keys.toml")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The same keys straight from the environment (a secret store), on a public URL.
    let out = restdose(dir.path())
        .env("RESTDOSE_KEYS", &text)
        .env("RESTDOSE_PUBLIC_URL", "https://restdose.example.org")
        .args(["keys", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("current key: 1"));
    let out = restdose(dir.path())
        .env("RESTDOSE_KEYS", "not a key file")
        .args(["keys", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RESTDOSE_KEYS"));
    // A configured key file that is missing is an error, not a silent new key.
    let port = free_port();
    let out = restdose(dir.path())
        .env("RESTDOSE_KEYS_FILE", "missing.toml")
        .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn geo_import_makes_another_countrys_postcodes_usable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("AT.txt");
    std::fs::write(
        &file,
        "AT\t1010\tWien, Innere Stadt\tWien\t09\t\t\t\t\t48.2077\t16.3705\t4\n\
         AT\t8010\tGraz\tSteiermark\t06\t\t\t\t\t47.0667\t15.45\t4\n",
    )
    .unwrap();
    let out = restdose(dir.path())
        .args(["geo", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("AT: 2 postcodes imported"));

    let port = free_port();
    let child = restdose(dir.path())
        .env("RESTDOSE_COUNTRY", "AT")
        .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/registrations",
        "application/json",
        r#"{"email":"wien@example.at","postcode":"1010"}"#,
    );
    assert_eq!(status, 202);
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/registrations",
        "application/json",
        r#"{"email":"x@example.at","postcode":"10115"}"#,
    );
    assert_eq!(status, 422, "{body}");

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "AT\t1010\tWien\n").unwrap();
    let out = restdose(dir.path())
        .args(["geo", "import"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under umask 022 everything the service writes would be readable by every user of the
/// machine: the database (and its WAL and shared memory), the development keys, the mails with
/// addresses and live links. The service sets the modes itself.
#[cfg(unix)]
#[test]
fn under_umask_022_the_data_directory_database_keys_and_mails_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start_command(restdose_under_umask_022(dir.path()), port);
    assert_eq!(
        mode(&dir.path().join("umask-control")),
        0o644,
        "the shell's umask is 022"
    );
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/registrations",
        "application/json",
        r#"{"email":"private@example.de","postcode":"10115"}"#,
    );
    assert_eq!(status, 202);
    let data = dir.path().join("data");
    let outbox = data.join("outbox");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_dir(&outbox).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "no mail in data/outbox");
        std::thread::sleep(Duration::from_millis(50));
    }
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    assert_eq!(mode(&data), 0o700, "data/");
    assert_eq!(mode(&data.join("restdose.db")), 0o600, "restdose.db");
    // WAL mode: both side files exist while the server runs.
    assert_eq!(
        mode(&data.join("restdose.db-wal")),
        0o600,
        "restdose.db-wal"
    );
    assert_eq!(
        mode(&data.join("restdose.db-shm")),
        0o600,
        "restdose.db-shm"
    );
    assert_eq!(mode(&data.join("keys.toml")), 0o600, "keys.toml");
    assert_eq!(mode(&outbox), 0o700, "data/outbox/");
    assert_eq!(mode(&eml), 0o600, "the .eml file");
}

/// With no `smtp_url`, mails go to `.eml` files nobody receives: on a public address that is a
/// production set-up that silently sends nothing, so `serve` and `matcher` refuse it unless
/// told otherwise.
#[test]
fn the_file_outbox_is_refused_on_a_public_url_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let keys = restdose(dir.path())
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert!(keys.status.success());
    std::fs::write(dir.path().join("prod-keys.toml"), &keys.stdout).unwrap();
    let public = |cmd: &mut Command| {
        cmd.env("RESTDOSE_PUBLIC_URL", "https://restdose.example.org")
            .env("RESTDOSE_KEYS_FILE", "prod-keys.toml");
    };

    for args in [&["serve"][..], &["matcher"][..]] {
        let port = free_port();
        let log = dir.path().join("refused.log");
        let mut cmd = restdose(dir.path());
        public(&mut cmd);
        let mut child = Running(
            cmd.args(args)
                .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        // A process that does not refuse runs until killed: give it a bounded time.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{args:?} started although it must refuse to"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "{args:?} must refuse to start");
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(
            stderr.contains("file_outbox_on_public_url") && stderr.contains("smtp_url"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("data/outbox").exists(),
            "nothing was created"
        );
    }

    // Told explicitly: it starts, and says loudly where the mails go.
    let port = free_port();
    let log = dir.path().join("serve.log");
    let mut cmd = restdose(dir.path());
    public(&mut cmd);
    let child = cmd
        .env("RESTDOSE_FILE_OUTBOX_ON_PUBLIC_URL", "true")
        .env("RESTDOSE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _server = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "restdose did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("WARNING: no smtp_url on the public URL"),
        "{stderr}"
    );
}

/// `.eml` files hold addresses and live links: the purge deletes them
/// `retention_hours_after_appointment` (24 h) after they were written, like everything else.
#[test]
fn purge_deletes_old_mail_files_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("data/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let (old, recent, other) = (
        outbox.join("old.eml"),
        outbox.join("recent.eml"),
        outbox.join("README"),
    );
    for file in [&old, &recent, &other] {
        std::fs::write(file, "To: someone@example.de\r\n\r\nhello\r\n").unwrap();
    }
    let yesterday = std::time::SystemTime::now() - Duration::from_secs(25 * 3600);
    for file in [&old, &other] {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(yesterday)
            .unwrap();
    }

    let out = restdose(dir.path())
        .args(["purge", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(", 1 mail file(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(old.exists(), "a dry run deletes nothing");

    let out = restdose(dir.path()).arg("purge").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(", 1 mail file(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!old.exists(), "the mail written 25 h ago is deleted");
    assert!(recent.exists(), "the recent mail stays");
    assert!(other.exists(), "only .eml files are the purge's");
}

/// A key file that others may read is warned about (it is the operator's, so it is not
/// changed), and `keys add` rewrites it for the owner only, whatever the umask.
#[cfg(unix)]
#[test]
fn an_open_key_file_is_warned_about_and_keys_add_rewrites_it_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = restdose(dir.path())
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert!(keys.status.success());
    let file = dir.path().join("keys.toml");
    std::fs::write(&file, &keys.stdout).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let out = restdose(dir.path())
        .env("RESTDOSE_KEYS_FILE", "keys.toml")
        .args(["keys", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARNING: the key file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_eq!(mode(&file), 0o644, "the operator's file is not changed");

    let out = restdose_under_umask_022(dir.path())
        .env("RESTDOSE_KEYS_FILE", "keys.toml")
        .args(["keys", "add"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.path().join("umask-control")), 0o644);
    assert_eq!(mode(&file), 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("current_key_id = 2")
    );
}
