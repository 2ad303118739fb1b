//! Issue 10, `secrets:` delivered to the hosts, through the real binary against the real Docker
//! engine: the values reach the container's environment byte for byte (compose v2 and v1), appear
//! in no output, summary, record, audit line, tag or GitHub deployment, live in 0600 files, and
//! come back on rollback; a missing variable is exit 2 before anything changes.

use crate::fake_github::FakeGitHub;
use crate::harness::Project;
use crate::up::Stack;

/// A value with everything an env file could mangle: a single quote (double-quoted form), `$`,
/// `#`, double quotes, a backslash, `=` and spaces at both ends.
const API_V1: &str = " it's \"$HOME\" #1 a\\b = v1 ";
const API_V2: &str = "rotated-$PATH-#2-v2";
const SHARED: &str = "shared $X # y";
/// Short enough to slip past a masker with a minimum length.
const TINY: &str = "k9";

/// The stack's manifest with `secrets:` on the environment and on `web`.
fn with_secrets(s: &Stack) {
    let m = std::fs::read_to_string(s.project.path().join("deploy.yml")).unwrap();
    let m = m
        .replace(
            "    keep_releases: 5\n",
            "    keep_releases: 5\n    secrets: [SHARED_TOKEN]\n",
        )
        .replace("  web:\n", "  web:\n    secrets: [API_KEY, TINY_KEY]\n");
    s.project.manifest(&m);
    s.project.commit("secrets");
}

/// The value of `var` in the environment the container of `svc` runs with (`docker inspect`).
fn printenv(s: &Stack, svc: &str, var: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &s.container(svc),
        ])
        .output()
        .expect("docker inspect");
    let env: Vec<String> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    env.iter()
        .find_map(|kv| kv.strip_prefix(&format!("{var}=")).map(String::from))
        .unwrap_or_else(|| format!("({var} not set)"))
}

/// Every file under `dir` (recursively) except the secrets files themselves, as text.
fn state_files_except_secrets(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.ends_with(".deploy-action/env") {
                    continue;
                }
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                out.push((p.display().to_string(), text));
            }
        }
    }
    out
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Must show: `secrets:` values reach the container's environment, appear in no output, summary,
/// record or tag, and come back on rollback.
#[test]
fn r10_secrets_reach_the_container_leak_nowhere_and_come_back_on_rollback() {
    let s = Stack::new("secrets", "\"local\"", 5);
    with_secrets(&s);
    let gh = FakeGitHub::start();
    let run = |args: &[&str], api: &str| {
        s.project
            .run(args)
            .envs(crate::guard::actions_env(&s.project, &gh, "dave"))
            .env("API_KEY", api)
            .env("SHARED_TOKEN", SHARED)
            .env("TINY_KEY", TINY)
            .go()
    };
    let out = run(&["up", "--env", "test", "--all"], API_V1);
    out.status(0);
    assert_eq!(printenv(&s, "web", "API_KEY"), API_V1);
    assert_eq!(printenv(&s, "web", "TINY_KEY"), TINY);
    assert_eq!(printenv(&s, "web", "SHARED_TOKEN"), SHARED);
    assert_eq!(printenv(&s, "api", "SHARED_TOKEN"), SHARED);

    // The files on the host: 0600 in 0700 directories, one per service, and a copy per release.
    let state = s.host_dir.path().join(".deploy-action");
    assert_eq!(mode(&state.join("env")), 0o700);
    assert_eq!(mode(&state.join("env/web.env")), 0o600);
    assert_eq!(
        mode(&state.join("files/1/.deploy-action/env/web.env")),
        0o600
    );

    // Rotated: the next deploy gives the new value.
    let out2 = run(&["up", "--env", "test", "--only", "web"], API_V2);
    out2.status(0);
    assert_eq!(printenv(&s, "web", "API_KEY"), API_V2);

    // A rollback restores the secrets its release ran with.
    let out3 = run(&["rollback", "--env", "test", "--only", "web"], API_V2);
    out3.status(0);
    assert_eq!(printenv(&s, "web", "API_KEY"), API_V1);

    // Nowhere else: no output, summary, GitHub output, record, audit line, owner file, tag or
    // GitHub deployment carries a value (only the `::add-mask::` commands do).
    for value in [API_V1, API_V2, SHARED, TINY] {
        for o in [&out, &out2, &out3] {
            for line in o.stdout.lines().chain(o.stderr.lines()) {
                assert!(
                    !line.contains(value) || line.starts_with("::add-mask::"),
                    "{value:?} printed: {line}"
                );
            }
        }
        for (path, text) in state_files_except_secrets(s.host_dir.path()) {
            assert!(!text.contains(value), "{value:?} in {path}");
        }
        for f in ["summary.md", "output.txt"] {
            let text = std::fs::read_to_string(s.project.path().join(f)).unwrap_or_default();
            assert!(!text.contains(value), "{value:?} in {f}");
        }
        let st = gh.state.lock().unwrap();
        let api = format!("{:?} {:?}", st.tag_objects, st.deployments);
        assert!(!api.contains(value), "{value:?} sent to GitHub");
    }
    // The record keeps a fingerprint per value: it changed with the rotation, and came back.
    let print = |n: u64| s.record(n)["services"]["web"]["secrets"]["API_KEY"].clone();
    assert!(print(1).as_str().unwrap().starts_with("blake3:"));
    assert_ne!(print(1), print(2));
    assert_eq!(print(1), print(3));
    assert!(s.record(1)["services"]["api"]["secrets"]["API_KEY"].is_null());
}

