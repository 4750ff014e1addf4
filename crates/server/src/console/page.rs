//! What every console page shares: the host it runs in, the request's
//! context (language, user, form token), HTML escaping, the layout, the
//! errors, and the gate of actions (session, form token, role, audit).
//!
//! Pages are written with `format!` and [`esc`]: every value that comes
//! from the database or the request goes through `esc` (or is a number),
//! every word a user reads comes from the catalogue (`i18n::t`).

use std::sync::Arc;

use crate::sql::Connection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::{self, Role, Session};
use super::i18n::{self, Lang};
use crate::avail::Pending;
use crate::db::{Db, DbError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "loja_console";
/// The remembered language.
pub const LANG_COOKIE: &str = "loja_lang";
/// The sign-in form's token before there is a session (double submit).
pub const LOGIN_COOKIE: &str = "loja_login";

/// What the console needs of the server it runs in.
pub trait Host: Send + Sync + 'static {
    fn db(&self) -> &Db;
    /// Downloads answered but not written yet (the stores' latest positions).
    fn pending(&self) -> Option<&Pending>;
    /// A console write moved the head to `head` (an order reassigned
    /// changes stores' rows): wake the stores' long-polls.
    fn moved(&self, head: u64);
    /// Per-store traffic not written yet (added to the stored totals).
    fn traffic(&self) -> Option<&crate::traffic::Traffic>;
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Release(#[from] crate::releases::ReleaseError),
    #[error("not found")]
    NotFound,
    #[error("background task failed")]
    Task,
}

impl From<crate::sql::Error> for ConsoleError {
    fn from(e: crate::sql::Error) -> Self {
        ConsoleError::Db(DbError::Sql(e))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::NotFound => (
                StatusCode::NOT_FOUND,
                bare_page(Lang::PtBr, "err-not-found"),
            )
                .into_response(),
            e => {
                tracing::error!(error = %e, "console");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    bare_page(Lang::PtBr, "err-internal"),
                )
                    .into_response()
            }
        }
    }
}

/// Runs `f` on a read connection on the blocking pool.
pub async fn read<H: Host, T: Send + 'static>(
    st: &Arc<H>,
    f: impl FnOnce(&Connection) -> Result<T, ConsoleError> + Send + 'static,
) -> Result<T, ConsoleError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || st.db().read(f))
        .await
        .map_err(|_| ConsoleError::Task)?
}

/// Runs `f` in a write transaction on the blocking pool.
pub async fn write<H: Host, T: Send + 'static>(
    st: &Arc<H>,
    f: impl FnOnce(&crate::sql::Transaction<'_>) -> Result<T, ConsoleError> + Send + 'static,
) -> Result<T, ConsoleError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || st.db().write(f))
        .await
        .map_err(|_| ConsoleError::Task)?
}

/// The query of a page that takes nothing but the language (`?lang=en`).
#[derive(serde::Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
}

/// A filter's `<select>`: "all" (the empty value) first, then `options`
/// (value, label), `chosen` selected.
pub fn filter_select(ctx: &Ctx, name: &str, options: &[(String, String)], chosen: &str) -> String {
    let mut s = format!(
        r#"<select name="{name}" id="filter-{name}"><option value="">{}</option>"#,
        ctx.t("common-all")
    );
    for (value, label) in options {
        let sel = if value == chosen { " selected" } else { "" };
        s.push_str(&format!(
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(value),
            esc(label)
        ));
    }
    s.push_str("</select>");
    s
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value or path segment.
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's language: `?lang=` (then remembered in a cookie), the
/// cookie, `Accept-Language`, else Brazilian Portuguese.
pub fn lang_of(headers: &HeaderMap, query_lang: Option<&str>) -> (Lang, bool) {
    if let Some(l) = query_lang.and_then(Lang::parse) {
        return (l, true);
    }
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return (l, false);
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language);
    (accept.unwrap_or(Lang::PtBr), false)
}

pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name))
}

