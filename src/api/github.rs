//! The GitHub REST client: the deployment reviews of a run, approval issues and their comments
//! (the approval gate), annotated tag objects, refs, deployments and deployment statuses (the
//! release ledger). Built on octocrab's typed handlers, blocking to its callers like the rest of
//! the binary.
//!
//! How it is put together, and why:
//! - octocrab sends through our reqwest (rustls, the TLS stack the binary already has), so it
//!   brings no TLS or C code of its own. The service stack is ours: user agent, `Accept`, and the
//!   bearer token, which goes only to the host of `GITHUB_API_URL`; octocrab adds
//!   `X-GitHub-Api-Version: 2022-11-28`.
//! - Each client owns a small current-thread tokio runtime and `block_on`s every call, from a
//!   scoped thread when the caller is itself inside a runtime (where `block_on` would panic).
//! - Retries happen in one place, the loop in `api::retry`: 5xx, 408, 429, and 403s that carry
//!   rate-limit headers, honouring `retry-after` and `x-ratelimit-reset`. octocrab's own retry
//!   layer is not compiled in.
//!
//! Stays out of policy: which comment counts as an approval is `approval.rs`'s business, what to
//! tag and when is the ledger's. Never prints; the token is a [`Secret`] and its header value is
//! marked sensitive.

use super::http::{display_safe_url, user_agent};
use super::retry::{
    Attempt, RetryError, RetryPolicy, is_retryable_status, is_transient, parse_retry_after, retry,
};
use crate::cmd::Secret;
use crate::env_vars;
use http::HeaderMap;
use http::header::{ACCEPT, HeaderValue};
use octocrab::models::IssueState;
use octocrab::models::issues::Comment;
use octocrab::models::repos::DeploymentStatusState;
use octocrab::params::repos::Reference;
use octocrab::service::middleware::auth_header::AuthHeaderLayer;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::service::middleware::reqwest_connector::ReqwestConnector;
use octocrab::{AuthState, Octocrab, OctocrabBuilder, Page};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Time allowed for one request, body included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after the first attempt: two, as the hand-written client before octocrab did.
const MAX_RETRIES: u32 = 2;
/// The longest wait GitHub may ask for and still be obeyed: secondary rate limits usually say
/// `retry-after: 60`. A longer wait (an exhausted hourly quota) fails at once instead.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// Comments are read 100 a page; an issue with more pages than this is not an approval issue.
const MAX_COMMENT_PAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub API is not configured: {0}")]
    Config(String),
    #[error("{method} {path}: {message}")]
    Http {
        method: &'static str,
        path: String,
        message: String,
        /// The HTTP status, 0 when no response came.
        status: u16,
    },
}

impl GitHubError {
    /// The HTTP status of the answer, when one came.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Http { status, .. } if *status != 0 => Some(*status),
            _ => None,
        }
    }
}

/// A git reference, as `git/matching-refs` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRef {
    /// The full name, `refs/tags/deploy/production/7`.
    pub name: String,
    /// What the ref points at: the tag object for an annotated tag, else the commit.
    pub sha: String,
    /// `tag`, `commit`, `tree` or `blob`.
    pub object_type: String,
}

/// An annotated tag object, as `git/tags/{sha}` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagObject {
    /// The tag's name, `deploy/production/7`.
    pub tag: String,
    pub message: String,
    /// The object tagged, a commit for the tags this tool makes.
    pub object_sha: String,
}

pub struct GitHub {
    /// `owner/name`.
    pub repository: String,
    octo: Octocrab,
    policy: RetryPolicy,
    /// Drives octocrab's futures; taken only by `Drop`.
    rt: Option<tokio::runtime::Runtime>,
}

impl GitHub {
    /// From GITHUB_API_URL (default api.github.com), GITHUB_TOKEN and GITHUB_REPOSITORY.
    pub fn from_env() -> Result<GitHub, GitHubError> {
        let token = env_vars::get(env_vars::GITHUB_TOKEN)
            .ok_or_else(|| GitHubError::Config("GITHUB_TOKEN is not set".into()))?;
        let repository = env_vars::get(env_vars::GITHUB_REPOSITORY)
            .ok_or_else(|| GitHubError::Config("GITHUB_REPOSITORY is not set".into()))?;
        let base =
            env_vars::get(env_vars::GITHUB_API_URL).unwrap_or_else(|| DEFAULT_API_URL.into());
        GitHub::new(&base, Secret::new(token), &repository)
    }

