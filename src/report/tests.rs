//! Tests of the reporting facade with a recording sink and temporary runtime files.

use super::*;

fn gha_files() -> (tempfile::TempDir, Gha, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("output");
    let sum = dir.path().join("summary");
    let g = Gha::with_files(Some(out.clone()), Some(sum.clone()));
    (dir, g, out, sum)
}

use std::path::PathBuf;

fn lines(r: &Report) -> Vec<String> {
    r.printed().into_iter().map(|(_, l)| l).collect()
}

#[test]
fn add_mask_goes_out_once_and_secrets_are_redacted() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.add_secret("s3cr3t-value");
    r.add_secret("s3cr3t-value");
    r.info("token is s3cr3t-value");
    assert_eq!(
        lines(&r),
        vec!["::add-mask::s3cr3t-value", "token is ***"],
        "one mask, then redacted text"
    );
}

#[test]
fn multi_line_secrets_are_masked_whole_and_line_by_line() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.add_secret("-----BEGIN KEY-----\nAAAABBBBCCCC\n\nQk0=\n-----END KEY-----\n");
    assert_eq!(
        lines(&r),
        vec![
            "::add-mask::-----BEGIN KEY-----%0AAAAABBBBCCCC%0A%0AQk0=%0A-----END KEY-----",
            "::add-mask::-----BEGIN KEY-----",
            "::add-mask::AAAABBBBCCCC",
            "::add-mask::Qk0=",
            "::add-mask::-----END KEY-----",
        ]
    );
    r.relay("api", Stream::Stdout, "leaked AAAABBBBCCCC and Qk0= here");
    assert!(lines(&r)[5].starts_with("::stop-commands::"));
    assert!(lines(&r)[6].ends_with("leaked *** and *** here"));
}

#[test]
fn connection_string_passwords_are_found_in_every_form() {
    let pw = |s: &str| connection_passwords(s);
    assert_eq!(pw("postgres://app:s3cret@db:5432/app"), ["s3cret"]);
    assert_eq!(
        pw("postgresql://app@db/app?sslmode=require&password=qu3ry-pw"),
        ["qu3ry-pw"]
    );
    assert_eq!(
        pw("host=db user=app password=kv-pass dbname=app"),
        ["kv-pass"]
    );
    assert_eq!(pw("host=db password = 'with space' user=x"), ["with space"]);
    assert_eq!(pw("host=db user=password_admin"), Vec::<String>::new());
    assert_eq!(pw("sqlite://.deploy-action/demo.db"), Vec::<String>::new());
    assert_eq!(pw("postgres://app@db/app"), Vec::<String>::new());
}

#[test]
fn no_workflow_commands_outside_actions() {
    let r = Report::buffered(false, None);
    r.add_secret("abcdefgh");
    r.group_start("api");
    r.group_end();
    r.relaying(|| r.relay("api", Stream::Stdout, "::error::x"));
    assert_eq!(lines(&r), vec!["--- api", "api | ::error::x"]);
}

#[test]
fn url_passwords_are_registered_raw_and_decoded() {
    assert_eq!(
        url_password("postgres://app:pa%40ss@db:5432/app"),
        Some("pa%40ss")
    );
    assert_eq!(url_password("postgres://app@db/app"), None);
    assert_eq!(url_password("sqlite:///var/db.sqlite"), None);
    assert_eq!(url_password("postgres://u:p@ss@h/x"), Some("p@ss"));
    let r = Report::buffered(false, None);
    r.add_url_password("postgres://app:pa%40ssword@db:5432/app");
    assert_eq!(
        r.redact("pa%40ssword and pa@ssword"),
        "*** and ***",
        "both forms are masked"
    );
}

