//! The daemon's lifecycle (`lojad run`): open the data dir, start the
//! scheduler and the push listener, serve the POS API; on SIGTERM/SIGINT
//! stop accepting, let the page transaction and the upload at hand finish
//! (bounded), and exit.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::jobs::{JobCtx, push};
use crate::scheduler::TaskManager;
use crate::state::AppState;
use crate::wakers::Wakers;

/// How long shutdown waits for running jobs and open POS requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running daemon.
pub struct Daemon {
    /// Where the POS API listens (the real port when `pos.listen` asked for 0).
    pub pos_addr: SocketAddr,
    pub state: AppState,
    /// Wakes jobs early (`wake("PRC")`, `wake_subject("prices")`).
    pub wakers: Wakers,
    stop: watch::Sender<bool>,
    tasks: TaskManager,
    push: Option<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Starts everything and returns once the POS API is listening. Prints one
/// line to stdout, `lojad: POS API listening on http://ADDR`, which scripts
/// and the end-to-end tests read to find the port.
pub async fn start(config: Config) -> anyhow::Result<Daemon> {
    crate::central::install_crypto_provider();
    let tasks = crate::tasks::load(&config)?;
    let missing = crate::tasks::missing_downloads(&tasks);
    if !missing.is_empty() {
        tracing::warn!(entities = ?missing, "entities with no download task: they will not be kept current");
    }
    let listen = config.pos.listen;
    let push_on = config.sync.push;
    let dir = config.store.data_dir.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(config))
        .await
        .context("opening the data dir")?
        .with_context(|| format!("opening the data dir {}", dir.display()))?;
    // Before the POS API serves and the jobs run: an acknowledged sign-up
    // whose replica row a crash kept from being written gets it now.
    let (catalog, dir) = (state.catalog.clone(), state.config.store.data_dir.clone());
    match tokio::task::spawn_blocking(move || crate::signups::recover(&dir, &catalog)).await {
        Ok(Ok(r)) if r.written > 0 || r.failed > 0 => {
            tracing::warn!(
                customers = r.customers,
                written = r.written,
                failed = r.failed,
                "sign-up recovery: acknowledged customers were missing from the replica"
            );
        }
        Ok(Ok(r)) => {
            tracing::debug!(customers = r.customers, "sign-up recovery: nothing missing");
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "sign-up recovery failed (the outbox is untouched; the next start tries again)");
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-up recovery task failed");
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("POS API: cannot listen on {listen} (pos.listen)"))?;
    let pos_addr = listener.local_addr().context("POS API: local address")?;

    let (stop, stop_rx) = watch::channel(false);
    let ctx = JobCtx::new(state.clone(), stop_rx.clone())?;
    let manager = TaskManager::start(ctx.clone(), tasks);
    let wakers = manager.wakers();
    let push = push_on.then(|| {
        tokio::spawn(push::listen(
            ctx.central.clone(),
            wakers.clone(),
            stop_rx.clone(),
        ))
    });

    tokio::spawn(return_freed_memory(stop_rx.clone()));

    // The same serve path as pos-bench measures (TCP_NODELAY per connection).
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(crate::api::serve(listener, state.clone(), async move {
        crate::runtime::stopped(&mut server_stop).await
    }));
    // A version on trial proves itself (or asks to be rolled back).
    tokio::spawn(crate::jobs::update::health_check(ctx.clone(), pos_addr));
    println!("lojad: POS API listening on http://{pos_addr}");
    tracing::info!(pos = %pos_addr, store = %state.config.store.id, push = push_on, "lojad running");
    Ok(Daemon {
        pos_addr,
        state,
        wakers,
        stop,
        tasks: manager,
        push,
        server,
    })
}

/// A store PC runs lojad for months: after a burst (the initial sync parses
/// and frees hundreds of MB), glibc keeps the freed heap mapped. Handing it
/// back to the OS once a minute keeps the idle footprint at what is in use.
async fn return_freed_memory(mut stop: watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = crate::runtime::stopped(&mut stop) => return,
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free pages of glibc's heap to the
        // OS; it has no preconditions and is thread-safe.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

impl Daemon {
    /// Stops accepting POS connections, lets running jobs finish the page or
    /// batch at hand and open requests complete, all within about
    /// [`SHUTDOWN_GRACE`]; whatever is still running then is aborted
    /// (a page transaction is atomic, an upload idempotent).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = self.stop.send(true);
        self.tasks.join(deadline).await;
        if let Some(push) = self.push {
            push.abort();
            let _ = push.await;
        }
        let mut server = self.server;
        let served = match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(Ok(r)) => r.context("POS API server"),
            Ok(Err(e)) => Err(anyhow::anyhow!("POS API server task: {e}")),
            Err(_) => {
                tracing::warn!("POS API: requests still open at the shutdown deadline; closed");
                server.abort();
                Ok(())
            }
        };
        tracing::info!("lojad stopped");
        served
    }
}

/// Runs the daemon on its own runtime until `stop` completes or a shutdown
/// signal arrives (SIGTERM, SIGINT, SIGHUP; Ctrl-C on Windows), then shuts it
/// down gracefully: the current transaction finishes, the outbox writer
/// drains, logs flush. The one shutdown path for `lojad run`, the systemd
/// unit and the Windows SCM's stop.
pub fn run_until(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let daemon = start(config).await?;
        tokio::select! {
            _ = stop => tracing::info!("stop requested"),
            _ = crate::runtime::shutdown_signal() => tracing::info!("signal received: shutting down"),
            _ = crate::release::restart_wanted() => tracing::info!("update: stopping for the service manager to restart lojad"),
        }
        daemon.shutdown().await
    })
}
