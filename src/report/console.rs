//! The console: spinners for running steps. The only file that uses indicatif.
//!
//! Spinners show only on an interactive stderr, never in CI, never with `--json`, and never when
//! `DEPLOY_TEST_NO_PROGRESS` is set (tests). Everything else printed while a spinner turns goes
//! through [`Console::suspend`], so lines and spinners never mix.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;
use std::time::Duration;

/// Identifies a running step's spinner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepId(u64);

/// Progress on the terminal.
pub struct Console {
    enabled: bool,
    next: Mutex<u64>,
    bars: Mutex<Vec<(StepId, ProgressBar)>>,
}

impl Console {
    pub fn new(enabled: bool) -> Console {
        Console {
            enabled,
            next: Mutex::new(0),
            bars: Mutex::new(Vec::new()),
        }
    }

    /// Whether spinners may be drawn: an interactive stderr, not CI, not `--json`, not a test.
    pub fn progress_allowed(json: bool, stderr_is_term: bool, env: &dyn Fn(&str) -> bool) -> bool {
        stderr_is_term
            && !json
            && !env(crate::env_vars::DEPLOY_TEST_NO_PROGRESS)
            && !env("CI")
            && !env(crate::env_vars::GITHUB_ACTIONS)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Starts a spinner for a step; a no-op id when progress is off.
    pub fn start(&self, label: &str) -> StepId {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            StepId(*n)
        };
        if self.enabled {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, bar));
        }
        id
    }

    /// Stops and clears a step's spinner.
    pub fn finish(&self, id: StepId) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = bars.iter().position(|(i, _)| *i == id) {
            let (_, bar) = bars.remove(pos);
            bar.finish_and_clear();
        }
    }

    /// Runs `f` (which prints) with the spinners hidden.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        if !self.enabled {
            return f();
        }
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.last() {
            Some((_, bar)) => bar.suspend(f),
            None => f(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_on_an_interactive_non_ci_terminal() {
        let none = |_: &str| false;
        assert!(Console::progress_allowed(false, true, &none));
        assert!(!Console::progress_allowed(true, true, &none), "--json");
        assert!(!Console::progress_allowed(false, false, &none), "not a TTY");
        let ci = |k: &str| k == "CI";
        assert!(!Console::progress_allowed(false, true, &ci));
        let test = |k: &str| k == crate::env_vars::DEPLOY_TEST_NO_PROGRESS;
        assert!(!Console::progress_allowed(false, true, &test));
    }

    #[test]
    fn disabled_console_hands_out_ids_and_runs_closures() {
        let c = Console::new(false);
        let a = c.start("build api");
        let b = c.start("build web");
        assert_ne!(a, b);
        assert_eq!(c.suspend(|| 7), 7);
        c.finish(a);
        c.finish(b);
    }
}
