//! The central's SQLite file: migrations, one writer connection, a small pool
//! of read-only connections.
//!
//! Every change is written through the single writer (behind a mutex), so the
//! sequences it hands out commit in order: a reader's WAL snapshot always holds
//! a prefix of the sequence, never a gap that a later commit fills.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::OpenFlags;

use crate::sql::{self, Connection, OptionalExtension, PgPool, Transaction};
use sha2::{Digest, Sha256};

/// Server migrations, applied in order; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../../schema/server/0001_init.sql"),
    ),
    (
        "0002_availability_by_level",
        include_str!("../../../schema/server/0002_availability_by_level.sql"),
    ),
    (
        "0003_rows_per_owner",
        include_str!("../../../schema/server/0003_rows_per_owner.sql"),
    ),
    (
        "0004_taxes_by_state",
        include_str!("../../../schema/server/0004_taxes_by_state.sql"),
    ),
    (
        "0005_settings",
        include_str!("../../../schema/server/0005_settings.sql"),
    ),
    (
        "0006_erp_verdicts",
        include_str!("../../../schema/server/0006_erp_verdicts.sql"),
    ),
    (
        "0007_omni_orders",
        include_str!("../../../schema/server/0007_omni_orders.sql"),
    ),
    (
        "0008_releases",
        include_str!("../../../schema/server/0008_releases.sql"),
    ),
    (
        "0009_console",
        include_str!("../../../schema/server/0009_console.sql"),
    ),
    (
        "0010_console_more",
        include_str!("../../../schema/server/0010_console_more.sql"),
    ),
    (
        "0011_rows_by_owner",
        include_str!("../../../schema/server/0011_rows_by_owner.sql"),
    ),
];

/// PostgreSQL migrations, by the number of the SQLite migration they
/// bring the schema level with (schema/server/postgres/). The first is the
/// whole schema as SQLite's 0001..0009 left it: a PostgreSQL central starts
/// from there; later migrations come in pairs, one per backend.
const PG_MIGRATIONS: &[(usize, &str, &str)] = &[
    (
        9,
        "0009_baseline",
        include_str!("../../../schema/server/postgres/0009_baseline.sql"),
    ),
    (
        10,
        "0010_console_more",
        include_str!("../../../schema/server/postgres/0010_console_more.sql"),
    ),
    (
        11,
        "0011_rows_by_owner",
        include_str!("../../../schema/server/postgres/0011_rows_by_owner.sql"),
    ),
];

/// How many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

/// Sessions an instance opens on PostgreSQL at most.
const PG_SESSIONS: usize = 32;

/// The advisory lock every write transaction holds on PostgreSQL: one
/// writer at a time across all instances, so the sequences handed out
/// commit in order, as with SQLite's single writer (a reader never sees a
/// later sequence while an earlier one is still to commit).
const PG_WRITER_LOCK: i64 = 0x4c6f_6a61; // "Loja"

/// The NOTIFY channel of "an entity advanced" hints between instances.
pub const PG_HINT_CHANNEL: &str = "loja_advanced";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sql::Error },
    #[error("migration {name}: {source}")]
    Migration {
        name: &'static str,
        source: sql::Error,
    },
    #[error("database {path} has schema version {found}, newer than this server knows ({known})")]
    TooNew {
        path: String,
        found: i64,
        known: usize,
    },
    #[error(transparent)]
    Sql(#[from] sql::Error),
    #[error("database connection lock poisoned")]
    Poisoned,
    /// A group commit failed: none of its writes is on disk.
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("--database {0}: expected sqlite:PATH, a path, or postgres://…")]
    BadLocation(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError::Sql(e.into())
    }
}

/// Where the central keeps its data: `--database sqlite:PATH` (or a plain
/// path) or `--database postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::Sqlite(p)
    }
}

impl std::str::FromStr for Location {
    type Err = DbError;
    fn from_str(s: &str) -> Result<Location, DbError> {
        Location::parse(s)
    }
}

