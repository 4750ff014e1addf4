//! Availability control: how often the central releases new data of an entity
//! to a store.
//!
//! - Each entity has availability minutes: the registry's default (the
//!   domain's `LoteAgendamento` table), overridable for the whole chain (node
//!   `master`), per central and per store; a store follows the nearest level
//!   that sets the entity.
//! - The central records, per store and entity, the last *completed* download:
//!   when it answered a page with `more: false`, and that page's `next`.
//! - A request *starts a new download* when its `after` equals the `next` of
//!   the store's last completed download. Such a request within `minutes` of
//!   that completion is held back: an empty page, `next == after`, and
//!   `held_until`. Nothing else is ever held: not a store's first download,
//!   not the continuation pages of a download in progress, not a store on the
//!   exception list.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sql::{Connection, OptionalExtension, Transaction};
use loja_protocol::Entity;
use serde::{Deserialize, Serialize};

/// A completed download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download {
    /// Unix seconds.
    pub completed_at: i64,
    pub next: u64,
}

/// As the admin API shows one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DownloadInfo {
    pub entity: String,
    pub completed_at: String,
    pub next: u64,
    pub minutes: u32,
    /// When the next download of this entity is released (RFC 3339).
    pub released_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AvailabilityInfo {
    pub entity: String,
    /// What a store at this level follows.
    pub minutes: u32,
    pub default_minutes: u32,
    /// The level that sets `minutes` (this node or an ancestor); `None`:
    /// the registry's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_at: Option<String>,
}

/// The minutes `node`'s level follows for `entity`, and the level that sets
/// them (`None`: the registry's default).
pub fn resolved(
    conn: &Connection,
    node: &str,
    entity: &Entity,
) -> Result<(u32, Option<String>), crate::sql::Error> {
    // The nearest level that sets them: the node, its ancestors, and the
    // master even when the node is not (yet) under it.
    let mut stmt = conn.prepare_cached(concat!(
        crate::nodes::lineage!(),
        "SELECT node, minutes FROM (
             SELECT a.node, a.minutes, lineage.depth
             FROM lineage JOIN availability a ON a.node = lineage.id AND a.entity = ?2
             UNION ALL
             SELECT node, minutes, 1000 FROM availability WHERE node = ?3 AND entity = ?2
         ) AS levels ORDER BY depth LIMIT 1"
    ))?;
    let set: Option<(String, i64)> = stmt
        .query_row(params![node, entity.name, crate::nodes::MASTER], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match set {
        Some((level, m)) => (m.clamp(0, i64::from(u32::MAX)) as u32, Some(level)),
        None => (entity.availability_minutes, None),
    })
}

/// The minutes a store (or any node) follows for `entity`.
pub fn minutes(conn: &Connection, node: &str, entity: &Entity) -> Result<u32, crate::sql::Error> {
    resolved(conn, node, entity).map(|(m, _)| m)
}

