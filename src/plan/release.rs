//! The plans of `promote` and `rollback`: the whole run as steps, the services' fan-out one of
//! them.
//!
//! ```text
//! promote:  lock, start, migrate, services, pages:<site>…, record
//! rollback: lock, start,          services, pages:<site>…, record, mark-bad
//! ```
//!
//! `lock` takes the environment lock on every host, held to the end (then checks again that what
//! was approved is still what runs); `start` sets the GitHub deployment in progress; `migrate`
//! brings the database to the source's version (its own steps follow it in the trace);
//! `services` runs the fan-out of the compose services (its steps follow it in the trace);
//! `pages:<site>` puts a site on a recorded deployment; `record` writes the release;
//! `mark-bad` marks the abandoned release bad. A step is only there when it has something to do.
//!
//! `deploy/release/` performs the steps: for real, or (`--dry-run`) on the recording side, which
//! reads what it needs and changes nothing. Both walk these steps, so both list the same ids.
//!
//! Pure: the choices (which release, which units differ) are made before, from the ledger.

use super::{Action, Step, Target};
use crate::diag::Span;
use crate::state::PagesState;
use serde::Serialize;

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Promote,
    Rollback,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Promote => "promote",
            Stage::Rollback => "rollback",
        }
    }
}

/// A site put on a recorded deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteMove {
    pub site: String,
    pub project: String,
    pub deployment_id: String,
    /// The recorded deployment's URL.
    pub url: String,
    /// How many files its manifest lists.
    pub files: usize,
    /// Its environment at Cloudflare: only a `production` one is rolled back to.
    pub production: bool,
    /// Promote: the production branch it is deployed to.
    pub branch: String,
    pub origin: Option<Span>,
}

impl SiteMove {
    /// `site` put on the recorded deployment `p` (`branch`: the site's production branch).
    pub fn of(site: &str, p: &PagesState, branch: &str, origin: Option<Span>) -> SiteMove {
        SiteMove {
            site: site.to_string(),
            project: p.project.clone(),
            deployment_id: p.deployment_id.clone(),
            url: p.url.clone(),
            files: p.manifest.len(),
            production: p.environment == "production",
            branch: branch.to_string(),
            origin,
        }
    }
}

/// What a promote or rollback does, as chosen from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub stage: Stage,
    pub env: String,
    /// The environment's hosts (labels): the lock is taken on each.
    pub hosts: Vec<String>,
    /// The environment requires approval: under the lock, the approved plan is checked again.
    pub approval: bool,
    /// The manifest keys of the compose services deployed.
    pub services: Vec<String>,
    pub sites: Vec<SiteMove>,
    /// Promote: the migration version to reach.
    pub migration: Option<String>,
    /// Promote: the source environment; rollback: none.
    pub from: Option<String>,
    /// Promote: the source's release; rollback: the release gone back to.
    pub release: u64,
    /// Rollback: the release abandoned (marked bad).
    pub abandoned: Option<u64>,
}

/// What a step of a promote or rollback does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum ReleaseAction {
    /// The environment lock on every host, held to the end of the run; then, with an approval,
    /// the approved plan checked again under it.
    Lock {
        environment: String,
        hosts: Vec<String>,
        recheck: bool,
    },
    /// The GitHub deployment of the environment set in progress (in GitHub Actions).
    Start { environment: String, task: String },
    /// Promote: the migrations up to `version`, through `migrate`'s own steps.
    Migrate {
        environment: String,
        version: String,
    },
    /// The compose services through the fan-out (its steps follow).
    Services {
        stage: Stage,
        environment: String,
        services: Vec<String>,
        /// Promote: the source; rollback: none.
        from: Option<String>,
        release: u64,
    },
    /// Promote: a recorded deployment created again on the production branch (no upload).
    Redeploy {
        project: String,
        deployment_id: String,
        files: usize,
        branch: String,
    },
    /// Rollback: production back on a recorded deployment; a preview is only recorded.
    PagesBack {
        project: String,
        deployment_id: String,
        url: String,
        production: bool,
    },
    /// The release record (and the end of the GitHub deployment).
    Record {
        stage: Stage,
        environment: String,
        /// The services' run wrote the record: it is completed; else a new one is appended.
        services: bool,
        from: Option<String>,
    },
    /// Rollback: the abandoned release marked bad.
    MarkBad {
        environment: String,
        release: u64,
        to: u64,
    },
}

