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
//! Reads and writes one file in the cache directory; no network, no terminal. A run that finds
//! every file unchanged writes nothing and builds no entry list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `stat` says of a file, as far as the cache cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// Both times at or before `t` (since the epoch).
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

    fn words(&self) -> [u64; 7] {
        [
            self.dev,
            self.ino,
            self.size,
            self.mtime as u64,
            self.mtime_ns as u64,
            self.ctime as u64,
            self.ctime_ns as u64,
        ]
    }

    fn from_words(w: [u64; 7]) -> Stamp {
        Stamp {
            dev: w[0],
            ino: w[1],
            size: w[2],
            mtime: w[3] as i64,
            mtime_ns: w[4] as i64,
            ctime: w[5] as i64,
            ctime_ns: w[6] as i64,
        }
    }
}

/// One remembered file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub rel: String,
    pub stamp: Stamp,
    /// The asset key (32 lower-case hex digits).
    pub hash: String,
}

/// The cache file: `DAPH`, format version, the root, then each entry as its path, the seven
/// words of its stamp and the 16 bytes of its hash (little-endian lengths and words). Compact
/// and read in one go: ~100 bytes per file.
const MAGIC: &[u8; 4] = b"DAPH";
const VERSION: u32 = 2;

/// Relative path → (stamp, hash bytes).
type Entries = HashMap<Box<str>, (Stamp, [u8; 16])>;

/// The cache of one site root.
#[derive(Debug)]
pub struct HashCache {
    path: PathBuf,
    root: String,
    entries: Entries,
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
        let path = dir.join(format!("{name}.bin"));
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| decode(&b, &root))
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
    pub fn lookup(&self, rel: &str, stamp: &Stamp) -> Option<String> {
        self.entries
            .get(rel)
            .filter(|(s, _)| s == stamp)
            .map(|(_, h)| hex::encode(h))
    }

    /// Whether a fresh hash of a file with this stamp may be recorded: its times are settled.
    pub fn may_record(&self, stamp: &Stamp) -> bool {
        stamp.settled_by(self.settled_before)
    }

    /// The entry for `rel` as recorded (for a hit).
    pub fn entry(&self, rel: &str) -> Option<Entry> {
        self.entries.get(rel).map(|(stamp, h)| Entry {
            rel: rel.to_string(),
            stamp: *stamp,
            hash: hex::encode(h),
        })
    }

    /// Replaces the cache file with `entries` (files gone from the site are dropped). Written to a
    /// temporary file and renamed into place.
    pub fn save(&self, entries: &[Entry]) -> std::io::Result<()> {
        let mut sorted: Vec<&Entry> = entries.iter().collect();
        sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
        let mut out = Vec::with_capacity(16 + self.root.len() + entries.len() * 100);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_str(&mut out, &self.root);
        out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
        for e in sorted {
            let Ok(h) = <[u8; 16]>::try_from(hex::decode(&e.hash).unwrap_or_default()) else {
                continue;
            };
            put_str(&mut out, &e.rel);
            for w in e.stamp.words() {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&h);
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self
            .path
            .with_extension(format!("bin.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads a cache file; `None` if it is damaged, of another version or of another root.
fn decode(b: &[u8], root: &str) -> Option<Entries> {
    let mut r = Reader(b);
    if r.take(4)? != MAGIC || r.u32()? != VERSION || r.str()? != root {
        return None;
    }
    let n = usize::try_from(r.u64()?).ok()?;
    let mut map = HashMap::with_capacity(n.min(b.len() / 90));
    for _ in 0..n {
        let rel = r.str()?;
        let mut w = [0u64; 7];
        for x in &mut w {
            *x = r.u64()?;
        }
        let h: [u8; 16] = r.take(16)?.try_into().ok()?;
        map.insert(Box::from(rel), (Stamp::from_words(w), h));
    }
    r.0.is_empty().then_some(map)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.u32()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn stamp(p: &Path) -> Stamp {
        Stamp::of(&std::fs::metadata(p).unwrap()).unwrap()
    }

    const H1: &str = "0c96efd2ce058760209b8820885dc97f";

    #[test]
    fn entries_round_trip_and_only_settled_files_may_be_recorded() {
        let cache_dir = tempfile::tempdir().unwrap();
        let site = tempfile::tempdir().unwrap();
        let f = site.path().join("a.txt");
        std::fs::write(&f, "x").unwrap();
        let s = stamp(&f);

        // A walk that started long after the file changed may record it…
        let later = SystemTime::now() + Duration::from_secs(60);
        let c = HashCache::open_at(cache_dir.path(), site.path(), later, HashCache::SETTLE);
        assert!(c.is_empty());
        assert!(c.may_record(&s));
        let e = Entry {
            rel: "dir/a b.txt".into(),
            stamp: s,
            hash: H1.into(),
        };
        c.save(std::slice::from_ref(&e)).unwrap();
        // …one that started right after it changed may not.
        let now = HashCache::open_at(
            cache_dir.path(),
            site.path(),
            SystemTime::now(),
            HashCache::SETTLE,
        );
        assert!(!now.may_record(&s));
        assert_eq!(now.len(), 1);
        assert_eq!(now.lookup("dir/a b.txt", &s).as_deref(), Some(H1));
        assert_eq!(now.entry("dir/a b.txt"), Some(e));
        let other = Stamp {
            ino: s.ino + 1,
            ..s
        };
        assert_eq!(now.lookup("dir/a b.txt", &other), None);
        assert_eq!(now.lookup("a.txt", &s), None);
    }

    #[test]
    fn a_damaged_or_foreign_cache_file_is_ignored() {
        let cache_dir = tempfile::tempdir().unwrap();
        let site = tempfile::tempdir().unwrap();
        let f = site.path().join("a.txt");
        std::fs::write(&f, "x").unwrap();
        let c = HashCache::open(cache_dir.path(), site.path());
        let e = Entry {
            rel: "a.txt".into(),
            stamp: stamp(&f),
            hash: H1.into(),
        };
        c.save(&[e]).unwrap();
        let good = std::fs::read(c.path()).unwrap();
        assert_eq!(HashCache::open(cache_dir.path(), site.path()).len(), 1);
        // Cut short, one byte changed in the root, or trailing bytes: all ignored.
        std::fs::write(c.path(), &good[..good.len() - 1]).unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
        let mut other_root = good.clone();
        other_root[12] ^= 1;
        std::fs::write(c.path(), &other_root).unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(c.path(), &longer).unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
        std::fs::write(c.path(), "{not json").unwrap();
        assert!(HashCache::open(cache_dir.path(), site.path()).is_empty());
    }
}
