//! The `pages` stage plan: the whole run, as data. On a manifest run with `--env`, the
//! environment's deploy rules first; for each site: its build (on the runner, unless
//! `--no-build`), then the walk and hash of its directory; the git metadata of the deployments;
//! the approval (on an environment with `approval: required`); the GitHub deployment of the
//! environment; for each site: check-missing, the uploads, upsert-hashes, the deployment and the
//! wait for its final status; and the release record. Every build and walk comes before the first
//! request, so a bad `_routes.json` in the second site does not leave the first deployed alone.
//!
//! `plan --env E` shows these steps, `--dry-run` walks them with nothing sent to Cloudflare, and a
//! real run performs them (`deploy/pages/`): the three list the same step ids.
//!
//! Pure: no walking of the directory, no API call. What is decided at run time is said in the
//! step's description: which files are uploaded is check-missing's answer.

use super::stages::PlanInput;
use super::{Action, Step, Target};
use crate::cmd::Cmd;
use crate::diag::Span;
use crate::manifest::{Approval, Environment, Manifest};
use serde::Serialize;

/// Upload requests in flight at once when `--concurrency` is not given.
pub const DEFAULT_CONCURRENCY: u16 = 3;
/// Seconds to wait for a deployment's final status when `--wait-timeout` is not given.
pub const DEFAULT_WAIT_SECS: u64 = 600;

/// One site of a run, as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SitePlan {
    /// The site's name (the manifest's key; the project with `--project/--dir`).
    pub name: String,
    pub project: String,
    /// The directory uploaded, as shown (under the repository root, or `--dir`).
    pub dir: String,
    /// The build command, when the run builds the site.
    pub build: Option<Cmd>,
    /// The manifest's `production_branch` (the project's own wins when the API reports it).
    pub production_branch: Option<String>,
    pub origin: Option<Span>,
}

/// The environment a run changes (`--env`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvPlan {
    pub name: String,
    /// The guard applies (a manifest run, not `--dir`): `approval: required` adds the approval.
    pub guarded: bool,
    pub approval: bool,
    pub approvers: Vec<String>,
}

impl EnvPlan {
    /// The plan's view of `env`; `guarded`: the run passes its guard.
    pub fn of(env: &Environment, guarded: bool) -> EnvPlan {
        EnvPlan {
            name: env.name.clone(),
            guarded,
            approval: env.approval == Approval::Required,
            approvers: env.approvers.clone(),
        }
    }
}

/// Everything the planner looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub sites: Vec<SitePlan>,
    /// The environment whose release the run records, if any.
    pub env: Option<EnvPlan>,
    /// `--concurrency`.
    pub concurrency: u16,
    /// `--wait-timeout`, in seconds.
    pub wait_secs: u64,
}

/// The Cloudflare Pages actions of a run (the build is an [`Action::Run`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PagesAction {
    /// The deploy rules of the environment (`branches:`, a clean working tree). Read-only.
    Rules { environment: String },
    /// Walk and hash the site directory, read its special files, check the limits. Read-only.
    Walk { dir: String },
    /// The branch, commit and dirty flag of the deployments. Read-only.
    GitMeta,
    /// The approval of every file and its hash (`approval: required`).
    Approval {
        environment: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
    },
    /// The GitHub deployment of the environment, set in progress (in Actions).
    Start { environment: String },
    /// The project, an upload token, then which of the site's hashes Cloudflare lacks.
    CheckMissing { project: String },
    /// The files check-missing found missing, in batches.
    Upload { project: String, concurrency: u16 },
    /// Every hash of the site marked as recently used.
    UpsertHashes { project: String },
    /// The deployment: production on the production branch, a preview on any other.
    Deploy {
        project: String,
        production_branch: Option<String>,
    },
    /// Wait for the deployment's final status.
    Wait { project: String, timeout_secs: u64 },
    /// The release record of the environment, and the end of its GitHub deployment.
    Record { environment: String },
}

