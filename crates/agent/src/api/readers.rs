//! The POS API's read connections to `replica.db`: a pool of
//! [`CatalogReader`]s, opened lazily, one checked out per request. WAL lets
//! them all read while a download job applies a page through the writer, and
//! a reader never sees half a page.
//!
//! Two ways to run the query, chosen at router construction
//! ([`ReadMode`]): on the request's own tokio worker (`Inline`, the
//! default: the point queries take microseconds, less than the hand-off to
//! the blocking pool costs) or on tokio's blocking pool (`Blocking`). The
//! choice is measured by `pos-bench`; see docs/pos-api.md.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loja_replica::{CatalogReader, ReplicaError};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// Where a read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// On the request's tokio worker thread.
    Inline,
    /// On tokio's blocking pool (`spawn_blocking`).
    Blocking,
}

impl ReadMode {
    /// `LOJAD_POS_READS=inline|blocking` overrides the default (`Inline`).
    pub fn from_env() -> ReadMode {
        match std::env::var("LOJAD_POS_READS").as_deref() {
            Ok("blocking") => ReadMode::Blocking,
            _ => ReadMode::Inline,
        }
    }
}

/// A pool of replica readers; cheap to clone.
#[derive(Clone)]
pub struct ReaderPool {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    idle: Mutex<Vec<CatalogReader>>,
    /// Bounds the open connections (and so the blocking threads reading).
    permits: Semaphore,
    mode: ReadMode,
}

impl ReaderPool {
    /// `max` connections at most, opened on first use.
    pub fn new(dir: PathBuf, max: usize, mode: ReadMode) -> ReaderPool {
        ReaderPool {
            inner: Arc::new(Inner {
                dir,
                idle: Mutex::new(Vec::with_capacity(max)),
                permits: Semaphore::new(max.max(1)),
                mode,
            }),
        }
    }

    pub fn mode(&self) -> ReadMode {
        self.inner.mode
    }

    /// Runs `f` with a reader. A reader whose query failed is dropped, not
    /// returned to the pool (its connection may be broken).
    pub async fn run<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&CatalogReader) -> Result<R, ReplicaError> + Send + 'static,
    {
        let _permit = self.inner.permits.acquire().await.map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the reader pool is closed",
            )
        })?;
        match self.inner.mode {
            ReadMode::Inline => {
                let reader = self.checkout()?;
                let result = f(&reader);
                self.give_back(reader, result.is_ok());
                result.map_err(|e| ApiError::replica(&e))
            }
            ReadMode::Blocking => {
                let pool = self.clone();
                tokio::task::spawn_blocking(move || {
                    let reader = pool.checkout()?;
                    let result = f(&reader);
                    pool.give_back(reader, result.is_ok());
                    result.map_err(|e| ApiError::replica(&e))
                })
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("replica read task failed: {e}"),
                    )
                })?
            }
        }
    }

    fn checkout(&self) -> Result<CatalogReader, ApiError> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        match idle {
            Some(r) => Ok(r),
            None => CatalogReader::open(&self.inner.dir).map_err(|e| ApiError::replica(&e)),
        }
    }

    fn give_back(&self, reader: CatalogReader, healthy: bool) {
        if healthy {
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(reader);
        }
    }
}
