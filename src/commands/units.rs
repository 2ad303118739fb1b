//! What plan, build and test share: load the manifest, pick the environment, find the affected
//! units; and [`run_stage`], the local stage runner of `build` and `test`.
//!
//! The one module the command files share (none imports another).

use crate::changes::{self, Affected};
use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::error::{CommandFailure, Error, Noun, Result, STDERR_TAIL_LINES};
use crate::exec::local::LocalExecutor;
use crate::exec::{Executor, StderrTail};
use crate::manifest::{Environment, Manifest};
use crate::plan::stages::{PlanInput, StagePlanner};
use crate::plan::{Action, Step};
use crate::report::Summary;
use crate::settings::BuildSettings;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The manifest, where it lives, and the units this run acts on.
pub struct Loaded {
    pub manifest: Manifest,
    /// The repository root: the directory holding deploy.yml (`.` when it is the current one).
    pub root: PathBuf,
    pub affected: Affected,
}

impl Loaded {
    pub fn load(ctx: &Ctx) -> Result<Loaded> {
        let manifest = ctx.load_manifest()?;
        let root = ctx
            .settings
            .manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let s = &ctx.settings;
        let release = match &s.env {
            Some(_) => {
                crate::ledger::store::release_base(ctx, ctx.settings.environment(&manifest)?)
            }
            None => None,
        };
        let affected = changes::git::detect_from(
            &mut crate::exec::local::LocalExecutor,
            &manifest,
            &root,
            s.base.as_deref(),
            release.as_ref(),
            s.all,
            &s.only,
        )?;
        Ok(Loaded {
            manifest,
            root,
            affected,
        })
    }

    /// The working directory local commands get (`None`: the current directory already is the root).
    pub fn cmd_root(&self) -> Option<String> {
        (self.root != Path::new(".")).then(|| self.root.display().to_string())
    }

    /// The environment: required by `--env` when the manifest defines environments and `required`;
    /// otherwise the one named, if any.
    pub fn environment(&self, ctx: &Ctx, required: bool) -> Result<Option<&Environment>> {
        if ctx.settings.env.is_none() && (!required || self.manifest.environments.is_empty()) {
            return Ok(None);
        }
        ctx.settings.environment(&self.manifest).map(Some)
    }

    /// One line on how the units were chosen.
    pub fn describe(&self) -> String {
        let a = &self.affected;
        let total = self.manifest.units().len();
        let mut s = format!(
            "{} of {total} unit{} affected: {}",
            a.units.len(),
            if total == 1 { "" } else { "s" },
            a.reason.describe()
        );
        if matches!(a.reason, changes::Reason::Diff { .. }) {
            s.push_str(&format!(
                ", {} file{} changed",
                a.changed_files,
                if a.changed_files == 1 { "" } else { "s" }
            ));
        }
        for n in &a.notes {
            s.push_str(&format!("\n{n}"));
        }
        s
    }

    /// Units that are not affected, in manifest order.
    pub fn unaffected(&self) -> Vec<String> {
        self.manifest
            .units()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| !self.affected.contains(n))
            .collect()
    }

    /// The kind of a unit, as a word (`service`, `site`, `migrations`).
    pub fn kind(&self, unit: &str) -> &'static str {
        match self
            .manifest
            .units()
            .into_iter()
            .find(|(n, _)| *n == unit)
            .map(|(_, k)| k)
        {
            Some(crate::manifest::UnitKind::Service) => "service",
            Some(crate::manifest::UnitKind::Site) => "site",
            Some(crate::manifest::UnitKind::Migrations) => "migrations",
            None => "unit",
        }
    }
}

/// How one unit's command ended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// Not run: an earlier unit failed (without `--keep-going`).
    Skipped,
    /// The unit has no command for this stage.
    NothingToDo,
    /// `--dry-run`: printed, not run.
    DryRun,
}

impl Outcome {
    fn label(&self, exit_code: Option<i32>) -> String {
        match (self, exit_code) {
            (Outcome::Ok, _) => "ok".into(),
            (Outcome::Failed, Some(c)) => format!("FAILED (exit {c})"),
            (Outcome::Failed, None) => "FAILED (did not start)".into(),
            (Outcome::Skipped, _) => "skipped (an earlier unit failed)".into(),
            (Outcome::NothingToDo, _) => "nothing to do".into(),
            (Outcome::DryRun, _) => "dry run".into(),
        }
    }
}

