//! Issue 10, guarded production, through the real binary: one approval for every change on an
//! environment with `approval: required` (`up`, `pages`, `rollback`, `promote`, `migrate`), bound
//! to the run's plan and refused when the plan changes; `min_approvals` and self-approval; the
//! deploy rules (`branches:`, a clean tree); the live release as the base of change detection.

use crate::fake_cloudflare::FakeCloudflare;
use crate::fake_github::{FakeGitHub, comment, hash_in};
use crate::harness::{Outcome, Project};
use crate::up::{Stack, WEB_V1, WEB_V2, free_port, service_yaml, sh};

/// The environment of a run in GitHub Actions against the local GitHub fake.
pub(crate) fn actions_env(
    p: &Project,
    gh: &FakeGitHub,
    actor: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_TOKEN", gh.token.clone()),
        ("GITHUB_REPOSITORY", "o/r".into()),
        ("GITHUB_RUN_ID", "7".into()),
        ("GITHUB_ACTOR", actor.into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_API_URL", gh.url.clone()),
        (
            "GITHUB_STEP_SUMMARY",
            p.path().join("summary.md").display().to_string(),
        ),
        (
            "GITHUB_OUTPUT",
            p.path().join("output.txt").display().to_string(),
        ),
    ]
}

/// SQLite tables of the database file `db` in the project.
fn tables(p: &Project, db: &str) -> Vec<String> {
    let path = p.path().join(db);
    if !path.exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn migrations_project(env_keys: &str) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  production:\n    database: {{ url_env: APP_DB }}\n{env_keys}migrations:\n  dir: migrations\n  engine: sqlite\n"
    ))
    .file(
        "migrations/0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    p.commit("migrations");
    p
}

fn migrate(p: &Project, extra: &[&str]) -> Outcome {
    let mut args = vec!["migrate", "--env", "production"];
    args.extend_from_slice(extra);
    p.run(&args).env("APP_DB", "sqlite://app.db").go()
}

/// Must show: on an environment with `approval: required`, `up`, `rollback`, `pages`, `promote`
/// and `migrate` each exit 3 without an approval (no terminal, no GitHub), `--yes` included, and
/// change nothing.
#[test]
fn r10_every_change_on_a_guarded_environment_exits_3_without_an_approval() {
    // up and rollback, on a real compose stack with two releases.
    let s = Stack::new("guard", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    s.compose(WEB_V2, WEB_V1);
    s.up(&["--all"]).status(0);
    assert_eq!(s.web_body(), "v2");
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    s.project.manifest(&manifest.replace(
        "    keep_releases: 5\n",
        "    keep_releases: 5\n    approval: required\n",
    ));
    s.project.commit("production is guarded");
    let (web, api) = (s.container("web"), s.container("api"));
    s.compose(WEB_V1, WEB_V2);
    for args in [
        vec!["up", "--env", "test", "--all", "--yes"],
        vec!["rollback", "--env", "test", "--yes"],
    ] {
        let out = s.project.run(&args).go();
        out.status(3)
            .stderr_has("requires an approval")
            .stderr_has("nothing was changed");
    }
    assert_eq!((s.container("web"), s.container("api")), (web, api));
    assert_eq!(s.web_body(), "v2");
    assert!(s.state("releases/3.json").is_empty(), "no release 3");

    // pages and promote: not one request reaches Cloudflare.
    let stg = tempfile::tempdir().unwrap();
    let prd = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\n  production:\n    hosts: [\"local\"]\n    dir: {}\n    promote_from: staging\n    approval: required\n    database: {{ url_env: APP_DB }}\nsites:\n  web:\n    project: shop-web\n    dir: site\n    production_branch: main\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
        stg.path().display(),
        prd.path().display()
    ));
    p.file("site/index.html", "<h1>v1</h1>\n").file(
        "migrations/0001_users.sql",
        "CREATE TABLE users (id INTEGER);\n",
    );
    p.commit("site");
    let cf = FakeCloudflare::start();
    let run = |args: &[&str]| {
        p.run(args)
            .envs(cf.env())
            .env("APP_DB", "sqlite://app.db")
            .go()
    };
    run(&["pages", "--env", "staging", "--all", "--branch", "staging"]).status(0);
    let requests = cf.total_requests();
    for args in [
        vec![
            "pages",
            "--env",
            "production",
            "--all",
            "--branch",
            "main",
            "--yes",
        ],
        vec!["promote", "--env", "production", "--yes"],
        vec!["migrate", "--env", "production", "--yes"],
    ] {
        run(&args)
            .status(3)
            .stderr_has("requires an approval")
            .nowhere("production: release");
    }
    assert_eq!(cf.total_requests(), requests, "no request for production");
    assert!(
        tables(&p, "app.db").is_empty(),
        "the database was not created"
    );
    assert!(
        !prd.path().join(".deploy-action/releases").exists(),
        "production has no release"
    );
}

