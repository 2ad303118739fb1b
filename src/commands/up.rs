//! `deploy-action up` and `deploy-action lock`: resolve the services, images and hosts, then run
//! [`HostDeploy`](crate::deploy::HostDeploy) host by host (stop at the first failing host), and
//! report the per-host × service matrix, the job summary and the outputs.

use super::Ctx;
use crate::cli::{LockAction, UpArgs};
use crate::cmd::{Cmd, docker_engine as de};
use crate::deploy::{self, HostDeploy, HostResult, UpRequest, lock};
use crate::env_vars;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::exec::ssh::{SshExecutor, SshTarget};
use crate::ledger::record::Outcome;
use crate::manifest::{Build, Host, Manifest};
use crate::plan::up as pu;
use crate::report::Summary;
use crate::state::{LockOwner, StatePaths};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Opens an executor for a host: child processes for `local`, one SSH session otherwise (strict
/// host-key checking; notices such as an accepted new key go to the report).
pub fn connect(host: &Host, report: &crate::report::Report) -> Result<Box<dyn Executor>> {
    match host {
        Host::Local => Ok(Box::new(LocalExecutor)),
        Host::Ssh { user, host, port } => Ok(Box::new(SshExecutor::connect(
            &SshTarget {
                user: user.clone(),
                host: host.clone(),
                port: *port,
            },
            &|w: &str| report.warn(w),
        )?)),
    }
}

fn repo_root(ctx: &Ctx) -> PathBuf {
    match ctx.settings.manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The git sha being deployed: GITHUB_SHA, else `git rev-parse HEAD` in the repository.
pub fn git_sha(root: &std::path::Path) -> String {
    if let Some(s) = env_vars::get(env_vars::GITHUB_SHA) {
        return s;
    }
    LocalExecutor
        .capture(
            &Cmd::new("git")
                .args(["rev-parse", "HEAD"])
                .cwd(root.to_string_lossy()),
        )
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout_str().trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Who is deploying, from where.
pub fn lock_owner(command: &str, sha: &str) -> LockOwner {
    let run_url = crate::ledger::record::run_url().unwrap_or_else(|| "local".into());
    LockOwner {
        run_url,
        actor: env_vars::actor(),
        sha: sha.into(),
        started_at: deploy::clock::now_rfc3339(),
        command: command.into(),
        hostname: lock::this_hostname(),
        pid: std::process::id(),
    }
}

/// The manifest services to deploy: `--only` (services among the names), `--all`, the `--image`
/// services, or the services the git changes affect.
fn select(
    m: &Manifest,
    ctx: &Ctx,
    root: &std::path::Path,
    image_svcs: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let all: Vec<String> = m.services.keys().cloned().collect();
    if !ctx.settings.only.is_empty() {
        let units: Vec<&str> = m.units().into_iter().map(|(n, _)| n).collect();
        for o in &ctx.settings.only {
            if !units.contains(&o.as_str()) {
                let help = match crate::diag::suggest::closest(o, units.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? services: {}", all.join(", ")),
                    None => format!("services: {}", all.join(", ")),
                };
                return Err(Error::usage_help(
                    format!("--only: no unit named `{o}`"),
                    help,
                ));
            }
        }
        let mut v: Vec<String> = all
            .iter()
            .filter(|s| ctx.settings.only.contains(s) || image_svcs.contains(*s))
            .cloned()
            .collect();
        v.dedup();
        return Ok(v);
    }
    if !ctx.settings.all && !image_svcs.is_empty() {
        return Ok(all.into_iter().filter(|s| image_svcs.contains(s)).collect());
    }
    if ctx.settings.all {
        return Ok(all);
    }
    // Neither --only nor --all: the services the git changes affect (`paths:` globs).
    let affected = crate::changes::detect(m, root, ctx.settings.base.as_deref(), false, &[])?;
    ctx.report.info(&format!(
        "up: affected services: {} ({})",
        if affected.units.is_empty() {
            "none".to_string()
        } else {
            affected.units.join(", ")
        },
        affected.reason.describe()
    ));
    Ok(all.into_iter().filter(|s| affected.contains(s)).collect())
}

pub fn run(args: &UpArgs, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    let lock_wait = args
        .lock_wait
        .as_deref()
        .map(lock::parse_duration)
        .transpose()
        .map_err(Error::usage)?;
    let overrides = pu::parse_image_overrides(&args.images).map_err(Error::usage)?;
    for svc in overrides.keys() {
        if !m.services.contains_key(svc) {
            let names: Vec<&str> = m.services.keys().map(String::as_str).collect();
            return Err(Error::usage_help(
                format!("--image: no service named `{svc}`"),
                format!("services: {}", names.join(", ")),
            ));
        }
    }
    let image_svcs: BTreeSet<String> = overrides.keys().cloned().collect();
    let root = repo_root(ctx);
    let services = select(&m, ctx, &root, &image_svcs)?;
    if services.is_empty() {
        report.info("up: no services selected; nothing to do");
        return Ok(());
    }
    let sha = git_sha(&root);

    // compose service → image: --image first, then images built for this sha.
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut user_images = BTreeSet::new();
    for (svc, image) in &overrides {
        let cs = m.services[svc].compose_service.clone();
        user_images.insert(cs.clone());
        images.insert(cs, image.clone());
    }
    let mut built: Vec<String> = Vec::new();
    if !args.no_build {
        for svc in &services {
            let s = &m.services[svc];
            if let (
                Some(Build::Docker {
                    context,
                    dockerfile,
                    image,
                    ..
                }),
                false,
            ) = (&s.build, images.contains_key(&s.compose_service))
            {
                let tag = format!("{image}:{sha}");
                let ctx_dir = root.join(context).to_string_lossy().into_owned();
                let cmd = de::build(&ctx_dir, dockerfile, &tag);
                if ctx.settings.dry_run {
                    report.info(&format!("local: would run {}", cmd.display()));
                } else {
                    report.group_start(&format!("build {svc}: {tag}"));
                    let status =
                        LocalExecutor.run(&cmd, None, &mut |st, l| report.relay(svc, st, l))?;
                    report.group_end();
                    if status != 0 {
                        return Err(Error::StageFailed(format!(
                            "docker build of {svc} failed (exit {status})"
                        )));
                    }
                }
                images.insert(s.compose_service.clone(), tag.clone());
                built.push(tag);
            }
        }
    }

    let req = UpRequest {
        env: env.name.clone(),
        services: services.clone(),
        images,
        user_images,
        force: args.force,
        lock_wait,
        dry_run: ctx.settings.dry_run,
        yes: ctx.settings.yes,
        owner: lock_owner("up", &sha),
        repo_root: root,
        compose_pref: env_vars::get(env_vars::DEPLOY_COMPOSE),
        interactive: std::io::stdin().is_terminal(),
        notes: crate::ledger::record::reason()
            .map(|r| format!("reason: {r}"))
            .into_iter()
            .collect(),
    };
    report.stage_start("up", Some(&env.name));
    let deployment = crate::ledger::record::Deployment::start(ctx, &env, &sha, "deploy");
    let mut results: Vec<HostResult> = Vec::new();
    let mut failure: Option<Error> = None;
    for host in &env.hosts {
        let mut ex = connect(host, report)?;
        if !built.is_empty() && *host != Host::Local && !req.dry_run {
            for image in &built {
                if let Err(e) = deploy::ship::ship(ex.as_mut(), report, image) {
                    failure = Some(e);
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
        }
        let hd = HostDeploy {
            ex: ex.as_mut(),
            report,
            host: host.clone(),
            env: &env,
            manifest: &m,
            req: &req,
        };
        match hd.run() {
            Ok(r) => {
                let ok = r.ok;
                let failed: Vec<String> = r
                    .services
                    .iter()
                    .filter(|sv| sv.result != "deployed")
                    .map(|sv| format!("{} {}", sv.service, sv.result))
                    .collect();
                let rolled_back = r.rolled_back;
                results.push(r);
                if !ok {
                    let later = env.hosts.len() > results.len();
                    failure = Some(Error::StageFailed(format!(
                        "up failed on {}: {}{}{}",
                        host.label(),
                        failed.join(", "),
                        if rolled_back {
                            "; the previous version is serving"
                        } else {
                            ""
                        },
                        if later {
                            "; later hosts were not touched"
                        } else {
                            ""
                        }
                    )));
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // The release ledger: tags of the release just written, and the GitHub deployment's status.
    let outcome = match results.first().and_then(|r| r.record.as_ref()) {
        Some(r) => Outcome::Release(r),
        None => Outcome::Failed,
    };
    deployment.finish(ctx, &env, outcome, None);
    summarize(ctx, &env.name, &env.hosts, &results);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn summarize(ctx: &Ctx, env: &str, hosts: &[Host], results: &[HostResult]) {
    let report = &ctx.report;
    let mut s = Summary::new(
        format!("up {env}"),
        &[
            "host",
            "service",
            "old image",
            "new image",
            "health",
            "duration",
            "result",
        ],
    );
    for r in results {
        for sv in &r.services {
            s.row([
                r.host.clone(),
                sv.service.clone(),
                sv.old_image.clone(),
                sv.new_image.clone(),
                sv.health.clone(),
                format!("{:.1}s", sv.duration_secs),
                sv.result.clone(),
            ]);
        }
    }
    for h in hosts.iter().skip(results.len()) {
        s.row([
            h.label(),
            "-".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "not run".into(),
        ]);
    }
    for r in results {
        if let Some(n) = r.release {
            s.note(format!(
                "{}: release {n}{}",
                r.host,
                if r.rolled_back { " (rolled back)" } else { "" }
            ));
        }
        for sv in r.services.iter().filter(|sv| !sv.rollback.is_empty()) {
            s.note(format!(
                "roll back {} on {} by hand: `{}`",
                sv.service, r.host, sv.rollback
            ));
        }
    }
    report.summary(&s);
    let release = results.iter().filter_map(|r| r.release).max();
    let services: serde_json::Value = results
        .iter()
        .flat_map(|r| r.services.iter().map(move |sv| (r, sv)))
        .map(|(r, sv)| {
            serde_json::json!({"host": r.host, "service": sv.service, "old": sv.old_image,
                "new": sv.new_image, "health": sv.health, "result": sv.result})
        })
        .collect();
    if let Some(n) = release {
        report.output("release", &n.to_string());
    }
    report.output("services", &services.to_string());
    if report.json() {
        report.json_document(&serde_json::json!({
            "env": env, "release": release, "services": services,
            "hosts": results,
        }));
    }
}

pub fn lock(action: LockAction, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    let paths = StatePaths::new(&env.dir);
    let mut held = Vec::new();
    for host in &env.hosts {
        let mut ex = connect(host, report)?;
        match lock::status(ex.as_mut(), &paths)? {
            Some(owner) => {
                report.info(&format!(
                    "{}: {} lock {}",
                    host.label(),
                    env.name,
                    lock::describe(&owner)
                ));
                held.push(host.clone());
            }
            None => report.info(&format!("{}: {} lock is free", host.label(), env.name)),
        }
    }
    if action == LockAction::Status || held.is_empty() {
        return Ok(());
    }
    if ctx.settings.dry_run {
        report.info(&format!(
            "would run on each holding host: {}",
            de::rm_rf(&paths.lock_dir()).display()
        ));
        return Ok(());
    }
    if !ctx.settings.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::usage_help(
                "releasing a lock another run may still hold needs a confirmation",
                "pass --yes to confirm without a terminal",
            ));
        }
        report.info("Release the lock? A deploy still running would lose its protection. [y/N]");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Error::usage("cancelled: the lock was left in place"));
        }
    }
    let owner = lock_owner("lock release", "-");
    for host in &held {
        let mut ex = connect(host, report)?;
        lock::release(ex.as_mut(), &paths)?;
        let entry = crate::state::AuditEntry {
            time: deploy::clock::now_rfc3339(),
            actor: owner.actor.clone(),
            run_url: owner.run_url.clone(),
            action: "lock.release".into(),
            env: env.name.clone(),
            result: "released".into(),
            ..Default::default()
        };
        let line = serde_json::to_string(&entry).unwrap_or_default();
        let _ = ex.capture(&de::append(&paths.audit_log(), &line));
        report.info(&format!("{}: {} lock released", host.label(), env.name));
    }
    Ok(())
}