impl PagesAction {
    /// The step in words (what `plan`, `--dry-run` and the trace say).
    pub fn describe(&self) -> String {
        match self {
            PagesAction::Rules { environment } => format!(
                "the deploy rules of {environment}: the run's ref against `branches:`, a clean working tree unless --allow-dirty (exit 2 before anything runs; a dry run warns)"
            ),
            PagesAction::Walk { dir } => format!(
                "walk and hash {dir} as wrangler does, read its special files, check the limits (read-only: a dry run does it too)"
            ),
            PagesAction::GitMeta => "read the deployments' branch and commit: flags, then the Actions variables, then git (after the builds; read-only)".into(),
            PagesAction::Approval {
                environment,
                approvers,
            } => {
                let who = if approvers.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", approvers.join(" or "))
                };
                format!(
                    "approval for {environment}{who} of every file and its hash, before the first request to Cloudflare (--yes never skips it)"
                )
            }
            PagesAction::Start { environment } => format!(
                "GitHub deployment of {environment} (task deploy:pages) set in progress, in GitHub Actions"
            ),
            PagesAction::CheckMissing { project } => format!(
                "Cloudflare: read project {project} and an upload token (its file-count limit), then check-missing: which of the site's hashes it lacks; the answer decides the uploads"
            ),
            PagesAction::Upload {
                project,
                concurrency,
            } => format!(
                "Cloudflare: upload to {project} the files check-missing found missing (decided at run time; none when it has them all), one per distinct hash, in batches of at most 2000 files / 40 MiB, {concurrency} at once"
            ),
            PagesAction::UpsertHashes { project } => format!(
                "Cloudflare: upsert-hashes of every file of the site in {project} (a cache hint: a failure only warns)"
            ),
            PagesAction::Deploy {
                project,
                production_branch,
            } => {
                let production = match production_branch {
                    Some(b) => format!("production on branch {b}"),
                    None => "production on the project's production branch".into(),
                };
                format!(
                    "Cloudflare: create the deployment of {project} from the manifest and the special files: {production}, a preview on any other branch (never twice: a lost answer is found in the project's list)"
                )
            }
            PagesAction::Wait {
                project,
                timeout_secs,
            } => format!(
                "wait up to {timeout_secs}s for the final status of the deployment of {project} (failed or not final: exit 1)"
            ),
            PagesAction::Record { environment } => format!(
                "record the release of {environment} (the sites' deployments) and finish its GitHub deployment"
            ),
        }
    }
}

/// A site of the manifest as a run builds and uploads it; `root`: the directory of deploy.yml
/// (`None`: the current directory); `no_build`: `--no-build`.
pub fn manifest_site(
    m: &Manifest,
    name: &str,
    root: Option<&str>,
    no_build: bool,
) -> Option<SitePlan> {
    let site = m.sites.get(name)?;
    let build = site.build.as_ref().filter(|_| !no_build).map(|b| {
        let cmd = Cmd::shell(b).scrub_env(crate::cmd::unit_child_scrub(m, name));
        match root {
            Some(root) => cmd.cwd(root),
            None => cmd,
        }
    });
    Some(SitePlan {
        name: name.to_string(),
        project: site.project.clone(),
        dir: match root {
            Some(root) => format!("{}/{}", root.trim_end_matches('/'), site.dir),
            None => site.dir.clone(),
        },
        build,
        production_branch: Some(site.production_branch.clone()).filter(|b| !b.is_empty()),
        origin: Some(site.span),
    })
}

/// The steps of a run, in order.
pub fn steps(req: &Request) -> Vec<Step> {
    let mut out = Vec::new();
    let env = req.env.as_ref();
    if let Some(env) = env.filter(|e| e.guarded && !req.sites.is_empty()) {
        out.push(run_step(
            "pages:rules",
            PagesAction::Rules {
                environment: env.name.clone(),
            },
            "every change to an environment passes its guard, before the builds",
        ));
    }
    for site in &req.sites {
        if let Some(cmd) = &site.build {
            out.push(site_step(
                site,
                "build",
                Action::Run { cmd: cmd.clone() },
                format!(
                    "`pages` builds the site into {} first (skip with --no-build)",
                    site.dir
                ),
            ));
        }
        out.push(site_step(
            site,
            "walk",
            PagesAction::Walk {
                dir: site.dir.clone(),
            }
            .into(),
            "wrangler's walk, hash and content types; every site before the first request".into(),
        ));
    }
    if req.sites.is_empty() {
        return out;
    }
    out.push(run_step(
        "pages:git",
        PagesAction::GitMeta,
        "a detached HEAD is never a branch: a real run without one stops (exit 2)",
    ));
    if let Some(env) = env.filter(|e| e.guarded && e.approval) {
        out.push(run_step(
            "pages:approval",
            PagesAction::Approval {
                environment: env.name.clone(),
                approvers: env.approvers.clone(),
            },
            &format!("environment `{}` has `approval: required`", env.name),
        ));
    }
    if let Some(env) = env {
        out.push(run_step(
            "pages:start",
            PagesAction::Start {
                environment: env.name.clone(),
            },
            "the run changes the environment from here on",
        ));
    }
    for site in &req.sites {
        out.extend(remote_steps(site, req));
    }
    if let Some(env) = env {
        out.push(run_step(
            "pages:record",
            PagesAction::Record {
                environment: env.name.clone(),
            },
            "a release carrying the environment's whole state forward",
        ));
    }
    out
}

