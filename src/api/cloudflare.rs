//! The Cloudflare Pages API, typed: project, upload token (a JWT whose payload carries `exp` and
//! `max_file_count_allowed`), check-missing, upload, upsert-hashes, create deployment (multipart),
//! poll its status, list deployments, roll back. Wire-compatible with wrangler 4 (reference
//! cloudflare-pages.md), sturdier: one retry loop with budgets, `Retry-After`, bounded JWT refresh,
//! non-JSON error bodies understood.
//!
//! Never prints; progress goes through callbacks. The walk, hashing and bucketing live in `pages/`.
//!
//! This file is the client: its configuration, the v4 envelope, account calls with the API token,
//! and projects. Beside it: `error` (what can go wrong, and which failures are retried), `token`
//! (the upload token and its refresh policy), `upload` (the asset calls of an upload session:
//! check-missing, upload, upsert-hashes), `body` (the JSON body of an upload, built or streamed)
//! and `deployments` (create without duplicates, wait, list, roll back).

mod body;
mod deployments;
mod error;
mod token;
mod upload;

pub use body::{UploadFile, UploadStream};
pub use deployments::{Created, Deployment, DeploymentRequest, PollOutcome, Stage};
pub use error::CfError;
pub use token::{MAX_JWT_REFRESHES, Refusal, TokenBook, UploadToken};
pub use upload::{Gateway, UploadSummary};

use super::http::{HttpClient, display_safe_url, excerpt};
use super::retry::{Attempt, RetryPolicy, retry};
use error::{classify, flatten};
use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
/// Error codes of the Pages API.
pub const CODE_UNKNOWN: i64 = 8_000_000;
pub const CODE_PROJECT_NOT_FOUND: i64 = 8_000_007;
pub const CODE_UNAUTHORIZED: i64 = 8_000_013;
/// The timeout of a request with no body; requests with a body get more, in proportion to its size
/// ([`super::http::timeout_for_body`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and as whom to call the API.
#[derive(Clone, Debug)]
pub struct Config {
    pub base_url: String,
    pub account_id: String,
    pub api_token: String,
}

impl Config {
    /// From CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_BASE_URL. The error names
    /// what is missing.
    pub fn from_env() -> Result<Config, String> {
        use crate::env_vars as ev;
        let token = ev::get(ev::CLOUDFLARE_API_TOKEN);
        let account = ev::get(ev::CLOUDFLARE_ACCOUNT_ID);
        let missing: Vec<&str> = [
            (ev::CLOUDFLARE_API_TOKEN, token.is_none()),
            (ev::CLOUDFLARE_ACCOUNT_ID, account.is_none()),
        ]
        .into_iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| n)
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} must be set to deploy to Cloudflare Pages",
                missing.join(" and ")
            ));
        }
        Ok(Config {
            base_url: ev::get(ev::CLOUDFLARE_API_BASE_URL)
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            account_id: account.unwrap_or_default(),
            api_token: token.unwrap_or_default(),
        })
    }
}

/// A Pages project, the fields we use.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Project {
    pub name: String,
    #[serde(default)]
    pub production_branch: Option<String>,
    #[serde(default)]
    pub subdomain: Option<String>,
}

/// The client.
pub struct Cloudflare {
    http: HttpClient,
    cfg: Config,
    policy: RetryPolicy,
    tokens: Mutex<TokenBook>,
    /// Upload tokens fetched after the first one (proactive and after refusals).
    refreshes: AtomicU32,
}

impl Cloudflare {
    pub fn new(cfg: Config, http: HttpClient, policy: RetryPolicy) -> Cloudflare {
        Cloudflare {
            http,
            cfg,
            policy,
            tokens: Mutex::new(TokenBook::default()),
            refreshes: AtomicU32::new(0),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Upload tokens fetched after the first one, so far in this run.
    pub fn refreshes(&self) -> u32 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.base_url, path)
    }

    fn project_path(&self, project: &str) -> String {
        format!(
            "/accounts/{}/pages/projects/{}",
            self.cfg.account_id,
            url_segment(project)
        )
    }

    /// Sends one request and reads the v4 envelope. `success` decides, as for wrangler; a body that
    /// is not JSON is an error that keeps the status and an excerpt.
    fn execute(&self, method: &Method, url: &str, rb: RequestBuilder) -> Result<Value, CfError> {
        let shown = display_safe_url(url);
        let resp = rb.send().map_err(|source| CfError::Network {
            method: method.to_string(),
            url: shown.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::retry::parse_retry_after(v, SystemTime::now()));
        let body = resp.bytes().map_err(|source| CfError::Network {
            method: method.to_string(),
            url: shown.clone(),
            source,
        })?;
        if body.is_empty() && matches!(status, 204 | 205) {
            return Ok(Value::Null);
        }
        let malformed = || CfError::Malformed {
            method: method.to_string(),
            url: shown.clone(),
            status,
            body: excerpt(&String::from_utf8_lossy(&body), 100),
            retry_after,
        };
        let env: Value = serde_json::from_slice(&body).map_err(|_| malformed())?;
        let Some(success) = env.get("success").and_then(Value::as_bool) else {
            return Err(malformed());
        };
        if success {
            return Ok(env.get("result").cloned().unwrap_or(Value::Null));
        }
        let first = env
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first());
        Err(CfError::Api {
            method: method.to_string(),
            url: shown,
            status,
            code: first.and_then(|e| e.get("code")).and_then(Value::as_i64),
            message: first
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
            retry_after,
        })
    }

    /// An account-scoped call with the API token, retried on transient failures.
    fn api_call(
        &self,
        method: Method,
        path: &str,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder, CfError>,
    ) -> Result<Value, CfError> {
        let url = self.url(path);
        // The error itself names the method and URL.
        let what = "the request";
        retry(&self.policy, what, |_| {
            let rb = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.cfg.api_token);
            let rb = match build(rb) {
                Ok(rb) => rb,
                Err(e) => return Attempt::Fail(e),
            };
            classify(self.execute(&method, &url, rb))
        })
        .map_err(flatten)
    }
    /// `GET …/projects/{p}`.
    pub fn get_project(&self, project: &str) -> Result<Project, CfError> {
        let v = self.api_call(Method::GET, &self.project_path(project), &Ok)?;
        Ok(serde_json::from_value(v).unwrap_or_else(|_| Project {
            name: project.to_string(),
            ..Project::default()
        }))
    }
}

/// Percent-encodes a path segment (project names and ids are plain; be safe anyway).
fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn segments_are_encoded() {
        assert_eq!(url_segment("my-site"), "my-site");
        assert_eq!(url_segment("a b/c"), "a%20b%2Fc");
    }
}
