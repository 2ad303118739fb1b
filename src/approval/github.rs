//! The approval gate in GitHub Actions: approved when this run's deployment to the environment
//! was approved by required reviewers (`GET …/actions/runs/{run_id}/approvals`), else through an
//! approval issue that shows the plan and its hash and is polled for `approve` / `deny` comments
//! from the environment's `approvers:`.
//!
//! Deciding from comments and reviews is pure ([`decide_comments`], [`approved_reviews`]); the
//! polling around it is not.

use super::{Approval, Gate, PlanToApprove, Policy, prefix};
use crate::api::github::GitHub;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::report::Report;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The outcome of reading an issue's comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentDecision {
    /// Enough distinct approvers (`logins`, in the order they approved).
    Approved {
        logins: Vec<String>,
        url: Option<String>,
    },
    Denied {
        login: String,
    },
    /// Not enough yet: who approved so far, and why other comments did not count.
    Undecided {
        logins: Vec<String>,
        ignored: Vec<String>,
    },
}

/// Reads comments (oldest first) and decides. A comment counts when its author is an approver
/// (and not the run's actor, unless the policy allows it), it was not edited, and its text is
/// `approve`/`approved`/`deny`/`denied`, optionally followed by a plan hash (or a prefix of at
/// least 12 characters) that must match `plan_hash`. `already` are approvals counted elsewhere
/// (environment reviews): a login counts once. Approved when `policy.min_approvals` distinct
/// people approved; the first counting denial denies.
pub fn decide_comments(
    comments: &[Value],
    approvers: &[String],
    plan_hash: &str,
    policy: &Policy,
    already: &[String],
) -> CommentDecision {
    let mut ignored = Vec::new();
    let mut logins: Vec<String> = Vec::new();
    let mut first_url = None;
    let counted = |l: &str, logins: &[String]| {
        already
            .iter()
            .chain(logins.iter())
            .any(|a| a.eq_ignore_ascii_case(l))
    };
    for c in comments {
        let login = c
            .pointer("/user/login")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body = c.get("body").and_then(Value::as_str).unwrap_or_default();
        let mut words = body.split_whitespace();
        let verb = words
            .next()
            .unwrap_or_default()
            .trim_start_matches('/')
            .trim_end_matches(['.', '!'])
            .to_ascii_lowercase();
        let approve = matches!(verb.as_str(), "approve" | "approved");
        let deny = matches!(verb.as_str(), "deny" | "denied");
        if !approve && !deny {
            continue;
        }
        if !approvers.iter().any(|a| a.eq_ignore_ascii_case(login)) {
            ignored.push(format!("`{verb}` from {login}, who is not in approvers:"));
            continue;
        }
        let created = c.get("created_at").and_then(Value::as_str);
        let updated = c.get("updated_at").and_then(Value::as_str);
        if created.is_some() && updated.is_some() && created != updated {
            ignored.push(format!("`{verb}` from {login} was edited"));
            continue;
        }
        if let Some(hash) = words.next() {
            let hash = hash.to_ascii_lowercase();
            if hash.len() < 12 || !plan_hash.starts_with(&hash) {
                ignored.push(format!(
                    "`{verb}` from {login} is for plan {}, not this plan {}",
                    prefix(&hash, 12),
                    prefix(plan_hash, 12)
                ));
                continue;
            }
        }
        if deny {
            return CommentDecision::Denied {
                login: login.to_string(),
            };
        }
        if policy.is_self(login) && !policy.allow_self_approval {
            ignored.push(format!(
                "`{verb}` from {login}, who started this run (allow_self_approval is false)"
            ));
            continue;
        }
        if counted(login, &logins) {
            continue;
        }
        logins.push(login.to_string());
        if first_url.is_none() {
            first_url = c.get("html_url").and_then(Value::as_str).map(String::from);
        }
        if already.len() + logins.len() >= policy.needed() {
            return CommentDecision::Approved {
                logins,
                url: first_url,
            };
        }
    }
    CommentDecision::Undecided { logins, ignored }
}

