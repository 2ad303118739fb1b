//! The Cloudflare half of a site's run, one function per step: check-missing (with the project and
//! an upload token), the uploads, upsert-hashes, the deployment, the wait for its final status.
//! What a step learns for the next ones is kept in [`SiteRemote`]. The requests are
//! `api/cloudflare.rs`' (the only HTTP code); this file decides what to send and what an answer
//! means, and reports it.

use super::local::Walked;
use super::sites::GitMeta;
use crate::api::cloudflare::{
    CODE_PROJECT_NOT_FOUND, CfError, Cloudflare, Deployment, DeploymentRequest, PollOutcome,
    UploadFile,
};
use crate::context::Ctx;
use crate::error::{Error, RemoteFailure, Result};
use crate::pages;
use crate::report::progress::human_bytes;
use crate::state::PagesState;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What the Cloudflare steps of one site learned so far.
#[derive(Debug, Default)]
pub struct SiteRemote {
    /// When the site's first request went out.
    pub started: Option<Instant>,
    /// The project's production branch (the API's, else the manifest's).
    pub production_branch: Option<String>,
    /// The project's recent deployment ids, read before the POST (what tells the deployment a
    /// lost POST created from older ones).
    pub before: Option<std::result::Result<HashSet<String>, CfError>>,
    /// Every distinct hash of the site.
    pub distinct: Vec<String>,
    /// The files check-missing found missing, one per hash.
    pub to_upload: Vec<UploadFile>,
    pub request: Option<DeploymentRequest>,
    pub created: Option<Deployment>,
}

impl SiteRemote {
    /// The bytes to upload.
    pub fn upload_bytes(&self) -> u64 {
        self.to_upload.iter().map(|f| f.size).sum()
    }
}

/// `what` (a site, a redeploy) failed at Cloudflare: an unknown project is exit 2, the rest exit 1.
pub fn cf_error(what: &str, project: &str, e: CfError) -> Error {
    if e.code() == Some(CODE_PROJECT_NOT_FOUND) {
        return Error::usage_help(
            format!("{what}: Pages project `{project}` not found"),
            "create it in the Cloudflare dashboard (or `wrangler pages project create`), or fix `project:` / CLOUDFLARE_ACCOUNT_ID",
        );
    }
    cf_failure(what, e.to_string()).status(e.status()).into()
}

/// Cloudflare failed `what` (a site, a redeploy), saying `message`.
pub fn cf_failure(what: &str, message: impl Into<String>) -> RemoteFailure {
    RemoteFailure::new("Cloudflare", what, message)
}

/// The result of a request made on another thread.
fn joined<T>(
    r: std::thread::Result<std::result::Result<T, CfError>>,
) -> std::result::Result<T, CfError> {
    r.unwrap_or_else(|_| Err(CfError::OutcomeUnknown("a request thread panicked".into())))
}

/// The files to upload: one per hash in `missing`, the first in path order.
pub fn missing_files(site: &pages::Site, missing: &HashSet<String>) -> Vec<UploadFile> {
    let mut seen = HashSet::new();
    site.assets
        .iter()
        .filter(|a| missing.contains(&a.hash) && seen.insert(a.hash.as_str()))
        .map(|a| UploadFile {
            hash: a.hash.clone(),
            path: a.path.clone(),
            content_type: a.content_type,
            size: a.size,
        })
        .collect()
}

