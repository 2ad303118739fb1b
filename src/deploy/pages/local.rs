//! The local half of a `pages` run: a site's build (through an executor: the local one, or the
//! recording one of a dry run), the walk and hash of its directory with the hash cache, its special
//! files, the warnings about what it publishes, and the file table a dry run shows.
//!
//! Stays out of the HTTP (`remote.rs`) and of deciding what runs (the plan).

use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::env_vars::{self as ev, DEPLOY_PAGES_HASH_CACHE};
use crate::error::{CommandFailure, Error, Result, STDERR_TAIL_LINES};
use crate::exec::{Executor, StderrTail};
use crate::pages::{self, SpecialError, SpecialFiles, WalkError};
use crate::report::{Summary, progress::human_bytes};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A walked site: every file with its hash, and the special files sent with the deployment.
#[derive(Clone, Debug)]
pub struct Walked {
    pub site: pages::Site,
    pub special: SpecialFiles,
}

/// Runs a site's build `cmd` on `ex`, its output relayed under the site's name. A recording
/// executor records it and runs nothing. A failure keeps the last lines of the build's stderr.
pub fn build(ctx: &Ctx, ex: &mut dyn Executor, name: &str, cmd: &Cmd, show: bool) -> Result<()> {
    if show {
        ctx.report
            .group_start(&format!("build {name}: {}", cmd.shown()));
    }
    let mut tail = StderrTail::new(STDERR_TAIL_LINES);
    let status = ex.run(cmd, None, &mut |stream, line| {
        tail.keep(stream, line);
        ctx.report.relay(name, stream, line)
    });
    if show {
        ctx.report.group_end();
    }
    match status? {
        0 => Ok(()),
        code => Err(
            CommandFailure::new(ex.label(), format!("the build of site `{name}`"), cmd)
                .unit(name)
                .status(code)
                .stderr(tail.text())
                .into(),
        ),
    }
}

/// Walks and hashes the site `name` at `dir`, reads its special files and warns about what it
/// publishes. `save_cache`: write the hash cache (not in a dry run).
pub fn walk_site(
    ctx: &Ctx,
    root: &Path,
    name: &str,
    dir: &Path,
    save_cache: bool,
) -> Result<Walked> {
    let site = walk(ctx, name, dir, save_cache)?;
    let special = site.special_files().map_err(|e| special_error(name, e))?;
    warn_about_functions(ctx, name, &site, root);
    Ok(Walked { site, special })
}

/// The hash cache directory, if any.
fn hash_cache_dir() -> Option<PathBuf> {
    match ev::get(DEPLOY_PAGES_HASH_CACHE) {
        Some(v) if ["", "0", "off", "false", "no"].contains(&v.to_ascii_lowercase().as_str()) => {
            None
        }
        Some(v) => Some(PathBuf::from(v)),
        None => ev::get("XDG_CACHE_HOME")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
            .or_else(|| ev::get(ev::HOME).map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("deploy-action").join("pages-hashes")),
    }
}

fn walk(ctx: &Ctx, name: &str, dir: &Path, save_cache: bool) -> Result<pages::Site> {
    let progress = ctx.report.progress(&format!("{name}: hashing"), 0, 0);
    let started = Instant::now();
    let cache = hash_cache_dir().map(|d| pages::HashCache::open(&d, dir));
    let walked =
        pages::walk_and_hash_cached(dir, hash_threads(), cache.as_ref(), &mut |files, bytes| {
            progress.set(files, bytes)
        })
        .map_err(|e| match e {
            WalkError::Io { path, source } => unreadable(name, path, &source),
            other => Error::usage(format!("site `{name}`: {other}")),
        })?;
    progress.finish();
    let site = walked.site;
    if let (Some(cache), Some(entries)) = (cache.as_ref(), walked.cache_update.as_ref())
        && save_cache
        && let Err(e) = cache.save(entries)
    {
        ctx.report.warn(&format!(
            "{name}: cannot write the hash cache {} ({e}); the next run hashes every file again (set {DEPLOY_PAGES_HASH_CACHE}=off to skip it)",
            cache.path().display()
        ));
    }
    ctx.report.info(&format!(
        "{name}: {} files, {} hashed in {:.1}s{}",
        site.assets.len(),
        human_bytes(site.total_bytes()),
        started.elapsed().as_secs_f64(),
        if walked.cache_hits > 0 {
            format!(
                " ({} unchanged files from the hash cache)",
                walked.cache_hits
            )
        } else {
            String::new()
        }
    ));
    let sensitive = site.sensitive_files();
    if !sensitive.is_empty() {
        let shown: Vec<&str> = sensitive.iter().take(5).copied().collect();
        ctx.report.warn(&format!(
            "{name}: publishing files that are often private: {}{}",
            shown.join(", "),
            if sensitive.len() > 5 { ", …" } else { "" }
        ));
    }
    Ok(site)
}

fn special_error(name: &str, e: SpecialError) -> Error {
    match e {
        SpecialError::Io { path, source } => unreadable(name, path, &source),
        other => Error::usage(format!("site `{name}`: {other}")),
    }
}