impl Location {
    pub fn parse(s: &str) -> Result<Location, DbError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(s.to_owned()))
        } else if let Some(p) = s.strip_prefix("sqlite:") {
            if p.is_empty() {
                return Err(DbError::BadLocation(s.to_owned()));
            }
            Ok(Location::Sqlite(PathBuf::from(p)))
        } else if s.is_empty() || s.contains("://") {
            Err(DbError::BadLocation(s.to_owned()))
        } else {
            Ok(Location::Sqlite(PathBuf::from(s)))
        }
    }

    /// For messages: a PostgreSQL location without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => sql::postgres_redacted(url),
        }
    }
}

pub struct Db {
    store: Store,
    /// Writes waiting to go into the next group commit ([`Db::write_grouped`]).
    queue: Mutex<Vec<GroupJob>>,
    /// Held by whoever runs a group commit (PostgreSQL: SQLite's writer
    /// mutex is that already).
    grouper: Mutex<()>,
}

enum Store {
    Sqlite {
        path: PathBuf,
        writer: Mutex<Connection>,
        readers: Mutex<Vec<Connection>>,
    },
    Postgres {
        url: String,
        pool: PgPool,
    },
}

/// A write of a group commit: runs inside the group's transaction (in a
/// savepoint of its own) and answers how to tell its caller once the
/// group's commit is known.
type GroupJob = Box<dyn FnOnce(&Transaction<'_>) -> Finish + Send>;
/// Tells a group job's caller its outcome, given the group's commit error.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.location().display())
            .finish_non_exhaustive()
    }
}

/// An open transaction on the writer (SQLite) or a pooled session
/// (PostgreSQL); rolled back when dropped uncommitted.
struct OpenTx<'d> {
    conn: TxConn<'d>,
    done: bool,
}

enum TxConn<'d> {
    Writer(std::sync::MutexGuard<'d, Connection>),
    Session(Connection),
}

impl OpenTx<'_> {
    fn conn(&self) -> &Connection {
        match &self.conn {
            TxConn::Writer(g) => g,
            TxConn::Session(c) => c,
        }
    }

    fn commit(mut self) -> Result<(), sql::Error> {
        self.done = true;
        self.conn().execute_batch("COMMIT")
    }
}