/// `Secure` on every cookie, except for a browser on this very machine
/// (Host 127.0.0.1, localhost or [::1]): there the console may be served
/// over plain http (tests, a technician on the central itself) and no
/// network carries the cookie. Anywhere else the console must be served
/// over TLS (`serve --tls-cert`, or a TLS proxy in front), and a browser
/// will not keep a Secure cookie sent over plain http: signing in fails
/// rather than a session travelling in clear.
pub fn secure_attr(headers: &HeaderMap) -> &'static str {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => host,
    };
    if matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        ""
    } else {
        "; Secure"
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path /console.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let v = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        secure_attr(headers)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request's context: who, in what language.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub session: Session,
    /// `?lang=` was given: remember it.
    pub remember_lang: bool,
}

impl Ctx {
    /// A catalogue message, escaped.
    pub fn t(&self, id: &str) -> String {
        esc(&i18n::t(self.lang, id, &[]))
    }
    /// A catalogue message with arguments, escaped.
    pub fn ta(&self, id: &str, args: &[(&str, &str)]) -> String {
        esc(&i18n::t(self.lang, id, args))
    }
    pub fn may(&self, need: Role) -> bool {
        self.session.role.may(need)
    }
    /// The hidden field of this session's form token.
    pub fn csrf_field(&self) -> String {
        format!(
            r#"<input type="hidden" name="csrf" value="{}">"#,
            esc(&self.session.csrf)
        )
    }
    /// A one-button form posting to `action` with hidden `fields`.
    pub fn button(&self, action: &str, label_id: &str, fields: &[(&str, &str)]) -> String {
        let hidden: String = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    r#"<input type="hidden" name="{}" value="{}">"#,
                    esc(k),
                    esc(v)
                )
            })
            .collect();
        format!(
            r#"<form method="post" action="{}" class="inline">{}{hidden}<button type="submit">{}</button></form>"#,
            esc(action),
            self.csrf_field(),
            self.t(label_id)
        )
    }
}

/// The signed-in context of a request, or the redirect to the sign-in page.
pub async fn ctx<H: Host>(
    st: &Arc<H>,
    headers: &HeaderMap,
    query_lang: Option<&str>,
) -> Result<Ctx, Response> {
    let (lang, remember_lang) = lang_of(headers, query_lang);
    let to_login = || Redirect::to("/console/login").into_response();
    let Some(id) = cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
        return Err(to_login());
    };
    match read(st, move |c| Ok(auth::session(c, &id)?)).await {
        Ok(Some(session)) => Ok(Ctx {
            lang,
            session,
            remember_lang,
        }),
        Ok(None) => Err(to_login()),
        Err(e) => Err(e.into_response()),
    }
}

/// The gate of every action (POST): a session, its form token, and a role
/// that may (`need`). A refusal is audited and answered 403; an allowed
/// action is audited by the caller with its outcome.
pub async fn act<H: Host>(
    st: &Arc<H>,
    headers: &HeaderMap,
    csrf: &str,
    need: Role,
    action: &'static str,
    target: &str,
) -> Result<Ctx, Response> {
    let ctx = ctx(st, headers, None).await?;
    let refusal = if !auth::same_token(&ctx.session.csrf, csrf) {
        Some(("denied_csrf", "err-csrf"))
    } else if !ctx.may(need) {
        Some(("denied", "err-forbidden"))
    } else {
        None
    };
    if let Some((outcome, message)) = refusal {
        let (user, target) = (ctx.session.username.clone(), target.to_owned());
        if let Err(e) = write(st, move |tx| {
            Ok(auth::audit(tx, &user, action, &target, outcome)?)
        })
        .await
        {
            return Err(e.into_response());
        }
        tracing::warn!(user = %ctx.session.username, action, outcome, "console action refused");
        return Err((StatusCode::FORBIDDEN, bare_page(ctx.lang, message)).into_response());
    }
    Ok(ctx)
}

/// Audits an allowed action: `ok` or `failed`.
pub async fn audited<H: Host>(
    st: &Arc<H>,
    ctx: &Ctx,
    action: &'static str,
    target: &str,
    ok: bool,
) -> Result<(), ConsoleError> {
    let (user, target) = (ctx.session.username.clone(), target.to_owned());
    let outcome = if ok { "ok" } else { "failed" };
    tracing::info!(user = %user, action, target = %target, outcome, "console action");
    write(st, move |tx| {
        Ok(auth::audit(tx, &user, action, &target, outcome)?)
    })
    .await
}

/// Headers of every console page: no caching, no framing, no script.
fn page_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn html_head(lang: Lang, title: &str) -> String {
    format!(
        r#"<!doctype html><html lang="{}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · Loja</title><link rel="stylesheet" href="/console/assets/console.css"></head>"#,
        lang.code(),
        title
    )
}

