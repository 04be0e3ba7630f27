//! restdose domain: the types and rules of the vaccine-dose waitlist (addresses, postcodes,
//! distances, radius, languages, time).
//!
//! This crate does no I/O (no files, network or database); data it needs,
//! such as the German postcode gazetteer, is embedded at compile time.

pub mod booking_code;
pub mod clock;
pub mod email;
pub mod geo;
pub mod lang;
pub mod matching;
pub mod postcode;
pub mod radius;
pub mod statistics;

pub use booking_code::{BookingCode, BookingCodeError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{Email, EmailError};
pub use lang::Lang;
pub use postcode::{Postcode, PostcodeError};
pub use radius::{RadiusError, RadiusKm};
