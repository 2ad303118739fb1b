//! `deploy-action rollback --env E [--to N|TAG|SHA] [--only UNIT...]`: returns an environment to
//! an earlier release. Compose services go back to that release's images through the `up` runner
//! (lock, health gate, a new release record); Pages production goes back to that release's
//! deployment through Cloudflare's rollback endpoint; migrations are never rolled back
//! implicitly (the `migrate down` command is printed). The abandoned release is marked bad and the
//! pointer tag moves to the new release.
//!
//! The choices (which release, which units differ) live in `ledger/`; compose handling in
//! `deploy/`; this file is the glue.

use crate::cmd::docker_engine as de;
use crate::context::Ctx;
use crate::deploy::fanout::Fanout;
use crate::deploy::{HostResult, UpRequest};
use crate::error::{Error, GateFailure, Result};
use crate::exec;
use crate::guard::{self, ChangePlan};
use crate::ledger::identity::lock_owner;
use crate::ledger::lock::EnvLock;
use crate::ledger::record::{Deployment, Outcome, reason};
use crate::ledger::store;
use crate::ledger::{self, Selector, TargetError};
use crate::manifest::{Environment, MIGRATIONS_UNIT, Manifest};
use crate::report::Summary;
use crate::state::{PagesState, ReleaseRecord, ReleaseStatus, ReleaseStatusField};
use std::collections::BTreeMap;

/// One unit that goes back, for the plan and the summary.
struct Change {
    unit: String,
    kind: &'static str,
    from: String,
    to: String,
}

/// What a rollback will do, chosen from the ledger.
struct Choice {
    loaded: store::Loaded,
    target: ReleaseRecord,
    abandoned: Option<ReleaseRecord>,
    then: ledger::Units,
    now: ledger::Units,
    changes: Vec<Change>,
    services: Vec<String>,
    /// compose service → the image reference to deploy: the release's tag on the hosts, else its
    /// repo digest, else its recorded reference.
    images: BTreeMap<String, String>,
    /// compose service → the release's repo digest (`repo@sha256:…`), deployed (and pulled)
    /// where the release tag is gone, so a moved tag never changes what comes back.
    digests: BTreeMap<String, String>,
    sites: Vec<(String, PagesState)>,
}

impl Choice {
    /// The text an approver reads; its hash is what the approval is bound to.
    fn plan(&self, env: &str) -> ChangePlan {
        let mut text = format!(
            "rollback of {env} from release {} to release {} (sha {})\n",
            self.abandoned
                .as_ref()
                .map_or_else(|| "none".into(), |r| r.number.to_string()),
            self.target.number,
            self.target.sha
        );
        for c in &self.changes {
            text.push_str(&format!(
                "{} ({}): {} -> {}\n",
                c.unit, c.kind, c.from, c.to
            ));
        }
        for (cs, image) in &self.images {
            let digest = match self.digests.get(cs) {
                Some(d) if d != image => format!(" (where it is gone: {d})"),
                _ => String::new(),
            };
            text.push_str(&format!("compose service {cs}: {image}{digest}\n"));
        }
        for (site, p) in &self.sites {
            text.push_str(&format!("site {site}: deployment {}\n", p.deployment_id));
        }
        ChangePlan::new("rollback", env, text)
    }
}