/// The Cloudflare steps of one site.
fn remote_steps(site: &SitePlan, req: &Request) -> Vec<Step> {
    let project = site.project.clone();
    vec![
        site_step(
            site,
            "check-missing",
            PagesAction::CheckMissing {
                project: project.clone(),
            }
            .into(),
            "direct upload, byte-compatible with wrangler: only the hashes Cloudflare lacks are sent"
                .into(),
        ),
        site_step(
            site,
            "upload",
            PagesAction::Upload {
                project: project.clone(),
                concurrency: req.concurrency,
            }
            .into(),
            "identical contents are uploaded once; after an HTTP 524, one request at a time".into(),
        ),
        site_step(
            site,
            "upsert-hashes",
            PagesAction::UpsertHashes {
                project: project.clone(),
            }
            .into(),
            "as wrangler does after its uploads".into(),
        ),
        site_step(
            site,
            "deploy",
            PagesAction::Deploy {
                project: project.clone(),
                production_branch: site.production_branch.clone(),
            }
            .into(),
            "the environment is the server's: production on the production branch".into(),
        ),
        site_step(
            site,
            "wait",
            PagesAction::Wait {
                project,
                timeout_secs: req.wait_secs,
            }
            .into(),
            "a deployment is done when it is live, not when it is created".into(),
        ),
    ]
}

impl From<PagesAction> for Action {
    fn from(a: PagesAction) -> Action {
        Action::Pages(a)
    }
}

fn site_step(site: &SitePlan, what: &str, action: Action, why: String) -> Step {
    Step {
        id: format!("pages:{}:{what}", site.name),
        stage: "pages".into(),
        unit: Some(site.name.clone()),
        target: Target::Local,
        action,
        why,
        guard: Default::default(),
        origin: site.origin,
    }
}

fn run_step(id: &str, action: PagesAction, why: &str) -> Step {
    Step {
        id: id.into(),
        stage: "pages".into(),
        unit: None,
        target: Target::Local,
        action: action.into(),
        why: why.into(),
        guard: Default::default(),
        origin: None,
    }
}

