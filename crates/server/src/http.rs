//! The HTTP API (`/v1`): store feeds, events and documents; admin import,
//! nodes, availability, downloads, exceptions, the ERP document queue and
//! the channels' omni orders.
//! See docs/protocol.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sql::Connection;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use loja_protocol::{DocumentBatch, Entity, ErrorBody, Events, Resolution, entity_named};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::decompression::RequestDecompressionLayer;

use crate::avail::{self, Download, Pending};
use crate::db::{Db, DbError, hash_token, head_seq, now_unix};
use crate::import::{self, ImportError};
use crate::nodes::{self, NewNode, NodeError, NodeKind, Scope};
use crate::omni::OmniError;
use crate::{documents, feed, omni, verify};

/// Feed pages built at once; the rest wait their turn (a new store's first
/// load cannot take every core from imports and other stores).
pub const FEED_BUILDS: usize = 2;
/// Feed builds that may wait their turn; past them: 503 with Retry-After.
pub const FEED_QUEUE: usize = 256;
/// A store's reads at once (a feed request's token, hold and head; an
/// events long-poll's token and, once woken, its check): as many as the
/// read connections kept open, so thousands of stores woken together
/// neither hold a blocking thread each nor open read connections of their
/// own (each with a 32 MB cache: chain-sim saw the central at 0.5–1 GB
/// after a fan-out, and several times the CPU, in the runs where most of
/// the 2,000 woken polls read at the same moment).
pub const STORE_READS: usize = 8;
/// Bytes of feed pages kept for the stores of the same view.
pub const PAGE_CACHE_BYTES: usize = 128 << 20;
/// Largest request body (after decompression): a whole-catalog import.
const MAX_BODY: usize = 1 << 30;

pub struct AppState {
    pub db: Db,
    admin_hash: Option<String>,
    feed_permits: crate::admission::Admission,
    /// The stores' reads at once (`STORE_READS`).
    store_reads: tokio::sync::Semaphore,
    /// Pages built once for every store of the same view.
    pages: crate::page_cache::PageCache<SealedAnswer>,
    /// Each entity's highest seq at the head they were read at: a woken
    /// long-poll looks for a store's changes only in the entities that
    /// moved, not in every entity.
    entity_heads: std::sync::Mutex<Option<(u64, EntityHeads)>>,
    /// What changed between heads, for the woken long-polls.
    changes: crate::changes::Changes,
    /// Per store, what wakes its long-poll for a change only it sees.
    store_wakers: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    /// The head sequence, sent after every import commit: wakes long-polls.
    pub head: watch::Sender<u64>,
    /// Hints to the other instances on the same PostgreSQL (none with SQLite).
    pub hints: std::sync::OnceLock<crate::hints::Hints>,
    pub pending: Pending,
    pub flush: Notify,
    pub shutdown: watch::Sender<bool>,
    /// Requests, bytes and outbox backlog per store, not written yet.
    pub traffic: crate::traffic::Traffic,
    /// When the traffic was last written (it is written every
    /// [`TRAFFIC_FLUSH`], not on every turn of the flush loop).
    traffic_flushed: std::sync::Mutex<Instant>,
}

/// How often the per-store traffic counts are written.
pub const TRAFFIC_FLUSH: Duration = Duration::from_secs(10);

impl AppState {
    pub fn new(db: Db, admin_token: &str, head: u64) -> AppState {
        AppState {
            db,
            admin_hash: (!admin_token.is_empty()).then(|| hash_token(admin_token)),
            feed_permits: crate::admission::Admission::new(FEED_BUILDS, FEED_QUEUE),
            store_reads: tokio::sync::Semaphore::new(STORE_READS),
            pages: crate::page_cache::PageCache::new(PAGE_CACHE_BYTES),
            entity_heads: std::sync::Mutex::new(None),
            changes: crate::changes::Changes::new(CHANGES_KEPT),
            store_wakers: std::sync::Mutex::new(HashMap::new()),
            head: watch::Sender::new(head),
            hints: std::sync::OnceLock::new(),
            pending: Pending::default(),
            flush: Notify::new(),
            shutdown: watch::Sender::new(false),
            traffic: crate::traffic::Traffic::default(),
            traffic_flushed: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// A write moved the head to `head`: this instance's long-polls wake,
    /// and the other instances are told.
    pub fn advance(&self, head: u64) {
        if head > *self.head.borrow() {
            self.head.send_replace(head);
        }
        self.hint(crate::hints::Hint::Head(head));
    }

    /// Rows only `store` sees moved: its long-poll wakes, wherever it is held.
    pub fn wake_store(&self, store: &str) {
        self.store_waker(store).notify_one();
        self.hint(crate::hints::Hint::Store(store.to_owned()));
    }

    /// A setting that may release held long-polls changed: all look again.
    pub fn poke(&self) {
        self.head.send_modify(|_| {});
        self.hint(crate::hints::Hint::Poke);
    }

    fn hint(&self, hint: crate::hints::Hint) {
        if let Some(h) = self.hints.get() {
            h.publish(hint);
        }
    }

    /// A hint from another instance (`None`: hints may have been lost).
    pub fn hinted(&self, hint: Option<crate::hints::Hint>) {
        use crate::hints::Hint;
        match hint {
            Some(Hint::Head(head)) => {
                if head > *self.head.borrow() {
                    self.head.send_replace(head);
                }
            }
            Some(Hint::Store(store)) => self.store_waker(&store).notify_one(),
            Some(Hint::Poke) | None => self.head.send_modify(|_| {}),
        }
    }

    /// What wakes `store`'s long-poll for a change only it sees.
    fn store_waker(&self, store: &str) -> Arc<Notify> {
        let mut w = self.store_wakers.lock().unwrap_or_else(|p| p.into_inner());
        w.entry(store.to_owned()).or_default().clone()
    }

    /// Each entity's highest seq at `head`, or a bound above it (read once
    /// per head, by the first long-poll that needs it).
    ///
    /// From the heads at an earlier head, only the entities written since
    /// moved: one read of what changed (the interval's summary) bounds them
    /// by the new head, instead of one `max(seq)` per entity — a round trip
    /// each on PostgreSQL, for every upload that moved the head.
    fn entity_heads(&self, conn: &Connection, head: u64) -> Result<EntityHeads, crate::sql::Error> {
        let lock = || self.entity_heads.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = lock().clone();
        if let Some((at, heads)) = earlier {
            if at == head {
                return Ok(heads);
            }
            if at < head && head - at <= INCREMENTAL_HEADS {
                let mut next = (*heads).clone();
                for (entity, _) in crate::changes::summary(conn, at, head)? {
                    if let Some(h) = next.get_mut(entity.as_str()) {
                        *h = head;
                    }
                }
                let next = Arc::new(next);
                *lock() = Some((head, next.clone()));
                return Ok(next);
            }
        }
        let mut heads = HashMap::new();
        for e in loja_protocol::ENTITIES {
            heads.insert(e.name, feed::entity_head(conn, e)?);
        }
        let heads = Arc::new(heads);
        *lock() = Some((head, heads.clone()));
        Ok(heads)
    }

    /// Writes the downloads recorded by feed answers behind them.
    pub fn flush_downloads(&self) -> Result<(), DbError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = self.pending.snapshot();
        self.db
            .write(|tx| avail::write_downloads(tx, &items).map_err(DbError::from))?;
        self.pending.written(&items);
        Ok(())
    }
}

impl AppState {
    /// Writes the per-store traffic counts when [`TRAFFIC_FLUSH`] passed
    /// since the last time (or `now`); a failed write keeps them for the
    /// next one.
    pub fn flush_traffic(&self, now: bool) -> Result<(), DbError> {
        {
            let mut last = self
                .traffic_flushed
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !now && last.elapsed() < TRAFFIC_FLUSH {
                return Ok(());
            }
            *last = Instant::now();
        }
        let deltas = self.traffic.take();
        if deltas.is_empty() {
            return Ok(());
        }
        match self
            .db
            .write(|tx| crate::traffic::flush(tx, &deltas).map_err(DbError::from))
        {
            Ok(()) => Ok(()),
            Err(e) => {
                self.traffic.restore(deltas);
                Err(e)
            }
        }
    }
}

impl crate::traffic::HasTraffic for AppState {
    fn traffic(&self) -> &crate::traffic::Traffic {
        &self.traffic
    }
}

impl crate::releases::HasDb for AppState {
    fn db(&self) -> &Db {
        &self.db
    }
}

type St = State<Arc<AppState>>;

/// Each entity's highest seq.
type EntityHeads = Arc<HashMap<&'static str, u64>>;

/// Intervals between heads whose summaries the long-polls share (a
/// minute of uploads at 2,000 stores' pace: a few hundred kB).
const CHANGES_KEPT: usize = 4096;

/// Up to how many sequences apart [`AppState::entity_heads`] moves on from
/// the heads it knows (past that, reading each entity's head is cheaper
/// than the summary of everything written).
const INCREMENTAL_HEADS: u64 = 10_000;

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds, on a 503 of admission control.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
            retry_after: None,
        }
    }
    fn field(mut self, f: impl Into<String>) -> ApiError {
        self.body = self.body.with_field(f);
        self
    }
    fn line(mut self, l: u64) -> ApiError {
        self.body = self.body.with_line(l);
        self
    }
}

