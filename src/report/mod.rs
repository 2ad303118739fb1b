//! Reporting: the one place that writes to the terminal, `--json`, and the GitHub Actions runtime
//! files. Business code calls [`Report`]; it never prints.
//!
//! Three outputs, combined as the run needs: the console (colour unless NO_COLOR, spinners on a TTY,
//! `console.rs`), JSON on stdout with `--json` (human text then goes to stderr), and in GitHub
//! Actions the job summary, `$GITHUB_OUTPUT`, annotations, `::group::`, `::add-mask::` and
//! `::stop-commands::` (`gha.rs`). Every text passes through the [`Masker`] first.
//!
//! Workflow commands go to stdout, or to stderr with `--json` (stdout then carries only the JSON
//! document; the runner reads workflow commands from both streams).
//!
//! Output from outside (relayed command output, a host's error text quoted in a message) goes
//! through one path, `sanitize.rs`: cut where the runner cuts lines (a bare `\r` too), control
//! characters made visible, and in Actions every line defused; relayed lines also sit inside a
//! `::stop-commands::` block with a fresh token, opened at the first relayed line and closed before
//! anything else is printed (so our own annotations and groups are never swallowed by a block).

pub mod console;
pub mod gha;
pub mod mask;
pub mod progress;
pub mod sanitize;
pub mod summary;

pub use console::StepId;
pub use mask::Masker;
pub use progress::Progress;
pub use summary::Summary;

use crate::env_vars;
use crate::exec::Stream;
use console::Console;
use gha::Gha;
use std::io::Write;
use std::sync::Mutex;

/// Where printed text goes: the process streams, or a buffer (unit tests).
enum Sink {
    Std,
    Buffer(Vec<(Stream, String)>),
}

/// The printed streams and the state that must change in step with them.
struct Out {
    sink: Sink,
    /// The token of the open `::stop-commands::` block (Actions), if any.
    block: Option<String>,
}

/// Where a run reports.
pub struct Report {
    masker: Masker,
    json: bool,
    color: bool,
    gha: Option<Gha>,
    console: Console,
    out: Mutex<Out>,
}

impl Report {
    /// Builds the reporter from the environment: GitHub Actions when GITHUB_ACTIONS=true, colour when
    /// stderr is a terminal and NO_COLOR is unset, spinners per [`Console::progress_allowed`].
    /// Registers the secrets of [`env_vars::SECRET_VARS`] (and `::add-mask::`s them) before anything
    /// else is printed.
    pub fn from_env(json: bool) -> Report {
        let gha = env_vars::in_github_actions().then(Gha::from_env);
        let stderr_is_term = ::console::Term::stderr().is_term();
        let color = env_vars::get(env_vars::NO_COLOR).is_none() && stderr_is_term;
        let progress =
            Console::progress_allowed(json, stderr_is_term, &|k| env_vars::get(k).is_some());
        let report = Report::build(json, color, gha, Console::new(progress), Sink::Std);
        for var in env_vars::SECRET_VARS {
            if let Some(v) = env_vars::get(var) {
                report.add_secret(&v);
                // A key pasted with `\n` escapes is used (and could be printed) with real newlines.
                if !v.contains('\n') && v.contains("\\n") {
                    report.add_secret(&v.replace("\\n", "\n"));
                }
            }
        }
        for var in env_vars::SECRET_FILE_VARS {
            if let Some(text) = env_vars::get(var).and_then(|path| read_secret_file(&path)) {
                report.add_secret(&text);
            }
        }
        report
    }

    fn build(json: bool, color: bool, gha: Option<Gha>, console: Console, sink: Sink) -> Report {
        Report {
            masker: Masker::default(),
            json,
            color,
            gha,
            console,
            out: Mutex::new(Out { sink, block: None }),
        }
    }

    /// A reporter that records what it prints (for tests of the reporting itself).
    #[doc(hidden)]
    pub fn buffered(json: bool, gha: Option<Gha>) -> Report {
        Report::build(
            json,
            false,
            gha,
            Console::new(false),
            Sink::Buffer(Vec::new()),
        )
    }

