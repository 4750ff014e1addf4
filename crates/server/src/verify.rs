//! What a store's replica of an entity should hold, as digests per key
//! bucket and as the rows of one bucket (`loja_protocol::digest`).
//!
//! Both are read from one snapshot, with `through`: the entity's highest
//! sequence in that snapshot, which is the watermark a store has once its
//! download of the entity is complete. The store compares only when its
//! own watermark equals it. Rows are the store's view: visible to it, not
//! deleted, hashed from the registry cells of the JSON the feed serves.

use crate::sql::Connection;
use loja_protocol::digest::{Canon, DigestBuilder, RowDigester};
use loja_protocol::{BucketRows, Entity, EntityDigest, Op, TypedItem, Watermark};
use serde_json::{Map, Value};

use crate::nodes::{Candidate, Scope};

/// Why a digest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Sql(#[from] crate::sql::Error),
    #[error("row {key} of {entity} is not valid JSON: {source}")]
    BadRow {
        entity: &'static str,
        key: String,
        source: serde_json::Error,
    },
}

/// The highest sequence of `entity` (0 when it has no rows).
fn through(conn: &Connection, entity: &Entity) -> Result<Watermark, crate::sql::Error> {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM rows WHERE entity = ?1")?
        .query_row(params![entity.name], |r| r.get::<_, i64>(0))
        .map(|s| Watermark(s as u64))
}

/// Which rows, by their key's cells, a caller wants.
type KeyFilter<'f> = dyn Fn(&[Canon<'_>]) -> bool + 'f;

