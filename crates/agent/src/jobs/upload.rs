//! The upload job: drains the outbox to the central.
//!
//! Batches come from `Outbox::next_batch` in store_seq order, so a cash
//! register's documents never overtake each other, and each batch is
//! acknowledged per id (`record_acks`). A transient failure (no answer, 5xx,
//! 429, auth) leaves the batch pending (`record_failure`) and ends the run
//! Failed; the scheduler retries with capped exponential backoff and
//! jitter. A 4xx on the whole envelope (400, 413, 422) is bisected until the
//! offending documents are alone, and only those are parked: one bad
//! invoice never blocks the documents behind it.

use std::time::Instant;

use loja_protocol::{AckStatus, BatchAck, Document, DocumentAck, DocumentBatch};
use loja_replica::{AckSummary, NewTicket, TicketKind, TicketStatus};

use super::{JobCtx, JobResult};
use crate::central::{CentralError, status_error};
use crate::runtime::{blocking, lock};

/// About this many bytes of document bodies per batch.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

pub async fn run(ctx: &JobCtx) -> JobResult {
    let max_docs = (ctx.config().sync.upload_batch as usize).max(1);
    let mut total = AckSummary::default();
    // The first parked document's id and reason, for the run's message.
    let mut first_parked: Option<String> = None;
    let mut batches = 0u64;
    // The first document of a batch the central acknowledged none of.
    let mut unacked: Option<uuid::Uuid> = None;
    loop {
        if ctx.stopping() {
            break;
        }
        let batch = match ctx
            .state
            .intake
            .with_outbox(move |o| o.next_batch(max_docs, MAX_BATCH_BYTES))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return finish(total, Some(format!("reading the outbox: {e}"))),
            Err(e) => return finish(total, Some(e.to_string())),
        };
        if batch.is_empty() {
            break;
        }
        let offered = batch.len() as u64;
        let first = batch.first().map(|d| d.id);
        if unacked.is_some() && unacked == first {
            // The same documents again: the central acknowledges none.
            return finish(
                total,
                Some(format!(
                    "the central acknowledged none of {offered} documents"
                )),
            );
        }
        match deliver(ctx, batch).await {
            Ok(Delivered { acks: s, parked }) => {
                batches += 1;
                if first_parked.is_none() {
                    first_parked = parked;
                }
                total.delivered += s.delivered;
                total.duplicates += s.duplicates;
                total.parked += s.parked;
                // None recorded: another upload (the daemon's job and
                // `lojad upload` at once) may have recorded them first; the
                // next batch tells — the same documents again fail the run.
                unacked = (s.delivered + s.duplicates + s.parked == 0)
                    .then_some(first)
                    .flatten();
            }
            Err(e) => return finish(total, Some(e)),
        }
    }
    // The ERP's verdicts on what went up before: a rejection parks its
    // document here with the ERP's message.
    let erp_parked = match read_verdicts(ctx).await {
        Ok(n) => n,
        Err(e) => return finish(total, Some(format!("reading the ERP's verdicts: {e}"))),
    };
    let mut r = finish(total, None);
    if erp_parked > 0 {
        r.message = Some(format!(
            "{erp_parked} document(s) rejected by the ERP: parked (see `lojad status`)"
        ));
    }
    if total.parked > 0 || total.duplicates > 0 {
        r.message = Some(format!(
            "{batches} batches: {} delivered ({} already at the central), {} parked as rejected{}",
            total.delivered,
            total.duplicates,
            total.parked,
            first_parked
                .map(|p| format!(" (first: {p})"))
                .unwrap_or_default()
        ));
    }
    r
}

