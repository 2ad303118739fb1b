//! `build` and `test`: commands run in the repository root, prefixed output, the result table,
//! failures, `--keep-going`, `--dry-run`, `--json`.

use crate::harness::Project;

const MANIFEST: &str = r#"version: 1
project: shop
services:
  api:
    paths: ["services/api/**"]
    build: { command: "echo compiling api; touch api.built" }
    test: "echo api tests pass"
  broken:
    paths: ["services/broken/**"]
    build: { command: "echo about to fail >&2; exit 7" }
    test: "exit 3"
  quiet:
    paths: ["services/quiet/**"]
sites:
  web:
    project: shop-web
    dir: clients/web/dist
    build: "echo building web; touch web.built"
    paths: ["clients/web/**"]
"#;

fn repo() -> Project {
    let p = Project::git();
    p.manifest(MANIFEST)
        .file("services/api/a", "\n")
        .file("services/broken/a", "\n")
        .file("services/quiet/a", "\n")
        .file("clients/web/a", "\n");
    p.commit("shop");
    p
}

#[test]
fn build_runs_the_commands_in_the_root_with_prefixed_output_and_a_table() {
    let p = repo();
    let out = p.run(&["build", "--only", "api,quiet,web"]).go();
    out.status(0)
        .stdout_has("==> build")
        .stdout_has("api | compiling api")
        .stdout_has("web | building web")
        .stdout_has("unit   host   duration  result")
        .stdout_has("nothing to do");
    assert!(p.path().join("api.built").exists());
    assert!(p.path().join("web.built").exists());
    let table_line = |unit: &str| {
        out.stdout
            .lines()
            .rev()
            .find(|l| l.starts_with(&format!("{unit} ")))
            .unwrap_or_else(|| panic!("no row for {unit}:\n{}", out.stdout))
            .to_string()
    };
    assert!(table_line("api").ends_with("ok"));
    assert!(table_line("quiet").ends_with("nothing to do"));
}

#[test]
fn a_failed_build_is_exit_1_and_stops_the_rest() {
    let p = repo();
    let out = p.run(&["build", "--all"]).go();
    out.status(1)
        .stderr_has("broken | about to fail")
        .stderr_has("build broken failed (exit status 7): `echo about to fail >&2; exit 7`")
        .stdout_has("FAILED (exit 7)")
        .stdout_has("skipped (an earlier unit failed)");
    assert!(p.path().join("api.built").exists(), "api ran before broken");
    assert!(!p.path().join("web.built").exists(), "web never ran");
}

#[test]
fn keep_going_runs_every_unit_and_still_fails() {
    let p = repo();
    let out = p.run(&["build", "--all", "--keep-going"]).go();
    out.status(1).stdout_has("FAILED (exit 7)");
    assert!(!out.stdout.contains("skipped"), "{}", out.stdout);
    assert!(
        p.path().join("web.built").exists(),
        "web ran after the failure"
    );
}

#[test]
fn dry_run_prints_the_commands_and_runs_nothing() {
    let p = repo();
    let out = p.run(&["build", "--all", "--dry-run"]).go();
    out.status(0)
        .stdout_has("api: would run: sh -c 'echo compiling api; touch api.built'")
        .stdout_has("broken: would run: sh -c 'echo about to fail >&2; exit 7'")
        .stdout_has("dry run");
    assert!(!p.path().join("api.built").exists());
    assert!(!p.path().join("web.built").exists());
}

#[test]
fn test_runs_the_test_commands() {
    let p = repo();
    p.run(&["test", "--only", "api"])
        .go()
        .status(0)
        .stdout_has("==> test")
        .stdout_has("api | api tests pass");
    p.run(&["test", "--only", "broken"])
        .go()
        .status(1)
        .stdout_has("FAILED (exit 3)");
    // Sites have no test: nothing to do.
    p.run(&["test", "--only", "web"])
        .go()
        .status(0)
        .stdout_has("nothing to do");
}

#[test]
fn json_lists_every_result() {
    let p = repo();
    let out = p.run(&["build", "--all", "--keep-going", "--json"]).go();
    out.status(1);
    let doc = out.json();
    assert_eq!(doc["stage"], "build");
    let results = doc["results"].as_array().unwrap();
    let by_unit = |u: &str| results.iter().find(|r| r["unit"] == u).unwrap().clone();
    assert_eq!(by_unit("api")["result"], "ok");
    assert_eq!(by_unit("broken")["result"], "failed");
    assert_eq!(by_unit("broken")["exit_code"], 7);
    assert_eq!(by_unit("quiet")["result"], "nothing_to_do");
    assert_eq!(by_unit("web")["result"], "ok");
    // Relayed output and the table went to stderr.
    assert!(out.stderr.contains("api | compiling api"));
}

