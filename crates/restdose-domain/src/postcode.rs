//! Postcodes as entered by people on the waitlist.
//!
//! A [`Postcode`] is only ever created for a code that has the right shape
//! for the country *and* exists in the gazetteer, so every stored postcode
//! can be turned into coordinates for distance rules.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::geo::Gazetteer;
pub use crate::geo::normalise;

/// A validated, normalised postcode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Postcode(String);

/// Why input is not accepted as a postcode; messages are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PostcodeError {
    /// Nothing but whitespace was entered.
    #[error("Please enter a postcode.")]
    Empty,
    /// Wrong shape for the country (e.g. not five digits in Germany).
    #[error("This is not a valid postcode.")]
    Invalid,
    /// Well-formed but not in the gazetteer.
    #[error("This postcode is not known.")]
    Unknown,
}

impl Postcode {
    /// Validates `input` against the gazetteer's country format and contents.
    pub fn parse(input: &str, gazetteer: &Gazetteer) -> Result<Postcode, PostcodeError> {
        let code = normalise(input);
        if code.is_empty() {
            return Err(PostcodeError::Empty);
        }
        if !well_formed(gazetteer.country(), &code) {
            return Err(PostcodeError::Invalid);
        }
        if gazetteer.lookup(&code).is_none() {
            return Err(PostcodeError::Unknown);
        }
        Ok(Postcode(code))
    }

    /// Wraps a value that was validated before, e.g. read back from the
    /// database; no checks, so never use it for user input.
    pub fn from_trusted(code: String) -> Postcode {
        Postcode(code)
    }

    /// The normalised code, e.g. `"10115"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first two characters; for Germany the postal area ("10" = Berlin),
    /// coarse enough for anonymous statistics.
    pub fn area(&self) -> &str {
        area(&self.0)
    }
}

/// The postal area of a stored postcode (see [`Postcode::area`]): what an offer learns its
/// acceptance from and what the anonymous statistics count by.
pub fn area(code: &str) -> &str {
    match code.char_indices().nth(2) {
        Some((end, _)) => &code[..end],
        None => code,
    }
}

impl PartialEq<&str> for Postcode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Germany: exactly five digits. Elsewhere formats vary too much to check
/// precisely, so only a loose shape is enforced and the gazetteer decides.
fn well_formed(country: &str, code: &str) -> bool {
    if country == "DE" {
        code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit())
    } else {
        (1..=10).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::geo::{Coordinates, builtin_germany};

    #[test]
    fn german_postcodes() {
        let de = builtin_germany();
        let berlin = Postcode::parse(" 10115 ", de).unwrap();
        assert_eq!(berlin.as_str(), "10115");
        assert_eq!(berlin.to_string(), "10115");
        assert_eq!(berlin.area(), "10");

        assert_eq!(Postcode::parse("1234", de), Err(PostcodeError::Invalid));
        assert_eq!(Postcode::parse("ABCDE", de), Err(PostcodeError::Invalid));
        assert_eq!(Postcode::parse("101 15", de), Err(PostcodeError::Invalid));
        assert_eq!(
            Postcode::parse("１０１１５", de),
            Err(PostcodeError::Invalid)
        );
        assert_eq!(Postcode::parse("00000", de), Err(PostcodeError::Unknown));
        assert_eq!(Postcode::parse("", de), Err(PostcodeError::Empty));
        assert_eq!(Postcode::parse(" \t ", de), Err(PostcodeError::Empty));
    }

    #[test]
    fn other_countries() {
        let mut gb = Gazetteer::new("GB");
        let here = Coordinates {
            lat: 51.5,
            lon: -0.14,
        };
        gb.insert("SW1A 1AA".to_owned(), here);

        let code = Postcode::parse("  sw1a \t 1aa ", &gb).unwrap();
        assert_eq!(code.as_str(), "SW1A 1AA");
        assert_eq!(code.area(), "SW");
        assert_eq!(
            Postcode::parse("SW1A 1AB", &gb),
            Err(PostcodeError::Unknown)
        );
        assert_eq!(
            Postcode::parse("SW1A_1AA", &gb),
            Err(PostcodeError::Invalid)
        );
        assert_eq!(
            Postcode::parse("12345678901", &gb),
            Err(PostcodeError::Invalid)
        );
    }

    #[test]
    fn trusted_values_and_normalise() {
        let code = Postcode::from_trusted("1".to_owned());
        assert_eq!(code.area(), "1");
        assert_eq!(normalise(" a  b\tc "), "A B C");
    }
}
