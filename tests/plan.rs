//! `plan`: the exact commands per unit and host, the `--json` document, environment selection.

use crate::changes::{MANIFEST, shop};
use crate::harness::Project;

#[test]
fn plan_shows_exact_commands_and_hosts() {
    let p = shop();
    let head = p.git_cmd(&["rev-parse", "HEAD"]).trim().to_string();
    let out = p.run(&["plan", "--env", "staging", "--all"]).go();
    out.status(0)
        .stdout_has("==> plan (staging)")
        .stdout_has("api (service)")
        .stdout_has("build  local")
        .stdout_has("sh -c 'echo building api > api.built'")
        .stdout_has("test   local")
        .stdout_has("sh -c 'echo testing api'")
        .stdout_has(&format!(
            "docker build -t shop/worker:{head} -f services/worker/Dockerfile services/worker"
        ))
        .stdout_has("sh -c 'echo building web'")
        .stdout_has("migrations (migrations)");
    // up runs on every host of the environment, restarting only the service.
    for host in ["local", "deploy@staging.example.com:22"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains("up ") && l.contains(host) && l.contains("--no-deps api"))
            .unwrap_or_else(|| panic!("no up line for {host}:\n{}", out.stdout));
        assert!(
            line.contains(
                "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml up -d --no-deps api"
            ),
            "{line}"
        );
    }
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
            "up:api@local",
            "up:api@deploy@staging.example.com:22"
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
        steps[3]["target"]["host"],
        "ssh://deploy@staging.example.com:22"
    );
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
