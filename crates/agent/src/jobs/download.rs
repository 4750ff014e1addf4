//! The download job: one generic job for every registry entity.
//!
//! Pages through the entity's feed after the stored watermark until the
//! central says `more: false`. Each page is applied with its watermark in
//! one transaction (`Catalog::apply_typed_page`) and archived as a ticket
//! with the bytes as received. A page is parsed straight into typed rows by
//! the registry (`TypedPage::parse`, no JSON map per row) and its
//! decompressed text is dropped as soon as it is parsed. While one page applies the next is fetched and parsed
//! (a two-stage pipeline with a one-page channel, plus the process-wide
//! page permits), so a first full load keeps the network, the parser and
//! SQLite busy at once without holding more than a few pages in memory.
//!
//! A page that fails to decompress, match its `Loja-Digest` (the central's
//! hash of the text it built), parse or validate is rejected whole: a
//! Failed ticket keeps its payload and the error, the watermark stays, the
//! run ends Failed (the scheduler retries with backoff).
//!
//! A page whose start the stored watermark has passed is not a fault: another
//! writer of the same replica (`lojad sync` beside the daemon) applied it
//! first. Nothing of it is applied or archived, and the run goes on from the
//! stored watermark (a bounded number of times).

use std::time::Instant;

use loja_protocol::{CheckedPage, Entity, PageError, TypedPage, Watermark};
use loja_replica::{NewTicket, Outcome, ReplicaError, TicketKind, TicketStatus};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{JobCtx, JobResult};
use crate::central::{CentralError, Encoding, RawResponse};
use crate::runtime::{blocking, lock};

/// What the fetch stage hands the apply stage, in feed order.
enum Fetched {
    Page {
        page: CheckedPage,
        raw: RawResponse,
        fetch_ms: u64,
        _permit: OwnedSemaphorePermit,
    },
    /// The central's availability window holds this store back.
    Held {
        page: CheckedPage,
        raw: RawResponse,
        fetch_ms: u64,
    },
    /// The page could not be decompressed, parsed or validated: rejected whole.
    Undecodable {
        after: u64,
        raw: RawResponse,
        error: String,
        fetch_ms: u64,
    },
    /// No answer (transport) or an error status.
    Error {
        after: u64,
        url: String,
        error: CentralError,
        fetch_ms: u64,
    },
}

pub async fn run(ctx: &JobCtx, entity: &'static Entity) -> JobResult {
    let index = loja_protocol::ENTITIES
        .iter()
        .position(|e| e.name == entity.name);
    let _one_at_a_time = match index.and_then(|i| ctx.state.downloading.get(i)) {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    let mut rows = 0u64;
    for _ in 0..=OVERTAKEN_RETRIES {
        let catalog = ctx.state.catalog.clone();
        let start = match blocking(move || lock(&catalog).watermark(entity)).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return JobResult::failed(rows, format!("reading the watermark: {e}")),
            Err(e) => return JobResult::failed(rows, e),
        };
        match pass(ctx, entity, start).await {
            Pass::Done(mut r) => {
                r.rows += rows;
                return r;
            }
            Pass::Overtaken { rows: n } => rows += n,
        }
    }
    JobResult::failed(
        rows,
        format!(
            "another writer kept applying {} pages first ({} tries); the next run goes on",
            entity.name,
            OVERTAKEN_RETRIES + 1
        ),
    )
}

/// How many times a run starts again from the stored watermark when
/// another writer of the same replica (a `lojad sync` beside the daemon,
/// or the daemon beside it) applied the pages it had fetched first. Each
/// time the watermark moved up (the other writer made progress), so this
/// only bounds a feed that keeps growing while writers race over it.
const OVERTAKEN_RETRIES: usize = 64;

/// How one pass over the feed, from one stored watermark, ended.
enum Pass {
    Done(JobResult),
    /// The stored watermark moved past the page's start under this pass:
    /// nothing of the page was applied, and the rows it stands for are in
    /// the replica already. `rows` counts what this pass applied before.
    Overtaken {
        rows: u64,
    },
}