/// Reads the ledger and works out the release to go back to and what differs from now.
fn choose(ctx: &Ctx, m: &Manifest, env: &Environment, to: Option<&str>) -> Result<Choice> {
    let report = &ctx.report;
    let selector = to.map(Selector::parse).transpose().map_err(Error::usage)?;
    let selected =
        |unit: &str| ctx.settings.only.is_empty() || ctx.settings.only.iter().any(|o| o == unit);
    let loaded = store::load(ctx, env)?;
    let releases = &loaded.releases;
    let target = match ledger::rollback_target(&env.name, releases, selector.as_ref()) {
        Ok(t) => t.clone(),
        // Nothing to go back to is the environment's state, not a typing error: exit 1.
        Err(e @ TargetError::Nothing(_)) => return Err(GateFailure::new(e.to_string()).into()),
        Err(e) => return Err(Error::usage(e.to_string())),
    };
    let abandoned = loaded.current().cloned();
    let then = ledger::state_at(releases, target.number);
    let now = ledger::unit_versions(releases);

    // compose service → manifest service key.
    let by_compose: BTreeMap<&str, &str> = m
        .services
        .iter()
        .map(|(k, s)| (s.compose_service.as_str(), k.as_str()))
        .collect();
    let mut changes = Vec::new();
    let mut services = Vec::new();
    let mut images = BTreeMap::new();
    let mut digests = BTreeMap::new();
    for (cs, (_, st)) in &then.services {
        let Some(key) = by_compose.get(cs.as_str()) else {
            report.warn(&format!(
                "release {}: service `{cs}` is no longer in deploy.yml; left alone",
                target.number
            ));
            continue;
        };
        if !selected(key) {
            continue;
        }
        let current = now.services.get(cs).map(|(_, s)| s);
        // Unchanged only when it runs the same image with the same secrets.
        if current.is_some_and(|c| ledger::same_image(c, st) && c.secrets == st.secrets) {
            continue;
        }
        services.push(key.to_string());
        images.insert(
            cs.clone(),
            st.release_tag
                .clone()
                .or_else(|| st.digest.clone())
                .unwrap_or_else(|| st.image.clone()),
        );
        if let Some(d) = &st.digest {
            digests.insert(cs.clone(), d.clone());
        }
        changes.push(Change {
            unit: key.to_string(),
            kind: "service",
            from: current.map_or_else(|| "(none)".into(), |c| c.image.clone()),
            to: format!(
                "{} ({}){}",
                st.image,
                ledger::short_id(&st.image_id),
                match current {
                    Some(c) if ledger::same_image(c, st) => ", the secrets it ran with",
                    _ => "",
                }
            ),
        });
    }
    let mut sites: Vec<(String, PagesState)> = Vec::new();
    for (site, (_, p)) in &then.pages {
        if !selected(site) {
            continue;
        }
        let current = now.pages.get(site).map(|(_, p)| p);
        if current.is_some_and(|c| c.deployment_id == p.deployment_id) {
            continue;
        }
        sites.push((site.clone(), p.clone()));
        changes.push(Change {
            unit: site.clone(),
            kind: "pages",
            from: current.map_or_else(|| "(none)".into(), |c| c.url.clone()),
            to: p.url.clone(),
        });
    }
    Ok(Choice {
        loaded,
        target,
        abandoned,
        then,
        now,
        changes,
        services,
        images,
        digests,
        sites,
    })
}

pub fn run(to: Option<&str>, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let env = ctx.settings.environment(&m)?.clone();
    let report = &ctx.report;
    crate::changes::select_only(&m, &ctx.settings.only)?;
    let choice = choose(ctx, &m, &env, to)?;
    let Choice {
        loaded,
        target,
        abandoned,
        services,
        images,
        digests,
        sites,
        ..
    } = &choice;
    let releases = &loaded.releases;

    report.stage_start("rollback", Some(&env.name));
    report.info(&format!(
        "rolling {} back from release {} to release {} ({})",
        env.name,
        abandoned
            .as_ref()
            .map_or_else(|| "none".into(), |r| r.number.to_string()),
        target.number,
        ledger::short_sha(&target.sha)
    ));
    let migration_hint = show_plan(ctx, &env, &choice);
    let adm = guard::admit(ctx, &env, "rollback", &store::repo_root(ctx), &|| {
        Ok(choice.plan(&env.name))
    })?;
    if ctx.settings.dry_run {
        return preview(ctx, &m, &env, &choice);
    }
    // One lock for the environment, on every host, for the whole rollback.
    let env_lock = EnvLock::acquire_all(report, &env, &lock_owner("rollback", &target.sha), None)?;
    if adm.approval.is_some() {
        // What was approved must still be what runs: read the ledger again, under the lock
        // (leaving on an error releases it).
        adm.confirm(&choose(ctx, &m, &env, to)?.plan(&env.name))?;
    }

    let deployment = Deployment::start(ctx, &env, &target.sha, "deploy:rollback");
    let notes = {
        let mut n = vec![format!(
            "rollback to release {}{}",
            target.number,
            abandoned
                .as_ref()
                .map(|a| format!(" from release {}", a.number))
                .unwrap_or_default()
        )];
        n.extend(reason().map(|r| format!("reason: {r}")));
        n.extend(adm.notes());
        n
    };
    let result = on_the_hosts(ctx, &env, target, images, digests).and_then(|images| {
        put_back(
            ctx, &m, &env, releases, target, services, &images, sites, &notes,
        )
    });
    let (record, results) = match result {
        Ok(r) => r,
        Err(e) => {
            deployment.finish(ctx, &env, Outcome::Failed, None);
            return Err(e);
        }
    };

    // The abandoned release is never chosen again.
    if let Some(bad) = abandoned.as_ref().filter(|a| a.number != record.number) {
        mark_bad(ctx, &env, bad, target, &record)?;
    }
    env_lock.release_all();
    if let Some(h) = migration_hint {
        report.warn(&h);
    }
    crate::deploy::summary::summarize(
        &ctx.report,
        &env.name,
        &env.hosts,
        &results.results,
        &results.trace,
    );
    report.output("release", &record.number.to_string());
    report.info(&format!(
        "{} is on release {} (the artifacts of release {})",
        env.name, record.number, target.number
    ));
    let url = record.pages.values().next().map(|p| p.url.clone());
    deployment.finish(ctx, &env, Outcome::Release(&record), url.as_deref());
    Ok(())
}

