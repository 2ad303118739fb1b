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

use super::lock::EnvLock;
use super::{HostState, Ledger, Running, current, parse_tag_listing, read, tag_listing_cmd};
use crate::clock;
use crate::cmd::docker_engine::{self as de, Script, Section};
use crate::context::Ctx;
use crate::error::{RecordFailure, RemoteFailure, Result};
use crate::exec;
use crate::exec::Executor;
use crate::exec::local::LocalExecutor;
use crate::manifest::Environment;
use crate::report::Report;
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
        let mut releases = read_tags(ctx, &env.name)?.releases;
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
        let mut ex = exec::connect(host, &|w: &str| ctx.report.warn(w))?;
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
fn read_tags(ctx: &Ctx, env: &str) -> Result<Ledger> {
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
        return Ok(Ledger::default());
    }
    let ledger = parse_tag_listing(&out.stdout_str());
    for p in &ledger.problems {
        ctx.report.warn(&format!("tag {}: {}", p.file, p.message));
    }
    Ok(ledger)
}

/// How many of the newest tags the API path reads (one request each).
const API_TAGS: usize = 30;

fn read_tags_through_api(ctx: &Ctx, gh: &crate::api::github::GitHub, env: &str) -> Result<Ledger> {
    let prefix = format!("tags/deploy/{env}/");
    let refs = gh
        .list_matching_refs(&prefix)
        .map_err(|e| github_failure(format!("cannot list the tags of `{env}`"), &e))?;
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
            .map_err(|e| github_failure(format!("cannot read {}", r.name), &e))?;
        let name = r.name.trim_start_matches("refs/tags/");
        text.push_str(&format!("{name}\0{}\u{1e}", tag.message));
    }
    let ledger = parse_tag_listing(&text);
    for p in &ledger.problems {
        ctx.report.warn(&format!("tag {}: {}", p.file, p.message));
    }
    Ok(ledger)
}

/// GitHub failed `what`, saying `e`.
fn github_failure(what: String, e: &crate::api::github::GitHubError) -> RemoteFailure {
    RemoteFailure::new("GitHub", what, e.to_string()).status(e.status())
}

/// A new release that is not an `up`: filled by `fill` from a record that already carries the
/// environment's complete state (the services, Pages deployments and migration version of the
/// current release), so the newest record always tells everything that runs.
///
/// With hosts: under the environment lock on every host ([`EnvLock`], waiting up to
/// [`APPEND_LOCK_WAIT`] for a running deploy; a command holding it already — promote, rollback —
/// takes nothing twice), numbered after that host's highest release, the previous live release
/// marked superseded, one audit line. Without hosts: numbered after the newest tag; the record
/// exists once `record::publish` tags it. Returns the first host's record.
pub fn append(
    ctx: &Ctx,
    env: &Environment,
    owner: &LockOwner,
    action: &str,
    units: &[String],
    fill: &dyn Fn(&mut ReleaseRecord),
) -> Result<ReleaseRecord> {
    if env.hosts.is_empty() {
        let ledger = read_tags(ctx, &env.name)?;
        return Ok(new_record(env, owner, &ledger, fill));
    }
    let lock = EnvLock::acquire_all(&ctx.report, env, owner, Some(APPEND_LOCK_WAIT))?;
    let mut first = None;
    for host in &env.hosts {
        let mut ex = exec::connect(host, &|w: &str| ctx.report.warn(w))?;
        let record = append_locked(ex.as_mut(), &ctx.report, env, owner, action, units, fill)?;
        first.get_or_insert(record);
    }
    lock.release_all();
    Ok(first.expect("at least one host"))
}

fn append_locked(
    ex: &mut dyn Executor,
    report: &Report,
    env: &Environment,
    owner: &LockOwner,
    action: &str,
    units: &[String],
    fill: &dyn Fn(&mut ReleaseRecord),
) -> Result<ReleaseRecord> {
    let state = read(ex, &env.dir)?;
    for p in &state.ledger.problems {
        report.warn(&format!(
            "{}: {}: {} (ignored; its number is not reused)",
            ex.label(),
            p.file,
            p.message
        ));
    }
    let mut releases = state.ledger.releases.clone();
    if releases
        .iter()
        .any(|r| r.status.0 == ReleaseStatus::InProgress)
    {
        let running = running(ex, &env.compose_project);
        let found_by = format!("`{action}` of {}", owner.run_url);
        mark_interrupted(ex, report, env, owner, &mut releases, &running, &found_by)?;
    }
    let ledger = Ledger {
        releases: releases.clone(),
        problems: state.ledger.problems.clone(),
    };
    let record = new_record(env, owner, &ledger, fill);
    write(ex, report, &env.dir, &record)?;
    if let Some(prev) = current(&releases)
        && prev.number != record.number
        && record.status.0 == ReleaseStatus::Live
    {
        let mut prev = prev.clone();
        prev.status = ReleaseStatusField(ReleaseStatus::Superseded);
        write(ex, report, &env.dir, &prev)?;
    }
    // Old records go when no image tag depends on them (`up` prunes the rest with the images).
    let mut all = releases;
    all.push(record.clone());
    let prune = crate::plan::up::retention(&all, env.keep_releases);
    if prune.tags.is_empty() {
        for n in prune.records {
            let _ = ex.capture(&de::rm_f(&StatePaths::new(&env.dir).release(n)));
        }
    }
    let entry = audit_entry(owner, env, action, units, Some(record.number));
    audit(ex, report, &env.dir, &record_result(entry, &record));
    Ok(record)
}

