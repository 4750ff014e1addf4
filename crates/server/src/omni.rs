//! The central's omni-channel orders (issue 17). A channel creates an order
//! (`create`); the central keeps it whole (`omni_orders`, every line with its
//! store and state) and publishes to each store the order with that store's
//! lines only, as the store's own row of entity `omni_orders` (`project`).
//! The stores move their lines with `omni_action` documents and close ready
//! pickup lines with a sale naming the order (`apply_document`, from
//! `documents::accept`); the channel cancels lines or moves them to another
//! store (`cancel`, `assign`). The rules are `loja_protocol::omni`'s, the
//! same the store applies: a stale action is refused with the line's real
//! state, and what the central did is recorded on the document for the ERP
//! (`documents.outcome`).

use crate::sql::{Connection, OptionalExtension};
use loja_protocol::omni::{
    self, ActionKind, LineState, NewOrder, OmniAction, OmniReturn, Order, OrderStatus,
};
use loja_protocol::stock::StockEffect;
use loja_protocol::{Document, DocumentKind, entity_named, limits};
use serde_json::{Map, Value, json};

use crate::nodes::{self, NodeKind};
use crate::rows::RowWriter;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1_000;

/// Why a channel's request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum OmniError {
    /// A value of the request is wrong (422, naming the field).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No order under the id (404).
    #[error("no such order {0}")]
    NotFound(String),
    /// The id holds another order (409).
    #[error("{0}")]
    Taken(String),
    /// A line is not in a state the change can leave (409, naming the field).
    #[error("{field}: {message}")]
    State { field: String, message: String },
    #[error(transparent)]
    Db(#[from] crate::sql::Error),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> OmniError {
    OmniError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// What a channel's write did: `created`, `unchanged` or `changed`, and
/// the order after it (as [`view`] shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub outcome: &'static str,
    pub order: Value,
}

/// What the central did with a store's document, for `documents::accept`.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Not an omni action nor a sale naming an order.
    Nothing,
    /// Done (or, for a sale, looked at): the outcome to record on the
    /// document, and what the moved lines take from the store's stock.
    Done {
        outcome: Value,
        stock: Vec<StockEffect>,
    },
    /// An omni action refused: `"{field}: {message}"`, the document's ack.
    Refused(String),
}

/// An order as stored.
struct Held {
    order: Order,
    /// The NewOrder the channel posted, as JSON.
    created: Value,
    updated_at: String,
}

fn corrupt(e: serde_json::Error) -> crate::sql::Error {
    crate::sql::Error::conversion(e)
}

fn to_text<T: serde::Serialize>(v: &T) -> Result<String, crate::sql::Error> {
    serde_json::to_string(v).map_err(crate::sql::Error::conversion)
}

fn load(conn: &Connection, id: &str) -> Result<Option<Held>, crate::sql::Error> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT body, created, updated_at FROM omni_orders WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((body, created, updated_at)) = row else {
        return Ok(None);
    };
    Ok(Some(Held {
        order: serde_json::from_str(&body).map_err(corrupt)?,
        created: serde_json::from_str(&created).map_err(corrupt)?,
        updated_at,
    }))
}

/// Stores the order as it is now.
fn save(conn: &Connection, order: &Order, now: &str) -> Result<(), crate::sql::Error> {
    conn.prepare_cached(
        "UPDATE omni_orders SET body = ?2, status = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![
        order.id,
        to_text(order)?,
        omni::status_of(&order.lines).as_str(),
        now
    ])?;
    Ok(())
}

/// `store`'s documents up to `store_seq` are counted in the order.
fn reflect(
    conn: &Connection,
    order_id: &str,
    store: &str,
    store_seq: u64,
) -> Result<(), crate::sql::Error> {
    conn.prepare_cached(
        "INSERT INTO omni_order_stores (order_id, store, reflects_store_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (order_id, store) DO UPDATE
         SET reflects_store_seq = CASE WHEN excluded.reflects_store_seq > omni_order_stores.reflects_store_seq
                                   THEN excluded.reflects_store_seq ELSE omni_order_stores.reflects_store_seq END",
    )?
    .execute(params![order_id, store, store_seq as i64])?;
    Ok(())
}

/// Every store that has or had lines of the order, with its reflects_store_seq.
fn stores_of(conn: &Connection, order_id: &str) -> Result<Vec<(String, u64)>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT store, reflects_store_seq FROM omni_order_stores WHERE order_id = ?1 ORDER BY store",
    )?;
    let rows = stmt.query_map(params![order_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    rows.collect()
}

/// The order as the admin API and the ERP queue show it: the order's
/// fields, its derived `status` and `updated_at`, each line with its
/// `domain_status`, `shopify_status` and `vtex_status`, and per store that
/// has or had lines its `status` (of its lines; null when none is left)
/// and `reflects_store_seq`.
pub fn view(order: &Order, updated_at: &str, stores: &[(String, u64)]) -> Value {
    let mut v = serde_json::to_value(order).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "status".into(),
            omni::status_of(&order.lines).as_str().into(),
        );
        o.insert("updated_at".into(), updated_at.into());
        if let Some(Value::Array(lines)) = o.get_mut("lines") {
            for (l, line) in lines.iter_mut().zip(&order.lines) {
                if let Some(l) = l.as_object_mut() {
                    l.insert(
                        "domain_status".into(),
                        line.state.domain_status(order.delivery).into(),
                    );
                    l.insert("shopify_status".into(), line.state.shopify_status().into());
                    l.insert("vtex_status".into(), line.state.vtex_status().into());
                }
            }
        }
        let stores: Vec<Value> = stores
            .iter()
            .map(|(s, reflects)| {
                let status = omni::view_for(order, s).map(|v| omni::status_of(&v.lines).as_str());
                json!({"store": s, "status": status, "reflects_store_seq": reflects})
            })
            .collect();
        o.insert("stores".into(), Value::Array(stores));
    }
    v
}

fn view_of(conn: &Connection, order: &Order, updated_at: &str) -> Result<Value, crate::sql::Error> {
    Ok(view(order, updated_at, &stores_of(conn, &order.id)?))
}

