//! `deploy-action rollback --env E [--to N|TAG|SHA] [--only SERVICE...]`: puts the compose
//! services back on an earlier release's images through the `up` runner (lock, health gate,
//! release record, audit), marks the abandoned release bad and moves the pointer tag.
//!
//! Stays out of compose handling (the `up` runner does it) and never touches the database:
//! when migration versions differ it prints the `migrate down` command to run.

use super::Ctx;
use super::up::{connect, lock_owner};
use crate::deploy::{HostDeploy, UpRequest};
use crate::env_vars;
use crate::error::{Error, Result};
use crate::ledger::{self, Selector, TargetError};
use crate::state::{ReleaseStatus, ReleaseStatusField, StatePaths};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

pub fn run(to: Option<&str>, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    let selector = to.map(Selector::parse).transpose().map_err(Error::usage)?;
    let Some(first) = env.hosts.first() else {
        return Err(Error::usage(format!(
            "environment `{}` has no hosts",
            env.name
        )));
    };
    let mut ex = connect(first, report)?;
    let state = ledger::read(ex.as_mut(), &env.dir)?;
    let releases = state.ledger.releases;
    let target = match ledger::rollback_target(&env.name, &releases, selector.as_ref()) {
        Ok(t) => t.clone(),
        // Nothing to go back to is a state of the environment, not a typing error: exit 1.
        Err(e @ TargetError::Nothing(_)) => return Err(Error::StageFailed(e.to_string())),
        Err(e) => return Err(Error::usage(e.to_string())),
    };
    let abandoned = ledger::current(&releases).cloned();

    // compose service → manifest service key, for the runner.
    let by_compose: BTreeMap<&str, &str> = m
        .services
        .iter()
        .map(|(k, s)| (s.compose_service.as_str(), k.as_str()))
        .collect();
    let mut services = Vec::new();
    let mut images = BTreeMap::new();
    for (cs, st) in &target.services {
        let Some(key) = by_compose.get(cs.as_str()) else {
            report.warn(&format!(
                "release {}: service `{cs}` is no longer in the manifest; left alone",
                target.number
            ));
            continue;
        };
        if !ctx.settings.only.is_empty() && !ctx.settings.only.iter().any(|o| o == key) {
            continue;
        }
        services.push(key.to_string());
        let image = st.release_tag.clone().unwrap_or_else(|| st.image.clone());
        images.insert(cs.clone(), image);
    }
    for o in &ctx.settings.only {
        if !services.contains(o) && o != "migrations" && !m.sites.contains_key(o) {
            return Err(Error::usage(format!(
                "--only {o}: release {} has no service `{o}`",
                target.number
            )));
        }
    }
    report.stage_start("rollback", Some(&env.name));
    report.info(&format!(
        "rolling {} back from release {} to release {} ({})",
        env.name,
        abandoned
            .as_ref()
            .map(|r| r.number.to_string())
            .unwrap_or_else(|| "none".into()),
        target.number,
        &target.sha[..target.sha.len().min(12)]
    ));

    let mut failure = None;
    if !services.is_empty() {
        let req = UpRequest {
            env: env.name.clone(),
            services,
            images,
            user_images: BTreeSet::new(),
            force: true,
            lock_wait: None,
            dry_run: ctx.settings.dry_run,
            yes: ctx.settings.yes,
            owner: lock_owner("rollback", &target.sha),
            repo_root: match ctx.settings.manifest_path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => ".".into(),
            },
            compose_pref: env_vars::get(env_vars::DEPLOY_COMPOSE),
            interactive: std::io::stdin().is_terminal(),
        };
        for host in &env.hosts {
            let mut ex = connect(host, report)?;
            let hd = HostDeploy {
                ex: ex.as_mut(),
                report,
                host: host.clone(),
                env: &env,
                manifest: &m,
                req: &req,
            };
            match hd.run() {
                Ok(r) if r.ok => {}
                Ok(_) => {
                    failure = Some(format!("the rollback failed on {}", host.label()));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("the rollback failed on {}: {e}", host.label()));
                    break;
                }
            }
        }
    }
    if !target.pages.is_empty() {
        report.warn(&format!(
            "Pages sites of release {} ({}) were not rolled back: this build has no Pages rollback",
            target.number,
            target.pages.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(f) = failure {
        return Err(Error::StageFailed(f));
    }
    if ctx.settings.dry_run {
        return Ok(());
    }

    // Mark the abandoned release bad on every host.
    if let Some(bad) = &abandoned {
        let mut marked = bad.clone();
        marked.status = ReleaseStatusField(ReleaseStatus::Bad);
        marked.notes.push(format!(
            "abandoned by a rollback to release {}",
            target.number
        ));
        let text = serde_json::to_vec_pretty(&marked).map_err(anyhow::Error::from)?;
        for host in &env.hosts {
            let mut ex = connect(host, report)?;
            ex.upload(&StatePaths::new(&env.dir).release(bad.number), &text, 0o644)?;
        }
        report.info(&format!("release {} marked bad", bad.number));
    }

    // Migrations are never rolled back implicitly.
    let now = ledger::unit_versions(&releases).migration.map(|(_, v)| v);
    let then = ledger::unit_versions(
        &releases
            .iter()
            .filter(|r| r.number <= target.number)
            .cloned()
            .collect::<Vec<_>>(),
    )
    .migration
    .map(|(_, v)| v);
    if let (Some(now), Some(then)) = (&now, &then) {
        if now != then {
            report.warn(&format!(
                "the database is at migration {now}, release {} ran with {then}; migrations are never rolled back implicitly. To go back: deploy-action migrate --env {} down --to {then}",
                target.number, env.name
            ));
        }
    }

    // Move the pointer tag to the new release (the one the runner just wrote).
    let mut ex = connect(first, report)?;
    let after = ledger::read(ex.as_mut(), &env.dir)?;
    if let Some(new) = ledger::current(&after.ledger.releases) {
        let mut new = new.clone();
        new.notes
            .push(format!("rollback to release {}", target.number));
        ledger::record::record_release(ctx, &env, &new);
        report.output("release", &new.number.to_string());
        report.info(&format!(
            "{} is on release {} (the images of release {})",
            env.name, new.number, target.number
        ));
    }
    Ok(())
}
