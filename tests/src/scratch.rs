//! Throwaway directories for the end-to-end tests. Every test run makes
//! dozens; on a shared CI disk the ones left behind add up until a later
//! test's lojad answers 507 (disk full), so each is removed when its owner
//! drops it — set `LOJA_KEEP_TEMP=1` to keep them for a post-mortem.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, unique path under the system temp dir (created, empty).
fn unique_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "loja-e2e-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Whether `LOJA_KEEP_TEMP` asks to keep test directories.
fn keep_temp() -> bool {
    std::env::var_os("LOJA_KEEP_TEMP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A fresh directory removed on drop (unless `LOJA_KEEP_TEMP` is set).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> ScratchDir {
        ScratchDir {
            path: unique_dir(prefix),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for ScratchDir {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if keep_temp() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_dir_is_unique_and_gone_after_drop() {
        let a = ScratchDir::new("scratch-test");
        let b = ScratchDir::new("scratch-test");
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("f"), b"x").unwrap();
        let path = a.path().to_path_buf();
        assert!(path.join("f").is_file());
        drop(a);
        if !keep_temp() {
            assert!(!path.exists());
        }
    }
}
