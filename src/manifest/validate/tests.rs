//! Tests of whole manifests through [`crate::manifest::parse`], and the helpers the modules' own
//! tests share: [`parse`] and [`fail`], which returns an error's line, column, message and help.

use crate::diag::Source;
use crate::manifest::*;
use std::time::Duration;

type Result<T> = std::result::Result<T, ManifestError>;

const FULL: &str = include_str!("../../../examples/deploy.full.yml");

pub(super) fn parse(text: &str) -> Result<Manifest> {
    crate::manifest::parse(Source::new("deploy.yml", text))
}

#[test]
fn full_example_parses() {
    let m = parse(FULL).unwrap();
    assert_eq!(m.project, "shop");
    assert_eq!(m.environments.len(), 3);
    let prod = &m.environments["production"];
    assert_eq!(prod.approval, Approval::Required);
    assert_eq!(prod.compose_project, "shop");
    assert_eq!(prod.keep_releases, 5);
    assert_eq!(
        prod.hosts[1],
        Host::Ssh {
            user: "deploy".into(),
            host: "2001:db8::10".into(),
            port: 2222
        }
    );
    assert!(matches!(
        prod.database,
        Some(Database::ComposeService {
            engine: Engine::Postgres,
            ..
        })
    ));
    assert_eq!(m.environments["dev"].hosts, vec![Host::Local]);
    let api = &m.services["api"];
    assert_eq!(
        api.health.as_ref().unwrap().timeout,
        Duration::from_secs(90)
    );
    assert!(matches!(
        m.services["worker"].build,
        Some(Build::Command { .. })
    ));
    assert_eq!(
        m.services["worker"].health.as_ref().unwrap().expect_status,
        200
    );
    assert_eq!(m.sites["web"].production_branch, "main");
    assert_eq!(m.units().len(), 6);
    let prod = &m.environments["production"];
    assert_eq!(prod.min_approvals, 2);
    assert!(!prod.allow_self_approval);
    assert_eq!(prod.branches, ["main", "release/*"]);
    assert_eq!(prod.secrets, ["SENTRY_DSN"]);
    assert_eq!(m.services["api"].secrets, ["API_KEY", "PAYMENT_TOKEN"]);
    assert_eq!(m.services["cache"].pull, Pull::Missing);
    assert_eq!(m.services["api"].pull, Pull::Always);
}

#[test]
fn unknown_key_has_location_and_suggestion() {
    let text = "version: 1\nproject: shop\nenvironments:\n  staging:\n    hsots: [local]\n";
    let e = parse(text).unwrap_err();
    let s = e.span.unwrap();
    assert_eq!((s.line, s.col), (5, 5));
    assert_eq!(e.help.as_deref(), Some("did you mean `hosts`?"));
}

pub(super) const HEAD: &str = "version: 1\nproject: shop\n";

/// Parses HEAD + `body`, expects an error, returns (line, col, message, help).
pub(super) fn fail(body: &str) -> (u32, u32, String, Option<String>) {
    let text = format!("{HEAD}{body}");
    let e = parse(&text).expect_err("expected an error");
    let s = e.span.unwrap_or_else(|| panic!("no span: {}", e.message));
    assert!(e.source.is_some());
    (s.line, s.col, e.message, e.help)
}

#[test]
fn yaml_syntax_error() {
    let (l, c, m, _) = fail("environments:\n  staging: {hosts: [local}\n");
    assert!(m.starts_with("YAML syntax error"), "{m}");
    assert_eq!(l, 4);
    assert!(c > 1);
}

#[test]
fn tab_indentation() {
    let (l, c, m, h) = fail("environments:\n  staging:\n\t  dir: /srv\n");
    assert_eq!((l, c), (5, 1));
    assert!(m.contains("tab is used for indentation"), "{m}");
    assert_eq!(h.as_deref(), Some("replace the tab with spaces"));
}

#[test]
fn duplicate_key() {
    let (l, c, m, _) = fail("environments:\n  s: {}\nenvironments:\n  t: {}\n");
    assert_eq!((l, c), (5, 1));
    assert!(m.contains("first defined on line 3"), "{m}");
}

#[test]
fn unknown_keys_suggest_per_mapping() {
    let (l, c, m, h) =
        fail("environments:\n  s: {}\nservices:\n  api:\n    helth: {url: http://x}\n");
    assert_eq!((l, c), (7, 5));
    assert_eq!(m, "unknown key `helth` in service `api`");
    assert_eq!(h.as_deref(), Some("did you mean `health`?"));
    let (l, c, _, h) = fail("environment:\n  s: {}\n");
    assert_eq!((l, c), (3, 1));
    assert_eq!(h.as_deref(), Some("did you mean `environments`?"));
    let (_, _, _, h) = fail("environments:\n  s: {zzzzzz: 1}\n");
    assert!(h.unwrap().starts_with("valid keys here: hosts, dir"));
    let (_, _, m, h) = fail(
        "environments:\n  s: {}\nsites:\n  web: {project: p, dir: d, production_brnach: main}\n",
    );
    assert!(m.contains("site `web`"));
    assert_eq!(h.as_deref(), Some("did you mean `production_branch`?"));
}

