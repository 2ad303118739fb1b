//! `plan --promote` and `plan --rollback [TO]`: what `promote --to ENV` and
//! `rollback --env ENV [--to TO]` would run, chosen by the code they call (reading the records,
//! changing nothing) and planned by the plan they walk (`plan/release.rs`).

use crate::context::Ctx;
use crate::deploy::release::{choose_promote, choose_rollback};
use crate::error::{Error, Result};
use crate::ledger;
use crate::plan::Step;
use serde_json::json;

/// A promote or rollback as `plan` shows it.
pub struct Planned {
    pub stage: &'static str,
    pub env: String,
    /// The table's title, and its rows: unit, kind, from, to.
    pub title: String,
    pub rows: Vec<[String; 4]>,
    pub notes: Vec<String>,
    /// The `--json` document, but its steps.
    pub json: serde_json::Value,
    pub steps: Vec<Step>,
}

/// The promotion into `--env` from its `promote_from`, as `promote --to ENV` chooses it.
pub fn promote(ctx: &Ctx) -> Result<Planned> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?;
    if env.promote_from.is_none() {
        // `promote --from` has no twin here: plan plans the promotion deploy.yml declares.
        return Err(Error::usage_help(
            format!("promote to `{}` needs a source environment", env.name),
            format!(
                "set `promote_from:` on environment `{}` in deploy.yml: plan --promote plans the promotion from it",
                env.name
            ),
        ));
    }
    let target = env.name.clone();
    let c = choose_promote::choose(ctx, &m, None, Some(&target))?;
    let p = &c.promotion;
    let mut notes = Vec::new();
    // `promote` stops after its table when nothing differs: it runs no step.
    let steps = if p.rows.is_empty() {
        notes.push(format!(
            "{} already runs the artifacts of release {} of {}",
            c.target.name, c.release.number, c.source.name
        ));
        Vec::new()
    } else {
        let input = choose_promote::plan_input(&m, &c.source, &c.target, &c.release, p);
        crate::plan::release::steps(&input)
    };
    Ok(Planned {
        stage: "promote",
        env: c.target.name.clone(),
        title: format!(
            "Promote release {} of {} ({}) to {}",
            c.release.number,
            c.source.name,
            ledger::short_sha(&c.release.sha),
            c.target.name
        ),
        rows: p.rows.clone(),
        notes,
        json: json!({
            "env": c.target.name,
            "run": "promote",
            "from": c.source.name,
            "release": c.release.number,
            "changes": rows_json(&p.rows),
        }),
        steps,
    })
}

/// A rollback of `--env` to `to` (else the default release), as `rollback` chooses it.
pub fn rollback(ctx: &Ctx, to: Option<&str>) -> Result<Planned> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    crate::changes::select_only(&m, &ctx.settings.only)?;
    let choice = choose_rollback::choose(ctx, &m, &env, to)?;
    let rows: Vec<[String; 4]> = choice
        .changes
        .iter()
        .map(|c| [c.unit.clone(), c.kind.into(), c.from.clone(), c.to.clone()])
        .collect();
    let mut notes = Vec::new();
    if rows.is_empty() {
        notes.push(format!(
            "release {} runs the same images and Pages deployments as the current release",
            choice.target.number
        ));
    }
    let hint = choose_rollback::migration_hint(&env, &choice.then, &choice.now, &ctx.settings.only);
    notes.extend(hint);
    let steps = crate::plan::release::steps(&choose_rollback::plan_input(&m, &env, &choice));
    Ok(Planned {
        stage: "rollback",
        env: env.name.clone(),
        title: format!(
            "Rollback of {} to release {}",
            env.name, choice.target.number
        ),
        json: json!({
            "env": env.name,
            "run": "rollback",
            "release": choice.target.number,
            "abandoned": choice.abandoned.as_ref().map(|a| a.number),
            "changes": rows_json(&rows),
        }),
        rows,
        notes,
        steps,
    })
}

/// The table's rows as `--json` lists them.
fn rows_json(rows: &[[String; 4]]) -> serde_json::Value {
    rows.iter()
        .map(|[unit, kind, from, to]| json!({"unit": unit, "kind": kind, "from": from, "to": to}))
        .collect()
}
