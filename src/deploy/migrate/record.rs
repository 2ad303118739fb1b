//! `migrate --dry-run`: the same plan walked by the same runner, on the recording side. Every step
//! is recorded and printed in order, the guarded ones with their condition; only the gate runs (it
//! reads: the deploy rules are checked as warnings and the hash a real run needs approved is
//! printed; see `guard::admit`), and each migration's SQL is printed. Nothing is written: no lock,
//! no backup, no tracking table, and on SQLite no database file.

use super::report::{dry_run_header, dry_run_json, version_text};
use super::{MigrateOutcome, Options, Seen, gate};
use crate::context::Ctx;
use crate::engine::runner::{self, Observe, Perform, RunState};
use crate::error::Result;
use crate::manifest::Environment;
use crate::plan::migrate::{MigrationAction, Pending, file_text};
use crate::plan::{Action, Step};
use crate::report::Report;

/// A dry run of `steps` (planned from `pending`).
pub fn dry_run(
    ctx: &Ctx,
    env: &Environment,
    opts: &Options,
    stage: &str,
    seen: &Seen,
    pending: &Pending,
    steps: &[Step],
) -> Result<MigrateOutcome> {
    let report = &ctx.report;
    let hash = pending.hash();
    report.info(&dry_run_header(pending, opts.target, &hash));
    if !steps.is_empty() {
        report.info(&format!(
            "the steps a real run takes, in order ({}):",
            steps.len()
        ));
    }
    let mut recorder = Recorder {
        ctx,
        env,
        opts,
        stage,
        pending,
        hash: &hash,
    };
    let mut state = RunState {
        dry_run: true,
        ..RunState::default()
    };
    let (trace, walked) = runner::run(steps, &mut recorder, &mut Lines(report), &mut state);
    walked?;
    if report.json() && opts.document {
        report.json_document(&dry_run_json(env, opts.target, pending, &hash, &trace));
    }
    let current = seen.applied.last().map(|r| r.version);
    report.output("plan-hash", &hash);
    report.output("migration-version", &version_text(current));
    Ok(MigrateOutcome {
        version: current,
        plan_hash: Some(hash),
        trace,
        ..MigrateOutcome::default()
    })
}

/// Records instead of performing: the gate is asked (read-only in a dry run), a migration's SQL is
/// printed, the rest is the step's line.
struct Recorder<'a> {
    ctx: &'a Ctx,
    env: &'a Environment,
    opts: &'a Options,
    stage: &'a str,
    pending: &'a Pending<'a>,
    hash: &'a str,
}

impl Perform for Recorder<'_> {
    fn perform(&mut self, step: &Step, _: &mut RunState) -> Result<()> {
        match &step.action {
            Action::Approval { .. } | Action::Migration(MigrationAction::Rules { .. }) => {
                let text = self.pending.text();
                gate::admit(self.ctx, self.env, self.stage, self.opts, &text, self.hash).map(|_| ())
            }
            Action::Migration(a @ MigrationAction::Apply { .. }) => {
                if let Some(f) = a.sql_file() {
                    self.ctx.report.info(&file_text(&f));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Prints each step as the runner reaches it: `  - <what it does> (<condition>)`.
struct Lines<'a>(&'a Report);

impl Observe for Lines<'_> {
    fn starting(&mut self, step: &Step, condition: Option<&str>) {
        self.0.info(&line(step, condition));
    }
    fn done(&mut self, _: &Step) {}
}

/// A step as a dry run prints it.
fn line(step: &Step, condition: Option<&str>) -> String {
    match condition {
        Some(c) => format!("  - {} ({c})", step.describe()),
        None => format!("  - {}", step.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Guard, Target};

    #[test]
    fn a_guarded_step_is_printed_with_its_condition() {
        let step = Step {
            id: "migrate:migrations:table".into(),
            stage: "migrate".into(),
            unit: None,
            target: Target::Local,
            action: Action::Migration(MigrationAction::Table),
            why: String::new(),
            guard: Guard::Outstanding {
                steps: vec!["x".into(), "y".into()],
            },
            origin: None,
        };
        let cond = step.guard.describe();
        assert_eq!(
            line(&step, cond.as_deref()),
            "  - create the tracking table deploy_action_migrations if it does not exist (unless another run did all of it while this one waited for the lock)"
        );
        assert_eq!(
            line(&step, None),
            "  - create the tracking table deploy_action_migrations if it does not exist"
        );
    }
}
