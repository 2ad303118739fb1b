//! The release ledger: the releases an environment has had, read back from its hosts, and the
//! choices made from them (the current release, the rollback target), plus the git tags that
//! record each release (`deploy/<env>/<n>` and the pointer tag `<env>`).
//!
//! The functions here are pure (text in, decisions out) except [`read`], which reads the state
//! through an [`Executor`], and `record.rs`, which tags and reports to GitHub. Stays out of
//! deploying: writing `releases/<n>.json` is the deploy runners' business.

use crate::cmd::Cmd;
use crate::exec::{ExecError, Executor};
use crate::state::{LockOwner, ReleaseRecord, ReleaseStatus, StatePaths};

pub mod identity;
pub mod lock;
pub mod publish;
pub mod record;
pub mod store;

/// Marks the start of each file in the listing printed by [`list_cmd`].
const FILE_MARK: &str = "==> deploy-action-file ";

/// A release file that could not be read as a [`ReleaseRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, as named on the host.
    pub file: String,
    pub message: String,
}

/// The releases found on one host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    /// Sorted by release number, oldest first.
    pub releases: Vec<ReleaseRecord>,
    pub problems: Vec<Problem>,
}

/// The one command that prints every release file of an environment directory, each preceded by a
/// marker line with its name. A missing directory prints nothing and succeeds.
pub fn list_cmd(paths: &StatePaths) -> Cmd {
    let dir = crate::cmd::shell_quote(&paths.releases_dir()).into_owned();
    Cmd::shell(format!(
        "for f in {dir}/*.json; do [ -f \"$f\" ] || continue; printf '\\n{FILE_MARK}%s\\n' \"$f\"; cat \"$f\"; done; true"
    ))
}

/// The command that prints the lock owner file, or nothing when the lock is free.
pub fn lock_cmd(paths: &StatePaths) -> Cmd {
    let f = crate::cmd::shell_quote(&paths.lock_owner()).into_owned();
    Cmd::shell(format!("if [ -f {f} ]; then cat {f}; fi; true"))
}

