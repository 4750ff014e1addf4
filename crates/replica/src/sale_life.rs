//! The outbox's side of a sale's life after it is sold: the checks a
//! cancellation or a return must pass against the documents this store
//! already holds (a known sale, not cancelled twice, never more returned
//! than was sold less earlier returns), and what each document does to the
//! stock (`stock_moves`), recorded in the same transaction as the document.

use std::collections::HashMap;
use std::path::Path;

use loja_protocol::stock::{Change, StockEffect};
use loja_protocol::{DocumentKind, FieldError};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::Result;
use crate::error::SqlCtx;

/// The id a document names in `field`, as text.
fn target(body: &Value, field: &str) -> Result<String> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| FieldError::new(field, "is required").into())
}

/// The body of this store's document `id` of `kind`, if the outbox holds it
/// (and it was not replaced by a correction).
pub(crate) fn body_of(
    tx: &Transaction<'_>,
    path: &Path,
    id: &str,
    kind: DocumentKind,
) -> Result<Option<Value>> {
    let text: Option<String> = tx
        .prepare_cached(
            "SELECT body FROM documents WHERE id = ?1 AND kind = ?2 AND replaced_by IS NULL",
        )
        .ctx(path, "query documents")?
        .query_row(params![id, kind.as_str()], |r| r.get(0))
        .optional()
        .ctx(path, "query documents")?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Ids of the documents of `kind` that undo `target` (corrected ones left out).
fn links(
    tx: &Transaction<'_>,
    path: &Path,
    target: &str,
    kind: DocumentKind,
) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT l.doc_id FROM sale_links l JOIN documents d ON d.id = l.doc_id \
             WHERE l.target = ?1 AND l.kind = ?2 AND d.replaced_by IS NULL",
        )
        .ctx(path, "query sale links")?;
    let ids = stmt
        .query_map(params![target, kind.as_str()], |r| r.get(0))
        .ctx(path, "query sale links")?
        .collect::<rusqlite::Result<Vec<String>>>()
        .ctx(path, "query sale links")?;
    Ok(ids)
}

/// The returns of `sale` not cancelled since.
fn live_returns(tx: &Transaction<'_>, path: &Path, sale: &str) -> Result<Vec<String>> {
    let mut live = Vec::new();
    for r in links(tx, path, sale, DocumentKind::Return)? {
        if links(tx, path, &r, DocumentKind::ReturnCancellation)?.is_empty() {
            live.push(r);
        }
    }
    Ok(live)
}

/// Quantities per product of a body's `items` (`qty`).
fn quantities(body: &Value) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for item in body
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(code), Some(qty)) = (
            item.get("product_code").and_then(Value::as_str),
            item.get("qty").and_then(Value::as_i64),
        ) {
            *out.entry(code.to_owned()).or_insert(0) += qty;
        }
    }
    out
}

/// Checks a document that undoes another against what the outbox holds,
/// and returns the body of the document it undoes when its stock effect
/// needs it (a sale's cancellation: the sale; a return's: the return).
pub(crate) fn check(
    tx: &Transaction<'_>,
    path: &Path,
    kind: DocumentKind,
    body: &Value,
) -> Result<Option<Value>> {
    let Some((field, of)) = loja_protocol::stock::undoes(kind) else {
        return Ok(None);
    };
    let id = target(body, field)?;
    let Some(undone) = body_of(tx, path, &id, of)? else {
        return Err(FieldError::new(
            field,
            format!("{id} is not a {} in this store's outbox", of.as_str()),
        )
        .into());
    };
    match kind {
        DocumentKind::SaleCancellation => {
            if let Some(c) = links(tx, path, &id, DocumentKind::SaleCancellation)?.first() {
                return Err(FieldError::new(
                    field,
                    format!("sale {id} is already cancelled (by {c})"),
                )
                .into());
            }
            if let Some(r) = live_returns(tx, path, &id)?.first() {
                return Err(FieldError::new(
                    field,
                    format!("sale {id} has return {r}: cancel the return first"),
                )
                .into());
            }
            Ok(Some(undone))
        }
        DocumentKind::Return => {
            if let Some(c) = links(tx, path, &id, DocumentKind::SaleCancellation)?.first() {
                return Err(
                    FieldError::new(field, format!("sale {id} was cancelled (by {c})")).into(),
                );
            }
            let sold = quantities(&undone);
            let mut returned: HashMap<String, i64> = HashMap::new();
            for r in live_returns(tx, path, &id)? {
                if let Some(b) = body_of(tx, path, &r, DocumentKind::Return)? {
                    for (code, qty) in quantities(&b) {
                        *returned.entry(code).or_insert(0) += qty;
                    }
                }
            }
            let items = body
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut now: HashMap<String, i64> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let code = item
                    .get("product_code")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let qty = item.get("qty").and_then(Value::as_i64).unwrap_or(0);
                let Some(s) = sold.get(code) else {
                    return Err(FieldError::new(
                        format!("items[{i}].product_code"),
                        format!("product {code} was not sold in sale {id}"),
                    )
                    .into());
                };
                let before = returned.get(code).copied().unwrap_or(0);
                let total = now.entry(code.to_owned()).or_insert(0);
                *total += qty;
                if before + *total > *s {
                    return Err(FieldError::new(
                        format!("items[{i}].qty"),
                        format!(
                            "returns {qty} of product {code} but {} are left to return (sold {s}, returned {before})",
                            (*s - before - (*total - qty)).max(0)
                        ),
                    )
                    .into());
                }
            }
            Ok(None)
        }
        DocumentKind::ReturnCancellation => {
            if let Some(c) = links(tx, path, &id, DocumentKind::ReturnCancellation)?.first() {
                return Err(FieldError::new(
                    field,
                    format!("return {id} is already cancelled (by {c})"),
                )
                .into());
            }
            Ok(Some(undone))
        }
        _ => Ok(None),
    }
}

/// Records what an accepted document undoes and does to the stock, with
/// its outbox position.
pub(crate) fn record(
    tx: &Transaction<'_>,
    path: &Path,
    id: &str,
    kind: DocumentKind,
    body: &Value,
    store_seq: i64,
    effects: &[StockEffect],
) -> Result<()> {
    if let Some((field, _)) = loja_protocol::stock::undoes(kind) {
        let target = target(body, field)?;
        tx.prepare_cached("INSERT INTO sale_links (doc_id, kind, target) VALUES (?1, ?2, ?3)")
            .ctx(path, "record sale link")?
            .execute(params![id, kind.as_str(), target])
            .ctx(path, "record sale link")?;
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO stock_moves (product_code, store_seq, delta, counted) VALUES (?1, ?2, ?3, ?4)",
        )
        .ctx(path, "record stock move")?;
    for e in effects {
        let (delta, counted) = match e.change {
            Change::Delta(d) => (d, None),
            Change::Set(v) => (0, Some(v)),
        };
        stmt.execute(params![e.product_code, store_seq, delta, counted])
            .ctx(path, "record stock move")?;
    }
    Ok(())
}
