//! The catalog replica (`replica.db`): typed entity tables and watermarks.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loja_protocol::{
    CheckedPage, ENTITIES, Entity, FeedPage, Op, PageError, TypedItem, TypedPage, Watermark,
};
use rusqlite::TransactionBehavior;
use serde_json::{Map, Value};

use crate::apply::{self, sql_of};
use crate::error::SqlCtx;
use crate::local_marks;
use crate::migrate::{self, Sync};
use crate::{ReplicaError, Result, secrets};

/// What one applied page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    pub upserts: u64,
    pub deletes: u64,
    /// The entity's watermark after the page (committed with it).
    pub watermark: Watermark,
}

/// How [`Catalog::upsert_local_document`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalWrite {
    /// A new document: its row replaces any row of the key.
    Replace,
    /// A retry or a recovery: only a document never written, for a key with no row.
    IfNew,
}

/// The writer side of `replica.db`. One per process (sync jobs share it
/// behind a mutex); the POS reads through [`CatalogReader`]s.
pub struct Catalog {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) path: PathBuf,
    /// Set by [`Catalog::defer_checkpoints`]; dropped after `conn`.
    checkpointer: Option<crate::Checkpointer>,
}

/// Commits to a replica by this process. A [`CatalogReader`] keeps its
/// read snapshot while this has not moved (see
/// [`CatalogReader::refresh_snapshot`]); bumped after each commit, so a
/// reader that saw the new count starts a snapshot that holds the commit.
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Counts a commit to a file the readers attach (the outbox's stock moves):
/// their next query takes a snapshot that holds it.
pub(crate) fn note_commit() {
    COMMITS.fetch_add(1, Ordering::Release);
}

/// Commits a write to the replica and counts it in [`COMMITS`] (after the
/// commit: a reader that sees the new count sees the write).
fn commit(tx: rusqlite::Transaction<'_>, path: &Path, what: impl FnOnce() -> String) -> Result<()> {
    tx.commit().ctx_with(path, what)?;
    COMMITS.fetch_add(1, Ordering::Release);
    Ok(())
}

/// How long a reader keeps one snapshot when this process committed nothing
/// meanwhile: the bound on how late a writer in another process (`lojad
/// sync` run by hand next to the service) is seen, and on how long a
/// snapshot keeps the WAL from being reset.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(100);

/// The file name of the catalog in the data dir.
pub(crate) const FILE: &str = "replica.db";

/// Settings of the writer connection on top of the shared ones (WAL,
/// synchronous=NORMAL): a 32 MiB page cache (a 20 000-row page and the
/// index pages it touches stay in memory, the process well under its RSS
/// budget) and temporary data in memory. Public so that the apply benchmark
/// measures its raw-SQLite baseline with exactly these.
#[doc(hidden)]
pub const WRITER_PRAGMAS: &str = "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;";

impl Catalog {
    /// Opens (creating and migrating) `DIR/replica.db`; WAL, synchronous=NORMAL
    /// (a power cut may lose the last page *and* its watermark together,
    /// never one without the other).
    pub fn open(dir: &Path) -> Result<Catalog> {
        let path = dir.join(FILE);
        let conn = migrate::open_migrated(&path, Sync::Normal, migrate::CATALOG)?;
        conn.execute_batch(WRITER_PRAGMAS)
            .ctx(&path, "connection settings")?;
        Ok(Catalog {
            conn,
            dir: dir.to_path_buf(),
            path,
            checkpointer: None,
        })
    }

    /// Moves this writer's WAL checkpoints to a [`crate::Checkpointer`]
    /// thread: a commit no longer stops to copy the WAL into the file, so
    /// the writer goes straight on to the next page. For the long-lived
    /// writer of `lojad run` and `lojad sync`.
    pub fn defer_checkpoints(&mut self) -> Result<()> {
        crate::checkpoint::defer(&self.conn, &self.path, "replica", &mut self.checkpointer)
    }

    pub fn watermark(&self, entity: &Entity) -> Result<Watermark> {
        apply::read_watermark(&self.conn, entity.name, &self.path).map(Watermark)
    }

    /// Every entity's watermark, registry order.
    pub fn watermarks(&self) -> Result<Vec<(&'static str, Watermark)>> {
        ENTITIES
            .iter()
            .map(|e| Ok((e.name, self.watermark(e)?)))
            .collect()
    }

    /// Validates `page` (against the registry and the stored watermark, which
    /// must equal `page.after`) and applies it with its watermark in one
    /// transaction. On any error nothing is applied. Rows of a secret entity
    /// go to `DIR/secrets/<entity>.json` (mode 0600), not to a table.
    ///
    /// The same as [`Catalog::apply_typed_page`] (it converts the page and
    /// applies it there: one apply path).
    pub fn apply_page(&mut self, entity: &Entity, page: &FeedPage) -> Result<Applied> {
        self.apply_typed_page(entity, &TypedPage::from_feed(entity, page))
    }

    /// [`Catalog::apply_page`] for a page parsed straight into typed rows
    /// (`TypedPage::parse`): validated against the stored watermark inside
    /// the IMMEDIATE transaction, cells bound as they are, rows, FTS queue
    /// and watermark committed together.
    pub fn apply_typed_page(&mut self, entity: &Entity, page: &TypedPage) -> Result<Applied> {
        self.apply_with(entity, page, |stored| page.validate(entity, stored))
    }

    /// [`Catalog::apply_typed_page`] for a page validated beforehand (by
    /// the download job, while it parsed): inside the transaction only its
    /// start is checked against the stored watermark, so the rows are not
    /// checked a second time under the writer.
    pub fn apply_checked_page(&mut self, entity: &Entity, page: &CheckedPage) -> Result<Applied> {
        self.apply_with(entity, page, |stored| {
            if page.after == stored {
                Ok(())
            } else {
                Err(PageError::WrongStart {
                    expected: stored.0,
                    found: page.after.0,
                })
            }
        })
    }

    /// The one apply path: `check` sees the stored watermark inside the
    /// IMMEDIATE transaction and may refuse the page.
    pub(crate) fn apply_with(
        &mut self,
        entity: &Entity,
        page: &TypedPage,
        check: impl FnOnce(Watermark) -> std::result::Result<(), PageError>,
    ) -> Result<Applied> {
        let sql = sql_of(entity)?;
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin apply")?;
        let stored = Watermark(apply::read_watermark(&tx, entity.name, path)?);
        check(stored).map_err(|source| ReplicaError::Page {
            entity: entity.name.to_owned(),
            source,
        })?;
        let mut applied = Applied {
            upserts: 0,
            deletes: 0,
            watermark: page.next,
        };
        if entity.secret {
            let mut rows = secrets::load(&self.dir, entity.name)?;
            for item in &page.items {
                let row = item.to_map(entity);
                let key = entity.key_text(&row);
                match item.op {
                    Op::Upsert => {
                        rows.insert(key, Value::Object(row));
                        applied.upserts += 1;
                    }
                    Op::Delete => {
                        rows.remove(&key);
                        applied.deletes += 1;
                    }
                }
            }
            apply::write_watermark(&tx, entity.name, page.next.0, path)?;
            // The file goes first: a crash before the commit leaves the old
            // watermark, and applying the page again gives the same file.
            if !page.items.is_empty() {
                secrets::store(&self.dir, entity.name, &rows)?;
            }
        } else {
            {
                // Statements prepared on first use: a page of tombstones
                // never prepares the insert.
                let (mut insert, mut upsert, mut delete) = (None, None, None);
                // Rows are inserted until the page's first key conflict (a
                // first load has none), then upserted: see apply::insert_row.
                let mut insert_first = true;
                for item in &page.items {
                    match item.op {
                        Op::Upsert => {
                            if insert_first {
                                let stmt = apply::prepared(&mut insert, &tx, &sql.insert, path)?;
                                insert_first = apply::insert_row(stmt, entity, &item.cells, path)?;
                            }
                            if !insert_first {
                                let stmt = apply::prepared(&mut upsert, &tx, &sql.upsert, path)?;
                                apply::upsert_row(stmt, entity, &item.cells, path)?;
                            }
                            applied.upserts += 1;
                        }
                        Op::Delete => {
                            let stmt = apply::prepared(&mut delete, &tx, &sql.delete, path)?;
                            apply::delete_row(stmt, entity, &sql.key_index, &item.cells, path)?;
                            applied.deletes += 1;
                        }
                    }
                }
            }
            apply::flush_fts(&tx, path)?;
            local_marks::forget_local(&tx, entity, page, path)?;
            apply::write_watermark(&tx, entity.name, page.next.0, path)?;
        }
        commit(tx, path, || format!("commit page of {}", entity.name))?;
        Ok(applied)
    }

    /// A row written by this store ahead of the central (a customer signed
    /// up at the POS), so the POS finds it at once; the central's version
    /// replaces it when it arrives. Validated like a feed row.
    pub fn upsert_local(&mut self, entity: &Entity, row: &Map<String, Value>) -> Result<()> {
        self.write_local(entity, row, None).map(|_| ())
    }

    /// [`Catalog::upsert_local`] for the row of a store document (a
    /// sign-up), recording the document's id in the same transaction.
    /// `LocalWrite::IfNew` writes nothing (and answers false) when this
    /// document was written before or the key has a row: a retry or a
    /// recovery never brings back a row the central deleted since (an LGPD
    /// erasure), nor replaces a newer one.
    pub fn upsert_local_document(
        &mut self,
        entity: &Entity,
        row: &Map<String, Value>,
        document_id: &str,
        how: LocalWrite,
    ) -> Result<bool> {
        self.write_local(entity, row, Some((document_id, how)))
    }

    /// Stores the order of the price lists this store charges from, for its
    /// place in the hierarchy (`scope`: the store's node, then its ancestors
    /// up to the master, as the central's `Loja-Scope` says). Answers whether
    /// it changed.
    pub fn set_price_scope(&mut self, scope: &[String]) -> Result<bool> {
        let lists = crate::price_lists::lists_of(scope);
        let path = &self.path;
        if crate::price_lists::order(&self.conn, path)? == lists {
            return Ok(false);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin price list order")?;
        crate::price_lists::replace(&tx, &lists, path)?;
        commit(tx, path, || "commit price list order".into())?;
        Ok(true)
    }

    /// Forgets the ids of written documents that are not in `keep` (the
    /// outbox no longer has them: nothing can write them again).
    pub fn prune_local_documents(
        &mut self,
        keep: &std::collections::HashSet<String>,
    ) -> Result<u64> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin prune")?;
        let n = local_marks::prune_documents(&tx, keep, path)?;
        commit(tx, path, || "commit local documents prune".into())?;
        Ok(n)
    }

    fn write_local(
        &mut self,
        entity: &Entity,
        row: &Map<String, Value>,
        document: Option<(&str, LocalWrite)>,
    ) -> Result<bool> {
        let sql = sql_of(entity)?;
        entity.validate_row(row)?;
        if entity.secret {
            let mut rows = secrets::load(&self.dir, entity.name)?;
            rows.insert(entity.key_text(row), Value::Object(row.clone()));
            secrets::store(&self.dir, entity.name, &rows)?;
            return Ok(true);
        }
        let item = TypedItem::from_row(entity, 0, Op::Upsert, row);
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin upsert")?;
        if let Some((id, how)) = document {
            if how == LocalWrite::IfNew
                && (local_marks::document_written(&tx, id, path)?
                    || apply::row_exists(&tx, entity, &item.cells, path)?)
            {
                return Ok(false);
            }
            local_marks::record_document(&tx, id, path)?;
        }
        {
            let mut stmt = tx.prepare_cached(&sql.upsert).ctx(path, "prepare upsert")?;
            apply::upsert_row(&mut stmt, entity, &item.cells, path)?;
        }
        apply::flush_fts(&tx, path)?;
        local_marks::mark_local(&tx, entity, &entity.key_text(row), path)?;
        commit(tx, path, || format!("commit local row of {}", entity.name))?;
        Ok(true)
    }

    /// The value of one `parameters` row, if the store holds it (the
    /// scheduler reads the integration switch through this).
    pub fn parameter(&self, name: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(
                "SELECT value FROM parameters WHERE name = ?1",
                rusqlite::params![name],
                |r| r.get(0),
            )
            .optional()
            .ctx_with(&self.path, || format!("read parameter {name}"))
    }

    /// Rows per entity (secret entities count their file's rows), registry order.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut out = Vec::with_capacity(ENTITIES.len());
        for e in ENTITIES {
            let n = if e.secret {
                secrets::load(&self.dir, e.name)?.len() as u64
            } else {
                let n: i64 = self
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {}", e.name), [], |r| {
                        r.get(0)
                    })
                    .ctx_with(&self.path, || format!("count {}", e.name))?;
                n.max(0) as u64
            };
            out.push((e.name, n));
        }
        Ok(out)
    }

    /// `PRAGMA integrity_check` of replica.db: `Ok(vec![])` when healthy, else the messages.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut out = migrate::integrity_check(&self.conn, &self.path)?;
        if let Err(e) = self.conn.execute(
            "INSERT INTO products_fts (products_fts, rank) VALUES ('integrity-check', 1)",
            [],
        ) {
            out.push(format!("products_fts: {e}"));
        }
        Ok(out)
    }

    /// Where replica.db is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A read-only connection to `replica.db` for the POS API (one per worker;