/// A `secrets:` variable that is not set is exit 2, named with its service, before anything is
/// built or changed.
#[test]
fn r10_a_missing_secret_is_exit_2_before_anything_changes() {
    let s = Stack::new("nosecret", "\"local\"", 5);
    with_secrets(&s);
    let out = s
        .project
        .run(&["up", "--env", "test", "--all"])
        .env("SHARED_TOKEN", SHARED)
        .env("TINY_KEY", TINY)
        .go();
    out.status(2)
        .stderr_has("secret variable is not set: API_KEY (for web)")
        .stderr_has("nothing was changed")
        .nowhere(SHARED);
    assert!(s.container("web").is_empty() && s.container("api").is_empty());
    assert!(!s.host_dir.path().join(".deploy-action/env").exists());
}

/// Compose v1 reads env files differently from v2 (no `\$` in double quotes): the same values
/// reach the container exactly.
#[test]
fn r10_secrets_reach_the_container_exactly_with_compose_v1() {
    let s = Stack::new("secv1", "\"local\"", 5);
    with_secrets(&s);
    s.project
        .run(&["up", "--env", "test", "--all"])
        .env("DEPLOY_COMPOSE", "v1")
        .env("API_KEY", API_V1)
        .env("SHARED_TOKEN", SHARED)
        .env("TINY_KEY", TINY)
        .go()
        .status(0)
        .stdout_has("docker-compose 1.29.2")
        .nowhere(API_V1);
    assert_eq!(printenv(&s, "web", "API_KEY"), API_V1);
    assert_eq!(printenv(&s, "web", "SHARED_TOKEN"), SHARED);
}

/// A secret a build or test command prints (even reversed, which no masker catches) is not in
/// its environment at all: `secrets:` variables are removed from the children's environment.
#[test]
fn r10_build_children_do_not_see_secrets() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nenvironments:\n  prod:\n    secrets: [API_KEY]\nservices:\n  api:\n    build: \"printenv API_KEY | rev; echo built\"\n",
    );
    p.commit("m");
    let out = p
        .run(&["build", "--all"])
        .env("API_KEY", "abcdef-secret")
        .go();
    out.status(0).stdout_has("built").nowhere("terces-fedcba");
}
