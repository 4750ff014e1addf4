//! Stores, trouble first: each store's last contact with the central (its
//! last feed download or document), how far behind each entity its
//! replica is (rows of the entity changed after the store's download
//! position), its documents and the ones the ERP rejected. A page per
//! store with its entities, recent documents and rejections, and the
//! availability exception (an operator's action). Each store's requests
//! and response bytes counted by the central, and its outbox backlog as it
//! reported it (`traffic`), on both; the integration switch as the store
//! holds it (`integration`) on the store's page.

use std::collections::HashMap;
use std::sync::Arc;

use crate::sql::Connection;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Role;
use super::i18n::{age, date_time_text, date_time_unix};
use super::page::{self, ConsoleError, Ctx, Host, esc, layout, see_other, url};
use crate::avail::{self, Download, Pending};
use crate::db::now_unix;
use crate::nodes::{self, NodeKind};
use crate::traffic::{self, StoreTraffic};

/// A store not heard from for longer than this is "without contact".
pub const SILENT_SECS: i64 = 3_600;

/// One store's row of the list.
#[derive(Debug, Clone)]
pub struct StoreRow {
    pub id: String,
    pub parent: String,
    /// Unix seconds of the last download or document; none: never.
    pub last_contact: Option<i64>,
    /// Rows changed after the store's position, over every entity.
    pub lag_rows: u64,
    /// Entities the store is behind in.
    pub lag_entities: Vec<String>,
    pub documents: u64,
    pub rejected: u64,
    pub pending: u64,
    pub exception: bool,
    /// Requests, bytes, and the outbox backlog the store reported.
    pub traffic: StoreTraffic,
}

impl StoreRow {
    /// 0 worst: never heard of, 1 silent, 2 rejections, 3 behind, 4 fine.
    pub fn trouble(&self, now: i64) -> u8 {
        match self.last_contact {
            None => 0,
            Some(t) if now - t > SILENT_SECS => 1,
            _ if self.rejected > 0 => 2,
            _ if self.lag_rows > 0 => 3,
            _ => 4,
        }
    }
}

fn trouble_label(t: u8) -> (&'static str, &'static str) {
    match t {
        0 => ("status-never", "bad"),
        1 => ("status-silent", "bad"),
        2 => ("status-rejections", "warn"),
        3 => ("status-behind", "warn"),
        _ => ("status-ok", "ok"),
    }
}

