//! ERP imports: JSON lines of upserts and deletes, validated with the entity
//! registry and applied in one transaction, each change taking the next
//! sequence. The catalog generator goes through `apply` too.

use std::collections::HashMap;

use crate::sql::Transaction;
use loja_protocol::document::{JsonBodyError, from_json_slice};
use loja_protocol::{Entity, Op, Resolution, entity_named};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::db::DbError;
use crate::nodes::{MASTER, NodeKind};
use crate::rows::{Others, RowWriter, Stored};

/// One validated change, with the request line it came from (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub line: u64,
    pub node: Option<String>,
    pub public: Option<bool>,
    pub op: Op,
    /// The whole row (upsert) or the key columns (delete).
    pub row: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("unknown entity {0}")]
    UnknownEntity(String),
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("line {line}: {field}: {message}")]
    Invalid {
        line: u64,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<crate::sql::Error> for ImportError {
    fn from(e: crate::sql::Error) -> Self {
        ImportError::Db(DbError::Sql(e))
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Default)]
pub struct Applied {
    /// Lines accepted.
    pub applied: u64,
    /// Of those, lines that changed something (got a new sequence). An upsert
    /// of a row identical to the stored one changes nothing.
    pub changed: u64,
    /// The sequence of the last change (the head when nothing changed).
    pub last_seq: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    op: Op,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    row: Option<Map<String, Value>>,
    #[serde(default)]
    key: Option<Map<String, Value>>,
}

pub fn entity(name: &str) -> Result<&'static Entity, ImportError> {
    entity_named(name).ok_or_else(|| ImportError::UnknownEntity(name.to_owned()))
}

/// Parses and validates a JSON-lines body. Blank lines are skipped but counted.
pub fn parse(entity: &Entity, body: &[u8]) -> Result<Vec<Change>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Line = from_json_slice(raw).map_err(|e| match e {
            JsonBodyError::Invalid(f) => ImportError::Invalid {
                line,
                field: f.field,
                message: f.message,
            },
            JsonBodyError::Malformed(e) => ImportError::Malformed {
                line,
                message: format!("not a JSON object: {e}"),
            },
        })?;
        let row = match (parsed.op, parsed.row, parsed.key) {
            (Op::Upsert, Some(row), None) => {
                entity.validate_row(&row).map_err(|e| field(line, e))?;
                row
            }
            (Op::Delete, None, Some(key)) => {
                entity.validate_key(&key).map_err(|e| field(line, e))?;
                key
            }
            (Op::Upsert, _, _) => {
                return Err(invalid(
                    line,
                    "row",
                    "an upsert carries `row` (and no `key`)",
                ));
            }
            (Op::Delete, _, _) => {
                return Err(invalid(
                    line,
                    "key",
                    "a delete carries `key` (and no `row`)",
                ));
            }
        };
        out.push(Change {
            line,
            node: parsed.node,
            public: parsed.public,
            op: parsed.op,
            row,
        });
    }
    Ok(out)
}

fn field(line: u64, e: loja_protocol::FieldError) -> ImportError {
    ImportError::Invalid {
        line,
        field: e.field,
        message: e.message,
    }
}

