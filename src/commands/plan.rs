//! `plan`: what every stage would do for each affected unit, with the exact commands and the host
//! they run on. No side effects (git is only read).

use super::units::Loaded;
use crate::context::Ctx;
use crate::error::Result;
use crate::plan::stages::{self, PlanInput};
use crate::report::Summary;

pub fn run(ctx: &Ctx) -> Result<()> {
    let loaded = Loaded::load(ctx)?;
    let env = loaded.environment(ctx, true)?;
    let input = PlanInput {
        manifest: &loaded.manifest,
        env,
        affected: &loaded.affected,
        root: loaded.cmd_root(),
    };
    let plan = stages::plan_all(&input);
    let a = &loaded.affected;
    let r = &ctx.report;

    r.output(
        "affected",
        &serde_json::to_string(&a.units).unwrap_or_else(|_| "[]".into()),
    );

    if ctx.settings.json {
        let doc = serde_json::json!({
            "affected": a.units,
            "base": a.base,
            "head": a.head,
            "env": env.map(|e| e.name.clone()),
            "reason": a.reason,
            "changed_files": a.changed_files,
            "steps": plan.steps,
        });
        r.json_document(&doc);
    } else {
        r.stage_start("plan", env.map(|e| e.name.as_str()));
        r.note(&loaded.describe());
        let width = plan
            .steps
            .iter()
            .map(|s| s.target.label().len())
            .max()
            .unwrap_or(5)
            .max(5);
        let stage_width = plan
            .steps
            .iter()
            .map(|s| s.stage.len())
            .max()
            .unwrap_or(0)
            .max(6);
        // Steps that belong to the environment rather than a unit: lock, compose files, record.
        let shared: Vec<_> = plan.steps.iter().filter(|s| s.unit.is_none()).collect();
        if let (Some(e), false) = (env, shared.is_empty()) {
            r.info(&format!(
                "\nenvironment {} (around the units' steps)",
                e.name
            ));
            for s in shared {
                r.info(&format!(
                    "  {:<stage_width$} {:<width$}  {}",
                    s.stage,
                    s.target.label(),
                    s.describe()
                ));
            }
        }
        for unit in &a.units {
            r.info(&format!("\n{unit} ({})", loaded.kind(unit)));
            let steps: Vec<_> = plan
                .steps
                .iter()
                .filter(|s| s.unit.as_deref() == Some(unit))
                .collect();
            if steps.is_empty() {
                r.info("  nothing to do in these stages");
            }
            for s in steps {
                r.info(&format!(
                    "  {:<stage_width$} {:<width$}  {}",
                    s.stage,
                    s.target.label(),
                    s.describe()
                ));
            }
        }
        let rest = loaded.unaffected();
        if !rest.is_empty() {
            r.note(&format!("\nunchanged: {}", rest.join(", ")));
        }
        if env.is_none() && !loaded.manifest.environments.is_empty() {
            r.note("pass --env ENV to see the deploy stages");
        }
    }

    let mut summary = Summary::new(
        match env {
            Some(e) => format!("plan ({})", e.name),
            None => "plan".to_string(),
        },
        &["unit", "stage", "host", "command"],
    );
    for s in &plan.steps {
        summary.row([
            s.unit.clone().unwrap_or_default(),
            s.stage.clone(),
            s.target.label(),
            format!("`{}`", s.describe()),
        ]);
    }
    summary.note(loaded.describe());
    if ctx.report.in_github_actions() {
        // The console already shows the plan; the job summary gets the table.
        ctx.report.summary_markdown_only(&summary);
    }
    Ok(())
}
