//! Feed pages: what the central sends a store for one entity.

use serde::{Deserialize, Serialize};

/// The header of every feed page that names the store's place in the
/// hierarchy: its node id, then its ancestors up to the master,
/// comma-separated (`loja-0042,sul,master`). The store ranks its price lists
/// by it.
pub const SCOPE_HEADER: &str = "loja-scope";

/// The node ids of a `Loja-Scope` value, store first; `None` when it is not
/// one (an empty or malformed id).
pub fn parse_scope(value: &str) -> Option<Vec<String>> {
    let ids: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    let valid = |id: &String| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    ids.iter().all(valid).then_some(ids)
}
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::registry::Entity;

/// A position in one entity's feed: the central sequence of the last change
/// the store has applied. Moves only together with the rows it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Watermark(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Upsert,
    /// A tombstone: the row (key columns only) is gone for this store.
    Delete,
}

/// One change. For `upsert`, `row` is the whole row; for `delete`, its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    pub seq: u64,
    pub op: Op,
    pub row: Map<String, Value>,
}

/// One page of a feed: `GET /v1/stores/{store}/feeds/{entity}?after=&limit=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    pub entity: String,
    /// The watermark the request started after.
    pub after: Watermark,
    pub items: Vec<FeedItem>,
    /// The watermark to store once this page is applied.
    pub next: Watermark,
    /// More pages are ready now.
    pub more: bool,
    /// Set when the central's availability window holds this store back:
    /// no items, and the time (RFC 3339) new data is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
}

/// Why a page was refused whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageError {
    #[error("page is for entity {found}, expected {expected}")]
    WrongEntity { expected: String, found: String },
    #[error("page starts after {found}, expected {expected}")]
    WrongStart { expected: u64, found: u64 },
    #[error("item {index}: sequence {seq} is not above {prev}")]
    OutOfOrder { index: usize, seq: u64, prev: u64 },
    #[error("next watermark {next} is below the last item's sequence {last}")]
    BadNext { next: u64, last: u64 },
    #[error("item {index} (seq {seq}): {source}")]
    InvalidRow {
        index: usize,
        seq: u64,
        source: FieldError,
    },
}

impl FeedPage {
    /// Everything a store checks before applying a page: it is the page it
    /// asked for, sequences strictly increase, and every row is valid.
    pub fn validate(&self, entity: &Entity, asked_after: Watermark) -> Result<(), PageError> {
        check_page(
            entity,
            PageHead {
                entity: &self.entity,
                after: self.after,
                next: self.next,
            },
            asked_after,
            self.items.iter().map(|item| {
                (item.seq, move || match item.op {
                    Op::Upsert => entity.validate_row(&item.row),
                    Op::Delete => entity.validate_key(&item.row),
                })
            }),
        )
    }
}

/// What [`check_page`] needs of a page besides its items.
pub(crate) struct PageHead<'a> {
    pub entity: &'a str,
    pub after: Watermark,
    pub next: Watermark,
}

/// The page rules, in their order, for every page representation (JSON
/// maps, typed cells): the entity, the start, then item by item the order of
/// sequences and the row (checked lazily, after its sequence), then `next`.
pub(crate) fn check_page<R>(
    entity: &Entity,
    head: PageHead<'_>,
    asked_after: Watermark,
    items: impl Iterator<Item = (u64, R)>,
) -> Result<(), PageError>
where
    R: FnOnce() -> Result<(), FieldError>,
{
    if head.entity != entity.name {
        return Err(PageError::WrongEntity {
            expected: entity.name.into(),
            found: head.entity.to_owned(),
        });
    }
    if head.after != asked_after {
        return Err(PageError::WrongStart {
            expected: asked_after.0,
            found: head.after.0,
        });
    }
    let mut prev = asked_after.0;
    for (index, (seq, row_ok)) in items.enumerate() {
        if seq <= prev {
            return Err(PageError::OutOfOrder { index, seq, prev });
        }
        prev = seq;
        row_ok().map_err(|source| PageError::InvalidRow { index, seq, source })?;
    }
    if head.next.0 < prev {
        return Err(PageError::BadNext {
            next: head.next.0,
            last: prev,
        });
    }
    Ok(())
}

/// Answer of `GET /v1/stores/{store}/events?after=SEQ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// Pass back as `after` on the next call. Never above `head`.
    pub seq: u64,
    /// Entities with changes this store can see since `after` (empty on timeout).
    pub entities: Vec<String>,
    /// The central's newest sequence number when it answered. A store whose
    /// `after` is above it is ahead of the central (a corrupted answer, a
    /// central restored from a backup) and starts again from it. `None`
    /// from a central older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::entity_named;
    use serde_json::json;

    fn page(items: Value) -> FeedPage {
        serde_json::from_value(
            json!({"entity": "stock", "after": 5, "items": items, "next": 9, "more": false}),
        )
        .unwrap()
    }

    #[test]
    fn validates_order_start_and_rows() {
        let e = entity_named("stock").unwrap();
        let ok = page(
            json!([{"seq": 6, "op": "upsert", "row": {"product_code": "1", "qty": 1000}},
                             {"seq": 9, "op": "delete", "row": {"product_code": "2"}}]),
        );
        assert_eq!(ok.validate(e, Watermark(5)), Ok(()));
        assert!(matches!(
            ok.validate(e, Watermark(4)),
            Err(PageError::WrongStart { .. })
        ));
        let bad =
            page(json!([{"seq": 7, "op": "upsert", "row": {"product_code": "1", "qty": 1.5}}]));
        assert!(matches!(
            bad.validate(e, Watermark(5)),
            Err(PageError::InvalidRow { index: 0, .. })
        ));
        let unordered = page(
            json!([{"seq": 7, "op": "delete", "row": {"product_code": "1"}},
                                    {"seq": 7, "op": "delete", "row": {"product_code": "2"}}]),
        );
        assert!(matches!(
            unordered.validate(e, Watermark(5)),
            Err(PageError::OutOfOrder { .. })
        ));
    }
}
