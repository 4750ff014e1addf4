//! The ERP's verdicts on store documents: recorded per document (idempotent:
//! the same verdict again changes nothing; a new one replaces it at a new
//! position), read back by each store for its own documents, and a document
//! offered to the ERP again when the store asks (`reoffer`): it moves to the
//! end of the ERP's queue with its verdict cleared.

use crate::sql::{Connection, OptionalExtension};
use loja_protocol::verdict::{StoreVerdict, Verdict, VerdictPage, VerdictStatus};
use uuid::Uuid;

pub const MAX_LIMIT: u64 = 10_000;

/// What happened to one verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    pub id: Uuid,
    /// `recorded`, `unchanged`, or `unknown` (no such document).
    pub outcome: &'static str,
}

/// Records the ERP's verdicts (inside the caller's transaction).
pub fn record(conn: &Connection, verdicts: &[Verdict]) -> Result<Vec<Recorded>, crate::sql::Error> {
    let mut out = Vec::with_capacity(verdicts.len());
    let now = loja_protocol::time::now_rfc3339();
    for v in verdicts {
        let id = v.id.to_string();
        let held: Option<(Option<String>, Option<String>, Option<String>)> = conn
            .prepare_cached(
                "SELECT verdict, verdict_code, verdict_message FROM documents WHERE id = ?1",
            )?
            .query_row(params![&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let outcome = match held {
            None => "unknown",
            Some((status, code, message))
                if status.as_deref() == Some(v.status.as_str())
                    && code == v.code
                    && message == v.message =>
            {
                "unchanged"
            }
            Some(_) => {
                conn.execute(
                    "UPDATE counters SET value = value + 1 WHERE name = 'verdict_seq'",
                    params![],
                )?;
                conn.prepare_cached(
                    "UPDATE documents SET verdict = ?2, verdict_code = ?3, verdict_message = ?4, verdict_at = ?5,
                     verdict_seq = (SELECT value FROM counters WHERE name = 'verdict_seq') WHERE id = ?1",
                )?
                .execute(params![id, v.status.as_str(), v.code, v.message, now])?;
                "recorded"
            }
        };
        out.push(Recorded { id: v.id, outcome });
    }
    Ok(out)
}

/// The verdicts on `store`'s documents after `after`, in order.
pub fn for_store(
    conn: &Connection,
    store: &str,
    after: u64,
    limit: u64,
) -> Result<VerdictPage, crate::sql::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut stmt = conn.prepare_cached(
        "SELECT verdict_seq, id, verdict, verdict_code, verdict_message, verdict_at FROM documents
         WHERE store = ?1 AND verdict_seq > ?2 ORDER BY verdict_seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![store, after as i64, (limit + 1) as i64])?;
    let mut verdicts = Vec::new();
    let mut more = false;
    let mut next = after;
    while let Some(r) = rows.next()? {
        if verdicts.len() as u64 == limit {
            more = true;
            break;
        }
        let seq = r.get::<_, i64>(0)?.max(0) as u64;
        let id: String = r.get(1)?;
        let status: String = r.get(2)?;
        let (Ok(id), Some(status)) = (Uuid::parse_str(&id), VerdictStatus::parse(&status)) else {
            continue;
        };
        verdicts.push(StoreVerdict {
            seq,
            verdict: Verdict {
                id,
                status,
                code: r.get(3)?,
                message: r.get(4)?,
            },
            at: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        });
        next = seq;
    }
    Ok(VerdictPage {
        verdicts,
        next,
        more,
    })
}

/// Offers document `id` to the ERP again: the end of its queue, verdict cleared.
pub fn reoffer(conn: &Connection, id: &str) -> Result<bool, crate::sql::Error> {
    let top: i64 = conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM documents",
        params![],
        |r| r.get(0),
    )?;
    let n = conn.execute(
        "UPDATE documents SET seq = ?2, verdict = NULL, verdict_code = NULL, verdict_message = NULL,
         verdict_at = NULL WHERE id = ?1",
        params![id, top + 1],
    )?;
    // The next document must come after this one: SQLite's AUTOINCREMENT
    // never hands out a sequence below one that existed; PostgreSQL's
    // sequence is moved past it.
    match conn.backend() {
        crate::sql::Backend::Sqlite => conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'documents'",
            params![top + 1],
        )?,
        crate::sql::Backend::Postgres => conn.query_row(
            "SELECT setval(pg_get_serial_sequence('documents', 'seq'), ?1::bigint)",
            params![top + 1],
            |_| Ok(0),
        )?,
    };
    Ok(n == 1)
}