/// Rows of `entity` changed after `after`.
fn rows_after(conn: &Connection, entity: &str, after: u64) -> Result<u64, crate::sql::Error> {
    conn.prepare_cached("SELECT count(*) FROM rows WHERE entity = ?1 AND seq > ?2")?
        .query_row(params![entity, after as i64], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

/// Per entity: (entity, position, head, rows behind, last download).
type EntityLag = (String, Option<u64>, u64, u64, Option<i64>);

/// What one listing reads once for all stores: each entity's head, and
/// the rows behind a position (stores often share theirs: the head, or
/// none yet).
#[derive(Default)]
struct Memo {
    heads: HashMap<&'static str, u64>,
    behind: HashMap<(&'static str, u64), u64>,
    /// Every written download, read at once for a listing of every store.
    written: Option<HashMap<(String, String), Download>>,
}

/// Every store's written download per entity.
fn written_downloads(
    conn: &Connection,
) -> Result<HashMap<(String, String), Download>, crate::sql::Error> {
    let mut stmt =
        conn.prepare_cached("SELECT store, entity, completed_at, next_seq FROM downloads")?;
    let rows = stmt.query_map(params![], |r| {
        Ok((
            (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
            Download {
                completed_at: r.get(2)?,
                next: r.get::<_, i64>(3)?.max(0) as u64,
            },
        ))
    })?;
    rows.collect()
}

fn entity_lags(
    conn: &Connection,
    pending: Option<&Pending>,
    store: &str,
    memo: &mut Memo,
) -> Result<Vec<EntityLag>, crate::sql::Error> {
    let mut out = Vec::new();
    for e in loja_protocol::ENTITIES {
        let head = match memo.heads.get(e.name) {
            Some(h) => *h,
            None => {
                let h = crate::feed::entity_head(conn, e)?;
                memo.heads.insert(e.name, h);
                h
            }
        };
        let d = match (pending.and_then(|p| p.get(store, e.name)), &memo.written) {
            (Some(d), _) => Some(d),
            (None, Some(w)) => w.get(&(store.to_owned(), e.name.to_owned())).copied(),
            (None, None) => avail::last_download(conn, pending, store, e.name)?,
        };
        let pos = d.map(|d| d.next);
        let at = pos.unwrap_or(0);
        let behind = if at >= head {
            0
        } else if let Some(n) = memo.behind.get(&(e.name, at)) {
            *n
        } else {
            let n = rows_after(conn, e.name, at)?;
            memo.behind.insert((e.name, at), n);
            n
        };
        out.push((
            e.name.to_owned(),
            pos,
            head,
            behind,
            d.map(|d| d.completed_at),
        ));
    }
    Ok(out)
}

/// Every store, trouble first (then the longest silent first).
pub fn list(
    conn: &Connection,
    pending: Option<&Pending>,
    unflushed: &HashMap<String, traffic::Delta>,
) -> Result<Vec<StoreRow>, crate::sql::Error> {
    let mut traffic = traffic::totals(conn, unflushed)?;
    let mut docs: HashMap<String, (u64, u64, u64, Option<String>)> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT store, count(*), sum(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END),
                    sum(CASE WHEN verdict IS NULL THEN 1 ELSE 0 END), max(received_at)
             FROM documents GROUP BY store",
        )?;
        let mut rows = stmt.query(params![])?;
        while let Some(r) = rows.next()? {
            let n = |i: usize| {
                r.get::<_, Option<i64>>(i)
                    .map(|v| v.unwrap_or(0).max(0) as u64)
            };
            docs.insert(r.get(0)?, (n(1)?, n(2)?, n(3)?, r.get(4)?));
        }
    }
    let exceptions = avail::list_exceptions(conn)?;
    let now = now_unix();
    let mut memo = Memo {
        written: Some(written_downloads(conn)?),
        ..Memo::default()
    };
    let mut out = Vec::new();
    for n in nodes::list(conn)? {
        if n.kind != NodeKind::Store {
            continue;
        }
        let mut last: Option<i64> = None;
        let mut lag_rows = 0;
        let mut lag_entities = Vec::new();
        for (entity, _, _, behind, at) in entity_lags(conn, pending, &n.id, &mut memo)? {
            last = last.max(at);
            if behind > 0 {
                lag_rows += behind;
                lag_entities.push(entity);
            }
        }
        let (documents, rejected, waiting, received) = docs.remove(&n.id).unwrap_or_default();
        let received = received
            .as_deref()
            .and_then(loja_protocol::time::parse)
            .map(|t| t.unix_timestamp());
        last = last.max(received);
        out.push(StoreRow {
            traffic: traffic.remove(&n.id).unwrap_or_default(),
            exception: exceptions.contains(&n.id),
            id: n.id,
            parent: n.parent.unwrap_or_default(),
            last_contact: last,
            lag_rows,
            lag_entities,
            documents,
            rejected,
            pending: waiting,
        });
    }
    out.sort_by(|a, b| {
        (a.trouble(now), a.last_contact, &a.id).cmp(&(b.trouble(now), b.last_contact, &b.id))
    });
    Ok(out)
}

pub async fn page<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Query(q): Query<page::LangQuery>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::ctx(&st, &headers, q.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let st2 = st.clone();
    let unflushed = st.traffic().map(|t| t.peek()).unwrap_or_default();
    let rows = page::read(&st, move |c| Ok(list(c, st2.pending(), &unflushed)?)).await?;
    Ok(layout(
        &ctx,
        &ctx.t("stores-title"),
        &render_list(&ctx, &rows, now_unix()),
    ))
}

fn render_list(ctx: &Ctx, rows: &[StoreRow], now: i64) -> String {
    let lang = ctx.lang;
    let mut body = format!(
        r#"<p>{}</p><table id="stores"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.ta("stores-count", &[("n", &rows.len().to_string())]),
        ctx.t("stores-col-status"),
        ctx.t("stores-col-store"),
        ctx.t("stores-col-central"),
        ctx.t("stores-col-contact"),
        ctx.t("stores-col-lag"),
        ctx.t("stores-col-documents"),
        ctx.t("stores-col-rejected"),
        ctx.t("stores-col-outbox"),
        ctx.t("stores-col-traffic"),
    );
    for r in rows {
        let (label, class) = trouble_label(r.trouble(now));
        let contact = match r.last_contact {
            Some(t) => format!(
                "{} ({})",
                esc(&date_time_unix(lang, t)),
                esc(&age(lang, now - t))
            ),
            None => ctx.t("common-never"),
        };
        let lag = if r.lag_rows == 0 {
            ctx.t("common-none")
        } else {
            format!(
                "{} <small>{}</small>",
                r.lag_rows,
                esc(&r.lag_entities.join(", "))
            )
        };
        body.push_str(&format!(
            r#"<tr class="{class}" data-store="{}"><td><span class="badge {class}">{}</span></td><td><a href="/console/stores/{}">{}</a></td><td>{}</td><td>{contact}</td><td>{lag}</td><td>{} <small>({} {})</small></td><td>{}</td><td class="outbox">{}</td><td class="traffic">{}</td></tr>"#,
            esc(&r.id),
            ctx.t(label),
            url(&r.id),
            esc(&r.id),
            esc(&r.parent),
            r.documents,
            r.pending,
            ctx.t("stores-waiting"),
            r.rejected,
            backlog_text(ctx, &r.traffic),
            traffic_text(ctx, &r.traffic),
        ));
    }
    body.push_str("</tbody></table>");
    body
}

/// The outbox backlog as the store last reported it.
fn backlog_text(ctx: &Ctx, t: &StoreTraffic) -> String {
    match t.backlog {
        Some((pending, failed, at)) => ctx.ta(
            "stores-outbox",
            &[
                ("pending", &pending.to_string()),
                ("failed", &failed.to_string()),
                ("ago", &age(ctx.lang, now_unix() - at)),
            ],
        ),
        None => ctx.t("stores-outbox-unknown"),
    }
}

/// Requests and response bytes counted by the central.
fn traffic_text(ctx: &Ctx, t: &StoreTraffic) -> String {
    ctx.ta(
        "stores-traffic",
        &[
            ("requests", &super::i18n::count(ctx.lang, t.requests)),
            ("bytes", &super::i18n::bytes(ctx.lang, t.bytes)),
        ],
    )
}

/// A document as the pages list it.
#[derive(Debug, Clone)]
pub struct DocRow {
    pub id: String,
    pub store: String,
    pub kind: String,
    pub store_seq: i64,
    pub received_at: String,
    pub verdict: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

pub fn doc_row(r: &crate::sql::Row<'_>) -> Result<DocRow, crate::sql::Error> {
    Ok(DocRow {
        id: r.get(0)?,
        store: r.get(1)?,
        kind: r.get(2)?,
        store_seq: r.get(3)?,
        received_at: r.get(4)?,
        verdict: r.get(5)?,
        code: r.get(6)?,
        message: r.get(7)?,
    })
}

pub const DOC_COLUMNS: &str =
    "id, store, kind, store_seq, received_at, verdict, verdict_code, verdict_message";

struct Detail {
    lags: Vec<EntityLag>,
    recent: Vec<DocRow>,
    rejected: Vec<DocRow>,
    exception: bool,
    traffic: StoreTraffic,
    /// The integration switch as the store holds it, and the level that
    /// set it (none: no level; on).
    integration: (bool, Option<String>),
}

fn detail(
    conn: &Connection,
    pending: Option<&Pending>,
    unflushed: &HashMap<String, traffic::Delta>,
    store: &str,
) -> Result<Option<Detail>, crate::sql::Error> {
    let Some(integration) = crate::integration::resolved(conn, store)? else {
        return Ok(None);
    };
    let docs = |filter: &str| -> Result<Vec<DocRow>, crate::sql::Error> {
        let sql = format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE store = ?1 {filter} ORDER BY seq DESC LIMIT 50"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![store], doc_row)?;
        rows.collect()
    };
    Ok(Some(Detail {
        lags: entity_lags(conn, pending, store, &mut Memo::default())?,
        recent: docs("")?,
        rejected: docs("AND verdict = 'rejected'")?,
        exception: avail::is_exception(conn, store)?,
        traffic: traffic::totals(conn, unflushed)?
            .remove(store)
            .unwrap_or_default(),
        integration,
    }))
}

pub async fn one<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Query(q): Query<page::LangQuery>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::ctx(&st, &headers, q.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let (st2, s2) = (st.clone(), store.clone());
    let unflushed = st.traffic().map(|t| t.peek()).unwrap_or_default();
    let d = page::read(&st, move |c| Ok(detail(c, st2.pending(), &unflushed, &s2)?))
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let lang = ctx.lang;
    let (on, level) = &d.integration;
    // Raw: `ctx.ta` escapes its arguments.
    let level = match level.as_deref() {
        None => super::i18n::t(lang, "store-integration-default", &[]),
        Some(nodes::MASTER) => super::i18n::t(lang, "switch-chain", &[]),
        Some(l) => l.to_owned(),
    };
    let mut body = format!(
        r#"<p id="store-integration" data-on="{on}">{}</p><p id="store-outbox">{}</p><p id="store-traffic">{}</p>"#,
        ctx.ta(
            "store-integration",
            &[
                (
                    "state",
                    &super::i18n::t(
                        lang,
                        if *on {
                            "integration-on"
                        } else {
                            "integration-off"
                        },
                        &[]
                    )
                ),
                ("level", &level)
            ]
        ),
        backlog_text(&ctx, &d.traffic),
        traffic_text(&ctx, &d.traffic),
    );
    body.push_str(&format!(
        r#"<h2>{}</h2><table id="entities"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.t("store-entities"),
        ctx.t("store-col-entity"),
        ctx.t("store-col-position"),
        ctx.t("store-col-head"),
        ctx.t("store-col-behind"),
        ctx.t("store-col-downloaded"),
    ));
    for (entity, pos, head, behind, at) in &d.lags {
        let class = if *behind > 0 { "warn" } else { "ok" };
        body.push_str(&format!(
            r#"<tr class="{class}"><td>{}</td><td>{}</td><td>{head}</td><td>{behind}</td><td>{}</td></tr>"#,
            esc(entity),
            pos.map_or_else(|| ctx.t("common-never"), |p| p.to_string()),
            at.map_or_else(|| ctx.t("common-never"), |t| esc(&date_time_unix(lang, t))),
        ));
    }
    body.push_str("</tbody></table>");
    // The availability exception: an operator's switch.
    let state = if d.exception {
        ctx.t("store-exception-on")
    } else {
        ctx.t("store-exception-off")
    };
    body.push_str(&format!(
        r#"<h2>{}</h2><p id="exception-state">{state}</p>"#,
        ctx.t("store-exception")
    ));
    if ctx.may(Role::Operator) {
        let action = format!("/console/stores/{}/exception", url(&store));
        let (label, value) = if d.exception {
            ("action-exception-remove", "off")
        } else {
            ("action-exception-add", "on")
        };
        body.push_str(&ctx.button(&action, label, &[("set", value)]));
    }
    body.push_str(&format!("<h2>{}</h2>", ctx.t("store-rejections")));
    body.push_str(&doc_table(&ctx, &d.rejected, "rejections"));
    body.push_str(&format!("<h2>{}</h2>", ctx.t("store-recent")));
    body.push_str(&doc_table(&ctx, &d.recent, "recent"));
    let title = ctx.ta("store-title", &[("store", &store)]);
    Ok(layout(&ctx, &title, &body))
}

/// A table of documents (no actions).
pub fn doc_table(ctx: &Ctx, docs: &[DocRow], id: &str) -> String {
    if docs.is_empty() {
        return format!("<p>{}</p>", ctx.t("common-none"));
    }
    let mut s = format!(
        r#"<table id="{id}"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.t("docs-col-received"),
        ctx.t("docs-col-kind"),
        ctx.t("docs-col-store-seq"),
        ctx.t("docs-col-status"),
        ctx.t("docs-col-message"),
    );
    for d in docs {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&date_time_text(ctx.lang, &d.received_at)),
            esc(&d.kind),
            d.store_seq,
            verdict_label(ctx, d.verdict.as_deref()),
            esc(&message_of(d)),
        ));
    }
    s.push_str("</tbody></table>");
    s
}

