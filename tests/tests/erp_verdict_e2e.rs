//! End to end (issue 16, item 3): the ERP's verdict reaches the store.
//! A sale goes up; the ERP takes it from the central's queue and rejects it
//! with a code and a message; the store parks it with the ERP's message
//! (`lojad status`); `lojad tickets reprocess` of its (delivered) upload
//! ticket makes the central offer it to the ERP again, instead of answering
//! a duplicate nobody sees; the ERP processes it and the store records that.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";

/// A central with the store (its own `stock` rows when given) and the
/// store's lojad, synced.
async fn started(stock: &[Value]) -> (Central, Store) {
    let central = Central::builder()
        .catalog_with(20, 5, false, 1)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    if !stock.is_empty() {
        central.import_own("stock", STORE, stock).await.unwrap();
    }
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .start()
        .expect("lojad starts");
    store
        .wait_synced(&central, Duration::from_secs(60))
        .await
        .unwrap();
    (central, store)
}

/// Every document of the ERP's queue after `after`, and the new cursor.
async fn erp_take(central: &Central, after: u64) -> (Vec<Value>, u64) {
    let page = central.documents(after, 1000).await.unwrap();
    let docs = page["documents"].as_array().cloned().unwrap_or_default();
    (docs, page["next"].as_u64().unwrap_or(after))
}

async fn verdict(central: &Central, body: Value) -> Value {
    central
        .admin(
            reqwest::Method::POST,
            "/v1/admin/documents/verdicts",
            Some(body),
        )
        .await
        .unwrap()
        .body
}

