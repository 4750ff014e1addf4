//! The support CLI: `lojad <command>`, one module per command, and
//! [`common`] for what they share. Every command has `--help` with an
//! example; commands that print data take `--json`; exit codes are stable
//! (see [`exit`] and docs/cli.md).

mod common;
mod config;
mod doctor;
mod documents;
mod init;
mod launch;
mod log;
pub mod once;
mod run;
mod service;
mod status;
mod sync;
mod tasks;
mod tickets;
mod update;
mod upload;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use common::{CliResult, Failure, exit};

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  the operation failed
  2  usage or configuration error (the message names the key and file/line)
  3  the central could not be reached (network, DNS, TLS)
  4  `lojad doctor` found problems
 75  `lojad run` stopped for an update: the service manager starts it again

Config: --config PATH, else $LOJAD_CONFIG, else the user's config dir
(~/.config/lojad/lojad.toml), else /etc/loja/lojad.toml (Windows: %ProgramData%\\Loja).
Every key can be overridden by LOJAD_<SECTION>_<KEY>, e.g. LOJAD_POS_LISTEN=127.0.0.1:7979.

Example:
  lojad doctor                                 # what to fix in this store's setup
  lojad --config /etc/loja/lojad.toml status   # sync health of this store";

#[derive(Debug, Parser)]
#[command(
    name = "lojad",
    version,
    about = "Loja store agent: keeps the store's replica current, delivers its documents, serves the POS",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(long, global = true, env = crate::config::CONFIG_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text (commands that print data).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the service): scheduler, push listener, uploads, POS API.
    #[command(
        after_help = "Example:\n  lojad --config /etc/loja/lojad.toml run\n  lojad run --pos-listen 127.0.0.1:7979 --log-level lojad=debug\n\nSIGTERM / Ctrl-C (Windows: service stop): finishes the current transaction, flushes logs, exits 0."
    )]
    Run(run::RunArgs),
    /// What the service starts: switches or rolls back a pending update, then runs the installed version.
    #[command(
        after_help = "Example:\n  lojad --config /etc/loja/lojad.toml launch\n  lojad launch --pos-listen 127.0.0.1:7979\n\nTakes the options of `run`. Starts versions/<current>/lojad from [update] install_dir\n(this binary when none is installed); see docs/update.md."
    )]
    Launch(run::RunArgs),
    /// Write a new config (store id, central URL and token, data dir, POS token).
    #[command(
        after_help = "Example:\n  lojad init --central-url https://retaguarda.example.com.br --store-id loja-0042 --store-token XXXX\n  sudo lojad init --system --central-url https://retaguarda.example.com.br --store-id loja-0042 --store-token XXXX\n\nWithout --pos-token a random one is generated and printed once."
    )]
    Init(init::InitArgs),
    /// Sync health: per job last/next run and outcome, outbox depth, failed tickets, replica counts.
    #[command(
        after_help = "Example:\n  lojad status\n  lojad --config /tmp/loja-demo/lojad.toml status --json"
    )]
    Status,
    /// Run download jobs once (all entities, or the ones named) and exit.
    #[command(
        after_help = "Example:\n  lojad sync                 # every entity\n  lojad sync prices stock    # just these\n  lojad sync --json"
    )]
    Sync {
        /// Entity names (products, prices, stock, customers, …).
        entities: Vec<String>,
    },
    /// Compare the replica with the central's view (all entities, or the ones named) and repair what drifted.
    #[command(
        after_help = "Example:\n  lojad verify                # every entity\n  lojad verify prices stock   # just these\n  lojad verify --json\n\nPer entity: the central's digest per key bucket against the replica's at the same\nwatermark (a replica behind downloads first); only the buckets that differ are\nfetched again and repaired. Exit 0 when every entity is equal to the central's view\n(repaired or not), 1 when one could not be compared, 3 when the central is unreachable."
    )]
    Verify {
        /// Entity names (products, prices, stock, customers, …).
        entities: Vec<String>,
    },
    /// Send the outbox's pending documents to the central once and exit.
    #[command(after_help = "Example:\n  lojad upload\n  lojad upload --json")]
    Upload,
    /// Scheduled jobs and their integration switches.
    #[command(
        subcommand,
        after_help = "Example:\n  lojad tasks list\n  lojad tasks disable PRC\n  lojad tasks enable PRC"
    )]
    Tasks(tasks::TasksCmd),
    /// Every exchange with the central, archived: list, show, reprocess, report.
    #[command(
        subcommand,
        after_help = "Example:\n  lojad tickets list --failed\n  lojad tickets show 42\n  lojad tickets reprocess 42\n  lojad tickets report --since 7d"
    )]
    Tickets(tickets::TicketsCmd),
    /// One document of the outbox, and the correction of a refused one.
    #[command(
        subcommand,
        after_help = "Example:\n  lojad documents show ID\n  lojad documents replace ID --body fixed.json"
    )]
    Documents(documents::DocumentsCmd),
    /// The integration log: one line per job run.
    #[command(
        after_help = "Example:\n  lojad log --module PRC --since 2h\n  lojad log --failed --limit 20 --json"
    )]
    Log(log::LogArgs),
    /// Show the effective configuration (secrets masked).
    #[command(
        subcommand,
        after_help = "Example:\n  lojad config show\n  LOJAD_POS_LISTEN=127.0.0.1:7979 lojad config show --json"
    )]
    Config(config::ConfigCmd),
    /// Check config, data dir, disk, databases, clock, central and POS port; say what to fix.
    #[command(
        after_help = "Example:\n  lojad doctor\n  lojad doctor --json\n\nExit code 4 when a check fails."
    )]
    Doctor,
    /// Install or control the OS service (systemd unit / Windows service).
    #[command(
        subcommand,
        after_help = "Example:\n  lojad service status\n  sudo lojad --config /etc/loja/lojad.toml service install\n  lojad service install --root /tmp/pkgroot   # only render the unit"
    )]
    Service(service::ServiceCmd),
    /// Automatic update: status, check now, switch now; or install a signed binary by hand.
    #[command(
        after_help = "Example:\n  lojad update --status\n  lojad update --check\n  lojad update --now\n  lojad update --file lojad-0.2.0 --signature lojad-0.2.0.sig\n  lojad update --check --file lojad-0.2.0 --signature lojad-0.2.0.sig\n\nSee docs/update.md."
    )]
    Update(update::UpdateArgs),
    /// Entry point of the Windows service (the SCM starts it).
    #[command(hide = true, name = "service-main")]
    ServiceMain,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("lojad: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// The config path: `--config`/LOJAD_CONFIG, else the OS default.
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(crate::config::paths::default_config)
}

