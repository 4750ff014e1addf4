//! Apply-engine benchmark: 1.1 M synthetic catalog rows (200k products,
//! 400k barcodes, 200k prices, 200k product_taxes, 100k customers), measured
//! in the same run as
//!
//! (a) raw SQLite: the same rows, already Rust values, into an empty file with
//!     the same schema and settings, prepared INSERT, one transaction per entity;
//! (b) `Catalog::apply_typed_page`, pages of 20 000 rows pre-built as typed
//!     rows (parsing excluded): the apply engine alone;
//! (c) `TypedPage::parse` of each page's bytes + `apply_typed_page`: what the
//!     download job does, one page after the other;
//! (d) (c) pipelined as the agent runs it: a thread parses page N+1 while
//!     page N applies;
//! (e) for reference, the JSON-map path: `serde_json::from_slice::<FeedPage>`
//!     + `Catalog::apply_page`.
//!
//! `cargo run --release -p loja-devtools --bin apply-bench [-- --scale 0.1]`

use std::path::Path;
use std::time::{Duration, Instant};

use loja_protocol::check::{cpf_check_digits, gtin_check_digit};
use loja_protocol::registry::ColType;
use loja_protocol::{Entity, FeedItem, FeedPage, Op, TypedPage, Watermark, entity_named};
use loja_replica::Catalog;
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};

const PAGE: usize = 20_000;

