//! GitHub Actions runtime conventions: the job summary file (kept under 1 MiB), `$GITHUB_OUTPUT`
//! (multi-line syntax with a fresh delimiter), workflow-command escaping, annotations and the random
//! `::stop-commands::` token. Writes only the runtime files; printing is `Report`'s job.

use crate::env_vars;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The GitHub Actions runtime files.
pub struct Gha {
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    lock: Mutex<()>,
}

/// GitHub refuses a step summary over 1 MiB; we stop at 1 MiB minus a margin for the cut note.
pub const SUMMARY_LIMIT: u64 = 1024 * 1024 - 16 * 1024;

impl Gha {
    pub fn from_env() -> Gha {
        Gha::with_files(
            env_vars::get(env_vars::GITHUB_OUTPUT).map(PathBuf::from),
            env_vars::get(env_vars::GITHUB_STEP_SUMMARY).map(PathBuf::from),
        )
    }

    pub fn with_files(output_file: Option<PathBuf>, summary_file: Option<PathBuf>) -> Gha {
        Gha {
            output_file,
            summary_file,
            lock: Mutex::new(()),
        }
    }

    /// Appends Markdown to the job summary, cut with a note when the file would pass the limit.
    pub fn append_summary(&self, markdown: &str) {
        if let Some(path) = &self.summary_file {
            let _g = self.lock.lock();
            let _ = append_limited(path, markdown, SUMMARY_LIMIT);
        }
    }

    /// Appends `name=value`, or the heredoc form for a multi-line value.
    pub fn set_output(&self, name: &str, value: &str) {
        if let Some(path) = &self.output_file {
            let _g = self.lock.lock();
            let _ = append(path, &output_entry(name, value));
        }
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.flush()
}

/// Appends `text` to `path` so that the file stays within `limit` bytes, ending a cut text with a
/// note (on a UTF-8 boundary).
pub fn append_limited(path: &Path, text: &str, limit: u64) -> std::io::Result<()> {
    let used = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let room = limit.saturating_sub(used) as usize;
    if text.len() <= room {
        return append(path, text);
    }
    const NOTE: &str =
        "\n\n_(summary cut: the 1 MiB job summary limit was reached; see the log)_\n";
    if room < NOTE.len() {
        return Ok(());
    }
    let mut cut = room - NOTE.len();
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(room);
    out.push_str(&text[..cut]);
    out.push_str(NOTE);
    append(path, &out)
}

/// One `$GITHUB_OUTPUT` entry: `name=value\n`, or for a multi-line value
/// `name<<DELIM\nvalue\nDELIM\n` with a fresh delimiter that occurs in neither name nor value.
pub fn output_entry(name: &str, value: &str) -> String {
    if !value.contains('\n') && !value.contains('\r') {
        return format!("{name}={value}\n");
    }
    let mut delim = format!("ghadelimiter_{}", fresh_token());
    while value.contains(&delim) || name.contains(&delim) {
        delim = format!("ghadelimiter_{}", fresh_token());
    }
    format!("{name}<<{delim}\n{value}\n{delim}\n")
}

/// A random 32-hex-digit token (for `::stop-commands::` and output delimiters) that output relayed
/// from a command cannot guess: hashed from two keyed SipHash values of std's `RandomState`, whose
/// keys come from the operating system's random source, with a counter, the clock and the process
/// id.
pub fn fresh_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    for salt in [0u8, 1] {
        let mut k = std::collections::hash_map::RandomState::new().build_hasher();
        k.write_u8(salt);
        k.write_u64(n);
        k.write_u128(now);
        h.update(&k.finish().to_le_bytes());
    }
    h.update(&now.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&n.to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Escapes the data part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=F,line=L,col=C::first line of the message`.
pub fn error_annotation(msg: &str, at: Option<(&str, u32, u32)>) -> String {
    let first = msg
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let props = at.map_or(String::new(), |(f, l, c)| {
        format!(" file={},line={l},col={c}", escape_property(f))
    });
    format!("::error{props}::{}", escape_data(first))
}
