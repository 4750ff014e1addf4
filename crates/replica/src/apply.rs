//! The registry-driven apply engine: one mechanism for every entity.
//!
//! The SQL of each entity is built once from the registry (identifiers only
//! from there, values only as bound parameters) and kept prepared on the
//! writer connection; a page's typed cells (`loja_protocol::TypedPage`, the
//! feed parsed by the registry) bind straight into the statement, with no
//! per-row SQL, JSON or allocation.

use std::path::Path;
use std::sync::OnceLock;

use loja_protocol::registry::{ColType, Column};
use loja_protocol::{Cell, ENTITIES, Entity, FieldError};
use rusqlite::types::{Null, ValueRef};
use rusqlite::{Connection, Statement};
use serde_json::{Map, Value};

use crate::error::SqlCtx;
use crate::{ReplicaError, Result};

/// The SQL of one entity, built once from the registry.
pub(crate) struct EntitySql {
    /// `INSERT OR FAIL INTO t (…) VALUES (…)`: tried before the upsert
    /// (see [`insert_row`]).
    pub insert: String,
    /// `INSERT … ON CONFLICT(key) DO UPDATE SET …` every column.
    pub upsert: String,
    /// `DELETE FROM t WHERE k1 = ?1 AND …`.
    pub delete: String,
    /// `SELECT EXISTS (SELECT 1 FROM t WHERE k1 = ?1 AND …)`.
    pub exists: String,
    /// `SELECT c1, c2, … FROM t` (columns in registry order).
    pub select: String,
    /// `ORDER BY k1, k2`.
    pub order_by: String,
    /// Index in `entity.columns` of each key column, in key order.
    pub key_index: Vec<usize>,
}

fn build(e: &Entity) -> EntitySql {
    let cols: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = cols
        .iter()
        .filter(|c| !e.key.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let upsert = format!(
        "INSERT INTO {t} ({cols}) VALUES ({params}) ON CONFLICT ({key}) {on_conflict}",
        t = e.name,
        cols = cols.join(", "),
        params = params.join(", "),
        key = e.key.join(", "),
    );
    let insert = format!(
        "INSERT OR FAIL INTO {t} ({cols}) VALUES ({params})",
        t = e.name,
        cols = cols.join(", "),
        params = params.join(", "),
    );
    let wheres: Vec<String> = e
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 1))
        .collect();
    let delete = format!("DELETE FROM {} WHERE {}", e.name, wheres.join(" AND "));
    let exists = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
        e.name,
        wheres.join(" AND ")
    );
    let select = format!("SELECT {} FROM {}", cols.join(", "), e.name);
    let order_by = format!("ORDER BY {}", e.key.join(", "));
    // usize::MAX (refused by delete_row) for a key that is not a column,
    // which the registry's own test rules out.
    let key_index = e
        .key
        .iter()
        .map(|k| {
            e.columns
                .iter()
                .position(|c| c.name == *k)
                .unwrap_or(usize::MAX)
        })
        .collect();
    EntitySql {
        insert,
        upsert,
        delete,
        exists,
        select,
        order_by,
        key_index,
    }
}

/// The SQL of `entity`, which must be a registry entity (by name).
pub(crate) fn sql_of(entity: &Entity) -> Result<&'static EntitySql> {
    static ALL: OnceLock<Vec<EntitySql>> = OnceLock::new();
    let all = ALL.get_or_init(|| ENTITIES.iter().map(build).collect());
    ENTITIES
        .iter()
        .position(|e| std::ptr::eq(e, entity) || e.name == entity.name)
        .map(|i| &all[i])
        .ok_or_else(|| {
            FieldError::new("entity", format!("{} is not in the registry", entity.name)).into()
        })
}

