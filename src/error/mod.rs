//! The top-level error: wraps each layer's error, and says what failed at run time as data — the
//! host, the unit, the failing command as displayed (secrets masked), the child's exit status and
//! the tail of its stderr, and the `deploy.yml` entry that configured it ([`Span`]).
//!
//! Two things are decided here and nowhere else: the exit code ([`Error::exit`]: 1 a stage failed,
//! 2 bad input, 3 approval, 4 lock) and how an error looks ([`render`]: the message, the location
//! excerpt, the notes such as the stderr tail, the help). Code that fails builds one of these
//! values; it never formats an error for people itself.
//!
//! Pure: no processes, no terminal.

use crate::cmd::Cmd;
use crate::diag::Span;
use crate::exec::ExecError;
use crate::exit::Exit;
use crate::manifest::ManifestError;
use std::path::PathBuf;

pub mod render;

/// How many lines of a child's stderr an error keeps: the end says why it failed.
pub const STDERR_TAIL_LINES: usize = 10;

#[derive(Debug)]
pub enum Error {
    /// Bad command-line input (exit 2).
    Usage {
        message: String,
        help: Option<String>,
    },
    /// The manifest is invalid (exit 2).
    Manifest(ManifestError),
    /// A command ran and failed, or could not start (exit 1).
    Command(Box<CommandFailure>),
    /// A remote service (Cloudflare, GitHub, the database) failed a request or reported a
    /// failure (exit 1).
    Remote(Box<RemoteFailure>),
    /// The tool's own state on a host (a release record, the lock, the override pins) could not
    /// be read, written or removed, or says what cannot be (exit 1).
    Record(Box<RecordFailure>),
    /// A check stopped the run: a health gate, a refused or changed plan, a precondition of a
    /// unit (exit 1).
    Gate(Box<GateFailure>),
    /// A migration file failed (exit 1).
    Migration(Box<MigrationFailure>),
    /// A file or stream on this machine could not be read or written (exit 1).
    Io {
        /// What was being done, naming the file: `site `web`: cannot read dist/a.html`.
        what: String,
        path: Option<PathBuf>,
        /// The system's message.
        message: String,
    },
    /// A signal (SIGINT, SIGTERM) stopped the run (exit 1).
    Cancelled {
        host: Option<String>,
        /// Which signal, as `cancel::reason` says it.
        reason: String,
        /// What was left undone: `the phases after it did not run`.
        consequence: String,
    },
    /// Units or hosts of a stage failed; each was reported when it failed (exit 1).
    Failed {
        stage: String,
        /// The units or hosts that failed, in order.
        failed: Vec<String>,
        /// How many there were in all.
        of: usize,
        noun: Noun,
    },
    /// A plan and the code that performs it are out of step: a bug (exit 1).
    Bug(String),
    /// An error that stopped a stage, with what it left ([`Error::aftermath`]): `later hosts were
    /// not touched`, `nothing was deployed on this host: …`. Its host, unit, origin and notes are
    /// the error's; the aftermath follows its message. Exit 1 whatever the error's own code: the
    /// stage failed (a fan-out stops on any error of a host that way).
    Aftermath {
        error: Box<Error>,
        /// What the failure left, a clause after `; ` (empty: nothing to add).
        aftermath: String,
    },
    /// An approval is missing, denied or timed out (exit 3).
    Approval(String),
    /// The environment lock is held by another run (exit 4).
    LockHeld(String),
    /// An executor could not reach or use a target (exit 1).
    Exec(ExecError),
    /// Anything else, with context (exit 1).
    Other(anyhow::Error),
}

/// What the names of [`Error::Failed`] are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noun {
    Unit,
    Host,
}

/// A command that ran and failed, or could not start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandFailure {
    /// The target's label: `local`, `deploy@host:22`.
    pub host: String,
    pub unit: Option<String>,
    /// What the command was for, the subject of "… failed": `build api`, `the build of site `web``.
    pub what: String,
    /// The command as people see it ([`Cmd::shown`]: secrets as `***`).
    pub cmd: String,
    /// The exit status; `None` when the command could not start (or did not run); `Some(0)` when
    /// it succeeded but its output could not be read.
    pub status: Option<i32>,
    /// The last lines of its stderr; when it could not start, why; when its output could not be
    /// read, why not.
    pub stderr_tail: String,
    /// The `deploy.yml` entry that configured the command (a `build:`, a `test:`).
    pub origin: Option<Span>,
    pub help: Option<String>,
}

