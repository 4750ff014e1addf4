//! End-to-end: the central's integration switch (the domain's
//! InterfaceIntegracao `Ativo`, the `parameters` row
//! `interface_integracao_ativo`), obeyed by a real lojad. Switched off for
//! the whole chain, the store stops uploading: a sale stays pending in its
//! outbox while the POS keeps answering, and `lojad status` says so.
//! Switched on again at the store's central (nearest level wins over the
//! chain's off), the store resumes by itself and delivers the sale. The
//! central has counted the store's requests and bytes and the outbox
//! backlog it reported. Every wait is bounded.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
const CENTRAL: &str = "sul";
const PARAMETER: &str = loja_protocol::registry::INTEGRATION_PARAMETER;
const WAIT: Duration = Duration::from_secs(30);

fn switch_line(node: &str, on: bool) -> Value {
    json!({"op": "upsert", "node": node,
           "row": {"name": PARAMETER, "value": if on { "true" } else { "false" }}})
}

/// The daemon's own view of the switch (`GET /v1/status`).
async fn daemon_says(store: &Store, on: bool) -> anyhow::Result<()> {
    wait_for(
        &format!(
            "the daemon to see integration {}",
            if on { "on" } else { "off" }
        ),
        WAIT,
        || async move {
            let a = store.pos_get("/v1/status").await?;
            Ok((a.status == 200 && a.body["integration_on"] == json!(on)).then_some(()))
        },
    )
    .await
}

async fn central_has(central: &Central, id: Uuid) -> anyhow::Result<bool> {
    let page = central.documents(0, 10_000).await?;
    Ok(page.to_string().contains(&id.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_the_store_keeps_its_sale_and_delivers_it_when_switched_on() {
    let central = Central::builder()
        .central(CENTRAL, "master")
        .store(STORE, CENTRAL, TOKEN)
        .catalog(20, 5)
        .start()
        .expect("central starts");
    let store = Store::builder(central.url(), STORE, TOKEN)
        .timeout_secs(3)
        .start()
        .expect("lojad starts");
    let result = run(&central, &store).await;
    if let Err(e) = &result {
        eprintln!(
            "{e:#}\nlojad log:\n{}\ncentral log:\n{}",
            tail(&store.log(), 60),
            tail(&central.log(), 30)
        );
    }
    result.unwrap();
}

async fn run(central: &Central, store: &Store) -> anyhow::Result<()> {
    daemon_says(store, true).await?;
    // A cash session delivered while integration is on.
    let session = Uuid::new_v4();
    let open = store
        .pos_post(
            "/v1/cash/open",
            &json!({"id": session, "register": "PDV01", "operator": "001",
                    "opening_amount": 10_000, "opened_at": "2026-11-26T12:00:00Z"}),
        )
        .await?;
    anyhow::ensure!(open.status == 201, "cash open: {:?}", open.body);
    wait_for("the cash open at the central", WAIT, || async move {
        Ok(central_has(central, session).await?.then_some(()))
    })
    .await?;

    // Off for the whole chain: the store hears it through its parameters
    // feed (woken by push), and stops its scheduled uploads.
    central
        .import("parameters", &[switch_line("master", false)])
        .await?;
    daemon_says(store, false).await?;
    let runs_before = store.log_runs()?.len();
    let sale = Uuid::new_v4();
    let a = store
        .pos_post(
            "/v1/sales",
            &json!({
                "id": sale, "register": "PDV01", "session_id": session, "number": 1, "operator": "001",
                "items": [{"product_code": "1", "qty": 1000, "unit_price": 450, "total": 450}],
                "total": 450, "payments": [{"method": "CASH", "amount": 450}],
                "sold_at": "2026-11-26T12:05:00Z"
            }),
        )
        .await?;
    anyhow::ensure!(a.status == 201, "sale: {:?}", a.body);
    // The POS's write wakes the upload job: it runs and does nothing.
    let skipped = wait_for("an upload run skipped by the switch", WAIT, || async move {
        let runs = store.log_runs()?;
        Ok(runs[runs_before.min(runs.len())..]
            .iter()
            .find(|(code, outcome, _, _)| code == "UPL" && outcome == "disabled")
            .cloned())
    })
    .await?;
    anyhow::ensure!(
        skipped
            .3
            .as_deref()
            .unwrap_or("")
            .contains("switched off by the central"),
        "{skipped:?}"
    );
    // Still pending, never at the central; the POS keeps answering reads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    anyhow::ensure!(!central_has(central, sale).await?, "uploaded while off");
    let counts = store.outbox_counts()?;
    anyhow::ensure!(counts.get("pending") == Some(&1), "{counts:?}");
    let read = store.pos_get("/v1/parameters").await?;
    anyhow::ensure!(read.status == 200, "POS read while off: {}", read.status);
    let status = store.status_json()?;
    anyhow::ensure!(status["integration_on"] == json!(false), "{status}");
    let text = store.command(&["status"])?;
    let text = String::from_utf8_lossy(&text.stdout);
    anyhow::ensure!(text.contains("Integration: OFF"), "{text}");
    let metrics = central
        .client()
        .get(format!("{}/metrics", store.pos_url()?))
        .send()
        .await?
        .text()
        .await?;
    anyhow::ensure!(metrics.contains("lojad_integration_on 0"), "{metrics}");

    // On again at the store's central: the nearest level wins over the
    // chain's off; the store resumes by itself and delivers the sale.
    central
        .import("parameters", &[switch_line(CENTRAL, true)])
        .await?;
    wait_for("the sale at the central", WAIT, || async move {
        Ok(central_has(central, sale).await?.then_some(()))
    })
    .await?;
    daemon_says(store, true).await?;
    wait_for("the outbox drained", WAIT, || async move {
        let c = store.outbox_counts()?;
        Ok((c.get("pending").copied().unwrap_or(0) == 0).then_some(()))
    })
    .await?;

    // The central counted the store's requests and bytes and kept the
    // backlog lojad reported (`Loja-Outbox`), written by its flush loop
    // (every 10 s, never per request).
    let db = central.db_path().to_owned();
    let (requests, bytes, pending) = wait_for("the store's traffic written", WAIT, || {
        let db = db.clone();
        async move {
            let c = rusqlite::Connection::open(&db)?;
            c.busy_timeout(Duration::from_secs(10))?;
            let row: Option<(i64, i64, Option<i64>)> = c
                .query_row(
                    "SELECT requests, bytes, outbox_pending FROM store_traffic WHERE store = ?1",
                    [STORE],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .ok();
            Ok(row.and_then(|(r, b, p)| p.map(|p| (r, b, p))))
        }
    })
    .await?;
    anyhow::ensure!(requests > 5 && bytes > 0, "{requests} requests, {bytes} B");
    anyhow::ensure!((0..=1).contains(&pending), "reported pending {pending}");
    Ok(())
}