/// [`minutes`] for a node whose lineage is known (a store's `Scope`: the
/// store, then its ancestors): one indexed read of those levels' settings
/// instead of walking the tree again. Every feed request and woken
/// long-poll of a store that downloaded before asks it.
pub fn minutes_along(
    conn: &Connection,
    lineage: &[String],
    entity: &Entity,
) -> Result<u32, crate::sql::Error> {
    let mut levels: Vec<&str> = lineage.iter().map(String::as_str).collect();
    if !levels.contains(&crate::nodes::MASTER) {
        levels.push(crate::nodes::MASTER);
    }
    let marks: Vec<String> = (0..levels.len()).map(|i| format!("?{}", i + 2)).collect();
    let sql = format!(
        "SELECT node, minutes FROM availability WHERE entity = ?1 AND node IN ({})",
        marks.join(", ")
    );
    let mut params: Vec<&dyn crate::sql::ToParam> = vec![&entity.name];
    for level in &levels {
        params.push(level);
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let set = stmt.query_map(&params, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut nearest: Option<(usize, i64)> = None;
    for row in set {
        let (node, m) = row?;
        if let Some(depth) = levels.iter().position(|l| *l == node)
            && nearest.is_none_or(|(d, _)| depth < d)
        {
            nearest = Some((depth, m));
        }
    }
    Ok(nearest.map_or(entity.availability_minutes, |(_, m)| {
        m.clamp(0, i64::from(u32::MAX)) as u32
    }))
}

/// Sets `entity`'s minutes at `node`'s level (`master`: the whole chain).
pub fn set_minutes(
    conn: &Connection,
    node: &str,
    entity: &Entity,
    minutes: u32,
) -> Result<(), crate::sql::Error> {
    conn.execute(
        "INSERT INTO availability (node, entity, minutes) VALUES (?1, ?2, ?3)
         ON CONFLICT (node, entity) DO UPDATE SET minutes = excluded.minutes",
        params![node, entity.name, minutes],
    )?;
    Ok(())
}

/// Removes `node`'s own setting: it follows the level above again.
pub fn unset_minutes(
    conn: &Connection,
    node: &str,
    entity: &Entity,
) -> Result<bool, crate::sql::Error> {
    Ok(conn.execute(
        "DELETE FROM availability WHERE node = ?1 AND entity = ?2",
        params![node, entity.name],
    )? > 0)
}

/// Every entity's minutes as `node`'s level follows them.
pub fn list_minutes(
    conn: &Connection,
    node: &str,
) -> Result<Vec<AvailabilityInfo>, crate::sql::Error> {
    loja_protocol::ENTITIES
        .iter()
        .map(|e| {
            let (minutes, set_at) = resolved(conn, node, e)?;
            Ok(AvailabilityInfo {
                entity: e.name.to_owned(),
                minutes,
                default_minutes: e.availability_minutes,
                set_at,
            })
        })
        .collect()
}

pub fn is_exception(conn: &Connection, store: &str) -> Result<bool, crate::sql::Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM exceptions WHERE store = ?1")?
        .query_row(params![store], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn add_exception(conn: &Connection, store: &str) -> Result<(), crate::sql::Error> {
    conn.execute(
        "INSERT INTO exceptions (store, added_at) VALUES (?1, ?2) ON CONFLICT (store) DO NOTHING",
        params![store, loja_protocol::time::now_rfc3339()],
    )?;
    Ok(())
}

pub fn remove_exception(conn: &Connection, store: &str) -> Result<bool, crate::sql::Error> {
    Ok(conn.execute("DELETE FROM exceptions WHERE store = ?1", params![store])? > 0)
}

pub fn list_exceptions(conn: &Connection) -> Result<Vec<String>, crate::sql::Error> {
    let mut stmt = conn.prepare("SELECT store FROM exceptions ORDER BY store")?;
    let rows = stmt.query_map(params![], |r| r.get(0))?;
    rows.collect()
}

/// Downloads recorded in memory by feed answers and not yet written to the
/// database. Feed answers never wait for the writer (an import may hold it);
/// a background task writes these behind.
#[derive(Debug, Default)]
pub struct Pending {
    map: Mutex<HashMap<(String, String), Download>>,
}

impl Pending {
    pub fn record(&self, store: &str, entity: &str, d: Download) {
        if let Ok(mut m) = self.map.lock() {
            m.insert((store.to_owned(), entity.to_owned()), d);
        }
    }

    pub fn get(&self, store: &str, entity: &str) -> Option<Download> {
        self.map
            .lock()
            .ok()?
            .get(&(store.to_owned(), entity.to_owned()))
            .copied()
    }

    pub fn forget(&self, store: &str, entity: Option<&str>) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|(s, e), _| !(s == store && entity.is_none_or(|x| x == e)));
        }
    }

    pub fn snapshot(&self) -> Vec<((String, String), Download)> {
        self.map
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Drops entries written, unless they changed meanwhile.
    pub fn written(&self, done: &[((String, String), Download)]) {
        if let Ok(mut m) = self.map.lock() {
            for (k, d) in done {
                if m.get(k) == Some(d) {
                    m.remove(k);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.lock().map(|m| m.is_empty()).unwrap_or(true)
    }
}

pub fn write_downloads(
    tx: &Transaction<'_>,
    items: &[((String, String), Download)],
) -> Result<(), crate::sql::Error> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO downloads (store, entity, completed_at, next_seq) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (store, entity) DO UPDATE SET completed_at = excluded.completed_at, next_seq = excluded.next_seq",
    )?;
    for ((store, entity), d) in items {
        stmt.execute(params![store, entity, d.completed_at, d.next as i64])?;
    }
    Ok(())
}

pub fn reset_download(
    conn: &Connection,
    store: &str,
    entity: Option<&str>,
) -> Result<usize, crate::sql::Error> {
    match entity {
        Some(e) => conn.execute(
            "DELETE FROM downloads WHERE store = ?1 AND entity = ?2",
            params![store, e],
        ),
        None => conn.execute("DELETE FROM downloads WHERE store = ?1", params![store]),
    }
}

pub fn last_download(
    conn: &Connection,
    pending: Option<&Pending>,
    store: &str,
    entity: &str,
) -> Result<Option<Download>, crate::sql::Error> {
    if let Some(d) = pending.and_then(|p| p.get(store, entity)) {
        return Ok(Some(d));
    }
    conn.prepare_cached(
        "SELECT completed_at, next_seq FROM downloads WHERE store = ?1 AND entity = ?2",
    )?
    .query_row(params![store, entity], |r| {
        Ok(Download {
            completed_at: r.get(0)?,
            next: r.get::<_, i64>(1)?.max(0) as u64,
        })
    })
    .optional()
}

pub fn list_downloads(
    conn: &Connection,
    pending: Option<&Pending>,
    store: &str,
) -> Result<Vec<DownloadInfo>, crate::sql::Error> {
    let mut out = Vec::new();
    for e in loja_protocol::ENTITIES {
        if let Some(d) = last_download(conn, pending, store, e.name)? {
            let m = minutes(conn, store, e)?;
            out.push(DownloadInfo {
                entity: e.name.to_owned(),
                completed_at: rfc3339(d.completed_at),
                next: d.next,
                minutes: m,
                released_at: rfc3339(d.completed_at + i64::from(m) * 60),
            });
        }
    }
    Ok(out)
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(loja_protocol::time::format)
        .unwrap_or_default()
}

/// Until when (unix seconds) is a request of the store of `scope` for `entity` after `after`
/// held back, if it is. `after = None` asks "is any new download held?"
/// (the events long-poll, which does not know where the store stands).
pub fn held_until(
    conn: &Connection,
    pending: Option<&Pending>,
    scope: &crate::nodes::Scope,
    entity: &Entity,
    after: Option<u64>,
    now: i64,
) -> Result<Option<i64>, crate::sql::Error> {
    let store = scope.store.as_str();
    let Some(d) = last_download(conn, pending, store, entity.name)? else {
        return Ok(None); // first download
    };
    if after.is_some_and(|a| a != d.next) {
        return Ok(None); // continuation, or a reload from elsewhere
    }
    let until = d.completed_at + i64::from(minutes_along(conn, &scope.nodes, entity)?) * 60;
    if now >= until || is_exception(conn, store)? {
        return Ok(None);
    }
    if switch_changed_after(conn, entity, d.next)? {
        return Ok(None);
    }
    Ok(Some(until))
}

/// The integration switch (a `parameters` row, `integration.rs`) changed
/// after the store's last download: it is never held back by the window,
/// so a store switched on again resumes at its next `parameters` download
/// instead of up to an hour later. One indexed lookup, for `parameters`
/// requests only.
fn switch_changed_after(
    conn: &Connection,
    entity: &Entity,
    next: u64,
) -> Result<bool, crate::sql::Error> {
    if entity.name != "parameters" {
        return Ok(false);
    }
    let mut key = serde_json::Map::new();
    key.insert(
        "name".into(),
        serde_json::Value::from(loja_protocol::registry::INTEGRATION_PARAMETER),
    );
    Ok(
        crate::rows::key_rows(conn, entity.name, &entity.key_text(&key))?
            .iter()
            .any(|r| r.seq > next as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use loja_protocol::entity_named;

    #[test]
    fn hold_rules() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let stock = entity_named("stock").unwrap();
        let pending = Pending::default();
        let s = crate::nodes::Scope {
            store: "s".into(),
            nodes: vec!["s".into()],
        };
        db.write(|tx| {
            assert_eq!(minutes(tx, "s", stock)?, 10);
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, Some(0), 1000)?,
                None,
                "first download"
            );
            pending.record(
                "s",
                "stock",
                Download {
                    completed_at: 1000,
                    next: 7,
                },
            );
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, Some(7), 1000)?,
                Some(1600)
            );
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, Some(3), 1000)?,
                None,
                "continuation"
            );
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, Some(7), 1600)?,
                None,
                "window over"
            );
            set_minutes(tx, "master", stock, 1)?;
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, None, 1000)?,
                Some(1060)
            );
            add_exception(tx, "s")?;
            assert_eq!(
                held_until(tx, Some(&pending), &s, stock, Some(7), 1000)?,
                None,
                "exception"
            );
            assert!(remove_exception(tx, "s")?);
            write_downloads(tx, &pending.snapshot())?;
            pending.written(&pending.snapshot());
            assert!(pending.is_empty());
            assert_eq!(held_until(tx, None, &s, stock, Some(7), 1000)?, Some(1060));
            assert_eq!(list_downloads(tx, None, "s")?.len(), 1);
            assert_eq!(reset_download(tx, "s", Some("stock"))?, 1);
            assert_eq!(held_until(tx, None, &s, stock, Some(7), 1000)?, None);
            Ok::<_, DbError>(())
        })
        .unwrap();
    }

    #[test]
    fn minutes_by_level() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let prices = entity_named("prices").unwrap();
        db.write(|tx| {
            use crate::nodes::{NewNode, NodeKind, upsert_node};
            let node = |id: &str, parent: &str, kind, token: Option<&str>| NewNode {
                id: id.into(),
                parent: parent.into(),
                kind,
                token: token.map(Into::into),
            };
            upsert_node(tx, &node("sul", "master", NodeKind::Central, None)).unwrap();
            upsert_node(tx, &node("a", "sul", NodeKind::Store, Some("token-a-0123"))).unwrap();
            upsert_node(tx, &node("b", "sul", NodeKind::Store, Some("token-b-0123"))).unwrap();
            assert_eq!(resolved(tx, "a", prices)?, (60, None), "the domain's Preco");
            set_minutes(tx, "master", prices, 30)?;
            assert_eq!(resolved(tx, "a", prices)?, (30, Some("master".into())));
            set_minutes(tx, "sul", prices, 20)?;
            set_minutes(tx, "a", prices, 5)?;
            assert_eq!(minutes(tx, "a", prices)?, 5);
            assert_eq!(minutes(tx, "b", prices)?, 20, "b follows its central");
            assert_eq!(minutes(tx, "master", prices)?, 30);
            // Along a known lineage: the same answers.
            let along = |id: &str| -> Result<u32, crate::sql::Error> {
                let scope = crate::nodes::scope(tx, id)?.unwrap();
                minutes_along(tx, &scope.nodes, prices)
            };
            assert_eq!((along("a")?, along("b")?), (5, 20));
            assert_eq!(
                minutes_along(tx, &["elsewhere".into()], prices)?,
                30,
                "master's"
            );
            assert!(unset_minutes(tx, "a", prices)?);
            assert_eq!(resolved(tx, "a", prices)?, (20, Some("sul".into())));
            assert_eq!(along("a")?, 20);
            let listed = list_minutes(tx, "b")?;
            let p = listed.iter().find(|i| i.entity == "prices").unwrap();
            assert_eq!(
                (p.minutes, p.default_minutes, p.set_at.as_deref()),
                (20, 60, Some("sul"))
            );
            Ok::<_, DbError>(())
        })
        .unwrap();
    }
}