/// Pulls the verdicts after the outbox's cursor, page by page (bounded),
/// and records them; answers how many documents they parked. Each page
/// read (and each failed read) is a ticket of its own, failed when the ERP
/// rejected a document in it, so `lojad tickets list --failed` shows the
/// ERP's rejections next to the central's.
async fn read_verdicts(ctx: &JobCtx) -> Result<u64, String> {
    let mut parked = 0;
    for _ in 0..100 {
        let after = ctx
            .state
            .intake
            .with_outbox(|o| o.verdict_cursor())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let answer = ctx.central.verdicts(after).await;
        let mut t = NewTicket {
            kind: TicketKind::Verdicts,
            subject: "erp".into(),
            range_from: Some(after),
            range_to: None,
            status: TicketStatus::Ok,
            http_status: None,
            request: format!("GET verdicts?after={after}").into_bytes(),
            response: Vec::new(),
            items: 0,
            error: None,
            duration_ms: t0.elapsed().as_millis() as u64,
            secret: false,
        };
        let page = match answer {
            Ok(p) => p,
            // A central that does not relay verdicts (older than this lojad).
            Err(e) if e.status() == Some(404) => break,
            Err(e) => {
                t.status = TicketStatus::Failed;
                t.http_status = e.status();
                t.error = Some(e.to_string());
                archive(ctx, t).await;
                return Err(e.to_string());
            }
        };
        if page.verdicts.is_empty() {
            break;
        }
        t.http_status = Some(200);
        t.range_to = Some(page.next);
        t.items = page.verdicts.len() as u64;
        t.response = serde_json::to_vec(&page).unwrap_or_default();
        t.error = rejections(&page.verdicts);
        if t.error.is_some() {
            t.status = TicketStatus::Failed;
        }
        let ticket = archive(ctx, t).await;
        let more = page.more;
        parked += ctx
            .state
            .intake
            .with_outbox(move |o| o.record_verdicts(&page.verdicts, ticket))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if !more {
            break;
        }
    }
    Ok(parked)
}

/// The ERP's rejections in a page of verdicts, for its ticket: how many,
/// and the first few with their code and message.
fn rejections(verdicts: &[loja_protocol::verdict::StoreVerdict]) -> Option<String> {
    use loja_protocol::verdict::VerdictStatus;
    let rejected: Vec<String> = verdicts
        .iter()
        .filter(|v| v.verdict.status == VerdictStatus::Rejected)
        .map(|v| {
            format!(
                "{}{}: {}",
                v.verdict.id,
                v.verdict
                    .code
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                v.verdict.message.as_deref().unwrap_or("no message")
            )
        })
        .collect();
    if rejected.is_empty() {
        return None;
    }
    let shown = rejected
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let more = match rejected.len() {
        n if n > 3 => format!(" (and {} more: `lojad tickets show`)", n - 3),
        _ => String::new(),
    };
    Some(format!(
        "the ERP rejected {} document(s): {shown}{more}",
        rejected.len()
    ))
}

fn finish(total: AckSummary, error: Option<String>) -> JobResult {
    let rows = total.delivered + total.parked;
    match error {
        Some(e) => JobResult::failed(rows, e),
        None => JobResult::ok(rows),
    }
}

/// What posting one batch came to.
enum Posted {
    Acked(Delivered),
    /// The central refused the envelope as a whole (400/413/422).
    Refused {
        reason: String,
        ticket: Option<i64>,
    },
}

/// The acks recorded for some documents, and the first document parked
/// (`ID: reason`), if any.
#[derive(Default)]
struct Delivered {
    acks: AckSummary,
    parked: Option<String>,
}

impl Delivered {
    fn add(&mut self, other: Delivered) {
        self.acks.delivered += other.acks.delivered;
        self.acks.duplicates += other.acks.duplicates;
        self.acks.parked += other.acks.parked;
        if self.parked.is_none() {
            self.parked = other.parked;
        }
    }
}

/// Delivers `docs`, bisecting refused envelopes; Err = transient failure
/// (the documents not yet acknowledged stay pending).
async fn deliver(ctx: &JobCtx, docs: Vec<Document>) -> Result<Delivered, String> {
    let mut total = Delivered::default();
    // A stack of parts, first part on top: documents keep their order.
    let mut stack = vec![docs];
    while let Some(mut part) = stack.pop() {
        match post(ctx, &part).await? {
            Posted::Acked(s) => total.add(s),
            Posted::Refused { reason, ticket } if part.len() == 1 => {
                let ack = DocumentAck {
                    id: part[0].id,
                    status: AckStatus::Rejected,
                    error: Some(reason),
                };
                total.add(record_acks(ctx, vec![ack], ticket).await?);
            }
            Posted::Refused { .. } => {
                let second = part.split_off(part.len() / 2);
                stack.push(second);
                stack.push(part);
            }
        }
    }
    Ok(total)
}