/// Creates an order from the channel (inside the caller's transaction):
/// validated (a wrong value names its field), its store must be a store
/// node. The same id again with the same content is `unchanged`; another
/// content under a taken id is refused (`Taken`). Projected to the store.
pub fn create(conn: &Connection, new: NewOrder) -> Result<Written, OmniError> {
    new.validate().map_err(|e| invalid(e.field, e.message))?;
    let created = serde_json::to_value(&new).map_err(|e| invalid("order", e.to_string()))?;
    if let Some(held) = load(conn, &new.id)? {
        if held.created == created {
            return Ok(Written {
                outcome: "unchanged",
                order: view_of(conn, &held.order, &held.updated_at)?,
            });
        }
        return Err(OmniError::Taken(format!(
            "id {} is taken by another order (number {}): a retry must send the same order; \
             a new order needs a new id",
            new.id, held.order.number
        )));
    }
    if nodes::kind_of(conn, &new.store)? != Some(NodeKind::Store) {
        return Err(invalid("store", format!("no such store {}", new.store)));
    }
    let now = loja_protocol::time::now_rfc3339();
    let order = new.into_order();
    conn.prepare_cached(
        "INSERT INTO omni_orders (id, number, status, created, body, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        order.id,
        order.number,
        omni::status_of(&order.lines).as_str(),
        to_text(&created)?,
        to_text(&order)?,
        now
    ])?;
    project(conn, &order, &[])?;
    Ok(Written {
        outcome: "created",
        order: view_of(conn, &order, &now)?,
    })
}

/// The indexes of the lines a channel's request names (`None`: every line
/// `all` keeps), each named once and existing.
fn named_lines(
    order: &Order,
    names: Option<&[String]>,
    all: impl Fn(&omni::OrderLine) -> bool,
) -> Result<Vec<usize>, OmniError> {
    let Some(names) = names else {
        return Ok((0..order.lines.len())
            .filter(|&i| all(&order.lines[i]))
            .collect());
    };
    if names.is_empty() {
        return Err(invalid(
            "lines",
            "name at least one line, or leave lines out for every line",
        ));
    }
    let mut out: Vec<usize> = Vec::with_capacity(names.len());
    for (n, name) in names.iter().enumerate() {
        let Some(i) = order.lines.iter().position(|l| &l.line_id == name) else {
            return Err(invalid(
                format!("lines[{n}]"),
                format!("order {} has no line {name}", order.id),
            ));
        };
        if out.contains(&i) {
            return Err(invalid(
                format!("lines[{n}]"),
                format!("line {name} is named twice"),
            ));
        }
        out.push(i);
    }
    Ok(out)
}

/// The field that names line `i` of the order in a request.
fn line_field(names: Option<&[String]>, order: &Order, i: usize) -> String {
    match names {
        Some(names) => names
            .iter()
            .position(|n| n == &order.lines[i].line_id)
            .map(|n| format!("lines[{n}]"))
            .unwrap_or_else(|| "lines".to_owned()),
        None => "lines".to_owned(),
    }
}

/// Writes a channel's change of the order: stored, projected to every
/// store it concerns (`before`: the stores of its lines before the change).
fn commit(
    conn: &Connection,
    order: &Order,
    before: &[String],
    changed: bool,
    held_updated_at: &str,
) -> Result<Written, OmniError> {
    if !changed {
        return Ok(Written {
            outcome: "unchanged",
            order: view_of(conn, order, held_updated_at)?,
        });
    }
    let now = loja_protocol::time::now_rfc3339();
    save(conn, order, &now)?;
    project(conn, order, before)?;
    Ok(Written {
        outcome: "changed",
        order: view_of(conn, order, &now)?,
    })
}

/// A channel's change of an order's lines, all or nothing: each line named
/// in `line_ids` (or, without names, each line `all` selects) goes through
/// `change` (a refusal names the line's field), then the order is stored
/// and projected when it changed. `none_selected`: the refusal when no line
/// is selected ("no line of order … {none_selected} (lines: …)").
fn change_lines(
    conn: &Connection,
    id: &str,
    line_ids: Option<Vec<String>>,
    all: impl Fn(&omni::OrderLine) -> bool,
    none_selected: Option<&str>,
    mut change: impl FnMut(&mut omni::OrderLine, &str) -> Result<(), String>,
) -> Result<Written, OmniError> {
    let held = load(conn, id)?.ok_or_else(|| OmniError::NotFound(id.to_owned()))?;
    let mut order = held.order.clone();
    let names = line_ids.as_deref();
    let targets = named_lines(&order, names, all)?;
    if let Some(what) = none_selected
        && targets.is_empty()
    {
        let states: Vec<String> = order
            .lines
            .iter()
            .map(|l| format!("{} {}", l.line_id, l.state.as_str()))
            .collect();
        return Err(OmniError::State {
            field: "lines".into(),
            message: format!(
                "no line of order {id} {what} (lines: {})",
                states.join(", ")
            ),
        });
    }
    let now = loja_protocol::time::now_rfc3339();
    for &i in &targets {
        let field = line_field(names, &order, i);
        change(&mut order.lines[i], &now).map_err(|message| OmniError::State { field, message })?;
    }
    let before = line_stores(&held.order);
    let changed = order.lines != held.order.lines;
    commit(conn, &order, &before, changed, &held.updated_at)
}

fn line_stores(order: &Order) -> Vec<String> {
    let mut s: Vec<String> = order.lines.iter().filter_map(|l| l.store.clone()).collect();
    s.sort();
    s.dedup();
    s
}

