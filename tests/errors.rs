//! Bad manifests through the real binary (`deploy-action check`): the exact rendered error on stderr,
//! exit 2, the GitHub Actions annotation, and the valid full example. Runtime errors too: a failed
//! command with the tail of its stderr and its `build:` entry, a failed migration at its
//! `migrations:` entry, an error of the Cloudflare API with its help, a failed health gate of `up`
//! at its `health:` entry.

use crate::fake_cloudflare::{FakeCloudflare, Fault, Route};
use crate::harness::Project;

const HEAD: &str = "version: 1\nproject: shop\n";

/// Runs `check` on `yaml` and returns stderr, asserting exit 2 and an empty stdout.
fn check_fails(yaml: &str) -> String {
    let p = Project::new();
    p.manifest(yaml);
    let out = p.run(&["check"]).go();
    out.status(2);
    assert_eq!(out.stdout, "", "stdout should be empty");
    out.stderr
}

#[test]
fn unknown_key_with_suggestion() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging:\n    hosts: [local]\n    dir: /srv/shop\n    compose_file: [compose.yml]\n"
    ));
    assert_eq!(
        stderr,
        "error: unknown key `compose_file` in environment `staging`
  --> deploy.yml:7:5
  |
7 |     compose_file: [compose.yml]
  |     ^^^^^^^^^^^^
  = help: did you mean `compose_files`?
"
    );
}

#[test]
fn tab_indentation() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging:\n\thosts: [local]\n"
    ));
    assert_eq!(
        stderr,
        "error: a tab is used for indentation; YAML allows only spaces there
  --> deploy.yml:5:1
  |
5 |  hosts: [local]
  | ^
  = help: replace the tab with spaces
"
    );
}

#[test]
fn duplicate_key() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{}}\nservices:\n  api: {{}}\n  api: {{}}\n"
    ));
    assert_eq!(
        stderr,
        "error: duplicate key `api` (first defined on line 6)
  --> deploy.yml:7:3
  |
7 |   api: {}
  |   ^^^
  = help: remove one of them or merge them
"
    );
}

#[test]
fn wrong_type() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{}}\nservices:\n  api:\n    paths: 42\n"
    ));
    assert_eq!(
        stderr,
        "error: `paths`: expected a list of strings, found a number
  --> deploy.yml:7:12
  |
7 |     paths: 42
  |            ^^
"
    );
}

#[test]
fn invalid_host_shows_the_right_form() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  production:\n    hosts: [\"https://deploy@prod.example.com\"]\n    dir: /srv/shop\n"
    ));
    assert_eq!(
        stderr,
        "error: unsupported scheme `https://` in host `https://deploy@prod.example.com`; only ssh:// is supported
  --> deploy.yml:5:13
  |
5 |     hosts: [\"https://deploy@prod.example.com\"]
  |             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: write `local` or `ssh://user@host[:port]`, e.g. ssh://deploy@staging.example.com:22 or ssh://deploy@[2001:db8::1]:2222
"
    );
}

#[test]
fn promote_from_and_unknown_values_suggest() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{}}\n  production:\n    promote_from: stagin\n"
    ));
    assert_eq!(
        stderr,
        "error: promote_from names environment `stagin`, which does not exist
  --> deploy.yml:6:19
  |
6 |     promote_from: stagin
  |                   ^^^^^^
  = help: did you mean `staging`?
"
    );
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{}}\nmigrations:\n  dir: migrations\n  engine: sqlit\n"
    ));
    assert!(stderr.starts_with("error: unknown engine `sqlit`; expected one of: postgres, sqlite\n  --> deploy.yml:7:11\n"), "{stderr}");
    assert!(
        stderr.ends_with("  = help: did you mean `sqlite`?\n"),
        "{stderr}"
    );
}

#[test]
fn non_ascii_line_keeps_the_caret_aligned() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{ url: \"https://é.example\", aproval: none }}\n"
    ));
    assert_eq!(
        stderr,
        "error: unknown key `aproval` in environment `staging`
  --> deploy.yml:4:40
  |
4 |   staging: { url: \"https://é.example\", aproval: none }
  |                                        ^^^^^^^
  = help: did you mean `approval`?
"
    );
}