/// Binds a cell as parameter `idx` (1-based). The page was validated, so a
/// `Bad` cell cannot come here; it is refused all the same.
fn bind_cell(stmt: &mut Statement<'_>, idx: usize, col: &Column, cell: &Cell) -> Result<()> {
    let res = match cell {
        Cell::Absent | Cell::Null => stmt.raw_bind_parameter(idx, Null),
        Cell::Int(n) => stmt.raw_bind_parameter(idx, *n),
        Cell::Bool(b) => stmt.raw_bind_parameter(idx, i64::from(*b)),
        Cell::Text(s) => stmt.raw_bind_parameter(idx, s.as_str()),
        Cell::Json(s) => stmt.raw_bind_parameter(idx, s.as_str()),
        Cell::Bad(why) => return Err(FieldError::new(col.name, *why).into()),
    };
    res.map_err(|e| ReplicaError::Sqlite {
        context: format!("bind {}", col.name),
        source: e,
    })
}

/// Binds every registry column of a row, in order, as parameters 1…n.
fn bind_row(stmt: &mut Statement<'_>, entity: &Entity, cells: &[Cell]) -> Result<()> {
    for (i, (col, cell)) in entity.columns.iter().zip(cells).enumerate() {
        bind_cell(stmt, i + 1, col, cell)?;
    }
    Ok(())
}

/// Upserts one (validated) row: every registry column is written, a missing
/// optional one as NULL.
pub(crate) fn upsert_row(
    stmt: &mut Statement<'_>,
    entity: &Entity,
    cells: &[Cell],
    path: &Path,
) -> Result<()> {
    bind_row(stmt, entity, cells)?;
    stmt.raw_execute()
        .ctx_with(path, || format!("upsert into {}", entity.name))?;
    Ok(())
}

/// The statement in `slot`, prepared (cached) on first use.
pub(crate) fn prepared<'s, 'c>(
    slot: &'s mut Option<rusqlite::CachedStatement<'c>>,
    conn: &'c Connection,
    sql: &str,
    path: &Path,
) -> Result<&'s mut rusqlite::CachedStatement<'c>> {
    if slot.is_none() {
        *slot = Some(
            conn.prepare_cached(sql)
                .ctx_with(path, || format!("prepare {sql}"))?,
        );
    }
    slot.as_mut()
        .ok_or_else(|| FieldError::new("statement", "not prepared").into())
}

/// Inserts one (validated) row as [`upsert_row`] would when its key is new;
/// false (nothing written) when the key is already there.
///
/// Why not always the upsert: a table with triggers (products, for its
/// name index) makes an upsert open a statement journal — its DO UPDATE
/// branch may abort after the triggers wrote — and copy every page it
/// touches into it, about a tenth of a first load's apply. A plain
/// `INSERT OR FAIL` of one row checks every constraint before it writes,
/// so it needs none; on a key conflict it writes nothing.
pub(crate) fn insert_row(
    stmt: &mut Statement<'_>,
    entity: &Entity,
    cells: &[Cell],
    path: &Path,
) -> Result<bool> {
    bind_row(stmt, entity, cells)?;
    match stmt.raw_execute() {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Ok(false)
        }
        Err(e) => Err(e).ctx_with(path, || format!("insert into {}", entity.name)),
    }
}

/// Deletes the row with a tombstone's key columns (`key`: their indexes in
/// `entity.columns`, in key order).
pub(crate) fn delete_row(
    stmt: &mut Statement<'_>,
    entity: &Entity,
    key: &[usize],
    cells: &[Cell],
    path: &Path,
) -> Result<()> {
    for (i, k) in key.iter().enumerate() {
        let (Some(col), Some(cell)) = (entity.columns.get(*k), cells.get(*k)) else {
            return Err(FieldError::new(entity.name, "key column missing from registry").into());
        };
        bind_cell(stmt, i + 1, col, cell)?;
    }
    stmt.raw_execute()
        .ctx_with(path, || format!("delete from {}", entity.name))?;
    Ok(())
}

