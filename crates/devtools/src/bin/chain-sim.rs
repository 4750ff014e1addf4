//! chain-sim: how the central serves a chain of N stores (issue 19 item 6).
//!
//! ```text
//! cargo build --release -p retaguarda-server -p loja-devtools --bin retaguarda-server --bin chain-sim
//! target/release/chain-sim --stores 2000 --upload-secs 30
//! target/release/chain-sim --stores 2000 --upload-secs 30 --backend postgres --instances 2
//! target/release/chain-sim --stores 2000 --upload-secs 30 --initial-load
//! ```
//!
//! Generates a small catalog (`--products`, default 20,000) into a
//! temporary database (`retaguarda-server gen`), starts the real
//! `retaguarda-server` (the binary next to this one; `--instances` of them)
//! as a separate process on a loopback port picked at run time,
//! and registers `--stores` stores under `--centrals` centrals through
//! `POST /v1/admin/nodes`. The availability window of the entities the stores
//! fetch is set to 0 minutes for the chain (a change is released at once:
//! what is measured is the fan-out, not the window).
//!
//! Each store is a lightweight tokio task of this process (one shared HTTP
//! client): it catches up on the `prices` feed from 0 (`--all-entities`:
//! every entity), then holds the events long-poll; when the events name
//! `prices` it fetches the prices pages (zstd, `--page-size` rows) from its
//! watermark until `more` is false. Next to it, each store uploads one sale
//! document every `--upload-secs` (±50 % jitter), each upload timed.
//!
//! Once every store is caught up, after `--settle-secs`, a steady window of
//! `--steady-secs` (long-polls held, uploads running) gives the central's
//! CPU per 1,000 store-hours; then one admin import of `--changes` (10,000)
//! price changes for the whole chain (node `master`). Its answer's
//! `last_seq` is the seq every store must reach: the report gives the time
//! from the import's answer until 50 %, 99 % and 100 % of the stores had
//! fetched pages up to it (each wait bounded by `--wait-secs`; stores that
//! never got there are named), the central's CPU during that fan-out per
//! store, upload latency p50/p99 (steady and fan-out), and the central's
//! RSS (VmRSS, VmHWM). Central CPU is the server process's utime+stime from
//! /proc/PID/stat: the load generator (this process) runs on the same cores
//! and its own CPU is reported beside it.
//!
//! The stores read only a page's `next` and `more` (the tail of the JSON,
//! after the items; a page that does not parse that way is parsed whole;
//! `--full-parse` parses every page into a `FeedPage`), so that the
//! simulator's own parsing takes as little of the shared cores as it can.
//!
//! At 2,000 stores the default `--upload-secs 5` offers 400 sales/s, one
//! POST each: more than one SQLite writer takes on a 2-core machine (about
//! 170/s there), so the uploads queue up at the central and the import waits
//! behind them; the report says so (uploads completed/s against offered) and
//! `--upload-secs 30` measures the fan-out under a load the writer keeps up
//! with.
//!
//! By default the central applies the stores' stock documents itself (its
//! default): every sale writes the store's stock rows, a new seq that wakes
//! every long-poll of the chain. `--erp-owns-stock` sets `erp_owns_stock` so
//! uploads write no rows.
//!
//! `--backend sqlite` (the default) keeps the central in a SQLite file of
//! the temporary directory. `--backend postgres` starts a throwaway
//! PostgreSQL server the way `scripts/with-postgres` does, without Docker:
//! Debian's binaries (the newest /usr/lib/postgresql/*/bin), `initdb` into a
//! temporary directory (as the `postgres` user through `runuser` when run
//! as root: PostgreSQL refuses root), listening only on a Unix socket in
//! that directory, `max_connections=300`, fsync and synchronous_commit ON
//! (honest commit latency; everything else PostgreSQL's defaults); stopped
//! and removed at the end, on an error or on Ctrl-C too. `--database
//! postgres://…` uses an existing server's (empty) database instead; its
//! processes are then not ours to read, and PostgreSQL's CPU and memory
//! are not reported. The catalog is always written by the server binary
//! itself: `retaguarda-server gen --database LOCATION`.
//!
//! `--instances N` (PostgreSQL only) starts N `retaguarda-server serve`
//! processes on the same database. Store i talks to instance i mod N (its
//! long-poll, its feeds, its uploads); registration, settings and the import
//! go to instance 0, so with N = 2 half the stores are woken by the
//! cross-instance hint (LISTEN/NOTIFY). The central's CPU and RSS are
//! reported summed over the instances and per instance. PostgreSQL's CPU is
//! the postmaster's utime+stime plus its reaped children's (cutime+cstime
//! of /proc/PID/stat: backends that exited are counted there once the
//! postmaster waited for them) plus every live child's utime+stime;
//! its memory is the sum of VmRSS of the postmaster and its children (each
//! counts the shared buffers it touched: an over-count) and the sum of
//! their Pss (/proc/PID/smaps_rollup: shared pages divided among their
//! users). The central's own figures on SQLite include the database work
//! (in process); on PostgreSQL the fair comparison is central + PostgreSQL.
//!
//! `--initial-load`: a new store's initial load of every (non-secret)
//! entity of a large catalog (`--initial-products`, default 200,000, and
//! `--initial-customers`, default 100,000, as sync-bench: ~1.3 M rows; they
//! replace `--products`/`--customers` for the run, so the N stores catch up
//! on that catalog's prices too). Measured twice in the same run: on the
//! idle central (before the N stores start: store `nova-ociosa` under
//! central `regiao-ociosa`), then while the N stores hold their long-polls
//! and upload (after the fan-out: store `nova-carga` under `regiao-carga`);
//! the two stores are under different centrals, so neither load is served
//! pages the other built (the page cache is keyed by the ancestors). The
//! new store is simulated: it fetches every entity's pages over HTTP until
//! `more` is false and counts the rows (each page parsed whole), but does
//! not apply them into a SQLite replica (sync-bench measures that). The
//! report gives both times and their ratio.
//!
//! Sockets: every store holds one connection for its long-poll and one for
//! its uploads, and the central as many: the tool raises its open-files soft
//! limit to the hard limit (the central, its child, inherits it); if that is
//! not enough (a connection fails with EMFILE) run `ulimit -n 8192` first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use loja_protocol::{Document, DocumentBatch, DocumentKind, ENTITIES, FeedPage};
use serde_json::{Value, json};
use uuid::Uuid;

const ADMIN: &str = "chain-sim-admin";

