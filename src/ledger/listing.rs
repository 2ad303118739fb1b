//! Reading the records: the one command that lists an environment's release files on a host
//! (and the lock owner file), the listing of the `deploy/<env>/<n>` tags, what they parse into
//! ([`Ledger`], with the files that could not be read as [`Problem`]s), and the number the next
//! release gets. [`read`] runs the commands through an [`Executor`]; the rest is pure.

use crate::cmd::Cmd;
use crate::exec::{ExecError, Executor};
use crate::state::{LockOwner, ReleaseRecord, StatePaths};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::rel;
    use crate::state::ReleaseStatus;

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
