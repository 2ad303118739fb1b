//! A minimal GitHub REST client (blocking reqwest) for the approval gate: deployment reviews of the
//! run, approval issues and their comments. Self-contained on purpose; the shared HTTP client
//! builder (api/http.rs) will replace the few lines of setup here.
//!
//! Stays out of policy: which comment counts as an approval is `approval.rs`'s business.

use crate::cmd::Secret;
use crate::env_vars;
use serde_json::Value;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

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

pub struct GitHub {
    base: String,
    token: Secret,
    /// `owner/name`.
    pub repository: String,
    client: reqwest::blocking::Client,
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

    pub fn new(base: &str, token: Secret, repository: &str) -> Result<GitHub, GitHubError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("deploy-action/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitHubError::Config(e.to_string()))?;
        Ok(GitHub {
            base: base.trim_end_matches('/').to_string(),
            token,
            repository: repository.to_string(),
            client,
        })
    }

    fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let err_status = |status: u16, message: String| GitHubError::Http {
            method,
            path: path.to_string(),
            message,
            status,
        };
        let err = |message: String| err_status(0, message);
        // Transient failures (connection errors, 5xx) are retried twice.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .request(m.clone(), &url)
                .header("Authorization", format!("Bearer {}", self.token.expose()))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = req.send();
            let retry = match &result {
                Err(e) => e.is_connect() || e.is_timeout(),
                Ok(r) => r.status().is_server_error(),
            };
            if retry && attempt < 3 {
                if env_vars::get(env_vars::DEPLOY_TEST_NO_RETRY_DELAY).is_none() {
                    std::thread::sleep(Duration::from_millis(500 * attempt));
                }
                continue;
            }
            let resp = result.map_err(|e| err(e.to_string()))?;
            let status = resp.status();
            let text = resp.text().map_err(|e| err(e.to_string()))?;
            if !status.is_success() {
                let msg = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or(text);
                return Err(err_status(
                    status.as_u16(),
                    format!("HTTP {}: {msg}", status.as_u16()),
                ));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| err(format!("bad JSON: {e}")));
        }
    }

    /// `GET /repos/{repo}/actions/runs/{run_id}/approvals`: the review history of the run.
    pub fn run_approvals(&self, run_id: &str) -> Result<Vec<Value>, GitHubError> {
        let v = self.send(
            "GET",
            &format!("/repos/{}/actions/runs/{run_id}/approvals", self.repository),
            None,
        )?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `POST /repos/{repo}/issues`: returns (number, html_url).
    pub fn create_issue(&self, title: &str, body: &str) -> Result<(u64, String), GitHubError> {
        let v = self.send(
            "POST",
            &format!("/repos/{}/issues", self.repository),
            Some(&serde_json::json!({ "title": title, "body": body })),
        )?;
        let number = v.get("number").and_then(Value::as_u64).unwrap_or(0);
        let url = v
            .get("html_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok((number, url))
    }

    /// Every comment of an issue (all pages, 100 per page).
    pub fn issue_comments(&self, number: u64) -> Result<Vec<Value>, GitHubError> {
        let mut all = Vec::new();
        for page in 1.. {
            let v = self.send(
                "GET",
                &format!(
                    "/repos/{}/issues/{number}/comments?per_page=100&page={page}",
                    self.repository
                ),
                None,
            )?;
            let items = v.as_array().cloned().unwrap_or_default();
            let n = items.len();
            all.extend(items);
            if n < 100 {
                break;
            }
        }
        Ok(all)
    }

    pub fn comment(&self, number: u64, body: &str) -> Result<(), GitHubError> {
        self.send(
            "POST",
            &format!("/repos/{}/issues/{number}/comments", self.repository),
            Some(&serde_json::json!({ "body": body })),
        )
        .map(|_| ())
    }

    pub fn close_issue(&self, number: u64) -> Result<(), GitHubError> {
        self.send(
            "PATCH",
            &format!("/repos/{}/issues/{number}", self.repository),
            Some(&serde_json::json!({ "state": "closed" })),
        )
        .map(|_| ())
    }

    /// `POST /repos/{repo}/git/tags`: an annotated tag object on `commit`; returns its sha.
    pub fn create_tag_object(
        &self,
        tag: &str,
        message: &str,
        commit: &str,
    ) -> Result<String, GitHubError> {
        let v = self.send(
            "POST",
            &format!("/repos/{}/git/tags", self.repository),
            Some(&serde_json::json!({
                "tag": tag, "message": message, "object": commit, "type": "commit"
            })),
        )?;
        v.get("sha")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| GitHubError::Http {
                method: "POST",
                path: format!("/repos/{}/git/tags", self.repository),
                message: "the response has no sha".into(),
                status: 0,
            })
    }

    /// Points `refs/tags/<tag>` at `sha`: `PATCH …/git/refs/tags/<tag>` with force, or
    /// `POST …/git/refs` when the ref does not exist yet (GitHub answers 422 or 404).
    pub fn set_tag_ref(&self, tag: &str, sha: &str) -> Result<(), GitHubError> {
        let update = self.send(
            "PATCH",
            &format!("/repos/{}/git/refs/tags/{tag}", self.repository),
            Some(&serde_json::json!({ "sha": sha, "force": true })),
        );
        match update {
            Ok(_) => Ok(()),
            Err(GitHubError::Http { status, .. }) if status == 422 || status == 404 => self
                .send(
                    "POST",
                    &format!("/repos/{}/git/refs", self.repository),
                    Some(&serde_json::json!({ "ref": format!("refs/tags/{tag}"), "sha": sha })),
                )
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// `POST /repos/{repo}/deployments` for `sha` (no auto-merge, no required status checks);
    /// returns the deployment id.
    pub fn create_deployment(
        &self,
        sha: &str,
        environment: &str,
        description: &str,
        payload: &Value,
    ) -> Result<u64, GitHubError> {
        let path = format!("/repos/{}/deployments", self.repository);
        let v = self.send(
            "POST",
            &path,
            Some(&serde_json::json!({
                "ref": sha,
                "environment": environment,
                "description": description,
                "auto_merge": false,
                "required_contexts": [],
                "production_environment": environment == "production",
                "payload": payload,
            })),
        )?;
        v.get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| GitHubError::Http {
                method: "POST",
                path,
                message: "the response has no deployment id".into(),
                status: 0,
            })
    }

    /// `POST /repos/{repo}/deployments/{id}/statuses`.
    pub fn deployment_status(
        &self,
        id: u64,
        state: &str,
        log_url: Option<&str>,
        environment_url: Option<&str>,
        description: &str,
    ) -> Result<(), GitHubError> {
        let mut body = serde_json::json!({ "state": state, "description": description });
        if let Some(u) = log_url {
            body["log_url"] = Value::from(u);
        }
        if let Some(u) = environment_url {
            body["environment_url"] = Value::from(u);
        }
        self.send(
            "POST",
            &format!("/repos/{}/deployments/{id}/statuses", self.repository),
            Some(&body),
        )
        .map(|_| ())
    }
}
