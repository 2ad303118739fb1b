//! The approval gate for environments with `approval: required`. There is no flag that skips it:
//! `--yes` is not even an input here.
//!
//! In GitHub Actions: approved when this run's deployment to the environment was approved by a
//! required reviewer (`GET …/actions/runs/{run_id}/approvals`), else through an approval issue that
//! shows the plan and its hash and is polled for an `approve` / `deny` comment from a login in the
//! environment's `approvers:`. An approval carrying another plan hash does not count. Locally: on a
//! terminal the user types the environment's name; with no terminal the gate refuses (exit 3).
//!
//! Deciding from comments is pure ([`decide_comments`]); the polling and prompting around it are not.
//!
//! Also the data on both sides of the gate: [`ChangePlan`] (what a run will change; its hash is what
//! an approval is bound to) and [`Admission`] (what a run holds once admitted). `guard/` decides when
//! to ask; the run's context (`context.rs`) remembers the admissions.
//!
//! Here: what is approved and by whom, and the terminal gate. `github.rs` is the gate in GitHub
//! Actions (environment reviews, the approval issue and deciding from its comments);
//! `admission.rs` holds [`ChangePlan`] and [`Admission`].

use crate::env_vars;
use crate::error::{Error, Result};
use crate::report::Report;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

mod admission;
mod github;

pub use admission::{Admission, ChangePlan, plan_changed};
pub use github::{CommentDecision, approved_reviews, decide_comments, issue_body};

/// The first `n` characters of `s` (char-safe: hashes in comments are outside data).
fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// What is being approved.
#[derive(Clone, Debug)]
pub struct PlanToApprove<'a> {
    pub env: &'a str,
    /// The command (`up`, `pages`, `migrate`, `migrate down`, `promote`, `rollback`).
    pub action: &'a str,
    pub hash: &'a str,
    /// What the run will change, shown to the approver (for migrations: the pending SQL).
    pub text: &'a str,
}

/// Who approved, how, and for which plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    /// Everyone whose approval counted, joined with `, ` (one login in the common case).
    pub approver: String,
    /// `github-environment-review`, `github-issue`, `terminal` (joined with `+` when approvals
    /// came both from environment reviews and from the issue).
    pub method: String,
    pub plan_hash: String,
    /// The review comment or issue URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Who may approve, and how many must: the environment's `min_approvals`, `allow_self_approval`
/// and the run's own actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub min_approvals: u32,
    pub allow_self_approval: bool,
    /// The run's actor (GITHUB_ACTOR in Actions, else the local account).
    pub actor: String,
}

impl Policy {
    /// Whether `login` is the run's own actor (an approval that needs `allow_self_approval`).
    pub fn is_self(&self, login: &str) -> bool {
        !self.actor.is_empty() && login.eq_ignore_ascii_case(&self.actor)
    }

    fn needed(&self) -> usize {
        self.min_approvals.max(1) as usize
    }
}

/// The gate's settings for one environment.
#[derive(Clone, Debug)]
pub struct Gate {
    pub approvers: Vec<String>,
    pub timeout: Duration,
    pub policy: Policy,
}

/// Obtains an approval for `plan`, or fails with [`Error::Approval`] (exit 3): in GitHub Actions
/// from environment reviews and the approval issue, elsewhere at a terminal, and with neither,
/// not at all.
pub fn obtain(report: &Report, gate: &Gate, plan: &PlanToApprove) -> Result<Approval> {
    if env_vars::in_github_actions() {
        return github::obtain(report, gate, plan);
    }
    obtain_terminal(report, gate, plan)
}

fn obtain_terminal(report: &Report, gate: &Gate, plan: &PlanToApprove) -> Result<Approval> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Approval(format!(
            "environment `{}` requires an approval for `{}` and there is no terminal to ask and no GitHub \
Actions run to ask in (--yes never skips it); nothing was changed. Run it on a terminal, or in GitHub Actions \
with a required reviewer or `approvers:`",
            plan.env, plan.action
        )));
    }
    let p = &gate.policy;
    if p.min_approvals > 1 {
        return Err(Error::Approval(format!(
            "environment `{}` needs {} approvals (min_approvals) and a terminal gives one; nothing was changed. \
Run it in GitHub Actions, where environment reviewers and `approvers:` approve",
            plan.env, p.min_approvals
        )));
    }
    if !p.allow_self_approval {
        return Err(Error::Approval(format!(
            "environment `{}` requires an approval by someone other than the person running `{}` ({}), \
and a terminal can only ask that person; nothing was changed. Run it in GitHub Actions with a required reviewer or \
`approvers:`, or set `allow_self_approval: true` on `{}` to let the person at the terminal approve",
            plan.env, plan.action, p.actor, plan.env
        )));
    }
    report.info(&format!(
        "Environment `{}` requires an approval for `{}`.\n\n{}\nplan hash: {}\n",
        plan.env, plan.action, plan.text, plan.hash
    ));
    report.info(&format!(
        "Type the environment's name ({}) to approve, anything else to cancel:",
        plan.env
    ));
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Approval(format!("could not read the answer: {e}")))?;
    if line.trim() != plan.env {
        return Err(Error::Approval(format!(
            "not approved: the answer was not `{}`; nothing was changed",
            plan.env
        )));
    }
    Ok(Approval {
        approver: p.actor.clone(),
        method: "terminal".into(),
        plan_hash: plan.hash.to_string(),
        reference: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_prefixes_are_char_safe() {
        assert_eq!(prefix("ééééééééééééééé", 12).chars().count(), 12);
        assert_eq!(prefix("abc", 12), "abc");
    }
}
