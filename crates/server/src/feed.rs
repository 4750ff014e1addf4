//! Feed pages and change detection for one store.
//!
//! A page is built from one read snapshot: rows of the entity with
//! `seq > after`, in seq order. Sequences are handed out inside the single
//! writer's transaction, so the committed rows always form a prefix of the
//! sequence: a snapshot never misses a row that a later commit slots in below
//! its highest seq. A row changed after it was served moves to a new, higher
//! seq and is served again there (with its new content) — once per change.

use loja_protocol::Entity;
use rusqlite::{Connection, params};

use crate::nodes::Scope;

pub const DEFAULT_LIMIT: u64 = 5_000;
pub const MAX_LIMIT: u64 = 50_000;

/// A page, already serialized as `loja_protocol::FeedPage` JSON.
#[derive(Debug, Clone)]
pub struct Page {
    pub json: String,
    pub items: u64,
    pub next: u64,
    pub more: bool,
}

/// How many rows one page may examine (rows other stores see, skipped)
/// before it ends early with `more: true`.
fn scan_budget(limit: u64) -> u64 {
    limit.saturating_mul(4).max(20_000)
}

/// Builds the page of `entity` after `after` for the store of `scope`.
pub fn build_page(
    conn: &Connection,
    entity: &Entity,
    scope: &Scope,
    after: u64,
    limit: u64,
) -> Result<Page, rusqlite::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let budget = scan_budget(limit);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, node, public, prev_nodes, deleted, key_json, data
         FROM rows WHERE entity = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![entity.name, after as i64])?;
    let mut json = String::with_capacity(if limit > 1000 { 1 << 20 } else { 64 << 10 });
    json.push_str("{\"entity\":\"");
    json.push_str(entity.name);
    json.push_str("\",\"after\":");
    json.push_str(&after.to_string());
    json.push_str(",\"items\":[");
    let mut items = 0u64;
    let mut examined = 0u64;
    let mut next = after;
    let mut more = false;
    while let Some(r) = rows.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        if items == limit || examined == budget {
            // Something is left after this page.
            more = true;
            break;
        }
        examined += 1;
        next = seq;
        let node = r.get_ref(1)?.as_str()?;
        let prev = r.get_ref(3)?.as_str_or_null()?;
        if !scope.relevant(node, prev) {
            continue;
        }
        let public: bool = r.get(2)?;
        let deleted: bool = r.get(4)?;
        if items > 0 {
            json.push(',');
        }
        json.push_str("{\"seq\":");
        json.push_str(&seq.to_string());
        let data = if scope.visible(node, public, deleted) {
            r.get_ref(6)?.as_str_or_null()?
        } else {
            None
        };
        match data {
            Some(data) => {
                json.push_str(",\"op\":\"upsert\",\"row\":");
                json.push_str(data);
            }
            None => {
                json.push_str(",\"op\":\"delete\",\"row\":");
                json.push_str(r.get_ref(5)?.as_str()?);
            }
        }
        json.push('}');
        items += 1;
    }
    json.push_str("],\"next\":");
    json.push_str(&next.to_string());
    json.push_str(",\"more\":");
    json.push_str(if more { "true" } else { "false" });
    json.push('}');
    Ok(Page {
        json,
        items,
        next,
        more,
    })
}

/// The page a held-back store gets: no items, `next == after`.
pub fn held_page(entity: &Entity, after: u64, held_until: &str) -> String {
    let page = loja_protocol::FeedPage {
        entity: entity.name.to_owned(),
        after: loja_protocol::Watermark(after),
        items: Vec::new(),
        next: loja_protocol::Watermark(after),
        more: false,
        held_until: Some(held_until.to_owned()),
    };
    serde_json::to_string(&page).unwrap_or_default()
}

