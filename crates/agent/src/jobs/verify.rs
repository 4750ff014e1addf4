//! The replica verify job (VRF): is the replica what the central says this
//! store should hold? Pages are checked one by one as they arrive (their
//! `Loja-Digest`); this catches what drifts anyway: a restored backup, a
//! hand edit, a bug.
//!
//! Per entity: the central's digest per key bucket and the replica's, at
//! the same watermark (a store behind first downloads what it misses);
//! only the buckets that differ are fetched again and repaired, each in one
//! transaction that applies only at that watermark. Every repair is logged
//! (entity, buckets, rows) and counted for `/metrics`.

use super::{JobCtx, JobResult};
use crate::runtime::{blocking, lock};
use crate::verify_stats::EntityCheck;
use loja_protocol::digest::buckets_for;
use loja_protocol::{ENTITIES, Entity, EntityDigest};
use loja_replica::{Repair, ReplicaError};

/// Comparisons of one entity before giving up (a page applied between the
/// two digests, or a store still catching up).
const ATTEMPTS: usize = 3;

/// The entities a verify of `subject` covers (`all`: every one but the
/// secret ones, registry order).
pub fn entities_of(subject: &str) -> Vec<&'static Entity> {
    ENTITIES
        .iter()
        .filter(|e| !e.secret && (subject == "all" || e.name == subject))
        .collect()
}

/// The scheduled job: every entity of the task's subject.
pub async fn run(ctx: &JobCtx, subject: &str) -> JobResult {
    let checks = verify_all(ctx, &entities_of(subject)).await;
    summarize(&checks)
}

pub fn summarize(checks: &[EntityCheck]) -> JobResult {
    let repaired: u64 = checks.iter().map(EntityCheck::repaired).sum();
    let drifted: Vec<String> = checks
        .iter()
        .filter(|c| c.differing > 0)
        .map(|c| format!("{} ({} rows)", c.entity, c.repaired()))
        .collect();
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.entity)))
        .collect();
    let compared = checks.len() - failed.len();
    let mut message = format!("{compared} entities compared");
    if drifted.is_empty() {
        message.push_str(", all equal to the central");
    } else {
        message.push_str(&format!(", repaired {}", drifted.join(", ")));
    }
    if !failed.is_empty() {
        message.push_str(&format!("; not compared: {}", failed.join("; ")));
        return JobResult::failed(repaired, message);
    }
    let mut r = JobResult::ok(repaired);
    r.message = Some(message);
    r
}

/// Verifies each entity in turn (one at a time: the central builds a
/// digest under a feed permit, as a page).
pub async fn verify_all(ctx: &JobCtx, entities: &[&'static Entity]) -> Vec<EntityCheck> {
    let mut out = Vec::with_capacity(entities.len());
    for entity in entities {
        if ctx.stopping() {
            break;
        }
        let check = verify_entity(ctx, entity).await;
        ctx.state.verify.record(&check);
        if let Some(e) = &check.error {
            tracing::warn!(entity = entity.name, error = %e, "verify: not compared");
        } else if check.differing > 0 {
            tracing::warn!(
                entity = entity.name,
                buckets = check.differing,
                upserts = check.upserts,
                deletes = check.deletes,
                kept_local = check.kept_local,
                "verify: the replica had drifted from the central; repaired"
            );
        }
        out.push(check);
    }
    out
}

async fn verify_entity(ctx: &JobCtx, entity: &'static Entity) -> EntityCheck {
    let mut check = EntityCheck {
        entity: entity.name,
        ..EntityCheck::default()
    };
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        match compare_and_repair(ctx, entity, &mut check).await {
            Ok(Step::Done) => {
                check.error = None;
                return check;
            }
            Ok(Step::Behind { ours, theirs }) => {
                last_error = format!(
                    "the replica is at {ours}, the central at {theirs}, after {} downloads",
                    attempt + 1
                );
                // Catch up first: the digests are comparable only at the
                // same watermark.
                let r = super::download::run(ctx, entity).await;
                if r.outcome != loja_replica::Outcome::Ok {
                    last_error = format!(
                        "the replica is behind the central ({ours} < {theirs}) and the download did not complete: {}",
                        r.message.unwrap_or_default()
                    );
                    break;
                }
            }
            Ok(Step::Ahead { ours, theirs }) => {
                last_error = format!(
                    "the replica is ahead of the central (watermark {ours} > the central's {theirs}): a central restored from a backup? Reset this entity's download (lojad reset) to take the central's data"
                );
                break;
            }
            Ok(Step::Moved) => {
                last_error = "the replica changed while it was repaired".into();
            }
            Err(e) => {
                last_error = e;
                break;
            }
        }
    }
    check.error = Some(last_error);
    check
}

