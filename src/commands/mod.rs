//! Glue, one short file per subcommand: settings → plan → executor → report.

pub mod build;
pub mod check;
pub mod exec;
pub mod lock;
pub mod migrate;
pub mod pages;
pub mod plan;
pub mod promote;
pub mod rollback;
pub mod status;
pub mod test;
pub mod units;
pub mod up;

use crate::cli::Command;
use crate::context::Ctx;
use crate::error::Result;

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
        Command::Pages(args) => pages::run(&args, ctx),
    }
}
