//! End-to-end integrity of what the central sends a store: one hash
//! (XXH3-64), two uses.
//!
//! - **Answer digests.** Every answer a store applies (feed pages, verify
//!   answers) carries `Loja-Digest: xxh3-64=<16 hex digits>`, computed by the
//!   central over the uncompressed body it built. The store checks it on the
//!   bytes it decompressed, before it parses anything: a bit flipped on a
//!   disk, in a proxy or in a decompressor refuses the page whole. TLS
//!   protects the wire, not the ends; zstd's own frame checksum (also on)
//!   covers only the compressed leg.
//! - **Replica verify.** Pages can be right and the replica still drift (a
//!   restored backup, a hand edit, a bug). Both ends spread an entity's rows
//!   over `buckets` by a hash of their key and sum the hashes of the rows in
//!   each bucket (wrapping, so order does not matter) with their count. The
//!   store compares its sums with the central's for the same watermark and
//!   fetches only the buckets that differ.
//!
//! A row hashes the same at both ends because it is hashed from its
//! registry cells ([`Canon`]): the central from the JSON it serves, the
//! store from the SQLite columns it applied, one value per registry column
//! in registry order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::feed::Watermark;
use crate::registry::Entity;
use crate::typed::Cell;

/// The answer header that carries the body's digest.
pub const DIGEST_HEADER: &str = "loja-digest";
const ALGORITHM: &str = "xxh3-64=";

/// The most buckets a verify may ask for.
pub const MAX_BUCKETS: u32 = 65_536;

/// `xxh3-64=<16 hex digits>` of `body`: the value of [`DIGEST_HEADER`].
pub fn body_digest(body: &[u8]) -> String {
    format!("{ALGORITHM}{:016x}", xxh3_64(body))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("the answer carries no {DIGEST_HEADER} header")]
    Missing,
    #[error("{DIGEST_HEADER} {0:?} is not `xxh3-64=` and 16 hex digits")]
    Malformed(String),
    #[error(
        "the body does not match its {DIGEST_HEADER}: the central sent {sent}, the body received is {received}"
    )]
    Mismatch { sent: String, received: String },
}

/// Checks `body` against the [`DIGEST_HEADER`] value the central sent.
pub fn check_body_digest(header: Option<&str>, body: &[u8]) -> Result<(), DigestError> {
    let sent = header.ok_or(DigestError::Missing)?.trim();
    let hex = sent
        .strip_prefix(ALGORITHM)
        .filter(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| DigestError::Malformed(sent.chars().take(60).collect()))?;
    let received = body_digest(body);
    if received[ALGORITHM.len()..].eq_ignore_ascii_case(hex) {
        Ok(())
    } else {
        Err(DigestError::Mismatch {
            sent: sent.to_owned(),
            received,
        })
    }
}

