//! The `migrate` plan: the whole run as steps, in order. The gate (the deploy rules; on
//! `approval: required` the approval of exactly this SQL), the lock (the tracking table read again
//! under it), the verified backup (per `backup:`), the tracking table, the re-baselines
//! (`--accept-changed`), one step per migration file (applied, or for `down` reverted, in one
//! transaction with its tracking row), the release record, and the unlock.
//!
//! [`steps`] plans a run from what is pending ([`pending`], decided from the files and the rows
//! of the tracking table that `migrate` read first); `migrate` and `migrate --dry-run` walk those
//! steps (`engine::runner`). [`plan`] is what `plan --env E` shows without a database: the same
//! steps, with the pending files as one step. Guards say what depends on a result: a migration
//! after a failed one is not run, nor one another run applied while this one waited for the lock.
//!
//! Pure: no files read, no database opened.

pub mod action;
pub mod pending;

pub use action::MigrationAction;
pub use pending::{
    Direction, Goal, Pending, PlanError, file_text, pending, refuse_transaction_control,
};

use super::stages::PlanInput;
use super::{Action, DbSource, Guard, Step, Target};
use crate::manifest::{
    Approval, BackupPolicy, Database, Environment, Host, MIGRATIONS_UNIT, Migrations,
};

/// Where `migrate` keeps its backups of an environment, relative to the working directory.
pub fn backup_dir(env: &str) -> String {
    format!(".deploy-action/backups/{env}/")
}

/// True when a migration of `env` writes a verified backup first.
pub fn wants_backup(env: &Environment) -> bool {
    match env.backup {
        BackupPolicy::Always => true,
        BackupPolicy::Never => false,
        BackupPolicy::Auto => env.approval == Approval::Required,
    }
}

/// The database of `env` and where `migrate` reaches it from.
pub fn db_source(env: &Environment) -> (DbSource, Target) {
    match &env.database {
        Some(Database::UrlEnv { var, .. }) => {
            (DbSource::UrlEnv { var: var.clone() }, Target::Local)
        }
        Some(Database::ComposeService {
            service,
            engine,
            user,
            name,
            ..
        }) => {
            let host = env.hosts.first().cloned().unwrap_or(Host::Local);
            (
                DbSource::ComposeService {
                    service: service.clone(),
                    engine: *engine,
                    user: user.clone(),
                    name: name.clone(),
                    host: host.clone(),
                },
                Target::Host(host),
            )
        }
        None => (
            DbSource::Missing {
                environment: env.name.clone(),
            },
            Target::Local,
        ),
    }
}

/// What the steps of a run depend on besides what is pending.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub env: &'a Environment,
    pub migrations: &'a Migrations,
    /// The migrations directory as shown (`migrations`, `sub/migrations`).
    pub dir: String,
    /// Where the backup goes, as shown.
    pub backup_to: String,
    /// How long the lock is waited for, in milliseconds.
    pub lock_wait_ms: u64,
    /// The run records itself as a release (the `migrate` command; `promote` records its own).
    pub record: bool,
}

/// The id of a migrate step: `migrate:migrations:<part>`.
pub fn step_id(part: &str) -> String {
    format!("migrate:{MIGRATIONS_UNIT}:{part}")
}

/// The ids of the steps that change the database's migrations, in order: the re-baselines, then
/// one per file (`…:apply:<file>`, for `down` `…:revert:<file>`).
pub fn work_ids(pending: &Pending) -> Vec<String> {
    let verb = match pending.direction {
        Direction::Up => "apply",
        Direction::Down => "revert",
    };
    let rebaseline = pending
        .rebaseline
        .iter()
        .map(|(v, _)| step_id(&format!("rebaseline:{v}")));
    let files = pending
        .files
        .iter()
        .map(|(_, f)| step_id(&format!("{verb}:{}", f.file)));
    rebaseline.chain(files).collect()
}