/// Parses the output of [`list_cmd`]: every file becomes a release or a [`Problem`].
pub fn parse_listing(text: &str) -> Ledger {
    let mut ledger = Ledger::default();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: Option<(String, String)>, ledger: &mut Ledger| {
        if let Some((file, body)) = cur {
            match serde_json::from_str::<ReleaseRecord>(&body) {
                Ok(r) => ledger.releases.push(r),
                Err(e) => ledger.problems.push(Problem {
                    file,
                    message: format!("not a release record: {e}"),
                }),
            }
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix(FILE_MARK) {
            flush(current.take(), &mut ledger);
            current = Some((name.trim_end().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    flush(current.take(), &mut ledger);
    ledger.releases.sort_by_key(|r| r.number);
    ledger
}

/// Parses the lock owner file; empty text means the lock is free.
pub fn parse_lock(text: &str) -> Result<Option<LockOwner>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("lock owner file is not valid JSON: {e}"))
}

/// Lists the annotated tags `deploy/<env>/<n>` of the repository with their messages: each entry
/// is `<tag>\0<message>` and entries are separated by an ASCII record separator.
pub fn tag_listing_cmd(env: &str) -> Cmd {
    Cmd::new("git")
        .args([
            "for-each-ref",
            "--format=%(refname:strip=2)%00%(contents)%1e",
        ])
        .arg(format!("refs/tags/deploy/{env}/"))
}

/// Parses [`tag_listing_cmd`]'s output: a tag whose message is not a release record of the
/// number in its name becomes a [`Problem`].
pub fn parse_tag_listing(text: &str) -> Ledger {
    let mut ledger = Ledger::default();
    for entry in text.split('\u{1e}') {
        let entry = entry.trim_start_matches('\n');
        let Some((tag, body)) = entry.split_once('\0') else {
            continue;
        };
        let number = tag.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
        match serde_json::from_str::<ReleaseRecord>(body) {
            Ok(r) if Some(r.number) == number => ledger.releases.push(r),
            Ok(r) => ledger.problems.push(Problem {
                file: tag.to_string(),
                message: format!("the message is release {}, not the tag's number", r.number),
            }),
            Err(e) => ledger.problems.push(Problem {
                file: tag.to_string(),
                message: format!("not a release record: {e}"),
            }),
        }
    }
    ledger.releases.sort_by_key(|r| r.number);
    ledger
}

/// What one host says about an environment.
#[derive(Clone, Debug, Default)]
pub struct HostState {
    pub ledger: Ledger,
    pub lock: Option<LockOwner>,
    /// Set when the lock directory holds an unreadable owner file.
    pub lock_problem: Option<String>,
}

/// Reads the releases and the lock owner of the environment directory `dir` through `exec`.
pub fn read(exec: &mut dyn Executor, dir: &str) -> Result<HostState, ExecError> {
    let paths = StatePaths::new(dir);
    let out = exec.capture(&list_cmd(&paths))?;
    if !out.success() {
        return Err(ExecError::Io {
            host: exec.label(),
            message: format!("cannot list releases: {}", out.stderr_tail(5)),
        });
    }
    let ledger = parse_listing(&out.stdout_str());
    let out = exec.capture(&lock_cmd(&paths))?;
    let (lock, lock_problem) = match parse_lock(&out.stdout_str()) {
        Ok(l) => (l, None),
        Err(e) => (None, Some(format!("{}: {e}", paths.lock_owner()))),
    };
    Ok(HostState {
        ledger,
        lock,
        lock_problem,
    })
}

/// The current release: the newest one that is live.
pub fn current(releases: &[ReleaseRecord]) -> Option<&ReleaseRecord> {
    releases
        .iter()
        .filter(|r| r.status.0 == ReleaseStatus::Live)
        .max_by_key(|r| r.number)
}

/// The number the next release gets after `releases` (parsed records only: prefer
/// [`Ledger::next_number`], which also counts the files that could not be read).
pub fn next_number(releases: &[ReleaseRecord]) -> u64 {
    releases
        .iter()
        .map(|r| r.number)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// The release number in a record's file name (`…/releases/12.json`) or tag name
/// (`deploy/production/12`), whether or not its content could be read.
pub fn number_in_name(name: &str) -> Option<u64> {
    let base = name.rsplit('/').next()?;
    base.strip_suffix(".json").unwrap_or(base).parse().ok()
}

impl Ledger {
    /// The number the next release gets: one above the highest number taken, by a record or by
    /// the name of a file (or tag) that could not be read. A corrupt newest record keeps its
    /// number: reusing it would overwrite the file and force a second release onto its tag.
    pub fn next_number(&self) -> u64 {
        let named = self
            .problems
            .iter()
            .filter_map(|p| number_in_name(&p.file))
            .max()
            .unwrap_or(0);
        next_number(&self.releases).max(named.saturating_add(1))
    }
}

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

/// Whether a release can be gone back to: it went live once (and may since have been superseded)
/// and was never abandoned.
pub fn is_good(r: &ReleaseRecord) -> bool {
    matches!(r.status.0, ReleaseStatus::Live | ReleaseStatus::Superseded)
}

/// What `--to` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Number(u64),
    /// `deploy/<env>/<n>`.
    Tag(String),
    /// A git commit (at least 7 hex digits, a prefix is enough).
    Sha(String),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("--to needs a release number, a deploy/<env>/<n> tag or a commit".into());
        }
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Selector::Number(n));
        }
        if t.starts_with("deploy/") {
            return Ok(Selector::Tag(t.to_string()));
        }
        if t.len() >= 7 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Selector::Sha(t.to_ascii_lowercase()));
        }
        Err(format!(
            "--to {t}: not a release number, a deploy/<env>/<n> tag or a commit sha (7+ hex digits)"
        ))
    }
}

/// Why no rollback target could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("nothing to roll back to: {0}")]
    Nothing(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unusable(String),
}

