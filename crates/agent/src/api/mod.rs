//! The POS API on localhost: reads from the replica, writes into the outbox,
//! the status page and `/metrics`. See docs/pos-api.md.
//!
//! One table ([`routes`]) lists every route with its method, path and
//! whether it needs a token; the router is built from it, and a test checks
//! that each of its routes is in the OpenAPI document ([`ApiDoc`]), which
//! utoipa generates from the handlers' annotations.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};

use crate::state::AppState;
use crate::status::StatusReport;
use guard::GuardLayer;

pub mod auth;
pub mod error;
mod guard;
pub mod metrics;
pub mod omni;
pub mod page;
pub mod readers;
pub mod reads;
pub mod status_i18n;
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
    /// Products and barcodes have had their first feed page: from then on
    /// an unknown product is a 404 (once true, it stays true).
    catalog_synced: std::sync::atomic::AtomicBool,
}

const STATUS_TTL: Duration = Duration::from_secs(1);

impl ApiState {
    /// The state of a router whose routes are `labels` (for `/metrics`).
    fn new(
        state: AppState,
        options: &ApiOptions,
        labels: impl IntoIterator<Item = &'static str>,
    ) -> ApiState {
        let shared = Shared {
            tokens: auth::Tokens::new(&state.config.pos.tokens),
            http: metrics::HttpMetrics::new(labels),
            store_id: Arc::from(state.config.store.id.as_str()),
            timeout: options.timeout,
            status: tokio::sync::Mutex::new(None),
            catalog_synced: std::sync::atomic::AtomicBool::new(false),
        };
        ApiState(Arc::new(ApiContext {
            readers: ReaderPool::new(
                state.config.store.data_dir.clone(),
                options.readers,
                options.read_mode,
            ),
            app: state,
            shared,
        }))
    }

