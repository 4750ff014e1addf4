//! `lojad verify [ENTITY…]`: compare the replica with the central's view and
//! repair what drifted.

use std::path::Path;

use super::common::{CliResult, known_entities, load_config, print_json, runtime};
use super::once::{report_runs_exit, verify_once};

pub fn run(path: &Path, entities: &[String], json: bool) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    known_entities(entities, &crate::jobs::verify::entities_of("all"))?;
    crate::logging::init_cli("warn");
    let rt = runtime()?;
    let (run, checks) = rt.block_on(verify_once(&config, entities))?;
    if json {
        print_json(&serde_json::json!({ "run": run, "entities": checks }))?;
    } else {
        println!(
            "{:<22} {:>9} {:>7} {:>9} {:>8} {:>8} {:>6}  note",
            "entity", "rows", "buckets", "differing", "upserts", "deletes", "local"
        );
        for c in &checks {
            println!(
                "{:<22} {:>9} {:>7} {:>9} {:>8} {:>8} {:>6}  {}",
                c.entity,
                c.rows,
                c.buckets,
                c.differing,
                c.upserts,
                c.deletes,
                c.kept_local,
                match (&c.error, c.differing) {
                    (Some(e), _) => format!("NOT COMPARED: {e}"),
                    (None, 0) => "equal".to_owned(),
                    (None, _) => "repaired".to_owned(),
                }
            );
        }
        println!("{}", run.message.as_deref().unwrap_or(""));
    }
    report_runs_exit(&rt, &config, std::slice::from_ref(&run))
}
