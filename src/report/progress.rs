//! A progress bar (files and bytes) for long transfers: drawn on stderr when it is a terminal,
//! hidden in GitHub Actions, with `--json`, and under `DEPLOY_TEST_NO_PROGRESS`. The one place
//! besides the console that touches indicatif.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};

/// A running bar; every method is a no-op when the bar is hidden.
pub struct Progress {
    bar: Option<ProgressBar>,
    bytes: AtomicU64,
    total_bytes: u64,
}

impl Progress {
    pub(crate) fn new(visible: bool, label: &str, total_files: u64, total_bytes: u64) -> Progress {
        let bar = visible.then(|| {
            let length = (total_files > 0).then_some(total_files);
            let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
            let template = if length.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} files, {msg} {elapsed}"
            } else {
                "{spinner} {prefix} {pos} files, {msg} {elapsed}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            total_bytes,
        }
    }

    /// Adds `files` and `bytes` done.
    pub fn inc(&self, files: u64, bytes: u64) {
        let done = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(b) = &self.bar {
            b.inc(files);
            b.set_message(format!(
                "{}/{}",
                human_bytes(done),
                human_bytes(self.total_bytes)
            ));
        }
    }

    /// Sets the absolute count done.
    pub fn set(&self, files: u64, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(files);
            b.set_message(human_bytes(bytes));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
