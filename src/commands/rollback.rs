//! `deploy-action rollback --env E [--to N|TAG|SHA] [--only UNIT...]`: returns an environment to
//! an earlier release. Compose services go back to that release's images through the `up` runner
//! (lock, health gate, a new release record); Pages production goes back to that release's
//! deployment through Cloudflare's rollback endpoint; migrations are never rolled back
//! implicitly (the `migrate down` command is printed). The abandoned release is marked bad and the
//! pointer tag moves to the new release.
//!
//! The choices (which release, which units differ) are made in `deploy/release/choose_rollback.rs`
//! from the ledger (shared with `plan --rollback`); the run is a plan (`plan/release.rs`) that
//! `deploy/release/` walks, for real or (`--dry-run`) on the recording side; this file is the
//! glue.

use crate::context::Ctx;
use crate::deploy::release::choose_rollback::{Choice, choose, migration_hint, plan_input};
use crate::deploy::release::{Job, Rollback, Run};
use crate::error::Result;
use crate::guard;
use crate::ledger;
use crate::ledger::record::reason;
use crate::ledger::store;
use crate::manifest::Environment;
use crate::report::Summary;

pub fn run(to: Option<&str>, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    crate::changes::select_only(&m, &ctx.settings.only)?;
    let choice = choose(ctx, &m, &env, to)?;
    let Choice {
        loaded,
        target,
        abandoned,
        services,
        images,
        digests,
        sites,
        ..
    } = &choice;
    let releases = &loaded.releases;

    report.stage_start("rollback", Some(&env.name));
    report.info(&format!(
        "rolling {} back from release {} to release {} ({})",
        env.name,
        abandoned
            .as_ref()
            .map_or_else(|| "none".into(), |r| r.number.to_string()),
        target.number,
        ledger::short_sha(&target.sha)
    ));
    let migration_hint = show_plan(ctx, &env, &choice);
    let adm = guard::admit(ctx, &env, "rollback", &store::repo_root(ctx), &|| {
        Ok(choice.plan(&env.name))
    })?;
    let notes = {
        let mut n = vec![format!(
            "rollback to release {}{}",
            target.number,
            abandoned
                .as_ref()
                .map(|a| format!(" from release {}", a.number))
                .unwrap_or_default()
        )];
        n.extend(reason().map(|r| format!("reason: {r}")));
        n.extend(adm.notes());
        n
    };
    let steps = crate::plan::release::steps(&plan_input(&m, &env, &choice));
    let job = Rollback {
        releases,
        target,
        abandoned: abandoned.as_ref(),
        services,
        images,
        digests,
        sites,
        hint: migration_hint,
    };
    // What was approved must still be what runs: the ledger read again, under the lock.
    let recheck = || Ok(choose(ctx, &m, &env, to)?.plan(&env.name));
    let run = Run {
        ctx,
        manifest: &m,
        env: &env,
        sha: &target.sha,
        admission: &adm,
        recheck: &recheck,
        notes,
        job: Job::Rollback(job),
    };
    crate::deploy::release::run(run, &steps)
}

/// The plan table; returns the `migrate down` hint when the database is elsewhere.
fn show_plan(ctx: &Ctx, env: &Environment, choice: &Choice) -> Option<String> {
    let mut plan = Summary::new(
        format!(
            "Rollback of {} to release {}",
            env.name, choice.target.number
        ),
        &["unit", "kind", "from", "to"],
    );
    for c in &choice.changes {
        plan.row([c.unit.clone(), c.kind.into(), c.from.clone(), c.to.clone()]);
    }
    if choice.changes.is_empty() {
        plan.note(format!(
            "release {} runs the same images and Pages deployments as the current release",
            choice.target.number
        ));
    }
    let hint = migration_hint(env, &choice.then, &choice.now, &ctx.settings.only);
    if let Some(h) = &hint {
        plan.note(h);
    }
    ctx.report.summary(&plan);
    hint
}
