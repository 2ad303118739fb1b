//! The Cloudflare Pages API, typed: project, upload token (a JWT whose payload carries `exp` and
//! `max_file_count_allowed`), check-missing, upload, upsert-hashes, create deployment (multipart),
//! poll its status, list deployments, roll back. Wire-compatible with wrangler 4 (reference
//! cloudflare-pages.md), sturdier: one retry loop with budgets, `Retry-After`, bounded JWT refresh,
//! non-JSON error bodies understood.
//!
//! Never prints; progress goes through callbacks. The walk, hashing and bucketing live in `pages/`.

use super::http::{HttpClient, display_safe_url, excerpt, timeout_for_body};
use super::retry::{Attempt, RetryError, RetryPolicy, is_retryable_status, is_transient, retry};
use base64::Engine as _;
use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
/// Error codes of the Pages API.
pub const CODE_UNKNOWN: i64 = 8_000_000;
pub const CODE_PROJECT_NOT_FOUND: i64 = 8_000_007;
pub const CODE_UNAUTHORIZED: i64 = 8_000_013;
/// Fresh upload tokens refused in a row (each refused before any request with it succeeded) before
/// the run gives up. Tokens that worked and then expired, and tokens replaced before their `exp`,
/// do not count: a long upload may go through any number of them.
pub const MAX_JWT_REFRESHES: u32 = 5;
/// A token this close to its `exp` is replaced before use (at most half its lifetime).
const JWT_EXPIRY_MARGIN: u64 = 60;
/// The timeout of a request with no body; requests with a body get more, in proportion to its size
/// ([`timeout_for_body`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// After an HTTP 524 (a gateway timeout at Cloudflare's edge) uploads go one at a time for the
/// rest of the run, as wrangler does: requests already in flight finish, no new one starts while
/// another is running.
#[derive(Debug, Default)]
pub struct Gateway {
    tripped: AtomicBool,
    one_at_a_time: Mutex<()>,
}

impl Gateway {
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
    fn trip(&self) {
        self.tripped.store(true, Ordering::SeqCst);
    }
    /// Held for the length of one request once tripped.
    fn turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.tripped()
            .then(|| self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

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

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    #[error("{method} {url}: HTTP {status}{}: {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Api {
        method: String,
        url: String,
        status: u16,
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: HTTP {status}: received a malformed response from the API: {body}")]
    Malformed {
        method: String,
        url: String,
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: {source}")]
    Network {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid upload token: {0}")]
    InvalidToken(String),
    #[error(
        "the upload token was refused: {0} tokens in a row were refused before any request with them succeeded; giving up (is CLOUDFLARE_ACCOUNT_ID right?)"
    )]
    RefreshBudget(u32),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error(transparent)]
    Retried(Box<RetryError<CfError>>),
}

