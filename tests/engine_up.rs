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

/// Staging (the stack, deployed) and production (its own compose project, promoted from
/// staging, not deployed yet). Returns production's project guard and its web port.
fn staging_and_production(s: &Stack) -> (DropProject, u16) {
    let prd = format!("{}-prd", s.name);
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
    (DropProject(prd), pw)
}

#[test]
fn r11_a_dry_run_of_promote_walks_the_steps_promote_walks() {
    let s = Stack::new("eqpromo", "\"local\"", 5);
    let (_cleanup, pw) = staging_and_production(&s);
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

/// Every release record of an environment directory, by file name (what a dry run must leave as
/// it found it).
fn records(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let Ok(list) = std::fs::read_dir(dir.join(".deploy-action/releases")) else {
        return Default::default();
    };
    list.map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// `want` appears in `ids` in this order (other steps may come between).
#[track_caller]
fn in_order(ids: &[&str], want: &[&str]) {
    let mut at = 0;
    for w in want {
        match ids[at..].iter().position(|i| i == w) {
            Some(p) => at += p + 1,
            None => panic!("{w} missing or out of order in {ids:?}"),
        }
    }
}

/// The deployment Cloudflare serves in production.
fn canonical(cf: &crate::fake_cloudflare::FakeCloudflare) -> Option<String> {
    cf.state.lock().unwrap().canonical.clone()
}

/// Issue 11: a rollback is one plan, services and sites together. Its dry run walks the steps the
/// real run walks (the fan-out's among them), sends nothing to Cloudflare and writes no record.
#[test]
fn r11_a_dry_run_of_a_rollback_of_a_service_and_a_site_walks_its_steps_and_changes_nothing() {
    use crate::fake_cloudflare::FakeCloudflare;
    let s = Stack::new("eqrbsite", "\"local\"", 5);
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    s.project.manifest(&format!(
        "{manifest}sites:\n  docs:\n    project: shop-docs\n    dir: site\n    production_branch: main\n"
    ));
    s.project.file("site/index.html", "<h1>v1</h1>\n");
    s.project.commit("a site");
    let cf = FakeCloudflare::start();
    let run = |args: &[&str]| s.project.run(args).envs(cf.env()).go();
    let pages = &["pages", "--env", "test", "--all", "--branch", "main"];
    s.up(&["--all"]).status(0);
    run(pages).status(0);
    let d1 = cf.deployments()[0]["id"].as_str().unwrap().to_string();
    s.compose(WEB_V2, WEB_V1);
    s.project.file("site/index.html", "<h1>v2</h1>\n");
    s.project.commit("web and site v2");
    s.up(&["--only", "web"]).status(0);
    run(pages).status(0);
    let d2 = cf.deployments()[1]["id"].as_str().unwrap().to_string();
    assert_eq!(s.web_body(), "v2");
    assert_eq!(canonical(&cf).as_deref(), Some(d2.as_str()));

    let before = (records(s.host_dir.path()), cf.total_requests());
    let dry = run(&[
        "rollback",
        "--env",
        "test",
        "--to",
        "2",
        "--dry-run",
        "--json",
    ]);
    dry.status(0);
    assert_eq!(
        cf.total_requests(),
        before.1,
        "nothing was sent to Cloudflare"
    );
    assert_eq!(
        records(s.host_dir.path()),
        before.0,
        "no record was written"
    );
    assert_eq!(s.web_body(), "v2", "the dry run changed nothing");
    assert_eq!(canonical(&cf).as_deref(), Some(d2.as_str()));

    let real = run(&["rollback", "--env", "test", "--to", "2", "--json"]);
    real.status(0);
    assert_eq!(s.web_body(), "v1");
    assert_eq!(
        canonical(&cf).as_deref(),
        Some(d1.as_str()),
        "production is on d1"
    );
    assert_eq!(s.record(5)["status"], "live");
    assert_eq!(s.record(5)["pages"]["docs"]["deployment_id"], d1.as_str());
    assert_eq!(s.record(4)["status"], "bad");

    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    in_order(
        &ids(&real),
        &[
            "rollback:lock",
            "rollback:start",
            "rollback:services",
            "up:lock@local",
            "up:gate@local",
            "rollback:pages:docs",
            "rollback:record",
            "rollback:mark-bad",
        ],
    );
    assert_eq!(walked(&real, "rollback:pages:docs"), "performed");
    assert_eq!(walked(&dry, "rollback:mark-bad"), "performed");
}

/// Issue 11: a promote is one plan — the migration, the services, the site, the record. Its dry
/// run walks the steps the real run walks (the migration's and the fan-out's among them), sends
/// nothing to Cloudflare, writes no record and leaves the database alone.
#[test]
fn r11_a_dry_run_of_a_promote_of_a_migration_a_service_and_a_site_walks_its_steps_and_changes_nothing()
 {
    use crate::fake_cloudflare::FakeCloudflare;
    let s = Stack::new("eqprsite", "\"local\"", 5);
    let prd = format!("{}-prd", s.name);
    let _cleanup = DropProject(prd.clone());
    let pw = free_port();
    let d = s.host_dir.path().display().to_string();
    s.project.file(
        "compose.prod.yml",
        &format!(
            "services:\n{}{}",
            service_yaml("web", WEB_V1, pw),
            service_yaml("api", WEB_V1, free_port())
        ),
    );
    s.project.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {d}/stg\n    compose_files: [compose.yml]\n    compose_project: {stg}\n    database: {{ url_env: STG_DB }}\n  production:\n    hosts: [\"local\"]\n    dir: {d}/prd\n    compose_files: [compose.prod.yml]\n    compose_project: {prd}\n    promote_from: staging\n    database: {{ url_env: PRD_DB }}\nservices:\n  web:\n    health: {{ url: \"http://127.0.0.1:{wp}/\", timeout: 30s, expect_status: 200 }}\n  api: {{}}\nsites:\n  docs:\n    project: shop-docs\n    dir: site\n    production_branch: main\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
        stg = s.name,
        wp = s.web_port,
    ));
    s.project.file("site/index.html", "<h1>docs</h1>\n");
    s.project
        .file("migrations/0001_a.sql", "CREATE TABLE a (id integer);\n");
    s.project.commit("two environments, a site, a migration");
    let cf = FakeCloudflare::start();
    let run = |args: &[&str]| {
        s.project
            .run(args)
            .envs(cf.env())
            .env("STG_DB", "sqlite://stg.db")
            .env("PRD_DB", "sqlite://prd.db")
            .go()
    };
    run(&["up", "--env", "staging", "--all"]).status(0);
    run(&["migrate", "--env", "staging"]).status(0);
    run(&["pages", "--env", "staging", "--all", "--branch", "staging"]).status(0);
    let prd_dir = s.host_dir.path().join("prd");

    let requests = cf.total_requests();
    let dry = run(&["promote", "--env", "production", "--dry-run", "--json"]);
    dry.status(0);
    assert_eq!(
        cf.total_requests(),
        requests,
        "nothing was sent to Cloudflare"
    );
    assert!(records(&prd_dir).is_empty(), "no record was written");
    assert!(
        !s.project.path().join("prd.db").exists(),
        "the database was not created"
    );
    assert_eq!(cf.deployments().len(), 1);

    let real = run(&["promote", "--env", "production", "--json"]);
    real.status(0);
    assert_eq!(sh(&format!("curl -fsS http://127.0.0.1:{pw}/")), "v1");
    let deployments = cf.deployments();
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[1]["environment"], "production");
    let v = run(&["status", "--env", "production", "--json"]).json();
    assert_eq!(v["migration"]["version"], "1", "{v:#}");
    assert_eq!(v["pages"]["docs"]["deployment_id"], deployments[1]["id"]);
    assert_eq!(v["current"]["promoted_from"], "staging/3");

    let (dry, real) = (steps(&dry), steps(&real));
    assert_eq!(ids(&dry), ids(&real));
    in_order(
        &ids(&real),
        &[
            "promote:lock",
            "promote:start",
            "promote:migrate",
            "promote:services",
            "up:ship:web@local",
            "up:gate@local",
            "promote:pages:docs",
            "promote:record",
        ],
    );
    let migrate_at = ids(&real)
        .iter()
        .position(|i| *i == "promote:migrate")
        .unwrap();
    assert!(
        ids(&real)[migrate_at + 1].starts_with("migrate:"),
        "the migration's own steps follow it: {real:?}"
    );
}

