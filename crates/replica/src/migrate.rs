//! Applies plain .sql migrations by PRAGMA user_version, and opens the
//! three files with their settings. One mechanism for all three: migration
//! N (1-based) is the N-th file of its folder in `schema/replica/`, applied
//! in its own transaction together with `user_version = N`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::SqlCtx;
use crate::{ReplicaError, Result};

/// `schema/replica/catalog/*.sql`, in order.
pub(crate) const CATALOG: &[&str] = &[
    include_str!("../../../schema/replica/catalog/0001_entities.sql"),
    include_str!("../../../schema/replica/catalog/0002_product_cards.sql"),
    include_str!("../../../schema/replica/catalog/0003_local_rows.sql"),
    include_str!("../../../schema/replica/catalog/0004_drop_product_cards.sql"),
    include_str!("../../../schema/replica/catalog/0005_price_list_order.sql"),
    include_str!("../../../schema/replica/catalog/0006_taxes_by_state.sql"),
    include_str!("../../../schema/replica/catalog/0007_sale_life.sql"),
    include_str!("../../../schema/replica/catalog/0008_omni_orders.sql"),
];
/// `schema/replica/outbox/*.sql`, in order.
pub(crate) const OUTBOX: &[&str] = &[
    include_str!("../../../schema/replica/outbox/0001_documents.sql"),
    include_str!("../../../schema/replica/outbox/0002_sale_life.sql"),
    include_str!("../../../schema/replica/outbox/0003_erp_verdicts.sql"),
    include_str!("../../../schema/replica/outbox/0004_reconciliation.sql"),
    include_str!("../../../schema/replica/outbox/0005_replacements.sql"),
    include_str!("../../../schema/replica/outbox/0006_omni.sql"),
    include_str!("../../../schema/replica/outbox/0007_omni_returns.sql"),
];
/// `schema/replica/journal/*.sql`, in order.
pub(crate) const JOURNAL: &[&str] = &[include_str!(
    "../../../schema/replica/journal/0001_journal.sql"
)];

/// How much a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// WAL + NORMAL: a power cut may lose the last commits, never half of one.
    Normal,
    /// WAL + FULL: a commit is on disk when it returns.
    Full,
}

/// Statements a connection keeps prepared (entities × upsert/delete + queries).
const STATEMENT_CACHE: usize = 128;

/// Opens `path` read-write (creating it) with the shared settings: WAL,
/// busy_timeout 5 s, foreign_keys off, the given synchronous level.
pub(crate) fn open_rw(path: &Path, sync: Sync) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ReplicaError::io(dir, e))?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx(path, "open")?;
    conn.busy_timeout(Duration::from_secs(5))
        .ctx(path, "busy_timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // journal_mode answers with the mode in force; a read-only file keeps
    // its mode and is still readable, so that is not an error here.
    let _mode: rusqlite::Result<String> =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0));
    let sync = match sync {
        Sync::Normal => "NORMAL",
        Sync::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF; PRAGMA synchronous = {sync};"
    ))
    .ctx(path, "connection settings")?;
    Ok(conn)
}

/// Opens `path` read-only (it must exist), for readers.
pub(crate) fn open_ro(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx(path, "open read-only")?;
    conn.busy_timeout(Duration::from_secs(5))
        .ctx(path, "busy_timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA foreign_keys = OFF;")
        .ctx(path, "connection settings")?;
    Ok(conn)
}

pub(crate) fn user_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx(path, "read user_version")
}

/// Brings `conn` up to `steps.len()`; refuses a file newer than that.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, steps: &[&str]) -> Result<()> {
    let known = steps.len() as i64;
    let too_new = |found| ReplicaError::SchemaTooNew {
        path: path.to_path_buf(),
        found,
        known,
    };
    let current = user_version(conn, path)?;
    if current > known {
        return Err(too_new(current));
    }
    for (i, sql) in steps.iter().enumerate().skip(current.max(0) as usize) {
        let version = i as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin migration")?;
        // Another process may have migrated while this one waited for the lock.
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx(path, "read user_version")?;
        if now > known {
            return Err(too_new(now));
        }
        if now >= version {
            continue;
        }
        tx.execute_batch(sql)
            .ctx_with(path, || format!("migration {version}"))?;
        tx.pragma_update(None, "user_version", version)
            .ctx(path, "set user_version")?;
        tx.commit()
            .ctx_with(path, || format!("commit migration {version}"))?;
    }
    Ok(())
}

/// Opens and migrates one of the three files.
pub(crate) fn open_migrated(path: &Path, sync: Sync, steps: &[&str]) -> Result<Connection> {
    let mut conn = open_rw(path, sync)?;
    migrate(&mut conn, path, steps)?;
    Ok(conn)
}

/// `PRAGMA integrity_check`: empty when healthy.
pub(crate) fn integrity_check(conn: &Connection, path: &Path) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .ctx(path, "integrity_check")?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .ctx(path, "integrity_check")?;
    let mut out = Vec::new();
    for r in rows {
        let msg = r.ctx(path, "integrity_check")?;
        if msg != "ok" {
            out.push(msg);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let steps = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER);"];
        let mut conn = open_migrated(&path, Sync::Normal, &steps).unwrap();
        assert_eq!(user_version(&conn, &path).unwrap(), 2);
        migrate(&mut conn, &path, &steps).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let err = open_migrated(&path, Sync::Normal, &steps[..1])
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                ReplicaError::SchemaTooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_failing_migration_leaves_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let steps = [
            "CREATE TABLE a (x INTEGER);",
            "CREATE TABLE b (y INTEGER); CREATE TABLE a (z);",
        ];
        let err = open_migrated(&path, Sync::Normal, &steps).err().unwrap();
        assert!(matches!(err, ReplicaError::Sqlite { .. }));
        let conn = open_rw(&path, Sync::Normal).unwrap();
        assert_eq!(user_version(&conn, &path).unwrap(), 1);
        let b: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0);
    }
}
