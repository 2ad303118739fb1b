//! `deploy-action promote --from staging --to production [--only SERVICE...]`: deploys to the
//! target exactly the images of the source's last successful release (shipped to the target's
//! hosts when missing, never rebuilt), behind the target's approval gate, through the `up` runner.
//!
//! Stays out of compose handling (the `up` runner) and of the database (prints the `migrate`
//! command when the versions differ).

use super::Ctx;
use super::up::{connect, lock_owner};
use crate::approval::{self, Gate, PlanToApprove};
use crate::deploy::{HostDeploy, UpRequest};
use crate::env_vars;
use crate::error::{Error, Result};
use crate::ledger;
use crate::manifest::{Approval, Host};
use crate::state::StatePaths;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Duration;

pub fn run(from: &str, to: &str, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let names: Vec<&str> = m.environments.keys().map(String::as_str).collect();
    let env_of = |n: &str| {
        m.environments.get(n).cloned().ok_or_else(|| {
            Error::usage_help(
                format!("unknown environment `{n}`"),
                format!("environments in the manifest: {}", names.join(", ")),
            )
        })
    };
    let source = env_of(from)?;
    let target = env_of(to)?;
    if from == to {
        return Err(Error::usage("--from and --to name the same environment"));
    }
    if let Some(pf) = &target.promote_from {
        if pf != from {
            return Err(Error::usage(format!(
                "environment `{to}` is promoted from `{pf}` (promote_from), not from `{from}`"
            )));
        }
    }
    let report = &ctx.report;
    let Some(first) = source.hosts.first() else {
        return Err(Error::usage(format!("environment `{from}` has no hosts")));
    };
    let mut ex = connect(first, report)?;
    let src = ledger::read(ex.as_mut(), &source.dir)?;
    let Some(release) = ledger::current(&src.ledger.releases).cloned() else {
        return Err(Error::StageFailed(format!(
            "nothing to promote: environment `{from}` has no successful (live) release"
        )));
    };

    let by_compose: BTreeMap<&str, &str> = m
        .services
        .iter()
        .map(|(k, s)| (s.compose_service.as_str(), k.as_str()))
        .collect();
    let mut services = Vec::new();
    let mut images = BTreeMap::new();
    let mut ids = BTreeMap::new();
    // Every service of the source as of its current release (a release may change only some).
    for (cs, (_, st)) in ledger::unit_versions(&src.ledger.releases).services {
        let Some(key) = by_compose.get(cs.as_str()) else {
            continue;
        };
        if !ctx.settings.only.is_empty() && !ctx.settings.only.iter().any(|o| o == key) {
            continue;
        }
        services.push(key.to_string());
        ids.insert(cs.clone(), st.image_id.clone());
        images.insert(cs, st.image.clone());
    }
    let text = images
        .iter()
        .map(|(s, i)| format!("{s}: {i} ({})", ids[s]))
        .collect::<Vec<_>>()
        .join("\n");
    report.stage_start("promote", Some(to));
    report.info(&format!(
        "promoting release {} of {from} ({}) to {to}:\n{text}",
        release.number,
        &release.sha[..release.sha.len().min(12)]
    ));
    if target.approval == Approval::Required {
        let hash = blake3::hash(format!("{from}\n{to}\n{}\n{text}", release.sha).as_bytes())
            .to_hex()
            .to_string();
        let gate = Gate {
            approvers: target.approvers.clone(),
            timeout: Duration::from_secs(30 * 60),
        };
        approval::obtain(
            report,
            &gate,
            &PlanToApprove {
                env: to,
                action: "promote",
                hash: &hash,
                text: &text,
            },
        )?;
    }
    if services.is_empty() {
        report.info("promote: no services to promote");
        return Ok(());
    }
    let req = UpRequest {
        env: to.to_string(),
        services,
        images: images.clone(),
        user_images: BTreeSet::new(),
        force: false,
        lock_wait: None,
        dry_run: ctx.settings.dry_run,
        yes: ctx.settings.yes,
        owner: lock_owner("promote", &release.sha),
        repo_root: match ctx.settings.manifest_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => ".".into(),
        },
        compose_pref: env_vars::get(env_vars::DEPLOY_COMPOSE),
        interactive: std::io::stdin().is_terminal(),
    };
    for host in &target.hosts {
        let mut ex = connect(host, report)?;
        if *host != Host::Local && !req.dry_run {
            for image in images.values() {
                crate::deploy::ship::ship(ex.as_mut(), report, image)?;
            }
        }
        let hd = HostDeploy {
            ex: ex.as_mut(),
            report,
            host: host.clone(),
            env: &target,
            manifest: &m,
            req: &req,
        };
        let r = hd.run()?;
        if !r.ok {
            return Err(Error::StageFailed(format!(
                "promote failed on {}; the previous version is serving",
                host.label()
            )));
        }
        // The exact artifacts: the recorded image ids must be the source's.
        let after = ledger::read(ex.as_mut(), &target.dir)?;
        if let Some(mut new) = ledger::current(&after.ledger.releases).cloned() {
            for (cs, id) in &ids {
                let have = new
                    .services
                    .get(cs)
                    .map(|s| s.image_id.as_str())
                    .unwrap_or("");
                if !id.is_empty() && have != id {
                    return Err(Error::StageFailed(format!(
                        "{}: {cs} runs image {have}, not {id} from {from}",
                        host.label()
                    )));
                }
            }
            new.promoted_from = Some(format!("{from}/{}", release.number));
            let bytes = serde_json::to_vec_pretty(&new).map_err(anyhow::Error::from)?;
            ex.upload(
                &StatePaths::new(&target.dir).release(new.number),
                &bytes,
                0o644,
            )?;
            if host == target.hosts.last().unwrap() {
                ledger::record::record_release(ctx, &target, &new);
                report.output("release", &new.number.to_string());
                report.info(&format!(
                    "{to} is on release {} = release {} of {from}",
                    new.number, release.number
                ));
            }
        }
    }
    if let Some(v) = &release.migration_version {
        report.warn(&format!(
            "{from} ran with migration {v}; apply it on {to} through the gate: deploy-action migrate --env {to}"
        ));
    }
    if !release.pages.is_empty() {
        report.warn(
            "Pages sites are not promoted by this build; run `deploy-action pages` for the target",
        );
    }
    Ok(())
}
