//! `lojad documents`: one document of the outbox, and its correction. A
//! support technician shows a refused document (its body as the POS sent
//! it, and why it was refused), edits the body, and sends it again under a
//! new id that names the refused one (`replaces`).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::Value;
use uuid::Uuid;

use super::common::{CliResult, Failure, exit, print_json};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum DocumentsCmd {
    /// A document of the outbox: status, why it was refused, body.
    #[command(
        after_help = "Example:\n  lojad documents show 0194b3a2-0000-7000-8000-000000000001\n  lojad documents show 0194b3a2-0000-7000-8000-000000000001 --body-only > fixed.json"
    )]
    Show {
        id: Uuid,
        /// Print only the body (JSON), ready to edit and send back with `replace`.
        #[arg(long)]
        body_only: bool,
    },
    /// Send a corrected body in place of a document the central or the ERP refused.
    #[command(
        after_help = "Example:\n  lojad documents show ID --body-only > fixed.json\n  (edit fixed.json)\n  lojad documents replace ID --body fixed.json && lojad upload\n\nThe correction gets a new id and names the refused one; the refused one leaves\nthe failures, the cash and fiscal checks, and what it did to the stock is undone."
    )]
    Replace {
        /// The refused document.
        id: Uuid,
        /// The corrected body (JSON, same kind), `-` for stdin.
        #[arg(long, value_name = "FILE")]
        body: PathBuf,
    },
}

pub fn run(config: &Config, cmd: DocumentsCmd, json: bool) -> CliResult {
    let fail = |e: loja_replica::ReplicaError| Failure::new(exit::FAILED, e);
    let mut outbox = loja_replica::Outbox::open(&config.store.data_dir).map_err(fail)?;
    match cmd {
        DocumentsCmd::Show { id, body_only } => {
            let Some(d) = outbox.get(id).map_err(fail)? else {
                return Err(Failure::new(
                    exit::FAILED,
                    anyhow!(
                        "no document {id} in the outbox (delivered ones are purged after their retention)"
                    ),
                ));
            };
            if body_only {
                print_json(&d.document.body)?;
            } else if json {
                print_json(&serde_json::json!({
                    "document": d.document,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "delivered_at": d.delivered_at,
                }))?;
            } else {
                let doc = &d.document;
                println!(
                    "document {} — {} of register {} — store_seq {} — accepted {}",
                    doc.id,
                    doc.kind.as_str(),
                    doc.register,
                    doc.store_seq,
                    doc.accepted_at
                );
                println!("status: {}  attempts: {}", d.status, d.attempts);
                if let Some(e) = &d.last_error {
                    println!("refused: {e}");
                }
                if let Some(r) = doc.replaces {
                    println!("replaces: {r}");
                }
                println!("--- body ---");
                print_json(&doc.body)?;
            }
            Ok(exit::OK)
        }
        DocumentsCmd::Replace { id, body } => {
            let text = if body.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| Failure::usage(anyhow!("reading the body from stdin: {e}")))?
            } else {
                std::fs::read_to_string(&body).map_err(|e| {
                    Failure::usage(anyhow!("reading the body from {}: {e}", body.display()))
                })?
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::usage(anyhow!("{}: not JSON: {e}", body.display())))?;
            let Some(refused) = outbox.get(id).map_err(fail)? else {
                return Err(Failure::new(
                    exit::FAILED,
                    anyhow!("no document {id} in the outbox"),
                ));
            };
            let doc = loja_replica::NewDocument {
                id: Uuid::new_v4(),
                kind: refused.document.kind,
                body: value,
            };
            let accepted = outbox.replace(id, &doc).map_err(|e| match e {
                loja_replica::ReplicaError::Invalid(f) => {
                    Failure::new(exit::FAILED, anyhow!("the correction is refused: {f}"))
                }
                e => fail(e),
            })?;
            if json {
                print_json(&serde_json::json!({
                    "replaced": id,
                    "id": accepted.id,
                    "store_seq": accepted.store_seq,
                }))?;
            } else {
                println!(
                    "document {} (store_seq {}) replaces {id}; the next upload sends it (now: `lojad upload`).",
                    accepted.id, accepted.store_seq
                );
            }
            Ok(exit::OK)
        }
    }
}
