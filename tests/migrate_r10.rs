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

