//! What is approved, and what a run holds once it is: the guard (`guard/`) builds the one
//! ([`ChangePlan`], whose hash an approval is bound to) and hands out the other ([`Admission`]);
//! the run's context (`context.rs`) remembers admissions.

use super::Approval;
use crate::error::{Error, Result};

/// What a run will change, in words people read before approving; its hash is what an approval
/// is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePlan {
    pub command: String,
    pub env: String,
    pub text: String,
    /// Plans of inner commands this one runs, as (what, hash): `("migrate", <hash>)`.
    pub covers: Vec<(String, String)>,
    /// A hash the command computes itself (migrate's `plan-hash` output), used instead of
    /// [`ChangePlan::hash`]'s own.
    own_hash: Option<String>,
}

impl ChangePlan {
    pub fn new(command: &str, env: &str, text: impl Into<String>) -> ChangePlan {
        ChangePlan {
            command: command.to_string(),
            env: env.to_string(),
            text: text.into(),
            covers: Vec::new(),
            own_hash: None,
        }
    }

    /// The plan is bound to `hash`, which the command computed over the same content (migrate's
    /// plan hash, which its `plan-hash` output and approval comments already name).
    pub fn hashed_as(mut self, hash: &str) -> ChangePlan {
        self.own_hash = Some(hash.to_string());
        self
    }

    /// This plan also covers the inner command `what`, whose own plan hashes to `hash`.
    pub fn covering(mut self, what: &str, hash: &str) -> ChangePlan {
        self.covers.push((what.to_string(), hash.to_string()));
        self
    }

    /// The hash an approval is bound to: the command, the environment, the text and the inner
    /// plans' hashes.
    pub fn hash(&self) -> String {
        if let Some(h) = &self.own_hash {
            return h.clone();
        }
        let mut h = blake3::Hasher::new();
        h.update(b"deploy-action change plan 1\n");
        for part in [&self.command, &self.env, &self.text] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for (what, hash) in &self.covers {
            h.update(format!("\ncovers {what} {hash}").as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}

/// A run that may go ahead: the approval it obtained (on a guarded environment) and for which
/// plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub env: String,
    pub command: String,
    /// The hash of the plan that was approved (or, in a dry run, would be); `None` when the
    /// environment needs no approval.
    pub plan_hash: Option<String>,
    pub approval: Option<Approval>,
    pub covers: Vec<(String, String)>,
    /// `--allow-dirty` let a dirty working tree through.
    pub dirty: bool,
}

impl Admission {
    /// Refuses (exit 3) when `now`, the plan built again just before the first change, is not
    /// the plan that was approved. Nothing to check when no approval was needed.
    pub fn confirm(&self, now: &ChangePlan) -> Result<()> {
        match &self.plan_hash {
            Some(approved) if self.approval.is_some() && *approved != now.hash() => {
                Err(plan_changed(&now.command, approved, &now.hash()))
            }
            _ => Ok(()),
        }
    }

    /// The hash this approval holds for the inner command `what`, if it covers it.
    pub fn covered(&self, what: &str) -> Option<&str> {
        self.covers
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, h)| h.as_str())
    }

    /// Lines for the release record: who approved which plan, and a dirty tree.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(a) = &self.approval {
            notes.push(format!(
                "approved by {} ({}) for plan {}",
                a.approver, a.method, a.plan_hash
            ));
        }
        if self.dirty {
            notes.push(
                "deployed from a working tree with uncommitted changes (--allow-dirty)".into(),
            );
        }
        notes
    }
}

/// Exit 3: what would run now is not the plan that was approved.
pub fn plan_changed(command: &str, approved: &str, now: &str) -> Error {
    Error::Approval(format!(
        "the plan of `{command}` changed after it was approved (approved {approved}, now {now}); nothing was \
changed: approve the new plan"
    ))
}