/// WAL lets any number read while a page applies, and a reader never sees
/// half a page). Query methods are in `queries.rs`.
pub struct CatalogReader {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) path: PathBuf,
    /// `outbox.db` is attached: the stock answered counts the store's
    /// documents the central has not reflected yet (`pending_stock`).
    pub(crate) moves: bool,
    /// The read transaction kept open between queries, when there is one.
    snapshot: Cell<Option<Snapshot>>,
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// [`COMMITS`] when it began.
    commits: u64,
    began: Instant,
}

impl Snapshot {
    /// Nothing committed since it began, and younger than [`SNAPSHOT_MAX_AGE`].
    fn fresh(&self, commits: u64, now: Instant) -> bool {
        self.commits == commits && now.duration_since(self.began) < SNAPSHOT_MAX_AGE
    }
}

impl CatalogReader {
    /// Opens `DIR/replica.db` read-only (`query_only`); creates and migrates
    /// it first when it is missing or older than this binary.
    pub fn open(dir: &Path) -> Result<CatalogReader> {
        let path = dir.join(FILE);
        if !path.exists() {
            drop(Catalog::open(dir)?);
        }
        let mut conn = migrate::open_ro(&path)?;
        let known = migrate::CATALOG.len() as i64;
        let found = migrate::user_version(&conn, &path)?;
        if found > known {
            return Err(ReplicaError::SchemaTooNew { path, found, known });
        }
        if found < known {
            drop(conn);
            drop(Catalog::open(dir)?);
            conn = migrate::open_ro(&path)?;
        }
        // No re-preparing on bind: the planner would otherwise re-compile
        // the product lookup at every step, because a bound value (the
        // store's price list) might change its plan (~70 µs of a ~80 µs
        // lookup); QPSG keeps the plan made at prepare time.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .ctx(&path, "connection settings")?;
        // Reads through a read-only mmap of the file (1 GiB of address
        // space; pages still in the WAL are read from it as before): a point
        // query touches its pages in place instead of copying them into the
        // page cache, which a commit by the writer empties.
        conn.execute_batch(
            "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 1073741824;",
        )
        .ctx(&path, "connection settings")?;
        let moves = crate::pending_stock::attach(&conn, dir, &path)?;
        Ok(CatalogReader {
            conn,
            path,
            moves,
            snapshot: Cell::new(None),
        })
    }

