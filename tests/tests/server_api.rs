//! The central's documents queue, bad input, compression and self-description, end to end.

use std::io::{Read, Write};

use loja_e2e::central::Central;
use loja_protocol::{AckStatus, Document, DocumentBatch, DocumentKind};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "token-s-0123";

fn cash_open(id: Uuid, seq: u64) -> Document {
    Document {
        id,
        kind: DocumentKind::CashOpen,
        register: "PDV01".into(),
        store_seq: seq,
        accepted_at: "2026-11-26T12:00:00Z".into(),
        body: json!({"register": "PDV01", "operator": "001", "opening_amount": 10000,
                     "opened_at": "2026-11-26T12:00:00Z"}),
        reoffer: false,
        reconciliation: None,
        replaces: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_idempotent_and_collected_once_in_order() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s", "master", TOKEN).await?;
    let (a, b, bad) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut invalid = cash_open(bad, 3);
    invalid.body["opening_amount"] = json!(-1);
    let batch = DocumentBatch {
        documents: vec![cash_open(a, 1), cash_open(b, 2), invalid],
    };
    let ack = central.post_documents("s", TOKEN, &batch).await?;
    let statuses: Vec<_> = ack.acks.iter().map(|x| (x.id, x.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (a, AckStatus::Accepted),
            (b, AckStatus::Accepted),
            (bad, AckStatus::Rejected)
        ]
    );
    assert!(
        ack.acks[2]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("opening_amount")
    );

    // The same id again (and twice within one batch): duplicate.
    let again = DocumentBatch {
        documents: vec![
            cash_open(a, 1),
            cash_open(Uuid::nil(), 4),
            cash_open(Uuid::nil(), 4),
        ],
    };
    let ack = central.post_documents("s", TOKEN, &again).await?;
    let statuses: Vec<_> = ack.acks.iter().map(|x| x.status).collect();
    assert_eq!(
        statuses,
        vec![
            AckStatus::Duplicate,
            AckStatus::Accepted,
            AckStatus::Duplicate
        ]
    );

    let page = central.documents(0, 2).await?;
    assert_eq!(page["more"], true);
    let ids: Vec<&str> = page["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.to_string(), b.to_string()]);
    assert_eq!(page["documents"][0]["store"], "s");
    let rest = central
        .documents(page["next"].as_u64().unwrap(), 100)
        .await?;
    assert_eq!(rest["more"], false);
    let rest_ids: Vec<&str> = rest["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest_ids, vec![Uuid::nil().to_string()]);
    let end = central
        .documents(rest["next"].as_u64().unwrap(), 100)
        .await?;
    assert_eq!(end["documents"], json!([]));

    // A broken envelope is refused whole.
    let resp = central
        .client()
        .post(format!("{}/v1/stores/s/documents", central.url()))
        .bearer_auth(TOKEN)
        .body("{\"documents\": [")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "malformed_json");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_4xx_naming_line_and_field_and_applies_nothing() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s", "master", TOKEN).await?;
    central.add_store("t", "master", "token-t-0123").await?;

    let unknown = central.import_raw("widgets", "{}").await?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], "not_found");

    let good = json!({"op": "upsert", "row": {"barcode": "7891000315507", "product_code": "1"}})
        .to_string();
    let malformed = central
        .import_raw("barcodes", format!("{good}\n{{\"op\": \"upsert\", \n"))
        .await?;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["error"]["line"], 2);

    let bad_ean = json!({"op": "upsert", "row": {"barcode": "7891000315508", "product_code": "1"}})
        .to_string();
    let refused = central
        .import_raw("barcodes", format!("{good}\n\n{bad_ean}\n"))
        .await?;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["error"]["line"], 3);
    assert_eq!(refused.body["error"]["field"], "barcode");
    let money =
        json!({"op": "upsert", "row": {"product_code": "1", "price_list": "base", "price": 9.99}})
            .to_string();
    let refused = central.import_raw("prices", money).await?;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["error"]["field"], "price");

    // Nothing of the refused requests was applied.
    let page = central.feed("s", TOKEN, "barcodes", 0, 100).await?;
    assert!(page.items.is_empty());
    assert_eq!(page.next.0, 0);

    // Tokens.
    let no_admin = central
        .client()
        .post(format!("{}/v1/admin/import/barcodes", central.url()))
        .bearer_auth("wrong")
        .body(good.clone())
        .send()
        .await?;
    assert_eq!(no_admin.status().as_u16(), 401);
    assert_eq!(
        no_admin.json::<Value>().await?["error"]["code"],
        "unauthorized"
    );
    assert_eq!(
        central
            .feed_raw("s", "wrong-token", "barcodes", 0, 10)
            .await?
            .status,
        401
    );
    assert_eq!(
        central
            .feed_raw("s", "token-t-0123", "barcodes", 0, 10)
            .await?
            .status,
        403
    );
    assert_eq!(
        central.feed_raw("s", TOKEN, "widgets", 0, 10).await?.status,
        404
    );
    let bad_after = central
        .client()
        .get(format!(
            "{}/v1/stores/s/feeds/stock?after=-1",
            central.url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(bad_after.status().as_u16(), 400);
    assert_eq!(bad_after.json::<Value>().await?["error"]["field"], "after");
    let nowhere = central
        .admin(reqwest::Method::GET, "/v1/nowhere", None)
        .await?;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.body["error"]["code"], "not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_both_ways_health_and_schema() -> anyhow::Result<()> {
    let central = Central::start()?;
    central.add_store("s", "master", TOKEN).await?;
    let lines: String = (0..500)
        .map(|i| {
            json!({"op": "upsert", "node": "s", "row": {"product_code": i.to_string(), "qty": 1000}}).to_string()
                + "\n"
        })
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes())?;
    let resp = central
        .client()
        .post(format!("{}/v1/admin/import/stock", central.url()))
        .bearer_auth(central.admin_token())
        .header("content-encoding", "gzip")
        .body(gz.finish()?)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await?["applied"], 500);
    let zst = zstd::encode_all(lines.replace("1000", "2000").as_bytes(), 3)?;
    let resp = central
        .client()
        .post(format!("{}/v1/admin/import/stock", central.url()))
        .bearer_auth(central.admin_token())
        .header("content-encoding", "zstd")
        .body(zst)
        .send()
        .await?;
    assert_eq!(resp.json::<Value>().await?["changed"], 500);

    // A raw request (no client-side decoding) asking for zstd gets zstd.
    let raw = reqwest::Client::builder().no_zstd().no_gzip().build()?;
    let resp = raw
        .get(format!(
            "{}/v1/stores/s/feeds/stock?limit=1000",
            central.url()
        ))
        .bearer_auth(TOKEN)
        .header("accept-encoding", "zstd")
        .send()
        .await?;
    assert_eq!(resp.headers()["content-encoding"], "zstd");
    let plain = zstd::decode_all(&resp.bytes().await?[..])?;
    let page: loja_protocol::FeedPage = serde_json::from_slice(&plain)?;
    assert_eq!(page.items.len(), 500);
    let resp = raw
        .get(format!(
            "{}/v1/stores/s/feeds/stock?limit=10",
            central.url()
        ))
        .bearer_auth(TOKEN)
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&resp.bytes().await?[..]).read_to_string(&mut text)?;
    assert!(text.starts_with("{\"entity\":\"stock\""));

    let health: Value = central
        .client()
        .get(format!("{}/v1/health", central.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["status"], "ok");
    let schema: Value = central
        .client()
        .get(format!("{}/v1/schema/entities", central.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        schema["entities"].as_object().unwrap().len(),
        loja_protocol::ENTITIES.len()
    );
    assert_eq!(schema["entities"]["barcodes"]["x-key"], json!(["barcode"]));
    Ok(())
}
