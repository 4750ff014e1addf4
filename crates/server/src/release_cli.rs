//! `retaguarda-server release …`: keys, publishing and the rollout's
//! controls (docs/update.md). Opens the database file like the other
//! subcommands; a running server sees the change on its next request.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::db::{Db, Location};
use crate::releases::{self, Control, DEFAULT_WAVES, Publish};

#[derive(Subcommand, Debug)]
pub enum ReleaseCmd {
    /// Release keys: create key files, have the root key vouch for or revoke a release key.
    #[command(
        subcommand,
        after_help = "Example:\n  retaguarda-server release key create --out root.key\n  retaguarda-server release key create --out release-2026.key\n  \
                      retaguarda-server release key sign --db central.db --root root.key --key PUBHEX --expires 2027-12-31T00:00:00Z"
    )]
    Key(KeyCmd),
    /// Sign a manifest for a build and store it with the build (the rollout starts now).
    #[command(
        after_help = "Example:\n  retaguarda-server release publish --db central.db --key release-2026.key --version 0.2.0 \\\n    \
                            --artifact x86_64-linux=target/release/lojad --min-from 0.1.0 --pilot sul --notes 'faster sync'\n\n\
                            Waves: AFTER:PERCENT,… from now (default 1h:1,24h:10,72h:100); --pilot nodes (a store,\n\
                            or a central: all its stores) take it at once. --rollback signs a manifest that may\n\
                            install an older version; --emergency offers it to every store at once."
    )]
    Publish {
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
        /// The release key file (`release key create`), signed by the root.
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        #[arg(long)]
        version: String,
        /// TARGET=FILE, once per target (x86_64-linux, x86_64-windows…).
        #[arg(long = "artifact", value_name = "TARGET=FILE", required = true)]
        artifacts: Vec<String>,
        /// The lowest version that may update to this one.
        #[arg(long, default_value = "0.0.0")]
        min_from: String,
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long, value_delimiter = ',')]
        pilot: Vec<String>,
        #[arg(long, default_value = DEFAULT_WAVES)]
        waves: String,
        /// Pause by itself when more than this share (percent) of the reporting stores rolled back.
        #[arg(long, default_value_t = 10)]
        halt_percent: u32,
        #[arg(long)]
        rollback: bool,
        #[arg(long)]
        emergency: bool,
    },
    /// The releases, their wave, pause state and the stores' reports.
    #[command(after_help = "Example:\n  retaguarda-server release list --db central.db")]
    List {
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
    },
    /// Stop offering a release to stores that do not have it.
    #[command(after_help = "Example:\n  retaguarda-server release pause 7 --db central.db")]
    Pause {
        sequence: u64,
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
    },
    /// Offer a paused release again, wave by wave.
    #[command(after_help = "Example:\n  retaguarda-server release resume 7 --db central.db")]
    Resume {
        sequence: u64,
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
    },
    /// Offer a release to every store at once (skipping the waves).
    #[command(after_help = "Example:\n  retaguarda-server release emergency 8 --db central.db")]
    Emergency {
        sequence: u64,
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
    },
    /// Hold a store or a group (a central) at a version; --clear removes the pin.
    #[command(
        after_help = "Example:\n  retaguarda-server release pin loja-0042 --version 0.1.0 --db central.db\n  retaguarda-server release pin sul --clear --db central.db"
    )]
    Pin {
        node: String,
        #[arg(long, required_unless_present = "clear")]
        version: Option<String>,
        #[arg(long)]
        clear: bool,
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Write a new ed25519 key file (mode 0600) and print its public key.
    #[command(
        after_help = "Example:\n  retaguarda-server release key create --out release-2026.key"
    )]
    Create {
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Print the public key of a key file (build lojad with the root's: LOJAD_ROOT_PUBLIC_KEY).
    #[command(after_help = "Example:\n  retaguarda-server release key public root.key")]
    Public { file: PathBuf },
    /// The root vouches for a release key until --expires (a new keyring version).
    #[command(
        after_help = "Example:\n  retaguarda-server release key sign --db central.db --root root.key --key PUBHEX --expires 2027-12-31T00:00:00Z"
    )]
    Sign {
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
        #[arg(long, value_name = "PATH")]
        root: PathBuf,
        /// The release key's public key (64 hex digits).
        #[arg(long)]
        key: String,
        #[arg(long)]
        expires: String,
    },
    /// The root withdraws a release key (stores refuse what it signs).
    #[command(
        after_help = "Example:\n  retaguarda-server release key revoke --db central.db --root root.key --key PUBHEX"
    )]
    Revoke {
        #[arg(
            long = "database",
            visible_alias = "db",
            value_name = "sqlite:PATH|postgres://…"
        )]
        db: Location,
        #[arg(long, value_name = "PATH")]
        root: PathBuf,
        #[arg(long)]
        key: String,
    },
}