async fn pass(ctx: &JobCtx, entity: &'static Entity, start: Watermark) -> Pass {
    let (tx, mut rx) = mpsc::channel::<Fetched>(1);
    let fetcher = tokio::spawn(fetch_loop(ctx.clone(), entity, start, tx));
    let mut stop = ctx.stop.clone();
    let mut rows = 0u64;
    let mut pages = 0u64;
    let mut result = None;
    let mut overtaken = false;
    loop {
        let fetched = tokio::select! {
            f = rx.recv() => f,
            _ = crate::runtime::stopped(&mut stop) => None,
        };
        let Some(fetched) = fetched else { break };
        match fetched {
            Fetched::Page {
                page,
                raw,
                fetch_ms,
                _permit,
            } => match apply(ctx, entity, page, raw, fetch_ms).await {
                Ok(n) => {
                    rows += n;
                    pages += 1;
                }
                Err(Refused::Overtaken(why)) => {
                    tracing::debug!(entity = entity.name, %why, "overtaken: fetching again");
                    overtaken = true;
                    break;
                }
                Err(Refused::Failed(e)) => {
                    result = Some(JobResult::failed(rows, e));
                    break;
                }
            },
            Fetched::Held {
                page,
                raw,
                fetch_ms,
            } => {
                let until = page.held_until.clone().unwrap_or_default();
                ticket(
                    ctx,
                    entity,
                    page_ticket(entity, &page, raw, fetch_ms, TicketStatus::Ok, None),
                )
                .await;
                result = Some(JobResult {
                    rows,
                    outcome: Outcome::Held,
                    message: Some(format!("held by the central until {until}")),
                });
                break;
            }
            Fetched::Undecodable {
                after,
                raw,
                error,
                fetch_ms,
            } => {
                let t = failed_ticket(
                    entity,
                    after,
                    Some(raw.status),
                    raw.url.clone(),
                    raw.bytes,
                    error.clone(),
                    fetch_ms,
                );
                ticket(ctx, entity, t).await;
                result = Some(JobResult::failed(
                    rows,
                    format!("page after {after} rejected: {error}"),
                ));
                break;
            }
            Fetched::Error {
                after,
                url,
                error,
                fetch_ms,
            } => {
                let (http_status, response) = match &error {
                    CentralError::Status { status, body, .. } => (Some(*status), body.clone()),
                    _ => (None, Vec::new()),
                };
                let t = failed_ticket(
                    entity,
                    after,
                    http_status,
                    url,
                    response,
                    error.to_string(),
                    fetch_ms,
                );
                ticket(ctx, entity, t).await;
                result = Some(JobResult::failed(rows, error.to_string()));
                break;
            }
        }
    }
    drop(rx);
    fetcher.abort();
    let _ = fetcher.await;
    if overtaken {
        return Pass::Overtaken { rows };
    }
    Pass::Done(result.unwrap_or_else(|| {
        let mut r = JobResult::ok(rows);
        if ctx.stopping() {
            r.message = Some(format!(
                "stopped after {pages} pages (daemon shutting down)"
            ));
        }
        r
    }))
}

/// Why a page was not applied.
enum Refused {
    /// Another writer applied past the page's start first (the stored
    /// watermark is above it): fetch again from there.
    Overtaken(String),
    Failed(String),
}