/// The release to roll back to: by default the newest good release older than the current one
/// (releases marked bad or that failed are skipped); with `to`, the release it names, which must
/// have gone live and not be marked bad.
pub fn rollback_target<'a>(
    env: &str,
    releases: &'a [ReleaseRecord],
    to: Option<&Selector>,
) -> Result<&'a ReleaseRecord, TargetError> {
    let cur = current(releases);
    let Some(sel) = to else {
        let Some(cur) = cur else {
            return Err(TargetError::Nothing(format!(
                "environment `{env}` has no live release"
            )));
        };
        return releases
            .iter()
            .filter(|r| r.number < cur.number && is_good(r))
            .max_by_key(|r| r.number)
            .ok_or_else(|| {
                TargetError::Nothing(format!(
                    "release {} is the only good release of `{env}`",
                    cur.number
                ))
            });
    };
    let found = match sel {
        Selector::Number(n) => releases.iter().find(|r| r.number == *n),
        Selector::Tag(tag) => {
            let prefix = format!("deploy/{env}/");
            let Some(n) = tag
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<u64>().ok())
            else {
                return Err(TargetError::NotFound(format!(
                    "--to {tag}: tags of `{env}` are named {prefix}<n>"
                )));
            };
            releases.iter().find(|r| r.number == n)
        }
        Selector::Sha(sha) => releases
            .iter()
            .filter(|r| is_good(r) && r.sha.to_ascii_lowercase().starts_with(sha.as_str()))
            .max_by_key(|r| r.number),
    };
    let Some(r) = found else {
        return Err(TargetError::NotFound(format!(
            "--to {}: no such release of `{env}`",
            match sel {
                Selector::Number(n) => n.to_string(),
                Selector::Tag(t) | Selector::Sha(t) => t.clone(),
            }
        )));
    };
    if !is_good(r) {
        return Err(TargetError::Unusable(format!(
            "release {} of `{env}` is {}; only releases that went live and are not marked bad can be rolled back to",
            r.number,
            status_word(r.status.0)
        )));
    }
    if cur.map(|c| c.number) == Some(r.number) {
        return Err(TargetError::Nothing(format!(
            "release {} is already the current release of `{env}`",
            r.number
        )));
    }
    Ok(r)
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

/// What each unit of an environment runs, and since which release.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Units {
    /// compose service → (the release since which it runs this image, state).
    pub services: std::collections::BTreeMap<String, (u64, crate::state::ServiceState)>,
    /// site → (since release, Pages deployment).
    pub pages: std::collections::BTreeMap<String, (u64, crate::state::PagesState)>,
    /// (since release, migration version).
    pub migration: Option<(u64, String)>,
}

/// Each unit's version after the newest good release: every unit is looked up on its own, newest
/// good release first (a record written before records carried the whole state may name only the
/// units it changed), and dated back to the oldest release in the unbroken run of good releases
/// that show the same version.
pub fn unit_versions(releases: &[ReleaseRecord]) -> Units {
    state_at(releases, u64::MAX)
}

/// [`unit_versions`] as of release `n`: only good releases numbered `n` or lower count.
pub fn state_at(releases: &[ReleaseRecord], n: u64) -> Units {
    let mut good: Vec<&ReleaseRecord> = releases
        .iter()
        .filter(|r| is_good(r) && r.number <= n)
        .collect();
    good.sort_by_key(|r| std::cmp::Reverse(r.number));
    let mut units = Units::default();
    // Newest first: the first release naming a unit sets its version; older ones naming the same
    // version move its "since" back, until one names another version.
    let mut settled: std::collections::BTreeSet<String> = Default::default();
    for r in good {
        for (name, s) in &r.services {
            let key = format!("s:{name}");
            match units.services.get_mut(name) {
                None => {
                    units.services.insert(name.clone(), (r.number, s.clone()));
                }
                Some(e) if !settled.contains(&key) && same_image(&e.1, s) => e.0 = r.number,
                Some(_) => {
                    settled.insert(key);
                }
            }
        }
        for (name, p) in &r.pages {
            let key = format!("p:{name}");
            match units.pages.get_mut(name) {
                None => {
                    units.pages.insert(name.clone(), (r.number, p.clone()));
                }
                Some(e) if !settled.contains(&key) && e.1.deployment_id == p.deployment_id => {
                    e.0 = r.number
                }
                Some(_) => {
                    settled.insert(key);
                }
            }
        }
        if let Some(v) = &r.migration_version {
            match &mut units.migration {
                None => units.migration = Some((r.number, v.clone())),
                Some(e) if !settled.contains("m") && e.1 == *v => e.0 = r.number,
                Some(_) => {
                    settled.insert("m".into());
                }
            }
        }
    }
    units
}

