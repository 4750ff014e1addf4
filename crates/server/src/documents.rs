//! Store documents in, ERP collection out.
//!
//! A document is identified by the UUID the POS chose: the same id posted
//! again (by any store, in any batch) is acknowledged `duplicate` and stored
//! once. The ERP reads them in the order the central accepted them.

use loja_protocol::{AckStatus, BatchAck, Document, DocumentAck, DocumentBatch};
use rusqlite::{Connection, Transaction, params};

pub const DEFAULT_LIMIT: u64 = 1_000;
pub const MAX_LIMIT: u64 = 10_000;

/// Stores a batch (inside the caller's transaction) and acknowledges each id in order.
pub fn accept(
    tx: &Transaction<'_>,
    store: &str,
    batch: &DocumentBatch,
) -> Result<BatchAck, rusqlite::Error> {
    let received_at = loja_protocol::time::now_rfc3339();
    let mut insert = tx.prepare_cached(
        "INSERT INTO documents (id, store, kind, register, store_seq, received_at, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut acks = Vec::with_capacity(batch.documents.len());
    for doc in &batch.documents {
        acks.push(match check(doc) {
            Err(error) => DocumentAck {
                id: doc.id,
                status: AckStatus::Rejected,
                error: Some(error),
            },
            Ok(text) => {
                let n = insert.execute(params![
                    doc.id.to_string(),
                    store,
                    doc.kind.as_str(),
                    doc.register,
                    doc.store_seq as i64,
                    received_at,
                    text
                ])?;
                let status = if n == 1 {
                    AckStatus::Accepted
                } else {
                    AckStatus::Duplicate
                };
                DocumentAck {
                    id: doc.id,
                    status,
                    error: None,
                }
            }
        });
    }
    Ok(BatchAck { acks })
}

fn check(doc: &Document) -> Result<String, String> {
    if loja_protocol::time::parse(&doc.accepted_at).is_none() {
        return Err("accepted_at: must be an RFC 3339 timestamp".into());
    }
    doc.kind
        .validate_body(&doc.body)
        .map_err(|e| e.to_string())?;
    serde_json::to_string(doc).map_err(|e| e.to_string())
}

/// One page of the ERP queue, as JSON:
/// `{"documents":[{"seq","store","received_at","document"}],"next","more"}`.
pub fn collect(conn: &Connection, after: u64, limit: u64) -> Result<String, rusqlite::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, store, received_at, document FROM documents WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after as i64, (limit + 1) as i64])?;
    let mut out = String::from("{\"documents\":[");
    let mut n = 0u64;
    let mut next = after;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if n == limit {
            more = true;
            break;
        }
        let seq = r.get::<_, i64>(0)? as u64;
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"seq\":");
        out.push_str(&seq.to_string());
        out.push_str(",\"store\":");
        out.push_str(&serde_json::Value::from(r.get_ref(1)?.as_str()?).to_string());
        out.push_str(",\"received_at\":");
        out.push_str(&serde_json::Value::from(r.get_ref(2)?.as_str()?).to_string());
        out.push_str(",\"document\":");
        out.push_str(r.get_ref(3)?.as_str()?);
        out.push('}');
        next = seq;
        n += 1;
    }
    out.push_str("],\"next\":");
    out.push_str(&next.to_string());
    out.push_str(",\"more\":");
    out.push_str(if more { "true" } else { "false" });
    out.push('}');
    Ok(out)
}
