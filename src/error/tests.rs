//! The rendering of each kind of error, and the exit code each maps to.

use super::*;
use crate::diag::Source;

const YAML: &str = "version: 1\nproject: shop\nservices:\n  api:\n    build: make api\n    health:\n      url: http://127.0.0.1:3000/health\n";

/// The span of the first `needle` in [`YAML`].
fn at(needle: &str) -> Option<Span> {
    let offset = YAML.find(needle)?;
    let line = YAML[..offset].matches('\n').count() as u32 + 1;
    let start = YAML[..offset].rfind('\n').map_or(0, |i| i + 1);
    Some(Span {
        offset,
        len: needle.len(),
        line,
        col: (offset - start) as u32 + 1,
    })
}

fn source() -> Source {
    Source::new("deploy.yml", YAML)
}

#[test]
fn a_failed_command_shows_its_status_its_stderr_tail_and_its_build_entry() {
    let e: Error = CommandFailure::new("local", "build api", &Cmd::shell("make api"))
        .unit("api")
        .status(2)
        .stderr("make: *** No rule to make target 'api'.  Stop.")
        .origin(at("build"))
        .into();
    assert_eq!(e.exit(), Exit::StageFailed);
    assert_eq!(
        e.render(Some(&source()), false),
        "error: build api failed (exit status 2): `make api`
  --> deploy.yml:5:5
  |
5 |     build: make api
  |     ^^^^^
  = stderr: make: *** No rule to make target 'api'.  Stop.
"
    );
    assert_eq!(
        e.location(Some(&source())),
        Some(("deploy.yml".to_string(), 5, 5))
    );
    // Without the manifest's text: the message and the tail, no excerpt.
    assert_eq!(
        e.render(None, false),
        "error: build api failed (exit status 2): `make api`\n  = stderr: make: *** No rule to make target 'api'.  Stop.\n"
    );
    assert_eq!(e.location(None), None);
}

#[test]
fn a_command_on_a_host_names_it_and_one_that_could_not_start_says_why() {
    let cmd = Cmd::new("docker").arg("load");
    let e: Error = CommandFailure::new("deploy@h:22", "docker load", &cmd)
        .status(1)
        .stderr("line 1\nline 2")
        .into();
    assert_eq!(
        e.to_string(),
        "deploy@h:22: docker load failed (exit status 1): `docker load`\n  stderr:\n    line 1\n    line 2"
    );
    assert_eq!(e.host(), Some("deploy@h:22"));
    let e: Error = CommandFailure::new("local", "test api", &Cmd::shell("cargo test"))
        .stderr("local: cannot start `sh`: No such file or directory")
        .into();
    assert_eq!(
        e.to_string(),
        "test api could not start: `cargo test`\n  cause: local: cannot start `sh`: No such file or directory"
    );
}

#[test]
fn a_failed_health_gate_points_at_the_health_entry() {
    let e: Error = GateFailure::new("api: not healthy within 60s (HTTP 503)")
        .host("deploy@h:22")
        .unit("api")
        .origin(at("health"))
        .help("the previous version is serving")
        .into();
    assert_eq!(
        e.render(Some(&source()), false),
        "error: deploy@h:22: api: not healthy within 60s (HTTP 503)
  --> deploy.yml:6:5
  |
6 |     health:
  |     ^^^^^^
  = help: the previous version is serving
"
    );
    assert_eq!(e.unit(), Some("api"));
}

#[test]
fn an_api_error_gives_help_by_its_status() {
    let e: Error = RemoteFailure::new(
        "Cloudflare",
        "site `web`",
        "POST https://api.cloudflare.com/x: HTTP 503: unavailable",
    )
    .status(Some(503))
    .into();
    assert_eq!(
        e.render(None, false),
        "error: site `web`: POST https://api.cloudflare.com/x: HTTP 503: unavailable
  = help: the failure is on Cloudflare's side: running again usually works
"
    );
    let refused: Error = RemoteFailure::new("GitHub", "cannot list the tags", "HTTP 403")
        .status(Some(403))
        .into();
    assert!(
        refused
            .render(None, false)
            .contains("= help: GitHub refused the credentials or what they may do"),
        "{}",
        refused.render(None, false)
    );
    // No status (0: no answer came), no guess.
    let e: Error = RemoteFailure::new("Cloudflare", "", "lost")
        .status(Some(0))
        .into();
    assert_eq!(e.render(None, false), "error: lost\n");
}

#[test]
fn a_record_that_cannot_be_written_names_the_host_the_file_and_the_stderr() {
    let e: Error = RecordFailure::new(
        "deploy@h:22",
        "write release record 7",
        "/srv/shop/.deploy-action/releases/7.json",
    )
    .stderr("mv: cannot move: No space left on device")
    .into();
    assert_eq!(
        e.to_string(),
        "deploy@h:22: cannot write release record 7 (/srv/shop/.deploy-action/releases/7.json)\n  stderr: mv: cannot move: No space left on device"
    );
    assert_eq!(e.exit(), Exit::StageFailed);
}