/// Whether two service states run the same image: by repo digest when both have one (the same
/// content, whatever repository or host it came through), else by id when both know it, else by
/// reference.
pub fn same_image(a: &crate::state::ServiceState, b: &crate::state::ServiceState) -> bool {
    use crate::cmd::docker_engine::digest_part;
    if let (Some(x), Some(y)) = (&a.digest, &b.digest)
        && digest_part(x) == digest_part(y)
    {
        return true;
    }
    if !a.image_id.is_empty() && !b.image_id.is_empty() {
        a.image_id == b.image_id
    } else {
        a.image == b.image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ReleaseStatusField;

    fn rel(n: u64, status: ReleaseStatus, sha: &str) -> ReleaseRecord {
        ReleaseRecord {
            number: n,
            env: "production".into(),
            sha: sha.into(),
            status: ReleaseStatusField(status),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_digest_is_the_same_image_whatever_the_repository_or_id() {
        use crate::state::ServiceState;
        let st = |image: &str, id: &str, digest: Option<&str>| ServiceState {
            image: image.into(),
            image_id: id.into(),
            digest: digest.map(String::from),
            ..Default::default()
        };
        let a = st("r/web:latest", "sha256:11", Some("r/web@sha256:aa"));
        assert!(same_image(
            &a,
            &st("r/web@sha256:aa", "sha256:99", Some("mirror/web@sha256:aa"))
        ));
        // A moved tag: same reference, another digest and id.
        assert!(!same_image(
            &a,
            &st("r/web:latest", "sha256:22", Some("r/web@sha256:bb"))
        ));
        assert!(same_image(&a, &st("other:1", "sha256:11", None)));
        assert!(same_image(&st("x:1", "", None), &st("x:1", "", None)));
    }

    #[test]
    fn listing_parses_every_file_and_names_bad_ones() {
        let a = serde_json::to_string_pretty(&rel(2, ReleaseStatus::Live, "bbb")).unwrap();
        let b = serde_json::to_string(&rel(1, ReleaseStatus::Superseded, "aaa")).unwrap();
        let text = format!(
            "\n{FILE_MARK}/srv/x/.deploy-action/releases/2.json\n{a}\n{FILE_MARK}/srv/x/.deploy-action/releases/3.json\n{{\"number\": 3,\n{FILE_MARK}/srv/x/.deploy-action/releases/1.json\n{b}"
        );
        let l = parse_listing(&text);
        assert_eq!(
            l.releases.iter().map(|r| r.number).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(l.problems.len(), 1);
        assert_eq!(l.problems[0].file, "/srv/x/.deploy-action/releases/3.json");
        assert!(l.problems[0].message.contains("not a release record"));
        assert_eq!(parse_listing(""), Ledger::default());
    }

    #[test]
    fn lock_owner_parses_or_is_free() {
        assert_eq!(parse_lock("  \n").unwrap(), None);
        let o = parse_lock(r#"{"run_url":"local","actor":"ann","sha":"abc","started_at":"t"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(o.actor, "ann");
        assert!(parse_lock("{oops").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn current_is_the_newest_live_release() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a"),
            rel(2, Live, "b"),
            rel(3, Failed, "c"),
            rel(4, RolledBack, "d"),
        ];
        assert_eq!(current(&rs).unwrap().number, 2);
        assert_eq!(next_number(&rs), 5);
        assert_eq!(current(&[]), None);
        assert_eq!(next_number(&[]), 1);
    }

    #[test]
    fn default_target_skips_bad_and_failed_releases() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a1a1a1a1"),
            rel(2, Bad, "b2b2b2b2"),
            rel(3, Failed, "c3c3c3c3"),
            rel(4, Live, "d4d4d4d4"),
            rel(5, RolledBack, "e5e5e5e5"),
        ];
        assert_eq!(rollback_target("production", &rs, None).unwrap().number, 1);
    }

    #[test]
    fn nothing_to_roll_back_to_is_a_clear_error() {
        use ReleaseStatus::*;
        let e = rollback_target("production", &[], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to roll back to: environment `production` has no live release"
        );
        let rs = vec![rel(1, Bad, "a"), rel(2, Live, "b")];
        let e = rollback_target("production", &rs, None).unwrap_err();
        assert!(matches!(e, TargetError::Nothing(_)), "{e}");
        assert!(e.to_string().contains("only good release"), "{e}");
    }

    #[test]
    fn explicit_targets_by_number_tag_and_sha() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a1a1a1a1ff"),
            rel(2, Superseded, "b2b2b2b2ff"),
            rel(3, Bad, "c3c3c3c3ff"),
            rel(4, Live, "d4d4d4d4ff"),
        ];
        let to = |s: &str| Selector::parse(s).unwrap();
        assert_eq!(
            rollback_target("production", &rs, Some(&to("1")))
                .unwrap()
                .number,
            1
        );
        assert_eq!(
            rollback_target("production", &rs, Some(&to("deploy/production/2")))
                .unwrap()
                .number,
            2
        );
        assert_eq!(
            rollback_target("production", &rs, Some(&to("B2B2B2B")))
                .unwrap()
                .number,
            2
        );
        let e = rollback_target("production", &rs, Some(&to("3"))).unwrap_err();
        assert!(
            e.to_string().contains("release 3 of `production` is bad"),
            "{e}"
        );
        let e = rollback_target("production", &rs, Some(&to("9"))).unwrap_err();
        assert_eq!(e.to_string(), "--to 9: no such release of `production`");
        let e = rollback_target("production", &rs, Some(&to("deploy/staging/1"))).unwrap_err();
        assert!(e.to_string().contains("deploy/production/<n>"), "{e}");
        let e = rollback_target("production", &rs, Some(&to("4"))).unwrap_err();
        assert!(e.to_string().contains("already the current release"), "{e}");
        assert!(Selector::parse("main").is_err());
        assert!(Selector::parse("").is_err());
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
    fn unit_versions_come_from_the_newest_good_release_naming_each_unit() {
        use ReleaseStatus::*;
        let mut r1 = rel(1, Superseded, "a");
        r1.services.insert(
            "api".into(),
            crate::state::ServiceState {
                image: "api:1".into(),
                ..Default::default()
            },
        );
        r1.services.insert(
            "web".into(),
            crate::state::ServiceState {
                image: "web:1".into(),
                ..Default::default()
            },
        );
        r1.migration_version = Some("0001".into());
        let mut r2 = rel(2, Live, "b");
        r2.services.insert(
            "web".into(),
            crate::state::ServiceState {
                image: "web:2".into(),
                ..Default::default()
            },
        );
        let mut r3 = rel(3, Bad, "c");
        r3.services.insert(
            "api".into(),
            crate::state::ServiceState {
                image: "api:3".into(),
                ..Default::default()
            },
        );
        let u = unit_versions(&[r1, r2, r3]);
        assert_eq!(u.services["web"].1.image, "web:2");
        assert_eq!(
            u.services["api"],
            (
                1,
                crate::state::ServiceState {
                    image: "api:1".into(),
                    ..Default::default()
                }
            )
        );
        assert_eq!(u.migration, Some((1, "0001".into())));
    }

    #[test]
    fn r10_a_corrupt_newest_release_record_keeps_its_number() {
        let ok = serde_json::to_string(&rel(1, ReleaseStatus::Live, "a")).unwrap();
        let text = format!(
            "\n{FILE_MARK}/s/.deploy-action/releases/1.json\n{ok}\n{FILE_MARK}/s/.deploy-action/releases/2.json\n{{\"number\": 2,\n{FILE_MARK}/s/.deploy-action/releases/notes.json\n{{\n"
        );
        let l = parse_listing(&text);
        assert_eq!(l.problems.len(), 2);
        assert_eq!(next_number(&l.releases), 2, "the parsed records alone");
        assert_eq!(l.next_number(), 3, "the unreadable 2.json keeps its number");
        let tags = parse_tag_listing(&format!(
            "deploy/production/1\0{ok}\u{1e}deploy/production/7\0not json\u{1e}"
        ));
        assert_eq!(tags.next_number(), 8);
        assert_eq!(number_in_name("deploy/production/12"), Some(12));
        assert_eq!(number_in_name("/x/releases/12.json"), Some(12));
        assert_eq!(number_in_name("/x/releases/x.json"), None);
        let max = Ledger {
            releases: vec![rel(u64::MAX, ReleaseStatus::Live, "a")],
            problems: vec![],
        };
        assert_eq!(max.next_number(), u64::MAX, "no overflow on outside data");
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

    #[test]
    fn list_command_tolerates_a_missing_directory() {
        let cmd = list_cmd(&StatePaths::new("/srv/my app"));
        let script = cmd.args[1].expose();
        assert!(
            script.contains("for f in '/srv/my app/.deploy-action/releases'/*.json"),
            "{script}"
        );
        assert!(script.ends_with("; true"), "{script}");
    }
}