#[derive(Default)]
struct Totals {
    rows: u64,
    raw: Duration,
    apply: Duration,
    parse_apply: Duration,
    pipelined: Duration,
    map_parse_apply: Duration,
    parse_only: Duration,
    validate_only: Duration,
    map_parse_only: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut scale = 1.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--scale" {
            scale = args
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or("--scale needs a number")?;
        }
    }
    let n = |base: usize| ((base as f64 * scale) as usize).max(1);
    // Removed when `main` ends, by an error too.
    let scratch = tempfile::Builder::new().prefix("apply-bench-").tempdir()?;
    let root = scratch.path().to_path_buf();
    let dirs = ["raw", "apply", "parse", "pipelined", "map"].map(|d| root.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    // The same schema for the raw baseline: the catalog's own migrations.
    drop(Catalog::open(&dirs[0])?);
    let mut raw = raw_conn(&dirs[0].join("replica.db"))?;
    let mut applied = Catalog::open(&dirs[1])?;
    let mut parsed = Catalog::open(&dirs[2])?;
    let mut piped = Catalog::open(&dirs[3])?;
    let mut mapped = Catalog::open(&dirs[4])?;

    let products = n(200_000);
    let plan: [(&str, usize); 5] = [
        ("products", products),
        ("barcodes", n(400_000)),
        ("prices", n(200_000)),
        ("product_taxes", n(200_000)),
        ("customers", n(100_000)),
    ];
    let mut t = Totals::default();
    println!(
        "{:<14} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "rows/s", "rows", "raw", "apply", "parse+apply", "pipelined", "map path"
    );
    for (name, count) in plan {
        let e = entity_named(name).ok_or("entity missing from registry")?;
        let rows: Vec<Vec<Sql>> = (0..count).map(|i| synth(name, i, products)).collect();

        // (a) raw insert
        let started = Instant::now();
        raw_insert(&mut raw, e, &rows)?;
        let raw_t = started.elapsed();

        let pages = to_pages(e, &rows);
        drop(rows);
        let bytes: Vec<Vec<u8>> = pages
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()?;

        // (b) apply pre-built typed pages
        let typed: Vec<TypedPage> = pages.iter().map(|p| TypedPage::from_feed(e, p)).collect();
        drop(pages);
        let started = Instant::now();
        for p in &typed {
            applied.apply_typed_page(e, p)?;
        }
        let apply_t = started.elapsed();
        drop(typed);

        // (c) typed parse of the page bytes + apply
        let started = Instant::now();
        for b in &bytes {
            parsed.apply_typed_page(e, &TypedPage::parse(e, b)?)?;
        }
        let parse_t = started.elapsed();

        // (d) parse on another thread, apply here
        let started = Instant::now();
        std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<TypedPage>(1);
            let bytes = &bytes;
            let parser = s.spawn(move || -> Result<(), serde_json::Error> {
                for b in bytes {
                    if tx.send(TypedPage::parse(e, b)?).is_err() {
                        break;
                    }
                }
                Ok(())
            });
            for p in rx {
                piped.apply_typed_page(e, &p)?;
            }
            parser.join().map_err(|_| "parser thread panicked")??;
            Ok(())
        })?;
        let pipe_t = started.elapsed();

        // (e) the JSON-map path
        let started = Instant::now();
        for b in &bytes {
            let p: FeedPage = serde_json::from_slice(b)?;
            mapped.apply_page(e, &p)?;
        }
        let map_t = started.elapsed();

        // Where the time goes: parsing alone (both ways), validation alone.
        let started = Instant::now();
        let reparsed: Vec<TypedPage> = bytes
            .iter()
            .map(|b| TypedPage::parse(e, b))
            .collect::<Result<_, _>>()?;
        t.parse_only += started.elapsed();
        let started = Instant::now();
        for p in &reparsed {
            p.validate(e, p.after)?;
        }
        t.validate_only += started.elapsed();
        drop(reparsed);
        let started = Instant::now();
        for b in &bytes {
            drop(serde_json::from_slice::<FeedPage>(b)?);
        }
        t.map_parse_only += started.elapsed();

        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        println!(
            "{name:<14} {count:>9} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>11.0}",
            rate(raw_t),
            rate(apply_t),
            rate(parse_t),
            rate(pipe_t),
            rate(map_t),
        );
        t.rows += count as u64;
        t.raw += raw_t;
        t.apply += apply_t;
        t.parse_apply += parse_t;
        t.pipelined += pipe_t;
        t.map_parse_apply += map_t;
    }
    let rate = |d: Duration| t.rows as f64 / d.as_secs_f64();
    println!(
        "{:<14} {:>9} {:>11.0} {:>11.0} {:>11.0} {:>11.0} {:>11.0}",
        "total",
        t.rows,
        rate(t.raw),
        rate(t.apply),
        rate(t.parse_apply),
        rate(t.pipelined),
        rate(t.map_parse_apply),
    );
    println!(
        "time: raw {:.2} s, apply {:.2} s, parse+apply {:.2} s, pipelined {:.2} s, map path {:.2} s",
        t.raw.as_secs_f64(),
        t.apply.as_secs_f64(),
        t.parse_apply.as_secs_f64(),
        t.pipelined.as_secs_f64(),
        t.map_parse_apply.as_secs_f64(),
    );
    println!(
        "of which: TypedPage::parse alone {:.2} s ({:.0} rows/s), TypedPage::validate alone {:.2} s ({:.0} rows/s); \
         serde_json FeedPage parse alone {:.2} s ({:.0} rows/s)",
        t.parse_only.as_secs_f64(),
        rate(t.parse_only),
        t.validate_only.as_secs_f64(),
        rate(t.validate_only),
        t.map_parse_only.as_secs_f64(),
        rate(t.map_parse_only),
    );
    let ratio = |d: Duration| 100.0 * t.raw.as_secs_f64() / d.as_secs_f64();
    println!(
        "ratio to raw: apply {:.0} %, parse+apply {:.0} %, pipelined parse+apply {:.0} % (target >= 50 %); map path {:.0} %",
        ratio(t.apply),
        ratio(t.parse_apply),
        ratio(t.pipelined),
        ratio(t.map_parse_apply),
    );
    // The same content at the end, every way.
    let counts = applied.row_counts()?;
    for c in [&parsed, &piped, &mapped] {
        assert_eq!(counts, c.row_counts()?);
    }
    assert!(applied.integrity_check()?.is_empty());
    drop((raw, applied, parsed, piped, mapped));
    Ok(())
}

fn raw_conn(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    // The settings Catalog::open uses.
    let _: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    c.execute_batch("PRAGMA synchronous = NORMAL;")?;
    c.execute_batch(loja_replica::WRITER_PRAGMAS)?;
    Ok(c)
}

fn raw_insert(c: &mut rusqlite::Connection, e: &Entity, rows: &[Vec<Sql>]) -> rusqlite::Result<()> {
    let cols: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        e.name,
        cols.join(", "),
        params.join(", ")
    );
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare(&sql)?;
        for row in rows {
            for (i, v) in row.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
            stmt.raw_execute()?;
        }
    }
    // The schema's FTS queue (products) into the index, as one statement.
    tx.execute_batch(
        "INSERT INTO products_fts (products_fts, rowid, name) \
         SELECT CASE WHEN remove THEN 'delete' END, product_rowid, name FROM products_fts_queue ORDER BY seq; \
         DELETE FROM products_fts_queue;",
    )?;
    tx.commit()
}

