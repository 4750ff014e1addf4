//! The TaskManager: runs the jobs of `tasks/` on their schedule.

/// What the status views read of the schedule: per job, next run and
/// whether it is running now. Filled by the scheduler.
#[derive(Clone, Default)]
pub struct ScheduleView {
    pub inner: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, JobSchedule>>>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobSchedule {
    pub code: String,
    pub subject: String,
    pub next_run_at: Option<String>,
    pub running: bool,
    pub consecutive_failures: u32,
}