    /// A client for `repository` (`owner/name`) at `base` (`https://api.github.com`, or
    /// `https://HOST/api/v3` on GitHub Enterprise Server). Retries follow
    /// [`RetryPolicy::from_env`], so `DEPLOY_TEST_NO_RETRY_DELAY` zeroes the back-off.
    pub fn new(base: &str, token: Secret, repository: &str) -> Result<GitHub, GitHubError> {
        let config = GitHubError::Config;
        repository
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                config(format!(
                    "GITHUB_REPOSITORY `{repository}` is not `owner/name`"
                ))
            })?;
        let base_uri = base
            .trim_end_matches('/')
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme().is_some() && u.authority().is_some())
            .ok_or_else(|| {
                config(format!(
                    "GITHUB_API_URL `{}` is not an http(s) URL",
                    display_safe_url(base)
                ))
            })?;
        let mut auth = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| config("GITHUB_TOKEN is not a valid HTTP header value".into()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(user_agent())
            .build()
            .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| config(format!("cannot start the HTTP runtime: {e}")))?;
        let headers = vec![(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        )];
        // octocrab's request buffer spawns its worker on the current runtime: ours.
        let octo = {
            let _entered = rt.enter();
            let built = OctocrabBuilder::new_empty()
                .with_service(ReqwestConnector::new(http))
                .with_layer(&ExtraHeadersLayer::new(Arc::new(headers)))
                .with_layer(&BaseUriLayer::new(base_uri.clone()))
                .with_layer(&AuthHeaderLayer::new(
                    Some(auth),
                    base_uri.clone(),
                    base_uri,
                ))
                .with_auth(AuthState::None)
                .build();
            match built {
                Ok(octo) => octo,
                Err(never) => match never {},
            }
        };
        Ok(GitHub {
            repository: repository.to_string(),
            octo,
            policy: RetryPolicy {
                cap: LONGEST_WAIT,
                ..RetryPolicy::from_env()
            }
            .with_max_retries(MAX_RETRIES),
            rt: Some(rt),
        })
    }

    /// Replaces the retry policy (tests use one without delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> GitHub {
        self.policy = policy;
        self
    }

    /// Runs `fut` to completion on this client's runtime.
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let rt = self.rt.as_ref().expect("the runtime lives until drop");
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(fut);
        }
        // Called from inside another runtime, where `block_on` panics: run ours on a thread of
        // its own and wait for it.
        std::thread::scope(|s| match s.spawn(|| rt.block_on(fut)).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    /// One request (`send` builds it afresh per attempt) through the retry loop.
    fn call<T, Fut>(
        &self,
        method: &'static str,
        path: &str,
        send: impl Fn() -> Fut,
    ) -> Result<T, GitHubError>
    where
        Fut: Future<Output = octocrab::Result<T>> + Send,
        T: Send,
    {
        retry(&self.policy, &format!("{method} {path}"), |_| {
            match self.block_on(send()) {
                Ok(v) => Attempt::Done(v),
                Err(e) => match verdict(&e, SystemTime::now()) {
                    Verdict::Retry(after) => Attempt::Retry { error: e, after },
                    Verdict::Fail => Attempt::Fail(e),
                },
            }
        })
        .map_err(|r| http_error(method, path, r))
    }

    /// (owner, name) of [`GitHub::repository`].
    fn owner_name(&self) -> (&str, &str) {
        self.repository
            .split_once('/')
            .unwrap_or((&self.repository, ""))
    }

    fn git(&self) -> octocrab::git::GitHandler<'_> {
        let (owner, name) = self.owner_name();
        self.octo.git(owner, name)
    }

    fn issues(&self) -> octocrab::issues::IssueHandler<'_> {
        let (owner, name) = self.owner_name();
        self.octo.issues(owner, name)
    }

    fn repos(&self) -> octocrab::repos::RepoHandler<'_> {
        let (owner, name) = self.owner_name();
        self.octo.repos(owner, name)
    }

    fn workflows(&self) -> octocrab::workflows::WorkflowsHandler<'_> {
        let (owner, name) = self.owner_name();
        self.octo.workflows(owner, name)
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{rest}", self.repository)
    }

    /// `GET /repos/{repo}/actions/runs/{run_id}/approvals`: the review history of the run, as
    /// the API's JSON objects (`state`, `comment`, `environments[].name`, `user.login`).
    pub fn run_approvals(&self, run_id: &str) -> Result<Vec<Value>, GitHubError> {
        let path = self.repo_path(&format!("actions/runs/{run_id}/approvals"));
        let id: u64 = run_id.parse().map_err(|_| GitHubError::Http {
            method: "GET",
            path: path.clone(),
            message: format!("the run id `{run_id}` is not a number"),
            status: 0,
        })?;
        let approvals = self.call("GET", &path, || async move {
            self.workflows().get_run_approvals(id.into()).await
        })?;
        to_json_values("GET", &path, &approvals)
    }

    /// `POST /repos/{repo}/issues`: returns (number, html_url).
    pub fn create_issue(&self, title: &str, body: &str) -> Result<(u64, String), GitHubError> {
        let path = self.repo_path("issues");
        let issue = self.call("POST", &path, || async move {
            self.issues().create(title).body(body).send().await
        })?;
        Ok((issue.number, issue.html_url.to_string()))
    }

    /// Every comment of an issue, oldest first, as the API's JSON objects (`user.login`, `body`,
    /// `created_at`, `updated_at`, `html_url`): 100 a page, following the `Link` header.
    pub fn issue_comments(&self, number: u64) -> Result<Vec<Value>, GitHubError> {
        let path = self.repo_path(&format!("issues/{number}/comments"));
        let first: Page<Comment> = self.call("GET", &path, || async move {
            self.issues()
                .list_comments(number)
                .per_page(100u8)
                .page(1u32)
                .send()
                .await
        })?;
        let mut comments = first.items;
        let mut next = first.next;
        let mut pages = 1;
        while let Some(uri) = next {
            if pages == MAX_COMMENT_PAGES {
                return Err(GitHubError::Http {
                    method: "GET",
                    path,
                    message: format!("more than {MAX_COMMENT_PAGES} pages of comments"),
                    status: 0,
                });
            }
            let uri = &uri;
            let page: Page<Comment> = self.call("GET", &path, || async move {
                self.octo.get(uri.to_string(), None::<&()>).await
            })?;
            comments.extend(page.items);
            next = page.next;
            pages += 1;
        }
        to_json_values("GET", &path, &comments)
    }

    /// `POST /repos/{repo}/issues/{number}/comments`.
    pub fn comment(&self, number: u64, body: &str) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("issues/{number}/comments"));
        self.call("POST", &path, || async move {
            self.issues().create_comment(number, body).await
        })
        .map(drop)
    }

    /// `PATCH /repos/{repo}/issues/{number}` with `state: closed`.
    pub fn close_issue(&self, number: u64) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("issues/{number}"));
        self.call("PATCH", &path, || async move {
            self.issues()
                .update(number)
                .state(IssueState::Closed)
                .send()
                .await
        })
        .map(drop)
    }

    /// `POST /repos/{repo}/git/tags`: an annotated tag object on `commit`; returns its sha. The
    /// ref is separate ([`GitHub::set_tag_ref`]).
    pub fn create_tag_object(
        &self,
        tag: &str,
        message: &str,
        commit: &str,
    ) -> Result<String, GitHubError> {
        let path = self.repo_path("git/tags");
        let object = self.call("POST", &path, || async move {
            self.git()
                .create_tag(tag, message, commit, "commit")
                .send()
                .await
        })?;
        Ok(object.sha)
    }

    /// Creates `refs/tags/<tag>` pointing at `sha` with `POST …/git/refs`, and only creates it: an
    /// existing ref is GitHub's 422 "Reference already exists", never moved.
    pub fn create_tag_ref(&self, tag: &str, sha: &str) -> Result<(), GitHubError> {
        let reference = &Reference::Tag(tag.to_string());
        self.call("POST", &self.repo_path("git/refs"), || async move {
            self.git().create_ref(reference, sha).await
        })
        .map(drop)
    }

    /// Points `refs/tags/<tag>` at `sha`: `PATCH …/git/refs/tags/<tag>` with force, or
    /// `POST …/git/refs` when the ref does not exist yet (GitHub answers 422 or 404).
    pub fn set_tag_ref(&self, tag: &str, sha: &str) -> Result<(), GitHubError> {
        let reference = &Reference::Tag(tag.to_string());
        let update = self.call(
            "PATCH",
            &self.repo_path(&format!("git/refs/tags/{tag}")),
            || async move {
                self.git()
                    .update_ref(reference, sha)
                    .force(true)
                    .send()
                    .await
            },
        );
        match update {
            Ok(_) => Ok(()),
            Err(GitHubError::Http { status, .. }) if status == 422 || status == 404 => self
                .call("POST", &self.repo_path("git/refs"), || async move {
                    self.git().create_ref(reference, sha).await
                })
                .map(drop),
            Err(e) => Err(e),
        }
    }

    /// `GET /repos/{repo}/git/matching-refs/{prefix}`: the refs whose names start with
    /// `refs/<prefix>` (`tags/deploy/production/`), in GitHub's order (sorted by name). No match
    /// is an empty list.
    pub fn list_matching_refs(&self, prefix: &str) -> Result<Vec<GitRef>, GitHubError> {
        let prefix = prefix.strip_prefix("refs/").unwrap_or(prefix);
        let path = self.repo_path(&format!("git/matching-refs/{prefix}"));
        let refs = self.call("GET", &path, || async move {
            self.git().list_matching_refs(prefix).await
        })?;
        refs.into_iter()
            .map(|r| {
                // `Object` is a non-exhaustive enum tagged by `type`; its JSON form has both fields.
                let object = serde_json::to_value(&r.object).unwrap_or(Value::Null);
                let field = |k: &str| object.get(k).and_then(Value::as_str).map(String::from);
                match (field("sha"), field("type")) {
                    (Some(sha), Some(object_type)) => Ok(GitRef {
                        name: r.ref_field,
                        sha,
                        object_type,
                    }),
                    _ => Err(GitHubError::Http {
                        method: "GET",
                        path: path.clone(),
                        message: format!("{} points at no object", r.ref_field),
                        status: 0,
                    }),
                }
            })
            .collect()
    }

    /// `GET /repos/{repo}/git/tags/{sha}`: the annotated tag object `sha` (what a ref of
    /// `object_type` `tag` points at).
    pub fn get_tag_object(&self, sha: &str) -> Result<TagObject, GitHubError> {
        let path = self.repo_path(&format!("git/tags/{sha}"));
        let tag = self.call(
            "GET",
            &path,
            || async move { self.git().get_tag(sha).await },
        )?;
        let object_sha = tag.object.map(|o| o.sha).ok_or_else(|| GitHubError::Http {
            method: "GET",
            path: path.clone(),
            message: "the tag object names no object".into(),
            status: 0,
        })?;
        Ok(TagObject {
            tag: tag.tag,
            message: tag.message,
            object_sha,
        })
    }

    /// `POST /repos/{repo}/deployments` for `sha` (no auto-merge, no required status checks);
    /// returns the deployment id.
    pub fn create_deployment(
        &self,
        sha: &str,
        environment: &str,
        task: &str,
        description: &str,
        payload: &Value,
    ) -> Result<u64, GitHubError> {
        let path = self.repo_path("deployments");
        // `auto_merge: false` also keeps GitHub from answering 202 ("Auto-merged main into …"),
        // which is not a deployment.
        let deployment = self.call("POST", &path, || async move {
            self.repos()
                .deployments()
                .create(sha)
                .environment(environment)
                .task(task)
                .description(description)
                .auto_merge(false)
                .required_contexts(Vec::<String>::new())
                .production_environment(environment == "production")
                .payload(payload.clone())
                .send()
                .await
        })?;
        Ok(deployment.id.into_inner())
    }

    /// `POST /repos/{repo}/deployments/{id}/statuses`. `state` is one of `error`, `failure`,
    /// `inactive`, `in_progress`, `queued`, `pending`, `success`.
    pub fn deployment_status(
        &self,
        id: u64,
        state: &str,
        log_url: Option<&str>,
        environment_url: Option<&str>,
        description: &str,
    ) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("deployments/{id}/statuses"));
        let state = deployment_state(state).ok_or_else(|| GitHubError::Http {
            method: "POST",
            path: path.clone(),
            message: format!("`{state}` is not a deployment status state"),
            status: 0,
        })?;
        self.call("POST", &path, || async move {
            let repo = self.repos();
            let mut status = repo
                .deployments()
                .statuses(id)
                .create(state)
                .description(description);
            if let Some(u) = log_url {
                status = status.log_url(u);
            }
            if let Some(u) = environment_url {
                status = status.environment_url(u);
            }
            status.send().await
        })
        .map(drop)
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not block.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn deployment_state(state: &str) -> Option<DeploymentStatusState> {
    Some(match state {
        "error" => DeploymentStatusState::Error,
        "failure" => DeploymentStatusState::Failure,
        "inactive" => DeploymentStatusState::Inactive,
        "in_progress" => DeploymentStatusState::InProgress,
        "queued" => DeploymentStatusState::Queued,
        "pending" => DeploymentStatusState::Pending,
        "success" => DeploymentStatusState::Success,
        _ => return None,
    })
}

