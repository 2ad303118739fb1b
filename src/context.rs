//! The run's context: what every command gets — the resolved settings, the reporter, and the
//! approvals this run obtained — and the one way to load the manifest (which registers its secrets
//! with the reporter before anything can print them), and [`inside_repo`], how a path the manifest
//! names is resolved under the repository.
//!
//! Stays out of deciding anything: commands, `ledger/` and `guard/` read it; it imports no layer
//! above `report/`, `settings.rs` and `approval.rs`.

use crate::approval::Admission;
use crate::diag::Source;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::manifest::{self, Database, Manifest};
use crate::report::Report;
use crate::settings::Settings;
use std::path::{Path, PathBuf};

/// What every command gets: the resolved settings and the reporter, and the approvals this run
/// obtained (so that a command run by another asks no second time: see `guard`).
pub struct Ctx {
    pub settings: Settings,
    pub report: Report,
    admissions: std::sync::Mutex<Vec<Admission>>,
    /// The manifest this run loaded: runtime errors point into it.
    source: std::sync::OnceLock<Source>,
}

impl Ctx {
    pub fn new(settings: Settings, report: Report) -> Ctx {
        Ctx {
            settings,
            report,
            admissions: std::sync::Mutex::new(Vec::new()),
            source: std::sync::OnceLock::new(),
        }
    }

    /// The text of the manifest this run loaded, if it loaded one: what a runtime error's
    /// origin points into.
    pub fn manifest_source(&self) -> Option<&Source> {
        self.source.get()
    }

    /// Reports `err` as it is rendered in one place ([`Error::render`]): with the excerpt of its
    /// `deploy.yml` entry and, in GitHub Actions, an annotation at that line.
    pub fn report_error(&self, err: &Error) {
        report_error(&self.report, err, self.manifest_source());
    }

    /// Remembers an approval obtained by this run.
    pub fn remember(&self, a: Admission) {
        self.admissions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(a);
    }

    /// The approvals obtained so far by this run.
    pub fn admissions(&self) -> Vec<Admission> {
        self.admissions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads and validates the manifest (`--manifest`, else `deploy.yml`), then registers its
    /// secrets before any command can print or relay anything: the password of every
    /// environment's `database.url_env` URL that is set and the value of every `secrets:` variable,
    /// whichever environment and stage runs
    /// (`exec -- sh -c 'echo $STAGING_DATABASE_URL'` must not show it either). The one way commands
    /// load the manifest.
    pub fn load_manifest(&self) -> Result<Manifest> {
        let m = manifest::load_file(&self.settings.manifest_path)?;
        let _ = self.source.set(m.source.clone());
        for env in m.environments.values() {
            if let Some(Database::UrlEnv { var, .. }) = &env.database
                && let Some(url) = env_vars::get(var)
            {
                self.report.add_url_password(&url);
            }
        }
        // `secrets:` values, whichever environment and stage runs.
        for var in m.secret_vars() {
            if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty())
                && !m.environments.values().any(
                    |e| matches!(&e.database, Some(Database::UrlEnv { var: v, .. }) if v == var),
                )
            {
                self.report.add_secret(&value);
            }
        }
        Ok(m)
    }
}

/// Reports `err` to `report`, its origin shown from `source` (see [`Ctx::report_error`]; before
/// a context exists, `source` is `None`).
pub fn report_error(report: &Report, err: &Error, source: Option<&Source>) {
    let loc = err.location(source);
    report.error(
        &err.render(source, report.color()),
        loc.as_ref().map(|(f, l, c)| (f.as_str(), *l, *c)),
    );
}

/// `rel` (a path the manifest names: a site's `dir`, `migrations.dir`, a compose file) resolved
/// under the repository `root`, refusing (exit 2) one that leads outside it through a symlink; the
/// manifest already refused absolute paths and `..` escapes. A path that does not exist is
/// returned as is (the command says what is missing).
pub fn inside_repo(root: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let joined = root.join(rel);
    let (Ok(real), Ok(top)) = (std::fs::canonicalize(&joined), std::fs::canonicalize(root)) else {
        return Ok(joined);
    };
    if real.starts_with(&top) {
        Ok(joined)
    } else {
        Err(Error::usage_help(
            format!(
                "{what} `{rel}` leads outside the repository (to {}) through a symlink",
                real.display()
            ),
            "paths in deploy.yml name files of the repository; copy what it needs into it",
        ))
    }
}