/// The store's outbox row of `id`: (status, last_error).
fn outbox_state(store: &Store, id: Uuid) -> (String, Option<String>) {
    let conn = rusqlite::Connection::open_with_flags(
        store.data_dir().join("outbox.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT status, last_error FROM documents WHERE id = ?1",
        [id.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_rejection_reaches_the_store_and_a_reprocess_offers_it_again() {
    let (central, store) = started(&[]).await;

    let session = Uuid::new_v4();
    let a = store
        .pos_post(
            "/v1/cash/open",
            &json!({"id": session, "register": "PDV01", "operator": "001",
            "opening_amount": 0, "opened_at": "2026-11-30T08:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201);
    let sale = Uuid::new_v4();
    let sale_body = |id: Uuid, number: i64| {
        json!({"id": id, "register": "PDV01", "session_id": session, "number": number, "operator": "001",
               "items": [{"product_code": "1", "qty": 1000, "unit_price": 500, "total": 500}],
               "total": 500, "payments": [{"method": "CASH", "amount": 500}],
               "sold_at": "2026-11-30T09:00:00Z"})
    };
    assert_eq!(
        store
            .pos_post("/v1/sales", &sale_body(sale, 1))
            .await
            .unwrap()
            .status,
        201
    );

    // The ERP takes the sale from the queue.
    let taken = wait_for(
        "the sale in the ERP's queue",
        Duration::from_secs(20),
        || async {
            let (docs, next) = erp_take(&central, 0).await;
            Ok(docs
                .iter()
                .any(|d| d["document"]["id"] == json!(sale))
                .then_some(next))
        },
    )
    .await
    .unwrap();
    // … and rejects it.
    let answer = verdict(&central, json!({"verdicts": [
        {"id": sale, "status": "rejected", "code": "E42", "message": "NCM inválido para o produto 1"},
        {"id": Uuid::new_v4(), "status": "processed"}
    ]}))
    .await;
    assert_eq!(answer["verdicts"][0]["outcome"], "recorded", "{answer}");
    assert_eq!(answer["verdicts"][1]["outcome"], "unknown", "{answer}");
    // The same verdict again changes nothing.
    let again = verdict(&central, json!({"verdicts": [
        {"id": sale, "status": "rejected", "code": "E42", "message": "NCM inválido para o produto 1"}
    ]}))
    .await;
    assert_eq!(again["verdicts"][0]["outcome"], "unchanged");

    // The store learns it at its next upload run (a new document wakes it).
    assert_eq!(
        store
            .pos_post("/v1/sales", &sale_body(Uuid::new_v4(), 2))
            .await
            .unwrap()
            .status,
        201
    );
    wait_for(
        "the sale parked with the ERP's message",
        Duration::from_secs(20),
        || async {
            let (status, error) = outbox_state(&store, sale);
            Ok(
                (status == "failed" && error.as_deref().is_some_and(|e| e.contains("E42")))
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)));
    let status = store.status_json().unwrap();
    let parked = status["parked_documents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown = parked
        .iter()
        .find(|p| p["id"] == json!(sale))
        .expect("lojad status shows it");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap_or("")
            .contains("NCM inválido"),
        "{shown}"
    );

    // Reprocess its upload ticket: the central offers it to the ERP again.
    let ticket = shown["ticket"].as_i64().expect("the upload ticket");
    let out = store
        .command(&["tickets", "reprocess", &ticket.to_string()])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        store
            .pos_post("/v1/sales", &sale_body(Uuid::new_v4(), 3))
            .await
            .unwrap()
            .status,
        201
    );
    let offered = wait_for(
        "the sale in the ERP's queue again",
        Duration::from_secs(20),
        || async {
            let (docs, next) = erp_take(&central, taken).await;
            Ok(docs
                .iter()
                .any(|d| d["document"]["id"] == json!(sale))
                .then_some(next))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)));
    assert!(offered > taken);
    // Fixed at the ERP: processed. The store records the verdict.
    verdict(
        &central,
        json!({"verdicts": [{"id": sale, "status": "processed"}]}),
    )
    .await;
    assert_eq!(
        store
            .pos_post("/v1/sales", &sale_body(Uuid::new_v4(), 4))
            .await
            .unwrap()
            .status,
        201
    );
    wait_for(
        "the processed verdict at the store",
        Duration::from_secs(20),
        || async {
            let conn = rusqlite::Connection::open_with_flags(
                store.data_dir().join("outbox.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let n: i64 = conn.query_row(
                "SELECT count(*) FROM verdicts WHERE id = ?1 AND status = 'processed'",
                [sale.to_string()],
                |r| r.get(0),
            )?;
            Ok((n == 1).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(outbox_state(&store, sale).0, "delivered");
}

/// The ERP's rejection shows in `lojad tickets list --failed` (a verdicts
/// ticket naming the document, code and message); a technician takes the
/// body with `lojad documents show --body-only`, fixes it and sends it with
/// `lojad documents replace`: a new id naming the refused one, which leaves
/// the failures. The ERP reads the link; the stock counts the correction,
/// never both (sold 1, corrected to 2: 10 → 8 at the POS and at the central).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_sale_is_corrected_under_a_new_id_that_names_it() {
    let (central, store) = started(&[json!({"product_code": "1", "qty": 10_000})]).await;
    let stock =
        || async { store.pos_get("/v1/products/1").await.unwrap().body["stock_qty"].clone() };
    assert_eq!(stock().await, json!(10_000));

    let session = Uuid::new_v4();
    let opened = json!({"id": session, "register": "PDV01", "operator": "001",
                        "opening_amount": 0, "opened_at": "2026-11-30T08:00:00Z"});
    assert_eq!(
        store
            .pos_post("/v1/cash/open", &opened)
            .await
            .unwrap()
            .status,
        201
    );
    let sale = Uuid::new_v4();
    let body = json!({"id": sale, "register": "PDV01", "session_id": session, "number": 1, "operator": "001",
                      "items": [{"product_code": "1", "qty": 1000, "unit_price": 500, "total": 500}],
                      "total": 500, "payments": [{"method": "CASH", "amount": 500}],
                      "sold_at": "2026-11-30T09:00:00Z"});
    assert_eq!(
        store.pos_post("/v1/sales", &body).await.unwrap().status,
        201
    );
    assert_eq!(stock().await, json!(9_000));
    wait_for(
        "the sale in the ERP's queue",
        Duration::from_secs(20),
        || async {
            let (docs, _) = erp_take(&central, 0).await;
            Ok(docs
                .iter()
                .any(|d| d["document"]["id"] == json!(sale))
                .then_some(()))
        },
    )
    .await
    .unwrap();
    verdict(&central, json!({"verdicts": [
        {"id": sale, "status": "rejected", "code": "E17", "message": "quantidade divergente do cupom"}
    ]}))
    .await;
    let upload = || async {
        let out = store.command(&["upload"]).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    wait_for(
        "the sale parked by the ERP",
        Duration::from_secs(20),
        || async {
            upload().await;
            Ok((outbox_state(&store, sale).0 == "failed").then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)));

    // `tickets list --failed` names it with the ERP's code and message.
    let out = store
        .command(&[
            "tickets", "list", "--failed", "--kind", "verdicts", "--json",
        ])
        .unwrap();
    let tickets: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = tickets.as_array().unwrap().iter().find(|t| {
        t["error"]
            .as_str()
            .is_some_and(|e| e.contains(&sale.to_string()) && e.contains("E17"))
    });
    assert!(shown.is_some(), "{tickets:#}");
    let text = store.command(&["tickets", "list", "--failed"]).unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("quantidade divergente do cupom"), "{text}");

    // The technician corrects it: 2 were sold, not 1.
    let out = store
        .command(&["documents", "show", &sale.to_string(), "--body-only"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut fixed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fixed["number"], json!(1));
    fixed["items"][0]["qty"] = json!(2000);
    fixed["items"][0]["total"] = json!(1000);
    fixed["total"] = json!(1000);
    fixed["payments"][0]["amount"] = json!(1000);
    let file = store.data_dir().join("fixed.json");
    std::fs::write(&file, fixed.to_string()).unwrap();
    let file = file.display().to_string();
    // A body that breaks a rule is refused naming the field, nothing kept.
    let mut broken = fixed.clone();
    broken["total"] = json!(999);
    let broken_file = store.data_dir().join("broken.json");
    std::fs::write(&broken_file, broken.to_string()).unwrap();
    let out = store
        .command(&[
            "documents",
            "replace",
            &sale.to_string(),
            "--body",
            &broken_file.display().to_string(),
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("total"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(outbox_state(&store, sale).0, "failed");
    let out = store
        .command(&[
            "--json",
            "documents",
            "replace",
            &sale.to_string(),
            "--body",
            &file,
        ])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replaced: Value = serde_json::from_slice(&out.stdout).unwrap();
    let correction = replaced["id"].as_str().unwrap().to_owned();
    // Out of the failures; the POS counts 2 sold, not 3.
    let status = store.status_json().unwrap();
    assert!(
        !status["parked_documents"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["id"] == json!(sale)),
        "{status:#}"
    );
    wait_for(
        "the POS counting the correction",
        Duration::from_secs(10),
        || async { Ok((stock().await == json!(8_000)).then_some(())) },
    )
    .await
    .unwrap();

    // Up it goes; the ERP reads which document it replaces, and the
    // central's own figure is 8 too.
    upload().await;
    let (docs, _) = erp_take(&central, 0).await;
    let up = docs
        .iter()
        .find(|d| d["document"]["id"] == json!(correction))
        .unwrap_or_else(|| panic!("the correction in the ERP's queue: {docs:#?}"));
    assert_eq!(up["document"]["replaces"], json!(sale));
    let seq = replaced["store_seq"].as_u64().unwrap();
    let central_qty = central
        .stock_reflecting(STORE, TOKEN, "1", seq)
        .await
        .unwrap();
    assert_eq!(central_qty, 8_000);
    wait_for(
        "the POS after the central's figure",
        Duration::from_secs(20),
        || async { Ok((stock().await == json!(8_000)).then_some(())) },
    )
    .await
    .unwrap();
}
