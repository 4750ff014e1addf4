//! The ERP queue: documents filtered by store, kind, status (waiting for
//! the ERP, processed, rejected) and period; a rejection with its code
//! and message, and resend (an operator's action: `verdicts::reoffer`
//! puts the document at the end of the ERP's queue, verdict cleared).

use std::sync::Arc;

use crate::sql::{Connection, OptionalExtension};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Role;
use super::i18n::date_time_text;
use super::page::{self, ConsoleError, Ctx, Host, esc, layout, see_other, url};
use super::stores::{DOC_COLUMNS, DocRow, doc_row, message_of, verdict_label};

/// Documents a page shows at most.
pub const PAGE_ROWS: u32 = 200;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub store: String,
    #[serde(default)]
    pub kind: String,
    /// `pending`, `processed`, `rejected`; empty: any.
    #[serde(default)]
    pub status: String,
    /// `aaaa-mm-dd` (a date input's value), inclusive, UTC days.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub lang: Option<String>,
}

/// A date input's value, if it is one (`aaaa-mm-dd`).
fn day(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    ok.then_some(s)
}

/// The newest documents matching `f`, at most [`PAGE_ROWS`]. Every value is
/// a bound parameter; an empty one matches everything.
pub fn search(conn: &Connection, f: &Filter) -> Result<Vec<DocRow>, crate::sql::Error> {
    let status = match f.status.as_str() {
        "pending" | "processed" | "rejected" => f.status.as_str(),
        _ => "",
    };
    // received_at is RFC 3339 UTC: a day's bounds compare as text.
    let from = day(&f.from).map(|d| format!("{d}T00:00:00"));
    let to = day(&f.to).map(|d| format!("{d}T23:59:59.999999999Z"));
    let sql = format!(
        "SELECT {DOC_COLUMNS} FROM documents
         WHERE (?1 = '' OR store = ?1) AND (?2 = '' OR kind = ?2)
           AND (?3 = '' OR (?3 = 'pending' AND verdict IS NULL) OR verdict = ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR received_at >= ?4)
           AND (CAST(?5 AS TEXT) IS NULL OR received_at <= ?5)
         ORDER BY seq DESC LIMIT ?6"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![f.store.trim(), f.kind.trim(), status, from, to, PAGE_ROWS],
        doc_row,
    )?;
    rows.collect()
}

/// The kinds and stores that have documents (the filter's choices).
fn choices(conn: &Connection) -> Result<(Vec<String>, Vec<String>), crate::sql::Error> {
    let col = |sql: &str| -> Result<Vec<String>, crate::sql::Error> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![], |r| r.get(0))?;
        rows.collect()
    };
    Ok((
        col("SELECT DISTINCT kind FROM documents ORDER BY kind")?,
        col("SELECT id FROM nodes WHERE kind = 'store' ORDER BY id")?,
    ))
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
    let f2 = f.clone();
    let (docs, (kinds, stores)) =
        page::read(&st, move |c| Ok((search(c, &f2)?, choices(c)?))).await?;
    Ok(layout(
        &ctx,
        &ctx.t("docs-title"),
        &render(&ctx, &f, &docs, &kinds, &stores),
    ))
}

