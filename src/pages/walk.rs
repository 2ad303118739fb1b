//! The directory walk and hashing, exactly as wrangler 4 does them: recursive from the root,
//! symlinks followed (`stat`, not `lstat`), each root-relative path tested against the ignore list
//! before recursing. The walk reads directories only (the entry types come with them; only
//! symlinks are `stat`ed), then every core hashes, each thread claiming the next file with one
//! atomic add — no channel, no lock per file, one `open`/`fstat`/`read`/`close` per small file.
//! Only paths, sizes and hashes are kept, never file contents.
//!
//! Reads the site directory; no network, no terminal.

use super::hash_cache::{Entry, HashCache, Stamp};
use super::special::{self, SpecialError, SpecialFiles, WorkerSource};
use super::{MAX_FILE_BYTES, content_type, hash};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// One file to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Root-relative path with `/` separators, no leading slash (`assets/hello world.txt`).
    pub rel: String,
    /// Where to read it (a symlink's own path: reads follow it).
    pub path: PathBuf,
    pub size: u64,
    pub hash: String,
    pub content_type: &'static str,
}

/// A walked site: the assets (sorted by path) and the special root files.
#[derive(Clone, Debug, Default)]
pub struct Site {
    pub root: PathBuf,
    pub assets: Vec<Asset>,
    /// Root `_headers`, when it exists and is non-empty.
    pub headers: Option<PathBuf>,
    /// Root `_redirects`, when it exists and is non-empty.
    pub redirects: Option<PathBuf>,
    /// Root `_worker.js` file or directory (advanced mode).
    pub worker: Option<WorkerSource>,
    /// Root `_routes.json` (sent only with a worker).
    pub routes_json: Option<PathBuf>,
}

impl Site {
    /// Reads and checks the special files that go with the deployment.
    pub fn special_files(&self) -> Result<SpecialFiles, SpecialError> {
        special::read(
            self.headers.as_deref(),
            self.redirects.as_deref(),
            self.worker.as_ref(),
            self.routes_json.as_deref(),
        )
    }

    /// The deployment manifest: `"/" + path → hash`, sorted.
    pub fn manifest(&self) -> BTreeMap<String, String> {
        self.assets
            .iter()
            .map(|a| (format!("/{}", a.rel), a.hash.clone()))
            .collect()
    }

    /// Each distinct hash once, in path order.
    pub fn distinct_hashes(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.assets
            .iter()
            .filter(|a| seen.insert(a.hash.as_str()))
            .map(|a| a.hash.clone())
            .collect()
    }

    pub fn total_bytes(&self) -> u64 {
        self.assets.iter().map(|a| a.size).sum()
    }

    /// Published dotfiles worth a warning (`.env`, `.git*` …): wrangler publishes them too.
    pub fn sensitive_files(&self) -> Vec<&str> {
        self.assets
            .iter()
            .map(|a| a.rel.as_str())
            .filter(|rel| {
                rel.split('/').any(|seg| {
                    seg == ".env"
                        || seg.starts_with(".env.")
                        || seg.starts_with(".git")
                        || seg == ".npmrc"
                        || seg.starts_with("id_rsa")
                })
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("the site directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: the file name is not valid UTF-8, which a Pages manifest cannot hold")]
    NotUtf8(PathBuf),
    #[error(
        "Pages only supports files up to 25 MiB in size\n{rel} is {:.2} MiB in size",
        *size as f64 / 1024.0 / 1024.0
    )]
    TooLarge { rel: String, size: u64 },
    #[error("{0}: symbolic link loop (a directory links to one of its parents)")]
    Loop(PathBuf),
}

/// Names ignored only at the top level (a pattern without `/` matches only there).
const ROOT_ONLY: &[&str] = &[
    "_worker.js",
    "_redirects",
    "_headers",
    "_routes.json",
    "functions",
    ".wrangler",
];
/// `**/<name>`: any depth, except below a dot-directory (minimatch's `**` skips dot segments).
const ANY_DEPTH: &[&str] = &[".DS_Store", "node_modules", ".git"];

