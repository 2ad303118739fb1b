//! `up` against the real Docker engine (compose v2 2.26.1 and v1 1.29.2) on the `local` host and
//! over SSH: first deploy, selective update, automatic rollback (of the failed services only, with
//! the previous compose files), crash loops, a cancelled run, lock, concurrency, `--image`,
//! release records, audit log, retention, several hosts.

use crate::harness::{Outcome, Project, services};
use std::process::Command;

pub(crate) const WEB_V1: &str = "deploy-action-test/web:v1";
pub(crate) const WEB_V2: &str = "deploy-action-test/web:v2";
pub(crate) const WEB_BROKEN: &str = "deploy-action-test/web:broken";

/// A port for a test's published container port. Not from the kernel's ephemeral range
/// (32768–60999), where a port just released by one test process is soon handed to another as
/// an outgoing connection's or another test's "free" port (docker then fails with "port is
/// already allocated"): a range below it, each test process starting at its own offset (its pid)
/// and taking the next port that nothing listens on.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(37);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + start.wrapping_add(n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

pub(crate) fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A compose stack for one test: unique project, its own ports, a host directory, cleaned up on drop.
pub(crate) struct Stack {
    pub(crate) project: Project,
    pub(crate) name: String,
    pub(crate) host_dir: tempfile::TempDir,
    pub(crate) web_port: u16,
    pub(crate) api_port: u16,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let p = &self.name;
        sh(&format!(
            "docker ps -aq --filter label=com.docker.compose.project={p} | xargs -r docker rm -f >/dev/null 2>&1; \
             docker network rm {p}_default >/dev/null 2>&1; \
             docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep -F ':{p}.' | xargs -r docker rmi >/dev/null 2>&1; true"
        ));
    }
}

/// The environment of an `up` over SSH to the test sshd.
pub(crate) fn ssh_env() -> Vec<(&'static str, String)> {
    services::require_sshd();
    vec![
        ("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE")),
        (
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_FILE"),
        ),
    ]
}

pub(crate) fn service_yaml(name: &str, image: &str, port: u16) -> String {
    format!(
        "  {name}:\n    image: {image}\n    ports: [\"127.0.0.1:{port}:80\"]\n    stop_grace_period: 1s\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/health\"]\n      interval: 1s\n      timeout: 2s\n      retries: 3\n"
    )
}

impl Stack {
    pub(crate) fn new(tag: &str, hosts: &str, keep: u32) -> Stack {
        services::require_docker();
        let name = format!("da-up-{tag}-{}", std::process::id() % 100_000);
        let host_dir = tempfile::Builder::new()
            .prefix("da-host-")
            .tempdir()
            .unwrap();
        let s = Stack {
            project: Project::git(),
            name,
            host_dir,
            web_port: free_port(),
            api_port: free_port(),
        };
        s.project.manifest(&format!(
            r#"version: 1
project: shop
environments:
  test:
    hosts: [{hosts}]
    dir: {dir}
    compose_files: [compose.yml]
    compose_project: {name}
    keep_releases: {keep}
services:
  web:
    health: {{ url: "http://127.0.0.1:{wp}/", timeout: 30s, expect_status: 200 }}
  api:
    health: {{ url: "http://127.0.0.1:{ap}/health", timeout: 30s, expect_status: 200, contains: "ok" }}
"#,
            dir = s.host_dir.path().display(),
            name = s.name,
            wp = s.web_port,
            ap = s.api_port,
        ));
        s.project.file("web.env", "GREETING=hello\n");
        s.compose(WEB_V1, WEB_V1);
        s.project.commit("stack");
        s
    }

    /// Runs `up` over SSH with the test key and known_hosts.
    pub(crate) fn up_ssh(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["up", "--env", "test"];
        args.extend_from_slice(extra);
        self.project.run(&args).envs(ssh_env()).go()
    }

    pub(crate) fn api_body(&self) -> String {
        sh(&format!("curl -fsS http://127.0.0.1:{}/", self.api_port))
    }

