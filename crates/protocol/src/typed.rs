//! Feed pages parsed straight into typed rows, driven by the entity registry.
//!
//! [`FeedPage`] keeps each row as a `serde_json::Map`: a B-tree node, a
//! `String` per key and a `Value` per field, then string compares to validate
//! and bind. A store applying a 1.1 M-row first load spends most of its time
//! there. [`TypedPage::parse`] reads the same bytes with serde visitors that
//! know the entity: each row key is matched to its column index (borrowed
//! from the input, no allocation), each value is read as its column's type
//! into a [`Cell`], and unknown keys are noted and their value skipped.
//!
//! Parsing never refuses a page for what validation refuses: a value of the
//! wrong JSON type becomes [`Cell::Bad`] and an unknown key is kept in
//! [`TypedItem::unknown_field`], so [`TypedPage::validate`] names the item,
//! sequence and field exactly as [`FeedPage::validate`] does (same rules,
//! same order, same messages; the per-column checks are the registry's).
//! Only what would make `serde_json::from_slice::<FeedPage>` fail (not JSON,
//! a missing page or item field, a row that is not an object) is a parse
//! error. One mechanism for every entity: no per-entity code.

use compact_str::CompactString;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::feed::{FeedItem, FeedPage, Op, PageError, PageHead, Watermark, check_page};
use crate::registry::{ColType, Column, Entity};

/// One field of a typed row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cell {
    /// Not in the row. Binds as NULL like `Null`; kept apart from it because
    /// a tombstone may carry only key fields (even a null non-key field is
    /// refused) and [`TypedItem::to_map`] gives the row back as received.
    #[default]
    Absent,
    /// JSON `null`.
    Null,
    /// `Int`, `Money` and `Qty` columns.
    Int(i64),
    Bool(bool),
    /// `Text` and `Time` columns. Inline up to 24 bytes (codes, barcodes,
    /// NCMs, most names): no allocation per cell, which was a fifth of a
    /// page's parse.
    Text(CompactString),
    /// A `Json` column: the value's compact JSON text (as `serde_json`
    /// writes a `Value`, so both page paths store the same text).
    Json(String),
    /// A value of the wrong JSON type for its column: why, as validation
    /// reports it (`ColType::type_error`).
    Bad(&'static str),
}

impl Cell {
    /// Absent or null: the column is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Absent | Cell::Null)
    }
}

/// One change, its row as cells indexed like `entity.columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedItem {
    pub seq: u64,
    pub op: Op,
    pub cells: Vec<Cell>,
    /// The first (in name order, as a JSON map iterates) row key that is not
    /// a column of the entity, if any: validation refuses the row.
    pub unknown_field: Option<String>,
}

/// A [`FeedPage`] with typed rows. Fields mean what they mean there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedPage {
    pub entity: String,
    pub after: Watermark,
    pub items: Vec<TypedItem>,
    pub next: Watermark,
    pub more: bool,
    pub held_until: Option<String>,
}

impl TypedPage {
    /// Parses a feed page's JSON for `entity`. Accepts and refuses exactly
    /// the bytes `serde_json::from_slice::<FeedPage>` does.
    pub fn parse(entity: &Entity, bytes: &[u8]) -> Result<TypedPage, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let page = PageSeed { entity }.deserialize(&mut de)?;
        de.end()?;
        Ok(page)
    }

    /// The typed form of a page already held as JSON maps (the same cells
    /// [`TypedPage::parse`] gives for its bytes).
    pub fn from_feed(entity: &Entity, page: &FeedPage) -> TypedPage {
        TypedPage {
            entity: page.entity.clone(),
            after: page.after,
            items: page
                .items
                .iter()
                .map(|item| TypedItem::from_feed(entity, item))
                .collect(),
            next: page.next,
            more: page.more,
            held_until: page.held_until.clone(),
        }
    }

    /// Validates the page for the watermark it was asked after, so that it
    /// can be applied without checking its rows again (the caller only
    /// needs the stored watermark to still equal `page.after`). Lets the
    /// download job validate while it parses, off the replica's one writer.
    pub fn checked(
        self,
        entity: &Entity,
        asked_after: Watermark,
    ) -> Result<CheckedPage, PageError> {
        self.validate(entity, asked_after)?;
        Ok(CheckedPage(self))
    }

    /// [`FeedPage::validate`] for typed rows: the same rules in the same
    /// order, with the same errors.
    pub fn validate(&self, entity: &Entity, asked_after: Watermark) -> Result<(), PageError> {
        check_page(
            entity,
            PageHead {
                entity: &self.entity,
                after: self.after,
                next: self.next,
            },
            asked_after,
            self.items
                .iter()
                .map(|item| (item.seq, move || item.validate(entity))),
        )
    }
}

