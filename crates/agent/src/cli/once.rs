//! Running a job once outside the daemon (`sync`, `verify`, `upload`, and
//! the demo's first sync): the data dir opened as the daemon opens it, the
//! same job bodies, the runs turned into a table and an exit code.

use std::time::Instant;

use anyhow::Context as _;
use loja_protocol::entity_named;
use loja_replica::JobRun;
use tokio::sync::watch;

use super::common::{CliResult, exit, print_json};
use crate::config::Config;
use crate::jobs::{self, JobCtx, run_task, verify};
use crate::state::AppState;
use crate::tasks::{Direction, Task};

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
) -> anyhow::Result<(JobRun, Vec<crate::verify_stats::EntityCheck>)> {
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
    let run = jobs::record_run(
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

pub fn report_runs(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    runs: &[loja_replica::JobRun],
    json: bool,
) -> CliResult {
    if json {
        print_json(&runs)?;
    } else {
        println!(
            "{:<5} {:<22} {:<9} {:>9} {:>8}  message",
            "code", "subject", "outcome", "rows", "ms"
        );
        for r in runs {
            println!(
                "{:<5} {:<22} {:<9} {:>9} {:>8}  {}",
                r.code,
                r.subject,
                jobs::outcome_str(r.outcome),
                r.rows,
                r.duration_ms,
                r.message.as_deref().unwrap_or("")
            );
        }
    }
    report_runs_exit(rt, config, runs)
}

/// The exit code of a CLI run of jobs: OK, FAILED, or UNREACHABLE when a
/// job failed and the central does not answer.
pub fn report_runs_exit(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    runs: &[loja_replica::JobRun],
) -> CliResult {
    use loja_replica::Outcome;
    let failed = runs.iter().filter(|r| r.outcome == Outcome::Failed).count();
    if failed == 0 {
        return Ok(exit::OK);
    }
    if let Err(why) = rt.block_on(central_reachable(config)) {
        eprintln!(
            "lojad: {failed} job(s) failed: the central at {} is unreachable ({why}); \
             `lojad doctor` checks the network, TLS and clock",
            config.central.url
        );
        return Ok(exit::UNREACHABLE);
    }
    eprintln!("lojad: {failed} job(s) failed (see `lojad log --failed`)");
    Ok(exit::FAILED)
}

/// Is the central reachable at all (for the exit code of a failed sync)?
/// Probes the central's health endpoint; the error says why it cannot be
/// reached (refused, timeout, TLS: the certificate's issuer is unknown…),
/// with the whole cause chain, so the technician sees what to fix.
async fn central_reachable(config: &Config) -> Result<(), String> {
    let client = crate::doctor::http_client(config).map_err(|e| format!("{e:#}"))?;
    let url = format!("{}/v1/health", config.central.url.trim_end_matches('/'));
    match client.get(url).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(why)
        }
    }
}
