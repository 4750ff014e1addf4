//! `lojad service`: install and control the OS service (systemd unit /
//! Windows service), and the Windows service's entry point.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::Subcommand;

use super::common::{CliResult, Failure, exit, load_config};
use crate::config::{self, Config};

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Install and start the service (Linux: systemd unit; Windows: SCM service).
    #[command(
        after_help = "Example:\n  lojad --config /etc/loja/lojad.toml service install      # as root (sudo)\n  lojad --config /etc/loja/lojad.toml service install --root /tmp/pkgroot --binary /usr/local/bin/lojad"
    )]
    Install {
        /// Render the unit under this root instead of / (no systemctl calls).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Binary path the unit starts (default: this executable).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Service user.
        #[arg(long, default_value = "loja")]
        user: String,
        /// Enable but do not start.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove the service (config and data are kept).
    #[command(after_help = "Example:\n  lojad service uninstall      # as root (sudo)")]
    Uninstall {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Start the service.
    #[command(after_help = "Example:\n  lojad service start          # as root (sudo)")]
    Start,
    /// Stop the service (graceful: the current transaction finishes).
    #[command(after_help = "Example:\n  lojad service stop           # as root (sudo)")]
    Stop,
    /// Is the service running?
    #[command(after_help = "Example:\n  lojad service status")]
    Status,
}

/// `lojad service …`.
pub fn run(path: &Path, cmd: ServiceCmd, json: bool) -> CliResult {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    #[cfg(not(windows))]
    {
        let _ = json;
        match cmd {
            ServiceCmd::Install {
                root,
                binary,
                user,
                no_start,
            } => {
                let binary = match binary {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating this executable")?,
                };
                let data_dir = Config::load_with(path, &config::env_overrides(std::env::vars()))
                    .map(|(c, _)| c.store.data_dir)
                    .unwrap_or_else(|_| config::paths::system_data_dir());
                let paths = crate::service::UnitPaths {
                    binary: abs(&binary),
                    config: abs(path),
                    data_dir: abs(&data_dir),
                    user,
                };
                let root = root.unwrap_or_else(|| PathBuf::from("/"));
                if root == Path::new("/") && !path.exists() {
                    return Err(Failure::usage(anyhow!(
                        "no config at {}: run `lojad init --system …` first",
                        path.display()
                    )));
                }
                let unit = crate::service::install(&paths, &root, !no_start)?;
                println!("unit written: {}", unit.display());
                if root == Path::new("/") {
                    println!(
                        "lojad.service enabled{}",
                        if no_start { "" } else { " and started" }
                    );
                }
                Ok(exit::OK)
            }
            ServiceCmd::Uninstall { root } => {
                let unit = crate::service::uninstall(&root.unwrap_or_else(|| PathBuf::from("/")))?;
                println!("removed {} (config and data kept)", unit.display());
                Ok(exit::OK)
            }
            ServiceCmd::Start => {
                crate::service::systemctl(&["start", crate::service::UNIT_NAME])?;
                Ok(exit::OK)
            }
            ServiceCmd::Stop => {
                crate::service::systemctl(&["stop", crate::service::UNIT_NAME])?;
                Ok(exit::OK)
            }
            ServiceCmd::Status => {
                let out = std::process::Command::new("systemctl")
                    .args(["is-active", crate::service::UNIT_NAME])
                    .output()
                    .context("running systemctl")?;
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                println!("lojad.service: {state}");
                Ok(if state == "active" {
                    exit::OK
                } else {
                    exit::FAILED
                })
            }
        }
    }
    #[cfg(windows)]
    {
        let _ = json;
        match cmd {
            ServiceCmd::Install { binary, .. } => {
                let binary = match binary {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating this executable")?,
                };
                crate::service::windows::install(&abs(&binary), &abs(path))?;
                println!("service lojad installed and started");
            }
            ServiceCmd::Uninstall { .. } => crate::service::windows::uninstall()?,
            ServiceCmd::Start => crate::service::windows::start()?,
            ServiceCmd::Stop => crate::service::windows::stop()?,
            ServiceCmd::Status => println!("lojad: {}", crate::service::windows::status()?),
        }
        Ok(exit::OK)
    }
}

/// `lojad service-main`: the Windows service's entry point (the SCM starts it).
pub fn main(path: &Path) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    #[cfg(windows)]
    {
        crate::service::windows::run_dispatcher(config)?;
        Ok(exit::OK)
    }
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(Failure::usage(anyhow!(
            "service-main is the Windows service entry point: on this OS use `lojad run`"
        )))
    }
}
