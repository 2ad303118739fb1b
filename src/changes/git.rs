//! The git reader of change detection: what the repository says (HEAD, whether a base commit is
//! in the clone, whether it is shallow, the names a diff lists) and the GitHub event payload,
//! handed to the pure part (`changes.rs`: the globs, the event, the choice of the base).
//!
//! Every git command runs through an [`Executor`] (the local one, in practice). Stays out of
//! printing: notes go back in [`Affected`].

use super::{
    Affected, BaseFrom, ChangesError, EventBase, Reason, ReleaseBase, UnitMatcher, all_units,
    choose_base, event_base, missing_base_error, select_only, short,
};
use crate::cmd::Cmd;
use crate::env_vars;
use crate::exec::{ExecError, Executor, Output};
use crate::manifest::Manifest;
use std::io::{BufRead, BufReader, Seek};
use std::path::Path;

/// Whether `sha` names a commit of the repository at `root` (a full hex sha that git resolves).
fn is_commit(ex: &mut dyn Executor, root: &Path, sha: &str) -> bool {
    sha.len() >= 7
        && sha.bytes().all(|b| b.is_ascii_hexdigit())
        && git_line(
            ex,
            root,
            &["rev-parse", "--verify", "-q", &format!("{sha}^{{commit}}")],
        )
        .ok()
        .flatten()
        .is_some()
}

/// How to find the base outside of `--base`: the GitHub event when in Actions.
fn event_from_env() -> Result<EventBase, ChangesError> {
    if !env_vars::in_github_actions() {
        return Ok(EventBase::None);
    }
    let (Some(name), Some(path)) = (
        env_vars::get(env_vars::GITHUB_EVENT_NAME),
        env_vars::get(env_vars::GITHUB_EVENT_PATH),
    ) else {
        return Ok(EventBase::None);
    };
    if !matches!(
        name.as_str(),
        "push" | "pull_request" | "pull_request_target"
    ) {
        return Ok(EventBase::None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ChangesError::new(
            format!("cannot read the GitHub event payload {path}: {e}"),
            Some("pass --base REF to choose the base commit yourself".into()),
        )
    })?;
    event_base(&name, &text)
}

/// Runs `git args` in `root` and collects its output.
fn git(ex: &mut dyn Executor, root: &Path, args: &[&str]) -> Result<Output, ChangesError> {
    ex.capture(&git_cmd(root, args)).map_err(cannot_run)
}

fn git_cmd<S: AsRef<str>>(root: &Path, args: &[S]) -> Cmd {
    Cmd::new("git")
        .args(args.iter().map(|a| a.as_ref().to_string()))
        .cwd(root.to_string_lossy())
}

fn cannot_run(e: ExecError) -> ChangesError {
    let e = match e {
        ExecError::Spawn { message, .. } => message,
        other => other.to_string(),
    };
    ChangesError::new(
        format!("cannot run git: {e}"),
        Some("install git, or pass --all / --only UNIT to skip change detection".to_string()),
    )
}

