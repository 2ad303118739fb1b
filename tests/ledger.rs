//! The release ledger: `status` against records on a `local` host, git tags made locally, and tags
//! and deployment statuses made through the (fake) GitHub API.

use crate::fake_github::FakeGitHub;
use crate::harness::Project;
use deploy_action::exec::Executor;
use deploy_action::exec::local::LocalExecutor;
use deploy_action::ledger;
use deploy_action::state::{
    LockOwner, PagesState, ReleaseRecord, ReleaseStatus, ReleaseStatusField, ServiceState,
};

fn release(n: u64, status: ReleaseStatus, sha: &str, image: &str) -> ReleaseRecord {
    let mut r = ReleaseRecord {
        number: n,
        env: "staging".into(),
        sha: sha.into(),
        status: ReleaseStatusField(status),
        created_at: format!("2026-11-23T10:0{n}:00Z"),
        actor: "ann".into(),
        run_url: "local".into(),
        ..Default::default()
    };
    r.services.insert(
        "web".into(),
        ServiceState {
            image: image.into(),
            image_id: format!("sha256:{n:0>64}"),
            release_tag: Some(format!("deploy-action-test/web:release-{n}")),
            deployed: true,
            ..Default::default()
        },
    );
    r
}

/// A project whose `staging` environment lives on `local`, with its state under the project.
fn project() -> (Project, String) {
    let p = Project::git();
    let dir = p.path().join("srv").display().to_string();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {dir}\n    approval: none\n    url: https://staging.example.com\n"
    ));
    (p, dir)
}

fn write_release(dir: &str, r: &ReleaseRecord) {
    let path = format!("{dir}/.deploy-action/releases/{}.json", r.number);
    std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(r).unwrap()).unwrap();
}

