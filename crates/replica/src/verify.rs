//! Replica verify: the replica's side of `loja_protocol::digest`.
//!
//! [`Catalog::digest_in`] reads an entity's rows and its watermark in one read
//! transaction of a connection of its own (the writer stays free for page
//! applies) and sums them per key bucket as the central does.
//! [`Catalog::repair_bucket`] makes one bucket equal to the central's rows
//! for it, through the one apply path (FTS, watermark check),
//! as a page that does not move the watermark: it applies only if the
//! replica is still at the watermark the central's rows are for.
//!
//! Rows written at the store ahead of the central (a customer signed up at
//! the POS, [`Catalog::upsert_local`]) are marked in `local_rows`
//! (`local_marks.rs`) until a feed page or a repair brings the central's
//! row for their key: they are left out of the digest and never deleted by
//! a repair, since the central does not have them yet.

use std::collections::{HashMap, HashSet};

use loja_protocol::digest::{Canon, DigestBuilder, RowDigester};
use loja_protocol::{
    BucketRows, Entity, EntityDigest, FieldError, Op, PageError, TypedItem, TypedPage, Watermark,
};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde_json::Value;

use crate::apply::{self, sql_of};
use crate::catalog::{Catalog, FILE};
use crate::error::SqlCtx;
use crate::local_marks::{key_text, key_values, local_keys};
use crate::{Result, migrate};

/// What a bucket repair changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repair {
    /// Rows missing or different here, written as the central has them.
    pub upserts: u64,
    /// Rows here that the central does not have for this store.
    pub deletes: u64,
    /// Rows written at the store the central does not have yet: kept.
    pub kept_local: u64,
}

