//! Plans: pure functions from (settings, manifest, affected units, state read from the target) to a
//! list of [`Step`]s. No I/O here: `plan` and `--dry-run` print exactly the steps an executor runs.

pub mod build;
pub mod migrate;
pub mod pages;
pub mod release;
pub mod stages;
pub mod test;
pub mod up;

use crate::cmd::Cmd;
use crate::diag::Span;
use crate::manifest::{Engine, Host};
use serde::Serialize;

/// What a stage would do, in order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// One unit of work, as data.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Stable id for reporting (`build:api`, `up:api@deploy@host:22`).
    pub id: String,
    /// The stage this step belongs to (`build`, `test`, `up`, …).
    pub stage: String,
    /// The unit (service, site, `migrations`) the step works for, if any.
    pub unit: Option<String>,
    pub target: Target,
    pub action: Action,
    /// Why this step is in the plan, in a few words.
    pub why: String,
    /// When the step runs: always, or only on one branch of an earlier result (the rollback
    /// branch after a failed gate).
    #[serde(skip_serializing_if = "Guard::is_always")]
    pub guard: Guard,
    /// The manifest entry that configured it.
    #[serde(skip)]
    pub origin: Option<Span>,
}

/// When a step runs. The runner evaluates it against what earlier steps found; a dry run cannot,
/// and shows the step with its condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum Guard {
    /// Every time.
    #[default]
    Always,
    /// Only when the health gate failed for one of `units` (the rollback branch).
    GateFailed { units: Vec<String> },
    /// Only for the units among `units` that passed the health gate.
    GatePassed { units: Vec<String> },
    /// Only while one of `steps` (ids) is still to do and no earlier step failed: a migration
    /// after a failed one is not run, nor one that another run applied while this one waited for
    /// the lock.
    Outstanding { steps: Vec<String> },
}

impl Guard {
    pub fn is_always(&self) -> bool {
        *self == Guard::Always
    }

    /// The condition in words, for a dry run (`None` for [`Guard::Always`]).
    pub fn describe(&self) -> Option<String> {
        match self {
            Guard::Always => None,
            Guard::GateFailed { units } => Some(format!(
                "if the health gate fails for {}",
                units.join(" or ")
            )),
            Guard::GatePassed { units } => Some(format!(
                "for what passed the health gate of {}",
                units.join(", ")
            )),
            Guard::Outstanding { steps } if steps.len() == 1 => Some(
                "unless another run did it while this one waited for the lock, or an earlier migration failed"
                    .into(),
            ),
            Guard::Outstanding { .. } => Some(
                "unless another run did all of it while this one waited for the lock".into(),
            ),
        }
    }
}

/// Where a step runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The machine running deploy-action (the runner or laptop).
    Local,
    /// A host of the environment.
    Host(#[serde(serialize_with = "ser_host")] Host),
}

fn ser_host<S: serde::Serializer>(h: &Host, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&h.to_string())
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Target::Local => "local".into(),
            Target::Host(h) => h.label(),
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Run a command.
    Run {
        #[serde(serialize_with = "ser_cmd")]
        cmd: Cmd,
    },
    /// Write a file on the target.
    Upload {
        local: String,
        remote: String,
        mode: u32,
    },
    /// An HTTP request whose answer is checked.
    HttpCheck {
        url: String,
        expect_status: u16,
        contains: Option<String>,
        timeout_secs: u64,
    },
    /// A call to a SaaS API (Cloudflare, GitHub), described.
    ApiCall {
        service: String,
        description: String,
    },
    /// Wait for an approval.
    Approval {
        environment: String,
        /// The hash of the plan being approved; `None` in `plan`, where it is computed at run time
        /// from what is pending then (the migrations not yet applied).
        plan_hash: Option<String>,
        /// The environment's `approvers:` (GitHub logins); empty when any required reviewer counts.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
    },
    /// A step of a Cloudflare Pages run (walk, check-missing, uploads, the deployment, …).
    Pages(pages::PagesAction),
    /// Apply the pending SQL migrations of `dir`, one transaction each (what `plan` shows: which
    /// files are pending is known once the database is read; a run has one step per file).
    Migrate {
        dir: String,
        engine: Engine,
        database: DbSource,
    },
    /// Back up a database and verify the backup before it changes.
    Backup { database: DbSource, to: String },
    /// A step of a compose service deploy (`up`, `promote`, `rollback`): see [`up::action`].
    Compose(up::ComposeAction),
    /// A step only `migrate` takes: its lock, its tracking table, one migration file, its release.
    Migration(migrate::MigrationAction),
    /// A step of `promote` or `rollback` (the lock, the services' fan-out, a site, the record):
    /// see [`release`].
    Release(release::ReleaseAction),
}

/// Where `migrate` finds an environment's database (what `plan` can say without connecting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DbSource {
    /// The URL is in this environment variable (only its name is shown, never its value).
    UrlEnv { var: String },
    /// PostgreSQL inside a compose service on a host, reached with `docker compose exec`.
    ComposeService {
        service: String,
        engine: Engine,
        user: String,
        name: String,
        #[serde(serialize_with = "ser_host")]
        host: Host,
    },
    /// The environment has no `database:`: `migrate` stops with exit 2.
    Missing { environment: String },
}

impl DbSource {
    /// The database in a few words (`$STAGING_DATABASE_URL`, `compose service db on …`).
    pub fn describe(&self) -> String {
        match self {
            DbSource::UrlEnv { var } => format!("the database in ${var}"),
            DbSource::ComposeService {
                service,
                user,
                name,
                host,
                ..
            } => format!(
                "database `{name}` (user {user}) in compose service `{service}` on {}",
                host.label()
            ),
            DbSource::Missing { environment } => {
                format!("no database: environment `{environment}` has no `database:`")
            }
        }
    }
}

/// The manifest's word for an engine.
pub fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Postgres => "postgres",
        Engine::Sqlite => "sqlite",
    }
}

pub(crate) fn ser_cmd<S: serde::Serializer>(c: &Cmd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.display())
}

impl Step {
    /// One line for people: what runs where.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Run { cmd } => cmd.display(),
            Action::Upload { local, remote, .. } => format!("upload {local} -> {remote}"),
            Action::HttpCheck {
                url,
                expect_status,
                contains,
                ..
            } => match contains {
                Some(c) => format!("GET {url} expect {expect_status} containing {c:?}"),
                None => format!("GET {url} expect {expect_status}"),
            },
            Action::ApiCall {
                service,
                description,
            } => format!("{service}: {description}"),
            Action::Approval {
                environment,
                plan_hash,
                approvers,
            } => {
                let who = if approvers.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", approvers.join(" or "))
                };
                match plan_hash {
                    Some(h) => format!("approval for {environment}{who} (plan {h})"),
                    None => format!(
                        "approval for {environment}{who} of the pending SQL and its hash, before anything is written (--yes never skips it)"
                    ),
                }
            }
            Action::Pages(a) => a.describe(),
            Action::Migrate {
                dir,
                engine,
                database,
            } => format!(
                "apply pending {dir}/*.sql ({}) to {}: one step per file, each in one transaction with its tracking row",
                engine_name(*engine),
                database.describe()
            ),
            Action::Compose(a) => a.describe(),
            Action::Backup { database, to } => {
                format!(
                    "back up {} into {to} and verify it, before migrating",
                    database.describe()
                )
            }
            Action::Migration(m) => m.describe(),
            Action::Release(r) => r.describe(),
        }
    }
}
