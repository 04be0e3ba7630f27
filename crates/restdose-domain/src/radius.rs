//! How far a person is willing to travel, and how far a practice looks.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RadiusKm(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The radius must be a whole number of kilometres from 1 to 50.")]
pub struct RadiusError;

impl RadiusKm {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 50;
    pub const DEFAULT: RadiusKm = RadiusKm(10);

    pub fn new(km: i64) -> Result<RadiusKm, RadiusError> {
        u16::try_from(km)
            .ok()
            .filter(|km| (Self::MIN..=Self::MAX).contains(km))
            .map(RadiusKm)
            .ok_or(RadiusError)
    }

    /// Parses form input; an empty field means the default.
    pub fn parse(input: &str) -> Result<RadiusKm, RadiusError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(Self::DEFAULT);
        }
        trimmed
            .parse::<i64>()
            .map_err(|_| RadiusError)
            .and_then(Self::new)
    }

    pub fn km(self) -> u16 {
        self.0
    }
}

impl Default for RadiusKm {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_to_fifty_and_defaults_to_ten() {
        assert_eq!(RadiusKm::new(1).unwrap().km(), 1);
        assert_eq!(RadiusKm::new(50).unwrap().km(), 50);
        assert_eq!(RadiusKm::parse("").unwrap().km(), 10);
        assert_eq!(RadiusKm::parse(" 25 ").unwrap().km(), 25);
        for bad in [0, 51, -1, 70000] {
            assert!(RadiusKm::new(bad).is_err());
        }
        for bad in ["ten", "1.5", "0"] {
            assert!(RadiusKm::parse(bad).is_err());
        }
    }
}