#[test]
fn relayed_output_sits_inside_a_stop_commands_block() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.group_start("build api");
    r.relaying(|| {
        for evil in [
            "::add-mask::x",
            "::set-output name=a::b",
            "::error::evil",
            "::endgroup::",
        ] {
            r.relay("api", Stream::Stderr, evil);
        }
    });
    r.group_end();
    let printed = r.printed();
    let l: Vec<&str> = printed.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(l[0], "::group::build api");
    let token = l[1]
        .strip_prefix("::stop-commands::")
        .expect("stop-commands");
    assert_eq!(token.len(), 32);
    assert_eq!(l[2], "api | ::add-mask::x");
    assert_eq!(l[5], "api | ::endgroup::");
    assert_eq!(l[6], format!("::{token}::"));
    assert_eq!(l[7], "::endgroup::");
    // Everything in the block shares one stream (stdout), so the order holds in the runner.
    assert!(printed.iter().all(|(s, _)| *s == Stream::Stdout));
    // No relayed line starts with `::` (the prefix keeps them from being commands anyway).
    assert!(l[2..6].iter().all(|x| !x.starts_with("::")));
}

#[test]
fn tokens_are_fresh() {
    assert_ne!(gha::fresh_token(), gha::fresh_token());
}

#[test]
fn outside_a_block_relayed_commands_are_defused() {
    assert_eq!(
        defuse_workflow_command("::add-mask::x"),
        " :\u{200b}:add-mask::x"
    );
    assert_eq!(
        defuse_workflow_command("text ##[error]boom"),
        "text #\u{200b}#[error]boom"
    );
    assert_eq!(defuse_workflow_command("plain"), "plain");
}

#[test]
fn json_mode_keeps_stdout_for_the_document() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(true, Some(g));
    r.add_secret("topsecret1");
    r.info("hello");
    r.relaying(|| r.relay("api", Stream::Stdout, "out"));
    r.json_document(&serde_json::json!({"affected": ["api"], "x": "topsecret1"}));
    let printed = r.printed();
    let stdout: Vec<&str> = printed
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    let doc: serde_json::Value = serde_json::from_str(&stdout.join("\n")).unwrap();
    assert_eq!(doc["affected"][0], "api");
    assert_eq!(doc["x"], "***");
}

#[test]
fn escaping_follows_the_toolkit() {
    assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
    assert_eq!(escape_property("deploy.yml:3,4"), "deploy.yml%3A3%2C4");
    assert_eq!(
        gha::error_annotation(
            "error: unknown key `hots`\n --> deploy.yml:3:5",
            Some(("deploy.yml", 3, 5))
        ),
        "::error file=deploy.yml,line=3,col=5::unknown key `hots`"
    );
    assert_eq!(gha::error_annotation("boom", None), "::error::boom");
}

#[test]
fn errors_annotate_in_actions_without_colour_codes() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.error(
        "\x1b[31;1merror\x1b[0m: bad thing\n",
        Some(("deploy.yml", 7, 3)),
    );
    let p = r.printed();
    assert_eq!(
        p[0],
        (
            Stream::Stdout,
            "::error file=deploy.yml,line=7,col=3::bad thing".into()
        )
    );
    assert_eq!(p[1].0, Stream::Stderr);
}

