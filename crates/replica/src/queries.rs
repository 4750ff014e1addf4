//! What the POS asks the replica. Answers come from the replica alone. The
//! product answer (lookup by barcode or code) is written by
//! `product_answer.rs`; the methods here call into it.

use std::sync::OnceLock;

use loja_protocol::registry::ColType;
use loja_protocol::{Entity, FieldError, entity_named};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::apply::{row_to_map, sql_of};
use crate::error::SqlCtx;
use crate::product_answer::{self, By, PriceChoice, instant, registry};
pub use crate::product_answer::{PriceView, ProductView};
use crate::{CatalogReader, ReplicaError, Result};

/// One name-search hit, best first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProductHit {
    pub code: String,
    pub name: String,
    /// Effective price, centavos, when the product has one.
    pub price: Option<i64>,
}

/// Row caps: search answers at most 100 hits, `list` at most 10 000 rows.
const SEARCH_MAX: u32 = 100;
const SEARCH_DEFAULT: u32 = 20;
const LIST_MAX: u32 = 10_000;

/// The SQL of the POS queries, built once from the registry.
struct Sql {
    customer_by_document: String,
    promotions: String,
}

fn sql() -> &'static Sql {
    static SQL: OnceLock<Sql> = OnceLock::new();
    SQL.get_or_init(|| {
        let of = |name: &str| entity_named(name).and_then(|e| sql_of(e).ok());
        let select = |name: &str| of(name).map(|s| s.select.clone()).unwrap_or_default();
        Sql {
            customer_by_document: format!("{} WHERE document = ?1", select("customers")),
            promotions: format!(
                "{} WHERE active IS NOT 0 ORDER BY code",
                select("promotions")
            ),
        }
    })
}

