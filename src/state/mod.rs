//! State kept on the target, under `<dir>/.deploy-action/` (DESIGN.md "State kept on the target").
//! Pure serde types; reading and writing them is the executors' business.
//!
//! - `lock/` — taken by an atomic `mkdir`, with an `owner.json` ([`LockOwner`]).
//! - `releases/<n>.json` — one [`ReleaseRecord`] per release.
//! - `audit.log` — JSON Lines of [`AuditEntry`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The directory under the environment's `dir` that holds the state.
pub const STATE_DIR: &str = ".deploy-action";

/// Paths of the state files for an environment directory on a host.
#[derive(Clone, Debug)]
pub struct StatePaths {
    pub root: String,
}

impl StatePaths {
    pub fn new(env_dir: &str) -> Self {
        StatePaths {
            root: format!("{}/{STATE_DIR}", env_dir.trim_end_matches('/')),
        }
    }
    pub fn lock_dir(&self) -> String {
        format!("{}/lock", self.root)
    }
    pub fn lock_owner(&self) -> String {
        format!("{}/lock/owner.json", self.root)
    }
    pub fn releases_dir(&self) -> String {
        format!("{}/releases", self.root)
    }
    pub fn release(&self, n: u64) -> String {
        format!("{}/releases/{n}.json", self.root)
    }
    pub fn audit_log(&self) -> String {
        format!("{}/audit.log", self.root)
    }
}

/// Who holds the environment lock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// The GitHub Actions run URL, or `local` for a run from a terminal.
    pub run_url: String,
    pub actor: String,
    pub sha: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// The command that took it (`up`, `rollback`, `lock acquire`).
    #[serde(default)]
    pub command: String,
    /// The machine and process that took it, to tell a stale lock from a live one.
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub pid: u32,
    /// A random token unique to the run: a lock is removed only by the run whose token it
    /// carries (or by `lock release`, which compares it with the one it showed). Empty in owner
    /// files written before tokens existed.
    #[serde(default)]
    pub token: String,
    /// RFC 3339 UTC: the holder refreshes it while it runs; a lock whose heartbeat stopped is
    /// reported as stale. Empty in owner files written before heartbeats existed.
    #[serde(default)]
    pub heartbeat_at: String,
}

/// The status of a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Being deployed.
    InProgress,
    /// Deployed and healthy; the current release is the newest live one.
    Live,
    /// The deploy failed.
    Failed,
    /// The deploy failed and its services were put back on the previous release.
    RolledBack,
    /// Abandoned by a rollback; never chosen as a rollback target again.
    Bad,
    /// Replaced by a newer release.
    Superseded,
    /// Left `in_progress` by a run that died (killed, lost runner, full disk): the next run that
    /// holds the lock marks it so, with what each service was found running.
    Interrupted,
}

/// One service of a release: what runs, and what ran before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The image reference the service runs (`shop/api:3f2a…` or `registry/x@sha256:…`).
    pub image: String,
    /// The local image id (`sha256:…`).
    #[serde(default)]
    pub image_id: String,
    /// The registry digest, when the image came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The `<repo>:<project>.<service>-release-<n>` tag that keeps this image from being pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_tag: Option<String>,
    /// Whether this release changed the service.
    #[serde(default)]
    pub deployed: bool,
    /// The image this release tried and gave up on (failed or rolled back); `image` is what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried: Option<String>,
    /// The `secrets:` the service was given: name → fingerprint (a hash, never the value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// A Pages deployment made by a release: enough to show it, roll production back to it, and create
/// it again (promote) without the site directory — the manifest names every file by hash, and the
/// special files that went with it are kept here, up to [`PagesState::MAX_SPECIAL_FILES_BYTES`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagesState {
    pub project: String,
    pub deployment_id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_url: Option<String>,
    /// `production` or `preview`.
    #[serde(default)]
    pub environment: String,
    /// The uploaded manifest (path → hash), so promote can redeploy the same bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub manifest: BTreeMap<String, String>,
    /// The branch the deployment was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_hash: Option<String>,
    /// The special files sent with the deployment, by part name (`_headers`, `_redirects`,
    /// `_worker.bundle`, `_routes.json`), base64 (standard, padded) of the exact bytes sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub special_files: BTreeMap<String, String>,
    /// Special files that were sent but are not kept here because together they exceed
    /// [`PagesState::MAX_SPECIAL_FILES_BYTES`]: a redeploy from this record refuses, since it
    /// could not send them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special_files_omitted: Vec<String>,
}

impl PagesState {
    /// The special files kept in a record, together, at most (raw bytes, before base64).
    pub const MAX_SPECIAL_FILES_BYTES: usize = 256 * 1024;
}

/// `releases/<n>.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub number: u64,
    pub env: String,
    pub sha: String,
    pub status: ReleaseStatusField,
    pub created_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub actor: String,
    pub run_url: String,
    /// compose service name → state after this release.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// compose service name → state before this release (for rollback).
    #[serde(default)]
    pub previous: BTreeMap<String, ServiceState>,
    /// site name → Pages deployment.
    #[serde(default)]
    pub pages: BTreeMap<String, PagesState>,
    /// The last applied migration version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<String>,
    /// Free-form notes: why it failed, what was rolled back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The status with a default, so a `Default` record is well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseStatusField(pub ReleaseStatus);

impl Default for ReleaseStatusField {
    fn default() -> Self {
        ReleaseStatusField(ReleaseStatus::InProgress)
    }
}

/// One line of `audit.log`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time: String,
    pub actor: String,
    pub run_url: String,
    pub action: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub release: Option<u64>,
    #[serde(default)]
    pub services: Vec<String>,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_record_round_trips_and_paths_are_stable() {
        let mut r = ReleaseRecord {
            number: 7,
            env: "staging".into(),
            ..Default::default()
        };
        r.status = ReleaseStatusField(ReleaseStatus::Live);
        r.services.insert(
            "api".into(),
            ServiceState {
                image: "shop/api:abc".into(),
                ..Default::default()
            },
        );
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""status":"live""#), "{text}");
        assert_eq!(serde_json::from_str::<ReleaseRecord>(&text).unwrap(), r);
        let p = StatePaths::new("/srv/shop/");
        assert_eq!(p.release(7), "/srv/shop/.deploy-action/releases/7.json");
        assert_eq!(p.lock_dir(), "/srv/shop/.deploy-action/lock");
    }
}