#[test]
fn build_follows_changes_when_no_unit_is_named() {
    let p = repo();
    p.file("clients/web/b", "\n");
    p.commit("web only");
    let out = p.run(&["build"]).go();
    out.status(0).stdout_has("web | building web");
    assert!(!out.stdout.contains("api |"));
    assert!(!p.path().join("api.built").exists());
}

/// A command that prints workflow commands after a bare CR (and the legacy syntax, and behind a
/// cursor movement), as a hostile dependency's build script could.
const FORGE: &str = r"printf 'ok\r::add-mask::PLANTED\n50%%\r::warning::FORGED\nx ##[error]FORGED\n\033[1G::add-mask::PLANTED\n'";

#[test]
fn r10_workflow_command_injection_from_build_and_test_output_is_defused() {
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nservices:\n  api:\n    build: {{ command: {FORGE:?} }}\n    test: {FORGE:?}\n"
    ));
    p.commit("forge");
    for stage in ["build", "test"] {
        for json in [false, true] {
            let mut args = vec![stage, "--all"];
            if json {
                args.push("--json");
            }
            let out = p.run(&args).env("GITHUB_ACTIONS", "true").go();
            out.status(0);
            crate::harness::runner::assert_no_forged(&out.stdout, &out.stderr, "PLANTED");
            crate::harness::runner::assert_no_forged(&out.stdout, &out.stderr, "FORGED");
            // The text itself is relayed (not dropped), each piece with the unit prefix.
            let relayed = if json { &out.stderr } else { &out.stdout };
            assert!(relayed.contains("api | ::add-mask::PLANTED"), "{relayed}");
            assert!(relayed.contains("api | ::warning::FORGED"), "{relayed}");
        }
    }
}

#[test]
fn r10_build_children_do_not_inherit_the_tool_secrets_unless_the_unit_opts_in() {
    let p = Project::git();
    let show = "for v in CLOUDFLARE_API_TOKEN GITHUB_TOKEN DEPLOY_SSH_KEY STAGING_DATABASE_URL ACTIONS_RUNTIME_TOKEN; do printenv $v | rev; done; echo done-$PLAIN_VAR";
    p.manifest(&format!(
        r#"version: 1
project: shop
environments:
  staging:
    hosts: [local]
    dir: /tmp
    database: {{ url_env: STAGING_DATABASE_URL }}
services:
  api:
    build: {{ command: "{show}" }}
    test: "{show}"
  deployer:
    build: {{ command: "{show}" }}
    env: [CLOUDFLARE_API_TOKEN]
sites:
  web:
    project: shop-web
    dir: dist
    build: "{show}; exit 9"
"#
    ));
    p.commit("env");
    let secrets = [
        ("CLOUDFLARE_API_TOKEN", "cf-token-r10-0123456789"),
        ("GITHUB_TOKEN", "ghs_r10_abcdefghijklmnop"),
        ("DEPLOY_SSH_KEY", "not-a-key-r10-qrstuvwxyz"),
        ("STAGING_DATABASE_URL", "postgres://u:db-pw-r10-xyz@h/db"),
        ("ACTIONS_RUNTIME_TOKEN", "runtime-r10-token-9876"),
    ];
    let reversed = |s: &str| s.chars().rev().collect::<String>();
    let with_secrets = |r: crate::harness::Run| {
        r.envs(secrets.iter().map(|(k, v)| (*k, v.to_string())))
            .env("PLAIN_VAR", "kept")
    };
    let out = with_secrets(p.run(&["build", "--only", "api,deployer"])).go();
    out.status(0)
        .stdout_has("api | done-kept")
        .stdout_has("deployer | done-kept");
    // The unit that opted in sees its one variable; nothing else reaches either unit.
    out.stdout_has(&format!(
        "deployer | {}",
        reversed("cf-token-r10-0123456789")
    ));
    for (name, value) in secrets {
        if name != "CLOUDFLARE_API_TOKEN" {
            out.nowhere(&reversed(value));
        }
    }
    assert!(
        !out.stdout
            .contains(&format!("api | {}", reversed("cf-token-r10-0123456789"))),
        "{}",
        out.stdout
    );

    let out = with_secrets(p.run(&["test", "--only", "api"])).go();
    out.status(0).stdout_has("api | done-kept");
    for (_, value) in secrets {
        out.nowhere(&reversed(value));
    }

    // The Pages build runs scrubbed too (it fails before any request, so no API is needed).
    let out = with_secrets(p.run(&["pages", "--env", "staging", "--only", "web"])).go();
    out.status(1).stdout_has("web | done-kept");
    for (_, value) in secrets {
        out.nowhere(&reversed(value));
    }
}
