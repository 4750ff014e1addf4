//! The central's SQLite file: migrations, one writer connection, a small pool
//! of read-only connections.
//!
//! Every change is written through the single writer (behind a mutex), so the
//! sequences it hands out commit in order: a reader's WAL snapshot always holds
//! a prefix of the sequence, never a gap that a later commit fills.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
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
];

/// How many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("migration {name}: {source}")]
    Migration {
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this server knows ({known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("database connection lock poisoned")]
    Poisoned,
    /// A group commit failed: none of its writes is on disk.
    #[error("commit failed: {0}")]
    Commit(String),
}

pub struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Writes waiting to go into the next group commit ([`Db::write_grouped`]).
    queue: Mutex<Vec<GroupJob>>,
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
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open_err = |source| DbError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
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
        Ok(Db {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            queue: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction on the single writer connection.
    /// Commits when `f` returns Ok, rolls back otherwise.
    pub fn write<T, E>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.writer.lock().map_err(|_| E::from(DbError::Poisoned))?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(DbError::Sql(e)))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| E::from(DbError::Sql(e)))?;
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
            let mut conn = self.writer.lock().map_err(|_| E::from(DbError::Poisoned))?;
            // The group before this one may have taken this job already.
            let jobs =
                std::mem::take(&mut *self.queue.lock().map_err(|_| E::from(DbError::Poisoned))?);
            if !jobs.is_empty() {
                run_group(&mut conn, jobs);
            }
        }
        answer.recv().unwrap_or_else(|_| {
            Err(E::from(DbError::Commit(
                "the write's transaction could not begin (see the log)".into(),
            )))
        })
    }

    /// Runs `f` on a read-only connection inside one read transaction (one
    /// consistent WAL snapshot for everything `f` reads).
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let conn = self.take_reader().map_err(E::from)?;
        let began = conn.execute_batch("BEGIN DEFERRED");
        let out = match began {
            Ok(()) => f(&conn),
            Err(e) => Err(E::from(DbError::Sql(e))),
        };
        // A failed COMMIT of a read transaction leaves nothing to undo; drop the connection.
        if conn.execute_batch("COMMIT").is_ok() {
            self.give_back(conn);
        }
        out
    }

    fn take_reader(&self) -> Result<Connection, DbError> {
        if let Some(c) = self.readers.lock().map_err(|_| DbError::Poisoned)?.pop() {
            return Ok(c);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|source| DbError::Open {
                path: self.path.clone(),
                source,
            })?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "cache_size", -32_000)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < MAX_IDLE_READERS
        {
            pool.push(conn);
        }
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 0 || version as usize > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            path: path.to_owned(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn
            .transaction()
            .map_err(|source| DbError::Migration { name, source })?;
        tx.execute_batch(sql)
            .map_err(|source| DbError::Migration { name, source })?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|source| DbError::Migration { name, source })?;
        tx.commit()
            .map_err(|source| DbError::Migration { name, source })?;
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
/// One group commit: every job in one transaction, then each told.
fn run_group(conn: &mut Connection, jobs: Vec<GroupJob>) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing ran; dropping the jobs closes their callers' answers.
            tracing::error!(error = %e, jobs = jobs.len(), "group commit: the transaction could not begin");
            drop(jobs);
            return;
        }
    };
    let finishers: Vec<Finish> = jobs.into_iter().map(|job| job(&tx)).collect();
    let failed = tx.commit().err().map(|e| e.to_string());
    for finish in finishers {
        finish(failed.as_deref());
    }
}

pub fn head_seq(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let v: Option<i64> = conn
        .query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

pub fn set_head_seq(conn: &Connection, seq: u64) -> Result<(), rusqlite::Error> {
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
        let db = Arc::new(Db::open(&dir.path().join("c.db")).unwrap());
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
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
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
                    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?,
                    c.query_row("SELECT count(*) FROM t WHERE n % 10 = 3", [], |r| r.get(0))?,
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
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
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
            let c = Connection::open(&path).unwrap();
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
                    .query_map([], |r| {
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
                    [],
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
                    [],
                    |r| r.get(3),
                )
                .map_err(DbError::from)
            })
            .unwrap();
        assert!(plan.contains("rows_feed"), "{plan}");
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
