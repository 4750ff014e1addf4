//! What changed between two heads, once for every long-poll.
//!
//! Every write that moves the head (an import, a store's upload whose
//! stock the central applied) wakes every store's events long-poll. Most
//! of those changes concern another store (its own stock), so each poll
//! only has to know which entities changed at which nodes between the seq
//! it waits from and the new head. Those summaries are kept as a log of
//! consecutive intervals, each read from the database once (the first poll
//! that needs it reads it, the others wait for that read); a poll's
//! interval is answered from the log in memory, however the stores' own
//! positions differ (thousands of stores woken at slightly different heads
//! during a stream of uploads each ask for an interval of its own: one read
//! each was a scan of every row in it). A database read per store happens
//! only when a change concerns that store.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::sql::Connection;

/// The (entity, node) pairs of the rows written in a seq interval.
pub type Summary = Arc<Vec<(String, String)>>;

/// Reads the (entity, node) pairs of the rows with `from < seq <= to`.
pub fn summary(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<Vec<(String, String)>, crate::sql::Error> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT entity, node FROM rows WHERE seq > ?1 AND seq <= ?2")?;
    let pairs = stmt
        .query_map(params![from as i64, to as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pairs)
}

/// The log: consecutive intervals `(start, to_0], (to_0, to_1], …` and
/// each one's summary.
#[derive(Default)]
struct Log {
    start: u64,
    segments: VecDeque<(u64, Summary)>,
}

impl Log {
    fn end(&self) -> u64 {
        self.segments.back().map_or(self.start, |(to, _)| *to)
    }

    /// The summaries of every interval that overlaps (`from`, `to`]:
    /// exactly the interval's pairs when both ends are interval ends, else a
    /// few more (a poll that reads for nothing, never one that misses a
    /// change). Not merged: a poll only asks whether any pair concerns it.
    fn overlapping(&self, from: u64, to: u64) -> Vec<Summary> {
        let first = self.segments.partition_point(|(end, _)| *end <= from);
        let mut out = Vec::new();
        let mut lower = if first == 0 {
            self.start
        } else {
            self.segments[first - 1].0
        };
        for (end, summary) in self.segments.range(first..) {
            if lower >= to {
                break;
            }
            out.push(summary.clone());
            lower = *end;
        }
        out
    }
}

/// Summaries of the latest intervals, read once each.
pub struct Changes {
    log: Mutex<Log>,
    /// One read of a missing interval at a time.
    reading: tokio::sync::Mutex<()>,
    keep: usize,
}

impl Changes {
    /// Keeps up to `keep` intervals (a poll asking below them reads its
    /// interval itself).
    pub fn new(keep: usize) -> Changes {
        Changes {
            log: Mutex::new(Log::default()),
            reading: tokio::sync::Mutex::new(()),
            keep: keep.max(1),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The summaries covering (`from`, `to`]; `read(a, b)` reads the rows
    /// with `a < seq <= b` when the log does not cover them yet.
    pub async fn between<E, F, Fut>(&self, from: u64, to: u64, read: F) -> Result<Vec<Summary>, E>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = Result<Vec<(String, String)>, E>>,
    {
        if to <= from {
            return Ok(Vec::new());
        }
        // Three rounds at most: the part below the log, the part above it,
        // then the answer (a read another poll made meanwhile saves ours).
        for _ in 0..3 {
            {
                let log = self.log();
                if !log.segments.is_empty() && log.start <= from && to <= log.end() {
                    return Ok(log.overlapping(from, to));
                }
            }
            // One read at a time: thousands of polls woken together, each
            // from a position of its own, would otherwise each read (each a
            // blocking thread and a read connection).
            let _reading = self.reading.lock().await;
            let next = {
                let log = self.log();
                if log.segments.is_empty() {
                    Some((from, to, false))
                } else if from < log.start {
                    // The log grows down past `keep` (up to twice), as after
                    // a wake of polls at old positions; writes trim it back.
                    (log.start - from <= BELOW_LOG_MAX && log.segments.len() < 2 * self.keep)
                        .then_some((from, log.start, true))
                } else if to <= log.end() {
                    continue;
                } else {
                    Some((log.end(), to, false))
                }
            };
            let Some((a, b, below)) = next else {
                // Far below the log: this poll's own read.
                return Ok(vec![Arc::new(read(from, to).await?)]);
            };
            let pairs = Arc::new(read(a, b).await?);
            let mut log = self.log();
            if log.segments.is_empty() {
                log.start = a;
            }
            // Only holders of `reading` change the ends: the log stays
            // consecutive.
            if below && log.start == b {
                log.segments.push_front((b, pairs));
                log.start = a;
            } else if !below && log.end() == a {
                log.segments.push_back((b, pairs));
                while log.segments.len() > self.keep {
                    if let Some((end, _)) = log.segments.pop_front() {
                        log.start = end;
                    }
                }
            }
        }
        Ok(vec![Arc::new(read(from, to).await?)])
    }
}

/// How far below the log a poll's position may be for the log to grow
/// down to it (a store polling for minutes without a change); further, or
/// when the log is twice its size, the poll reads its interval alone.
const BELOW_LOG_MAX: u64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Read = std::future::Ready<Result<Vec<(String, String)>, ()>>;

    /// A database where seq `s` was written at node `loja-{s}`; counts reads.
    fn reader(reads: Arc<AtomicUsize>) -> impl Fn(u64, u64) -> Read {
        move |a, b| {
            reads.fetch_add(1, Ordering::SeqCst);
            let pairs = (a + 1..=b)
                .map(|s| ("stock".to_owned(), format!("loja-{s}")))
                .collect();
            std::future::ready(Ok(pairs))
        }
    }

    fn nodes(s: &[Summary]) -> Vec<String> {
        let mut v: Vec<String> = s
            .iter()
            .flat_map(|s| s.iter())
            .map(|(_, n)| n.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[tokio::test]
    async fn a_thousand_polls_woken_by_one_write_read_its_summary_once() {
        let changes = Arc::new(Changes::new(4));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (changes, reads) = (changes.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                changes
                    .between(10, 12, |_, _| {
                        let reads = reads.clone();
                        async move {
                            reads.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok::<_, ()>(vec![("stock".to_owned(), "loja-7".to_owned())])
                        }
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap()[0][0].1, "loja-7");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn polls_at_other_positions_are_answered_from_the_log() {
        let changes = Changes::new(100);
        let reads = Arc::new(AtomicUsize::new(0));
        let read = reader(reads.clone());
        // The head moves 10 → 11 → 13 → 14; polls wake at each.
        assert_eq!(
            nodes(&changes.between(10, 11, &read).await.unwrap()),
            ["loja-11"]
        );
        assert_eq!(
            nodes(&changes.between(11, 13, &read).await.unwrap()),
            ["loja-12", "loja-13"]
        );
        assert_eq!(
            nodes(&changes.between(10, 14, &read).await.unwrap()),
            ["loja-11", "loja-12", "loja-13", "loja-14"]
        );
        assert_eq!(reads.load(Ordering::SeqCst), 3, "one read per new interval");
        // Any poll inside the log, however its ends fall: no read.
        assert_eq!(
            nodes(&changes.between(13, 14, &read).await.unwrap()),
            ["loja-14"]
        );
        assert_eq!(
            nodes(&changes.between(11, 14, &read).await.unwrap()),
            ["loja-12", "loja-13", "loja-14"]
        );
        assert!(changes.between(14, 14, &read).await.unwrap().is_empty());
        // A position inside an interval gets that whole interval (more, never less).
        assert_eq!(
            nodes(&changes.between(12, 13, &read).await.unwrap()),
            ["loja-12", "loja-13"]
        );
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        // Below the log: the log grows down to it, one read.
        assert_eq!(
            nodes(&changes.between(8, 11, &read).await.unwrap()),
            ["loja-10", "loja-11", "loja-9"]
        );
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        assert_eq!(
            nodes(&changes.between(8, 10, &read).await.unwrap()),
            ["loja-10", "loja-9"]
        );
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        // Below and above at once: two reads, then the answer.
        assert_eq!(
            nodes(&changes.between(6, 16, &read).await.unwrap()).len(),
            10
        );
        assert_eq!(reads.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_position_far_below_the_log_is_read_alone() {
        let changes = Changes::new(100);
        let reads = Arc::new(AtomicUsize::new(0));
        let read = reader(reads.clone());
        let h = BELOW_LOG_MAX + 10;
        changes.between(h, h + 1, &read).await.unwrap();
        let far = changes.between(5, h + 1, &read).await.unwrap();
        assert_eq!(nodes(&far).len() as u64, h + 1 - 5);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // The log did not grow down: (5, 6] is read again.
        changes.between(5, 6, &read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn old_intervals_leave_and_a_failed_read_is_read_again() {
        let changes = Changes::new(2);
        let reads = Arc::new(AtomicUsize::new(0));
        let read = reader(reads.clone());
        for h in 1..=4 {
            changes.between(h - 1, h, &read).await.unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        // (1, 2] left the log: read again, and the log grows down to it.
        changes.between(1, 2, &read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 5);
        changes.between(2, 4, &read).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 5, "(2, 4] is still kept");
        let failed = changes
            .between(4, 5, |_, _| async {
                Err::<Vec<(String, String)>, _>("gone")
            })
            .await;
        assert_eq!(failed, Err("gone"));
        assert_eq!(
            nodes(&changes.between(4, 5, &read).await.unwrap()),
            ["loja-5"]
        );
    }
}
