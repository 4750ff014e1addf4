//! `lojad launch`: what the service manager starts. Runs the swap step
//! (`release::swap::prepare`: finish or undo a switch), then hands the
//! process to the version `current` names — on unix by `exec`, so the
//! service manager keeps watching the same process and no second copy runs
//! beside it — or runs this binary's own daemon when no version was
//! installed by an update yet.

use std::path::Path;

use super::common::{CliResult, Failure, exit, load_config};
use super::run::{self, RunArgs};
use crate::release::{self, LAUNCHED_ENV, VERSION_ENV, swap};

pub fn run(path: &Path, args: RunArgs) -> CliResult {
    let (config, _) = load_config(path, &run::flags(args.clone()))?;
    let layout = release::layout(&config);
    let before = swap::read_json::<swap::Trial>(&layout.trial_file())
        .ok()
        .flatten();
    let plan = swap::prepare(&layout, &config.store.data_dir)
        .map_err(|e| Failure::new(exit::FAILED, anyhow::anyhow!("update launcher: {e}")))?;
    if let Some(t) = before {
        let after = swap::read_json::<swap::Trial>(&layout.trial_file())
            .ok()
            .flatten();
        match after {
            Some(a) => eprintln!(
                "lojad launch: trying {} (start {} of {})",
                a.to,
                a.attempts,
                swap::MAX_ATTEMPTS
            ),
            None => eprintln!("lojad launch: {} rolled back to {}", t.to, t.from_version),
        }
    }
    match plan {
        swap::Plan::Base => {
            release::mark_launched();
            run::run(path, args)
        }
        swap::Plan::Exec { binary, version } => exec(&binary, &version),
    }
}

/// This process's arguments with `launch` turned into `run`.
fn run_args() -> Vec<std::ffi::OsString> {
    let mut replaced = false;
    std::env::args_os()
        .skip(1)
        .map(|a| {
            if !replaced && a == "launch" {
                replaced = true;
                "run".into()
            } else {
                a
            }
        })
        .collect()
}

#[cfg(unix)]
fn exec(binary: &Path, version: &str) -> CliResult {
    use std::os::unix::process::CommandExt as _;
    let err = std::process::Command::new(binary)
        .args(run_args())
        .env(VERSION_ENV, version)
        .env(LAUNCHED_ENV, "1")
        .exec();
    // exec returns only when it failed: the next start rolls back a
    // version that keeps failing to start.
    Err(Failure::new(
        exit::RESTART,
        anyhow::anyhow!("cannot start {}: {err}", binary.display()),
    ))
}

/// Windows (not built or tested on this project's CI): no exec; the
/// version runs as a child and its exit code is the service's, so the
/// service control manager's recovery actions restart it on 75.
#[cfg(not(unix))]
fn exec(binary: &Path, version: &str) -> CliResult {
    match std::process::Command::new(binary)
        .args(run_args())
        .env(VERSION_ENV, version)
        .env(LAUNCHED_ENV, "1")
        .status()
    {
        Ok(s) => Ok(s
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(exit::RESTART)),
        Err(err) => Err(Failure::new(
            exit::RESTART,
            anyhow::anyhow!("cannot start {}: {err}", binary.display()),
        )),
    }
}