/// The answer to a request the stopping server no longer takes.
fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "server is stopping",
    )
}

fn not_found(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}
fn unauthorized(what: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", what)
}
fn bad_request(field: &str, what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", what).field(field)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "database error",
        )
    }
}

impl From<crate::sql::Error> for ApiError {
    fn from(e: crate::sql::Error) -> Self {
        DbError::Sql(e).into()
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::UnknownEntity(name) => not_found(format!("unknown entity {name}")),
            ImportError::Malformed { line, message } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_line",
                format!("line {line}: {message}"),
            )
            .line(line),
            ImportError::Invalid {
                line,
                field,
                message,
            } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("line {line}: {field}: {message}"),
            )
            .field(field)
            .line(line),
            ImportError::Db(e) => e.into(),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Invalid { field, message } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{field}: {message}"),
            )
            .field(field),
            NodeError::Db(e) => e.into(),
        }
    }
}

impl From<OmniError> for ApiError {
    fn from(e: OmniError) -> Self {
        match e {
            OmniError::Invalid { field, message } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{field}: {message}"),
            )
            .field(field),
            OmniError::NotFound(id) => not_found(format!("no such order {id}")),
            OmniError::Taken(message) => {
                ApiError::new(StatusCode::CONFLICT, "id_taken", message).field("id")
            }
            OmniError::State { field, message } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("{field}: {message}"),
            )
            .field(field),
            OmniError::Db(e) => e.into(),
        }
    }
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "worker task failed",
        )
    })?
}

/// [`db_read`] among the stores' bounded reads (`STORE_READS`).
async fn store_read<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&Connection, &AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _reading = st
        .store_reads
        .acquire()
        .await
        .map_err(|_| shutting_down())?;
    db_read(st, f).await
}

/// `f` in a read transaction of the central's database, on the blocking pool.
async fn db_read<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&Connection, &AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    blocking(move || st.db.read(|c| f(c, &st))).await
}

/// `f` in an IMMEDIATE transaction, committed when it returns `Ok`, on the
/// blocking pool.
/// `f` in a group commit (`Db::write_grouped`), on the blocking pool: for
/// the many small writes the stores send at once.
async fn db_write_grouped<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&crate::sql::Transaction<'_>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    blocking(move || st.db.write_grouped(f)).await
}

async fn db_write<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&crate::sql::Transaction<'_>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    blocking(move || st.db.write(f)).await
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    loja_protocol::document::from_json_slice(body).map_err(|e| match e {
        loja_protocol::document::JsonBodyError::Invalid(f) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", f.message)
                .field(f.field)
        }
        loja_protocol::document::JsonBodyError::Malformed(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not valid JSON: {e}"),
        ),
    })
}

fn q_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| bad_request(name, format!("{name} must be a non-negative integer"))),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn check_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &st.admin_hash else {
        return Err(unauthorized(
            "admin endpoints are disabled: the server has no admin token",
        ));
    };
    match bearer(headers) {
        None => Err(unauthorized("missing bearer token")),
        Some(t) if &hash_token(&t) == expected => Ok(()),
        Some(_) => Err(unauthorized("wrong admin token")),
    }
}

/// The store's scope, if `token` is that store's.
fn check_store(conn: &Connection, store: &str, token: Option<&str>) -> Result<Scope, ApiError> {
    let token = token.ok_or_else(|| unauthorized("missing bearer token"))?;
    let (owner, scope) = nodes::scope_and_token_owner(conn, store, token)?;
    let owner = owner.ok_or_else(|| unauthorized("unknown store token"))?;
    if owner != store {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token belongs to another store",
        ));
    }
    scope.ok_or_else(|| not_found(format!("no such store {store}")))
}

fn entity_or_404(name: &str) -> Result<&'static Entity, ApiError> {
    entity_named(name).ok_or_else(|| not_found(format!("unknown entity {name}")))
}

fn json_text(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/schema/entities", get(schema_all))
        .route("/v1/schema/entities/{entity}", get(schema_one))
        .route("/v1/stores/{store}/feeds/{entity}", get(feed_page))
        .route("/v1/stores/{store}/events", get(events))
        .route("/v1/stores/{store}/digests/{entity}", get(entity_digest))
        .route("/v1/stores/{store}/digests/{entity}/rows", get(bucket_rows))
        .route("/v1/stores/{store}/documents", post(post_documents))
        .route("/v1/stores/{store}/verdicts", get(store_verdicts))
        .route("/v1/stores/{store}/omni/orders", get(store_omni_orders))
        .merge(crate::releases::store_routes())
        .merge(crate::console::router::<AppState>())
        .merge(admin_router(&state))
        .fallback(|| async { not_found("no such endpoint") })
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::traffic::count::<AppState>,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestDecompressionLayer::new().gzip(true).zstd(true))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .zstd(true)
                .quality(CompressionLevel::Fastest),
        )
        .with_state(state)
}