impl ReleaseAction {
    /// The step in words (what `--dry-run` and `--json`'s steps say).
    pub fn describe(&self) -> String {
        match self {
            ReleaseAction::Lock {
                environment,
                hosts,
                recheck,
            } => format!(
                "take the {environment} lock on {}, held to the end of the run{}",
                hosts.join(", "),
                if *recheck {
                    "; then check that what was approved is still what runs (exit 3 if not)"
                } else {
                    ""
                }
            ),
            ReleaseAction::Start { environment, task } => format!(
                "GitHub deployment of {environment} (task {task}) set in progress, in GitHub Actions"
            ),
            ReleaseAction::Migrate {
                environment,
                version,
            } => format!(
                "migrate the database of {environment} up to version {version}, the schema before the code (migrate's steps follow)"
            ),
            ReleaseAction::Services {
                stage,
                environment,
                services,
                from,
                release,
            } => {
                let what = match (stage, from) {
                    (Stage::Promote, Some(from)) => format!(
                        "with the image ids of release {release} of {from} (by repo digest where it recorded one, else shipped from its host)"
                    ),
                    _ => format!(
                        "back to the images of release {release} (its tag where every host keeps it, else its repo digest)"
                    ),
                };
                format!(
                    "deploy {} on every host of {environment} {what}, through the fan-out: every host checked before any changes (its steps follow)",
                    services.join(", ")
                )
            }
            ReleaseAction::Redeploy {
                project,
                deployment_id,
                files,
                branch,
            } => format!(
                "Cloudflare: deploy the {files} files of deployment {deployment_id} of {project} to the production branch `{branch}` (nothing is uploaded or built), and wait for it"
            ),
            ReleaseAction::PagesBack {
                project,
                deployment_id,
                url,
                production: true,
            } => format!(
                "Cloudflare: roll project {project} back to deployment {deployment_id} ({url})"
            ),
            ReleaseAction::PagesBack {
                deployment_id, url, ..
            } => format!(
                "deployment {deployment_id} is a preview: it still serves at {url}; recorded, nothing is sent"
            ),
            ReleaseAction::Record {
                stage,
                environment,
                services,
                from,
            } => {
                let how = if *services {
                    "the services' new release completed with"
                } else {
                    "a new release with"
                };
                let what = match (stage, from) {
                    (Stage::Promote, Some(from)) => format!(
                        "the migration version and the Pages deployments, promoted from {from}"
                    ),
                    _ => "the Pages deployments".to_string(),
                };
                format!(
                    "record the release of {environment}: {how} {what}; its tags, and the end of the GitHub deployment"
                )
            }
            ReleaseAction::MarkBad {
                environment,
                release,
                to,
            } => format!(
                "mark release {release} of {environment} bad (abandoned for release {to}): it is never chosen again"
            ),
        }
    }
}

impl From<ReleaseAction> for Action {
    fn from(a: ReleaseAction) -> Action {
        Action::Release(a)
    }
}

/// The steps of a promote or rollback, in order: only those with something to do.
pub fn steps(input: &Input) -> Vec<Step> {
    let (stage, env) = (input.stage, &input.env);
    let name = stage.name();
    let mut b = Builder {
        input,
        out: Vec::new(),
    };
    if !input.hosts.is_empty() {
        let lock = ReleaseAction::Lock {
            environment: env.clone(),
            hosts: input.hosts.clone(),
            recheck: input.approval,
        };
        b.push("lock", None, lock, "one lock for the whole run");
    }
    let start = ReleaseAction::Start {
        environment: env.clone(),
        task: format!("deploy:{name}"),
    };
    b.push("start", None, start, "the run's GitHub deployment");
    if let (Stage::Promote, Some(version)) = (stage, &input.migration) {
        let migrate = ReleaseAction::Migrate {
            environment: env.clone(),
            version: version.clone(),
        };
        let unit = Some(crate::manifest::MIGRATIONS_UNIT);
        b.push(
            "migrate",
            unit,
            migrate,
            "the schema before the code that needs it",
        );
    }
    if !input.services.is_empty() {
        let services = ReleaseAction::Services {
            stage,
            environment: env.clone(),
            services: input.services.clone(),
            from: input.from.clone(),
            release: input.release,
        };
        b.push("services", None, services, "the services differ");
    }
    for s in &input.sites {
        let id = format!("pages:{}", s.site);
        b.push(
            &id,
            Some(&s.site),
            site_action(stage, s),
            "the site differs",
        );
    }
    let record = ReleaseAction::Record {
        stage,
        environment: env.clone(),
        services: !input.services.is_empty(),
        from: input.from.clone(),
    };
    b.push("record", None, record, "the release tells what runs");
    if let (Stage::Rollback, Some(bad)) = (stage, input.abandoned) {
        let mark = ReleaseAction::MarkBad {
            environment: env.clone(),
            release: bad,
            to: input.release,
        };
        b.push("mark-bad", None, mark, "never chosen again");
    }
    b.out
}

/// What a site's step does: promote redeploys the source's files, rollback goes back to the
/// recorded deployment.
fn site_action(stage: Stage, s: &SiteMove) -> ReleaseAction {
    match stage {
        Stage::Promote => ReleaseAction::Redeploy {
            project: s.project.clone(),
            deployment_id: s.deployment_id.clone(),
            files: s.files,
            branch: s.branch.clone(),
        },
        Stage::Rollback => ReleaseAction::PagesBack {
            project: s.project.clone(),
            deployment_id: s.deployment_id.clone(),
            url: s.url.clone(),
            production: s.production,
        },
    }
}

