//! The push listener: a long-poll on the central's events endpoint. Each
//! answer names the entities with new data for this store; their download
//! jobs are woken at once, so a central change reaches the POS in seconds.
//! When the central is unreachable the listener backs off (capped, with
//! jitter) and keeps trying; the schedule goes on regardless. One log line
//! when the connection is made or lost, not one per poll.
//!
//! The position (`after`) is never above the head the central states in
//! its answer: a seq above it (a corrupted answer) is not taken, and a
//! position ahead of the head (a central restored from a backup, or an
//! answer corrupted in both fields) is reset to the head, every download job
//! is woken to catch up, and one warning is logged per incident.

use std::time::Duration;

use loja_protocol::Events;
use tokio::sync::watch;

use crate::backoff::jitter;
use crate::central::Central;
use crate::wakers::Wakers;

/// Seconds the central may hold a poll open.
pub const WAIT_SECS: u64 = 25;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn listen(central: Central, wakers: Wakers, mut stop: watch::Receiver<bool>) {
    // The first poll starts at the central's head: what is already there is
    // fetched by the jobs' first runs.
    let mut after: Option<u64> = None;
    let mut connected: Option<bool> = None;
    let mut backoff = Duration::from_secs(1);
    // True from the answer that showed us ahead of the central's head until
    // one that does not: one warning per incident.
    let mut ahead_incident = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let polled_at = tokio::time::Instant::now();
        let answer = tokio::select! {
            a = central.events(after, WAIT_SECS) => a,
            _ = crate::runtime::stopped(&mut stop) => return,
        };
        match answer {
            Ok(events) => {
                if connected != Some(true) {
                    tracing::info!(central = %central_base(&central), "push: listening to the central's events");
                    if connected == Some(false) {
                        // Back after an outage: every job catches up
                        // instead of waiting out its backoff — at this
                        // store's place in the return window, so a
                        // restarted central does not get the chain at once.
                        let wakers = wakers.clone();
                        let at =
                            crate::backoff::spread(central.store(), crate::backoff::RETURN_WINDOW);
                        tokio::spawn(async move {
                            tokio::time::sleep(at).await;
                            wakers.central_is_back();
                        });
                    }
                    connected = Some(true);
                }
                backoff = Duration::from_secs(1);
                let step = next_position(after, &events);
                if step.ahead {
                    if !ahead_incident {
                        tracing::warn!(
                            after = ?after,
                            seq = events.seq,
                            head = ?events.head,
                            "push: our position in the central's sequence was ahead of its head (a corrupted answer, or a central restored from a backup): starting again from its head; every download job catches up now"
                        );
                        ahead_incident = true;
                    }
                    let woken = wakers.wake_downloads();
                    tracing::debug!(woken, "push: download jobs woken to catch up");
                } else if ahead_incident {
                    tracing::info!(head = ?events.head, "push: back in step with the central's head");
                    ahead_incident = false;
                }
                after = Some(step.after);
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

/// The listener's next position after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The `after` of the next poll: never above the central's stated head.
    pub after: u64,
    /// Our position or the answer's seq was above the central's head.
    pub ahead: bool,
}

/// Where to poll from next. With a `head` in the answer, the position never
/// goes above it; a central older than the `head` field is taken at its
/// word (never moving backwards).
pub fn next_position(after: Option<u64>, events: &Events) -> Step {
    let kept = events.seq.max(after.unwrap_or(0));
    match events.head {
        Some(head) if after.is_some_and(|a| a > head) || events.seq > head => Step {
            after: head,
            ahead: true,
        },
        Some(_) | None => Step {
            after: kept,
            ahead: false,
        },
    }
}

fn central_base(c: &Central) -> String {
    format!("store {}", c.store())
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = crate::runtime::stopped(stop) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, head: Option<u64>) -> Events {
        Events {
            seq,
            entities: vec!["prices".into()],
            head,
        }
    }

    #[test]
    fn the_position_never_goes_above_the_stated_head() {
        // In step: the answer's seq, never backwards.
        let s = next_position(Some(10), &ev(12, Some(12)));
        assert_eq!(
            s,
            Step {
                after: 12,
                ahead: false
            }
        );
        let s = next_position(None, &ev(7, Some(9)));
        assert_eq!(
            s,
            Step {
                after: 7,
                ahead: false
            }
        );
        // A seq above the head in the same answer (a flipped digit): not taken.
        let s = next_position(Some(10), &ev(9_000_012, Some(12)));
        assert_eq!(
            s,
            Step {
                after: 12,
                ahead: true
            }
        );
        // Our position above the head (a restored central, or an earlier
        // answer corrupted in both fields): back to the head.
        let s = next_position(Some(9_000_012), &ev(12, Some(12)));
        assert_eq!(
            s,
            Step {
                after: 12,
                ahead: true
            }
        );
        let s = next_position(Some(9_000_012), &ev(9_000_012, Some(40)));
        assert_eq!(
            s,
            Step {
                after: 40,
                ahead: true
            }
        );
        // A central without `head`: as before.
        let s = next_position(Some(10), &ev(15, None));
        assert_eq!(
            s,
            Step {
                after: 15,
                ahead: false
            }
        );
        let s = next_position(Some(20), &ev(15, None));
        assert_eq!(
            s,
            Step {
                after: 20,
                ahead: false
            }
        );
    }

    #[test]
    fn an_older_centrals_answer_has_no_head() {
        let e: Events = serde_json::from_str(r#"{"seq": 5, "entities": []}"#).unwrap();
        assert_eq!(e.head, None);
        let e: Events = serde_json::from_str(r#"{"seq": 5, "entities": [], "head": 7}"#).unwrap();
        assert_eq!(e.head, Some(7));
    }
}