/// The ids of the steps `plan --json` lists.
fn plan_ids(out: &Outcome) -> Vec<String> {
    out.json()["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in:\n{}\n--- stderr\n{}", out.stdout, out.stderr))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The steps of the release plan itself, without the inner runs' (the fan-out's `up:…`, the
/// migration's `migrate:…`) that follow the step that ran them.
fn release_level<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    ids.iter()
        .copied()
        .filter(|id| !id.starts_with("up:") && !id.starts_with("migrate:"))
        .collect()
}

/// Issue 11: `plan --env E --rollback` lists exactly the steps `rollback --env E` then walks, and
/// changes nothing.
#[test]
fn r11_plan_rollback_lists_the_steps_rollback_walks_and_changes_nothing() {
    let s = Stack::new("planrb", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.up(&["--only", "web"]).status(0);
    let before = records(s.host_dir.path());
    let plan = s
        .project
        .run(&["plan", "--env", "test", "--rollback", "--json"])
        .go();
    plan.status(0);
    let planned = plan_ids(&plan);
    assert_eq!(plan.json()["run"], "rollback");
    assert_eq!(records(s.host_dir.path()), before, "plan wrote no record");
    assert_eq!(s.web_body(), "v2", "plan changed nothing");
    let text = s.project.run(&["plan", "--env", "test", "--rollback"]).go();
    text.status(0);
    let shown = format!("{}{}", text.stdout, text.stderr);
    assert!(shown.contains("rollback would run:"), "{shown}");
    assert!(shown.contains("Rollback of test to release 1"), "{shown}");

    let real = s.project.run(&["rollback", "--env", "test", "--json"]).go();
    real.status(0);
    assert_eq!(s.web_body(), "v1");
    let real = steps(&real);
    assert!(
        planned.iter().any(|i| i == "rollback:services"),
        "{planned:?}"
    );
    assert_eq!(release_level(&ids(&real)), planned, "{real:?}");
}

/// `--rollback TO` plans the rollback to that release, as `rollback --to TO` runs it.
#[test]
fn r11_plan_rollback_to_a_release_names_it() {
    let s = Stack::new("planrbto", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.up(&["--only", "web"]).status(0);
    let plan = |to: &str| {
        s.project
            .run(&["plan", "--env", "test", "--rollback", to, "--json"])
            .go()
    };
    let one = plan("1");
    one.status(0);
    assert_eq!(one.json()["release"], 1);
    assert_eq!(one.json()["abandoned"], 2);
    let bad = plan("9");
    bad.status(2);
    assert!(bad.stderr.contains('9'), "{}", bad.stderr);
}

/// Issue 11: `plan --env E --promote` lists exactly the steps `promote --to E` then walks, and
/// changes nothing.
#[test]
fn r11_plan_promote_lists_the_steps_promote_walks_and_changes_nothing() {
    let s = Stack::new("planpromo", "\"local\"", 5);
    let (_cleanup, pw) = staging_and_production(&s);
    let prd_dir = s.host_dir.path().join("prd");
    let before = records(&prd_dir);
    let plan = s
        .project
        .run(&["plan", "--env", "production", "--promote", "--json"])
        .go();
    plan.status(0);
    let planned = plan_ids(&plan);
    assert_eq!(plan.json()["run"], "promote");
    assert_eq!(plan.json()["from"], "staging");
    assert_eq!(records(&prd_dir), before, "plan wrote no record");
    let real = s
        .project
        .run(&["promote", "--env", "production", "--json"])
        .go();
    real.status(0);
    assert_eq!(sh(&format!("curl -fsS http://127.0.0.1:{pw}/")), "v1");
    let real = steps(&real);
    assert!(
        planned.iter().any(|i| i == "promote:services"),
        "{planned:?}"
    );
    assert_eq!(release_level(&ids(&real)), planned, "{real:?}");
    // Now production runs the source's release: nothing left to plan, as `promote` says.
    let again = s
        .project
        .run(&["plan", "--env", "production", "--promote", "--json"])
        .go();
    again.status(0);
    assert_eq!(plan_ids(&again), Vec::<String>::new());
}