    /// An entity's watermark as this reader's snapshot sees it (0 before
    /// its first page).
    pub fn watermark(&self, entity: &Entity) -> Result<Watermark> {
        apply::read_watermark(&self.conn, entity.name, &self.path).map(Watermark)
    }

    /// Makes the next queries read one snapshot, kept across calls while
    /// this process has committed nothing to a replica and it is younger
    /// than [`SNAPSHOT_MAX_AGE`]; otherwise ends it and begins a new one.
    ///
    /// Why: a query outside a transaction begins and ends a read
    /// transaction of its own, and in WAL mode each one takes and drops the
    /// database's shared lock and a WAL read mark — syscalls and a mutex the
    /// POS API's workers contend on, a large part of a ~10 µs point query.
    /// The product answer's statements also read one snapshot this way.
    ///
    /// A write by this process (a page applied, a customer signed up) moves
    /// the commit count before its caller answers, so the next refresh sees
    /// it: reads after a write see the write. Idle readers must have
    /// [`Self::end_stale_snapshot`] called now and then, or they keep the
    /// WAL from being reset.
    pub fn refresh_snapshot(&self) -> Result<()> {
        let commits = COMMITS.load(Ordering::Acquire);
        let now = Instant::now();
        if let Some(s) = self.snapshot.get() {
            if s.fresh(commits, now) {
                return Ok(());
            }
            self.end_snapshot()?;
        }
        // Read before the snapshot begins: a commit that lands in between
        // makes the count differ next time, and the snapshot is renewed.
        self.conn
            .prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .ctx(&self.path, "begin read snapshot")?;
        self.snapshot.set(Some(Snapshot {
            commits,
            began: now,
        }));
        Ok(())
    }

