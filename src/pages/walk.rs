//! The directory walk and hashing, exactly as wrangler 4 does them: recursive from the root,
//! symlinks followed (`stat`, not `lstat`), each root-relative path tested against the ignore list
//! before recursing. Files are hashed on worker threads while the walk goes on; only paths, sizes
//! and hashes are kept, never file contents.
//!
//! Reads the site directory; no network, no terminal.

use super::special::{self, SpecialError, SpecialFiles, WorkerSource};
use super::{MAX_FILE_BYTES, content_type, hash};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

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

/// Walks `root` and hashes every file on `threads` worker threads. `progress(files, bytes)` is
/// called after each file is hashed.
pub fn walk_and_hash(
    root: &Path,
    threads: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Site, WalkError> {
    let meta = std::fs::metadata(root).map_err(|_| WalkError::NotADirectory(root.into()))?;
    if !meta.is_dir() {
        return Err(WalkError::NotADirectory(root.into()));
    }
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

    let threads = threads.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Found>(1024);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel::<Result<Asset, WalkError>>();
    let mut assets = Vec::new();
    let mut first_err = None;
    std::thread::scope(|s| {
        let walker = s.spawn(move || {
            let mut ancestors = Vec::new();
            walk_dir(root, "", &mut ancestors, &job_tx)
        });
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            let tx = res_tx.clone();
            s.spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(found) = job else { return };
                    let _ = tx.send(hash_one(found));
                }
            });
        }
        drop(res_tx);
        let (mut files, mut bytes) = (0u64, 0u64);
        for r in res_rx {
            match r {
                Ok(a) => {
                    files += 1;
                    bytes += a.size;
                    progress(files, bytes);
                    assets.push(a);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match walker.join() {
            Ok(Err(e)) => first_err = Some(e),
            Ok(Ok(())) => {}
            Err(_) => first_err = Some(WalkError::Loop(root.into())),
        }
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    assets.sort_by(|a, b| a.rel.cmp(&b.rel));
    site.assets = assets;
    Ok(site)
}

fn hash_one(found: Found) -> Result<Asset, WalkError> {
    let meta = std::fs::metadata(&found.path).map_err(|source| WalkError::Io {
        path: found.path.clone(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(WalkError::TooLarge {
            rel: found.rel,
            size: meta.len(),
        });
    }
    let (hash, size) =
        hash::asset_key_of_file(Path::new(&found.rel), &found.path).map_err(|source| {
            WalkError::Io {
                path: found.path.clone(),
                source,
            }
        })?;
    Ok(Asset {
        content_type: content_type(&found.rel),
        rel: found.rel,
        path: found.path,
        size,
        hash,
    })
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
    jobs: &mpsc::SyncSender<Found>,
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
        // stat, not lstat: symlinks are followed.
        let m = std::fs::metadata(&path).map_err(io(&path))?;
        if m.is_dir() {
            walk_dir(&path, &rel, ancestors, jobs)?;
        } else if m.is_file() && jobs.send(Found { rel, path }).is_err() {
            break;
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
        let mut calls = 0;
        let site = walk_and_hash(r, 2, &mut |_, _| calls += 1).unwrap();
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
        assert_eq!(calls, 4);
        let m = site.manifest();
        assert_eq!(m["/link.txt"], m["/real/a.txt"]);
        assert_eq!(m["/linkdir/a.txt"], m["/real/a.txt"]);
        assert_eq!(site.distinct_hashes().len(), 2);
        assert!(site.headers.is_some());
        assert!(site.redirects.is_none());
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
