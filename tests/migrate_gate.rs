//! The approval gate, through the real binary: no approval and no terminal → exit 3 with the
//! database untouched; `--yes` does not help; typing the environment's name at a real terminal
//! (`script` gives the binary a pty) applies after a verified backup; GitHub approvals through the
//! local fake API (a required reviewer's review, an approval issue, a denial, a stale plan hash).

use crate::fake_github::{FakeGitHub, comment, hash_in, review};
use crate::harness::{BIN, Project};

const MANIFEST: &str = r#"version: 1
project: shop
environments:
  production:
    hosts: ["local"]
    dir: .
    approval: required
    approvers: [alice]
    database: { url_env: APP_DB }
migrations:
  dir: migrations
  engine: sqlite
"#;

fn project() -> Project {
    let p = Project::git();
    p.manifest(MANIFEST)
        .file(
            "migrations/0001_users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
        )
        .file(
            "migrations/0002_orders.sql",
            "CREATE TABLE orders (id INTEGER);\n",
        );
    p.commit("migrations");
    p
}

fn tables(p: &Project) -> Vec<String> {
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

fn backups(p: &Project) -> usize {
    std::fs::read_dir(p.path().join(".deploy-action/backups/production"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn no_approval_without_a_terminal_is_exit_3_and_untouched_even_with_yes() {
    let p = project();
    p.run(&["migrate", "--env", "production"])
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(3)
        .stderr_has("requires an approval");
    p.run(&["migrate", "--env", "production", "--yes"])
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(3)
        .stderr_has("--yes never skips it");
    assert!(tables(&p).is_empty(), "the database was touched");
    assert_eq!(backups(&p), 0);
    let audit =
        std::fs::read_to_string(p.path().join(".deploy-action/audit/production.log")).unwrap();
    assert!(audit.contains("approval-refused"), "{audit}");
}

/// Runs the binary under `script`, so it gets a real terminal, typing `answer`.
fn under_terminal(p: &Project, answer: &str) -> (i32, String) {
    let cmd = format!("{BIN} migrate --env production");
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(p.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("NO_COLOR", "1")
        .env("USER", "carol")
        .env("APP_DB", "sqlite://app.db")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(answer.as_bytes())?;
            drop(stdin);
            child.wait_with_output()
        })
        .expect("script (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn typing_the_environment_name_at_a_terminal_applies_after_a_backup() {
    let p = project();
    // The person at the terminal is the run's own actor: refused unless the environment allows
    // self-approval.
    let (code, out) = under_terminal(&p, "production\n");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("allow_self_approval: true"), "{out}");
    assert!(tables(&p).is_empty(), "{out}");
    p.manifest(&MANIFEST.replace(
        "approval: required\n",
        "approval: required\n    allow_self_approval: true\n",
    ));
    p.commit("the operator may approve");
    let (code, out) = under_terminal(&p, "staging\n");
    assert_eq!(code, 3, "{out}");
    assert!(tables(&p).is_empty(), "{out}");
    let (code, out) = under_terminal(&p, "production\n");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Type the environment's name (production)"),
        "{out}"
    );
    assert!(
        out.contains("CREATE TABLE orders"),
        "the plan was shown: {out}"
    );
    assert!(out.contains("backup written and verified"), "{out}");
    assert_eq!(
        tables(&p),
        vec!["deploy_action_migrations", "orders", "users"]
    );
    assert_eq!(backups(&p), 1);
    let audit =
        std::fs::read_to_string(p.path().join(".deploy-action/audit/production.log")).unwrap();
    assert!(
        audit.contains("carol") && audit.contains("terminal"),
        "{audit}"
    );
}

fn in_actions(p: &Project, gh: &FakeGitHub, extra: &[&str]) -> crate::harness::Outcome {
    let mut args = vec!["migrate", "--env", "production", "--approval-timeout", "2s"];
    args.extend_from_slice(extra);
    let summary = p.path().join("summary.md");
    let output = p.path().join("output.txt");
    p.run(&args)
        .env("APP_DB", "sqlite://app.db")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_TOKEN", &gh.token)
        .env("GITHUB_REPOSITORY", "o/r")
        .env("GITHUB_RUN_ID", "7")
        .env("GITHUB_ACTOR", "dave")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_API_URL", &gh.url)
        .env("GITHUB_STEP_SUMMARY", summary.to_string_lossy())
        .env("GITHUB_OUTPUT", output.to_string_lossy())
        .go()
}

#[test]
fn github_required_reviewer_approval_counts() {
    let p = project();
    let gh = FakeGitHub::start().reviews(vec![review("erin", "approved", "production", "ship it")]);
    let out = in_actions(&p, &gh, &[]);
    out.status(0);
    // The token appears only in the runner's ::add-mask:: command.
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        assert!(
            !line.contains(&gh.token) || line.starts_with("::add-mask::"),
            "token printed: {line}"
        );
    }
    assert_eq!(
        tables(&p),
        vec!["deploy_action_migrations", "orders", "users"]
    );
    let summary = std::fs::read_to_string(p.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("erin") && summary.contains("github-environment-review"),
        "{summary}"
    );
    let output = std::fs::read_to_string(p.path().join("output.txt")).unwrap();
    assert!(output.contains("migration-version=2"), "{output}");
    // The approval is read first; then the migration is a release: a GitHub deployment and the
    // tags deploy/production/1 and production.
    let log = gh.log();
    assert_eq!(log[0], "GET /repos/o/r/actions/runs/7/approvals");
    for call in [
        "POST /repos/o/r/deployments",
        "POST /repos/o/r/git/tags",
        "POST /repos/o/r/deployments/1001/statuses",
    ] {
        assert!(log.iter().any(|l| l == call), "{call} missing: {log:?}");
    }
    let st = gh.state.lock().unwrap();
    assert_eq!(st.deployments[0]["task"], "deploy:migrations");
    let tag = &st.refs["refs/tags/deploy/production/1"];
    let record: serde_json::Value =
        serde_json::from_str(st.tag_objects[tag]["message"].as_str().unwrap()).unwrap();
    assert_eq!(record["migration_version"], "2");
}

#[test]
fn github_issue_approval_bound_to_the_plan_hash() {
    let p = project();
    let gh = FakeGitHub::start().comments(|issue| {
        vec![
            comment("mallory", "approve"),
            comment("alice", &format!("approve {}", &hash_in(issue)[..12])),
        ]
    });
    in_actions(&p, &gh, &[]).status(0);
    let body = gh.issue_body().expect("an approval issue was opened");
    assert!(
        body.contains("CREATE TABLE orders") && hash_in(&body).len() == 64,
        "{body}"
    );
    assert!(gh.closed());
    assert_eq!(
        tables(&p),
        vec!["deploy_action_migrations", "orders", "users"]
    );
    let log = gh.log();
    assert!(
        log.contains(&"POST /repos/o/r/issues".to_string()),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /repos/o/r/issues/1/comments?per_page=100&page=1")),
        "{log:?}"
    );
}

#[test]
fn github_stale_plan_hash_and_denial_are_refused() {
    let p = project();
    let stale =
        FakeGitHub::start().comments(|_| vec![comment("alice", "approve ffffffffffffffff")]);
    in_actions(&p, &stale, &[])
        .status(3)
        .stdout_has("not this plan")
        .stderr_has("no approval within");
    assert!(tables(&p).is_empty());
    let deny = FakeGitHub::start().comments(|_| vec![comment("alice", "deny")]);
    in_actions(&p, &deny, &["--yes"])
        .status(3)
        .stderr_has("denied by alice");
    assert!(tables(&p).is_empty());
    assert_eq!(backups(&p), 0);
}

#[test]
fn postgres_password_is_never_printed() {
    let db = crate::migrate::ScratchPg::new("mask");
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: .\n    database: { url_env: DB }\nmigrations:\n  dir: migrations\n  engine: postgres\n",
    )
    .file("migrations/0001_a.sql", "CREATE TABLE a (id int);\n")
    .file("migrations/0002_b.sql", "CREATE TABLE b (id int);\nSELECT 1/0;\n");
    let password = crate::harness::services::var("DA_TEST_PG_URL")
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw.to_string())
        .expect("the test URL has a password");
    let out = p
        .run(&["migrate", "--env", "staging", "--json"])
        .env("DB", &db.url)
        .go();
    out.status(1)
        .stderr_has("0002_b.sql")
        .stderr_has("statement: SELECT 1/0")
        .stderr_has("division by zero")
        .nowhere(&password);
    let doc = out.json();
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["version"], "1");
    assert_eq!(doc["migrations"][1]["result"], "failed", "{doc}");
    p.run(&["migrate", "status", "--env", "staging", "--json"])
        .env("DB", &db.url)
        .go()
        .status(0)
        .nowhere(&password);
    assert_eq!(
        db.query_strings("SELECT name FROM deploy_action_migrations"),
        vec!["a"]
    );
}

