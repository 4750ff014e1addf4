//! Omni orders at the store. The store's view of an order is the central's
//! row (`omni_orders`, reflecting this store's documents up to its
//! `reflects_store_seq`) with this store's later actions applied again
//! (`omni_actions` → outbox documents), so a register sees an action at
//! once and a second click is refused here, before it ever goes up. Also
//! what rides on the view: a register's claim of a pickup it redeems, and
//! the stock held for accepted lines (`omni_reservations`).
//!
//! The outbox's transaction is the serialization point: an action is
//! checked against the pending actions inside it, so two registers acting
//! at once cannot both move a line.

use std::path::Path;

use loja_protocol::document::{Sale, from_json_value};
use loja_protocol::omni::{self, OmniAction, OmniReturn, Order};
use loja_protocol::stock::StockEffect;
use loja_protocol::{DocumentKind, FieldError};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use crate::Result;
use crate::error::SqlCtx;

/// Where the outbox's tables are, seen from a connection: `""` from the
/// outbox itself, `"outbox."` from a reader that attached it.
#[derive(Clone, Copy)]
pub(crate) struct Tables(pub &'static str);

/// The central's view of `id` for this store and the store's documents
/// after it, applied: the order as this store sees it now.
pub(crate) fn view(
    rows: &Connection,
    outbox: Option<(&Connection, Tables)>,
    path: &Path,
    id: &str,
) -> Result<Option<Order>> {
    let row: Option<(Value, i64)> = rows
        .prepare_cached(
            "SELECT json_object('id', id, 'number', number, 'channel', channel, \
             'customer_document', customer_document, 'delivery', delivery, 'paid', paid, \
             'payments', payments, 'freight', freight, 'created_at', created_at, 'lines', lines), \
             coalesce(reflects_store_seq, 0) FROM omni_orders WHERE id = ?1",
        )
        .ctx(path, "query omni order")?
        .query_row([id], |r| {
            let text: String = r.get(0)?;
            Ok((
                serde_json::from_str(&text).unwrap_or(Value::Null),
                r.get(1)?,
            ))
        })
        .optional()
        .ctx(path, "query omni order")?;
    let Some((Value::Object(row), reflects)) = row else {
        return Ok(None);
    };
    let mut order = omni::from_row(&row)
        .map_err(|e| crate::ReplicaError::corrupt(path, format!("omni order {id}: {e}")))?;
    let Some((outbox, Tables(p))) = outbox else {
        return Ok(Some(order));
    };
    let mut stmt = outbox
        .prepare_cached(&format!(
            "SELECT d.id, d.kind, d.body FROM {p}omni_actions a JOIN {p}documents d ON d.store_seq = a.store_seq \
             WHERE a.order_id = ?1 AND a.store_seq > ?2 AND d.status != 'failed' AND d.replaced_by IS NULL \
             ORDER BY a.store_seq"
        ))
        .ctx(path, "query omni actions")?;
    let pending = stmt
        .query_map(params![id, reflects], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .ctx(path, "query omni actions")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(path, "query omni actions")?;
    let store = store_of(&order);
    for (doc_id, kind, body) in pending {
        let Ok(body) = serde_json::from_str::<Value>(&body) else {
            continue;
        };
        match DocumentKind::parse(&kind) {
            Some(DocumentKind::OmniAction) => {
                if let Ok(a) = from_json_value::<OmniAction>(&body) {
                    // Checked when taken; one the feed overtook is moot.
                    let _ = omni::apply(&mut order, &store, &a);
                }
            }
            Some(DocumentKind::Sale) => {
                if let Ok(s) = from_json_value::<Sale>(&body) {
                    omni::redeem(&mut order, &store, &s.sold_at);
                }
            }
            Some(DocumentKind::OmniReturn) => {
                if let Ok(r) = from_json_value::<OmniReturn>(&body) {
                    // Counted once by its id, whoever counted it first.
                    let _ = omni::apply_return(&mut order, &store, &doc_id, &r);
                }
            }
            _ => {}
        }
    }
    Ok(Some(order))
}

/// Keeps the central's whole order, fetched for a return taken here.
pub(crate) fn remember(tx: &Transaction<'_>, path: &Path, order: &Order, now: &str) -> Result<()> {
    let body = serde_json::to_string(order).map_err(|e| FieldError::new("order", e.to_string()))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO omni_remote_orders (order_id, body, fetched_at) VALUES (?1, ?2, ?3)",
    )
    .ctx(path, "remember omni order")?
    .execute(params![order.id, body, now])
    .ctx(path, "remember omni order")?;
    Ok(())
}

/// The order a return of `id` taken at `store` is checked against: the
/// central's whole order as last fetched, with this store's own lines as
/// it sees them now (its later actions applied), and every return of the
/// order in this outbox counted (by id, so never twice). `None`: neither
/// this store's order nor fetched.
pub(crate) fn returnable(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    store: &str,
    id: &str,
) -> Result<Option<Order>> {
    let mine = match rows {
        Some(rows) => view(rows, Some((tx, Tables(""))), path, id)?,
        None => None,
    };
    let fetched: Option<String> = tx
        .prepare_cached("SELECT body FROM omni_remote_orders WHERE order_id = ?1")
        .ctx(path, "query omni remote orders")?
        .query_row([id], |r| r.get(0))
        .optional()
        .ctx(path, "query omni remote orders")?;
    let fetched: Option<Order> = match fetched {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            crate::ReplicaError::corrupt(path, format!("fetched omni order {id}: {e}"))
        })?),
        None => None,
    };
    let mut order = match (fetched, mine) {
        (Some(mut whole), Some(mine)) => {
            // This store's lines as it sees them now, with every return the
            // central counted (its copy of the row may not have them yet).
            for mut line in mine.lines {
                match whole.lines.iter_mut().find(|l| l.line_id == line.line_id) {
                    Some(l) => {
                        for r in std::mem::take(&mut l.returns) {
                            if !line.returns.iter().any(|x| x.id == r.id) {
                                line.returns.push(r);
                            }
                        }
                        *l = line;
                    }
                    None => whole.lines.push(line),
                }
            }
            whole
        }
        (Some(o), None) | (None, Some(o)) => o,
        (None, None) => return Ok(None),
    };
    let mut stmt = tx
        .prepare_cached(
            "SELECT d.id, d.body FROM omni_actions a JOIN documents d ON d.store_seq = a.store_seq \
             WHERE a.order_id = ?1 AND d.kind = 'omni_return' AND d.status != 'failed' \
             AND d.replaced_by IS NULL ORDER BY a.store_seq",
        )
        .ctx(path, "query omni returns")?;
    let taken = stmt
        .query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .ctx(path, "query omni returns")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(path, "query omni returns")?;
    for (doc_id, body) in taken {
        if let Ok(r) = serde_json::from_str::<Value>(&body)
            .map_err(|e| FieldError::new("body", e.to_string()))
            .and_then(|b| from_json_value::<OmniReturn>(&b))
        {
            let _ = omni::apply_return(&mut order, store, &doc_id, &r);
        }
    }
    Ok(Some(order))
}