#[test]
fn a_failed_migration_shows_the_statement_and_the_database_message() {
    let e: Error = MigrationFailure {
        file: "migrations/0002_b.sql".into(),
        aftermath: "it was rolled back whole; earlier migrations stay applied".into(),
        statement: Some("INSERT INTO nope VALUES (1)".into()),
        database: "relation \"nope\" does not exist".into(),
        origin: at("services"),
    }
    .into();
    let shown = e.render(Some(&source()), false);
    assert!(shown.starts_with("error: migrations/0002_b.sql failed; it was rolled back whole; earlier migrations stay applied\n  --> deploy.yml:3:1\n"), "{shown}");
    assert!(
        shown.ends_with(
            "  = statement: INSERT INTO nope VALUES (1)\n  = database: relation \"nope\" does not exist\n"
        ),
        "{shown}"
    );
    assert_eq!(e.unit(), Some("migrations"));
}

#[test]
fn tallies_cancellations_and_bugs() {
    let e = Error::Failed {
        stage: "exec".into(),
        failed: vec!["a".into(), "b".into()],
        of: 3,
        noun: Noun::Host,
    };
    assert_eq!(e.to_string(), "exec failed on 2 of 3 hosts: a, b");
    let e = Error::Failed {
        stage: "build".into(),
        failed: vec!["api".into()],
        of: 1,
        noun: Noun::Unit,
    };
    assert_eq!(e.to_string(), "build failed for 1 of 1 unit: api");
    let e = Error::Cancelled {
        host: Some("local".into()),
        reason: "cancelled by SIGTERM".into(),
        consequence: "nothing was changed".into(),
    };
    assert_eq!(e.to_string(), "cancelled by SIGTERM; nothing was changed");
    let e = Error::Bug("pages: step x is not a pages step".into());
    assert_eq!(
        e.render(None, false),
        "error: pages: step x is not a pages step (a bug: please report it)\n  = help: deploy-action went wrong, not your deploy: please report it\n"
    );
}

#[test]
fn each_kind_has_its_exit_code() {
    let io = std::io::Error::other("disk full");
    let cases: Vec<(Error, u8)> = vec![
        (Error::usage("x"), 2),
        (Error::io("cannot write x", None, &io), 1),
        (Error::Bug("b".into()), 1),
        // A stage stopped by any error fails: a lock error from a host's check is exit 1 too.
        (
            Error::LockHeld("l".into()).aftermath("no host was changed"),
            1,
        ),
        (Error::usage("u").aftermath(""), 1),
        (Error::Approval("a".into()), 3),
        (Error::LockHeld("l".into()), 4),
        (GateFailure::new("g").into(), 1),
        (RemoteFailure::new("GitHub", "w", "m").into(), 1),
    ];
    for (e, code) in cases {
        assert_eq!(e.exit().code(), code, "{e:?}");
    }
}

#[test]
fn what_an_error_says_wins_over_what_the_step_fills_in() {
    let mine = at("health");
    let e: Error = GateFailure::new("g").unit("api").origin(mine).into();
    let e = e.within(Some("web"), at("build"));
    assert_eq!((e.unit(), e.origin()), (Some("api"), mine));
    let e: Error = RemoteFailure::new("Cloudflare", "w", "m").into();
    let e = e.within(Some("web"), at("build"));
    assert_eq!((e.unit(), e.origin()), (Some("web"), at("build")));
    // Errors without a place keep none.
    let e = Error::usage("u").within(Some("web"), at("build"));
    assert_eq!((e.unit(), e.origin()), (None, None));
}

#[test]
fn colour_is_passed_in() {
    let e: Error = GateFailure::new("g").into();
    assert!(e.render(None, true).contains("\x1b["));
    assert!(!e.render(None, false).contains('\x1b'));
}

#[test]
fn a_multi_line_script_is_named_by_its_first_line() {
    let script = "echo step one\n\n  echo 'it broke' >&2\nexit 3\n";
    let e: Error = CommandFailure::new("local", "build api", &Cmd::shell(script))
        .status(3)
        .stderr("it broke")
        .into();
    assert_eq!(
        e.render(None, false),
        "error: build api failed (exit status 3): `echo step one …`\n  = stderr: it broke\n"
    );
    assert_eq!(
        e.to_string(),
        "build api failed (exit status 3): `echo step one …`\n  stderr: it broke"
    );
    // A script of one line (a `|` block ends with a newline) is shown whole.
    let e: Error = CommandFailure::new("local", "build api", &Cmd::shell("make api\n"))
        .status(2)
        .into();
    assert_eq!(
        e.to_string(),
        "build api failed (exit status 2): `make api`"
    );
}

#[test]
fn a_long_command_is_cut_in_the_message_and_in_its_display() {
    let script = format!("echo {}", "x".repeat(100_000));
    let e: Error = CommandFailure::new("local", "build api", &Cmd::shell(&script))
        .status(1)
        .into();
    for shown in [e.render(None, false), e.to_string()] {
        assert!(shown.len() < 200, "{} bytes", shown.len());
        assert!(shown.contains("`echo xxx"), "{shown}");
        assert!(shown.contains('…'), "{shown}");
    }
}

