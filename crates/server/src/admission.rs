//! Admission control for the work that costs the central most: building
//! feed pages and verify answers. A few run at once (`FEED_BUILDS`); a
//! bounded number wait their turn; past that a request is answered 503 at
//! once with `Retry-After`, so a central restart or a burst of new stores
//! queues no unbounded work and holds no socket for minutes (lojad waits
//! that long, with jitter, and asks again).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many waiting: ask again after this many seconds.
    Busy { retry_after: u64 },
    /// The server is stopping.
    Closed,
}

pub struct Admission {
    running: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Seconds a build takes, roughly: how long one place in the queue is.
    per_turn_secs: f64,
}

impl Admission {
    pub fn new(running: usize, max_waiting: usize) -> Admission {
        Admission {
            running: Semaphore::new(running.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            per_turn_secs: 0.05,
        }
    }

    /// A place among the running, waiting for one if the queue has room.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, Refused> {
        if let Ok(p) = self.running.try_acquire() {
            return Ok(p);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if ahead >= self.max_waiting {
            return Err(Refused::Busy {
                retry_after: self.retry_after(ahead),
            });
        }
        self.running.acquire().await.map_err(|_| Refused::Closed)
    }

    /// Seconds until a place is likely free with `ahead` waiting: at least
    /// 1, at most 30.
    fn retry_after(&self, ahead: usize) -> u64 {
        let turns = ahead as f64 / self.running.available_permits().max(1) as f64;
        (1.0 + turns * self.per_turn_secs).min(30.0) as u64
    }

    /// How many wait now (for `/metrics`-style reports and tests).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn past_the_queue_a_request_is_refused_with_a_retry_after() {
        let a = Arc::new(Admission::new(1, 2));
        let held = a.enter().await.unwrap();
        // Two wait their turn.
        let mut waiters = Vec::new();
        for _ in 0..2 {
            let a = a.clone();
            waiters.push(tokio::spawn(async move { a.enter().await.map(drop) }));
        }
        for _ in 0..100 {
            if a.waiting() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(a.waiting(), 2);
        // The third is refused at once.
        match a.enter().await {
            Err(Refused::Busy { retry_after }) => assert!((1..=30).contains(&retry_after)),
            other => panic!("{other:?}"),
        }
        drop(held);
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
        assert_eq!(a.waiting(), 0);
        assert!(a.enter().await.is_ok());
    }
}
