//! Sync health, one report for every view of it: `GET /v1/status`, the
//! status page (`/`, `/status.json`), `/metrics` and `lojad status`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use loja_replica::{
    Catalog, FailedDocument, JobState, Journal, Outbox, OutboxStats, ReplicaError, TicketFilter,
    TicketSummary,
};
use serde::Serialize;

use crate::config::Config;
use crate::state::AppState;

/// The whole report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    /// lojad's version.
    pub version: String,
    pub store_id: String,
    /// When this report was taken (RFC 3339, UTC).
    pub generated_at: String,
    /// `daemon` (the running service's view) or `files` (read from the data
    /// dir by `lojad status`; the daemon may or may not be running).
    pub source: String,
    /// Seconds since the daemon started (daemon view only).
    pub uptime_secs: Option<u64>,
    /// The central's integration switch (InterfaceIntegracao `Ativo`, the
    /// `parameters` row `interface_integracao_ativo`): while false the
    /// scheduled downloads and uploads wait (documents stay in the outbox,
    /// the POS keeps selling from the replica).
    pub integration_on: bool,
    /// One row per job (task), by code.
    pub jobs: Vec<JobStatus>,
    pub outbox: OutboxStats,
    /// The first few documents parked as rejected by the central (oldest
    /// first, `outbox.failed` counts them all), each with the central's reason.
    pub parked_documents: Vec<ParkedDocument>,
    /// The last cash closes and Redução Z, reconciled against the register's
    /// own documents (newest first): a close's cash surplus or shortfall, a
    /// Z's difference from the day's sales.
    pub cash_checks: Vec<CashCheck>,
    /// Omni order lines waiting on the store longer than `[omni]
    /// stuck_minutes` (accepted and not picked, ready and not collected…).
    #[schema(value_type = Vec<Object>)]
    pub stuck_omni_lines: Vec<loja_replica::omni_local::StuckLine>,
    /// Failed exchanges with the central (tickets) in the last 24 hours.
    pub failed_tickets: u64,
    /// The last few of them, newest first.
    pub recent_failed_tickets: Vec<FailedTicket>,
    /// Rows per replica entity, registry order.
    pub replica_counts: Vec<ReplicaCount>,
    /// When the counts were taken: older than the report while a download
    /// job holds the replica writer.
    pub replica_counts_at: Option<String>,
    /// What could not be read this time (the report is partial).
    pub warnings: Vec<String>,
    /// Automatic updates: the running version, channel, pending release,
    /// a switch in progress (docs/update.md).
    #[schema(value_type = Object)]
    pub update: crate::release::UpdateView,
}

/// One job's switch, last run and next run.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    /// Module code, e.g. `PRC`.
    pub code: String,
    /// Entity (download jobs), `documents` (upload) or `maintenance`.
    pub subject: String,
    /// The integration switch.
    pub enabled: bool,
    pub last_run_at: Option<String>,
    /// `ok`, `failed`, `disabled` or `held`.
    pub last_outcome: Option<String>,
    pub last_rows: Option<u64>,
    pub last_duration_ms: Option<u64>,
    pub last_message: Option<String>,
    pub last_ok_at: Option<String>,
    pub next_run_at: Option<String>,
    /// `every 10m` or `cron 17 3 * * *`.
    pub schedule: Option<String>,
    pub running: bool,
    pub consecutive_failures: u32,
    /// The entity's feed watermark (download jobs).
    pub watermark: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailedTicket {
    pub id: i64,
    pub created_at: String,
    /// `feed` or `upload`.
    pub kind: String,
    pub subject: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// A document the central rejected, out of the upload queue until it is
/// fixed or queued again (`lojad tickets reprocess`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParkedDocument {
    pub id: String,
    /// Document kind, e.g. `sale`.
    pub kind: String,
    pub register: String,
    pub store_seq: u64,
    pub accepted_at: String,
    /// The central's reason.
    pub reason: String,
    /// The upload ticket that carried the refusal.
    pub ticket: Option<i64>,
}

