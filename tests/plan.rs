//! `plan`: the exact commands per unit and host, the `--json` document, environment selection.

use crate::changes::{MANIFEST, shop};
use crate::harness::Project;

/// The line of `unit`'s plan whose stage and host columns are `stage` and `host` and whose text
/// contains `needle`; panics showing the whole plan when there is none.
#[track_caller]
fn step_line<'a>(stdout: &'a str, stage: &str, host: &str, needle: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            let mut cols = l.split_whitespace();
            cols.next() == Some(stage) && cols.next() == Some(host) && l.contains(needle)
        })
        .unwrap_or_else(|| panic!("no `{stage} {host} …{needle}…` line in:\n{stdout}"))
}

#[test]
fn plan_shows_exact_commands_and_hosts() {
    let p = shop();
    let head = p.git_cmd(&["rev-parse", "HEAD"]).trim().to_string();
    let out = p.run(&["plan", "--env", "staging", "--all"]).go();
    out.status(0)
        .stdout_has("==> plan (staging)")
        .stdout_has("api (service)")
        .stdout_has("web (site)")
        .stdout_has("migrations (migrations)");
    let o = &out.stdout;
    step_line(o, "build", "local", "sh -c 'echo building api > api.built'");
    step_line(o, "test", "local", "sh -c 'echo testing api'");
    step_line(
        o,
        "build",
        "local",
        &format!(
            "docker build -t shop/worker:{head} -f services/worker/Dockerfile services/worker"
        ),
    );
    step_line(o, "build", "local", "sh -c 'echo building web'");
    // up runs on every host of the environment, restarting only the services, with the image
    // built at this commit pinned by the override file (and shipped to the host that is not
    // local); the hosts are locked first.
    for host in ["local", "deploy@staging.example.com:22"] {
        step_line(
            o,
            "up",
            host,
            "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml -f .deploy-action/override.yml up -d --no-deps api worker",
        );
        step_line(
            o,
            "up",
            host,
            "take the staging lock: mkdir /srv/shop/.deploy-action/lock",
        );
        step_line(o, "up", host, "health gate: api running");
    }
    step_line(
        o,
        "up",
        "deploy@staging.example.com:22",
        &format!("ship shop/worker:{head} unless the host has the same image id"),
    );
    // Every stage says what it would do: the site is built and uploaded by `pages`, and `migrate`
    // says that this environment has no database to migrate.
    step_line(o, "pages", "local", "sh -c 'echo building web'");
    step_line(
        o,
        "pages",
        "local",
        "walk and hash clients/web/dist as wrangler does",
    );
    step_line(
        o,
        "pages",
        "local",
        "Cloudflare: create the deployment of shop-web from the manifest and the special files: production on branch main",
    );
    step_line(
        o,
        "migrate",
        "local",
        "apply pending migrations/*.sql (postgres) to no database: environment `staging` has no `database:`",
    );
    assert!(!o.contains("nothing to do"), "{o}");
}

/// A manifest whose production is guarded and reaches its database through compose on its host,
/// while staging reads a URL variable.
const GUARDED: &str = r#"version: 1
project: shop
environments:
  staging:
    hosts: ["local"]
    dir: /srv/shop
    database: { url_env: STAGING_DATABASE_URL }
  production:
    hosts: ["ssh://deploy@prod-1.example.com", "ssh://deploy@prod-2.example.com:2222"]
    dir: /srv/shop
    approval: required
    approvers: [alice, bob]
    database: { compose_service: db, engine: postgres, user: app, name: shop }
sites:
  web:
    project: shop-web
    dir: clients/web/dist
    paths: ["clients/web/**"]
    production_branch: release
migrations:
  dir: db/migrations
  engine: postgres
  paths: ["db/migrations/**"]
"#;

fn guarded() -> Project {
    let p = Project::git();
    p.manifest(GUARDED)
        .file("clients/web/index.html", "<p>hi</p>\n")
        .file("db/migrations/0001_init.sql", "create table t (id int);\n");
    p.commit("shop");
    p
}

