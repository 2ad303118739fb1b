//! What plan, build and test share: load the manifest, pick the environment, find the affected units.

use crate::changes::{self, Affected};
use crate::context::Ctx;
use crate::error::Result;
use crate::manifest::{Environment, Manifest};
use std::path::{Path, PathBuf};

/// The manifest, where it lives, and the units this run acts on.
pub struct Loaded {
    pub manifest: Manifest,
    /// The repository root: the directory holding deploy.yml (`.` when it is the current one).
    pub root: PathBuf,
    pub affected: Affected,
}

impl Loaded {
    pub fn load(ctx: &Ctx) -> Result<Loaded> {
        let manifest = ctx.load_manifest()?;
        let root = ctx
            .settings
            .manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let s = &ctx.settings;
        let release = match &s.env {
            Some(_) => {
                crate::ledger::store::release_base(ctx, ctx.settings.environment(&manifest)?)
            }
            None => None,
        };
        let affected = changes::detect_from(
            &manifest,
            &root,
            s.base.as_deref(),
            release.as_ref(),
            s.all,
            &s.only,
        )?;
        Ok(Loaded {
            manifest,
            root,
            affected,
        })
    }

    /// The working directory local commands get (`None`: the current directory already is the root).
    pub fn cmd_root(&self) -> Option<String> {
        (self.root != Path::new(".")).then(|| self.root.display().to_string())
    }

    /// The environment: required by `--env` when the manifest defines environments and `required`;
    /// otherwise the one named, if any.
    pub fn environment(&self, ctx: &Ctx, required: bool) -> Result<Option<&Environment>> {
        if ctx.settings.env.is_none() && (!required || self.manifest.environments.is_empty()) {
            return Ok(None);
        }
        ctx.settings.environment(&self.manifest).map(Some)
    }

    /// One line on how the units were chosen.
    pub fn describe(&self) -> String {
        let a = &self.affected;
        let total = self.manifest.units().len();
        let mut s = format!(
            "{} of {total} unit{} affected: {}",
            a.units.len(),
            if total == 1 { "" } else { "s" },
            a.reason.describe()
        );
        if matches!(a.reason, changes::Reason::Diff { .. }) {
            s.push_str(&format!(
                ", {} file{} changed",
                a.changed_files,
                if a.changed_files == 1 { "" } else { "s" }
            ));
        }
        for n in &a.notes {
            s.push_str(&format!("\n{n}"));
        }
        s
    }

    /// Units that are not affected, in manifest order.
    pub fn unaffected(&self) -> Vec<String> {
        self.manifest
            .units()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| !self.affected.contains(n))
            .collect()
    }

    /// The kind of a unit, as a word (`service`, `site`, `migrations`).
    pub fn kind(&self, unit: &str) -> &'static str {
        match self
            .manifest
            .units()
            .into_iter()
            .find(|(n, _)| *n == unit)
            .map(|(_, k)| k)
        {
            Some(crate::manifest::UnitKind::Service) => "service",
            Some(crate::manifest::UnitKind::Site) => "site",
            Some(crate::manifest::UnitKind::Migrations) => "migrations",
            None => "unit",
        }
    }
}