/// The plan table; returns the `migrate down` hint when the database is elsewhere.
fn show_plan(ctx: &Ctx, env: &Environment, choice: &Choice) -> Option<String> {
    let mut plan = Summary::new(
        format!(
            "Rollback of {} to release {}",
            env.name, choice.target.number
        ),
        &["unit", "kind", "from", "to"],
    );
    for c in &choice.changes {
        plan.row([c.unit.clone(), c.kind.into(), c.from.clone(), c.to.clone()]);
    }
    if choice.changes.is_empty() {
        plan.note(format!(
            "release {} runs the same images and Pages deployments as the current release",
            choice.target.number
        ));
    }
    let hint = migration_hint(env, &choice.then, &choice.now, &ctx.settings.only);
    if let Some(h) = &hint {
        plan.note(h);
    }
    ctx.report.summary(&plan);
    hint
}

/// Marks the abandoned release `bad`: it is never chosen again.
fn mark_bad(
    ctx: &Ctx,
    env: &Environment,
    bad: &ReleaseRecord,
    target: &ReleaseRecord,
    record: &ReleaseRecord,
) -> Result<()> {
    let mut marked = bad.clone();
    marked.status = ReleaseStatusField(ReleaseStatus::Bad);
    marked.notes.push(format!(
        "abandoned: rolled back to release {} by release {}",
        target.number, record.number
    ));
    store::rewrite(ctx, env, &marked)?;
    ctx.report
        .info(&format!("release {} marked bad", bad.number));
    Ok(())
}

/// The compose hosts' results and the steps walked.
#[derive(Default)]
struct Ran {
    results: Vec<HostResult>,
    trace: crate::engine::runner::Trace,
}

/// `--dry-run`: the services' steps as the fan-out would walk them (the hosts checked and read
/// for real, nothing changed); the Pages deployments are the rows of the plan above.
fn preview(ctx: &Ctx, m: &Manifest, env: &Environment, choice: &Choice) -> Result<()> {
    if !choice.services.is_empty() {
        let images = on_the_hosts(ctx, env, &choice.target, &choice.images, &choice.digests)?;
        let req = request(
            ctx,
            env,
            &choice.loaded.releases,
            &choice.target,
            &choice.services,
            &images,
            &[],
        )?;
        let run = fan_out(ctx, m, env, &req, true);
        crate::deploy::summary::summarize(
            &ctx.report,
            &env.name,
            &env.hosts,
            &run.results,
            &run.trace,
        );
        if let Some(e) = run.failure {
            return Err(e);
        }
    }
    ctx.report.info("dry run: nothing was changed");
    Ok(())
}

/// The request of the services' deploy: the release's images and, when every host still keeps
/// them, the compose and env files of the newest `up` release up to the target.
fn request(
    ctx: &Ctx,
    env: &Environment,
    releases: &[ReleaseRecord],
    target: &ReleaseRecord,
    services: &[String],
    images: &BTreeMap<String, String>,
    notes: &[String],
) -> Result<UpRequest> {
    let report = &ctx.report;
    let owner = lock_owner("rollback", &target.sha);
    let files_from = releases
        .iter()
        .filter(|r| r.number <= target.number && r.services.values().any(|s| s.deployed))
        .map(|r| r.number)
        .max();
    let mut kept = files_from.is_some();
    if let Some(n) = files_from {
        for host in &env.hosts {
            let mut ex = exec::connect(host, &|w: &str| report.warn(w))?;
            let dir = crate::deploy::files_dir(&env.dir, n);
            if !ex
                .read(&crate::cmd::Cmd::new("test").arg("-d").arg(dir))?
                .success()
            {
                kept = false;
            }
        }
        if !kept {
            report.warn(&format!(
                "the compose files of release {n} are not kept on every host; the repository's current compose files are used"
            ));
        }
    }
    Ok(UpRequest {
        files_from: files_from.filter(|_| kept),
        ..UpRequest::recorded(
            &env.name,
            services.to_vec(),
            images.clone(),
            owner,
            store::repo_root(ctx),
            notes.to_vec(),
        )
    })
}

/// The services' deploy on every host (see [`Fanout`]).
fn fan_out(
    ctx: &Ctx,
    m: &Manifest,
    env: &Environment,
    req: &UpRequest,
    dry_run: bool,
) -> crate::deploy::fanout::Outcome {
    Fanout {
        report: &ctx.report,
        env,
        manifest: m,
        req,
        stage: "rollback",
        dry_run,
        confirm: &|| Ok(()),
        after_host: &|_, _| Ok(()),
    }
    .run()
}

