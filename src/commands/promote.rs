//! `deploy-action promote --from staging --to production [--only UNIT...]`: deploys to the target
//! exactly the artifacts of the source's last successful release — the same image ids (shipped
//! from the source's host when the target lacks them, never rebuilt), the same Pages content (the
//! recorded manifest deployed to the production branch, no upload, no build), the migrations up to
//! the same version — behind the target's approval gate.
//!
//! The target defaults to `--env`, the source to the target's `promote_from`. This file decides
//! what goes where and plans it (`plan/release.rs`: the lock, the migration, the services'
//! fan-out, the sites, the record); `deploy/release/` walks the plan, for real or (`--dry-run`)
//! on the recording side.

use crate::context::Ctx;
use crate::deploy::release::{Job, Promote, Run};
use crate::error::{Error, GateFailure, RecordFailure, Result};
use crate::guard::{self, ChangePlan};
use crate::ledger::record::reason;
use crate::ledger::store;
use crate::ledger::{self, Units};
use crate::manifest::{Environment, MIGRATIONS_UNIT, Manifest};
use crate::plan::release::{Input, SiteMove, Stage};
use crate::report::Summary;
use crate::state::{PagesState, ReleaseRecord};
use std::collections::BTreeMap;

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
    let migrate = match &p.migration {
        Some(v) => Some(migrate_options(ctx, &source, &release, v)?),
        None => None,
    };
    let mut notes = vec![format!(
        "promoted from release {}/{}",
        source.name, release.number
    )];
    notes.extend(adm.notes());
    notes.extend(reason().map(|r| format!("reason: {r}")));
    let steps = crate::plan::release::steps(&plan_input(&m, &source, &target, &release, &p));
    let job = Promote {
        source: &source,
        release: &release,
        services: &p.services,
        images: &p.images,
        digests: &p.digests,
        sites: &p.sites,
        secrets: &p.secrets,
        units: p.rows.iter().map(|r| r[0].clone()).collect(),
        migrate,
    };
    let run = Run {
        ctx,
        manifest: &m,
        env: &target,
        sha: &release.sha,
        admission: &adm,
        recheck: &|| plan_now(ctx, &m, &source, &target, &release, &p),
        notes,
        job: Job::Promote(job),
    };
    crate::deploy::release::run(run, &steps)
}

/// The promotion as the planner sees it.
fn plan_input(
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Input {
    let sites = p.sites.iter().map(|(site, state)| {
        let s = m.sites.get(site);
        let branch = s.map_or("main", |s| s.production_branch.as_str());
        SiteMove::of(site, state, branch, s.map(|s| s.span))
    });
    Input {
        stage: Stage::Promote,
        env: target.name.clone(),
        hosts: target.hosts.iter().map(|h| h.label()).collect(),
        approval: target.approval == crate::manifest::Approval::Required,
        services: p.services.clone(),
        sites: sites.collect(),
        migration: p.migration.clone(),
        from: Some(source.name.clone()),
        release: release.number,
        abandoned: None,
    }
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
