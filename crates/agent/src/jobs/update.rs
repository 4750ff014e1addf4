//! The update job (UPD, `tasks/update.toml`) and the new version's health
//! check (docs/update.md).
//!
//! A run: sends the queued outcomes; asks the central for its offer;
//! checks it (root key, keyring, manifest, replays, version order,
//! `min_from`, versions bad here); downloads the artifact and checks its
//! size and sha256 on a background-priority thread; stages it in
//! `versions/<version>/`. Then, when a release is staged and the
//! maintenance window is open (or `lojad update --now` asked), no cash
//! session is open, no upload and no POS request runs, it writes the
//! switch (`trial.json`) and asks the daemon to exit with
//! [`swap::RESTART_EXIT`]: the service manager starts the launcher, which
//! backs up the databases and starts the new version.

use std::time::Duration;

use loja_protocol::release::{self as rel, Report};

use super::{JobCtx, JobResult};
use crate::release::swap::{self, Layout, Trial, TrialState};
use crate::release::{self, Staged, Verdict};

/// One run of the update task.
pub async fn run(ctx: &JobCtx) -> JobResult {
    let layout = release::layout(ctx.config());
    if let Err(why) = release::root_key(ctx.config()) {
        // a build without a root key, configured without one: no updates
        return JobResult {
            rows: 0,
            outcome: loja_replica::Outcome::Disabled,
            message: Some(why),
        };
    }
    let sent = send_reports(ctx, &layout).await;
    let checked = check(ctx.config(), &ctx.central, &layout).await;
    let mut trust = release::trust(&layout).unwrap_or_default();
    trust.last_check = Some(loja_protocol::time::now_rfc3339());
    trust.last_outcome = Some(match &checked {
        Ok(m) => m.clone(),
        Err(e) => format!("failed: {e}"),
    });
    if let Err(e) = release::save_trust(&layout, &trust) {
        tracing::warn!(error = %e, "update: cannot write the trust state");
    }
    // A release staged before stays good to apply when this check failed
    // (the central down, say): it was verified when it was staged.
    let applied = apply_if_ready(ctx, &layout, false).await;
    match (checked, applied) {
        (Ok(checked), Ok(applied)) => {
            let mut r = JobResult::ok(sent);
            r.message = Some(format!("{checked}; {applied}"));
            r
        }
        (Ok(checked), Err(e)) => JobResult::failed(sent, format!("{checked}; {e}")),
        (Err(e), Ok(applied)) => JobResult::failed(sent, format!("{e}; {applied}")),
        (Err(e), Err(e2)) => JobResult::failed(sent, format!("{e}; {e2}")),
    }
}

/// Sends each queued outcome; a sent one is removed. Returns how many.
async fn send_reports(ctx: &JobCtx, layout: &Layout) -> u64 {
    let Ok(entries) = std::fs::read_dir(layout.reports_dir()) else {
        return 0;
    };
    let mut sent = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let report: Report = match swap::read_json(&path) {
            Ok(Some(r)) => r,
            _ => continue,
        };
        match ctx.central.post_release_report(&report).await {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                sent += 1;
            }
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "update: report not sent; kept for the next run");
                break;
            }
            Err(e) => {
                // refused for good (a 4xx): asking again changes nothing
                tracing::warn!(error = %e, to = %report.to, "update: the central refused a report; dropped");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    sent
}

