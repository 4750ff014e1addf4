//! Every document kind's body check in one place: `DocumentKind::validate_body`
//! dispatches to the typed body of each kind (`document.rs` and `omni.rs`).
//! Kept apart so `document.rs` need not know the omni module, which builds
//! on it.

use serde::Deserialize;
use serde_json::Value;

use crate::document::{
    CashClose, CashMovement, CashOpen, CustomerSignup, DocumentKind, InventoryCount,
    OmniOrderStatus, ReducaoZ, Return, ReturnCancellation, Sale, SaleCancellation, SalePayment,
    SaleXml, StockMovement, Validate, from_json_value,
};
use crate::error::FieldError;
use crate::omni::{OmniAction, OmniReturn};

impl DocumentKind {
    /// Validates a body of this kind and returns the cash register it
    /// belongs to (documents of one register are delivered in order).
    pub fn validate_body(self, body: &Value) -> Result<String, FieldError> {
        fn typed<T: for<'de> Deserialize<'de> + Validate>(
            body: &Value,
        ) -> Result<String, FieldError> {
            let doc: T = from_json_value(body)?;
            doc.validate()?;
            Ok(doc.register().to_owned())
        }
        match self {
            DocumentKind::CashOpen => typed::<CashOpen>(body),
            DocumentKind::CashMovement => typed::<CashMovement>(body),
            DocumentKind::CashClose => typed::<CashClose>(body),
            DocumentKind::Customer => typed::<CustomerSignup>(body),
            DocumentKind::Sale => typed::<Sale>(body),
            DocumentKind::SalePayment => typed::<SalePayment>(body),
            DocumentKind::SaleXml => typed::<SaleXml>(body),
            DocumentKind::ReducaoZ => typed::<ReducaoZ>(body),
            DocumentKind::OmniOrderStatus => typed::<OmniOrderStatus>(body),
            DocumentKind::SaleCancellation => typed::<SaleCancellation>(body),
            DocumentKind::Return => typed::<Return>(body),
            DocumentKind::ReturnCancellation => typed::<ReturnCancellation>(body),
            DocumentKind::StockMovement => typed::<StockMovement>(body),
            DocumentKind::InventoryCount => typed::<InventoryCount>(body),
            DocumentKind::OmniAction => typed::<OmniAction>(body),
            DocumentKind::OmniReturn => typed::<OmniReturn>(body),
        }
    }
}
