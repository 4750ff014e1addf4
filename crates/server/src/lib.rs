//! retaguarda-server: the reference central back office of the Loja sync
//! protocol (docs/protocol.md).
//!
//! - ERP imports in (`POST /v1/admin/import/{entity}`, JSON lines), validated
//!   by the entity registry of `loja_protocol`, stored generically;
//! - per-store feeds out (`GET /v1/stores/{store}/feeds/{entity}`), shaped by
//!   the node hierarchy (master → centrals → stores) and the availability
//!   control; a long-poll of events;
//! - store documents in (`POST /v1/stores/{store}/documents`), the ERP's
//!   queue out (`GET /v1/admin/documents`).
//!
//! [`spawn`] runs it in-process (tests, the demo and the benches of loja-devtools); [`cli::main`] is the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

// First: its `params!` is in scope in every module after it.
#[macro_use]
pub mod sql;
pub mod admission;
pub mod avail;
pub mod catalog;
pub mod changes;
pub mod cli;
pub mod console;
pub mod db;
pub mod docs;
pub mod documents;
pub mod feed;
pub mod hints;
pub mod http;
pub mod import;
pub mod integration;
pub mod nodes;
pub mod omni;
pub mod page_cache;
pub mod release_cli;
pub mod releases;
pub mod rows;
pub mod store_stock;
#[cfg(test)]
mod test_central;
pub mod traffic;
pub mod verdicts;
pub mod verify;

/// `gen` is a reserved word in edition 2024: `retaguarda::r#gen` or `retaguarda::catalog`.
pub use catalog as r#gen;
pub use catalog::{CatalogSpec, GenReport, generate};
pub use db::{Db, DbError};
pub use import::{Applied, ImportError};
pub use nodes::{NewNode, NodeError, NodeKind};

/// How to run a central.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The database (created and migrated if needed): a SQLite file or a
    /// PostgreSQL URL.
    pub db: db::Location,
    /// Address to listen on; port 0 picks a free one (see [`RunningServer::addr`]).
    pub listen: SocketAddr,
    /// Bearer token of the admin/ERP endpoints. Empty disables them.
    pub admin_token: String,
    /// PEM certificate chain and key: serve HTTPS (rustls) instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS certificate/key: {0}")]
    Tls(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("{0}")]
    Invalid(String),
    #[error("background task failed: {0}")]
    Task(String),
}

impl From<crate::sql::Error> for ServerError {
    fn from(e: crate::sql::Error) -> Self {
        ServerError::Db(DbError::Sql(e))
    }
}

/// A central serving in this process.
pub struct RunningServer {
    /// The address it listens on (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// `http://ADDR` or `https://ADDR`.
    pub url: String,
    handle: axum_server::Handle<SocketAddr>,
    state: Arc<http::AppState>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    flusher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Installs rustls' ring provider as the process default (once; a provider
/// already installed is kept).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens (migrating) the database, binds, and serves in a tokio task.
pub async fn spawn(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let location = config.db.clone();
    let (db, head) = tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
        let db = Db::open_at(&location)?;
        let head = db.read(|c| db::head_seq(c).map_err(DbError::from))?;
        Ok((db, head))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))??;
    let state = Arc::new(http::AppState::new(db, &config.admin_token, head));
    if let Some(pool) = state.db.postgres() {
        // Several instances may serve this database: hints between them.
        let weak = Arc::downgrade(&state);
        let hints = hints::start(pool, move |h| {
            if let Some(st) = weak.upgrade() {
                st.hinted(h);
            }
        })?;
        let _ = state.hints.set(hints);
        tracing::info!(database = %state.db.location().display(), "PostgreSQL: hints between instances on");
    }
    let app = http::router(state.clone());
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let bind_err = |source| ServerError::Bind { addr, source };
    let (serve, scheme) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            install_crypto_provider();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(bind_err)?
                .handle(handle.clone());
            (tokio::spawn(server.serve(app.into_make_service())), "https")
        }
        (None, None) => {
            let server = axum_server::from_tcp(listener)
                .map_err(bind_err)?
                .handle(handle.clone());
            (tokio::spawn(server.serve(app.into_make_service())), "http")
        }
        _ => return Err(ServerError::Tls("give both a certificate and a key".into())),
    };
    let flusher = tokio::spawn(flush_loop(state.clone()));
    tracing::info!(%addr, db = %config.db.display(), tls = scheme == "https", "retaguarda-server listening");
    Ok(RunningServer {
        addr,
        url: format!("{scheme}://{addr}"),
        handle,
        state,
        serve,
        flusher,
    })
}