#[test]
fn status_shows_current_release_units_lock_and_history_from_the_host() {
    let (p, dir) = project();
    write_release(
        &dir,
        &release(
            1,
            ReleaseStatus::Superseded,
            "a1".repeat(20).as_str(),
            "deploy-action-test/web:v1",
        ),
    );
    let mut r2 = release(
        2,
        ReleaseStatus::Live,
        "b2".repeat(20).as_str(),
        "deploy-action-test/web:v2",
    );
    r2.pages.insert(
        "site".into(),
        PagesState {
            project: "shop-site".into(),
            deployment_id: "dep-2".into(),
            url: "https://abc.shop-site.pages.dev".into(),
            ..Default::default()
        },
    );
    r2.migration_version = Some("0003".into());
    write_release(&dir, &r2);
    write_release(
        &dir,
        &release(
            3,
            ReleaseStatus::Bad,
            "c3".repeat(20).as_str(),
            "deploy-action-test/web:broken",
        ),
    );
    std::fs::write(
        format!("{dir}/.deploy-action/releases/4.json"),
        "{\"number\": 4,",
    )
    .unwrap();
    std::fs::create_dir_all(format!("{dir}/.deploy-action/lock")).unwrap();
    let owner = LockOwner {
        run_url: "https://github.com/o/r/actions/runs/9".into(),
        actor: "bob".into(),
        sha: "d4".into(),
        started_at: "2026-11-23T11:00:00Z".into(),
        command: "up".into(),
        hostname: "runner".into(),
        pid: 42,
        ..Default::default()
    };
    std::fs::write(
        format!("{dir}/.deploy-action/lock/owner.json"),
        serde_json::to_string(&owner).unwrap(),
    )
    .unwrap();

    let out = p.run(&["status", "--env", "staging", "--json"]).go();
    out.status(0)
        .stderr_has("releases/4.json: not a release record");
    let v = out.json();
    assert_eq!(v["current"]["number"], 2, "{v:#}");
    assert_eq!(v["current"]["tag"], "deploy/staging/2");
    assert_eq!(v["services"]["web"]["image"], "deploy-action-test/web:v2");
    assert_eq!(v["services"]["web"]["release"], 2);
    assert_eq!(v["pages"]["site"]["url"], "https://abc.shop-site.pages.dev");
    assert_eq!(v["migration"]["version"], "0003");
    assert_eq!(v["lock"]["actor"], "bob");
    let numbers: Vec<u64> = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(v["releases"][0]["status"], "bad");
    assert!(
        v["hosts"][0]["problems"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("releases/4.json")
    );

    p.run(&["status", "--env", "staging"])
        .go()
        .status(0)
        .stdout_has("current release: 2 (b2b2b2b2b2b2")
        .stdout_has("lock: held by bob (up, https://github.com/o/r/actions/runs/9)")
        .stdout_has("deploy-action-test/web:v2 (000000000000)")
        .stdout_has("bad");
}

#[test]
fn status_of_a_fresh_environment_says_so_and_unknown_env_is_exit_2() {
    let (p, _dir) = project();
    p.run(&["status", "--env", "staging"])
        .go()
        .status(0)
        .stdout_has("current release: none")
        .stdout_has("lock: free")
        .stdout_has("no releases recorded yet");
    p.run(&["status", "--env", "stagin"])
        .go()
        .status(2)
        .stderr_has("did you mean `staging`");
}

#[test]
fn local_tags_annotate_the_deployed_commit_with_the_record_and_move_the_pointer() {
    let p = Project::git();
    p.file("a.txt", "1");
    let sha1 = p.commit("one");
    p.file("a.txt", "2");
    let sha2 = p.commit("two");
    let mut exec = LocalExecutor;
    for r in [
        release(1, ReleaseStatus::Live, &sha1, "web:v1"),
        release(2, ReleaseStatus::Live, &sha2, "web:v2"),
        release(3, ReleaseStatus::Failed, &sha1, "web:broken"),
    ] {
        for cmd in ledger::git_tag_cmds(&r, false) {
            let o = exec
                .capture(&cmd.cwd(p.path().display().to_string()))
                .unwrap();
            assert!(o.success(), "{}", o.stderr_tail(5));
        }
    }
    assert_eq!(
        p.git_cmd(&["rev-parse", "deploy/staging/1^{commit}"])
            .trim(),
        sha1
    );
    assert_eq!(
        p.git_cmd(&["cat-file", "-t", "deploy/staging/2"]).trim(),
        "tag"
    );
    let msg = p.git_cmd(&["tag", "-l", "--format=%(contents)", "deploy/staging/2"]);
    let rec: ReleaseRecord = serde_json::from_str(&msg).unwrap();
    assert_eq!(rec.number, 2);
    assert_eq!(rec.services["web"].image, "web:v2");
    // The pointer follows the last live release, not the failed release 3.
    assert_eq!(p.git_cmd(&["rev-parse", "staging^{commit}"]).trim(), sha2);
    assert_eq!(
        p.git_cmd(&["rev-parse", "deploy/staging/3^{commit}"])
            .trim(),
        sha1
    );
}

/// The variables of a GitHub Actions run reporting to the fake API.
fn actions_env(gh: &FakeGitHub, dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_TOKEN", gh.token.clone()),
        ("GITHUB_REPOSITORY", "o/shop".into()),
        ("GITHUB_API_URL", gh.url.clone()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_RUN_ID", "77".into()),
        ("GITHUB_ACTOR", "ann".into()),
        ("GITHUB_OUTPUT", dir.join("output").display().to_string()),
        (
            "GITHUB_STEP_SUMMARY",
            dir.join("summary").display().to_string(),
        ),
    ]
}

#[test]
fn in_actions_up_tags_through_the_api_and_reports_the_deployment_in_progress_then_the_result() {
    use crate::up::{Stack, WEB_BROKEN, WEB_V2};
    let gh = FakeGitHub::start();
    let s = Stack::new("ghdep", "\"local\"", 5);
    let yml = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    s.project.manifest(&yml.replace(
        "    keep_releases: 5\n",
        "    keep_releases: 5\n    url: https://shop.example.com\n",
    ));
    s.project.commit("url");
    let out_dir = tempfile::tempdir().unwrap();
    let env = actions_env(&gh, out_dir.path());
    s.project
        .run(&["up", "--env", "test", "--all"])
        .envs(env.clone())
        .go()
        .status(0);
    // A tag API fault is a warning: the deploy happened and exits 0.
    gh.fail_once("POST", "/repos/o/shop/git/tags", 500);
    gh.fail_once("POST", "/repos/o/shop/git/tags", 500);
    gh.fail_once("POST", "/repos/o/shop/git/tags", 500);
    s.compose(WEB_V2, crate::up::WEB_V1);
    s.project.commit("web v2");
    s.project
        .run(&["up", "--env", "test", "--only", "web"])
        .envs(env.clone())
        .go()
        .status(0)
        .stdout_has("::warning::cannot tag deploy/test/2");
    s.compose(WEB_BROKEN, crate::up::WEB_V1);
    s.project.commit("web broken");
    s.project
        .run(&["up", "--env", "test", "--only", "web"])
        .envs(env)
        .go()
        .status(1);

    // The tag keeps the record as it was made (live); the host has since marked it superseded.
    let mut r1 = s.record(1);
    assert_eq!(r1["status"], "superseded");
    r1["status"] = "live".into();
    let st = gh.state.lock().unwrap();
    let tag1 = st.refs["refs/tags/deploy/test/1"].clone();
    let obj = &st.tag_objects[&tag1];
    assert_eq!(obj["object"]["sha"], r1["sha"]);
    let msg: serde_json::Value = serde_json::from_str(obj["message"].as_str().unwrap()).unwrap();
    assert_eq!(msg, r1, "the tag message is the release record");
    assert!(
        !st.refs.contains_key("refs/tags/deploy/test/2"),
        "the failed tag call made no ref"
    );
    // Release 3 rolled back: tagged, but the pointer stays on release 1.
    let tag3 = st.refs["refs/tags/deploy/test/3"].clone();
    assert_eq!(st.refs["refs/tags/test"], tag1);
    assert_ne!(tag3, tag1);
    assert_eq!(st.deployments.len(), 3);
    for d in &st.deployments {
        assert_eq!(d["environment"], "test");
        assert_eq!(d["auto_merge"], false);
        assert_eq!(d["required_contexts"], serde_json::json!([]));
    }
    assert_eq!(st.deployments[0]["ref"], r1["sha"]);
    let states = |i: usize| -> Vec<String> {
        st.statuses[&st.deployments[i]["id"].as_u64().unwrap()]
            .iter()
            .map(|s| s["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(states(0), ["in_progress", "success"]);
    assert_eq!(states(1), ["in_progress", "success"]);
    assert_eq!(states(2), ["in_progress", "failure"]);
    let last = st.statuses[&st.deployments[0]["id"].as_u64().unwrap()]
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["log_url"], "https://github.com/o/shop/actions/runs/77");
    assert_eq!(last["environment_url"], "https://shop.example.com");
    assert!(st.log.iter().all(|r| r.authorization == gh.bearer()));
}

#[test]
fn rollback_with_nothing_to_roll_back_to_is_exit_1_and_a_bad_to_is_exit_2() {
    let (p, dir) = project();
    p.run(&["rollback", "--env", "staging"])
        .go()
        .status(1)
        .stderr_has("nothing to roll back to: environment `staging` has no live release");
    write_release(
        &dir,
        &release(1, ReleaseStatus::Live, &"a".repeat(40), "web:v1"),
    );
    p.run(&["rollback", "--env", "staging"])
        .go()
        .status(1)
        .stderr_has("nothing to roll back to: release 1 is the only good release");
    p.run(&["rollback", "--env", "staging", "--to", "9"])
        .go()
        .status(2)
        .stderr_has("--to 9: no such release of `staging`");
    p.run(&["rollback", "--env", "staging", "--to", "main"])
        .go()
        .status(2)
        .stderr_has("not a release number");
}

#[test]
fn after_real_ups_status_tells_the_truth_and_rollback_restores_the_previous_images() {
    use crate::up::{Stack, WEB_V1, WEB_V2};
    let s = Stack::new("ledger", "\"local\"", 5);
    s.up(&["--all", "--tag"])
        .status(0)
        .stdout_has("tagged deploy/test/1, test");
    assert_eq!(
        s.project.git_cmd(&["rev-parse", "test^{commit}"]).trim(),
        s.record(1)["sha"].as_str().unwrap()
    );
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.up(&["--only", "web"]).status(0);
    assert_eq!(s.web_body(), "v2");

    let out = s.project.run(&["status", "--env", "test", "--json"]).go();
    out.status(0);
    let v = out.json();
    let r2 = s.record(2);
    assert_eq!(v["current"]["number"], 2, "{v:#}");
    assert_eq!(
        v["services"]["web"]["image"],
        r2["services"]["web"]["image"]
    );
    assert_eq!(
        v["services"]["web"]["image_id"],
        r2["services"]["web"]["image_id"]
    );
    assert!(v["services"]["web"]["image"].as_str().unwrap().len() > 3);
    assert_eq!(v["releases"][1]["status"], "superseded");
    assert_eq!(v["lock"], serde_json::Value::Null);

    let web_v1_id = s.record(1)["services"]["web"]["image_id"].clone();
    s.project
        .run(&["rollback", "--env", "test", "--tag"])
        .go()
        .status(0)
        .stdout_has("release 2 marked bad");
    assert_eq!(s.web_body(), "v1", "the previous images serve again");
    assert_eq!(s.record(2)["status"], "bad");
    let r3 = s.record(3);
    assert_eq!(r3["status"], "live");
    assert_eq!(r3["services"]["web"]["image_id"], web_v1_id);
    assert_eq!(r3["sha"], s.record(1)["sha"]);
    // The pointer tag follows: `test` → deploy/test/3 on release 1's commit.
    let sha1 = s.record(1)["sha"].as_str().unwrap().to_string();
    assert_eq!(
        s.project.git_cmd(&["rev-parse", "test^{commit}"]).trim(),
        sha1
    );
    assert_eq!(
        s.project.git_cmd(&["rev-parse", "test"]).trim(),
        s.project.git_cmd(&["rev-parse", "deploy/test/3"]).trim()
    );

    let v = s
        .project
        .run(&["status", "--env", "test", "--json"])
        .go()
        .json();
    assert_eq!(v["current"]["number"], 3);
    assert_eq!(v["services"]["web"]["image_id"], web_v1_id);
    assert_eq!(v["releases"][1]["status"], "bad");
    // Rolling back again skips the bad release 2 and goes to release 1's images (still v1).
    let out = s.project.run(&["rollback", "--env", "test", "--json"]).go();
    out.status(0);
    assert_eq!(s.web_body(), "v1");
    assert_eq!(s.record(3)["status"], "bad");
}

#[test]
fn promote_refuses_a_wrong_source_no_release_and_a_missing_approval() {
    let p = Project::git();
    let d = p.path().display().to_string();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  qa:\n    hosts: [\"local\"]\n    dir: {d}/qa\n  staging:\n    hosts: [\"local\"]\n    dir: {d}/stg\n  production:\n    hosts: [\"local\"]\n    dir: {d}/prd\n    approval: required\n    promote_from: staging\nservices:\n  web:\n    paths: [\"web/**\"]\n"
    ));
    p.run(&["promote", "--from", "qa", "--to", "production"])
        .go()
        .status(2)
        .stderr_has("promoted from `staging` (promote_from in deploy.yml), not from `qa`");
    p.run(&["promote", "--from", "staging", "--to", "production"])
        .go()
        .status(1)
        .stderr_has("nothing to promote: environment `staging` has no successful (live) release");
    write_release(
        &format!("{d}/stg"),
        &release(1, ReleaseStatus::Live, &"a".repeat(40), "web:v1"),
    );
    p.run(&["promote", "--from", "staging", "--to", "production"])
        .go()
        .status(3)
        .stderr_has("requires an approval");
    assert!(
        !std::path::Path::new(&format!("{d}/prd/.deploy-action")).exists(),
        "nothing was touched"
    );
}

struct DropProject(String);
impl Drop for DropProject {
    fn drop(&mut self) {
        let p = &self.0;
        crate::up::sh(&format!(
            "docker ps -aq --filter label=com.docker.compose.project={p} | xargs -r docker rm -f >/dev/null 2>&1; \
             docker network rm {p}_default >/dev/null 2>&1; \
             docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep -F ':{p}.' | xargs -r docker rmi >/dev/null 2>&1; true"
        ));
    }
}

#[test]
fn promote_puts_the_exact_staging_image_ids_on_production_without_building() {
    use crate::up::{Stack, WEB_V1, WEB_V2, free_port, service_yaml, sh};
    let s = Stack::new("promo", "\"local\"", 5);
    let prd = format!("{}-prd", s.name);
    let _cleanup = DropProject(prd.clone());
    let (pw, pa) = (free_port(), free_port());
    let d = s.host_dir.path().display().to_string();
    let ssh_url = format!(
        "ssh://root@127.0.0.1:{}",
        crate::harness::services::var("DA_TEST_SSH_PORT")
    );
    s.project.file(
        "compose.prod.yml",
        &format!(
            "services:\n{}{}",
            service_yaml("web", WEB_V1, pw),
            service_yaml("api", WEB_V1, pa)
        ),
    );
    s.project.manifest(&format!(
        r#"version: 1
project: shop
environments:
  staging:
    hosts: ["local"]
    dir: {d}/stg
    compose_files: [compose.yml]
    compose_project: {stg}
  production:
    hosts: ["{ssh}"]
    dir: {d}/prd
    compose_files: [compose.prod.yml]
    compose_project: {prd}
    promote_from: staging
    url: https://shop.example.com
services:
  web:
    health: {{ url: "http://127.0.0.1:{wp}/", timeout: 30s, expect_status: 200 }}
  api:
    health: {{ url: "http://127.0.0.1:{ap}/health", timeout: 30s, expect_status: 200, contains: "ok" }}
"#,
        stg = s.name,
        wp = s.web_port,
        ap = s.api_port,
        ssh = ssh_url,
    ));
    s.project.commit("two environments");
    s.project
        .run(&["up", "--env", "staging", "--all"])
        .go()
        .status(0);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    s.project
        .run(&["up", "--env", "staging", "--only", "web"])
        .go()
        .status(0);
    let stg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{d}/stg/.deploy-action/releases/2.json")).unwrap(),
    )
    .unwrap();

    // Production is reached over SSH; the images are shipped by id from staging's host (forced:
    // both environments share this machine's engine, so production already has them).
    let over_ssh = |args: &[&str]| {
        s.project
            .run(args)
            .env(
                "DEPLOY_SSH_KEY_FILE",
                crate::harness::services::var("DA_TEST_SSH_KEY_FILE"),
            )
            .env(
                "DEPLOY_KNOWN_HOSTS_FILE",
                crate::harness::services::var("DA_TEST_KNOWN_HOSTS_FILE"),
            )
            .env("DEPLOY_TEST_ALWAYS_SHIP", "1")
            .go()
    };
    let out = over_ssh(&["promote", "--env", "production"]);
    out.status(0)
        .stdout_has("shipping image")
        .stdout_has("from local")
        .stdout_has("Loaded image")
        .stdout_has("production is on release 1 = release staging/2");
    assert!(!out.stdout.contains("docker build") && !out.stderr.contains("docker build"));
    assert_eq!(
        sh(&format!("curl -fsS http://127.0.0.1:{pw}/")),
        "v2",
        "production serves staging's v2"
    );
    let prod: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{d}/prd/.deploy-action/releases/1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        prod["services"]["web"]["image_id"],
        stg["services"]["web"]["image_id"]
    );
    assert_eq!(prod["promoted_from"], "staging/2");
    assert_eq!(prod["sha"], stg["sha"]);
    let v = over_ssh(&["status", "--env", "production", "--json"]).json();
    assert_eq!(v["current"]["promoted_from"], "staging/2");
    assert_eq!(
        v["services"]["web"]["image_id"],
        stg["services"]["web"]["image_id"]
    );
}

