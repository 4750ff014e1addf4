//! Logs: tracing to stdout (journald-friendly: no ANSI colours unless stdout is
//! a terminal, no timestamps of our own under systemd since the journal
//! stamps each line) and to daily rolling files in `DATA_DIR/logs` kept
//! `log.keep_days` days.
//!
//! Secrets never reach a log: the config's tokens are only ever printed
//! through [`crate::config::Config::masked`], and no code logs a request's
//! Authorization header.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// File name prefix of the rolling files: `lojad.log.2026-11-26`.
pub const FILE_PREFIX: &str = "lojad.log";

/// Keeps the file writer alive: logs are flushed when it drops (at the end
/// of `main`, after the daemon's graceful shutdown).
pub struct LogGuard {
    _file: Option<WorkerGuard>,
    _pruner: Option<std::thread::JoinHandle<()>>,
}

/// The directory of the rolling log files.
pub fn log_dir(config: &Config) -> PathBuf {
    config.store.data_dir.join("logs")
}

/// Installs the global subscriber for the daemon: stdout plus rolling
/// files. When the log dir cannot be created, logs go to stdout only (with
/// a warning) rather than stopping the store. `RUST_LOG` overrides
/// `log.level`.
pub fn init_daemon(config: &Config) -> LogGuard {
    let dir = log_dir(config);
    let filter = || {
        EnvFilter::try_from_env("RUST_LOG")
            .or_else(|_| EnvFilter::try_new(&config.log.level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let stdout = stdout_layer();
    let file = match std::fs::create_dir_all(&dir) {
        Ok(()) => {
            let _ = prune(&dir, config.log.keep_days);
            tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .max_log_files(config.log.keep_days.max(1) as usize)
                .build(&dir)
                .ok()
        }
        Err(_) => None,
    };
    let (file_layer, guard) = match file {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer);
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let has_file = file_layer.is_some();
    let _ = tracing_subscriber::registry()
        .with(stdout.with_filter_boxed(filter()))
        .with(file_layer.map(|l| tracing_subscriber::Layer::with_filter(l, filter())))
        .try_init();
    if !has_file {
        tracing::warn!(dir = %dir.display(), "cannot create the log dir: logging to stdout only");
    }
    // Retention also runs daily while the daemon lives.
    let keep = config.log.keep_days;
    let pruner = std::thread::Builder::new()
        .name("log-retention".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(24 * 3600));
                let _ = prune(&dir, keep);
            }
        })
        .ok();
    LogGuard {
        _file: guard,
        _pruner: pruner,
    }
}

/// A stdout-only subscriber for one-shot CLI commands (`sync`, `upload`,
/// `demo`): level from `RUST_LOG`, else `default`.
pub fn init_cli(default: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::registry()
        .with(stdout_layer().with_filter_boxed(filter))
        .try_init();
}

trait BoxedFilter {
    fn with_filter_boxed(
        self,
        filter: EnvFilter,
    ) -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
}

impl<L> BoxedFilter for L
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    fn with_filter_boxed(
        self,
        filter: EnvFilter,
    ) -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync> {
        Box::new(tracing_subscriber::Layer::with_filter(self, filter))
    }
}

fn stdout_layer() -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>
{
    let tty = std::io::stdout().is_terminal();
    let under_journal =
        std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some();
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(tty)
        .with_target(true);
    if under_journal {
        // journald stamps each line itself.
        Box::new(layer.without_time())
    } else {
        Box::new(layer)
    }
}

/// Deletes rolling log files in `dir` older than `keep_days`; returns how
/// many were deleted.
pub fn prune(dir: &Path, keep_days: u32) -> std::io::Result<usize> {
    let limit = Duration::from_secs(u64::from(keep_days.max(1)) * 24 * 3600);
    let now = SystemTime::now();
    let mut deleted = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(FILE_PREFIX) {
            continue;
        }
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if now.duration_since(modified).is_ok_and(|age| age > limit)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_deletes_only_old_log_files() {
        let dir = std::env::temp_dir().join(format!("lojad-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("lojad.log.2020-01-01");
        let new = dir.join("lojad.log.2026-11-26");
        let other = dir.join("keep.txt");
        for p in [&old, &new, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(30 * 24 * 3600))
            .unwrap();
        drop(f);
        let f = std::fs::File::options().write(true).open(&other).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(30 * 24 * 3600))
            .unwrap();
        drop(f);
        assert_eq!(prune(&dir, 14).unwrap(), 1);
        assert!(!old.exists() && new.exists() && other.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
