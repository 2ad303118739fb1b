//! `plan`: what every stage would do for each affected unit, with the exact commands and the host
//! they run on. No side effects (git and `up`'s hosts are only read: `up`'s steps are planned
//! from the same inspection `up` makes, so they are the steps `up` walks). With `--promote` or
//! `--rollback [TO]` it plans that run instead: what goes where is chosen by the same code the
//! command calls (`deploy/release/choose_*.rs`, reading the records), and its steps are the same
//! plan (`plan/release.rs`) the command walks.

mod release;

use super::units::Loaded;
use crate::context::Ctx;
use crate::deploy::UpRequest;
use crate::error::Result;
use crate::ledger::identity::{git_sha, lock_owner};
use crate::manifest::Environment;
use crate::plan::stages::{self, PlanInput};
use crate::plan::up::UpHosts;
use crate::report::Summary;
use crate::settings::PlanSettings;
use std::collections::BTreeMap;

pub fn run(which: &PlanSettings, ctx: &Ctx) -> Result<()> {
    match which {
        PlanSettings::Changes => changes(ctx),
        PlanSettings::Promote => release_run(ctx, release::promote(ctx)?),
        PlanSettings::Rollback { to } => release_run(ctx, release::rollback(ctx, to.as_deref())?),
    }
}

/// A promote or rollback planned: the table of what changes, then its steps.
fn release_run(ctx: &Ctx, plan: release::Planned) -> Result<()> {
    let r = &ctx.report;
    if ctx.settings.json {
        let mut doc = plan.json.clone();
        doc["steps"] = serde_json::to_value(&plan.steps).unwrap_or_default();
        r.json_document(&doc);
    }
    r.stage_start("plan", Some(&plan.env));
    let mut summary = Summary::new(plan.title.clone(), &["unit", "kind", "from", "to"]);
    for row in &plan.rows {
        summary.row(row.clone());
    }
    for n in &plan.notes {
        summary.note(n.clone());
    }
    r.summary(&summary);
    if plan.steps.is_empty() {
        r.info(&format!("\n{}: nothing would run", plan.stage));
    } else {
        r.info(&format!("\n{} would run:", plan.stage));
    }
    print_steps(ctx, plan.steps.iter());
    Ok(())
}

/// Steps, one a line: stage, where, what.
fn print_steps<'s>(ctx: &Ctx, steps: impl Iterator<Item = &'s crate::plan::Step> + Clone) {
    let cols = Columns::of(steps.clone());
    for s in steps {
        ctx.report.info(&cols.line(s));
    }
}

/// The widths of the stage and host columns of a step listing.
struct Columns {
    stage: usize,
    host: usize,
}

impl Columns {
    fn of<'s>(steps: impl Iterator<Item = &'s crate::plan::Step> + Clone) -> Columns {
        let widest = |f: &dyn Fn(&crate::plan::Step) -> usize| steps.clone().map(f).max();
        Columns {
            stage: widest(&|s| s.stage.len()).unwrap_or(0).max(6),
            host: widest(&|s| s.target.label().len()).unwrap_or(5).max(5),
        }
    }

    /// `  <stage> <host>  <what>`.
    fn line(&self, s: &crate::plan::Step) -> String {
        let (stage_width, width) = (self.stage, self.host);
        format!(
            "  {:<stage_width$} {:<width$}  {}",
            s.stage,
            s.target.label(),
            s.describe()
        )
    }
}

/// The change-driven stages: build, test, up, pages, migrate.
fn changes(ctx: &Ctx) -> Result<()> {
    let loaded = Loaded::load(ctx)?;
    let env = loaded.environment(ctx, true)?;
    let input = PlanInput {
        manifest: &loaded.manifest,
        env,
        affected: &loaded.affected,
        root: loaded.cmd_root(),
    };
    let up = env.map(|e| up_hosts(ctx, &loaded, e));
    let plan = stages::plan_all_with(&input, up.as_ref());
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
        print_plan(ctx, &loaded, env, &plan);
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

/// What `up` would deploy (the affected services, the images it would build at this commit) and
/// what its hosts are now, read as `up` reads them; nothing is read when no service is affected.
fn up_hosts(ctx: &Ctx, loaded: &Loaded, env: &Environment) -> UpHosts {
    let m = &loaded.manifest;
    let units = &loaded.affected.units;
    let mut view = UpHosts::from_manifest(m, env, units, &loaded.affected.head);
    let services: Vec<String> = loaded
        .affected
        .units
        .iter()
        .filter(|u| m.services.contains_key(*u))
        .cloned()
        .collect();
    if services.is_empty() {
        return view;
    }
    let sha = git_sha(&loaded.root);
    let builds = crate::plan::up::host::docker_builds(m, &services, &sha, &BTreeMap::new());
    let mut req = UpRequest::recorded(
        &env.name,
        services,
        builds
            .iter()
            .map(|b| (b.compose_service.clone(), b.tag.clone()))
            .collect(),
        lock_owner("plan", &sha),
        loaded.root.clone(),
        Vec::new(),
    );
    req.built = builds.into_iter().map(|b| b.tag).collect();
    let mut input = crate::deploy::fanout::up_input(env, m, &req);
    input.secrets = view.input.secrets.clone();
    view.input = input;
    view.hosts = crate::deploy::fanout::inspect_hosts(&ctx.report, env, m, &req);
    view
}

/// The plan on the console: the environment's shared steps, then each unit's.
fn print_plan(ctx: &Ctx, loaded: &Loaded, env: Option<&Environment>, plan: &crate::plan::Plan) {
    let r = &ctx.report;
    let a = &loaded.affected;
    r.stage_start("plan", env.map(|e| e.name.as_str()));
    r.note(&loaded.describe());
    let cols = Columns::of(plan.steps.iter());
    // Steps that belong to the environment rather than a unit: lock, compose files, record.
    let shared: Vec<_> = plan.steps.iter().filter(|s| s.unit.is_none()).collect();
    if let (Some(e), false) = (env, shared.is_empty()) {
        r.info(&format!(
            "\nenvironment {} (around the units' steps)",
            e.name
        ));
        for s in shared {
            r.info(&cols.line(s));
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
            r.info(&cols.line(s));
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
