//! End to end on PostgreSQL (issue 19): a real PostgreSQL server started by
//! the test (no Docker: Debian's binaries, initdb into a scratch directory,
//! a Unix socket), two `retaguarda-server` instances on the same database,
//! and two real lojad, each talking to its own instance.
//!
//! - Push across instances: store A's events long-poll is held by instance
//!   1; a price imported through instance 2 reaches A's POS well before the
//!   long-poll's 25 s round would have found it (the LISTEN/NOTIFY hint).
//! - kill -9 of instance 2 while store B uploads sales, then a restart: every
//!   sale is at the central once.
//! - PostgreSQL stopped (`-m immediate`, like a crash) and started again while
//!   store A uploads: every sale is at the central once, and push works
//!   again (the instances' LISTEN reconnects).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::postgres::{PgServer, skip_without_postgres};
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const A: (&str, &str) = ("loja-a", "token-loja-a-e2e");
const B: (&str, &str) = ("loja-b", "token-loja-b-e2e");

fn cash_open(id: Uuid, register: &str) -> Value {
    json!({"id": id, "register": register, "operator": "001", "opening_amount": 10_000,
           "opened_at": "2026-11-30T12:00:00Z"})
}

fn sale(id: Uuid, session: Uuid, register: &str, number: i64) -> Value {
    let price = 100 + number % 900;
    json!({
        "id": id, "register": register, "session_id": session, "number": number, "operator": "001",
        "items": [{"product_code": "1", "qty": 1000, "unit_price": price, "total": price}],
        "total": price,
        "payments": [{"method": "CASH", "amount": price}],
        "sold_at": "2026-11-30T12:00:00Z"
    })
}

/// Posts a cash open and `n` sales at the store's POS (each acknowledged
/// once on disk); their ids.
async fn sell(store: &Store, register: &str, n: i64, pause: Duration) -> Vec<String> {
    let session = Uuid::new_v4();
    let a = store
        .pos_post("/v1/cash/open", &cash_open(session, register))
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let mut ids = vec![session.to_string()];
    for number in 1..=n {
        let id = Uuid::new_v4();
        let a = store
            .pos_post("/v1/sales", &sale(id, session, register, number))
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        ids.push(id.to_string());
        tokio::time::sleep(pause).await;
    }
    ids
}

/// How many times each document id of `store` is at the central.
async fn at_central(central: &Central, store: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut after = 0u64;
    for _ in 0..1000 {
        let page = central.documents(after, 10_000).await.unwrap();
        for d in page["documents"].as_array().cloned().unwrap_or_default() {
            if d["document"]["store"] == store || d["store"] == store {
                let id = d["document"]["id"].as_str().unwrap_or_default().to_owned();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        after = page["next"].as_u64().unwrap_or(after);
        if page["more"] != json!(true) {
            break;
        }
    }
    out
}

/// Waits until every id is at the central, then checks each is there once.
async fn all_once(central: &Central, store: &Store, ids: &[String]) {
    let id = store.store_id().to_owned();
    wait_for(
        &format!("{} documents of {id} at the central", ids.len()),
        Duration::from_secs(90),
        || async {
            let held = at_central(central, &id).await;
            Ok(ids.iter().all(|i| held.contains_key(i)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nstore log:\n{}", tail(&store.log(), 40)));
    let held = at_central(central, &id).await;
    let twice: Vec<_> = held.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "documents at the central twice: {twice:?}"
    );
    assert_eq!(held.len(), ids.len(), "documents the store never sent");
}

/// Imports a new price for product 1 through `via` and waits (bounded)
/// until `store`'s POS answers it; how long that took.
async fn push_price(via: &Central, store: &Store, price: i64) -> Duration {
    let row = json!({"product_code": "1", "price_list": "base", "price": price});
    let t0 = Instant::now();
    via.import_rows("prices", &[row]).await.unwrap();
    wait_for(
        "the new price at the POS",
        Duration::from_secs(40),
        || async {
            let a = store.pos_get("/v1/products/1").await?;
            Ok((a.status == 200 && a.body["price"]["price"] == json!(price)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 40)));
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_push_across_and_survive_kills() {
    if skip_without_postgres() {
        return;
    }
    let mut pg = PgServer::start().expect("PostgreSQL starts");
    let url = pg.create_database("central").unwrap();
    let one = Central::builder()
        .database(&url)
        .catalog(300, 20)
        .store(A.0, "master", A.1)
        .store(B.0, "master", B.1)
        .start()
        .unwrap_or_else(|e| panic!("instance 1: {e}\npostgres log:\n{}", pg.log()));
    let mut two = Central::builder()
        .database(&url)
        .start()
        .expect("instance 2 on the same database");
    one.release_everything().await.unwrap();

    let store_a = Store::builder(one.url(), A.0, A.1)
        .page_size(500)
        .start()
        .unwrap();
    let store_b = Store::builder(two.url(), B.0, B.1)
        .page_size(500)
        .start()
        .unwrap();
    for s in [&store_a, &store_b] {
        s.wait_synced(&one, Duration::from_secs(120)).await.unwrap();
        wait_for("push listening", Duration::from_secs(30), || async {
            Ok(s.log()
                .contains("push: listening to the central's events")
                .then_some(()))
        })
        .await
        .unwrap();
    }

    // Push across instances, both ways. Without the hint the store would
    // find the change at its next long-poll round (up to 25 s) or its
    // schedule; the bound is well under that.
    for (i, (via, store)) in [(&two, &store_a), (&one, &store_b)].into_iter().enumerate() {
        let took = push_price(via, store, 5_000 + i as i64).await;
        eprintln!("push across instances to {}: {took:?}", store.store_id());
        assert!(
            took < Duration::from_secs(10),
            "a price imported on the other instance took {took:?} to reach {}",
            store.store_id()
        );
    }

    // kill -9 of instance 2 while store B uploads through it.
    let selling = {
        let b = &store_b;
        async move { sell(b, "PDV01", 30, Duration::from_millis(100)).await }
    };
    let killing = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        two.kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        two.restart().expect("instance 2 restarts on its port");
    };
    let (ids_b, ()) = tokio::join!(selling, killing);
    all_once(&one, &store_b, &ids_b).await;

    // PostgreSQL crashes and comes back while store A uploads.
    let selling = {
        let a = &store_a;
        async move { sell(a, "PDV01", 30, Duration::from_millis(100)).await }
    };
    let crashing = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        pg.crash().expect("PostgreSQL stops");
        tokio::time::sleep(Duration::from_secs(2)).await;
        pg.up().expect("PostgreSQL starts again");
    };
    let (ids_a, ()) = tokio::join!(selling, crashing);
    all_once(&two, &store_a, &ids_a).await;

    // After the restart, push across instances still works (LISTEN came back).
    let took = push_price(&two, &store_a, 7_000).await;
    assert!(
        took < Duration::from_secs(10),
        "push after PostgreSQL's restart took {took:?}\ninstance 1 log:\n{}",
        tail(&one.log(), 30)
    );
}
