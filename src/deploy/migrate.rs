//! Running migrations (what `migrate`, `migrate status` and `migrate down --to V` run): the
//! migration files (`migrate/`), the database (`db/`), the approval gate (`guard/`) and the report,
//! put together.
//!
//! Order of an apply: read files and applied rows → refuse changed files → approval (guarded
//! environments) → lock → re-read the files and the table; the plan must still hash the same →
//! verified backup → run each migration with its row in one transaction → summary, output
//! `migration-version`, audit log. `--dry-run` stops after printing the pending SQL and never
//! creates the tracking table (nor, on SQLite, the database file).
//!
//! [`run_with`] is the entry for the commands (`migrate`, promote): it takes resolved [`Options`]
//! (with `target` for "up to this version") and returns a [`MigrateOutcome`] to record in a
//! release. Stays out of the command line (`commands/migrate.rs`) and of the release records
//! (`ledger/publish.rs`).

use crate::approval::Approval;
use crate::context::Ctx;
use crate::db::compose::{ComposeDatabase, ComposeTarget};
use crate::db::postgres::PgDatabase;
use crate::db::sqlite::SqliteDatabase;
use crate::db::{Bookkeeping, Database, DbError};
use crate::env_vars;
use crate::error::{Error, Result};
use crate::exec::{Executor, ExecutorOpener};
use crate::guard::{self, ChangePlan};
use crate::manifest::{
    Approval as ApprovalPolicy, BackupPolicy, Database as DbConfig, Engine, Environment, Migrations,
};
use crate::migrate::tx_control::{self, Dialect};
use crate::migrate::{self, AppliedRow, Entry, Migration, SqlFile, Status};
use crate::report::Summary;
use std::path::{Path, PathBuf};
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
}

impl Options {
    /// An up migration with the command line's defaults (lock wait 60s, approval timeout 30m,
    /// 10 backups kept), paths relative to `root`, `.deploy-action/` under `workdir`.
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
}

/// Reads `NNNN_name.sql` files from `dir` (exit 2 when missing or unreadable).
pub fn read_dir(dir: &Path) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage(format!(
            "cannot read the migrations directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| Error::usage(format!("{}: {e}", entry.path().display())))?;
        files.push((name, text));
    }
    migrate::collect(files)
        .map_err(|e| Error::usage(format!("{}/{}: {}", dir.display(), e.file, e.message)))
}

/// The executor for the environment's first host (compose mode), and how to open another one for
/// the lock session: child processes for `local`; for `ssh://` one authenticated session now
/// (strict host-key checking, notices to the report) and a second connection for the lock.
fn executor_for(ctx: &Ctx, env: &Environment) -> Result<(Box<dyn Executor>, ExecutorOpener)> {
    let Some(host) = env.hosts.first() else {
        return Err(Error::usage(format!(
            "environment `{}` has no hosts to reach its compose database on",
            env.name
        )));
    };
    let exec = crate::exec::connect(host, &|w: &str| ctx.report.warn(w))?;
    // The first connection already reported any notice (an accepted key, bad lines).
    let opener = crate::exec::opener(host);
    Ok((exec, opener))
}

