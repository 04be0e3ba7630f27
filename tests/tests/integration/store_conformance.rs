//! Runs the shared store conformance suite (`restdose_store::conformance`, compiled only with
//! its `conformance` feature, which this crate enables) against both backends, each case in a
//! fresh database: `store_conformance::sqlite::<case>` on a new temporary file,
//! `store_conformance::postgres::<case>` in a new database on the server named by
//! `RESTDOSE_TEST_POSTGRES_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.
//!
//! The PostgreSQL tests fail, never skip, when the server cannot be reached.
//!
//! Each case is named once, as its function. The list of cases is generated: the crate's build
//! script (`tests/build.rs`) reads the conformance sources (`restdose-store/src/conformance.rs`
//! and `conformance/*.rs`), takes every top-level `pub async fn` as a case, and writes
//! `conformance_tests! { <case>, ... }` into `OUT_DIR`, included below. (A build script rather
//! than a macro around the cases, so the cases stay plain functions; and it runs again whenever
//! a conformance source changes.) `every_conformance_source_file_has_cases` guards the
//! scanner itself: a source file without cases means it stopped finding them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restdose_store::Store;

// --- fresh databases (helpers to be merged into the test support crate) -----------------------

const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated SQLite store on a new file in a temporary directory, removed on drop.
struct FreshSqlite {
    store: restdose_store_sql::SqliteStore,
    _dir: tempfile::TempDir,
}

async fn fresh_sqlite() -> FreshSqlite {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("restdose.db").display());
    let store = restdose_store_sql::SqliteStore::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("cannot open SQLite database {url}: {e:?}"));
    store.migrate().await.expect("SQLite migrations failed");
    FreshSqlite { store, _dir: dir }
}

fn postgres_admin_url() -> String {
    std::env::var("RESTDOSE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

/// The URL without its password, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A new, migrated PostgreSQL database `restdose_t_<uuid>`. Call [`FreshPostgres::drop_database`] when
/// done.
struct FreshPostgres {
    store: restdose_store_sql::PgStore,
    admin_url: url::Url,
    name: String,
}

async fn admin_connection(admin_url: &url::Url) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(admin_url.as_str())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL conformance tests need a server: cannot connect to {} ({e}). Start \
                 PostgreSQL or point RESTDOSE_TEST_POSTGRES_URL at an account that may create \
                 databases.",
                redacted(admin_url)
            )
        })
}

async fn fresh_postgres() -> FreshPostgres {
    use sqlx::Connection;

    let admin_url = url::Url::parse(&postgres_admin_url())
        .expect("RESTDOSE_TEST_POSTGRES_URL is not a valid URL");
    let name = format!("restdose_t_{}", uuid::Uuid::new_v4().simple());

    let mut admin = admin_connection(&admin_url).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    admin.close().await.ok();

    let mut url = admin_url.clone();
    url.set_path(&format!("/{name}"));
    let store = restdose_store_sql::PgStore::connect(url.as_str(), 4)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e:?}", redacted(&url)));
    store.migrate().await.expect("PostgreSQL migrations failed");
    FreshPostgres {
        store,
        admin_url,
        name,
    }
}

impl FreshPostgres {
    async fn drop_database(self) {
        self.store.pool().close().await;
        let mut admin = admin_connection(&self.admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot drop test database {}: {e}", self.name));
    }
}

// --- one test per case and backend ------------------------------------------------------------

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let db = fresh_sqlite().await;
                    restdose_store::conformance::$case(&db.store).await;
                    db.store.pool().close().await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let db = fresh_postgres().await;
                    // Run the case on its own task so that a failing assertion still lets us
                    // drop the database before reporting it.
                    let store = db.store.clone();
                    let outcome = tokio::spawn(async move {
                        restdose_store::conformance::$case(&store).await;
                    })
                    .await;
                    db.drop_database().await;
                    if let Err(e) = outcome {
                        match e.try_into_panic() {
                            Ok(panic) => std::panic::resume_unwind(panic),
                            Err(e) => panic!("conformance case did not finish: {e}"),
                        }
                    }
                }
            )*
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/conformance_cases.rs"));

#[test]
fn every_conformance_source_file_has_cases() {
    let mut all: Vec<&str> = Vec::new();
    for (file, cases) in CASES_BY_FILE {
        assert!(
            !cases.is_empty(),
            "no conformance case found in {file}: tests/build.rs no longer finds them"
        );
        all.extend(*cases);
    }
    assert!(
        CASES_BY_FILE
            .iter()
            .any(|(file, _)| *file == "conformance.rs")
            && CASES_BY_FILE.len() > 1,
        "tests/build.rs did not read conformance.rs and conformance/: {CASES_BY_FILE:?}"
    );
    assert!(all.contains(&"backend_answers_ping"));
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a case is listed twice");
}