/// The migrate steps `plan --env E` shows when the `migrations` unit is affected: the steps of a
/// run, with the pending files (unknown without reading the database) as one step.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    let (Some(env), Some(migrations)) = (input.env, &input.manifest.migrations) else {
        return Vec::new();
    };
    if !input.affected.contains(MIGRATIONS_UNIT) {
        return Vec::new();
    }
    let dir = match input.root.as_deref() {
        Some(root) => format!("{}/{}", root.trim_end_matches('/'), migrations.dir),
        None => migrations.dir.clone(),
    };
    outline(&Request {
        env,
        migrations,
        dir,
        backup_to: backup_dir(&env.name),
        lock_wait_ms: 60_000,
        record: true,
    })
}

/// The steps of a run that does what is `pending` (none when there is nothing to do).
pub fn steps(req: &Request, pending: &Pending) -> Vec<Step> {
    if pending.is_empty() {
        return Vec::new();
    }
    let (_, target) = db_source(req.env);
    let ids = work_ids(pending);
    let mut actions = Vec::new();
    for (version, checksum) in &pending.rebaseline {
        actions.push((
            MigrationAction::Rebaseline {
                version: *version,
                checksum: checksum.clone(),
            },
            format!(
                "--accept-changed {version}: its file was changed on purpose after it was applied"
            ),
        ));
    }
    for (m, f) in &pending.files {
        let why = match pending.direction {
            Direction::Up => "not yet in the tracking table",
            Direction::Down => "applied above the version `down --to` asks for",
        };
        actions.push((
            MigrationAction::Apply {
                direction: pending.direction,
                version: m.version,
                name: m.name.clone(),
                file: f.file.clone(),
                checksum: f.checksum.clone(),
                no_transaction: f.no_transaction,
                sql: f.sql.clone(),
            },
            why.to_string(),
        ));
    }
    let work = ids
        .iter()
        .zip(actions)
        .map(|(id, (action, why))| {
            let guard = outstanding(std::slice::from_ref(id));
            step(req, id, &target, Action::Migration(action), why, guard)
        })
        .collect();
    frame(req, Some(pending.hash()), work)
}

/// The steps without the database: the pending files as one step.
fn outline(req: &Request) -> Vec<Step> {
    let (database, target) = db_source(req.env);
    let missing = matches!(database, DbSource::Missing { .. });
    let why = if missing {
        "`migrate` would stop with exit 2: add `database: { url_env: … }` or `{ compose_service: … }` to the environment".into()
    } else {
        "the files not yet recorded in deploy_action_migrations; `migrate --dry-run` lists them with their SQL".into()
    };
    let id = step_id("apply");
    let apply = step(
        req,
        &id,
        &target,
        Action::Migrate {
            dir: req.dir.clone(),
            engine: req.migrations.engine,
            database,
        },
        why,
        outstanding(std::slice::from_ref(&id)),
    );
    if missing {
        return vec![apply];
    }
    frame(req, None, vec![apply])
}

/// Around the work: gate, lock, backup, table … release, unlock. `hash`: the plan's, when known.
fn frame(req: &Request, hash: Option<String>, work: Vec<Step>) -> Vec<Step> {
    let env = req.env;
    let (database, target) = db_source(env);
    let ids: Vec<String> = work.iter().map(|s| s.id.clone()).collect();
    let mut out = vec![gate(req, hash)];
    out.push(step(
        req,
        &step_id("lock"),
        &target,
        Action::Migration(MigrationAction::Lock {
            wait_ms: req.lock_wait_ms,
        }),
        "one migrator at a time; what another run applied while this one waited is not applied again".into(),
        Guard::Always,
    ));
    if wants_backup(env) {
        out.push(step(
            req,
            &step_id("backup"),
            &target,
            Action::Backup {
                database,
                to: req.backup_to.clone(),
            },
            match env.backup {
                BackupPolicy::Always => "`backup: always`".into(),
                _ => {
                    "`approval: required` (with `backup: auto`) backs up before every change".into()
                }
            },
            outstanding(&ids),
        ));
    }
    out.push(step(
        req,
        &step_id("table"),
        &target,
        Action::Migration(MigrationAction::Table),
        "each migration's row is written in the migration's own transaction".into(),
        outstanding(&ids),
    ));
    out.extend(work);
    if req.record {
        out.push(step(
            req,
            &step_id("release"),
            &Target::Local,
            Action::Migration(MigrationAction::Release {
                environment: env.name.clone(),
            }),
            "a run that changed the database is a release of the environment".into(),
            Guard::Always,
        ));
    }
    out.push(step(
        req,
        &step_id("unlock"),
        &target,
        Action::Migration(MigrationAction::Unlock),
        "always, after a failed migration too".into(),
        Guard::Always,
    ));
    out
}

