//! The PostgreSQL side of the interface: tokio-postgres sessions from a
//! deadpool pool, driven on a small runtime of the backend's own.
//!
//! Why a runtime of its own: the interface is synchronous and is called
//! from the server's blocking threads, its async handlers' threads and
//! tests alike; a call hands its future to this runtime and waits on a
//! plain channel, which is safe from any of them (blocking on the caller's
//! own runtime would not be). The cost is a thread hop per statement —
//! small next to a round trip to the database.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls, Statement};

use super::value::PgValue;
use super::{Error, Result, ToParam};

/// A pool of sessions on one PostgreSQL database.
#[derive(Clone)]
pub struct PgPool {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: OwnRuntime,
    pool: Pool,
    config: tokio_postgres::Config,
}

/// The backend's runtime, shut down without blocking when the pool goes
/// (a plain drop would panic inside the caller's async context).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl OwnRuntime {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle())
    }
}

fn pg_error(e: tokio_postgres::Error) -> Error {
    let code = e.code().map(|c| c.code().to_owned());
    let message = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    };
    Error::Postgres { code, message }
}

fn other(message: impl std::fmt::Display) -> Error {
    Error::Postgres {
        code: None,
        message: message.to_string(),
    }
}

/// The connection string without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgres://{}@{}/{}",
                c.get_user().unwrap_or(""),
                hosts.join(","),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "postgres://(unparsable)".into(),
    }
}

