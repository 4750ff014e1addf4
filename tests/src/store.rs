//! Harness for a real `lojad` (built as `e2e-lojad`): writes its config in a
//! fresh temporary directory, runs `lojad --config PATH run` as a child
//! process (POS API on a loopback port it picks; the port is read from the
//! daemon's `lojad: POS API listening on http://ADDR` line), kills it with
//! SIGKILL and restarts it, runs the one-shot commands (`sync`, `upload`,
//! `status --json`), and reads its replica and outbox read-only.
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! use loja_e2e::{central::Central, store::Store};
//! let central = Central::builder().catalog(1_000, 200).store("loja1", "master", "tok1").start()?;
//! let mut store = Store::builder(central.url(), "loja1", "tok1").start()?;
//! store.wait_synced(&central, std::time::Duration::from_secs(60)).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use loja_protocol::registry::ColType;
use loja_protocol::{ENTITIES, Entity, Op, entity_named};
use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use crate::central::{Answer, Central};
use crate::config::ConfigBuilder;
use crate::scratch::ScratchDir;

/// How long `start` waits for lojad to report its POS address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the one-shot commands.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The POS token the harness configures.
pub const POS_TOKEN: &str = "e2e-pos-token";
pub const POS_TERMINAL: &str = "PDV01";

/// One integration-log row: (code, outcome, rows, message).
pub type LogRun = (String, String, i64, Option<String>);

/// A key (canonical key text) → row map of one entity.
pub type Rows = BTreeMap<String, Map<String, Value>>;

/// A store to set up: its config (a [`ConfigBuilder`]; the data dir and
/// the tasks dir are set by `build`, in the store's fresh directory) and
/// the binary to run.
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    bin: Option<PathBuf>,
    config: ConfigBuilder,
    tasks: Vec<(String, String)>,
}

impl StoreBuilder {
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }
    /// `[sync] page_size` (rows per feed page).
    pub fn page_size(mut self, n: u32) -> Self {
        self.config = self.config.page_size(n);
        self
    }
    pub fn upload_batch(mut self, n: u32) -> Self {
        self.config = self.config.upload_batch(n);
        self
    }
    pub fn push(mut self, on: bool) -> Self {
        self.config = self.config.push(on);
        self
    }
    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.config = self.config.timeout_secs(s);
        self
    }
    /// A task file in the store's `tasks_dir` (overrides the embedded one of the same code).
    pub fn task(mut self, file: &str, toml: &str) -> Self {
        self.tasks.push((file.into(), toml.into()));
        self
    }
    /// `[central] ca_cert`: an extra CA (PEM) to trust for the central.
    pub fn ca_cert(mut self, pem: impl Into<PathBuf>) -> Self {
        self.config = self.config.ca_cert(Some(pem.into()));
        self
    }
    pub fn log_level(mut self, level: &str) -> Self {
        self.config = self.config.log_level(level);
        self
    }
    /// Any other change to the config (see [`ConfigBuilder`]).
    pub fn config(mut self, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Self {
        self.config = f(self.config);
        self
    }

    /// Writes the config without starting the daemon.
    pub fn build(self) -> anyhow::Result<Store> {
        let bin = self.bin.unwrap_or_else(crate::lojad);
        let dir = ScratchDir::new("lojad");
        let data_dir = dir.join("data");
        let mut tasks_dir = None;
        if !self.tasks.is_empty() {
            let tdir = dir.join("tasks");
            std::fs::create_dir_all(&tdir)?;
            for (file, text) in &self.tasks {
                std::fs::write(tdir.join(file), text)?;
            }
            tasks_dir = Some(tdir);
        }
        let config = self.config.data_dir(&data_dir).tasks_dir(tasks_dir);
        let config_path = config.write(dir.join("lojad.toml"))?;
        Ok(Store {
            child: None,
            bin,
            dir,
            config_path,
            data_dir,
            store_id: config.store_id().to_owned(),
            token: config.central_token().to_owned(),
            pos_addr: None,
            client: crate::central::client(),
            starts: 0,
        })
    }

    /// Writes the config and starts `lojad run`.
    pub fn start(self) -> anyhow::Result<Store> {
        let mut store = self.build()?;
        store.start()?;
        Ok(store)
    }
}

/// A store PC: its config, data dir and (when running) its `lojad run` child.
pub struct Store {
    child: Option<Child>,
    bin: PathBuf,
    /// Removed after the child is killed (fields drop after `Drop::drop`).
    dir: ScratchDir,
    config_path: PathBuf,
    data_dir: PathBuf,
    store_id: String,
    token: String,
    pos_addr: Option<SocketAddr>,
    client: reqwest::Client,
    starts: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("pos", &self.pos_addr)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn builder(central_url: &str, store_id: &str, token: &str) -> StoreBuilder {
        // The data dir is set by `build`; the POS API on a port lojad picks.
        let config = ConfigBuilder::new(store_id, "", central_url, token)
            .pos_port(0)
            .timeout_secs(10)
            .page_size(2_000)
            .upload_batch(200)
            .push(true)
            .log_level("info");
        StoreBuilder {
            bin: None,
            config,
            tasks: Vec::new(),
        }
    }

