//! The POS API's read connections to `replica.db`: a pool of
//! [`CatalogReader`]s, opened lazily, one checked out per request. WAL lets
//! them all read while a download job applies a page through the writer, and
//! a reader never sees half a page.
//!
//! Each reader keeps its read snapshot between requests until this process
//! commits to the replica or it is [`SNAPSHOT_MAX_AGE`] old
//! ([`CatalogReader::refresh_snapshot`]): no lock round trip per query. A
//! sweeper thread ends the snapshots of idle readers once they are stale,
//! so a quiet POS never keeps the WAL from being reset during a sync.
//!
//! Two ways to run the query, chosen at router construction
//! ([`ReadMode`]): on the request's own tokio worker (`Inline`, the
//! default: the point queries take microseconds, less than the hand-off to
//! the blocking pool costs) or on tokio's blocking pool (`Blocking`). The
//! choice is measured by `pos-bench`; see docs/pos-api.md.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use loja_replica::{CatalogReader, ReplicaError, SNAPSHOT_MAX_AGE};
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
    /// `LOJAD_READ_MODE=inline|blocking` overrides the default (`Inline`).
    /// Not `LOJAD_POS_…`: every `LOJAD_<SECTION>_<KEY>` variable is a config
    /// override, and `[pos]` has no `reads` key (the config would refuse it).
    pub fn from_env() -> ReadMode {
        match std::env::var("LOJAD_READ_MODE").as_deref() {
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
        let inner = Arc::new(Inner {
            dir,
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Semaphore::new(max.max(1)),
            mode,
        });
        let weak = Arc::downgrade(&inner);
        // A plain thread: the pool is also built outside any runtime (tests,
        // benches). It ends when the pool is dropped.
        if let Err(e) = std::thread::Builder::new()
            .name("pos-reader-sweep".into())
            .spawn(move || sweep(weak))
        {
            tracing::warn!(error = %e, "could not start the POS reader sweeper; idle readers release their snapshot when next used");
        }
        ReaderPool { inner }
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
            ReadMode::Inline => self.read_now(f),
            ReadMode::Blocking => {
                let pool = self.clone();
                tokio::task::spawn_blocking(move || pool.read_now(f))
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

    /// Runs `f` on a reader, on this thread, in the reader's kept snapshot.
    fn read_now<R>(
        &self,
        f: impl FnOnce(&CatalogReader) -> Result<R, ReplicaError>,
    ) -> Result<R, ApiError> {
        let reader = self.checkout()?;
        let result = reader.refresh_snapshot().and_then(|()| f(&reader));
        self.give_back(reader, result.is_ok());
        result.map_err(|e| ApiError::replica(&e))
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

    /// Ends the stale snapshots of the readers not in use now.
    fn end_stale_snapshots(&self) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        // A reader that cannot end its snapshot is closed (dropping the
        // connection ends it).
        idle.retain(|r| r.end_stale_snapshot().is_ok());
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

/// Every half [`SNAPSHOT_MAX_AGE`]: a snapshot outlives its staleness by that at most.
fn sweep(pool: Weak<Inner>) {
    let every = SNAPSHOT_MAX_AGE / 2;
    loop {
        std::thread::sleep(every.max(Duration::from_millis(10)));
        let Some(inner) = pool.upgrade() else {
            return;
        };
        ReaderPool { inner }.end_stale_snapshots();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_reader_keeps_its_snapshot_only_while_it_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        drop(loja_replica::Catalog::open(dir.path()).unwrap());
        let pool = ReaderPool::new(dir.path().to_path_buf(), 2, ReadMode::Inline);
        pool.run(|r| r.parameters()).await.unwrap();
        let holds = |pool: &ReaderPool| {
            pool.inner
                .idle
                .lock()
                .unwrap()
                .iter()
                .any(CatalogReader::holds_snapshot)
        };
        assert!(holds(&pool), "the snapshot is kept for the next request");
        // The sweeper ends it once it is stale, though no request comes.
        let deadline = std::time::Instant::now() + SNAPSHOT_MAX_AGE * 50;
        while holds(&pool) && std::time::Instant::now() < deadline {
            tokio::time::sleep(SNAPSHOT_MAX_AGE / 4).await;
        }
        assert!(!holds(&pool), "an idle reader let its snapshot go");
    }
}
