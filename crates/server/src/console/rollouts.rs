//! Rollouts: every lojad release (newest first) with its waves and each
//! wave's progress — stores on the new version, in trial, rolled back,
//! failed, still waiting — as the stores reported them to the central
//! (`releases::rollouts`); an operator pauses or resumes a release
//! (`releases::control`: a paused release is offered to no store).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Role;
use super::i18n;
use super::page::{self, ConsoleError, Ctx, Host, esc, layout, see_other};
use crate::releases::{self, Control, RolloutView, WaveCounts};

/// A wave's start, counted from the release's start.
fn after(ctx: &Ctx, secs: i64) -> String {
    if secs == 0 {
        ctx.t("rollout-at-once")
    } else if secs % 3600 == 0 {
        ctx.ta("unit-hours", &[("n", &(secs / 3600).to_string())])
    } else {
        ctx.ta("unit-minutes", &[("n", &(secs / 60).to_string())])
    }
}

fn count_cells(c: &WaveCounts) -> String {
    [
        c.stores,
        c.updated,
        c.in_trial,
        c.rolled_back,
        c.failed,
        c.waiting(),
    ]
    .iter()
    .map(|n| format!(r#"<td class="num">{n}</td>"#))
    .collect()
}

fn release_html(ctx: &Ctx, v: &RolloutView) -> String {
    let r = &v.release;
    let state = if r.emergency {
        format!(
            r#"<span class="badge bad">{}</span>"#,
            ctx.t("rollout-emergency")
        )
    } else if r.paused {
        let reason = r
            .pause_reason
            .as_deref()
            .map(|why| format!(" — {}", esc(why)))
            .unwrap_or_default();
        format!(
            r#"<span class="badge warn">{}</span>{reason}"#,
            ctx.t("rollout-paused")
        )
    } else {
        format!(
            r#"<span class="badge ok">{}</span>"#,
            ctx.t("rollout-running")
        )
    };
    let kind = if r.rollback {
        format!(" ({})", ctx.t("rollout-rollback-release"))
    } else {
        String::new()
    };
    let mut s = format!(
        r#"<section class="release" data-sequence="{seq}" data-paused="{paused}"><h2>{title}{kind}</h2><p class="release-state">{state}</p><p>{started} · {reached}</p>"#,
        seq = r.sequence,
        paused = r.paused,
        title = ctx.ta(
            "rollout-release",
            &[
                ("version", &r.version),
                ("sequence", &r.sequence.to_string())
            ]
        ),
        started = ctx.ta(
            "rollout-started",
            &[("at", &i18n::date_time_unix(ctx.lang, r.started_at))]
        ),
        reached = ctx.ta(
            "rollout-reached",
            &[
                ("pct", &r.reached_percent.to_string()),
                ("halt", &r.halt_percent.to_string())
            ]
        ),
    );
    s.push_str(&format!(
        r#"<table class="waves"><thead><tr><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        ctx.t("rollout-col-wave"),
        ctx.t("rollout-col-when"),
        ctx.t("rollout-col-stores"),
        ctx.t("rollout-col-updated"),
        ctx.t("rollout-col-trial"),
        ctx.t("rollout-col-rolled-back"),
        ctx.t("rollout-col-failed"),
        ctx.t("rollout-col-waiting"),
    ));
    let mut n = 0;
    for w in &v.waves {
        let (name, when) = match w.after_secs {
            None => (ctx.t("rollout-pilot"), ctx.t("rollout-at-once")),
            Some(secs) => {
                n += 1;
                (
                    ctx.ta(
                        "rollout-wave",
                        &[("n", &n.to_string()), ("pct", &w.percent.to_string())],
                    ),
                    format!(
                        "{}{}",
                        after(ctx, secs),
                        if w.due {
                            String::new()
                        } else {
                            format!(" ({})", ctx.t("rollout-not-yet"))
                        }
                    ),
                )
            }
        };
        s.push_str(&format!(
            r#"<tr class="wave"><td>{name}</td><td>{when}</td>{}</tr>"#,
            count_cells(&w.counts)
        ));
    }
    if v.outside.stores > 0 {
        s.push_str(&format!(
            r#"<tr class="wave outside"><td>{}</td><td></td>{}</tr>"#,
            ctx.t("rollout-outside"),
            count_cells(&v.outside)
        ));
    }
    s.push_str("</tbody></table>");
    if ctx.may(Role::Operator) && !r.emergency {
        let (what, label) = if r.paused {
            ("resume", "rollout-resume")
        } else {
            ("pause", "rollout-pause")
        };
        s.push_str(&ctx.button(
            &format!("/console/rollouts/{}/control", r.sequence),
            label,
            &[("what", what)],
        ));
    }
    s.push_str("</section>");
    s
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
    let views = page::read(&st, |c| Ok(releases::rollouts(c)?)).await?;
    let mut body = format!("<p>{}</p>", ctx.t("rollout-intro"));
    if views.is_empty() {
        body.push_str(&format!(
            r#"<p id="no-releases">{}</p>"#,
            ctx.t("rollout-none")
        ));
    }
    for v in &views {
        body.push_str(&release_html(&ctx, v));
    }
    Ok(layout(&ctx, &ctx.t("rollout-title"), &body))
}

#[derive(Deserialize)]
pub struct ControlForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    what: String,
}

/// Operator: pause or resume release `sequence`.
pub async fn control<H: Host>(
    State(st): State<Arc<H>>,
    headers: HeaderMap,
    Path(sequence): Path<u64>,
    Form(f): Form<ControlForm>,
) -> Result<Response, ConsoleError> {
    let (action, what) = match f.what.as_str() {
        "resume" => ("release_resume", Some(Control::Resume)),
        "pause" => ("release_pause", Some(Control::Pause)),
        _ => ("release_pause", None),
    };
    let target = sequence.to_string();
    let ctx = match page::act(&st, &headers, &f.csrf, Role::Operator, action, &target).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let ok = match what {
        Some(what) => {
            let st2 = st.clone();
            tokio::task::spawn_blocking(move || releases::control(st2.db(), sequence, what))
                .await
                .map_err(|_| ConsoleError::Task)?
                .is_ok()
        }
        None => false,
    };
    page::audited(&st, &ctx, action, &target, ok).await?;
    if !ok {
        return Ok(page::bare_page(ctx.lang, "err-action-failed"));
    }
    Ok(see_other("/console/rollouts"))
}
