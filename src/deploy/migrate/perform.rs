//! The migrate performer: the one place that turns a real run's steps into effects on the
//! database (through `db/`), the backup directory and the ledger. `engine::runner` walks the plan
//! and hands each step here; guards decide what is skipped (a migration after a failed one, one
//! another run applied while this one waited for the lock).
//!
//! A failed migration is not an error of the walk: it is recorded (the later migrations are then
//! skipped by their guard), the release step records the failure and the unlock step runs; the
//! run then exits 1. Any other error stops the walk, and [`run`] releases a lock still held.

use super::report::{self, Detail, Log, Walk, audit};
use super::{MigrateOutcome, Options, Seen, apply, backup, gate, inspect};
use crate::context::Ctx;
use crate::db::Database;
use crate::engine::runner::{self, Perform, Quiet, RunState};
use crate::env_vars;
use crate::error::{Error, GateFailure, Result};
use crate::ledger::publish;
use crate::manifest::Environment;
use crate::plan::migrate::{Direction, MigrationAction, Pending, work_ids};
use crate::plan::{Action, Step};
use std::collections::BTreeSet;

/// A real run of `steps` (planned from `pending`) against `db`.
pub struct Run<'a> {
    pub ctx: &'a Ctx,
    pub env: &'a Environment,
    pub opts: &'a Options,
    pub stage: &'a str,
    pub seen: &'a Seen,
    pub pending: &'a Pending<'a>,
    pub steps: &'a [Step],
}

/// Walks the steps on the real side, then reports. `released`: whether the release step ran (a
/// failure before it is recorded by the caller).
pub fn run(run: Run, db: &mut dyn Database, released: &mut bool) -> Result<MigrateOutcome> {
    let mut p = Performer {
        run: &run,
        db,
        hash: run.pending.hash(),
        under_lock: Vec::new(),
        locked: false,
        log: Log::default(),
    };
    let mut state = RunState::default();
    let (trace, walked) = runner::run(run.steps, &mut p, &mut Quiet, &mut state);
    *released = p.log.released;
    if let Err(e) = walked {
        if p.locked {
            let _ = p.db.unlock();
        }
        return Err(e);
    }
    report::finish(
        run.ctx,
        run.env,
        run.opts,
        run.stage,
        Walk {
            steps: run.steps,
            trace,
            hash: p.hash,
            log: p.log,
            done_elsewhere: state.done,
            direction: run.pending.direction,
        },
    )
}

/// Records, for a run that stopped with `e` before its release step, a failed GitHub deployment
/// (exit 1 only, as `ledger/publish.rs` decides), and gives the error back.
pub fn record_failure(ctx: &Ctx, env: &Environment, e: Error) -> Result<MigrateOutcome> {
    // `migrated` returns the error it is given.
    publish::migrated(ctx, env, Err(e)).map(|()| MigrateOutcome::default())
}

struct Performer<'r, 'a> {
    run: &'r Run<'a>,
    db: &'r mut dyn Database,
    hash: String,
    /// The versions recorded when the lock was taken.
    under_lock: Vec<u64>,
    locked: bool,
    log: Log,
}

impl Perform for Performer<'_, '_> {
    fn perform(&mut self, step: &Step, state: &mut RunState) -> Result<()> {
        match &step.action {
            Action::Approval { .. } | Action::Migration(MigrationAction::Rules { .. }) => {
                self.gate()
            }
            Action::Migration(MigrationAction::Lock { .. }) => self.lock(state),
            Action::Backup { .. } => self.backup(),
            Action::Migration(MigrationAction::Table) => {
                self.db.ensure_table().map_err(inspect::db_error)
            }
            Action::Migration(MigrationAction::Rebaseline { version, checksum }) => {
                self.rebaseline(*version, checksum)
            }
            Action::Migration(a @ MigrationAction::Apply { .. }) => {
                self.apply(a, step, state);
                Ok(())
            }
            Action::Migration(MigrationAction::Release { .. }) => self.release(),
            Action::Migration(MigrationAction::Unlock) => self.unlock(),
            _ => Err(Error::Bug(format!(
                "migrate cannot perform step {}: {}",
                step.id,
                step.describe()
            ))),
        }
    }
}

impl Performer<'_, '_> {
    /// The rules and the approval; an approval is checked against the files read again.
    fn gate(&mut self) -> Result<()> {
        let r = self.run;
        let text = r.pending.text();
        let approval = gate::admit(r.ctx, r.env, r.stage, r.opts, &text, &self.hash)?;
        if let Some(a) = &approval {
            gate::recheck(r.ctx, r.env, r.stage, r.opts, r.seen, a, &self.hash)?;
        }
        self.log.approval = approval;
        Ok(())
    }

