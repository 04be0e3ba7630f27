//! Several `restdose` processes on one PostgreSQL database, as an operator runs them: the
//! compiled binary (see [`restdose_binary`] for where it comes from), one key file shared by
//! every process, `restdose migrate`, child processes that are killed when dropped, waits for
//! `/healthz` and an SMTP server that answers slowly.
//!
//! Every process gets the same settings, given as `RESTDOSE_*` variables; the test process
//! reads the very same settings through [`Deployment::config`], so data it seeds through the
//! library (encrypted with the shared keys) is what the processes read.
//!
//! Every wait is bounded by [`WAIT`] and fails with a message that says what did not happen,
//! including the end of the process's log.

use mailin_embedded::{Handler, Response, Server, response};
use restdose::Config;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Backend, CapturedMail, TestDb};

/// The longest any single wait of these helpers (and of the tests using them) may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// The compiled `restdose` binary, checked to exist and to be newer than its sources.
///
/// Where it comes from: `env!("CARGO_BIN_EXE_restdose")` exists only in the tests of the
/// binary's own package (`crates/restdose`), and a test must not run cargo itself. But cargo
/// builds a package's binaries whenever it builds that package's integration tests, and
/// `crates/restdose` has integration tests (`tests/cli.rs`, `tests/admin_cli.rs`). So
/// `cargo test --workspace` (what `scripts/test` runs) always leaves an up-to-date binary in
/// the profile directory this test's own executable runs from: the test is
/// `<target>/<profile>/deps/integration-<hash>` (the one integration binary), the binary `<target>/<profile>/restdose` (by
/// default `target/debug/restdose` next to the workspace's `Cargo.toml`, i.e.
/// `CARGO_MANIFEST_DIR/../target/debug/restdose`; taking the test's own directory also works
/// with `CARGO_TARGET_DIR` and `--release`).
///
/// `cargo test -p restdose-tests` on its own does NOT build or rebuild the binary. A missing
/// binary, or one older than a file it was built from (cargo's dep-info `restdose.d` next to
/// it lists them), fails the test with the command that fixes it, rather than silently
/// testing old code.
pub fn restdose_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot tell where the test executable is");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is not in <target>/<profile>/deps");
    let binary = profile_dir.join(format!("restdose{}", std::env::consts::EXE_SUFFIX));
    let fix = "cargo test --workspace builds it (crates/restdose has integration tests); \
               when running only this crate, first run: cargo build -p restdose --bin restdose";
    assert!(
        binary.is_file(),
        "{} does not exist. These tests run the compiled binary. {fix}",
        binary.display()
    );
    let stale = stale_inputs(&binary);
    assert!(
        stale.is_empty(),
        "{} is older than {} file(s) it is built from (e.g. {}): it would test old code. {fix}",
        binary.display(),
        stale.len(),
        stale
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    binary
}

/// Inputs of the binary (from cargo's dep-info file) that changed after it was built or are
/// gone. Empty when there is no dep-info file to tell.
fn stale_inputs(binary: &Path) -> Vec<PathBuf> {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return Vec::new();
    };
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return Vec::new();
    };
    // `<output>: <input> <input> ...`, spaces inside a path escaped as `\ `.
    let Some((_, inputs)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = inputs.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .map_or(true, |changed| changed > built)
        })
        .collect()
}

/// A port nobody listens on right now (the kernel's pick; another process could take it before
/// ours binds it, which then shows as a process that exits with "cannot listen").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last `max` bytes of a log file, for failure messages.
fn tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// One database, one key file, one set of settings, shared by every process started from it.
pub struct Deployment {
    pub db: TestDb,
    /// Holds the key file, each process's data directory and log.
    pub dir: tempfile::TempDir,
    pub keys_file: PathBuf,
    binary: PathBuf,
    /// Configuration keys (lower case, without the `RESTDOSE_` prefix) and values.
    settings: Vec<(String, String)>,
}

