//! Issue 10, deliverable 5: registry images pulled and pinned, against the real test registry
//! (Debian's docker-registry on 127.0.0.1, started by scripts/test-env.sh) and the real engine.
//! `up` pulls a service's registry image as its `pull:` says (a moved `:latest` is followed), a
//! failed pull changes nothing, every release records repo digests, and rollback and promote deploy
//! by digest, so a moved tag never changes what comes back.
//!
//! The host and the runner share this machine's engine, so "the tag moved on the registry but not
//! on the host" is made by pushing the new image and putting the host's tag back on the old one.

use crate::harness::services;
use crate::up::{Stack, WEB_V1, WEB_V2, free_port, service_yaml, sh};

/// A repository of its own on the test registry, with images made for the test (their own ids,
/// so no other test's images gain a digest); local tags and digest references removed on drop.
struct Repo {
    name: String,
}

/// An image pushed by a test: its id and its repo digest (`repo@sha256:…`).
#[derive(Clone, Debug)]
struct Pushed {
    id: String,
    digest: String,
}

impl Repo {
    fn new(tag: &str) -> Repo {
        let registry = services::require_registry();
        services::require_docker();
        Repo {
            name: format!(
                "{registry}/da-pull-{tag}-{}/web",
                std::process::id() % 100_000
            ),
        }
    }

    fn latest(&self) -> String {
        format!("{}:latest", self.name)
    }

    /// Builds an image of its own from `base` (the test image serving `v1` or `v2`), tags it
    /// `:<version>` and `:latest` and pushes `:latest`: the registry's `latest` moves to it.
    fn push(&self, base: &str, version: &str) -> Pushed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), format!("FROM {base}\n")).unwrap();
        let local = format!("{}:{version}", self.name);
        let built = sh(&format!(
            "docker build -q --label da-pull-test={local} -t {local} {} 2>&1 && docker tag {local} {latest} && docker push {latest} >/dev/null 2>&1 && echo pushed",
            dir.path().display(),
            latest = self.latest()
        ));
        assert!(
            built.ends_with("pushed"),
            "build and push of {local}: {built}"
        );
        let id = sh(&format!("docker image inspect -f '{{{{.Id}}}}' {local}"));
        let digests = sh(&format!(
            "docker image inspect -f '{{{{json .RepoDigests}}}}' {local}"
        ));
        let digests: Vec<String> = serde_json::from_str(&digests).unwrap();
        let digest = digests
            .into_iter()
            .find(|d| d.starts_with(&format!("{}@", self.name)))
            .expect("a digest of the repository after the push");
        Pushed { id, digest }
    }

    /// Points the host's `:latest` at `image` again (the registry's `latest` stays where it is).
    fn host_latest(&self, image: &Pushed) {
        sh(&format!("docker tag {} {}", image.id, self.latest()));
    }

    /// The id the host's `:latest` names.
    fn host_latest_id(&self) -> String {
        sh(&format!(
            "docker image inspect -f '{{{{.Id}}}}' {}",
            self.latest()
        ))
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let n = &self.name;
        sh(&format!(
            "docker images --digests --format '{{{{.Repository}}}}@{{{{.Digest}}}}' {n} | grep -v '<none>' | xargs -r docker rmi >/dev/null 2>&1; \
             docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' {n} | grep -v '<none>' | xargs -r docker rmi >/dev/null 2>&1; true"
        ));
    }
}

/// A stack whose `web` runs `image` from the registry, with `pull` set on `web` when given.
fn registry_stack(tag: &str, image: &str, pull: Option<&str>) -> Stack {
    let s = Stack::new(tag, "\"local\"", 5);
    set_pull(&s, pull);
    s.compose(image, WEB_V1);
    s
}

/// Sets (or, with `None`, removes) `pull:` of `web` in deploy.yml, committed.
fn set_pull(s: &Stack, pull: Option<&str>) {
    let path = s.project.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("    pull: "))
        .map(String::from)
        .collect();
    if let Some(p) = pull {
        let at = lines.iter().position(|l| l == "  web:").unwrap();
        lines.insert(at + 1, format!("    pull: {p}"));
    }
    s.project.manifest(&(lines.join("\n") + "\n"));
    s.project.commit(&format!("web pull: {pull:?}"));
}

