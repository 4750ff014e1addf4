//! lojad's configuration: one TOML file in the OS-standard place, every key
//! overridable by environment (`LOJAD_<SECTION>_<KEY>`) and by flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreSection,
    pub central: CentralSection,
    pub pos: PosSection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub log: LogSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store's node id at the central.
    pub id: String,
    /// Where replica.db, outbox.db, journal.db, secrets/ and logs/ live.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralSection {
    /// e.g. `https://retaguarda.example.com.br` (plain http only for loopback).
    pub url: String,
    /// The store's bearer token at the central. Secret: masked in `config show`, never logged.
    pub token: String,
    /// Extra CA certificate (PEM) to trust for the central, besides the OS's.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosSection {
    /// 127.0.0.1 by default; the POS API is for this PC only.
    #[serde(default = "default_pos_listen")]
    pub listen: SocketAddr,
    /// One token per POS terminal.
    #[serde(default)]
    pub tokens: Vec<PosToken>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosToken {
    pub terminal: String,
    /// Secret: masked in `config show`, never logged.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Rows per feed page asked of the central.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Long-poll the central's events endpoint for push hints.
    #[serde(default = "default_true")]
    pub push: bool,
    /// Documents per upload batch.
    #[serde(default = "default_upload_batch")]
    pub upload_batch: u32,
    /// Directory of task files overriding the embedded defaults.
    #[serde(default)]
    pub tasks_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Delivered documents are purged after this many days.
    #[serde(default = "default_delivered_days")]
    pub delivered_days: u32,
    /// Sale XML is kept at least this long (fiscal rule: 5 years by default).
    #[serde(default = "default_xml_days")]
    pub xml_days: u32,
    #[serde(default = "default_ticket_days")]
    pub ticket_days: u32,
    #[serde(default = "default_ticket_max_mb")]
    pub ticket_max_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// tracing filter, e.g. `info` or `lojad=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Days of rolling log files kept in DATA_DIR/logs.
    #[serde(default = "default_log_days")]
    pub keep_days: u32,
}

fn default_timeout_secs() -> u64 {
    30
}
fn default_pos_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}
fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
fn default_page_size() -> u32 {
    20_000
}
fn default_true() -> bool {
    true
}
fn default_upload_batch() -> u32 {
    500
}
fn default_delivered_days() -> u32 {
    30
}
fn default_xml_days() -> u32 {
    5 * 366
}
fn default_ticket_days() -> u32 {
    30
}
fn default_ticket_max_mb() -> u64 {
    512
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_days() -> u32 {
    14
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            page_size: default_page_size(),
            push: true,
            upload_batch: default_upload_batch(),
            tasks_dir: None,
        }
    }
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            delivered_days: default_delivered_days(),
            xml_days: default_xml_days(),
            ticket_days: default_ticket_days(),
            ticket_max_mb: default_ticket_max_mb(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: default_log_level(), keep_days: default_log_days() }
    }
}
