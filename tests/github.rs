//! In a GitHub-Actions-like environment (GITHUB_* pointed at temp files): the job summary, the
//! `affected` output, masking of every secret the tool reads, and relayed output that cannot inject
//! workflow commands.

use crate::changes::shop;
use crate::harness::{Project, Run};
use std::path::PathBuf;

struct Gh {
    _dir: tempfile::TempDir,
    output: PathBuf,
    summary: PathBuf,
}

impl Gh {
    fn new() -> Gh {
        let dir = tempfile::tempdir().unwrap();
        Gh {
            output: dir.path().join("output"),
            summary: dir.path().join("summary.md"),
            _dir: dir,
        }
    }
    fn apply(&self, run: Run) -> Run {
        run.env("GITHUB_ACTIONS", "true")
            .env("CI", "true")
            .env("GITHUB_OUTPUT", self.output.display().to_string())
            .env("GITHUB_STEP_SUMMARY", self.summary.display().to_string())
            .env("GITHUB_EVENT_NAME", "workflow_dispatch")
    }
    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
    fn summary(&self) -> String {
        std::fs::read_to_string(&self.summary).unwrap_or_default()
    }
}

#[test]
fn plan_writes_affected_output_and_summary() {
    let p = shop();
    p.file("services/api/main.rs", "changed\n")
        .file("migrations/9.sql", "\n");
    p.commit("api + migration");
    let gh = Gh::new();
    gh.apply(p.run(&["plan", "--env", "staging"]))
        .go()
        .status(0);
    assert!(
        gh.output()
            .lines()
            .any(|l| l == r#"affected=["api","migrations"]"#),
        "{}",
        gh.output()
    );
    let md = gh.summary();
    assert!(md.contains("### plan (staging)"), "{md}");
    assert!(md.contains("| api | build | local |"), "{md}");
    assert!(
        md.contains("| api | up | deploy@staging.example.com:22 |"),
        "{md}"
    );
}

#[test]
fn plan_json_in_actions_keeps_stdout_pure() {
    let p = shop();
    let gh = Gh::new();
    let out = gh
        .apply(p.run(&["plan", "--env", "staging", "--json", "--all"]))
        .env("GITHUB_TOKEN", "ghs_abcdefghijklmnop")
        .go();
    out.status(0);
    assert_eq!(out.json()["affected"].as_array().unwrap().len(), 4);
    assert!(out.stderr.contains("::add-mask::ghs_abcdefghijklmnop"));
    assert!(
        gh.output()
            .contains("affected=[\"api\",\"worker\",\"web\",\"migrations\"]\n")
    );
}

#[test]
fn build_groups_units_and_writes_the_summary_table() {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: x
services:
  good:
    paths: ["good/**"]
    build: { command: "echo fine" }
  bad:
    paths: ["bad/**"]
    build: { command: "exit 4" }
"#,
    );
    p.commit("x");
    let gh = Gh::new();
    let out = gh.apply(p.run(&["build", "--all"])).go();
    out.status(1)
        .stdout_has("::group::build good")
        .stdout_has("::endgroup::")
        // Annotated at its `build:` entry (issue 11), then the stage's tally.
        .stdout_has(
            "::error file=deploy.yml,line=9,col=5::build bad failed (exit status 4): `exit 4`\n",
        )
        .stdout_has("::error::build failed for 1 of 2 units: bad\n");
    let md = gh.summary();
    assert!(md.contains("### build"), "{md}");
    assert!(md.contains("| unit | host | duration | result |"), "{md}");
    assert!(md.contains("| bad | local |"), "{md}");
    assert!(md.contains("FAILED (exit 4)"), "{md}");
    assert!(
        gh.output().contains("build-failed=[\"bad\"]"),
        "{}",
        gh.output()
    );
}

const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\nQyNTUxOQAAACBzZWNyZXRzZWNyZXRzZWNyZXQ\n-----END OPENSSH PRIVATE KEY-----\n";
const CF_TOKEN: &str = "cf-token-Zx81hQ2m";
const GH_TOKEN: &str = "ghs_S3cr3tT0kenValue";