async fn post(ctx: &JobCtx, docs: &[Document]) -> Result<Posted, String> {
    let batch = DocumentBatch {
        documents: docs.to_vec(),
    };
    let json = serde_json::to_vec(&batch).map_err(|e| format!("encoding a batch: {e}"))?;
    let ids: Vec<uuid::Uuid> = docs.iter().map(|d| d.id).collect();
    let range = (
        docs.first().map(|d| d.store_seq),
        docs.last().map(|d| d.store_seq),
    );
    let t0 = Instant::now();
    let answer = ctx.central.post_documents(&json).await;
    let duration_ms = t0.elapsed().as_millis() as u64;
    let mut t = NewTicket {
        kind: TicketKind::Upload,
        subject: "documents".into(),
        range_from: range.0,
        range_to: range.1,
        status: TicketStatus::Failed,
        http_status: None,
        request: json,
        response: Vec::new(),
        items: docs.len() as u64,
        error: None,
        duration_ms,
        secret: false,
    };
    let raw = match answer {
        Ok(raw) => raw,
        Err(e) => {
            t.error = Some(e.to_string());
            archive(ctx, t).await;
            return Err(transient(ctx, ids, e.to_string()).await);
        }
    };
    t.http_status = Some(raw.status);
    let body = raw.decoded().unwrap_or_else(|_| raw.bytes.clone());
    t.response = body.clone();
    if (200..300).contains(&raw.status) {
        return match serde_json::from_slice::<BatchAck>(&body) {
            Ok(ack) => {
                t.status = TicketStatus::Ok;
                let ticket = archive(ctx, t).await;
                Ok(Posted::Acked(record_acks(ctx, ack.acks, ticket).await?))
            }
            Err(e) => {
                let msg = format!(
                    "POST {}: the acknowledgement is not valid JSON: {e}",
                    raw.url
                );
                t.error = Some(msg.clone());
                archive(ctx, t).await;
                Err(transient(ctx, ids, msg).await)
            }
        };
    }
    let err = status_error("POST", &raw);
    t.error = Some(err.to_string());
    let ticket = archive(ctx, t).await;
    match raw.status {
        400 | 413 | 422 => Ok(Posted::Refused {
            reason: refusal(&err),
            ticket,
        }),
        _ => Err(transient(ctx, ids, err.to_string()).await),
    }
}

/// The reason kept on a parked document: the central's error message.
fn refusal(err: &CentralError) -> String {
    if let CentralError::Status {
        status,
        body,
        excerpt,
        ..
    } = err
    {
        if let Ok(b) = serde_json::from_slice::<loja_protocol::ErrorBody>(body) {
            let field = b
                .error
                .field
                .map(|f| format!(" (field {f})"))
                .unwrap_or_default();
            return format!(
                "rejected by the central (HTTP {status}): {}{field}",
                b.error.message
            );
        }
        return format!("rejected by the central (HTTP {status}): {excerpt}");
    }
    err.to_string()
}

async fn transient(ctx: &JobCtx, ids: Vec<uuid::Uuid>, error: String) -> String {
    let msg = error.clone();
    match ctx
        .state
        .intake
        .with_outbox(move |o| o.record_failure(&ids, &msg))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record an upload failure in the outbox"),
        Err(e) => tracing::warn!(error = %e, "cannot record an upload failure in the outbox"),
    }
    error
}

async fn record_acks(
    ctx: &JobCtx,
    acks: Vec<DocumentAck>,
    ticket: Option<i64>,
) -> Result<Delivered, String> {
    let mut parked = None;
    for ack in acks.iter().filter(|a| a.status == AckStatus::Rejected) {
        let reason = ack.error.as_deref().unwrap_or("rejected by the central");
        tracing::warn!(id = %ack.id, ticket, reason, "document rejected by the central: parked");
        parked.get_or_insert_with(|| format!("{}: {reason}", ack.id));
    }
    match ctx
        .state
        .intake
        .with_outbox(move |o| o.record_acks(&acks, ticket))
        .await
    {
        Ok(Ok(s)) => Ok(Delivered {
            parked: parked.filter(|_| s.parked > 0),
            acks: s,
        }),
        Ok(Err(e)) => Err(format!("recording acknowledgements: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

async fn archive(ctx: &JobCtx, t: NewTicket) -> Option<i64> {
    let journal = ctx.state.journal.clone();
    match blocking(move || lock(&journal).record_ticket(&t)).await {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot archive an upload ticket");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot archive an upload ticket");
            None
        }
    }
}
