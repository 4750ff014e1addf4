//! The outbox (`outbox.db`): the store's documents until the central has
//! acknowledged them. `synchronous=FULL`: a document is on disk before the
//! POS hears it was accepted.

use std::path::Path;

use loja_protocol::{Document, DocumentAck, DocumentKind};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::Result;

/// A document the POS offers.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub id: Uuid,
    pub kind: DocumentKind,
    pub body: Value,
}

/// The outbox's answer to an offered document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    /// The id was taken already: this is the document stored the first time.
    pub duplicate: bool,
    pub store_seq: u64,
    pub register: String,
}

/// What a batch acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AckSummary {
    pub delivered: u64,
    pub duplicates: u64,
    /// Rejected for good by the central: parked as failed, out of the queue.
    pub parked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct OutboxStats {
    /// Waiting for delivery (not parked).
    pub pending: u64,
    /// Parked: rejected by the central, waiting for a fix or reprocess.
    pub failed: u64,
    pub delivered: u64,
    /// accepted_at of the oldest pending document (RFC 3339).
    pub oldest_pending_at: Option<String>,
    pub oldest_pending_age_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedDocument {
    pub id: Uuid,
    pub kind: DocumentKind,
    pub register: String,
    pub store_seq: u64,
    pub accepted_at: String,
    pub attempts: u64,
    pub reason: String,
    pub ticket: Option<i64>,
}

/// `pending`, `delivered` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDocument {
    pub document: Document,
    pub status: String,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Purged {
    pub documents: u64,
    pub xml_documents: u64,
}

pub struct Outbox {
    pub(crate) conn: rusqlite::Connection,
}

impl Outbox {
    /// Opens (creating and migrating) `DIR/outbox.db`; WAL, synchronous=FULL.
    pub fn open(dir: &Path) -> Result<Outbox> {
        let _ = dir;
        todo!("replica: Outbox::open")
    }

    /// Validates (types, totals, check digits — `DocumentKind::validate_body`
    /// — and state: a cash movement/close/sale names an open cash session of
    /// its register, a close closes it, a sale_payment/sale_xml names a sale
    /// this outbox holds) and stores durably. The same id again answers
    /// `duplicate: true` with the first document's seq and stores nothing.
    pub fn accept(&mut self, doc: &NewDocument) -> Result<Accepted> {
        let _ = doc;
        todo!("replica: Outbox::accept")
    }

    /// Group commit: each document is validated on its own (its own
    /// `Result`), the valid ones are stored in one transaction, one fsync.
    /// The outer error means the commit failed and none was stored.
    pub fn accept_many(&mut self, docs: &[NewDocument]) -> Result<Vec<Result<Accepted>>> {
        let _ = docs;
        todo!("replica: Outbox::accept_many")
    }

    /// The next documents to send, pending only, in store_seq order (so a
    /// register's documents never overtake each other), at most `max_docs`
    /// and about `max_bytes` of bodies (always at least one).
    pub fn next_batch(&self, max_docs: usize, max_bytes: usize) -> Result<Vec<Document>> {
        let _ = (max_docs, max_bytes);
        todo!("replica: Outbox::next_batch")
    }

    /// Applies the central's acks: accepted/duplicate → delivered; rejected →
    /// parked as failed with the reason. Ids not in `acks` stay pending.
    pub fn record_acks(&mut self, acks: &[DocumentAck], ticket: Option<i64>) -> Result<AckSummary> {
        let _ = (acks, ticket);
        todo!("replica: Outbox::record_acks")
    }

    /// A transient failure (central down, 5xx, timeout): attempts += 1 and
    /// the error kept; the documents stay pending.
    pub fn record_failure(&mut self, ids: &[Uuid], error: &str) -> Result<()> {
        let _ = (ids, error);
        todo!("replica: Outbox::record_failure")
    }

    /// Puts documents (failed or delivered) back in the queue; returns how many.
    pub fn requeue(&mut self, ids: &[Uuid]) -> Result<u64> {
        let _ = ids;
        todo!("replica: Outbox::requeue")
    }

    pub fn stats(&self) -> Result<OutboxStats> {
        todo!("replica: Outbox::stats")
    }

    pub fn failed(&self, limit: u32) -> Result<Vec<FailedDocument>> {
        let _ = limit;
        todo!("replica: Outbox::failed")
    }

    pub fn get(&self, id: Uuid) -> Result<Option<StoredDocument>> {
        let _ = id;
        todo!("replica: Outbox::get")
    }

    /// Deletes delivered documents older than `delivered_days`, except
    /// sale_xml documents, kept `xml_days` (the fiscal retention setting).
    pub fn purge(&mut self, delivered_days: u32, xml_days: u32) -> Result<Purged> {
        let _ = (delivered_days, xml_days);
        todo!("replica: Outbox::purge")
    }

    pub fn integrity_check(&self) -> Result<Vec<String>> {
        todo!("replica: Outbox::integrity_check")
    }
}
