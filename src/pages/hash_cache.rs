//! A persistent cache of asset hashes, so that deploying a directory again reads only the files
//! that changed: per site root, each file's hash keyed by its relative path (the hash depends on
//! the extension) and by what `stat` says of the file — device, inode, size, and modification and
//! change times to the nanosecond.
//!
//! Why a hit is safe: the change time (`ctime`) cannot be set by a program (unlike `mtime`, which
//! `touch -d` or an archive extractor sets); any write, rename over, truncation or `chmod` moves it
//! to the current time. An entry is only recorded when the file's `ctime` and `mtime` are at least
//! [`HashCache::SETTLE`] older than the moment the walk started, and the stamp recorded is the one
//! `fstat` gave on the open file just before its bytes were read. So any later change gives the
//! file a `ctime` at or after the walk's start (file-system clocks lag real time by a tick, far less
//! than the margin) — never the recorded one — and the entry no longer matches. A file replaced by
//! another gets a new inode; a file reached through a symlink is stamped through it.
//!
//! Limits, documented in docs/pages.md: local file systems (a network file system may show stale
//! attributes without an `open`); a system clock set back by more than the margin between two
//! runs could let a change made in that window match an old stamp — `DEPLOY_PAGES_HASH_CACHE=off`
//! turns the cache off. Unix only (elsewhere there is no cache).
//!
//! Reads and writes one file in the cache directory; no network, no terminal.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `stat` says of a file, as far as the cache cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    #[cfg(unix)]
    pub fn of(m: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_m: &std::fs::Metadata) -> Option<Stamp> {
        None
    }

    /// Both times at or before `t` (seconds and nanoseconds since the epoch).
    fn settled_by(&self, t: Duration) -> bool {
        let at = |s: i64, ns: i64| -> Option<Duration> {
            Some(Duration::new(
                u64::try_from(s).ok()?,
                u32::try_from(ns).ok()?,
            ))
        };
        match (at(self.mtime, self.mtime_ns), at(self.ctime, self.ctime_ns)) {
            (Some(m), Some(c)) => m <= t && c <= t,
            _ => false,
        }
    }
}

/// One remembered file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub rel: String,
    pub stamp: Stamp,
    pub hash: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    root: String,
    entries: Vec<Entry>,
}

const VERSION: u32 = 1;

/// The cache of one site root.
#[derive(Debug)]
pub struct HashCache {
    path: PathBuf,
    root: String,
    entries: HashMap<String, (Stamp, String)>,
    /// Stamps at or before this (since the epoch) may be recorded.
    settled_before: Duration,
}

impl HashCache {
    /// How much older than the walk a file's times must be for its hash to be recorded.
    pub const SETTLE: Duration = Duration::from_secs(2);

    /// The cache of `root` in `dir` (read if it exists and is readable, else empty), for a walk
    /// starting now.
    pub fn open(dir: &Path, root: &Path) -> HashCache {
        Self::open_at(dir, root, SystemTime::now(), Self::SETTLE)
    }

    /// [`HashCache::open`] with the walk's start and the settle margin given (for tests).
    pub fn open_at(dir: &Path, root: &Path, start: SystemTime, settle: Duration) -> HashCache {
        let root_abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let root = root_abs.to_string_lossy().into_owned();
        let name = blake3::hash(root.as_bytes()).to_hex()[..32].to_string();
        let path = dir.join(format!("{name}.json"));
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<File>(&b).ok())
            .filter(|f| f.version == VERSION && f.root == root)
            .map(|f| {
                f.entries
                    .into_iter()
                    .map(|e| (e.rel, (e.stamp, e.hash)))
                    .collect()
            })
            .unwrap_or_default();
        let since_epoch = start.duration_since(UNIX_EPOCH).unwrap_or_default();
        HashCache {
            path,
            root,
            entries,
            settled_before: since_epoch.saturating_sub(settle),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The recorded hash of `rel`, if the file's stamp is exactly the recorded one.
    pub fn lookup(&self, rel: &str, stamp: &Stamp) -> Option<&str> {
        self.entries
            .get(rel)
            .filter(|(s, _)| s == stamp)
            .map(|(_, h)| h.as_str())
    }

    /// An entry worth keeping: a hit, or a fresh hash of a file that was settled before the walk.
    pub fn keep(&self, rel: &str, stamp: Stamp, hash: &str) -> Option<Entry> {
        let hit = self.lookup(rel, &stamp) == Some(hash);
        (hit || stamp.settled_by(self.settled_before)).then(|| Entry {
            rel: rel.to_string(),
            stamp,
            hash: hash.to_string(),
        })
    }

    /// Replaces the cache file with `entries` (files gone from the site are dropped), unless they
    /// are what it already holds. Written to a temporary file and renamed into place.
    pub fn save(&self, mut entries: Vec<Entry>) -> std::io::Result<bool> {
        let same = entries.len() == self.entries.len()
            && entries
                .iter()
                .all(|e| self.lookup(&e.rel, &e.stamp) == Some(e.hash.as_str()));
        if same {
            return Ok(false);
        }
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        let doc = File {
            version: VERSION,
            root: self.root.clone(),
            entries,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&doc).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(true)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn stamp(p: &Path) -> Stamp {
        Stamp::of(&std::fs::metadata(p).unwrap()).unwrap()
    }

    #[test]
    fn entries_round_trip_and_only_settled_files_are_kept() {
        let cache_dir = tempfile::tempdir().unwrap();
        let site = tempfile::tempdir().unwrap();
        let f = site.path().join("a.txt");
        std::fs::write(&f, "x").unwrap();
        let s = stamp(&f);

        // A walk that started long after the file changed keeps it…
        let later = SystemTime::now() + Duration::from_secs(60);
        let c = HashCache::open_at(cache_dir.path(), site.path(), later, HashCache::SETTLE);
        assert!(c.is_empty());
        let e = c.keep("a.txt", s, "h1").unwrap();
        assert!(c.save(vec![e.clone()]).unwrap());
        // …one that started right after it changed does not.
        let now = HashCache::open_at(
            cache_dir.path(),
            site.path(),
            SystemTime::now(),
            HashCache::SETTLE,
        );
        assert_eq!(now.lookup("a.txt", &s), Some("h1"));
        let other = Stamp {
            ino: s.ino + 1,
            ..s
        };
        assert_eq!(now.lookup("a.txt", &other), None);
        assert!(now.keep("b.txt", s, "h2").is_none());
        // A hit is kept whatever its age; saving the same entries writes nothing.
        assert_eq!(now.keep("a.txt", s, "h1"), Some(e.clone()));
        assert!(!now.save(vec![e]).unwrap());
    }

    #[test]
    fn a_damaged_or_foreign_cache_file_is_ignored() {
        let cache_dir = tempfile::tempdir().unwrap();
        let site = tempfile::tempdir().unwrap();
        let c = HashCache::open(cache_dir.path(), site.path());
        std::fs::write(c.path(), "{not json").unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
        std::fs::write(
            c.path(),
            r#"{"version":1,"root":"/elsewhere","entries":[{"rel":"a","stamp":{"dev":1,"ino":1,"size":1,"mtime":1,"mtime_ns":1,"ctime":1,"ctime_ns":1},"hash":"h"}]}"#,
        )
        .unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
    }
}
