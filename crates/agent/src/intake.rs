//! The outbox's one writer: a dedicated thread that owns `outbox.db` and
//! group-commits. POS requests that arrive while a commit's fsync runs are
//! committed together in the next one, so a busy store pays one fsync per
//! group, not per sale, and every answer still comes after its own commit.

use std::path::Path;
use std::sync::mpsc as std_mpsc;

use loja_replica::{Accepted, NewDocument, Outbox, ReplicaError};
use tokio::sync::oneshot;

/// Most documents in one group commit.
const MAX_GROUP: usize = 256;

type Job = Box<dyn FnOnce(&mut Outbox) + Send>;

enum Request {
    Accept(NewDocument, oneshot::Sender<Result<Accepted, ReplicaError>>),
    Run(Job),
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("the outbox writer has stopped")]
    Stopped,
}

/// Handle to the outbox writer thread; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: std_mpsc::Sender<Request>,
}

impl Intake {
    /// Opens `DIR/outbox.db` and starts the writer thread. The thread ends
    /// when the last handle is dropped, after finishing its current commit.
    pub fn start(dir: &Path, store: &str, omni_hold_hours: u32) -> Result<Intake, ReplicaError> {
        let mut outbox = Outbox::open(dir)?;
        outbox.set_store(store);
        outbox.set_omni_hold_hours(omni_hold_hours);
        // The last checkpoint runs when the writer thread drops the outbox.
        outbox.defer_checkpoints()?;
        let (tx, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer(outbox, rx))
            .map_err(|source| ReplicaError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Intake { tx })
    }

    /// Validates and stores one document durably; answers after its commit.
    pub async fn submit(&self, doc: NewDocument) -> Result<Accepted, IntakeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request::Accept(doc, reply))
            .map_err(|_| IntakeError::Stopped)?;
        Ok(answer.await.map_err(|_| IntakeError::Stopped)??)
    }

    /// Runs `f` on the writer thread, between group commits (the upload job
    /// takes batches and records acks this way; status reads stats).
    pub async fn with_outbox<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> R + Send + 'static,
    ) -> Result<R, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |outbox| {
            let _ = reply.send(f(outbox));
        });
        self.tx
            .send(Request::Run(job))
            .map_err(|_| IntakeError::Stopped)?;
        answer.await.map_err(|_| IntakeError::Stopped)
    }
}

fn writer(mut outbox: Outbox, rx: std_mpsc::Receiver<Request>) {
    let mut group: Vec<(NewDocument, oneshot::Sender<Result<Accepted, ReplicaError>>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Take what is already waiting, up to MAX_GROUP documents; a `Run`
        // job closes the group so it sees every earlier document committed.
        let mut job = None;
        while let Some(req) = next.take() {
            match req {
                Request::Accept(doc, reply) => group.push((doc, reply)),
                Request::Run(f) => {
                    job = Some(f);
                    break;
                }
            }
            if group.len() >= MAX_GROUP {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !group.is_empty() {
            commit_group(&mut outbox, &mut group);
        }
        if let Some(f) = job {
            f(&mut outbox);
        }
    }
}

fn commit_group(
    outbox: &mut Outbox,
    group: &mut Vec<(NewDocument, oneshot::Sender<Result<Accepted, ReplicaError>>)>,
) {
    let docs: Vec<NewDocument> = group.iter().map(|(d, _)| d.clone()).collect();
    match outbox.accept_many(&docs) {
        Ok(results) => {
            for ((_, reply), result) in group.drain(..).zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            // The commit failed: none of the group was stored. Each caller
            // hears why (disk full, read-only) and nothing is half-written.
            tracing::error!(error = %e, documents = group.len(), "outbox group commit failed");
            let message = e.to_string();
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(e_clone(&e, &message)));
            }
        }
    }
}

/// ReplicaError is not Clone (it wraps io and sqlite errors); rebuild the
/// variants callers branch on and keep the message for the rest.
fn e_clone(e: &ReplicaError, message: &str) -> ReplicaError {
    match e {
        ReplicaError::DiskFull { path } => ReplicaError::DiskFull { path: path.clone() },
        ReplicaError::ReadOnly { path } => ReplicaError::ReadOnly { path: path.clone() },
        _ => ReplicaError::Io {
            path: "outbox.db".into(),
            source: std::io::Error::other(message.to_owned()),
        },
    }
}
