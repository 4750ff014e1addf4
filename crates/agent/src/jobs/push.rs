//! The push listener: a long-poll on the central's events endpoint. Each
//! answer names the entities with new data for this store; their download
//! jobs are woken at once, so a central change reaches the POS in seconds.
//! When the central is unreachable the listener backs off (capped, with
//! jitter) and keeps trying; the schedule goes on regardless. One log line
//! when the connection is made or lost, not one per poll.

use std::time::Duration;

use tokio::sync::watch;

use crate::central::Central;
use crate::scheduler::Wakers;

/// Seconds the central may hold a poll open.
pub const WAIT_SECS: u64 = 25;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn listen(central: Central, wakers: Wakers, mut stop: watch::Receiver<bool>) {
    // The first poll starts at the central's head: what is already there is
    // fetched by the jobs' first runs.
    let mut after: Option<u64> = None;
    let mut connected: Option<bool> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            return;
        }
        let polled_at = tokio::time::Instant::now();
        let answer = tokio::select! {
            a = central.events(after, WAIT_SECS) => a,
            _ = crate::jobs::stopped(&mut stop) => return,
        };
        match answer {
            Ok(events) => {
                if connected != Some(true) {
                    tracing::info!(central = %central_base(&central), "push: listening to the central's events");
                    if connected == Some(false) {
                        // Back after an outage: every job catches up now
                        // instead of waiting out its backoff.
                        wakers.central_is_back();
                    }
                    connected = Some(true);
                }
                backoff = Duration::from_secs(1);
                after = Some(events.seq.max(after.unwrap_or(0)));
                for entity in &events.entities {
                    if !wakers.wake_subject(entity) {
                        tracing::debug!(entity = %entity, "push hint for an entity with no download job");
                    }
                }
                // A central that answers at once with nothing (no long-poll
                // support) must not make this a busy loop.
                if events.entities.is_empty() && polled_at.elapsed() < Duration::from_secs(1) {
                    pause(Duration::from_secs(1), &mut stop).await;
                }
            }
            Err(e) => {
                if connected != Some(false) {
                    tracing::warn!(error = %e, "push: lost the central's events; retrying with backoff (the schedule goes on)");
                    connected = Some(false);
                }
                pause(jitter(backoff), &mut stop).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn central_base(c: &Central) -> String {
    format!("store {}", c.store())
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = crate::jobs::stopped(stop) => {}
    }
}

/// ±25 % so that many stores do not come back in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let f = 0.75 + fastrand::f64() * 0.5;
    d.mul_f64(f)
}