impl From<FailedDocument> for ParkedDocument {
    fn from(d: FailedDocument) -> Self {
        ParkedDocument {
            id: d.id.to_string(),
            kind: d.kind.as_str().to_owned(),
            register: d.register,
            store_seq: d.store_seq,
            accepted_at: d.accepted_at,
            reason: d.reason,
            ticket: d.ticket,
        }
    }
}

/// A reconciled cash close or Redução Z.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CashCheck {
    pub id: String,
    /// `cash_close` or `reducao_z`.
    pub kind: String,
    pub register: String,
    pub accepted_at: String,
    /// Centavos: a close's counted cash − expected (negative: short); a Z's
    /// net total − the day's sales. 0 when they agree.
    pub difference: i64,
    /// The figures (`loja_protocol::reconcile::Reconciliation`).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// How many parked documents the report lists.
const PARKED_LISTED: u32 = 5;
/// How many cash checks the report lists.
const CHECKS_LISTED: u32 = 5;

fn cash_checks(o: &Outbox) -> Result<Vec<CashCheck>, ReplicaError> {
    Ok(o.recent_reconciliations(CHECKS_LISTED)?
        .into_iter()
        .map(|r| {
            let detail = r.reconciliation;
            let difference = detail["cash_close"]["cash_difference"]
                .as_i64()
                .or_else(|| detail["reducao_z"]["difference"].as_i64())
                .unwrap_or(0);
            CashCheck {
                id: r.id,
                kind: r.kind,
                register: r.register,
                accepted_at: r.accepted_at,
                difference,
                detail,
            }
        })
        .collect())
}

/// The outbox's counts, its first parked documents, its last cash checks.
fn outbox_part(
    o: &Outbox,
) -> Result<(OutboxStats, Vec<ParkedDocument>, Vec<CashCheck>), ReplicaError> {
    let stats = o.stats()?;
    let parked = if stats.failed > 0 {
        o.failed(PARKED_LISTED)?
            .into_iter()
            .map(ParkedDocument::from)
            .collect()
    } else {
        Vec::new()
    };
    Ok((stats, parked, cash_checks(o)?))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplicaCount {
    pub entity: String,
    pub rows: u64,
}

const RECENT_FAILED: usize = 5;
/// Replica counts are re-counted at most this often (COUNT(*) over a
/// million rows is tens of milliseconds, under the replica writer's lock).
const COUNTS_MAX_AGE: Duration = Duration::from_secs(5);
/// How long the report waits for a part (outbox writer, journal) before
/// leaving it out with a warning.
const PART_TIMEOUT: Duration = Duration::from_secs(2);

/// The running daemon's view: schedule (next runs, running now) from the
/// scheduler, outbox stats from the outbox writer, the journal, and the
/// replica's counts and watermarks (the last ones taken when a download job
/// holds the replica writer right now).
pub async fn collect(state: &AppState) -> anyhow::Result<StatusReport> {
    let mut warnings = Vec::new();

    let journal = state.journal.clone();
    let (job_states, failed) = bounded(
        &mut warnings,
        "journal",
        "busy",
        tokio::task::spawn_blocking(move || {
            let j = journal.lock().unwrap_or_else(|p| p.into_inner());
            journal_part(&j)
        }),
    )
    .await
    .unwrap_or_default();

    let (outbox, parked_documents, cash_checks) = bounded(
        &mut warnings,
        "outbox",
        "the writer is busy",
        state.intake.with_outbox(|o| outbox_part(o)),
    )
    .await
    .unwrap_or_default();

    let dir = state.config.store.data_dir.clone();
    let minutes = state.config.omni.stuck_minutes;
    let stuck_omni_lines = bounded(
        &mut warnings,
        "omni orders",
        "busy",
        tokio::task::spawn_blocking(move || stuck_lines(&dir, minutes)),
    )
    .await
    .unwrap_or_default();

    let catalog = state.catalog.clone();
    let dir = state.config.store.data_dir.clone();
    let snapshot = tokio::task::spawn_blocking(move || replica_snapshot(&dir, &catalog))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            warnings.push(format!("replica: {e:#}"));
            None
        }
    };
    if snapshot.is_none() {
        warnings.push("replica: a download job is applying; counts shown once it commits".into());
    }

    let schedule = state.schedule.jobs();

    let jobs = merge_jobs(&schedule, &job_states, snapshot.as_deref());
    let (counts, counts_at) = match &snapshot {
        Some(s) => (s.counts.clone(), Some(s.taken_at.clone())),
        None => (Vec::new(), None),
    };
    Ok(StatusReport {
        version: crate::release::running_version(),
        store_id: state.config.store.id.clone(),
        generated_at: loja_protocol::time::now_rfc3339(),
        source: "daemon".into(),
        uptime_secs: Some(state.started_at.elapsed().as_secs()),
        integration_on: state.integration.is_on(),
        jobs,
        outbox,
        parked_documents,
        cash_checks,
        stuck_omni_lines,
        failed_tickets: failed.0,
        recent_failed_tickets: failed.1,
        replica_counts: counts,
        replica_counts_at: counts_at,
        warnings,
        update: crate::release::view(&state.config),
    })
}

