//! Publishing releases beyond the hosts: the git tags (`deploy/<env>/<n>` annotated with the
//! record, and the pointer tag `<env>`) and the GitHub deployment of each run with its statuses
//! `in_progress` → `success` | `failure`.
//!
//! In GitHub Actions (GITHUB_ACTIONS=true with GITHUB_TOKEN) both go through the REST API; locally
//! tags are made with git under `--tag`, and there are no GitHub deployments. Never fails a deploy
//! that already happened: problems become warnings.

use super::{git_tag_cmds, tag_message, tag_name};
use crate::api::github::{GitHub, GitHubError};
use crate::context::Ctx;
use crate::env_vars;
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::manifest::Environment;
use crate::state::{ReleaseRecord, ReleaseStatus};

/// The URL of this run in GitHub Actions, from the runner's variables.
pub fn run_url() -> Option<String> {
    env_vars::run_url()
}

/// Why this run happens (DEPLOY_REASON), recorded in the release notes and the audit log.
pub fn reason() -> Option<String> {
    env_vars::get(env_vars::DEPLOY_REASON)
        .map(|r| r.trim().chars().take(500).collect::<String>())
        .filter(|r| !r.is_empty())
}

/// The GitHub client when this run reports to GitHub (Actions with a token).
pub fn github(ctx: &Ctx) -> Option<GitHub> {
    if !env_vars::in_github_actions() || env_vars::get(env_vars::GITHUB_TOKEN).is_none() {
        return None;
    }
    match GitHub::from_env() {
        Ok(gh) => Some(gh),
        Err(e) => {
            ctx.report.warn(&format!("GitHub: {e}"));
            None
        }
    }
}

/// Tags a release: through the API in Actions, with git under `--tag`, else nothing. The record
/// is masked first (the one place tags are written): its notes may carry a health check's failure
/// text. `deploy/<env>/<n>` is created, never moved to another release (a corrupt or reused
/// number must not rewrite history); only this same release may replace it (marked bad). The
/// pointer tag moves only for a live release. Returns the warnings (also reported).
pub fn publish_tags(ctx: &Ctx, record: &ReleaseRecord) -> Vec<String> {
    let record = &super::masked_record(record, &|s| ctx.report.redact(s));
    let mut warnings = Vec::new();
    let mut tags = Vec::new();
    if let Some(gh) = github(ctx) {
        if let Err(e) = tag_through_api(&gh, record, &mut tags) {
            warnings.push(format!(
                "cannot tag {}: {e}",
                tag_name(&record.env, record.number)
            ));
        }
    } else if ctx.settings.tag {
        tag_locally(ctx, record, &mut tags, &mut warnings);
    }
    for w in &warnings {
        ctx.report.warn(w);
    }
    if !tags.is_empty() {
        ctx.report.info(&format!("tagged {}", tags.join(", ")));
    }
    warnings
}

/// Why an existing `deploy/<env>/<n>` tag is left alone: it records another release.
fn not_moved(tag: &str, existing: &str) -> String {
    format!(
        "{tag} already exists and records another release ({existing}); it is never moved, so this release is not tagged and the pointer tag stays where it is"
    )
}

/// What an existing tag's message says, for [`not_moved`].
fn describe_tag_message(message: &str) -> (Option<ReleaseRecord>, String) {
    match serde_json::from_str::<ReleaseRecord>(message) {
        Ok(r) => {
            let what = format!("sha {}, created {}", super::short_sha(&r.sha), r.created_at);
            (Some(r), what)
        }
        Err(_) => (None, "its message is not a release record".into()),
    }
}

/// The annotated tag object and its ref (created, or replaced when it is this same release),
/// then the pointer tag for a live release.
pub fn tag_through_api(
    gh: &GitHub,
    record: &ReleaseRecord,
    tags: &mut Vec<String>,
) -> Result<(), String> {
    let api = |e: GitHubError| e.to_string();
    let tag = tag_name(&record.env, record.number);
    let full = format!("refs/tags/{tag}");
    let existing = gh
        .list_matching_refs(&format!("tags/{tag}"))
        .map_err(api)?
        .into_iter()
        .find(|r| r.name == full);
    let replace = match &existing {
        None => false,
        Some(r) => {
            let message = if r.object_type == "tag" {
                gh.get_tag_object(&r.sha).map_err(api)?.message
            } else {
                String::new()
            };
            let (old, what) = describe_tag_message(&message);
            if !old.is_some_and(|o| super::same_release(&o, record)) {
                return Err(not_moved(&tag, &what));
            }
            true
        }
    };
    let sha = gh
        .create_tag_object(&tag, &tag_message(record), &record.sha)
        .map_err(api)?;
    if replace {
        gh.set_tag_ref(&tag, &sha).map_err(api)?;
    } else {
        gh.create_tag_ref(&tag, &sha).map_err(api)?;
    }
    tags.push(tag);
    if record.status.0 == ReleaseStatus::Live {
        gh.set_tag_ref(&record.env, &sha).map_err(api)?;
        tags.push(record.env.clone());
    }
    Ok(())
}

