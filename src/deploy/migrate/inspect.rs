//! What `migrate` reads before it plans, in a real run and a dry run alike: the migration files
//! and a connection to the environment's database (whose tracking table the caller then reads).
//! Nothing here writes: a missing SQLite file is not created, a compose database is reached with
//! read-only `psql` calls until the lock is taken.
//!
//! Also the mapping of the database's and the planner's errors onto exit codes.

use crate::context::Ctx;
use crate::db::compose::{ComposeDatabase, ComposeTarget};
use crate::db::postgres::PgDatabase;
use crate::db::sqlite::SqliteDatabase;
use crate::db::{Database, DbError};
use crate::env_vars;
use crate::error::{Error, GateFailure, RemoteFailure, Result};
use crate::exec::{Executor, ExecutorOpener};
use crate::manifest::{Database as DbConfig, Engine, Environment, MIGRATIONS_UNIT, Migrations};
use crate::migrate::{self, Migration};
use crate::plan::migrate::PlanError;
use std::path::Path;
use std::time::Duration;

/// Reads `NNNN_name.sql` files from `dir` (exit 2 when missing or unreadable).
pub fn read_dir(dir: &Path) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage(format!(
            "cannot read the migrations directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| Error::usage(format!("{}: {e}", entry.path().display())))?;
        files.push((name, text));
    }
    migrate::collect(files)
        .map_err(|e| Error::usage(format!("{}/{}: {}", dir.display(), e.file, e.message)))
}

/// The executor for the environment's first host (compose mode), and how to open another one for
/// the lock session: child processes for `local`; for `ssh://` one authenticated session now
/// (strict host-key checking, notices to the report) and a second connection for the lock.
fn executor_for(ctx: &Ctx, env: &Environment) -> Result<(Box<dyn Executor>, ExecutorOpener)> {
    let Some(host) = env.hosts.first() else {
        return Err(Error::usage(format!(
            "environment `{}` has no hosts to reach its compose database on",
            env.name
        )));
    };
    let exec = crate::exec::connect(host, &|w: &str| ctx.report.warn(w))?;
    // The first connection already reported any notice (an accepted key, bad lines).
    let opener = crate::exec::opener(host);
    Ok((exec, opener))
}

/// Opens the environment's database. The password of a URL is registered as a secret first.
pub fn open_db<'e>(
    ctx: &Ctx,
    env: &Environment,
    migrations: &Migrations,
    root: &Path,
    lock_wait: Duration,
    exec: &'e mut Option<Box<dyn Executor>>,
) -> Result<Box<dyn Database + 'e>> {
    let Some(config) = &env.database else {
        return Err(Error::usage_help(
            format!("environment `{}` has no `database:`", env.name),
            "add `database: { url_env: DATABASE_URL }` or `database: { compose_service: db, engine: postgres, user: app, name: app }`",
        ));
    };
    match config {
        DbConfig::UrlEnv { var, .. } => open_url(ctx, env, var, migrations.engine, root, lock_wait),
        DbConfig::ComposeService {
            service,
            engine,
            user,
            name,
            ..
        } => {
            if *engine != Engine::Postgres {
                return Err(Error::usage(
                    "database.compose_service supports engine: postgres only",
                ));
            }
            let (main, opener) = executor_for(ctx, env)?;
            *exec = Some(main);
            let target = ComposeTarget {
                dir: env.dir.clone(),
                project: env.compose_project.clone(),
                files: env.compose_files.clone(),
                service: service.clone(),
                user: user.clone(),
                database: name.clone(),
            };
            let exec = exec.as_mut().expect("just set").as_mut();
            Ok(Box::new(ComposeDatabase::new(target, exec, opener)))
        }
    }
}

/// The database of a URL in `var`: `sqlite://` (relative to `root`) or `postgres://`.
fn open_url(
    ctx: &Ctx,
    env: &Environment,
    var: &str,
    engine: Engine,
    root: &Path,
    lock_wait: Duration,
) -> Result<Box<dyn Database + 'static>> {
    let url = env_vars::get(var).ok_or_else(|| {
        Error::usage(format!(
            "environment `{}`: the database URL variable {var} is not set",
            env.name
        ))
    })?;
    if let Some(pw) = crate::db::postgres::url_password(&url) {
        ctx.report.add_secret(&pw);
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if engine != Engine::Sqlite {
            return Err(Error::usage(format!(
                "{var} is a sqlite:// URL but migrations.engine is postgres"
            )));
        }
        let db = SqliteDatabase::open(&root.join(rest), rest, lock_wait).map_err(db_error)?;
        Ok(Box::new(db))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if engine != Engine::Postgres {
            return Err(Error::usage(format!(
                "{var} is a postgres:// URL but migrations.engine is sqlite"
            )));
        }
        let app = format!("deploy-action migrate ({})", env_vars::actor());
        Ok(Box::new(PgDatabase::connect(&url, &app).map_err(db_error)?))
    } else {
        Err(Error::usage(format!(
            "{var}: the database URL must start with postgres://, postgresql:// or sqlite://"
        )))
    }
}

/// A lock that stayed held is exit 4; anything else as [`db_error`].
pub fn lock_err(e: DbError) -> Error {
    match e {
        DbError::LockTimeout { .. } => Error::LockHeld(e.to_string()),
        other => db_error(other),
    }
}

/// Settings that cannot be used (a bad URL, sslmode, sslrootcert) are input errors (exit 2);
/// everything else a database says is a failed stage (exit 1).
pub fn db_error(e: DbError) -> Error {
    match e {
        DbError::Config(m) => Error::usage(m),
        other => db_failure("", &other).into(),
    }
}

/// What the database said while this run was doing `what` (empty: the message says it all).
pub fn db_failure(what: &str, e: &DbError) -> RemoteFailure {
    RemoteFailure::new(DATABASE, what, e.to_string()).unit(MIGRATIONS_UNIT)
}

/// The service name of the database in errors.
const DATABASE: &str = "the database";

/// The planner's refusals: bad input is exit 2, a run that cannot go on as asked exit 1.
pub fn plan_error(e: PlanError) -> Error {
    match e {
        PlanError::Input {
            message,
            help: Some(help),
        } => Error::usage_help(message, help),
        PlanError::Input {
            message,
            help: None,
        } => Error::usage(message),
        PlanError::Refused(message) => GateFailure::new(message).unit(MIGRATIONS_UNIT).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn refusals_and_database_errors_map_onto_exit_codes() {
        let input = plan_error(PlanError::Input {
            message: "m".into(),
            help: Some("h".into()),
        });
        assert_eq!(input.exit(), Exit::Input);
        assert_eq!(
            plan_error(PlanError::Refused("changed".into())).exit(),
            Exit::StageFailed
        );
        let held = lock_err(DbError::LockTimeout {
            waited: Duration::from_millis(300),
            holder: None,
        });
        assert_eq!(held.exit(), Exit::LockHeld);
        assert_eq!(
            db_error(DbError::Config("sslmode".into())).exit(),
            Exit::Input
        );
        let e = db_error(DbError::Connect("refused".into()));
        assert_eq!(e.exit(), Exit::StageFailed);
        assert!(
            matches!(&e, Error::Remote(r) if r.service == "the database"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "cannot connect to the database: refused");
        assert_eq!(e.unit(), Some(MIGRATIONS_UNIT));
    }

    #[test]
    fn a_missing_directory_is_an_input_error_naming_it() {
        let e = read_dir(Path::new("/nonexistent/migrations")).unwrap_err();
        assert_eq!(e.exit(), Exit::Input);
        assert!(e.to_string().contains("/nonexistent/migrations"), "{e}");
    }
}
