//! `deploy-action up`: resolve the services, images and hosts, build, pass the guard, then hand
//! the run to the fan-out ([`Fanout`]: every host checked, the environment lock on all, each
//! host's plan walked by the engine, `--dry-run` the same walk on recording executors), and
//! report the per-host × service matrix, the job summary, the outputs and (`--json`) the steps.

use crate::cmd::docker_engine as de;
use crate::context::Ctx;
use crate::deploy::fanout::Fanout;
use crate::deploy::{self, UpRequest};
use crate::env_vars;
use crate::error::{CommandFailure, Error, Result, STDERR_TAIL_LINES};
use crate::exec::dry_run::{DryRunExecutor, Recording};
use crate::exec::local::LocalExecutor;
use crate::exec::{Executor, StderrTail};
use crate::ledger::identity::{git_sha, lock_owner};
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
    known_services(&m, overrides)?;
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

    let (images, user_images, built) = images_to_run(ctx, args, &m, &services, &sha, &root)?;

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
        built: built.clone(),
        force: args.force,
        lock_wait,
        yes: ctx.settings.yes,
        owner: lock_owner("up", &sha),
        repo_root: root.clone(),
        compose_pref: env_vars::get(env_vars::DEPLOY_COMPOSE),
        interactive: std::io::stdin().is_terminal(),
        notes,
        files_from: None,
        secrets: secret_values,
        ship_ids: BTreeMap::new(),
        ship_from: None,
    };
    deploy(ctx, &env, &m, &req, &confirm)
}

/// `--image` names manifest services only.
fn known_services(m: &Manifest, overrides: &BTreeMap<String, String>) -> Result<()> {
    for svc in overrides.keys() {
        if !m.services.contains_key(svc) {
            let names: Vec<&str> = m.services.keys().map(String::as_str).collect();
            return Err(Error::usage_help(
                format!("--image: no service named `{svc}`"),
                format!("services: {}", names.join(", ")),
            ));
        }
    }
    Ok(())
}

/// compose service → image: `--image` first, then the images built for this commit. Returns
/// the images, the `--image` services, and the built tags.
#[allow(clippy::type_complexity)]
fn images_to_run(
    ctx: &Ctx,
    args: &UpSettings,
    m: &Manifest,
    services: &[String],
    sha: &str,
    root: &std::path::Path,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>, Vec<String>)> {
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut user_images = BTreeSet::new();
    for (svc, image) in &args.images {
        let cs = m.services[svc].compose_service.clone();
        user_images.insert(cs.clone());
        images.insert(cs, image.clone());
    }
    let mut built: Vec<String> = Vec::new();
    if !args.no_build {
        for (cs, tag) in build_images(ctx, m, services, sha, root, &images)? {
            images.insert(cs, tag.clone());
            built.push(tag);
        }
    }
    Ok((images, user_images, built))
}

/// The fan-out, then the ledger's deployment status and the report.
fn deploy(
    ctx: &Ctx,
    env: &crate::manifest::Environment,
    m: &Manifest,
    req: &UpRequest,
    confirm: &dyn Fn() -> Result<()>,
) -> Result<()> {
    ctx.report.stage_start("up", Some(&env.name));
    crate::cancel::install();
    let deployment = crate::ledger::record::Deployment::start(ctx, env, &req.owner.sha, "deploy");
    let run = Fanout {
        report: &ctx.report,
        env,
        manifest: m,
        req,
        stage: "up",
        dry_run: ctx.settings.dry_run,
        confirm,
        after_host: &|_, _| Ok(()),
    }
    .run();
    // The release ledger: tags of the release just written, and the GitHub deployment's status.
    let outcome = match run.results.iter().find_map(|r| r.record.as_ref()) {
        Some(r) => Outcome::Release(r),
        None => Outcome::Failed,
    };
    deployment.finish(ctx, env, outcome, None);
    crate::deploy::summary::summarize(&ctx.report, &env.name, &env.hosts, &run.results, &run.trace);
    match run.failure {
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

/// Builds the docker images of `services` that `pinned` (`--image`) does not name, tagged with
/// the commit: (compose service, tag) each. A dry run's local executor records the builds.
fn build_images(
    ctx: &Ctx,
    m: &Manifest,
    services: &[String],
    sha: &str,
    root: &std::path::Path,
    pinned: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let report = &ctx.report;
    let mut local: Box<dyn Executor> = if ctx.settings.dry_run {
        Box::new(DryRunExecutor::new("local", Recording::default()))
    } else {
        Box::new(LocalExecutor)
    };
    let mut out = Vec::new();
    for b in crate::plan::up::host::docker_builds(m, services, sha, pinned) {
        let ctx_dir = root.join(&b.context).to_string_lossy().into_owned();
        let cmd = de::build(&ctx_dir, &b.dockerfile, &b.tag)
            .scrub_env(crate::cmd::unit_child_scrub(m, &b.service));
        if local.records() {
            report.info(&format!("local: would run {}", cmd.display()));
        } else {
            report.group_start(&format!("build {}: {}", b.service, b.tag));
        }
        let svc = &b.service;
        let mut tail = StderrTail::new(STDERR_TAIL_LINES);
        let status = local.run(&cmd, None, &mut |st, l| {
            tail.keep(st, l);
            report.relay(svc, st, l)
        })?;
        if !local.records() {
            report.group_end();
        }
        if status != 0 {
            let origin = m.services.get(svc).and_then(|s| match &s.build {
                Some(Build::Docker { span, .. } | Build::Command { span, .. }) => Some(*span),
                None => None,
            });
            let f = CommandFailure::new(local.label(), format!("docker build of {svc}"), &cmd)
                .unit(svc)
                .status(status)
                .stderr(tail.text())
                .origin(origin);
            return Err(f.into());
        }
        out.push((b.compose_service, b.tag));
    }
    Ok(out)
}
