//! `lojad service install|uninstall|start|stop|status`: the OS service.
//!
//! Linux: the systemd unit of `installer/linux/lojad.service` (embedded),
//! rendered with the real binary, config and data paths into
//! `ROOT/etc/systemd/system/lojad.service`, then `systemctl daemon-reload`,
//! `enable`, `start`. Windows: the Service Control Manager through the
//! `windows-service` crate; the SCM's stop goes down the same graceful
//! shutdown path as SIGTERM (see [`windows`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The shipped unit; its default paths are replaced when rendered.
pub const UNIT_TEMPLATE: &str = include_str!("../../../installer/linux/lojad.service");
pub const UNIT_NAME: &str = "lojad.service";
pub const SERVICE_NAME: &str = "lojad";

/// Paths the rendered unit points at.
#[derive(Debug, Clone)]
pub struct UnitPaths {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// Service user (the unit's `User=`/`Group=`).
    pub user: String,
}

/// The unit with the actual paths in place of the shipped defaults.
pub fn render_unit(p: &UnitPaths) -> String {
    let quote = |path: &Path| {
        let s = path.display().to_string();
        if s.contains(' ') {
            format!("\"{s}\"")
        } else {
            s
        }
    };
    UNIT_TEMPLATE
        .lines()
        .map(|line| {
            if line.starts_with("ExecStart=") {
                format!(
                    "ExecStart={} --config {} launch",
                    quote(&p.binary),
                    quote(&p.config)
                )
            } else if line.starts_with("ReadWritePaths=") {
                format!("ReadWritePaths={}", quote(&p.data_dir))
            } else if line.starts_with("User=") {
                format!("User={}", p.user)
            } else if line.starts_with("Group=") {
                format!("Group={}", p.user)
            } else if line.starts_with("StateDirectory=") && !p.data_dir.starts_with("/var/lib/") {
                // StateDirectory only manages dirs under /var/lib.
                "# StateDirectory= not used: the data dir is outside /var/lib".to_string()
            } else if line.starts_with("StateDirectory=") {
                format!(
                    "StateDirectory={}",
                    p.data_dir
                        .strip_prefix("/var/lib/")
                        .unwrap_or(&p.data_dir)
                        .display()
                )
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Where the unit goes under `root` (`/` for the real system).
pub fn unit_path(root: &Path) -> PathBuf {
    root.join("etc/systemd/system").join(UNIT_NAME)
}

/// Writes the unit under `root`. With `root` = `/` also reloads systemd,
/// enables and starts the service; with another root (packaging, tests) it
/// only writes the file. Returns the unit's path.
pub fn install(paths: &UnitPaths, root: &Path, start: bool) -> Result<PathBuf> {
    let path = unit_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, render_unit(paths))
        .with_context(|| format!("writing {}", path.display()))?;
    if root == Path::new("/") {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", UNIT_NAME])?;
        if start {
            systemctl(&["restart", UNIT_NAME])?;
        }
    }
    Ok(path)
}

/// Stops, disables and removes the unit (config and data are kept).
pub fn uninstall(root: &Path) -> Result<PathBuf> {
    let path = unit_path(root);
    if root == Path::new("/") {
        let _ = systemctl(&["disable", "--now", UNIT_NAME]);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    if root == Path::new("/") {
        systemctl(&["daemon-reload"])?;
    }
    Ok(path)
}

pub fn systemctl(args: &[&str]) -> Result<String> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .context("running systemctl (is this a systemd system?)")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && args.first() != Some(&"status")
        && args.first() != Some(&"is-active")
    {
        bail!("systemctl {} failed: {}", args.join(" "), text.trim());
    }
    Ok(text)
}

/// `systemd-analyze verify` of a unit file, if the tool exists: `None` when
/// absent, else its verdict and output.
pub fn verify_unit(path: &Path) -> Option<(bool, String)> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(path)
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

/// Windows service: control through the SCM and the service main.
#[cfg(windows)]
pub mod windows {
    use std::ffi::OsString;
    use std::path::Path;
    use std::time::Duration;

    use anyhow::{Context, Result};
    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use super::SERVICE_NAME;

    pub fn install(binary: &Path, config: &Path) -> Result<()> {
        let manager =
            ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CREATE_SERVICE)
                .context("opening the Service Control Manager (run as Administrator)")?;
        let info = ServiceInfo {
            name: OsString::from(SERVICE_NAME),
            display_name: OsString::from("Loja store agent (lojad)"),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: binary.to_path_buf(),
            launch_arguments: vec![
                OsString::from("--config"),
                config.as_os_str().to_owned(),
                OsString::from("service-main"),
            ],
            dependencies: vec![],
            account_name: None,
            account_password: None,
        };
        let service =
            manager.create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)?;
        service
            .set_description("Loja: replica sync, outbox delivery and POS API for this store")?;
        // Recovery (restart after 5 s) is set by installer/windows/install.ps1 with sc.exe failure.
        service.start::<&str>(&[])?;
        Ok(())
    }

    fn open(access: ServiceAccess) -> Result<windows_service::service::Service> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
        Ok(manager.open_service(SERVICE_NAME, access)?)
    }

    pub fn uninstall() -> Result<()> {
        let service =
            open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
        if service.query_status()?.current_state != ServiceState::Stopped {
            let _ = service.stop();
        }
        service.delete()?;
        Ok(())
    }

    pub fn start() -> Result<()> {
        open(ServiceAccess::START)?.start::<&str>(&[])?;
        Ok(())
    }

    pub fn stop() -> Result<()> {
        open(ServiceAccess::STOP)?.stop()?;
        Ok(())
    }

    pub fn status() -> Result<String> {
        let s = open(ServiceAccess::QUERY_STATUS)?.query_status()?;
        Ok(format!("{:?}", s.current_state))
    }

    windows_service::define_windows_service!(ffi_service_main, service_main);

    static CONFIG: std::sync::OnceLock<crate::config::Config> = std::sync::OnceLock::new();

    /// Runs lojad under the SCM (the `service-main` subcommand the
    /// installed service starts with). Blocks until the service stops.
    pub fn run_dispatcher(config: crate::config::Config) -> Result<()> {
        let _ = CONFIG.set(config);
        windows_service::service_dispatcher::start(SERVICE_NAME, ffi_service_main)?;
        Ok(())
    }

    fn service_main(_args: Vec<OsString>) {
        let _ = run_service();
    }

    fn run_service() -> Result<()> {
        let config = CONFIG.get().cloned().context("no config")?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let handler = move |event| match event {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                let _ = stop_tx.send(());
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let status = service_control_handler::register(SERVICE_NAME, handler)?;
        let report = |state, accept, code| {
            let _ = status.set_service_status(ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accept,
                exit_code: ServiceExitCode::Win32(code),
                checkpoint: 0,
                wait_hint: Duration::from_secs(30),
                process_id: None,
            });
        };
        report(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            0,
        );
        let _guard = crate::logging::init_daemon(&config);
        // The same path as SIGTERM: the SCM's stop is turned into the
        // daemon's shutdown signal.
        let result = crate::daemon::run_until(config, async move {
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
        });
        report(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            if result.is_ok() { 0 } else { 1 },
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_unit_has_paths_and_hardening() {
        let unit = render_unit(&UnitPaths {
            binary: "/opt/loja/bin/lojad".into(),
            config: "/etc/loja/lojad.toml".into(),
            data_dir: "/var/lib/loja".into(),
            user: "loja".into(),
        });
        for line in [
            "ExecStart=/opt/loja/bin/lojad --config /etc/loja/lojad.toml launch",
            "RestartForceExitStatus=75",
            "Type=simple",
            "Restart=always",
            "RestartSec=5",
            "User=loja",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ReadWritePaths=/var/lib/loja",
            "StateDirectory=loja",
        ] {
            assert!(unit.lines().any(|l| l == line), "missing {line}:\n{unit}");
        }
    }
}
