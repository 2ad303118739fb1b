//! Performing `promote` and `rollback` (`plan/release.rs`): the engine's runner walks the plan
//! and this performer carries each step out. The services' step runs the one fan-out
//! (`deploy/fanout.rs`); the migration step runs `migrate` (`deploy/migrate`); their own steps are
//! put into the trace right after the step that ran them.
//!
//! Two sides, one walk: the real side takes the lock, talks to Cloudflare, writes the records;
//! the recording side (`--dry-run`) runs the fan-out and the migration in their dry-run modes
//! (they read the hosts and the database, and record every change), sends nothing to Cloudflare
//! and writes nothing. Both walk the same steps, so both list the same ids.
//!
//! - `promote.rs`: the source's images on the target's hosts, Pages redeployed, the record;
//! - `rollback.rs`: the release's images back on the hosts, Pages rolled back, the record, the
//!   abandoned release marked bad.
//!
//! What goes where is chosen in `choose_promote.rs` and `choose_rollback.rs` (from the records;
//! read-only), called by the commands (`commands/{promote,rollback}.rs`) and by `plan --promote`
//! and `plan --rollback`; the commands build the plan.

pub mod choose_promote;
pub mod choose_rollback;
mod promote;
mod rollback;

pub use promote::Promote;
pub use rollback::Rollback;

use super::HostResult;
use crate::api::cloudflare::Cloudflare;
use crate::context::Ctx;
use crate::engine::runner::{self, Lines, Perform, Quiet, RunState, Trace};
use crate::error::{Error, Result};
use crate::guard::{Admission, ChangePlan};
use crate::ledger::identity::lock_owner;
use crate::ledger::lock::EnvLock;
use crate::ledger::record::{Deployment, Outcome};
use crate::manifest::{Environment, Manifest};
use crate::plan::release::ReleaseAction;
use crate::plan::{Action, Step};
use crate::state::{LockOwner, PagesState, ReleaseRecord};
use std::collections::BTreeMap;

/// Where a run's effects go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Real,
    /// A dry run: reads, records, changes nothing.
    Recording,
}

/// What promote or rollback does besides the shared steps.
pub enum Job<'a> {
    Promote(Promote<'a>),
    Rollback(Rollback<'a>),
}

/// A promote or rollback, resolved by its command.
pub struct Run<'a> {
    pub ctx: &'a Ctx,
    pub manifest: &'a Manifest,
    pub env: &'a Environment,
    /// The commit the run deploys (the lock's owner, the GitHub deployment).
    pub sha: &'a str,
    pub admission: &'a Admission,
    /// The plan as approved, read again under the lock (called only with an approval).
    pub recheck: &'a dyn Fn() -> Result<ChangePlan>,
    /// Notes for the release record.
    pub notes: Vec<String>,
    pub job: Job<'a>,
}

impl Run<'_> {
    fn stage(&self) -> &'static str {
        match self.job {
            Job::Promote(_) => "promote",
            Job::Rollback(_) => "rollback",
        }
    }

    fn owner(&self) -> LockOwner {
        lock_owner(self.stage(), self.sha)
    }
}

/// Walks `steps` on the real side, or (`--dry-run`) on the recording side, then reports: the
/// host × service matrix, the outputs, `--json` with every step walked.
pub fn run(run: Run, steps: &[Step]) -> Result<()> {
    let ctx = run.ctx;
    let side = if ctx.settings.dry_run {
        Side::Recording
    } else {
        Side::Real
    };
    let mut state = RunState {
        dry_run: side == Side::Recording,
        ..RunState::default()
    };
    let mut p = Performer::new(run, side);
    let (trace, outcome) = if side == Side::Recording {
        ctx.report.info(&format!(
            "{}: would run ({}):",
            p.run.env.name,
            p.run.stage()
        ));
        runner::run(steps, &mut p, &mut Lines(&ctx.report), &mut state)
    } else {
        crate::cancel::install();
        runner::run(steps, &mut p, &mut Quiet, &mut state)
    };
    p.finish(trace, outcome)
}

