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

use crate::corrections::Replaced;
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

/// A document stored with its reconciliation (a cash close, a Redução Z).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub id: String,
    pub kind: String,
    pub register: String,
    pub accepted_at: String,
    /// `loja_protocol::reconcile::Reconciliation` as JSON.
    pub reconciliation: Value,
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
    /// Refused and corrected by another document (`replaces`).
    pub replaced: u64,
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
    /// Set by [`Outbox::defer_checkpoints`]; dropped after `conn`.
    checkpointer: Option<crate::Checkpointer>,
    /// `replica.db`, read-only, opened when an omni document first needs
    /// the central's view of an order.
    replica: Option<rusqlite::Connection>,
    /// How long accepting an omni line holds its stock.
    hold: time::Duration,
    /// This store's id (lojad's `store.id`): who took an omni return.
    store: String,
}

/// How long an accepted omni line holds its stock unless told otherwise.
pub const DEFAULT_OMNI_HOLD_HOURS: u32 = 24;

/// The file name of the outbox in the data dir.
pub(crate) const FILE: &str = "outbox.db";

const DOC_COLUMNS: &str =
    "store_seq, id, kind, register, accepted_at, body, reoffer, reconciliation, replaces";

impl Outbox {
    /// Opens (creating and migrating) `DIR/outbox.db`; WAL, synchronous=FULL.
    pub fn open(dir: &Path) -> Result<Outbox> {
        let path = dir.join(FILE);
        let conn = migrate::open_migrated(&path, Sync::Full, migrate::OUTBOX)?;
        Ok(Outbox {
            conn,
            path,
            checkpointer: None,
            replica: None,
            hold: time::Duration::hours(i64::from(DEFAULT_OMNI_HOLD_HOURS)),
            store: String::new(),
        })
    }

    /// This store's id, recorded on the omni returns it takes.
    pub fn set_store(&mut self, store: &str) {
        store.clone_into(&mut self.store);
    }

    /// The order an omni return of `id` taken here is checked against
    /// (`None`: neither this store's nor fetched), after keeping `fetched`,
    /// the central's whole order, when lojad could fetch it.
    pub fn omni_returnable(
        &mut self,
        id: &str,
        fetched: Option<&loja_protocol::omni::Order>,
    ) -> Result<Option<loja_protocol::omni::Order>> {
        self.open_replica();
        let path = &self.path;
        // Only remembering the central's answer writes: a lookup without one
        // reads in a deferred transaction and never takes the write lock
        // the registers' sales wait on.
        let behavior = match fetched {
            Some(_) => TransactionBehavior::Immediate,
            None => TransactionBehavior::Deferred,
        };
        let tx = self
            .conn
            .transaction_with_behavior(behavior)
            .ctx(path, "begin omni lookup")?;
        if let Some(order) = fetched {
            let now = loja_protocol::time::now_rfc3339();
            crate::omni_local::remember(&tx, path, order, &now)?;
        }
        let order =
            crate::omni_local::returnable(&tx, self.replica.as_ref(), path, &self.store, id)?;
        tx.commit().ctx(path, "commit omni lookup")?;
        Ok(order)
    }

    /// How long accepting an omni line holds its stock (lojad's
    /// `omni.reservation_hours`).
    pub fn set_omni_hold_hours(&mut self, hours: u32) {
        self.hold = time::Duration::hours(i64::from(hours.max(1)));
    }

