//! `migrate` against real PostgreSQL (scripts/test-env.sh) and SQLite: apply, no-op rerun, a failing
//! migration leaves nothing of itself, changed files refused, two concurrent migrators, CREATE INDEX
//! CONCURRENTLY with the marker, dry-run, down, backups restored and compared.
//!
//! These drive `deploy::migrate::run_with` with environments built in code; the gate's tests run
//! the real binary (see `migrate_gate.rs`).

use crate::harness::{Project, Run, services};
use deploy_action::context::Ctx;
use deploy_action::deploy::migrate::{MigrateOutcome, Mode, Options, run_with};
use deploy_action::diag::Span;
use deploy_action::error::Error;
use deploy_action::manifest::{
    Approval, BackupPolicy, Database, Engine, Environment, Host, Migrations,
};
use deploy_action::report::Report;
use deploy_action::settings::Settings;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch PostgreSQL database, dropped at the end.
pub struct ScratchPg {
    pub name: String,
    pub url: String,
    admin: String,
}

impl ScratchPg {
    pub fn new(tag: &str) -> ScratchPg {
        let admin = services::require_postgres();
        let name = format!(
            "da_mig_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect admin");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create scratch db");
        let url = replace_db(&admin, &name);
        ScratchPg { name, url, admin }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect scratch")
    }

    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        self.client()
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The URL with its database name replaced.
pub fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("url has a path");
    format!("{}/{db}{query}", &base[..cut])
}

/// A repository directory with a migrations dir.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let r = Repo {
            dir: tempfile::Builder::new()
                .prefix("da-mig-")
                .tempdir()
                .unwrap(),
        };
        std::fs::create_dir_all(r.dir.path().join("migrations")).unwrap();
        r
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn mig(&self, file: &str, sql: &str) -> &Self {
        std::fs::write(self.path().join("migrations").join(file), sql).unwrap();
        self
    }
}

fn environment(name: &str, var: &str, approval: Approval, backup: BackupPolicy) -> Environment {
    Environment {
        name: name.into(),
        span: Span::default(),
        hosts: vec![Host::Local],
        dir: "/tmp".into(),
        compose_files: vec![],
        compose_project: "p".into(),
        approval,
        approvers: vec![],
        database: Some(Database::UrlEnv {
            var: var.into(),
            span: Span::default(),
        }),
        url: None,
        promote_from: None,
        keep_releases: 5,
        backup,
        min_approvals: 1,
        allow_self_approval: false,
        branches: vec![],
        secrets: vec![],
    }
}

fn migrations(engine: Engine) -> Migrations {
    Migrations {
        span: Span::default(),
        dir: "migrations".into(),
        engine,
        paths: vec![],
    }
}

/// One migrate run against a database given by URL.
pub struct Case {
    pub repo: Repo,
    var: String,
    engine: Engine,
    pub backup: BackupPolicy,
    pub backup_dir: Option<PathBuf>,
}

