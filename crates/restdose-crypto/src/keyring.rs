//! Versioned encryption keys and the separate blind-index key.
//!
//! Every ciphertext carries the id of the key that made it, so keys can rotate: new writes use
//! the current key, old rows stay readable until re-encrypted. The blind-index key is separate
//! because it cannot rotate without recomputing every index.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

use crate::{CryptoError, random_bytes};

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

type KeyBytes = Zeroizing<[u8; KEY_BYTES]>;

pub struct Keyring {
    current: i32,
    encryption: BTreeMap<i32, KeyBytes>,
    blind_index: KeyBytes,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file is not valid TOML: {0}")]
    Syntax(String),
    #[error("key {0} is not 32 bytes of base64")]
    BadKey(String),
    #[error("current_key_id {0} has no key in [encryption_keys]")]
    MissingCurrent(i32),
    #[error("{0}")]
    Random(#[from] CryptoError),
}

/// The on-disk form (`keys.toml`). Keys are base64 of 32 random bytes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    current_key_id: i32,
    blind_index_key: String,
    encryption_keys: BTreeMap<String, String>,
}

impl Keyring {
    /// A fresh keyring with key id 1, from the OS CSPRNG.
    pub fn generate() -> Result<Keyring, CryptoError> {
        let mut enc = Zeroizing::new([0u8; KEY_BYTES]);
        random_bytes(enc.as_mut())?;
        let mut blind = Zeroizing::new([0u8; KEY_BYTES]);
        random_bytes(blind.as_mut())?;
        Ok(Keyring {
            current: 1,
            encryption: BTreeMap::from([(1, enc)]),
            blind_index: blind,
        })
    }

    pub fn from_toml(text: &str) -> Result<Keyring, KeyFileError> {
        let file: KeyFile =
            toml::from_str(text).map_err(|e| KeyFileError::Syntax(e.message().to_owned()))?;
        let mut encryption = BTreeMap::new();
        for (id, key) in &file.encryption_keys {
            let id: i32 = id.parse().map_err(|_| KeyFileError::BadKey(id.clone()))?;
            encryption.insert(
                id,
                decode_key(key).ok_or_else(|| KeyFileError::BadKey(id.to_string()))?,
            );
        }
        if !encryption.contains_key(&file.current_key_id) {
            return Err(KeyFileError::MissingCurrent(file.current_key_id));
        }
        let blind_index = decode_key(&file.blind_index_key)
            .ok_or_else(|| KeyFileError::BadKey("blind_index_key".to_owned()))?;
        Ok(Keyring {
            current: file.current_key_id,
            encryption,
            blind_index,
        })
    }

    pub fn to_toml(&self) -> String {
        let file = KeyFile {
            current_key_id: self.current,
            blind_index_key: STANDARD.encode(self.blind_index.as_ref()),
            encryption_keys: self
                .encryption
                .iter()
                .map(|(id, key)| (id.to_string(), STANDARD.encode(key.as_ref())))
                .collect(),
        };
        let body = toml::to_string(&file).unwrap_or_default();
        format!(
            "# restdose keys: keep this file secret and back it up apart from the database.\n\
             # Losing it makes every stored address unreadable.\n{body}"
        )
    }

    pub fn current_key_id(&self) -> i32 {
        self.current
    }

    /// The ids of every encryption key held.
    pub fn key_ids(&self) -> Vec<i32> {
        self.encryption.keys().copied().collect()
    }