pub fn verdict_label(ctx: &Ctx, verdict: Option<&str>) -> String {
    match verdict {
        Some("processed") => format!(
            r#"<span class="badge ok">{}</span>"#,
            ctx.t("docs-processed")
        ),
        Some("rejected") => format!(
            r#"<span class="badge bad">{}</span>"#,
            ctx.t("docs-rejected")
        ),
        _ => format!(r#"<span class="badge">{}</span>"#, ctx.t("docs-pending")),
    }
}

/// The ERP's code and message of a rejection.
pub fn message_of(d: &DocRow) -> String {
    match (&d.code, &d.message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => String::new(),
    }
}

#[derive(Deserialize)]
pub struct ExceptionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    set: String,
}

/// Operator: the store is (`on`) or is no longer (`off`) an exception to
/// the availability window.
pub async fn set_exception<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(store): Path<String>,
    Form(f): Form<ExceptionForm>,
) -> Result<Response, ConsoleError> {
    let action = if f.set == "on" {
        "exception_add"
    } else {
        "exception_remove"
    };
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Operator, action, &store).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let (s2, on) = (store.clone(), f.set == "on");
    let ok = page::write(&st, move |tx| {
        if nodes::kind_of(tx, &s2)? != Some(NodeKind::Store) {
            return Ok(false);
        }
        if on {
            avail::add_exception(tx, &s2)?;
        } else {
            avail::remove_exception(tx, &s2)?;
        }
        Ok(true)
    })
    .await?;
    page::audited(&st, &ctx, action, &store, ok).await?;
    if !ok {
        return Err(ConsoleError::NotFound);
    }
    Ok(see_other(&format!("/console/stores/{}", url(&store))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(last: Option<i64>, rejected: u64, lag: u64) -> StoreRow {
        StoreRow {
            id: "s".into(),
            parent: "master".into(),
            last_contact: last,
            lag_rows: lag,
            lag_entities: vec![],
            documents: 0,
            rejected,
            pending: 0,
            exception: false,
            traffic: StoreTraffic::default(),
        }
    }

    #[test]
    fn trouble_first() {
        let now = 10_000;
        assert_eq!(row(None, 0, 0).trouble(now), 0);
        assert_eq!(row(Some(now - SILENT_SECS - 1), 0, 0).trouble(now), 1);
        assert_eq!(row(Some(now), 2, 5).trouble(now), 2);
        assert_eq!(row(Some(now), 0, 5).trouble(now), 3);
        assert_eq!(row(Some(now), 0, 0).trouble(now), 4);
    }

    #[test]
    fn lists_every_store_with_its_documents() {
        let (db, _dir) = crate::test_central::with_stores(&["a", "b"]);
        db.write(|tx| {
            tx.execute(
                "INSERT INTO documents (id, store, kind, register, store_seq, received_at, document, verdict, verdict_message)
                 VALUES ('d1', 'b', 'sale', 'r1', 1, '2026-01-01T00:00:00Z', '{}', 'rejected', 'no')",
                params![],
            )?;
            Ok::<_, crate::db::DbError>(())
        })
        .unwrap();
        let rows = db
            .read(|c| list(c, None, &HashMap::new()).map_err(crate::db::DbError::from))
            .unwrap();
        assert_eq!(rows.len(), 2);
        // "a" was never heard of: first; "b" sent a document (long ago).
        assert_eq!(rows[0].id, "a");
        assert_eq!(rows[1].id, "b");
        assert_eq!((rows[1].documents, rows[1].rejected), (1, 1));
    }
}
