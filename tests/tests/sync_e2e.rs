//! End-to-end: a real `retaguarda-server` and a real `lojad` on loopback.
//! The replica must equal the central's view of the store, row for row,
//! after a full sync, an incremental change, a delete, a kill -9 in the
//! middle of a large sync, and an outage of the central; a corrupt page is
//! rejected whole; a central change reaches the POS in seconds (push).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::store::{Store, central_rows, tail, wait_for};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";

fn central_with(products: u64, customers: u64) -> Central {
    Central::builder()
        .catalog(products, customers)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_then_push_change_then_tombstone() {
    let central = central_with(1_500, 300);
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .page_size(700)
        .start()
        .unwrap();

    // Initial full sync: every entity equals the central's view.
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .unwrap();
    let prices = store.replica_rows("prices").unwrap();
    assert!(prices.len() >= 1_500, "prices: {}", prices.len());
    let tickets = store.tickets().unwrap();
    assert!(
        tickets
            .iter()
            .any(|t| t.kind == "feed" && t.subject == "products" && t.status == "ok")
    );
    assert!(
        tickets.iter().all(|t| t.status == "ok"),
        "failed tickets: {tickets:?}"
    );

    // Incremental change through push: a price imported centrally is served
    // by the POS API within 5 s, by code and by barcode.
    let barcodes = store.replica_rows("barcodes").unwrap();
    let (key, row) = prices
        .iter()
        .find(|(_, r)| {
            r["price_list"] == "base"
                && barcodes
                    .values()
                    .any(|b| b["product_code"] == r["product_code"])
        })
        .expect("a base price of a product with a barcode");
    let code = row["product_code"].as_str().unwrap().to_owned();
    let barcode = barcodes
        .values()
        .find(|b| b["product_code"] == json!(code))
        .and_then(|b| b["barcode"].as_str())
        .unwrap()
        .to_owned();
    let new_price = row["price"].as_i64().unwrap() + 1_234;
    let mut changed = row.clone();
    changed.insert("price".into(), json!(new_price));
    changed.remove("promo_price");
    changed.remove("promo_until");
    let t0 = Instant::now();
    central
        .import_rows("prices", &[Value::Object(changed)])
        .await
        .unwrap();
    let seen = wait_for(
        "the new price at the POS",
        Duration::from_secs(15),
        || async {
            let a = store.pos_get(&format!("/v1/products/{code}")).await?;
            let b = store
                .pos_get(&format!("/v1/products/by-barcode/{barcode}"))
                .await?;
            Ok((a.status == 200
                && a.body["price"]["price"] == json!(new_price)
                && b.status == 200
                && b.body == a.body)
                .then_some(()))
        },
    )
    .await;
    let elapsed = t0.elapsed();
    seen.unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)));
    assert!(elapsed < Duration::from_secs(5), "push took {elapsed:?}");
    assert_eq!(
        store.replica_rows("prices").unwrap()[key]["price"],
        json!(new_price)
    );

    // Delete (tombstone): a barcode removed centrally leaves the replica.
    let barcodes = store.replica_rows("barcodes").unwrap();
    let (bkey, brow) = barcodes.iter().next().unwrap();
    let tomb = json!({"op": "delete", "key": {"barcode": brow["barcode"]}});
    central.import("barcodes", &[tomb]).await.unwrap();
    let bkey = bkey.clone();
    wait_for("the tombstone applied", Duration::from_secs(15), || {
        let bkey = bkey.clone();
        let store = &store;
        async move { Ok((!store.replica_rows("barcodes")?.contains_key(&bkey)).then_some(())) }
    })
    .await
    .unwrap();
    store
        .wait_synced(&central, Duration::from_secs(30))
        .await
        .unwrap();

    // Each run logged by module code.
    let runs = store.log_runs().unwrap();
    assert!(
        runs.iter()
            .any(|(code, outcome, rows, _)| code == "PRC" && outcome == "ok" && *rows > 0),
        "{runs:?}"
    );
    assert!(runs.iter().any(|(code, _, _, _)| code == "UPL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_large_sync_then_resume() {
    // 20k products → ~100k+ feed rows (products, barcodes, prices, taxes, stock) + customers.
    let central = central_with(20_000, 5_000);
    central.release_everything().await.unwrap();
    let entities = [
        "products",
        "barcodes",
        "prices",
        "product_taxes",
        "stock",
        "customers",
    ];
    let total: usize = {
        let mut n = 0;
        for e in entities {
            n += central_rows(&central, STORE, TOKEN, e).await.unwrap().len();
        }
        n
    };
    assert!(total >= 100_000, "catalog too small: {total}");
    let mut store = Store::builder(central.url(), STORE, TOKEN)
        .page_size(250)
        .push(false)
        .start()
        .unwrap();

    // Kill at three different points of the load.
    let mut kills = Vec::new();
    for target in [total / 6, total / 3, total / 2] {
        let progress = wait_for("sync progress", Duration::from_secs(180), || async {
            let mut n = 0u64;
            for e in entities {
                n += store.replica_count(e).unwrap_or(0);
            }
            Ok((n as usize >= target).then_some(n))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 30)));
        store.kill();
        kills.push(progress);
        store.start().unwrap();
    }
    eprintln!("killed at {kills:?} of {total} rows");
    assert!(
        kills.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {kills:?}"
    );
    assert!(
        (kills[0] as usize) < total,
        "the first kill came after the sync had finished: {kills:?}"
    );

    store
        .wait_synced(&central, Duration::from_secs(300))
        .await
        .unwrap();

    // No page applied twice, none skipped: the Ok feed tickets of each
    // entity are disjoint, ascending ranges (a page whose ticket was lost
    // to the kill leaves a gap in the archive, never an overlap).
    let mut by_entity: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for t in store.tickets().unwrap() {
        if t.kind == "feed" && t.status == "ok" && t.items > 0 {
            by_entity
                .entry(t.subject.clone())
                .or_default()
                .push((t.range_from.unwrap(), t.range_to.unwrap()));
        }
    }
    for (entity, ranges) in by_entity {
        for w in ranges.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{entity}: page {:?} overlaps {:?}",
                w[1],
                w[0]
            );
        }
    }
}

