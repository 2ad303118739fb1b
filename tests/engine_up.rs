//! Issue 11, deliverable 6, for compose services: the steps `--dry-run` walks are the steps the
//! real run walks, against the real Docker engine — for an `up` that passes, an `up` whose health
//! gate fails and rolls back, `promote` and `rollback`. Both runs print their steps with `--json`
//! (`steps: [{id, walked, describe}]`); the ids must be equal, in order. `walked` differs only
//! where a guard decides: a dry run shows the rollback branch as `conditional`, a real run as
//! `performed` (the gate failed) or `skipped` (it passed).

use crate::harness::Outcome;
use crate::up::{Stack, WEB_BROKEN, WEB_V1, WEB_V2, free_port, service_yaml, sh};

/// Removes a compose project's containers, network and release tags when dropped.
struct DropProject(String);

impl Drop for DropProject {
    fn drop(&mut self) {
        let p = &self.0;
        sh(&format!(
            "docker ps -aq --filter label=com.docker.compose.project={p} | xargs -r docker rm -f >/dev/null 2>&1; \
             docker network rm {p}_default >/dev/null 2>&1; \
             docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep -F ':{p}.' | xargs -r docker rmi >/dev/null 2>&1; true"
        ));
    }
}

/// The `steps` of a `--json` run: (id, walked).
fn steps(out: &Outcome) -> Vec<(String, String)> {
    let doc = out.json();
    doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in:\n{}\n--- stderr\n{}", out.stdout, out.stderr))
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["walked"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ids(steps: &[(String, String)]) -> Vec<&str> {
    steps.iter().map(|(id, _)| id.as_str()).collect()
}

/// How each step was walked, by id.
fn walked<'a>(steps: &'a [(String, String)], id: &str) -> &'a str {
    steps
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, w)| w.as_str())
        .unwrap_or_else(|| panic!("no step {id} in {steps:?}"))
}

/// Every step but the rollback branch was performed (a dry run: recorded).
#[track_caller]
fn all_performed_but_the_rollback(steps: &[(String, String)]) {
    for (id, w) in steps {
        if !id.starts_with("up:rollback@") {
            assert_eq!(w, "performed", "{id} in {steps:?}");
        }
    }
}

