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
//!
//! This file is the client: how it is built, its runtime, and the one call through the retry
//! loop. Beside it: `error` (what can go wrong, the retry classifier, the messages), `approvals`
//! (run reviews, approval issues and comments), `refs` (tag objects and refs) and `deployments`
//! (deployments and their statuses).

mod approvals;
mod deployments;
mod error;
mod refs;

pub use error::GitHubError;
pub use refs::{GitRef, TagObject};

use super::http::{display_safe_url, user_agent};
use super::retry::{Attempt, RetryPolicy, retry};
use crate::cmd::Secret;
use crate::env_vars;
use error::{Verdict, http_error, verdict};
use http::header::{ACCEPT, HeaderValue};
use octocrab::service::middleware::auth_header::AuthHeaderLayer;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::service::middleware::reqwest_connector::ReqwestConnector;
use octocrab::{AuthState, Octocrab, OctocrabBuilder};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
        let octo = octocrab_on(&rt, http, base_uri, auth);
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
}

impl Drop for GitHub {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not block.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// octocrab over our reqwest client: JSON `Accept`, requests to `base_uri`, and the bearer `auth`
/// header for that host only.
fn octocrab_on(
    rt: &tokio::runtime::Runtime,
    http: reqwest::Client,
    base_uri: http::Uri,
    auth: HeaderValue,
) -> Octocrab {
    let headers = vec![(
        ACCEPT,
        HeaderValue::from_static("application/vnd.github+json"),
    )];
    // octocrab's request buffer spawns its worker on the current runtime: ours.
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

#[cfg(test)]
mod tests {
    use super::*;

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
