//! Corrections: a document sent under a new id in place of one the central
//! or the ERP refused (`replaces`). The refused one leaves the store's books
//! (`replaced_by` set: out of the failures, the cash and fiscal checks and a
//! sale's life) in the transaction that takes the correction, and what it
//! did to the stock is undone by the correction's own stock moves.

use std::path::Path;

use loja_protocol::stock::{Change, StockEffect};
use loja_protocol::{DocumentKind, FieldError};
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::Result;
use crate::error::SqlCtx;

/// The refused document a correction takes the place of.
pub(crate) struct Replaced {
    pub id: String,
    /// What it did to the stock, as recorded when it was taken.
    pub effects: Vec<StockEffect>,
}

/// Checks that `replaced` may be corrected by a document of `kind` with id
/// `by`, and retires it (inside the caller's transaction: nothing stays if
/// the correction is refused afterwards).
pub(crate) fn retire(
    tx: &Transaction<'_>,
    path: &Path,
    replaced: Uuid,
    kind: DocumentKind,
    by: Uuid,
) -> Result<Replaced> {
    let id = replaced.to_string();
    if replaced == by {
        return Err(FieldError::new("id", "a correction needs a new id").into());
    }
    let found: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT store_seq, kind, CASE WHEN replaced_by IS NULL THEN status \
             ELSE 'replaced by ' || replaced_by END FROM documents WHERE id = ?1",
        )
        .ctx(path, "query documents")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .ctx(path, "query documents")?;
    let Some((seq, held_kind, status)) = found else {
        return Err(FieldError::new(
            "replaces",
            format!("no document {id} in this store's outbox"),
        )
        .into());
    };
    if status != "failed" {
        return Err(FieldError::new(
            "replaces",
            format!(
                "document {id} is {status}: only a document the central or the ERP refused can be replaced"
            ),
        )
        .into());
    }
    if held_kind != kind.as_str() {
        return Err(FieldError::new(
            "kind",
            format!("document {id} is a {held_kind}; its correction must be one too"),
        )
        .into());
    }
    let mut stmt = tx
        .prepare_cached("SELECT product_code, delta, counted FROM stock_moves WHERE store_seq = ?1")
        .ctx(path, "query stock moves")?;
    let effects = stmt
        .query_map([seq], |r| {
            let counted: Option<i64> = r.get(2)?;
            Ok(StockEffect {
                product_code: r.get(0)?,
                change: match counted {
                    Some(v) => Change::Set(v),
                    None => Change::Delta(r.get(1)?),
                },
            })
        })
        .ctx(path, "query stock moves")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(path, "query stock moves")?;
    tx.prepare_cached("UPDATE documents SET replaced_by = ?2 WHERE id = ?1")
        .ctx(path, "retire replaced document")?
        .execute(params![id, by.to_string()])
        .ctx(path, "retire replaced document")?;
    Ok(Replaced { id, effects })
}
