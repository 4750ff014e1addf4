//! pos-bench: barcode lookups over HTTP against the POS API with a 1.1 M-row
//! replica, at the load a store makes and at saturation.
//!
//! - **A store's load (the targets):** `--terminals` POS terminals (50), each
//!   sending one barcode lookup every `--interval-ms` (200 ms), open loop (a
//!   request goes out on its tick whatever the previous answer is doing; its
//!   latency counts from its send), for `--store-seconds` (30 s): idle, then
//!   while 200k-row price batches apply back to back. Targets: p99 < 1 ms
//!   idle, < 5 ms during the applies.
//! - **Saturation (information only):** keep-alive closed loops, against two
//!   baselines measured in the same run: `GET /v1/health` on the same server
//!   (the cost of HTTP alone) and the same point query straight on SQLite.
//!
//! ```text
//! cargo run --release -p loja-devtools --bin pos-bench -- [--products 200000] [--seconds 5] [--connections 32] [--store-seconds 30]
//! ```
//!
//! The load generator is in this binary, on one tokio thread; the server
//! runs on its own two-worker runtime, as `lojad run` does on a 2-core store
//! PC. When Debian's `wrk` is installed, the alternating health/lookup
//! comparison is also run with it, from its own process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loja_protocol::check::{cpf_check_digits, gtin_check_digit};
use loja_protocol::{FeedItem, FeedPage, Op, Watermark, entity_named};
use loja_replica::CatalogReader;
use lojad::api::{ApiOptions, ReadMode};
use lojad::config::Config;
use lojad::state::AppState;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "bench-token";
const STORE: &str = "0042";
const PAGE: usize = 20_000;

#[derive(clap::Parser)]
#[command(
    about = "Barcode lookups over HTTP against GET /v1/health and the direct SQLite query",
    long_about = "Builds a replica of 5.5×N rows (N products, barcodes, prices, stock, taxes; N/2 customers), \
serves the POS API on 127.0.0.1 and measures barcode lookups against GET /v1/health \
and the direct SQLite point query."
)]
struct Args {
    /// Products (the replica holds 5.5× as many rows).
    #[arg(long, default_value_t = 200_000)]
    products: usize,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Price rows applied during the second phase.
    #[arg(long, default_value_t = 200_000)]
    price_batch: usize,
    /// Tokio workers of the server.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    server_workers: u16,
    /// POS terminals of the store-load phases.
    #[arg(long, default_value_t = 50)]
    terminals: usize,
    /// Milliseconds between one terminal's lookups.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Seconds per store-load phase (idle, during applies).
    #[arg(long, default_value_t = 30.0)]
    store_seconds: f64,
    /// Sales of one product accepted and not yet reflected by the central,
    /// for the "hot product" probe (its stock counts every one of them).
    #[arg(long, default_value_t = 1_000)]
    unreflected: usize,
}

fn ean13(i: usize) -> String {
    let body = format!("789{:09}", i);
    let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
    format!("{body}{}", gtin_check_digit(&digits))
}

fn cpf(i: usize) -> String {
    let body_s = format!("{:09}", 100_000_000 + i);
    let body: [u8; 9] = std::array::from_fn(|k| body_s.as_bytes()[k] - b'0');
    let [a, b] = cpf_check_digits(&body);
    format!("{body_s}{a}{b}")
}

const WORDS: [&str; 16] = [
    "arroz",
    "feijao",
    "cafe",
    "leite",
    "acucar",
    "oleo",
    "sabao",
    "biscoito",
    "macarrao",
    "farinha",
    "suco",
    "refrigerante",
    "queijo",
    "manteiga",
    "iogurte",
    "chocolate",
];

