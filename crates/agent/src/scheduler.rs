//! The TaskManager: runs the jobs of `tasks/` on their schedule.
//!
//! One tokio task per job, on plain `tokio::time` timers (cron patterns
//! through `croner`). Not tokio-cron-scheduler: its repeated jobs have an
//! open report of stopping for good under load (its issue #113), and what
//! the store needs — one loop per job that sleeps until the next run, wakes
//! early on a push hint, and backs off after failures — is a `select!` over
//! a sleep and a `Notify`. So:
//!
//! - a job never runs twice at once (its loop awaits the run);
//! - a slow or failing job holds no other (each has its own task; download
//!   jobs share only the page permits and the replica writer, which are held
//!   per page, never across a whole run);
//! - a failed run is retried after a capped exponential backoff with jitter,
//!   never later than the normal schedule;
//! - a wake (push hint, new documents) runs the job at once; while a job
//!   backs off after failures, wakes wait for the backoff, except the
//!   "central is back" signal of the push listener, which ends every backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use loja_replica::{JobRun, Outcome};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::backoff;
use crate::jobs::{JobCtx, run_task};
use crate::schedule_view::JobSchedule;
use crate::tasks::{Direction, Schedule, Task};
use crate::wakers::Wakers;

/// A burst of wakes (a sale per second) coalesces into one run.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The running scheduler.
pub struct TaskManager {
    wakers: Wakers,
    handles: Vec<(String, JoinHandle<()>)>,
}

impl TaskManager {
    /// Starts one loop per active task. Download and upload jobs run once
    /// right away (catching up after the PC was off), then on schedule; the
    /// upload job is also woken by `state.upload_wake`. Jobs stop when
    /// `ctx.stop` turns true.
    pub fn start(ctx: JobCtx, tasks: Vec<Task>) -> TaskManager {
        let active: Vec<Task> = tasks.into_iter().filter(|t| t.active).collect();
        // Failures of the runs before this start count on (the journal has
        // them): the status and the backoff tell the same as before a restart.
        let failed_before: BTreeMap<String, u32> = {
            let journal = crate::runtime::lock(&ctx.state.journal);
            match journal.job_states() {
                Ok(states) => states
                    .into_iter()
                    .map(|s| (s.code, s.consecutive_failures))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: the journal's job states could not be read; failure counts start at 0");
                    BTreeMap::new()
                }
            }
        };
        let mut by_code = BTreeMap::new();
        let mut by_subject = BTreeMap::new();
        for t in &active {
            let notify = if t.direction == Direction::Upload {
                ctx.state.upload_wake.clone()
            } else {
                Arc::new(Notify::new())
            };
            by_code.insert(t.code.clone(), notify);
            if t.direction == Direction::Download {
                by_subject.insert(t.subject.clone(), t.code.clone());
            }
        }
        ctx.state.schedule.reset(active.iter().map(|t| JobSchedule {
            code: t.code.clone(),
            subject: t.subject.clone(),
            schedule: t.schedule.to_string(),
            consecutive_failures: failed_before.get(&t.code).copied().unwrap_or(0),
            ..Default::default()
        }));
        let wakers = Wakers::new(by_code, by_subject);
        let handles = active
            .into_iter()
            .map(|t| {
                let notify = wakers
                    .notifier(&t.code)
                    .unwrap_or_else(|| Arc::new(Notify::new()));
                let back = wakers.back_signal();
                let code = t.code.clone();
                let failures = failed_before.get(&code).copied().unwrap_or(0);
                (
                    code,
                    tokio::spawn(job_loop(ctx.clone(), t, notify, back, failures)),
                )
            })
            .collect();
        TaskManager { wakers, handles }
    }

    pub fn wakers(&self) -> Wakers {
        self.wakers.clone()
    }

    /// Waits for every job loop to end (after `stop` was set): a run in
    /// progress finishes its page or batch. Loops still busy at `deadline`
    /// are aborted (a page transaction is atomic either way; an upload is
    /// idempotent at the central).
    pub async fn join(self, deadline: Instant) {
        for (code, mut handle) in self.handles {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(code = %code, "job still running at shutdown deadline; aborted");
                handle.abort();
            }
        }
    }
}

