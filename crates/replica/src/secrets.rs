//! Rows of secret entities (the store certificate): never in a table, kept
//! in `DIR/secrets/<entity>.json` (mode 0600, directory 0700), a JSON object
//! from the row's key text to the row, replaced atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{ReplicaError, Result};

pub(crate) fn file_of(dir: &Path, entity: &str) -> PathBuf {
    dir.join("secrets").join(format!("{entity}.json"))
}

/// The rows, by key text; empty when there is no file yet.
pub(crate) fn load(dir: &Path, entity: &str) -> Result<Map<String, Value>> {
    let path = file_of(dir, entity);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(ReplicaError::io(&path, e)),
    };
    // Never echo the content: it is secret.
    serde_json::from_slice(&bytes)
        .map_err(|_| ReplicaError::corrupt(&path, "secret rows file (not a JSON object)"))
}

/// Writes the rows: a temporary file (0600) fsync'd, renamed over the old
/// one, and the directory fsync'd.
pub(crate) fn store(dir: &Path, entity: &str, rows: &Map<String, Value>) -> Result<()> {
    let path = file_of(dir, entity);
    let sdir = dir.join("secrets");
    create_private_dir(&sdir)?;
    let tmp = sdir.join(format!(".{entity}.json.tmp"));
    let bytes = serde_json::to_vec(rows).map_err(|e| ReplicaError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    let write = || -> std::io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // An older tmp file keeps its mode through open(); set it again.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        #[cfg(unix)]
        fs::File::open(&sdir)?.sync_all()?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ReplicaError::io(&path, e)
    })
}

fn create_private_dir(sdir: &Path) -> Result<()> {
    if sdir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(sdir).map_err(|e| ReplicaError::io(sdir, e))
}
