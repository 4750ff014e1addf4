//! Product cards: the barcode lookup's answer kept ready, one row per
//! barcode (`product_cards`, schema/replica/catalog/0002_product_cards.sql).
//!
//! Why: a lookup from the tables is eight B-tree searches (barcode, product
//! and its rowid, taxes, stock, kits, the barcode list, the price rows), and
//! on a replica far larger than the CPU caches each one touches pages no
//! recent request touched. A card is one search, on an integer key (the
//! barcode's [`slot`]): integer compares, where a text key decodes and
//! compares a record at every step of the descent.
//!
//! The invariant: a card is current or absent. Every change to a row a card
//! is made of deletes the cards of that product in the same transaction
//! ([`Stale`], used by the catalog's apply paths); cards are built by the
//! catalog's one writer ([`build`]) from what that same transaction sees.
//! An absent card, one built for another store or in an older format is
//! not used: the lookup reads the tables, as it did before cards existed.
//! What depends on the clock (whether a promotion still runs) is decided
//! when the card is read, from the price row it stores.

use std::collections::BTreeSet;
use std::path::Path;

use loja_protocol::Entity;
use loja_protocol::typed::Cell;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use crate::Result;
use crate::error::SqlCtx;
use crate::queries::{PriceRow, by_barcode_sql, product_parts, write_answer};

/// Bumped by hand whenever the code that writes an answer changes its bytes.
const ANSWER_VERSION: &str = "1";

/// The format a card is written in: [`ANSWER_VERSION`] and the registry
/// columns of every entity a card is made of (a column added to `products`
/// in a later release changes the answer without anyone touching this
/// file). Cards of another format are ignored, then rebuilt.
pub(crate) fn format() -> i64 {
    static FORMAT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *FORMAT.get_or_init(|| {
        let mut layout = String::from(ANSWER_VERSION);
        for (name, _) in SOURCES {
            layout.push('|');
            layout.push_str(name);
            for c in loja_protocol::entity_named(name).map_or(&[][..], |e| e.columns) {
                layout.push_str(&format!(",{}:{:?}", c.name, c.ty));
            }
        }
        slot(&layout)
    })
}

/// A page that touches at least 1 in `BULK_SHARE` cards (and at least
/// `BULK_MIN` products) empties the table: see [`Stale::delete`].
const BULK_SHARE: i64 = 20;
const BULK_MIN: usize = 500;

/// The entities a card is made of, and the column of each that holds the
/// product whose cards a change makes stale (for `barcodes`, also the
/// product that owned the barcode before: see [`Stale::note`]).
const SOURCES: &[(&str, &str)] = &[
    ("products", "code"),
    ("barcodes", "product_code"),
    ("prices", "product_code"),
    ("product_taxes", "product_code"),
    ("stock", "product_code"),
    ("kits", "kit_code"),
];

