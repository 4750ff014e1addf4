//! `lojad upload`: send the outbox's pending documents once and exit.

use std::path::Path;

use super::common::{CliResult, load_config, runtime};
use super::once::{report_runs, upload_once};

pub fn run(path: &Path, json: bool) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    crate::logging::init_cli("warn");
    let rt = runtime()?;
    let run = rt.block_on(upload_once(&config))?;
    report_runs(&rt, &config, std::slice::from_ref(&run), json)
}
