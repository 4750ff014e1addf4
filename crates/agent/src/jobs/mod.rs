//! The jobs the scheduler runs: one generic download job for every registry
//! entity, the upload job, maintenance; and the push listener that wakes
//! download jobs. Every run ends as one [`JobRun`]: one tracing line and one
//! row of the integration log under the task's module code.

pub mod download;
pub mod maintenance;
pub mod push;
pub mod update;
pub mod upload;
pub mod verify;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use loja_protocol::entity_named;
use loja_replica::{JobRun, Outcome};
use tokio::sync::{Semaphore, watch};

use crate::central::Central;
use crate::config::Config;
use crate::runtime::{blocking, lock};
use crate::state::AppState;
use crate::tasks::{Direction, Task};

/// Feed pages in flight (fetched, parsing or applying) across all download
/// jobs of the process: bounds memory during a first full load, when every
/// job has a lot to fetch at once.
pub const PAGES_IN_FLIGHT: usize = 3;

/// Everything a job run needs. Cheap to clone.
#[derive(Clone)]
pub struct JobCtx {
    pub state: AppState,
    pub central: Central,
    /// Permits for feed pages in flight (see [`PAGES_IN_FLIGHT`]).
    pub pages: Arc<Semaphore>,
    /// Becomes `true` when the daemon stops: jobs finish the page or batch
    /// at hand and end.
    pub stop: watch::Receiver<bool>,
}

impl JobCtx {
    pub fn new(state: AppState, stop: watch::Receiver<bool>) -> anyhow::Result<JobCtx> {
        limit_malloc_arenas();
        let central = Central::new(&state.config).context("setting up the central client")?;
        Ok(JobCtx {
            state,
            central,
            pages: Arc::new(Semaphore::new(PAGES_IN_FLIGHT)),
            stop,
        })
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// glibc gives every thread that allocates its own malloc arena (up to 8 per
/// core) and keeps freed memory in each: pages parsed on one blocking thread
/// and freed on another then pile up as RSS. Two arenas keep a first full
/// load's peak RSS near what is really live.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only tunes the allocator; M_ARENA_MAX = -8.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        });
    }
}

/// What a job body reports; the wrapper turns it into a [`JobRun`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub rows: u64,
    pub outcome: Outcome,
    pub message: Option<String>,
}

impl JobResult {
    pub fn ok(rows: u64) -> JobResult {
        JobResult {
            rows,
            outcome: Outcome::Ok,
            message: None,
        }
    }
    pub fn failed(rows: u64, message: impl Into<String>) -> JobResult {
        JobResult {
            rows,
            outcome: Outcome::Failed,
            message: Some(message.into()),
        }
    }
}

pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Disabled => "disabled",
        Outcome::Held => "held",
    }
}

/// One run of a task: checks its integration switch, runs the body (or
/// not, when switched off), logs one line and one integration-log row.
pub async fn run_task(ctx: &JobCtx, task: &Task) -> JobRun {
    let started_at = loja_protocol::time::now_rfc3339();
    let t0 = Instant::now();
    let journal = ctx.state.journal.clone();
    let code = task.code.clone();
    let enabled = match blocking(move || lock(&journal).is_enabled(&code)).await {
        Ok(Ok(on)) => on,
        Ok(Err(e)) => {
            tracing::warn!(code = %task.code, error = %e, "cannot read the integration switch; running the job");
            true
        }
        Err(e) => {
            tracing::warn!(code = %task.code, error = %e, "cannot read the integration switch; running the job");
            true
        }
    };
    let result = if !enabled {
        JobResult {
            rows: 0,
            outcome: Outcome::Disabled,
            message: Some("integration switch is off".into()),
        }
    } else if stopped_by_central(ctx, task) {
        JobResult {
            rows: 0,
            outcome: Outcome::Disabled,
            message: Some(OFF_BY_CENTRAL.into()),
        }
    } else {
        match task.direction {
            Direction::Download => match entity_named(&task.subject) {
                Some(entity) => download::run(ctx, entity).await,
                None => JobResult::failed(0, format!("{} is not a registry entity", task.subject)),
            },
            Direction::Upload => upload::run(ctx).await,
            Direction::Maintenance => maintenance::run(ctx).await,
            Direction::Verify => verify::run(ctx, &task.subject).await,
            Direction::Update => update::run(ctx).await,
        }
    };
    if task.direction == Direction::Download && task.subject == "parameters" {
        refresh_switch(ctx).await;
    }
    if task.direction == Direction::Upload {
        note_backlog(ctx).await;
    }
    record_run(ctx, &task.code, &task.subject, started_at, t0, result).await
}

