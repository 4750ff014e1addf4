//! intake-bench: durable intake of sales over the POS HTTP API (each 201
//! after an fsync'd commit; group commit) — documents/s and p50/p99 latency —
//! next to SQLite's raw fsync'd single-row insert rate on the same disk in
//! the same run; then the time to drain a 100k-document backlog to the real
//! central over loopback.
//!
//! ```text
//! cargo run --release -p loja-devtools --bin intake-bench -- [--seconds 5] [--connections 16] [--backlog 100000] [--mix]
//! ```
//!
//! `--mix`: a store's mixed stream (70 % sales, payments, returns,
//! cancellations, stock movements) instead of sales only.
//!
//! lojad runs in this process (`daemon::start`) with its upload job
//! inactive during the intake phase; the central (`retaguarda::spawn`) also
//! runs in-process for the drain phase.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use loja_protocol::DocumentKind;
use loja_replica::{NewDocument, Outbox};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "bench-store";
const TOKEN: &str = "bench-store-token";
const POS_TOKEN: &str = "bench-pos-token";

#[derive(clap::Parser)]
#[command(
    about = "Durable sale intake over the POS API vs raw fsync'd inserts, and a backlog drain"
)]
struct Args {
    /// Seconds per load phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep-alive connections of the load phase.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Documents in the backlog drained to the central.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Single-row fsync'd inserts of the raw baseline.
    #[arg(long, default_value_t = 2_000)]
    raw_inserts: usize,
    /// A store's mixed stream instead of sales only: of every ten documents
    /// a connection sends, seven sales, a payment, a return and either a
    /// cancellation or a stock movement (issue 16).
    #[arg(long)]
    mix: bool,
}

/// The `n`-th document of a connection's mixed stream: its path and body.
/// `sales` holds the connection's sales not yet returned or cancelled.
fn mixed(n: i64, session: Uuid, sales: &mut Vec<Uuid>) -> (String, Value) {
    let at = "2026-11-26T13:00:00Z";
    match (n % 10, sales.len()) {
        (7, k) if k > 0 => {
            let sale_id = sales[k - 1];
            (
                format!("/v1/sales/{sale_id}/payments"),
                json!({"id": Uuid::new_v4(), "register": "PDV01",
                "payment": {"method": "CREDIT", "amount": 100}, "at": at}),
            )
        }
        (8, k) if k > 0 => {
            let sale_id = sales.remove(k - 1);
            (
                format!("/v1/sales/{sale_id}/returns"),
                json!({"id": Uuid::new_v4(), "register": "PDV01",
                "reason_code": "02", "operator": "001", "returned_at": at,
                "items": [{"product_code": "2", "qty": 1000, "refund": 450, "restock": true}],
                "refunds": [{"method": "CASH", "amount": 450}]}),
            )
        }
        (9, k) if k > 0 && n % 20 == 9 => {
            let sale_id = sales.remove(k - 1);
            (
                format!("/v1/sales/{sale_id}/cancellation"),
                json!({"id": Uuid::new_v4(), "register": "PDV01",
                "reason_code": "1", "operator": "001", "cancelled_at": at}),
            )
        }
        (9, _) => (
            "/v1/stock/movements".to_owned(),
            json!({"id": Uuid::new_v4(), "movement": "adjustment",
            "register": "PDV01", "operator": "001", "reason_code": "AVARIA",
            "items": [{"product_code": "1", "qty": -1000}], "moved_at": at}),
        ),
        _ => {
            let id = Uuid::new_v4();
            sales.push(id);
            ("/v1/sales".to_owned(), sale(id, session, n))
        }
    }
}

fn sale(id: Uuid, session: Uuid, number: i64) -> Value {
    let price = 100 + number % 900;
    json!({
        "id": id, "register": "PDV01", "session_id": session, "number": number, "operator": "001",
        "items": [{"product_code": "1", "barcode": "7891000315507", "qty": 2000, "unit_price": price, "total": 2 * price},
                  {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}],
        "total": 2 * price + 450,
        "payments": [{"method": "CASH", "amount": 2 * price + 450}],
        "sold_at": "2026-11-26T12:00:00Z"
    })
}