impl Case {
    pub fn new(url: &str, engine: Engine) -> Case {
        let var = format!("DA_MIG_TEST_URL_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        // SAFETY: each test uses its own variable name; nothing reads it concurrently while it is set.
        unsafe { std::env::set_var(&var, url) };
        Case {
            repo: Repo::new(),
            var,
            engine,
            backup: BackupPolicy::Never,
            backup_dir: None,
        }
    }

    pub fn run(
        &self,
        mode: Mode,
        dry_run: bool,
        accept: &[u64],
        lock_wait: Duration,
    ) -> Result<MigrateOutcome, Error> {
        self.run_opts(|o| {
            o.mode = mode;
            o.dry_run = dry_run;
            o.accept_changed = accept.to_vec();
            o.lock_wait = lock_wait;
        })
    }

    /// A run with the command line's defaults, changed by `set`.
    pub fn run_opts(&self, set: impl FnOnce(&mut Options)) -> Result<MigrateOutcome, Error> {
        let ctx = Ctx::new(Settings::default(), Report::from_env(false));
        let env = environment("dev", &self.var, Approval::None, self.backup);
        let mut opts = Options::new(self.repo.path(), self.repo.path());
        opts.backup_dir = self.backup_dir.clone();
        set(&mut opts);
        run_with(&ctx, &env, &migrations(self.engine), opts)
    }

    pub fn up(&self) -> Result<MigrateOutcome, Error> {
        self.run(Mode::Up, false, &[], Duration::from_secs(30))
    }
}

fn pg_tables(db: &ScratchPg) -> Vec<String> {
    db.query_strings("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
}

fn pg_versions(db: &ScratchPg) -> Vec<String> {
    db.query_strings("SELECT version::text FROM deploy_action_migrations m ORDER BY m.version")
}

#[test]
fn pg_apply_then_rerun_is_a_no_op() {
    let db = ScratchPg::new("apply");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig(
            "0001_users.sql",
            "CREATE TABLE users (id int primary key, email text);\n",
        )
        .mig(
            "0002_orders.sql",
            "CREATE TABLE orders (id int);\r\nINSERT INTO orders VALUES (1);\r\n",
        )
        .mig("10_late.sql", "ALTER TABLE users ADD COLUMN name text;");
    c.up().unwrap();
    assert_eq!(
        pg_tables(&db),
        vec!["deploy_action_migrations", "orders", "users"]
    );
    assert_eq!(pg_versions(&db), vec!["1", "2", "10"]);
    let names = db.query_strings(
        "SELECT name || ':' || length(checksum) FROM deploy_action_migrations ORDER BY version",
    );
    assert_eq!(names, vec!["users:64", "orders:64", "late:64"]);
    // Rerun: nothing to do, nothing duplicated.
    c.up().unwrap();
    assert_eq!(pg_versions(&db), vec!["1", "2", "10"]);
    // The same file with LF endings is not "changed".
    c.repo.mig(
        "0002_orders.sql",
        "CREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1);\n",
    );
    c.up().unwrap();
}

#[test]
fn pg_failing_second_statement_leaves_nothing_of_its_migration() {
    let db = ScratchPg::new("fail");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig("0001_ok.sql", "CREATE TABLE ok (id int);")
        .mig(
            "0002_bad.sql",
            "CREATE TABLE half (id int);\nINSERT INTO no_such_table VALUES (1);\nCREATE TABLE never (id int);\n",
        )
        .mig("0003_after.sql", "CREATE TABLE after (id int);");
    let err = c.up().unwrap_err();
    assert_eq!(err.exit().code(), 1);
    let msg = err.to_string();
    assert!(msg.contains("0002_bad.sql"), "{msg}");
    assert!(
        msg.contains("statement: INSERT INTO no_such_table VALUES (1)"),
        "{msg}"
    );
    assert!(
        msg.contains("relation \"no_such_table\" does not exist"),
        "{msg}"
    );
    assert_eq!(pg_tables(&db), vec!["deploy_action_migrations", "ok"]);
    assert_eq!(pg_versions(&db), vec!["1"]);
}

#[test]
fn pg_changed_file_is_refused_by_name_unless_accepted() {
    let db = ScratchPg::new("changed");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id int);");
    c.up().unwrap();
    let old = deploy_action::migrate::checksum("CREATE TABLE a (id int);");
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id bigint);")
        .mig("0002_b.sql", "CREATE TABLE b (id int);");
    let new = deploy_action::migrate::checksum("CREATE TABLE a (id bigint);");
    let err = c.up().unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit().code(), 1, "{msg}");
    assert!(
        msg.contains("0001_a.sql") && msg.contains(&old) && msg.contains(&new),
        "{msg}"
    );
    assert_eq!(pg_tables(&db), vec!["a", "deploy_action_migrations"]);
    c.run(Mode::Up, false, &[1], Duration::from_secs(30))
        .unwrap();
    assert_eq!(pg_versions(&db), vec!["1", "2"]);
    assert_eq!(
        db.query_strings("SELECT checksum FROM deploy_action_migrations WHERE version = 1"),
        vec![new]
    );
}

#[test]
fn pg_bad_file_name_is_exit_2_naming_the_file() {
    let db = ScratchPg::new("badname");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig("0001_a.sql", "select 1;")
        .mig("add-users.sql", "select 2;");
    let err = c.up().unwrap_err();
    assert_eq!(err.exit().code(), 2);
    assert!(err.to_string().contains("add-users.sql"), "{err}");
}

#[test]
fn pg_dry_run_changes_nothing_not_even_the_tracking_table() {
    let db = ScratchPg::new("dry");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id int);");
    c.run(Mode::Up, true, &[], Duration::from_secs(1)).unwrap();
    assert!(pg_tables(&db).is_empty());
}

#[test]
fn pg_create_index_concurrently_with_the_marker() {
    let db = ScratchPg::new("cic");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig("0001_t.sql", "CREATE TABLE t (a int);\nINSERT INTO t SELECT generate_series(1, 1000);")
        .mig(
            "0002_idx.sql",
            "-- deploy-action: no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE INDEX CONCURRENTLY t_a2 ON t ((a * 2));\n",
        );
    c.up().unwrap();
    let valid = db.query_strings(
        "SELECT c.relname::text || '=' || i.indisvalid::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 't_a%' ORDER BY 1",
    );
    assert_eq!(valid, vec!["t_a2=true", "t_a=true"]);
    assert_eq!(pg_versions(&db), vec!["1", "2"]);
    // Without the marker PostgreSQL refuses it inside the migration's transaction.
    c.repo
        .mig("0003_idx.sql", "CREATE INDEX CONCURRENTLY t_b ON t (a);");
    let msg = c.up().unwrap_err().to_string();
    assert!(
        msg.contains("cannot run inside a transaction block"),
        "{msg}"
    );
}

#[test]
fn pg_two_concurrent_migrators_one_waits() {
    let db = ScratchPg::new("lock");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id int);");
    // Hold the migration lock from another session, as a running migrator does.
    let mut holder = db.client();
    let key = deploy_action::db::postgres::lock_key();
    let got: bool = holder
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .unwrap()
        .get(0);
    assert!(got);
    let err = c
        .run(Mode::Up, false, &[], Duration::from_millis(600))
        .unwrap_err();
    assert_eq!(err.exit().code(), 4, "{err}");
    assert!(err.to_string().contains("held by"), "{err}");
    assert!(pg_tables(&db).is_empty(), "nothing changed while waiting");
    // The waiter gets the lock once the holder lets go within --lock-wait.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        holder
            .query_one("SELECT pg_advisory_unlock($1)", &[&key])
            .unwrap();
        holder
    });
    c.run(Mode::Up, false, &[], Duration::from_secs(60))
        .unwrap();
    release.join().unwrap();
    assert_eq!(pg_versions(&db), vec!["1"]);
    // Released on every path: a failing run leaves the lock free.
    c.repo.mig("0002_bad.sql", "SELECT 1/0;");
    assert_eq!(c.up().unwrap_err().exit().code(), 1);
    let free: bool = db
        .client()
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .unwrap()
        .get(0);
    assert!(free);
}