#[test]
fn yaml_syntax_error() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging: {{ hosts: [local }}\n"
    ));
    assert!(stderr.starts_with("error: YAML syntax error: "), "{stderr}");
    assert!(stderr.contains("  --> deploy.yml:4:"), "{stderr}");
    assert!(
        stderr.contains("4 |   staging: { hosts: [local }\n"),
        "{stderr}"
    );
}

#[test]
fn github_actions_annotation() {
    let p = Project::new();
    p.manifest(&format!(
        "{HEAD}environments:\n  staging:\n    hsots: [local]\n"
    ));
    let out = p.run(&["check"]).env("GITHUB_ACTIONS", "true").go();
    out.status(2);
    assert_eq!(
        out.stdout,
        "::error file=deploy.yml,line=5,col=5::unknown key `hsots` in environment `staging`\n"
    );
    out.stderr_has("  --> deploy.yml:5:5\n")
        .stderr_has("= help: did you mean `hosts`?");
}

#[test]
fn manifest_flag_names_the_file_in_errors() {
    let p = Project::new();
    p.file(
        "ops/deploy.yml",
        "version: 3\nproject: shop\nenvironments: {}\n",
    );
    let out = p.run(&["check", "--manifest", "ops/deploy.yml"]).go();
    out.status(2)
        .stderr_has("error: unsupported manifest version 3; this deploy-action reads version 1\n  --> ops/deploy.yml:1:10\n");
}

#[test]
fn no_manifest_is_exit_2() {
    let p = Project::new();
    let out = p.run(&["check"]).go();
    out.status(2);
    assert_eq!(
        out.stderr,
        "error: no manifest at deploy.yml (create deploy.yml or pass --manifest FILE)\n"
    );
}

#[test]
fn full_example_checks() {
    let p = Project::new();
    p.manifest(include_str!("../examples/deploy.full.yml"));
    let out = p.run(&["check"]).go();
    out.status(0);
    assert_eq!(
        out.stdout,
        "deploy.yml: ok (project shop)
environments:
  staging     ssh://deploy@staging.example.com:22
  production  ssh://deploy@prod-1.example.com:22, ssh://deploy@[2001:db8::10]:2222
  dev         local
units:
  api         service
  worker      service
  mailer      service
  cache       service
  web         site
  migrations  migrations
"
    );
    let out = p.run(&["check", "--json"]).go();
    out.status(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["project"], "shop");
    assert_eq!(v["units"][5]["name"], "migrations");
    assert_eq!(v["units"][4]["kind"], "site");
    assert_eq!(
        v["environments"][1]["hosts"][1],
        "ssh://deploy@[2001:db8::10]:2222"
    );
}

#[test]
fn schema_is_json_schema() {
    let p = Project::new();
    let out = p.run(&["schema"]).go();
    out.status(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(v["additionalProperties"], false);
    assert!(v["properties"]["environments"]["additionalProperties"]["anyOf"][0]["properties"]["promote_from"].is_object());
}

#[test]
fn oversized_and_empty_manifests() {
    let p = Project::new();
    p.manifest(&format!("{HEAD}# {}\n", "x".repeat(1024 * 1024)));
    p.run(&["check"])
        .go()
        .status(2)
        .stderr_has("the limit for a manifest is 1048576 bytes (1 MiB)");
    p.manifest("# nothing yet\n");
    p.run(&["check"])
        .go()
        .status(2)
        .stderr_has("error: the manifest is empty\n  --> deploy.yml:1:1\n");
}

#[test]
fn a_misspelt_local_host_suggests_local() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  staging:\n    hosts: [lcoal]\n    dir: /srv/shop\n"
    ));
    assert_eq!(
        stderr,
        "error: invalid host `lcoal`
  --> deploy.yml:5:13
  |
5 |     hosts: [lcoal]
  |             ^^^^^
  = help: did you mean `local`?
"
    );
}