impl PgPool {
    /// Connects (lazily: the first session opens the first connection).
    pub fn connect(url: &str, max_sessions: usize) -> Result<PgPool> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| other(format!("{}: {e}", redacted(url))))?;
        // Plan every statement for its parameters, with SSD costs. A
        // prepared statement's generic plan does not know which entity it
        // reads, and the default random-page cost makes the seq key look
        // cheaper than (entity, seq): either way a feed page walked the
        // whole sequence key, filtering one entity's rows out of all
        // (chain-sim: 568 ms for one prices page; 5 ms by the index).
        const SESSION: &str = "-c plan_cache_mode=force_custom_plan -c random_page_cost=1.1";
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {SESSION}"),
            _ => SESSION.to_owned(),
        };
        config.options(&options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loja-pg")
            .enable_all()
            .build()
            .map_err(|e| other(format!("starting the PostgreSQL runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A session comes back with no transaction open (Db rolls
                // back every one it began); checking it is one round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_sessions)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(other)?;
        Ok(PgPool {
            shared: Arc::new(Shared {
                runtime: OwnRuntime(Some(runtime)),
                pool,
                config,
            }),
        })
    }

    /// A session from the pool, back to it when dropped (outside any
    /// transaction: wrap it in [`super::Connection::postgres`]).
    pub fn session(&self) -> Result<PgTx> {
        let pool = self.shared.pool.clone();
        let client = run(&self.shared, async move {
            pool.get()
                .await
                .map_err(|e| other(format!("a PostgreSQL session: {e}")))
        })?;
        Ok(PgTx {
            client: Arc::new(client),
            shared: self.shared.clone(),
            deferred: std::sync::Mutex::new(None),
        })
    }

    /// Listens on `channel` on a connection of its own and calls `hint`
    /// with each notification's payload; after a lost connection it
    /// reconnects (every 1 s) and calls `hint(None)`: hints may have been
    /// missed, so whoever waits should look again.
    pub fn listen(
        &self,
        channel: &'static str,
        hint: impl Fn(Option<&str>) + Send + Sync + 'static,
    ) -> Result<()> {
        let handle = self
            .shared
            .runtime
            .handle()
            .ok_or_else(|| other("the PostgreSQL runtime stopped"))?
            .clone();
        let config = self.shared.config.clone();
        handle.spawn(async move {
            let mut first = true;
            loop {
                match listen_once(&config, channel, &hint, first).await {
                    Ok(()) => tracing::warn!(channel, "PostgreSQL LISTEN connection ended; reconnecting"),
                    Err(e) => tracing::warn!(channel, error = %e, "PostgreSQL LISTEN failed; reconnecting in 1 s"),
                }
                first = false;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(())
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    hint: &(impl Fn(Option<&str>) + Send + Sync),
    first: bool,
) -> Result<()> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg_error)?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The connection is driven by the stream below; LISTEN is answered
    // through it, so send it from a task of its own.
    let listen = tokio::spawn({
        let sql = format!("LISTEN {channel}");
        async move {
            let r = client.batch_execute(&sql).await;
            (client, r)
        }
    });
    let mut listening = Some(listen);
    let mut _client = None;
    loop {
        if let Some(l) = listening.as_mut()
            && l.is_finished()
        {
            let (client, r) = listening
                .take()
                .ok_or_else(|| other("LISTEN task lost"))?
                .await
                .map_err(other)?;
            r.map_err(pg_error)?;
            _client = Some(client);
            if !first {
                hint(None);
            }
        }
        let next = tokio::time::timeout(Duration::from_millis(200), messages.next()).await;
        match next {
            Err(_) => continue,
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(pg_error(e)),
            Ok(Some(Ok(AsyncMessage::Notification(n)))) => hint(Some(n.payload())),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Runs `fut` on the backend's runtime and waits for it on this thread.
fn run<T: Send + 'static>(
    shared: &Shared,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let handle = shared
        .runtime
        .handle()
        .ok_or_else(|| other("the PostgreSQL runtime stopped"))?;
    let (done, answer) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = done.send(fut.await);
    });
    answer
        .recv()
        .unwrap_or_else(|_| Err(other("the PostgreSQL runtime stopped")))
}

/// One pooled session (a `Db` transaction runs on one).
pub struct PgTx {
    client: Arc<deadpool_postgres::Object>,
    shared: Arc<Shared>,
    /// A statement to send ahead of the next one, in the same round trip
    /// (a read transaction's BEGIN: see [`PgTx::defer`]).
    deferred: std::sync::Mutex<Option<&'static str>>,
}

impl PgTx {
    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        let client = self.client.clone();
        let sql = sql.to_owned();
        let first = self.deferred();
        run(&self.shared, async move {
            after(&client, first, client.batch_execute(&sql)).await
        })
    }

    /// Sends `sql` without waiting for its answer (a read transaction's
    /// COMMIT: nothing to undo, nothing to learn; a round trip less per
    /// read). The session goes back to the pool once it is answered, so
    /// nothing else runs on it before.
    pub(super) fn batch_detached(&self, sql: &'static str) {
        let client = self.client.clone();
        if let Some(handle) = self.shared.runtime.handle() {
            handle.spawn(async move {
                let _ = client.batch_execute(sql).await;
            });
        }
    }

    /// Sends `sql` just before the next statement that runs on this
    /// session, without a round trip of its own; its failure is that
    /// statement's. Nothing is sent if none follows.
    pub(super) fn defer(&self, sql: &'static str) {
        if let Ok(mut d) = self.deferred.lock() {
            *d = Some(sql);
        }
    }

    /// Takes the deferred statement back: whether one was waiting.
    pub(super) fn undefer(&self) -> bool {
        self.deferred().is_some()
    }

    fn deferred(&self) -> Option<&'static str> {
        self.deferred.lock().ok().and_then(|mut d| d.take())
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<Statement> {
        let client = self.client.clone();
        let sql = placeholders(sql);
        run(&self.shared, async move {
            client.prepare_cached(&sql).await.map_err(pg_error)
        })
    }

    pub(super) fn execute(&self, stmt: &Statement, params: &[&dyn ToParam]) -> Result<usize> {
        let client = self.client.clone();
        let first = self.deferred();
        let stmt = stmt.clone();
        let values: Vec<PgValue> = params.iter().map(|p| p.pg()).collect();
        run(&self.shared, async move {
            let refs = sql_refs(&values);
            after(&client, first, client.execute(&stmt, &refs))
                .await
                .map(|n| n as usize)
        })
    }

    pub(super) fn query(
        &self,
        stmt: &Statement,
        params: &[&dyn ToParam],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client.clone();
        let first = self.deferred();
        let stmt = stmt.clone();
        let values: Vec<PgValue> = params.iter().map(|p| p.pg()).collect();
        run(&self.shared, async move {
            let refs = sql_refs(&values);
            after(&client, first, client.query(&stmt, &refs)).await
        })
    }

    /// Every statement sent before any answer is awaited: tokio-postgres
    /// writes each request when its future is first polled, and
    /// `try_join_all` polls them in order, so the server runs them in order.
    /// Each distinct statement is prepared once (from the session's cache
    /// after its first time), in the same hop to the backend's runtime.
    pub(super) fn execute_pipeline(&self, statements: &[super::Queued]) -> Result<()> {
        let statements = statements.to_vec();
        let client = self.client.clone();
        let first = self.deferred();
        run(&self.shared, async move {
            let mut prepared: std::collections::HashMap<&str, Statement> =
                std::collections::HashMap::new();
            for q in &statements {
                if !prepared.contains_key(q.sql) {
                    let stmt = client
                        .prepare_cached(&placeholders(q.sql))
                        .await
                        .map_err(pg_error)?;
                    prepared.insert(q.sql, stmt);
                }
            }
            let runs = statements.iter().map(|q| {
                let (client, stmt) = (&client, &prepared[q.sql]);
                async move {
                    let refs = sql_refs(&q.params);
                    client.execute(stmt, &refs).await
                }
            });
            after(&client, first, futures_util::future::try_join_all(runs))
                .await
                .map(drop)
        })
    }

    /// One statement run once per parameter list, pipelined as above.
    pub(super) fn query_pipeline(
        &self,
        stmt: &Statement,
        runs: &[Vec<PgValue>],
    ) -> Result<Vec<Vec<tokio_postgres::Row>>> {
        let client = self.client.clone();
        let stmt = stmt.clone();
        let runs = runs.to_vec();
        let first = self.deferred();
        run(&self.shared, async move {
            let queries = runs.iter().map(|values| {
                let (client, stmt) = (&client, &stmt);
                async move {
                    let refs = sql_refs(values);
                    client.query(stmt, &refs).await
                }
            });
            after(&client, first, futures_util::future::try_join_all(queries)).await
        })
    }
}

/// The parameters as tokio-postgres takes them.
fn sql_refs(values: &[PgValue]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// `op` on `client`, after the deferred statement `first` if any: both
/// requests are written before either answer is awaited (`join` polls
/// `first` first, and tokio-postgres writes a request when its future is
/// first polled), so the server runs them in that order.
async fn after<T>(
    client: &deadpool_postgres::Object,
    first: Option<&'static str>,
    op: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    match first {
        None => op.await.map_err(pg_error),
        Some(sql) => {
            let (began, out) = futures_util::future::join(client.batch_execute(sql), op).await;
            began.map_err(pg_error)?;
            out.map_err(pg_error)
        }
    }
}

/// `?N` (and bare `?`) placeholders as PostgreSQL's `$N`, outside quotes.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut next_bare = 0;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                        out.push(d);
                    }
                } else {
                    next_bare += 1;
                    out.push_str(&next_bare.to_string());
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3'"
        );
        assert_eq!(placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn the_password_never_shows() {
        let r = redacted("postgres://loja:s3cret@db.example:5432/central");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("db.example") && r.contains("central"), "{r}");
    }
}
