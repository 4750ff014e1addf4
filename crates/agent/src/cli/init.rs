//! `lojad init`: writes a new config and creates the data dir.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Args;

use super::common::{CliResult, Failure, exit};
use crate::config::{self, Config};

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

pub fn run(explicit: Option<PathBuf>, args: InitArgs) -> CliResult {
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
    config::paths::create_private_dir(&data_dir)
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

/// A random token: 128 bits from the OS's CSPRNG (UUID v4), hex.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )[..40]
        .to_string()
}
