//! The marks of what the store wrote to `replica.db` ahead of the central,
//! in two tables of their own:
//!
//! - `local_rows` (entity, key): a row written at the store
//!   ([`Catalog::upsert_local`]), marked until a feed page or a repair
//!   brings the central's row (or tombstone) for its key. Verify leaves
//!   marked rows out of the digest and a repair never deletes them, since
//!   the central does not have them yet.
//! - `local_documents` (id): the store documents whose row was written
//!   ([`Catalog::upsert_local_document`]), so that a retry or a recovery
//!   writes a document's row at most once.
//!
//! A leaf: the catalog's writes and verify both use it, and it uses
//! neither.
//!
//! [`Catalog::upsert_local`]: crate::Catalog::upsert_local
//! [`Catalog::upsert_local_document`]: crate::Catalog::upsert_local_document

use std::collections::HashSet;
use std::path::Path;

use loja_protocol::digest::Canon;
use loja_protocol::{Entity, TypedPage};
use rusqlite::{Connection, Transaction, params};
use serde_json::Value;

use crate::Result;
use crate::apply::sql_of;
use crate::error::SqlCtx;

/// A row's key values as JSON, in key order, from its stored values.
pub(crate) fn key_values(values: &[Canon<'_>], key_index: &[usize]) -> Vec<Value> {
    key_index
        .iter()
        .map(|&i| match values.get(i) {
            Some(Canon::Int(n)) => Value::from(*n),
            Some(Canon::Text(t)) => Value::String(String::from_utf8_lossy(t).into_owned()),
            _ => Value::Null,
        })
        .collect()
}

/// A row's key as `Entity::key_text` writes it (a JSON array), from its
/// stored values: the key of its `local_rows` mark.
pub(crate) fn key_text(values: &[Canon<'_>], key_index: &[usize]) -> String {
    serde_json::to_string(&key_values(values, key_index)).unwrap_or_default()
}

/// The keys of `entity` written at the store and not yet seen from the central.
pub(crate) fn local_keys(
    conn: &Connection,
    entity: &Entity,
    path: &Path,
) -> Result<HashSet<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT key FROM local_rows WHERE entity = ?1")
        .ctx(path, "read local rows")?;
    let keys = stmt
        .query_map(params![entity.name], |r| r.get::<_, String>(0))
        .ctx(path, "read local rows")?
        .collect::<rusqlite::Result<HashSet<String>>>()
        .ctx(path, "read local rows")?;
    Ok(keys)
}

/// Marks a row as written at the store (inside the caller's transaction).
pub(crate) fn mark_local(
    tx: &Transaction<'_>,
    entity: &Entity,
    key: &str,
    path: &Path,
) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO local_rows (entity, key) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![entity.name, key]))
        .ctx(path, "mark a local row")?;
    Ok(())
}

/// Forgets the local marks of the keys a page carries (the central's row
/// for them is here now, or its tombstone). One cheap query when the
/// entity has no marks, which is nearly always.
pub(crate) fn forget_local(
    tx: &Transaction<'_>,
    entity: &Entity,
    page: &TypedPage,
    path: &Path,
) -> Result<()> {
    let any: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM local_rows WHERE entity = ?1)")
        .and_then(|mut s| s.query_row(params![entity.name], |r| r.get(0)))
        .ctx(path, "read local rows")?;
    if !any {
        return Ok(());
    }
    let key_index = &sql_of(entity)?.key_index;
    let mut stmt = tx
        .prepare_cached("DELETE FROM local_rows WHERE entity = ?1 AND key = ?2")
        .ctx(path, "forget local rows")?;
    for item in &page.items {
        let values: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
        stmt.execute(params![entity.name, key_text(&values, key_index)])
            .ctx(path, "forget local rows")?;
    }
    Ok(())
}

/// Has the row of store document `id` been written (`local_documents`)?
pub(crate) fn document_written(tx: &Transaction<'_>, id: &str, path: &Path) -> Result<bool> {
    tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM local_documents WHERE id = ?1)")
        .and_then(|mut s| s.query_row(params![id], |r| r.get(0)))
        .ctx(path, "read local documents")
}

/// Records that the row of store document `id` was written.
pub(crate) fn record_document(tx: &Transaction<'_>, id: &str, path: &Path) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO local_documents (id) VALUES (?1)")
        .and_then(|mut s| s.execute(params![id]))
        .ctx(path, "record a local document")?;
    Ok(())
}

/// Forgets the ids of written documents that are not in `keep` (inside the
/// caller's transaction); answers how many.
pub(crate) fn prune_documents(
    tx: &Transaction<'_>,
    keep: &HashSet<String>,
    path: &Path,
) -> Result<u64> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM local_documents")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .ctx(path, "read local documents")?;
    let mut n = 0;
    for id in ids.iter().filter(|id| !keep.contains(*id)) {
        n += tx
            .execute("DELETE FROM local_documents WHERE id = ?1", [id])
            .ctx(path, "prune local documents")? as u64;
    }
    Ok(n)
}
