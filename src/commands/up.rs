//! `deploy-action up`: resolve the services, images and hosts, check every host, take the
//! environment lock on all of them ([`EnvLock`]), then run [`HostDeploy`](crate::deploy::HostDeploy)
//! host by host (stop at the first failing host), release the lock on all, and report the
//! per-host × service matrix, the job summary and the outputs.

use crate::cmd::docker_engine as de;
use crate::context::Ctx;
use crate::deploy::{self, HostDeploy, HostResult, UpRequest};
use crate::env_vars;
use crate::error::{Error, Result};
use crate::exec;
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::ledger::identity::{git_sha, lock_owner};
use crate::ledger::lock::EnvLock;
use crate::ledger::record::Outcome;
use crate::manifest::{Build, Host, Manifest};
use crate::settings::UpSettings;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

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
        crate::changes::select_only(m, &ctx.settings.only)?;
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
    // Neither --only nor --all: the services the git changes since the live release (else the
    // event, else HEAD~1) affect (`paths:` globs).
    let env = ctx.settings.environment(m)?;
    let release = crate::ledger::store::release_base(ctx, env);
    let affected = crate::changes::git::detect_from(
        &mut crate::exec::local::LocalExecutor,
        m,
        root,
        ctx.settings.base.as_deref(),
        release.as_ref(),
        false,
        &[],
    )?;
    for n in &affected.notes {
        ctx.report.info(&format!("up: {n}"));
    }
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