#[test]
fn pg_concurrent_runs_apply_each_migration_once() {
    let db = ScratchPg::new("race");
    let c = std::sync::Arc::new(Case::new(&db.url, Engine::Postgres));
    for i in 1..=5 {
        c.repo.mig(
            &format!("{i:04}_m{i}.sql"),
            &format!("CREATE TABLE m{i} (id int); SELECT pg_sleep(0.05);"),
        );
    }
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.up().map_err(|e| e.to_string()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(pg_versions(&db), vec!["1", "2", "3", "4", "5"]);
}

#[test]
fn pg_down_runs_down_files_in_reverse_order() {
    let db = ScratchPg::new("down");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id int);")
        .mig("0001_a.down.sql", "DROP TABLE a;")
        .mig("0002_b.sql", "CREATE TABLE b (a_id int);")
        .mig("0002_b.down.sql", "DROP TABLE b;")
        .mig("0003_c.sql", "CREATE TABLE c (id int);")
        .mig("0003_c.down.sql", "DROP TABLE c;");
    c.up().unwrap();
    c.run(Mode::Down { to: 1 }, false, &[], Duration::from_secs(5))
        .unwrap();
    assert_eq!(pg_tables(&db), vec!["a", "deploy_action_migrations"]);
    assert_eq!(pg_versions(&db), vec!["1"]);
    c.up().unwrap();
    assert_eq!(pg_versions(&db), vec!["1", "2", "3"]);
}

#[test]
fn pg_down_without_down_file_changes_nothing() {
    let db = ScratchPg::new("nodown");
    let c = Case::new(&db.url, Engine::Postgres);
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id int);")
        .mig("0002_b.sql", "CREATE TABLE b (id int);")
        .mig("0002_b.down.sql", "DROP TABLE b;")
        .mig("0003_c.sql", "CREATE TABLE c (id int);");
    c.up().unwrap();
    let err = c
        .run(Mode::Down { to: 0 }, false, &[], Duration::from_secs(5))
        .unwrap_err();
    assert!(err.to_string().contains("0003_c.down.sql"), "{err}");
    assert_eq!(pg_versions(&db), vec!["1", "2", "3"]);
}

#[test]
fn pg_backup_is_written_verified_and_restorable() {
    let db = ScratchPg::new("backup");
    let mut c = Case::new(&db.url, Engine::Postgres);
    c.backup = BackupPolicy::Always;
    c.repo.mig(
        "0001_a.sql",
        "CREATE TABLE a (id int, v text); INSERT INTO a VALUES (1, 'one'), (2, 'two');",
    );
    c.up().unwrap();
    c.repo.mig("0002_b.sql", "DELETE FROM a WHERE id = 2;");
    let bin = services::var("DA_TEST_PG_BIN");
    // SAFETY: set once to the same value by every test that needs it.
    unsafe { std::env::set_var("DEPLOY_PG_BIN", &bin) };
    c.up().unwrap();
    let dir = c.repo.path().join(".deploy-action/backups/dev");
    let mut backups: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    backups.sort();
    assert_eq!(backups.len(), 2, "{backups:?}");
    // The second run's backup holds version 1 (taken before 0002 ran).
    let second = backups
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-v1.dump"))
        .unwrap_or_else(|| panic!("no backup of version 1 in {backups:?}"));
    // Restore the pre-migration backup into a scratch database and compare the table.
    let restored = ScratchPg::new("restored");
    let out = std::process::Command::new(format!("{bin}/pg_restore"))
        .args(["--no-owner", "-d", &restored.url])
        .arg(second)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        restored.query_strings("SELECT v FROM a ORDER BY id"),
        vec!["one", "two"]
    );
    assert_eq!(db.query_strings("SELECT v FROM a ORDER BY id"), vec!["one"]);
    // An audit line records the run and the backup.
    let audit =
        std::fs::read_to_string(c.repo.path().join(".deploy-action/audit/dev.log")).unwrap();
    assert!(
        audit.contains("\"result\":\"ok\"") && audit.contains(".dump"),
        "{audit}"
    );
}

#[test]
fn pg_failed_backup_stops_the_migration() {
    let db = ScratchPg::new("badbackup");
    let mut c = Case::new(&db.url, Engine::Postgres);
    c.backup = BackupPolicy::Always;
    // A file where the backup directory should be.
    let blocker = c.repo.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    c.backup_dir = Some(blocker.join("sub"));
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id int);");
    let err = c.up().unwrap_err();
    assert_eq!(err.exit().code(), 1);
    assert!(err.to_string().contains("backup failed"), "{err}");
    assert!(pg_tables(&db).is_empty());
}

