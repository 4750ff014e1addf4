//! The outbox (`outbox.db`): the store's documents until the central has
//! acknowledged them. `synchronous=FULL`: a document is on disk before the
//! POS hears it was accepted.

use std::path::{Path, PathBuf};

use loja_protocol::{AckStatus, Document, DocumentAck, DocumentKind, FieldError};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::SqlCtx;
use crate::migrate::{self, Sync};
use crate::{ReplicaError, Result};

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
    pub(crate) path: PathBuf,
}

/// The file name of the outbox in the data dir.
pub(crate) const FILE: &str = "outbox.db";

const DOC_COLUMNS: &str = "store_seq, id, kind, register, accepted_at, body";

impl Outbox {
    /// Opens (creating and migrating) `DIR/outbox.db`; WAL, synchronous=FULL.
    pub fn open(dir: &Path) -> Result<Outbox> {
        let path = dir.join(FILE);
        let conn = migrate::open_migrated(&path, Sync::Full, migrate::OUTBOX)?;
        Ok(Outbox { conn, path })
    }

    /// Validates (types, totals, check digits — `DocumentKind::validate_body`
    /// — and state: a cash movement/close/sale names an open cash session of
    /// its register, a close closes it, a sale_payment/sale_xml names a sale
    /// this outbox holds) and stores durably. The same id again answers
    /// `duplicate: true` with the first document's seq and stores nothing.
    pub fn accept(&mut self, doc: &NewDocument) -> Result<Accepted> {
        let mut results = self.accept_many(std::slice::from_ref(doc))?;
        results
            .pop()
            .unwrap_or_else(|| Err(FieldError::new("body", "no document").into()))
    }

