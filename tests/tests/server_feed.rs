//! The central's feeds end to end: paging under concurrent imports, the node
//! hierarchy, and a first full load that does not stall anyone else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_protocol::{FeedItem, Op, Watermark, entity_named};
use serde_json::{Map, Value, json};

fn stock(code: u64, qty: i64) -> Value {
    json!({"product_code": code.to_string(), "qty": qty})
}

/// Applies items to a store-side view keyed by the entity's key text.
fn apply(view: &mut BTreeMap<String, Map<String, Value>>, entity: &str, items: &[FeedItem]) {
    let e = entity_named(entity).unwrap();
    for it in items {
        let key = e.key_text(&it.row);
        match it.op {
            Op::Upsert => {
                view.insert(key, it.row.clone());
            }
            Op::Delete => {
                view.remove(&key);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_imports_in_between_skips_and_repeats_nothing() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s1", "master", "token-s1-0123").await?;
    central.add_exception("s1").await?;
    let rows: Vec<Value> = (1..=3000).map(|i| stock(i, i as i64 * 1000)).collect();
    central.import_own("stock", "s1", &rows).await?;
    let mut expected: BTreeMap<String, Value> = (1..=3000u64)
        .map(|i| (format!("[\"{i}\"]"), stock(i, i as i64 * 1000)))
        .collect();

    let mut view = BTreeMap::new();
    let mut seen_seqs = HashSet::new();
    let mut deliveries: HashMap<String, u32> = HashMap::new();
    let mut touched: HashSet<String> = HashSet::new();
    let mut after = 0u64;
    let mut round = 0u64;
    loop {
        let page = central
            .feed("s1", "token-s1-0123", "stock", after, 400)
            .await?;
        page.validate(entity_named("stock").unwrap(), Watermark(after))?;
        for it in &page.items {
            assert!(seen_seqs.insert(it.seq), "seq {} served twice", it.seq);
            *deliveries
                .entry(entity_named("stock").unwrap().key_text(&it.row))
                .or_default() += 1;
        }
        apply(&mut view, "stock", &page.items);
        after = page.next.0;
        if round < 5 {
            // Between pages: change rows already served and rows not served yet,
            // add new ones and delete some.
            round += 1;
            let mut lines = Vec::new();
            for i in [round * 7, 1500 + round * 11, 2990 - round] {
                let row = stock(i, -(round as i64));
                lines.push(json!({"op": "upsert", "node": "s1", "row": row}));
                expected.insert(format!("[\"{i}\"]"), row);
                touched.insert(format!("[\"{i}\"]"));
            }
            let new = 5000 + round;
            lines.push(json!({"op": "upsert", "node": "s1", "row": stock(new, 1)}));
            expected.insert(format!("[\"{new}\"]"), stock(new, 1));
            touched.insert(format!("[\"{new}\"]"));
            let gone = 100 + round * 300;
            lines.push(
                json!({"op": "delete", "node": "s1", "key": {"product_code": gone.to_string()}}),
            );
            expected.remove(&format!("[\"{gone}\"]"));
            touched.insert(format!("[\"{gone}\"]"));
            central.import("stock", &lines).await?;
            continue;
        }
        if !page.more {
            break;
        }
    }
    let view: BTreeMap<String, Value> = view
        .into_iter()
        .map(|(k, v)| (k, Value::Object(v)))
        .collect();
    assert_eq!(view.len(), expected.len());
    assert!(
        view == expected,
        "the store's view differs from the central's"
    );
    for (key, n) in &deliveries {
        if !touched.contains(key) {
            assert_eq!(*n, 1, "untouched row {key} delivered {n} times");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchy_private_rows_tombstones_and_ownership() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_central("sul", "master").await?;
    central.add_store("a", "sul", "token-a-0123").await?;
    central.add_store("b", "master", "token-b-0123").await?;
    central.add_exception("a").await?;
    central.add_exception("b").await?;
    let price = |code: &str, list: &str, p: i64| json!({"product_code": code, "price_list": list, "price": p});
    central
        .import(
            "prices",
            &[
                json!({"op": "upsert", "row": price("1", "base", 1000)}),
                json!({"op": "upsert", "node": "a", "public": false, "row": price("1", "a", 900)}),
                json!({"op": "upsert", "node": "sul", "public": true, "row": price("1", "sul", 950)}),
                json!({"op": "upsert", "node": "sul", "public": false, "row": price("1", "sul-internal", 1)}),
                json!({"op": "upsert", "node": "a", "row": price("2", "promo", 500)}),
            ],
        )
        .await?;
    let lists = |items: &[FeedItem]| -> Vec<(String, Op)> {
        items
            .iter()
            .map(|i| (i.row["price_list"].as_str().unwrap_or("").to_owned(), i.op))
            .collect()
    };
    let (a_items, a_next) = central
        .feed_all("a", "token-a-0123", "prices", 0, 100)
        .await?;
    let (b_items, b_next) = central
        .feed_all("b", "token-b-0123", "prices", 0, 100)
        .await?;
    assert_eq!(
        lists(&a_items),
        vec![
            ("base".into(), Op::Upsert),
            ("a".into(), Op::Upsert),
            ("sul".into(), Op::Upsert),
            ("sul-internal".into(), Op::Delete),
            ("promo".into(), Op::Upsert)
        ]
    );
    assert_eq!(
        lists(&b_items),
        vec![("base".into(), Op::Upsert)],
        "b sees only master's public rows"
    );
    assert!(
        !b_items
            .iter()
            .any(|i| i.row.get("price") == Some(&json!(900))),
        "b never sees a's private price"
    );

    // Master's base price turns private: a tombstone for both stores.
    // b gets a promo row of its own: a's stays a's (prices resolve per store).
    central
        .import(
            "prices",
            &[
                json!({"op": "upsert", "public": false, "row": price("1", "base", 1000)}),
                json!({"op": "upsert", "node": "b", "row": price("2", "promo", 450)}),
            ],
        )
        .await?;
    let (a2, _) = central
        .feed_all("a", "token-a-0123", "prices", a_next, 100)
        .await?;
    let (b2, _) = central
        .feed_all("b", "token-b-0123", "prices", b_next, 100)
        .await?;
    assert_eq!(lists(&a2), vec![("base".into(), Op::Delete)]);
    assert_eq!(
        lists(&b2),
        vec![("base".into(), Op::Delete), ("promo".into(), Op::Upsert)]
    );
    assert_eq!(
        a2[0].row,
        json!({"product_code": "1", "price_list": "base"})
            .as_object()
            .cloned()
            .unwrap()
    );

    // The store certificate is private to its store: b gets nothing at all.
    let cert = json!({"store": "a", "pfx_base64": "MIIJ...", "password": "s3cret"});
    central
        .import("store_certificate", &[json!({"op": "upsert", "row": cert})])
        .await?;
    let (ca, _) = central
        .feed_all("a", "token-a-0123", "store_certificate", 0, 10)
        .await?;
    let (cb, _) = central
        .feed_all("b", "token-b-0123", "store_certificate", 0, 10)
        .await?;
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].row["password"], "s3cret");
    assert!(cb.is_empty());
    let public_cert = central
        .import_raw(
            "store_certificate",
            json!({"op": "upsert", "public": true, "row": cert}).to_string(),
        )
        .await?;
    assert_eq!(public_cert.status, 422);
    assert_eq!(public_cert.body["error"]["field"], "public");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_full_load_streams_while_imports_and_other_stores_keep_answering()
-> anyhow::Result<()> {
    let central = Central::builder()
        .catalog_with(15_000, 1_000, false, 3)
        .store("big", "master", "token-big-0123")
        .store("small", "master", "token-small-0123")
        .start()?;
    central.add_exception("small").await?;
    let big = {
        let url = central.url().to_owned();
        let client = central.client().clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut rows = 0usize;
            let started = Instant::now();
            loop {
                let page: loja_protocol::FeedPage = client
                    .get(format!(
                        "{url}/v1/stores/big/feeds/barcodes?after={after}&limit=1000"
                    ))
                    .bearer_auth("token-big-0123")
                    .header("accept-encoding", "zstd")
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                rows += page.items.len();
                after = page.next.0;
                if !page.more {
                    return Ok::<_, anyhow::Error>((rows, started.elapsed()));
                }
            }
        })
    };
    // Meanwhile: imports are accepted and another store's feed answers.
    let mut import_worst = Duration::ZERO;
    let mut feed_worst = Duration::ZERO;
    for i in 0..10u64 {
        let t = Instant::now();
        central
            .import_own("stock", "small", &[stock(i + 1, 7)])
            .await?;
        import_worst = import_worst.max(t.elapsed());
        let t = Instant::now();
        let page = central
            .feed("small", "token-small-0123", "stock", 0, 100)
            .await?;
        feed_worst = feed_worst.max(t.elapsed());
        assert_eq!(page.items.len() as u64, i + 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows, took) = tokio::time::timeout(Duration::from_secs(120), big).await???;
    assert_eq!(rows, 30_000);
    eprintln!(
        "full load of 30k barcodes in {took:?}; worst import {import_worst:?}, worst other feed {feed_worst:?}"
    );
    assert!(
        import_worst < Duration::from_secs(3),
        "an import waited {import_worst:?}"
    );
    assert!(
        feed_worst < Duration::from_secs(3),
        "another store's feed waited {feed_worst:?}"
    );
    Ok(())
}