    /// The manifest with `hosts:` replaced.
    pub(crate) fn hosts(&self, hosts: &str) {
        let manifest = std::fs::read_to_string(self.project.path().join("deploy.yml")).unwrap();
        self.project
            .manifest(&manifest.replace("hosts: [\"local\"]", &format!("hosts: [{hosts}]")));
        // `up` deploys commits: a dirty deploy.yml would be refused.
        self.project.commit("hosts");
    }

    pub(crate) fn compose(&self, web: &str, api: &str) {
        self.compose_web_extra(web, api, "");
    }

    /// The stack with more keys for `web` (a `command:`, a `restart:` policy, other ports).
    pub(crate) fn compose_web_extra(&self, web: &str, api: &str, extra: &str) {
        self.project.file(
            "compose.yml",
            &format!(
                "services:\n{}{}",
                service_yaml("web", web, self.web_port)
                    + "    depends_on: [api]\n    env_file: web.env\n"
                    + extra,
                service_yaml("api", api, self.api_port)
            ),
        );
        self.project.commit("compose");
    }

    pub(crate) fn up(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["up", "--env", "test"];
        args.extend_from_slice(extra);
        self.project.run(&args).go()
    }

    pub(crate) fn container(&self, svc: &str) -> String {
        sh(&format!(
            "docker ps -q --no-trunc --filter label=com.docker.compose.project={} --filter label=com.docker.compose.service={svc}",
            self.name
        ))
    }

    pub(crate) fn web_body(&self) -> String {
        sh(&format!("curl -fsS http://127.0.0.1:{}/", self.web_port))
    }

    pub(crate) fn state(&self, rel: &str) -> String {
        std::fs::read_to_string(self.host_dir.path().join(".deploy-action").join(rel))
            .unwrap_or_default()
    }

    pub(crate) fn record(&self, n: u64) -> serde_json::Value {
        serde_json::from_str(&self.state(&format!("releases/{n}.json")))
            .unwrap_or_else(|e| panic!("release {n}: {e}"))
    }
}

#[test]
fn up_deploys_then_updates_one_service_and_keeps_the_other() {
    let s = Stack::new("sel", "\"local\"", 2);
    let first = s.up(&["--all"]);
    first
        .status(0)
        .stdout_has("docker compose 2.26.1")
        .stdout_has("#12069");
    assert_eq!(s.web_body(), "v1");
    let api_before = s.container("api");
    let web_before = s.container("web");
    assert!(!api_before.is_empty() && !web_before.is_empty());
    assert_eq!(s.record(1)["status"], "live");
    assert!(s.state("audit.log").contains("\"action\":\"up\""));
    assert!(
        !s.host_dir.path().join(".deploy-action/lock").exists(),
        "lock released"
    );

    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2");
    let out = s.up(&["--only", "web"]);
    out.status(0)
        .stdout_has("web is healthy")
        .stdout_has("touches no other service");
    assert!(
        !out.stdout.contains("would recreate"),
        "no false #12069 warning:\n{}",
        out.stdout
    );
    assert_eq!(s.web_body(), "v2");
    assert_eq!(s.container("api"), api_before, "api was not touched");
    assert_ne!(s.container("web"), web_before);
    assert_eq!(s.record(2)["status"], "live");
    assert_eq!(s.record(1)["status"], "superseded");
    assert_eq!(s.record(2)["previous"]["web"]["image"], WEB_V1);
    // compose #12069 (2.26.1 here) with an env_file: what a later plain `docker compose up` does
    // is asked of compose itself; it recreates nothing, and deploy-action said nothing false.
    let plain = sh(&format!(
        "cd {} && docker compose -p {} -f compose.yml --dry-run up -d 2>&1",
        s.host_dir.path().display(),
        s.name
    ));
    assert!(
        plain.contains("web-1  Running") && !plain.contains("Recreate"),
        "{plain}"
    );
    // Retention: keep_releases 2 → after a third release, record 1 and its tags are gone.
    s.compose(WEB_V1, WEB_V1);
    s.project.commit("web v1 again");
    s.up(&["--only", "web"])
        .status(0)
        .stdout_has("retention: removed releases [1]");
    assert!(
        !s.host_dir
            .path()
            .join(".deploy-action/releases/1.json")
            .exists()
    );
    assert_eq!(s.record(3)["status"], "live");
    // Every tag a kept release names still exists (api kept release 1's image, unchanged).
    for n in [2, 3] {
        let r = s.record(n);
        for part in ["services", "previous"] {
            for (svc, st) in r[part].as_object().unwrap() {
                if let Some(tag) = st["release_tag"].as_str() {
                    assert!(
                        !sh(&format!("docker image inspect -f '{{{{.Id}}}}' {tag}")).is_empty(),
                        "release {n} {part}.{svc}: {tag} was pruned"
                    );
                }
            }
        }
    }
    assert_eq!(
        s.record(3)["services"]["api"]["release_tag"],
        format!("deploy-action-test/web:{}.api-release-1", s.name),
        "an unchanged service keeps its release tag"
    );
}

