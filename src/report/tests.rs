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
    assert!(lines(&r)[5].ends_with("leaked *** and *** here"));
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
