//! `lojad doctor` and `lojad tasks`: a broken data dir or a corrupt replica
//! is reported with advice and exit code 4; a healthy store passes; the
//! integration switches round-trip.

use std::path::{Path, PathBuf};
use std::process::Output;

use loja_e2e::central::Central;
use loja_e2e::config::ConfigBuilder;
use loja_e2e::scratch::ScratchDir;
use loja_e2e::{free_port, run_lojad};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_config(dir: &Path, data_dir: &Path, central: &str, token: &str) -> PathBuf {
    ConfigBuilder::new("loja-1", data_dir, central, token)
        .pos_port(free_port())
        .pos_token("pdv01", "pos-token-123456")
        .write(dir.join("lojad.toml"))
        .unwrap()
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn doctor_reports_a_data_dir_that_is_a_file() {
    let dir = ScratchDir::new("doctor-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let config = write_config(&dir, &file, "http://127.0.0.1:9", "store-token");
    let o = run_lojad(&config, &["doctor"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(t.contains("FAIL  data_dir"), "{t}");
    assert!(t.contains("not a directory") && t.contains("→"), "{t}");

    let o = run_lojad(&config, &["--json", "doctor"]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(check(&v, "data_dir")["level"], "fail");
    assert!(check(&v, "data_dir")["advice"].is_string());
    assert_eq!(check(&v, "central")["level"], "fail");
}

#[test]
fn doctor_reports_a_corrupt_replica() {
    let dir = ScratchDir::new("doctor-corrupt");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("replica.db"), vec![0x5a; 64 * 1024]).unwrap();
    let config = write_config(&dir, &data, "http://127.0.0.1:9", "store-token");
    let o = run_lojad(&config, &["--json", "doctor"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check(&v, "data_dir")["level"], "ok");
    assert_eq!(check(&v, "integrity_replica")["level"], "fail", "{v:#}");
    assert!(
        check(&v, "integrity_replica")["advice"]
            .as_str()
            .unwrap()
            .contains("lojad sync")
    );
}

#[test]
fn doctor_passes_on_a_healthy_store_and_tasks_switch_round_trips() {
    let central = Central::builder()
        .store("loja-1", "master", "store-token-1")
        .start()
        .unwrap();
    let dir = ScratchDir::new("doctor-ok");
    let data = dir.join("data");
    let config = write_config(&dir, &data, central.url(), "store-token-1");
    std::fs::create_dir_all(&data).unwrap();
    let o = run_lojad(&config, &["--json", "doctor"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for name in [
        "config",
        "data_dir",
        "integrity_replica",
        "integrity_outbox",
        "central",
        "clock",
        "pos_port",
    ] {
        assert_eq!(check(&v, name)["level"], "ok", "{v:#}");
    }

    // Integration switches.
    let o = run_lojad(&config, &["tasks", "disable", "PRC"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_lojad(&config, &["--json", "tasks", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let prc = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["code"] == "PRC")
        .unwrap();
    assert_eq!(prc["enabled"], false);
    assert_eq!(prc["subject"], "prices");
    let o = run_lojad(&config, &["tasks", "enable", "prc"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_lojad(&config, &["--json", "tasks", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let prc = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["code"] == "PRC")
        .unwrap();
    assert_eq!(prc["enabled"], true);
    let o = run_lojad(&config, &["tasks", "disable", "NOPE"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A sync against the live central works; against a dead one it exits 3.
    let o = run_lojad(&config, &["sync", "states", "cities"]);
    assert!(o.status.success(), "{}", text(&o));
    let dead_dir = ScratchDir::new("doctor-dead");
    let dead = write_config(&dead_dir, &data, "http://127.0.0.1:9", "store-token-1");
    let o = run_lojad(&dead, &["sync", "states"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let o = run_lojad(&config, &["--json", "log", "--limit", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_lojad(&config, &["tickets", "report", "--since", "1h"]);
    assert!(o.status.success(), "{}", text(&o));
}