#[test]
fn plan_shows_the_migrate_gate_backup_and_database_and_the_pages_upload() {
    let p = guarded();
    let out = p
        .run(&["plan", "--env", "production", "--all"])
        .env("STAGING_DATABASE_URL", "postgres://app:Plan-Pw-123@db/app")
        .go();
    out.status(0).nowhere("Plan-Pw-123");
    let o = &out.stdout;
    // A site without a build command is only walked and uploaded, after the environment's
    // approval; the production branch is the manifest's.
    step_line(
        o,
        "pages",
        "local",
        "approval for production by alice or bob of every file and its hash, before the first request to Cloudflare",
    );
    step_line(
        o,
        "pages",
        "local",
        "Cloudflare: upload to shop-web the files check-missing found missing (decided at run time",
    );
    step_line(
        o,
        "pages",
        "local",
        "Cloudflare: create the deployment of shop-web from the manifest and the special files: production on branch release, a preview on any other branch",
    );
    assert!(
        !o.lines()
            .any(|l| l.trim_start().starts_with("pages ") && l.contains("sh -c")),
        "no build: {o}"
    );
    // The gate runs here, before anything is written; the backup and the migration run where the
    // database is: the compose service on the environment's first host.
    step_line(
        o,
        "migrate",
        "local",
        "approval for production by alice or bob of the pending SQL and its hash",
    );
    step_line(
        o,
        "migrate",
        "deploy@prod-1.example.com:22",
        "back up database `shop` (user app) in compose service `db` on deploy@prod-1.example.com:22 into .deploy-action/backups/production/ and verify it",
    );
    step_line(
        o,
        "migrate",
        "deploy@prod-1.example.com:22",
        "apply pending db/migrations/*.sql (postgres) to database `shop` (user app) in compose service `db`",
    );
    // The steps `migrate` runs, in order: the same as a run's, with the pending files (known once
    // the database is read) as one step.
    let lines: Vec<&str> = o
        .lines()
        .filter(|l| l.trim_start().starts_with("migrate "))
        .collect();
    let expected = [
        "approval",
        "take the migration lock",
        "back up",
        "create the tracking table",
        "apply pending",
        "record the release of production",
        "release the migration lock",
    ];
    assert_eq!(lines.len(), expected.len(), "{o}");
    for (line, what) in lines.iter().zip(expected) {
        assert!(line.contains(what), "`{what}` expected in `{line}`: {o}");
    }
    // Nothing was written: no backup directory, no tracking, git untouched.
    assert!(!p.path().join(".deploy-action").exists());
    assert_eq!(p.git_cmd(&["status", "--porcelain"]), "");
}

