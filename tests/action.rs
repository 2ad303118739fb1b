//! The composite GitHub Action as users meet it: action.yml, dist/install.sh (pinned, checksum-verified
//! install with a source-build fallback), dist/run.sh, the release/CI workflows and the copyable
//! examples under workflows-examples/.
//!
//! Checked with the real offline tools of the test environment (check-jsonschema's vendored GitHub
//! schemas, zizmor, act in self-hosted mode); a missing tool fails the test naming the setup command.
//! The installer runs for real against release assets served from file:// URLs.

use crate::harness::services::{self, SETUP};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example workflows the documentation promises, one per use.
const EXAMPLES: &[&str] = &[
    "deploy-changed-services.yml",
    "pages-preview.yml",
    "migrate-approval.yml",
    "promote.yml",
    "rollback.yml",
];

/// The outputs action.yml must map from the binary's $GITHUB_OUTPUT.
const OUTPUTS: &[&str] = &[
    "affected",
    "release",
    "services",
    "deployment-url",
    "alias-url",
    "deployment-id",
    "migration-version",
    "plan-hash",
    "backup-path",
    "build-failed",
    "test-failed",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed by the test environment (DA_TEST_TOOLS_BIN).
#[track_caller]
fn tool(name: &str) -> PathBuf {
    let dir = services::var("DA_TEST_TOOLS_BIN");
    let path = Path::new(&dir).join(name);
    assert!(
        path.is_file(),
        "{name} is missing from {dir}: run `{SETUP}`"
    );
    path
}

fn text(out: &Output) -> String {
    format!(
        "--- status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    deploy_action::cmd::compose::yaml_value(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Every workflow we ship: the project's own and the examples.
fn workflow_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [".github/workflows", "workflows-examples"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn example_files() -> Vec<PathBuf> {
    EXAMPLES
        .iter()
        .map(|name| {
            let path = root().join("workflows-examples").join(name);
            assert!(path.is_file(), "missing example {}", path.display());
            path
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Schemas and security lints

#[test]
fn action_yml_validates_against_the_github_actions_schema() {
    let out = Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-actions", "action.yml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "action.yml: {}", text(&out));
}

#[test]
fn every_workflow_validates_against_the_github_workflows_schema() {
    let files = workflow_files();
    for name in ["ci.yml", "release.yml"] {
        assert!(
            files
                .iter()
                .any(|f| f.ends_with(Path::new(".github/workflows").join(name))),
            ".github/workflows/{name} is missing"
        );
    }
    example_files();
    let out = Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&files)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{files:?}: {}", text(&out));
}

#[test]
fn zizmor_finds_nothing_at_medium_severity_or_above() {
    let mut inputs = vec![PathBuf::from("action.yml")];
    inputs.extend(
        workflow_files()
            .into_iter()
            .map(|f| f.strip_prefix(root()).unwrap().to_path_buf()),
    );
    let out = Command::new(tool("zizmor"))
        .args(["--offline", "--no-progress", "--min-severity", "medium"])
        .arg("--config")
        .arg(root().join(".github/zizmor.yml"))
        .args(&inputs)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("No findings"),
        "zizmor: {}",
        text(&out)
    );
    // zizmor did audit every file (it skips what it cannot parse with only a warning).
    let stderr = String::from_utf8_lossy(&out.stderr);
    for input in &inputs {
        let rel = input.display().to_string();
        assert!(
            stderr.contains(&format!("completed {rel}")),
            "zizmor skipped {rel}: {}",
            text(&out)
        );
    }
}

/// Lines that would disable SSH host-key checking, in any spelling.
fn disables_host_key_checking(line: &str) -> bool {
    let squashed: String = line
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .collect();
    let option = concat!("stricthost", "keychecking");
    [
        format!("{option}=no"),
        format!("{option}=off"),
        format!("{option}no"),
        format!("{option}off"),
        format!("{option}=accept-new"),
        concat!("userknownhostsfile=", "/dev/null").to_string(),
    ]
    .iter()
    .any(|bad| squashed.contains(bad.as_str()))
}

#[test]
fn no_shipped_file_disables_ssh_host_key_checking() {
    assert!(disables_host_key_checking(concat!(
        "ssh -o StrictHost",
        "KeyChecking=no host"
    )));
    assert!(disables_host_key_checking(concat!(
        "  StrictHost",
        "KeyChecking  no"
    )));
    assert!(!disables_host_key_checking("StrictHostKeyChecking=yes"));

    // Every file of the repository (tracked or new, not ignored). Markdown prose may name the option
    // as what not to do; its code blocks, which users copy, may not.
    let mut offenders = Vec::new();
    let mut checked = 0;
    for rel in repository_files() {
        let rel = rel.as_str();
        let Ok(content) = std::fs::read_to_string(root().join(rel)) else {
            continue; // binary or deleted
        };
        checked += 1;
        let markdown = rel.ends_with(".md");
        let mut in_code = false;
        for (n, line) in content.lines().enumerate() {
            if markdown && line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if (!markdown || in_code) && disables_host_key_checking(line) {
                offenders.push(format!("{rel}:{}: {line}", n + 1));
            }
        }
    }
    assert!(checked > 20, "only {checked} files checked");
    for must in [
        "action.yml",
        "dist/install.sh",
        "workflows-examples/rollback.yml",
    ] {
        assert!(root().join(must).is_file(), "{must} missing");
    }
    assert!(
        offenders.is_empty(),
        "host-key checking disabled in:\n{}",
        offenders.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// action.yml: inputs reach scripts only through env:

/// The repository's files (tracked or new, not ignored), relative to the root.
fn repository_files() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "git ls-files: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A copy of the action repository as a checkout at this commit would have it.
fn action_checkout() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("da-action-")
        .tempdir()
        .unwrap();
    for rel in repository_files() {
        let from = root().join(&rel);
        if !from.is_file() {
            continue; // deleted in the worktree
        }
        let to = dir.path().join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    dir
}

/// Every `run:` step of a steps list.
fn steps(doc: &Value) -> Vec<&Value> {
    doc["runs"]["steps"]
        .as_array()
        .expect("runs.steps")
        .iter()
        .collect()
}

#[test]
fn action_yml_passes_inputs_through_env_only() {
    let path = root().join("action.yml");
    let raw = read(&path);
    let doc = yaml(&path);
    assert_eq!(doc["runs"]["using"], "composite");
    assert!(
        !raw.contains("action_ref") && !raw.contains("ACTION_REF"),
        "action.yml must not rely on github.action_ref (empty in composite steps)"
    );

    // Inputs, with the documented defaults.
    let inputs = doc["inputs"].as_object().expect("inputs");
    for name in [
        "command",
        "args",
        "environment",
        "working-directory",
        "manifest",
        "version",
        "github-token",
        "build-from-source",
    ] {
        assert!(inputs.contains_key(name), "input {name} missing");
    }
    assert_eq!(doc["inputs"]["command"]["required"], true);
    assert_eq!(doc["inputs"]["build-from-source"]["default"], "auto");
    assert_eq!(
        doc["inputs"]["github-token"]["default"],
        "${{ github.token }}"
    );
    assert_eq!(doc["inputs"]["version"]["default"], "");

    // Every run step: bash, no template expression in the script text.
    let mut env_text = String::new();
    for step in steps(&doc) {
        let run = step["run"].as_str().expect("a run step");
        assert_eq!(step["shell"], "bash", "step {step}");
        assert!(!run.contains("${{"), "template expression in run: {run}");
        for (key, value) in step["env"].as_object().into_iter().flatten() {
            env_text.push_str(&format!("{key}={}\n", value.as_str().unwrap_or_default()));
        }
    }
    for name in inputs.keys() {
        assert!(
            env_text.contains(&format!("${{{{ inputs.{name} }}}}")),
            "input {name} is not mapped through a step's env:\n{env_text}"
        );
    }

    // Outputs come from the run step's $GITHUB_OUTPUT.
    for name in OUTPUTS {
        assert_eq!(
            doc["outputs"][name]["value"],
            format!("${{{{ steps.run.outputs.{name} }}}}"),
            "output {name}"
        );
    }
}

/// The names the binary writes to $GITHUB_OUTPUT: the first argument of every `.output(` call under
/// src/ (the report layer itself, which only relays them, excepted).
fn outputs_written_by_the_binary() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        if file.starts_with(root().join("src/report")) {
            continue;
        }
        let code = read(&file);
        for (at, _) in code.match_indices(".output(") {
            let arg = code[at + ".output(".len()..].trim_start();
            if let Some(rest) = arg.strip_prefix('"') {
                names.insert(rest[..rest.find('"').unwrap()].to_string());
            } else if arg.starts_with(r#"&format!("{stage}-failed")"#) {
                // build.rs's run_stage, shared by `build` and `test`.
                names.insert("build-failed".into());
                names.insert("test-failed".into());
            } else {
                let line = code[..at].lines().count();
                panic!(
                    "{}:{line}: an output whose name this test cannot read; name it with a literal",
                    file.display()
                );
            }
        }
    }
    names
}

#[test]
fn action_yml_maps_exactly_the_outputs_the_binary_writes_and_the_docs_list_them() {
    let doc = yaml(&root().join("action.yml"));
    let outputs = doc["outputs"].as_object().expect("outputs");
    let mapped: std::collections::BTreeSet<String> = outputs
        .iter()
        .filter(|(_, o)| {
            o["value"]
                .as_str()
                .is_some_and(|v| v.contains("steps.run.outputs."))
        })
        .map(|(name, o)| {
            assert_eq!(
                o["value"],
                format!("${{{{ steps.run.outputs.{name} }}}}"),
                "output {name} maps another name"
            );
            name.clone()
        })
        .collect();
    let written = outputs_written_by_the_binary();
    assert!(written.contains("affected") && written.contains("backup-path"));
    assert_eq!(
        mapped, written,
        "action.yml's outputs (left) must be exactly what the binary writes (right)"
    );
    for name in OUTPUTS {
        assert!(mapped.contains(*name), "output {name} missing");
    }

    // The README and docs/action.md each have the full tables.
    let inputs = doc["inputs"].as_object().expect("inputs");
    for file in ["README.md", "docs/action.md"] {
        let text = read(&root().join(file));
        assert!(
            text.contains("## Use in GitHub Actions"),
            "{file}: a \"Use in GitHub Actions\" section"
        );
        for name in outputs.keys().chain(inputs.keys()) {
            assert!(
                text.contains(&format!("| `{name}` |")),
                "{file}: no table row for `{name}`"
            );
        }
        for gone in ["artifact-digest", "| `verify`"] {
            assert!(!text.contains(gone), "{file} still mentions {gone}");
        }
    }
}

#[test]
fn build_and_test_write_the_affected_output_like_plan() {
    let p = crate::changes::shop();
    p.file("services/api/main.rs", "changed\n");
    p.commit("api");
    for stage in ["plan", "build", "test"] {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("output");
        p.run(&[stage, "--env", "staging"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", output.display().to_string())
            .env(
                "GITHUB_STEP_SUMMARY",
                dir.path().join("summary.md").display().to_string(),
            )
            .env("GITHUB_EVENT_NAME", "workflow_dispatch")
            .go()
            .status(0);
        let written = std::fs::read_to_string(&output).unwrap_or_default();
        assert_eq!(
            output_value(&written, "affected").as_deref(),
            Some(r#"["api"]"#),
            "{stage}: {written}"
        );
        if stage != "plan" {
            assert_eq!(
                output_value(&written, &format!("{stage}-failed")).as_deref(),
                Some("[]"),
                "{stage}: {written}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The example workflows follow the rules users should copy.

#[test]
fn examples_pin_actions_limit_permissions_and_keep_secrets_in_env() {
    let pinned = |uses: &str| {
        let Some((_, rev)) = uses.split_once('@') else {
            return false;
        };
        rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
    };
    for path in workflow_files() {
        let name = path.display().to_string();
        let raw = read(&path);
        let doc = yaml(&path);
        let example = path.parent().unwrap().ends_with("workflows-examples");
        assert!(
            doc["permissions"].is_object(),
            "{name}: top-level permissions"
        );
        if example {
            assert_eq!(
                doc["concurrency"]["cancel-in-progress"], false,
                "{name}: concurrency per environment, never cancelling a running deploy"
            );
            assert!(
                doc["concurrency"]["group"].is_string(),
                "{name}: concurrency group"
            );
            assert!(
                raw.contains("uses: org/deploy-action@v1"),
                "{name}: uses the action"
            );
        }
        for (job_name, job) in doc["jobs"].as_object().expect("jobs") {
            for step in job["steps"].as_array().into_iter().flatten() {
                let at = format!("{name}: job {job_name}, step {step}");
                if let Some(uses) = step["uses"].as_str() {
                    assert!(
                        pinned(uses) || (example && uses == "org/deploy-action@v1"),
                        "{at}: pin actions by commit SHA"
                    );
                    if uses.starts_with("actions/checkout@") {
                        assert_eq!(
                            step["with"]["persist-credentials"], false,
                            "{at}: persist-credentials: false"
                        );
                    }
                    assert!(
                        !step["with"].to_string().contains("secrets."),
                        "{at}: secrets go through env:, never with:"
                    );
                }
                if let Some(run) = step["run"].as_str() {
                    assert!(!run.contains("${{"), "{at}: template expression in run:");
                }
            }
        }
        // A pinned SHA carries its version as a comment.
        for line in raw
            .lines()
            .filter(|l| l.contains("uses:") && l.contains('@'))
        {
            let uses = line.split("uses:").nth(1).unwrap().trim();
            let target = uses.split_whitespace().next().unwrap();
            if pinned(target) {
                assert!(
                    uses.contains("# v"),
                    "{name}: version comment missing: {line}"
                );
            }
        }
    }
}

/// The deploy-action steps of a job: (command, environment input, args input, step env).
fn action_steps(job: &Value) -> Vec<(String, String, String, Value)> {
    job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["uses"] == "org/deploy-action@v1")
        .map(|s| {
            let with = &s["with"];
            let get = |k: &str| with[k].as_str().unwrap_or_default().to_string();
            (
                get("command"),
                get("environment"),
                get("args"),
                s["env"].clone(),
            )
        })
        .collect()
}

#[test]
fn examples_serialise_each_environment_and_grant_write_only_where_they_deploy() {
    let group = |name: &str| -> String {
        let doc = yaml(&root().join("workflows-examples").join(name));
        doc["concurrency"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // One group per environment, shared by every workflow that deploys to it.
    assert_eq!(group("deploy-changed-services.yml"), "deploy-staging");
    assert_eq!(group("migrate-approval.yml"), "deploy-production");
    assert_eq!(group("promote.yml"), "deploy-production");
    assert_eq!(group("rollback.yml"), "deploy-${{ inputs.environment }}");
    assert!(
        group("pages-preview.yml").contains("'deploy-production'"),
        "pages: production uploads in deploy-production"
    );

    for path in example_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let doc = yaml(&path);
        assert_eq!(
            doc["permissions"],
            serde_json::json!({"contents": "read"}),
            "{name}: read-only by default"
        );
        for (job_name, job) in doc["jobs"].as_object().unwrap() {
            let at = format!("{name}: job {job_name}");
            let perms = &job["permissions"];
            let mut deploys = false;
            for (command, environment, args, env) in action_steps(job) {
                let dry = args.lines().any(|l| l.trim() == "--dry-run");
                deploys |= !dry
                    && (matches!(command.as_str(), "up" | "migrate" | "promote" | "rollback")
                        || (command == "pages" && !environment.is_empty()));
                match command.as_str() {
                    // pages needs an environment with a manifest, or --project/--dir without.
                    "pages" => assert!(
                        !environment.is_empty() || args.lines().any(|l| l.trim() == "--project"),
                        "{at}: pages without environment or --project exits 2"
                    ),
                    // migrate, even a dry run, reads the database named by url_env.
                    "migrate" => assert!(
                        env.as_object()
                            .is_some_and(|e| e.keys().any(|k| k.ends_with("_DATABASE_URL"))),
                        "{at}: migrate without the database URL exits 2"
                    ),
                    "up" | "promote" | "rollback" => {
                        assert!(
                            !environment.is_empty(),
                            "{at}: {command} needs an environment"
                        );
                        for var in ["DEPLOY_SSH_KEY", "DEPLOY_KNOWN_HOSTS"] {
                            assert!(env[var].is_string(), "{at}: {command} without {var}");
                        }
                    }
                    _ => {}
                }
            }
            if deploys {
                assert_eq!(
                    perms["contents"], "write",
                    "{at}: release tags need contents: write"
                );
                assert_eq!(
                    perms["deployments"], "write",
                    "{at}: the GitHub deployment needs deployments: write"
                );
                assert_eq!(
                    job["environment"]["deployment"], false,
                    "{at}: deploy-action records the deployment; the job's environment must not add a second one"
                );
            } else {
                for (scope, level) in perms.as_object().into_iter().flatten() {
                    assert!(
                        level != "write" || scope == "pull-requests",
                        "{at}: deploys nothing, yet {scope}: write"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dist/install.sh and dist/run.sh, run for real

#[test]
fn shell_scripts_parse() {
    for script in [
        "dist/install.sh",
        "dist/run.sh",
        "scripts/build-static.sh",
        "scripts/release-ref.sh",
    ] {
        let out = Command::new("bash")
            .args(["-n", script])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out));
    }
}

/// A throwaway action checkout with a fake release server (file://) and a fake `cargo` that records
/// that a source build was attempted.
struct Installer {
    dir: tempfile::TempDir,
}

const FAKE_BIN: &str = "#!/bin/sh\necho \"fake deploy-action $*\"\n";

impl Installer {
    fn new(version: &str) -> Installer {
        let dir = tempfile::Builder::new()
            .prefix("da-install-")
            .tempdir()
            .unwrap();
        let i = Installer { dir };
        std::fs::create_dir_all(i.action().join("dist")).unwrap();
        std::fs::copy(
            root().join("dist/install.sh"),
            i.action().join("dist/install.sh"),
        )
        .unwrap();
        std::fs::write(i.action().join("dist/VERSION"), format!("{version}\n")).unwrap();
        std::fs::write(i.action().join("dist/SHA256SUMS"), "").unwrap();
        std::fs::write(i.action().join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::create_dir_all(i.path().join("releases")).unwrap();
        std::fs::create_dir_all(i.path().join("runner-temp")).unwrap();
        // The fake cargo "builds" by writing a binary at <target-dir>/release/deploy-action.
        let fake = i.path().join("fakebin");
        std::fs::create_dir_all(&fake).unwrap();
        let cargo = format!(
            "#!/bin/sh\necho \"$@\" > '{marker}'\nwhile [ $# -gt 0 ]; do [ \"$1\" = --target-dir ] && t=\"$2\"; shift; done\n\
             mkdir -p \"$t/release\" && printf '#!/bin/sh\\necho built-from-source\\n' > \"$t/release/deploy-action\" && chmod +x \"$t/release/deploy-action\"\n",
            marker = i.cargo_marker().display()
        );
        std::fs::write(fake.join("cargo"), cargo).unwrap();
        make_executable(&fake.join("cargo"));
        i
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn action(&self) -> PathBuf {
        self.path().join("action")
    }

    fn cargo_marker(&self) -> PathBuf {
        self.path().join("cargo-was-run")
    }

    fn output_file(&self) -> PathBuf {
        self.path().join("github-output")
    }

    /// Publishes a release asset `deploy-action-<version>-<target>.tar.gz` holding `binary`; returns
    /// its sha256.
    fn publish(&self, version: &str, target: &str, binary: &str) -> String {
        let stage = self.path().join(format!("stage-{target}"));
        std::fs::create_dir_all(&stage).unwrap();
        std::fs::write(stage.join("deploy-action"), binary).unwrap();
        make_executable(&stage.join("deploy-action"));
        let dir = self.path().join("releases").join(format!("v{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        let asset = dir.join(format!("deploy-action-{version}-{target}.tar.gz"));
        let out = Command::new("tar")
            .arg("-czf")
            .arg(&asset)
            .arg("-C")
            .arg(&stage)
            .arg("deploy-action")
            .output()
            .unwrap();
        assert!(out.status.success(), "tar: {}", text(&out));
        sha256_file(&asset)
    }

    /// Appends a line to the pinned dist/SHA256SUMS.
    fn pin(&self, sum: &str, file: &str) {
        let path = self.action().join("dist/SHA256SUMS");
        let mut text = read(&path);
        text.push_str(&format!("{sum}  {file}\n"));
        std::fs::write(path, text).unwrap();
    }

    /// Runs install.sh like the action's install step does.
    fn run(&self, os: &str, arch: &str, extra: &[(&str, &str)]) -> (Output, String) {
        let _ = std::fs::remove_file(self.output_file());
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.path().join("fakebin").display()
        );
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg(self.action().join("dist/install.sh"))
            .current_dir(self.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path())
            .env("GITHUB_ACTION_PATH", self.action())
            .env("GITHUB_OUTPUT", self.output_file())
            .env("RUNNER_TEMP", self.path().join("runner-temp"))
            .env("ACTION_OS", os)
            .env("ACTION_ARCH", arch)
            .env(
                "DEPLOY_ACTION_DOWNLOAD_BASE",
                format!("file://{}", self.path().join("releases").display()),
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let outputs = std::fs::read_to_string(self.output_file()).unwrap_or_default();
        (out, outputs)
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn output_value(outputs: &str, name: &str) -> Option<String> {
    outputs
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
}

#[test]
fn install_refuses_an_asset_whose_checksum_does_not_match() {
    let i = Installer::new("9.9.9");
    let target = "x86_64-unknown-linux-musl";
    let file = format!("deploy-action-9.9.9-{target}.tar.gz");
    let good = i.publish("9.9.9", target, FAKE_BIN);
    // The pinned sum is that of other bytes: a tampered (or corrupted) download.
    let pinned = format!("{:064x}", 0xdead_beefu64);
    assert_ne!(pinned, good);
    i.pin(&pinned, &file);

    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(
        !out.status.success(),
        "a mismatch must fail: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("::error"), "{}", text(&out));
    assert!(stdout.contains("checksum mismatch"), "{}", text(&out));
    assert!(
        stdout.contains(&good) && stdout.contains(&pinned),
        "{}",
        text(&out)
    );
    assert!(
        output_value(&outputs, "bin").is_none(),
        "no bin output: {outputs}"
    );
    assert!(
        !i.path()
            .join("runner-temp/deploy-action/9.9.9")
            .join(target)
            .join("deploy-action")
            .exists(),
        "nothing installed"
    );
    assert!(
        !i.cargo_marker().exists(),
        "a checksum mismatch must never fall back to building from source"
    );
}

#[test]
fn install_verifies_the_pinned_asset_and_reuses_it_later_in_the_job() {
    let i = Installer::new("9.9.9");
    let target = "x86_64-unknown-linux-musl";
    let sum = i.publish("9.9.9", target, FAKE_BIN);
    i.pin(&sum, &format!("deploy-action-9.9.9-{target}.tar.gz"));

    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("sha256 verified: {sum}")));
    let bin = output_value(&outputs, "bin").expect("bin output");
    assert_eq!(
        Path::new(&bin),
        i.path()
            .join("runner-temp/deploy-action/9.9.9")
            .join(target)
            .join("deploy-action")
    );
    assert_eq!(output_value(&outputs, "version").as_deref(), Some("9.9.9"));
    assert_eq!(output_value(&outputs, "source").as_deref(), Some("release"));
    let ran = Command::new(&bin).arg("plan").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "fake deploy-action plan\n"
    );

    // A later step of the same job reuses the install: the release server is gone.
    std::fs::remove_dir_all(i.path().join("releases")).unwrap();
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reusing"),
        "{}",
        text(&out)
    );
    assert_eq!(output_value(&outputs, "bin"), Some(bin));
    assert!(!i.cargo_marker().exists());
}

#[test]
fn install_picks_the_asset_for_the_runner_platform() {
    let i = Installer::new("2.0.1");
    let platforms = [
        ("Linux", "X64", "x86_64-unknown-linux-musl"),
        ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
        ("macOS", "X64", "x86_64-apple-darwin"),
        ("macOS", "ARM64", "aarch64-apple-darwin"),
    ];
    for (_, _, target) in platforms {
        let sum = i.publish("2.0.1", target, &format!("#!/bin/sh\necho {target}\n"));
        i.pin(&sum, &format!("deploy-action-2.0.1-{target}.tar.gz"));
    }
    for (os, arch, target) in platforms {
        let (out, outputs) = i.run(os, arch, &[]);
        assert!(out.status.success(), "{os}/{arch}: {}", text(&out));
        let bin = output_value(&outputs, "bin").expect("bin");
        assert!(
            bin.ends_with(&format!("2.0.1/{target}/deploy-action")),
            "{os}/{arch}: {bin}"
        );
        let ran = Command::new(&bin).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), target);
    }
    assert!(!i.cargo_marker().exists());

    // No asset for this platform: build from source, with a warning.
    let (out, outputs) = i.run("Linux", "S390X", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("::warning"),
        "{}",
        text(&out)
    );
    assert_eq!(output_value(&outputs, "source").as_deref(), Some("source"));
    assert!(i.cargo_marker().exists());
}

#[test]
fn install_builds_from_source_when_nothing_is_pinned_or_the_download_fails() {
    // dist/VERSION with no sums yet (a development commit): cargo build --release --locked.
    let i = Installer::new("0.1.0");
    let target_dir = i.path().join("warm-target");
    let (out, outputs) = i.run(
        "Linux",
        "X64",
        &[("CARGO_TARGET_DIR", target_dir.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("::warning"), "{}", text(&out));
    assert!(stdout.contains("pins no checksum"), "{}", text(&out));
    let args = read(&i.cargo_marker());
    assert!(args.contains("build --release --locked"), "{args}");
    assert!(
        args.contains(&format!(
            "--manifest-path {}/Cargo.toml",
            i.action().display()
        )),
        "built from the action's own directory: {args}"
    );
    assert!(
        args.contains(&format!("--target-dir {}", target_dir.display())),
        "CARGO_TARGET_DIR is honoured: {args}"
    );
    let bin = output_value(&outputs, "bin").expect("bin");
    let ran = Command::new(&bin).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "built-from-source"
    );

    // build-from-source: never → a clear failure instead.
    let (out, outputs) = i.run("Linux", "X64", &[("INPUT_BUILD_FROM_SOURCE", "never")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("build-from-source is 'never'"));
    assert!(output_value(&outputs, "bin").is_none());

    // A pinned asset whose download fails (release missing): fall back, with a warning.
    let i = Installer::new("3.1.4");
    i.pin(
        &"a".repeat(64),
        "deploy-action-3.1.4-x86_64-unknown-linux-musl.tar.gz",
    );
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::warning") && stdout.contains("failed"),
        "{}",
        text(&out)
    );
    assert_eq!(output_value(&outputs, "source").as_deref(), Some("source"));

    // An invalid mode is refused.
    let (out, _) = i.run("Linux", "X64", &[("INPUT_BUILD_FROM_SOURCE", "sometimes")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("auto, always or never"));
}

#[test]
fn install_reuses_a_source_build_in_later_steps_of_the_job() {
    // Nothing pinned (a development commit): the first step builds from source.
    let i = Installer::new("0.1.0");
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(i.cargo_marker().exists(), "the first step builds");
    let bin = output_value(&outputs, "bin").expect("bin");
    assert_eq!(
        Path::new(&bin),
        i.path()
            .join("runner-temp/deploy-action/0.1.0/source/deploy-action")
    );

    // A later step of the same job, same action checkout: no second build.
    std::fs::remove_file(i.cargo_marker()).unwrap();
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "reusing {bin} built from source earlier in this job"
        )),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("::warning"), "{}", text(&out));
    assert_eq!(output_value(&outputs, "bin").as_deref(), Some(bin.as_str()));
    assert_eq!(output_value(&outputs, "source").as_deref(), Some("source"));
    assert_eq!(output_value(&outputs, "version").as_deref(), Some("0.1.0"));
    assert!(!i.cargo_marker().exists(), "reused, not rebuilt");

    // `always` reuses it too: it was built from this action's source.
    let (out, outputs) = i.run("Linux", "X64", &[("INPUT_BUILD_FROM_SOURCE", "always")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(output_value(&outputs, "bin").as_deref(), Some(bin.as_str()));
    assert!(!i.cargo_marker().exists(), "reused, not rebuilt");

    // Another checkout of the action (another ref used in the same job) builds its own source.
    let other = i.path().join("other-action");
    std::fs::create_dir_all(other.join("dist")).unwrap();
    for f in [
        "dist/install.sh",
        "dist/VERSION",
        "dist/SHA256SUMS",
        "Cargo.toml",
    ] {
        std::fs::copy(i.action().join(f), other.join(f)).unwrap();
    }
    let (out, _) = i.run(
        "Linux",
        "X64",
        &[("GITHUB_ACTION_PATH", other.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        i.cargo_marker().exists(),
        "a build from another checkout is not reused: {}",
        text(&out)
    );
}

#[test]
fn install_reuses_a_source_build_made_after_a_failed_download() {
    // The pinned asset cannot be downloaded (no release server): the first step builds from source.
    let i = Installer::new("3.1.4");
    i.pin(
        &"b".repeat(64),
        "deploy-action-3.1.4-x86_64-unknown-linux-musl.tar.gz",
    );
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(i.cargo_marker().exists());
    let bin = output_value(&outputs, "bin").expect("bin");

    // The next step keeps that binary: no second download attempt, no second build.
    std::fs::remove_file(i.cargo_marker()).unwrap();
    let (out, outputs) = i.run("Linux", "X64", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("built from source earlier in this job"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("downloading"), "{}", text(&out));
    assert_eq!(output_value(&outputs, "bin"), Some(bin));
    assert!(!i.cargo_marker().exists());
}

#[test]
fn install_refuses_a_version_not_pinned_at_the_action_commit() {
    let i = Installer::new("1.0.0");
    let sum = i.publish("1.0.0", "x86_64-unknown-linux-musl", FAKE_BIN);
    i.pin(&sum, "deploy-action-1.0.0-x86_64-unknown-linux-musl.tar.gz");
    let (out, outputs) = i.run("Linux", "X64", &[("INPUT_VERSION", "1.2.0")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version 1.2.0 is not pinned"),
        "{}",
        text(&out)
    );
    assert!(output_value(&outputs, "bin").is_none());
    assert!(!i.cargo_marker().exists());

    // The pinned version, named explicitly (with a v), installs.
    let (out, outputs) = i.run("Linux", "X64", &[("INPUT_VERSION", "v1.0.0")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(output_value(&outputs, "version").as_deref(), Some("1.0.0"));
}

// ---------------------------------------------------------------------------------------------
// CI runs the README's test command where scripts/test-env.sh can run it.

#[test]
fn ci_runs_the_readme_test_command_as_root_on_debian_12() {
    let readme = read(&root().join("README.md"));
    assert!(
        readme.contains("bash scripts/test.sh"),
        "the README's test command"
    );
    let ci_run = read(&root().join(".ci/run"));
    assert!(
        ci_run
            .lines()
            .any(|l| l.trim() == "exec bash scripts/test.sh"),
        ".ci/run is exactly the README's test command:\n{ci_run}"
    );
    // test-env.sh needs root on Debian 12 and starts its own dockerd: a privileged debian:12
    // container with /var/lib/docker on a volume, not the hosted runner's `runner` user.
    let env_sh = read(&root().join("scripts/test-env.sh"));
    assert!(env_sh.contains("must run as root"));
    let doc = yaml(&root().join(".github/workflows/ci.yml"));
    let job = &doc["jobs"]["test"];
    let image = job["container"]["image"].as_str().expect("a job container");
    assert!(image.starts_with("debian:12"), "{image}");
    assert!(
        job["container"]["options"]
            .as_str()
            .is_some_and(|o| o.split_whitespace().any(|w| w == "--privileged")),
        "dockerd inside the container needs --privileged"
    );
    assert_eq!(
        job["container"]["volumes"],
        serde_json::json!(["/var/lib/docker"])
    );
    let steps = job["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["run"], "bash .ci/run");
    // git is installed before actions/checkout (else it downloads a tarball with no history).
    let checkout = steps
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("checkout");
    assert!(
        steps[..checkout]
            .iter()
            .any(|s| s["run"].as_str().is_some_and(|r| r.contains(" git "))),
        "git before checkout"
    );
}

// ---------------------------------------------------------------------------------------------
// The release workflow: build, pin commit, version tag on it, draft → upload → publish, move v1.

#[test]
fn release_tags_the_pin_commit_then_publishes_then_moves_the_major_tag() {
    let path = root().join(".github/workflows/release.yml");
    let doc = yaml(&path);
    assert!(
        doc["on"]["push"].is_null()
            && doc["on"]["workflow_dispatch"]["inputs"]["version"].is_object(),
        "release.yml is dispatched with a version, never run by a pushed tag (the tag is made on the pin commit)"
    );
    assert_eq!(
        doc["jobs"]["release"]["needs"],
        serde_json::json!(["check", "build"])
    );
    // The order of the release job's commands.
    let runs: String = doc["jobs"]["release"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let order = [
        "sha256sum deploy-action-*.tar.gz > SHA256SUMS",
        "dist/VERSION",
        "git/commits",
        r#"release-ref.sh" create "v$VERSION" "$commit""#,
        "gh release create \"v$VERSION\" --repo \"$REPO\" --draft --verify-tag",
        "gh release upload",
        "--draft=false",
        r#"release-ref.sh" move "$major""#,
    ];
    let mut at = 0;
    for needle in order {
        let found = runs[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("release.yml: `{needle}` missing or out of order:\n{runs}"));
        at += found + needle.len();
    }
}

/// Runs scripts/release-ref.sh with a fake `gh` that answers `reply` (exit code, output) to ref
/// writes and says whether the tag exists; returns the script's output and gh's recorded calls.
fn release_ref(args: &[&str], tag_exists: bool, reply: (i32, &str)) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gh.log");
    let reply_file = dir.path().join("reply");
    std::fs::write(&reply_file, reply.1).unwrap();
    let gh = dir.path().join("gh");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\n\
             case \"$*\" in *--include*) cat '{reply}'; exit {code} ;; esac\n\
             exit {exists}\n",
            log = log.display(),
            reply = reply_file.display(),
            code = reply.0,
            exists = if tag_exists { 0 } else { 1 },
        ),
    )
    .unwrap();
    make_executable(&gh);
    let out = Command::new("bash")
        .arg(root().join("scripts/release-ref.sh"))
        .args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .env("REPO", "org/deploy-action")
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    (out, calls)
}

#[test]
fn release_ref_creates_and_moves_tags_and_explains_a_403() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let ok = (0, "HTTP/2.0 201 Created\r\n\r\n{}");

    let (out, calls) = release_ref(&["create", "v1.4.2", sha], false, ok);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        calls.contains(&format!(
            "--method POST repos/org/deploy-action/git/refs -f ref=refs/tags/v1.4.2 -f sha={sha}"
        )),
        "{calls}"
    );

    let (out, calls) = release_ref(&["move", "v1", sha], true, ok);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        calls.contains(&format!(
            "--method PATCH repos/org/deploy-action/git/refs/tags/v1 -f sha={sha} -F force=true"
        )),
        "{calls}"
    );
    let (out, calls) = release_ref(&["move", "v1", sha], false, ok);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        calls.contains("-f ref=refs/tags/v1 "),
        "the first v1 is created: {calls}"
    );

    // GitHub's answer when the token lacks `workflows`.
    let forbidden = (
        1,
        "HTTP/2.0 403 Forbidden\r\nX-Accepted-Github-Permissions: contents=write; contents=write,workflows=write\r\n\r\n\
         {\"message\":\"Resource not accessible by integration\"}\ngh: Resource not accessible by integration (HTTP 403)\n",
    );
    let (out, _) = release_ref(&["move", "v1", sha], true, forbidden);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one annotation: {}", text(&out));
    assert!(
        stdout.starts_with("::error title=release tag::moving tag v1 to "),
        "{}",
        text(&out)
    );
    for needle in [
        "HTTP 403",
        "contents=write,workflows=write",
        "workflows permission",
        "DEPLOY_ACTION_RELEASE_TOKEN",
    ] {
        assert!(stdout.contains(needle), "{needle}: {}", text(&out));
    }

    // Another failure is reported with its status, without the workflows advice.
    let (out, _) = release_ref(
        &["create", "v1.4.2", sha],
        false,
        (
            1,
            "HTTP/2.0 422 Unprocessable Entity\r\n\r\n{\"message\":\"Reference already exists\"}",
        ),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("creating tag v1.4.2") && stdout.contains("HTTP 422"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("workflows"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Reference already exists"));
}

/// Runs dist/run.sh with a fake binary that prints its argv one per line, and its working directory.
fn run_sh(vars: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("da-run-")
        .tempdir()
        .unwrap();
    let bin = dir.path().join("deploy-action");
    std::fs::write(
        &bin,
        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho \"cwd=$(pwd)\"\n",
    )
    .unwrap();
    make_executable(&bin);
    std::fs::create_dir_all(dir.path().join("work/app")).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("dist/run.sh"))
        .current_dir(dir.path().join("work"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DEPLOY_ACTION_BIN", &bin);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), dir)
}

#[test]
fn run_passes_each_args_line_as_one_argument_without_a_shell() {
    let (out, dir) = run_sh(&[
        ("INPUT_COMMAND", "plan"),
        ("INPUT_ENVIRONMENT", "staging"),
        ("INPUT_MANIFEST", "ci/deploy.yml"),
        ("INPUT_WORKING_DIRECTORY", "app"),
        (
            "INPUT_ARGS",
            "--base\n  HEAD~1  \n\n--only web api\r\n$(touch pwned) `touch pwned2`; echo hi\n",
        ),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = [
        "[plan]",
        "[--env]",
        "[staging]",
        "[--manifest]",
        "[ci/deploy.yml]",
        "[--base]",
        "[HEAD~1]",
        "[--only web api]",
        "[$(touch pwned) `touch pwned2`; echo hi]",
    ]
    .join("\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&expected), "{}", text(&out));
    assert!(stdout.contains(&format!("cwd={}", dir.path().join("work/app").display())));
    for marker in ["pwned", "pwned2"] {
        assert!(!dir.path().join("work/app").join(marker).exists());
        assert!(!dir.path().join("work").join(marker).exists());
    }

    // Only the command, nothing else set.
    let (out, _) = run_sh(&[("INPUT_COMMAND", "status")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("[status]\ncwd="));
}

#[test]
fn run_rejects_an_unknown_command_with_exit_2() {
    let (out, _) = run_sh(&[("INPUT_COMMAND", "deploy-everything\n::warning::x")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("::error title=deploy-action::unknown command"));
    assert_eq!(
        stdout.lines().count(),
        1,
        "the input cannot inject a workflow command: {stdout}"
    );
    let (out, _) = run_sh(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("'command' input is required"));
}

// ---------------------------------------------------------------------------------------------
// End to end under act, offline: a new user's workflow using `org/deploy-action@v1`.
//
// act (self-hosted mode) runs the steps on this machine. For `uses: org/deploy-action@v1` it copies
// the directory given to --local-repository into a fresh per-run directory (files get new mtimes),
// which becomes $GITHUB_ACTION_PATH; $RUNNER_TEMP is fresh per run too, so concurrent act runs never
// share an install.

/// A monorepo with two services, where the last commit changes only `api`; returns (repo, base sha,
/// head sha).
fn act_project() -> (crate::harness::Project, String, String) {
    let repo = crate::harness::Project::git();
    repo.manifest(
        "version: 1\n\
         project: shop\n\
         environments:\n  staging:\n    hosts: [\"local\"]\n    dir: /srv/shop\n\
         services:\n  api:\n    paths: [\"services/api/**\"]\n    test: \"echo testing api\"\n  \
         web:\n    paths: [\"services/web/**\"]\n",
    )
    .file("services/api/main.txt", "v1\n")
    .file("services/web/index.html", "v1\n");
    let base = repo.commit("services");
    repo.file("services/api/main.txt", "v2\n");
    let head = repo.commit("change api");
    (repo, base, head)
}

/// Runs `act push` on `workflow` in `repo`, with `checkout` as the action repository at @v1.
fn act(
    repo: &crate::harness::Project,
    base: &str,
    head: &str,
    workflow: &str,
    checkout: &Path,
) -> (Output, String) {
    repo.file(".github/workflows/e2e.yml", workflow);
    repo.file(
        ".event.json",
        &format!(r#"{{"ref":"refs/heads/main","before":"{base}","after":"{head}"}}"#),
    );
    // cargo (for a fallback build) from the toolchain running these tests.
    let mut path = std::env::var("PATH").unwrap_or_default();
    if let Some(cargo_dir) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|c| c.parent().map(Path::to_path_buf))
    {
        path = format!("{}:{path}", cargo_dir.display());
    }
    let out = Command::new(tool("act"))
        .args([
            "push",
            "-W",
            ".github/workflows/e2e.yml",
            "-e",
            ".event.json",
        ])
        .args(["-P", "ubuntu-latest=-self-hosted"])
        .arg("--local-repository")
        .arg(format!("org/deploy-action@v1={}", checkout.display()))
        .arg("--action-offline-mode")
        .current_dir(repo.path())
        .env("PATH", path)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let log = text(&out);
    (out, log)
}

/// A step that records some step outputs into files of `dir` (one file per name).
fn record_step(dir: &Path, step: &str, names: &[&str]) -> String {
    let mut env = String::new();
    let mut run = String::new();
    for name in names {
        let var = format!(
            "{}_{}",
            step.to_uppercase(),
            name.to_uppercase().replace('-', "_")
        );
        env.push_str(&format!(
            "          {var}: ${{{{ steps.{step}.outputs.{name} }}}}\n"
        ));
        run.push_str(&format!(
            "          printf '%s' \"${var}\" > '{}'\n",
            dir.join(format!("{step}.{name}")).display()
        ));
    }
    format!("      - name: Record {step}'s outputs\n        env:\n{env}        run: |\n{run}")
}

fn recorded(dir: &Path, step: &str, name: &str, log: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{step}.{name}")))
        .unwrap_or_else(|_| panic!("the workflow did not record {step}.{name}:\n{log}"))
}

/// The Must-show: with no release pinned at the action's commit and no network, the action builds
/// deploy-action from its own source, and `command: plan` names the changed service in `affected`.
///
/// The fallback build uses a target directory kept in the test environment's state directory
/// ($DA_TEST_DIR/act-target) across runs and worktrees, so only the first run on a machine compiles
/// the dependencies (a few minutes). act hands the action a fresh copy with new mtimes every run, so
/// cargo always recompiles the deploy-action crate itself (with incremental compilation); nothing
/// on our side can keep those mtimes. A lock file next to the directory serialises concurrent runs
/// (two worktrees, two test processes), so no run copies a binary another run's build is replacing.
#[test]
fn act_runs_the_action_offline_builds_it_from_source_and_affected_names_the_changed_service() {
    let (repo, base, head) = act_project();
    let state = crate::harness::services::state_dir();
    std::fs::create_dir_all(&state).unwrap();
    let target_dir = state.join("act-target");
    let lock = std::fs::File::create(state.join("act-target.lock")).unwrap();
    lock.lock().unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    // The same `cargo build --release --locked`, with a quicker profile for a test.
    let workflow = format!(
        r#"name: e2e
on: push
permissions:
  contents: read
jobs:
  plan:
    runs-on: ubuntu-latest
    env:
      CARGO_TARGET_DIR: {target}
      CARGO_PROFILE_RELEASE_OPT_LEVEL: "0"
      CARGO_PROFILE_RELEASE_LTO: "false"
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS: "256"
      CARGO_PROFILE_RELEASE_INCREMENTAL: "true"
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
          fetch-depth: 0
      - id: plan
        uses: org/deploy-action@v1
        with:
          command: plan
          environment: staging
          args: |
            --base
            {base}
{record}"#,
        target = target_dir.display(),
        record = record_step(out_dir.path(), "plan", &["affected", "bin", "version"]),
    );
    // The action checkout: the repository's files as a `git clone` would have them (act walks the
    // whole directory it is given: never hand it the worktree with its target/ directories).
    let checkout = action_checkout();
    let (out, log) = act(&repo, &base, &head, &workflow, checkout.path());
    drop(lock);
    assert!(out.status.success(), "act failed:\n{log}");
    assert!(
        log.contains("building deploy-action from source"),
        "the action falls back to a source build (no release is pinned):\n{log}"
    );
    let affected: Value = serde_json::from_str(&recorded(out_dir.path(), "plan", "affected", &log))
        .unwrap_or_else(|e| panic!("`affected` is not JSON ({e}):\n{log}"));
    assert_eq!(affected, serde_json::json!(["api"]), "{log}");
    let bin = recorded(out_dir.path(), "plan", "bin", &log);
    assert!(bin.ends_with("/source/deploy-action"), "{bin}");
}

/// The pinned path, fast: this test's own binary served as a release asset from a file:// URL and
/// pinned in the checkout's dist/SHA256SUMS. The first step downloads it and verifies its SHA-256;
/// the second step of the job reuses that install. Nothing is built (build-from-source: never).
#[test]
fn act_installs_the_pinned_checksum_verified_binary_and_reuses_it_in_the_next_step() {
    let (repo, base, head) = act_project();
    let checkout = action_checkout();
    let version = read(&checkout.path().join("dist/VERSION"))
        .trim()
        .to_string();
    let target = match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-musl",
        "aarch64" => "aarch64-unknown-linux-musl",
        other => panic!("no release target for {other}"),
    };
    let asset = format!("deploy-action-{version}-{target}.tar.gz");

    // The release server: v<version>/<asset>, a tarball of the binary under test.
    let releases = tempfile::tempdir().unwrap();
    let stage = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_deploy-action"),
        stage.path().join("deploy-action"),
    )
    .unwrap();
    let dir = releases.path().join(format!("v{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(dir.join(&asset))
        .arg("-C")
        .arg(stage.path())
        .arg("deploy-action")
        .output()
        .unwrap();
    assert!(tar.status.success(), "tar: {}", text(&tar));
    let sum = sha256_file(&dir.join(&asset));
    std::fs::write(
        checkout.path().join("dist/SHA256SUMS"),
        format!("{sum}  {asset}\n"),
    )
    .unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let workflow = format!(
        r#"name: e2e
on: push
permissions:
  contents: read
jobs:
  plan-and-test:
    runs-on: ubuntu-latest
    env:
      DEPLOY_ACTION_DOWNLOAD_BASE: file://{releases}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
          fetch-depth: 0
      - id: plan
        uses: org/deploy-action@v1
        with:
          command: plan
          environment: staging
          build-from-source: never
          args: |
            --base
            {base}
      - id: test
        uses: org/deploy-action@v1
        with:
          command: test
          environment: staging
          build-from-source: never
          args: |
            --base
            {base}
{record_plan}{record_test}"#,
        releases = releases.path().display(),
        record_plan = record_step(out_dir.path(), "plan", &["affected", "bin", "version"]),
        record_test = record_step(out_dir.path(), "test", &["affected", "bin", "test-failed"]),
    );
    let (out, log) = act(&repo, &base, &head, &workflow, checkout.path());
    assert!(out.status.success(), "act failed:\n{log}");

    // Step 1 downloaded and verified the pinned asset; step 2 reused that install.
    assert_eq!(
        log.matches(&format!("sha256 verified: {sum}  {asset}"))
            .count(),
        1,
        "{log}"
    );
    let bin = recorded(out_dir.path(), "plan", "bin", &log);
    assert!(
        bin.ends_with(&format!("/deploy-action/{version}/{target}/deploy-action")),
        "{bin}"
    );
    assert_eq!(
        log.matches(&format!("reusing {bin} installed earlier in this job"))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(recorded(out_dir.path(), "test", "bin", &log), bin);
    assert_eq!(recorded(out_dir.path(), "plan", "version", &log), version);
    assert!(!log.contains("building deploy-action from source"), "{log}");

    // Both stages name the changed service; `test` ran it and nothing failed.
    for step in ["plan", "test"] {
        assert_eq!(
            recorded(out_dir.path(), step, "affected", &log),
            r#"["api"]"#,
            "{step}:\n{log}"
        );
    }
    assert_eq!(recorded(out_dir.path(), "test", "test-failed", &log), "[]");
    assert!(log.contains("testing api"), "{log}");
}
