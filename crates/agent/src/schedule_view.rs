//! What the status views (`lojad status`, `/status.json`, the status page,
//! `/metrics`) read of the running schedule: per job, its next run, whether
//! it runs now and its consecutive failures. The scheduler writes it; a leaf.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::runtime::lock;

/// Shared between the scheduler (writer) and the status readers. Cheap to clone.
#[derive(Clone, Default)]
pub struct ScheduleView {
    inner: Arc<Mutex<BTreeMap<String, JobSchedule>>>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobSchedule {
    pub code: String,
    pub subject: String,
    pub next_run_at: Option<String>,
    pub running: bool,
    pub consecutive_failures: u32,
    /// `every 10m` or `cron 17 3 * * *`.
    pub schedule: String,
}

impl ScheduleView {
    /// Replaces every job (the scheduler starting).
    pub fn reset(&self, jobs: impl IntoIterator<Item = JobSchedule>) {
        let mut map = lock(&self.inner);
        map.clear();
        map.extend(jobs.into_iter().map(|j| (j.code.clone(), j)));
    }

    /// Changes one job's entry; a code not in the view is ignored.
    pub fn update(&self, code: &str, f: impl FnOnce(&mut JobSchedule)) {
        if let Some(j) = lock(&self.inner).get_mut(code) {
            f(j);
        }
    }

    /// A snapshot, by code.
    pub fn jobs(&self) -> Vec<JobSchedule> {
        lock(&self.inner).values().cloned().collect()
    }
}
