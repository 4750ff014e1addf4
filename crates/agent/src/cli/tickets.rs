//! `lojad tickets`: every exchange with the central, archived: list, show,
//! reprocess, report.

use anyhow::anyhow;
use clap::Subcommand;

use super::common::{CliResult, Failure, exit, open_journal, parse_since, print_json};
use crate::config::Config;

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
        /// `feed`, `upload` or `verdicts` (the ERP's, on this store's documents).
        #[arg(long, value_parser = ["feed", "upload", "verdicts"])]
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
    /// Queue an upload ticket's documents again, or those the ERP rejected in a
    /// verdicts ticket: the central offers a delivered one to the ERP again.
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

pub fn run(config: &Config, cmd: TicketsCmd, json: bool) -> CliResult {
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
            let kind = kind.as_deref().and_then(TicketKind::parse);
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
                        t.kind.as_str(),
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
                    s.kind.as_str(),
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
                TicketKind::Upload | TicketKind::Verdicts => {
                    let ids = ticket_documents(&t)?;
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
                        r.kind.as_str(),
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

/// The documents a ticket is about: an upload's batch, or the documents
/// the ERP rejected in a page of verdicts.
fn ticket_documents(t: &loja_replica::TicketDetail) -> Result<Vec<uuid::Uuid>, Failure> {
    let id = t.summary.id;
    let unreadable = |what: &str, e: serde_json::Error| {
        Failure::new(exit::FAILED, anyhow!("ticket {id}'s {what}: {e}"))
    };
    if t.summary.kind == loja_replica::TicketKind::Verdicts {
        let page: loja_protocol::verdict::VerdictPage = serde_json::from_str(&t.response)
            .map_err(|e| unreadable("response is not a page of verdicts", e))?;
        return Ok(page
            .verdicts
            .iter()
            .filter(|v| v.verdict.status == loja_protocol::verdict::VerdictStatus::Rejected)
            .map(|v| v.verdict.id)
            .collect());
    }
    let batch: loja_protocol::DocumentBatch = serde_json::from_str(&t.request)
        .map_err(|e| unreadable("request is not a document batch", e))?;
    Ok(batch.documents.iter().map(|d| d.id).collect())
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
