//! End-to-end: the POS API of a real `lojad` process, over a real socket,
//! after a real sync from a real `retaguarda-server`. The route-by-route
//! tests run the router in-process (crates/agent/src/api/tests.rs); this
//! checks what only the wire shows: the listener's address, the token on a
//! real request, HTTP framing (a body over the limit, announced or streamed;
//! bytes that are not HTTP), keep-alive, and JSON errors as the POS reads them.

use std::time::Duration;

use loja_e2e::central::Central;
use loja_e2e::store::{POS_TOKEN, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
/// lojad's default `[pos] max_body_bytes`.
const MAX_BODY: usize = 2 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(IO_TIMEOUT)
        .no_proxy()
        .build()
        .unwrap()
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{status} {ct}: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    (status, body)
}

/// GET with the POS token: status and JSON body.
async fn pos_get(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> (u16, Value) {
    json_of(http.get(url).bearer_auth(POS_TOKEN).send().await.unwrap()).await
}

/// Sends raw bytes on a fresh connection and reads until the server closes
/// it or `IO_TIMEOUT` passes; returns what came back.
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is written
    // (a body over the limit): a write error is not the test's failure.
    let _ = tokio::time::timeout(IO_TIMEOUT, s.write_all(request)).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(IO_TIMEOUT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pos_api_over_a_real_socket() {
    let central = Central::builder()
        .catalog(300, 30)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    let store = Store::builder(central.url(), STORE, TOKEN).start().unwrap();
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .unwrap();
    let url = store.pos_url().unwrap();
    let addr = url.trim_start_matches("http://").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "listens on {addr}");
    let barcodes = store.replica_rows("barcodes").unwrap();
    let row = barcodes.values().next().expect("a barcode");
    let barcode = row["barcode"].as_str().unwrap().to_owned();
    let code = row["product_code"].as_str().unwrap().to_owned();
    let http = client();
    let lookup = format!("{url}/v1/products/by-barcode/{barcode}");

    // Health needs no token; everything else does, and says so in JSON.
    let (s, b) = json_of(http.get(format!("{url}/v1/health")).send().await.unwrap()).await;
    assert_eq!((s, &b["status"]), (200, &json!("ok")));
    for auth in [None, Some("Bearer nope"), Some(POS_TOKEN)] {
        let mut req = http.get(&lookup);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (s, b) = json_of(req.send().await.unwrap()).await;
        assert_eq!(s, 401, "{auth:?}: {b}");
        assert_eq!(b["error"]["code"], "unauthorized");
    }
    let (s, b) = pos_get(&http, &lookup).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["product"]["code"], json!(code));
    assert!(b["barcodes"].as_array().unwrap().contains(&json!(barcode)));
    // The same product by code.
    let (s, by_code) = pos_get(&http, format!("{url}/v1/products/{code}")).await;
    assert_eq!((s, &by_code), (200, &b));
    // 422 naming the field, 404.
    let mut bad = barcode.clone();
    let last = bad.pop().unwrap().to_digit(10).unwrap();
    bad.push(char::from_digit((last + 1) % 10, 10).unwrap());
    let (s, b) = pos_get(&http, format!("{url}/v1/products/by-barcode/{bad}")).await;
    assert_eq!((s, &b["error"]["field"]), (422, &json!("ean")), "{b}");
    let (s, b) = pos_get(&http, format!("{url}/v1/products/no-such-code")).await;
    assert_eq!((s, &b["error"]["code"]), (404, &json!("not_found")), "{b}");
    // The OpenAPI document is served.
    let (s, b) = pos_get(&http, format!("{url}/v1/openapi.json")).await;
    assert_eq!(s, 200);
    assert!(b["paths"]["/v1/products/by-barcode/{ean}"].is_object());

    // A body over the limit: refused with a JSON 413 whether its length is
    // announced or it is streamed in chunks, and nothing is stored.
    let big = format!(
        "{{\"id\":\"{}\",\"x\":\"{}\"}}",
        uuid::Uuid::new_v4(),
        "a".repeat(MAX_BODY)
    );
    let (s, b) = json_of(
        http.post(format!("{url}/v1/sales"))
            .bearer_auth(POS_TOKEN)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (413, &json!("payload_too_large")),
        "{b}"
    );
    // Streamed (chunked, no length announced): the limit counts what arrives.
    let mut chunked = format!(
        "POST /v1/sales HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {POS_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for c in big.as_bytes().chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&addr, &chunked).await;
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains("\"payload_too_large\""),
        "{answer}"
    );
    let outbox = store.outbox_counts().unwrap();
    assert_eq!(outbox.values().sum::<u64>(), 0, "{outbox:?}");

    // Bytes that are not HTTP get a 400 and a closed connection; the
    // server goes on answering.
    let answer = raw(&addr, b"\x16\x03\x01\x02\x00 not http\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("connection: close"),
        "{answer}"
    );

    // Keep-alive: one connection, many requests, each answered in order.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /v1/products/by-barcode/{barcode} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {POS_TOKEN}\r\n\r\n"
    );
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..200 {
        tokio::time::timeout(IO_TIMEOUT, s.write_all(request.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        // Read one whole answer: headers, then content-length bytes.
        let answer = loop {
            let n = tokio::time::timeout(IO_TIMEOUT, s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "request {i}: the connection closed");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if body.len() >= len {
                    break (head.to_owned(), body[..len].to_owned());
                }
            }
        };
        assert!(
            answer.0.starts_with("HTTP/1.1 200"),
            "request {i}: {}",
            answer.0
        );
        let v: Value = serde_json::from_str(&answer.1).unwrap();
        assert_eq!(v["product"]["code"], json!(code));
    }
}
