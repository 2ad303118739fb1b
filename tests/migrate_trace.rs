//! Issue 11, "the plan is the whole run", for `migrate`: `--dry-run` walks the very steps a real
//! run walks. Through the real binary with `--json` (whose `steps` are the steps walked: id,
//! walked, describe), against a real SQLite file and the real test PostgreSQL: a run that applies
//! two migrations, and one whose second migration fails (the third is then skipped by its guard,
//! and the release and the unlock still run). And a migration another run applied while this one
//! waited for the lock is skipped, not applied again.

use crate::harness::{Outcome, Project};
use crate::migrate::{Case, ScratchPg};
use deploy_action::db::{Bookkeeping, create_table_sql, pg_record_sql};
use deploy_action::manifest::Engine;
use serde_json::Value;
use std::time::Duration;

/// A project whose environment `dev` migrates the database in APP_DB (no approval, no backup).
fn project(engine: &str, files: &[(&str, &str)]) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: .\n    database: {{ url_env: APP_DB }}\nmigrations:\n  dir: migrations\n  engine: {engine}\n"
    ));
    for (name, sql) in files {
        p.file(&format!("migrations/{name}"), sql);
    }
    p.commit("migrations");
    p
}

/// `migrate --env dev --json` (plus `args`) with APP_DB set to `url`.
fn migrate(p: &Project, url: &str, args: &[&str]) -> Outcome {
    let mut all = vec!["migrate", "--env", "dev", "--json"];
    all.extend_from_slice(args);
    p.run(&all).env("APP_DB", url).go()
}

/// The `steps` of a `--json` document as (id, walked, describe).
fn steps(doc: &Value) -> Vec<(String, String, String)> {
    doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {doc:#}"))
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("id"), text("walked"), text("describe"))
        })
        .collect()
}

fn ids(steps: &[(String, String, String)]) -> Vec<&str> {
    steps.iter().map(|(id, _, _)| id.as_str()).collect()
}

/// How the step `id` was walked.
fn walked<'a>(steps: &'a [(String, String, String)], id: &str) -> &'a str {
    steps
        .iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, w, _)| w.as_str())
        .unwrap_or_else(|| panic!("no step {id} in {steps:#?}"))
}

const TWO: &[(&str, &str)] = &[
    (
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    ),
    ("0002_orders.sql", "CREATE TABLE orders (id INTEGER);\n"),
];

const SECOND_FAILS: &[(&str, &str)] = &[
    (
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    ),
    (
        "0002_bad.sql",
        "CREATE TABLE half (id INTEGER);\nINSERT INTO missing VALUES (1);\n",
    ),
    ("0003_after.sql", "CREATE TABLE after (id INTEGER);\n"),
];

/// The dry run's steps, then the real run's (exit `status`): the same ids and texts, in order.
fn dry_then_real(p: &Project, url: &str, status: i32) -> (Vec<(String, String, String)>, Value) {
    let dry = migrate(p, url, &["--dry-run"]);
    dry.status(0);
    let dry = steps(&dry.json());
    let real = migrate(p, url, &[]);
    real.status(status);
    let doc = real.json();
    let walked = steps(&doc);
    assert_eq!(
        ids(&dry),
        ids(&walked),
        "dry run {dry:#?}\nreal run {walked:#?}"
    );
    let texts = |s: &[(String, String, String)]| s.iter().map(|t| t.2.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&dry), texts(&walked));
    // A dry run cannot know results: the guarded steps are walked with their condition.
    assert_eq!(
        walked_of(&dry, "migrate:migrations:apply:0002"),
        "conditional"
    );
    assert_eq!(walked_of(&dry, "migrate:migrations:gate"), "performed");
    (walked, doc)
}

/// How the step whose id starts with `prefix` was walked.
fn walked_of<'a>(steps: &'a [(String, String, String)], prefix: &str) -> &'a str {
    let id = steps
        .iter()
        .find(|(i, _, _)| i.starts_with(prefix))
        .map(|(i, _, _)| i.as_str())
        .unwrap_or_else(|| panic!("no step {prefix}… in {steps:#?}"));
    walked(steps, id)
}

fn assert_two_applied(walked: &[(String, String, String)]) {
    assert_eq!(
        ids(walked),
        [
            "migrate:migrations:gate",
            "migrate:migrations:lock",
            "migrate:migrations:table",
            "migrate:migrations:apply:0001_users.sql",
            "migrate:migrations:apply:0002_orders.sql",
            "migrate:migrations:release",
            "migrate:migrations:unlock",
        ]
    );
    assert!(
        walked.iter().all(|(_, w, _)| w == "performed"),
        "{walked:#?}"
    );
}

