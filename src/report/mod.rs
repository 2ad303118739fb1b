//! Reporting: the one place that writes to the terminal, `--json`, and the GitHub Actions runtime
//! files. Business code calls [`Report`]; it never prints.
//!
//! Three outputs, combined as the run needs: the console (colour unless NO_COLOR, spinners on a TTY),
//! JSON on stdout with `--json` (human text then goes to stderr), and in GitHub Actions the job
//! summary, `$GITHUB_OUTPUT`, annotations, `::group::` and `::add-mask::`. Every text passes through
//! the [`Masker`] first.

pub mod mask;
pub mod progress;
pub mod summary;

pub use mask::Masker;
pub use progress::Progress;
pub use summary::Summary;

use crate::env_vars;
use crate::exec::Stream;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where a run reports.
pub struct Report {
    masker: Masker,
    json: bool,
    color: bool,
    gha: Option<Gha>,
    lock: Mutex<()>,
}

/// The GitHub Actions runtime files and workflow-command state.
struct Gha {
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
}

impl Report {
    /// Builds the reporter from the environment: GitHub Actions when GITHUB_ACTIONS=true, colour when
    /// stderr is a terminal and NO_COLOR is unset. Registers the secrets of [`env_vars::SECRET_VARS`].
    pub fn from_env(json: bool) -> Report {
        let gha = env_vars::in_github_actions().then(|| Gha {
            output_file: env_vars::get(env_vars::GITHUB_OUTPUT).map(PathBuf::from),
            summary_file: env_vars::get(env_vars::GITHUB_STEP_SUMMARY).map(PathBuf::from),
        });
        let color =
            env_vars::get(env_vars::NO_COLOR).is_none() && console::Term::stderr().is_term();
        let report = Report {
            masker: Masker::default(),
            json,
            color,
            gha,
            lock: Mutex::new(()),
        };
        for var in env_vars::SECRET_VARS {
            if let Some(v) = env_vars::get(var) {
                report.add_secret(&v);
            }
        }
        report
    }

    pub fn color(&self) -> bool {
        self.color
    }
    pub fn json(&self) -> bool {
        self.json
    }
    pub fn in_github_actions(&self) -> bool {
        self.gha.is_some()
    }

    /// Registers a secret: masked in everything printed from now on, and `::add-mask::` in Actions.
    pub fn add_secret(&self, secret: &str) {
        if self.masker.add(secret) && self.gha.is_some() {
            // Each line separately: ::add-mask:: masks one line at a time.
            for line in secret.lines().filter(|l| !l.trim().is_empty()) {
                self.raw_stdout(&format!("::add-mask::{}", escape_data(line)));
            }
        }
    }

