//! Glue, one short file per subcommand: settings → plan → executor → report.

use crate::cli::Command;
use crate::error::Result;
use crate::report::Report;
use crate::settings::Settings;

pub mod migrate;

/// What every command gets: the resolved settings and the reporter.
pub struct Ctx {
    pub settings: Settings,
    pub report: Report,
}

pub fn execute(command: Command, ctx: &Ctx) -> Result<()> {
    match command {
        Command::Schema => {
            ctx.report
                .info(&crate::manifest::schema::json_schema_text());
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "deploy-action", &mut std::io::stdout());
            Ok(())
        }
        Command::Migrate(args) => migrate::run(args, ctx),
        Command::Plan | Command::Build(_) | Command::Test(_) | Command::Exec(_) => Err(
            crate::error::Error::usage("this subcommand lands with the foundation work"),
        ),
    }
}