    /// The replica, read-only, for the central's view of an order (none
    /// before the store's first sync created it).
    fn open_replica(&mut self) -> Option<&rusqlite::Connection> {
        if self.replica.is_none() {
            let file = self.path.with_file_name(crate::catalog::FILE);
            if file.exists() {
                self.replica = rusqlite::Connection::open_with_flags(
                    &file,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .ok()
                .inspect(|c| {
                    let _ = c.busy_timeout(std::time::Duration::from_secs(5));
                });
            }
        }
        self.replica.as_ref()
    }

    /// Gives a pickup order to the register redeeming it (`session_id`: its
    /// open cash session). Another register holding it is answered
    /// [`omni_local::ClaimRefused::Held`]; the claim ends with the sale that
    /// redeems the order, a [`Outbox::release_claim`], or the session's close.
    pub fn claim_order(
        &mut self,
        order_id: &str,
        register: &str,
        session_id: &str,
    ) -> Result<std::result::Result<crate::omni_local::Claim, crate::omni_local::ClaimRefused>>
    {
        self.open_replica();
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin claim")?;
        let now = loja_protocol::time::now_rfc3339();
        let out = crate::omni_local::claim(
            &tx,
            self.replica.as_ref(),
            path,
            order_id,
            register,
            session_id,
            &now,
        )?;
        tx.commit().ctx(path, "commit claim")?;
        Ok(out)
    }

    /// Ends `register`'s claim of `order_id`; answers whether it held one.
    pub fn release_claim(&mut self, order_id: &str, register: &str) -> Result<bool> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin release")?;
        let released = crate::omni_local::release(&tx, path, order_id, register)?;
        tx.commit().ctx(path, "commit release")?;
        Ok(released)
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
        if docs
            .iter()
            .any(|d| crate::omni_local::acts_on_orders(d.kind, &d.body))
        {
            self.open_replica();
        }
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin accept")?;
        let now = loja_protocol::time::now_rfc3339();
        let omni = OmniCtx {
            rows: self.replica.as_ref(),
            hold_until: loja_protocol::time::format(OffsetDateTime::now_utc() + self.hold),
            store: &self.store,
        };
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            match accept_one(&tx, path, doc, &now, None, &omni) {
                Ok(a) => out.push(Ok(a)),
                // A document's own fault: answered to it, the group goes on.
                Err(e @ (ReplicaError::Invalid(_) | ReplicaError::IdTaken { .. })) => {
                    out.push(Err(e))
                }
                // The file's fault (disk full, read-only, I/O): none is stored.
                Err(e) => return Err(e),
            }
        }
        tx.commit().ctx(path, "commit documents")?;
        // The POS's stock reads the documents' stock moves at once.
        crate::catalog::note_commit();
        Ok(out)
    }

    /// Takes `doc` as the correction of `replaced`, a document of the same
    /// kind the central or the ERP refused: validated like any document (a
    /// sale may name its long-closed session), stored with `replaces`, and
    /// the refused one retired in the same transaction; its stock moves are
    /// undone by the correction's.
    pub fn replace(&mut self, replaced: Uuid, doc: &NewDocument) -> Result<Accepted> {
        if crate::omni_local::acts_on_orders(doc.kind, &doc.body) {
            return Err(FieldError::new(
                "kind",
                "an omni action or an order's sale is not corrected: act on the order again",
            )
            .into());
        }
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin replace")?;
        let now = loja_protocol::time::now_rfc3339();
        let old = crate::corrections::retire(&tx, path, replaced, doc.kind, doc.id)?;
        // Not an omni document (refused above): no order to read.
        let omni = OmniCtx {
            rows: None,
            hold_until: String::new(),
            store: &self.store,
        };
        let accepted = accept_one(&tx, path, doc, &now, Some(&old), &omni)?;
        if accepted.duplicate {
            return Err(FieldError::new(
                "id",
                format!("{} is taken by document {}", doc.id, accepted.store_seq),
            )
            .into());
        }
        tx.commit().ctx(path, "commit replace")?;
        crate::catalog::note_commit();
        Ok(accepted)
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
                     attempts = attempts + 1, last_error = NULL, reoffer = 0 WHERE id = ?1 AND status = 'pending'",
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
                    "UPDATE documents SET status = 'pending', delivered_at = NULL, \
                     reoffer = (status = 'delivered' OR last_error LIKE 'ERP %') \
                     WHERE id = ?1 AND status != 'pending' AND replaced_by IS NULL",
                )
                .ctx(path, "requeue")?;
            for id in ids {
                n += stmt.execute([id.to_string()]).ctx(path, "requeue")? as u64;
            }
        }
        tx.commit().ctx(path, "commit requeue")?;
        Ok(n)
    }

    /// The newest documents with a reconciliation (cash closes, Redução Z),
    /// newest first.
    pub fn recent_reconciliations(&self, limit: u32) -> Result<Vec<Reconciled>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, register, accepted_at, reconciliation FROM documents \
                 WHERE reconciliation IS NOT NULL ORDER BY store_seq DESC LIMIT ?1",
            )
            .ctx(path, "query reconciliations")?;
        let rows = stmt
            .query_map([limit], |r| {
                let text: String = r.get(4)?;
                Ok(Reconciled {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    register: r.get(2)?,
                    accepted_at: r.get(3)?,
                    reconciliation: serde_json::from_str(&text).unwrap_or(Value::Null),
                })
            })
            .ctx(path, "query reconciliations")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(path, "query reconciliations")?;
        Ok(rows)
    }

    /// The last ERP verdict this store has read (its position in the
    /// central's order; 0 before the first).
    pub fn verdict_cursor(&self) -> Result<u64> {
        let path = &self.path;
        let seq: i64 = self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM verdicts", [], |r| {
                r.get(0)
            })
            .ctx(path, "read verdicts")?;
        Ok(seq.max(0) as u64)
    }

    /// Records the ERP's verdicts on this store's documents: a rejected
    /// document is parked with the ERP's code and message (whatever its
    /// state here), so `lojad status` and the status page show it and
    /// `lojad tickets reprocess` can offer it again; `ticket` is the journal's
    /// record of the page they came in. Answers how many it parked.
    pub fn record_verdicts(
        &mut self,
        verdicts: &[loja_protocol::verdict::StoreVerdict],
        ticket: Option<i64>,
    ) -> Result<u64> {
        use loja_protocol::verdict::VerdictStatus;
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin verdicts")?;
        let mut parked = 0;
        {
            let mut keep = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO verdicts (seq, id, status, code, message, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .ctx(path, "record verdicts")?;
            let mut park = tx
                .prepare_cached(
                    "UPDATE documents SET status = 'failed', last_error = ?2, ticket = coalesce(?3, ticket) \
                     WHERE id = ?1 AND status != 'pending'",
                )
                .ctx(path, "record verdicts")?;
            for v in verdicts {
                let id = v.verdict.id.to_string();
                let n = keep
                    .execute(params![
                        v.seq as i64,
                        id,
                        v.verdict.status.as_str(),
                        v.verdict.code,
                        v.verdict.message,
                        v.at
                    ])
                    .ctx(path, "record verdicts")?;
                if n == 1 && v.verdict.status == VerdictStatus::Rejected {
                    let why = format!(
                        "ERP rejected{}: {}",
                        v.verdict
                            .code
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        v.verdict.message.as_deref().unwrap_or("no message")
                    );
                    parked += park
                        .execute(params![id, why, ticket])
                        .ctx(path, "record verdicts")? as u64;
                }
            }
        }
        tx.commit().ctx(path, "commit verdicts")?;
        Ok(parked)
    }

    pub fn stats(&self) -> Result<OutboxStats> {
        let path = &self.path;
        let mut stats = OutboxStats::default();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT CASE WHEN replaced_by IS NULL THEN status ELSE 'replaced' END, count(*) \
                     FROM documents GROUP BY 1",
                )
                .ctx(path, "outbox stats")?;
            let mut rows = stmt.query([]).ctx(path, "outbox stats")?;
            while let Some(r) = rows.next().ctx(path, "outbox stats")? {
                let status: String = r.get(0).ctx(path, "outbox stats")?;
                let n = r.get::<_, i64>(1).ctx(path, "outbox stats")?.max(0) as u64;
                match status.as_str() {
                    "pending" => stats.pending = n,
                    "failed" => stats.failed = n,
                    "delivered" => stats.delivered = n,
                    "replaced" => stats.replaced = n,
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
                 WHERE status = 'failed' AND replaced_by IS NULL ORDER BY store_seq LIMIT ?1",
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
            status: r.get(9).map_err(get)?,
            attempts: r.get::<_, i64>(10).map_err(get)?.max(0) as u64,
            last_error: r.get(11).map_err(get)?,
            delivered_at: r.get(12).map_err(get)?,
        }))
    }

    /// Every document of one kind still in the outbox (pending, parked, or
    /// delivered and not yet purged), oldest first. The daemon's start reads
    /// the customer sign-ups with it to put back into the replica the local
    /// rows a crash kept from being written.
    pub fn documents_of_kind(&self, kind: DocumentKind) -> Result<Vec<Document>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DOC_COLUMNS} FROM documents WHERE kind = ?1 ORDER BY store_seq"
            ))
            .ctx(path, "query documents of a kind")?;
        let mut rows = stmt
            .query([kind.as_str()])
            .ctx(path, "query documents of a kind")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx(path, "query documents of a kind")? {
            out.push(read_document(r, path)?);
        }
        Ok(out)
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
        // A refused document its correction replaced: kept as long as a
        // delivered one, from when it was taken.
        tx.execute(
            "DELETE FROM documents WHERE replaced_by IS NOT NULL AND accepted_at < ?1",
            [cutoff(delivered_days)],
        )
        .ctx(path, "purge replaced documents")?;
        tx.execute(
            "DELETE FROM cash_sessions WHERE closed_at IS NOT NULL AND closed_at < ?1",
            [cutoff(delivered_days)],
        )
        .ctx(path, "purge cash sessions")?;
        // What purged documents did to the stock and what they undid goes
        // with them: days after delivery the central's figure counts them.
        tx.execute_batch(
            "DELETE FROM stock_moves WHERE store_seq NOT IN (SELECT store_seq FROM documents);
             DELETE FROM sale_links WHERE doc_id NOT IN (SELECT id FROM documents);",
        )
        .ctx(path, "purge stock moves")?;
        tx.commit().ctx(path, "commit purge")?;
        Ok(Purged {
            documents,
            xml_documents,
        })
    }

    pub fn integrity_check(&self) -> Result<Vec<String>> {
        migrate::integrity_check(&self.conn, &self.path)
    }

    /// Moves WAL checkpoints off this connection's commit path to a
    /// [`crate::Checkpointer`] thread: a commit that crosses the
    /// auto-checkpoint threshold would otherwise copy the WAL into the file
    /// and fsync it before the POS hears back — the tail of the intake
    /// latency. For the long-lived writer of the intake.
    pub fn defer_checkpoints(&mut self) -> Result<()> {
        crate::checkpoint::defer(&self.conn, &self.path, "outbox", &mut self.checkpointer)
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

/// Reads `DOC_COLUMNS` (the first eight columns of `r`).
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
        reoffer: r.get::<_, bool>(6).map_err(get)?,
        reconciliation: r
            .get::<_, Option<String>>(7)
            .map_err(get)?
            .and_then(|t| serde_json::from_str(&t).ok()),
        replaces: r
            .get::<_, Option<String>>(8)
            .map_err(get)?
            .map(|t| parse_id(&t, path))
            .transpose()?,
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
fn open_session(
    tx: &Transaction<'_>,
    path: &Path,
    session: &Uuid,
    register: &str,
    closed_ok: bool,
) -> Result<()> {
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
        Some((_, Some(_))) if !closed_ok => {
            Err(FieldError::new("session_id", format!("cash session {session} is closed")).into())
        }
        Some(_) => Ok(()),
    }
}

