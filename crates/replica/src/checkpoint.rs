//! WAL checkpoints off the writer's commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold: the writer copies the WAL into the file (and fsyncs it) before
//! its commit returns. For the outbox that is the tail of a sale's latency;
//! for the replica it is time the one writer spends not applying pages.
//! A [`Checkpointer`] does it instead, PASSIVE (never blocking the writer
//! or readers), from a connection and a thread of its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::SqlCtx;
use crate::migrate::{self, Sync};
use crate::{ReplicaError, Result};

/// How often the checkpointer runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A thread checkpointing one database's WAL every [`CHECKPOINT_EVERY`]
/// until dropped; the drop runs a last checkpoint and waits for it, so a
/// clean stop leaves a short WAL.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already created and in
    /// WAL mode). The caller turns its writer's automatic checkpoints off.
    pub fn start(path: &Path, name: &str) -> Result<Checkpointer> {
        let conn = migrate::open_rw(path, Sync::Normal)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let file = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-checkpoint"))
            .spawn(move || run(conn, file, stopped))
            .map_err(|e| ReplicaError::io(path, e))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Turns off `conn`'s automatic checkpoints and starts a [`Checkpointer`]
/// in `slot` instead (once): what the long-lived writers'
/// `defer_checkpoints` do.
pub(crate) fn defer(
    conn: &rusqlite::Connection,
    path: &Path,
    name: &str,
    slot: &mut Option<Checkpointer>,
) -> Result<()> {
    if slot.is_none() {
        *slot = Some(Checkpointer::start(path, name)?);
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .ctx(path, "disable auto-checkpoint")?;
    }
    Ok(())
}

fn run(conn: rusqlite::Connection, path: PathBuf, stopped: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = checkpoint(&conn, &path) {
            tracing::warn!(error = %e, "checkpoint failed; will retry");
        }
    }
    let _ = checkpoint(&conn, &path);
}

/// A PASSIVE checkpoint; the WAL's size in frames.
pub(crate) fn checkpoint(conn: &rusqlite::Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .ctx(path, "checkpoint")
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::{ent, page, up};
    use serde_json::json;

    #[test]
    fn the_checkpointer_copies_the_wal_into_the_file_while_the_writer_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("replica.db");
        let mut c = crate::Catalog::open(dir.path()).unwrap();
        c.defer_checkpoints().unwrap();
        let before = std::fs::metadata(&db).unwrap().len();
        let mut after = 0;
        for _ in 0..20 {
            let items = (0..1000)
                .map(|i| up(json!({"product_code": format!("{:09}", after + i), "qty": i})))
                .collect();
            c.apply_page(ent("stock"), &page("stock", after, items))
                .unwrap();
            after += 1000;
        }
        // The writer never checkpoints now, so the rows are only in the
        // WAL until the checkpointer copies them into replica.db.
        let deadline = std::time::Instant::now() + CHECKPOINT_EVERY * 40;
        let mut size = before;
        while size < before + 200 * 1024 && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_EVERY / 5);
            size = std::fs::metadata(&db).unwrap().len();
        }
        assert!(
            size >= before + 200 * 1024,
            "replica.db did not grow past {before} bytes: {size}"
        );
        let r = crate::CatalogReader::open(dir.path()).unwrap();
        assert_eq!(r.list("stock", None, 0).unwrap().len(), 10_000);
    }
}
