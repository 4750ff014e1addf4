//! Hints between central instances on one PostgreSQL database.
//!
//! A store's events long-poll may be held by instance A while an import
//! lands on instance B. B tells every instance, through PostgreSQL's
//! LISTEN/NOTIFY, only that something advanced — the new head, a store whose
//! own rows moved, or "look again" — never data: the woken long-poll reads
//! what changed from the database like any other. A hint lost (an instance
//! restarting, the LISTEN connection dropping) costs only latency: the
//! long-poll's next round finds the change, and a LISTEN that reconnects
//! wakes every poll of its instance to look again.
//!
//! Hints are sent after the write committed, coalesced: a burst of uploads
//! becomes one NOTIFY per few milliseconds, not one per document.
//!
//! Must not: carry rows, or be needed for correctness.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::PG_HINT_CHANNEL;
use crate::sql::PgPool;

/// What advanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// The head sequence moved to this value.
    Head(u64),
    /// Rows only this store sees moved (its own stock).
    Store(String),
    /// A setting changed that may release held long-polls (availability,
    /// exceptions, a reset download): every poll looks again.
    Poke,
}

/// The sending half, held by the server's state.
#[derive(Debug)]
pub struct Hints {
    tx: mpsc::UnboundedSender<Hint>,
}

impl Hints {
    pub fn publish(&self, hint: Hint) {
        let _ = self.tx.send(hint);
    }
}

/// One NOTIFY payload: `INSTANCE h:HEAD s:STORE … p`, so an instance skips
/// its own hints. Store ids never hold spaces (nodes::validate).
fn payload(instance: &str, head: Option<u64>, stores: &BTreeSet<String>, poke: bool) -> String {
    let mut p = instance.to_owned();
    if let Some(h) = head {
        p.push_str(&format!(" h:{h}"));
    }
    for s in stores {
        p.push_str(" s:");
        p.push_str(s);
    }
    if poke {
        p.push_str(" p");
    }
    p
}

/// The hints in a payload, unless it came from `instance` itself.
pub fn parse(instance: &str, payload: &str) -> Vec<Hint> {
    let mut parts = payload.split(' ');
    if parts.next() == Some(instance) {
        return Vec::new();
    }
    parts
        .filter_map(|p| {
            if let Some(h) = p.strip_prefix("h:") {
                h.parse().ok().map(Hint::Head)
            } else if let Some(s) = p.strip_prefix("s:") {
                (!s.is_empty()).then(|| Hint::Store(s.to_owned()))
            } else if p == "p" {
                Some(Hint::Poke)
            } else {
                None
            }
        })
        .collect()
}

/// Starts the sender (a task on the caller's runtime) and the listener
/// (on the PostgreSQL backend's runtime). `apply` wakes this instance's
/// long-polls for a hint from another instance; `None` means "hints may
/// have been lost: look again".
pub fn start(
    pool: &PgPool,
    apply: impl Fn(Option<Hint>) + Send + Sync + 'static,
) -> Result<Hints, crate::sql::Error> {
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let me = instance.clone();
    pool.listen(PG_HINT_CHANNEL, move |p| match p {
        None => apply(None),
        Some(p) => parse(&me, p).into_iter().for_each(|h| apply(Some(h))),
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    let pool = pool.clone();
    tokio::spawn(send_loop(pool, instance, rx));
    Ok(Hints { tx })
}

async fn send_loop(pool: PgPool, instance: String, mut rx: mpsc::UnboundedReceiver<Hint>) {
    while let Some(first) = rx.recv().await {
        // Gather what else arrives in the next few milliseconds.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (mut head, mut stores, mut poke) = (None::<u64>, BTreeSet::new(), false);
        let mut take = |h: Hint| match h {
            Hint::Head(n) => head = Some(head.map_or(n, |m| m.max(n))),
            Hint::Store(s) => {
                stores.insert(s);
            }
            Hint::Poke => poke = true,
        };
        take(first);
        while let Ok(h) = rx.try_recv() {
            take(h);
        }
        // A NOTIFY payload is limited to 8,000 bytes: a long list of stores
        // becomes "look again" for every poll.
        if stores.len() > 100 {
            stores.clear();
            poke = true;
        }
        let text = payload(&instance, head, &stores, poke);
        let pool = pool.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let conn = crate::sql::Connection::postgres(pool.session()?);
            conn.query_row(
                "SELECT pg_notify(?1, ?2)",
                params![PG_HINT_CHANNEL, text],
                |_| Ok(()),
            )
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "hint to the other instances not sent (they find the change on their next poll)")
            }
            Err(e) => tracing::warn!(error = %e, "hint task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_head_stores_and_poke_and_an_instance_skips_its_own() {
        let stores: BTreeSet<String> = ["loja-a".to_string(), "loja-b".to_string()].into();
        let p = payload("i1", Some(42), &stores, true);
        assert_eq!(
            parse("i2", &p),
            vec![
                Hint::Head(42),
                Hint::Store("loja-a".into()),
                Hint::Store("loja-b".into()),
                Hint::Poke
            ]
        );
        assert!(parse("i1", &p).is_empty());
        assert_eq!(parse("i2", "i1 h:x s: q"), vec![]);
    }
}
