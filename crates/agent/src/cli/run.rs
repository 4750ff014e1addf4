//! `lojad run`: the daemon in the foreground (also what the systemd unit
//! starts), until SIGTERM / SIGINT / SIGHUP.

use std::path::Path;

use clap::Args;

use super::common::{CliResult, exit, load_config};
use crate::config::Override;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// POS API address (overrides pos.listen).
    #[arg(long, value_name = "ADDR")]
    pub pos_listen: Option<String>,
    /// Data dir (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Central URL (overrides central.url).
    #[arg(long, value_name = "URL")]
    pub central_url: Option<String>,
    /// Log filter (overrides log.level), e.g. `debug` or `lojad=debug`.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The config overrides of `run`'s flags.
pub fn flags(args: RunArgs) -> Vec<Override> {
    let mut flags = Vec::new();
    if let Some(v) = args.pos_listen {
        flags.push(Override::flag("--pos-listen", "pos", "listen", v));
    }
    if let Some(v) = args.data_dir {
        flags.push(Override::flag("--data-dir", "store", "data_dir", v));
    }
    if let Some(v) = args.central_url {
        flags.push(Override::flag("--central-url", "central", "url", v));
    }
    if let Some(v) = args.log_level {
        flags.push(Override::flag("--log-level", "log", "level", v));
    }
    flags
}

pub fn run(path: &Path, args: RunArgs) -> CliResult {
    let flags = flags(args);
    let (config, warnings) = load_config(path, &flags)?;
    let _guard = crate::logging::init_daemon(&config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        version = %crate::release::running_version(),
        config = %path.display(),
        store = %config.store.id,
        data_dir = %config.store.data_dir.display(),
        pos = %config.pos.listen,
        "lojad starting"
    );
    crate::daemon::run_until(config, std::future::pending())?;
    if crate::release::restart_requested() {
        // An update switched versions or must roll back: the service
        // manager starts the launcher again (docs/update.md).
        return Ok(exit::RESTART);
    }
    Ok(exit::OK)
}
