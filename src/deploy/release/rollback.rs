//! Rollback's own steps: the release's images back on the hosts (the fan-out, after every host is
//! checked for them), a Pages site back on its recorded deployment, the record, and the abandoned
//! release marked bad.

use super::promote::Fanned;
use super::{Run, Side};
use crate::cmd::docker_engine as de;
use crate::context::Ctx;
use crate::deploy::UpRequest;
use crate::deploy::fanout::Fanout;
use crate::error::{Error, GateFailure, Result};
use crate::exec;
use crate::ledger::store;
use crate::manifest::Environment;
use crate::plan::Step;
use crate::state::{PagesState, ReleaseRecord, ReleaseStatus, ReleaseStatusField};
use std::collections::BTreeMap;

/// What a rollback puts back, chosen by the command from the ledger.
pub struct Rollback<'a> {
    /// The environment's releases, as read.
    pub releases: &'a [ReleaseRecord],
    /// The release gone back to.
    pub target: &'a ReleaseRecord,
    /// The live release it abandons (marked bad).
    pub abandoned: Option<&'a ReleaseRecord>,
    /// Manifest service keys to deploy.
    pub services: &'a [String],
    /// compose service → the image reference to deploy: the release's tag on the hosts, else
    /// its repo digest, else its recorded reference.
    pub images: &'a BTreeMap<String, String>,
    /// compose service → the release's repo digest, deployed where the tag is gone.
    pub digests: &'a BTreeMap<String, String>,
    /// site → the release's Pages deployment.
    pub sites: &'a [(String, PagesState)],
    /// The `migrate down` command, warned at the end, when the database is elsewhere.
    pub hint: Option<String>,
}

impl Rollback<'_> {
    /// The release's images on every host, checked before any host changes, then the fan-out.
    pub(super) fn services(&self, run: &Run, side: Side) -> Result<Fanned> {
        let (ctx, env) = (run.ctx, run.env);
        let images = on_the_hosts(ctx, env, self.target, self.images, self.digests)?;
        let req = self.request(run, &images)?;
        let out = Fanout {
            report: &ctx.report,
            env,
            manifest: run.manifest,
            req: &req,
            stage: "rollback",
            dry_run: side == Side::Recording,
            confirm: &|| Ok(()),
            after_host: &|_, _| Ok(()),
        }
        .run();
        Ok((out.results, out.trace, out.failure))
    }

    /// The request of the services' deploy: the release's images and, when every host still
    /// keeps them, the compose and env files of the newest `up` release up to the target.
    fn request(&self, run: &Run, images: &BTreeMap<String, String>) -> Result<UpRequest> {
        let (ctx, env) = (run.ctx, run.env);
        let report = &ctx.report;
        let files_from = self
            .releases
            .iter()
            .filter(|r| r.number <= self.target.number && r.services.values().any(|s| s.deployed))
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
                self.services.to_vec(),
                images.clone(),
                run.owner(),
                store::repo_root(ctx),
                run.notes.clone(),
            )
        })
    }

    /// The release's deployment of the step's site.
    pub(super) fn site(&self, site: &str, step: &Step) -> Result<&PagesState> {
        self.sites
            .iter()
            .find(|(s, _)| s == site)
            .map(|(_, p)| p)
            .ok_or_else(|| Error::Bug(format!("rollback: step {} names no site", step.id)))
    }

    /// The new release: the services' record with the sites put back, else a new one.
    pub(super) fn record(
        &self,
        run: &Run,
        services: Option<ReleaseRecord>,
        pages: &BTreeMap<String, PagesState>,
    ) -> Result<ReleaseRecord> {
        let (ctx, env) = (run.ctx, run.env);
        if let Some(mut r) = services {
            if !pages.is_empty() {
                r.pages.extend(pages.clone());
                store::rewrite(ctx, env, &r)?;
            }
            return Ok(r);
        }
        let units: Vec<String> = self.sites.iter().map(|(s, _)| s.clone()).collect();
        store::append(
            ctx,
            env,
            &run.owner(),
            "rollback",
            &units,
            &|r: &mut ReleaseRecord| {
                r.pages.extend(pages.clone());
                r.notes.extend(run.notes.iter().cloned());
            },
        )
    }

    /// Marks the abandoned release `bad`: it is never chosen again.
    pub(super) fn mark_bad(&self, run: &Run, record: &ReleaseRecord) -> Result<()> {
        let Some(bad) = self.abandoned.filter(|a| a.number != record.number) else {
            return Ok(());
        };
        let mut marked = bad.clone();
        marked.status = ReleaseStatusField(ReleaseStatus::Bad);
        marked.notes.push(format!(
            "abandoned: rolled back to release {} by release {}",
            self.target.number, record.number
        ));
        store::rewrite(run.ctx, run.env, &marked)?;
        run.ctx
            .report
            .info(&format!("release {} marked bad", bad.number));
        Ok(())
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
            let Some(d) = digests.get(cs) else {
                return Err(GateFailure::new(format!(
                    "image {image} of release {} is no longer on the host (retention keeps the last {} releases) and the release recorded no repo digest to pull it by",
                    target.number,
                    env.keep_releases
                ))
                .host(host.label())
                .help("roll back to a newer release or deploy an image with `up --image`")
                .into());
            };
            if out.insert(cs.clone(), d.clone()).as_ref() != Some(d) {
                report.info(&format!(
                    "{}: {image} of release {} is no longer on the host; {cs} goes back by its digest {d} (pulled where missing)",
                    host.label(),
                    target.number
                ));
            }
        }
    }
    Ok(out)
}

/// Puts one site back on a recorded deployment: production deployments through Cloudflare's
/// rollback endpoint; a preview deployment keeps serving at its own URL, so it is only recorded.
pub(super) fn pages_back(ctx: &Ctx, site: &str, p: &PagesState) -> Result<PagesState> {
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