/// One unit's result, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct UnitResult {
    pub unit: String,
    pub command: Option<String>,
    pub host: String,
    pub result: Outcome,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// Why a command could not start, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs one local stage (`build`, `test`) for the affected units.
pub fn run_stage(
    ctx: &Ctx,
    stage: &str,
    planner: StagePlanner,
    args: &BuildSettings,
) -> Result<()> {
    let loaded = Loaded::load(ctx)?;
    let env = loaded.environment(ctx, false)?;
    let input = PlanInput {
        manifest: &loaded.manifest,
        env,
        affected: &loaded.affected,
        root: loaded.cmd_root(),
    };
    let steps = planner(&input);
    announce_stage(ctx, stage, env, &loaded);
    let mut run = StageRun {
        ctx,
        stage,
        manifest: &loaded.manifest,
        keep_going: args.keep_going,
        failed: false,
        executor: LocalExecutor,
    };
    let results: Vec<UnitResult> = loaded
        .affected
        .units
        .iter()
        .filter_map(|unit| run.unit(unit, &steps))
        .collect();
    summarize_stage(ctx, stage, env, &loaded, &results);
    finish_stage(ctx, stage, env, &loaded, &results)
}

/// The stage's heading, how the units were chosen, and the `affected` output.
fn announce_stage(ctx: &Ctx, stage: &str, env: Option<&Environment>, loaded: &Loaded) {
    let r = &ctx.report;
    r.stage_start(
        if ctx.settings.dry_run {
            format!("{stage} (dry run)")
        } else {
            stage.to_string()
        }
        .as_str(),
        env.map(|e| e.name.as_str()),
    );
    r.note(&loaded.describe());
    // The same `affected` output as `plan` (a JSON array of unit names), written before any unit
    // runs so that it is there even when one fails.
    r.output(
        "affected",
        &serde_json::to_string(&loaded.affected.units).unwrap_or_else(|_| "[]".into()),
    );
}

/// One local stage under way: what it needs to run a unit's step, and whether a unit failed yet.
struct StageRun<'a> {
    ctx: &'a Ctx,
    stage: &'a str,
    manifest: &'a Manifest,
    keep_going: bool,
    /// A unit failed: the next ones are skipped unless `keep_going`.
    failed: bool,
    executor: LocalExecutor,
}

