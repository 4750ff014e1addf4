//! Store documents in, ERP collection out.
//!
//! A document is identified by the UUID the POS chose, and is the store that
//! sent it, its kind and its body. The same id again with the same store,
//! kind and body (a retry, in any batch) is acknowledged `duplicate` and
//! stored once; the same id with another store, kind or body is a second
//! document under a taken id and is `rejected` with the holder named, the
//! store's outbox rule (`IdTaken`) at the central. The envelope's
//! `store_seq`, `accepted_at` and `register` are not compared. The ERP reads
//! the documents in the order the central accepted them.

use crate::sql::{Connection, OptionalExtension, Transaction};
use loja_protocol::{AckStatus, BatchAck, Document, DocumentAck, DocumentBatch};
use serde_json::Value;

pub const DEFAULT_LIMIT: u64 = 1_000;
pub const MAX_LIMIT: u64 = 10_000;

/// Stores a batch (inside the caller's transaction) and acknowledges each id in order.
///
/// A new omni action, or a new sale naming an omni order, is applied to the
/// order before it is stored (`crate::omni::apply_document`): a refused
/// action is `rejected` and not stored; what the central did is stored with
/// the document (`outcome`). A retry of a held id applies nothing.
pub fn accept(
    tx: &Transaction<'_>,
    store: &str,
    batch: &DocumentBatch,
) -> Result<BatchAck, crate::sql::Error> {
    let received_at = loja_protocol::time::now_rfc3339();
    let mut insert = tx.prepare_cached(
        "INSERT INTO documents (id, store, kind, register, store_seq, received_at, document, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
    )?;
    // Only on a conflict: who holds the id (one lookup by the unique index).
    let mut holder =
        tx.prepare_cached("SELECT store, kind, store_seq, document FROM documents WHERE id = ?1")?;
    let mut held = tx.prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?;
    let mut acks = Vec::with_capacity(batch.documents.len());
    let apply_stock = crate::store_stock::central_owns_stock(tx)?;
    for doc in &batch.documents {
        let check = check(doc).and_then(|text| {
            let refused = match crate::store_stock::unknown_store(tx, doc) {
                Ok(None) => foreign_replacement(tx, store, doc),
                other => other,
            };
            match refused {
                Ok(Some(why)) => Err(why),
                Ok(None) => Ok(text),
                Err(e) => Err(e.to_string()),
            }
        });
        let text = match check {
            Ok(text) => text,
            Err(error) => {
                acks.push(DocumentAck {
                    id: doc.id,
                    status: AckStatus::Rejected,
                    error: Some(error),
                });
                continue;
            }
        };
        // An order's document moves the order only when its id is new.
        let mut outcome = None;
        let mut omni_stock = Vec::new();
        if crate::omni::concerns(doc) && !held.exists(params![doc.id.to_string()])? {
            match crate::omni::apply_document(tx, store, doc)? {
                crate::omni::Applied::Refused(error) => {
                    acks.push(DocumentAck {
                        id: doc.id,
                        status: AckStatus::Rejected,
                        error: Some(error),
                    });
                    continue;
                }
                crate::omni::Applied::Done { outcome: o, stock } => {
                    outcome = Some(o.to_string());
                    omni_stock = stock;
                }
                crate::omni::Applied::Nothing => {}
            }
        }
        let n = insert.execute(params![
            doc.id.to_string(),
            store,
            doc.kind.as_str(),
            doc.register,
            doc.store_seq as i64,
            received_at,
            text,
            outcome
        ])?;
        let taken = if n == 1 {
            None
        } else {
            let held = holder.query_row(params![doc.id.to_string()], |r| {
                Ok(Holder {
                    store: r.get(0)?,
                    kind: r.get(1)?,
                    store_seq: r.get(2)?,
                    document: r.get(3)?,
                })
            })?;
            Some(held.refuses(store, doc))
        };
        if taken.is_none() && apply_stock {
            crate::store_stock::apply(tx, store, doc)?;
            crate::store_stock::write_effects(tx, store, doc.store_seq, &omni_stock)?;
        }
        // A retry the store sends on purpose: the ERP gets it again.
        if taken == Some(None) && doc.reoffer {
            crate::verdicts::reoffer(tx, &doc.id.to_string())?;
        }
        acks.push(match taken {
            None => DocumentAck {
                id: doc.id,
                status: AckStatus::Accepted,
                error: None,
            },
            Some(None) => DocumentAck {
                id: doc.id,
                status: AckStatus::Duplicate,
                error: None,
            },
            Some(Some(reason)) => DocumentAck {
                id: doc.id,
                status: AckStatus::Rejected,
                error: Some(reason),
            },
        });
    }
    Ok(BatchAck { acks })
}