#[test]
fn a_record_on_this_machine_does_not_name_it() {
    let e: Error = RecordFailure::new("local", "remove the dev lock", "/srv/.deploy-action/lock")
        .stderr("rm: Permission denied")
        .into();
    assert_eq!(
        e.to_string(),
        "cannot remove the dev lock (/srv/.deploy-action/lock)\n  stderr: rm: Permission denied"
    );
}

/// One value of every variant.
fn one_of_each() -> Vec<Error> {
    let exec = |host: &str| ExecError::Connect {
        host: host.into(),
        message: "refused".into(),
    };
    vec![
        Error::usage("u"),
        Error::Manifest(ManifestError::unsupported("m")),
        CommandFailure::new("local", "build api", &Cmd::shell("make")).into(),
        RemoteFailure::new("GitHub", "w", "m").into(),
        RecordFailure::new("h", "write x", "/x").into(),
        GateFailure::new("g").into(),
        MigrationFailure::default().into(),
        Error::io("cannot read x", None, &std::io::Error::other("gone")),
        Error::Cancelled {
            host: None,
            reason: "cancelled by SIGINT".into(),
            consequence: "nothing was changed".into(),
        },
        Error::Failed {
            stage: "build".into(),
            failed: vec!["api".into()],
            of: 2,
            noun: Noun::Unit,
        },
        Error::Bug("b".into()),
        Error::Bug("b".into()).aftermath("later hosts were not touched"),
        Error::Approval("a".into()),
        Error::LockHeld("l".into()),
        Error::Exec(exec("deploy@h:22")),
        Error::Other(anyhow::anyhow!("o")),
    ]
}

/// The exit codes of DESIGN.md, stated here apart from [`Error::exit`]. The match is exhaustive: a
/// new variant does not compile until it is given its code here too.
#[test]
fn every_variant_has_the_exit_code_of_the_contract() {
    for e in one_of_each() {
        let contract = match &e {
            Error::Usage { .. } | Error::Manifest(_) => 2,
            Error::Approval(_) => 3,
            Error::LockHeld(_) => 4,
            Error::Command(_)
            | Error::Remote(_)
            | Error::Record(_)
            | Error::Gate(_)
            | Error::Migration(_)
            | Error::Io { .. }
            | Error::Cancelled { .. }
            | Error::Failed { .. }
            | Error::Bug(_)
            | Error::Aftermath { .. }
            | Error::Exec(_)
            | Error::Other(_) => 1,
        };
        assert_eq!(e.exit().code(), contract, "{e:?}");
    }
}

/// `render` (the console) and `Display` (logs, audit lines, deployment statuses) say the same
/// first line, and neither is empty, for every variant.
#[test]
fn every_variant_renders_the_same_first_line_both_ways() {
    for e in one_of_each() {
        let shown = e.render(None, false);
        let plain = e.to_string();
        let first = plain.lines().next().unwrap_or_default();
        assert!(!first.trim().is_empty(), "{e:?}");
        assert_eq!(
            shown.lines().next(),
            Some(format!("error: {first}").as_str()),
            "{e:?}"
        );
    }
}

#[test]
fn an_aftermath_follows_the_message_and_the_error_keeps_its_place() {
    let e: Error = CommandFailure::new(
        "deploy@h:22",
        "pulling r/web:1 for web",
        &Cmd::new("docker").args(["compose", "pull", "web"]),
    )
    .unit("web")
    .status(18)
    .stderr("manifest unknown")
    .origin(at("build"))
    .into();
    let e = e
        .aftermath("nothing was deployed on this host")
        .aftermath("later hosts were not touched");
    assert_eq!(
        e.to_string(),
        "deploy@h:22: pulling r/web:1 for web failed (exit status 18): `docker compose pull web`; nothing was deployed on this host; later hosts were not touched\n  stderr: manifest unknown"
    );
    assert_eq!(
        (e.host(), e.unit(), e.origin(), e.exit()),
        (
            Some("deploy@h:22"),
            Some("web"),
            at("build"),
            Exit::StageFailed
        )
    );
    assert_eq!(
        e.location(Some(&source())),
        Some(("deploy.yml".to_string(), 5, 5))
    );
    // Nothing to add: the error as it was (exit 1 still).
    let e = Error::Approval("approve it".into()).aftermath("");
    assert_eq!(
        (e.to_string().as_str(), e.exit()),
        ("approve it", Exit::StageFailed)
    );
    // What the step fills in reaches the error inside.
    let e = Error::from(GateFailure::new("g"))
        .aftermath("x")
        .within(Some("api"), at("health"));
    assert_eq!((e.unit(), e.origin()), (Some("api"), at("health")));
}

#[test]
fn a_command_whose_output_cannot_be_read_says_so_and_why() {
    let e: Error = CommandFailure::new(
        "local",
        "listing the containers",
        &Cmd::new("docker").arg("inspect"),
    )
    .status(0)
    .stderr("docker inspect: expected value at line 1 column 1")
    .into();
    assert_eq!(
        e.render(None, false),
        "error: listing the containers gave output that cannot be read: `docker inspect`\n  = cause: docker inspect: expected value at line 1 column 1\n"
    );
}
