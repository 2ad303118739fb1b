//! The raw YAML tree → the typed [`Manifest`]. Every key is checked against the tables in `keys.rs`
//! (unknown keys are rejected with the closest valid key), every value against its type, and the
//! cross-references (promote_from, unit names) are resolved. Errors carry the span of the offending
//! node and, where there is one, a "did you mean".
//!
//! Stays out of: YAML syntax (raw.rs), rendering (diag), and anything that needs I/O.
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
use values::{check_name, named, parse_int, string, wrong_type};

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
    } else {
        return Err(ManifestError {
            help: Some("write `version: 1`".into()),
            ..wrong_type(vk, vv, "the number 1")
        });
    }
    let project = top.req_string("project")?;

    // Environments.
    // Optional: a manifest that only builds and tests needs no environment.
    let mut environments: IndexMap<String, Environment> = IndexMap::new();
    let mut promote_refs: Vec<(&Node, &Node, String)> = Vec::new();
    let env_entries = match top.get("environments") {
        Some((ek, ev)) => named(ek, ev)?,
        None => &[],
    };
    for (k, v) in env_entries {
        let name = check_name(k, "environment")?;
        let env = environments::environment(&name, k, v, &project)?;
        if let Some((pk, pv)) = Obj::new(v, &keys::ENVIRONMENT, k.span, String::new())
            .ok()
            .and_then(|o| o.get("promote_from"))
        {
            promote_refs.push((pk, pv, name.clone()));
        }
        environments.insert(name, env);
    }
    for (pk, pv, name) in promote_refs {
        let target = string(pk, pv)?;
        if target == name {
            return Err(err(
                pv.span,
                format!("environment `{name}` cannot promote from itself"),
            ));
        }
        if !environments.contains_key(&target) {
            let help = did_you_mean(&target, environments.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    format!(
                        "environments: {}",
                        environments.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                });
            return Err(err_help(
                pv.span,
                format!("promote_from names environment `{target}`, which does not exist"),
                help,
            ));
        }
    }

    // Units share one namespace; `migrations` is reserved for the migrations unit.
    let mut unit_spans: IndexMap<String, Span> = IndexMap::new();
    let mut claim = |k: &Node, what: &str| -> Result<String> {
        let name = check_name(k, what)?;
        if name == MIGRATIONS_UNIT {
            return Err(err_help(
                k.span,
                format!("`{MIGRATIONS_UNIT}` is a reserved unit name and cannot name a {what}"),
                "rename it; the `migrations:` block is the unit named `migrations`",
            ));
        }
        if let Some(first) = unit_spans.get(&name) {
            return Err(err_help(
                k.span,
                format!(
                    "unit name `{name}` is used twice (first on line {})",
                    first.line
                ),
                "services and sites share one set of unit names; rename one",
            ));
        }
        unit_spans.insert(name.clone(), k.span);
        Ok(name)
    };

    let mut services = IndexMap::new();
    if let Some((sk, sv)) = top.get("services") {
        for (k, v) in named(sk, sv)? {
            let name = claim(k, "service")?;
            services.insert(name.clone(), services::service(&name, k, v)?);
        }
    }
    let mut sites = IndexMap::new();
    if let Some((sk, sv)) = top.get("sites") {
        for (k, v) in named(sk, sv)? {
            let name = claim(k, "site")?;
            sites.insert(name.clone(), sites::site(&name, k, v)?);
        }
    }
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
