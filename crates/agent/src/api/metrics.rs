//! `/metrics`: Prometheus text format (version 0.0.4). Sync health from the
//! status report, and HTTP requests by route and status, counted without a
//! lock: the route set is fixed when the router is built.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::status::StatusReport;
use crate::verify_stats::EntityCounters;

/// The statuses counted on their own; the rest go to `other`.
const STATUSES: [u16; 16] = [
    200, 201, 400, 401, 404, 405, 408, 409, 413, 415, 422, 500, 503, 504, 507, 0,
];

/// Label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

type Counters = [AtomicU64; STATUSES.len()];

pub struct HttpMetrics {
    routes: HashMap<&'static str, Counters>,
}

impl HttpMetrics {
    pub fn new(labels: impl IntoIterator<Item = &'static str>) -> HttpMetrics {
        let mut routes: HashMap<&'static str, Counters> = HashMap::new();
        for label in labels.into_iter().chain([UNMATCHED]) {
            routes
                .entry(label)
                .or_insert_with(|| std::array::from_fn(|_| AtomicU64::new(0)));
        }
        HttpMetrics { routes }
    }

    pub fn count(&self, route: &'static str, status: u16) {
        let Some(c) = self
            .routes
            .get(route)
            .or_else(|| self.routes.get(UNMATCHED))
        else {
            return;
        };
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        c[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// (route, status label, count) for every non-zero counter.
    pub fn snapshot(&self) -> Vec<(&'static str, String, u64)> {
        let mut out = Vec::new();
        for (route, counters) in &self.routes {
            for (i, c) in counters.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let status = if STATUSES[i] == 0 {
                        "other".to_owned()
                    } else {
                        STATUSES[i].to_string()
                    };
                    out.push((*route, status, n));
                }
            }
        }
        out.sort();
        out
    }
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix(ts: &str) -> Option<i64> {
    loja_protocol::time::parse(ts).map(|t| t.unix_timestamp())
}

fn help(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text.
pub fn render(
    report: &StatusReport,
    http: &HttpMetrics,
    verify: &[(&'static str, EntityCounters)],
) -> String {
    let mut out = String::with_capacity(4096);
    help(
        &mut out,
        "lojad_info",
        "gauge",
        "lojad version and store id (always 1).",
    );
    let _ = writeln!(
        out,
        "lojad_info{{version=\"{}\",store=\"{}\"}} 1",
        esc(&report.version),
        esc(&report.store_id)
    );
    if let Some(up) = report.uptime_secs {
        help(
            &mut out,
            "lojad_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        let _ = writeln!(out, "lojad_uptime_seconds {up}");
    }

    help(
        &mut out,
        "lojad_integration_on",
        "gauge",
        "The central's integration switch (1 on; 0 off: scheduled downloads and uploads wait).",
    );
    let _ = writeln!(
        out,
        "lojad_integration_on {}",
        u8::from(report.integration_on)
    );
    help(
        &mut out,
        "lojad_job_enabled",
        "gauge",
        "The job's integration switch (1 on, 0 off).",
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "lojad_job_enabled{{job=\"{}\",subject=\"{}\"}} {}",
            esc(&j.code),
            esc(&j.subject),
            u8::from(j.enabled)
        );
    }
    help(
        &mut out,
        "lojad_job_last_run_timestamp_seconds",
        "gauge",
        "Start of the job's last run (Unix time).",
    );
    for j in &report.jobs {
        if let Some(t) = j.last_run_at.as_deref().and_then(unix) {
            let _ = writeln!(
                out,
                "lojad_job_last_run_timestamp_seconds{{job=\"{}\"}} {t}",
                esc(&j.code)
            );
        }
    }
    help(
        &mut out,
        "lojad_job_last_success_timestamp_seconds",
        "gauge",
        "Last successful run of the job (Unix time).",
    );
    for j in &report.jobs {
        if let Some(t) = j.last_ok_at.as_deref().and_then(unix) {
            let _ = writeln!(
                out,
                "lojad_job_last_success_timestamp_seconds{{job=\"{}\"}} {t}",
                esc(&j.code)
            );
        }
    }
    help(
        &mut out,
        "lojad_job_last_outcome",
        "gauge",
        "1 for the outcome of the job's last run (ok, failed, disabled, held).",
    );
    for j in &report.jobs {
        if let Some(o) = &j.last_outcome {
            let _ = writeln!(
                out,
                "lojad_job_last_outcome{{job=\"{}\",outcome=\"{}\"}} 1",
                esc(&j.code),
                esc(o)
            );
        }
    }
    help(
        &mut out,
        "lojad_job_last_rows",
        "gauge",
        "Rows or documents the job's last run moved.",
    );
    for j in &report.jobs {
        if let Some(n) = j.last_rows {
            let _ = writeln!(out, "lojad_job_last_rows{{job=\"{}\"}} {n}", esc(&j.code));
        }
    }
    help(
        &mut out,
        "lojad_job_last_duration_seconds",
        "gauge",
        "Duration of the job's last run.",
    );
    for j in &report.jobs {
        if let Some(ms) = j.last_duration_ms {
            let _ = writeln!(
                out,
                "lojad_job_last_duration_seconds{{job=\"{}\"}} {:.3}",
                esc(&j.code),
                ms as f64 / 1000.0
            );
        }
    }
    help(
        &mut out,
        "lojad_job_running",
        "gauge",
        "1 while the job runs.",
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "lojad_job_running{{job=\"{}\"}} {}",
            esc(&j.code),
            u8::from(j.running)
        );
    }
    help(
        &mut out,
        "lojad_job_consecutive_failures",
        "gauge",
        "Failed runs in a row.",
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "lojad_job_consecutive_failures{{job=\"{}\"}} {}",
            esc(&j.code),
            j.consecutive_failures
        );
    }
    help(
        &mut out,
        "lojad_feed_watermark",
        "gauge",
        "The entity feed's applied watermark (central sequence).",
    );
    for j in &report.jobs {
        if let Some(w) = j.watermark {
            let _ = writeln!(
                out,
                "lojad_feed_watermark{{job=\"{}\",entity=\"{}\"}} {w}",
                esc(&j.code),
                esc(&j.subject)
            );
        }
    }

    help(
        &mut out,
        "lojad_outbox_documents",
        "gauge",
        "Outbox documents by state.",
    );
    let o = &report.outbox;
    let _ = writeln!(
        out,
        "lojad_outbox_documents{{state=\"pending\"}} {}",
        o.pending
    );
    let _ = writeln!(
        out,
        "lojad_outbox_documents{{state=\"failed\"}} {}",
        o.failed
    );
    let _ = writeln!(
        out,
        "lojad_outbox_documents{{state=\"delivered\"}} {}",
        o.delivered
    );
    help(
        &mut out,
        "lojad_outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest undelivered document (0 when none).",
    );
    let _ = writeln!(
        out,
        "lojad_outbox_oldest_pending_age_seconds {}",
        o.oldest_pending_age_secs.unwrap_or(0)
    );
    help(
        &mut out,
        "lojad_omni_stuck_lines",
        "gauge",
        "Omni order lines waiting on the store longer than [omni] stuck_minutes.",
    );
    let _ = writeln!(
        out,
        "lojad_omni_stuck_lines {}",
        report.stuck_omni_lines.len()
    );
    help(
        &mut out,
        "lojad_failed_tickets_24h",
        "gauge",
        "Failed exchanges with the central in the last 24 hours.",
    );
    let _ = writeln!(out, "lojad_failed_tickets_24h {}", report.failed_tickets);

    help(
        &mut out,
        "lojad_replica_rows",
        "gauge",
        "Rows per replica entity.",
    );
    for c in &report.replica_counts {
        let _ = writeln!(
            out,
            "lojad_replica_rows{{entity=\"{}\"}} {}",
            esc(&c.entity),
            c.rows
        );
    }
    help(
        &mut out,
        "lojad_status_warnings",
        "gauge",
        "Parts of the status that could not be read this time.",
    );
    let _ = writeln!(out, "lojad_status_warnings {}", report.warnings.len());

    help(
        &mut out,
        "lojad_http_requests_total",
        "counter",
        "POS API requests by route and status.",
    );
    for (route, status, n) in http.snapshot() {
        let _ = writeln!(
            out,
            "lojad_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            esc(route)
        );
    }
    render_verify(&mut out, verify);
    out
}

/// The replica verify's counters (`jobs::verify`), per entity checked.
fn render_verify(out: &mut String, verify: &[(&'static str, EntityCounters)]) {
    type Series = (&'static str, &'static str, fn(&EntityCounters) -> u64);
    let series: [Series; 4] = [
        (
            "lojad_verify_checks_total",
            "Replica verifies of the entity (compared with the central's digest).",
            |c| c.checks,
        ),
        (
            "lojad_verify_failures_total",
            "Replica verifies of the entity that could not compare (central unreachable, replica behind or ahead).",
            |c| c.failures,
        ),
        (
            "lojad_verify_drifted_buckets_total",
            "Key buckets of the entity found different from the central's view and repaired.",
            |c| c.drifted_buckets,
        ),
        (
            "lojad_verify_repaired_rows_total",
            "Replica rows of the entity rewritten or deleted by a verify repair.",
            |c| c.repaired_rows,
        ),
    ];
    for (name, what, value) in series {
        help(out, name, "counter", what);
        for (entity, c) in verify {
            let _ = writeln!(out, "{name}{{entity=\"{}\"}} {}", esc(entity), value(c));
        }
    }
}
