//! Manifest errors: a kind, the span it points at, an optional suggestion.

use crate::diag::render::{Diagnostic, render};
use crate::diag::{Source, Span};
use std::path::Path;

#[derive(Debug)]
pub struct ManifestError {
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
    pub source: Option<Source>,
}

impl ManifestError {
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        let message = if err.kind() == std::io::ErrorKind::NotFound {
            format!(
                "no manifest at {} (create deploy.yml or pass --manifest FILE)",
                path.display()
            )
        } else {
            format!("cannot read {}: {err}", path.display())
        };
        ManifestError {
            message,
            span: None,
            help: None,
            source: None,
        }
    }

    pub fn unsupported(message: &str) -> Self {
        ManifestError {
            message: message.to_string(),
            span: None,
            help: None,
            source: None,
        }
    }

    /// Renders the error with its excerpt.
    pub fn render(&self, color: bool) -> String {
        let diag = Diagnostic {
            message: self.message.clone(),
            span: self.span,
            help: self.help.clone(),
            ..Default::default()
        };
        render(&diag, self.source.as_ref(), color)
    }

    /// `file`, `line`, `col` for annotations (`::error file=deploy.yml,line=N::`).
    pub fn location(&self) -> Option<(String, u32, u32)> {
        let (src, span) = (self.source.as_ref()?, self.span?);
        Some((src.path.display().to_string(), span.line, span.col))
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.location() {
            Some((file, line, col)) => write!(f, "{file}:{line}:{col}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ManifestError {}