    /// Group commit: each document is validated on its own (its own
    /// `Result`), the valid ones are stored in one transaction, one fsync.
    /// The outer error means the commit failed and none was stored.
    pub fn accept_many(&mut self, docs: &[NewDocument]) -> Result<Vec<Result<Accepted>>> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin accept")?;
        let now = loja_protocol::time::now_rfc3339();
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            match accept_one(&tx, path, doc, &now) {
                Ok(a) => out.push(Ok(a)),
                // A document's own fault: answered to it, the group goes on.
                Err(e @ ReplicaError::Invalid(_)) => out.push(Err(e)),
                // The file's fault (disk full, read-only, I/O): none is stored.
                Err(e) => return Err(e),
            }
        }
        tx.commit().ctx(path, "commit documents")?;
        Ok(out)
    }

    /// The next documents to send, pending only, in store_seq order (so a
    /// register's documents never overtake each other), at most `max_docs`
    /// and about `max_bytes` of bodies (always at least one).
    pub fn next_batch(&self, max_docs: usize, max_bytes: usize) -> Result<Vec<Document>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DOC_COLUMNS} FROM documents WHERE status = 'pending' ORDER BY store_seq LIMIT ?1"
            ))
            .ctx(path, "query pending documents")?;
        let limit = i64::try_from(max_docs.max(1)).unwrap_or(i64::MAX);
        let mut rows = stmt.query([limit]).ctx(path, "query pending documents")?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(r) = rows.next().ctx(path, "query pending documents")? {
            let body_len = r
                .get_ref(5)
                .ctx(path, "read documents")?
                .as_bytes()
                .map(<[u8]>::len)
                .unwrap_or(0);
            if !out.is_empty() && bytes + body_len > max_bytes {
                break;
            }
            bytes += body_len;
            out.push(read_document(r, path)?);
        }
        Ok(out)
    }

    /// Applies the central's acks: accepted/duplicate → delivered; rejected →
    /// parked as failed with the reason. Ids not in `acks` stay pending.
    /// `delivered` counts `accepted` acks, `duplicates` the `duplicate` ones
    /// (both now delivered); acks for documents that are not pending change
    /// nothing and are not counted.
    pub fn record_acks(&mut self, acks: &[DocumentAck], ticket: Option<i64>) -> Result<AckSummary> {
        let path = &self.path;
        let now = loja_protocol::time::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin acks")?;
        let mut summary = AckSummary::default();
        {
            let mut deliver = tx
                .prepare_cached(
                    "UPDATE documents SET status = 'delivered', delivered_at = ?2, ticket = ?3, \
                     attempts = attempts + 1, last_error = NULL WHERE id = ?1 AND status = 'pending'",
                )
                .ctx(path, "record acks")?;
            let mut park = tx
                .prepare_cached(
                    "UPDATE documents SET status = 'failed', last_error = ?2, ticket = ?3, \
                     attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'",
                )
                .ctx(path, "record acks")?;
            for ack in acks {
                let id = ack.id.to_string();
                match ack.status {
                    AckStatus::Accepted | AckStatus::Duplicate => {
                        let n = deliver
                            .execute(params![id, now, ticket])
                            .ctx(path, "record acks")?;
                        if ack.status == AckStatus::Accepted {
                            summary.delivered += n as u64;
                        } else {
                            summary.duplicates += n as u64;
                        }
                    }
                    AckStatus::Rejected => {
                        let reason = ack.error.as_deref().unwrap_or("rejected by the central");
                        summary.parked +=
                            park.execute(params![id, reason, ticket])
                                .ctx(path, "record acks")? as u64;
                    }
                }
            }
        }
        tx.commit().ctx(path, "commit acks")?;
        Ok(summary)
    }

    /// A transient failure (central down, 5xx, timeout): attempts += 1 and
    /// the error kept; the documents stay pending.
    pub fn record_failure(&mut self, ids: &[Uuid], error: &str) -> Result<()> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin failure")?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE documents SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND status = 'pending'",
                )
                .ctx(path, "record failure")?;
            for id in ids {
                stmt.execute(params![id.to_string(), error])
                    .ctx(path, "record failure")?;
            }
        }
        tx.commit().ctx(path, "commit failure")
    }

    /// Puts documents (failed or delivered) back in the queue; returns how many.
    pub fn requeue(&mut self, ids: &[Uuid]) -> Result<u64> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin requeue")?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE documents SET status = 'pending', delivered_at = NULL WHERE id = ?1 AND status != 'pending'",
                )
                .ctx(path, "requeue")?;
            for id in ids {
                n += stmt.execute([id.to_string()]).ctx(path, "requeue")? as u64;
            }
        }
        tx.commit().ctx(path, "commit requeue")?;
        Ok(n)
    }

    pub fn stats(&self) -> Result<OutboxStats> {
        let path = &self.path;
        let mut stats = OutboxStats::default();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT status, count(*) FROM documents GROUP BY status")
                .ctx(path, "outbox stats")?;
            let mut rows = stmt.query([]).ctx(path, "outbox stats")?;
            while let Some(r) = rows.next().ctx(path, "outbox stats")? {
                let status: String = r.get(0).ctx(path, "outbox stats")?;
                let n = r.get::<_, i64>(1).ctx(path, "outbox stats")?.max(0) as u64;
                match status.as_str() {
                    "pending" => stats.pending = n,
                    "failed" => stats.failed = n,
                    "delivered" => stats.delivered = n,
                    _ => {}
                }
            }
        }
        let oldest: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT accepted_at FROM documents WHERE status = 'pending' ORDER BY store_seq LIMIT 1",
            )
            .ctx(path, "outbox stats")?
            .query_row([], |r| r.get(0))
            .optional()
            .ctx(path, "outbox stats")?;
        if let Some(at) = oldest {
            stats.oldest_pending_age_secs = loja_protocol::time::parse(&at)
                .map(|t| (OffsetDateTime::now_utc() - t).whole_seconds().max(0) as u64);
            stats.oldest_pending_at = Some(at);
        }
        Ok(stats)
    }

    /// Parked documents, oldest first; `limit` 0 means all.
    pub fn failed(&self, limit: u32) -> Result<Vec<FailedDocument>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, register, store_seq, accepted_at, attempts, last_error, ticket FROM documents \
                 WHERE status = 'failed' ORDER BY store_seq LIMIT ?1",
            )
            .ctx(path, "query failed documents")?;
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let mut rows = stmt.query([limit]).ctx(path, "query failed documents")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(path, "query failed documents")? {
            let get = |e| ReplicaError::sqlite(path, "read failed documents", e);
            let id: String = r.get(0).map_err(get)?;
            let kind: String = r.get(1).map_err(get)?;
            out.push(FailedDocument {
                id: parse_id(&id, path)?,
                kind: parse_kind(&kind, path)?,
                register: r.get(2).map_err(get)?,
                store_seq: r.get::<_, i64>(3).map_err(get)?.max(0) as u64,
                accepted_at: r.get(4).map_err(get)?,
                attempts: r.get::<_, i64>(5).map_err(get)?.max(0) as u64,
                reason: r
                    .get::<_, Option<String>>(6)
                    .map_err(get)?
                    .unwrap_or_default(),
                ticket: r.get(7).map_err(get)?,
            });
        }
        Ok(out)
    }

    pub fn get(&self, id: Uuid) -> Result<Option<StoredDocument>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DOC_COLUMNS}, status, attempts, last_error, delivered_at FROM documents WHERE id = ?1"
            ))
            .ctx(path, "query document")?;
        let mut rows = stmt.query([id.to_string()]).ctx(path, "query document")?;
        let Some(r) = rows.next().ctx(path, "query document")? else {
            return Ok(None);
        };
        let get = |e| ReplicaError::sqlite(path, "read document", e);
        Ok(Some(StoredDocument {
            document: read_document(r, path)?,
            status: r.get(6).map_err(get)?,
            attempts: r.get::<_, i64>(7).map_err(get)?.max(0) as u64,
            last_error: r.get(8).map_err(get)?,
            delivered_at: r.get(9).map_err(get)?,
        }))
    }

    /// Deletes delivered documents older than `delivered_days`, except
    /// sale_xml documents, kept `xml_days` (the fiscal retention setting).
    /// A sale that carries its `xml` counts as an XML document. Closed cash
    /// sessions older than `delivered_days` go too; open ones never.
    pub fn purge(&mut self, delivered_days: u32, xml_days: u32) -> Result<Purged> {
        let path = &self.path;
        let now = OffsetDateTime::now_utc();
        let cutoff =
            |days: u32| loja_protocol::time::format(now - time::Duration::days(i64::from(days)));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin purge")?;
        let documents = tx
            .execute(
                "DELETE FROM documents WHERE status = 'delivered' AND has_xml = 0 AND delivered_at < ?1",
                [cutoff(delivered_days)],
            )
            .ctx(path, "purge documents")? as u64;
        let xml_documents = tx
            .execute(
                "DELETE FROM documents WHERE status = 'delivered' AND has_xml = 1 AND delivered_at < ?1",
                [cutoff(xml_days)],
            )
            .ctx(path, "purge XML documents")? as u64;
        tx.execute(
            "DELETE FROM cash_sessions WHERE closed_at IS NOT NULL AND closed_at < ?1",
            [cutoff(delivered_days)],
        )
        .ctx(path, "purge cash sessions")?;
        tx.commit().ctx(path, "commit purge")?;
        Ok(Purged {
            documents,
            xml_documents,
        })
    }

    pub fn integrity_check(&self) -> Result<Vec<String>> {
        migrate::integrity_check(&self.conn, &self.path)
    }

    /// Where outbox.db is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook: lets the file grow by at most `extra_pages` pages from
    /// now on, so a test can fill "the disk". Returns the new limit.
    #[doc(hidden)]
    pub fn set_max_page_count_for_test(&self, extra_pages: u64) -> Result<u64> {
        let path = &self.path;
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .ctx(path, "page_count")?;
        let limit = pages.max(0) as u64 + extra_pages;
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {limit}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .ctx(path, "max_page_count")
            .map(|n| n.max(0) as u64)
    }

    /// Test hook: makes this connection refuse writes (as a read-only mount would).
    #[doc(hidden)]
    pub fn set_read_only_for_test(&self, read_only: bool) -> Result<()> {
        self.conn
            .pragma_update(None, "query_only", read_only)
            .ctx(&self.path, "query_only")
    }
}

