//! The store's local state, in three SQLite files in the data dir:
//!
//! - `replica.db` ([`Catalog`], [`CatalogReader`]): one typed table per
//!   registry entity plus each entity's [`Watermark`]. A feed page and its
//!   watermark are applied in one transaction.
//! - `outbox.db` ([`Outbox`]): the store's documents, `synchronous=FULL`;
//!   a document is acknowledged only once committed here.
//! - `journal.db` ([`Journal`]): tickets (every exchange with the central,
//!   payload compressed), the integration log (one row per job run) and the
//!   integration switches.
//!
//! Three files so that a sale never waits behind a 50 000-row catalog
//! apply, and the journal's archive traffic never slows either.
//!
//! [`Watermark`]: loja_protocol::Watermark

mod apply;
mod catalog;
mod checkpoint;
mod corrections;
mod error;
mod journal;
mod local_marks;
mod migrate;
pub mod omni_local;
mod outbox;
mod pending_stock;
pub mod price_lists;
mod product_answer;
mod queries;
mod reconciliation;
mod sale_life;
mod secrets;
mod verify;

pub use catalog::{Applied, Catalog, CatalogReader, LocalWrite, SNAPSHOT_MAX_AGE, WRITER_PRAGMAS};
pub(crate) use checkpoint::Checkpointer;
pub use error::ReplicaError;
pub use journal::{
    JobRun, JobState, Journal, LogFilter, NewTicket, Outcome, ReportRow, TicketDetail,
    TicketFilter, TicketKind, TicketStatus, TicketSummary,
};
pub use outbox::{
    Accepted, AckSummary, FailedDocument, NewDocument, Outbox, OutboxStats, Purged, Reconciled,
    StoredDocument,
};
pub use queries::{PriceView, ProductHit, ProductView};
pub use verify::Repair;

pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;
