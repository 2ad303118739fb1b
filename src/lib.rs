//! deploy-action: deploy a monorepo stage by stage from one binary.
//!
//! Commands are data. The layers, from pure to effectful:
//!
//! ```text
//! manifest → changes → plan → steps → executor → report
//! (pure)     (git)     (pure)          (exec/)    (report/)
//! ```
//!
//! - `manifest/`, `diag/`, `cmd/`, `plan/`, `state/`, `migrate/` and `changes.rs` are pure: no
//!   processes, no network, no terminal, no clock. `settings.rs` resolves the command line (no clap
//!   type gets past it).
//! - `exec/` is the only layer that starts processes or opens SSH sessions (`exec::connect` reaches
//!   a manifest host; `changes/git.rs` reads git through it); `api/` the only one that talks HTTP;
//!   `db/` the only one that opens database connections.
//! - `report/` is the only layer that prints.
//! - Above them the run: `context.rs` (settings, report, the run's approvals), `guard/` and
//!   `approval.rs`, `ledger/` (releases, the environment lock, publishing a release), `deploy/`
//!   (the runners: compose services, Pages sites, migrations).
//! - `commands/` glues them, one short file per subcommand; nothing else imports it, and no command
//!   file imports another. `tests/layers.rs` holds the table of allowed imports and checks it.

pub mod api;
pub mod approval;
pub mod cancel;
pub mod changes;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod commands;
pub mod context;
pub mod db;
pub mod deploy;
pub mod diag;
pub mod engine;
pub mod env_vars;
pub mod error;
pub mod exec;
pub mod exit;
pub mod guard;
pub mod ledger;
pub mod manifest;
pub mod migrate;
pub mod pages;
pub mod plan;
pub mod report;
pub mod settings;
pub mod state;

use clap::Parser;
use std::ffi::OsString;

/// Runs the tool with `args` (including the program name) and returns the exit code.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::Exit::Input.code()
            } else {
                exit::Exit::Success.code()
            };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.global.json;
    let (settings, command) = match settings::resolve(cli) {
        Ok(resolved) => resolved,
        Err(err) => return fail(&report::Report::from_env(json), &err),
    };
    let report = report::Report::from_env(settings.json);
    let ctx = context::Ctx::new(settings, report);
    match commands::execute(command, &ctx) {
        Ok(()) => exit::Exit::Success.code(),
        Err(err) => {
            ctx.report_error(&err);
            err.exit().code()
        }
    }
}

/// Reports `err` (with its `deploy.yml` location when it has one) and returns its exit code.
fn fail(report: &report::Report, err: &error::Error) -> u8 {
    context::report_error(report, err, None);
    err.exit().code()
}