#[test]
fn status_reads_release_records_over_ssh() {
    use crate::harness::services;
    services::require_sshd();
    let p = Project::new();
    let dir = format!("/tmp/da-ledger-ssh-{}", std::process::id());
    let url = format!("ssh://root@127.0.0.1:{}", services::var("DA_TEST_SSH_PORT"));
    p.manifest(&format!(
        "version: 1\nproject: t\nenvironments:\n  staging:\n    hosts: [\"{url}\"]\n    dir: {dir}\n"
    ));
    let ssh = |args: &[&str]| {
        p.run(args)
            .env("HOME", p.path().display().to_string())
            .env(
                "DEPLOY_KNOWN_HOSTS_FILE",
                services::var("DA_TEST_KNOWN_HOSTS_FILE"),
            )
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
            .go()
    };
    let r1 = serde_json::to_string(&release(
        1,
        ReleaseStatus::Superseded,
        &"a".repeat(40),
        "web:v1",
    ))
    .unwrap();
    let r2 =
        serde_json::to_string(&release(2, ReleaseStatus::Live, &"b".repeat(40), "web:v2")).unwrap();
    let script = format!(
        "rm -rf {dir} && mkdir -p {dir}/.deploy-action/releases && printf '%s' '{r1}' > {dir}/.deploy-action/releases/1.json && printf '%s' '{r2}' > {dir}/.deploy-action/releases/2.json"
    );
    ssh(&["exec", "--env", "staging", "--", "sh", "-c", &script]).status(0);
    let out = ssh(&["status", "--env", "staging", "--json"]);
    out.status(0);
    let v = out.json();
    assert_eq!(v["current"]["number"], 2, "{v:#}");
    assert_eq!(v["services"]["web"]["image"], "web:v2");
    assert_eq!(v["hosts"][0]["host"], "root@127.0.0.1:2222");
    ssh(&["exec", "--env", "staging", "--", "rm", "-rf", &dir]).status(0);
}

