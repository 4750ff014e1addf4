//! Requests and response bytes per store, and the outbox backlog each
//! store reports (its `Loja-Outbox` header), for the console's stores
//! pages. Counted in memory by [`count`], a layer on every request, and
//! written to `store_traffic` by the server's flush loop ([`flush`]) at
//! most once a second: never a database write per request.
//!
//! Only answered requests of a store route (`/v1/stores/{store}/…`) count,
//! and not the ones refused for their token (401, 403) or naming no such
//! store (404): a stranger cannot grow the map. Bytes are the response
//! body's length before the HTTP layer's own compression (feed pages are
//! compressed by the central already), from its exact size when known.
//! This module must not read the database on the request path.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sql::{Connection, Transaction};
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use loja_protocol::document::{OUTBOX_HEADER, parse_outbox_header};

use crate::db::now_unix;

/// A store's counts since the last flush, and the backlog it last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub requests: u64,
    pub bytes: u64,
    /// (pending, failed, unix seconds).
    pub backlog: Option<(u64, u64, i64)>,
}

/// The counts not flushed yet, by store.
#[derive(Debug, Default)]
pub struct Traffic {
    deltas: Mutex<HashMap<String, Delta>>,
}

impl Traffic {
    pub fn add(&self, store: &str, bytes: u64, backlog: Option<(u64, u64)>) {
        let mut map = self.deltas.lock().unwrap_or_else(|p| p.into_inner());
        let d = match map.get_mut(store) {
            Some(d) => d,
            None => map.entry(store.to_owned()).or_default(),
        };
        d.requests += 1;
        d.bytes += bytes;
        if let Some((pending, failed)) = backlog {
            d.backlog = Some((pending, failed, now_unix()));
        }
    }

