//! End to end (issue 16): a sale's life through a real central and two real
//! lojad processes, loja-a and loja-b.
//!
//! - Stock the POS can trust: product 1 has stock 10 at loja-a; sell 3 → the
//!   POS answers 7 at once; the central applies the sale and sends 7 back
//!   (reflecting it) → still 7, never 4.
//! - A return with restock (8) and its cancellation (7 again); a second
//!   cancellation of the same return is a 422 naming `return_id`; a return
//!   above what was sold is a 422 naming `items[0].qty`.
//! - A transfer of 2 from loja-a to loja-b, confirmed by loja-b: 5 at loja-a,
//!   2 at loja-b, at both POS and at the central.
//! - The session closed R$ 3,00 short: `lojad status` shows the shortfall,
//!   and the close reaches the central carrying it.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const A: (&str, &str) = ("loja-a", "token-loja-a");
const B: (&str, &str) = ("loja-b", "token-loja-b");

/// Waits (bounded) until the POS of `store` answers `qty` for product 1.
async fn stock_is(store: &Store, qty: i64) {
    let what = format!("{} shows stock {qty}", store.store_id());
    wait_for(&what, Duration::from_secs(20), || async move {
        let a = store.pos_get("/v1/products/1").await?;
        Ok((a.status == 200 && a.body["stock_qty"] == json!(qty)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 40)));
}

/// The POS answer now (no waiting).
async fn stock_now(store: &Store) -> Value {
    store.pos_get("/v1/products/1").await.unwrap().body["stock_qty"].clone()
}

/// The central's stock row of product 1 owned by `store`, once it reflects
/// the store's documents up to at least `seq`.
async fn central_stock(central: &Central, store: &str, token: &str, seq: u64) -> i64 {
    central
        .stock_reflecting(store, token, "1", seq)
        .await
        .unwrap()
}

async fn post(store: &Store, path: &str, body: Value) -> (u16, Value) {
    let a = store.pos_post(path, &body).await.unwrap();
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sales_life_moves_the_stock_the_pos_reads() {
    let central = Central::builder()
        .catalog_with(50, 10, false, 1)
        .store(A.0, "master", A.1)
        .store(B.0, "master", B.1)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    central
        .import_own("stock", A.0, &[json!({"product_code": "1", "qty": 10_000})])
        .await
        .unwrap();
    let a = Store::builder(central.url(), A.0, A.1)
        .start()
        .expect("loja-a starts");
    let b = Store::builder(central.url(), B.0, B.1)
        .start()
        .expect("loja-b starts");
    for s in [&a, &b] {
        s.wait_synced(&central, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&s.log(), 40)));
    }
    stock_is(&a, 10_000).await;

    // Sell 3 of 10: 7 at once.
    let session = Uuid::new_v4();
    let (status, _) = post(
        &a,
        "/v1/cash/open",
        json!({"id": session, "register": "PDV01",
        "operator": "001", "opening_amount": 0, "opened_at": "2026-11-30T08:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201);
    let sale = Uuid::new_v4();
    let (status, ack) = post(
        &a,
        "/v1/sales",
        json!({"id": sale, "register": "PDV01", "session_id": session,
        "number": 1, "operator": "001",
        "items": [{"product_code": "1", "qty": 3000, "unit_price": 500, "total": 1500}],
        "total": 1500, "payments": [{"method": "CASH", "amount": 1500}],
        "sold_at": "2026-11-30T09:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(stock_now(&a).await, json!(7_000), "the sale counts at once");
    let sale_seq = ack["store_seq"].as_u64().unwrap();
    // The central applies it and sends 7 back, reflecting it: 7, never 4.
    assert_eq!(central_stock(&central, A.0, A.1, sale_seq).await, 7_000);
    a.wait_synced(&central, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(stock_now(&a).await, json!(7_000), "never counted twice");

    // A return above what was sold is refused; one of 1, restocked: 8.
    let ret = |id: Uuid, qty: i64| {
        json!({"id": id, "register": "PDV01", "reason_code": "02", "operator": "001",
               "returned_at": "2026-11-30T10:00:00Z",
               "items": [{"product_code": "1", "qty": qty, "refund": qty / 2, "restock": true}],
               "refunds": [{"method": "CASH", "amount": qty / 2}]})
    };
    let (status, body) = post(
        &a,
        &format!("/v1/sales/{sale}/returns"),
        ret(Uuid::new_v4(), 4000),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (422, json!("items[0].qty")),
        "{body}"
    );
    let r = Uuid::new_v4();
    let (status, body) = post(&a, &format!("/v1/sales/{sale}/returns"), ret(r, 1000)).await;
    assert_eq!(status, 201, "{body}");
    stock_is(&a, 8_000).await;
    // Its cancellation: 7 again; a second one is refused.
    let undo = |id: Uuid| {
        json!({"id": id, "register": "PDV01", "reason_code": "9", "operator": "001",
               "cancelled_at": "2026-11-30T10:05:00Z"})
    };
    let (status, body) = post(
        &a,
        &format!("/v1/returns/{r}/cancellation"),
        undo(Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    stock_is(&a, 7_000).await;
    let (status, body) = post(
        &a,
        &format!("/v1/returns/{r}/cancellation"),
        undo(Uuid::new_v4()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (422, json!("return_id")),
        "{body}"
    );

    // A transfer of 2 to loja-b, confirmed by it.
    let out = Uuid::new_v4();
    let (status, body) = post(
        &a,
        "/v1/stock/movements",
        json!({"id": out, "movement": "transfer_out",
        "register": "PDV01", "operator": "001", "to_store": B.0,
        "items": [{"product_code": "1", "qty": 2000}], "moved_at": "2026-11-30T11:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    stock_is(&a, 5_000).await;
    let (status, body) = post(
        &b,
        "/v1/stock/movements",
        json!({"id": Uuid::new_v4(), "movement": "transfer_in",
        "register": "PDV01", "operator": "001", "from_store": A.0, "transfer_id": out,
        "items": [{"product_code": "1", "qty": 2000}], "moved_at": "2026-11-30T15:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let in_seq = body["store_seq"].as_u64().unwrap();
    stock_is(&b, 2_000).await;
    assert_eq!(central_stock(&central, B.0, B.1, in_seq).await, 2_000);
    a.wait_synced(&central, Duration::from_secs(20))
        .await
        .unwrap();
    b.wait_synced(&central, Duration::from_secs(20))
        .await
        .unwrap();
    stock_is(&a, 5_000).await;
    stock_is(&b, 2_000).await;

    // The session closes R$ 3,00 short: the drawer should hold 15,00 sold
    // less 5,00 refunded = 10,00; the operator counts 7,00.
    let close = Uuid::new_v4();
    let (status, body) = post(
        &a,
        "/v1/cash/close",
        json!({"id": close, "register": "PDV01",
        "session_id": session, "operator": "001", "counted_amount": 700,
        "closed_at": "2026-11-30T20:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let report = a.status_json().unwrap();
    let check = report["cash_checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == json!(close)).cloned())
        .expect("lojad status lists the close");
    assert_eq!(check["difference"], json!(-300), "{check}");
    let text = a.command(&["status"]).unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("SHORT R$ 3,00"), "{text}");
    // The close the ERP gets carries the reconciliation.
    let carried = wait_for(
        "the close at the central",
        Duration::from_secs(20),
        || async {
            let page = central.documents(0, 1000).await?;
            Ok(page["documents"].as_array().and_then(|d| {
                d.iter()
                    .find(|d| d["document"]["id"] == json!(close))
                    .map(|d| d["document"]["reconciliation"].clone())
            }))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        carried["cash_close"]["cash_difference"],
        json!(-300),
        "{carried}"
    );
}
