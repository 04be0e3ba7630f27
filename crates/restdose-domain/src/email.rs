//! E-mail addresses as the service accepts them.
//!
//! We accept the everyday form `local@domain`: an ASCII dot-atom local part (quoted local parts and
//! SMTPUTF8 addresses are refused because many mail servers on the way would bounce them) and a
//! domain that may be internationalised; it is stored in its punycode (A-label) form so that every
//! later comparison and every mail header is plain ASCII.

use std::fmt;

/// Longest address SMTP can carry (RFC 5321 path limit minus the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part (RFC 5321 section 4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;

/// Characters allowed in a dot-atom besides letters and digits (RFC 5322 `atext`).
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Please enter an e-mail address.")]
    Empty,
    #[error("The e-mail address is too long (at most 254 characters).")]
    TooLong,
    #[error("The part before the @ is too long (at most 64 characters).")]
    LocalTooLong,
    #[error("This is not a valid e-mail address.")]
    Invalid,
}

/// A syntactically valid address: local part as typed, domain lower-cased in punycode.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::Invalid)?;
        if local.len() > MAX_LOCAL_LEN {
            return Err(EmailError::LocalTooLong);
        }
        if !is_dot_atom(local) {
            return Err(EmailError::Invalid);
        }
        let domain = ascii_domain(domain)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        Ok(Email(address))
    }

    /// Re-creates an address that was validated before (decrypted from storage).
    pub fn from_trusted(address: String) -> Email {
        Email(address)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for the blind index: two spellings that reach the same person must
    /// collide, so case is folded in the local part too (no provider we know of is case-sensitive).
    pub fn normalised(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// Serialised only into encrypted payloads (the mail outbox); read back through `parse`.
impl serde::Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Email, D::Error> {
        let raw = String::deserialize(d)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Never print an address by accident: logs and panics must not carry personal data.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email([REDACTED])")
    }
}

fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        })
}

fn ascii_domain(domain: &str) -> Result<String, EmailError> {
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
        return Err(EmailError::Invalid);
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| EmailError::Invalid)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(EmailError::Invalid);
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) {
        return Err(EmailError::Invalid);
    }
    // A top-level domain is never all digits; this also refuses bare IP addresses.
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(EmailError::Invalid);
    }
    Ok(ascii.to_ascii_lowercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_an_ordinary_address_and_trims_it() {
        let e = Email::parse("  Anna.Schmidt+impf@Example.DE ").unwrap();
        assert_eq!(e.as_str(), "Anna.Schmidt+impf@example.de");
        assert_eq!(e.normalised(), "anna.schmidt+impf@example.de");
    }

    #[test]
    fn converts_an_idn_domain_to_punycode() {
        let e = Email::parse("max@müller.de").unwrap();
        assert_eq!(e.as_str(), "max@xn--mller-kva.de");
    }

    #[test]
    fn refuses_what_mail_servers_would_bounce() {
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.de",
            "a@",
            "a@localhost",
            "a@127.0.0.1",
            "jürgen@example.de",
            "a..b@example.de",
            ".a@example.de",
            "a b@example.de",
            "a@exa mple.de",
            "a@-example.de",
            "'; DROP TABLE registrants;--@x",
            "\"quoted\"@example.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn enforces_length_limits() {
        let local = "a".repeat(65);
        assert_eq!(
            Email::parse(&format!("{local}@example.de")),
            Err(EmailError::LocalTooLong)
        );
        let long = format!(
            "{}@{}.{}.{}.dex",
            "a".repeat(64),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(63)
        );
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        let too_long = format!("{long}x");
        assert_eq!(Email::parse(&too_long), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_output_hides_the_address() {
        let e = Email::parse("secret@example.de").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                let again = Email::parse(e.as_str()).unwrap();
                prop_assert_eq!(again, e);
            }
        }
    }
}
