//! Change detection on throwaway git repositories: which units `plan --json` reports as affected.

use crate::harness::{Project, Run};

pub const MANIFEST: &str = r#"version: 1
project: shop
environments:
  staging:
    hosts: ["local", "ssh://deploy@staging.example.com:22"]
    dir: /srv/shop
    compose_files: [compose.yml, compose.staging.yml]
services:
  api:
    paths: ["services/api/**", "libs/**"]
    build: { command: "echo building api > api.built" }
    test: "echo testing api"
  worker:
    paths: ["services/worker/**"]
    build: { context: services/worker, dockerfile: Dockerfile, image: shop/worker }
sites:
  web:
    project: shop-web
    dir: clients/web/dist
    build: "echo building web"
    paths: ["clients/web/**"]
migrations:
  dir: migrations
  engine: postgres
  paths: ["migrations/**"]
"#;

/// A repository with the manifest and one file per unit, committed on top of the initial commit.
pub fn shop() -> Project {
    let p = Project::git();
    p.manifest(MANIFEST)
        .file("services/api/main.rs", "fn main() {}\n")
        .file("services/worker/Dockerfile", "FROM scratch\n")
        .file("clients/web/index.html", "<p>hi</p>\n")
        .file("migrations/001.sql", "create table t (id int);\n")
        .file("README.md", "shop\n");
    p.commit("shop");
    p
}

