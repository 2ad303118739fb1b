//! How an error looks, decided in this one place. [`Error::render`] draws a diagnostic: the
//! message, the `deploy.yml` excerpt when the error has an origin and the manifest's source is
//! known, the notes (the child's stderr tail, a failing statement), the help. `Display` gives the
//! same message and notes as plain lines, without the excerpt or the help, for logs, audit
//! entries and GitHub deployment statuses.

use super::{
    CommandFailure, Error, GateFailure, MigrationFailure, Noun, RecordFailure, RemoteFailure,
};
use crate::diag::Source;
use crate::diag::render::{Diagnostic, Note, render, shorten_quoted};
use std::fmt;

impl Error {
    /// The error as shown to people: a manifest error with its own excerpt; a runtime error with
    /// the excerpt of its origin in `source` (the manifest this run loaded), when both are known.
    pub fn render(&self, source: Option<&Source>, color: bool) -> String {
        match self {
            Error::Manifest(e) => e.render(color),
            other => render(&other.diagnostic(), source, color),
        }
    }

    /// `file`, `line`, `col` for annotations (`::error file=deploy.yml,line=N::`).
    pub fn location(&self, source: Option<&Source>) -> Option<(String, u32, u32)> {
        match self {
            Error::Manifest(e) => e.location(),
            other => {
                let (src, span) = (source?, other.origin()?);
                Some((src.path.display().to_string(), span.line, span.col))
            }
        }
    }

    /// The parts of the error, for both renderings.
    fn diagnostic(&self) -> Diagnostic {
        let mut d = match self {
            Error::Command(c) => c.diagnostic(),
            Error::Remote(r) => r.diagnostic(),
            Error::Record(r) => r.diagnostic(),
            Error::Gate(g) => g.diagnostic(),
            Error::Migration(m) => m.diagnostic(),
            Error::Aftermath { error, aftermath } => {
                let mut d = error.diagnostic();
                if !aftermath.is_empty() {
                    d.message = format!("{}; {aftermath}", d.message);
                }
                d
            }
            other => Diagnostic {
                message: other.message(),
                ..Default::default()
            },
        };
        match self {
            Error::Usage { help, .. } => d.help = help.clone(),
            Error::Manifest(e) => {
                d.span = e.span;
                d.help = e.help.clone();
            }
            Error::Bug(_) => {
                d.help = Some("deploy-action went wrong, not your deploy: please report it".into())
            }
            Error::Other(e) => {
                for cause in e.chain().skip(1) {
                    d.notes.push(Note::new("caused by", cause.to_string()));
                }
            }
            _ => {}
        }
        d.notes.retain(|n| !n.text.trim().is_empty());
        d
    }

    /// The first line of an error that has no failure type of its own.
    fn message(&self) -> String {
        match self {
            Error::Usage { message, .. } => message.clone(),
            Error::Manifest(e) => e.message.clone(),
            Error::Command(_)
            | Error::Remote(_)
            | Error::Record(_)
            | Error::Gate(_)
            | Error::Migration(_)
            | Error::Aftermath { .. } => self.diagnostic().message,
            Error::Io { what, message, .. } => joined(what, message),
            Error::Cancelled {
                host,
                reason,
                consequence,
            } => format!(
                "{}{reason}; {consequence}",
                on(host.as_deref().unwrap_or(""))
            ),
            Error::Failed {
                stage,
                failed,
                of,
                noun,
            } => {
                let (word, noun) = match noun {
                    Noun::Unit => ("for", "unit"),
                    Noun::Host => ("on", "host"),
                };
                format!(
                    "{stage} failed {word} {} of {of} {noun}{}: {}",
                    failed.len(),
                    if *of == 1 { "" } else { "s" },
                    failed.join(", ")
                )
            }
            Error::Bug(what) => format!("{what} (a bug: please report it)"),
            Error::Approval(m) | Error::LockHeld(m) => m.clone(),
            Error::Exec(e) => e.to_string(),
            Error::Other(e) => e.to_string(),
        }
    }
}