/// Step `check-missing`: the project, an upload token (its file-count limit) and the recent
/// deployments at once (one round trip instead of three), then which hashes Cloudflare lacks.
pub fn check_missing(
    ctx: &Ctx,
    cf: &Cloudflare,
    name: &str,
    project: &str,
    manifest_branch: Option<&str>,
    w: &Walked,
) -> Result<SiteRemote> {
    let what = format!("site `{name}`");
    let err = |e| cf_error(&what, project, e);
    let started = Instant::now();
    let (found, token, before) = std::thread::scope(|s| {
        let found = s.spawn(|| cf.get_project(project));
        let before = s.spawn(|| cf.recent_deployment_ids(project));
        let token = cf.start_upload_session(project);
        (found.join(), token, before.join())
    });
    let found = joined(found).map_err(err)?;
    let before = joined(before);
    let token = token.map_err(err)?;
    let site = &w.site;
    if site.assets.len() as u64 > token.max_file_count_allowed {
        return Err(Error::usage(format!(
            "site `{name}`: Pages only supports up to {} files in a deployment for this project (the upload token's max_file_count_allowed); {} has {} files. Is `dir:` the build output directory?",
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
    let remote = SiteRemote {
        started: Some(started),
        production_branch: found
            .production_branch
            .clone()
            .or_else(|| manifest_branch.map(str::to_string)),
        before: Some(before),
        to_upload: missing_files(site, &missing),
        distinct,
        request: None,
        created: None,
    };
    ctx.report.info(&format!(
        "{name}: {} of {} distinct files to upload ({}), {} already present",
        remote.to_upload.len(),
        remote.distinct.len(),
        human_bytes(remote.upload_bytes()),
        remote.distinct.len() - remote.to_upload.len()
    ));
    Ok(remote)
}

/// Step `upload`: the missing files in buckets, `concurrency` requests at once; nothing when
/// check-missing found nothing missing.
pub fn upload(
    ctx: &Ctx,
    cf: &Cloudflare,
    name: &str,
    project: &str,
    remote: &SiteRemote,
    concurrency: u16,
) -> Result<()> {
    let files = &remote.to_upload;
    if files.is_empty() {
        return Ok(());
    }
    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    let buckets: Vec<Vec<UploadFile>> = pages::buckets(&sizes)
        .into_iter()
        .map(|b| b.files.iter().map(|&i| files[i].clone()).collect())
        .collect();
    let progress = ctx.report.progress(
        &format!("{name}: uploading"),
        files.len() as u64,
        remote.upload_bytes(),
    );
    let summary = cf
        .upload_buckets(buckets, concurrency as usize, &|n, bytes| {
            progress.inc(n, bytes)
        })
        .map_err(|e| cf_error(&format!("site `{name}`"), project, e))?;
    progress.finish();
    if summary.one_at_a_time {
        ctx.report.info(&format!(
            "{name}: Cloudflare answered HTTP 524 (gateway timeout); the rest of the uploads went one at a time"
        ));
    }
    Ok(())
}

/// Step `upsert-hashes`: a cache hint; a failure only warns.
pub fn upsert(ctx: &Ctx, cf: &Cloudflare, name: &str, remote: &SiteRemote) {
    if let Err(e) = cf.upsert_hashes(&remote.distinct) {
        ctx.report.warn(&format!(
            "{name}: failed to update file hashes ({e}); the deployment goes on, a later deploy may upload again"
        ));
    }
}

/// The deployment request of a walked site.
pub fn request(w: &Walked, git: &GitMeta) -> DeploymentRequest {
    DeploymentRequest {
        manifest: w.site.manifest(),
        branch: git.branch.clone(),
        commit_hash: git.commit_hash.clone(),
        commit_message: git.commit_message.clone(),
        commit_dirty: git.commit_dirty,
        files: w
            .special
            .parts()
            .into_iter()
            .map(|(n, b)| (n.to_string(), b.to_vec()))
            .collect(),
    }
}

/// Creates the deployment (never twice, see `Cloudflare::create_deployment`). `what` names the
/// site or record in errors; `before`: the project's recent deployment ids if already listed.
/// `on_created` hears of it, and whether it was adopted after a lost answer.
pub fn create(
    cf: &Cloudflare,
    what: &str,
    project: &str,
    request: &DeploymentRequest,
    before: Option<std::result::Result<HashSet<String>, CfError>>,
    on_created: &dyn Fn(&Deployment, bool),
) -> Result<Deployment> {
    let created = match before {
        Some(before) => cf.create_deployment_after(project, request, before),
        None => cf.create_deployment(project, request),
    }
    .map_err(|e| cf_error(what, project, e))?;
    on_created(&created.deployment, created.adopted);
    Ok(created.deployment)
}

/// What a site's deployment step says when the deployment exists.
pub fn on_created(ctx: &Ctx, name: &str, d: &Deployment, adopted: bool) {
    if adopted {
        ctx.report.warn(&format!(
            "{name}: the answer to the deployment request was lost; deployment {} which it created was found and is used (no second deployment was made)",
            d.id
        ));
    }
    ctx.report.info(&format!(
        "{name}: deployment {} created, waiting for it to go live",
        d.id
    ));
}

/// Waits up to `wait` for the final status of `created`: success, or an error that says how it
/// failed or that it did not finish in time.
pub fn wait(
    cf: &Cloudflare,
    what: &str,
    project: &str,
    created: &Deployment,
    wait: Duration,
) -> Result<Deployment> {
    match cf
        .wait_for_deployment(project, created, wait)
        .map_err(|e| cf_error(what, project, e))?
    {
        PollOutcome::Success(d) => Ok(d),
        PollOutcome::Failure(d, line) => {
            let failed = format!("{what}: deployment {} failed", d.id);
            Err(cf_failure(&failed, line.unwrap_or_default())
                .help("Cloudflare's log of the deployment is in its dashboard")
                .into())
        }
        PollOutcome::Unknown(d) => {
            let stage = d
                .and_then(|d| d.latest_stage)
                .map(|s| format!("{} {}", s.name, s.status))
                .unwrap_or_else(|| "unknown".into());
            let message = format!(
                "deployment {} did not reach a final status within {}s (last: {stage})",
                created.id,
                wait.as_secs()
            );
            Err(cf_failure(what, message)
                .help("it may still go live: see it in the Cloudflare dashboard (`pages --wait-timeout` waits longer)")
                .into())
        }
    }
}

/// The environment the server reported, else the one the branch implies.
pub fn environment_of(d: &Deployment, production_branch: Option<&str>, git: &GitMeta) -> String {
    if !d.environment.is_empty() {
        return d.environment.clone();
    }
    match (production_branch, git.branch.as_deref()) {
        (Some(p), Some(b)) if p != b => "preview".to_string(),
        _ => "production".to_string(),
    }
}

/// A live site: its line, its summary row and its state for the release record.
pub struct Live {
    pub state: PagesState,
    pub row: Vec<String>,
}

/// Reports the live deployment `d` of site `name` and returns it for the summary and the record.
pub fn live(
    ctx: &Ctx,
    (name, project): (&str, &str),
    w: &Walked,
    remote: &SiteRemote,
    d: &Deployment,
    git: &GitMeta,
) -> Live {
    let environment = environment_of(d, remote.production_branch.as_deref(), git);
    let alias = d.alias();
    let elapsed = remote.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    ctx.report.info(&format!(
        "{name}: deployed to {environment} in {elapsed:.1}s\n  url:   {}\n  alias: {}\n  id:    {}",
        d.url,
        alias.as_deref().unwrap_or("-"),
        d.id
    ));
    let row = vec![
        name.to_string(),
        project.to_string(),
        environment.clone(),
        w.site.assets.len().to_string(),
        format!(
            "{} ({})",
            remote.to_upload.len(),
            human_bytes(remote.upload_bytes())
        ),
        d.url.clone(),
        alias.clone().unwrap_or_else(|| "-".into()),
    ];
    let files = remote.request.as_ref().map_or(&[][..], |r| &r.files[..]);
    let (special_files, special_files_omitted) = super::redeploy::record_special_files(files);
    let state = PagesState {
        project: project.to_string(),
        deployment_id: d.id.clone(),
        url: d.url.clone(),
        alias_url: alias,
        environment,
        manifest: w.site.manifest(),
        branch: git.branch.clone(),
        commit_hash: git.commit_hash.clone(),
        special_files,
        special_files_omitted,
    };
    Live { state, row }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_missing_hash_is_uploaded() {
        let w = super::super::local::tests::walked(&[
            ("a.html", "h1", 3),
            ("b.html", "h1", 3),
            ("c.html", "h2", 5),
            ("d.html", "h3", 7),
        ]);
        let missing: HashSet<String> = ["h1", "h3"].iter().map(|s| s.to_string()).collect();
        let files = missing_files(&w.site, &missing);
        let rels: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(rels, ["/site/a.html", "/site/d.html"]);
        let remote = SiteRemote {
            to_upload: files,
            ..Default::default()
        };
        assert_eq!(remote.upload_bytes(), 10);
        assert!(missing_files(&w.site, &HashSet::new()).is_empty());
    }

    #[test]
    fn the_environment_is_the_servers_else_the_branchs() {
        let git = |b: &str| GitMeta {
            branch: Some(b.into()),
            ..Default::default()
        };
        let mut d = Deployment::default();
        assert_eq!(environment_of(&d, Some("main"), &git("main")), "production");
        assert_eq!(environment_of(&d, Some("main"), &git("feature")), "preview");
        assert_eq!(environment_of(&d, None, &git("feature")), "production");
        d.environment = "preview".into();
        assert_eq!(environment_of(&d, Some("main"), &git("main")), "preview");
    }

    #[test]
    fn an_unknown_project_is_an_input_error() {
        let e = cf_error(
            "site `web`",
            "shop-web",
            CfError::Api {
                method: "GET".into(),
                url: "https://api.example/pages/projects/shop-web".into(),
                status: 404,
                code: Some(CODE_PROJECT_NOT_FOUND),
                message: "not found".into(),
                retry_after: None,
            },
        );
        assert_eq!(e.exit().code(), 2);
        assert!(e.to_string().contains("Pages project `shop-web` not found"));
    }
}
