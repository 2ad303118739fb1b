//! The approval gate's calls: the review history of a workflow run, approval issues and their
//! comments. Which comment counts as an approval is `approval/`'s business.

use super::{GitHub, GitHubError, to_json_values};
use octocrab::Page;
use octocrab::models::IssueState;
use octocrab::models::issues::Comment;
use serde_json::Value;

/// Comments are read 100 a page; an issue with more pages than this is not an approval issue.
const MAX_COMMENT_PAGES: usize = 50;

impl GitHub {
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
}