/// What each service of the compose project runs on the host (none when it cannot be read).
fn running(ex: &mut dyn Executor, project: &str) -> Vec<Running> {
    let out = match ex.capture(&de::inspect_project(project)) {
        Ok(o) if o.success() => o,
        _ => return Vec::new(),
    };
    let mut list = de::parse_inspect(&out.stdout_str()).unwrap_or_default();
    list.sort_by(|a, b| {
        (&a.service, a.status != "running").cmp(&(&b.service, b.status != "running"))
    });
    list.dedup_by(|a, b| a.service == b.service);
    list.into_iter()
        .map(|c| (c.service, c.image, c.image_id, c.id))
        .collect()
}

/// Marks the releases a dead run left `in_progress` as `interrupted` (the caller holds the lock,
/// so no run is deploying them): rewrites each record, says what each service runs, and records
/// that in the audit log. `releases` is updated in place.
pub fn mark_interrupted(
    ex: &mut dyn Executor,
    report: &Report,
    env: &Environment,
    owner: &LockOwner,
    releases: &mut [ReleaseRecord],
    running: &[Running],
    found_by: &str,
) -> Result<()> {
    let marked = super::interrupted(releases, running, found_by, &clock::now_rfc3339());
    for r in marked {
        report.warn(&format!(
            "{}: release {} was left in_progress by a run that did not finish; marked interrupted. Running now: {}",
            ex.label(),
            r.number,
            super::describe_running(running)
        ));
        write(ex, report, &env.dir, &r)?;
        let mut entry = audit_entry(owner, env, "interrupted", &[], Some(r.number));
        entry.result = super::status_word(ReleaseStatus::Interrupted).into();
        entry.services = running.iter().map(|(s, ..)| s.clone()).collect();
        entry.detail = Some(format!("running: {}", super::describe_running(running)));
        audit(ex, report, &env.dir, &entry);
        if let Some(slot) = releases.iter_mut().find(|x| x.number == r.number) {
            *slot = r;
        }
    }
    Ok(())
}

/// The next record: number, identity, status live, and the complete state of the current release
/// carried forward before `fill` changes what this release changed.
fn new_record(
    env: &Environment,
    owner: &LockOwner,
    ledger: &Ledger,
    fill: &dyn Fn(&mut ReleaseRecord),
) -> ReleaseRecord {
    let now = clock::now_rfc3339();
    let units = super::unit_versions(&ledger.releases);
    let mut record = ReleaseRecord {
        number: ledger.next_number(),
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

/// A record as written on a host: one line of JSON, every string masked (the one place records
/// are serialized for the hosts).
pub fn record_text(report: &Report, record: &ReleaseRecord) -> String {
    super::masked_json(record, &|s| report.redact(s))
}

/// Writes a record on one host, durably ([`Script::write_durable`]): a release is recorded only
/// once this returned Ok.
pub fn write(
    ex: &mut dyn Executor,
    report: &Report,
    dir: &str,
    record: &ReleaseRecord,
) -> Result<()> {
    let mut s = Script::new();
    let path = StatePaths::new(dir).release(record.number);
    s.write_durable("record", &path, &record_text(report, record), 0o644);
    let out = ex.capture(&s.cmd())?;
    let secs = de::parse_sections(&out.stdout_str());
    // A dry run's executor records the write and answers nothing: it would have been written.
    if ex.records() || secs.get("record").is_some_and(Section::success) {
        Ok(())
    } else {
        let what = format!("write release record {}", record.number);
        Err(RecordFailure::new(ex.label(), what, path)
            .stderr(out.stderr_tail(3))
            .into())
    }
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
        let mut ex = exec::connect(host, &|w: &str| ctx.report.warn(w))?;
        write(ex.as_mut(), &ctx.report, &env.dir, record)?;
    }
    Ok(())
}

/// An audit line's identity part.
fn audit_entry(
    owner: &LockOwner,
    env: &Environment,
    action: &str,
    units: &[String],
    release: Option<u64>,
) -> AuditEntry {
    AuditEntry {
        time: clock::now_rfc3339(),
        actor: owner.actor.clone(),
        run_url: owner.run_url.clone(),
        action: action.to_string(),
        env: env.name.clone(),
        release,
        services: units.to_vec(),
        ..Default::default()
    }
}

/// The entry with the record's result and notes.
fn record_result(mut entry: AuditEntry, record: &ReleaseRecord) -> AuditEntry {
    entry.result = super::status_word(record.status.0).to_string();
    entry.detail = (!record.notes.is_empty()).then(|| record.notes.join("; "));
    entry
}

/// An audit line as written: one line of JSON, every string masked (the one place audit lines
/// are serialized).
pub fn audit_line(report: &Report, entry: &AuditEntry) -> String {
    super::masked_json(entry, &|s| report.redact(s))
}

/// Appends one line to the audit log (best effort: the log never fails a command).
pub fn audit(ex: &mut dyn Executor, report: &Report, dir: &str, entry: &AuditEntry) {
    let _ = ex.capture(&de::append(
        &StatePaths::new(dir).audit_log(),
        &audit_line(report, entry),
    ));
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

/// The live release of `env`, the base of change detection for a run on it, unless `--base`,
/// `--all` or `--only` choose the units. A ledger that cannot be read is a warning (the run falls
/// back to the GitHub event or HEAD~1), not an error.
pub fn release_base(ctx: &Ctx, env: &Environment) -> Option<crate::changes::ReleaseBase> {
    let s = &ctx.settings;
    if s.base.is_some() || s.all || !s.only.is_empty() {
        return None;
    }
    match load(ctx, env) {
        Ok(loaded) => loaded.current().map(|r| crate::changes::ReleaseBase {
            env: env.name.clone(),
            number: r.number,
            sha: r.sha.clone(),
        }),
        Err(e) => {
            ctx.report.warn(&format!(
                "cannot read the releases of `{}` ({e}); changes are computed from the GitHub event or HEAD~1",
                env.name
            ));
            None
        }
    }
}
