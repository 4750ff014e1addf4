//! End-to-end: store documents reach the central exactly once, in order per
//! cash register, across a central outage and across SIGKILLs of lojad at
//! random points; a document the central rejects is parked and does not
//! block the ones behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";

fn central() -> Central {
    Central::builder()
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts")
}

fn cash_open(id: Uuid, register: &str) -> Value {
    json!({"id": id, "register": register, "operator": "001", "opening_amount": 10_000,
           "opened_at": "2026-11-26T12:00:00Z"})
}

fn sale(id: Uuid, session: Uuid, register: &str, number: i64) -> Value {
    let price = 100 + number % 900;
    json!({
        "id": id, "register": register, "session_id": session, "number": number, "operator": "001",
        "items": [{"product_code": "1", "qty": 2000, "unit_price": price, "total": 2 * price}],
        "total": 2 * price,
        "payments": [{"method": "CASH", "amount": 2 * price}],
        "sold_at": "2026-11-26T12:00:00Z"
    })
}

/// Every document the central holds for the ERP, in its order.
async fn central_documents(central: &Central) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page = central.documents(after, 10_000).await.unwrap();
        let docs = page["documents"].as_array().cloned().unwrap_or_default();
        out.extend(docs);
        after = page["next"].as_u64().unwrap_or(after);
        if page["more"] != json!(true) {
            return out;
        }
    }
}

/// Exactly once, and in store_seq order per register.
fn check_once_in_order(docs: &[Value]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    for d in docs {
        let doc = &d["document"];
        let id = doc["id"].as_str().unwrap().to_owned();
        assert!(
            ids.insert(id.clone()),
            "document {id} is at the central twice"
        );
        let reg = doc["register"].as_str().unwrap().to_owned();
        let seq = doc["store_seq"].as_u64().unwrap();
        if let Some(prev) = last_seq.insert(reg.clone(), seq) {
            assert!(
                seq > prev,
                "register {reg}: store_seq {seq} arrived after {prev}"
            );
        }
    }
    ids
}