/// The finding: a registry image whose tag moved was never pulled, and the deploy reported
/// success on the old image. `pull: always` (the default) follows the tag and records the new
/// digest; `pull: never` keeps what the host has and says so. The dry run and `plan` show the pull.
#[test]
fn r10_a_registry_image_whose_tag_moved_is_pulled_and_its_digest_recorded() {
    let repo = Repo::new("moved");
    let v1 = repo.push(WEB_V1, "v1");
    let s = registry_stack("pullmv", &repo.latest(), None);
    let pull_step = format!(
        "cd {} && docker compose -p {} -f compose.yml pull web",
        s.host_dir.path().display(),
        s.name
    );
    s.up(&["--all", "--dry-run"])
        .status(0)
        .stdout_has(&pull_step);
    s.project
        .run(&["plan", "--env", "test", "--all"])
        .go()
        .status(0)
        .stdout_has(&pull_step);

    let first = s.up(&["--all"]);
    first
        .status(0)
        .stdout_has(&format!("web: pulled {}: unchanged", repo.latest()))
        // The test image was imported on this engine, never pulled: left alone.
        .stdout_has(&format!("api: {WEB_V1} not pulled: the host has it"));
    assert_eq!(s.web_body(), "v1");
    assert_eq!(s.record(1)["services"]["web"]["digest"], v1.digest.as_str());

    // The tag moves on the registry; the host's `latest` still names v1.
    let v2 = repo.push(WEB_V2, "v2");
    repo.host_latest(&v1);
    assert_ne!(v1.digest, v2.digest);

    // `pull: never`: no pull step, the host's image, and it says so.
    set_pull(&s, Some("never"));
    let dry = s.up(&["--only", "web", "--dry-run"]);
    assert!(!dry.status(0).stdout.contains(&pull_step), "{}", dry.stdout);
    s.up(&["--only", "web"]).status(0).stdout_has(&format!(
        "web: {} not pulled: pull: never; the host's image {}",
        repo.latest(),
        &v1.id[..19]
    ));
    assert_eq!(s.web_body(), "v1", "pull: never keeps v1");
    assert_eq!(s.record(2)["services"]["web"]["digest"], v1.digest.as_str());

    // The default, `pull: always`: the moved tag is pulled and deployed, the new digest recorded.
    set_pull(&s, None);
    let out = s.up(&["--only", "web"]);
    out.status(0).stdout_has(&format!(
        "web: pulled {}: the image changed ({} → {})",
        repo.latest(),
        &v1.id[..19],
        &v2.id[..19]
    ));
    assert_eq!(s.web_body(), "v2");
    assert_eq!(repo.host_latest_id(), v2.id);
    let r3 = s.record(3);
    assert_eq!(r3["services"]["web"]["digest"], v2.digest.as_str());
    assert_eq!(r3["services"]["web"]["image_id"], v2.id.as_str());
    assert_eq!(r3["previous"]["web"]["digest"], v1.digest.as_str());
    assert!(
        r3["services"]["api"].get("digest").is_none()
            || !r3["services"]["api"]["digest"]
                .as_str()
                .unwrap()
                .contains("da-pull-"),
        "api's image was never in this repository: {r3}"
    );
}

/// `pull: missing` pulls only an image the host lacks: a moved tag is not followed while the host
/// has the image, and is once the host's tag is gone.
#[test]
fn r10_pull_missing_pulls_only_an_image_the_host_lacks() {
    let repo = Repo::new("missing");
    let v1 = repo.push(WEB_V1, "v1");
    let s = registry_stack("pullmiss", &repo.latest(), Some("missing"));
    s.up(&["--all"]).status(0).stdout_has(&format!(
        "web: {} not pulled: the host has it (pull: missing)",
        repo.latest()
    ));
    assert_eq!(s.web_body(), "v1");

    let v2 = repo.push(WEB_V2, "v2");
    repo.host_latest(&v1);
    s.up(&["--only", "web", "--force"])
        .status(0)
        .stdout_has("(pull: missing)");
    assert_eq!(s.web_body(), "v1", "the host has the image: not pulled");

    // The host's tag is gone (the image stays, under its other tags): pulled.
    sh(&format!("docker rmi {} >/dev/null", repo.latest()));
    s.up(&["--only", "web"])
        .status(0)
        .stdout_has(&format!("web: pulled {}: new on this host", repo.latest()));
    assert_eq!(s.web_body(), "v2");
    assert_eq!(s.record(3)["services"]["web"]["digest"], v2.digest.as_str());
}

/// A pull that fails (the image is not in the registry) fails the host before anything changed:
/// docker's message and the image are named, no release is recorded, the pins are as they were,
/// and the previous container keeps serving.
#[test]
fn r10_a_failed_pull_fails_before_anything_changed_and_the_previous_container_keeps_serving() {
    let repo = Repo::new("fail");
    repo.push(WEB_V1, "v1");
    let s = registry_stack("pullfail", &repo.latest(), None);
    s.up(&["--all"]).status(0);
    let web = s.container("web");
    let pins = s.state("override.yml");

    let missing = format!("{}:not-pushed", repo.name);
    s.compose(&missing, WEB_V1);
    let out = s.up(&["--only", "web"]);
    out.status(1)
        .stderr_has(&format!("pulling {missing} for web failed (exit status "))
        .stderr_has("manifest unknown")
        .stderr_has("nothing was deployed on this host");
    assert_eq!(s.container("web"), web, "the container was not touched");
    assert_eq!(s.web_body(), "v1");
    assert!(s.state("releases/2.json").is_empty(), "no release 2");
    assert_eq!(s.state("override.yml"), pins);
    assert!(
        !s.host_dir.path().join(".deploy-action/files/2").exists(),
        "no copy of release 2's files"
    );
    assert!(
        !s.host_dir.path().join(".deploy-action/lock").exists(),
        "lock released"
    );
}