/// Applies one page with its watermark and archives its ticket; returns the
/// rows it carried.
async fn apply(
    ctx: &JobCtx,
    entity: &'static Entity,
    page: CheckedPage,
    raw: RawResponse,
    fetch_ms: u64,
) -> Result<u64, Refused> {
    let catalog = ctx.state.catalog.clone();
    let journal = ctx.state.journal.clone();
    // At background priority: a POS lookup on the same core goes first.
    crate::priority::background("apply", move || {
        let t0 = Instant::now();
        let applied = lock(&catalog).apply_checked_page(entity, &page);
        let duration_ms = fetch_ms + t0.elapsed().as_millis() as u64;
        let (after, next) = (page.after.0, page.next.0);
        let outcome = match &applied {
            Ok(a) => Ok(a.upserts + a.deletes),
            Err(
                e @ ReplicaError::Page {
                    source: PageError::WrongStart { expected, found },
                    ..
                },
            ) if expected > found => Err(Refused::Overtaken(e.to_string())),
            Err(e @ ReplicaError::Page { .. }) => Err(Refused::Failed(format!(
                "page {after}..{next} rejected, watermark unchanged: {e}"
            ))),
            Err(e) => Err(Refused::Failed(format!(
                "applying page {after}..{next}: {e}"
            ))),
        };
        // An overtaken page is archived by the writer that applied it
        // first; a Failed ticket of it here would report a fault that is not.
        if !matches!(outcome, Err(Refused::Overtaken(_))) {
            let error = applied.as_ref().err().map(ToString::to_string);
            let status = match error {
                None => TicketStatus::Ok,
                Some(_) => TicketStatus::Failed,
            };
            let t = page_ticket(entity, &page, raw, duration_ms, status, error);
            // The rows are in the replica (or refused): free them before
            // the ticket is written.
            drop(page);
            if let Err(e) = lock(&journal).record_ticket(&t) {
                tracing::warn!(entity = entity.name, error = %e, "cannot archive a feed ticket");
            }
        }
        outcome
    })
    .await
    .map_err(Refused::Failed)?
}

/// The Failed ticket of a page after `after` that never applied (no answer,
/// an error status, or a body that did not decode or validate): what came
/// back is kept, the range stays open.
fn failed_ticket(
    entity: &Entity,
    after: u64,
    http_status: Option<u16>,
    url: String,
    response: Vec<u8>,
    error: String,
    fetch_ms: u64,
) -> NewTicket {
    NewTicket {
        kind: TicketKind::Feed,
        subject: entity.name.into(),
        range_from: Some(after),
        range_to: None,
        status: TicketStatus::Failed,
        http_status,
        request: url.into_bytes(),
        response,
        items: 0,
        error: Some(error),
        duration_ms: fetch_ms,
        secret: entity.secret,
    }
}

fn page_ticket(
    entity: &Entity,
    page: &TypedPage,
    raw: RawResponse,
    duration_ms: u64,
    status: TicketStatus,
    error: Option<String>,
) -> NewTicket {
    NewTicket {
        kind: TicketKind::Feed,
        subject: entity.name.into(),
        range_from: Some(page.after.0),
        range_to: Some(page.next.0),
        status,
        http_status: Some(raw.status),
        request: raw.url.clone().into_bytes(),
        response: ticket_payload(raw),
        items: page.items.len() as u64,
        error,
        duration_ms,
        secret: entity.secret,
    }
}

/// What a feed ticket archives of a decoded response: a zstd body as
/// received (moved, not copied; the journal keeps zstd payloads as they
/// are), plain text as is (the journal compresses it), a gzip body as its
/// text (so that `tickets show` reads it; gzip is only the fallback).
fn ticket_payload(raw: RawResponse) -> Vec<u8> {
    match raw.encoding {
        Encoding::Zstd | Encoding::Identity => raw.bytes,
        Encoding::Gzip => raw.decoded().unwrap_or(raw.bytes),
    }
}

async fn ticket(ctx: &JobCtx, entity: &Entity, t: NewTicket) {
    let journal = ctx.state.journal.clone();
    let name = entity.name;
    match blocking(move || lock(&journal).record_ticket(&t)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(entity = name, error = %e, "cannot archive a feed ticket"),
        Err(e) => tracing::warn!(entity = name, error = %e, "cannot archive a feed ticket"),
    }
}

