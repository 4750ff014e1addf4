//! `lojad status` while the daemon is down tells the truth about failing
//! jobs: `consecutive_failures` comes from the integration log on disk (the
//! daemon's count is gone with it), and a daemon started again counts on
//! from there.

use std::collections::BTreeMap;
use std::time::Duration;

use loja_e2e::store::{LogRun, Store, tail, wait_for};

/// Per job code: failed runs since its last run that did not fail.
fn trailing_failures(runs: &[LogRun]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (code, outcome, _, _) in runs {
        let n = out.entry(code.clone()).or_default();
        *n = if outcome == "failed" { *n + 1 } else { 0 };
    }
    out
}

fn status_failures(store: &Store) -> BTreeMap<String, u64> {
    let status = store.status_json().unwrap();
    status["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["code"].as_str().unwrap_or_default().to_owned(),
                j["consecutive_failures"]
                    .as_u64()
                    .expect("consecutive_failures"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_status_shows_the_failures_on_disk() {
    // A central that is not there: every download fails, then retries
    // after its backoff (2 s, 4 s…).
    let dead = format!("http://127.0.0.1:{}", loja_e2e::free_port());
    let mut store = Store::builder(&dead, "loja1", "token-loja1")
        .timeout_secs(2)
        .push(false)
        .start()
        .unwrap();
    wait_for(
        "a download failed twice in a row",
        Duration::from_secs(60),
        || async {
            let runs = store.log_runs()?;
            Ok(trailing_failures(&runs)
                .values()
                .any(|n| *n >= 2)
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", tail(&store.log(), 30)));
    store.kill();

    let on_disk = trailing_failures(&store.log_runs().unwrap());
    let shown = status_failures(&store);
    let mut checked = 0;
    for (code, n) in &on_disk {
        if let Some(s) = shown.get(code) {
            assert_eq!(
                s, n,
                "{code}: status shows {s}, the log has {n} failed runs in a row"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0 && on_disk.values().any(|n| *n >= 2),
        "{on_disk:?} {shown:?}"
    );
}
