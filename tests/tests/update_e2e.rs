//! End to end (issue 18): signed, staged auto-update with a health check
//! and rollback, between a real central and a real lojad started by a small
//! supervisor that does what the systemd unit does (`lojad launch`, started
//! again whenever it exits, `RestartSec` shortened to 300 ms).
//!
//! "Releases" here: the good one is a stripped copy of the e2e lojad binary
//! itself, installed as a higher version (the launcher tells a version its
//! name through `LOJAD_INSTALLED_VERSION`: same code, another version, see
//! docs/update.md); the bad ones are small shell scripts (one exits at
//! start, one runs lojad on an empty data dir, so the real product lookup
//! of the health check fails).
//!
//! - a good release reaches the store, runs and reports healthy; a release
//!   that exits at start and one that fails the lookup both roll back with
//!   the data intact, are reported, and the first pauses its wave by itself;
//! - a tampered artifact, a manifest signed by a key the root never signed,
//!   and a replayed older manifest are refused;
//! - kill -9 while the switch is decided and while the new version proves
//!   itself: the store always starts again, on the old or the new version.
//!
//! Prints the figures of docs/benchmarks.md (`--nocapture`; set
//! `LOJA_E2E_UPDATE_ARTIFACT` to a stripped release build to publish that
//! as the good release).

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loja_e2e::central::{Central, server_bin};
use loja_e2e::scratch::ScratchDir;
use loja_e2e::store::{POS_TOKEN, Store, tail, wait_for};
use serde_json::{Value, json};
use uuid::Uuid;

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
const WAIT: Duration = Duration::from_secs(60);
/// Starts the supervisor allows before it gives up (a runaway loop ends).
const MAX_STARTS: u32 = 40;

/// `lojad launch`, restarted whenever it exits, as systemd does.
struct Supervisor {
    child: Arc<Mutex<Option<Child>>>,
    addr: Arc<Mutex<Option<String>>>,
    exits: Arc<Mutex<Vec<Option<i32>>>>,
    starts: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
}