fn sqlite_tables(path: &Path) -> Vec<String> {
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
fn sqlite_apply_fail_rerun_down_and_backup() {
    let c0 = Repo::new();
    let db_path = c0.path().join("app.db");
    let mut c = Case::new("sqlite://app.db", Engine::Sqlite);
    c.repo = c0;
    c.backup = BackupPolicy::Always;
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO a (v) VALUES ('x');\n")
        .mig("0001_a.down.sql", "DROP TABLE a;")
        .mig(
            "0002_trigger.sql",
            "CREATE TABLE log (msg TEXT);\nCREATE TRIGGER a_ins AFTER INSERT ON a BEGIN INSERT INTO log VALUES ('ins'); END;\n",
        )
        .mig("0002_trigger.down.sql", "DROP TRIGGER a_ins; DROP TABLE log;")
        .mig("0003_bad.sql", "CREATE TABLE half (id INT);\nINSERT INTO missing VALUES (1);\n");
    c.run(Mode::Up, true, &[], Duration::from_secs(1)).unwrap();
    assert!(
        sqlite_tables(&db_path).is_empty(),
        "dry run created something"
    );
    let err = c.up().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("0003_bad.sql") && msg.contains("no such table: missing"),
        "{msg}"
    );
    assert!(msg.contains("INSERT INTO missing VALUES (1)"), "{msg}");
    assert_eq!(
        sqlite_tables(&db_path),
        vec!["a", "deploy_action_migrations", "log"]
    );
    std::fs::remove_file(c.repo.path().join("migrations/0003_bad.sql")).unwrap();
    c.up().unwrap();
    c.run(Mode::Down { to: 0 }, false, &[], Duration::from_secs(5))
        .unwrap();
    assert_eq!(sqlite_tables(&db_path), vec!["deploy_action_migrations"]);
    // Backups were written by the online backup API and pass integrity_check.
    let dir = c.repo.path().join(".deploy-action/backups/dev");
    let backups: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let with_a = backups
        .iter()
        .find(|p| p.to_string_lossy().contains("-v2."))
        .expect("a backup at v2");
    assert_eq!(
        sqlite_tables(with_a),
        vec!["a", "deploy_action_migrations", "log"]
    );
}

#[test]
fn sqlite_second_migrator_waits_then_exits_4() {
    let mut c = Case::new("sqlite://app.db", Engine::Sqlite);
    c.repo = Repo::new();
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id INT);");
    let holder = rusqlite::Connection::open(c.repo.path().join("app.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = c
        .run(Mode::Up, false, &[], Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(err.exit().code(), 4, "{err}");
    holder.execute_batch("COMMIT").unwrap();
    c.up().unwrap();
    assert_eq!(
        sqlite_tables(&c.repo.path().join("app.db")),
        vec!["a", "deploy_action_migrations"]
    );
}

/// The reported wait of a lock timeout, in seconds (`… (waited 0.3s) …`).
fn waited_seconds(msg: &str) -> f64 {
    msg.split("waited ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `waited Ns` in: {msg}"))
}

#[test]
fn sqlite_lock_timeout_reports_the_real_wait() {
    let mut c = Case::new("sqlite://app.db", Engine::Sqlite);
    c.repo = Repo::new();
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id INT);");
    c.up().unwrap();
    c.repo.mig("0002_b.sql", "CREATE TABLE b (id INT);");
    let holder = rusqlite::Connection::open(c.repo.path().join("app.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = c
        .run(Mode::Up, false, &[], Duration::from_millis(300))
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit().code(), 4, "{msg}");
    // The busy handler waited the whole --lock-wait before giving up.
    assert!(waited_seconds(&msg) >= 0.3, "{msg}");
    holder.execute_batch("COMMIT").unwrap();
}

#[test]
fn target_applies_up_to_a_version_and_stops() {
    let mut c = Case::new("sqlite://app.db", Engine::Sqlite);
    c.repo = Repo::new();
    for i in 1..=4 {
        c.repo.mig(
            &format!("{i:04}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id INT);"),
        );
    }
    let db = c.repo.path().join("app.db");
    let out = c.run_opts(|o| o.target = Some(2)).unwrap();
    assert_eq!(out.applied, vec![1, 2]);
    assert_eq!(out.version, Some(2));
    assert!(out.plan_hash.is_some() && out.backup.is_none() && out.approval.is_none());
    assert_eq!(
        sqlite_tables(&db),
        vec!["deploy_action_migrations", "t1", "t2"]
    );
    // A version with no file is an input error, naming the versions there are.
    let err = c.run_opts(|o| o.target = Some(9)).unwrap_err();
    assert_eq!(err.exit().code(), 2, "{err}");
    assert!(
        err.to_string().contains("--target 9") && err.to_string().contains("1, 2, 3, 4"),
        "{err}"
    );
    // At or below the current version: nothing to do.
    let out = c.run_opts(|o| o.target = Some(1)).unwrap();
    assert!(out.applied.is_empty());
    assert_eq!(out.version, Some(2));
    // A dry run with a target shows only what the target reaches.
    let out = c
        .run_opts(|o| {
            o.target = Some(3);
            o.dry_run = true;
        })
        .unwrap();
    assert!(out.applied.is_empty());
    assert_eq!(sqlite_tables(&db).len(), 3);
    let out = c.up().unwrap();
    assert_eq!(out.applied, vec![3, 4]);
    assert_eq!(out.version, Some(4));
}

#[test]
fn sqlite_backup_restores_to_the_state_before_the_migration() {
    let mut c = Case::new("sqlite://app.db", Engine::Sqlite);
    c.repo = Repo::new();
    c.backup = BackupPolicy::Always;
    let live = c.repo.path().join("app.db");
    c.repo.mig(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\nCREATE INDEX users_email ON users (email);\nINSERT INTO users (email) VALUES ('a@x'), ('b@x');\n",
    );
    c.up().unwrap();
    // Live data written after the first migration, in WAL mode (a file copy could miss it).
    {
        let conn = rusqlite::Connection::open(&live).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute("INSERT INTO users (email) VALUES ('c@x')", [])
            .unwrap();
    }
    let before = sqlite_snapshot(&live);
    c.repo.mig(
        "0002_drop.sql",
        "DELETE FROM users WHERE email = 'a@x';\nALTER TABLE users ADD COLUMN name TEXT;\n",
    );
    let out = c.up().unwrap();
    let backup = out.backup.expect("a backup was written");
    assert!(
        backup.to_string_lossy().ends_with("-v1.sqlite3"),
        "{backup:?}"
    );
    assert_ne!(
        sqlite_snapshot(&live),
        before,
        "the migration changed the data"
    );
    // Restore: copy the backup into a fresh database with the backup API and compare everything.
    let restored = c.repo.path().join("restored.db");
    {
        let src = rusqlite::Connection::open(&backup).unwrap();
        let mut dst = rusqlite::Connection::open(&restored).unwrap();
        rusqlite::backup::Backup::new(&src, &mut dst)
            .unwrap()
            .run_to_completion(64, Duration::ZERO, None)
            .unwrap();
    }
    assert_eq!(sqlite_snapshot(&restored), before);
    // Restoring over the live database brings back version 1; migrating again re-applies 0002.
    std::fs::copy(&restored, &live).unwrap();
    let _ = std::fs::remove_file(c.repo.path().join("app.db-wal"));
    let _ = std::fs::remove_file(c.repo.path().join("app.db-shm"));
    assert_eq!(sqlite_snapshot(&live), before);
    assert_eq!(c.up().unwrap().applied, vec![2]);
}

/// Every table's schema and rows (the ledger's timing columns left out), for comparisons.
fn sqlite_snapshot(path: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    let schema: Vec<(String, String)> = {
        let mut s = c
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    for (name, sql) in schema {
        out.push(sql);
        if !c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&name],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            .eq(&1)
        {
            continue;
        }
        let query = if name == "deploy_action_migrations" {
            "SELECT version || ' ' || name || ' ' || checksum FROM deploy_action_migrations ORDER BY version".to_string()
        } else {
            format!("SELECT quote(id) || ' ' || quote(email) FROM \"{name}\" ORDER BY 1")
        };
        let mut s = c.prepare(&query).unwrap();
        for row in s.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            out.push(format!("{name}: {}", row.unwrap()));
        }
    }
    out
}