/// A [`TypedPage`] that passed [`TypedPage::validate`] for its own `after`
/// (only [`TypedPage::checked`] makes one).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPage(TypedPage);

impl std::ops::Deref for CheckedPage {
    type Target = TypedPage;
    fn deref(&self) -> &TypedPage {
        &self.0
    }
}

impl TypedItem {
    fn from_feed(entity: &Entity, item: &FeedItem) -> TypedItem {
        TypedItem::from_row(entity, item.seq, item.op, &item.row)
    }

    /// The typed form of a row held as a JSON map.
    pub fn from_row(entity: &Entity, seq: u64, op: Op, row: &Map<String, Value>) -> TypedItem {
        let mut cells = vec![Cell::Absent; entity.columns.len()];
        let mut unknown_field = None;
        for (name, v) in row {
            match column_index(entity, name) {
                Some(i) => cells[i] = cell_of_value(entity.columns[i].ty, v),
                // A Map iterates in name order: the first is the smallest.
                None if unknown_field.is_none() => unknown_field = Some(name.clone()),
                None => {}
            }
        }
        TypedItem {
            seq,
            op,
            cells,
            unknown_field,
        }
    }

    /// `validate_row` (upsert) or `validate_key` (delete) of this row.
    pub fn validate(&self, entity: &Entity) -> Result<(), FieldError> {
        match self.op {
            Op::Upsert => self.validate_row(entity),
            Op::Delete => self.validate_key(entity),
        }
    }

    /// [`Entity::validate_row`] of the cells.
    fn validate_row(&self, entity: &Entity) -> Result<(), FieldError> {
        if let Some(name) = &self.unknown_field {
            return Err(FieldError::new(
                name,
                format!("unknown field for entity {}", entity.name),
            ));
        }
        for (col, cell) in entity.columns.iter().zip(&self.cells) {
            if cell.is_null() {
                if col.required || entity.key.contains(&col.name) {
                    return Err(FieldError::new(col.name, "is required"));
                }
            } else {
                check_cell(col, cell)?;
            }
        }
        Ok(())
    }

    /// [`Entity::validate_key`] of the cells.
    fn validate_key(&self, entity: &Entity) -> Result<(), FieldError> {
        // The first field (in name order) that is not a key column.
        let mut stray: Option<&str> = self.unknown_field.as_deref();
        for (col, cell) in entity.columns.iter().zip(&self.cells) {
            if *cell != Cell::Absent
                && !entity.key.contains(&col.name)
                && stray.is_none_or(|s| col.name < s)
            {
                stray = Some(col.name);
            }
        }
        if let Some(name) = stray {
            return Err(FieldError::new(
                name,
                format!("not a key column of entity {}", entity.name),
            ));
        }
        for k in entity.key {
            let i = column_index(entity, k)
                .ok_or_else(|| FieldError::new(*k, "key column missing from registry"))?;
            match &self.cells[i] {
                c if c.is_null() => return Err(FieldError::new(*k, "key column is required")),
                c => check_cell(&entity.columns[i], c)?,
            }
        }
        Ok(())
    }

