//! Issue 10's database findings, against the real test PostgreSQL (TLS on, with the CA made by
//! scripts/test-env.sh) and real SQLite files, through the real binary:
//! TLS by `sslmode`, a non-ASCII checksum in the tracking table, private backups and pruning by
//! environment, and transaction control in a transactional migration.

use crate::harness::{Outcome, Project, services};
use crate::migrate::ScratchPg;
use deploy_action::db::sqlite::SqliteDatabase;
use deploy_action::db::{Bookkeeping, Database, DbError};
use deploy_action::migrate::SqlFile;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A migration that records whether its own connection is encrypted.
const TLS_PROOF: &str = "CREATE TABLE tls_proof AS SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n";

/// A project with one environment `dev` whose database URL is in APP_DB.
fn project(engine: &str, backup: &str) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: .\n    backup: {backup}\n    database: {{ url_env: APP_DB }}\nmigrations:\n  dir: migrations\n  engine: {engine}\n"
    ));
    p
}

/// `migrate --env dev` (plus `args`) with APP_DB set to `url`.
fn migrate(p: &Project, url: &str, args: &[&str]) -> Outcome {
    let mut all = vec!["migrate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--env", "dev"]);
    p.run(&all)
        .env("APP_DB", url)
        .env("DEPLOY_PG_BIN", services::var("DA_TEST_PG_BIN"))
        .go()
}

/// The password of the test server's URL (never to be printed).
fn password() -> String {
    let url = services::var("DA_TEST_PG_URL");
    let auth = url.split('@').next().unwrap();
    auth.rsplit(':').next().unwrap().to_string()
}

/// Whether the migration's connection was encrypted (`true`/`false`, from pg_stat_ssl).
fn proof(db: &ScratchPg) -> Vec<String> {
    db.query_strings("SELECT ssl::text FROM tls_proof")
}