    /// Whether products and barcodes have had their first sync. Before it
    /// lojad cannot tell an unknown product from one not downloaded yet, so
    /// a lookup that finds nothing answers 503, not 404 (only that answer
    /// asks: the hot path never does).
    pub async fn catalog_synced(&self) -> Result<bool, ApiError> {
        use std::sync::atomic::Ordering;
        if self.shared.catalog_synced.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let synced = self
            .readers
            .run(|r| {
                let seen = |name| {
                    loja_protocol::entity_named(name)
                        .map_or(Ok(true), |e| r.watermark(e).map(|w| w.0 > 0))
                };
                Ok(seen("products")? && seen("barcodes")?)
            })
            .await?;
        if synced {
            self.shared.catalog_synced.store(true, Ordering::Relaxed);
        }
        Ok(synced)
    }

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
        r(M::GET, "/v1/omni-orders", true, get(omni::orders)),
        r(M::GET, "/v1/omni-orders/{id}", true, get(omni::order)),
        r(
            M::GET,
            "/v1/omni-orders/by-number/{number}",
            true,
            get(omni::order_by_number),
        ),
        r(
            M::GET,
            "/v1/omni-orders/by-number/{number}/returnable",
            true,
            get(omni::returnable),
        ),
        r(
            M::POST,
            "/v1/omni-orders/{id}/actions",
            true,
            post(writes::omni_action),
        ),
        r(
            M::POST,
            "/v1/omni-orders/{id}/returns",
            true,
            post(writes::omni_return),
        ),
        r(M::PUT, "/v1/omni-orders/{id}/claim", true, put(omni::claim)),
        r(
            M::DELETE,
            "/v1/omni-orders/{id}/claim",
            true,
            delete(omni::release),
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
            "/v1/sales/{id}/cancellation",
            true,
            post(writes::sale_cancellation),
        ),
        r(
            M::POST,
            "/v1/sales/{id}/returns",
            true,
            post(writes::sale_return),
        ),
        r(
            M::POST,
            "/v1/returns/{id}/cancellation",
            true,
            post(writes::return_cancellation),
        ),
        r(
            M::POST,
            "/v1/stock/movements",
            true,
            post(writes::stock_movement),
        ),
        r(
            M::POST,
            "/v1/stock/counts",
            true,
            post(writes::inventory_count),
        ),
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
    let max_body = state.config.pos.max_body_bytes;
    let st = ApiState::new(state, &options, table.iter().map(|r| r.path));
    let mut app = Router::new();
    for route in table {
        let mut handler = route.handler;
        // Only the writes read a body.
        if route.method == Method::POST {
            handler = handler.layer(DefaultBodyLimit::max(max_body));
        }
        handler = handler.layer(GuardLayer::new(st.clone(), route.path, route.auth));
        app = app.route(route.path, handler);
    }
    let unmatched = any(fallback).layer(GuardLayer::new(st.clone(), metrics::UNMATCHED, false));
    app.fallback_service(unmatched.with_state(st.clone()))
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
        reads::customer_by_document, reads::reference, reads::parameters, reads::promotions,
        omni::orders, omni::order, omni::order_by_number, omni::claim, omni::release, omni::returnable,
        writes::customer, writes::omni_action, writes::omni_return, writes::cash_open, writes::cash_movement, writes::cash_close,
        writes::sale, writes::sale_payment, writes::sale_xml, writes::reducao_z,
        writes::sale_cancellation, writes::sale_return, writes::return_cancellation,
        writes::stock_movement, writes::inventory_count,
    ),
    // The writes' answers come from writes::WriteResponses, whose schemas
    // the paths do not collect; the request bodies' nested types are named
    // by `$ref` from loja_protocol::schema.
    components(schemas(
        loja_replica::Accepted, writes::CustomerAccepted, reads::ErrorSchema,
        writes::CashOpenRequest, writes::CashMovementRequest, writes::CashCloseRequest,
        writes::SaleRequest, writes::SalePaymentRequest, writes::SaleXmlRequest,
        writes::ReducaoZRequest, writes::CustomerRequest, writes::OmniActionRequest, writes::OmniReturnRequest,
        writes::SaleCancellationRequest, writes::ReturnRequest, writes::ReturnCancellationRequest,
        writes::StockMovementRequest, writes::InventoryCountRequest,
        loja_protocol::document::SaleItem, loja_protocol::document::Payment,
        loja_protocol::document::MethodTotal, loja_protocol::document::CashMovementKind,
        loja_protocol::document::ReturnItem, loja_protocol::document::MovementKind,
        loja_protocol::document::MovementItem, loja_protocol::document::CountedItem,
        loja_protocol::omni::ActionKind, loja_protocol::omni::LineState, loja_protocol::omni::ActionLine,
        loja_protocol::omni::Substitute, loja_protocol::omni::Invoice, loja_protocol::omni::OrderLine,
        loja_protocol::omni::Order, loja_protocol::omni::Delivery, loja_protocol::omni::OrderStatus,
        loja_protocol::omni::OmniReturnItem, loja_protocol::omni::LineReturn,
        loja_replica::omni_local::Claim, omni::Returnable, omni::ReturnableLine,
    )),
    modifiers(&BearerAuth, &PathParams),
    tags(
        (name = "products", description = "Product lookups (barcode, code, name search)"),
        (name = "customers", description = "Customers by CPF/CNPJ and sign-ups"),
        (name = "reference", description = "Reference lists, parameters, promotions"),
        (name = "documents", description = "Store documents into the outbox"),
        (name = "sales", description = "A sale's life after it is sold: cancellation, returns and exchanges, their cancellation (into the outbox)"),
        (name = "stock", description = "Stock movements and inventory counts (into the outbox)"),
        (name = "omni", description = "Omni-channel orders"),
        (name = "status", description = "Health, sync status, metrics"),
    )
)]
pub struct ApiDoc;

/// Path parameters whose schema comes from `loja_protocol::schema` (the
/// same bounds the handlers check; utoipa's attributes take only literals).
struct PathParams;

impl utoipa::Modify for PathParams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use loja_protocol::limits::pattern;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    let utoipa::openapi::RefOr::T(p) = p else {
                        continue;
                    };
                    let schema = match p.name.as_str() {
                        "ean" => string().pattern(Some(pattern::GTIN)).build(),
                        // The lookup takes the document as printed too.
                        "cpf_or_cnpj" => string().pattern(Some(r"^[0-9./-]+$")).build(),
                        "code" => loja_protocol::schema::code(),
                        // A claim's release names the register.
                        "register" => loja_protocol::schema::code(),
                        "id" if op
                            .operation_id
                            .as_deref()
                            .is_some_and(|o| o.starts_with("omni_")) =>
                        {
                            loja_protocol::schema::code()
                        }
                        _ => continue,
                    };
                    p.schema = Some(schema.into());
                }
            }
        }
    }
}

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
