//! `lojad sync [ENTITY…]`: run download jobs once and exit.

use std::path::Path;

use super::common::{CliResult, known_entities, load_config, runtime};
use super::once::{report_runs, sync_once};

pub fn run(path: &Path, entities: &[String], json: bool) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    known_entities(
        entities,
        &loja_protocol::ENTITIES.iter().collect::<Vec<_>>(),
    )?;
    crate::logging::init_cli("warn");
    let rt = runtime()?;
    let runs = rt.block_on(sync_once(&config, entities))?;
    report_runs(&rt, &config, &runs, json)
}
