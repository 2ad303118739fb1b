//! Resolved settings: command line + environment, validated, no clap types past this point.

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::manifest::{self, Environment, Manifest};
// The manifest is loaded by `context::Ctx::load_manifest`, which also registers its secrets.
use std::path::PathBuf;

/// What every command knows about how it was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub dry_run: bool,
    pub env: Option<String>,
    pub only: Vec<String>,
    pub all: bool,
    pub base: Option<String>,
    pub json: bool,
    pub manifest_path: PathBuf,
    pub yes: bool,
    /// `--tag`: record releases as local git tags too.
    pub tag: bool,
    /// `--allow-dirty`: deploy from a working tree with uncommitted changes.
    pub allow_dirty: bool,
    /// `--approval-timeout`, as typed (parsed by the guard).
    pub approval_timeout: String,
}

impl Settings {
    pub fn from_args(g: &GlobalArgs) -> Settings {
        Settings {
            dry_run: g.dry_run,
            env: g.env.clone(),
            only: g.only.clone(),
            all: g.all,
            base: g.base.clone(),
            json: g.json,
            manifest_path: g
                .manifest
                .clone()
                .unwrap_or_else(|| PathBuf::from(manifest::DEFAULT_FILE)),
            yes: g.yes,
            tag: g.tag,
            allow_dirty: g.allow_dirty,
            approval_timeout: g.approval_timeout.clone(),
        }
    }

    /// The environment named by `--env` (required), or an exit-2 error naming the choices.
    pub fn environment<'m>(&self, m: &'m Manifest) -> Result<&'m Environment> {
        let names: Vec<&str> = m.environments.keys().map(String::as_str).collect();
        let Some(name) = &self.env else {
            return Err(Error::usage_help(
                "this command needs --env ENV",
                format!("environments in the manifest: {}", names.join(", ")),
            ));
        };
        m.environments.get(name).ok_or_else(|| {
            let help = match crate::diag::suggest::closest(name, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? environments: {}", names.join(", ")),
                None => format!("environments in the manifest: {}", names.join(", ")),
            };
            Error::usage_help(format!("unknown environment `{name}`"), help)
        })
    }
}
