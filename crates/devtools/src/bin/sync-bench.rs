//! sync-bench: the time a new store waits until it can sell at full speed:
//! the initial full sync of the synthetic catalog (200k products, 100k
//! customers: ~1.3 M rows) from the real central over loopback into an
//! empty replica, next to the raw insert rate of the same rows into SQLite
//! (prepared statements, one transaction, same tables and indexes, no FTS)
//! measured in the same run; and the replica's size on disk per table next
//! to the raw database's.
//!
//! ```text
//! cargo build --release -p lojad -p loja-devtools --bin lojad --bin sync-bench
//! target/release/sync-bench [--products 200000] [--customers 100000] [--page-size 20000]
//! ```
//!
//! Then, against the same central, the replica verify (`lojad verify`) of
//! the synced store, timed.
//!
//! The central runs in this process (`retaguarda::spawn`); lojad runs as a
//! child process (`lojad --config … sync`, the binary next to this one), so
//! its peak RSS is its own (getrusage of the child).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use rusqlite::types::Value as SqlValue;

const STORE: &str = "bench-store";
const TOKEN: &str = "bench-store-token";

#[derive(clap::Parser)]
#[command(
    about = "Initial sync of the synthetic catalog (lojad sync, child process) vs raw SQLite insert of the same rows"
)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    products: u64,
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Rows per feed page (lojad's [sync] page_size).
    #[arg(long, default_value_t = 20_000)]
    page_size: u32,
    /// Keep the temporary directory.
    #[arg(long)]
    keep: bool,
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_owned())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Whose resource usage: this process, or its waited-for children (lojad).
#[derive(Clone, Copy)]
enum Usage {
    Me,
    Children,
}

