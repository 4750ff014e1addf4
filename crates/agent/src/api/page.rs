//! The status page (`/`), its data (`/status.json`), `/metrics` and the
//! OpenAPI document.
//!
//! The page and its data need no token: the page is for the support
//! technician's browser at the store PC, which cannot add an
//! `Authorization` header to a page load, and the report holds nothing
//! secret (job codes, counts, timestamps, version, store id: no tokens, no
//! document bodies, no customer data). The listener is loopback by default.
//! The same report with a token is `GET /v1/status`.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa::OpenApi as _;

use super::error::{ApiError, json_response};
use super::reads::ErrorSchema;
use super::status_i18n::{self, Lang};
use super::{ApiDoc, ApiState};
use crate::status::StatusReport;

const PAGE: &str = include_str!("status_page.html");

fn with_type(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The status page: per-job last/next run and outcome, outbox depth and
/// oldest document, failed tickets, replica counts, version. Refreshes
/// itself from `/status.json` every 3 seconds. In Brazilian Portuguese;
/// English with `?lang=en` (`status_i18n`).
#[utoipa::path(get, path = "/", tag = "status",
    params(("lang" = Option<String>, Query, description = "`en` for English; Brazilian Portuguese otherwise")),
    responses((status = 200, description = "HTML page (inline CSS and JS, no external assets)", content_type = "text/html")))]
pub async fn status_page(
    State(st): State<ApiState>,
    Query(q): Query<LangQuery>,
) -> Result<Response, ApiError> {
    let lang = Lang::from_query(q.lang.as_deref());
    let report = public(st.status_report().await?);
    // The first paint needs no fetch: the report rides along as JSON, with
    // `<` escaped so no value can close the script element.
    let json = serde_json::to_string(&*report)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c");
    Ok(with_type(
        status_i18n::page(PAGE, lang).replace("__INITIAL__", &json),
        "text/html; charset=utf-8",
    ))
}

/// `?lang=en` asks for English; Brazilian Portuguese otherwise.
#[derive(serde::Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The status report for the page, without a token (nothing in it is secret).
#[utoipa::path(get, path = "/status.json", tag = "status",
    responses((status = 200, description = "The status report", body = crate::status::StatusReport)))]
pub async fn status_json(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let report = public(st.status_report().await?);
    Ok(json_response(StatusCode::OK, &*report))
}

/// The report as the pages without a token show it: a parked document's
/// reason is the central's validation message, which may quote the
/// document's data (a CPF, a name), so it stays behind the token
/// (`GET /v1/status`, `lojad status`).
fn public(report: std::sync::Arc<StatusReport>) -> std::sync::Arc<StatusReport> {
    if report.parked_documents.is_empty() {
        return report;
    }
    let mut r = (*report).clone();
    for d in &mut r.parked_documents {
        d.reason = "(see GET /v1/status or lojad status)".into();
    }
    std::sync::Arc::new(r)
}

/// Prometheus metrics: job last run/outcome/rows, outbox pending/failed and
/// oldest age, replica rows per entity, HTTP requests by route and status.
#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let report = st.status_report().await?;
    let text = super::metrics::render(&report, &st.shared.http, &st.app.verify.snapshot());
    Ok(with_type(text, "text/plain; version=0.0.4; charset=utf-8"))
}

/// This API's OpenAPI document, generated from the code.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "status", security(("bearer" = [])),
    responses((status = 200, description = "OpenAPI 3 document", body = Object),
              (status = 401, description = "No or unknown token", body = ErrorSchema)))]
pub async fn openapi() -> Response {
    json_response(StatusCode::OK, &ApiDoc::openapi())
}