fn render(ctx: &Ctx, f: &Filter, docs: &[DocRow], kinds: &[String], stores: &[String]) -> String {
    let pairs = |v: &[String]| -> Vec<(String, String)> {
        v.iter().map(|s| (s.clone(), s.clone())).collect()
    };
    let statuses: Vec<(String, String)> = ["pending", "processed", "rejected"]
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                super::i18n::t(ctx.lang, &format!("docs-{s}"), &[]),
            )
        })
        .collect();
    let mut body = format!(
        r#"<form method="get" action="/console/documents" class="filters"><label>{} {}</label><label>{} {}</label><label>{} {}</label><label>{} <input type="date" name="from" value="{}"></label><label>{} <input type="date" name="to" value="{}"></label><button type="submit" id="filter">{}</button></form>"#,
        ctx.t("docs-col-store"),
        page::filter_select(ctx, "store", &pairs(stores), &f.store),
        ctx.t("docs-col-kind"),
        page::filter_select(ctx, "kind", &pairs(kinds), &f.kind),
        ctx.t("docs-col-status"),
        page::filter_select(ctx, "status", &statuses, &f.status),
        ctx.t("docs-from"),
        esc(day(&f.from).unwrap_or("")),
        ctx.t("docs-to"),
        esc(day(&f.to).unwrap_or("")),
        ctx.t("docs-filter"),
    );
    body.push_str(&format!(
        "<p>{}</p>",
        ctx.ta("docs-count", &[("n", &docs.len().to_string())])
    ));
    if docs.is_empty() {
        return body;
    }
    body.push_str(&format!(
        r#"<table id="documents"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>"#,
        ctx.t("docs-col-received"),
        ctx.t("docs-col-store"),
        ctx.t("docs-col-kind"),
        ctx.t("docs-col-store-seq"),
        ctx.t("docs-col-status"),
        ctx.t("docs-col-message"),
    ));
    for d in docs {
        let action = if d.verdict.as_deref() == Some("rejected") && ctx.may(Role::Operator) {
            ctx.button(
                &format!("/console/documents/{}/resend", url(&d.id)),
                "action-resend",
                &[],
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            r#"<tr data-id="{}"><td>{}</td><td><a href="/console/stores/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>"#,
            esc(&d.id),
            esc(&date_time_text(ctx.lang, &d.received_at)),
            url(&d.store),
            esc(&d.store),
            esc(&d.kind),
            d.store_seq,
            verdict_label(ctx, d.verdict.as_deref()),
            esc(&message_of(d)),
        ));
    }
    body.push_str("</tbody></table>");
    body
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf: String,
}

/// Operator: offers a rejected document to the ERP again.
pub async fn resend<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ResendForm>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Operator, "resend", &id).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let id2 = id.clone();
    let ok = page::write(&st, move |tx| {
        let rejected: bool = tx
            .prepare_cached("SELECT verdict = 'rejected' FROM documents WHERE id = ?1")?
            .query_row(params![id2], |r| r.get::<_, Option<bool>>(0))
            .optional()?
            .flatten()
            .unwrap_or(false);
        Ok(rejected && crate::verdicts::reoffer(tx, &id2)?)
    })
    .await?;
    page::audited(&st, &ctx, "resend", &id, ok).await?;
    if !ok {
        return Err(ConsoleError::NotFound);
    }
    Ok(see_other("/console/documents?status=pending"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;

    #[test]
    fn filters_by_store_kind_status_and_period() {
        let (db, _dir) = crate::test_central::with_stores(&["a", "b"]);
        db.write(|tx| {
            for (id, store, kind, at, verdict) in [
                ("d1", "a", "sale", "2026-01-01T10:00:00Z", None),
                ("d2", "a", "sale", "2026-01-02T10:00:00Z", Some("rejected")),
                ("d3", "b", "cash", "2026-01-03T10:00:00Z", Some("processed")),
            ] {
                tx.execute(
                    "INSERT INTO documents (id, store, kind, register, store_seq, received_at, document, verdict)
                     VALUES (?1, ?2, ?3, 'r', 1, ?4, '{}', ?5)",
                    params![id, store, kind, at, verdict],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .unwrap();
        let ids = |f: Filter| -> Vec<String> {
            db.read(|c| search(c, &f).map_err(DbError::from))
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect()
        };
        assert_eq!(ids(Filter::default()), ["d3", "d2", "d1"]);
        let f = |store: &str, kind: &str, status: &str, from: &str, to: &str| Filter {
            store: store.into(),
            kind: kind.into(),
            status: status.into(),
            from: from.into(),
            to: to.into(),
            lang: None,
        };
        assert_eq!(ids(f("a", "", "", "", "")), ["d2", "d1"]);
        assert_eq!(ids(f("", "cash", "", "", "")), ["d3"]);
        assert_eq!(ids(f("", "", "pending", "", "")), ["d1"]);
        assert_eq!(ids(f("", "", "rejected", "", "")), ["d2"]);
        assert_eq!(ids(f("", "", "", "2026-01-02", "2026-01-02")), ["d2"]);
        assert_eq!(ids(f("", "", "", "2026-01-02", "")), ["d3", "d2"]);
        // Not a date: no bound. A quote is only a value.
        assert_eq!(ids(f("", "", "", "x' OR 1=1 --", "")).len(), 3);
        assert!(ids(f("a' OR '1'='1", "", "", "", "")).is_empty());
    }
}