/// The store a view belongs to: its lines are this store's.
fn store_of(order: &Order) -> String {
    order
        .lines
        .iter()
        .find_map(|l| l.store.clone())
        .unwrap_or_default()
}

/// What an accepted omni document does beyond itself.
pub(crate) struct Taken {
    pub order_id: String,
    /// What it takes from the shelf (a shipment, a hand-over without a sale).
    pub effects: Vec<StockEffect>,
    /// The order after it, and the lines it moved.
    after: Order,
    moved: Vec<String>,
    /// A sale redeeming the order: its claim ends.
    releases_claim: bool,
}

fn unknown_order(id: &str) -> FieldError {
    FieldError::new(
        "order_id",
        format!("order {id} is not assigned to this store (or not downloaded yet)"),
    )
}

/// The store's view of order `id` inside the outbox's transaction, or why
/// there is none (not this store's, or the replica not there yet).
fn order_now(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    id: &str,
) -> Result<std::result::Result<Order, FieldError>> {
    Ok(match rows {
        Some(rows) => view(rows, Some((tx, Tables(""))), path, id)?,
        None => None,
    }
    .ok_or_else(|| unknown_order(id)))
}

/// Checks an omni action against the store's view of its order.
pub(crate) fn check_action(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    body: &Value,
) -> Result<Taken> {
    let a: OmniAction = from_json_value(body)?;
    let mut order = order_now(tx, rows, path, &a.order_id)??;
    let store = store_of(&order);
    let moved = omni::apply(&mut order, &store, &a)?;
    Ok(Taken {
        order_id: a.order_id.clone(),
        effects: omni::stock_effects(&order, a.action, &moved),
        after: order,
        moved,
        releases_claim: false,
    })
}