impl Supervisor {
    fn start(config: &Path, log: PathBuf) -> Supervisor {
        let child: Arc<Mutex<Option<Child>>> = Arc::default();
        let addr: Arc<Mutex<Option<String>>> = Arc::default();
        let exits: Arc<Mutex<Vec<Option<i32>>>> = Arc::default();
        let starts = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, a, e, s, st, cfg, lg) = (
            child.clone(),
            addr.clone(),
            exits.clone(),
            starts.clone(),
            stop.clone(),
            config.to_owned(),
            log.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) && s.load(Ordering::SeqCst) < MAX_STARTS {
                let n = s.fetch_add(1, Ordering::SeqCst) + 1;
                let mut logf = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&lg)
                    .unwrap();
                writeln!(logf, "---- supervisor start #{n} ----").unwrap();
                let mut ch = Command::new(loja_e2e::lojad())
                    .arg("--config")
                    .arg(&cfg)
                    .arg("launch")
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .env_remove("LOJAD_CONFIG")
                    .env_remove("LOJAD_INSTALLED_VERSION")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::from(logf.try_clone().unwrap()))
                    .spawn()
                    .unwrap();
                let out = ch.stdout.take().unwrap();
                let a2 = a.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if let Some(rest) = line.split("POS API listening on http://").nth(1) {
                            *a2.lock().unwrap() =
                                Some(rest.split_whitespace().next().unwrap_or("").to_owned());
                        }
                        let _ = writeln!(logf, "{line}");
                    }
                });
                *c.lock().unwrap() = Some(ch);
                let code = loop {
                    if st.load(Ordering::SeqCst) {
                        break None;
                    }
                    let mut guard = c.lock().unwrap();
                    let done = guard.as_mut().and_then(|ch| ch.try_wait().ok().flatten());
                    if let Some(status) = done {
                        guard.take();
                        break Some(status.code());
                    }
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(20));
                };
                *a.lock().unwrap() = None;
                match code {
                    Some(code) => e.lock().unwrap().push(code),
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Supervisor {
            child,
            addr,
            exits,
            starts,
            stop,
            thread: Some(thread),
            log,
        }
    }

    fn addr(&self) -> Option<String> {
        self.addr.lock().unwrap().clone()
    }

    /// SIGKILL of whatever runs now (the supervisor starts it again).
    fn kill9(&self) {
        if let Some(ch) = self.child.lock().unwrap().as_mut() {
            let _ = ch.kill();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut ch) = self.child.lock().unwrap().take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A central with a small catalog and one store, the release keys made and
/// the release key signed by the root; a store config that trusts the root.
struct Rig {
    central: Central,
    store: Store,
    keys: ScratchDir,
    sup: Option<Supervisor>,
}

fn server(args: &[&str]) -> String {
    let out = Command::new(server_bin().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "retaguarda-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Rig {
    async fn new() -> Rig {
        let central = Central::builder()
            .catalog(40, 10)
            .store(STORE, "master", TOKEN)
            .start()
            .unwrap();
        central.release_everything().await.unwrap();
        let keys = ScratchDir::new("release-keys");
        let root = keys.join("root.key");
        let rel = keys.join("release.key");
        let root_pub = server(&["release", "key", "create", "--out", root.to_str().unwrap()]);
        let rel_pub = server(&["release", "key", "create", "--out", rel.to_str().unwrap()]);
        let db = central.db_path().to_str().unwrap().to_owned();
        server(&[
            "release",
            "key",
            "sign",
            "--db",
            &db,
            "--root",
            root.to_str().unwrap(),
            "--key",
            &rel_pub,
            "--expires",
            "2999-01-01T00:00:00Z",
        ]);
        let install = keys.join("install");
        let rp = root_pub;
        let store = Store::builder(central.url(), STORE, TOKEN)
            // the update task every second; everything else as shipped
            .task(
                "update.toml",
                "code = \"UPD\"\nsubject = \"lojad\"\ndirection = \"update\"\nevery = \"1s\"\nactive = true\n",
            )
            .config(move |c| {
                c.with(move |cfg| {
                    cfg.update.root_key = Some(rp);
                    cfg.update.install_dir = Some(install);
                    // always inside the window
                    cfg.update.window = "00:00-00:00".into();
                    cfg.update.health_secs = 30;
                })
            })
            .build()
            .unwrap();
        Rig {
            central,
            store,
            keys,
            sup: None,
        }
    }

    fn install_dir(&self) -> PathBuf {
        self.keys.join("install")
    }

    fn start(&mut self) {
        self.sup = Some(Supervisor::start(
            self.store.config_path(),
            self.store.dir().join("supervised.log"),
        ));
    }

    fn sup(&self) -> &Supervisor {
        self.sup.as_ref().unwrap()
    }

    /// Publishes `artifact` as `version` to every store at once.
    fn publish(&self, version: &str, artifact: &Path) -> u64 {
        let out = server(&[
            "release",
            "publish",
            "--db",
            self.central.db_path().to_str().unwrap(),
            "--key",
            self.keys.join("release.key").to_str().unwrap(),
            "--version",
            version,
            "--artifact",
            &format!(
                "{}={}",
                loja_protocol::release::this_target(),
                artifact.display()
            ),
            "--waves",
            "0s:100",
        ]);
        let m: Value = serde_json::from_str(&out).unwrap();
        m["sequence"].as_u64().unwrap()
    }

    /// A shell script release.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.keys.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        path
    }

    /// The running lojad's version (its status page), when it answers.
    async fn version(&self) -> Option<String> {
        let addr = self.sup().addr()?;
        let resp = self
            .central
            .client()
            .get(format!("http://{addr}/status.json"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let v: Value = resp.json().await.ok()?;
        v["version"].as_str().map(str::to_owned)
    }

    async fn wait_version(&self, want: &str) {
        let r = wait_for(&format!("lojad running {want}"), WAIT, || async {
            Ok((self.version().await.as_deref() == Some(want)).then_some(()))
        })
        .await;
        if let Err(e) = r {
            panic!("{e}\n{}", tail(&self.sup().log(), 60));
        }
    }

    async fn pos(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let addr = self.sup().addr().expect("lojad is running");
        let mut req = self
            .central
            .client()
            .request(method, format!("http://{addr}{path}"))
            .bearer_auth(POS_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The central's report of `store` for `version`, once there is one.
    async fn report(&self, version: &str, result: &str) -> Value {
        let r = wait_for(&format!("a {result} report for {version}"), WAIT, || async {
            let db = rusqlite::Connection::open(self.central.db_path())?;
            let row: Option<(String, String, Option<String>)> = db
                .query_row(
                    "SELECT from_version, result, error FROM release_reports WHERE store = ?1 AND to_version = ?2",
                    rusqlite::params![STORE, version],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .ok();
            Ok(row
                .filter(|(_, r, _)| r == result)
                .map(|(from, result, error)| json!({"from": from, "result": result, "error": error})))
        })
        .await;
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}\n{}", tail(&self.sup().log(), 80)),
        }
    }

    /// `lojad update --status --json` (read from the files).
    fn update_status(&self) -> Value {
        let out = loja_e2e::run_lojad(self.store.config_path(), &["update", "--status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until the store's last update check said something containing `needle`.
    async fn outcome_contains(&self, needle: &str) -> String {
        let r = wait_for(
            &format!("an update check saying {needle:?}"),
            WAIT,
            || async {
                let s = self.update_status();
                let o = s["last_outcome"].as_str().unwrap_or("").to_owned();
                Ok(o.contains(needle).then_some(o))
            },
        )
        .await;
        match r {
            Ok(v) => v,
            Err(e) => panic!(
                "{e}\n{:#}\n{}",
                self.update_status(),
                tail(&self.sup().log(), 40)
            ),
        }
    }

    /// A store that synced its catalog, with a closed cash session in its
    /// outbox: what must survive every switch and rollback.
    async fn ready(&mut self) -> (u64, u64) {
        self.start();
        self.wait_version(env!("CARGO_PKG_VERSION")).await;
        wait_for("the catalog at the store", WAIT, || async {
            Ok((self.store.replica_count("products")? >= 40).then_some(()))
        })
        .await
        .unwrap();
        let session = Uuid::new_v4();
        let (s, b) = self
            .pos(
                reqwest::Method::POST,
                "/v1/cash/open",
                Some(
                    json!({"id": session, "register": "PDV01", "operator": "001",
                    "opening_amount": 1000, "opened_at": "2026-11-30T08:00:00Z"}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .pos(
                reqwest::Method::POST,
                "/v1/cash/close",
                Some(json!({"id": Uuid::new_v4(), "register": "PDV01", "session_id": session,
                    "operator": "001", "counted_amount": 1000, "closed_at": "2026-11-30T20:00:00Z"})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        self.data()
    }

    /// (products in the replica, documents in the outbox)
    fn data(&self) -> (u64, u64) {
        (
            self.store.replica_count("products").unwrap(),
            self.store.outbox_counts().unwrap().values().sum(),
        )
    }

    async fn lookup_ok(&self) {
        let (s, b) = self.pos(reqwest::Method::GET, "/v1/products/1", None).await;
        assert_eq!(s, 200, "{b}");
    }
}

/// The good release: `$LOJA_E2E_UPDATE_ARTIFACT` (for the figures: a
/// stripped release build of lojad), else the e2e lojad, stripped when
/// `strip` is there.
fn lojad_artifact(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("LOJA_E2E_UPDATE_ARTIFACT") {
        return PathBuf::from(p);
    }
    let out = dir.join("lojad-release");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(loja_e2e::lojad())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(loja_e2e::lojad(), &out).unwrap();
    }
    out
}

/// The numeric `field=` of the first line of `log` containing `needle`.
fn field_of(log: &str, needle: &str, field: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let value = line
        .split(&format!(" {field}="))
        .nth(1)?
        .split_whitespace()
        .next()?;
    value.trim_matches('"').parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_installs_and_bad_ones_roll_back_and_are_reported() {
    let mut rig = Rig::new().await;
    let before = rig.ready().await;

    // 1. A good release reaches the store and runs healthy.
    let artifact = lojad_artifact(&rig.keys);
    let size = std::fs::metadata(&artifact).unwrap().len();
    let t0 = Instant::now();
    let seq0 = rig.publish("0.2.0", &artifact);
    rig.wait_version("0.2.0").await;
    let ok = rig.report("0.2.0", "ok").await;
    let healthy = t0.elapsed();
    assert_eq!(ok["from"], json!(env!("CARGO_PKG_VERSION")), "{ok}");
    rig.lookup_ok().await;
    assert_eq!(rig.data(), before);
    // baseline: the same artifact fetched by a bare HTTP client
    let t1 = Instant::now();
    let raw = rig
        .central
        .client()
        .get(format!(
            "{}/v1/stores/{STORE}/release/{seq0}/{}",
            rig.central.url(),
            loja_protocol::release::this_target()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let fetched = raw.bytes().await.unwrap().len() as u64;
    let baseline = t1.elapsed();
    assert_eq!(fetched, size);
    let log = rig.sup().log();
    eprintln!(
        "FIGURE baseline: the same {fetched} bytes by a bare HTTP client in {} ms",
        baseline.as_millis()
    );
    eprintln!(
        "FIGURE artifact {size} bytes; download+verify {} ms; switch decided to healthy {} ms \
         (health check {} ms); publish to ok report at the central {} ms",
        field_of(&log, "release downloaded, verified and staged", "ms").unwrap_or(0),
        field_of(&log, "new version healthy; committed", "switch_ms").unwrap_or(0),
        field_of(&log, "new version healthy; committed", "ms").unwrap_or(0),
        healthy.as_millis()
    );
    let status = rig.update_status();
    assert_eq!(status["current"], json!("0.2.0"), "{status:#}");

    // 2. A release that exits at start: three starts, then the launcher
    //    puts 0.2.0 back, marks 0.3.0 bad, reports; the wave pauses.
    let dies = rig.script("dies.sh", "exit 3");
    let seq = rig.publish("0.3.0", &dies);
    let r = rig.report("0.3.0", "rolled_back").await;
    assert_eq!(r["from"], json!("0.2.0"), "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("without passing"),
        "{r}"
    );
    rig.wait_version("0.2.0").await;
    rig.lookup_ok().await;
    assert_eq!(rig.data(), before);
    let releases = rig
        .central
        .admin(reqwest::Method::GET, "/v1/admin/releases", None)
        .await
        .unwrap();
    let dead = releases
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sequence"] == json!(seq))
        .unwrap()
        .clone();
    assert_eq!(dead["paused"], json!(true), "{releases:?}");
    let status = rig.update_status();
    assert!(
        status["bad"].as_array().unwrap().contains(&json!("0.3.0")),
        "{status:#}"
    );

    // 3. A release that starts but cannot answer the lookup (it runs on an
    //    empty data dir): its health check fails, it is rolled back.
    let empty = rig.keys.join("empty-data");
    let lost = rig.script(
        "lost.sh",
        &format!(
            "exec '{}' \"$@\" --data-dir '{}'",
            loja_e2e::lojad().display(),
            empty.display()
        ),
    );
    rig.publish("0.4.0", &lost);
    let r = rig.report("0.4.0", "rolled_back").await;
    assert!(
        r["error"].as_str().unwrap().contains("product lookup"),
        "{r}"
    );
    rig.wait_version("0.2.0").await;
    rig.lookup_ok().await;
    assert_eq!(rig.data(), before);
    // the service manager was asked for every restart by the documented code
    let exits = rig.sup().exits.lock().unwrap().clone();
    assert!(exits.contains(&Some(75)), "{exits:?}");
    assert!(rig.sup().starts.load(Ordering::SeqCst) < MAX_STARTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_replayed_releases_are_refused() {
    let mut rig = Rig::new().await;
    let before = rig.ready().await;
    let db = || rusqlite::Connection::open(rig.central.db_path()).unwrap();

    // A tampered artifact: the manifest is good, the bytes are not.
    let good = rig.script(
        "good.sh",
        &format!("exec '{}' \"$@\"", loja_e2e::lojad().display()),
    );
    let seq1 = rig.publish("0.5.0", &good);
    db().execute(
        "UPDATE release_artifacts SET bytes = ?2 WHERE sequence = ?1",
        rusqlite::params![seq1 as i64, b"#!/bin/sh\nexec evil\n".to_vec()],
    )
    .unwrap();
    let o = rig.outcome_contains("refused").await;
    assert!(
        o.contains("is not the manifest's") || o.contains("bytes, the manifest says"),
        "{o}"
    );

    // A manifest signed by a key the root never signed.
    let stranger = rig.keys.join("stranger.key");
    server(&[
        "release",
        "key",
        "create",
        "--out",
        stranger.to_str().unwrap(),
    ]);
    let key = retaguarda::releases::read_key_file(&stranger).unwrap();
    let body: String = db()
        .query_row(
            "SELECT manifest FROM releases WHERE sequence = ?1",
            [seq1 as i64],
            |r| r.get(0),
        )
        .unwrap();
    let signed: loja_protocol::release::Signed = serde_json::from_str(&body).unwrap();
    let mut manifest: loja_protocol::release::Manifest =
        serde_json::from_str(&signed.signed).unwrap();
    manifest.sequence = seq1 + 1;
    manifest.version = "0.6.0".into();
    let forged =
        serde_json::to_string(&loja_protocol::release::sign(&manifest, &key).unwrap()).unwrap();
    db().execute(
        "INSERT INTO releases (sequence, version, manifest, waves, started_at) VALUES (?1, '0.6.0', ?2, '0s:100', 0)",
        rusqlite::params![(seq1 + 1) as i64, forged],
    )
    .unwrap();
    let o = rig.outcome_contains("does not hold").await;
    assert!(o.contains("release refused"), "{o}");

    // A good release raises what the store trusts; the older manifest,
    // replayed afterwards, is refused.
    db().execute(
        "DELETE FROM releases WHERE sequence = ?1",
        [(seq1 + 1) as i64],
    )
    .unwrap();
    let seq3 = rig.publish("0.7.0", &good);
    rig.wait_version("0.7.0").await;
    rig.report("0.7.0", "ok").await;
    assert_eq!(rig.update_status()["manifest_sequence"], json!(seq3));
    db().execute(
        "DELETE FROM release_artifacts WHERE sequence = ?1",
        [seq3 as i64],
    )
    .unwrap();
    db().execute("DELETE FROM releases WHERE sequence = ?1", [seq3 as i64])
        .unwrap();
    let o = rig.outcome_contains("replay refused").await;
    assert!(o.contains(&format!("older than {seq3}")), "{o}");
    rig.wait_version("0.7.0").await;
    rig.lookup_ok().await;
    assert_eq!(rig.data(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_switch_starts_old_or_new_never_none() {
    let mut rig = Rig::new().await;
    let before = rig.ready().await;
    let good = rig.script(
        "good.sh",
        &format!("exec '{}' \"$@\"", loja_e2e::lojad().display()),
    );
    let trial = rig.install_dir().join("trial.json");
    rig.publish("0.2.0", &good);
    // Kill lojad each time the switch is seen in a new state (decided by the
    // old version; the new version on trial), once each.
    let mut killed: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && killed.len() < 2 {
        if let Ok(text) = std::fs::read_to_string(&trial)
            && let Ok(t) = serde_json::from_str::<Value>(&text)
        {
            let state = t["state"].as_str().unwrap_or("").to_owned();
            if (state == "switching" || state == "trying") && !killed.contains(&state) {
                rig.sup().kill9();
                killed.push(state);
            }
        }
        if rig.report_now("0.2.0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("killed with SIGKILL while the switch was: {killed:?}");
    assert!(
        !killed.is_empty(),
        "the switch was never seen\n{}",
        tail(&rig.sup().log(), 40)
    );
    // Whatever was killed, the store comes back: on the new version once it
    // proves itself, having run the old or the new one in between.
    rig.wait_version("0.2.0").await;
    rig.report("0.2.0", "ok").await;
    rig.lookup_ok().await;
    assert_eq!(rig.data(), before);
    // every start ran something: no exit said "nothing to start"
    let exits = rig.sup().exits.lock().unwrap().clone();
    assert!(
        !exits.contains(&Some(1)) && !exits.contains(&Some(2)),
        "{exits:?}\n{}",
        tail(&rig.sup().log(), 40)
    );
}

impl Rig {
    fn report_now(&self, version: &str) -> bool {
        rusqlite::Connection::open(self.central.db_path())
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM release_reports WHERE store = ?1 AND to_version = ?2",
                    rusqlite::params![STORE, version],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|n| n > 0)
    }
}