/// What an omni document needs besides the outbox.
struct OmniCtx<'a> {
    /// The replica (the central's view of the orders).
    rows: Option<&'a rusqlite::Connection>,
    /// When a line accepted now stops holding its stock.
    hold_until: String,
    /// This store's id.
    store: &'a str,
}

/// Validates and inserts one document inside the group's transaction.
/// Validation comes before any write, so a refused document leaves no trace.
fn accept_one(
    tx: &Transaction<'_>,
    path: &Path,
    doc: &NewDocument,
    now: &str,
    replacing: Option<&Replaced>,
    omni: &OmniCtx<'_>,
) -> Result<Accepted> {
    let id = doc.id.to_string();
    let existing: Option<(i64, String, String, String)> = tx
        .prepare_cached("SELECT store_seq, register, kind, body FROM documents WHERE id = ?1")
        .ctx(path, "query documents")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .ctx(path, "query documents")?;
    if let Some((seq, register, kind, stored)) = existing {
        // A retry sends the same document; anything else under a taken id
        // is a POS bug that would otherwise lose the second document
        // behind a 200.
        let same = kind == doc.kind.as_str()
            && serde_json::from_str::<serde_json::Value>(&stored).is_ok_and(|b| b == doc.body);
        if !same {
            return Err(ReplicaError::IdTaken {
                id,
                kind,
                store_seq: seq.max(0) as u64,
            });
        }
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
            // A correction belongs to the session of the document it
            // replaces, long closed by the time the ERP refused it.
            open_session(tx, path, &session, &register, replacing.is_some())?;
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
        DocumentKind::SaleCancellation
        | DocumentKind::Return
        | DocumentKind::ReturnCancellation => {
            has_xml = doc.kind == DocumentKind::SaleCancellation
                && body.get("xml").is_some_and(|x| !x.is_null());
        }
        DocumentKind::StockMovement
        | DocumentKind::InventoryCount
        | DocumentKind::OmniAction
        | DocumentKind::OmniReturn => {}
        DocumentKind::Customer | DocumentKind::ReducaoZ | DocumentKind::OmniOrderStatus => {}
    }
    // What it undoes, checked: the sale of a cancellation or a return, the
    // return of a return cancellation.
    let undone = crate::sale_life::check(tx, path, doc.kind, body)?;
    let reconciliation = crate::reconciliation::of(tx, path, doc.kind, body)?;
    let mut effects = loja_protocol::stock::effects(doc.kind, body, undone.as_ref())?;
    // An omni action against the store's view of its order; a sale that
    // redeems an order against the register's claim.
    let taken = match doc.kind {
        DocumentKind::OmniAction => {
            Some(crate::omni_local::check_action(tx, omni.rows, path, body)?)
        }
        DocumentKind::Sale => crate::omni_local::check_redeem(tx, omni.rows, path, body)?,
        DocumentKind::OmniReturn => Some(crate::omni_local::check_return(
            tx, omni.rows, path, omni.store, &id, body,
        )?),
        _ => None,
    };
    if let Some(t) = &taken {
        effects.extend(t.effects.iter().cloned());
    }
    if let Some(r) = replacing {
        effects = loja_protocol::stock::replacing(effects, &r.effects);
    }
    let text = serde_json::to_string(body).map_err(|e| FieldError::new("body", e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO documents (id, kind, register, accepted_at, body, has_xml, reconciliation, replaces) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .ctx(path, "insert document")?
    .execute(params![
        id,
        doc.kind.as_str(),
        register,
        now,
        text,
        has_xml,
        reconciliation,
        replacing.map(|r| r.id.as_str())
    ])
    .ctx(path, "insert document")?;
    let seq = tx.last_insert_rowid();
    crate::sale_life::record(tx, path, &id, doc.kind, body, seq, &effects)?;
    if let Some(t) = &taken {
        crate::omni_local::record(tx, path, seq, t, &omni.hold_until)?;
    }
    Ok(Accepted {
        id: doc.id,
        duplicate: false,
        store_seq: seq.max(0) as u64,
        register,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(kind: DocumentKind, body: Value) -> NewDocument {
        NewDocument {
            id: Uuid::new_v4(),
            kind,
            body,
        }
    }

    fn open_cash(register: &str) -> NewDocument {
        doc(
            DocumentKind::CashOpen,
            json!({"register": register, "operator": "001", "opening_amount": 10000, "opened_at": "2026-11-26T08:00:00Z"}),
        )
    }

    fn sale(register: &str, session: Uuid, xml: Option<&str>) -> NewDocument {
        let mut body = json!({
            "register": register, "session_id": session, "number": 1, "operator": "001",
            "items": [{"product_code": "1", "qty": 1000, "unit_price": 500, "total": 500}],
            "total": 500, "payments": [{"method": "CASH", "amount": 500}],
            "sold_at": "2026-11-26T12:00:00Z"
        });
        if let Some(x) = xml {
            body["xml"] = json!(x);
        }
        doc(DocumentKind::Sale, body)
    }

    fn close(register: &str, session: Uuid) -> NewDocument {
        doc(
            DocumentKind::CashClose,
            json!({"register": register, "session_id": session, "operator": "001", "counted_amount": 10500, "closed_at": "2026-11-26T18:00:00Z"}),
        )
    }

    fn sale_xml(register: &str, sale: Uuid, xml: &str) -> NewDocument {
        doc(
            DocumentKind::SaleXml,
            json!({"sale_id": sale, "register": register, "access_key": "3".repeat(44), "xml": xml}),
        )
    }

    fn invalid_field(r: &Result<Accepted>) -> Option<String> {
        match r {
            Err(ReplicaError::Invalid(f)) => Some(f.field.clone()),
            _ => None,
        }
    }

    fn count(o: &Outbox) -> i64 {
        o.conn
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
            .unwrap()
    }

    fn moves(o: &Outbox, product: &str) -> Vec<(i64, i64, Option<i64>)> {
        let mut stmt = o
            .conn
            .prepare("SELECT store_seq, delta, counted FROM stock_moves WHERE product_code = ?1 ORDER BY store_seq")
            .unwrap();
        stmt.query_map([product], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_sales_life_is_checked_and_moves_the_stock() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        o.accept(&open).unwrap();
        let s = sale("PDV01", open.id, None);
        let sold = o.accept(&s).unwrap().store_seq as i64;
        assert_eq!(moves(&o, "1"), vec![(sold, -1000, None)]);
        let ret = |qty: i64| {
            doc(
                DocumentKind::Return,
                json!({"sale_id": s.id, "register": "PDV01", "reason_code": "02", "operator": "001",
                       "returned_at": "2026-11-26T13:00:00Z",
                       "items": [{"product_code": "1", "qty": qty, "refund": 100, "restock": true}],
                       "refunds": [{"method": "CASH", "amount": 100}]}),
            )
        };
        // More than was sold: refused, naming the line.
        assert_eq!(
            invalid_field(&o.accept(&ret(1001))).as_deref(),
            Some("items[0].qty")
        );
        let r1 = ret(600);
        let r1_seq = o.accept(&r1).unwrap().store_seq as i64;
        assert_eq!(
            invalid_field(&o.accept(&ret(500))).as_deref(),
            Some("items[0].qty"),
            "600 of 1000 returned"
        );
        // A sale with a live return cannot be cancelled.
        let cancel = doc(
            DocumentKind::SaleCancellation,
            json!({"sale_id": s.id, "register": "PDV01", "reason_code": "1", "operator": "001",
                   "cancelled_at": "2026-11-26T14:00:00Z"}),
        );
        assert_eq!(
            invalid_field(&o.accept(&cancel)).as_deref(),
            Some("sale_id")
        );
        // The return undone: its restock leaves again; then the sale cancels, once.
        let undo = doc(
            DocumentKind::ReturnCancellation,
            json!({"return_id": r1.id, "register": "PDV01", "reason_code": "9", "operator": "001",
                   "cancelled_at": "2026-11-26T13:30:00Z"}),
        );
        let undo_seq = o.accept(&undo).unwrap().store_seq as i64;
        let again = doc(DocumentKind::ReturnCancellation, undo.body.clone());
        assert_eq!(
            invalid_field(&o.accept(&again)).as_deref(),
            Some("return_id")
        );
        let cancelled = o.accept(&cancel).unwrap().store_seq as i64;
        let twice = doc(DocumentKind::SaleCancellation, cancel.body.clone());
        assert_eq!(invalid_field(&o.accept(&twice)).as_deref(), Some("sale_id"));
        assert_eq!(
            invalid_field(&o.accept(&ret(1))).as_deref(),
            Some("sale_id"),
            "a cancelled sale takes no return"
        );
        assert_eq!(
            moves(&o, "1"),
            vec![
                (sold, -1000, None),
                (r1_seq, 600, None),
                (undo_seq, -600, None),
                (cancelled, 1000, None)
            ]
        );
        // Unknown sale: refused.
        let mut ghost = ret(1);
        ghost.body["sale_id"] = json!(Uuid::new_v4());
        assert_eq!(invalid_field(&o.accept(&ghost)).as_deref(), Some("sale_id"));
        // A count sets.
        let count = doc(
            DocumentKind::InventoryCount,
            json!({"register": "PDV01", "operator": "001", "counted_at": "2026-11-26T21:00:00Z",
                   "items": [{"product_code": "1", "counted_qty": 7000}]}),
        );
        let counted = o.accept(&count).unwrap().store_seq as i64;
        assert_eq!(moves(&o, "1").last(), Some(&(counted, 0, Some(7000))));
    }

    #[test]
    fn accept_stores_once_and_answers_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        let a = o.accept(&open).unwrap();
        assert_eq!(
            a,
            Accepted {
                id: open.id,
                duplicate: false,
                store_seq: 1,
                register: "PDV01".into()
            }
        );
        let again = o.accept(&open).unwrap();
        assert_eq!(
            again,
            Accepted {
                duplicate: true,
                ..a.clone()
            }
        );
        // Same id with another kind or body: refused, the first one stands.
        let mut other = sale("PDV01", open.id, None);
        other.id = open.id;
        let err = o.accept(&other).unwrap_err();
        assert!(
            matches!(&err, ReplicaError::IdTaken { kind, store_seq: 1, .. } if kind == "cash_open"),
            "{err}"
        );
        let mut changed = open.clone();
        changed.body["opening_amount"] = serde_json::json!(1);
        assert!(matches!(
            o.accept(&changed),
            Err(ReplicaError::IdTaken { .. })
        ));
        assert_eq!(count(&o), 1);
        let stored = o.get(open.id).unwrap().unwrap();
        assert_eq!(stored.status, "pending");
        assert_eq!(stored.document.body, open.body);
        assert_eq!(stored.document.kind, DocumentKind::CashOpen);
        assert_eq!(o.get(Uuid::new_v4()).unwrap(), None);
        let bad = doc(
            DocumentKind::CashOpen,
            json!({"register": "PDV01", "operator": "001", "opening_amount": -1, "opened_at": "2026-11-26T08:00:00Z"}),
        );
        assert_eq!(
            invalid_field(&o.accept(&bad)).as_deref(),
            Some("opening_amount")
        );
    }

    #[test]
    fn a_close_goes_up_reconciled_and_a_z_checked_against_the_days_sales() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01"); // 100,00 float
        o.accept(&open).unwrap();
        o.accept(&sale("PDV01", open.id, None)).unwrap(); // 5,00 cash
        o.accept(&doc(
            DocumentKind::CashMovement,
            json!({"register": "PDV01", "session_id": open.id, "kind": "withdrawal", "amount": 2000,
                   "at": "2026-11-26T13:00:00Z"}),
        ))
        .unwrap();
        // Counted 82,00 where the documents say 100 + 5 − 20 = 85,00: 3,00 short.
        let mut c = close("PDV01", open.id);
        c.body["counted_amount"] = json!(8200);
        let seq = o.accept(&c).unwrap().store_seq;
        let batch = o.next_batch(100, 1 << 20).unwrap();
        let up = batch.iter().find(|d| d.store_seq == seq).unwrap();
        let r = up
            .reconciliation
            .as_ref()
            .expect("the close carries its reconciliation");
        assert_eq!(r["cash_close"]["cash_difference"], json!(-300), "{r}");
        // The day's Redução Z says 6,00 where the register sold 5,00: flagged, not refused.
        let z = doc(
            DocumentKind::ReducaoZ,
            json!({"register": "PDV01", "date": "2026-11-26", "crz": 1, "coo_start": 1, "coo_end": 1,
                   "gross_total": 600, "net_total": 600, "totals": [{"method": "CASH", "amount": 600}]}),
        );
        let zseq = o.accept(&z).unwrap().store_seq;
        let batch = o.next_batch(100, 1 << 20).unwrap();
        let up = batch.iter().find(|d| d.store_seq == zseq).unwrap();
        let check = &up.reconciliation.as_ref().unwrap()["reducao_z"];
        assert_eq!(
            (check["sales_total"].clone(), check["difference"].clone()),
            (json!(500), json!(100)),
            "{check}"
        );
    }

    #[test]
    fn cash_session_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open1 = open_cash("PDV01");
        o.accept(&open1).unwrap();
        // Two open sessions on one register: refused, naming `register`.
        assert_eq!(
            invalid_field(&o.accept(&open_cash("PDV01"))).as_deref(),
            Some("register")
        );
        // Another register may open.
        let open2 = open_cash("PDV02");
        o.accept(&open2).unwrap();
        // A sale must name an open session of its own register.
        assert_eq!(
            invalid_field(&o.accept(&sale("PDV01", Uuid::new_v4(), None))).as_deref(),
            Some("session_id")
        );
        assert_eq!(
            invalid_field(&o.accept(&sale("PDV01", open2.id, None))).as_deref(),
            Some("session_id")
        );
        let s = sale("PDV01", open1.id, None);
        o.accept(&s).unwrap();
        let mv = doc(
            DocumentKind::CashMovement,
            json!({"register": "PDV01", "session_id": open1.id, "kind": "withdrawal", "amount": 5000, "at": "2026-11-26T13:00:00Z"}),
        );
        o.accept(&mv).unwrap();
        // Payment and XML must name a sale held here.
        let pay = |sale_id: Uuid| {
            doc(
                DocumentKind::SalePayment,
                json!({"sale_id": sale_id, "register": "PDV01", "payment": {"method": "PIX", "amount": 100}, "at": "2026-11-26T12:01:00Z"}),
            )
        };
        assert_eq!(
            invalid_field(&o.accept(&pay(Uuid::new_v4()))).as_deref(),
            Some("sale_id")
        );
        assert_eq!(
            invalid_field(&o.accept(&pay(open1.id))).as_deref(),
            Some("sale_id")
        );
        o.accept(&pay(s.id)).unwrap();
        // Close closes: no more sales, and the register may open again.
        o.accept(&close("PDV01", open1.id)).unwrap();
        assert_eq!(
            invalid_field(&o.accept(&close("PDV01", open1.id))).as_deref(),
            Some("session_id")
        );
        assert_eq!(
            invalid_field(&o.accept(&sale("PDV01", open1.id, None))).as_deref(),
            Some("session_id")
        );
        o.accept(&open_cash("PDV01")).unwrap();
        // Documents without state rules go straight in.
        let z = doc(
            DocumentKind::ReducaoZ,
            json!({"register": "PDV01", "date": "2026-11-26", "crz": 1, "coo_start": 1, "coo_end": 9, "gross_total": 1000, "net_total": 1000}),
        );
        o.accept(&z).unwrap();
        assert_eq!(o.stats().unwrap().pending, 8);
    }

    #[test]
    fn group_commit_stores_the_valid_ones_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        let s1 = sale("PDV01", open.id, None);
        let bad = sale("PDV01", Uuid::new_v4(), None);
        let x = sale_xml("PDV01", s1.id, "<NFe>1</NFe>");
        let group = vec![open.clone(), s1.clone(), bad, x, s1.clone()];
        let results = o.accept_many(&group).unwrap();
        assert_eq!(results.len(), 5);
        assert_eq!(results[0].as_ref().unwrap().store_seq, 1);
        assert_eq!(results[1].as_ref().unwrap().store_seq, 2);
        assert_eq!(invalid_field(&results[2]).as_deref(), Some("session_id"));
        assert_eq!(results[3].as_ref().unwrap().store_seq, 3);
        // The same id twice in one group: the second is a duplicate.
        assert!(results[4].as_ref().unwrap().duplicate);
        assert_eq!(results[4].as_ref().unwrap().store_seq, 2);
        let batch = o.next_batch(10, 1 << 20).unwrap();
        assert_eq!(
            batch.iter().map(|d| d.store_seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(batch[1].id, s1.id);
        // max_docs and max_bytes bound the batch, never below one document.
        assert_eq!(o.next_batch(2, 1 << 20).unwrap().len(), 2);
        assert_eq!(o.next_batch(10, 1).unwrap().len(), 1);
    }

    #[test]
    fn sale_xml_is_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<NFe xmlns=\"http://www.portalfiscal.inf.br/nfe\">\t<x a='1'>Ação &amp; ç \\ \u{1F600}</x>  \n</NFe>\n";
        let s = sale("PDV01", open.id, Some(xml));
        let x = sale_xml("PDV01", s.id, xml);
        for r in o.accept_many(&[open, s.clone(), x.clone()]).unwrap() {
            r.unwrap();
        }
        for id in [s.id, x.id] {
            let d = o.get(id).unwrap().unwrap();
            assert_eq!(
                d.document.body["xml"].as_str().unwrap().as_bytes(),
                xml.as_bytes()
            );
        }
    }

    fn ack(id: Uuid, status: AckStatus, error: Option<&str>) -> DocumentAck {
        DocumentAck {
            id,
            status,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn acks_deliver_and_park_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        let s1 = sale("PDV01", open.id, None);
        let s2 = sale("PDV01", open.id, None);
        let s3 = sale("PDV01", open.id, None);
        for r in o
            .accept_many(&[open.clone(), s1.clone(), s2.clone(), s3.clone()])
            .unwrap()
        {
            r.unwrap();
        }
        o.record_failure(&[open.id, s1.id], "central down").unwrap();
        assert_eq!(o.get(s1.id).unwrap().unwrap().attempts, 1);
        assert_eq!(
            o.get(s1.id).unwrap().unwrap().last_error.as_deref(),
            Some("central down")
        );
        let summary = o
            .record_acks(
                &[
                    ack(open.id, AckStatus::Accepted, None),
                    ack(
                        s1.id,
                        AckStatus::Rejected,
                        Some("items[0].product_code: unknown"),
                    ),
                    ack(s2.id, AckStatus::Duplicate, None),
                ],
                Some(7),
            )
            .unwrap();
        assert_eq!(
            summary,
            AckSummary {
                delivered: 1,
                duplicates: 1,
                parked: 1
            }
        );
        // The parked sale is out of the queue and does not hold s3 back.
        let batch = o.next_batch(10, 1 << 20).unwrap();
        assert_eq!(batch.iter().map(|d| d.id).collect::<Vec<_>>(), vec![s3.id]);
        let failed = o.failed(0).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].id, failed[0].reason.as_str(), failed[0].ticket),
            (s1.id, "items[0].product_code: unknown", Some(7))
        );
        let st = o.stats().unwrap();
        assert_eq!((st.pending, st.failed, st.delivered), (1, 1, 2));
        assert!(st.oldest_pending_at.is_some() && st.oldest_pending_age_secs.is_some());
        let d = o.get(open.id).unwrap().unwrap();
        assert_eq!(d.status, "delivered");
        assert!(d.delivered_at.is_some());
        // Reprocess: back in the queue, in its original place.
        assert_eq!(o.requeue(&[s1.id, s3.id]).unwrap(), 1);
        let batch = o.next_batch(10, 1 << 20).unwrap();
        assert_eq!(
            batch.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![s1.id, s3.id]
        );
        assert!(o.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn purge_keeps_xml_longer() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        let s1 = sale("PDV01", open.id, None);
        let s2 = sale("PDV01", open.id, Some("<NFe/>"));
        let x = sale_xml("PDV01", s1.id, "<NFe/>");
        let pending = sale("PDV01", open.id, None);
        let c = close("PDV01", open.id);
        let all = [
            open.clone(),
            s1.clone(),
            s2.clone(),
            x.clone(),
            pending.clone(),
            c.clone(),
        ];
        for r in o.accept_many(&all).unwrap() {
            r.unwrap();
        }
        let acks: Vec<_> = [&open, &s1, &s2, &x, &c]
            .iter()
            .map(|d| ack(d.id, AckStatus::Accepted, None))
            .collect();
        o.record_acks(&acks, None).unwrap();
        // Delivered 10 days ago.
        o.conn.execute("UPDATE documents SET delivered_at = '2000-01-01T00:00:00Z' WHERE status = 'delivered'", []).unwrap();
        o.conn
            .execute(
                "UPDATE cash_sessions SET closed_at = '2000-01-01T00:00:00Z'",
                [],
            )
            .unwrap();
        let p = o.purge(7, 36500).unwrap();
        assert_eq!(
            p,
            Purged {
                documents: 3,
                xml_documents: 0
            }
        );
        assert!(
            o.get(s2.id).unwrap().is_some(),
            "a sale with its XML is kept"
        );
        assert!(o.get(x.id).unwrap().is_some());
        assert!(
            o.get(pending.id).unwrap().is_some(),
            "pending documents are never purged"
        );
        let p = o.purge(7, 1).unwrap();
        assert_eq!(
            p,
            Purged {
                documents: 0,
                xml_documents: 2
            }
        );
        let sessions: i64 = o
            .conn
            .query_row("SELECT count(*) FROM cash_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 0);
        // An open session is never purged.
        o.accept(&open_cash("PDV01")).unwrap();
        o.conn
            .execute(
                "UPDATE cash_sessions SET opened_at = '2000-01-01T00:00:00Z'",
                [],
            )
            .unwrap();
        o.purge(0, 0).unwrap();
        let sessions: i64 = o
            .conn
            .query_row("SELECT count(*) FROM cash_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 1);
    }

    #[test]
    fn a_full_disk_stores_nothing_and_keeps_the_outbox_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        o.accept(&open).unwrap();
        o.set_max_page_count_for_test(0).unwrap();
        // Big bodies: the group needs new pages the "disk" does not have.
        let big = "<NFe>".to_owned() + &"x".repeat(64 * 1024) + "</NFe>";
        let group: Vec<_> = (0..4).map(|_| sale("PDV01", open.id, Some(&big))).collect();
        let err = o.accept_many(&group).unwrap_err();
        assert!(matches!(err, ReplicaError::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("outbox.db"));
        assert_eq!(count(&o), 1);
        for d in &group {
            assert_eq!(o.get(d.id).unwrap(), None);
        }
        assert_eq!(o.next_batch(10, 1 << 20).unwrap().len(), 1);
        assert!(o.integrity_check().unwrap().is_empty());
        // Space again: the same documents go in.
        o.set_max_page_count_for_test(1000).unwrap();
        assert!(o.accept_many(&group).unwrap().iter().all(Result::is_ok));
        assert_eq!(count(&o), 5);
    }

    #[test]
    fn a_read_only_outbox_refuses_writes_and_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        o.accept(&open).unwrap();
        o.set_read_only_for_test(true).unwrap();
        let err = o.accept(&sale("PDV01", open.id, None)).unwrap_err();
        assert!(matches!(err, ReplicaError::ReadOnly { .. }), "{err}");
        assert_eq!(o.next_batch(10, 1 << 20).unwrap().len(), 1);
        assert_eq!(o.stats().unwrap().pending, 1);
        o.set_read_only_for_test(false).unwrap();
        o.accept(&sale("PDV01", open.id, None)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_file_is_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        o.accept(&open).unwrap();
        drop(o);
        let file = dir.path().join(FILE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        if std::fs::OpenOptions::new().write(true).open(&file).is_ok() {
            return; // running as root: permissions do not bind
        }
        let mut o = Outbox::open(dir.path()).unwrap();
        let err = o.accept(&sale("PDV01", open.id, None)).unwrap_err();
        assert!(matches!(err, ReplicaError::ReadOnly { .. }), "{err}");
        assert_eq!(o.next_batch(10, 1 << 20).unwrap().len(), 1);
    }

    #[test]
    fn a_refused_sale_is_corrected_under_a_new_id_in_its_closed_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path()).unwrap();
        let open = open_cash("PDV01");
        o.accept(&open).unwrap();
        let refused = sale("PDV01", open.id, None);
        let seq = o.accept(&refused).unwrap().store_seq as i64;
        o.accept(&close("PDV01", open.id)).unwrap();
        // Only a refused document can be replaced.
        let mut fixed = sale("PDV01", open.id, None);
        fixed.body["items"][0]["qty"] = json!(2000);
        fixed.body["items"][0]["total"] = json!(1000);
        fixed.body["total"] = json!(1000);
        fixed.body["payments"][0]["amount"] = json!(1000);
        let err = o.replace(refused.id, &fixed);
        assert_eq!(invalid_field(&err).as_deref(), Some("replaces"), "{err:?}");
        o.record_acks(
            &[ack(refused.id, AckStatus::Rejected, Some("ERP: wrong qty"))],
            None,
        )
        .unwrap();
        // Of the same kind only.
        let err = o.replace(refused.id, &open_cash("PDV01"));
        assert_eq!(invalid_field(&err).as_deref(), Some("kind"), "{err:?}");
        let taken = o.replace(refused.id, &fixed).unwrap();
        assert!(!taken.duplicate);
        let held = o.get(fixed.id).unwrap().unwrap();
        assert_eq!(held.document.replaces, Some(refused.id));
        assert_eq!(o.stats().unwrap().failed, 0);
        assert_eq!(o.stats().unwrap().replaced, 1);
        assert!(o.failed(10).unwrap().is_empty());
        assert_eq!(o.requeue(&[refused.id]).unwrap(), 0);
        // The refused sale's 1 is undone, the correction's 2 taken: -2 in all.
        let fixed_seq = taken.store_seq as i64;
        assert_eq!(
            moves(&o, "1"),
            vec![(seq, -1000, None), (fixed_seq, -1000, None)]
        );
        // Once.
        let mut again = fixed.clone();
        again.id = Uuid::new_v4();
        let err = o.replace(refused.id, &again);
        assert_eq!(invalid_field(&err).as_deref(), Some("replaces"), "{err:?}");
        // The correction goes up naming the refused one.
        let batch = o.next_batch(10, 1 << 20).unwrap();
        assert!(
            batch
                .iter()
                .any(|d| d.id == fixed.id && d.replaces == Some(refused.id))
        );
        // The retired sale is out of a sale's life: cancelling it is refused.
        let cancel = doc(
            DocumentKind::SaleCancellation,
            json!({"sale_id": refused.id, "register": "PDV01", "operator": "001",
                   "reason_code": "01", "cancelled_at": "2026-11-26T19:00:00Z"}),
        );
        assert_eq!(
            invalid_field(&o.accept(&cancel)).as_deref(),
            Some("sale_id")
        );
    }
}