/// Every `/v1/admin` route, all behind the one [`admin_auth`] layer: no
/// admin handler checks the token itself. The unit test
/// `every_admin_route_is_refused_without_the_admin_token` walks the routes
/// of this file: an admin route added outside this router fails it.
fn admin_router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/admin/import/{entity}", post(import_lines))
        .route("/v1/admin/nodes", post(add_node).get(list_nodes))
        .route("/v1/admin/availability", get(list_availability))
        .route(
            "/v1/admin/availability/{entity}",
            put(set_availability).delete(unset_availability),
        )
        .route(
            "/v1/admin/stores/{store}/downloads",
            get(list_downloads).delete(reset_downloads),
        )
        .route(
            "/v1/admin/stores/{store}/downloads/{entity}",
            delete(reset_download),
        )
        .route("/v1/admin/exceptions", get(list_exceptions))
        .route(
            "/v1/admin/exceptions/{store}",
            put(add_exception).delete(remove_exception),
        )
        .route("/v1/admin/documents", get(collect_documents))
        .route("/v1/admin/documents/verdicts", post(post_verdicts))
        .route("/v1/admin/omni/orders", post(create_order).get(list_orders))
        .route("/v1/admin/omni/orders/{id}", get(get_order))
        .route("/v1/admin/omni/orders/{id}/cancel", post(cancel_order))
        .route("/v1/admin/omni/orders/{id}/assign", post(assign_order))
        .merge(crate::releases::admin_routes())
        .route(
            "/v1/admin/console/users",
            post(crate::console::api_put_user::<AppState>),
        )
        // Only on these routes: an unknown path still answers 404.
        .route_layer(middleware::from_fn_with_state(state.clone(), admin_auth))
        // The layer wraps each route's "method not allowed" answer too:
        // given back unwrapped, a method a route does not serve answers 405
        // whatever the token, as before the layer.
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
}

/// The admin routes' gate: the request reaches its handler only with the
/// admin bearer token; otherwise `check_admin`'s 401 is the answer, before
/// the body is read.
async fn admin_auth(State(st): St, req: Request, next: Next) -> Result<Response, ApiError> {
    check_admin(&st, req.headers())?;
    Ok(next.run(req).await)
}

/// One line per request at debug level (imports and documents log their own
/// line at info). Never logs headers: tokens stay out of the logs.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if resp.status().is_server_error() {
        tracing::warn!(%method, %path, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    resp
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn schema_all() -> Json<Value> {
    Json(crate::docs::all_schemas())
}

async fn schema_one(Path(entity): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(crate::docs::entity_schema(entity_or_404(&entity)?)))
}

async fn feed_page(
    State(st): St,
    Path((store, entity)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer(&headers);
    let zstd = accepts_zstd(&headers);
    let e = entity_or_404(&entity)?;
    let after = q_u64(&q, "after")?.unwrap_or(0);
    let limit = q_u64(&q, "limit")?
        .unwrap_or(feed::DEFAULT_LIMIT)
        .clamp(1, feed::MAX_LIMIT);
    enum Ready {
        Held(feed::Page),
        Build { scope: Scope, head: u64 },
    }
    let store2 = store.clone();
    // The token, the hold and the head: a few indexed reads, a few at a
    // time (`STORE_READS`).
    let (ready, place) = store_read(&st, move |conn, st2| {
        let scope = check_store(conn, &store2, token.as_deref())?;
        // The store's place in the tree: it ranks its price lists by it.
        let place = scope.nodes.join(",");
        if let Some(until) =
            avail::held_until(conn, Some(&st2.pending), &scope, e, Some(after), now_unix())?
        {
            let held = feed::Page {
                json: feed::held_page(e, after, &avail::rfc3339(until)),
                items: 0,
                next: after,
                more: false,
                shared: false,
            };
            return Ok((Ready::Held(held), place));
        }
        let head = feed::entity_head(conn, e)?;
        Ok((Ready::Build { scope, head }, place))
    })
    .await?;
    let scope = match ready {
        Ready::Held(page) => {
            let sealed = SealedAnswer::seal(page.json, zstd);
            return Ok(with_place(sealed.into_response(), &place));
        }
        Ready::Build { scope, head } => (scope, head),
    };
    let (scope, head) = scope;
    let key = crate::page_cache::PageKey {
        entity: e.name,
        ancestors: scope.nodes.iter().skip(1).cloned().collect(),
        after,
        limit,
        head,
    };
    let scope = Arc::new(scope);
    let build = || {
        let (st, scope) = (st.clone(), scope.clone());
        async move {
            let _permit = admitted(&st).await?;
            let st2 = st.clone();
            blocking(move || {
                let page = st2.db.read(|conn| {
                    Ok::<_, ApiError>(feed::build_page_upto(conn, e, &scope, after, limit, head)?)
                })?;
                let sealed = SealedAnswer::seal(page.json, zstd);
                Ok(crate::page_cache::Built {
                    bytes: sealed.len(),
                    answer: sealed,
                    next: page.next,
                    more: page.more,
                    shared: page.shared,
                    store: scope.store.clone(),
                })
            })
            .await
        }
    };
    // Only zstd pages are kept: every lojad takes them.
    let built = if zstd {
        st.pages.get_or_build(key, &store, build).await?.0
    } else {
        Arc::new(build().await?)
    };
    if !built.more {
        st.pending.record(
            &store,
            e.name,
            Download {
                completed_at: now_unix(),
                next: built.next,
            },
        );
        st.flush.notify_one();
    }
    Ok(with_place(built.answer.clone().into_response(), &place))
}

/// A place among the feed builds (admission control): 503 with
/// `Retry-After` past the queue.
async fn admitted(st: &Arc<AppState>) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    use crate::admission::Refused;
    st.feed_permits.enter().await.map_err(|r| match r {
        Refused::Busy { retry_after } => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "the central is building pages for other stores: ask again in {retry_after} s"
                ),
            );
            e.retry_after = Some(retry_after);
            e
        }
        Refused::Closed => shutting_down(),
    })
}

/// The answer with the store's place in the tree (`Loja-Scope`).
fn with_place(mut resp: Response, place: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(place) {
        resp.headers_mut().insert(loja_protocol::SCOPE_HEADER, v);
    }
    resp
}

/// A JSON answer a store applies (a feed page, a verify answer), sealed in
/// the blocking task that built it: its `Loja-Digest` over the text as
/// built (`loja_protocol::digest`), then, when the store takes it, zstd in
/// one call (level 1, as the compression layer's "fastest"; the streaming
/// layer copies the text through its window in chunks, about twice the
/// work) with the frame's content checksum on.
#[derive(Debug, Clone)]
pub struct SealedAnswer {
    digest: String,
    /// The zstd frame, or the plain text when the store does not take zstd
    /// (the compression layer then handles it as any answer). Shared bytes:
    /// a cached page is served to many stores without a copy.
    body: Result<axum::body::Bytes, String>,
}

