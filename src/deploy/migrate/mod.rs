//! Running migrations (what `migrate`, `migrate status` and `migrate down --to V` run) as a plan.
//!
//! ```text
//! inspect (read-only, a dry run too)  →  plan (pure: plan/migrate.rs)  →  engine::runner
//!   the files, the tracking table          gate, lock, backup, table,        perform.rs (real)
//!                                          re-baselines, one step per file,  record.rs (--dry-run)
//!                                          release, unlock                   →  report.rs
//! ```
//!
//! The files and the tracking table are read first; changed files, a bad `--target` and
//! transaction control inside a transactional file are refused before anything runs. The pure
//! planner turns what is pending into the run's steps; a real run walks them with the migrate
//! performer, `--dry-run` walks the same steps on the recording side (it never takes the lock,
//! writes a backup, creates the tracking table nor, on SQLite, the database file). Both print
//! the plan hash; with `--json` both carry the steps walked (`steps`: id, walked, describe), the
//! same ids in the same order.
//!
//! Policies, one file each: `inspect.rs` (files, connection), `gate.rs` (the approval of exactly
//! this SQL), `backup.rs` (verified, private, pruned), `apply.rs` (one file with its row),
//! `perform.rs` / `record.rs` (the two sides of the walk), `report.rs` (table, outputs, `--json`,
//! audit, `status`).
//!
//! [`run_with`] is the entry for the commands (`migrate`, promote): it takes resolved [`Options`]
//! (with `target` for "up to this version") and returns a [`MigrateOutcome`]. With
//! `Options::record` (the `migrate` command) a run that changed the database is recorded as a
//! release through `ledger/publish.rs` by its release step; promote records its own. Stays out of
//! the command line (`commands/migrate.rs`).

mod apply;
mod backup;
mod gate;
mod inspect;
mod perform;
mod record;
mod report;

pub use backup::{is_backup_of, private_dir, prune_backups};
pub use inspect::read_dir;

use crate::approval::Approval;
use crate::context::Ctx;
use crate::engine::runner::Trace;
use crate::error::Result;
use crate::manifest::{Environment, Migrations};
use crate::migrate::{AppliedRow, Migration};
use crate::plan::migrate::{self as planner, Goal, Pending, Request};
use std::path::PathBuf;
use std::time::Duration;

/// Backups kept per environment unless `--keep-backups` says otherwise.
pub const KEEP_BACKUPS: usize = 10;

/// Which of the three commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    Status,
    Down { to: u64 },
}

/// What `migrate` was asked to do, resolved from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub dry_run: bool,
    pub accept_changed: Vec<u64>,
    pub lock_wait: Duration,
    pub backup_dir: Option<PathBuf>,
    /// Backups kept per environment (at least 1).
    pub keep_backups: usize,
    /// Up only: apply the pending migrations up to and including this version, then stop. It must
    /// be the version of a migration file (else exit 2).
    pub target: Option<u64>,
    /// Where paths in the manifest (migrations.dir, sqlite://path) are relative to.
    pub root: PathBuf,
    /// Where `.deploy-action/` (backups, audit) goes: the working directory.
    pub workdir: PathBuf,
    /// Record a run that changed the database as a release of the environment (its release step,
    /// through `ledger/publish.rs`), and a run that failed with exit 1 as a failed deployment: the
    /// `migrate` command. Off for callers that record their own release (promote).
    pub record: bool,
    /// Print the `--json` document (the `migrate` command). Off for a caller that prints its own
    /// with the migration's steps in it (promote).
    pub document: bool,
}

impl Options {
    /// An up migration with the command line's defaults (lock wait 60s, approval timeout 30m,
    /// 10 backups kept), paths relative to `root`, `.deploy-action/` under `workdir`, no release
    /// record, no `--json` document.
    pub fn new(root: impl Into<PathBuf>, workdir: impl Into<PathBuf>) -> Options {
        Options {
            mode: Mode::Up,
            dry_run: false,
            accept_changed: Vec::new(),
            lock_wait: Duration::from_secs(60),
            backup_dir: None,
            keep_backups: KEEP_BACKUPS,
            target: None,
            root: root.into(),
            workdir: workdir.into(),
            record: false,
            document: false,
        }
    }

    /// What the run works toward (`status` reads like `up`).
    fn goal(&self) -> Goal {
        match self.mode {
            Mode::Down { to } => Goal::Down { to },
            Mode::Up | Mode::Status => Goal::Up {
                target: self.target,
            },
        }
    }

    /// The stage's name in titles, the audit log and the approval.
    fn stage(&self) -> &'static str {
        match self.mode {
            Mode::Up => "migrate",
            Mode::Status => "migrate status",
            Mode::Down { .. } => "migrate down",
        }
    }
}

/// What a successful `run_with` did, for a caller that records a release (promote).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrateOutcome {
    /// The versions this run applied, in order (empty for status, dry run, nothing to do, down).
    pub applied: Vec<u64>,
    /// The versions this run reverted (`down`), newest first.
    pub reverted: Vec<u64>,
    /// The database's version afterwards (the highest recorded; None when nothing is recorded).
    pub version: Option<u64>,
    /// The verified backup written before the change, if any.
    pub backup: Option<PathBuf>,
    /// Who approved, how, for which plan (guarded environments).
    pub approval: Option<Approval>,
    /// The hash of the plan that ran (or, for a dry run, would run).
    pub plan_hash: Option<String>,
    /// The steps walked, in order (a dry run's and a real run's list the same ids).
    pub trace: Trace,
}

