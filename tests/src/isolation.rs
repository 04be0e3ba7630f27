//! Tests that need a process of their own inside the one integration binary.
//!
//! Some state is global per process: the `tracing` subscriber (and the `log` logger) can be
//! installed once, and then receives every event of every test running in the process. A test
//! that installs one (`logs`) therefore runs in a fresh copy of the test executable, started
//! with a filter that selects exactly that test; the copy runs the body, the parent asserts
//! that it ran exactly one test and that it passed, and shows its output.

use std::process::Command;

/// Set in the child process to the full name of the test it is started for.
pub const CHILD_ENV: &str = "RESTDOSE_TEST_ISOLATED";

/// The libtest name of a test function: `module_path!()` without the crate (the test binary),
/// then `::name`. Use as `test_name(module_path!(), "my_test")`.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{function}"),
        None => function.to_owned(),
    }
}

/// Runs `body` in a process of its own: in the parent, starts this test executable again for
/// exactly the test `name` (see [`test_name`]) and fails unless that one test passed; in that
/// child, runs `body`.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).is_ok_and(|running| running == name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("cannot tell where the test executable is");
    let output = Command::new(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {} for {name}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Captured by the test harness like the test's own output: shown when it fails.
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "{name} failed in its own process ({})",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name}: the child process did not run exactly this one test"
    );
}
