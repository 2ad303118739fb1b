//! Promote's own steps: the migration up to the source's version, the source's images on the
//! target's hosts (the fan-out), a recorded Pages deployment created again on the production
//! branch, and the record that says where it all came from.

use super::{Run, Side};
use crate::api::cloudflare::Cloudflare;
use crate::cmd::docker_engine as de;
use crate::deploy::fanout::Fanout;
use crate::deploy::{HostResult, UpRequest};
use crate::engine::runner::Trace;
use crate::error::{Error, GateFailure, Result};
use crate::ledger::store;
use crate::manifest::{Environment, Host, Manifest};
use crate::plan::Step;
use crate::state::{PagesState, ReleaseRecord};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a promoted Pages deployment may take to become live.
const PAGES_WAIT: Duration = Duration::from_secs(600);

/// What a promotion puts on the target, chosen by the command from both ledgers.
pub struct Promote<'a> {
    pub source: &'a Environment,
    /// The source's live release.
    pub release: &'a ReleaseRecord,
    /// Manifest service keys to deploy.
    pub services: &'a [String],
    /// compose service → (image reference, image id) from the source.
    pub images: &'a BTreeMap<String, (String, String)>,
    /// compose service → the source's repo digest: deployed by it, pulled on the target.
    pub digests: &'a BTreeMap<String, String>,
    /// site → the source's Pages deployment.
    pub sites: &'a [(String, PagesState)],
    /// The target's `secrets:` values, written with the services.
    pub secrets: &'a crate::deploy::secrets::Values,
    /// The units promoted (the audit line of a record without services).
    pub units: Vec<String>,
    /// The migration up to the source's version, when the target's differs.
    pub migrate: Option<crate::deploy::migrate::Options>,
}

/// What the fan-out did: its rows, its steps, the error that stopped it.
pub type Fanned = (Vec<HostResult>, Trace, Option<Error>);

impl Promote<'_> {
    /// `staging/4`: the release the target's record says it came from.
    pub fn promoted_from(&self) -> String {
        format!("{}/{}", self.source.name, self.release.number)
    }

    /// The migrations through `migrate`'s own run (a dry run on the recording side), with its
    /// approval gate (covered by promote's). Returns the version reached and its steps.
    pub(super) fn migrate(&self, run: &Run, side: Side) -> Result<(Option<String>, Trace)> {
        let (Some(opts), Some(migrations)) = (&self.migrate, &run.manifest.migrations) else {
            return Ok((None, Trace::default()));
        };
        let mut opts = opts.clone();
        opts.dry_run = side == Side::Recording;
        opts.document = false;
        let outcome = crate::deploy::migrate::run_with(run.ctx, run.env, migrations, opts)?;
        Ok((outcome.version.map(|v| v.to_string()), outcome.trace))
    }

    /// Deploys the source's images on every target host through the fan-out: by repo digest
    /// where the source recorded one (pulled on the target from its registry), else shipped by
    /// id from the source's first host; checks after each host that it runs the source's images
    /// (same id or digest).
    pub(super) fn services(&self, run: &Run, side: Side) -> Result<Fanned> {
        let (ctx, target) = (run.ctx, run.env);
        let Some(src_host) = self.source.hosts.first() else {
            return Err(GateFailure::new(format!(
                "environment `{}` has no hosts to take the images from",
                self.source.name
            ))
            .into());
        };
        let images = self
            .images
            .iter()
            .map(|(cs, (image, _))| {
                let by = self.digests.get(cs).unwrap_or(image);
                (cs.clone(), by.clone())
            })
            .collect();
        let mut req = UpRequest::recorded(
            &target.name,
            self.services.to_vec(),
            images,
            run.owner(),
            store::repo_root(ctx),
            run.notes.clone(),
        );
        req.secrets = self.secrets.clone();
        req.ship_from = Some(src_host.clone());
        for (cs, (image, id)) in self.images {
            match self.digests.get(cs) {
                Some(d) => {
                    for host in &target.hosts {
                        ctx.report.info(&format!(
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
        let check = |host: &Host, r: &HostResult| self.runs_the_source(run.manifest, host, r);
        let out = Fanout {
            report: &ctx.report,
            env: target,
            manifest: run.manifest,
            req: &req,
            stage: "promote",
            dry_run: side == Side::Recording,
            confirm: &|| Ok(()),
            after_host: &check,
        }
        .run();
        let recorded = out.results.iter().any(|r| r.record.is_some());
        if side == Side::Real && out.failure.is_none() && !recorded {
            return Err(
                GateFailure::new(format!("environment `{}` has no hosts", target.name)).into(),
            );
        }
        Ok((out.results, out.trace, out.failure))
    }

    /// The exact artifacts: the ids a host runs now must be the source's.
    fn runs_the_source(&self, m: &Manifest, host: &Host, r: &HostResult) -> Result<()> {
        let Some(written) = &r.record else {
            return Ok(());
        };
        for (cs, (_, id)) in self.images {
            let now = written.services.get(cs);
            let running = now.map(|s| s.image_id.as_str()).unwrap_or("");
            let same_digest = match (now.and_then(|s| s.digest.as_deref()), self.digests.get(cs)) {
                (Some(a), Some(b)) => de::digest_part(a) == de::digest_part(b),
                _ => false,
            };
            if !id.is_empty() && running != id && !same_digest {
                let mut gate = GateFailure::new(format!(
                    "{cs} runs image {running}, not {id} from {}",
                    self.source.name
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

    /// The source's deployment of the step's site.
    pub(super) fn site(&self, site: &str, step: &Step) -> Result<&PagesState> {
        self.sites
            .iter()
            .find(|(s, _)| s == site)
            .map(|(_, p)| p)
            .ok_or_else(|| Error::Bug(format!("promote: step {} names no site", step.id)))
    }

    /// The source's deployment of `site` created again on the production branch: the same
    /// files, nothing uploaded or built.
    pub(super) fn redeploy(
        &self,
        run: &Run,
        cf: &Cloudflare,
        site: &str,
        state: &PagesState,
    ) -> Result<PagesState> {
        let report = &run.ctx.report;
        let branch = run
            .manifest
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
                .or_else(|| Some(self.release.sha.clone())),
            commit_message: Some(format!(
                "deploy-action promote of release {} of {}",
                self.release.number, self.source.name
            )),
            commit_dirty: Some(false),
        };
        let new = crate::deploy::pages::redeploy(cf, state, &git, PAGES_WAIT)?;
        report.info(&format!("{site}: {} ({})", new.url, new.environment));
        Ok(new)
    }

    /// The target's release: the services' record completed, else a new one; either way saying
    /// which release it was promoted from, written on every host (or its tag).
    pub(super) fn record(
        &self,
        run: &Run,
        services: Option<ReleaseRecord>,
        migrated: &Option<String>,
        pages: &BTreeMap<String, PagesState>,
    ) -> Result<ReleaseRecord> {
        let (ctx, env) = (run.ctx, run.env);
        let mut record = match services {
            Some(mut r) => {
                if migrated.is_some() {
                    r.migration_version = migrated.clone();
                }
                r.pages.extend(pages.clone());
                r
            }
            None => store::append(ctx, env, &run.owner(), "promote", &self.units, &|r| {
                if migrated.is_some() {
                    r.migration_version = migrated.clone();
                }
                r.pages.extend(pages.clone());
                r.notes.extend(run.notes.iter().cloned());
            })?,
        };
        record.promoted_from = Some(self.promoted_from());
        store::rewrite(ctx, env, &record)?;
        Ok(record)
    }
}