/// The finding: a rollback deployed whatever the recorded tag named by then. With the release
/// tag gone and the registry's tag moved, `rollback` deploys the recorded digest, pulled from the
/// registry, and v1 serves again.
#[test]
fn r10_rollback_restores_by_digest_even_after_the_tag_moved() {
    let repo = Repo::new("rollback");
    let v1 = repo.push(WEB_V1, "v1");
    let s = registry_stack("pullrb", &repo.latest(), None);
    s.up(&["--all"]).status(0);
    let r1 = s.record(1);
    assert_eq!(r1["services"]["web"]["digest"], v1.digest.as_str());
    repo.push(WEB_V2, "v2");
    repo.host_latest(&v1);
    s.up(&["--only", "web"])
        .status(0)
        .stdout_has("the image changed");
    assert_eq!(s.web_body(), "v2");

    // Release 1's tag is gone (pruned), and so is the host's reference to v1's digest.
    let tag = r1["services"]["web"]["release_tag"].as_str().unwrap();
    sh(&format!("docker rmi {tag} {} >/dev/null", v1.digest));
    let out = s.project.run(&["rollback", "--env", "test"]).go();
    out.status(0)
        .stdout_has(&format!(
            "{tag} of release 1 is no longer on the host; web goes back by its digest {}",
            v1.digest
        ))
        .stdout_has(&format!("web: pulled {}: new on this host", v1.digest));
    assert_eq!(s.web_body(), "v1", "the digest, not the moved tag");
    let r3 = s.record(3);
    assert_eq!(r3["services"]["web"]["image"], v1.digest.as_str());
    assert_eq!(r3["services"]["web"]["image_id"], v1.id.as_str());
    assert_eq!(r3["services"]["web"]["digest"], v1.digest.as_str());
    assert_eq!(s.record(2)["status"], "bad");
}

/// promote deploys the source's digest on the target, pulled from the registry, instead of
/// shipping the image by `docker save | load`; the registry's tag moving in between changes
/// nothing.
#[test]
fn r10_promote_deploys_the_recorded_digest_pulled_from_the_registry() {
    let repo = Repo::new("promote");
    let v1 = repo.push(WEB_V1, "v1");
    let s = registry_stack("pullpromo", &repo.latest(), None);
    let prd = format!("{}-prd", s.name);
    let (pw, pa) = (free_port(), free_port());
    let d = s.host_dir.path().display().to_string();
    s.project.file(
        "compose.prod.yml",
        &format!(
            "services:\n{}{}",
            service_yaml("web", &repo.latest(), pw),
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
    hosts: ["ssh://root@127.0.0.1:{port}"]
    dir: {d}/prd
    compose_files: [compose.prod.yml]
    compose_project: {prd}
    promote_from: staging
services:
  web:
    health: {{ url: "http://127.0.0.1:{wp}/", timeout: 30s, expect_status: 200 }}
"#,
        stg = s.name,
        port = services::var("DA_TEST_SSH_PORT"),
        wp = s.web_port,
    ));
    s.project.commit("two environments");
    s.project
        .run(&["up", "--env", "staging", "--all"])
        .go()
        .status(0);
    let stg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{d}/stg/.deploy-action/releases/1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stg["services"]["web"]["digest"], v1.digest.as_str());

    // The registry's tag moves, and the target lacks the digest: it must come from the registry.
    repo.push(WEB_V2, "v2");
    sh(&format!("docker rmi {} >/dev/null", v1.digest));
    let _prd = DropProject(prd);
    let out = s
        .project
        .run(&["promote", "--env", "production"])
        .envs(crate::up::ssh_env())
        .env("DEPLOY_TEST_ALWAYS_SHIP", "1")
        .go();
    out.status(0)
        .stdout_has(&format!("is deployed by its digest {}", v1.digest))
        .stdout_has(&format!("web: pulled {}: new on this host", v1.digest))
        .stdout_has("production is on release 1 = release staging/1");
    assert!(
        !out.stdout.contains("shipping image"),
        "nothing shipped by save | load:\n{}",
        out.stdout
    );
    assert_eq!(sh(&format!("curl -fsS http://127.0.0.1:{pw}/")), "v1");
    let prod: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{d}/prd/.deploy-action/releases/1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(prod["services"]["web"]["image"], v1.digest.as_str());
    assert_eq!(prod["services"]["web"]["image_id"], v1.id.as_str());
    assert_eq!(prod["services"]["web"]["digest"], v1.digest.as_str());
    assert_eq!(prod["promoted_from"], "staging/1");
}

/// Removes a compose project's containers, network and release tags.
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
