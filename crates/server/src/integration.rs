//! The integration switch (the domain's InterfaceIntegracao `Ativo`): on or
//! off for the whole chain, a central or a store, kept as the `parameters`
//! row [`INTEGRATION_PARAMETER`] at that node. It travels to the stores in
//! their normal `parameters` feed and resolves there like every `nearest`
//! row; [`resolved`] answers what a store holds with the feed's own rule
//! (`Scope::winner`), so the console shows what the store obeys.
//!
//! Writes go through `import::apply` (the ERP's import path: one sequence
//! per change, the stores' long-polls woken by the caller). This module
//! does not serve HTTP and does not decide what a store does while off
//! (that is lojad's `jobs::run_task`).

use crate::sql::{Connection, Transaction};
use loja_protocol::registry::{INTEGRATION_PARAMETER, integration_on};
use loja_protocol::{Entity, Op, entity_named};
use serde_json::{Map, Value};

use crate::import::{self, Applied, Change, ImportError};
use crate::nodes::{self, Candidate, Scope};
use crate::rows;

fn parameters() -> Result<&'static Entity, ImportError> {
    import::entity("parameters")
}

/// The key text of the switch's row (as `rows.key_text` holds it).
fn key_text(entity: &Entity) -> String {
    let mut row = Map::new();
    row.insert("name".into(), Value::from(INTEGRATION_PARAMETER));
    entity.key_text(&row)
}

/// Sets the switch at `node` (`Some(on)`), or removes that level's setting
/// (`None`: the node follows the level above). Returns what the import did
/// (its `last_seq` moves the head when it changed something).
pub fn set(tx: &Transaction<'_>, node: &str, on: Option<bool>) -> Result<Applied, ImportError> {
    let entity = parameters()?;
    let mut row = Map::new();
    row.insert("name".into(), Value::from(INTEGRATION_PARAMETER));
    let op = match on {
        Some(on) => {
            row.insert(
                "value".into(),
                Value::from(if on { "true" } else { "false" }),
            );
            Op::Upsert
        }
        None => Op::Delete,
    };
    let change = Change {
        line: 1,
        node: Some(node.to_owned()),
        public: None,
        op,
        row,
    };
    import::apply(tx, entity, &[change])
}

fn value_of(data: Option<&str>) -> Option<bool> {
    let row: Map<String, Value> = serde_json::from_str(data?).ok()?;
    Some(integration_on(row.get("value")?.as_str()?))
}

/// Every level that sets the switch: (node, on), the chain first.
pub fn settings(conn: &Connection) -> Result<Vec<(String, bool)>, crate::sql::Error> {
    let Some(entity) = entity_named("parameters") else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, bool)> = rows::key_rows(conn, entity.name, &key_text(entity))?
        .into_iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| value_of(r.data.as_deref()).map(|on| (r.node, on)))
        .collect();
    out.sort_by(|a, b| (a.0 != nodes::MASTER, &a.0).cmp(&(b.0 != nodes::MASTER, &b.0)));
    Ok(out)
}

/// What the store of `scope` holds: on or off, and the level that set it
/// (`None`: no level did; integration is on).
pub fn resolved_in(
    conn: &Connection,
    scope: &Scope,
) -> Result<(bool, Option<String>), crate::sql::Error> {
    let Some(entity) = entity_named("parameters") else {
        return Ok((true, None));
    };
    let stored = rows::key_rows(conn, entity.name, &key_text(entity))?;
    let winner = scope.winner(
        entity,
        stored.iter().map(|r| {
            (
                Candidate {
                    node: &r.node,
                    public: r.public,
                    deleted: r.deleted,
                },
                r,
            )
        }),
    );
    Ok(match winner {
        Some(r) => (
            value_of(r.data.as_deref()).unwrap_or(true),
            Some(r.node.clone()),
        ),
        None => (true, None),
    })
}

/// [`resolved_in`] for a store id; `None` when it is not a store.
pub fn resolved(
    conn: &Connection,
    store: &str,
) -> Result<Option<(bool, Option<String>)>, crate::sql::Error> {
    match nodes::scope(conn, store)? {
        Some(scope) => resolved_in(conn, &scope).map(Some),
        None => Ok(None),
    }
}

