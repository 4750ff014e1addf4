//! `lojad doctor`: checks the store's setup and says what to fix.

use std::path::Path;

use super::common::{CliResult, exit, print_json, runtime};
use crate::config;

pub fn run(path: &Path, json: bool) -> CliResult {
    let rt = runtime()?;
    let report = rt.block_on(crate::doctor::run(
        path,
        &config::env_overrides(std::env::vars()),
    ));
    if json {
        print_json(&report)?;
    } else {
        print!("{}", crate::doctor::render_text(&report));
    }
    Ok(if report.healthy {
        exit::OK
    } else {
        exit::DOCTOR
    })
}