#[test]
fn plan_json_carries_the_pages_and_migrate_steps() {
    let p = guarded();
    let out = p.run(&["plan", "--env", "staging", "--all", "--json"]).go();
    out.status(0);
    let doc = out.json();
    assert_eq!(doc["affected"], serde_json::json!(["web", "migrations"]));
    let steps = doc["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    // staging: no approval, `backup: auto` → the deploy rules and no backup.
    assert_eq!(
        ids,
        [
            "pages:rules",
            "pages:web:walk",
            "pages:git",
            "pages:start",
            "pages:web:check-missing",
            "pages:web:upload",
            "pages:web:upsert-hashes",
            "pages:web:deploy",
            "pages:web:wait",
            "pages:record",
            "migrate:migrations:gate",
            "migrate:migrations:lock",
            "migrate:migrations:table",
            "migrate:migrations:apply",
            "migrate:migrations:release",
            "migrate:migrations:unlock",
        ]
    );
    assert_eq!(
        steps[0]["action"],
        serde_json::json!({"kind": "pages", "op": "rules", "environment": "staging"})
    );
    assert_eq!(
        steps[1]["action"],
        serde_json::json!({"kind": "pages", "op": "walk", "dir": "clients/web/dist"})
    );
    assert_eq!(
        steps[7]["action"],
        serde_json::json!({"kind": "pages", "op": "deploy", "project": "shop-web",
            "production_branch": "release"})
    );
    assert_eq!(
        steps[10]["action"],
        serde_json::json!({"kind": "migration", "step": "rules", "environment": "staging"})
    );
    assert_eq!(steps[13]["stage"], "migrate");
    assert_eq!(steps[13]["unit"], "migrations");
    assert_eq!(steps[13]["target"], "local");
    assert_eq!(steps[13]["guard"]["when"], "outstanding");
    assert_eq!(
        steps[13]["action"],
        serde_json::json!({"kind": "migrate", "dir": "db/migrations", "engine": "postgres",
            "database": {"kind": "url_env", "var": "STAGING_DATABASE_URL"}})
    );
}

#[test]
fn plan_json_is_one_object_with_affected_and_steps() {
    let p = shop();
    p.file("services/api/main.rs", "changed\n");
    p.commit("api");
    let out = p.run(&["plan", "--env", "staging", "--json"]).go();
    out.status(0);
    let doc = out.json();
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in ["affected", "base", "head", "env", "steps"] {
        assert!(keys.contains(&k), "missing {k}: {keys:?}");
    }
    assert_eq!(doc["env"], "staging");
    assert_eq!(doc["affected"], serde_json::json!(["api"]));
    let steps = doc["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            "build:api",
            "test:api",
            "up:lock@local",
            "up:lock@deploy@staging.example.com:22",
            "up:files@local",
            // api's image is not built by `docker build` here: it comes from a registry.
            "up:pull@local",
            "up:record@local",
            "up:compose-up@local",
            "up:gate@local",
            "up:rollback@local",
            "up:finish@local",
            "up:files@deploy@staging.example.com:22",
            "up:pull@deploy@staging.example.com:22",
            "up:record@deploy@staging.example.com:22",
            "up:compose-up@deploy@staging.example.com:22",
            "up:gate@deploy@staging.example.com:22",
            "up:rollback@deploy@staging.example.com:22",
            "up:finish@deploy@staging.example.com:22",
        ]
    );
    assert_eq!(steps[0]["stage"], "build");
    assert_eq!(steps[0]["unit"], "api");
    assert_eq!(steps[0]["target"], "local");
    assert_eq!(steps[0]["action"]["kind"], "run");
    assert_eq!(
        steps[0]["action"]["cmd"],
        "sh -c 'echo building api > api.built'"
    );
    assert_eq!(
        steps[11]["target"]["host"],
        "ssh://deploy@staging.example.com:22"
    );
    assert_eq!(steps[4]["action"]["kind"], "compose");
    assert_eq!(steps[4]["action"]["op"], "files");
    // The rollback branch runs only when the gate fails.
    assert_eq!(steps[9]["guard"]["when"], "gate_failed");
    // Human text never pollutes stdout in --json mode.
    assert!(out.stdout.trim_start().starts_with('{') && out.stdout.trim_end().ends_with('}'));
}

#[test]
fn plan_has_no_side_effects() {
    let p = shop();
    p.run(&["plan", "--env", "staging", "--all"]).go().status(0);
    assert!(!p.path().join("api.built").exists());
    assert_eq!(p.git_cmd(&["status", "--porcelain"]), "");
}

#[test]
fn an_unknown_environment_is_exit_2_with_a_suggestion() {
    let p = shop();
    p.run(&["plan", "--env", "stagin"])
        .go()
        .status(2)
        .stderr_has("unknown environment `stagin`")
        .stderr_has("did you mean `staging`?");
    p.run(&["plan"])
        .go()
        .status(2)
        .stderr_has("this command needs --env ENV")
        .stderr_has("staging");
}

