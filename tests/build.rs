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
        .stderr_has("build broken failed with exit code 7")
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
