//! The audit log (admins only): every console action, newest first.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{self, Role};
use super::i18n::date_time_unix;
use super::page::{self, ConsoleError, Host, esc, layout};

/// Lines the page shows.
pub const PAGE_LINES: u32 = 500;

pub async fn page<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Query(q): Query<page::LangQuery>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::ctx(&st, &headers, q.lang.as_deref()).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    if !ctx.may(Role::Admin) {
        let user = ctx.session.username.clone();
        page::write(&st, move |tx| {
            Ok(auth::audit(tx, &user, "view_audit", "", "denied")?)
        })
        .await?;
        return Ok((
            StatusCode::FORBIDDEN,
            page::bare_page(ctx.lang, "err-forbidden"),
        )
            .into_response());
    }
    let lines = page::read(&st, |c| Ok(auth::audit_lines(c, PAGE_LINES)?)).await?;
    let mut body = format!(
        r#"<table id="audit"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.t("audit-col-at"),
        ctx.t("audit-col-user"),
        ctx.t("audit-col-action"),
        ctx.t("audit-col-target"),
        ctx.t("audit-col-outcome"),
    );
    for l in &lines {
        let class = match l.outcome.as_str() {
            "ok" => "ok",
            "failed" => "warn",
            _ => "bad",
        };
        body.push_str(&format!(
            r#"<tr class="{class}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&date_time_unix(ctx.lang, l.at)),
            esc(&l.username),
            esc(&l.action),
            esc(&l.target),
            esc(&l.outcome),
        ));
    }
    body.push_str("</tbody></table>");
    Ok(layout(&ctx, &ctx.t("audit-title"), &body))
}