/// One part of the report: what `part` answers within [`PART_TIMEOUT`], or
/// `None` and a warning naming `what` (`busy`: it did not answer in time).
async fn bounded<T, E: std::fmt::Display, J: std::fmt::Display>(
    warnings: &mut Vec<String>,
    what: &str,
    busy: &str,
    part: impl std::future::Future<Output = Result<Result<T, E>, J>>,
) -> Option<T> {
    match tokio::time::timeout(PART_TIMEOUT, part).await {
        Ok(Ok(Ok(value))) => Some(value),
        Ok(Ok(Err(e))) => {
            warnings.push(format!("{what}: {e:#}"));
            None
        }
        Ok(Err(e)) => {
            warnings.push(format!("{what}: {e}"));
            None
        }
        Err(_) => {
            warnings.push(format!("{what}: {busy}, not read this time"));
            None
        }
    }
}

/// Omni lines waiting on the store for more than `minutes`.
fn stuck_lines(
    dir: &std::path::Path,
    minutes: u32,
) -> Result<Vec<loja_replica::omni_local::StuckLine>, ReplicaError> {
    let before = loja_protocol::time::format(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(i64::from(minutes)),
    );
    loja_replica::CatalogReader::open(dir)?.stuck_omni_lines(&before)
}

/// `lojad status` without asking the daemon: opens the data dir's three
/// databases directly (WAL: safe beside a running daemon). Next runs are
/// estimated from each job's last run and its task's interval.
pub fn collect_offline(config: &Config) -> anyhow::Result<StatusReport> {
    let dir = &config.store.data_dir;
    for file in ["replica.db", "outbox.db", "journal.db"] {
        let path = dir.join(file);
        if !path.exists() {
            anyhow::bail!(
                "{} does not exist: this data dir was never initialized (run `lojad init`, or check [store] data_dir)",
                path.display()
            );
        }
    }
    let mut warnings = Vec::new();
    let journal =
        Journal::open(dir).with_context(|| format!("opening the journal in {}", dir.display()))?;
    let (job_states, failed) = journal_part(&journal)?;
    let (outbox, parked_documents, cash_checks) =
        Outbox::open(dir)
            .and_then(|o| outbox_part(&o))
            .with_context(|| format!("reading the outbox in {}", dir.display()))?;
    let catalog =
        Catalog::open(dir).with_context(|| format!("opening the replica in {}", dir.display()))?;
    let counts: Vec<ReplicaCount> = catalog
        .row_counts()?
        .into_iter()
        .map(|(entity, rows)| ReplicaCount {
            entity: entity.to_owned(),
            rows,
        })
        .collect();
    let watermarks = catalog.watermarks()?;
    let integration_on = crate::integration::read(&catalog).unwrap_or_else(|e| {
        warnings.push(format!("integration switch: {e}"));
        true
    });
    let snapshot = ReplicaSnapshot {
        counts,
        watermarks: watermarks
            .into_iter()
            .map(|(e, w)| (e.to_owned(), w.0))
            .collect(),
        taken_at: loja_protocol::time::now_rfc3339(),
        taken: Instant::now(),
    };
    let stuck_omni_lines = stuck_lines(dir, config.omni.stuck_minutes).unwrap_or_else(|e| {
        warnings.push(format!("omni orders: {e}"));
        Vec::new()
    });
    let schedule = estimated_schedule(config, &job_states, &mut warnings);
    let jobs = merge_jobs(&schedule, &job_states, Some(&snapshot));
    let update = crate::release::view(config);
    Ok(StatusReport {
        // the version the service runs: the one the launcher starts
        version: update
            .current
            .clone()
            .unwrap_or_else(crate::release::running_version),
        store_id: config.store.id.clone(),
        generated_at: loja_protocol::time::now_rfc3339(),
        source: "files".into(),
        uptime_secs: None,
        integration_on,
        jobs,
        outbox,
        parked_documents,
        cash_checks,
        stuck_omni_lines,
        failed_tickets: failed.0,
        recent_failed_tickets: failed.1,
        replica_counts: snapshot.counts,
        replica_counts_at: Some(snapshot.taken_at),
        warnings,
        update,
    })
}