fn row(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Applies `rows` of `entity` in pages of PAGE rows; returns rows applied.
fn apply_all(
    state: &AppState,
    entity: &str,
    rows: impl Iterator<Item = Map<String, Value>>,
) -> anyhow::Result<u64> {
    let e = entity_named(entity).context("entity")?;
    let mut rows = rows.peekable();
    let mut total = 0;
    while rows.peek().is_some() {
        let chunk: Vec<Map<String, Value>> = rows.by_ref().take(PAGE).collect();
        let mut catalog = state
            .catalog
            .lock()
            .map_err(|_| anyhow::anyhow!("catalog poisoned"))?;
        let after = catalog.watermark(e)?;
        let items: Vec<FeedItem> = chunk
            .into_iter()
            .enumerate()
            .map(|(i, row)| FeedItem {
                seq: after.0 + 1 + i as u64,
                op: Op::Upsert,
                row,
            })
            .collect();
        total += items.len() as u64;
        let next = Watermark(after.0 + items.len() as u64);
        let page = FeedPage {
            entity: entity.into(),
            after,
            items,
            next,
            more: false,
            held_until: None,
        };
        catalog.apply_page(e, &page)?;
    }
    Ok(total)
}

/// The point query straight on a reader, one thread, `barcodes` in order.
fn direct_probe(
    reader: &CatalogReader,
    barcodes: &[String],
    what: &str,
    json: bool,
    snapshot: bool,
) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(1024);
    let mut lat = Vec::with_capacity(barcodes.len());
    let t = Instant::now();
    for b in barcodes {
        let q = Instant::now();
        if snapshot {
            reader.refresh_snapshot()?;
        }
        if json {
            out.clear();
            std::hint::black_box(reader.product_json_by_barcode(b, STORE, &mut out)?);
        } else {
            std::hint::black_box(reader.product_by_barcode(b, STORE)?);
        }
        lat.push(q.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "direct SQLite {what} (1 thread): {:.0} q/s, mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        barcodes.len() as f64 / secs,
        secs * 1e6 / barcodes.len() as f64,
        p(0.5),
        p(0.99)
    );
    reader.end_snapshot()?;
    Ok(())
}

/// A product with `n` of this store's sales the central has not reflected
/// yet: its stock answer sums them (issue 16). Lookups of it against a
/// product without any, alternated, same reader, same run.
fn hot_product_probe(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use loja_protocol::DocumentKind;
    use loja_replica::{NewDocument, Outbox};
    let mut outbox = Outbox::open(dir)?;
    let session = uuid::Uuid::new_v4();
    outbox.accept(&NewDocument {
        id: session,
        kind: DocumentKind::CashOpen,
        body: json!({"register": "BENCH", "operator": "001", "opening_amount": 0,
                     "opened_at": "2026-11-30T08:00:00Z"}),
    })?;
    let sales: Vec<NewDocument> = (0..n)
        .map(|i| NewDocument {
            id: uuid::Uuid::new_v4(),
            kind: DocumentKind::Sale,
            body: json!({"register": "BENCH", "session_id": session, "number": i + 1, "operator": "001",
                         "items": [{"product_code": "0", "qty": 1000, "unit_price": 100, "total": 100}],
                         "total": 100, "payments": [{"method": "CASH", "amount": 100}],
                         "sold_at": "2026-11-30T09:00:00Z"}),
        })
        .collect();
    for chunk in sales.chunks(500) {
        for r in outbox.accept_many(chunk)? {
            r?;
        }
    }
    let reader = CatalogReader::open(dir)?;
    let (hot, cold) = (ean13(0), ean13(1));
    let mut out = Vec::with_capacity(1024);
    let mut lat = [Vec::with_capacity(20_000), Vec::with_capacity(20_000)];
    for i in 0..40_000 {
        let (k, b) = if i % 2 == 0 { (0, &hot) } else { (1, &cold) };
        let q = Instant::now();
        out.clear();
        std::hint::black_box(reader.product_json_by_barcode(b, STORE, &mut out)?);
        lat[k].push(q.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    let stock = reader
        .product_by_barcode(&hot, STORE)?
        .and_then(|p| p.stock_qty);
    let pct = |v: &mut Vec<u32>, q: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0
    };
    let [mut h, mut c] = lat;
    let (h50, h99, c50, c99) = (
        pct(&mut h, 0.5),
        pct(&mut h, 0.99),
        pct(&mut c, 0.5),
        pct(&mut c, 0.99),
    );
    println!(
        "hot product ({n} unreflected sales; stock answered {stock:?}): p50 {h50:.1} µs, p99 {h99:.1} µs; \
         a product without any (same run): p50 {c50:.1} µs, p99 {c99:.1} µs; p99 ratio {:.2}×",
        h99 / c99
    );
    Ok(())
}

fn build_replica(state: &AppState, n: usize) -> anyhow::Result<(u64, Duration)> {
    let t = Instant::now();
    let mut rows = 0;
    rows += apply_all(
        state,
        "products",
        (0..n).map(|i| {
            row(json!({"code": i.to_string(), "name": format!("{} {} {}", WORDS[i % 16], WORDS[(i / 16) % 16], i),
                       "unit": "UN", "ncm": "22021000", "active": true}))
        }),
    )?;
    rows += apply_all(
        state,
        "barcodes",
        (0..n).map(|i| row(json!({"barcode": ean13(i), "product_code": i.to_string()}))),
    )?;
    rows += apply_all(
        state,
        "prices",
        (0..n).map(|i| row(json!({"product_code": i.to_string(), "price_list": "base", "price": 100 + (i % 9_900) as i64}))),
    )?;
    rows += apply_all(
        state,
        "stock",
        (0..n).map(|i| row(json!({"product_code": i.to_string(), "qty": (i % 500) as i64 * 1000}))),
    )?;
    rows += apply_all(
        state,
        "product_taxes",
        (0..n).map(|i| {
            row(json!({"product_code": i.to_string(), "ecf_tribute": "T18", "ncm": "22021000", "cfop": "5102"}))
        }),
    )?;
    rows += apply_all(
        state,
        "icms_by_state",
        (0..n).map(|i| {
            row(json!({"product_code": i.to_string(), "uf": "SP", "icms_cst": "00", "icms_rate_bp": 1800}))
        }),
    )?;
    rows += apply_all(
        state,
        "pis_cofins",
        (0..n).map(|i| {
            row(
                json!({"product_code": i.to_string(), "pis_cst": "01", "pis_rate_bp": 165,
                       "cofins_cst": "01", "cofins_rate_bp": 760}),
            )
        }),
    )?;
    rows += apply_all(
        state,
        "store_setup",
        std::iter::once(row(json!({"name": "uf", "value": "SP"}))),
    )?;
    rows += apply_all(
        state,
        "customers",
        (0..n / 2)
            .map(|i| row(json!({"document": cpf(i), "name": format!("Cliente {i}"), "uf": "SP"}))),
    )?;
    Ok((rows, t.elapsed()))
}

/// One keep-alive connection's closed loop: latencies in microseconds.
/// The requests are built before the clock starts and the answers read
/// into one reused buffer: the load generator shares the two cores with
/// the server, so what it spends is taken from what is measured.
async fn connection(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> anyhow::Result<Vec<u32>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lat = Vec::with_capacity(200_000);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let req = &requests[rng.usize(..requests.len())];
        let t = Instant::now();
        exchange(&mut stream, req, &mut buf).await?;
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    Ok(lat)
}

/// Sends one request and reads its whole answer (head, then Content-Length
/// bytes of body) into `buf`; an answer other than 200 is an error. One
/// answer at a time is in flight, so the buffer starts empty each time.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<()> {
    stream.write_all(req).await?;
    buf.clear();
    let mut scanned: usize = 0;
    let (head_len, body_len, status) = loop {
        let from = scanned.saturating_sub(3);
        if let Some(end) = buf[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + from)
        {
            let head = std::str::from_utf8(&buf[..end])?;
            let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .context("no content-length")?;
            break (end + 4, len, status);
        }
        scanned = buf.len();
        if stream.read_buf(buf).await? == 0 {
            bail!("connection closed");
        }
    };
    while buf.len() < head_len + body_len {
        buf.reserve(head_len + body_len - buf.len());
        if stream.read_buf(buf).await? == 0 {
            bail!("connection closed");
        }
    }
    if status != 200 {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&buf[head_len..head_len + body_len])
        );
    }
    Ok(())
}