/// Checks an omni return taken at `store` against the order it names
/// ([`returnable`]): the same rule the central applies after it.
pub(crate) fn check_return(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    store: &str,
    doc_id: &str,
    body: &Value,
) -> Result<Taken> {
    let r: OmniReturn = from_json_value(body)?;
    let Some(mut order) = returnable(tx, rows, path, store, &r.order_id)? else {
        return Err(FieldError::new(
            "order_id",
            format!(
                "order {} is not this store's and was not fetched from the central: look it up first",
                r.order_id
            ),
        )
        .into());
    };
    omni::apply_return(&mut order, store, doc_id, &r)?;
    Ok(Taken {
        order_id: r.order_id,
        effects: Vec::new(),
        after: order,
        moved: Vec::new(),
        releases_claim: false,
    })
}

/// A sale naming an order (`order_id`) redeems it: the register must hold
/// the order's claim, and the order must have lines ready for pickup.
pub(crate) fn check_redeem(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    body: &Value,
) -> Result<Option<Taken>> {
    let Some(id) = body.get("order_id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let sale: Sale = from_json_value(body)?;
    let holder = standing_claim(tx, Tables(""), path, id)?.map(|c| c.register);
    match holder {
        Some(r) if r == sale.register => {}
        Some(r) => {
            return Err(FieldError::new(
                "order_id",
                format!("order {id} is claimed by register {r}"),
            )
            .into());
        }
        None => {
            return Err(FieldError::new(
                "order_id",
                format!(
                    "order {id} is not claimed by register {}: claim it first",
                    sale.register
                ),
            )
            .into());
        }
    }
    let mut order = order_now(tx, rows, path, id)??;
    let store = store_of(&order);
    let moved = omni::redeem(&mut order, &store, &sale.sold_at);
    if moved.is_empty() {
        return Err(FieldError::new(
            "order_id",
            format!("order {id} has no line ready for pickup"),
        )
        .into());
    }
    Ok(Some(Taken {
        order_id: id.to_owned(),
        effects: Vec::new(),
        after: order,
        moved,
        releases_claim: true,
    }))
}

/// Records what a taken omni document leaves: its place in the order's
/// history, the stock it holds or frees, the claim it ends.
pub(crate) fn record(
    tx: &Transaction<'_>,
    path: &Path,
    store_seq: i64,
    taken: &Taken,
    hold_until: &str,
) -> Result<()> {
    tx.prepare_cached("INSERT INTO omni_actions (store_seq, order_id) VALUES (?1, ?2)")
        .ctx(path, "record omni action")?
        .execute(params![store_seq, taken.order_id])
        .ctx(path, "record omni action")?;
    for line in taken
        .after
        .lines
        .iter()
        .filter(|l| taken.moved.contains(&l.line_id))
    {
        let held: Option<String> = tx
            .prepare_cached(
                "SELECT min(expires_at) FROM omni_reservations WHERE order_id = ?1 AND line_id = ?2",
            )
            .ctx(path, "query reservations")?
            .query_row(params![taken.order_id, line.line_id], |r| r.get(0))
            .ctx(path, "query reservations")?;
        tx.prepare_cached("DELETE FROM omni_reservations WHERE order_id = ?1 AND line_id = ?2")
            .ctx(path, "release reservation")?
            .execute(params![taken.order_id, line.line_id])
            .ctx(path, "release reservation")?;
        if line.state.reserves() {
            let (product, qty) = line.goods();
            tx.prepare_cached(
                "INSERT INTO omni_reservations (product_code, order_id, line_id, qty, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .ctx(path, "reserve stock")?
            .execute(params![
                product,
                taken.order_id,
                line.line_id,
                qty,
                held.as_deref().unwrap_or(hold_until)
            ])
            .ctx(path, "reserve stock")?;
        }
    }
    if taken.releases_claim {
        tx.prepare_cached("DELETE FROM omni_claims WHERE order_id = ?1")
            .ctx(path, "release claim")?
            .execute([&taken.order_id])
            .ctx(path, "release claim")?;
    }
    Ok(())
}

/// A register's hold on an order it redeems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub order_id: String,
    pub register: String,
    pub session_id: String,
    pub claimed_at: String,
}

/// Why a claim was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefused {
    /// Another register holds it (its session still open).
    Held(Claim),
    /// The order or the register's state does not allow it.
    Invalid(FieldError),
}