fn canon(v: ValueRef<'_>) -> Canon<'_> {
    match v {
        ValueRef::Null => Canon::Null,
        ValueRef::Integer(n) => Canon::Int(n),
        ValueRef::Text(t) => Canon::Text(t),
        ValueRef::Real(_) => Canon::Other(b"real"),
        ValueRef::Blob(b) => Canon::Other(b),
    }
}

/// Calls `f` with the stored values of every row of `entity`.
fn for_each_row(
    conn: &Connection,
    entity: &Entity,
    path: &std::path::Path,
    mut f: impl FnMut(&[Canon<'_>]),
) -> Result<()> {
    let sql = sql_of(entity)?;
    let mut stmt = conn.prepare(&sql.select).ctx(path, "read rows to verify")?;
    let n = entity.columns.len();
    let mut rows = stmt.query([]).ctx(path, "read rows to verify")?;
    while let Some(r) = rows.next().ctx(path, "read rows to verify")? {
        let values = (0..n)
            .map(|i| r.get_ref(i).map(canon))
            .collect::<rusqlite::Result<Vec<Canon>>>()
            .ctx(path, "read rows to verify")?;
        f(&values);
    }
    Ok(())
}

impl Catalog {
    /// The digest of the replica's rows of `entity` in `dir` (the rows
    /// written at the store left out) with its watermark as `through`, from
    /// one read snapshot of a connection of its own: a long read that must
    /// not hold the writer's lock.
    pub fn digest_in(dir: &std::path::Path, entity: &Entity, buckets: u32) -> Result<EntityDigest> {
        let path = dir.join(FILE);
        let conn = migrate::open_ro(&path)?;
        conn.execute_batch("BEGIN")
            .ctx(&path, "begin verify read")?;
        let through = Watermark(apply::read_watermark(&conn, entity.name, &path)?);
        let local = local_keys(&conn, entity, &path)?;
        let key_index = &sql_of(entity)?.key_index;
        let mut builder = DigestBuilder::new(entity, buckets);
        for_each_row(&conn, entity, &path, |values| {
            if local.is_empty() || !local.contains(&key_text(values, key_index)) {
                builder.add(values);
            }
        })?;
        conn.execute_batch("COMMIT").ctx(&path, "end verify read")?;
        Ok(builder.finish(entity, through))
    }

    /// How many rows of `entity` the replica holds.
    pub fn row_count(&self, entity: &Entity) -> Result<u64> {
        // The table is the registry entity's name (checked by sql_of).
        sql_of(entity)?;
        let sql = format!("SELECT count(*) FROM {}", entity.name);
        self.conn
            .query_row(&sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .ctx(&self.path, "count rows")
    }

    /// Makes one bucket of `entity` equal to `central` (the central's rows
    /// of that bucket for this store), keeping rows written at the store
    /// that the central does not have yet. Refused whole (nothing written)
    /// when a central row is invalid or outside the bucket, or when the
    /// replica's watermark is no longer `central.through` (a page applied
    /// meanwhile: verify again).
    pub fn repair_bucket(&mut self, entity: &Entity, central: &BucketRows) -> Result<Repair> {
        if entity.secret || central.entity != entity.name {
            return Err(FieldError::new(
                "entity",
                format!(
                    "{} cannot be repaired from rows of {}",
                    entity.name, central.entity
                ),
            )
            .into());
        }
        let digester = RowDigester::new(entity, central.buckets);
        let key_index = sql_of(entity)?.key_index.clone();
        // The central's rows, checked as a page's rows are.
        let mut theirs: HashMap<String, (u64, TypedItem)> =
            HashMap::with_capacity(central.rows.len());
        for (i, row) in central.rows.iter().enumerate() {
            entity
                .validate_row(row)
                .map_err(|e| FieldError::new(format!("rows[{i}].{}", e.field), e.message))?;
            let item = TypedItem::from_row(entity, 0, Op::Upsert, row);
            let values: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
            if digester.bucket(&values) != central.bucket {
                return Err(FieldError::new(
                    format!("rows[{i}]"),
                    format!("is not in bucket {}", central.bucket),
                )
                .into());
            }
            let hash = digester.row_hash(&values);
            theirs.insert(key_text(&values, &key_index), (hash, item));
        }
        // Ours, on the writer connection: nothing else writes the replica
        // while `&mut self` is held but another process's page, which the
        // watermark check below catches.
        let local = local_keys(&self.conn, entity, &self.path)?;
        let mut repair = Repair::default();
        let mut items = Vec::new();
        // Keys whose row here equals the central's and carries no local mark
        // (a marked row the central has is written again: the write clears
        // its mark). Every other central row is upserted; a row both sides
        // have equal is left alone (no FTS churn).
        let mut equal: HashSet<String> = HashSet::new();
        for_each_row(&self.conn, entity, &self.path, |values| {
            if digester.bucket(values) != central.bucket {
                return;
            }
            let key = key_text(values, &key_index);
            match theirs.get(&key) {
                Some((hash, _)) => {
                    if *hash == digester.row_hash(values) && !local.contains(&key) {
                        equal.insert(key);
                    }
                }
                None if local.contains(&key) => repair.kept_local += 1,
                None => {
                    let key_row: serde_json::Map<String, Value> = entity
                        .key
                        .iter()
                        .map(|name| (*name).to_owned())
                        .zip(key_values(values, &key_index))
                        .collect();
                    items.push(TypedItem::from_row(entity, 0, Op::Delete, &key_row));
                    repair.deletes += 1;
                }
            }
        })?;
        for (key, (_, item)) in theirs {
            if !equal.contains(&key) {
                items.push(item);
                repair.upserts += 1;
            }
        }
        if items.is_empty() {
            return Ok(repair);
        }
        let page = TypedPage {
            entity: entity.name.to_owned(),
            after: central.through,
            next: central.through,
            items,
            more: false,
            held_until: None,
        };
        let through = central.through;
        self.apply_with(entity, &page, |stored| {
            if stored == through {
                Ok(())
            } else {
                Err(PageError::WrongStart {
                    expected: stored.0,
                    found: through.0,
                })
            }
        })?;
        Ok(repair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalWrite, ReplicaError};
    use loja_protocol::{FeedPage, entity_named};
    use serde_json::json;

    fn page(entity: &str, after: u64, items: Value, next: u64) -> FeedPage {
        serde_json::from_value(
            json!({"entity": entity, "after": after, "items": items, "next": next, "more": false}),
        )
        .unwrap()
    }

    fn central_digest(e: &Entity, rows: &[Value], buckets: u32, through: u64) -> EntityDigest {
        let mut b = DigestBuilder::new(e, buckets);
        for r in rows {
            let item = TypedItem::from_row(e, 0, Op::Upsert, r.as_object().unwrap());
            let v: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
            b.add(&v);
        }
        b.finish(e, Watermark(through))
    }

    fn bucket_of(
        e: &Entity,
        rows: &[Value],
        buckets: u32,
        bucket: u32,
        through: u64,
    ) -> BucketRows {
        let d = RowDigester::new(e, buckets);
        BucketRows {
            entity: e.name.into(),
            through: Watermark(through),
            buckets,
            bucket,
            rows: rows
                .iter()
                .filter(|r| {
                    let item = TypedItem::from_row(e, 0, Op::Upsert, r.as_object().unwrap());
                    let v: Vec<Canon> = item.cells.iter().map(Canon::of_cell).collect();
                    d.bucket(&v) == bucket
                })
                .map(|r| r.as_object().cloned().unwrap())
                .collect(),
        }
    }

    #[test]
    fn a_documents_row_is_written_once_so_an_erased_customer_stays_erased() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = entity_named("customers").unwrap();
        let row = json!({"document": "52998224725", "name": "Maria", "lgpd_consent": true});
        let row = row.as_object().unwrap();
        let doc = "01940000-0000-7000-8000-0000000000c1";
        assert!(
            c.upsert_local_document(e, row, doc, LocalWrite::Replace)
                .unwrap()
        );
        // A retry: the row is there.
        assert!(
            !c.upsert_local_document(e, row, doc, LocalWrite::IfNew)
                .unwrap()
        );
        // The central erases the customer; a retry or a recovery of the same
        // sign-up must not bring it back.
        c.apply_page(
            e,
            &page(
                "customers",
                0,
                json!([{"seq": 4, "op": "delete", "row": {"document": "52998224725"}}]),
                4,
            ),
        )
        .unwrap();
        assert_eq!(c.row_count(e).unwrap(), 0);
        assert!(
            !c.upsert_local_document(e, row, doc, LocalWrite::IfNew)
                .unwrap()
        );
        assert_eq!(c.row_count(e).unwrap(), 0);
        // A sign-up never written (a crash before its row) is written.
        let other = "01940000-0000-7000-8000-0000000000c2";
        let row2 = json!({"document": "11144477735", "name": "João", "lgpd_consent": true});
        assert!(
            c.upsert_local_document(e, row2.as_object().unwrap(), other, LocalWrite::IfNew)
                .unwrap()
        );
        // Pruning keeps the ids the outbox still has.
        let keep: HashSet<String> = [other.to_owned()].into();
        assert_eq!(c.prune_local_documents(&keep).unwrap(), 1);
        assert!(
            !c.upsert_local_document(e, row2.as_object().unwrap(), other, LocalWrite::IfNew)
                .unwrap()
        );
    }

    #[test]
    fn a_drifted_row_is_found_and_repaired_and_local_rows_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let e = entity_named("prices").unwrap();
        let rows: Vec<Value> = (1..=50)
            .map(
                |i| json!({"product_code": i.to_string(), "price_list": "base", "price": 1000 + i}),
            )
            .collect();
        let items: Vec<Value> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"seq": i + 1, "op": "upsert", "row": r}))
            .collect();
        c.apply_page(e, &page("prices", 0, Value::Array(items), 60))
            .unwrap();
        let buckets = 4;
        let central = central_digest(e, &rows, buckets, 60);
        assert_eq!(Catalog::digest_in(dir.path(), e, buckets).unwrap(), central);

        // Drift: one price changed behind the feed's back, one row gone, one extra.
        c.conn
            .execute_batch(
                "UPDATE prices SET price = 8544 WHERE product_code = '7';
                 DELETE FROM prices WHERE product_code = '8';
                 INSERT INTO prices (product_code, price_list, price) VALUES ('999', 'base', 1);",
            )
            .unwrap();
        let ours = Catalog::digest_in(dir.path(), e, buckets).unwrap();
        let differing = central.differing(&ours);
        assert!(
            !differing.is_empty() && differing.len() <= 3,
            "{differing:?}"
        );
        let mut repaired = Repair::default();
        for b in &differing {
            let r = c
                .repair_bucket(e, &bucket_of(e, &rows, buckets, *b, 60))
                .unwrap();
            repaired.upserts += r.upserts;
            repaired.deletes += r.deletes;
        }
        assert_eq!((repaired.upserts, repaired.deletes), (2, 1));
        assert_eq!(Catalog::digest_in(dir.path(), e, buckets).unwrap(), central);
        assert_eq!(
            c.watermark(e).unwrap(),
            Watermark(60),
            "a repair never moves the watermark"
        );

        // A repair for another watermark is refused whole.
        c.conn
            .execute_batch("UPDATE prices SET price = 1 WHERE product_code = '7'")
            .unwrap();
        let b = central.differing(&Catalog::digest_in(dir.path(), e, buckets).unwrap())[0];
        let err = c
            .repair_bucket(e, &bucket_of(e, &rows, buckets, b, 59))
            .unwrap_err();
        assert!(matches!(err, ReplicaError::Page { .. }), "{err}");

        // A customer signed up here is neither in the digest nor deleted.
        let cust = entity_named("customers").unwrap();
        let signup = json!({"document": "52998224725", "name": "Maria", "lgpd_consent": true});
        c.upsert_local(cust, signup.as_object().unwrap()).unwrap();
        assert_eq!(Catalog::digest_in(dir.path(), cust, 1).unwrap().rows(), 0);
        let r = c
            .repair_bucket(cust, &bucket_of(cust, &[], 1, 0, 0))
            .unwrap();
        assert_eq!((r.deletes, r.kept_local), (0, 1));
        // Once the central's row arrives through the feed, it is compared again.
        let theirs =
            json!({"document": "52998224725", "name": "Maria da Silva", "lgpd_consent": true});
        c.apply_page(
            cust,
            &page(
                "customers",
                0,
                json!([{"seq": 3, "op": "upsert", "row": theirs}]),
                3,
            ),
        )
        .unwrap();
        assert_eq!(
            Catalog::digest_in(dir.path(), cust, 1).unwrap(),
            central_digest(cust, &[theirs], 1, 3)
        );
    }
}