/// A store's load: `terminals` POS terminals, each sending one request every
/// `interval`, open loop, for `secs` (or until `until` is set, when given).
/// A request goes out on its tick on an idle connection of its terminal (a
/// new one, connect included in its latency, when all are busy), so a slow
/// answer never delays the next request. Its latency counts from when its
/// task starts, not from the tick: tokio's timer fires up to a millisecond
/// after a tick, which is the generator's lateness, not the server's (and
/// since no request waits for another's answer, the server cannot cause it).
fn open_loop(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    terminals: usize,
    interval: Duration,
    secs: f64,
    until: Option<Arc<AtomicBool>>,
) -> anyhow::Result<Load> {
    client.block_on(async {
        let started = Instant::now();
        let cpu = process_cpu_secs();
        let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..terminals)
            .map(|t| {
                let requests = requests.clone();
                let until = until.clone();
                tokio::spawn(async move {
                    let idle: Arc<tokio::sync::Mutex<Vec<tokio::net::TcpStream>>> = Arc::default();
                    let mut rng = fastrand::Rng::with_seed(11 + t as u64);
                    // Terminals start spread over one interval, not in step.
                    let mut tick = tokio::time::Instant::now()
                        + interval.mul_f64(t as f64 / terminals.max(1) as f64);
                    let mut sent = Vec::new();
                    loop {
                        let done = match &until {
                            Some(u) => u.load(Ordering::Relaxed),
                            None => tick >= end,
                        };
                        if done {
                            break;
                        }
                        tokio::time::sleep_until(tick).await;
                        let req = requests[rng.usize(..requests.len())].clone();
                        let idle = idle.clone();
                        sent.push(tokio::spawn(async move {
                            let at = Instant::now();
                            let taken = idle.lock().await.pop();
                            let mut stream = match taken {
                                Some(s) => s,
                                None => {
                                    let s = tokio::net::TcpStream::connect(addr).await?;
                                    s.set_nodelay(true)?;
                                    s
                                }
                            };
                            let mut buf = Vec::with_capacity(4096);
                            exchange(&mut stream, &req, &mut buf).await?;
                            let lat = at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            idle.lock().await.push(stream);
                            anyhow::Ok(lat)
                        }));
                        tick += interval;
                    }
                    let mut lat = Vec::with_capacity(sent.len());
                    for s in sent {
                        lat.push(s.await??);
                    }
                    anyhow::Ok(lat)
                })
            })
            .collect();
        Load::collect(tasks, started, cpu).await
    })
}