/// Does `entity` have a row with the key of `cells`?
pub(crate) fn row_exists(
    conn: &Connection,
    entity: &Entity,
    cells: &[Cell],
    path: &Path,
) -> Result<bool> {
    let sql = sql_of(entity)?;
    let mut stmt = conn
        .prepare_cached(&sql.exists)
        .ctx_with(path, || format!("prepare {}", sql.exists))?;
    for (i, k) in sql.key_index.iter().enumerate() {
        let (Some(col), Some(cell)) = (entity.columns.get(*k), cells.get(*k)) else {
            return Err(FieldError::new(entity.name, "key column missing from registry").into());
        };
        bind_cell(&mut stmt, i + 1, col, cell)?;
    }
    let mut rows = stmt.raw_query();
    let exists = match rows.next().ctx(path, "read a row's key")? {
        Some(r) => r.get::<_, bool>(0).ctx(path, "read a row's key")?,
        None => false,
    };
    Ok(exists)
}

/// Reads columns `offset..offset+columns.len()` of `row` back into JSON,
/// typed by the registry: Bool as true/false, Json parsed, NULL omitted.
pub(crate) fn row_to_map(
    columns: &[Column],
    row: &rusqlite::Row<'_>,
    offset: usize,
) -> rusqlite::Result<Map<String, Value>> {
    let mut map = Map::new();
    for (i, col) in columns.iter().enumerate() {
        let v = match row.get_ref(offset + i)? {
            ValueRef::Null => continue,
            ValueRef::Integer(n) => match col.ty {
                ColType::Bool => Value::Bool(n != 0),
                _ => Value::from(n),
            },
            ValueRef::Real(f) => Value::from(f),
            ValueRef::Text(t) => {
                let s = String::from_utf8_lossy(t);
                match col.ty {
                    ColType::Json => {
                        serde_json::from_str(&s).unwrap_or_else(|_| Value::String(s.into_owned()))
                    }
                    _ => Value::String(s.into_owned()),
                }
            }
            ValueRef::Blob(_) => continue,
        };
        map.insert(col.name.to_owned(), v);
    }
    Ok(map)
}

/// The watermark stored for `entity` (0 before the first page).
pub(crate) fn read_watermark(conn: &Connection, entity: &str, path: &Path) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached("SELECT seq FROM watermarks WHERE entity = ?1")
        .ctx(path, "read watermark")?;
    let mut rows = stmt.query([entity]).ctx(path, "read watermark")?;
    match rows.next().ctx(path, "read watermark")? {
        Some(r) => {
            let seq: i64 = r.get(0).ctx(path, "read watermark")?;
            u64::try_from(seq)
                .map_err(|_| ReplicaError::corrupt(path, format!("watermark of {entity}: {seq}")))
        }
        None => Ok(0),
    }
}

pub(crate) fn write_watermark(
    conn: &Connection,
    entity: &str,
    seq: u64,
    path: &Path,
) -> Result<()> {
    let seq = i64::try_from(seq).map_err(|_| FieldError::new("next", "watermark out of range"))?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO watermarks (entity, seq, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (entity) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
        )
        .ctx(path, "write watermark")?;
    stmt.execute(rusqlite::params![
        entity,
        seq,
        loja_protocol::time::now_rfc3339()
    ])
    .ctx_with(path, || format!("write watermark of {entity}"))?;
    Ok(())
}

/// Moves the changes the products triggers queued into `products_fts`, in
/// order, with one statement (see schema/replica/catalog/0001_entities.sql).
/// Every writer calls it before committing; the queue is then empty.
pub(crate) fn flush_fts(conn: &Connection, path: &Path) -> Result<()> {
    let mut fill = conn
        .prepare_cached(
            "INSERT INTO products_fts (products_fts, rowid, name) \
             SELECT CASE WHEN remove THEN 'delete' END, product_rowid, name FROM products_fts_queue ORDER BY seq",
        )
        .ctx(path, "index product names")?;
    fill.execute([]).ctx(path, "index product names")?;
    conn.prepare_cached("DELETE FROM products_fts_queue")
        .ctx(path, "index product names")?
        .execute([])
        .ctx(path, "index product names")?;
    Ok(())
}
