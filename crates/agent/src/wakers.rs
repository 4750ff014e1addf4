//! Handles that wake scheduled jobs early: the push listener wakes the
//! download job of an entity the central says advanced, the POS API wakes
//! the upload job when a document arrives. The scheduler builds them; a leaf.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Wakers {
    by_code: Arc<BTreeMap<String, Arc<Notify>>>,
    /// Entity name → code of its download job.
    by_subject: Arc<BTreeMap<String, String>>,
    /// Bumped when the central answers again after an outage.
    back: Arc<watch::Sender<u64>>,
}

impl Wakers {
    /// `by_code`: each job's notifier; `by_subject`: entity → its download job's code.
    pub fn new(
        by_code: BTreeMap<String, Arc<Notify>>,
        by_subject: BTreeMap<String, String>,
    ) -> Wakers {
        Wakers {
            by_code: Arc::new(by_code),
            by_subject: Arc::new(by_subject),
            back: Arc::new(watch::channel(0u64).0),
        }
    }

    /// The notifier of job `code` (its loop waits on it).
    pub fn notifier(&self, code: &str) -> Option<Arc<Notify>> {
        self.by_code.get(code).cloned()
    }

    /// Changes on every [`Wakers::central_is_back`].
    pub fn back_signal(&self) -> watch::Receiver<u64> {
        self.back.subscribe()
    }

    /// Runs the job now (or right after its current run). False if no such job.
    pub fn wake(&self, code: &str) -> bool {
        match self.by_code.get(code) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    /// Wakes the download job of an entity (a push hint names entities).
    pub fn wake_subject(&self, entity: &str) -> bool {
        self.by_subject
            .get(entity)
            .is_some_and(|code| self.wake(code))
    }

    /// Wakes every download job (the push listener lost its place in the
    /// central's sequence). Returns how many were woken.
    pub fn wake_downloads(&self) -> usize {
        self.by_subject
            .values()
            .filter(|code| self.wake(code))
            .count()
    }

    /// The central answers again: every job in backoff runs now.
    pub fn central_is_back(&self) {
        self.back.send_modify(|n| *n += 1);
    }
}