/// The request bytes for each path, with the token when `auth`.
fn requests(paths: &[String], auth: bool) -> Arc<Vec<Vec<u8>>> {
    let auth_header = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    Arc::new(
        paths
            .iter()
            .map(|p| {
                format!("GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth_header}\r\n").into_bytes()
            })
            .collect(),
    )
}

struct Load {
    requests: usize,
    secs: f64,
    lat: Vec<u32>,
    /// CPU time of this process (server, load generator and kernel work on
    /// their behalf) over the phase.
    cpu_secs: f64,
}

/// User + system CPU time of this process so far (Unix; elsewhere 0, and
/// the CPU-per-request column reads 0: the figures of record are Linux's).
#[cfg(not(unix))]
fn process_cpu_secs() -> f64 {
    0.0
}

/// User + system CPU time of this process so far.
#[cfg(unix)]
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl Load {
    /// The load the `tasks` measured (each its latencies), from `started`
    /// with this process's CPU time `cpu` then.
    async fn collect(
        tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<u32>>>>,
        started: Instant,
        cpu: f64,
    ) -> anyhow::Result<Load> {
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu_secs = process_cpu_secs() - cpu;
        lat.sort_unstable();
        Ok(Load {
            requests: lat.len(),
            secs,
            lat,
            cpu_secs,
        })
    }

    fn empty() -> Load {
        Load {
            requests: 0,
            secs: 0.0,
            lat: Vec::new(),
            cpu_secs: 0.0,
        }
    }
    /// Adds a slice of the same kind of load.
    fn add(&mut self, other: Load) {
        self.requests += other.requests;
        self.secs += other.secs;
        self.cpu_secs += other.cpu_secs;
        self.lat.extend(other.lat);
        self.lat.sort_unstable();
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() as f64 * p).ceil() as usize).clamp(1, self.lat.len()) - 1;
        self.lat[i] as f64 / 1000.0
    }
}

/// Runs `connections` closed loops for `secs` (or until `until` is set, when given).
fn load(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    secs: f64,
    until: Option<Arc<AtomicBool>>,
) -> anyhow::Result<Load> {
    client.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let cpu = process_cpu_secs();
        let tasks: Vec<_> = (0..connections)
            .map(|c| {
                tokio::spawn(connection(
                    addr,
                    requests.clone(),
                    stop.clone(),
                    7 + c as u64,
                ))
            })
            .collect();
        match until {
            Some(done) => {
                while !done.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            None => tokio::time::sleep(Duration::from_secs_f64(secs)).await,
        }
        stop.store(true, Ordering::Relaxed);
        Load::collect(tasks, started, cpu).await
    })
}

fn report(name: &str, l: &Load, baseline: Option<&Load>) {
    let ratio = baseline
        .map(|b| format!("{:5.1} %", 100.0 * l.rps() / b.rps()))
        .unwrap_or_else(|| "      ".into());
    println!(
        "{name:<44} {:>9.0} req/s {ratio}  p50 {:6.3} ms  p99 {:6.3} ms  p99.9 {:6.3} ms  max {:7.3} ms  (n={}, {:.1} CPU µs/req, {:.2} cores busy)",
        l.rps(),
        l.pct(0.50),
        l.pct(0.99),
        l.pct(0.999),
        l.lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        l.requests,
        l.cpu_secs * 1e6 / l.requests.max(1) as f64,
        l.cpu_secs / l.secs
    );
}

