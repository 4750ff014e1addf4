//! The operator console (`/console`) of a real `retaguarda-server`, in
//! headless Chromium driven through ChromeDriver (the W3C WebDriver
//! protocol, spoken here over HTTP with reqwest): an admin signs in, walks
//! every page, does one action per page (store exception, resend a
//! rejected document, reassign an omni order, print its picking list,
//! pause a release's rollout, switch a store's integration off, set
//! availability minutes, create an account, read the audit), switches to
//! English; a viewer sees no action and a forged one is refused (403,
//! audited). Screenshots of every page go to `target/console-screenshots/`.
//!
//! Chromium is `LOJA_CHROMIUM`, else `chromium` on the PATH; ChromeDriver
//! is `LOJA_CHROMEDRIVER`, else `chromedriver` (scripts/test installs
//! Debian's `chromium` and `chromium-driver`). Without them the test skips,
//! or fails when `CI` is set (see `external`). Every wait is bounded;
//! everything listens on 127.0.0.1 on ports picked at run time.

mod external;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loja_e2e::central::Central;
use loja_e2e::scratch::ScratchDir;
use loja_protocol::{Document, DocumentBatch, DocumentKind};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const A: (&str, &str) = ("loja-a", "token-loja-a");
const B: (&str, &str) = ("loja-b", "token-loja-b");
const ADMIN: (&str, &str) = ("ana", "senha-da-ana-123");
const VIEWER: (&str, &str) = ("vera", "senha-da-vera-123");
/// Bound on ChromeDriver's start and on one WebDriver command.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on waiting for a page after a click.
const WAIT: Duration = Duration::from_secs(30);
/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An executable: `$env_var` when set, else `name` found on the PATH.
fn tool(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// ChromeDriver as a child process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_driver(chromedriver: &Path, http: &reqwest::Client) -> anyhow::Result<Driver> {
    let port = free_port()?;
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", chromedriver.display()))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == json!(true)
        {
            return Ok(driver);
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            bail!("chromedriver did not answer /status within {DRIVER_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    session: String,
    shots: PathBuf,
}

impl Browser {
    async fn open(
        driver: &Driver,
        http: &reqwest::Client,
        chromium: &Path,
        profile: &Path,
        shots: PathBuf,
    ) -> anyhow::Result<Browser> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 30_000, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": chromium,
                // A Brazilian browser: the console answers in its default language.
                "prefs": {"intl.accept_languages": "pt-BR,pt"},
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,900", "--lang=pt-BR",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let Some(id) = v["value"]["sessionId"].as_str() else {
            bail!("chromedriver did not open a session: {v}");
        };
        Ok(Browser {
            http: http.clone(),
            session: format!("{}/session/{id}", driver.url),
            shots,
        })
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == Method::POST {
            req = req.json(&json!({}));
        }
        let v: Value = req.send().await?.json().await?;
        if v["value"]["error"].is_string() {
            bail!("webdriver {method} {path}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(Method::POST, "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .cmd(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element id for {css}: {v}"))
    }

    async fn count(&self, css: &str) -> anyhow::Result<usize> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array().map_or(0, Vec::len))
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.cmd(Method::POST, &format!("/element/{el}/click"), None)
            .await
            .map(drop)
    }

    async fn type_in(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.cmd(
            Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        let el = self.find(css).await?;
        let v = self
            .cmd(Method::GET, &format!("/element/{el}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or("").to_owned())
    }

    /// Waits (bounded) until `css`'s text contains `needle`: a click that
    /// posts a form returns before the next page is there.
    async fn wait_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            if let Ok(t) = self.text(css).await
                && t.contains(needle)
            {
                return Ok(t);
            }
            if started.elapsed() > WAIT {
                let page = self.body().await.unwrap_or_default();
                bail!("{css} never showed {needle:?} within {WAIT:?}; the page: {page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until the URL contains `part`.
    async fn wait_url(&self, part: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let url = self.url().await.unwrap_or_default();
            if url.contains(part) {
                return Ok(());
            }
            if started.elapsed() > WAIT {
                bail!("the URL never had {part:?} within {WAIT:?}: {url}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the page.
    async fn body(&self) -> anyhow::Result<String> {
        self.text("body").await
    }

    async fn url(&self) -> anyhow::Result<String> {
        let v = self.cmd(Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or("").to_owned())
    }

    async fn run(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let v = self.cmd(Method::GET, "/screenshot", None).await?;
        let png = base64(v.as_str().context("screenshot is not a string")?)?;
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }

    /// Prints the page to PDF (Chromium's print, with the print CSS).
    async fn pdf(&self, name: &str) -> anyhow::Result<()> {
        let v = self
            .cmd(Method::POST, "/print", Some(json!({"background": false})))
            .await?;
        let pdf = base64(v.as_str().context("print is not a string")?)?;
        std::fs::write(self.shots.join(format!("{name}.pdf")), pdf)?;
        Ok(())
    }

    async fn cookie(&self, name: &str) -> anyhow::Result<String> {
        let v = self
            .cmd(Method::GET, &format!("/cookie/{name}"), None)
            .await?;
        Ok(v["value"].as_str().unwrap_or("").to_owned())
    }

    async fn close(&self) {
        let _ = self.cmd(Method::DELETE, "", None).await;
    }
}

/// Standard base64 (WebDriver's screenshots).
fn base64(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => bail!("not base64: {c}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn cash_open(store_seq: u64) -> Document {
    Document {
        id: Uuid::new_v4(),
        kind: DocumentKind::CashOpen,
        register: "PDV01".into(),
        store_seq,
        accepted_at: "2026-11-26T12:00:00Z".into(),
        body: json!({"register": "PDV01", "operator": "001", "opening_amount": 10000,
                     "opened_at": "2026-11-26T12:00:00Z"}),
        reoffer: false,
        reconciliation: None,
        replaces: None,
    }
}

/// Two days old: overdue.
fn old_order() -> Value {
    let now = loja_protocol::time::parse(&loja_protocol::time::now_rfc3339()).unwrap();
    let created = loja_protocol::time::format(now - Duration::from_secs(48 * 3_600));
    json!({"id": "o1", "number": "70001", "channel": "site", "delivery": "pickup",
           "paid": true, "payments": [{"method": "PIX", "amount": 123456}],
           "created_at": created, "store": A.0, "customer_document": "12345678909",
           "lines": [{"line_id": "1", "product_code": "789100", "qty": 2000, "unit_price": 50000, "total": 100000},
                     {"line_id": "2", "product_code": "789200", "qty": 1500, "unit_price": 15637, "total": 23456}]})
}

async fn admin(central: &Central, method: Method, path: &str, body: Option<Value>) -> Value {
    let a = central.admin(method, path, body).await.unwrap();
    assert!(
        (200..300).contains(&a.status),
        "{path}: {} {}",
        a.status,
        a.body
    );
    a.body
}

async fn sign_in(b: &Browser, base: &str, who: (&str, &str)) -> anyhow::Result<()> {
    b.goto(&format!("{base}/console/login?lang=pt-BR")).await?;
    b.type_in("#username", who.0).await?;
    b.type_in("#password", who.1).await?;
    b.click("#sign-in").await?;
    b.wait_url("/console/stores").await
}

fn audit_lines(central: &Central) -> Vec<(String, String, String, String)> {
    let c = rusqlite::Connection::open(central.db_path()).unwrap();
    let mut stmt = c
        .prepare("SELECT username, action, target, outcome FROM console_audit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() -> anyhow::Result<()> {
    let name = "console_in_a_real_browser";
    let how = "apt-get install chromium chromium-driver (scripts/test does), or set LOJA_CHROMIUM and LOJA_CHROMEDRIVER";
    let Some(chromium) = tool("LOJA_CHROMIUM", "chromium") else {
        external::missing(name, "chromium is not on the PATH", how);
        return Ok(());
    };
    let Some(chromedriver) = tool("LOJA_CHROMEDRIVER", "chromedriver") else {
        external::missing(name, "chromedriver is not on the PATH", how);
        return Ok(());
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .context("target dir")?
        .join("console-screenshots");
    std::fs::create_dir_all(&shots)?;

    // A central with two stores, a catalogue, documents (one rejected by
    // the ERP, one processed) and an overdue omni order.
    let central = Central::builder()
        .store(A.0, "master", A.1)
        .store(B.0, "master", B.1)
        .catalog(200, 20)
        .start()?;
    let base = central.url().to_owned();
    central.feed(A.0, A.1, "products", 0, 50).await?;
    let docs: Vec<Document> = (1..=3).map(cash_open).collect();
    let ids: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
    central
        .post_documents(A.0, A.1, &DocumentBatch { documents: docs })
        .await?;
    let queue = central.documents(0, 100).await?;
    let next_after_first_read = queue["next"].as_u64().context("next")?;
    admin(
        &central,
        Method::POST,
        "/v1/admin/documents/verdicts",
        Some(json!({"verdicts": [
            {"id": ids[0], "status": "rejected", "code": "E-OPER", "message": "Operador 001 sem cadastro no ERP"},
            {"id": ids[1], "status": "processed"}]})),
    )
    .await;
    admin(
        &central,
        Method::POST,
        "/v1/admin/omni/orders",
        Some(old_order()),
    )
    .await;

    // A release in its rollout (as `release publish` leaves it): loja-a
    // reported it installed, loja-b downloaded it and has not reported.
    {
        let c = rusqlite::Connection::open(central.db_path())?;
        c.busy_timeout(Duration::from_secs(30))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        c.execute(
            "INSERT INTO releases (sequence, version, manifest, waves, started_at) VALUES (1, '0.9.0', '{}', '0s:100', ?1)",
            [now],
        )?;
        c.execute(
            "INSERT INTO release_reports (store, to_version, from_version, result, at) VALUES ('loja-a', '0.9.0', '0.8.0', 'ok', ?1)",
            [now],
        )?;
        c.execute(
            "INSERT INTO release_fetches (store, sequence, at) VALUES ('loja-b', 1, ?1)",
            [now],
        )?;
    }
    // loja-a reports its outbox backlog on a request it makes anyway.
    let r = central
        .client()
        .get(format!("{base}/v1/stores/{}/feeds/states?after=0", A.0))
        .bearer_auth(A.1)
        .header("Loja-Outbox", "pending=4; failed=1")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);

    // Accounts: only with the admin token.
    let no_token = central
        .client()
        .post(format!("{base}/v1/admin/console/users"))
        .json(&json!({"username": "x", "password": "0123456789", "role": "admin"}))
        .send()
        .await?;
    assert_eq!(no_token.status().as_u16(), 401);
    for (who, role) in [(ADMIN, "admin"), (VIEWER, "viewer")] {
        admin(
            &central,
            Method::POST,
            "/v1/admin/console/users",
            Some(json!({"username": who.0, "password": who.1, "role": role})),
        )
        .await;
    }
    let short = central
        .admin(
            Method::POST,
            "/v1/admin/console/users",
            Some(json!({"username": "bob", "password": "short", "role": "viewer"})),
        )
        .await?;
    assert_eq!(short.status, 422, "{}", short.body);

    let http = reqwest::Client::builder()
        .timeout(DRIVER_TIMEOUT)
        .no_proxy()
        .build()?;
    let driver = start_driver(&chromedriver, &http).await?;
    let profile = ScratchDir::new("console-chromium");
    let b = Browser::open(&driver, &http, &chromium, &profile, shots.clone()).await?;
    let result = walk(&b, &central, &base, ids[0], next_after_first_read).await;
    if result.is_err() {
        let _ = b.screenshot("failure").await;
        eprintln!("central log:\n{}", central.log());
    }
    b.close().await;
    result?;
    eprintln!("{name}: screenshots in {}", shots.display());
    Ok(())
}

async fn walk(
    b: &Browser,
    central: &Central,
    base: &str,
    rejected: Uuid,
    queue_next: u64,
) -> anyhow::Result<()> {
    // Not signed in: to the sign-in page. A wrong password says so.
    b.goto(&format!("{base}/console/stores")).await?;
    assert!(b.url().await?.contains("/console/login"));
    b.type_in("#username", ADMIN.0).await?;
    b.type_in("#password", "not the password").await?;
    b.click("#sign-in").await?;
    b.wait_text("#signin-error", "incorretos").await?;
    b.screenshot("01-sign-in").await?;

    // Stores, trouble first: loja-b never connected, loja-a has a rejection.
    sign_in(b, base, ADMIN).await?;
    let page = b.body().await?;
    assert!(
        page.contains("Lojas") && page.contains("com problema primeiro"),
        "{page}"
    );
    let rows = b
        .run(
            "return [...document.querySelectorAll('#stores tbody tr td:nth-child(2)')].map(td => td.innerText)",
            json!([]),
        )
        .await?;
    assert_eq!(rows, json!([B.0, A.0]), "trouble first");
    assert!(
        page.contains("Nunca conectou") && page.contains("Rejeições"),
        "{page}"
    );
    // Requests and bytes the central counted, the backlog loja-a reported.
    let outbox = b
        .text(&format!("tr[data-store='{}'] td.outbox", A.0))
        .await?;
    assert!(outbox.contains("4 pendentes, 1 com falha"), "{outbox}");
    let traffic = b
        .text(&format!("tr[data-store='{}'] td.traffic", A.0))
        .await?;
    assert!(
        traffic.contains("req.") && !traffic.starts_with("0 "),
        "{traffic}"
    );
    b.screenshot("02-stores").await?;

    // A store's page; action: release it from the availability window.
    b.click(&format!("a[href='/console/stores/{}']", A.0))
        .await?;
    let page = b
        .wait_text("body", "Operador 001 sem cadastro no ERP")
        .await?;
    assert!(page.contains("products"), "{page}");
    b.click("form[action$='/exception'] button").await?;
    b.wait_text("#exception-state", "sem esperar").await?;
    let ex = admin(central, Method::GET, "/v1/admin/exceptions", None).await;
    assert!(ex.to_string().contains(A.0), "{ex}");
    b.screenshot("03-store").await?;

    // Documents: the rejected ones with their message; action: resend.
    b.goto(&format!("{base}/console/documents?status=rejected"))
        .await?;
    let page = b.body().await?;
    assert!(
        page.contains("E-OPER: Operador 001 sem cadastro no ERP"),
        "{page}"
    );
    assert_eq!(b.count("#documents tbody tr").await?, 1);
    b.screenshot("04-documents-rejected").await?;
    b.click(&format!("tr[data-id='{rejected}'] form button"))
        .await?;
    b.wait_url("status=pending").await?;
    b.wait_text(&format!("tr[data-id='{rejected}']"), "Aguardando ERP")
        .await?;
    // The ERP gets it again, at the end of its queue.
    let again = central.documents(queue_next, 100).await?;
    assert!(again.to_string().contains(&rejected.to_string()), "{again}");
    b.screenshot("05-documents-resent").await?;

    // Omni orders: the overdue one first; action: reassign to loja-b.
    b.goto(&format!("{base}/console/orders")).await?;
    let page = b.body().await?;
    assert!(
        page.contains("70001") && page.contains("Atrasado"),
        "{page}"
    );
    assert!(page.contains("R$ 1.234,56"), "money in pt-BR: {page}");
    b.screenshot("06-orders").await?;
    b.run(
        "document.querySelector(\"tr[data-id='o1'] form.reassign input[name=store]\").value = arguments[0]",
        json!([B.0]),
    )
    .await?;
    b.click("tr[data-id='o1'] form.reassign button").await?;
    let started = Instant::now();
    loop {
        let order = admin(central, Method::GET, "/v1/admin/omni/orders/o1", None).await;
        let lines = order["order"]["lines"].as_array().context("lines")?;
        if lines.iter().all(|l| l["store"] == json!(B.0)) {
            break;
        }
        assert!(started.elapsed() < WAIT, "not reassigned: {order}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_url("/console/orders").await?;

    // The picking list, printable (the PDF is Chromium's print of it).
    b.goto(&format!("{base}/console/orders/o1/picking")).await?;
    let page = b.body().await?;
    assert!(
        page.contains("789100") && page.contains("1,5") && page.contains("Retira na loja"),
        "{page}"
    );
    assert_eq!(b.text("#ordernumber").await?, "70001");
    b.screenshot("07-picking").await?;
    b.pdf("07-picking").await?;

    // Rollouts: the release's wave with loja-a updated and loja-b in
    // trial; action: pause it (a paused release is offered to no store).
    b.goto(&format!("{base}/console/rollouts")).await?;
    let page = b.body().await?;
    assert!(
        page.contains("Versão 0.9.0") && page.contains("Em andamento"),
        "{page}"
    );
    let wave = b
        .run(
            "return [...document.querySelectorAll(\"section[data-sequence='1'] tr.wave td\")].map(td => td.innerText)",
            json!([]),
        )
        .await?;
    // wave, released after, stores, updated, in trial, rolled back, failed, waiting
    let wave: Vec<String> = serde_json::from_value(wave)?;
    assert_eq!(wave[2..], ["2", "1", "1", "0", "0", "0"], "{wave:?}");
    b.screenshot("08-rollouts").await?;
    b.click("section[data-sequence='1'] form button").await?;
    b.wait_text("section[data-sequence='1'] .release-state", "Pausada")
        .await?;
    let releases = admin(central, Method::GET, "/v1/admin/releases", None).await;
    assert_eq!(releases[0]["paused"], json!(true), "{releases}");
    b.screenshot("08-rollouts-paused").await?;

    // Switches & schedules; action: loja-b's integration off (the nearest
    // level wins: only loja-b), then 15 minutes of products for the chain.
    b.goto(&format!("{base}/console/switches")).await?;
    assert!(
        b.text("#integration-levels")
            .await?
            .contains("ligada em todas"),
        "nothing set yet"
    );
    b.run(
        "const f = document.getElementById('set-integration');
         f.node.value = arguments[0]; f.state.value = 'off';",
        json!([B.0]),
    )
    .await?;
    b.click("#set-integration button").await?;
    b.wait_text("#integration-off", B.0).await?;
    assert!(b.text("#integration-levels").await?.contains("Desligada"));
    b.goto(&format!("{base}/console/stores/{}", B.0)).await?;
    b.wait_text("#store-integration", "Desligada").await?;
    b.goto(&format!("{base}/console/stores/{}", A.0)).await?;
    b.wait_text("#store-integration", "Ligada").await?;
    b.goto(&format!("{base}/console/switches")).await?;
    b.run(
        "const f = document.getElementById('set-availability');
         f.entity.value = 'products'; f.node.value = 'master'; f.minutes.value = '15';",
        json!([]),
    )
    .await?;
    b.click("#set-availability button").await?;
    b.wait_text("tr[data-entity='products']", "Rede toda: 15 min")
        .await?;
    b.screenshot("08-switches").await?;

    // Users: the accounts; action: create an operator.
    b.goto(&format!("{base}/console/users")).await?;
    assert!(
        b.text(&format!("tr[data-user='{}']", ADMIN.0))
            .await?
            .contains("(você)")
    );
    b.run(
        "const f = document.getElementById('create-user');
         f.username.value = 'otto'; f.password.value = 'senha-do-otto-123'; f.role.value = 'operator';",
        json!([]),
    )
    .await?;
    b.click("#create-user button").await?;
    b.wait_text("tr[data-user='otto']", "operador").await?;
    b.screenshot("08-users").await?;

    // Audit: every action so far.
    b.goto(&format!("{base}/console/audit")).await?;
    let page = b.body().await?;
    for action in [
        "sign_in",
        "exception_add",
        "resend",
        "reassign",
        "release_pause",
        "set_integration",
        "set_availability",
        "user_create",
    ] {
        assert!(page.contains(action), "{action} not in the audit: {page}");
    }
    b.screenshot("09-audit").await?;

    // English on request, remembered.
    b.goto(&format!("{base}/console/stores?lang=en")).await?;
    assert!(b.body().await?.contains("trouble first"));
    b.goto(&format!("{base}/console/orders")).await?;
    let page = b.body().await?;
    assert!(
        page.contains("Omni sales orders") && page.contains("R$ 1,234.56"),
        "{page}"
    );
    b.screenshot("10-orders-en").await?;
    b.goto(&format!("{base}/console/stores?lang=pt-BR")).await?;

    // A POST without the session's form token is refused, even signed in.
    let session = b.cookie("loja_console").await?;
    assert_eq!(session.len(), 64);
    let forged = central
        .client()
        .post(format!("{base}/console/stores/{}/exception", B.0))
        .header("cookie", format!("loja_console={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=wrong&set=on")
        .send()
        .await?;
    assert_eq!(forged.status().as_u16(), 403);

    // Sign out; the viewer signs in: no action anywhere, a forged one is
    // refused (403) and audited, the audit page is closed to it.
    b.click("form[action='/console/logout'] button").await?;
    b.wait_url("/console/login").await?;
    sign_in(b, base, VIEWER).await?;
    for page in [
        "/console/stores/loja-a",
        "/console/documents",
        "/console/orders",
        "/console/rollouts",
        "/console/switches",
    ] {
        b.goto(&format!("{base}{page}")).await?;
        // The only form a viewer gets is the sign-out (and the filters, GET).
        assert_eq!(
            b.count("main form[method='post']").await?,
            0,
            "{page} offers a viewer an action"
        );
    }
    b.goto(&format!("{base}/console/stores/{}", A.0)).await?;
    b.screenshot("11-viewer-store").await?;
    b.run(
        "const csrf = document.querySelector('input[name=csrf]').value;
         const f = document.createElement('form');
         f.method = 'post'; f.action = '/console/stores/loja-a/exception';
         for (const [k, v] of [['csrf', csrf], ['set', 'off']]) {
           const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit();",
        json!([]),
    )
    .await?;
    // f.submit() navigates; wait (bounded) for the refusal page.
    let started = Instant::now();
    loop {
        let page = b.body().await.unwrap_or_default();
        if page.contains("Seu perfil não permite") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no refusal: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot("12-viewer-refused").await?;
    let ex = admin(central, Method::GET, "/v1/admin/exceptions", None).await;
    assert!(ex.to_string().contains(A.0), "the viewer changed it: {ex}");
    b.goto(&format!("{base}/console/audit")).await?;
    assert!(b.body().await?.contains("Seu perfil não permite"));
    b.goto(&format!("{base}/console/users")).await?;
    assert!(b.body().await?.contains("Seu perfil não permite"));
    // A forged resume of the paused release and a forged integration
    // switch: refused (403), audited, nothing changed.
    let viewer_session = b.cookie("loja_console").await?;
    b.goto(&format!("{base}/console/rollouts")).await?;
    let csrf = b
        .run(
            "return document.querySelector('input[name=csrf]').value",
            json!([]),
        )
        .await?;
    let csrf = csrf.as_str().context("csrf")?.to_owned();
    for (path, body) in [
        ("/console/rollouts/1/control", "what=resume".to_string()),
        (
            "/console/switches/integration",
            format!("node={}&state=on", B.0),
        ),
        ("/console/users/otto/disable", String::new()),
    ] {
        let forged = central
            .client()
            .post(format!("{base}{path}"))
            .header("cookie", format!("loja_console={viewer_session}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&{body}"))
            .send()
            .await?;
        assert_eq!(forged.status().as_u16(), 403, "{path}");
    }
    let releases = admin(central, Method::GET, "/v1/admin/releases", None).await;
    assert_eq!(releases[0]["paused"], json!(true), "{releases}");

    let lines = audit_lines(central);
    let has = |user: &str, action: &str, outcome: &str| {
        lines
            .iter()
            .any(|(u, a, _, o)| u == user && a == action && o == outcome)
    };
    assert!(has(ADMIN.0, "sign_in", "failed"), "{lines:?}");
    assert!(has(ADMIN.0, "exception_add", "ok"), "{lines:?}");
    assert!(has(ADMIN.0, "exception_add", "denied_csrf"), "{lines:?}");
    assert!(has(VIEWER.0, "exception_remove", "denied"), "{lines:?}");
    assert!(has(VIEWER.0, "view_audit", "denied"), "{lines:?}");
    assert!(has(VIEWER.0, "view_users", "denied"), "{lines:?}");
    assert!(has(VIEWER.0, "release_resume", "denied"), "{lines:?}");
    assert!(has(VIEWER.0, "set_integration", "denied"), "{lines:?}");
    assert!(has(VIEWER.0, "user_disable", "denied"), "{lines:?}");
    assert!(has(ADMIN.0, "release_pause", "ok"), "{lines:?}");
    assert!(has(ADMIN.0, "set_integration", "ok"), "{lines:?}");
    assert!(has(ADMIN.0, "user_create", "ok"), "{lines:?}");
    // No password or session id in the log.
    let log = central.log();
    for secret in [ADMIN.1, VIEWER.1, session.as_str()] {
        assert!(!log.contains(secret), "a secret in the central's log");
    }
    Ok(())
}
