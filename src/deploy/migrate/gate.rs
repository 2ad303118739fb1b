//! The gate step of `migrate`: the deploy rules and, on a guarded environment, the approval of
//! exactly this SQL (the approval is bound to the plan's hash). Run by `promote`, the approval
//! promote obtained covers it when it names this plan's hash; another hash is exit 3. After an
//! approval the files are read again: a file edited while the approval was pending changes the
//! hash (exit 3, nothing created).
//!
//! In a dry run `guard::admit` asks nothing: it warns where a real run would stop and prints the
//! hash a real run needs approved.

use super::report::{Detail, audit};
use super::{Options, Seen};
use crate::approval::Approval;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::guard::{self, ChangePlan};
use crate::manifest::Environment;

/// Admits the run of the plan whose SQL is `text` and whose hash is `hash`; returns the approval,
/// if the environment needed one.
pub fn admit(
    ctx: &Ctx,
    env: &Environment,
    stage: &str,
    opts: &Options,
    text: &str,
    hash: &str,
) -> Result<Option<Approval>> {
    if let Some(outer) = guard::admitted(ctx, &env.name)
        && let Some(covered) = outer.covered("migrate")
    {
        if covered != hash {
            let e = plan_changed(covered, hash);
            let msg = e.to_string();
            let detail = Detail {
                approval: outer.approval.as_ref(),
                message: Some(&msg),
                ..Detail::default()
            };
            audit(ctx, opts, env, stage, "plan-changed", detail);
            return Err(e);
        }
        return Ok(outer.approval);
    }
    let plan = || Ok(ChangePlan::new(stage, &env.name, text).hashed_as(hash));
    match guard::admit(ctx, env, stage, &opts.root, &plan) {
        Ok(adm) => {
            if let Some(a) = &adm.approval {
                let detail = Detail {
                    approval: Some(a),
                    ..Detail::default()
                };
                audit(ctx, opts, env, stage, "approved", detail);
            }
            Ok(adm.approval)
        }
        Err(e) => {
            if !opts.dry_run {
                let msg = e.to_string();
                let detail = Detail {
                    message: Some(&msg),
                    ..Detail::default()
                };
                audit(ctx, opts, env, stage, "approval-refused", detail);
            }
            Err(e)
        }
    }
}

/// After an approval of `hash`: the files, read again, must still plan to it. A file edited while
/// the approval was pending is refused before the lock is taken, so nothing is created (under the
/// lock the tracking table is checked again).
pub fn recheck(
    ctx: &Ctx,
    env: &Environment,
    stage: &str,
    opts: &Options,
    seen: &Seen,
    approval: &Approval,
    hash: &str,
) -> Result<()> {
    let files = super::inspect::read_dir(&seen.dir)?;
    let now = seen.pending(&files, &seen.applied)?.hash();
    if now == hash {
        return Ok(());
    }
    let e = plan_changed(hash, &now);
    let msg = e.to_string();
    let detail = Detail {
        approval: Some(approval),
        message: Some(&msg),
        ..Detail::default()
    };
    audit(ctx, opts, env, stage, "plan-changed", detail);
    Err(e)
}

/// Exit 3: what would run now is not the plan that was approved.
pub fn plan_changed(approved: &str, now: &str) -> Error {
    Error::Approval(format!(
        "the plan changed after it was approved (approved {approved}, now {now}): the pending SQL or the \
database's migrations are not what was approved; nothing was applied, approve the new plan"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn a_changed_plan_is_exit_3_naming_both_hashes() {
        let e = plan_changed("aaa", "bbb");
        assert_eq!(e.exit(), Exit::Approval);
        let msg = e.to_string();
        assert!(
            msg.contains("approved aaa, now bbb") && msg.contains("nothing was applied"),
            "{msg}"
        );
    }
}