/// Gives `order_id` to `register` (its open cash session `session_id`).
/// The same register again keeps its claim; a claim whose session closed is
/// void and goes to the new register.
pub(crate) fn claim(
    tx: &Transaction<'_>,
    rows: Option<&Connection>,
    path: &Path,
    order_id: &str,
    register: &str,
    session_id: &str,
    now: &str,
) -> Result<std::result::Result<Claim, ClaimRefused>> {
    let invalid = |f: &str, m: String| Ok(Err(ClaimRefused::Invalid(FieldError::new(f, m))));
    let open: Option<String> = tx
        .prepare_cached(
            "SELECT register FROM cash_sessions WHERE session_id = ?1 AND closed_at IS NULL",
        )
        .ctx(path, "query cash sessions")?
        .query_row([session_id], |r| r.get(0))
        .optional()
        .ctx(path, "query cash sessions")?;
    match open {
        Some(r) if r == register => {}
        Some(r) => {
            return invalid(
                "session_id",
                format!("{session_id} is a cash session of register {r}, not {register}"),
            );
        }
        None => {
            return invalid(
                "session_id",
                format!("{session_id} is not an open cash session of this store"),
            );
        }
    }
    let order = match order_now(tx, rows, path, order_id)? {
        Ok(o) => o,
        Err(e) => return Ok(Err(ClaimRefused::Invalid(e))),
    };
    if order.delivery.ships() {
        return invalid(
            "order_id",
            format!("order {order_id} is shipped by the store, not redeemed at the POS"),
        );
    }
    if !order
        .lines
        .iter()
        .any(|l| l.state == omni::LineState::Ready)
    {
        return invalid(
            "order_id",
            format!(
                "order {order_id} has no line ready for pickup ({})",
                omni::status_of(&order.lines).as_str()
            ),
        );
    }
    let held = standing_claim(tx, Tables(""), path, order_id)?;
    if let Some(c) = held {
        return Ok(if c.register == register {
            Ok(c)
        } else {
            Err(ClaimRefused::Held(c))
        });
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO omni_claims (order_id, register, session_id, claimed_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .ctx(path, "claim omni order")?
    .execute(params![order_id, register, session_id, now])
    .ctx(path, "claim omni order")?;
    Ok(Ok(Claim {
        order_id: order_id.to_owned(),
        register: register.to_owned(),
        session_id: session_id.to_owned(),
        claimed_at: now.to_owned(),
    }))
}

/// Ends `register`'s claim of `order_id`; answers whether it held one.
pub(crate) fn release(
    tx: &Transaction<'_>,
    path: &Path,
    order_id: &str,
    register: &str,
) -> Result<bool> {
    let n = tx
        .prepare_cached("DELETE FROM omni_claims WHERE order_id = ?1 AND register = ?2")
        .ctx(path, "release claim")?
        .execute(params![order_id, register])
        .ctx(path, "release claim")?;
    Ok(n > 0)
}

/// The claim standing on an order (its session still open).
pub(crate) fn standing_claim(
    conn: &Connection,
    tables: Tables,
    path: &Path,
    order_id: &str,
) -> Result<Option<Claim>> {
    let p = tables.0;
    conn.prepare_cached(&format!(
        "SELECT c.register, c.session_id, c.claimed_at FROM {p}omni_claims c \
         JOIN {p}cash_sessions s ON s.session_id = c.session_id \
         WHERE c.order_id = ?1 AND s.closed_at IS NULL"
    ))
    .ctx(path, "query omni claims")?
    .query_row([order_id], |r| {
        Ok(Claim {
            order_id: order_id.to_owned(),
            register: r.get(0)?,
            session_id: r.get(1)?,
            claimed_at: r.get(2)?,
        })
    })
    .optional()
    .ctx(path, "query omni claims")
}

/// Thousandths of `product` held for accepted omni lines at `now` (a
/// reader with the outbox attached). A line the channel cancelled or moved
/// away (the central's view says so) holds nothing.
pub(crate) fn reserved(conn: &Connection, path: &Path, product: &str, now: &str) -> Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce(sum(r.qty), 0) FROM outbox.omni_reservations r \
         WHERE r.product_code = ?1 AND r.expires_at > ?2 AND EXISTS ( \
           SELECT 1 FROM omni_orders o, json_each(o.lines) l WHERE o.id = r.order_id \
           AND json_extract(l.value, '$.line_id') = r.line_id \
           AND json_extract(l.value, '$.state') NOT IN ('cancelled', 'to_put_back', 'rejected'))",
    )
    .ctx(path, "query reservations")?
    .query_row(params![product, now], |r| r.get(0))
    .ctx(path, "query reservations")
}

