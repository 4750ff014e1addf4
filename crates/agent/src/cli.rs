//! The support CLI: `lojad <command>`. Every command has `--help` with an
//! example; commands that print data take `--json`; exit codes are stable
//! (see [`exit`] and docs/cli.md).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{self, Config, ConfigError, Override};

/// Exit codes scripts can rely on.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The operation failed (details on stderr).
    pub const FAILED: u8 = 1;
    /// Wrong usage or a config that cannot be used (missing, wrong key or value).
    pub const USAGE: u8 = 2;
    /// The central could not be reached (network, DNS, TLS).
    pub const UNREACHABLE: u8 = 3;
    /// `doctor` found at least one problem.
    pub const DOCTOR: u8 = 4;
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  the operation failed
  2  usage or configuration error (the message names the key and file/line)
  3  the central could not be reached (network, DNS, TLS)
  4  `lojad doctor` found problems

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
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "PATH")]
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
    Run(RunArgs),
    /// Write a new config (store id, central URL and token, data dir, POS token).
    #[command(
        after_help = "Example:\n  lojad init --central-url https://retaguarda.example.com.br --store-id loja-0042 --store-token XXXX\n  sudo lojad init --system --central-url https://retaguarda.example.com.br --store-id loja-0042 --store-token XXXX\n\nWithout --pos-token a random one is generated and printed once."
    )]
    Init(InitArgs),
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
    Tasks(TasksCmd),
    /// Every exchange with the central, archived: list, show, reprocess, report.
    #[command(
        subcommand,
        after_help = "Example:\n  lojad tickets list --failed\n  lojad tickets show 42\n  lojad tickets reprocess 42\n  lojad tickets report --since 7d"
    )]
    Tickets(TicketsCmd),
    /// The integration log: one line per job run.
    #[command(
        after_help = "Example:\n  lojad log --module PRC --since 2h\n  lojad log --failed --limit 20 --json"
    )]
    Log(LogArgs),
    /// Show the effective configuration (secrets masked).
    #[command(
        subcommand,
        after_help = "Example:\n  lojad config show\n  LOJAD_POS_LISTEN=127.0.0.1:7979 lojad config show --json"
    )]
    Config(ConfigCmd),
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
    Service(ServiceCmd),
    /// Verify a signed lojad release and install it in place of this binary.
    #[command(
        after_help = "Example:\n  lojad update --file lojad-0.2.0 --signature lojad-0.2.0.sig\n  lojad update --check --file lojad-0.2.0 --signature lojad-0.2.0.sig"
    )]
    Update(UpdateArgs),
    /// Entry point of the Windows service (the SCM starts it).
    #[command(hide = true, name = "service-main")]
    ServiceMain,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// POS API address (overrides pos.listen).
    #[arg(long, value_name = "ADDR")]
    pub pos_listen: Option<String>,
    /// Data dir (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Central URL (overrides central.url).
    #[arg(long, value_name = "URL")]
    pub central_url: Option<String>,
    /// Log filter (overrides log.level), e.g. `debug` or `lojad=debug`.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The central's URL (https; plain http only for loopback).
    #[arg(long, value_name = "URL")]
    pub central_url: String,
    /// This store's node id at the central.
    #[arg(long, value_name = "ID")]
    pub store_id: String,
    /// This store's bearer token at the central.
    #[arg(
        long,
        env = "LOJAD_INIT_STORE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub store_token: String,
    /// Data dir (default: the OS's: /var/lib/loja with --system, else the user's data dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Token of the first POS terminal (default: a random one, printed once).
    #[arg(long, value_name = "TOKEN")]
    pub pos_token: Option<String>,
    /// POS API address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub pos_listen: std::net::SocketAddr,
    /// Write the system service's config (/etc/loja/lojad.toml, data in /var/lib/loja;
    /// Windows: %ProgramData%\Loja) instead of the user's.
    #[arg(long)]
    pub system: bool,
    /// Replace an existing config.
    #[arg(long)]
    pub force: bool,
}

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

