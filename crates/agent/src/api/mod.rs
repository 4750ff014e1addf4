//! The POS API on localhost: reads from the replica, writes into the outbox,
//! the status page and `/metrics`. See docs/pos-api.md.
//!
//! One table ([`routes`]) lists every route with its method, path and
//! whether it needs a token; the router is built from it, and a test checks
//! that each of its routes is in the OpenAPI document ([`ApiDoc`]), which
//! utoipa generates from the handlers' annotations.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use loja_protocol::ErrorBody;

use crate::state::AppState;
use crate::status::StatusReport;

pub mod auth;
pub mod error;
pub mod metrics;
pub mod page;
pub mod readers;
pub mod reads;
pub mod writes;

#[cfg(test)]
mod tests;

pub use error::ApiError;
pub use readers::{ReadMode, ReaderPool};

/// How the router is built; [`router`] takes the defaults.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Where replica reads run (see [`ReadMode`]).
    pub read_mode: ReadMode,
    /// Every request is answered within this (503 `timeout` past it).
    pub timeout: Duration,
    /// Most replica connections open at once.
    pub readers: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        ApiOptions {
            read_mode: ReadMode::from_env(),
            timeout: Duration::from_secs(5),
            readers: (2 * cpus).max(4),
        }
    }
}

/// What every handler gets: one `Arc`, because axum clones the state for
/// every request and layer (a struct of `Arc`s cost a contended atomic
/// each, ~5 % of a lookup's CPU on two workers).
#[derive(Clone)]
pub struct ApiState(Arc<ApiContext>);

pub struct ApiContext {
    pub app: AppState,
    pub readers: ReaderPool,
    pub(crate) shared: Shared,
}

impl std::ops::Deref for ApiState {
    type Target = ApiContext;
    fn deref(&self) -> &ApiContext {
        &self.0
    }
}

pub(crate) struct Shared {
    tokens: auth::Tokens,
    pub(crate) http: metrics::HttpMetrics,
    store_id: Arc<str>,
    timeout: Duration,
    /// The status report, reused for a second (page, status.json and
    /// metrics refreshing together cost one collection).
    status: tokio::sync::Mutex<Option<(Instant, Arc<StatusReport>)>>,
}

const STATUS_TTL: Duration = Duration::from_secs(1);

impl ApiState {
    /// The store id, which picks the price list.
    pub fn store_id(&self) -> Arc<str> {
        self.shared.store_id.clone()
    }

    pub async fn status_report(&self) -> Result<Arc<StatusReport>, ApiError> {
        let mut cached = self.shared.status.lock().await;
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < STATUS_TTL
        {
            return Ok(report.clone());
        }
        let report = Arc::new(crate::status::collect(&self.app).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "status_error",
                format!("collecting the status: {e:#}"),
            )
        })?);
        *cached = Some((Instant::now(), report.clone()));
        Ok(report)
    }
}

/// One route of the API.
pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    /// Needs `Authorization: Bearer <token>`.
    pub auth: bool,
    pub handler: MethodRouter<ApiState>,
}

fn r(method: Method, path: &'static str, auth: bool, handler: MethodRouter<ApiState>) -> RouteDef {
    RouteDef {
        method,
        path,
        auth,
        handler,
    }
}

/// Every route: the router is built from this table, and the test of the
/// OpenAPI document walks it.
pub fn routes() -> Vec<RouteDef> {
    use Method as M;
    vec![
        r(M::GET, "/", false, get(page::status_page)),
        r(M::GET, "/status.json", false, get(page::status_json)),
        r(M::GET, "/metrics", false, get(page::metrics)),
        r(M::GET, "/v1/health", false, get(reads::health)),
        r(M::GET, "/v1/openapi.json", true, get(page::openapi)),
        r(M::GET, "/v1/status", true, get(reads::status)),
        r(
            M::GET,
            "/v1/products/by-barcode/{ean}",
            true,
            get(reads::product_by_barcode),
        ),
        r(
            M::GET,
            "/v1/products/{code}",
            true,
            get(reads::product_by_code),
        ),
        r(M::GET, "/v1/products", true, get(reads::search_products)),
        r(
            M::GET,
            "/v1/customers/by-document/{cpf_or_cnpj}",
            true,
            get(reads::customer_by_document),
        ),
        r(M::POST, "/v1/customers", true, post(writes::customer)),
        r(M::GET, "/v1/reference/{list}", true, get(reads::reference)),
        r(M::GET, "/v1/parameters", true, get(reads::parameters)),
        r(M::GET, "/v1/promotions", true, get(reads::promotions)),
        r(M::GET, "/v1/omni-orders", true, get(reads::omni_orders)),
        r(
            M::POST,
            "/v1/omni-orders/{id}/status",
            true,
            post(writes::omni_status),
        ),
        r(M::POST, "/v1/cash/open", true, post(writes::cash_open)),
        r(
            M::POST,
            "/v1/cash/movements",
            true,
            post(writes::cash_movement),
        ),
        r(M::POST, "/v1/cash/close", true, post(writes::cash_close)),
        r(M::POST, "/v1/sales", true, post(writes::sale)),
        r(
            M::POST,
            "/v1/sales/{id}/payments",
            true,
            post(writes::sale_payment),
        ),
        r(M::POST, "/v1/sales/{id}/xml", true, post(writes::sale_xml)),
        r(
            M::POST,
            "/v1/fiscal/reducao-z",
            true,
            post(writes::reducao_z),
        ),
    ]
}