    /// What a [`Report::buffered`] reporter printed, as (stream, line) pairs.
    #[doc(hidden)]
    pub fn printed(&self) -> Vec<(Stream, String)> {
        match &self.lock().sink {
            Sink::Std => Vec::new(),
            Sink::Buffer(v) => v.clone(),
        }
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

    // -- low-level writing -----------------------------------------------------------------------

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes our own text (or a workflow command), after closing an open `::stop-commands::`
    /// block.
    fn write(&self, stream: Stream, text: &str) {
        let mut out = self.lock();
        self.close_block(&mut out);
        self.emit(&mut out.sink, stream, text);
    }

    /// Writes relayed lines; in Actions inside a `::stop-commands::` block, opened with a fresh
    /// token if none is open.
    fn write_relayed(&self, stream: Stream, text: &str) {
        let mut out = self.lock();
        if self.gha.is_some() && out.block.is_none() {
            let token = gha::fresh_token();
            let open = format!("::stop-commands::{token}");
            self.emit(&mut out.sink, self.relay_stream(Stream::Stdout), &open);
            out.block = Some(token);
        }
        self.emit(&mut out.sink, stream, text);
    }

    /// Ends the open `::stop-commands::` block, if any: the runner reads commands again.
    fn close_block(&self, out: &mut Out) {
        if let Some(token) = out.block.take() {
            let resume = format!("::{token}::");
            self.emit(&mut out.sink, self.relay_stream(Stream::Stdout), &resume);
        }
    }

    fn emit(&self, sink: &mut Sink, stream: Stream, text: &str) {
        match sink {
            Sink::Buffer(v) => {
                for line in text.split('\n') {
                    v.push((stream, line.to_string()));
                }
            }
            Sink::Std => self.console.suspend(|| match stream {
                Stream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{text}");
                    let _ = out.flush();
                }
                Stream::Stderr => {
                    let _ = writeln!(std::io::stderr().lock(), "{text}");
                }
            }),
        }
    }

