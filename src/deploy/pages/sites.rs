//! What a `pages` run is about, read before its plan: the sites (`--project/--dir`, else the
//! manifest's sites that `--only`, `--all` or the git changes select), the environment whose guard
//! it passes and whose release it records; and, for steps of the run, the git metadata of the
//! deployments (after the builds).
//!
//! Stays out of the steps themselves (`perform.rs`) and of the plan (`plan/pages.rs`).

use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::env_vars as ev;
use crate::error::{Error, Result};
use crate::exec::{Executor, local::LocalExecutor};
use crate::manifest::{Environment, Manifest};
use crate::plan::pages::{EnvPlan, Request, SitePlan, manifest_site};
use crate::settings::PagesSettings;
use std::path::{Path, PathBuf};

/// Git metadata sent with a deployment.
#[derive(Clone, Debug, Default)]
pub struct GitMeta {
    pub branch: Option<String>,
    pub commit_hash: Option<String>,
    pub commit_message: Option<String>,
    pub commit_dirty: Option<bool>,
}

/// One site of the run: as planned, and the directory walked.
#[derive(Clone, Debug)]
pub struct SiteJob {
    pub plan: SitePlan,
    /// The directory walked and uploaded (the repository root joined with the site's `dir`).
    pub path: PathBuf,
}

/// A run, before its plan: the repository root, the sites, and the environments.
pub struct Setup {
    pub root: PathBuf,
    pub sites: Vec<SiteJob>,
    /// The environment whose guard the run passes: `--env` on a manifest run (not `--dir`).
    pub guarded: Option<Environment>,
    /// The environment whose release the run records: `--env`.
    pub recorded: Option<Environment>,
}

impl Setup {
    /// The planner's request for this run with `args`' flags.
    pub fn request(&self, args: &PagesSettings) -> Request {
        Request {
            sites: self.sites.iter().map(|s| s.plan.clone()).collect(),
            env: self
                .recorded
                .as_ref()
                .map(|e| EnvPlan::of(e, self.guarded.is_some())),
            concurrency: args.concurrency,
            wait_secs: args.wait_timeout,
        }
    }
}

/// The sites and environments of a run. `None`: no site to deploy (said).
pub fn setup(args: &PagesSettings, ctx: &Ctx) -> Result<Option<Setup>> {
    let (root, sites) = site_jobs(args, ctx)?;
    if sites.is_empty() {
        ctx.report.info("pages: no sites to deploy");
        return Ok(None);
    }
    let guarded = guarded_env(args, ctx)?;
    let recorded = match (&guarded, &ctx.settings.env) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(_)) => Some(ctx.settings.environment(&ctx.load_manifest()?)?.clone()),
        (None, None) => None,
    };
    Ok(Some(Setup {
        root,
        sites,
        guarded,
        recorded,
    }))
}

/// The environment whose guard a run passes: `--env` on a manifest run (not `--dir`).
fn guarded_env(args: &PagesSettings, ctx: &Ctx) -> Result<Option<Environment>> {
    if args.dir.is_some() || ctx.settings.env.is_none() {
        return Ok(None);
    }
    let m = ctx.load_manifest()?;
    Ok(Some(ctx.settings.environment(&m)?.clone()))
}

/// The repository root and the sites to deploy: `--project/--dir`, else the manifest's sites that
/// `--only`, `--all` or the git changes select (the same change detection as `plan` and `up`).
pub fn site_jobs(args: &PagesSettings, ctx: &Ctx) -> Result<(PathBuf, Vec<SiteJob>)> {
    if let (Some(project), Some(dir)) = (&args.project, &args.dir) {
        let plan = SitePlan {
            name: project.clone(),
            project: project.clone(),
            dir: dir.to_string_lossy().into_owned(),
            build: None,
            production_branch: None,
            origin: None,
        };
        let root = PathBuf::from(".");
        let path = root.join(dir);
        return Ok((root, vec![SiteJob { plan, path }]));
    }
    let manifest = ctx.load_manifest()?;
    ctx.settings.environment(&manifest)?;
    let root = ctx
        .settings
        .manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let shown_root = (root != Path::new(".")).then(|| root.display().to_string());
    let selected = select(&manifest, ctx, &root)?;
    let mut jobs = Vec::new();
    for site in manifest.sites.values() {
        if !selected.contains(&site.name) {
            continue;
        }
        crate::context::inside_repo(&root, &site.dir, &format!("site `{}`: dir", site.name))?;
        if let Some(plan) =
            manifest_site(&manifest, &site.name, shown_root.as_deref(), args.no_build)
        {
            let path = root.join(&site.dir);
            jobs.push(SiteJob { plan, path });
        }
    }
    Ok((root, jobs))
}