/// Whether wrangler ignores this root-relative path (`/` separators).
pub fn is_ignored(rel: &str) -> bool {
    let mut segs: Vec<&str> = rel.split('/').collect();
    let Some(name) = segs.pop() else { return false };
    if segs.is_empty() && ROOT_ONLY.contains(&name) {
        return true;
    }
    ANY_DEPTH.contains(&name) && !segs.iter().any(|s| s.starts_with('.'))
}

/// A file found by the walk, before hashing.
struct Found {
    rel: String,
    path: PathBuf,
}

/// A walk with a hash cache: the site, and what the cache should hold afterwards.
#[derive(Debug)]
pub struct Walked {
    pub site: Site,
    /// What the cache file should hold now (its hits and the fresh hashes of settled files), or
    /// `None` when that is exactly what it holds already.
    pub cache_update: Option<Vec<Entry>>,
    /// Files whose hash came from the cache (not read).
    pub cache_hits: usize,
}

/// Walks `root` and hashes every file on `threads` threads (the calling one included).
/// `progress(files, bytes)` is called on the calling thread as hashing goes on.
pub fn walk_and_hash(
    root: &Path,
    threads: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Site, WalkError> {
    walk_and_hash_cached(root, threads, None, progress).map(|w| w.site)
}

/// [`walk_and_hash`] that takes a file's hash from `cache` when its stamp matches (one `stat`,
/// no read) and returns the entries the cache should keep.
pub fn walk_and_hash_cached(
    root: &Path,
    threads: usize,
    cache: Option<&HashCache>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Walked, WalkError> {
    let meta = std::fs::metadata(root).map_err(|_| WalkError::NotADirectory(root.into()))?;
    if !meta.is_dir() {
        return Err(WalkError::NotADirectory(root.into()));
    }
    let mut site = with_special_files(root);
    let mut found = Vec::new();
    walk_dir(root, "", &mut Vec::new(), &mut found)?;
    let work = HashWork::new(&found, cache);
    let mut results = work.run(root, threads, progress);
    // The error of the first file in walk order, whichever thread met it.
    if let Some((_, e)) = results
        .iter_mut()
        .filter_map(|r| r.error.take())
        .min_by_key(|(i, _)| *i)
    {
        return Err(e);
    }
    let mut assets = Vec::with_capacity(found.len());
    let (mut hits, mut fresh) = (Vec::new(), Vec::new());
    for r in results {
        assets.extend(r.assets);
        hits.extend(r.hits);
        fresh.extend(r.fresh);
    }
    assets.sort_by(|a, b| a.rel.cmp(&b.rel));
    site.assets = assets;
    Ok(Walked {
        site,
        cache_update: cache_update(cache, &found, &hits, fresh),
        cache_hits: hits.len(),
    })
}

/// A site at `root` with its special root files (`_headers`, `_redirects`, `_worker.js`,
/// `_routes.json`) found, and no assets yet.
fn with_special_files(root: &Path) -> Site {
    let mut site = Site {
        root: root.to_path_buf(),
        ..Site::default()
    };
    for (name, slot) in [
        ("_headers", &mut site.headers),
        ("_redirects", &mut site.redirects),
    ] {
        let p = root.join(name);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.len() > 0) {
            *slot = Some(p);
        }
    }
    let worker = root.join("_worker.js");
    match std::fs::metadata(&worker) {
        Ok(m) if m.is_dir() => site.worker = Some(WorkerSource::Directory(worker)),
        Ok(m) if m.is_file() => site.worker = Some(WorkerSource::File(worker)),
        _ => {}
    }
    let routes = root.join("_routes.json");
    if std::fs::metadata(&routes).is_ok_and(|m| m.is_file()) {
        site.routes_json = Some(routes);
    }
    site
}

/// What the cache file should hold after a walk (the entries that hit, then the fresh hashes),
/// or `None` when nothing is new and every entry hit: the file stays as it is (the common
/// unchanged case builds no entry list at all).
fn cache_update(
    cache: Option<&HashCache>,
    found: &[Found],
    hits: &[usize],
    mut fresh: Vec<Entry>,
) -> Option<Vec<Entry>> {
    cache
        .filter(|c| !fresh.is_empty() || hits.len() != c.len())
        .map(|c| {
            let mut all: Vec<Entry> = hits
                .iter()
                .filter_map(|&i| c.entry(&found[i].rel))
                .collect();
            all.append(&mut fresh);
            all
        })
}

/// The files of a walk shared by the hashing threads: each claims the next file with one atomic
/// add, and the counts feed the progress callback.
struct HashWork<'a> {
    found: &'a [Found],
    cache: Option<&'a HashCache>,
    /// The index of the next file to claim.
    next: AtomicUsize,
    files: AtomicU64,
    bytes: AtomicU64,
    /// Set by the thread that failed, so the others stop claiming files.
    stop: AtomicBool,
}