/// Typed results handed on as JSON, for callers that read a few fields of each.
fn to_json_values<T: Serialize>(
    method: &'static str,
    path: &str,
    items: &[T],
) -> Result<Vec<Value>, GitHubError> {
    items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| GitHubError::Http {
            method,
            path: path.to_string(),
            message: format!("cannot re-encode the response: {e}"),
            status: 0,
        })
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Try again, after the server's wait if it named one, else after the usual back-off.
    Retry(Option<Duration>),
    Fail,
}

/// The one classifier. Network failures are transient when [`is_transient`] says so; GitHub's
/// answers as [`status_verdict`] says.
fn verdict(err: &octocrab::Error, now: SystemTime) -> Verdict {
    match err {
        octocrab::Error::GitHub { source, .. } => status_verdict(
            source.status_code.as_u16(),
            source.headers.as_ref().unwrap_or(&HeaderMap::new()),
            now,
        ),
        e if is_transient(e) => Verdict::Retry(None),
        _ => Verdict::Fail,
    }
}

/// 5xx, 408 and 429 are transient, and so is a 403 that carries rate-limit headers (GitHub's
/// secondary limits answer 403 with `retry-after`; an exhausted quota says
/// `x-ratelimit-remaining: 0`). A wait longer than [`LONGEST_WAIT`] is not worth it.
fn status_verdict(status: u16, headers: &HeaderMap, now: SystemTime) -> Verdict {
    let wait = server_wait(headers, now);
    let rate_limited = status == 429 || (status == 403 && wait.is_some());
    if !(rate_limited || is_retryable_status(status)) {
        return Verdict::Fail;
    }
    match wait {
        Some(w) if w > LONGEST_WAIT => Verdict::Fail,
        _ => Verdict::Retry(wait),
    }
}

