//! The Pages performer: the one place where a `pages` step becomes effects. The engine's runner
//! walks the plan (`plan/pages.rs`) and hands each step here; this file keeps what earlier steps
//! found (the walked sites, the git metadata, Cloudflare's answers, the deployments) for the later
//! ones.
//!
//! Two sides, one walk: the real side runs the builds on the local executor and talks to
//! Cloudflare; the recording side (`--dry-run`) runs the builds on the recording executor and
//! sends nothing to Cloudflare. The read-only steps (the walk and hash, the git metadata) are real
//! on both, so a dry run shows every file and its hash.

use super::local::{self, Walked};
use super::remote::{self, SiteRemote};
use super::report;
use super::sites::{self, GitMeta, Setup, SiteJob};
use crate::api::cloudflare::Cloudflare;
use crate::context::Ctx;
use crate::engine::runner::{Perform, RunState, Trace};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::guard::Admission;
use crate::ledger::publish::PagesRelease;
use crate::manifest::Environment;
use crate::plan::pages::PagesAction;
use crate::plan::{Action, Step};
use crate::settings::PagesSettings;
use crate::state::PagesState;
use std::path::PathBuf;
use std::time::Duration;

/// Where a run's effects go.
pub enum Side<'a> {
    /// Builds run, requests go to Cloudflare through the client `make_client` gives (made at the
    /// first request).
    Real {
        make_client: &'a dyn Fn() -> Result<Cloudflare>,
    },
    /// A dry run: builds are recorded, nothing is sent.
    Recording,
}

/// One site, and what its steps found.
struct SiteRun {
    job: SiteJob,
    walked: Option<Walked>,
    remote: SiteRemote,
}

/// Performs the steps of one `pages` run.
pub struct Performer<'a> {
    ctx: &'a Ctx,
    args: &'a PagesSettings,
    root: PathBuf,
    sites: Vec<SiteRun>,
    guarded: Option<Environment>,
    recorded: Option<Environment>,
    /// The builds' executor: local, or recording.
    build: Box<dyn Executor>,
    side: Side<'a>,
    /// The Cloudflare client of the real side, once made.
    client: Option<Cloudflare>,
    git: Option<GitMeta>,
    admission: Admission,
    release: Option<PagesRelease>,
    results: Vec<(String, PagesState)>,
    rows: Vec<Vec<String>>,
    reported: bool,
}

