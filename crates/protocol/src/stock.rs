//! What a store document does to the store's stock, the same at the store
//! (the stock the POS reads before the central reflects the document) and at
//! the reference central (which applies it to the store's own stock rows, as
//! an ERP would). Pure: the caller hands in the document a cancellation
//! refers to.

use serde_json::Value;

use crate::DocumentKind;
use crate::document::{InventoryCount, MovementKind, Return, Sale, StockMovement, from_json_value};
use crate::error::FieldError;

/// One product's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockEffect {
    pub product_code: String,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Thousandths added (negative: taken).
    Delta(i64),
    /// Counted: the stock becomes this.
    Set(i64),
}

/// The effects of a document of `kind` with `body`. `referenced` is the body
/// of the document it undoes: the sale of a `sale_cancellation`, the return
/// of a `return_cancellation` (ignored otherwise). Kinds that do not touch
/// stock have none. Lines of one product are summed.
pub fn effects(
    kind: DocumentKind,
    body: &Value,
    referenced: Option<&Value>,
) -> Result<Vec<StockEffect>, FieldError> {
    let mut out: Vec<StockEffect> = Vec::new();
    let mut add = |code: &str, change: Change| match (
        out.iter_mut().find(|e| e.product_code == code),
        change,
    ) {
        (Some(e), Change::Delta(d)) => {
            if let Change::Delta(prev) = e.change {
                e.change = Change::Delta(prev.saturating_add(d));
            }
        }
        (Some(e), set) => e.change = set,
        (None, change) => out.push(StockEffect {
            product_code: code.to_owned(),
            change,
        }),
    };
    let needs =
        |what: &str| FieldError::new("body", format!("a {what} needs the document it undoes"));
    match kind {
        DocumentKind::Sale => {
            let sale: Sale = from_json_value(body)?;
            for i in &sale.items {
                add(&i.product_code, Change::Delta(-i.qty));
            }
        }
        DocumentKind::SaleCancellation => {
            let sale: Sale =
                from_json_value(referenced.ok_or_else(|| needs("sale cancellation"))?)?;
            for i in &sale.items {
                add(&i.product_code, Change::Delta(i.qty));
            }
        }
        // A return's, or an omni return's (at the store that took it back,
        // whichever store delivered the order): the restocked lines.
        DocumentKind::Return | DocumentKind::OmniReturn => {
            let r: Restocked = from_json_value(body)?;
            for i in r.items.iter().filter(|i| i.restock) {
                add(&i.product_code, Change::Delta(i.qty));
            }
        }
        DocumentKind::ReturnCancellation => {
            let r: Return =
                from_json_value(referenced.ok_or_else(|| needs("return cancellation"))?)?;
            for i in r.items.iter().filter(|i| i.restock) {
                add(&i.product_code, Change::Delta(-i.qty));
            }
        }
        DocumentKind::StockMovement => {
            let m: StockMovement = from_json_value(body)?;
            let sign = match m.movement {
                MovementKind::TransferOut => -1,
                MovementKind::Receipt | MovementKind::TransferIn | MovementKind::Adjustment => 1,
            };
            for i in &m.items {
                add(&i.product_code, Change::Delta(sign * i.qty));
            }
        }
        DocumentKind::InventoryCount => {
            let c: InventoryCount = from_json_value(body)?;
            for i in &c.items {
                add(&i.product_code, Change::Set(i.counted_qty));
            }
        }
        DocumentKind::CashOpen
        | DocumentKind::CashMovement
        | DocumentKind::CashClose
        | DocumentKind::Customer
        | DocumentKind::SalePayment
        | DocumentKind::SaleXml
        | DocumentKind::ReducaoZ
        | DocumentKind::OmniOrderStatus => {}
        // What an omni action takes from the shelf depends on the order it
        // moves: `omni::stock_effects`, where the order is at hand.
        DocumentKind::OmniAction => {}
    }
    Ok(out)
}

/// The lines of a return or an omni return, as far as the stock cares
/// (the body was validated as its kind before).
#[derive(serde::Deserialize)]
struct Restocked {
    items: Vec<RestockedItem>,
}

#[derive(serde::Deserialize)]
struct RestockedItem {
    product_code: String,
    qty: i64,
    restock: bool,
}

/// The stock after `effects` in order, from `qty`.
pub fn apply(qty: i64, change: Change) -> i64 {
    match change {
        Change::Delta(d) => qty.saturating_add(d),
        Change::Set(v) => v,
    }
}