/// Performs the steps of one promote or rollback.
pub struct Performer<'a> {
    run: Run<'a>,
    side: Side,
    lock: Option<EnvLock<'a>>,
    deployment: Option<Deployment>,
    /// The Cloudflare client of the real side, once made.
    client: Option<Cloudflare>,
    /// The fan-out's rows.
    results: Vec<HostResult>,
    /// The steps a step ran (the fan-out's, the migration's), by its id.
    inner: BTreeMap<String, Trace>,
    /// The migration version reached.
    migrated: Option<String>,
    /// The sites' new deployments.
    pages: BTreeMap<String, PagesState>,
    /// The release: the services' (from the fan-out), then the one recorded.
    record: Option<ReleaseRecord>,
}

impl<'a> Performer<'a> {
    pub fn new(run: Run<'a>, side: Side) -> Performer<'a> {
        Performer {
            run,
            side,
            lock: None,
            deployment: None,
            client: None,
            results: Vec::new(),
            inner: BTreeMap::new(),
            migrated: None,
            pages: BTreeMap::new(),
            record: None,
        }
    }

    fn real(&self) -> bool {
        self.side == Side::Real
    }

    /// The lock on every host, then the approved plan checked again under it.
    fn lock(&mut self) -> Result<()> {
        let r = &self.run;
        let lock = EnvLock::acquire_all(&r.ctx.report, r.env, &r.owner(), None)?;
        self.lock = Some(lock);
        if r.admission.approval.is_some() {
            r.admission.confirm(&(r.recheck)()?)?;
        }
        Ok(())
    }

    /// Ends the walk: the fan-out's matrix, the outputs, `--json` with every step walked (the
    /// inner runs' steps after the step that ran them); on the real side the lock released and
    /// the GitHub deployment finished.
    fn finish(mut self, outer: Trace, outcome: Result<()>) -> Result<()> {
        let trace = merged(outer, &mut self.inner);
        let ctx = self.run.ctx;
        let env = self.run.env;
        if let Err(e) = outcome {
            if !self.results.is_empty() {
                self.summarize(&trace);
            }
            if let Some(d) = self.deployment.take() {
                d.finish(ctx, env, Outcome::Failed, None);
            }
            return Err(e);
        }
        if let Some(lock) = self.lock.take() {
            lock.release_all();
        }
        if let Job::Rollback(rb) = &self.run.job
            && let Some(h) = rb.hint.as_ref().filter(|_| self.real())
        {
            ctx.report.warn(h);
        }
        self.summarize(&trace);
        let Some(record) = self.record.take().filter(|_| self.real()) else {
            ctx.report.info("dry run: nothing was changed");
            return Ok(());
        };
        ctx.report.output("release", &record.number.to_string());
        ctx.report.info(&match &self.run.job {
            Job::Promote(p) => format!(
                "{} is on release {} = release {}",
                env.name,
                record.number,
                p.promoted_from()
            ),
            Job::Rollback(rb) => format!(
                "{} is on release {} (the artifacts of release {})",
                env.name, record.number, rb.target.number
            ),
        });
        let url = record.pages.values().next().map(|p| p.url.clone());
        if let Some(d) = self.deployment.take() {
            d.finish(ctx, env, Outcome::Release(&record), url.as_deref());
        }
        Ok(())
    }

    /// The matrix and outputs of the services' run, and `--json` with `trace`. A promote without
    /// services has no matrix: its `--json` document says the release and the steps.
    fn summarize(&self, trace: &Trace) {
        let (ctx, env) = (self.run.ctx, self.run.env);
        if self.results.is_empty() && matches!(self.run.job, Job::Promote(_)) {
            if ctx.report.json() {
                let release = self.record.as_ref().filter(|_| self.real());
                ctx.report.json_document(&serde_json::json!({
                    "env": env.name,
                    "release": release.map(|r| r.number),
                    "services": [],
                    "hosts": [],
                    "steps": trace,
                }));
            }
            return;
        }
        crate::deploy::summary::summarize(&ctx.report, &env.name, &env.hosts, &self.results, trace);
    }
}

impl Perform for Performer<'_> {
    fn perform(&mut self, step: &Step, _: &mut RunState) -> Result<()> {
        let Action::Release(action) = &step.action else {
            return Err(Error::Bug(format!(
                "{}: step {} is not a release step",
                self.run.stage(),
                step.id
            )));
        };
        match action {
            ReleaseAction::Lock { .. } if self.real() => self.lock(),
            ReleaseAction::Start { task, .. } if self.real() => {
                let r = &self.run;
                self.deployment = Some(Deployment::start(r.ctx, r.env, r.sha, task));
                Ok(())
            }
            ReleaseAction::Lock { .. } | ReleaseAction::Start { .. } => Ok(()),
            ReleaseAction::Services { .. } => {
                crate::cancel::check()?;
                let (results, trace, failure) = match &self.run.job {
                    Job::Promote(p) => p.services(&self.run, self.side)?,
                    Job::Rollback(rb) => rb.services(&self.run, self.side)?,
                };
                self.record = results.iter().find_map(|r| r.record.clone());
                self.results = results;
                self.inner.insert(step.id.clone(), trace);
                failure.map_or(Ok(()), Err)
            }
            _ => self.perform_job(step, action),
        }
    }
}