#[derive(Parser, Debug)]
#[command(about = "Chain simulator: N stores on one central, a chain-wide price import's fan-out")]
struct Args {
    /// Simulated stores.
    #[arg(long, default_value_t = 2000)]
    stores: usize,
    /// Centrals (regions) the stores are spread over, all under the master.
    #[arg(long, default_value_t = 1)]
    centrals: usize,
    /// Storage backend of the central: sqlite, or postgres (a throwaway
    /// server this tool starts, unless --database names one).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    backend: String,
    /// An existing PostgreSQL database (empty) instead of a throwaway
    /// server: postgres://user@host/db (implies --backend postgres).
    #[arg(long, value_name = "postgres://…")]
    database: Option<String>,
    /// Central instances serving the one database (PostgreSQL only); store
    /// i talks to instance i mod N, the admin import goes to instance 0.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Also time a new store's initial load of every entity of a large
    /// catalog, on the idle central and while the stores run: the ratio.
    #[arg(long)]
    initial_load: bool,
    /// Products of the catalog with --initial-load (replaces --products).
    #[arg(long, default_value_t = 200_000)]
    initial_products: u64,
    /// Customers of the catalog with --initial-load (replaces --customers).
    #[arg(long, default_value_t = 100_000)]
    initial_customers: u64,
    /// Products of the generated catalog (a base price each).
    #[arg(long, default_value_t = 20_000)]
    products: u64,
    /// Customers of the generated catalog.
    #[arg(long, default_value_t = 1_000)]
    customers: u64,
    /// Price changes imported for the whole chain.
    #[arg(long, default_value_t = 10_000)]
    changes: u64,
    /// Stores catch up on every entity, not only prices.
    #[arg(long)]
    all_entities: bool,
    /// Rows per feed page.
    #[arg(long, default_value_t = 10_000)]
    page_size: u64,
    /// Seconds between a store's sale uploads (±50 % jitter); 0: no uploads.
    #[arg(long, default_value_t = 5.0)]
    upload_secs: f64,
    /// The events long-poll's wait, seconds.
    #[arg(long, default_value_t = 25)]
    poll_wait: u64,
    /// Stores catching up at the same time (the setup, not measured).
    #[arg(long, default_value_t = 32)]
    catchup_concurrency: usize,
    /// Seconds after every store caught up before the steady window.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// The steady window (long-polls held, uploads running), seconds.
    #[arg(long, default_value_t = 30)]
    steady_secs: u64,
    /// Bound of every wait for the stores (the catch-up: 10 ×), seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// Parse every page whole into a FeedPage (the client's cost included).
    #[arg(long)]
    full_parse: bool,
    /// Set erp_owns_stock: sales write no stock rows at the central.
    #[arg(long)]
    erp_owns_stock: bool,
    /// The retaguarda-server binary (default: the one next to this binary).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Keep the temporary directory (the database and the server's log).
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    anyhow::ensure!(args.stores > 0, "--stores must be at least 1");
    anyhow::ensure!(args.centrals > 0, "--centrals must be at least 1");
    anyhow::ensure!(args.instances > 0, "--instances must be at least 1");
    if let Some(url) = &args.database {
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--database takes a postgres:// URL (SQLite: the default, a temporary file)"
        );
        args.backend = "postgres".into();
    }
    anyhow::ensure!(
        args.instances == 1 || args.backend == "postgres",
        "--instances above 1 needs --backend postgres (one SQLite file has one writer process)"
    );
    if args.initial_load {
        args.products = args.initial_products;
        args.customers = args.initial_customers;
    }
    anyhow::ensure!(
        args.changes > 0 && args.changes <= args.products,
        "--changes must be between 1 and --products"
    );
    let cmdline: Vec<String> = std::env::args().collect();
    println!("chain-sim: {}", cmdline.join(" "));
    println!(
        "backend {} ({} instance(s)), {} stores under {} central(s), {} products, {} customers, {} price changes, load average at start: {}",
        args.backend,
        args.instances,
        args.stores,
        args.centrals,
        args.products,
        args.customers,
        args.changes,
        loadavg()
    );
    let nofile = raise_nofile();
    println!("open files limit: {nofile}");
    retaguarda::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // On Ctrl-C the run is dropped: its centrals are stopped and its
    // PostgreSQL server stopped and removed (their Drop).
    rt.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Raises the soft open-files limit to the hard one; answers the soft limit.
#[cfg(unix)]
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(not(unix))]
fn raise_nofile() -> u64 {
    0
}

/// The central as a child process; killed when dropped.
struct Central {
    child: Child,
    url: String,
    pid: u32,
}

impl Drop for Central {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: a signal to our own child, by its pid.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        anyhow::ensure!(p.is_file(), "--server {}: no such file", p.display());
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name(format!("retaguarda-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p retaguarda-server",
            bin.display()
        );
    }
    Ok(bin)
}

/// Where the run keeps the central's data.
enum Database {
    Sqlite(PathBuf),
    /// A PostgreSQL database: its URL, and the server when this tool
    /// started it (stopped and removed when dropped).
    Postgres {
        url: String,
        own: Option<PgServer>,
    },
}

impl Database {
    /// The postmaster's pid, when the server is ours to read.
    fn postmaster(&self) -> Option<u32> {
        match self {
            Database::Postgres { own: Some(pg), .. } => pg.postmaster(),
            _ => None,
        }
    }

    /// The `--database`/`--db` arguments of a server subcommand: `--database
    /// sqlite:PATH` when the server has it (issue 19 item 1), else `--db PATH`
    /// (an older `--server` binary; SQLite only).
    fn flag(&self, bin: &Path, sub: &str) -> anyhow::Result<Vec<String>> {
        let url = match self {
            Database::Postgres { url, .. } => return Ok(vec!["--database".into(), url.clone()]),
            Database::Sqlite(db) => db,
        };
        let help = Command::new(bin)
            .args([sub, "--help"])
            .output()
            .with_context(|| format!("{} {sub} --help", bin.display()))?;
        let text = String::from_utf8_lossy(&help.stdout);
        Ok(if text.contains("--database") {
            vec!["--database".into(), format!("sqlite:{}", url.display())]
        } else {
            vec!["--db".into(), url.display().to_string()]
        })
    }
}