impl CommandFailure {
    pub fn new(host: impl Into<String>, what: impl Into<String>, cmd: &Cmd) -> CommandFailure {
        CommandFailure::shown(host, what, cmd.shown())
    }
    /// A command given as people see it already (a section of a host script, secrets masked).
    pub fn shown(
        host: impl Into<String>,
        what: impl Into<String>,
        shown: impl Into<String>,
    ) -> CommandFailure {
        CommandFailure {
            host: host.into(),
            what: what.into(),
            cmd: shown.into(),
            ..Default::default()
        }
    }
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }
    pub fn status(mut self, status: i32) -> Self {
        self.status = Some(status);
        self
    }
    /// The last lines of the child's stderr (for a command that could not start: why).
    pub fn stderr(mut self, tail: impl Into<String>) -> Self {
        self.stderr_tail = tail.into();
        self
    }
    pub fn origin(mut self, origin: Option<Span>) -> Self {
        self.origin = origin;
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A remote service that failed a request or reported a failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteFailure {
    /// `Cloudflare`, `GitHub`, `the database`.
    pub service: &'static str,
    pub unit: Option<String>,
    /// What was being done, the message's first part: `site `web``, `cannot list the tags of
    /// `production``.
    pub what: String,
    /// What the service said (or that it said nothing).
    pub message: String,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The `deploy.yml` entry of the unit (a site, `migrations:`).
    pub origin: Option<Span>,
    pub help: Option<String>,
}

impl RemoteFailure {
    pub fn new(
        service: &'static str,
        what: impl Into<String>,
        message: impl Into<String>,
    ) -> RemoteFailure {
        RemoteFailure {
            service,
            what: what.into(),
            message: message.into(),
            ..Default::default()
        }
    }
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }
    pub fn status(mut self, status: Option<u16>) -> Self {
        self.status = status.filter(|s| *s != 0);
        self
    }
    pub fn origin(mut self, origin: Option<Span>) -> Self {
        self.origin = origin;
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The tool's state on a host that could not be read, written or removed, or that says what
/// cannot be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFailure {
    /// The host (empty: the records as a whole, read from the hosts or the git tags).
    pub host: String,
    /// What could not be done, after "cannot": `write release record 7`, `remove the staging lock`.
    pub what: String,
    /// The file or directory on the host (empty: none to name).
    pub path: String,
    /// The last lines of the stderr of the script that tried.
    pub stderr_tail: String,
}

impl RecordFailure {
    pub fn new(
        host: impl Into<String>,
        what: impl Into<String>,
        path: impl Into<String>,
    ) -> RecordFailure {
        RecordFailure {
            host: host.into(),
            what: what.into(),
            path: path.into(),
            ..Default::default()
        }
    }
    pub fn stderr(mut self, tail: impl Into<String>) -> Self {
        self.stderr_tail = tail.into();
        self
    }
}

/// A check that stopped the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateFailure {
    pub host: Option<String>,
    pub unit: Option<String>,
    /// Why it stopped, a sentence: `api: not healthy within 60s (HTTP 503)`.
    pub why: String,
    /// The `deploy.yml` entry of the check (a `health:`, `migrations:`).
    pub origin: Option<Span>,
    pub help: Option<String>,
}

impl GateFailure {
    pub fn new(why: impl Into<String>) -> GateFailure {
        GateFailure {
            why: why.into(),
            ..Default::default()
        }
    }
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }
    pub fn origin(mut self, origin: Option<Span>) -> Self {
        self.origin = origin;
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A migration file that failed, and what is left of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationFailure {
    /// The file, under its directory: `migrations/0002_b.sql`.
    pub file: String,
    /// What is left of it: `it was rolled back whole; earlier migrations stay applied`.
    pub aftermath: String,
    /// The failing statement, when the database said which.
    pub statement: Option<String>,
    /// The database's own message.
    pub database: String,
    /// The `migrations:` entry.
    pub origin: Option<Span>,
}

macro_rules! boxed_from {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Error {
            fn from(f: $t) -> Error {
                Error::$v(Box::new(f))
            }
        }
    )*};
}

