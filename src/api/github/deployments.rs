//! GitHub deployments and their statuses, as the release ledger records them.

use super::{GitHub, GitHubError};
use octocrab::models::repos::DeploymentStatusState;
use serde_json::Value;

impl GitHub {
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