async fn open_cash(store: &Store, register: &str) -> Uuid {
    let session = Uuid::new_v4();
    let a = store
        .pos_post("/v1/cash/open", &cash_open(session, register))
        .await
        .unwrap();
    assert!(
        a.status == 201 || a.status == 200,
        "cash open: {} {:?}",
        a.status,
        a.body
    );
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sales_with_the_central_down_are_delivered_once_in_order() {
    let mut central = central();
    let store = Store::builder(central.url(), STORE, TOKEN)
        .timeout_secs(3)
        .upload_batch(200)
        .start()
        .unwrap();
    let registers = ["PDV01", "PDV02"];
    let mut sessions = Vec::new();
    for r in registers {
        sessions.push(open_cash(&store, r).await);
    }
    central.kill();

    let mut accepted = BTreeSet::new();
    for i in 0..1_000i64 {
        let r = (i % 2) as usize;
        let id = Uuid::new_v4();
        let a = store
            .pos_post("/v1/sales", &sale(id, sessions[r], registers[r], i + 1))
            .await
            .unwrap();
        assert_eq!(a.status, 201, "sale {i}: {:?}", a.body);
        accepted.insert(id.to_string());
    }
    let counts = store.outbox_counts().unwrap();
    assert!(
        counts.get("pending").copied().unwrap_or(0) >= 1_000,
        "{counts:?}"
    );

    central.restart().unwrap();
    let docs = wait_for(
        "all documents at the central",
        Duration::from_secs(120),
        || async {
            let docs = central_documents(&central).await;
            Ok((docs.len() >= 1_002).then_some(docs))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 40)));
    let ids = check_once_in_order(&docs);
    assert_eq!(ids.len(), 1_002);
    assert!(accepted.is_subset(&ids));
    wait_for("the outbox settled", Duration::from_secs(30), || async {
        let c = store.outbox_counts()?;
        Ok((c.get("pending").copied().unwrap_or(0) == 0
            && c.get("delivered").copied() == Some(1_002))
        .then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_doubles_nothing() {
    let rounds: usize = std::env::var("LOJA_E2E_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let central = central();
    let mut store = Store::builder(central.url(), STORE, TOKEN)
        .upload_batch(50)
        .push(false)
        .start()
        .unwrap();
    let session = open_cash(&store, "PDV01").await;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut number = 1i64;
    for round in 0..rounds {
        if round > 0 {
            store
                .start()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        // Sales go in from 4 concurrent POS clients; lojad is killed after a
        // random 20–250 ms, in the middle of intake and upload.
        let kill_after = Duration::from_millis(20 + fastrand_u64(230));
        let url = store.pos_url().unwrap();
        let deadline = tokio::time::Instant::now() + kill_after;
        let mut tasks = Vec::new();
        for w in 0..4 {
            let url = url.clone();
            let base = number + w * 10_000;
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut mine = Vec::new();
                let mut n = base;
                while tokio::time::Instant::now() < deadline + Duration::from_millis(200) {
                    let id = Uuid::new_v4();
                    let r = client
                        .post(format!("{url}/v1/sales"))
                        .bearer_auth(loja_e2e::store::POS_TOKEN)
                        .json(&sale(id, session, "PDV01", n))
                        .send()
                        .await;
                    n += 1;
                    match r {
                        Ok(resp)
                            if resp.status().as_u16() == 201 || resp.status().as_u16() == 200 =>
                        {
                            mine.push(id.to_string())
                        }
                        Ok(resp) => {
                            let status = resp.status();
                            let body = resp.text().await.unwrap_or_default();
                            panic!("unexpected answer {status}: {body}")
                        }
                        Err(_) => break, // lojad is gone: this one was never acknowledged
                    }
                }
                mine
            }));
        }
        tokio::time::sleep_until(deadline).await;
        store.kill();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
        number += 40_000;
    }
    store.start().unwrap();
    let docs = wait_for(
        "every acknowledged document at the central",
        Duration::from_secs(180),
        || async {
            let c = store.outbox_counts()?;
            if c.get("pending").copied().unwrap_or(0) > 0 {
                return Ok(None);
            }
            Ok(Some(central_documents(&central).await))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 40)));
    let ids = check_once_in_order(&docs);
    let lost: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged documents lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert!(
        acked.len() > rounds,
        "too few sales got in: {}",
        acked.len()
    );
    let counts = store.outbox_counts().unwrap();
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0, "{counts:?}");
    eprintln!(
        "{rounds} rounds, {} sales acknowledged, {} documents at the central",
        acked.len(),
        ids.len()
    );
}

fn fastrand_u64(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos / 7919) % n.max(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_document_is_parked_and_does_not_block_the_rest() {
    let mut central = central();
    let mut store = Store::builder(central.url(), STORE, TOKEN)
        .timeout_secs(3)
        .start()
        .unwrap();
    let session = open_cash(&store, "PDV01").await;
    wait_for(
        "the cash open delivered",
        Duration::from_secs(30),
        || async {
            Ok((store.outbox_counts()?.get("delivered").copied() == Some(1)).then_some(()))
        },
    )
    .await
    .unwrap();
    central.kill();
    let mut ids = Vec::new();
    for n in 1..=20 {
        let id = Uuid::new_v4();
        let a = store
            .pos_post("/v1/sales", &sale(id, session, "PDV01", n))
            .await
            .unwrap();
        assert_eq!(a.status, 201);
        ids.push(id.to_string());
    }
    store.kill();
    // The 5th sale is damaged in the outbox, as the central's rules would
    // refuse it (a bad accepted_at): the central rejects it for good.
    {
        let conn = rusqlite::Connection::open(store.data_dir().join("outbox.db")).unwrap();
        let n = conn
            .execute(
                "UPDATE documents SET accepted_at = 'yesterday' WHERE id = ?1",
                [&ids[4]],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    central.restart().unwrap();
    store.start().unwrap();
    wait_for("the rest delivered", Duration::from_secs(60), || async {
        let c = store.outbox_counts()?;
        Ok(
            (c.get("delivered").copied() == Some(20) && c.get("failed").copied() == Some(1))
                .then_some(c),
        )
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.log(), 40)));
    let docs = central_documents(&central).await;
    let at_central = check_once_in_order(&docs);
    assert!(!at_central.contains(&ids[4]));
    for (i, id) in ids.iter().enumerate() {
        if i != 4 {
            assert!(at_central.contains(id), "sale {i} missing");
        }
    }
    let conn = rusqlite::Connection::open(store.data_dir().join("outbox.db")).unwrap();
    let reason: String = conn
        .query_row(
            "SELECT last_error FROM documents WHERE id = ?1",
            [&ids[4]],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("accepted_at"), "{reason}");
}
