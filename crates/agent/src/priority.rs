//! Background priority for the threads that write the replica on the
//! central's behalf (feed page applies, verify repairs): when the POS
//! and a sync want the same core, the POS answer goes first. With nothing
//! else to run, a lowered thread runs at full speed, so an idle store PC
//! syncs as fast as before.
//!
//! Only fresh threads are lowered (see [`background`]): an unprivileged
//! thread cannot raise its priority back, so a pooled thread lowered once
//! would stay slow for whatever the pool gave it next — a sale's fsync
//! included.

use std::panic::AssertUnwindSafe;

/// Linux nice value of the background threads (0 normal, 19 lowest): a
/// CFS weight of 110 against 1024, so two busy POS workers get ~90 % of
/// the cores they share with an apply.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority. Best effort: a
/// failure leaves the thread at normal priority and says so once per
/// thread at debug level.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // On Linux the nice value is per thread; `who` 0 is the caller.
        // SAFETY: setpriority reads its arguments only.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
        }
    }
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        unsafe extern "system" {
            fn GetCurrentThread() -> isize;
            fn SetThreadPriority(thread: isize, priority: i32) -> i32;
        }
        const THREAD_PRIORITY_BELOW_NORMAL: i32 = -1;
        // SAFETY: GetCurrentThread returns a pseudo-handle of the caller,
        // valid for the call.
        let ok = unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL) };
        if ok == 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
        }
    }
}

/// Runs `f` on a fresh thread named `lojad-{what}` at background priority
/// and waits for it; a panic becomes an error. One thread per call: the
/// calls are page applies and repairs (tens of milliseconds each),
/// next to which starting a thread costs nothing.
pub async fn background<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("lojad-{what}"))
        .spawn(move || {
            lower_this_thread();
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        })
        .map_err(|e| format!("cannot start the {what} thread: {e}"))?;
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(format!("the {what} thread panicked")),
        Err(_) => Err(format!("the {what} thread ended without an answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_the_work_on_a_lowered_thread_and_reports_a_panic() {
        let name = background("test", || std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("lojad-test"));
        #[cfg(target_os = "linux")]
        {
            // SAFETY: getpriority reads its arguments only.
            let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let before = own();
            let nice = background("test", own).await.unwrap();
            assert!(nice >= BACKGROUND_NICE, "nice {nice}");
            assert_eq!(own(), before, "the caller's own priority is untouched");
        }
        let err = background("test", || -> u8 { panic!("on purpose") })
            .await
            .unwrap_err();
        assert!(err.contains("panicked"), "{err}");
    }
}