fn open(location: &Location) -> anyhow::Result<Db> {
    Db::open_at(location).with_context(|| format!("open {}", location.display()))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn run(cmd: ReleaseCmd) -> anyhow::Result<()> {
    match cmd {
        ReleaseCmd::Key(KeyCmd::Create { out }) => {
            let key = releases::generate_key()?;
            releases::write_key_file(&out, &key)?;
            println!(
                "{}",
                loja_protocol::release::hex(key.verifying_key().as_bytes())
            );
        }
        ReleaseCmd::Key(KeyCmd::Public { file }) => {
            let key = releases::read_key_file(&file)?;
            println!(
                "{}",
                loja_protocol::release::hex(key.verifying_key().as_bytes())
            );
        }
        ReleaseCmd::Key(KeyCmd::Sign {
            db,
            root,
            key,
            expires,
        }) => {
            let root = releases::read_key_file(&root)?;
            print_json(&releases::sign_key(&open(&db)?, &root, &key, &expires)?)?;
        }
        ReleaseCmd::Key(KeyCmd::Revoke { db, root, key }) => {
            let root = releases::read_key_file(&root)?;
            print_json(&releases::revoke_key(&open(&db)?, &root, &key)?)?;
        }
        ReleaseCmd::Publish {
            db,
            key,
            version,
            artifacts,
            min_from,
            notes,
            pilot,
            waves,
            halt_percent,
            rollback,
            emergency,
        } => {
            let key = releases::read_key_file(&key)?;
            let mut files = BTreeMap::new();
            for a in &artifacts {
                let Some((target, file)) = a.split_once('=') else {
                    bail!("--artifact {a:?}: expected TARGET=FILE");
                };
                let bytes = std::fs::read(file).with_context(|| format!("read {file}"))?;
                files.insert(target.to_owned(), bytes);
            }
            let manifest = releases::publish(
                &open(&db)?,
                Publish {
                    version,
                    min_from,
                    notes,
                    rollback,
                    emergency,
                    pilot,
                    waves,
                    halt_percent,
                    artifacts: files,
                    key: &key,
                },
            )?;
            print_json(&manifest)?;
        }
        ReleaseCmd::List { db } => {
            let db = open(&db)?;
            print_json(&db.read(releases::list)?)?;
        }
        ReleaseCmd::Pause { sequence, db } => {
            releases::control(&open(&db)?, sequence, Control::Pause)?
        }
        ReleaseCmd::Resume { sequence, db } => {
            releases::control(&open(&db)?, sequence, Control::Resume)?
        }
        ReleaseCmd::Emergency { sequence, db } => {
            releases::control(&open(&db)?, sequence, Control::Emergency)?
        }
        ReleaseCmd::Pin {
            node,
            version,
            clear,
            db,
        } => {
            let version = if clear { None } else { version };
            releases::pin(&open(&db)?, &node, version.as_deref())?
        }
    }
    Ok(())
}
