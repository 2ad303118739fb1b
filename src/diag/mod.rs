//! Diagnostics: source locations, the rendering of errors with a file:line:column excerpt, and
//! "did you mean" suggestions. Pure.

pub mod render;
pub mod suggest;

use std::path::PathBuf;
use std::sync::Arc;

/// A place in a source file. `Copy`, owned, cheap: runtime errors keep the span of the manifest entry
/// that configured them (a failed health check points at the `health:` of its service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

/// A source file's path and text, shared by everything that renders excerpts from it.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The text of the 1-based `line`, without its newline.
    pub fn line_text(&self, line: u32) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)? as usize)
    }
}
