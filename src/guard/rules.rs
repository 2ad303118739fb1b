//! Deploy rules: which refs may change an environment (`branches:`), and whether the working tree
//! is clean. Deciding is pure ([`allowed`], [`parse_porcelain`]); reading the ref and the status
//! ([`current_ref`], [`dirty_files`]) runs git read-only, through an [`Executor`].

use crate::cmd::Cmd;
use crate::env_vars;
use crate::exec::{Executor, Output};
use globset::{GlobBuilder, GlobMatcher};
use std::path::Path;

/// What the run was started from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitRef {
    /// `refs/heads/<name>`.
    Branch(String),
    /// Any other full ref: a tag, a pull request's merge ref, a remote ref.
    Other(String),
    /// No branch checked out (a detached HEAD at this commit).
    Detached(String),
    /// The ref could not be read (no git repository, say), and why.
    Unknown(String),
}

impl GitRef {
    /// From a full ref name (`GITHUB_REF`, `git symbolic-ref HEAD`).
    pub fn from_full(full: &str) -> GitRef {
        match full.strip_prefix("refs/heads/") {
            Some(b) => GitRef::Branch(b.to_string()),
            None => GitRef::Other(full.to_string()),
        }
    }

    /// The ref in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            GitRef::Branch(b) => format!("branch `{b}`"),
            GitRef::Other(r) if r.starts_with("refs/tags/") => {
                format!("tag `{}`", &r["refs/tags/".len()..])
            }
            GitRef::Other(r) if r.starts_with("refs/pull/") => {
                format!("the pull request ref `{r}`")
            }
            GitRef::Other(r) => format!("ref `{r}`"),
            GitRef::Detached(sha) => format!("a detached HEAD at {sha}"),
            GitRef::Unknown(why) => format!("an unknown ref ({why})"),
        }
    }
}

/// A branch glob: `*` stays within one path component (`release/*` is not `release/1/2`), `**`
/// crosses them, as in `paths:`.
fn matcher(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// Whether `r` may change an environment whose `branches:` are `patterns` (empty: any ref). A
/// pattern matches a branch's name (`main`, `release/*`); a pattern starting with `refs/` matches
/// the full ref (`refs/tags/v*`).
pub fn allowed(patterns: &[String], r: &GitRef) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let full = match r {
        GitRef::Branch(b) => format!("refs/heads/{b}"),
        GitRef::Other(full) => full.clone(),
        GitRef::Detached(_) | GitRef::Unknown(_) => return false,
    };
    patterns.iter().any(|p| {
        let Some(m) = matcher(p) else { return false };
        if p.starts_with("refs/") {
            m.is_match(&full)
        } else {
            matches!(r, GitRef::Branch(b) if m.is_match(b))
        }
    })
}

/// Tracked files with uncommitted changes, from `git status --porcelain=v1 -z`.
pub fn parse_porcelain(out: &[u8]) -> Vec<String> {
    let mut files = Vec::new();
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        if entry.len() < 4 {
            continue;
        }
        let (status, path) = entry.split_at(3);
        if status.starts_with(b"??") || status.starts_with(b"!!") {
            continue;
        }
        files.push(String::from_utf8_lossy(path).into_owned());
        // A rename or copy carries its source path as the next field.
        if matches!(status[0], b'R' | b'C') || matches!(status[1], b'R' | b'C') {
            fields.next();
        }
    }
    files
}

fn git(ex: &mut dyn Executor, root: &Path, args: &[&str]) -> Option<Output> {
    ex.capture(
        &Cmd::new("git")
            .args(args.iter().copied())
            .cwd(root.to_string_lossy()),
    )
    .ok()
}

/// The ref this run comes from: `GITHUB_REF` in GitHub Actions, else the checked-out branch of
/// the repository at `root`.
pub fn current_ref(ex: &mut dyn Executor, root: &Path) -> GitRef {
    if env_vars::in_github_actions()
        && let Some(r) = env_vars::get(env_vars::GITHUB_REF)
    {
        return GitRef::from_full(&r);
    }
    match git(ex, root, &["symbolic-ref", "-q", "HEAD"]) {
        Some(o) if o.success() => GitRef::from_full(String::from_utf8_lossy(&o.stdout).trim()),
        Some(_) => match git(ex, root, &["rev-parse", "--short=12", "HEAD"]) {
            Some(o) if o.success() => {
                GitRef::Detached(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => GitRef::Unknown(format!("{} is not a git repository", root.display())),
        },
        None => GitRef::Unknown("git could not be run".into()),
    }
}

/// The tracked files with uncommitted changes in the repository at `root` (staged or not),
/// leaving out the tool's own state (`.deploy-action/`: audit log, backups, caches); `None` when
/// `root` is not a git repository (nothing is tracked there).
pub fn dirty_files(ex: &mut dyn Executor, root: &Path) -> Option<Vec<String>> {
    let out = git(
        ex,
        root,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude,glob)**/.deploy-action/**",
        ],
    )?;
    out.success().then(|| parse_porcelain(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn branches_match_by_name_and_full_refs_by_refs_patterns() {
        let p = pats(&["main", "release/*"]);
        assert!(allowed(&p, &GitRef::Branch("main".into())));
        assert!(allowed(&p, &GitRef::Branch("release/1.2".into())));
        assert!(!allowed(&p, &GitRef::Branch("feature/x".into())));
        assert!(!allowed(&p, &GitRef::Branch("release/1/2".into())));
        assert!(!allowed(&p, &GitRef::from_full("refs/tags/main")));
        assert!(!allowed(&p, &GitRef::from_full("refs/pull/7/merge")));
        assert!(!allowed(&p, &GitRef::Detached("abc".into())));
        assert!(!allowed(&p, &GitRef::Unknown("no git".into())));
        let tags = pats(&["refs/tags/v*"]);
        assert!(allowed(&tags, &GitRef::from_full("refs/tags/v1.0")));
        assert!(!allowed(&tags, &GitRef::Branch("v1.0".into())));
        assert!(allowed(&[], &GitRef::Detached("abc".into())));
    }

    #[test]
    fn refs_are_described_for_people() {
        assert_eq!(GitRef::from_full("refs/tags/v1").describe(), "tag `v1`");
        assert_eq!(
            GitRef::from_full("refs/pull/3/merge").describe(),
            "the pull request ref `refs/pull/3/merge`"
        );
        assert_eq!(GitRef::from_full("refs/heads/x").describe(), "branch `x`");
    }

    #[test]
    fn porcelain_lists_tracked_changes_only() {
        let out = b" M deploy.yml\0M  compose.yml\0R  new.yml\0old.yml\0?? notes.txt\0A  a b.txt\0";
        assert_eq!(
            parse_porcelain(out),
            vec!["deploy.yml", "compose.yml", "new.yml", "a b.txt"]
        );
        assert!(parse_porcelain(b"").is_empty());
    }
}
