//! What replica verify found, per entity, and its counters since the daemon
//! started (`lojad_verify_*` in `/metrics`). The verify job writes them,
//! `/metrics` reads them through the app state; a leaf.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::runtime::lock;

/// What verifying one entity found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EntityCheck {
    pub entity: &'static str,
    /// Rows compared (the central's count for this store).
    pub rows: u64,
    pub buckets: u32,
    /// Buckets whose digests differed.
    pub differing: u32,
    pub upserts: u64,
    pub deletes: u64,
    /// Rows written at the store that the central does not have yet.
    pub kept_local: u64,
    /// Why it could not be compared, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EntityCheck {
    pub fn repaired(&self) -> u64 {
        self.upserts + self.deletes
    }
}

/// Counters for `/metrics` since the daemon started.
#[derive(Debug, Default)]
pub struct VerifyStats {
    inner: Mutex<BTreeMap<&'static str, EntityCounters>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EntityCounters {
    pub checks: u64,
    pub failures: u64,
    pub drifted_buckets: u64,
    pub repaired_rows: u64,
}

impl VerifyStats {
    pub fn record(&self, c: &EntityCheck) {
        let mut m = lock(&self.inner);
        let e = m.entry(c.entity).or_default();
        e.checks += 1;
        e.failures += u64::from(c.error.is_some());
        e.drifted_buckets += u64::from(c.differing);
        e.repaired_rows += c.repaired();
    }

    pub fn snapshot(&self) -> Vec<(&'static str, EntityCounters)> {
        lock(&self.inner).iter().map(|(k, v)| (*k, *v)).collect()
    }
}
