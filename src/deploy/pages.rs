//! Deploying sites to Cloudflare Pages (what `deploy-action pages` runs): for each affected site, run its build, walk and hash its directory
//! (wrangler's rules), read its special files, ask Cloudflare which files are missing, upload only
//! those, create the deployment, wait for it, report the URLs. `--dry-run` stops after hashing and
//! lists what would be sent.
//!
//! Also the library side of promote and rollback for Pages: [`redeploy`] creates a deployment
//! again from a recorded [`PagesState`] alone (no site directory, no upload), and [`rollback_to`]
//! makes a recorded production deployment live again.
//!
//! The command (`commands/pages.rs`) only adds the release record. Stays out of the walk and hashes
//! (`pages/`), the HTTP (`api/cloudflare.rs`) and the printing (`report/`).

use crate::api::cloudflare::{
    CODE_PROJECT_NOT_FOUND, CfError, Cloudflare, Config, Deployment, DeploymentRequest,
    PollOutcome, REQUEST_TIMEOUT, UploadFile,
};
use crate::api::http::HttpClient;
use crate::api::retry::RetryPolicy;
use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::env_vars as ev;
use crate::error::{Error, Result};
use crate::exec::{Executor, local::LocalExecutor};
use crate::manifest::Manifest;
use crate::pages::{self, SpecialError, SpecialFiles, WalkError};
use crate::report::{Summary, progress::human_bytes};
use crate::settings::PagesSettings;
use crate::state::PagesState;
use base64::Engine as _;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env_vars::DEPLOY_PAGES_HASH_CACHE;

/// The hash cache directory, if any.
fn hash_cache_dir() -> Option<PathBuf> {
    match ev::get(DEPLOY_PAGES_HASH_CACHE) {
        Some(v) if ["", "0", "off", "false", "no"].contains(&v.to_ascii_lowercase().as_str()) => {
            None
        }
        Some(v) => Some(PathBuf::from(v)),
        None => ev::get("XDG_CACHE_HOME")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
            .or_else(|| ev::get(ev::HOME).map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("deploy-action").join("pages-hashes")),
    }
}

/// One site to deploy, from the manifest or from `--project/--dir`.
#[derive(Clone, Debug)]
pub struct SiteJob {
    pub name: String,
    pub project: String,
    pub dir: PathBuf,
    pub build: Option<String>,
    /// The manifest's `production_branch` (the project's own wins when the API reports it).
    pub production_branch: Option<String>,
    /// The variables the build must not inherit ([`crate::cmd::unit_child_scrub`]).
    pub scrub: Vec<String>,
}

/// Git metadata sent with a deployment.
#[derive(Clone, Debug, Default)]
pub struct GitMeta {
    pub branch: Option<String>,
    pub commit_hash: Option<String>,
    pub commit_message: Option<String>,
    pub commit_dirty: Option<bool>,
}

/// Runs the subcommand; returns the deployment of each site (for the release record).
pub fn run(args: &PagesSettings, ctx: &Ctx) -> Result<Vec<(String, PagesState)>> {
    run_with(args, ctx, &|| client(ctx))
}

/// [`run`] with the Cloudflare client made by `make_client` (called once, and only when there is
/// something to deploy): for callers and tests that configure the client themselves.
pub fn run_with(
    args: &PagesSettings,
    ctx: &Ctx,
    make_client: &dyn Fn() -> Result<Cloudflare>,
) -> Result<Vec<(String, PagesState)>> {
    match prepare(args, ctx)? {
        Some(prepared) => deploy_prepared(args, ctx, &prepared, make_client),
        None => Ok(Vec::new()),
    }
}

/// The sites of a run, built, walked and hashed, admitted by the guard: everything before the
/// first request to Cloudflare.
pub struct Prepared {
    root: PathBuf,
    jobs: Vec<SiteJob>,
    walked: Vec<(pages::Site, SpecialFiles)>,
    git: GitMeta,
    /// The guard's admission, for a run on an environment (`--env`).
    pub admission: Option<crate::guard::Admission>,
}

