//! `lojad status`: sync health read from the data dir (works while the
//! daemon runs, and when it does not).

use std::path::Path;

use super::common::{CliResult, exit, load_config, print_json};

pub fn run(path: &Path, json: bool) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    let report = crate::status::collect_offline(&config)?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", crate::status::render_text(&report));
    }
    Ok(exit::OK)
}