    /// Starts `lojad --config PATH run` and waits for its POS address.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("lojad is already running");
        }
        self.starts += 1;
        let log_path = self.dir.join("lojad.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        writeln!(log, "---- start #{} ----", self.starts)?;
        let mut child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config_path)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("LOJA_E2E_LOJAD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?))
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("POS API listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                let _ = writeln!(log, "{line}");
            }
        });
        self.child = Some(child);
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                self.kill();
                bail!(
                    "lojad did not report its POS address within {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
        };
        self.pos_addr = Some(
            addr.parse()
                .with_context(|| format!("bad POS address {addr:?}"))?,
        );
        Ok(())
    }

    /// SIGKILL (no graceful shutdown): the power-cut case.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pos_addr = None;
    }

    /// SIGTERM and wait (bounded) for a clean exit; SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<Option<i32>> {
        let Some(mut c) = self.child.take() else {
            return Ok(None);
        };
        self.pos_addr = None;
        #[cfg(unix)]
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc_kill(c.id() as i32, 15);
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = c.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                bail!("lojad did not stop within {grace:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn store_id(&self) -> &str {
        &self.store_id
    }
    pub fn token(&self) -> &str {
        &self.token
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("lojad.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT` of the running daemon's POS API.
    pub fn pos_url(&self) -> anyhow::Result<String> {
        self.pos_addr
            .map(|a| format!("http://{a}"))
            .ok_or_else(|| anyhow!("lojad is not running"))
    }

    /// Runs a one-shot command (`sync`, `upload`, `status --json`…), bounded.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(child.wait_with_output()?);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("lojad {args:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `lojad sync [ENTITY…]` (fails on a non-zero exit).
    pub fn sync(&self, entities: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["sync"];
        args.extend_from_slice(entities);
        let out = self.command(&args)?;
        if !out.status.success() {
            bail!(
                "lojad sync failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `lojad status --json`.
    pub fn status_json(&self) -> anyhow::Result<Value> {
        let out = self.command(&["status", "--json"])?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "status --json: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    // ---- the POS API ----

    pub async fn pos_get(&self, path: &str) -> anyhow::Result<Answer> {
        let req = self
            .client
            .get(format!("{}{path}", self.pos_url()?))
            .bearer_auth(POS_TOKEN);
        send(req).await
    }

    pub async fn pos_post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let req = self
            .client
            .post(format!("{}{path}", self.pos_url()?))
            .bearer_auth(POS_TOKEN)
            .json(body);
        send(req).await
    }

    // ---- the replica, read-only ----

    fn open_ro(&self, file: &str) -> anyhow::Result<rusqlite::Connection> {
        let path = self.data_dir.join(file);
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("open {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Every row of an entity's replica table, typed by the registry.
    pub fn replica_rows(&self, entity: &str) -> anyhow::Result<Rows> {
        let e = entity_named(entity).ok_or_else(|| anyhow!("unknown entity {entity}"))?;
        if e.secret {
            bail!("{entity} is secret: it has no replica table");
        }
        let conn = self.open_ro("replica.db")?;
        let cols: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
        let sql = format!("SELECT {} FROM {}", cols.join(", "), e.name);
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Rows::new();
        while let Some(r) = rows.next()? {
            let mut map = Map::new();
            for (i, col) in e.columns.iter().enumerate() {
                let v = match r.get_ref(i)? {
                    ValueRef::Null => continue,
                    ValueRef::Integer(n) if col.ty == ColType::Bool => Value::Bool(n != 0),
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(f) => Value::from(f),
                    ValueRef::Text(t) => {
                        let s = String::from_utf8_lossy(t).into_owned();
                        if col.ty == ColType::Json {
                            serde_json::from_str(&s).unwrap_or(Value::String(s))
                        } else {
                            Value::String(s)
                        }
                    }
                    ValueRef::Blob(_) => continue,
                };
                map.insert(col.name.to_owned(), v);
            }
            out.insert(e.key_text(&map), map);
        }
        Ok(out)
    }

    /// Rows in an entity's replica table.
    pub fn replica_count(&self, entity: &str) -> anyhow::Result<u64> {
        let e = entity_named(entity).ok_or_else(|| anyhow!("unknown entity {entity}"))?;
        let conn = self.open_ro("replica.db")?;
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", e.name), [], |r| {
            r.get(0)
        })?;
        Ok(n as u64)
    }

    /// The stored watermark of an entity (0 before its first page).
    pub fn watermark(&self, entity: &str) -> anyhow::Result<u64> {
        let conn = self.open_ro("replica.db")?;
        let seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM watermarks WHERE entity = ?1",
                [entity],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok(None)
                } else {
                    Err(e)
                }
            })?;
        Ok(seq.unwrap_or(0) as u64)
    }

    /// Tickets of the journal: (kind, subject, status, range_from, range_to, error).
    pub fn tickets(&self) -> anyhow::Result<Vec<TicketRow>> {
        let conn = self.open_ro("journal.db")?;
        let mut stmt = conn.prepare(
            "SELECT id, kind, subject, status, range_from, range_to, items, error, length(response) FROM tickets ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TicketRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                subject: r.get(2)?,
                status: r.get(3)?,
                range_from: r.get(4)?,
                range_to: r.get(5)?,
                items: r.get(6)?,
                error: r.get(7)?,
                response_bytes: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The integration log: (code, outcome, rows, message), oldest first.
    pub fn log_runs(&self) -> anyhow::Result<Vec<LogRun>> {
        let conn = self.open_ro("journal.db")?;
        let mut stmt =
            conn.prepare("SELECT code, outcome, rows, message FROM integration_log ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbox counts by status (`pending`, `delivered`, `failed`).
    pub fn outbox_counts(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let conn = self.open_ro("outbox.db")?;
        let mut stmt = conn.prepare("SELECT status, count(*) FROM documents GROUP BY status")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Compares every entity's replica table with the central's view for
    /// this store; returns the differences (empty = equal, row for row).
    pub async fn diff_with_central(
        &self,
        central: &Central,
        entities: &[&str],
    ) -> anyhow::Result<Vec<String>> {
        let chosen: Vec<&Entity> = if entities.is_empty() {
            ENTITIES.iter().filter(|e| !e.secret).collect()
        } else {
            entities
                .iter()
                .map(|n| entity_named(n).ok_or_else(|| anyhow!("unknown entity {n}")))
                .collect::<Result<_, _>>()?
        };
        let mut diffs = Vec::new();
        for e in chosen {
            let want = central_rows(central, &self.store_id, &self.token, e.name).await?;
            let have = self.replica_rows(e.name)?;
            diffs.extend(diff_rows(e.name, &want, &have));
        }
        Ok(diffs)
    }

    /// Waits until the replica equals the central's view (all entities), bounded.
    pub async fn wait_synced(&self, central: &Central, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let diffs = self
                .diff_with_central(central, &[])
                .await
                .unwrap_or_else(|e| vec![e.to_string()]);
            if diffs.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "replica still differs from the central after {timeout:?}: {} differences, first: {:?}\nlog tail:\n{}",
                    diffs.len(),
                    &diffs[..diffs.len().min(5)],
                    tail(&self.log(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// One journal ticket, as the harness reads it.
#[derive(Debug, Clone)]
pub struct TicketRow {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub status: String,
    pub range_from: Option<i64>,
    pub range_to: Option<i64>,
    pub items: i64,
    pub error: Option<String>,
    pub response_bytes: i64,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

/// The central's current view of one entity for a store: its whole feed
/// folded (upserts replace, tombstones remove), keyed like the replica.
///
/// Note: reading a feed as the store records a download at the central;
/// tests release the availability windows first (`release_everything`).
pub async fn central_rows(
    central: &Central,
    store: &str,
    token: &str,
    entity: &str,
) -> anyhow::Result<Rows> {
    let e = entity_named(entity).ok_or_else(|| anyhow!("unknown entity {entity}"))?;
    let (items, _) = central.feed_all(store, token, entity, 0, 20_000).await?;
    let mut rows = Rows::new();
    for item in items {
        let key = e.key_text(&item.row);
        match item.op {
            Op::Upsert => {
                let row: Map<String, Value> =
                    item.row.into_iter().filter(|(_, v)| !v.is_null()).collect();
                rows.insert(key, row);
            }
            Op::Delete => {
                rows.remove(&key);
            }
        }
    }
    Ok(rows)
}

/// Differences between two row sets, as messages.
pub fn diff_rows(entity: &str, want: &Rows, have: &Rows) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in want {
        match have.get(k) {
            None => out.push(format!("{entity} {k}: missing at the store")),
            Some(h) if h != w => out.push(format!("{entity} {k}: central {w:?} != store {h:?}")),
            _ => {}
        }
    }
    for k in have.keys() {
        if !want.contains_key(k) {
            out.push(format!("{entity} {k}: at the store only"));
        }
    }
    out
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` until it returns `Some`, bounded.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(unix)]
unsafe fn libc_kill(pid: i32, sig: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    unsafe {
        kill(pid, sig);
    }
}