impl Performer<'_> {
    /// The steps only one of the commands takes.
    fn perform_job(&mut self, step: &Step, action: &ReleaseAction) -> Result<()> {
        let site = step.unit.as_deref().unwrap_or_default().to_string();
        match (action, &self.run.job) {
            (ReleaseAction::Migrate { .. }, Job::Promote(p)) => {
                let (version, trace) = p.migrate(&self.run, self.side)?;
                self.migrated = version;
                self.inner.insert(step.id.clone(), trace);
                Ok(())
            }
            (ReleaseAction::Redeploy { .. }, Job::Promote(p)) if self.real() => {
                self.cancelled_before_the_sites()?;
                let state = p.site(&site, step)?;
                let cf = client(&mut self.client, self.run.ctx)?;
                let new = p.redeploy(&self.run, cf, &site, state)?;
                self.pages.insert(site, new);
                Ok(())
            }
            (ReleaseAction::PagesBack { .. }, Job::Rollback(rb)) if self.real() => {
                self.cancelled_before_the_sites()?;
                let state = rb.site(&site, step)?;
                let new = rollback::pages_back(self.run.ctx, &site, state)?;
                self.pages.insert(site, new);
                Ok(())
            }
            (ReleaseAction::Record { .. }, Job::Promote(p)) if self.real() => {
                let record =
                    p.record(&self.run, self.record.take(), &self.migrated, &self.pages)?;
                self.record = Some(record);
                Ok(())
            }
            (ReleaseAction::Record { .. }, Job::Rollback(rb)) if self.real() => {
                let record = rb.record(&self.run, self.record.take(), &self.pages)?;
                self.record = Some(record);
                Ok(())
            }
            (ReleaseAction::MarkBad { .. }, Job::Rollback(rb)) if self.real() => {
                let record = self.record.as_ref().ok_or_else(|| {
                    Error::Bug(format!("rollback: step {} before the record", step.id))
                })?;
                rb.mark_bad(&self.run, record)
            }
            (ReleaseAction::Redeploy { .. } | ReleaseAction::Record { .. }, Job::Promote(_))
            | (
                ReleaseAction::PagesBack { .. }
                | ReleaseAction::Record { .. }
                | ReleaseAction::MarkBad { .. },
                Job::Rollback(_),
            ) => Ok(()),
            _ => Err(Error::Bug(format!(
                "{}: step {} is not one of its steps",
                self.run.stage(),
                step.id
            ))),
        }
    }

    /// A signal stops the run before the first site (a site put back is recorded).
    fn cancelled_before_the_sites(&self) -> Result<()> {
        if self.pages.is_empty() {
            crate::cancel::check()?;
        }
        Ok(())
    }
}

/// The Cloudflare client of the real side, made at the first request.
fn client<'c>(client: &'c mut Option<Cloudflare>, ctx: &Ctx) -> Result<&'c Cloudflare> {
    if client.is_none() {
        *client = Some(crate::deploy::pages::client(ctx)?);
    }
    Ok(client.as_ref().expect("made above"))
}

