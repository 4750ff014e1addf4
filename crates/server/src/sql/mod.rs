//! The central's storage interface: one synchronous SQL API over two
//! backends, SQLite (embedded, the default) and PostgreSQL (a chain's
//! central, several instances on one database).
//!
//! The server's modules were written against rusqlite, and their SQL is
//! plain enough to run on both; so the interface keeps rusqlite's shape
//! (`execute`, `query_row`, `prepare_cached` + `query_map`, `params!`,
//! `optional()`) and each backend maps it. Statements are written with
//! `?N` placeholders; the PostgreSQL backend rewrites them to `$N`.
//! Where the dialects differ, the caller asks [`Connection::backend`] and
//! says both — that is rare and stays visible at the call site.
//!
//! Calls are synchronous because every database call of the server already
//! runs on a blocking thread; the PostgreSQL backend drives its async client
//! on a runtime of its own (`postgres.rs`), so a call works from any thread.
//!
//! Must not: know any table. Transactions are opened by `crate::db::Db`
//! only (one writer at a time per database, across instances).

mod postgres;
mod sqlite;
mod value;

pub use postgres::{PgPool, PgTx, redacted as postgres_redacted};
pub use value::{ColumnIndex, FromColumn, PgValue, ToParam, ValueRef};

/// Creates database `name` (lowercase letters, digits, `_`) on the
/// PostgreSQL server `maintenance_url` names, and answers its URL: the same
/// server and user. For the tests (a database of their own each) and tools.
pub fn create_database(maintenance_url: &str, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::Conversion(format!("database name {name:?}")));
    }
    let pool = PgPool::connect(maintenance_url, 1)?;
    Connection::postgres(pool.session()?).execute_batch(&format!("CREATE DATABASE {name}"))?;
    let (base, rest) = maintenance_url.rsplit_once('/').ok_or_else(|| {
        Error::Conversion(format!(
            "{}: the URL names no database",
            postgres_redacted(maintenance_url)
        ))
    })?;
    let query = rest.find('?').map_or("", |i| &rest[i..]);
    Ok(format!("{base}/{name}{query}"))
}

/// A database of its own for one test on the PostgreSQL server at
/// `maintenance_url` (left for the test script, which removes the whole
/// server at the end).
#[cfg(test)]
pub(crate) fn test_database(maintenance_url: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    create_database(maintenance_url, &name).unwrap()
}

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {message}")]
    Postgres {
        /// The SQLSTATE, when the server answered one.
        code: Option<String>,
        message: String,
    },
    #[error("query returned no rows")]
    NoRows,
    #[error("column {column}: {reason}")]
    Column { column: String, reason: String },
    /// A value the caller could not convert (its own JSON, a range).
    #[error("conversion: {0}")]
    Conversion(String),
}