#[test]
fn dry_run_status_and_a_refused_gate_create_no_database_file() {
    let p = project();
    let db = p.path().join("app.db");
    p.run(&["migrate", "--env", "production", "--dry-run"])
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(0)
        .stdout_has("CREATE TABLE orders");
    p.run(&["migrate", "status", "--env", "production"])
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(0)
        .stdout_has("pending");
    p.run(&["migrate", "--env", "production", "--yes"])
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(3);
    assert!(!db.exists(), "{} was created", db.display());
    assert_eq!(backups(&p), 0);
}

#[test]
fn github_approval_of_sql_that_changed_meanwhile_is_refused() {
    let p = project();
    let pending = p.path().join("migrations/0002_orders.sql");
    // Alice approves the plan the issue shows; meanwhile the pending file is edited.
    let gh = FakeGitHub::start().comments(move |issue| {
        std::fs::write(
            &pending,
            "CREATE TABLE orders (id INTEGER);\nDROP TABLE users;\n",
        )
        .unwrap();
        vec![comment(
            "alice",
            &format!("approve {}", &hash_in(issue)[..12]),
        )]
    });
    in_actions(&p, &gh, &[])
        .status(3)
        .stderr_has("the plan changed after it was approved");
    assert!(
        !p.path().join("app.db").exists(),
        "the database was created or touched"
    );
    assert_eq!(backups(&p), 0);
    let audit =
        std::fs::read_to_string(p.path().join(".deploy-action/audit/production.log")).unwrap();
    assert!(audit.contains("plan-changed"), "{audit}");
}
