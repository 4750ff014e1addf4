//! The HTTP client to the central (retaguarda): feeds, events, documents.
//!
//! rustls with the ring provider; the OS's roots plus `[central] ca_cert`.
//! Automatic decompression is off: a feed page's compressed bytes are what
//! the ticket archives (as received), and this module decompresses them
//! itself to parse. The store token is sent as a bearer header and never
//! appears in a URL, an error or a log line.

use std::io::Read;
use std::time::Duration;

use loja_protocol::Events;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue,
};

use crate::config::Config;

/// How much of an error body an error keeps.
const EXCERPT: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// Connect, TLS, timeout, reset: the central is unreachable right now.
    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },
    /// The central answered with an error status.
    #[error("{method} {url}: HTTP {status}: {excerpt}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        excerpt: String,
        body: Vec<u8>,
    },
    /// The answer could not be decompressed or parsed.
    #[error("{method} {url}: {message}")]
    Decode {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("central client setup: {0}")]
    Setup(String),
}

impl CentralError {
    /// Worth retrying later (the central is down or overloaded), as opposed
    /// to an answer that will not change by asking again.
    pub fn is_transient(&self) -> bool {
        match self {
            CentralError::Transport { .. } => true,
            CentralError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            CentralError::Decode { .. } | CentralError::Setup(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CentralError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response as received: status, its `Content-Encoding` and raw bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub url: String,
    pub status: u16,
    pub encoding: Encoding,
    pub bytes: Vec<u8>,
    /// The `Loja-Digest` header, when the central sent one.
    pub digest: Option<String>,
    /// The `Loja-Scope` header of a feed page: the store's place in the tree.
    pub scope: Option<String>,
}

impl RawResponse {
    /// The body decompressed.
    pub fn decoded(&self) -> Result<Vec<u8>, CentralError> {
        decompress(self.encoding, &self.bytes).map_err(|e| CentralError::Decode {
            method: "GET",
            url: self.url.clone(),
            message: format!("cannot decompress {} body: {e}", self.encoding.as_str()),
        })
    }

    /// The body decompressed and checked against its `Loja-Digest`: what a
    /// store applies (feed pages, verify answers) is refused unless it is
    /// byte for byte what the central built.
    pub fn decoded_checked(&self) -> Result<Vec<u8>, CentralError> {
        let body = self.decoded()?;
        loja_protocol::digest::check_body_digest(self.digest.as_deref(), &body).map_err(|e| {
            CentralError::Decode {
                method: "GET",
                url: self.url.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(body)
    }

    /// [`RawResponse::decoded_checked`] parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CentralError> {
        let body = self.decoded_checked()?;
        serde_json::from_slice(&body).map_err(|e| CentralError::Decode {
            method: "GET",
            url: self.url.clone(),
            message: format!("answer is not the JSON expected: {e}"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    fn from_header(v: Option<&HeaderValue>) -> Result<Encoding, String> {
        match v
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some("zstd") => Ok(Encoding::Zstd),
            Some(other) => Err(format!("unsupported Content-Encoding {other:?}")),
        }
    }
}

pub fn decompress(encoding: Encoding, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Identity => Ok(bytes.to_vec()),
        Encoding::Zstd => zstd::stream::decode_all(bytes),
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(bytes.len() * 6);
            flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
            Ok(out)
        }
    }
}

/// Installs ring as rustls' process-wide crypto provider (once; a provider
/// already installed by someone else is kept).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The outbox backlog the store reports on its requests to the central
/// (the `Loja-Outbox` header): set after every upload run.
#[derive(Debug, Default)]
struct Backlog {
    known: std::sync::atomic::AtomicBool,
    pending: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

/// The store's client to its central. Cheap to clone.
#[derive(Clone)]
pub struct Central {
    http: reqwest::Client,
    base: String,
    store: String,
    auth: HeaderValue,
    timeout: Duration,
    backlog: std::sync::Arc<Backlog>,
}

impl std::fmt::Debug for Central {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Central")
            .field("base", &self.base)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Central {
    pub fn new(config: &Config) -> Result<Central, CentralError> {
        install_crypto_provider();
        let timeout = Duration::from_secs(config.central.timeout_secs.max(1));
        let mut builder = reqwest::Client::builder()
            .no_gzip()
            .no_zstd()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("lojad/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.central.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| CentralError::Setup(format!("ca_cert {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| CentralError::Setup(format!("ca_cert {}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| CentralError::Setup(e.to_string()))?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", config.central.token)).map_err(|_| {
                CentralError::Setup(
                    "the central token has characters not allowed in a header".into(),
                )
            })?;
        auth.set_sensitive(true);
        Ok(Central {
            http,
            base: config.central.url.trim_end_matches('/').to_owned(),
            store: config.store.id.clone(),
            auth,
            timeout,
            backlog: Default::default(),
        })
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    /// The outbox backlog to report on the next requests (pending
    /// documents, parked ones).
    pub fn report_backlog(&self, pending: u64, failed: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.backlog.pending.store(pending, Relaxed);
        self.backlog.failed.store(failed, Relaxed);
        self.backlog.known.store(true, Relaxed);
    }

    fn backlog_header(&self) -> Option<HeaderValue> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.backlog.known.load(Relaxed) {
            return None;
        }
        HeaderValue::from_str(&loja_protocol::document::outbox_header(
            self.backlog.pending.load(Relaxed),
            self.backlog.failed.load(Relaxed),
        ))
        .ok()
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v1/stores/{}/{tail}", self.base, self.store)
    }

    /// One feed page, raw (compressed as sent).
    pub async fn feed_page(
        &self,
        entity: &str,
        after: u64,
        limit: u32,
    ) -> Result<RawResponse, CentralError> {
        let url = self.url(&format!("feeds/{entity}?after={after}&limit={limit}"));
        let req = self.http.get(&url).timeout(self.timeout);
        self.send("GET", url, req).await
    }

    /// The central's digest of what this store should hold of `entity`.
    pub async fn entity_digest(
        &self,
        entity: &str,
        buckets: u32,
    ) -> Result<loja_protocol::EntityDigest, CentralError> {
        let url = self.url(&format!("digests/{entity}?buckets={buckets}"));
        let req = self.http.get(&url).timeout(self.timeout);
        self.send("GET", url, req).await?.json()
    }

    /// The rows of one bucket of `entity` this store should hold.
    pub async fn bucket_rows(
        &self,
        entity: &str,
        buckets: u32,
        bucket: u32,
    ) -> Result<loja_protocol::BucketRows, CentralError> {
        let url = self.url(&format!(
            "digests/{entity}/rows?buckets={buckets}&bucket={bucket}"
        ));
        let req = self.http.get(&url).timeout(self.timeout);
        self.send("GET", url, req).await?.json()
    }

    /// Long-poll: returns when a feed this store follows has changes after
    /// `after` (the central's head when `None`), or after about `wait_secs`
    /// with no entities.
    pub async fn events(&self, after: Option<u64>, wait_secs: u64) -> Result<Events, CentralError> {
        let url = match after {
            Some(a) => self.url(&format!("events?after={a}&wait={wait_secs}")),
            None => self.url(&format!("events?wait={wait_secs}")),
        };
        let req = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(wait_secs) + self.timeout);
        let raw = self.send("GET", url, req).await?;
        let body = raw.decoded()?;
        serde_json::from_slice(&body).map_err(|e| CentralError::Decode {
            method: "GET",
            url: raw.url.clone(),
            message: format!("events answer is not valid JSON: {e}"),
        })
    }

    /// The ERP's verdicts on this store's documents after `after`.
    pub async fn verdicts(
        &self,
        after: u64,
    ) -> Result<loja_protocol::verdict::VerdictPage, CentralError> {
        let url = self.url(&format!("verdicts?after={after}&limit=1000"));
        let req = self.http.get(&url).timeout(self.timeout);
        let raw = self.send("GET", url, req).await?;
        let body = raw.decoded()?;
        serde_json::from_slice(&body).map_err(|e| CentralError::Decode {
            method: "GET",
            url: raw.url.clone(),
            message: format!("verdicts answer is not valid JSON: {e}"),
        })
    }

    /// The chain's omni orders under `key` (`id` or `number`), whole, as
    /// the central holds them: what a return taken here is checked against.
    pub async fn omni_orders(
        &self,
        key: &'static str,
        value: &str,
    ) -> Result<Vec<loja_protocol::omni::Order>, CentralError> {
        #[derive(serde::Deserialize)]
        struct Orders {
            orders: Vec<loja_protocol::omni::Order>,
        }
        let url = self.url("omni/orders");
        let req = self
            .http
            .get(&url)
            .query(&[(key, value)])
            .timeout(self.timeout);
        Ok(self.send("GET", url, req).await?.json::<Orders>()?.orders)
    }

    /// Posts a `DocumentBatch` (JSON, compressed here with zstd). Any status
    /// is returned (the caller tells 4xx from 2xx); transport errors are Err.
    pub async fn post_documents(&self, batch_json: &[u8]) -> Result<RawResponse, CentralError> {
        let url = self.url("documents");
        let body = zstd::bulk::compress(batch_json, 3)
            .map_err(|e| CentralError::Setup(format!("compressing a document batch: {e}")))?;
        let req = self
            .http
            .post(&url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "zstd")
            .body(body);
        self.send_any_status("POST", url, req).await
    }

    /// The release the central offers this store (`None`: 204, nothing).
    pub async fn release_offer(
        &self,
    ) -> Result<Option<loja_protocol::release::Offer>, CentralError> {
        let url = self.url("release");
        let req = self.http.get(&url).timeout(self.timeout);
        let raw = self.send("GET", url, req).await?;
        if raw.status == 204 {
            return Ok(None);
        }
        let body = raw.decoded()?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| CentralError::Decode {
                method: "GET",
                url: raw.url.clone(),
                message: format!("release offer is not the JSON expected: {e}"),
            })
    }

    /// A release's artifact for `target`, decompressed (checked by the caller
    /// against its signed manifest).
    pub async fn release_artifact(
        &self,
        sequence: u64,
        target: &str,
    ) -> Result<Vec<u8>, CentralError> {
        let url = self.url(&format!("release/{sequence}/{target}"));
        // an artifact is tens of MB: more time than a feed page
        let req = self.http.get(&url).timeout(self.timeout * 10);
        self.send("GET", url, req).await?.decoded()
    }

    /// Sends one update outcome.
    pub async fn post_release_report(
        &self,
        report: &loja_protocol::release::Report,
    ) -> Result<(), CentralError> {
        let url = self.url("release/reports");
        let body = serde_json::to_vec(report)
            .map_err(|e| CentralError::Setup(format!("encoding a report: {e}")))?;
        let req = self
            .http
            .post(&url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.send("POST", url, req).await.map(|_| ())
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<RawResponse, CentralError> {
        let raw = self.send_any_status(method, url, req).await?;
        if (200..300).contains(&raw.status) {
            Ok(raw)
        } else {
            Err(status_error(method, &raw))
        }
    }

    /// Sends `req`; a 503 with `Retry-After` (the central's admission
    /// control) is asked again after that long, ±25 %, a few times at most,
    /// so a busy central spreads its stores instead of failing their runs.
    async fn send_any_status(
        &self,
        method: &'static str,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<RawResponse, CentralError> {
        let transport = |e: reqwest::Error| CentralError::Transport {
            method,
            url: url.clone(),
            message: describe(&e),
        };
        let mut req = req
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT_ENCODING, "zstd, gzip;q=0.8");
        if let Some(backlog) = self.backlog_header() {
            req = req.header(loja_protocol::document::OUTBOX_HEADER, backlog);
        }
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let again = req.try_clone();
            let resp = req.send().await.map_err(transport)?;
            let wait = retry_after(&resp).filter(|_| resp.status().as_u16() == 503);
            match (wait, again) {
                (Some(wait), Some(again)) if attempt < RETRY_AFTER_ATTEMPTS => {
                    tracing::info!(url = %url, wait_secs = wait.as_secs(), "the central is busy: asking again after its Retry-After");
                    tokio::time::sleep(crate::backoff::jitter(wait)).await;
                    req = again;
                }
                _ => break resp,
            }
        };
        let status = resp.status();
        let encoding =
            Encoding::from_header(resp.headers().get(CONTENT_ENCODING)).map_err(|message| {
                CentralError::Decode {
                    method,
                    url: url.clone(),
                    message,
                }
            })?;
        let digest = resp
            .headers()
            .get(loja_protocol::DIGEST_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let scope = resp
            .headers()
            .get(loja_protocol::SCOPE_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        Ok(RawResponse {
            url: url.clone(),
            status: status.as_u16(),
            encoding,
            bytes,
            digest,
            scope,
        })
    }
}

/// Times a request refused with `503` + `Retry-After` is sent in all.
const RETRY_AFTER_ATTEMPTS: u32 = 4;
/// The longest `Retry-After` waited for in place (longer: the run fails and
/// the job's backoff takes over).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// A `Retry-After` in seconds (the central's form), if any and not too long.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.max(1))).filter(|d| *d <= RETRY_AFTER_MAX)
}

/// An error status with an excerpt of the (decompressed) body.
pub fn status_error(method: &'static str, raw: &RawResponse) -> CentralError {
    let body = raw.decoded().unwrap_or_else(|_| raw.bytes.clone());
    let mut excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]).into_owned();
    if body.len() > EXCERPT {
        excerpt.push('…');
    }
    let reason = StatusCode::from_u16(raw.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if excerpt.trim().is_empty() {
        excerpt = reason.to_owned();
    }
    CentralError::Status {
        method,
        url: raw.url.clone(),
        status: raw.status,
        excerpt,
        body,
    }
}

/// reqwest's error with its sources (the interesting part — "connection
/// refused", "deadline has elapsed" — is usually a source).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        String::new()
    };
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A central that is busy twice (503, `Retry-After: 1`), then answers:
    /// the client asks again instead of failing.
    #[tokio::test]
    async fn a_busy_central_is_asked_again_after_its_retry_after() {
        use axum::response::IntoResponse;
        use std::path::Path;
        use std::sync::atomic::{AtomicU32, Ordering};
        let asked = std::sync::Arc::new(AtomicU32::new(0));
        let count = asked.clone();
        let app = axum::Router::new().route(
            "/v1/stores/s1/verdicts",
            axum::routing::get(move || {
                let count = count.clone();
                async move {
                    if count.fetch_add(1, Ordering::SeqCst) < 2 {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [(axum::http::header::RETRY_AFTER, "1")],
                            "busy",
                        )
                            .into_response()
                    } else {
                        r#"{"verdicts":[],"next":0,"more":false}"#.into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = Config::example(
            "s1",
            Path::new("/x"),
            &format!("http://{addr}"),
            "central-token",
            "pos-token-1",
        );
        let central = Central::new(&config).unwrap();
        let page = central.verdicts(0).await;
        assert!(page.is_ok(), "{page:?}");
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn decompresses_what_it_accepts() {
        let text = b"{\"seq\":3,\"entities\":[\"prices\"]}".repeat(20);
        let z = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decompress(Encoding::Zstd, &z).unwrap(), text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &text).unwrap();
        assert_eq!(
            decompress(Encoding::Gzip, &gz.finish().unwrap()).unwrap(),
            text
        );
        assert!(decompress(Encoding::Zstd, b"not zstd").is_err());
        assert_eq!(
            Encoding::from_header(Some(&HeaderValue::from_static("zstd"))),
            Ok(Encoding::Zstd)
        );
        assert!(Encoding::from_header(Some(&HeaderValue::from_static("br"))).is_err());
    }

    #[test]
    fn errors_name_the_url_but_never_the_token() {
        let raw = RawResponse {
            url: "http://c/v1/stores/s1/feeds/prices?after=0&limit=5".into(),
            status: 401,
            encoding: Encoding::Identity,
            bytes: br#"{"error":{"code":"unauthorized","message":"bad token"}}"#.to_vec(),
            digest: None,
            scope: None,
        };
        let e = status_error("GET", &raw);
        let text = e.to_string();
        assert!(
            text.contains("HTTP 401")
                && text.contains("feeds/prices")
                && text.contains("bad token"),
            "{text}"
        );
        assert!(!e.is_transient());
    }
}
