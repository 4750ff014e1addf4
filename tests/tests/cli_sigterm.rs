//! SIGTERM while `lojad run` is in the middle of its initial sync: the
//! daemon exits 0 within the grace period, the replica passes
//! `PRAGMA integrity_check`, and resuming the sync ends with a replica equal,
//! row for row, to one synced without interruption.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::config::ConfigBuilder;
use loja_e2e::scratch::ScratchDir;
use loja_e2e::{free_port, lojad};

const STORE: &str = "loja-term";
const TOKEN: &str = "store-token-term";
const PRODUCTS: u64 = 20_000;

fn write_config(dir: &Path, central: &str) -> PathBuf {
    ConfigBuilder::new(STORE, dir.join("data"), central, TOKEN)
        .pos_port(free_port())
        .pos_token("pdv01", "pos-token-123456")
        .page_size(500)
        .push(false)
        .write(dir.join("lojad.toml"))
        .unwrap()
}

fn count(db: &Path, table: &str) -> u64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .unwrap_or(0)
}

/// Every public entity's rows, ordered by key, as text.
fn dump(db: &Path) -> Vec<(String, Vec<String>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    loja_protocol::ENTITIES
        .iter()
        .filter(|e| !e.secret)
        .map(|e| {
            let cols: Vec<String> = e
                .columns
                .iter()
                .map(|c| format!("\"{}\"", c.name))
                .collect();
            let order: Vec<String> = e.key.iter().map(|k| format!("\"{k}\"")).collect();
            let sql = format!(
                "SELECT {} FROM \"{}\" ORDER BY {}",
                cols.join(", "),
                e.name,
                order.join(", ")
            );
            let mut stmt = conn
                .prepare(&sql)
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
            let n = cols.len();
            let rows = stmt
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (e.name.to_string(), rows)
        })
        .collect()
}

fn sync(config: &Path) {
    let o = Command::new(lojad())
        .arg("--config")
        .arg(config)
        .arg("sync")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn sigterm_during_sync_leaves_the_replica_consistent() {
    let central = Central::builder()
        .catalog(PRODUCTS, 200)
        .store(STORE, "master", TOKEN)
        .start()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(central.add_exception(STORE)).unwrap();

    let dir = ScratchDir::new("sigterm");
    let config = write_config(&dir, central.url());
    let replica = dir.join("data/replica.db");
    let mut child = Command::new(lojad())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the barcodes (2 per product) are partly applied.
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let n = count(&replica, "barcodes");
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the sync never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "lojad run exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "lojad run did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "lojad run exited with {status:?} after SIGTERM"
    );
    let after = count(&replica, "barcodes");
    println!(
        "barcodes when SIGTERM was sent: {seen}; after the shutdown: {after} of {}",
        PRODUCTS * 2
    );

    let conn = rusqlite::Connection::open(&replica).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let o = Command::new(lojad())
        .arg("--config")
        .arg(&config)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in v["checks"].as_array().unwrap() {
        if c["name"].as_str().unwrap().starts_with("integrity") {
            assert_eq!(c["level"], "ok", "{c}");
        }
    }

    // Resume; compare with a store synced in one go.
    sync(&config);
    let fresh_dir = ScratchDir::new("sigterm-fresh");
    let fresh = write_config(&fresh_dir, central.url());
    sync(&fresh);
    let resumed = dump(&replica);
    let reference = dump(&fresh_dir.join("data/replica.db"));
    for ((entity, a), (_, b)) in resumed.iter().zip(&reference) {
        assert_eq!(a.len(), b.len(), "{entity}: row counts differ after resume");
        assert!(a == b, "{entity}: rows differ after resume");
    }
    assert_eq!(
        resumed
            .iter()
            .find(|(e, _)| e == "barcodes")
            .unwrap()
            .1
            .len() as u64,
        PRODUCTS * 2
    );
}