/// A project with one site, deployed to `env` (hosts given as YAML, `[]` for none).
fn pages_project(env: &str, hosts: &str, dir: &str) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  {env}:\n    hosts: {hosts}\n    dir: {dir}\nsites:\n  web:\n    project: shop-web\n    dir: site\n    paths: [\"site/**\"]\n    production_branch: main\n"
    ));
    p.file("site/index.html", "<h1>v1</h1>\n");
    p.file("site/about.html", "<h1>about</h1>\n");
    p.commit("site v1");
    p
}

fn pages_run(
    p: &Project,
    cf: &crate::fake_cloudflare::FakeCloudflare,
    args: &[&str],
) -> crate::harness::Outcome {
    p.run(args)
        .envs(cf.env())
        .env("DEPLOY_TEST_NO_RETRY_DELAY", "1")
        .go()
}

#[test]
fn pages_releases_are_recorded_and_rollback_puts_production_back_on_the_previous_deployment() {
    use crate::fake_cloudflare::{FakeCloudflare, Route};
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().display().to_string();
    let p = pages_project("production", "[\"local\"]", &dir);
    let cf = FakeCloudflare::start();
    let deploy = |p: &Project| {
        pages_run(
            p,
            &cf,
            &["pages", "--env", "production", "--all", "--branch", "main"],
        )
    };
    deploy(&p).status(0).stdout_has("production: release 1");
    p.file("site/index.html", "<h1>v2</h1>\n");
    p.commit("site v2");
    deploy(&p).status(0).stdout_has("production: release 2");
    let deployments = cf.deployments();
    let (d1, d2) = (
        deployments[0]["id"].as_str().unwrap().to_string(),
        deployments[1]["id"].as_str().unwrap().to_string(),
    );
    let rec = |n: u64| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/.deploy-action/releases/{n}.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(rec(1)["pages"]["web"]["deployment_id"], d1.as_str());
    assert_eq!(rec(2)["pages"]["web"]["deployment_id"], d2.as_str());
    assert_eq!(rec(2)["pages"]["web"]["environment"], "production");
    assert_eq!(rec(1)["status"], "superseded");
    let audit = std::fs::read_to_string(format!("{dir}/.deploy-action/audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"pages\""), "{audit}");

    let v = pages_run(&p, &cf, &["status", "--env", "production", "--json"]).json();
    assert_eq!(v["current"]["number"], 2, "{v:#}");
    assert_eq!(v["pages"]["web"]["deployment_id"], d2.as_str());

    let uploads = cf.count(Route::Upload);
    pages_run(&p, &cf, &["rollback", "--env", "production"])
        .status(0)
        .stdout_has("release 2 marked bad");
    assert_eq!(cf.count(Route::Rollback), 1);
    assert_eq!(
        cf.state.lock().unwrap().canonical.as_deref(),
        Some(d1.as_str()),
        "production serves the first deployment again"
    );
    assert_eq!(
        cf.count(Route::Upload),
        uploads,
        "a rollback uploads nothing"
    );
    assert_eq!(rec(2)["status"], "bad");
    assert_eq!(rec(3)["status"], "live");
    assert_eq!(rec(3)["pages"]["web"]["deployment_id"], d1.as_str());
    let v = pages_run(&p, &cf, &["status", "--env", "production", "--json"]).json();
    assert_eq!(v["current"]["number"], 3);
    assert_eq!(v["pages"]["web"]["deployment_id"], d1.as_str());
}