    /// The row as a JSON map, as it came (present fields only, nulls kept):
    /// for secret entities' files and anything that wants JSON. A `Bad` cell
    /// or an unknown field (never in a validated page) is left out.
    pub fn to_map(&self, entity: &Entity) -> Map<String, Value> {
        let mut map = Map::new();
        for (col, cell) in entity.columns.iter().zip(&self.cells) {
            let v = match cell {
                Cell::Absent | Cell::Bad(_) => continue,
                Cell::Null => Value::Null,
                Cell::Int(n) => Value::from(*n),
                Cell::Bool(b) => Value::Bool(*b),
                Cell::Text(s) => Value::String(s.as_str().to_owned()),
                Cell::Json(s) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
            };
            map.insert(col.name.to_owned(), v);
        }
        map
    }
}

/// The check of a present, non-null cell: its type (a `Bad` cell), then the
/// registry's text checks (timestamp format, check digits).
fn check_cell(col: &Column, cell: &Cell) -> Result<(), FieldError> {
    match cell {
        Cell::Bad(why) => Err(FieldError::new(col.name, *why)),
        Cell::Text(s) => col.check_text(s),
        _ => Ok(()),
    }
}

fn column_index(entity: &Entity, name: &str) -> Option<usize> {
    entity.columns.iter().position(|c| c.name == name)
}

/// The cell of a JSON value for a column of type `ty`: the visitor the
/// parser uses, run over the value, so both paths agree.
fn cell_of_value(ty: ColType, v: &Value) -> Cell {
    CellSeed(ty)
        .deserialize(v)
        .unwrap_or(Cell::Bad("cannot be read"))
}

// ---- serde visitors -------------------------------------------------------

/// A key read without allocating: its index in `names`, or the key itself
/// when it is not one of them.
enum Key {
    Known(usize),
    Unknown(String),
}

struct KeySeed<'a> {
    names: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match self.names.iter().position(|n| *n == s) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(s.to_owned()),
        })
    }
}

/// Reads one value as a cell of a column of type `ty`. Never fails on a
/// well-formed value: the wrong JSON type is `Cell::Bad`.
#[derive(Clone, Copy)]
struct CellSeed(ColType);

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        if self.0 == ColType::Json {
            // Rare (promotion rules, order items): through a Value, so the
            // text is the canonical one the map path writes.
            let v = Value::deserialize(d)?;
            return Ok(if v.is_null() {
                Cell::Null
            } else {
                Cell::Json(v.to_string())
            });
        }
        d.deserialize_any(self)
    }
}

impl CellSeed {
    fn bad(self) -> Cell {
        Cell::Bad(self.0.type_error())
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        self.deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Cell, E> {
        Ok(if self.0 == ColType::Bool {
            Cell::Bool(b)
        } else {
            self.bad()
        })
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Cell, E> {
        Ok(match self.0 {
            ColType::Int | ColType::Money | ColType::Qty => Cell::Int(n),
            _ => self.bad(),
        })
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Cell, E> {
        Ok(match (self.0, i64::try_from(n)) {
            (ColType::Int | ColType::Money | ColType::Qty, Ok(n)) => Cell::Int(n),
            _ => self.bad(),
        })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Cell, E> {
        // Never a float where money and quantities go.
        Ok(self.bad())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cell, E> {
        Ok(match self.0 {
            ColType::Text | ColType::Time => Cell::Text(CompactString::from(s)),
            _ => self.bad(),
        })
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Cell, E> {
        Ok(match self.0 {
            ColType::Text | ColType::Time => Cell::Text(CompactString::from(s)),
            _ => self.bad(),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.bad())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.bad())
    }
}

/// The `row` object of one item.
struct RowSeed<'e> {
    entity: &'e Entity,
}

type Row = (Vec<Cell>, Option<String>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let cols = self.entity.columns;
        let mut cells = vec![Cell::Absent; cols.len()];
        let mut unknown: Option<String> = None;
        // Keys are matched by name without allocating (borrowed from the input).
        while let Some(key) = map.next_key_seed(ColumnKeySeed(cols))? {
            match key {
                // A repeated key: the last value wins, as in a Map.
                Key::Known(i) => cells[i] = map.next_value_seed(CellSeed(cols[i].ty))?,
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    if unknown.as_ref().is_none_or(|u| name < *u) {
                        unknown = Some(name);
                    }
                }
            }
        }
        Ok((cells, unknown))
    }
}

/// A row key: its column index, matched against the registry's names.
#[derive(Clone, Copy)]
struct ColumnKeySeed<'a>(&'a [Column]);

impl<'de> DeserializeSeed<'de> for ColumnKeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for ColumnKeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match self.0.iter().position(|c| c.name == s) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(s.to_owned()),
        })
    }
}