#[test]
fn pg_socket_url_applies_and_backs_up_without_the_password_on_any_command_line() {
    let db = ScratchPg::new("socket");
    let socket_dir = services::var("DA_TEST_PG_SOCKET_DIR");
    let port = services::var("DA_TEST_PG_PORT");
    let (user, password) = services::var("DA_TEST_PG_URL")
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .expect("the test URL has a user and a password");
    let url = format!(
        "postgres://{user}:{password}@/{}?host={socket_dir}&port={port}",
        db.name
    );
    let mut c = Case::new(&url, Engine::Postgres);
    c.backup = BackupPolicy::Always;
    // SAFETY: the same value in every test that sets it.
    unsafe { std::env::set_var("DEPLOY_PG_BIN", services::var("DA_TEST_PG_BIN")) };
    c.repo.mig(
        "0001_a.sql",
        "CREATE TABLE a (id int); INSERT INTO a VALUES (7);",
    );
    let out = c.up().unwrap();
    assert_eq!(out.applied, vec![1]);
    assert_eq!(pg_tables(&db), vec!["a", "deploy_action_migrations"]);
    // The backup went through the socket too, and restores.
    let backup = out.backup.expect("backup");
    let restored = ScratchPg::new("socket_restored");
    let restore =
        std::process::Command::new(format!("{}/pg_restore", services::var("DA_TEST_PG_BIN")))
            .args(["--no-owner", "--exit-on-error", "-d", &restored.url])
            .arg(&backup)
            .output()
            .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    // Taken before 0001 ran: the restored database is empty.
    assert!(pg_tables(&restored).is_empty());
}

#[test]
fn pg_socket_url_is_shown_by_its_directory_never_its_password() {
    // The label shows the socket directory, never the password.
    let db = ScratchPg::new("socketlabel");
    let socket_dir = services::var("DA_TEST_PG_SOCKET_DIR");
    let port = services::var("DA_TEST_PG_PORT");
    let url = format!(
        "postgres://deploy:deploy-test-pw@/{}?host={socket_dir}&port={port}",
        db.name
    );
    let c = Case::new(&url, Engine::Postgres);
    c.repo.mig("0001_a.sql", "CREATE TABLE a (id int);");
    let ctx = Ctx::new(Settings::default(), Report::buffered(false, None));
    let env = environment("dev", &c.var, Approval::None, BackupPolicy::Never);
    run_with(
        &ctx,
        &env,
        &migrations(Engine::Postgres),
        Options::new(c.repo.path(), c.repo.path()),
    )
    .unwrap();
    let printed: Vec<String> = ctx.report.printed().into_iter().map(|(_, l)| l).collect();
    let text = printed.join("\n");
    assert!(
        text.contains(&format!("postgres deploy@{socket_dir}:{port}/{}", db.name)),
        "{text}"
    );
    assert!(!text.contains("deploy-test-pw"), "{text}");
}

