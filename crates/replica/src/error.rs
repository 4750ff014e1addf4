use std::path::{Path, PathBuf};

use loja_protocol::{FieldError, PageError};
use rusqlite::ErrorCode;

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
    #[error(
        "disk full writing {path}: nothing was written, the outbox is intact; free space and retry"
    )]
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
    /// A document id already stored with another kind or body: not a retry
    /// of that document but a second one under its id. Nothing stored.
    #[error(
        "id {id} is taken by a different {kind} (store_seq {store_seq}): a retry must send the same body; a new document needs a new id"
    )]
    IdTaken {
        id: String,
        kind: String,
        store_seq: u64,
    },
    /// Migrations in the file are newer than this binary knows.
    #[error("{path} has schema version {found}, this lojad knows up to {known}: upgrade lojad")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// Stored data this binary cannot read back (a damaged file, or a value
    /// written by something else).
    #[error("{path}: corrupt {what}")]
    Corrupt { path: PathBuf, what: String },
}

impl ReplicaError {
    /// Maps a SQLite error on `path`: a full disk and a read-only file get
    /// their own variants (callers branch on them); the rest keep `what`.
    pub(crate) fn sqlite(path: &Path, what: &str, source: rusqlite::Error) -> ReplicaError {
        if let rusqlite::Error::SqliteFailure(f, _) = &source {
            match f.code {
                ErrorCode::DiskFull => {
                    return ReplicaError::DiskFull {
                        path: path.to_path_buf(),
                    };
                }
                ErrorCode::ReadOnly => {
                    return ReplicaError::ReadOnly {
                        path: path.to_path_buf(),
                    };
                }
                _ => {}
            }
        }
        ReplicaError::Sqlite {
            context: format!("{}: {what}", path.display()),
            source,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> ReplicaError {
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ReplicaError::DiskFull {
                    path: path.to_path_buf(),
                }
            }
            std::io::ErrorKind::ReadOnlyFilesystem => ReplicaError::ReadOnly {
                path: path.to_path_buf(),
            },
            _ => ReplicaError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    pub(crate) fn corrupt(path: &Path, what: impl Into<String>) -> ReplicaError {
        ReplicaError::Corrupt {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// `.ctx(path, "what")` on rusqlite results.
pub(crate) trait SqlCtx<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T, ReplicaError>;
    fn ctx_with(self, path: &Path, what: impl FnOnce() -> String) -> Result<T, ReplicaError>;
}

impl<T> SqlCtx<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T, ReplicaError> {
        self.map_err(|e| ReplicaError::sqlite(path, what, e))
    }
    fn ctx_with(self, path: &Path, what: impl FnOnce() -> String) -> Result<T, ReplicaError> {
        self.map_err(|e| ReplicaError::sqlite(path, &what(), e))
    }
}
