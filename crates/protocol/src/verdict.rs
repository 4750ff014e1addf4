//! The ERP's verdict on a store document, back to the store: the ERP tells
//! the central what it did with each document it took from the queue
//! (processed, or rejected with a code and a message); each store pulls the
//! verdicts on its own documents and parks the rejected ones with the ERP's
//! message.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    Processed,
    Rejected,
}

impl VerdictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Processed => "processed",
            VerdictStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<VerdictStatus> {
        match s {
            "processed" => Some(VerdictStatus::Processed),
            "rejected" => Some(VerdictStatus::Rejected),
            _ => None,
        }
    }
}

/// One verdict, as the ERP gives it (`POST /v1/admin/documents/verdicts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub id: Uuid,
    pub status: VerdictStatus,
    /// The ERP's error code (a rejection's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /v1/admin/documents/verdicts` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdicts {
    pub verdicts: Vec<Verdict>,
}

/// A verdict as a store reads it: in the central's order (`seq`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreVerdict {
    pub seq: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// When the central recorded it (RFC 3339).
    pub at: String,
}

/// `GET /v1/stores/{store}/verdicts?after=SEQ` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictPage {
    pub verdicts: Vec<StoreVerdict>,
    pub next: u64,
    pub more: bool,
}