/// An image with psql, pg_dump and pg_restore from the host's PostgreSQL (no registry here):
/// `docker import` of the binaries and the libraries they link.
fn psql_image() -> &'static str {
    const IMAGE: &str = "deploy-action-test/psql:migrate2";
    services::require_docker();
    let have = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        let bin = services::var("DA_TEST_PG_BIN");
        let script = format!(
            r#"set -e; root=$(mktemp -d); mkdir -p $root/usr/bin $root/bin
cp {bin}/psql {bin}/pg_dump {bin}/pg_restore $root/usr/bin/; cp /bin/dash $root/bin/sh; cp /bin/sleep $root/bin/sleep
for f in {bin}/psql {bin}/pg_dump {bin}/pg_restore /bin/dash /bin/sleep; do ldd $f | grep -o '/[^ ]*'; done | sort -u |
  while read l; do mkdir -p $root$(dirname $l); cp -L $l $root$l; done
tar -C $root -c . | docker import - {IMAGE} >/dev/null; rm -rf $root"#
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building {IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    IMAGE
}

/// A compose project whose service `db` holds the PostgreSQL client tools and reaches a scratch
/// database of the test server over the host network. There is no registry here to pull a
/// `postgres` image from, so the server is the test one; the service is where psql, pg_dump and
/// pg_restore run, as they would inside a VPS's database container.
pub struct ComposeDb {
    pub repo: Repo,
    pub db: ScratchPg,
    pub project: String,
}

impl ComposeDb {
    pub fn new(tag: &str) -> ComposeDb {
        let db = ScratchPg::new(tag);
        let image = psql_image();
        let repo = Repo::new();
        let port = services::var("DA_TEST_PG_PORT");
        std::fs::write(
            repo.path().join("compose.yml"),
            format!(
                "services:\n  db:\n    image: {image}\n    command: [\"/bin/sleep\", \"infinity\"]\n    network_mode: host\n    environment: {{ PGHOST: 127.0.0.1, PGPORT: \"{port}\", PGPASSWORD: deploy-test-pw }}\n"
            ),
        )
        .unwrap();
        let c = ComposeDb {
            repo,
            db,
            project: format!("damig{tag}{}", std::process::id()),
        };
        let up = c.compose(&["up", "-d"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        c
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker")
            .args(["compose", "-p", &self.project, "-f", "compose.yml"])
            .args(args)
            .current_dir(self.repo.path())
            .output()
            .unwrap()
    }

    /// An environment reaching `db` through `host`.
    fn environment(&self, host: Host) -> Environment {
        let mut env = environment("vps", "UNUSED", Approval::None, BackupPolicy::Always);
        env.hosts = vec![host];
        env.dir = self.repo.path().display().to_string();
        env.compose_project = self.project.clone();
        env.compose_files = vec!["compose.yml".into()];
        env.database = Some(Database::ComposeService {
            service: "db".into(),
            engine: Engine::Postgres,
            user: "deploy".into(),
            name: self.db.name.clone(),
            span: Span::default(),
        });
        env
    }

    /// deploy.yml for the binary: environment `vps` on `host` (a manifest host string).
    fn manifest(&self, host: &str, backup: &str) {
        std::fs::write(
            self.repo.path().join("deploy.yml"),
            format!(
                "version: 1\nproject: shop\nenvironments:\n  vps:\n    hosts: [\"{host}\"]\n    dir: {dir}\n    compose_files: [compose.yml]\n    compose_project: {project}\n    backup: {backup}\n    database: {{ compose_service: db, engine: postgres, user: deploy, name: {name} }}\nmigrations:\n  dir: migrations\n  engine: postgres\n",
                dir = self.repo.path().display(),
                project = self.project,
                name = self.db.name,
            ),
        )
        .unwrap();
    }

    /// The binary in the repository, reaching the test sshd with its key and known_hosts.
    fn run(&self, args: &[&str]) -> Run {
        Run::new(self.repo.path(), args)
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
            .env(
                "DEPLOY_KNOWN_HOSTS_FILE",
                services::var("DA_TEST_KNOWN_HOSTS_FILE"),
            )
    }

    /// How many sessions hold the migration lock, and how many lock sessions are connected.
    fn lock_sessions(&self) -> (i64, i64) {
        let key = deploy_action::db::postgres::lock_key();
        let mut c = self.db.client();
        let held: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid",
                &[&key],
            )
            .unwrap()
            .get(0);
        let sessions: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
                &[&deploy_action::db::compose::LOCK_APP_NAME],
            )
            .unwrap()
            .get(0);
        (held, sessions)
    }
}

impl Drop for ComposeDb {
    fn drop(&mut self) {
        self.compose(&["down", "-t", "0"]);
    }
}

/// Polls `check` until it holds; fails naming `what` if it never does (a bound, not a timing).
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting until {what}");
}