impl StageRun<'_> {
    /// The result of `unit`'s step in `steps`: nothing to do without one, printed in a dry run,
    /// skipped after a failure (without `--keep-going`), else run. `None` for a step that is not a
    /// command.
    fn unit(&mut self, unit: &str, steps: &[Step]) -> Option<UnitResult> {
        let Some(step) = steps.iter().find(|s| s.unit.as_deref() == Some(unit)) else {
            return Some(UnitResult {
                unit: unit.to_string(),
                command: None,
                host: "local".into(),
                result: Outcome::NothingToDo,
                exit_code: None,
                duration_ms: 0,
                error: None,
            });
        };
        let Action::Run { cmd } = &step.action else {
            return None;
        };
        let mut res = UnitResult {
            unit: unit.to_string(),
            command: Some(cmd.display()),
            host: step.target.label(),
            result: Outcome::DryRun,
            exit_code: None,
            duration_ms: 0,
            error: None,
        };
        if self.ctx.settings.dry_run {
            self.ctx
                .report
                .info(&format!("{unit}: would run: {}", cmd.display()));
        } else if self.failed && !self.keep_going {
            res.result = Outcome::Skipped;
        } else {
            self.run(step, cmd, &mut res);
        }
        Some(res)
    }

    /// Runs `cmd`, `step`'s command, relaying its output; records how it ended in `res`, and
    /// reports a failure with the command and its stderr tail.
    fn run(&mut self, step: &Step, cmd: &Cmd, res: &mut UnitResult) {
        let (r, stage, unit) = (&self.ctx.report, self.stage, res.unit.as_str());
        r.group_start(&format!("{stage} {unit}"));
        let spinner = r.step_start(&format!("{stage} {unit}"));
        let started = Instant::now();
        let cmd = cmd
            .clone()
            .scrub_env(crate::cmd::unit_child_scrub(self.manifest, unit));
        r.info(&format!("$ {}", cmd.display()));
        let mut tail = StderrTail::new(STDERR_TAIL_LINES);
        let executor = &mut self.executor;
        let status = r.relaying(|| {
            executor.run(&cmd, None, &mut |stream, line| {
                tail.keep(stream, line);
                r.relay(unit, stream, line)
            })
        });
        r.step_done(spinner);
        res.duration_ms = started.elapsed().as_millis() as u64;
        match status {
            Ok(code) => {
                res.result = if code == 0 {
                    Outcome::Ok
                } else {
                    Outcome::Failed
                };
                res.exit_code = Some(code);
            }
            Err(e) => {
                res.result = Outcome::Failed;
                res.error = Some(e.to_string());
            }
        }
        r.group_end();
        if res.result == Outcome::Failed {
            self.failed = true;
            self.report_failure(step, &cmd, res, &tail);
        }
    }

    /// Reports the failed command of `res`: why it could not start, or its status and stderr tail.
    fn report_failure(&self, step: &Step, cmd: &Cmd, res: &UnitResult, tail: &StderrTail) {
        let f = CommandFailure::new(&res.host, format!("{} {}", self.stage, res.unit), cmd)
            .unit(&res.unit)
            .origin(step.origin);
        let f = match (&res.error, res.exit_code) {
            (Some(why), _) => f.stderr(why),
            (None, code) => f.status(code.unwrap_or(-1)).stderr(tail.text()),
        };
        self.ctx.report_error(&f.into());
    }
}

/// The summary table: one row per unit, with how the units were chosen.
fn summarize_stage(
    ctx: &Ctx,
    stage: &str,
    env: Option<&Environment>,
    loaded: &Loaded,
    results: &[UnitResult],
) {
    let title = match env {
        Some(e) => format!("{stage} ({})", e.name),
        None => stage.to_string(),
    };
    let mut summary = Summary::new(title, &["unit", "host", "duration", "result"]);
    for res in results {
        summary.row([
            res.unit.clone(),
            res.host.clone(),
            if matches!(res.result, Outcome::Ok | Outcome::Failed) {
                format_duration(Duration::from_millis(res.duration_ms))
            } else {
                "-".into()
            },
            res.result.label(res.exit_code),
        ]);
    }
    if results.is_empty() {
        summary.note("No unit is affected: nothing to do.");
    }
    summary.note(loaded.describe());
    ctx.report.summary(&summary);
}

/// The `<stage>-failed` output, the `--json` document, and the stage's result: an error naming
/// the failed units, if any.
fn finish_stage(
    ctx: &Ctx,
    stage: &str,
    env: Option<&Environment>,
    loaded: &Loaded,
    results: &[UnitResult],
) -> Result<()> {
    let r = &ctx.report;
    let failed_units: Vec<String> = results
        .iter()
        .filter(|x| x.result == Outcome::Failed)
        .map(|x| x.unit.clone())
        .collect();
    r.output(
        &format!("{stage}-failed"),
        &serde_json::to_string(&failed_units).unwrap_or_default(),
    );
    if ctx.settings.json {
        r.json_document(&serde_json::json!({
            "stage": stage,
            "dry_run": ctx.settings.dry_run,
            "affected": loaded.affected.units,
            "base": loaded.affected.base,
            "head": loaded.affected.head,
            "env": env.map(|e| e.name.clone()),
            "results": results,
        }));
    }
    if failed_units.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed {
            stage: stage.to_string(),
            failed: failed_units,
            of: results.len(),
            noun: Noun::Unit,
        })
    }
}

/// `850ms`, `12.3s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn outcome_labels_and_json_names() {
        assert_eq!(Outcome::Failed.label(Some(2)), "FAILED (exit 2)");
        assert_eq!(
            serde_json::to_value(Outcome::NothingToDo).unwrap(),
            "nothing_to_do"
        );
    }
}