/// Builds, walks and hashes every site, then (with `--env`) passes the guard: the deploy rules and,
/// on a guarded environment, the approval of exactly these files (the plan holds every file's
/// hash). `None`: nothing to deploy, or a dry run (which printed what it would send).
pub fn prepare(args: &PagesSettings, ctx: &Ctx) -> Result<Option<Prepared>> {
    let (root, jobs) = site_jobs(args, ctx)?;
    if jobs.is_empty() {
        ctx.report.info("pages: no sites to deploy");
        return Ok(None);
    }
    let env = guarded_env(args, ctx)?;
    let dirty = match &env {
        Some(e) => crate::guard::check_rules(ctx, e, "pages", &root)?,
        None => false,
    };
    ctx.report.stage_start("pages", ctx.settings.env.as_deref());
    let walked = build_and_walk(args, ctx, &root, &jobs)?;
    if ctx.settings.dry_run {
        for (job, (site, special)) in jobs.iter().zip(&walked) {
            dry_run(ctx, job, site, special);
        }
    }
    // A dry run needs no branch (it sends nothing); a real one refuses to guess it.
    let git = match git_meta(args, &root) {
        Err(_) if ctx.settings.dry_run => GitMeta::default(),
        other => other?,
    };
    let admission = match &env {
        Some(e) => {
            let adm = crate::guard::approve(ctx, e, "pages", dirty, &|| {
                Ok(pages_plan(&e.name, &jobs, &walked, &git))
            })?;
            Some(adm)
        }
        None => None,
    };
    if ctx.settings.dry_run {
        return Ok(None);
    }
    let mut prepared = Prepared {
        root,
        jobs,
        walked,
        git,
        admission,
    };
    if let Some(adm) = prepared.admission.as_ref().filter(|a| a.approval.is_some()) {
        // Walked again after the approval: what is uploaded must be what was approved.
        let walked = build_and_walk(
            &PagesSettings {
                no_build: true,
                ..args.clone()
            },
            ctx,
            &prepared.root,
            &prepared.jobs,
        )?;
        let env = adm.env.clone();
        adm.confirm(&pages_plan(&env, &prepared.jobs, &walked, &prepared.git))?;
        prepared.walked = walked;
    }
    Ok(Some(prepared))
}

/// The environment whose guard a run passes: `--env` on a manifest run (not `--dir`).
fn guarded_env(args: &PagesSettings, ctx: &Ctx) -> Result<Option<crate::manifest::Environment>> {
    if args.dir.is_some() || ctx.settings.env.is_none() {
        return Ok(None);
    }
    let m = ctx.load_manifest()?;
    Ok(Some(ctx.settings.environment(&m)?.clone()))
}

/// Everything local first: builds, walks and special files of every site are checked before
/// the first request, so a bad `_routes.json` in the second site does not leave the first
/// deployed alone.
fn build_and_walk(
    args: &PagesSettings,
    ctx: &Ctx,
    root: &Path,
    jobs: &[SiteJob],
) -> Result<Vec<(pages::Site, SpecialFiles)>> {
    let mut walked = Vec::new();
    for job in jobs {
        if let Some(build) = job.build.as_deref().filter(|_| !args.no_build) {
            if ctx.settings.dry_run {
                ctx.report
                    .info(&format!("{}: would run `{build}`", job.name));
            } else {
                run_build(ctx, root, job, build)?;
            }
        }
        let dir = root.join(&job.dir);
        let site = walk(ctx, job, &dir)?;
        let special = site.special_files().map_err(|e| special_error(job, e))?;
        warn_about_functions(ctx, job, &site, root);
        walked.push((site, special));
    }
    Ok(walked)
}

/// What a Pages run changes, as the text an approver reads: per site the project, the branch
/// (production or preview), and every file with its hash.
fn pages_plan(
    env: &str,
    jobs: &[SiteJob],
    walked: &[(pages::Site, SpecialFiles)],
    git: &GitMeta,
) -> crate::guard::ChangePlan {
    let mut text = format!(
        "pages on {env}: branch {}, commit {}\n",
        git.branch.as_deref().unwrap_or("?"),
        git.commit_hash.as_deref().unwrap_or("?")
    );
    for (job, (site, special)) in jobs.iter().zip(walked) {
        let kind = match &job.production_branch {
            Some(p) if git.branch.as_deref() == Some(p.as_str()) => "production",
            Some(_) => "preview",
            None => "production branch of the project",
        };
        text.push_str(&format!(
            "site {} -> Pages project {} ({kind}), {} files:\n",
            job.name,
            job.project,
            site.assets.len()
        ));
        for a in &site.assets {
            text.push_str(&format!("  /{} {}\n", a.rel, a.hash));
        }
        for (name, bytes) in special.parts() {
            text.push_str(&format!(
                "  {name}: blake3 {}\n",
                blake3::hash(bytes).to_hex()
            ));
        }
    }
    crate::guard::ChangePlan::new("pages", env, text)
}

