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
    if loja_protocol::time::parse_utc(&doc.accepted_at).is_none() {
        return Err("accepted_at: must be an RFC 3339 timestamp in UTC".into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use loja_protocol::DocumentKind;
    use serde_json::{Value, json};
    use uuid::Uuid;

    fn sale() -> Value {
        json!({"register": "PDV01", "session_id": Uuid::nil(), "number": 1, "operator": "001",
               "items": [
                   {"product_code": "1", "qty": 1500, "unit_price": 999, "total": 1499},
                   {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}
               ],
               "discount": 49, "total": 1900,
               "payments": [{"method": "CASH", "amount": 2000}], "change": 100,
               "sold_at": "2026-11-26T12:00:00Z"})
    }

    fn document(body: Value) -> Document {
        Document {
            id: Uuid::new_v4(),
            kind: DocumentKind::Sale,
            register: "PDV01".into(),
            store_seq: 1,
            accepted_at: "2026-11-26T12:00:01Z".into(),
            body,
        }
    }

    /// The central refuses the sales lojad refuses (the same protocol
    /// rules), naming the field, and stores none of them.
    #[test]
    fn impossible_sales_are_rejected_naming_the_field() {
        type Edit = fn(&mut Value);
        let cases: [(Edit, &str); 6] = [
            (
                |s| {
                    s["items"][1]["discount"] = json!(600);
                    s["items"][1]["total"] = json!(-100);
                    s["discount"] = json!(0);
                    s["total"] = json!(1399);
                    s["payments"][0]["amount"] = json!(1399);
                    s["change"] = json!(0);
                },
                "items[1].discount",
            ),
            (
                |s| {
                    s["discount"] = json!(2000);
                    s["total"] = json!(-51);
                    s["payments"][0]["amount"] = json!(49);
                    s["change"] = json!(100);
                },
                "discount",
            ),
            (
                |s| {
                    s["payments"][0]["amount"] = json!(50);
                    s["change"] = json!(100);
                },
                "change",
            ),
            (
                |s| s["sold_at"] = json!("2026-11-26T09:00:00-03:00"),
                "sold_at",
            ),
            (|s| s["operator"] = json!("1".repeat(1_900_000)), "operator"),
            (
                |s| s["items"][0]["product_code"] = json!("1".repeat(1_900_000)),
                "items[0].product_code",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("c.db")).unwrap();
        let mut batch = DocumentBatch {
            documents: vec![document(sale())],
        };
        for (edit, _) in &cases {
            let mut body = sale();
            edit(&mut body);
            batch.documents.push(document(body));
        }
        let ack = db
            .write(|tx| accept(tx, "s", &batch).map_err(crate::db::DbError::from))
            .expect("accept");
        assert_eq!(ack.acks[0].status, AckStatus::Accepted);
        for ((_, field), ack) in cases.iter().zip(&ack.acks[1..]) {
            assert_eq!(ack.status, AckStatus::Rejected, "{field}");
            let error = ack.error.as_deref().unwrap_or("");
            assert!(error.starts_with(&format!("{field}: ")), "{field}: {error}");
        }
        let stored: i64 = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
                    .map_err(crate::db::DbError::from)
            })
            .unwrap();
        assert_eq!(stored, 1);
        // The envelope's time is UTC too.
        let mut local = document(sale());
        local.accepted_at = "2026-11-26T09:00:01-03:00".into();
        assert!(check(&local).unwrap_err().starts_with("accepted_at"));
    }
}
