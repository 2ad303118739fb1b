//! The `migrate` stage plan: what `migrate --env E` would do for the `migrations` unit, said
//! without touching the database. The approval gate (on `approval: required`), the verified backup
//! (per `backup:`), then applying the pending files of `migrations.dir`, one transaction each,
//! under a lock, on the database named by `database:` (a URL variable's name, never its value, or a
//! compose service on the environment's first host).
//!
//! Pure: no files read, no database opened. Which files are pending, and the plan hash the gate
//! shows, are decided at run time (`migrate --dry-run` prints them).

use super::stages::PlanInput;
use super::{Action, DbSource, Step, Target};
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

/// The migrate steps when the `migrations` unit is affected and an environment is named.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    let (Some(env), Some(migrations)) = (input.env, &input.manifest.migrations) else {
        return Vec::new();
    };
    if !input.affected.contains(MIGRATIONS_UNIT) {
        return Vec::new();
    }
    steps(env, migrations, input.root.as_deref())
}

fn steps(env: &Environment, m: &Migrations, root: Option<&str>) -> Vec<Step> {
    let (database, target) = db_source(env);
    let step = |id: &str, target: &Target, action: Action, why: String| Step {
        id: format!("migrate:{MIGRATIONS_UNIT}{id}"),
        stage: "migrate".into(),
        unit: Some(MIGRATIONS_UNIT.into()),
        target: target.clone(),
        action,
        why,
        guard: Default::default(),
        origin: Some(m.span),
    };
    let mut out = Vec::new();
    if env.approval == Approval::Required {
        // The gate runs where deploy-action runs (the runner, or a terminal), never on a host.
        out.push(step(
            ":approval",
            &Target::Local,
            Action::Approval {
                environment: env.name.clone(),
                plan_hash: None,
                approvers: env.approvers.clone(),
            },
            format!("environment `{}` has `approval: required`", env.name),
        ));
    }
    if wants_backup(env) && !matches!(database, DbSource::Missing { .. }) {
        out.push(step(
            ":backup",
            &target,
            Action::Backup {
                database: database.clone(),
                to: backup_dir(&env.name),
            },
            match env.backup {
                BackupPolicy::Always => "`backup: always`".into(),
                _ => {
                    "`approval: required` (with `backup: auto`) backs up before every change".into()
                }
            },
        ));
    }
    let dir = match root {
        Some(root) => format!("{}/{}", root.trim_end_matches('/'), m.dir),
        None => m.dir.clone(),
    };
    let why = match &database {
        DbSource::Missing { .. } => "`migrate` would stop with exit 2: add `database: { url_env: … }` or `{ compose_service: … }` to the environment".into(),
        _ => "the files not yet recorded in deploy_action_migrations; `migrate --dry-run` prints their SQL".into(),
    };
    out.push(step(
        "",
        &target,
        Action::Migrate {
            dir,
            engine: m.engine,
            database,
        },
        why,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::tests::affected;
    use crate::manifest::Engine;

    fn lines(env: &Environment) -> Vec<(String, String, String)> {
        let m = crate::changes::tests::sample();
        steps(env, m.migrations.as_ref().unwrap(), None)
            .iter()
            .map(|s| (s.id.clone(), s.target.label(), s.describe()))
            .collect()
    }

    #[test]
    fn a_url_database_migrates_from_here() {
        let m = crate::changes::tests::sample();
        let mut env = m.environments["staging"].clone();
        env.database = Some(Database::UrlEnv {
            var: "STAGING_DATABASE_URL".into(),
            span: Default::default(),
        });
        assert_eq!(
            lines(&env),
            [(
                "migrate:migrations".to_string(),
                "local".to_string(),
                "apply pending migrations/*.sql (postgres) to the database in $STAGING_DATABASE_URL: one transaction each, under a lock".to_string()
            )]
        );
    }

    #[test]
    fn a_guarded_environment_gets_the_gate_and_a_backup_first() {
        let m = crate::changes::tests::sample();
        let mut env = m.environments["staging"].clone();
        env.name = "production".into();
        env.approval = Approval::Required;
        env.approvers = vec!["alice".into(), "bob".into()];
        env.database = Some(Database::ComposeService {
            service: "db".into(),
            engine: Engine::Postgres,
            user: "app".into(),
            name: "shop".into(),
            span: Default::default(),
        });
        let got = lines(&env);
        let ids: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "migrate:migrations:approval",
                "migrate:migrations:backup",
                "migrate:migrations"
            ]
        );
        // The gate runs here; the compose database is reached on the environment's first host.
        let hosts: Vec<&str> = got.iter().map(|(_, h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["local", "local", "local"]);
        assert_eq!(
            got[0].2,
            "approval for production by alice or bob of the pending SQL and its hash, before anything is written (--yes never skips it)"
        );
        assert_eq!(
            got[1].2,
            "back up database `shop` (user app) in compose service `db` on local into .deploy-action/backups/production/ and verify it, before migrating"
        );
        // `backup: never` drops the backup, never the gate.
        env.backup = BackupPolicy::Never;
        let ids: Vec<String> = lines(&env).into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["migrate:migrations:approval", "migrate:migrations"]);
    }

    #[test]
    fn compose_database_on_an_ssh_host_and_json_shape() {
        let m = crate::changes::tests::sample();
        let mut env = m.environments["staging"].clone();
        env.hosts.reverse();
        env.backup = BackupPolicy::Always;
        env.database = Some(Database::ComposeService {
            service: "db".into(),
            engine: Engine::Postgres,
            user: "app".into(),
            name: "app".into(),
            span: Default::default(),
        });
        env.approval = Approval::Required;
        let s = steps(&env, m.migrations.as_ref().unwrap(), Some("sub"));
        let hosts: Vec<String> = s.iter().map(|s| s.target.label()).collect();
        assert_eq!(
            hosts,
            [
                "local",
                "deploy@staging.example.com:22",
                "deploy@staging.example.com:22"
            ]
        );
        let s = &s[1..];
        let v = serde_json::to_value(&s[1]).unwrap();
        assert_eq!(
            v["action"],
            serde_json::json!({
                "kind": "migrate", "dir": "sub/migrations", "engine": "postgres",
                "database": {"kind": "compose_service", "service": "db", "engine": "postgres",
                    "user": "app", "name": "app", "host": "ssh://deploy@staging.example.com:22"}
            })
        );
    }

    #[test]
    fn without_a_database_the_plan_says_migrate_would_stop() {
        let m = crate::changes::tests::sample();
        let env = &m.environments["staging"];
        let s = steps(env, m.migrations.as_ref().unwrap(), None);
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
