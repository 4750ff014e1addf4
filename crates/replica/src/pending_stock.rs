//! The stock the POS reads: the central's last figure for this store,
//! adjusted by this store's documents the central has not reflected yet
//! (`outbox.stock_moves` after the row's `reflects_store_seq`), so a sale
//! shows at once and is never counted twice once the central's figure
//! includes it. The reader attaches `outbox.db` read-only for this.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::error::SqlCtx;

/// Attaches `DIR/outbox.db` read-only to a reader connection when it exists
/// and has `stock_moves` and the omni tables; answers whether it did.
pub(crate) fn attach(conn: &Connection, dir: &Path, path: &Path) -> Result<bool> {
    let outbox = dir.join("outbox.db");
    if !outbox.exists() {
        return Ok(false);
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS outbox",
        [outbox.display().to_string()],
    )
    .ctx(path, "attach outbox")?;
    let has: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM outbox.sqlite_master WHERE type = 'table' AND name = 'stock_moves' \
             AND EXISTS (SELECT 1 FROM outbox.sqlite_master WHERE type = 'table' AND name = 'omni_reservations')",
            [],
            |r| r.get(0),
        )
        .optional()
        .ctx(path, "attach outbox")?;
    Ok(has.is_some())
}

/// `base` (the central's figure, reflecting the store's documents up to
/// `reflects`) adjusted by the later moves of `product`: the last count, if
/// any, then the changes after it. `None` when there is neither.
pub(crate) fn adjusted(
    conn: &Connection,
    path: &Path,
    product: &str,
    base: Option<i64>,
    reflects: i64,
) -> Result<Option<i64>> {
    let (sum, last_count, n): (i64, Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(delta), 0), max(CASE WHEN counted IS NOT NULL THEN store_seq END), count(*) \
             FROM outbox.stock_moves WHERE product_code = ?1 AND store_seq > ?2",
        )
        .ctx(path, "query stock moves")?
        .query_row(params![product, reflects], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ctx(path, "query stock moves")?;
    if n == 0 {
        return Ok(base);
    }
    let Some(seq) = last_count else {
        return Ok(Some(base.unwrap_or(0).saturating_add(sum)));
    };
    let (counted, after): (i64, i64) = conn
        .prepare_cached(
            "SELECT (SELECT counted FROM outbox.stock_moves WHERE product_code = ?1 AND store_seq = ?2), \
                    (SELECT coalesce(sum(delta), 0) FROM outbox.stock_moves WHERE product_code = ?1 AND store_seq > ?2)",
        )
        .ctx(path, "query stock moves")?
        .query_row(params![product, seq], |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get(1)?)))
        .ctx(path, "query stock moves")?;
    Ok(Some(counted.saturating_add(after)))
}

#[cfg(test)]
mod tests {
    use crate::{Catalog, CatalogReader, NewDocument, Outbox};
    use loja_protocol::{DocumentKind, entity_named};
    use serde_json::{Value, json};
    use uuid::Uuid;

    fn stock_row(qty: i64, reflects: Option<i64>) -> serde_json::Map<String, Value> {
        let mut v = json!({"product_code": "1", "qty": qty});
        if let Some(r) = reflects {
            v["reflects_store_seq"] = json!(r);
        }
        v.as_object().cloned().unwrap()
    }

    fn doc(kind: DocumentKind, body: Value) -> NewDocument {
        NewDocument {
            id: Uuid::new_v4(),
            kind,
            body,
        }
    }

    fn pos_stock(dir: &std::path::Path) -> Option<i64> {
        let r = CatalogReader::open(dir).unwrap();
        r.product_by_code("1", "loja").unwrap().unwrap().stock_qty
    }

    #[test]
    fn the_pos_counts_a_sale_at_once_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = |n: &str| entity_named(n).unwrap();
        c.upsert_local(
            e("products"),
            json!({"code": "1", "name": "Café", "unit": "UN"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        c.upsert_local(e("stock"), &stock_row(10_000, None))
            .unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        assert_eq!(pos_stock(dir.path()), Some(10_000));
        let open = doc(
            DocumentKind::CashOpen,
            json!({"register": "PDV01", "operator": "001",
            "opening_amount": 0, "opened_at": "2026-11-26T08:00:00Z"}),
        );
        o.accept(&open).unwrap();
        let sale = doc(
            DocumentKind::Sale,
            json!({"register": "PDV01", "session_id": open.id, "number": 1,
            "operator": "001", "items": [{"product_code": "1", "qty": 3000, "unit_price": 100, "total": 300}],
            "total": 300, "payments": [{"method": "CASH", "amount": 300}], "sold_at": "2026-11-26T12:00:00Z"}),
        );
        let seq = o.accept(&sale).unwrap().store_seq as i64;
        // Sell 3 of 10: the POS sees 7 at once.
        assert_eq!(pos_stock(dir.path()), Some(7_000));
        // The central applies the sale and sends 7, reflecting it: 7, never 4.
        c.upsert_local(e("stock"), &stock_row(7_000, Some(seq)))
            .unwrap();
        assert_eq!(pos_stock(dir.path()), Some(7_000));
        // A count the central has not reflected sets the figure; a later sale counts from it.
        let count = doc(
            DocumentKind::InventoryCount,
            json!({"register": "PDV01", "operator": "001",
            "counted_at": "2026-11-26T20:00:00Z", "items": [{"product_code": "1", "counted_qty": 5_000}]}),
        );
        o.accept(&count).unwrap();
        let mut again = sale.body.clone();
        again["number"] = json!(2);
        o.accept(&doc(DocumentKind::Sale, again)).unwrap();
        assert_eq!(pos_stock(dir.path()), Some(2_000));
    }

    #[test]
    fn a_reader_without_an_outbox_answers_the_central_figure() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        c.upsert_local(
            entity_named("products").unwrap(),
            json!({"code": "1", "name": "Café", "unit": "UN"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        c.upsert_local(entity_named("stock").unwrap(), &stock_row(4_000, Some(9)))
            .unwrap();
        assert_eq!(pos_stock(dir.path()), Some(4_000));
    }
}