/// Fetches, checks and stages the offered release. The answer says what
/// happened.
pub async fn check(
    config: &crate::config::Config,
    central: &crate::central::Central,
    layout: &Layout,
) -> Result<String, String> {
    let root = release::root_key(config)?;
    let offer = match central.release_offer().await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok("no release offered".into()),
        // a central without the release routes (older than issue 18)
        Err(e) if e.status() == Some(404) => {
            return Ok("the central serves no releases (404)".into());
        }
        Err(e) => return Err(format!("asking the central: {e}")),
    };
    let mut trust = release::trust(layout).map_err(|e| e.to_string())?;
    let running = release::running_version();
    let target = rel::this_target();
    let now = time::OffsetDateTime::now_utc();
    let verdict = release::judge(&offer, &root, &mut trust, &running, &target, layout, now);
    release::save_trust(layout, &trust).map_err(|e| e.to_string())?;
    let (manifest, t) = match verdict {
        Err(e) => {
            tracing::warn!(error = %e, "update: release refused");
            return Err(format!("release refused: {e}"));
        }
        Ok(Verdict::Skip(why)) => {
            // a staged release that is no longer the one to take goes
            if let Ok(Some(s)) = release::staged(layout)
                && (s.version == running || swap::is_bad(layout, &s.version))
            {
                let _ = release::save_staged(layout, None);
            }
            return Ok(why);
        }
        Ok(Verdict::Install(m, t)) => (m, t),
    };
    if let Ok(Some(s)) = release::staged(layout)
        && s.sequence == manifest.sequence
        && layout.binary(&s.version).is_file()
    {
        return Ok(format!("{} staged, waiting for the window", s.version));
    }
    let t0 = std::time::Instant::now();
    let bytes = central
        .release_artifact(manifest.sequence, &target)
        .await
        .map_err(|e| format!("downloading {}: {e}", manifest.version))?;
    let (version, expected) = (manifest.version.clone(), t.clone());
    let dest = layout.binary(&version);
    let staged =
        crate::priority::background("update-verify", move || stage(&bytes, &expected, &dest))
            .await
            .map_err(|e| e.to_string())?;
    if let Err(e) = staged {
        tracing::warn!(version = %version, error = %e, "update: artifact refused");
        return Err(e);
    }
    release::save_staged(
        layout,
        Some(&Staged {
            version: version.clone(),
            sequence: manifest.sequence,
            rollback: manifest.rollback,
            notes: manifest.notes.clone(),
            sha256: t.sha256.clone(),
            size: t.size,
        }),
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(version = %version, size = t.size, ms = t0.elapsed().as_millis() as u64,
        "update: release downloaded, verified and staged");
    Ok(format!(
        "{version} downloaded and verified in {} ms",
        t0.elapsed().as_millis()
    ))
}

