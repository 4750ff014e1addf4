//! A tampering HTTP proxy for tests: listens on a loopback port of its own,
//! forwards every request (method, path and query, headers, body) to an
//! upstream (the central), reads the whole upstream answer and hands it to a
//! test-supplied hook before returning it. The hook may rewrite the body and
//! the headers: flip bits in a feed page, change a sequence number in an
//! events answer, drop a header. Point a store at [`Proxy::url`] instead of
//! the central's URL.
//!
//! - The upstream body is passed to the hook exactly as the upstream sent it:
//!   no decompression (a zstd feed page stays zstd, `Content-Encoding` is
//!   kept), so a hook that flips bits flips them in what goes on the wire.
//! - `Content-Length` is set from the (possibly rewritten) body; hop-by-hop
//!   headers (`Transfer-Encoding`, `Connection`) are dropped.
//! - The proxy runs on a runtime and threads of its own, so a test that
//!   blocks its own thread (the harness's bounded waits on a child process)
//!   never stalls it. Dropping the [`Proxy`] stops it.
//! - An upstream that cannot be reached is answered `502` with a plain text
//!   body (the hook is not called).
//! - [`edit_json`] helps a hook rewrite a JSON answer under its
//!   `Content-Encoding` (decode, edit, encode the same way).
//!
//! ```no_run
//! # fn t(central_url: &str) -> anyhow::Result<()> {
//! use loja_e2e::proxy::Proxy;
//! let proxy = Proxy::start(central_url, |path, _headers, body| {
//!     if path.contains("/events") {
//!         // rewrite the JSON answer here
//!         let _ = body;
//!     }
//! })?;
//! let url = proxy.url(); // give this to the store instead of the central's
//! # let _ = url; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
pub use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The hook: `(path and query, response headers, response body)`; it may
/// change the headers and the body in place. Called once per request, after
/// the whole upstream answer is read, for every status code.
pub type Hook = dyn Fn(&str, &mut HeaderMap, &mut Vec<u8>) + Send + Sync + 'static;

/// Largest request body the proxy forwards.
const MAX_REQUEST_BYTES: usize = 256 << 20;
/// Bound on one upstream exchange (an events long-poll holds up to 60 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

struct Shared {
    upstream: String,
    client: reqwest::Client,
    hook: Box<Hook>,
    requests: AtomicU64,
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`, no trailing
    /// slash needed) on a fresh loopback port.
    pub fn start(
        upstream: &str,
        hook: impl Fn(&str, &mut HeaderMap, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> anyhow::Result<Proxy> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            // Bodies pass through as sent: no decompression on the way.
            .no_gzip()
            .no_zstd()
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .context("proxy: HTTP client")?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            hook: Box::new(hook),
            requests: AtomicU64::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("proxy: bind")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("e2e-proxy")
            .enable_all()
            .build()
            .context("proxy: runtime")?;
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("e2e-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
                // Open long-polls are not waited for.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .context("proxy: thread")?;
        Ok(Proxy {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests forwarded so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// For hooks: decodes `body` by its `Content-Encoding` (none, `zstd`,
/// `gzip`), lets `edit` change it as JSON, and encodes it back the same way
/// (the hook's caller fixes `Content-Length`). An error (not JSON, an unknown
/// encoding) leaves the body as it was.
pub fn edit_json(
    headers: &HeaderMap,
    body: &mut Vec<u8>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let plain = match encoding.as_str() {
        "" | "identity" => body.clone(),
        "zstd" => zstd::stream::decode_all(&body[..]).context("zstd body")?,
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .context("gzip body")?;
            out
        }
        other => anyhow::bail!("unknown Content-Encoding {other:?}"),
    };
    let mut value: serde_json::Value = serde_json::from_slice(&plain).context("JSON body")?;
    edit(&mut value);
    let plain = serde_json::to_vec(&value)?;
    *body = match encoding.as_str() {
        "zstd" => zstd::bulk::compress(&plain, 1)?,
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&plain)?;
            enc.finish()?
        }
        _ => plain,
    };
    Ok(())
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::CONTENT_LENGTH
        || name == header::HOST
        || name.as_str() == "keep-alive"
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("proxy: request body: {e}")).into_response();
        }
    };
    let mut upstream = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", shared.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("proxy: upstream: {e}")).into_response();
        }
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    let mut bytes = match answer.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("proxy: upstream body: {e}"),
            )
                .into_response();
        }
    };
    (shared.hook)(&path_and_query, &mut headers, &mut bytes);
    strip_hop_by_hop(&mut headers);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let names: Vec<header::HeaderName> =
        headers.keys().filter(|n| hop_by_hop(n)).cloned().collect();
    for n in names {
        headers.remove(&n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every request with a fixed zstd body.
    fn upstream() -> (
        String,
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(|req: Request| async move {
                    let body = zstd::bulk::compress(req.uri().to_string().as_bytes(), 1).unwrap();
                    ([(header::CONTENT_ENCODING, "zstd")], body)
                });
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        (url, t, tx)
    }

    #[tokio::test]
    async fn the_hook_sees_the_body_as_sent_and_may_rewrite_it() {
        let (up, thread, stop) = upstream();
        let proxy = Proxy::start(&up, |path, headers, body| {
            assert_eq!(
                headers.get(header::CONTENT_ENCODING).unwrap(),
                "zstd",
                "not decompressed"
            );
            if path.contains("tamper") {
                *body = zstd::bulk::compress(b"rewritten, longer than before", 1).unwrap();
                headers.insert("x-tampered", HeaderValue::from_static("1"));
            }
        })
        .unwrap();
        let client = crate::central::client();
        for (path, want, tampered) in [
            ("/a?b=1", "/a?b=1", false),
            ("/tamper?x", "rewritten, longer than before", true),
        ] {
            let r = client
                .get(format!("{}{path}", proxy.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers().contains_key("x-tampered"), tampered);
            // reqwest (zstd feature) decompresses: the framing is intact.
            assert_eq!(r.text().await.unwrap(), want);
        }
        assert_eq!(proxy.requests(), 2);
        drop(proxy);
        let _ = stop.send(());
        thread.join().unwrap();
    }
}
