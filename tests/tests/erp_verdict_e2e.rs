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
    let central = Central::builder()
        .catalog_with(20, 5, false, 1)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .start()
        .expect("lojad starts");
    store
        .wait_synced(&central, Duration::from_secs(60))
        .await
        .unwrap();

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
