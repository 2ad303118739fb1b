//! The release ledger: the releases an environment has had, read back from its hosts, and the
//! choices made from them (the current release, the rollback target), plus the git tags that
//! record each release (`deploy/<env>/<n>` and the pointer tag `<env>`).
//!
//! `listing.rs` reads the records (the one command that lists them on a host, the tag listing,
//! their parsing; [`read`] runs through an [`Executor`](crate::exec::Executor)); `choose.rs`
//! makes the choices (the current release, the rollback target, each unit's version); this file
//! holds what both sides and the writers share: status words, short forms, masking, the tag
//! commands. All of it is pure (text in, decisions out) except [`read`] and `record.rs`, which
//! tags and reports to GitHub. Stays out of deploying: writing `releases/<n>.json` is the deploy
//! runners' business.

use crate::cmd::Cmd;
use crate::state::{ReleaseRecord, ReleaseStatus};

mod choose;
pub mod identity;
mod listing;
pub mod lock;
pub mod publish;
pub mod record;
pub mod store;

pub use choose::{
    Selector, TargetError, Units, current, is_good, rollback_target, same_image, state_at,
    unit_versions,
};
pub use listing::{
    HostState, Ledger, Problem, list_cmd, lock_cmd, next_number, number_in_name, parse_listing,
    parse_lock, parse_tag_listing, read, tag_listing_cmd,
};

/// What one service runs, as read from its container: `(compose service, image, image id,
/// container id)`.
pub type Running = (String, String, String, String);