#[test]
fn compose_mode_runs_psql_in_the_service_with_backup() {
    let c = ComposeDb::new("compose");
    c.repo
        .mig(
            "0001_a.sql",
            "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
        )
        .mig(
            "0002_bad.sql",
            "CREATE TABLE b (id int);\nINSERT INTO nope VALUES (1);\n",
        );
    // SAFETY: the same value in every test that sets it.
    unsafe { std::env::set_var("DEPLOY_PG_BIN", services::var("DA_TEST_PG_BIN")) };
    let env = c.environment(Host::Local);
    let ctx = Ctx::new(Settings::default(), Report::buffered(false, None));
    let run = |mode: Mode| {
        let mut opts = Options::new(c.repo.path(), c.repo.path());
        opts.mode = mode;
        opts.lock_wait = Duration::from_secs(10);
        run_with(&ctx, &env, &migrations(Engine::Postgres), opts)
    };
    let err = run(Mode::Up).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit().code(), 1, "{msg}");
    assert!(
        msg.contains("0002_bad.sql") && msg.contains("relation \"nope\" does not exist"),
        "{msg}"
    );
    assert!(
        msg.contains("statement: INSERT INTO nope VALUES (1)"),
        "{msg}"
    );
    assert_eq!(pg_tables(&c.db), vec!["a", "deploy_action_migrations"]);
    assert_eq!(pg_versions(&c.db), vec!["1"]);
    let backups: Vec<_> = std::fs::read_dir(c.repo.path().join(".deploy-action/backups/vps"))
        .unwrap()
        .collect();
    assert_eq!(backups.len(), 1);
    let printed: Vec<String> = ctx.report.printed().into_iter().map(|(_, l)| l).collect();
    assert!(
        printed.iter().any(|l| l.starts_with(
            "backup written and verified (pg_restore -l and -f /dev/null on this machine)"
        )),
        "{printed:#?}"
    );
    // The failing run released the lock: no session holds it, no lock session is left.
    assert_eq!(c.lock_sessions(), (0, 0));
    run(Mode::Status).unwrap();
}

#[test]
fn compose_mode_over_ssh_runs_psql_and_pg_dump_on_the_host() {
    services::require_sshd();
    let c = ComposeDb::new("ssh");
    c.manifest(&services::var("DA_TEST_SSH_URL"), "always");
    c.repo.mig(
        "0001_a.sql",
        "CREATE TABLE a (id int, v text);\nINSERT INTO a VALUES (1, 'one'), (2, 'two');\n",
    );
    let ssh_label = format!(
        "{}@{}:{}",
        services::var("DA_TEST_SSH_USER"),
        services::var("DA_TEST_SSH_HOST"),
        services::var("DA_TEST_SSH_PORT")
    );
    let dry = c.run(&["migrate", "--env", "vps", "--dry-run"]).go();
    dry.status(0)
        .stdout_has(&format!("compose service `db` on {ssh_label}"))
        .stdout_has("INSERT INTO a VALUES (1, 'one')");
    c.run(&["migrate", "status", "--env", "vps"])
        .go()
        .status(0)
        .stdout_has("pending");
    assert!(
        pg_tables(&c.db).is_empty(),
        "dry run and status changed nothing"
    );
    // No pg_restore on this machine: the kept file is streamed back into the service's pg_restore.
    c.run(&["migrate", "--env", "vps"])
        .env("DEPLOY_PG_BIN", "/nonexistent/pg-bin")
        .go()
        .status(0)
        .stdout_has(&format!(
            "backup written and verified (pg_restore -f /dev/null in `db` on {ssh_label}"
        ));
    assert_eq!(pg_versions(&c.db), vec!["1"]);
    c.repo.mig("0002_b.sql", "DELETE FROM a WHERE id = 2;\n");
    c.run(&["migrate", "--env", "vps"])
        .env("DEPLOY_PG_BIN", services::var("DA_TEST_PG_BIN"))
        .go()
        .status(0)
        .stdout_has("backup written and verified (pg_restore -l and -f /dev/null on this machine)");
    assert_eq!(pg_versions(&c.db), vec!["1", "2"]);
    assert_eq!(c.lock_sessions(), (0, 0));
    // The backup of version 1 came over SSH; restored into a scratch database it has both rows.
    let dir = c.repo.path().join(".deploy-action/backups/vps");
    let v1 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-v1.dump"))
        .expect("a backup of version 1");
    let restored = ScratchPg::new("sshrestored");
    let out = std::process::Command::new(format!("{}/pg_restore", services::var("DA_TEST_PG_BIN")))
        .args(["--no-owner", "--exit-on-error", "-d", &restored.url])
        .arg(&v1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        restored.query_strings("SELECT v FROM a ORDER BY id"),
        vec!["one", "two"]
    );
    assert_eq!(pg_versions(&restored), vec!["1"]);
}

