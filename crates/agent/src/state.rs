//! What the running daemon shares between its parts: the POS API, the
//! scheduler's jobs and the push listener.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use loja_replica::{Catalog, Journal};
use tokio::sync::Notify;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The replica's writer: download jobs apply pages through it (one at a
    /// time; the POS reads through `api::ReaderPool`, never through this).
    pub catalog: Arc<Mutex<Catalog>>,
    pub journal: Arc<Mutex<Journal>>,
    /// The central's integration switch as the replica holds it: while off
    /// the scheduled downloads and uploads do nothing.
    pub integration: crate::integration::IntegrationSwitch,
    /// Group-committing writer of the outbox (POS writes go through it).
    pub intake: crate::intake::Intake,
    /// Notified after documents are accepted: wakes the upload job.
    pub upload_wake: Arc<Notify>,
    /// Per-job schedule the status views show (next run, running now).
    pub schedule: crate::schedule_view::ScheduleView,
    /// What the replica verify found since start (for `/metrics`).
    pub verify: Arc<crate::verify_stats::VerifyStats>,
    /// One per registry entity (registry order): held by a download run,
    /// so the scheduler's job and a verify catching up never download the
    /// same entity at once (their pages would refuse each other's start).
    pub downloading: Arc<[tokio::sync::Mutex<()>]>,
    /// The last `Loja-Scope` written to the replica's price list order.
    pub price_scope: Arc<Mutex<Option<String>>>,
    pub started_at: Instant,
    /// POS requests being answered now (an update never switches versions
    /// under one).
    pub pos_requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    /// Opens the data dir's three databases (creating and migrating them)
    /// and starts the outbox writer. The scheduler and push listener are
    /// started by `daemon`; the POS API needs only this.
    pub fn open(config: Config) -> Result<AppState, loja_replica::ReplicaError> {
        let dir = config.store.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| loja_replica::ReplicaError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut catalog = Catalog::open(&dir)?;
        catalog.defer_checkpoints()?;
        let integration = crate::integration::IntegrationSwitch::from_replica(&catalog)?;
        if !integration.is_on() {
            tracing::warn!(
                "integration is switched off by the central: scheduled downloads and uploads wait until it is on again"
            );
        }
        Ok(AppState {
            integration,
            catalog: Arc::new(Mutex::new(catalog)),
            journal: Arc::new(Mutex::new(Journal::open(&dir)?)),
            intake: crate::intake::Intake::start(
                &dir,
                &config.store.id,
                config.omni.reservation_hours,
            )?,
            upload_wake: Arc::new(Notify::new()),
            schedule: crate::schedule_view::ScheduleView::default(),
            verify: Arc::default(),
            downloading: loja_protocol::ENTITIES
                .iter()
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            price_scope: Arc::default(),
            started_at: Instant::now(),
            pos_requests: Arc::default(),
            config: Arc::new(config),
        })
    }
}