impl Drop for OpenTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn().execute_batch("ROLLBACK");
        }
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_at(&Location::Sqlite(path.to_owned()))
    }

    /// Opens and migrates the database at `location`, either backend.
    pub fn open_at(location: &Location) -> Result<Db, DbError> {
        let store = match location {
            Location::Sqlite(path) => open_sqlite(path)?,
            Location::Postgres(url) => open_postgres(url)?,
        };
        Ok(Db {
            store,
            queue: Mutex::new(Vec::new()),
            grouper: Mutex::new(()),
        })
    }

    /// The opened database for tests: SQLite in `dir`, or, when
    /// `LOJA_TEST_POSTGRES` names a server (`postgres://…` to a maintenance
    /// database), a fresh database of its own there — so every server test
    /// runs against both backends (scripts/test runs them twice).
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path) -> Db {
        match std::env::var("LOJA_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => {
                Db::open_at(&Location::Postgres(crate::sql::test_database(&url))).unwrap()
            }
            _ => Db::open(&dir.join("c.db")).unwrap(),
        }
    }

    pub fn location(&self) -> Location {
        match &self.store {
            Store::Sqlite { path, .. } => Location::Sqlite(path.clone()),
            Store::Postgres { url, .. } => Location::Postgres(url.clone()),
        }
    }

    pub fn backend(&self) -> sql::Backend {
        match self.store {
            Store::Sqlite { .. } => sql::Backend::Sqlite,
            Store::Postgres { .. } => sql::Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for the hints between instances.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.store {
            Store::Sqlite { .. } => None,
            Store::Postgres { pool, .. } => Some(pool),
        }
    }

    fn begin_write(&self) -> Result<OpenTx<'_>, DbError> {
        match &self.store {
            Store::Sqlite { writer, .. } => {
                let conn = writer.lock().map_err(|_| DbError::Poisoned)?;
                conn.execute_batch("BEGIN IMMEDIATE")?;
                Ok(OpenTx {
                    conn: TxConn::Writer(conn),
                    done: false,
                })
            }
            Store::Postgres { pool, .. } => {
                let conn = Connection::postgres(pool.session()?);
                conn.execute_batch("BEGIN")?;
                let tx = OpenTx {
                    conn: TxConn::Session(conn),
                    done: false,
                };
                tx.conn().query_row(
                    "SELECT pg_advisory_xact_lock(?1)",
                    params![PG_WRITER_LOCK],
                    |_| Ok(()),
                )?;
                Ok(tx)
            }
        }
    }

    /// Runs `f` in one write transaction (the only writer of the database
    /// while it runs). Commits when `f` returns Ok, rolls back otherwise.
    pub fn write<T, E>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let open = self.begin_write().map_err(E::from)?;
        let out = f(&Transaction::new(open.conn()))?;
        open.commit().map_err(|e| E::from(DbError::Sql(e)))?;
        Ok(out)
    }

    /// Like [`Db::write`], but many small writes arriving together share one
    /// transaction and one fsync (group commit): each caller queues its `f`;
    /// whoever holds the writer next runs everything queued, each `f` in a
    /// savepoint of its own (one that fails is rolled back alone and gets its
    /// error), commits once, and then every caller gets its answer — only
    /// after the commit, so an acknowledged write is on disk. The stores'
    /// uploads go this way: one fsync per upload capped the central at a
    /// few hundred uploads a second.
    pub fn write_grouped<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (done, answer) = std::sync::mpsc::sync_channel::<Result<T, E>>(1);
        let job: GroupJob = Box::new(move |tx| {
            let out = match tx.execute_batch("SAVEPOINT group_job") {
                Err(e) => Err(E::from(DbError::Sql(e))),
                Ok(()) => match f(tx) {
                    Ok(v) => tx
                        .execute_batch("RELEASE group_job")
                        .map(|()| v)
                        .map_err(|e| E::from(DbError::Sql(e))),
                    Err(e) => {
                        let _ = tx.execute_batch("ROLLBACK TO group_job; RELEASE group_job");
                        Err(e)
                    }
                },
            };
            Box::new(move |commit_failed: Option<&str>| {
                let out = match (out, commit_failed) {
                    (Ok(_), Some(why)) => Err(E::from(DbError::Commit(why.to_owned()))),
                    (out, _) => out,
                };
                let _ = done.send(out);
            })
        });
        self.queue
            .lock()
            .map_err(|_| E::from(DbError::Poisoned))?
            .push(job);
        {
            let _leader = self
                .grouper
                .lock()
                .map_err(|_| E::from(DbError::Poisoned))?;
            // The group before this one may have taken this job already.
            let jobs =
                std::mem::take(&mut *self.queue.lock().map_err(|_| E::from(DbError::Poisoned))?);
            if !jobs.is_empty() {
                self.run_group(jobs);
            }
        }
        answer.recv().unwrap_or_else(|_| {
            Err(E::from(DbError::Commit(
                "the write's transaction could not begin (see the log)".into(),
            )))
        })
    }

    /// One group commit: every job in one transaction, then each told.
    fn run_group(&self, jobs: Vec<GroupJob>) {
        let open = match self.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                // Nothing ran; dropping the jobs closes their callers' answers.
                tracing::error!(error = %e, jobs = jobs.len(), "group commit: the transaction could not begin");
                drop(jobs);
                return;
            }
        };
        let finishers: Vec<Finish> = {
            let tx = Transaction::new(open.conn());
            jobs.into_iter().map(|job| job(&tx)).collect()
        };
        let failed = open.commit().err().map(|e| e.to_string());
        for finish in finishers {
            finish(failed.as_deref());
        }
    }

    /// Runs `f` on a read connection inside one read transaction (one
    /// consistent snapshot for everything `f` reads).
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        match &self.store {
            Store::Sqlite { path, readers, .. } => {
                let conn = take_reader(path, readers).map_err(E::from)?;
                let began = conn.execute_batch("BEGIN DEFERRED");
                let out = match began {
                    Ok(()) => f(&conn),
                    Err(e) => Err(E::from(DbError::Sql(e))),
                };
                // A failed COMMIT of a read transaction leaves nothing to undo; drop the connection.
                if conn.execute_batch("COMMIT").is_ok()
                    && let Ok(mut pool) = readers.lock()
                    && pool.len() < MAX_IDLE_READERS
                {
                    pool.push(conn);
                }
                out
            }
            Store::Postgres { pool, .. } => {
                let conn = Connection::postgres(pool.session().map_err(|e| E::from(e.into()))?);
                conn.begin_read("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .map_err(|e| E::from(e.into()))?;
                let out = f(&conn);
                // Read only: nothing to keep; a failed end drops the session.
                let _ = conn.end_read();
                out
            }
        }
    }
}

