//! Loading the keyring, or creating development keys when none exist.

use anyhow::Context;
use restdose_crypto::Keyring;
use std::io::Write;

use crate::Config;

/// Reads the configured key file. When no key file was configured and the default one is
/// missing, generates one and warns loudly: fine on a laptop, never in production.
pub fn load_or_create_keys(config: &Config) -> anyhow::Result<Keyring> {
    if let Some(inline) = &config.keys {
        use secrecy::ExposeSecret;
        return Keyring::from_toml(inline.expose_secret()).context("RESTDOSE_KEYS / keys");
    }
    let path = config.keys_path();
    // Development keys sit next to the data they protect; on a public address that is a
    // production set-up with the key under the doormat.
    if config.keys_file.is_none() && !config.public_url_is_local()? && !config.demo {
        // (Keys given inline returned above.)
        anyhow::bail!(
            "refusing to use development keys ({}) with the public URL {}: create keys with \
             `restdose keys generate > /etc/restdose/keys.toml`, set RESTDOSE_KEYS_FILE, or set \
             RESTDOSE_DEMO=true if this really is a demo",
            path.display(),
            config.public_url()?
        );
    }
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        return Keyring::from_toml(&text).with_context(|| format!("key file {}", path.display()));
    }
    if config.keys_file.is_some() {
        anyhow::bail!(
            "key file {} does not exist (create one with `restdose keys generate`)",
            path.display()
        );
    }
    let ring = Keyring::generate()?;
    if let Some(dir) = path.parent() {
        crate::private_files::create_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(&path, ring.to_toml().as_bytes())
        .with_context(|| format!("cannot write development keys to {}", path.display()))?;
    let banner = format!(
        "\n************************************************************************\n\
         WARNING: generated DEVELOPMENT encryption keys at {}.\n\
         Anyone with this file can read every stored address. For production,\n\
         create keys with `restdose keys generate`, store them safely and set\n\
         RESTDOSE_KEYS_FILE.\n\
         ************************************************************************\n",
        path.display()
    );
    eprintln!("{banner}");
    tracing::warn!(path = %path.display(), "generated development encryption keys");
    Ok(ring)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
