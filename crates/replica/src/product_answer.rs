//! The product answer: what the POS gets for a barcode or a product code,
//! as the bytes of a [`ProductView`] written straight from the rows.
//!
//! It owns
//! - the lookup's SQL, built once from the registry: one prepared statement
//!   per lookup (by barcode, by code) joining the product with its taxes and
//!   the taxes of the store's state (its `store_setup` row `uf`), its stock,
//!   whether it is a kit, its barcodes, and one row per price list it has,
//!   ranked by `price_list_order` ([`PriceChoice`]); kit rows come from one
//!   more statement, only for a kit;
//! - the byte-exact JSON writer: the answer equals what serde writes for the
//!   [`ProductView`] (and [`PriceView`]) defined here, without building one;
//! - the price choice and promotion rules the POS's other queries reuse
//!   ([`PriceChoice`], [`instant`]), and [`registry`].
//!
//! It reads through the connection it is handed (a `CatalogReader`'s: the
//! reader's `product_json_by_*` / `product_by_*` methods in `queries.rs`
//! call in here) and its code never imports `queries.rs` (its tests borrow
//! that module's fixture). It must not write: no statement here changes the
//! replica. It knows nothing of HTTP: the agent's API sends the bytes.

use std::path::Path;
use std::sync::OnceLock;

use loja_protocol::registry::ColType;
use loja_protocol::{Entity, FieldError, entity_named};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::Result;
use crate::apply::sql_of;
use crate::error::SqlCtx;

/// The price the POS charges, from the most specific price list the store
/// sees: the store's own list (named after the store id), then any other
/// node's list, then `base`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    /// The product row (registry columns of `products`).
    #[schema(value_type = Object)]
    pub product: Map<String, Value>,
    pub barcodes: Vec<String>,
    pub price: Option<PriceView>,
    /// The `product_taxes` row: ECF tribute, NCM, CFOP, CEST (the same in every state).
    #[schema(value_type = Option<Object>)]
    pub taxes: Option<Map<String, Value>>,
    /// The store's state (its `store_setup` row `uf`): the state of the
    /// ICMS, ST and FCP rows below.
    pub uf: Option<String>,
    /// The `icms_by_state` row of the store's state: CST, rate, base reduction, FCP.
    #[schema(value_type = Option<Object>)]
    pub icms: Option<Map<String, Value>>,
    /// The `icms_st_retained` row of the store's state.
    #[schema(value_type = Option<Object>)]
    pub icms_st: Option<Map<String, Value>>,
    /// The `fcp_balance` row of the store's state.
    #[schema(value_type = Option<Object>)]
    pub fcp_st: Option<Map<String, Value>>,
    /// The `pis_cofins` row.
    #[schema(value_type = Option<Object>)]
    pub pis_cofins: Option<Map<String, Value>>,
    /// Stock on hand, thousandths.
    pub stock_qty: Option<i64>,
    /// Held for omni orders this store accepted (thousandths): what the
    /// POS may sell is `stock_qty − reserved_qty`.
    #[serde(default)]
    pub reserved_qty: i64,
    /// `kits` rows of this product when it is a kit.
    #[schema(value_type = Vec<Object>)]
    pub kit_components: Vec<Map<String, Value>>,
}

/// Which key a lookup goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    Barcode,
    Code,
}