fn open_sqlite(path: &Path) -> Result<Store, DbError> {
    let open_err = |source: rusqlite::Error| DbError::Open {
        path: path.display().to_string(),
        source: source.into(),
    };
    let mut conn = rusqlite::Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    // FULL: an acknowledged document or import survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "cache_size", -32_000)
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn, path)?;
    Ok(Store::Sqlite {
        path: path.to_owned(),
        writer: Mutex::new(Connection::sqlite(conn)),
        readers: Mutex::new(Vec::new()),
    })
}

fn take_reader(path: &Path, readers: &Mutex<Vec<Connection>>) -> Result<Connection, DbError> {
    if let Some(c) = readers.lock().map_err(|_| DbError::Poisoned)?.pop() {
        return Ok(c);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        rusqlite::Connection::open_with_flags(path, flags).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source: source.into(),
        })?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(Connection::sqlite(conn))
}

fn open_postgres(url: &str) -> Result<Store, DbError> {
    let shown = sql::postgres_redacted(url);
    let open_err = |source| DbError::Open {
        path: shown.clone(),
        source,
    };
    let pool = PgPool::connect(url, PG_SESSIONS).map_err(open_err)?;
    let conn = Connection::postgres(pool.session().map_err(open_err)?);
    migrate_postgres(&conn, &shown)?;
    drop(conn);
    Ok(Store::Postgres {
        url: url.to_owned(),
        pool,
    })
}

/// Applies the PostgreSQL migrations not applied yet, one instance at a
/// time (several may start together).
fn migrate_postgres(conn: &Connection, shown: &str) -> Result<(), DbError> {
    let step = |name: &'static str| move |source| DbError::Migration { name, source };
    conn.execute_batch("BEGIN").map_err(step("begin"))?;
    conn.query_row(
        "SELECT pg_advisory_xact_lock(?1)",
        params![PG_WRITER_LOCK],
        |_| Ok(()),
    )
    .map_err(step("lock"))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .map_err(step("schema_version"))?;
    let version: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            params![],
            |r| r.get(0),
        )
        .map_err(step("schema_version"))?;
    if version < 0 || version as usize > MIGRATIONS.len() {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(DbError::TooNew {
            path: shown.to_owned(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (level, name, sql) in PG_MIGRATIONS {
        if *level as i64 <= version {
            continue;
        }
        conn.execute_batch(sql).map_err(step(name))?;
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![*level as i64, *name, now_unix()],
        )
        .map_err(step(name))?;
    }
    conn.execute_batch("COMMIT").map_err(step("commit"))?;
    Ok(())
}

fn migrate(conn: &mut rusqlite::Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 0 || version as usize > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            path: path.display().to_string(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(|source| DbError::Migration {
            name,
            source: source.into(),
        })?;
        tx.execute_batch(sql).map_err(|source| DbError::Migration {
            name,
            source: source.into(),
        })?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|source| DbError::Migration {
                name,
                source: source.into(),
            })?;
        tx.commit().map_err(|source| DbError::Migration {
            name,
            source: source.into(),
        })?;
    }
    Ok(())
}

/// SHA-256 of a token, hex. Tokens are stored and compared only as hashes.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The last sequence given to a row change.
pub fn head_seq(conn: &Connection) -> Result<u64, sql::Error> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM counters WHERE name = 'seq'",
            params![],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

pub fn set_head_seq(conn: &Connection, seq: u64) -> Result<(), sql::Error> {
    conn.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'seq'",
        params![seq as i64],
    )?;
    Ok(())
}

