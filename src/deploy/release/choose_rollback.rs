//! What `rollback` changes, chosen from the records: the release to go back to (by default or as
//! `--to` names it), the release abandoned, and unit by unit what differs from now (the services'
//! images, the sites' deployments), with the `migrate down` hint. `rollback` runs it;
//! `plan --rollback` shows it.

use crate::context::Ctx;
use crate::error::{Error, GateFailure, Result};
use crate::guard::ChangePlan;
use crate::ledger::store;
use crate::ledger::{self, Selector, TargetError};
use crate::manifest::{Environment, MIGRATIONS_UNIT, Manifest};
use crate::plan::release::{Input, SiteMove, Stage};
use crate::state::{PagesState, ReleaseRecord};
use std::collections::BTreeMap;

/// One unit that goes back, for the plan and the summary.
pub struct Change {
    pub unit: String,
    pub kind: &'static str,
    pub from: String,
    pub to: String,
}

/// What a rollback will do, chosen from the ledger.
pub struct Choice {
    pub loaded: store::Loaded,
    pub target: ReleaseRecord,
    pub abandoned: Option<ReleaseRecord>,
    pub then: ledger::Units,
    pub now: ledger::Units,
    pub changes: Vec<Change>,
    pub services: Vec<String>,
    /// compose service → the image reference to deploy: the release's tag on the hosts, else its
    /// repo digest, else its recorded reference.
    pub images: BTreeMap<String, String>,
    /// compose service → the release's repo digest (`repo@sha256:…`), deployed (and pulled)
    /// where the release tag is gone, so a moved tag never changes what comes back.
    pub digests: BTreeMap<String, String>,
    pub sites: Vec<(String, PagesState)>,
}

impl Choice {
    /// The text an approver reads; its hash is what the approval is bound to.
    pub fn plan(&self, env: &str) -> ChangePlan {
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
pub fn choose(ctx: &Ctx, m: &Manifest, env: &Environment, to: Option<&str>) -> Result<Choice> {
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

/// The rollback as the planner sees it.
pub fn plan_input(m: &Manifest, env: &Environment, choice: &Choice) -> Input {
    let sites = choice.sites.iter().map(|(site, state)| {
        let s = m.sites.get(site);
        let branch = s.map_or("", |s| s.production_branch.as_str());
        SiteMove::of(site, state, branch, s.map(|s| s.span))
    });
    Input {
        stage: Stage::Rollback,
        env: env.name.clone(),
        hosts: env.hosts.iter().map(|h| h.label()).collect(),
        approval: env.approval == crate::manifest::Approval::Required,
        services: choice.services.clone(),
        sites: sites.collect(),
        migration: None,
        from: None,
        release: choice.target.number,
        abandoned: choice.abandoned.as_ref().map(|a| a.number),
    }
}

/// The `migrate down` command when the database is at another version than the target ran with.
pub fn migration_hint(
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
