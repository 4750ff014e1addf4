//! `lojad update`: the automatic update's support view and controls
//! (`--status`, `--check`, `--now`; docs/update.md), and the manual path:
//! verify a signed binary handed over by hand and install it in place of
//! this one (`--file --signature`).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;

use super::common::{CliResult, Failure, exit, load_config, print_json, runtime};
use crate::release;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Show the running version, channel, staged release, switch in progress and trust state.
    #[arg(long, conflicts_with_all = ["file", "now"])]
    pub status: bool,
    /// Ask the central now: check, download and stage the release it offers (no switch).
    /// With --file: only verify the file's signature.
    #[arg(long)]
    pub check: bool,
    /// Check now, and have the daemon switch at its next update run without waiting for
    /// the maintenance window (still never during a cash session, an upload or a POS request).
    #[arg(long, conflicts_with = "file")]
    pub now: bool,
    /// Manual path: the new lojad binary.
    #[arg(long, value_name = "PATH", requires = "signature")]
    pub file: Option<PathBuf>,
    /// Its ed25519 signature (64 bytes, or 128 hex digits).
    #[arg(long, value_name = "PATH", requires = "file")]
    pub signature: Option<PathBuf>,
    /// Verify with this public key (64 hex digits or a file) instead of the embedded release key.
    #[arg(long, value_name = "KEY", requires = "file")]
    pub public_key: Option<String>,
    /// Replace this file instead of the running binary (no restart).
    #[arg(long, value_name = "PATH", hide = true, requires = "file")]
    pub target: Option<PathBuf>,
}

pub fn run(path: &Path, args: UpdateArgs, json: bool) -> CliResult {
    if let (Some(file), Some(signature)) = (&args.file, &args.signature) {
        return manual(file, signature, &args, json);
    }
    if !(args.status || args.check || args.now) {
        return Err(Failure::usage(anyhow!(
            "say what to do: --status, --check, --now, or --file F --signature S"
        )));
    }
    let (config, _) = load_config(path, &[])?;
    if args.check || args.now {
        crate::central::install_crypto_provider();
        let central = crate::central::Central::new(&config)
            .map_err(|e| Failure::new(exit::FAILED, anyhow!("{e}")))?;
        let layout = release::layout(&config);
        let outcome = runtime()?
            .block_on(crate::jobs::update::check(&config, &central, &layout))
            .map_err(|e| Failure::new(exit::FAILED, anyhow!(e)))?;
        if args.now {
            release::swap::write_atomic(&release::now_file(&layout), b"")
                .map_err(|e| Failure::new(exit::FAILED, anyhow!("{e}")))?;
        }
        if !json {
            println!("{outcome}");
            if args.now {
                println!(
                    "the daemon switches at its next update run (task UPD), when no cash session is open"
                );
            }
        }
    }
    let view = release::view(&config);
    if json {
        print_json(&view)?;
    } else if args.status {
        println!("version:   {} (channel {})", view.version, view.channel);
        println!(
            "installed: {} ({})",
            view.current
                .as_deref()
                .unwrap_or("the service's own binary"),
            view.install_dir
        );
        println!("pending:   {}", view.pending.as_deref().unwrap_or("none"));
        if let Some(t) = &view.trial {
            println!("switch:    {t}");
        }
        println!("window:    {}", view.window);
        if !view.bad.is_empty() {
            println!("bad here:  {}", view.bad.join(", "));
        }
        println!(
            "trusted:   keyring {}, manifest {}",
            view.keyring_version, view.manifest_sequence
        );
        if let Some(c) = &view.last_check {
            println!(
                "last check {c}: {}",
                view.last_outcome.as_deref().unwrap_or("")
            );
        }
    }
    Ok(exit::OK)
}

fn manual(file: &Path, signature: &Path, args: &UpdateArgs, json: bool) -> CliResult {
    let out = crate::update::run(
        file,
        signature,
        args.public_key.as_deref(),
        args.check,
        args.target.as_deref(),
    )?;
    if json {
        print_json(&out)?;
    } else {
        println!("{}", out.note);
        if let Some(p) = &out.replaced {
            println!("installed: {}", p.display());
        }
    }
    Ok(exit::OK)
}
