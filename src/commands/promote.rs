//! `deploy-action promote --from staging --to production [--only UNIT...]`: deploys to the target
//! exactly the artifacts of the source's last successful release — the same image ids (shipped
//! from the source's host when the target lacks them, never rebuilt), the same Pages content (the
//! recorded manifest deployed to the production branch, no upload, no build), the migrations up to
//! the same version — behind the target's approval gate.
//!
//! The target defaults to `--env`, the source to the target's `promote_from`. Compose handling is
//! the `up` runner's, Pages the `pages` command's, SQL the `migrate` command's; this file decides
//! what goes where and records the release as promoted.

use crate::cmd::docker_engine as de;
use crate::context::Ctx;
use crate::deploy::fanout::Fanout;
use crate::deploy::{HostResult, UpRequest};
use crate::error::{Error, GateFailure, RecordFailure, Result};
use crate::guard::{self, ChangePlan};
use crate::ledger::identity::lock_owner;
use crate::ledger::lock::EnvLock;
use crate::ledger::record::{Deployment, Outcome, reason};
use crate::ledger::store;
use crate::ledger::{self, Units};
use crate::manifest::{Environment, MIGRATIONS_UNIT, Manifest};
use crate::report::Summary;
use crate::state::{PagesState, ReleaseRecord};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a promoted Pages deployment may take to become live.
const PAGES_WAIT: Duration = Duration::from_secs(600);

/// What the promotion changes on the target.
#[derive(Default)]
struct Promotion {
    /// Manifest service keys to deploy.
    services: Vec<String>,
    /// compose service → (image reference, image id) from the source.
    images: BTreeMap<String, (String, String)>,
    /// compose service → the source's repo digest (`repo@sha256:…`): deployed by it, pulled on
    /// the target from its registry, instead of shipped by id.
    digests: BTreeMap<String, String>,
    /// site → the source's Pages deployment.
    sites: Vec<(String, PagesState)>,
    /// The migration version to reach, when it differs.
    migration: Option<String>,
    /// unit, kind, from, to.
    rows: Vec<[String; 4]>,
    /// The target's `secrets:` values, written with the services (read before anything changes).
    secrets: crate::deploy::secrets::Values,
}

pub fn run(from: Option<&str>, to: Option<&str>, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let (source, target) = environments(&m, from, to, ctx.settings.env.as_deref())?;
    crate::changes::select_only(&m, &ctx.settings.only)?;
    let report = &ctx.report;

    let src = store::load(ctx, &source)?;
    let Some(release) = src.current().cloned() else {
        return Err(GateFailure::new(format!(
            "nothing to promote: environment `{}` has no successful (live) release",
            source.name
        ))
        .into());
    };
    let have = ledger::unit_versions(&store::load(ctx, &target)?.releases);
    let want = ledger::state_at(&src.releases, release.number);
    let mut p = promotion(&m, ctx, &want, &have);
    if !p.services.is_empty() {
        p.secrets = crate::deploy::secrets::resolve(&m, &target, &|n| std::env::var(n).ok())?;
    }

    report.stage_start("promote", Some(&target.name));
    if !show_plan(ctx, &source, &target, &release, &p) {
        return Ok(());
    }

    let adm = guard::admit(ctx, &target, "promote", &store::repo_root(ctx), &|| {
        promote_plan(ctx, &m, &source, &target, &release, &p)
    })?;
    if ctx.settings.dry_run {
        return preview(ctx, &m, &source, &target, &release, &p);
    }
    // One lock for the target environment, on every host, for the whole promotion.
    let env_lock =
        EnvLock::acquire_all(report, &target, &lock_owner("promote", &release.sha), None)?;
    if adm.approval.is_some() {
        adm.confirm(&plan_now(ctx, &m, &source, &target, &release, &p)?)?;
    }

    let deployment = Deployment::start(ctx, &target, &release.sha, "deploy:promote");
    let promoted_from = format!("{}/{}", source.name, release.number);
    let mut notes = vec![format!("promoted from release {promoted_from}")];
    notes.extend(adm.notes());
    notes.extend(reason().map(|r| format!("reason: {r}")));
    let outcome = apply(ctx, &m, &source, &target, &release, &p, &notes);
    let (mut record, results) = match outcome {
        Ok(r) => r,
        Err(e) => {
            deployment.finish(ctx, &target, Outcome::Failed, None);
            return Err(e);
        }
    };
    record.promoted_from = Some(promoted_from.clone());
    store::rewrite(ctx, &target, &record)?;
    env_lock.release_all();
    if !results.is_empty() {
        crate::deploy::summary::summarize(
            &ctx.report,
            &target.name,
            &target.hosts,
            &results.results,
            &results.trace,
        );
    }
    report.output("release", &record.number.to_string());
    report.info(&format!(
        "{} is on release {} = release {promoted_from}",
        target.name, record.number
    ));
    let url = record.pages.values().next().map(|p| p.url.clone());
    deployment.finish(ctx, &target, Outcome::Release(&record), url.as_deref());
    Ok(())
}

