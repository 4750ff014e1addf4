//! In-process tests of every route: the router over an `AppState` in a temp
//! data dir whose replica is filled through `Catalog::apply_page`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use loja_protocol::{FeedItem, FeedPage, Op, Watermark, entity_named};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

use super::writes::examples;
use super::{ApiOptions, ReadMode, router_with, routes};
use crate::config::Config;
use crate::state::AppState;

pub const TOKEN: &str = "token-pdv01";
const STORE: &str = "0042";
const MAX_BODY: usize = 64 * 1024;

pub struct Fixture {
    pub app: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

pub fn config(dir: &std::path::Path) -> Config {
    serde_json::from_value(json!({
        "store": {"id": STORE, "data_dir": dir},
        "central": {"url": "http://127.0.0.1:9", "token": "central-secret"},
        "pos": {"listen": "127.0.0.1:0", "max_body_bytes": MAX_BODY,
                "tokens": [{"terminal": "PDV01", "token": TOKEN}, {"terminal": "PDV02", "token": "token-pdv02"}]}
    }))
    .expect("test config")
}

/// A GTIN-13 from its first twelve digits.
pub fn ean(body12: &str) -> String {
    let digits: Vec<u8> = body12.bytes().map(|b| b - b'0').collect();
    format!(
        "{body12}{}",
        loja_protocol::check::gtin_check_digit(&digits)
    )
}

fn rows(v: Value) -> Vec<Map<String, Value>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r.as_object().expect("object").clone())
        .collect()
}

pub fn apply(state: &AppState, entity: &str, rows: Vec<Map<String, Value>>) {
    feed(state, entity, Op::Upsert, rows);
}

/// Deletes rows (by their key columns) as a feed page would.
pub fn remove(state: &AppState, entity: &str, keys: Vec<Map<String, Value>>) {
    feed(state, entity, Op::Delete, keys);
}

fn feed(state: &AppState, entity: &str, op: Op, rows: Vec<Map<String, Value>>) {
    let e = entity_named(entity).expect("entity");
    let mut catalog = state.catalog.lock().expect("catalog");
    let after = catalog.watermark(e).expect("watermark");
    let items: Vec<FeedItem> = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| FeedItem {
            seq: after.0 + 1 + i as u64,
            op,
            row,
        })
        .collect();
    let next = Watermark(after.0 + items.len() as u64);
    let page = FeedPage {
        entity: entity.into(),
        after,
        items,
        next,
        more: false,
        held_until: None,
    };
    catalog
        .apply_page(e, &page)
        .unwrap_or_else(|err| panic!("apply {entity}: {err}"));
}