/// The gate: the approval of this plan on `approval: required` (it runs where deploy-action
/// runs, never on a host), else the deploy rules.
fn gate(req: &Request, hash: Option<String>) -> Step {
    let env = req.env;
    let (action, why) = if env.approval == Approval::Required {
        (
            Action::Approval {
                environment: env.name.clone(),
                plan_hash: hash,
                approvers: env.approvers.clone(),
            },
            format!("environment `{}` has `approval: required`", env.name),
        )
    } else {
        (
            Action::Migration(MigrationAction::Rules {
                environment: env.name.clone(),
            }),
            "every change to an environment passes its deploy rules first".into(),
        )
    };
    step(
        req,
        &step_id("gate"),
        &Target::Local,
        action,
        why,
        Guard::Always,
    )
}

fn outstanding(ids: &[String]) -> Guard {
    Guard::Outstanding {
        steps: ids.to_vec(),
    }
}

fn step(
    req: &Request,
    id: &str,
    target: &Target,
    action: Action,
    why: String,
    guard: Guard,
) -> Step {
    Step {
        id: id.to_string(),
        stage: "migrate".into(),
        unit: Some(MIGRATIONS_UNIT.into()),
        target: target.clone(),
        action,
        why,
        guard,
        origin: Some(req.migrations.span),
    }
}

#[cfg(test)]
mod tests {
    use super::pending::tests::{files, row};
    use super::*;
    use crate::changes::tests::affected;
    use crate::manifest::Engine;

    fn request<'a>(env: &'a Environment, m: &'a Migrations) -> Request<'a> {
        Request {
            env,
            migrations: m,
            dir: m.dir.clone(),
            backup_to: backup_dir(&env.name),
            lock_wait_ms: 60_000,
            record: true,
        }
    }

