//! Read routes: answered from the replica alone, never from the central.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use loja_replica::{CatalogReader, ProductHit, ProductView};
use serde::Serialize;
use serde_json::{Map, Value};

use super::ApiState;
use super::error::{ApiError, json_bytes, json_response};

/// `{"status": "ok"}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Name-search hits, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub q: String,
    pub limit: u32,
    pub items: Vec<ProductHit>,
}

/// The rows of a reference list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReferenceList {
    /// The list asked for, e.g. `payment-methods`.
    pub list: String,
    /// The registry entity it comes from, e.g. `payment_methods`.
    pub entity: String,
    /// Registry rows (columns as in docs/entities.md).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Map<String, Value>>,
}

/// Rows of an entity, e.g. active promotions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rows {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Map<String, Value>>,
}

/// Reference lists: URL name → registry entity.
pub const REFERENCE_LISTS: &[(&str, &str)] = &[
    ("payment-methods", "payment_methods"),
    ("discount-reasons", "discount_reasons"),
    ("return-reasons", "return_reasons"),
    ("discount-types", "discount_types"),
    ("employees", "employees"),
    ("sale-modalities", "sale_modalities"),
    ("sales-channels", "sales_channels"),
    ("states", "states"),
    ("cities", "cities"),
    ("lgpd-letter", "lgpd_letters"),
    ("lgpd-config", "lgpd_config"),
    ("electronic-products", "electronic_products"),
    ("loyalty-programs", "loyalty_programs"),
];

/// Most rows one reference list answers (Brazil has ~5 570 cities).
const LIST_LIMIT: u32 = 10_000;
const SEARCH_DEFAULT: u32 = 20;
const SEARCH_MAX: u32 = 100;
/// A product answer is ~600 bytes (more for a kit): one allocation.
const PRODUCT_JSON_CAPACITY: usize = 1024;

/// Liveness: no auth, no database.
#[utoipa::path(get, path = "/v1/health", tag = "status",
    responses((status = 200, description = "lojad is up", body = Health)))]
pub async fn health() -> Response {
    json_response(StatusCode::OK, &Health { status: "ok" })
}

/// Sync health: per-job last/next run and outcome, outbox depth and oldest
/// undelivered document, failed tickets, replica counts.
#[utoipa::path(get, path = "/v1/status", tag = "status", security(("bearer" = [])),
    responses((status = 200, description = "The status report", body = crate::status::StatusReport),
              (status = 401, description = "No or unknown token", body = ErrorSchema)))]
pub async fn status(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let report = st.status_report().await?;
    Ok(json_response(StatusCode::OK, &*report))
}

/// Product by barcode (EAN/GTIN-8/12/13/14), with its current price for
/// this store, taxes, stock and kit components.
#[utoipa::path(get, path = "/v1/products/by-barcode/{ean}", tag = "products", security(("bearer" = [])),
    params(("ean" = String, Path, description = "GTIN-8, -12, -13 or -14, digits only", example = "7891000315507")),
    responses((status = 200, description = "The product", body = ProductView),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "No product has this barcode", body = ErrorSchema),
              (status = 503, description = "Products not synced yet (a first start): `catalog_not_synced`, retry", body = ErrorSchema),
              (status = 422, description = "Not a valid GTIN (field `ean`)", body = ErrorSchema)))]
pub async fn product_by_barcode(
    State(st): State<ApiState>,
    Path(ean): Path<String>,
) -> Result<Response, ApiError> {
    loja_protocol::check::gtin(&ean).map_err(|e| ApiError::field("ean", format!("ean: {e}")))?;
    product_answer(
        &st,
        ean,
        CatalogReader::product_json_by_barcode,
        "no product has this barcode",
    )
    .await
}

/// Product by its code.
#[utoipa::path(get, path = "/v1/products/{code}", tag = "products", security(("bearer" = [])),
    params(("code" = String, Path, description = "Product code")),
    responses((status = 200, description = "The product", body = ProductView),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "No product has this code", body = ErrorSchema),
              (status = 503, description = "Products not synced yet (a first start): `catalog_not_synced`, retry", body = ErrorSchema),
              (status = 422, description = "Empty code (field `code`)", body = ErrorSchema)))]
