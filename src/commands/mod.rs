//! Glue, one short file per subcommand: settings → plan → executor → report. [`execute`]
//! dispatches on the resolved [`CommandSettings`]; `units.rs` is what the command files share
//! (none imports another).

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

use crate::context::Ctx;
use crate::error::Result;
use crate::settings::CommandSettings;

/// Prints the completion script. A closed stdout (`completions bash | head -3`) is a clean exit, as
/// for every other command (the script was generated into memory by `settings.rs`).
fn completions(script: &[u8], ctx: &Ctx) -> Result<()> {
    match ctx.report.raw_stdout(script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::error::Error::io(
            "cannot write the completion script",
            None,
            &e,
        )),
        _ => Ok(()),
    }
}

pub fn execute(command: CommandSettings, ctx: &Ctx) -> Result<()> {
    match command {
        CommandSettings::Schema => {
            ctx.report
                .info(&crate::manifest::schema::json_schema_text());
            Ok(())
        }
        CommandSettings::Check => check::run(ctx),
        CommandSettings::Completions(script) => completions(&script, ctx),
        CommandSettings::Migrate(s) => migrate::run(s, ctx),
        CommandSettings::Status => status::run(ctx),
        CommandSettings::Promote(s) => promote::run(s.from.as_deref(), s.to.as_deref(), ctx),
        CommandSettings::Rollback(s) => rollback::run(s.to.as_deref(), ctx),
        CommandSettings::Up(s) => up::run(&s, ctx),
        CommandSettings::Lock(action) => lock::run(action, ctx),
        CommandSettings::Plan(s) => plan::run(&s, ctx),
        CommandSettings::Build(s) => build::run(ctx, &s),
        CommandSettings::Test(s) => test::run(ctx, &s),
        CommandSettings::Exec(s) => exec::run(ctx, &s),
        CommandSettings::Pages(s) => pages::run(&s, ctx),
    }
}