#[test]
fn without_hosts_the_releases_live_in_tags_and_status_and_rollback_read_them() {
    use crate::fake_cloudflare::FakeCloudflare;
    let p = pages_project("edge", "[]", "/unused");
    let cf = FakeCloudflare::start();
    let deploy = |p: &Project| {
        pages_run(
            p,
            &cf,
            &[
                "pages", "--env", "edge", "--all", "--branch", "main", "--tag",
            ],
        )
    };
    deploy(&p)
        .status(0)
        .stdout_has("tagged deploy/edge/1, edge");
    p.file("site/index.html", "<h1>v2</h1>\n");
    p.commit("site v2");
    deploy(&p).status(0).stdout_has("edge: release 2");
    let d1 = cf.deployments()[0]["id"].as_str().unwrap().to_string();
    let msg: ReleaseRecord =
        serde_json::from_str(&p.git_cmd(&["tag", "-l", "--format=%(contents)", "deploy/edge/2"]))
            .unwrap();
    assert_eq!(msg.number, 2);
    assert_eq!(msg.sha, p.git_cmd(&["rev-parse", "HEAD"]).trim());

    let v = pages_run(&p, &cf, &["status", "--env", "edge", "--json"]).json();
    assert_eq!(v["source"], "tags", "{v:#}");
    assert_eq!(v["current"]["number"], 2);

    pages_run(&p, &cf, &["rollback", "--env", "edge", "--tag"])
        .status(0)
        .stdout_has("tagged deploy/edge/3, edge");
    assert_eq!(
        cf.state.lock().unwrap().canonical.as_deref(),
        Some(d1.as_str())
    );
    let bad: ReleaseRecord =
        serde_json::from_str(&p.git_cmd(&["tag", "-l", "--format=%(contents)", "deploy/edge/2"]))
            .unwrap();
    assert_eq!(bad.status.0, ReleaseStatus::Bad);
    assert_eq!(
        p.git_cmd(&["rev-parse", "edge"]).trim(),
        p.git_cmd(&["rev-parse", "deploy/edge/3"]).trim()
    );
    // Without --tag outside Actions, a release of a host-less environment is said to be unrecorded.
    pages_run(
        &p,
        &cf,
        &["pages", "--env", "edge", "--all", "--branch", "main"],
    )
    .status(0)
    .stdout_has("no hosts");
}

#[test]
fn in_actions_a_host_less_environment_reads_and_writes_its_tags_through_the_api() {
    use crate::fake_cloudflare::FakeCloudflare;
    let p = pages_project("edge", "[]", "/unused");
    let cf = FakeCloudflare::start();
    let gh = FakeGitHub::start();
    let out_dir = tempfile::tempdir().unwrap();
    let actions = |args: &[&str]| {
        p.run(args)
            .envs(cf.env())
            .envs(actions_env(&gh, out_dir.path()))
            .go()
    };
    let deploy = &["pages", "--env", "edge", "--all", "--branch", "main"];
    actions(deploy).status(0).stdout_has("edge: release 1");
    p.file("site/index.html", "<h1>v2</h1>\n");
    p.commit("site v2");
    actions(deploy).status(0).stdout_has("edge: release 2");
    assert!(
        p.git_cmd(&["tag", "-l"]).trim().is_empty(),
        "in Actions the tags are made through the API, not in the checkout"
    );
    let v = actions(&["status", "--env", "edge", "--json"]).json();
    assert_eq!(v["source"], "tags", "{v:#}");
    assert_eq!(v["current"]["number"], 2);
    assert_eq!(v["releases"][1]["status"], "superseded");

    actions(&["rollback", "--env", "edge"])
        .status(0)
        .stdout_has("release 2 marked bad");
    let st = gh.state.lock().unwrap();
    let message = |tag: &str| -> ReleaseRecord {
        let sha = &st.refs[&format!("refs/tags/{tag}")];
        serde_json::from_str(st.tag_objects[sha]["message"].as_str().unwrap()).unwrap()
    };
    assert_eq!(message("deploy/edge/2").status.0, ReleaseStatus::Bad);
    assert_eq!(message("deploy/edge/3").status.0, ReleaseStatus::Live);
    assert_eq!(
        st.refs["refs/tags/edge"],
        st.refs["refs/tags/deploy/edge/3"]
    );
    let tasks: Vec<&str> = st
        .deployments
        .iter()
        .map(|d| d["task"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tasks, ["deploy:pages", "deploy:pages", "deploy:rollback"]);
}

#[test]
fn migrations_are_releases_and_a_rollback_prints_the_down_command_instead_of_running_it() {
    let host = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: DEV_DB }}\nmigrations:\n  dir: migrations\n  engine: sqlite\n  paths: [\"migrations/**\"]\n",
        host.path().display()
    ));
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id integer);\n");
    p.file("migrations/0002_b.sql", "CREATE TABLE b (id integer);\n");
    p.commit("migrations");
    let run = |args: &[&str]| p.run(args).env("DEV_DB", "sqlite://dev.db").go();
    run(&["migrate", "--env", "dev", "--target", "1"])
        .status(0)
        .stdout_has("dev: release 1");
    run(&["migrate", "--env", "dev"])
        .status(0)
        .stdout_has("dev: release 2");
    // Nothing to do is not a release.
    run(&["migrate", "--env", "dev"]).status(0);
    let v = run(&["status", "--env", "dev", "--json"]).json();
    assert_eq!(v["current"]["number"], 2, "{v:#}");
    assert_eq!(v["migration"]["version"], "2");
    assert_eq!(v["releases"].as_array().unwrap().len(), 2);

    run(&["rollback", "--env", "dev"])
        .status(0)
        .stdout_has("deploy-action migrate --env dev down --to 1");
    let v = run(&["status", "--env", "dev", "--json"]).json();
    assert_eq!(v["current"]["number"], 3);
    assert_eq!(
        v["migration"]["version"], "2",
        "the database was not touched"
    );
    assert_eq!(v["releases"][1]["status"], "bad");
}

