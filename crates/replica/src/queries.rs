//! What the POS asks the replica. Answers come from the replica alone.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{CatalogReader, Result};

/// The price the POS charges, from the most specific price list the store
/// sees: the store's own list (named after the store id), then any other
/// node's list, then `base`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub price_list: String,
    /// Regular price, centavos.
    pub price: i64,
    /// Promotional price, centavos, when a promotion is running now.
    pub promo_price: Option<i64>,
    /// What to charge now: the promotional price if running, else the price.
    pub effective_price: i64,
}

/// A product with everything needed to sell it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    /// The product row (registry columns of `products`).
    #[schema(value_type = Object)]
    pub product: Map<String, Value>,
    pub barcodes: Vec<String>,
    pub price: Option<PriceView>,
    /// The `product_taxes` row (NCM, ECF tribute, CFOP, ICMS, PIS/COFINS, ST, FCP).
    #[schema(value_type = Option<Object>)]
    pub taxes: Option<Map<String, Value>>,
    /// Stock on hand, thousandths.
    pub stock_qty: Option<i64>,
    /// `kits` rows of this product when it is a kit.
    #[schema(value_type = Vec<Object>)]
    pub kit_components: Vec<Map<String, Value>>,
}

/// One name-search hit, best first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProductHit {
    pub code: String,
    pub name: String,
    /// Effective price, centavos, when the product has one.
    pub price: Option<i64>,
}

impl CatalogReader {
    /// `store` picks the price list. `None` when the barcode is unknown.
    pub fn product_by_barcode(&self, barcode: &str, store: &str) -> Result<Option<ProductView>> {
        let _ = (barcode, store);
        todo!("replica: product_by_barcode")
    }

    pub fn product_by_code(&self, code: &str, store: &str) -> Result<Option<ProductView>> {
        let _ = (code, store);
        todo!("replica: product_by_code")
    }

    /// FTS5 name search, ranked (bm25), `limit` capped at 100. The query is
    /// user text: it is turned into prefix terms, never passed as FTS syntax.
    pub fn search_products(&self, q: &str, limit: u32, store: &str) -> Result<Vec<ProductHit>> {
        let _ = (q, limit, store);
        todo!("replica: search_products")
    }

    pub fn customer_by_document(&self, document: &str) -> Result<Option<Map<String, Value>>> {
        let _ = document;
        todo!("replica: customer_by_document")
    }

    /// All rows of a (small) reference entity, by key order; `filter` is an
    /// optional (column, value) equality, e.g. ("uf", "SP") for cities.
    /// Refuses secret entities and columns not in the registry.
    pub fn list(&self, entity: &str, filter: Option<(&str, &str)>, limit: u32) -> Result<Vec<Map<String, Value>>> {
        let _ = (entity, filter, limit);
        todo!("replica: list")
    }

    /// `parameters` as one object name → value.
    pub fn parameters(&self) -> Result<Map<String, Value>> {
        todo!("replica: parameters")
    }

    /// Promotions active at `now` (RFC 3339): active flag not false, starts_at ≤ now < ends_at.
    pub fn active_promotions(&self, now: &str) -> Result<Vec<Map<String, Value>>> {
        let _ = now;
        todo!("replica: active_promotions")
    }

    /// Omni orders not yet delivered or cancelled.
    pub fn pending_omni_orders(&self) -> Result<Vec<Map<String, Value>>> {
        todo!("replica: pending_omni_orders")
    }
}
