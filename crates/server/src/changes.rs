//! What changed between two heads, once for every long-poll.
//!
//! Every write that moves the head (an import, a store's upload whose
//! stock the central applied) wakes every store's events long-poll. Most
//! of those changes concern another store (its own stock), so each poll
//! only has to know which entities changed at which nodes between the seq
//! it waits from and the new head: that summary is read once (the first
//! poll to need it reads it, the others wait for that read), kept for the
//! few most recent intervals, and each store decides relevance from it in
//! memory. A database read per store happens only when a change concerns
//! that store.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::sql::Connection;
use tokio::sync::OnceCell;

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

type Slot = Arc<OnceCell<Summary>>;
/// The intervals' slots, and the intervals oldest first.
type Slots = (HashMap<(u64, u64), Slot>, VecDeque<(u64, u64)>);

/// Summaries of the latest intervals, read once each.
pub struct Changes {
    inner: Mutex<Slots>,
    keep: usize,
}

impl Changes {
    pub fn new(keep: usize) -> Changes {
        Changes {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            keep: keep.max(1),
        }
    }

    /// The summary of (`from`, `to`], read by `read` when no poll has yet.
    pub async fn between<E, F, Fut>(&self, from: u64, to: u64, read: F) -> Result<Summary, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, String)>, E>>,
    {
        let slot = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let (slots, order) = &mut *inner;
            match slots.get(&(from, to)) {
                Some(s) => s.clone(),
                None => {
                    let s = Slot::default();
                    slots.insert((from, to), s.clone());
                    order.push_back((from, to));
                    while order.len() > self.keep {
                        if let Some(old) = order.pop_front() {
                            slots.remove(&old);
                        }
                    }
                    s
                }
            }
        };
        slot.get_or_try_init(|| async { read().await.map(Arc::new) })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_thousand_polls_woken_by_one_write_read_its_summary_once() {
        let changes = Arc::new(Changes::new(4));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (changes, reads) = (changes.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                changes
                    .between(10, 12, || async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(vec![("stock".to_owned(), "loja-7".to_owned())])
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap()[0].1, "loja-7");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Old intervals leave; a failed read is read again.
        for i in 0..5 {
            changes
                .between(i, i + 1, || async { Ok::<_, ()>(vec![]) })
                .await
                .unwrap();
        }
        let again = changes
            .between(10, 12, || async { Err::<Vec<(String, String)>, _>("gone") })
            .await;
        assert_eq!(again, Err("gone"), "evicted: read again");
    }
}