#[test]
fn promote_brings_the_database_to_the_source_version_not_to_the_newest_file() {
    let stg = tempfile::tempdir().unwrap();
    let prd = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: STG_DB }}\n  production:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: PRD_DB }}\n    promote_from: staging\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
        stg.path().display(),
        prd.path().display()
    ));
    for (f, sql) in [
        ("0001_a.sql", "CREATE TABLE a (id integer);"),
        ("0002_b.sql", "CREATE TABLE b (id integer);"),
        ("0003_c.sql", "CREATE TABLE c (id integer);"),
    ] {
        p.file(&format!("migrations/{f}"), sql);
    }
    p.commit("migrations");
    let run = |args: &[&str]| {
        p.run(args)
            .env("STG_DB", "sqlite://stg.db")
            .env("PRD_DB", "sqlite://prd.db")
            .go()
    };
    run(&["migrate", "--env", "staging", "--target", "2"]).status(0);
    run(&["promote", "--env", "production", "--dry-run"])
        .status(0)
        .stdout_has("version 2");
    run(&["promote", "--env", "production"])
        .status(0)
        .stdout_has("production is on release 1 = release staging/1");
    let tables = |db: &str| -> Vec<String> {
        let c = rusqlite::Connection::open(p.path().join(db)).unwrap();
        let mut st = c
            .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name IN ('a','b','c') ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        tables("prd.db"),
        ["a", "b"],
        "up to staging's version 2, not 3"
    );
    let v = run(&["status", "--env", "production", "--json"]).json();
    assert_eq!(v["migration"]["version"], "2");
    assert_eq!(v["current"]["promoted_from"], "staging/1");
    // Promoting again changes nothing.
    run(&["promote", "--env", "production"])
        .status(0)
        .stdout_has("already runs the artifacts");
}

#[test]
fn promote_deploys_the_staging_pages_manifest_to_the_production_branch_without_uploading() {
    use crate::fake_cloudflare::{FakeCloudflare, Route};
    let stg = tempfile::tempdir().unwrap();
    let prd = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\n  production:\n    hosts: [\"local\"]\n    dir: {}\n    promote_from: staging\nsites:\n  web:\n    project: shop-web\n    dir: site\n    production_branch: main\n",
        stg.path().display(),
        prd.path().display()
    ));
    p.file("site/index.html", "<h1>v1</h1>\n");
    p.file("site/_headers", "/*\n  X-Frame-Options: DENY\n");
    p.commit("site");
    let cf = FakeCloudflare::start();
    pages_run(
        &p,
        &cf,
        &["pages", "--env", "staging", "--all", "--branch", "staging"],
    )
    .status(0);
    assert_eq!(cf.deployments()[0]["environment"], "preview");
    // The build output changes after staging verified it: production must not get this.
    p.file("site/index.html", "<h1>unverified</h1>\n");
    p.commit("unverified");
    let uploads = cf.count(Route::Upload);
    pages_run(&p, &cf, &["promote", "--env", "production"])
        .status(0)
        .stdout_has("nothing is uploaded or built");
    assert_eq!(cf.count(Route::Upload), uploads, "promote uploads nothing");
    let d = cf.deployments();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1]["environment"], "production");
    assert_eq!(cf.manifest(1), cf.manifest(0), "the same bytes as staging");
    assert_eq!(
        cf.part(1, "_headers"),
        cf.part(0, "_headers"),
        "the special files too"
    );
    let v = pages_run(&p, &cf, &["status", "--env", "production", "--json"]).json();
    assert_eq!(v["pages"]["web"]["deployment_id"], d[1]["id"]);
    assert_eq!(v["pages"]["web"]["environment"], "production");
    assert_eq!(v["current"]["promoted_from"], "staging/1");
}

#[test]
fn a_rollback_whose_images_were_pruned_fails_with_exit_1_and_changes_nothing() {
    crate::harness::services::require_docker();
    let (p, dir) = project();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {dir}\n    compose_files: [compose.yml]\nservices:\n  web:\n    paths: [\"web/**\"]\n"
    ));
    let mut r1 = release(1, ReleaseStatus::Superseded, &"a".repeat(40), "web:v1");
    r1.services.get_mut("web").unwrap().release_tag =
        Some("deploy-action-test/pruned:gone-release-1".into());
    write_release(&dir, &r1);
    write_release(
        &dir,
        &release(2, ReleaseStatus::Live, &"b".repeat(40), "web:v2"),
    );
    p.run(&["rollback", "--env", "staging"])
        .go()
        .status(1)
        .stderr_has(
            "deploy-action-test/pruned:gone-release-1 of release 1 is no longer on the host",
        );
    let r2: ReleaseRecord = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/.deploy-action/releases/2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r2.status.0, ReleaseStatus::Live, "nothing was marked bad");
    assert!(!std::path::Path::new(&format!("{dir}/.deploy-action/releases/3.json")).exists());
}

