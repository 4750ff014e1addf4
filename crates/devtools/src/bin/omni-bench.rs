//! omni-bench: how long a store's omni-channel action takes to reach the
//! central while the store is online (issue 17, item 9), beside a plain
//! sale's delivery time measured in the same run.
//!
//! ```text
//! cargo run --release -p loja-devtools --bin omni-bench -- [--actions 1000] [--sales 1000] [--concurrency 4] [--think-ms 100]
//! ```
//!
//! The central (`retaguarda::spawn`) and one store (`lojad::daemon::start`,
//! exactly as `lojad run` starts: push long-poll on, the default tasks, the
//! upload job woken by every accepted document) run in this process, each
//! on its own two-worker runtime; the clients run on a third, one thread.
//! The channel creates `--actions / 4` pickup orders (two lines each) for
//! the store at the central (`omni_orders` availability 0); once the store
//! lists them all, `--concurrency` workers each take an order and post its
//! four actions one after another (accept, start_picking, pick, ready),
//! pausing `--think-ms` after each, and after each action a plain sale
//! (register PDV01, cash open first) while the sales last.
//!
//! Measured for every action and every sale, from its 201 at the store:
//! - **ERP queue**: when its document first shows in the central's
//!   `GET /v1/admin/documents` (one poller, an `after=` cursor, every
//!   `--poll-ms`);
//! - **central order** (actions): when the central's order first shows its
//!   lines in the action's state or beyond (one poller reading
//!   `GET /v1/admin/omni/orders/{id}` of the orders with an action not yet
//!   seen, every `--poll-ms`).
//!
//! Both pollers add up to `--poll-ms` to every figure (the same for actions
//! and sales). The goal of the issue: p99 ≤ 2 s with the store online.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "bench-store";
const TOKEN: &str = "bench-store-token";
const POS_TOKEN: &str = "bench-pos-token";
const ADMIN_TOKEN: &str = "bench-admin-token";

/// A pickup line's states in the order the bench's actions take it.
const STATES: [&str; 5] = ["assigned", "accepted", "picking", "picked", "ready"];
/// Each order's actions: (action, the state it expects to leave).
const ACTIONS: [(&str, &str); 4] = [
    ("accept", "assigned"),
    ("start_picking", "accepted"),
    ("pick", "picking"),
    ("ready", "picked"),
];

