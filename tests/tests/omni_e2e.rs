//! End to end (issue 17): omni-channel orders between a real central, two
//! real lojad stores and an ERP reading the central's queue.
//!
//! - Pickup: an order assigned to store A is rejected by A with a reason,
//!   reassigned to B by the channel, accepted (B's POS holds its stock at
//!   once), a second click refused, picked, ready; two registers claim it
//!   (the second gets 409 naming the first); a sale at the holder redeems
//!   it; the central and the ERP queue see it concluded.
//! - Ship from store with changes: a quantity cut and a substitute, packed
//!   and shipped with its NF-e; the central takes the delivered goods from
//!   A's stock. The customer returns a line at store B, which never held
//!   the order: B asks the central, restocks its own shelf, the central
//!   counts the return and A cannot take the same unit back.
//! - A channel cancellation racing a pick: the store's pick, taken locally,
//!   is refused by the central with the line's real state and parked.
//! - kill -9 of lojad between an action's 201 and its upload: each action
//!   reaches the central once.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const A: (&str, &str) = ("loja-a", "token-loja-a");
const B: (&str, &str) = ("loja-b", "token-loja-b");
const WAIT: Duration = Duration::from_secs(30);

fn new_order(id: &str, store: &str, delivery: &str) -> Value {
    json!({"id": id, "number": format!("N{id}"), "channel": "site", "delivery": delivery,
           "paid": true, "payments": [{"method": "PIX", "amount": 1300}],
           "created_at": "2026-11-30T10:00:00Z", "store": store,
           "lines": [{"line_id": "1", "product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000},
                     {"line_id": "2", "product_code": "2", "qty": 1000, "unit_price": 300, "total": 300}]})
}

async fn admin(
    central: &Central,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let a = central.admin(method, path, body).await.unwrap();
    assert!(a.status < 300, "{path}: {} {}", a.status, a.body);
    a.body
}

/// The channel posts an order to the central.
async fn create(central: &Central, order: Value) {
    admin(
        central,
        reqwest::Method::POST,
        "/v1/admin/omni/orders",
        Some(order),
    )
    .await;
}

/// The central's order once `pred` holds for it.
async fn central_order(
    central: &Central,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, WAIT, || async {
        let a = central
            .admin(
                reqwest::Method::GET,
                &format!("/v1/admin/omni/orders/{id}"),
                None,
            )
            .await?;
        Ok(Some(a.body["order"].clone()).filter(|o| pred(o)))
    })
    .await
    .unwrap()
}

/// The store's order (its view) once `pred` holds for it.
async fn pos_order(store: &Store, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, WAIT, || async {
        let a = store.pos_get(&format!("/v1/omni-orders/{id}")).await?;
        Ok((a.status == 200 && pred(&a.body)).then_some(a.body))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)))
}