/// Must show: a run from a branch the environment does not allow exits 2 and says which are.
#[test]
fn r10_a_run_from_a_branch_the_environment_does_not_allow_exits_2() {
    let p = migrations_project("    branches: [main, \"release/*\"]\n");
    p.git_cmd(&["checkout", "-q", "-b", "feature/x"]);
    migrate(&p, &[])
        .status(2)
        .stderr_has("may not change environment `production` from branch `feature/x`")
        .stderr_has("main, release/*");
    assert!(tables(&p, "app.db").is_empty());
    // A pull request's merge ref in GitHub Actions is not a branch.
    p.run(&["migrate", "--env", "production"])
        .env("APP_DB", "sqlite://app.db")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/pull/7/merge")
        .go()
        .status(2)
        .stderr_has("the pull request ref `refs/pull/7/merge`");
    // A dry run says so and goes on.
    migrate(&p, &["--dry-run"])
        .status(0)
        .stdout_has("a real run would stop here (exit 2)");
    p.git_cmd(&["checkout", "-q", "-b", "release/1.2"]);
    migrate(&p, &[]).status(0);
    assert_eq!(tables(&p, "app.db"), ["deploy_action_migrations", "users"]);
}

/// A working tree with uncommitted changes to tracked files exits 2 unless `--allow-dirty`, which
/// an environment with `approval: required` refuses. The tool's own `.deploy-action/` does not
/// count.
#[test]
fn r10_a_dirty_tree_exits_2_unless_allow_dirty_which_a_guarded_environment_refuses() {
    let p = migrations_project("");
    p.file(
        "migrations/0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    migrate(&p, &[])
        .status(2)
        .stderr_has("uncommitted changes to tracked files (migrations/0001_users.sql)")
        .stderr_has("--allow-dirty");
    assert!(tables(&p, "app.db").is_empty());
    migrate(&p, &["--allow-dirty"])
        .status(0)
        .stdout_has("because of --allow-dirty");
    assert_eq!(tables(&p, "app.db"), ["deploy_action_migrations", "users"]);

    let g = migrations_project("    approval: required\n    allow_self_approval: true\n");
    let text = std::fs::read_to_string(g.path().join("deploy.yml")).unwrap();
    g.file("deploy.yml", &format!("{text}# edited\n"));
    migrate(&g, &["--allow-dirty"])
        .status(2)
        .stderr_has("--allow-dirty is refused on environment `production`");
}

/// Must show: a service whose deploy failed is deployed again by the next run with no new change
/// to it: changes are computed from the live release's commit, not the previous commit.
#[test]
fn r10_a_service_whose_deploy_failed_is_deployed_again_by_the_next_run() {
    crate::harness::services::require_docker();
    let ready = Ready::start();
    let p = Project::git();
    let host = tempfile::tempdir().unwrap();
    let name = format!("da-guard-base-{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(name.clone());
    let (wp, ap) = (free_port(), free_port());
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  test:\n    hosts: [\"local\"]\n    dir: {dir}\n    compose_files: [compose.yml]\n    compose_project: {name}\nservices:\n  web:\n    paths: [\"web/**\"]\n    build: {{ context: web, image: da-guard/{name} }}\n    health: {{ url: \"http://127.0.0.1:{rp}/ready\", timeout: 4s }}\n  api:\n    paths: [\"api/**\"]\n",
        dir = host.path().display(),
        rp = ready.port,
    ));
    p.file(
        "compose.yml",
        &format!(
            "services:\n{}{}",
            service_yaml("web", WEB_V1, wp),
            service_yaml("api", WEB_V1, ap)
        ),
    );
    p.file(
        "web/Dockerfile",
        &format!("FROM {WEB_V1}\nCOPY index.html /www/index.html\n"),
    );
    p.file("web/index.html", "A");
    p.file("api/notes.txt", "1");
    p.commit("A");
    let up = || p.run(&["up", "--env", "test"]).go();
    p.run(&["up", "--env", "test", "--all"]).go().status(0);
    let body = || sh(&format!("curl -fsS http://127.0.0.1:{wp}/"));
    assert_eq!(body(), "A");

    // B changes web, and its gate fails (the dependency it checks is down): rolled back.
    p.file("web/index.html", "B");
    p.commit("B");
    ready.set(false);
    up().status(1).stderr_has("up failed: web failed");
    assert_eq!(body(), "A", "the previous version is serving");

    // C touches only api. The previous commit (B) changed web, but B is not what runs: the live
    // release is still A's, so web is affected and deployed again.
    p.file("api/notes.txt", "2");
    p.commit("C");
    ready.set(true);
    let plan = p.run(&["plan", "--env", "test"]).go();
    plan.status(0)
        .stdout_has("base: release 1 of test, the live release")
        .stdout_has("2 of 2 units affected");
    up().status(0).stdout_has("affected services: web, api");
    assert_eq!(body(), "B");
}

/// A tiny HTTP endpoint the health gate checks: 200 while ready, else 503.
struct Ready {
    port: u16,
    ok: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ready {
    fn start() -> Ready {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = ok.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let (status, body) = if flag.load(Ordering::Relaxed) {
                    ("200 OK", "ready")
                } else {
                    ("503 Service Unavailable", "down")
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ready { port, ok }
    }

    fn set(&self, ok: bool) {
        self.ok.store(ok, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Removes a test's compose project and images.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let p = &self.0;
        sh(&format!(
            "docker ps -aq --filter label=com.docker.compose.project={p} | xargs -r docker rm -f >/dev/null 2>&1; \
             docker network rm {p}_default >/dev/null 2>&1; \
             docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep -F 'da-guard/{p}' | xargs -r docker rmi >/dev/null 2>&1; true"
        ));
    }
}

/// `promote` with migrations asks once: its one approval issue shows the SQL and covers the
/// migration it runs.
#[test]
fn r10_promote_with_migrations_asks_once() {
    let stg = tempfile::tempdir().unwrap();
    let prd = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: STG_DB }}\n  production:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: PRD_DB }}\n    promote_from: staging\n    approval: required\n    approvers: [alice]\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
        stg.path().display(),
        prd.path().display()
    ))
    .file(
        "migrations/0001_users.sql",
        "CREATE TABLE users (id INTEGER);\n",
    );
    p.commit("migrations");
    let gh = FakeGitHub::start().comments(|issue| {
        vec![comment(
            "alice",
            &format!("approve {}", &hash_in(issue)[..16]),
        )]
    });
    let run = |args: &[&str]| {
        p.run(args)
            .envs(actions_env(&p, &gh, "dave"))
            .env("STG_DB", "sqlite://stg.db")
            .env("PRD_DB", "sqlite://prd.db")
            .go()
    };
    run(&["migrate", "--env", "staging"]).status(0);
    run(&["promote", "--env", "production"])
        .status(0)
        .stdout_has("approved by alice (github-issue)");
    let issues = gh.state.lock().unwrap().issues.len();
    assert_eq!(issues, 1, "one approval for the whole promote");
    let body = gh.issue_body().unwrap();
    assert!(
        body.contains("promote release") && body.contains("CREATE TABLE users"),
        "{body}"
    );
    assert_eq!(tables(&p, "prd.db"), ["deploy_action_migrations", "users"]);
}