pub fn dispatch(cli: Cli) -> CliResult {
    let path = config_path(&cli);
    let json = cli.json;
    let config = |path| common::load_config(path, &[]).map(|(config, _)| config);
    match cli.command {
        Command::Run(args) => run::run(&path, args),
        Command::Launch(args) => launch::run(&path, args),
        Command::Init(args) => init::run(cli.config.clone(), args),
        Command::Status => status::run(&path, json),
        Command::Sync { entities } => sync::run(&path, &entities, json),
        Command::Verify { entities } => verify::run(&path, &entities, json),
        Command::Upload => upload::run(&path, json),
        Command::Tasks(cmd) => tasks::run(&config(&path)?, cmd, json),
        Command::Tickets(cmd) => tickets::run(&config(&path)?, cmd, json),
        Command::Documents(cmd) => documents::run(&config(&path)?, cmd, json),
        Command::Log(args) => log::run(&config(&path)?, args, json),
        Command::Config(cmd) => config::run(&path, cmd, json),
        Command::Doctor => doctor::run(&path, json),
        Command::Service(cmd) => service::run(&path, cmd, json),
        Command::Update(args) => update::run(&path, args, json),
        Command::ServiceMain => service::main(&path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                if sub.is_hide_set() || sub.get_name() == "help" {
                    continue;
                }
                let name = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(
                    help.contains("Example:\n  lojad"),
                    "`{name}` has no example"
                );
                walk(sub, &name);
            }
        }
        Cli::command().debug_assert();
        walk(&Cli::command(), "lojad");
    }
}
