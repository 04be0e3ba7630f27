//! The integration suite: one test binary (`cargo test -p restdose-tests --test integration`),
//! one module per area. Each module's tests are named `<module>::…`, e.g.
//! `signup::sqlite::database_dump_holds_no_plaintext_address`, so `--test integration signup::`
//! runs one area and `--skip browser::` leaves the browser out (plain `--skip browser` would
//! also skip two `portal` tests whose names contain "browser").
//!
//! Everything the modules share is in the support library (`tests/src/`, crate
//! `restdose_tests`). The tests of all areas run in this one process, interleaved: they use
//! their own databases, data directories, ports and mail addresses, and the few things that
//! are process-wide are handled where they are used — the Prometheus recorder's counters are
//! asserted as "at least" (or under a lock, `operations`), and the log capture of `logs`
//! installs its global subscriber in a child process of its own
//! (`restdose_tests::isolation`).

mod abuse;
mod admin;
mod admission;
mod authorization;
mod browser;
mod cluster;
mod lifecycle;
mod logs;
mod matcher;
mod offers_api;
mod operations;
mod passwords;
mod portal;
mod processes;
mod security_headers;
mod signup;
mod simulate;
mod statistics;
mod store_conformance;
