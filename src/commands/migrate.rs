//! `deploy-action migrate [status | down --to V]`: the command line resolved into
//! [`Options`], the migrations run by `deploy/migrate.rs`, and a run that changed the database
//! recorded as a release (`ledger/publish.rs`).
//!
//! Glue only.

use crate::cli::{MigrateAction, MigrateArgs};
use crate::context::Ctx;
use crate::deploy::migrate::{Mode, Options, run_with};
use crate::error::{Error, Result};
use crate::ledger::publish;
use std::path::{Path, PathBuf};

/// Entry point from the command line.
pub fn run(args: MigrateArgs, ctx: &Ctx) -> Result<()> {
    let manifest = ctx.load_manifest()?;
    let env = ctx.settings.environment(&manifest)?;
    let migrations = manifest.migrations.as_ref().ok_or_else(|| {
        Error::usage_help(
            "deploy.yml has no `migrations:` block",
            "add `migrations: { dir: migrations, engine: postgres }`",
        )
    })?;
    let dur = |flag: &str, v: &str| {
        crate::settings::parse_precise_duration(v).ok_or_else(|| {
            Error::usage_help(
                format!("{flag}: `{v}` is not a duration"),
                "write it like 500ms, 30s, 2m or 1h",
            )
        })
    };
    let root = ctx
        .settings
        .manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mode = match args.action {
        None => Mode::Up,
        Some(MigrateAction::Status) => Mode::Status,
        Some(MigrateAction::Down { to }) => Mode::Down { to },
    };
    if let (Some(v), false) = (args.target, mode == Mode::Up) {
        return Err(Error::usage(format!(
            "--target {v} applies migrations up to a version; it does not go with `migrate status` or `migrate down` (use `down --to`)"
        )));
    }
    let opts = Options {
        mode,
        dry_run: ctx.settings.dry_run,
        accept_changed: args.accept_changed,
        lock_wait: dur("--lock-wait", &args.lock_wait)?,
        backup_dir: args.backup_dir,
        keep_backups: usize::try_from(args.keep_backups).unwrap_or(usize::MAX),
        target: args.target,
        root,
        workdir: PathBuf::from("."),
    };
    let result = run_with(ctx, env, migrations, opts);
    publish::migrated(
        ctx,
        env,
        result.map(|o| publish::Migrated {
            applied: o.applied,
            reverted: o.reverted,
            version: o.version,
        }),
    )
}