fn assert_second_failed(walked: &[(String, String, String)], doc: &Value) {
    let expected = [
        ("migrate:migrations:gate", "performed"),
        ("migrate:migrations:lock", "performed"),
        ("migrate:migrations:table", "performed"),
        ("migrate:migrations:apply:0001_users.sql", "performed"),
        ("migrate:migrations:apply:0002_bad.sql", "performed"),
        ("migrate:migrations:apply:0003_after.sql", "skipped"),
        ("migrate:migrations:release", "performed"),
        ("migrate:migrations:unlock", "performed"),
    ];
    let got: Vec<(&str, &str)> = walked
        .iter()
        .map(|(i, w, _)| (i.as_str(), w.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["version"], "1");
    assert_eq!(doc["migrations"][1]["result"], "failed", "{doc:#}");
    assert_eq!(doc["migrations"][2]["result"], "not run", "{doc:#}");
}

fn sqlite_tables(p: &Project) -> Vec<String> {
    let path = p.path().join("app.db");
    if !path.exists() {
        return vec![];
    }
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn r11_sqlite_dry_run_walks_the_steps_a_run_applying_two_migrations_walks() {
    let p = project("sqlite", TWO);
    let dry = migrate(&p, "sqlite://app.db", &["--dry-run"]);
    dry.status(0);
    assert!(
        !p.path().join("app.db").exists(),
        "the dry run created the database"
    );
    let (walked, doc) = dry_then_real(&p, "sqlite://app.db", 0);
    assert_two_applied(&walked);
    assert_eq!(doc["result"], "ok");
    assert_eq!(
        sqlite_tables(&p),
        ["deploy_action_migrations", "orders", "users"]
    );
}

#[test]
fn r11_sqlite_dry_run_walks_the_steps_a_run_whose_second_migration_fails_walks() {
    let p = project("sqlite", SECOND_FAILS);
    let (walked, doc) = dry_then_real(&p, "sqlite://app.db", 1);
    assert_second_failed(&walked, &doc);
    assert_eq!(sqlite_tables(&p), ["deploy_action_migrations", "users"]);
}

#[test]
fn r11_postgres_dry_run_walks_the_steps_a_run_applying_two_migrations_walks() {
    let db = ScratchPg::new("trace2");
    let p = project("postgres", TWO);
    let tables = || {
        db.query_strings(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
    };
    migrate(&p, &db.url, &["--dry-run"]).status(0);
    assert!(tables().is_empty(), "the dry run created a table");
    let (walked, _) = dry_then_real(&p, &db.url, 0);
    assert_two_applied(&walked);
    assert_eq!(tables(), ["deploy_action_migrations", "orders", "users"]);
}

#[test]
fn r11_postgres_dry_run_walks_the_steps_a_run_whose_second_migration_fails_walks() {
    let db = ScratchPg::new("tracefail");
    let p = project("postgres", SECOND_FAILS);
    let (walked, doc) = dry_then_real(&p, &db.url, 1);
    assert_second_failed(&walked, &doc);
    assert_eq!(
        db.query_strings("SELECT version::text FROM deploy_action_migrations ORDER BY version"),
        ["1"]
    );
}

/// The plan of the waiting run held 0001 and 0002; another migrator applied 0001 while it waited
/// for the lock: under the lock 0001 is skipped by its guard and 0002 alone runs.
#[test]
fn r11_a_migration_another_run_applied_while_this_one_waited_is_skipped_not_run_again() {
    let db = ScratchPg::new("meanwhile");
    let c = std::sync::Arc::new(Case::new(&db.url, Engine::Postgres));
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id int);")
        .mig("0002_b.sql", "CREATE TABLE b (id int);");
    let mut holder = db.client();
    let key = deploy_action::db::postgres::lock_key();
    let got: bool = holder
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .unwrap()
        .get(0);
    assert!(got);
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || c.run_opts(|o| o.lock_wait = Duration::from_secs(120)))
    };
    // The waiter has planned and polls for the lock on its own session.
    let polling = || -> i64 {
        db.client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'deploy-action migrate (%) (lock)'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let mut rounds = 0;
    while polling() == 0 {
        rounds += 1;
        assert!(rounds < 1200, "the waiter never polled for the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another migrator, holding the lock, applies 0001 with its row.
    let book = Bookkeeping::Insert {
        version: 1,
        name: "a".into(),
        checksum: deploy_action::migrate::checksum("CREATE TABLE a (id int);"),
        applied_by: "other".into(),
        release: None,
    };
    holder
        .batch_execute(&format!(
            "{};\nBEGIN;\nCREATE TABLE a (id int);\n{}COMMIT;",
            create_table_sql(),
            pg_record_sql(&book)
        ))
        .unwrap();
    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .unwrap();
    let out = waiter.join().unwrap().unwrap();
    assert_eq!(out.applied, [2]);
    let walked: Vec<(&str, String)> = out
        .trace
        .0
        .iter()
        .map(|e| (e.id.as_str(), format!("{:?}", e.walked)))
        .collect();
    assert_eq!(
        walked,
        [
            ("migrate:migrations:gate", "Performed".to_string()),
            ("migrate:migrations:lock", "Performed".into()),
            ("migrate:migrations:table", "Performed".into()),
            ("migrate:migrations:apply:0001_a.sql", "Skipped".into()),
            ("migrate:migrations:apply:0002_b.sql", "Performed".into()),
            ("migrate:migrations:unlock", "Performed".into()),
        ]
    );
    assert_eq!(
        db.query_strings(
            "SELECT version || '=' || applied_by FROM deploy_action_migrations ORDER BY version"
        )[0],
        "1=other"
    );
    assert_eq!(
        db.query_strings("SELECT version::text FROM deploy_action_migrations ORDER BY version"),
        ["1", "2"]
    );
}