/// What a run skipped by the central's switch logs.
pub const OFF_BY_CENTRAL: &str = "integration switched off by the central (interface_integracao_ativo); documents wait in the outbox";

/// The central's integration switch (`crate::integration`) is off and this
/// task is a download or the upload. The `parameters` download always
/// runs: it is how the store hears the switch come back on.
pub fn stopped_by_central(ctx: &JobCtx, task: &Task) -> bool {
    let gated = match task.direction {
        Direction::Download => task.subject != "parameters",
        Direction::Upload => true,
        Direction::Maintenance | Direction::Verify | Direction::Update => false,
    };
    gated && !ctx.state.integration.is_on()
}

/// After an upload run (done or skipped): the outbox's backlog, which the
/// central client reports on its next requests (`Loja-Outbox`).
async fn note_backlog(ctx: &JobCtx) {
    match ctx.state.intake.with_outbox(|o| o.stats()).await {
        Ok(Ok(stats)) => ctx.central.report_backlog(stats.pending, stats.failed),
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot count the outbox backlog"),
        Err(e) => tracing::debug!(error = %e, "cannot count the outbox backlog"),
    }
}

/// Re-reads the switch after a `parameters` download (the writer lock is
/// free again by then).
async fn refresh_switch(ctx: &JobCtx) {
    let catalog = ctx.state.catalog.clone();
    let switch = ctx.state.integration.clone();
    match blocking(move || switch.refresh(&lock(&catalog))).await {
        Ok(Ok(Some(true))) => {
            tracing::info!("integration switched on by the central: downloads and uploads resume")
        }
        Ok(Ok(Some(false))) => tracing::warn!(
            "integration switched off by the central: scheduled downloads and uploads stop; documents wait in the outbox"
        ),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the integration switch"),
        Err(e) => tracing::warn!(error = %e, "cannot read the integration switch"),
    }
}

/// Ends a job run: its one tracing line and its integration-log row.
pub async fn record_run(
    ctx: &JobCtx,
    code: &str,
    subject: &str,
    started_at: String,
    t0: Instant,
    result: JobResult,
) -> JobRun {
    let run = JobRun {
        code: code.to_owned(),
        subject: subject.to_owned(),
        started_at,
        duration_ms: t0.elapsed().as_millis() as u64,
        rows: result.rows,
        outcome: result.outcome,
        message: result.message,
    };
    let message = run.message.as_deref().unwrap_or("");
    match run.outcome {
        Outcome::Failed => tracing::warn!(
            code = %run.code, subject = %run.subject, rows = run.rows, duration_ms = run.duration_ms,
            outcome = outcome_str(run.outcome), message, "job run"
        ),
        _ => tracing::info!(
            code = %run.code, subject = %run.subject, rows = run.rows, duration_ms = run.duration_ms,
            outcome = outcome_str(run.outcome), message, "job run"
        ),
    }
    let journal = ctx.state.journal.clone();
    let logged = run.clone();
    match blocking(move || lock(&journal).log_run(&logged)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(code = %run.code, error = %e, "cannot write the integration log")
        }
        Err(e) => tracing::warn!(code = %run.code, error = %e, "cannot write the integration log"),
    }
    run
}