/// Without the scheduler: each active task's next run estimated from its
/// last run (an interval counts from the end of the previous run; a job
/// never run or overdue is due now) or its cron pattern.
fn estimated_schedule(
    config: &Config,
    states: &[JobState],
    warnings: &mut Vec<String>,
) -> Vec<crate::schedule_view::JobSchedule> {
    let tasks = match crate::tasks::load(config) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("tasks: {e}"));
            return Vec::new();
        }
    };
    let now = time::OffsetDateTime::now_utc();
    tasks
        .into_iter()
        .filter(|t| t.active)
        .map(|t| {
            let state = states.iter().find(|s| s.code == t.code);
            let last = state.and_then(|s| s.last_run.as_ref());
            // From the integration log: the daemon's count is gone with it.
            let failures = state.map_or(0, |s| s.consecutive_failures);
            let ended = last.and_then(|run| {
                let started = loja_protocol::time::parse(&run.started_at)?;
                Some(started + time::Duration::milliseconds(run.duration_ms as i64))
            });
            // After failed runs the retry comes after the backoff (no
            // jitter here), never later than the schedule.
            let retry = ended.filter(|_| failures > 0).and_then(|end| {
                let b = crate::backoff::backoff_nominal(failures);
                Some(end + time::Duration::try_from(b).ok()?)
            });
            let next = match &t.schedule {
                crate::tasks::Schedule::Every(every) => {
                    let due =
                        ended.and_then(|end| Some(end + time::Duration::try_from(*every).ok()?));
                    let due = match (due, retry) {
                        (Some(d), Some(r)) => Some(d.min(r)),
                        (d, r) => d.or(r),
                    };
                    Some(loja_protocol::time::format(due.map_or(now, |d| d.max(now))))
                }
                cron @ crate::tasks::Schedule::Cron(_) => {
                    let at = cron.next_cron_after(chrono::Local::now()).and_then(|t| {
                        time::OffsetDateTime::from_unix_timestamp(t.timestamp()).ok()
                    });
                    let at = match (at, retry) {
                        (Some(at), Some(r)) => Some(at.min(r.max(now))),
                        (at, _) => at,
                    };
                    at.map(loja_protocol::time::format)
                }
            };
            crate::schedule_view::JobSchedule {
                code: t.code.clone(),
                subject: t.subject.clone(),
                next_run_at: next,
                running: false,
                consecutive_failures: failures,
                schedule: t.schedule.to_string(),
            }
        })
        .collect()
}

