//! Who runs, on which commit, from where: the identity a run writes into the environment lock
//! ([`LockOwner`]) and into its release records.
//!
//! Reads the environment (GitHub Actions' variables) and, for the commit outside Actions, git in the
//! repository. Stays out of taking locks (`lock.rs`) and of writing records (`store.rs`).

use crate::cmd::Cmd;
use crate::env_vars;
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::state::LockOwner;

/// The git sha being deployed: GITHUB_SHA, else `git rev-parse HEAD` in the repository.
pub fn git_sha(root: &std::path::Path) -> String {
    if let Some(s) = env_vars::get(env_vars::GITHUB_SHA) {
        return s;
    }
    LocalExecutor
        .capture(
            &Cmd::new("git")
                .args(["rev-parse", "HEAD"])
                .cwd(root.to_string_lossy()),
        )
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout_str().trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Who is deploying, from where.
pub fn lock_owner(command: &str, sha: &str) -> LockOwner {
    let run_url = super::record::run_url().unwrap_or_else(|| "local".into());
    LockOwner {
        run_url,
        actor: env_vars::actor(),
        sha: sha.into(),
        started_at: crate::clock::now_rfc3339(),
        command: command.into(),
        hostname: super::lock::this_hostname(),
        pid: std::process::id(),
        token: super::lock::run_token().to_string(),
        heartbeat_at: String::new(),
    }
}