/// A throwaway PostgreSQL server, as scripts/with-postgres starts one.
struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    url: String,
    version: String,
    /// Removed after the server stopped (kept with --keep).
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl PgServer {
    fn start(keep: bool) -> anyhow::Result<PgServer> {
        let bin = pg_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("loja-chain-pg-")
            .tempdir_in("/tmp")?;
        let path = dir.path().to_path_buf();
        #[cfg(unix)]
        // SAFETY: geteuid only reads the process's credentials.
        let root = unsafe { libc::geteuid() } == 0;
        #[cfg(not(unix))]
        let root = false;
        if root {
            #[cfg(unix)]
            {
                let id = |flag: &str| -> anyhow::Result<u32> {
                    let out = Command::new("id").args([flag, "postgres"]).output()?;
                    anyhow::ensure!(
                        out.status.success(),
                        "no user postgres (apt-get install postgresql)"
                    );
                    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
                };
                std::os::unix::fs::chown(&path, Some(id("-u")?), Some(id("-g")?))?;
            }
        }
        let port = 20_000 + fastrand::u16(..20_000);
        let mut pg = PgServer {
            version: String::new(),
            url: format!(
                "postgres://postgres@{}:{port}/postgres",
                path.display().to_string().replace('/', "%2F")
            ),
            data: path.join("data"),
            bin,
            as_postgres: root,
            dir: Some(dir),
            keep,
        };
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .context("initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // fsync and synchronous_commit stay on: commit latency is part of
        // what is measured.
        let out = pg
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(path.join("postgres.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-k {} -p {port} -c listen_addresses='' -c max_connections=300",
                path.display()
            ))
            .arg("start")
            .output()
            .context("pg_ctl start")?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl start: {}{}; see {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            path.join("postgres.log").display()
        );
        let v = Command::new(pg.bin.join("postgres"))
            .arg("--version")
            .output()?;
        pg.version = String::from_utf8_lossy(&v.stdout).trim().to_owned();
        Ok(pg)
    }

    /// A PostgreSQL binary, as the postgres user when we are root, run in
    /// the server's directory (root's working directory may be closed to it).
    fn cmd(&self, prog: &str) -> Command {
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(prog));
            c
        } else {
            Command::new(self.bin.join(prog))
        };
        if let Some(d) = &self.dir {
            c.current_dir(d.path());
        }
        c.stdin(Stdio::null());
        c
    }

    /// The postmaster's pid: the first line of the data directory's postmaster.pid.
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        for mode in ["fast", "immediate"] {
            let stopped = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "-t", "30", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if stopped || !self.data.join("postmaster.pid").exists() {
                break;
            }
        }
        if self.keep
            && let Some(d) = self.dir.take()
        {
            println!("kept PostgreSQL's directory {}", d.keep().display());
        }
    }
}

/// The newest Debian PostgreSQL server binaries.
fn pg_bindir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).context(
        "PostgreSQL's server binaries are not installed under /usr/lib/postgresql/*/bin \
         (apt-get install postgresql), or give --database postgres://…",
    )
}

/// The fields of /proc/PID/stat after the command's name (field 3 first).
fn stat_tail(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, tail) = stat.rsplit_once(')')?;
    // Field 3 (the state) is a letter: 0 in its place keeps the indices.
    Some(
        tail.split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// The live children of a process (scanning /proc).
fn children_of(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            // Field 4 (the parent) is index 1 of the tail.
            stat_tail(pid).and_then(|t| t.get(1).copied()) == Some(u64::from(ppid))
        })
        .collect()
}

/// PostgreSQL's use of the machine: CPU seconds since it started (the
/// postmaster, its reaped children, its live children), and the memory of
/// its processes now.
#[derive(Debug, Clone, Copy, Default)]
struct PgUsage {
    cpu: f64,
    rss_mb: f64,
    pss_mb: f64,
    processes: usize,
}

fn pg_usage(postmaster: Option<u32>) -> Option<PgUsage> {
    let pm = postmaster?;
    let tail = stat_tail(pm)?;
    let tick = clock_ticks();
    // utime, stime, cutime, cstime: fields 14–17, indices 11–14 of the tail.
    let own: u64 = tail.get(11..15)?.iter().sum();
    let mut u = PgUsage {
        cpu: own as f64 / tick,
        processes: 1,
        ..PgUsage::default()
    };
    let mem = |pid: u32, file: &str, key: &str| -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    };
    u.rss_mb += mem(pm, "status", "VmRSS:");
    u.pss_mb += mem(pm, "smaps_rollup", "Pss:");
    for child in children_of(pm) {
        if let Some(t) = stat_tail(child) {
            u.cpu += t.get(11..13).map(|v| v.iter().sum::<u64>()).unwrap_or(0) as f64 / tick;
            u.rss_mb += mem(child, "status", "VmRSS:");
            u.pss_mb += mem(child, "smaps_rollup", "Pss:");
            u.processes += 1;
        }
    }
    Some(u)
}