    /// Is a snapshot kept open (a read transaction between queries)?
    pub fn holds_snapshot(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Ends the kept snapshot if [`Self::refresh_snapshot`] would renew it.
    pub fn end_stale_snapshot(&self) -> Result<()> {
        match self.snapshot.get() {
            Some(s) if !s.fresh(COMMITS.load(Ordering::Acquire), Instant::now()) => {
                self.end_snapshot()
            }
            _ => Ok(()),
        }
    }

    /// Ends the kept snapshot, if any; later queries read the newest data.
    pub fn end_snapshot(&self) -> Result<()> {
        self.snapshot.set(None);
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .ctx(&self.path, "end read snapshot")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use loja_protocol::{FeedItem, PageError, entity_named};
    use serde_json::json;
    use std::collections::HashMap;

    pub(crate) fn ent(name: &str) -> &'static Entity {
        entity_named(name).unwrap()
    }

    /// A page of `(op, row)` items numbered after `after`.
    pub(crate) fn page(entity: &str, after: u64, items: Vec<(Op, Value)>) -> FeedPage {
        let items: Vec<FeedItem> = items
            .into_iter()
            .enumerate()
            .map(|(i, (op, row))| FeedItem {
                seq: after + 1 + i as u64,
                op,
                row: row.as_object().unwrap().clone(),
            })
            .collect();
        let next = Watermark(after + items.len() as u64);
        FeedPage {
            entity: entity.into(),
            after: Watermark(after),
            items,
            next,
            more: false,
            held_until: None,
        }
    }

    pub(crate) fn up(v: Value) -> (Op, Value) {
        (Op::Upsert, v)
    }
    pub(crate) fn del(v: Value) -> (Op, Value) {
        (Op::Delete, v)
    }

    fn count(c: &Catalog, table: &str) -> i64 {
        c.conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn tables_match_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        for e in ENTITIES {
            let mut stmt = c
                .conn
                .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
                .unwrap();
            let cols: Vec<(String, String, bool, i64)> = stmt
                .query_map([e.name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            if e.secret {
                assert!(cols.is_empty(), "secret entity {} has a table", e.name);
                continue;
            }
            let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
            let want: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
            assert_eq!(names, want, "columns of {}", e.name);
            for (col, (name, ty, notnull, pk)) in e.columns.iter().zip(&cols) {
                assert_eq!(ty, col.ty.sql(), "{}.{name} type", e.name);
                let required = col.required || e.key.contains(&col.name);
                assert_eq!(
                    *notnull || (*pk > 0 && ty == "INTEGER"),
                    required,
                    "{}.{name} NOT NULL",
                    e.name
                );
                let key_pos = e
                    .key
                    .iter()
                    .position(|k| k == name)
                    .map(|p| p as i64 + 1)
                    .unwrap_or(0);
                assert_eq!(*pk, key_pos, "{}.{name} key position", e.name);
            }
        }
        // Nothing but the registry's tables, the FTS index, watermarks and
        // the marks of rows written at the store (see local_marks.rs), the
        // price list order (price_lists.rs).
        let tables: Vec<String> = c
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'products_fts%' AND name NOT LIKE 'sqlite_%'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for t in &tables {
            assert!(
                t == "watermarks"
                    || t == "local_rows"
                    || t == "local_documents"
                    || t == "price_list_order"
                    || entity_named(t).is_some_and(|e| !e.secret),
                "stray table {t}"
            );
        }
        assert_eq!(
            tables.len(),
            ENTITIES.iter().filter(|e| !e.secret).count() + 4
        );
    }

    #[test]
    fn pos_lookups_use_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        for sql in [
            "SELECT * FROM barcodes WHERE product_code = 'x'",
            "SELECT * FROM kits WHERE kit_code = 'x'",
            "SELECT * FROM prices WHERE product_code = 'x'",
            "SELECT * FROM customers WHERE document = 'x'",
            "SELECT * FROM cities WHERE uf = 'SP'",
        ] {
            let plan: String = c
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
                .join("; ");
            assert!(
                plan.contains("USING") && !plan.starts_with("SCAN"),
                "{sql}: {plan}"
            );
        }
    }

    #[test]
    fn upsert_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("products");
        let p = page(
            "products",
            0,
            vec![
                up(
                    json!({"code": "1", "name": "Café Pilão", "unit": "UN", "active": true, "weighable": false}),
                ),
                up(json!({"code": "2", "name": "Açúcar", "unit": "KG", "brand": "União"})),
            ],
        );
        let a = c.apply_page(e, &p).unwrap();
        assert_eq!(
            a,
            Applied {
                upserts: 2,
                deletes: 0,
                watermark: Watermark(2)
            }
        );
        assert_eq!(c.watermark(e).unwrap(), Watermark(2));
        // Update: every column rewritten; a missing optional one becomes NULL.
        let p = page(
            "products",
            2,
            vec![
                up(json!({"code": "2", "name": "Açúcar refinado", "unit": "KG"})),
                del(json!({"code": "1"})),
            ],
        );
        let a = c.apply_page(e, &p).unwrap();
        assert_eq!((a.upserts, a.deletes, a.watermark), (1, 1, Watermark(4)));
        assert_eq!(count(&c, "products"), 1);
        let (name, brand): (String, Option<String>) = c
            .conn
            .query_row(
                "SELECT name, brand FROM products WHERE code = '2'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((name.as_str(), brand), ("Açúcar refinado", None));
        // Deleting an absent key is fine (a re-sent tombstone).
        let a = c
            .apply_page(e, &page("products", 4, vec![del(json!({"code": "1"}))]))
            .unwrap();
        assert_eq!(a.watermark, Watermark(5));
        assert!(c.integrity_check().unwrap().is_empty());
        let counts: HashMap<_, _> = c.row_counts().unwrap().into_iter().collect();
        assert_eq!(counts["products"], 1);
        assert_eq!(counts["barcodes"], 0);
    }

    #[test]
    fn a_page_with_a_bad_row_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("barcodes");
        let p = page(
            "barcodes",
            0,
            vec![
                up(json!({"barcode": "7891000315507", "product_code": "1"})),
                up(json!({"barcode": "7891000315508", "product_code": "1"})),
            ],
        );
        let err = c.apply_page(e, &p).unwrap_err();
        assert!(
            matches!(
                &err,
                ReplicaError::Page {
                    source: PageError::InvalidRow { index: 1, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(count(&c, "barcodes"), 0);
        assert_eq!(c.watermark(e).unwrap(), Watermark(0));
    }

    #[test]
    fn a_page_not_starting_at_the_watermark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("stock");
        c.apply_page(
            e,
            &page(
                "stock",
                0,
                vec![up(json!({"product_code": "1", "qty": 1000}))],
            ),
        )
        .unwrap();
        let err = c
            .apply_page(
                e,
                &page("stock", 5, vec![up(json!({"product_code": "2", "qty": 1}))]),
            )
            .unwrap_err();
        assert!(matches!(
            &err,
            ReplicaError::Page {
                source: PageError::WrongStart {
                    expected: 1,
                    found: 5
                },
                ..
            }
        ));
        // The same page again (a retry after a lost answer) is refused too.
        let err = c
            .apply_page(
                e,
                &page(
                    "stock",
                    0,
                    vec![up(json!({"product_code": "1", "qty": 1000}))],
                ),
            )
            .unwrap_err();
        assert!(matches!(
            &err,
            ReplicaError::Page {
                source: PageError::WrongStart { .. },
                ..
            }
        ));
        let err = c.apply_page(e, &page("prices", 1, vec![])).unwrap_err();
        assert!(matches!(
            &err,
            ReplicaError::Page {
                source: PageError::WrongEntity { .. },
                ..
            }
        ));
        assert_eq!(count(&c, "stock"), 1);
        assert_eq!(c.watermark(e).unwrap(), Watermark(1));
    }

    #[test]
    fn an_empty_page_moves_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("stock");
        let mut p = page("stock", 0, vec![]);
        p.next = Watermark(40);
        assert_eq!(c.apply_page(e, &p).unwrap().watermark, Watermark(40));
        let wms: HashMap<_, _> = c.watermarks().unwrap().into_iter().collect();
        assert_eq!(wms["stock"], Watermark(40));
        assert_eq!(wms["prices"], Watermark(0));
        assert_eq!(wms.len(), ENTITIES.len());
    }

    #[test]
    fn a_reader_never_sees_half_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("stock");
        c.apply_page(
            e,
            &page("stock", 0, vec![up(json!({"product_code": "1", "qty": 1}))]),
        )
        .unwrap();
        let r = CatalogReader::open(dir.path()).unwrap();
        // A write transaction left open halfway through a page.
        c.conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO stock (product_code, qty) VALUES ('2', 2); UPDATE stock SET qty = 9 WHERE product_code = '1'; UPDATE watermarks SET seq = 99 WHERE entity = 'stock';").unwrap();
        let rows = r.list("stock", None, 0).unwrap();
        assert_eq!(
            rows,
            vec![
                json!({"product_code": "1", "qty": 1})
                    .as_object()
                    .unwrap()
                    .clone()
            ]
        );
        let seq: i64 = r
            .conn
            .query_row(
                "SELECT seq FROM watermarks WHERE entity = 'stock'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(seq, 1);
        c.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(r.list("stock", None, 0).unwrap().len(), 2);
        // The reader cannot write.
        assert!(r.conn.execute("DELETE FROM stock", []).is_err());
    }

    #[test]
    fn a_kept_snapshot_sees_this_process_writes_and_ages_out_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("stock");
        let r = CatalogReader::open(dir.path()).unwrap();
        r.refresh_snapshot().unwrap();
        assert!(r.list("stock", None, 0).unwrap().is_empty());
        assert!(
            !r.conn.is_autocommit(),
            "the snapshot stays open between queries"
        );
        // A page applied by this process: the next refresh sees it.
        c.apply_page(
            e,
            &page("stock", 0, vec![up(json!({"product_code": "1", "qty": 1}))]),
        )
        .unwrap();
        r.refresh_snapshot().unwrap();
        assert_eq!(r.list("stock", None, 0).unwrap().len(), 1);
        // So does a local write.
        c.upsert_local(
            e,
            json!({"product_code": "2", "qty": 2}).as_object().unwrap(),
        )
        .unwrap();
        r.refresh_snapshot().unwrap();
        assert_eq!(r.list("stock", None, 0).unwrap().len(), 2);
        // A writer this process does not count (another process, here a
        // plain connection): unseen while the snapshot is young, seen once
        // it is older than SNAPSHOT_MAX_AGE.
        let other = rusqlite::Connection::open(dir.path().join(FILE)).unwrap();
        r.refresh_snapshot().unwrap();
        assert_eq!(r.list("stock", None, 0).unwrap().len(), 2);
        other
            .execute("INSERT INTO stock (product_code, qty) VALUES ('3', 3)", [])
            .unwrap();
        let seen_at = std::time::Instant::now();
        let mut seen = 0;
        while seen_at.elapsed() < SNAPSHOT_MAX_AGE * 20 {
            r.refresh_snapshot().unwrap();
            seen = r.list("stock", None, 0).unwrap().len();
            if seen == 3 {
                break;
            }
            std::thread::sleep(SNAPSHOT_MAX_AGE / 10);
        }
        assert_eq!(
            seen, 3,
            "another process's write is seen after the snapshot ages out"
        );
        // A stale idle snapshot is ended (it would keep the WAL from resetting).
        std::thread::sleep(SNAPSHOT_MAX_AGE);
        r.end_stale_snapshot().unwrap();
        assert!(r.conn.is_autocommit());
        r.end_snapshot().unwrap();
    }

    #[test]
    fn new_and_known_keys_mixed_in_a_page_are_inserted_and_updated() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("products");
        let p = |code: &str, name: &str| up(json!({"code": code, "name": name, "unit": "UN"}));
        c.apply_page(
            e,
            &page("products", 0, vec![p("A", "arroz"), p("B", "feijao")]),
        )
        .unwrap();
        // A new key first (inserted), then a known one (the insert meets
        // the key, the row is upserted), then new ones after it.
        let applied = c
            .apply_page(
                e,
                &page(
                    "products",
                    2,
                    vec![
                        p("C", "cafe"),
                        p("A", "acucar"),
                        p("D", "doce"),
                        p("B", "farinha"),
                    ],
                ),
            )
            .unwrap();
        assert_eq!(applied.upserts, 4);
        let r = CatalogReader::open(dir.path()).unwrap();
        let names: Vec<String> = r
            .list("products", None, 0)
            .unwrap()
            .into_iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["acucar", "farinha", "cafe", "doce"]);
        // The name index followed: old names gone, new ones found.
        assert!(r.search_products("arroz", 10, "L1").unwrap().is_empty());
        assert_eq!(r.search_products("acucar", 10, "L1").unwrap()[0].code, "A");
        assert_eq!(r.search_products("farinha", 10, "L1").unwrap()[0].code, "B");
        assert!(c.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn secrets_go_to_a_private_file_not_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("store_certificate");
        let p = page(
            "store_certificate",
            0,
            vec![up(
                json!({"store": "L1", "pfx_base64": "AAAA", "password": "s3cret"}),
            )],
        );
        assert_eq!(c.apply_page(e, &p).unwrap().upserts, 1);
        let file = dir.path().join("secrets/store_certificate.json");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(file.parent().unwrap())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
        let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            stored,
            json!({"[\"L1\"]": {"store": "L1", "pfx_base64": "AAAA", "password": "s3cret"}})
        );
        assert_eq!(c.watermark(e).unwrap(), Watermark(1));
        let n: i64 = c
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'store_certificate'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
        let counts: HashMap<_, _> = c.row_counts().unwrap().into_iter().collect();
        assert_eq!(counts["store_certificate"], 1);
        // A tombstone removes it; the reader refuses to list it.
        c.apply_page(
            e,
            &page("store_certificate", 1, vec![del(json!({"store": "L1"}))]),
        )
        .unwrap();
        let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(stored, json!({}));
        let r = CatalogReader::open(dir.path()).unwrap();
        assert!(matches!(
            r.list("store_certificate", None, 0),
            Err(ReplicaError::Invalid(_))
        ));
    }