/// Puts the services and sites back and returns the new release record.
#[allow(clippy::too_many_arguments)]
fn put_back(
    ctx: &Ctx,
    m: &Manifest,
    env: &Environment,
    releases: &[ReleaseRecord],
    target: &ReleaseRecord,
    services: &[String],
    images: &BTreeMap<String, String>,
    sites: &[(String, PagesState)],
    notes: &[String],
) -> Result<(ReleaseRecord, Ran)> {
    let owner = lock_owner("rollback", &target.sha);
    let mut record = None;
    let mut ran = Ran::default();
    if !services.is_empty() {
        let req = request(ctx, env, releases, target, services, images, notes)?;
        let run = fan_out(ctx, m, env, &req, false);
        record = run.results.iter().find_map(|r| r.record.clone());
        ran = Ran {
            results: run.results,
            trace: run.trace,
        };
        if let Some(e) = run.failure {
            crate::deploy::summary::summarize(
                &ctx.report,
                &env.name,
                &env.hosts,
                &ran.results,
                &ran.trace,
            );
            return Err(e);
        }
    }
    crate::cancel::check()?;
    let mut new_pages = BTreeMap::new();
    for (site, p) in sites {
        new_pages.insert(site.clone(), pages_back(ctx, site, p)?);
    }
    match record {
        Some(mut r) => {
            if !new_pages.is_empty() {
                r.pages.extend(new_pages);
                store::rewrite(ctx, env, &r)?;
            }
            Ok((r, ran))
        }
        None => {
            let units: Vec<String> = sites.iter().map(|(s, _)| s.clone()).collect();
            let r = store::append(
                ctx,
                env,
                &owner,
                "rollback",
                &units,
                &|r: &mut ReleaseRecord| {
                    r.pages.extend(new_pages.clone());
                    r.notes.extend(notes.iter().cloned());
                },
            )?;
            Ok((r, ran))
        }
    }
}

/// The images to deploy, checked on every host before any changes: the release's tag where every
/// host still has it (retention keeps the last `keep_releases`), else its repo digest (pulled by
/// the `up` runner where missing), else an error naming the image (exit 1, nothing changed).
fn on_the_hosts(
    ctx: &Ctx,
    env: &Environment,
    target: &ReleaseRecord,
    images: &BTreeMap<String, String>,
    digests: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let report = &ctx.report;
    let mut out = images.clone();
    if images.is_empty() {
        return Ok(out);
    }
    for host in &env.hosts {
        let mut ex = exec::connect(host, &|w: &str| report.warn(w))?;
        for (cs, image) in images {
            if de::is_digest_ref(image) || ex.capture(&de::image_id(image))?.success() {
                continue;
            }
            match digests.get(cs) {
                Some(d) => {
                    if out.insert(cs.clone(), d.clone()).as_ref() != Some(d) {
                        report.info(&format!(
                            "{}: {image} of release {} is no longer on the host; {cs} goes back by its digest {d} (pulled where missing)",
                            host.label(),
                            target.number
                        ));
                    }
                }
                None => {
                    return Err(GateFailure::new(format!(
                        "image {image} of release {} is no longer on the host (retention keeps the last {} releases) and the release recorded no repo digest to pull it by",
                        target.number,
                        env.keep_releases
                    ))
                    .host(host.label())
                    .help("roll back to a newer release or deploy an image with `up --image`")
                    .into());
                }
            }
        }
    }
    Ok(out)
}

/// Puts one site back on a recorded deployment: production deployments through Cloudflare's
/// rollback endpoint; a preview deployment keeps serving at its own URL, so it is only recorded.
fn pages_back(ctx: &Ctx, site: &str, p: &PagesState) -> Result<PagesState> {
    if p.environment != "production" {
        ctx.report.info(&format!(
            "{site}: release's deployment is a preview; it still serves at {}",
            p.url
        ));
        return Ok(p.clone());
    }
    let cf = crate::deploy::pages::client(ctx)?;
    ctx.report.info(&format!(
        "{site}: rolling Cloudflare Pages project {} back to deployment {}",
        p.project, p.deployment_id
    ));
    crate::deploy::pages::rollback_to(&cf, p)
}

/// The `migrate down` command when the database is at another version than the target ran with.
fn migration_hint(
    env: &Environment,
    then: &ledger::Units,
    now: &ledger::Units,
    only: &[String],
) -> Option<String> {
    if !only.is_empty() && !only.iter().any(|o| o == MIGRATIONS_UNIT) {
        return None;
    }
    let (Some((_, now_v)), Some((_, then_v))) = (&now.migration, &then.migration) else {
        return None;
    };
    (now_v != then_v).then(|| {
        format!(
            "the database is at migration {now_v}; the target release ran with {then_v}. Migrations are never rolled back implicitly; to go back: deploy-action migrate --env {} down --to {then_v}",
            env.name
        )
    })
}
