//! The status page of a real `lojad` (synced from a real central), loaded in
//! headless Chromium: the job table is there, with rows, filled by the
//! page's own script; `/metrics` and `/status.json` answer beside it. The
//! page speaks Brazilian Portuguese by default (dates dd/mm/aaaa, money
//! R$ 1.234,56 from integer centavos) and English with `?lang=en`.
//!
//! Chromium is `LOJA_CHROMIUM`, else the first of `chromium`,
//! `chromium-browser`, `google-chrome` on the PATH that runs (scripts/test
//! installs Debian's). Without one the test skips, or fails when `CI` is set
//! (see `external`).

mod external;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::scratch::ScratchDir;
use loja_e2e::store::{POS_TOKEN, Store};
use serde_json::json;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
/// Bound on one Chromium run.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> Option<String> {
    if let Some(p) = std::env::var("LOJA_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Some(p);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .map(str::to_owned)
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// `chromium --headless --dump-dom URL`: the DOM after the page's scripts
/// ran (virtual time lets its fetch and timers run without waiting).
fn dump_dom(browser: &str, url: &str) -> anyhow::Result<String> {
    let profile = ScratchDir::new("chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = out.join().unwrap_or_default();
    let log = err.join().unwrap_or_default();
    anyhow::ensure!(
        status.success() && !dom.is_empty(),
        "chromium failed ({status}): {log}"
    );
    Ok(dom)
}

/// The inner HTML of the element that starts at `<TAG id="ID"`.
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("<{tag} id=\"{id}\""))?;
    let end = dom[start..].find(&format!("</{tag}>"))?;
    Some(&dom[start..start + end])
}

/// Whether `text` holds a date shaped like `pattern` (`d` a digit, any
/// other character itself): `dd/dd/dddd` or `dddd-dd-dd`.
fn has_date(text: &str, pattern: &str) -> bool {
    let (t, p) = (text.as_bytes(), pattern.as_bytes());
    t.windows(p.len()).any(|w| {
        w.iter().zip(p).all(|(c, want)| {
            if *want == b'd' {
                c.is_ascii_digit()
            } else {
                c == want
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_jobs_in_a_browser() {
    let Some(browser) = chromium() else {
        external::missing(
            "status_page",
            "no chromium found",
            "apt-get install -y chromium (scripts/test does), or set LOJA_CHROMIUM to a \
             Chromium binary",
        );
        return;
    };
    let central = Central::builder()
        .catalog(300, 30)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.expect("release");
    let store = Store::builder(central.url(), STORE, TOKEN)
        .start()
        .expect("lojad starts");
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .expect("initial sync");
    let base = store.pos_url().expect("pos url");

    // The page's data needs no token; /v1/status does.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let status: serde_json::Value = client
        .get(format!("{base}/status.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["store_id"], STORE);
    let jobs = status["jobs"].as_array().expect("jobs");
    assert!(
        jobs.iter()
            .any(|j| j["code"] == "PRD" || j["subject"] == "products"),
        "{status}"
    );
    let r = client
        .get(format!("{base}/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/v1/status"))
        .bearer_auth(POS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lojad_job_last_run_timestamp_seconds{job="),
        "{metrics}"
    );
    assert!(
        metrics.contains("lojad_replica_rows{entity=\"products\"} 300"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lojad_outbox_documents{state=\"pending\"}"),
        "{metrics}"
    );

    // A cash session closed R$ 1.234,56 short: opened with R$ 2.000,00, no
    // sale, R$ 765,44 counted.
    let session = uuid::Uuid::new_v4();
    let a = store
        .pos_post(
            "/v1/cash/open",
            &json!({"id": session, "register": "PDV01", "operator": "001",
                    "opening_amount": 200_000, "opened_at": "2026-11-30T08:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{:?}", a.body);
    let a = store
        .pos_post(
            "/v1/cash/close",
            &json!({"id": uuid::Uuid::new_v4(), "register": "PDV01", "session_id": session,
                    "operator": "001", "counted_amount": 76_544,
                    "closed_at": "2026-11-30T20:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{:?}", a.body);
    // The report lists it (bounded: it is refreshed behind a short cache).
    let started = Instant::now();
    loop {
        let r: serde_json::Value = client
            .get(format!("{base}/status.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["cash_checks"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no cash check in the report: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let url = format!("{base}/");
    let b2 = browser.clone();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b2, &url))
        .await
        .unwrap()
        .expect("chromium");
    // Brazilian Portuguese by default, from the catalogue.
    assert!(dom.contains("<html lang=\"pt-BR\""), "{dom}");
    assert!(dom.contains("<h2>Tarefas</h2>"), "{dom}");
    let checks = element(&dom, "table", "checks").expect("checks table");
    assert!(
        checks.contains("fechamento de caixa") && checks.contains("falta R$ 1.234,56"),
        "{checks}"
    );
    assert!(
        dom.contains("id=\"integration\">ligada</div>"),
        "the integration card: {dom}"
    );
    let table = element(&dom, "table", "jobs").unwrap_or_else(|| panic!("no job table in:\n{dom}"));
    let rows = table.matches("<tr>").count() - 1; // less the header row
    assert!(
        rows >= jobs.len().min(5) && rows > 0,
        "job table has {rows} rows:\n{table}"
    );
    assert!(table.contains("products"), "{table}");
    assert!(table.contains("pill o-ok"), "a job ran ok: {table}");
    // The script refreshed the page from /status.json (it stamps the body).
    assert!(
        dom.contains("data-updated=\""),
        "the page's script did not run:\n{dom}"
    );
    let replica = element(&dom, "table", "replica").expect("replica table");
    assert!(replica.contains("products"), "{replica}");
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "the page shows an error:\n{dom}"
    );
    assert!(
        has_date(table, "dd/dd/dddd dd:dd:dd"),
        "dates dd/mm/aaaa: {table}"
    );
    assert!(table.contains(">ok<"), "{table}");

    // English on request.
    let url = format!("{base}/?lang=en");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
        .await
        .unwrap()
        .expect("chromium");
    assert!(dom.contains("<html lang=\"en\""), "{dom}");
    assert!(dom.contains("<h2>Jobs</h2>"), "{dom}");
    let checks = element(&dom, "table", "checks").expect("checks table");
    assert!(
        checks.contains("cash close") && checks.contains("short R$ 1,234.56"),
        "{checks}"
    );
    let table = element(&dom, "table", "jobs").expect("job table");
    assert!(has_date(table, "dddd-dd-dd dd:dd:dd"), "{table}");
}