/// A column value as both ends hash it: what the replica stores (SQLite
/// INTEGER, TEXT or NULL) for what the feed carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon<'a> {
    Null,
    /// Int, Money, Qty, and Bool (0/1) columns.
    Int(i64),
    /// Text and Time columns; a Json column's compact JSON text.
    Text(&'a [u8]),
    /// Anything else (a REAL or BLOB where the registry says otherwise):
    /// hashed apart, so it always shows up as a difference.
    Other(&'a [u8]),
}

impl<'a> Canon<'a> {
    /// The value of a typed cell, as the replica stores it.
    pub fn of_cell(cell: &'a Cell) -> Canon<'a> {
        match cell {
            Cell::Absent | Cell::Null => Canon::Null,
            Cell::Int(n) => Canon::Int(*n),
            Cell::Bool(b) => Canon::Int(i64::from(*b)),
            Cell::Text(s) => Canon::Text(s.as_bytes()),
            Cell::Json(s) => Canon::Text(s.as_bytes()),
            Cell::Bad(why) => Canon::Other(why.as_bytes()),
        }
    }

    fn feed(self, h: &mut Xxh3) {
        match self {
            Canon::Null => h.update(&[0]),
            Canon::Int(n) => {
                h.update(&[1]);
                h.update(&n.to_le_bytes());
            }
            Canon::Text(b) | Canon::Other(b) => {
                h.update(&[if matches!(self, Canon::Text(_)) { 2 } else { 3 }]);
                h.update(&(b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
}

fn hash_of<'a>(values: impl IntoIterator<Item = Canon<'a>>) -> u64 {
    let mut h = Xxh3::new();
    for v in values {
        v.feed(&mut h);
    }
    h.digest()
}

/// How many buckets a verify of `rows` rows uses: about 256 rows a bucket
/// (a repair refetches one bucket), a power of two, at most 4096.
pub fn buckets_for(rows: u64) -> u32 {
    (rows / 256).clamp(1, 4096).next_power_of_two() as u32
}

/// One bucket's digest: how many rows, and the wrapping sum of their hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSum {
    pub bucket: u32,
    pub rows: u64,
    pub sum: u64,
}

/// Answer of `GET /v1/stores/{store}/digests/{entity}?buckets=N`: the digest
/// of the rows this store should hold once its watermark is `through`.
/// Only buckets with rows are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityDigest {
    pub entity: String,
    pub through: Watermark,
    pub buckets: u32,
    pub sums: Vec<BucketSum>,
}

impl EntityDigest {
    /// The buckets whose rows differ between `self` and `other` (same
    /// `buckets`), in order.
    pub fn differing(&self, other: &EntityDigest) -> Vec<u32> {
        let key = |s: &BucketSum| (s.rows, s.sum);
        let mine: std::collections::BTreeMap<u32, (u64, u64)> =
            self.sums.iter().map(|s| (s.bucket, key(s))).collect();
        let theirs: std::collections::BTreeMap<u32, (u64, u64)> =
            other.sums.iter().map(|s| (s.bucket, key(s))).collect();
        let mut out: Vec<u32> = mine
            .keys()
            .chain(theirs.keys())
            .copied()
            .filter(|b| mine.get(b) != theirs.get(b))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn rows(&self) -> u64 {
        self.sums.iter().map(|s| s.rows).sum()
    }
}

/// Answer of `GET /v1/stores/{store}/digests/{entity}/rows?buckets=N&bucket=B`:
/// every row of one bucket this store should hold at `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRows {
    pub entity: String,
    pub through: Watermark,
    pub buckets: u32,
    pub bucket: u32,
    pub rows: Vec<Map<String, Value>>,
}

/// Where a row goes and what it hashes to, for one entity and bucket count.
pub struct RowDigester {
    key_index: Vec<usize>,
    buckets: u32,
}

impl RowDigester {
    pub fn new(entity: &Entity, buckets: u32) -> RowDigester {
        let key_index = entity
            .key
            .iter()
            .filter_map(|k| entity.columns.iter().position(|c| c.name == *k))
            .collect();
        RowDigester {
            key_index,
            buckets: buckets.clamp(1, MAX_BUCKETS),
        }
    }

    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The bucket of a row given as one value per registry column.
    pub fn bucket(&self, values: &[Canon<'_>]) -> u32 {
        let key = self
            .key_index
            .iter()
            .map(|&i| values.get(i).copied().unwrap_or(Canon::Null));
        (hash_of(key) % u64::from(self.buckets)) as u32
    }

    /// The hash of a whole row (one value per registry column, in order).
    pub fn row_hash(&self, values: &[Canon<'_>]) -> u64 {
        hash_of(values.iter().copied())
    }
}

/// Accumulates an [`EntityDigest`] row by row.
pub struct DigestBuilder {
    digester: RowDigester,
    acc: Vec<(u64, u64)>,
}

impl DigestBuilder {
    pub fn new(entity: &Entity, buckets: u32) -> DigestBuilder {
        let digester = RowDigester::new(entity, buckets);
        let acc = vec![(0, 0); digester.buckets as usize];
        DigestBuilder { digester, acc }
    }

    pub fn add(&mut self, values: &[Canon<'_>]) {
        let b = self.digester.bucket(values) as usize;
        let h = self.digester.row_hash(values);
        let (rows, sum) = &mut self.acc[b];
        *rows += 1;
        *sum = sum.wrapping_add(h);
    }

    pub fn finish(self, entity: &Entity, through: Watermark) -> EntityDigest {
        EntityDigest {
            entity: entity.name.to_owned(),
            through,
            buckets: self.digester.buckets,
            sums: self
                .acc
                .into_iter()
                .enumerate()
                .filter(|(_, (rows, _))| *rows > 0)
                .map(|(b, (rows, sum))| BucketSum {
                    bucket: b as u32,
                    rows,
                    sum,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Op;
    use crate::registry::entity_named;
    use crate::typed::TypedItem;
    use serde_json::json;

    #[test]
    fn body_digest_catches_every_single_bit_flip() {
        let body = br#"{"entity":"prices","after":0,"items":[{"seq":1,"op":"upsert","row":{"product_code":"1","price_list":"base","price":1544}}],"next":1,"more":false}"#;
        let header = body_digest(body);
        assert_eq!(check_body_digest(Some(&header), body), Ok(()));
        for bit in 0..body.len() * 8 {
            let mut flipped = body.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(
                    check_body_digest(Some(&header), &flipped),
                    Err(DigestError::Mismatch { .. })
                ),
                "bit {bit}"
            );
        }
        assert_eq!(check_body_digest(None, body), Err(DigestError::Missing));
        assert!(matches!(
            check_body_digest(Some("sha-256=abc"), body),
            Err(DigestError::Malformed(_))
        ));
        assert_eq!(
            check_body_digest(
                Some(&header.to_uppercase().replace("XXH3-64", "xxh3-64")),
                body
            ),
            Ok(())
        );
    }

    fn canon_row(e: &Entity, row: Value) -> Vec<Cell> {
        TypedItem::from_row(e, 0, Op::Upsert, row.as_object().unwrap()).cells
    }

    #[test]
    fn digests_ignore_order_and_see_every_change() {
        let e = entity_named("prices").unwrap();
        let rows: Vec<Vec<Cell>> = (0..1000)
            .map(|i| {
                canon_row(
                    e,
                    json!({"product_code": i.to_string(), "price_list": "base", "price": 100 + i}),
                )
            })
            .collect();
        let digest = |rows: &mut dyn Iterator<Item = &Vec<Cell>>| {
            let mut b = DigestBuilder::new(e, buckets_for(1000));
            for r in rows {
                let v: Vec<Canon> = r.iter().map(Canon::of_cell).collect();
                b.add(&v);
            }
            b.finish(e, Watermark(7))
        };
        let forward = digest(&mut rows.iter());
        let backward = digest(&mut rows.iter().rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.buckets, 4);
        assert_eq!(forward.rows(), 1000);
        let mut changed = rows.clone();
        changed[500] = canon_row(
            e,
            json!({"product_code": "500", "price_list": "base", "price": 8544}),
        );
        let d = digest(&mut changed.iter());
        assert_eq!(forward.differing(&d).len(), 1);
        let d = digest(&mut rows[1..].iter());
        assert_eq!(forward.differing(&d).len(), 1, "a missing row");
        // A null and an absent column are the same stored NULL; a bool is 0/1.
        let p = entity_named("products").unwrap();
        let a = canon_row(
            p,
            json!({"code": "1", "name": "A", "unit": "UN", "brand": null, "active": true}),
        );
        let b = canon_row(
            p,
            json!({"code": "1", "name": "A", "unit": "UN", "active": true}),
        );
        let va: Vec<Canon> = a.iter().map(Canon::of_cell).collect();
        let vb: Vec<Canon> = b.iter().map(Canon::of_cell).collect();
        let d = RowDigester::new(p, 16);
        assert_eq!(d.row_hash(&va), d.row_hash(&vb));
        assert_eq!(va[8], Canon::Int(1));
        // Text and integer never collide.
        assert_ne!(hash_of([Canon::Int(49)]), hash_of([Canon::Text(b"1")]));
    }
}