impl SealedAnswer {
    fn seal(json: String, zstd: bool) -> SealedAnswer {
        let digest = loja_protocol::digest::body_digest(json.as_bytes());
        let body = match zstd.then(|| compress_page(&json)) {
            Some(Ok(frame)) => Ok(frame.into()),
            // Compression fails only short of memory: send the text.
            Some(Err(_)) | None => Err(json),
        };
        SealedAnswer { digest, body }
    }

    /// Bytes it holds.
    fn len(&self) -> usize {
        match &self.body {
            Ok(b) => b.len(),
            Err(t) => t.len(),
        }
    }
}

impl IntoResponse for SealedAnswer {
    fn into_response(self) -> Response {
        let digest = HeaderValue::from_str(&self.digest)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let mut resp = match self.body {
            Ok(frame) => (
                [
                    (header::CONTENT_ENCODING, HeaderValue::from_static("zstd")),
                    (header::VARY, HeaderValue::from_static("accept-encoding")),
                ],
                frame,
            )
                .into_response(),
            Err(text) => text.into_response(),
        };
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(loja_protocol::DIGEST_HEADER, digest);
        resp
    }
}

/// Does the client take zstd (`Accept-Encoding: zstd`, not `zstd;q=0` or `q=0.0`)?
fn accepts_zstd(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            it.next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("zstd"))
                && !it.any(|p| {
                    p.split_once('=').is_some_and(|(k, q)| {
                        k.trim().eq_ignore_ascii_case("q")
                            && q.trim().parse::<f32>().ok() == Some(0.0)
                    })
                })
        })
}

/// A JSON answer as one zstd frame with its content checksum.
fn compress_page(json: &str) -> std::io::Result<Vec<u8>> {
    let mut z = zstd::bulk::Compressor::new(1)?;
    z.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    z.compress(json.as_bytes())
}

/// `GET /v1/stores/{store}/digests/{entity}?buckets=N`: what the store's
/// replica of the entity should hold, per key bucket (`crate::verify`).
async fn entity_digest(
    State(st): St,
    Path((store, entity)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let e = verifiable_entity(&entity)?;
    let buckets = buckets_param(&q)?;
    verify_answer(&st, store, &headers, move |conn, scope| {
        serde_json::to_string(&verify::entity_digest(conn, e, scope, buckets)?)
            .map_err(internal_json)
    })
    .await
}

/// `GET /v1/stores/{store}/digests/{entity}/rows?buckets=N&bucket=B`: the
/// rows of one bucket, for the store to repair it.
async fn bucket_rows(
    State(st): St,
    Path((store, entity)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let e = verifiable_entity(&entity)?;
    let buckets = buckets_param(&q)?;
    let bucket = q_u64(&q, "bucket")?.ok_or_else(|| bad_request("bucket", "bucket is required"))?;
    if bucket >= u64::from(buckets) {
        return Err(bad_request(
            "bucket",
            format!("bucket must be below buckets ({buckets})"),
        ));
    }
    verify_answer(&st, store, &headers, move |conn, scope| {
        serde_json::to_string(&verify::bucket_rows(
            conn,
            e,
            scope,
            buckets,
            bucket as u32,
        )?)
        .map_err(internal_json)
    })
    .await
}

/// Verify answers are built like feed pages: under a feed permit, in one
/// read snapshot, sealed with their digest.
async fn verify_answer(
    st: &Arc<AppState>,
    store: String,
    headers: &HeaderMap,
    build: impl FnOnce(&Connection, &Scope) -> Result<String, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let token = bearer(headers);
    let zstd = accepts_zstd(headers);
    let _permit = admitted(st).await?;
    let answer = db_read(st, move |conn, _| {
        let scope = check_store(conn, &store, token.as_deref())?;
        build(conn, &scope)
    })
    .await?;
    let sealed = blocking(move || Ok(SealedAnswer::seal(answer, zstd))).await?;
    Ok(sealed.into_response())
}

/// An entity a store can verify: a registry entity that is not secret
/// (the certificate is not compared, nor sent again).
fn verifiable_entity(name: &str) -> Result<&'static Entity, ApiError> {
    let e = entity_or_404(name)?;
    if e.secret {
        return Err(not_found(format!("{name} is not verified (secret entity)")));
    }
    Ok(e)
}

fn buckets_param(q: &HashMap<String, String>) -> Result<u32, ApiError> {
    let max = loja_protocol::digest::MAX_BUCKETS;
    match q_u64(q, "buckets")? {
        None => Err(bad_request("buckets", "buckets is required")),
        Some(n) if n == 0 || n > u64::from(max) => Err(bad_request(
            "buckets",
            format!("buckets must be between 1 and {max}"),
        )),
        Some(n) => Ok(n as u32),
    }
}

fn internal_json(e: serde_json::Error) -> ApiError {
    tracing::error!(error = %e, "cannot serialize an answer");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "cannot serialize the answer",
    )
}

