//! Feed pages and change detection for one store.
//!
//! A page is built from one read snapshot: rows of the entity with
//! `seq > after`, in seq order. Each relevant row carries its key's winner
//! for the store at that snapshot (`Scope::winner`): the row itself when it
//! is its key's only row, else the visible row nearest to the store; a
//! tombstone when no row is left for the store. Sequences are handed out inside the single
//! writer's transaction, so the committed rows always form a prefix of the
//! sequence: a snapshot never misses a row that a later commit slots in below
//! its highest seq. A row changed after it was served moves to a new, higher
//! seq and is served again there (with its new content) — once per change.

use crate::sql::Connection;
use loja_protocol::Entity;

use crate::nodes::{Candidate, Scope};

pub const DEFAULT_LIMIT: u64 = 5_000;
pub const MAX_LIMIT: u64 = 50_000;

/// A page, already serialized as `loja_protocol::FeedPage` JSON.
#[derive(Debug, Clone)]
pub struct Page {
    pub json: String,
    pub items: u64,
    pub next: u64,
    pub more: bool,
    /// The same bytes for every store under the same ancestors: every row
    /// it examined (and every row of a key it resolved) is owned by one of
    /// them, so no store's own row, nor a sibling's, shaped it.
    pub shared: bool,
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
) -> Result<Page, crate::sql::Error> {
    let head = entity_head(conn, entity)?;
    build_page_upto(conn, entity, scope, after, limit, head)
}

/// The highest seq of `entity`'s rows (0 when it has none).
pub fn entity_head(conn: &Connection, entity: &Entity) -> Result<u64, crate::sql::Error> {
    let head: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM rows WHERE entity = ?1")?
        .query_row(params![entity.name], |r| r.get(0))?;
    Ok(head.unwrap_or(0).max(0) as u64)
}

/// [`build_page`] of the rows up to seq `upto` only: the page a store gets
/// for (`after`, `limit`) while the entity's head is `upto`, whatever
/// commits meanwhile (it is served again to every store of the same view:
/// `crate::page_cache`).
pub fn build_page_upto(
    conn: &Connection,
    entity: &Entity,
    scope: &Scope,
    after: u64,
    limit: u64,
    upto: u64,
) -> Result<Page, crate::sql::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let budget = scan_budget(limit);
    let upto = upto.min(i64::MAX as u64) as i64;
    let ancestors = &scope.nodes[1.min(scope.nodes.len())..];
    // An `own` entity's page holds the store's rows only (no other row can
    // win its keys), read by the `rows_owner` index without the other
    // stores' rows.
    let own = entity.resolution == loja_protocol::Resolution::Own;
    let mut shared = !own;
    let mut stmt = conn.prepare_cached(if own {
        "SELECT seq, node, public, deleted, key_json, data, siblings, key_text
         FROM rows WHERE entity = ?1 AND node = ?5 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
    } else {
        "SELECT seq, node, public, deleted, key_json, data, siblings, key_text
         FROM rows WHERE entity = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
    })?;
    // The loop reads at most the budget and one more row (to say `more`);
    // bounded in SQL too, since PostgreSQL hands a statement's rows over whole.
    let bound = budget.saturating_add(1).min(i64::MAX as u64) as i64;
    let mut rows = if own {
        stmt.query(params![entity.name, after as i64, upto, bound, scope.store])?
    } else {
        stmt.query(params![entity.name, after as i64, upto, bound])?
    };
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
        shared = shared && ancestors.iter().any(|a| a == node);
        if !scope.relevant(entity, node) {
            continue;
        }
        let row = Candidate {
            node,
            public: r.get(2)?,
            deleted: r.get(3)?,
        };
        if items > 0 {
            json.push(',');
        }
        json.push_str("{\"seq\":");
        json.push_str(&seq.to_string());
        let siblings: bool = r.get(6)?;
        let key_json = r.get_ref(4)?.as_str()?;
        if siblings && !own {
            let rows = crate::rows::key_rows(conn, entity.name, r.get_ref(7)?.as_str()?)?;
            shared = shared && rows.iter().all(|k| ancestors.contains(&k.node));
            let won = resolve(entity, scope, &rows);
            push_item(
                &mut json,
                won.and_then(|w| w.data.clone()).as_deref(),
                key_json,
            );
        } else if scope.visible(entity, row) {
            push_item(&mut json, r.get_ref(5)?.as_str_or_null()?, key_json);
        } else {
            push_item(&mut json, None, key_json);
        }
        json.push('}');
        items += 1;
    }
    if own && !more {
        // Every row of the store's up to `upto` is in: nothing between its
        // last row and `upto` is the store's.
        next = next.max(upto as u64);
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
        shared,
    })
}