impl Error {
    pub fn conversion(e: impl std::fmt::Display) -> Error {
        Error::Conversion(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `query_row(..).optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The parameters of a statement: `params![a, b]`.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::sql::ToParam]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::sql::ToParam),+] as &[&dyn $crate::sql::ToParam]
    };
}
pub use crate::params;

/// One connection, SQLite's or a pooled PostgreSQL session.
pub struct Connection {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(PgTx),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Connection {
        Connection {
            inner: Inner::Sqlite(conn),
        }
    }

    pub fn postgres(tx: PgTx) -> Connection {
        Connection {
            inner: Inner::Postgres(tx),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs statements without parameters, `;`-separated.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(p) => p.batch(sql),
        }
    }

    /// Begins a read-only transaction with `sql`. On PostgreSQL it is sent
    /// with the transaction's first statement, in the same round trip (and
    /// fails with it); SQLite's is a call in process.
    pub fn begin_read(&self, sql: &'static str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(p) => {
                p.defer(sql);
                Ok(())
            }
        }
    }

    /// Ends a read-only transaction. On PostgreSQL the COMMIT is sent
    /// without waiting for its answer (the session is not reused before it
    /// is answered), and not at all when no statement ran (nor did the
    /// BEGIN); SQLite's is a call in process.
    pub fn end_read(&self) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("COMMIT")?),
            Inner::Postgres(p) => {
                if !p.undefer() {
                    p.batch_detached("COMMIT");
                }
                Ok(())
            }
        }
    }

    /// Runs `statements` in order, as one pipeline: PostgreSQL is sent them
    /// all before the first answer is awaited (one round trip, not one per
    /// statement); SQLite runs them one after the other. The first error
    /// ends it, and the caller's transaction is to be rolled back.
    pub fn execute_pipeline(&self, statements: &[Queued]) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => {
                for q in statements {
                    c.prepare_cached(q.sql)?
                        .execute(rusqlite::params_from_iter(q.params.iter()))?;
                }
                Ok(())
            }
            Inner::Postgres(p) => p.execute_pipeline(statements),
        }
    }

    /// Runs one query once per parameter list, as one pipeline (see
    /// [`Connection::execute_pipeline`]); each run's rows mapped by `f`, in
    /// the order of `runs`.
    pub fn query_pipeline<T, F>(
        &self,
        sql: &str,
        runs: &[Vec<PgValue>],
        mut f: F,
    ) -> Result<Vec<Vec<T>>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut out = Vec::with_capacity(runs.len());
                for params in runs {
                    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                    let mut mapped = Vec::new();
                    while let Some(r) = rows.next()? {
                        mapped.push(f(&Row {
                            inner: RowInner::Sqlite(r),
                        })?);
                    }
                    out.push(mapped);
                }
                Ok(out)
            }
            Inner::Postgres(p) => {
                let stmt = p.prepare(sql)?;
                p.query_pipeline(&stmt, runs)?
                    .iter()
                    .map(|rows| {
                        rows.iter()
                            .map(|r| {
                                f(&Row {
                                    inner: RowInner::Postgres(r),
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The first row mapped by `f`; [`Error::NoRows`] when there is none.
    pub fn query_row<T, F>(&self, sql: &str, params: &[&dyn ToParam], f: F) -> Result<T>
    where
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    /// A statement, from the connection's cache when it was prepared before.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement {
            inner: match &self.inner {
                Inner::Sqlite(c) => StmtInner::Sqlite(c.prepare_cached(sql)?),
                Inner::Postgres(p) => StmtInner::Postgres(p, p.prepare(sql)?),
            },
        })
    }
}

/// A statement waiting in a pipeline, with parameters of its own.
#[derive(Debug, Clone)]
pub struct Queued {
    pub sql: &'static str,
    pub params: Vec<PgValue>,
}

impl Queued {
    pub fn new(sql: &'static str, params: &[&dyn ToParam]) -> Queued {
        Queued {
            sql,
            params: params.iter().map(|p| p.pg()).collect(),
        }
    }
}

/// A write transaction: every write goes through one (`crate::db::Db::write`).
pub struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Transaction<'c> {
        Transaction { conn }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

pub struct Statement<'c> {
    inner: StmtInner<'c>,
}

enum StmtInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c PgTx, tokio_postgres::Statement),
}

impl Statement<'_> {
    pub fn execute(&mut self, params: &[&dyn ToParam]) -> Result<usize> {
        match &mut self.inner {
            StmtInner::Sqlite(s) => Ok(s.execute(sqlite::params(params))?),
            StmtInner::Postgres(p, s) => p.execute(s, params),
        }
    }

    pub fn query(&mut self, params: &[&dyn ToParam]) -> Result<Rows<'_>> {
        Ok(Rows {
            inner: match &mut self.inner {
                StmtInner::Sqlite(s) => RowsInner::Sqlite(s.query(sqlite::params(params))?),
                StmtInner::Postgres(p, s) => RowsInner::Postgres(p.query(s, params)?.into_iter()),
            },
            current: None,
        })
    }

    pub fn query_map<T, F>(&mut self, params: &[&dyn ToParam], f: F) -> Result<MappedRows<'_, F>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        Ok(MappedRows {
            rows: self.query(params)?,
            f,
        })
    }

    pub fn query_row<T, F>(&mut self, params: &[&dyn ToParam], f: F) -> Result<T>
    where
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(&r),
            None => Err(Error::NoRows),
        }
    }

    pub fn exists(&mut self, params: &[&dyn ToParam]) -> Result<bool> {
        Ok(self.query(params)?.next()?.is_some())
    }
}

pub struct Rows<'s> {
    inner: RowsInner<'s>,
    current: Option<tokio_postgres::Row>,
}

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<tokio_postgres::Row>),
}

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // rows borrow from the cursor: not an Iterator
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.inner {
            RowsInner::Sqlite(r) => Ok(r.next()?.map(|r| Row {
                inner: RowInner::Sqlite(r),
            })),
            RowsInner::Postgres(it) => {
                self.current = it.next();
                Ok(self.current.as_ref().map(|r| Row {
                    inner: RowInner::Postgres(r),
                }))
            }
        }
    }
}

/// `query_map`'s rows, each mapped when it is reached.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    f: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        match self.rows.next() {
            Ok(Some(r)) => Some((self.f)(&r)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

pub struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// The value of a column (by position or name) as `T`.
    pub fn get<I: ColumnIndex, T: FromColumn>(&self, idx: I) -> Result<T> {
        match &self.inner {
            RowInner::Sqlite(r) => Ok(r.get::<_, T>(idx)?),
            RowInner::Postgres(r) => value::from_pg(r, idx),
        }
    }

    /// The value of a column, borrowed from the row.
    pub fn get_ref<I: ColumnIndex>(&self, idx: I) -> Result<ValueRef<'_>> {
        match &self.inner {
            RowInner::Sqlite(r) => value::sqlite_ref(r.get_ref(idx)?),
            RowInner::Postgres(r) => value::pg_ref(r, idx),
        }
    }
}