#[derive(Debug, Subcommand)]
pub enum TicketsCmd {
    /// Newest first.
    #[command(
        after_help = "Example:\n  lojad tickets list --failed --limit 20\n  lojad tickets list --kind upload --json"
    )]
    List {
        /// Only failed exchanges.
        #[arg(long)]
        failed: bool,
        /// `feed` or `upload`.
        #[arg(long, value_parser = ["feed", "upload"])]
        kind: Option<String>,
        /// Since a duration ago (`30m`, `2h`, `7d`) or a date/time (`2026-11-01`, RFC 3339).
        #[arg(long, value_name = "DURATION_OR_DATE")]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One ticket with its request and response payloads.
    #[command(after_help = "Example:\n  lojad tickets show 42")]
    Show { id: i64 },
    /// Queue an upload ticket's documents again (the central's idempotency keeps it harmless).
    #[command(after_help = "Example:\n  lojad tickets reprocess 42 && lojad upload")]
    Reprocess { id: i64 },
    /// Consumption per kind and subject: count, failures, items, bytes.
    #[command(
        after_help = "Example:\n  lojad tickets report --since 7d\n  lojad tickets report --since 2026-11-01 --json"
    )]
    Report {
        #[arg(long, value_name = "DURATION_OR_DATE", default_value = "24h")]
        since: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// The effective config (file + LOJAD_* environment), secrets masked.
    #[command(after_help = "Example:\n  lojad config show\n  lojad config show --json")]
    Show,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Install and start the service (Linux: systemd unit; Windows: SCM service).
    #[command(
        after_help = "Example:\n  lojad --config /etc/loja/lojad.toml service install      # as root (sudo)\n  lojad --config /etc/loja/lojad.toml service install --root /tmp/pkgroot --binary /usr/local/bin/lojad"
    )]
    Install {
        /// Render the unit under this root instead of / (no systemctl calls).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Binary path the unit starts (default: this executable).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Service user.
        #[arg(long, default_value = "loja")]
        user: String,
        /// Enable but do not start.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove the service (config and data are kept).
    #[command(after_help = "Example:\n  lojad service uninstall      # as root (sudo)")]
    Uninstall {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Start the service.
    #[command(after_help = "Example:\n  lojad service start          # as root (sudo)")]
    Start,
    /// Stop the service (graceful: the current transaction finishes).
    #[command(after_help = "Example:\n  lojad service stop           # as root (sudo)")]
    Stop,
    /// Is the service running?
    #[command(after_help = "Example:\n  lojad service status")]
    Status,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The new lojad binary.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Its ed25519 signature (64 bytes, or 128 hex digits).
    #[arg(long, value_name = "PATH")]
    pub signature: PathBuf,
    /// Verify with this public key (64 hex digits or a file) instead of the embedded release key.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// Only verify; replace nothing.
    #[arg(long)]
    pub check: bool,
    /// Replace this file instead of the running binary (no restart).
    #[arg(long, value_name = "PATH", hide = true)]
    pub target: Option<PathBuf>,
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(exit::USAGE, error)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::FAILED,
            error,
        }
    }
}

type CliResult = Result<u8, Failure>;

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
        .unwrap_or_else(config::paths::default_config)
}

/// Loads the config with env overrides (and `extra`, e.g. `run`'s flags);
/// a missing or wrong config is a usage error (exit 2).
pub fn load_config(path: &Path, extra: &[Override]) -> Result<(Config, Vec<String>), Failure> {
    let mut overrides = config::env_overrides(std::env::vars());
    overrides.extend_from_slice(extra);
    Config::load_with(path, &overrides).map_err(|e| match e {
        ConfigError::Read { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => Failure::usage(anyhow!(
            "no config at {}: create one with `lojad init --central-url URL --store-id ID --store-token TOKEN`, \
             or give --config PATH (or LOJAD_CONFIG)",
            path.display()
        )),
        e => Failure::usage(e),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, e))
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| Failure::new(exit::FAILED, e))?
    );
    Ok(())
}