/// Opens the environment's database. The password of a URL is registered as a secret first.
fn open_db<'e>(
    ctx: &Ctx,
    env: &Environment,
    migrations: &Migrations,
    root: &Path,
    lock_wait: Duration,
    exec: &'e mut Option<Box<dyn Executor>>,
) -> Result<Box<dyn Database + 'e>> {
    let Some(config) = &env.database else {
        return Err(Error::usage_help(
            format!("environment `{}` has no `database:`", env.name),
            "add `database: { url_env: DATABASE_URL }` or `database: { compose_service: db, engine: postgres, user: app, name: app }`",
        ));
    };
    let fail = db_error;
    match config {
        DbConfig::UrlEnv { var, .. } => {
            let url = env_vars::get(var).ok_or_else(|| {
                Error::usage(format!(
                    "environment `{}`: the database URL variable {var} is not set",
                    env.name
                ))
            })?;
            if let Some(pw) = crate::db::postgres::url_password(&url) {
                ctx.report.add_secret(&pw);
            }
            if let Some(rest) = url.strip_prefix("sqlite://") {
                if migrations.engine != Engine::Sqlite {
                    return Err(Error::usage(format!(
                        "{var} is a sqlite:// URL but migrations.engine is postgres"
                    )));
                }
                let path = root.join(rest);
                let db = SqliteDatabase::open(&path, rest, lock_wait).map_err(fail)?;
                Ok(Box::new(db))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                if migrations.engine != Engine::Postgres {
                    return Err(Error::usage(format!(
                        "{var} is a postgres:// URL but migrations.engine is sqlite"
                    )));
                }
                let app = format!("deploy-action migrate ({})", actor());
                Ok(Box::new(PgDatabase::connect(&url, &app).map_err(fail)?))
            } else {
                Err(Error::usage(format!(
                    "{var}: the database URL must start with postgres://, postgresql:// or sqlite://"
                )))
            }
        }
        DbConfig::ComposeService {
            service,
            engine,
            user,
            name,
            ..
        } => {
            if *engine != Engine::Postgres {
                return Err(Error::usage(
                    "database.compose_service supports engine: postgres only",
                ));
            }
            let (main, opener) = executor_for(ctx, env)?;
            *exec = Some(main);
            let target = ComposeTarget {
                dir: env.dir.clone(),
                project: env.compose_project.clone(),
                files: env.compose_files.clone(),
                service: service.clone(),
                user: user.clone(),
                database: name.clone(),
            };
            let exec = exec.as_mut().expect("just set").as_mut();
            Ok(Box::new(ComposeDatabase::new(target, exec, opener)))
        }
    }
}

fn actor() -> String {
    env_vars::actor()
}

fn run_url() -> String {
    env_vars::run_url().unwrap_or_else(|| "local".into())
}

/// The steps to run: (migration, file) pairs in order, and the direction.
struct Steps<'m> {
    direction: &'static str,
    steps: Vec<(&'m Migration, &'m SqlFile)>,
    rebaseline: Vec<(u64, String)>,
    /// Said once to the user: `--accept-changed` flags with nothing left to do.
    notes: Vec<String>,
}

impl Steps<'_> {
    fn hash(&self) -> String {
        let mut dir = self.direction.to_string();
        for (v, sum) in &self.rebaseline {
            dir.push_str(&format!(" accept {v}={sum}"));
        }
        migrate::plan_hash(&dir, &self.steps)
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (v, _) in &self.rebaseline {
            out.push_str(&format!("-- re-baseline the checksum of version {v}\n"));
        }
        for (_, f) in &self.steps {
            let mode = if f.no_transaction {
                " (no transaction)"
            } else {
                ""
            };
            out.push_str(&format!("-- {}{mode}\n{}", f.file, f.sql));
            if !f.sql.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.rebaseline.is_empty()
    }
}

