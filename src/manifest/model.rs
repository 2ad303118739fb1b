//! The validated manifest (`deploy.yml`, DESIGN.md "The contract"). Pure data.
//!
//! Everything here has been checked by `validate/`: names resolve, globs compile, hosts parse.
//! Entries keep the [`Span`] of their key so runtime errors can point back at the manifest.

use crate::diag::{Source, Span};
use indexmap::IndexMap;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Manifest {
    pub source: Source,
    pub version: u32,
    pub project: String,
    pub environments: IndexMap<String, Environment>,
    pub services: IndexMap<String, Service>,
    pub sites: IndexMap<String, Site>,
    pub migrations: Option<Migrations>,
}

/// The unit name of the migrations (one unit for the whole `migrations:` block).
pub const MIGRATIONS_UNIT: &str = "migrations";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Service,
    Site,
    Migrations,
}

impl Manifest {
    /// Every unit name with its kind, in manifest order: services, sites, then `migrations`.
    pub fn units(&self) -> Vec<(&str, UnitKind)> {
        let mut v: Vec<(&str, UnitKind)> = Vec::new();
        v.extend(
            self.services
                .keys()
                .map(|k| (k.as_str(), UnitKind::Service)),
        );
        v.extend(self.sites.keys().map(|k| (k.as_str(), UnitKind::Site)));
        if self.migrations.is_some() {
            v.push((MIGRATIONS_UNIT, UnitKind::Migrations));
        }
        v
    }

    /// The names of the variables the manifest says hold secrets: every environment's
    /// `database.url_env` and `secrets:`, and every service's `secrets:`. Their values are masked
    /// in every output, and children (builds, tests) do not inherit them unless a unit's `env:`
    /// lets one through. Sorted, without repeats.
    pub fn secret_vars(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for e in self.environments.values() {
            if let Some(Database::UrlEnv { var, .. }) = &e.database {
                v.push(var);
            }
            v.extend(e.secrets.iter().map(String::as_str));
        }
        for s in self.services.values() {
            v.extend(s.secrets.iter().map(String::as_str));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The `paths:` globs of a unit.
    pub fn unit_paths(&self, name: &str) -> &[String] {
        if let Some(s) = self.services.get(name) {
            &s.paths
        } else if let Some(s) = self.sites.get(name) {
            &s.paths
        } else if let (MIGRATIONS_UNIT, Some(m)) = (name, &self.migrations) {
            &m.paths
        } else {
            &[]
        }
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub name: String,
    pub span: Span,
    pub hosts: Vec<Host>,
    /// Where the compose files live on each host.
    pub dir: String,
    pub compose_files: Vec<String>,
    /// `docker compose -p` name; defaults to the project.
    pub compose_project: String,
    pub approval: Approval,
    /// GitHub logins allowed to approve through an approval issue.
    pub approvers: Vec<String>,
    pub database: Option<Database>,
    /// environment_url in summaries and GitHub deployments.
    pub url: Option<String>,
    pub promote_from: Option<String>,
    /// How many releases (records and image tags) to keep; default 5.
    pub keep_releases: u32,
    /// Back up the database before migrating: always on `approval: required`, or everywhere with `always`.
    pub backup: BackupPolicy,
    /// How many distinct people must approve (`approval: required`); default 1.
    pub min_approvals: u32,
    /// Whether the run's own actor may approve it; default false.
    pub allow_self_approval: bool,
    /// Globs of the branches a changing run may come from; empty: any.
    pub branches: Vec<String>,
    /// Runner variables delivered to every service on the hosts as 0600 env files.
    pub secrets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    None,
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupPolicy {
    /// Back up when the environment requires approval (the default).
    Auto,
    Always,
    Never,
}

/// A host of an environment: this machine, or an SSH destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Local,
    Ssh {
        user: String,
        host: String,
        port: u16,
    },
}

impl Host {
    /// The label used in output prefixes and tables (`local`, `deploy@host:22`).
    pub fn label(&self) -> String {
        match self {
            Host::Local => "local".into(),
            Host::Ssh { user, host, port } => format!("{user}@{}:{port}", bracketed(host)),
        }
    }
}

/// An IPv6 address in brackets (`[::1]`), any other host as is.
fn bracketed(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Local => f.write_str("local"),
            Host::Ssh { user, host, port } => {
                write!(f, "ssh://{user}@{}:{port}", bracketed(host))
            }
        }
    }
}

#[derive(Clone, Debug)]
pub enum Database {
    /// The URL is read from this environment variable (`postgres://…` or `sqlite://path`).
    UrlEnv { var: String, span: Span },
    /// Reach the database through `docker compose exec -T <service>` on the environment's host.
    ComposeService {
        service: String,
        engine: Engine,
        user: String,
        name: String,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Postgres,
    Sqlite,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub span: Span,
    /// The docker compose service name; defaults to the key.
    pub compose_service: String,
    pub paths: Vec<String>,
    pub build: Option<Build>,
    pub test: Option<String>,
    pub health: Option<Health>,
    /// Runner variables delivered to this service on the hosts as a 0600 env file.
    pub secrets: Vec<String>,
    /// When to pull an image the tool does not build.
    pub pull: Pull,
    /// `env:`: the tool's secret variables this unit's build and test commands may see.
    pub env: Vec<String>,
}

/// `pull:` of a service whose image comes from a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    /// Pull before every deploy (what `docker compose pull && up -d` does).
    #[default]
    Always,
    /// Pull only when the image is not on the host.
    Missing,
    /// Never pull.
    Never,
}

#[derive(Clone, Debug)]
pub enum Build {
    /// `docker build` of `context` with `dockerfile`, tagged `<image>:<sha>`.
    Docker {
        context: String,
        dockerfile: String,
        image: String,
        span: Span,
    },
    /// A command line run with `sh -c` in the repository root.
    Command { command: String, span: Span },
}

#[derive(Clone, Debug)]
pub struct Health {
    pub span: Span,
    /// The HTTP check fetched on the host; none: container state and the window only.
    pub url: Option<String>,
    pub timeout: Duration,
    pub expect_status: u16,
    pub contains: Option<String>,
    /// The stability window: how long a new container must run (same id, no restart) before the
    /// gate calls it healthy. None: the default (5 s).
    pub stable: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct Site {
    pub name: String,
    pub span: Span,
    /// The Cloudflare Pages project name.
    pub project: String,
    /// The directory uploaded, relative to the repository root.
    pub dir: String,
    pub build: Option<String>,
    pub paths: Vec<String>,
    pub production_branch: String,
    /// `env:`: the tool's secret variables this site's build command may see.
    pub env: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Migrations {
    pub span: Span,
    pub dir: String,
    pub engine: Engine,
    pub paths: Vec<String>,
}