/// Appends an item's op and row: the data when the store holds a row for
/// the key, else a tombstone carrying the key.
fn push_item(json: &mut String, data: Option<&str>, key_json: &str) {
    match data {
        Some(data) => {
            json.push_str(",\"op\":\"upsert\",\"row\":");
            json.push_str(data);
        }
        None => {
            json.push_str(",\"op\":\"delete\",\"row\":");
            json.push_str(key_json);
        }
    }
}

/// The row of `key_text` the store of `scope` holds, if any: the key's
/// rows at every node (`rows::key_rows`) resolved by `Scope::winner`.
pub fn winner(
    conn: &Connection,
    entity: &Entity,
    scope: &Scope,
    key_text: &str,
) -> Result<Option<crate::rows::Stored>, crate::sql::Error> {
    let rows = crate::rows::key_rows(conn, entity.name, key_text)?;
    Ok(resolve(entity, scope, &rows).cloned())
}

/// Which of a key's rows (every node's) the store of `scope` holds.
fn resolve<'r>(
    entity: &Entity,
    scope: &Scope,
    rows: &'r [crate::rows::Stored],
) -> Option<&'r crate::rows::Stored> {
    let candidates = rows.iter().map(|r| {
        let c = Candidate {
            node: &r.node,
            public: r.public,
            deleted: r.deleted,
        };
        (c, r)
    });
    scope.winner(entity, candidates)
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
///
/// One probe of the `rows_owner` index per node whose rows concern the
/// store (its own, its central's, the master's), in one statement: the
/// other stores' changes since `after` (each sale's stock) are never read.
pub fn first_change(
    conn: &Connection,
    entity: &Entity,
    scope: &Scope,
    after: u64,
) -> Result<Option<u64>, crate::sql::Error> {
    let sources = scope.sources(entity);
    if sources.is_empty() {
        return Ok(None);
    }
    let after = after as i64;
    let mut params: Vec<&dyn crate::sql::ToParam> = vec![&entity.name, &after];
    for node in sources {
        params.push(node);
    }
    let first: Option<i64> = conn
        .prepare_cached(&first_change_sql(sources.len()))?
        .query_row(&params, |r| r.get(0))?;
    Ok(first.map(|s| s as u64))
}