/// The fetch stage: requests page after page (each under a permit), parses
/// it off the async workers and hands it on; stops at `more: false`, at the
/// first problem, or when the apply stage goes away.
async fn fetch_loop(
    ctx: JobCtx,
    entity: &'static Entity,
    start: Watermark,
    tx: mpsc::Sender<Fetched>,
) {
    let page_size = ctx.config().sync.page_size.max(1);
    let mut after = start.0;
    loop {
        let Ok(permit) = ctx.pages.clone().acquire_owned().await else {
            return;
        };
        if ctx.stopping() || tx.is_closed() {
            return;
        }
        let t0 = Instant::now();
        let raw = match ctx.central.feed_page(entity.name, after, page_size).await {
            Ok(raw) => raw,
            Err(error) => {
                let url = match &error {
                    CentralError::Transport { url, .. }
                    | CentralError::Status { url, .. }
                    | CentralError::Decode { url, .. } => url.clone(),
                    CentralError::Setup(_) => String::new(),
                };
                let fetch_ms = t0.elapsed().as_millis() as u64;
                let _ = tx
                    .send(Fetched::Error {
                        after,
                        url,
                        error,
                        fetch_ms,
                    })
                    .await;
                return;
            }
        };
        let (raw, parsed) = match blocking(move || {
            // The decompressed text lives only while it is parsed. The rows
            // are validated here, beside the parse, not under the writer.
            // Checked against the central's digest before a byte is parsed.
            let parsed = raw
                .decoded_checked()
                .map_err(|e| e.to_string())
                .and_then(|body| {
                    TypedPage::parse(entity, &body)
                        .map_err(|e| format!("page is not a valid feed page: {e}"))
                })
                .and_then(|page| {
                    page.checked(entity, Watermark(after))
                        .map_err(|e| format!("page is not valid for {}: {e}", entity.name))
                });
            (raw, parsed)
        })
        .await
        {
            Ok(x) => x,
            Err(_) => return,
        };
        let fetch_ms = t0.elapsed().as_millis() as u64;
        if parsed.is_ok()
            && let Some(scope) = raw.scope.clone()
        {
            note_scope(&ctx, scope).await;
        }
        let page = match parsed {
            Ok(p) => p,
            Err(error) => {
                let _ = tx
                    .send(Fetched::Undecodable {
                        after,
                        raw,
                        error,
                        fetch_ms,
                    })
                    .await;
                return;
            }
        };
        if page.held_until.is_some() {
            let _ = tx
                .send(Fetched::Held {
                    page,
                    raw,
                    fetch_ms,
                })
                .await;
            return;
        }
        // A page may carry no items and still advance (rows this store does not
        // see); `more` with no progress would loop forever, so it ends the run.
        let more = page.more && page.next.0 > after;
        let next = page.next.0;
        if tx
            .send(Fetched::Page {
                page,
                raw,
                fetch_ms,
                _permit: permit,
            })
            .await
            .is_err()
            || !more
        {
            return;
        }
        after = next;
    }
}

/// The central said where this store stands in the hierarchy (`Loja-Scope`,
/// on every feed page): when that changed, the replica's price list order
/// follows (the store's own list, its centrals' nearest first, then base).
async fn note_scope(ctx: &JobCtx, scope: String) {
    if lock(&ctx.state.price_scope).as_deref() == Some(scope.as_str()) {
        return;
    }
    let Some(nodes) = loja_protocol::parse_scope(&scope) else {
        tracing::warn!(scope = %scope, "the central sent a malformed Loja-Scope; price list order kept");
        return;
    };
    let catalog = ctx.state.catalog.clone();
    match blocking(move || lock(&catalog).set_price_scope(&nodes)).await {
        Ok(Ok(changed)) => {
            if changed {
                tracing::info!(scope = %scope, "price lists follow this store's place in the hierarchy");
            }
            *lock(&ctx.state.price_scope) = Some(scope);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot store the price list order"),
        Err(e) => tracing::warn!(error = %e, "cannot store the price list order"),
    }
}
