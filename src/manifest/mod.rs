//! `deploy.yml`: load, validate, describe. Pure apart from reading the one file.
//!
//! `raw/` parses YAML into a tree that keeps every node's [`Span`](crate::diag::Span);
//! `validate/` turns that tree into the typed [`Manifest`], rejecting unknown keys with a suggestion;
//! `schema.rs` prints the JSON Schema from the same key definitions.

pub mod error;
pub mod grammar;
pub mod keys;
pub mod model;
pub mod raw;
pub mod schema;
pub mod validate;

pub use error::ManifestError;
pub use model::*;

use crate::diag::Source;
use std::path::Path;

/// The file looked up in the working directory when `--manifest` is not given.
pub const DEFAULT_FILE: &str = "deploy.yml";

/// Reads and validates a manifest file.
pub fn load_file(path: &Path) -> Result<Manifest, ManifestError> {
    // Refuse an oversized file before reading it into memory.
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > raw::MAX_BYTES as u64
    {
        return Err(ManifestError::unsupported(&format!(
            "{} is {} bytes; the limit for a manifest is {} bytes (1 MiB)",
            path.display(),
            meta.len(),
            raw::MAX_BYTES
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError::io(path, e))?;
    parse(Source::new(path, text))
}

/// Validates manifest text.
pub fn parse(source: Source) -> Result<Manifest, ManifestError> {
    let result = raw::parse(&source.text).and_then(|root| validate::validate(&root, &source));
    result.map_err(|mut e| {
        e.source = Some(source.clone());
        e
    })
}