/// A page of its own message only (errors, refusals).
pub fn bare_page(lang: Lang, message_id: &str) -> Response {
    let m = esc(&i18n::t(lang, message_id, &[]));
    let back = esc(&i18n::t(lang, "common-back", &[]));
    let mut r = format!(
        r#"{}<body><main class="bare"><h1>{m}</h1><p><a href="/console/stores">{back}</a></p></main></body></html>"#,
        html_head(lang, &m)
    )
    .into_response();
    page_headers(&mut r);
    r
}

/// The sign-in page's frame (no menu).
pub fn login_page(lang: Lang, body: &str) -> Response {
    let title = esc(&i18n::t(lang, "login-title", &[]));
    let mut r = format!(
        r#"{}<body><main class="bare">{body}</main></body></html>"#,
        html_head(lang, &title)
    )
    .into_response();
    page_headers(&mut r);
    r
}

/// A console page: menu, title, body; the session's form token also in a
/// meta tag (for the tests' forged forms, never read by a script of ours).
pub fn layout(ctx: &Ctx, title: &str, body: &str) -> Response {
    let mut nav = String::new();
    let mut items = vec![
        ("/console/stores", "nav-stores"),
        ("/console/documents", "nav-documents"),
        ("/console/orders", "nav-orders"),
        ("/console/rollouts", "nav-rollouts"),
        ("/console/switches", "nav-switches"),
    ];
    if ctx.may(Role::Admin) {
        items.push(("/console/users", "nav-users"));
        items.push(("/console/audit", "nav-audit"));
    }
    for (href, id) in items {
        nav.push_str(&format!(r#"<a href="{href}">{}</a>"#, ctx.t(id)));
    }
    let other = match ctx.lang {
        Lang::PtBr => ("en", "English"),
        Lang::En => ("pt-BR", "Português"),
    };
    let role_id = format!("common-role-{}", ctx.session.role.as_str());
    let mut r = format!(
        r#"{head}<body><header class="noprint"><strong>{brand}</strong><nav>{nav}</nav><span class="who">{user} ({role}) · <a href="?lang={lc}">{ln}</a> <form method="post" action="/console/logout" class="inline">{csrf}<button type="submit">{out}</button></form></span></header><main><h1>{title}</h1>{body}</main><footer class="noprint">{tz}</footer></body></html>"#,
        head = html_head(ctx.lang, title),
        brand = ctx.t("nav-brand"),
        user = esc(&ctx.session.username),
        role = ctx.t(&role_id),
        lc = other.0,
        ln = other.1,
        csrf = ctx.csrf_field(),
        out = ctx.t("nav-sign-out"),
        tz = ctx.t("common-timezone"),
    )
    .into_response();
    page_headers(&mut r);
    if ctx.remember_lang
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/console; SameSite=Strict; Max-Age=31536000",
            ctx.lang.code()
        ))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// After an action: back to `to` (303, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("São Paulo"), "São Paulo");
        assert_eq!(url("a b/ç"), "a%20b%2F%C3%A7");
    }

    #[test]
    fn secure_cookies_off_loopback_only() {
        let with_host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            secure_attr(&m)
        };
        assert_eq!(with_host("127.0.0.1:8080"), "");
        assert_eq!(with_host("localhost"), "");
        assert_eq!(with_host("[::1]:9"), "");
        assert_eq!(with_host("central.example:443"), "; Secure");
        assert_eq!(with_host("127.0.0.1.example"), "; Secure");
        assert_eq!(secure_attr(&HeaderMap::new()), "; Secure");
    }

    #[test]
    fn language_query_then_cookie_then_header() {
        let mut h = HeaderMap::new();
        assert_eq!(lang_of(&h, None), (Lang::PtBr, false));
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en-US"));
        assert_eq!(lang_of(&h, None), (Lang::En, false));
        h.insert(header::COOKIE, HeaderValue::from_static("loja_lang=pt-BR"));
        assert_eq!(lang_of(&h, None), (Lang::PtBr, false));
        assert_eq!(lang_of(&h, Some("en")), (Lang::En, true));
        assert_eq!(lang_of(&h, Some("xx")), (Lang::PtBr, false));
    }
}