    /// The stream human text goes to: stdout, or stderr when stdout carries JSON.
    fn human_stream(&self) -> Stream {
        if self.json {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }

    /// The stream workflow commands go to (the same as human text, so their order is kept).
    fn command_stream(&self) -> Stream {
        self.human_stream()
    }

    /// Writes a workflow command line (Actions only). Never redacted: `::add-mask::` must carry the
    /// value.
    fn workflow_command(&self, line: &str) {
        if self.gha.is_some() {
            self.write(self.command_stream(), line);
        }
    }

    fn human(&self, text: &str) {
        let text = self.safe(text);
        self.write(self.human_stream(), &text);
    }

    /// Text we print that may quote the outside (a command's stderr in an error message, the
    /// manifest, a unit name): redacted, cut at every line break a reader sees (a bare `\r` too),
    /// control characters made visible, and in Actions every line defused.
    fn safe(&self, text: &str) -> String {
        sanitize::lines(&self.redact(text))
            .iter()
            .map(|l| self.defuse(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One line, defused in Actions (a workflow command at its start, `##[` anywhere).
    fn defuse(&self, line: &str) -> String {
        if self.gha.is_some() {
            sanitize::defuse_workflow_command(line)
        } else {
            line.to_string()
        }
    }

    fn paint(&self, text: &str, style: ::console::Style) -> String {
        if self.color {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    // -- secrets ---------------------------------------------------------------------------------

    /// Registers a secret: masked in everything printed from now on, and `::add-mask::` in Actions.
    /// A multi-line secret (an SSH key) goes out `%0A`-escaped in one command, then each of its
    /// non-empty lines in a command of its own, so the lines are masked whichever way the runner
    /// treats multi-line masks.
    pub fn add_secret(&self, secret: &str) {
        for value in self.masker.add(secret) {
            self.workflow_command(&format!("::add-mask::{}", gha::escape_data(&value)));
        }
    }

    /// Registers the passwords of a database URL as secrets, each in its written and its
    /// percent-decoded form: the userinfo password (`postgres://user:PASSWORD@host/db`), a
    /// `password=` query parameter, or the `password=` of a `key=value` connection string. A URL
    /// without a password registers nothing.
    pub fn add_url_password(&self, url: &str) {
        for pw in connection_passwords(url) {
            let decoded = percent_decode(&pw);
            self.add_secret(&pw);
            if decoded != pw {
                self.add_secret(&decoded);
            }
        }
    }

    /// Text with every registered secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.masker.redact(text)
    }

    // -- messages --------------------------------------------------------------------------------

    /// A stage begins (`build`, `up` …) for an environment.
    pub fn stage_start(&self, stage: &str, env: Option<&str>) {
        let title = match env {
            Some(e) => format!("==> {stage} ({e})"),
            None => format!("==> {stage}"),
        };
        self.human(&self.paint(&title, ::console::Style::new().bold()));
    }

    pub fn info(&self, msg: &str) {
        self.human(msg);
    }

    /// A dimmed secondary line (notes, reasons).
    pub fn note(&self, msg: &str) {
        self.human(&self.paint(msg, ::console::Style::new().dim()));
    }

    pub fn warn(&self, msg: &str) {
        let msg = self.redact(msg);
        if self.gha.is_some() {
            self.workflow_command(&format!(
                "::warning::{}",
                gha::escape_data(&sanitize::annotation_text(&msg))
            ));
        } else {
            self.human(&format!(
                "{} {msg}",
                self.paint("warning:", ::console::Style::new().yellow().bold())
            ));
        }
    }

    /// An error message on stderr; in Actions also an `::error::` annotation, with a file position
    /// when given.
    pub fn error(&self, msg: &str, at: Option<(&str, u32, u32)>) {
        let msg = self.redact(msg);
        if self.gha.is_some() {
            self.workflow_command(&gha::error_annotation(&sanitize::annotation_text(&msg), at));
        }
        self.write(Stream::Stderr, &self.safe(msg.trim_end_matches('\n')));
    }

    // -- steps, groups, relayed output -----------------------------------------------------------

    /// A step starts: a spinner on an interactive terminal.
    pub fn step_start(&self, label: &str) -> StepId {
        self.console.start(&self.redact(label))
    }

    /// A step ended: its spinner goes away.
    pub fn step_done(&self, id: StepId) {
        self.console.finish(id);
    }

    /// Opens a collapsible group in Actions; a heading on the console.
    pub fn group_start(&self, title: &str) {
        let title = self.redact(title);
        if self.gha.is_some() {
            let title = sanitize::annotation_text(&title);
            self.workflow_command(&format!("::group::{}", gha::escape_data(&title)));
        } else {
            self.human(&self.paint(&format!("--- {title}"), ::console::Style::new().cyan()));
        }
    }

    pub fn group_end(&self) {
        self.workflow_command("::endgroup::");
    }

    /// Runs `f`, which relays a command's output, and ends the `::stop-commands::` block its
    /// relayed lines opened (Actions). Relaying needs no such bracket to be safe ([`Report::relay`]
    /// opens the block itself); this one only ends the block as soon as the output does.
    pub fn relaying<T>(&self, f: impl FnOnce() -> T) -> T {
        let out = f();
        let mut o = self.lock();
        self.close_block(&mut o);
        out
    }

    /// In Actions, relayed stdout and stderr share one stream so they stay inside the
    /// `::stop-commands::` block in order; elsewhere each keeps its stream.
    fn relay_stream(&self, stream: Stream) -> Stream {
        if self.json {
            Stream::Stderr
        } else if self.gha.is_some() {
            Stream::Stdout
        } else {
            stream
        }
    }

    /// One line of a command's output (from any executor: a build, `exec`, compose, container
    /// logs), relayed with a prefix (unit or host) and masked: the one path for child output. The
    /// line is cut where the runner would cut it (a bare `\r` starts a line), each piece gets the
    /// prefix, control characters are made visible, and in Actions the pieces sit inside a
    /// `::stop-commands::` block and are defused besides (`##[` anywhere).
    pub fn relay(&self, prefix: &str, stream: Stream, line: &str) {
        let prefix = sanitize::lines(prefix).join(" ");
        let tag = self.paint(&format!("{prefix} |"), ::console::Style::new().dim());
        let text = sanitize::lines(&self.redact(line))
            .iter()
            .map(|l| self.defuse(&format!("{tag} {l}")))
            .collect::<Vec<_>>()
            .join("\n");
        self.write_relayed(self.relay_stream(stream), &text);
    }

    // -- results ---------------------------------------------------------------------------------

    /// A result table: printed on the console, appended to the job summary as Markdown (kept under
    /// the 1 MiB limit).
    pub fn summary(&self, summary: &Summary) {
        self.human(&summary.to_console());
        if let Some(g) = &self.gha {
            g.append_summary(&self.redact(&summary.to_markdown()));
        }
    }

    /// Appends a table to the job summary only (Actions); nothing on the console.
    pub fn summary_markdown_only(&self, summary: &Summary) {
        if let Some(g) = &self.gha {
            g.append_summary(&self.redact(&summary.to_markdown()));
        }
    }

    /// Sets a step output (`$GITHUB_OUTPUT`), with the multi-line syntax when needed. Outside
    /// Actions this does nothing.
    pub fn output(&self, name: &str, value: &str) {
        if let Some(g) = &self.gha {
            g.set_output(name, &self.redact(value));
        }
    }

    /// A progress bar over `total_files` files and `total_bytes` bytes; shown only on a terminal,
    /// outside GitHub Actions, without `--json` and without `DEPLOY_TEST_NO_PROGRESS`.
    pub fn progress(&self, label: &str, total_files: u64, total_bytes: u64) -> Progress {
        let visible = !self.json
            && self.gha.is_none()
            && env_vars::get(env_vars::DEPLOY_TEST_NO_PROGRESS).is_none()
            && ::console::Term::stderr().is_term();
        Progress::new(visible, label, total_files, total_bytes)
    }

    /// Writes bytes to stdout exactly as given (a generated script such as shell completions):
    /// no masking, no prefix. The caller decides what a write error means (a closed pipe is
    /// usually fine).
    pub fn raw_stdout(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut out = self.lock();
        self.close_block(&mut out);
        match &mut out.sink {
            Sink::Buffer(v) => {
                v.push((Stream::Stdout, String::from_utf8_lossy(bytes).into_owned()));
                Ok(())
            }
            Sink::Std => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
        }
    }

    /// Prints the `--json` document on stdout. In Actions, a `##[` (the legacy workflow command
    /// syntax, which the runner reads anywhere in a line) can only sit inside a JSON string, and is
    /// written `#\u0023[` there: the same JSON value, no command. (JSON strings escape line breaks,
    /// and every line starts with white space, a bracket or a quote, never `::`.)
    pub fn json_document(&self, value: &serde_json::Value) {
        let text = self.redact(&serde_json::to_string_pretty(value).unwrap_or_default());
        let text = if self.gha.is_some() {
            text.replace("##[", "#\\u0023[")
        } else {
            text
        };
        self.write(Stream::Stdout, &text);
    }
}

/// The contents of a file named by a secret-file variable (`DEPLOY_SSH_KEY_FILE`), when it can be
/// read and is of key size (at most 64 KiB): a missing or huge file is reported by whoever uses it.
fn read_secret_file(path: &str) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return None;
    }
    std::fs::read_to_string(path)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Every password a database connection string carries, as written: the URL userinfo password, a
/// `password=` query parameter (`postgres://u@h/db?password=pw`), or the `password=` of a libpq
/// `key=value` string (`host=h password=pw`, optionally single-quoted).
pub fn connection_passwords(conn: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if conn.contains("://") {
        out.extend(url_password(conn).map(str::to_string));
        if let Some((_, query)) = conn.split_once('?') {
            let query = query.split('#').next().unwrap_or(query);
            out.extend(
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, v)| k.eq_ignore_ascii_case("password") && !v.is_empty())
                    .map(|(_, v)| v.to_string()),
            );
        }
    } else {
        for (i, _) in conn.match_indices("password") {
            let at_word_start = conn[..i].chars().last().is_none_or(char::is_whitespace);
            let rest = conn[i + "password".len()..].trim_start();
            let Some(value) = rest.strip_prefix('=').map(str::trim_start) else {
                continue;
            };
            if !at_word_start {
                continue;
            }
            let pw = match value.strip_prefix('\'') {
                Some(quoted) => quoted.split('\'').next().unwrap_or_default(),
                None => value.split_whitespace().next().unwrap_or_default(),
            };
            if !pw.is_empty() {
                out.push(pw.to_string());
            }
        }
    }
    out
}

/// The password in a URL's userinfo (`scheme://user:pw@host…`), as written.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub use gha::{escape_data, escape_property};
pub use sanitize::defuse_workflow_command;

impl Drop for Report {
    /// A block left open at the end would keep the runner from reading the commands of whatever
    /// the step prints after us.
    fn drop(&mut self) {
        let mut out = self.lock();
        self.close_block(&mut out);
    }
}

#[cfg(test)]
mod tests;
