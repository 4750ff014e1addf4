//! The journal (`journal.db`): tickets, the integration log by module code,
//! and the integration switches (the old systems' `ticket`/`conteudoticket`,
//! `LogIntegracao` and `InterfaceIntegracao`).

use std::path::Path;

use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A feed page download.
    Feed,
    /// A document batch upload.
    Upload,
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
    /// Entity name (feeds) or "documents" (uploads).
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
}

pub struct Journal {
    pub(crate) conn: rusqlite::Connection,
}

impl Journal {
    /// Opens (creating and migrating) `DIR/journal.db`; WAL.
    pub fn open(dir: &Path) -> Result<Journal> {
        let _ = dir;
        todo!("replica: Journal::open")
    }

    /// Archives a ticket (payloads zstd-compressed; a secret one redacted);
    /// returns its id.
    pub fn record_ticket(&self, ticket: &NewTicket) -> Result<i64> {
        let _ = ticket;
        todo!("replica: Journal::record_ticket")
    }

    /// Newest first.
    pub fn tickets(&self, filter: &TicketFilter) -> Result<Vec<TicketSummary>> {
        let _ = filter;
        todo!("replica: Journal::tickets")
    }

    pub fn ticket(&self, id: i64) -> Result<Option<TicketDetail>> {
        let _ = id;
        todo!("replica: Journal::ticket")
    }

    /// Per kind and subject since `since` (RFC 3339).
    pub fn report(&self, since: &str) -> Result<Vec<ReportRow>> {
        let _ = since;
        todo!("replica: Journal::report")
    }

    /// Drops tickets older than `max_age_days`, then the oldest until the
    /// archive is under `max_bytes`; returns how many were dropped.
    pub fn purge_tickets(&self, max_age_days: u32, max_bytes: u64) -> Result<u64> {
        let _ = (max_age_days, max_bytes);
        todo!("replica: Journal::purge_tickets")
    }

    pub fn log_run(&self, run: &JobRun) -> Result<()> {
        let _ = run;
        todo!("replica: Journal::log_run")
    }

    /// Newest first.
    pub fn log_entries(&self, filter: &LogFilter) -> Result<Vec<JobRun>> {
        let _ = filter;
        todo!("replica: Journal::log_entries")
    }

    /// The integration switch of a job (default on).
    pub fn set_enabled(&self, code: &str, enabled: bool) -> Result<()> {
        let _ = (code, enabled);
        todo!("replica: Journal::set_enabled")
    }

    pub fn is_enabled(&self, code: &str) -> Result<bool> {
        let _ = code;
        todo!("replica: Journal::is_enabled")
    }

    /// Every job seen in the log or with a switch, by code.
    pub fn job_states(&self) -> Result<Vec<JobState>> {
        todo!("replica: Journal::job_states")
    }
}