fn main() -> anyhow::Result<()> {
    let a = <Args as clap::Parser>::parse();
    let scratch = tempfile::Builder::new().prefix("pos-bench-").tempdir()?;
    let dir = scratch.path().to_path_buf();
    let config: Config = serde_json::from_value(json!({
        "store": {"id": STORE, "data_dir": dir},
        "central": {"url": "http://127.0.0.1:9", "token": "x"},
        "pos": {"listen": "127.0.0.1:0", "tokens": [{"terminal": "BENCH", "token": TOKEN}]}
    }))?;
    let state = AppState::open(config)?;
    println!(
        "pos-bench: {} cores, data dir {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.display()
    );
    let (rows, took) = build_replica(&state, a.products)?;
    println!(
        "replica: {rows} rows applied in {:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );

    // Baseline 1: the point query straight on SQLite, one thread.
    let reader = CatalogReader::open(&dir)?;
    let mut rng = fastrand::Rng::with_seed(1);
    let picks: Vec<usize> = (0..50_000).map(|_| rng.usize(..a.products)).collect();
    let barcodes: Vec<String> = picks.iter().map(|&i| ean13(i)).collect();
    for b in barcodes.iter().take(2_000) {
        reader
            .product_by_barcode(b, STORE)?
            .context("known barcode not found")?;
    }
    // What the handler runs (the answer's JSON written from the rows), then
    // the typed ProductView (the same, parsed back).
    for (json, snapshot) in [(true, false), (true, true), (false, false)] {
        let what = match (json, snapshot) {
            (true, false) => "product_json_by_barcode, from the tables",
            (true, true) => "product_json_by_barcode, from the tables, kept snapshot",
            _ => "product_by_barcode (typed), from the tables",
        };
        direct_probe(&reader, &barcodes, what, json, snapshot)?;
    }
    reader.end_snapshot()?;
    drop(reader);
    if a.unreflected > 0 {
        hot_product_probe(&dir, a.unreflected)?;
    }
    // The same on two threads at once, each with its own reader: what the
    // two cores give SQLite alone.
    {
        let threads = 2;
        let t = Instant::now();
        let per: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|k| {
                    let dir = &dir;
                    let barcodes = &barcodes;
                    s.spawn(move || -> anyhow::Result<f64> {
                        let reader = CatalogReader::open(dir)?;
                        let mut out = Vec::with_capacity(1024);
                        let t = Instant::now();
                        for b in barcodes.iter().skip(k * 7) {
                            reader.refresh_snapshot()?;
                            out.clear();
                            std::hint::black_box(
                                reader.product_json_by_barcode(b, STORE, &mut out)?,
                            );
                        }
                        reader.end_snapshot()?;
                        Ok(t.elapsed().as_secs_f64() * 1e6 / barcodes.len() as f64)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("panicked"))?)
                .collect::<anyhow::Result<_>>()
        })?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "direct SQLite product_json_by_barcode, kept snapshot ({threads} threads at once): {:.0} q/s, mean {:.1} µs per query per thread",
            (threads * barcodes.len()) as f64 / secs,
            per.iter().sum::<f64>() / per.len() as f64
        );
    }
    probe_sqlite(&dir, &barcodes)?;

    // The server: two workers by default, as `lojad run` on a 2-core store
    // PC; one listener per read mode.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(a.server_workers))
        .enable_all()
        .build()?;
    let mut addrs = Vec::new();
    for mode in [ReadMode::Inline, ReadMode::Blocking] {
        let app = lojad::api::router_with(
            state.clone(),
            ApiOptions {
                read_mode: mode,
                ..ApiOptions::default()
            },
        );
        let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        addrs.push((mode, listener.local_addr()?));
        server.spawn(lojad::api::serve_router(
            listener,
            app,
            std::future::pending(),
        ));
    }
    // The server exactly as `lojad run` builds it (default options).
    let default_addr = {
        let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        server.spawn(lojad::api::serve(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        addr
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // Baseline 2: the router in-process (no HTTP, no sockets), one thread:
    // what auth, routing, the reader pool and the JSON answer add to the query.
    let health_paths = vec!["/v1/health".to_owned()];
    let lookup_paths: Vec<String> = barcodes
        .iter()
        .map(|b| format!("/v1/products/by-barcode/{b}"))
        .collect();
    // The same products by code (product i has barcode ean13(i)).
    let code_paths: Vec<String> = picks.iter().map(|i| format!("/v1/products/{i}")).collect();
    in_process(&client, &state, &health_paths, "health")?;
    in_process(
        &client,
        &state,
        &lookup_paths,
        "barcode lookup, from the tables",
    )?;
    in_process(&client, &state, &code_paths, "code lookup, from the tables")?;
    let health_reqs = requests(&health_paths, false);
    let lookup_reqs = requests(&lookup_paths, true);

    println!(
        "\nload: {} keep-alive connections, {} s per phase\n",
        a.connections, a.seconds
    );
    let (_, inline_addr) = addrs[0];
    // One idle phase: `connections` closed loops on `addr` for `secs`.
    let idle_load = |addr: SocketAddr, requests: &Arc<Vec<Vec<u8>>>, secs: f64| {
        load(&client, addr, requests.clone(), a.connections, secs, None)
    };
    // Warm-up.
    idle_load(inline_addr, &lookup_reqs, 1.0)?;
    let health = idle_load(inline_addr, &health_reqs, a.seconds)?;
    report("GET /v1/health (HTTP alone)", &health, None);
    let mut idle = Vec::new();
    for (mode, addr) in &addrs {
        let l = idle_load(*addr, &lookup_reqs, a.seconds)?;
        report(
            &format!("barcode lookup, idle, reads {mode:?}"),
            &l,
            Some(&health),
        );
        idle.push((*mode, l));
    }

    // Health and the lookup (inline) alternately, in slices of 0.5 s: the
    // load of this shared machine drifts within a run, and alternating
    // puts both under the same drift.
    let slices = ((a.seconds / 0.5).round() as usize).max(1);
    let (mut health_i, mut lookup_i) = (Load::empty(), Load::empty());
    for _ in 0..slices {
        health_i.add(idle_load(inline_addr, &health_reqs, 0.5)?);
        lookup_i.add(idle_load(inline_addr, &lookup_reqs, 0.5)?);
    }
    report(
        &format!("GET /v1/health, {slices} slices of 0.5 s"),
        &health_i,
        None,
    );
    report(
        "barcode lookup, inline, alternating",
        &lookup_i,
        Some(&health_i),
    );

    // The same alternation with wrk, a load generator in its own process
    // (Debian's `wrk`), when it is installed: a check of the figure above
    // that owes nothing to this binary's client.
    let wrk_ratio = wrk_alternating(
        inline_addr,
        &dir,
        &health_paths,
        &lookup_paths,
        a.connections,
        a.seconds,
    )?;

    // Price batches applied through Catalog::apply_page at background
    // priority, as lojad's download job applies pages, back to back until
    // `done` (each round prices every product anew).
    let applies = |secs: f64, done: Arc<AtomicBool>| {
        let state = state.clone();
        let n = a.price_batch;
        let products = a.products;
        std::thread::spawn(move || -> anyhow::Result<(u64, u32, Duration)> {
            lojad::priority::lower_this_thread();
            let t = Instant::now();
            let (mut rows, mut rounds) = (0u64, 0u32);
            while rounds == 0 || t.elapsed().as_secs_f64() < secs {
                let round = rounds as usize;
                rows += apply_all(
                    &state,
                    "prices",
                    (0..n).map(|i| {
                        let p = i % products;
                        row(json!({"product_code": p.to_string(), "price_list": "base",
                                   "price": 200 + ((p + round) % 9_000) as i64}))
                    }),
                )?;
                rounds += 1;
            }
            done.store(true, Ordering::Relaxed);
            Ok((rows, rounds, t.elapsed()))
        })
    };

    // Saturation during an apply, per read mode (information).
    let mut during = Vec::new();
    for (mode, addr) in &addrs {
        let done = Arc::new(AtomicBool::new(false));
        let applier = applies(0.0, done.clone());
        let l = load(
            &client,
            *addr,
            lookup_reqs.clone(),
            a.connections,
            a.seconds,
            Some(done),
        )?;
        let (rows, _, took) = applier
            .join()
            .map_err(|_| anyhow::anyhow!("applier panicked"))??;
        report(
            &format!("barcode lookup, during apply, reads {mode:?}"),
            &l,
            Some(&health),
        );
        println!(
            "{:<44} {rows} price rows in {:.2} s ({:.0} rows/s) in pages of {PAGE}",
            "  (the apply)",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64()
        );
        during.push((*mode, l));
    }

    // A store's load, on the server as `lojad run` builds it.
    let interval = Duration::from_millis(a.interval_ms.max(1));
    println!(
        "\nstore load: {} terminals, one barcode lookup each every {} ms ({:.0} req/s), open loop, {} s per phase\n",
        a.terminals,
        interval.as_millis(),
        a.terminals as f64 / interval.as_secs_f64(),
        a.store_seconds
    );
    let store_idle = open_loop(
        &client,
        default_addr,
        lookup_reqs.clone(),
        a.terminals,
        interval,
        a.store_seconds,
        None,
    )?;
    report("store load, idle", &store_idle, None);
    let done = Arc::new(AtomicBool::new(false));
    let applier = applies(a.store_seconds, done.clone());
    let store_busy = open_loop(
        &client,
        default_addr,
        lookup_reqs.clone(),
        a.terminals,
        interval,
        a.store_seconds,
        Some(done),
    )?;
    let (rows, rounds, took) = applier
        .join()
        .map_err(|_| anyhow::anyhow!("applier panicked"))??;
    report("store load, during price applies", &store_busy, None);
    println!(
        "{:<44} {rounds} batches, {rows} price rows in {:.2} s ({:.0} rows/s), back to back",
        "  (the applies)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );

    let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
    println!("\ntargets (a store's load): p99 < 1 ms idle, < 5 ms during the applies");
    println!(
        "  idle: p99 {:.3} ms -> {}",
        store_idle.pct(0.99),
        verdict(store_idle.pct(0.99) < 1.0)
    );
    println!(
        "  during the applies: p99 {:.3} ms -> {}",
        store_busy.pct(0.99),
        verdict(store_busy.pct(0.99) < 5.0)
    );
    println!("saturation (information, no target):");
    println!(
        "  alternating (reads Inline): {:.1} % of health",
        100.0 * lookup_i.rps() / health_i.rps()
    );
    if let Some(r) = wrk_ratio {
        println!("  alternating, wrk: {r:.1} % of health");
    }
    for ((mode, i), (_, d)) in idle.iter().zip(&during) {
        println!(
            "  reads {mode:?}: {:.1} % of health, p99 idle {:.3} ms, p99 during apply {:.3} ms",
            100.0 * i.rps() / health.rps(),
            i.pct(0.99),
            d.pct(0.99),
        );
    }
    server.shutdown_timeout(Duration::from_secs(1));
    drop(state);
    Ok(())
}

/// The router in-process (no HTTP, no sockets), one thread, on a router of
/// its own: `paths` in turn, 20,000 requests.
fn in_process(
    client: &tokio::runtime::Runtime,
    state: &AppState,
    paths: &[String],
    what: &str,
) -> anyhow::Result<()> {
    let app = lojad::api::router_with(
        state.clone(),
        ApiOptions {
            read_mode: ReadMode::Inline,
            ..ApiOptions::default()
        },
    );
    let n = 20_000;
    let auth = axum::http::HeaderValue::from_str(&format!("Bearer {TOKEN}"))?;
    let t = client.block_on(async {
        use tower::ServiceExt as _;
        let t = Instant::now();
        for path in paths.iter().cycle().take(n) {
            let req = axum::http::Request::get(path.as_str())
                .header("authorization", auth.clone())
                .body(axum::body::Body::empty())?;
            let resp = app.clone().oneshot(req).await?;
            anyhow::ensure!(resp.status() == 200, "in-process {path}: {}", resp.status());
            std::hint::black_box(axum::body::to_bytes(resp.into_body(), 1 << 20).await?);
        }
        anyhow::Ok(t.elapsed())
    })?;
    println!(
        "router in-process, {what} (1 thread): {:.1} µs per request",
        t.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

/// One wrk run: requests per second and p99 in ms.
struct WrkRun {
    rps: f64,
    p99_ms: f64,
}

/// Runs `wrk` (one thread, `connections` connections) for `secs` against
/// random paths of `paths_file`, with the token when `auth`.
fn wrk_run(
    addr: SocketAddr,
    dir: &std::path::Path,
    paths_file: &std::path::Path,
    auth: bool,
    connections: usize,
    secs: u64,
) -> anyhow::Result<WrkRun> {
    let script = dir.join(if auth { "lookup.lua" } else { "health.lua" });
    let header = if auth {
        format!("wrk.headers[\"Authorization\"] = \"Bearer {TOKEN}\"\n")
    } else {
        String::new()
    };
    std::fs::write(
        &script,
        format!(
            "local paths = {{}}\n\
             for line in io.lines(\"{}\") do paths[#paths + 1] = line end\n\
             local n = #paths\n\
             {header}\
             request = function() return wrk.format(\"GET\", paths[math.random(n)]) end\n",
            paths_file.display()
        ),
    )?;
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    anyhow::ensure!(
        !text.contains("Non-2xx"),
        "wrk saw answers other than 2xx: {text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("no `{prefix}` in wrk's output: {text}"))
    };
    let rps: f64 = field("Requests/sec:")?.parse()?;
    let p99 = field("99%")?;
    let p99_ms = if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>()? / 1000.0
    } else if let Some(v) = p99.strip_suffix("ms") {
        v.parse::<f64>()?
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>()? * 1000.0
    } else {
        bail!("wrk's p99 `{p99}` has no unit")
    };
    Ok(WrkRun { rps, p99_ms })
}

/// Health and the lookup alternately under wrk, three rounds; the ratio
/// in percent, or None when wrk is not installed.
fn wrk_alternating(
    addr: SocketAddr,
    dir: &std::path::Path,
    health_paths: &[String],
    lookup_paths: &[String],
    connections: usize,
    seconds: f64,
) -> anyhow::Result<Option<f64>> {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("wrk is not installed (Debian: apt install wrk): its check is skipped");
        return Ok(None);
    }
    let health_file = dir.join("health.paths");
    let lookup_file = dir.join("lookup.paths");
    std::fs::write(&health_file, health_paths.join("\n"))?;
    std::fs::write(&lookup_file, lookup_paths.join("\n"))?;
    let secs = ((seconds / 3.0).round() as u64).max(1);
    let (mut health, mut lookup) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        health.push(wrk_run(addr, dir, &health_file, false, connections, secs)?);
        lookup.push(wrk_run(addr, dir, &lookup_file, true, connections, secs)?);
    }
    let mean = |runs: &[WrkRun]| runs.iter().map(|r| r.rps).sum::<f64>() / runs.len() as f64;
    let worst = |runs: &[WrkRun]| runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
    let ratio = 100.0 * mean(&lookup) / mean(&health);
    println!(
        "{:<44} {:>9.0} req/s          p99 {:6.3} ms (worst of 3 runs of {secs} s)",
        "wrk: GET /v1/health, 3 runs",
        mean(&health),
        worst(&health)
    );
    println!(
        "{:<44} {:>9.0} req/s {ratio:5.1} %  p99 {:6.3} ms (worst of 3 runs of {secs} s)",
        "wrk: barcode lookup, cards, alternating",
        mean(&lookup),
        worst(&lookup)
    );
    Ok(Some(ratio))
}

/// The seven statements product_by_barcode ran before it became one
/// statement, on a plain rusqlite connection, reading every column but
/// building no JSON: what SQLite alone cost, with an 8 MB page cache and
/// with mmap (kept as the reference of the old lookup).
fn probe_sqlite(dir: &std::path::Path, barcodes: &[String]) -> anyhow::Result<()> {
    use rusqlite::{Connection, OpenFlags};
    const STATEMENTS: [&str; 7] = [
        "SELECT product_code FROM barcodes WHERE barcode = ?1",
        "SELECT * FROM products WHERE code = ?1",
        "SELECT barcode FROM barcodes WHERE product_code = ?1 ORDER BY barcode",
        "SELECT price_list, price, promo_price, promo_until FROM prices WHERE product_code = ?1 \
         ORDER BY CASE WHEN price_list = '0042' THEN 0 WHEN price_list = 'base' THEN 2 ELSE 1 END, price_list LIMIT 1",
        "SELECT * FROM product_taxes WHERE product_code = ?1",
        "SELECT qty FROM stock WHERE product_code = ?1",
        "SELECT * FROM kits WHERE kit_code = ?1 ORDER BY component_code",
    ];
    for (name, pragmas) in [
        ("cache 8 MB", "PRAGMA cache_size = -8192;"),
        (
            "cache 8 MB + mmap 1 GB",
            "PRAGMA cache_size = -8192; PRAGMA mmap_size = 1073741824;",
        ),
    ] {
        let conn =
            Connection::open_with_flags(dir.join("replica.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.execute_batch(pragmas)?;
        let run = |b: &str| -> anyhow::Result<()> {
            let code: String = conn
                .prepare_cached(STATEMENTS[0])?
                .query_row([b], |r| r.get(0))?;
            for sql in &STATEMENTS[1..] {
                let mut stmt = conn.prepare_cached(sql)?;
                let n = stmt.column_count();
                let mut rows = stmt.query([&code])?;
                while let Some(r) = rows.next()? {
                    for i in 0..n {
                        std::hint::black_box(r.get_ref(i)?);
                    }
                }
            }
            Ok(())
        };
        for b in barcodes.iter().take(2_000) {
            run(b)?;
        }
        let t = Instant::now();
        for b in barcodes {
            run(b)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  raw rusqlite, the old 7 statements, {name}: {:.1} µs per lookup",
            secs * 1e6 / barcodes.len() as f64
        );
    }
    Ok(())
}