    /// Takes the lock and plans again from the tracking table under it: what another run did
    /// meanwhile is skipped; anything else that changed stops the run (exit 3 when approved).
    fn lock(&mut self, state: &mut RunState) -> Result<()> {
        let r = self.run;
        self.db.lock(r.opts.lock_wait).map_err(inspect::lock_err)?;
        self.locked = true;
        let rows = self.db.applied().map_err(inspect::lock_err)?;
        self.log.version = rows.last().map(|r| r.version);
        self.under_lock = rows.iter().map(|r| r.version).collect();
        let now = r.seen.pending(&r.seen.files, &rows)?;
        let planned = work_ids(r.pending);
        let still = work_ids(&now);
        if now.is_empty() {
            self.log.nothing_left = true;
        } else if now.hash() != self.hash {
            if let Some(a) = &self.log.approval {
                let e = gate::plan_changed(&self.hash, &now.hash());
                let msg = e.to_string();
                let detail = Detail {
                    approval: Some(a),
                    message: Some(&msg),
                    ..Detail::default()
                };
                audit(r.ctx, r.opts, r.env, r.stage, "plan-changed", detail);
                return Err(e);
            }
            if let Some(new) = still.iter().find(|id| !planned.contains(id)) {
                return Err(GateFailure::new(format!(
                    "the tracking table changed while this run waited for the lock: {new} is to do now, and it was not \
planned; nothing was applied, run again"
                ))
                .unit(crate::manifest::MIGRATIONS_UNIT)
                .into());
            }
        }
        let still: BTreeSet<&String> = still.iter().collect();
        state
            .done
            .extend(planned.iter().filter(|id| !still.contains(id)).cloned());
        Ok(())
    }

    fn backup(&mut self) -> Result<()> {
        let r = self.run;
        let (path, how) =
            backup::write(r.opts, r.env, self.db, self.log.version).inspect_err(|e| {
                let msg = e.to_string();
                let detail = Detail {
                    approval: self.log.approval.as_ref(),
                    message: Some(&msg),
                    ..Detail::default()
                };
                audit(r.ctx, r.opts, r.env, r.stage, "backup-failed", detail);
            })?;
        r.ctx.report.info(&format!(
            "backup written and verified ({how}): {}",
            path.display()
        ));
        r.ctx
            .report
            .output("backup-path", &path.display().to_string());
        self.log.backup = Some(path);
        Ok(())
    }

    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<()> {
        self.db
            .rebaseline(version, checksum)
            .map_err(inspect::db_error)?;
        self.run.ctx.report.warn(&format!(
            "version {version}: recorded checksum re-baselined to {checksum} (--accept-changed)"
        ));
        self.log.rows.push([
            version.to_string(),
            String::new(),
            String::new(),
            "re-baselined".into(),
        ]);
        Ok(())
    }

    /// Runs one file with its row. A failure is recorded in the log and in `state` (the later
    /// migrations' guards skip them), not returned.
    fn apply(&mut self, action: &MigrationAction, step: &Step, state: &mut RunState) {
        let (
            MigrationAction::Apply {
                direction,
                version,
                name,
                ..
            },
            Some(file),
            Some(book),
        ) = (
            action,
            action.sql_file(),
            apply::bookkeeping(
                action,
                env_vars::actor(),
                env_vars::get(env_vars::GITHUB_SHA),
            ),
        )
        else {
            return;
        };
        self.run
            .ctx
            .report
            .info(&apply::announce(*direction, &file));
        let v = version.to_string();
        match self.db.run(&file, &book) {
            Ok(ms) => {
                self.log
                    .rows
                    .push([v, name.clone(), format!("{ms} ms"), "ok".into()]);
                self.log.done.push(*version);
                self.log.version =
                    apply::version_after(*direction, self.log.version, *version, &self.under_lock);
            }
            Err(e) => {
                self.log
                    .rows
                    .push([v, name.clone(), String::new(), "failed".into()]);
                let dir = self.run.seen.dir.display().to_string();
                let mut failure = apply::failure(&dir, &file, &e);
                failure.origin = step.origin;
                self.log.failure = Some(failure);
                state.failed = true;
            }
        }
    }

    /// The release: what changed (nothing: no release), or the failure as a failed deployment.
    fn release(&mut self) -> Result<()> {
        let r = self.run;
        self.log.released = true;
        let result = match &self.log.failure {
            Some(f) => Err(f.clone().into()),
            None => {
                let done = self.log.done.clone();
                let (applied, reverted) = match r.pending.direction {
                    Direction::Up => (done, Vec::new()),
                    Direction::Down => (Vec::new(), done),
                };
                Ok(publish::Migrated {
                    applied,
                    reverted,
                    version: self.log.version,
                })
            }
        };
        let recorded = publish::migrated(r.ctx, r.env, result);
        // A failed migration comes back as the error it was given: the run reports it at the end.
        match self.log.failure {
            Some(_) => Ok(()),
            None => recorded,
        }
    }

    fn unlock(&mut self) -> Result<()> {
        self.locked = false;
        match self.db.unlock() {
            Ok(()) => Ok(()),
            // The failed migration is what the run reports.
            Err(e) if self.log.failure.is_some() => {
                self.run
                    .ctx
                    .report
                    .warn(&format!("releasing the migration lock: {e}"));
                Ok(())
            }
            Err(e) => Err(inspect::db_failure("releasing the migration lock", &e).into()),
        }
    }
}
