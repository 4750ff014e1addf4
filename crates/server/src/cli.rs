//! The `retaguarda-server` command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::catalog::CatalogSpec;
use crate::db::Db;
use crate::nodes::{NewNode, NodeKind};
use crate::{ServerConfig, avail, nodes};

#[derive(Parser, Debug)]
#[command(
    name = "retaguarda-server",
    version,
    about = "Reference central back office (retaguarda) of the Loja sync protocol",
    after_help = "Example:\n  retaguarda-server serve --db central.db --listen 127.0.0.1:8080 --admin-token s3cret\n\n\
                  Protocol: docs/protocol.md. Entities: docs/entities.md (or `retaguarda-server docs`)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct DbArg {
    /// The central's database, created and migrated if needed: a SQLite
    /// file (`sqlite:PATH`, or just the path) or PostgreSQL
    /// (`postgres://user@host/dbname`; the password from PGPASSWORD or a
    /// ~/.pgpass is not read: put it in the URL or use peer/cert auth).
    #[arg(
        long = "database",
        visible_alias = "db",
        value_name = "sqlite:PATH|postgres://…"
    )]
    db: crate::db::Location,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the HTTP API (HTTPS with --tls-cert/--tls-key).
    #[command(
        after_help = "Example:\n  RETAGUARDA_ADMIN_TOKEN=s3cret retaguarda-server serve --db central.db --listen 0.0.0.0:8443 \\\n    \
                            --tls-cert cert.pem --tls-key key.pem\n\n\
                            Prints `listening on ADDR` on stdout once it accepts connections (port 0 picks one)."
    )]
    Serve {
        #[command(flatten)]
        db: DbArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: SocketAddr,
        /// Bearer token of the admin/ERP endpoints.
        #[arg(
            long,
            env = "RETAGUARDA_ADMIN_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        admin_token: String,
        /// PEM certificate chain (serve HTTPS).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also write the bound address to this file.
        #[arg(long, value_name = "PATH")]
        port_file: Option<PathBuf>,
    },
    /// Write a synthetic, deterministic catalog into the database.
    #[command(
        after_help = "Example:\n  retaguarda-server node add --db central.db --id loja-0001 --kind store --token XXXXXXXX\n  retaguarda-server gen --db central.db --products 200000 --customers 100000 --stock\n\n\
                            Writes states, cities, ncm, products, 2 EAN-13 barcodes per product, a base price,\n\
                            product taxes, customers with valid CPFs and the small reference lists, public rows\n\
                            of node master; and for every store already added, its own store setup and (with\n\
                            --stock) its own stock. Same --seed, same rows."
    )]
    Gen {
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value_t = 1000)]
        products: u64,
        #[arg(long, default_value_t = 500)]
        customers: u64,
        /// Also write a stock row per product for every store already added (add the stores first).
        #[arg(long)]
        stock: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Manage the node hierarchy (master -> centrals -> stores).
    #[command(subcommand)]
    Node(NodeCmd),
    /// Per-entity availability minutes (how often new data is released to a store).
    #[command(subcommand)]
    Availability(AvailabilityCmd),
    /// Central settings: `erp_owns_stock` (true: the ERP keeps the stores' stock; default false:
    /// the central applies the stores' stock documents itself).
    #[command(
        subcommand,
        after_help = "Example:\n  retaguarda-server setting set erp_owns_stock true --db central.db\n  retaguarda-server setting list --db central.db"
    )]
    Setting(SettingCmd),
    /// Stores never held back by the availability window.
    #[command(subcommand)]
    Exception(ExceptionCmd),
    /// Per-store last-download control.
    #[command(subcommand)]
    Downloads(DownloadsCmd),
    /// Signed lojad releases: keys, publish, staged rollout (docs/update.md).
    #[command(
        subcommand,
        after_help = "Example:\n  retaguarda-server release publish --db central.db --key release.key --version 0.2.0 --artifact x86_64-linux=lojad\n  retaguarda-server release list --db central.db"
    )]
    Release(crate::release_cli::ReleaseCmd),
    /// Print docs/entities.md (the entity reference), or the JSON Schemas.
    #[command(
        after_help = "Example:\n  retaguarda-server docs > docs/entities.md\n  retaguarda-server docs --schema | jq .entities.prices"
    )]
    Docs {
        /// Print the JSON Schemas instead of markdown.
        #[arg(long)]
        schema: bool,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Add a central or a store (or update a store's parent/token).
    #[command(
        after_help = "Examples:\n  retaguarda-server node add --db central.db --id sul --parent master --kind central\n  \
                            retaguarda-server node add --db central.db --id loja-001 --parent sul --kind store --token 'long-random-token'"
    )]
    Add {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "master")]
        parent: String,
        /// central or store
        #[arg(long, value_parser = ["central", "store"])]
        kind: String,
        /// The store's bearer token (stores only; stored hashed).
        #[arg(long, env = "RETAGUARDA_STORE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// List the nodes.
    #[command(after_help = "Example:\n  retaguarda-server node list --db central.db")]
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
enum AvailabilityCmd {
    /// Set an entity's availability minutes for the chain, a central or a store (0 = release at once).
    #[command(
        after_help = "Example:\n  retaguarda-server availability set prices 30 --db central.db              # the whole chain\n  retaguarda-server availability set stock 5 --node loja-0042 --db central.db  # one store"
    )]
    Set {
        entity: String,
        minutes: u32,
        /// The level: `master` (the whole chain), a central or a store.
        #[arg(long, default_value = "master")]
        node: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove a level's own setting: it follows the level above again.
    #[command(
        after_help = "Example:\n  retaguarda-server availability unset stock --node loja-0042 --db central.db"
    )]
    Unset {
        entity: String,
        #[arg(long, default_value = "master")]
        node: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List every entity's minutes as a level follows them, where they are set, and the default.
    #[command(
        after_help = "Example:\n  retaguarda-server availability list --db central.db\n  retaguarda-server availability list --node loja-0042 --db central.db"
    )]
    List {
        #[arg(long, default_value = "master")]
        node: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
enum SettingCmd {
    /// Set a setting.
    #[command(
        after_help = "Example:\n  retaguarda-server setting set erp_owns_stock true --db central.db"
    )]
    Set {
        #[arg(value_parser = ["erp_owns_stock"])]
        name: String,
        #[arg(value_parser = ["true", "false"])]
        value: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Every setting and its value.
    #[command(after_help = "Example:\n  retaguarda-server setting list --db central.db")]
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
enum ExceptionCmd {
    /// Never hold this store back.
    #[command(after_help = "Example:\n  retaguarda-server exception add loja-001 --db central.db")]
    Add {
        store: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Apply the availability window to this store again.
    #[command(
        after_help = "Example:\n  retaguarda-server exception remove loja-001 --db central.db"
    )]
    Remove {
        store: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the exception stores.
    #[command(after_help = "Example:\n  retaguarda-server exception list --db central.db")]
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
enum DownloadsCmd {
    /// Forget a store's last completed download (of one entity, or all), so its next one is not held.
    #[command(
        after_help = "Example:\n  retaguarda-server downloads reset loja-001 prices --db central.db\n\n\
                            On a running server prefer DELETE /v1/admin/stores/{store}/downloads/{entity}:\n\
                            a download the server has not written yet is not seen here."
    )]
    Reset {
        store: String,
        entity: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Show a store's last completed downloads.
    #[command(after_help = "Example:\n  retaguarda-server downloads list loja-001 --db central.db")]
    List {
        store: String,
        #[command(flatten)]
        db: DbArg,
    },
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retaguarda-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn open(db: &DbArg) -> anyhow::Result<Db> {
    Db::open_at(&db.db).with_context(|| format!("open {}", db.db.display()))
}

/// A usage error unless `node` exists.
fn known_node(db: &Db, node: &str) -> anyhow::Result<()> {
    if db
        .read(|c| nodes::kind_of(c, node).map_err(crate::DbError::from))?
        .is_none()
    {
        bail!("no such node {node} (see `retaguarda-server node list`)");
    }
    Ok(())
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Release(cmd) => crate::release_cli::run(cmd),
        Cmd::Serve {
            db,
            listen,
            admin_token,
            tls_cert,
            tls_key,
            port_file,
        } => {
            init_logs();
            if admin_token.trim().is_empty() {
                bail!(
                    "the admin token must not be empty (--admin-token or RETAGUARDA_ADMIN_TOKEN)"
                );
            }
            let config = ServerConfig {
                db: db.db,
                listen,
                admin_token,
                tls_cert,
                tls_key,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let server = crate::spawn(config).await?;
                if let Some(p) = port_file {
                    std::fs::write(&p, server.addr.to_string())
                        .with_context(|| format!("write {}", p.display()))?;
                }
                println!("listening on {}", server.addr);
                std::io::stdout().flush()?;
                shutdown_signal().await;
                tracing::info!("stopping");
                server.shutdown().await;
                Ok(())
            })
        }
        Cmd::Gen {
            db,
            products,
            customers,
            stock,
            seed,
        } => {
            let spec = CatalogSpec {
                products,
                customers,
                stock,
                seed,
            };
            let report = crate::catalog::generate_into(&open(&db)?, &spec)?;
            for (entity, n) in &report.entities {
                println!("{entity:>18} {n:>10}");
            }
            println!(
                "{:>18} {:>10} rows in {:.2} s (last seq {})",
                "total",
                report.rows,
                report.elapsed.as_secs_f64(),
                report.last_seq
            );
            Ok(())
        }
        Cmd::Node(NodeCmd::Add {
            db,
            id,
            parent,
            kind,
            token,
        }) => {
            let kind = NodeKind::parse(&kind).context("kind must be central or store")?;
            let db = open(&db)?;
            let info = db.write(|tx| {
                nodes::upsert_node(
                    tx,
                    &NewNode {
                        id,
                        parent,
                        kind,
                        token,
                    },
                )
            })?;
            print_json(&info)
        }
        Cmd::Node(NodeCmd::List { db }) => {
            let db = open(&db)?;
            print_json(&db.read(|c| nodes::list(c).map_err(crate::DbError::from))?)
        }
        Cmd::Availability(AvailabilityCmd::Set {
            entity,
            minutes,
            node,
            db,
        }) => {
            let e = loja_protocol::entity_named(&entity)
                .with_context(|| format!("unknown entity {entity}"))?;
            let db = open(&db)?;
            known_node(&db, &node)?;
            db.write(|tx| avail::set_minutes(tx, &node, e, minutes).map_err(crate::DbError::from))?;
            println!("{entity}: {minutes} minutes at {node}");
            Ok(())
        }
        Cmd::Availability(AvailabilityCmd::Unset { entity, node, db }) => {
            let e = loja_protocol::entity_named(&entity)
                .with_context(|| format!("unknown entity {entity}"))?;
            let db = open(&db)?;
            known_node(&db, &node)?;
            let removed =
                db.write(|tx| avail::unset_minutes(tx, &node, e).map_err(crate::DbError::from))?;
            let (m, from) =
                db.read(|c| avail::resolved(c, &node, e).map_err(crate::DbError::from))?;
            println!(
                "{entity} at {node}: {}; now {m} minutes ({})",
                if removed {
                    "own setting removed"
                } else {
                    "had no setting of its own"
                },
                from.map_or("the default".to_owned(), |n| format!("set at {n}"))
            );
            Ok(())
        }
        Cmd::Availability(AvailabilityCmd::List { node, db }) => {
            let db = open(&db)?;
            known_node(&db, &node)?;
            for a in db.read(|c| avail::list_minutes(c, &node).map_err(crate::DbError::from))? {
                println!(
                    "{:>20} {:>5}  {:<24} (default {})",
                    a.entity,
                    a.minutes,
                    a.set_at
                        .map_or("default".to_owned(), |n| format!("set at {n}")),
                    a.default_minutes
                );
            }
            Ok(())
        }
        Cmd::Setting(SettingCmd::Set { name, value, db }) => {
            let db = open(&db)?;
            db.write(|tx| {
                tx.execute(
                    "INSERT INTO settings (name, value) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    crate::sql::params![name, value],
                )
                .map_err(crate::DbError::from)
            })?;
            println!("{name} = {value}");
            Ok(())
        }
        Cmd::Setting(SettingCmd::List { db }) => {
            let db = open(&db)?;
            let owns = db.read(|c| {
                crate::store_stock::central_owns_stock(c).map_err(crate::DbError::from)
            })?;
            println!("erp_owns_stock = {}", !owns);
            Ok(())
        }
        Cmd::Exception(ExceptionCmd::Add { store, db }) => {
            let db = open(&db)?;
            let kind = db.read(|c| nodes::kind_of(c, &store).map_err(crate::DbError::from))?;
            if kind != Some(NodeKind::Store) {
                bail!("no such store {store}");
            }
            db.write(|tx| avail::add_exception(tx, &store).map_err(crate::DbError::from))?;
            println!("{store}: never held back");
            Ok(())
        }
        Cmd::Exception(ExceptionCmd::Remove { store, db }) => {
            let db = open(&db)?;
            let removed =
                db.write(|tx| avail::remove_exception(tx, &store).map_err(crate::DbError::from))?;
            println!(
                "{store}: {}",
                if removed {
                    "removed from the exception list"
                } else {
                    "was not an exception"
                }
            );
            Ok(())
        }
        Cmd::Exception(ExceptionCmd::List { db }) => {
            let db = open(&db)?;
            for s in db.read(|c| avail::list_exceptions(c).map_err(crate::DbError::from))? {
                println!("{s}");
            }
            Ok(())
        }
        Cmd::Downloads(DownloadsCmd::Reset { store, entity, db }) => {
            if let Some(e) = &entity
                && loja_protocol::entity_named(e).is_none()
            {
                bail!("unknown entity {e}");
            }
            let db = open(&db)?;
            let n = db.write(|tx| {
                avail::reset_download(tx, &store, entity.as_deref()).map_err(crate::DbError::from)
            })?;
            println!("{store}: {n} download record(s) reset");
            Ok(())
        }
        Cmd::Downloads(DownloadsCmd::List { store, db }) => {
            let db = open(&db)?;
            print_json(
                &db.read(|c| avail::list_downloads(c, None, &store).map_err(crate::DbError::from))?,
            )
        }
        Cmd::Docs { schema } => {
            if schema {
                print_json(&crate::docs::all_schemas())
            } else {
                print!("{}", crate::docs::entities_markdown());
                Ok(())
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
