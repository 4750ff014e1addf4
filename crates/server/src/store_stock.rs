//! The reference central applies a store's stock documents (sales, their
//! cancellations, returns with restock, movements, counts) to that store's
//! own stock rows, as an ERP would, unless the setting `erp_owns_stock` says
//! the ERP keeps the stock. Each new stock row says up to which of the
//! store's documents it reflects (`reflects_store_seq`), so the store drops
//! its own pending adjustment exactly when the central's figure counts it.

use crate::sql::{Connection, OptionalExtension};
use loja_protocol::stock;
use loja_protocol::{Document, DocumentKind, entity_named};
use serde_json::{Map, Value, json};

use crate::rows::RowWriter;

/// Does the central keep the stores' stock (the default), or the ERP?
pub fn central_owns_stock(conn: &Connection) -> Result<bool, crate::sql::Error> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE name = 'erp_owns_stock'")?
        .query_row(params![], |r| r.get(0))
        .optional()?;
    Ok(v.as_deref() != Some("true"))
}

/// The body of a document the central holds under `id`.
fn stored_body(conn: &Connection, id: &str) -> Result<Option<Value>, crate::sql::Error> {
    let text: Option<String> = conn
        .prepare_cached("SELECT document FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    Ok(text
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|mut d| d.get_mut("body").map(Value::take)))
}

/// What a document of `kind` with `body` does to the stock, with the
/// document it undoes read from what this central holds.
fn effects_of(
    conn: &Connection,
    kind: DocumentKind,
    body: &Value,
) -> Result<Vec<stock::StockEffect>, crate::sql::Error> {
    let referenced = match stock::undoes(kind) {
        Some((field, _)) => match body.get(field).and_then(Value::as_str) {
            Some(id) => stored_body(conn, id)?,
            None => None,
        },
        None => None,
    };
    if matches!(
        kind,
        DocumentKind::SaleCancellation | DocumentKind::ReturnCancellation
    ) && referenced.is_none()
    {
        // The undone document never reached this central: nothing to undo here.
        return Ok(Vec::new());
    }
    Ok(stock::effects(kind, body, referenced.as_ref()).unwrap_or_default())
}

/// Applies an accepted document of `store` to its stock rows (inside the
/// caller's transaction). A correction (`replaces`) first undoes what the
/// document it replaces did, when this central took that one. Answers how
/// many rows changed.
pub fn apply(conn: &Connection, store: &str, doc: &Document) -> Result<u64, crate::sql::Error> {
    let mut effects = effects_of(conn, doc.kind, &doc.body)?;
    if let Some(replaced) = doc.replaces
        && let Some(old) = stored_body(conn, &replaced.to_string())?
    {
        effects = stock::replacing(effects, &effects_of(conn, doc.kind, &old)?);
    }
    write_effects(conn, store, doc.store_seq, &effects)
}