pub fn dispatch(cli: Cli) -> CliResult {
    let path = config_path(&cli);
    let json = cli.json;
    match cli.command {
        Command::Run(args) => cmd_run(&path, args),
        Command::Init(args) => cmd_init(cli.config.clone(), args),
        Command::Status => {
            let (config, _) = load_config(&path, &[])?;
            let report = crate::status::collect_offline(&config)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", crate::status::render_text(&report));
            }
            Ok(exit::OK)
        }
        Command::Sync { entities } => {
            let (config, _) = load_config(&path, &[])?;
            known_entities(
                &entities,
                &loja_protocol::ENTITIES.iter().collect::<Vec<_>>(),
            )?;
            crate::logging::init_cli("warn");
            let rt = runtime()?;
            let runs = rt.block_on(crate::jobs::sync_once(&config, &entities))?;
            report_runs(&rt, &config, &runs, json)
        }
        Command::Verify { entities } => {
            let (config, _) = load_config(&path, &[])?;
            known_entities(&entities, &crate::jobs::verify::entities_of("all"))?;
            crate::logging::init_cli("warn");
            let rt = runtime()?;
            let (run, checks) = rt.block_on(crate::jobs::verify_once(&config, &entities))?;
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
        Command::Upload => {
            let (config, _) = load_config(&path, &[])?;
            crate::logging::init_cli("warn");
            let rt = runtime()?;
            let run = rt.block_on(crate::jobs::upload_once(&config))?;
            report_runs(&rt, &config, std::slice::from_ref(&run), json)
        }
        Command::Tasks(cmd) => {
            let (config, _) = load_config(&path, &[])?;
            cmd_tasks(&config, cmd, json)
        }
        Command::Tickets(cmd) => {
            let (config, _) = load_config(&path, &[])?;
            cmd_tickets(&config, cmd, json)
        }
        Command::Log(args) => {
            let (config, _) = load_config(&path, &[])?;
            cmd_log(&config, args, json)
        }
        Command::Config(ConfigCmd::Show) => {
            let (config, warnings) = load_config(&path, &[])?;
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
        Command::Doctor => {
            let rt = runtime()?;
            let report = rt.block_on(crate::doctor::run(
                &path,
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
        Command::Service(cmd) => cmd_service(&path, cmd, json),
        Command::Update(args) => {
            let out = crate::update::run(
                &args.file,
                &args.signature,
                args.public_key.as_deref(),
                args.check,
                args.target.as_deref(),
            )?;
            if json {
                print_json(&out)?;
            } else {
                println!("{}", out.note);
                if let Some(p) = &out.replaced {
                    println!("installed: {}", p.display());
                }
            }
            Ok(exit::OK)
        }
        Command::ServiceMain => cmd_service_main(&path),
    }
}

/// Runs the daemon until `stop` completes (or SIGTERM / Ctrl-C arrives),
/// then shuts it down gracefully: the current transaction finishes, the
/// outbox writer drains, logs flush. The one shutdown path for SIGTERM,
/// Ctrl-C and the Windows SCM's stop.
pub fn run_until(
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let daemon = crate::daemon::start(config).await?;
        tokio::select! {
            _ = stop => tracing::info!("stop requested"),
            _ = shutdown_signal() => tracing::info!("signal received: shutting down"),
        }
        daemon.shutdown().await
    })
}

/// SIGTERM, SIGINT (Ctrl-C), SIGHUP on unix; Ctrl-C / Ctrl-Break elsewhere.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn cmd_run(path: &Path, args: RunArgs) -> CliResult {
    let mut flags = Vec::new();
    if let Some(v) = args.pos_listen {
        flags.push(Override::flag("--pos-listen", "pos.listen", v));
    }
    if let Some(v) = args.data_dir {
        flags.push(Override::flag("--data-dir", "store.data_dir", v));
    }
    if let Some(v) = args.central_url {
        flags.push(Override::flag("--central-url", "central.url", v));
    }
    if let Some(v) = args.log_level {
        flags.push(Override::flag("--log-level", "log.level", v));
    }
    let (config, warnings) = load_config(path, &flags)?;
    let _guard = crate::logging::init_daemon(&config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %path.display(),
        store = %config.store.id,
        data_dir = %config.store.data_dir.display(),
        pos = %config.pos.listen,
        "lojad starting"
    );
    run_until(config, std::future::pending())?;
    Ok(exit::OK)
}

fn cmd_service_main(path: &Path) -> CliResult {
    let (config, _) = load_config(path, &[])?;
    #[cfg(windows)]
    {
        crate::service::windows::run_dispatcher(config)?;
        Ok(exit::OK)
    }
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(Failure::usage(anyhow!(
            "service-main is the Windows service entry point: on this OS use `lojad run`"
        )))
    }
}

