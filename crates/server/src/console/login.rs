//! Signing in and out, and the admin API's account route (how the first
//! admin is made: with the admin token).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, AuthError};
use super::i18n::{self, Lang};
use super::page::{
    self, ConsoleError, Host, LOGIN_COOKIE, SESSION_COOKIE, esc, lang_of, login_page, see_other,
    set_cookie,
};

/// The sign-in form, with a fresh form token in a cookie and a hidden field.
pub async fn form<H: Host>(
    State(_st): State<Arc<H>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (lang, _) = lang_of(&headers, q.get("lang").map(String::as_str));
    let failed = q.contains_key("failed");
    render(&headers, lang, failed)
}

fn render(headers: &HeaderMap, lang: Lang, failed: bool) -> Response {
    let t = |id: &str| esc(&i18n::t(lang, id, &[]));
    let token = auth::new_secret();
    let error = if failed {
        format!(
            r#"<p class="error" id="signin-error">{}</p>"#,
            t("login-failed")
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>{title}</h1>{error}<form method="post" action="/console/login" class="login"><input type="hidden" name="csrf" value="{token}"><input type="hidden" name="lang" value="{lc}"><label>{user} <input name="username" id="username" autocomplete="username" required></label><label>{pw} <input name="password" id="password" type="password" autocomplete="current-password" required></label><button type="submit" id="sign-in">{go}</button></form>"#,
        title = t("login-title"),
        user = t("login-username"),
        pw = t("login-password"),
        go = t("login-submit"),
        lc = lang.code(),
    );
    let mut r = login_page(lang, &body);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &token, 600),
    );
    if let Ok(v) = format!(
        "{}={}; Path=/console; SameSite=Strict; Max-Age=31536000",
        page::LANG_COOKIE,
        lang.code()
    )
    .parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Checks the form token (the cookie's, double submit) and the password;
/// opens a session. Every attempt is audited (never the password).
pub async fn submit<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let lang = Lang::parse(&f.lang).unwrap_or(Lang::PtBr);
    let expected = page::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !auth::same_token(expected, &f.csrf) {
        return Ok((StatusCode::FORBIDDEN, page::bare_page(lang, "err-csrf")).into_response());
    }
    let username = f.username.trim().to_lowercase();
    let password = f.password;
    let user = username.clone();
    let opened = page::write(&st, move |tx| {
        let ok = auth::check_password(tx, &user, &password)?.is_some();
        let shown = if auth::valid_username(&user) {
            user.as_str()
        } else {
            "?"
        };
        auth::audit(tx, shown, "sign_in", "", if ok { "ok" } else { "failed" })?;
        Ok(if ok {
            Some(auth::open_session(tx, &user)?)
        } else {
            None
        })
    })
    .await?;
    let Some(id) = opened else {
        tracing::info!(user = %username, "console sign-in refused");
        return Ok(see_other(&format!(
            "/console/login?failed=1&lang={}",
            lang.code()
        )));
    };
    tracing::info!(user = %username, "console sign-in");
    let mut r = see_other("/console/stores");
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &id, auth::SESSION_SECS),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", 0),
    );
    Ok(r)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Result<Response, ConsoleError> {
    let ctx = match page::act(&st, &headers, &f.csrf, auth::Role::Viewer, "sign_out", "").await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    if let Some(id) = page::cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        page::write(&st, move |tx| Ok(auth::close_session(tx, &id)?)).await?;
    }
    page::audited(&st, &ctx, "sign_out", "", true).await?;
    let mut r = see_other("/console/login");
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    role: String,
}

/// `POST /v1/admin/console/users` `{"username","password","role"}` (behind
/// the admin token, like every `/v1/admin` route): creates or updates an
/// account. 200 `{"username","role"}`; 422 naming the wrong field.
pub async fn api_put_user<H: Host>(State(st): State<Arc<H>>, body: Bytes) -> Response {
    let unprocessable = |field: &str, message: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"code": "invalid_field", "field": field, "message": message})),
        )
            .into_response()
    };
    let u: NewUser = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return unprocessable("body", e.to_string()),
    };
    let (name, role) = (u.username.clone(), u.role.clone());
    let done = page::write(&st, move |tx| {
        let r = auth::put_user(tx, &u.username, &u.password, &u.role);
        if r.is_ok() {
            auth::audit(tx, "admin-token", "put_user", &u.username, "ok")?;
        }
        Ok(r)
    })
    .await;
    match done {
        Ok(Ok(())) => {
            tracing::info!(user = %name, role = %role, "console account written");
            Json::<Value>(json!({"username": name, "role": role})).into_response()
        }
        Ok(Err(e @ AuthError::Username)) => unprocessable("username", e.to_string()),
        Ok(Err(e @ AuthError::Password)) => unprocessable("password", e.to_string()),
        Ok(Err(e @ AuthError::Role)) => unprocessable("role", e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console account");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(e) => e.into_response(),
    }
}