/// Works out what to run; refuses changed files that were not accepted.
fn plan_steps<'m>(
    opts: &Options,
    migrations: &'m [Migration],
    applied: &[AppliedRow],
    dir: &Path,
) -> Result<Steps<'m>> {
    let entries = migrate::compare(migrations, applied);
    let by_version = |v: u64| migrations.iter().find(|m| m.version == v);
    let mut rebaseline = Vec::new();
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    for e in &entries {
        if let Status::Changed { recorded, current } = &e.status {
            if opts.accept_changed.contains(&e.version) {
                rebaseline.push((e.version, current.clone()));
            } else {
                refused.push(format!(
                    "{}/{} was changed after it was applied (recorded checksum {recorded}, file now {current}); \
restore the file, or pass --accept-changed {} to re-baseline it on purpose",
                    dir.display(),
                    e.file.clone().unwrap_or_default(),
                    e.version
                ));
            }
        }
    }
    for v in &opts.accept_changed {
        if rebaseline.iter().any(|(x, _)| x == v) {
            continue;
        }
        match entries.iter().find(|e| e.version == *v) {
            // Re-baselined by an earlier run (a workflow that keeps the flag): nothing to do.
            Some(e) if e.status == Status::Applied => notes.push(format!(
                "--accept-changed {v}: the recorded checksum of {} already matches the file; nothing to re-baseline",
                e.file.as_deref().unwrap_or(&e.name)
            )),
            Some(e) => {
                return Err(Error::usage(format!(
                    "--accept-changed {v}: version {v} is {}, not an applied migration whose file changed",
                    e.status.label()
                )));
            }
            None => {
                return Err(Error::usage(format!(
                    "--accept-changed {v}: no migration file and no applied row has version {v}"
                )));
            }
        }
    }
    if !refused.is_empty() {
        return Err(Error::StageFailed(refused.join("\n")));
    }
    if let Some(t) = opts.target
        && by_version(t).is_none()
    {
        let known: Vec<String> = migrations.iter().map(|m| m.version.to_string()).collect();
        return Err(Error::usage(format!(
            "--target {t}: no migration file in {} has version {t} (versions: {})",
            dir.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    match &opts.mode {
        Mode::Down { to } => {
            let mut steps = Vec::new();
            for e in entries.iter().rev() {
                if e.version <= *to || matches!(e.status, Status::Pending) {
                    continue;
                }
                let m = by_version(e.version);
                match m.and_then(|m| m.down.as_ref().map(|d| (m, d))) {
                    Some(pair) => steps.push(pair),
                    None => {
                        return Err(Error::StageFailed(format!(
                            "version {} ({}) has no down migration {}/{:04}_{}.down.sql; nothing was changed",
                            e.version,
                            e.name,
                            dir.display(),
                            e.version,
                            e.name
                        )));
                    }
                }
            }
            Ok(Steps {
                direction: "down",
                steps,
                rebaseline,
                notes,
            })
        }
        _ => {
            let steps = entries
                .iter()
                .filter(|e| e.status == Status::Pending)
                .filter(|e| opts.target.is_none_or(|t| e.version <= t))
                .filter_map(|e| by_version(e.version).map(|m| (m, &m.up)))
                .collect();
            Ok(Steps {
                direction: "up",
                steps,
                rebaseline,
                notes,
            })
        }
    }
}

/// Exit 2, naming file:line:column, when a migration that runs inside deploy-action's transaction
/// contains transaction control (it would commit part of itself; see `migrate::tx_control`).
fn refuse_transaction_control(steps: &Steps, dialect: Dialect, dir: &Path) -> Result<()> {
    let found: Vec<String> = steps
        .steps
        .iter()
        .filter(|(_, f)| !f.no_transaction)
        .filter_map(|(_, f)| {
            tx_control::find(&f.sql, dialect).map(|t| {
                format!(
                    "{}/{}:{}:{}: `{}` controls the transaction, but this migration runs inside deploy-action's own transaction",
                    dir.display(),
                    f.file,
                    t.line,
                    t.column,
                    t.keyword
                )
            })
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::usage_help(
        format!("{}\nnothing was run", found.join("\n")),
        format!(
            "each migration runs in one transaction together with its row in the tracking table, so it must not \
BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT or RELEASE itself: remove the statement, or put `{}` on the file's first \
line to run its statements one by one without a transaction",
            migrate::NO_TRANSACTION_MARKER
        ),
    ))
}

fn lock_err(e: DbError) -> Error {
    match e {
        DbError::LockTimeout { .. } => Error::LockHeld(e.to_string()),
        other => db_error(other),
    }
}

/// Settings that cannot be used (a bad URL, sslmode, sslrootcert) are input errors (exit 2);
/// everything else a database says is a failed stage (exit 1).
fn db_error(e: DbError) -> Error {
    match e {
        DbError::Config(m) => Error::usage(m),
        other => Error::StageFailed(other.to_string()),
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
    let report = &ctx.report;
    let dir = crate::context::inside_repo(&opts.root, &migrations.dir, "migrations.dir")?;
    let files = read_dir(&dir)?;
    let mut exec = None;
    let mut db = open_db(ctx, env, migrations, &opts.root, opts.lock_wait, &mut exec)?;
    let stage = match opts.mode {
        Mode::Up => "migrate",
        Mode::Status => "migrate status",
        Mode::Down { .. } => "migrate down",
    };
    report.stage_start(stage, Some(&env.name));
    report.info(&format!("database: {}", db.describe()));
    let applied = db.applied().map_err(lock_err)?;
    let current = applied.last().map(|r| r.version);

    if opts.mode == Mode::Status {
        status(ctx, env, &files, &applied)?;
        return Ok(MigrateOutcome {
            version: current,
            ..MigrateOutcome::default()
        });
    }

    let steps = plan_steps(&opts, &files, &applied, &dir)?;
    // Before the dry run's text, the gate, the lock and the backup: nothing runs.
    refuse_transaction_control(&steps, db.dialect(), &dir)?;
    for note in &steps.notes {
        report.info(note);
    }
    let hash = steps.hash();
    if opts.dry_run {
        if !steps.is_empty() {
            admit(ctx, env, stage, &opts, &steps, &hash)?;
        }
        dry_run(ctx, env, &opts, &steps, &hash, current);
        return Ok(MigrateOutcome {
            version: current,
            plan_hash: Some(hash),
            ..MigrateOutcome::default()
        });
    }
    if steps.is_empty() {
        report.info(&format!(
            "nothing to migrate: the database is at version {}",
            version_text(current)
        ));
        report.output("migration-version", &version_text(current));
        return Ok(MigrateOutcome {
            version: current,
            ..MigrateOutcome::default()
        });
    }

    // The gate comes before anything that writes: no lock, no tracking table, no backup (and on
    // SQLite no database file).
    let approval = admit(ctx, env, stage, &opts, &steps, &hash)?;
    if let Some(a) = &approval {
        // A file edited while the approval was pending: refuse before taking the lock, so nothing
        // is created (under the lock the database side is checked again).
        let now = plan_steps(&opts, &read_dir(&dir)?, &applied, &dir)?.hash();
        if now != hash {
            let e = plan_changed(&hash, &now);
            audit(
                &opts,
                env,
                stage,
                "plan-changed",
                Some(a),
                None,
                Some(&e.to_string()),
            );
            return Err(e);
        }
    }
    db.lock(opts.lock_wait).map_err(lock_err)?;
    let result = locked(ctx, env, &opts, db.as_mut(), &dir, &hash, approval);
    let unlocked = db.unlock();
    let outcome = result?;
    unlocked.map_err(|e| Error::StageFailed(format!("releasing the migration lock: {e}")))?;
    Ok(outcome)
}

/// Prints what a dry run would do: the pending SQL, its plan hash, the outputs.
fn dry_run(
    ctx: &Ctx,
    env: &Environment,
    opts: &Options,
    steps: &Steps,
    hash: &str,
    current: Option<u64>,
) {
    let report = &ctx.report;
    report.info(&format!(
        "{} migration(s) would run {}{}; plan hash {hash}\n",
        steps.steps.len(),
        steps.direction,
        opts.target
            .map(|t| format!(" (up to version {t})"))
            .unwrap_or_default()
    ));
    if !steps.is_empty() {
        report.info(&steps.text());
    }
    if report.json() {
        report.json_document(&serde_json::json!({
            "env": env.name,
            "direction": steps.direction,
            "target": opts.target,
            "plan_hash": hash,
            "pending": steps.steps.iter().map(|(m, f)| serde_json::json!({
                "version": m.version, "name": m.name, "file": f.file,
                "no_transaction": f.no_transaction, "sql": f.sql,
            })).collect::<Vec<_>>(),
        }));
    }
    report.output("plan-hash", hash);
    report.output("migration-version", &version_text(current));
}

/// The guard for a migration: the deploy rules and, on a guarded environment, the approval of
/// exactly this SQL (its plan hash is the one the approval is bound to). Run by `promote`, the
/// approval promote obtained covers it when it names this plan's hash; another hash is exit 3.
fn admit(
    ctx: &Ctx,
    env: &Environment,
    stage: &str,
    opts: &Options,
    steps: &Steps,
    hash: &str,
) -> Result<Option<Approval>> {
    if let Some(outer) = guard::admitted(ctx, &env.name)
        && let Some(covered) = outer.covered("migrate")
    {
        if covered != hash {
            let e = plan_changed(covered, hash);
            audit(
                opts,
                env,
                stage,
                "plan-changed",
                outer.approval.as_ref(),
                None,
                Some(&e.to_string()),
            );
            return Err(e);
        }
        return Ok(outer.approval);
    }
    let plan = || Ok(ChangePlan::new(stage, &env.name, steps.text()).hashed_as(hash));
    match guard::admit(ctx, env, stage, &opts.root, &plan) {
        Ok(adm) => {
            if let Some(a) = &adm.approval {
                audit(opts, env, stage, "approved", Some(a), None, None);
            }
            Ok(adm.approval)
        }
        Err(e) => {
            if !opts.dry_run {
                audit(
                    opts,
                    env,
                    stage,
                    "approval-refused",
                    None,
                    None,
                    Some(&e.to_string()),
                );
            }
            Err(e)
        }
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
    let mut db = open_db(ctx, env, migrations, &opts.root, opts.lock_wait, &mut exec)?;
    let applied = db.applied().map_err(lock_err)?;
    let steps = plan_steps(opts, &files, &applied, &dir)?;
    Ok((!steps.is_empty()).then(|| (steps.hash(), steps.text())))
}

/// Exit 3: what would run now is not the plan that was approved.
fn plan_changed(approved: &str, now: &str) -> Error {
    Error::Approval(format!(
        "the plan changed after it was approved (approved {approved}, now {now}): the pending SQL or the \
database's migrations are not what was approved; nothing was applied, approve the new plan"
    ))
}

fn version_text(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// The part of a run that holds the lock. Reads the files again: what runs must be exactly what
/// was approved, so a file edited while the approval was pending changes the plan hash (exit 3).
fn locked(
    ctx: &Ctx,
    env: &Environment,
    opts: &Options,
    db: &mut dyn Database,
    dir: &Path,
    approved_hash: &str,
    approval: Option<Approval>,
) -> Result<MigrateOutcome> {
    let report = &ctx.report;
    let fail = |e: DbError| Error::StageFailed(e.to_string());
    let files = read_dir(dir)?;
    // Another run may have migrated while we waited: plan again under the lock.
    let applied = db.applied().map_err(lock_err)?;
    if plan_steps(opts, &files, &applied, dir)?.is_empty() {
        let v = applied.last().map(|r| r.version);
        report.info(&format!(
            "nothing to migrate: the database is at version {}",
            version_text(v)
        ));
        report.output("migration-version", &version_text(v));
        return Ok(MigrateOutcome {
            version: v,
            approval,
            ..MigrateOutcome::default()
        });
    }
    let stage = match opts.mode {
        Mode::Down { .. } => "migrate down",
        _ => "migrate",
    };
    let plan_changed = |now: &str| plan_changed(approved_hash, now);
    // Before the backup too, so a refused run writes nothing.
    let now = plan_steps(opts, &files, &applied, dir)?.hash();
    if approval.is_some() && now != approved_hash {
        let e = plan_changed(&now);
        audit(
            opts,
            env,
            stage,
            "plan-changed",
            approval.as_ref(),
            None,
            Some(&e.to_string()),
        );
        return Err(e);
    }
    let wants_backup = match env.backup {
        BackupPolicy::Always => true,
        BackupPolicy::Never => false,
        BackupPolicy::Auto => env.approval == ApprovalPolicy::Required,
    };
    let mut backup_path = None;
    if wants_backup {
        let (path, how) =
            backup(opts, env, db, applied.last().map(|r| r.version)).inspect_err(|e| {
                audit(
                    opts,
                    env,
                    stage,
                    "backup-failed",
                    approval.as_ref(),
                    None,
                    Some(&e.to_string()),
                );
            })?;
        report.info(&format!(
            "backup written and verified ({how}): {}",
            path.display()
        ));
        report.output("backup-path", &path.display().to_string());
        backup_path = Some(path);
    }
    // What runs must be exactly what was approved (and what the backup precedes).
    let applied = db.applied().map_err(lock_err)?;
    let steps = plan_steps(opts, &files, &applied, dir)?;
    refuse_transaction_control(&steps, db.dialect(), dir)?;
    // (Without a gate the plan made under the lock is simply the plan.)
    if approval.is_some() && steps.hash() != approved_hash {
        let e = plan_changed(&steps.hash());
        audit(
            opts,
            env,
            stage,
            "plan-changed",
            approval.as_ref(),
            backup_path.as_deref(),
            Some(&e.to_string()),
        );
        return Err(e);
    }
    let mut summary = Summary::new(
        format!("{stage} ({})", env.name),
        &["version", "name", "duration", "result"],
    );
    if let Some(a) = &approval {
        summary.note(format!(
            "Approved by **{}** via {} for plan `{}`{}",
            a.approver,
            a.method,
            a.plan_hash,
            a.reference
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(path) = &backup_path {
        summary.note(format!("Backup (verified): `{}`", path.display()));
    }
    db.ensure_table().map_err(fail)?;
    for (v, sum) in &steps.rebaseline {
        db.rebaseline(*v, sum).map_err(fail)?;
        report.warn(&format!(
            "version {v}: recorded checksum re-baselined to {sum} (--accept-changed)"
        ));
        summary.row([
            v.to_string(),
            String::new(),
            String::new(),
            "re-baselined".into(),
        ]);
    }
    let mut version = applied.last().map(|r| r.version);
    let mut done = Vec::new();
    let mut failure = None;
    for (m, f) in &steps.steps {
        let book = if steps.direction == "down" {
            Bookkeeping::Delete { version: m.version }
        } else {
            Bookkeeping::Insert {
                version: m.version,
                name: m.name.clone(),
                checksum: f.checksum.clone(),
                applied_by: actor(),
                release: env_vars::get(env_vars::GITHUB_SHA),
            }
        };
        report.info(&format!(
            "{} {}{}",
            if steps.direction == "down" {
                "reverting"
            } else {
                "applying"
            },
            f.file,
            if f.no_transaction {
                " (no transaction: statements run one by one, then recorded)"
            } else {
                ""
            }
        ));
        match db.run(f, &book) {
            Ok(ms) => {
                summary.row([
                    m.version.to_string(),
                    m.name.clone(),
                    format!("{ms} ms"),
                    "ok".into(),
                ]);
                done.push(m.version);
                version = if steps.direction == "down" {
                    applied
                        .iter()
                        .map(|r| r.version)
                        .filter(|v| *v < m.version)
                        .max()
                } else {
                    version.max(Some(m.version))
                };
            }
            Err(e) => {
                summary.row([
                    m.version.to_string(),
                    m.name.clone(),
                    String::new(),
                    "failed".into(),
                ]);
                let (statement, message) = match &e {
                    DbError::Statement { statement, message }
                    | DbError::NotRolledBack { statement, message } => {
                        (statement.clone(), message.clone())
                    }
                    other => (None, other.to_string()),
                };
                let rolled = if matches!(e, DbError::NotRolledBack { .. }) {
                    "it could NOT be rolled back: part of it may be applied (even recorded); check the database and the tracking table before running again"
                } else if f.no_transaction {
                    "it ran without a transaction: statements before the failing one stay applied, and it is not recorded"
                } else {
                    "it was rolled back whole; earlier migrations stay applied"
                };
                let mut msg = format!("{}/{} failed; {rolled}\n", dir.display(), f.file);
                if let Some(s) = statement {
                    msg.push_str(&format!("  statement: {s}\n"));
                }
                msg.push_str(&format!("  database: {message}"));
                failure = Some(msg);
                break;
            }
        }
    }
    for (m, _) in steps
        .steps
        .iter()
        .skip(summary.rows.len() - steps.rebaseline.len())
    {
        summary.row([
            m.version.to_string(),
            m.name.clone(),
            String::new(),
            "not run".into(),
        ]);
    }
    summary.note(format!("Database version: {}", version_text(version)));
    report.summary(&summary);
    report.output("migration-version", &version_text(version));
    let result = if failure.is_some() { "failed" } else { "ok" };
    if report.json() {
        report.json_document(&serde_json::json!({
            "env": env.name,
            "direction": steps.direction,
            "target": opts.target,
            "plan_hash": approved_hash,
            "result": result,
            "version": version_text(version),
            "migrations": summary.rows.iter().map(|r| serde_json::json!({
                "version": r[0], "name": r[1], "duration": r[2], "result": r[3],
            })).collect::<Vec<_>>(),
            "backup": backup_path.as_ref().map(|p| p.display().to_string()),
            "approval": approval,
        }));
    }
    audit(
        opts,
        env,
        stage,
        result,
        approval.as_ref(),
        backup_path.as_deref(),
        failure.as_deref(),
    );
    if let Some(msg) = failure {
        return Err(Error::StageFailed(msg));
    }
    let (applied_now, reverted) = if steps.direction == "down" {
        (Vec::new(), done)
    } else {
        (done, Vec::new())
    };
    Ok(MigrateOutcome {
        applied: applied_now,
        reverted,
        version,
        backup: backup_path,
        approval,
        plan_hash: Some(steps.hash()),
    })
}

fn status(ctx: &Ctx, env: &Environment, files: &[Migration], applied: &[AppliedRow]) -> Result<()> {
    let entries: Vec<Entry> = migrate::compare(files, applied);
    let mut summary = Summary::new(
        format!("migrate status ({})", env.name),
        &["version", "name", "status", "applied at"],
    );
    for e in &entries {
        let at = applied
            .iter()
            .find(|r| r.version == e.version)
            .map(|r| r.applied_at.clone())
            .unwrap_or_default();
        let status = match &e.status {
            Status::Changed { recorded, current } => format!(
                "changed (recorded {}…, file {}…)",
                short(recorded),
                short(current)
            ),
            s => s.label().to_string(),
        };
        summary.row([e.version.to_string(), e.name.clone(), status, at]);
    }
    let version = version_text(applied.last().map(|r| r.version));
    summary.note(format!("Database version: {version}"));
    ctx.report.summary(&summary);
    if ctx.report.json() {
        ctx.report.json_document(&serde_json::json!({
            "env": env.name,
            "version": version,
            "migrations": entries.iter().map(|e| serde_json::json!({
                "version": e.version, "name": e.name, "file": e.file, "status": e.status.label(),
            })).collect::<Vec<_>>(),
        }));
    }
    ctx.report.output("migration-version", &version);
    Ok(())
}

/// The first 12 characters of a checksum, for a table. The recorded one comes from the database
/// (outside data, any text): cut by characters, never by bytes.
fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

/// Writes and verifies a backup, then prunes old ones (keeping `opts.keep_backups`). Any failure
/// stops the migration. Returns the path and how it was verified. A backup holds the whole
/// database: it is written 0600 into a 0700 directory (created so, or tightened).
fn backup(
    opts: &Options,
    env: &Environment,
    db: &mut dyn Database,
    version: Option<u64>,
) -> Result<(PathBuf, String)> {
    let dir = opts
        .backup_dir
        .clone()
        .unwrap_or_else(|| opts.workdir.join(".deploy-action/backups").join(&env.name));
    private_dir(&dir).map_err(|e| {
        Error::StageFailed(format!(
            "backup failed: cannot make {} a private (0700) directory: {e}; nothing was migrated",
            dir.display()
        ))
    })?;
    let stamp = crate::db::now_rfc3339().replace([':', '-'], "");
    let ext = db.backup_extension();
    let stem = format!("{}-{stamp}-v{}", env.name, version_text(version));
    let path = new_private_file(&dir, &stem, ext).map_err(|e| {
        Error::StageFailed(format!(
            "backup failed: cannot create a file in {}: {e}; nothing was migrated",
            dir.display()
        ))
    })?;
    let how = db.backup(&path).and_then(|how| {
        // A tool may have replaced the file: it stays private whatever wrote it.
        set_mode(&path, 0o600)
            .map(|()| how)
            .map_err(|e| DbError::Backup(format!("{}: {e}", path.display())))
    });
    let how = match how {
        Ok(how) => how,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(Error::StageFailed(format!("{e}; nothing was migrated")));
        }
    };
    prune_backups(&dir, &env.name, ext, opts.keep_backups.max(1));
    Ok((path, how))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates `dir` and its missing parents with mode 0700; an existing `dir` open to group or
/// others is tightened to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

/// Creates `<stem>.<ext>` in `dir` (`<stem>-2.<ext>`, … when taken) exclusively, with mode 0600
/// from the start, and returns its path.
fn new_private_file(dir: &Path, stem: &str, ext: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    for n in 1..=1000 {
        let path = match n {
            1 => dir.join(format!("{stem}.{ext}")),
            n => dir.join(format!("{stem}-{n}.{ext}")),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{stem}.{ext} and 999 numbered variants exist"),
    ))
}

/// Whether `name` is a backup of environment `env` written by [`backup`]:
/// `<env>-<YYYYMMDDTHHMMSSZ>-v<version|none>[-<n>].<ext>`. Only the exact shape counts, so the
/// backups of `prod-eu` are never taken for those of `prod` in a shared directory.
pub fn is_backup_of(name: &str, env: &str, ext: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(env)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_suffix('.'))
    else {
        return false;
    };
    let b = rest.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_digit))
    };
    let stamp =
        b.len() > 18 && digits(0..8) && b[8] == b'T' && digits(9..15) && &b[15..18] == b"Z-v";
    if !stamp {
        return false;
    }
    let mut parts = rest[18..].splitn(2, '-');
    let version = parts.next().unwrap_or_default();
    let version_ok = version == "none" || digits(18..18 + version.len());
    let n_ok = parts
        .next()
        .is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    version_ok && n_ok
}

/// Keeps the newest `keep` backups of `env` in `dir`: newest by modification time, then by name
/// (two backups in the same second have the same time stamp in their names). Other files, and the
/// backups of other environments sharing the directory, are left alone.
pub fn prune_backups(dir: &Path, env: &str, ext: &str, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            is_backup_of(&name, env, ext).then_some((modified, name))
        })
        .collect();
    files.sort();
    let extra = files.len().saturating_sub(keep);
    for (_, name) in files.into_iter().take(extra) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// Appends one line to `.deploy-action/audit/<env>.log` in the working directory.
fn audit(
    opts: &Options,
    env: &Environment,
    action: &str,
    result: &str,
    approval: Option<&Approval>,
    backup: Option<&Path>,
    detail: Option<&str>,
) {
    let entry = crate::state::AuditEntry {
        time: crate::db::now_rfc3339(),
        actor: actor(),
        run_url: run_url(),
        action: action.to_string(),
        env: env.name.clone(),
        release: None,
        services: vec![crate::manifest::MIGRATIONS_UNIT.to_string()],
        result: result.to_string(),
        detail: Some(
            serde_json::json!({
                "approval": approval,
                "backup": backup.map(|p| p.display().to_string()),
                "message": detail,
            })
            .to_string(),
        ),
    };
    let dir = opts.workdir.join(".deploy-action/audit");
    let line = serde_json::to_string(&entry).unwrap_or_default();
    let _ = std::fs::create_dir_all(&dir).and_then(|()| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", env.name)))
            .and_then(|mut f| writeln!(f, "{line}"))
    });
}

#[cfg(test)]
mod tests {
    use super::{is_backup_of, short};

    #[test]
    fn backups_of_prod_are_not_those_of_prod_eu() {
        let ext = "sqlite3";
        assert!(is_backup_of(
            "prod-20240229T123456Z-v3.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-20240229T123456Z-vnone.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-20240229T123456Z-v3-2.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-eu-20240229T123456Z-v3.sqlite3",
            "prod-eu",
            ext
        ));
        for other in [
            "prod-eu-20240229T123456Z-v3.sqlite3",
            "prod-20240229T123456Z-v3.dump",
            "prod-20240229T123456Z-v3-.sqlite3",
            "prod-2024022T123456Z-v3.sqlite3",
            "prod-20240229T123456Z-vx.sqlite3",
            "prod-notes.sqlite3",
            "prod.sqlite3",
        ] {
            assert!(!is_backup_of(other, "prod", ext), "{other}");
        }
    }

    #[test]
    fn checksums_are_cut_by_characters() {
        assert_eq!(short("aéééééééééééééé"), "aééééééééééé");
        assert_eq!(short("abc"), "abc");
    }
}
