//! What `promote` changes on the target, chosen from the records: the source and target
//! environments, the source's live release, and unit by unit what differs (the services' images,
//! the sites' deployments, the migration version). `promote` runs it; `plan --promote` shows it.

use crate::context::Ctx;
use crate::error::{Error, GateFailure, Result};
use crate::ledger::store;
use crate::ledger::{self, Units};
use crate::manifest::{Environment, MIGRATIONS_UNIT, Manifest};
use crate::plan::release::{Input, SiteMove, Stage};
use crate::state::{PagesState, ReleaseRecord};
use std::collections::BTreeMap;

/// What the promotion changes on the target.
#[derive(Default)]
pub struct Promotion {
    /// Manifest service keys to deploy.
    pub services: Vec<String>,
    /// compose service → (image reference, image id) from the source.
    pub images: BTreeMap<String, (String, String)>,
    /// compose service → the source's repo digest (`repo@sha256:…`): deployed by it, pulled on
    /// the target from its registry, instead of shipped by id.
    pub digests: BTreeMap<String, String>,
    /// site → the source's Pages deployment.
    pub sites: Vec<(String, PagesState)>,
    /// The migration version to reach, when it differs.
    pub migration: Option<String>,
    /// unit, kind, from, to.
    pub rows: Vec<[String; 4]>,
    /// The target's `secrets:` values, written with the services (read before anything changes).
    pub secrets: crate::deploy::secrets::Values,
}

/// A promotion chosen: from where, to where, which release, and what changes.
pub struct Chosen {
    pub source: Environment,
    pub target: Environment,
    /// The source's live release.
    pub release: ReleaseRecord,
    pub promotion: Promotion,
}

/// The environments (`--from`, `--to`, else `--env` and `promote_from`), the source's live
/// release and what differs on the target (`--only` applies). Reads the records; changes nothing.
pub fn choose(ctx: &Ctx, m: &Manifest, from: Option<&str>, to: Option<&str>) -> Result<Chosen> {
    let (source, target) = environments(m, from, to, ctx.settings.env.as_deref())?;
    crate::changes::select_only(m, &ctx.settings.only)?;
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
    let promotion = promotion(m, ctx, &want, &have);
    Ok(Chosen {
        source,
        target,
        release,
        promotion,
    })
}

/// The promotion as the planner sees it.
pub fn plan_input(
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
pub fn promotion(m: &Manifest, ctx: &Ctx, want: &Units, have: &Units) -> Promotion {
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
