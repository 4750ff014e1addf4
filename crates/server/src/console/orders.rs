//! Omni orders: by status, store and age, overdue first; reassigning an
//! order's waiting lines to another store (an operator's action:
//! `omni::assign`); a printable picking list per order.

use std::sync::Arc;

use crate::sql::Connection;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Role;
use super::i18n::{age, date_time_text, money, qty};
use super::page::{self, ConsoleError, Host, esc, layout, see_other, url};
use crate::db::{head_seq, now_unix};
use crate::omni;

/// An order still open after this long (not ready, concluded or
/// cancelled) is overdue.
pub const OVERDUE_SECS: i64 = 24 * 3_600;

const STATUSES: [&str; 7] = [
    "open",
    "accepted",
    "in_separation",
    "ready_for_pickup",
    "put_back_pending",
    "concluded",
    "cancelled",
];

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub store: String,
    /// Only orders older than this many hours.
    #[serde(default)]
    pub older: String,
    #[serde(default)]
    pub lang: Option<String>,
}

fn text<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Seconds since the order was created (0 when its time does not parse).
pub fn age_secs(order: &Value, now: i64) -> i64 {
    loja_protocol::time::parse(text(order, "created_at"))
        .map(|t| now - t.unix_timestamp())
        .unwrap_or(0)
}

pub fn overdue(order: &Value, now: i64) -> bool {
    !matches!(
        text(order, "status"),
        "ready_for_pickup" | "concluded" | "cancelled"
    ) && age_secs(order, now) > OVERDUE_SECS
}

/// The orders of the filter, overdue first, then the oldest first.
pub fn search(conn: &Connection, f: &Filter, now: i64) -> Result<Vec<Value>, ConsoleError> {
    let status = STATUSES
        .contains(&f.status.as_str())
        .then_some(f.status.as_str());
    let store = (!f.store.trim().is_empty()).then_some(f.store.trim());
    let mut orders = match omni::list(conn, status, store, omni::MAX_LIMIT) {
        Ok(o) => o,
        Err(crate::omni::OmniError::Db(e)) => return Err(e.into()),
        Err(_) => Vec::new(),
    };
    if let Ok(h) = f.older.parse::<i64>() {
        orders.retain(|o| age_secs(o, now) > h.saturating_mul(3_600));
    }
    orders.sort_by_key(|o| (!overdue(o, now), -age_secs(o, now)));
    Ok(orders)
}

fn stores(conn: &Connection) -> Result<Vec<String>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached("SELECT id FROM nodes WHERE kind = 'store' ORDER BY id")?;
    let rows = stmt.query_map(params![], |r| r.get(0))?;
    rows.collect()
}

/// The stores that have lines of the order now.
fn stores_of(order: &Value) -> Vec<String> {
    let mut s: Vec<String> = order
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("store").and_then(Value::as_str).map(str::to_owned))
        .collect();
    s.sort();
    s.dedup();
    s
}

