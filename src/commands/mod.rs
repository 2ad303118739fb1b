//! Glue, one short file per subcommand: settings → plan → executor → report.

pub mod build;
pub mod check;
pub mod exec;
pub mod lock;
pub mod migrate;
pub mod pages;
pub mod plan;
pub mod promote;
pub mod release;
pub mod rollback;
pub mod status;
pub mod test;
pub mod units;
pub mod up;

use crate::cli::Command;
use crate::env_vars;
use crate::error::Result;
use crate::manifest::{self, Database, Manifest};
use crate::report::Report;
use crate::settings::Settings;

/// What every command gets: the resolved settings and the reporter, and the approvals this run
/// obtained (so that a command run by another asks no second time: see `guard`).
pub struct Ctx {
    pub settings: Settings,
    pub report: Report,
    admissions: std::sync::Mutex<Vec<crate::guard::Admission>>,
}

impl Ctx {
    pub fn new(settings: Settings, report: Report) -> Ctx {
        Ctx {
            settings,
            report,
            admissions: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Remembers an approval obtained by this run.
    pub fn remember(&self, a: crate::guard::Admission) {
        self.admissions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(a);
    }

    /// The approvals obtained so far by this run.
    pub fn admissions(&self) -> Vec<crate::guard::Admission> {
        self.admissions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads and validates the manifest (`--manifest`, else `deploy.yml`), then registers its
    /// secrets before any command can print or relay anything: the password of every
    /// environment's `database.url_env` URL that is set and the value of every `secrets:` variable,
    /// whichever environment and stage runs
    /// (`exec -- sh -c 'echo $STAGING_DATABASE_URL'` must not show it either). The one way commands
    /// load the manifest.
    pub fn load_manifest(&self) -> Result<Manifest> {
        let m = manifest::load_file(&self.settings.manifest_path)?;
        for env in m.environments.values() {
            if let Some(Database::UrlEnv { var, .. }) = &env.database
                && let Some(url) = env_vars::get(var)
            {
                self.report.add_url_password(&url);
            }
        }
        // `secrets:` values, whichever environment and stage runs.
        for var in m.secret_vars() {
            if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty())
                && !m.environments.values().any(
                    |e| matches!(&e.database, Some(Database::UrlEnv { var: v, .. }) if v == var),
                )
            {
                self.report.add_secret(&value);
            }
        }
        Ok(m)
    }
}

/// Prints the completion script. A closed stdout (`completions bash | head -3`) is a clean exit, as
/// for every other command; clap_complete would panic writing to it, so the script is generated
/// into memory first.
fn completions(shell: clap_complete::Shell, ctx: &Ctx) -> Result<()> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "deploy-action", &mut script);
    match ctx.report.raw_stdout(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(
            crate::error::Error::StageFailed(format!("cannot write the completion script: {e}")),
        ),
        _ => Ok(()),
    }
}

pub fn execute(command: Command, ctx: &Ctx) -> Result<()> {
    match command {
        Command::Schema => {
            ctx.report
                .info(&crate::manifest::schema::json_schema_text());
            Ok(())
        }
        Command::Check => check::run(ctx),
        Command::Completions { shell } => completions(shell, ctx),
        Command::Migrate(args) => migrate::run(args, ctx),
        Command::Status => status::run(ctx),
        Command::Promote { from, to } => promote::run(from.as_deref(), to.as_deref(), ctx),
        Command::Rollback { to } => rollback::run(to.as_deref(), ctx),
        Command::Up(args) => up::run(&args, ctx),
        Command::Lock(args) => lock::run(args.action, ctx),
        Command::Plan => plan::run(ctx),
        Command::Build(args) => build::run(ctx, &args),
        Command::Test(args) => test::run(ctx, &args),
        Command::Exec(args) => exec::run(ctx, &args),
        Command::Pages(args) => release::pages(&args, ctx),
    }
}
