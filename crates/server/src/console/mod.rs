//! The operator console (issue 20): a web console under `/console`,
//! server-rendered HTML in the users' language (Brazilian Portuguese by
//! default), its stylesheet built into the binary. See docs/console.md.
//!
//! - `auth`: accounts (argon2), sessions, form tokens, the audit log;
//! - `i18n`: the Fluent catalogues and the formatters (money, dates);
//! - `page`: what every page shares (the [`Host`] it runs in, layout,
//!   escaping, the gate of actions);
//! - one module per page: `stores`, `documents`, `orders`, `rollouts`,
//!   `switches`, `users`, `audit`, and `login` (sign in and out, the admin API's account route).
//!
//! The console reaches the server only through [`Host`] (implemented by
//! `http::AppState`), so it imports nothing of `http`.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub mod audit;
pub mod auth;
pub mod documents;
pub mod i18n;
pub mod login;
pub mod orders;
pub mod page;
pub mod rollouts;
pub mod stores;
pub mod switches;
pub mod users;

pub use login::api_put_user;
pub use page::Host;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Every `/console` route (nested by `http::router`).
pub fn router<H: Host>() -> Router<Arc<H>> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/stores") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/stores") }),
        )
        .route(
            "/console/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/console/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/console/login",
            get(login::form::<H>).post(login::submit::<H>),
        )
        .route("/console/logout", post(login::logout::<H>))
        .route("/console/stores", get(stores::page::<H>))
        .route("/console/stores/{store}", get(stores::one::<H>))
        .route(
            "/console/stores/{store}/exception",
            post(stores::set_exception::<H>),
        )
        .route("/console/documents", get(documents::page::<H>))
        .route(
            "/console/documents/{id}/resend",
            post(documents::resend::<H>),
        )
        .route("/console/orders", get(orders::page::<H>))
        .route("/console/orders/{id}/picking", get(orders::picking::<H>))
        .route("/console/orders/{id}/assign", post(orders::assign::<H>))
        .route("/console/rollouts", get(rollouts::page::<H>))
        .route(
            "/console/rollouts/{sequence}/control",
            post(rollouts::control::<H>),
        )
        .route("/console/switches", get(switches::page::<H>))
        .route("/console/switches/availability", post(switches::set::<H>))
        .route(
            "/console/switches/integration",
            post(switches::set_integration::<H>),
        )
        .route(
            "/console/users",
            get(users::page::<H>).post(users::create::<H>),
        )
        .route("/console/users/{username}/{what}", post(users::change::<H>))
        .route("/console/audit", get(audit::page::<H>))
}
