//! `loja-demo`: a whole store on this machine in one command. The reference
//! central runs in-process with a deterministic demo catalog, a store node
//! `loja-demo` on its exception list (so pushes flow at once), and a real
//! lojad daemon (the `lojad` library's `daemon::start`) syncing from it with
//! the POS API and status page on localhost. The config is written to
//! `DATA_DIR/lojad.toml`, so every `lojad` subcommand works on the demo store
//! from another terminal.
//!
//! It lives here, not in `lojad`, so that the shipped store binary does not
//! link the central.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Parser;
use lojad::cli::{Failure, exit};
use lojad::config::Config;

/// `loja-demo`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "loja-demo",
    version,
    about = "Run a whole demo store here: the reference central with a demo catalog, lojad, the POS API",
    after_help = "Example:\n  cargo run --release -p loja-devtools --bin loja-demo\n  loja-demo --data-dir /tmp/loja-demo --pos-listen 127.0.0.1:7979\n\nThen, from another terminal: lojad --config <printed path> status"
)]
pub struct DemoArgs {
    /// Where the demo keeps its central, replica and config (default: loja-demo in the OS temp dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// POS API and status page address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub pos_listen: SocketAddr,
    /// Products in the demo catalog.
    #[arg(long, default_value_t = 3000, hide = true)]
    pub products: u64,
}

/// The `loja-demo` binary: parses its arguments, runs the demo, maps a
/// failure to lojad's exit codes (docs/cli.md).
pub fn main() -> ExitCode {
    match run(DemoArgs::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("loja-demo: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

pub const STORE_ID: &str = "loja-demo";
/// Fixed on purpose: the demo is for trying things, and the README shows it.
pub const POS_TOKEN: &str = "demo-pos-token";
const STORE_TOKEN: &str = "demo-store-token";
const ADMIN_TOKEN: &str = "demo-admin-token";
const SEED: u64 = 7;
/// The demo's open cash session of register PDV01 (the sale example names it).
/// The demo's omni order (pickup at the demo store, number 1001).
pub const DEMO_ORDER: &str = "demo-1001";
pub const SESSION: uuid::Uuid = uuid::Uuid::from_u128(0x0d3e_0000_0000_4000_8000_0000_0000_0001);
const CUSTOMERS: u64 = 500;

/// The default demo dir: `loja-demo` under the OS temp dir.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("loja-demo")
}

/// Barcode of demo product `i` (as the generator makes it: `789` + 9
/// digits + check digit, first of its two barcodes).
pub fn demo_barcode(i: u64) -> String {
    let text = format!(
        "{:012}",
        (789_000_000_000 + (i * 2) % 1_000_000_000) % 1_000_000_000_000
    );
    let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    format!("{text}{}", loja_protocol::check::gtin_check_digit(&digits))
}

pub fn run(args: DemoArgs) -> Result<u8, Failure> {
    let dir = args.data_dir.clone().unwrap_or_else(default_dir);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    lojad::config::paths::create_private_dir(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // The POS port first: a clear message beats a bind error deep inside.
    if let Err(e) = std::net::TcpListener::bind(args.pos_listen) {
        return Err(Failure::usage(anyhow!(
            "{} is taken ({e}): stop what runs there (another loja-demo?) or pass --pos-listen 127.0.0.1:PORT",
            args.pos_listen
        )));
    }
    lojad::logging::init_cli("warn");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    rt.block_on(run_async(dir, args))
}

async fn run_async(dir: PathBuf, args: DemoArgs) -> Result<u8, Failure> {
    let started = Instant::now();
    let central_db = dir.join("central.db");
    let fresh = !central_db.exists();
    // The store first: its stock and setup are its own, generated for the
    // stores that exist.
    let db = central_db.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        retaguarda::ensure_store(&db, STORE_ID, retaguarda::nodes::MASTER, STORE_TOKEN)?;
        let d = retaguarda::Db::open(&db)?;
        d.write(|tx| {
            retaguarda::avail::add_exception(tx, STORE_ID).map_err(retaguarda::DbError::from)
        })?;
        Ok(())
    })
    .await
    .map_err(anyhow::Error::from)??;
    if fresh {
        println!(
            "loja-demo: generating the demo catalog ({} products, {CUSTOMERS} customers)…",
            args.products
        );
        let db = central_db.clone();
        let products = args.products;
        tokio::task::spawn_blocking(move || {
            retaguarda::generate(
                &db,
                &retaguarda::CatalogSpec {
                    products,
                    customers: CUSTOMERS,
                    stock: true,
                    seed: SEED,
                },
            )
        })
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| anyhow!("generating the demo catalog: {e}"))?;
        // An omni order paid online, for pickup at the demo store.
        let db = central_db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let order: loja_protocol::omni::NewOrder = serde_json::from_value(serde_json::json!({
                "id": DEMO_ORDER, "number": "1001", "channel": "site", "delivery": "pickup",
                "paid": true, "payments": [{"method": "PIX", "amount": 1000}],
                "created_at": loja_protocol::time::now_rfc3339(), "store": STORE_ID,
                "lines": [{"line_id": "1", "product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000}]
            }))?;
            let d = retaguarda::Db::open(&db)?;
            d.write(|tx| -> anyhow::Result<()> {
                retaguarda::omni::create(tx, order)
                    .map(|_| ())
                    .map_err(|e| anyhow!("{e}"))
            })?;
            Ok(())
        })
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| anyhow!("creating the demo omni order: {e}"))?;
    }

    let server = retaguarda::spawn(retaguarda::ServerConfig {
        db: central_db.clone().into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_token: ADMIN_TOKEN.into(),
        tls_cert: None,
        tls_key: None,
    })
    .await
    .map_err(|e| anyhow!("starting the demo central: {e}"))?;

    let config_path = dir.join("lojad.toml");
    let mut config = Config::example(
        STORE_ID,
        &dir.join("store"),
        &server.url,
        STORE_TOKEN,
        POS_TOKEN,
    );
    config.pos.listen = args.pos_listen;
    config.store.data_dir = dir.join("store");
    config.write(&config_path).map_err(Failure::usage)?;
    lojad::config::paths::create_private_dir(&config.store.data_dir)
        .map_err(anyhow::Error::from)?;

    println!(
        "loja-demo: initial sync from the demo central at {}…",
        server.url
    );
    let runs = lojad::cli::once::sync_once(&config, &[]).await?;
    let rows: u64 = runs.iter().map(|r| r.rows).sum();
    let failed: Vec<_> = runs
        .iter()
        .filter(|r| r.outcome == loja_replica::Outcome::Failed)
        .collect();
    for r in &failed {
        eprintln!(
            "loja-demo: sync of {} failed: {}",
            r.subject,
            r.message.as_deref().unwrap_or("?")
        );
    }

    let daemon = lojad::daemon::start(config.clone())
        .await
        .context("starting the demo store's lojad")?;
    let pos = daemon.pos_addr;
    // An open cash session, so the sale example is accepted as printed.
    let open = loja_replica::NewDocument {
        id: SESSION,
        kind: loja_protocol::DocumentKind::CashOpen,
        body: serde_json::json!({"register": "PDV01", "operator": "001", "opening_amount": 10000,
                                 "opened_at": loja_protocol::time::now_rfc3339()}),
    };
    if let Err(e) = daemon.state.intake.submit(open).await {
        eprintln!("loja-demo: could not open the demo cash session: {e}");
    }
    let barcode = demo_barcode(1);
    let price = product_price(&config.store.data_dir, &barcode).unwrap_or(999);
    print_banner(
        &config_path,
        &config,
        pos,
        &server.url,
        &barcode,
        price,
        rows,
        started,
    );

    lojad::runtime::shutdown_signal().await;
    println!("loja-demo: stopping…");
    let stopped = daemon.shutdown().await;
    server.shutdown().await;
    stopped?;
    println!(
        "loja-demo: stopped. The demo store stays in {} (run the demo again to resume).",
        dir.display()
    );
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn product_price(data_dir: &Path, barcode: &str) -> Option<i64> {
    let reader = loja_replica::CatalogReader::open(data_dir).ok()?;
    let view = reader.product_by_barcode(barcode, STORE_ID).ok()??;
    view.price.map(|p| p.effective_price)
}

