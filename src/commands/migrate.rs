//! `deploy-action migrate [status | down --to V]`: the command line resolved into
//! [`Options`] and the migrations run by `deploy/migrate/` as a plan, whose release step records
//! a run that changed the database as a release (`Options::record`, through `ledger/publish.rs`).
//!
//! Glue only.

use crate::context::Ctx;
use crate::deploy::migrate::{Mode, Options, run_with};
use crate::error::{Error, Result};
use crate::settings::{MigrateAction, MigrateSettings};
use std::path::{Path, PathBuf};

/// Entry point from the command line.
pub fn run(args: MigrateSettings, ctx: &Ctx) -> Result<()> {
    let manifest = ctx.load_manifest()?;
    let env = ctx.settings.environment(&manifest)?;
    let migrations = manifest.migrations.as_ref().ok_or_else(|| {
        Error::usage_help(
            "deploy.yml has no `migrations:` block",
            "add `migrations: { dir: migrations, engine: postgres }`",
        )
    })?;
    let root = ctx
        .settings
        .manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mode = match args.action {
        MigrateAction::Up => Mode::Up,
        MigrateAction::Status => Mode::Status,
        MigrateAction::Down { to } => Mode::Down { to },
    };
    let opts = Options {
        mode,
        dry_run: ctx.settings.dry_run,
        accept_changed: args.accept_changed,
        lock_wait: args.lock_wait,
        backup_dir: args.backup_dir,
        keep_backups: usize::try_from(args.keep_backups).unwrap_or(usize::MAX),
        target: args.target,
        root,
        workdir: PathBuf::from("."),
        record: true,
        document: true,
    };
    run_with(ctx, env, migrations, opts).map(|_| ())
}