/// A random token: 128 bits from the OS's CSPRNG (UUID v4), hex.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )[..40]
        .to_string()
}

fn cmd_init(explicit: Option<PathBuf>, args: InitArgs) -> CliResult {
    let path = match explicit {
        Some(p) => p,
        None if args.system => config::paths::system_config(),
        None => config::paths::user_config()
            .ok_or_else(|| Failure::usage(anyhow!("no home directory: give --config PATH")))?,
    };
    if path.exists() && !args.force {
        return Err(Failure::usage(anyhow!(
            "{} already exists: edit it, or pass --force to replace it",
            path.display()
        )));
    }
    let data_dir = match args.data_dir {
        Some(d) => d,
        None if args.system => config::paths::system_data_dir(),
        None => config::paths::user_data_dir()
            .ok_or_else(|| Failure::usage(anyhow!("no home directory: give --data-dir")))?,
    };
    // Absolute, without `.` components: the service runs from another cwd.
    let data_dir: PathBuf = std::path::absolute(&data_dir)
        .unwrap_or(data_dir)
        .components()
        .collect();
    let generated = args.pos_token.is_none();
    let pos_token = args.pos_token.unwrap_or_else(random_token);
    let mut config = Config::example(
        &args.store_id,
        &data_dir,
        &args.central_url,
        &args.store_token,
        &pos_token,
    );
    config.pos.listen = args.pos_listen;
    let warnings = config
        .validate()
        .map_err(|(key, message)| Failure::usage(anyhow!("--{}: {message}", key_flag(key))))?;
    config.write(&path).map_err(Failure::usage)?;
    create_private_dir(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    for w in warnings {
        eprintln!("{w}");
    }
    println!("config written: {}", path.display());
    println!("data dir:       {}", data_dir.display());
    if generated {
        println!("POS token (terminal PDV01), shown once — configure it in the POS: {pos_token}");
    }
    println!("next: lojad --config {} doctor", path.display());
    Ok(exit::OK)
}

fn key_flag(key: &str) -> &'static str {
    match key {
        "central.url" => "central-url",
        "central.token" => "store-token",
        "store.id" => "store-id",
        "store.data_dir" => "data-dir",
        "pos.tokens" => "pos-token",
        "pos.listen" => "pos-listen",
        _ => "config",
    }
}

/// Creates `dir` (and parents) and restricts it to its owner on unix.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Is the central reachable at all (for the exit code of a failed sync)?
/// Probes the central's health endpoint; the error says why it cannot be
/// reached (refused, timeout, TLS: the certificate's issuer is unknown…),
/// with the whole cause chain, so the technician sees what to fix.
async fn central_reachable(config: &Config) -> Result<(), String> {
    let client = crate::doctor::http_client(config).map_err(|e| format!("{e:#}"))?;
    let url = format!("{}/v1/health", config.central.url.trim_end_matches('/'));
    match client.get(url).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(why)
        }
    }
}