#[test]
fn missing_required_key() {
    let (l, c, m, h) = fail("environments:\n  s: {}\nsites:\n  web: {project: p}\n");
    assert_eq!((l, c), (6, 3));
    assert_eq!(m, "missing required key `dir` in site `web`");
    assert!(h.unwrap().starts_with("add `dir:`"));
    let e = crate::manifest::parse(Source::new("deploy.yml", "version: 1\nenvironments: {}\n"))
        .unwrap_err();
    assert_eq!(e.message, "missing required key `project` in the manifest");
}

#[test]
fn unsupported_version() {
    let e = parse("version: 2\nproject: p\nenvironments: {}\n").unwrap_err();
    let s = e.span.unwrap();
    assert_eq!((s.line, s.col), (1, 10));
    assert!(e.message.contains("unsupported manifest version 2"));
    let e = parse("version: \"1\"\nproject: p\nenvironments: {}\n").unwrap_err();
    assert!(
        e.message.contains("expected the number 1, found a string"),
        "{}",
        e.message
    );
}

#[test]
fn unit_names() {
    let (l, c, m, _) =
        fail("environments:\n  s: {}\nservices:\n  web: {}\nsites:\n  web: {project: p, dir: d}\n");
    assert_eq!((l, c), (8, 3));
    assert!(m.contains("used twice (first on line 6)"), "{m}");
    let (l, c, m, _) = fail("environments:\n  s: {}\nsites:\n  migrations: {project: p, dir: d}\n");
    assert_eq!((l, c), (6, 3));
    assert!(m.contains("reserved"));
    let (_, _, m, _) = fail("environments:\n  \"bad name\": {}\n");
    assert!(m.contains("invalid environment name"));
}

/// Issue 10: `compose_files`, `sites.*.dir` and `migrations.dir` accepted absolute paths and
/// `..` escapes (a plan uploaded `../../../etc/shadow`).
#[test]
fn r10_repository_paths_must_be_relative_and_stay_inside() {
    let env = "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n";
    let (l, c, m, h) = fail(&format!(
        "{env}    compose_files: [compose.yml, ../../../etc/shadow]\n"
    ));
    assert_eq!((l, c), (7, 34));
    assert!(m.contains("leads outside the repository"), "{m}");
    assert!(h.unwrap().contains("relative to the repository root"));
    let (l, _, m, _) = fail(&format!("{env}    compose_files: [/etc/shadow]\n"));
    assert_eq!(l, 7);
    assert!(m.contains("absolute"), "{m}");
    let (l, c, m, _) = fail("sites:\n  web:\n    project: web\n    dir: /etc\n");
    assert_eq!((l, c), (6, 10));
    assert!(m.contains("absolute"), "{m}");
    let (l, _, m, _) = fail("sites:\n  web:\n    project: web\n    dir: dist/../..\n");
    assert_eq!(l, 6);
    assert!(m.contains("outside"), "{m}");
    let (l, _, m, _) = fail("migrations:\n  dir: ../other/migrations\n");
    assert_eq!(l, 4);
    assert!(m.contains("outside"), "{m}");
    let (l, _, m, _) = fail("services:\n  api:\n    build: { context: ../.., image: shop/api }\n");
    assert_eq!(l, 5);
    assert!(m.contains("outside"), "{m}");
    // Inside, after `..`: fine; and the repository root is a valid build context.
    parse(&format!(
        "{HEAD}{env}    compose_files: [deploy/../compose.yml]\nservices:\n  api:\n    build: {{ context: ., image: shop/api }}\n"
    ))
    .unwrap();
}

/// Issue 10: `compose_service`, `image`, `compose_project`, the database user and similar
/// values went into argv unchecked (`--remove-orphans` became an option; NUL was accepted).
#[test]
fn r10_argv_values_are_checked_against_their_grammar() {
    let (l, c, m, _) = fail("services:\n  api:\n    compose_service: --remove-orphans\n");
    assert_eq!((l, c), (5, 22));
    assert!(m.contains("not a compose service name"), "{m}");
    let (l, _, m, _) = fail("services:\n  api:\n    compose_service: \"a\\0b\"\n");
    assert_eq!(l, 5);
    assert!(m.contains("not a compose service name"), "{m}");
    let (l, _, m, _) =
        fail("services:\n  api:\n    build: { context: api, image: \"--privileged\" }\n");
    assert_eq!(l, 5);
    assert!(m.contains("not an image name"), "{m}");
    let (l, _, m, _) = fail(
        "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n    compose_project: \"-f\"\n",
    );
    assert_eq!(l, 7);
    assert!(m.contains("not a compose project name"), "{m}");
    let (l, _, m, _) = fail(
        "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n    database: { compose_service: db, engine: postgres, user: \"-U\", name: app }\n",
    );
    assert_eq!(l, 7);
    assert!(m.contains("not a database identifier"), "{m}");
    let (l, _, m, _) = fail("sites:\n  web:\n    project: \"--branch=x\"\n    dir: d\n");
    assert_eq!(l, 5);
    assert!(m.contains("Pages project"), "{m}");
    let (l, _, m, _) = fail("environments:\n  s:\n    hosts: [local]\n    dir: \"-rf\"\n");
    assert_eq!(l, 6);
    assert!(m.contains("option"), "{m}");
    // The default compose project is the project name: checked when there are hosts.
    let e = parse(
        "version: 1\nproject: Shop\nenvironments:\n  s:\n    hosts: [local]\n    dir: /srv\n",
    )
    .unwrap_err();
    assert!(
        e.message.contains("needs a `compose_project`"),
        "{}",
        e.message
    );
    assert_eq!(e.help.as_deref(), Some("add e.g. compose_project: shop"));
}

