//! Harness for the end-to-end tests: starts the real binaries as processes on
//! loopback ports chosen at run time, and talks to them over HTTP.
//!
//! The helpers every test shares live here, once: [`lojad`] (the binary),
//! [`free_port`], [`run_lojad`] and [`config::ConfigBuilder`] (a store's
//! config, written by lojad's own `Config::write`).

pub mod central;
pub mod config;
pub mod postgres;
pub mod proxy;
pub mod scratch;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `e2e-lojad` binary (the real lojad's `main`): `$LOJA_E2E_LOJAD_BIN`,
/// else next to the test executable, where Cargo builds it before this
/// package's tests (see [`central::e2e_bin`]). Panics when it is not there.
pub fn lojad() -> PathBuf {
    central::e2e_bin("e2e-lojad", "LOJA_E2E_LOJAD_BIN").unwrap_or_else(|e| panic!("{e}"))
}

/// The `e2e-loja-demo` binary (loja-devtools' demo store, `loja-demo`'s
/// `main`): `$LOJA_E2E_DEMO_BIN`, else next to the test executable, like
/// [`lojad`]. Panics when it is not there.
pub fn loja_demo() -> PathBuf {
    central::e2e_bin("e2e-loja-demo", "LOJA_E2E_DEMO_BIN").unwrap_or_else(|e| panic!("{e}"))
}

/// A loopback TCP port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Runs `lojad --config CONFIG ARGS…` to its end (without `LOJAD_CONFIG`
/// from the environment) and returns its exit status and output.
pub fn run_lojad(config: &Path, args: &[&str]) -> Output {
    Command::new(lojad())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("LOJAD_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("run lojad {args:?}: {e}"))
}
