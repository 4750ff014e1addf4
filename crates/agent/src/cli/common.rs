//! What every command shares: exit codes, the error that carries one, the
//! config loader, the runtime, JSON output, the journal and `--since`.

use std::path::Path;

use anyhow::anyhow;
use serde::Serialize;

use crate::config::{self, Config, ConfigError, Override};

/// Exit codes scripts can rely on.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The operation failed (details on stderr).
    pub const FAILED: u8 = 1;
    /// Wrong usage or a config that cannot be used (missing, wrong key or value).
    pub const USAGE: u8 = 2;
    /// The central could not be reached (network, DNS, TLS).
    pub const UNREACHABLE: u8 = 3;
    /// `doctor` found at least one problem.
    pub const DOCTOR: u8 = 4;
    /// `lojad run` stopped for an update: the service manager must start
    /// lojad again (the unit's `RestartForceExitStatus=`; docs/update.md).
    pub const RESTART: u8 = crate::release::swap::RESTART_EXIT;
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(exit::USAGE, error)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::FAILED,
            error,
        }
    }
}

/// What a command returns: its exit code, or a failure with one.
pub type CliResult = Result<u8, Failure>;

/// Loads the config with env overrides (and `extra`, e.g. `run`'s flags);
/// a missing or wrong config is a usage error (exit 2).
pub fn load_config(path: &Path, extra: &[Override]) -> Result<(Config, Vec<String>), Failure> {
    let mut overrides = config::env_overrides(std::env::vars());
    overrides.extend_from_slice(extra);
    Config::load_with(path, &overrides).map_err(|e| match e {
        ConfigError::Read { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => Failure::usage(anyhow!(
            "no config at {}: create one with `lojad init --central-url URL --store-id ID --store-token TOKEN`, \
             or give --config PATH (or LOJAD_CONFIG)",
            path.display()
        )),
        e => Failure::usage(e),
    })
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, e))
}

pub fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| Failure::new(exit::FAILED, e))?
    );
    Ok(())
}

/// A usage error naming the first of `names` that is not one of `known`.
pub fn known_entities(names: &[String], known: &[&loja_protocol::Entity]) -> Result<(), Failure> {
    match names
        .iter()
        .find(|n| !known.iter().any(|e| e.name == n.as_str()))
    {
        None => Ok(()),
        Some(n) => Err(Failure::usage(anyhow!(
            "unknown entity `{n}`; known: {}",
            known.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The journal, or a failure saying this data dir has not run yet.
pub fn open_journal(config: &Config) -> Result<loja_replica::Journal, Failure> {
    let dir = &config.store.data_dir;
    if !dir.join("journal.db").exists() {
        return Err(Failure::new(
            exit::FAILED,
            anyhow!(
                "{} has no journal.db: run `lojad run` or `lojad sync` first (or check store.data_dir)",
                dir.display()
            ),
        ));
    }
    loja_replica::Journal::open(dir).map_err(|e| Failure::new(exit::FAILED, e))
}

/// `30m`, `2h`, `7d`, `90s` ago, or `2026-11-01`, or RFC 3339 → RFC 3339.
pub fn parse_since(s: &str) -> Result<String, Failure> {
    let s = s.trim();
    if let Some(t) = loja_protocol::time::parse(s) {
        return Ok(loja_protocol::time::format(t));
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(loja_protocol::time::format(d.midnight().assume_utc()));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| bad_since(s))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return Err(bad_since(s)),
    };
    Ok(loja_protocol::time::format(
        time::OffsetDateTime::now_utc() - time::Duration::seconds(secs),
    ))
}

fn bad_since(s: &str) -> Failure {
    Failure::usage(anyhow!(
        "--since `{s}`: give a duration (30m, 2h, 7d) or a date (2026-11-01, RFC 3339)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("2026-11-01").unwrap(), "2026-11-01T00:00:00Z");
        assert_eq!(
            parse_since("2026-11-01T10:00:00Z").unwrap(),
            "2026-11-01T10:00:00Z"
        );
        assert!(parse_since("2h").unwrap() < loja_protocol::time::now_rfc3339());
        assert!(parse_since("soon").is_err());
    }
}
