//! What a `migrate` run tells: the result table (console and job summary), the outputs
//! `migration-version` and `plan-hash`, the `--json` document with the steps walked, the audit line
//! in `.deploy-action/audit/<env>.log`, and `migrate status`.
//!
//! The table and the documents are built from plain data ([`Log`], the [`Trace`]); printing is
//! the reporter's.

use super::{MigrateOutcome, Options};
use crate::approval::Approval;
use crate::context::Ctx;
use crate::engine::runner::{Trace, Walked};
use crate::env_vars;
use crate::error::{MigrationFailure, Result};
use crate::manifest::Environment;
use crate::migrate::{self, AppliedRow, Migration, Status};
use crate::plan::migrate::{Direction, MigrationAction, Pending};
use crate::plan::{Action, Step};
use crate::report::Summary;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a real run did, step by step: what its report is made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// Who approved, how, for which plan (guarded environments).
    pub approval: Option<Approval>,
    /// The verified backup written before the first change.
    pub backup: Option<PathBuf>,
    /// One row per re-baseline and per migration run: version, name, duration, result.
    pub rows: Vec<[String; 4]>,
    /// The versions applied (or reverted), in order.
    pub done: Vec<u64>,
    /// The database's version now.
    pub version: Option<u64>,
    /// The failed migration (the run exits 1 after the release and the unlock).
    pub failure: Option<MigrationFailure>,
    /// Another run did everything while this one waited for the lock.
    pub nothing_left: bool,
    /// The release step ran (it recorded the run, or its failure).
    pub released: bool,
}

