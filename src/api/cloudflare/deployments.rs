//! Deployments: the multipart POST that never creates a duplicate, the wait for its outcome,
//! the list, logs and rollback.

use super::error::flatten;
use super::{CfError, Cloudflare, REQUEST_TIMEOUT, url_segment};
use crate::api::http::{excerpt, timeout_for_body};
use crate::api::retry::{Attempt, retry};
use reqwest::Method;
use reqwest::blocking::multipart::{Form, Part};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

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

/// How the final status poll ended.
#[derive(Debug)]
pub enum PollOutcome {
    Success(Deployment),
    /// The deployment failed; the last log line if any.
    Failure(Deployment, Option<String>),
    /// Still not final at the deadline.
    Unknown(Option<Deployment>),
}

impl Cloudflare {
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
        let form = DeploymentForm::new(req);
        let url = self.url(&format!("{}/deployments", self.project_path(project)));
        // The last POST failed in a way that may have created the deployment all the same.
        let mut unsure = false;
        retry(&self.policy, "the request", |_| {
            if unsure {
                if let Some(settled) = self.adopt_lost_post(project, req, &before) {
                    return settled;
                }
                unsure = false;
            }
            self.post_deployment(&url, &form, &mut unsure)
        })
        .map_err(flatten)
    }

    /// After a POST whose outcome is unknown: the deployment it created, adopted; `None` when it
    /// created none and the POST may be sent again. A failure to tell is retried when transient,
    /// else final, and so is having no list from before the POST to tell by.
    fn adopt_lost_post(
        &self,
        project: &str,
        req: &DeploymentRequest,
        before: &Result<HashSet<String>, CfError>,
    ) -> Option<Attempt<Created, CfError>> {
        let before = match before {
            Ok(before) => before,
            Err(e) => {
                return Some(Attempt::Fail(CfError::OutcomeUnknown(format!(
                    "the deployment POST may have created a deployment, and the project's deployments could not be listed beforehand to tell ({e}); look at the deployments of `{project}` before running again"
                ))));
            }
        };
        match self.find_created(project, req, before) {
            Ok(Some(d)) => Some(Attempt::Done(Created {
                deployment: d,
                adopted: true,
            })),
            Ok(None) => None,
            // Not knowing is no reason to POST blind: look again after a back-off.
            Err(e) if e.is_transient() => Some(Attempt::Retry {
                after: e.retry_after(),
                error: e,
            }),
            Err(e) => Some(Attempt::Fail(e)),
        }
    }

    /// One deployment POST to `url`. A transient failure is retried, and marks the outcome
    /// `unsure` unless the server certainly did not act on the request.
    fn post_deployment(
        &self,
        url: &str,
        form: &DeploymentForm,
        unsure: &mut bool,
    ) -> Attempt<Created, CfError> {
        let method = Method::POST;
        let body = match form.build() {
            Ok(f) => f,
            Err(e) => return Attempt::Fail(e),
        };
        let rb = self
            .http
            .request(method.clone(), url)
            .timeout(timeout_for_body(REQUEST_TIMEOUT, form.len))
            .bearer_auth(&self.cfg.api_token)
            .multipart(body);
        match self.execute(&method, url, rb) {
            Ok(v) => match deployment_from(v) {
                Ok(d) => Attempt::Done(Created {
                    deployment: d,
                    adopted: false,
                }),
                Err(e) => Attempt::Fail(e),
            },
            Err(e) if e.is_transient() => {
                *unsure = !e.certainly_not_processed();
                Attempt::Retry {
                    after: e.retry_after(),
                    error: e,
                }
            }
            Err(e) => Attempt::Fail(e),
        }
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

fn deployment_from(v: Value) -> Result<Deployment, CfError> {
    serde_json::from_value(v.clone()).map_err(|e| CfError::Malformed {
        method: "parse".into(),
        url: "deployment".into(),
        status: 200,
        body: format!("{e}: {}", excerpt(&v.to_string(), 100)),
        retry_after: None,
    })
}

/// The parts of a deployment POST in wrangler's order, built afresh for every attempt (sending a
/// form consumes it).
struct DeploymentForm<'a> {
    req: &'a DeploymentRequest,
    manifest: String,
    /// The commit message, truncated as wrangler does; none when empty.
    commit_message: Option<String>,
    /// An estimate of the body's size, for its timeout.
    len: u64,
}

impl<'a> DeploymentForm<'a> {
    fn new(req: &'a DeploymentRequest) -> DeploymentForm<'a> {
        let manifest = serde_json::to_string(&req.manifest).unwrap_or_default();
        let commit_message = req
            .commit_message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| crate::pages::truncate_commit_message(m).to_string());
        let len =
            manifest.len() + req.files.iter().map(|(_, b)| b.len() + 256).sum::<usize>() + 1024;
        DeploymentForm {
            req,
            manifest,
            commit_message,
            len: len as u64,
        }
    }

    fn build(&self) -> Result<Form, CfError> {
        let req = self.req;
        let mut form = Form::new().text("manifest", self.manifest.clone());
        if let Some(b) = &req.branch {
            form = form.text("branch", b.clone());
        }
        if let Some(m) = &self.commit_message {
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
    }
}
