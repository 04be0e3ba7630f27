//! The practice's account: registering (with e-mail verification), logging in and out, and the
//! password (change, forgotten, reset).

pub(super) mod login;
pub(super) mod password;
pub(super) mod register;