/// A file of site `name` that cannot be read (exit 1: the directory is there, the system failed).
fn unreadable(name: &str, path: PathBuf, e: &std::io::Error) -> Error {
    let what = format!("site `{name}`: cannot read {}", path.display());
    Error::io(what, Some(path), e)
}

/// Pages Functions (`functions/`) are compiled by wrangler, not by deploy-action: say so, and how
/// to ship them, rather than deploy a site silently without them. wrangler looks in its working
/// directory; users of a monorepo keep them next to the site's build output.
fn warn_about_functions(ctx: &Ctx, name: &str, site: &pages::Site, root: &Path) {
    if site.worker.is_some() {
        return;
    }
    let candidates = [
        PathBuf::from("functions"),
        site.root
            .parent()
            .map(|p| p.join("functions"))
            .unwrap_or_default(),
    ];
    if let Some(f) = candidates.iter().find(|p| p.is_dir()) {
        let shown = f.strip_prefix(root).unwrap_or(f);
        ctx.report.warn(&format!(
            "{name}: `{}` looks like Pages Functions, which deploy-action does not compile; the site is deployed without them. Compile them into the site's Worker first, e.g. `npx wrangler pages functions build {} --outdir {}/_worker.js`",
            shown.display(),
            shown.display(),
            site.root.display()
        ));
    }
}

fn hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8)
}

/// What a dry run shows of a walked site: every file with its hash, content type and size, the
/// special files, and the totals.
pub fn file_table(name: &str, project: &str, w: &Walked) -> Summary {
    let mut s = Summary::new(
        format!("{name} → Pages project {project} (dry run)"),
        &["path", "hash", "content type", "bytes"],
    );
    for a in &w.site.assets {
        s.row([
            format!("/{}", a.rel),
            a.hash.clone(),
            a.content_type.to_string(),
            a.size.to_string(),
        ]);
    }
    for (part, bytes) in w.special.parts() {
        s.note(format!(
            "`{part}` would be sent with the deployment ({} bytes)",
            bytes.len()
        ));
    }
    if !w.special.worker_modules.is_empty() {
        s.note(format!(
            "Worker modules (not bundled, as `wrangler pages deploy --no-bundle`): {}",
            w.special.worker_modules.join(", ")
        ));
    }
    s.note(format!(
        "{} files ({} distinct), {}; check-missing decides which are uploaded",
        w.site.assets.len(),
        w.site.distinct_hashes().len(),
        human_bytes(w.site.total_bytes())
    ));
    s
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A walked site of plain data: `files` as (path, hash, bytes).
    pub fn walked(files: &[(&str, &str, u64)]) -> Walked {
        Walked {
            site: pages::Site {
                root: PathBuf::from("/site"),
                assets: files
                    .iter()
                    .map(|(rel, hash, size)| pages::Asset {
                        rel: rel.to_string(),
                        path: PathBuf::from("/site").join(rel),
                        size: *size,
                        hash: hash.to_string(),
                        content_type: "text/html",
                    })
                    .collect(),
                headers: None,
                redirects: None,
                worker: None,
                routes_json: None,
            },
            special: SpecialFiles {
                headers: Some(b"/*\n  X-Frame-Options: DENY\n".to_vec()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_dry_run_table_lists_every_file_and_what_goes_with_the_deployment() {
        let w = walked(&[("index.html", "aa", 12), ("copy.html", "aa", 12)]);
        let text = file_table("web", "shop-web", &w).to_console();
        assert!(
            text.contains("web → Pages project shop-web (dry run)"),
            "{text}"
        );
        assert!(
            text.contains("/index.html") && text.contains("/copy.html"),
            "{text}"
        );
        assert!(text.contains("`_headers` would be sent"), "{text}");
        assert!(text.contains("2 files (1 distinct), 24 B"), "{text}");
    }

    #[test]
    fn a_build_is_relayed_and_a_failing_one_names_its_script() {
        let cmd = Cmd::shell("npm ci && npm run build");
        let rec = crate::exec::dry_run::Recording::default();
        let mut ex = crate::exec::dry_run::DryRunExecutor::new("local", rec.clone());
        let ctx = Ctx::new(
            crate::settings::Settings::default(),
            crate::report::Report::buffered(false, None),
        );
        build(&ctx, &mut ex, "web", &cmd, false).unwrap();
        assert_eq!(rec.list().len(), 1, "recorded, not run");
        // A failing build: its script, its status and the end of its stderr.
        let failing = Cmd::shell("echo one >&2; echo two >&2; exit 3");
        let mut local = crate::exec::local::LocalExecutor;
        let e = build(&ctx, &mut local, "web", &failing, false).unwrap_err();
        let Error::Command(c) = &e else {
            panic!("a command failure: {e:?}")
        };
        assert_eq!(
            (c.host.as_str(), c.unit.as_deref(), c.status),
            ("local", Some("web"), Some(3))
        );
        assert_eq!(c.stderr_tail, "one\ntwo");
        assert_eq!(
            e.to_string(),
            "the build of site `web` failed (exit status 3): `echo one >&2; echo two >&2; exit 3`\n  stderr:\n    one\n    two"
        );
    }
}