fn invalid(line: u64, field: &str, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        line,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Applies validated changes inside the caller's transaction. Any error leaves
/// the transaction to be rolled back by the caller: nothing of it is applied.
///
/// A change addresses the row of its key at its owner node (the line's
/// `node`, master when absent): other nodes' rows of the key stay, except
/// for a `shared` entity, whose key has one owner at a time and moves.
pub fn apply(
    tx: &Transaction<'_>,
    entity: &Entity,
    changes: &[Change],
) -> Result<Applied, ImportError> {
    let kinds = node_kinds(tx)?;
    let mut rows = RowWriter::open(tx)?;
    rows.queue_writes();
    let mut stats = Applied::default();
    let mut rest = changes;
    while !rest.is_empty() {
        let keys = batch_keys(entity, rest);
        let batch = &rest[..keys.len()];
        rest = &rest[batch.len()..];
        let owners = batch
            .iter()
            .map(|ch| owner(entity, ch, &kinds))
            .collect::<Result<Vec<_>, _>>()?;
        // What each change finds stored, read for the whole batch at once
        // (its keys are distinct: no change of it sees another's write).
        // A shared key's other owners lose their rows: read them all; else
        // only this node's row and whether another node has one.
        let found: Vec<(Vec<Stored>, Option<Stored>, Others)> =
            if entity.resolution == Resolution::Shared {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                rows.find_many(entity.name, &keys)?
                    .into_iter()
                    .zip(&owners)
                    .map(|(stored, (node, _))| {
                        let mine = stored.iter().find(|r| r.node == *node).cloned();
                        let others = Others::among(&stored, node);
                        (stored, mine, others)
                    })
                    .collect()
            } else {
                let at: Vec<(&str, &str)> = keys
                    .iter()
                    .zip(&owners)
                    .map(|(k, (node, _))| (k.as_str(), *node))
                    .collect();
                rows.find_at_many(entity.name, &at)?
                    .into_iter()
                    .map(|(mine, others)| (Vec::new(), mine, others))
                    .collect()
            };
        for (((ch, (node, public)), key_text), (stored, mine, others)) in
            batch.iter().zip(owners).zip(&keys).zip(found)
        {
            let before = rows.seq();
            change(
                &mut rows,
                entity,
                ch,
                node,
                public,
                key_text,
                &stored,
                mine.as_ref(),
                others,
            )?;
            stats.applied += 1;
            if rows.seq() > before {
                stats.changed += 1;
            }
        }
        rows.flush()?;
    }
    stats.last_seq = rows.finish()?;
    Ok(stats)
}

/// Changes read and written together, at most.
const BATCH: usize = 512;

/// The keys of the batch that starts `changes` (never empty when `changes`
/// is not): at most [`BATCH`] changes, and no key twice (a change must see
/// what an earlier one of the same key wrote).
fn batch_keys(entity: &Entity, changes: &[Change]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut keys = Vec::new();
    for ch in changes.iter().take(BATCH) {
        let key = entity.key_text(&ch.row);
        if !seen.insert(key.clone()) {
            break;
        }
        keys.push(key);
    }
    keys
}

/// One change, over what is stored of its key: `stored` (every node's
/// rows, for a shared entity), `mine` (the owner node's row), `others`.
#[allow(clippy::too_many_arguments)]
fn change(
    rows: &mut RowWriter<'_>,
    entity: &Entity,
    ch: &Change,
    node: &str,
    public: bool,
    key_text: &str,
    stored: &[Stored],
    mine: Option<&Stored>,
    others: Others,
) -> Result<(), ImportError> {
    match ch.op {
        Op::Upsert => {
            let data = serde_json::to_string(&ch.row)
                .map_err(|e| invalid(ch.line, "row", e.to_string()))?;
            if entity.resolution == Resolution::Shared {
                for other in stored.iter().filter(|r| r.node != node && !r.deleted) {
                    rows.tombstone(other)?;
                }
            }
            let same = mine.is_some_and(|r| {
                !r.deleted && r.public == public && r.data.as_deref() == Some(data.as_str())
            });
            if !same {
                let key_json = Value::Object(entity.key_of(&ch.row)).to_string();
                rows.put(
                    entity.name,
                    key_text,
                    &key_json,
                    node,
                    public,
                    Some(&data),
                    mine,
                    others,
                )?;
            }
        }
        Op::Delete => match mine {
            Some(r) if r.deleted => {}
            Some(r) => rows.tombstone(r)?,
            None => {
                // Never seen at this node: keep a tombstone anyway, so a
                // store that holds the row from elsewhere (an old load, a
                // manual insert) drops it or re-resolves the key.
                let key_json = Value::Object(ch.row.clone()).to_string();
                rows.put(
                    entity.name,
                    key_text,
                    &key_json,
                    node,
                    public,
                    None,
                    None,
                    others,
                )?;
            }
        },
    }
    Ok(())
}

/// The node a change is imported under, and whether its row is public,
/// checked against the entity's resolution: an `own` entity's rows belong
/// to a store; a store's rows are its own (never public); secret rows are
/// the store's named in the row.
fn owner<'c>(
    entity: &Entity,
    ch: &'c Change,
    kinds: &'c HashMap<String, NodeKind>,
) -> Result<(&'c str, bool), ImportError> {
    let line = ch.line;
    let store_col = entity.column("store").is_some();
    // The store certificate names its store in the row when the line does not.
    let default_node = if entity.secret && store_col {
        ch.row
            .get("store")
            .and_then(Value::as_str)
            .unwrap_or(MASTER)
    } else {
        MASTER
    };
    let node = ch.node.as_deref().unwrap_or(default_node);
    let kind = kinds
        .get(node)
        .copied()
        .ok_or_else(|| invalid(line, "node", format!("no such node {node}")))?;
    if entity.resolution == Resolution::Own && kind != NodeKind::Store {
        return Err(invalid(
            line,
            "node",
            format!(
                "{} rows belong to a store: import them under the store's node (\"node\": \"<store id>\"), not under {node} (a {})",
                entity.name,
                kind.as_str()
            ),
        ));
    }
    if kind == NodeKind::Store && ch.public == Some(true) {
        return Err(invalid(
            line,
            "public",
            format!("{node} is a store: its rows are its own and cannot be public"),
        ));
    }
    if entity.secret
        && store_col
        && ch.op == Op::Upsert
        && ch.row.get("store").and_then(Value::as_str) != Some(node)
    {
        return Err(invalid(
            line,
            "store",
            format!("must be the owning node {node}"),
        ));
    }
    let public = kind != NodeKind::Store && !entity.secret && ch.public.unwrap_or(true);
    Ok((node, public))
}

