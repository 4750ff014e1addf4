//! The central's availability control (window, last download, exceptions)
//! and the events long-poll, end to end.

use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use serde_json::{Value, json};

const TOKEN: &str = "token-s-0123";

fn stock_rows(from: u64, to: u64) -> Vec<Value> {
    (from..=to)
        .map(|i| json!({"product_code": i.to_string(), "qty": 1000}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_window_last_download_and_exceptions() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s", "master", TOKEN).await?;
    central.import_own("stock", "s", &stock_rows(1, 10)).await?;

    // The first download is never held; its continuation pages neither.
    let p1 = central.feed("s", TOKEN, "stock", 0, 4).await?;
    assert!(p1.more && p1.held_until.is_none());
    let p2 = central.feed("s", TOKEN, "stock", p1.next.0, 4).await?;
    let p3 = central.feed("s", TOKEN, "stock", p2.next.0, 4).await?;
    assert!(p2.held_until.is_none() && p3.held_until.is_none());
    assert!(!p3.more);
    let done = p3.next.0;
    assert_eq!(p1.items.len() + p2.items.len() + p3.items.len(), 10);

    // New data within the window (stock: 10 min): the new download is held.
    central
        .import_own("stock", "s", &stock_rows(11, 12))
        .await?;
    let held = central.feed("s", TOKEN, "stock", done, 100).await?;
    assert!(held.items.is_empty());
    assert!(!held.more);
    assert_eq!(held.next.0, done);
    let until = held.held_until.clone().expect("held_until");
    assert!(loja_protocol::time::parse(&until).is_some(), "{until}");
    let downloads = central.downloads("s").await?;
    assert_eq!(downloads["downloads"][0]["entity"], "stock");
    assert_eq!(downloads["downloads"][0]["next"], done);

    // On the exception list: never held.
    central.add_exception("s").await?;
    let free = central.feed("s", TOKEN, "stock", done, 100).await?;
    assert_eq!(free.items.len(), 2);
    assert!(free.held_until.is_none());
    central.remove_exception("s").await?;
    central
        .import_own("stock", "s", &stock_rows(13, 13))
        .await?;
    let held = central.feed("s", TOKEN, "stock", free.next.0, 100).await?;
    assert!(
        held.held_until.is_some(),
        "held again once off the exception list"
    );

    // Resetting the store's last download releases it.
    let reset = central
        .admin(
            reqwest::Method::DELETE,
            "/v1/admin/stores/s/downloads/stock",
            None,
        )
        .await?;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    let released = central.feed("s", TOKEN, "stock", free.next.0, 100).await?;
    assert_eq!(released.items.len(), 1);
    central
        .import_own("stock", "s", &stock_rows(14, 14))
        .await?;
    assert!(
        central
            .feed("s", TOKEN, "stock", released.next.0, 100)
            .await?
            .held_until
            .is_some()
    );

    // The CLI sets availability on the live database: 0 minutes, nothing held.
    let out = std::process::Command::new(loja_e2e::central::server_bin()?)
        .args(["availability", "set", "stock", "0", "--db"])
        .arg(central.location())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = central
        .feed("s", TOKEN, "stock", released.next.0, 100)
        .await?;
    assert_eq!(page.items.len(), 1);
    assert!(page.held_until.is_none());

    // Other entities keep their own window: prices are still 60 minutes.
    let list = central
        .admin(reqwest::Method::GET, "/v1/admin/availability", None)
        .await?;
    let prices = list.body["availability"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["entity"] == "prices")
        .cloned();
    assert_eq!(prices.unwrap()["minutes"], 60);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_a_visible_change_and_times_out_otherwise() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s", "master", TOKEN).await?;
    central
        .add_store("other", "master", "token-other-0123")
        .await?;
    central.import_own("stock", "s", &stock_rows(1, 3)).await?;

    // Changes since 0: reported at once.
    let ev = central.events("s", TOKEN, Some(0), 5).await?;
    assert_eq!(ev.entities, vec!["stock".to_owned()]);
    let head = ev.seq;

    // Nothing new: returns at the bound, empty, same seq.
    let t = Instant::now();
    let ev = central.events("s", TOKEN, Some(head), 1).await?;
    assert!(ev.entities.is_empty());
    assert_eq!(ev.seq, head);
    assert!(
        t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );

    // Another store's private row does not wake this one.
    let private = json!({"op": "upsert", "node": "other", "public": false,
                         "row": {"product_code": "1", "price_list": "other", "price": 1}});
    central.import("prices", &[private]).await?;
    let ev = central.events("s", TOKEN, Some(head), 1).await?;
    assert!(ev.entities.is_empty(), "{ev:?}");

    // A visible change wakes a waiting poll within a couple of seconds.
    let poll = {
        let url = central.url().to_owned();
        let client = central.client().clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let ev: loja_protocol::Events = client
                .get(format!("{url}/v1/stores/s/events?after={head}&wait=30"))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok::<_, anyhow::Error>((ev, t.elapsed()))
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let imported = central
        .import_rows(
            "prices",
            &[json!({"product_code": "9", "price_list": "base", "price": 990})],
        )
        .await?;
    let (ev, took) = tokio::time::timeout(Duration::from_secs(20), poll).await???;
    assert_eq!(ev.entities, vec!["prices".to_owned()]);
    assert_eq!(ev.seq, imported["last_seq"].as_u64().unwrap());
    assert!(took < Duration::from_secs(5), "woke after {took:?}");

    // An entity held back for the store is not reported; an exception store's is.
    let (_, next) = central.feed_all("s", TOKEN, "prices", 0, 100).await?;
    assert!(next > 0);
    central
        .import_rows(
            "prices",
            &[json!({"product_code": "9", "price_list": "base", "price": 980})],
        )
        .await?;
    let ev2 = central.events("s", TOKEN, Some(ev.seq), 1).await?;
    assert!(
        ev2.entities.is_empty(),
        "prices are held for 60 minutes: {ev2:?}"
    );
    assert_eq!(
        ev2.seq, ev.seq,
        "the held change stays ahead of the seq handed back"
    );
    central.add_exception("s").await?;
    let ev3 = central.events("s", TOKEN, Some(ev2.seq), 5).await?;
    assert_eq!(ev3.entities, vec!["prices".to_owned()]);

    // Without `after`: waits from the current head.
    let ev4 = central.events("s", TOKEN, None, 1).await?;
    assert!(ev4.entities.is_empty());
    assert_eq!(ev4.seq, ev3.seq);
    Ok(())
}