#[test]
fn r11_a_dry_run_of_a_passing_up_walks_the_steps_the_up_walks() {
    let s = Stack::new("eqpass", "\"local\"", 5);
    // A first deploy: no release, no container.
    let dry = s.up(&["--all", "--dry-run", "--json"]);
    dry.status(0);
    assert!(
        !s.host_dir.path().join(".deploy-action").exists(),
        "the dry run changed nothing"
    );
    let real = s.up(&["--all", "--json"]);
    real.status(0);
    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    assert_eq!(
        ids(&real),
        [
            "up:lock@local",
            "up:files@local",
            "up:record@local",
            "up:compose-up@local",
            "up:gate@local",
            "up:rollback@local",
            "up:finish@local"
        ]
    );
    all_performed_but_the_rollback(&dry);
    all_performed_but_the_rollback(&real);
    assert_eq!(walked(&dry, "up:rollback@local"), "conditional");
    assert_eq!(walked(&real, "up:rollback@local"), "skipped");

    // An update of one service on a host with a live release: protective tags, the superseded
    // release, compose #12069's probe; still the same steps.
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    let dry = s.up(&["--only", "web", "--dry-run", "--json"]);
    dry.status(0);
    assert!(
        !s.host_dir
            .path()
            .join(".deploy-action/releases/2.json")
            .exists()
    );
    assert_eq!(s.web_body(), "v1");
    let real = s.up(&["--only", "web", "--json"]);
    real.status(0);
    assert_eq!(s.web_body(), "v2");
    let describe = |out: &Outcome, id: &str| -> String {
        out.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| x["describe"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        describe(&dry, "up:record@local"),
        describe(&real, "up:record@local"),
        "the same release number and protective tag"
    );
    assert!(describe(&real, "up:record@local").contains("-release-2-before"));
    assert_eq!(ids(&steps(&dry)), ids(&steps(&real)));
}

#[test]
fn r11_a_dry_run_of_an_up_whose_gate_fails_walks_the_steps_the_rollback_walks() {
    let s = Stack::new("eqfail", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    let image = format!("web={WEB_BROKEN}");
    let dry = s.up(&["--image", &image, "--yes", "--dry-run", "--json"]);
    dry.status(0);
    assert_eq!(s.web_body(), "v1");
    let real = s.up(&["--image", &image, "--yes", "--json"]);
    real.status(1).stderr_has("the previous version is serving");
    assert_eq!(s.web_body(), "v1", "rolled back");
    assert_eq!(s.record(2)["status"], "rolled_back");
    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    assert_eq!(walked(&dry, "up:rollback@local"), "conditional");
    assert_eq!(walked(&real, "up:rollback@local"), "performed");
    all_performed_but_the_rollback(&real);
    assert_eq!(ids(&real).last(), Some(&"up:finish@local"));
}

#[test]
fn r11_a_dry_run_of_promote_walks_the_steps_promote_walks() {
    let s = Stack::new("eqpromo", "\"local\"", 5);
    let prd = format!("{}-prd", s.name);
    let _cleanup = DropProject(prd.clone());
    let (pw, pa) = (free_port(), free_port());
    let d = s.host_dir.path().display().to_string();
    s.project.file(
        "compose.prod.yml",
        &format!(
            "services:\n{}{}",
            service_yaml("web", WEB_V1, pw),
            service_yaml("api", WEB_V1, pa)
        ),
    );
    s.project.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {d}/stg\n    compose_files: [compose.yml]\n    compose_project: {stg}\n  production:\n    hosts: [\"local\"]\n    dir: {d}/prd\n    compose_files: [compose.prod.yml]\n    compose_project: {prd}\n    promote_from: staging\nservices:\n  web:\n    health: {{ url: \"http://127.0.0.1:{wp}/\", timeout: 30s, expect_status: 200 }}\n  api: {{}}\n",
        stg = s.name,
        wp = s.web_port,
    ));
    s.project.commit("two environments");
    s.project
        .run(&["up", "--env", "staging", "--all"])
        .go()
        .status(0);
    let promote = |extra: &[&str]| {
        let mut args = vec!["promote", "--env", "production", "--json"];
        args.extend_from_slice(extra);
        s.project.run(&args).go()
    };
    let dry = promote(&["--dry-run"]);
    dry.status(0);
    assert!(
        !s.host_dir
            .path()
            .join("prd/.deploy-action/releases")
            .exists()
    );
    let real = promote(&[]);
    real.status(0);
    assert_eq!(sh(&format!("curl -fsS http://127.0.0.1:{pw}/")), "v1");
    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    assert!(
        ids(&real).contains(&"up:ship:web@local") && ids(&real).contains(&"up:gate@local"),
        "{real:?}"
    );
    assert_eq!(walked(&real, "up:rollback@local"), "skipped");
}

#[test]
fn r11_a_dry_run_of_rollback_walks_the_steps_rollback_walks() {
    let s = Stack::new("eqrb", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.up(&["--only", "web"]).status(0);
    assert_eq!(s.web_body(), "v2");
    let rollback = |extra: &[&str]| {
        let mut args = vec!["rollback", "--env", "test", "--json"];
        args.extend_from_slice(extra);
        s.project.run(&args).go()
    };
    let dry = rollback(&["--dry-run"]);
    dry.status(0);
    assert_eq!(s.web_body(), "v2", "the dry run changed nothing");
    let real = rollback(&[]);
    real.status(0);
    assert_eq!(s.web_body(), "v1");
    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    assert_eq!(walked(&real, "up:rollback@local"), "skipped");
    all_performed_but_the_rollback(&real);
}

/// The demo's environment `dir` is relative (`.deploy-action/local`, resolved against the
/// repository for `local`): the check before any host changes stages a rollback's files in a
/// scratch directory, and must find the release copy and the live `.env` from where it started.
#[test]
fn r11_a_rollback_of_an_environment_whose_dir_is_relative_restores_the_release_files() {
    let s = Stack::new("reldir", "\"local\"", 5);
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    let absolute = format!("dir: {}", s.host_dir.path().display());
    assert!(manifest.contains(&absolute), "{manifest}");
    s.project
        .manifest(&manifest.replace(&absolute, "dir: .deploy-action/host"));
    s.project.commit("a relative dir");
    s.up(&["--all"]).status(0);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.up(&["--only", "web"]).status(0);
    assert_eq!(s.web_body(), "v2");
    let dry = s
        .project
        .run(&["rollback", "--env", "test", "--dry-run"])
        .go();
    dry.status(0);
    let real = s.project.run(&["rollback", "--env", "test"]).go();
    real.status(0);
    assert_eq!(s.web_body(), "v1");
    assert!(
        s.project
            .path()
            .join(".deploy-action/host/compose.yml")
            .is_file(),
        "the environment lives under the repository"
    );
}