#[test]
fn a_huge_line_gives_a_short_error() {
    // 100,000 nested lists on one line: the error shows 120 characters around the column.
    let deep = format!(
        "{HEAD}services: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let stderr = check_fails(&deep);
    assert!(stderr.len() < 1_000, "{} bytes:\n{stderr}", stderr.len());
    assert!(
        stderr.starts_with("error: the manifest nests deeper than 32 levels\n  --> deploy.yml:3:"),
        "{stderr}"
    );
    let excerpt = stderr.lines().nth(3).unwrap();
    assert!(
        excerpt.starts_with("3 | …[[[[") && excerpt.ends_with("[[[…"),
        "{excerpt}"
    );
    // A long value quoted in the message is cut as well.
    let host = "h".repeat(50_000);
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  s:\n    hosts: [\"ssh://u@{host}:99999\"]\n    dir: /srv\n"
    ));
    assert!(stderr.len() < 1_000, "{} bytes", stderr.len());
    assert!(
        stderr.starts_with("error: bad port `99999` in host `ssh://u@hhh"),
        "{stderr}"
    );
}

#[test]
fn an_unclosed_list_points_back_at_its_bracket() {
    let stderr = check_fails(&format!(
        "{HEAD}services:\n  api:\n    paths: [\"services/api/**\", \"libs/**\"\n    test: make\n"
    ));
    assert!(stderr.starts_with("error: YAML syntax error: "), "{stderr}");
    assert!(stderr.contains("  --> deploy.yml:6:"), "{stderr}");
    assert!(
        stderr.ends_with(
            "  = help: the flow list `[` opened at line 5, column 12 is not closed: end it with `]`\n"
        ),
        "{stderr}"
    );
}

/// Issue 10: `compose_files`, `sites.*.dir` and `migrations.dir` accepted absolute paths and `..`
/// escapes (a plan uploaded `../../../etc/shadow`): exit 2 with the location.
#[test]
fn r10_paths_outside_the_repository_are_refused_with_their_location() {
    let stderr = check_fails(&format!(
        "{HEAD}environments:\n  prod:\n    hosts: [local]\n    dir: /srv\n    compose_files: [../../../etc/shadow]\n"
    ));
    assert_eq!(
        stderr,
        "error: `../../../etc/shadow` leads outside the repository (`..`)
  --> deploy.yml:7:21
  |
7 |     compose_files: [../../../etc/shadow]
  |                     ^^^^^^^^^^^^^^^^^^^
  = help: paths in deploy.yml are relative to the repository root and stay inside it
"
    );
    let stderr = check_fails(&format!("{HEAD}migrations:\n  dir: /var/lib/migrations\n"));
    assert!(stderr.contains("--> deploy.yml:4:8"), "{stderr}");
}

/// Issue 10: values that go into argv are checked against their grammar when the manifest is
/// loaded (`--remove-orphans` as a compose service became an option; NUL was accepted).
#[test]
fn r10_argv_values_are_refused_with_their_location() {
    let stderr = check_fails(&format!(
        "{HEAD}services:\n  api:\n    compose_service: --remove-orphans\n"
    ));
    assert!(
        stderr.starts_with("error: `--remove-orphans` is not a compose service name")
            && stderr.contains("--> deploy.yml:5:22"),
        "{stderr}"
    );
}

/// Issue 10: a site's `dir` that is a symlink to a directory outside the repository would publish
/// files from outside it: exit 2 before anything is built or sent.
#[test]
fn r10_a_site_dir_symlinked_outside_the_repository_is_refused() {
    let p = Project::git();
    p.manifest(&format!(
        "{HEAD}environments:\n  prod: {{}}\nsites:\n  web:\n    project: web\n    dir: dist\n"
    ));
    std::os::unix::fs::symlink("/etc", p.path().join("dist")).unwrap();
    p.commit("site");
    let out = p
        .run(&[
            "pages",
            "--env",
            "prod",
            "--all",
            "--branch",
            "main",
            "--dry-run",
        ])
        .go();
    out.status(2)
        .stderr_has("site `web`: dir `dist` leads outside the repository (to /etc)");
}

/// Issue 10: `--image` values go into the override file and docker's argv: checked too.
#[test]
fn r10_image_flag_is_checked_against_its_grammar() {
    let p = Project::git();
    p.manifest(&format!(
        "{HEAD}environments:\n  prod:\n    hosts: [local]\n    dir: /tmp\nservices:\n  web: {{}}\n"
    ));
    p.commit("m");
    let out = p
        .run(&["up", "--env", "prod", "--image", "web=--privileged"])
        .go();
    out.status(2)
        .stderr_has("--image \"web=--privileged\": `--privileged` is not an image reference");
}