    /// Takes every delta (the flush writes them).
    pub fn take(&self) -> HashMap<String, Delta> {
        std::mem::take(&mut *self.deltas.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back deltas a failed flush could not write.
    pub fn restore(&self, back: HashMap<String, Delta>) {
        let mut map = self.deltas.lock().unwrap_or_else(|p| p.into_inner());
        for (store, d) in back {
            let cur = map.entry(store).or_default();
            cur.requests += d.requests;
            cur.bytes += d.bytes;
            // A newer report taken meanwhile wins.
            if cur.backlog.is_none() {
                cur.backlog = d.backlog;
            }
        }
    }

    /// A copy of the unflushed deltas (the console adds them to the
    /// stored totals).
    pub fn peek(&self) -> HashMap<String, Delta> {
        self.deltas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the server state gives the layer.
pub trait HasTraffic: Send + Sync + 'static {
    fn traffic(&self) -> &Traffic;
}

/// The store a path is for: `/v1/stores/{store}/…`.
fn store_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/stores/")?;
    let store = rest.split('/').next()?;
    (!store.is_empty() && rest.len() > store.len()).then_some(store)
}

/// The layer: counts each answered store request after its handler ran.
pub async fn count<S: HasTraffic>(
    State(st): State<std::sync::Arc<S>>,
    req: Request,
    next: Next,
) -> Response {
    let store = store_of(req.uri().path()).map(str::to_owned);
    let backlog = req
        .headers()
        .get(OUTBOX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_outbox_header);
    let resp = next.run(req).await;
    if let Some(store) = store {
        let refused = matches!(resp.status().as_u16(), 401 | 403 | 404);
        if !refused {
            let hint = resp.body().size_hint();
            let bytes = hint.exact().unwrap_or(hint.lower());
            st.traffic().add(&store, bytes, backlog);
        }
    }
    resp
}

/// Adds the deltas to `store_traffic` (one upsert per store that moved).
pub fn flush(
    tx: &Transaction<'_>,
    deltas: &HashMap<String, Delta>,
) -> Result<(), crate::sql::Error> {
    let now = now_unix();
    for (store, d) in deltas {
        tx.execute(
            "INSERT INTO store_traffic (store, requests, bytes, since) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (store) DO UPDATE SET requests = store_traffic.requests + excluded.requests, \
             bytes = store_traffic.bytes + excluded.bytes",
            params![store, d.requests as i64, d.bytes as i64, now],
        )?;
        if let Some((pending, failed, at)) = d.backlog {
            tx.execute(
                "UPDATE store_traffic SET outbox_pending = ?2, outbox_failed = ?3, outbox_at = ?4 \
                 WHERE store = ?1",
                params![store, pending as i64, failed as i64, at],
            )?;
        }
    }
    Ok(())
}

/// A store's totals as the console shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTraffic {
    pub requests: u64,
    pub bytes: u64,
    /// Since when (unix seconds) the counts run.
    pub since: Option<i64>,
    /// (pending, failed, unix seconds) as the store last reported them.
    pub backlog: Option<(u64, u64, i64)>,
}

/// Every store's stored totals plus the unflushed `deltas`.
pub fn totals(
    conn: &Connection,
    deltas: &HashMap<String, Delta>,
) -> Result<HashMap<String, StoreTraffic>, crate::sql::Error> {
    let mut stmt = conn.prepare(
        "SELECT store, requests, bytes, since, outbox_pending, outbox_failed, outbox_at \
         FROM store_traffic",
    )?;
    let rows = stmt.query_map(params![], |r| {
        let backlog = match (
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ) {
            (Some(p), Some(f), Some(at)) => Some((p.max(0) as u64, f.max(0) as u64, at)),
            _ => None,
        };
        Ok((
            r.get::<_, String>(0)?,
            StoreTraffic {
                requests: r.get::<_, i64>(1)?.max(0) as u64,
                bytes: r.get::<_, i64>(2)?.max(0) as u64,
                since: Some(r.get(3)?),
                backlog,
            },
        ))
    })?;
    let mut out: HashMap<String, StoreTraffic> = rows.collect::<Result<_, _>>()?;
    for (store, d) in deltas {
        let t = out.entry(store.clone()).or_default();
        t.requests += d.requests;
        t.bytes += d.bytes;
        if d.backlog.is_some() {
            t.backlog = d.backlog;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};

    #[test]
    fn store_paths_only() {
        assert_eq!(store_of("/v1/stores/loja-1/feeds/prices"), Some("loja-1"));
        assert_eq!(store_of("/v1/stores/loja-1/events"), Some("loja-1"));
        assert_eq!(store_of("/v1/stores/"), None);
        assert_eq!(store_of("/v1/stores/loja-1"), None);
        assert_eq!(store_of("/v1/admin/documents"), None);
        assert_eq!(store_of("/console/stores/loja-1"), None);
    }

    #[test]
    fn counted_in_memory_flushed_as_sums_and_backlog_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let t = Traffic::default();
        t.add("a", 100, None);
        t.add("a", 50, Some((3, 1)));
        t.add("b", 7, None);
        let d = t.take();
        assert!(t.peek().is_empty());
        db.write(|tx| Ok::<_, DbError>(flush(tx, &d)?)).unwrap();
        t.add("a", 10, None);
        let d = t.take();
        db.write(|tx| Ok::<_, DbError>(flush(tx, &d)?)).unwrap();
        t.add("a", 1, Some((0, 1)));
        let all = db
            .read(|c| Ok::<_, DbError>(totals(c, &t.peek())?))
            .unwrap();
        let a = all["a"];
        assert_eq!((a.requests, a.bytes), (4, 161));
        assert_eq!(a.backlog.map(|(p, f, _)| (p, f)), Some((0, 1)));
        assert_eq!((all["b"].requests, all["b"].bytes), (1, 7));
        assert_eq!(all["b"].backlog, None);
        // A failed flush puts its deltas back.
        let d = t.take();
        t.restore(d);
        assert_eq!(t.peek()["a"].requests, 1);
    }
}
