//! The maintenance job (MNT): retention purges, so the replica does not
//! grow without bound on a small store PC. Delivered documents go after
//! `retention.delivered_days` (sale XML after `xml_days`, the fiscal rule);
//! tickets after `ticket_days` or beyond `ticket_max_mb`.

use super::{JobCtx, JobResult};
use crate::runtime::{blocking, lock};

pub async fn run(ctx: &JobCtx) -> JobResult {
    let r = ctx.config().retention.clone();
    let (delivered_days, xml_days) = (r.delivered_days, r.xml_days);
    let docs = match ctx
        .state
        .intake
        .with_outbox(move |o| o.purge(delivered_days, xml_days))
        .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return JobResult::failed(0, format!("purging delivered documents: {e}")),
        Err(e) => return JobResult::failed(0, e.to_string()),
    };
    let journal = ctx.state.journal.clone();
    let max_bytes = r.ticket_max_mb.saturating_mul(1024 * 1024);
    let tickets = match blocking(move || lock(&journal).purge_tickets(r.ticket_days, max_bytes))
        .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return JobResult::failed(docs.documents, format!("purging tickets: {e}")),
        Err(e) => return JobResult::failed(docs.documents, e),
    };
    let rows = docs.documents + docs.xml_documents + tickets;
    let mut result = JobResult::ok(rows);
    result.message = Some(format!(
        "purged {} delivered documents, {} sale XML, {tickets} tickets",
        docs.documents, docs.xml_documents
    ));
    result
}