impl<'a> Performer<'a> {
    pub fn new(
        ctx: &'a Ctx,
        args: &'a PagesSettings,
        setup: Setup,
        build: Box<dyn Executor>,
        side: Side<'a>,
    ) -> Performer<'a> {
        let admission = Admission {
            env: setup
                .guarded
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            command: "pages".into(),
            plan_hash: None,
            approval: None,
            covers: Vec::new(),
            dirty: false,
        };
        Performer {
            ctx,
            args,
            root: setup.root,
            sites: setup
                .sites
                .into_iter()
                .map(|job| SiteRun {
                    job,
                    walked: None,
                    remote: SiteRemote::default(),
                })
                .collect(),
            guarded: setup.guarded,
            recorded: setup.recorded,
            build,
            side,
            client: None,
            git: None,
            admission,
            release: None,
            results: Vec::new(),
            rows: Vec::new(),
            reported: false,
        }
    }

    fn recording(&self) -> bool {
        matches!(self.side, Side::Recording)
    }

    fn site_index(&self, step: &Step) -> Result<usize> {
        let name = step.unit.as_deref().unwrap_or_default();
        self.sites
            .iter()
            .position(|s| s.job.plan.name == name)
            .ok_or_else(|| internal(step, "names no site of the run"))
    }

    fn git(&self) -> GitMeta {
        self.git.clone().unwrap_or_default()
    }

    /// Makes the Cloudflare client before the first request (the real side).
    fn connect(&mut self) -> Result<()> {
        if let (Side::Real { make_client }, None) = (&self.side, &self.client) {
            self.client = Some(make_client()?);
        }
        Ok(())
    }

    fn walk(&mut self, i: usize) -> Result<()> {
        let save_cache = !self.recording();
        let job = &self.sites[i].job;
        let w = local::walk_site(self.ctx, &self.root, &job.plan.name, &job.path, save_cache)?;
        if self.recording() {
            let table = local::file_table(&job.plan.name, &job.plan.project, &w);
            self.ctx.report.summary(&table);
        }
        self.sites[i].walked = Some(w);
        Ok(())
    }

    /// The deploy rules (exit 2 on a broken one; a dry run warns). `--allow-dirty` letting a
    /// dirty tree through goes into the release's notes.
    fn rules(&mut self, step: &Step) -> Result<()> {
        let env = self
            .guarded
            .as_ref()
            .ok_or_else(|| internal(step, "needs a guarded environment"))?;
        self.admission.dirty = crate::guard::check_rules(self.ctx, env, "pages", &self.root)?;
        Ok(())
    }

    /// The branch and commit. A dry run needs no branch (it sends nothing); a real one refuses
    /// to guess it.
    fn git_meta(&mut self) -> Result<()> {
        self.git = Some(match sites::git_meta(self.args, &self.root) {
            Err(_) if self.recording() => GitMeta::default(),
            other => other?,
        });
        Ok(())
    }

    /// The approval of exactly these files (the plan holds every file's hash). Once approved,
    /// every site is walked again: what is uploaded must be what was approved.
    fn approve(&mut self, step: &Step) -> Result<()> {
        let env = self
            .guarded
            .clone()
            .ok_or_else(|| internal(step, "needs a guarded environment"))?;
        let git = self.git();
        let plan = |sites: &[SiteRun]| -> Result<crate::guard::ChangePlan> {
            let walked: Vec<(&SiteJob, &Walked)> = sites
                .iter()
                .filter_map(|s| s.walked.as_ref().map(|w| (&s.job, w)))
                .collect();
            Ok(report::change_plan(&env.name, &walked, &git))
        };
        let adm = crate::guard::approve(self.ctx, &env, "pages", self.admission.dirty, &|| {
            plan(&self.sites)
        })?;
        if adm.approval.is_some() {
            for i in 0..self.sites.len() {
                self.walk(i)?;
            }
            adm.confirm(&plan(&self.sites)?)?;
        }
        self.admission = adm;
        Ok(())
    }

    fn start(&mut self) {
        if let (false, Some(env)) = (self.recording(), &self.recorded) {
            self.release = Some(PagesRelease::start(self.ctx, env));
        }
    }

    /// The Cloudflare steps of site `i`.
    fn remote(&mut self, i: usize, step: &Step, action: &PagesAction) -> Result<()> {
        let ctx = self.ctx;
        let git = self.git();
        self.connect()?;
        let Some(cf) = &self.client else {
            return Ok(());
        };
        let site = &mut self.sites[i];
        let (name, project) = (site.job.plan.name.as_str(), site.job.plan.project.as_str());
        let what = format!("site `{name}`");
        let Some(w) = site.walked.as_ref() else {
            return Err(internal(step, "comes before its site's walk"));
        };
        match action {
            PagesAction::CheckMissing { .. } => {
                let branch = site.job.plan.production_branch.as_deref();
                site.remote = remote::check_missing(ctx, cf, name, project, branch, w)?;
            }
            PagesAction::Upload { concurrency, .. } => {
                remote::upload(ctx, cf, name, project, &site.remote, *concurrency)?
            }
            PagesAction::UpsertHashes { .. } => remote::upsert(ctx, cf, name, &site.remote),
            PagesAction::Deploy { .. } => {
                let request = remote::request(w, &git);
                let before = site.remote.before.take();
                let on_created = |d: &_, adopted| remote::on_created(ctx, name, d, adopted);
                let d = remote::create(cf, &what, project, &request, before, &on_created)?;
                site.remote.request = Some(request);
                site.remote.created = Some(d);
            }
            PagesAction::Wait { timeout_secs, .. } => {
                let wait = Duration::from_secs(*timeout_secs);
                let created = site
                    .remote
                    .created
                    .as_ref()
                    .ok_or_else(|| internal(step, "comes before its deployment"))?;
                let d = remote::wait(cf, &what, project, created, wait)?;
                let live = remote::live(ctx, (name, project), w, &site.remote, &d, &git);
                self.rows.push(live.row);
                self.results.push((name.to_string(), live.state));
            }
            _ => return Err(internal(step, "is not a Cloudflare step")),
        }
        Ok(())
    }

    /// The summary and the step outputs of what was deployed, once (a dry run deployed nothing).
    fn report_results(&mut self) {
        if self.reported || self.results.is_empty() {
            return;
        }
        self.reported = true;
        self.ctx.report.summary(&report::summary(&self.rows));
        report::outputs(self.ctx, &self.results);
    }

    fn record(&mut self) -> Result<()> {
        self.report_results();
        match self.release.take() {
            Some(release) => release.record(self.ctx, &self.results, &self.admission.notes()),
            None => Ok(()),
        }
    }

    /// Ends the run the runner walked: on success, the results; on failure, what was deployed
    /// before it (those sites stay deployed: said before failing) and a failed GitHub deployment.
    /// With `--json`, the document with the run's steps.
    pub fn finish(
        mut self,
        trace: &Trace,
        outcome: Result<()>,
    ) -> Result<Vec<(String, PagesState)>> {
        self.report_results();
        if self.ctx.settings.json && (outcome.is_ok() || !self.results.is_empty()) {
            let doc = report::json_document(&self.results, trace);
            self.ctx.report.json_document(&doc);
        }
        match outcome {
            Ok(()) => Ok(self.results),
            Err(e) => {
                if let Some(release) = self.release.take() {
                    release.failed(self.ctx);
                }
                Err(e)
            }
        }
    }
}

