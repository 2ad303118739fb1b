//! Publishing a release after a deploy runner wrote its record on the hosts: the git tags
//! (through the GitHub API in Actions, with git locally under `--tag`) and the GitHub deployment
//! with its statuses. One call, [`record_release`], for `up`, `pages`, `migrate`, `rollback`.
//!
//! Stays out of the record itself (the runners write `releases/<n>.json`) and never fails a deploy
//! that already happened: problems become warnings.

use super::{git_tag_cmds, tag_message, tag_name};
use crate::api::github::{GitHub, GitHubError};
use crate::commands::Ctx;
use crate::env_vars;
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::manifest::Environment;
use crate::state::{ReleaseRecord, ReleaseStatus};

/// What [`record_release`] did, for summaries and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Tags created or moved (`deploy/production/7`, `production`).
    pub tags: Vec<String>,
    /// The GitHub deployment id, when one was made.
    pub deployment: Option<u64>,
    pub warnings: Vec<String>,
}

/// The URL of this run: the record's when it is one, else from the runner's variables.
pub fn run_url(record: &ReleaseRecord) -> Option<String> {
    if record.run_url.starts_with("http") {
        return Some(record.run_url.clone());
    }
    let server = env_vars::get(env_vars::GITHUB_SERVER_URL)?;
    let repo = env_vars::get(env_vars::GITHUB_REPOSITORY)?;
    let run = env_vars::get(env_vars::GITHUB_RUN_ID)?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}

/// Tags the release and reports it to GitHub Deployments. In GitHub Actions (GITHUB_ACTIONS=true
/// with GITHUB_TOKEN) through the REST API; elsewhere only with `--tag`, with git in the
/// manifest's directory. Problems are reported as warnings and returned in [`Published`].
pub fn record_release(ctx: &Ctx, env: &Environment, record: &ReleaseRecord) -> Published {
    let mut out = Published::default();
    if env_vars::in_github_actions() && env_vars::get(env_vars::GITHUB_TOKEN).is_some() {
        match GitHub::from_env() {
            Ok(gh) => publish_github(&gh, env, record, &mut out),
            Err(e) => out.warnings.push(e.to_string()),
        }
    } else if ctx.settings.tag {
        tag_locally(ctx, record, &mut out);
    }
    for w in &out.warnings {
        ctx.report
            .warn(&format!("release {} of {}: {w}", record.number, record.env));
    }
    if !out.tags.is_empty() {
        ctx.report.info(&format!("tagged {}", out.tags.join(", ")));
    }
    out
}

/// The API half of [`record_release`], callable with any client (tests use the fake server).
pub fn publish_github(gh: &GitHub, env: &Environment, record: &ReleaseRecord, out: &mut Published) {
    let tag = tag_name(&record.env, record.number);
    let tagged = gh
        .create_tag_object(&tag, &tag_message(record), &record.sha)
        .and_then(|sha| {
            gh.set_tag_ref(&tag, &sha)?;
            out.tags.push(tag.clone());
            if record.status.0 == ReleaseStatus::Live {
                gh.set_tag_ref(&record.env, &sha)?;
                out.tags.push(record.env.clone());
            }
            Ok(())
        });
    if let Err(e) = tagged {
        out.warnings.push(format!("cannot tag {tag}: {e}"));
    }
    match deployment(gh, env, record) {
        Ok(id) => out.deployment = Some(id),
        Err(e) => out
            .warnings
            .push(format!("cannot record the GitHub deployment: {e}")),
    }
}

fn deployment(gh: &GitHub, env: &Environment, record: &ReleaseRecord) -> Result<u64, GitHubError> {
    let payload = serde_json::json!({ "release": record.number, "tag": tag_name(&record.env, record.number) });
    let id = gh.create_deployment(
        &record.sha,
        &record.env,
        &format!("deploy-action release {}", record.number),
        &payload,
    )?;
    let log = run_url(record);
    gh.deployment_status(id, "in_progress", log.as_deref(), None, "deploying")?;
    let (state, what) = match record.status.0 {
        ReleaseStatus::Live => ("success", "live"),
        ReleaseStatus::InProgress => return Ok(id),
        ReleaseStatus::Superseded => ("inactive", "superseded"),
        ReleaseStatus::Failed => ("failure", "failed"),
        ReleaseStatus::RolledBack => ("failure", "failed and rolled back"),
        ReleaseStatus::Bad => ("failure", "marked bad"),
    };
    gh.deployment_status(
        id,
        state,
        log.as_deref(),
        env.url.as_deref(),
        &format!("release {} {what}", record.number),
    )?;
    Ok(id)
}

fn tag_locally(ctx: &Ctx, record: &ReleaseRecord, out: &mut Published) {
    let dir = ctx
        .settings
        .manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| ".".into());
    let mut exec = LocalExecutor;
    for cmd in git_tag_cmds(record) {
        let name = cmd
            .args
            .get(cmd.args.len().saturating_sub(2))
            .map(|a| a.display().to_string());
        match exec.capture(&cmd.cwd(dir.clone())) {
            Ok(o) if o.success() => out.tags.extend(name),
            Ok(o) => {
                out.warnings
                    .push(format!("git tag failed: {}", o.stderr_tail(3)));
                return;
            }
            Err(e) => {
                out.warnings.push(format!("cannot run git: {e}"));
                return;
            }
        }
    }
}
