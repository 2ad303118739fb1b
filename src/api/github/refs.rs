//! Annotated tag objects and the refs that point at them: what the release ledger writes and
//! reads.

use super::{GitHub, GitHubError};
use octocrab::params::repos::Reference;
use serde_json::Value;

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

impl GitHub {
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
}