#[cfg(unix)]
fn rusage(who: Usage) -> libc::rusage {
    let who = match who {
        Usage::Me => libc::RUSAGE_SELF,
        Usage::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    ru
}

#[cfg(unix)]
fn children_maxrss_kb() -> u64 {
    rusage(Usage::Children).ru_maxrss as u64
}

/// CPU seconds (user, system) of this process or of its waited-for children.
#[cfg(unix)]
fn cpu_secs(who: Usage) -> (f64, f64) {
    let ru = rusage(who);
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

// Elsewhere (Windows) the CPU and peak-RSS lines read 0: the figures of
// record are Linux's (DESIGN.md); the bench still builds and times the sync.
#[cfg(not(unix))]
fn children_maxrss_kb() -> u64 {
    0
}

#[cfg(not(unix))]
fn cpu_secs(_: Usage) -> (f64, f64) {
    (0.0, 0.0)
}

fn lojad_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name(format!("lojad{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p lojad --bin lojad",
            bin.display()
        );
    }
    Ok(bin)
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let lojad = lojad_bin()?;
    let scratch = tempfile::Builder::new()
        .prefix("loja-sync-bench-")
        .tempdir()?;
    let dir = scratch.path().to_path_buf();
    let db = dir.join("central.db");

    println!(
        "generating {} products / {} customers at the central…",
        args.products, args.customers
    );
    // The store first: its stock is its own, generated for the stores that exist.
    retaguarda::ensure_store(&db, STORE, "master", TOKEN)?;
    let spec = retaguarda::CatalogSpec {
        products: args.products,
        customers: args.customers,
        stock: true,
        seed: 1,
    };
    let db2 = db.clone();
    let report = tokio::task::spawn_blocking(move || retaguarda::generate(&db2, &spec)).await??;
    println!(
        "  {} rows in {:.1} s",
        report.rows,
        report.elapsed.as_secs_f64()
    );
    retaguarda::Db::open(&db)?.write(|tx| {
        retaguarda::avail::add_exception(tx, STORE).map_err(retaguarda::DbError::from)
    })?;
    let server = retaguarda::spawn(retaguarda::ServerConfig {
        db: db.clone().into(),
        listen: "127.0.0.1:0".parse()?,
        admin_token: "bench-admin".into(),
        tls_cert: None,
        tls_key: None,
    })
    .await?;

    let data = dir.join("store");
    let config_path = dir.join("lojad.toml");
    std::fs::write(
        &config_path,
        format!(
            "[store]\nid = \"{STORE}\"\ndata_dir = {:?}\n[central]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\ntimeout_secs = 120\n\
             [pos]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ terminal = \"PDV01\", token = \"bench-pos\" }}]\n[sync]\npage_size = {}\npush = false\n",
            data.display().to_string(),
            server.url,
            args.page_size
        ),
    )?;

    println!(
        "initial sync: lojad sync (child process, page size {})…",
        args.page_size
    );
    let central_cpu0 = cpu_secs(Usage::Me);
    let t0 = Instant::now();
    // SYNC_BENCH_PERF=FILE profiles the lojad child alone (perf record).
    let mut cmd = match std::env::var_os("SYNC_BENCH_PERF") {
        Some(file) => {
            let mut c = Command::new("perf");
            c.args(["record", "-F", "999", "--call-graph", "dwarf,32768", "-o"])
                .arg(file)
                .arg("--")
                .arg(&lojad);
            c
        }
        None => Command::new(&lojad),
    };
    let out = cmd
        .arg("--config")
        .arg(&config_path)
        .args(["sync", "--json"])
        .output()?;
    let sync_secs = t0.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "lojad sync failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lojad_rss_mb = children_maxrss_kb() as f64 / 1024.0;
    let lojad_cpu = cpu_secs(Usage::Children);
    let central_cpu = cpu_secs(Usage::Me);
    let central_cpu = (
        central_cpu.0 - central_cpu0.0,
        central_cpu.1 - central_cpu0.1,
    );
    let synced = count_rows(&data.join("replica.db"))?;
    // The download jobs' own durations (3 run at a time), from `--json`:
    // the whole of the sync but the process start and the final commits.
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let download_ms: u64 = runs
        .iter()
        .filter_map(|r| r.get("duration_ms").and_then(serde_json::Value::as_u64))
        .sum();

    // The nightly replica verify of the same store, right after: every
    // entity's digest at both ends, all equal (the central in this process).
    println!("replica verify: lojad verify (child process)…");
    let t1 = Instant::now();
    let verify = Command::new(&lojad)
        .arg("--config")
        .arg(&config_path)
        .args(["verify", "--json"])
        .output()?;
    let verify_secs = t1.elapsed().as_secs_f64();
    let verify_report: serde_json::Value =
        serde_json::from_slice(&verify.stdout).unwrap_or_default();
    if !verify.status.success() {
        bail!(
            "lojad verify failed: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    println!("raw baseline: the same rows into SQLite (prepared statements, one transaction)…");
    let (raw_rows, raw_secs) = raw_insert(&data.join("replica.db"), &dir.join("raw.db"))?;
    if raw_rows != synced {
        println!("  note: baseline inserted {raw_rows} rows, the replica holds {synced}");
    }
    let server_rss_mb = vm_hwm_kb() as f64 / 1024.0;
    server.shutdown().await;

    let sync_rate = synced as f64 / sync_secs;
    let raw_rate = raw_rows as f64 / raw_secs;
    let replica_sizes = table_sizes(&data.join("replica.db"))?;
    let raw_sizes = table_sizes(&dir.join("raw.db"))?;
    let replica_bytes: u64 = replica_sizes.iter().map(|(_, b)| b).sum();
    let raw_bytes: u64 = raw_sizes.iter().map(|(_, b)| b).sum();
    println!();
    println!("rows synced                 {synced}");
    println!(
        "ready to sell               {sync_secs:.2} s   {:.0} rows/s   (empty data dir → `lojad sync` returns: every table the POS reads, its name index included, is applied; nothing is built afterwards)",
        sync_rate
    );
    println!(
        "  of which downloads        {:.2} s summed over {} download jobs (3 at a time); derived data built after the downloads: none",
        download_ms as f64 / 1000.0,
        runs.len()
    );
    println!(
        "raw SQLite insert           {raw_secs:.2} s   {:.0} rows/s",
        raw_rate
    );
    println!(
        "ratio ready / raw           {:.0} %   (target ≥ 50 %)",
        100.0 * sync_rate / raw_rate
    );
    println!(
        "replica size                {:.0} MB, {:.2} × the raw database's {:.0} MB   (target ≤ 1.5 ×)",
        replica_bytes as f64 / 1e6,
        replica_bytes as f64 / raw_bytes.max(1) as f64,
        raw_bytes as f64 / 1e6
    );
    for (table, bytes) in replica_sizes.iter().take(12) {
        let raw = raw_sizes
            .iter()
            .find(|(t, _)| t == table)
            .map_or("—".to_owned(), |(_, b)| {
                format!("{:.1} MB", *b as f64 / 1e6)
            });
        println!(
            "  {table:<24} {:>8.1} MB   (raw: {raw})",
            *bytes as f64 / 1e6
        );
    }
    println!(
        "replica verify, all equal   {verify_secs:.2} s   (repaired rows: {})",
        verify_report["run"]["rows"]
    );
    println!("lojad peak RSS (child)      {lojad_rss_mb:.0} MB   (target < 150 MB)");
    println!(
        "CPU during the sync         lojad {:.2} s user + {:.2} s sys; central {:.2} s user + {:.2} s sys (2 cores: {:.2} s available)",
        lojad_cpu.0,
        lojad_cpu.1,
        central_cpu.0,
        central_cpu.1,
        2.0 * sync_secs
    );
    println!(
        "bench process peak RSS      {server_rss_mb:.0} MB   (central in-process + generator + baseline)"
    );
    if args.keep {
        println!("kept {}", scratch.keep().display());
    }
    Ok(())
}

/// Bytes on disk per table, its indexes included (the FTS index's shadow
/// tables under `products_fts`), largest first; the WAL checkpointed first.
fn table_sizes(db: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let conn = rusqlite::Connection::open(db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let mut stmt = conn.prepare(
        "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize)
         FROM dbstat AS s LEFT JOIN sqlite_master AS m ON m.name = s.name
         GROUP BY 1",
    )?;
    let mut sizes: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (name, bytes) = row?;
        let table = if name.starts_with("products_fts") {
            "products_fts".to_owned()
        } else {
            name
        };
        *sizes.entry(table).or_default() += bytes.max(0) as u64;
    }
    let mut sizes: Vec<(String, u64)> = sizes.into_iter().collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
    Ok(sizes)
}

fn count_rows(replica: &Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(replica)?;
    let mut total = 0u64;
    for e in loja_protocol::ENTITIES.iter().filter(|e| !e.secret) {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", e.name), [], |r| {
            r.get(0)
        })?;
        total += n as u64;
    }
    Ok(total)
}

/// Copies every entity table's DDL and indexes (not the FTS index nor its
/// triggers) from the synced replica into a fresh file, loads each table's
/// rows in memory (not timed), and inserts them with a prepared statement,
/// all in one transaction (timed).
fn raw_insert(replica: &Path, raw: &Path) -> anyhow::Result<(u64, f64)> {
    let src = rusqlite::Connection::open(replica)?;
    let _ = std::fs::remove_file(raw);
    let mut dst = rusqlite::Connection::open(raw)?;
    dst.pragma_update(None, "journal_mode", "WAL")?;
    dst.pragma_update(None, "synchronous", "NORMAL")?;
    let mut timed = Duration::ZERO;
    let mut rows = 0u64;
    let tx = dst.transaction()?;
    for e in loja_protocol::ENTITIES.iter().filter(|e| !e.secret) {
        let ddl: Vec<String> = src
            .prepare("SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL AND type IN ('table', 'index')")?
            .query_map([e.name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for sql in ddl {
            tx.execute_batch(&sql)?;
        }
        let cols: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
        let values: Vec<Vec<SqlValue>> = src
            .prepare(&format!("SELECT {} FROM {}", cols.join(", "), e.name))?
            .query_map([], |r| {
                (0..cols.len()).map(|i| r.get::<_, SqlValue>(i)).collect()
            })?
            .collect::<Result<_, _>>()?;
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            e.name,
            cols.join(", "),
            (1..=cols.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let t = Instant::now();
        {
            let mut stmt = tx.prepare(&insert)?;
            for v in &values {
                stmt.execute(rusqlite::params_from_iter(v.iter()))?;
            }
        }
        timed += t.elapsed();
        rows += values.len() as u64;
    }
    let t = Instant::now();
    tx.commit()?;
    timed += t.elapsed();
    Ok((rows, timed.as_secs_f64()))
}