/// The channel cancels lines (`None`: every line) of an order: before
/// picked they are cancelled, after they wait for the store to put the
/// goods back (`to_put_back`). A delivered line refuses it (a return is the
/// way back), and then nothing changes. Lines already cancelled stay as
/// they are.
pub fn cancel(
    conn: &Connection,
    id: &str,
    line_ids: Option<Vec<String>>,
    reason: Option<String>,
) -> Result<Written, OmniError> {
    if let Some(r) = &reason
        && (limits::is_blank(r) || limits::char_len(r) > limits::CODE_MAX)
    {
        return Err(invalid(
            "reason",
            format!("must be 1 to {} characters", limits::CODE_MAX),
        ));
    }
    change_lines(
        conn,
        id,
        line_ids,
        |_| true,
        None,
        |line, now| omni::cancel_line(line, reason.as_deref(), now),
    )
}

/// The channel moves lines (`None`: every line that waits for a store:
/// assigned and not accepted yet, or rejected) to `store`, or back to the
/// channel (`None`). The store must be a store node. The store that had
/// them loses them from its row (a tombstone when none is left).
pub fn assign(
    conn: &Connection,
    id: &str,
    line_ids: Option<Vec<String>>,
    store: Option<String>,
) -> Result<Written, OmniError> {
    if let Some(s) = &store
        && nodes::kind_of(conn, s)? != Some(NodeKind::Store)
    {
        return Err(invalid("store", format!("no such store {s}")));
    }
    let waits = |l: &omni::OrderLine| matches!(l.state, LineState::Assigned | LineState::Rejected);
    change_lines(
        conn,
        id,
        line_ids,
        waits,
        Some("waits for a store"),
        |line, now| {
            // Already where it is sent: nothing to do.
            let there = line.store == store && line.state == LineState::Assigned;
            if there || (store.is_none() && line.store.is_none()) {
                return Ok(());
            }
            omni::assign_line(line, store.as_deref(), now)
        },
    )
}

/// Does the document move an order: an omni action, or a sale naming one?
pub fn concerns(doc: &Document) -> bool {
    match doc.kind {
        DocumentKind::OmniAction | DocumentKind::OmniReturn => true,
        DocumentKind::Sale => doc.body.get("order_id").is_some_and(|v| !v.is_null()),
        _ => false,
    }
}

/// What the central did with an order's document: `{"order_id", "action",
/// "applied", "moved": [line ids], "reason"?, "order": view | null}`.
fn outcome(
    order_id: &str,
    action: &str,
    moved: &[String],
    reason: Option<String>,
    order: Option<Value>,
) -> Value {
    let mut o = json!({
        "order_id": order_id,
        "action": action,
        "applied": !moved.is_empty(),
        "moved": moved,
        "order": order,
    });
    if let (Some(r), Some(m)) = (reason, o.as_object_mut()) {
        m.insert("reason".into(), Value::String(r));
    }
    o
}

