//! `deploy-action status --env E [--json]`: the current release, each unit's version, the lock
//! holder (with its heartbeat's age, and whether it looks stale) and the last 10 releases, read
//! from every host of the environment.
//!
//! Changes nothing. Stays out of deciding anything: the choices live in `ledger/`.

use crate::context::Ctx;
use crate::error::Result;
use crate::ledger::lock;
use crate::ledger::{self, store};
use crate::report::summary::Summary;
use crate::state::{LockOwner, ReleaseRecord};
use serde_json::{Value, json};

/// How many releases the history shows.
pub const HISTORY: usize = 10;

pub fn run(ctx: &Ctx) -> Result<()> {
    let manifest = ctx.load_manifest()?;
    let env = ctx.settings.environment(&manifest)?;
    let loaded = store::load(ctx, env)?;
    let view = View::new(&env.name, &env.url, &loaded);
    if ctx.report.json() {
        ctx.report.json_document(&view.json());
        return Ok(());
    }
    ctx.report.info(&view.headline());
    let units = view.units_table();
    if !units.rows.is_empty() {
        ctx.report.summary(&units);
    }
    ctx.report.summary(&view.history_table());
    Ok(())
}

/// What `status` shows of one environment, read from its records and hosts.
struct View<'a> {
    env: &'a str,
    url: &'a Option<String>,
    loaded: &'a store::Loaded,
    current: Option<&'a ReleaseRecord>,
    lock: Option<&'a LockOwner>,
    units: ledger::Units,
    /// The last [`HISTORY`] releases, newest first.
    history: Vec<&'a ReleaseRecord>,
}

impl<'a> View<'a> {
    fn new(env: &'a str, url: &'a Option<String>, loaded: &'a store::Loaded) -> View<'a> {
        let releases = &loaded.releases;
        View {
            env,
            url,
            loaded,
            current: ledger::current(releases),
            lock: loaded.hosts.iter().find_map(|(_, s)| s.lock.as_ref()),
            units: ledger::unit_versions(releases),
            history: releases.iter().rev().take(HISTORY).collect(),
        }
    }

    /// The `--json` document.
    fn json(&self) -> Value {
        let (env, units, loaded) = (self.env, &self.units, self.loaded);
        json!({
            "env": env,
            "url": self.url,
            "current": self.current.map(|r| json!({"number": r.number, "sha": r.sha, "created_at": r.created_at, "actor": r.actor, "tag": ledger::tag_name(env, r.number), "promoted_from": r.promoted_from})),
            "services": units.services.iter().map(|(n, (rel, s))| (n.clone(), json!({"release": rel, "image": s.image, "image_id": s.image_id, "digest": s.digest}))).collect::<serde_json::Map<String, Value>>(),
            "pages": units.pages.iter().map(|(n, (rel, p))| (n.clone(), json!({"release": rel, "project": p.project, "deployment_id": p.deployment_id, "url": p.url, "alias_url": p.alias_url, "environment": p.environment, "branch": p.branch}))).collect::<serde_json::Map<String, Value>>(),
            "migration": units.migration.as_ref().map(|(rel, v)| json!({"release": rel, "version": v})),
            "lock": self.lock.map(lock_json),
            "releases": self.history.iter().map(|r| json!({"number": r.number, "status": ledger::status_word(r.status.0), "sha": r.sha, "created_at": r.created_at, "finished_at": r.finished_at, "actor": r.actor, "run_url": r.run_url, "promoted_from": r.promoted_from, "notes": r.notes})).collect::<Vec<_>>(),
            "source": match loaded.source { store::Source::Hosts => "hosts", store::Source::Tags => "tags" },
            "hosts": loaded.hosts.iter().map(|(l, s)| json!({"host": l, "current": ledger::current(&s.ledger.releases).map(|r| r.number), "releases": s.ledger.releases.len(), "problems": s.ledger.problems.iter().map(|p| json!({"file": p.file, "message": p.message})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        })
    }

    /// The environment, its current release and the lock, one line each.
    fn headline(&self) -> String {
        let mut lines = vec![format!("environment {}", self.env)];
        match self.current {
            Some(r) => lines.push(format!(
                "current release: {} ({}, {} by {}{})",
                r.number,
                ledger::short_sha(&r.sha),
                r.created_at,
                r.actor,
                r.promoted_from
                    .as_deref()
                    .map(|f| format!(", promoted from {f}"))
                    .unwrap_or_default()
            )),
            None => lines.push("current release: none".into()),
        }
        match self.lock {
            Some(o) => lines.push(format!(
                "lock: held by {} ({}, {}) since {}{}",
                o.actor,
                o.command,
                o.run_url,
                o.started_at,
                lock::liveness(o)
            )),
            None => lines.push("lock: free".into()),
        }
        lines.join("\n")
    }

    /// Each unit's version and the release since which it runs.
    fn units_table(&self) -> Summary {
        let units = &self.units;
        let mut table = Summary::new(
            format!("Units of {}", self.env),
            &["unit", "kind", "version", "release"],
        );
        for (n, (rel, s)) in &units.services {
            let id = if s.image_id.is_empty() {
                String::new()
            } else {
                format!(" ({})", ledger::short_id(&s.image_id))
            };
            table.row([
                n.clone(),
                "service".into(),
                format!("{}{id}", s.image),
                rel.to_string(),
            ]);
        }
        for (n, (rel, p)) in &units.pages {
            table.row([n.clone(), "pages".into(), p.url.clone(), rel.to_string()]);
        }
        if let Some((rel, v)) = &units.migration {
            table.row([
                "migrations".into(),
                "database".into(),
                v.clone(),
                rel.to_string(),
            ]);
        }
        table
    }

    /// The last releases, newest first.
    fn history_table(&self) -> Summary {
        let mut table = Summary::new(
            format!("Last releases of {}", self.env),
            &["release", "status", "sha", "created", "actor", "notes"],
        );
        for r in &self.history {
            table.row([
                r.number.to_string(),
                ledger::status_word(r.status.0).to_string(),
                ledger::short_sha(&r.sha).to_string(),
                r.created_at.clone(),
                r.actor.clone(),
                r.notes.join("; "),
            ]);
        }
        if self.history.is_empty() {
            table.note("no releases recorded yet");
        }
        table
    }
}

/// The lock owner as `status --json` shows it: the owner file's fields, the heartbeat's age in
/// seconds and, when it looks stale, why.
fn lock_json(o: &LockOwner) -> Value {
    let mut v = json!(o);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "heartbeat_age_secs".into(),
            json!(lock::heartbeat_age(o).map(|a| a.as_secs())),
        );
        map.insert("stale".into(), json!(lock::staleness(o)));
    }
    v
}