pub async fn page<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::ctx(&st, &headers, f.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let now = now_unix();
    let f2 = f.clone();
    let (orders, all_stores) =
        page::read(&st, move |c| Ok((search(c, &f2, now)?, stores(c)?))).await?;
    let store_pairs: Vec<(String, String)> =
        all_stores.iter().map(|s| (s.clone(), s.clone())).collect();
    let status_pairs: Vec<(String, String)> = STATUSES
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                super::i18n::t(ctx.lang, &format!("orders-status-{s}"), &[]),
            )
        })
        .collect();
    let ages: Vec<(String, String)> = [1, 4, 24, 72]
        .iter()
        .map(|h| (h.to_string(), super::i18n::age(ctx.lang, h * 3_600)))
        .collect();
    let mut body = format!(
        r#"<form method="get" action="/console/orders" class="filters"><label>{} {}</label><label>{} {}</label><label>{} {}</label><button type="submit">{}</button></form><p>{}</p>"#,
        ctx.t("orders-col-status"),
        page::filter_select(&ctx, "status", &status_pairs, &f.status),
        ctx.t("orders-col-store"),
        page::filter_select(&ctx, "store", &store_pairs, &f.store),
        ctx.t("orders-older-than"),
        page::filter_select(&ctx, "older", &ages, &f.older),
        ctx.t("docs-filter"),
        ctx.ta("orders-count", &[("n", &orders.len().to_string())]),
    );
    if !orders.is_empty() {
        body.push_str(&format!(
            r#"<table id="orders"><thead><tr><th></th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>"#,
            ctx.t("orders-col-number"),
            ctx.t("orders-col-channel"),
            ctx.t("orders-col-status"),
            ctx.t("orders-col-store"),
            ctx.t("orders-col-created"),
            ctx.t("orders-col-age"),
            ctx.t("orders-col-total"),
        ));
    }
    for o in &orders {
        let late = overdue(o, now);
        let total: i64 = o
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("total").and_then(Value::as_i64))
            .sum::<i64>()
            + o.get("freight").and_then(Value::as_i64).unwrap_or(0);
        let id = text(o, "id");
        let status = text(o, "status");
        let mut actions = format!(
            r#"<a href="/console/orders/{}/picking" class="button">{}</a>"#,
            url(id),
            ctx.t("action-picking")
        );
        if status == "open" && ctx.may(Role::Operator) {
            actions.push_str(&format!(
                r#"<form method="post" action="/console/orders/{}/assign" class="inline reassign">{}<input name="store" list="all-stores" required size="12" placeholder="{}"><button type="submit">{}</button></form>"#,
                url(id),
                ctx.csrf_field(),
                ctx.t("orders-col-store"),
                ctx.t("action-reassign"),
            ));
        }
        body.push_str(&format!(
            r#"<tr class="{}" data-id="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{actions}</td></tr>"#,
            if late { "bad" } else { "" },
            esc(id),
            if late {
                format!(r#"<span class="badge bad">{}</span>"#, ctx.t("orders-overdue"))
            } else {
                String::new()
            },
            esc(text(o, "number")),
            esc(text(o, "channel")),
            ctx.t(&format!("orders-status-{status}")),
            esc(&stores_of(o).join(", ")),
            esc(&date_time_text(ctx.lang, text(o, "created_at"))),
            esc(&age(ctx.lang, age_secs(o, now))),
            esc(&money(ctx.lang, total)),
        ));
    }
    if !orders.is_empty() {
        body.push_str("</tbody></table>");
    }
    // One list of the stores for every reassign field (not a <select> per
    // order: 2,000 stores × the open orders would weigh megabytes).
    body.push_str(r#"<datalist id="all-stores">"#);
    for s in &all_stores {
        body.push_str(&format!(r#"<option value="{}">"#, esc(s)));
    }
    body.push_str("</datalist>");
    Ok(layout(&ctx, &ctx.t("orders-title"), &body))
}

/// The picking list of an order: its lines to separate, per store, for
/// printing (the menu and buttons are not printed).
pub async fn picking<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<page::LangQuery>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::ctx(&st, &headers, q.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let id2 = id.clone();
    let order = page::read(&st, move |c| Ok(omni::get(c, &id2)?))
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let lang = ctx.lang;
    let delivery = text(&order, "delivery");
    let mut body = format!(
        r#"<p class="noprint"><button type="button" id="print">{}</button></p><dl class="order"><dt>{}</dt><dd id="ordernumber">{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>"#,
        ctx.t("picking-print"),
        ctx.t("orders-col-number"),
        esc(text(&order, "number")),
        ctx.t("orders-col-channel"),
        esc(text(&order, "channel")),
        ctx.t("picking-delivery"),
        ctx.t(&format!("picking-delivery-{}", delivery.replace('_', "-"))),
        ctx.t("orders-col-created"),
        esc(&date_time_text(lang, text(&order, "created_at"))),
        ctx.t("picking-customer"),
        esc(order
            .get("customer_document")
            .and_then(Value::as_str)
            .unwrap_or("—")),
    );
    body.push_str(&format!(
        r#"<table id="picking"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.t("picking-col-store"),
        ctx.t("picking-col-line"),
        ctx.t("picking-col-product"),
        ctx.t("picking-col-qty"),
        ctx.t("picking-col-price"),
        ctx.t("picking-col-state"),
        ctx.t("picking-col-check"),
    ));
    let mut lines: Vec<&Value> = order
        .get("lines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    lines.sort_by_key(|l| {
        (
            text(l, "store").to_owned(),
            text(l, "product_code").to_owned(),
        )
    });
    for l in lines {
        let n = |k: &str| l.get(k).and_then(Value::as_i64).unwrap_or(0);
        body.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="check">☐</td></tr>"#,
            esc(l.get("store").and_then(Value::as_str).unwrap_or("—")),
            esc(text(l, "line_id")),
            esc(text(l, "product_code")),
            esc(&qty(lang, n("qty"))),
            esc(&money(lang, n("total"))),
            esc(text(l, "domain_status")),
        ));
    }
    body.push_str(r#"</tbody></table><script src="/console/assets/console.js"></script>"#);
    let title = ctx.ta("picking-title", &[("number", text(&order, "number"))]);
    Ok(layout(&ctx, &title, &body))
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    store: String,
}

/// Operator: the order's waiting lines go to `store`.
pub async fn assign<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Result<Response, ConsoleError> {
    let target = format!("{id} -> {}", f.store);
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Operator, "reassign", &target).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let (id2, store) = (id.clone(), f.store.clone());
    let done = page::write(&st, move |tx| {
        Ok(match omni::assign(tx, &id2, None, Some(store)) {
            Ok(_) => Some(head_seq(tx)?),
            Err(omni::OmniError::Db(e)) => return Err(e.into()),
            Err(e) => {
                tracing::info!(order = %id2, error = %e, "console reassign refused");
                None
            }
        })
    })
    .await?;
    page::audited(&st, &ctx, "reassign", &target, done.is_some()).await?;
    match done {
        Some(head) => {
            st.moved(head);
            Ok(see_other("/console/orders"))
        }
        None => Ok(page::bare_page(ctx.lang, "err-action-failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overdue_orders_are_the_old_unfinished_ones() {
        let now = loja_protocol::time::parse("2026-01-03T00:00:00Z")
            .unwrap()
            .unix_timestamp();
        let o = |status: &str, created: &str| json!({"status": status, "created_at": created});
        assert!(overdue(&o("open", "2026-01-01T00:00:00Z"), now));
        assert!(!overdue(&o("open", "2026-01-02T12:00:00Z"), now));
        assert!(!overdue(&o("concluded", "2026-01-01T00:00:00Z"), now));
        assert!(!overdue(
            &o("ready_for_pickup", "2026-01-01T00:00:00Z"),
            now
        ));
        assert_eq!(age_secs(&o("open", "2026-01-02T23:00:00Z"), now), 3_600);
    }
}