/// Applies a newly accepted document of `store` to the order it moves
/// (inside the caller's transaction; only for a document the central did
/// not hold yet, so a retry applies nothing):
/// - an `omni_action`, with `omni::apply` against the stored order; an
///   unknown order, a stale `expects` or another store's lines refuse it
///   (`Refused`: the caller stores nothing for it);
/// - a `sale` with `order_id`: the store's `ready` lines of the order are
///   handed over. A sale is never refused for the order's sake: an unknown
///   order or no ready line is recorded in the outcome.
///
/// The order's rows follow, the store's row reflecting the document's
/// `store_seq`. The stock a hand-over or shipment takes is in `Done`.
pub fn apply_document(
    conn: &Connection,
    store: &str,
    doc: &Document,
) -> Result<Applied, crate::sql::Error> {
    let action: OmniAction = match doc.kind {
        DocumentKind::OmniReturn => return apply_return(conn, store, doc),
        DocumentKind::OmniAction => match loja_protocol::document::from_json_value(&doc.body) {
            Ok(a) => a,
            Err(e) => return Ok(Applied::Refused(e.to_string())),
        },
        DocumentKind::Sale => {
            let text = |f: &str| {
                doc.body
                    .get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let order_id = text("order_id");
            if order_id.is_empty() {
                return Ok(Applied::Nothing);
            }
            // The sale hands over the ready lines of this store.
            OmniAction {
                order_id,
                action: ActionKind::HandOver,
                expects: LineState::Ready,
                lines: Vec::new(),
                reason_code: None,
                invoice: None,
                register: text("register"),
                operator: text("operator"),
                at: text("sold_at"),
            }
        }
        _ => return Ok(Applied::Nothing),
    };
    let by_sale = doc.kind == DocumentKind::Sale;
    let Some(held) = load(conn, &action.order_id)? else {
        let why = format!("order_id: no such order {}", action.order_id);
        if by_sale {
            return Ok(Applied::Done {
                outcome: outcome(
                    &action.order_id,
                    action.action.as_str(),
                    &[],
                    Some(why),
                    None,
                ),
                stock: Vec::new(),
            });
        }
        return Ok(Applied::Refused(why));
    };
    let mut order = held.order;
    let moved = match omni::apply(&mut order, store, &action) {
        Ok(moved) => moved,
        Err(e) if by_sale => {
            // Nothing moved; the store's row still says the central saw the sale.
            reflect(conn, &order.id, store, doc.store_seq)?;
            project(conn, &order, &[store.to_owned()])?;
            let v = view_of(conn, &order, &held.updated_at)?;
            return Ok(Applied::Done {
                outcome: outcome(
                    &order.id,
                    action.action.as_str(),
                    &[],
                    Some(e.to_string()),
                    Some(v),
                ),
                stock: Vec::new(),
            });
        }
        Err(e) => return Ok(Applied::Refused(e.to_string())),
    };
    let now = loja_protocol::time::now_rfc3339();
    save(conn, &order, &now)?;
    reflect(conn, &order.id, store, doc.store_seq)?;
    project(conn, &order, &[store.to_owned()])?;
    // A sale takes its goods through its own items (store_stock).
    let stock = if by_sale {
        Vec::new()
    } else {
        omni::stock_effects(&order, action.action, &moved)
    };
    let v = view_of(conn, &order, &now)?;
    Ok(Applied::Done {
        outcome: outcome(&order.id, action.action.as_str(), &moved, None, Some(v)),
        stock,
    })
}

/// An `omni_return` taken at `store`, any store of the chain: counted on
/// the order's lines (`omni::apply_return`) or refused with the field. The
/// stores holding lines of the order see the return in their rows; the
/// restocked goods go up at `store` through the document's own stock
/// effects (`store_stock`).
fn apply_return(
    conn: &Connection,
    store: &str,
    doc: &Document,
) -> Result<Applied, crate::sql::Error> {
    let r: OmniReturn = match loja_protocol::document::from_json_value(&doc.body) {
        Ok(r) => r,
        Err(e) => return Ok(Applied::Refused(e.to_string())),
    };
    let Some(held) = load(conn, &r.order_id)? else {
        return Ok(Applied::Refused(format!(
            "order_id: no such order {}",
            r.order_id
        )));
    };
    let mut order = held.order;
    if let Err(e) = omni::apply_return(&mut order, store, &doc.id.to_string(), &r) {
        return Ok(Applied::Refused(e.to_string()));
    }
    let now = loja_protocol::time::now_rfc3339();
    save(conn, &order, &now)?;
    if omni::view_for(&order, store).is_some() {
        reflect(conn, &order.id, store, doc.store_seq)?;
    }
    project(conn, &order, &[])?;
    let lines: Vec<String> = r.items.iter().map(|i| i.line_id.clone()).collect();
    let v = view_of(conn, &order, &now)?;
    Ok(Applied::Done {
        outcome: outcome(&order.id, "return", &lines, None, Some(v)),
        stock: Vec::new(),
    })
}

/// The orders a store of the chain asks for to take a return (`id`, or the
/// `number` the customer quotes, newest first, at most 10): whole, every
/// line of every store, as the central holds them.
pub fn find(
    conn: &Connection,
    id: Option<&str>,
    number: Option<&str>,
) -> Result<Vec<Order>, OmniError> {
    if id.is_none() == number.is_none() {
        return Err(invalid(
            "id",
            "give the order's id or its number (not both)",
        ));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM omni_orders WHERE (CAST(?1 AS TEXT) IS NULL OR id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR number = ?2)
         ORDER BY created_at DESC, id LIMIT 10",
    )?;
    let bodies = stmt
        .query_map(params![id, number], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(bodies.len());
    for b in bodies {
        out.push(serde_json::from_str(&b).map_err(corrupt)?);
    }
    Ok(out)
}

/// `data` without its `updated_at`: two projections that differ only there
/// are the same row.
fn same_row(stored: Option<&str>, new: &Value) -> bool {
    let Some(Ok(Value::Object(mut old))) = stored.map(serde_json::from_str::<Value>) else {
        return false;
    };
    let Some(new) = new.as_object() else {
        return false;
    };
    old.remove("updated_at");
    let mut new = new.clone();
    new.remove("updated_at");
    old == new
}

/// Publishes the order to the stores (inside the caller's transaction):
/// for every store that has lines of it, the store's own row of entity
/// `omni_orders` (its lines, `omni::to_row`, reflecting the store's
/// documents the central applied to it); for every store that had lines
/// and has none left (`stores_touched`, or any store that ever had lines),
/// a tombstone of its row. A row that would not change is not written.
/// Answers how many rows were written.
pub fn project(
    conn: &Connection,
    order: &Order,
    stores_touched: &[String],
) -> Result<u64, crate::sql::Error> {
    let Some(entity) = entity_named("omni_orders") else {
        return Ok(0);
    };
    let mut stores = line_stores(order);
    let known = stores_of(conn, &order.id)?;
    stores.extend(known.iter().map(|(s, _)| s.clone()));
    stores.extend(stores_touched.iter().cloned());
    stores.sort();
    stores.dedup();
    let mut key = Map::new();
    key.insert("id".into(), Value::String(order.id.clone()));
    let key_text = entity.key_text(&key);
    let key_json = Value::Object(key).to_string();
    let now = loja_protocol::time::now_rfc3339();
    let mut rows = RowWriter::open(conn)?;
    let mut written = 0;
    for store in &stores {
        let (mine, others) = rows.find_at(entity.name, &key_text, store)?;
        let mine = mine.as_ref();
        match omni::view_for(order, store) {
            Some(v) => {
                reflect(conn, &order.id, store, 0)?;
                let reflects = known
                    .iter()
                    .find(|(s, _)| s == store)
                    .map_or(0, |(_, r)| *r);
                let data = omni::to_row(&v, reflects, &now);
                if mine.is_some_and(|m| !m.deleted && same_row(m.data.as_deref(), &data)) {
                    continue;
                }
                rows.put(
                    entity.name,
                    &key_text,
                    &key_json,
                    store,
                    false,
                    Some(&data.to_string()),
                    mine,
                    others,
                )?;
                written += 1;
            }
            None => {
                if let Some(m) = mine.filter(|m| !m.deleted) {
                    rows.tombstone(m)?;
                    written += 1;
                }
            }
        }
    }
    rows.finish()?;
    Ok(written)
}

/// One order, as [`view`] shows it.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Value>, crate::sql::Error> {
    match load(conn, id)? {
        Some(h) => Ok(Some(view_of(conn, &h.order, &h.updated_at)?)),
        None => Ok(None),
    }
}

/// The orders, newest first: of a status (`OrderStatus::as_str`), with
/// lines at a store now, at most `limit` (1 to [`MAX_LIMIT`]).
pub fn list(
    conn: &Connection,
    status: Option<&str>,
    store: Option<&str>,
    limit: u64,
) -> Result<Vec<Value>, OmniError> {
    const STATUSES: [OrderStatus; 7] = [
        OrderStatus::Open,
        OrderStatus::Accepted,
        OrderStatus::InSeparation,
        OrderStatus::ReadyForPickup,
        OrderStatus::PutBackPending,
        OrderStatus::Concluded,
        OrderStatus::Cancelled,
    ];
    if let Some(s) = status
        && !STATUSES.iter().any(|x| x.as_str() == s)
    {
        let names: Vec<&str> = STATUSES.iter().map(|x| x.as_str()).collect();
        return Err(invalid(
            "status",
            format!("is {s}, not one of {}", names.join(", ")),
        ));
    }
    let limit = limit.clamp(1, MAX_LIMIT) as usize;
    let mut stmt = conn.prepare_cached(
        "SELECT body, updated_at FROM omni_orders
         WHERE (CAST(?1 AS TEXT) IS NULL OR status = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR id IN (SELECT order_id FROM omni_order_stores WHERE store = ?2))
         ORDER BY created_at DESC, id",
    )?;
    let mut rows = stmt.query(params![status, store])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let body: String = r.get(0)?;
        let order: Order = serde_json::from_str(&body).map_err(corrupt)?;
        if let Some(s) = store
            && omni::view_for(&order, s).is_none()
        {
            continue;
        }
        let updated_at: String = r.get(1)?;
        out.push(view_of(conn, &order, &updated_at)?);
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use crate::documents::{accept, collect};
    use loja_protocol::omni::{ActionLine, Delivery, Invoice, NewLine, Substitute};
    use loja_protocol::{AckStatus, DocumentAck, DocumentBatch};
    use uuid::Uuid;

    fn central() -> (Db, tempfile::TempDir) {
        crate::test_central::with_stores(&["a", "b"])
    }

    fn new_order(delivery: Delivery) -> NewOrder {
        NewOrder {
            id: "o1".into(),
            number: "1001".into(),
            channel: "site".into(),
            customer_document: None,
            delivery,
            paid: true,
            payments: vec![],
            freight: 0,
            created_at: "2026-11-30T10:00:00Z".into(),
            store: "a".into(),
            lines: vec![
                NewLine {
                    line_id: "1".into(),
                    product_code: "1".into(),
                    qty: 2000,
                    unit_price: 500,
                    total: 1000,
                },
                NewLine {
                    line_id: "2".into(),
                    product_code: "2".into(),
                    qty: 1000,
                    unit_price: 300,
                    total: 300,
                },
            ],
        }
    }

    fn write<T>(
        db: &Db,
        f: impl FnOnce(&Connection) -> Result<T, OmniError>,
    ) -> Result<T, OmniError> {
        db.write(|tx| match f(tx) {
            Ok(v) => Ok(Ok(v)),
            Err(OmniError::Db(e)) => Err(DbError::from(e)),
            Err(e) => Ok(Err(e)),
        })
        .unwrap()
    }

    fn action(action: ActionKind, expects: LineState) -> OmniAction {
        OmniAction {
            order_id: "o1".into(),
            action,
            expects,
            lines: vec![],
            reason_code: None,
            invoice: None,
            register: "PDV01".into(),
            operator: "001".into(),
            at: "2026-11-30T11:00:00Z".into(),
        }
    }

    fn doc(kind: DocumentKind, store_seq: u64, body: Value) -> Document {
        Document {
            id: Uuid::new_v4(),
            kind,
            register: "PDV01".into(),
            store_seq,
            accepted_at: "2026-11-30T11:00:01Z".into(),
            body,
            reoffer: false,
            reconciliation: None,
            replaces: None,
        }
    }

    fn act_doc(store_seq: u64, a: &OmniAction) -> Document {
        doc(
            DocumentKind::OmniAction,
            store_seq,
            serde_json::to_value(a).unwrap(),
        )
    }

    fn send(db: &Db, store: &str, d: &Document) -> DocumentAck {
        let batch = DocumentBatch {
            documents: vec![d.clone()],
        };
        db.write(|tx| accept(tx, store, &batch).map_err(DbError::from))
            .unwrap()
            .acks
            .remove(0)
    }

    /// Store `store`'s row of order o1: `None` when absent or a tombstone.
    fn row(db: &Db, store: &str) -> Option<Value> {
        db.read(|c| {
            let data: Option<Option<String>> = c
                .query_row(
                    "SELECT data FROM rows WHERE entity = 'omni_orders' AND node = ?1 AND key_text = '[\"o1\"]'",
                    params![store],
                    |r| r.get(0),
                )
                .optional()?;
            Ok::<_, DbError>(data.flatten().map(|d| serde_json::from_str(&d).unwrap()))
        })
        .unwrap()
    }

    fn states(v: &Value) -> Vec<String> {
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{} {}",
                    l["line_id"].as_str().unwrap(),
                    l["state"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn order(db: &Db) -> Value {
        db.read(|c| Ok::<_, DbError>(get(c, "o1")?))
            .unwrap()
            .unwrap()
    }

    /// The ERP queue's entries.
    fn queue(db: &Db) -> Vec<Value> {
        let page: Value = serde_json::from_str(
            &db.read(|c| collect(c, 0, 100).map_err(DbError::from))
                .unwrap(),
        )
        .unwrap();
        page["documents"].as_array().unwrap().clone()
    }

    #[test]
    fn create_is_idempotent_refuses_a_taken_id_and_names_a_wrong_field() {
        let (db, _dir) = central();
        let w = write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        assert_eq!(w.outcome, "created");
        assert_eq!(w.order["status"], "open");
        assert_eq!(w.order["lines"][0]["domain_status"], "Em aberto");
        assert_eq!(w.order["lines"][0]["shopify_status"], "open");
        assert_eq!(w.order["lines"][0]["vtex_status"], "ready-for-handling");
        let a = row(&db, "a").unwrap();
        assert_eq!(a["status"], "open");
        assert_eq!(a["reflects_store_seq"], 0);
        entity_named("omni_orders")
            .unwrap()
            .validate_row(a.as_object().unwrap())
            .unwrap();
        let head = db
            .read(|c| Ok::<_, DbError>(crate::db::head_seq(c)?))
            .unwrap();
        // The same order again: unchanged, nothing written.
        let w = write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        assert_eq!(w.outcome, "unchanged");
        let head2 = db
            .read(|c| Ok::<_, DbError>(crate::db::head_seq(c)?))
            .unwrap();
        assert_eq!(head, head2);
        // Another order under the id.
        let mut other = new_order(Delivery::Pickup);
        other.number = "1002".into();
        let err = write(&db, |c| create(c, other)).unwrap_err();
        assert!(
            matches!(&err, OmniError::Taken(m) if m.contains("id o1 is taken")),
            "{err}"
        );
        // A wrong total, an unknown store.
        let mut wrong = new_order(Delivery::Pickup);
        wrong.id = "o2".into();
        wrong.lines[1].total = 301;
        let err = write(&db, |c| create(c, wrong)).unwrap_err();
        assert!(
            matches!(&err, OmniError::Invalid { field, .. } if field == "lines[1].total"),
            "{err}"
        );
        let mut nowhere = new_order(Delivery::Pickup);
        nowhere.id = "o2".into();
        nowhere.store = "z".into();
        let err = write(&db, |c| create(c, nowhere)).unwrap_err();
        assert!(
            matches!(&err, OmniError::Invalid { field, .. } if field == "store"),
            "{err}"
        );
        let all = db
            .read(|c| Ok::<_, DbError>(list(c, None, None, 10).unwrap()))
            .unwrap();
        assert_eq!(all.len(), 1);
        let none = db
            .read(|c| Ok::<_, DbError>(list(c, Some("concluded"), Some("a"), 10).unwrap()))
            .unwrap();
        assert!(none.is_empty());
        db.read(|c| {
            let err = list(c, Some("done"), None, 10).unwrap_err();
            assert!(matches!(&err, OmniError::Invalid { field, .. } if field == "status"));
            Ok::<_, DbError>(())
        })
        .unwrap();
    }

    #[test]
    fn a_stores_action_moves_its_lines_once_and_a_stale_one_is_refused() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        let accept_doc = act_doc(5, &action(ActionKind::Accept, LineState::Assigned));
        assert_eq!(send(&db, "a", &accept_doc).status, AckStatus::Accepted);
        let a = row(&db, "a").unwrap();
        assert_eq!(a["status"], "accepted");
        assert_eq!(a["reflects_store_seq"], 5);
        // A retry is a duplicate and applies nothing.
        let mut retry = accept_doc.clone();
        retry.store_seq = 9;
        assert_eq!(send(&db, "a", &retry).status, AckStatus::Duplicate);
        assert_eq!(row(&db, "a").unwrap()["reflects_store_seq"], 5);
        // The same action under a new id (a second click): refused with the
        // lines' real state, and not stored.
        let again = act_doc(6, &action(ActionKind::Accept, LineState::Assigned));
        let ack = send(&db, "a", &again);
        assert_eq!(ack.status, AckStatus::Rejected);
        assert_eq!(
            ack.error.as_deref(),
            Some(
                "expects: no line of order o1 is assigned at this store (lines: 1 accepted, 2 accepted)"
            )
        );
        // Another store's action, an unknown order.
        let ack = send(
            &db,
            "b",
            &act_doc(1, &action(ActionKind::StartPicking, LineState::Accepted)),
        );
        assert_eq!(ack.status, AckStatus::Rejected);
        assert!(ack.error.unwrap().contains("(lines: none)"));
        let mut unknown = action(ActionKind::Accept, LineState::Assigned);
        unknown.order_id = "o9".into();
        let ack = send(&db, "a", &act_doc(7, &unknown));
        assert_eq!(ack.error.as_deref(), Some("order_id: no such order o9"));
        // Only the first accept is in the ERP queue, with its outcome.
        let q = queue(&db);
        assert_eq!(q.len(), 1, "{q:?}");
        assert_eq!(q[0]["document"]["id"], json!(accept_doc.id));
        let outcome = &q[0]["outcome"];
        assert_eq!(outcome["applied"], true);
        assert_eq!(outcome["moved"], json!(["1", "2"]));
        assert_eq!(outcome["order"]["status"], "accepted");
        assert_eq!(
            outcome["order"]["lines"][0]["domain_status"],
            "Pedido Recebido"
        );
        assert_eq!(
            order(&db)["stores"],
            json!([{"store": "a", "status": "accepted", "reflects_store_seq": 5}])
        );
    }

    #[test]
    fn a_rejected_order_goes_to_another_store_and_leaves_a_tombstone() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        let mut reject = action(ActionKind::Reject, LineState::Assigned);
        reject.reason_code = Some("SEM_ESTOQUE".into());
        assert_eq!(
            send(&db, "a", &act_doc(3, &reject)).status,
            AckStatus::Accepted
        );
        assert_eq!(row(&db, "a").unwrap()["status"], "open");
        // Lines that do not wait for a store do not move; an unknown store is refused.
        let err = write(&db, |c| assign(c, "o1", None, Some("z".into()))).unwrap_err();
        assert!(
            matches!(&err, OmniError::Invalid { field, .. } if field == "store"),
            "{err}"
        );
        let w = write(&db, |c| assign(c, "o1", None, Some("b".into()))).unwrap();
        assert_eq!(w.outcome, "changed");
        assert!(row(&db, "a").is_none(), "a's row is a tombstone");
        let deleted: bool = db
            .read(|c| {
                Ok::<_, DbError>(c.query_row(
                    "SELECT deleted FROM rows WHERE entity = 'omni_orders' AND node = 'a'",
                    params![],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert!(deleted);
        let b = row(&db, "b").unwrap();
        assert_eq!(b["status"], "open");
        assert_eq!(states(&b), ["1 assigned", "2 assigned"]);
        // Assigning again to b changes nothing.
        let w = write(&db, |c| assign(c, "o1", None, Some("b".into()))).unwrap();
        assert_eq!(w.outcome, "unchanged");
        // b accepts: assigning the accepted lines elsewhere is refused.
        assert_eq!(
            send(
                &db,
                "b",
                &act_doc(1, &action(ActionKind::Accept, LineState::Assigned))
            )
            .status,
            AckStatus::Accepted
        );
        let err = write(&db, |c| {
            assign(c, "o1", Some(vec!["2".into()]), Some("a".into()))
        })
        .unwrap_err();
        assert!(
            matches!(&err, OmniError::State { field, .. } if field == "lines[0]"),
            "{err}"
        );
        let v = order(&db);
        assert_eq!(v["stores"][0]["status"], Value::Null);
        assert_eq!(v["stores"][1]["status"], "accepted");
    }

    #[test]
    fn a_sale_naming_the_order_concludes_it() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        for (seq, (a, from)) in [
            (ActionKind::Accept, LineState::Assigned),
            (ActionKind::Pick, LineState::Accepted),
            (ActionKind::Ready, LineState::Picked),
        ]
        .into_iter()
        .enumerate()
        {
            let ack = send(&db, "a", &act_doc(seq as u64 + 1, &action(a, from)));
            assert_eq!(ack.status, AckStatus::Accepted, "{a:?}: {:?}", ack.error);
        }
        assert_eq!(row(&db, "a").unwrap()["status"], "ready_for_pickup");
        let sale = |order_id: &str| {
            json!({"register": "PDV01", "session_id": Uuid::nil(), "number": 1, "operator": "001",
                   "items": [{"product_code": "1", "qty": 2000, "unit_price": 500, "total": 1000},
                             {"product_code": "2", "qty": 1000, "unit_price": 300, "total": 300}],
                   "total": 1300, "payments": [{"method": "OMNI", "amount": 1300}],
                   "sold_at": "2026-11-30T15:00:00Z", "order_id": order_id})
        };
        // A sale naming an unknown order is accepted all the same.
        let lost = doc(DocumentKind::Sale, 4, sale("o9"));
        assert_eq!(send(&db, "a", &lost).status, AckStatus::Accepted);
        let s = doc(DocumentKind::Sale, 5, sale("o1"));
        assert_eq!(send(&db, "a", &s).status, AckStatus::Accepted);
        let v = order(&db);
        assert_eq!(v["status"], "concluded");
        assert_eq!(v["lines"][0]["state"], "handed_over");
        assert_eq!(v["lines"][0]["delivered_qty"], 2000);
        assert_eq!(v["lines"][0]["domain_status"], "Faturado");
        let a = row(&db, "a").unwrap();
        assert_eq!(
            (a["status"].as_str(), a["reflects_store_seq"].as_u64()),
            (Some("concluded"), Some(5))
        );
        // The sale again (a retry), or another sale for it: nothing moves again.
        assert_eq!(send(&db, "a", &s).status, AckStatus::Duplicate);
        let second = doc(DocumentKind::Sale, 6, sale("o1"));
        assert_eq!(send(&db, "a", &second).status, AckStatus::Accepted);
        let q = queue(&db);
        let outcomes: Vec<&Value> = q.iter().map(|d| &d["outcome"]).collect();
        assert_eq!(outcomes.len(), 6);
        assert_eq!(outcomes[3]["applied"], false);
        assert_eq!(outcomes[3]["reason"], "order_id: no such order o9");
        assert_eq!(outcomes[4]["applied"], true);
        assert_eq!(outcomes[4]["action"], "hand_over");
        assert_eq!(outcomes[4]["order"]["status"], "concluded");
        assert_eq!(outcomes[5]["applied"], false);
        assert!(
            outcomes[5]["reason"]
                .as_str()
                .unwrap()
                .starts_with("expects: no line of order o1 is ready"),
            "{}",
            outcomes[5]
        );
    }

    /// The legacy `omni_order_status` is stored as before; nothing is applied.
    #[test]
    fn the_legacy_status_document_applies_nothing() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        let legacy = doc(
            DocumentKind::OmniOrderStatus,
            1,
            json!({"order_id": "o1", "status": "ready", "register": "PDV01",
                   "at": "2026-11-30T11:00:00Z"}),
        );
        let ack = send(&db, "a", &legacy);
        assert_eq!(ack.status, AckStatus::Accepted, "{:?}", ack.error);
        assert_eq!(order(&db)["status"], "open");
        let q = queue(&db);
        assert_eq!(q.len(), 1);
        assert!(q[0].get("outcome").is_none());
    }

    /// (qty, reflects_store_seq) of store a's stock of `product`.
    fn stock(db: &Db, product: &str) -> (i64, i64) {
        stock_at(db, "a", product)
    }

    fn stock_at(db: &Db, store: &str, product: &str) -> (i64, i64) {
        db.read(|c| {
            let data: String = c.query_row(
                "SELECT data FROM rows WHERE entity = 'stock' AND node = ?2 AND key_text = ?1",
                params![format!("[\"{product}\"]"), store],
                |r| r.get(0),
            )?;
            let v: Value = serde_json::from_str(&data).unwrap();
            Ok::<_, DbError>((
                v["qty"].as_i64().unwrap(),
                v["reflects_store_seq"].as_i64().unwrap(),
            ))
        })
        .unwrap()
    }

    #[test]
    fn a_shipment_takes_what_was_delivered_from_the_stock() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::ShipFromStore))).unwrap();
        let count = doc(
            DocumentKind::InventoryCount,
            1,
            json!({"register": "PDV01", "operator": "001", "counted_at": "2026-11-30T08:00:00Z",
                   "items": [{"product_code": "1", "counted_qty": 10_000},
                             {"product_code": "2", "counted_qty": 10_000},
                             {"product_code": "3", "counted_qty": 10_000}]}),
        );
        assert_eq!(send(&db, "a", &count).status, AckStatus::Accepted);
        send(
            &db,
            "a",
            &act_doc(2, &action(ActionKind::Accept, LineState::Assigned)),
        );
        // Line 1 cut to 1.5, line 2 given as product 3.
        let mut pick = action(ActionKind::Pick, LineState::Accepted);
        pick.lines = vec![
            ActionLine {
                line_id: "1".into(),
                qty: Some(1500),
                substitute: None,
            },
            ActionLine {
                line_id: "2".into(),
                qty: None,
                substitute: Some(Substitute {
                    product_code: "3".into(),
                    qty: 1000,
                    unit_price: 300,
                }),
            },
        ];
        assert_eq!(
            send(&db, "a", &act_doc(3, &pick)).status,
            AckStatus::Accepted
        );
        send(
            &db,
            "a",
            &act_doc(4, &action(ActionKind::Pack, LineState::Picked)),
        );
        let mut ship = action(ActionKind::Ship, LineState::Packed);
        ship.invoice = Some(Invoice {
            number: 10,
            series: 1,
            key: "3".repeat(44),
            value: 1050,
        });
        let ship_doc = act_doc(5, &ship);
        let ack = send(&db, "a", &ship_doc);
        assert_eq!(ack.status, AckStatus::Accepted, "{:?}", ack.error);
        assert_eq!(stock(&db, "1"), (8_500, 5));
        assert_eq!(stock(&db, "2"), (10_000, 1));
        assert_eq!(stock(&db, "3"), (9_000, 5));
        // A retry takes nothing more.
        assert_eq!(send(&db, "a", &ship_doc).status, AckStatus::Duplicate);
        assert_eq!(stock(&db, "3"), (9_000, 5));
        let v = order(&db);
        assert_eq!(v["status"], "concluded");
        assert_eq!(v["lines"][1]["delivered_qty"], 1000);
        assert_eq!(v["lines"][1]["invoice"]["number"], 10);
        assert_eq!(v["lines"][1]["vtex_status"], "invoiced");

        // Store b takes back 1 of line 1 to its shelf and 1 of the
        // substitute as damaged; the channel refunds.
        let give_back = |items: Value| {
            doc(
                DocumentKind::OmniReturn,
                1,
                json!({"order_id": "o1", "register": "PDV01", "reason_code": "03",
                       "operator": "001", "returned_at": "2026-12-01T10:00:00Z", "items": items}),
            )
        };
        let back = give_back(json!([
            {"line_id": "1", "product_code": "1", "qty": 1000, "refund": 500, "restock": true},
            {"line_id": "2", "product_code": "3", "qty": 1000, "refund": 300, "restock": false}
        ]));
        let ack = send(&db, "b", &back);
        assert_eq!(ack.status, AckStatus::Accepted, "{:?}", ack.error);
        assert_eq!(stock_at(&db, "b", "1").0, 1_000);
        assert_eq!(stock(&db, "1"), (8_500, 5), "a's shelf is not b's");
        let v = order(&db);
        assert_eq!(v["lines"][0]["returns"][0]["store"], "b");
        assert_eq!(v["lines"][1]["returns"][0]["qty"], 1000);
        // Store a's row shows what came back of its lines.
        assert_eq!(
            row(&db, "a").unwrap()["lines"][0]["returns"][0]["qty"],
            1000
        );
        assert!(row(&db, "b").is_none(), "b holds no line of the order");
        let entry = queue(&db)
            .into_iter()
            .find(|e| e["document"]["id"] == back.id.to_string())
            .unwrap();
        assert_eq!(entry["outcome"]["action"], "return");
        assert_eq!(entry["outcome"]["moved"], json!(["1", "2"]));
        // More than is left (1.5 delivered, 1 returned) is refused, naming the line.
        let ack = send(
            &db,
            "a",
            &give_back(
                json!([{"line_id": "1", "product_code": "1", "qty": 600, "refund": 0, "restock": true}]),
            ),
        );
        assert_eq!(ack.status, AckStatus::Rejected);
        assert_eq!(
            ack.error.as_deref(),
            Some(
                "items[0].qty: returns 600 of line 1 but 500 are left to return (delivered 1500, returned 1000)"
            )
        );
        assert_eq!(
            stock(&db, "1"),
            (8_500, 5),
            "a refused return restocks nothing"
        );
    }

    #[test]
    fn a_cancellation_after_picking_waits_for_the_put_back() {
        let (db, _dir) = central();
        write(&db, |c| create(c, new_order(Delivery::Pickup))).unwrap();
        send(
            &db,
            "a",
            &act_doc(1, &action(ActionKind::Accept, LineState::Assigned)),
        );
        let mut pick = action(ActionKind::Pick, LineState::Accepted);
        pick.lines = vec![ActionLine {
            line_id: "1".into(),
            qty: None,
            substitute: None,
        }];
        send(&db, "a", &act_doc(2, &pick));
        let err = write(&db, |c| cancel(c, "o1", Some(vec!["9".into()]), None)).unwrap_err();
        assert!(
            matches!(&err, OmniError::Invalid { field, .. } if field == "lines[0]"),
            "{err}"
        );
        let w = write(&db, |c| cancel(c, "o1", None, Some("CLIENTE".into()))).unwrap();
        assert_eq!(w.outcome, "changed");
        assert_eq!(states(&w.order), ["1 to_put_back", "2 cancelled"]);
        assert_eq!(w.order["status"], "put_back_pending");
        assert_eq!(w.order["lines"][0]["reason_code"], "CLIENTE");
        let a = row(&db, "a").unwrap();
        assert_eq!(states(&a), ["1 to_put_back", "2 cancelled"]);
        // The same cancellation again changes nothing.
        let w = write(&db, |c| cancel(c, "o1", None, Some("CLIENTE".into()))).unwrap();
        assert_eq!(w.outcome, "unchanged");
        // A pick racing the cancellation is refused; the put back is taken.
        let mut late = action(ActionKind::Pick, LineState::Accepted);
        late.lines = vec![ActionLine {
            line_id: "2".into(),
            qty: None,
            substitute: None,
        }];
        let ack = send(&db, "a", &act_doc(3, &late));
        assert_eq!(
            ack.error.as_deref(),
            Some("lines[0].line_id: line 2 is cancelled, not accepted")
        );
        assert_eq!(
            send(
                &db,
                "a",
                &act_doc(4, &action(ActionKind::PutBack, LineState::ToPutBack))
            )
            .status,
            AckStatus::Accepted
        );
        assert_eq!(order(&db)["status"], "cancelled");
        assert_eq!(row(&db, "a").unwrap()["reflects_store_seq"], 4);
        let err = write(&db, |c| cancel(c, "o2", None, None)).unwrap_err();
        assert!(matches!(err, OmniError::NotFound(_)));
    }
}
