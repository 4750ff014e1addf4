//! Feed pages built once and served to every store that sees the same rows.
//!
//! After an import of master prices, every store of the chain asks for the
//! same range of the same entity: built per store, the fan-out cost grows
//! with stores × rows. A page is the same bytes for every store under the
//! same ancestors when no row it examined belongs to a store
//! (`feed::Page::shared`), so it is keyed by what determines it — the
//! entity, the ancestors, `after`, `limit` and the entity's head when it was
//! built (the page holds rows up to that head only: `feed::build_page_upto`)
//! — built by the first store that asks, while the others wait for it
//! (one build, not one per waiting store), and kept within a byte budget,
//! oldest out first. A page that is not shared is handed to the store it was
//! built for only; a waiter of another store builds its own.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// What determines a page's bytes for every store of one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub entity: &'static str,
    /// The store's ancestors, nearest first (`Scope::nodes` without the store).
    pub ancestors: Vec<String>,
    pub after: u64,
    pub limit: u64,
    /// The entity's highest seq when the page was asked for.
    pub head: u64,
}

/// A page as served: its sealed bytes and where it leaves the store.
#[derive(Debug)]
pub struct Built<T> {
    pub answer: T,
    pub next: u64,
    pub more: bool,
    /// The same bytes for every store of the key (else only for `store`).
    pub shared: bool,
    pub store: String,
    pub bytes: usize,
}

type Slot<T> = Arc<OnceCell<Arc<Built<T>>>>;

struct Inner<T> {
    slots: HashMap<PageKey, Slot<T>>,
    /// Keys in the order they were filled, for eviction.
    order: VecDeque<(PageKey, usize)>,
    bytes: usize,
}

/// Pages by key, single-flight, within `budget` bytes.
pub struct PageCache<T> {
    inner: Mutex<Inner<T>>,
    budget: usize,
}

/// How the page for a store was had (for the logs and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Built by this request (and kept, when shared).
    Built,
    /// Served from a build for another store of the same view.
    Cached,
}

impl<T> PageCache<T> {
    pub fn new(budget: usize) -> PageCache<T> {
        PageCache {
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            budget,
        }
    }

    fn slot(&self, key: &PageKey) -> Slot<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.slots.entry(key.clone()).or_default().clone()
    }

    /// Counts a filled slot in the budget, or drops it when its page is not
    /// shared (nobody else may be served it).
    fn settle(&self, key: &PageKey, built: &Built<T>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !built.shared {
            inner.slots.remove(key);
            return;
        }
        inner.order.push_back((key.clone(), built.bytes));
        inner.bytes += built.bytes;
        while inner.bytes > self.budget {
            let Some((old, size)) = inner.order.pop_front() else {
                break;
            };
            inner.slots.remove(&old);
            inner.bytes = inner.bytes.saturating_sub(size);
        }
    }

    /// The page of `key` for `store`: the one built for the key if it is
    /// shared (waiting for a build under way), else built by `build`.
    pub async fn get_or_build<E, F, Fut>(
        &self,
        key: PageKey,
        store: &str,
        build: F,
    ) -> Result<(Arc<Built<T>>, Source), E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Built<T>, E>>,
    {
        let slot = self.slot(&key);
        let mut mine = false;
        let built = match slot
            .get_or_try_init(|| async {
                mine = true;
                build().await.map(Arc::new)
            })
            .await
        {
            Ok(b) => b.clone(),
            Err(e) => {
                // Not kept: the next request builds again.
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                if inner.slots.get(&key).is_some_and(|s| s.get().is_none()) {
                    inner.slots.remove(&key);
                }
                return Err(e);
            }
        };
        if mine {
            self.settle(&key, &built);
            return Ok((built, Source::Built));
        }
        if built.shared || built.store == store {
            return Ok((built, Source::Cached));
        }
        Ok((Arc::new(build().await?), Source::Built))
    }

    /// Pages kept and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.order.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(after: u64, head: u64) -> PageKey {
        PageKey {
            entity: "prices",
            ancestors: vec!["c1".into(), "master".into()],
            after,
            limit: 5000,
            head,
        }
    }

    fn page(store: &str, shared: bool, bytes: usize) -> Built<String> {
        Built {
            answer: format!("page for {store}"),
            next: 10,
            more: false,
            shared,
            store: store.into(),
            bytes,
        }
    }

    #[tokio::test]
    async fn many_stores_asking_at_once_build_one_shared_page() {
        let cache = Arc::new(PageCache::new(1 << 20));
        let builds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (cache, builds) = (cache.clone(), builds.clone());
            tasks.push(tokio::spawn(async move {
                let store = format!("s{i}");
                let (b, _) = cache
                    .get_or_build(key(0, 7), &store, || {
                        let (builds, store) = (builds.clone(), store.clone());
                        async move {
                            builds.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok::<_, ()>(page(&store, true, 100))
                        }
                    })
                    .await
                    .unwrap();
                b.answer.clone()
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|a| a == &answers[0]));
        assert_eq!(cache.usage(), (1, 100));
        // Another head is another page.
        let (_, source) = cache
            .get_or_build(key(0, 8), "s1", || async {
                Ok::<_, ()>(page("s1", true, 100))
            })
            .await
            .unwrap();
        assert_eq!(source, Source::Built);
    }

    #[tokio::test]
    async fn a_page_shaped_by_a_stores_own_rows_is_not_served_to_another() {
        let cache = PageCache::new(1 << 20);
        let (a, _) = cache
            .get_or_build(key(0, 7), "a", || async {
                Ok::<_, ()>(page("a", false, 100))
            })
            .await
            .unwrap();
        assert_eq!(a.answer, "page for a");
        assert_eq!(cache.usage(), (0, 0), "not kept");
        let (b, source) = cache
            .get_or_build(key(0, 7), "b", || async {
                Ok::<_, ()>(page("b", false, 100))
            })
            .await
            .unwrap();
        assert_eq!((b.answer.as_str(), source), ("page for b", Source::Built));
    }

    #[tokio::test]
    async fn the_oldest_pages_leave_past_the_budget_and_a_failed_build_is_not_kept() {
        let cache = PageCache::new(250);
        for after in 0..3 {
            cache
                .get_or_build(key(after, 7), "a", || async {
                    Ok::<_, ()>(page("a", true, 100))
                })
                .await
                .unwrap();
        }
        assert_eq!(cache.usage(), (2, 200));
        let (_, source) = cache
            .get_or_build(key(0, 7), "a", || async {
                Ok::<_, ()>(page("a", true, 100))
            })
            .await
            .unwrap();
        assert_eq!(source, Source::Built, "evicted, built again");
        let failed = cache
            .get_or_build(key(9, 7), "a", || async { Err::<Built<String>, _>("disk") })
            .await;
        assert!(failed.is_err());
        let (_, source) = cache
            .get_or_build(key(9, 7), "a", || async { Ok::<_, ()>(page("a", true, 1)) })
            .await
            .unwrap();
        assert_eq!(source, Source::Built);
    }
}