fn with_query(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ------------------------------------------------------------------------------------------- TLS

#[test]
fn r10_pg_sslmode_require_connects_over_tls() {
    let db = ScratchPg::new("tls_require");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    migrate(&p, &with_query(&db.url, "sslmode=require"), &[])
        .status(0)
        .stdout_has("(sslmode=require)")
        .nowhere(&password());
    assert_eq!(proof(&db), vec!["true"]);
}

#[test]
fn r10_pg_default_sslmode_prefer_uses_tls_when_the_server_offers_it() {
    let db = ScratchPg::new("tls_prefer");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    migrate(&p, &db.url, &[])
        .status(0)
        .stdout_has("(sslmode=prefer)");
    assert_eq!(proof(&db), vec!["true"]);
}

#[test]
fn r10_pg_sslmode_disable_stays_plain() {
    let db = ScratchPg::new("tls_disable");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    migrate(&p, &with_query(&db.url, "sslmode=disable"), &[]).status(0);
    assert_eq!(proof(&db), vec!["false"]);
}

#[test]
fn r10_pg_verify_full_with_the_right_ca_connects_and_backs_up() {
    let db = ScratchPg::new("tls_full");
    let ca = services::var("DA_TEST_PG_CA_FILE");
    let p = project("postgres", "always");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    let query = format!("sslmode=verify-full&sslrootcert={ca}");
    // By IP address (the certificate names 127.0.0.1); the backup is pg_dump, libpq, same URL.
    migrate(&p, &with_query(&db.url, &query), &[])
        .status(0)
        .stdout_has(&format!("(sslmode=verify-full, sslrootcert={ca})"))
        .stdout_has("backup written and verified")
        .nowhere(&password());
    assert_eq!(proof(&db), vec!["true"]);
    let backups: Vec<_> = std::fs::read_dir(p.path().join(".deploy-action/backups/dev"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(mode(&backups[0]), 0o600);
    // By host name (the certificate names localhost too).
    let by_name = with_query(&db.url.replace("127.0.0.1", "localhost"), &query);
    migrate(&p, &by_name, &[])
        .status(0)
        .stdout_has("nothing to migrate");
}

#[test]
fn r10_pg_verify_full_with_a_wrong_ca_fails_clearly_without_the_password() {
    let db = ScratchPg::new("tls_wrong_ca");
    let wrong = services::var("DA_TEST_PG_WRONG_CA_FILE");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    let url = with_query(&db.url, &format!("sslmode=verify-full&sslrootcert={wrong}"));
    migrate(&p, &url, &[])
        .status(1)
        .stderr_has("cannot connect to the database")
        .stderr_has("invalid peer certificate")
        .stderr_has(&format!(
            "the server's TLS certificate was refused when checked for sslmode=verify-full, sslrootcert={wrong}"
        ))
        .nowhere(&password())
        .nowhere("panicked");
    assert!(
        db.query_strings("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .is_empty()
    );
}

#[test]
fn r10_pg_verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let db = ScratchPg::new("tls_name");
    let ca = services::var("DA_TEST_PG_CA_FILE");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    // The TLS name is `wrong.example`; the TCP address is the test server.
    let url = |mode: &str| {
        with_query(
            &db.url.replace("127.0.0.1", "wrong.example"),
            &format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}"),
        )
    };
    migrate(&p, &url("verify-full"), &[])
        .status(1)
        .stderr_has("not valid for name \"wrong.example\"")
        .stderr_has("use sslmode=verify-ca to check the chain only")
        .nowhere(&password());
    migrate(&p, &url("verify-ca"), &[]).status(0);
    assert_eq!(proof(&db), vec!["true"]);
}

#[test]
fn r10_pg_unix_socket_needs_no_tls_whatever_sslmode_says() {
    let db = ScratchPg::new("tls_socket");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    let url = format!(
        "postgres://deploy:{}@/{}?host={}&port={}&sslmode=require",
        password(),
        db.name,
        services::var("DA_TEST_PG_SOCKET_DIR"),
        services::var("DA_TEST_PG_PORT")
    );
    migrate(&p, &url, &[]).status(0).nowhere(&password());
    assert_eq!(proof(&db), vec!["false"]);
}

#[test]
fn r10_pg_unusable_tls_settings_are_input_errors() {
    let db = ScratchPg::new("tls_bad");
    let p = project("postgres", "never");
    p.file("migrations/0001_proof.sql", TLS_PROOF);
    migrate(&p, &with_query(&db.url, "sslmode=allow"), &[])
        .status(2)
        .stderr_has("sslmode=allow is not supported")
        .nowhere(&password());
    migrate(
        &p,
        &with_query(
            &db.url,
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &[],
    )
    .status(2)
    .stderr_has("sslrootcert=/nonexistent/ca.pem: cannot read it")
    .nowhere(&password());
}

// ----------------------------------------------------------------- non-ASCII checksum in the table

/// 'a' and then 2-byte characters: byte 12 falls inside a character.
const ODD_CHECKSUM: &str = "aéééééééééééééé";

fn non_ascii_checksum_is_reported(p: &Project, url: &str) {
    migrate(p, url, &["status"])
        .status(0)
        .stdout_has("changed (recorded aééééééééééé…");
    migrate(p, url, &[]).status(1).stderr_has(&format!(
        "0001_a.sql was changed after it was applied (recorded checksum {ODD_CHECKSUM}"
    ));
}

#[test]
fn r10_non_ascii_checksum_in_the_sqlite_tracking_table_does_not_panic() {
    let p = project("sqlite", "never");
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id INT);\n");
    migrate(&p, "sqlite://app.db", &[]).status(0);
    let c = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    c.execute(
        "UPDATE deploy_action_migrations SET checksum = ?1",
        [ODD_CHECKSUM],
    )
    .unwrap();
    non_ascii_checksum_is_reported(&p, "sqlite://app.db");
}

#[test]
fn r10_non_ascii_checksum_in_the_postgres_tracking_table_does_not_panic() {
    let db = ScratchPg::new("odd_sum");
    let p = project("postgres", "never");
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id INT);\n");
    migrate(&p, &db.url, &[]).status(0);
    db.client()
        .execute(
            "UPDATE deploy_action_migrations SET checksum = $1",
            &[&ODD_CHECKSUM],
        )
        .unwrap();
    non_ascii_checksum_is_reported(&p, &db.url);
}

// ------------------------------------------------------------------------------------------ backups

#[test]
fn r10_backups_are_written_0600_in_a_0700_directory() {
    let p = project("sqlite", "always");
    // An existing directory open to everyone is tightened.
    let dir = p.path().join(".deploy-action/backups/dev");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id INT);\n");
    migrate(&p, "sqlite://app.db", &[]).status(0);
    p.file("migrations/0002_b.sql", "CREATE TABLE b (id INT);\n");
    migrate(&p, "sqlite://app.db", &[]).status(0);
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // A new directory is created private, parents included.
    let fresh = p.path().join("private/backups");
    p.file("migrations/0003_c.sql", "CREATE TABLE c (id INT);\n");
    migrate(
        &p,
        "sqlite://app.db",
        &["--backup-dir", fresh.to_str().unwrap()],
    )
    .status(0);
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&p.path().join("private")), 0o700);
    for f in std::fs::read_dir(&fresh).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