/// The steps walked, each inner run's steps right after the step that ran it.
fn merged(outer: Trace, inner: &mut BTreeMap<String, Trace>) -> Trace {
    let mut out = Trace::default();
    for e in outer.0 {
        let ran = inner.remove(&e.id);
        out.0.push(e);
        if let Some(t) = ran {
            out.0.extend(t.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runner::{TraceEntry, Walked};

    fn entry(id: &str) -> TraceEntry {
        TraceEntry {
            id: id.into(),
            walked: Walked::Performed,
            describe: String::new(),
        }
    }

    fn trace(ids: &[&str]) -> Trace {
        Trace(ids.iter().map(|i| entry(i)).collect())
    }

    #[test]
    fn the_inner_runs_steps_follow_the_step_that_ran_them() {
        let mut inner = BTreeMap::new();
        inner.insert(
            "promote:services".to_string(),
            trace(&["up:lock@local", "up:gate@local"]),
        );
        inner.insert("promote:migrate".to_string(), trace(&["migrate:m:lock"]));
        let t = merged(
            trace(&[
                "promote:lock",
                "promote:migrate",
                "promote:services",
                "promote:record",
            ]),
            &mut inner,
        );
        assert_eq!(
            t.ids(),
            [
                "promote:lock",
                "promote:migrate",
                "migrate:m:lock",
                "promote:services",
                "up:lock@local",
                "up:gate@local",
                "promote:record"
            ]
        );
        assert!(inner.is_empty());
    }

    #[test]
    fn the_recording_side_walks_a_rollback_of_a_site_and_changes_nothing() {
        use crate::plan::release::{Input, SiteMove, Stage, steps};
        let m = crate::manifest::parse(crate::diag::Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  production:\n    hosts: []\n    dir: /srv/shop\nsites:\n  docs:\n    project: shop-docs\n    dir: site\n",
        ))
        .unwrap();
        let env = &m.environments["production"];
        let ctx = Ctx::new(
            crate::settings::Settings {
                dry_run: true,
                ..Default::default()
            },
            crate::report::Report::buffered(false, None),
        );
        let state = PagesState {
            project: "shop-docs".into(),
            deployment_id: "d1".into(),
            url: "https://d1.shop-docs.pages.dev".into(),
            environment: "production".into(),
            ..Default::default()
        };
        let sites = vec![("docs".to_string(), state.clone())];
        let (target, abandoned) = (ReleaseRecord::default(), ReleaseRecord::default());
        let plan = steps(&Input {
            stage: Stage::Rollback,
            env: env.name.clone(),
            hosts: Vec::new(),
            approval: false,
            services: Vec::new(),
            sites: vec![SiteMove::of("docs", &state, "main", None)],
            migration: None,
            from: None,
            release: 1,
            abandoned: Some(2),
        });
        let admission = Admission {
            env: env.name.clone(),
            command: "rollback".into(),
            plan_hash: None,
            approval: None,
            covers: Vec::new(),
            dirty: false,
        };
        let (images, digests) = (BTreeMap::new(), BTreeMap::new());
        let job = Rollback {
            releases: &[],
            target: &target,
            abandoned: Some(&abandoned),
            services: &[],
            images: &images,
            digests: &digests,
            sites: &sites,
            hint: None,
        };
        let run = Run {
            ctx: &ctx,
            manifest: &m,
            env,
            sha: "abc",
            admission: &admission,
            recheck: &|| panic!("no approval, no recheck"),
            notes: Vec::new(),
            job: Job::Rollback(job),
        };
        let mut p = Performer::new(run, Side::Recording);
        let mut state = RunState {
            dry_run: true,
            ..RunState::default()
        };
        let (trace, outcome) = runner::run(&plan, &mut p, &mut Quiet, &mut state);
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            trace.ids(),
            [
                "rollback:start",
                "rollback:pages:docs",
                "rollback:record",
                "rollback:mark-bad"
            ]
        );
        assert!(trace.0.iter().all(|e| e.walked == Walked::Performed));
        assert!(p.client.is_none(), "no client, no request to Cloudflare");
        assert!(p.deployment.is_none() && p.lock.is_none());
        assert!(p.pages.is_empty() && p.record.is_none(), "nothing recorded");
        assert!(p.finish(trace, outcome).is_ok());
        let printed: Vec<String> = ctx.report.printed().into_iter().map(|(_, l)| l).collect();
        assert!(
            printed
                .iter()
                .any(|l| l.contains("dry run: nothing was changed")),
            "{printed:?}"
        );
    }
}