boxed_from!(
    CommandFailure => Command,
    RemoteFailure => Remote,
    RecordFailure => Record,
    GateFailure => Gate,
    MigrationFailure => Migration
);

impl From<ManifestError> for Error {
    fn from(e: ManifestError) -> Error {
        Error::Manifest(e)
    }
}

impl From<ExecError> for Error {
    fn from(e: ExecError) -> Error {
        Error::Exec(e)
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        Error::Other(e)
    }
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: None,
        }
    }

    pub fn usage_help(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// A local file operation `what` (naming `path`) failed with `e`.
    pub fn io(what: impl Into<String>, path: Option<PathBuf>, e: &std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            path,
            message: e.to_string(),
        }
    }

    /// Fills in what the error does not say yet from the step that failed: its unit and the
    /// `deploy.yml` entry that configured it. What the error says already wins.
    pub fn within(mut self, unit: Option<&str>, origin: Option<Span>) -> Error {
        if let Error::Aftermath { error, aftermath } = self {
            return Error::Aftermath {
                error: Box::new(error.within(unit, origin)),
                aftermath,
            };
        }
        let fill = |have: &mut Option<String>| {
            if have.is_none() {
                *have = unit.map(str::to_string);
            }
        };
        match &mut self {
            Error::Command(c) => {
                fill(&mut c.unit);
                c.origin = c.origin.or(origin);
            }
            Error::Remote(r) => {
                fill(&mut r.unit);
                r.origin = r.origin.or(origin);
            }
            Error::Gate(g) => {
                fill(&mut g.unit);
                g.origin = g.origin.or(origin);
            }
            Error::Migration(m) => m.origin = m.origin.or(origin),
            _ => {}
        }
        self
    }

    /// This error with what it left (`later hosts were not touched`): an [`Error::Aftermath`],
    /// exit 1. A second aftermath follows the first.
    pub fn aftermath(self, aftermath: impl Into<String>) -> Error {
        let more = aftermath.into();
        match self {
            Error::Aftermath { error, aftermath } => Error::Aftermath {
                error,
                aftermath: [aftermath, more]
                    .into_iter()
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            error => Error::Aftermath {
                error: Box::new(error),
                aftermath: more,
            },
        }
    }

    /// The exit code: the one place it is decided.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage { .. } | Error::Manifest(_) => Exit::Input,
            Error::Command(_)
            | Error::Remote(_)
            | Error::Record(_)
            | Error::Gate(_)
            | Error::Migration(_)
            | Error::Io { .. }
            | Error::Cancelled { .. }
            | Error::Failed { .. }
            | Error::Bug(_)
            | Error::Aftermath { .. }
            | Error::Exec(_)
            | Error::Other(_) => Exit::StageFailed,
            Error::Approval(_) => Exit::Approval,
            Error::LockHeld(_) => Exit::LockHeld,
        }
    }

    /// The `deploy.yml` entry the error comes from, when one is known.
    pub fn origin(&self) -> Option<Span> {
        match self {
            Error::Manifest(e) => e.span,
            Error::Command(c) => c.origin,
            Error::Remote(r) => r.origin,
            Error::Gate(g) => g.origin,
            Error::Migration(m) => m.origin,
            Error::Aftermath { error, .. } => error.origin(),
            _ => None,
        }
    }

    /// The host the error happened on, when it happened on one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Error::Command(c) => Some(&c.host),
            Error::Record(r) => Some(&r.host),
            Error::Gate(g) => g.host.as_deref(),
            Error::Cancelled { host, .. } => host.as_deref(),
            Error::Exec(
                ExecError::Connect { host, .. }
                | ExecError::HostKey { host, .. }
                | ExecError::Auth { host, .. }
                | ExecError::Spawn { host, .. }
                | ExecError::Io { host, .. },
            ) => Some(host),
            Error::Aftermath { error, .. } => error.host(),
            _ => None,
        }
    }

    /// The unit the error concerns, when one is known.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Error::Command(c) => c.unit.as_deref(),
            Error::Remote(r) => r.unit.as_deref(),
            Error::Gate(g) => g.unit.as_deref(),
            Error::Migration(_) => Some(crate::manifest::MIGRATIONS_UNIT),
            Error::Aftermath { error, .. } => error.unit(),
            _ => None,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Manifest(e) => Some(e),
            Error::Exec(e) => Some(e),
            Error::Other(e) => e.source(),
            Error::Aftermath { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