/// Appends the JSON of the product found by `key` (a barcode or a product
/// code, as `by` says) to `out`: a [`ProductView`], the same bytes
/// `serde_json::to_vec` writes for one, its price as charged now, read on
/// `conn` (`path` names the file in errors). False (and `out` untouched)
/// when nothing is found; on an error `out` is left as it was.
pub(crate) fn product_json(
    conn: &rusqlite::Connection,
    path: &Path,
    by: By,
    key: &str,
    store: &str,
    moves: bool,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let l = lookup()?;
    let sql = match by {
        By::Barcode => &l.by_barcode,
        By::Code => &l.by_code,
    };
    match product_parts(conn, path, sql, key, store, moves)? {
        Some(parts) => {
            parts.write(out, OffsetDateTime::now_utc());
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The lookup's SQL and layout, built once from the registry: one statement
/// answers the product joined on primary keys with its taxes, its stock,
/// whether it has kit rows, its barcodes (a JSON array from the covering
/// index) and one row per price list it has — the list is chosen while
/// stepping ([`PriceChoice`]), one index range instead of a search per
/// candidate list. Kit rows (only when it has some) come from one more
/// statement. Every B-tree search counts: they are most of a lookup's time.
struct Lookup {
    by_barcode: String,
    by_code: String,
    /// A kit's rows, by component.
    kits_by_kit: String,
    product: Layout,
    taxes: Layout,
    kits: Layout,
    /// The state taxes, in answer order: icms, icms_st, fcp_st, pis_cofins.
    state_taxes: [(&'static str, Layout); 4],
    /// Where the blocks of the main statement start.
    code_at: usize,
    taxes_at: usize,
    stock_at: usize,
    has_kit_at: usize,
    barcodes_at: usize,
    price_at: usize,
    /// The store's UF, then the state tax blocks.
    uf_at: usize,
    state_taxes_at: [usize; 4],
    /// The stock row's `reflects_store_seq`.
    reflects_at: usize,
}

/// How a registry row is written as JSON: its columns in key (name) order,
/// each with its `"name":` prefix, so the bytes are those of serializing
/// the row's `Map` (a BTreeMap).
struct Layout {
    entity: &'static Entity,
    /// (column index in the registry, `"name":`).
    sorted: Vec<(usize, String)>,
    /// Index of the first key column (NOT NULL: NULL means no row).
    key_at: usize,
}

impl Layout {
    fn new(name: &str) -> Result<Layout> {
        let entity = registry(name)?;
        let mut sorted: Vec<(usize, String)> = entity
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let key = serde_json::to_string(c.name).unwrap_or_default();
                (i, format!("{key}:"))
            })
            .collect();
        sorted.sort_by(|a, b| entity.columns[a.0].name.cmp(entity.columns[b.0].name));
        let key_at = entity
            .columns
            .iter()
            .position(|c| Some(&c.name) == entity.key.first())
            .ok_or_else(|| FieldError::new("entity", format!("{name} has no key column")))?;
        Ok(Layout {
            entity,
            sorted,
            key_at,
        })
    }

    /// `alias.c1, alias.c2, …` in registry order.
    fn select(&self, alias: &str) -> String {
        self.entity
            .columns
            .iter()
            .map(|c| format!("{alias}.{}", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Writes the row's columns at `offset..` as a JSON object, NULLs (and
    /// blobs) omitted, booleans as booleans, JSON columns parsed: the same
    /// bytes as `serde_json::to_vec(&row_to_map(…))`.
    fn write(
        &self,
        out: &mut Vec<u8>,
        row: &rusqlite::Row<'_>,
        offset: usize,
    ) -> rusqlite::Result<()> {
        out.push(b'{');
        let mut first = true;
        for (i, key) in &self.sorted {
            let col = &self.entity.columns[*i];
            let v = row.get_ref(offset + i)?;
            if matches!(v, ValueRef::Null | ValueRef::Blob(_)) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key.as_bytes());
            match v {
                ValueRef::Integer(n) if col.ty == ColType::Bool => {
                    out.extend_from_slice(if n != 0 { b"true" } else { b"false" });
                }
                ValueRef::Integer(n) => json_into(out, &n),
                ValueRef::Real(f) => json_into(out, &Value::from(f)),
                ValueRef::Text(t) => {
                    let s = String::from_utf8_lossy(t);
                    match col.ty {
                        ColType::Json => match serde_json::from_str::<Value>(&s) {
                            Ok(v) => json_into(out, &v),
                            Err(_) => json_into(out, &*s),
                        },
                        _ => json_into(out, &*s),
                    }
                }
                ValueRef::Null | ValueRef::Blob(_) => {}
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// Appends `v` as JSON (writing into a `Vec` cannot fail; a value serde
/// cannot write becomes `null`, as in a `Value`).
fn json_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

fn lookup() -> Result<&'static Lookup> {
    static LOOKUP: OnceLock<std::result::Result<Lookup, String>> = OnceLock::new();
    LOOKUP
        .get_or_init(|| {
            let build = || -> Result<Lookup> {
                let product = Layout::new("products")?;
                let taxes = Layout::new("product_taxes")?;
                let kits = Layout::new("kits")?;
                let state_taxes = [
                    ("icms", Layout::new("icms_by_state")?),
                    ("icms_st", Layout::new("icms_st_retained")?),
                    ("fcp_st", Layout::new("fcp_balance")?),
                    ("pis_cofins", Layout::new("pis_cofins")?),
                ];
                let np = product.entity.columns.len();
                let nt = taxes.entity.columns.len();
                // The store's state: its store_setup row `uf` (a search on
                // the primary key, once per statement).
                const UF: &str = "(SELECT v.value FROM store_setup v WHERE v.name = 'uf')";
                let body = format!(
                    "SELECT {p}, {t}, s.qty, \
                     EXISTS (SELECT 1 FROM kits k WHERE k.kit_code = p.code), \
                     (SELECT json_group_array(x.barcode) FROM barcodes x WHERE x.product_code = p.code), \
                     pr.price_list, pr.price, pr.promo_price, pr.promo_until, \
                     (SELECT o.rank FROM price_list_order o WHERE o.list = pr.price_list), \
                     {UF}, {ic}, {st}, {fb}, {pc}, s.reflects_store_seq \
                     FROM {{from}} \
                     LEFT JOIN product_taxes t ON t.product_code = p.code \
                     LEFT JOIN icms_by_state ic ON ic.product_code = p.code AND ic.uf = {UF} \
                     LEFT JOIN icms_st_retained st ON st.product_code = p.code AND st.uf = {UF} \
                     LEFT JOIN fcp_balance fb ON fb.product_code = p.code AND fb.uf = {UF} \
                     LEFT JOIN pis_cofins pc ON pc.product_code = p.code \
                     LEFT JOIN stock s ON s.product_code = p.code \
                     LEFT JOIN prices pr ON pr.product_code = p.code \
                     WHERE {{key}} = ?1",
                    p = product.select("p"),
                    t = taxes.select("t"),
                    ic = state_taxes[0].1.select("ic"),
                    st = state_taxes[1].1.select("st"),
                    fb = state_taxes[2].1.select("fb"),
                    pc = state_taxes[3].1.select("pc"),
                );
                let uf_at = np + nt + 3 + 5;
                let mut state_taxes_at = [0; 4];
                let mut at = uf_at + 1;
                for (i, (_, l)) in state_taxes.iter().enumerate() {
                    state_taxes_at[i] = at;
                    at += l.entity.columns.len();
                }
                let reflects_at = at;
                let kits_by_kit = format!(
                    "{} WHERE kit_code = ?1 ORDER BY component_code",
                    sql_of(kits.entity)?.select
                );
                let code_at = product
                    .entity
                    .columns
                    .iter()
                    .position(|c| c.name == "code")
                    .ok_or_else(|| FieldError::new("products", "has no code column"))?;
                Ok(Lookup {
                    by_barcode: body
                        .replace("{from}", "barcodes b JOIN products p ON p.code = b.product_code")
                        .replace("{key}", "b.barcode"),
                    by_code: body.replace("{from}", "products p").replace("{key}", "p.code"),
                    kits_by_kit,
                    code_at,
                    taxes_at: np,
                    stock_at: np + nt,
                    has_kit_at: np + nt + 1,
                    barcodes_at: np + nt + 2,
                    price_at: np + nt + 3,
                    uf_at,
                    state_taxes_at,
                    reflects_at,
                    product,
                    taxes,
                    kits,
                    state_taxes,
                })
            };
            build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| FieldError::new("entity", e.clone()).into())
}

/// The parts of the answer for the product `query` finds by `key` (the
/// by-barcode or by-code lookup), read on a reader's `conn`.
fn product_parts(
    conn: &rusqlite::Connection,
    path: &Path,
    query: &str,
    key: &str,
    store: &str,
    moves: bool,
) -> Result<Option<ProductParts>> {
    let l = lookup()?;
    let mut stmt = conn.prepare_cached(query).ctx(path, "query product")?;
    let mut rows = stmt.query([key]).ctx(path, "query product")?;
    let Some(r) = rows.next().ctx(path, "query product")? else {
        return Ok(None);
    };
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"{\"product\":");
    l.product
        .write(&mut head, r, 0)
        .ctx(path, "read products")?;
    // The code outlives this row only to find kit rows, and only kits have some.
    let kit_code: Option<String> = if r.get(l.has_kit_at).ctx(path, "query kits")? {
        Some(r.get(l.code_at).ctx(path, "read products")?)
    } else {
        None
    };
    head.extend_from_slice(b",\"barcodes\":");
    match r.get_ref(l.barcodes_at).ctx(path, "read barcodes")? {
        // json_group_array's text: a JSON array of strings.
        ValueRef::Text(t) => head.extend_from_slice(t),
        _ => head.extend_from_slice(b"[]"),
    }
    let mut tail = Vec::with_capacity(384);
    tail.extend_from_slice(b",\"taxes\":");
    if r.get_ref(l.taxes_at + l.taxes.key_at)
        .ctx(path, "read product_taxes")?
        == ValueRef::Null
    {
        tail.extend_from_slice(b"null");
    } else {
        l.taxes
            .write(&mut tail, r, l.taxes_at)
            .ctx(path, "read product_taxes")?;
    }
    tail.extend_from_slice(b",\"uf\":");
    let uf: Option<String> = r.get(l.uf_at).ctx(path, "read store_setup")?;
    json_into(&mut tail, &uf);
    for ((name, layout), at) in l.state_taxes.iter().zip(l.state_taxes_at) {
        tail.extend_from_slice(b",\"");
        tail.extend_from_slice(name.as_bytes());
        tail.extend_from_slice(b"\":");
        if r.get_ref(at + layout.key_at).ctx(path, "read taxes")? == ValueRef::Null {
            tail.extend_from_slice(b"null");
        } else {
            layout.write(&mut tail, r, at).ctx(path, "read taxes")?;
        }
    }
    let mut stock: Option<i64> = r.get(l.stock_at).ctx(path, "read stock")?;
    let mut reserved = 0;
    if moves {
        let code: String = r.get(l.code_at).ctx(path, "read products")?;
        let reflects: Option<i64> = r.get(l.reflects_at).ctx(path, "read stock")?;
        stock = crate::pending_stock::adjusted(conn, path, &code, stock, reflects.unwrap_or(0))?;
        let now = loja_protocol::time::now_rfc3339();
        reserved = crate::omni_local::reserved(conn, path, &code, &now)?;
    }
    tail.extend_from_slice(b",\"stock_qty\":");
    json_into(&mut tail, &stock);
    tail.extend_from_slice(b",\"reserved_qty\":");
    json_into(&mut tail, &reserved);
    // One row per price list: the list is chosen while stepping.
    let mut choice = PriceChoice::default();
    choice
        .offer(r, l.price_at, store)
        .ctx(path, "read prices")?;
    while let Some(r) = rows.next().ctx(path, "query product")? {
        choice
            .offer(r, l.price_at, store)
            .ctx(path, "read prices")?;
    }
    tail.extend_from_slice(b",\"kit_components\":[");
    if let Some(code) = kit_code {
        let mut stmt = conn
            .prepare_cached(&l.kits_by_kit)
            .ctx(path, "query kits")?;
        let mut rows = stmt.query([code]).ctx(path, "query kits")?;
        let mut first = true;
        while let Some(k) = rows.next().ctx(path, "query kits")? {
            if !first {
                tail.push(b',');
            }
            first = false;
            l.kits.write(&mut tail, k, 0).ctx(path, "read kits")?;
        }
    }
    tail.extend_from_slice(b"]}");
    Ok(Some(ProductParts {
        head,
        price: choice.into_row(),
        tail,
    }))
}

/// The registry entity `name`; an error when there is none.
pub(crate) fn registry(name: &str) -> Result<&'static Entity> {
    entity_named(name)
        .ok_or_else(|| FieldError::new("entity", format!("{name} is not in the registry")).into())
}

/// A time column's value as an instant; a bare date counts as its start
/// (00:00 UTC) or, with `end_of_day`, as the end of that day.
pub(crate) fn instant(s: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    if let Some(t) = loja_protocol::time::parse(s) {
        return Some(t);
    }
    let d = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
    let start = d.midnight().assume_utc();
    Some(if end_of_day {
        start + time::Duration::DAY
    } else {
        start
    })
}

/// Picks a product's price list among its rows, in any order: the nearest
/// in the store's hierarchy (`price_list_order`: its own list, its
/// centrals', the chain's `base`), never by name. Before the order is known
/// (no feed page yet): the store's own list, else `base`. A list of no node
/// of the store's is never charged. The lookup offers it the rows of its
/// statement; the reader's search offers it each hit's `prices` rows.
#[derive(Default)]
pub(crate) struct PriceChoice {
    best: Option<(i64, PriceRow)>,
}

/// One `prices` row: `price_list, price, promo_price, promo_until`, then
/// the list's rank in `price_list_order`.
pub(crate) struct PriceRow {
    pub price_list: String,
    pub price: i64,
    pub promo: Option<i64>,
    pub until: Option<String>,
}

impl PriceChoice {
    /// Considers the price columns at `offset` (NULL: no price row).
    pub(crate) fn offer(
        &mut self,
        r: &rusqlite::Row<'_>,
        offset: usize,
        store: &str,
    ) -> rusqlite::Result<()> {
        let list = match r.get_ref(offset)? {
            ValueRef::Null => return Ok(()),
            v => v.as_str()?,
        };
        let rank = match r.get::<_, Option<i64>>(offset + 4)? {
            Some(rank) => rank,
            None if list == store => 0,
            None if list == "base" => i64::MAX,
            None => return Ok(()),
        };
        if let Some((best, row)) = &self.best
            && (*best, row.price_list.as_str()) <= (rank, list)
        {
            return Ok(());
        }
        self.best = Some((
            rank,
            PriceRow {
                price_list: list.to_owned(),
                price: r.get(offset + 1)?,
                promo: r.get(offset + 2)?,
                until: r.get(offset + 3)?,
            },
        ));
        Ok(())
    }

    /// The chosen price as charged at `now`.
    pub(crate) fn view(self, now: OffsetDateTime) -> Option<PriceView> {
        self.best.map(|(_, row)| row.view(now))
    }

    /// The chosen row (its promotion is judged when the answer is written).
    fn into_row(self) -> Option<PriceRow> {
        self.best.map(|(_, row)| row)
    }
}

impl PriceRow {
    /// The price as charged at `now`.
    fn view(self, now: OffsetDateTime) -> PriceView {
        // A promotion runs while promo_until is unset or still ahead (a bare
        // date runs through that whole day, UTC).
        let running = self.promo.is_some()
            && self
                .until
                .as_deref()
                .is_none_or(|u| instant(u, true).is_some_and(|t| t > now));
        let promo_price = if running { self.promo } else { None };
        PriceView {
            price_list: self.price_list,
            price: self.price,
            promo_price,
            effective_price: promo_price.unwrap_or(self.price),
        }
    }
}

/// A product answer in three parts: everything before the price, the
/// chosen price row (charged at the moment of the request), and everything
/// after it.
struct ProductParts {
    /// `{"product":{…},"barcodes":[…]`
    pub head: Vec<u8>,
    pub price: Option<PriceRow>,
    /// `,"taxes":…,"stock_qty":…,"kit_components":[…]}`
    pub tail: Vec<u8>,
}

impl ProductParts {
    /// Appends the answer, its price as charged at `now`, to `out`.
    fn write(self, out: &mut Vec<u8>, now: OffsetDateTime) {
        write_answer(out, &self.head, self.price, &self.tail, now);
    }
}

/// The bytes of a [`ProductView`] from its parts.
fn write_answer(
    out: &mut Vec<u8>,
    head: &[u8],
    price: Option<PriceRow>,
    tail: &[u8],
    now: OffsetDateTime,
) {
    out.extend_from_slice(head);
    out.extend_from_slice(b",\"price\":");
    match price {
        Some(row) => json_into(out, &row.view(now)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(tail);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::queries::tests::{fixture, load, reference};
    use crate::{Catalog, CatalogReader};

    #[test]
    fn product_by_barcode_has_everything_to_sell_it() {
        let (_dir, r) = fixture();
        let v = r
            .product_by_barcode("7896005800010", "L1")
            .unwrap()
            .unwrap();
        assert_eq!(v.product["code"], json!("1"));
        assert_eq!(v.product["active"], json!(true));
        assert!(!v.product.contains_key("brand"), "NULL columns are omitted");
        assert_eq!(v.barcodes, vec!["7891000315507", "7896005800010"]);
        assert_eq!(v.taxes.as_ref().unwrap()["ecf_tribute"], json!("T18"));
        // The taxes of the store's own state (RJ), not SP's.
        assert_eq!(v.uf.as_deref(), Some("RJ"));
        let icms = v.icms.as_ref().unwrap();
        assert_eq!(
            (&icms["uf"], &icms["icms_rate_bp"], &icms["fcp_rate_bp"]),
            (&json!("RJ"), &json!(2000), &json!(200))
        );
        assert_eq!(v.pis_cofins.as_ref().unwrap()["cofins_rate_bp"], json!(760));
        assert_eq!(v.icms_st, None);
        // Product 3 has ICMS and ST rows for SP only: none for this store.
        let p3 = r.product_by_code("3", "L1").unwrap().unwrap();
        assert_eq!((p3.icms, p3.icms_st), (None, None));
        // A store in SP sells the same product with SP's ICMS.
        let mut c = Catalog::open(_dir.path()).unwrap();
        load(
            &mut c,
            "store_setup",
            vec![json!({"name": "uf", "value": "SP"})],
        );
        let sp = CatalogReader::open(_dir.path()).unwrap();
        let v = sp.product_by_code("1", "L1").unwrap().unwrap();
        assert_eq!(v.icms.as_ref().unwrap()["icms_rate_bp"], json!(1800));
        let p3 = sp.product_by_code("3", "L1").unwrap().unwrap();
        assert_eq!(p3.icms_st.as_ref().unwrap()["icms_retained"], json!(60));
        assert_eq!(v.stock_qty, Some(42000));
        assert!(v.kit_components.is_empty());
        assert_eq!(r.product_by_barcode("7891000315514", "L1").unwrap(), None);
        let k = r.product_by_code("K", "L1").unwrap().unwrap();
        assert_eq!(k.kit_components.len(), 2);
        assert_eq!(k.kit_components[1]["price"], json!(500));
        assert_eq!(k.stock_qty, None);
        assert_eq!(r.product_by_code("nope", "L1").unwrap(), None);
    }

    #[test]
    fn the_json_writer_answers_what_the_seven_statements_did() {
        let (fixture_dir, r) = fixture();
        // More shapes: a product with every column, odd text, a tax row
        // with few columns, a kit that is not flagged as one, a barcode of
        // a product that is not in the replica.
        let mut c = Catalog::open(fixture_dir.path()).unwrap();
        load(
            &mut c,
            "products",
            vec![
                json!({"code": "Q\"1", "name": "Aspas \" e \\ barra\n\u{1}", "unit": "KG", "ncm": "09012100", "brand": "Marca",
                       "department": "D", "is_kit": false, "weighable": true, "active": false, "updated_at": "2026-11-01T00:00:00Z"}),
                json!({"code": "K2", "name": "Sem flag de kit", "unit": "UN"}),
            ],
        );
        load(
            &mut c,
            "barcodes",
            vec![
                json!({"barcode": "7891000100103", "product_code": "Q\"1"}),
                json!({"barcode": "7891000053508", "product_code": "ghost"}),
            ],
        );
        load(
            &mut c,
            "prices",
            vec![
                json!({"product_code": "Q\"1", "price_list": "A", "price": 10, "promo_price": 5, "promo_until": "2999-01-01T00:00:00Z"}),
                json!({"product_code": "Q\"1", "price_list": "B", "price": 20}),
                json!({"product_code": "Q\"1", "price_list": "base", "price": 30, "promo_price": 25}),
                json!({"product_code": "K2", "price_list": "L1", "price": 7, "promo_price": 6, "promo_until": "2000-01-01"}),
            ],
        );
        load(
            &mut c,
            "product_taxes",
            vec![json!({"product_code": "Q\"1", "ecf_tribute": "F"})],
        );
        load(
            &mut c,
            "kits",
            vec![json!({"kit_code": "K2", "component_code": "2", "qty": 1})],
        );
        for code in ["1", "2", "3", "K", "K2", "Q\"1", "nope", "", "ghost"] {
            for store in ["L1", "L2", "R1", "A", "B", "base", ""] {
                let want = reference(&r, code, store);
                let mut out = b"prefix".to_vec();
                let found = r.product_json_by_code(code, store, &mut out).unwrap();
                assert_eq!(found, want.is_some(), "{code} {store}");
                let want = want
                    .map(|v| [b"prefix".to_vec(), serde_json::to_vec(&v).unwrap()].concat())
                    .unwrap_or_else(|| b"prefix".to_vec());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(want).unwrap(),
                    "{code} {store}"
                );
                assert_eq!(
                    r.product_by_code(code, store).unwrap(),
                    reference(&r, code, store)
                );
            }
        }
        for (barcode, code) in [
            ("7891000315507", Some("1")),
            ("7896005800010", Some("1")),
            ("7891000100103", Some("Q\"1")),
            ("7891000053508", None),
            ("7891000315514", None),
        ] {
            let want = code.and_then(|c| reference(&r, c, "L1"));
            assert_eq!(want.is_some(), code.is_some(), "{barcode}");
            assert_eq!(r.product_by_barcode(barcode, "L1").unwrap(), want);
            let mut out = Vec::new();
            assert_eq!(
                r.product_json_by_barcode(barcode, "L1", &mut out).unwrap(),
                want.is_some()
            );
            if let Some(v) = want {
                assert_eq!(out, serde_json::to_vec(&v).unwrap());
            } else {
                assert!(out.is_empty());
            }
        }
        // Before the central told the store its place: its own list, else
        // base; never another list by name.
        let list = |r: &CatalogReader, store: &str| {
            r.product_by_code("Q\"1", store)
                .unwrap()
                .unwrap()
                .price
                .unwrap()
        };
        assert_eq!(list(&r, "B").price_list, "B");
        assert_eq!(list(&r, "A").effective_price, 5);
        assert_eq!(
            list(&r, "L1").price_list,
            "base",
            "A and B are no lists of L1's"
        );
        // L1 under central B under central A: B's list is the nearest it has.

        let scope = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(
            c.set_price_scope(&scope(&["L1", "B", "A", "master"]))
                .unwrap()
        );
        assert!(
            !c.set_price_scope(&scope(&["L1", "B", "A", "master"]))
                .unwrap()
        );
        let r2 = CatalogReader::open(fixture_dir.path()).unwrap();
        assert_eq!(list(&r2, "L1").price_list, "B", "by the tree: B before A");
        assert!(
            c.set_price_scope(&scope(&["L1", "A", "B", "master"]))
                .unwrap()
        );
        let r3 = CatalogReader::open(fixture_dir.path()).unwrap();
        assert_eq!(list(&r3, "L1").price_list, "A", "moved: A is nearer now");
        assert!(c.set_price_scope(&scope(&["L1", "master"])).unwrap());
        let r4 = CatalogReader::open(fixture_dir.path()).unwrap();
        assert_eq!(list(&r4, "L1").price_list, "base");
    }

    #[test]
    fn the_lookup_statements_only_search_indexes() {
        let (_dir, r) = fixture();
        let l = lookup().unwrap();
        for sql in [&l.by_barcode, &l.by_code, &l.kits_by_kit] {
            let mut stmt = r
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = stmt.parameter_count();
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n("x", n)),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            eprintln!("{sql}\n  {}", plan.join("\n  "));
            assert!(
                plan.iter()
                    .all(|d| !d.starts_with("SCAN") && !d.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn price_list_preference_and_promotions() {
        let (_dir, r) = fixture();
        let p = |code: &str, store: &str| {
            r.product_by_code(code, store)
                .unwrap()
                .unwrap()
                .price
                .unwrap()
        };
        // The store's own list first, with its running promotion.
        assert_eq!(
            p("1", "L1"),
            PriceView {
                price_list: "L1".into(),
                price: 1799,
                promo_price: Some(1499),
                effective_price: 1499
            }
        );
        // Another store: its own list, else base (R1 is no node of L2's).
        assert_eq!(p("1", "L2").price_list, "base");
        assert_eq!(p("K", "L2").price_list, "base");
        // Expired promotion: the regular price.
        assert_eq!(
            p("2", "L1"),
            PriceView {
                price_list: "base".into(),
                price: 9900,
                promo_price: None,
                effective_price: 9900
            }
        );
        // Promotion until a future date.
        assert_eq!(p("3", "L1").effective_price, 499);
    }
}
