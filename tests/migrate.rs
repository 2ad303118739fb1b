//! `migrate` against real PostgreSQL (scripts/test-env.sh) and SQLite: apply, no-op rerun, a failing
//! migration leaves nothing of itself, changed files refused, two concurrent migrators, CREATE INDEX
//! CONCURRENTLY with the marker, dry-run, down, backups restored and compared.
//!
//! These drive `commands::migrate::run_with` with environments built in code; the gate's tests run
//! the real binary (see `migrate_gate.rs`).

use crate::harness::services;
use deploy_action::commands::Ctx;
use deploy_action::commands::migrate::{Mode, Options, run_with};
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
    ) -> Result<(), Error> {
        let ctx = Ctx {
            settings: Settings::default(),
            report: Report::from_env(false),
        };
        let env = environment("dev", &self.var, Approval::None, self.backup);
        let opts = Options {
            mode,
            dry_run,
            accept_changed: accept.to_vec(),
            lock_wait,
            backup_dir: self.backup_dir.clone(),
            approval_timeout: Duration::from_secs(1),
            root: self.repo.path().to_path_buf(),
            workdir: self.repo.path().to_path_buf(),
        };
        run_with(&ctx, &env, &migrations(self.engine), opts)
    }

    pub fn up(&self) -> Result<(), Error> {
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

/// An image with psql and pg_dump from the host's PostgreSQL (no registry here): `docker import` of
/// the binaries and the libraries they link.
fn psql_image() -> &'static str {
    const IMAGE: &str = "deploy-action-test/psql:migrate";
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
cp {bin}/psql {bin}/pg_dump $root/usr/bin/; cp /bin/dash $root/bin/sh; cp /bin/sleep $root/bin/sleep
for f in {bin}/psql {bin}/pg_dump /bin/dash /bin/sleep; do ldd $f | grep -o '/[^ ]*'; done | sort -u |
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

#[test]
fn compose_mode_runs_psql_in_the_service_with_backup() {
    let db = ScratchPg::new("compose");
    let image = psql_image();
    let repo = Repo::new();
    let port = services::var("DA_TEST_PG_PORT");
    repo.mig(
        "0001_a.sql",
        "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    )
    .mig(
        "0002_bad.sql",
        "CREATE TABLE b (id int);\nINSERT INTO nope VALUES (1);\n",
    );
    std::fs::write(
        repo.path().join("compose.yml"),
        format!(
            "services:\n  db:\n    image: {image}\n    command: [\"/bin/sleep\", \"infinity\"]\n    network_mode: host\n    environment: {{ PGHOST: 127.0.0.1, PGPORT: \"{port}\", PGPASSWORD: deploy-test-pw }}\n"
        ),
    )
    .unwrap();
    let project = format!("damig{}", std::process::id());
    let compose = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(["compose", "-p", &project, "-f", "compose.yml"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap()
    };
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    struct Down<F: Fn()>(F);
    impl<F: Fn()> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _down = Down(|| {
        compose(&["down", "-t", "0"]);
    });
    // SAFETY: the same value in every test that sets it.
    unsafe { std::env::set_var("DEPLOY_PG_BIN", services::var("DA_TEST_PG_BIN")) };
    let mut env = environment("vps", "UNUSED", Approval::None, BackupPolicy::Always);
    env.dir = repo.path().display().to_string();
    env.compose_project = project.clone();
    env.compose_files = vec!["compose.yml".into()];
    env.database = Some(Database::ComposeService {
        service: "db".into(),
        engine: Engine::Postgres,
        user: "deploy".into(),
        name: db.name.clone(),
        span: Span::default(),
    });
    let run = |mode: Mode| {
        let ctx = Ctx {
            settings: Settings::default(),
            report: Report::from_env(false),
        };
        run_with(
            &ctx,
            &env,
            &migrations(Engine::Postgres),
            Options {
                mode,
                dry_run: false,
                accept_changed: vec![],
                lock_wait: Duration::from_secs(10),
                backup_dir: None,
                approval_timeout: Duration::from_secs(1),
                root: repo.path().to_path_buf(),
                workdir: repo.path().to_path_buf(),
            },
        )
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
    assert_eq!(pg_tables(&db), vec!["a", "deploy_action_migrations"]);
    assert_eq!(pg_versions(&db), vec!["1"]);
    let backups: Vec<_> = std::fs::read_dir(repo.path().join(".deploy-action/backups/vps"))
        .unwrap()
        .collect();
    assert_eq!(backups.len(), 1);
    run(Mode::Status).unwrap();
}
