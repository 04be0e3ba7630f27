//! Test support: fresh databases on both backends, a real SMTP server in the test process, and
//! the real application spawned on a random port with a clock the test can move.
//!
//! Every test runs on SQLite (a temporary file) and on PostgreSQL (a new database on the server
//! named by `RESTDOSE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! dropped afterwards). PostgreSQL tests fail, never skip, when no server answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod isolation;
pub mod portal;
pub mod processes;
pub mod smtp;

use chrono::{DateTime, TimeZone, Utc};
use restdose::{Application, Config};
use restdose_domain::ManualClock;
use sqlx::Connection;
use std::sync::Arc;

pub use smtp::{CapturedMail, TestSmtp};

const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn postgres_admin_url() -> String {
    std::env::var("RESTDOSE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

/// An empty database (the application migrates it), removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("restdose.db").display());
                TestDb {
                    backend,
                    url,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = url::Url::parse(&postgres_admin_url())
                    .expect("RESTDOSE_TEST_POSTGRES_URL is not a URL");
                let name = format!("restdose_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin.as_str()).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL tests need a server: cannot connect to RESTDOSE_TEST_POSTGRES_URL ({e}). \
                         Run the suite with scripts/test, which starts one."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.ok();
                let mut url = admin.clone();
                url.set_path(&format!("/{name}"));
                TestDb {
                    backend,
                    url: url.to_string(),
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("restdose.db"))
    }

    /// Every row of every table (discovered from the schema), as text: what a database dump
    /// would show an attacker. Binary columns are shown both raw (lossy UTF-8) and as hex.
    pub async fn dump(&self) -> String {
        let mut out = String::new();
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let tables: Vec<(String,)> =
                    sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                for (table,) in tables {
                    let cols: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{table}')"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for (col,) in cols {
                        let values: Vec<(Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT CASE WHEN typeof(\"{col}\") = 'blob' THEN NULL ELSE CAST(\"{col}\" AS TEXT) END, hex(\"{col}\") FROM \"{table}\""
                        )))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                        for (text, hex) in values {
                            out.push_str(&format!(
                                "{table}.{col}: {} | {}\n",
                                text.unwrap_or_default(),
                                hex.unwrap_or_default()
                            ));
                        }
                    }
                }
                // And the raw file, in case something lives outside the tables.
                if let Some(path) = self.sqlite_path() {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
                }
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for (table,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM \"{table}\" t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for (row,) in rows {
                        out.push_str(&format!("{table}: {row}\n"));
                    }
                }
            }
        }
        out
    }

    /// Number of rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                n
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                n
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async context: use a short-lived runtime on its own thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// The moment every test starts at.
pub fn test_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 8, 0, 0).unwrap()
}

/// The real application on a random port, with a movable clock and mail going to a real SMTP
/// server in this process.
pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    pub smtp: &'static TestSmtp,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
    /// The services behind the server, for calling worker steps directly.
    pub services: restdose_core::Services,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with a configuration the test may adjust first.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let smtp = TestSmtp::global();
        let db = TestDb::new(backend).await;
        let data_dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut config = Config {
            database_url: Some(db.url.clone()),
            database_max_connections: 4,
            listen: format!("127.0.0.1:{port}"),
            public_url: Some(base.clone()),
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port()).into()),
            data_dir: data_dir.path().to_owned(),
            http_workers: 2,
            // Every test client is 127.0.0.1 and the clock stands still, so the abuse limits
            // would count a whole test as one burst; the tests of the limits set them.
            mails_per_address_per_hour: 10_000,
            mails_per_address_per_day: 10_000,
            account_requests_per_ip_per_minute: 10_000,
            account_requests_per_ip_per_hour: 10_000,
            signup_rate_per_ip_per_minute: 10_000,
            ..Config::default()
        };
        adjust(&mut config);
        let clock = ManualClock::new(test_start());
        let app = Application::build(&config, Arc::new(clock.clone()), listener)
            .await
            .expect("application failed to start");
        let handle = app.handle.clone();
        let services = app.services.clone();
        // Mail leaves through the outbox; deliver it in the background as `serve` would. The
        // matcher is driven by the tests themselves (`services.run_wave_once()`), with the clock.
        restdose::workers::spawn(
            &services,
            restdose::workers::WorkerSet::DELIVERY_ONLY,
            std::time::Duration::from_millis(20),
        );
        tokio::spawn(app.server);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base,
            clock,
            client,
            smtp,
            db,
            data_dir,
            services,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Signs up through the API and returns the confirmation mail.
    pub async fn sign_up(&self, email: &str, postcode: &str) -> CapturedMail {
        let before = self.smtp.count_for(email);
        let response = self
            .post_json(
                "/api/v1/registrations",
                &serde_json::json!({ "email": email, "postcode": postcode }),
            )
            .await;
        assert_eq!(
            response.status(),
            202,
            "sign-up failed: {}",
            response.text().await.unwrap()
        );
        self.smtp.wait_for(email, before + 1).await.pop().unwrap()
    }

    /// Signs up and confirms; returns the self-service path `/manage/<token>`.
    pub async fn sign_up_confirmed(&self, email: &str, postcode: &str) -> String {
        let mail = self.sign_up(email, postcode).await;
        let confirm = mail.link_path("/confirm/");
        let response = self.client.post(self.url(&confirm)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        mail.link_path("/manage/")
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A unique address for one test, so tests can share the SMTP server.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}.{}@example.de", uuid::Uuid::new_v4().simple())
}
