//! `loja-demo` (the README's demo command, in loja-devtools) runs a whole
//! store: it prints the POS URL, the token and the config path, answers
//! `/v1/health` and a barcode lookup, works with `lojad --config PATH status`
//! from outside, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use loja_e2e::scratch::ScratchDir;
use loja_e2e::{free_port, loja_demo, lojad};

#[test]
fn demo_runs_a_store_and_stops_on_sigterm() {
    let dir = ScratchDir::new("demo");
    let port = free_port();
    let mut child = Command::new(loja_demo())
        .arg("--data-dir")
        .arg(&dir)
        .args(["--pos-listen", &format!("127.0.0.1:{port}")])
        .env_remove("LOJAD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("Ctrl-C stops the demo");
                banner.push(line);
                if done {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "demo did not come up in time; output so far:\n{}",
                    banner.join("\n")
                );
            }
        }
    }
    let banner = banner.join("\n");
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        banner.contains(&format!("POS API:      {base}")),
        "{banner}"
    );
    assert!(banner.contains("demo-pos-token"), "{banner}");
    let config = dir.join("lojad.toml");
    assert!(banner.contains(&config.display().to_string()), "{banner}");
    let barcode = banner
        .split("/v1/products/by-barcode/")
        .nth(1)
        .map(|s| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .expect("barcode example");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = loja_e2e::central::client();
        let health = http.get(format!("{base}/v1/health")).send().await.unwrap();
        assert!(health.status().is_success());
        let lookup = http
            .get(format!("{base}/v1/products/by-barcode/{barcode}"))
            .bearer_auth("demo-pos-token")
            .send()
            .await
            .unwrap();
        assert_eq!(lookup.status().as_u16(), 200);
        let body: serde_json::Value = lookup.json().await.unwrap();
        assert_eq!(body["product"]["code"], "1", "{body}");
        // The omni lines the banner prints: the demo order is listed, and
        // its accept, posted as printed, is taken.
        let orders: serde_json::Value = http
            .get(format!("{base}/v1/omni-orders"))
            .bearer_auth("demo-pos-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(orders["items"][0]["number"], "1001", "{orders}");
        let accept = banner
            .lines()
            .find(|l| l.contains("/v1/omni-orders/demo-1001/actions"))
            .and_then(|l| l.split(" -d '").nth(1))
            .map(|b| b.trim_end_matches('\''))
            .expect("the accept example");
        let a = http
            .post(format!("{base}/v1/omni-orders/demo-1001/actions"))
            .bearer_auth("demo-pos-token")
            .header("content-type", "application/json")
            .body(accept.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(
            a.status().as_u16(),
            201,
            "{}",
            a.text().await.unwrap_or_default()
        );
    });

    // Every other subcommand works on the demo store from outside.
    let status = Command::new(lojad())
        .arg("--config")
        .arg(&config)
        .args(["--json", "status"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let products = report["replica_counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["entity"] == "products")
        .unwrap();
    assert_eq!(products["rows"], 3000, "{report:#}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "demo exited with {code:?}");
}