const ITEM_FIELDS: &[&str] = &["seq", "op", "row"];

/// One item object (fields in any order).
#[derive(Clone, Copy)]
struct ItemSeed<'e> {
    entity: &'e Entity,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = TypedItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TypedItem, D::Error> {
        d.deserialize_struct("FeedItem", ITEM_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = TypedItem;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct FeedItem")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypedItem, A::Error> {
        let (mut seq, mut op, mut row) = (None, None, None);
        while let Some(key) = map.next_key_seed(KeySeed { names: ITEM_FIELDS })? {
            match key {
                Key::Known(0) => set(&mut seq, map.next_value()?, "seq")?,
                Key::Known(1) => set(&mut op, map.next_value()?, "op")?,
                Key::Known(_) => set(
                    &mut row,
                    map.next_value_seed(RowSeed {
                        entity: self.entity,
                    })?,
                    "row",
                )?,
                Key::Unknown(_) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (cells, unknown_field) = row.ok_or_else(|| de::Error::missing_field("row"))?;
        Ok(TypedItem {
            seq: seq.ok_or_else(|| de::Error::missing_field("seq"))?,
            op: op.ok_or_else(|| de::Error::missing_field("op"))?,
            cells,
            unknown_field,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<TypedItem, A::Error> {
        // What serde's derive accepts too: the fields as an array, in order.
        let seq = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let op = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let (cells, unknown_field) = s
            .next_element_seed(RowSeed {
                entity: self.entity,
            })?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok(TypedItem {
            seq,
            op,
            cells,
            unknown_field,
        })
    }
}

fn set<T, E: de::Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(v);
    Ok(())
}

/// The `items` array.
struct ItemsSeed<'e> {
    entity: &'e Entity,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<TypedItem>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<TypedItem>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<TypedItem>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of feed items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<TypedItem>, A::Error> {
        let mut items = Vec::with_capacity(s.size_hint().unwrap_or(0).min(4096));
        let seed = ItemSeed {
            entity: self.entity,
        };
        while let Some(item) = s.next_element_seed(seed)? {
            items.push(item);
        }
        Ok(items)
    }
}

const PAGE_FIELDS: &[&str] = &["entity", "after", "items", "next", "more", "held_until"];

struct PageSeed<'e> {
    entity: &'e Entity,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = TypedPage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TypedPage, D::Error> {
        d.deserialize_struct("FeedPage", PAGE_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = TypedPage;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct FeedPage")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypedPage, A::Error> {
        let (mut entity, mut after, mut items, mut next, mut more, mut held_until) =
            (None, None, None, None, None, None);
        while let Some(key) = map.next_key_seed(KeySeed { names: PAGE_FIELDS })? {
            match key {
                Key::Known(0) => set(&mut entity, map.next_value::<String>()?, "entity")?,
                Key::Known(1) => set(&mut after, map.next_value()?, "after")?,
                Key::Known(2) => set(
                    &mut items,
                    map.next_value_seed(ItemsSeed {
                        entity: self.entity,
                    })?,
                    "items",
                )?,
                Key::Known(3) => set(&mut next, map.next_value()?, "next")?,
                Key::Known(4) => set(&mut more, map.next_value()?, "more")?,
                Key::Known(_) => set(
                    &mut held_until,
                    map.next_value::<Option<String>>()?,
                    "held_until",
                )?,
                Key::Unknown(_) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(TypedPage {
            entity: entity.ok_or_else(|| de::Error::missing_field("entity"))?,
            after: after.ok_or_else(|| de::Error::missing_field("after"))?,
            items: items.ok_or_else(|| de::Error::missing_field("items"))?,
            next: next.ok_or_else(|| de::Error::missing_field("next"))?,
            more: more.ok_or_else(|| de::Error::missing_field("more"))?,
            held_until: held_until.flatten(),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<TypedPage, A::Error> {
        let entity = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let after = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let items = s
            .next_element_seed(ItemsSeed {
                entity: self.entity,
            })?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        let next = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(3, &self))?;
        let more = s
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(4, &self))?;
        let held_until = s.next_element::<Option<String>>()?.flatten();
        Ok(TypedPage {
            entity,
            after,
            items,
            next,
            more,
            held_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::entity_named;
    use serde_json::json;

    fn both(entity: &str, text: &str) -> (FeedPage, TypedPage) {
        let e = entity_named(entity).unwrap();
        let f: FeedPage = serde_json::from_str(text).unwrap();
        let t = TypedPage::parse(e, text.as_bytes()).unwrap();
        assert_eq!(TypedPage::from_feed(e, &f), t, "{text}");
        (f, t)
    }

    #[test]
    fn fields_in_any_order_escapes_and_nulls() {
        let text = r#"{"items": [
            {"row": {"unit": "UN", "name": "Caf\u00e9 \"Pil\u00e3o\"\n", "code": "1", "active": true, "brand": null},
             "op": "upsert", "seq": 6},
            {"op": "upsert", "row": {"pro\u0064uct_code": "x", "code": "2", "name": "A", "unit": "KG"}, "seq": 7, "extra": [1, {"a": 2}]},
            {"seq": 8, "row": {"code": "3"}, "op": "delete"}
        ], "more": true, "next": 9, "entity": "products", "after": 5, "whatever": {"x": [1]}}"#;
        let (f, t) = both("products", text);
        let e = entity_named("products").unwrap();
        assert_eq!(t.items[0].cells[1], Cell::Text("Café \"Pilão\"\n".into()));
        assert_eq!(t.items[0].cells[4], Cell::Null);
        assert_eq!(t.items[0].cells[5], Cell::Absent);
        assert_eq!(t.items[0].cells[8], Cell::Bool(true));
        // An escaped key is still matched; an unknown one is kept by name.
        assert_eq!(t.items[1].unknown_field.as_deref(), Some("product_code"));
        assert_eq!(t.items[2].op, Op::Delete);
        assert_eq!(
            (t.next, t.more, t.held_until.as_deref()),
            (Watermark(9), true, None)
        );
        let want = f.validate(e, Watermark(5));
        assert!(
            matches!(&want, Err(PageError::InvalidRow { index: 1, seq: 7, source }) if source.field == "product_code")
        );
        assert_eq!(t.validate(e, Watermark(5)), want);
        assert_eq!(t.items[0].to_map(e), f.items[0].row);
    }

    #[test]
    fn wrong_types_are_validation_errors_naming_the_field() {
        let e = entity_named("prices").unwrap();
        for (row, field, msg) in [
            (
                r#"{"product_code": "1", "price_list": "base", "price": 12.5}"#,
                "price",
                "centavos",
            ),
            (
                r#"{"product_code": "1", "price_list": "base", "price": "1250"}"#,
                "price",
                "centavos",
            ),
            (
                r#"{"product_code": "1", "price_list": "base", "price": 18446744073709551615}"#,
                "price",
                "centavos",
            ),
            (
                r#"{"product_code": "1", "price_list": "base", "price": [1]}"#,
                "price",
                "centavos",
            ),
            (
                r#"{"product_code": 1, "price_list": "base", "price": 1}"#,
                "product_code",
                "string",
            ),
            (
                r#"{"product_code": "1", "price_list": "base", "price": null}"#,
                "price",
                "required",
            ),
            (
                r#"{"product_code": "1", "price_list": "base", "price": 1, "promo_until": "soon"}"#,
                "promo_until",
                "RFC 3339",
            ),
        ] {
            let text = format!(
                r#"{{"entity": "prices", "after": 0, "items": [{{"seq": 1, "op": "upsert", "row": {row}}}], "next": 1, "more": false}}"#
            );
            let (f, t) = both("prices", &text);
            let err = t.validate(e, Watermark(0)).unwrap_err();
            assert_eq!(Err(err.clone()), f.validate(e, Watermark(0)), "{row}");
            match err {
                PageError::InvalidRow {
                    index: 0,
                    seq: 1,
                    source,
                } => {
                    assert_eq!(source.field, field, "{row}");
                    assert!(source.message.contains(msg), "{row}: {}", source.message);
                }
                other => panic!("{row}: {other}"),
            }
        }
    }

    #[test]
    fn tombstones_carry_only_the_key() {
        let e = entity_named("kits").unwrap();
        for (row, ok) in [
            (r#"{"component_code": "B", "kit_code": "A"}"#, true),
            (
                r#"{"component_code": "B", "kit_code": "A", "qty": null}"#,
                false,
            ),
            (
                r#"{"component_code": "B", "kit_code": "A", "zz": 1, "price": 3}"#,
                false,
            ),
            (
                r#"{"component_code": "B", "kit_code": "A", "aa": 1, "price": 3}"#,
                false,
            ),
            (r#"{"component_code": "B"}"#, false),
            (r#"{"component_code": "B", "kit_code": 7}"#, false),
        ] {
            let text = format!(
                r#"{{"entity": "kits", "after": 0, "items": [{{"seq": 1, "op": "delete", "row": {row}}}], "next": 1, "more": false}}"#
            );
            let (f, t) = both("kits", &text);
            let got = t.validate(e, Watermark(0));
            assert_eq!(got, f.validate(e, Watermark(0)), "{row}");
            assert_eq!(got.is_ok(), ok, "{row}: {got:?}");
        }
    }

    #[test]
    fn json_columns_keep_the_canonical_text() {
        let text = r#"{"entity": "promotions", "after": 0, "next": 1, "more": false, "items": [{"seq": 1, "op": "upsert",
            "row": {"code": "P", "name": "N", "starts_at": "2026-11-26", "ends_at": "2026-11-27T00:00:00Z",
                    "rule": { "z": [1, 2], "a": "\u00e9" }}}]}"#;
        let (f, t) = both("promotions", text);
        assert_eq!(
            t.items[0].cells[4],
            Cell::Json(r#"{"a":"é","z":[1,2]}"#.into())
        );
        let e = entity_named("promotions").unwrap();
        assert_eq!(t.validate(e, Watermark(0)), Ok(()));
        assert_eq!(t.items[0].to_map(e), f.items[0].row);
    }

    #[test]
    fn malformed_pages_fail_like_the_map_path() {
        let e = entity_named("stock").unwrap();
        for text in [
            r#"{"entity": "stock", "after": 0, "items": [], "next": 1}"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": 1, "op": "upsert"}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": 1, "op": "merge", "row": {}}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": 1, "op": "upsert", "row": []}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": -1, "op": "upsert", "row": {}}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "after": 0, "items": [], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": 1, "seq": 1, "op": "upsert", "row": {}}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [], "next": 1, "more": false} x"#,
            r#"{"entity": "stock", "after": 0, "items": [{"seq": 1, "op": "upsert", "row": {"qty": 1,}}], "next": 1, "more": false}"#,
            r#"{"entity": "stock", "after": 0, "items": [], "next": 1, "more": false, "held_until": 5}"#,
        ] {
            assert!(serde_json::from_str::<FeedPage>(text).is_err(), "{text}");
            assert!(TypedPage::parse(e, text.as_bytes()).is_err(), "{text}");
        }
        let held = r#"{"entity": "stock", "after": 3, "items": [], "next": 3, "more": false, "held_until": "2026-11-26T12:00:00Z"}"#;
        let (_, t) = both("stock", held);
        assert_eq!(t.held_until.as_deref(), Some("2026-11-26T12:00:00Z"));
        let arrays = r#"["stock", 0, [[1, "upsert", {"product_code": "1", "qty": 5}]], 1, false]"#;
        let (_, t) = both("stock", arrays);
        assert_eq!(
            t.items[0].cells,
            vec![
                Cell::Text("1".into()),
                Cell::Int(5),
                Cell::Absent,
                Cell::Absent
            ]
        );
    }

    mod same_as_the_map_path {
        use super::*;
        use proptest::prelude::*;

        const ENTITIES: &[&str] = &[
            "stock",
            "prices",
            "barcodes",
            "customers",
            "products",
            "kits",
            "promotions",
        ];

        /// Any JSON value a row field might carry, right or wrong for its column.
        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                (-5_000i64..5_000).prop_map(Value::from),
                Just(json!(u64::MAX)),
                Just(json!(i64::MIN)),
                Just(json!(12.5)),
                Just(json!(-0.0)),
                prop::sample::select(vec![
                    "1",
                    "7891000315507",
                    "7891000315508",
                    "96385074",
                    "52998224725",
                    "52998224724",
                    "11222333000181",
                    "SP",
                    "sp",
                    "22021000",
                    "2026-11-26",
                    "2026-11-26T12:00:00Z",
                    "26/11/2026",
                    "",
                    "Café \"Pilão\"\\\n\u{1F600}",
                    "a\u{0}b",
                ])
                .prop_map(Value::from),
                Just(json!([1, "a", null])),
                Just(json!({"z": 1, "a": [true, {"b": "c"}]})),
            ]
        }

        fn field_name(entity: &'static Entity) -> impl Strategy<Value = String> {
            let names: Vec<String> = entity.columns.iter().map(|c| c.name.to_owned()).collect();
            let strays: Vec<String> = ["colour", "a", "zz"].map(String::from).to_vec();
            prop_oneof![12 => prop::sample::select(names), 1 => prop::sample::select(strays)]
        }

        #[derive(Debug, Clone)]
        struct Item {
            seq: u64,
            op: &'static str,
            row: Vec<(String, Value)>,
            order: usize,
            extra: bool,
        }

        fn item(entity: &'static Entity) -> impl Strategy<Value = Item> {
            (
                0u64..12,
                prop::sample::select(vec!["upsert", "upsert", "delete", "merge"]),
                prop::collection::vec((field_name(entity), value()), 0..8),
                0usize..7,
                prop::bool::weighted(0.1),
            )
                .prop_map(|(seq, op, row, order, extra)| Item {
                    seq,
                    op,
                    row,
                    order,
                    extra,
                })
        }

        /// A row with mostly right values (so that many pages validate).
        fn good_item(entity: &'static Entity) -> impl Strategy<Value = Item> {
            (0u64..12, any::<bool>(), any::<u32>(), 0usize..6).prop_map(
                move |(seq, del, n, order)| {
                    let row = entity
                        .columns
                        .iter()
                        .filter(|c| !del || entity.key.contains(&c.name))
                        .filter(|c| c.required || n % 3 != 0 || entity.key.contains(&c.name))
                        .map(|c| {
                            let v = match (c.ty, c.check) {
                                (ColType::Int | ColType::Money | ColType::Qty, _) => {
                                    json!(i64::from(n % 100_000) - 50)
                                }
                                (ColType::Bool, _) => json!(n % 2 == 0),
                                (ColType::Time, _) => json!("2026-11-26T12:00:00Z"),
                                (ColType::Json, _) => json!({"n": n, "s": "é"}),
                                (_, Some(crate::registry::Check::Gtin)) => json!("7891000315507"),
                                (
                                    _,
                                    Some(
                                        crate::registry::Check::Cpf
                                        | crate::registry::Check::CpfOrCnpj,
                                    ),
                                ) => {
                                    json!("52998224725")
                                }
                                (_, Some(crate::registry::Check::Cnpj)) => json!("11222333000181"),
                                (_, Some(crate::registry::Check::Ncm)) => json!("22021000"),
                                (_, Some(crate::registry::Check::Uf)) => json!("SP"),
                                (_, None) => json!(format!("v{n} \"q\"\n")),
                            };
                            (c.name.to_owned(), v)
                        })
                        .collect();
                    Item {
                        seq,
                        op: if del { "delete" } else { "upsert" },
                        row,
                        order,
                        extra: false,
                    }
                },
            )
        }

        fn item_text(it: &Item) -> String {
            let row: Vec<String> = it
                .row
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v))
                .collect();
            let mut parts = vec![
                format!(r#""seq": {}"#, it.seq),
                format!(r#""op": "{}""#, it.op),
                format!(r#""row": {{{}}}"#, row.join(", ")),
            ];
            // Fields in any order; sometimes an extra one, or one missing.
            parts.rotate_left(it.order % 3);
            if it.order >= 3 {
                parts.swap(0, 1);
            }
            if it.order == 6 {
                parts.pop();
            }
            if it.extra {
                parts.insert(1, r#""note": {"x": [1, 2]}"#.into());
            }
            format!("{{{}}}", parts.join(", "))
        }

        fn page() -> impl Strategy<Value = (&'static Entity, String, Watermark)> {
            prop::sample::select(ENTITIES.to_vec()).prop_flat_map(|name| {
                let e = entity_named(name).unwrap();
                (
                    prop::collection::vec(prop_oneof![3 => good_item(e), 1 => item(e)], 0..6),
                    prop::sample::select(vec![name, name, name, name, name, name, name, "stock"]),
                    0u64..2,
                    prop::sample::select(vec![0u64, 1, 2, 5, 9, 40, 40, 40]),
                    0u32..8,
                )
                    .prop_map(move |(mut items, pname, after, next, roll)| {
                        let monotone = roll != 0;
                        if monotone {
                            for (i, it) in items.iter_mut().enumerate() {
                                it.seq = after + 1 + 2 * i as u64;
                            }
                        }
                        let items: Vec<String> = items.iter().map(item_text).collect();
                        let text = format!(
                            r#"{{"after": {after}, "entity": "{pname}", "items": [{}], "more": false, "next": {next}}}"#,
                            items.join(",\n")
                        );
                        (e, text, Watermark(if roll == 1 { 1 - after } else { after }))
                    })
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn parse_and_validate_agree((e, text, asked) in page()) {
                let f = serde_json::from_str::<FeedPage>(&text);
                let t = TypedPage::parse(e, text.as_bytes());
                prop_assert_eq!(f.is_ok(), t.is_ok(), "{}\nmap: {:?}\ntyped: {:?}", text, f.as_ref().err(), t.as_ref().err());
                if let (Ok(f), Ok(t)) = (f, t) {
                    prop_assert_eq!(&TypedPage::from_feed(e, &f), &t);
                    let verdict = t.validate(e, asked);
                    prop_assert_eq!(&verdict, &f.validate(e, asked), "{}", text);
                    if verdict.is_ok() {
                        for (ti, fi) in t.items.iter().zip(&f.items) {
                            prop_assert_eq!(&ti.to_map(e), &fi.row);
                        }
                    }
                }
            }
        }
    }
}