/// Checks the artifact against its signed size and sha256 and writes it
/// to `dest` (beside it first, then renamed: never a half binary).
pub fn stage(bytes: &[u8], expected: &rel::Target, dest: &std::path::Path) -> Result<(), String> {
    if bytes.len() as u64 != expected.size {
        return Err(format!(
            "artifact is {} bytes, the manifest says {}: refused",
            bytes.len(),
            expected.size
        ));
    }
    let got = rel::sha256_hex(bytes);
    if !got.eq_ignore_ascii_case(&expected.sha256) {
        return Err(format!(
            "artifact sha256 {got} is not the manifest's {}: refused",
            expected.sha256
        ));
    }
    swap::write_atomic(dest, bytes).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Why the store cannot switch now (`None`: it can).
pub fn busy(ctx: &JobCtx, layout: &Layout, forced: bool) -> Option<String> {
    let config = ctx.config();
    if !forced && !release::now_file(layout).exists() {
        let (w, source) = release::window(config);
        let open = release::Window::parse(&w).is_some_and(|win| {
            use chrono::Timelike as _;
            let now = chrono::Local::now();
            win.contains(now.hour() * 60 + now.minute())
        });
        if !open {
            return Some(format!("outside the maintenance window {w} ({source})"));
        }
    }
    let sessions = release::open_cash_sessions(&config.store.data_dir);
    if sessions > 0 {
        return Some(format!("{sessions} cash session(s) open"));
    }
    if ctx
        .state
        .schedule
        .jobs()
        .iter()
        .any(|j| j.running && j.subject == "documents")
    {
        return Some("an upload is in flight".into());
    }
    let requests = ctx
        .state
        .pos_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    if requests > 0 {
        return Some(format!("{requests} POS request(s) running"));
    }
    None
}

/// Switches to the staged release when the store is ready: writes the
/// switch and asks for the restart. Says what it did.
pub async fn apply_if_ready(ctx: &JobCtx, layout: &Layout, forced: bool) -> Result<String, String> {
    let Some(staged) = release::staged(layout).map_err(|e| e.to_string())? else {
        return Ok("nothing staged".into());
    };
    let running = release::running_version();
    if staged.version == running || swap::is_bad(layout, &staged.version) {
        let _ = release::save_staged(layout, None);
        return Ok("nothing to apply".into());
    }
    if !layout.binary(&staged.version).is_file() {
        let _ = release::save_staged(layout, None);
        return Err(format!(
            "{} was staged but its binary is gone",
            staged.version
        ));
    }
    if !release::launched() {
        return Ok(format!(
            "{} waits: this lojad was not started by `lojad launch` (the service's ExecStart), which switches versions",
            staged.version
        ));
    }
    if let Some(why) = busy(ctx, layout, forced) {
        return Ok(format!("{} waits: {why}", staged.version));
    }
    let trial = Trial {
        from: swap::current(layout),
        from_version: running.clone(),
        to: staged.version.clone(),
        state: TrialState::Switching,
        attempts: 0,
        probe: release::probe_product(&ctx.config().store.data_dir),
        started_at: loja_protocol::time::now_rfc3339(),
        error: None,
    };
    swap::write_json(&layout.trial_file(), &trial).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(release::now_file(layout));
    let _ = release::save_staged(layout, None);
    tracing::info!(from = %running, to = %staged.version, "update: switching; restarting through the service manager");
    release::request_restart();
    Ok(format!("switching {running} → {}", staged.version))
}

/// Spawned at start when this version is on trial: within
/// `[update] health_secs` it must answer a real product lookup on its POS
/// API and finish one sync round (an unreachable central does not count
/// against it). Then the switch is committed; otherwise the trial is
/// marked failed and the daemon exits for the launcher to roll back.
pub async fn health_check(ctx: JobCtx, pos: std::net::SocketAddr) {
    let layout = release::layout(ctx.config());
    let trial = match swap::read_json::<Trial>(&layout.trial_file()) {
        Ok(Some(t)) if t.state == TrialState::Trying && t.to == release::running_version() => t,
        _ => return,
    };
    let limit = Duration::from_secs(ctx.config().update.health_secs.max(1));
    let t0 = std::time::Instant::now();
    let verdict = match tokio::time::timeout(limit, probe(&ctx, pos, trial.probe.as_deref())).await
    {
        Ok(v) => v,
        Err(_) => Err(format!("not healthy within {} s", limit.as_secs())),
    };
    let ms = t0.elapsed().as_millis() as u64;
    // from the old version's decision to switch (window open, store idle)
    let switch_ms = loja_protocol::time::parse(&trial.started_at)
        .map(|t| {
            (time::OffsetDateTime::now_utc() - t)
                .whole_milliseconds()
                .max(0) as u64
        })
        .unwrap_or(0);
    match verdict {
        Ok(note) => match swap::commit(&layout, &trial) {
            Ok(()) => {
                tracing::info!(from = %trial.from_version, to = %trial.to, ms, switch_ms, note = %note, "update: new version healthy; committed")
            }
            Err(e) => tracing::warn!(error = %e, "update: healthy, but the commit failed"),
        },
        Err(error) => {
            tracing::warn!(from = %trial.from_version, to = %trial.to, ms, error = %error, "update: health check failed; rolling back");
            let mut failed = trial;
            failed.state = TrialState::Failed;
            failed.error = Some(error);
            if let Err(e) = swap::write_json(&layout.trial_file(), &failed) {
                tracing::warn!(error = %e, "update: cannot record the failed health check");
            }
            release::request_restart();
        }
    }
}

async fn probe(
    ctx: &JobCtx,
    pos: std::net::SocketAddr,
    product: Option<&str>,
) -> Result<String, String> {
    // The databases are open (the daemon got this far) and migrated.
    let mut notes = Vec::new();
    match (product, ctx.config().pos.tokens.first()) {
        (Some(code), Some(token)) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("lookup client: {e}"))?;
            let url = format!("http://{pos}/v1/products/{code}");
            let resp = client
                .get(&url)
                .bearer_auth(&token.token)
                .send()
                .await
                .map_err(|e| format!("product lookup {code}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("product lookup {code} answered {}", resp.status()));
            }
            notes.push(format!("product {code} answered"));
        }
        (None, _) => notes.push("no product to look up (empty replica)".into()),
        (_, None) => notes.push("no POS token to look up with".into()),
    }
    let parameters = loja_protocol::entity_named("parameters")
        .ok_or_else(|| "the registry has no parameters entity".to_string())?;
    let round = super::download::run(ctx, parameters).await;
    if round.outcome == loja_replica::Outcome::Ok {
        notes.push("sync round finished".into());
    } else {
        match ctx.central.release_offer().await {
            Err(e) if e.is_transient() => notes.push(format!(
                "central unreachable ({e}): not held against the release"
            )),
            _ => {
                return Err(format!(
                    "sync round failed: {}",
                    round.message.unwrap_or_default()
                ));
            }
        }
    }
    Ok(notes.join("; "))
}