    #[test]
    fn upsert_local_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = ent("customers");
        let row = json!({"document": "52998224725", "name": "Maria", "lgpd_consent": true});
        c.upsert_local(e, row.as_object().unwrap()).unwrap();
        let bad = json!({"document": "52998224724", "name": "Maria"});
        let err = c.upsert_local(e, bad.as_object().unwrap()).unwrap_err();
        assert!(matches!(&err, ReplicaError::Invalid(f) if f.field == "document"));
        let r = CatalogReader::open(dir.path()).unwrap();
        assert_eq!(
            r.customer_by_document("52998224725").unwrap(),
            row.as_object().cloned()
        );
        assert_eq!(c.watermark(e).unwrap(), Watermark(0));
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Catalog::open(dir.path()).unwrap());
        let conn = rusqlite::Connection::open(dir.path().join(FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Catalog::open(dir.path()),
            Err(ReplicaError::SchemaTooNew { found: 99, .. })
        ));
        assert!(matches!(
            CatalogReader::open(dir.path()),
            Err(ReplicaError::SchemaTooNew { found: 99, .. })
        ));
    }

    /// Every table's rows (all columns, key order) and the watermarks.
    fn dump(c: &Catalog) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
        let mut out = Vec::new();
        for e in ENTITIES.iter().filter(|e| !e.secret) {
            let sql = sql_of(e).unwrap();
            let mut stmt = c
                .conn
                .prepare(&format!("{} {}", sql.select, sql.order_by))
                .unwrap();
            let rows = stmt
                .query_map([], |r| {
                    (0..e.columns.len())
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect()
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            out.push((e.name.to_owned(), rows));
        }
        out.push((format!("{:?}", c.watermarks().unwrap()), Vec::new()));
        out
    }

    #[test]
    fn typed_and_map_pages_give_identical_tables() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = Catalog::open(da.path()).unwrap();
        let mut b = Catalog::open(db.path()).unwrap();
        let pages = vec![
            page(
                "products",
                0,
                vec![
                    up(
                        json!({"code": "1", "name": "Café \"Pilão\"\n", "unit": "UN", "active": true, "weighable": false, "ncm": "22021000", "updated_at": "2026-11-26T12:00:00Z"}),
                    ),
                    up(json!({"code": "2", "name": "Açúcar", "unit": "KG", "brand": null})),
                    up(json!({"code": "3", "name": "Sal", "unit": "KG"})),
                ],
            ),
            page(
                "products",
                3,
                vec![
                    up(
                        json!({"code": "2", "name": "Açúcar refinado", "unit": "KG", "is_kit": false}),
                    ),
                    del(json!({"code": "3"})),
                ],
            ),
            page(
                "kits",
                0,
                vec![
                    up(json!({"kit_code": "K", "component_code": "1", "qty": 2000, "price": -150})),
                    up(json!({"kit_code": "K", "component_code": "2", "qty": 1})),
                    del(json!({"component_code": "2", "kit_code": "K"})),
                ],
            ),
            page(
                "promotions",
                0,
                vec![up(
                    json!({"code": "P", "name": "Natal", "starts_at": "2026-12-01", "ends_at": "2026-12-25", "rule": {"z": [1, 2.5], "a": {"é": null}}, "active": true}),
                )],
            ),
            page(
                "customers",
                0,
                vec![up(
                    json!({"document": "52998224725", "name": "Maria", "credit_limit": i64::MAX, "lgpd_consent": false, "uf": "SP"}),
                )],
            ),
            // Refused whole by both: a float where money goes.
            page(
                "prices",
                0,
                vec![
                    up(json!({"product_code": "1", "price_list": "base", "price": 100})),
                    up(json!({"product_code": "2", "price_list": "base", "price": 1.5})),
                ],
            ),
            page(
                "store_certificate",
                0,
                vec![up(
                    json!({"store": "L1", "pfx_base64": "AAAA", "password": "s3cret", "expires_at": null}),
                )],
            ),
        ];
        for p in &pages {
            let e = ent(&p.entity);
            let by_map = a.apply_page(e, p);
            let bytes = serde_json::to_vec(p).unwrap();
            let by_typed = b.apply_typed_page(e, &TypedPage::parse(e, &bytes).unwrap());
            assert_eq!(
                by_map.as_ref().map_err(|e| e.to_string()),
                by_typed.as_ref().map_err(|e| e.to_string()),
                "{}",
                p.entity
            );
        }
        assert_eq!(count(&a, "products"), 2);
        assert_eq!(count(&a, "prices"), 0);
        assert_eq!(dump(&a), dump(&b));
        let secret = |d: &Path| std::fs::read(d.join("secrets/store_certificate.json")).unwrap();
        assert_eq!(secret(da.path()), secret(db.path()));
        let search = |c: &Catalog| -> Vec<i64> {
            c.conn
                .prepare("SELECT rowid FROM products_fts WHERE products_fts MATCH 'acucar OR açúcar OR pilão' ORDER BY rowid")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        assert_eq!(search(&a), search(&b));
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Change {
            Upsert(u8, i64),
            Delete(u8),
        }

        fn change() -> impl Strategy<Value = Change> {
            prop_oneof![
                (0u8..12, -5_000i64..5_000).prop_map(|(k, q)| Change::Upsert(k, q)),
                (0u8..12).prop_map(Change::Delete),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            #[test]
            fn pages_of_changes_equal_a_map(changes in prop::collection::vec(change(), 0..60), page_len in 1usize..9) {
                let dir = tempfile::tempdir().unwrap();
                let mut c = Catalog::open(dir.path()).unwrap();
                let e = ent("stock");
                let mut model: HashMap<String, i64> = HashMap::new();
                let mut after = 0;
                for chunk in changes.chunks(page_len) {
                    let items = chunk.iter().map(|ch| match ch {
                        Change::Upsert(k, q) => {
                            model.insert(k.to_string(), *q);
                            up(json!({"product_code": k.to_string(), "qty": q}))
                        }
                        Change::Delete(k) => {
                            model.remove(&k.to_string());
                            del(json!({"product_code": k.to_string()}))
                        }
                    }).collect();
                    let p = page("stock", after, items);
                    after = c.apply_page(e, &p).unwrap().watermark.0;
                }
                let mut stmt = c.conn.prepare("SELECT product_code, qty FROM stock").unwrap();
                let got: HashMap<String, i64> =
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
                prop_assert_eq!(got, model);
                prop_assert_eq!(c.watermark(e).unwrap(), Watermark(changes.len() as u64));
            }
        }
    }
}