pub async fn product_by_code(
    State(st): State<ApiState>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    if code.trim().is_empty() {
        return Err(ApiError::field("code", "code: must not be empty"));
    }
    product_answer(
        &st,
        code,
        CatalogReader::product_json_by_code,
        "no product has this code",
    )
    .await
}

/// Runs a product lookup on a reader and answers with the JSON the replica
/// writes straight from its rows (the lookup's hot path: no ProductView).
async fn product_answer(
    st: &ApiState,
    key: String,
    lookup: fn(&CatalogReader, &str, &str, &mut Vec<u8>) -> loja_replica::Result<bool>,
    not_found: &'static str,
) -> Result<Response, ApiError> {
    let store = st.store_id();
    let found = st
        .readers
        .run(move |r| {
            let mut out = Vec::with_capacity(PRODUCT_JSON_CAPACITY);
            Ok(lookup(r, &key, &store, &mut out)?.then_some(out))
        })
        .await?;
    match found {
        Some(body) => Ok(json_bytes(StatusCode::OK, body)),
        None if !st.catalog_synced().await? => Err(not_synced()),
        None => Err(ApiError::not_found(not_found)),
    }
}

/// What a lookup that finds nothing answers before the products' first sync.
fn not_synced() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "catalog_not_synced",
        "the products have not had their first sync from the central yet: lojad cannot tell \
         whether this product exists; retry shortly (GET /v1/status shows the sync)",
    )
}

/// Name search (full text, ranked, prefix terms).
#[utoipa::path(get, path = "/v1/products", tag = "products", security(("bearer" = [])),
    params(("q" = String, Query, min_length = 1, pattern = r"\S", description = "Words of the name; each is matched as a prefix"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
    responses((status = 200, description = "Hits, best first", body = SearchResult),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 422, description = "Empty `q` or `limit` out of 1..=100", body = ErrorSchema),
              (status = 503, description = "No hits and products not synced yet (a first start): `catalog_not_synced`, retry", body = ErrorSchema)))]
pub async fn search_products(
    State(st): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_params(&params, &["q", "limit"])?;
    let q = params
        .get("q")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    // Blank as the OpenAPI document's `\S` means it (Python's white space).
    if loja_protocol::limits::is_blank(&q) {
        return Err(ApiError::field("q", "q: must not be empty"));
    }
    let limit = match params.get("limit") {
        None => SEARCH_DEFAULT,
        Some(l) => match l.trim().parse::<u32>() {
            Ok(n) if (1..=SEARCH_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "limit",
                    format!("limit: must be an integer from 1 to {SEARCH_MAX}"),
                ));
            }
        },
    };
    let store = st.store_id();
    let q2 = q.clone();
    let items = st
        .readers
        .run(move |r| r.search_products(&q2, limit, &store))
        .await?;
    if items.is_empty() && !st.catalog_synced().await? {
        return Err(not_synced());
    }
    Ok(json_response(
        StatusCode::OK,
        &SearchResult { q, limit, items },
    ))
}

/// Refuses a query parameter the route does not take, naming it: a POS that
/// sends `?state=SP` for `?uf=SP` must hear so, not get every city.
pub(super) fn only_params(
    params: &HashMap<String, String>,
    takes: &[&str],
) -> Result<(), ApiError> {
    let Some(unknown) = params.keys().find(|k| !takes.contains(&k.as_str())) else {
        return Ok(());
    };
    let takes = match takes {
        [] => "none".to_owned(),
        _ => takes.join(", "),
    };
    Err(ApiError::field(
        unknown,
        format!("{unknown}: unknown query parameter; this route takes: {takes}"),
    ))
}

/// Customer by CPF (11 digits) or CNPJ (14 digits).
#[utoipa::path(get, path = "/v1/customers/by-document/{cpf_or_cnpj}", tag = "customers", security(("bearer" = [])),
    params(("cpf_or_cnpj" = String, Path, description = "CPF or CNPJ, digits (punctuation as printed, 529.982.247-25, is ignored)", example = "52998224725")),
    responses((status = 200, description = "The customer row", body = Object),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "Unknown customer", body = ErrorSchema),
              (status = 422, description = "Bad check digit (field `cpf_or_cnpj`)", body = ErrorSchema)))]
