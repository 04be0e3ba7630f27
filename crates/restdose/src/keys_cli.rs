//! `restdose keys …`: adding a key, re-encrypting everything under it, retiring old keys.
//!
//! Rotation without downtime: `keys add` writes a new current key into the key file; restart
//! the services so new writes use it; `keys rotate` re-encrypts the rest in batches while they
//! run; `keys retire` drops the old keys once nothing needs them.

use anyhow::{Context, bail};
use clap::Subcommand;
use restdose_crypto::Keyring;
use restdose_domain::SystemClock;
use restdose_store::EncryptedColumn;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::Config;

#[derive(Subcommand)]
pub enum KeysAction {
    /// Print a new key file (32-byte AES-256-GCM key id 1 and a blind-index key) to stdout.
    Generate,
    /// Add a fresh encryption key to the key file and make it current (older keys stay for
    /// reading). Restart the services afterwards, then run `keys rotate`.
    Add,
    /// Re-encrypt every stored ciphertext under the current key, in batches, while the service
    /// runs.
    Rotate {
        /// Rows per table and step.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// Drop every key but the current one from the key file; refused while rows still need
    /// an old key.
    Retire,
    /// Show how many stored ciphertexts each key protects.
    Status,
}

pub async fn run(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    if config.keys.is_some() && matches!(action, KeysAction::Add | KeysAction::Retire) {
        bail!(
            "`keys add` and `keys retire` edit a key file, but the keys come from RESTDOSE_KEYS: \
             edit them where they are kept (or point RESTDOSE_KEYS_FILE at a file instead)"
        );
    }
    match action {
        KeysAction::Generate => {
            print!("{}", Keyring::generate()?.to_toml());
            Ok(())
        }
        KeysAction::Add => {
            let path = config.keys_path();
            let mut ring = read(&path)?;
            let id = ring.add_key()?;
            write(&path, &ring)?;
            println!(
                "key {id} added to {} and made current; restart the services, then run `restdose keys rotate`",
                path.display()
            );
            Ok(())
        }
        KeysAction::Rotate { batch } => {
            let services = crate::build_services(config, Arc::new(SystemClock)).await?;
            let mut total = 0;
            // Rows skipped because they changed meanwhile are taken again by the next step;
            // a bounded number of steps without progress ends the run.
            let mut idle_steps = 0;
            loop {
                let report = services.rotate_keys_once(batch.max(1)).await?;
                total += report.reencrypted;
                if report.reencrypted == 0 && report.skipped == 0 {
                    break;
                }
                idle_steps = if report.reencrypted == 0 {
                    idle_steps + 1
                } else {
                    0
                };
                if idle_steps >= 10 {
                    bail!("rotation makes no progress: rows keep changing; run it again later");
                }
            }
            println!(
                "re-encrypted {total} ciphertext(s) under key {}",
                services.keys.current_key_id()
            );
            print_status(&services).await
        }
        KeysAction::Retire => {
            let path = config.keys_path();
            let services = crate::build_services(config, Arc::new(SystemClock)).await?;
            let current = services.keys.current_key_id();
            for (column, counts) in services.ciphertexts_by_key().await? {
                if let Some((id, n)) = counts.iter().find(|(id, n)| *id != current && *n > 0) {
                    bail!(
                        "{n} row(s) of {} still use key {id}: run `restdose keys rotate` first",
                        name(column)
                    );
                }
            }
            let mut ring = read(&path)?;
            ring.retire_old_keys();
            write(&path, &ring)?;
            println!("only key {current} is left in {}", path.display());
            Ok(())
        }
        KeysAction::Status => {
            let services = crate::build_services(config, Arc::new(SystemClock)).await?;
            print_status(&services).await
        }
    }
}

fn name(column: EncryptedColumn) -> &'static str {
    match column {
        EncryptedColumn::RegistrantEmail => "registrants",
        EncryptedColumn::OutboxPayload => "outbox",
    }
}

async fn print_status(services: &restdose_core::Services) -> anyhow::Result<()> {
    println!(
        "current key: {} (keys held: {:?})",
        services.keys.current_key_id(),
        services.keys.key_ids()
    );
    for (column, counts) in services.ciphertexts_by_key().await? {
        let counts: Vec<String> = counts
            .iter()
            .map(|(id, n)| format!("key {id}: {n}"))
            .collect();
        let shown = if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        };
        println!("{}: {shown}", name(column));
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Keyring> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    Keyring::from_toml(&text).with_context(|| format!("key file {}", path.display()))
}

/// Writes the key file atomically (a new file renamed over the old), readable by the owner only.
fn write(path: &Path, ring: &Keyring) -> anyhow::Result<()> {
    let tmp = path.with_extension("toml.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // `mode` applies only to a file this call creates: a leftover from an interrupted run
    // keeps its own, so set it here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(ring.to_toml().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