/// Now, as unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use std::sync::Arc;

    /// Writes from many threads at once: each gets its own answer, one that
    /// fails leaves the others' rows, and everything answered Ok is there.
    #[test]
    fn grouped_writes_each_get_their_answer_and_a_failure_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::for_tests(dir.path()));
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(DbError::from)
        })
        .unwrap();
        let threads: Vec<_> = (0..40)
            .map(|n: i64| {
                let db = db.clone();
                std::thread::spawn(move || {
                    db.write_grouped(move |tx| {
                        tx.execute("INSERT INTO t (n) VALUES (?1)", params![n])?;
                        if n % 10 == 3 {
                            // Its insert is undone with it.
                            return Err(DbError::Commit(format!("job {n} refused")));
                        }
                        Ok(n)
                    })
                })
            })
            .collect();
        let mut ok = 0;
        for (n, t) in threads.into_iter().enumerate() {
            match t.join().unwrap() {
                Ok(v) => {
                    assert_eq!(v, n as i64);
                    ok += 1;
                }
                Err(e) => assert_eq!(e.to_string(), format!("commit failed: job {n} refused")),
            }
        }
        assert_eq!(ok, 36);
        let (count, refused): (i64, i64) = db
            .read(|c| {
                Ok::<_, DbError>((
                    c.query_row("SELECT count(*) FROM t", params![], |r| r.get(0))?,
                    c.query_row("SELECT count(*) FROM t WHERE n % 10 = 3", params![], |r| {
                        r.get(0)
                    })?,
                ))
            })
            .unwrap();
        assert_eq!((count, refused), (36, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database path in a fresh directory, removed when the guard drops.
    fn temp_db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        (dir, path)
    }

    #[test]
    fn migrates_once_and_reopens() {
        let (_dir, path) = temp_db();
        let db = Db::open(&path).unwrap();
        let v: i64 = db
            .read(|c| {
                c.query_row("PRAGMA user_version", params![], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        drop(db);
        let db = Db::open(&path).unwrap();
        let head = db.read(|c| head_seq(c).map_err(DbError::from)).unwrap();
        assert_eq!(head, 0);
    }

    #[test]
    fn rows_of_earlier_owners_become_tombstones_of_their_own() {
        let (_dir, path) = temp_db();
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0].1).unwrap();
            c.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO availability (entity, minutes) VALUES ('prices', 30);
                 INSERT INTO rows (seq, entity, key_text, key_json, node, public, prev_nodes, deleted, data)
                 VALUES (1, 'prices', '[\"1\",\"x\"]', '{\"product_code\":\"1\",\"price_list\":\"x\"}', 'b', 1, 'a,c', 0, '{}'),
                        (2, 'prices', '[\"2\",\"x\"]', '{\"product_code\":\"2\",\"price_list\":\"x\"}', 'master', 1, NULL, 0, '{}');
                 UPDATE counters SET value = 2 WHERE name = 'seq';",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let rows: Vec<(i64, String, String, bool, bool)> = db
            .read(|c| {
                let mut s = c.prepare(
                    "SELECT seq, key_text, node, deleted, siblings FROM rows ORDER BY seq",
                )?;
                let v = s
                    .query_map(params![], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, DbError>(v)
            })
            .unwrap();
        let k1 = "[\"1\",\"x\"]".to_owned();
        assert_eq!(
            rows,
            vec![
                (1, k1.clone(), "b".into(), false, true),
                (2, "[\"2\",\"x\"]".into(), "master".into(), false, false),
                (3, k1.clone(), "a".into(), true, true),
                (4, k1, "c".into(), true, true),
            ]
        );
        let head = db.read(|c| head_seq(c).map_err(DbError::from)).unwrap();
        assert_eq!(head, 4);
        let chain: i64 = db
            .read(|c| {
                c.query_row(
                    "SELECT minutes FROM availability WHERE node = 'master' AND entity = 'prices'",
                    params![],
                    |r| r.get(0),
                )
                .map_err(DbError::from)
            })
            .unwrap();
        assert_eq!(chain, 30, "the old setting is the chain's");
    }

    #[test]
    fn feed_query_uses_the_entity_index() {
        let (_dir, path) = temp_db();
        let db = Db::open(&path).unwrap();
        let plan: String = db
            .read(|c| {
                c.query_row(
                    "EXPLAIN QUERY PLAN SELECT seq FROM rows WHERE entity = 'x' AND seq > 5 ORDER BY seq",
                    params![],
                    |r| r.get(3),
                )
                .map_err(DbError::from)
            })
            .unwrap();
        assert!(plan.contains("rows_feed"), "{plan}");
    }

    /// (Meaningful in the PostgreSQL run of the tests: scripts/test's
    /// server-on-postgres step; SQLite has no plan cache to set.)
    #[test]
    fn postgres_sessions_plan_each_statement_for_its_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        if db.backend() != sql::Backend::Postgres {
            return;
        }
        let show = |what: &str| -> String {
            db.read(|c| {
                c.query_row(&format!("SHOW {what}"), params![], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .unwrap()
        };
        assert_eq!(show("plan_cache_mode"), "force_custom_plan");
        assert_eq!(show("random_page_cost"), "1.1");
    }

    /// A read's BEGIN travels with its first statement (PostgreSQL): that
    /// statement, and every one after it, runs inside the read-only,
    /// repeatable-read transaction; one that fails leaves the session fit
    /// for the next read.
    #[test]
    fn a_read_runs_in_its_transaction_from_the_first_statement() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        if db.backend() != sql::Backend::Postgres {
            return;
        }
        for _ in 0..3 {
            let (iso, ro, same) = db
                .read(|c| {
                    let setting = |name: &str| -> Result<String, DbError> {
                        Ok(c.query_row(
                            "SELECT current_setting(?1)",
                            params![name.to_owned()],
                            |r| r.get(0),
                        )?)
                    };
                    let iso = setting("transaction_isolation")?;
                    let ro = setting("transaction_read_only")?;
                    // The snapshot's time is the transaction's: the same twice.
                    let t = || -> Result<String, DbError> {
                        Ok(c.query_row("SELECT now()::text", params![], |r| r.get(0))?)
                    };
                    let first = t()?;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    Ok::<_, DbError>((iso, ro, first == t()?))
                })
                .unwrap();
            assert_eq!(
                (iso.as_str(), ro.as_str(), same),
                ("repeatable read", "on", true)
            );
            let failed = db
                .read(|c| Ok::<i64, DbError>(c.query_row("SELECT 1/0", params![], |r| r.get(0))?));
            assert!(failed.is_err());
        }
        // A read that runs no statement sends nothing.
        db.read(|_| Ok::<_, DbError>(())).unwrap();
        assert_eq!(
            db.read(|c| Ok::<i64, DbError>(c.query_row("SELECT 2", params![], |r| r.get(0))?))
                .unwrap(),
            2
        );
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