/// Stores whose integration is off (with the level that switched them
/// off), for the switches page: one read of the switch's rows, each store
/// resolved in memory.
pub fn stores_off(conn: &Connection) -> Result<Vec<(String, String)>, crate::sql::Error> {
    let set = settings(conn)?;
    if set.iter().all(|(_, on)| *on) {
        return Ok(Vec::new());
    }
    let all = nodes::list(conn)?;
    let parent: std::collections::HashMap<&str, Option<&str>> = all
        .iter()
        .map(|n| (n.id.as_str(), n.parent.as_deref()))
        .collect();
    let level: std::collections::HashMap<&str, bool> =
        set.iter().map(|(n, on)| (n.as_str(), *on)).collect();
    let mut out = Vec::new();
    for n in all.iter().filter(|n| n.kind == nodes::NodeKind::Store) {
        let mut cur = Some(n.id.as_str());
        let mut depth = 0;
        while let Some(node) = cur.filter(|_| depth < 64) {
            if let Some(on) = level.get(node) {
                if !on {
                    out.push((n.id.clone(), node.to_owned()));
                }
                break;
            }
            cur = parent.get(node).copied().flatten();
            depth += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::nodes::{NewNode, NodeKind};

    fn node(tx: &Transaction<'_>, id: &str, parent: &str, kind: NodeKind) {
        nodes::upsert_node(
            tx,
            &NewNode {
                id: id.into(),
                parent: parent.into(),
                kind,
                token: (kind == NodeKind::Store).then(|| format!("token-of-{id}")),
            },
        )
        .unwrap();
    }

    #[test]
    fn nearest_level_wins_store_then_central_then_chain() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        db.write(|tx| {
            node(tx, "sul", "master", NodeKind::Central);
            node(tx, "norte", "master", NodeKind::Central);
            node(tx, "loja-1", "sul", NodeKind::Store);
            node(tx, "loja-2", "sul", NodeKind::Store);
            node(tx, "loja-3", "norte", NodeKind::Store);
            Ok::<_, DbError>(())
        })
        .unwrap();
        let state = |store: &str| {
            db.read(|c| Ok::<_, DbError>(resolved(c, store)?))
                .unwrap()
                .unwrap()
        };
        // Nothing set: on, set by no level.
        assert_eq!(state("loja-1"), (true, None));

        // The chain off: every store off, by the chain.
        db.write(|tx| set(tx, "master", Some(false))).unwrap();
        assert_eq!(state("loja-3"), (false, Some("master".into())));
        // A central on again: its stores on, the other central's still off.
        db.write(|tx| set(tx, "sul", Some(true))).unwrap();
        assert_eq!(state("loja-1"), (true, Some("sul".into())));
        assert_eq!(state("loja-3"), (false, Some("master".into())));
        // A store off under that central: only that store.
        db.write(|tx| set(tx, "loja-2", Some(false))).unwrap();
        assert_eq!(state("loja-2"), (false, Some("loja-2".into())));
        assert_eq!(state("loja-1"), (true, Some("sul".into())));
        let off = db.read(|c| Ok::<_, DbError>(stores_off(c)?)).unwrap();
        assert_eq!(
            off,
            vec![
                ("loja-2".to_string(), "loja-2".to_string()),
                ("loja-3".to_string(), "master".to_string())
            ]
        );
        // Removing the store's setting: it follows its central again.
        db.write(|tx| set(tx, "loja-2", None)).unwrap();
        assert_eq!(state("loja-2"), (true, Some("sul".into())));
        assert_eq!(
            db.read(|c| Ok::<_, DbError>(settings(c)?)).unwrap(),
            vec![("master".to_string(), false), ("sul".to_string(), true)]
        );
        // Not a store: no answer.
        assert_eq!(
            db.read(|c| Ok::<_, DbError>(resolved(c, "sul")?)).unwrap(),
            None
        );
    }

    #[test]
    fn only_an_explicit_off_is_off() {
        for v in ["false", "0", "off", "N", " nao ", "Não"] {
            assert!(!integration_on(v), "{v}");
        }
        for v in ["true", "1", "sim", "", "fasle"] {
            assert!(integration_on(v), "{v}");
        }
    }
}
