//! Executors: the only layer that starts processes or opens SSH sessions.
//!
//! `local.rs` runs child processes, `ssh.rs` keeps one authenticated session per host and reuses it
//! for every step, `dry_run.rs` records and prints. The same [`Plan`](crate::plan::Plan) runs on all.
//! [`connect`] is the one way to reach a manifest host.

use crate::cmd::Cmd;
use crate::manifest::Host;
use std::io::Read;
use std::sync::Arc;

pub mod dry_run;
pub mod known_hosts;
pub mod local;
pub mod pool;
pub mod ssh;

/// Which stream a line of relayed output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The collected result of a command.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// The last lines of stderr, for error messages, each cut to [`MAX_TAIL_LINE`] characters.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| cut(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The most characters of one stderr line an error keeps: more than it shows (an error's note
/// cuts its lines shorter), so that a child writing one huge line cannot make a huge error.
pub const MAX_TAIL_LINE: usize = 1000;

/// `line` cut to [`MAX_TAIL_LINE`] characters, with `…` where it was cut.
fn cut(line: &str) -> String {
    match line.char_indices().nth(MAX_TAIL_LINE) {
        None => line.to_string(),
        Some((at, _)) => format!("{}…", &line[..at]),
    }
}

/// The last lines a child wrote to stderr, kept while its output is relayed as it comes: the
/// error that reports its failure shows them (the failing tool's own message reaches the user).
#[derive(Clone, Debug)]
pub struct StderrTail {
    lines: std::collections::VecDeque<String>,
    max: usize,
}

impl StderrTail {
    /// Keeps at most `max` lines, the last ones.
    pub fn new(max: usize) -> StderrTail {
        StderrTail {
            lines: std::collections::VecDeque::with_capacity(max.min(64)),
            max,
        }
    }

    /// Keeps `line` (cut to [`MAX_TAIL_LINE`] characters) if it came from stderr.
    pub fn keep(&mut self, stream: Stream, line: &str) {
        if stream != Stream::Stderr || self.max == 0 {
            return;
        }
        if self.lines.len() == self.max {
            self.lines.pop_front();
        }
        self.lines.push_back(cut(line));
    }

    /// The lines kept, joined by newlines.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Errors an executor reports (not a command's non-zero exit, which is a normal [`Output`]).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{host}: cannot connect: {message}")]
    Connect { host: String, message: String },
    #[error("{host}: host key refused: {message}")]
    HostKey { host: String, message: String },
    #[error("{host}: authentication failed: {message}")]
    Auth { host: String, message: String },
    #[error("{host}: cannot start `{program}`: {message}")]
    Spawn {
        host: String,
        program: String,
        message: String,
    },
    #[error("{host}: {message}")]
    Io { host: String, message: String },
}

/// Runs commands and moves files on one target.
pub trait Executor {
    /// The target's label (`local`, `root@127.0.0.1:2222`).
    fn label(&self) -> String;

    /// Runs `cmd`, feeding `input` (if any) to its stdin after `cmd.stdin`, and passing each output
    /// line to `on_line` as it arrives. Returns the exit status; a non-zero status is not an error.
    ///
    /// `input` may be interactive: a read that fails with [`std::io::ErrorKind::WouldBlock`] means
    /// "nothing to send yet", and the executor keeps relaying output and asks again (a long-lived
    /// `psql` session fed query by query, such as the compose-mode migration lock, needs this).
    fn run(
        &mut self,
        cmd: &Cmd,
        input: Option<&mut dyn Read>,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, ExecError>;

    /// Runs `cmd` and collects its output.
    fn capture(&mut self, cmd: &Cmd) -> Result<Output, ExecError>;

    /// Runs `cmd` with its standard output written to `file` (binary: an image archive), and
    /// returns the status and standard error (the returned `stdout` is empty).
    fn capture_to_file(&mut self, cmd: &Cmd, file: &std::fs::File) -> Result<Output, ExecError>;

    /// Writes `data` to `remote_path` on the target with `mode`, creating parent directories.
    fn upload(&mut self, remote_path: &str, data: &[u8], mode: i32) -> Result<(), ExecError>;

    /// Runs a command that changes nothing a run owns (a read, or work in a scratch directory it
    /// removes again) and collects its output: the target's answer on every executor, a dry run's
    /// included ([`dry_run::ReadThrough`]), so what a dry run plans from is what the host is.
    fn read(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.capture(cmd)
    }

    /// Whether this executor records instead of running (a dry run): its answers are empty
    /// successes, which the callers take as "would have worked".
    fn records(&self) -> bool {
        false
    }
}

/// Opens an executor for a host: child processes for `local`, one SSH session otherwise (strict
/// host-key checking; notices such as an accepted new key go to `warn`).
pub fn connect(host: &Host, warn: &dyn Fn(&str)) -> Result<Box<dyn Executor>, ExecError> {
    match host {
        Host::Local => Ok(Box::new(local::LocalExecutor)),
        Host::Ssh { user, host, port } => Ok(Box::new(ssh::SshExecutor::connect(
            &ssh::SshTarget {
                user: user.clone(),
                host: host.clone(),
                port: *port,
            },
            warn,
        )?)),
    }
}

/// How to open one more executor for a host, from any thread (the compose-mode migration lock
/// keeps a session of its own).
pub type ExecutorOpener = Arc<dyn Fn() -> Result<Box<dyn Executor>, ExecError> + Send + Sync>;

/// An [`ExecutorOpener`] for `host`: each call connects again (notices go nowhere: the run's first
/// connection to the host has reported them already).
pub fn opener(host: &Host) -> ExecutorOpener {
    let host = host.clone();
    Arc::new(move || connect(&host, &|_: &str| {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_keeps_the_last_stderr_lines_only() {
        let mut t = StderrTail::new(2);
        t.keep(Stream::Stderr, "one");
        t.keep(Stream::Stdout, "not this");
        t.keep(Stream::Stderr, "two");
        t.keep(Stream::Stderr, "three");
        assert_eq!(t.text(), "two\nthree");
        let mut none = StderrTail::new(0);
        none.keep(Stream::Stderr, "x");
        assert_eq!(none.text(), "");
    }

    #[test]
    fn a_huge_stderr_line_is_cut_in_the_tail_an_error_keeps() {
        let huge = "é".repeat(1_000_000);
        let mut t = StderrTail::new(10);
        t.keep(Stream::Stderr, &huge);
        t.keep(Stream::Stderr, "short");
        let kept = t.text();
        let first = kept.lines().next().unwrap();
        assert_eq!(first.chars().count(), MAX_TAIL_LINE + 1);
        assert!(first.ends_with("é…"), "cut on a character boundary");
        assert_eq!(kept.lines().nth(1), Some("short"));
        let out = Output {
            stderr: format!("{huge}\nlast\n").into_bytes(),
            ..Output::default()
        };
        let tail = out.stderr_tail(2);
        assert_eq!(tail.chars().count(), MAX_TAIL_LINE + 1 + 1 + 4);
        assert!(tail.ends_with("…\nlast"), "{}", &tail[tail.len() - 10..]);
    }
}