#[test]
fn compose_mode_lock_is_held_for_the_whole_run() {
    services::require_sshd();
    let c = ComposeDb::new("lock");
    c.manifest(&services::var("DA_TEST_SSH_URL"), "never");
    c.repo
        .mig("0001_a.sql", "CREATE TABLE a (id int);\n")
        // Waits for the test's gate inside the migration, with the migration lock held.
        .mig(
            "0002_gate.sql",
            "INSERT INTO a VALUES (2);\nSELECT pg_advisory_xact_lock(777);\nINSERT INTO a VALUES (22);\n",
        )
        // Would stall behind a waiter that keeps a transaction open.
        .mig(
            "0003_idx.sql",
            "-- deploy-action: no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
        );
    let mut gate = c.db.client();
    gate.execute("SELECT pg_advisory_lock(777)", &[]).unwrap();
    let path = c.repo.path().to_path_buf();
    let key_file = services::var("DA_TEST_SSH_KEY_FILE");
    let known = services::var("DA_TEST_KNOWN_HOSTS_FILE");
    let spawn = |sha: &'static str, wait: &'static str| {
        let (path, key_file, known) = (path.clone(), key_file.clone(), known.clone());
        std::thread::spawn(move || {
            Run::new(&path, &["migrate", "--env", "vps", "--lock-wait", wait])
                .env("DEPLOY_SSH_KEY_FILE", key_file)
                .env("DEPLOY_KNOWN_HOSTS_FILE", known)
                .env("GITHUB_SHA", sha)
                .go()
        })
    };
    let a = spawn("A", "60s");
    wait_until("migrator A holds the lock and waits in 0002", || {
        let waiting: i64 = c
            .db
            .client()
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 777",
                &[],
            )
            .unwrap()
            .get(0);
        waiting == 1 && c.lock_sessions() == (1, 1)
    });
    // Between and during A's migrations nobody else gets in: B gives up after --lock-wait.
    let b1 = c
        .run(&["migrate", "--env", "vps", "--lock-wait", "1s"])
        .env("GITHUB_SHA", "B")
        .go();
    b1.status(4)
        .stderr_has("the migration lock is held by another run")
        .stderr_has("held by `deploy-action migrate (lock)`");
    assert_eq!(pg_versions(&c.db), vec!["1"]);
    // A second B waits (polling, no transaction open) while A finishes, CIC included.
    let b2 = spawn("B", "10m");
    wait_until("migrator B's lock session is polling", || {
        c.lock_sessions() == (1, 2)
    });
    gate.execute("SELECT pg_advisory_unlock(777)", &[]).unwrap();
    a.join().unwrap().status(0);
    b2.join()
        .unwrap()
        .status(0)
        .stdout_has("nothing to migrate: the database is at version 3");
    assert_eq!(
        c.db.query_strings(
            "SELECT version || '=' || release FROM deploy_action_migrations ORDER BY version"
        ),
        vec!["1=A", "2=A", "3=A"]
    );
    assert_eq!(
        c.db.query_strings(
            "SELECT i.indisvalid::text FROM pg_index i JOIN pg_class r ON r.oid = i.indexrelid WHERE r.relname = 'a_id'"
        ),
        vec!["true"]
    );
    assert_eq!(c.lock_sessions(), (0, 0), "every lock session ended");
}

/// A SQLite project run through the binary (no approval).
fn sqlite_project(backup: &str) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: .\n    backup: {backup}\n    database: {{ url_env: APP_DB }}\nmigrations:\n  dir: migrations\n  engine: sqlite\n"
    ));
    p
}

#[test]
fn accept_changed_again_is_a_no_op_with_a_note() {
    let p = sqlite_project("never");
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id INT);\n");
    let run = |args: &[&str]| {
        let mut all = vec!["migrate", "--env", "dev"];
        all.extend_from_slice(args);
        p.run(&all).env("APP_DB", "sqlite://app.db").go()
    };
    run(&[]).status(0);
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    run(&[]).status(1).stderr_has("0001_a.sql was changed");
    run(&["--accept-changed", "1"])
        .status(0)
        .stdout_has("re-baselined");
    // A workflow that keeps the flag does not break once the checksum matches.
    run(&["--accept-changed", "1"])
        .status(0)
        .stdout_has("--accept-changed 1: the recorded checksum of 0001_a.sql already matches the file; nothing to re-baseline")
        .stdout_has("nothing to migrate");
    // Still an input error for a version that was never applied, or does not exist.
    p.file("migrations/0002_b.sql", "CREATE TABLE b (id INT);\n");
    run(&["--accept-changed", "2"])
        .status(2)
        .stderr_has("version 2 is pending");
    run(&["--accept-changed", "9"])
        .status(2)
        .stderr_has("no migration file and no applied row has version 9");
}

#[test]
fn keep_backups_prunes_to_n_and_target_is_for_up_only() {
    let p = sqlite_project("always");
    let run = |args: &[&str]| {
        p.run(args)
            .env("APP_DB", "sqlite://app.db")
            .env("DEPLOY_TEST_NO_RETRY_DELAY", "1")
            .go()
    };
    for i in 1..=3 {
        p.file(
            &format!("migrations/{i:04}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id INT);\n"),
        );
        run(&["migrate", "--env", "dev", "--keep-backups", "2"]).status(0);
    }
    let mut kept: Vec<String> = std::fs::read_dir(p.path().join(".deploy-action/backups/dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter().any(|k| k.ends_with("-v1.sqlite3"))
            && kept.iter().any(|k| k.ends_with("-v2.sqlite3")),
        "the newest two are kept: {kept:?}"
    );
    run(&["migrate", "--env", "dev", "--keep-backups", "0"])
        .status(2)
        .stderr_has("--keep-backups");
    run(&["migrate", "status", "--env", "dev", "--target", "1"]).status(2);
    run(&[
        "migrate", "--env", "dev", "--target", "1", "down", "--to", "0",
    ])
    .status(2)
    .stderr_has("--target 1");
}