/// The whole POS API with the defaults: all routes, auth, body limit
/// (`[pos] max_body_bytes`), 5 s per request, JSON errors everywhere, the
/// status page at `/`, `/metrics` and `/v1/openapi.json`.
pub fn router(state: AppState) -> Router {
    router_with(state, ApiOptions::default())
}

pub fn router_with(state: AppState, options: ApiOptions) -> Router {
    let table = routes();
    let shared = Shared {
        tokens: auth::Tokens::new(&state.config.pos.tokens),
        http: metrics::HttpMetrics::new(table.iter().map(|r| r.path)),
        store_id: Arc::from(state.config.store.id.as_str()),
        timeout: options.timeout,
        status: tokio::sync::Mutex::new(None),
    };
    let max_body = state.config.pos.max_body_bytes;
    let st = ApiState(Arc::new(ApiContext {
        readers: ReaderPool::new(
            state.config.store.data_dir.clone(),
            options.readers,
            options.read_mode,
        ),
        app: state,
        shared,
    }));
    let mut app = Router::new();
    for route in table {
        let mut handler = route.handler;
        if route.auth {
            handler = handler.route_layer(from_fn_with_state(st.clone(), auth::require_token));
        }
        let label = route.path;
        handler = handler.layer(map_response(move |mut resp: Response| async move {
            resp.extensions_mut().insert(metrics::RouteLabel(label));
            resp
        }));
        app = app.route(route.path, handler);
    }
    app.fallback(fallback)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(st.clone(), outer))
        .with_state(st)
}

/// Serves the router on `listener` (TCP_NODELAY on each connection) until
/// `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), shutdown).await
}

pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn fallback(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::not_found(format!(
        "no route {method} {}; the routes are in /v1/openapi.json",
        uri.path()
    ))
    .into_response()
}

/// The outermost layer: bounds each request in time, turns a panic into a
/// 500, makes every error answer a JSON error body (axum's own 405, 413…
/// included) and counts the request.
async fn outer(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let timeout = st.shared.timeout;
    let inner = std::pin::pin!(tokio::time::timeout(timeout, next.run(req)));
    let resp = match CatchUnwind(inner).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_elapsed)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("no answer within {} ms; retry", timeout.as_millis()),
        )
        .into_response(),
        Err(panic) => {
            let what = panic_message(&*panic);
            tracing::error!(panic = %what, "POS API handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("internal error: {what}"),
            )
            .into_response()
        }
    };
    let resp = ensure_json_error(resp).await;
    let label = resp
        .extensions()
        .get::<metrics::RouteLabel>()
        .map_or(metrics::UNMATCHED, |l| l.0);
    st.shared.http.count(label, resp.status().as_u16());
    resp
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Polls a future, turning a panic into an error.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// An error answer that is not JSON yet (axum's 405, a rejection's plain
/// text) becomes `{"error": {"code", "message"}}` with the same status.
async fn ensure_json_error(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    let mut message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
    {
        message = format!("method not allowed here; allowed: {allow}");
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        message = "the body is larger than [pos] max_body_bytes allows".into();
    }
    let body = ErrorBody::new(error::code_for(status), message);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

/// The OpenAPI document of the POS API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Loja POS API",
        description = "lojad's API for the point of sale on the store PC. Reads answer from the local replica only; \
writes are stored durably in the outbox before the answer. Money in integer centavos, quantities in integer \
thousandths, timestamps RFC 3339 UTC. Errors: {\"error\": {\"code\", \"message\", \"field\"}}."
    ),
    paths(
        page::status_page, page::status_json, page::metrics, page::openapi,
        reads::health, reads::status, reads::product_by_barcode, reads::product_by_code, reads::search_products,
        reads::customer_by_document, reads::reference, reads::parameters, reads::promotions, reads::omni_orders,
        writes::customer, writes::omni_status, writes::cash_open, writes::cash_movement, writes::cash_close,
        writes::sale, writes::sale_payment, writes::sale_xml, writes::reducao_z,
    ),
    // The writes' answers come from writes::WriteResponses, whose schemas
    // the paths do not collect.
    components(schemas(loja_replica::Accepted, reads::ErrorSchema)),
    modifiers(&BearerAuth),
    tags(
        (name = "products", description = "Product lookups (barcode, code, name search)"),
        (name = "customers", description = "Customers by CPF/CNPJ and sign-ups"),
        (name = "reference", description = "Reference lists, parameters, promotions"),
        (name = "documents", description = "Store documents into the outbox"),
        (name = "omni", description = "Omni-channel orders"),
        (name = "status", description = "Health, sync status, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description =
            Some("One token per POS terminal, from [pos] tokens in lojad's config".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}