enum Step {
    Done,
    Behind {
        ours: u64,
        theirs: u64,
    },
    Ahead {
        ours: u64,
        theirs: u64,
    },
    /// A page was applied between the digest and the repair.
    Moved,
}

async fn compare_and_repair(
    ctx: &JobCtx,
    entity: &'static Entity,
    check: &mut EntityCheck,
) -> Result<Step, String> {
    let catalog = ctx.state.catalog.clone();
    let rows = blocking(move || lock(&catalog).row_count(entity))
        .await?
        .map_err(|e| format!("counting rows: {e}"))?;
    let buckets = buckets_for(rows);
    let theirs = ctx
        .central
        .entity_digest(entity.name, buckets)
        .await
        .map_err(|e| e.to_string())?;
    // The digest reads through a connection of its own, not the writer's.
    let dir = ctx.config().store.data_dir.clone();
    let ours: EntityDigest =
        blocking(move || loja_replica::Catalog::digest_in(&dir, entity, buckets))
            .await?
            .map_err(|e| format!("reading the replica: {e}"))?;
    let (o, t) = (ours.through.0, theirs.through.0);
    if o < t {
        return Ok(Step::Behind { ours: o, theirs: t });
    }
    if o > t {
        return Ok(Step::Ahead { ours: o, theirs: t });
    }
    check.rows = theirs.rows();
    check.buckets = theirs.buckets;
    let differing = theirs.differing(&ours);
    check.differing = differing.len() as u32;
    for bucket in differing {
        let rows = ctx
            .central
            .bucket_rows(entity.name, buckets, bucket)
            .await
            .map_err(|e| e.to_string())?;
        if rows.through != theirs.through {
            // The central moved on since its digest: compare again.
            return Ok(Step::Behind {
                ours: o,
                theirs: rows.through.0,
            });
        }
        let catalog = ctx.state.catalog.clone();
        let repaired: Result<Repair, ReplicaError> =
            crate::priority::background("repair", move || {
                lock(&catalog).repair_bucket(entity, &rows)
            })
            .await?;
        match repaired {
            Ok(r) => {
                check.upserts += r.upserts;
                check.deletes += r.deletes;
                check.kept_local += r.kept_local;
            }
            Err(ReplicaError::Page { .. }) => return Ok(Step::Moved),
            Err(e) => return Err(format!("repairing bucket {bucket}: {e}")),
        }
    }
    Ok(Step::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_summaries() {
        assert_eq!(
            entities_of("all").len(),
            ENTITIES.iter().filter(|e| !e.secret).count()
        );
        assert_eq!(entities_of("prices").len(), 1);
        assert!(entities_of("store_certificate").is_empty());
        let ok = EntityCheck {
            entity: "prices",
            rows: 10,
            buckets: 1,
            ..EntityCheck::default()
        };
        let drift = EntityCheck {
            entity: "stock",
            differing: 1,
            upserts: 2,
            deletes: 1,
            ..EntityCheck::default()
        };
        let r = summarize(&[ok.clone(), drift.clone()]);
        assert_eq!(r.outcome, loja_replica::Outcome::Ok);
        assert_eq!(r.rows, 3);
        assert!(r.message.unwrap().contains("stock (3 rows)"));
        let failed = EntityCheck {
            entity: "ncm",
            error: Some("unreachable".into()),
            ..EntityCheck::default()
        };
        let r = summarize(&[ok, failed]);
        assert_eq!(r.outcome, loja_replica::Outcome::Failed);
        assert!(r.message.unwrap().contains("ncm: unreachable"));
    }
}