impl CommandFailure {
    fn diagnostic(&self) -> Diagnostic {
        let (outcome, label) = match self.status {
            Some(0) => ("gave output that cannot be read".into(), "cause"),
            Some(s) => (format!("failed (exit status {s})"), "stderr"),
            None => ("could not start".into(), "cause"),
        };
        Diagnostic {
            message: format!(
                "{}{} {outcome}: `{}`",
                on(&self.host),
                self.what,
                one_line(&self.cmd)
            ),
            span: self.origin,
            notes: vec![Note::new(label, self.stderr_tail.clone())],
            help: self.help.clone(),
        }
    }
}

impl RemoteFailure {
    fn diagnostic(&self) -> Diagnostic {
        let service = self.service;
        let by_status = match self.status {
            Some(401 | 403) => Some(format!(
                "{service} refused the credentials or what they may do: check the token and its permissions"
            )),
            Some(429) => Some(format!(
                "{service} is limiting the rate of requests: wait, then run again"
            )),
            Some(500..=599) => Some(format!(
                "the failure is on {service}'s side: running again usually works"
            )),
            _ => None,
        };
        Diagnostic {
            message: joined(&self.what, &self.message),
            span: self.origin,
            notes: Vec::new(),
            help: self.help.clone().or(by_status),
        }
    }
}

impl RecordFailure {
    fn diagnostic(&self) -> Diagnostic {
        let path = if self.path.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.path)
        };
        Diagnostic {
            message: format!("{}cannot {}{path}", on(&self.host), self.what),
            notes: vec![Note::new("stderr", self.stderr_tail.clone())],
            ..Default::default()
        }
    }
}

impl GateFailure {
    fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            message: format!("{}{}", on(self.host.as_deref().unwrap_or("")), self.why),
            span: self.origin,
            notes: Vec::new(),
            help: self.help.clone(),
        }
    }
}

impl MigrationFailure {
    fn diagnostic(&self) -> Diagnostic {
        let mut notes = Vec::new();
        if let Some(s) = &self.statement {
            notes.push(Note::new("statement", s.clone()));
        }
        notes.push(Note::new("database", self.database.clone()));
        Diagnostic {
            message: format!("{} failed; {}", self.file, self.aftermath),
            span: self.origin,
            notes,
            help: None,
        }
    }
}

/// `host: ` before a message, except on this machine (`local`), where it says nothing.
fn on(host: &str) -> String {
    if host.is_empty() || host == "local" {
        String::new()
    } else {
        format!("{host}: ")
    }
}

/// A command as a message quotes it, on one line: a script of several lines (a `build: |` block)
/// by its first line and `…`; the excerpt shows where the rest is.
fn one_line(cmd: &str) -> String {
    let mut lines = cmd.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    match lines.next() {
        Some(_) => format!("{first} …"),
        None => first.to_string(),
    }
}

/// `a: b`, or whichever of them is not empty.
fn joined(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (false, false) => format!("{a}: {b}"),
        (true, _) => b.to_string(),
        (false, true) => a.to_string(),
    }
}

/// The message and its notes on plain lines: `label: text`, or `label:` and the text's lines.
/// Quoted values in the message are cut as [`render`] cuts them.
fn write_plain(d: &Diagnostic, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&shorten_quoted(&d.message))?;
    for note in d.notes.iter().filter(|n| !n.text.trim().is_empty()) {
        match note.lines().as_slice() {
            [] => {}
            [one] => write!(f, "\n  {}: {one}", note.label)?,
            many => {
                write!(f, "\n  {}:", note.label)?;
                for l in many {
                    write!(f, "\n    {l}")?;
                }
            }
        }
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Manifest(e) => e.fmt(f),
            other => write_plain(&other.diagnostic(), f),
        }
    }
}

macro_rules! display_as_diagnostic {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_plain(&self.diagnostic(), f)
            }
        }
    )*};
}

display_as_diagnostic!(
    CommandFailure,
    RemoteFailure,
    RecordFailure,
    GateFailure,
    MigrationFailure
);