/// A usage error naming the first of `names` that is not one of `known`.
fn known_entities(names: &[String], known: &[&loja_protocol::Entity]) -> Result<(), Failure> {
    match names
        .iter()
        .find(|n| !known.iter().any(|e| e.name == n.as_str()))
    {
        None => Ok(()),
        Some(n) => Err(Failure::usage(anyhow!(
            "unknown entity `{n}`; known: {}",
            known.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn report_runs(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    runs: &[loja_replica::JobRun],
    json: bool,
) -> CliResult {
    if json {
        print_json(&runs)?;
    } else {
        println!(
            "{:<5} {:<22} {:<9} {:>9} {:>8}  message",
            "code", "subject", "outcome", "rows", "ms"
        );
        for r in runs {
            println!(
                "{:<5} {:<22} {:<9} {:>9} {:>8}  {}",
                r.code,
                r.subject,
                crate::jobs::outcome_str(r.outcome),
                r.rows,
                r.duration_ms,
                r.message.as_deref().unwrap_or("")
            );
        }
    }
    report_runs_exit(rt, config, runs)
}

/// The exit code of a CLI run of jobs: OK, FAILED, or UNREACHABLE when a
/// job failed and the central does not answer.
fn report_runs_exit(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    runs: &[loja_replica::JobRun],
) -> CliResult {
    use loja_replica::Outcome;
    let failed = runs.iter().filter(|r| r.outcome == Outcome::Failed).count();
    if failed == 0 {
        return Ok(exit::OK);
    }
    if let Err(why) = rt.block_on(central_reachable(config)) {
        eprintln!(
            "lojad: {failed} job(s) failed: the central at {} is unreachable ({why}); \
             `lojad doctor` checks the network, TLS and clock",
            config.central.url
        );
        return Ok(exit::UNREACHABLE);
    }
    eprintln!("lojad: {failed} job(s) failed (see `lojad log --failed`)");
    Ok(exit::FAILED)
}

fn find_ticket(config: &Config, id: i64) -> Result<loja_replica::TicketDetail, Failure> {
    open_journal(config)?
        .ticket(id)
        .map_err(|e| Failure::new(exit::FAILED, e))?
        .ok_or_else(|| {
            Failure::new(
                exit::FAILED,
                anyhow!("no ticket {id} (it may have been purged by retention)"),
            )
        })
}

fn open_journal(config: &Config) -> Result<loja_replica::Journal, Failure> {
    let dir = &config.store.data_dir;
    if !dir.join("journal.db").exists() {
        return Err(Failure::new(
            exit::FAILED,
            anyhow!(
                "{} has no journal.db: run `lojad run` or `lojad sync` first (or check store.data_dir)",
                dir.display()
            ),
        ));
    }
    loja_replica::Journal::open(dir).map_err(|e| Failure::new(exit::FAILED, e))
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

fn cmd_tasks(config: &Config, cmd: TasksCmd, json: bool) -> CliResult {
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
    create_private_dir(&config.store.data_dir).map_err(|e| Failure::new(exit::FAILED, e))?;
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

/// `30m`, `2h`, `7d`, `90s` ago, or `2026-11-01`, or RFC 3339 → RFC 3339.
pub fn parse_since(s: &str) -> Result<String, Failure> {
    let s = s.trim();
    if let Some(t) = loja_protocol::time::parse(s) {
        return Ok(loja_protocol::time::format(t));
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(loja_protocol::time::format(d.midnight().assume_utc()));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| bad_since(s))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return Err(bad_since(s)),
    };
    Ok(loja_protocol::time::format(
        time::OffsetDateTime::now_utc() - time::Duration::seconds(secs),
    ))
}

fn bad_since(s: &str) -> Failure {
    Failure::usage(anyhow!(
        "--since `{s}`: give a duration (30m, 2h, 7d) or a date (2026-11-01, RFC 3339)"
    ))
}

fn cmd_tickets(config: &Config, cmd: TicketsCmd, json: bool) -> CliResult {
    use loja_replica::{TicketFilter, TicketKind};
    let fail = |e: loja_replica::ReplicaError| Failure::new(exit::FAILED, e);
    match cmd {
        TicketsCmd::List {
            failed,
            kind,
            since,
            limit,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let kind = kind.as_deref().map(|k| {
                if k == "feed" {
                    TicketKind::Feed
                } else {
                    TicketKind::Upload
                }
            });
            let list = open_journal(config)?
                .tickets(&TicketFilter {
                    failed_only: failed,
                    kind,
                    since,
                    limit,
                })
                .map_err(fail)?;
            if json {
                print_json(&list)?;
            } else {
                println!(
                    "{:>7} {:<21} {:<6} {:<20} {:<6} {:>5} {:>7} {:>9}  error",
                    "id", "created", "kind", "subject", "status", "http", "items", "bytes"
                );
                for t in &list {
                    println!(
                        "{:>7} {:<21} {:<6} {:<20} {:<6} {:>5} {:>7} {:>9}  {}",
                        t.id,
                        t.created_at,
                        kind_str(t.kind),
                        t.subject,
                        if t.status == loja_replica::TicketStatus::Ok {
                            "ok"
                        } else {
                            "FAILED"
                        },
                        t.http_status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        t.items,
                        t.bytes,
                        t.error.as_deref().unwrap_or("")
                    );
                }
                if list.is_empty() {
                    println!("(no tickets)");
                }
            }
            Ok(exit::OK)
        }
        TicketsCmd::Show { id } => {
            let t = find_ticket(config, id)?;
            if json {
                print_json(&t)?;
            } else {
                let s = &t.summary;
                println!(
                    "ticket {} — {} {} — {}",
                    s.id,
                    kind_str(s.kind),
                    s.subject,
                    s.created_at
                );
                println!(
                    "status: {:?}  http: {}  items: {}  range: {}..{}  {} ms  {} bytes archived",
                    s.status,
                    s.http_status
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.items,
                    s.range_from.map(|v| v.to_string()).unwrap_or_default(),
                    s.range_to.map(|v| v.to_string()).unwrap_or_default(),
                    s.duration_ms,
                    s.bytes
                );
                if let Some(e) = &s.error {
                    println!("error: {e}");
                }
                println!("--- request ---\n{}", t.request);
                println!("--- response ---\n{}", t.response);
            }
            Ok(exit::OK)
        }
        TicketsCmd::Reprocess { id } => {
            let t = find_ticket(config, id)?;
            match t.summary.kind {
                TicketKind::Feed => {
                    let msg = format!(
                        "ticket {id} is a feed download of `{}`: nothing to requeue. Downloads resume from the \
                         replica's watermark; run `lojad sync {}` to download it again now.",
                        t.summary.subject, t.summary.subject
                    );
                    if json {
                        print_json(
                            &serde_json::json!({ "ticket": id, "requeued": 0, "note": msg }),
                        )?;
                    } else {
                        println!("{msg}");
                    }
                    Ok(exit::OK)
                }
                TicketKind::Upload => {
                    let batch: loja_protocol::DocumentBatch = serde_json::from_str(&t.request)
                        .map_err(|e| {
                            Failure::new(
                                exit::FAILED,
                                anyhow!("ticket {id}'s request is not a document batch: {e}"),
                            )
                        })?;
                    let ids: Vec<uuid::Uuid> = batch.documents.iter().map(|d| d.id).collect();
                    let mut outbox =
                        loja_replica::Outbox::open(&config.store.data_dir).map_err(fail)?;
                    let n = outbox.requeue(&ids).map_err(fail)?;
                    if json {
                        print_json(
                            &serde_json::json!({ "ticket": id, "documents": ids.len(), "requeued": n }),
                        )?;
                    } else {
                        println!(
                            "ticket {id}: {n} of {} document(s) queued again; the next upload sends them \
                             (now: `lojad upload`). The central's idempotency makes a resend harmless.",
                            ids.len()
                        );
                    }
                    Ok(exit::OK)
                }
            }
        }
        TicketsCmd::Report { since } => {
            let since = parse_since(&since)?;
            let rows = open_journal(config)?.report(&since).map_err(fail)?;
            if json {
                print_json(&serde_json::json!({ "since": since, "rows": rows }))?;
            } else {
                println!("since {since}");
                println!(
                    "{:<6} {:<22} {:>7} {:>8} {:>9} {:>11}",
                    "kind", "subject", "count", "failures", "items", "bytes"
                );
                for r in &rows {
                    println!(
                        "{:<6} {:<22} {:>7} {:>8} {:>9} {:>11}",
                        kind_str(r.kind),
                        r.subject,
                        r.count,
                        r.failures,
                        r.items,
                        r.bytes
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}

fn kind_str(k: loja_replica::TicketKind) -> &'static str {
    match k {
        loja_replica::TicketKind::Feed => "feed",
        loja_replica::TicketKind::Upload => "upload",
    }
}

fn cmd_log(config: &Config, args: LogArgs, json: bool) -> CliResult {
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

fn cmd_service(path: &Path, cmd: ServiceCmd, json: bool) -> CliResult {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    #[cfg(not(windows))]
    {
        let _ = json;
        match cmd {
            ServiceCmd::Install {
                root,
                binary,
                user,
                no_start,
            } => {
                let binary = match binary {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating this executable")?,
                };
                let data_dir = Config::load_with(path, &config::env_overrides(std::env::vars()))
                    .map(|(c, _)| c.store.data_dir)
                    .unwrap_or_else(|_| config::paths::system_data_dir());
                let paths = crate::service::UnitPaths {
                    binary: abs(&binary),
                    config: abs(path),
                    data_dir: abs(&data_dir),
                    user,
                };
                let root = root.unwrap_or_else(|| PathBuf::from("/"));
                if root == Path::new("/") && !path.exists() {
                    return Err(Failure::usage(anyhow!(
                        "no config at {}: run `lojad init --system …` first",
                        path.display()
                    )));
                }
                let unit = crate::service::install(&paths, &root, !no_start)?;
                println!("unit written: {}", unit.display());
                if root == Path::new("/") {
                    println!(
                        "lojad.service enabled{}",
                        if no_start { "" } else { " and started" }
                    );
                }
                Ok(exit::OK)
            }
            ServiceCmd::Uninstall { root } => {
                let unit = crate::service::uninstall(&root.unwrap_or_else(|| PathBuf::from("/")))?;
                println!("removed {} (config and data kept)", unit.display());
                Ok(exit::OK)
            }
            ServiceCmd::Start => {
                crate::service::systemctl(&["start", crate::service::UNIT_NAME])?;
                Ok(exit::OK)
            }
            ServiceCmd::Stop => {
                crate::service::systemctl(&["stop", crate::service::UNIT_NAME])?;
                Ok(exit::OK)
            }
            ServiceCmd::Status => {
                let out = std::process::Command::new("systemctl")
                    .args(["is-active", crate::service::UNIT_NAME])
                    .output()
                    .context("running systemctl")?;
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                println!("lojad.service: {state}");
                Ok(if state == "active" {
                    exit::OK
                } else {
                    exit::FAILED
                })
            }
        }
    }
    #[cfg(windows)]
    {
        let _ = json;
        match cmd {
            ServiceCmd::Install { binary, .. } => {
                let binary = match binary {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating this executable")?,
                };
                crate::service::windows::install(&abs(&binary), &abs(path))?;
                println!("service lojad installed and started");
            }
            ServiceCmd::Uninstall { .. } => crate::service::windows::uninstall()?,
            ServiceCmd::Start => crate::service::windows::start()?,
            ServiceCmd::Stop => crate::service::windows::stop()?,
            ServiceCmd::Status => println!("lojad: {}", crate::service::windows::status()?),
        }
        Ok(exit::OK)
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

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("2026-11-01").unwrap(), "2026-11-01T00:00:00Z");
        assert_eq!(
            parse_since("2026-11-01T10:00:00Z").unwrap(),
            "2026-11-01T10:00:00Z"
        );
        assert!(parse_since("2h").unwrap() < loja_protocol::time::now_rfc3339());
        assert!(parse_since("soon").is_err());
    }
}