fn parse_id(id: &str, path: &Path) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| ReplicaError::corrupt(path, format!("document id {id:?}")))
}

fn parse_kind(kind: &str, path: &Path) -> Result<DocumentKind> {
    DocumentKind::parse(kind)
        .ok_or_else(|| ReplicaError::corrupt(path, format!("document kind {kind:?}")))
}

/// Reads `DOC_COLUMNS` (the first six columns of `r`).
fn read_document(r: &rusqlite::Row<'_>, path: &Path) -> Result<Document> {
    let get = |e| ReplicaError::sqlite(path, "read document", e);
    let id: String = r.get(1).map_err(get)?;
    let kind: String = r.get(2).map_err(get)?;
    let body = r
        .get_ref(5)
        .map_err(get)?
        .as_bytes()
        .map_err(|e| get(e.into()))?;
    Ok(Document {
        id: parse_id(&id, path)?,
        kind: parse_kind(&kind, path)?,
        register: r.get(3).map_err(get)?,
        store_seq: r.get::<_, i64>(0).map_err(get)?.max(0) as u64,
        accepted_at: r.get(4).map_err(get)?,
        body: serde_json::from_slice(body)
            .map_err(|_| ReplicaError::corrupt(path, format!("body of document {id}")))?,
    })
}

/// The uuid in `field` of a (validated) body.
fn uuid_field(body: &Value, field: &str) -> Result<Uuid> {
    body.get(field)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| FieldError::new(field, "must be a document id (UUID)").into())
}