#[test]
fn r10_pruning_prod_keeps_the_backups_of_prod_eu() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nenvironments:\n  prod:\n    hosts: [\"local\"]\n    dir: .\n    backup: always\n    database: { url_env: PROD_DB }\n  prod-eu:\n    hosts: [\"local\"]\n    dir: .\n    backup: always\n    database: { url_env: EU_DB }\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
    );
    let shared = p.path().join("backups");
    let run = |env: &str, keep: &str| {
        p.run(&[
            "migrate",
            "--env",
            env,
            "--backup-dir",
            shared.to_str().unwrap(),
            "--keep-backups",
            keep,
        ])
        .env("PROD_DB", "sqlite://prod.db")
        .env("EU_DB", "sqlite://eu.db")
        .go()
    };
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    for i in 1..=2 {
        p.file(
            &format!("migrations/{i:04}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id INT);\n"),
        );
        run("prod-eu", "5").status(0);
    }
    let eu: Vec<String> = names();
    assert_eq!(eu.len(), 2, "{eu:?}");
    for i in 3..=4 {
        p.file(
            &format!("migrations/{i:04}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id INT);\n"),
        );
        run("prod", "1").status(0);
    }
    let all = names();
    let prod: Vec<&String> = all.iter().filter(|n| n.starts_with("prod-2")).collect();
    assert_eq!(prod.len(), 1, "prod keeps 1: {all:?}");
    for e in &eu {
        assert!(all.contains(e), "{e} (prod-eu) was pruned by prod: {all:?}");
    }
}

// ------------------------------------------------------------------- transaction control refused

#[test]
fn r10_sqlite_commit_in_a_migration_is_refused_before_anything_runs() {
    let p = project("sqlite", "always");
    p.file("migrations/0001_ok.sql", "CREATE TABLE ok (id INT);\n")
        .file(
            "migrations/0002_half.sql",
            "CREATE TABLE half (id INT);\nINSERT INTO half VALUES (1);\n  COMMIT;\nINSERT INTO missing VALUES (1);\n",
        );
    for args in [&["--dry-run"][..], &[]] {
        migrate(&p, "sqlite://app.db", args)
            .status(2)
            .stderr_has("migrations/0002_half.sql:3:3: `COMMIT` controls the transaction")
            .stderr_has("nothing was run")
            .stderr_has("-- deploy-action: no-transaction")
            .nowhere("rolled back whole");
    }
    // Nothing ran: no database file, no backup.
    assert!(!p.path().join("app.db").exists());
    assert!(!p.path().join(".deploy-action/backups").exists());
    // Marked no-transaction, the same kind of file runs (its statements one by one).
    p.file(
        "migrations/0002_half.sql",
        "-- deploy-action: no-transaction\nBEGIN;\nCREATE TABLE half (id INT);\nCOMMIT;\n",
    );
    migrate(&p, "sqlite://app.db", &[]).status(0);
}

