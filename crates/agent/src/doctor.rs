//! `lojad doctor`: checks what a store PC needs to keep selling and says,
//! for each problem, what to do about it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Config, Override};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
    /// One line of what to do, for a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config_path: PathBuf,
    pub checks: Vec<Check>,
    /// True when no check failed (warnings allowed).
    pub healthy: bool,
}

fn check(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    advice: Option<&str>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        advice: advice.map(str::to_owned),
    }
}

/// Free-space thresholds of the data dir's disk.
pub const WARN_FREE_BYTES: u64 = 1 << 30;
pub const FAIL_FREE_BYTES: u64 = 100 << 20;

/// Runs every check. Never fails itself: each problem is a failed check.
pub async fn run(config_path: &Path, overrides: &[Override]) -> Report {
    let mut checks = Vec::new();
    let config = match Config::load_with(config_path, overrides) {
        Ok((config, warnings)) => {
            let detail = if warnings.is_empty() {
                format!("{} parses and is valid", config_path.display())
            } else {
                warnings.join("; ")
            };
            let level = if warnings.is_empty() {
                Level::Ok
            } else {
                Level::Warn
            };
            let advice =
                (!warnings.is_empty()).then_some("review the warned keys with `lojad config show`");
            checks.push(check("config", level, detail, advice));
            Some(config)
        }
        Err(e) => {
            checks.push(check(
                "config",
                Level::Fail,
                e.to_string(),
                Some("fix the named key in the file (or the environment variable), or recreate it with `lojad init`"),
            ));
            None
        }
    };
    match &config {
        Some(config) => {
            let dir_ok = data_dir_check(&config.store.data_dir, &mut checks);
            disk_check(&config.store.data_dir, &mut checks);
            if dir_ok {
                integrity_checks(&config.store.data_dir, &mut checks);
            } else {
                checks.push(check("integrity", Level::Skip, "data dir not usable", None));
            }
            central_checks(config, &mut checks).await;
            pos_port_check(config, &mut checks).await;
        }
        None => {
            for name in [
                "data_dir",
                "disk_space",
                "integrity",
                "central",
                "clock",
                "pos_port",
            ] {
                checks.push(check(name, Level::Skip, "config not usable", None));
            }
        }
    }
    let healthy = !checks.iter().any(|c| c.level == Level::Fail);
    Report {
        config_path: config_path.to_path_buf(),
        checks,
        healthy,
    }
}

fn data_dir_check(dir: &Path, checks: &mut Vec<Check>) -> bool {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            checks.push(check(
                "data_dir",
                Level::Fail,
                format!("{} exists but is not a directory", dir.display()),
                Some("point store.data_dir at a directory (or move the file away)"),
            ));
            return false;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            checks.push(check(
                "data_dir",
                Level::Fail,
                format!("{} does not exist", dir.display()),
                Some("create it (lojad run creates it if its parent is writable) or fix store.data_dir"),
            ));
            return false;
        }
        Err(e) => {
            checks.push(check(
                "data_dir",
                Level::Fail,
                format!("{}: {e}", dir.display()),
                Some("check the permissions of the data dir and its parents"),
            ));
            return false;
        }
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let write = std::fs::write(&probe, b"lojad doctor").and_then(|_| std::fs::remove_file(&probe));
    match write {
        Ok(()) => {
            checks.push(check(
                "data_dir",
                Level::Ok,
                format!("{} exists and is writable", dir.display()),
                None,
            ));
            true
        }
        Err(e) => {
            checks.push(check(
                "data_dir",
                Level::Fail,
                format!("cannot write in {}: {e}", dir.display()),
                Some("give the service user write access (Linux: chown -R loja:loja the dir) or remount it read-write"),
            ));
            false
        }
    }
}

/// Free bytes available to this user on `path`'s filesystem.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c =
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: statvfs is plain old data: all zeroes is a valid value.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is a valid NUL-terminated path, s a valid out pointer.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Ok(u64::from(s.f_bavail as u64) * u64::from(s.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "free space check not implemented on this OS",
        ))
    }
}