type FailedPart = (u64, Vec<FailedTicket>);

fn journal_part(journal: &Journal) -> anyhow::Result<(Vec<JobState>, FailedPart)> {
    let states = journal.job_states().context("reading job states")?;
    let since =
        loja_protocol::time::format(time::OffsetDateTime::now_utc() - time::Duration::hours(24));
    let failed = journal
        .tickets(&TicketFilter {
            failed_only: true,
            kind: None,
            since: Some(since),
            limit: 10_000,
        })
        .context("reading failed tickets")?;
    let recent = failed
        .iter()
        .take(RECENT_FAILED)
        .map(failed_ticket)
        .collect();
    Ok((states, (failed.len() as u64, recent)))
}

fn failed_ticket(t: &TicketSummary) -> FailedTicket {
    FailedTicket {
        id: t.id,
        created_at: t.created_at.clone(),
        kind: serde_plain(&t.kind),
        subject: t.subject.clone(),
        http_status: t.http_status,
        error: t.error.clone(),
    }
}

/// A unit enum's serde name (`"ok"`, `"feed"`).
fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

struct ReplicaSnapshot {
    counts: Vec<ReplicaCount>,
    watermarks: HashMap<String, u64>,
    taken_at: String,
    taken: Instant,
}

type SnapshotCache = Mutex<HashMap<PathBuf, Arc<ReplicaSnapshot>>>;

fn snapshot_cache() -> &'static SnapshotCache {
    static CACHE: OnceLock<SnapshotCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Counts and watermarks, recounted when older than [`COUNTS_MAX_AGE`] and
/// the replica writer is free; else the last ones (None if never taken).
fn replica_snapshot(
    dir: &Path,
    catalog: &Mutex<Catalog>,
) -> anyhow::Result<Option<Arc<ReplicaSnapshot>>> {
    let cached = snapshot_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(dir)
        .cloned();
    if let Some(s) = &cached
        && s.taken.elapsed() < COUNTS_MAX_AGE
    {
        return Ok(cached);
    }
    let guard = match catalog.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Ok(cached),
    };
    let counts = guard
        .row_counts()
        .context("counting replica rows")?
        .into_iter()
        .map(|(entity, rows)| ReplicaCount {
            entity: entity.to_owned(),
            rows,
        })
        .collect();
    let watermarks = guard.watermarks().context("reading watermarks")?;
    drop(guard);
    let snapshot = Arc::new(ReplicaSnapshot {
        counts,
        watermarks: watermarks
            .into_iter()
            .map(|(e, w)| (e.to_owned(), w.0))
            .collect(),
        taken_at: loja_protocol::time::now_rfc3339(),
        taken: Instant::now(),
    });
    snapshot_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(dir.to_path_buf(), snapshot.clone());
    Ok(Some(snapshot))
}

fn merge_jobs(
    schedule: &[crate::schedule_view::JobSchedule],
    states: &[JobState],
    replica: Option<&ReplicaSnapshot>,
) -> Vec<JobStatus> {
    let mut jobs: BTreeMap<String, JobStatus> = BTreeMap::new();
    for s in schedule {
        let j = jobs.entry(s.code.clone()).or_insert_with(|| JobStatus {
            code: s.code.clone(),
            enabled: true,
            ..JobStatus::default()
        });
        j.subject = s.subject.clone();
        j.next_run_at = s.next_run_at.clone();
        j.schedule = (!s.schedule.is_empty()).then(|| s.schedule.clone());
        j.running = s.running;
        j.consecutive_failures = s.consecutive_failures;
    }
    for st in states {
        let j = jobs.entry(st.code.clone()).or_insert_with(|| JobStatus {
            code: st.code.clone(),
            ..JobStatus::default()
        });
        j.enabled = st.enabled;
        j.last_ok_at = st.last_ok_at.clone();
        if let Some(run) = &st.last_run {
            if j.subject.is_empty() {
                j.subject = run.subject.clone();
            }
            j.last_run_at = Some(run.started_at.clone());
            j.last_outcome = Some(serde_plain(&run.outcome));
            j.last_rows = Some(run.rows);
            j.last_duration_ms = Some(run.duration_ms);
            j.last_message = run.message.clone();
        }
    }
    if let Some(r) = replica {
        for j in jobs.values_mut() {
            j.watermark = r.watermarks.get(&j.subject).copied();
        }
    }
    jobs.into_values().collect()
}

