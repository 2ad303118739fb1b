//! The release ledger around the commands that change an environment without the `up` runner:
//! `pages` and `migrate`. Each real run on an environment becomes a GitHub deployment
//! (`in_progress` → `success` | `failure`, in Actions) and, when it changed something, a release
//! record on the environment's hosts (or its tag, for an environment without hosts) that carries
//! the environment's whole state forward.
//!
//! Glue only: the records are `ledger/`'s business, the deploys `pages.rs`' and `migrate.rs`'.

use crate::cli::PagesArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::ledger::identity::{git_sha, lock_owner};
use crate::ledger::record::{Deployment, Outcome};
use crate::ledger::store;
use crate::manifest::Environment;
use crate::state::ReleaseRecord;

/// `deploy-action pages`, recorded as a release of `--env` when it deployed something. The guard
/// (rules, approval) runs inside [`super::pages::prepare`], before the GitHub deployment starts.
pub fn pages(args: &PagesArgs, ctx: &Ctx) -> Result<()> {
    let Some(prepared) = super::pages::prepare(args, ctx)? else {
        return Ok(());
    };
    let make_client = || super::pages::client(ctx);
    let Some(env) = recorded_env(ctx)? else {
        return super::pages::deploy_prepared(args, ctx, &prepared, &make_client).map(|_| ());
    };
    let sha = git_sha(&store::repo_root(ctx));
    let deployment = Deployment::start(ctx, &env, &sha, "deploy:pages");
    let results = match super::pages::deploy_prepared(args, ctx, &prepared, &make_client) {
        Ok(r) => r,
        Err(e) => {
            deployment.finish(ctx, &env, Outcome::Failed, None);
            return Err(e);
        }
    };
    let units: Vec<String> = results.iter().map(|(s, _)| s.clone()).collect();
    let notes = prepared
        .admission
        .as_ref()
        .map(|a| a.notes())
        .unwrap_or_default();
    let record = store::append(
        ctx,
        &env,
        &lock_owner("pages", &sha),
        "pages",
        &units,
        &|r: &mut ReleaseRecord| {
            r.pages.extend(results.iter().cloned());
            r.notes.extend(notes.iter().cloned());
        },
    );
    let url = results.first().map(|(_, p)| p.url.clone());
    finish(ctx, &env, deployment, record, url.as_deref())
}

/// Records a `migrate` (or `migrate down`) that changed the database: a release carrying the new
/// migration version, and a GitHub deployment (task `deploy:migrations`). A run that failed with
/// exit 1 is reported as a failed GitHub deployment; one that changed nothing records nothing.
pub fn migrated(
    ctx: &Ctx,
    env: &Environment,
    result: Result<super::migrate::MigrateOutcome>,
) -> Result<()> {
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
fn recorded_env(ctx: &Ctx) -> Result<Option<Environment>> {
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