impl<'a> HashWork<'a> {
    fn new(found: &'a [Found], cache: Option<&'a HashCache>) -> Self {
        HashWork {
            found,
            cache,
            next: AtomicUsize::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Hashes every file on `threads` threads (the calling one included, which reports
    /// `progress(files, bytes)`), one [`Hashed`] per thread.
    fn run(&self, root: &Path, threads: usize, progress: &mut dyn FnMut(u64, u64)) -> Vec<Hashed> {
        let threads = threads.clamp(1, self.found.len().max(1));
        let mut results = Vec::with_capacity(threads);
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| s.spawn(|| self.hash_claimed(&mut || {})))
                .collect();
            let mut report = || progress(self.files(), self.bytes());
            results.push(self.hash_claimed(&mut report));
            for h in helpers {
                results.push(h.join().unwrap_or_else(|_| Hashed {
                    error: Some((0, WalkError::Loop(root.into()))),
                    ..Hashed::default()
                }));
            }
        });
        progress(self.files(), self.bytes());
        results
    }

    fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Hashes files claimed one by one until none is left (or another thread failed).
    fn hash_claimed(&self, report: &mut dyn FnMut()) -> Hashed {
        let mut hasher = hash::FileHasher::new();
        let mut out = Hashed::default();
        while !self.stop.load(Ordering::Relaxed) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = self.found.get(i) else { break };
            match hash_one(&mut hasher, f, self.cache) {
                Ok((a, fresh)) => {
                    self.bytes.fetch_add(a.size, Ordering::Relaxed);
                    self.files.fetch_add(1, Ordering::Relaxed);
                    match fresh {
                        Fresh::Hit => out.hits.push(i),
                        Fresh::Record(e) => out.fresh.push(e),
                        Fresh::No => {}
                    }
                    out.assets.push(a);
                    if out.assets.len() % 32 == 0 {
                        report();
                    }
                }
                Err(e) => {
                    self.stop.store(true, Ordering::Relaxed);
                    out.error = Some((i, e));
                    return out;
                }
            }
        }
        out
    }
}

/// What one hashing thread produced.
#[derive(Default)]
struct Hashed {
    assets: Vec<Asset>,
    /// Indices (in walk order) of the files the cache answered.
    hits: Vec<usize>,
    /// Fresh hashes the cache may record.
    fresh: Vec<Entry>,
    /// The first file it failed on (its index in walk order).
    error: Option<(usize, WalkError)>,
}

/// What a hashed file means for the cache.
enum Fresh {
    Hit,
    Record(Entry),
    No,
}