fn affected(run: Run) -> Vec<String> {
    let out = run.go();
    out.status(0);
    out.json()["affected"]
        .as_array()
        .expect("affected is an array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn plan(p: &Project) -> Run {
    p.run(&["plan", "--env", "staging", "--json"])
}

#[test]
fn one_changed_service_is_the_only_affected_unit() {
    let p = shop();
    p.file("services/api/main.rs", "fn main() { println!(); }\n");
    let head = p.commit("api");
    let base = p.git_cmd(&["rev-parse", "HEAD~1"]).trim().to_string();
    let out = plan(&p).go();
    out.status(0);
    let doc = out.json();
    assert_eq!(doc["affected"], serde_json::json!(["api"]));
    assert_eq!(doc["base"], base);
    assert_eq!(doc["head"], head);
    assert_eq!(doc["changed_files"], 1);
    assert_eq!(doc["reason"]["from"], "parent");
}

#[test]
fn shared_paths_and_migrations_each_count() {
    let p = shop();
    p.file("libs/util/lib.rs", "\n")
        .file("migrations/002.sql", "select 1;\n");
    p.commit("lib + migration");
    assert_eq!(affected(plan(&p)), vec!["api", "migrations"]);

    p.file("README.md", "changed\n");
    p.commit("docs only");
    assert!(
        affected(plan(&p)).is_empty(),
        "a file no glob matches affects nothing"
    );
}

#[test]
fn a_deleted_or_moved_file_affects_its_old_unit() {
    let p = shop();
    p.file("docs/keep", "");
    p.git_cmd(&["mv", "clients/web/index.html", "docs/index.html"]);
    p.commit("move");
    assert_eq!(affected(plan(&p)), vec!["web"]);
}

#[test]
fn the_first_commit_affects_every_unit() {
    let p = Project::new();
    p.git_cmd(&["init", "-q", "-b", "main"]);
    p.git_cmd(&["config", "user.email", "t@example.com"]);
    p.git_cmd(&["config", "user.name", "T"]);
    p.manifest(MANIFEST);
    p.commit("only commit");
    let out = plan(&p).go();
    out.status(0);
    let doc = out.json();
    assert_eq!(
        doc["affected"],
        serde_json::json!(["api", "worker", "web", "migrations"])
    );
    assert_eq!(doc["reason"]["kind"], "first_commit");
    p.run(&["plan", "--env", "staging"])
        .go()
        .status(0)
        .stdout_has("first commit");
}

#[test]
fn base_flag_diffs_from_the_merge_base() {
    let p = shop();
    p.git_cmd(&["checkout", "-q", "-b", "feature"]);
    p.file("services/api/new.rs", "\n");
    p.commit("feature work");
    p.git_cmd(&["checkout", "-q", "main"]);
    p.file("clients/web/index.html", "<p>main moved on</p>\n");
    p.commit("main work");
    p.git_cmd(&["checkout", "-q", "feature"]);
    // Only what the branch changes counts, not what landed on main since it was cut.
    let out = p
        .run(&["plan", "--env", "staging", "--json", "--base", "main"])
        .go();
    out.status(0);
    assert_eq!(out.json()["affected"], serde_json::json!(["api"]));
    assert_eq!(out.json()["reason"]["from"], "flag");
}

#[test]
fn an_unknown_base_is_exit_2_with_fetch_advice() {
    let p = shop();
    p.run(&["plan", "--env", "staging", "--base", "no-such-ref"])
        .go()
        .status(2)
        .stderr_has("`no-such-ref` (from --base) is not in this clone")
        .stderr_has("fetch-depth: 0");
}

#[test]
fn a_shallow_clone_without_the_base_says_how_to_fetch_history() {
    let origin = shop();
    origin.file("services/api/a.rs", "\n");
    origin.commit("second");
    let clone = Project::new();
    let url = format!("file://{}", origin.path().display());
    clone.git_cmd(&["clone", "-q", "--depth", "1", &url, "."]);
    clone
        .run(&["plan", "--env", "staging"])
        .go()
        .status(2)
        .stderr_has("HEAD~1 is not in this clone")
        .stderr_has("shallow clone")
        .stderr_has("git fetch --deepen=");
}

#[test]
fn all_and_only_override_the_diff() {
    let p = shop();
    assert_eq!(
        affected(p.run(&["plan", "--env", "staging", "--json", "--all"])),
        vec!["api", "worker", "web", "migrations"]
    );
    assert_eq!(
        affected(p.run(&[
            "plan",
            "--env",
            "staging",
            "--json",
            "--only",
            "migrations",
            "api"
        ])),
        vec!["api", "migrations"],
        "manifest order, whatever the order given"
    );
    assert_eq!(
        affected(p.run(&["plan", "--env", "staging", "--json", "--only", "web,worker"])),
        vec!["worker", "web"]
    );
    p.run(&["plan", "--env", "staging", "--only", "wrker"])
        .go()
        .status(2)
        .stderr_has("unknown unit `wrker`")
        .stderr_has("did you mean `worker`?");
}

#[test]
fn outside_a_git_repository_is_exit_2_unless_units_are_named() {
    let p = Project::new();
    p.manifest(MANIFEST);
    p.run(&["plan", "--env", "staging"])
        .go()
        .status(2)
        .stderr_has("not in a git repository")
        .stderr_has("--all");
    assert_eq!(
        affected(p.run(&["plan", "--env", "staging", "--json", "--only", "api"])),
        vec!["api"]
    );
}

#[test]
fn github_push_event_uses_before() {
    let p = shop();
    let before = p.git_cmd(&["rev-parse", "HEAD"]).trim().to_string();
    p.file("clients/web/app.js", "1\n");
    p.commit("web 1");
    p.file("services/worker/Dockerfile", "FROM busybox\n");
    p.commit("worker");
    p.file(
        "event.json",
        &format!(r#"{{"before":"{before}","after":"x"}}"#),
    );
    let out = plan(&p)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "push")
        .env(
            "GITHUB_EVENT_PATH",
            p.path().join("event.json").display().to_string(),
        )
        .go();
    out.status(0);
    let doc = out.json();
    // event.json itself is uncommitted; the two commits since `before` are what counts.
    assert_eq!(doc["affected"], serde_json::json!(["worker", "web"]));
    assert_eq!(doc["base"], before);
    assert_eq!(doc["reason"]["from"], "push_event");
}

#[test]
fn github_push_that_creates_a_branch_affects_everything() {
    let p = shop();
    p.file(
        "event.json",
        &format!(r#"{{"before":"{}"}}"#, "0".repeat(40)),
    );
    let run = |json: bool| {
        let mut args = vec!["plan", "--env", "staging"];
        if json {
            args.push("--json");
        }
        p.run(&args)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", "push")
            .env(
                "GITHUB_EVENT_PATH",
                p.path().join("event.json").display().to_string(),
            )
            .go()
    };
    let out = run(true);
    out.status(0);
    assert_eq!(out.json()["reason"]["kind"], "new_branch");
    assert_eq!(out.json()["affected"].as_array().unwrap().len(), 4);
    run(false).status(0).stdout_has("new branch");
}

#[test]
fn github_pull_request_uses_the_base_sha() {
    let p = shop();
    let base = p.git_cmd(&["rev-parse", "HEAD"]).trim().to_string();
    p.git_cmd(&["checkout", "-q", "-b", "pr"]);
    p.file("migrations/002.sql", "select 2;\n");
    p.commit("pr 1");
    p.file("services/api/x.rs", "\n");
    p.commit("pr 2");
    p.file(
        "event.json",
        &format!(r#"{{"pull_request":{{"base":{{"sha":"{base}"}},"head":{{"sha":"h"}}}}}}"#),
    );
    for event in ["pull_request", "pull_request_target"] {
        let out = plan(&p)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env(
                "GITHUB_EVENT_PATH",
                p.path().join("event.json").display().to_string(),
            )
            .go();
        out.status(0);
        assert_eq!(
            out.json()["affected"],
            serde_json::json!(["api", "migrations"])
        );
        assert_eq!(out.json()["reason"]["from"], "pull_request_event");
    }
}

#[test]
fn github_event_base_missing_from_the_clone_is_exit_2() {
    let p = shop();
    p.file(
        "event.json",
        &format!(
            r#"{{"before":"{}"}}"#,
            "1234567890abcdef".repeat(2) + "12345678"
        ),
    );
    plan(&p)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "push")
        .env(
            "GITHUB_EVENT_PATH",
            p.path().join("event.json").display().to_string(),
        )
        .go()
        .status(2)
        .stderr_has("is not in this clone")
        .stderr_has("git fetch origin 1234567890abcdef");
}