fn line_states(order: &Value) -> Vec<String> {
    order["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A store action through the POS API: (status, body).
async fn act(
    store: &Store,
    order: &str,
    action: &str,
    expects: &str,
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({"id": Uuid::new_v4(), "action": action, "expects": expects,
                          "register": "PDV01", "operator": "001", "at": loja_protocol::time::now_rfc3339()});
    if let (Value::Object(b), Value::Object(x)) = (&mut body, extra) {
        b.extend(x);
    }
    let a = store
        .pos_post(&format!("/v1/omni-orders/{order}/actions"), &body)
        .await
        .unwrap();
    (a.status, a.body)
}

async fn upload(store: &Store) {
    let out = store.command(&["upload"]).unwrap();
    if !out.status.success() {
        let log = store.command(&["log", "--failed"]).unwrap();
        panic!(
            "{}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&log.stdout),
            tail(&store.log(), 30)
        );
    }
}

async fn reserved(store: &Store, product: &str) -> i64 {
    let a = store
        .pos_get(&format!("/v1/products/{product}"))
        .await
        .unwrap();
    a.body["reserved_qty"].as_i64().unwrap_or(-1)
}

async fn two_stores() -> (Central, Store, Store) {
    let central = Central::builder()
        .catalog_with(20, 5, false, 1)
        .store(A.0, "master", A.1)
        .store(B.0, "master", B.1)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    for s in [A.0, B.0] {
        central
            .import_own(
                "stock",
                s,
                &[
                    json!({"product_code": "1", "qty": 10_000}),
                    json!({"product_code": "2", "qty": 10_000}),
                    json!({"product_code": "3", "qty": 10_000}),
                ],
            )
            .await
            .unwrap();
    }
    create(&central, new_order("p1", A.0, "pickup")).await;
    let a = Store::builder(central.url(), A.0, A.1)
        .start()
        .expect("lojad A starts");
    let b = Store::builder(central.url(), B.0, B.1)
        .start()
        .expect("lojad B starts");
    for s in [&a, &b] {
        s.wait_synced(&central, Duration::from_secs(60))
            .await
            .unwrap();
    }
    (central, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pickup_rejected_reassigned_claimed_and_redeemed() {
    let (central, a, b) = two_stores().await;
    let seen = pos_order(&a, "p1", "A sees order p1", |o| o["status"] == "open").await;
    assert_eq!(line_states(&seen), ["assigned", "assigned"]);
    // A rejects it: a reason is required.
    let (status, body) = act(&a, "p1", "reject", "assigned", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "reason_code");
    let (status, body) = act(
        &a,
        "p1",
        "reject",
        "assigned",
        json!({"reason_code": "SEM_ESTOQUE"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    upload(&a).await;
    central_order(&central, "p1", "the central sees the rejection", |o| {
        line_states(o) == ["rejected", "rejected"]
    })
    .await;
    // The channel gives it to B; A's row goes away.
    admin(
        &central,
        reqwest::Method::POST,
        "/v1/admin/omni/orders/p1/assign",
        Some(json!({"store": B.0})),
    )
    .await;
    pos_order(&b, "p1", "B sees order p1", |o| o["status"] == "open").await;
    wait_for("A no longer has p1", WAIT, || async {
        Ok((a.pos_get("/v1/omni-orders/p1").await?.status == 404).then_some(()))
    })
    .await
    .unwrap();

    // B accepts: at once for every register, and the stock is held.
    assert_eq!(reserved(&b, "1").await, 0);
    let (status, body) = act(&b, "p1", "accept", "assigned", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let now = b.pos_get("/v1/omni-orders/p1").await.unwrap().body;
    assert_eq!(now["status"], "accepted", "{now}");
    assert_eq!(reserved(&b, "1").await, 2000);
    // A second click (another id) moves nothing: refused naming the state.
    let (status, body) = act(&b, "p1", "accept", "assigned", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "expects", "{body}");
    // A retry of the same click is the same document.
    let click = json!({"id": Uuid::new_v4(), "action": "start_picking", "expects": "accepted",
                       "register": "PDV01", "operator": "001", "at": "2026-11-30T11:00:00Z"});
    let first = b
        .pos_post("/v1/omni-orders/p1/actions", &click)
        .await
        .unwrap();
    let again = b
        .pos_post("/v1/omni-orders/p1/actions", &click)
        .await
        .unwrap();
    assert_eq!((first.status, again.status), (201, 200), "{}", again.body);
    assert_eq!(act(&b, "p1", "pick", "picking", json!({})).await.0, 201);
    assert_eq!(act(&b, "p1", "ready", "picked", json!({})).await.0, 201);
    let ready = b.pos_get("/v1/omni-orders/by-number/Np1").await.unwrap();
    assert_eq!(ready.body["status"], "ready_for_pickup", "{}", ready.body);

    // Two registers, each with its cash session; the first claim holds.
    let mut sessions = Vec::new();
    for register in ["PDV01", "PDV02"] {
        let id = Uuid::new_v4();
        let open = json!({"id": id, "register": register, "operator": "001",
                          "opening_amount": 0, "opened_at": "2026-11-30T08:00:00Z"});
        assert_eq!(
            b.pos_post("/v1/cash/open", &open).await.unwrap().status,
            201
        );
        sessions.push(id);
    }
    let claim = |register: &str, session: Uuid| {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("{}/v1/omni-orders/p1/claim", b.pos_url().unwrap());
        let body = json!({"register": register, "session_id": session});
        async move {
            let r = client
                .put(url)
                .bearer_auth(loja_e2e::store::POS_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s1, c1) = claim("PDV01", sessions[0]).await;
    assert_eq!(s1, 200, "{c1}");
    let (s2, c2) = claim("PDV02", sessions[1]).await;
    assert_eq!(s2, 409, "{c2}");
    assert!(
        c2["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("PDV01"),
        "{c2}"
    );
    let sale = |register: &str, session: Uuid| {
        json!({"id": Uuid::new_v4(), "register": register, "session_id": session, "number": 1,
               "operator": "001", "order_id": "p1", "channel": "omni",
               "items": [{"product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000},
                         {"product_code": "2", "qty": 1000, "unit_price": 300, "total": 300}],
               "total": 1300, "payments": [{"method": "PIX", "amount": 1300}],
               "sold_at": "2026-11-30T12:00:00Z"})
    };
    let other = b
        .pos_post("/v1/sales", &sale("PDV02", sessions[1]))
        .await
        .unwrap();
    assert_eq!(other.status, 422, "{}", other.body);
    assert!(
        other.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("claimed by register PDV01")
    );
    let redeemed = b
        .pos_post("/v1/sales", &sale("PDV01", sessions[0]))
        .await
        .unwrap();
    assert_eq!(redeemed.status, 201, "{}", redeemed.body);
    let sale_id = redeemed.body["id"].clone();
    let done = b.pos_get("/v1/omni-orders/p1").await.unwrap().body;
    assert_eq!(done["status"], "concluded", "{done}");
    assert_eq!(reserved(&b, "1").await, 0, "the sale took the held stock");

    // Up to the central and the ERP: concluded, the sale naming the order.
    upload(&b).await;
    let o = central_order(&central, "p1", "the central sees p1 concluded", |o| {
        o["status"] == "concluded"
    })
    .await;
    assert_eq!(line_states(&o), ["handed_over", "handed_over"]);
    let queue = central.documents(0, 1000).await.unwrap();
    let entry = queue["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"]["id"] == sale_id)
        .unwrap_or_else(|| panic!("the sale in the ERP queue: {queue:#}"));
    assert_eq!(entry["outcome"]["applied"], true, "{entry}");
    assert_eq!(entry["outcome"]["order"]["status"], "concluded", "{entry}");
    // The actions are in the ERP queue too, each with its outcome.
    let actions = queue["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["document"]["kind"] == "omni_action")
        .count();
    assert_eq!(
        actions, 5,
        "reject, accept, start_picking, pick, ready: {queue:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_from_store_with_changes_a_return_elsewhere_and_a_cancellation_racing_a_pick() {
    let (central, a, b) = two_stores().await;
    create(&central, new_order("s1", A.0, "ship_from_store")).await;
    create(&central, new_order("c1", A.0, "pickup")).await;
    pos_order(&a, "s1", "A sees s1", |_| true).await;
    pos_order(&a, "c1", "A sees c1", |_| true).await;

    // Ship from store: 1 of the 2 ordered, a substitute for line 2.
    assert_eq!(act(&a, "s1", "accept", "assigned", json!({})).await.0, 201);
    let (status, body) = act(
        &a,
        "s1",
        "pick",
        "accepted",
        json!({"lines": [
        {"line_id": "1", "qty": 1000},
        {"line_id": "2", "substitute": {"product_code": "3", "qty": 1000, "unit_price": 300}}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = act(&a, "s1", "ready", "picked", json!({})).await;
    assert_eq!(status, 422, "a shipped order is not picked up: {body}");
    assert_eq!(act(&a, "s1", "pack", "picked", json!({})).await.0, 201);
    let (status, body) = act(&a, "s1", "ship", "packed", json!({})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("invoice")),
        "{body}"
    );
    let invoice =
        json!({"invoice": {"number": 123, "series": 1, "key": "3".repeat(44), "value": 800}});
    assert_eq!(act(&a, "s1", "ship", "packed", invoice).await.0, 201);
    upload(&a).await;
    let o = central_order(&central, "s1", "the central sees s1 shipped", |o| {
        o["status"] == "concluded"
    })
    .await;
    assert_eq!(line_states(&o), ["shipped", "shipped"]);
    assert_eq!(o["lines"][0]["delivered_qty"], 1000);
    assert_eq!(o["lines"][1]["substitute"]["product_code"], "3");
    assert_eq!(o["lines"][0]["invoice"]["number"], 123);
    // The central took what left: 1 of product 1 and 1 of the substitute 3.
    let (items, _) = central.feed_all(A.0, A.1, "stock", 0, 1000).await.unwrap();
    let qty = |code: &str| {
        items
            .iter()
            .rev()
            .find(|i| i.row.get("product_code") == Some(&json!(code)))
            .and_then(|i| i.row.get("qty").and_then(Value::as_i64))
    };
    assert_eq!(
        (qty("1"), qty("2"), qty("3")),
        (Some(9_000), Some(10_000), Some(9_000))
    );

    // The customer brings line 1 back to store B, which never saw the order.
    let r = b
        .pos_get("/v1/omni-orders/by-number/Ns1/returnable")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["source"], "central");
    assert_eq!(r.body["lines"][0]["returnable_qty"], 1000, "{}", r.body);
    assert_eq!(r.body["lines"][1]["product_code"], "3", "the substitute");
    let give_back = |qty: i64| {
        json!({"id": Uuid::new_v4(), "register": "PDV01", "reason_code": "03", "operator": "001",
               "items": [{"line_id": "1", "product_code": "1", "qty": qty, "refund": qty / 2, "restock": true}],
               "returned_at": loja_protocol::time::now_rfc3339()})
    };
    let before = b.pos_get("/v1/products/1").await.unwrap().body["stock_qty"].clone();
    let ret = b
        .pos_post("/v1/omni-orders/s1/returns", &give_back(1000))
        .await
        .unwrap();
    assert_eq!(ret.status, 201, "{}", ret.body);
    let after = b.pos_get("/v1/products/1").await.unwrap().body["stock_qty"].clone();
    assert_eq!(
        after.as_i64(),
        before.as_i64().map(|q| q + 1000),
        "back on B's shelf at once"
    );
    let again = b
        .pos_post("/v1/omni-orders/s1/returns", &give_back(1))
        .await
        .unwrap();
    assert_eq!(again.status, 422, "{}", again.body);
    assert_eq!(again.body["error"]["field"], "items[0].qty");
    upload(&b).await;
    let o = central_order(&central, "s1", "the central counts B's return", |o| {
        o["lines"][0]["returns"][0]["store"] == B.0
    })
    .await;
    assert_eq!(o["lines"][0]["returns"][0]["qty"], 1000);
    // A, which shipped it, cannot take the same unit back again.
    let twice = a
        .pos_post("/v1/omni-orders/s1/returns", &give_back(1000))
        .await
        .unwrap();
    assert_eq!(twice.status, 422, "{}", twice.body);
    assert!(
        twice.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("0 are left")),
        "{}",
        twice.body
    );
    // The ERP queue says what the central did with it.
    let queue = admin(
        &central,
        reqwest::Method::GET,
        "/v1/admin/documents?after=0&limit=1000",
        None,
    )
    .await;
    let entry = queue["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["document"]["id"] == ret.body["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["outcome"]["action"], "return", "{entry}");

    // A cancellation racing a pick: A accepts c1, the channel cancels line 1
    // before A hears of it, A picks: the central refuses the pick and A parks it.
    assert_eq!(act(&a, "c1", "accept", "assigned", json!({})).await.0, 201);
    upload(&a).await;
    central_order(&central, "c1", "the central sees c1 accepted", |o| {
        o["status"] == "accepted"
    })
    .await;
    // A does not hear of the cancellation before its pick: its omni download is off.
    let off = a.command(&["tasks", "disable", "OMN"]).unwrap();
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    admin(
        &central,
        reqwest::Method::POST,
        "/v1/admin/omni/orders/c1/cancel",
        Some(json!({"lines": ["1"], "reason": "CLIENTE_DESISTIU"})),
    )
    .await;
    let (status, body) = act(
        &a,
        "c1",
        "pick",
        "accepted",
        json!({"lines": [{"line_id": "1"}]}),
    )
    .await;
    assert_eq!(
        status, 201,
        "taken locally, the cancellation unheard of: {body}"
    );
    // The central refuses it with the line's real state.
    upload(&a).await;
    let pick = body["id"].as_str().unwrap().to_owned();
    wait_for("the refused pick parked at A", WAIT, || async {
        let s = a.status_json()?;
        Ok(s["parked_documents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == json!(pick))
            .map(|p| p["reason"].as_str().unwrap_or("").to_owned()))
    })
    .await
    .map(|reason| assert!(reason.contains("cancelled"), "{reason}"))
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&a.log(), 30)));
    let on = a.command(&["tasks", "enable", "OMN"]).unwrap();
    assert!(on.status.success());
    let sync = a.command(&["sync", "omni_orders"]).unwrap();
    assert!(
        sync.status.success(),
        "{}{}\nlog:\n{}",
        String::from_utf8_lossy(&sync.stdout),
        String::from_utf8_lossy(&sync.stderr),
        tail(&a.log(), 30)
    );
    let seen = pos_order(&a, "c1", "A sees line 1 cancelled", |o| {
        o["lines"][0]["state"] == "cancelled"
    })
    .await;
    assert_eq!(seen["lines"][1]["state"], "accepted", "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_acknowledged_before_a_kill_reach_the_central_once() {
    let central = Central::builder()
        .catalog_with(20, 5, false, 1)
        .store(A.0, "master", A.1)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    create(&central, new_order("k1", A.0, "pickup")).await;
    let mut a = Store::builder(central.url(), A.0, A.1)
        .build()
        .expect("config");
    let off = a.command(&["tasks", "disable", "UPL"]).unwrap();
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    a.restart().expect("lojad starts");
    a.wait_synced(&central, Duration::from_secs(60))
        .await
        .unwrap();
    pos_order(&a, "k1", "A sees k1", |_| true).await;
    for (action, expects) in [
        ("accept", "assigned"),
        ("start_picking", "accepted"),
        ("pick", "picking"),
    ] {
        let (status, body) = act(&a, "k1", action, expects, json!({})).await;
        assert_eq!(status, 201, "{action}: {body}");
        // Acknowledged, not uploaded: killed at once, then back.
        a.kill();
        a.restart().expect("lojad restarts");
        let now = a.pos_get("/v1/omni-orders/k1").await.unwrap().body;
        assert!(
            line_states(&now).iter().all(|s| s != expects),
            "{action} survived the kill: {now}"
        );
    }
    let on = a.command(&["tasks", "enable", "UPL"]).unwrap();
    assert!(on.status.success());
    upload(&a).await;
    let o = central_order(&central, "k1", "the central sees k1 picked", |o| {
        line_states(o) == ["picked", "picked"]
    })
    .await;
    assert_eq!(o["status"], "in_separation");
    let queue = central.documents(0, 1000).await.unwrap();
    let actions = queue["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["document"]["kind"] == "omni_action")
        .count();
    assert_eq!(actions, 3, "each action once: {queue:#}");
}