impl CatalogReader {
    fn one_map(
        &self,
        entity: &'static Entity,
        sql: &str,
        key: &str,
    ) -> Result<Option<Map<String, Value>>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .ctx_with(path, || format!("query {}", entity.name))?;
        let mut rows = stmt
            .query([key])
            .ctx_with(path, || format!("query {}", entity.name))?;
        match rows
            .next()
            .ctx_with(path, || format!("query {}", entity.name))?
        {
            Some(r) => Ok(Some(
                row_to_map(entity.columns, r, 0)
                    .ctx_with(path, || format!("read {}", entity.name))?,
            )),
            None => Ok(None),
        }
    }

    fn maps(
        &self,
        entity: &'static Entity,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Map<String, Value>>> {
        let path = &self.path;
        let what = || format!("query {}", entity.name);
        let mut stmt = self.conn.prepare_cached(sql).ctx_with(path, what)?;
        let mut rows = stmt.query(params).ctx_with(path, what)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx_with(path, what)? {
            out.push(row_to_map(entity.columns, r, 0).ctx_with(path, what)?);
        }
        Ok(out)
    }

    /// The price of `product` from the most specific list, at `now`.
    fn price(&self, product: &str, store: &str, now: OffsetDateTime) -> Result<Option<PriceView>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT price_list, price, promo_price, promo_until, \
                 (SELECT o.rank FROM price_list_order o WHERE o.list = prices.price_list) \
                 FROM prices WHERE product_code = ?1",
            )
            .ctx(path, "query prices")?;
        let mut rows = stmt.query([product]).ctx(path, "query prices")?;
        let mut choice = PriceChoice::default();
        while let Some(r) = rows.next().ctx(path, "query prices")? {
            choice.offer(r, 0, store).ctx(path, "read prices")?;
        }
        Ok(choice.view(now))
    }

    /// `store` picks the price list. `None` when the barcode is unknown.
    pub fn product_by_barcode(&self, barcode: &str, store: &str) -> Result<Option<ProductView>> {
        let mut out = Vec::with_capacity(1024);
        if !self.product_json_by_barcode(barcode, store, &mut out)? {
            return Ok(None);
        }
        self.view_of(&out)
    }

    pub fn product_by_code(&self, code: &str, store: &str) -> Result<Option<ProductView>> {
        let mut out = Vec::with_capacity(1024);
        if !self.product_json_by_code(code, store, &mut out)? {
            return Ok(None);
        }
        self.view_of(&out)
    }

    fn view_of(&self, json: &[u8]) -> Result<Option<ProductView>> {
        serde_json::from_slice(json)
            .map(Some)
            .map_err(|e| ReplicaError::corrupt(&self.path, format!("product answer: {e}")))
    }

    /// Appends the JSON of the product with `barcode` to `out`: a
    /// [`ProductView`], the same bytes `serde_json::to_vec` writes for one,
    /// built straight from the rows by one prepared statement (no
    /// intermediate maps). False (and `out` untouched) when the barcode is
    /// unknown; on an error `out` is left as it was.
    pub fn product_json_by_barcode(
        &self,
        barcode: &str,
        store: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        product_answer::product_json(
            &self.conn,
            &self.path,
            By::Barcode,
            barcode,
            store,
            self.moves,
            out,
        )
    }

    /// [`Self::product_json_by_barcode`] by product code.
    pub fn product_json_by_code(&self, code: &str, store: &str, out: &mut Vec<u8>) -> Result<bool> {
        product_answer::product_json(
            &self.conn,
            &self.path,
            By::Code,
            code,
            store,
            self.moves,
            out,
        )
    }

    /// FTS5 name search, ranked (bm25), `limit` capped at 100. The query is
    /// user text: it is turned into prefix terms, never passed as FTS syntax.
    /// `limit` 0 means 20.
    pub fn search_products(&self, q: &str, limit: u32, store: &str) -> Result<Vec<ProductHit>> {
        let Some(query) = fts_query(q) else {
            return Ok(Vec::new());
        };
        let limit = match limit {
            0 => SEARCH_DEFAULT,
            n => n.min(SEARCH_MAX),
        };
        let path = &self.path;
        let mut hits = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT p.code, p.name FROM products_fts JOIN products p ON p.rowid = products_fts.rowid \
                     WHERE products_fts MATCH ?1 ORDER BY bm25(products_fts), p.code LIMIT ?2",
                )
                .ctx(path, "search products")?;
            let mut rows = stmt
                .query(rusqlite::params![query, limit])
                .ctx(path, "search products")?;
            while let Some(r) = rows.next().ctx(path, "search products")? {
                let code: String = r.get(0).ctx(path, "read products")?;
                let name: String = r.get(1).ctx(path, "read products")?;
                hits.push(ProductHit {
                    code,
                    name,
                    price: None,
                });
            }
        }
        let now = OffsetDateTime::now_utc();
        for hit in &mut hits {
            hit.price = self
                .price(&hit.code, store, now)?
                .map(|p| p.effective_price);
        }
        Ok(hits)
    }

    pub fn customer_by_document(&self, document: &str) -> Result<Option<Map<String, Value>>> {
        self.one_map(
            registry("customers")?,
            &sql().customer_by_document,
            document,
        )
    }

    /// All rows of a (small) reference entity, by key order; `filter` is an
    /// optional (column, value) equality, e.g. ("uf", "SP") for cities.
    /// Refuses secret entities and columns not in the registry. `limit` 0
    /// means the cap, 10 000.
    pub fn list(
        &self,
        entity: &str,
        filter: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<Map<String, Value>>> {
        let e = registry(entity)?;
        if e.secret {
            return Err(
                FieldError::new("entity", format!("{entity} is secret: not listed")).into(),
            );
        }
        let s = sql_of(e)?;
        let limit = match limit {
            0 => LIST_MAX,
            n => n.min(LIST_MAX),
        };
        match filter {
            None => self.maps(e, &format!("{} {} LIMIT ?1", s.select, s.order_by), [limit]),
            Some((column, value)) => {
                let col = e.column(column).ok_or_else(|| {
                    FieldError::new(column.to_owned(), format!("is not a column of {entity}"))
                })?;
                // The identifier comes from the registry, the value is bound.
                let sql = format!(
                    "{} WHERE {} = ?1 {} LIMIT ?2",
                    s.select, col.name, s.order_by
                );
                let bad = || FieldError::new(col.name, format!("{value:?} is not a valid value"));
                let v: rusqlite::types::Value = match col.ty {
                    ColType::Int | ColType::Money | ColType::Qty => {
                        value.parse::<i64>().map_err(|_| bad())?.into()
                    }
                    ColType::Bool => match value {
                        "true" | "1" => 1i64.into(),
                        "false" | "0" => 0i64.into(),
                        _ => return Err(bad().into()),
                    },
                    ColType::Text | ColType::Time | ColType::Json => value.to_owned().into(),
                };
                self.maps(e, &sql, rusqlite::params![v, limit])
            }
        }
    }

    /// `parameters` as one object name → value.
    pub fn parameters(&self) -> Result<Map<String, Value>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, value FROM parameters ORDER BY name")
            .ctx(path, "query parameters")?;
        let mut rows = stmt.query([]).ctx(path, "query parameters")?;
        let mut out = Map::new();
        while let Some(r) = rows.next().ctx(path, "query parameters")? {
            let name: String = r.get(0).ctx(path, "read parameters")?;
            let value: String = r.get(1).ctx(path, "read parameters")?;
            out.insert(name, Value::String(value));
        }
        Ok(out)
    }

    /// Promotions active at `now` (RFC 3339): active flag not false, starts_at ≤ now < ends_at.
    /// A bare date in starts_at means its first instant, in ends_at the end
    /// of that day (UTC).
    pub fn active_promotions(&self, now: &str) -> Result<Vec<Map<String, Value>>> {
        let now = instant(now, false)
            .ok_or_else(|| FieldError::new("now", "must be an RFC 3339 timestamp"))?;
        let all = self.maps(registry("promotions")?, &sql().promotions, [])?;
        Ok(all
            .into_iter()
            .filter(|p| {
                let at = |k: &str, end: bool| p.get(k).and_then(Value::as_str).and_then(|s| instant(s, end));
                matches!((at("starts_at", false), at("ends_at", true)), (Some(s), Some(e)) if s <= now && now < e)
            })
            .collect())
    }
}

