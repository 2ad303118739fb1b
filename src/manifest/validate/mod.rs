//! The raw YAML tree → the typed [`Manifest`]. Every key is checked against the tables in `keys.rs`
//! (unknown keys are rejected with the closest valid key), every value against its type, and the
//! cross-references (promote_from, unit names) are resolved. Errors carry the span of the offending
//! node and, where there is one, a "did you mean".
//!
//! Stays out of: YAML syntax (`raw/`), rendering (diag), and anything that needs I/O.
//!
//! One module per part of the manifest: `environments`, `hosts`, `database` (with `migrations:`),
//! `services`, `sites`; `obj` checks a mapping against its key table and `values` reads single
//! values. This file reads the top level and resolves what crosses parts (promote_from, the unit
//! namespace).

mod database;
mod environments;
mod hosts;
mod obj;
mod services;
mod sites;
#[cfg(test)]
mod tests;
mod values;

pub use hosts::parse_host;
pub use values::parse_duration;

use super::ManifestError;
use super::keys;
use super::model::*;
use super::raw::{Node, ScalarType};
use crate::diag::suggest::closest;
use crate::diag::{Source, Span};
use indexmap::IndexMap;
use obj::Obj;
use values::{check_name, named, parse_int, wrong_type};

type Result<T> = std::result::Result<T, ManifestError>;

fn err(span: Span, message: impl Into<String>) -> ManifestError {
    ManifestError {
        message: message.into(),
        span: Some(span),
        help: None,
        source: None,
    }
}

fn err_help(span: Span, message: impl Into<String>, help: impl Into<String>) -> ManifestError {
    ManifestError {
        help: Some(help.into()),
        ..err(span, message)
    }
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Validates the raw tree into a [`Manifest`]. Errors have no source attached (the caller adds it).
pub fn validate(root: &Node, source: &Source) -> Result<Manifest> {
    let at = Span {
        offset: 0,
        len: 0,
        line: 1,
        col: 1,
    };
    let top = Obj::new(root, &keys::ROOT, at, "the manifest".into())?;
    version(&top)?;
    let project = top.req_string("project")?;
    // Optional: a manifest that only builds and tests needs no environment.
    let environments = environments::environments(&top, &project)?;
    let mut units = UnitNames::default();
    let services = units.read(&top, "services", "service", services::service)?;
    let sites = units.read(&top, "sites", "site", sites::site)?;
    let migrations = match top.get("migrations") {
        Some((k, v)) => Some(database::migrations(k, v)?),
        None => None,
    };
    Ok(Manifest {
        source: source.clone(),
        version: 1,
        project,
        environments,
        services,
        sites,
        migrations,
    })
}

/// `version:` is required and is the number 1.
fn version(top: &Obj) -> Result<()> {
    let (vk, vv) = top.required("version")?;
    if vv.scalar_type() == Some(ScalarType::Int) {
        let n = parse_int(vv.scalar_text().unwrap_or_default());
        if n != Some(1) {
            return Err(err_help(
                vv.span,
                format!(
                    "unsupported manifest version {}; this deploy-action reads version 1",
                    vv.scalar_text().unwrap_or_default()
                ),
                "write `version: 1`",
            ));
        }
        Ok(())
    } else {
        Err(ManifestError {
            help: Some("write `version: 1`".into()),
            ..wrong_type(vk, vv, "the number 1")
        })
    }
}

/// The one namespace that services and sites share; `migrations` is reserved for the migrations
/// unit. Remembers where each name was first used.
#[derive(Default)]
struct UnitNames {
    spans: IndexMap<String, Span>,
}

impl UnitNames {
    /// Checks the name a key gives a unit of kind `what` and claims it.
    fn claim(&mut self, k: &Node, what: &str) -> Result<String> {
        let name = check_name(k, what)?;
        if name == MIGRATIONS_UNIT {
            return Err(err_help(
                k.span,
                format!("`{MIGRATIONS_UNIT}` is a reserved unit name and cannot name a {what}"),
                "rename it; the `migrations:` block is the unit named `migrations`",
            ));
        }
        if let Some(first) = self.spans.get(&name) {
            return Err(err_help(
                k.span,
                format!(
                    "unit name `{name}` is used twice (first on line {})",
                    first.line
                ),
                "services and sites share one set of unit names; rename one",
            ));
        }
        self.spans.insert(name.clone(), k.span);
        Ok(name)
    }

    /// The units under the top-level `key` (`services`, `sites`), each named and then read by `read`.
    fn read<T>(
        &mut self,
        top: &Obj,
        key: &str,
        what: &str,
        read: fn(&str, &Node, &Node) -> Result<T>,
    ) -> Result<IndexMap<String, T>> {
        let mut units = IndexMap::new();
        if let Some((sk, sv)) = top.get(key) {
            for (k, v) in named(sk, sv)? {
                let name = self.claim(k, what)?;
                units.insert(name.clone(), read(&name, k, v)?);
            }
        }
        Ok(units)
    }
}
