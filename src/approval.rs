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

use crate::api::github::GitHub;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::report::Report;
use serde_json::Value;
use std::io::{BufRead, IsTerminal};
use std::time::{Duration, Instant};

/// What is being approved.
#[derive(Clone, Debug)]
pub struct PlanToApprove<'a> {
    pub env: &'a str,
    /// `migrate` or `migrate down`.
    pub action: &'a str,
    pub hash: &'a str,
    /// The pending SQL, shown to the approver.
    pub text: &'a str,
}

/// Who approved, how, and for which plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    pub approver: String,
    /// `github-environment-review`, `github-issue`, `terminal`.
    pub method: String,
    pub plan_hash: String,
    /// The review comment or issue URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The gate's settings for one environment.
#[derive(Clone, Debug)]
pub struct Gate {
    pub approvers: Vec<String>,
    pub timeout: Duration,
}

/// The outcome of reading an issue's comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentDecision {
    Approved {
        login: String,
        url: Option<String>,
    },
    Denied {
        login: String,
    },
    /// Nothing decisive yet; `ignored` explains comments that did not count.
    Undecided {
        ignored: Vec<String>,
    },
}

/// Reads comments (oldest first) and decides. A comment counts when its author is an approver, it
/// was not edited, and its text is `approve`/`approved`/`deny`/`denied`, optionally followed by a
/// plan hash (or a prefix of at least 12 characters) that must match `plan_hash`.
pub fn decide_comments(
    comments: &[Value],
    approvers: &[String],
    plan_hash: &str,
) -> CommentDecision {
    let mut ignored = Vec::new();
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
                    "`{verb}` from {login} is for plan {hash}, not this plan {}",
                    &plan_hash[..12.min(plan_hash.len())]
                ));
                continue;
            }
        }
        if deny {
            return CommentDecision::Denied {
                login: login.to_string(),
            };
        }
        return CommentDecision::Approved {
            login: login.to_string(),
            url: c.get("html_url").and_then(Value::as_str).map(String::from),
        };
    }
    CommentDecision::Undecided { ignored }
}

/// An approved review of this run's deployment to `env` (the first `approved` entry naming it).
pub fn approved_review(approvals: &[Value], env: &str) -> Option<(String, Option<String>)> {
    approvals.iter().find_map(|a| {
        let state = a.get("state").and_then(Value::as_str)?;
        let names_env = a
            .get("environments")
            .and_then(Value::as_array)
            .is_some_and(|es| {
                es.iter()
                    .any(|e| e.get("name").and_then(Value::as_str) == Some(env))
            });
        (state == "approved" && names_env).then(|| {
            (
                a.pointer("/user/login")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                a.get("comment")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .map(String::from),
            )
        })
    })
}