pub async fn customer_by_document(
    State(st): State<ApiState>,
    Path(document): Path<String>,
) -> Result<Response, ApiError> {
    // The POS may pass the document as printed on it: 529.982.247-25,
    // 11.222.333/0001-81. The punctuation goes; anything else is checked.
    let printed = document.bytes().any(|b| matches!(b, b'.' | b'-' | b'/'))
        && document
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'/'));
    let document: String = if printed {
        document.chars().filter(char::is_ascii_digit).collect()
    } else {
        document
    };
    loja_protocol::check::cpf_or_cnpj(&document)
        .map_err(|e| ApiError::field("cpf_or_cnpj", format!("cpf_or_cnpj: {e}")))?;
    let found = st
        .readers
        .run(move |r| r.customer_by_document(&document))
        .await?;
    match found {
        Some(c) => Ok(json_response(StatusCode::OK, &c)),
        None => Err(ApiError::not_found("no customer has this CPF/CNPJ")),
    }
}

/// A reference list: payment-methods, discount-reasons, return-reasons, discount-types,
/// employees, sale-modalities, sales-channels, states, cities (`?uf=SP`),
/// lgpd-letter (the latest version only), lgpd-config, electronic-products,
/// loyalty-programs.
#[utoipa::path(get, path = "/v1/reference/{list}", tag = "reference", security(("bearer" = [])),
    params(("list" = String, Path, description = "One of the list names above"),
           ("uf" = Option<String>, Query, description = "cities only: the state, e.g. SP")),
    responses((status = 200, description = "The rows", body = ReferenceList),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "Unknown list", body = ErrorSchema),
              (status = 422, description = "Bad `uf`", body = ErrorSchema)))]
pub async fn reference(
    State(st): State<ApiState>,
    Path(list): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(&(_, entity)) = REFERENCE_LISTS.iter().find(|(name, _)| *name == list) else {
        let names: Vec<&str> = REFERENCE_LISTS.iter().map(|(n, _)| *n).collect();
        return Err(ApiError::not_found(format!(
            "no reference list `{list}`; lists: {}",
            names.join(", ")
        )));
    };
    only_params(&params, if entity == "cities" { &["uf"] } else { &[] })?;
    let uf = match (entity, params.get("uf")) {
        ("cities", Some(uf)) => {
            loja_protocol::check::uf(uf).map_err(|e| ApiError::field("uf", format!("uf: {e}")))?;
            Some(uf.clone())
        }
        _ => None,
    };
    let mut items = st
        .readers
        .run(move |r| r.list(entity, uf.as_deref().map(|uf| ("uf", uf)), LIST_LIMIT))
        .await?;
    if entity == "lgpd_letters" {
        let latest = items.drain(..).max_by_key(|row| {
            row.get("version")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MIN)
        });
        items.extend(latest);
    }
    Ok(json_response(
        StatusCode::OK,
        &ReferenceList {
            list,
            entity: entity.to_owned(),
            items,
        },
    ))
}

/// General parameters as one object, name → value.
#[utoipa::path(get, path = "/v1/parameters", tag = "reference", security(("bearer" = [])),
    responses((status = 200, description = "name → value", body = Object),
              (status = 401, description = "No or unknown token", body = ErrorSchema)))]
pub async fn parameters(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let p = st.readers.run(|r| r.parameters()).await?;
    Ok(json_response(StatusCode::OK, &p))
}

/// Promotional campaigns running now.
#[utoipa::path(get, path = "/v1/promotions", tag = "reference", security(("bearer" = [])),
    responses((status = 200, description = "Active promotions", body = Rows),
              (status = 401, description = "No or unknown token", body = ErrorSchema)))]
pub async fn promotions(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let now = loja_protocol::time::now_rfc3339();
    let items = st.readers.run(move |r| r.active_promotions(&now)).await?;
    Ok(json_response(StatusCode::OK, &Rows { items }))
}

/// The error body, for the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorSchema {
    pub error: ErrorDetailSchema,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetailSchema {
    /// Stable machine code: `invalid_field`, `unauthorized`, `not_found`,
    /// `payload_too_large`, `timeout`, `disk_full`, …
    pub code: String,
    pub message: String,
    /// The field (or path/query parameter) at fault, for 422s.
    pub field: Option<String>,
}