/// The first change after `after` of `entity` this store's feed would carry, if any.
pub fn first_change(
    conn: &Connection,
    entity: &Entity,
    scope: &Scope,
    after: u64,
) -> Result<Option<u64>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, node, prev_nodes FROM rows WHERE entity = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![entity.name, after as i64])?;
    let mut examined = 0u64;
    while let Some(r) = rows.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        examined += 1;
        // Past the budget, say "changed": a spurious wake-up costs one empty page.
        if examined > 20_000
            || scope.relevant(r.get_ref(1)?.as_str()?, r.get_ref(2)?.as_str_or_null()?)
        {
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::import::{Change, apply};
    use crate::nodes::{NewNode, NodeKind, scope, upsert_node};
    use loja_protocol::{FeedPage, Op, Watermark, entity_named};
    use serde_json::{Map, Value, json};

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn change(line: u64, node: &str, public: bool, op: Op, row: Value) -> Change {
        Change {
            line,
            node: Some(node.into()),
            public: Some(public),
            op,
            row: obj(row),
        }
    }

    #[test]
    fn pages_visibility_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("c.db")).unwrap();
        let prices = entity_named("prices").unwrap();
        db.write(|tx| {
            for (id, t) in [("a", "token-aaaa"), ("b", "token-bbbb")] {
                let n = NewNode { id: id.into(), parent: "master".into(), kind: NodeKind::Store, token: Some(t.into()) };
                upsert_node(tx, &n).unwrap();
            }
            let p = |code: &str, list: &str, price: i64| json!({"product_code": code, "price_list": list, "price": price});
            let changes = vec![
                change(1, "master", true, Op::Upsert, p("1", "base", 100)),
                change(2, "a", false, Op::Upsert, p("1", "a", 90)),
                change(3, "master", true, Op::Upsert, p("2", "base", 200)),
                change(4, "master", true, Op::Upsert, p("3", "base", 300)),
            ];
            apply(tx, prices, &changes).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let page = |store: &str, after: u64, limit: u64| -> FeedPage {
            let s = db
                .read(|c| Ok::<_, DbError>(scope(c, store)?.unwrap()))
                .unwrap();
            let p = db
                .read(|c| Ok::<_, DbError>(build_page(c, prices, &s, after, limit)?))
                .unwrap();
            let parsed: FeedPage = serde_json::from_str(&p.json).unwrap();
            parsed.validate(prices, Watermark(after)).unwrap();
            assert_eq!(parsed.next.0, p.next);
            parsed
        };
        let a = page("a", 0, 10);
        assert_eq!(a.items.len(), 4);
        assert!(!a.more);
        let b = page("b", 0, 10);
        assert_eq!(b.items.len(), 3, "b never sees a's private price");
        assert_eq!(b.next.0, 4);
        let b1 = page("b", 0, 2);
        assert!(b1.more);
        assert_eq!(b1.next.0, 3);
        let b2 = page("b", b1.next.0, 2);
        assert_eq!(b2.items.len(), 1);
        assert!(!b2.more);
        // Price 2 turns private to master: a tombstone for everyone.
        db.write(|tx| {
            let row = json!({"product_code": "2", "price_list": "base", "price": 200});
            apply(tx, prices, &[change(1, "master", false, Op::Upsert, row)]).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let b3 = page("b", 4, 10);
        assert_eq!(b3.items.len(), 1);
        assert_eq!(b3.items[0].op, Op::Delete);
        assert_eq!(
            b3.items[0].row,
            obj(json!({"product_code": "2", "price_list": "base"}))
        );
        let s = db
            .read(|c| Ok::<_, DbError>(scope(c, "b")?.unwrap()))
            .unwrap();
        let first = db
            .read(|c| Ok::<_, DbError>(first_change(c, prices, &s, 4)?))
            .unwrap();
        assert_eq!(first, Some(5));
        let none = db
            .read(|c| Ok::<_, DbError>(first_change(c, prices, &s, 5)?))
            .unwrap();
        assert_eq!(none, None);
    }
}