    /// Adds a fresh key with the next id and makes it current; older keys stay for reading
    /// until `restdose keys rotate` has re-encrypted everything.
    pub fn add_key(&mut self) -> Result<i32, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        random_bytes(key.as_mut())?;
        let id = self.encryption.keys().max().map_or(1, |max| max + 1);
        self.encryption.insert(id, key);
        self.current = id;
        Ok(id)
    }

    /// Drops every key but the current one (after a completed rotation).
    pub fn retire_old_keys(&mut self) {
        let current = self.current;
        self.encryption.retain(|id, _| *id == current);
    }

    /// Encrypts under the current key. `aad` binds the ciphertext to its row (the row id), so
    /// a ciphertext copied into another row does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<(i32, Vec<u8>), CryptoError> {
        let key = self
            .encryption
            .get(&self.current)
            .ok_or(CryptoError::UnknownKey(self.current))?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|_| CryptoError::UnknownKey(self.current))?;
        let mut nonce = [0u8; NONCE_BYTES];
        random_bytes(&mut nonce)?;
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok((self.current, out))
    }

    pub fn decrypt(
        &self,
        key_id: i32,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .encryption
            .get(&key_id)
            .ok_or(CryptoError::UnknownKey(key_id))?;
        let cipher =
            Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| CryptoError::UnknownKey(key_id))?;
        if blob.len() < NONCE_BYTES {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// HMAC-SHA256 of a normalised value: equal inputs give equal outputs, and without the key
    /// nobody can test a guessed address against a database dump.
    pub fn blind_index(&self, normalised: &str) -> Vec<u8> {
        // A 32-byte key is always a valid HMAC key; the fallback is unreachable.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.blind_index.as_ref()) {
            Ok(mut mac) => {
                mac.update(normalised.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
}

fn decode_key(b64: &str) -> Option<KeyBytes> {
    let bytes = Zeroizing::new(STANDARD.decode(b64.trim()).ok()?);
    let arr: [u8; KEY_BYTES] = bytes.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.encryption.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_the_row() {
        let ring = Keyring::generate().unwrap();
        let (id, blob) = ring.encrypt(b"anna@example.de", b"row-1").unwrap();
        assert_eq!(id, 1);
        assert!(!blob.windows(4).any(|w| w == b"anna"));
        assert_eq!(
            ring.decrypt(id, &blob, b"row-1").unwrap().as_slice(),
            b"anna@example.de"
        );
        assert!(ring.decrypt(id, &blob, b"row-2").is_err());
        assert!(ring.decrypt(2, &blob, b"row-1").is_err());
        assert!(ring.decrypt(id, &blob[..5], b"row-1").is_err());
    }

    #[test]
    fn nonces_differ_between_encryptions() {
        let ring = Keyring::generate().unwrap();
        let (_, a) = ring.encrypt(b"x", b"").unwrap();
        let (_, b) = ring.encrypt(b"x", b"").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn key_file_round_trips() {
        let ring = Keyring::generate().unwrap();
        let again = Keyring::from_toml(&ring.to_toml()).unwrap();
        let (id, blob) = ring.encrypt(b"x", b"a").unwrap();
        assert_eq!(again.decrypt(id, &blob, b"a").unwrap().as_slice(), b"x");
        assert_eq!(ring.blind_index("x"), again.blind_index("x"));
        assert_ne!(ring.blind_index("x"), ring.blind_index("y"));
        assert!(!format!("{ring:?}").contains(&ring.to_toml()[100..120]));
    }

    #[test]
    fn a_new_key_becomes_current_and_old_ones_still_read_until_retired() {
        let mut ring = Keyring::generate().unwrap();
        let (old_id, old) = ring.encrypt(b"x", b"r").unwrap();
        assert_eq!(ring.add_key().unwrap(), 2);
        let (new_id, new) = ring.encrypt(b"y", b"r").unwrap();
        assert_eq!((old_id, new_id), (1, 2));
        assert_eq!(ring.decrypt(1, &old, b"r").unwrap().as_slice(), b"x");
        let index_before = ring.blind_index("a");
        ring.retire_old_keys();
        assert_eq!(ring.key_ids(), vec![2]);
        assert!(ring.decrypt(1, &old, b"r").is_err());
        assert_eq!(ring.decrypt(2, &new, b"r").unwrap().as_slice(), b"y");
        assert_eq!(
            ring.blind_index("a"),
            index_before,
            "the blind-index key does not rotate"
        );
        let reloaded = Keyring::from_toml(&ring.to_toml()).unwrap();
        assert_eq!(reloaded.current_key_id(), 2);
    }

    #[test]
    fn bad_key_files_are_refused() {
        assert!(Keyring::from_toml("nonsense").is_err());
        assert!(matches!(
            Keyring::from_toml("current_key_id = 2\nblind_index_key = \"\"\n[encryption_keys]\n"),
            Err(KeyFileError::MissingCurrent(2))
        ));
    }
}