fn disk_check(dir: &Path, checks: &mut Vec<Check>) {
    // The dir itself, else its nearest existing parent.
    let mut probe = dir.to_path_buf();
    while !probe.is_dir() {
        if !probe.pop() {
            break;
        }
    }
    match free_bytes(&probe) {
        Ok(free) => {
            let mib = free / (1 << 20);
            let (level, advice) = if free < FAIL_FREE_BYTES {
                (
                    Level::Fail,
                    Some("free disk space now: sales cannot be stored on a full disk"),
                )
            } else if free < WARN_FREE_BYTES {
                (
                    Level::Warn,
                    Some(
                        "free disk space soon (delete old files, or lower retention.* in the config)",
                    ),
                )
            } else {
                (Level::Ok, None)
            };
            checks.push(check(
                "disk_space",
                level,
                format!("{mib} MiB free on {}", probe.display()),
                advice,
            ));
        }
        Err(e) => checks.push(check(
            "disk_space",
            Level::Warn,
            format!("cannot measure: {e}"),
            None,
        )),
    }
}

/// Runs `f`, turning a panic into an error (a half-built store must not
/// crash the doctor).
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(format!("internal error: {msg}"))
    })
}

fn integrity_checks(dir: &Path, checks: &mut Vec<Check>) {
    let advice = "stop lojad, move the damaged file aside (it is kept for support) and restart: \
                  lojad rebuilds the replica from the central (`lojad sync`); for outbox.db call support first";
    let results: [(&'static str, Result<Vec<String>, String>); 3] = [
        (
            "replica.db",
            guarded(|| {
                loja_replica::Catalog::open(dir)
                    .and_then(|c| c.integrity_check())
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "outbox.db",
            guarded(|| {
                loja_replica::Outbox::open(dir)
                    .and_then(|o| o.integrity_check())
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "journal.db",
            guarded(|| {
                loja_replica::Journal::open(dir)
                    .and_then(|j| journal_integrity(&j))
                    .map_err(|e| e.to_string())
            }),
        ),
    ];
    for (file, result) in results {
        let name = match file {
            "replica.db" => "integrity_replica",
            "outbox.db" => "integrity_outbox",
            _ => "integrity_journal",
        };
        match result {
            Ok(problems) if problems.is_empty() => {
                checks.push(check(name, Level::Ok, format!("{file}: ok"), None))
            }
            Ok(problems) => checks.push(check(
                name,
                Level::Fail,
                format!("{file}: {}", problems.join("; ")),
                Some(advice),
            )),
            Err(e) => checks.push(check(
                name,
                Level::Fail,
                format!("{file}: {e}"),
                Some(advice),
            )),
        }
    }
}

/// The journal has no integrity_check of its own: opening and reading the
/// switches exercises it.
fn journal_integrity(j: &loja_replica::Journal) -> loja_replica::Result<Vec<String>> {
    j.job_states().map(|_| Vec::new())
}

/// An HTTP client for the central as lojad builds it (rustls + the OS's
/// roots + `central.ca_cert`).
pub fn http_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.central.timeout_secs.min(15)))
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = &config.central.ca_cert {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("central.ca_cert {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}

/// The whole chain of an error's causes, on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

async fn central_checks(config: &Config, checks: &mut Vec<Check>) {
    let url = format!("{}/v1/health", config.central.url.trim_end_matches('/'));
    let client = match http_client(config) {
        Ok(c) => c,
        Err(e) => {
            checks.push(check(
                "central",
                Level::Fail,
                e.to_string(),
                Some("fix central.ca_cert"),
            ));
            checks.push(check("clock", Level::Skip, "central not reachable", None));
            return;
        }
    };
    let before = SystemTime::now();
    match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let (level, advice) = if status.is_success() {
                (Level::Ok, None)
            } else {
                (
                    Level::Fail,
                    Some("the central answered but not healthy: tell the chain's IT"),
                )
            };
            let tls = if url.starts_with("https") {
                ", TLS ok"
            } else {
                ""
            };
            checks.push(check(
                "central",
                level,
                format!("{url}: HTTP {status}{tls}"),
                advice,
            ));
            let date = resp
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|d| d.to_str().ok())
                .map(str::to_owned);
            match date.and_then(|d| httpdate::parse_http_date(&d).ok()) {
                Some(central) => {
                    // The Date header has second precision: compare with the
                    // middle of the request.
                    let after = SystemTime::now();
                    let local = before + after.duration_since(before).unwrap_or_default() / 2;
                    let skew = match local.duration_since(central) {
                        Ok(d) => d.as_secs_f64(),
                        Err(e) => -e.duration().as_secs_f64(),
                    };
                    let level = if skew.abs() > 120.0 {
                        Level::Warn
                    } else {
                        Level::Ok
                    };
                    let advice = (level == Level::Warn)
                        .then_some("set the PC's clock right (enable NTP: timedatectl set-ntp true / w32tm /resync)");
                    checks.push(check(
                        "clock",
                        level,
                        format!("local clock is {skew:+.0} s from the central's"),
                        advice,
                    ));
                }
                None => checks.push(check(
                    "clock",
                    Level::Warn,
                    "the central sent no Date header",
                    None,
                )),
            }
        }
        Err(e) => {
            let text = chain(&e);
            let lower = text.to_lowercase();
            let (detail, advice) = if lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake")
            {
                (
                    format!("TLS handshake with {url} failed: {text}"),
                    "the central's certificate is not trusted here: install the chain's CA in the OS or set central.ca_cert; check the PC's date",
                )
            } else if e.is_timeout() {
                (
                    format!("{url}: timed out: {text}"),
                    "check the store's internet link and firewall (the store keeps selling offline)",
                )
            } else if e.is_connect() {
                (
                    format!("cannot connect to {url}: {text}"),
                    "check central.url, the store's internet link and firewall (the store keeps selling offline)",
                )
            } else {
                (format!("{url}: {text}"), "check central.url")
            };
            checks.push(check("central", Level::Fail, detail, Some(advice)));
            checks.push(check("clock", Level::Skip, "central not reachable", None));
        }
    }
}

async fn pos_port_check(config: &Config, checks: &mut Vec<Check>) {
    let addr = config.pos.listen;
    match std::net::TcpListener::bind(addr) {
        Ok(l) => {
            drop(l);
            checks.push(check(
                "pos_port",
                Level::Ok,
                format!("{addr} is free for the POS API"),
                None,
            ));
        }
        Err(e) => {
            // Taken: fine if a lojad answers there.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build();
            let lojad = match client {
                Ok(c) => c
                    .get(format!("http://{addr}/v1/health"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success()),
                Err(_) => None,
            };
            match lojad {
                Some(_) => checks.push(check("pos_port", Level::Ok, format!("{addr} is served by a running lojad"), None)),
                None => checks.push(check(
                    "pos_port",
                    Level::Fail,
                    format!("{addr} is taken by another program: {e}"),
                    Some("stop the other program (ss -ltnp / netstat -ano shows which) or change pos.listen"),
                )),
            }
        }
    }
}

/// The report as a technician reads it.
pub fn render_text(report: &Report) -> String {
    let mut out = format!("lojad doctor — {}\n", report.config_path.display());
    for c in &report.checks {
        let tag = match c.level {
            Level::Ok => "  ok ",
            Level::Warn => "WARN ",
            Level::Fail => "FAIL ",
            Level::Skip => "skip ",
        };
        out.push_str(&format!("{tag} {:<18} {}\n", c.name, c.detail));
        if let Some(a) = &c.advice {
            out.push_str(&format!("      {:<18} → {a}\n", ""));
        }
    }
    let fails = report
        .checks
        .iter()
        .filter(|c| c.level == Level::Fail)
        .count();
    let warns = report
        .checks
        .iter()
        .filter(|c| c.level == Level::Warn)
        .count();
    out.push_str(&if fails == 0 {
        format!("healthy ({warns} warning(s))\n")
    } else {
        format!("{fails} problem(s), {warns} warning(s)\n")
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_tmp() {
        assert!(free_bytes(&std::env::temp_dir()).unwrap() > 0);
    }

    #[test]
    fn data_dir_that_is_a_file_fails() {
        let f = std::env::temp_dir().join(format!("lojad-doctor-{}", uuid::Uuid::new_v4()));
        std::fs::write(&f, b"x").unwrap();
        let mut checks = Vec::new();
        assert!(!data_dir_check(&f, &mut checks));
        assert_eq!(checks[0].level, Level::Fail);
        assert!(checks[0].advice.is_some());
        std::fs::remove_file(f).unwrap();
    }
}