/// Hashes one file, or takes its hash from the cache when its stamp matches. Returns the asset
/// and what it means for the cache.
fn hash_one(
    hasher: &mut hash::FileHasher,
    found: &Found,
    cache: Option<&HashCache>,
) -> Result<(Asset, Fresh), WalkError> {
    let io = |source| WalkError::Io {
        path: found.path.clone(),
        source,
    };
    let too_large = |size| WalkError::TooLarge {
        rel: found.rel.clone(),
        size,
    };
    let asset = |size, hash: String| Asset {
        content_type: content_type(&found.rel),
        rel: found.rel.clone(),
        path: found.path.clone(),
        size,
        hash,
    };
    if let Some(cache) = cache {
        // stat follows symlinks: the stamp is the target's.
        let stamp = std::fs::metadata(&found.path)
            .ok()
            .and_then(|m| Stamp::of(&m));
        if let Some(stamp) = stamp {
            if stamp.size > MAX_FILE_BYTES {
                return Err(too_large(stamp.size));
            }
            if let Some(h) = cache.lookup(&found.rel, &stamp) {
                return Ok((asset(stamp.size, h), Fresh::Hit));
            }
        }
    }
    let file = std::fs::File::open(&found.path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let len = meta.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    let (hash, size) = hasher.hash(Path::new(&found.rel), file, len).map_err(io)?;
    // The stamp fstat gave before the bytes were read; a file cut short while read is not kept.
    let fresh = match cache.zip(Stamp::of(&meta)) {
        Some((c, stamp)) if size == len && c.may_record(&stamp) => Fresh::Record(Entry {
            rel: found.rel.clone(),
            stamp,
            hash: hash.clone(),
        }),
        _ => Fresh::No,
    };
    Ok((asset(size, hash), fresh))
}

#[cfg(unix)]
fn dir_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn dir_id(_m: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn walk_dir(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<(u64, u64)>,
    found: &mut Vec<Found>,
) -> Result<(), WalkError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalkError::Io { path, source }
    };
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let id = dir_id(&meta);
    if cfg!(unix) && ancestors.contains(&id) {
        return Err(WalkError::Loop(dir.into()));
    }
    ancestors.push(id);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| WalkError::NotUtf8(path.clone()))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if is_ignored(&rel) {
            continue;
        }
        // stat, not lstat: symlinks are followed. The entry's own type (from the directory, no
        // system call on most file systems) answers for everything but symlinks.
        let ft = entry.file_type().map_err(io(&path))?;
        let (is_dir, is_file) = if ft.is_symlink() {
            let m = std::fs::metadata(&path).map_err(io(&path))?;
            (m.is_dir(), m.is_file())
        } else {
            (ft.is_dir(), ft.is_file())
        };
        if is_dir {
            walk_dir(&path, &rel, ancestors, found)?;
        } else if is_file {
            found.push(Found { rel, path });
        }
    }
    ancestors.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_table_of_the_reference() {
        for (p, ignored) in [
            ("_worker.js", true),
            ("_headers", true),
            ("_redirects", true),
            ("_routes.json", true),
            ("sub/_worker.js", false),
            ("sub/_headers", false),
            ("functions", true),
            ("sub/functions", false),
            (".wrangler", true),
            ("a/.wrangler", false),
            (".DS_Store", true),
            ("a/.DS_Store", true),
            (".well-known/.DS_Store", false),
            ("node_modules", true),
            ("a/b/c/node_modules", true),
            (".hidden/node_modules", false),
            ("a/.hidden/b/node_modules", false),
            (".git", true),
            ("a/.git", true),
            (".well-known/.git", false),
            ("NODE_MODULES", false),
            (".gitignore", false),
            (".github", false),
            (".env", false),
        ] {
            assert_eq!(is_ignored(p), ignored, "{p}");
        }
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn reference_example_manifest_with_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // Contents chosen so the hashes below are the reference's (§4 example).
        write(r, "real/a.txt", "hello\n");
        std::os::unix::fs::symlink("real/a.txt", r.join("link.txt")).unwrap();
        std::os::unix::fs::symlink("real", r.join("linkdir")).unwrap();
        write(r, "_headers", "/*\n  X-Frame-Options: DENY\n");
        write(r, "node_modules/x.js", "x");
        write(r, "a/node_modules/y.js", "y");
        write(r, ".git/HEAD", "ref");
        write(r, "functions/f.js", "f");
        write(r, "sub/_headers", "h");
        let mut last = (0, 0);
        let site = walk_and_hash(r, 2, &mut |files, bytes| last = (files, bytes)).unwrap();
        let keys: Vec<_> = site.manifest().into_keys().collect();
        assert_eq!(
            keys,
            [
                "/link.txt",
                "/linkdir/a.txt",
                "/real/a.txt",
                "/sub/_headers"
            ]
        );
        // The last progress report counts every file and byte.
        assert_eq!(last, (4, site.total_bytes()));
        let m = site.manifest();
        assert_eq!(m["/link.txt"], m["/real/a.txt"]);
        assert_eq!(m["/linkdir/a.txt"], m["/real/a.txt"]);
        assert_eq!(site.distinct_hashes().len(), 2);
        assert!(site.headers.is_some());
        assert!(site.redirects.is_none());
    }

    #[test]
    fn any_number_of_threads_gives_the_same_site() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            write(
                dir.path(),
                &format!("d{}/f{i}.txt", i % 7),
                &"x".repeat(i * 37),
            );
        }
        let one = walk_and_hash(dir.path(), 1, &mut |_, _| {}).unwrap();
        for threads in [2, 3, 8, 1000] {
            let many = walk_and_hash(dir.path(), threads, &mut |_, _| {}).unwrap();
            assert_eq!(many.assets, one.assets, "{threads} threads");
        }
        assert_eq!(one.assets.len(), 300);
        let empty = tempfile::tempdir().unwrap();
        assert!(
            walk_and_hash(empty.path(), 4, &mut |_, _| {})
                .unwrap()
                .assets
                .is_empty()
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_hash_cache_skips_unchanged_files_and_never_trusts_a_changed_one() {
        use std::time::{Duration, SystemTime};
        let cache_dir = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for i in 0..20 {
            write(r, &format!("f{i}.txt"), &format!("file {i:02}"));
        }
        // Files must be older than the settle margin to be recorded; a short margin for the test.
        let settle = Duration::from_millis(50);
        std::thread::sleep(Duration::from_millis(100));
        let walk = || {
            let cache = HashCache::open_at(cache_dir.path(), r, SystemTime::now(), settle);
            let w = walk_and_hash_cached(r, 2, Some(&cache), &mut |_, _| {}).unwrap();
            if let Some(entries) = &w.cache_update {
                cache.save(entries).unwrap();
            }
            w
        };
        let first = walk();
        assert_eq!(first.cache_hits, 0);
        assert_eq!(first.cache_update.as_ref().map(Vec::len), Some(20));
        let second = walk();
        assert_eq!(second.cache_hits, 20, "nothing read the second time");
        assert_eq!(second.cache_update, None, "nothing to write either");
        assert_eq!(second.site.assets, first.site.assets);

        // Same size, new bytes, and the old mtime put back: the ctime still moved.
        let f3 = r.join("f3.txt");
        let mtime = std::fs::metadata(&f3).unwrap().modified().unwrap();
        std::fs::write(&f3, "FILE 03").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f3)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        // Replaced by another file of the same size (a new inode).
        write(r, "tmp", "file XX");
        std::fs::rename(r.join("tmp"), r.join("f4.txt")).unwrap();
        let third = walk();
        assert_eq!(third.cache_hits, 18);
        let truth = walk_and_hash(r, 1, &mut |_, _| {}).unwrap();
        assert_eq!(third.site.assets, truth.assets);
        assert_ne!(third.site.assets, first.site.assets);
    }

    #[test]
    fn file_over_25_mib_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("big video.mp4")).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let ok = std::fs::File::create(dir.path().join("exact.bin")).unwrap();
        ok.set_len(MAX_FILE_BYTES).unwrap();
        let err = walk_and_hash(dir.path(), 2, &mut |_, _| {}).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("big video.mp4 is 25.00 MiB"), "{msg}");
        assert!(msg.contains("up to 25 MiB"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/f.txt", "x");
        std::os::unix::fs::symlink("..", dir.path().join("a/up")).unwrap();
        let err = walk_and_hash(dir.path(), 2, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, WalkError::Loop(_)), "{err}");
    }
}