/// A step this performer cannot take: a plan and performer out of step (a bug, exit 1).
fn internal(step: &Step, what: &str) -> Error {
    Error::Bug(format!("pages: step {} {what}", step.id))
}

impl Perform for Performer<'_> {
    fn perform(&mut self, step: &Step, _state: &mut RunState) -> Result<()> {
        let action = match &step.action {
            Action::Run { cmd } => {
                let i = self.site_index(step)?;
                let show = !self.recording();
                let name = self.sites[i].job.plan.name.clone();
                return local::build(self.ctx, self.build.as_mut(), &name, cmd, show);
            }
            Action::Pages(a) => a,
            _ => return Err(internal(step, "is not a pages step")),
        };
        match action {
            PagesAction::Walk { .. } => {
                let i = self.site_index(step)?;
                self.walk(i)
            }
            PagesAction::Rules { .. } => self.rules(step),
            PagesAction::GitMeta => self.git_meta(),
            PagesAction::Approval { .. } => self.approve(step),
            PagesAction::Start { .. } => {
                self.start();
                Ok(())
            }
            PagesAction::Record { .. } => self.record(),
            remote => {
                let i = self.site_index(step)?;
                self.remote(i, step, remote)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runner::{self, Quiet, Walked as W};
    use crate::exec::dry_run::{DryRunExecutor, Recording};
    use crate::plan::pages::{SitePlan, steps};

    fn ctx(dry_run: bool) -> Ctx {
        Ctx::new(
            crate::settings::Settings {
                dry_run,
                ..Default::default()
            },
            crate::report::Report::buffered(false, None),
        )
    }

    /// One site in a temporary directory, with a build command.
    fn setup(dir: &std::path::Path) -> Setup {
        std::fs::write(dir.join("index.html"), "<h1>hi</h1>\n").unwrap();
        let plan = SitePlan {
            name: "web".into(),
            project: "shop-web".into(),
            dir: dir.display().to_string(),
            build: Some(crate::cmd::Cmd::shell("exit 7")),
            production_branch: Some("main".into()),
            origin: None,
        };
        Setup {
            root: dir.to_path_buf(),
            sites: vec![SiteJob {
                plan,
                path: dir.to_path_buf(),
            }],
            guarded: None,
            recorded: None,
        }
    }

    fn args() -> PagesSettings {
        PagesSettings {
            branch: Some("main".into()),
            concurrency: 3,
            wait_timeout: 600,
            ..Default::default()
        }
    }

    #[test]
    fn the_recording_side_walks_every_step_records_the_build_and_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, args) = (ctx(true), args());
        let setup = setup(dir.path());
        let plan = steps(&setup.request(&args));
        let rec = Recording::default();
        let build = Box::new(DryRunExecutor::new("local", rec.clone()));
        let mut p = Performer::new(&ctx, &args, setup, build, Side::Recording);
        let mut state = RunState {
            dry_run: true,
            ..RunState::default()
        };
        let (trace, outcome) = runner::run(&plan, &mut p, &mut Quiet, &mut state);
        assert!(outcome.is_ok(), "{outcome:?}");
        let ids: Vec<&str> = plan.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(trace.ids(), ids);
        assert!(trace.0.iter().all(|e| e.walked == W::Performed));
        assert_eq!(rec.list().len(), 1, "the build is recorded, not run");
        assert!(p.client.is_none(), "no client, no request");
        assert_eq!(p.sites[0].walked.as_ref().unwrap().site.assets.len(), 1);
        let printed: Vec<String> = ctx.report.printed().into_iter().map(|(_, l)| l).collect();
        assert!(
            printed.iter().any(|l| l.contains("/index.html")),
            "the file table: {printed:?}"
        );
        assert_eq!(p.finish(&trace, outcome).unwrap(), Vec::new());
    }

    #[test]
    fn the_real_side_stops_at_the_first_failing_step_with_its_trace() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, args) = (ctx(false), args());
        let setup = setup(dir.path());
        let mut plan = steps(&setup.request(&args));
        let make_client = || -> Result<Cloudflare> { Err(Error::usage("no credentials")) };
        let side = Side::Real {
            make_client: &make_client,
        };
        let build = Box::new(crate::exec::local::LocalExecutor);
        let mut p = Performer::new(&ctx, &args, setup, build, side);
        let (trace, outcome) = runner::run(&plan, &mut p, &mut Quiet, &mut RunState::default());
        let e = outcome.unwrap_err();
        assert!(e.to_string().contains("exit status 7"), "{e}");
        assert_eq!(trace.ids(), ["pages:web:build"]);
        // Without the build: the client is made at the first request, and its error stops there.
        plan.remove(0);
        let (trace, outcome) = runner::run(&plan, &mut p, &mut Quiet, &mut RunState::default());
        assert_eq!(outcome.unwrap_err().exit().code(), 2);
        assert_eq!(
            trace.ids(),
            ["pages:web:walk", "pages:git", "pages:web:check-missing"]
        );
        assert!(p.finish(&trace, Err(Error::usage("x"))).is_err());
    }
}
