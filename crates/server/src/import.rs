//! ERP imports: JSON lines of upserts and deletes, validated with the entity
//! registry and applied in one transaction, each change taking the next
//! sequence. The catalog generator goes through `apply` too.

use std::collections::HashMap;

use loja_protocol::document::{JsonBodyError, from_json_slice};
use loja_protocol::{Entity, Op, entity_named};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::db::{DbError, head_seq, set_head_seq};
use crate::nodes::{MASTER, NodeKind};

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

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
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
pub fn apply(
    tx: &Transaction<'_>,
    entity: &Entity,
    changes: &[Change],
) -> Result<Applied, ImportError> {
    let kinds = node_kinds(tx)?;
    let mut seq = head_seq(tx)?;
    let mut stats = Applied::default();
    let mut find = tx.prepare_cached(
        "SELECT seq, node, public, prev_nodes, deleted, data FROM rows WHERE entity = ?1 AND key_text = ?2",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO rows (seq, entity, key_text, key_json, node, public, prev_nodes, deleted, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE rows SET seq = ?1, node = ?2, public = ?3, prev_nodes = ?4, deleted = ?5, data = ?6 WHERE seq = ?7",
    )?;
    let store_col = entity.column("store").is_some();
    for ch in changes {
        let line = ch.line;
        // Secret entities (the store certificate) are private to one store:
        // the row's `store` column names it when the line does not.
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
        let public = if entity.secret {
            if ch.public == Some(true) {
                return Err(invalid(
                    line,
                    "public",
                    format!("{} rows are always private", entity.name),
                ));
            }
            if kind != NodeKind::Store {
                return Err(invalid(
                    line,
                    "node",
                    format!("{} rows belong to a store", entity.name),
                ));
            }
            if store_col
                && ch.op == Op::Upsert
                && ch.row.get("store").and_then(Value::as_str) != Some(node)
            {
                return Err(invalid(
                    line,
                    "store",
                    format!("must be the owning node {node}"),
                ));
            }
            false
        } else {
            ch.public.unwrap_or(true)
        };
        let key_text = entity.key_text(&ch.row);
        let existing = find
            .query_row(params![entity.name, key_text], |r| {
                Ok(Existing {
                    seq: r.get(0)?,
                    node: r.get(1)?,
                    public: r.get(2)?,
                    prev_nodes: r.get(3)?,
                    deleted: r.get(4)?,
                    data: r.get(5)?,
                })
            })
            .optional()?;
        stats.applied += 1;
        match (ch.op, existing) {
            (Op::Upsert, None) => {
                seq += 1;
                let key_json = Value::Object(entity.key_of(&ch.row)).to_string();
                let data = serde_json::to_string(&ch.row)
                    .map_err(|e| invalid(line, "row", e.to_string()))?;
                insert.execute(params![
                    seq as i64,
                    entity.name,
                    key_text,
                    key_json,
                    node,
                    public,
                    false,
                    data
                ])?;
                stats.changed += 1;
            }
            (Op::Upsert, Some(ex)) => {
                let data = serde_json::to_string(&ch.row)
                    .map_err(|e| invalid(line, "row", e.to_string()))?;
                if !ex.deleted
                    && ex.node == node
                    && ex.public == public
                    && ex.data.as_deref() == Some(data.as_str())
                {
                    continue;
                }
                let prev = moved_from(ex.prev_nodes.as_deref(), &ex.node, node);
                seq += 1;
                update.execute(params![seq as i64, node, public, prev, false, data, ex.seq])?;
                stats.changed += 1;
            }
            (Op::Delete, Some(ex)) => {
                if ex.deleted {
                    continue;
                }
                // The owner stays: the tombstone reaches exactly the stores that had the row.
                seq += 1;
                update.execute(params![
                    seq as i64,
                    ex.node,
                    ex.public,
                    ex.prev_nodes,
                    true,
                    None::<String>,
                    ex.seq
                ])?;
                stats.changed += 1;
            }
            (Op::Delete, None) => {
                // Never seen: keep a tombstone anyway, so a store that holds the
                // row from elsewhere (an old load, a manual insert) drops it.
                seq += 1;
                let key_json = Value::Object(ch.row.clone()).to_string();
                insert.execute(params![
                    seq as i64,
                    entity.name,
                    key_text,
                    key_json,
                    node,
                    public,
                    true,
                    None::<String>
                ])?;
                stats.changed += 1;
            }
        }
    }
    set_head_seq(tx, seq)?;
    stats.last_seq = seq;
    Ok(stats)
}

struct Existing {
    seq: i64,
    node: String,
    public: bool,
    prev_nodes: Option<String>,
    deleted: bool,
    data: Option<String>,
}

/// The earlier-owners list after a row moves from `old` to `new`.
fn moved_from(prev: Option<&str>, old: &str, new: &str) -> Option<String> {
    let mut list: Vec<&str> = prev
        .map(|p| p.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if old != new && !list.contains(&old) {
        list.push(old);
    }
    list.retain(|n| *n != new);
    if list.is_empty() {
        None
    } else {
        Some(list.join(","))
    }
}

fn node_kinds(tx: &Transaction<'_>) -> Result<HashMap<String, NodeKind>, rusqlite::Error> {
    let mut stmt = tx.prepare_cached("SELECT id, kind FROM nodes")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
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

    #[test]
    fn owners_list() {
        assert_eq!(moved_from(None, "a", "a"), None);
        assert_eq!(moved_from(None, "a", "b").as_deref(), Some("a"));
        assert_eq!(moved_from(Some("a"), "b", "c").as_deref(), Some("a,b"));
        assert_eq!(moved_from(Some("a,b"), "c", "a").as_deref(), Some("b,c"));
    }
}