/// "web runs shop/web:2 (image 1a2b3c4d5e6f, container 9f8e7d6c5b4a); api …", or "no container
/// runs".
pub fn describe_running(running: &[Running]) -> String {
    if running.is_empty() {
        return "no container of the project runs".into();
    }
    running
        .iter()
        .map(|(svc, image, id, container)| {
            format!(
                "{svc} runs {image} (image {}, container {})",
                short_id(id),
                first_chars(container, 12)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The releases a run left `in_progress` and that a later run, holding the lock (so no run is
/// deploying them), finds: each marked `interrupted` with a note saying when, by which release,
/// and what each service was found running.
pub fn interrupted(
    releases: &[ReleaseRecord],
    running: &[Running],
    found_by: &str,
    now: &str,
) -> Vec<ReleaseRecord> {
    releases
        .iter()
        .filter(|r| r.status.0 == ReleaseStatus::InProgress)
        .map(|r| {
            let mut r = r.clone();
            r.status = crate::state::ReleaseStatusField(ReleaseStatus::Interrupted);
            r.notes.push(format!(
                "interrupted: the run that made this release stopped before recording its outcome (killed, lost runner, full disk); found by {found_by} at {now}"
            ));
            r.notes
                .push(format!("running then: {}", describe_running(running)));
            r
        })
        .collect()
}

/// The status as written in the records (`live`, `rolled_back`, …).
pub fn status_word(s: ReleaseStatus) -> &'static str {
    match s {
        ReleaseStatus::InProgress => "in_progress",
        ReleaseStatus::Live => "live",
        ReleaseStatus::Failed => "failed",
        ReleaseStatus::RolledBack => "rolled_back",
        ReleaseStatus::Bad => "bad",
        ReleaseStatus::Superseded => "superseded",
        ReleaseStatus::Interrupted => "interrupted",
    }
}

/// The first `n` characters of `text` (whole characters: records, tags and hosts are outside
/// data, and a byte slice of a non-ASCII value would panic).
pub fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

/// A commit sha shortened for tables.
pub fn short_sha(sha: &str) -> &str {
    first_chars(sha, 12)
}

/// An image id (`sha256:…`) shortened for tables.
pub fn short_id(id: &str) -> &str {
    first_chars(id.strip_prefix("sha256:").unwrap_or(id), 12)
}

/// The annotated tag of a release.
pub fn tag_name(env: &str, number: u64) -> String {
    format!("deploy/{env}/{number}")
}

/// `value` as JSON with `mask` applied to every string in it: the one way records, audit lines
/// and owner files are written, so that a secret in a note (a health check's failure text, a
/// reason) never reaches a host, a tag or GitHub. Masking strings, not the JSON text, also
/// catches a secret that JSON escaping would have changed.
pub fn masked_json<T: serde::Serialize>(value: &T, mask: &dyn Fn(&str) -> String) -> String {
    fn walk(v: &mut serde_json::Value, mask: &dyn Fn(&str) -> String) {
        match v {
            serde_json::Value::String(s) => *s = mask(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, mask)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, mask)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    walk(&mut v, mask);
    v.to_string()
}

/// A release record with `mask` applied to every string in it (see [`masked_json`]).
pub fn masked_record(record: &ReleaseRecord, mask: &dyn Fn(&str) -> String) -> ReleaseRecord {
    serde_json::from_str(&masked_json(record, mask)).unwrap_or_else(|_| record.clone())
}

/// The message of the annotated tag: the release record as pretty JSON.
pub fn tag_message(record: &ReleaseRecord) -> String {
    let mut s = serde_json::to_string_pretty(record).expect("a release record serializes");
    s.push('\n');
    s
}

/// Whether two records are the same release (a rewrite of it: marked bad, a note added), not
/// two releases that were given the same number.
pub fn same_release(a: &ReleaseRecord, b: &ReleaseRecord) -> bool {
    a.env == b.env && a.number == b.number && a.sha == b.sha && a.created_at == b.created_at
}

/// The git commands that tag a release locally: the annotated tag `deploy/<env>/<n>` on the
/// deployed commit, then, for a live release, the pointer tag `<env>` moved to that tag. The
/// release tag is created, never moved: `replace` (forced) only when the existing tag is this
/// same release being rewritten ([`same_release`]). Only the pointer tag moves.
pub fn git_tag_cmds(record: &ReleaseRecord, replace: bool) -> Vec<Cmd> {
    let tag = tag_name(&record.env, record.number);
    let force: &[&str] = if replace { &["--force"] } else { &[] };
    let mut cmds = vec![
        Cmd::new("git")
            .arg("tag")
            .args(force.iter().copied())
            .args(["--annotate", "--cleanup=verbatim"])
            .args(["--message", &tag_message(record)])
            .arg(tag.clone())
            .arg(format!("{}^{{commit}}", record.sha)),
    ];
    if record.status.0 == ReleaseStatus::Live {
        cmds.push(
            Cmd::new("git")
                .args(["tag", "--force", "--no-sign"])
                .arg(record.env.clone())
                .arg(tag),
        );
    }
    cmds
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::ReleaseStatusField;

    /// A release of `production` numbered `n`, with `status` and commit `sha`.
    pub(crate) fn rel(n: u64, status: ReleaseStatus, sha: &str) -> ReleaseRecord {
        ReleaseRecord {
            number: n,
            env: "production".into(),
            sha: sha.into(),
            status: ReleaseStatusField(status),
            ..Default::default()
        }
    }

    #[test]
    fn tag_commands_annotate_with_the_record_and_move_the_pointer_only_when_live() {
        let r = rel(7, ReleaseStatus::Live, "abc1234");
        let cmds = git_tag_cmds(&r, false);
        assert_eq!(cmds.len(), 2);
        let first = cmds[0].argv_exposed();
        assert!(
            first.contains(&"deploy/production/7".to_string()),
            "{first:?}"
        );
        assert!(first.contains(&"abc1234^{commit}".to_string()), "{first:?}");
        let msg: ReleaseRecord = serde_json::from_str(&tag_message(&r)).unwrap();
        assert_eq!(msg, r);
        assert_eq!(
            cmds[1].argv_exposed()[cmds[1].argv_exposed().len() - 2..],
            ["production".to_string(), "deploy/production/7".to_string()]
        );
        assert!(!first.contains(&"--force".to_string()), "{first:?}");
        assert!(cmds[1].argv_exposed().contains(&"--force".to_string()));
        assert!(
            git_tag_cmds(&r, true)[0]
                .argv_exposed()
                .contains(&"--force".to_string())
        );
        assert_eq!(
            git_tag_cmds(&rel(8, ReleaseStatus::Failed, "abc"), false).len(),
            1
        );
    }

    #[test]
    fn r10_non_ascii_sha_in_a_release_record_does_not_panic() {
        let sha = format!("a{}", "é".repeat(20));
        assert_eq!(short_sha(&sha), format!("a{}", "é".repeat(11)));
        assert_eq!(short_id(&format!("sha256:{sha}")), short_sha(&sha));
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(first_chars("", 12), "");
    }

    #[test]
    fn masking_reaches_every_string_of_a_record_even_where_json_escapes_it() {
        let mut r = rel(3, ReleaseStatus::RolledBack, "abc");
        r.notes
            .push("web: GET http://h/?key=s3\"cr3t: status 404".into());
        r.run_url = "https://x/s3\"cr3t".into();
        let mask = |t: &str| t.replace("s3\"cr3t", "***");
        let text = masked_json(&r, &mask);
        assert!(!text.contains("cr3t"), "{text}");
        assert!(text.contains("key=***: status 404"), "{text}");
        let back = masked_record(&r, &mask);
        assert_eq!(back.run_url, "https://x/***");
        assert_eq!(back.number, 3);
    }

    #[test]
    fn an_in_progress_release_becomes_interrupted_with_what_runs() {
        let rs = vec![
            rel(1, ReleaseStatus::Live, "a"),
            rel(2, ReleaseStatus::InProgress, "b"),
        ];
        let running = vec![(
            "web".to_string(),
            "shop/web:2".to_string(),
            "sha256:0123456789abcdef".to_string(),
            "fedcba9876543210".to_string(),
        )];
        let marked = interrupted(&rs, &running, "release 3", "2026-01-01T00:00:00Z");
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0].number, 2);
        assert_eq!(status_word(marked[0].status.0), "interrupted");
        assert!(!is_good(&marked[0]));
        assert!(
            marked[0].notes[1]
                .contains("web runs shop/web:2 (image 0123456789ab, container fedcba987654)"),
            "{:?}",
            marked[0].notes
        );
        assert_eq!(describe_running(&[]), "no container of the project runs");
    }
}