fn git_line(
    ex: &mut dyn Executor,
    root: &Path,
    args: &[&str],
) -> Result<Option<String>, ChangesError> {
    let out = git(ex, root, args)?;
    Ok(out
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// Resolves the affected units: `--only`, `--all`, else a git diff from the chosen base to HEAD in
/// `root` (the directory holding deploy.yml; paths are matched relative to it).
pub fn detect(
    ex: &mut dyn Executor,
    m: &Manifest,
    root: &Path,
    base_flag: Option<&str>,
    all: bool,
    only: &[String],
) -> Result<Affected, ChangesError> {
    detect_from(ex, m, root, base_flag, None, all, only)
}

/// [`detect`] for a run on an environment: without `--base`, the diff starts at the commit of the
/// environment's live release (`release`), so a unit whose deploy failed or was rolled back is
/// deployed again by the next run even when that push did not touch it. When that commit is not
/// in the clone (a shallow checkout), the GitHub event or `HEAD~1` is used and a note says so.
pub fn detect_from(
    ex: &mut dyn Executor,
    m: &Manifest,
    root: &Path,
    base_flag: Option<&str>,
    release: Option<&ReleaseBase>,
    all: bool,
    only: &[String],
) -> Result<Affected, ChangesError> {
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    if !only.is_empty() || all {
        return named_units(ex, m, root, all, only);
    }

    let mut notes = Vec::new();
    let release_usable = match (base_flag, release) {
        (None, Some(rel)) => {
            let ok = is_commit(ex, root, &rel.sha);
            if !ok {
                notes.push(release_missing_note(rel));
            }
            ok
        }
        _ => false,
    };
    // The event is only read when it is the base (an explicit --base or a live release wins).
    let event = if base_flag.is_some() || release_usable {
        EventBase::None
    } else {
        event_from_env()?
    };
    let choice = choose_base(base_flag, release, release_usable, event);
    if let (true, Some(rel)) = (release_usable, release) {
        notes.push(release_base_note(rel));
    }
    if let Some((base_ref, _)) = &choice
        && base_ref.starts_with('-')
    {
        return Err(ChangesError::new(
            format!("`{base_ref}` is not a git revision"),
            Some("pass a branch, tag or commit to --base".into()),
        ));
    }
    match resolve_range(ex, root, choice)? {
        Range::Diff { head, base, from } => diff_units(ex, m, root, head, base, from, notes),
        Range::Every { head, reason } => Ok(Affected {
            units: all_units(m),
            base: None,
            head,
            reason,
            changed_files: 0,
            notes,
        }),
    }
}

/// `--all` or `--only`: the units named, at HEAD (or `GITHUB_SHA`, or `HEAD` itself when git
/// cannot say), with no diff.
fn named_units(
    ex: &mut dyn Executor,
    m: &Manifest,
    root: &Path,
    all: bool,
    only: &[String],
) -> Result<Affected, ChangesError> {
    let units = if all {
        all_units(m)
    } else {
        select_only(m, only)?
    };
    let head = head_sha(ex, root)
        .ok()
        .flatten()
        .or_else(|| env_vars::get(env_vars::GITHUB_SHA))
        .unwrap_or_else(|| "HEAD".into());
    Ok(Affected {
        units,
        base: None,
        head,
        reason: if all { Reason::All } else { Reason::Only },
        changed_files: 0,
        notes: Vec::new(),
    })
}

/// The note when the live release's commit is not in the clone, so another base is used.
fn release_missing_note(rel: &ReleaseBase) -> String {
    format!(
        "the commit of {}'s live release {} ({}) is not in this clone, so changes are computed from \
the push or HEAD~1 instead: a unit whose last deploy failed is deployed again only when it changed (fetch \
the history, e.g. actions/checkout with `fetch-depth: 0`)",
        rel.env,
        rel.number,
        short(&rel.sha)
    )
}

/// The note when the live release's commit is the base.
fn release_base_note(rel: &ReleaseBase) -> String {
    format!(
        "base: release {} of {}, the live release, built from {}: every unit changed since what {} runs now \
is affected (pass --base REF to compare with something else)",
        rel.number,
        rel.env,
        short(&rel.sha),
        rel.env
    )
}

/// The commit HEAD names, or `None` in a repository with no commit (or outside of one).
fn head_sha(ex: &mut dyn Executor, root: &Path) -> Result<Option<String>, ChangesError> {
    git_line(ex, root, &["rev-parse", "--verify", "-q", "HEAD^{commit}"])
}

/// Whether the clone is shallow (`git rev-parse --is-shallow-repository`).
fn is_shallow(ex: &mut dyn Executor, root: &Path) -> Result<bool, ChangesError> {
    Ok(git_line(ex, root, &["rev-parse", "--is-shallow-repository"])?.as_deref() == Some("true"))
}

/// What the diff runs over, or why every unit is affected without one.
enum Range {
    /// Resolved commits: the diff runs from `base` to `head`.
    Diff {
        head: String,
        base: String,
        from: BaseFrom,
    },
    /// No base to compare with (a new branch, the first commit).
    Every { head: String, reason: Reason },
}

/// Resolves HEAD and the chosen base to commits: in one git call when both exist (the common
/// case), else one question at a time, so that the error says which is missing and why.
fn resolve_range(
    ex: &mut dyn Executor,
    root: &Path,
    choice: Option<(String, BaseFrom)>,
) -> Result<Range, ChangesError> {
    if let Some((base_ref, from)) = &choice
        && let Some((head, base)) = both_commits(ex, root, base_ref)?
    {
        return Ok(Range::Diff {
            head,
            base,
            from: *from,
        });
    }
    let Some(head) = head_sha(ex, root)? else {
        return Err(no_head_error(ex, root)?);
    };
    let Some((base_ref, from)) = choice else {
        return Ok(Range::Every {
            head,
            reason: Reason::NewBranch,
        });
    };
    let shallow = is_shallow(ex, root)?;
    let base_commit = format!("{base_ref}^{{commit}}");
    match git_line(ex, root, &["rev-parse", "--verify", "-q", &base_commit])? {
        Some(base) => Ok(Range::Diff { head, base, from }),
        // HEAD~1 does not exist in a complete history: HEAD is the first commit.
        None if from == BaseFrom::Parent && !shallow => Ok(Range::Every {
            head,
            reason: Reason::FirstCommit,
        }),
        None => Err(missing_base_error(&base_ref, from, shallow)),
    }
}

/// HEAD's and `base_ref`'s commits in one git call, or `None` when either is missing.
fn both_commits(
    ex: &mut dyn Executor,
    root: &Path,
    base_ref: &str,
) -> Result<Option<(String, String)>, ChangesError> {
    let base_commit = format!("{base_ref}^{{commit}}");
    let out = git_line(
        ex,
        root,
        &["rev-parse", "HEAD^{commit}", &base_commit, "--"],
    )?;
    Ok(out.and_then(|out| {
        let mut it = out.lines().map(str::trim).filter(|l| !l.is_empty());
        match (it.next(), it.next()) {
            (Some(h), Some(b)) => Some((h.to_string(), b.to_string())),
            _ => None,
        }
    }))
}

/// Why HEAD names no commit: a repository without a commit yet, or no repository at all.
fn no_head_error(ex: &mut dyn Executor, root: &Path) -> Result<ChangesError, ChangesError> {
    let inside = git_line(ex, root, &["rev-parse", "--is-inside-work-tree"])?;
    let message = if inside.as_deref() == Some("true") {
        "this git repository has no commit yet: nothing to compare".to_string()
    } else {
        format!(
            "{} is not in a git repository: cannot find changed files",
            root.display()
        )
    };
    Ok(ChangesError::new(
        message,
        Some("pass --all or --only UNIT to choose the units yourself".into()),
    ))
}

/// The units whose globs match a file the diff from `base` to `head` lists.
fn diff_units(
    ex: &mut dyn Executor,
    m: &Manifest,
    root: &Path,
    head: String,
    base: String,
    from: BaseFrom,
    notes: Vec<String>,
) -> Result<Affected, ChangesError> {
    let dots = if from.merge_base() { "..." } else { ".." };
    let range = format!("{base}{dots}{head}");
    let diff_args: Vec<String> = [
        "-c",
        "core.quotePath=false",
        "diff",
        "--name-only",
        "--no-renames",
        "--relative",
        "-z",
        range.as_str(),
        "--",
    ]
    .map(String::from)
    .to_vec();
    let mut matcher = UnitMatcher::for_manifest(m)?;
    let (changed, read_result) = diff_names(ex, root, &diff_args, &mut matcher)?;
    if let Err(text) = read_result {
        return Err(diff_failed(ex, root, &base, from, &range, &text));
    }
    let display_range = format!("{}{dots}{}", short(&base), short(&head));
    Ok(Affected {
        units: matcher.matched(),
        base: Some(base),
        head,
        reason: Reason::Diff {
            from,
            range: display_range,
        },
        changed_files: changed,
        notes,
    })
}

/// The error for a failed `git diff` over `range` (no merge base in a shallow clone, say): a
/// missing base says what to fetch; the range is always named.
fn diff_failed(
    ex: &mut dyn Executor,
    root: &Path,
    base: &str,
    from: BaseFrom,
    range: &str,
    text: &str,
) -> ChangesError {
    let shallow = is_shallow(ex, root).unwrap_or(false);
    let mut err = if from.merge_base() && (shallow || text.contains("merge base")) {
        missing_base_error(base, from, shallow)
    } else {
        ChangesError::new(format!("git diff {range} failed: {text}"), None)
    };
    if !err.message.contains(range) {
        err.message = format!("{} (git diff {range})", err.message);
    }
    err
}

/// Runs `git diff` with `args` in `root`, its NUL-separated names written to a temporary file and
/// read back one by one into `matcher`. Returns how many names it listed, and the failure of the
/// diff itself (a missing merge base, say) as text.
fn diff_names(
    ex: &mut dyn Executor,
    root: &Path,
    args: &[String],
    matcher: &mut UnitMatcher,
) -> Result<(usize, Result<(), String>), ChangesError> {
    let io = |e: std::io::Error| ChangesError::new(format!("cannot run git diff: {e}"), None);
    let mut file = tempfile::tempfile().map_err(io)?;
    let out = ex
        .capture_to_file(&git_cmd(root, args), &file)
        .map_err(|e| ChangesError::new(format!("cannot run git diff: {e}"), None))?;
    file.rewind().map_err(io)?;
    let mut changed = 0usize;
    let mut buf = Vec::with_capacity(256);
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    loop {
        buf.clear();
        match reader.read_until(0, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Ok((changed, Err(e.to_string()))),
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        changed += 1;
        matcher.add_path(&String::from_utf8_lossy(&buf));
    }
    if !out.success() {
        let argv: Vec<&str> = std::iter::once("git")
            .chain(args.iter().map(String::as_str))
            .collect();
        return Ok((
            changed,
            Err(format!("command {argv:?} exited with code {}", out.status)),
        ));
    }
    Ok((changed, Ok(())))
}
