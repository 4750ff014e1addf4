//! Keeps the replica's product cards built (see `loja_replica`'s cards
//! module: the barcode lookup's answer kept ready, one row per barcode).
//!
//! Cards go stale in the transaction that changes their rows; this task
//! builds the missing ones afterwards, on the catalog's one writer, in
//! batches short enough that a page apply never waits long behind one.
//! It starts when lojad starts (cards of a previous run may be missing or
//! of another format), every [`RECHECK`] (another process may have
//! applied pages), and after downloads that changed a card's source
//! rows, once downloads have been quiet for [`QUIET`]: an initial sync is
//! not slowed by building cards its next page would drop again. Until a
//! card exists the lookup reads the tables, so correctness never waits on
//! this task, only speed.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::jobs::{lock, stopped};
use crate::state::AppState;

/// Barcodes per build transaction (~20–40 ms of the writer).
pub const BATCH: usize = 2_000;

/// How long downloads must have been quiet before a build starts.
pub const QUIET: Duration = Duration::from_secs(2);

/// A pass runs at least this often, woken or not (a pass with nothing to
/// build reads each barcode's slot: ~0.5 s of the writer per 200k barcodes,
/// in batches).
pub const RECHECK: Duration = Duration::from_secs(600);

/// The longest a build waits for downloads to go quiet.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Runs until `stop`: one build pass per burst of wakes, one log line each.
pub async fn keep_built(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = state.cards_wake.notified() => {}
            // A `lojad sync` run by hand in another process drops cards
            // without waking this task (it rebuilds them before it returns,
            // unless it is interrupted first).
            _ = tokio::time::sleep(RECHECK) => {}
            _ = stopped(&mut stop) => return,
        }
        // Let the burst of downloads end first, but not forever (a feed
        // that never goes quiet still gets its cards).
        let latest = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let quiet_at = (tokio::time::Instant::now() + QUIET).min(latest);
            tokio::select! {
                _ = state.cards_wake.notified() => continue,
                _ = tokio::time::sleep_until(quiet_at) => break,
                _ = stopped(&mut stop) => return,
            }
        }
        run_pass(&state, &stop).await;
    }
}

/// One build pass and its log line (`built`, `duration_ms`, `outcome`). A
/// failed pass fails nothing: until a card exists the lookup reads the tables.
pub async fn run_pass(state: &AppState, stop: &watch::Receiver<bool>) {
    let t0 = Instant::now();
    match build_pass(state, stop).await {
        Ok(built) => tracing::info!(
            built,
            duration_ms = t0.elapsed().as_millis() as u64,
            outcome = "ok",
            "product cards"
        ),
        Err(e) => tracing::warn!(
            duration_ms = t0.elapsed().as_millis() as u64,
            outcome = "failed",
            error = %e,
            "product cards: the POS lookup reads the tables until a later pass builds them"
        ),
    }
}

/// Builds every missing or outdated card, batch after batch; stops early
/// (with what is built so far) when lojad stops. Ends: each batch starts
/// strictly after the last barcode the previous one looked at.
pub async fn build_pass(state: &AppState, stop: &watch::Receiver<bool>) -> Result<usize, String> {
    let mut after = String::new();
    let mut built = 0;
    while !*stop.borrow() {
        let catalog = state.catalog.clone();
        let store = state.config.store.id.clone();
        let from = after.clone();
        let batch = crate::priority::background("cards", move || {
            lock(&catalog).build_cards(&store, &from, BATCH)
        })
        .await?
        .map_err(|e| e.to_string())?;
        built += batch.built;
        match batch.next {
            Some(next) => after = next,
            None => break,
        }
    }
    Ok(built)
}
