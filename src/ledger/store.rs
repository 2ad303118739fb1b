//! Where an environment's releases live, and the operations on them: read them all, add one, and
//! rewrite one (mark it bad, add a note).
//!
//! An environment with hosts keeps `<dir>/.deploy-action/releases/<n>.json` on every host (the
//! first host is the reference; the others are compared with it). An environment without hosts —
//! a Pages-only one — keeps its releases only as the annotated tags `deploy/<env>/<n>`, read with
//! git in the repository (locally) or through the GitHub API (in Actions).
//!
//! Stays out of deploying (`deploy/` writes the records of `up`) and of GitHub deployments
//! (`record.rs`).

use super::{HostState, current, next_number, parse_tag_listing, read, tag_listing_cmd};
use crate::commands::Ctx;
use crate::commands::up::connect;
use crate::deploy::{clock, lock};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::manifest::Environment;
use crate::state::StatePaths;
use crate::state::{AuditEntry, LockOwner, ReleaseRecord, ReleaseStatus, ReleaseStatusField};
use std::path::Path;
use std::time::Duration;

/// How long `append` waits for a deploy holding the environment lock before giving up.
pub const APPEND_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Where the releases of an environment were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `releases/<n>.json` on the environment's hosts.
    Hosts,
    /// The annotated tags `deploy/<env>/<n>`.
    Tags,
}

/// The releases of an environment, with what each host said.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub source: Source,
    /// Sorted by number, oldest first (the first host's, for [`Source::Hosts`]).
    pub releases: Vec<ReleaseRecord>,
    /// Per host, for [`Source::Hosts`]; empty for tags.
    pub hosts: Vec<(String, HostState)>,
}

impl Loaded {
    pub fn current(&self) -> Option<&ReleaseRecord> {
        current(&self.releases)
    }
}

/// The repository the manifest lives in (tags are made and read there).
pub fn repo_root(ctx: &Ctx) -> std::path::PathBuf {
    match ctx.settings.manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    }
}

/// Reads the releases of `env`: from every host, or from the tags when it has none.
pub fn load(ctx: &Ctx, env: &Environment) -> Result<Loaded> {
    if env.hosts.is_empty() {
        // A tag keeps the status its release was made with; the newest live one is current and
        // the older live ones were superseded by it.
        let mut releases = read_tags(ctx, &env.name)?;
        if let Some(cur) = current(&releases).map(|r| r.number) {
            for r in releases.iter_mut() {
                if r.number < cur && r.status.0 == ReleaseStatus::Live {
                    r.status = ReleaseStatusField(ReleaseStatus::Superseded);
                }
            }
        }
        return Ok(Loaded {
            source: Source::Tags,
            releases,
            hosts: Vec::new(),
        });
    }
    let mut hosts = Vec::new();
    for host in &env.hosts {
        let mut ex = connect(host, &ctx.report)?;
        let state = read(ex.as_mut(), &env.dir)?;
        for p in &state.ledger.problems {
            ctx.report
                .warn(&format!("{}: {}: {}", host.label(), p.file, p.message));
        }
        if let Some(p) = &state.lock_problem {
            ctx.report.warn(&format!("{}: {p}", host.label()));
        }
        hosts.push((host.label(), state));
    }
    let releases = hosts[0].1.ledger.releases.clone();
    let reference = current(&releases).map(|r| r.number);
    for (label, s) in hosts.iter().skip(1) {
        let theirs = current(&s.ledger.releases).map(|r| r.number);
        if theirs != reference {
            ctx.report.warn(&format!(
                "{label}: its current release is {} but {} says {}",
                show(theirs),
                hosts[0].0,
                show(reference)
            ));
        }
    }
    Ok(Loaded {
        source: Source::Hosts,
        releases,
        hosts,
    })
}

fn show(n: Option<u64>) -> String {
    n.map_or_else(|| "none".into(), |n| n.to_string())
}

