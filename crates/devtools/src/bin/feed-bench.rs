//! Feed serve rate vs raw SQLite read rate, in one run.
//!
//! ```text
//! cargo run --release -p loja-devtools --bin feed-bench -- --products 200000 --customers 100000
//! ```
//!
//! Generates the catalog (200k products → 200k products + 400k barcodes +
//! 200k prices + 200k product taxes, plus 100k customers: ~1.1 M rows) into a
//! temporary database, starts the central on loopback, and as one store
//! fetches every feed with zstd and `limit` rows per page, counting rows/s end
//! to end (HTTP + zstd + JSON parse into `FeedPage` on the client). Then reads
//! the same rows straight from SQLite (prepared statement, same query and
//! paging, every column read) and prints both rates and their ratio.
//!
//! With `--stores N` it measures what per-store data costs the central
//! instead (issue 15): the same catalog twice, once as generated and once
//! where `--override-pct` of the price keys have a store's own price (spread
//! over N stores under one central); it serves the whole prices feed to
//! `--sample` of the stores from each and prints rows/s served with
//! overrides against without, in the same run.
//!
//! ```text
//! cargo run --release -p loja-devtools --bin feed-bench -- --products 200000 --stores 2000 --override-pct 5
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use loja_protocol::{ENTITIES, FeedPage};
use retaguarda::{CatalogSpec, ServerConfig};

#[derive(Parser, Debug)]
#[command(about = "Feed serve rate vs raw SQLite read rate")]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    products: u64,
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Also generate stock rows.
    #[arg(long)]
    stock: bool,
    /// Rows per feed page.
    #[arg(long, default_value_t = 20_000)]
    limit: u64,
    /// Keep the temporary directory.
    #[arg(long)]
    keep: bool,
    /// Per-store data: this many stores, some price keys overridden per store.
    #[arg(long, default_value_t = 0)]
    stores: u64,
    /// Percent of the price keys with a store's own row (with --stores).
    #[arg(long, default_value_t = 5)]
    override_pct: u64,
    /// Stores whose whole prices feed is served from each database (with --stores).
    #[arg(long, default_value_t = 20)]
    sample: u64,
}

const TOKEN: &str = "feed-bench-store-token";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("retaguarda-feed-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("c.db");
    let result = if args.stores > 0 {
        run_overrides(&args, &dir)
    } else {
        run(&args, db)
    };
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {}", dir.display());
    }
    result
}

fn run(args: &Args, db: PathBuf) -> anyhow::Result<()> {
    // The store first: its stock is its own, generated for the stores that exist.
    retaguarda::ensure_store(&db, "bench", "master", TOKEN)?;
    let spec = CatalogSpec {
        products: args.products,
        customers: args.customers,
        stock: args.stock,
        seed: 1,
    };
    let report = retaguarda::generate(&db, &spec)?;
    println!(
        "generated {} rows in {:.2} s ({:.0} rows/s, through the import path)",
        report.rows,
        report.elapsed.as_secs_f64(),
        report.rows as f64 / report.elapsed.as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (feed_rows, feed_bytes, feed_time, parse_time) = rt.block_on(async {
        let server = retaguarda::spawn(ServerConfig {
            db: db.clone().into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: "bench-admin".into(),
            tls_cert: None,
            tls_key: None,
        })
        .await?;
        retaguarda::install_crypto_provider();
        let client = reqwest::Client::builder().no_gzip().no_proxy().build()?;
        let started = Instant::now();
        let mut rows = 0u64;
        let mut wire = 0u64;
        let mut parse = Duration::ZERO;
        for e in ENTITIES {
            let mut after = 0u64;
            loop {
                let resp = client
                    .get(format!("{}/v1/stores/bench/feeds/{}", server.url, e.name))
                    .query(&[("after", after), ("limit", args.limit)])
                    .bearer_auth(TOKEN)
                    .send()
                    .await?
                    .error_for_status()?;
                let body = resp.bytes().await?;
                wire += body.len() as u64;
                let t = Instant::now();
                let page: FeedPage = serde_json::from_slice(&body).context("parse page")?;
                parse += t.elapsed();
                rows += page.items.len() as u64;
                after = page.next.0;
                if !page.more {
                    break;
                }
            }
        }
        let took = started.elapsed();
        server.shutdown().await;
        Ok::<_, anyhow::Error>((rows, wire, took, parse))
    })?;

    let (raw_rows, raw_time) = raw_read(&db, args.limit)?;
    let feed_rate = feed_rows as f64 / feed_time.as_secs_f64();
    let raw_rate = raw_rows as f64 / raw_time.as_secs_f64();
    println!(
        "feed (HTTP + zstd + JSON parse, limit {}): {feed_rows} rows in {:.2} s = {feed_rate:.0} rows/s ({:.0} MB of JSON after decompression)",
        args.limit,
        feed_time.as_secs_f64(),
        feed_bytes as f64 / 1e6
    );
    println!(
        "  of which the client's JSON parse into FeedPage: {:.2} s ({:.0} %)",
        parse_time.as_secs_f64(),
        100.0 * parse_time.as_secs_f64() / feed_time.as_secs_f64()
    );
    println!(
        "raw SQLite read (same rows, prepared statement): {raw_rows} rows in {:.2} s = {raw_rate:.0} rows/s",
        raw_time.as_secs_f64()
    );
    println!("ratio feed / raw: {:.1} %", 100.0 * feed_rate / raw_rate);
    anyhow::ensure!(
        feed_rows == raw_rows,
        "the feed served {feed_rows} rows, SQLite holds {raw_rows}"
    );
    Ok(())
}

/// Reads every row the feed serves, paged the same way, touching every column.
fn raw_read(db: &std::path::Path, limit: u64) -> anyhow::Result<(u64, Duration)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT seq, node, public, siblings, deleted, key_json, data
         FROM rows WHERE entity = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let started = Instant::now();
    let mut rows = 0u64;
    let mut bytes = 0usize;
    for e in ENTITIES {
        let mut after = 0i64;
        loop {
            let mut q = stmt.query(rusqlite::params![e.name, after, limit as i64])?;
            let mut n = 0u64;
            while let Some(r) = q.next()? {
                after = r.get(0)?;
                bytes += r.get_ref(1)?.as_str()?.len();
                let _public: bool = r.get(2)?;
                let _siblings: bool = r.get(3)?;
                let _deleted: bool = r.get(4)?;
                bytes += r.get_ref(5)?.as_str()?.len();
                bytes += r.get_ref(6)?.as_str_or_null()?.map_or(0, str::len);
                n += 1;
            }
            rows += n;
            if n < limit {
                break;
            }
        }
    }
    let took = started.elapsed();
    std::hint::black_box(bytes);
    Ok((rows, took))
}

