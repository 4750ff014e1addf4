//! Harness for the reference central: runs the real `retaguarda-server`
//! binary (built as `e2e-retaguarda-server`) as a child process on a loopback
//! port it picks itself, in a fresh temporary directory, and talks to it over
//! HTTP. The child is killed and the directory removed on drop (set
//! `LOJA_KEEP_TEMP=1` to keep it; the server's log is `<dir>/central.log`).
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! use loja_e2e::central::Central;
//! let central = Central::builder().catalog(1_000, 200).start()?;
//! central.add_store("loja1", "master", "token-loja1").await?;
//! let page = central.feed("loja1", "token-loja1", "products", 0, 500).await?;
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use loja_protocol::{BatchAck, DocumentBatch, Events, FeedItem, FeedPage};
use serde_json::{Value, json};

use crate::scratch::ScratchDir;

/// How long `start` waits for the server to report its port.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `e2e-retaguarda-server` binary: `$LOJA_E2E_RETAGUARDA_BIN`, else next
/// to the test executable (see [`e2e_bin`]).
pub fn server_bin() -> anyhow::Result<PathBuf> {
    e2e_bin("e2e-retaguarda-server", "LOJA_E2E_RETAGUARDA_BIN")
}

/// One of this package's `e2e-*` binaries: `$env_var` when set, else found
/// next to the test executable's directory (`target/<profile>/`), where
/// Cargo builds the package's binaries before its integration tests run.
pub fn e2e_bin(name: &str, env_var: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("cannot find {name} near {} (set {env_var})", exe.display())
}

/// An HTTP client for loopback tests (rustls' ring provider installed once).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// An HTTP client that also trusts the CA certificate in `ca_pem`.
pub fn client_trusting(ca_pem: &Path) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem)?)?;
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .no_proxy()
        .add_root_certificate(ca)
        .build()?)
}

/// What to start.
#[derive(Debug, Clone)]
pub struct CentralBuilder {
    bin: Option<PathBuf>,
    admin_token: String,
    catalog: Option<(u64, u64, bool, u64)>,
    centrals: Vec<(String, String)>,
    stores: Vec<(String, String, String)>,
    dir: Option<PathBuf>,
    tls: Option<Tls>,
    database: Option<String>,
}