/// Calls `f` with each row of `entity` this store sees, as JSON and as
/// typed cells. When `wanted` is given, a row whose key (its small
/// `key_json`, as cells at their columns) it refuses is skipped before its
/// data is parsed: a bucket's rows cost a parse of theirs only.
fn for_each_visible(
    conn: &Connection,
    entity: &'static Entity,
    scope: &Scope,
    wanted: Option<&KeyFilter<'_>>,
    mut f: impl FnMut(Map<String, Value>, &[Canon<'_>]),
) -> Result<(), VerifyError> {
    // In pages by sequence: PostgreSQL hands a statement's rows over whole,
    // and an entity can hold millions.
    let mut stmt = conn.prepare_cached(
        "SELECT node, public, deleted, key_json, data, siblings, key_text, seq FROM rows
         WHERE entity = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut after = 0i64;
    loop {
        let mut rows = stmt.query(params![entity.name, after, VERIFY_PAGE])?;
        let mut read = 0i64;
        while let Some(r) = rows.next()? {
            read += 1;
            after = r.get(7)?;
            let node = r.get_ref(0)?.as_str()?;
            let row = Candidate {
                node,
                public: r.get(1)?,
                deleted: r.get(2)?,
            };
            if !scope.visible(entity, row) {
                continue;
            }
            // Of a key several nodes hold, only the winner is the store's.
            let siblings: bool = r.get(5)?;
            if siblings {
                let key_text = r.get_ref(6)?.as_str()?;
                if crate::feed::winner(conn, entity, scope, key_text)?
                    .is_none_or(|w| w.node != node)
                {
                    continue;
                }
            }
            if let Some(wanted) = wanted {
                let key_json = r.get_ref(3)?.as_str()?;
                let key: Map<String, Value> =
                    serde_json::from_str(key_json).map_err(|source| VerifyError::BadRow {
                        entity: entity.name,
                        key: key_json.to_owned(),
                        source,
                    })?;
                let item = TypedItem::from_row(entity, 0, Op::Delete, &key);
                let values: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
                if !wanted(&values) {
                    continue;
                }
            }
            let Some(data) = r.get_ref(4)?.as_str_or_null()? else {
                continue;
            };
            let row: Map<String, Value> =
                serde_json::from_str(data).map_err(|source| VerifyError::BadRow {
                    entity: entity.name,
                    key: r
                        .get_ref(3)
                        .ok()
                        .and_then(|v| v.as_str().ok())
                        .unwrap_or("?")
                        .to_owned(),
                    source,
                })?;
            let item = TypedItem::from_row(entity, 0, Op::Upsert, &row);
            let values: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
            f(row, &values);
        }
        if read < VERIFY_PAGE {
            return Ok(());
        }
    }
}

/// Rows a verify reads per statement.
const VERIFY_PAGE: i64 = 10_000;

/// The digest of what `scope`'s store should hold of `entity`.
pub fn entity_digest(
    conn: &Connection,
    entity: &'static Entity,
    scope: &Scope,
    buckets: u32,
) -> Result<EntityDigest, VerifyError> {
    let through = through(conn, entity)?;
    let mut builder = DigestBuilder::new(entity, buckets);
    for_each_visible(conn, entity, scope, None, |_, values| builder.add(values))?;
    Ok(builder.finish(entity, through))
}

/// Every row of one bucket that `scope`'s store should hold.
pub fn bucket_rows(
    conn: &Connection,
    entity: &'static Entity,
    scope: &Scope,
    buckets: u32,
    bucket: u32,
) -> Result<BucketRows, VerifyError> {
    let through = through(conn, entity)?;
    let digester = RowDigester::new(entity, buckets);
    let mut rows = Vec::new();
    let in_bucket = |values: &[Canon<'_>]| digester.bucket(values) == bucket;
    for_each_visible(conn, entity, scope, Some(&in_bucket), |row, values| {
        // Checked on the data's key too: a row whose key_json disagreed
        // with its data would otherwise be served in the wrong bucket.
        if in_bucket(values) {
            rows.push(row);
        }
    })?;
    Ok(BucketRows {
        entity: entity.name.to_owned(),
        through,
        buckets: digester.buckets(),
        bucket,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::import::{Change, apply};
    use crate::nodes::{NewNode, NodeKind, scope, upsert_node};
    use loja_protocol::entity_named;
    use serde_json::json;

    #[test]
    fn digest_is_the_stores_view_and_buckets_partition_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path());
        let prices = entity_named("prices").unwrap();
        db.write(|tx| {
            for id in ["a", "b"] {
                let n = NewNode { id: id.into(), parent: "master".into(), kind: NodeKind::Store, token: Some(format!("token-{id}{id}{id}{id}")) };
                upsert_node(tx, &n).unwrap();
            }
            let changes: Vec<Change> = (1..=40u64)
                .map(|i| Change {
                    line: i,
                    node: Some(if i % 10 == 0 { "a".into() } else { "master".into() }),
                    public: Some(i % 10 != 0),
                    op: Op::Upsert,
                    row: json!({"product_code": i.to_string(), "price_list": "base", "price": i * 10})
                        .as_object().cloned().unwrap(),
                })
                .collect();
            apply(tx, prices, &changes).unwrap();
            Ok::<_, DbError>(())
        })
        .unwrap();
        let (a, b) = db
            .read(|c| {
                let a = scope(c, "a")?.unwrap();
                let b = scope(c, "b")?.unwrap();
                Ok::<_, DbError>((
                    entity_digest(c, prices, &a, 4).unwrap(),
                    entity_digest(c, prices, &b, 4).unwrap(),
                ))
            })
            .unwrap();
        assert_eq!(a.rows(), 40);
        assert_eq!(b.rows(), 36, "b never sees a's private rows");
        assert_eq!(a.through, Watermark(40));
        let mut n = 0;
        for bucket in 0..4 {
            let rows = db
                .read(|c| {
                    let s = scope(c, "b")?.unwrap();
                    Ok::<_, DbError>(bucket_rows(c, prices, &s, 4, bucket).unwrap())
                })
                .unwrap();
            let listed = b
                .sums
                .iter()
                .find(|s| s.bucket == bucket)
                .map_or(0, |s| s.rows);
            assert_eq!(rows.rows.len() as u64, listed);
            n += rows.rows.len();
        }
        assert_eq!(n, 36);
    }
}
