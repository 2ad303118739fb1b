//! The guard in front of every change to an environment. Every command that changes one (`up`,
//! `pages --env`, `migrate`, `promote`, `rollback`, and any stage added later) calls [`admit`]
//! once, before anything changes:
//!
//! 1. the deploy rules: the run's ref must match the environment's `branches:`, and the working
//!    tree must have no uncommitted changes to tracked files unless `--allow-dirty` (which an
//!    environment with `approval: required` refuses) — exit 2;
//! 2. on `approval: required`, one approval for the whole run, bound to the hash of its
//!    [`ChangePlan`] — exit 3 without one. `--yes` is not an input here.
//!
//! Just before the first change the command builds its plan again and [`Admission::confirm`]
//! refuses (exit 3) a plan that differs from the approved one. A command that runs another
//! (`promote` runs `migrate`) puts the inner plan's hash in its own plan ([`ChangePlan::covering`]);
//! the inner command finds the approval with [`admitted`] and asks no second time.

pub mod rules;

use crate::approval::{self, Gate, PlanToApprove, Policy};
// The plan an approval is bound to and the admission a run gets live with the approval gate
// (`approval.rs`), below the run's context, which remembers admissions.
pub use crate::approval::{Admission, ChangePlan, plan_changed};
use crate::context::Ctx;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::exec::local::LocalExecutor;
use crate::manifest::{Approval as ApprovalPolicy, Environment};
use std::path::Path;
use std::time::Duration;

/// The gate's policy for `env`: its `min_approvals`, `allow_self_approval` and the run's actor.
pub fn policy(env: &Environment) -> Policy {
    Policy {
        min_approvals: env.min_approvals,
        allow_self_approval: env.allow_self_approval,
        actor: env_vars::actor(),
    }
}

/// Checks the deploy rules of `env` for `command` run from the repository at `root`: the ref
/// against `branches:`, the working tree against `--allow-dirty`. Exit 2 on the first broken rule;
/// in a dry run each is a warning that says the real run would stop. Returns whether a dirty tree
/// was let through.
pub fn check_rules(ctx: &Ctx, env: &Environment, command: &str, root: &Path) -> Result<bool> {
    let mut broken: Vec<Error> = Vec::new();
    if !env.branches.is_empty() {
        let r = rules::current_ref(&mut LocalExecutor, root);
        if !rules::allowed(&env.branches, &r) {
            broken.push(Error::usage_help(
                format!(
                    "`{command}` may not change environment `{}` from {}; nothing was changed",
                    env.name,
                    r.describe()
                ),
                format!(
                    "`{}` may be changed from: {} (`branches:` in deploy.yml)",
                    env.name,
                    env.branches.join(", ")
                ),
            ));
        }
    }
    let mut dirty = false;
    let files = rules::dirty_files(&mut LocalExecutor, root).unwrap_or_default();
    if ctx.settings.allow_dirty && env.approval == ApprovalPolicy::Required {
        broken.push(Error::usage_help(
            format!(
                "--allow-dirty is refused on environment `{}`, which requires an approval: what is approved and \
deployed there must be a commit; nothing was changed",
                env.name
            ),
            "commit or stash the changes, then run again without --allow-dirty",
        ));
    } else if !files.is_empty() {
        if ctx.settings.allow_dirty {
            dirty = true;
            ctx.report.warn(&format!(
                "deploying with uncommitted changes to {} ({}) because of --allow-dirty",
                files.len(),
                shown(&files)
            ));
        } else {
            broken.push(Error::usage_help(
                format!(
                    "the working tree has uncommitted changes to tracked files ({}); `{command}` deploys commits, \
nothing was changed",
                    shown(&files)
                ),
                "commit or stash them, or pass --allow-dirty (refused where `approval: required`)",
            ));
        }
    }
    if ctx.settings.dry_run {
        for e in &broken {
            ctx.report.warn(&format!(
                "a real run would stop here (exit 2): {}",
                e.render(None, false)
            ));
        }
        return Ok(dirty);
    }
    match broken.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(dirty),
    }
}

fn shown(files: &[String]) -> String {
    let mut s: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    if files.len() > 5 {
        s.push("…");
    }
    s.join(", ")
}

/// How long an approval may take in GitHub Actions (`--approval-timeout`, exit 2 when it does not
/// parse).
fn approval_timeout(ctx: &Ctx) -> Result<Duration> {
    let text = &ctx.settings.approval_timeout;
    if text.is_empty() {
        return Ok(Duration::from_secs(30 * 60));
    }
    crate::manifest::validate::parse_duration(text).ok_or_else(|| {
        Error::usage_help(
            format!("--approval-timeout: `{text}` is not a duration"),
            "write it like 30s, 10m or 1h",
        )
    })
}

