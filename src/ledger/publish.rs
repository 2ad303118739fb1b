//! The release ledger around the commands that change an environment without the `up` runner:
//! `pages` and `migrate`. Each real run on an environment becomes a GitHub deployment
//! (`in_progress` → `success` | `failure`, in Actions) and, when it changed something, a release
//! record on the environment's hosts (or its tag, for an environment without hosts) that carries
//! the environment's whole state forward.
//!
//! Stays out of deploying: the caller hands over what changed (the steps of `deploy/pages` the
//! sites' deployments, `commands/migrate.rs` the versions); the records are `store.rs`' business, the
//! GitHub deployments `record.rs`'.

use super::identity::{git_sha, lock_owner};
use super::record::{Deployment, Outcome};
use super::store;
use crate::context::Ctx;
use crate::error::Result;
use crate::manifest::Environment;
use crate::state::{PagesState, ReleaseRecord};

/// A `pages` run's release on an environment: its GitHub deployment (task `deploy:pages`), set in
/// progress when the run starts changing the environment ([`PagesRelease::start`]), then either a
/// failure ([`PagesRelease::failed`]) or a release carrying the sites' deployments and the
/// admission's notes ([`PagesRelease::record`]). The steps of `deploy/pages` call these.
pub struct PagesRelease {
    env: Environment,
    sha: String,
    deployment: Deployment,
}

impl PagesRelease {
    /// The GitHub deployment of `env` in progress (in Actions; nothing elsewhere or in a dry run).
    pub fn start(ctx: &Ctx, env: &Environment) -> PagesRelease {
        let sha = git_sha(&store::repo_root(ctx));
        let deployment = Deployment::start(ctx, env, &sha, "deploy:pages");
        PagesRelease {
            env: env.clone(),
            sha,
            deployment,
        }
    }

    /// The run failed: its GitHub deployment says so; no release.
    pub fn failed(self, ctx: &Ctx) {
        self.deployment
            .finish(ctx, &self.env, Outcome::Failed, None);
    }

    /// Records the release of what the run deployed (`results`, per site) with `notes`, then
    /// finishes the GitHub deployment. A ledger that cannot be written is a warning.
    pub fn record(
        self,
        ctx: &Ctx,
        results: &[(String, PagesState)],
        notes: &[String],
    ) -> Result<()> {
        let units: Vec<String> = results.iter().map(|(s, _)| s.clone()).collect();
        let record = store::append(
            ctx,
            &self.env,
            &lock_owner("pages", &self.sha),
            "pages",
            &units,
            &|r: &mut ReleaseRecord| {
                r.pages.extend(results.iter().cloned());
                r.notes.extend(notes.iter().cloned());
            },
        );
        let url = results.first().map(|(_, p)| p.url.clone());
        finish(ctx, &self.env, self.deployment, record, url.as_deref())
    }
}

/// What a `migrate` changed, for its release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The versions applied, in order.
    pub applied: Vec<u64>,
    /// The versions reverted (`down`), newest first.
    pub reverted: Vec<u64>,
    /// The database's version afterwards.
    pub version: Option<u64>,
}

/// Records a `migrate` (or `migrate down`) that changed the database: a release carrying the new
/// migration version, and a GitHub deployment (task `deploy:migrations`). A run that failed with
/// exit 1 is reported as a failed GitHub deployment; one that changed nothing records nothing.
pub fn migrated(ctx: &Ctx, env: &Environment, result: Result<Migrated>) -> Result<()> {
    if ctx.settings.dry_run {
        return result.map(|_| ());
    }
    let sha = git_sha(&store::repo_root(ctx));
    let outcome = match result {
        Ok(o) if o.applied.is_empty() && o.reverted.is_empty() => return Ok(()),
        Ok(o) => o,
        Err(e) => {
            if e.exit() == crate::exit::Exit::StageFailed {
                Deployment::start(ctx, env, &sha, "deploy:migrations").finish(
                    ctx,
                    env,
                    Outcome::Failed,
                    None,
                );
            }
            return Err(e);
        }
    };
    let deployment = Deployment::start(ctx, env, &sha, "deploy:migrations");
    let version = outcome.version.map(|v| v.to_string());
    let mut notes = Vec::new();
    if !outcome.applied.is_empty() {
        notes.push(format!("applied migrations {}", list(&outcome.applied)));
    }
    if !outcome.reverted.is_empty() {
        notes.push(format!("reverted migrations {}", list(&outcome.reverted)));
    }
    let record = store::append(
        ctx,
        env,
        &lock_owner("migrate", &sha),
        "migrate",
        &[crate::manifest::MIGRATIONS_UNIT.to_string()],
        &|r: &mut ReleaseRecord| {
            r.migration_version = version.clone();
            r.notes.extend(notes.iter().cloned());
        },
    );
    finish(ctx, env, deployment, record, None)
}

fn list(versions: &[u64]) -> String {
    versions
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The environment whose ledger a real run records, when `--env` names one.
pub fn recorded_env(ctx: &Ctx) -> Result<Option<Environment>> {
    if ctx.settings.dry_run || ctx.settings.env.is_none() {
        return Ok(None);
    }
    let m = ctx.load_manifest()?;
    Ok(Some(ctx.settings.environment(&m)?.clone()))
}

/// Reports the new release and finishes the GitHub deployment. A deploy that happened is not
/// undone by a ledger that could not be written: that is a warning, and the deployment still
/// succeeds.
fn finish(
    ctx: &Ctx,
    env: &Environment,
    deployment: Deployment,
    record: Result<ReleaseRecord>,
    url: Option<&str>,
) -> Result<()> {
    match record {
        Ok(r) => {
            ctx.report
                .info(&format!("{}: release {}", env.name, r.number));
            ctx.report.output("release", &r.number.to_string());
            if env.hosts.is_empty() && !ctx.settings.tag && !crate::env_vars::in_github_actions() {
                ctx.report.warn(&format!(
                    "environment `{}` has no hosts: its releases live only in the tags deploy/{}/<n>; pass --tag to make them here",
                    env.name, env.name
                ));
            }
            deployment.finish(ctx, env, Outcome::Release(&r), url);
        }
        Err(e) => {
            ctx.report.warn(&format!(
                "the release record of {} was not written: {e}",
                env.name
            ));
            deployment.finish(ctx, env, Outcome::Done, url);
        }
    }
    Ok(())
}
