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
use crate::rows::RowWriter;

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
    let mut stats = Applied::default();
    for ch in changes {
        let (node, public) = owner(entity, ch, &kinds)?;
        let key_text = entity.key_text(&ch.row);
        // A shared key's other owners lose their rows: read them all; else
        // only this node's row and whether another node has one.
        let (stored, mine, others) = if entity.resolution == Resolution::Shared {
            let stored = rows.find(entity.name, &key_text)?;
            let mine = stored.iter().find(|r| r.node == node).cloned();
            let others = crate::rows::Others::among(&stored, node);
            (stored, mine, others)
        } else {
            let (mine, others) = rows.find_at(entity.name, &key_text, node)?;
            (Vec::new(), mine, others)
        };
        let mine = mine.as_ref();
        stats.applied += 1;
        let before = rows.seq();
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
                        &key_text,
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
                        &key_text,
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
        if rows.seq() > before {
            stats.changed += 1;
        }
    }
    stats.last_seq = rows.finish()?;
    Ok(stats)
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