fn node_kinds(tx: &Transaction<'_>) -> Result<HashMap<String, NodeKind>, crate::sql::Error> {
    let mut stmt = tx.prepare_cached("SELECT id, kind FROM nodes")?;
    let rows = stmt.query_map(params![], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = HashMap::new();
    for r in rows {
        let (id, kind) = r?;
        if let Some(k) = NodeKind::parse(&kind) {
            out.insert(id, k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::nodes::{NewNode, upsert_node};
    use serde_json::json;

    fn change(line: u64, node: &str, op: Op, row: Value) -> Change {
        Change {
            line,
            node: Some(node.into()),
            public: None,
            op,
            row: row.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Every stored row of an entity: (key_text, node) → (seq, deleted, data, siblings).
    type RowsByKey =
        std::collections::BTreeMap<(String, String), (i64, bool, Option<String>, bool)>;

    fn stored(db: &Db, entity: &str) -> RowsByKey {
        db.read(|c| {
            let mut stmt = c.prepare(
                "SELECT key_text, node, seq, deleted, data, siblings FROM rows WHERE entity = ?1",
            )?;
            let rows = stmt.query_map(params![entity], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?),
                    (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                ))
            })?;
            rows.collect::<Result<RowsByKey, _>>().map_err(DbError::Sql)
        })
        .unwrap()
    }

    /// An import larger than a batch, with keys repeated inside it and
    /// across batches, at several nodes: each change sees what the earlier
    /// ones wrote, as if they ran one by one.
    #[test]
    fn batches_see_earlier_changes_of_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let prices = entity("prices").unwrap();
        let products = entity("products").unwrap();
        db.write(|tx| {
            let n = NewNode {
                id: "s1".into(),
                parent: "master".into(),
                kind: NodeKind::Store,
                token: Some("token-s1-xxxx".into()),
            };
            upsert_node(tx, &n).map_err(|e| DbError::Sql(crate::sql::Error::conversion(e)))
        })
        .unwrap();
        let price = |code: u64, list: &str, price: u64| json!({"product_code": code.to_string(), "price_list": list, "price": price});
        let mut changes = Vec::new();
        for k in 0..(BATCH as u64 + 100) {
            changes.push(change(
                changes.len() as u64 + 1,
                "master",
                Op::Upsert,
                price(k, "base", 100 + k),
            ));
        }
        // Key 7 again (a new value), at the store too, then deleted at master;
        // key 8 the same value again (no change).
        changes.push(change(0, "master", Op::Upsert, price(7, "base", 1)));
        changes.push(change(0, "s1", Op::Upsert, price(7, "base", 2)));
        changes.push(change(
            0,
            "master",
            Op::Delete,
            json!({"product_code": "7", "price_list": "base"}),
        ));
        changes.push(change(0, "master", Op::Upsert, price(8, "base", 108)));
        let applied = db.write(|tx| apply(tx, prices, &changes)).unwrap();
        assert_eq!(applied.applied, BATCH as u64 + 104);
        assert_eq!(
            applied.changed,
            BATCH as u64 + 103,
            "key 8's repeat changed nothing"
        );
        let rows = stored(&db, "prices");
        assert_eq!(rows.len(), BATCH + 101);
        let key7 = prices.key_text(price(7, "base", 0).as_object().unwrap());
        let master7 = &rows[&(key7.clone(), "master".to_owned())];
        let store7 = &rows[&(key7, "s1".to_owned())];
        assert!(
            master7.1 && master7.2.is_none(),
            "deleted at master: {master7:?}"
        );
        assert!(
            !store7.1
                && store7
                    .2
                    .as_deref()
                    .is_some_and(|d| d.contains("\"price\":2"))
        );
        assert!(
            master7.3 && store7.3,
            "both rows of key 7 marked as siblings"
        );
        let seqs: std::collections::BTreeSet<i64> = rows.values().map(|r| r.0).collect();
        assert_eq!(seqs.len(), rows.len(), "one sequence per row");
        assert_eq!(*seqs.last().unwrap(), applied.last_seq as i64);

        // A shared key moves to its new owner: the old owner's row is a
        // tombstone, in the same batch as other keys.
        let product = |code: &str, name: &str| json!({"code": code, "name": name, "unit": "UN"});
        let first = [
            change(1, "master", Op::Upsert, product("1", "A")),
            change(2, "master", Op::Upsert, product("2", "B")),
        ];
        db.write(|tx| apply(tx, products, &first)).unwrap();
        let moved = [
            change(1, "s1", Op::Upsert, product("1", "A at s1")),
            change(2, "master", Op::Upsert, product("3", "C")),
        ];
        db.write(|tx| apply(tx, products, &moved)).unwrap();
        let rows = stored(&db, "products");
        let key1 = products.key_text(product("1", "").as_object().unwrap());
        assert!(
            rows[&(key1.clone(), "master".to_owned())].1,
            "master's row of 1 is a tombstone"
        );
        assert!(!rows[&(key1, "s1".to_owned())].1);
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn parse_names_line_and_field() {
        let e = entity("barcodes").unwrap();
        let body = b"{\"op\":\"upsert\",\"row\":{\"barcode\":\"7891000315507\",\"product_code\":\"1\"}}\n\n\
{\"op\":\"upsert\",\"row\":{\"barcode\":\"7891000315508\",\"product_code\":\"1\"}}\n";
        match parse(e, body).unwrap_err() {
            ImportError::Invalid { line, field, .. } => {
                assert_eq!(line, 3);
                assert_eq!(field, "barcode");
            }
            other => panic!("{other:?}"),
        }
        match parse(
            e,
            b"{\"op\":\"delete\",\"key\":{\"barcode\":\"7891000315507\"}}\n{oops",
        )
        .unwrap_err()
        {
            ImportError::Malformed { line, .. } => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        match parse(
            e,
            b"{\"op\":\"upsert\",\"key\":{\"barcode\":\"7891000315507\"}}",
        )
        .unwrap_err()
        {
            ImportError::Invalid { line: 1, field, .. } => assert_eq!(field, "row"),
            other => panic!("{other:?}"),
        }
        match parse(e, b"{\"op\":\"upsert\",\"colour\":1}").unwrap_err() {
            ImportError::Invalid { line: 1, field, .. } => assert_eq!(field, "colour"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(entity("nope"), Err(ImportError::UnknownEntity(_))));
    }
}
