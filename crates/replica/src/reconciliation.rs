//! The outbox's side of cash and fiscal reconciliation: gathers a cash
//! session's documents (or a register's day of sales) from the outbox when a
//! close (or a Redução Z) is taken, and keeps what `loja_protocol::reconcile`
//! computes with the document. A mismatch is recorded and shown, never a
//! reason to refuse the document.

use std::path::Path;

use loja_protocol::reconcile::{self, Reconciliation, SessionDoc};
use loja_protocol::{DocumentKind, document::from_json_value};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::Result;
use crate::error::SqlCtx;

/// The reconciliation of a document about to be stored, as JSON text;
/// `None` for kinds that have none.
pub(crate) fn of(
    tx: &Transaction<'_>,
    path: &Path,
    kind: DocumentKind,
    body: &Value,
) -> Result<Option<String>> {
    let r = match kind {
        DocumentKind::CashClose => cash_close(tx, path, body)?,
        DocumentKind::ReducaoZ => reducao_z(tx, path, body)?,
        _ => None,
    };
    Ok(r.and_then(|r| serde_json::to_string(&r).ok()))
}

fn cash_close(tx: &Transaction<'_>, path: &Path, body: &Value) -> Result<Option<Reconciliation>> {
    let Ok(close) = from_json_value::<loja_protocol::document::CashClose>(body) else {
        return Ok(None);
    };
    let session = close.session_id.to_string();
    let open_seq: Option<i64> = tx
        .prepare_cached("SELECT store_seq FROM documents WHERE id = ?1 AND kind = 'cash_open'")
        .ctx(path, "query cash session")?
        .query_row([&session], |r| r.get(0))
        .optional()
        .ctx(path, "query cash session")?;
    let Some(open_seq) = open_seq else {
        return Ok(None);
    };
    // The register's documents since the session opened (a range of the
    // outbox's primary key): the session's own, and what undoes a sale.
    let mut stmt = tx
        .prepare_cached(
            "SELECT kind, body FROM documents WHERE store_seq >= ?1 AND register = ?2 \
             AND replaced_by IS NULL ORDER BY store_seq",
        )
        .ctx(path, "query cash session")?;
    let rows: Vec<(String, String)> = stmt
        .query_map(params![open_seq, close.register], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ctx(path, "query cash session")?
        .collect::<rusqlite::Result<_>>()
        .ctx(path, "query cash session")?;
    let mut bodies: Vec<(DocumentKind, Value, Option<Value>)> = Vec::new();
    for (kind, text) in rows {
        let (Some(kind), Ok(b)) = (
            DocumentKind::parse(&kind),
            serde_json::from_str::<Value>(&text),
        ) else {
            continue;
        };
        let in_session = b.get("session_id").and_then(Value::as_str) == Some(session.as_str());
        let keep = match kind {
            // A register has one open session: the range's cash_open is its.
            DocumentKind::CashOpen => true,
            DocumentKind::Sale | DocumentKind::CashMovement => in_session,
            DocumentKind::SalePayment
            | DocumentKind::SaleCancellation
            | DocumentKind::Return
            | DocumentKind::OmniReturn => true,
            _ => false,
        };
        if !keep {
            continue;
        }
        let cancelled = if kind == DocumentKind::SaleCancellation {
            let sale = b
                .get("sale_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            crate::sale_life::body_of(tx, path, &sale, DocumentKind::Sale)?
        } else {
            None
        };
        bodies.push((kind, b, cancelled));
    }
    let docs: Vec<SessionDoc<'_>> = bodies
        .iter()
        .map(|(kind, body, cancelled)| SessionDoc {
            kind: *kind,
            body,
            cancelled_sale: cancelled.as_ref(),
        })
        .collect();
    let expected = reconcile::expected(&docs);
    Ok(Some(Reconciliation::CashClose(reconcile::cash_close(
        &close, &expected,
    ))))
}

fn reducao_z(tx: &Transaction<'_>, path: &Path, body: &Value) -> Result<Option<Reconciliation>> {
    let Ok(z) = from_json_value::<loja_protocol::document::ReducaoZ>(body) else {
        return Ok(None);
    };
    let (total, n): (i64, i64) = tx
        .prepare_cached(
            "SELECT coalesce(sum(json_extract(d.body, '$.total')), 0), count(*) FROM documents d \
             WHERE d.kind = 'sale' AND d.register = ?1 AND d.replaced_by IS NULL \
               AND substr(json_extract(d.body, '$.sold_at'), 1, 10) = ?2 \
               AND NOT EXISTS (SELECT 1 FROM sale_links l WHERE l.target = d.id AND l.kind = 'sale_cancellation')",
        )
        .ctx(path, "query the day's sales")?
        .query_row(params![z.register, z.date], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx(path, "query the day's sales")?;
    Ok(Some(Reconciliation::ReducaoZ(reconcile::reducao_z(
        &z,
        total,
        n.max(0) as u64,
    ))))
}
