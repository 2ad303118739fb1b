//! `deploy-action pages`: for each site, run its build, walk and hash its directory (wrangler's
//! rules), ask Cloudflare which files are missing, upload only those, create the deployment, wait
//! for it, report the URLs. `--dry-run` stops after hashing and lists what would be sent.
//!
//! Glue only: the walk and hashes are in `pages/`, the HTTP in `api/cloudflare.rs`, the printing in
//! `report/`.

use super::Ctx;
use crate::api::cloudflare::{
    CODE_PROJECT_NOT_FOUND, CfError, Cloudflare, Config, DeploymentRequest, PollOutcome, UploadFile,
};
use crate::api::http::HttpClient;
use crate::api::retry::RetryPolicy;
use crate::cli::PagesArgs;
use crate::cmd::Cmd;
use crate::env_vars as ev;
use crate::error::{Error, Result};
use crate::exec::{Executor, local::LocalExecutor};
use crate::pages::{self, WalkError};
use crate::report::{Summary, progress::human_bytes};
use crate::state::PagesState;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One site to deploy, from the manifest or from `--project/--dir`.
#[derive(Clone, Debug)]
pub struct SiteJob {
    pub name: String,
    pub project: String,
    pub dir: PathBuf,
    pub build: Option<String>,
    /// The manifest's `production_branch` (the project's own wins when the API reports it).
    pub production_branch: Option<String>,
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
pub fn run(args: &PagesArgs, ctx: &Ctx) -> Result<Vec<(String, PagesState)>> {
    let (root, jobs) = site_jobs(args, ctx)?;
    if jobs.is_empty() {
        ctx.report.info("no sites to deploy");
        return Ok(Vec::new());
    }
    ctx.report.stage_start("pages", ctx.settings.env.as_deref());
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
    for job in &jobs {
        if let Some(build) = job.build.as_deref().filter(|_| !args.no_build) {
            if ctx.settings.dry_run {
                ctx.report
                    .info(&format!("{}: would run `{build}`", job.name));
            } else {
                run_build(ctx, &root, job, build)?;
            }
        }
        let dir = root.join(&job.dir);
        let site = walk(ctx, job, &dir)?;
        if ctx.settings.dry_run {
            dry_run(ctx, job, &site);
            continue;
        }
        let git = git_meta(args, &root)?;
        let (state, row) = deploy(args, ctx, job, &site, &git)?;
        summary.row(row);
        results.push((job.name.clone(), state));
    }
    if !ctx.settings.dry_run {
        ctx.report.summary(&summary);
        if let Some((_, last)) = results.last() {
            ctx.report.output("deployment-url", &last.url);
            ctx.report
                .output("alias-url", last.alias_url.as_deref().unwrap_or(""));
            ctx.report.output("deployment-id", &last.deployment_id);
        }
        if ctx.settings.json {
            let doc: serde_json::Map<String, serde_json::Value> = results
                .iter()
                .map(|(n, s)| {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("manifest");
                    }
                    (n.clone(), v)
                })
                .collect();
            ctx.report
                .json_document(&serde_json::json!({ "pages": doc }));
        }
    }
    Ok(results)
}

/// The repository root and the sites to deploy.
fn site_jobs(args: &PagesArgs, ctx: &Ctx) -> Result<(PathBuf, Vec<SiteJob>)> {
    if let (Some(project), Some(dir)) = (&args.project, &args.dir) {
        return Ok((
            PathBuf::from("."),
            vec![SiteJob {
                name: project.clone(),
                project: project.clone(),
                dir: dir.clone(),
                build: None,
                production_branch: None,
            }],
        ));
    }
    let manifest = ctx.settings.load_manifest()?;
    ctx.settings.environment(&manifest)?;
    let root = ctx
        .settings
        .manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let only = &ctx.settings.only;
    if !only.is_empty() {
        let known: HashSet<&str> = manifest.units().into_iter().map(|(n, _)| n).collect();
        if let Some(bad) = only.iter().find(|o| !known.contains(o.as_str())) {
            let names: Vec<&str> = manifest.sites.keys().map(String::as_str).collect();
            return Err(Error::usage_help(
                format!("--only: unknown unit `{bad}`"),
                format!("sites in the manifest: {}", names.join(", ")),
            ));
        }
    }
    let jobs = manifest
        .sites
        .values()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == &s.name))
        .map(|s| SiteJob {
            name: s.name.clone(),
            project: s.project.clone(),
            dir: PathBuf::from(&s.dir),
            build: s.build.clone(),
            production_branch: Some(s.production_branch.clone()).filter(|b| !b.is_empty()),
        })
        .collect();
    Ok((root, jobs))
}