/// Builds the steps of one run (ids `<stage>:<name>`, all on this machine).
struct Builder<'a> {
    input: &'a Input,
    out: Vec<Step>,
}

impl Builder<'_> {
    fn push(&mut self, name: &str, unit: Option<&str>, action: ReleaseAction, why: &str) {
        let stage = self.input.stage.name();
        self.out.push(Step {
            id: format!("{stage}:{name}"),
            stage: stage.into(),
            unit: unit.map(str::to_string),
            target: Target::Local,
            action: action.into(),
            why: why.into(),
            guard: Default::default(),
            // The sites' steps carry their deploy.yml entry, for their errors.
            origin: self
                .input
                .sites
                .iter()
                .find(|s| unit == Some(&s.site))
                .and_then(|s| s.origin),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, production: bool) -> SiteMove {
        SiteMove {
            site: name.into(),
            project: format!("shop-{name}"),
            deployment_id: "d1".into(),
            url: format!("https://d1.shop-{name}.pages.dev"),
            files: 3,
            production,
            branch: "main".into(),
            origin: None,
        }
    }

    fn input(stage: Stage) -> Input {
        Input {
            stage,
            env: "production".into(),
            hosts: vec!["local".into(), "deploy@h2:22".into()],
            approval: false,
            services: vec!["web".into()],
            sites: vec![site("docs", true), site("blog", false)],
            migration: Some("4".into()),
            from: (stage == Stage::Promote).then(|| "staging".into()),
            release: 7,
            abandoned: Some(9),
        }
    }

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn a_promote_locks_starts_migrates_deploys_the_services_then_the_sites_and_records() {
        let steps = steps(&input(Stage::Promote));
        assert_eq!(
            ids(&steps),
            [
                "promote:lock",
                "promote:start",
                "promote:migrate",
                "promote:services",
                "promote:pages:docs",
                "promote:pages:blog",
                "promote:record"
            ]
        );
        assert!(
            steps
                .iter()
                .all(|s| s.guard.is_always() && s.stage == "promote")
        );
        assert_eq!(steps[2].unit.as_deref(), Some("migrations"));
        assert_eq!(steps[4].unit.as_deref(), Some("docs"));
        let words: Vec<String> = steps.iter().map(Step::describe).collect();
        assert!(
            words[0].contains("production lock on local, deploy@h2:22"),
            "{words:?}"
        );
        assert!(words[2].contains("up to version 4"), "{words:?}");
        assert!(words[3].contains("release 7 of staging"), "{words:?}");
        assert!(
            words[4]
                .contains("3 files of deployment d1 of shop-docs to the production branch `main`"),
            "{words:?}"
        );
        assert!(words[6].contains("promoted from staging"), "{words:?}");
    }

    #[test]
    fn a_rollback_puts_services_and_sites_back_records_and_marks_the_abandoned_release_bad() {
        let mut i = input(Stage::Rollback);
        i.approval = true;
        let steps = steps(&i);
        assert_eq!(
            ids(&steps),
            [
                "rollback:lock",
                "rollback:start",
                "rollback:services",
                "rollback:pages:docs",
                "rollback:pages:blog",
                "rollback:record",
                "rollback:mark-bad"
            ],
            "a rollback never migrates"
        );
        let words: Vec<String> = steps.iter().map(Step::describe).collect();
        assert!(words[0].contains("still what runs"), "{words:?}");
        assert!(
            words[2].contains("back to the images of release 7"),
            "{words:?}"
        );
        assert!(words[3].starts_with("Cloudflare: roll project shop-docs back to deployment d1"));
        assert!(words[4].contains("is a preview"), "{words:?}");
        assert!(words[5].contains("the services' new release"), "{words:?}");
        assert!(
            words[6].contains("release 9 of production bad"),
            "{words:?}"
        );
    }

    #[test]
    fn only_what_has_something_to_do_is_planned() {
        let mut i = input(Stage::Rollback);
        i.hosts.clear();
        i.services.clear();
        i.sites.truncate(1);
        i.abandoned = None;
        let steps = steps(&i);
        assert_eq!(
            ids(&steps),
            ["rollback:start", "rollback:pages:docs", "rollback:record"],
            "no hosts: no lock; no services: no fan-out; nothing abandoned: nothing marked"
        );
        assert!(
            steps[2]
                .describe()
                .contains("a new release with the Pages deployments")
        );
        let mut p = input(Stage::Promote);
        p.migration = None;
        p.sites.clear();
        assert_eq!(
            ids(&super::steps(&p)),
            [
                "promote:lock",
                "promote:start",
                "promote:services",
                "promote:record"
            ]
        );
    }
}
