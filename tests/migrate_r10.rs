//! Issue 10's database findings, against the real test PostgreSQL (TLS on, with the CA made by
//! scripts/test-env.sh) and real SQLite files, through the real binary:
//! TLS by `sslmode`, a non-ASCII checksum in the tracking table, private backups and pruning by
//! environment, and transaction control in a transactional migration.

use crate::harness::{Outcome, Project, services};
use crate::migrate::ScratchPg;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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

