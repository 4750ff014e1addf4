//! Wire types of the Loja sync protocol (store ⇄ central) and the entity
//! registry that drives both ends. Version: the `/v1` path prefix; fields are
//! only ever added, never re-typed, within a version.

pub mod check;
pub mod digest;
pub mod document;
pub mod error;
pub mod feed;
pub mod limits;
pub mod omni;
pub mod reconcile;
pub mod registry;
pub mod release;
pub mod schema;
pub mod stock;
pub mod time;
pub mod typed;
mod validate;
pub mod verdict;

pub use digest::{BucketRows, DIGEST_HEADER, EntityDigest};
pub use document::{AckStatus, BatchAck, Document, DocumentAck, DocumentBatch, DocumentKind};
pub use error::{ErrorBody, FieldError};
pub use feed::{Events, FeedItem, FeedPage, Op, PageError, SCOPE_HEADER, Watermark, parse_scope};
pub use registry::{ENTITIES, Entity, Resolution, entity_named};
pub use typed::{Cell, CheckedPage, TypedItem, TypedPage};