impl Deployment {
    /// A fresh PostgreSQL database, a key file from `restdose keys generate`, migrated with
    /// `restdose migrate`.
    pub async fn postgres() -> Deployment {
        let binary = restdose_binary();
        let db = TestDb::new(Backend::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("keys.toml");
        let mut deployment = Deployment {
            db,
            keys_file: keys_file.clone(),
            dir,
            binary,
            settings: Vec::new(),
        };
        let keys = deployment.run("keys-generate", &["keys", "generate"]);
        assert!(
            keys.contains("blind_index_key"),
            "`restdose keys generate` printed no key file: {keys}"
        );
        std::fs::write(&keys_file, keys).unwrap();
        let url = deployment.db.url.clone();
        deployment.set("database_url", url);
        deployment.set("keys_file", keys_file.display().to_string());
        let migrated = deployment.run("migrate", &["migrate"]);
        assert!(
            migrated.contains("postgres"),
            "`restdose migrate` did not report PostgreSQL: {migrated}"
        );
        deployment
    }

    /// Sets a configuration key for every process started afterwards (and for `config`):
    /// `set("mail_parallel", "4")` becomes `RESTDOSE_MAIL_PARALLEL=4`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let key = key.to_ascii_lowercase();
        self.settings.retain(|(k, _)| *k != key);
        self.settings.push((key, value.into()));
    }

