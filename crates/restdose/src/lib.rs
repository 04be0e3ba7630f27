//! The `restdose` binary's library half: configuration, picking the storage backend from the
//! URL, loading keys, and wiring the services to the HTTP server. Only this crate and the tests
//! name a concrete database.

pub mod config;
mod keys;
pub mod keys_cli;
pub mod private_files;
pub mod simulate;
pub mod workers;

use anyhow::Context;
use restdose_core::{Links, Services};
use restdose_domain::Clock;
use restdose_domain::geo::{self, Coordinates};
use restdose_mail::{FileMailer, Mailer, SmtpMailer};
use restdose_store::Store;
use restdose_store_sql::{PgStore, SqliteStore};
use std::net::TcpListener;
use std::sync::Arc;

pub use config::Config;
pub use keys::load_or_create_keys;

/// Opens the database named by the URL's scheme and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let acquire_timeout = std::time::Duration::from_millis(config.database_acquire_timeout_ms);
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::connect_with_acquire_timeout(
                &url,
                config.database_max_connections,
                acquire_timeout,
            )
            .await
            .context("cannot open the SQLite database")?,
        )
    } else {
        Arc::new(
            PgStore::connect_with_acquire_timeout(
                &url,
                config.database_max_connections,
                acquire_timeout,
            )
            .await
            .context("cannot connect to PostgreSQL")?,
        )
    };
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

/// SMTP when configured, else `.eml` files in the outbox folder.
pub fn open_mailer(config: &Config) -> anyhow::Result<Arc<dyn Mailer>> {
    Ok(match config.smtp_url() {
        Some(url) => Arc::new(SmtpMailer::new(
            url,
            &config.mail_from,
            config.smtp_max_connections,
        )?),
        None => {
            let dir = config.outbox_dir();
            tracing::info!(dir = %dir.display(), "no SMTP server configured: mails are written as .eml files");
            Arc::new(FileMailer::new(&dir, &config.mail_from)?)
        }
    })
}

/// For the processes that deliver mail (`serve`, `matcher`): the `.eml` outbox on a public
/// (non-local) URL is refused unless `file_outbox_on_public_url` is set, and then warned about
/// loudly. Nobody receives those mails, and the files hold addresses and live links. Call it
/// before anything is created.
pub fn check_file_outbox(config: &Config) -> anyhow::Result<()> {
    if config.smtp_url().is_some() || config.public_url_is_local()? {
        return Ok(());
    }
    let dir = config.outbox_dir();
    let public = config.public_url()?;
    if !config.file_outbox_on_public_url {
        anyhow::bail!(
            "refusing to write mails as .eml files to {} with the public URL {public}: nobody \
             would receive them, and the files hold addresses and live links. Set smtp_url \
             (RESTDOSE_SMTP_URL) to a mail server, or set file_outbox_on_public_url = true \
             (RESTDOSE_FILE_OUTBOX_ON_PUBLIC_URL=true) if mails really should stay in files",
            dir.display()
        );
    }
    if config.log_format != "json" {
        eprintln!(
            "\n************************************************************************\n\
             WARNING: no smtp_url on the public URL {public}: every mail is written\n\
             as an .eml file to {} and sent to nobody\n\
             (file_outbox_on_public_url = true).\n\
             ************************************************************************\n",
            dir.display()
        );
    }
    tracing::warn!(
        dir = %dir.display(),
        public_url = %public,
        "no smtp_url on a public URL: mails are written as .eml files and sent to nobody (file_outbox_on_public_url)"
    );
    Ok(())
}

/// Builds every shared service from the configuration.
pub async fn build_services(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Services> {
    private_files::warn_if_open(config);
    let store = open_store(config).await?;
    let mailer = open_mailer(config)?;
    let keys = Arc::new(load_or_create_keys(config)?);
    let imported = store
        .postcodes(&config.country.to_ascii_uppercase())
        .await?;
    let imported_count = imported.len();
    let gazetteer = geo::for_country(
        &config.country,
        imported.into_iter().map(|row| {
            (
                row.postcode,
                Coordinates {
                    lat: row.lat,
                    lon: row.lon,
                },
            )
        }),
    );
    if gazetteer.is_empty() {
        anyhow::bail!(
            "no postcodes known for country {}: import them with `restdose geo import FILE`",
            config.country
        );
    }
    // The built-in German index is built once per process and shared; imported postcodes get
    // their own.
    let neighbours = if config.country.eq_ignore_ascii_case("DE") && imported_count == 0 {
        restdose_domain::matching::builtin_germany_neighbours()
    } else {
        Arc::new(restdose_domain::matching::NeighbourIndex::build(&gazetteer))
    };
    Ok(Services {
        store,
        mailer,
        keys,
        clock,
        gazetteer: Arc::new(gazetteer),
        links: Links::new(&config.public_url()?),
        policy: config.policy()?,
        neighbours,
        matcher: config.matcher_policy(),
        delivery: config.delivery_policy(),
        retention: config.retention_policy(),
        passwords: config.password_hashing(),
    })
}

/// Runs the purge (`purge_once`) every minute, forever. Failures are logged and retried on the
/// next tick: housekeeping must never take the service down.
pub async fn run_housekeeping(services: Services) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = services.purge_once().await {
            tracing::error!(error = %e, "purge failed; retrying in a minute");
        }
    }
}

/// A running service: bound port, the server future, and a handle to stop it.
pub struct Application {
    pub port: u16,
    /// The port of the separate `/metrics` listener, when `metrics_listen` is set.
    pub metrics_port: Option<u16>,
    pub server: actix_web::dev::Server,
    pub handle: actix_web::dev::ServerHandle,
    pub services: Services,
}

impl Application {
    /// Binds `listener` (port 0 in tests) and prepares the server; await `server` to run it.
    pub async fn build(
        config: &Config,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let services = build_services(config, clock).await?;
        let port = listener.local_addr()?.port();
        let options = restdose_web::WebOptions {
            max_body_bytes: config.max_body_bytes,
            secure_cookies: config.public_url()?.scheme() == "https",
            workers: config.http_workers,
            admission: config.admission()?,
            metrics_on_main: config.metrics_listen.is_none(),
        };
        let metrics_port = start_metrics_listener(config, &services, &options)?;
        let (server, handle) = restdose_web::start(listener, services.clone(), options)?;
        Ok(Application {
            port,
            metrics_port,
            server,
            handle,
            services,
        })
    }
}

/// When `metrics_listen` is set: binds it and serves `/metrics` there in the background (for
/// `serve` and for `matcher`, whose counters are otherwise invisible). Returns the bound port.
pub fn start_metrics_listener(
    config: &Config,
    services: &Services,
    options: &restdose_web::WebOptions,
) -> anyhow::Result<Option<u16>> {
    let Some(addr) = &config.metrics_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
    let port = listener.local_addr()?.port();
    let (server, _handle) =
        restdose_web::start_metrics(listener, services.clone(), options.clone())?;
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    tracing::info!(listen = %addr, "metrics are served on their own listener");
    Ok(Some(port))
}
