//! The top-level error: wraps each layer's error and decides the exit code in one place.

use crate::exec::ExecError;
use crate::exit::Exit;
use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line input (exit 2).
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },
    /// The manifest is invalid (exit 2).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A stage failed; details were already reported (exit 1).
    #[error("{0}")]
    StageFailed(String),
    /// An approval is missing, denied or timed out (exit 3).
    #[error("{0}")]
    Approval(String),
    /// The environment lock is held by another run (exit 4).
    #[error("{0}")]
    LockHeld(String),
    /// An executor could not reach or use a target (exit 1).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Anything else, with context (exit 1).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
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

    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage { .. } | Error::Manifest(_) => Exit::Input,
            Error::StageFailed(_) | Error::Exec(_) | Error::Other(_) => Exit::StageFailed,
            Error::Approval(_) => Exit::Approval,
            Error::LockHeld(_) => Exit::LockHeld,
        }
    }

    /// The message as shown to people.
    pub fn render(&self, color: bool) -> String {
        let (red, bold, reset) = if color {
            ("\x1b[31;1m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "")
        };
        match self {
            Error::Manifest(e) => e.render(color),
            Error::Usage { message, help } => {
                let mut s = format!("{red}error{reset}{bold}: {message}{reset}\n");
                if let Some(h) = help {
                    s.push_str(&format!("  = {bold}help{reset}: {h}\n"));
                }
                s
            }
            Error::Other(e) => {
                let mut s = format!("{red}error{reset}{bold}: {e}{reset}\n");
                for cause in e.chain().skip(1) {
                    s.push_str(&format!("  caused by: {cause}\n"));
                }
                s
            }
            other => format!("{red}error{reset}{bold}: {other}{reset}\n"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