fn run_build(ctx: &Ctx, root: &Path, job: &SiteJob, build: &str) -> Result<()> {
    let cmd = Cmd::shell(build).cwd(root.to_string_lossy());
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
    let site = pages::walk_and_hash(dir, hash_threads(), &mut |files, bytes| {
        progress.set(files, bytes)
    })
    .map_err(|e| match e {
        WalkError::Io { .. } => Error::StageFailed(format!("site `{}`: {e}", job.name)),
        other => Error::usage(format!("site `{}`: {other}", job.name)),
    })?;
    progress.finish();
    ctx.report.info(&format!(
        "{}: {} files, {} hashed in {:.1}s",
        job.name,
        site.assets.len(),
        human_bytes(site.total_bytes()),
        started.elapsed().as_secs_f64()
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

fn hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8)
}

fn dry_run(ctx: &Ctx, job: &SiteJob, site: &pages::Site) {
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
    for (label, p) in [
        ("_headers", &site.headers),
        ("_redirects", &site.redirects),
        ("_worker.js", &site.worker_js),
    ] {
        if p.is_some() {
            s.note(format!("`{label}` would be sent with the deployment"));
        }
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
fn git_meta(args: &PagesArgs, root: &Path) -> Result<GitMeta> {
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

fn cf_error(job: &SiteJob, e: CfError) -> Error {
    if e.code() == Some(CODE_PROJECT_NOT_FOUND) {
        return Error::usage_help(
            format!(
                "site `{}`: Pages project `{}` not found",
                job.name, job.project
            ),
            "create it in the Cloudflare dashboard (or `wrangler pages project create`), or fix `project:` / CLOUDFLARE_ACCOUNT_ID",
        );
    }
    Error::StageFailed(format!("site `{}`: {e}", job.name))
}

/// The upload and deployment of one walked site.
fn deploy(
    args: &PagesArgs,
    ctx: &Ctx,
    job: &SiteJob,
    site: &pages::Site,
    git: &GitMeta,
) -> Result<(PagesState, Vec<String>)> {
    let cfg = Config::from_env().map_err(Error::usage)?;
    ctx.report.add_secret(&cfg.api_token);
    // Requests with a body set their own timeout, in proportion to its size.
    let http = HttpClient::builder()
        .timeout(crate::api::cloudflare::REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Error::StageFailed(format!("cannot build the HTTP client: {e}")))?;
    let cf = Cloudflare::new(cfg, http, RetryPolicy::from_env());
    let err = |e| cf_error(job, e);
    let started = Instant::now();

    let project = cf.get_project(&job.project).map_err(err)?;
    let production_branch = project
        .production_branch
        .clone()
        .or_else(|| job.production_branch.clone());
    let token = cf.start_upload_session(&job.project).map_err(err)?;
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

    let request = DeploymentRequest {
        manifest: site.manifest(),
        branch: git.branch.clone(),
        commit_hash: git.commit_hash.clone(),
        commit_message: git.commit_message.clone(),
        commit_dirty: git.commit_dirty,
        headers: site.headers.clone(),
        redirects: site.redirects.clone(),
        worker_js: site.worker_js.clone(),
        routes_json: site.routes_json.clone(),
    };
    let created = cf.create_deployment(&job.project, &request).map_err(err)?;
    ctx.report.info(&format!(
        "{}: deployment {} created, waiting for it to go live",
        job.name, created.id
    ));
    let deployment = match cf
        .wait_for_deployment(
            &job.project,
            &created,
            Duration::from_secs(args.wait_timeout),
        )
        .map_err(err)?
    {
        PollOutcome::Success(d) => d,
        PollOutcome::Failure(d, line) => {
            return Err(Error::StageFailed(format!(
                "site `{}`: deployment {} failed{}",
                job.name,
                d.id,
                line.map(|l| format!(": {l}")).unwrap_or_default()
            )));
        }
        PollOutcome::Unknown(d) => {
            let stage = d
                .and_then(|d| d.latest_stage)
                .map(|s| format!("{} {}", s.name, s.status))
                .unwrap_or_else(|| "unknown".into());
            return Err(Error::StageFailed(format!(
                "site `{}`: deployment {} did not reach a final status within {}s (last: {stage})",
                job.name, created.id, args.wait_timeout
            )));
        }
    };
    let alias = deployment.alias();
    let environment = if deployment.environment.is_empty() {
        match (&production_branch, &git.branch) {
            (Some(p), Some(b)) if p != b => "preview".to_string(),
            _ => "production".to_string(),
        }
    } else {
        deployment.environment.clone()
    };
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
    Ok((
        PagesState {
            project: job.project.clone(),
            deployment_id: deployment.id.clone(),
            url: deployment.url.clone(),
            alias_url: alias,
            environment,
            manifest: site.manifest(),
        },
        row,
    ))
}