/// The last error a run printed: stderr from its last line that starts with `error:`.
fn last_error(stderr: &str) -> &str {
    let at = stderr
        .rfind("\nerror: ")
        .map(|i| i + 1)
        .or_else(|| stderr.starts_with("error: ").then_some(0))
        .unwrap_or_else(|| panic!("no error in:\n{stderr}"));
    &stderr[at..]
}

/// The errors a run printed, each from its `error:` line to the next.
fn errors(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error: ") {
            out.push(String::new());
        }
        if let Some(e) = out.last_mut() {
            e.push_str(line);
            e.push('\n');
        }
    }
    out
}

/// Issue 11: a failed command shows its exit status, the command as written and the last lines
/// of its stderr, at the `build:` entry that configured it; then the stage's tally.
#[test]
fn a_failed_command_shows_its_stderr_tail_at_its_build_entry() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nservices:\n  api:\n    paths: [\"api/**\"]\n    build: \"echo ok; echo 'cc: libfoo.h: not found' >&2; echo 'make: Error 1' >&2; exit 2\"\n",
    )
    .file("api/main.c", "int main() {}\n");
    p.commit("api");
    let out = p.run(&["build", "--all"]).go();
    out.status(1).stdout_has("FAILED (exit 2)");
    assert_eq!(
        errors(&out.stderr),
        [
            "error: build api failed (exit status 2): `echo ok; echo 'cc: libfoo.h: not found' >&2; echo 'make: Error 1' >&2; exit 2`
  --> deploy.yml:6:5
  |
6 |     build: \"echo ok; echo 'cc: libfoo.h: not found' >&2; echo 'make: Error 1' >&2; exit 2\"
  |     ^^^^^
  = stderr:
      cc: libfoo.h: not found
      make: Error 1
",
            "error: build failed for 1 of 1 unit: api\n",
        ]
    );
    // In GitHub Actions the error is annotated at that line.
    let out = p
        .run(&["build", "--all"])
        .env("GITHUB_ACTIONS", "true")
        .go();
    out.status(1)
        .stdout_has("::error file=deploy.yml,line=6,col=5::build api failed (exit status 2)");
}

/// Issue 11: a failed migration points at the `migrations:` entry, with the failing statement
/// and what the database said.
#[test]
fn a_failed_migration_points_at_its_migrations_entry() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: .\n    database: { url_env: APP_DB }\nmigrations:\n  dir: migrations\n  engine: sqlite\n",
    )
    .file("migrations/0001_init.sql", "CREATE TABLE a (id int);\n")
    .file("migrations/0002_bad.sql", "INSERT INTO nope VALUES (1);\n");
    p.commit("migrations");
    let db = p.path().join("app.db");
    let out = p
        .run(&["migrate", "--env", "dev"])
        .env("APP_DB", format!("sqlite://{}", db.display()))
        .go();
    out.status(1);
    assert_eq!(
        last_error(&out.stderr),
        "error: ./migrations/0002_bad.sql failed; it was rolled back whole; earlier migrations stay applied
  --> deploy.yml:8:1
  |
8 | migrations:
  | ^^^^^^^^^^
  = statement: INSERT INTO nope VALUES (1)
  = database: no such table: nope
"
    );
}

/// Issue 11: an error of the Cloudflare API names the site, the request and what Cloudflare
/// said, points at the site's entry and says where the failure lies.
#[test]
fn an_api_error_names_the_request_and_points_at_the_site() {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\nsites:\n  web:\n    project: shop-web\n    dir: dist\n",
        p.path().display()
    ))
    .file("dist/index.html", "<h1>hi</h1>\n");
    p.commit("site");
    let cf = FakeCloudflare::start();
    cf.always(Route::Upload, Fault::Unknown8000000);
    let out = p
        .run(&["pages", "--env", "staging", "--all", "--branch", "main"])
        .envs(cf.env())
        .env("DEPLOY_PAGES_HASH_CACHE", "off")
        .go();
    out.status(1);
    // The URL's port and the time the retries took vary.
    let shown = last_error(&out.stderr).replace(&cf.base_url(), "http://CF");
    let (before, after) = shown.split_once(" retries in ").expect("the retries");
    let shown = format!(
        "{before} retries in Xs:{}",
        after.split_once("s:").unwrap().1
    );
    assert_eq!(
        shown,
        "error: site `web`: the request failed after 5 retries in Xs: POST http://CF/pages/assets/upload: HTTP 500, code 8000000: An unknown error occurred
  --> deploy.yml:8:3
  |
8 |   web:
  |   ^^^
  = help: the failure is on Cloudflare's side: running again usually works
"
    );
}