    /// Text with every registered secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.masker.redact(text)
    }

    /// Human-facing text goes to stdout, or to stderr when stdout carries JSON.
    fn human(&self, text: &str) {
        let text = self.redact(text);
        let _g = self.lock.lock();
        if self.json {
            let _ = writeln!(std::io::stderr(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    }

    fn raw_stdout(&self, text: &str) {
        let _g = self.lock.lock();
        let _ = writeln!(std::io::stdout(), "{text}");
    }

    fn paint(&self, text: &str, style: console::Style) -> String {
        if self.color {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    /// A stage begins (`build`, `up` …) for an environment.
    pub fn stage_start(&self, stage: &str, env: Option<&str>) {
        let title = match env {
            Some(e) => format!("==> {stage} ({e})"),
            None => format!("==> {stage}"),
        };
        self.human(&self.paint(&title, console::Style::new().bold()));
    }

    pub fn info(&self, msg: &str) {
        self.human(msg);
    }

    pub fn warn(&self, msg: &str) {
        let msg = self.redact(msg);
        if self.gha.is_some() {
            self.raw_stdout(&format!("::warning::{}", escape_data(&msg)));
        } else {
            self.human(&format!(
                "{} {msg}",
                self.paint("warning:", console::Style::new().yellow().bold())
            ));
        }
    }

    /// An error message; in Actions also an `::error::` annotation, with a file position if given.
    pub fn error(&self, msg: &str, at: Option<(&str, u32, u32)>) {
        let msg = self.redact(msg);
        if self.gha.is_some() {
            let first = msg.lines().next().unwrap_or_default();
            let props = at.map_or(String::new(), |(f, l, c)| {
                format!(" file={},line={l},col={c}", escape_property(f))
            });
            self.raw_stdout(&format!("::error{props}::{}", escape_data(first)));
        }
        let _g = self.lock.lock();
        let _ = write!(
            std::io::stderr(),
            "{msg}{}",
            if msg.ends_with('\n') { "" } else { "\n" }
        );
    }

    /// Opens a collapsible group in Actions; a heading on the console.
    pub fn group_start(&self, title: &str) {
        if self.gha.is_some() && !self.json {
            self.raw_stdout(&format!("::group::{}", escape_data(&self.redact(title))));
        } else {
            self.human(&self.paint(&format!("--- {title}"), console::Style::new().cyan()));
        }
    }

    pub fn group_end(&self) {
        if self.gha.is_some() && !self.json {
            self.raw_stdout("::endgroup::");
        }
    }

    /// One line of a command's output, relayed with a prefix (unit or host). Masked, and unable to
    /// inject workflow commands: a line starting with `::` is defused in Actions.
    pub fn relay(&self, prefix: &str, stream: Stream, line: &str) {
        let line = self.redact(line);
        let line = if self.gha.is_some() {
            defuse_workflow_command(&line)
        } else {
            line
        };
        let tag = self.paint(&format!("{prefix} |"), console::Style::new().dim());
        let _g = self.lock.lock();
        let text = format!("{tag} {line}");
        if self.json || stream == Stream::Stderr {
            let _ = writeln!(std::io::stderr(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    }

    /// A result table: printed on the console, appended to the job summary as Markdown.
    pub fn summary(&self, summary: &Summary) {
        if !self.json {
            self.human(&summary.to_console());
        } else {
            let _g = self.lock.lock();
            let _ = writeln!(std::io::stderr(), "{}", self.redact(&summary.to_console()));
        }
        if let Some(path) = self.gha.as_ref().and_then(|g| g.summary_file.as_ref()) {
            let md = self.redact(&summary.to_markdown());
            let _ = append_limited(path, &md);
        }
    }

    /// Sets a step output (`$GITHUB_OUTPUT`), with the multi-line syntax when needed.
    pub fn output(&self, name: &str, value: &str) {
        let value = self.redact(value);
        let Some(path) = self.gha.as_ref().and_then(|g| g.output_file.as_ref()) else {
            return;
        };
        let entry = if value.contains('\n') {
            let delim = format!("ghadelimiter_{}", blake3::hash(value.as_bytes()).to_hex());
            format!("{name}<<{delim}\n{value}\n{delim}\n")
        } else {
            format!("{name}={value}\n")
        };
        let _g = self.lock.lock();
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
    }

    /// A progress bar over `total_files` files and `total_bytes` bytes; shown only on a terminal,
    /// outside GitHub Actions, without `--json` and without `DEPLOY_TEST_NO_PROGRESS`.
    pub fn progress(&self, label: &str, total_files: u64, total_bytes: u64) -> Progress {
        let visible = !self.json
            && self.gha.is_none()
            && env_vars::get(env_vars::DEPLOY_TEST_NO_PROGRESS).is_none()
            && console::Term::stderr().is_term();
        Progress::new(visible, label, total_files, total_bytes)
    }

    /// Prints the `--json` document on stdout.
    pub fn json_document(&self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        let _g = self.lock.lock();
        let _ = writeln!(std::io::stdout(), "{}", self.redact(&text));
    }
}

/// The job summary accepts at most 1 MiB per step; keep well under it.
const SUMMARY_LIMIT: u64 = 1024 * 1024 - 16 * 1024;

fn append_limited(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let used = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let room = SUMMARY_LIMIT.saturating_sub(used) as usize;
    let mut text = text.to_string();
    if text.len() > room {
        let note = "\n\n_(summary cut: the 1 MiB job summary limit was reached)_\n";
        let mut cut = room.saturating_sub(note.len());
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        if room > note.len() {
            text.push_str(note);
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
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

/// A relayed line that would be read as a workflow command is prefixed so the runner ignores it.
pub fn defuse_workflow_command(line: &str) -> String {
    if line.trim_start().starts_with("::") {
        format!(" {}", line.replacen("::", ":\u{200b}:", 1))
    } else {
        line.to_string()
    }
}