#[test]
fn r10_pg_transaction_control_in_a_migration_is_refused_before_anything_runs() {
    let db = ScratchPg::new("txctl");
    let p = project("postgres", "never");
    p.file("migrations/0001_ok.sql", "CREATE TABLE ok (id INT);\n")
        .file(
            "migrations/0002_bad.sql",
            "-- a comment saying COMMIT;\nCREATE TABLE t (id INT);\nstart transaction isolation level serializable;\n",
        );
    migrate(&p, &db.url, &[])
        .status(2)
        .stderr_has("migrations/0002_bad.sql:3:1: `START TRANSACTION` controls the transaction")
        .nowhere(&password());
    assert!(
        db.query_strings("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .is_empty(),
        "nothing ran, not even 0001 or the tracking table"
    );
}

#[test]
fn r10_legal_begin_and_end_in_bodies_are_not_refused() {
    // PostgreSQL: a DO block, a plpgsql function and a BEGIN ATOMIC function.
    let db = ScratchPg::new("txbodies");
    let p = project("postgres", "never");
    p.file(
        "migrations/0001_bodies.sql",
        "CREATE TABLE t (id INT);\n\
DO $$ BEGIN INSERT INTO t VALUES (1); END $$;\n\
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN 2; END; $f$;\n\
CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 3 ELSE 0 END;\nEND;\n\
INSERT INTO t SELECT f() UNION ALL SELECT g(1);\n",
    );
    migrate(&p, &db.url, &[]).status(0);
    assert_eq!(
        db.query_strings("SELECT id::text FROM t ORDER BY id"),
        vec!["1", "2", "3"]
    );
    // SQLite: a trigger body.
    let p = project("sqlite", "never");
    p.file(
        "migrations/0001_trigger.sql",
        "CREATE TABLE a (id INT);\nCREATE TABLE log (m TEXT);\n\
CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN\n  INSERT INTO log VALUES (CASE WHEN new.id > 1 THEN 'big' ELSE 'small' END);\nEND;\n\
INSERT INTO a VALUES (2);\n",
    );
    migrate(&p, "sqlite://app.db", &[]).status(0);
    let c = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    let m: String = c.query_row("SELECT m FROM log", [], |r| r.get(0)).unwrap();
    assert_eq!(m, "big");
}

/// The driver's own guard, for a COMMIT the scanner would not see: the migration's error is kept
/// and it is never reported as rolled back.
#[test]
fn r10_sqlite_a_migration_that_ends_the_transaction_is_never_reported_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let book = |v: u64| Bookkeeping::Insert {
        version: v,
        name: "x".into(),
        checksum: "c".into(),
        applied_by: "t".into(),
        release: None,
    };
    let file = SqlFile::new(
        "0001_x.sql",
        "CREATE TABLE half (id INT);\nCOMMIT;\nINSERT INTO missing VALUES (1);\n",
    );
    for locked in [true, false] {
        let _ = std::fs::remove_file(&path);
        let mut db = SqliteDatabase::open(&path, "app.db", Duration::from_secs(5)).unwrap();
        if locked {
            db.lock(Duration::from_secs(5)).unwrap();
        }
        db.ensure_table().unwrap();
        let err = db.run(&file, &book(1)).unwrap_err();
        let DbError::NotRolledBack { message, .. } = &err else {
            panic!("expected NotRolledBack, got {err:?}");
        };
        assert!(message.contains("no such table: missing"), "{message}");
        assert!(message.contains("stays committed"), "{message}");
        drop(db);
        // What the message claims: the part before COMMIT is there.
        let c = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "locked={locked}");
    }
}