#[test]
fn up_rolls_back_a_broken_image_and_the_previous_version_keeps_serving() {
    let s = Stack::new("rb", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    let api_before = s.container("api");
    // A second host after the failing one is checked first, then never deployed.
    s.hosts(&format!(
        "\"local\", \"{}\"",
        services::var("DA_TEST_SSH_URL")
    ));
    let out = s.up_ssh(&["--image", &format!("web={WEB_BROKEN}"), "--yes"]);
    out.status(1)
        .stdout_has("rolled back web")
        .stdout_has("not run")
        .stderr_has("the previous version is serving; later hosts were not touched");
    assert!(
        out.stdout.contains("health log") || out.stdout.contains("unhealthy"),
        "{}",
        out.stdout
    );
    assert_eq!(s.web_body(), "v1", "the previous version serves");
    assert_eq!(s.container("api"), api_before);
    let r = s.record(2);
    assert_eq!(r["status"], "rolled_back");
    assert_eq!(r["previous"]["web"]["image"], WEB_V1);
    // The image that was tried is in the record, not only in the log.
    assert_eq!(r["services"]["web"]["tried"], WEB_BROKEN);
    assert_eq!(
        r["services"]["web"]["image_id"], r["previous"]["web"]["image_id"],
        "web runs its previous image again (through its …-before tag)"
    );
    assert!(
        r["notes"].to_string().contains(WEB_BROKEN),
        "{}",
        r["notes"]
    );
    assert!(s.state("audit.log").contains("\"result\":\"rolled_back\""));
    assert!(
        !s.host_dir
            .path()
            .join(".deploy-action/releases/3.json")
            .exists(),
        "the second host (the same directory on this machine) was not deployed"
    );
}

#[test]
fn up_with_a_held_lock_exits_4_and_changes_nothing() {
    let s = Stack::new("lock", "\"local\"", 5);
    let lock = s.host_dir.path().join(".deploy-action/lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(
        lock.join("owner.json"),
        r#"{"run_url":"https://github.com/o/r/actions/runs/42","actor":"octocat","sha":"abc123","started_at":"2026-01-01T00:00:00Z","command":"up","hostname":"ci-runner","pid":7}"#,
    )
    .unwrap();
    let out = s.up(&["--all"]);
    out.status(4)
        .stderr_has("octocat")
        .stderr_has("actions/runs/42")
        .stderr_has("possibly stale");
    assert!(s.container("web").is_empty(), "nothing deployed");
    s.up(&["--all", "--lock-wait", "2s"])
        .status(4)
        .stdout_has("waiting up to 2s")
        .stderr_has("octocat");
    assert!(!s.host_dir.path().join(".deploy-action/releases").exists());
    s.project
        .run(&["lock", "status", "--env", "test"])
        .go()
        .status(0)
        .stdout_has("held by octocat");
    s.project
        .run(&["lock", "release", "--env", "test"])
        .go()
        .status(2)
        .stderr_has("--yes");
    s.project
        .run(&["lock", "release", "--env", "test", "--yes"])
        .go()
        .status(0)
        .stdout_has("lock released");
    assert!(!lock.exists());
}

#[test]
fn two_concurrent_ups_never_both_deploy() {
    let s = Stack::new("conc", "\"local\"", 5);
    let a = s.project.run(&["up", "--env", "test", "--all"]);
    let b = s.project.run(&["up", "--env", "test", "--all"]);
    let ta = std::thread::spawn(move || a.go());
    let tb = std::thread::spawn(move || b.go());
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    let mut codes = [ra.status, rb.status];
    codes.sort();
    assert_eq!(
        codes,
        [0, 4],
        "a:\n{}\n{}\nb:\n{}\n{}",
        ra.stdout,
        ra.stderr,
        rb.stdout,
        rb.stderr
    );
    let loser = if ra.status == 4 { &ra } else { &rb };
    loser.stderr_has("lock is held by");
    assert!(
        s.host_dir
            .path()
            .join(".deploy-action/releases/1.json")
            .exists()
    );
    assert!(
        !s.host_dir
            .path()
            .join(".deploy-action/releases/2.json")
            .exists()
    );
}

#[test]
fn image_flag_checks_first_asks_and_records() {
    let s = Stack::new("img", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    // A missing image is refused before anything changes.
    s.up(&["--image", "web=deploy-action-test/web:nope", "--yes"])
        .status(2)
        .stderr_has("cannot be pulled");
    assert!(
        !s.host_dir
            .path()
            .join(".deploy-action/releases/2.json")
            .exists()
    );
    // No terminal and no --yes: refused.
    s.up(&["--image", &format!("web={WEB_V2}")])
        .status(2)
        .stderr_has("--yes");
    let outputs = s.project.path().join("gh-output");
    let summary = s.project.path().join("gh-summary");
    let out = s
        .project
        .run(&[
            "up",
            "--env",
            "test",
            "--image",
            &format!("web={WEB_V2}"),
            "--yes",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", outputs.display().to_string())
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .go();
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert!(outputs.contains("release=2\n"), "{outputs}");
    assert!(outputs.contains("services="), "{outputs}");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.contains(&format!("| local | web | {WEB_V1} | {WEB_V2} | healthy |")),
        "{summary}"
    );
    assert!(summary.contains("by hand"), "{summary}");
    out.status(0)
        .stdout_has(&format!("web: {WEB_V1} → {WEB_V2}"));
    assert_eq!(s.web_body(), "v2");
    assert_eq!(s.record(2)["services"]["web"]["image"], WEB_V2);
    assert!(s.state("override.yml").contains(WEB_V2));
}

#[test]
fn dry_run_prints_the_steps_and_changes_nothing() {
    let s = Stack::new("dry", "\"local\"", 5);
    let out = s.up(&["--all", "--dry-run"]);
    out.status(0)
        .stdout_has("mkdir ")
        .stdout_has("up -d --no-deps web api");
    assert!(s.container("web").is_empty());
    assert!(!s.host_dir.path().join(".deploy-action").exists());
    // Without --only/--all, git changes choose: no service has `paths:` matching the last commit.
    s.up(&["--dry-run"])
        .status(0)
        .stdout_has("affected services: none")
        .stdout_has("nothing to do");
}

#[test]
fn compose_v1_deploys_and_rolls_back() {
    let s = Stack::new("v1", "\"local\"", 5);
    let first = s
        .project
        .run(&["up", "--env", "test", "--all"])
        .env("DEPLOY_COMPOSE", "v1")
        .go();
    first.status(0).stdout_has("docker-compose 1.29.2");
    let api_before = s.container("api");
    assert_eq!(s.web_body(), "v1");
    let out = s
        .project
        .run(&[
            "up",
            "--env",
            "test",
            "--image",
            &format!("web={WEB_BROKEN}"),
            "--yes",
        ])
        .env("DEPLOY_COMPOSE", "v1")
        .go();
    out.status(1).stdout_has("rolled back web");
    assert_eq!(s.web_body(), "v1");
    assert_eq!(s.container("api"), api_before);
    assert_eq!(s.record(2)["status"], "rolled_back");
}

#[test]
fn up_builds_a_service_image_tagged_with_the_sha_and_deploys_it() {
    let s = Stack::new("build", "\"local\"", 5);
    s.project
        .file(
            "services/web/Dockerfile",
            &format!("FROM {WEB_V1}\nCOPY index.html /www/index.html\n"),
        )
        .file("services/web/index.html", "built\n");
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    let image = format!("deploy-action-test/{}", s.name);
    s.project.manifest(&manifest.replace(
        "  web:\n",
        &format!("  web:\n    build: {{ context: services/web, dockerfile: Dockerfile, image: {image} }}\n"),
    ));
    let sha = s.project.commit("build web");
    let out = s.up(&["--only", "web"]);
    out.status(0);
    assert_eq!(s.web_body(), "built");
    assert_eq!(
        s.record(1)["services"]["web"]["image"],
        format!("{image}:{sha}")
    );
    assert!(s.state("override.yml").contains(&format!("{image}:{sha}")));
    // --no-build deploys what compose names again.
    s.up(&["--only", "web", "--no-build"]).status(0);
    assert_eq!(s.web_body(), "v1");
    sh(&format!("docker rmi {image}:{sha}"));
}

#[test]
fn up_over_ssh_ships_a_built_image_without_a_registry_and_rolls_back() {
    services::require_sshd();
    let url = services::var("DA_TEST_SSH_URL");
    let s = Stack::new("ssh", &format!("\"{url}\""), 5);
    s.project
        .file(
            "services/web/Dockerfile",
            &format!("FROM {WEB_V1}\nCOPY index.html /www/index.html\n"),
        )
        .file("services/web/index.html", "shipped\n");
    let manifest = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    let image = format!("deploy-action-test/{}", s.name);
    s.project.manifest(&manifest.replace(
        "  web:\n",
        &format!("  web:\n    build: {{ context: services/web, dockerfile: Dockerfile, image: {image} }}\n"),
    ));
    let sha = s.project.commit("build web");
    let ssh = |args: &[&str]| {
        s.project
            .run(args)
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
            .env(
                "DEPLOY_KNOWN_HOSTS_FILE",
                services::var("DA_TEST_KNOWN_HOSTS_FILE"),
            )
            .env("DEPLOY_TEST_ALWAYS_SHIP", "1")
            .go()
    };
    let out = ssh(&["up", "--env", "test", "--all"]);
    out.status(0)
        .stdout_has("docker save | gzip")
        .stdout_has("Loaded image");
    assert_eq!(s.web_body(), "shipped");
    // Release records and the audit log are on the host.
    assert_eq!(s.record(1)["status"], "live");
    assert_eq!(
        s.record(1)["services"]["web"]["image"],
        format!("{image}:{sha}")
    );
    assert!(s.state("audit.log").contains("\"action\":\"up\""));
    let api_before = s.container("api");
    let out = ssh(&[
        "up",
        "--env",
        "test",
        "--image",
        &format!("web={WEB_BROKEN}"),
        "--yes",
    ]);
    out.status(1).stdout_has("rolled back web");
    assert_eq!(s.web_body(), "shipped");
    assert_eq!(s.container("api"), api_before);
    // A second run while the lock is held exits 4.
    std::fs::create_dir_all(s.host_dir.path().join(".deploy-action/lock")).unwrap();
    ssh(&["up", "--env", "test", "--all"]).status(4);
    sh(&format!("docker rmi {image}:{sha}"));
}

/// Issue 3 audit, high severity: release and rollback tags were per image repository, so two
/// services running the same repository overwrote each other's `-before` tag and a rollback put
/// `web` on `api`'s version. Tags now name the compose project and the service.
#[test]
fn r3_two_services_of_one_repository_roll_back_to_their_own_images() {
    let s = Stack::new("tags", "\"local\"", 5);
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2, api v1: one repository");
    s.up(&["--all"]).status(0);
    assert_eq!((s.web_body().as_str(), s.api_body().as_str()), ("v2", "v1"));
    let out = s.up(&[
        "--image",
        &format!("web={WEB_BROKEN}"),
        "--image",
        &format!("api={WEB_BROKEN}"),
        "--yes",
    ]);
    out.status(1).stdout_has("rolled back");
    assert_eq!(s.web_body(), "v2", "web is back on its own previous image");
    assert_eq!(s.api_body(), "v1", "api is back on its own previous image");
    let r = s.record(2);
    let (web, api) = (&r["previous"]["web"], &r["previous"]["api"]);
    assert_eq!(
        web["release_tag"],
        format!("deploy-action-test/web:{}.web-release-2-before", s.name)
    );
    assert_eq!(
        api["release_tag"],
        format!("deploy-action-test/web:{}.api-release-2-before", s.name)
    );
    for st in [web, api] {
        let tag = st["release_tag"].as_str().unwrap();
        assert_eq!(
            sh(&format!("docker image inspect -f '{{{{.Id}}}}' {tag}")),
            st["image_id"].as_str().unwrap(),
            "{tag} keeps the image its service ran"
        );
    }
}

/// The audit's repro: a broken `web` and a good `api` deployed together. Only `web` goes back;
/// `api` stays on its new version.
#[test]
fn only_the_failing_service_is_rolled_back() {
    let s = Stack::new("only", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    let out = s.up(&[
        "--image",
        &format!("web={WEB_BROKEN}"),
        "--image",
        &format!("api={WEB_V2}"),
        "--yes",
    ]);
    out.status(1)
        .stdout_has("api is healthy")
        .stdout_has("rolled back web");
    assert_eq!(s.api_body(), "v2", "api keeps its new version");
    assert_eq!(s.web_body(), "v1");
    let r = s.record(2);
    assert_eq!(r["services"]["api"]["image"], WEB_V2);
    assert_eq!(r["services"]["web"]["tried"], WEB_BROKEN);
    assert!(
        !out.stdout.contains("rolling back web, api") && !out.stdout.contains("rolling back api"),
        "{}",
        out.stdout
    );
}

/// Only the services that fail are rolled back: here compose cannot even start `web` (its new
/// port is taken) and exits non-zero, while `api`'s new image is healthy and stays. `web` comes
/// back with release 1's compose file (its old port), not just its old image.
#[test]
fn when_compose_up_fails_only_the_failing_service_is_rolled_back() {
    let s = Stack::new("part", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    let api_before = s.container("api");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    s.compose(WEB_V1, WEB_V2);
    let text = std::fs::read_to_string(s.project.path().join("compose.yml")).unwrap();
    s.project.file(
        "compose.yml",
        &text.replace(
            &format!("127.0.0.1:{}:80", s.web_port),
            &format!("127.0.0.1:{busy_port}:80"),
        ),
    );
    s.project.commit("web on a taken port, api v2");
    let out = s.up(&["--all"]);
    out.status(1)
        .stdout_has("api is healthy")
        .stdout_has("release 1's compose and env files")
        .stdout_has("rolled back web");
    assert_eq!(
        s.api_body(),
        "v2",
        "the healthy service keeps its new version"
    );
    assert_ne!(s.container("api"), api_before);
    assert_eq!(s.web_body(), "v1", "web serves again on its old port");
    let r = s.record(2);
    assert_eq!(r["status"], "rolled_back");
    assert_eq!(r["services"]["api"]["image"], WEB_V2);
    assert!(r["services"]["api"]["tried"].is_null());
    assert!(r["notes"].to_string().contains("web"), "{}", r["notes"]);
    assert!(
        !std::fs::read_to_string(s.host_dir.path().join("compose.yml"))
            .unwrap()
            .contains(&busy_port.to_string()),
        "the host's compose file is release 1's again"
    );
    drop(busy);
}

/// A crash loop (`restart: always`, a process that exits after 2 s) looks healthy at first; the
/// stability window, counted from the container's start, catches the restart. The compose change
/// that caused it is rolled back with the image: release 1's compose file comes back.
#[test]
fn a_crash_loop_fails_the_gate_and_the_previous_compose_file_comes_back() {
    let s = Stack::new("crash", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    s.compose_web_extra(
        WEB_V1,
        WEB_V1,
        "    restart: always\n    command: [\"sh\", \"-c\", \"httpd -p 80 -h /www; sleep 2; exit 1\"]\n",
    );
    s.project.commit("web crashes after 2 s");
    let out = s.up(&["--only", "web"]);
    out.status(1)
        .stdout_has("crash loop")
        .stdout_has("rolled back web: the previous version is serving");
    assert!(
        !out.stdout.contains("not healthy either") && !out.stderr.contains("not healthy either"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(s.web_body(), "v1");
    assert!(
        !std::fs::read_to_string(s.host_dir.path().join("compose.yml"))
            .unwrap()
            .contains("exit 1"),
        "release 1's compose file is back on the host"
    );
    let restarts = sh(&format!(
        "docker inspect -f '{{{{.RestartCount}}}} {{{{.HostConfig.RestartPolicy.Name}}}}' {}",
        s.container("web")
    ));
    assert!(
        restarts.starts_with("0") && !restarts.contains("always"),
        "the rolled-back container runs release 1's configuration: {restarts}"
    );
    assert_eq!(s.record(2)["status"], "rolled_back");
    assert!(
        s.host_dir
            .path()
            .join(".deploy-action/files/1/compose.yml")
            .is_file()
    );
    assert!(
        s.host_dir
            .path()
            .join(".deploy-action/files/1/web.env")
            .is_file()
    );
}

/// A cancelled GitHub job sends SIGINT (then SIGTERM, then SIGKILL): the run stops waiting, puts
/// the service it was deploying back on the previous image, records the release, releases the
/// lock and exits 1.
#[test]
fn sigint_during_the_health_gate_rolls_back_records_and_unlocks() {
    use std::io::BufRead;
    let s = Stack::new("sigint", "\"local\"", 5);
    s.up(&["--all"]).status(0);
    // web v2 serves only after 30 s; its docker healthcheck is in its start period meanwhile.
    s.compose_web_extra(
        WEB_V2,
        WEB_V1,
        "    command: [\"sh\", \"-c\", \"sleep 30; exec httpd -f -p 80 -h /www\"]\n",
    );
    let text = std::fs::read_to_string(s.project.path().join("compose.yml")).unwrap();
    s.project.file(
        "compose.yml",
        &text.replacen(
            "      retries: 3\n",
            "      retries: 3\n      start_period: 60s\n",
            1,
        ),
    );
    s.project.commit("web v2, slow to start");
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["up", "--env", "test", "--only", "web"])
        .current_dir(s.project.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("DEPLOY_TEST_NO_PROGRESS", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let mut stdout = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains("health gate: web") {
            break;
        }
    }
    assert!(stdout.contains("health gate: web"), "{stdout}");
    sh(&format!("kill -INT {}", child.id()));
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    let stderr = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("cancelled by SIGINT"), "{stdout}\n{stderr}");
    assert!(
        !s.host_dir.path().join(".deploy-action/lock").exists(),
        "the lock is released"
    );
    let r = s.record(2);
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert!(r["notes"].to_string().contains("SIGINT"), "{}", r["notes"]);
    assert!(s.state("audit.log").contains("\"result\":\"cancelled\""));
    // The previous version serves (its container has just been started).
    let mut body = String::new();
    for _ in 0..50 {
        body = s.web_body();
        if body == "v1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(body, "v1");
}

/// Two hosts in one run: `local` and the test sshd, which are the same machine: they share the
/// Docker engine, the compose project and (`dir` is per environment) the state directory. So
/// the second host finds the stack the first one deployed, leaves every container alone and
/// records the next release in the same directory. What this shows: hosts run in order, each
/// gets a row and a release, and the outputs name both.
#[test]
fn two_hosts_deploy_in_order_with_a_row_and_a_release_each() {
    let s = Stack::new("hosts2", "\"local\"", 5);
    let url = services::var("DA_TEST_SSH_URL");
    s.hosts(&format!("\"local\", \"{url}\""));
    let outputs = s.project.path().join("gh-output");
    let summary = s.project.path().join("gh-summary");
    let out = s
        .project
        .run(&["up", "--env", "test", "--all"])
        .envs(ssh_env())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", outputs.display().to_string())
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .go();
    out.status(0);
    let summary = std::fs::read_to_string(summary).unwrap();
    let host2 = url.trim_start_matches("ssh://");
    for host in ["local", host2] {
        for svc in ["web", "api"] {
            assert!(
                summary.contains(&format!("| {host} | {svc} |")) && summary.contains("deployed"),
                "{host} {svc}:\n{summary}"
            );
        }
    }
    assert!(summary.contains("local: release 1"), "{summary}");
    assert!(
        summary.contains(&format!("{host2}: release 2")),
        "{summary}"
    );
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert!(outputs.contains("release=2\n"), "{outputs}");
    assert!(outputs.contains(host2), "{outputs}");
    let (r1, r2) = (s.record(1), s.record(2));
    assert_eq!(
        (r1["status"].as_str(), r2["status"].as_str()),
        (Some("superseded"), Some("live"))
    );
    for svc in ["web", "api"] {
        assert_eq!(
            r1["services"][svc]["container_id"], r2["services"][svc]["container_id"],
            "the second host left {svc}'s container alone"
        );
    }
    assert_eq!(s.web_body(), "v1");
}

/// Every host is reached and checked before the first one changes: an unreachable second host
/// stops the run with nothing deployed, and the matrix, the summary and the outputs still say so.
#[test]
fn an_unreachable_later_host_stops_the_run_before_any_host_changes() {
    let s = Stack::new("unreach", "\"local\"", 5);
    s.hosts("\"local\", \"ssh://deploy@127.0.0.1:1\"");
    let outputs = s.project.path().join("gh-output");
    let summary = s.project.path().join("gh-summary");
    let out = s
        .project
        .run(&["up", "--env", "test", "--all"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", outputs.display().to_string())
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .go();
    out.status(1).stderr_has("no host was changed");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary
            .contains("| local | - |  |  |  |  | not run: deploy@127.0.0.1:1 failed its check |"),
        "{summary}"
    );
    assert!(
        summary.contains("| deploy@127.0.0.1:1 | - |  |  |  |  | failed before any host changed"),
        "{summary}"
    );
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert!(outputs.contains("services=[]"), "{outputs}");
    assert!(s.container("web").is_empty(), "nothing deployed on local");
    assert!(!s.host_dir.path().join(".deploy-action").exists());
}

/// compose #12069 on 2.26.1 with a dependency that must be healthy: a plain `up` would poll it
/// (0.5 s per dependency in the chain), so `up --no-deps` is used and `--dry-run up` runs during
/// the gate; its answer (a later plain `up` would recreate web) is reported, and nothing is left
/// behind on the host.
#[test]
fn compose_12069_with_healthy_dependencies_warns_from_a_dry_run_during_the_gate() {
    let s = Stack::new("dep", "\"local\"", 5);
    let healthy = |web: &str| {
        s.compose(web, WEB_V1);
        let text = std::fs::read_to_string(s.project.path().join("compose.yml")).unwrap();
        s.project.file(
            "compose.yml",
            &text.replace(
                "    depends_on: [api]\n",
                "    depends_on: {api: {condition: service_healthy}}\n",
            ),
        );
        s.project.commit(web);
    };
    healthy(WEB_V1);
    s.up(&["--all"]).status(0);
    healthy(WEB_V2);
    s.up(&["--only", "web"])
        .status(0)
        .stdout_has("wait on healthy dependencies")
        .stdout_has("would recreate it (compose #12069)");
    assert_eq!(s.web_body(), "v2");
    let left: Vec<String> = std::fs::read_dir(s.host_dir.path().join(".deploy-action"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dry-run"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn r10_env_files_and_their_release_copies_land_0600_on_the_ssh_host() {
    use std::os::unix::fs::PermissionsExt;
    let url = services::var("DA_TEST_SSH_URL");
    let s = Stack::new("envmode", &format!("\"{url}\""), 5);
    s.up_ssh(&["--all"]).status(0);
    let mode = |rel: &str| {
        std::fs::metadata(s.host_dir.path().join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("web.env"), 0o600);
    assert_eq!(mode(".deploy-action/files/1/web.env"), 0o600);
    assert_eq!(mode("compose.yml"), 0o644);
    assert_eq!(mode(".deploy-action/files/1/compose.yml"), 0o644);
    let leftovers = sh(&format!(
        "find {} -name '*deploy-action-*' ! -path '*/.deploy-action/*'",
        s.host_dir.path().display()
    ));
    assert!(leftovers.is_empty(), "temporary files left: {leftovers}");
}
