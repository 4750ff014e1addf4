//! `lojad update`: verify a signed release and install it in place of this binary.

use std::path::PathBuf;

use clap::Args;

use super::common::{CliResult, exit, print_json};

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

pub fn run(args: UpdateArgs, json: bool) -> CliResult {
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