/// `min_approvals: 2` needs two different approvers; the run's own actor does not count unless
/// `allow_self_approval: true`.
#[test]
fn r10_min_approvals_and_self_approval() {
    let keys = "    approval: required\n    approvers: [alice, bob, dave]\n    min_approvals: 2\n";
    let p = migrations_project(keys);
    let once = FakeGitHub::start().comments(|issue| {
        let h = hash_in(issue);
        vec![
            comment("dave", &format!("approve {h}")),
            comment("alice", &format!("approve {h}")),
        ]
    });
    p.run(&["migrate", "--env", "production", "--approval-timeout", "1s"])
        .envs(actions_env(&p, &once, "dave"))
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(3)
        .stdout_has("from dave, who started this run (allow_self_approval is false)")
        .stderr_has("no approval within");
    assert!(tables(&p, "app.db").is_empty());
    let twice = FakeGitHub::start().comments(|issue| {
        let h = hash_in(issue);
        vec![
            comment("alice", &format!("approve {h}")),
            comment("bob", &format!("approve {h}")),
        ]
    });
    p.run(&["migrate", "--env", "production", "--approval-timeout", "5s"])
        .envs(actions_env(&p, &twice, "dave"))
        .env("APP_DB", "sqlite://app.db")
        .go()
        .status(0)
        .stdout_has("approved by alice, bob");
    let body = twice.issue_body().unwrap();
    assert!(body.contains("2 different approvers"), "{body}");
    assert_eq!(tables(&p, "app.db"), ["deploy_action_migrations", "users"]);
}

/// An approval is bound to the plan: a compose file changed while the approval was pending makes
/// `up` refuse (exit 3) with nothing deployed.
#[test]
fn r10_up_refuses_a_plan_that_changed_after_it_was_approved() {
    let s = Stack::new("guardchg", "\"local\"", 5);
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    s.project.manifest(&manifest.replace(
        "    keep_releases: 5\n",
        "    keep_releases: 5\n    approval: required\n    approvers: [alice]\n",
    ));
    s.project.commit("guarded");
    let root = s.project.path().to_path_buf();
    let port = s.web_port;
    // The approver answers; meanwhile someone edits the compose file in the checkout.
    let gh = FakeGitHub::start().comments(move |issue| {
        let compose = root.join("compose.yml");
        let text = std::fs::read_to_string(&compose).unwrap();
        if !text.contains("edited") {
            std::fs::write(&compose, format!("{text}# edited after the approval\n")).unwrap();
            sh(&format!("cd {} && git commit -qam edited", root.display()));
        }
        vec![comment("alice", &format!("approve {}", hash_in(issue)))]
    });
    let out = s
        .project
        .run(&["up", "--env", "test", "--all"])
        .envs(actions_env(&s.project, &gh, "dave"))
        .go();
    out.status(3)
        .stderr_has("changed after it was approved")
        .stderr_has("nothing was changed");
    assert!(s.container("web").is_empty(), "nothing was deployed");
    assert!(sh(&format!("curl -fsS http://127.0.0.1:{port}/")).is_empty());
    let body = gh.issue_body().unwrap();
    assert!(
        body.contains("files uploaded") && body.contains("compose.yml"),
        "{body}"
    );
}