/// What a correction does to the stock: the replaced document's changes
/// undone, then the correction's own (a count sets the figure whatever came
/// before, so a replaced count has nothing to undo).
pub fn replacing(new: Vec<StockEffect>, replaced: &[StockEffect]) -> Vec<StockEffect> {
    let mut out = new;
    for old in replaced {
        let Change::Delta(d) = old.change else {
            continue;
        };
        match out.iter_mut().find(|e| e.product_code == old.product_code) {
            Some(e) => {
                if let Change::Delta(n) = e.change {
                    e.change = Change::Delta(n.saturating_sub(d));
                }
            }
            None => out.push(StockEffect {
                product_code: old.product_code.clone(),
                change: Change::Delta(d.saturating_neg()),
            }),
        }
    }
    out.retain(|e| e.change != Change::Delta(0));
    out
}

/// The document a kind undoes: the field naming it, and the kind it must be.
pub fn undoes(kind: DocumentKind) -> Option<(&'static str, DocumentKind)> {
    match kind {
        DocumentKind::SaleCancellation | DocumentKind::Return => {
            Some(("sale_id", DocumentKind::Sale))
        }
        DocumentKind::ReturnCancellation => Some(("return_id", DocumentKind::Return)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta(code: &str, d: i64) -> StockEffect {
        StockEffect {
            product_code: code.into(),
            change: Change::Delta(d),
        }
    }

    #[test]
    fn a_correction_undoes_the_replaced_documents_changes() {
        let old = [delta("1", -3000), delta("2", -1000)];
        let new = vec![delta("1", -2000), delta("3", -1000)];
        let mut got = replacing(new, &old);
        got.sort_by(|a, b| a.product_code.cmp(&b.product_code));
        assert_eq!(
            got,
            vec![delta("1", 1000), delta("2", 1000), delta("3", -1000)]
        );
        // The same document again: nothing moves.
        assert!(replacing(old.to_vec(), &old).is_empty());
        // A count replaced by a count: the new figure, nothing undone.
        let set = |v| StockEffect {
            product_code: "1".into(),
            change: Change::Set(v),
        };
        assert_eq!(replacing(vec![set(5000)], &[set(7000)]), vec![set(5000)]);
    }

    fn sale() -> Value {
        json!({"register": "PDV01", "session_id": "0194b3a2-0000-7000-8000-000000000001", "number": 1,
               "operator": "001", "total": 1500, "payments": [{"method": "CASH", "amount": 1500}],
               "items": [{"product_code": "1", "qty": 3000, "unit_price": 300, "total": 900},
                         {"product_code": "1", "qty": 1000, "unit_price": 300, "total": 300},
                         {"product_code": "2", "qty": 1000, "unit_price": 300, "total": 300}],
               "sold_at": "2026-11-26T12:00:00Z"})
    }

    #[test]
    fn a_sale_and_its_cancellation_cancel_out() {
        let take = effects(DocumentKind::Sale, &sale(), None).unwrap();
        assert_eq!(
            take[0],
            StockEffect {
                product_code: "1".into(),
                change: Change::Delta(-4000)
            }
        );
        let cancel = json!({"sale_id": "0194b3a2-0000-7000-8000-000000000002", "register": "PDV01",
                            "reason_code": "1", "operator": "001", "cancelled_at": "2026-11-26T12:05:00Z"});
        let back = effects(DocumentKind::SaleCancellation, &cancel, Some(&sale())).unwrap();
        for (t, b) in take.iter().zip(&back) {
            assert_eq!(apply(apply(10_000, t.change), b.change), 10_000);
        }
        assert!(effects(DocumentKind::SaleCancellation, &cancel, None).is_err());
    }

    #[test]
    fn returns_restock_only_what_goes_back_on_the_shelf_and_counts_set() {
        let ret = json!({"sale_id": "0194b3a2-0000-7000-8000-000000000002", "register": "PDV01",
                         "reason_code": "02", "operator": "001", "returned_at": "2026-11-26T13:00:00Z",
                         "items": [{"product_code": "1", "qty": 1000, "refund": 300, "restock": true},
                                   {"product_code": "2", "qty": 1000, "refund": 300, "restock": false}],
                         "refunds": [{"method": "CASH", "amount": 600}]});
        let e = effects(DocumentKind::Return, &ret, None).unwrap();
        assert_eq!(
            e,
            vec![StockEffect {
                product_code: "1".into(),
                change: Change::Delta(1000)
            }]
        );
        let count = json!({"register": "PDV01", "operator": "001", "counted_at": "2026-11-26T20:00:00Z",
                           "items": [{"product_code": "1", "counted_qty": 7000}]});
        let e = effects(DocumentKind::InventoryCount, &count, None).unwrap();
        assert_eq!(apply(123, e[0].change), 7000);
    }
}
