//! Users (admins only): the console's accounts, their role and whether they
//! are disabled; an admin creates an account, changes a role, disables or
//! enables one (each ends the account's sessions). An admin cannot change
//! their own account here (so the last admin cannot lock everyone out);
//! the admin API (`/v1/admin/console/users`) still can.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{self, Role};
use super::i18n::date_time_unix;
use super::page::{self, ConsoleError, Ctx, Host, esc, layout, see_other, url};

const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

fn role_select(ctx: &Ctx, chosen: Role) -> String {
    let mut s = String::from(r#"<select name="role">"#);
    for r in ROLES {
        let sel = if r == chosen { " selected" } else { "" };
        s.push_str(&format!(
            r#"<option value="{}"{sel}>{}</option>"#,
            r.as_str(),
            ctx.t(&format!("common-role-{}", r.as_str()))
        ));
    }
    s.push_str("</select>");
    s
}

/// A viewer or operator opening the page: 403, audited.
async fn refuse<H: Host>(st: &Arc<H>, ctx: &Ctx) -> Result<Response, ConsoleError> {
    let user = ctx.session.username.clone();
    page::write(st, move |tx| {
        Ok(auth::audit(tx, &user, "view_users", "", "denied")?)
    })
    .await?;
    Ok((
        StatusCode::FORBIDDEN,
        page::bare_page(ctx.lang, "err-forbidden"),
    )
        .into_response())
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
    if !ctx.may(Role::Admin) {
        return refuse(&st, &ctx).await;
    }
    let accounts = page::read(&st, |c| Ok(auth::accounts(c)?)).await?;
    let mut body = format!(
        r#"<p>{}</p><table id="users"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>"#,
        ctx.t("users-intro"),
        ctx.t("users-col-username"),
        ctx.t("users-col-role"),
        ctx.t("users-col-state"),
        ctx.t("users-col-created"),
    );
    for a in &accounts {
        let state = if a.disabled {
            format!(
                r#"<span class="badge bad">{}</span>"#,
                ctx.t("users-disabled")
            )
        } else {
            format!(r#"<span class="badge ok">{}</span>"#, ctx.t("users-active"))
        };
        let actions = if a.username == ctx.session.username {
            ctx.t("users-yourself")
        } else {
            let base = format!("/console/users/{}", url(&a.username));
            let role_form = format!(
                r#"<form method="post" action="{base}/role" class="inline role">{}{}<button type="submit">{}</button></form>"#,
                ctx.csrf_field(),
                role_select(&ctx, a.role),
                ctx.t("users-change-role"),
            );
            let toggle = if a.disabled {
                ctx.button(&format!("{base}/enable"), "users-enable", &[])
            } else {
                ctx.button(&format!("{base}/disable"), "users-disable", &[])
            };
            format!("{role_form} {toggle}")
        };
        body.push_str(&format!(
            r#"<tr data-user="{u}"><td>{u}</td><td>{role}</td><td>{state}</td><td>{created}</td><td>{actions}</td></tr>"#,
            u = esc(&a.username),
            role = ctx.t(&format!("common-role-{}", a.role.as_str())),
            created = esc(&date_time_unix(ctx.lang, a.created_at)),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        r#"<h2>{}</h2><form method="post" action="/console/users" class="filters" id="create-user">{}<label>{} <input name="username" required maxlength="64" autocomplete="off"></label><label>{} <input type="password" name="password" required minlength="{}" autocomplete="new-password"></label><label>{} {}</label><button type="submit">{}</button></form>"#,
        ctx.t("users-create"),
        ctx.csrf_field(),
        ctx.t("users-col-username"),
        ctx.t("users-password"),
        auth::MIN_PASSWORD,
        ctx.t("users-col-role"),
        role_select(&ctx, Role::Viewer),
        ctx.t("users-create-submit"),
    ));
    Ok(layout(&ctx, &ctx.t("users-title"), &body))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

/// Admin: a new account (never over an existing one).
pub async fn create<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Form(f): Form<CreateForm>,
) -> Result<Response, ConsoleError> {
    let target = format!("{} ({})", f.username, f.role);
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Admin, "user_create", &target).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let ok = page::write(&st, move |tx| {
        // A refused name, password or role is the action failing, not an
        // error of the console.
        Ok(auth::create_user(tx, &f.username, &f.password, &f.role).unwrap_or(false))
    })
    .await?;
    page::audited(&st, &ctx, "user_create", &target, ok).await?;
    if !ok {
        return Ok(page::bare_page(ctx.lang, "err-action-failed"));
    }
    Ok(see_other("/console/users"))
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// Admin: another account's role (`/role`), or disable / enable it.
pub async fn change<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path((username, what)): Path<(String, String)>,
    Form(f): Form<UserForm>,
) -> Result<Response, ConsoleError> {
    let (action, target) = match what.as_str() {
        "role" => ("user_role", format!("{username}={}", f.role)),
        "disable" => ("user_disable", username.clone()),
        "enable" => ("user_enable", username.clone()),
        _ => return Err(ConsoleError::NotFound),
    };
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Admin, action, &target).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let ok = if username == ctx.session.username {
        false
    } else {
        let role = Role::parse(&f.role);
        page::write(&st, move |tx| {
            Ok(match (what.as_str(), role) {
                ("role", Some(role)) => auth::set_role(tx, &username, role)?,
                ("disable", _) => auth::set_disabled(tx, &username, true)?,
                ("enable", _) => auth::set_disabled(tx, &username, false)?,
                _ => false,
            })
        })
        .await?
    };
    page::audited(&st, &ctx, action, &target, ok).await?;
    if !ok {
        return Ok(page::bare_page(ctx.lang, "err-action-failed"));
    }
    Ok(see_other("/console/users"))
}
