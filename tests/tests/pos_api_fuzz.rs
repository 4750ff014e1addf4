//! Schema-driven fuzz of lojad's POS API (issue 12, defect 5): schemathesis
//! (PyPI, pinned in scripts/install-schemathesis) generates requests from
//! `GET /v1/openapi.json` — valid ones and deliberately invalid ones — and
//! sends them to a real lojad that has synced a real central's catalog.
//!
//! Checks: no 5xx (`not_a_server_error`), every status and content type is
//! documented, every answer conforms to its schema, schema-invalid requests
//! are refused (`negative_data_rejection`) and schema-valid ones accepted
//! (`positive_data_acceptance`) — except for the operations below, where a
//! schema-valid request can still be refused for a reason JSON Schema cannot
//! express (their descriptions and docs/pos-api.md say which).
//!
//! schemathesis is found through `LOJA_SCHEMATHESIS` (the executable) or at
//! the venv scripts/install-schemathesis creates (scripts/test runs it first).
//! Missing, the test fails when `CI` is set (it never passes there without
//! having fuzzed), and elsewhere skips, saying so (see `external`).

mod external;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use loja_e2e::central::Central;
use loja_e2e::scratch::ScratchDir;
use loja_e2e::store::{POS_TOKEN, Store};

const STORE: &str = "loja1";
const TOKEN: &str = "token-loja1";
/// The version scripts/install-schemathesis pins.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Examples per operation and phase (~3,000 requests): the schemathesis
/// run takes about a minute on 2 cores.
const MAX_EXAMPLES: &str = "60";
/// A run past this is killed and fails.
const HARD_TIMEOUT: Duration = Duration::from_secs(480);

/// Operations where a schema-valid body may still be refused (422), so
/// `positive_data_acceptance` is off for them (all other checks stay on):
/// - state: a cash open needs its register without an open session; a
///   movement, close or sale needs an open session of its register; a sale
///   payment or XML needs a sale the outbox holds; a sale's cancellation or
///   return needs a sale the outbox holds, not cancelled (nor, for a
///   cancellation, with a return that stands), a return no more than was sold
///   less earlier returns and a reason from the synced `return_reasons`; a
///   return's cancellation needs a return the outbox holds, not cancelled;
/// - totals that must add up (sale, Redução Z, a return's refunds) and
///   `coo_end ≥ coo_start`; fields one kind of stock movement needs or refuses
///   (a receipt's `nfe_key`, a transfer's stores), an adjustment's non-zero
///   signed `qty`; a product counted once per inventory count;
/// - check digits (GTIN, CPF, CNPJ): a pattern fixes the digits' count, not
///   the check digit;
/// - omni: an action needs an order of this store with lines in `expects`
///   (and a rejection a reason, a shipment its invoice); a claim needs an
///   open session of the register and an order ready for pickup; an omni
///   return needs an omni reason and delivered lines of an order the store
///   or the central knows (503 when only the central could tell).
const CROSS_FIELD_OPERATIONS: &[&str] = &[
    "cash_open",
    "cash_movement",
    "cash_close",
    "sale",
    "sale_payment",
    "sale_xml",
    "sale_cancellation",
    "sale_return",
    "return_cancellation",
    "stock_movement",
    "inventory_count",
    "reducao_z",
    "customer",
    "product_by_barcode",
    "customer_by_document",
    "omni_action",
    "omni_return",
    "claim",
];

fn schemathesis() -> PathBuf {
    // scripts/test exports it empty when the install failed.
    if let Some(path) = std::env::var_os("LOJA_SCHEMATHESIS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    cache
        .join("loja")
        .join(format!("schemathesis-{SCHEMATHESIS_VERSION}"))
        .join("bin")
        .join("schemathesis")
}

/// The checks (in the config file, not on the command line: a check named
/// there would override the per-operation switch below).
const CHECKS: &[&str] = &[
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
];

fn config() -> String {
    let mut toml = String::from("[checks]\nenabled = false\n");
    for check in CHECKS {
        toml.push_str(&format!("{check}.enabled = true\n"));
    }
    toml.push_str(&format!(
        "\n[[operations]]\ninclude-operation-id-regex = \"^({})$\"\n\
         checks.positive_data_acceptance.enabled = false\n",
        CROSS_FIELD_OPERATIONS.join("|")
    ));
    toml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_defect_in_the_pos_api() {
    let bin = schemathesis();
    if !bin.is_file() {
        external::missing(
            "pos_api_fuzz",
            &format!("no schemathesis at {}", bin.display()),
            "scripts/install-schemathesis (scripts/test runs it), or set LOJA_SCHEMATHESIS to a \
             schemathesis executable",
        );
        return;
    }
    let central = Central::builder()
        .catalog(300, 30)
        .store(STORE, "master", TOKEN)
        .start()
        .expect("central starts");
    central.release_everything().await.unwrap();
    let mut store = Store::builder(central.url(), STORE, TOKEN).start().unwrap();
    store
        .wait_synced(&central, Duration::from_secs(120))
        .await
        .unwrap();
    let url = store.pos_url().unwrap();

    // The document as the POS gets it (it needs the token), to a file.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let doc = http
        .get(format!("{url}/v1/openapi.json"))
        .bearer_auth(POS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status().as_u16(), 200);
    let doc = doc.bytes().await.unwrap();
    let dir = ScratchDir::new("pos-fuzz");
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, &doc).unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config()).unwrap();

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(&schema)
        .args(["--url", &url])
        .args(["--header", &format!("Authorization: Bearer {POS_TOKEN}")])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--workers", "2"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(seed) = std::env::var("LOJA_FUZZ_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let child = cmd.spawn().expect("schemathesis starts");
    let out = tokio::time::timeout(HARD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran past {HARD_TIMEOUT:?}: killed"))
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis took {:.0?}\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}); lojad's log:\n{}",
        out.status.code(),
        store.log()
    );
    assert!(store.is_running(), "lojad is still up");
}
