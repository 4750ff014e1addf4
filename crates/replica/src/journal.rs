//! The journal (`journal.db`): tickets, the integration log by module code,
//! and the integration switches (the old systems' `ticket`/`conteudoticket`,
//! `LogIntegracao` and `InterfaceIntegracao`).

use std::path::{Path, PathBuf};

use loja_protocol::FieldError;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::error::SqlCtx;
use crate::migrate::{self, Sync};
use crate::{ReplicaError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A feed page download.
    Feed,
    /// A document batch upload.
    Upload,
    /// A page of the ERP's verdicts on this store's documents.
    Verdicts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Ok,
    Failed,
}

/// One exchange with the central, as it is archived.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub kind: TicketKind,
    /// Entity name (feeds), "documents" (uploads) or "erp" (verdicts).
    pub subject: String,
    /// Watermark range (feeds) or store_seq range (uploads).
    pub range_from: Option<u64>,
    pub range_to: Option<u64>,
    pub status: TicketStatus,
    pub http_status: Option<u16>,
    /// Request payload (URL for a feed; the batch JSON for an upload).
    pub request: Vec<u8>,
    /// Response payload as received.
    pub response: Vec<u8>,
    /// Rows or documents carried.
    pub items: u64,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Payload of a secret entity: archived as a redaction notice only.
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketSummary {
    pub id: i64,
    pub created_at: String,
    pub kind: TicketKind,
    pub subject: String,
    pub range_from: Option<u64>,
    pub range_to: Option<u64>,
    pub status: TicketStatus,
    pub http_status: Option<u16>,
    pub items: u64,
    /// Compressed bytes archived (request + response).
    pub bytes: u64,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketDetail {
    pub summary: TicketSummary,
    /// Decompressed payloads (lossy UTF-8 for display).
    pub request: String,
    pub response: String,
}

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub failed_only: bool,
    pub kind: Option<TicketKind>,
    pub since: Option<String>,
    pub limit: u32,
}

/// Consumption report row: per kind and subject over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub kind: TicketKind,
    pub subject: String,
    pub count: u64,
    pub failures: u64,
    pub items: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// The switch is off: the job ran and did nothing.
    Disabled,
    /// The central's availability window held the download back.
    Held,
}

/// One job run, as the integration log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// Module code (task code), e.g. `PRC`.
    pub code: String,
    /// Entity or document kind the job moves.
    pub subject: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub rows: u64,
    pub outcome: Outcome,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub code: Option<String>,
    pub since: Option<String>,
    pub failed_only: bool,
    pub limit: u32,
}

/// A job's switch and its last run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobState {
    pub code: String,
    pub enabled: bool,
    pub last_run: Option<JobRun>,
    pub last_ok_at: Option<String>,
    /// Failed runs since the last run that did not fail (the newest runs of
    /// the integration log): what the scheduler counts for its backoff,
    /// known from disk while the daemon is down.
    pub consecutive_failures: u32,
}

pub struct Journal {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) path: PathBuf,
}

/// The file name of the journal in the data dir.
pub(crate) const FILE: &str = "journal.db";

/// What a secret entity's ticket keeps instead of its payload.
pub const SECRET_NOTICE: &str = "[payload of a secret entity: not archived]";