/// The plan table (units, kinds, from, to); false when there is nothing to promote.
fn show_plan(
    ctx: &Ctx,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> bool {
    let mut plan = Summary::new(
        format!(
            "Promote release {} of {} ({}) to {}",
            release.number,
            source.name,
            ledger::short_sha(&release.sha),
            target.name
        ),
        &["unit", "kind", "from", "to"],
    );
    for r in &p.rows {
        plan.row(r.clone());
    }
    if p.rows.is_empty() {
        plan.note(format!(
            "{} already runs the artifacts of release {} of {}",
            target.name, release.number, source.name
        ));
    }
    ctx.report.summary(&plan);
    !p.rows.is_empty()
}

/// What was approved must still be what runs: both environments read again, under the lock.
fn plan_now(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Result<ChangePlan> {
    let src = store::load(ctx, source)?;
    Ok(match src.current() {
        Some(r) if r.number == release.number => {
            let have = ledger::unit_versions(&store::load(ctx, target)?.releases);
            let want = ledger::state_at(&src.releases, r.number);
            let mut again = promotion(m, ctx, &want, &have);
            again.secrets = p.secrets.clone();
            promote_plan(ctx, m, source, target, r, &again)?
        }
        _ => ChangePlan::new(
            "promote",
            &target.name,
            format!(
                "{}'s live release is no longer {}",
                source.name, release.number
            ),
        ),
    })
}

/// What a promotion changes, as the text an approver reads: the units and their versions, and
/// the exact SQL of the migrations it applies (their plan hash is covered, so `migrate` asks no
/// second time).
fn promote_plan(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Result<ChangePlan> {
    let mut text = format!(
        "promote release {} of {} (sha {}) to {}\n",
        release.number, source.name, release.sha, target.name
    );
    for r in &p.rows {
        text.push_str(&format!("{} ({}): {} -> {}\n", r[0], r[1], r[2], r[3]));
    }
    for (svc, (image, id)) in &p.images {
        let by = p
            .digests
            .get(svc)
            .map(|d| format!(", deployed by digest {d}"))
            .unwrap_or_default();
        text.push_str(&format!("image of {svc}: {image} = {id}{by}\n"));
    }
    let prints = crate::deploy::secrets::fingerprints(&m.project, &target.name, &p.secrets);
    for (svc, names) in prints {
        for (name, print) in names {
            text.push_str(&format!("secret {name} for {svc}: {print}\n"));
        }
    }
    let mut covers = None;
    if let (Some(v), Some(migrations)) = (&p.migration, &m.migrations) {
        let opts = migrate_options(ctx, source, release, v)?;
        if let Some((hash, sql)) = crate::deploy::migrate::preview(ctx, target, migrations, &opts)?
        {
            text.push_str(&format!("\nmigrations (plan {hash}):\n{sql}"));
            covers = Some(hash);
        }
    }
    let plan = ChangePlan::new("promote", &target.name, text);
    Ok(match covers {
        Some(h) => plan.covering("migrate", &h),
        None => plan,
    })
}

/// The options of the migration a promotion runs: up to the source's version.
fn migrate_options(
    ctx: &Ctx,
    source: &Environment,
    release: &ReleaseRecord,
    v: &str,
) -> Result<crate::deploy::migrate::Options> {
    let version: u64 = v.parse().map_err(|_| {
        RecordFailure::new(
            "",
            format!(
                "promote release {} of {}: it records migration version `{v}`, which is not a number",
                release.number, source.name
            ),
            "",
        )
    })?;
    let mut opts = crate::deploy::migrate::Options::new(store::repo_root(ctx), ".");
    opts.target = Some(version);
    Ok(opts)
}

/// The source and target environments: `--to` (else `--env`) is the target, `--from` (else the
/// target's `promote_from`) the source. A target whose `promote_from` names another environment
/// is refused.
fn environments(
    m: &Manifest,
    from: Option<&str>,
    to: Option<&str>,
    env: Option<&str>,
) -> Result<(Environment, Environment)> {
    let names: Vec<&str> = m.environments.keys().map(String::as_str).collect();
    let get = |n: &str| {
        m.environments.get(n).cloned().ok_or_else(|| {
            let help = match crate::diag::suggest::closest(n, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? environments: {}", names.join(", ")),
                None => format!("environments: {}", names.join(", ")),
            };
            Error::usage_help(format!("unknown environment `{n}`"), help)
        })
    };
    let Some(to) = to.or(env) else {
        return Err(Error::usage_help(
            "promote needs a target environment",
            "pass --to ENV (or --env ENV)",
        ));
    };
    let target = get(to)?;
    let Some(from) = from.or(target.promote_from.as_deref()) else {
        return Err(Error::usage_help(
            format!("promote to `{to}` needs a source environment"),
            format!("pass --from ENV, or set `promote_from:` on environment `{to}` in deploy.yml"),
        ));
    };
    let source = get(from)?;
    if from == to {
        return Err(Error::usage("--from and --to name the same environment"));
    }
    if let Some(pf) = target.promote_from.as_deref().filter(|pf| *pf != from) {
        return Err(Error::usage(format!(
            "environment `{to}` is promoted from `{pf}` (promote_from in deploy.yml), not from `{from}`"
        )));
    }
    Ok((source, target))
}

/// What differs between the source's release and the target, unit by unit.
fn promotion(m: &Manifest, ctx: &Ctx, want: &Units, have: &Units) -> Promotion {
    let selected =
        |unit: &str| ctx.settings.only.is_empty() || ctx.settings.only.iter().any(|o| o == unit);
    let mut p = Promotion::default();
    for (key, svc) in &m.services {
        let Some((_, w)) = want.services.get(&svc.compose_service) else {
            continue;
        };
        if !selected(key) {
            continue;
        }
        let h = have.services.get(&svc.compose_service).map(|(_, s)| s);
        if h.is_some_and(|h| ledger::same_image(h, w)) {
            continue;
        }
        p.services.push(key.clone());
        p.images.insert(
            svc.compose_service.clone(),
            (w.image.clone(), w.image_id.clone()),
        );
        if let Some(d) = &w.digest {
            p.digests.insert(svc.compose_service.clone(), d.clone());
        }
        p.rows.push([
            key.clone(),
            "service".into(),
            h.map_or_else(|| "(none)".into(), |h| h.image.clone()),
            match &w.digest {
                Some(d) => format!(
                    "{} ({}, by digest {d})",
                    w.image,
                    ledger::short_id(&w.image_id)
                ),
                None => format!("{} ({})", w.image, ledger::short_id(&w.image_id)),
            },
        ]);
    }
    for (site, (_, w)) in &want.pages {
        if !selected(site) || !m.sites.contains_key(site) {
            continue;
        }
        let h = have.pages.get(site).map(|(_, s)| s);
        if h.is_some_and(|h| h.manifest == w.manifest && !w.manifest.is_empty()) {
            continue;
        }
        p.sites.push((site.clone(), w.clone()));
        p.rows.push([
            site.clone(),
            "pages".into(),
            h.map_or_else(|| "(none)".into(), |h| h.url.clone()),
            format!("{} files of {}", w.manifest.len(), w.url),
        ]);
    }
    if let Some((_, v)) = &want.migration {
        let h = have.migration.as_ref().map(|(_, v)| v.clone());
        if selected(MIGRATIONS_UNIT) && m.migrations.is_some() && h.as_ref() != Some(v) {
            p.migration = Some(v.clone());
            p.rows.push([
                MIGRATIONS_UNIT.into(),
                "database".into(),
                h.unwrap_or_else(|| "(none)".into()),
                format!("version {v}"),
            ]);
        }
    }
    p
}

/// Migrations, then services, then sites; returns the target's new release.
fn apply(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
    notes: &[String],
) -> Result<(ReleaseRecord, Ran)> {
    let report = &ctx.report;
    let owner = lock_owner("promote", &release.sha);
    // Migrations first (the schema before the code that needs it), through migrate's own gate:
    // on a guarded environment it shows the exact SQL and binds the approval to it.
    let mut migrated = None;
    if let (Some(v), Some(migrations)) = (&p.migration, &m.migrations) {
        let opts = migrate_options(ctx, source, release, v)?;
        let outcome = crate::deploy::migrate::run_with(ctx, target, migrations, opts)?;
        migrated = outcome.version.map(|v| v.to_string());
    }
    crate::cancel::install();
    crate::cancel::check()?;
    let mut record: Option<ReleaseRecord> = None;
    let mut results = Ran::default();
    if !p.services.is_empty() {
        let (r, ran) = promote_services(ctx, m, source, target, p, notes, &owner, false)?;
        record = Some(r);
        results = ran;
    }
    crate::cancel::check()?;
    let mut pages = BTreeMap::new();
    if !p.sites.is_empty() {
        let cf = crate::deploy::pages::client(ctx)?;
        for (site, state) in &p.sites {
            let branch = m
                .sites
                .get(site)
                .map(|s| s.production_branch.clone())
                .unwrap_or_else(|| "main".into());
            report.info(&format!(
                "{site}: deploying the {} files of deployment {} to the production branch `{branch}` of {} (nothing is uploaded or built)",
                state.manifest.len(),
                state.deployment_id,
                state.project
            ));
            let git = crate::deploy::pages::GitMeta {
                branch: Some(branch),
                commit_hash: state
                    .commit_hash
                    .clone()
                    .or_else(|| Some(release.sha.clone())),
                commit_message: Some(format!(
                    "deploy-action promote of release {} of {}",
                    release.number, source.name
                )),
                commit_dirty: Some(false),
            };
            let new = crate::deploy::pages::redeploy(&cf, state, &git, PAGES_WAIT)?;
            report.info(&format!("{site}: {} ({})", new.url, new.environment));
            pages.insert(site.clone(), new);
        }
    }
    match record {
        Some(mut r) => {
            if migrated.is_some() {
                r.migration_version = migrated;
            }
            r.pages.extend(pages);
            Ok((r, results))
        }
        None => {
            let units: Vec<String> = p.rows.iter().map(|r| r[0].clone()).collect();
            let r = store::append(ctx, target, &owner, "promote", &units, &|r| {
                if migrated.is_some() {
                    r.migration_version = migrated.clone();
                }
                r.pages.extend(pages.clone());
                r.notes.extend(notes.iter().cloned());
            })?;
            Ok((r, results))
        }
    }
}

/// The compose hosts' results and the steps walked.
#[derive(Default)]
struct Ran {
    results: Vec<HostResult>,
    trace: crate::engine::runner::Trace,
}

impl Ran {
    fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

/// `--dry-run`: the services' steps as the fan-out would walk them on the target's hosts
/// (checked and read for real, nothing changed); the migrations and Pages deployments are the
/// rows of the plan above.
fn preview(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Result<()> {
    if !p.services.is_empty() {
        let owner = lock_owner("promote", &release.sha);
        let notes = vec![format!(
            "promoted from release {}/{}",
            source.name, release.number
        )];
        let ran = promote_services(ctx, m, source, target, p, &notes, &owner, true);
        match ran {
            Ok((_, ran)) => crate::deploy::summary::summarize(
                &ctx.report,
                &target.name,
                &target.hosts,
                &ran.results,
                &ran.trace,
            ),
            Err(e) => return Err(e),
        }
    }
    ctx.report.info("dry run: nothing was changed");
    Ok(())
}

/// Deploys the source's images on every target host through the fan-out: by repo digest where
/// the source recorded one (pulled on the target from its registry), else shipped by id from the
/// source's first host; checks after each host that it runs the source's images (same id or
/// digest). Returns the first host's record.
#[allow(clippy::too_many_arguments)]
fn promote_services(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    p: &Promotion,
    notes: &[String],
    owner: &crate::state::LockOwner,
    dry_run: bool,
) -> Result<(ReleaseRecord, Ran)> {
    let report = &ctx.report;
    let Some(src_host) = source.hosts.first() else {
        return Err(GateFailure::new(format!(
            "environment `{}` has no hosts to take the images from",
            source.name
        ))
        .into());
    };
    let images = p
        .images
        .iter()
        .map(|(cs, (image, _))| (cs.clone(), p.digests.get(cs).unwrap_or(image).clone()))
        .collect();
    let mut req = UpRequest::recorded(
        &target.name,
        p.services.clone(),
        images,
        owner.clone(),
        store::repo_root(ctx),
        notes.to_vec(),
    );
    req.secrets = p.secrets.clone();
    req.ship_from = Some(src_host.clone());
    for (cs, (image, id)) in &p.images {
        match p.digests.get(cs) {
            Some(d) => {
                for host in &target.hosts {
                    report.info(&format!(
                        "{}: {cs}: {image} is deployed by its digest {d} (pulled from its registry where missing)",
                        host.label()
                    ));
                }
            }
            None => {
                req.ship_ids.insert(cs.clone(), id.clone());
            }
        }
    }
    let check =
        |host: &crate::manifest::Host, r: &HostResult| runs_the_source(m, host, r, p, source);
    let run = Fanout {
        report,
        env: target,
        manifest: m,
        req: &req,
        stage: "promote",
        dry_run,
        confirm: &|| Ok(()),
        after_host: &check,
    }
    .run();
    let ran = Ran {
        results: run.results,
        trace: run.trace,
    };
    if let Some(e) = run.failure {
        crate::deploy::summary::summarize(
            &ctx.report,
            &target.name,
            &target.hosts,
            &ran.results,
            &ran.trace,
        );
        return Err(e);
    }
    let first = ran.results.iter().find_map(|r| r.record.clone());
    match (first, dry_run) {
        (Some(r), _) => Ok((r, ran)),
        (None, true) => Ok((ReleaseRecord::default(), ran)),
        (None, false) => {
            Err(GateFailure::new(format!("environment `{}` has no hosts", target.name)).into())
        }
    }
}

/// The exact artifacts: the ids a host runs now must be the source's.
fn runs_the_source(
    m: &Manifest,
    host: &crate::manifest::Host,
    r: &HostResult,
    p: &Promotion,
    source: &Environment,
) -> Result<()> {
    let Some(written) = &r.record else {
        return Ok(());
    };
    for (cs, (_, id)) in &p.images {
        let now = written.services.get(cs);
        let running = now.map(|s| s.image_id.as_str()).unwrap_or("");
        let same_digest = match (now.and_then(|s| s.digest.as_deref()), p.digests.get(cs)) {
            (Some(a), Some(b)) => de::digest_part(a) == de::digest_part(b),
            _ => false,
        };
        if !id.is_empty() && running != id && !same_digest {
            let mut gate = GateFailure::new(format!(
                "{cs} runs image {running}, not {id} from {}",
                source.name
            ))
            .host(host.label());
            if let Some((key, _)) = m.services.iter().find(|(_, s)| s.compose_service == *cs) {
                gate = gate.unit(key);
            }
            return Err(gate.into());
        }
    }
    Ok(())
}
