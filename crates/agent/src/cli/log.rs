//! `lojad log`: the integration log, one line per job run.

use clap::Args;

use super::common::{CliResult, Failure, exit, open_journal, parse_since, print_json};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Module (task) code, e.g. PRC.
    #[arg(long, value_name = "CODE")]
    pub module: Option<String>,
    /// Since a duration ago (`30m`, `2h`, `7d`) or a date/time.
    #[arg(long, value_name = "DURATION_OR_DATE")]
    pub since: Option<String>,
    /// Only failed runs.
    #[arg(long)]
    pub failed: bool,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

pub fn run(config: &Config, args: LogArgs, json: bool) -> CliResult {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let entries = open_journal(config)?
        .log_entries(&loja_replica::LogFilter {
            code: args.module.map(|m| m.to_ascii_uppercase()),
            since,
            failed_only: args.failed,
            limit: args.limit,
        })
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    if json {
        print_json(&entries)?;
    } else {
        for r in &entries {
            println!(
                "{} {:<5} {:<22} {:<8} rows={:<8} {:>6}ms {}",
                r.started_at,
                r.code,
                r.subject,
                crate::jobs::outcome_str(r.outcome),
                r.rows,
                r.duration_ms,
                r.message.as_deref().unwrap_or("")
            );
        }
        if entries.is_empty() {
            println!("(no log entries)");
        }
    }
    Ok(exit::OK)
}