/// Admits a run of `command` on `env` from the repository at `root`: the deploy rules, then (on
/// `approval: required`) one approval of the plan `plan` builds. `plan` is only called when an approval is needed. In a
/// dry run nothing is asked: the plan hash a real run would need approved is printed.
pub fn admit(
    ctx: &Ctx,
    env: &Environment,
    command: &str,
    root: &Path,
    plan: &dyn Fn() -> Result<ChangePlan>,
) -> Result<Admission> {
    let dirty = check_rules(ctx, env, command, root)?;
    approve(ctx, env, command, dirty, plan)
}

/// The approval half of [`admit`], for a command that checks the rules first and builds its plan
/// later (`up` checks them before building images). `dirty`: what [`check_rules`] returned.
pub fn approve(
    ctx: &Ctx,
    env: &Environment,
    command: &str,
    dirty: bool,
    plan: &dyn Fn() -> Result<ChangePlan>,
) -> Result<Admission> {
    let mut adm = Admission {
        env: env.name.clone(),
        command: command.to_string(),
        plan_hash: None,
        approval: None,
        covers: Vec::new(),
        dirty,
    };
    if env.approval != ApprovalPolicy::Required {
        return Ok(adm);
    }
    let timeout = approval_timeout(ctx)?;
    let p = plan()?;
    let hash = p.hash();
    adm.plan_hash = Some(hash.clone());
    adm.covers = p.covers.clone();
    if ctx.settings.dry_run {
        ctx.report.info(&format!(
            "approval: `{}` requires {} approval(s); a real run waits for them, bound to plan {hash}, before anything \
changes (--yes never skips it)",
            env.name,
            env.min_approvals.max(1)
        ));
        return Ok(adm);
    }
    let gate = Gate {
        approvers: env.approvers.clone(),
        timeout,
        policy: policy(env),
    };
    let approval = approval::obtain(
        &ctx.report,
        &gate,
        &PlanToApprove {
            env: &env.name,
            action: command,
            hash: &hash,
            text: &p.text,
        },
    )?;
    ctx.report.info(&format!(
        "approved by {} ({}) for plan {hash}",
        approval.approver, approval.method
    ));
    adm.approval = Some(approval);
    ctx.remember(adm.clone());
    Ok(adm)
}

/// An approval this run already obtained for `env` (an outer command's, e.g. promote's).
pub fn admitted(ctx: &Ctx, env: &str) -> Option<Admission> {
    ctx.admissions().into_iter().rev().find(|a| a.env == env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Approval;

    #[test]
    fn the_hash_binds_command_environment_text_and_inner_plans() {
        let a = ChangePlan::new("up", "production", "api: shop/api:1");
        assert_eq!(a.hash(), a.clone().hash());
        assert_ne!(
            a.hash(),
            ChangePlan::new("up", "staging", "api: shop/api:1").hash()
        );
        assert_ne!(
            a.hash(),
            ChangePlan::new("rollback", "production", "api: shop/api:1").hash()
        );
        assert_ne!(
            a.hash(),
            ChangePlan::new("up", "production", "api: shop/api:2").hash()
        );
        // Lengths are hashed: moving text between the fields changes the hash.
        assert_ne!(
            ChangePlan::new("up", "pro", "duction").hash(),
            ChangePlan::new("up", "production", "").hash()
        );
        assert_ne!(a.hash(), a.clone().covering("migrate", "abc").hash());
    }

    fn admission(approved: bool, hash: &str) -> Admission {
        Admission {
            env: "production".into(),
            command: "up".into(),
            plan_hash: Some(hash.into()),
            approval: approved.then(|| Approval {
                approver: "alice".into(),
                method: "github-issue".into(),
                plan_hash: hash.into(),
                reference: None,
            }),
            covers: vec![("migrate".into(), "m1".into())],
            dirty: false,
        }
    }

    #[test]
    fn confirm_refuses_a_changed_plan_with_exit_3() {
        let plan = ChangePlan::new("up", "production", "api: 1");
        let adm = admission(true, &plan.hash());
        assert!(adm.confirm(&plan).is_ok());
        let e = adm
            .confirm(&ChangePlan::new("up", "production", "api: 2"))
            .unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Approval);
        assert!(e.to_string().contains("changed after it was approved"));
        // Nothing was approved (no approval needed): nothing to confirm.
        assert!(
            admission(false, "x")
                .confirm(&ChangePlan::new("up", "production", "y"))
                .is_ok()
        );
        assert_eq!(adm.covered("migrate"), Some("m1"));
        assert_eq!(adm.covered("pages"), None);
        assert!(adm.notes()[0].starts_with("approved by alice (github-issue)"));
    }
}
