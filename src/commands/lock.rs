//! `deploy-action lock status|release --env E`: who holds the environment lock on each host —
//! the run, the heartbeat's age, whether it looks stale — and, for `release`, removing it where
//! its owner is still the one shown (a run that took the lock in between keeps it: exit 4).
//!
//! Glue only: the lock itself is `ledger/lock.rs`'.

use crate::context::Ctx;
use crate::error::{Error, RecordFailure, Result};
use crate::exec;
use crate::ledger::identity::lock_owner;
use crate::ledger::lock::{self, Released, Shown};
use crate::ledger::store;
use crate::manifest::Host;
use crate::settings::LockAction;
use crate::state::{AuditEntry, StatePaths};
use std::io::IsTerminal;

pub fn run(action: LockAction, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    let paths = StatePaths::new(&env.dir);
    let mut held: Vec<(Host, Shown)> = Vec::new();
    for host in &env.hosts {
        let mut ex = exec::connect(host, &|w: &str| report.warn(w))?;
        match lock::status(ex.as_mut(), &paths)? {
            Some(shown) => {
                report.info(&format!(
                    "{}: {} lock {}",
                    host.label(),
                    env.name,
                    lock::describe(&shown.owner)
                ));
                held.push((host.clone(), shown));
            }
            None => report.info(&format!("{}: {} lock is free", host.label(), env.name)),
        }
    }
    if action == LockAction::Status || held.is_empty() {
        return Ok(());
    }
    if ctx.settings.dry_run {
        report.info(&format!(
            "would remove {} on {} where its owner is still the one shown",
            paths.lock_dir(),
            held.iter()
                .map(|(h, _)| h.label())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(());
    }
    confirm(ctx)?;
    let mut changed = Vec::new();
    for (host, shown) in &held {
        let mut ex = exec::connect(host, &|w: &str| report.warn(w))?;
        match lock::release_shown(ex.as_mut(), &paths, shown)? {
            Released::Released => {
                let by = lock_owner("lock release", "-");
                let entry = AuditEntry {
                    time: crate::clock::now_rfc3339(),
                    actor: by.actor.clone(),
                    run_url: by.run_url.clone(),
                    action: "lock.release".into(),
                    env: env.name.clone(),
                    result: "released".into(),
                    detail: Some(format!(
                        "the lock of {} ({}, {})",
                        shown.owner.actor, shown.owner.command, shown.owner.run_url
                    )),
                    ..Default::default()
                };
                store::audit(ex.as_mut(), report, &env.dir, &entry);
                report.info(&format!("{}: {} lock released", host.label(), env.name));
            }
            Released::Gone => report.info(&format!(
                "{}: {} lock is free already",
                host.label(),
                env.name
            )),
            Released::Changed(now) => changed.push(format!(
                "{}: the {} lock changed hands after it was shown: it is now {}; left in place",
                host.label(),
                env.name,
                lock::describe(&now)
            )),
            Released::Failed(stderr) => {
                let what = format!("remove the {} lock", env.name);
                return Err(RecordFailure::new(host.label(), what, paths.lock_dir())
                    .stderr(stderr)
                    .into());
            }
        }
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(Error::LockHeld(changed.join("\n")))
    }
}

/// `--yes`, or a `y` typed on the terminal.
fn confirm(ctx: &Ctx) -> Result<()> {
    if ctx.settings.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage_help(
            "releasing a lock another run may still hold needs a confirmation",
            "pass --yes to confirm without a terminal",
        ));
    }
    ctx.report
        .info("Release the lock? A deploy still running would lose its protection. [y/N]");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::usage("cancelled: the lock was left in place"))
    }
}
