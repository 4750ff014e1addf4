//! End to end (issue 16): kill -9 of lojad between a document's 201 and its
//! upload, for each kind of a sale's life. The upload job is switched off
//! (`lojad tasks disable UPL`) so every document is acknowledged and still
//! pending when lojad dies; after each kill lojad restarts; then the upload is
//! switched on. The central must hold each document exactly once, and the
//! stock it applied must be the one sum of them all — at the central and at
//! the POS.

use std::collections::BTreeMap;
use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_acknowledged_before_a_kill_goes_up_once() {
    let central = Central::builder()
        .catalog_with(20, 5, false, 1)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    central
        .import_own(
            "stock",
            STORE,
            &[json!({"product_code": "1", "qty": 10_000})],
        )
        .await
        .unwrap();
    let mut store = Store::builder(central.url(), STORE, TOKEN)
        .build()
        .expect("config");
    let off = store.command(&["tasks", "disable", "UPL"]).unwrap();
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    store.start().expect("lojad starts");
    store
        .wait_synced(&central, Duration::from_secs(60))
        .await
        .unwrap();

    let session = Uuid::new_v4();
    let (s1, s2, ret) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let sale = |id: Uuid, n: i64, qty: i64| {
        json!({"id": id, "register": "PDV01", "session_id": session, "number": n, "operator": "001",
               "items": [{"product_code": "1", "qty": qty, "unit_price": 100, "total": qty / 10}],
               "total": qty / 10, "payments": [{"method": "CASH", "amount": qty / 10}],
               "sold_at": "2026-11-30T09:00:00Z"})
    };
    let steps: Vec<(String, Value)> = vec![
        (
            "/v1/cash/open".into(),
            json!({"id": session, "register": "PDV01", "operator": "001",
            "opening_amount": 0, "opened_at": "2026-11-30T08:00:00Z"}),
        ),
        ("/v1/sales".into(), sale(s1, 1, 1000)),
        ("/v1/sales".into(), sale(s2, 2, 2000)),
        (
            format!("/v1/sales/{s1}/returns"),
            json!({"id": ret, "register": "PDV01", "reason_code": "02",
            "operator": "001", "returned_at": "2026-11-30T10:00:00Z",
            "items": [{"product_code": "1", "qty": 500, "refund": 50, "restock": true}],
            "refunds": [{"method": "CASH", "amount": 50}]}),
        ),
        (
            format!("/v1/returns/{ret}/cancellation"),
            json!({"id": Uuid::new_v4(), "register": "PDV01",
            "reason_code": "9", "operator": "001", "cancelled_at": "2026-11-30T10:05:00Z"}),
        ),
        (
            format!("/v1/sales/{s2}/cancellation"),
            json!({"id": Uuid::new_v4(), "register": "PDV01",
            "reason_code": "1", "operator": "001", "cancelled_at": "2026-11-30T11:00:00Z"}),
        ),
        (
            "/v1/stock/movements".into(),
            json!({"id": Uuid::new_v4(), "movement": "receipt", "register": "PDV01",
            "operator": "001", "nfe_key": "35261112345678000190550010000000011000000010",
            "items": [{"product_code": "1", "qty": 3000}], "moved_at": "2026-11-30T12:00:00Z"}),
        ),
        (
            "/v1/stock/counts".into(),
            json!({"id": Uuid::new_v4(), "register": "PDV01", "operator": "001",
            "items": [{"product_code": "1", "counted_qty": 12_000}], "counted_at": "2026-11-30T21:00:00Z"}),
        ),
    ];
    let mut ids = Vec::new();
    for (path, body) in &steps {
        let a = store.pos_post(path, body).await.unwrap();
        assert_eq!(a.status, 201, "{path}: {}", a.body);
        ids.push(body["id"].as_str().unwrap().to_owned());
        // Acknowledged, not uploaded (the upload is off): killed right now.
        store.kill();
        store.restart().expect("lojad restarts");
    }
    // Counted 12 after everything: the POS says 12 before anything went up.
    let local = store.pos_get("/v1/products/1").await.unwrap();
    assert_eq!(local.body["stock_qty"], json!(12_000), "{}", local.body);

    let on = store.command(&["tasks", "enable", "UPL"]).unwrap();
    assert!(on.status.success());
    // A new document wakes the upload job (its schedule would, later).
    let a = store
        .pos_post(
            "/v1/cash/movements",
            &json!({"id": Uuid::new_v4(), "register": "PDV01", "session_id": session,
                    "kind": "supply", "amount": 100, "at": "2026-11-30T21:10:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201);
    let held = wait_for(
        "every document at the central",
        Duration::from_secs(30),
        || {
            let ids = ids.clone();
            let central = &central;
            async move {
                let page = central.documents(0, 10_000).await?;
                let mut count: BTreeMap<String, u32> = BTreeMap::new();
                for d in page["documents"].as_array().cloned().unwrap_or_default() {
                    if let Some(id) = d["document"]["id"].as_str() {
                        *count.entry(id.to_owned()).or_default() += 1;
                    }
                }
                Ok(ids.iter().all(|id| count.contains_key(id)).then_some(count))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 40)));
    for id in &ids {
        assert_eq!(held.get(id), Some(&1), "document {id} exactly once");
    }
    // The central applied the documents once each: the count's 12.
    let (items, _) = central
        .feed_all(STORE, TOKEN, "stock", 0, 1000)
        .await
        .unwrap();
    let last = items
        .iter()
        .rev()
        .find(|i| i.row.get("product_code") == Some(&json!("1")))
        .unwrap();
    assert_eq!(last.row.get("qty"), Some(&json!(12_000)), "{:?}", last.row);
    store
        .wait_synced(&central, Duration::from_secs(20))
        .await
        .unwrap();
    let after = store.pos_get("/v1/products/1").await.unwrap();
    assert_eq!(after.body["stock_qty"], json!(12_000), "{}", after.body);
}