#[derive(clap::Parser)]
#[command(
    about = "Omni action latency (201 at the store → the central and its ERP queue) vs a plain sale's, same run"
)]
struct Args {
    /// Omni actions posted in all (four per pickup order).
    #[arg(long, default_value_t = 1000)]
    actions: usize,
    /// Plain sales interleaved with the actions (the baseline).
    #[arg(long, default_value_t = 1000)]
    sales: usize,
    /// Orders worked on at once (one worker each, its actions in sequence).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// A worker's mean pause after each action and after each sale (each
    /// pause drawn uniformly between half and one and a half of it, so that
    /// the workers do not post in step).
    #[arg(long, default_value_t = 100)]
    think_ms: u64,
    /// The pollers' interval.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// How long to wait, after the last post, for everything to show at the central.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

/// What the pollers saw and when.
#[derive(Default)]
struct Seen {
    /// Document id → when it first showed in the ERP queue.
    queue: HashMap<String, Instant>,
    /// Omni actions in the queue whose outcome was not `applied`.
    refused: Vec<String>,
    /// Document ids the queue held more than once.
    twice: usize,
    /// Action id → when the central's order first showed its state.
    order: HashMap<String, Instant>,
}

/// One posted document: its id, when its 201 came and how long the POST took.
struct Posted {
    id: String,
    at: Instant,
    post: Duration,
}

/// Actions posted and not yet seen at the central's order: order id →
/// (state rank the action leads to, action id).
type Pending = Mutex<BTreeMap<String, Vec<(usize, String)>>>;

struct Shared {
    http: reqwest::Client,
    pos: String,
    central: String,
    seen: Mutex<Seen>,
    pending: Pending,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_order(i: usize) -> Value {
    let id = format!("ob{i}");
    json!({"id": id, "number": format!("N{id}"), "channel": "site", "delivery": "pickup",
           "paid": true, "payments": [{"method": "PIX", "amount": 1300}],
           "created_at": "2026-11-30T10:00:00Z", "store": STORE,
           "lines": [{"line_id": "1", "product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000},
                     {"line_id": "2", "product_code": "2", "qty": 1000, "unit_price": 300, "total": 300}]})
}

fn sale(id: Uuid, session: Uuid, number: usize) -> Value {
    let price = 100 + (number % 900) as i64;
    json!({
        "id": id, "register": "PDV01", "session_id": session, "number": number, "operator": "001",
        "items": [{"product_code": "1", "barcode": "7891000315507", "qty": 2000, "unit_price": price, "total": 2 * price},
                  {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}],
        "total": 2 * price + 450,
        "payments": [{"method": "CASH", "amount": 2 * price + 450}],
        "sold_at": loja_protocol::time::now_rfc3339()
    })
}

fn jitter(mean: Duration) -> Duration {
    mean.mul_f64(0.5 + fastrand::f64())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn config(dir: &Path, central_url: &str) -> anyhow::Result<lojad::config::Config> {
    // Everything as `lojad run` has it by default (push on, the embedded
    // tasks), but the POS port, chosen at run time.
    let text = format!(
        "[store]\nid = \"{STORE}\"\ndata_dir = {:?}\n[central]\nurl = \"{central_url}\"\ntoken = \"{TOKEN}\"\n\
         [pos]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ terminal = \"PDV01\", token = \"{POS_TOKEN}\" }}]\n",
        dir.join("store").display().to_string(),
    );
    Ok(toml::from_str(&text)?)
}

fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    if args.actions == 0 || args.concurrency == 0 {
        bail!("--actions and --concurrency must be at least 1");
    }
    let scratch = tempfile::Builder::new()
        .prefix("loja-omni-bench-")
        .tempdir()?;
    let dir = scratch.path().to_path_buf();

    // The central: a small catalog with this store's stock.
    let db = dir.join("central.db");
    retaguarda::ensure_store(&db, STORE, "master", TOKEN)?;
    let spec = retaguarda::CatalogSpec {
        products: 1000,
        customers: 100,
        stock: true,
        seed: 1,
    };
    retaguarda::generate(&db, &spec)?;
    let central_rt = runtime(2)?;
    let server = central_rt.block_on(retaguarda::spawn(retaguarda::ServerConfig {
        db: db.clone().into(),
        listen: "127.0.0.1:0".parse()?,
        admin_token: ADMIN_TOKEN.into(),
        tls_cert: None,
        tls_key: None,
    }))?;
    // reqwest is built without a default TLS provider (loopback HTTP here).
    retaguarda::install_crypto_provider();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let orders = args.actions.div_ceil(ACTIONS.len());
    client_rt.block_on(setup_central(&http, &server.url, orders))?;

    // The store, on its own runtime (two workers, as `lojad run`).
    let store_rt = runtime(2)?;
    let daemon = store_rt.block_on(lojad::daemon::start(config(&dir, &server.url)?))?;
    let result = client_rt.block_on(bench(&args, http, daemon.pos_addr, &server.url, orders));
    store_rt.block_on(daemon.shutdown())?;
    central_rt.block_on(server.shutdown());
    result
}

async fn admin(
    http: &reqwest::Client,
    central: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http
        .request(method, format!("{central}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{path}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Nothing held back (every entity's availability 0 minutes, `omni_orders`
/// among them), then the channel's orders.
async fn setup_central(http: &reqwest::Client, central: &str, orders: usize) -> anyhow::Result<()> {
    for e in loja_protocol::ENTITIES {
        admin(
            http,
            central,
            reqwest::Method::PUT,
            &format!("/v1/admin/availability/{}", e.name),
            Some(json!({"minutes": 0})),
        )
        .await?;
    }
    let t = Instant::now();
    for i in 0..orders {
        admin(
            http,
            central,
            reqwest::Method::POST,
            "/v1/admin/omni/orders",
            Some(new_order(i)),
        )
        .await?;
    }
    println!(
        "{orders} pickup orders (2 lines each) created at the central in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn pos_post(sh: &Shared, path: &str, body: &Value) -> anyhow::Result<Posted> {
    let t = Instant::now();
    let r = sh
        .http
        .post(format!("{}{path}", sh.pos))
        .bearer_auth(POS_TOKEN)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let at = Instant::now();
    let text = r.text().await?;
    if status != 201 {
        bail!("{path} answered {status}: {text}");
    }
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .context("a posted document without an id")?
        .to_owned();
    Ok(Posted {
        id,
        at,
        post: at - t,
    })
}

async fn bench(
    args: &Args,
    http: reqwest::Client,
    pos_addr: SocketAddr,
    central: &str,
    orders: usize,
) -> anyhow::Result<()> {
    let sh = Arc::new(Shared {
        http,
        pos: format!("http://{pos_addr}"),
        central: central.to_owned(),
        seen: Mutex::new(Seen::default()),
        pending: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
    });

    // The store lists every order (its download job, woken by the push).
    let t = Instant::now();
    loop {
        let r = sh
            .http
            .get(format!("{}/v1/omni-orders", sh.pos))
            .bearer_auth(POS_TOKEN)
            .send()
            .await;
        let listed = match r {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["items"].as_array().map(Vec::len))
                .unwrap_or(0),
            _ => 0,
        };
        if listed >= orders {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the store lists {listed} of the {orders} orders after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the store lists all {orders} orders {:.1} s after its start",
        t.elapsed().as_secs_f64()
    );

    let session = Uuid::new_v4();
    pos_post(
        &sh,
        "/v1/cash/open",
        &json!({"id": session, "register": "PDV01", "operator": "001", "opening_amount": 10_000,
                "opened_at": loja_protocol::time::now_rfc3339()}),
    )
    .await?;

    let queue_poller = tokio::spawn(poll_queue(sh.clone(), args.poll_ms));
    let order_poller = tokio::spawn(poll_orders(sh.clone(), args.poll_ms));

    // The workers: each takes the next order and posts its actions in
    // sequence, a sale after each action while the sales last.
    let next_order = Arc::new(AtomicUsize::new(0));
    let actions_done = Arc::new(AtomicUsize::new(0));
    let sale_numbers = Arc::new(AtomicUsize::new(1));
    let think = Duration::from_millis(args.think_ms);
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let sh = sh.clone();
        let next_order = next_order.clone();
        let actions_done = actions_done.clone();
        let sale_numbers = sale_numbers.clone();
        let (total_actions, total_sales) = (args.actions, args.sales);
        workers.push(tokio::spawn(async move {
            let mut acts = Vec::new();
            let mut sales = Vec::new();
            loop {
                let o = next_order.fetch_add(1, Ordering::Relaxed);
                if o >= orders {
                    break;
                }
                let order = format!("ob{o}");
                for (rank, (action, expects)) in ACTIONS.iter().enumerate() {
                    let k = actions_done.fetch_add(1, Ordering::Relaxed);
                    if k >= total_actions {
                        break;
                    }
                    let id = Uuid::new_v4().to_string();
                    // Pending before the post: the poller may see it at
                    // once, and then it needs the 201's instant (kept below).
                    lock(&sh.pending)
                        .entry(order.clone())
                        .or_default()
                        .push((rank + 1, id.clone()));
                    let body = json!({"id": id, "action": action, "expects": expects,
                                      "register": "PDV01", "operator": "001",
                                      "at": loja_protocol::time::now_rfc3339()});
                    acts.push(
                        pos_post(&sh, &format!("/v1/omni-orders/{order}/actions"), &body).await?,
                    );
                    tokio::time::sleep(jitter(think)).await;
                    // The k-th action brings the sales count up to k+1 × sales / actions.
                    let due =
                        (k + 1) * total_sales / total_actions - k * total_sales / total_actions;
                    for _ in 0..due {
                        let n = sale_numbers.fetch_add(1, Ordering::Relaxed);
                        let body = sale(Uuid::new_v4(), session, n);
                        sales.push(pos_post(&sh, "/v1/sales", &body).await?);
                        tokio::time::sleep(jitter(think)).await;
                    }
                }
            }
            Ok::<_, anyhow::Error>((acts, sales))
        }));
    }
    let mut acts = Vec::new();
    let mut sales = Vec::new();
    for w in workers {
        let (a, s) = w.await??;
        acts.extend(a);
        sales.extend(s);
    }
    let post_secs = t0.elapsed().as_secs_f64();

    // Everything at the central, or the wait is over.
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    loop {
        let done = {
            let seen = lock(&sh.seen);
            acts.iter()
                .all(|p| seen.queue.contains_key(&p.id) && seen.order.contains_key(&p.id))
                && sales.iter().all(|p| seen.queue.contains_key(&p.id))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sh.stop.store(true, Ordering::Relaxed);
    queue_poller.await??;
    order_poller.await??;

    let seen = lock(&sh.seen);
    let mut early = 0usize;
    let mut lat = |posted: &[Posted], at: &HashMap<String, Instant>| {
        let mut v: Vec<Duration> = posted
            .iter()
            .filter_map(|p| {
                at.get(&p.id).map(|t| {
                    if *t < p.at {
                        early += 1;
                    }
                    t.saturating_duration_since(p.at)
                })
            })
            .collect();
        v.sort();
        v
    };
    let act_queue = lat(&acts, &seen.queue);
    let act_order = lat(&acts, &seen.order);
    let sale_queue = lat(&sales, &seen.queue);
    let mut post_acts: Vec<Duration> = acts.iter().map(|p| p.post).collect();
    let mut post_sales: Vec<Duration> = sales.iter().map(|p| p.post).collect();
    post_acts.sort();
    post_sales.sort();

    println!();
    println!(
        "{} omni actions and {} sales posted in {post_secs:.1} s by {} workers (think {} ms), polled every {} ms",
        acts.len(),
        sales.len(),
        args.concurrency,
        args.think_ms,
        args.poll_ms
    );
    let line = |what: &str, v: &[Duration], of: usize| {
        println!(
            "{what:<42} p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  ({} of {of})",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0),
            v.len()
        );
    };
    line("omni action: 201 → ERP queue", &act_queue, acts.len());
    line(
        "omni action: 201 → central order state",
        &act_order,
        acts.len(),
    );
    line(
        "plain sale:  201 → ERP queue (baseline)",
        &sale_queue,
        sales.len(),
    );
    line(
        "omni action: the POST itself (to its 201)",
        &post_acts,
        acts.len(),
    );
    line(
        "plain sale:  the POST itself (to its 201)",
        &post_sales,
        sales.len(),
    );
    let sale_p99 = pct(&sale_queue, 0.99);
    if sale_p99 > 0.0 {
        println!(
            "ratio omni p99 / sale p99 (ERP queue): {:.2}   (p50: {:.2})",
            pct(&act_queue, 0.99) / sale_p99,
            pct(&act_queue, 0.5) / pct(&sale_queue, 0.5).max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "goal p99 ≤ 2 s while the store is online: {}",
        if pct(&act_queue, 0.99) <= 2000.0 && act_queue.len() == acts.len() {
            "met"
        } else {
            "NOT met"
        }
    );
    if early > 0 {
        println!("note: {early} seen before their 201 came back (counted as 0 ms)");
    }
    println!(
        "documents in the ERP queue more than once: {}; omni actions refused: {}",
        seen.twice,
        seen.refused.len()
    );
    if !seen.refused.is_empty() {
        println!(
            "note: {} omni actions refused by the central, e.g. {}",
            seen.refused.len(),
            seen.refused[0]
        );
    }
    let missing = acts.len() - act_queue.len() + sales.len() - sale_queue.len();
    if missing > 0 || act_order.len() < acts.len() {
        bail!(
            "after {} s: {missing} documents never showed in the ERP queue, {} actions never at the central's order",
            args.wait_secs,
            acts.len() - act_order.len()
        );
    }
    Ok(())
}

/// The ERP's reader: the queue from a cursor, first-seen instants by id.
async fn poll_queue(sh: Arc<Shared>, poll_ms: u64) -> anyhow::Result<()> {
    let mut after = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let page = admin(
            &sh.http,
            &sh.central,
            reqwest::Method::GET,
            &format!("/v1/admin/documents?after={after}&limit=1000"),
            None,
        )
        .await?;
        let now = Instant::now();
        {
            let mut seen = lock(&sh.seen);
            for d in page["documents"].as_array().into_iter().flatten() {
                let Some(id) = d["document"]["id"].as_str() else {
                    continue;
                };
                if seen.queue.contains_key(id) {
                    seen.twice += 1;
                } else {
                    seen.queue.insert(id.to_owned(), now);
                }
                if d["document"]["kind"] == "omni_action" && d["outcome"]["applied"] != true {
                    seen.refused.push(d.to_string());
                }
            }
        }
        after = page["next"].as_u64().unwrap_or(after);
        if page["more"] != true {
            tokio::time::sleep(Duration::from_millis(poll_ms)).await;
        }
    }
    Ok(())
}

/// The central's orders with an action not seen there yet: when each
/// order's lines first show the action's state (or one beyond it).
async fn poll_orders(sh: Arc<Shared>, poll_ms: u64) -> anyhow::Result<()> {
    while !sh.stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = lock(&sh.pending)
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            let v = admin(
                &sh.http,
                &sh.central,
                reqwest::Method::GET,
                &format!("/v1/admin/omni/orders/{id}"),
                None,
            )
            .await?;
            let now = Instant::now();
            let rank = v["order"]["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let s = l["state"].as_str().unwrap_or("");
                    STATES.iter().position(|x| *x == s).unwrap_or(0)
                })
                .min()
                .unwrap_or(0);
            let reached: Vec<String> = {
                let mut pending = lock(&sh.pending);
                let list = pending.entry(id.clone()).or_default();
                let (done, left): (Vec<_>, Vec<_>) = list.drain(..).partition(|(r, _)| *r <= rank);
                *list = left;
                if list.is_empty() {
                    pending.remove(&id);
                }
                done.into_iter().map(|(_, a)| a).collect()
            };
            if !reached.is_empty() {
                let mut seen = lock(&sh.seen);
                for a in reached {
                    seen.order.entry(a).or_insert(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
    Ok(())
}