#[test]
fn rollback_puts_the_compose_configuration_back_with_the_images() {
    use crate::up::{Stack, WEB_V1, WEB_V2, service_yaml, sh};
    let s = Stack::new("rbcfg", "\"local\"", 5);
    let compose = |web: &str, mark: &str| {
        s.project.file(
            "compose.yml",
            &format!(
                "services:\n{}    environment: [MARK={mark}]\n{}",
                service_yaml("web", web, s.web_port),
                service_yaml("api", WEB_V1, s.api_port)
            ),
        );
    };
    compose(WEB_V1, "one");
    s.project.commit("mark one");
    s.up(&["--all"]).status(0);
    compose(WEB_V2, "two");
    s.project.commit("mark two");
    s.up(&["--only", "web"]).status(0);
    let mark = || {
        sh(&format!(
            "docker inspect --format '{{{{range .Config.Env}}}}{{{{println .}}}}{{{{end}}}}' {}",
            s.container("web")
        ))
    };
    assert!(mark().contains("MARK=two"), "{}", mark());
    s.project.run(&["rollback", "--env", "test"]).go().status(0);
    assert_eq!(s.web_body(), "v1");
    assert!(
        mark().contains("MARK=one"),
        "the release's compose file is back: {}",
        mark()
    );
    assert!(
        std::fs::read_to_string(s.host_dir.path().join("compose.yml"))
            .unwrap()
            .contains("MARK=one")
    );
}

/// A project whose `dev` environment lives on `local` under `host`, with SQLite migrations: a
/// `migrate` that applies something appends a release in a second.
fn migrations_project(host: &std::path::Path) -> Project {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: {}\n    database: {{ url_env: DEV_DB }}\nmigrations:\n  dir: migrations\n  engine: sqlite\n  paths: [\"migrations/**\"]\n",
        host.display()
    ));
    p.file("migrations/0001_a.sql", "CREATE TABLE a (id integer);\n");
    p.file("migrations/0002_b.sql", "CREATE TABLE b (id integer);\n");
    p.commit("migrations");
    p
}

#[test]
fn r10_non_ascii_sha_in_a_release_record_does_not_panic() {
    let (p, dir) = project();
    write_release(
        &dir,
        &release(
            1,
            ReleaseStatus::Superseded,
            &format!("a{}", "é".repeat(20)),
            "web:1",
        ),
    );
    // A byte slice at 12 would cut a two-byte character in half.
    let mut r2 = release(
        2,
        ReleaseStatus::Live,
        &format!("a{}", "ß".repeat(40)),
        "web:2",
    );
    r2.services.get_mut("web").unwrap().image_id = format!("sha256:a{}", "ü".repeat(30));
    write_release(&dir, &r2);
    p.run(&["status", "--env", "staging"])
        .go()
        .status(0)
        .stdout_has(&format!("current release: 2 (a{},", "ß".repeat(11)))
        .stdout_has(&format!("web:2 (a{})", "ü".repeat(11)));
    p.run(&["rollback", "--env", "staging", "--dry-run"])
        .go()
        .status(0)
        .stdout_has(&format!("to release 1 (a{})", "é".repeat(11)));
}

#[test]
fn r10_lock_wait_99999999999999999999h_is_exit_2_not_a_panic() {
    let host = tempfile::tempdir().unwrap();
    let p = migrations_project(host.path());
    for value in ["99999999999999999999h", "5124095576030432h"] {
        p.run(&["up", "--env", "dev", "--lock-wait", value])
            .go()
            .status(2)
            .stderr_has("--lock-wait: invalid duration")
            .stderr_has("longer than the longest allowed (168h)");
    }
    // migrate's own --lock-wait (its --approval-timeout is the guard's, read only by a gate).
    p.run(&[
        "migrate",
        "--env",
        "dev",
        "--lock-wait",
        "99999999999999999999h",
    ])
    .env("DEV_DB", "sqlite://dev.db")
    .go()
    .status(2)
    .stderr_has("--lock-wait: `99999999999999999999h` is not a duration");
}

#[test]
fn r10_a_corrupt_newest_release_record_keeps_its_number_and_its_tag_is_never_moved() {
    let host = tempfile::tempdir().unwrap();
    let p = migrations_project(host.path());
    let run = |args: &[&str]| p.run(args).env("DEV_DB", "sqlite://dev.db").go();
    let rev = |r: &str| p.git_cmd(&["rev-parse", r]).trim().to_string();
    run(&["migrate", "--env", "dev", "--target", "1", "--tag"])
        .status(0)
        .stdout_has("tagged deploy/dev/1, dev");
    run(&["migrate", "--env", "dev", "--tag"])
        .status(0)
        .stdout_has("tagged deploy/dev/2, dev");
    let tag2 = rev("deploy/dev/2");
    let corrupt = host.path().join(".deploy-action/releases/2.json");
    std::fs::write(&corrupt, "{\"number\": 2, \"env\": \"dev\", \"sha\"").unwrap();
    p.file("migrations/0003_c.sql", "CREATE TABLE c (id integer);\n");
    p.commit("c");
    run(&["migrate", "--env", "dev", "--tag"])
        .status(0)
        .stdout_has("releases/2.json: not a release record")
        .stdout_has("dev: release 3")
        .stdout_has("tagged deploy/dev/3, dev");
    assert_eq!(rev("deploy/dev/2"), tag2, "release 2's tag did not move");
    assert_eq!(
        std::fs::read_to_string(&corrupt).unwrap(),
        "{\"number\": 2, \"env\": \"dev\", \"sha\"",
        "the corrupt record was not overwritten"
    );
    assert_eq!(rev("dev^{commit}"), rev("HEAD"));

    // A new ledger (the state directory was lost) numbers from 1 again: the tag of the old
    // release 1 stays where it is, and so does the pointer.
    let (tag1, pointer) = (rev("deploy/dev/1"), rev("dev"));
    std::fs::remove_dir_all(host.path().join(".deploy-action")).unwrap();
    p.file("migrations/0004_d.sql", "CREATE TABLE d (id integer);\n");
    p.commit("d");
    run(&["migrate", "--env", "dev", "--tag"])
        .status(0)
        .stdout_has("dev: release 1")
        .stdout_has("deploy/dev/1 already exists and records another release");
    assert_eq!(rev("deploy/dev/1"), tag1);
    assert_eq!(rev("dev"), pointer);
}

