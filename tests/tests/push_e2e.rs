//! End-to-end: push survives an events answer whose sequence is beyond the
//! central's head (issue 12, defect 3). The store talks to a real central
//! through a tampering proxy that rewrites one events answer; a price
//! imported at the central afterwards must still reach the POS in ≤ 5 s.
//!
//! Two incidents: (1) `seq` alone far beyond the head (a flipped digit: the
//! store must not take it); (2) `seq` and `head` both beyond (an answer the
//! store cannot tell from a true one, or a central restored from a backup:
//! the store must notice on its next poll that it is ahead, and recover).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::proxy::{Proxy, edit_json};
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Map, Value, json};

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
const BOGUS: u64 = 10_000_000;

const TAMPER_NONE: u8 = 0;
const TAMPER_SEQ: u8 = 1;
const TAMPER_SEQ_AND_HEAD: u8 = 2;

/// Imports a new price for the row and waits (bounded) until the POS
/// answers it; returns how long that took.
async fn push_price(
    central: &Central,
    store: &Store,
    row: &Map<String, Value>,
    price: i64,
) -> Duration {
    let code = row["product_code"].as_str().unwrap().to_owned();
    let mut changed = row.clone();
    changed.insert("price".into(), json!(price));
    changed.remove("promo_price");
    changed.remove("promo_until");
    let t0 = Instant::now();
    central
        .import_rows("prices", &[Value::Object(changed)])
        .await
        .unwrap();
    wait_for("the new price at the POS", Duration::from_secs(20), || {
        let code = code.clone();
        async move {
            let a = store.pos_get(&format!("/v1/products/{code}")).await?;
            Ok((a.status == 200 && a.body["price"]["price"] == json!(price)).then_some(()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 40)));
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_seq_beyond_the_head_does_not_stop_push() {
    let central = Central::builder()
        .catalog(300, 20)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();

    let mode = Arc::new(AtomicU8::new(TAMPER_NONE));
    let tampered = Arc::new(AtomicU64::new(0));
    let proxy = {
        let mode = mode.clone();
        let tampered = tampered.clone();
        Proxy::start(central.url(), move |path, headers, body| {
            // Only an answer that names entities: the one a change wakes.
            if !path.contains("/events") {
                return;
            }
            let m = mode.load(Ordering::SeqCst);
            if m == TAMPER_NONE {
                return;
            }
            let mut done = false;
            let edited = edit_json(headers, body, |v| {
                let named = v["entities"].as_array().is_some_and(|e| !e.is_empty());
                let Some(seq) = v["seq"].as_u64().filter(|_| named) else {
                    return;
                };
                v["seq"] = json!(seq + BOGUS);
                if m == TAMPER_SEQ_AND_HEAD {
                    v["head"] = json!(seq + BOGUS);
                }
                done = true;
            });
            if edited.is_ok() && done {
                mode.store(TAMPER_NONE, Ordering::SeqCst);
                tampered.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap()
    };

    let store = Store::builder(&proxy.url(), STORE, TOKEN)
        .page_size(500)
        .start()
        .unwrap();
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .unwrap();
    wait_for("push listening", Duration::from_secs(30), || async {
        Ok(store
            .log()
            .contains("push: listening to the central's events")
            .then_some(()))
    })
    .await
    .unwrap();

    let prices = store.replica_rows("prices").unwrap();
    let row = prices
        .values()
        .find(|r| r["price_list"] == "base")
        .expect("a base price")
        .clone();
    let base = row["price"].as_i64().unwrap();

    // In step first: the push path works through the proxy.
    let took = push_price(&central, &store, &row, base + 1).await;
    assert!(
        took < Duration::from_secs(5),
        "push before tampering took {took:?}"
    );

    for (round, m) in [(1, TAMPER_SEQ), (2, TAMPER_SEQ_AND_HEAD)] {
        // The change that the tampered answer reports still arrives (its
        // entity is woken); what matters is the one after it.
        mode.store(m, Ordering::SeqCst);
        push_price(&central, &store, &row, base + 10 * round).await;
        assert_eq!(
            tampered.load(Ordering::SeqCst),
            round as u64,
            "round {round}: the proxy rewrote no events answer"
        );
        let took = push_price(&central, &store, &row, base + 10 * round + 1).await;
        assert!(
            took <= Duration::from_secs(5),
            "round {round}: the price after the tampered answer took {took:?}\nlog:\n{}",
            tail(&store.log(), 40)
        );
    }

    // One warning per incident, naming what happened.
    let warnings = store
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("ahead of its head"))
        .count();
    assert_eq!(
        warnings,
        2,
        "one warning per incident\nlog:\n{}",
        tail(&store.log(), 40)
    );
    store
        .wait_synced(&central, Duration::from_secs(30))
        .await
        .unwrap();
}