/// The ```text block of the Markdown `doc` that contains `needle`, without the indentation of
/// a block inside a list item.
fn doc_block(doc: &str, needle: &str) -> String {
    let mut block: Option<Vec<&str>> = None;
    for line in doc.lines() {
        let fence = line.trim_start();
        match &mut block {
            None if fence == "```text" => block = Some(Vec::new()),
            Some(lines) if fence == "```" => {
                let indent = line.len() - fence.len();
                let text: String = lines
                    .iter()
                    .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
                    .collect();
                if text.contains(needle) {
                    return text;
                }
                block = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    panic!("no ```text block with {needle:?}")
}

/// The result table's `api` row with its duration (which varies) replaced.
fn without_duration(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("api     local  ") {
            Some(rest) if rest.len() >= 10 => format!("api     local  DURATION  {}\n", &rest[10..]),
            _ => format!("{l}\n"),
        })
        .collect()
}

/// Issue 11: the failed build that README.md and docs/stages.md show is what the binary prints:
/// its stderr exactly (README), the whole run with stdout and stderr together (stages.md), and
/// its annotations in GitHub Actions.
#[test]
fn the_failed_build_the_docs_show_is_what_a_user_sees() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nservices:\n  api:\n    paths: [\"services/api/**\"]\n    build: make api\n  worker:\n    build: make worker\nsites:\n  web:\n    project: shop-web\n    dir: dist\n    build: npm run build\n",
    )
    .file("Makefile", "api:\n\t@echo \"cc: libfoo.h: not found\" >&2; exit 1\n")
    .file("services/api/main.c", "int main() {}\n");
    p.commit("shop");
    let out = p.run(&["build", "--all"]).env("LC_ALL", "C").go();
    out.status(1);
    let readme = include_str!("../README.md");
    assert_eq!(out.stderr, doc_block(readme, "error: build api failed"));
    // stages.md interleaves both streams as a terminal does: each of its lines is the next line
    // of one of them, and it has every line of both.
    let stages = include_str!("../docs/stages.md");
    let whole = without_duration(&doc_block(stages, "error: build api failed"));
    let stdout = without_duration(&out.stdout);
    let (mut o, mut e) = (stdout.lines().peekable(), out.stderr.lines().peekable());
    for line in whole.lines() {
        if e.peek() == Some(&line) {
            e.next();
        } else {
            assert_eq!(
                o.next(),
                Some(line),
                "docs/stages.md:\n{whole}\n--- stdout\n{stdout}"
            );
        }
    }
    assert_eq!(
        (o.next(), e.next()),
        (None, None),
        "docs/stages.md:\n{whole}"
    );
    let out = p
        .run(&["build", "--all"])
        .env("LC_ALL", "C")
        .env("GITHUB_ACTIONS", "true")
        .go();
    out.status(1);
    let annotations: String = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        annotations,
        doc_block(stages, "::error file=deploy.yml,line=6")
    );
}

/// Issue 11: a `build: |` script of several lines made a message of several lines, and its
/// annotation ended in the middle of the quoted command. The message names it by its first line;
/// the excerpt shows the entry.
#[test]
fn r11_a_multi_line_build_script_gives_a_one_line_error_and_annotation() {
    let p = Project::git();
    p.manifest(
        "version: 1\nproject: shop\nservices:\n  api:\n    build: |\n      echo step one\n      echo 'it broke' >&2\n      exit 3\n",
    );
    p.commit("api");
    let out = p.run(&["build", "--all"]).go();
    out.status(1);
    assert_eq!(
        errors(&out.stderr)[0],
        "error: build api failed (exit status 3): `echo step one …`
  --> deploy.yml:5:5
  |
5 |     build: |
  |     ^^^^^
  = stderr: it broke
"
    );
    let out = p
        .run(&["build", "--all"])
        .env("GITHUB_ACTIONS", "true")
        .go();
    out.status(1).stdout_has(
        "::error file=deploy.yml,line=5,col=5::build api failed (exit status 3): `echo step one …`\n",
    );
}

