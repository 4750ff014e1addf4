//! Small runtime helpers both the daemon and the CLI use: blocking work off
//! the async workers, a mutex lock that survives a poisoned lock, the stop
//! signal of the daemon's tasks, and the OS's shutdown signals. A leaf: it
//! imports nothing of this crate.

use tokio::sync::watch;

/// Runs blocking work (SQLite) off the async workers; a panic becomes an error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("database worker failed: {e}"))
}

/// Locks `m`; a lock poisoned by a panicking holder is taken over (the data
/// behind our mutexes are handles and counters, never half-written state).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves once `stop` is true (or never, when its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let seen = stop.wait_for(|s| *s).await.is_ok();
    if !seen {
        std::future::pending::<()>().await;
    }
}

/// Resolves on the first shutdown signal: SIGTERM, SIGINT (Ctrl-C) or SIGHUP
/// on unix; Ctrl-C / Ctrl-Break elsewhere. A handler the OS refuses to
/// install is logged and left out: the other signals still stop the process.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        fn install(kind: SignalKind, name: &str) -> Option<Signal> {
            signal(kind)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot handle {name}; it will not stop lojad gracefully"))
                .ok()
        }
        async fn recv(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let term = install(SignalKind::terminate(), "SIGTERM");
        let hup = install(SignalKind::hangup(), "SIGHUP");
        tokio::select! {
            _ = recv(term) => {}
            _ = recv(hup) => {}
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot handle SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot handle Ctrl-C; waiting for the service stop");
            std::future::pending::<()>().await;
        }
    }
}