/// The releases recorded as tags `deploy/<env>/<n>`: through the GitHub API in Actions (the
/// checkout may predate tags made by earlier jobs), else with git in the repository.
fn read_tags(ctx: &Ctx, env: &str) -> Result<Vec<ReleaseRecord>> {
    if let Some(gh) = super::record::github(ctx) {
        return read_tags_through_api(ctx, &gh, env);
    }
    let root = repo_root(ctx);
    let out = LocalExecutor.capture(&tag_listing_cmd(env).cwd(root.to_string_lossy()))?;
    if !out.success() {
        ctx.report.warn(&format!(
            "cannot read the tags of `{env}` in {}: {}",
            root.display(),
            out.stderr_tail(2)
        ));
        return Ok(Vec::new());
    }
    let ledger = parse_tag_listing(&out.stdout_str());
    for p in &ledger.problems {
        ctx.report.warn(&format!("tag {}: {}", p.file, p.message));
    }
    Ok(ledger.releases)
}

/// How many of the newest tags the API path reads (one request each).
const API_TAGS: usize = 30;

fn read_tags_through_api(
    ctx: &Ctx,
    gh: &crate::api::github::GitHub,
    env: &str,
) -> Result<Vec<ReleaseRecord>> {
    let prefix = format!("tags/deploy/{env}/");
    let refs = gh
        .list_matching_refs(&prefix)
        .map_err(|e| Error::StageFailed(format!("cannot list the tags of `{env}`: {e}")))?;
    let mut numbered: Vec<(u64, crate::api::github::GitRef)> = refs
        .into_iter()
        .filter(|r| r.object_type == "tag")
        .filter_map(|r| {
            let n = r.name.rsplit('/').next()?.parse::<u64>().ok()?;
            Some((n, r))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut text = String::new();
    for (_, r) in numbered.into_iter().take(API_TAGS) {
        let tag = gh
            .get_tag_object(&r.sha)
            .map_err(|e| Error::StageFailed(format!("cannot read {}: {e}", r.name)))?;
        let name = r.name.trim_start_matches("refs/tags/");
        text.push_str(&format!("{name}\0{}\u{1e}", tag.message));
    }
    let ledger = parse_tag_listing(&text);
    for p in &ledger.problems {
        ctx.report.warn(&format!("tag {}: {}", p.file, p.message));
    }
    Ok(ledger.releases)
}

/// A new release that is not an `up`: filled by `fill` from a record that already carries the
/// environment's complete state (the services, Pages deployments and migration version of the
/// current release), so the newest record always tells everything that runs.
///
/// With hosts: under the environment lock on every host (waiting up to [`APPEND_LOCK_WAIT`] for
/// a running deploy), numbered after that host's newest release, the previous live release marked
/// superseded, one audit line. Without hosts: numbered after the newest tag; the record exists
/// once `record::publish` tags it. Returns the first host's record.
pub fn append(
    ctx: &Ctx,
    env: &Environment,
    owner: &LockOwner,
    action: &str,
    units: &[String],
    fill: &dyn Fn(&mut ReleaseRecord),
) -> Result<ReleaseRecord> {
    if env.hosts.is_empty() {
        let releases = read_tags(ctx, &env.name)?;
        return Ok(new_record(env, owner, &releases, fill));
    }
    let mut first = None;
    for host in &env.hosts {
        let mut ex = connect(host, &ctx.report)?;
        let paths = StatePaths::new(&env.dir);
        lock::acquire(
            ex.as_mut(),
            &ctx.report,
            host,
            &paths,
            owner,
            &env.name,
            Some(APPEND_LOCK_WAIT),
        )?;
        let written = append_locked(ex.as_mut(), env, owner, action, units, fill);
        let released = lock::release(ex.as_mut(), &paths);
        let record = written?;
        if let Err(e) = released {
            ctx.report.warn(&format!(
                "{}: could not release the lock: {e}",
                host.label()
            ));
        }
        first.get_or_insert(record);
    }
    Ok(first.expect("at least one host"))
}

fn append_locked(
    ex: &mut dyn Executor,
    env: &Environment,
    owner: &LockOwner,
    action: &str,
    units: &[String],
    fill: &dyn Fn(&mut ReleaseRecord),
) -> Result<ReleaseRecord> {
    let state = read(ex, &env.dir)?;
    let record = new_record(env, owner, &state.ledger.releases, fill);
    write(ex, &env.dir, &record)?;
    if let Some(prev) = current(&state.ledger.releases)
        && prev.number != record.number
        && record.status.0 == ReleaseStatus::Live
    {
        let mut prev = prev.clone();
        prev.status = ReleaseStatusField(ReleaseStatus::Superseded);
        write(ex, &env.dir, &prev)?;
    }
    // Old records go when no image tag depends on them (`up` prunes the rest with the images).
    let mut all = state.ledger.releases.clone();
    all.push(record.clone());
    let prune = crate::plan::up::retention(&all, env.keep_releases);
    if prune.tags.is_empty() {
        for n in prune.records {
            let _ = ex.capture(&crate::cmd::docker_engine::rm_f(
                &StatePaths::new(&env.dir).release(n),
            ));
        }
    }
    audit(ex, env, owner, action, units, &record);
    Ok(record)
}

/// The next record: number, identity, status live, and the complete state of the current release
/// carried forward before `fill` changes what this release changed.
fn new_record(
    env: &Environment,
    owner: &LockOwner,
    releases: &[ReleaseRecord],
    fill: &dyn Fn(&mut ReleaseRecord),
) -> ReleaseRecord {
    let now = clock::now_rfc3339();
    let units = super::unit_versions(releases);
    let mut record = ReleaseRecord {
        number: next_number(releases),
        env: env.name.clone(),
        sha: owner.sha.clone(),
        status: ReleaseStatusField(ReleaseStatus::Live),
        created_at: now.clone(),
        finished_at: Some(now),
        actor: owner.actor.clone(),
        run_url: owner.run_url.clone(),
        ..Default::default()
    };
    for (name, (_, mut s)) in units.services {
        s.deployed = false;
        record.services.insert(name, s);
    }
    for (name, (_, p)) in units.pages {
        record.pages.insert(name, p);
    }
    record.migration_version = units.migration.map(|(_, v)| v);
    if let Some(reason) = super::record::reason() {
        record.notes.push(format!("reason: {reason}"));
    }
    fill(&mut record);
    record
}

/// Writes a record on one host (one line of JSON, atomically).
pub fn write(ex: &mut dyn Executor, dir: &str, record: &ReleaseRecord) -> Result<()> {
    let text = serde_json::to_string(record).map_err(|e| Error::Other(e.into()))?;
    ex.upload(
        &StatePaths::new(dir).release(record.number),
        text.as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// Rewrites a release on every host (or its tag, for an environment without hosts): to mark it
/// bad, or to add what a command learnt after the runner wrote it.
pub fn rewrite(ctx: &Ctx, env: &Environment, record: &ReleaseRecord) -> Result<()> {
    if env.hosts.is_empty() {
        let warnings = super::record::publish_tags(ctx, record);
        for w in warnings {
            ctx.report.warn(&w);
        }
        return Ok(());
    }
    for host in &env.hosts {
        let mut ex = connect(host, &ctx.report)?;
        write(ex.as_mut(), &env.dir, record)?;
    }
    Ok(())
}

fn audit(
    ex: &mut dyn Executor,
    env: &Environment,
    owner: &LockOwner,
    action: &str,
    units: &[String],
    record: &ReleaseRecord,
) {
    let entry = AuditEntry {
        time: clock::now_rfc3339(),
        actor: owner.actor.clone(),
        run_url: owner.run_url.clone(),
        action: action.to_string(),
        env: env.name.clone(),
        release: Some(record.number),
        services: units.to_vec(),
        result: super::status_word(record.status.0).to_string(),
        detail: (!record.notes.is_empty()).then(|| record.notes.join("; ")),
    };
    if let Ok(line) = serde_json::to_string(&entry) {
        let _ = ex.capture(&crate::cmd::docker_engine::append(
            &StatePaths::new(&env.dir).audit_log(),
            &line,
        ));
    }
}

/// Whether `dir` is inside a git work tree (tags need one).
pub fn is_git_repo(dir: &Path) -> bool {
    LocalExecutor
        .capture(
            &crate::cmd::Cmd::new("git")
                .args(["rev-parse", "--git-dir"])
                .cwd(dir.to_string_lossy()),
        )
        .map(|o| o.success())
        .unwrap_or(false)
}