/// Serve HTTPS with this certificate chain and key (PEM files); the harness's
/// own client trusts `ca` (PEM).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl CentralBuilder {
    /// The binary to run (default: [`server_bin`]); e.g. `env!("CARGO_BIN_EXE_e2e-retaguarda-server")`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = token.to_owned();
        self
    }
    /// Run `gen --products P --customers C --stock` before serving.
    pub fn catalog(mut self, products: u64, customers: u64) -> Self {
        self.catalog = Some((products, customers, true, 1));
        self
    }
    /// Like [`catalog`](Self::catalog) with every knob.
    pub fn catalog_with(mut self, products: u64, customers: u64, stock: bool, seed: u64) -> Self {
        self.catalog = Some((products, customers, stock, seed));
        self
    }
    /// Add a central (`node add --kind central`) before serving, before the stores.
    pub fn central(mut self, id: &str, parent: &str) -> Self {
        self.centrals.push((id.into(), parent.into()));
        self
    }
    /// Add a store (`node add`) before serving.
    pub fn store(mut self, id: &str, parent: &str, token: &str) -> Self {
        self.stores.push((id.into(), parent.into(), token.into()));
        self
    }
    /// Serve over TLS (`serve --tls-cert --tls-key`); `url()` is then https.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Use this directory (kept on drop) instead of a fresh temporary one.
    /// Serve from this database (`postgres://…`) instead of a SQLite file
    /// in the central's directory.
    pub fn database(mut self, location: &str) -> Self {
        self.database = Some(location.to_owned());
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn start(self) -> anyhow::Result<Central> {
        let bin = match self.bin {
            Some(b) => b,
            None => server_bin()?,
        };
        let (dir, scratch) = match self.dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                (d, None)
            }
            None => {
                let scratch = ScratchDir::new("central");
                (scratch.to_path_buf(), Some(scratch))
            }
        };
        let db = dir.join("c.db");
        let database = match self.database {
            Some(url) => Some(url),
            // The whole suite on PostgreSQL: a database of its own per central.
            None => match std::env::var("LOJA_E2E_POSTGRES") {
                Ok(server) if !server.is_empty() => Some(crate::postgres::fresh_database(&server)?),
                _ => None,
            },
        };
        let location: std::ffi::OsString = match &database {
            Some(url) => url.into(),
            None => db.clone().into(),
        };
        for (id, parent) in &self.centrals {
            let out = Command::new(&bin)
                .args(["node", "add", "--db"])
                .arg(&location)
                .args(["--id", id, "--parent", parent, "--kind", "central"])
                .output()?;
            if !out.status.success() {
                bail!("node add {id}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        for (id, parent, token) in &self.stores {
            let out = Command::new(&bin)
                .args(["node", "add", "--db"])
                .arg(&location)
                .args([
                    "--id", id, "--parent", parent, "--kind", "store", "--token", token,
                ])
                .output()?;
            if !out.status.success() {
                bail!("node add {id}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        // After the stores: their stock and setup are their own.
        if let Some((products, customers, stock, seed)) = self.catalog {
            run_gen(&bin, Path::new(&location), products, customers, stock, seed)?;
        }
        let mut central = Central {
            child: None,
            bin,
            dir,
            _scratch: scratch,
            db,
            location,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            url: String::new(),
            admin_token: self.admin_token,
            client: match &self.tls {
                Some(tls) => client_trusting(&tls.ca)?,
                None => client(),
            },
            tls: self.tls,
        };
        central.launch("127.0.0.1:0")?;
        Ok(central)
    }
}

fn run_gen(
    bin: &Path,
    db: &Path,
    products: u64,
    customers: u64,
    stock: bool,
    seed: u64,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(["gen", "--db"]).arg(db).args([
        "--products",
        &products.to_string(),
        "--customers",
        &customers.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    if stock {
        cmd.arg("--stock");
    }
    let out = cmd.output().context("run gen")?;
    if !out.status.success() {
        bail!("gen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running `retaguarda-server serve` child process.
pub struct Central {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    /// The directory when it is this harness's own, removed after the
    /// child is killed (fields drop after `Drop::drop`).
    _scratch: Option<ScratchDir>,
    db: PathBuf,
    /// What `serve --db` is given: `db`, or a PostgreSQL URL.
    location: std::ffi::OsString,
    addr: SocketAddr,
    url: String,
    admin_token: String,
    client: reqwest::Client,
    tls: Option<Tls>,
}

impl std::fmt::Debug for Central {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Central")
            .field("url", &self.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer: status and JSON body (`Value::Null` when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(self) -> anyhow::Result<Value> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(anyhow!("HTTP {}: {}", self.status, self.body))
        }
    }
}

impl Central {
    pub fn builder() -> CentralBuilder {
        CentralBuilder {
            bin: None,
            admin_token: "e2e-admin-token".into(),
            catalog: None,
            centrals: Vec::new(),
            stores: Vec::new(),
            dir: None,
            tls: None,
            database: None,
        }
    }

    /// An empty central (only node `master`).
    pub fn start() -> anyhow::Result<Central> {
        Central::builder().start()
    }

    fn launch(&mut self, listen: &str) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("central.log"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--db"])
            .arg(&self.location)
            .args(["--listen", listen]);
        if let Some(tls) = &self.tls {
            cmd.arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        let mut child = cmd
            .env("RETAGUARDA_ADMIN_TOKEN", &self.admin_token)
            .env(
                "RUST_LOG",
                std::env::var("LOJA_E2E_CENTRAL_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads the port line, then drains stdout until the child exits.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        self.child = Some(child);
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let log = std::fs::read_to_string(self.dir.join("central.log")).unwrap_or_default();
                self.kill();
                bail!("central did not report its port within {START_TIMEOUT:?}; log:\n{log}");
            }
        };
        self.addr = addr
            .parse()
            .with_context(|| format!("bad address {addr}"))?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.url = format!("{scheme}://{}", self.addr);
        Ok(())
    }

    /// Kills the server process (the database stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same port and database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let listen = self.addr.to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch(&listen) {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
    /// The database as `--db` takes it: the SQLite file, or the PostgreSQL URL.
    pub fn location(&self) -> &std::ffi::OsStr {
        &self.location
    }

    /// The SQLite file (when the central runs on SQLite).
    pub fn db_path(&self) -> &Path {
        &self.db
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("central.log")).unwrap_or_default()
    }

    /// Runs the binary's `gen` subcommand against the live database. Long-polls
    /// are not woken by it (the data is there for the next feed request).
    pub fn gen_catalog(
        &self,
        products: u64,
        customers: u64,
        stock: bool,
    ) -> anyhow::Result<String> {
        run_gen(&self.bin, &self.db, products, customers, stock, 1)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// Any admin request; `body` is sent as JSON.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// Imports JSON lines (each value one line); fails on a non-2xx answer.
    /// Returns `{"applied", "changed", "last_seq"}`.
    pub async fn import(&self, entity: &str, lines: &[Value]) -> anyhow::Result<Value> {
        let mut body = String::new();
        for l in lines {
            body.push_str(&l.to_string());
            body.push('\n');
        }
        self.import_raw(entity, body).await?.ok()
    }

    /// Imports public rows of master (`{"op":"upsert","row":…}` per row).
    pub async fn import_rows(&self, entity: &str, rows: &[Value]) -> anyhow::Result<Value> {
        let lines: Vec<Value> = rows
            .iter()
            .map(|r| json!({"op": "upsert", "row": r}))
            .collect();
        self.import(entity, &lines).await
    }

    /// Imports `store`'s own rows (`{"op":"upsert","node":store,"public":false,"row":…}`):
    /// stock, store setup, a store's parameter override.
    pub async fn import_own(
        &self,
        entity: &str,
        store: &str,
        rows: &[Value],
    ) -> anyhow::Result<Value> {
        let lines: Vec<Value> = rows
            .iter()
            .map(|r| json!({"op": "upsert", "node": store, "public": false, "row": r}))
            .collect();
        self.import(entity, &lines).await
    }

    /// Posts a raw import body, whatever the answer.
    pub async fn import_raw(
        &self,
        entity: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Answer> {
        let req = self
            .client
            .post(format!("{}/v1/admin/import/{entity}", self.url))
            .bearer_auth(&self.admin_token)
            .header("content-type", "application/x-ndjson")
            .body(body);
        self.send(req).await
    }

    pub async fn add_store(&self, id: &str, parent: &str, token: &str) -> anyhow::Result<()> {
        let body = json!({"id": id, "parent": parent, "kind": "store", "token": token});
        self.admin(reqwest::Method::POST, "/v1/admin/nodes", Some(body))
            .await?
            .ok()?;
        Ok(())
    }

    pub async fn add_central(&self, id: &str, parent: &str) -> anyhow::Result<()> {
        let body = json!({"id": id, "parent": parent, "kind": "central"});
        self.admin(reqwest::Method::POST, "/v1/admin/nodes", Some(body))
            .await?
            .ok()?;
        Ok(())
    }

    pub async fn set_availability(&self, entity: &str, minutes: u32) -> anyhow::Result<()> {
        let path = format!("/v1/admin/availability/{entity}");
        self.admin(
            reqwest::Method::PUT,
            &path,
            Some(json!({"minutes": minutes})),
        )
        .await?
        .ok()?;
        Ok(())
    }

    pub async fn add_exception(&self, store: &str) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::PUT,
            &format!("/v1/admin/exceptions/{store}"),
            None,
        )
        .await?
        .ok()?;
        Ok(())
    }

    pub async fn remove_exception(&self, store: &str) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::DELETE,
            &format!("/v1/admin/exceptions/{store}"),
            None,
        )
        .await?
        .ok()?;
        Ok(())
    }

    /// Sets every entity's availability to 0 minutes: nothing is ever held back.
    pub async fn release_everything(&self) -> anyhow::Result<()> {
        for e in loja_protocol::ENTITIES {
            self.set_availability(e.name, 0).await?;
        }
        Ok(())
    }

    /// The qty of `store`'s own stock row of `product` once the central's
    /// figure reflects the store's documents up to at least `seq` (bounded
    /// wait).
    pub async fn stock_reflecting(
        &self,
        store: &str,
        token: &str,
        product: &str,
        seq: u64,
    ) -> anyhow::Result<i64> {
        let what = format!("the central's stock of {product} at {store} reflecting document {seq}");
        crate::store::wait_for(&what, std::time::Duration::from_secs(20), || async move {
            let (items, _) = self.feed_all(store, token, "stock", 0, 1000).await?;
            Ok(items
                .iter()
                .rev()
                .find(|i| i.row.get("product_code") == Some(&Value::from(product)))
                .filter(|i| {
                    i.row
                        .get("reflects_store_seq")
                        .and_then(Value::as_u64)
                        .is_some_and(|r| r >= seq)
                })
                .and_then(|i| i.row.get("qty").and_then(Value::as_i64)))
        })
        .await
    }

    /// A feed request, whatever the answer.
    pub async fn feed_raw(
        &self,
        store: &str,
        token: &str,
        entity: &str,
        after: u64,
        limit: u64,
    ) -> anyhow::Result<Answer> {
        let req = self
            .client
            .get(format!("{}/v1/stores/{store}/feeds/{entity}", self.url))
            .query(&[("after", after), ("limit", limit)])
            .bearer_auth(token);
        self.send(req).await
    }

    /// One feed page (fails on a non-2xx answer).
    pub async fn feed(
        &self,
        store: &str,
        token: &str,
        entity: &str,
        after: u64,
        limit: u64,
    ) -> anyhow::Result<FeedPage> {
        let v = self
            .feed_raw(store, token, entity, after, limit)
            .await?
            .ok()?;
        Ok(serde_json::from_value(v)?)
    }

    /// Pages until `more` is false; returns the items and the final `next`.
    pub async fn feed_all(
        &self,
        store: &str,
        token: &str,
        entity: &str,
        after: u64,
        limit: u64,
    ) -> anyhow::Result<(Vec<FeedItem>, u64)> {
        let mut items = Vec::new();
        let mut after = after;
        for _ in 0..100_000 {
            let page = self.feed(store, token, entity, after, limit).await?;
            items.extend(page.items);
            after = page.next.0;
            if !page.more {
                return Ok((items, after));
            }
        }
        bail!("feed {entity} did not end")
    }

    /// The events long-poll.
    pub async fn events(
        &self,
        store: &str,
        token: &str,
        after: Option<u64>,
        wait_secs: u64,
    ) -> anyhow::Result<Events> {
        let mut req = self
            .client
            .get(format!("{}/v1/stores/{store}/events", self.url))
            .query(&[("wait", wait_secs)])
            .bearer_auth(token);
        if let Some(a) = after {
            req = req.query(&[("after", a)]);
        }
        let v = self.send(req).await?.ok()?;
        Ok(serde_json::from_value(v)?)
    }

    pub async fn post_documents(
        &self,
        store: &str,
        token: &str,
        batch: &DocumentBatch,
    ) -> anyhow::Result<BatchAck> {
        let req = self
            .client
            .post(format!("{}/v1/stores/{store}/documents", self.url))
            .bearer_auth(token)
            .json(batch);
        let v = self.send(req).await?.ok()?;
        Ok(serde_json::from_value(v)?)
    }

    /// One page of the ERP's document queue: `{"documents": [...], "next", "more"}`.
    pub async fn documents(&self, after: u64, limit: u64) -> anyhow::Result<Value> {
        self.admin(
            reqwest::Method::GET,
            &format!("/v1/admin/documents?after={after}&limit={limit}"),
            None,
        )
        .await?
        .ok()
    }

    /// A store's download control: `{"store", "downloads": [...]}`.
    pub async fn downloads(&self, store: &str) -> anyhow::Result<Value> {
        self.admin(
            reqwest::Method::GET,
            &format!("/v1/admin/stores/{store}/downloads"),
            None,
        )
        .await?
        .ok()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.kill();
    }
}