pub fn fill(state: &AppState) {
    apply(
        state,
        "products",
        rows(json!([
            {"code": "1", "name": "Refrigerante Cola 2L", "unit": "UN", "ncm": "22021000", "active": true},
            {"code": "2", "name": "Pao frances", "unit": "KG", "weighable": true, "active": true},
            {"code": "K1", "name": "Kit churrasco", "unit": "UN", "is_kit": true, "active": true}
        ])),
    );
    apply(
        state,
        "barcodes",
        rows(json!([
            {"barcode": "7891000315507", "product_code": "1"},
            {"barcode": ean("789100031551"), "product_code": "2"}
        ])),
    );
    apply(
        state,
        "kits",
        rows(json!([
            {"kit_code": "K1", "component_code": "1", "qty": 2000},
            {"kit_code": "K1", "component_code": "2", "qty": 1000}
        ])),
    );
    apply(
        state,
        "prices",
        rows(json!([
            {"product_code": "1", "price_list": "base", "price": 999},
            {"product_code": "1", "price_list": STORE, "price": 949},
            {"product_code": "2", "price_list": "base", "price": 500},
            {"product_code": "K1", "price_list": "base", "price": 2500}
        ])),
    );
    apply(
        state,
        "stock",
        rows(json!([{"product_code": "1", "qty": 12000}])),
    );
    apply(
        state,
        "product_taxes",
        rows(json!([
            {"product_code": "1", "ecf_tribute": "T18", "ncm": "22021000", "cfop": "5102"}
        ])),
    );
    apply(
        state,
        "customers",
        rows(json!([{"document": "11222333000181", "name": "Empresa X"}])),
    );
    apply(
        state,
        "payment_methods",
        rows(json!([
            {"code": "CASH", "description": "Dinheiro", "kind": "cash", "gives_change": true},
            {"code": "TEF", "description": "Cartao", "kind": "card", "tef": true}
        ])),
    );
    apply(
        state,
        "discount_reasons",
        rows(json!([{"code": "D1", "description": "Avaria"}])),
    );
    apply(
        state,
        "return_reasons",
        rows(json!([
            {"code": "02", "description": "Defeito", "restock": false},
            {"code": "03", "description": "Produto diferente do pedido", "restock": true, "omni": true},
            {"code": "05", "description": "Desistencia", "restock": true}
        ])),
    );
    apply(
        state,
        "discount_types",
        rows(json!([{"code": "T1", "description": "Percentual", "max_percent_bp": 1000}])),
    );
    apply(
        state,
        "employees",
        rows(json!([{"code": "001", "name": "Operador", "role": "operator"}])),
    );
    apply(
        state,
        "sale_modalities",
        rows(json!([{"code": "M1", "description": "Balcao"}])),
    );
    apply(
        state,
        "sales_channels",
        rows(json!([{"code": "C1", "description": "Loja"}])),
    );
    apply(
        state,
        "states",
        rows(json!([{"uf": "SP", "name": "Sao Paulo"}, {"uf": "RJ", "name": "Rio de Janeiro"}])),
    );
    apply(
        state,
        "cities",
        rows(json!([
            {"ibge_code": 3550308, "name": "Sao Paulo", "uf": "SP"},
            {"ibge_code": 3509502, "name": "Campinas", "uf": "SP"},
            {"ibge_code": 3304557, "name": "Rio de Janeiro", "uf": "RJ"}
        ])),
    );
    apply(
        state,
        "lgpd_letters",
        rows(json!([{"version": 1, "text": "v1"}, {"version": 2, "text": "v2"}])),
    );
    apply(
        state,
        "lgpd_config",
        rows(json!([{"name": "required", "value": "true"}])),
    );
    apply(
        state,
        "electronic_products",
        rows(json!([{"code": "E1", "description": "Recarga"}])),
    );
    apply(
        state,
        "loyalty_programs",
        rows(json!([{"code": "F1", "name": "Clube"}])),
    );
    apply(
        state,
        "parameters",
        rows(json!([{"name": "max_discount_bp", "value": "1000"}])),
    );
    apply(
        state,
        "promotions",
        rows(json!([
            {"code": "P1", "name": "Running", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"},
            {"code": "P2", "name": "Over", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2021-01-01T00:00:00Z"}
        ])),
    );
    apply(
        state,
        "omni_orders",
        rows(Value::Array(
            ["O1", "O2"]
                .into_iter()
                .map(|id| {
                    let mut o = loja_protocol::omni::NewOrder {
                        id: id.into(),
                        number: format!("N-{id}"),
                        channel: "site".into(),
                        customer_document: None,
                        delivery: loja_protocol::omni::Delivery::Pickup,
                        paid: true,
                        payments: vec![],
                        freight: 0,
                        created_at: "2026-11-26T10:00:00Z".into(),
                        store: "loja-test".into(),
                        lines: vec![loja_protocol::omni::NewLine {
                            line_id: "1".into(),
                            product_code: "1".into(),
                            qty: 1000,
                            unit_price: 1000,
                            total: 1000,
                        }],
                    }
                    .into_order();
                    if id == "O2" {
                        o.lines[0].state = loja_protocol::omni::LineState::HandedOver;
                        o.lines[0].delivered_qty = 1000;
                    }
                    loja_protocol::omni::to_row(&o, 0, "2026-11-26T10:00:00Z")
                })
                .collect(),
        )),
    );
}

pub fn fixture_with(options: ApiOptions) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = AppState::open(config(dir.path())).expect("AppState::open");
    fill(&state);
    Fixture {
        app: router_with(state.clone(), options),
        state,
        _dir: dir,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(ApiOptions {
        read_mode: ReadMode::Inline,
        ..ApiOptions::default()
    })
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Answer {
    fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn call_raw(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = ctype {
        req = req.header(header::CONTENT_TYPE, c);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        body,
        text,
    }
}

pub async fn get(app: &Router, path: &str) -> Answer {
    call_raw(app, Method::GET, path, Some(TOKEN), None, Vec::new()).await
}

pub async fn post(app: &Router, path: &str, body: &Value) -> Answer {
    call_raw(
        app,
        Method::POST,
        path,
        Some(TOKEN),
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

pub fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(
        a.content_type.starts_with("application/json"),
        "content type {} for {}",
        a.content_type,
        a.text
    );
    assert_eq!(a.code(), code, "{}", a.text);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
}

fn assert_field(a: &Answer, field: &str) {
    assert_error(a, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(a.field(), field, "{}", a.text);
}

/// A concrete URL for a route template.
fn concrete(path: &str) -> String {
    path.replace("{ean}", "7891000315507")
        .replace("{code}", "1")
        .replace("{cpf_or_cnpj}", "11222333000181")
        .replace("{list}", "payment-methods")
        .replace("{id}", examples::SALE)
}

#[tokio::test]
async fn health_needs_no_token() {
    let f = fixture();
    let a = call_raw(&f.app, Method::GET, "/v1/health", None, None, vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn every_token_route_answers_401_without_a_valid_token() {
    let f = fixture();
    for route in routes().into_iter().filter(|r| r.auth) {
        let path = concrete(route.path);
        for token in [None, Some("wrong"), Some(""), Some("token-pdv01x")] {
            let a = call_raw(
                &f.app,
                route.method.clone(),
                &path,
                token,
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await;
            assert_error(&a, StatusCode::UNAUTHORIZED, "unauthorized");
        }
        // Not a bearer scheme at all.
        let req = Request::builder()
            .method(route.method.clone())
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
            .body(Body::empty())
            .expect("request");
        let resp = f.app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The second terminal's token works too.
    let a = call_raw(
        &f.app,
        Method::GET,
        "/v1/parameters",
        Some("token-pdv02"),
        None,
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_back() {
    let f = fixture();
    let a = get(&f.app, "/v1/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    let paths = a.body["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            documented += 1;
            assert!(
                routes()
                    .iter()
                    .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                "{method} {path} is documented but not routed"
            );
        }
    }
    for route in routes() {
        let op = &a.body["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is routed but not in the OpenAPI document",
            route.method,
            route.path
        );
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured, route.auth,
            "{} {}: security in the document differs from the router",
            route.method, route.path
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{}",
            route.path
        );
    }
    assert_eq!(documented, routes().len());
    assert!(a.body["components"]["securitySchemes"]["bearer"].is_object());
    assert!(a.body["components"]["schemas"]["ProductView"].is_object());
    // Every schema the document points at is in it.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&a.body, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        assert!(
            a.body["components"]["schemas"][name].is_object(),
            "{r} points at no schema"
        );
    }
    // Every write documents the same answers.
    let sale = &a.body["paths"]["/v1/sales/{id}/payments"]["post"]["responses"];
    for status in [
        "200", "201", "400", "401", "409", "413", "415", "422", "503", "507",
    ] {
        assert!(sale[status].is_object(), "sale payment: no {status}");
    }
}

/// The write bodies are typed from the protocol's documents, with the
/// bounds of `loja_protocol::limits` (issue 12, defect 5).
#[tokio::test]
async fn the_openapi_document_types_every_write_body() {
    use loja_protocol::limits;
    let f = fixture();
    let doc = get(&f.app, "/v1/openapi.json").await.body;
    if let Ok(path) = std::env::var("LOJA_WRITE_OPENAPI") {
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
    let schemas = &doc["components"]["schemas"];
    for route in routes().iter().filter(|r| r.method == Method::POST) {
        let body = &doc["paths"][route.path]["post"]["requestBody"];
        assert_eq!(body["required"], true, "{}", route.path);
        let r = body["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no schema $ref: {body}", route.path));
        let name = r.trim_start_matches("#/components/schemas/");
        let s = &schemas[name];
        assert_eq!(s["type"], "object", "{name}");
        assert_eq!(s["additionalProperties"], false, "{name}");
        assert_eq!(s["properties"]["id"]["format"], "uuid", "{name}");
        assert!(
            s["required"].as_array().unwrap().contains(&json!("id")),
            "{name}"
        );
        for (field, p) in s["properties"].as_object().unwrap() {
            assert!(p.is_object(), "{name}.{field}");
            if p["type"] == "string" && p["format"].is_null() && p["enum"].is_null() {
                assert!(
                    p["maxLength"].is_u64()
                        || p["pattern"].as_str().is_some_and(|p| p.ends_with('$')),
                    "{name}.{field} is an unbounded string: {p}"
                );
            }
        }
        // The path's own fields are not in the body's schema.
        assert!(s["properties"]["sale_id"].is_null(), "{name}");
        // (A sale names the omni order it redeems in its body.)
        assert!(
            s["properties"]["order_id"].is_null() || name == "SaleRequest",
            "{name}"
        );
        assert!(s["properties"]["return_id"].is_null(), "{name}");
    }
    let sale = &schemas["SaleRequest"];
    assert_eq!(
        sale["properties"]["operator"]["maxLength"],
        limits::CODE_MAX
    );
    assert_eq!(sale["properties"]["sold_at"]["format"], "date-time");
    assert_eq!(
        sale["properties"]["sold_at"]["pattern"],
        limits::pattern::UTC
    );
    assert_eq!(sale["properties"]["session_id"]["format"], "uuid");
    assert_eq!(sale["properties"]["items"]["maxItems"], limits::ITEMS_MAX);
    assert_eq!(sale["properties"]["total"]["maximum"], limits::MONEY_MAX);
    assert_eq!(sale["properties"]["total"]["minimum"], 0);
    let required: Vec<&str> = sale["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in [
        "id",
        "register",
        "session_id",
        "number",
        "operator",
        "items",
        "total",
    ] {
        assert!(required.contains(&field), "{field}: {required:?}");
    }
    assert!(!required.contains(&"discount"), "{required:?}");
    let item = &schemas["SaleItem"];
    assert_eq!(item["properties"]["qty"]["minimum"], 1);
    assert_eq!(item["properties"]["qty"]["maximum"], limits::QTY_MAX);
    assert_eq!(
        item["properties"]["barcode"]["pattern"],
        limits::pattern::GTIN
    );
    assert_eq!(
        schemas["CustomerRequest"]["properties"]["document"]["pattern"],
        limits::pattern::CPF_OR_CNPJ
    );
    // Path parameters: UUIDs say so.
    for path in [
        "/v1/sales/{id}/payments",
        "/v1/sales/{id}/xml",
        "/v1/sales/{id}/cancellation",
        "/v1/sales/{id}/returns",
        "/v1/returns/{id}/cancellation",
    ] {
        let p = &doc["paths"][path]["post"]["parameters"][0];
        assert_eq!(p["schema"]["format"], "uuid", "{path}");
    }
    let omni = &doc["paths"]["/v1/omni-orders/{id}/actions"]["post"]["parameters"][0];
    assert_eq!(omni["schema"]["maxLength"], limits::CODE_MAX);
    // A sale's life: tagged, and the state rules in the descriptions.
    for (path, tag, says) in [
        ("/v1/sales/{id}/cancellation", "sales", "sale_id"),
        ("/v1/sales/{id}/returns", "sales", "return_reasons"),
        ("/v1/returns/{id}/cancellation", "sales", "return_id"),
        ("/v1/stock/movements", "stock", "nfe_key"),
        ("/v1/stock/counts", "stock", "counted once"),
    ] {
        let op = &doc["paths"][path]["post"];
        assert_eq!(op["tags"], json!([tag]), "{path}");
        let text = format!("{}{}", op["summary"], op["description"]);
        assert!(text.contains(says), "{path}: {text}");
    }
    let ret = &schemas["ReturnRequest"];
    assert_eq!(
        ret["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/ReturnItem"
    );
}

#[tokio::test]
async fn the_openapi_examples_are_accepted() {
    let f = fixture();
    let doc = get(&f.app, "/v1/openapi.json").await.body;
    let example = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"].clone()
    };
    assert_eq!(example("/v1/cash/open"), examples::cash_open());
    assert_eq!(example("/v1/sales"), examples::sale());
}

#[tokio::test]
async fn product_by_barcode_and_code() {
    let f = fixture();
    let a = get(&f.app, "/v1/products/by-barcode/7891000315507").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["product"]["code"], "1");
    assert_eq!(
        a.body["price"]["price"], 949,
        "the store's own list wins: {}",
        a.text
    );
    assert_eq!(a.body["price"]["effective_price"], 949);
    assert_eq!(a.body["taxes"]["ecf_tribute"], "T18");
    assert_eq!(a.body["stock_qty"], 12000);
    assert!(
        a.body["barcodes"]
            .as_array()
            .is_some_and(|b| b.contains(&json!("7891000315507")))
    );

    let a = get(&f.app, "/v1/products/K1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body["kit_components"].as_array().map(Vec::len),
        Some(2),
        "{}",
        a.text
    );
    assert_eq!(a.body["price"]["price"], 2500);

    let unknown = ean("789999999999");
    assert_error(
        &get(&f.app, &format!("/v1/products/by-barcode/{unknown}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&f.app, "/v1/products/NOPE").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_field(
        &get(&f.app, "/v1/products/by-barcode/7891000315508").await,
        "ean",
    );
    assert_field(&get(&f.app, "/v1/products/by-barcode/12345").await, "ean");
    assert_field(
        &get(&f.app, "/v1/products/by-barcode/78910003155x7").await,
        "ean",
    );
    assert_field(&get(&f.app, "/v1/products/%20").await, "code");
}

#[tokio::test]
async fn product_search() {
    let f = fixture();
    let a = get(&f.app, "/v1/products?q=refri").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["items"][0]["code"], "1", "{}", a.text);
    assert_eq!(a.body["limit"], 20);
    let a = get(&f.app, "/v1/products?q=zzzz&limit=5").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["items"], json!([]));
    // User text is never FTS syntax.
    let a = get(&f.app, "/v1/products?q=%22%20OR%20*%20NEAR(").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_field(&get(&f.app, "/v1/products?q=").await, "q");
    assert_field(&get(&f.app, "/v1/products?q=%20%20").await, "q");
    assert_field(&get(&f.app, "/v1/products").await, "q");
    assert_field(&get(&f.app, "/v1/products?q=a&limit=0").await, "limit");
    assert_field(&get(&f.app, "/v1/products?q=a&limit=101").await, "limit");
    assert_field(&get(&f.app, "/v1/products?q=a&limit=ten").await, "limit");
    assert_field(&get(&f.app, "/v1/products?q=a&lmit=5").await, "lmit");
}

#[tokio::test]
async fn before_the_first_sync_an_unknown_product_is_503_not_404() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(config(dir.path())).unwrap();
    let app = router_with(
        state.clone(),
        ApiOptions {
            read_mode: ReadMode::Inline,
            ..ApiOptions::default()
        },
    );
    for path in [
        "/v1/products/by-barcode/7891000315507",
        "/v1/products/1",
        "/v1/products?q=cola",
    ] {
        let a = get(&app, path).await;
        assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "catalog_not_synced");
    }
    fill(&state);
    let a = get(&app, "/v1/products/by-barcode/7891000315507").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let unknown = format!("/v1/products/by-barcode/{}", ean("789999999999"));
    assert_error(
        &get(&app, &unknown).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&app, "/v1/products/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let a = get(&app, "/v1/products?q=zzzz").await;
    assert_eq!((a.status, &a.body["items"]), (StatusCode::OK, &json!([])));
}

#[tokio::test]
async fn customers_lookup_and_signup() {
    let f = fixture();
    let a = get(&f.app, "/v1/customers/by-document/11222333000181").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "Empresa X");
    // As printed on the card: the punctuation goes, the answer is the same.
    let printed = get(&f.app, "/v1/customers/by-document/11.222.333%2F0001-81").await;
    assert_eq!(printed.body, a.body, "{}", printed.text);
    // A wrong check digit (printed or not), a stray letter, a wrong length.
    for bad in [
        "11.222.333%2F0001-82",
        "11x222333000181",
        "52998224724",
        "123",
    ] {
        let a = get(&f.app, &format!("/v1/customers/by-document/{bad}")).await;
        assert_field(&a, "cpf_or_cnpj");
    }
    assert_error(
        &get(&f.app, "/v1/customers/by-document/52998224725").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let a = post(&f.app, "/v1/customers", &examples::customer()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["duplicate"], false);
    assert_eq!(a.body["id"], examples::customer()["id"]);
    assert!(a.body["store_seq"].as_u64().is_some());
    // Found at once, before the central has it.
    let a = get(&f.app, "/v1/customers/by-document/52998224725").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "Maria da Silva");
    let a = post(&f.app, "/v1/customers", &examples::customer()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], true);
    assert_eq!(a.body["readable"], true);

    // A crash between the outbox and the replica row (issue 12, defect 1):
    // the row and its document's mark are written in one transaction, so
    // the crash leaves neither; the POS's retry, a duplicate, writes them.
    // (Deleting only the row would be a replica the central erased since,
    // which a retry must not bring back.)
    rusqlite::Connection::open(f.state.config.store.data_dir.join("replica.db"))
        .unwrap()
        .execute_batch(
            "DELETE FROM customers WHERE document = '52998224725'; DELETE FROM local_documents;",
        )
        .unwrap();
    let a = post(&f.app, "/v1/customers", &examples::customer()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        (&a.body["duplicate"], &a.body["readable"]),
        (&json!(true), &json!(true))
    );
    let a = get(&f.app, "/v1/customers/by-document/52998224725").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    // The replica writer busy past the bound: stored, answered 202 not
    // readable yet; the write goes on and lands once the writer is free.
    let mut busy = examples::customer();
    busy["id"] = json!(Uuid::new_v4());
    busy["document"] = json!("11144477735");
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let catalog = f.state.catalog.clone();
    let holder = std::thread::spawn(move || {
        let _writer = catalog.lock().unwrap();
        held_tx.send(()).unwrap();
        std::thread::sleep(super::writes::LOCAL_ROW_WAIT + Duration::from_millis(500));
    });
    held_rx.recv().unwrap();
    let a = post(&f.app, "/v1/customers", &busy).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(
        (&a.body["duplicate"], &a.body["readable"]),
        (&json!(false), &json!(false))
    );
    holder.join().unwrap();
    let mut found = false;
    for _ in 0..50 {
        if get(&f.app, "/v1/customers/by-document/11144477735")
            .await
            .status
            == StatusCode::OK
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "the sign-up answered 202 is readable once the writer is free"
    );

    let mut bad = examples::customer();
    bad["id"] = json!(Uuid::new_v4());
    bad["document"] = json!("52998224724");
    assert_field(&post(&f.app, "/v1/customers", &bad).await, "document");
    let mut bad = examples::customer();
    bad["id"] = json!(Uuid::new_v4());
    bad.as_object_mut().unwrap().remove("name");
    assert_field(&post(&f.app, "/v1/customers", &bad).await, "name");
}

#[tokio::test]
async fn reference_lists_parameters_promotions_and_omni_orders() {
    let f = fixture();
    for (list, entity) in super::reads::REFERENCE_LISTS {
        let a = get(&f.app, &format!("/v1/reference/{list}")).await;
        assert_eq!(a.status, StatusCode::OK, "{list}: {}", a.text);
        assert_eq!(a.body["entity"], *entity);
        assert!(
            a.body["items"].as_array().is_some_and(|i| !i.is_empty()),
            "{list}: {}",
            a.text
        );
    }
    let a = get(&f.app, "/v1/reference/cities?uf=SP").await;
    assert_eq!(
        a.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        a.text
    );
    assert_field(&get(&f.app, "/v1/reference/cities?uf=sp").await, "uf");
    // A parameter the list does not take is named, not ignored.
    assert_field(&get(&f.app, "/v1/reference/cities?state=SP").await, "state");
    assert_field(&get(&f.app, "/v1/reference/states?uf=SP").await, "uf");
    let a = get(&f.app, "/v1/reference/lgpd-letter").await;
    assert_eq!(
        a.body["items"],
        json!([{"version": 2, "text": "v2"}]),
        "{}",
        a.text
    );
    assert_error(
        &get(&f.app, "/v1/reference/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&f.app, "/v1/reference/store_certificate").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let a = get(&f.app, "/v1/parameters").await;
    assert_eq!(a.body, json!({"max_discount_bp": "1000"}), "{}", a.text);
    let a = get(&f.app, "/v1/promotions").await;
    let codes: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["P1"], "{}", a.text);
    let a = get(&f.app, "/v1/omni-orders").await;
    let ids: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["O1"], "{}", a.text);
}

/// Each write route with its example body, a change that makes it invalid
/// and the field the 422 must name.
fn write_cases() -> Vec<(&'static str, Value, &'static str, Value, &'static str)> {
    let sale = examples::SALE;
    vec![
        (
            "/v1/cash/open",
            examples::cash_open(),
            "opening_amount",
            json!(-1),
            "opening_amount",
        ),
        (
            "/v1/cash/movements",
            examples::cash_movement(),
            "amount",
            json!(0),
            "amount",
        ),
        ("/v1/sales", examples::sale(), "total", json!(1), "total"),
        (
            "/v1/sales/SALE/payments",
            examples::sale_payment(),
            "payment",
            json!({"method": "", "amount": 1}),
            "payment.method",
        ),
        (
            "/v1/sales/SALE/xml",
            examples::sale_xml(),
            "access_key",
            json!("123"),
            "access_key",
        ),
        (
            "/v1/cash/close",
            examples::cash_close(),
            "closed_at",
            json!("yesterday"),
            "closed_at",
        ),
        (
            "/v1/fiscal/reducao-z",
            examples::reducao_z(),
            "net_total",
            json!(1),
            "net_total",
        ),
        (
            "/v1/customers",
            examples::customer(),
            "email",
            json!("nope"),
            "email",
        ),
        (
            "/v1/omni-orders/O1/actions",
            examples::omni_action(),
            "expects",
            json!("lost"),
            "expects",
        ),
        (
            "/v1/omni-orders/O2/returns",
            examples::omni_return(),
            "refunds",
            json!([{"method": "CASH", "amount": 1}]),
            "refunds",
        ),
        // A sale's life: the return, its cancellation, then the sale's
        // (a sale with a return that stands cannot be cancelled).
        (
            "/v1/sales/SALE/returns",
            examples::sale_return(),
            "refunds",
            json!([{"method": "CASH", "amount": 1}]),
            "refunds",
        ),
        (
            "/v1/returns/RETURN/cancellation",
            examples::return_cancellation(),
            "reason_code",
            json!(" "),
            "reason_code",
        ),
        (
            "/v1/sales/SALE/cancellation",
            examples::sale_cancellation(),
            "cancelled_at",
            json!("yesterday"),
            "cancelled_at",
        ),
        (
            "/v1/stock/movements",
            examples::stock_movement(),
            "nfe_key",
            Value::Null,
            "nfe_key",
        ),
        (
            "/v1/stock/counts",
            examples::inventory_count(),
            "items",
            json!([]),
            "items",
        ),
    ]
    .into_iter()
    .map(|(p, body, k, v, field)| {
        let p = p.replace("SALE", sale).replace("RETURN", examples::RETURN);
        let path: &'static str = Box::leak(p.into_boxed_str());
        (path, body, k, v, field)
    })
    .collect()
}

/// How many write routes `write_cases` covers (the property tests pick one).
const WRITE_CASES: usize = 15;

#[tokio::test]
async fn writes_are_stored_once_and_validated() {
    let f = fixture();
    for (path, body, key, bad_value, field) in write_cases() {
        // 422 naming the field (with a fresh id, so nothing is stored).
        let mut bad = body.clone();
        bad["id"] = json!(Uuid::new_v4());
        bad[key] = bad_value;
        assert_field(&post(&f.app, path, &bad).await, field);
        // Unknown field.
        let mut unknown = body.clone();
        unknown["id"] = json!(Uuid::new_v4());
        unknown["colour"] = json!("red");
        assert_field(&post(&f.app, path, &unknown).await, "colour");
        // Missing / bad id.
        let mut no_id = body.clone();
        no_id.as_object_mut().unwrap().remove("id");
        assert_field(&post(&f.app, path, &no_id).await, "id");
        let mut bad_id = body.clone();
        bad_id["id"] = json!("not-a-uuid");
        assert_field(&post(&f.app, path, &bad_id).await, "id");
        // A type error names the field.
        if let Some((k, _)) = body
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, v)| v.is_string() && *k != "id")
        {
            let mut typed = body.clone();
            typed["id"] = json!(Uuid::new_v4());
            typed[k.as_str()] = json!(12);
            let a = post(&f.app, path, &typed).await;
            assert_field(&a, k);
        }
        // Malformed JSON, not JSON, not an object.
        let a = call_raw(
            &f.app,
            Method::POST,
            path,
            Some(TOKEN),
            Some("application/json"),
            b"{\"id\": ".to_vec(),
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "malformed_json");
        assert_eq!(a.field(), "body");
        let a = call_raw(
            &f.app,
            Method::POST,
            path,
            Some(TOKEN),
            Some("text/plain"),
            body.to_string().into_bytes(),
        )
        .await;
        assert_error(
            &a,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        let a = call_raw(
            &f.app,
            Method::POST,
            path,
            Some(TOKEN),
            None,
            body.to_string().into_bytes(),
        )
        .await;
        assert_error(
            &a,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        assert_field(&post(&f.app, path, &json!([1, 2])).await, "body");
        // Oversized.
        let mut big = body.clone();
        big["id"] = json!(Uuid::new_v4());
        big["padding"] = json!("x".repeat(MAX_BODY + 1));
        let a = post(&f.app, path, &big).await;
        assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // Happy path, then the same id again.
        let a = post(&f.app, path, &body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{path}: {}", a.text);
        assert_eq!(a.body["id"], body["id"]);
        assert_eq!(a.body["duplicate"], false);
        let seq = a.body["store_seq"].as_u64().expect("store_seq");
        let a = post(&f.app, path, &body).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert_eq!(a.body["duplicate"], true);
        assert_eq!(a.body["store_seq"].as_u64(), Some(seq));
        // The same id for another document is not a retry: 409, nothing stored.
        let (other_path, mut other) = if path == "/v1/fiscal/reducao-z" {
            ("/v1/customers", examples::customer())
        } else {
            ("/v1/fiscal/reducao-z", examples::reducao_z())
        };
        other["id"] = body["id"].clone();
        let a = post(&f.app, other_path, &other).await;
        assert_error(&a, StatusCode::CONFLICT, "id_conflict");
        assert_eq!(a.field(), "id", "{}", a.text);
        let a = post(&f.app, path, &body).await;
        assert_eq!(
            a.body["store_seq"].as_u64(),
            Some(seq),
            "the first one stands"
        );
        // 405 on a write route.
        let a = call_raw(&f.app, Method::DELETE, path, Some(TOKEN), None, vec![]).await;
        assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    // The path's sale id goes into the document; a different one in the body is refused.
    let id = Uuid::parse_str(examples::sale_payment()["id"].as_str().unwrap()).unwrap();
    let stored = f
        .state
        .intake
        .with_outbox(move |o| o.get(id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.document.body["sale_id"], examples::SALE);
    let mut other = examples::sale_payment();
    other["id"] = json!(Uuid::new_v4());
    other["sale_id"] = json!(Uuid::new_v4());
    assert_field(
        &post(
            &f.app,
            &format!("/v1/sales/{}/payments", examples::SALE),
            &other,
        )
        .await,
        "sale_id",
    );
    assert_field(
        &post(
            &f.app,
            "/v1/sales/not-a-uuid/payments",
            &examples::sale_payment(),
        )
        .await,
        "sale_id",
    );
    // The XML is kept byte-for-byte.
    let id = Uuid::parse_str(examples::sale_xml()["id"].as_str().unwrap()).unwrap();
    let stored = f
        .state
        .intake
        .with_outbox(move |o| o.get(id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.document.body["xml"], examples::sale_xml()["xml"]);
    assert_eq!(stored.document.kind, loja_protocol::DocumentKind::SaleXml);
    // The omni order id comes from the path; the register defaults to the terminal.
    let id = Uuid::parse_str(examples::omni_action()["id"].as_str().unwrap()).unwrap();
    let stored = f
        .state
        .intake
        .with_outbox(move |o| o.get(id))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.document.body["order_id"], "O1");
    // The sale's and the return's ids come from the paths too.
    for (example, field, id) in [
        (examples::sale_return(), "sale_id", examples::SALE),
        (examples::sale_cancellation(), "sale_id", examples::SALE),
        (
            examples::return_cancellation(),
            "return_id",
            examples::RETURN,
        ),
    ] {
        let doc = Uuid::parse_str(example["id"].as_str().unwrap()).unwrap();
        let stored = f
            .state
            .intake
            .with_outbox(move |o| o.get(doc))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(stored.document.body[field], id, "{field}");
    }
    assert_eq!(write_cases().len(), WRITE_CASES);
    let stats = f
        .state
        .intake
        .with_outbox(|o| o.stats())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.pending, write_cases().len() as u64);
}

#[tokio::test]
async fn an_accepted_write_wakes_the_upload_job() {
    let f = fixture();
    let wake = f.state.upload_wake.clone();
    let waiter = tokio::spawn(async move { wake.notified().await });
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let f = fixture();
    for path in [
        "/nope",
        "/v1/nope",
        "/v1/products/by-barcode",
        "/v1/sales/x/y/z",
    ] {
        let a = get(&f.app, path).await;
        assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    }
    let a = call_raw(&f.app, Method::POST, "/v1/health", None, None, vec![]).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let a = call_raw(
        &f.app,
        Method::PUT,
        "/v1/products/1",
        Some(TOKEN),
        None,
        vec![],
    )
    .await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_request_past_the_deadline_answers_503_json() {
    let f = fixture_with(ApiOptions {
        read_mode: ReadMode::Inline,
        timeout: Duration::from_millis(50),
        ..ApiOptions::default()
    });
    // Keep the outbox writer busy past the deadline.
    let intake = f.state.intake.clone();
    let busy = tokio::spawn(async move {
        intake
            .with_outbox(|_| std::thread::sleep(Duration::from_millis(400)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "timeout");
    busy.await.unwrap().unwrap();
    // The document may still have been stored: the same id again tells.
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert!(
        a.status == StatusCode::OK || a.status == StatusCode::CREATED,
        "{}",
        a.text
    );
}

#[tokio::test]
async fn reads_on_the_blocking_pool_answer_the_same() {
    let f = fixture_with(ApiOptions {
        read_mode: ReadMode::Blocking,
        readers: 2,
        ..ApiOptions::default()
    });
    let a = get(&f.app, "/v1/products/by-barcode/7891000315507").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["product"]["code"], "1");
    let calls = (0..16).map(|_| {
        let app = f.app.clone();
        async move { get(&app, "/v1/products/1").await }
    });
    for a in futures_join(calls).await {
        assert_eq!(a.status, StatusCode::OK);
    }
}

async fn futures_join<F: std::future::Future<Output = Answer> + Send + 'static>(
    calls: impl Iterator<Item = F>,
) -> Vec<Answer> {
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn status_page_status_json_and_metrics() {
    let f = fixture();
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let _ = get(&f.app, "/v1/products/1").await;

    let a = get(&f.app, "/v1/status").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["store_id"], STORE);
    assert_eq!(a.body["source"], "daemon");
    assert_eq!(a.body["outbox"]["pending"], 1);
    let counts = a.body["replica_counts"].as_array().expect("counts");
    assert!(
        counts
            .iter()
            .any(|c| c["entity"] == "products" && c["rows"] == 3),
        "{}",
        a.text
    );

    // The page's data needs no token.
    let a = call_raw(&f.app, Method::GET, "/status.json", None, None, vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["store_id"], STORE);
    assert!(!a.text.contains(TOKEN) && !a.text.contains("central-secret"));

    let a = call_raw(&f.app, Method::GET, "/", None, None, vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.content_type.starts_with("text/html"));
    assert!(a.text.contains("<table id=\"jobs\">"));
    assert!(!a.text.contains("__INITIAL__"));
    assert!(
        !a.text.contains("src=\"http") && !a.text.contains("href=\"http"),
        "no external assets"
    );

    let a = call_raw(&f.app, Method::GET, "/metrics", None, None, vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.content_type.starts_with("text/plain"));
    assert!(
        a.text
            .contains("lojad_outbox_documents{state=\"pending\"} 1"),
        "{}",
        a.text
    );
    assert!(
        a.text.contains("lojad_replica_rows{entity=\"products\"} 3"),
        "{}",
        a.text
    );
    assert!(
        a.text
            .contains("lojad_http_requests_total{route=\"/v1/cash/open\",status=\"201\"} 1"),
        "{}",
        a.text
    );
    assert!(
        a.text
            .contains("lojad_http_requests_total{route=\"/v1/products/{code}\",status=\"200\"} 1"),
        "{}",
        a.text
    );
    for line in a.text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line}");
    }
}

mod props {
    use proptest::prelude::*;

    use super::*;

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            Just(json!(i64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(0)),
            ".{0,12}".prop_map(Value::from),
            Just(json!("7891000315507")),
            Just(json!("2026-11-26T12:00:00Z")),
            Just(json!(Uuid::nil())),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A change to a valid body: replace, remove or add a field (at the top
    /// level or inside an array element), or replace the whole body.
    #[derive(Debug, Clone)]
    enum Mutation {
        Replace(usize, Value),
        Remove(usize),
        Add(String, Value),
        ReplaceNested(usize, usize, String, Value),
        Whole(Value),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
            2 => any::<usize>().prop_map(Mutation::Remove),
            1 => ("[a-z_]{1,10}", json_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
            3 => (any::<usize>(), any::<usize>(), "[a-z_]{1,10}", json_leaf())
                .prop_map(|(i, j, k, v)| Mutation::ReplaceNested(i, j, k, v)),
            1 => json_value().prop_map(Mutation::Whole),
        ]
    }

    fn apply(body: &Value, muts: &[Mutation]) -> Value {
        let mut body = body.clone();
        for m in muts {
            let Value::Object(obj) = &mut body else {
                return body;
            };
            let keys: Vec<String> = obj.keys().cloned().collect();
            if keys.is_empty() && matches!(m, Mutation::Replace(..) | Mutation::Remove(_)) {
                continue;
            }
            match m {
                Mutation::Replace(i, v) => {
                    obj.insert(keys[i % keys.len()].clone(), v.clone());
                }
                Mutation::Remove(i) => {
                    obj.remove(&keys[i % keys.len()]);
                }
                Mutation::Add(k, v) => {
                    obj.insert(k.clone(), v.clone());
                }
                Mutation::ReplaceNested(i, j, k, v) => {
                    let arrays: Vec<String> = keys
                        .iter()
                        .filter(|k| obj[*k].is_array())
                        .cloned()
                        .collect();
                    if let Some(key) = arrays.get(i % arrays.len().max(1))
                        && let Some(items) = obj[key].as_array_mut()
                        && !items.is_empty()
                    {
                        let n = items.len();
                        if let Value::Object(item) = &mut items[j % n] {
                            let ks: Vec<String> = item.keys().cloned().collect();
                            let k = if j % 3 == 0 || ks.is_empty() {
                                k.clone()
                            } else {
                                ks[j % ks.len()].clone()
                            };
                            item.insert(k, v.clone());
                        }
                    }
                }
                Mutation::Whole(v) => body = v.clone(),
            }
            if matches!(m, Mutation::Whole(_)) {
                break;
            }
        }
        body
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, .. ProptestConfig::default() })]

        /// Random changes to every write body: never a panic, never a 5xx,
        /// always a JSON error body or an acceptance.
        #[test]
        fn write_bodies_never_panic(case in 0usize..WRITE_CASES, muts in prop::collection::vec(mutation(), 1..4), fresh_id in any::<bool>()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let f = FIXTURE.with(|f| f.clone());
            let (path, body, ..) = write_cases().swap_remove(case);
            let mut body = apply(&body, &muts);
            if fresh_id && let Value::Object(o) = &mut body && o.contains_key("id") {
                o.insert("id".into(), json!(Uuid::new_v4()));
            }
            let a = rt.block_on(post(&f.0, path, &body));
            prop_assert!(
                matches!(a.status.as_u16(), 200 | 201 | 400 | 409 | 413 | 415 | 422),
                "{} {} -> {} {}", path, body, a.status, a.text
            );
            prop_assert!(a.content_type.starts_with("application/json"), "{}", a.text);
            if a.status.is_success() {
                prop_assert!(a.body["id"].is_string() && a.body["duplicate"].is_boolean(), "{}", a.text);
            } else {
                prop_assert!(a.body["error"]["code"].is_string() && a.body["error"]["message"].is_string(), "{}", a.text);
            }
        }

        /// Raw bytes as a body: same guarantees.
        #[test]
        fn raw_bodies_never_panic(case in 0usize..WRITE_CASES, bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let f = FIXTURE.with(|f| f.clone());
            let (path, ..) = write_cases().swap_remove(case);
            let a = rt.block_on(call_raw(&f.0, Method::POST, path, Some(TOKEN), Some("application/json"), bytes));
            prop_assert!(matches!(a.status.as_u16(), 400 | 422), "{} -> {} {}", path, a.status, a.text);
            prop_assert!(a.body["error"]["code"].is_string(), "{}", a.text);
        }
    }

    /// One fixture per test thread, with the cash session open and the
    /// sale posted, so that valid mutations reach the outbox's state checks.
    /// The router, and the fixture that keeps its data dir alive.
    #[derive(Clone)]
    struct Shared(Router, #[allow(dead_code)] std::sync::Arc<Fixture>);

    thread_local! {
        static FIXTURE: Shared = {
            let f = fixture();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                assert_eq!(post(&f.app, "/v1/cash/open", &examples::cash_open()).await.status, StatusCode::CREATED);
                assert_eq!(post(&f.app, "/v1/sales", &examples::sale()).await.status, StatusCode::CREATED);
            });
            Shared(f.app.clone(), std::sync::Arc::new(f))
        };
    }
}

#[tokio::test]
async fn totals_that_overflow_are_a_422_not_a_panic() {
    let f = fixture();
    let mut sale = examples::sale();
    sale["id"] = json!(Uuid::new_v4());
    sale["items"][0] = json!({"product_code": "1", "qty": 1000, "unit_price": i64::MAX / 1000,
                              "addition": i64::MAX, "total": 1});
    let a = post(&f.app, "/v1/sales", &sale).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let mut sale = examples::sale();
    sale["id"] = json!(Uuid::new_v4());
    sale["addition"] = json!(i64::MAX);
    let a = post(&f.app, "/v1/sales", &sale).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let mut sale = examples::sale();
    sale["id"] = json!(Uuid::new_v4());
    sale["total"] = json!(1e300);
    let a = post(&f.app, "/v1/sales", &sale).await;
    assert_field(&a, "total");
    // Deep in the body, the field is named by its path.
    let mut sale = examples::sale();
    sale["id"] = json!(Uuid::new_v4());
    sale["items"][0]["qty"] = json!(1.5);
    assert_field(&post(&f.app, "/v1/sales", &sale).await, "items[0].qty");
    // The outbox writer is still alive.
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

/// Sales whose totals add up but cannot be right (issue 12, defect 4): each
/// a 422 naming its field, and nothing stored.
#[tokio::test]
async fn impossible_sales_are_refused_naming_the_field() {
    let f = fixture();
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "a line's discount above its amount (negative line total)",
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
            "a sale discount above the items",
            |s| {
                s["discount"] = json!(2000);
                s["total"] = json!(-51);
                s["payments"][0]["amount"] = json!(49);
                s["change"] = json!(100);
            },
            "discount",
        ),
        (
            "change above what was paid",
            |s| {
                s["payments"][0]["amount"] = json!(50);
                s["change"] = json!(100);
            },
            "change",
        ),
        (
            "sold_at with a local offset",
            |s| s["sold_at"] = json!("2026-11-26T09:00:00-03:00"),
            "sold_at",
        ),
        (
            "a 10 kB operator (the fixture's body limit is 64 KiB)",
            |s| s["operator"] = json!("1".repeat(10_000)),
            "operator",
        ),
        (
            "a 10 kB product code",
            |s| s["items"][0]["product_code"] = json!("1".repeat(10_000)),
            "items[0].product_code",
        ),
    ];
    for (what, edit, field) in cases {
        let mut sale = examples::sale();
        sale["id"] = json!(Uuid::new_v4());
        edit(&mut sale);
        let a = post(&f.app, "/v1/sales", &sale).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            a.text
        );
        assert_eq!(a.field(), field, "{what}: {}", a.text);
    }
    // Nothing of it was stored; the example itself still is.
    let a = post(&f.app, "/v1/sales", &examples::sale()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["store_seq"], 2, "{}", a.text);
}

#[tokio::test]
async fn a_new_price_is_answered_at_once() {
    let f = fixture();
    let path = "/v1/products/by-barcode/7891000315507";
    let before = get(&f.app, path).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let store = f.state.config.store.id.clone();
    apply(
        &f.state,
        "prices",
        rows(json!([{"product_code": "1", "price_list": store, "price": 1001}])),
    );
    let after = get(&f.app, path).await;
    assert_eq!(after.body["price"]["price"], 1001, "{}", after.text);
    let by_code = get(&f.app, "/v1/products/1").await;
    assert_eq!(
        by_code.text, after.text,
        "by code and by barcode, the same bytes"
    );
}

#[tokio::test]
async fn a_parked_documents_reason_stays_behind_the_token() {
    let f = fixture();
    let a = post(&f.app, "/v1/cash/open", &examples::cash_open()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = Uuid::parse_str(examples::SESSION).expect("uuid");
    // The central refuses it with a message quoting the document's data.
    let reason = "operator 52998224725 is not an employee of this store";
    f.state
        .intake
        .with_outbox(move |o| {
            o.record_acks(
                &[loja_protocol::DocumentAck {
                    id,
                    status: loja_protocol::AckStatus::Rejected,
                    error: Some(reason.to_owned()),
                }],
                None,
            )
        })
        .await
        .expect("writer")
        .expect("acks");
    let a = get(&f.app, "/v1/status").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("52998224725"), "with the token: {}", a.text);
    for path in ["/status.json", "/"] {
        let a = call_raw(&f.app, Method::GET, path, None, None, vec![]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(
            a.text.contains(examples::SESSION),
            "{path} lists the document"
        );
        assert!(!a.text.contains("52998224725"), "{path}: {}", a.text);
    }
}

/// `body` under a new document id.
fn fresh(mut body: Value) -> Value {
    body["id"] = json!(Uuid::new_v4());
    body
}

/// The cash session open and the example sale (1500 of product 1, 1000 of
/// product 2) in the outbox.
async fn sold(f: &Fixture) {
    for (path, body) in [
        ("/v1/cash/open", examples::cash_open()),
        ("/v1/sales", examples::sale()),
    ] {
        let a = post(&f.app, path, &body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{path}: {}", a.text);
    }
}

/// A sale's life through the POS API: each route answers 201 where the
/// outbox's state allows the document, and a 422 naming the field where it
/// does not.
#[tokio::test]
async fn a_sales_life_is_checked_against_the_outbox_naming_the_field() {
    let f = fixture();
    sold(&f).await;
    let sale = examples::SALE;
    let returns = format!("/v1/sales/{sale}/returns");
    let cancellation = format!("/v1/sales/{sale}/cancellation");
    let undo = format!("/v1/returns/{}/cancellation", examples::RETURN);
    let created = |a: &Answer| assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);

    // Returns: an unknown sale, more than was sold, a product not sold, an
    // unknown reason.
    let ghost = format!("/v1/sales/{}/returns", Uuid::new_v4());
    assert_field(
        &post(&f.app, &ghost, &fresh(examples::sale_return())).await,
        "sale_id",
    );
    let mut too_many = fresh(examples::sale_return());
    too_many["items"][0]["qty"] = json!(1501);
    assert_field(&post(&f.app, &returns, &too_many).await, "items[0].qty");
    let mut not_sold = fresh(examples::sale_return());
    not_sold["items"][0]["product_code"] = json!("K1");
    assert_field(
        &post(&f.app, &returns, &not_sold).await,
        "items[0].product_code",
    );
    let mut reason = fresh(examples::sale_return());
    reason["reason_code"] = json!("ZZ");
    assert_field(&post(&f.app, &returns, &reason).await, "reason_code");
    created(&post(&f.app, &returns, &examples::sale_return()).await);
    // 1000 of the 1500 came back: 501 more is too many.
    let mut rest = fresh(examples::sale_return());
    rest["items"][0]["qty"] = json!(501);
    assert_field(&post(&f.app, &returns, &rest).await, "items[0].qty");

    // The sale cannot be cancelled while its return stands.
    assert_field(
        &post(&f.app, &cancellation, &examples::sale_cancellation()).await,
        "sale_id",
    );
    // The return cancelled, once; an unknown return is refused.
    let nowhere = format!("/v1/returns/{}/cancellation", Uuid::new_v4());
    assert_field(
        &post(&f.app, &nowhere, &fresh(examples::return_cancellation())).await,
        "return_id",
    );
    created(&post(&f.app, &undo, &examples::return_cancellation()).await);
    assert_field(
        &post(&f.app, &undo, &fresh(examples::return_cancellation())).await,
        "return_id",
    );
    // Now the sale cancels, once (a retry is a duplicate, a second
    // cancellation a 422), and takes no return any more.
    created(&post(&f.app, &cancellation, &examples::sale_cancellation()).await);
    let a = post(&f.app, &cancellation, &examples::sale_cancellation()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], true);
    assert_field(
        &post(&f.app, &cancellation, &fresh(examples::sale_cancellation())).await,
        "sale_id",
    );
    assert_field(
        &post(&f.app, &returns, &fresh(examples::sale_return())).await,
        "sale_id",
    );
    let ghost = format!("/v1/sales/{}/cancellation", Uuid::new_v4());
    assert_field(
        &post(&f.app, &ghost, &fresh(examples::sale_cancellation())).await,
        "sale_id",
    );

    // Stock movements: each kind's own fields.
    created(&post(&f.app, "/v1/stock/movements", &examples::stock_movement()).await);
    let mut out = fresh(examples::stock_movement());
    out["movement"] = json!("transfer_out");
    out.as_object_mut().unwrap().remove("nfe_key");
    assert_field(&post(&f.app, "/v1/stock/movements", &out).await, "to_store");
    out["to_store"] = json!("0043");
    out["from_store"] = json!("0041");
    assert_field(
        &post(&f.app, "/v1/stock/movements", &out).await,
        "from_store",
    );
    out.as_object_mut().unwrap().remove("from_store");
    created(&post(&f.app, "/v1/stock/movements", &out).await);
    let mut zero = fresh(examples::stock_movement());
    zero.as_object_mut().unwrap().remove("nfe_key");
    zero["movement"] = json!("adjustment");
    zero["reason_code"] = json!("QUEBRA");
    zero["items"][0]["qty"] = json!(0);
    assert_field(
        &post(&f.app, "/v1/stock/movements", &zero).await,
        "items[0].qty",
    );
    zero["items"][0]["qty"] = json!(-2000);
    created(&post(&f.app, "/v1/stock/movements", &zero).await);

    // Counts: a product once per count.
    created(&post(&f.app, "/v1/stock/counts", &examples::inventory_count()).await);
    let mut twice = fresh(examples::inventory_count());
    twice["items"] = json!([{"product_code": "1", "counted_qty": 1000},
                            {"product_code": "1", "counted_qty": 2000}]);
    assert_field(
        &post(&f.app, "/v1/stock/counts", &twice).await,
        "items[1].product_code",
    );
}

/// A return's reason must be in `return_reasons` once that list has rows;
/// before its first sync any code goes, and a retry of a stored return is
/// answered as one even if its reason has left the list.
#[tokio::test]
async fn a_returns_reason_is_checked_once_the_reasons_are_synced() {
    let f = fixture();
    sold(&f).await;
    let returns = format!("/v1/sales/{}/returns", examples::SALE);
    let reasons = || rows(json!([{"code": "02"}, {"code": "03"}, {"code": "05"}]));
    remove(&f.state, "return_reasons", reasons());
    let mut first = examples::sale_return();
    first["reason_code"] = json!("ANY");
    let a = post(&f.app, &returns, &first).await;
    assert_eq!(a.status, StatusCode::CREATED, "no reasons yet: {}", a.text);
    // The list arrives without "ANY".
    apply(
        &f.state,
        "return_reasons",
        rows(json!([{"code": "02", "description": "Defeito"}])),
    );
    let mut unknown = fresh(examples::sale_return());
    unknown["reason_code"] = json!("ANY");
    unknown["items"][0]["qty"] = json!(100);
    unknown["items"][0]["refund"] = json!(95);
    unknown["refunds"][0]["amount"] = json!(95);
    assert_field(&post(&f.app, &returns, &unknown).await, "reason_code");
    let a = post(&f.app, &returns, &first).await;
    assert_eq!(a.status, StatusCode::OK, "a retry: {}", a.text);
    assert_eq!(a.body["duplicate"], true);
    unknown["reason_code"] = json!("02");
    let a = post(&f.app, &returns, &unknown).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

/// An omni return, the central down (the fixture's central does not
/// answer): this store's delivered order comes back against its own copy,
/// with an omni reason, never more than delivered; another order is 503.
#[tokio::test]
async fn an_omni_return_without_the_central_takes_only_this_stores_delivered_lines() {
    let f = fixture();
    let a = get(&f.app, "/v1/omni-orders/by-number/N-O2/returnable").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["source"], "store");
    assert_eq!(a.body["order_id"], "O2");
    assert_eq!(a.body["lines"][0]["returnable_qty"], 1000);
    let a = get(&f.app, "/v1/omni-orders/by-number/N-ELSEWHERE/returnable").await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "central_unreachable");

    let returns = "/v1/omni-orders/O2/returns";
    let mut not_omni = fresh(examples::omni_return());
    not_omni["reason_code"] = json!("02");
    let a = post(&f.app, returns, &not_omni).await;
    assert_field(&a, "reason_code");
    assert!(a.text.contains("omni: 03"), "{}", a.text);
    let mut too_many = fresh(examples::omni_return());
    too_many["items"][0]["qty"] = json!(1001);
    assert_field(&post(&f.app, returns, &too_many).await, "items[0].qty");
    let mut half = fresh(examples::omni_return());
    half["items"][0]["qty"] = json!(500);
    half["items"][0]["refund"] = json!(500);
    let a = post(&f.app, returns, &half).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // The first return counts at once: 500 are left.
    let a = get(&f.app, "/v1/omni-orders/by-number/N-O2/returnable").await;
    assert_eq!(a.body["lines"][0]["returned_qty"], 500, "{}", a.text);
    let again = fresh(examples::omni_return());
    let a = post(&f.app, returns, &again).await;
    assert_field(&a, "items[0].qty");
    assert!(a.text.contains("500 are left"), "{}", a.text);
    // Not this store's order, the central down: 503, nothing stored.
    let a = post(
        &f.app,
        "/v1/omni-orders/ELSEWHERE/returns",
        &fresh(examples::omni_return()),
    )
    .await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "central_unreachable");
}