pub fn run(args: &UpSettings, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    let lock_wait = args.lock_wait;
    let overrides = &args.images;
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
    let root = crate::ledger::store::repo_root(ctx);
    let services = select(&m, ctx, &root, &image_svcs)?;
    if services.is_empty() {
        report.info("up: no services selected; nothing to do");
        return Ok(());
    }
    for (local, _) in deploy::repo_uploads(&env, &root) {
        crate::context::inside_repo(&root, &local, "compose file")?;
    }
    // Every `secrets:` variable must be set: exit 2 before anything is built or changed.
    let secret_values = deploy::secrets::resolve(&m, &env, &|n| std::env::var(n).ok())?;
    // The deploy rules before anything is built: a refused run should not cost a build.
    let dirty = crate::guard::check_rules(ctx, &env, "up", &root)?;
    let sha = git_sha(&root);

    // compose service → image: --image first, then images built for this sha.
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut user_images = BTreeSet::new();
    for (svc, image) in overrides {
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
                let cmd = de::build(&ctx_dir, dockerfile, &tag)
                    .scrub_env(crate::cmd::unit_child_scrub(&m, svc));
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

    let prints = deploy::secrets::fingerprints(&m.project, &env.name, &secret_values);
    let plan = || {
        let mut p = change_plan(&env, &m, &services, &images, &built, &root, args.force);
        for (svc, names) in &prints {
            for (name, print) in names {
                p.text
                    .push_str(&format!("secret {name} for {svc}: {print}\n"));
            }
        }
        p
    };
    let adm = crate::guard::approve(ctx, &env, "up", dirty, &|| Ok(plan()))?;
    // Built again just before the first change, under the lock: the compose files, the commit,
    // the images.
    let confirm = || match adm.approval {
        Some(_) => adm.confirm(&plan()),
        None => Ok(()),
    };
    let mut notes: Vec<String> = crate::ledger::record::reason()
        .map(|r| format!("reason: {r}"))
        .into_iter()
        .collect();
    notes.extend(adm.notes());
    let req = UpRequest {
        env: env.name.clone(),
        services: services.clone(),
        images: images.clone(),
        user_images,
        force: args.force,
        lock_wait,
        dry_run: ctx.settings.dry_run,
        yes: ctx.settings.yes,
        owner: lock_owner("up", &sha),
        repo_root: root.clone(),
        compose_pref: env_vars::get(env_vars::DEPLOY_COMPOSE),
        interactive: std::io::stdin().is_terminal(),
        notes,
        files_from: None,
        secrets: secret_values,
    };
    report.stage_start("up", Some(&env.name));
    crate::cancel::install();
    let deployment = crate::ledger::record::Deployment::start(ctx, &env, &sha, "deploy");
    let (results, failure) = deploy_hosts(ctx, &env, &m, &req, &built, &confirm);
    // The release ledger: tags of the release just written, and the GitHub deployment's status.
    let outcome = match results.iter().find_map(|r| r.record.as_ref()) {
        Some(r) => Outcome::Release(r),
        None => Outcome::Failed,
    };
    deployment.finish(ctx, &env, outcome, None);
    crate::deploy::summary::summarize(&ctx.report, &env.name, &env.hosts, &results);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What `up` will change, as the text an approver reads: the commit, the hosts, each service's
/// image (with the local image id of a built one), and the content hash of every file uploaded.
fn change_plan(
    env: &crate::manifest::Environment,
    m: &Manifest,
    services: &[String],
    images: &BTreeMap<String, String>,
    built: &[String],
    root: &std::path::Path,
    force: bool,
) -> crate::guard::ChangePlan {
    let mut text = format!(
        "up on {} at {}\nhosts: {}\nservices:\n",
        env.name,
        git_sha(root),
        env.hosts
            .iter()
            .map(Host::label)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for svc in services {
        let cs = &m.services[svc].compose_service;
        let what = match images.get(cs) {
            Some(image) if built.contains(image) => {
                let id = LocalExecutor
                    .capture(&de::image_id(image))
                    .ok()
                    .filter(|o| o.success())
                    .map(|o| o.stdout_str().trim().to_string())
                    .unwrap_or_else(|| "not built yet".into());
                format!("{image} (built here, image {id})")
            }
            Some(image) => format!("{image} (--image)"),
            None => "the compose file's image".to_string(),
        };
        text.push_str(&format!("  {svc} (compose service {cs}): {what}\n"));
    }
    text.push_str("files uploaded:\n");
    for (local, remote) in deploy::repo_uploads(env, root) {
        let hash = std::fs::read(root.join(&local))
            .map(|b| blake3::hash(&b).to_hex().to_string())
            .unwrap_or_else(|_| "missing".into());
        text.push_str(&format!("  {local} -> {remote} (blake3 {hash})\n"));
    }
    if force {
        text.push_str("--force: recreate even when unchanged\n");
    }
    crate::guard::ChangePlan::new("up", &env.name, text)
}

/// Deploys `req` to the hosts of `env`: every host is reached and checked first (compose, the
/// `--image` references) so that a problem on a later host is found before any host changes; then
/// host by host, stopping at the first failing one. Returns a result for every host that was
/// reached or failed (a later host not reached has none: the summary shows it as `not run`), and
/// the error that stopped the run.
fn deploy_hosts(
    ctx: &Ctx,
    env: &crate::manifest::Environment,
    m: &Manifest,
    req: &UpRequest,
    built: &[String],
    confirm: &dyn Fn() -> Result<()>,
) -> (Vec<HostResult>, Option<Error>) {
    let report = &ctx.report;
    let mut results: Vec<HostResult> = Vec::new();
    // Reach and check every host before changing any.
    let mut ready = Vec::new();
    for (i, host) in env.hosts.iter().enumerate() {
        let checked = exec::connect(host, &|w: &str| report.warn(w))
            .map_err(Error::from)
            .and_then(|mut ex| {
                let pre = HostDeploy {
                    ex: ex.as_mut(),
                    report,
                    host: host.clone(),
                    env,
                    manifest: m,
                    req,
                }
                .preflight()?;
                Ok((ex, pre))
            });
        match checked {
            Ok(r) => ready.push(r),
            Err(e) => {
                for earlier in &env.hosts[..i] {
                    results.push(HostResult::without_release(
                        earlier,
                        format!("not run: {} failed its check", host.label()),
                    ));
                }
                results.push(HostResult::without_release(
                    host,
                    format!("failed before any host changed: {e}"),
                ));
                let e = match e {
                    Error::Usage { message, help } => Error::Usage {
                        message: format!("{message}; no host was changed"),
                        help,
                    },
                    other => Error::StageFailed(format!(
                        "{other}; no host was changed (every host is checked before the first is deployed)"
                    )),
                };
                return (results, Some(e));
            }
        }
    }
    // One lock for the environment: taken on every host, in the manifest's order, before any
    // host changes; held until the last host is done (or failed), then released on all.
    let env_lock = if req.dry_run {
        let hosts: Vec<String> = env.hosts.iter().map(Host::label).collect();
        report.info(&format!(
            "would take the {} lock on {} first (in this order), and release it on every host after the last one",
            env.name,
            hosts.join(", ")
        ));
        None
    } else {
        match EnvLock::acquire_all(report, env, &req.owner, req.lock_wait) {
            Ok(l) => Some(l),
            Err(e) => {
                for host in &env.hosts {
                    results.push(HostResult::without_release(
                        host,
                        "not run: the environment lock was not taken",
                    ));
                }
                return (results, Some(e));
            }
        }
    };
    if let Err(e) = confirm() {
        for host in &env.hosts {
            results.push(HostResult::without_release(
                host,
                "not run: the plan changed after it was approved",
            ));
        }
        if let Some(l) = env_lock {
            l.release_all();
        }
        return (results, Some(e));
    }
    let failure = deploy_each(ctx, env, m, req, built, ready, &mut results);
    if let Some(l) = env_lock {
        l.release_all();
    }
    (results, failure)
}

/// The hosts one after the other, under the environment lock; stops at the first failing host.
fn deploy_each(
    ctx: &Ctx,
    env: &crate::manifest::Environment,
    m: &Manifest,
    req: &UpRequest,
    built: &[String],
    ready: Vec<(Box<dyn Executor>, crate::deploy::Preflight)>,
    results: &mut Vec<HostResult>,
) -> Option<Error> {
    let report = &ctx.report;
    for (i, (mut ex, pre)) in ready.into_iter().enumerate() {
        let host = &env.hosts[i];
        if let Some(sig) = crate::cancel::requested() {
            let why = format!("{} before this host", crate::cancel::name(sig));
            results.push(HostResult::without_release(host, "not run: cancelled"));
            return Some(Error::StageFailed(format!(
                "up was cancelled ({why}); {} and later hosts were not touched",
                host.label()
            )));
        }
        let later = env.hosts.len() > i + 1;
        let shipped = if !built.is_empty() && *host != Host::Local && !req.dry_run {
            built
                .iter()
                .try_for_each(|image| deploy::ship::ship(ex.as_mut(), report, image))
        } else {
            Ok(())
        };
        let run = shipped.and_then(|()| {
            HostDeploy {
                ex: ex.as_mut(),
                report,
                host: host.clone(),
                env,
                manifest: m,
                req,
            }
            .run_with(Some(pre))
        });
        let tail = if later {
            "; later hosts were not touched"
        } else {
            ""
        };
        match run {
            Ok(r) if r.ok => results.push(r),
            Ok(r) => {
                let failed: Vec<String> = r
                    .services
                    .iter()
                    .filter(|sv| sv.result != "deployed")
                    .map(|sv| format!("{} {}", sv.service, sv.result))
                    .collect();
                let serving = if r.rolled_back {
                    "; the previous version is serving"
                } else {
                    ""
                };
                let e = match &r.error {
                    Some(why) => Error::StageFailed(format!(
                        "up on {} was {why}: {}{serving}{tail}",
                        host.label(),
                        failed.join(", ")
                    )),
                    None => Error::StageFailed(format!(
                        "up failed on {}: {}{serving}{tail}",
                        host.label(),
                        failed.join(", ")
                    )),
                };
                results.push(r);
                return Some(e);
            }
            Err(e) => {
                results.push(HostResult::without_release(host, format!("failed: {e}")));
                let e = match e {
                    Error::LockHeld(msg) => Error::LockHeld(format!("{msg}{tail}")),
                    Error::Usage { message, help } => Error::Usage {
                        message: format!("{message}{tail}"),
                        help,
                    },
                    other => Error::StageFailed(format!("{other}{tail}")),
                };
                return Some(e);
            }
        }
    }
    None
}