#[allow(clippy::too_many_arguments)]
fn print_banner(
    config_path: &Path,
    config: &Config,
    pos: SocketAddr,
    central: &str,
    barcode: &str,
    price: i64,
    rows: u64,
    started: Instant,
) {
    let base = format!("http://{pos}");
    let sale_id = uuid::Uuid::new_v4();
    let now = loja_protocol::time::now_rfc3339();
    let sale = serde_json::json!({
        "id": sale_id, "register": "PDV01", "session_id": SESSION, "number": 1, "operator": "001",
        "items": [{"product_code": "1", "barcode": barcode, "qty": 1000, "unit_price": price, "total": price}],
        "total": price, "payments": [{"method": "PIX", "amount": price}], "sold_at": now,
    });
    println!();
    println!(
        "Loja demo store is running ({rows} rows synced in {:.1} s).",
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("  POS API:      {base}");
    println!("  POS token:    {POS_TOKEN}");
    println!("  Status page:  {base}/");
    println!("  Config:       {}", config_path.display());
    println!("  Data dir:     {}", config.store.data_dir.display());
    println!("  Central:      {central} (in-process, store {STORE_ID})");
    println!();
    println!("Try it:");
    println!(
        "  curl -H 'Authorization: Bearer {POS_TOKEN}' {base}/v1/products/by-barcode/{barcode}"
    );
    println!("  curl -H 'Authorization: Bearer {POS_TOKEN}' '{base}/v1/products?q=arroz&limit=5'");
    println!(
        "  curl -H 'Authorization: Bearer {POS_TOKEN}' -H 'Content-Type: application/json' -X POST {base}/v1/sales -d '{sale}'"
    );
    let accept = serde_json::json!({"id": uuid::Uuid::new_v4(), "action": "accept", "expects": "assigned",
                                    "register": "PDV01", "operator": "001", "at": now});
    println!("  curl -H 'Authorization: Bearer {POS_TOKEN}' {base}/v1/omni-orders");
    println!(
        "  curl -H 'Authorization: Bearer {POS_TOKEN}' -H 'Content-Type: application/json' -X POST {base}/v1/omni-orders/{DEMO_ORDER}/actions -d '{accept}'"
    );
    println!();
    println!(
        "From another terminal:  lojad --config {} status",
        config_path.display()
    );
    println!(
        "  (from this checkout:  cargo run --release -p lojad -- --config {} status)",
        config_path.display()
    );
    println!("Ctrl-C stops the demo.");
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_barcodes_have_check_digits() {
        let b = super::demo_barcode(1);
        assert_eq!(b.len(), 13);
        assert!(b.starts_with("789000000002"));
        assert!(loja_protocol::check::gtin(&b).is_ok());
    }
}
