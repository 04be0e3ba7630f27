//! The service under simulation: a fresh database on the chosen backend, the real `Services`
//! with the default policies, a manual clock and the recording mailer.

use anyhow::Context;
use restdose_core::{Links, Services};
use restdose_domain::ManualClock;
use sqlx::Connection;
use std::sync::Arc;

use super::mailbox::RecordingMailer;
use crate::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database that exists for one run: a temporary SQLite file, or a PostgreSQL database
/// created on the server and dropped by `close`.
pub struct Database {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Database {
    pub async fn create(backend: Backend, admin_url: &str) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
                let url = format!("sqlite://{}", dir.path().join("simulation.db").display());
                Ok(Database {
                    url,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let admin = url::Url::parse(admin_url)
                    .with_context(|| format!("--database-url is not a URL: {admin_url}"))?;
                let name = format!("restdose_sim_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin.as_str())
                    .await
                    .context("cannot connect to PostgreSQL with --database-url")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .context("cannot create the simulation database")?;
                conn.close().await.ok();
                let mut url = admin.clone();
                url.set_path(&format!("/{name}"));
                Ok(Database {
                    url: url.to_string(),
                    _dir: None,
                    pg: Some((admin.to_string(), name)),
                })
            }
        }
    }

    /// Removes the database (the SQLite folder goes when this is dropped).
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .context("cannot connect to PostgreSQL to drop the simulation database")?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .context("cannot drop the simulation database")?;
            conn.close().await.ok();
        }
        Ok(())
    }
}

/// The real services on `database_url`, with the clock and mailer of the simulation.
pub async fn services(
    database_url: &str,
    clock: &ManualClock,
    mailer: &RecordingMailer,
) -> anyhow::Result<Services> {
    let config = Config {
        database_url: Some(database_url.to_owned()),
        database_max_connections: 4,
        public_url: Some("https://restdose.sim.example".to_owned()),
        ..Config::default()
    };
    let store = crate::open_store(&config).await?;
    Ok(Services {
        store,
        mailer: Arc::new(mailer.clone()),
        keys: Arc::new(restdose_crypto::Keyring::generate()?),
        clock: Arc::new(clock.clone()),
        gazetteer: Arc::new(restdose_domain::geo::builtin_germany().clone()),
        links: Links::new(&config.public_url()?),
        policy: config.policy()?,
        neighbours: restdose_domain::matching::builtin_germany_neighbours(),
        matcher: config.matcher_policy(),
        delivery: config.delivery_policy(),
        retention: config.retention_policy(),
        passwords: config.password_hashing(),
    })
}

/// The most invitations one person may get in 24 hours: the matcher's own cap.
pub fn daily_invitation_cap(services: &Services) -> u32 {
    services.matcher.max_invitations_per_day
}