#[test]
fn r10_through_the_api_an_existing_release_tag_is_never_moved() {
    let host = tempfile::tempdir().unwrap();
    let p = migrations_project(host.path());
    let gh = FakeGitHub::start();
    let out_dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        p.run(args)
            .env("DEV_DB", "sqlite://dev.db")
            .envs(actions_env(&gh, out_dir.path()))
            .go()
    };
    let refs = || gh.state.lock().unwrap().refs.clone();
    run(&["migrate", "--env", "dev", "--target", "1"]).status(0);
    run(&["migrate", "--env", "dev"]).status(0);
    let before = refs();
    std::fs::write(host.path().join(".deploy-action/releases/2.json"), "{").unwrap();
    p.file("migrations/0003_c.sql", "CREATE TABLE c (id integer);\n");
    p.commit("c");
    run(&["migrate", "--env", "dev"])
        .status(0)
        .stdout_has("dev: release 3");
    let after = refs();
    assert_eq!(
        after["refs/tags/deploy/dev/2"],
        before["refs/tags/deploy/dev/2"]
    );
    assert_eq!(after["refs/tags/dev"], after["refs/tags/deploy/dev/3"]);

    std::fs::remove_dir_all(host.path().join(".deploy-action")).unwrap();
    p.file("migrations/0004_d.sql", "CREATE TABLE d (id integer);\n");
    p.commit("d");
    run(&["migrate", "--env", "dev"])
        .status(0)
        .stdout_has("dev: release 1")
        .stdout_has("::warning::cannot tag deploy/dev/1: deploy/dev/1 already exists and records another release");
    let last = refs();
    assert_eq!(
        last["refs/tags/deploy/dev/1"],
        before["refs/tags/deploy/dev/1"]
    );
    assert_eq!(
        last["refs/tags/dev"], after["refs/tags/dev"],
        "the pointer stayed"
    );
    let moved: Vec<String> = gh
        .log()
        .into_iter()
        .filter(|l| l.starts_with("PATCH") && l.contains("git/refs/tags/deploy/"))
        .collect();
    assert!(moved.is_empty(), "release tags were moved: {moved:?}");
}

#[test]
fn r10_health_failure_text_is_masked_in_records_audit_lines_tags_and_deployments() {
    use crate::up::Stack;
    let gh = FakeGitHub::start();
    let s = Stack::new("mask", "\"local\"", 5);
    let secret = gh.token.clone();
    // The health URL carries a secret, and fails (404): the failure text quotes the URL.
    let yml = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    let url = format!("http://127.0.0.1:{}/", s.web_port);
    s.project.manifest(&yml.replace(
        &format!("url: \"{url}\", timeout: 30s"),
        &format!("url: \"{url}nope?key={secret}\", timeout: 3s"),
    ));
    s.project.commit("health url with a key");
    let out_dir = tempfile::tempdir().unwrap();
    let out = s
        .project
        .run(&["up", "--env", "test", "--only", "web"])
        .envs(actions_env(&gh, out_dir.path()))
        .env("DEPLOY_REASON", format!("retry after rotating {secret}"))
        .go();
    out.status(1);
    // Only the mask command itself names it.
    let printed =
        format!("{}\n{}", out.stdout, out.stderr).replace(&format!("::add-mask::{secret}"), "");
    assert!(!printed.contains(&secret), "{printed}");
    let r1 = s.record(1);
    let notes = r1["notes"].to_string();
    assert!(
        notes.contains(&format!("GET {url}nope?key=***: status 404")),
        "the failure text is recorded, masked: {notes}"
    );
    let on_host = sh_cat(s.host_dir.path());
    assert!(on_host.contains("retry after rotating ***"), "{on_host}");
    assert!(!on_host.contains(&secret), "{on_host}");
    let st = gh.state.lock().unwrap();
    let sent = serde_json::to_string(&(&st.tag_objects, &st.deployments, &st.statuses)).unwrap();
    assert!(sent.contains("nope?key=***"), "{sent}");
    assert!(!sent.contains(&secret), "{sent}");
}

/// Every release record and the audit log under `dir`, as one text.
fn sh_cat(dir: &std::path::Path) -> String {
    crate::up::sh(&format!(
        "cat {0}/.deploy-action/releases/*.json {0}/.deploy-action/audit.log",
        dir.display()
    ))
}

/// A small tmpfs mounted over a directory for one test.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (the test runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn r10_on_a_full_disk_the_release_is_not_live_until_its_record_is_written() {
    use crate::env_lock::{Bg, command, slow_web};
    use crate::up::{Stack, WEB_V2};
    let s = Stack::new("full", "\"local\"", 5);
    let _disk = Tmpfs::mount(s.host_dir.path(), "4m");
    s.up(&["--all"]).status(0);
    slow_web(&s, 6);
    s.project.commit("web v2, slow to start");
    let mut x = Bg::spawn(command(
        s.project.path(),
        &[],
        &["up", "--env", "test", "--only", "web"],
        &[],
    ));
    x.wait_for("local: health gate: web");
    // The disk fills up while the new version starts.
    crate::up::sh(&format!(
        "dd if=/dev/zero of={}/fill bs=64k 2>/dev/null; true",
        s.host_dir.path().display()
    ));
    let out = x.finish();
    out.status(1)
        .stderr_has("cannot write release record 2 (")
        .stderr_has("release 2 is not recorded as live: it stays in_progress")
        .stderr_has(&format!("What runs now: api runs {}", crate::up::WEB_V1))
        .stderr_has(&format!("web runs {WEB_V2}"));
    assert_eq!(s.record(2)["status"], "in_progress");
    let audit = s.state("audit.log");
    assert!(
        !audit
            .lines()
            .any(|l| l.contains("\"release\":2") && l.contains("\"result\":\"live\"")),
        "the audit log does not call release 2 live:\n{audit}"
    );
    assert!(
        !s.host_dir.path().join(".deploy-action/lock").exists(),
        "the lock is released on a full disk too"
    );
    assert_eq!(s.web_body(), "v2", "what the message said runs");
    // Room again: the next run marks release 2 interrupted and records its own.
    std::fs::remove_file(s.host_dir.path().join("fill")).unwrap();
    s.up(&["--only", "web"]).status(0).stdout_has(
        "release 2 was left in_progress by a run that did not finish; marked interrupted",
    );
    assert_eq!(s.record(2)["status"], "interrupted");
    assert_eq!(s.record(3)["status"], "live");
}