#[test]
fn a_build_only_manifest_plans_without_an_environment() {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: tools
services:
  cli:
    paths: ["cli/**"]
    build: { command: "make cli" }
    test: "make test"
"#,
    )
    .file("cli/main.c", "int main(){}\n");
    p.commit("tools");
    let out = p.run(&["plan", "--json"]).go();
    out.status(0);
    let doc = out.json();
    assert_eq!(doc["env"], serde_json::Value::Null);
    assert_eq!(doc["affected"], serde_json::json!(["cli"]));
    assert_eq!(doc["steps"].as_array().unwrap().len(), 2);
}

#[test]
fn the_manifest_option_sets_the_repository_root() {
    let p = Project::git();
    p.file("deploy/deploy.yml", MANIFEST)
        .file("deploy/services/api/x.rs", "\n")
        .file("services/api/outside.rs", "\n");
    p.commit("nested");
    p.file("deploy/services/api/x.rs", "changed\n");
    p.commit("change inside");
    let out = p
        .run(&[
            "plan",
            "--env",
            "staging",
            "--json",
            "--manifest",
            "deploy/deploy.yml",
        ])
        .go();
    out.status(0);
    let doc = out.json();
    assert_eq!(doc["affected"], serde_json::json!(["api"]));
    assert_eq!(
        doc["steps"][0]["action"]["cmd"],
        "cd deploy && sh -c 'echo building api > api.built'"
    );
    // A change outside the manifest's directory is not seen.
    p.file("services/api/outside.rs", "changed\n");
    p.commit("change outside");
    let out = p
        .run(&[
            "plan",
            "--env",
            "staging",
            "--json",
            "--manifest",
            "deploy/deploy.yml",
        ])
        .go();
    assert_eq!(out.json()["affected"], serde_json::json!([]));
}

/// Two environments on this machine (no services to deploy): production is promoted from
/// staging; qa has no `promote_from`. No release is recorded anywhere yet.
fn two_local_environments() -> (Project, tempfile::TempDir) {
    let p = Project::git();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {d}/stg\n  production:\n    hosts: [\"local\"]\n    dir: {d}/prd\n    promote_from: staging\n  qa:\n    hosts: [\"local\"]\n    dir: {d}/qa\nservices:\n  web: {{}}\n"
    ));
    p.file("compose.yml", "services:\n  web:\n    image: nginx\n");
    p.commit("two environments");
    (p, dir)
}

/// `plan --promote` and `plan --rollback` stop where the commands stop, with their exit code
/// and message: nothing to promote or roll back (exit 1), a release `--to` cannot name or a
/// target without `promote_from` (exit 2). They write nothing.
#[test]
fn r11_plan_promote_and_rollback_stop_where_the_commands_stop() {
    let (p, dir) = two_local_environments();
    let same = |plan: &[&str], cmd: &[&str], code: i32, msg: &str| {
        let a = p.run(plan).go();
        a.status(code).stderr_has(msg);
        p.run(cmd).go().status(code).stderr_has(msg);
    };
    same(
        &["plan", "--env", "production", "--promote"],
        &["promote", "--to", "production"],
        1,
        "nothing to promote: environment `staging` has no successful (live) release",
    );
    same(
        &["plan", "--env", "production", "--rollback"],
        &["rollback", "--env", "production"],
        1,
        "environment `production` has no live release",
    );
    same(
        &["plan", "--env", "production", "--rollback", "not a release"],
        &["rollback", "--env", "production", "--to", "not a release"],
        2,
        "not a release",
    );
    p.run(&["plan", "--env", "qa", "--promote"])
        .go()
        .status(2)
        .stderr_has("promote to `qa` needs a source environment")
        .stderr_has("set `promote_from:` on environment `qa`");
    p.run(&["plan", "--env", "qa", "--promote", "--rollback"])
        .go()
        .status(2)
        .stderr_has("cannot be used with");
    let written: Vec<_> = walk(dir.path());
    assert!(written.is_empty(), "plan wrote {written:?}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