/// The manifest sites to deploy: those named by `--only` (other units are ignored here), every
/// site with `--all`, else the sites whose `paths:` the git changes touch.
fn select(m: &Manifest, ctx: &Ctx, root: &Path) -> Result<Vec<String>> {
    let sites: Vec<String> = m.sites.keys().cloned().collect();
    let only = &ctx.settings.only;
    if !only.is_empty() {
        crate::changes::select_only(m, only)?;
        return Ok(sites.into_iter().filter(|s| only.contains(s)).collect());
    }
    if ctx.settings.all {
        return Ok(sites);
    }
    let env = ctx.settings.environment(m)?;
    let release = crate::ledger::store::release_base(ctx, env);
    let affected = crate::changes::git::detect_from(
        &mut LocalExecutor,
        m,
        root,
        ctx.settings.base.as_deref(),
        release.as_ref(),
        false,
        &[],
    )?;
    for n in &affected.notes {
        ctx.report.info(&format!("pages: {n}"));
    }
    let chosen: Vec<String> = sites.into_iter().filter(|s| affected.contains(s)).collect();
    ctx.report.info(&format!(
        "pages: affected sites: {} ({}; --all or --only to choose)",
        if chosen.is_empty() {
            "none".to_string()
        } else {
            chosen.join(", ")
        },
        affected.reason.describe()
    ));
    Ok(chosen)
}

/// The branch, commit and dirty flag: flags first, then the Actions variables, then git. No
/// branch (a detached HEAD, no repository) is exit 2: leaving it out would deploy to production.
pub fn git_meta(args: &PagesSettings, root: &Path) -> Result<GitMeta> {
    let git = |a: &[&str]| -> Option<String> {
        let out = LocalExecutor
            .capture(
                &Cmd::new("git")
                    .args(a.iter().copied())
                    .cwd(root.to_string_lossy()),
            )
            .ok()?;
        out.success().then(|| out.stdout_str().trim().to_string())
    };
    let in_repo = git(&["rev-parse", "--is-inside-work-tree"]).as_deref() == Some("true");
    let branch = args
        .branch
        .clone()
        .filter(|b| !b.is_empty())
        .or_else(|| {
            ev::in_github_actions()
                .then(|| ev::get(ev::GITHUB_HEAD_REF).or_else(|| ev::get(ev::GITHUB_REF_NAME)))
                .flatten()
        })
        .or_else(|| {
            in_repo
                .then(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
                .flatten()
        })
        .filter(|b| b != "HEAD" && !b.is_empty());
    let Some(branch) = branch else {
        return Err(Error::usage_help(
            "cannot tell which branch this deployment is for (detached HEAD or no git repository)",
            "pass --branch NAME; leaving it out would deploy to production",
        ));
    };
    let commit_hash = args
        .commit_hash
        .clone()
        .or_else(|| in_repo.then(|| git(&["rev-parse", "HEAD"])).flatten());
    let commit_message = args.commit_message.clone().or_else(|| {
        in_repo
            .then(|| git(&["show", "-s", "--format=%B", "HEAD"]))
            .flatten()
    });
    let commit_dirty = args.commit_dirty.or_else(|| {
        in_repo
            .then(|| git(&["status", "--porcelain"]).map(|s| !s.is_empty()))
            .flatten()
    });
    Ok(GitMeta {
        branch: Some(branch),
        commit_hash,
        commit_message,
        commit_dirty,
    })
}