/// Writes the downloads recorded by feed answers, behind them.
async fn flush_loop(state: Arc<http::AppState>) {
    let mut stop = state.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = state.flush.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        // Let a burst of pages gather into one write.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = state.clone();
        match tokio::task::spawn_blocking(move || st.flush_downloads()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not record downloads"),
            Err(e) => tracing::warn!(error = %e, "download recorder failed"),
        }
        let st = state.clone();
        let last = *stop.borrow();
        match tokio::task::spawn_blocking(move || st.flush_traffic(last)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not record store traffic"),
            Err(e) => tracing::warn!(error = %e, "traffic recorder failed"),
        }
        if *stop.borrow() {
            return;
        }
    }
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish (long-polls return at
    /// once), records pending downloads and closes.
    pub async fn shutdown(self) {
        self.state.shutdown.send_replace(true);
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = self.serve.await;
        let _ = self.flusher.await;
        let st = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = st.flush_downloads();
            st.flush_traffic(true)
        })
        .await;
    }

    /// The database the server runs on (admin work in-process).
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Wakes long-polls after a change written around the HTTP API
    /// (e.g. [`catalog::generate`] into the running server's file).
    pub fn notify_changed(&self) {
        let head = self
            .state
            .db
            .read(|c| db::head_seq(c).map_err(DbError::from))
            .unwrap_or(0);
        self.state.advance(head);
    }
}

/// Adds (or updates) a store under `parent` with its bearer token, straight
/// in the database file. Usable before [`spawn`] or while it runs.
pub fn ensure_store(
    db: &Path,
    store_id: &str,
    parent: &str,
    token: &str,
) -> Result<(), ServerError> {
    ensure_node(
        db,
        &NewNode {
            id: store_id.into(),
            parent: parent.into(),
            kind: NodeKind::Store,
            token: Some(token.into()),
        },
    )
}

/// [`ensure_store`] under a central that is created (under the master) when
/// it does not exist yet.
pub fn ensure_store_in(
    db: &Path,
    store_id: &str,
    central: &str,
    token: &str,
) -> Result<(), ServerError> {
    let d = Db::open(db)?;
    d.write(|tx| {
        if nodes::kind_of(tx, central)?.is_none() {
            nodes::upsert_node(
                tx,
                &NewNode {
                    id: central.into(),
                    parent: nodes::MASTER.into(),
                    kind: NodeKind::Central,
                    token: None,
                },
            )?;
        }
        nodes::upsert_node(
            tx,
            &NewNode {
                id: store_id.into(),
                parent: central.into(),
                kind: NodeKind::Store,
                token: Some(token.into()),
            },
        )
    })?;
    Ok(())
}

/// Adds (or updates) any node (a central: `kind: Central`, no token).
pub fn ensure_node(db: &Path, node: &NewNode) -> Result<(), ServerError> {
    let db = Db::open(db)?;
    db.write(|tx| nodes::upsert_node(tx, node))?;
    Ok(())
}

/// Imports JSON lines straight into the database file (one transaction), as
/// `POST /v1/admin/import/{entity}` does.
pub fn import_lines(db: &Path, entity: &str, body: &[u8]) -> Result<Applied, ServerError> {
    let e = import::entity(entity)?;
    let changes = import::parse(e, body)?;
    let db = Db::open(db)?;
    Ok(db.write(|tx| import::apply(tx, e, &changes))?)
}