/// The report as a readable table for the CLI.
pub fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let up = r
        .uptime_secs
        .map(|s| format!(", up {}", human_secs(s)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "lojad {} - store {} ({} view{up}) at {}",
        r.version, r.store_id, r.source, r.generated_at
    );
    let _ = writeln!(
        out,
        "Integration: {}",
        if r.integration_on {
            "on"
        } else {
            "OFF (switched off by the central: scheduled downloads and uploads wait; documents stay in the outbox)"
        }
    );
    let u = &r.update;
    let _ = writeln!(
        out,
        "Update: channel {}, pending {}{}",
        u.channel,
        u.pending.as_deref().unwrap_or("none"),
        u.trial
            .as_deref()
            .map(|t| format!(", switching {t}"))
            .unwrap_or_default()
    );
    let oldest = match (
        &r.outbox.oldest_pending_at,
        r.outbox.oldest_pending_age_secs,
    ) {
        (Some(at), Some(age)) => format!(", oldest {at} ({} ago)", human_secs(age)),
        (Some(at), None) => format!(", oldest {at}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "Outbox: {} pending{oldest}, {} failed, {} delivered",
        r.outbox.pending, r.outbox.failed, r.outbox.delivered
    );
    for d in &r.parked_documents {
        let _ = writeln!(
            out,
            "  parked {} {} {} #{}: {}",
            d.id, d.kind, d.register, d.store_seq, d.reason
        );
    }
    if !r.cash_checks.is_empty() {
        let _ = writeln!(out, "Cash and fiscal checks (newest first):");
    }
    for c in &r.cash_checks {
        let what = if c.kind == "cash_close" {
            "cash close"
        } else {
            "Redução Z"
        };
        let verdict = match c.difference {
            0 => "balanced".to_owned(),
            d if c.kind == "cash_close" && d < 0 => format!("SHORT {}", brl(-d)),
            d if c.kind == "cash_close" => format!("over {}", brl(d)),
            d => format!("DIFFERS from the day's sales by {}", brl(d)),
        };
        let _ = writeln!(out, "  {what} {} {}: {verdict}", c.register, c.accepted_at);
    }
    if !r.stuck_omni_lines.is_empty() {
        let _ = writeln!(
            out,
            "Omni order lines waiting on the store too long: {}",
            r.stuck_omni_lines.len()
        );
    }
    for l in &r.stuck_omni_lines {
        let _ = writeln!(
            out,
            "  order {} (#{}) line {}: {} since {}",
            l.order_id,
            l.number,
            l.line_id,
            l.state.as_str(),
            l.since
        );
    }
    let _ = writeln!(out, "Failed tickets (24 h): {}", r.failed_tickets);
    for t in &r.recent_failed_tickets {
        let _ = writeln!(
            out,
            "  #{} {} {} {}: {}",
            t.id,
            t.created_at,
            t.kind,
            t.subject,
            t.error.as_deref().unwrap_or("-")
        );
    }
    out.push('\n');
    let header = [
        "JOB",
        "SUBJECT",
        "ON",
        "SCHEDULE",
        "LAST RUN",
        "OUTCOME",
        "ROWS",
        "MS",
        "NEXT RUN",
        "WATERMARK",
        "MESSAGE",
    ];
    let rows: Vec<[String; 11]> = r
        .jobs
        .iter()
        .map(|j| {
            let outcome = match (&j.last_outcome, j.running) {
                (_, true) => "running".to_owned(),
                (Some(o), false) => o.clone(),
                (None, false) => "-".to_owned(),
            };
            [
                j.code.clone(),
                j.subject.clone(),
                if j.enabled { "yes" } else { "no" }.to_owned(),
                j.schedule.clone().unwrap_or_else(|| "-".into()),
                j.last_run_at.clone().unwrap_or_else(|| "never".into()),
                outcome,
                j.last_rows.map_or("-".into(), |n| n.to_string()),
                j.last_duration_ms.map_or("-".into(), |n| n.to_string()),
                j.next_run_at.clone().unwrap_or_else(|| "-".into()),
                j.watermark.map_or("-".into(), |n| n.to_string()),
                j.last_message
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("Jobs: none has run yet\n");
    } else {
        write_table(&mut out, &header, &rows);
    }
    out.push('\n');
    if r.replica_counts.is_empty() {
        out.push_str("Replica: counts not available\n");
    } else {
        let at = r
            .replica_counts_at
            .as_deref()
            .map(|a| format!(" (at {a})"))
            .unwrap_or_default();
        let _ = writeln!(out, "Replica rows{at}:");
        let rows: Vec<[String; 2]> = r
            .replica_counts
            .iter()
            .map(|c| [c.entity.clone(), c.rows.to_string()])
            .collect();
        write_table(&mut out, &["ENTITY", "ROWS"], &rows);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn write_table<const N: usize>(out: &mut String, header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Centavos as reais: `R$ 1.234,56`.
fn brl(centavos: i64) -> String {
    let sign = if centavos < 0 { "-" } else { "" };
    let c = centavos.unsigned_abs();
    let reais = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in reais.chars().enumerate() {
        if i > 0 && (reais.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}R$ {grouped},{:02}", c % 100)
}

#[cfg(test)]
mod tests {

    #[test]
    fn money_as_a_clerk_reads_it() {
        assert_eq!(brl(123_456), "R$ 1.234,56");
        assert_eq!(brl(-300), "-R$ 3,00");
        assert_eq!(brl(100_000_000), "R$ 1.000.000,00");
        assert_eq!(brl(5), "R$ 0,05");
    }
    use super::*;

    #[test]
    fn renders_a_table() {
        let r = StatusReport {
            version: "0.1.0".into(),
            store_id: "0042".into(),
            generated_at: "2026-11-26T12:00:00Z".into(),
            source: "daemon".into(),
            uptime_secs: Some(3725),
            integration_on: false,
            jobs: vec![JobStatus {
                code: "PRC".into(),
                subject: "prices".into(),
                enabled: true,
                last_run_at: Some("2026-11-26T11:59:00Z".into()),
                last_outcome: Some("ok".into()),
                last_rows: Some(12),
                last_duration_ms: Some(40),
                watermark: Some(99),
                ..JobStatus::default()
            }],
            outbox: OutboxStats {
                pending: 2,
                failed: 1,
                ..OutboxStats::default()
            },
            cash_checks: Vec::new(),
            stuck_omni_lines: Vec::new(),
            parked_documents: vec![ParkedDocument {
                id: "7f1c".into(),
                kind: "sale".into(),
                register: "PDV01".into(),
                store_seq: 9,
                accepted_at: "2026-11-26T11:00:00Z".into(),
                reason: "id 7f1c is taken by another document".into(),
                ticket: Some(3),
            }],
            failed_tickets: 0,
            recent_failed_tickets: vec![],
            replica_counts: vec![ReplicaCount {
                entity: "prices".into(),
                rows: 12,
            }],
            replica_counts_at: None,
            warnings: vec![],
            update: crate::release::UpdateView {
                version: "0.1.0".into(),
                channel: "stable".into(),
                pending: Some("0.2.0".into()),
                ..Default::default()
            },
        };
        let text = render_text(&r);
        assert!(
            text.contains("Update: channel stable, pending 0.2.0"),
            "{text}"
        );
        assert!(text.contains("up 1h02m"), "{text}");
        assert!(text.contains("Outbox: 2 pending, 1 failed"), "{text}");
        assert!(text.contains("Integration: OFF"), "{text}");
        assert!(
            text.contains("  parked 7f1c sale PDV01 #9: id 7f1c is taken by another document"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("PRC")).unwrap();
        assert!(
            line.contains("prices") && line.contains("ok") && line.contains("99"),
            "{line}"
        );
    }

    fn config(dir: &Path) -> Config {
        serde_json::from_value(serde_json::json!({
            "store": {"id": "0042", "data_dir": dir},
            "central": {"url": "http://127.0.0.1:9", "token": "t"},
            "pos": {}
        }))
        .unwrap()
    }

    #[test]
    fn offline_status_reads_the_files_and_estimates_next_runs() {
        let dir = tempfile::tempdir().unwrap();
        let err = collect_offline(&config(&dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().contains("lojad init"), "{err}");

        let state = AppState::open(config(dir.path())).unwrap();
        state
            .journal
            .lock()
            .unwrap()
            .log_run(&loja_replica::JobRun {
                code: "PRC".into(),
                subject: "prices".into(),
                started_at: "2026-11-26T12:00:00Z".into(),
                duration_ms: 1000,
                rows: 5,
                outcome: loja_replica::Outcome::Ok,
                message: None,
            })
            .unwrap();
        let r = collect_offline(&config(dir.path())).unwrap();
        assert_eq!(r.source, "files");
        assert_eq!(r.uptime_secs, None);
        assert!(!r.jobs.is_empty());
        let prc = r.jobs.iter().find(|j| j.code == "PRC").expect("PRC job");
        assert_eq!(prc.last_rows, Some(5));
        assert_eq!(prc.last_outcome.as_deref(), Some("ok"));
        assert_eq!(prc.watermark, Some(0));
        assert!(
            prc.next_run_at.is_some() && prc.schedule.is_some(),
            "{prc:?}"
        );
        assert!(r.replica_counts.iter().any(|c| c.entity == "products"));
        assert!(render_text(&r).contains("PRC"));
    }

    /// The daemon's failure count is gone with it: offline, the count comes
    /// from the integration log, and the next run from the backoff.
    #[test]
    fn offline_status_counts_the_failed_runs_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::open(config(dir.path())).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let run = |outcome, secs_ago: i64| loja_replica::JobRun {
            code: "PRC".into(),
            subject: "prices".into(),
            started_at: loja_protocol::time::format(now - time::Duration::seconds(secs_ago)),
            duration_ms: 100,
            rows: 0,
            outcome,
            message: (outcome == loja_replica::Outcome::Failed).then(|| "central down".into()),
        };
        {
            let j = state.journal.lock().unwrap();
            j.log_run(&run(loja_replica::Outcome::Ok, 60)).unwrap();
            for ago in [30, 20, 10] {
                j.log_run(&run(loja_replica::Outcome::Failed, ago)).unwrap();
            }
        }
        let r = collect_offline(&config(dir.path())).unwrap();
        let prc = r.jobs.iter().find(|j| j.code == "PRC").expect("PRC job");
        assert_eq!(prc.consecutive_failures, 3, "{prc:?}");
        assert_eq!(prc.last_outcome.as_deref(), Some("failed"));
        // Retry 3 comes 8 s after the last run, not the task's 10 minutes.
        let next = loja_protocol::time::parse(prc.next_run_at.as_deref().unwrap()).unwrap();
        assert!(next <= now + time::Duration::seconds(5), "{prc:?}");
        let etq = r
            .jobs
            .iter()
            .find(|j| j.code != "PRC")
            .expect("another job");
        assert_eq!(etq.consecutive_failures, 0);

        state
            .journal
            .lock()
            .unwrap()
            .log_run(&run(loja_replica::Outcome::Ok, 0))
            .unwrap();
        let r = collect_offline(&config(dir.path())).unwrap();
        let prc = r.jobs.iter().find(|j| j.code == "PRC").unwrap();
        assert_eq!(prc.consecutive_failures, 0);
    }
}