/// How long the response asks us to wait: `retry-after`, else the time until
/// `x-ratelimit-reset` when `x-ratelimit-remaining` is 0.
fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(after) = header("retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(after);
    }
    if header("x-ratelimit-remaining").map(str::trim) != Some("0") {
        return None;
    }
    header("x-ratelimit-reset").and_then(|v| ratelimit_reset_wait(v, now))
}

/// `x-ratelimit-reset` (epoch seconds) → the wait from `now`; a reset in the past means now.
fn ratelimit_reset_wait(value: &str, now: SystemTime) -> Option<Duration> {
    let reset = UNIX_EPOCH + Duration::from_secs(value.trim().parse().ok()?);
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The caller's error: status and GitHub's message, how hard it was tried.
fn http_error(method: &'static str, path: &str, r: RetryError<octocrab::Error>) -> GitHubError {
    let (status, message) = describe(&r.last);
    GitHubError::Http {
        method,
        path: path.to_string(),
        message: message + &retries_note(r.retries, r.elapsed),
        status,
    }
}

/// (status, message): GitHub's answer as [`status_message`] puts it; for failures without a
/// response, status 0 and the error with its causes.
fn describe(err: &octocrab::Error) -> (u16, String) {
    if let octocrab::Error::GitHub { source, .. } = err {
        let status = source.status_code.as_u16();
        return (
            status,
            status_message(status, &source.message, source.errors.as_deref()),
        );
    }
    let mut message = match err {
        // A 2xx whose body is not what the endpoint documents (a 202 instead of a deployment).
        octocrab::Error::Json { .. } | octocrab::Error::Serde { .. } => {
            format!("unexpected answer: {err}")
        }
        _ => err.to_string(),
    };
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    (0, message)
}

/// `HTTP 422: Validation Failed (sha: Object does not exist)`: the status, GitHub's `message`,
/// and the details it lists in `errors`.
fn status_message(status: u16, message: &str, errors: Option<&[Value]>) -> String {
    let details: Vec<String> = errors
        .unwrap_or_default()
        .iter()
        .filter_map(|e| match e {
            Value::String(s) => Some(s.clone()),
            e => e
                .get("message")
                .or_else(|| e.get("code"))
                .and_then(Value::as_str)
                .map(|m| match e.get("field").and_then(Value::as_str) {
                    Some(f) => format!("{f}: {m}"),
                    None => m.to_string(),
                }),
        })
        .collect();
    if details.is_empty() {
        format!("HTTP {status}: {message}")
    } else {
        format!("HTTP {status}: {message} ({})", details.join("; "))
    }
}

/// ` (failed after 2 retries in 1.5s)`, or nothing when there was no retry.
fn retries_note(retries: u32, elapsed: Duration) -> String {
    match retries {
        0 => String::new(),
        1 => format!(" (failed after 1 retry in {:.1}s)", elapsed.as_secs_f64()),
        n => format!(
            " (failed after {n} retries in {:.1}s)",
            elapsed.as_secs_f64()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn verdict_of(status: u16, pairs: &[(&'static str, &str)]) -> Verdict {
        status_verdict(status, &headers(pairs), at(1_700_000_000))
    }

    #[test]
    fn transient_statuses_retry_and_honour_the_server_wait() {
        assert_eq!(verdict_of(502, &[]), Verdict::Retry(None));
        assert_eq!(verdict_of(503, &[]), Verdict::Retry(None));
        assert_eq!(
            verdict_of(429, &[("retry-after", "7")]),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
        // A secondary rate limit is a 403 with retry-after.
        assert_eq!(
            verdict_of(403, &[("retry-after", "60")]),
            Verdict::Retry(Some(Duration::from_secs(60)))
        );
        // An exhausted quota that resets soon is waited for.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000012")
                ]
            ),
            Verdict::Retry(Some(Duration::from_secs(12)))
        );
    }

    #[test]
    fn permanent_failures_and_long_waits_fail_at_once() {
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(verdict_of(status, &[]), Verdict::Fail, "{status}");
        }
        // Quota left: a plain permission problem.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "12"),
                    ("x-ratelimit-reset", "1700000012")
                ]
            ),
            Verdict::Fail
        );
        // An hour until the quota resets is not worth waiting for.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700003600")
                ]
            ),
            Verdict::Fail
        );
        assert_eq!(verdict_of(429, &[("retry-after", "3600")]), Verdict::Fail);
    }

    #[test]
    fn reset_times_are_relative_to_now() {
        assert_eq!(
            ratelimit_reset_wait("1000", at(990)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(ratelimit_reset_wait("1000", at(2000)), Some(Duration::ZERO));
        assert_eq!(ratelimit_reset_wait("soon", at(0)), None);
    }

    #[test]
    fn messages_carry_status_details_and_retries() {
        assert_eq!(
            status_message(422, "Reference already exists", None),
            "HTTP 422: Reference already exists"
        );
        let errors = [
            serde_json::json!({"resource": "Deployment", "field": "required_contexts", "code": "invalid"}),
        ];
        assert_eq!(
            status_message(
                409,
                "Conflict: Commit status checks failed for main.",
                Some(&errors)
            ),
            "HTTP 409: Conflict: Commit status checks failed for main. (required_contexts: invalid)"
        );
        assert_eq!(retries_note(0, Duration::from_secs(1)), "");
        assert_eq!(
            retries_note(1, Duration::from_millis(500)),
            " (failed after 1 retry in 0.5s)"
        );
        assert_eq!(
            retries_note(3, Duration::from_millis(1500)),
            " (failed after 3 retries in 1.5s)"
        );
    }

    #[test]
    fn bad_configuration_is_refused_without_the_token() {
        let token = "ghs_Secret123";
        for (base, repo) in [
            ("https://api.github.com", "no-slash"),
            ("https://api.github.com", "a/b/c"),
            ("not a url", "o/r"),
        ] {
            let err = GitHub::new(base, Secret::new(token), repo)
                .err()
                .expect("refused");
            assert!(matches!(err, GitHubError::Config(_)), "{err:?}");
            assert!(!err.to_string().contains(token), "{err}");
        }
        assert!(GitHub::new("https://ghe.example.com/api/v3/", Secret::new(token), "o/r").is_ok());
    }

    #[test]
    fn usable_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Nothing listens on port 9 of the loopback: the call fails fast, but it must not panic,
        // and neither may dropping the client there.
        outer.block_on(async {
            let gh = GitHub::new("http://127.0.0.1:9", Secret::new("t"), "o/r")
                .unwrap()
                .with_retry_policy(
                    RetryPolicy {
                        no_delay: true,
                        ..RetryPolicy::default()
                    }
                    .with_max_retries(0),
                );
            let err = gh.get_tag_object("abc").unwrap_err();
            assert!(
                matches!(err, GitHubError::Http { status: 0, .. }),
                "{err:?}"
            );
        });
    }
}