/// Per-store data's cost at the central: rows/s of the prices feed served
/// to `--sample` stores with `--override-pct` of the keys overridden by
/// stores, against the same catalog without overrides, in one run.
fn run_overrides(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let plain = dir.join("plain.db");
    for i in 0..args.stores {
        retaguarda::ensure_store_in(&plain, &store_id(i), "sul", &format!("{TOKEN}-{i}"))?;
    }
    let spec = CatalogSpec {
        products: args.products,
        customers: 0,
        stock: false,
        seed: 1,
    };
    let report = retaguarda::generate(&plain, &spec)?;
    println!(
        "generated {} rows and {} stores under one central",
        report.rows, args.stores
    );
    let with = dir.join("overrides.db");
    {
        let conn = rusqlite::Connection::open(&plain)?;
        conn.execute("VACUUM INTO ?1", [with.display().to_string()])?;
    }
    // Every (100 / pct)-th product gets a store's own base price, spread
    // over the stores.
    let step = (100 / args.override_pct.clamp(1, 100)).max(1);
    let mut body = String::new();
    let mut overrides = 0u64;
    for i in (1..=args.products).step_by(step as usize) {
        let store = store_id(overrides % args.stores);
        body.push_str(&format!(
            "{{\"op\":\"upsert\",\"node\":\"{store}\",\"row\":{{\"product_code\":\"{i}\",\"price_list\":\"base\",\"price\":{}}}}}\n",
            100 + i % 900
        ));
        overrides += 1;
    }
    let applied = retaguarda::import_lines(&with, "prices", body.as_bytes())?;
    println!(
        "{overrides} store overrides of base prices ({:.1} % of {} keys), {} applied",
        100.0 * overrides as f64 / args.products as f64,
        args.products,
        applied.applied
    );
    let sample: Vec<u64> = (0..args.sample.min(args.stores))
        .map(|k| k * args.stores / args.sample.min(args.stores).max(1))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Alternate the two databases so that the machine's drift hits both.
    let mut totals = [(0u64, Duration::ZERO); 2];
    for round in 0..2 {
        for (k, db) in [&plain, &with].into_iter().enumerate() {
            let (rows, took) = rt.block_on(serve_prices(db, &sample, args.limit))?;
            println!(
                "  round {round}, {}: {rows} rows to {} stores in {:.2} s = {:.0} rows/s",
                if k == 0 {
                    "no overrides"
                } else {
                    "with overrides"
                },
                sample.len(),
                took.as_secs_f64(),
                rows as f64 / took.as_secs_f64()
            );
            totals[k].0 += rows;
            totals[k].1 += took;
        }
    }
    let rate = |(rows, took): (u64, Duration)| rows as f64 / took.as_secs_f64();
    println!(
        "prices feed served: {:.0} rows/s with {}% store overrides, {:.0} rows/s without: ratio {:.1} %",
        rate(totals[1]),
        args.override_pct,
        rate(totals[0]),
        100.0 * rate(totals[1]) / rate(totals[0])
    );
    Ok(())
}

fn store_id(i: u64) -> String {
    format!("loja-{i:04}")
}

/// Serves the whole prices feed of each sampled store over HTTP (zstd, JSON
/// parse on the client): rows served and the time taken.
async fn serve_prices(
    db: &std::path::Path,
    sample: &[u64],
    limit: u64,
) -> anyhow::Result<(u64, Duration)> {
    let server = retaguarda::spawn(ServerConfig {
        db: db.to_path_buf().into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_token: "bench-admin".into(),
        tls_cert: None,
        tls_key: None,
    })
    .await?;
    retaguarda::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let started = Instant::now();
    let mut rows = 0u64;
    for i in sample {
        let mut after = 0u64;
        for _ in 0..100_000 {
            let page: FeedPage = client
                .get(format!(
                    "{}/v1/stores/{}/feeds/prices",
                    server.url,
                    store_id(*i)
                ))
                .query(&[("after", after), ("limit", limit)])
                .bearer_auth(format!("{TOKEN}-{i}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            rows += page.items.len() as u64;
            after = page.next.0;
            if !page.more {
                break;
            }
        }
    }
    let took = started.elapsed();
    server.shutdown().await;
    Ok((rows, took))
}