    /// The configuration the processes get (same settings, read the way `RESTDOSE_*` variables
    /// are: numbers and booleans typed, everything else text), for `build_services` here.
    pub fn config(&self) -> Config {
        let object: serde_json::Map<String, serde_json::Value> = self
            .settings
            .iter()
            .chain(std::iter::once(&(
                "data_dir".to_owned(),
                self.dir.path().join("test-process").display().to_string(),
            )))
            .map(|(key, value)| {
                let value = if let Ok(n) = value.parse::<i64>() {
                    serde_json::Value::from(n)
                } else if let Ok(b) = value.parse::<bool>() {
                    serde_json::Value::from(b)
                } else {
                    serde_json::Value::from(value.as_str())
                };
                (key.clone(), value)
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .expect("the settings are not a valid configuration")
    }

    /// The same services the processes build, in the test process (nothing runs in the
    /// background here).
    pub async fn services(&self) -> restdose_core::Services {
        restdose::build_services(&self.config(), Arc::new(restdose_domain::SystemClock))
            .await
            .expect("cannot build the services from the deployment's settings")
    }

    /// `restdose <args>` with the settings, a data directory of its own and the output going
    /// to `<dir>/<name>.log`; nothing of the developer's environment (`RESTDOSE_*`,
    /// `./restdose.toml`) leaks in.
    fn command(&self, name: &str, args: &[&str], extra: &[(&str, String)]) -> (Command, PathBuf) {
        let data_dir = self.dir.path().join(format!("{name}-data"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = self.dir.path().join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (key, _) in std::env::vars() {
            if key.starts_with("RESTDOSE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RESTDOSE_DATA_DIR", &data_dir);
        for (key, value) in &self.settings {
            cmd.env(format!("RESTDOSE_{}", key.to_ascii_uppercase()), value);
        }
        for (key, value) in extra {
            cmd.env(key, value);
        }
        (cmd, log)
    }

    /// Runs a one-shot command to its end (at most `WAIT`); returns its output, fails the test
    /// when it fails.
    pub fn run(&self, name: &str, args: &[&str]) -> String {
        let (mut cmd, log) = self.command(name, args, &[]);
        let mut child = cmd.spawn().expect("cannot start restdose");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    status.success(),
                    "`restdose {}` failed ({status}):\n{output}",
                    args.join(" ")
                );
                return output;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`restdose {}` did not finish within {WAIT:?}:\n{}",
                    args.join(" "),
                    tail(&log, 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a long-running `restdose <args>`; `port` becomes its `listen` and `public_url`.
    pub fn spawn(&self, name: &str, args: &[&str], port: Option<u16>) -> RestdoseProcess {
        let extra: Vec<(&str, String)> = match port {
            Some(port) => vec![
                ("RESTDOSE_LISTEN", format!("127.0.0.1:{port}")),
                ("RESTDOSE_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ],
            None => Vec::new(),
        };
        let (mut cmd, log) = self.command(name, args, &extra);
        let child = cmd.spawn().expect("cannot start restdose");
        RestdoseProcess {
            name: name.to_owned(),
            port,
            child,
            log,
        }
    }

    /// `restdose serve --no-workers` on a free port, answering `/healthz`.
    pub async fn serve_no_workers(&self, name: &str) -> RestdoseProcess {
        let mut process = self.spawn(name, &["serve", "--no-workers"], Some(free_port()));
        process.wait_healthy().await;
        process
    }

    /// `restdose matcher` (the workers only).
    pub fn matcher(&self, name: &str) -> RestdoseProcess {
        self.spawn(name, &["matcher"], None)
    }
}

/// A running `restdose`, killed (SIGKILL) when dropped.
pub struct RestdoseProcess {
    pub name: String,
    pub port: Option<u16>,
    child: Child,
    log: PathBuf,
}

impl RestdoseProcess {
    pub fn base_url(&self) -> String {
        let port = self.port.expect("this process does not listen");
        format!("http://127.0.0.1:{port}")
    }

    /// The end of the process's output (stdout and stderr).
    pub fn log_tail(&self) -> String {
        tail(&self.log, 4000)
    }

    /// Fails the test when the process has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "restdose process {:?} ended ({status}):\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Waits (at most `WAIT`) until `GET /healthz` answers 200.
    pub async fn wait_healthy(&mut self) {
        let url = format!("{}/healthz", self.base_url());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            self.assert_running();
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "restdose process {:?} did not answer {url} within {WAIT:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (no shutdown of any kind), and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RestdoseProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An SMTP server in the test process that takes `delay` to accept each mail, so that a
/// delivery batch takes a while. A mail counts as received (is in the inbox) *before* the
/// server says so to the client: a client killed while waiting for the answer has handed the
/// mail over without knowing it, which is what makes a later redelivery a duplicate.
pub struct SlowSmtp {
    port: u16,
    inbox: Arc<Mutex<Vec<CapturedMail>>>,
}

#[derive(Clone)]
struct SlowCapture {
    inbox: Arc<Mutex<Vec<CapturedMail>>>,
    delay: Duration,
    to: Vec<String>,
    buffer: Vec<u8>,
}

impl Handler for SlowCapture {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.buffer.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = CapturedMail {
            to: std::mem::take(&mut self.to),
            raw: std::mem::take(&mut self.buffer),
        };
        self.inbox.lock().unwrap().push(mail);
        std::thread::sleep(self.delay);
        response::OK
    }
}

impl SlowSmtp {
    /// Listens on a free port, on a detached thread (`serve` never returns).
    pub fn start(delay: Duration) -> SlowSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let handler = SlowCapture {
            inbox: inbox.clone(),
            delay,
            to: Vec::new(),
            buffer: Vec::new(),
        };
        std::thread::spawn(move || {
            let mut server = Server::new(handler);
            // More threads than connections a worker opens, so connections left behind by a
            // killed process do not hold up the next one.
            server
                .with_name("slow-test-smtp")
                .with_num_threads(16)
                .with_tcp_listener(listener);
            server.serve().expect("slow test SMTP server stopped");
        });
        SlowSmtp { port, inbox }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Mails received so far.
    pub fn count(&self) -> usize {
        self.inbox.lock().unwrap().len()
    }

    pub fn mails(&self) -> Vec<CapturedMail> {
        self.inbox.lock().unwrap().clone()
    }
}