fn cash_open(session: Uuid) -> Value {
    json!({"id": session, "register": "PDV01", "operator": "001", "opening_amount": 10_000,
           "opened_at": "2026-11-26T12:00:00Z"})
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

fn config(
    dir: &Path,
    central_url: &str,
    upload_active: bool,
) -> anyhow::Result<lojad::config::Config> {
    let tasks = dir.join("tasks");
    std::fs::create_dir_all(&tasks)?;
    std::fs::write(
        tasks.join("documents.toml"),
        format!(
            "code = \"UPL\"\nsubject = \"documents\"\ndirection = \"upload\"\nevery = \"10m\"\nactive = {upload_active}\n"
        ),
    )?;
    let text = format!(
        "[store]\nid = \"{STORE}\"\ndata_dir = {:?}\n[central]\nurl = \"{central_url}\"\ntoken = \"{TOKEN}\"\ntimeout_secs = 60\n\
         [pos]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ terminal = \"PDV01\", token = \"{POS_TOKEN}\" }}]\n\
         [sync]\npush = false\nupload_batch = 500\ntasks_dir = {:?}\n",
        dir.join("data").display().to_string(),
        tasks.display().to_string()
    );
    Ok(toml::from_str(&text)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("loja-intake-bench-")
        .tempdir()?;
    let dir = scratch.path().to_path_buf();

    // ---- raw fsync'd single-row inserts, same disk ----
    let raw = raw_fsync_inserts(&dir.join("raw.db"), args.raw_inserts)?;

    // ---- intake over HTTP ----
    // The central is a closed port: download jobs fail fast and back off;
    // the upload job is inactive in this phase.
    let daemon = lojad::daemon::start(config(&dir, "http://127.0.0.1:9", false)?).await?;
    let url = format!("http://{}", daemon.pos_addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections * 2)
        .build()?;
    let session = Uuid::new_v4();
    let r = client
        .post(format!("{url}/v1/cash/open"))
        .bearer_auth(POS_TOKEN)
        .json(&cash_open(session))
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("cash open: {} {}", r.status(), r.text().await?);
    }
    let mut results = Vec::new();
    for conns in [1usize, args.connections] {
        let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
        let mut tasks = Vec::new();
        for w in 0..conns {
            let client = client.clone();
            let url = url.clone();
            let mix = args.mix;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut n = (w as i64 + 1) * 1_000_000;
                let mut sales = Vec::new();
                while Instant::now() < deadline {
                    let (path, body) = if mix {
                        mixed(n, session, &mut sales)
                    } else {
                        ("/v1/sales".to_owned(), sale(Uuid::new_v4(), session, n))
                    };
                    n += 1;
                    let t = Instant::now();
                    let r = client
                        .post(format!("{url}{path}"))
                        .bearer_auth(POS_TOKEN)
                        .json(&body)
                        .send()
                        .await?;
                    let status = r.status().as_u16();
                    let _ = r.bytes().await?;
                    if status != 201 {
                        bail!("{path} answered {status}");
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            }));
        }
        let t0 = Instant::now();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        let secs = t0.elapsed().as_secs_f64();
        lat.sort();
        results.push((
            conns,
            lat.len() as f64 / secs,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
        ));
    }
    let state = daemon.state.clone();
    let pending = state.intake.with_outbox(|o| o.stats()).await??.pending;
    daemon.shutdown().await?;
    drop(state);

    // ---- drain a backlog to the real central ----
    let data = dir.join("data");
    let backlog = args.backlog.saturating_sub(pending as usize);
    let fill = Instant::now();
    let data2 = data.clone();
    tokio::task::spawn_blocking(move || fill_outbox(&data2, session, backlog)).await??;
    let fill_secs = fill.elapsed().as_secs_f64();
    let total = backlog as u64 + pending;
    let db = dir.join("central.db");
    retaguarda::ensure_store(&db, STORE, "master", TOKEN)?;
    let server = retaguarda::spawn(retaguarda::ServerConfig {
        db: db.clone().into(),
        listen: "127.0.0.1:0".parse()?,
        admin_token: "bench-admin".into(),
        tls_cert: None,
        tls_key: None,
    })
    .await?;
    let cfg = config(&dir, &server.url, true)?;
    let t0 = Instant::now();
    let run = lojad::cli::once::upload_once(&cfg).await?;
    let drain_secs = t0.elapsed().as_secs_f64();
    let at_central: i64 =
        rusqlite::Connection::open(&db)?
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))?;
    server.shutdown().await;

    println!();
    println!(
        "raw SQLite fsync'd single-row insert   {:.0} rows/s   p50 {:.2} ms   p99 {:.2} ms   ({} inserts)",
        raw.0, raw.1, raw.2, args.raw_inserts
    );
    for (conns, rate, p50, p99) in &results {
        println!(
            "POS API {}, {conns:>2} connection(s)  {rate:.0} docs/s   p50 {p50:.2} ms   p99 {p99:.2} ms   ({:.0} % of raw)",
            if args.mix {
                "mixed stream"
            } else {
                "sales       "
            },
            100.0 * rate / raw.0
        );
    }
    println!(
        "backlog drain                          {total} documents in {drain_secs:.1} s ({:.0} docs/s), outcome {:?}, {at_central} at the central (filled in {fill_secs:.1} s)",
        total as f64 / drain_secs,
        run.outcome
    );
    Ok(())
}

/// (rows/s, p50 ms, p99 ms) of single-row INSERTs, each its own fsync'd
/// transaction (WAL, synchronous=FULL), as the outbox commits.
fn raw_fsync_inserts(path: &Path, n: usize) -> anyhow::Result<(f64, f64, f64)> {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE docs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL)")?;
    let body = sale(Uuid::nil(), Uuid::nil(), 1).to_string();
    let mut stmt = conn.prepare("INSERT INTO docs (id, body) VALUES (?1, ?2)")?;
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        stmt.execute(rusqlite::params![Uuid::new_v4().to_string(), body])?;
        lat.push(t.elapsed());
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    Ok((n as f64 / secs, pct(&lat, 0.5), pct(&lat, 0.99)))
}

fn fill_outbox(data: &Path, session: Uuid, n: usize) -> anyhow::Result<()> {
    let mut outbox = Outbox::open(data)?;
    let mut number = 1i64;
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let docs: Vec<NewDocument> = (0..k)
            .map(|_| {
                number += 1;
                let mut body = sale(Uuid::nil(), session, number);
                if let Some(o) = body.as_object_mut() {
                    o.remove("id");
                }
                NewDocument {
                    id: Uuid::new_v4(),
                    kind: DocumentKind::Sale,
                    body,
                }
            })
            .collect();
        for r in outbox.accept_many(&docs)? {
            r?;
        }
        left -= k;
    }
    Ok(())
}
