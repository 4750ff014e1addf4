//! The node hierarchy: master -> centrals -> stores.
//!
//! Every imported row belongs to one node. A store's scope is itself and its
//! ancestors up to master; it receives the public rows of its scope and its
//! own private rows, nothing else.

use crate::sql::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use loja_protocol::{Entity, Resolution};

use crate::db::{DbError, hash_token};
use crate::rows::RowWriter;

pub const MASTER: &str = "master";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Master,
    Central,
    Store,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Master => "master",
            NodeKind::Central => "central",
            NodeKind::Store => "store",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "master" => Some(NodeKind::Master),
            "central" => Some(NodeKind::Central),
            "store" => Some(NodeKind::Store),
            _ => None,
        }
    }
}

/// `POST /v1/admin/nodes` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    pub id: String,
    #[serde(default = "master")]
    pub parent: String,
    pub kind: NodeKind,
    /// The store's bearer token (stores only). Kept as a SHA-256 hash.
    #[serde(default)]
    pub token: Option<String>,
}

fn master() -> String {
    MASTER.to_owned()
}

/// A node as the admin API lists it (never its token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub parent: Option<String>,
    pub kind: NodeKind,
    pub has_token: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<crate::sql::Error> for NodeError {
    fn from(e: crate::sql::Error) -> Self {
        NodeError::Db(DbError::Sql(e))
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> NodeError {
    NodeError::Invalid {
        field,
        message: message.into(),
    }
}

/// Node ids travel in URL paths and in the comma-separated owner list.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Adds a node, or updates an existing one's parent and token (same kind).
pub fn upsert_node(conn: &Connection, node: &NewNode) -> Result<NodeInfo, NodeError> {
    if !valid_id(&node.id) {
        return Err(invalid(
            "id",
            "must be 1-64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    if node.kind == NodeKind::Master || node.id == MASTER {
        return Err(invalid(
            "kind",
            "there is one master node and it always exists",
        ));
    }
    let parent_kind =
        kind_of(conn, &node.parent)?.ok_or_else(|| invalid("parent", "no such node"))?;
    if parent_kind == NodeKind::Store {
        return Err(invalid("parent", "a store cannot have children"));
    }
    if node.parent == node.id || ancestors(conn, &node.parent)?.iter().any(|a| a == &node.id) {
        return Err(invalid("parent", "would make a cycle"));
    }
    let token_hash = match (node.kind, &node.token) {
        (NodeKind::Store, Some(t)) if t.len() >= 8 => Some(hash_token(t)),
        (NodeKind::Store, Some(_)) => {
            return Err(invalid("token", "must be at least 8 characters"));
        }
        (NodeKind::Store, None) => return Err(invalid("token", "a store needs a token")),
        (_, Some(_)) => return Err(invalid("token", "only stores have tokens")),
        (_, None) => None,
    };
    if let Some(existing) = kind_of(conn, &node.id)?
        && existing != node.kind
    {
        return Err(invalid(
            "kind",
            format!("node {} exists as a {}", node.id, existing.as_str()),
        ));
    }
    if let Some(h) = &token_hash {
        let other: Option<String> = conn
            .query_row(
                "SELECT id FROM nodes WHERE token_hash = ?1 AND id <> ?2",
                params![h, node.id],
                |r| r.get(0),
            )
            .optional()?;
        if other.is_some() {
            return Err(invalid("token", "already used by another store"));
        }
    }
    let old_parent: Option<Option<String>> = conn
        .prepare_cached("SELECT parent FROM nodes WHERE id = ?1")?
        .query_row(params![node.id], |r| r.get(0))
        .optional()?;
    let moved = matches!(&old_parent, Some(p) if p.as_deref() != Some(node.parent.as_str()));
    let old_ancestors = if moved {
        ancestors(conn, &node.id)?
    } else {
        Vec::new()
    };
    conn.execute(
        "INSERT INTO nodes (id, parent, kind, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET parent = excluded.parent, token_hash = excluded.token_hash",
        params![
            node.id,
            node.parent,
            node.kind.as_str(),
            token_hash,
            loja_protocol::time::now_rfc3339()
        ],
    )?;
    if moved {
        rescope_subtree(conn, &node.id, &old_ancestors)?;
    }
    Ok(NodeInfo {
        id: node.id.clone(),
        parent: Some(node.parent.clone()),
        kind: node.kind,
        has_token: token_hash.is_some(),
    })
}

/// `id` moved under another parent: every store at or under it re-resolves
/// the keys of the ancestors it left or joined (see [`RowWriter::rescope`]).
/// Runs in the caller's transaction, with the move.
fn rescope_subtree(conn: &Connection, id: &str, old_ancestors: &[String]) -> Result<(), NodeError> {
    let new_ancestors = ancestors(conn, id)?;
    let changed: Vec<String> = old_ancestors
        .iter()
        .filter(|n| !new_ancestors.contains(n))
        .chain(new_ancestors.iter().filter(|n| !old_ancestors.contains(n)))
        .cloned()
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let stores: Vec<String> = conn
        .prepare_cached(
            "WITH RECURSIVE sub (id) AS (
                 SELECT ?1
                 UNION SELECT n.id FROM nodes n JOIN sub ON n.parent = sub.id
             )
             SELECT id FROM sub JOIN nodes USING (id) WHERE kind = 'store' ORDER BY id",
        )?
        .query_map(params![id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let entities: Vec<&'static Entity> = loja_protocol::ENTITIES
        .iter()
        .filter(|e| e.resolution != Resolution::Own)
        .collect();
    let mut writer = RowWriter::open(conn)?;
    for store in &stores {
        let touched = writer.rescope(store, &changed, &entities)?;
        tracing::info!(store = %store, left_or_joined = ?changed, keys = touched, "store moved in the hierarchy: its keys re-resolve");
    }
    writer.finish()?;
    Ok(())
}

pub fn kind_of(conn: &Connection, id: &str) -> Result<Option<NodeKind>, crate::sql::Error> {
    let k: Option<String> = conn
        .prepare_cached("SELECT kind FROM nodes WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    Ok(k.as_deref().and_then(NodeKind::parse))
}

/// `lineage(id, kind, parent, depth)`: the node `?1` (depth 0) and its
/// ancestors, one query however deep the tree (a walk up by parent was a
/// round trip per level on PostgreSQL, for every store request). Bounded: a
/// hierarchy deeper than 64 is a loop.
macro_rules! lineage {
    () => {
        "WITH RECURSIVE lineage (id, kind, parent, depth) AS (
             SELECT id, kind, parent, 0 FROM nodes WHERE id = ?1
             UNION ALL
             SELECT n.id, n.kind, n.parent, lineage.depth + 1
             FROM nodes n JOIN lineage ON n.id = lineage.parent
             WHERE lineage.depth < 64
         ) "
    };
}
pub(crate) use lineage;

/// A node's kind and its lineage.
struct Lineage {
    kind: Option<NodeKind>,
    /// The node, then its ancestors, nearest first.
    nodes: Vec<String>,
}

/// `id` and its ancestors, nearest first, with `id`'s kind (`None`: no
/// such node).
fn lineage_of(conn: &Connection, id: &str) -> Result<Option<Lineage>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached(concat!(
        lineage!(),
        "SELECT id, kind FROM lineage ORDER BY depth"
    ))?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some((_, kind)) = rows.first() else {
        return Ok(None);
    };
    let kind = NodeKind::parse(kind);
    Ok(Some(Lineage {
        kind,
        nodes: rows.into_iter().map(|(id, _)| id).collect(),
    }))
}

/// The chain of parents of `id`, nearest first (not including `id`).
pub fn ancestors(conn: &Connection, id: &str) -> Result<Vec<String>, crate::sql::Error> {
    Ok(lineage_of(conn, id)?
        .map(|l| l.nodes.into_iter().skip(1).collect())
        .unwrap_or_default())
}

pub fn list(conn: &Connection) -> Result<Vec<NodeInfo>, crate::sql::Error> {
    let mut stmt =
        conn.prepare("SELECT id, parent, kind, token_hash IS NOT NULL FROM nodes ORDER BY id")?;
    let rows = stmt.query_map(params![], |r| {
        let kind: String = r.get(2)?;
        Ok(NodeInfo {
            id: r.get(0)?,
            parent: r.get(1)?,
            kind: NodeKind::parse(&kind).unwrap_or(NodeKind::Store),
            has_token: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// What a store may see: itself and its ancestors, nearest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub store: String,
    /// The store first, then its ancestors up to master.
    pub nodes: Vec<String>,
}

/// One node's row of a key, as the store's view weighs it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub node: &'a str,
    pub public: bool,
    pub deleted: bool,
}

impl Scope {
    pub fn contains(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n == node)
    }

    /// How near `node` is to the store: 0 for the store itself, 1 for its
    /// central, …; `None` outside the scope.
    pub fn rank(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == node)
    }

    /// The nodes whose rows of `entity` are relevant to this store (see
    /// [`Scope::relevant`]): the store alone for an `own` entity, else the
    /// store and its ancestors.
    pub fn sources(&self, entity: &Entity) -> &[String] {
        match entity.resolution {
            Resolution::Own => &self.nodes[..1.min(self.nodes.len())],
            Resolution::Nearest | Resolution::Shared => &self.nodes,
        }
    }

    /// Can a row owned by `node` be (or stop being) what this store holds
    /// for its key? A change to a row that is not relevant leaves the
    /// store's view as it was.
    pub fn relevant(&self, entity: &Entity, node: &str) -> bool {
        match entity.resolution {
            Resolution::Own => node == self.store,
            Resolution::Nearest | Resolution::Shared => self.contains(node),
        }
    }

    /// May this row be the store's (else it is as good as absent)?
    pub fn visible(&self, entity: &Entity, c: Candidate<'_>) -> bool {
        !c.deleted
            && self.relevant(entity, c.node)
            && (c.node == self.store || (c.public && self.contains(c.node)))
    }

    /// Which of a key's rows the store holds: the visible one nearest to
    /// it (its own, else its central's, else the master's). `None`: the
    /// store holds nothing for the key (a tombstone).
    pub fn winner<'c, T>(
        &self,
        entity: &Entity,
        rows: impl IntoIterator<Item = (Candidate<'c>, T)>,
    ) -> Option<T> {
        rows.into_iter()
            .filter(|(c, _)| self.visible(entity, *c))
            .filter_map(|(c, t)| self.rank(c.node).map(|r| (r, t)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, t)| t)
    }
}

pub fn scope(conn: &Connection, store: &str) -> Result<Option<Scope>, crate::sql::Error> {
    Ok(lineage_of(conn, store)?.and_then(|l| l.scope_of(store)))
}

impl Lineage {
    /// The scope of `store`, when this is a store's lineage.
    fn scope_of(self, store: &str) -> Option<Scope> {
        (self.kind == Some(NodeKind::Store)).then(|| Scope {
            store: store.to_owned(),
            nodes: self.nodes,
        })
    }
}

/// Who `token` belongs to (a store id, if anyone) and `store`'s scope (if
/// it is a store), in one statement when the store exists: every request
/// of a store asks both.
pub fn scope_and_token_owner(
    conn: &Connection,
    store: &str,
    token: &str,
) -> Result<(Option<String>, Option<Scope>), crate::sql::Error> {
    let mut stmt = conn.prepare_cached(concat!(
        lineage!(),
        "SELECT id, kind, (SELECT id FROM nodes WHERE token_hash = ?2 AND kind = 'store')
         FROM lineage ORDER BY depth"
    ))?;
    let rows = stmt
        .query_map(params![store, hash_token(token)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some((_, kind, owner)) = rows.first() else {
        return Ok((store_of_token(conn, token)?, None));
    };
    let (owner, kind) = (owner.clone(), NodeKind::parse(kind));
    let lineage = Lineage {
        kind,
        nodes: rows.into_iter().map(|(id, _, _)| id).collect(),
    };
    Ok((owner, lineage.scope_of(store)))
}

/// Who a bearer token belongs to (a store id), if anyone.
pub fn store_of_token(conn: &Connection, token: &str) -> Result<Option<String>, crate::sql::Error> {
    conn.prepare_cached("SELECT id FROM nodes WHERE token_hash = ?1 AND kind = 'store'")?
        .query_row(params![hash_token(token)], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn node(id: &str, parent: &str, kind: NodeKind, token: Option<&str>) -> NewNode {
        NewNode {
            id: id.into(),
            parent: parent.into(),
            kind,
            token: token.map(Into::into),
        }
    }

    #[test]
    fn hierarchy_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        db.write(|tx| {
            upsert_node(tx, &node("sul", "master", NodeKind::Central, None))?;
            upsert_node(
                tx,
                &node("loja1", "sul", NodeKind::Store, Some("token-loja1")),
            )?;
            let e =
                upsert_node(tx, &node("x", "loja1", NodeKind::Store, Some("token-x"))).unwrap_err();
            assert!(matches!(
                e,
                NodeError::Invalid {
                    field: "parent",
                    ..
                }
            ));
            let e = upsert_node(
                tx,
                &node("loja2", "sul", NodeKind::Store, Some("token-loja1")),
            )
            .unwrap_err();
            assert!(matches!(e, NodeError::Invalid { field: "token", .. }));
            let e = upsert_node(tx, &node("sul", "sul", NodeKind::Central, None)).unwrap_err();
            assert!(matches!(
                e,
                NodeError::Invalid {
                    field: "parent",
                    ..
                }
            ));
            let s = scope(tx, "loja1")?.unwrap();
            assert_eq!(s.nodes, vec!["loja1", "sul", "master"]);
            let prices = loja_protocol::entity_named("prices").unwrap();
            let stock = loja_protocol::entity_named("stock").unwrap();
            let c = |node, public, deleted| Candidate {
                node,
                public,
                deleted,
            };
            assert!(s.relevant(prices, "sul"));
            assert!(!s.relevant(prices, "loja9"));
            assert!(!s.relevant(stock, "sul"), "stock is the store's own");
            assert!(s.visible(prices, c("master", true, false)));
            assert!(!s.visible(prices, c("master", false, false)));
            assert!(s.visible(prices, c("loja1", false, false)));
            assert!(!s.visible(prices, c("loja1", false, true)));
            // Nearest wins; a private central row is no candidate.
            let rows = [
                (c("master", true, false), "m"),
                (c("sul", true, false), "s"),
            ];
            assert_eq!(s.winner(prices, rows), Some("s"));
            let rows = [
                (c("master", true, false), "m"),
                (c("sul", false, false), "s"),
            ];
            assert_eq!(s.winner(prices, rows), Some("m"));
            let rows = [
                (c("master", true, false), "m"),
                (c("loja1", false, false), "l"),
            ];
            assert_eq!(s.winner(prices, rows), Some("l"));
            assert_eq!(s.winner(stock, [(c("master", true, false), "m")]), None);
            assert_eq!(s.winner(prices, [(c("other", true, false), "o")]), None);
            assert!(scope(tx, "sul")?.is_none());
            assert_eq!(store_of_token(tx, "token-loja1")?.as_deref(), Some("loja1"));
            assert_eq!(store_of_token(tx, "nope")?, None);
            // The request's check, in one statement.
            let (owner, s) = scope_and_token_owner(tx, "loja1", "token-loja1")?;
            assert_eq!(owner.as_deref(), Some("loja1"));
            assert_eq!(
                s.map(|s| s.nodes),
                Some(vec!["loja1".into(), "sul".into(), "master".into()])
            );
            let (owner, s) = scope_and_token_owner(tx, "loja1", "nope")?;
            assert_eq!((owner, s.is_some()), (None, true));
            let (owner, s) = scope_and_token_owner(tx, "sul", "token-loja1")?;
            assert_eq!(
                (owner.as_deref(), s.is_none()),
                (Some("loja1"), true),
                "sul is no store"
            );
            let (owner, s) = scope_and_token_owner(tx, "loja9", "token-loja1")?;
            assert_eq!(
                (owner.as_deref(), s.is_none()),
                (Some("loja1"), true),
                "no such store"
            );
            Ok::<_, NodeError>(())
        })
        .unwrap();
    }
}