/// Deploys prepared sites: the requests to Cloudflare, the summary and the outputs.
pub fn deploy_prepared(
    args: &PagesSettings,
    ctx: &Ctx,
    prepared: &Prepared,
    make_client: &dyn Fn() -> Result<Cloudflare>,
) -> Result<Vec<(String, PagesState)>> {
    let (jobs, walked, git) = (&prepared.jobs, &prepared.walked, &prepared.git);
    let cf = make_client()?;
    let mut results = Vec::new();
    let mut summary = Summary::new(
        "Cloudflare Pages",
        &[
            "site",
            "project",
            "environment",
            "files",
            "uploaded",
            "url",
            "alias",
        ],
    );
    for (job, (site, special)) in jobs.iter().zip(walked) {
        match deploy(args, ctx, &cf, job, site, special, git) {
            Ok((state, row)) => {
                summary.row(row);
                results.push((job.name.clone(), state));
            }
            Err(e) => {
                // The sites deployed before this one stay deployed: say so before failing.
                if !results.is_empty() {
                    ctx.report.summary(&summary);
                    report_outputs(ctx, &results);
                }
                return Err(e);
            }
        }
    }
    ctx.report.summary(&summary);
    report_outputs(ctx, &results);
    Ok(results)
}

/// `deployment-url`, `alias-url`, `deployment-id` (the last site's; contract names) and `pages`,
/// every site's deployment as one JSON object; `--json` prints the same object.
fn report_outputs(ctx: &Ctx, results: &[(String, PagesState)]) {
    if let Some((_, last)) = results.last() {
        ctx.report.output("deployment-url", &last.url);
        ctx.report
            .output("alias-url", last.alias_url.as_deref().unwrap_or(""));
        ctx.report.output("deployment-id", &last.deployment_id);
    }
    let doc: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(n, s)| {
            let v = serde_json::json!({
                "project": s.project,
                "deployment_id": s.deployment_id,
                "url": s.url,
                "alias_url": s.alias_url,
                "environment": s.environment,
                "branch": s.branch,
            });
            (n.clone(), v)
        })
        .collect();
    ctx.report
        .output("pages", &serde_json::Value::Object(doc.clone()).to_string());
    if ctx.settings.json {
        ctx.report
            .json_document(&serde_json::json!({ "pages": doc }));
    }
}