/// The approved reviews of this run's deployment to `env`: (login, comment), one per login, in
/// order; reviews by the run's actor are left out (and named in `refused`) unless the policy
/// allows self-approval.
pub fn approved_reviews(
    approvals: &[Value],
    env: &str,
    policy: &Policy,
) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut refused = Vec::new();
    for a in approvals {
        let state = a.get("state").and_then(Value::as_str);
        let names_env = a
            .get("environments")
            .and_then(Value::as_array)
            .is_some_and(|es| {
                es.iter()
                    .any(|e| e.get("name").and_then(Value::as_str) == Some(env))
            });
        if state != Some("approved") || !names_env {
            continue;
        }
        let login = a
            .pointer("/user/login")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if policy.is_self(&login) && !policy.allow_self_approval {
            refused.push(login);
            continue;
        }
        if out.iter().any(|(l, _)| l.eq_ignore_ascii_case(&login)) {
            continue;
        }
        let comment = a
            .get("comment")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(String::from);
        out.push((login, comment));
    }
    (out, refused)
}

/// The approval issue's body: the plan, its hash, how many approvals are needed and how to
/// answer. The plan sits in a code fence longer than any run of backticks in it.
pub fn issue_body(plan: &PlanToApprove, gate: &Gate, run_url: &str) -> String {
    const LIMIT: usize = 60_000;
    let mut text = plan.text.to_string();
    if text.len() > LIMIT {
        let mut cut = LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n(cut: the full plan is in the run's log)");
    }
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let lang = if plan.action.starts_with("migrate") {
        "sql"
    } else {
        "text"
    };
    let p = &gate.policy;
    let count = if p.min_approvals > 1 {
        format!("{} different approvers must approve", p.min_approvals)
    } else {
        "one approval is needed".to_string()
    };
    let self_rule = if p.allow_self_approval {
        String::new()
    } else {
        format!(
            " An approval from {} (who started this run) does not count.",
            p.actor
        )
    };
    format!(
        "`{action}` on **{env}** waits for an approval.\n\nRun: {run_url}\n\nPlan hash: `{hash}`\n\n\
{fence}{lang}\n{text}\n{fence}\n\n\
Approvers ({who}): comment `approve {short}` to apply exactly this plan, or `deny`; {count}.{self_rule} \
An approval naming another plan hash does not count.\n",
        action = plan.action,
        env = plan.env,
        hash = plan.hash,
        short = prefix(plan.hash, 12),
        who = gate
            .approvers
            .iter()
            .map(|a| format!("@{a}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn gh_err(e: crate::api::github::GitHubError) -> Error {
    Error::Approval(format!("cannot check the approval: {e}"))
}

/// Obtains an approval in GitHub Actions: from environment reviews, else the approval issue.
pub(super) fn obtain(report: &Report, gate: &Gate, plan: &PlanToApprove) -> Result<Approval> {
    let gh = GitHub::from_env().map_err(gh_err)?;
    let run_id = env_vars::get(env_vars::GITHUB_RUN_ID).unwrap_or_default();
    let server =
        env_vars::get(env_vars::GITHUB_SERVER_URL).unwrap_or_else(|| "https://github.com".into());
    let run_url = format!("{server}/{}/actions/runs/{run_id}", gh.repository);
    let p = &gate.policy;
    let mut reviewed: Vec<(String, Option<String>)> = Vec::new();
    if !run_id.is_empty() {
        let approvals = gh.run_approvals(&run_id).map_err(gh_err)?;
        let (ok, refused) = approved_reviews(&approvals, plan.env, p);
        for login in refused {
            report.warn(&format!(
                "approval ignored: {login} approved the deployment to `{}` but started this run (allow_self_approval is false)",
                plan.env
            ));
        }
        reviewed = ok;
    }
    let reviewers: Vec<String> = reviewed.iter().map(|(l, _)| l.clone()).collect();
    if reviewers.len() >= p.needed() {
        report.info(&format!(
            "approved: {} approved this run's deployment to `{}` (required reviewer)",
            reviewers.join(", "),
            plan.env
        ));
        return Ok(Approval {
            approver: reviewers.join(", "),
            method: "github-environment-review".into(),
            plan_hash: plan.hash.to_string(),
            reference: reviewed.into_iter().find_map(|(_, c)| c).or(Some(run_url)),
        });
    }
    if gate.approvers.is_empty() {
        let have = if reviewers.is_empty() {
            "this run's deployment was not approved by a required reviewer".to_string()
        } else {
            format!(
                "{} of {} approvals came from required reviewers ({})",
                reviewers.len(),
                p.needed(),
                reviewers.join(", ")
            )
        };
        return Err(Error::Approval(format!(
            "environment `{}` requires {} approval(s): {have}, and the environment lists no `approvers:` for an \
approval issue; nothing was changed",
            plan.env,
            p.needed()
        )));
    }
    issue_approval(report, gate, plan, &gh, &run_url, &reviewers)
}

/// Opens the approval issue and polls it until enough approvers approved, one denied, or the
/// timeout passed. The issue is closed with a comment saying which.
fn issue_approval(
    report: &Report,
    gate: &Gate,
    plan: &PlanToApprove,
    gh: &GitHub,
    run_url: &str,
    reviewers: &[String],
) -> Result<Approval> {
    let p = &gate.policy;
    let title = format!(
        "Approve {} on {} (plan {})",
        plan.action,
        plan.env,
        prefix(plan.hash, 12)
    );
    let (number, url) = gh
        .create_issue(&title, &issue_body(plan, gate, run_url))
        .map_err(gh_err)?;
    report.info(&format!(
        "waiting up to {:?} for {} approval(s) on {url} (plan hash {})",
        gate.timeout,
        p.needed(),
        plan.hash
    ));
    let poll = if env_vars::get(env_vars::DEPLOY_TEST_NO_RETRY_DELAY).is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(10)
    };
    let started = Instant::now();
    let mut reported_ignored = 0;
    let close = |text: &str| {
        let _ = gh.comment(number, text);
        let _ = gh.close_issue(number);
    };
    loop {
        let comments = gh.issue_comments(number).map_err(gh_err)?;
        match decide_comments(&comments, &gate.approvers, plan.hash, p, reviewers) {
            CommentDecision::Approved { logins, url: c_url } => {
                let all: Vec<String> = reviewers.iter().chain(logins.iter()).cloned().collect();
                close(&format!(
                    "Approved by {}; applying plan `{}`.",
                    all.iter()
                        .map(|l| format!("@{l}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    plan.hash
                ));
                let method = if reviewers.is_empty() {
                    "github-issue"
                } else {
                    "github-environment-review+github-issue"
                };
                return Ok(Approval {
                    approver: all.join(", "),
                    method: method.into(),
                    plan_hash: plan.hash.to_string(),
                    reference: c_url.or(Some(url)),
                });
            }
            CommentDecision::Denied { login } => {
                close(&format!("Denied by @{login}; nothing was applied."));
                return Err(Error::Approval(format!(
                    "denied by {login} on {url}; nothing was changed"
                )));
            }
            CommentDecision::Undecided { ignored, .. } => {
                for why in ignored.iter().skip(reported_ignored) {
                    report.warn(&format!("approval comment ignored: {why}"));
                }
                reported_ignored = reported_ignored.max(ignored.len());
            }
        }
        if started.elapsed() >= gate.timeout {
            close("Timed out waiting for an approval; nothing was applied.");
            return Err(Error::Approval(format!(
                "no approval within {:?} on {url}; nothing was changed",
                gate.timeout
            )));
        }
        std::thread::sleep(
            poll.min(gate.timeout.saturating_sub(started.elapsed()))
                .max(Duration::from_millis(10)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn c(login: &str, body: &str) -> Value {
        json!({"user": {"login": login}, "body": body, "created_at": "t", "updated_at": "t"})
    }

    fn policy(min: u32, allow_self: bool) -> Policy {
        Policy {
            min_approvals: min,
            allow_self_approval: allow_self,
            actor: "carol".into(),
        }
    }

    fn approved(logins: &[&str]) -> CommentDecision {
        CommentDecision::Approved {
            logins: logins.iter().map(|s| s.to_string()).collect(),
            url: None,
        }
    }

    #[test]
    fn only_listed_approvers_with_the_right_hash_count() {
        let approvers = vec!["alice".to_string()];
        let one = policy(1, false);
        let d = decide_comments(&[c("mallory", "approve")], &approvers, HASH, &one, &[]);
        assert!(matches!(d, CommentDecision::Undecided { ref ignored, .. } if ignored.len() == 1));
        let d = decide_comments(
            &[c("alice", "approve ffffffffffff")],
            &approvers,
            HASH,
            &one,
            &[],
        );
        assert!(
            matches!(d, CommentDecision::Undecided { ref ignored, .. } if ignored[0].contains("not this plan"))
        );
        let d = decide_comments(
            &[c("Alice", "Approve 0123456789ab")],
            &approvers,
            HASH,
            &one,
            &[],
        );
        assert_eq!(d, approved(&["Alice"]));
        let d = decide_comments(
            &[c("alice", "looks fine"), c("alice", "deny")],
            &approvers,
            HASH,
            &one,
            &[],
        );
        assert_eq!(
            d,
            CommentDecision::Denied {
                login: "alice".into()
            }
        );
        let edited = json!({"user": {"login": "alice"}, "body": "approve", "created_at": "a", "updated_at": "b"});
        assert!(matches!(
            decide_comments(&[edited], &approvers, HASH, &one, &[]),
            CommentDecision::Undecided { .. }
        ));
    }

    /// Issue 10: `min_approvals: N` needs N different people; one person approving twice is one.
    #[test]
    fn r10_min_approvals_counts_distinct_approvers() {
        let approvers: Vec<String> = ["alice", "bob", "dave"].map(String::from).to_vec();
        let two = policy(2, false);
        let d = decide_comments(
            &[c("alice", "approve"), c("ALICE", "approved")],
            &approvers,
            HASH,
            &two,
            &[],
        );
        assert!(matches!(d, CommentDecision::Undecided { ref logins, .. } if logins == &["alice"]));
        let d = decide_comments(
            &[c("alice", "approve"), c("bob", "approve 0123456789abcdef")],
            &approvers,
            HASH,
            &two,
            &[],
        );
        assert_eq!(d, approved(&["alice", "bob"]));
        // An environment review already counted: one more from the issue is enough, but not the
        // same person again.
        let d = decide_comments(
            &[c("bob", "approve")],
            &approvers,
            HASH,
            &two,
            &["bob".into()],
        );
        assert!(matches!(d, CommentDecision::Undecided { .. }));
        let d = decide_comments(
            &[c("dave", "approve")],
            &approvers,
            HASH,
            &two,
            &["bob".into()],
        );
        assert_eq!(d, approved(&["dave"]));
    }

    /// Issue 10: the run's own actor does not approve it unless `allow_self_approval: true`.
    #[test]
    fn r10_self_approval_is_refused_unless_allowed() {
        let approvers: Vec<String> = ["carol", "bob"].map(String::from).to_vec();
        let d = decide_comments(
            &[c("Carol", "approve")],
            &approvers,
            HASH,
            &policy(1, false),
            &[],
        );
        assert!(
            matches!(d, CommentDecision::Undecided { ref ignored, .. } if ignored[0].contains("started this run"))
        );
        let d = decide_comments(
            &[c("carol", "approve")],
            &approvers,
            HASH,
            &policy(1, true),
            &[],
        );
        assert_eq!(d, approved(&["carol"]));
        // A denial from the actor still denies: refusing one's own run is always allowed.
        let d = decide_comments(
            &[c("carol", "deny")],
            &approvers,
            HASH,
            &policy(1, false),
            &[],
        );
        assert!(matches!(d, CommentDecision::Denied { .. }));
        let reviews = vec![
            json!({"state": "approved", "environments": [{"name": "production"}], "user": {"login": "carol"}}),
            json!({"state": "approved", "environments": [{"name": "production"}], "user": {"login": "bob"}}),
        ];
        let (ok, refused) = approved_reviews(&reviews, "production", &policy(1, false));
        assert_eq!(ok, vec![("bob".to_string(), None)]);
        assert_eq!(refused, vec!["carol".to_string()]);
        let (ok, _) = approved_reviews(&reviews, "production", &policy(1, true));
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn environment_review_must_name_the_environment() {
        let reviews = vec![
            json!({"state": "approved", "environments": [{"name": "staging"}], "user": {"login": "bob"}}),
            json!({"state": "rejected", "environments": [{"name": "production"}], "user": {"login": "eve"}}),
        ];
        let p = policy(1, false);
        assert!(approved_reviews(&reviews, "production", &p).0.is_empty());
        assert_eq!(
            approved_reviews(&reviews, "staging", &p).0,
            vec![("bob".into(), None)]
        );
    }

    #[test]
    fn issue_body_carries_the_hash_the_plan_and_the_rules() {
        let gate = Gate {
            approvers: vec!["alice".into()],
            timeout: Duration::from_secs(1),
            policy: policy(2, false),
        };
        let plan = PlanToApprove {
            env: "production",
            action: "migrate",
            hash: HASH,
            text: "-- 0001_a.sql\ncreate table t();",
        };
        let body = issue_body(&plan, &gate, "https://x/run");
        assert!(
            body.contains(HASH) && body.contains("create table t();") && body.contains("@alice")
        );
        assert!(body.contains("2 different approvers") && body.contains("carol"));
        // A plan containing a code fence cannot close the issue's fence early.
        let plan = PlanToApprove {
            text: "a ``` b",
            action: "up",
            ..plan
        };
        let body = issue_body(&plan, &gate, "https://x/run");
        assert!(body.contains("````text\na ``` b\n````"), "{body}");
    }
}