/// `none` or the version.
pub fn version_text(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// The first 12 characters of a checksum, for a table. The recorded one comes from the database
/// (outside data, any text): cut by characters, never by bytes.
pub fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

/// The migration steps a failure left out (skipped by their guard, not done by another run), as
/// (version, name).
pub fn not_run(
    steps: &[Step],
    trace: &Trace,
    done_elsewhere: &BTreeSet<String>,
) -> Vec<(u64, String)> {
    let skipped: BTreeSet<&str> = trace
        .0
        .iter()
        .filter(|e| e.walked == Walked::Skipped)
        .map(|e| e.id.as_str())
        .collect();
    steps
        .iter()
        .filter(|s| skipped.contains(s.id.as_str()) && !done_elsewhere.contains(&s.id))
        .filter_map(|s| match &s.action {
            Action::Migration(MigrationAction::Apply { version, name, .. }) => {
                Some((*version, name.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The result table of a run.
pub fn summary(title: String, log: &Log, not_run: &[(u64, String)]) -> Summary {
    let mut summary = Summary::new(title, &["version", "name", "duration", "result"]);
    if let Some(a) = &log.approval {
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
    if let Some(path) = &log.backup {
        summary.note(format!("Backup (verified): `{}`", path.display()));
    }
    for row in &log.rows {
        summary.row(row.iter().cloned());
    }
    for (v, name) in not_run {
        summary.row([v.to_string(), name.clone(), String::new(), "not run".into()]);
    }
    summary.note(format!("Database version: {}", version_text(log.version)));
    summary
}

/// What a real run that changed (or tried to change) the database reports after its walk: the
/// table, the output, `--json`, the audit line; the failed migration's error, else the outcome.
pub fn finish(
    ctx: &Ctx,
    env: &Environment,
    opts: &Options,
    stage: &str,
    run: Walk,
) -> Result<MigrateOutcome> {
    let report = &ctx.report;
    let log = run.log;
    if log.nothing_left {
        nothing_to_migrate(ctx, log.version);
        return Ok(MigrateOutcome {
            version: log.version,
            approval: log.approval,
            trace: run.trace,
            ..MigrateOutcome::default()
        });
    }
    let not_run = not_run(run.steps, &run.trace, &run.done_elsewhere);
    let summary = summary(format!("{stage} ({})", env.name), &log, &not_run);
    report.summary(&summary);
    report.output("migration-version", &version_text(log.version));
    let result = if log.failure.is_some() {
        "failed"
    } else {
        "ok"
    };
    if report.json() && opts.document {
        report.json_document(&serde_json::json!({
            "env": env.name,
            "direction": run.direction,
            "target": opts.target,
            "plan_hash": run.hash,
            "result": result,
            "version": version_text(log.version),
            "migrations": summary.rows.iter().map(|r| serde_json::json!({
                "version": r[0], "name": r[1], "duration": r[2], "result": r[3],
            })).collect::<Vec<_>>(),
            "backup": log.backup.as_ref().map(|p| p.display().to_string()),
            "approval": log.approval,
            "steps": run.trace,
        }));
    }
    let failure = log.failure.as_ref().map(ToString::to_string);
    let detail = Detail {
        approval: log.approval.as_ref(),
        backup: log.backup.as_deref(),
        message: failure.as_deref(),
    };
    audit(ctx, opts, env, stage, result, detail);
    if let Some(f) = log.failure {
        return Err(f.into());
    }
    let (applied, reverted) = match run.direction {
        Direction::Down => (Vec::new(), log.done),
        Direction::Up => (log.done, Vec::new()),
    };
    Ok(MigrateOutcome {
        applied,
        reverted,
        version: log.version,
        backup: log.backup,
        approval: log.approval,
        plan_hash: Some(run.hash),
        trace: run.trace,
    })
}

/// A real run's walk, for [`finish`].
pub struct Walk<'a> {
    pub steps: &'a [Step],
    pub trace: Trace,
    pub log: Log,
    pub done_elsewhere: BTreeSet<String>,
    pub direction: Direction,
    pub hash: String,
}

/// Nothing pending (or everything done by another run meanwhile).
pub fn nothing_to_migrate(ctx: &Ctx, version: Option<u64>) {
    ctx.report.info(&format!(
        "nothing to migrate: the database is at version {}",
        version_text(version)
    ));
    ctx.report
        .output("migration-version", &version_text(version));
}

/// The first line of a dry run: how many files would run, which way, and the plan hash.
pub fn dry_run_header(pending: &Pending, target: Option<u64>, hash: &str) -> String {
    format!(
        "{} migration(s) would run {}{}; plan hash {hash}\n",
        pending.files.len(),
        pending.direction.as_str(),
        target
            .map(|t| format!(" (up to version {t})"))
            .unwrap_or_default()
    )
}

/// The `--json` document of a dry run: the pending files with their SQL, and the steps walked.
pub fn dry_run_json(
    env: &Environment,
    target: Option<u64>,
    pending: &Pending,
    hash: &str,
    trace: &Trace,
) -> serde_json::Value {
    serde_json::json!({
        "env": env.name,
        "direction": pending.direction,
        "target": target,
        "plan_hash": hash,
        "pending": pending.files.iter().map(|(m, f)| serde_json::json!({
            "version": m.version, "name": m.name, "file": f.file,
            "no_transaction": f.no_transaction, "sql": f.sql,
        })).collect::<Vec<_>>(),
        "steps": trace,
    })
}

/// `migrate status`: every version, files against the tracking table.
pub fn status(ctx: &Ctx, env: &Environment, files: &[Migration], applied: &[AppliedRow]) {
    let entries = migrate::compare(files, applied);
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
}

/// What an audit line of `migrate` says besides its result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detail<'a> {
    pub approval: Option<&'a Approval>,
    pub backup: Option<&'a Path>,
    /// An error's text: masked before it is written, since it can quote the outside (a failing
    /// statement, what the database or a backup tool said).
    pub message: Option<&'a str>,
}

/// Appends one line to `.deploy-action/audit/<env>.log` in the working directory, with every
/// secret the run knows masked.
pub fn audit(
    ctx: &Ctx,
    opts: &Options,
    env: &Environment,
    action: &str,
    result: &str,
    detail: Detail<'_>,
) {
    let entry = crate::state::AuditEntry {
        time: crate::db::now_rfc3339(),
        actor: env_vars::actor(),
        run_url: env_vars::run_url().unwrap_or_else(|| "local".into()),
        action: action.to_string(),
        env: env.name.clone(),
        release: None,
        services: vec![crate::manifest::MIGRATIONS_UNIT.to_string()],
        result: result.to_string(),
        detail: Some(
            serde_json::json!({
                "approval": detail.approval,
                "backup": detail.backup.map(|p| p.display().to_string()),
                "message": detail.message.map(|m| ctx.report.redact(m)),
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
    use super::*;
    use crate::engine::runner::TraceEntry;
    use crate::plan::Target;

    #[test]
    fn checksums_are_cut_by_characters() {
        assert_eq!(short("aéééééééééééééé"), "aééééééééééé");
        assert_eq!(short("abc"), "abc");
    }

    fn apply(version: u64, name: &str) -> Step {
        Step {
            id: format!("migrate:migrations:apply:{version:04}_{name}.sql"),
            stage: "migrate".into(),
            unit: Some("migrations".into()),
            target: Target::Local,
            action: Action::Migration(MigrationAction::Apply {
                direction: Direction::Up,
                version,
                name: name.into(),
                file: format!("{version:04}_{name}.sql"),
                checksum: "c".into(),
                no_transaction: false,
                sql: String::new(),
            }),
            why: String::new(),
            guard: Default::default(),
            origin: None,
        }
    }

    fn entry(id: &str, walked: Walked) -> TraceEntry {
        TraceEntry {
            id: id.into(),
            walked,
            describe: String::new(),
        }
    }

    #[test]
    fn a_failure_leaves_the_later_migrations_not_run_but_not_those_done_meanwhile() {
        let steps = [apply(1, "a"), apply(2, "b"), apply(3, "c")];
        let trace = Trace(vec![
            entry(&steps[0].id, Walked::Skipped),
            entry(&steps[1].id, Walked::Performed),
            entry(&steps[2].id, Walked::Skipped),
        ]);
        let elsewhere = BTreeSet::from([steps[0].id.clone()]);
        assert_eq!(not_run(&steps, &trace, &elsewhere), [(3, "c".to_string())]);
    }

    #[test]
    fn the_table_has_the_approval_the_backup_the_rows_and_the_version() {
        let log = Log {
            approval: Some(Approval {
                approver: "alice".into(),
                method: "github-issue".into(),
                plan_hash: "h".into(),
                reference: None,
            }),
            backup: Some("/b/prod-v1.dump".into()),
            rows: vec![["1".into(), "a".into(), "3 ms".into(), "ok".into()]],
            version: Some(1),
            ..Log::default()
        };
        let s = summary("migrate (prod)".into(), &log, &[(2, "b".into())]);
        assert_eq!(
            s.rows,
            [vec!["1", "a", "3 ms", "ok"], vec!["2", "b", "", "not run"]]
        );
        assert_eq!(
            s.notes,
            [
                "Approved by **alice** via github-issue for plan `h`",
                "Backup (verified): `/b/prod-v1.dump`",
                "Database version: 1"
            ]
        );
    }

    #[test]
    fn the_dry_run_header_says_count_direction_target_and_hash() {
        let files = crate::plan::migrate::pending::tests::files(&[("0001_a.sql", "select 1;")]);
        let p = crate::plan::migrate::pending(
            &crate::plan::migrate::Goal::Up { target: Some(1) },
            &[],
            &files,
            &[],
            "m",
        )
        .unwrap();
        assert_eq!(
            dry_run_header(&p, Some(1), "H"),
            "1 migration(s) would run up (up to version 1); plan hash H\n"
        );
    }
}