/// When the next scheduled (not retry) run is due, counted from now.
///
/// A cron job of an hour or longer runs at this store's own place in a
/// window after its time (a quarter of its period, at most 30 minutes; from
/// a hash of the store and the job): a chain's 4,000 stores do not all ask
/// the central for their nightly verify in the same minute.
fn next_due(schedule: &Schedule, place: &str) -> Instant {
    match schedule {
        Schedule::Every(d) => Instant::now() + *d,
        Schedule::Cron(_) => {
            let now = chrono::Local::now();
            match schedule.next_cron_after(now) {
                Some(at) => {
                    let millis = (at - now).num_milliseconds().max(0) as u64;
                    let period = schedule
                        .next_cron_after(at)
                        .and_then(|after| (after - at).to_std().ok())
                        .unwrap_or_default();
                    let window = if period >= Duration::from_secs(3600) {
                        (period / 4).min(CRON_SPREAD)
                    } else {
                        Duration::ZERO
                    };
                    Instant::now()
                        + Duration::from_millis(millis)
                        + crate::backoff::spread(place, window)
                }
                // A pattern with no future match: check again in a day.
                None => Instant::now() + Duration::from_secs(86_400),
            }
        }
    }
}

/// The widest window a cron job's stores are spread over.
const CRON_SPREAD: Duration = Duration::from_secs(30 * 60);

fn rfc3339_at(at: Instant) -> String {
    let ahead = at.saturating_duration_since(Instant::now());
    loja_protocol::time::format(time::OffsetDateTime::now_utc() + ahead)
}

async fn job_loop(
    ctx: JobCtx,
    task: Task,
    notify: Arc<Notify>,
    mut back: watch::Receiver<u64>,
    failed_before: u32,
) {
    let mut stop = ctx.stop.clone();
    let view = ctx.state.schedule.clone();
    // Downloads and the upload run at once when the central switches
    // integration back on (`crate::integration`).
    let mut gated = matches!(task.direction, Direction::Download | Direction::Upload);
    let mut switch = ctx.state.integration.subscribe();
    let mut failures = failed_before;
    let place = format!("{}/{}", ctx.state.config.store.id, task.code);
    let mut next = match (&task.direction, &task.schedule) {
        // Housekeeping and verify wait for their time; a download or the
        // upload runs at start.
        (Direction::Maintenance | Direction::Verify, s) => next_due(s, &place),
        _ => Instant::now(),
    };
    loop {
        let at = rfc3339_at(next);
        view.update(&task.code, |j| j.next_run_at = Some(at));
        let in_backoff = failures > 0;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = notify.notified(), if !in_backoff => {
                tokio::time::sleep(DEBOUNCE).await;
            }
            changed = back.changed() => {
                if changed.is_err() {
                    // The manager is gone; keep to the timer.
                    tokio::time::sleep_until(next).await;
                }
            }
            changed = switch.changed(), if gated => {
                if changed.is_err() {
                    gated = false;
                    continue;
                }
                if !*switch.borrow_and_update() {
                    // Switched off: keep to the timer.
                    continue;
                }
            }
            _ = crate::runtime::stopped(&mut stop) => break,
        }
        if *stop.borrow() {
            break;
        }
        view.update(&task.code, |j| j.running = true);
        let run: JobRun = run_task(&ctx, &task).await;
        failures = if run.outcome == Outcome::Failed {
            failures.saturating_add(1)
        } else {
            0
        };
        view.update(&task.code, |j| {
            j.running = false;
            j.consecutive_failures = failures;
        });
        let scheduled = next_due(&task.schedule, &place);
        next = if failures > 0 {
            (Instant::now() + backoff(failures)).min(scheduled)
        } else {
            scheduled
        };
    }
    view.update(&task.code, |j| {
        j.running = false;
        j.next_run_at = None;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_land_in_the_future() {
        let d = next_due(&Schedule::Cron("*/5 * * * * *".into()), "loja-1/X");
        assert!(d > Instant::now() && d <= Instant::now() + Duration::from_secs(6));
    }

    #[test]
    fn a_nightly_job_runs_at_each_stores_place_within_half_an_hour() {
        let nightly = Schedule::Cron("43 2 * * *".into());
        let due: Vec<Instant> = (0..200)
            .map(|i| next_due(&nightly, &format!("loja-{i:04}/VRF")))
            .collect();
        let base = *due.iter().min().unwrap();
        let places: Vec<Duration> = due.iter().map(|d| d.duration_since(base)).collect();
        assert!(places.iter().all(|p| *p <= CRON_SPREAD), "{places:?}");
        let distinct: std::collections::BTreeSet<u64> =
            places.iter().map(|p| p.as_secs() / 60).collect();
        assert!(
            distinct.len() > 20,
            "200 stores in {} minutes",
            distinct.len()
        );
        // the same store, the same place
        let again = next_due(&nightly, "loja-0007/VRF").saturating_duration_since(base);
        assert!(again.abs_diff(places[7]) < Duration::from_secs(1));
    }
}