/// The document already stored under an id.
struct Holder {
    store: String,
    kind: String,
    store_seq: i64,
    /// The stored document, envelope and body, as JSON text.
    document: String,
}

/// The body of a stored document; the envelope's other fields are ignored.
#[derive(serde::Deserialize)]
struct StoredBody {
    body: Value,
}

impl Holder {
    /// `None` when `doc` from `store` is the held document again (same
    /// store, kind and body: a retry); else why it is refused. Bodies are
    /// compared as JSON values, so key order and spacing do not matter.
    fn refuses(&self, store: &str, doc: &Document) -> Option<String> {
        let differs = if self.store != store {
            "comes from another store"
        } else if self.kind != doc.kind.as_str() {
            "is of another kind"
        } else {
            match serde_json::from_str::<StoredBody>(&self.document) {
                Ok(held) if held.body == doc.body => return None,
                _ => "has another body",
            }
        };
        Some(format!(
            "id {} is taken by another document (store {}, kind {}, store_seq {}); this one {differs}: \
             a retry must send the same kind and body; a new document needs a new id",
            doc.id, self.store, self.kind, self.store_seq
        ))
    }
}

/// Why a correction may not replace the document it names, if it may not:
/// the central holds that one from another store or of another kind. (One
/// the central never took — it refused it — may be replaced: the store
/// checked the rest.)
fn foreign_replacement(
    conn: &Connection,
    store: &str,
    doc: &Document,
) -> Result<Option<String>, crate::sql::Error> {
    let Some(replaced) = doc.replaces else {
        return Ok(None);
    };
    let held: Option<(String, String)> = conn
        .prepare_cached("SELECT store, kind FROM documents WHERE id = ?1")?
        .query_row(params![replaced.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match held {
        Some((s, _)) if s != store => Some(format!(
            "replaces: document {replaced} belongs to another store"
        )),
        Some((_, k)) if k != doc.kind.as_str() => Some(format!(
            "replaces: document {replaced} is a {k}, not a {}",
            doc.kind.as_str()
        )),
        _ => None,
    })
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
/// `{"documents":[{"seq","store","received_at","document","outcome"?}],"next","more"}`;
/// `outcome` (what the central did with an omni action or an
/// order-redeeming sale, `crate::omni`) only on the entries that have one.
pub fn collect(conn: &Connection, after: u64, limit: u64) -> Result<String, crate::sql::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, store, received_at, document, outcome FROM documents WHERE seq > ?1 ORDER BY seq LIMIT ?2",
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
        if let Some(outcome) = r.get_ref(4)?.as_str_or_null()? {
            out.push_str(",\"outcome\":");
            out.push_str(outcome);
        }
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
            reoffer: false,
            reconciliation: None,
            replaces: None,
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
        let db = crate::db::Db::for_tests(dir.path());
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
                c.query_row("SELECT count(*) FROM documents", params![], |r| r.get(0))
                    .map_err(crate::db::DbError::from)
            })
            .unwrap();
        assert_eq!(stored, 1);
        // The envelope's time is UTC too.
        let mut local = document(sale());
        local.accepted_at = "2026-11-26T09:00:01-03:00".into();
        assert!(check(&local).unwrap_err().starts_with("accepted_at"));
    }

    fn accept_one(db: &crate::db::Db, store: &str, doc: &Document) -> DocumentAck {
        let batch = DocumentBatch {
            documents: vec![doc.clone()],
        };
        let mut ack = db
            .write(|tx| accept(tx, store, &batch).map_err(crate::db::DbError::from))
            .expect("accept");
        assert_eq!(ack.acks.len(), 1);
        ack.acks.remove(0)
    }

    /// The ERP queue's documents: (store, document).
    fn queue(db: &crate::db::Db) -> Vec<(String, Value)> {
        let page: Value = serde_json::from_str(
            &db.read(|c| collect(c, 0, MAX_LIMIT).map_err(crate::db::DbError::from))
                .unwrap(),
        )
        .unwrap();
        page["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["store"].as_str().unwrap().to_owned(),
                    d["document"].clone(),
                )
            })
            .collect()
    }

    fn cash_open() -> Value {
        json!({"register": "PDV01", "operator": "001", "opening_amount": 10_000,
               "opened_at": "2026-11-26T12:00:00Z"})
    }

    /// A retry is the same store, kind and body: `duplicate`, stored once,
    /// even when its envelope (store_seq, accepted_at) and its keys' order
    /// differ from the first delivery's.
    #[test]
    fn the_same_document_again_is_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::for_tests(dir.path());
        let first = document(sale());
        assert_eq!(accept_one(&db, "s1", &first).status, AckStatus::Accepted);
        let mut retry = first.clone();
        retry.store_seq = 7;
        retry.accepted_at = "2026-11-27T08:00:00Z".into();
        // The same body, its keys in another order.
        let text = first.body.to_string();
        let mut keys: Vec<(String, Value)> = first
            .body
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        keys.reverse();
        let reordered = format!(
            "{{{}}}",
            keys.iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_ne!(reordered, text);
        retry.body = serde_json::from_str(&reordered).unwrap();
        let ack = accept_one(&db, "s1", &retry);
        assert_eq!(ack.status, AckStatus::Duplicate, "{:?}", ack.error);
        assert_eq!(ack.error, None);
        let q = queue(&db);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].1["store_seq"], json!(1), "the first delivery stands");
    }

    /// Another body, another kind or another store under a taken id is a
    /// second document, not a retry: rejected naming the holder, and the
    /// first stands alone in the ERP queue.
    #[test]
    fn another_document_under_a_taken_id_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::for_tests(dir.path());
        let first = document(sale());
        assert_eq!(accept_one(&db, "s1", &first).status, AckStatus::Accepted);

        let mut other_body = first.clone();
        other_body.body["number"] = json!(2);
        let mut other_kind = first.clone();
        other_kind.kind = DocumentKind::CashOpen;
        other_kind.body = cash_open();
        let other_store = first.clone();
        let cases = [
            ("another body", "s1", &other_body, "has another body"),
            ("another kind", "s1", &other_kind, "is of another kind"),
            (
                "another store",
                "s2",
                &other_store,
                "comes from another store",
            ),
        ];
        for (case, store, doc, why) in cases {
            let ack = accept_one(&db, store, doc);
            assert_eq!(ack.status, AckStatus::Rejected, "{case}");
            let error = ack.error.unwrap_or_default();
            assert!(
                error.starts_with(&format!(
                    "id {} is taken by another document (store s1, kind sale, store_seq 1)",
                    first.id
                )),
                "{case}: {error}"
            );
            assert!(error.contains(why), "{case}: {error}");
            assert!(
                error.contains("a new document needs a new id"),
                "{case}: {error}"
            );
        }
        let q = queue(&db);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].0, "s1");
        assert_eq!(q[0].1["body"], first.body);
        // The holder's own retry is still a duplicate after the refusals.
        assert_eq!(accept_one(&db, "s1", &first).status, AckStatus::Duplicate);
    }

    /// Inside one batch the rule is the same: the first of an id is
    /// accepted, its retry is a duplicate, another body is rejected.
    #[test]
    fn a_taken_id_inside_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::for_tests(dir.path());
        let first = document(sale());
        let mut other = first.clone();
        other.body["number"] = json!(2);
        let batch = DocumentBatch {
            documents: vec![first.clone(), first.clone(), other],
        };
        let ack = db
            .write(|tx| accept(tx, "s1", &batch).map_err(crate::db::DbError::from))
            .unwrap();
        let statuses: Vec<AckStatus> = ack.acks.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            [
                AckStatus::Accepted,
                AckStatus::Duplicate,
                AckStatus::Rejected
            ]
        );
        assert_eq!(queue(&db).len(), 1);
    }
}