/// A barcode's place in `product_cards`: its 64-bit FNV-1a hash. Stored on
/// disk, so it must never change (a different function needs a migration
/// that empties the table).
pub(crate) fn slot(barcode: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in barcode.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// Whether rows of `entity` are part of product cards (a change to them
/// drops cards, so the builder has work).
pub fn feeds_product_cards(entity: &Entity) -> bool {
    SOURCES.iter().any(|(e, _)| *e == entity.name)
}

/// The card columns both reads select, in this order (a macro so the
/// statements stay `&'static str`: no formatting on the lookup's path).
macro_rules! card_select {
    ($where:literal) => {
        concat!(
            "SELECT barcode, store, format, head, price_list, price, promo_price, promo_until, tail \
             FROM product_cards WHERE ",
            $where
        )
    };
}

/// Appends the answer for `barcode` from its card, when it has one that is
/// current for `store`. False (and `out` untouched) otherwise.
pub(crate) fn write(
    conn: &Connection,
    path: &Path,
    barcode: &str,
    store: &str,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let sql = card_select!("slot = ?1");
    write_first(conn, path, sql, [slot(barcode)], Some(barcode), store, out)
}

/// Appends the answer for product `code` from any current card of its
/// barcodes: the answer names no barcode of its own (it lists them all), so
/// every card of a product holds the same bytes, and the invariant (current
/// or absent) holds per product. False when the product has no card (no
/// barcode, or not built yet): the caller reads the tables.
pub(crate) fn write_by_product(
    conn: &Connection,
    path: &Path,
    code: &str,
    store: &str,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let sql = card_select!("product_code = ?1 AND store = ?2 AND format = ?3 LIMIT 1");
    write_first(
        conn,
        path,
        sql,
        params![code, store, format()],
        None,
        store,
        out,
    )
}

/// Runs a `card_select!` statement and writes the answer of its first row.
fn write_first(
    conn: &Connection,
    path: &Path,
    sql: &str,
    args: impl rusqlite::Params,
    barcode: Option<&str>,
    store: &str,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(sql).ctx(path, "query product_cards")?;
    let mut rows = stmt.query(args).ctx(path, "query product_cards")?;
    match rows.next().ctx(path, "query product_cards")? {
        Some(r) => write_card(r, barcode, store, out).ctx(path, "read product_cards"),
        None => Ok(false),
    }
}

/// Writes the answer from a row of `card_select!` when the card is for
/// `barcode` (when given), `store` and this binary's format.
fn write_card(
    r: &rusqlite::Row<'_>,
    barcode: Option<&str>,
    store: &str,
    out: &mut Vec<u8>,
) -> rusqlite::Result<bool> {
    if let Some(b) = barcode
        && r.get_ref(0)?.as_str()? != b
    {
        return Ok(false);
    }
    if r.get_ref(1)?.as_str()? != store || r.get::<_, i64>(2)? != format() {
        return Ok(false);
    }
    let price = match r.get::<_, Option<String>>(4)? {
        Some(price_list) => Some(PriceRow {
            price_list,
            price: r.get(5)?,
            promo: r.get(6)?,
            until: r.get(7)?,
        }),
        None => None,
    };
    write_answer(
        out,
        r.get_ref(3)?.as_blob()?,
        price,
        r.get_ref(8)?.as_blob()?,
        OffsetDateTime::now_utc(),
    );
    Ok(true)
}

/// One batch of [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBatch {
    /// Cards written.
    pub built: usize,
    /// Where the next batch starts (the last barcode looked at); `None`
    /// when this batch reached the last barcode.
    pub next: Option<String>,
}