fn to_pages(e: &Entity, rows: &[Vec<Sql>]) -> Vec<FeedPage> {
    let mut seq = 0u64;
    rows.chunks(PAGE)
        .map(|chunk| {
            let after = Watermark(seq);
            let items = chunk
                .iter()
                .map(|row| {
                    seq += 1;
                    let mut m = Map::new();
                    for (col, v) in e.columns.iter().zip(row) {
                        let j = match (v, col.ty) {
                            (Sql::Null, _) => continue,
                            (Sql::Integer(n), ColType::Bool) => Value::Bool(*n != 0),
                            (Sql::Integer(n), _) => Value::from(*n),
                            (Sql::Text(s), _) => Value::String(s.clone()),
                            _ => continue,
                        };
                        m.insert(col.name.to_owned(), j);
                    }
                    FeedItem {
                        seq,
                        op: Op::Upsert,
                        row: m,
                    }
                })
                .collect();
            FeedPage {
                entity: e.name.into(),
                after,
                items,
                next: Watermark(seq),
                more: true,
                held_until: None,
            }
        })
        .collect()
}

const WORDS: [&str; 16] = [
    "CAFE",
    "ARROZ",
    "FEIJAO",
    "ACUCAR",
    "LEITE",
    "OLEO",
    "SABAO",
    "BISCOITO",
    "MACARRAO",
    "FARINHA",
    "SUCO",
    "AGUA",
    "CERVEJA",
    "SHAMPOO",
    "DETERGENTE",
    "MOLHO",
];
const BRANDS: [&str; 8] = [
    "PILAO", "TIO JOAO", "CAMIL", "UNIAO", "ITALAC", "SOYA", "YPE", "NESTLE",
];

fn t(s: impl Into<String>) -> Sql {
    Sql::Text(s.into())
}
fn int(n: i64) -> Sql {
    Sql::Integer(n)
}

fn gtin13(n: u64) -> String {
    let body = format!("789{:09}", n % 1_000_000_000);
    let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
    format!("{body}{}", gtin_check_digit(&digits))
}

fn cpf(n: u64) -> String {
    let mut body = [0u8; 9];
    let s = format!("{:09}", 100_000_000 + n % 800_000_000);
    for (d, b) in body.iter_mut().zip(s.bytes()) {
        *d = b - b'0';
    }
    let [d1, d2] = cpf_check_digits(&body);
    format!("{s}{d1}{d2}")
}

/// Row `i` of `entity`, in registry column order.
fn synth(entity: &str, i: usize, products: usize) -> Vec<Sql> {
    let code = |p: usize| format!("{:07}", p % products);
    const AT: &str = "2026-11-26T12:00:00Z";
    match entity {
        "products" => vec![
            t(code(i)),
            t(format!(
                "{} {} {} {}G",
                WORDS[i % 16],
                BRANDS[(i / 16) % 8],
                WORDS[(i / 128) % 16],
                100 + i % 900
            )),
            t(if i.is_multiple_of(10) { "KG" } else { "UN" }),
            t("09012100"),
            t(BRANDS[(i / 16) % 8]),
            t(format!("DEP{:02}", i % 40)),
            int(0),
            int(i64::from(i.is_multiple_of(10))),
            int(1),
            t(AT),
        ],
        "barcodes" => vec![
            t(gtin13(i as u64)),
            t(code(i / 2)),
            int(if i.is_multiple_of(2) { 1000 } else { 12000 }),
        ],
        "prices" => vec![
            t(code(i)),
            t("base"),
            int(100 + (i as i64 * 37) % 10_000),
            if i.is_multiple_of(5) {
                int(90 + (i as i64 * 37) % 9_000)
            } else {
                Sql::Null
            },
            if i.is_multiple_of(5) {
                t("2027-01-01T00:00:00Z")
            } else {
                Sql::Null
            },
            t(AT),
        ],
        // What is the same in every state (the ICMS by state, PIS/COFINS
        // and ST have entities of their own since issue 15).
        "product_taxes" => vec![t(code(i)), t("T18"), t("09012100"), t("5102"), Sql::Null],
        "customers" => vec![
            t(cpf(i as u64 * 7919)),
            t(format!("CLIENTE {} {}", WORDS[i % 16], i)),
            t(format!("cliente{i}@example.com")),
            t(format!("119{:08}", i)),
            t("1980-05-17"),
            int(3550308),
            t("SP"),
            int(50_000),
            int(1),
            t(AT),
        ],
        _ => Vec::new(),
    }
}