impl CfError {
    /// The API error code (`errors[0].code`), looking through retries.
    pub fn code(&self) -> Option<i64> {
        match self {
            CfError::Api { code, .. } => *code,
            CfError::Retried(r) => r.last.code(),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when one came, looking through retries.
    pub fn status(&self) -> Option<u16> {
        match self {
            CfError::Api { status, .. } | CfError::Malformed { status, .. } => Some(*status),
            CfError::Retried(r) => r.last.status(),
            _ => None,
        }
    }

    /// The upload token was refused: 8000013, or a plain-text `Expired JWT`.
    fn is_jwt_refused(&self) -> bool {
        match self {
            CfError::Api { code, .. } => *code == Some(CODE_UNAUTHORIZED),
            CfError::Malformed { status, body, .. } => {
                matches!(status, 401 | 403) && body.contains("Expired JWT")
            }
            _ => false,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            CfError::Api { status, code, .. } => {
                is_retryable_status(*status) || *code == Some(CODE_UNKNOWN)
            }
            CfError::Malformed { status, .. } => is_retryable_status(*status),
            // A file that changed since it was hashed will not get better by retrying.
            CfError::Network { source, .. } => {
                is_transient(source) && !chain_mentions(source, CHANGED_MARK)
            }
            _ => false,
        }
    }

    /// The server certainly did not act on the request: the connection was never made, or it
    /// answered 429 (rate limited before processing).
    fn certainly_not_processed(&self) -> bool {
        match self {
            CfError::Network { source, .. } => source.is_connect(),
            CfError::Api { status, .. } | CfError::Malformed { status, .. } => *status == 429,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CfError::Api { retry_after, .. } | CfError::Malformed { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    fn is_gateway_timeout(&self) -> bool {
        matches!(
            self,
            CfError::Api { status: 524, .. } | CfError::Malformed { status: 524, .. }
        )
    }
}

/// The claims of an upload token that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadToken {
    pub jwt: String,
    /// Seconds since the epoch; `None` = never expires.
    pub exp: Option<u64>,
    pub max_file_count_allowed: u64,
}

impl UploadToken {
    /// Reads `exp` and `max_file_count_allowed` from the JWT's payload (the signature is not ours to
    /// check).
    pub fn parse(jwt: &str) -> Result<UploadToken, CfError> {
        let mut parts = jwt.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CfError::InvalidToken(
                "not three dot-separated segments".into(),
            ));
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| CfError::InvalidToken(format!("payload is not base64url: {e}")))?;
        let claims: Value = serde_json::from_slice(&bytes)
            .map_err(|e| CfError::InvalidToken(format!("payload is not JSON: {e}")))?;
        Ok(UploadToken {
            jwt: jwt.to_string(),
            exp: claims.get("exp").and_then(Value::as_u64),
            max_file_count_allowed: claims
                .get("max_file_count_allowed")
                .and_then(Value::as_u64)
                .unwrap_or(crate::pages::DEFAULT_MAX_FILES),
        })
    }

    /// Expired, or expiring within `margin` seconds of `now`.
    pub fn expires_within(&self, now: SystemTime, margin: u64) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.exp.is_some_and(|exp| exp <= now + margin)
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

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Stage {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
}

/// A deployment, the fields we report.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Deployment {
    pub id: String,
    #[serde(default)]
    pub short_id: Option<String>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    #[serde(default)]
    pub latest_stage: Option<Stage>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub deployment_trigger: Option<Value>,
}

impl Deployment {
    /// Whether this deployment's `deployment_trigger.metadata` carries the branch, commit hash and
    /// dirty flag `req` sent (those it sent; the message is not compared, the server may tidy it).
    pub fn made_by(&self, req: &DeploymentRequest) -> bool {
        let meta = self
            .deployment_trigger
            .as_ref()
            .and_then(|t| t.get("metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        req.branch
            .as_ref()
            .is_none_or(|b| text("branch").as_ref() == Some(b))
            && req
                .commit_hash
                .as_ref()
                .is_none_or(|h| text("commit_hash").as_ref() == Some(h))
            && req.commit_dirty.is_none_or(|d| {
                let got = meta.get("commit_dirty");
                got.and_then(Value::as_bool) == Some(d)
                    || got.and_then(Value::as_str) == Some(if d { "true" } else { "false" })
            })
    }

    /// The first `.pages.dev` alias.
    pub fn alias(&self) -> Option<String> {
        crate::pages::pages_dev_alias(self.aliases.as_deref().unwrap_or(&[])).cloned()
    }
    fn stage_is(&self, name: &str, status: &str) -> bool {
        self.latest_stage
            .as_ref()
            .is_some_and(|s| (name.is_empty() || s.name == name) && s.status == status)
    }
}

/// The parts of the deployment POST besides the manifest.
#[derive(Clone, Debug, Default)]
pub struct DeploymentRequest {
    pub manifest: BTreeMap<String, String>,
    pub branch: Option<String>,
    pub commit_hash: Option<String>,
    pub commit_message: Option<String>,
    pub commit_dirty: Option<bool>,
    /// Special files as multipart file parts (name, bytes), in the order to send them:
    /// `_headers`, `_redirects`, `_worker.bundle`, `_routes.json` (see `pages::SpecialFiles`).
    pub files: Vec<(String, Vec<u8>)>,
}

/// A deployment the POST created.
#[derive(Clone, Debug)]
pub struct Created {
    pub deployment: Deployment,
    /// The POST's answer was lost, and the deployment it had created was found in the project's
    /// list and adopted instead of creating a second one.
    pub adopted: bool,
}

/// One file to upload.
#[derive(Clone, Debug)]
pub struct UploadFile {
    pub hash: String,
    pub path: PathBuf,
    pub content_type: &'static str,
    pub size: u64,
}

/// How the uploads went, beyond success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadSummary {
    /// An HTTP 524 dropped the uploads to one at a time.
    pub one_at_a_time: bool,
}

/// How the final status poll ended.
#[derive(Debug)]
pub enum PollOutcome {
    Success(Deployment),
    /// The deployment failed; the last log line if any.
    Failure(Deployment, Option<String>),
    /// Still not final at the deadline.
    Unknown(Option<Deployment>),
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

/// The run's upload token and how it has fared: the refresh policy, kept pure (the clock is passed
/// in) so it can be tested without waiting.
#[derive(Debug, Default)]
pub struct TokenBook {
    pub project: Option<String>,
    pub token: Option<UploadToken>,
    /// Local time (seconds since the epoch) when `token` was fetched.
    pub fetched_at: u64,
    /// A request with `token` succeeded.
    pub accepted: bool,
    /// Tokens refused in a row, each before any request with it succeeded.
    pub refused_in_a_row: u32,
}

/// What to do about a refused token.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another request already replaced it: retry with the current token.
    AlreadyReplaced,
    /// Fetch a new token, then retry.
    Refresh,
    /// Too many fresh tokens refused in a row.
    GiveUp(u32),
}

impl TokenBook {
    /// Whether the current token should be replaced before it is used at `now`: within
    /// [`JWT_EXPIRY_MARGIN`] of its `exp`, but never more than half its lifetime early (a token
    /// that lives 30 s is used for 15 s). A token that looked expired when it was fetched (the
    /// local clock is ahead of the server's) is left to the server to refuse.
    pub fn wants_refresh(&self, now: u64) -> bool {
        let Some(exp) = self.token.as_ref().and_then(|t| t.exp) else {
            return false;
        };
        let Some(lifetime) = exp.checked_sub(self.fetched_at).filter(|l| *l > 0) else {
            return false;
        };
        let margin = JWT_EXPIRY_MARGIN.min(lifetime / 2);
        exp <= now.saturating_add(margin)
    }

    /// A new token arrived.
    pub fn install(&mut self, token: UploadToken, now: u64) {
        self.token = Some(token);
        self.fetched_at = now;
        self.accepted = false;
    }

    /// A request with `jwt` succeeded.
    pub fn accepted(&mut self, jwt: &str) {
        if self.token.as_ref().is_some_and(|t| t.jwt == jwt) {
            self.accepted = true;
        }
        self.refused_in_a_row = 0;
    }

    /// A request with `jwt` was refused (8000013 or `Expired JWT`).
    pub fn refused(&mut self, jwt: &str) -> Refusal {
        if self.token.as_ref().is_some_and(|t| t.jwt != jwt) {
            return Refusal::AlreadyReplaced;
        }
        if !self.accepted {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > MAX_JWT_REFRESHES {
                return Refusal::GiveUp(self.refused_in_a_row);
            }
        }
        Refusal::Refresh
    }
}

/// `{"key":…,"value":…,"metadata":{"contentType":…},"base64":true}` in exactly that order.
#[derive(Serialize)]
struct UploadEntry<'a> {
    key: &'a str,
    value: String,
    metadata: Metadata<'a>,
    base64: bool,
}
#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(rename = "contentType")]
    content_type: &'a str,
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

    /// An asset call with the upload JWT: refreshed when close to expiry or refused, bounded.
    fn asset_call(
        &self,
        path: &str,
        body_len: u64,
        body: &dyn Fn() -> reqwest::blocking::Body,
        policy: &RetryPolicy,
        gateway: Option<&Gateway>,
    ) -> Result<Value, CfError> {
        let url = self.url(path);
        let method = Method::POST;
        let what = "the request";
        retry(policy, what, |_| {
            let jwt = match self.current_jwt() {
                Ok(t) => t,
                Err(e) => return Attempt::Fail(e),
            };
            let rb = self
                .http
                .request(method.clone(), &url)
                .timeout(timeout_for_body(REQUEST_TIMEOUT, body_len))
                .bearer_auth(&jwt)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body());
            let turn = gateway.and_then(Gateway::turn);
            let result = self.execute(&method, &url, rb);
            drop(turn);
            match result {
                Ok(v) => {
                    self.book().accepted(&jwt);
                    Attempt::Done(v)
                }
                // A refused token is not a failed attempt: the refusal count bounds it.
                Err(e) if e.is_jwt_refused() => match self.replace_refused(&jwt) {
                    Ok(()) => Attempt::Again(e),
                    Err(fatal) => Attempt::Fail(fatal),
                },
                Err(e) if e.is_gateway_timeout() => {
                    if let Some(g) = gateway {
                        g.trip();
                    }
                    Attempt::Retry {
                        error: e,
                        after: None,
                    }
                }
                other => classify(other),
            }
        })
        .map_err(flatten)
    }