/// Issue 11: what an error quotes from outside (a child's stderr tail, a failing statement) is
/// masked wherever the error goes: the console, the annotation, and the local audit log of
/// `migrate`, which wrote a failed migration's statement as it was.
#[test]
fn r11_a_secret_in_an_errors_notes_is_masked_on_the_console_and_in_the_audit_log() {
    const PW: &str = "s3cretpw4711";
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  dev:\n    hosts: [\"local\"]\n    dir: .\n    database: {{ url_env: APP_DB }}\n  prod:\n    database: {{ url_env: PROD_DB }}\nservices:\n  api:\n    build: \"echo 'login {PW} refused' >&2; exit 1\"\nmigrations:\n  dir: migrations\n  engine: sqlite\n"
    ))
    .file(
        "migrations/0001_bad.sql",
        &format!("INSERT INTO nope VALUES ('{PW}');\n"),
    );
    p.commit("shop");
    let prod = format!("postgres://app:{PW}@db.invalid/app");
    let out = p
        .run(&["build", "--only", "api"])
        .env("PROD_DB", &prod)
        .env("GITHUB_ACTIONS", "true")
        .go();
    out.status(1)
        .stderr_has("  = stderr: login *** refused\n")
        .stdout_has("::error file=deploy.yml,line=12,col=5::build api failed (exit status 1)");
    assert!(!out.stderr.contains(PW), "{}", out.stderr);
    let registered = format!("::add-mask::{PW}\n");
    assert!(
        !out.stdout.replacen(&registered, "", 1).contains(PW),
        "{}",
        out.stdout
    );
    let out = p
        .run(&["migrate", "--env", "dev"])
        .env("PROD_DB", &prod)
        .env(
            "APP_DB",
            format!("sqlite://{}", p.path().join("app.db").display()),
        )
        .go();
    out.status(1)
        .stderr_has("  = statement: INSERT INTO nope VALUES ('***')\n")
        .nowhere(PW);
    let audit = std::fs::read_to_string(p.path().join(".deploy-action/audit/dev.log"))
        .expect("the audit log of dev");
    assert!(audit.contains("INSERT INTO nope VALUES"), "{audit}");
    assert!(!audit.contains(PW), "{audit}");
}

/// Issue 11: a health gate that fails on `up` is an error of the gate: it names the host, the
/// service and why, says what serves, and points at the service's `health:` entry in deploy.yml,
/// on the console and in the GitHub annotation; exit 1 as before (docs/up.md).
#[test]
fn a_failed_health_gate_on_up_names_the_host_the_service_and_its_health_entry() {
    use crate::harness::services;
    use crate::up::{Stack, WEB_BROKEN, ssh_env};
    let ssh = services::var("DA_TEST_SSH_URL");
    let host = ssh.trim_start_matches("ssh://");
    let s = Stack::new("gate", &format!("\"{ssh}\""), 5);
    s.up_ssh(&["--all"]).status(0);
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
        .envs(ssh_env())
        .env("GITHUB_ACTIONS", "true")
        .go();
    out.status(1);
    let (port, container) = (s.web_port, format!("{}-web-1", s.name));
    let why = format!(
        "up failed: web rolled back (container {container} is unhealthy); the previous version is serving"
    );
    assert_eq!(
        errors(&out.stderr),
        [format!(
            "error: {host}: {why}
  --> deploy.yml:12:5
   |
12 |     health: {{ url: \"http://127.0.0.1:{port}/\", timeout: 30s, expect_status: 200 }}
   |     ^^^^^^
"
        )]
    );
    out.stdout_has(&format!(
        "::error file=deploy.yml,line=12,col=5::{host}: {why}\n"
    ));
    // docs/up.md shows this run (its port, project and host aside).
    let doc = doc_block(include_str!("../docs/up.md"), "up failed: web rolled back")
        .replace("38431", &port.to_string())
        .replace("da-up-gate-14856", &s.name)
        .replace("root@127.0.0.1:2222", host);
    assert_eq!(errors(&out.stderr), [doc]);
    assert_eq!(s.record(2)["status"], "rolled_back");
}