/// The approval issue's body: the plan, its hash and how to answer.
pub fn issue_body(plan: &PlanToApprove, approvers: &[String], run_url: &str) -> String {
    const LIMIT: usize = 60_000;
    let mut sql = plan.text.to_string();
    if sql.len() > LIMIT {
        let mut cut = LIMIT;
        while !sql.is_char_boundary(cut) {
            cut -= 1;
        }
        sql.truncate(cut);
        sql.push_str("\n-- (cut: the full plan is in the run's log)");
    }
    format!(
        "`{action}` on **{env}** waits for an approval.\n\nRun: {run_url}\n\nPlan hash: `{hash}`\n\n```sql\n{sql}\n```\n\n\
Approvers ({who}): comment `approve {short}` to apply exactly this plan, or `deny`. \
An approval naming another plan hash does not count.\n",
        action = plan.action,
        env = plan.env,
        hash = plan.hash,
        short = &plan.hash[..12.min(plan.hash.len())],
        who = approvers
            .iter()
            .map(|a| format!("@{a}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Obtains an approval for `plan`, or fails with [`Error::Approval`] (exit 3).
pub fn obtain(report: &Report, gate: &Gate, plan: &PlanToApprove) -> Result<Approval> {
    if env_vars::in_github_actions() {
        return obtain_github(report, gate, plan);
    }
    obtain_terminal(report, plan)
}

fn obtain_terminal(report: &Report, plan: &PlanToApprove) -> Result<Approval> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Approval(format!(
            "environment `{}` requires an approval and there is no terminal to ask (--yes never skips it); \
run on a terminal and type the environment's name, or in GitHub Actions with a required reviewer or `approvers:`",
            plan.env
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
            "not approved: the answer was not `{}`",
            plan.env
        )));
    }
    let who = env_vars::get("USER")
        .or_else(|| env_vars::get("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    Ok(Approval {
        approver: who,
        method: "terminal".into(),
        plan_hash: plan.hash.to_string(),
        reference: None,
    })
}

fn gh_err(e: crate::api::github::GitHubError) -> Error {
    Error::Approval(format!("cannot check the approval: {e}"))
}

fn obtain_github(report: &Report, gate: &Gate, plan: &PlanToApprove) -> Result<Approval> {
    let gh = GitHub::from_env().map_err(gh_err)?;
    let run_id = env_vars::get(env_vars::GITHUB_RUN_ID).unwrap_or_default();
    let server =
        env_vars::get(env_vars::GITHUB_SERVER_URL).unwrap_or_else(|| "https://github.com".into());
    let run_url = format!("{server}/{}/actions/runs/{run_id}", gh.repository);
    if !run_id.is_empty() {
        let approvals = gh.run_approvals(&run_id).map_err(gh_err)?;
        if let Some((login, comment)) = approved_review(&approvals, plan.env) {
            report.info(&format!(
                "approved: {login} approved this run's deployment to `{}` (required reviewer)",
                plan.env
            ));
            return Ok(Approval {
                approver: login,
                method: "github-environment-review".into(),
                plan_hash: plan.hash.to_string(),
                reference: comment.or(Some(run_url)),
            });
        }
    }
    if gate.approvers.is_empty() {
        return Err(Error::Approval(format!(
            "environment `{}` requires an approval: this run's deployment was not approved by a required reviewer, \
and the environment lists no `approvers:` for an approval issue",
            plan.env
        )));
    }
    let title = format!(
        "Approve {} on {} (plan {})",
        plan.action,
        plan.env,
        &plan.hash[..12.min(plan.hash.len())]
    );
    let (number, url) = gh
        .create_issue(&title, &issue_body(plan, &gate.approvers, &run_url))
        .map_err(gh_err)?;
    report.info(&format!(
        "waiting up to {:?} for an approval on {url} (plan hash {})",
        gate.timeout, plan.hash
    ));
    let poll = if env_vars::get(env_vars::DEPLOY_TEST_NO_RETRY_DELAY).is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(10)
    };
    let started = Instant::now();
    let mut reported_ignored = 0;
    loop {
        let comments = gh.issue_comments(number).map_err(gh_err)?;
        match decide_comments(&comments, &gate.approvers, plan.hash) {
            CommentDecision::Approved { login, url: c_url } => {
                let _ = gh.comment(
                    number,
                    &format!("Approved by @{login}; applying plan `{}`.", plan.hash),
                );
                let _ = gh.close_issue(number);
                return Ok(Approval {
                    approver: login,
                    method: "github-issue".into(),
                    plan_hash: plan.hash.to_string(),
                    reference: c_url.or(Some(url)),
                });
            }
            CommentDecision::Denied { login } => {
                let _ = gh.comment(number, &format!("Denied by @{login}; nothing was applied."));
                let _ = gh.close_issue(number);
                return Err(Error::Approval(format!("denied by {login} on {url}")));
            }
            CommentDecision::Undecided { ignored } => {
                for why in ignored.iter().skip(reported_ignored) {
                    report.warn(&format!("approval comment ignored: {why}"));
                }
                reported_ignored = reported_ignored.max(ignored.len());
            }
        }
        if started.elapsed() >= gate.timeout {
            let _ = gh.comment(
                number,
                "Timed out waiting for an approval; nothing was applied.",
            );
            let _ = gh.close_issue(number);
            return Err(Error::Approval(format!(
                "no approval within {:?} on {url}",
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

    #[test]
    fn only_listed_approvers_with_the_right_hash_count() {
        let approvers = vec!["alice".to_string()];
        let d = decide_comments(&[c("mallory", "approve")], &approvers, HASH);
        assert!(matches!(d, CommentDecision::Undecided { ref ignored } if ignored.len() == 1));
        let d = decide_comments(&[c("alice", "approve ffffffffffff")], &approvers, HASH);
        assert!(
            matches!(d, CommentDecision::Undecided { ref ignored } if ignored[0].contains("not this plan"))
        );
        let d = decide_comments(&[c("Alice", "Approve 0123456789ab")], &approvers, HASH);
        assert_eq!(
            d,
            CommentDecision::Approved {
                login: "Alice".into(),
                url: None
            }
        );
        let d = decide_comments(
            &[c("alice", "looks fine"), c("alice", "deny")],
            &approvers,
            HASH,
        );
        assert_eq!(
            d,
            CommentDecision::Denied {
                login: "alice".into()
            }
        );
        let edited = json!({"user": {"login": "alice"}, "body": "approve", "created_at": "a", "updated_at": "b"});
        assert!(matches!(
            decide_comments(&[edited], &approvers, HASH),
            CommentDecision::Undecided { .. }
        ));
    }

    #[test]
    fn environment_review_must_name_the_environment() {
        let reviews = vec![
            json!({"state": "approved", "environments": [{"name": "staging"}], "user": {"login": "bob"}}),
            json!({"state": "rejected", "environments": [{"name": "production"}], "user": {"login": "eve"}}),
        ];
        assert_eq!(approved_review(&reviews, "production"), None);
        assert_eq!(
            approved_review(&reviews, "staging"),
            Some(("bob".into(), None))
        );
    }

    #[test]
    fn issue_body_carries_the_hash_and_the_sql() {
        let plan = PlanToApprove {
            env: "production",
            action: "migrate",
            hash: HASH,
            text: "-- 0001_a.sql\ncreate table t();",
        };
        let body = issue_body(&plan, &["alice".into()], "https://x/run");
        assert!(
            body.contains(HASH) && body.contains("create table t();") && body.contains("@alice")
        );
    }
}