    // ---- projects and tokens ----

    /// `GET …/projects/{p}`.
    pub fn get_project(&self, project: &str) -> Result<Project, CfError> {
        let v = self.api_call(Method::GET, &self.project_path(project), &Ok)?;
        Ok(serde_json::from_value(v).unwrap_or_else(|_| Project {
            name: project.to_string(),
            ..Project::default()
        }))
    }

    /// `GET …/projects/{p}/upload-token`, parsed.
    pub fn fetch_upload_token(&self, project: &str) -> Result<UploadToken, CfError> {
        let v = self.api_call(
            Method::GET,
            &format!("{}/upload-token", self.project_path(project)),
            &Ok,
        )?;
        let jwt = v
            .get("jwt")
            .and_then(Value::as_str)
            .ok_or_else(|| CfError::InvalidToken("no `jwt` in the response".into()))?;
        UploadToken::parse(jwt)
    }

    /// Gets the run's upload token for `project` and remembers it for the asset calls.
    pub fn start_upload_session(&self, project: &str) -> Result<UploadToken, CfError> {
        let t = self.fetch_upload_token(project)?;
        let mut book = self.book();
        *book = TokenBook {
            project: Some(project.to_string()),
            ..TokenBook::default()
        };
        book.install(t.clone(), unix_now());
        Ok(t)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, TokenBook> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token to send now, replaced first when it is about to expire. The lock is held while a
    /// new one is fetched, so parallel uploads wait for it rather than fetch their own.
    fn current_jwt(&self) -> Result<String, CfError> {
        let mut book = self.book();
        if book.wants_refresh(unix_now()) {
            self.fetch_into(&mut book)?;
        }
        book.token
            .as_ref()
            .map(|t| t.jwt.clone())
            .ok_or_else(|| CfError::InvalidToken("no upload session".into()))
    }

    /// The server refused `stale`: replace it, unless another request already did; give up after
    /// [`MAX_JWT_REFRESHES`] fresh tokens refused in a row.
    fn replace_refused(&self, stale: &str) -> Result<(), CfError> {
        let mut book = self.book();
        match book.refused(stale) {
            Refusal::AlreadyReplaced => Ok(()),
            Refusal::GiveUp(n) => Err(CfError::RefreshBudget(n)),
            Refusal::Refresh => self.fetch_into(&mut book),
        }
    }

    fn fetch_into(&self, book: &mut TokenBook) -> Result<(), CfError> {
        let project = book
            .project
            .clone()
            .ok_or_else(|| CfError::InvalidToken("no upload session".into()))?;
        let t = self.fetch_upload_token(&project)?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        book.install(t, unix_now());
        Ok(())
    }

    // ---- assets ----

    /// `POST /pages/assets/check-missing`: which of `hashes` must be uploaded.
    pub fn check_missing(&self, hashes: &[String]) -> Result<Vec<String>, CfError> {
        let body = serde_json::to_vec(&serde_json::json!({ "hashes": hashes })).unwrap_or_default();
        let v = self.asset_call(
            "/pages/assets/check-missing",
            body.len() as u64,
            &|| body.clone().into(),
            &self.policy,
            None,
        )?;
        Ok(serde_json::from_value(v).unwrap_or_default())
    }

    /// `POST /pages/assets/upsert-hashes` with every hash of the deployment.
    pub fn upsert_hashes(&self, hashes: &[String]) -> Result<(), CfError> {
        let body = serde_json::to_vec(&serde_json::json!({ "hashes": hashes })).unwrap_or_default();
        self.asset_call(
            "/pages/assets/upsert-hashes",
            body.len() as u64,
            &|| body.clone().into(),
            &self.policy,
            None,
        )?;
        Ok(())
    }

    /// The JSON body of one upload request; files are read now, not before.
    pub fn upload_body(files: &[UploadFile]) -> Result<Vec<u8>, CfError> {
        let mut entries = Vec::with_capacity(files.len());
        for f in files {
            let bytes = std::fs::read(&f.path).map_err(|source| CfError::Io {
                path: f.path.clone(),
                source,
            })?;
            entries.push(UploadEntry {
                key: &f.hash,
                value: base64::engine::general_purpose::STANDARD.encode(&bytes),
                metadata: Metadata {
                    content_type: f.content_type,
                },
                base64: true,
            });
        }
        Ok(serde_json::to_vec(&entries).unwrap_or_default())
    }

    /// Uploads the buckets, up to `concurrency` at once (one at a time after the first HTTP 524).
    /// Each bucket has its own retry budget, and each request a timeout that grows with its body.
    /// `on_done(files, bytes)` is called per finished bucket.
    pub fn upload_buckets(
        &self,
        buckets: Vec<Vec<UploadFile>>,
        concurrency: usize,
        on_done: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<UploadSummary, CfError> {
        let queue = Mutex::new(
            buckets
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        );
        let gateway = Gateway::default();
        let failed: Mutex<Option<CfError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for worker in 0..concurrency.max(1) {
                let (queue, gateway, failed) = (&queue, &gateway, &failed);
                s.spawn(move || {
                    loop {
                        // After a 524 only the first worker goes on taking buckets.
                        if worker > 0 && gateway.tripped() {
                            return;
                        }
                        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                            return;
                        }
                        let Some(bucket) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                            return;
                        };
                        let files: Arc<[UploadFile]> = bucket.clone().into();
                        let result = self.asset_call(
                            "/pages/assets/upload",
                            UploadStream::length(&files),
                            &|| UploadStream::body(Arc::clone(&files)),
                            &self.policy,
                            Some(gateway),
                        );
                        match result {
                            Ok(_) => {
                                on_done(bucket.len() as u64, bucket.iter().map(|f| f.size).sum())
                            }
                            Err(e) => {
                                if let Ok(mut f) = failed.lock() {
                                    f.get_or_insert(e);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(UploadSummary {
                one_at_a_time: gateway.tripped(),
            }),
        }
    }

    // ---- deployments ----

    /// `POST …/projects/{p}/deployments` (multipart, the parts in wrangler's order), retried on
    /// 8000000 and transient failures, without ever creating a duplicate: the project's
    /// deployments are listed before the first POST, and before a retry of a POST whose outcome is
    /// unknown (anything but a refused connection or a 429: the server may have created the
    /// deployment and the answer been lost) the list is read again. A new deployment whose
    /// `deployment_trigger.metadata` carries this request's branch, commit hash and dirty flag is
    /// the one the lost POST created: it is adopted, and no second POST is sent.
    pub fn create_deployment(
        &self,
        project: &str,
        req: &DeploymentRequest,
    ) -> Result<Created, CfError> {
        let before = self.recent_deployment_ids(project);
        self.create_deployment_after(project, req, before)
    }

    /// [`Cloudflare::create_deployment`] with the list of deployments taken beforehand
    /// ([`Cloudflare::recent_deployment_ids`], e.g. in parallel with other requests); if that list
    /// could not be read, a POST whose outcome is unknown is not retried blind but reported.
    pub fn create_deployment_after(
        &self,
        project: &str,
        req: &DeploymentRequest,
        before: Result<HashSet<String>, CfError>,
    ) -> Result<Created, CfError> {
        use reqwest::blocking::multipart::{Form, Part};
        let manifest = serde_json::to_string(&req.manifest).unwrap_or_default();
        let commit_message = req
            .commit_message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| crate::pages::truncate_commit_message(m).to_string());
        let body_len =
            manifest.len() + req.files.iter().map(|(_, b)| b.len() + 256).sum::<usize>() + 1024;
        let form = || -> Result<Form, CfError> {
            let mut form = Form::new().text("manifest", manifest.clone());
            if let Some(b) = &req.branch {
                form = form.text("branch", b.clone());
            }
            if let Some(m) = &commit_message {
                form = form.text("commit_message", m.clone());
            }
            if let Some(h) = &req.commit_hash {
                form = form.text("commit_hash", h.clone());
            }
            if let Some(d) = req.commit_dirty {
                form = form.text("commit_dirty", d.to_string());
            }
            for (name, bytes) in &req.files {
                // wrangler's `new File([…], name)` has no type: undici sends octet-stream.
                let part = Part::bytes(bytes.clone())
                    .file_name(name.clone())
                    .mime_str("application/octet-stream")
                    .map_err(|e| CfError::InvalidToken(e.to_string()))?;
                form = form.part(name.clone(), part);
            }
            Ok(form)
        };
        let path = format!("{}/deployments", self.project_path(project));
        let url = self.url(&path);
        let method = Method::POST;
        let mut unsure = false;
        retry(&self.policy, "the request", |_| {
            if unsure {
                let Ok(before) = &before else {
                    return Attempt::Fail(CfError::OutcomeUnknown(format!(
                        "the deployment POST may have created a deployment, and the project's deployments could not be listed beforehand to tell ({}); look at the deployments of `{project}` before running again",
                        before.as_ref().err().map(ToString::to_string).unwrap_or_default()
                    )));
                };
                match self.find_created(project, req, before) {
                    Ok(Some(d)) => {
                        return Attempt::Done(Created {
                            deployment: d,
                            adopted: true,
                        });
                    }
                    Ok(None) => unsure = false,
                    // Not knowing is no reason to POST blind: look again after a back-off.
                    Err(e) if e.is_transient() => {
                        return Attempt::Retry {
                            after: e.retry_after(),
                            error: e,
                        };
                    }
                    Err(e) => return Attempt::Fail(e),
                }
            }
            let form = match form() {
                Ok(f) => f,
                Err(e) => return Attempt::Fail(e),
            };
            let rb = self
                .http
                .request(method.clone(), &url)
                .timeout(timeout_for_body(REQUEST_TIMEOUT, body_len as u64))
                .bearer_auth(&self.cfg.api_token)
                .multipart(form);
            match self.execute(&method, &url, rb) {
                Ok(v) => match deployment_from(v) {
                    Ok(d) => Attempt::Done(Created {
                        deployment: d,
                        adopted: false,
                    }),
                    Err(e) => Attempt::Fail(e),
                },
                Err(e) if e.is_transient() => {
                    unsure = !e.certainly_not_processed();
                    Attempt::Retry {
                        after: e.retry_after(),
                        error: e,
                    }
                }
                Err(e) => Attempt::Fail(e),
            }
        })
        .map_err(flatten)
    }

    /// The ids of the project's most recent deployments (the first page of the list): taken before
    /// a deployment POST, so a deployment a lost POST created can be told apart.
    pub fn recent_deployment_ids(&self, project: &str) -> Result<HashSet<String>, CfError> {
        Ok(self
            .list_deployments(project, None)?
            .into_iter()
            .map(|d| d.id)
            .collect())
    }

    /// A deployment not in `before` whose trigger metadata matches `req`.
    fn find_created(
        &self,
        project: &str,
        req: &DeploymentRequest,
        before: &HashSet<String>,
    ) -> Result<Option<Deployment>, CfError> {
        let list = self.list_deployments(project, None)?;
        // The list is newest first: the oldest new match is the first POST's.
        Ok(list
            .into_iter()
            .rev()
            .find(|d| !before.contains(&d.id) && d.made_by(req)))
    }

    /// `GET …/deployments/{id}`.
    pub fn get_deployment(&self, project: &str, id: &str) -> Result<Deployment, CfError> {
        let v = self.api_call(
            Method::GET,
            &format!(
                "{}/deployments/{}",
                self.project_path(project),
                url_segment(id)
            ),
            &Ok,
        )?;
        deployment_from(v)
    }

    /// The last lines of a deployment's log.
    pub fn deployment_logs(&self, project: &str, id: &str) -> Result<Vec<String>, CfError> {
        let v = self.api_call(
            Method::GET,
            &format!(
                "{}/deployments/{}/history/logs?size=10000000",
                self.project_path(project),
                url_segment(id)
            ),
            &Ok,
        )?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.get("line").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET …/deployments[?env=production|preview]`.
    pub fn list_deployments(
        &self,
        project: &str,
        env: Option<&str>,
    ) -> Result<Vec<Deployment>, CfError> {
        let mut path = format!("{}/deployments", self.project_path(project));
        if let Some(e) = env {
            path.push_str(&format!("?env={}", url_segment(e)));
        }
        let v = self.api_call(Method::GET, &path, &Ok)?;
        Ok(serde_json::from_value(v).unwrap_or_default())
    }

    /// `POST …/deployments/{id}/rollback`: makes an earlier production deployment live again.
    pub fn rollback(&self, project: &str, id: &str) -> Result<Deployment, CfError> {
        let v = self.api_call(
            Method::POST,
            &format!(
                "{}/deployments/{}/rollback",
                self.project_path(project),
                url_segment(id)
            ),
            &Ok,
        )?;
        deployment_from(v)
    }

    /// Polls until the deployment succeeds or fails, or `deadline` passes (then `Unknown`). Poll
    /// errors are remembered, not fatal, until the deadline.
    pub fn wait_for_deployment(
        &self,
        project: &str,
        created: &Deployment,
        deadline: Duration,
    ) -> Result<PollOutcome, CfError> {
        let start = Instant::now();
        let mut last = Some(created.clone());
        let mut polls = 0u32;
        loop {
            if let Some(d) = &last {
                if d.stage_is("deploy", "success") {
                    return Ok(PollOutcome::Success(d.clone()));
                }
                if d.stage_is("", "failure") || d.stage_is("", "canceled") {
                    let line = self
                        .deployment_logs(project, &d.id)
                        .ok()
                        .and_then(|l| l.last().cloned());
                    return Ok(PollOutcome::Failure(d.clone(), line));
                }
            }
            // With delays off, poll a bounded number of times instead of spinning until the deadline.
            if start.elapsed() >= deadline || (self.policy.no_delay && polls >= 20) {
                return Ok(PollOutcome::Unknown(last));
            }
            let wait = Duration::from_secs(1 << polls.min(3)); // 1, 2, 4, 8, 8, …
            if self.policy.no_delay {
                std::thread::sleep(Duration::from_millis(5));
            } else {
                std::thread::sleep(wait.min(deadline.saturating_sub(start.elapsed())));
            }
            polls += 1;
            if let Ok(d) = self.get_deployment(project, &created.id) {
                last = Some(d);
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn chain_mentions(e: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string().contains(needle) {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Marks the read error of a file that changed between hashing and upload.
const CHANGED_MARK: &str = "changed since it was hashed";

/// The JSON body of one upload request, produced while it is sent: each file is read and
/// base64-encoded in small chunks, so a bucket never sits in memory. The length is known in
/// advance (base64 of n bytes is 4·⌈n/3⌉ characters), so the request carries a Content-Length.
pub struct UploadStream {
    files: Arc<[UploadFile]>,
    /// The entry being written.
    next: usize,
    /// The open file of entry `next` and the bytes still to read from it.
    file: Option<(std::fs::File, u64)>,
    /// Pending output (ASCII only) and how much of it was handed out.
    buf: String,
    pos: usize,
    raw: Vec<u8>,
    started: bool,
    finished: bool,
}

/// Raw bytes read per step when streaming (a multiple of 3: no padding inside the value).
const STREAM_CHUNK: usize = 3 * 16 * 1024;

impl UploadStream {
    /// A request body over `files`.
    pub fn body(files: Arc<[UploadFile]>) -> reqwest::blocking::Body {
        let len = Self::length(&files);
        reqwest::blocking::Body::sized(Self::new(files), len)
    }

    pub fn new(files: Arc<[UploadFile]>) -> UploadStream {
        UploadStream {
            files,
            next: 0,
            file: None,
            buf: String::with_capacity(STREAM_CHUNK / 3 * 4 + 256),
            pos: 0,
            raw: vec![0; STREAM_CHUNK],
            started: false,
            finished: false,
        }
    }

    fn prefix(f: &UploadFile) -> String {
        format!(r#"{{"key":"{}","value":""#, f.hash)
    }

    fn suffix(f: &UploadFile) -> String {
        format!(
            r#"","metadata":{{"contentType":"{}"}},"base64":true}}"#,
            f.content_type
        )
    }

    /// The exact byte length of the body.
    pub fn length(files: &[UploadFile]) -> u64 {
        let entries: u64 = files
            .iter()
            .map(|f| {
                (Self::prefix(f).len() + Self::suffix(f).len()) as u64 + f.size.div_ceil(3) * 4
            })
            .sum();
        2 + entries + files.len().saturating_sub(1) as u64
    }

    /// Closes entry `next` and moves on.
    fn end_entry(&mut self) {
        let f = &self.files[self.next];
        self.buf.push_str(&Self::suffix(f));
        self.next += 1;
        if self.next < self.files.len() {
            self.buf.push(',');
        }
    }

    /// Refills `buf` with the next piece of JSON.
    fn fill(&mut self) -> std::io::Result<()> {
        use std::io::Read;
        self.buf.clear();
        self.pos = 0;
        if !self.started {
            self.started = true;
            self.buf.push('[');
        }
        if let Some((file, left)) = &mut self.file {
            let want = (*left).min(STREAM_CHUNK as u64) as usize;
            let mut got = 0;
            while got < want {
                let n = file.read(&mut self.raw[got..want])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got < want {
                return Err(std::io::Error::other(format!(
                    "{} {CHANGED_MARK} (it is shorter now)",
                    self.files[self.next].path.display()
                )));
            }
            *left -= got as u64;
            let done = *left == 0;
            base64::engine::general_purpose::STANDARD
                .encode_string(&self.raw[..got], &mut self.buf);
            if done {
                self.file = None;
                self.end_entry();
            }
            return Ok(());
        }
        if self.next >= self.files.len() {
            self.buf.push(']');
            self.finished = true;
            return Ok(());
        }
        let f = &self.files[self.next];
        let file = std::fs::File::open(&f.path)?;
        let actual = file.metadata()?.len();
        if actual != f.size {
            return Err(std::io::Error::other(format!(
                "{} {CHANGED_MARK} ({} bytes then, {actual} now)",
                f.path.display(),
                f.size
            )));
        }
        let size = f.size;
        self.buf.push_str(&Self::prefix(f));
        if size == 0 {
            self.end_entry();
        } else {
            self.file = Some((file, size));
        }
        Ok(())
    }
}

impl std::io::Read for UploadStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.finished {
                return Ok(0);
            }
            self.fill()?;
        }
        let bytes = self.buf.as_bytes();
        let n = (bytes.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn deployment_from(v: Value) -> Result<Deployment, CfError> {
    serde_json::from_value(v.clone()).map_err(|e| CfError::Malformed {
        method: "parse".into(),
        url: "deployment".into(),
        status: 200,
        body: format!("{e}: {}", excerpt(&v.to_string(), 100)),
        retry_after: None,
    })
}

fn classify<T>(r: Result<T, CfError>) -> Attempt<T, CfError> {
    match r {
        Ok(v) => Attempt::Done(v),
        Err(e) if e.is_transient() => Attempt::Retry {
            after: e.retry_after(),
            error: e,
        },
        Err(e) => Attempt::Fail(e),
    }
}

/// A retry error that never retried is just its error.
fn flatten(r: RetryError<CfError>) -> CfError {
    if r.retries == 0 {
        r.last
    } else {
        CfError::Retried(Box::new(r))
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

    fn jwt(claims: &str) -> String {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
        format!("eyJhbGciOiJIUzI1NiJ9.{p}.sig")
    }

    #[test]
    fn upload_token_claims() {
        let t =
            UploadToken::parse(&jwt(r#"{"exp":1000,"max_file_count_allowed":100000}"#)).unwrap();
        assert_eq!(t.exp, Some(1000));
        assert_eq!(t.max_file_count_allowed, 100_000);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert!(t.expires_within(at(1000), 0));
        assert!(t.expires_within(at(950), 60));
        assert!(!t.expires_within(at(900), 60));

        let t = UploadToken::parse(&jwt("{}")).unwrap();
        assert_eq!(t.exp, None);
        assert_eq!(t.max_file_count_allowed, 20_000);
        assert!(!t.expires_within(at(u32::MAX as u64), 60));

        assert!(UploadToken::parse("abc").is_err());
        assert!(UploadToken::parse("a.!!!.c").is_err());
    }

    fn book_with(exp: Option<u64>, fetched_at: u64, jwt: &str) -> TokenBook {
        let mut b = TokenBook {
            project: Some("p".into()),
            ..TokenBook::default()
        };
        b.install(
            UploadToken {
                jwt: jwt.into(),
                exp,
                max_file_count_allowed: 20_000,
            },
            fetched_at,
        );
        b
    }

    #[test]
    fn tokens_are_replaced_before_expiry_within_half_their_lifetime() {
        // A 600 s token: replaced in its last 60 s.
        let b = book_with(Some(1600), 1000, "a");
        assert!(!b.wants_refresh(1539));
        assert!(b.wants_refresh(1540));
        // A 30 s token: used for 15 s, not replaced before every request.
        let b = book_with(Some(1030), 1000, "a");
        assert!(!b.wants_refresh(1014));
        assert!(b.wants_refresh(1015));
        // No exp, or a token that looked expired on arrival (clock skew): the server decides.
        assert!(!book_with(None, 1000, "a").wants_refresh(u32::MAX as u64));
        assert!(!book_with(Some(990), 1000, "a").wants_refresh(2000));
    }

    #[test]
    fn only_fresh_tokens_refused_in_a_row_count() {
        let mut b = book_with(Some(2000), 1000, "t0");
        // Any number of tokens that worked and then expired (or were replaced early) is fine.
        for i in 1..=50 {
            let old = format!("t{}", i - 1);
            b.accepted(&old);
            assert_eq!(b.refused(&old), Refusal::Refresh, "token {i}");
            b.install(
                UploadToken {
                    jwt: format!("t{i}"),
                    exp: Some(2000),
                    max_file_count_allowed: 1,
                },
                1000,
            );
        }
        assert_eq!(b.refused_in_a_row, 0);
        // A refusal of a token already replaced by another request costs nothing.
        assert_eq!(b.refused("t3"), Refusal::AlreadyReplaced);
        // Fresh tokens refused at once: five new ones are tried, then the run gives up.
        for i in 0..MAX_JWT_REFRESHES {
            let cur = b.token.as_ref().unwrap().jwt.clone();
            assert_eq!(b.refused(&cur), Refusal::Refresh, "refusal {i}");
            b.install(
                UploadToken {
                    jwt: format!("fresh{i}"),
                    exp: None,
                    max_file_count_allowed: 1,
                },
                1000,
            );
        }
        let cur = b.token.as_ref().unwrap().jwt.clone();
        assert_eq!(b.refused(&cur), Refusal::GiveUp(MAX_JWT_REFRESHES + 1));
        // One success resets the count.
        b.accepted(&cur);
        assert_eq!(b.refused_in_a_row, 0);
    }

    #[test]
    fn upload_entries_keep_wranglers_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello world.txt");
        std::fs::write(&p, "hello with space\n").unwrap();
        let body = Cloudflare::upload_body(&[UploadFile {
            hash: "0c96efd2ce058760209b8820885dc97f".into(),
            path: p,
            content_type: "text/plain",
            size: 17,
        }])
        .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"[{"key":"0c96efd2ce058760209b8820885dc97f","value":"aGVsbG8gd2l0aCBzcGFjZQo=","metadata":{"contentType":"text/plain"},"base64":true}]"#
        );
    }

    #[test]
    fn the_streamed_body_equals_the_built_one_and_its_announced_length() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (i, len) in [
            0usize,
            1,
            2,
            3,
            4,
            STREAM_CHUNK - 1,
            STREAM_CHUNK,
            2 * STREAM_CHUNK + 5,
        ]
        .into_iter()
        .enumerate()
        {
            let p = dir.path().join(format!("f{i}.bin"));
            std::fs::write(&p, (0..len).map(|b| (b % 251) as u8).collect::<Vec<_>>()).unwrap();
            files.push(UploadFile {
                hash: format!("{i:032x}"),
                path: p,
                content_type: "application/octet-stream",
                size: len as u64,
            });
        }
        for set in [&files[..0], &files[..1], &files[..]] {
            let built = Cloudflare::upload_body(set).unwrap();
            let mut streamed = Vec::new();
            UploadStream::new(set.to_vec().into())
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(built.clone()).unwrap()
            );
            assert_eq!(UploadStream::length(set), built.len() as u64);
        }
        // A file that changed since it was hashed is an error, not a corrupt upload.
        std::fs::write(&files[1].path, "longer now").unwrap();
        let mut sink = Vec::new();
        let err = UploadStream::new(files.into())
            .read_to_end(&mut sink)
            .unwrap_err();
        assert!(err.to_string().contains(CHANGED_MARK), "{err}");
    }

    #[test]
    fn refused_tokens_are_recognised_in_both_shapes() {
        let api = CfError::Api {
            method: "POST".into(),
            url: "u".into(),
            status: 401,
            code: Some(CODE_UNAUTHORIZED),
            message: "Unauthorized".into(),
            retry_after: None,
        };
        assert!(api.is_jwt_refused());
        let text = CfError::Malformed {
            method: "POST".into(),
            url: "u".into(),
            status: 403,
            body: "Expired JWT".into(),
            retry_after: None,
        };
        assert!(text.is_jwt_refused() && !text.is_transient());
        let html = CfError::Malformed {
            method: "POST".into(),
            url: "u".into(),
            status: 502,
            body: "<html>Bad gateway</html>".into(),
            retry_after: None,
        };
        assert!(html.is_transient() && !html.is_jwt_refused());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(url_segment("my-site"), "my-site");
        assert_eq!(url_segment("a b/c"), "a%20b%2Fc");
    }
}