/// Is `kind` a document the omni view reads?
pub(crate) fn acts_on_orders(kind: DocumentKind, body: &Value) -> bool {
    matches!(kind, DocumentKind::OmniAction | DocumentKind::OmniReturn)
        || (kind == DocumentKind::Sale && body.get("order_id").is_some_and(|v| !v.is_null()))
}

/// An order as the POS sees it: this store's lines with this store's
/// actions applied, its status, and the register redeeming it, if any.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    pub status: omni::OrderStatus,
    pub claimed_by: Option<Claim>,
}

/// A line that has stayed too long in a state where the store must act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StuckLine {
    pub order_id: String,
    pub number: String,
    pub line_id: String,
    pub state: omni::LineState,
    pub since: String,
}

impl crate::CatalogReader {
    fn outbox_tables(&self) -> Option<(&Connection, Tables)> {
        self.moves.then_some((&self.conn, Tables("outbox.")))
    }

    fn order_view(&self, id: &str) -> Result<Option<OrderView>> {
        let Some(order) = view(&self.conn, self.outbox_tables(), &self.path, id)? else {
            return Ok(None);
        };
        let claimed_by = if self.moves {
            standing_claim(&self.conn, Tables("outbox."), &self.path, id)?
        } else {
            None
        };
        Ok(Some(OrderView {
            status: omni::status_of(&order.lines),
            order,
            claimed_by,
        }))
    }

    fn order_ids(&self, sql: &str, param: Option<&str>) -> Result<Vec<String>> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .ctx(path, "query omni orders")?;
        let params: Vec<&str> = param.into_iter().collect();
        let ids = stmt
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .ctx(path, "query omni orders")?
            .collect::<rusqlite::Result<Vec<String>>>()
            .ctx(path, "query omni orders")?;
        Ok(ids)
    }

    /// The store's omni orders as the POS sees them, oldest first; `open`:
    /// only those not concluded or cancelled.
    pub fn omni_orders(&self, open: bool) -> Result<Vec<OrderView>> {
        let mut out = Vec::new();
        for id in self.order_ids("SELECT id FROM omni_orders ORDER BY created_at, id", None)? {
            if let Some(v) = self.order_view(&id)?
                && !(open && v.status.is_final())
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One order by id.
    pub fn omni_order(&self, id: &str) -> Result<Option<OrderView>> {
        self.order_view(id)
    }

    /// The order the customer quotes by its number (the newest when a
    /// channel reuses one).
    pub fn omni_order_by_number(&self, number: &str) -> Result<Option<OrderView>> {
        let ids = self.order_ids(
            "SELECT id FROM omni_orders WHERE number = ?1 ORDER BY created_at DESC, id",
            Some(number),
        )?;
        match ids.first() {
            Some(id) => self.order_view(id),
            None => Ok(None),
        }
    }

    /// Lines waiting on the store (accepted and not picked, picked and not
    /// packed, ready and not collected, to put back) since before `before`.
    pub fn stuck_omni_lines(&self, before: &str) -> Result<Vec<StuckLine>> {
        let before = loja_protocol::time::parse_utc(before)
            .ok_or_else(|| FieldError::new("before", "must be an RFC 3339 timestamp"))?;
        let mut out = Vec::new();
        for v in self.omni_orders(true)? {
            for l in &v.order.lines {
                let waits = l.state.reserves() || l.state == omni::LineState::ToPutBack;
                let since = loja_protocol::time::parse_utc(&l.state_since);
                if waits && since.is_some_and(|s| s < before) {
                    out.push(StuckLine {
                        order_id: v.order.id.clone(),
                        number: v.order.number.clone(),
                        line_id: l.line_id.clone(),
                        state: l.state,
                        since: l.state_since.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}