    fn ids(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.id.clone()).collect()
    }

    fn url_env(name: &str) -> Environment {
        let m = crate::changes::tests::sample();
        let mut env = m.environments["staging"].clone();
        env.name = name.into();
        env.database = Some(Database::UrlEnv {
            var: "STAGING_DATABASE_URL".into(),
            span: Default::default(),
        });
        env
    }

    fn guarded() -> Environment {
        let mut env = url_env("production");
        env.approval = Approval::Required;
        env.approvers = vec!["alice".into(), "bob".into()];
        env.database = Some(Database::ComposeService {
            service: "db".into(),
            engine: Engine::Postgres,
            user: "app".into(),
            name: "shop".into(),
            span: Default::default(),
        });
        env
    }

    fn two() -> Vec<crate::migrate::Migration> {
        files(&[
            ("0001_a.sql", "CREATE TABLE a (id int);"),
            ("0002_b.sql", "CREATE TABLE b (id int);"),
        ])
    }

    #[test]
    fn a_run_is_gate_lock_table_one_step_per_file_release_unlock() {
        let m = crate::changes::tests::sample();
        let env = url_env("staging");
        let mig = m.migrations.as_ref().unwrap();
        let f = two();
        let p = pending(&Goal::Up { target: None }, &[], &f, &[], "migrations").unwrap();
        let s = steps(&request(&env, mig), &p);
        assert_eq!(
            ids(&s),
            [
                "migrate:migrations:gate",
                "migrate:migrations:lock",
                "migrate:migrations:table",
                "migrate:migrations:apply:0001_a.sql",
                "migrate:migrations:apply:0002_b.sql",
                "migrate:migrations:release",
                "migrate:migrations:unlock",
            ]
        );
        assert_eq!(
            s[3].describe(),
            "apply 0001_a.sql and record version 1, in one transaction"
        );
        assert_eq!(
            s[0].describe(),
            "check the deploy rules of staging (`branches:`, no uncommitted changes unless --allow-dirty)"
        );
        // Each file runs only if still to do; the table if anything is; release and unlock always.
        assert_eq!(
            s[4].guard,
            Guard::Outstanding {
                steps: vec!["migrate:migrations:apply:0002_b.sql".into()]
            }
        );
        assert_eq!(
            s[2].guard,
            Guard::Outstanding {
                steps: ids(&s[3..5])
            }
        );
        assert!(s[5].guard.is_always() && s[6].guard.is_always());
        // The SQL travels with the step (what runs is what was read and approved).
        let Action::Migration(apply) = &s[3].action else {
            panic!("a migration step")
        };
        assert_eq!(
            apply.sql_file().map(|f| f.sql).as_deref(),
            Some("CREATE TABLE a (id int);")
        );
        // Without a release record (promote records its own), and with nothing to do: no steps.
        let mut req = request(&env, mig);
        req.record = false;
        assert!(!ids(&steps(&req, &p)).contains(&"migrate:migrations:release".to_string()));
        let rows: Vec<_> = f.iter().map(|m| row(m, None)).collect();
        let none = pending(&Goal::Up { target: None }, &[], &f, &rows, "m").unwrap();
        assert!(steps(&req, &none).is_empty());
    }

    #[test]
    fn a_guarded_environment_gets_the_approval_of_the_plan_hash_and_a_backup() {
        let m = crate::changes::tests::sample();
        let env = guarded();
        let mig = m.migrations.as_ref().unwrap();
        let f = two();
        let rows = [row(&f[0], Some("old"))];
        let p = pending(&Goal::Up { target: None }, &[1], &f, &rows, "m").unwrap();
        let s = steps(&request(&env, mig), &p);
        assert_eq!(
            ids(&s),
            [
                "migrate:migrations:gate",
                "migrate:migrations:lock",
                "migrate:migrations:backup",
                "migrate:migrations:table",
                "migrate:migrations:rebaseline:1",
                "migrate:migrations:apply:0002_b.sql",
                "migrate:migrations:release",
                "migrate:migrations:unlock",
            ]
        );
        assert_eq!(
            s[0].describe(),
            format!(
                "approval for production by alice or bob (plan {})",
                p.hash()
            )
        );
        assert_eq!(s[0].target, Target::Local);
        assert_eq!(s[2].target.label(), "local", "the compose database's host");
        assert!(
            s[4].describe()
                .starts_with("re-baseline the recorded checksum of version 1 to ")
        );
    }

    #[test]
    fn down_reverts_with_the_down_files() {
        let m = crate::changes::tests::sample();
        let env = url_env("staging");
        let mig = m.migrations.as_ref().unwrap();
        let f = files(&[
            ("0001_a.sql", "CREATE TABLE a (id int);"),
            ("0001_a.down.sql", "DROP TABLE a;"),
            ("0002_b.sql", "-- deploy-action: no-transaction\nVACUUM;"),
            (
                "0002_b.down.sql",
                "-- deploy-action: no-transaction\nVACUUM;",
            ),
        ]);
        let rows: Vec<_> = f.iter().map(|m| row(m, None)).collect();
        let p = pending(&Goal::Down { to: 0 }, &[], &f, &rows, "m").unwrap();
        let s = steps(&request(&env, mig), &p);
        let lines: Vec<String> = s[3..5].iter().map(Step::describe).collect();
        assert_eq!(
            lines,
            [
                "revert with 0002_b.down.sql without a transaction (statement by statement), then delete the row of version 2",
                "revert with 0001_a.down.sql and delete the row of version 1, in one transaction",
            ]
        );
        assert_eq!(s[3].id, "migrate:migrations:revert:0002_b.down.sql");
    }

    #[test]
    fn plan_shows_the_same_steps_with_the_pending_files_as_one() {
        let m = crate::changes::tests::sample();
        let env = guarded();
        let mig = m.migrations.as_ref().unwrap();
        let s = outline(&request(&env, mig));
        assert_eq!(
            ids(&s),
            [
                "migrate:migrations:gate",
                "migrate:migrations:lock",
                "migrate:migrations:backup",
                "migrate:migrations:table",
                "migrate:migrations:apply",
                "migrate:migrations:release",
                "migrate:migrations:unlock",
            ]
        );
        assert_eq!(
            s[0].describe(),
            "approval for production by alice or bob of the pending SQL and its hash, before anything is written (--yes never skips it)"
        );
        assert_eq!(
            s[2].describe(),
            "back up database `shop` (user app) in compose service `db` on local into .deploy-action/backups/production/ and verify it, before migrating"
        );
        // The run's steps share every id but the per-file ones.
        let f = two();
        let p = pending(&Goal::Up { target: None }, &[], &f, &[], "m").unwrap();
        let run = ids(&steps(&request(&env, mig), &p));
        let shared: Vec<&String> = run.iter().filter(|i| !i.contains(".sql")).collect();
        let outline_ids = ids(&s);
        let fixed: Vec<&String> = outline_ids
            .iter()
            .filter(|i| *i != "migrate:migrations:apply")
            .collect();
        assert_eq!(shared, fixed);
        // `backup: never` drops the backup, never the gate.
        let mut env = env;
        env.backup = BackupPolicy::Never;
        assert!(!ids(&outline(&request(&env, mig))).contains(&"migrate:migrations:backup".into()));
    }

    #[test]
    fn compose_database_on_an_ssh_host_and_json_shape() {
        let m = crate::changes::tests::sample();
        let mut env = guarded();
        env.hosts = m.environments["staging"].hosts.clone();
        env.hosts.reverse();
        let mig = m.migrations.as_ref().unwrap();
        let mut req = request(&env, mig);
        req.dir = "sub/migrations".into();
        let s = outline(&req);
        let hosts: Vec<String> = s.iter().map(|s| s.target.label()).collect();
        let ssh = "deploy@staging.example.com:22";
        assert_eq!(hosts, ["local", ssh, ssh, ssh, ssh, "local", ssh]);
        let v = serde_json::to_value(&s[4]).unwrap();
        assert_eq!(
            v["action"],
            serde_json::json!({
                "kind": "migrate", "dir": "sub/migrations", "engine": "postgres",
                "database": {"kind": "compose_service", "service": "db", "engine": "postgres",
                    "user": "app", "name": "shop", "host": "ssh://deploy@staging.example.com:22"}
            })
        );
        assert_eq!(
            serde_json::to_value(&s[1]).unwrap()["action"],
            serde_json::json!({"kind": "migration", "step": "lock", "wait_ms": 60000})
        );
        assert_eq!(
            serde_json::to_value(&s[3]).unwrap()["action"],
            serde_json::json!({"kind": "migration", "step": "table"})
        );
        assert_eq!(
            serde_json::to_value(&s[3]).unwrap()["guard"]["when"],
            "outstanding"
        );
        let f = two();
        let p = pending(&Goal::Up { target: None }, &[], &f, &[], "m").unwrap();
        let apply = serde_json::to_value(&steps(&req, &p)[4]).unwrap();
        assert_eq!(
            apply["action"],
            serde_json::json!({"kind": "migration", "step": "apply", "direction": "up",
                "version": 1, "name": "a", "file": "0001_a.sql",
                "checksum": f[0].up.checksum, "no_transaction": false}),
            "the SQL stays out of the JSON"
        );
    }

    #[test]
    fn without_a_database_the_plan_says_migrate_would_stop() {
        let m = crate::changes::tests::sample();
        let env = &m.environments["staging"];
        let s = outline(&request(env, m.migrations.as_ref().unwrap()));
        assert_eq!(s.len(), 1);
        assert!(s[0].why.contains("exit 2"), "{}", s[0].why);
        assert!(
            s[0].describe()
                .contains("no database: environment `staging` has no `database:`")
        );
    }

    #[test]
    fn only_when_migrations_are_affected_and_an_environment_is_named() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api"]);
        let input = PlanInput {
            manifest: &m,
            env: m.environments.get("staging"),
            affected: &a,
            root: None,
        };
        assert!(plan(&input).is_empty());
        let a = affected(&["migrations"]);
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: None,
        };
        assert!(plan(&input).is_empty());
    }
}