/// User text → FTS5 query: each word (letters and digits) a quoted prefix
/// term, all required. `None` when there is no word.
pub(crate) fn fts_query(q: &str) -> Option<String> {
    let mut out = String::with_capacity(q.len() + 8);
    for word in q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        out.push_str(word);
        out.push_str("\"*");
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Catalog;
    use crate::catalog::tests::{ent, page, up};
    use crate::error::ReplicaError;
    use serde_json::json;

    pub(crate) fn load(c: &mut Catalog, entity: &str, rows: Vec<Value>) {
        let e = ent(entity);
        let after = c.watermark(e).unwrap().0;
        c.apply_page(e, &page(entity, after, rows.into_iter().map(up).collect()))
            .unwrap();
    }

    pub(crate) fn fixture() -> (tempfile::TempDir, CatalogReader) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        fill(&mut c);
        drop(c);
        let r = CatalogReader::open(dir.path()).unwrap();
        (dir, r)
    }

    /// Products 1 (two barcodes, taxes, stock, three price lists), 2
    /// (promotion over), 3 (promotion running), K (a kit), and reference
    /// lists, parameters, promotions, omni orders.
    pub(crate) fn fill(c: &mut Catalog) {
        load(
            c,
            "products",
            vec![
                json!({"code": "1", "name": "Café Pilão Tradicional 500g", "unit": "UN", "active": true}),
                json!({"code": "2", "name": "Cafeteira elétrica", "unit": "UN"}),
                json!({"code": "3", "name": "Açúcar União 1kg", "unit": "UN"}),
                json!({"code": "K", "name": "Kit café da manhã", "unit": "UN", "is_kit": true}),
            ],
        );
        load(
            c,
            "barcodes",
            vec![
                json!({"barcode": "7891000315507", "product_code": "1"}),
                json!({"barcode": "7896005800010", "product_code": "1", "pack_qty": 12000}),
            ],
        );
        load(
            c,
            "prices",
            vec![
                json!({"product_code": "1", "price_list": "base", "price": 1999}),
                json!({"product_code": "1", "price_list": "R1", "price": 1899}),
                json!({"product_code": "1", "price_list": "L1", "price": 1799, "promo_price": 1499}),
                json!({"product_code": "2", "price_list": "base", "price": 9900, "promo_price": 8900, "promo_until": "2000-01-01T00:00:00Z"}),
                json!({"product_code": "3", "price_list": "base", "price": 549, "promo_price": 499, "promo_until": "2999-01-01"}),
                json!({"product_code": "K", "price_list": "base", "price": 2500}),
            ],
        );
        load(
            c,
            "product_taxes",
            vec![
                json!({"product_code": "1", "ecf_tribute": "T18", "ncm": "09012100", "cfop": "5102"}),
            ],
        );
        // The same product in two states; the store is in RJ.
        load(
            c,
            "icms_by_state",
            vec![
                json!({"product_code": "1", "uf": "SP", "icms_cst": "00", "icms_rate_bp": 1800}),
                json!({"product_code": "1", "uf": "RJ", "icms_cst": "00", "icms_rate_bp": 2000, "fcp_rate_bp": 200}),
                json!({"product_code": "3", "uf": "SP", "icms_cst": "60", "icms_rate_bp": 0}),
            ],
        );
        load(
            c,
            "icms_st_retained",
            vec![
                json!({"product_code": "3", "uf": "SP", "st_base": 700, "icms_st_rate_bp": 1800, "icms_retained": 60}),
            ],
        );
        load(
            c,
            "pis_cofins",
            vec![
                json!({"product_code": "1", "pis_cst": "01", "pis_rate_bp": 165, "cofins_cst": "01", "cofins_rate_bp": 760}),
            ],
        );
        load(c, "store_setup", vec![json!({"name": "uf", "value": "RJ"})]);
        load(c, "stock", vec![json!({"product_code": "1", "qty": 42000})]);
        load(
            c,
            "kits",
            vec![
                json!({"kit_code": "K", "component_code": "1", "qty": 1000}),
                json!({"kit_code": "K", "component_code": "3", "qty": 2000, "price": 500}),
            ],
        );
        load(
            c,
            "cities",
            vec![
                json!({"ibge_code": 3550308, "name": "São Paulo", "uf": "SP"}),
                json!({"ibge_code": 3304557, "name": "Rio de Janeiro", "uf": "RJ"}),
                json!({"ibge_code": 3509502, "name": "Campinas", "uf": "SP"}),
            ],
        );
        load(
            c,
            "parameters",
            vec![
                json!({"name": "max_discount_bp", "value": "1000"}),
                json!({"name": "tef", "value": "on"}),
            ],
        );
        load(
            c,
            "promotions",
            vec![
                json!({"code": "P1", "name": "Now", "starts_at": "2026-11-01", "ends_at": "2026-11-30", "rule": {"buy": 3, "pay": 2}}),
                json!({"code": "P2", "name": "Off", "starts_at": "2026-11-01", "ends_at": "2026-11-30", "active": false}),
                json!({"code": "P3", "name": "Later", "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-31T00:00:00Z"}),
            ],
        );
        load(
            c,
            "omni_orders",
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
                        created_at: "2026-11-01T10:00:00Z".into(),
                        store: "loja1".into(),
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
                    }
                    loja_protocol::omni::to_row(&o, 0, "2026-11-01T10:00:00Z")
                })
                .collect(),
        );
    }
    /// The lookup as it was before the one-statement JSON writer: seven
    /// statements, each row a `Map`. The reference the writer must match
    /// (`product_answer`'s tests); here because it reads through the
    /// reader's own helpers (`one_map`, `maps`, `price`).
    pub(crate) fn reference(r: &CatalogReader, code: &str, store: &str) -> Option<ProductView> {
        use rusqlite::OptionalExtension;
        let by_key = |entity: &str, key: &str| {
            let e = registry(entity).unwrap();
            let sql = format!("{} WHERE {key} = ?1", sql_of(e).unwrap().select);
            r.one_map(e, &sql, code).unwrap()
        };
        let product = by_key("products", "code")?;
        let uf: Option<String> = r
            .conn
            .query_row("SELECT value FROM store_setup WHERE name = 'uf'", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        let by_state = |entity: &str| {
            let e = registry(entity).unwrap();
            let sql = format!(
                "{} WHERE product_code = ?1 AND uf = ?2",
                sql_of(e).unwrap().select
            );
            r.maps(e, &sql, [code, uf.as_deref().unwrap_or("")])
                .unwrap()
                .into_iter()
                .next()
        };
        let barcodes = r
            .conn
            .prepare("SELECT barcode FROM barcodes WHERE product_code = ?1 ORDER BY barcode")
            .unwrap()
            .query_map([code], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<String>>>()
            .unwrap();
        let stock_qty = r
            .conn
            .query_row(
                "SELECT qty FROM stock WHERE product_code = ?1",
                [code],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .unwrap()
            .flatten();
        Some(ProductView {
            product,
            barcodes,
            price: r.price(code, store, OffsetDateTime::now_utc()).unwrap(),
            taxes: by_key("product_taxes", "product_code"),
            uf: uf.clone(),
            icms: by_state("icms_by_state"),
            icms_st: by_state("icms_st_retained"),
            fcp_st: by_state("fcp_balance"),
            pis_cofins: by_key("pis_cofins", "product_code"),
            stock_qty,
            reserved_qty: 0,
            kit_components: {
                let e = registry("kits").unwrap();
                let sql = format!(
                    "{} WHERE kit_code = ?1 ORDER BY component_code",
                    sql_of(e).unwrap().select
                );
                r.maps(e, &sql, [code]).unwrap()
            },
        })
    }
    #[test]
    fn search_finds_by_prefix_and_ignores_accents() {
        let (_dir, r) = fixture();
        let codes = |q: &str| {
            r.search_products(q, 10, "L1")
                .unwrap()
                .into_iter()
                .map(|h| h.code)
                .collect::<Vec<_>>()
        };
        let mut cafe = codes("cafe");
        cafe.sort();
        assert_eq!(cafe, vec!["1", "2", "K"]);
        assert_eq!(codes("CAFÉ pil"), vec!["1"]);
        assert_eq!(codes("acucar"), vec!["3"]);
        assert_eq!(codes("uniao 1kg"), vec!["3"]);
        // FTS syntax in user text is just text.
        assert!(r.search_products("\"cafe* OR NEAR(x) -", 10, "L1").is_ok());
        assert_eq!(codes("cafe) OR (acucar"), Vec::<String>::new());
        assert!(codes("   ").is_empty());
        assert!(codes("xyz").is_empty());
        let hits = r.search_products("pilao", 0, "L1").unwrap();
        assert_eq!(
            hits,
            vec![ProductHit {
                code: "1".into(),
                name: "Café Pilão Tradicional 500g".into(),
                price: Some(1499)
            }]
        );
    }

    #[test]
    fn search_follows_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        load(
            &mut c,
            "products",
            vec![json!({"code": "1", "name": "Feijão preto", "unit": "KG"})],
        );
        load(
            &mut c,
            "products",
            vec![json!({"code": "1", "name": "Arroz branco", "unit": "KG"})],
        );
        let r = CatalogReader::open(dir.path()).unwrap();
        assert!(r.search_products("feijao", 10, "L1").unwrap().is_empty());
        assert_eq!(r.search_products("arroz", 10, "L1").unwrap().len(), 1);
        let e = ent("products");
        let after = c.watermark(e).unwrap().0;
        c.apply_page(
            e,
            &page(
                "products",
                after,
                vec![crate::catalog::tests::del(json!({"code": "1"}))],
            ),
        )
        .unwrap();
        assert!(r.search_products("arroz", 10, "L1").unwrap().is_empty());
        // Within one page: insert, rename, delete, insert again.
        let after = c.watermark(e).unwrap().0;
        let items = vec![
            up(json!({"code": "7", "name": "Leite integral", "unit": "UN"})),
            up(json!({"code": "7", "name": "Leite desnatado", "unit": "UN"})),
            crate::catalog::tests::del(json!({"code": "7"})),
            up(json!({"code": "7", "name": "Leite condensado", "unit": "UN"})),
            up(json!({"code": "8", "name": "Leite em pó", "unit": "UN"})),
            up(json!({"code": "8", "name": "Leite em pó", "unit": "KG"})),
        ];
        c.apply_page(e, &page("products", after, items)).unwrap();
        let codes = |q: &str| {
            r.search_products(q, 10, "L1")
                .unwrap()
                .into_iter()
                .map(|h| h.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(codes("condensado"), vec!["7"]);
        assert!(codes("integral").is_empty() && codes("desnatado").is_empty());
        assert_eq!(codes("leite po"), vec!["8"]);
        let queued: i64 = c
            .conn
            .query_row("SELECT count(*) FROM products_fts_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(queued, 0);
        let local = json!({"code": "9", "name": "Pão de queijo", "unit": "UN"});
        c.upsert_local(e, local.as_object().unwrap()).unwrap();
        assert_eq!(codes("pao queijo"), vec!["9"]);
        assert!(c.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn list_is_generic_and_refuses_what_is_not_in_the_registry() {
        let (_dir, r) = fixture();
        let sp = r.list("cities", Some(("uf", "SP")), 0).unwrap();
        assert_eq!(
            sp.iter()
                .map(|c| c["ibge_code"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![3509502, 3550308]
        );
        assert_eq!(r.list("cities", None, 2).unwrap().len(), 2);
        assert_eq!(
            r.list("cities", Some(("ibge_code", "3304557")), 0).unwrap()[0]["name"],
            json!("Rio de Janeiro")
        );
        assert!(
            matches!(r.list("cities", Some(("ibge_code", "x")), 0), Err(ReplicaError::Invalid(f)) if f.field == "ibge_code")
        );
        assert!(matches!(
            r.list("cities", Some(("uf = 'SP' OR 1", "x")), 0),
            Err(ReplicaError::Invalid(_))
        ));
        assert!(
            matches!(r.list("sqlite_master", None, 0), Err(ReplicaError::Invalid(f)) if f.field == "entity")
        );
        assert!(
            matches!(r.list("store_certificate", None, 0), Err(ReplicaError::Invalid(f)) if f.field == "entity")
        );
        assert_eq!(
            r.list("products", Some(("is_kit", "true")), 0)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn parameters_promotions_and_omni_orders() {
        let (_dir, r) = fixture();
        assert_eq!(
            Value::Object(r.parameters().unwrap()),
            json!({"max_discount_bp": "1000", "tef": "on"})
        );
        let active = r.active_promotions("2026-11-30T23:00:00Z").unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0]["rule"], json!({"buy": 3, "pay": 2}));
        assert!(
            r.active_promotions("2026-12-01T00:00:00Z")
                .unwrap()
                .iter()
                .all(|p| p["code"] == "P3")
        );
        assert!(r.active_promotions("yesterday").is_err());
        let open = r.omni_orders(true).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].order.id, "O1");
        assert_eq!(open[0].status, loja_protocol::omni::OrderStatus::Open);
        assert_eq!(r.omni_orders(false).unwrap().len(), 2);
        let o2 = r.omni_order_by_number("N-O2").unwrap().unwrap();
        assert_eq!(o2.status, loja_protocol::omni::OrderStatus::Concluded);
        assert!(r.omni_order("nope").unwrap().is_none());
        let stuck = r.stuck_omni_lines("2026-12-01T00:00:00Z").unwrap();
        assert!(
            stuck.is_empty(),
            "assigned lines wait on the store's accept, not stuck"
        );
    }

    #[test]
    fn fts_query_quotes_words() {
        assert_eq!(
            fts_query("Café  pil-ão").as_deref(),
            Some("\"Café\"* \"pil\"* \"ão\"*")
        );
        assert_eq!(fts_query("\"*()"), None);
    }
}