/// The repository root and the sites to deploy: `--project/--dir`, else the manifest's sites that
/// `--only`, `--all` or the git changes select (the same change detection as `plan` and `up`).
pub fn site_jobs(args: &PagesSettings, ctx: &Ctx) -> Result<(PathBuf, Vec<SiteJob>)> {
    if let (Some(project), Some(dir)) = (&args.project, &args.dir) {
        return Ok((
            PathBuf::from("."),
            vec![SiteJob {
                name: project.clone(),
                project: project.clone(),
                dir: dir.clone(),
                build: None,
                production_branch: None,
                scrub: crate::cmd::child_scrub([], &[]),
            }],
        ));
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
    let selected = select(&manifest, ctx, &root)?;
    let jobs = manifest
        .sites
        .values()
        .filter(|s| selected.contains(&s.name))
        .map(|s| SiteJob {
            name: s.name.clone(),
            project: s.project.clone(),
            dir: PathBuf::from(&s.dir),
            build: s.build.clone(),
            production_branch: Some(s.production_branch.clone()).filter(|b| !b.is_empty()),
            scrub: crate::cmd::unit_child_scrub(&manifest, &s.name),
        })
        .collect::<Vec<_>>();
    for job in &jobs {
        crate::context::inside_repo(
            &root,
            &job.dir.to_string_lossy(),
            &format!("site `{}`: dir", job.name),
        )?;
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
        &mut crate::exec::local::LocalExecutor,
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

fn run_build(ctx: &Ctx, root: &Path, job: &SiteJob, build: &str) -> Result<()> {
    let cmd = Cmd::shell(build)
        .cwd(root.to_string_lossy())
        .scrub_env(job.scrub.iter().cloned());
    ctx.report
        .group_start(&format!("build {}: {}", job.name, build));
    let status = LocalExecutor.run(&cmd, None, &mut |stream, line| {
        ctx.report.relay(&job.name, stream, line)
    });
    ctx.report.group_end();
    match status? {
        0 => Ok(()),
        code => Err(Error::StageFailed(format!(
            "the build of site `{}` failed (exit status {code}): {build}",
            job.name
        ))),
    }
}

fn walk(ctx: &Ctx, job: &SiteJob, dir: &Path) -> Result<pages::Site> {
    let progress = ctx.report.progress(&format!("{}: hashing", job.name), 0, 0);
    let started = Instant::now();
    let cache = hash_cache_dir().map(|d| pages::HashCache::open(&d, dir));
    let walked =
        pages::walk_and_hash_cached(dir, hash_threads(), cache.as_ref(), &mut |files, bytes| {
            progress.set(files, bytes)
        })
        .map_err(|e| match e {
            WalkError::Io { .. } => Error::StageFailed(format!("site `{}`: {e}", job.name)),
            other => Error::usage(format!("site `{}`: {other}", job.name)),
        })?;
    progress.finish();
    let site = walked.site;
    if let (Some(cache), Some(entries)) = (cache.as_ref(), walked.cache_update.as_ref())
        && !ctx.settings.dry_run
        && let Err(e) = cache.save(entries)
    {
        ctx.report.warn(&format!(
                "{}: cannot write the hash cache {} ({e}); the next run hashes every file again (set {DEPLOY_PAGES_HASH_CACHE}=off to skip it)",
                job.name,
                cache.path().display()
            ));
    }
    ctx.report.info(&format!(
        "{}: {} files, {} hashed in {:.1}s{}",
        job.name,
        site.assets.len(),
        human_bytes(site.total_bytes()),
        started.elapsed().as_secs_f64(),
        if walked.cache_hits > 0 {
            format!(
                " ({} unchanged files from the hash cache)",
                walked.cache_hits
            )
        } else {
            String::new()
        }
    ));
    let sensitive = site.sensitive_files();
    if !sensitive.is_empty() {
        let shown: Vec<&str> = sensitive.iter().take(5).copied().collect();
        ctx.report.warn(&format!(
            "{}: publishing files that are often private: {}{}",
            job.name,
            shown.join(", "),
            if sensitive.len() > 5 { ", …" } else { "" }
        ));
    }
    Ok(site)
}

fn special_error(job: &SiteJob, e: SpecialError) -> Error {
    match e {
        SpecialError::Io { .. } => Error::StageFailed(format!("site `{}`: {e}", job.name)),
        other => Error::usage(format!("site `{}`: {other}", job.name)),
    }
}

/// Pages Functions (`functions/`) are compiled by wrangler, not by deploy-action: say so, and how
/// to ship them, rather than deploy a site silently without them. wrangler looks in its working
/// directory; users of a monorepo keep them next to the site's build output.
fn warn_about_functions(ctx: &Ctx, job: &SiteJob, site: &pages::Site, root: &Path) {
    if site.worker.is_some() {
        return;
    }
    let candidates = [
        PathBuf::from("functions"),
        site.root
            .parent()
            .map(|p| p.join("functions"))
            .unwrap_or_default(),
    ];
    if let Some(f) = candidates.iter().find(|p| p.is_dir()) {
        let shown = f.strip_prefix(root).unwrap_or(f);
        ctx.report.warn(&format!(
            "{}: `{}` looks like Pages Functions, which deploy-action does not compile; the site is deployed without them. Compile them into the site's Worker first, e.g. `npx wrangler pages functions build {} --outdir {}/_worker.js`",
            job.name,
            shown.display(),
            shown.display(),
            site.root.display()
        ));
    }
}

fn hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8)
}

fn dry_run(ctx: &Ctx, job: &SiteJob, site: &pages::Site, special: &SpecialFiles) {
    let mut s = Summary::new(
        format!("{} → Pages project {} (dry run)", job.name, job.project),
        &["path", "hash", "content type", "bytes"],
    );
    for a in &site.assets {
        s.row([
            format!("/{}", a.rel),
            a.hash.clone(),
            a.content_type.to_string(),
            a.size.to_string(),
        ]);
    }
    for (name, bytes) in special.parts() {
        s.note(format!(
            "`{name}` would be sent with the deployment ({} bytes)",
            bytes.len()
        ));
    }
    if !special.worker_modules.is_empty() {
        s.note(format!(
            "Worker modules (not bundled, as `wrangler pages deploy --no-bundle`): {}",
            special.worker_modules.join(", ")
        ));
    }
    s.note(format!(
        "{} files ({} distinct), {}; check-missing decides which are uploaded",
        site.assets.len(),
        site.distinct_hashes().len(),
        human_bytes(site.total_bytes())
    ));
    ctx.report.summary(&s);
}

/// The branch, commit and dirty flag: flags first, then the Actions variables, then git.
fn git_meta(args: &PagesSettings, root: &Path) -> Result<GitMeta> {
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

/// The Cloudflare client from CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and
/// CLOUDFLARE_API_BASE_URL, with the token masked in every output. For promote and rollback too.
pub fn client(ctx: &Ctx) -> Result<Cloudflare> {
    let cfg = Config::from_env().map_err(Error::usage)?;
    ctx.report.add_secret(&cfg.api_token);
    // Requests with a body set their own timeout, in proportion to its size.
    let http = HttpClient::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Error::StageFailed(format!("cannot build the HTTP client: {e}")))?;
    Ok(Cloudflare::new(cfg, http, RetryPolicy::from_env()))
}

fn cf_error(what: &str, project: &str, e: CfError) -> Error {
    if e.code() == Some(CODE_PROJECT_NOT_FOUND) {
        return Error::usage_help(
            format!("{what}: Pages project `{project}` not found"),
            "create it in the Cloudflare dashboard (or `wrangler pages project create`), or fix `project:` / CLOUDFLARE_ACCOUNT_ID",
        );
    }
    Error::StageFailed(format!("{what}: {e}"))
}

/// The upload and deployment of one walked site.
fn deploy(
    args: &PagesSettings,
    ctx: &Ctx,
    cf: &Cloudflare,
    job: &SiteJob,
    site: &pages::Site,
    special: &SpecialFiles,
    git: &GitMeta,
) -> Result<(PagesState, Vec<String>)> {
    let what = format!("site `{}`", job.name);
    let err = |e| cf_error(&what, &job.project, e);
    let started = Instant::now();

    // Three independent requests at once: one round trip instead of three. The list of recent
    // deployments is what tells a deployment a lost POST created from older ones.
    let (project, token, before) = std::thread::scope(|s| {
        let project = s.spawn(|| cf.get_project(&job.project));
        let before = s.spawn(|| cf.recent_deployment_ids(&job.project));
        let token = cf.start_upload_session(&job.project);
        (project.join(), token, before.join())
    });
    let project = joined(project).map_err(err)?;
    let before = joined(before);
    let token = token.map_err(err)?;
    let production_branch = project
        .production_branch
        .clone()
        .or_else(|| job.production_branch.clone());
    if site.assets.len() as u64 > token.max_file_count_allowed {
        return Err(Error::usage(format!(
            "site `{}`: Pages only supports up to {} files in a deployment for this project (the upload token's max_file_count_allowed); {} has {} files. Is `dir:` the build output directory?",
            job.name,
            token.max_file_count_allowed,
            site.root.display(),
            site.assets.len()
        )));
    }

    let distinct = site.distinct_hashes();
    let missing: HashSet<String> = cf
        .check_missing(&distinct)
        .map_err(err)?
        .into_iter()
        .collect();
    // One file per missing hash: identical content is uploaded once.
    let mut seen = HashSet::new();
    let to_upload: Vec<UploadFile> = site
        .assets
        .iter()
        .filter(|a| missing.contains(&a.hash) && seen.insert(a.hash.as_str()))
        .map(|a| UploadFile {
            hash: a.hash.clone(),
            path: a.path.clone(),
            content_type: a.content_type,
            size: a.size,
        })
        .collect();
    let upload_bytes: u64 = to_upload.iter().map(|f| f.size).sum();
    ctx.report.info(&format!(
        "{}: {} of {} distinct files to upload ({}), {} already present",
        job.name,
        to_upload.len(),
        distinct.len(),
        human_bytes(upload_bytes),
        distinct.len() - to_upload.len()
    ));
    if !to_upload.is_empty() {
        let sizes: Vec<u64> = to_upload.iter().map(|f| f.size).collect();
        let buckets: Vec<Vec<UploadFile>> = pages::buckets(&sizes)
            .into_iter()
            .map(|b| b.files.iter().map(|&i| to_upload[i].clone()).collect())
            .collect();
        let progress = ctx.report.progress(
            &format!("{}: uploading", job.name),
            to_upload.len() as u64,
            upload_bytes,
        );
        let summary = cf
            .upload_buckets(buckets, args.concurrency as usize, &|files, bytes| {
                progress.inc(files, bytes)
            })
            .map_err(err)?;
        progress.finish();
        if summary.one_at_a_time {
            ctx.report.info(&format!(
                "{}: Cloudflare answered HTTP 524 (gateway timeout); the rest of the uploads went one at a time",
                job.name
            ));
        }
    }
    if let Err(e) = cf.upsert_hashes(&distinct) {
        ctx.report.warn(&format!(
            "{}: failed to update file hashes ({e}); the deployment goes on, a later deploy may upload again",
            job.name
        ));
    }

    let manifest = site.manifest();
    let request = DeploymentRequest {
        manifest: manifest.clone(),
        branch: git.branch.clone(),
        commit_hash: git.commit_hash.clone(),
        commit_message: git.commit_message.clone(),
        commit_dirty: git.commit_dirty,
        files: special
            .parts()
            .into_iter()
            .map(|(n, b)| (n.to_string(), b.to_vec()))
            .collect(),
    };
    let on_created = |d: &Deployment, adopted: bool| {
        if adopted {
            ctx.report.warn(&format!(
                "{}: the answer to the deployment request was lost; deployment {} which it created was found and is used (no second deployment was made)",
                job.name, d.id
            ));
        }
        ctx.report.info(&format!(
            "{}: deployment {} created, waiting for it to go live",
            job.name, d.id
        ));
    };
    let deployment = create_and_wait(
        cf,
        &what,
        &job.project,
        &request,
        Some(before),
        Duration::from_secs(args.wait_timeout),
        &on_created,
    )?;
    let environment = environment_of(&deployment, production_branch.as_deref(), git);
    let alias = deployment.alias();
    ctx.report.info(&format!(
        "{}: deployed to {environment} in {:.1}s\n  url:   {}\n  alias: {}\n  id:    {}",
        job.name,
        started.elapsed().as_secs_f64(),
        deployment.url,
        alias.as_deref().unwrap_or("-"),
        deployment.id
    ));
    let row = vec![
        job.name.clone(),
        job.project.clone(),
        environment.clone(),
        site.assets.len().to_string(),
        format!("{} ({})", to_upload.len(), human_bytes(upload_bytes)),
        deployment.url.clone(),
        alias.clone().unwrap_or_else(|| "-".into()),
    ];
    let (special_files, special_files_omitted) = record_special_files(&request.files);
    Ok((
        PagesState {
            project: job.project.clone(),
            deployment_id: deployment.id.clone(),
            url: deployment.url.clone(),
            alias_url: alias,
            environment,
            manifest,
            branch: git.branch.clone(),
            commit_hash: git.commit_hash.clone(),
            special_files,
            special_files_omitted,
        },
        row,
    ))
}

/// The result of a request made on another thread.
fn joined<T>(
    r: std::thread::Result<std::result::Result<T, CfError>>,
) -> std::result::Result<T, CfError> {
    r.unwrap_or_else(|_| Err(CfError::OutcomeUnknown("a request thread panicked".into())))
}

/// The special files as a record keeps them: all of them, base64, when together they fit in
/// [`PagesState::MAX_SPECIAL_FILES_BYTES`]; otherwise none, and their names as omitted.
pub fn record_special_files(
    files: &[(String, Vec<u8>)],
) -> (BTreeMap<String, String>, Vec<String>) {
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    if total > PagesState::MAX_SPECIAL_FILES_BYTES {
        return (
            BTreeMap::new(),
            files.iter().map(|(n, _)| n.clone()).collect(),
        );
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        files
            .iter()
            .map(|(n, b)| (n.clone(), b64.encode(b)))
            .collect(),
        Vec::new(),
    )
}

/// Creates the deployment (never twice, see `Cloudflare::create_deployment`) and waits for its
/// final status: success, or an error that says how it failed or that it did not finish in time.
/// `what` names the site or record in errors.
/// `before`: the project's recent deployment ids if already listed.
fn create_and_wait(
    cf: &Cloudflare,
    what: &str,
    project: &str,
    request: &DeploymentRequest,
    before: Option<std::result::Result<HashSet<String>, CfError>>,
    wait: Duration,
    on_created: &dyn Fn(&Deployment, bool),
) -> Result<Deployment> {
    let api = |e| cf_error(what, project, e);
    let created = match before {
        Some(before) => cf.create_deployment_after(project, request, before),
        None => cf.create_deployment(project, request),
    }
    .map_err(api)?;
    on_created(&created.deployment, created.adopted);
    match cf
        .wait_for_deployment(project, &created.deployment, wait)
        .map_err(api)?
    {
        PollOutcome::Success(d) => Ok(d),
        PollOutcome::Failure(d, line) => Err(Error::StageFailed(format!(
            "{what}: deployment {} failed{}",
            d.id,
            line.map(|l| format!(": {l}")).unwrap_or_default()
        ))),
        PollOutcome::Unknown(d) => {
            let stage = d
                .and_then(|d| d.latest_stage)
                .map(|s| format!("{} {}", s.name, s.status))
                .unwrap_or_else(|| "unknown".into());
            Err(Error::StageFailed(format!(
                "{what}: deployment {} did not reach a final status within {}s (last: {stage})",
                created.deployment.id,
                wait.as_secs()
            )))
        }
    }
}

/// The environment the server reported, else the one the branch implies.
fn environment_of(d: &Deployment, production_branch: Option<&str>, git: &GitMeta) -> String {
    if !d.environment.is_empty() {
        return d.environment.clone();
    }
    match (production_branch, git.branch.as_deref()) {
        (Some(p), Some(b)) if p != b => "preview".to_string(),
        _ => "production".to_string(),
    }
}

/// Creates a deployment again from a recorded [`PagesState`] alone, without the site directory:
/// the same manifest and the same special files, on `git.branch` (the production branch for a
/// promote; it must be given — leaving it out would mean production), with `git`'s commit
/// metadata. Nothing is uploaded: every hash of the manifest must still be stored at Cloudflare
/// (check-missing), otherwise this fails naming the files it cannot send. Waits up to `wait` for
/// the deployment to go live and returns its state, ready for the release record.
///
/// Errors: exit 2 ([`Error::Usage`]) when the record cannot be redeployed (no manifest, special
/// files omitted, no branch); exit 1 when Cloudflare lacks files or the deployment fails.
pub fn redeploy(
    cf: &Cloudflare,
    state: &PagesState,
    git: &GitMeta,
    wait: Duration,
) -> Result<PagesState> {
    let project = &state.project;
    let what = format!(
        "redeploy of deployment {} of `{project}`",
        state.deployment_id
    );
    let err = |e| cf_error(&what, project, e);
    let Some(branch) = git.branch.clone().filter(|b| !b.is_empty()) else {
        return Err(Error::usage(format!(
            "{what}: no branch given; leaving it out would deploy to production"
        )));
    };
    if state.manifest.is_empty() {
        return Err(Error::usage(format!(
            "{what}: the record holds no manifest, so the deployment cannot be recreated from it; deploy the site again with `deploy-action pages`"
        )));
    }
    if !state.special_files_omitted.is_empty() {
        return Err(Error::usage(format!(
            "{what}: the record does not hold its special files ({}: over {} KiB together), so the deployment cannot be recreated from it; deploy the site again with `deploy-action pages`",
            state.special_files_omitted.join(", "),
            PagesState::MAX_SPECIAL_FILES_BYTES / 1024
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files = Vec::new();
    for name in ["_headers", "_redirects", "_worker.bundle", "_routes.json"] {
        if let Some(v) = state.special_files.get(name) {
            let bytes = b64.decode(v).map_err(|e| {
                Error::usage(format!(
                    "{what}: the recorded `{name}` is not valid base64: {e}"
                ))
            })?;
            files.push((name.to_string(), bytes));
        }
    }
    if let Some(other) = state.special_files.keys().find(|k| {
        !["_headers", "_redirects", "_worker.bundle", "_routes.json"].contains(&k.as_str())
    }) {
        return Err(Error::usage(format!(
            "{what}: the record holds an unknown special file `{other}`"
        )));
    }

    let production_branch = cf.get_project(project).map_err(err)?.production_branch;
    let token = cf.start_upload_session(project).map_err(err)?;
    if state.manifest.len() as u64 > token.max_file_count_allowed {
        return Err(Error::usage(format!(
            "{what}: {} files, but Pages only supports up to {} files in a deployment for this project (the upload token's max_file_count_allowed)",
            state.manifest.len(),
            token.max_file_count_allowed
        )));
    }
    let mut seen = HashSet::new();
    let distinct: Vec<String> = state
        .manifest
        .values()
        .filter(|h| seen.insert(h.as_str()))
        .cloned()
        .collect();
    let missing: HashSet<String> = cf
        .check_missing(&distinct)
        .map_err(err)?
        .into_iter()
        .collect();
    if !missing.is_empty() {
        let paths: Vec<&str> = state
            .manifest
            .iter()
            .filter(|(_, h)| missing.contains(*h))
            .map(|(p, _)| p.as_str())
            .collect();
        let shown: Vec<&str> = paths.iter().take(10).copied().collect();
        return Err(Error::StageFailed(format!(
            "{what}: Cloudflare no longer has {} of its files ({}{}); a redeploy cannot upload bytes it does not have: deploy the site again with `deploy-action pages`",
            paths.len(),
            shown.join(", "),
            if paths.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        )));
    }
    // Only a cache hint; the deployment does not depend on it.
    let _ = cf.upsert_hashes(&distinct);
    let request = DeploymentRequest {
        manifest: state.manifest.clone(),
        branch: Some(branch.clone()),
        commit_hash: git.commit_hash.clone(),
        commit_message: git.commit_message.clone(),
        commit_dirty: git.commit_dirty,
        files,
    };
    let d = create_and_wait(cf, &what, project, &request, None, wait, &|_, _| {})?;
    Ok(PagesState {
        project: project.clone(),
        deployment_id: d.id.clone(),
        url: d.url.clone(),
        alias_url: d.alias(),
        environment: environment_of(&d, production_branch.as_deref(), git),
        manifest: state.manifest.clone(),
        branch: Some(branch),
        commit_hash: git.commit_hash.clone(),
        special_files: state.special_files.clone(),
        special_files_omitted: Vec::new(),
    })
}

/// Makes the recorded production deployment live again (Pages rollback: instant, nothing is
/// rebuilt or uploaded), confirms it with a GET, and returns its state for the release record (the
/// record's manifest and special files kept, the deployment id unchanged).
///
/// Errors: exit 2 when the record is not a production deployment (Pages rolls back only to
/// those; promote a preview with [`redeploy`] instead); exit 1 when Cloudflare refuses.
pub fn rollback_to(cf: &Cloudflare, state: &PagesState) -> Result<PagesState> {
    let project = &state.project;
    let what = format!(
        "rollback of `{project}` to deployment {}",
        state.deployment_id
    );
    if state.environment != "production" {
        return Err(Error::usage(format!(
            "{what}: it is a {} deployment, and Pages rolls production back only to production deployments; redeploy it to the production branch instead",
            if state.environment.is_empty() {
                "non-production"
            } else {
                state.environment.as_str()
            }
        )));
    }
    let err = |e| cf_error(&what, project, e);
    cf.rollback(project, &state.deployment_id).map_err(err)?;
    let d = cf
        .get_deployment(project, &state.deployment_id)
        .map_err(err)?;
    if d.id != state.deployment_id {
        return Err(Error::StageFailed(format!(
            "{what}: Cloudflare answered with deployment {}",
            d.id
        )));
    }
    Ok(PagesState {
        deployment_id: d.id.clone(),
        url: if d.url.is_empty() {
            state.url.clone()
        } else {
            d.url.clone()
        },
        alias_url: d.alias().or_else(|| state.alias_url.clone()),
        environment: if d.environment.is_empty() {
            state.environment.clone()
        } else {
            d.environment.clone()
        },
        ..state.clone()
    })
}