/// `first_change`'s statement for `nodes` nodes (`?3`, `?4`, …): the least
/// of each node's first seq after `?2`, NULL when none has one.
fn first_change_sql(nodes: usize) -> String {
    let probes: Vec<String> = (0..nodes)
        .map(|k| {
            format!(
                "SELECT (SELECT seq FROM rows WHERE entity = ?1 AND node = ?{} AND seq > ?2 \
                 ORDER BY seq LIMIT 1) AS seq",
                k + 3
            )
        })
        .collect();
    format!(
        "SELECT min(seq) FROM ({}) AS firsts",
        probes.join(" UNION ALL ")
    )
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
        let db = Db::for_tests(dir.path());
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

        // Shared with every store under master: only pages no store's own
        // row shaped (the range of a's price is neither a's nor b's to share).
        let built = |store: &str, after: u64, limit: u64, upto: u64| {
            let s = db
                .read(|c| Ok::<_, DbError>(scope(c, store)?.unwrap()))
                .unwrap();
            db.read(|c| Ok::<_, DbError>(build_page_upto(c, prices, &s, after, limit, upto)?))
                .unwrap()
        };
        assert!(
            built("b", 2, 10, 5).shared,
            "prices 2 and 3 and the tombstone: master's"
        );
        assert_eq!(built("a", 2, 10, 5).json, built("b", 2, 10, 5).json);
        assert!(!built("b", 0, 10, 5).shared, "a's price is in the range");
        assert!(!built("a", 0, 10, 5).shared);
        // Bounded by the head it was asked at.
        let upto = built("b", 2, 10, 4);
        // Price 2 moved to seq 5 with its change: (2, 4] holds price 3 only.
        assert_eq!((upto.items, upto.next, upto.more), (1, 4, false));
        let head = db
            .read(|c| Ok::<_, DbError>(entity_head(c, prices)?))
            .unwrap();
        assert_eq!(head, 5);
    }

    /// Every page of `entity` for `store` after `after`, folded into the
    /// store's view (key → row), as a replica applies them; and the end.
    fn fold(
        db: &Db,
        entity: &Entity,
        store: &str,
        after: u64,
        view: &mut std::collections::BTreeMap<String, Map<String, Value>>,
    ) -> u64 {
        let scope = db
            .read(|c| Ok::<_, DbError>(scope(c, store)?.unwrap()))
            .unwrap();
        let mut after = after;
        for _ in 0..100 {
            let p = db
                .read(|c| Ok::<_, DbError>(build_page(c, entity, &scope, after, 3)?))
                .unwrap();
            let page: FeedPage = serde_json::from_str(&p.json).unwrap();
            page.validate(entity, Watermark(after)).unwrap();
            for it in page.items {
                let key = entity.key_text(&it.row);
                match it.op {
                    Op::Upsert => view.insert(key, it.row),
                    Op::Delete => view.remove(&key),
                };
            }
            after = p.next;
            if !p.more {
                return after;
            }
        }
        panic!("feed did not end");
    }

    #[test]
    fn each_store_holds_the_nearest_row_of_each_key() {
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let params = entity_named("parameters").unwrap();
        let stock = entity_named("stock").unwrap();
        let node = |id: &str, parent: &str, kind, token: Option<&str>| NewNode {
            id: id.into(),
            parent: parent.into(),
            kind,
            token: token.map(Into::into),
        };
        db.write(|tx| {
            upsert_node(tx, &node("sul", "master", NodeKind::Central, None)).unwrap();
            upsert_node(tx, &node("norte", "master", NodeKind::Central, None)).unwrap();
            upsert_node(tx, &node("a", "sul", NodeKind::Store, Some("token-aaaa"))).unwrap();
            upsert_node(tx, &node("b", "sul", NodeKind::Store, Some("token-bbbb"))).unwrap();
            upsert_node(tx, &node("c", "norte", NodeKind::Store, Some("token-cccc"))).unwrap();
            let p = |v: &str| json!({"name": "max_discount_bp", "value": v});
            apply(
                tx,
                params,
                &[
                    change(1, "master", true, Op::Upsert, p("1000")),
                    change(2, "sul", true, Op::Upsert, p("1500")),
                    change(3, "a", false, Op::Upsert, p("2000")),
                    change(4, "norte", false, Op::Upsert, p("9999")),
                ],
            )
            .unwrap();
            let q = |code: &str, qty: i64| json!({"product_code": code, "qty": qty});
            apply(
                tx,
                stock,
                &[
                    change(1, "a", false, Op::Upsert, q("1", 5000)),
                    change(2, "b", false, Op::Upsert, q("1", 7000)),
                ],
            )
            .unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let value = |view: &BTreeMap<String, Map<String, Value>>| {
            view.get("[\"max_discount_bp\"]")
                .map(|r| r["value"].clone())
        };
        let mut views: BTreeMap<&str, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
        let mut marks: BTreeMap<&str, u64> = BTreeMap::new();
        let sync = |db: &Db,
                    views: &mut BTreeMap<&'static str, _>,
                    marks: &mut BTreeMap<&'static str, u64>| {
            for s in ["a", "b", "c"] {
                let view = views.entry(s).or_default();
                let m = marks.entry(s).or_default();
                *m = fold(db, params, s, *m, view);
            }
        };
        sync(&db, &mut views, &mut marks);
        assert_eq!(value(&views["a"]), Some(json!("2000")), "a's own");
        assert_eq!(value(&views["b"]), Some(json!("1500")), "its central's");
        assert_eq!(
            value(&views["c"]),
            Some(json!("1000")),
            "norte's row is private: the master's"
        );
        for (s, qty) in [("a", Some(5000)), ("b", Some(7000)), ("c", None)] {
            let mut view = BTreeMap::new();
            fold(&db, stock, s, 0, &mut view);
            assert_eq!(
                view.get("[\"1\"]").map(|r| r["qty"].clone()),
                qty.map(|q| json!(q)),
                "{s}"
            );
        }

        // a's override removed: a holds its central's value again.
        db.write(|tx| {
            apply(
                tx,
                params,
                &[change(
                    1,
                    "a",
                    false,
                    Op::Delete,
                    json!({"name": "max_discount_bp"}),
                )],
            )
        })
        .unwrap();
        sync(&db, &mut views, &mut marks);
        assert_eq!(value(&views["a"]), Some(json!("1500")));
        // The central's removed too: the master's, for a and b.
        db.write(|tx| {
            apply(
                tx,
                params,
                &[change(
                    1,
                    "sul",
                    true,
                    Op::Delete,
                    json!({"name": "max_discount_bp"}),
                )],
            )
        })
        .unwrap();
        sync(&db, &mut views, &mut marks);
        assert_eq!(value(&views["a"]), Some(json!("1000")));
        assert_eq!(value(&views["b"]), Some(json!("1000")));

        // c moves under sul, which sets its own value again: c re-resolves.
        db.write(|tx| {
            apply(
                tx,
                params,
                &[change(
                    1,
                    "sul",
                    true,
                    Op::Upsert,
                    json!({"name": "max_discount_bp", "value": "1700"}),
                )],
            )?;
            upsert_node(tx, &node("c", "sul", NodeKind::Store, Some("token-cccc"))).unwrap();
            Ok::<_, crate::ImportError>(())
        })
        .unwrap();
        sync(&db, &mut views, &mut marks);
        assert_eq!(value(&views["c"]), Some(json!("1700")));
        // … and back under norte (its row private): the master's again.
        db.write(|tx| {
            upsert_node(tx, &node("c", "norte", NodeKind::Store, Some("token-cccc"))).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        sync(&db, &mut views, &mut marks);
        assert_eq!(value(&views["c"]), Some(json!("1000")));
        // Every view equals a fresh download of it.
        for s in ["a", "b", "c"] {
            let mut fresh = BTreeMap::new();
            fold(&db, params, s, 0, &mut fresh);
            assert_eq!(views[s], fresh, "{s}");
        }
    }

    #[test]
    fn own_rows_belong_to_stores_and_stores_never_publish() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let stock = entity_named("stock").unwrap();
        let prices = entity_named("prices").unwrap();
        let err = db
            .write(|tx| {
                let n = NewNode {
                    id: "a".into(),
                    parent: "master".into(),
                    kind: NodeKind::Store,
                    token: Some("token-aaaa".into()),
                };
                upsert_node(tx, &n).unwrap();
                let q = json!({"product_code": "1", "qty": 1000});
                let p = json!({"product_code": "1", "price_list": "a", "price": 100});
                let own_at_master =
                    apply(tx, stock, &[change(7, "master", true, Op::Upsert, q)]).unwrap_err();
                let public_store =
                    apply(tx, prices, &[change(3, "a", true, Op::Upsert, p)]).unwrap_err();
                Ok::<_, DbError>((own_at_master.to_string(), public_store.to_string()))
            })
            .unwrap();
        assert!(
            err.0
                .starts_with("line 7: node: stock rows belong to a store"),
            "{}",
            err.0
        );
        assert!(
            err.1.starts_with("line 3: public: a is a store"),
            "{}",
            err.1
        );
    }

    #[test]
    fn a_shared_key_moves_with_its_owner() {
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let products = entity_named("products").unwrap();
        db.write(|tx| {
            for (id, parent, kind, token) in [
                ("sul", "master", NodeKind::Central, None),
                ("a", "sul", NodeKind::Store, Some("token-aaaa")),
                ("c", "master", NodeKind::Store, Some("token-cccc")),
            ] {
                let n = NewNode {
                    id: id.into(),
                    parent: parent.into(),
                    kind,
                    token: token.map(Into::into),
                };
                upsert_node(tx, &n).unwrap();
            }
            let p = json!({"code": "1", "name": "Café", "unit": "UN"});
            apply(
                tx,
                products,
                &[change(1, "master", true, Op::Upsert, p.clone())],
            )
            .unwrap();
            apply(tx, products, &[change(1, "sul", true, Op::Upsert, p)]).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let mut a = BTreeMap::new();
        let mut c = BTreeMap::new();
        fold(&db, products, "a", 0, &mut a);
        fold(&db, products, "c", 0, &mut c);
        assert_eq!(a.len(), 1, "sul's product reaches its store");
        assert!(
            c.is_empty(),
            "the key moved to sul: c, outside it, holds nothing"
        );
    }

    #[test]
    fn a_stores_own_rows_alone_concern_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let stock = entity_named("stock").unwrap();
        let qty = |code: &str, q: i64| json!({"product_code": code, "qty": q});
        db.write(|tx| {
            for (id, t) in [("a", "token-aaaa"), ("b", "token-bbbb")] {
                let n = NewNode {
                    id: id.into(),
                    parent: "master".into(),
                    kind: NodeKind::Store,
                    token: Some(t.into()),
                };
                upsert_node(tx, &n).unwrap();
            }
            let changes = vec![
                change(1, "a", false, Op::Upsert, qty("1", 5_000)),
                change(2, "b", false, Op::Upsert, qty("1", 7_000)),
                change(3, "a", false, Op::Upsert, qty("2", 1_000)),
                change(4, "b", false, Op::Upsert, qty("2", 2_000)),
                change(5, "b", false, Op::Upsert, qty("3", 3_000)),
            ];
            apply(tx, stock, &changes).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let scope_of = |store: &str| {
            db.read(|c| Ok::<_, DbError>(scope(c, store)?.unwrap()))
                .unwrap()
        };
        let (a, b) = (scope_of("a"), scope_of("b"));
        let first = |s: &Scope, after: u64| {
            db.read(|c| Ok::<_, DbError>(first_change(c, stock, s, after)?))
                .unwrap()
        };
        let (a1, a2) = (first(&a, 0).unwrap(), first(&b, 0).unwrap());
        assert!(a1 < a2, "a's row of product 1 came first");
        let a_last = first(&a, a1).unwrap();
        assert_eq!(first(&a, a_last), None, "b's later rows do not concern a");
        assert!(first(&b, a_last).is_some());

        let page = |s: &Scope, after: u64, limit: u64| -> FeedPage {
            let p = db
                .read(|c| Ok::<_, DbError>(build_page(c, stock, s, after, limit)?))
                .unwrap();
            serde_json::from_str(&p.json).unwrap()
        };
        let head = db
            .read(|c| Ok::<_, DbError>(entity_head(c, stock)?))
            .unwrap();
        let pa = page(&a, 0, 10);
        let qtys: Vec<_> = pa.items.iter().map(|i| i.row["qty"].clone()).collect();
        assert_eq!(
            qtys,
            vec![json!(5_000), json!(1_000)],
            "a's own rows, product 1 despite b's"
        );
        assert!(!pa.more);
        assert_eq!(
            pa.next.0, head,
            "nothing after a's last row is a's: the head"
        );
        let pb = page(&b, 0, 2);
        assert!(pb.more);
        assert_eq!(pb.items.len(), 2);
        let pb2 = page(&b, pb.next.0, 2);
        assert_eq!(pb2.items.len(), 1);
        assert_eq!(pb2.items[0].row["qty"], json!(3_000));
        assert_eq!(pb2.next.0, head);
        assert_eq!(page(&a, head, 10).items.len(), 0);
    }
}