#[test]
fn single_and_multi_line_outputs() {
    let (_d, g, out, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.output("affected", r#"["api","web"]"#);
    r.output("notes", "line 1\nline 2");
    let text = std::fs::read_to_string(out).unwrap();
    let mut it = text.lines();
    assert_eq!(it.next(), Some(r#"affected=["api","web"]"#));
    let open = it.next().unwrap();
    let delim = open.strip_prefix("notes<<").unwrap();
    assert!(delim.starts_with("ghadelimiter_"));
    assert_eq!(it.next(), Some("line 1"));
    assert_eq!(it.next(), Some("line 2"));
    assert_eq!(it.next(), Some(delim));
    assert_eq!(it.next(), None);
}

#[test]
fn output_delimiter_never_occurs_in_the_value() {
    let entry = gha::output_entry("x", "a\nghadelimiter_\nb");
    let delim = entry.lines().next().unwrap().strip_prefix("x<<").unwrap();
    assert_eq!(entry.matches(delim).count(), 2);
}

#[test]
fn outputs_are_redacted() {
    let (_d, g, out, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.add_secret("hunter2hunter2");
    r.output("url", "https://x/?t=hunter2hunter2");
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "url=https://x/?t=***\n"
    );
}

#[test]
fn summary_is_markdown_and_stays_under_one_mib() {
    let (_d, g, _, sum) = gha_files();
    let r = Report::buffered(false, Some(g));
    let mut s = Summary::new("build", &["unit", "duration", "result"]);
    s.row(["api", "1.2s", "ok"]);
    s.row(["a|b", "0.1s", "failed (exit 1)"]);
    r.summary(&s);
    let md = std::fs::read_to_string(&sum).unwrap();
    assert!(md.starts_with("### build\n\n| unit | duration | result |\n| --- | --- | --- |\n"));
    assert!(md.contains("| a\\|b | 0.1s | failed (exit 1) |"));
    // Fill it far past the limit: it stops just under 1 MiB, with the note, on a char boundary.
    let mut big = Summary::new("big", &["unit", "result"]);
    for i in 0..40_000 {
        big.row([format!("unité-{i}"), "ok ✓".to_string()]);
    }
    r.summary(&big);
    r.summary(&big);
    let md = std::fs::read_to_string(&sum).unwrap();
    assert!(md.len() as u64 <= gha::SUMMARY_LIMIT, "{}", md.len());
    assert!(md.len() < 1024 * 1024);
    assert!(
        md.len() as u64 > gha::SUMMARY_LIMIT - 200,
        "filled up to the limit"
    );
    assert_eq!(md.matches("summary cut").count(), 1);
}

#[test]
fn append_limited_keeps_small_texts_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    gha::append_limited(&p, "abc", 1000).unwrap();
    gha::append_limited(&p, "def", 1000).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "abcdef");
    gha::append_limited(&p, &"x".repeat(5000), 1000).unwrap();
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(
        t.len() <= 1000 && t.ends_with("see the log)_\n"),
        "{}",
        t.len()
    );
}

#[test]
fn human_text_quoting_commands_is_defused_in_actions() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.info("  build  local  sh -c 'echo ##[error]x'\n::warning::from the manifest");
    assert_eq!(
        lines(&r),
        vec![
            "  build  local  sh -c 'echo #\u{200b}#[error]x'",
            " :\u{200b}:warning::from the manifest"
        ]
    );
    let plain = Report::buffered(false, None);
    plain.info("::kept:: ##[as is]");
    assert_eq!(lines(&plain), vec!["::kept:: ##[as is]"]);
}

/// The workflow commands the GitHub Actions runner would act on in what `r` printed: it reads each
/// stream with .NET's `ReadLine` (a line ends at `\r\n`, `\n` or a bare `\r`), skips leading white
/// space, takes `::name…::` at the start of a line or the legacy `##[name…]` anywhere, and between
/// `::stop-commands::TOKEN` and `::TOKEN::` acts on nothing but the resume.
fn runner_commands(r: &Report) -> Vec<String> {
    let mut acted = Vec::new();
    for stream in [Stream::Stdout, Stream::Stderr] {
        let text: Vec<String> = r
            .printed()
            .into_iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l)
            .collect();
        let text = text.join("\n");
        let mut stopped: Option<String> = None;
        for line in text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
            let t = line.trim_start();
            let command = if let Some(rest) = t.strip_prefix("::") {
                rest.split_once("::").map(|(name, _)| name.to_string())
            } else {
                line.find("##[")
                    .and_then(|i| line[i + 3..].split_once(']'))
                    .map(|(name, _)| name.to_string())
            };
            let Some(name) = command else { continue };
            match &stopped {
                Some(token) if name.eq_ignore_ascii_case(token) => stopped = None,
                Some(_) => {}
                None => {
                    if let Some(token) = name.strip_prefix("stop-commands") {
                        stopped = Some(t.splitn(3, "::").nth(2).unwrap_or(token).to_string());
                    } else {
                        acted.push(name);
                    }
                }
            }
        }
        assert!(stopped.is_none(), "a stop-commands block was left open");
    }
    acted
}

/// Lines a hostile child could print to forge commands: after a bare CR, after other C0/C1
/// controls, behind an ESC sequence that moves the cursor, and the legacy syntax.
const HOSTILE: &[&str] = &[
    "ok\r::add-mask::x",
    "ok\r::warning::forged",
    "50%\r\r\n::error::y",
    "a\u{0b}::add-mask::v\u{0c}::add-mask::f",
    "a\u{85}::add-mask::nel\u{2028}::add-mask::ls",
    "\x1b[2K\x1b[1G::add-mask::z",
    "\u{9b}2K::add-mask::c1",
    "text ##[error]legacy",
    "\r  ::endgroup::",
];