/// Builds the missing or outdated cards of up to `limit` barcodes after
/// `after` (in barcode order), on the writer's open transaction `conn`.
pub(crate) fn build(
    conn: &Connection,
    path: &Path,
    store: &str,
    after: &str,
    limit: usize,
) -> Result<CardBatch> {
    let todo: Vec<String> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT barcode FROM barcodes WHERE barcode > ?1 ORDER BY barcode LIMIT ?2",
            )
            .ctx(path, "query barcodes")?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| r.get(0))
            .ctx(path, "query barcodes")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx(path, "read barcodes")?
    };
    let sql = by_barcode_sql()?;
    let mut occupant = conn
        .prepare_cached("SELECT barcode, store, format FROM product_cards WHERE slot = ?1")
        .ctx(path, "prepare card check")?;
    let mut insert = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO product_cards \
             (slot, barcode, product_code, store, format, head, price_list, price, promo_price, promo_until, tail) \
             VALUES (?1, ?2, (SELECT product_code FROM barcodes WHERE barcode = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .ctx(path, "prepare card insert")?;
    let mut built = 0;
    for barcode in &todo {
        let slot = slot(barcode);
        let held: Option<(String, String, i64)> = occupant
            .query_row([slot], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .ctx(path, "query card slot")?;
        match held {
            // Current already.
            Some((b, s, f)) if b == *barcode && s == store && f == format() => continue,
            // Another (live) barcode holds the slot: this one has no card.
            Some((b, _, _)) if b != *barcode => continue,
            _ => {}
        }
        let Some(parts) = product_parts(conn, path, sql, barcode, store)? else {
            // A barcode whose product is not (yet) in the replica: no answer,
            // no card; the lookup answers 404 from the tables.
            continue;
        };
        let price = parts.price.as_ref();
        insert
            .execute(params![
                slot,
                barcode,
                store,
                format(),
                parts.head,
                price.map(|p| &p.price_list),
                price.map(|p| p.price),
                price.and_then(|p| p.promo),
                price.and_then(|p| p.until.as_deref()),
                parts.tail,
            ])
            .ctx(path, "insert product card")?;
        built += 1;
    }
    Ok(CardBatch {
        built,
        next: (todo.len() == limit)
            .then(|| todo.last().cloned())
            .flatten(),
    })
}

/// The products whose cards a page (or one local row) makes stale, noted
/// row by row before each row is written, their cards deleted after the
/// page's rows, in the same transaction.
pub(crate) struct Stale {
    /// Index of the product-code column in the entity's cells.
    column: usize,
    /// `barcodes`: a barcode that moves to another product leaves its old
    /// product's cards stale too (they list it).
    barcode_owner: Option<usize>,
    products: BTreeSet<String>,
}

impl Stale {
    /// `None` when `entity` is not a card source or no card exists (a
    /// first load pays nothing).
    pub(crate) fn for_entity(
        conn: &Connection,
        path: &Path,
        entity: &Entity,
    ) -> Result<Option<Stale>> {
        let Some((_, column)) = SOURCES.iter().find(|(e, _)| *e == entity.name) else {
            return Ok(None);
        };
        let position = |name: &str| entity.columns.iter().position(|c| c.name == name);
        let Some(column) = position(column) else {
            return Ok(None);
        };
        let any: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM product_cards)", [], |r| {
                r.get(0)
            })
            .ctx(path, "query product_cards")?;
        if !any {
            return Ok(None);
        }
        Ok(Some(Stale {
            column,
            barcode_owner: if entity.name == "barcodes" {
                position("barcode")
            } else {
                None
            },
            products: BTreeSet::new(),
        }))
    }

    /// Notes the products a row about to be written (or deleted) touches.
    pub(crate) fn note(&mut self, conn: &Connection, path: &Path, cells: &[Cell]) -> Result<()> {
        if let Some(Cell::Text(code)) = cells.get(self.column) {
            self.products.insert(code.to_string());
        }
        if let Some(Cell::Text(barcode)) = self.barcode_owner.and_then(|i| cells.get(i)) {
            let owner: Option<String> = conn
                .prepare_cached("SELECT product_code FROM barcodes WHERE barcode = ?1")
                .and_then(|mut s| s.query_row([barcode.as_str()], |r| r.get(0)).optional())
                .ctx(path, "query barcode owner")?;
            self.products.extend(owner);
        }
        Ok(())
    }

    /// Deletes the noted products' cards; all cards when the page touches
    /// at least 1 in [`BULK_SHARE`] of them (a price list renewed whole):
    /// emptying the table is one quick statement, deleting card by card is
    /// a random write each and made a 200k-row price batch ~4× slower to
    /// apply. The builder rebuilds them after the sync either way.
    pub(crate) fn delete(self, conn: &Connection, path: &Path) -> Result<()> {
        if self.products.len() >= BULK_MIN {
            let cards: i64 = conn
                .query_row("SELECT count(*) FROM product_cards", [], |r| r.get(0))
                .ctx(path, "count product cards")?;
            if self.products.len() as i64 * BULK_SHARE >= cards {
                conn.execute("DELETE FROM product_cards", [])
                    .ctx(path, "delete product cards")?;
                return Ok(());
            }
        }
        let mut stmt = conn
            .prepare_cached("DELETE FROM product_cards WHERE product_code = ?1")
            .ctx(path, "prepare card delete")?;
        for code in &self.products {
            stmt.execute([code]).ctx(path, "delete product cards")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::{del, ent, page, up};
    use crate::{Catalog, CatalogReader};
    use serde_json::{Value, json};

    fn load(c: &mut Catalog, entity: &str, items: Vec<(loja_protocol::Op, Value)>) {
        let e = ent(entity);
        let after = c.watermark(e).unwrap().0;
        c.apply_page(e, &page(entity, after, items)).unwrap();
    }

    fn ups(rows: Vec<Value>) -> Vec<(loja_protocol::Op, Value)> {
        rows.into_iter().map(up).collect()
    }

    const BARCODES: [&str; 5] = [
        "7891000315507",
        "7896005800010",
        "7891000100103",
        "7891000053508",
        "7891000244234",
    ];

    /// The queries' fixture (products 1, 2, 3 and the kit K; barcodes of 1)
    /// plus barcodes for 2 and K and a product N with no price or taxes.
    fn fixture() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        crate::queries::tests::fill(&mut c);
        load(
            &mut c,
            "products",
            ups(vec![
                json!({"code": "N", "name": "Sem preço", "unit": "KG", "weighable": true}),
            ]),
        );
        load(
            &mut c,
            "barcodes",
            ups(vec![
                json!({"barcode": BARCODES[2], "product_code": "2"}),
                json!({"barcode": BARCODES[3], "product_code": "K"}),
                json!({"barcode": BARCODES[4], "product_code": "N"}),
            ]),
        );
        (dir, c)
    }

    fn build_all(c: &mut Catalog, store: &str) -> usize {
        let (mut after, mut built) = (String::new(), 0);
        for _ in 0..1_000 {
            let batch = c.build_cards(store, &after, 3).unwrap();
            built += batch.built;
            match batch.next {
                Some(next) => after = next,
                None => return built,
            }
        }
        panic!("the card build did not end");
    }

    /// The answer the lookup statement `sql` reads from the tables alone.
    fn tables_answer(r: &CatalogReader, sql: &str, key: &str, store: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let parts = product_parts(&r.conn, &r.path, sql, key, store).unwrap()?;
        parts.write(&mut out, OffsetDateTime::now_utc());
        Some(out)
    }

    fn from_tables(r: &CatalogReader, barcode: &str, store: &str) -> Option<Vec<u8>> {
        tables_answer(r, by_barcode_sql().unwrap(), barcode, store)
    }

    /// By product code: from the tables alone, and from a card alone.
    fn code_from_tables(r: &CatalogReader, code: &str, store: &str) -> Option<Vec<u8>> {
        tables_answer(r, crate::queries::by_code_sql().unwrap(), code, store)
    }

    fn code_from_card(r: &CatalogReader, code: &str, store: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        write_by_product(&r.conn, &r.path, code, store, &mut out)
            .unwrap()
            .then_some(out)
    }

    /// Products of the fixture: 3 has no barcode, so no card.
    const CODES: [&str; 5] = ["1", "2", "3", "K", "N"];

    fn from_card(r: &CatalogReader, barcode: &str, store: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        write(&r.conn, &r.path, barcode, store, &mut out)
            .unwrap()
            .then_some(out)
    }

    fn cards_of(c: &Catalog) -> Vec<String> {
        let r = CatalogReader::open(c.path().parent().unwrap()).unwrap();
        let mut stmt = r
            .conn
            .prepare("SELECT barcode FROM product_cards ORDER BY barcode")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn a_card_answers_byte_for_byte_what_the_tables_do() {
        let (dir, mut c) = fixture();
        assert_eq!(build_all(&mut c, "L1"), 5);
        assert_eq!(
            build_all(&mut c, "L1"),
            0,
            "a second pass finds nothing to do"
        );
        let r = CatalogReader::open(dir.path()).unwrap();
        for b in BARCODES {
            let card = from_card(&r, b, "L1").unwrap_or_else(|| panic!("{b} has no card"));
            assert_eq!(
                String::from_utf8(card).unwrap(),
                String::from_utf8(from_tables(&r, b, "L1").unwrap()).unwrap(),
                "{b}"
            );
            // And through the public lookup.
            let view = r.product_by_barcode(b, "L1").unwrap().unwrap();
            assert!(view.barcodes.iter().any(|x| x == b));
        }
        // By code: any card of the product's barcodes holds the same answer.
        for code in CODES {
            let tables = code_from_tables(&r, code, "L1").unwrap();
            match code_from_card(&r, code, "L1") {
                Some(card) => assert_eq!(
                    String::from_utf8(card).unwrap(),
                    String::from_utf8(tables).unwrap(),
                    "{code}"
                ),
                None => assert_eq!(code, "3", "only 3 has no barcode, so no card"),
            }
        }
        assert_eq!(code_from_card(&r, "1", "L2"), None, "another store's card");
        let one = r.product_by_barcode(BARCODES[0], "L1").unwrap().unwrap();
        assert_eq!(one.price.as_ref().unwrap().effective_price, 1499);
        let two = r.product_by_barcode(BARCODES[2], "L1").unwrap().unwrap();
        assert_eq!(
            two.price.as_ref().unwrap().promo_price,
            None,
            "promotion over"
        );
        let kit = r.product_by_barcode(BARCODES[3], "L1").unwrap().unwrap();
        assert_eq!(kit.kit_components.len(), 2);
        let none = r.product_by_barcode(BARCODES[4], "L1").unwrap().unwrap();
        assert_eq!((none.price, none.taxes), (None, None));
        assert_eq!(r.product_by_barcode("7891000315514", "L1").unwrap(), None);
    }

    #[test]
    fn a_promotion_ends_by_the_clock_not_by_a_rebuild() {
        let (dir, mut c) = fixture();
        let soon = OffsetDateTime::now_utc() + time::Duration::seconds(2);
        let until = loja_protocol::time::format(soon);
        load(
            &mut c,
            "prices",
            ups(vec![
                json!({"product_code": "2", "price_list": "base", "price": 9900, "promo_price": 8900, "promo_until": until}),
            ]),
        );
        build_all(&mut c, "L1");
        let r = CatalogReader::open(dir.path()).unwrap();
        let price = |r: &CatalogReader| {
            r.product_by_barcode(BARCODES[2], "L1")
                .unwrap()
                .unwrap()
                .price
                .unwrap()
                .effective_price
        };
        assert_eq!(price(&r), 8900);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(
            from_card(&r, BARCODES[2], "L1").is_some(),
            "the card is still there"
        );
        assert_eq!(price(&r), 9900);
    }

    #[test]
    fn a_change_to_any_source_drops_the_cards_of_its_product_only() {
        type Items = Vec<(loja_protocol::Op, Value)>;
        let changes: Vec<(&str, Items, &[&str])> = vec![
            (
                "products",
                ups(vec![
                    json!({"code": "1", "name": "Café Pilão 1kg", "unit": "UN"}),
                ]),
                &BARCODES[..2],
            ),
            (
                "prices",
                ups(vec![
                    json!({"product_code": "1", "price_list": "L1", "price": 1000}),
                ]),
                &BARCODES[..2],
            ),
            (
                "prices",
                vec![del(json!({"product_code": "1", "price_list": "L1"}))],
                &BARCODES[..2],
            ),
            (
                "product_taxes",
                ups(vec![json!({"product_code": "2", "ecf_tribute": "F"})]),
                &BARCODES[2..3],
            ),
            (
                "stock",
                ups(vec![json!({"product_code": "1", "qty": 41000})]),
                &BARCODES[..2],
            ),
            (
                "kits",
                vec![del(json!({"kit_code": "K", "component_code": "3"}))],
                &BARCODES[3..4],
            ),
            // A new barcode for N: N's card lists it.
            (
                "barcodes",
                ups(vec![
                    json!({"barcode": "7891000100110", "product_code": "N"}),
                ]),
                &BARCODES[4..5],
            ),
            // A barcode moves from 1 to 2: both products' cards list it.
            (
                "barcodes",
                ups(vec![json!({"barcode": BARCODES[1], "product_code": "2"})]),
                &BARCODES[..3],
            ),
            // A barcode is withdrawn: its product's cards listed it.
            (
                "barcodes",
                vec![del(json!({"barcode": BARCODES[0]}))],
                &BARCODES[..2],
            ),
        ];
        for (entity, items, dropped) in changes {
            let (dir, mut c) = fixture();
            build_all(&mut c, "L1");
            load(&mut c, entity, items);
            let mut kept: Vec<String> = BARCODES
                .iter()
                .filter(|b| !dropped.contains(b))
                .map(|b| b.to_string())
                .collect();
            kept.sort();
            assert_eq!(cards_of(&c), kept, "after a change to {entity}");
            {
                // By code, too, the change is answered at once.
                let r = CatalogReader::open(dir.path()).unwrap();
                for code in CODES {
                    let mut out = Vec::new();
                    let found = r.product_json_by_code(code, "L1", &mut out).unwrap();
                    assert_eq!(
                        found.then_some(out),
                        code_from_tables(&r, code, "L1"),
                        "{entity}: {code}"
                    );
                }
            }
            // The lookup answers the change at once, from the tables, and
            // the next build restores every card, current.
            build_all(&mut c, "L1");
            let r = CatalogReader::open(dir.path()).unwrap();
            for b in BARCODES {
                assert_eq!(
                    from_card(&r, b, "L1"),
                    from_tables(&r, b, "L1"),
                    "{entity}: {b}"
                );
            }
        }
    }

    fn ean(i: usize) -> String {
        let body = format!("789{i:09}");
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        format!("{body}{}", loja_protocol::check::gtin_check_digit(&digits))
    }

    #[test]
    fn a_bulk_page_empties_the_cards_and_the_builder_restores_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let n = 2 * BULK_MIN;
        let rows = |f: &dyn Fn(usize) -> Value| ups((0..n).map(f).collect());
        load(
            &mut c,
            "products",
            rows(&|i| json!({"code": format!("P{i}"), "name": "x", "unit": "UN"})),
        );
        load(
            &mut c,
            "barcodes",
            rows(&|i| json!({"barcode": ean(i), "product_code": format!("P{i}")})),
        );
        load(
            &mut c,
            "prices",
            rows(&|i| json!({"product_code": format!("P{i}"), "price_list": "base", "price": 100})),
        );
        assert_eq!(build_all(&mut c, "L1"), n);
        // A small page drops only its product's cards.
        load(
            &mut c,
            "prices",
            ups(vec![
                json!({"product_code": "P1", "price_list": "base", "price": 101}),
            ]),
        );
        assert_eq!(c.card_count().unwrap(), n as u64 - 1);
        // A page touching a twentieth of them (and BULK_MIN products) empties the table.
        let bulk = (0..BULK_MIN)
            .map(|i| json!({"product_code": format!("P{i}"), "price_list": "base", "price": 102}))
            .collect();
        load(&mut c, "prices", ups(bulk));
        assert_eq!(c.card_count().unwrap(), 0);
        assert_eq!(build_all(&mut c, "L1"), n);
        let r = CatalogReader::open(dir.path()).unwrap();
        let view = r.product_by_barcode(&ean(3), "L1").unwrap().unwrap();
        assert_eq!(view.price.unwrap().price, 102);
    }

    #[test]
    fn a_local_row_drops_the_cards_it_changes() {
        let (_dir, mut c) = fixture();
        build_all(&mut c, "L1");
        let row = json!({"product_code": "K", "qty": 5000});
        c.upsert_local(ent("stock"), row.as_object().unwrap())
            .unwrap();
        assert_eq!(cards_of(&c).len(), 4);
        assert!(!cards_of(&c).contains(&BARCODES[3].to_string()));
    }

    #[test]
    fn another_stores_or_an_older_format_card_is_not_used_and_is_rebuilt() {
        let (dir, mut c) = fixture();
        build_all(&mut c, "R1");
        let r = CatalogReader::open(dir.path()).unwrap();
        assert_eq!(from_card(&r, BARCODES[0], "L1"), None);
        let view = r.product_by_barcode(BARCODES[0], "L1").unwrap().unwrap();
        assert_eq!(
            view.price.unwrap().price_list,
            "L1",
            "answered from the tables"
        );
        assert_eq!(build_all(&mut c, "L1"), 5, "rebuilt for this store");
        c.conn
            .execute(
                "UPDATE product_cards SET format = 0 WHERE barcode = ?1",
                [BARCODES[2]],
            )
            .unwrap();
        assert_eq!(from_card(&r, BARCODES[2], "L1"), None);
        assert_eq!(build_all(&mut c, "L1"), 1);
        assert_eq!(
            from_card(&r, BARCODES[2], "L1"),
            from_tables(&r, BARCODES[2], "L1")
        );
    }

    #[test]
    fn the_slot_function_never_changes() {
        // Slots are on disk: a change here needs a migration that empties
        // product_cards.
        assert_eq!(slot(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(slot("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_ne!(slot(BARCODES[0]), slot(BARCODES[1]));
    }

    #[test]
    fn a_barcode_whose_slot_another_holds_is_answered_from_the_tables() {
        let (dir, mut c) = fixture();
        build_all(&mut c, "L1");
        // Pretend another barcode hashed to BARCODES[2]'s slot first.
        c.conn
            .execute(
                "UPDATE product_cards SET barcode = '0000000000000' WHERE slot = ?1",
                [slot(BARCODES[2])],
            )
            .unwrap();
        assert_eq!(build_all(&mut c, "L1"), 0, "the held slot is left alone");
        let r = CatalogReader::open(dir.path()).unwrap();
        assert_eq!(from_card(&r, BARCODES[2], "L1"), None);
        let view = r.product_by_barcode(BARCODES[2], "L1").unwrap().unwrap();
        assert_eq!(view.product["code"], json!("2"));
    }

    #[test]
    fn a_first_load_pays_nothing_for_cards() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert!(
            Stale::for_entity(&c.conn, c.path(), ent("prices"))
                .unwrap()
                .is_none()
        );
        assert!(
            Stale::for_entity(&c.conn, c.path(), ent("customers"))
                .unwrap()
                .is_none()
        );
    }
}
