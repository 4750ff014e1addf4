//! Tests that need a tool installed outside Cargo (Chromium, schemathesis):
//! what they do when it is not there.
//!
//! In CI (`CI` set and not empty: `.ci/run` sets it) a missing tool fails the
//! test: CI installs every tool (`scripts/test` does), and a test that passes
//! without having run proves nothing. Anywhere else the test says why it
//! skipped and passes, so that a plain `cargo test --workspace` works on a
//! machine without the tool.

use std::io::Write;

/// Is this a CI run, where every external tool is required?
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// `test` cannot run: `why` (a tool is missing); `how` to get it. Fails the
/// test in CI; elsewhere prints one line saying so and returns, and the
/// caller returns (the test passes, skipped).
#[track_caller]
pub fn missing(test: &str, why: &str, how: &str) {
    if in_ci() {
        panic!("{test}: {why}, and CI is set, so it must run: {how}");
    }
    // Written to the process's stderr, not through eprintln!, which the test
    // harness captures and shows only for a failed test: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: {why} (set CI=1 to require it; to run it: {how})"
    );
}