const ZSTD_LEVEL: i32 = 3;

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A stored payload as text: decompressed (twice for tickets archived
/// before zstd payloads were kept as received, which compressed them
/// again), lossy UTF-8; one that does not decompress is described, not
/// refused, so that a ticket can always be shown.
fn readable(stored: &[u8]) -> String {
    let mut out = Vec::new();
    if let Err(e) = zstd::stream::copy_decode(stored, &mut out) {
        return format!(
            "[{} bytes archived as received; not a valid zstd payload: {e}]",
            stored.len()
        );
    }
    if out.starts_with(&ZSTD_MAGIC) {
        let mut inner = Vec::new();
        if zstd::stream::copy_decode(out.as_slice(), &mut inner).is_ok() {
            out = inner;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const SUMMARY_COLUMNS: &str = "id, created_at, kind, subject, range_from, range_to, status, http_status, items, bytes, error, duration_ms";

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Feed => "feed",
            TicketKind::Upload => "upload",
            TicketKind::Verdicts => "verdicts",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [TicketKind::Feed, TicketKind::Upload, TicketKind::Verdicts]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl TicketStatus {
    fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Ok => "ok",
            TicketStatus::Failed => "failed",
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Disabled => "disabled",
            Outcome::Held => "held",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Outcome::Ok),
            "failed" => Some(Outcome::Failed),
            "disabled" => Some(Outcome::Disabled),
            "held" => Some(Outcome::Held),
            _ => None,
        }
    }
}

/// A user's `since` (RFC 3339 or a date) as the stored timestamp format.
fn since_text(since: &str) -> Result<String> {
    if let Some(t) = loja_protocol::time::parse(since) {
        return Ok(loja_protocol::time::format(
            t.to_offset(time::UtcOffset::UTC),
        ));
    }
    if loja_protocol::time::is_rfc3339_or_date(since) {
        return Ok(format!("{since}T00:00:00Z"));
    }
    Err(FieldError::new(
        "since",
        "must be an RFC 3339 timestamp or a YYYY-MM-DD date",
    )
    .into())
}

fn limit_of(limit: u32) -> i64 {
    if limit == 0 { -1 } else { i64::from(limit) }
}

fn u64_of(v: Option<i64>) -> Option<u64> {
    v.map(|n| n.max(0) as u64)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Journal {
    /// Opens (creating and migrating) `DIR/journal.db`; WAL.
    pub fn open(dir: &Path) -> Result<Journal> {
        let path = dir.join(FILE);
        let conn = migrate::open_migrated(&path, Sync::Normal, migrate::JOURNAL)?;
        Ok(Journal { conn, path })
    }

    fn compress(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        zstd::bulk::compress(bytes, ZSTD_LEVEL).map_err(|e| ReplicaError::Io {
            path: self.path.clone(),
            source: e,
        })
    }

    /// A payload as archived: a zstd frame (the central's feed pages come
    /// so) kept as it is, anything else compressed here.
    fn archive(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if bytes.starts_with(&ZSTD_MAGIC) {
            Ok(bytes.to_vec())
        } else {
            self.compress(bytes)
        }
    }

    /// Archives a ticket (payloads zstd-compressed, or kept as received when
    /// they already are zstd; a secret one redacted); returns its id.
    pub fn record_ticket(&self, ticket: &NewTicket) -> Result<i64> {
        let (request, response) = if ticket.secret {
            let notice = self.compress(SECRET_NOTICE.as_bytes())?;
            (notice.clone(), notice)
        } else {
            (
                self.archive(&ticket.request)?,
                self.archive(&ticket.response)?,
            )
        };
        let bytes = (request.len() + response.len()) as i64;
        let path = &self.path;
        self.conn
            .prepare_cached(
                "INSERT INTO tickets (created_at, kind, subject, range_from, range_to, status, http_status, items, \
                 bytes, error, duration_ms, secret, request, response) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .ctx(path, "record ticket")?
            .execute(params![
                loja_protocol::time::now_rfc3339(),
                ticket.kind.as_str(),
                ticket.subject,
                ticket.range_from.map(to_i64),
                ticket.range_to.map(to_i64),
                ticket.status.as_str(),
                ticket.http_status,
                to_i64(ticket.items),
                bytes,
                ticket.error,
                to_i64(ticket.duration_ms),
                ticket.secret,
                request,
                response,
            ])
            .ctx(path, "record ticket")?;
        Ok(self.conn.last_insert_rowid())
    }

    fn summary(&self, r: &rusqlite::Row<'_>) -> Result<TicketSummary> {
        let get = |e| ReplicaError::sqlite(&self.path, "read ticket", e);
        let kind: String = r.get(2).map_err(get)?;
        let status: String = r.get(6).map_err(get)?;
        Ok(TicketSummary {
            id: r.get(0).map_err(get)?,
            created_at: r.get(1).map_err(get)?,
            kind: TicketKind::parse(&kind).ok_or_else(|| {
                ReplicaError::corrupt(&self.path, format!("ticket kind {kind:?}"))
            })?,
            subject: r.get(3).map_err(get)?,
            range_from: u64_of(r.get(4).map_err(get)?),
            range_to: u64_of(r.get(5).map_err(get)?),
            status: if status == "ok" {
                TicketStatus::Ok
            } else {
                TicketStatus::Failed
            },
            http_status: r.get(7).map_err(get)?,
            items: r.get::<_, i64>(8).map_err(get)?.max(0) as u64,
            bytes: r.get::<_, i64>(9).map_err(get)?.max(0) as u64,
            error: r.get(10).map_err(get)?,
            duration_ms: r.get::<_, i64>(11).map_err(get)?.max(0) as u64,
        })
    }

    /// Newest first; `limit` 0 means all.
    pub fn tickets(&self, filter: &TicketFilter) -> Result<Vec<TicketSummary>> {
        let path = &self.path;
        let since = filter.since.as_deref().map(since_text).transpose()?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM tickets WHERE (?1 = 0 OR status = 'failed') \
                 AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR created_at >= ?3) ORDER BY id DESC LIMIT ?4"
            ))
            .ctx(path, "query tickets")?;
        let mut rows = stmt
            .query(params![
                filter.failed_only,
                filter.kind.map(TicketKind::as_str),
                since,
                limit_of(filter.limit)
            ])
            .ctx(path, "query tickets")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(path, "query tickets")? {
            out.push(self.summary(r)?);
        }
        Ok(out)
    }

    pub fn ticket(&self, id: i64) -> Result<Option<TicketDetail>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, request, response FROM tickets WHERE id = ?1"
            ))
            .ctx(path, "query ticket")?;
        let mut rows = stmt.query([id]).ctx(path, "query ticket")?;
        let Some(r) = rows.next().ctx(path, "query ticket")? else {
            return Ok(None);
        };
        let summary = self.summary(r)?;
        let blob = |i| -> Result<String> {
            let b = r
                .get_ref(i)
                .ctx(path, "read ticket")?
                .as_bytes()
                .map_err(|e| ReplicaError::sqlite(path, "read ticket", e.into()))?;
            Ok(readable(b))
        };
        Ok(Some(TicketDetail {
            summary,
            request: blob(12)?,
            response: blob(13)?,
        }))
    }

    /// Per kind and subject since `since` (RFC 3339).
    pub fn report(&self, since: &str) -> Result<Vec<ReportRow>> {
        let path = &self.path;
        let since = since_text(since)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, subject, count(*), sum(status = 'failed'), sum(items), sum(bytes) FROM tickets \
                 WHERE created_at >= ?1 GROUP BY kind, subject ORDER BY kind, subject",
            )
            .ctx(path, "ticket report")?;
        let mut rows = stmt.query([since]).ctx(path, "ticket report")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(path, "ticket report")? {
            let get = |e| ReplicaError::sqlite(path, "ticket report", e);
            let kind: String = r.get(0).map_err(get)?;
            out.push(ReportRow {
                kind: TicketKind::parse(&kind)
                    .ok_or_else(|| ReplicaError::corrupt(path, format!("ticket kind {kind:?}")))?,
                subject: r.get(1).map_err(get)?,
                count: r.get::<_, i64>(2).map_err(get)?.max(0) as u64,
                failures: r.get::<_, i64>(3).map_err(get)?.max(0) as u64,
                items: r.get::<_, i64>(4).map_err(get)?.max(0) as u64,
                bytes: r.get::<_, i64>(5).map_err(get)?.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Drops tickets older than `max_age_days`, then the oldest until the
    /// archive is under `max_bytes` (0: no size limit); returns how many
    /// were dropped.
    pub fn purge_tickets(&self, max_age_days: u32, max_bytes: u64) -> Result<u64> {
        let path = &self.path;
        let cutoff = loja_protocol::time::format(
            time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(max_age_days)),
        );
        let tx = self.conn.unchecked_transaction().ctx(path, "begin purge")?;
        let mut n = tx
            .execute("DELETE FROM tickets WHERE created_at < ?1", [cutoff])
            .ctx(path, "purge tickets")? as u64;
        if max_bytes > 0 {
            // Keep the newest tickets whose sizes add up to at most max_bytes.
            n += tx
                .execute(
                    "DELETE FROM tickets WHERE id <= (SELECT max(id) FROM \
                     (SELECT id, sum(bytes) OVER (ORDER BY id DESC) AS total FROM tickets) WHERE total > ?1)",
                    [to_i64(max_bytes)],
                )
                .ctx(path, "purge tickets by size")? as u64;
        }
        tx.commit().ctx(path, "commit purge")?;
        Ok(n)
    }

    pub fn log_run(&self, run: &JobRun) -> Result<()> {
        let path = &self.path;
        self.conn
            .prepare_cached(
                "INSERT INTO integration_log (code, subject, started_at, duration_ms, rows, outcome, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .ctx(path, "log run")?
            .execute(params![
                run.code,
                run.subject,
                run.started_at,
                to_i64(run.duration_ms),
                to_i64(run.rows),
                run.outcome.as_str(),
                run.message
            ])
            .ctx(path, "log run")?;
        Ok(())
    }

    fn run(&self, r: &rusqlite::Row<'_>) -> Result<JobRun> {
        let get = |e| ReplicaError::sqlite(&self.path, "read integration log", e);
        let outcome: String = r.get(5).map_err(get)?;
        Ok(JobRun {
            code: r.get(0).map_err(get)?,
            subject: r.get(1).map_err(get)?,
            started_at: r.get(2).map_err(get)?,
            duration_ms: r.get::<_, i64>(3).map_err(get)?.max(0) as u64,
            rows: r.get::<_, i64>(4).map_err(get)?.max(0) as u64,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| ReplicaError::corrupt(&self.path, format!("outcome {outcome:?}")))?,
            message: r.get(6).map_err(get)?,
        })
    }

    /// Newest first; `limit` 0 means all. `since` compares with started_at.
    pub fn log_entries(&self, filter: &LogFilter) -> Result<Vec<JobRun>> {
        let path = &self.path;
        let since = filter.since.as_deref().map(since_text).transpose()?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT code, subject, started_at, duration_ms, rows, outcome, message FROM integration_log \
                 WHERE (?1 IS NULL OR code = ?1) AND (?2 IS NULL OR started_at >= ?2) \
                 AND (?3 = 0 OR outcome = 'failed') ORDER BY id DESC LIMIT ?4",
            )
            .ctx(path, "query integration log")?;
        let mut rows = stmt
            .query(params![
                filter.code,
                since,
                filter.failed_only,
                limit_of(filter.limit)
            ])
            .ctx(path, "query integration log")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(path, "query integration log")? {
            out.push(self.run(r)?);
        }
        Ok(out)
    }

    /// The integration switch of a job (default on).
    pub fn set_enabled(&self, code: &str, enabled: bool) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO switches (code, enabled, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (code) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .ctx(&self.path, "set switch")?
            .execute(params![code, enabled, loja_protocol::time::now_rfc3339()])
            .ctx(&self.path, "set switch")?;
        Ok(())
    }

    pub fn is_enabled(&self, code: &str) -> Result<bool> {
        let v: Option<bool> = self
            .conn
            .prepare_cached("SELECT enabled FROM switches WHERE code = ?1")
            .ctx(&self.path, "read switch")?
            .query_row([code], |r| r.get(0))
            .optional()
            .ctx(&self.path, "read switch")?;
        Ok(v.unwrap_or(true))
    }

    /// Every job seen in the log or with a switch, by code.
    pub fn job_states(&self) -> Result<Vec<JobState>> {
        let path = &self.path;
        let codes: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT code FROM switches UNION SELECT DISTINCT code FROM integration_log ORDER BY 1")
                .ctx(path, "query jobs")?;
            let rows = stmt.query_map([], |r| r.get(0)).ctx(path, "query jobs")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx(path, "query jobs")?
        };
        let mut out = Vec::with_capacity(codes.len());
        for code in codes {
            let last_run = {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT code, subject, started_at, duration_ms, rows, outcome, message FROM integration_log \
                         WHERE code = ?1 ORDER BY id DESC LIMIT 1",
                    )
                    .ctx(path, "query jobs")?;
                let mut rows = stmt.query([&code]).ctx(path, "query jobs")?;
                match rows.next().ctx(path, "query jobs")? {
                    Some(r) => Some(self.run(r)?),
                    None => None,
                }
            };
            let last_ok_at: Option<String> = self
                .conn
                .prepare_cached(
                    "SELECT started_at FROM integration_log WHERE code = ?1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
                )
                .ctx(path, "query jobs")?
                .query_row([&code], |r| r.get(0))
                .optional()
                .ctx(path, "query jobs")?;
            let consecutive_failures: i64 = self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM integration_log WHERE code = ?1 AND outcome = 'failed' AND id > \
                     coalesce((SELECT id FROM integration_log WHERE code = ?1 AND outcome <> 'failed' ORDER BY id DESC LIMIT 1), 0)",
                )
                .ctx(path, "query jobs")?
                .query_row([&code], |r| r.get(0))
                .ctx(path, "query jobs")?;
            let enabled = self.is_enabled(&code)?;
            out.push(JobState {
                code,
                enabled,
                last_run,
                last_ok_at,
                consecutive_failures: u32::try_from(consecutive_failures.max(0))
                    .unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    pub fn integrity_check(&self) -> Result<Vec<String>> {
        migrate::integrity_check(&self.conn, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(
        kind: TicketKind,
        subject: &str,
        status: TicketStatus,
        request: &[u8],
        response: &[u8],
    ) -> NewTicket {
        NewTicket {
            kind,
            subject: subject.into(),
            range_from: Some(10),
            range_to: Some(20),
            status,
            http_status: Some(200),
            request: request.to_vec(),
            response: response.to_vec(),
            items: 10,
            error: None,
            duration_ms: 12,
            secret: false,
        }
    }

    #[test]
    fn tickets_round_trip_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let body = "{\"items\": [".to_owned()
            + &"{\"product_code\": \"1\", \"qty\": 1000},".repeat(500)
            + "]}";
        let id = j
            .record_ticket(&ticket(
                TicketKind::Feed,
                "stock",
                TicketStatus::Ok,
                b"GET /feeds/stock",
                body.as_bytes(),
            ))
            .unwrap();
        let raw: Vec<u8> = j
            .conn
            .query_row("SELECT response FROM tickets WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            raw.len() * 10 < body.len(),
            "stored compressed: {} of {}",
            raw.len(),
            body.len()
        );
        let t = j.ticket(id).unwrap().unwrap();
        assert_eq!(t.response, body);
        assert_eq!(t.request, "GET /feeds/stock");
        assert_eq!(t.summary.subject, "stock");
        assert_eq!(
            (t.summary.range_from, t.summary.range_to, t.summary.items),
            (Some(10), Some(20), 10)
        );
        assert!(t.summary.bytes > 0 && t.summary.bytes < body.len() as u64);
        assert_eq!(j.ticket(id + 1).unwrap(), None);
    }

    #[test]
    fn zstd_payloads_are_kept_as_received_and_shown_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let body = r#"{"entity":"stock","items":[]}"#.repeat(100);
        let z = zstd::bulk::compress(body.as_bytes(), 1).unwrap();
        let stored = |id: i64| -> Vec<u8> {
            j.conn
                .query_row("SELECT response FROM tickets WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        // A feed page as the central sent it: archived byte for byte.
        let id = j
            .record_ticket(&ticket(
                TicketKind::Feed,
                "stock",
                TicketStatus::Ok,
                b"GET /feeds/stock",
                &z,
            ))
            .unwrap();
        assert_eq!(stored(id), z);
        let t = j.ticket(id).unwrap().unwrap();
        assert_eq!(t.response, body);
        assert_eq!(
            t.summary.bytes,
            (z.len() + stored_request_len(&j, id)) as u64
        );
        // A ticket archived before: the zstd page compressed once more.
        let old = zstd::bulk::compress(&z, ZSTD_LEVEL).unwrap();
        j.conn
            .execute(
                "UPDATE tickets SET response = ?1 WHERE id = ?2",
                params![old, id],
            )
            .unwrap();
        assert_eq!(j.ticket(id).unwrap().unwrap().response, body);
        // A page that never decompressed (kept for the failed ticket) is
        // described, and the ticket still shows.
        let mut bad = ZSTD_MAGIC.to_vec();
        bad.extend_from_slice(b"garbage");
        let id = j
            .record_ticket(&ticket(
                TicketKind::Feed,
                "stock",
                TicketStatus::Failed,
                b"GET",
                &bad,
            ))
            .unwrap();
        let t = j.ticket(id).unwrap().unwrap();
        assert!(
            t.response.contains("11 bytes archived as received"),
            "{}",
            t.response
        );
        assert_eq!(t.request, "GET");
    }

    fn stored_request_len(j: &Journal, id: i64) -> usize {
        j.conn
            .query_row(
                "SELECT length(request) FROM tickets WHERE id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as usize
    }

    #[test]
    fn secret_payloads_are_not_archived() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let mut t = ticket(
            TicketKind::Feed,
            "store_certificate",
            TicketStatus::Ok,
            b"GET",
            b"{\"password\": \"s3cret\"}",
        );
        t.secret = true;
        let id = j.record_ticket(&t).unwrap();
        let d = j.ticket(id).unwrap().unwrap();
        assert_eq!(d.response, SECRET_NOTICE);
        assert_eq!(d.request, SECRET_NOTICE);
        drop(j);
        let raw = std::fs::read(dir.path().join(FILE)).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn filters_report_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let a = j
            .record_ticket(&ticket(
                TicketKind::Feed,
                "stock",
                TicketStatus::Ok,
                b"a",
                b"a",
            ))
            .unwrap();
        let b = j
            .record_ticket(&ticket(
                TicketKind::Feed,
                "stock",
                TicketStatus::Failed,
                b"b",
                b"b",
            ))
            .unwrap();
        let c = j
            .record_ticket(&ticket(
                TicketKind::Upload,
                "documents",
                TicketStatus::Ok,
                b"c",
                b"c",
            ))
            .unwrap();
        let all = j.tickets(&TicketFilter::default()).unwrap();
        assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), vec![c, b, a]);
        let failed = j
            .tickets(&TicketFilter {
                failed_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(failed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b]);
        let uploads = j
            .tickets(&TicketFilter {
                kind: Some(TicketKind::Upload),
                limit: 5,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(
            j.tickets(&TicketFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap()
            .len(),
            1
        );
        assert!(
            j.tickets(&TicketFilter {
                since: Some("2999-01-01".into()),
                ..Default::default()
            })
            .unwrap()
            .is_empty()
        );
        assert!(
            j.tickets(&TicketFilter {
                since: Some("junk".into()),
                ..Default::default()
            })
            .is_err()
        );
        let report = j.report("2000-01-01T00:00:00-03:00").unwrap();
        assert_eq!(report.len(), 2);
        let feed = report.iter().find(|r| r.kind == TicketKind::Feed).unwrap();
        assert_eq!(
            (feed.subject.as_str(), feed.count, feed.failures, feed.items),
            ("stock", 2, 1, 20)
        );
        // By age: nothing is old yet. By size: keep the newest that fit.
        assert_eq!(j.purge_tickets(30, 0).unwrap(), 0);
        let one = all[0].bytes;
        assert_eq!(j.purge_tickets(30, one * 2).unwrap(), 1);
        assert_eq!(
            j.tickets(&TicketFilter::default())
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>(),
            vec![c, b]
        );
        j.conn
            .execute(
                "UPDATE tickets SET created_at = '2000-01-01T00:00:00Z' WHERE id = ?1",
                [b],
            )
            .unwrap();
        assert_eq!(j.purge_tickets(30, 0).unwrap(), 1);
        assert_eq!(j.tickets(&TicketFilter::default()).unwrap().len(), 1);
    }

    fn run(code: &str, outcome: Outcome, at: &str) -> JobRun {
        JobRun {
            code: code.into(),
            subject: "prices".into(),
            started_at: at.into(),
            duration_ms: 5,
            rows: 3,
            outcome,
            message: (outcome == Outcome::Failed).then(|| "central down".into()),
        }
    }

    #[test]
    fn integration_log_and_switches() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.log_run(&run("PRC", Outcome::Ok, "2026-11-26T10:00:00Z"))
            .unwrap();
        j.log_run(&run("PRC", Outcome::Failed, "2026-11-26T10:10:00Z"))
            .unwrap();
        j.log_run(&run("ETQ", Outcome::Ok, "2026-11-26T10:05:00Z"))
            .unwrap();
        let all = j.log_entries(&LogFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].code, "ETQ");
        let prc = j
            .log_entries(&LogFilter {
                code: Some("PRC".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(prc.len(), 2);
        let failed = j
            .log_entries(&LogFilter {
                failed_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            failed,
            vec![run("PRC", Outcome::Failed, "2026-11-26T10:10:00Z")]
        );
        let since = j
            .log_entries(&LogFilter {
                since: Some("2026-11-26T10:04:00Z".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(since.len(), 2);
        assert!(j.is_enabled("PRC").unwrap());
        j.set_enabled("PRC", false).unwrap();
        j.set_enabled("CLI", false).unwrap();
        j.set_enabled("CLI", true).unwrap();
        assert!(!j.is_enabled("PRC").unwrap());
        assert!(j.is_enabled("CLI").unwrap());
        let states = j.job_states().unwrap();
        assert_eq!(
            states.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
            vec!["CLI", "ETQ", "PRC"]
        );
        let prc = &states[2];
        assert!(!prc.enabled);
        assert_eq!(prc.last_run.as_ref().unwrap().outcome, Outcome::Failed);
        assert_eq!(prc.last_ok_at.as_deref(), Some("2026-11-26T10:00:00Z"));
        assert_eq!(states[0].last_run, None);
        assert!(j.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn consecutive_failures_are_the_newest_failed_runs() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let failures = |j: &Journal, code: &str| {
            j.job_states()
                .unwrap()
                .into_iter()
                .find(|s| s.code == code)
                .map(|s| s.consecutive_failures)
        };
        // Never ok: every run counts.
        for _ in 0..2 {
            j.log_run(&run("PRC", Outcome::Failed, "2026-11-26T10:00:00Z"))
                .unwrap();
        }
        assert_eq!(failures(&j, "PRC"), Some(2));
        // Any run that did not fail ends the streak (as in the scheduler).
        for outcome in [Outcome::Ok, Outcome::Held, Outcome::Disabled] {
            j.log_run(&run("PRC", outcome, "2026-11-26T10:01:00Z"))
                .unwrap();
            assert_eq!(failures(&j, "PRC"), Some(0), "{outcome:?}");
        }
        for _ in 0..3 {
            j.log_run(&run("PRC", Outcome::Failed, "2026-11-26T10:02:00Z"))
                .unwrap();
            // Another job's runs in between change nothing.
            j.log_run(&run("ETQ", Outcome::Ok, "2026-11-26T10:02:00Z"))
                .unwrap();
        }
        assert_eq!(failures(&j, "PRC"), Some(3));
        assert_eq!(failures(&j, "ETQ"), Some(0));
    }
}