#[test]
fn secrets_are_masked_first_and_never_printed() {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: x
services:
  leaky:
    paths: ["leaky/**"]
    build: { command: "echo \"key: $DEPLOY_SSH_KEY\"; echo cf=$CLOUDFLARE_API_TOKEN; echo gh=$GITHUB_TOKEN >&2" }
    # A build sees the tool's secrets only when it opts in; this one does, so masking is tested.
    env: [DEPLOY_SSH_KEY, CLOUDFLARE_API_TOKEN, GITHUB_TOKEN]
"#,
    );
    p.commit("x");
    let gh = Gh::new();
    let out = gh
        .apply(p.run(&["build", "--all"]))
        .env("DEPLOY_SSH_KEY", SSH_KEY)
        .env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
        .env("GITHUB_TOKEN", GH_TOKEN)
        .go();
    out.status(0)
        .stdout_has("leaky | cf=***")
        .stdout_has("leaky | gh=***");
    // The masks come before anything else: the key (whole, then line by line), then the tokens.
    let first = leading_masks(&out.stdout);
    assert!(first.len() >= 3, "{first:?}");
    assert!(first.contains(&format!("::add-mask::{CF_TOKEN}").as_str()));
    assert!(first.contains(&format!("::add-mask::{GH_TOKEN}").as_str()));
    // The values appear nowhere except inside ::add-mask:: lines.
    let secret_parts: Vec<&str> = [CF_TOKEN, GH_TOKEN]
        .into_iter()
        .chain(
            SSH_KEY
                .lines()
                .filter(|l| l.len() >= 8 && !l.starts_with("-----")),
        )
        .collect();
    for text in [&out.stdout, &out.stderr, &gh.summary(), &gh.output()] {
        for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
            for s in &secret_parts {
                assert!(!line.contains(s), "secret {s:?} printed in {line:?}");
            }
        }
    }
    assert!(out.stdout.contains("leaky | key: ***") || out.stdout.contains("leaky | ***"));
}

#[test]
fn relayed_output_cannot_inject_workflow_commands() {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: x
services:
  evil:
    paths: ["evil/**"]
    build: { command: "echo '::add-mask::x'; echo '::set-output name=a::b'; echo '::error::evil' >&2; echo '::endgroup::'; echo '##[error]legacy'" }
"#,
    );
    p.commit("x");
    let gh = Gh::new();
    let out = gh.apply(p.run(&["build", "--all"])).go();
    out.status(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("::stop-commands::"))
        .expect("a stop-commands block");
    let token = lines[start].strip_prefix("::stop-commands::").unwrap();
    assert!(token.len() >= 32, "a random token: {token}");
    let end = lines
        .iter()
        .position(|l| *l == format!("::{token}::"))
        .expect("commands resumed with the token");
    let inside = &lines[start + 1..end];
    for evil in [
        "::add-mask::x",
        "::set-output name=a::b",
        "::error::evil",
        "::endgroup::",
    ] {
        assert!(
            inside.iter().any(|l| l.ends_with(evil)),
            "{evil} relayed inside the block: {inside:?}"
        );
    }
    assert!(inside.iter().all(|l| !l.starts_with("::")), "{inside:?}");
    // Outside the block, the only workflow commands are our own.
    for l in lines[..start].iter().chain(&lines[end + 1..]) {
        if l.starts_with("::") {
            assert!(
                l.starts_with("::group::") || *l == "::endgroup::",
                "unexpected command {l:?}"
            );
        }
    }
    assert_eq!(lines.iter().filter(|l| **l == "::endgroup::").count(), 1);
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("::")),
        "{}",
        out.stderr
    );
    assert!(!gh.output().contains("a=b"));
}

#[test]
fn a_manifest_error_is_annotated_with_its_line() {
    let p = Project::git();
    p.manifest("version: 1\nproject: x\nservices:\n  api:\n    pathz: [\"a/**\"]\n");
    p.commit("x");
    let gh = Gh::new();
    let out = gh.apply(p.run(&["plan"])).go();
    out.status(2);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("::error file=deploy.yml,line=5,")),
        "{}",
        out.stdout
    );
}

/// Every line of `text` except our own `::add-mask::` commands.
fn printed_lines<'a>(texts: &[&'a str]) -> Vec<&'a str> {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect()
}

/// The stdout lines before the first one that is not an `::add-mask::` command.
fn leading_masks(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .take_while(|l| l.starts_with("::add-mask::"))
        .collect()
}

const STAGING_PW: &str = "St4ging-pa%40ss";
const STAGING_PW_DECODED: &str = "St4ging-pa@ss";
const PROD_PW: &str = "Pr0d-Secret-77";

/// Two environments whose databases come from URL variables, one `local` host to exec on, and a
/// service whose build prints both URLs.
fn two_databases() -> Project {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: x
environments:
  staging:
    hosts: ["local"]
    dir: /tmp
    database: { url_env: STAGING_DATABASE_URL }
  production:
    hosts: ["local"]
    dir: /tmp
    database: { url_env: PROD_DATABASE_URL }
services:
  leaky:
    paths: ["leaky/**"]
    build: { command: "echo staging=$STAGING_DATABASE_URL; echo prod=$PROD_DATABASE_URL >&2" }
    # A build sees the tool's secrets only when it opts in; this one does, so masking is tested.
    env: [STAGING_DATABASE_URL, PROD_DATABASE_URL]
"#,
    );
    p.commit("x");
    p
}

fn with_database_urls(run: Run) -> Run {
    run.env(
        "STAGING_DATABASE_URL",
        format!("postgres://app:{STAGING_PW}@127.0.0.1:5432/app"),
    )
    .env(
        "PROD_DATABASE_URL",
        format!("postgresql://app:{PROD_PW}@db.internal/app?sslmode=require"),
    )
}