/// What the run read before planning: the files and the tracking table, and what it was asked.
pub struct Seen {
    /// The migrations directory.
    pub dir: PathBuf,
    pub files: Vec<Migration>,
    /// The rows of the tracking table, as first read.
    pub applied: Vec<AppliedRow>,
    goal: Goal,
    accept_changed: Vec<u64>,
}

impl Seen {
    /// What is pending from `files` and `applied` toward the run's goal (the planner's refusals
    /// mapped onto exit codes).
    pub fn pending<'m>(
        &self,
        files: &'m [Migration],
        applied: &[AppliedRow],
    ) -> Result<Pending<'m>> {
        let dir = self.dir.display().to_string();
        planner::pending(&self.goal, &self.accept_changed, files, applied, &dir)
            .map_err(inspect::plan_error)
    }
}

/// Runs `migrate` for one environment with resolved values (the command line, promote or a test)
/// and says what it did.
pub fn run_with(
    ctx: &Ctx,
    env: &Environment,
    migrations: &Migrations,
    opts: Options,
) -> Result<MigrateOutcome> {
    let mut released = false;
    match drive(ctx, env, migrations, &opts, &mut released) {
        Err(e) if opts.record && !opts.dry_run && !released => perform::record_failure(ctx, env, e),
        result => result,
    }
}

/// Inspect, plan, walk (real or recording), report.
fn drive(
    ctx: &Ctx,
    env: &Environment,
    migrations: &Migrations,
    opts: &Options,
    released: &mut bool,
) -> Result<MigrateOutcome> {
    let report = &ctx.report;
    let dir = crate::context::inside_repo(&opts.root, &migrations.dir, "migrations.dir")?;
    let files = read_dir(&dir)?;
    let mut exec = None;
    let mut db = inspect::open_db(ctx, env, migrations, &opts.root, opts.lock_wait, &mut exec)?;
    let stage = opts.stage();
    report.stage_start(stage, Some(&env.name));
    report.info(&format!("database: {}", db.describe()));
    let applied = db.applied().map_err(inspect::lock_err)?;
    if opts.mode == Mode::Status {
        report::status(ctx, env, &files, &applied);
        return Ok(MigrateOutcome {
            version: applied.last().map(|r| r.version),
            ..MigrateOutcome::default()
        });
    }
    let seen = Seen {
        dir,
        files,
        applied,
        goal: opts.goal(),
        accept_changed: opts.accept_changed.clone(),
    };
    let pending = seen.pending(&seen.files, &seen.applied)?;
    // Before the dry run's text, the gate, the lock and the backup: nothing runs.
    let shown = seen.dir.display().to_string();
    planner::refuse_transaction_control(&pending, db.dialect(), &shown)
        .map_err(inspect::plan_error)?;
    for note in &pending.notes {
        report.info(note);
    }
    let steps = planner::steps(&request(env, migrations, opts, &shown), &pending);
    if opts.dry_run {
        return record::dry_run(ctx, env, opts, stage, &seen, &pending, &steps);
    }
    if steps.is_empty() {
        let version = seen.applied.last().map(|r| r.version);
        report::nothing_to_migrate(ctx, version);
        return Ok(MigrateOutcome {
            version,
            ..MigrateOutcome::default()
        });
    }
    let run = perform::Run {
        ctx,
        env,
        opts,
        stage,
        seen: &seen,
        pending: &pending,
        steps: &steps,
    };
    perform::run(run, db.as_mut(), released)
}

/// What the steps depend on besides what is pending.
fn request<'a>(
    env: &'a Environment,
    migrations: &'a Migrations,
    opts: &Options,
    dir: &str,
) -> Request<'a> {
    Request {
        env,
        migrations,
        dir: dir.to_string(),
        backup_to: backup::dir(opts, env).display().to_string(),
        lock_wait_ms: u64::try_from(opts.lock_wait.as_millis()).unwrap_or(u64::MAX),
        record: opts.record,
    }
}

/// The pending migrations of `env` as (plan hash, SQL text), or `None` when there is nothing to
/// run: what `promote` puts in the plan it asks to approve. Reads the database, writes nothing.
pub fn preview(
    ctx: &Ctx,
    env: &Environment,
    migrations: &Migrations,
    opts: &Options,
) -> Result<Option<(String, String)>> {
    let dir = crate::context::inside_repo(&opts.root, &migrations.dir, "migrations.dir")?;
    let files = read_dir(&dir)?;
    let mut exec = None;
    let mut db = inspect::open_db(ctx, env, migrations, &opts.root, opts.lock_wait, &mut exec)?;
    let applied = db.applied().map_err(inspect::lock_err)?;
    let seen = Seen {
        dir,
        files: Vec::new(),
        applied: Vec::new(),
        goal: opts.goal(),
        accept_changed: opts.accept_changed.clone(),
    };
    let pending = seen.pending(&files, &applied)?;
    Ok((!pending.is_empty()).then(|| (pending.hash(), pending.text())))
}
