//! Booking codes: what a person shows at the practice. 12 characters of Crockford base32
//! (60 random bits), shown as XXXX-XXXX-XXXX. Crockford's alphabet has no I, L, O or U, and its
//! decoding rules forgive the usual misreadings, which matters when codes are read out aloud.

use std::fmt;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_LEN: usize = 12;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BookingCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("A booking code has 12 letters and digits, e.g. 7K3M-Q9ZT-2W4H.")]
pub struct BookingCodeError;

impl BookingCode {
    /// From 60 random bits (the caller supplies them from the OS CSPRNG).
    pub fn from_random(bits: u64) -> BookingCode {
        let code = (0..CODE_LEN)
            .map(|i| ALPHABET[((bits >> (5 * i)) & 0x1f) as usize] as char)
            .collect();
        BookingCode(code)
    }

    /// Accepts what a person might type: any case, with or without hyphens and spaces,
    /// I/L read as 1 and O as 0.
    pub fn parse(input: &str) -> Result<BookingCode, BookingCodeError> {
        let mut code = String::with_capacity(CODE_LEN);
        for c in input.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')) {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            };
            if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
                return Err(BookingCodeError);
            }
            code.push(c);
        }
        if code.len() == CODE_LEN {
            Ok(BookingCode(code))
        } else {
            Err(BookingCodeError)
        }
    }

    /// The stored form, without separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// XXXX-XXXX-XXXX.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[0..4], &self.0[4..8], &self.0[8..12])
    }
}

impl fmt::Debug for BookingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BookingCode([REDACTED])")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forgives_case_separators_and_misreadings() {
        let code = BookingCode::parse("7k3m-q9zt-2w4h").unwrap();
        assert_eq!(code.as_str(), "7K3MQ9ZT2W4H");
        assert_eq!(code.display(), "7K3M-Q9ZT-2W4H");
        assert_eq!(
            BookingCode::parse("OIL0 0000 0000").unwrap().as_str(),
            "011000000000"
        );
        for bad in [
            "",
            "7K3M-Q9ZT",
            "7K3M-Q9ZT-2W4H-X",
            "UUUU-UUUU-UUUU",
            "ÄÄÄÄ-ÄÄÄÄ-ÄÄÄÄ",
        ] {
            assert!(BookingCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_generated_code_parses_back(bits in any::<u64>()) {
            let code = BookingCode::from_random(bits);
            prop_assert_eq!(BookingCode::parse(&code.display()).unwrap(), code.clone());
            prop_assert_eq!(code.as_str().len(), 12);
        }
    }
}
