//! End-to-end integrity (issue 12, defect 2): a feed page corrupted between
//! the central and the store is refused whole, with a ticket and the
//! watermark unchanged, and applied once a clean copy arrives; a replica
//! that drifted from the central (a row changed, deleted or added behind the
//! feed's back) is found and repaired by `lojad verify` and by the daemon's
//! scheduled verify, which counts it in /metrics; a customer signed up at
//! the store survives a verify before the central has it.
//!
//! The link is a tampering proxy on loopback (plain HTTP) between a real
//! `retaguarda-server` and a real `lojad`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::proxy::{HeaderMap, Proxy};
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";

fn central() -> Central {
    Central::builder()
        .catalog(400, 50)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts")
}

/// Flips one bit of a digit in the first `"price":` value of a prices page,
/// after decompressing it, and sends it uncompressed with the central's
/// headers otherwise as they were: still valid JSON, still a valid page, a
/// different price. Only the page digest can tell.
fn flip_a_price_digit(body: &mut Vec<u8>, headers: &mut HeaderMap) -> bool {
    let encoded = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut plain = match encoded.as_deref() {
        Some("zstd") => match zstd::stream::decode_all(&body[..]) {
            Ok(p) => p,
            Err(_) => return false,
        },
        None | Some("identity") => body.clone(),
        Some(_) => return false,
    };
    let needle = b"\"price\":";
    let Some(at) = plain.windows(needle.len()).position(|w| w == needle) else {
        return false;
    };
    let digit = at + needle.len();
    if !plain.get(digit).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    // '1' <-> '9', '0' <-> '8', …: bit 3 of an ASCII digit.
    plain[digit] ^= 0b1000;
    if !plain[digit].is_ascii_digit() {
        plain[digit] ^= 0b1000;
        plain[digit] ^= 0b0001;
    }
    headers.remove("content-encoding");
    *body = plain;
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_pages_are_refused_whole_and_the_watermark_stays() {
    let central = central();
    central.release_everything().await.unwrap();
    let corrupt = Arc::new(AtomicBool::new(true));
    let flipped = Arc::new(AtomicU64::new(0));
    let (c, f) = (corrupt.clone(), flipped.clone());
    let proxy = Proxy::start(central.url(), move |path, headers, body| {
        if !c.load(Ordering::SeqCst) {
            return;
        }
        if path.contains("/feeds/prices") && flip_a_price_digit(body, headers) {
            f.fetch_add(1, Ordering::SeqCst);
        }
        // Barcodes: a bit flipped in the compressed frame itself.
        if path.contains("/feeds/barcodes") && body.len() > 64 {
            let i = body.len() / 2;
            body[i] ^= 0x10;
            f.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    let store = Store::builder(&proxy.url(), STORE, TOKEN)
        .page_size(150)
        .build()
        .unwrap();

    let out = store.command(&["sync", "prices", "barcodes"]).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a refused page fails the run: {text}"
    );
    assert!(
        flipped.load(Ordering::SeqCst) >= 2,
        "the proxy corrupted pages"
    );
    for entity in ["prices", "barcodes"] {
        assert_eq!(store.watermark(entity).unwrap(), 0, "{entity}: {text}");
        assert_eq!(
            store.replica_count(entity).unwrap(),
            0,
            "{entity}: nothing applied"
        );
    }
    let tickets = store.tickets().unwrap();
    let failed = |subject: &str| {
        tickets
            .iter()
            .find(|t| t.subject == subject && t.status == "failed")
            .cloned()
            .unwrap_or_else(|| panic!("no failed {subject} ticket: {tickets:?}"))
    };
    let p = failed("prices");
    let perr = p.error.clone().unwrap_or_default();
    assert!(
        perr.contains("loja-digest") && perr.contains("does not match"),
        "the digest refused the price page: {p:?}"
    );
    assert!(p.response_bytes > 0, "the corrupted payload is kept: {p:?}");
    let b = failed("barcodes");
    assert!(
        b.error.as_deref().unwrap_or("").contains("decompress")
            || b.error.as_deref().unwrap_or("").contains("loja-digest"),
        "{b:?}"
    );

    // The link heals: the same pages apply and the replica equals the central.
    corrupt.store(false, Ordering::SeqCst);
    store.sync(&["prices", "barcodes"]).unwrap();
    let diffs = store
        .diff_with_central(&central, &["prices", "barcodes"])
        .await
        .unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert!(store.watermark("prices").unwrap() > 0);
}

/// Opens the store's replica for writing behind lojad's back.
fn tamper(store: &Store, sql: &str) {
    let conn = rusqlite::Connection::open(store.data_dir().join("replica.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_replica_is_found_and_repaired() {
    let central = central();
    central.release_everything().await.unwrap();
    // The daemon verifies every 3 s here (once a day by default).
    let store = Store::builder(central.url(), STORE, TOKEN)
        .task(
            "verify.toml",
            "code = \"VRF\"\nsubject = \"all\"\ndirection = \"verify\"\nevery = \"3s\"\nactive = true\n",
        )
        .build()
        .unwrap();
    store.sync(&[]).unwrap();
    assert!(
        store
            .diff_with_central(&central, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // Equal: nothing to repair.
    let out = store.command(&["verify", "--json"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["run"]["rows"], json!(0), "{report}");
    assert!(
        report["entities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["differing"] == json!(0) && e.get("error").is_none()),
        "{report}"
    );

    // Drift behind the feed's back: a price changed, a barcode gone, a stray product.
    let prices = store.replica_rows("prices").unwrap();
    let (_, price) = prices.iter().next().unwrap();
    let code = price["product_code"].as_str().unwrap().to_owned();
    let list = price["price_list"].as_str().unwrap().to_owned();
    let right = price["price"].clone();
    let barcodes = store.replica_rows("barcodes").unwrap();
    let (_, gone) = barcodes.iter().next().unwrap();
    let gone = gone["barcode"].as_str().unwrap().to_owned();
    let drift = format!(
        "UPDATE prices SET price = 8544 WHERE product_code = '{code}' AND price_list = '{list}';
         DELETE FROM barcodes WHERE barcode = '{gone}';
         INSERT INTO products (code, name, unit) VALUES ('STRAY', 'Not at the central', 'UN');"
    );
    tamper(&store, &drift);
    assert!(
        !store
            .diff_with_central(&central, &[])
            .await
            .unwrap()
            .is_empty()
    );

    let out = store.command(&["verify"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for entity in ["prices", "barcodes", "products"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(entity))
            .unwrap_or_else(|| panic!("{entity} in:\n{text}"));
        assert!(line.contains("repaired"), "{line}");
    }
    let diffs = store.diff_with_central(&central, &[]).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(
        store
            .replica_rows("prices")
            .unwrap()
            .values()
            .find(|r| r["product_code"] == json!(code) && r["price_list"] == json!(list))
            .unwrap()["price"],
        right
    );

    // The daemon: a customer signed up at the POS (not at the central yet)
    // survives its verifies; a new drift is repaired on schedule and counted.
    let mut store = store;
    store.start().unwrap();
    let signup = json!({"id": "01940000-0000-7000-8000-0000000000c1", "document": "52998224725",
        "name": "Maria da Silva", "lgpd_consent": true});
    let a = store.pos_post("/v1/customers", &signup).await.unwrap();
    assert!(a.status == 201 || a.status == 200, "{a:?}");
    tamper(
        &store,
        &format!(
            "UPDATE prices SET price = 1 WHERE product_code = '{code}' AND price_list = '{list}';"
        ),
    );
    wait_for(
        "the scheduled verify repairs the price",
        Duration::from_secs(40),
        || async {
            let m = reqwest::get(format!("{}/metrics", store.pos_url()?))
                .await?
                .text()
                .await?;
            let repaired = m.lines().any(|l| {
                l.starts_with("lojad_verify_repaired_rows_total{entity=\"prices\"}")
                    && !l.ends_with(" 0")
            });
            let price_ok = store.replica_rows("prices")?.values().any(|r| {
                r["product_code"] == json!(code)
                    && r["price_list"] == json!(list)
                    && r["price"] == right
            });
            Ok((repaired && price_ok).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 40)));
    let found = store
        .pos_get("/v1/customers/by-document/52998224725")
        .await
        .unwrap();
    assert_eq!(
        found.status, 200,
        "the sign-up survived the verifies: {found:?}"
    );
    assert!(
        store.log().contains("verify: the replica had drifted"),
        "the repair is logged"
    );
}
