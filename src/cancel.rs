//! SIGINT and SIGTERM during a deploy. A cancelled GitHub job gets SIGINT, then SIGTERM about 7.5 s
//! later, then SIGKILL about 2.5 s after that; a terminal's Ctrl-C is SIGINT. Dying at the first
//! signal would leave the lock, an `in_progress` record and a half-deployed service behind, so the
//! handler only records the signal: the deploy checks [`requested`] in its waits and between
//! steps, stops waiting, rolls back what it was deploying without a health gate, records the
//! release, releases the environment lock on every host ([`crate::ledger::lock::EnvLock`], also while it
//! is still waiting to take it) and exits 1 within a few seconds. A third signal exits at once (a
//! person pressing Ctrl-C again and again means it); a SIGKILL cannot be caught. Either leaves the
//! lock behind: its heartbeat stops, so it is reported stale within minutes, and the next run
//! marks the release left `in_progress` as `interrupted`.
//!
//! The handler is async-signal-safe: two atomics and `_exit`.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

/// Signals after which the process exits at once.
const FORCE_AFTER: u32 = 3;

extern "C" fn on_signal(sig: libc::c_int) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if COUNT.fetch_add(1, Ordering::SeqCst) + 1 >= FORCE_AFTER {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handler for SIGINT and SIGTERM (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with a handler that only touches atomics and calls
            // `_exit`; SA_RESTART keeps blocking reads and waits going.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

/// The first signal received since [`install`], if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT`, `SIGTERM`, …
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// "cancelled by SIGINT", for messages and records.
pub fn reason() -> String {
    format!(
        "cancelled by {}",
        requested().map(name).unwrap_or_else(|| "a signal".into())
    )
}

/// Between the phases of a command that does several things (promote, rollback): once a signal
/// arrived, the next phase does not start.
pub fn check() -> crate::error::Result<()> {
    match requested() {
        Some(_) => Err(cancelled(None, "the phases after it did not run")),
        None => Ok(()),
    }
}

/// The error of a run a signal stopped (on `host`, if on one), saying what was left undone:
/// `deploy@h:22: cancelled by SIGTERM; nothing was changed here`.
pub fn cancelled(host: Option<String>, consequence: impl Into<String>) -> crate::error::Error {
    crate::error::Error::Cancelled {
        host,
        reason: reason(),
        consequence: consequence.into(),
    }
}

/// Sleeps for `d`, waking early when a signal arrives; true when cancelled. A `d` beyond the
/// clock's range sleeps until a signal (no overflow).
pub fn sleep(d: Duration) -> bool {
    let end = Instant::now().checked_add(d);
    loop {
        if requested().is_some() {
            return true;
        }
        let now = Instant::now();
        let left = match end {
            Some(end) if now >= end => return false,
            Some(end) => end - now,
            None => d,
        };
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_recorded_not_fatal() {
        install();
        assert_eq!(requested(), None);
        // SAFETY: raising a signal whose handler is installed above.
        unsafe { libc::raise(libc::SIGINT) };
        assert_eq!(requested(), Some(libc::SIGINT));
        assert_eq!(reason(), "cancelled by SIGINT");
        assert!(
            sleep(Duration::from_secs(3600)),
            "a cancelled sleep returns at once"
        );
        let e = check().unwrap_err();
        assert!(matches!(
            e,
            crate::error::Error::Cancelled { host: None, .. }
        ));
        assert_eq!(e.exit().code(), 1, "a cancelled run is a failed stage");
        assert_eq!(
            e.to_string(),
            "cancelled by SIGINT; the phases after it did not run"
        );
        assert_eq!(
            cancelled(Some("deploy@h:22".into()), "nothing was changed here").to_string(),
            "deploy@h:22: cancelled by SIGINT; nothing was changed here"
        );
    }
}