#[test]
fn r10_workflow_command_injection_through_relayed_output_is_defused() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.group_start("exec");
    for line in HOSTILE {
        r.relay("root@h:22", Stream::Stdout, line);
        r.relay("api", Stream::Stderr, line);
    }
    r.warn("after the output");
    r.group_end();
    assert_eq!(
        runner_commands(&r),
        ["group", "warning", "endgroup"],
        "{:#?}",
        r.printed()
    );
    let l = lines(&r);
    // Every piece after a CR got the prefix; SGR colour would be kept, other controls are shown.
    assert!(
        l.contains(&"root@h:22 | ::add-mask::x".to_string()),
        "{l:#?}"
    );
    assert!(l.contains(&"api | \u{241b}[2K\u{241b}[1G::add-mask::z".to_string()));
    assert!(l.contains(&"api | \u{fffd}2K::add-mask::c1".to_string()));
    assert!(l.iter().all(|x| !x.contains('\r') && !x.contains('\x1b')));
    // The block closed before the warning, so the runner shows our annotation.
    let warn = l.iter().position(|x| x.starts_with("::warning::")).unwrap();
    assert!(l[warn - 1].starts_with("::") && l[warn - 1].ends_with("::"));
}

#[test]
fn r10_workflow_command_injection_through_error_messages_is_defused() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    for line in HOSTILE {
        // A host's stderr quoted in our own messages (stderr_tail in an error, a health log).
        r.error(&format!("error: cannot write /srv/x: exit 1: {line}"), None);
        r.info(&format!("  {line}"));
        r.warn(&format!("docker pull said: {line}"));
    }
    let acted = runner_commands(&r);
    assert!(
        acted.iter().all(|c| c == "error" || c == "warning"),
        "{acted:?}"
    );
    assert_eq!(acted.len(), 2 * HOSTILE.len(), "{:#?}", r.printed());
}

#[test]
fn relayed_lines_keep_colour_and_outside_actions_need_no_block() {
    let r = Report::buffered(false, None);
    r.relay("api", Stream::Stdout, "\x1b[31mred\x1b[0m\tok\x07");
    r.relay("api", Stream::Stdout, "one\rtwo");
    assert_eq!(
        lines(&r),
        [
            "api | \x1b[31mred\x1b[0m\tok\u{2407}",
            "api | one",
            "api | two"
        ]
    );
}

#[test]
fn every_relayed_line_sits_in_a_fresh_block_closed_before_our_own_output() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.relay("h", Stream::Stdout, "a");
    r.relay("h", Stream::Stderr, "b");
    r.info("ours");
    r.relay("h", Stream::Stdout, "c");
    r.relaying(|| ());
    let l = lines(&r);
    let first = l[0].strip_prefix("::stop-commands::").unwrap().to_string();
    assert_eq!(
        l[1..4],
        ["h | a".to_string(), "h | b".into(), format!("::{first}::")]
    );
    assert_eq!(l[4], "ours");
    let second = l[5].strip_prefix("::stop-commands::").unwrap();
    assert_ne!(first, second, "a fresh token per block");
    assert_eq!(l[6..], ["h | c".to_string(), format!("::{second}::")]);
}

#[test]
fn r10_short_secrets_are_masked_and_add_mask_goes_out() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(false, Some(g));
    r.add_secret("q7z");
    r.info("pw is q7z");
    assert_eq!(lines(&r), ["::add-mask::q7z", "pw is ***"]);
}

#[test]
fn r10_json_documents_carry_no_legacy_workflow_command_in_actions() {
    let (_d, g, _, _) = gha_files();
    let r = Report::buffered(true, Some(g));
    let doc = serde_json::json!({"command": "echo ##[error]x; printf '\\r::warning::y'"});
    r.json_document(&doc);
    let text = lines(&r).join("\n");
    assert!(runner_commands(&r).is_empty(), "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        doc
    );
}