#[test]
fn defaults() {
    let m = parse(&format!("{HEAD}environments:\n  s:\nservices:\n  api:\n    build: {{context: a, image: i}}\n    health: {{url: \"http://x\"}}\nsites:\n  web: {{project: p, dir: d}}\nmigrations: {{dir: db/migrations/}}\n")).unwrap();
    let s = &m.environments["s"];
    assert_eq!(
        (s.approval, s.backup, s.keep_releases),
        (Approval::None, BackupPolicy::Auto, 5)
    );
    assert_eq!(s.compose_project, "shop");
    assert!(s.hosts.is_empty());
    let api = &m.services["api"];
    assert_eq!(api.compose_service, "api");
    assert!(
        matches!(&api.build, Some(Build::Docker { dockerfile, .. }) if dockerfile == "Dockerfile")
    );
    let h = api.health.as_ref().unwrap();
    assert_eq!((h.timeout, h.expect_status), (Duration::from_secs(60), 200));
    assert_eq!(h.stable, None, "the default window is the deploy runner's");
    // A worker with no HTTP endpoint can still set its window.
    let windowed = parse(&format!(
        "{HEAD}environments:\n  s:\nservices:\n  worker:\n    health: {{stable: 1500ms}}\n"
    ))
    .unwrap();
    let h = windowed.services["worker"].health.as_ref().unwrap();
    assert_eq!(
        (h.stable, h.url.as_deref()),
        (Some(Duration::from_millis(1500)), None)
    );
    assert_eq!(m.sites["web"].production_branch, "main");
    let mig = m.migrations.as_ref().unwrap();
    assert_eq!(mig.engine, Engine::Sqlite);
    assert_eq!(mig.paths, vec!["db/migrations/**".to_string()]);
}

/// Truncations and byte mutations of the full example: parse() returns, never panics.
#[test]
fn never_panics_on_mangled_input() {
    let text = FULL;
    let mut cuts: Vec<usize> = (0..text.len()).step_by(5).collect();
    cuts.push(text.len());
    for cut in cuts {
        if text.is_char_boundary(cut) {
            let _ = parse(&text[..cut]);
        }
    }
    let replacements: [&str; 14] = [
        "\t", ":", "-", "[", "]", "{", "}", "&a ", "*a", "\"", "'", "\n", "é", "|",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..800 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut pos = (seed % text.len() as u64) as usize;
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        let rep = replacements[(seed >> 32) as usize % replacements.len()];
        let mutated = format!("{}{}{}", &text[..pos], rep, &text[pos..]);
        match parse(&mutated) {
            Ok(_) => {}
            Err(e) => {
                // Every error renders without panicking, with a location when it has a span.
                let out = e.render(false);
                assert!(out.starts_with("error: "));
            }
        }
    }
}

#[test]
fn env_lists_variable_names_of_services_and_sites() {
    let m = parse(&format!(
        "{HEAD}services:\n  api: {{env: [GITHUB_TOKEN, _X1]}}\nsites:\n  web: {{project: w, dir: d, env: [CLOUDFLARE_API_TOKEN]}}\n"
    ))
    .unwrap();
    assert_eq!(m.services["api"].env, ["GITHUB_TOKEN", "_X1"]);
    assert_eq!(m.sites["web"].env, ["CLOUDFLARE_API_TOKEN"]);
    let (l, c, m, h) = fail("services:\n  api:\n    env: [OK, \"NOT-A-VAR\"]\n");
    assert_eq!((l, c), (5, 15));
    assert!(
        m.contains("`NOT-A-VAR` is not the name of an environment variable"),
        "{m}"
    );
    assert!(h.unwrap().contains("CLOUDFLARE_API_TOKEN"));
    let (l, c, m, _) = fail("sites:\n  web: {project: w, dir: d, env: [\"1X\"]}\n");
    assert_eq!((l, c), (4, 35));
    assert!(m.contains("`1X`"), "{m}");
    let (_, _, m, _) = fail("services:\n  api: {env: GITHUB_TOKEN}\n");
    assert!(m.contains("expected a list of strings"), "{m}");
}
