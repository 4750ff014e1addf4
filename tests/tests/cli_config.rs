//! The support CLI's configuration and help: errors name the key and the
//! file/line, secrets are masked, every subcommand's `--help` has an example,
//! exit codes are the documented ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use loja_e2e::config::ConfigBuilder;
use loja_e2e::scratch::ScratchDir;
use loja_e2e::{lojad, run_lojad};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A valid config's text, as `lojad init` writes it (`Config::write`).
fn good_config(dir: &Path) -> String {
    let path = ConfigBuilder::new(
        "loja-7",
        dir.join("data"),
        "http://127.0.0.1:9",
        "central-secret-token-XY",
    )
    .pos_port(7878)
    .pos_token("pdv01", "pos-secret-token-AB")
    .write(dir.join("good.toml"))
    .unwrap();
    std::fs::read_to_string(path).unwrap()
}

/// `text` with `from` (which must be there) replaced by `to`.
fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no `{from}` in:\n{text}");
    text.replace(from, to)
}

/// The number (from 1) of the line of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
        + 1
}

fn setup(name: &str, text: &str) -> (ScratchDir, PathBuf) {
    let dir = ScratchDir::new(name);
    let path = dir.join("lojad.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn unknown_key_names_the_key_file_and_line() {
    let dir = ScratchDir::new("cfg-unknown");
    let config = edited(&good_config(&dir), "listen = ", "lisen = ");
    let line = line_of(&config, "lisen = ");
    let (_scratch, path) = setup("cfg-unknown", &config);
    let o = run_lojad(&path, &["config", "show"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("pos.lisen"), "{t}");
    assert!(t.contains(&format!("line {line}")), "{t}");
    assert!(t.contains(&path.display().to_string()), "{t}");
}

#[test]
fn wrong_value_names_the_key_and_line() {
    let dir = ScratchDir::new("cfg-value");
    let config = edited(
        &good_config(&dir),
        "\"127.0.0.1:7878\"",
        "\"localhost:port\"",
    );
    let line = line_of(&config, "\"localhost:port\"");
    let (_scratch, path) = setup("cfg-value", &config);
    let o = run_lojad(&path, &["status"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("pos.listen") && t.contains(&format!("line {line}")),
        "{t}"
    );

    let (_scratch, path) = setup(
        "cfg-https",
        &edited(
            &good_config(&dir),
            "http://127.0.0.1:9",
            "http://central.example.com",
        ),
    );
    let o = run_lojad(&path, &["config", "show"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("central.url") && t.contains("plain http"), "{t}");
}

#[test]
fn env_override_applies_and_a_bad_one_names_the_variable() {
    let dir = ScratchDir::new("cfg-env");
    let (_scratch, path) = setup("cfg-env", &good_config(&dir));
    let o = Command::new(lojad())
        .args(["--json", "config", "show"])
        .env("LOJAD_CONFIG", &path)
        .env("LOJAD_POS_LISTEN", "127.0.0.1:7979")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"]["pos"]["listen"], "127.0.0.1:7979");

    let o = Command::new(lojad())
        .args(["config", "show"])
        .env("LOJAD_CONFIG", &path)
        .env("LOJAD_SYNC_PAGE_SIZE", "lots")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("LOJAD_SYNC_PAGE_SIZE") && t.contains("sync.page_size"),
        "{t}"
    );
}

#[test]
fn config_show_masks_secrets() {
    let dir = ScratchDir::new("cfg-mask");
    let (_scratch, path) = setup("cfg-mask", &good_config(&dir));
    for args in [&["config", "show"][..], &["--json", "config", "show"][..]] {
        let o = run_lojad(&path, args);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            !t.contains("central-secret-token") && !t.contains("pos-secret-token"),
            "{t}"
        );
        assert!(t.contains("****XY") && t.contains("****AB"), "{t}");
        assert!(t.contains("loja-7"), "{t}");
    }
}

#[test]
fn missing_config_is_a_usage_error_that_says_what_to_do() {
    let dir = ScratchDir::new("cfg-missing");
    let o = run_lojad(&dir.join("nope.toml"), &["status"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("lojad init"), "{t}");
}

#[test]
fn init_writes_a_private_config_and_prints_the_generated_pos_token_once() {
    let dir = ScratchDir::new("cfg-init");
    let path = dir.join("etc/lojad.toml");
    let data = dir.join("data");
    let o = Command::new(lojad())
        .arg("--config")
        .arg(&path)
        .args([
            "init",
            "--central-url",
            "https://central.example.com",
            "--store-id",
            "loja-9",
        ])
        .args(["--store-token", "store-token-0123456789"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let token_line = t
        .lines()
        .find(|l| l.contains("POS token"))
        .expect("token printed");
    let token = token_line.rsplit(' ').next().unwrap();
    assert!(token.len() >= 32, "{token_line}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(std::fs::read_to_string(&path).unwrap().contains(token));
    assert!(data.is_dir());
    // Not twice without --force.
    let o = Command::new(lojad())
        .arg("--config")
        .arg(&path)
        .args([
            "init",
            "--central-url",
            "https://c.example.com",
            "--store-id",
            "x",
            "--store-token",
            "y",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // The written config loads, and show masks the generated token.
    let o = run_lojad(&path, &["config", "show"]);
    assert!(
        o.status.success() && !text(&o).contains(token),
        "{}",
        text(&o)
    );
}

#[test]
fn every_subcommand_help_has_an_example_and_top_help_lists_exit_codes() {
    let top = Command::new(lojad()).arg("--help").output().unwrap();
    let t = text(&top);
    for code in ["0  ok", "2  usage", "3  the central", "4  `lojad doctor`"] {
        assert!(
            t.contains(code),
            "lojad --help lacks exit code {code}:\n{t}"
        );
    }
    let commands: &[&[&str]] = &[
        &["run"],
        &["init"],
        &["status"],
        &["sync"],
        &["upload"],
        &["tasks"],
        &["tasks", "list"],
        &["tasks", "enable"],
        &["tasks", "disable"],
        &["tickets"],
        &["tickets", "list"],
        &["tickets", "show"],
        &["tickets", "reprocess"],
        &["tickets", "report"],
        &["log"],
        &["config"],
        &["config", "show"],
        &["doctor"],
        &["service"],
        &["service", "install"],
        &["service", "uninstall"],
        &["service", "start"],
        &["service", "stop"],
        &["service", "status"],
        &["update"],
    ];
    for cmd in commands {
        let o = Command::new(lojad())
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        let t = text(&o);
        assert!(
            o.status.success(),
            "lojad {} --help failed: {t}",
            cmd.join(" ")
        );
        assert!(
            t.contains("Example:\n  lojad"),
            "lojad {} --help has no example:\n{t}",
            cmd.join(" ")
        );
    }
    let o = Command::new(lojad())
        .arg("no-such-command")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
