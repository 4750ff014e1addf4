//! Cash and fiscal reconciliation, computed from a register's own documents:
//! what a cash session should hold per payment method at its close (opening
//! float, sales' payments less change, later payments, supplies, withdrawals,
//! cancelled sales and refunds given back), against what the operator
//! counted (sobra / falta de caixa); and a Redução Z against the day's fiscal
//! sales of its register. Pure: the outbox hands in the documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DocumentKind;
use crate::document::{
    CashClose, CashMovement, CashMovementKind, CashOpen, Payment, ReducaoZ, Sale, SalePayment,
    from_json_value,
};

/// The payment method that is cash in the drawer.
pub const CASH: &str = "CASH";

/// One method's figures at a close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodCheck {
    pub method: String,
    /// What the session's documents say the drawer holds, centavos.
    pub expected: i64,
    /// What the operator counted, when counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<i64>,
    /// counted − expected: positive a surplus (sobra), negative a shortfall (falta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difference: Option<i64>,
}

/// A cash close, reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashReconciliation {
    pub methods: Vec<MethodCheck>,
    /// The cash difference (counted_amount − expected cash).
    pub cash_difference: i64,
}

/// A Redução Z against the day's fiscal sales of its register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZCheck {
    /// Σ totals of the register's sales that day, less the cancelled ones.
    pub sales_total: i64,
    pub sales: u64,
    pub z_net_total: i64,
    /// z_net_total − sales_total; 0 when they agree.
    pub difference: i64,
}

/// What the store adds to a document's envelope when it goes up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciliation {
    CashClose(CashReconciliation),
    ReducaoZ(ZCheck),
}

/// A document of the session (or the register's day), with the body of the
/// sale a cancellation undoes.
pub struct SessionDoc<'a> {
    pub kind: DocumentKind,
    pub body: &'a Value,
    pub cancelled_sale: Option<&'a Value>,
}