/// Asserts that the database passwords were masked first and never printed.
#[track_caller]
fn assert_database_passwords_masked(out: &crate::harness::Outcome, gh: &Gh) {
    let masks = leading_masks(&out.stdout);
    for pw in [STAGING_PW, STAGING_PW_DECODED, PROD_PW] {
        // Workflow command data escapes `%` as `%25`; the runner unescapes it.
        let escaped = pw.replace('%', "%25");
        assert!(
            masks.contains(&format!("::add-mask::{escaped}").as_str()),
            "no leading ::add-mask:: for {pw}: {masks:?}\n--- stdout\n{}",
            out.stdout
        );
    }
    let summary = gh.summary();
    let output = gh.output();
    for line in printed_lines(&[&out.stdout, &out.stderr, &summary, &output]) {
        for pw in [
            STAGING_PW,
            STAGING_PW_DECODED,
            PROD_PW,
            "St4ging",
            "Pr0d-Secret",
        ] {
            assert!(!line.contains(pw), "password {pw:?} printed in {line:?}");
        }
    }
}

#[test]
fn database_url_passwords_are_masked_in_exec() {
    let p = two_databases();
    let gh = Gh::new();
    let out = with_database_urls(gh.apply(p.run(&[
        "exec",
        "--env",
        "staging",
        "--",
        "sh",
        "-c",
        "echo url=$STAGING_DATABASE_URL; echo other=$PROD_DATABASE_URL >&2",
    ])))
    .go();
    out.status(0)
        .stdout_has("local | url=postgres://app:***@127.0.0.1:5432/app")
        // The other environment's password is masked too: the variable is set in this job.
        .stdout_has("local | other=postgresql://app:***@db.internal/app?sslmode=require");
    assert_database_passwords_masked(&out, &gh);
}

#[test]
fn database_url_passwords_are_masked_in_build() {
    let p = two_databases();
    let gh = Gh::new();
    let out = with_database_urls(gh.apply(p.run(&["build", "--all"]))).go();
    out.status(0)
        .stdout_has("leaky | staging=postgres://app:***@127.0.0.1:5432/app")
        .stdout_has("leaky | prod=postgresql://app:***@db.internal/app?sslmode=require");
    assert_database_passwords_masked(&out, &gh);
}

#[test]
fn database_url_passwords_are_masked_outside_actions_too() {
    let p = two_databases();
    let out = with_database_urls(p.run(&["build", "--all", "--json"])).go();
    out.status(0)
        .stderr_has("leaky | staging=postgres://app:***@127.0.0.1:5432/app")
        .nowhere(STAGING_PW)
        .nowhere(PROD_PW)
        .nowhere("::add-mask::");
}

/// A syntactically plausible OpenSSH private key; never a real one.
const KEY_FILE_TEXT: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDk3Jr0Fq9xGm7Yb8nQ2wV5c1aRt0PzKx4hLsE6uN9yDwAAAJgZ8m0lGfJt
JQAAAAtzc2gtZWQyNTUxOQAAACDk3Jr0Fq9xGm7Yb8nQ2wV5c1aRt0PzKx4hLsE6uN9yDw
Qk0=
-----END OPENSSH PRIVATE KEY-----
";

#[test]
fn the_key_file_is_masked_line_by_line() {
    let p = Project::git();
    p.manifest(
        r#"version: 1
project: x
services:
  leaky:
    paths: ["leaky/**"]
    build: { command: "cat \"$DEPLOY_SSH_KEY_FILE\"; tail -n 2 \"$DEPLOY_SSH_KEY_FILE\" >&2" }
"#,
    );
    p.commit("x");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("id_ed25519");
    std::fs::write(&key_file, KEY_FILE_TEXT).unwrap();
    let gh = Gh::new();
    let out = gh
        .apply(p.run(&["build", "--all"]))
        .env("DEPLOY_SSH_KEY_FILE", key_file.display().to_string())
        .go();
    out.status(0);
    let masks = leading_masks(&out.stdout);
    let body: Vec<&str> = KEY_FILE_TEXT.lines().filter(|l| !l.is_empty()).collect();
    // The whole key, `%0A`-escaped, then each non-empty line on its own, before anything else.
    assert_eq!(
        masks[0],
        format!("::add-mask::{}", body.join("%0A")),
        "{masks:?}"
    );
    for line in &body {
        assert!(
            masks.contains(&format!("::add-mask::{line}").as_str()),
            "{line} not masked first: {masks:?}"
        );
    }
    let summary = gh.summary();
    for printed in printed_lines(&[&out.stdout, &out.stderr, &summary]) {
        for line in &body {
            assert!(
                !printed.contains(line),
                "key line {line:?} printed in {printed:?}"
            );
        }
    }
    // Every line of the key was relayed, and each came out as `***`.
    let relayed = out.stdout.lines().filter(|l| *l == "leaky | ***").count();
    assert_eq!(relayed, body.len() + 2, "{}", out.stdout);
}