impl From<verify::VerifyError> for ApiError {
    fn from(e: verify::VerifyError) -> Self {
        match e {
            verify::VerifyError::Sql(e) => e.into(),
            other => {
                tracing::error!(error = %other, "verify");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

async fn events(
    State(st): St,
    Path(store): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Events>, ApiError> {
    let token = bearer(&headers);
    let wait = q_u64(&q, "wait")?.unwrap_or(25).min(60);
    let mut after = q_u64(&q, "after")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let store2 = store.clone();
    let scope = store_read(&st, move |c, _| check_store(c, &store2, token.as_deref())).await?;
    let scope = Arc::new(scope);
    let mut head_rx = st.head.subscribe();
    let mut stop_rx = st.shutdown.subscribe();
    let own_wake = st.store_waker(&store);
    // Woken with nothing held back: a change that concerns none of this
    // store's rows is seen from the interval's summary, without a read.
    let mut woken = false;
    let mut held: Vec<(u64, i64)> = Vec::new();
    loop {
        let sent = *head_rx.borrow_and_update();
        let quiet = match after {
            Some(from) if woken && held.is_empty() && sent > from => {
                !concerns(&st, &scope, from, sent).await?
            }
            _ => false,
        };
        let scope2 = scope.clone();
        let (head, ready, now_held) = if quiet {
            (sent, Vec::new(), Vec::new())
        } else {
            store_read(&st, move |conn, st| {
                let head = head_seq(conn)?;
                let from = after.unwrap_or(head);
                let now = now_unix();
                let mut ready = Vec::new();
                let mut held: Vec<(u64, i64)> = Vec::new();
                let heads = st.entity_heads(conn, head)?;
                for e in loja_protocol::ENTITIES {
                    // Nothing of the entity after `from`: no query.
                    if heads.get(e.name).is_some_and(|h| *h <= from) {
                        continue;
                    }
                    if let Some(first) = feed::first_change(conn, e, &scope2, from)? {
                        match avail::held_until(conn, Some(&st.pending), &scope2, e, None, now)? {
                            Some(until) => held.push((first, until)),
                            None => ready.push(e.name.to_owned()),
                        }
                    }
                }
                Ok((head, ready, held))
            })
            .await?
        };
        held = now_held;
        if after.is_some_and(|a| a > head) {
            // The store is ahead of this central (a corrupted answer it took,
            // or this central restored from a backup): never echo a seq above
            // the head; the store starts again from it and catches up.
            tracing::debug!(store = %store, after = ?after, head, "events: the store's position is ahead of the head; answered with the head");
            return Ok(Json(Events {
                seq: head,
                entities: Vec::new(),
                head: Some(head),
            }));
        }
        let from = *after.get_or_insert(head);
        if !ready.is_empty() {
            // Held entities' changes below head are left to the store's schedule.
            return Ok(Json(Events {
                seq: head,
                entities: ready,
                head: Some(head),
            }));
        }
        // Held changes stay ahead of the seq handed back, so a later call
        // reports them once their window opens.
        let resume = held
            .iter()
            .map(|(first, _)| first - 1)
            .min()
            .unwrap_or(head)
            .max(from);
        // Nothing for this store up to the head: wait from there.
        if held.is_empty() {
            after = Some(resume);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline || *stop_rx.borrow() {
            return Ok(Json(Events {
                seq: resume,
                entities: Vec::new(),
                head: Some(head),
            }));
        }
        let mut wake = deadline;
        if let Some(until) = held.iter().map(|(_, u)| *u).min() {
            let secs = (until - now_unix()).max(0) as u64;
            wake = wake.min(now + Duration::from_secs(secs) + Duration::from_millis(50));
        }
        tokio::select! {
            changed = head_rx.changed() => {
                if changed.is_err() {
                    return Ok(Json(Events { seq: resume, entities: Vec::new(), head: Some(head) }));
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop_rx.changed() => {}
            _ = own_wake.notified() => {}
        }
        woken = true;
    }
}

/// Does any change between `from` and `to` concern the store of `scope`?
/// From the interval's summary, read once for every poll (`changes`).
async fn concerns(st: &Arc<AppState>, scope: &Scope, from: u64, to: u64) -> Result<bool, ApiError> {
    let st2 = st.clone();
    let summary = st
        .changes
        .between(from, to, |a, b| {
            let st2 = st2.clone();
            async move {
                blocking(move || {
                    st2.db
                        .read(|c| Ok::<_, ApiError>(crate::changes::summary(c, a, b)?))
                })
                .await
            }
        })
        .await?;
    Ok(summary.iter().flat_map(|s| s.iter()).any(|(entity, node)| {
        // An entity this build does not know: let the database path say.
        entity_named(entity).is_none_or(|e| scope.relevant(e, node))
    }))
}

async fn post_documents(
    State(st): St,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<loja_protocol::BatchAck>, ApiError> {
    let token = bearer(&headers);
    let started = Instant::now();
    let store2 = store.clone();
    db_read(&st, move |c, _| check_store(c, &store2, token.as_deref())).await?;
    let batch: DocumentBatch = json_body(&body)?;
    let store2 = store.clone();
    let (ack, head, own_only) = db_write_grouped(&st, move |tx| {
        let before = head_seq(tx)?;
        let ack = documents::accept(tx, &store2, &batch)?;
        let head = head_seq(tx)?;
        // Rows only this store holds (its own stock): only its poll wakes.
        let own_only = crate::changes::summary(tx, before, head)?
            .iter()
            .all(|(entity, node)| {
                node == &store2
                    && entity_named(entity).is_some_and(|e| e.resolution == Resolution::Own)
            });
        Ok((ack, head, own_only))
    })
    .await?;
    // Stock the central applied from these documents goes back to the store:
    // to its poll alone when no other store's view changed (a chain's
    // uploads would otherwise wake every poll of the chain each time).
    if own_only {
        st.wake_store(&store);
    } else {
        st.advance(head);
    }
    let count = |s: loja_protocol::AckStatus| ack.acks.iter().filter(|a| a.status == s).count();
    tracing::info!(
        store = %store,
        documents = ack.acks.len(),
        accepted = count(loja_protocol::AckStatus::Accepted),
        duplicate = count(loja_protocol::AckStatus::Duplicate),
        rejected = count(loja_protocol::AckStatus::Rejected),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "documents"
    );
    Ok(Json(ack))
}

async fn import_lines(
    State(st): St,
    Path(entity): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let e = entity_or_404(&entity)?;
    let started = Instant::now();
    let st2 = st.clone();
    let applied = blocking(move || {
        let changes = import::parse(e, &body)?;
        Ok(st2.db.write(|tx| import::apply(tx, e, &changes))?)
    })
    .await;
    let applied = match applied {
        Ok(a) => a,
        Err(err) => {
            tracing::info!(entity = e.name, status = err.status.as_u16(), error = %err.body.error.message, "import refused");
            return Err(err);
        }
    };
    if applied.changed > 0 {
        st.advance(applied.last_seq);
    }
    tracing::info!(
        entity = e.name,
        rows = applied.applied,
        changed = applied.changed,
        last_seq = applied.last_seq,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "import"
    );
    Ok(Json(
        json!({"applied": applied.applied, "changed": applied.changed, "last_seq": applied.last_seq}),
    ))
}

async fn add_node(State(st): St, body: Bytes) -> Result<Json<nodes::NodeInfo>, ApiError> {
    let node: NewNode = json_body(&body)?;
    let info = db_write(&st, move |tx| Ok(nodes::upsert_node(tx, &node)?)).await?;
    tracing::info!(node = %info.id, kind = info.kind.as_str(), "node saved");
    // A move re-resolves the stores under the node at new sequences: wake
    // their long-polls (the new head; nothing changed otherwise).
    let head = db_read(&st, |c, _| Ok(head_seq(c)?)).await?;
    st.advance(head);
    Ok(Json(info))
}

async fn list_nodes(State(st): St) -> Result<Json<Value>, ApiError> {
    let list = db_read(&st, |c, _| Ok(nodes::list(c)?)).await?;
    Ok(Json(json!({ "nodes": list })))
}

/// The level `?node=` names (default: the master, the whole chain), which must exist.
async fn level(st: &Arc<AppState>, q: &HashMap<String, String>) -> Result<String, ApiError> {
    let node = q
        .get("node")
        .cloned()
        .unwrap_or_else(|| nodes::MASTER.to_owned());
    known_level(st, node).await
}

async fn known_level(st: &Arc<AppState>, node: String) -> Result<String, ApiError> {
    let n = node.clone();
    let kind = db_read(st, move |c, _| Ok(nodes::kind_of(c, &n)?)).await?;
    match kind {
        Some(_) => Ok(node),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("no such node {node}"),
        )
        .field("node")),
    }
}

async fn list_availability(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let node = level(&st, &q).await?;
    let n = node.clone();
    let list = db_read(&st, move |c, _| Ok(avail::list_minutes(c, &n)?)).await?;
    Ok(Json(json!({ "node": node, "availability": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Minutes {
    minutes: u32,
    /// The level: the master (default: the whole chain), a central or a store.
    #[serde(default)]
    node: Option<String>,
}

async fn set_availability(
    State(st): St,
    Path(entity): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let e = entity_or_404(&entity)?;
    let Minutes { minutes, node } = json_body(&body)?;
    let node = known_level(&st, node.unwrap_or_else(|| nodes::MASTER.to_owned())).await?;
    let n = node.clone();
    db_write(&st, move |tx| Ok(avail::set_minutes(tx, &n, e, minutes)?)).await?;
    tracing::info!(entity = e.name, minutes, node = %node, "availability set");
    // A shorter window may release held stores now.
    st.poke();
    Ok(Json(
        json!({"entity": e.name, "minutes": minutes, "node": node}),
    ))
}

async fn unset_availability(
    State(st): St,
    Path(entity): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let e = entity_or_404(&entity)?;
    let node = level(&st, &q).await?;
    let n = node.clone();
    let (removed, (minutes, set_at)) = db_write(&st, move |tx| {
        let removed = avail::unset_minutes(tx, &n, e)?;
        Ok((removed, avail::resolved(tx, &n, e)?))
    })
    .await?;
    tracing::info!(entity = e.name, node = %node, removed, "availability setting removed");
    st.poke();
    Ok(Json(
        json!({"entity": e.name, "node": node, "removed": removed, "minutes": minutes, "set_at": set_at}),
    ))
}

async fn require_store(st: &Arc<AppState>, store: &str) -> Result<(), ApiError> {
    let store2 = store.to_owned();
    let kind = db_read(st, move |c, _| Ok(nodes::kind_of(c, &store2)?)).await?;
    match kind {
        Some(NodeKind::Store) => Ok(()),
        _ => Err(not_found(format!("no such store {store}"))),
    }
}

async fn list_downloads(State(st): St, Path(store): Path<String>) -> Result<Json<Value>, ApiError> {
    require_store(&st, &store).await?;
    let store2 = store.clone();
    let list = db_read(&st, move |c, st| {
        Ok(avail::list_downloads(c, Some(&st.pending), &store2)?)
    })
    .await?;
    Ok(Json(json!({"store": store, "downloads": list})))
}

async fn reset_downloads(
    State(st): St,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reset(st, store, None).await
}

async fn reset_download(
    State(st): St,
    Path((store, entity)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    reset(st, store, Some(entity)).await
}

async fn reset(
    st: Arc<AppState>,
    store: String,
    entity: Option<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = &entity {
        entity_or_404(e)?;
    }
    require_store(&st, &store).await?;
    let st2 = st.clone();
    let (s, e) = (store.clone(), entity.clone());
    let removed = blocking(move || {
        st2.pending.forget(&s, e.as_deref());
        st2.db
            .write(|tx| Ok::<_, ApiError>(avail::reset_download(tx, &s, e.as_deref())?))
    })
    .await?;
    st.poke();
    tracing::info!(store = %store, entity = entity.as_deref().unwrap_or("*"), "downloads reset");
    Ok(Json(
        json!({"store": store, "entity": entity, "reset": removed}),
    ))
}

async fn list_exceptions(State(st): St) -> Result<Json<Value>, ApiError> {
    let list = db_read(&st, |c, _| Ok(avail::list_exceptions(c)?)).await?;
    Ok(Json(json!({ "exceptions": list })))
}

async fn add_exception(State(st): St, Path(store): Path<String>) -> Result<Json<Value>, ApiError> {
    require_store(&st, &store).await?;
    let s = store.clone();
    db_write(&st, move |tx| Ok(avail::add_exception(tx, &s)?)).await?;
    st.poke();
    tracing::info!(store = %store, "exception added");
    Ok(Json(json!({"store": store, "exception": true})))
}

async fn remove_exception(
    State(st): St,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = store.clone();
    let removed = db_write(&st, move |tx| Ok(avail::remove_exception(tx, &s)?)).await?;
    tracing::info!(store = %store, "exception removed");
    Ok(Json(
        json!({"store": store, "exception": false, "removed": removed}),
    ))
}

async fn collect_documents(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let after = q_u64(&q, "after")?.unwrap_or(0);
    let limit = q_u64(&q, "limit")?.unwrap_or(documents::DEFAULT_LIMIT);
    let text = db_read(&st, move |c, _| Ok(documents::collect(c, after, limit)?)).await?;
    Ok(json_text(text))
}

/// The ERP's verdicts on the documents it took: `{"verdicts":[{"id","status","code","message"}]}`.
async fn post_verdicts(State(st): St, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: loja_protocol::verdict::Verdicts = json_body(&body)?;
    let recorded = db_write(&st, move |tx| Ok(crate::verdicts::record(tx, &v.verdicts)?)).await?;
    tracing::info!(
        verdicts = recorded.len(),
        recorded = recorded.iter().filter(|r| r.outcome == "recorded").count(),
        unknown = recorded.iter().filter(|r| r.outcome == "unknown").count(),
        "erp verdicts"
    );
    Ok(Json(json!({ "verdicts": recorded })))
}

/// The operator console's view of the server (`console::Host`).
impl crate::console::Host for AppState {
    fn db(&self) -> &Db {
        &self.db
    }
    fn pending(&self) -> Option<&Pending> {
        Some(&self.pending)
    }
    fn moved(&self, head: u64) {
        wake(self, head);
    }
    fn traffic(&self) -> Option<&crate::traffic::Traffic> {
        Some(&self.traffic)
    }
}

/// Wakes the stores' long-polls when a write moved the head (the stores'
/// `omni_orders` rows it changed).
fn wake(st: &AppState, head: u64) {
    st.advance(head);
}

/// A channel's write of an order: `{"outcome": "created" | "unchanged" |
/// "changed", "order": view}` (`omni::view`).
fn written(st: &AppState, id: &str, what: &str, w: omni::Written, head: u64) -> Json<Value> {
    wake(st, head);
    tracing::info!(order = %id, outcome = w.outcome, "omni order {what}");
    Json(json!({"outcome": w.outcome, "order": w.order}))
}

/// `POST /v1/admin/omni/orders`: a channel's new order (`omni::NewOrder`):
/// 201 created, 200 when the same order is there already, 409 when its id
/// holds another order, 422 naming a wrong field.
async fn create_order(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let new: loja_protocol::omni::NewOrder = json_body(&body)?;
    let id = new.id.clone();
    let (w, head) = db_write(&st, move |tx| Ok((omni::create(tx, new)?, head_seq(tx)?))).await?;
    let status = if w.outcome == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, written(&st, &id, "created", w, head)).into_response())
}

/// `GET /v1/admin/omni/orders?status=&store=&limit=`: `{"orders": [view]}`, newest first.
async fn list_orders(
    State(st): St,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = q_u64(&q, "limit")?.unwrap_or(omni::DEFAULT_LIMIT);
    let status = q.get("status").filter(|s| !s.is_empty()).cloned();
    let store = q.get("store").filter(|s| !s.is_empty()).cloned();
    let orders = db_read(&st, move |c, _| {
        Ok(omni::list(c, status.as_deref(), store.as_deref(), limit)?)
    })
    .await?;
    Ok(Json(json!({ "orders": orders })))
}

/// `GET /v1/admin/omni/orders/{id}`: `{"order": view}`.
async fn get_order(State(st): St, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id2 = id.clone();
    let order = db_read(&st, move |c, _| Ok(omni::get(c, &id2)?)).await?;
    let order = order.ok_or_else(|| not_found(format!("no such order {id}")))?;
    Ok(Json(json!({ "order": order })))
}

/// The body of a POST that may be empty (`{}`).
fn json_or_empty<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        json_body(b"{}")
    } else {
        json_body(body)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelOrder {
    /// The lines; none: every line.
    #[serde(default)]
    lines: Option<Vec<String>>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/admin/omni/orders/{id}/cancel` with `{"lines": [...]?, "reason": "..."?}`.
async fn cancel_order(
    State(st): St,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let CancelOrder { lines, reason } = json_or_empty(&body)?;
    let id2 = id.clone();
    let (w, head) = db_write(&st, move |tx| {
        Ok((omni::cancel(tx, &id2, lines, reason)?, head_seq(tx)?))
    })
    .await?;
    Ok(written(&st, &id, "cancelled", w, head))
}

/// A field that must be present, and may be null.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignOrder {
    /// The lines; none: every line that waits for a store.
    #[serde(default)]
    lines: Option<Vec<String>>,
    /// A store, or null: back to the channel.
    #[serde(default, deserialize_with = "present")]
    store: Option<Option<String>>,
}

/// `POST /v1/admin/omni/orders/{id}/assign` with `{"lines": [...]?, "store": "loja-b" | null}`.
async fn assign_order(
    State(st): St,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let AssignOrder { lines, store } = json_or_empty(&body)?;
    let store = store.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "store: is required: a store, or null to give the lines back to the channel",
        )
        .field("store")
    })?;
    let id2 = id.clone();
    let (w, head) = db_write(&st, move |tx| {
        Ok((omni::assign(tx, &id2, lines, store)?, head_seq(tx)?))
    })
    .await?;
    Ok(written(&st, &id, "assigned", w, head))
}

/// A store reads the ERP's verdicts on its documents.
async fn store_verdicts(
    State(st): St,
    Path(store): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<loja_protocol::verdict::VerdictPage>, ApiError> {
    let token = bearer(&headers);
    let after = q_u64(&q, "after")?.unwrap_or(0);
    let limit = q_u64(&q, "limit")?.unwrap_or(1_000);
    let page = db_read(&st, move |c, _| {
        check_store(c, &store, token.as_deref())?;
        Ok(crate::verdicts::for_store(c, &store, after, limit)?)
    })
    .await?;
    Ok(Json(page))
}

/// `GET /v1/stores/{store}/omni/orders?id=ID` or `?number=N`: `{"orders":
/// [Order]}`, whole (every store's lines), for a store of the chain that
/// takes back goods of an order it may not have delivered. Sealed as a
/// verify answer: the store checks a refund against it.
async fn store_omni_orders(
    State(st): St,
    Path(store): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = q.get("id").cloned();
    let number = q.get("number").cloned();
    verify_answer(&st, store, &headers, move |conn, _| {
        let orders = omni::find(conn, id.as_deref(), number.as_deref())?;
        serde_json::to_string(&json!({ "orders": orders })).map_err(internal_json)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path of every `.route(` call of this file above the tests: every
    /// route `router` serves, as written (a route added anywhere in the
    /// file is seen here without editing the tests). Plus the release
    /// routes `router` merges from `releases.rs`.
    fn routes_in_source() -> Vec<String> {
        let code = |src: &'static str| &src[..src.find("#[cfg(test)]").expect("the tests module")];
        let src = [
            code(include_str!("http.rs")),
            code(include_str!("releases.rs")),
        ]
        .concat();
        src.split(".route(")
            .skip(1)
            .map(|call| {
                let path = call
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|rest| rest.split_once('"'))
                    .map(|(path, _)| path);
                path.unwrap_or_else(|| panic!("a route without a literal path: {call:.60}"))
                    .to_owned()
            })
            .collect()
    }

    /// `path` with its parameters filled in (`{store}` a store that exists,
    /// `{entity}` an entity of the registry).
    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|seg| match seg {
                "{store}" => "a",
                "{entity}" => "prices",
                s if s.starts_with('{') => "x",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    const METHODS: [reqwest::Method; 5] = [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ];

    /// A central on a free port, with store `a`, and `admin_token`.
    async fn serve(admin_token: &str) -> (String, tempfile::TempDir) {
        use crate::nodes::{NewNode, NodeKind, upsert_node};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        db.write(|tx| {
            let n = NewNode {
                id: "a".into(),
                parent: "master".into(),
                kind: NodeKind::Store,
                token: Some("token-aaaa".into()),
            };
            upsert_node(tx, &n).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let app = router(Arc::new(AppState::new(db, admin_token, 0)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, dir)
    }

    /// Status, `WWW-Authenticate` and JSON body (`Null` when not JSON).
    async fn ask(
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
    ) -> (u16, Option<String>, Value) {
        let mut req = client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.bytes().await.unwrap();
        (
            status,
            challenge,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// Every route under `/v1/admin` is behind `admin_auth`, and no other
    /// route is: walked from this file's source (`routes_in_source`), so an
    /// admin route added outside `admin_router`, or a store route added in
    /// it, fails here. Every method an admin route serves answers the
    /// layer's 401 without the admin token, with a wrong one, and on a
    /// central without one; a method it does not serve answers 405 whatever
    /// the token.
    #[tokio::test]
    async fn every_admin_route_is_refused_without_the_admin_token() {
        crate::install_crypto_provider();
        let client = reqwest::Client::new();
        let refused = |message: &str| {
            (
                401,
                Some("Bearer".to_owned()),
                serde_json::to_value(ErrorBody::new("unauthorized", message)).unwrap(),
            )
        };
        let disabled = refused("admin endpoints are disabled: the server has no admin token");
        // A central with an admin token, and one without (admin disabled).
        let (url, _dir) = serve("admin-secret").await;
        let (no_admin_url, _dir2) = serve("").await;
        let routes = routes_in_source();
        let is_admin = |path: &str| path.starts_with("/v1/admin/");
        assert!(
            routes.iter().filter(|p| is_admin(p)).count() >= 9,
            "{routes:?}"
        );
        assert!(routes.iter().any(|p| !is_admin(p)), "{routes:?}");
        for path in &routes {
            let here = format!("{url}{}", concrete(path));
            let there = format!("{no_admin_url}{}", concrete(path));
            let mut served = 0;
            for m in METHODS {
                let with_admin = ask(&client, m.clone(), &here, Some("admin-secret")).await;
                assert_ne!(
                    with_admin.2["error"]["message"], "no such endpoint",
                    "{m} {path}: not a route"
                );
                if with_admin.0 == 405 {
                    // Not served: 405 whatever the token.
                    for (url, token) in [(&here, None), (&here, Some("wrong")), (&there, None)] {
                        let a = ask(&client, m.clone(), url, token).await;
                        assert_eq!(a.0, 405, "{m} {path} {token:?}: {a:?}");
                    }
                    continue;
                }
                served += 1;
                if is_admin(path) {
                    assert_ne!(with_admin.0, 401, "{m} {path}: the admin token refused");
                    let none = ask(&client, m.clone(), &here, None).await;
                    assert_eq!(none, refused("missing bearer token"), "{m} {path}");
                    let wrong = ask(&client, m.clone(), &here, Some("wrong")).await;
                    assert_eq!(wrong, refused("wrong admin token"), "{m} {path}");
                    for token in [None, Some("wrong"), Some("admin-secret")] {
                        let a = ask(&client, m.clone(), &there, token).await;
                        assert_eq!(a, disabled, "{m} {path} {token:?}");
                    }
                } else {
                    for token in [None, Some("wrong"), Some("admin-secret")] {
                        let a = ask(&client, m.clone(), &there, token).await;
                        assert_ne!(a, disabled, "{m} {path} {token:?}: behind the admin layer");
                    }
                }
            }
            assert!(served > 0, "{path}: serves no method");
        }
    }

    /// The omni order routes: create (201, then 200 for the same order, 409
    /// for another under its id, 422 naming a field), read, list, cancel and
    /// assign, each answer as docs/protocol.md shows it.
    #[tokio::test]
    async fn omni_order_routes_answer_as_documented() {
        crate::install_crypto_provider();
        let (url, _dir) = serve("admin-secret").await;
        let client = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
            let mut req = client
                .request(method, format!("{url}{path}"))
                .bearer_auth("admin-secret");
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let order = json!({"id": "o1", "number": "1001", "channel": "site", "delivery": "pickup",
            "paid": true, "created_at": "2026-11-30T10:00:00Z", "store": "a",
            "lines": [{"line_id": "1", "product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000}]});
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders",
            Some(order.clone()),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["outcome"], "created");
        assert_eq!(body["order"]["status"], "open");
        assert_eq!(body["order"]["lines"][0]["store"], "a");
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders",
            Some(order.clone()),
        )
        .await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")));
        let mut other = order.clone();
        other["number"] = json!("1002");
        let (status, body) =
            call(reqwest::Method::POST, "/v1/admin/omni/orders", Some(other)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("id_taken")),
            "{body}"
        );
        let mut wrong = order.clone();
        wrong["id"] = json!("o2");
        wrong["lines"][0]["total"] = json!(999);
        let (status, body) =
            call(reqwest::Method::POST, "/v1/admin/omni/orders", Some(wrong)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "lines[0].total");
        let (status, body) = call(reqwest::Method::GET, "/v1/admin/omni/orders/o1", None).await;
        assert_eq!((status, body["order"]["id"].as_str()), (200, Some("o1")));
        let (status, body) = call(reqwest::Method::GET, "/v1/admin/omni/orders/o9", None).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (404, Some("no such order o9"))
        );
        let (status, body) = call(
            reqwest::Method::GET,
            "/v1/admin/omni/orders?status=open&store=a",
            None,
        )
        .await;
        assert_eq!(
            (status, body["orders"].as_array().map(Vec::len)),
            (200, Some(1)),
            "{body}"
        );
        let (status, body) = call(
            reqwest::Method::GET,
            "/v1/admin/omni/orders?status=done",
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("status"))
        );
        // assign needs `store`, present (null: back to the channel).
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders/o1/assign",
            Some(json!({})),
        )
        .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("store"))
        );
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders/o1/assign",
            Some(json!({"store": null})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["order"]["lines"][0]["state"], "rejected");
        assert_eq!(body["order"]["lines"][0]["store"], Value::Null);
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders/o1/assign",
            Some(json!({"lines": ["1"], "store": "a"})),
        )
        .await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("changed")),
            "{body}"
        );
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders/o1/cancel",
            Some(json!({"reason": "CLIENTE"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["order"]["status"], "cancelled");
        let (status, body) = call(
            reqwest::Method::POST,
            "/v1/admin/omni/orders/o1/assign",
            Some(json!({"store": "a"})),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("invalid_state")),
            "{body}"
        );
    }

    #[test]
    fn zstd_is_sent_only_to_clients_that_take_it() {
        let takes = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_zstd(&h)
        };
        assert!(takes("zstd"));
        assert!(takes("gzip, ZSTD;q=0.5"));
        assert!(!takes("gzip"));
        assert!(!takes("zstd;q=0"));
        assert!(!takes("gzip, zstd; q=0.0"));
        assert!(!takes("zstd; q = 0"));
        assert!(!takes("zstd;Q=0.000"));
        assert!(!accepts_zstd(&HeaderMap::new()));
    }

    /// The events answer never carries a seq above the central's head, and
    /// states the head: an `after` above it (a store that took a corrupted
    /// answer, or this central restored from a backup) is answered at once
    /// with the head, never echoed back.
    #[tokio::test]
    async fn events_never_answer_a_seq_above_the_head() {
        use crate::import::{Change, apply};
        use crate::nodes::{NewNode, NodeKind, upsert_node};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let prices = entity_named("prices").unwrap();
        db.write(|tx| {
            let n = NewNode {
                id: "a".into(),
                parent: "master".into(),
                kind: NodeKind::Store,
                token: Some("token-aaaa".into()),
            };
            upsert_node(tx, &n).unwrap();
            let changes: Vec<Change> = (1..=3)
                .map(|i| Change {
                    line: i,
                    node: Some("master".into()),
                    public: Some(true),
                    op: loja_protocol::Op::Upsert,
                    row: serde_json::json!({"product_code": i.to_string(), "price_list": "base", "price": 100})
                        .as_object()
                        .cloned()
                        .unwrap(),
                })
                .collect();
            apply(tx, prices, &changes).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let head = db.read(|c| Ok::<_, DbError>(head_seq(c)?)).unwrap();
        assert!(head >= 3);
        let st = Arc::new(AppState::new(db, "", head));
        let ask = |after: Option<u64>| {
            let st = st.clone();
            async move {
                let mut q = HashMap::from([("wait".to_owned(), "0".to_owned())]);
                if let Some(a) = after {
                    q.insert("after".into(), a.to_string());
                }
                let mut h = HeaderMap::new();
                h.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_static("Bearer token-aaaa"),
                );
                let started = std::time::Instant::now();
                let Json(ev) = events(State(st), Path("a".to_owned()), Query(q), h)
                    .await
                    .unwrap();
                assert!(started.elapsed() < Duration::from_secs(5));
                ev
            }
        };
        for after in [
            None,
            Some(0),
            Some(1),
            Some(head),
            Some(head + 1),
            Some(head * 10 + 7),
            Some(u64::MAX),
        ] {
            let ev = ask(after).await;
            assert!(
                ev.seq <= head,
                "after {after:?}: seq {} above the head {head}",
                ev.seq
            );
            assert_eq!(ev.head, Some(head), "after {after:?}");
        }
        // Behind the head: the changes are reported, and seq is the head.
        let ev = ask(Some(0)).await;
        assert_eq!(ev.seq, head);
        assert_eq!(ev.entities, vec!["prices".to_owned()]);
        // Ahead of the head: the head, with nothing to report.
        let ev = ask(Some(head + 1_000_000)).await;
        assert_eq!((ev.seq, ev.entities.len()), (head, 0));
    }
}
