//! `lojad config show`: the effective configuration, secrets masked.

use std::path::Path;

use clap::Subcommand;

use super::common::{CliResult, exit, load_config, print_json};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// The effective config (file + LOJAD_* environment), secrets masked.
    #[command(after_help = "Example:\n  lojad config show\n  lojad config show --json")]
    Show,
}

pub fn run(path: &Path, cmd: ConfigCmd, json: bool) -> CliResult {
    match cmd {
        ConfigCmd::Show => {
            let (config, warnings) = load_config(path, &[])?;
            let masked = config.masked();
            if json {
                print_json(
                    &serde_json::json!({ "path": path, "config": masked, "warnings": warnings }),
                )?;
            } else {
                println!("# {}", path.display());
                for w in &warnings {
                    println!("# {w}");
                }
                print!("{}", masked.to_toml());
            }
            Ok(exit::OK)
        }
    }
}
