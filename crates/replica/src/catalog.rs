//! The catalog replica (`replica.db`): typed entity tables and watermarks.

use std::path::Path;

use loja_protocol::{Entity, FeedPage, Watermark};
use serde_json::{Map, Value};

use crate::Result;

/// What one applied page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    pub upserts: u64,
    pub deletes: u64,
    /// The entity's watermark after the page (committed with it).
    pub watermark: Watermark,
}

/// The writer side of `replica.db`. One per process (sync jobs share it
/// behind a mutex); the POS reads through [`CatalogReader`]s.
pub struct Catalog {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) dir: std::path::PathBuf,
}

impl Catalog {
    /// Opens (creating and migrating) `DIR/replica.db`; WAL, synchronous=NORMAL
    /// (a power cut may lose the last page *and* its watermark together,
    /// never one without the other).
    pub fn open(dir: &Path) -> Result<Catalog> {
        let _ = dir;
        todo!("replica: Catalog::open")
    }

    pub fn watermark(&self, entity: &Entity) -> Result<Watermark> {
        let _ = entity;
        todo!("replica: Catalog::watermark")
    }

    /// Every entity's watermark, registry order.
    pub fn watermarks(&self) -> Result<Vec<(&'static str, Watermark)>> {
        todo!("replica: Catalog::watermarks")
    }

    /// Validates `page` (against the registry and the stored watermark, which
    /// must equal `page.after`) and applies it with its watermark in one
    /// transaction. On any error nothing is applied. Rows of a secret entity
    /// go to `DIR/secrets/<entity>.json` (mode 0600), not to a table.
    pub fn apply_page(&mut self, entity: &Entity, page: &FeedPage) -> Result<Applied> {
        let _ = (entity, page);
        todo!("replica: Catalog::apply_page")
    }

    /// A row written by this store ahead of the central (a customer signed
    /// up at the POS), so the POS finds it at once; the central's version
    /// replaces it when it arrives. Validated like a feed row.
    pub fn upsert_local(&mut self, entity: &Entity, row: &Map<String, Value>) -> Result<()> {
        let _ = (entity, row);
        todo!("replica: Catalog::upsert_local")
    }

    /// Rows per entity (secret entities count their file's rows), registry order.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        todo!("replica: Catalog::row_counts")
    }

    /// `PRAGMA integrity_check` of replica.db: `Ok(vec![])` when healthy, else the messages.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        todo!("replica: Catalog::integrity_check")
    }
}

/// A read-only connection to `replica.db` for the POS API (one per worker;
/// WAL lets any number read while a page applies, and a reader never sees
/// half a page). Query methods are in `queries.rs`.
pub struct CatalogReader {
    pub(crate) conn: rusqlite::Connection,
}

impl CatalogReader {
    pub fn open(dir: &Path) -> Result<CatalogReader> {
        let _ = dir;
        todo!("replica: CatalogReader::open")
    }
}
