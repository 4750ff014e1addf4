//! The jobs the scheduler runs: one generic download job for every registry
//! entity, the upload job, maintenance; and the push listener that wakes
//! download jobs. Every run ends as one [`JobRun`]: one tracing line and one
//! row of the integration log under the task's module code.

pub mod download;
pub mod maintenance;
pub mod push;
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

/// Runs blocking work (SQLite) off the async workers; a panic becomes an error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("database worker failed: {e}"))
}

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let seen = stop.wait_for(|s| *s).await.is_ok();
    if !seen {
        std::future::pending::<()>().await;
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
    } else {
        match task.direction {
            Direction::Download => match entity_named(&task.subject) {
                Some(entity) => download::run(ctx, entity).await,
                None => JobResult::failed(0, format!("{} is not a registry entity", task.subject)),
            },
            Direction::Upload => upload::run(ctx).await,
            Direction::Maintenance => maintenance::run(ctx).await,
            Direction::Verify => verify::run(ctx, &task.subject).await,
        }
    };
    record_run(ctx, &task.code, &task.subject, started_at, t0, result).await
}

/// Ends a job run: its one tracing line and its integration-log row.
async fn record_run(
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

async fn open_ctx(config: &Config) -> anyhow::Result<(JobCtx, watch::Sender<bool>)> {
    let config = config.clone();
    let dir = config.store.data_dir.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(config))
        .await
        .context("opening the data dir")?
        .with_context(|| format!("opening the data dir {}", dir.display()))?;
    let (stop_tx, stop) = watch::channel(false);
    Ok((JobCtx::new(state, stop)?, stop_tx))
}

/// The task of `code`/`subject` from the task files, or a default one.
fn task_for(tasks: &[Task], direction: Direction, subject: &str, fallback_code: &str) -> Task {
    tasks
        .iter()
        .find(|t| t.direction == direction && t.subject == subject)
        .cloned()
        .unwrap_or_else(|| Task {
            code: fallback_code.to_owned(),
            subject: subject.to_owned(),
            direction,
            schedule: crate::tasks::Schedule::Every(std::time::Duration::from_secs(600)),
            active: true,
            source: "built-in".into(),
        })
}

/// `lojad sync [ENTITY…]`: runs the download job of each entity once (all
/// entities, registry order, when `entities` is empty), each until its feed
/// says `more: false`. Unknown entity names are an error before anything runs.
pub async fn sync_once(config: &Config, entities: &[String]) -> anyhow::Result<Vec<JobRun>> {
    let chosen: Vec<&'static loja_protocol::Entity> = if entities.is_empty() {
        loja_protocol::ENTITIES.iter().collect()
    } else {
        entities
            .iter()
            .map(|name| {
                entity_named(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown entity {name:?}; known: {}",
                        loja_protocol::ENTITIES
                            .iter()
                            .map(|e| e.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let tasks = crate::tasks::load(config)?;
    let (ctx, _stop) = open_ctx(config).await?;
    // Entities download side by side, as the daemon's jobs do: while one
    // entity's page is applied, another's is fetched, so neither the central
    // nor the replica writer waits on the other. Pages in flight stay bounded
    // by the shared `ctx.pages` permits (memory), applies by the writer lock.
    let mut pending = chosen.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut runs: Vec<Option<JobRun>> = Vec::new();
    loop {
        while running.len() < SYNC_ONCE_PARALLEL {
            let Some((i, entity)) = pending.next() else {
                break;
            };
            let task = task_for(&tasks, Direction::Download, entity.name, entity.code);
            let ctx = ctx.clone();
            running.spawn(async move { (i, run_task(&ctx, &task).await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (i, run) = done.context("a download job panicked")?;
        if runs.len() <= i {
            runs.resize(i + 1, None);
        }
        runs[i] = Some(run);
    }
    Ok(runs.into_iter().flatten().collect())
}

/// Download jobs `lojad sync` runs at once.
const SYNC_ONCE_PARALLEL: usize = 3;

/// `lojad verify [ENTITY…]`: compares the replica with the central's view
/// and repairs what drifted, entity by entity (every entity but the secret
/// one when `entities` is empty); one integration-log row for the run.
pub async fn verify_once(
    config: &Config,
    entities: &[String],
) -> anyhow::Result<(JobRun, Vec<verify::EntityCheck>)> {
    let mut chosen = Vec::new();
    for name in entities {
        let found = verify::entities_of(name);
        if found.is_empty() || name == "all" {
            anyhow::bail!(
                "cannot verify {name:?}; known: {}",
                verify::entities_of("all")
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        chosen.extend(found);
    }
    if chosen.is_empty() {
        chosen = verify::entities_of("all");
    }
    let tasks = crate::tasks::load(config)?;
    let (ctx, _stop) = open_ctx(config).await?;
    let task = task_for(&tasks, Direction::Verify, "all", "VRF");
    let started_at = loja_protocol::time::now_rfc3339();
    let t0 = Instant::now();
    let checks = verify::verify_all(&ctx, &chosen).await;
    let subject = if entities.is_empty() {
        "all".to_owned()
    } else {
        entities.join(",")
    };
    let run = record_run(
        &ctx,
        &task.code,
        &subject,
        started_at,
        t0,
        verify::summarize(&checks),
    )
    .await;
    Ok((run, checks))
}

/// `lojad upload`: drains the outbox once (until nothing is pending, or a
/// transient failure ends the run).
pub async fn upload_once(config: &Config) -> anyhow::Result<JobRun> {
    let tasks = crate::tasks::load(config)?;
    let (ctx, _stop) = open_ctx(config).await?;
    let task = task_for(&tasks, Direction::Upload, "documents", "UPL");
    Ok(run_task(&ctx, &task).await)
}
