//! A real PostgreSQL server for the end-to-end tests, without Docker:
//! Debian's binaries (scripts/test installs the `postgresql` package when
//! it is missing), `initdb` into a scratch directory, listening only on a
//! Unix socket in that directory, stopped and removed on drop. As root the
//! server runs as the `postgres` user (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::scratch::ScratchDir;

/// Why the PostgreSQL tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    match bin_dir() {
        Some(_) => None,
        None => Some(
            "PostgreSQL's server binaries (initdb, pg_ctl) are not installed \
             (Debian: apt-get install postgresql; scripts/test does it as root)"
                .into(),
        ),
    }
}

/// Skips the calling test (returns true) when PostgreSQL is missing, unless
/// CI is set, where a missing server fails the test.
pub fn skip_without_postgres() -> bool {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A new, empty database on the server `maintenance_url` names (any
/// database there, e.g. `postgres://postgres@%2Ftmp%2Fpg:5432/postgres`);
/// its URL.
pub fn fresh_database(maintenance_url: &str) -> anyhow::Result<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Ok(retaguarda::sql::create_database(maintenance_url, &name)?)
}

/// A running PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    dir: ScratchDir,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("dir", &self.dir.to_path_buf())
            .finish()
    }
}

impl PgServer {
    pub fn start() -> anyhow::Result<PgServer> {
        let bin = bin_dir().context("PostgreSQL is not installed")?;
        let dir = ScratchDir::new("postgres");
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&*dir)
                .output()?;
            if !out.status.success() {
                bail!("chown postgres: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let mut pg = PgServer {
            bin,
            dir,
            // The socket file is named by the port; only the socket listens.
            port: crate::free_port(),
            as_postgres,
            running: false,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().context("data dir")?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        pg.up()?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.to_path_buf()
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .current_dir(&*self.dir)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .with_context(|| format!("run {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the server (again) and waits until it answers.
    pub fn up(&mut self) -> anyhow::Result<()> {
        let data = self.data();
        let log = self.dir.join("postgres.log");
        let opts = format!(
            "-k {} -p {} -c listen_addresses='' -c max_connections=200 -c fsync=on",
            self.socket_dir().display(),
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().context("data dir")?,
                "-l",
                log.to_str().context("log")?,
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )?;
        self.running = true;
        Ok(())
    }

    /// Stops the server at once (`-m immediate`: like a crash, in-flight
    /// transactions lost, recovery at the next start).
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.stop_mode("immediate")
    }

    fn stop_mode(&mut self, mode: &str) -> anyhow::Result<()> {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().context("data dir")?,
                "-m",
                mode,
                "-w",
                "stop",
            ],
        )?;
        self.running = false;
        Ok(())
    }

    /// `postgres://postgres@SOCKETDIR:PORT/dbname`
    pub fn url(&self, dbname: &str) -> String {
        let host = self.socket_dir().display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}:{}/{dbname}", self.port)
    }

    /// Creates database `name` (the server answers: `up` waited for it).
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        Ok(retaguarda::sql::create_database(
            &self.url("postgres"),
            name,
        )?)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_mode("immediate");
        }
    }
}
