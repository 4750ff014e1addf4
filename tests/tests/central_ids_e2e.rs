//! End-to-end: a document id is taken at the central by the first document
//! delivered under it. Another store's different document under the same
//! UUID is refused (not acknowledged `duplicate` and dropped): that store
//! parks it and shows the central's reason, and the first document stands
//! alone in the ERP's queue. The same document again from the same store (a
//! rebuilt outbox resending it under another `store_seq`) is a duplicate.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

fn cash_open(id: Uuid, register: &str, operator: &str, amount: i64) -> Value {
    json!({"id": id, "register": register, "operator": operator, "opening_amount": amount,
           "opened_at": "2026-11-26T12:00:00Z"})
}

async fn post(store: &Store, body: &Value) {
    let a = store.pos_post("/v1/cash/open", body).await.unwrap();
    assert!(
        a.status == 201 || a.status == 200,
        "cash open: {} {:?}",
        a.status,
        a.body
    );
}

/// Waits until the store's outbox holds exactly `want` (status → count).
async fn wait_outbox(store: &Store, want: &[(&str, u64)], what: &str) {
    wait_for(what, WAIT, || async {
        let c = store.outbox_counts()?;
        let all = want.iter().map(|(_, n)| n).sum::<u64>() == c.values().sum::<u64>();
        Ok((all && want.iter().all(|(s, n)| c.get(*s).copied() == Some(*n))).then_some(c))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 40)));
}

/// The ERP queue, whole: (store, document).
async fn erp_queue(central: &Central) -> Vec<(String, Value)> {
    let page = central.documents(0, 10_000).await.unwrap();
    assert_eq!(page["more"], json!(false));
    page["documents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let store = d["store"].as_str().unwrap_or_default().to_owned();
            (store, d["document"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_document_under_a_taken_id_is_parked_with_the_reason() {
    let central = Central::builder()
        .store("loja1", "master", "token-loja1")
        .store("loja2", "master", "token-loja2")
        .start()
        .expect("central starts");
    let id = Uuid::new_v4();

    // loja1's cash open takes the id at the central.
    let mut first = Store::builder(central.url(), "loja1", "token-loja1")
        .start()
        .unwrap();
    post(&first, &cash_open(id, "PDV01", "001", 10_000)).await;
    wait_outbox(&first, &[("delivered", 1)], "loja1's cash open delivered").await;
    first.stop(Duration::from_secs(10)).unwrap();

    // loja2's POS reuses the UUID for a different cash open.
    let second = Store::builder(central.url(), "loja2", "token-loja2")
        .start()
        .unwrap();
    post(&second, &cash_open(id, "PDV01", "002", 5_000)).await;
    wait_outbox(&second, &[("failed", 1)], "loja2's cash open parked").await;

    // The reason is the central's, in the outbox's failed list…
    let conn = rusqlite::Connection::open_with_flags(
        second.data_dir().join("outbox.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let reason: String = conn
        .query_row(
            "SELECT last_error FROM documents WHERE id = ?1 AND status = 'failed'",
            [id.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    let holder = format!("id {id} is taken by another document (store loja1, kind cash_open");
    assert!(reason.starts_with(&holder), "{reason}");
    assert!(reason.contains("a new document needs a new id"), "{reason}");
    // …in `lojad status` (the outbox's count and its parked documents)…
    let status = second.status_json().unwrap();
    assert_eq!(status["outbox"]["failed"], json!(1), "{status:#}");
    let parked = &status["parked_documents"][0];
    assert_eq!(parked["id"], json!(id.to_string()), "{status:#}");
    assert_eq!(parked["kind"], json!("cash_open"), "{status:#}");
    assert!(
        parked["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&holder),
        "{status:#}"
    );
    let text = second.command(&["status"]).unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("parked {id} cash_open PDV01 #1: {holder}")),
        "{text}"
    );
    // …in the upload run's line of the integration log (`lojad log`)…
    let runs = second.log_runs().unwrap();
    assert!(
        runs.iter().any(|(code, _, _, message)| code == "UPL"
            && message
                .as_deref()
                .is_some_and(|m| m.contains("1 parked as rejected")
                    && m.contains(&format!("(first: {id}: {holder}")))),
        "{runs:#?}"
    );
    // …and in the upload ticket's archived answer (`lojad tickets show`).
    let list = second
        .command(&["tickets", "list", "--kind", "upload", "--json"])
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let tickets: Value = serde_json::from_slice(&list.stdout).unwrap();
    let ticket = tickets
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no upload ticket: {tickets:#}"));
    let show = second
        .command(&["tickets", "show", &ticket.to_string()])
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("\"rejected\""), "{text}");
    assert!(text.contains(&holder), "{text}");

    // The first document stands alone in the ERP queue.
    let queue = erp_queue(&central).await;
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0].0, "loja1");
    assert_eq!(queue[0].1["id"], json!(id.to_string()));
    assert_eq!(queue[0].1["body"]["operator"], json!("001"));
    assert_eq!(queue[0].1["body"]["opening_amount"], json!(10_000));
    drop(second);

    // loja1 on a fresh outbox (its data dir lost) resends the same cash
    // open under another store_seq: the same document, a duplicate; the
    // queue still holds the first delivery once.
    let rebuilt = Store::builder(central.url(), "loja1", "token-loja1")
        .start()
        .unwrap();
    post(&rebuilt, &cash_open(Uuid::new_v4(), "PDV02", "001", 1_000)).await;
    post(&rebuilt, &cash_open(id, "PDV01", "001", 10_000)).await;
    wait_outbox(&rebuilt, &[("delivered", 2)], "the resend delivered").await;
    let resent_seq: i64 = rusqlite::Connection::open_with_flags(
        rebuilt.data_dir().join("outbox.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
    .query_row(
        "SELECT store_seq FROM documents WHERE id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )
    .unwrap();
    assert_eq!(resent_seq, 2, "the resend's envelope differs");
    let queue = erp_queue(&central).await;
    assert_eq!(queue.len(), 2, "{queue:#?}");
    assert_eq!(queue[0].1["id"], json!(id.to_string()), "{queue:#?}");
    assert_eq!(
        queue[0].1["store_seq"],
        json!(1),
        "the first delivery's envelope stays"
    );
    assert_ne!(queue[1].1["id"], json!(id.to_string()), "{queue:#?}");
}
