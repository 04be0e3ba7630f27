//! Secrets mailed in links: 256 random bits, base64url without padding (43 characters).
//! The database sees only SHA-256 of the secret, so a dump does not let anyone use a link.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

use crate::{CryptoError, random_bytes};

const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

#[derive(Clone)]
pub struct SecretToken(Zeroizing<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this link is not valid")]
pub struct TokenError;

impl SecretToken {
    pub fn generate() -> Result<SecretToken, CryptoError> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        random_bytes(raw.as_mut())?;
        Ok(SecretToken(Zeroizing::new(
            URL_SAFE_NO_PAD.encode(raw.as_ref()),
        )))
    }

    /// Accepts a token as it came back in a URL; refuses anything we could not have made, so
    /// garbage never reaches the database.
    pub fn parse(s: &str) -> Result<SecretToken, TokenError> {
        let ok = s.len() == TOKEN_CHARS
            && URL_SAFE_NO_PAD
                .decode(s)
                .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES);
        if ok {
            Ok(SecretToken(Zeroizing::new(s.to_owned())))
        } else {
            Err(TokenError)
        }
    }

    /// The text that goes into the link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken([REDACTED])")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let a = SecretToken::generate().unwrap();
        let b = SecretToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        let parsed = SecretToken::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_eq!(a.hash().len(), 32);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "abc", &"A".repeat(44), &"*".repeat(43), "' OR 1=1 --"] {
            assert!(SecretToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