fn tag_locally(
    ctx: &Ctx,
    record: &ReleaseRecord,
    tags: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let dir = super::store::repo_root(ctx).display().to_string();
    let tag = tag_name(&record.env, record.number);
    let existing = LocalExecutor.capture(
        &crate::cmd::Cmd::new("git")
            .args(["for-each-ref", "--format=%(objecttype)%00%(contents)"])
            .arg(format!("refs/tags/{tag}"))
            .cwd(dir.clone()),
    );
    let replace = match existing {
        Ok(o) if o.success() && !o.stdout.is_empty() => {
            let text = o.stdout_str();
            let message = text.strip_prefix("tag\0").unwrap_or("");
            let (old, what) = describe_tag_message(message.trim_end_matches('\n'));
            if !old.is_some_and(|o| super::same_release(&o, record)) {
                warnings.push(not_moved(&tag, &what));
                return;
            }
            true
        }
        _ => false,
    };
    for cmd in git_tag_cmds(record, replace) {
        let name = cmd
            .args
            .get(cmd.args.len().saturating_sub(2))
            .map(|a| a.display().to_string());
        match LocalExecutor.capture(&cmd.cwd(dir.clone())) {
            Ok(o) if o.success() => tags.extend(name),
            Ok(o) => {
                warnings.push(format!("git tag failed: {}", o.stderr_tail(3)));
                return;
            }
            Err(e) => {
                warnings.push(format!("cannot run git: {e}"));
                return;
            }
        }
    }
}

/// How a run ended, for its GitHub deployment.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// It wrote this release.
    Release(&'a ReleaseRecord),
    /// It changed the environment but no record could be written.
    Done,
    /// It failed before writing a release.
    Failed,
}

/// The GitHub deployment of one run on one environment: made when the run starts changing the
/// environment (status `in_progress`), finished with `success` or `failure`.
pub struct Deployment {
    gh: Option<GitHub>,
    id: Option<u64>,
    log_url: Option<String>,
}

impl Deployment {
    /// Creates the deployment of `sha` on `env` for `task` (`deploy`, `deploy:rollback`, …) and
    /// sets it in progress. Outside GitHub Actions, or in a dry run, it does nothing.
    pub fn start(ctx: &Ctx, env: &Environment, sha: &str, task: &str) -> Deployment {
        let gh = if ctx.settings.dry_run {
            None
        } else {
            github(ctx)
        };
        let log_url = run_url();
        let mut d = Deployment {
            gh,
            id: None,
            log_url,
        };
        let Some(gh) = &d.gh else {
            return d;
        };
        // Everything sent to GitHub is masked here and in `finish` (the deployment's writer).
        let reason = reason().map(|r| ctx.report.redact(&r));
        let payload =
            serde_json::json!({ "tool": "deploy-action", "task": task, "reason": reason });
        let made = gh
            .create_deployment(
                sha,
                &env.name,
                task,
                &format!("deploy-action {task}"),
                &payload,
            )
            .and_then(|id| {
                gh.deployment_status(id, "in_progress", d.log_url.as_deref(), None, task)?;
                Ok(id)
            });
        match made {
            Ok(id) => d.id = Some(id),
            Err(e) => ctx
                .report
                .warn(&format!("cannot record the GitHub deployment: {e}")),
        }
        d
    }

    /// The deployment id, once made.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// Tags the release (when there is one) and sets the final status: `success` when the run
    /// ended with a live release (or changed things without one), `failure` otherwise.
    /// `environment_url` is the environment's `url:`, else `fallback_url` (a Pages deployment's).
    pub fn finish(
        self,
        ctx: &Ctx,
        env: &Environment,
        outcome: Outcome<'_>,
        fallback_url: Option<&str>,
    ) {
        if let Outcome::Release(r) = outcome {
            publish_tags(ctx, r);
        }
        let (Some(gh), Some(id)) = (&self.gh, self.id) else {
            return;
        };
        let (state, what) = match outcome {
            Outcome::Release(r) => match r.status.0 {
                ReleaseStatus::Live | ReleaseStatus::Superseded => ("success", "live"),
                ReleaseStatus::RolledBack => ("failure", "failed and rolled back"),
                ReleaseStatus::Bad => ("failure", "marked bad"),
                ReleaseStatus::Failed | ReleaseStatus::InProgress => ("failure", "failed"),
                ReleaseStatus::Interrupted => ("failure", "interrupted"),
            },
            Outcome::Done => ("success", "done"),
            Outcome::Failed => ("failure", "failed"),
        };
        let description = ctx.report.redact(&match outcome {
            Outcome::Release(r) => format!("release {} {what}", r.number),
            _ => what.to_string(),
        });
        let url = env.url.as_deref().or(fallback_url);
        if let Err(e) = gh.deployment_status(id, state, self.log_url.as_deref(), url, &description)
        {
            ctx.report
                .warn(&format!("cannot set the GitHub deployment status: {e}"));
        }
    }
}