/// Expected per method from the session's documents.
pub fn expected(docs: &[SessionDoc<'_>]) -> BTreeMap<String, i64> {
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |m: &str, v: i64| {
        let e = by.entry(m.to_owned()).or_insert(0);
        *e = e.saturating_add(v);
    };
    let sale_net = |sale: &Sale, sign: i64, add: &mut dyn FnMut(&str, i64)| {
        for p in &sale.payments {
            add(&p.method, sign * p.amount);
        }
        if sale.change > 0 {
            add(CASH, -sign * sale.change);
        }
    };
    for d in docs {
        match d.kind {
            DocumentKind::CashOpen => {
                if let Ok(o) = from_json_value::<CashOpen>(d.body) {
                    add(CASH, o.opening_amount);
                }
            }
            DocumentKind::Sale => {
                if let Ok(s) = from_json_value::<Sale>(d.body) {
                    sale_net(&s, 1, &mut add);
                }
            }
            DocumentKind::SalePayment => {
                if let Ok(p) = from_json_value::<SalePayment>(d.body) {
                    add(&p.payment.method, p.payment.amount);
                }
            }
            DocumentKind::SaleCancellation => {
                if let Some(Ok(s)) = d.cancelled_sale.map(from_json_value::<Sale>) {
                    sale_net(&s, -1, &mut add);
                }
            }
            // Refunds paid at the counter, of a return or an omni return
            // (the body was validated when taken).
            DocumentKind::Return | DocumentKind::OmniReturn => {
                let refunds = d.body.get("refunds").cloned().unwrap_or_default();
                if let Ok(refunds) = serde_json::from_value::<Vec<Payment>>(refunds) {
                    for p in &refunds {
                        add(&p.method, -p.amount);
                    }
                }
            }
            DocumentKind::CashMovement => {
                if let Ok(m) = from_json_value::<CashMovement>(d.body) {
                    match m.kind {
                        CashMovementKind::Supply => add(CASH, m.amount),
                        CashMovementKind::Withdrawal => add(CASH, -m.amount),
                    }
                }
            }
            _ => {}
        }
    }
    by
}

/// The close reconciled: each method expected, and counted where the close
/// counts it (cash: `counted_amount`; others: its `totals`).
pub fn cash_close(close: &CashClose, expected: &BTreeMap<String, i64>) -> CashReconciliation {
    let mut methods: BTreeMap<String, MethodCheck> = expected
        .iter()
        .map(|(m, e)| {
            (
                m.clone(),
                MethodCheck {
                    method: m.clone(),
                    expected: *e,
                    counted: None,
                    difference: None,
                },
            )
        })
        .collect();
    let mut count = |m: &str, v: i64| {
        let c = methods.entry(m.to_owned()).or_insert_with(|| MethodCheck {
            method: m.to_owned(),
            expected: 0,
            counted: None,
            difference: None,
        });
        c.counted = Some(v);
        c.difference = Some(v - c.expected);
    };
    for t in close.totals.iter().filter(|t| t.method != CASH) {
        count(&t.method, t.amount);
    }
    count(CASH, close.counted_amount);
    let cash_difference = methods.get(CASH).and_then(|c| c.difference).unwrap_or(0);
    CashReconciliation {
        methods: methods.into_values().collect(),
        cash_difference,
    }
}

/// A Redução Z against the totals of its register's sales that day.
pub fn reducao_z(z: &ReducaoZ, sales_total: i64, sales: u64) -> ZCheck {
    ZCheck {
        sales_total,
        sales,
        z_net_total: z.net_total,
        difference: z.net_total - sales_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_shortfall_is_the_counted_cash_less_what_the_documents_say() {
        let open = json!({"register": "PDV01", "operator": "001", "opening_amount": 10_000,
                          "opened_at": "2026-11-30T08:00:00Z"});
        let sale = json!({"register": "PDV01", "session_id": uuid::Uuid::nil(), "number": 1, "operator": "001",
                          "items": [{"product_code": "1", "qty": 1000, "unit_price": 4_500, "total": 4_500}],
                          "total": 4_500, "payments": [{"method": "CASH", "amount": 5_000}, ], "change": 500,
                          "sold_at": "2026-11-30T09:00:00Z"});
        let card = json!({"register": "PDV01", "session_id": uuid::Uuid::nil(), "number": 2, "operator": "001",
                          "items": [{"product_code": "1", "qty": 1000, "unit_price": 3_000, "total": 3_000}],
                          "total": 3_000, "payments": [{"method": "CREDIT", "amount": 3_000}],
                          "sold_at": "2026-11-30T09:30:00Z"});
        let withdrawal = json!({"register": "PDV01", "session_id": uuid::Uuid::nil(), "kind": "withdrawal",
                                "amount": 2_000, "at": "2026-11-30T12:00:00Z"});
        let cancel = json!({"sale_id": uuid::Uuid::nil(), "register": "PDV01", "reason_code": "1",
                            "operator": "001", "cancelled_at": "2026-11-30T13:00:00Z"});
        let docs = [
            SessionDoc {
                kind: DocumentKind::CashOpen,
                body: &open,
                cancelled_sale: None,
            },
            SessionDoc {
                kind: DocumentKind::Sale,
                body: &sale,
                cancelled_sale: None,
            },
            SessionDoc {
                kind: DocumentKind::Sale,
                body: &card,
                cancelled_sale: None,
            },
            SessionDoc {
                kind: DocumentKind::CashMovement,
                body: &withdrawal,
                cancelled_sale: None,
            },
            SessionDoc {
                kind: DocumentKind::SaleCancellation,
                body: &cancel,
                cancelled_sale: Some(&card),
            },
        ];
        let e = expected(&docs);
        // 100 + 45 (50 paid, 5 change) − 20 withdrawn; the card sale cancelled.
        assert_eq!(e.get(CASH), Some(&12_500));
        assert_eq!(e.get("CREDIT"), Some(&0));
        let close: CashClose = from_json_value(
            &json!({"register": "PDV01", "session_id": uuid::Uuid::nil(),
            "operator": "001", "counted_amount": 12_000, "closed_at": "2026-11-30T20:00:00Z"}),
        )
        .unwrap();
        let r = cash_close(&close, &e);
        assert_eq!(r.cash_difference, -500, "R$ 5,00 short");
    }
}
