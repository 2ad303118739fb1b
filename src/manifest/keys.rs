//! The key tables of deploy.yml: one table per mapping (name, type, required, default, description,
//! allowed values). `validate/` checks keys against these tables and `schema.rs` generates the JSON
//! Schema from them, so the two cannot drift apart. Pure data.

/// The type of a key's value.
#[derive(Debug)]
pub enum Ty {
    String,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    StringList,
    /// A list of environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
    VarList,
    /// A list of glob patterns (globset syntax).
    GlobList,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// `500ms`, `60s`, `5m`, `1h30m`.
    Duration,
    /// A list of `local` or `ssh://user@host[:port]`.
    HostList,
    /// `true` or `false`.
    Bool,
    /// A mapping with exactly the keys of this table.
    Object(&'static Table),
    /// A mapping from names the user chooses to mappings of this table.
    Named(&'static Table),
    /// Any one of these shapes.
    OneOf(&'static [Ty]),
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// The default, in words, for documentation (`None`: absent means absent).
    pub default: Option<&'static str>,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct Table {
    /// Where this mapping sits, for messages (`environment`, `service build`).
    pub what: &'static str,
    pub fields: &'static [Field],
}

impl Table {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }
}

const fn f(
    name: &'static str,
    ty: Ty,
    required: bool,
    default: Option<&'static str>,
    description: &'static str,
) -> Field {
    Field {
        name,
        ty,
        required,
        default,
        description,
    }
}

/// The `env:` key of services and sites.
const ENV_DESCRIPTION: &str = "Variables of the tool's own secrets (CLOUDFLARE_API_TOKEN, GITHUB_TOKEN, DEPLOY_SSH_KEY, ACTIONS_RUNTIME_TOKEN, a `database.url_env` variable ...) that this unit's build, test and Pages build commands may see; the others are removed from their environment.";

pub const ENGINES: &[&str] = &["postgres", "sqlite"];
pub const APPROVALS: &[&str] = &["none", "required"];
pub const BACKUPS: &[&str] = &["auto", "always", "never"];
pub const PULLS: &[&str] = &["always", "missing", "never"];

pub static ROOT: Table = Table {
    what: "manifest",
    fields: &[
        f(
            "version",
            Ty::Int { min: 1, max: 1 },
            true,
            None,
            "The manifest format version; only 1 exists.",
        ),
        f(
            "project",
            Ty::String,
            true,
            None,
            "The project name; the default docker compose project.",
        ),
        f(
            "environments",
            Ty::Named(&ENVIRONMENT),
            false,
            None,
            "Deployment targets by name (staging, production, ...).",
        ),
        f(
            "services",
            Ty::Named(&SERVICE),
            false,
            Some("{}"),
            "docker compose services by unit name.",
        ),
        f(
            "sites",
            Ty::Named(&SITE),
            false,
            Some("{}"),
            "Cloudflare Pages sites by unit name.",
        ),
        f(
            "migrations",
            Ty::Object(&MIGRATIONS),
            false,
            None,
            "SQL migrations: one unit named `migrations`.",
        ),
    ],
};

pub static ENVIRONMENT: Table = Table {
    what: "environment",
    fields: &[
        f(
            "hosts",
            Ty::HostList,
            false,
            Some("[]"),
            "`local` for this machine or `ssh://user@host[:port]` (port 22 by default).",
        ),
        f(
            "dir",
            Ty::String,
            false,
            None,
            "Where the compose files live on each host; required when there are hosts; absolute when any host is ssh (relative paths are resolved against the repository root for `local`).",
        ),
        f(
            "compose_files",
            Ty::StringList,
            false,
            Some("[] (docker compose's default)"),
            "The `docker compose -f` files, relative to `dir`.",
        ),
        f(
            "compose_project",
            Ty::String,
            false,
            Some("the project"),
            "The `docker compose -p` name.",
        ),
        f(
            "approval",
            Ty::Enum(APPROVALS),
            false,
            Some("none"),
            "Whether a deploy (and every migration) needs an approval.",
        ),
        f(
            "approvers",
            Ty::StringList,
            false,
            Some("[]"),
            "GitHub logins allowed to approve.",
        ),
        f(
            "min_approvals",
            Ty::Int { min: 1, max: 10 },
            false,
            Some("1"),
            "How many distinct people must approve a run on an environment with `approval: required`.",
        ),
        f(
            "allow_self_approval",
            Ty::Bool,
            false,
            Some("false"),
            "Whether the run's own actor (GITHUB_ACTOR) may approve it.",
        ),
        f(
            "branches",
            Ty::GlobList,
            false,
            Some("[] (any branch)"),
            "The branches (globs, e.g. `release/*`) a run that changes this environment may come from; other refs exit 2.",
        ),
        f(
            "secrets",
            Ty::VarList,
            false,
            Some("[]"),
            "Variables of the runner's environment written to every service's env file on the hosts (0600), never printed.",
        ),
        f(
            "database",
            Ty::OneOf(&[Ty::Object(&DATABASE_URL), Ty::Object(&DATABASE_COMPOSE)]),
            false,
            None,
            "How migrations reach the database: `{url_env}` or `{compose_service, engine, user, name}`.",
        ),
        f(
            "url",
            Ty::String,
            false,
            None,
            "The environment's public URL (environment_url in summaries and GitHub deployments).",
        ),
        f(
            "promote_from",
            Ty::String,
            false,
            None,
            "The environment whose verified release `promote` copies here.",
        ),
        f(
            "keep_releases",
            Ty::Int { min: 1, max: 1000 },
            false,
            Some("5"),
            "How many releases (records and image tags) to keep.",
        ),
        f(
            "backup",
            Ty::Enum(BACKUPS),
            false,
            Some("auto"),
            "Back up the database before migrating: `auto` (when approval is required), `always`, `never`.",
        ),
    ],
};

pub static DATABASE_URL: Table = Table {
    what: "database",
    fields: &[f(
        "url_env",
        Ty::String,
        true,
        None,
        "The environment variable holding the database URL (`postgres://…` or `sqlite://path`).",
    )],
};

pub static DATABASE_COMPOSE: Table = Table {
    what: "database",
    fields: &[
        f(
            "compose_service",
            Ty::String,
            true,
            None,
            "The compose service running the database (reached with `docker compose exec -T`).",
        ),
        f(
            "engine",
            Ty::Enum(ENGINES),
            true,
            None,
            "The database engine.",
        ),
        f("user", Ty::String, true, None, "The database user."),
        f("name", Ty::String, true, None, "The database name."),
    ],
};

/// Every key either database form accepts (for unknown-key checks).
pub static DATABASE_ANY: Table = Table {
    what: "database",
    fields: &[
        f("url_env", Ty::String, false, None, ""),
        f("compose_service", Ty::String, false, None, ""),
        f("engine", Ty::Enum(ENGINES), false, None, ""),
        f("user", Ty::String, false, None, ""),
        f("name", Ty::String, false, None, ""),
    ],
};

pub static SERVICE: Table = Table {
    what: "service",
    fields: &[
        f(
            "compose_service",
            Ty::String,
            false,
            Some("the unit name"),
            "The docker compose service name.",
        ),
        f(
            "paths",
            Ty::GlobList,
            false,
            Some("[]"),
            "Globs of repository paths; a change to a matching file affects this unit.",
        ),
        f(
            "build",
            Ty::OneOf(&[
                Ty::String,
                Ty::Object(&BUILD_DOCKER),
                Ty::Object(&BUILD_COMMAND),
            ]),
            false,
            None,
            "`{context, dockerfile, image}` for docker build, `{command}`, or a command string.",
        ),
        f(
            "test",
            Ty::String,
            false,
            None,
            "A command line run by `deploy-action test`.",
        ),
        f("env", Ty::VarList, false, Some("[]"), ENV_DESCRIPTION),
        f(
            "health",
            Ty::Object(&HEALTH),
            false,
            None,
            "The health gate checked after `up`.",
        ),
        f(
            "secrets",
            Ty::VarList,
            false,
            Some("[]"),
            "Variables of the runner's environment written to this service's env file on the hosts (0600), never printed.",
        ),
        f(
            "pull",
            Ty::Enum(PULLS),
            false,
            Some("always"),
            "For an image the tool does not build: pull it before deploying `always`, only when `missing`, or `never`.",
        ),
    ],
};

pub static BUILD_DOCKER: Table = Table {
    what: "build",
    fields: &[
        f(
            "context",
            Ty::String,
            true,
            None,
            "The docker build context, relative to the repository root.",
        ),
        f(
            "dockerfile",
            Ty::String,
            false,
            Some("Dockerfile"),
            "The Dockerfile, relative to the context.",
        ),
        f(
            "image",
            Ty::String,
            true,
            None,
            "The image name, tagged with the release.",
        ),
    ],
};

pub static BUILD_COMMAND: Table = Table {
    what: "build",
    fields: &[f(
        "command",
        Ty::String,
        true,
        None,
        "A command line run with `sh -c` in the repository root.",
    )],
};

/// Every key either build form accepts (for unknown-key checks).
pub static BUILD_ANY: Table = Table {
    what: "build",
    fields: &[
        f("context", Ty::String, false, None, ""),
        f("dockerfile", Ty::String, false, None, ""),
        f("image", Ty::String, false, None, ""),
        f("command", Ty::String, false, None, ""),
    ],
};

pub static HEALTH: Table = Table {
    what: "health",
    fields: &[
        f(
            "url",
            Ty::String,
            false,
            None,
            "The URL fetched on the host (http:// or https://); without it the gate checks the container's state and the window only.",
        ),
        f(
            "timeout",
            Ty::Duration,
            false,
            Some("60s"),
            "How long to wait for a healthy answer.",
        ),
        f(
            "expect_status",
            Ty::Int { min: 100, max: 599 },
            false,
            Some("200"),
            "The HTTP status that counts as healthy.",
        ),
        f(
            "contains",
            Ty::String,
            false,
            None,
            "Text the response body must contain.",
        ),
        f(
            "stable",
            Ty::Duration,
            false,
            Some("5s"),
            "How long a new container must run, counted from its start, with no restart before it counts as healthy (the crash-loop window).",
        ),
    ],
};

pub static SITE: Table = Table {
    what: "site",
    fields: &[
        f(
            "project",
            Ty::String,
            true,
            None,
            "The Cloudflare Pages project name.",
        ),
        f(
            "dir",
            Ty::String,
            true,
            None,
            "The directory uploaded, relative to the repository root.",
        ),
        f(
            "build",
            Ty::String,
            false,
            None,
            "A command line that produces `dir`.",
        ),
        f("env", Ty::VarList, false, Some("[]"), ENV_DESCRIPTION),
        f(
            "paths",
            Ty::GlobList,
            false,
            Some("[]"),
            "Globs of repository paths; a change to a matching file affects this unit.",
        ),
        f(
            "production_branch",
            Ty::String,
            false,
            Some("main"),
            "The Pages production branch.",
        ),
    ],
};

pub static MIGRATIONS: Table = Table {
    what: "migrations",
    fields: &[
        f(
            "dir",
            Ty::String,
            true,
            None,
            "The directory of `*.sql` migration files, relative to the repository root.",
        ),
        f(
            "engine",
            Ty::Enum(ENGINES),
            false,
            Some("sqlite"),
            "The database engine.",
        ),
        f(
            "paths",
            Ty::GlobList,
            false,
            Some("[\"<dir>/**\"]"),
            "Globs of repository paths that affect the `migrations` unit.",
        ),
    ],
};

/// Every table, for tests and documentation.
pub fn all_tables() -> [&'static Table; 12] {
    [
        &ROOT,
        &ENVIRONMENT,
        &DATABASE_URL,
        &DATABASE_COMPOSE,
        &DATABASE_ANY,
        &SERVICE,
        &BUILD_DOCKER,
        &BUILD_COMMAND,
        &BUILD_ANY,
        &HEALTH,
        &SITE,
        &MIGRATIONS,
    ]
}

#[cfg(test)]
mod tests {
    const DOC: &str = include_str!("../../docs/manifest.md");

    #[test]
    fn docs_name_every_key_and_their_example_is_valid() {
        for t in super::all_tables() {
            for f in t.fields {
                assert!(
                    DOC.contains(&format!("`{}`", f.name)),
                    "docs/manifest.md lacks `{}`",
                    f.name
                );
            }
        }
        let start = DOC.find("```yaml\n").expect("a yaml example") + 8;
        let end = start + DOC[start..].find("```").expect("end of example");
        let m = crate::manifest::parse(crate::diag::Source::new("deploy.yml", &DOC[start..end]))
            .unwrap_or_else(|e| panic!("{}", e.render(false)));
        assert_eq!(m.units().len(), 5);
    }
}