/// Writes `effects` of `store`'s document number `store_seq` to the store's
/// own stock rows (inside the caller's transaction): the one writer of both
/// the stock documents' effects and the omni orders' deliveries
/// (`crate::omni`). A row that already reflects `store_seq` is left alone
/// (the document counted there). Answers how many rows changed.
pub fn write_effects(
    conn: &Connection,
    store: &str,
    store_seq: u64,
    effects: &[stock::StockEffect],
) -> Result<u64, crate::sql::Error> {
    let Some(entity) = entity_named("stock") else {
        return Ok(0);
    };
    if effects.is_empty() {
        return Ok(0);
    }
    let mut rows = RowWriter::open(conn)?;
    let mut changed = 0;
    let now = loja_protocol::time::now_rfc3339();
    for e in effects {
        let mut key = Map::new();
        key.insert("product_code".into(), Value::String(e.product_code.clone()));
        let key_text = entity.key_text(&key);
        let (mine, others) = rows.find_at(entity.name, &key_text, store)?;
        let mine = mine.as_ref();
        let current: Option<Map<String, Value>> = mine
            .filter(|r| !r.deleted)
            .and_then(|r| r.data.as_deref())
            .and_then(|d| serde_json::from_str(d).ok());
        let qty = current
            .as_ref()
            .and_then(|c| c["qty"].as_i64())
            .unwrap_or(0);
        let reflects = current
            .as_ref()
            .and_then(|c| c.get("reflects_store_seq"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if store_seq as i64 <= reflects {
            continue;
        }
        let new = stock::apply(qty, e.change);
        let row = json!({"product_code": e.product_code, "qty": new, "updated_at": now,
                         "reflects_store_seq": store_seq});
        let data = row.to_string();
        let key_json = Value::Object(key).to_string();
        rows.put(
            entity.name,
            &key_text,
            &key_json,
            store,
            false,
            Some(&data),
            mine,
            others,
        )?;
        changed += 1;
    }
    rows.finish()?;
    Ok(changed)
}

/// Whether a stock movement names stores that exist (a transfer's other end).
pub fn unknown_store(
    conn: &Connection,
    doc: &Document,
) -> Result<Option<String>, crate::sql::Error> {
    if doc.kind != DocumentKind::StockMovement {
        return Ok(None);
    }
    for field in ["to_store", "from_store"] {
        if let Some(s) = doc.body.get(field).and_then(Value::as_str)
            && crate::nodes::kind_of(conn, s)? != Some(crate::nodes::NodeKind::Store)
        {
            return Ok(Some(format!("{field}: no such store {s}")));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::documents::accept;
    use loja_protocol::{AckStatus, DocumentBatch};
    use uuid::Uuid;

    fn doc(kind: DocumentKind, store_seq: u64, body: Value) -> Document {
        Document {
            id: Uuid::new_v4(),
            kind,
            register: "PDV01".into(),
            store_seq,
            accepted_at: "2026-11-26T12:00:01Z".into(),
            body,
            reoffer: false,
            reconciliation: None,
            replaces: None,
        }
    }

    fn sale(qty: i64) -> Value {
        json!({"register": "PDV01", "session_id": Uuid::nil(), "number": 1, "operator": "001",
               "items": [{"product_code": "1", "qty": qty, "unit_price": 100, "total": qty / 10}],
               "total": qty / 10, "payments": [{"method": "CASH", "amount": qty / 10}],
               "sold_at": "2026-11-26T12:00:00Z"})
    }

    /// (qty, reflects_store_seq) of store s's stock row of product 1.
    fn stock(db: &Db) -> (i64, i64) {
        db.read(|c| {
            let data: String = c.query_row(
                "SELECT data FROM rows WHERE entity = 'stock' AND node = 's' AND key_text = '[\"1\"]'",
                params![],
                |r| r.get(0),
            )?;
            let v: Value = serde_json::from_str(&data).unwrap();
            Ok::<_, DbError>((v["qty"].as_i64().unwrap(), v["reflects_store_seq"].as_i64().unwrap_or(0)))
        })
        .unwrap()
    }

    fn send(db: &Db, docs: Vec<Document>) -> Vec<AckStatus> {
        db.write(|tx| accept(tx, "s", &DocumentBatch { documents: docs }).map_err(DbError::from))
            .unwrap()
            .acks
            .into_iter()
            .map(|a| a.status)
            .collect()
    }

    #[test]
    fn the_central_applies_a_stores_stock_documents_once() {
        let (db, _dir) = crate::test_central::with_stores(&["s"]);
        // Stock 10 (as the ERP last counted it, reflecting nothing).
        let count = doc(
            DocumentKind::InventoryCount,
            1,
            json!({"register": "PDV01", "operator": "001",
            "counted_at": "2026-11-26T08:00:00Z", "items": [{"product_code": "1", "counted_qty": 10_000}]}),
        );
        assert_eq!(send(&db, vec![count]), vec![AckStatus::Accepted]);
        assert_eq!(stock(&db), (10_000, 1));
        // Sell 3: 7, reflecting the sale.
        let s = doc(DocumentKind::Sale, 2, sale(3_000));
        assert_eq!(send(&db, vec![s.clone()]), vec![AckStatus::Accepted]);
        assert_eq!(stock(&db), (7_000, 2));
        // The same sale again: a duplicate, applied once.
        assert_eq!(send(&db, vec![s.clone()]), vec![AckStatus::Duplicate]);
        assert_eq!(stock(&db), (7_000, 2));
        // Its cancellation puts the 3 back.
        let cancel = doc(
            DocumentKind::SaleCancellation,
            3,
            json!({"sale_id": s.id, "register": "PDV01",
            "reason_code": "1", "operator": "001", "cancelled_at": "2026-11-26T12:10:00Z"}),
        );
        assert_eq!(send(&db, vec![cancel]), vec![AckStatus::Accepted]);
        assert_eq!(stock(&db), (10_000, 3));
        // A transfer to a store that does not exist is refused.
        let out = doc(
            DocumentKind::StockMovement,
            4,
            json!({"movement": "transfer_out", "register": "PDV01",
            "operator": "001", "to_store": "nowhere", "items": [{"product_code": "1", "qty": 1000}],
            "moved_at": "2026-11-26T15:00:00Z"}),
        );
        assert_eq!(send(&db, vec![out]), vec![AckStatus::Rejected]);
        // Where the ERP keeps the stock, the central leaves it alone.
        db.write(|tx| {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ('erp_owns_stock', 'true')",
                params![],
            )?;
            Ok::<_, DbError>(())
        })
        .unwrap();
        assert_eq!(
            send(&db, vec![doc(DocumentKind::Sale, 5, sale(1_000))]),
            vec![AckStatus::Accepted]
        );
        assert_eq!(stock(&db), (10_000, 3));
    }

    #[test]
    fn a_correction_undoes_the_sale_it_replaces_and_names_one_of_its_store() {
        let (db, _dir) = crate::test_central::with_stores(&["s", "t"]);
        let count = doc(
            DocumentKind::InventoryCount,
            1,
            json!({"register": "PDV01", "operator": "001",
            "counted_at": "2026-11-26T08:00:00Z", "items": [{"product_code": "1", "counted_qty": 10_000}]}),
        );
        let sold = doc(DocumentKind::Sale, 2, sale(3_000));
        assert_eq!(
            send(&db, vec![count, sold.clone()]),
            vec![AckStatus::Accepted; 2]
        );
        assert_eq!(stock(&db), (7_000, 2));
        // The ERP refused the sale of 3; the store sends it again as 2.
        let mut fixed = doc(DocumentKind::Sale, 4, sale(2_000));
        fixed.replaces = Some(sold.id);
        assert_eq!(send(&db, vec![fixed]), vec![AckStatus::Accepted]);
        assert_eq!(stock(&db), (8_000, 4));
        // A correction of another kind, or of another store's document, is refused.
        let mut wrong = doc(
            DocumentKind::StockMovement,
            5,
            json!({"movement": "adjustment", "register": "PDV01", "operator": "001", "reason_code": "01",
                   "items": [{"product_code": "1", "qty": -1000}], "moved_at": "2026-11-26T15:00:00Z"}),
        );
        wrong.replaces = Some(sold.id);
        let acks = db
            .write(|tx| {
                accept(
                    tx,
                    "s",
                    &DocumentBatch {
                        documents: vec![wrong],
                    },
                )
                .map_err(DbError::from)
            })
            .unwrap();
        let why = acks.acks[0].error.as_deref().unwrap_or_default();
        assert!(why.contains("is a sale, not a stock_movement"), "{why}");
        let mut theirs = doc(DocumentKind::Sale, 6, sale(1_000));
        theirs.replaces = Some(sold.id);
        let acks = db
            .write(|tx| {
                accept(
                    tx,
                    "t",
                    &DocumentBatch {
                        documents: vec![theirs],
                    },
                )
                .map_err(DbError::from)
            })
            .unwrap();
        assert_eq!(acks.acks[0].status, AckStatus::Rejected);
        assert!(
            acks.acks[0]
                .error
                .as_deref()
                .unwrap()
                .contains("another store")
        );
        assert_eq!(stock(&db), (8_000, 4));
    }
}