fn start_central(
    bin: &Path,
    db: &Database,
    dir: &Path,
    instance: usize,
) -> anyhow::Result<Central> {
    let port_file = dir.join(format!("port-{instance}"));
    let log_path = dir.join(format!("server-{instance}.log"));
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(bin)
        .arg("serve")
        .args(db.flag(bin, "serve")?)
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN])
        .arg("--port-file")
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id();
    let mut central = Central {
        child,
        url: String::new(),
        pid,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&port_file) {
            let addr = addr.trim();
            if !addr.is_empty() {
                anyhow::ensure!(
                    addr.starts_with("127.0.0.1:"),
                    "the central listens on {addr}, not loopback"
                );
                central.url = format!("http://{addr}");
                return Ok(central);
            }
        }
        if let Some(status) = central.child.try_wait()? {
            bail!(
                "the central exited ({status}) before listening; see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!("the central did not listen within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU seconds of every instance: the sum and each.
fn centrals_cpu(centrals: &[Central]) -> anyhow::Result<(f64, Vec<f64>)> {
    let each = centrals
        .iter()
        .map(|c| cpu_of(c.pid))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    Ok((each.iter().sum(), each))
}

/// VmRSS and VmHWM summed over the instances, MB, and each VmRSS.
fn centrals_rss(centrals: &[Central]) -> (f64, f64, Vec<f64>) {
    let each: Vec<(f64, f64)> = centrals.iter().map(|c| rss_mb(c.pid)).collect();
    (
        each.iter().map(|e| e.0).sum(),
        each.iter().map(|e| e.1).sum(),
        each.iter().map(|e| e.0).collect(),
    )
}

/// utime + stime of a process, seconds.
fn cpu_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let tail = stat
        .rsplit_once(')')
        .map(|(_, t)| t)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // Fields 14 and 15 of stat; the tail starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("/proc stat field")? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

#[cfg(unix)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(not(unix))]
fn clock_ticks() -> f64 {
    100.0
}

/// CPU seconds of this process (the load generator).
#[cfg(unix)]
fn self_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

#[cfg(not(unix))]
fn self_cpu() -> f64 {
    0.0
}

/// VmRSS and VmHWM of a process, MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// What the store tasks share with the conductor.
struct Shared {
    client: reqwest::Client,
    /// The instances' base URLs: store i talks to `urls[i % len]`.
    urls: Vec<String>,
    args: Args,
    entities: Vec<&'static str>,
    /// Each store's prices watermark.
    watermark: Vec<AtomicU64>,
    /// Each store's prices watermarks, page by page, with when they were reached.
    history: Vec<Mutex<Vec<(u64, Instant)>>>,
    caught_up: AtomicUsize,
    /// Stores inside an events long-poll now.
    polling: AtomicUsize,
    /// 0: before the steady window, 1: steady, 2: fan-out, 3: over.
    phase: AtomicUsize,
    uploads: Mutex<Vec<(usize, Duration)>>,
    upload_errors: AtomicU64,
    rejected: AtomicU64,
    feed_errors: AtomicU64,
    poll_errors: AtomicU64,
    busy_answers: AtomicU64,
    held_pages: AtomicU64,
    emfile: AtomicBool,
    stop: AtomicBool,
}

fn store_id(i: usize) -> String {
    format!("loja-{i:05}")
}

fn token(i: usize) -> String {
    format!("chain-sim-token-{i:05}")
}

fn central_id(c: usize) -> String {
    format!("regiao-{c:02}")
}

/// Does the error chain hold "too many open files"?
fn is_emfile(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(24)
        {
            return true;
        }
        if err.to_string().contains("Too many open files") {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Shared {
    fn note_error(&self, e: &reqwest::Error) {
        if is_emfile(e) {
            self.emfile.store(true, Ordering::Relaxed);
        }
    }

    /// The instance store `i` talks to.
    fn url_of(&self, i: usize) -> &str {
        &self.urls[i % self.urls.len()]
    }

    /// GET with the store's token, busy answers retried (see [`get_busy`]).
    async fn get(
        &self,
        i: usize,
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<impl AsRef<[u8]> + use<>> {
        get_busy(
            &self.client,
            &token(i),
            url,
            timeout,
            &self.stop,
            &self.busy_answers,
        )
        .await
        .inspect_err(|e| {
            if let Some(re) = e.downcast_ref::<reqwest::Error>() {
                self.note_error(re);
            }
        })
    }

    /// Fetches `entity` from `after` until `more` is false: the watermark.
    async fn fetch(&self, i: usize, entity: &str, mut after: u64) -> anyhow::Result<u64> {
        let timeout = Duration::from_secs(self.args.wait_secs);
        for _ in 0..100_000 {
            let url = format!(
                "{}/v1/stores/{}/feeds/{entity}?after={after}&limit={}",
                self.url_of(i),
                store_id(i),
                self.args.page_size
            );
            let body = self.get(i, &url, timeout).await?;
            let (next, more, held) = if self.args.full_parse {
                page_whole(body.as_ref())?
            } else {
                match page_tail(body.as_ref()) {
                    Some(t) => t,
                    None => page_whole(body.as_ref())?,
                }
            };
            if held {
                self.held_pages.fetch_add(1, Ordering::Relaxed);
                return Ok(after);
            }
            after = next;
            if entity == "prices" {
                self.watermark[i].store(after, Ordering::Release);
                if let Ok(mut h) = self.history[i].lock() {
                    h.push((after, Instant::now()));
                }
            }
            if !more {
                return Ok(after);
            }
        }
        bail!("more than 100,000 pages of {entity}")
    }
}

/// GET with a store's token; a 503/429 is retried after its Retry-After
/// (with jitter), a bounded number of times; `busy` counts those answers.
async fn get_busy(
    client: &reqwest::Client,
    token: &str,
    url: &str,
    timeout: Duration,
    stop: &AtomicBool,
    busy: &AtomicU64,
) -> anyhow::Result<impl AsRef<[u8]> + use<>> {
    for _ in 0..20 {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped");
        }
        let resp = client
            .get(url)
            .bearer_auth(token)
            .timeout(timeout)
            .send()
            .await?;
        let status = resp.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            busy.fetch_add(1, Ordering::Relaxed);
            let secs = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(1.0)
                .clamp(0.05, 30.0);
            let jitter = 0.5 + fastrand::f64();
            tokio::time::sleep(Duration::from_secs_f64(secs * jitter)).await;
            continue;
        }
        let resp = resp.error_for_status()?;
        return Ok(resp.bytes().await?);
    }
    bail!("still busy after 20 tries: {url}")
}

/// A new store's initial load, simulated: every entity's pages from 0 until
/// `more` is false, each page parsed whole to count its rows (not applied
/// into a replica).
struct InitialLoad {
    rows: u64,
    pages: u64,
    secs: f64,
    busy: u64,
}

async fn initial_load(
    client: &reqwest::Client,
    base: &str,
    store: &str,
    token: &str,
    page_size: u64,
) -> anyhow::Result<InitialLoad> {
    let t = Instant::now();
    let (stop, busy) = (AtomicBool::new(false), AtomicU64::new(0));
    let (mut rows, mut pages) = (0u64, 0u64);
    for e in ENTITIES.iter().filter(|e| !e.secret) {
        let mut after = 0u64;
        loop {
            let url = format!(
                "{base}/v1/stores/{store}/feeds/{}?after={after}&limit={page_size}",
                e.name
            );
            let body = get_busy(client, token, &url, Duration::from_secs(600), &stop, &busy)
                .await
                .with_context(|| format!("{store}'s initial load of {}", e.name))?;
            let page: FeedPage = serde_json::from_slice(body.as_ref())
                .with_context(|| format!("a page of {}", e.name))?;
            anyhow::ensure!(
                page.held_until.is_none(),
                "{store}'s first download of {} was held",
                e.name
            );
            rows += page.items.len() as u64;
            pages += 1;
            after = page.next.0;
            if !page.more {
                break;
            }
        }
    }
    Ok(InitialLoad {
        rows,
        pages,
        secs: t.elapsed().as_secs_f64(),
        busy: busy.load(Ordering::Relaxed),
    })
}

/// `next`, `more` and whether the page is held, from the JSON after the items.
fn page_tail(body: &[u8]) -> Option<(u64, bool, bool)> {
    let end = body.iter().rposition(|&b| b == b']')?;
    let rest = body.get(end + 1..)?.strip_prefix(b",")?;
    let mut obj = Vec::with_capacity(rest.len() + 1);
    obj.push(b'{');
    obj.extend_from_slice(rest);
    let v: Value = serde_json::from_slice(&obj).ok()?;
    Some((
        v.get("next")?.as_u64()?,
        v.get("more")?.as_bool()?,
        v.get("held_until").is_some(),
    ))
}

fn page_whole(body: &[u8]) -> anyhow::Result<(u64, bool, bool)> {
    let page: FeedPage = serde_json::from_slice(body).context("parse feed page")?;
    Ok((page.next.0, page.more, page.held_until.is_some()))
}

/// One store: catch up, then hold the events long-poll and fetch prices on push.
async fn store(sh: Arc<Shared>, i: usize, gate: Arc<tokio::sync::Semaphore>) {
    let mut prices = 0u64;
    let mut seq = 0u64;
    // The catch-up, retried until it completes (or the run stops).
    for attempt in 0..50u32 {
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        let mut ok = true;
        for e in &sh.entities {
            match sh.fetch(i, e, 0).await {
                Ok(next) => {
                    seq = seq.max(next);
                    if *e == "prices" {
                        prices = next;
                    }
                }
                Err(_) => {
                    sh.feed_errors.fetch_add(1, Ordering::Relaxed);
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            break;
        }
        drop(_permit);
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
    }
    sh.caught_up.fetch_add(1, Ordering::AcqRel);
    let poll_timeout = Duration::from_secs(sh.args.poll_wait + 30);
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    while !sh.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let url = format!(
            "{}/v1/stores/{}/events?after={seq}&wait={}",
            sh.url_of(i),
            store_id(i),
            sh.args.poll_wait
        );
        sh.polling.fetch_add(1, Ordering::Relaxed);
        let answer = sh.get(i, &url, poll_timeout).await;
        sh.polling.fetch_sub(1, Ordering::Relaxed);
        let events: loja_protocol::Events = match answer {
            Ok(body) => match serde_json::from_slice(body.as_ref()) {
                Ok(ev) => ev,
                Err(_) => {
                    sh.poll_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            Err(_) => {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                sh.poll_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        seq = events.seq;
        if events.entities.iter().any(|e| e == "prices") {
            match sh.fetch(i, "prices", prices).await {
                Ok(next) => prices = next,
                Err(_) => {
                    sh.feed_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn sale(number: i64) -> Value {
    let price = 100 + number % 900;
    json!({
        "register": "PDV01", "session_id": Uuid::nil(), "number": number, "operator": "001",
        "items": [{"product_code": "1", "barcode": "7891000315507", "qty": 2000, "unit_price": price, "total": 2 * price},
                  {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}],
        "total": 2 * price + 450,
        "payments": [{"method": "CASH", "amount": 2 * price + 450}],
        "sold_at": "2026-11-26T12:00:00Z"
    })
}

/// One store's uploads: a sale every `--upload-secs` (±50 %), timed.
async fn uploads(sh: Arc<Shared>, i: usize) {
    let every = sh.args.upload_secs;
    if every <= 0.0 {
        return;
    }
    // Start after the store caught up, spread over one interval.
    let mut number = 0i64;
    let first = Duration::from_secs_f64(every * fastrand::f64());
    tokio::time::sleep(first).await;
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    while !sh.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        number += 1;
        let batch = DocumentBatch {
            documents: vec![Document {
                id: Uuid::new_v4(),
                kind: DocumentKind::Sale,
                register: "PDV01".into(),
                store_seq: number as u64,
                accepted_at: loja_protocol::time::now_rfc3339(),
                body: sale(number),
                reoffer: false,
                reconciliation: None,
                replaces: None,
            }],
        };
        let phase = sh.phase.load(Ordering::Relaxed);
        let t = Instant::now();
        let sent = sh
            .client
            .post(format!(
                "{}/v1/stores/{}/documents",
                sh.url_of(i),
                store_id(i)
            ))
            .bearer_auth(token(i))
            .json(&batch)
            .timeout(Duration::from_secs(sh.args.wait_secs))
            .send()
            .await;
        let result = match sent {
            Ok(r) => match r.error_for_status() {
                Ok(r) => r.json::<loja_protocol::BatchAck>().await.ok(),
                Err(_) => None,
            },
            Err(e) => {
                sh.note_error(&e);
                None
            }
        };
        let took = t.elapsed();
        match result {
            Some(ack) => {
                if ack
                    .acks
                    .iter()
                    .any(|a| a.status == loja_protocol::AckStatus::Rejected)
                {
                    sh.rejected.fetch_add(1, Ordering::Relaxed);
                }
                if matches!(phase, 1 | 2 | 4)
                    && let Ok(mut u) = sh.uploads.lock()
                {
                    u.push((phase, took));
                }
            }
            None => {
                sh.upload_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let pause = every * (0.5 + fastrand::f64());
        tokio::time::sleep(Duration::from_secs_f64(pause).saturating_sub(took)).await;
    }
}

async fn admin_post(
    client: &reqwest::Client,
    url: &str,
    body: reqwest::Body,
) -> anyhow::Result<Value> {
    let resp = client
        .post(url)
        .bearer_auth(ADMIN)
        .body(body)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "POST {url}: {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("answer of {url}"))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Central and PostgreSQL CPU seconds at one instant (PostgreSQL: when ours).
#[derive(Clone)]
struct CpuMark {
    central: f64,
    each: Vec<f64>,
    pg: Option<f64>,
}

fn cpu_mark(centrals: &[Central], postmaster: Option<u32>) -> anyhow::Result<CpuMark> {
    let (central, each) = centrals_cpu(centrals)?;
    Ok(CpuMark {
        central,
        each,
        pg: pg_usage(postmaster).map(|u| u.cpu),
    })
}

impl CpuMark {
    /// CPU since `earlier`: central, each instance, PostgreSQL.
    fn since(&self, earlier: &CpuMark) -> CpuMark {
        CpuMark {
            central: self.central - earlier.central,
            each: self
                .each
                .iter()
                .zip(&earlier.each)
                .map(|(a, b)| a - b)
                .collect(),
            pg: self.pg.zip(earlier.pg).map(|(a, b)| a - b),
        }
    }

    /// "X s (instances A + B), PostgreSQL Y s, together Z s".
    fn describe(&self) -> String {
        let mut s = format!("{:.2} s", self.central);
        if self.each.len() > 1 {
            let each: Vec<String> = self.each.iter().map(|c| format!("{c:.2}")).collect();
            s.push_str(&format!(" (instances {})", each.join(" + ")));
        }
        if let Some(pg) = self.pg {
            s.push_str(&format!(
                ", PostgreSQL {pg:.2} s, together {:.2} s",
                self.central + pg
            ));
        }
        s
    }
}

/// "central RSS … MB (instances …), PostgreSQL …" at one instant.
fn memory_line(centrals: &[Central], postmaster: Option<u32>) -> (f64, String) {
    let (rss, _, each) = centrals_rss(centrals);
    let mut s = format!("{rss:.0} MB");
    if each.len() > 1 {
        let each: Vec<String> = each.iter().map(|m| format!("{m:.0}")).collect();
        s.push_str(&format!(" ({})", each.join(" + ")));
    }
    if let Some(pg) = pg_usage(postmaster) {
        s.push_str(&format!(
            ", PostgreSQL {:.0} MB RSS summed / {:.0} MB PSS over {} processes",
            pg.rss_mb, pg.pss_mb, pg.processes
        ));
    }
    (rss, s)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = server_bin(args.server.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("loja-chain-sim-")
        .tempdir()?;
    let dir = scratch.path().to_path_buf();
    let db = if args.backend == "postgres" {
        match &args.database {
            Some(url) => Database::Postgres {
                url: url.clone(),
                own: None,
            },
            None => {
                let pg = tokio::task::spawn_blocking({
                    let keep = args.keep;
                    move || PgServer::start(keep)
                })
                .await??;
                println!(
                    "PostgreSQL: {} (throwaway: {}, max_connections=300, fsync on), postmaster pid {}",
                    pg.version,
                    pg.data.display(),
                    pg.postmaster()
                        .map_or_else(|| "unknown".into(), |p| p.to_string())
                );
                Database::Postgres {
                    url: pg.url.clone(),
                    own: Some(pg),
                }
            }
        }
    } else {
        Database::Sqlite(dir.join("central.db"))
    };
    let postmaster = db.postmaster();

    // The catalog, by the server binary itself.
    let t = Instant::now();
    let out = tokio::process::Command::new(&bin)
        .arg("gen")
        .args(db.flag(&bin, "gen")?)
        .args([
            "--products",
            &args.products.to_string(),
            "--customers",
            &args.customers.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("retaguarda-server gen")?;
    anyhow::ensure!(
        out.status.success(),
        "retaguarda-server gen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "catalog: {} products, {} customers generated in {:.1} s (retaguarda-server gen)",
        args.products,
        args.customers,
        t.elapsed().as_secs_f64()
    );
    if args.erp_owns_stock {
        let out = Command::new(&bin)
            .args(["setting", "set", "erp_owns_stock", "true"])
            .args(db.flag(&bin, "setting").unwrap_or_default())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "setting erp_owns_stock: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut centrals = Vec::with_capacity(args.instances);
    for k in 0..args.instances {
        let c = start_central(&bin, &db, &dir, k)?;
        println!("central instance {k}: {} (pid {})", c.url, c.pid);
        centrals.push(c);
    }
    let admin_url = centrals[0].url.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(120))
        .build()?;

    // Centrals and stores, through the admin API of instance 0.
    let t = Instant::now();
    for c in 0..args.centrals {
        let node = json!({"id": central_id(c), "parent": "master", "kind": "central"});
        admin_post(
            &client,
            &format!("{admin_url}/v1/admin/nodes"),
            node.to_string().into(),
        )
        .await?;
    }
    let mut register = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (client, url, next) = (client.clone(), admin_url.clone(), next.clone());
        let (n, centrals) = (args.stores, args.centrals);
        register.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let node = json!({"id": store_id(i), "parent": central_id(i % centrals),
                                  "kind": "store", "token": token(i)});
                admin_post(
                    &client,
                    &format!("{url}/v1/admin/nodes"),
                    node.to_string().into(),
                )
                .await?;
            }
        });
    }
    while let Some(r) = register.join_next().await {
        r??;
    }
    // The new stores of --initial-load, each under a central of its own (no
    // page built for one is served to the other).
    const NEW_STORES: [(&str, &str); 2] = [
        ("regiao-ociosa", "nova-ociosa"),
        ("regiao-carga", "nova-carga"),
    ];
    if args.initial_load {
        for (central, store) in NEW_STORES {
            for node in [
                json!({"id": central, "parent": "master", "kind": "central"}),
                json!({"id": store, "parent": central, "kind": "store",
                       "token": format!("{store}-token")}),
            ] {
                admin_post(
                    &client,
                    &format!("{admin_url}/v1/admin/nodes"),
                    node.to_string().into(),
                )
                .await?;
            }
        }
    }
    let entities: Vec<&'static str> = if args.all_entities {
        ENTITIES
            .iter()
            .filter(|e| !e.secret)
            .map(|e| e.name)
            .collect()
    } else {
        vec!["prices"]
    };
    for e in &entities {
        let resp = client
            .put(format!("{admin_url}/v1/admin/availability/{e}"))
            .bearer_auth(ADMIN)
            .body(json!({"minutes": 0}).to_string())
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(
            status.is_success(),
            "availability of {e}: {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    println!(
        "registered {} stores in {:.1} s; availability 0 min for {}",
        args.stores,
        t.elapsed().as_secs_f64(),
        if args.all_entities {
            "every entity"
        } else {
            "prices"
        }
    );

    let n = args.stores;
    // The instance the new stores of --initial-load talk to (both times).
    let load_url = centrals[n % centrals.len()].url.clone();
    let idle_load = if args.initial_load {
        let (central, store) = NEW_STORES[0];
        let cpu0 = cpu_mark(&centrals, postmaster)?;
        let load = initial_load(
            &client,
            &load_url,
            store,
            &format!("{store}-token"),
            args.page_size,
        )
        .await?;
        let cpu = cpu_mark(&centrals, postmaster)?.since(&cpu0);
        println!(
            "initial load on the idle central: {store} (under {central}) fetched {} rows in {} pages in {:.1} s; CPU {}",
            load.rows,
            load.pages,
            load.secs,
            cpu.describe()
        );
        Some((load, cpu))
    } else {
        None
    };

    let wait = Duration::from_secs(args.wait_secs);
    let sh = Arc::new(Shared {
        client: client.clone(),
        urls: centrals.iter().map(|c| c.url.clone()).collect(),
        entities,
        watermark: (0..n).map(|_| AtomicU64::new(0)).collect(),
        history: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        caught_up: AtomicUsize::new(0),
        polling: AtomicUsize::new(0),
        phase: AtomicUsize::new(0),
        uploads: Mutex::new(Vec::new()),
        upload_errors: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        feed_errors: AtomicU64::new(0),
        poll_errors: AtomicU64::new(0),
        busy_answers: AtomicU64::new(0),
        held_pages: AtomicU64::new(0),
        emfile: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        args,
    });

    // The stores.
    let t = Instant::now();
    let cpu_setup0 = cpu_mark(&centrals, postmaster)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(
        sh.args.catchup_concurrency.max(1),
    ));
    let mut tasks = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (sh2, gate) = (sh.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            store(sh2.clone(), i, gate).await;
        }));
    }
    let stop_all = |tasks: &[tokio::task::JoinHandle<()>]| {
        sh.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.abort();
        }
    };
    let catchup_bound = wait * 10;
    let mut uploading = false;
    let result = async {
        loop {
            let done = sh.caught_up.load(Ordering::Acquire);
            if sh.emfile.load(Ordering::Relaxed) {
                bail!(
                    "connections fail with EMFILE (too many open files): run `ulimit -n 8192` (or more) in this shell first"
                );
            }
            if done >= n {
                break;
            }
            if t.elapsed() > catchup_bound {
                bail!(
                    "only {done} of {n} stores caught up within {} s",
                    catchup_bound.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        stop_all(&tasks);
        return Err(e);
    }
    let catchup = t.elapsed();
    let cpu_catchup = cpu_mark(&centrals, postmaster)?.since(&cpu_setup0);
    println!(
        "catch-up: {n} stores on {} in {:.1} s (CPU {}), feed errors so far {}",
        sh.entities.join(","),
        catchup.as_secs_f64(),
        cpu_catchup.describe(),
        sh.feed_errors.load(Ordering::Relaxed)
    );
    if sh.args.upload_secs > 0.0 {
        for i in 0..n {
            let sh2 = sh.clone();
            tasks.push(tokio::spawn(uploads(sh2, i)));
        }
        uploading = true;
    }
    tokio::time::sleep(Duration::from_secs(sh.args.settle_secs)).await;

    // The steady window.
    let (_, mem_before) = memory_line(&centrals, postmaster);
    let load_before = loadavg();
    sh.phase.store(1, Ordering::Relaxed);
    let steady_t = Instant::now();
    let steady0 = cpu_mark(&centrals, postmaster)?;
    let steady_self0 = self_cpu();
    tokio::time::sleep(Duration::from_secs(sh.args.steady_secs)).await;
    let steady = steady_t.elapsed();
    let steady_cpu = cpu_mark(&centrals, postmaster)?.since(&steady0);
    let steady_self = self_cpu() - steady_self0;
    let (_, mem_steady) = memory_line(&centrals, postmaster);

    // The import, to instance 0.
    let mut body = String::with_capacity(sh.args.changes as usize * 100);
    let nonce = 1 + (std::process::id() as u64 % 1000);
    for k in 1..=sh.args.changes {
        body.push_str(&format!(
            "{{\"op\":\"upsert\",\"node\":\"master\",\"row\":{{\"product_code\":\"{k}\",\"price_list\":\"base\",\"price\":{}}}}}\n",
            100_000 + nonce * 1000 + k % 997
        ));
    }
    let polling_at_import = sh.polling.load(Ordering::Relaxed);
    sh.phase.store(2, Ordering::Relaxed);
    let fan0 = cpu_mark(&centrals, postmaster)?;
    let fan_self0 = self_cpu();
    let sent = Instant::now();
    let answer = admin_post(
        &client,
        &format!("{admin_url}/v1/admin/import/prices"),
        body.into(),
    )
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            stop_all(&tasks);
            return Err(e);
        }
    };
    let answered = Instant::now();
    let Some(last_seq) = answer.get("last_seq").and_then(Value::as_u64) else {
        stop_all(&tasks);
        bail!("the import's answer has no last_seq");
    };
    let changed = answer.get("changed").and_then(Value::as_u64).unwrap_or(0);

    // Wait until every store reached last_seq, bounded.
    let mut missing = n;
    while answered.elapsed() < wait {
        missing = sh
            .watermark
            .iter()
            .filter(|w| w.load(Ordering::Acquire) < last_seq)
            .count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fan_wall = answered.elapsed();
    let fan_cpu = cpu_mark(&centrals, postmaster)?.since(&fan0);
    let fan_self = self_cpu() - fan_self0;
    let (_, mem_after) = memory_line(&centrals, postmaster);
    let (_, hwm, _) = centrals_rss(&centrals);

    // The new store's initial load while the stores run.
    let busy_load = if sh.args.initial_load {
        sh.phase.store(4, Ordering::Relaxed);
        let (central, store) = NEW_STORES[1];
        let cpu0 = cpu_mark(&centrals, postmaster)?;
        let load = initial_load(
            &client,
            &load_url,
            store,
            &format!("{store}-token"),
            sh.args.page_size,
        )
        .await;
        let load = match load {
            Ok(l) => l,
            Err(e) => {
                stop_all(&tasks);
                return Err(e);
            }
        };
        let cpu = cpu_mark(&centrals, postmaster)?.since(&cpu0);
        println!(
            "initial load while {n} stores run: {store} (under {central}) fetched {} rows in {} pages in {:.1} s; CPU {}",
            load.rows,
            load.pages,
            load.secs,
            cpu.describe()
        );
        Some((load, cpu))
    } else {
        None
    };
    let (_, mem_end) = memory_line(&centrals, postmaster);

    sh.phase.store(3, Ordering::Relaxed);
    let load_end = loadavg();
    stop_all(&tasks);

    // When each store reached last_seq, from the import's answer.
    let mut times: Vec<f64> = Vec::with_capacity(n);
    let mut never: Vec<String> = Vec::new();
    for (i, h) in sh.history.iter().enumerate() {
        let at = h
            .lock()
            .ok()
            .and_then(|h| h.iter().find(|(wm, _)| *wm >= last_seq).map(|(_, at)| *at));
        match at {
            Some(at) => times.push(at.saturating_duration_since(answered).as_secs_f64()),
            None => never.push(store_id(i)),
        }
    }
    times.sort_by(f64::total_cmp);
    let at_share = |p: f64| -> String {
        let need = ((n as f64) * p).ceil() as usize;
        match times.get(need.saturating_sub(1)) {
            Some(t) if need <= times.len() => format!("{t:.2} s"),
            _ => format!("not reached within {} s", wait.as_secs()),
        }
    };
    let uploads = sh.uploads.lock().map(|u| u.clone()).unwrap_or_default();
    let lat = |phase: Option<usize>| -> (usize, f64, f64, f64) {
        let mut v: Vec<f64> = uploads
            .iter()
            .filter(|(p, _)| phase.is_none_or(|ph| *p == ph))
            .map(|(_, d)| d.as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        (
            v.len(),
            pct(&v, 0.5),
            pct(&v, 0.99),
            v.last().copied().unwrap_or(f64::NAN),
        )
    };
    let store_hours = n as f64 * steady.as_secs_f64() / 3600.0;
    let steady_rate = steady_cpu.central / steady.as_secs_f64();
    let import_secs = answered.duration_since(sent).as_secs_f64();
    let fan_secs = fan_wall.as_secs_f64() + import_secs;
    let a = &sh.args;

    println!();
    println!(
        "== chain-sim report: backend {}{} (central: retaguarda-server, {} process(es)), {n} stores under {} central(s) ==",
        a.backend,
        match &db {
            Database::Postgres { own: Some(pg), .. } =>
                format!(" ({}, throwaway, fsync on)", pg.version),
            Database::Postgres { own: None, .. } => " (an existing server: not measured)".into(),
            Database::Sqlite(_) => String::new(),
        },
        centrals.len(),
        a.centrals
    );
    println!(
        "command                     {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "load average                at start (see header) · before the steady window {load_before} · at the end {load_end}"
    );
    println!(
        "stores                      {n}, catch-up of {} ({} products) in {:.1} s; uploads every {} s ±50 %{}",
        sh.entities.join(","),
        a.products,
        catchup.as_secs_f64(),
        a.upload_secs,
        if !uploading {
            " (off)"
        } else if a.erp_owns_stock {
            " (erp_owns_stock: no stock rows)"
        } else {
            " (the central applies stock: each sale writes rows)"
        }
    );
    if centrals.len() > 1 {
        println!(
            "instances                   {}: store i on instance i mod {}; the import sent to instance 0",
            centrals.len(),
            centrals.len()
        );
    }
    println!(
        "import                      {} lines, {changed} changed, answered in {import_secs:.2} s, last_seq {last_seq}; {polling_at_import} of {n} stores were holding a long-poll when it was sent",
        a.changes,
    );
    println!(
        "applied by 50 % / 99 % / 100 % of the stores (from the import's answer): {} / {} / {}   (goal: 99 % within 5 s)",
        at_share(0.5),
        at_share(0.99),
        at_share(1.0)
    );
    if centrals.len() > 1 {
        for k in 0..centrals.len() {
            let mut own: Vec<f64> = (0..n)
                .filter(|i| i % centrals.len() == k)
                .filter_map(|i| {
                    let h = sh.history.get(i)?.lock().ok()?;
                    h.iter()
                        .find(|(wm, _)| *wm >= last_seq)
                        .map(|(_, at)| at.saturating_duration_since(answered).as_secs_f64())
                })
                .collect();
            own.sort_by(f64::total_cmp);
            println!(
                "  stores of instance {k}{}: {} reached it; 50 % / 99 % / 100 % of those at {:.2} / {:.2} / {:.2} s",
                if k == 0 {
                    " (the import's)"
                } else {
                    " (woken by the hint)"
                },
                own.len(),
                pct(&own, 0.5),
                pct(&own, 0.99),
                own.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    if !never.is_empty() {
        let shown: Vec<&str> = never.iter().take(20).map(String::as_str).collect();
        println!(
            "  {} stores never reached last_seq within {} s: {}{}",
            never.len(),
            wait.as_secs(),
            shown.join(", "),
            if never.len() > 20 { ", …" } else { "" }
        );
    }
    println!(
        "central CPU, steady         {} in {:.1} s ({:.0} % of one core) = {:.1} CPU s per 1,000 store-hours{}",
        steady_cpu.describe(),
        steady.as_secs_f64(),
        100.0 * steady_rate,
        steady_cpu.central / store_hours * 1000.0,
        steady_cpu.pg.map_or_else(String::new, |pg| format!(
            " (with PostgreSQL: {:.1})",
            (steady_cpu.central + pg) / store_hours * 1000.0
        ))
    );
    println!(
        "central CPU, fan-out        {} in {fan_secs:.2} s (import to {}): {:.2} ms per store for the {}-row change ({:.2} ms less the steady rate){}",
        fan_cpu.describe(),
        if missing == 0 {
            "the last store"
        } else {
            "the bound"
        },
        1000.0 * fan_cpu.central / n as f64,
        a.changes,
        1000.0 * (fan_cpu.central - steady_rate * fan_secs).max(0.0) / n as f64,
        fan_cpu
            .pg
            .zip(steady_cpu.pg)
            .map_or_else(String::new, |(pg, spg)| {
                let pg_rate = spg / steady.as_secs_f64();
                format!(
                    "; with PostgreSQL {:.2} ms per store ({:.2} ms less the steady rate)",
                    1000.0 * (fan_cpu.central + pg) / n as f64,
                    1000.0 * (fan_cpu.central + pg - (steady_rate + pg_rate) * fan_secs).max(0.0)
                        / n as f64
                )
            })
    );
    println!(
        "central CPU, whole window   {:.1} CPU s per 1,000 store-hours (steady + fan-out)",
        (steady_cpu.central + fan_cpu.central)
            / (n as f64 * (steady.as_secs_f64() + fan_secs) / 3600.0)
            * 1000.0
    );
    println!(
        "load generator CPU          steady {:.1} s, fan-out {:.1} s (this process, same cores)",
        steady_self, fan_self
    );
    let offered = if uploading {
        n as f64 / a.upload_secs
    } else {
        0.0
    };
    let (steady_count, steady_p50, _, _) = lat(Some(1));
    let done_rate = steady_count as f64 / steady.as_secs_f64();
    println!(
        "uploads, steady             {done_rate:.0} completed/s of {offered:.0}/s offered (one sale per POST)"
    );
    if uploading && (done_rate < 0.9 * offered || steady_p50 > 1000.0) {
        println!(
            "  WARNING: the central's write path does not keep up with the uploads offered: its queue grows \
             (the import waits behind it); a longer --upload-secs gives the fan-out alone"
        );
    }
    let mut phases = vec![("steady", Some(1)), ("fan-out", Some(2))];
    if busy_load.is_some() {
        phases.push(("load", Some(4)));
    }
    phases.push(("all", None));
    for (name, phase) in phases {
        let (count, p50, p99, max) = lat(phase);
        println!(
            "upload latency, {name:<8}    {count} uploads: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
        );
    }
    println!(
        "errors                      uploads {} (rejected acks {}), feed pages {}, long-polls {}, 503/429 answers {}, held pages {}",
        sh.upload_errors.load(Ordering::Relaxed),
        sh.rejected.load(Ordering::Relaxed),
        sh.feed_errors.load(Ordering::Relaxed),
        sh.poll_errors.load(Ordering::Relaxed),
        sh.busy_answers.load(Ordering::Relaxed),
        sh.held_pages.load(Ordering::Relaxed)
    );
    println!("memory before the steady window: central {mem_before}");
    println!("memory after the steady window:  central {mem_steady}");
    println!(
        "memory after the fan-out:        central {mem_after}; central peak (VmHWM, summed) {hwm:.0} MB"
    );
    if let (Some((idle, idle_cpu)), Some((busy, busy_cpu))) = (&idle_load, &busy_load) {
        println!("memory after the initial load:   central {mem_end}");
        println!(
            "initial load (simulated: every entity's pages fetched and parsed, rows counted, not applied into SQLite; page size {})",
            a.page_size
        );
        println!(
            "  idle central              {} rows, {} pages in {:.1} s; CPU {}; 503/429 {}",
            idle.rows,
            idle.pages,
            idle.secs,
            idle_cpu.describe(),
            idle.busy
        );
        println!(
            "  with {n} stores running  {} rows, {} pages in {:.1} s; CPU {}; 503/429 {}",
            busy.rows,
            busy.pages,
            busy.secs,
            busy_cpu.describe(),
            busy.busy
        );
        println!(
            "  ratio                     {:.2} × the idle central's time",
            busy.secs / idle.secs
        );
    }
    if sh.emfile.load(Ordering::Relaxed) {
        println!(
            "WARNING: some connections failed with EMFILE (too many open files): run `ulimit -n 8192` first"
        );
    }
    drop(centrals);
    drop(db);
    if a.keep {
        println!("kept {}", scratch.keep().display());
    }
    Ok(())
}
