//! Switches and schedules: the integration switch (the domain's
//! InterfaceIntegracao `Ativo`, `integration`) at each level that sets it
//! and the stores it holds off; an operator sets it for the chain, a
//! central or a store, or removes a level's setting. Then the availability minutes of every entity (how
//! often a store may download it) at each level that sets them (the whole
//! chain, a central, a store) beside the registry's default, the stores
//! exempt from the window; an admin sets an entity's minutes at a level
//! (`avail::set_minutes`).

use std::sync::Arc;

use crate::sql::Connection;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Role;
use super::page::{self, ConsoleError, Host, esc, layout, see_other};
use crate::avail;
use crate::integration;
use crate::nodes;

/// Each entity's settings: (node, minutes), the chain's first.
fn settings(conn: &Connection, entity: &str) -> Result<Vec<(String, u32)>, crate::sql::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT node, minutes FROM availability WHERE entity = ?1
         ORDER BY node <> 'master', node",
    )?;
    let rows = stmt.query_map(params![entity], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
        ))
    })?;
    rows.collect()
}

type Table = Vec<(&'static str, u32, Vec<(String, u32)>)>;

fn table(conn: &Connection) -> Result<(Table, Vec<String>, Vec<String>), crate::sql::Error> {
    let mut t = Vec::new();
    for e in loja_protocol::ENTITIES {
        t.push((e.name, e.availability_minutes, settings(conn, e.name)?));
    }
    let mut levels: Vec<String> = nodes::list(conn)?.into_iter().map(|n| n.id).collect();
    // The whole chain first: the level set most often.
    levels.sort_by_key(|l| l != nodes::MASTER);
    Ok((t, avail::list_exceptions(conn)?, levels))
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
    let (t, exceptions, levels) = page::read(&st, |c| Ok(table(c)?)).await?;
    let (set_at, off) = page::read(&st, |c| {
        Ok((integration::settings(c)?, integration::stores_off(c)?))
    })
    .await?;
    let level_name = |node: &str| {
        if node == nodes::MASTER {
            ctx.t("switch-chain")
        } else {
            esc(node)
        }
    };
    let mut body = format!(
        r#"<h2>{}</h2><p>{}</p><p id="integration-levels">{}</p><p id="integration-off">{}</p>"#,
        ctx.t("integration-title"),
        ctx.t("integration-intro"),
        if set_at.is_empty() {
            ctx.t("integration-on-everywhere")
        } else {
            set_at
                .iter()
                .map(|(node, on)| {
                    format!(
                        "{}: {}",
                        level_name(node),
                        ctx.t(if *on {
                            "integration-on"
                        } else {
                            "integration-off"
                        })
                    )
                })
                .collect::<Vec<_>>()
                .join(" · ")
        },
        if off.is_empty() {
            ctx.t("integration-no-store-off")
        } else {
            ctx.ta(
                "integration-stores-off",
                &[
                    ("n", &off.len().to_string()),
                    (
                        "stores",
                        &off.iter()
                            .map(|(s, _)| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ],
            )
        },
    );
    if ctx.may(Role::Operator) {
        let level_opts: String = levels
            .iter()
            .map(|l| format!(r#"<option value="{}">{}</option>"#, esc(l), level_name(l)))
            .collect();
        body.push_str(&format!(
            r#"<form method="post" action="/console/switches/integration" class="filters" id="set-integration">{}<label>{} <select name="node">{level_opts}</select></label><label>{} <select name="state"><option value="off">{}</option><option value="on">{}</option><option value="inherit">{}</option></select></label><button type="submit">{}</button></form>"#,
            ctx.csrf_field(),
            ctx.t("switch-level"),
            ctx.t("integration-state"),
            ctx.t("integration-off"),
            ctx.t("integration-on"),
            ctx.t("integration-inherit"),
            ctx.t("action-save"),
        ));
    }
    body.push_str(&format!(
        r#"<h2>{}</h2><p>{}</p><table id="availability"><thead><tr><th>{}</th><th class="num">{}</th><th>{}</th></tr></thead><tbody>"#,
        ctx.t("switch-schedules"),
        ctx.t("switch-intro"),
        ctx.t("switch-col-entity"),
        ctx.t("switch-col-default"),
        ctx.t("switch-col-levels"),
    ));
    for (entity, default, set) in &t {
        let levels_text = if set.is_empty() {
            ctx.t("switch-follows-default")
        } else {
            set.iter()
                .map(|(node, m)| {
                    let level = if node == nodes::MASTER {
                        ctx.t("switch-chain")
                    } else {
                        esc(node)
                    };
                    format!(
                        "{level}: {}",
                        ctx.ta("switch-minutes", &[("n", &m.to_string())])
                    )
                })
                .collect::<Vec<_>>()
                .join(" · ")
        };
        body.push_str(&format!(
            r#"<tr data-entity="{}"><td>{}</td><td class="num">{}</td><td>{levels_text}</td></tr>"#,
            esc(entity),
            esc(entity),
            ctx.ta("switch-minutes", &[("n", &default.to_string())]),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        r#"<h2>{}</h2><p id="exceptions">{}</p>"#,
        ctx.t("switch-exceptions"),
        if exceptions.is_empty() {
            ctx.t("common-none")
        } else {
            esc(&exceptions.join(", "))
        }
    ));
    if ctx.may(Role::Admin) {
        let opt =
            |v: &str, label: &str| format!(r#"<option value="{}">{}</option>"#, esc(v), label);
        let entities: String = t.iter().map(|(e, _, _)| opt(e, &esc(e))).collect();
        let level_opts: String = levels
            .iter()
            .map(|l| {
                let label = if l == nodes::MASTER {
                    ctx.t("switch-chain")
                } else {
                    esc(l)
                };
                opt(l, &label)
            })
            .collect();
        body.push_str(&format!(
            r#"<h2>{}</h2><form method="post" action="/console/switches/availability" class="filters" id="set-availability">{}<label>{} <select name="entity">{entities}</select></label><label>{} <select name="node">{level_opts}</select></label><label>{} <input type="number" name="minutes" min="0" max="100000" required></label><button type="submit">{}</button></form>"#,
            ctx.t("switch-set"),
            ctx.csrf_field(),
            ctx.t("switch-col-entity"),
            ctx.t("switch-level"),
            ctx.t("switch-col-minutes"),
            ctx.t("action-save"),
        ));
    }
    Ok(layout(&ctx, &ctx.t("switch-title"), &body))
}

#[derive(Deserialize)]
pub struct SetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    minutes: String,
}

/// Admin: `entity`'s availability minutes at `node`'s level.
pub async fn set<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Form(f): Form<SetForm>,
) -> Result<Response, ConsoleError> {
    let target = format!("{}@{}={}", f.entity, f.node, f.minutes);
    let ctx = match page::act(
        &st,
        &headers,
        &f.csrf,
        Role::Admin,
        "set_availability",
        &target,
    )
    .await
    {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let entity = loja_protocol::entity_named(&f.entity);
    let minutes = f
        .minutes
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| *m <= 100_000);
    let ok = match (entity, minutes) {
        (Some(e), Some(m)) => {
            let node = f.node.clone();
            page::write(&st, move |tx| {
                if nodes::kind_of(tx, &node)?.is_none() {
                    return Ok(false);
                }
                avail::set_minutes(tx, &node, e, m)?;
                Ok(true)
            })
            .await?
        }
        _ => false,
    };
    page::audited(&st, &ctx, "set_availability", &target, ok).await?;
    if !ok {
        return Ok(page::bare_page(ctx.lang, "err-action-failed"));
    }
    Ok(see_other("/console/switches"))
}

#[derive(Deserialize)]
pub struct IntegrationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    state: String,
}

/// Operator: the integration switch at `node`'s level (on, off, or the
/// level's setting removed: it follows the level above).
pub async fn set_integration<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Form(f): Form<IntegrationForm>,
) -> Result<Response, ConsoleError> {
    let target = format!("{}={}", f.node, f.state);
    let ctx = match page::act(
        &st,
        &headers,
        &f.csrf,
        Role::Operator,
        "set_integration",
        &target,
    )
    .await
    {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let on = match f.state.as_str() {
        "on" => Some(Some(true)),
        "off" => Some(Some(false)),
        "inherit" => Some(None),
        _ => None,
    };
    let applied = match on {
        Some(on) => {
            let node = f.node.clone();
            page::write(&st, move |tx| {
                if nodes::kind_of(tx, &node)?.is_none() {
                    return Ok(None);
                }
                match integration::set(tx, &node, on) {
                    Ok(a) => Ok(Some(a)),
                    // A database error rolls the transaction back.
                    Err(crate::import::ImportError::Db(e)) => Err(ConsoleError::Db(e)),
                    // Refused before anything was written (e.g. no such node).
                    Err(_) => Ok(None),
                }
            })
            .await?
        }
        None => None,
    };
    if let Some(a) = &applied
        && a.changed > 0
    {
        // The stores hear it through their parameters feed: wake them.
        st.moved(a.last_seq);
    }
    let ok = applied.is_some();
    page::audited(&st, &ctx, "set_integration", &target, ok).await?;
    if !ok {
        return Ok(page::bare_page(ctx.lang, "err-action-failed"));
    }
    Ok(see_other("/console/switches"))
}