/// Checks that `session` is an open cash session of `register`.
fn open_session(tx: &Transaction<'_>, path: &Path, session: &Uuid, register: &str) -> Result<()> {
    let found: Option<(String, Option<String>)> = tx
        .prepare_cached("SELECT register, closed_at FROM cash_sessions WHERE session_id = ?1")
        .ctx(path, "query cash sessions")?
        .query_row([session.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ctx(path, "query cash sessions")?;
    match found {
        None => Err(FieldError::new(
            "session_id",
            format!("{session} is not a cash session of this store"),
        )
        .into()),
        Some((reg, _)) if reg != register => Err(FieldError::new(
            "session_id",
            format!("{session} is a cash session of register {reg}, not {register}"),
        )
        .into()),
        Some((_, Some(_))) => {
            Err(FieldError::new("session_id", format!("cash session {session} is closed")).into())
        }
        Some((_, None)) => Ok(()),
    }
}

/// Validates and inserts one document inside the group's transaction.
/// Validation comes before any write, so a refused document leaves no trace.
fn accept_one(tx: &Transaction<'_>, path: &Path, doc: &NewDocument, now: &str) -> Result<Accepted> {
    let id = doc.id.to_string();
    let existing: Option<(i64, String)> = tx
        .prepare_cached("SELECT store_seq, register FROM documents WHERE id = ?1")
        .ctx(path, "query documents")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ctx(path, "query documents")?;
    if let Some((seq, register)) = existing {
        return Ok(Accepted {
            id: doc.id,
            duplicate: true,
            store_seq: seq.max(0) as u64,
            register,
        });
    }
    let register = doc.kind.validate_body(&doc.body)?;
    let body = &doc.body;
    let mut has_xml = false;
    match doc.kind {
        DocumentKind::CashOpen => {
            let open: Option<String> = tx
                .prepare_cached("SELECT session_id FROM cash_sessions WHERE register = ?1 AND closed_at IS NULL")
                .ctx(path, "query cash sessions")?
                .query_row([&register], |r| r.get(0))
                .optional()
                .ctx(path, "query cash sessions")?;
            if let Some(s) = open {
                return Err(FieldError::new(
                    "register",
                    format!("register {register} has cash session {s} open"),
                )
                .into());
            }
            tx.prepare_cached(
                "INSERT INTO cash_sessions (session_id, register, opened_at) VALUES (?1, ?2, ?3)",
            )
            .ctx(path, "open cash session")?
            .execute(params![id, register, now])
            .ctx(path, "open cash session")?;
        }
        DocumentKind::CashMovement | DocumentKind::Sale | DocumentKind::CashClose => {
            let session = uuid_field(body, "session_id")?;
            open_session(tx, path, &session, &register)?;
            if doc.kind == DocumentKind::CashClose {
                tx.prepare_cached("UPDATE cash_sessions SET closed_at = ?2 WHERE session_id = ?1")
                    .ctx(path, "close cash session")?
                    .execute(params![session.to_string(), now])
                    .ctx(path, "close cash session")?;
            }
            has_xml =
                doc.kind == DocumentKind::Sale && body.get("xml").is_some_and(|x| !x.is_null());
        }
        DocumentKind::SalePayment | DocumentKind::SaleXml => {
            let sale = uuid_field(body, "sale_id")?;
            let found: Option<i64> = tx
                .prepare_cached("SELECT store_seq FROM documents WHERE id = ?1 AND kind = 'sale'")
                .ctx(path, "query sales")?
                .query_row([sale.to_string()], |r| r.get(0))
                .optional()
                .ctx(path, "query sales")?;
            if found.is_none() {
                return Err(FieldError::new(
                    "sale_id",
                    format!("{sale} is not a sale in this store's outbox"),
                )
                .into());
            }
            has_xml = doc.kind == DocumentKind::SaleXml;
        }
        DocumentKind::Customer | DocumentKind::ReducaoZ | DocumentKind::OmniOrderStatus => {}
    }
    let text = serde_json::to_string(body).map_err(|e| FieldError::new("body", e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO documents (id, kind, register, accepted_at, body, has_xml) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .ctx(path, "insert document")?
    .execute(params![id, doc.kind.as_str(), register, now, text, has_xml])
    .ctx(path, "insert document")?;
    let seq = tx.last_insert_rowid();
    Ok(Accepted {
        id: doc.id,
        duplicate: false,
        store_seq: seq.max(0) as u64,
        register,
    })
}