/// The pages steps `plan --env E` shows: the run of the affected sites with the default flags.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    let Some(env) = input.env else {
        return Vec::new();
    };
    let root = input.root.as_deref();
    let sites: Vec<SitePlan> = input
        .affected
        .units
        .iter()
        .filter_map(|u| manifest_site(input.manifest, u, root, false))
        .collect();
    steps(&Request {
        sites,
        env: Some(EnvPlan::of(env, true)),
        concurrency: DEFAULT_CONCURRENCY,
        wait_secs: DEFAULT_WAIT_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::tests::affected;

    fn site(name: &str, build: bool) -> SitePlan {
        SitePlan {
            name: name.into(),
            project: format!("shop-{name}"),
            dir: format!("clients/{name}/dist"),
            build: build.then(|| Cmd::shell("npm run build")),
            production_branch: Some("main".into()),
            origin: None,
        }
    }

    fn request(sites: Vec<SitePlan>, env: Option<EnvPlan>) -> Request {
        Request {
            sites,
            env,
            concurrency: 3,
            wait_secs: 600,
        }
    }

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn every_site_is_built_and_walked_before_the_first_request() {
        let env = EnvPlan {
            name: "staging".into(),
            guarded: true,
            approval: false,
            approvers: vec![],
        };
        let steps = steps(&request(
            vec![site("web", true), site("docs", false)],
            Some(env),
        ));
        assert_eq!(
            ids(&steps),
            [
                "pages:rules",
                "pages:web:build",
                "pages:web:walk",
                "pages:docs:walk",
                "pages:git",
                "pages:start",
                "pages:web:check-missing",
                "pages:web:upload",
                "pages:web:upsert-hashes",
                "pages:web:deploy",
                "pages:web:wait",
                "pages:docs:check-missing",
                "pages:docs:upload",
                "pages:docs:upsert-hashes",
                "pages:docs:deploy",
                "pages:docs:wait",
                "pages:record",
            ]
        );
        assert!(steps.iter().all(|s| s.guard.is_always()));
        assert_eq!(steps[2].unit.as_deref(), Some("web"));
        assert_eq!(steps[4].unit, None, "the git metadata is the run's");
    }

    #[test]
    fn a_guarded_environment_asks_its_approval_before_anything_changes() {
        let env = EnvPlan {
            name: "production".into(),
            guarded: true,
            approval: true,
            approvers: vec!["alice".into(), "bob".into()],
        };
        let s = steps(&request(vec![site("web", false)], Some(env.clone())));
        let at = |id: &str| s.iter().position(|x| x.id == id).unwrap();
        assert_eq!(at("pages:rules"), 0, "the rules before the builds");
        assert!(at("pages:web:walk") < at("pages:approval"));
        assert!(at("pages:approval") < at("pages:start"));
        assert_eq!(
            s[at("pages:approval")].describe(),
            "approval for production by alice or bob of every file and its hash, before the first request to Cloudflare (--yes never skips it)"
        );
        // `--dir` with `--env`: recorded, but the guard does not apply.
        let unguarded = EnvPlan {
            guarded: false,
            ..env
        };
        let s = steps(&request(vec![site("web", false)], Some(unguarded)));
        assert!(!ids(&s).contains(&"pages:approval"));
        assert!(!ids(&s).contains(&"pages:rules"));
        assert!(ids(&s).contains(&"pages:record"));
    }

    #[test]
    fn without_an_environment_nothing_is_recorded_and_without_sites_nothing_runs() {
        let s = steps(&request(vec![site("web", false)], None));
        assert_eq!(ids(&s)[..2], ["pages:web:walk", "pages:git"]);
        assert_eq!(ids(&s).last(), Some(&"pages:web:wait"));
        assert!(steps(&request(vec![], None)).is_empty());
    }

    #[test]
    fn the_uploads_say_that_check_missing_decides_them() {
        let s = steps(&request(vec![site("web", false)], None));
        let upload = s.iter().find(|s| s.id == "pages:web:upload").unwrap();
        assert_eq!(
            upload.describe(),
            "Cloudflare: upload to shop-web the files check-missing found missing (decided at run time; none when it has them all), one per distinct hash, in batches of at most 2000 files / 40 MiB, 3 at once"
        );
        let v = serde_json::to_value(&upload.action).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "pages", "op": "upload", "project": "shop-web", "concurrency": 3})
        );
        let wait = s.iter().find(|s| s.id == "pages:web:wait").unwrap();
        assert!(wait.describe().starts_with("wait up to 600s"));
    }

    #[test]
    fn the_plan_of_a_manifest_site_is_built_in_the_root_then_walked() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api", "web", "migrations"]);
        let input = PlanInput {
            manifest: &m,
            env: m.environments.get("staging"),
            affected: &a,
            root: Some("/repo".into()),
        };
        let steps = plan(&input);
        assert_eq!(
            ids(&steps),
            [
                "pages:rules",
                "pages:web:build",
                "pages:web:walk",
                "pages:git",
                "pages:start",
                "pages:web:check-missing",
                "pages:web:upload",
                "pages:web:upsert-hashes",
                "pages:web:deploy",
                "pages:web:wait",
                "pages:record",
            ]
        );
        assert!(
            steps
                .iter()
                .all(|s| s.stage == "pages" && s.target == Target::Local)
        );
        assert_eq!(
            steps[1].describe(),
            "cd /repo && sh -c 'npm ci && npm run build'"
        );
        assert!(
            steps[2]
                .describe()
                .starts_with("walk and hash /repo/clients/web/dist as wrangler does"),
            "{}",
            steps[1].describe()
        );
        let v = serde_json::to_value(&steps[8].action).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "pages", "op": "deploy", "project": "shop-web",
                "production_branch": "main"})
        );
        // `--no-build` leaves the build out.
        let site = manifest_site(&m, "web", None, true).unwrap();
        assert_eq!(site.build, None);
        assert_eq!(site.dir, "clients/web/dist");
    }

    #[test]
    fn no_environment_no_pages() {
        let m = crate::changes::tests::sample();
        let a = affected(&["web"]);
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: None,
        };
        assert!(plan(&input).is_empty());
    }
}
