//! The central's integration switch as this store holds it: the
//! `parameters` row `interface_integracao_ativo` (the domain's
//! InterfaceIntegracao `Ativo`), which the central resolves for the store
//! like every `nearest` row (its own, else its central's, else the
//! chain's) and sends in the normal `parameters` feed.
//!
//! Kept in memory (read from the replica at start and after every
//! `parameters` download), so that checking it before a run never waits on
//! the replica writer. While it is off the scheduler's download and upload
//! runs do nothing (`jobs::run_task`); the `parameters` download keeps
//! running, since it is how the store hears the switch come back on. A
//! leaf: it decides nothing about jobs and talks to nobody.

use loja_protocol::registry::{INTEGRATION_PARAMETER, integration_on};
use loja_replica::Catalog;
use tokio::sync::watch;

/// The switch; cheap to clone (one watch channel).
#[derive(Clone)]
pub struct IntegrationSwitch {
    on: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for IntegrationSwitch {
    fn default() -> Self {
        IntegrationSwitch {
            on: std::sync::Arc::new(watch::channel(true).0),
        }
    }
}

impl IntegrationSwitch {
    /// The switch as the replica holds it (on when it holds no row).
    pub fn from_replica(
        catalog: &Catalog,
    ) -> Result<IntegrationSwitch, loja_replica::ReplicaError> {
        let s = IntegrationSwitch::default();
        s.refresh(catalog)?;
        Ok(s)
    }

    pub fn is_on(&self) -> bool {
        *self.on.borrow()
    }

    /// Changes on every flip (the scheduler's download and upload loops run
    /// at once when it comes back on).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.on.subscribe()
    }

    /// Re-reads the replica's row; returns `Some(new)` when it flipped.
    pub fn refresh(&self, catalog: &Catalog) -> Result<Option<bool>, loja_replica::ReplicaError> {
        let on = read(catalog)?;
        let flipped = self.on.send_if_modified(|cur| {
            let changed = *cur != on;
            *cur = on;
            changed
        });
        Ok(flipped.then_some(on))
    }
}

/// The replica's value of the switch: on unless a row says off.
pub fn read(catalog: &Catalog) -> Result<bool, loja_replica::ReplicaError> {
    Ok(catalog
        .parameter(INTEGRATION_PARAMETER)?
        .is_none_or(|v| integration_on(&v)))
}
