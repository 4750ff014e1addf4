//! `lojad tasks`: the scheduled jobs and their integration switches.

use anyhow::anyhow;
use clap::Subcommand;
use serde::Serialize;

use super::common::{CliResult, Failure, exit, open_journal, print_json};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// Every job: code, subject, schedule, active, switch, last run.
    #[command(after_help = "Example:\n  lojad tasks list\n  lojad tasks list --json")]
    List,
    /// Turn a job's integration switch on.
    #[command(after_help = "Example:\n  lojad tasks enable PRC")]
    Enable { code: String },
    /// Turn a job's integration switch off: it still runs and logs that it is disabled.
    #[command(after_help = "Example:\n  lojad tasks disable PRC")]
    Disable { code: String },
}

#[derive(Serialize)]
struct TaskRow {
    code: String,
    subject: String,
    direction: String,
    schedule: String,
    active: bool,
    enabled: bool,
    last_run_at: Option<String>,
    last_outcome: Option<String>,
    last_rows: Option<u64>,
    last_ok_at: Option<String>,
}

pub fn run(config: &Config, cmd: TasksCmd, json: bool) -> CliResult {
    let tasks = crate::tasks::load(config).map_err(Failure::usage)?;
    let known = |code: &str| -> Result<String, Failure> {
        tasks
            .iter()
            .find(|t| t.code.eq_ignore_ascii_case(code))
            .map(|t| t.code.clone())
            .ok_or_else(|| {
                Failure::usage(anyhow!(
                    "unknown task code `{code}`; known: {}",
                    tasks
                        .iter()
                        .map(|t| t.code.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    };
    match cmd {
        TasksCmd::List => {
            let states = if config.store.data_dir.join("journal.db").exists() {
                open_journal(config)?
                    .job_states()
                    .map_err(|e| Failure::new(exit::FAILED, e))?
            } else {
                Vec::new()
            };
            let rows: Vec<TaskRow> = tasks
                .iter()
                .map(|t| {
                    let st = states.iter().find(|s| s.code == t.code);
                    let last = st.and_then(|s| s.last_run.as_ref());
                    TaskRow {
                        code: t.code.clone(),
                        subject: t.subject.clone(),
                        direction: t.direction.as_str().into(),
                        schedule: t.schedule.to_string(),
                        active: t.active,
                        enabled: st.is_none_or(|s| s.enabled),
                        last_run_at: last.map(|r| r.started_at.clone()),
                        last_outcome: last.map(|r| crate::jobs::outcome_str(r.outcome).to_string()),
                        last_rows: last.map(|r| r.rows),
                        last_ok_at: st.and_then(|s| s.last_ok_at.clone()),
                    }
                })
                .collect();
            if json {
                print_json(&rows)?;
            } else {
                println!(
                    "{:<5} {:<22} {:<18} {:<6} {:<7} {:<21} outcome",
                    "code", "subject", "schedule", "active", "enabled", "last run"
                );
                for r in rows {
                    println!(
                        "{:<5} {:<22} {:<18} {:<6} {:<7} {:<21} {}",
                        r.code,
                        r.subject,
                        r.schedule,
                        if r.active { "yes" } else { "no" },
                        if r.enabled { "on" } else { "OFF" },
                        r.last_run_at.as_deref().unwrap_or("never"),
                        r.last_outcome
                            .map(|o| format!("{o} ({} rows)", r.last_rows.unwrap_or(0)))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(exit::OK)
        }
        TasksCmd::Enable { code } => set_switch(config, &known(&code)?, true, json),
        TasksCmd::Disable { code } => set_switch(config, &known(&code)?, false, json),
    }
}

fn set_switch(config: &Config, code: &str, enabled: bool, json: bool) -> CliResult {
    crate::config::paths::create_private_dir(&config.store.data_dir)
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    let journal = loja_replica::Journal::open(&config.store.data_dir)
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    journal
        .set_enabled(code, enabled)
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    if json {
        print_json(&serde_json::json!({ "code": code, "enabled": enabled }))?;
    } else if enabled {
        println!("{code}: enabled");
    } else {
        println!("{code}: disabled (the job still runs on schedule and logs that it did nothing)");
    }
    Ok(exit::OK)
}
