use std::path::PathBuf;

use loja_protocol::{FieldError, PageError};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The disk (or the data dir's quota) is full; nothing was written.
    #[error("disk full writing {path}: nothing was written, the outbox is intact; free space and retry")]
    DiskFull { path: PathBuf },
    /// The data dir is read-only; nothing was written.
    #[error("{path} is read-only: nothing was written; check the data dir's permissions and mount")]
    ReadOnly { path: PathBuf },
    /// A feed page refused whole; nothing applied, the watermark did not move.
    #[error("feed page for {entity} rejected: {source}")]
    Page {
        entity: String,
        #[source]
        source: PageError,
    },
    /// A document or row that fails validation; names the field.
    #[error("invalid {0}")]
    Invalid(#[from] FieldError),
    /// Migrations in the file are newer than this binary knows.
    #[error("{path} has schema version {found}, this lojad knows up to {known}: upgrade lojad")]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },
}