/// A fake central: serves one corrupt page for `prices` (a float where
/// centavos go), undecodable bytes for `stock`, and a good first page then
/// a bad second page for `products`; every other feed is empty.
async fn fake_central() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        let (status, body) = fake_answer(&path);
                        // Each answer carries its digest, as the central's
                        // do: what is refused is refused for its content.
                        let resp = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{}: {}\r\ncontent-length: {}\r\n\r\n",
                            loja_protocol::DIGEST_HEADER,
                            loja_protocol::digest::body_digest(&body),
                            body.len()
                        );
                        if sock.write_all(resp.as_bytes()).await.is_err()
                            || sock.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, handle)
}

fn fake_answer(path: &str) -> (&'static str, Vec<u8>) {
    let query: BTreeMap<&str, &str> = path
        .split('?')
        .nth(1)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let after: u64 = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    if path.contains("/events") {
        return ("200 OK", br#"{"seq":0,"entities":[]}"#.to_vec());
    }
    let Some(entity) = path
        .split("/feeds/")
        .nth(1)
        .map(|r| r.split('?').next().unwrap_or(""))
    else {
        return (
            "404 Not Found",
            br#"{"error":{"code":"not_found","message":"no"}}"#.to_vec(),
        );
    };
    let page = |items: Value, next: u64, more: bool| {
        json!({"entity": entity, "after": after, "items": items, "next": next, "more": more})
            .to_string()
            .into_bytes()
    };
    match (entity, after) {
        ("prices", _) => (
            "200 OK",
            page(
                json!([{"seq": 3, "op": "upsert", "row": {"product_code": "1", "price_list": "base", "price": 12.5}}]),
                3,
                false,
            ),
        ),
        ("stock", _) => (
            "200 OK",
            b"{\"entity\":\"stock\",\"after\":0,\"items\":[{\"seq\"".to_vec(),
        ),
        ("products", 0) => (
            "200 OK",
            page(
                json!([{"seq": 5, "op": "upsert", "row": {"code": "P1", "name": "Arroz 5kg", "unit": "UN"}}]),
                5,
                true,
            ),
        ),
        ("products", _) => (
            "200 OK",
            page(
                json!([{"seq": 9, "op": "upsert", "row": {"code": "P2", "unit": "UN"}}]),
                9,
                false,
            ),
        ),
        _ => ("200 OK", page(json!([]), after, false)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_page_is_rejected_whole_and_the_watermark_stays() {
    let (url, server) = fake_central().await;
    let store = Store::builder(&url, STORE, TOKEN).build().unwrap();
    let out = store
        .command(&["sync", "prices", "stock", "products"])
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a failed sync exits non-zero: {text}"
    );

    assert_eq!(store.watermark("prices").unwrap(), 0, "{text}");
    assert!(store.replica_rows("prices").unwrap().is_empty());
    assert_eq!(store.watermark("stock").unwrap(), 0);
    // products: the good first page stays applied, the bad second one is refused.
    assert_eq!(store.watermark("products").unwrap(), 5);
    let products = store.replica_rows("products").unwrap();
    assert_eq!(products.len(), 1, "{products:?}");

    let tickets = store.tickets().unwrap();
    let failed = |subject: &str| {
        tickets
            .iter()
            .find(|t| t.subject == subject && t.status == "failed")
            .cloned()
    };
    let p = failed("prices").unwrap_or_else(|| panic!("no failed prices ticket: {tickets:?}"));
    assert!(p.error.as_deref().unwrap_or("").contains("price"), "{p:?}");
    assert!(p.response_bytes > 0, "the payload is kept: {p:?}");
    let s = failed("stock").expect("a failed stock ticket");
    assert!(s.response_bytes > 0, "{s:?}");
    let pr = failed("products").expect("a failed products ticket");
    assert!(pr.error.as_deref().unwrap_or("").contains("name"), "{pr:?}");
    assert!(
        tickets
            .iter()
            .any(|t| t.subject == "products" && t.status == "ok")
    );

    let runs = store.log_runs().unwrap();
    for code in ["PRC", "ETQ", "PRD"] {
        assert!(
            runs.iter()
                .any(|(c, outcome, _, _)| c == code && outcome == "failed"),
            "{code}: {runs:?}"
        );
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_down_the_store_keeps_running_and_catches_up() {
    let mut central = central_with(300, 50);
    central.release_everything().await.unwrap();
    let mut store = Store::builder(central.url(), STORE, TOKEN)
        .timeout_secs(3)
        .start()
        .unwrap();
    store
        .wait_synced(&central, Duration::from_secs(60))
        .await
        .unwrap();
    let code = store
        .replica_rows("products")
        .unwrap()
        .values()
        .next()
        .unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();

    central.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        store.is_running(),
        "lojad died with the central down:\n{}",
        tail(&store.log(), 30)
    );
    let a = store
        .pos_get(&format!("/v1/products/{code}"))
        .await
        .unwrap();
    assert_eq!(
        a.status, 200,
        "the POS still reads the replica: {:?}",
        a.body
    );

    central.restart().unwrap();
    let changed = json!({"product_code": code, "price_list": "base", "price": 77_777});
    central.import_rows("prices", &[changed]).await.unwrap();
    wait_for(
        "the change after the outage",
        Duration::from_secs(60),
        || async {
            let a = store.pos_get(&format!("/v1/products/{code}")).await?;
            Ok((a.body["price"]["price"] == json!(77_777)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 40)));
    store
        .wait_synced(&central, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(store.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_an_older_lojad_loses_its_product_cards() {
    // The product cards are gone (a derived table; the lookup reads the
    // tables): a replica made by a lojad that had them drops the table when
    // it is opened, and answers the same.
    let central = central_with(400, 50);
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .build()
        .expect("config");
    store.sync(&[]).expect("lojad sync");
    {
        let conn = rusqlite::Connection::open(store.data_dir().join("replica.db")).unwrap();
        // The replica as a lojad of migration 3 left it: with the cards, no
        // price list order, the taxes in one table, no return reasons, no
        // stock reflects_store_seq.
        conn.execute_batch(
            "CREATE TABLE product_cards (barcode_hash INTEGER PRIMARY KEY, answer BLOB);
             DROP TABLE price_list_order;
             DROP TABLE return_reasons;
             ALTER TABLE stock DROP COLUMN reflects_store_seq;
             DELETE FROM watermarks WHERE entity = 'return_reasons';
             DROP TABLE icms_by_state; DROP TABLE pis_cofins;
             DROP TABLE icms_st_retained; DROP TABLE fcp_balance;
             DELETE FROM watermarks
              WHERE entity IN ('icms_by_state', 'pis_cofins', 'icms_st_retained', 'fcp_balance');
             ALTER TABLE product_taxes ADD COLUMN icms_cst TEXT;
             ALTER TABLE product_taxes ADD COLUMN icms_rate_bp INTEGER;
             ALTER TABLE product_taxes ADD COLUMN icms_st_rate_bp INTEGER;
             ALTER TABLE product_taxes ADD COLUMN icms_retained INTEGER;
             ALTER TABLE product_taxes ADD COLUMN fcp_rate_bp INTEGER;
             ALTER TABLE product_taxes ADD COLUMN pis_cst TEXT;
             ALTER TABLE product_taxes ADD COLUMN pis_rate_bp INTEGER;
             ALTER TABLE product_taxes ADD COLUMN cofins_cst TEXT;
             ALTER TABLE product_taxes ADD COLUMN cofins_rate_bp INTEGER;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    store.sync(&[]).expect("lojad sync after the downgrade");
    let conn = rusqlite::Connection::open(store.data_dir().join("replica.db")).unwrap();
    let cards: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'product_cards'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cards, 0, "the cards' table is dropped");
    assert!(
        store
            .diff_with_central(&central, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `lojad sync` beside the daemon: both write the same replica, each fetches
/// from the watermark it read, and whichever applies second finds its page
/// already applied. That is not a failure: the run goes on from the stored
/// watermark, and the replica ends equal to the central's view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lojad_sync_beside_the_daemon_is_not_a_failure() {
    let central = central_with(1_200, 10);
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .page_size(100)
        .start()
        .unwrap();
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .unwrap();
    for round in 0..3 {
        // Every base price changes: a dozen pages the daemon (woken by push)
        // and three CLI runs all fetch at once.
        let changed: Vec<Value> = store
            .replica_rows("prices")
            .unwrap()
            .into_values()
            .filter(|r| r["price_list"] == "base")
            .map(|mut r| {
                let price = r["price"].as_i64().unwrap_or(0) + 1;
                r.insert("price".into(), json!(price));
                r.remove("promo_price");
                r.remove("promo_until");
                Value::Object(r)
            })
            .collect();
        central.import_rows("prices", &changed).await.unwrap();
        let outs: Vec<_> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..3)
                .map(|_| s.spawn(|| store.command(&["sync", "prices"])))
                .collect();
            runs.into_iter().map(|r| r.join()).collect()
        });
        for out in outs {
            let out = out.expect("a sync thread").unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}{}\nlog:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&store.log(), 30)
            );
        }
    }
    store
        .wait_synced(&central, Duration::from_secs(30))
        .await
        .unwrap();
    let failed: Vec<_> = store
        .tickets()
        .unwrap()
        .into_iter()
        .filter(|t| t.status != "ok")
        .collect();
    assert!(failed.is_empty(), "failed tickets: {failed:?}");
}
