//! Finish: what runs now (one round trip, with compose #12069's background answer), the repo
//! digests of what runs and ran (one), then one script: release tags of what passed, the record
//! written durably, and — only once it is — the superseded record, retention and the audit
//! lines. A tag that failed is taken out of the record afterwards. A record that cannot be
//! written fails the run, saying what runs: the release is not `live` until its record says so.
//! Then the host's row of the matrix ([`HostResult`]).
//!
//! After a signal before `compose up` nothing changed: the release is recorded `failed` and the
//! step fails saying so.

use super::start::{running_list, service_of};
use super::{Containers, HostCtx, HostDeploy, by_service};
use crate::cancel;
use crate::cmd::compose as cc;
use crate::cmd::docker_engine::{self as de, Script};
use crate::cmd::{Cmd, shell_quote};
use crate::deploy::{HostResult, ServiceResult};
use crate::error::{Error, RecordFailure, Result, STDERR_TAIL_LINES};
use crate::plan::up as pu;
use crate::state::{ReleaseRecord, ReleaseStatus, ReleaseStatusField, ServiceState};
use std::collections::{BTreeMap, BTreeSet};

/// A release tag to make: (service, image id, tag).
pub type NewTag = (String, String, String);

/// The finish step (see the module header).
pub fn perform(d: &mut HostDeploy) -> Result<()> {
    let Some(mut record) = d.run.record.clone() else {
        return Err(Error::Bug(format!(
            "{}: no release record to finish",
            d.label()
        )));
    };
    if d.run.cancelled_before_up {
        return finish_cancelled(d, record);
    }
    let (after, dry_run) = read_after(d)?;
    report_recreated(d.hc, &d.state.before, &after, &d.selected);
    let failed = d.run.failed.clone();
    match (dry_run, failed.is_empty()) {
        (Some(Some(text)), true) => warn_plain_up_recreates(d, &text, &after),
        (Some(None), true) => d.hc.report.info(&format!(
            "{}: compose #12069: the dry run had not finished when the health gate did, so it was stopped; a later plain `docker compose up` may recreate {:?}",
            d.label(),
            d.selected
        )),
        _ => {}
    }
    let ok = failed.is_empty();
    let rolled_back = d.run.rolled_back;
    let new_tags = fill_record(d, &mut record, &after, ok);
    close_record(&mut record, &failed, ok, rolled_back);
    record_digests(d, &mut record);
    let result = status_word(ok, rolled_back);
    let detail = (!failed.is_empty()).then(|| record.notes.join("; "));
    let audit =
        d.hc.audit_entry("up", Some(record.number), &d.selected, result, detail);
    d.run.audits.push(audit);
    write_finish(d, &mut record, ok, &new_tags, &after)?;
    d.run.result = Some(host_result(d, record));
    Ok(())
}

/// A signal came before `compose up`: the release is recorded `failed`, and the step fails.
fn finish_cancelled(d: &mut HostDeploy, mut record: ReleaseRecord) -> Result<()> {
    record.status = ReleaseStatusField(ReleaseStatus::Failed);
    record.finished_at = Some(crate::clock::now_rfc3339());
    let reason = format!("{} before compose up", cancel::reason());
    let consequence = "nothing was changed";
    record.notes.push(format!("{reason}; {consequence}"));
    let audit = d.hc.audit_entry(
        "up",
        Some(record.number),
        &d.selected,
        "failed",
        Some(cancel::reason()),
    );
    d.run.audits.push(audit);
    let before = d.state.before.clone();
    write_finish(d, &mut record, false, &[], &before)?;
    Err(Error::Cancelled {
        host: Some(d.label()),
        reason,
        consequence: consequence.into(),
    })
}

/// Every container of the project after the deploy, and, when a background `--dry-run up` was
/// started, its output (`Some(None)`: it had not finished, so it was stopped).
#[allow(clippy::type_complexity)]
fn read_after(d: &mut HostDeploy) -> Result<(Containers, Option<Option<String>>)> {
    let project = d.compose.project.clone();
    let mut s = Script::new();
    s.run("containers", &de::inspect_project(&project));
    if let Some(f) = &d.run.dry_run_file {
        let (q, tmp, pid) = (
            shell_quote(f).into_owned(),
            shell_quote(&format!("{f}.tmp")).into_owned(),
            shell_quote(&format!("{f}.pid")).into_owned(),
        );
        // The process is the one this run started (its pid was written at launch).
        s.shell(
            "dry-run",
            &format!(
                "if [ -f {q} ]; then cat {q}; rc=0; else kill \"$(cat {pid} 2>/dev/null)\" 2>/dev/null; rc=3; fi; rm -f {q} {tmp} {pid}; exit $rc"
            ),
        );
    }
    let ran = d.read_script(&s)?;
    let what = format!("listing the containers of {project}");
    let containers = match ran.secs.get("containers") {
        Some(c) if c.success() => by_service(
            de::parse_inspect(&c.stdout)
                .map_err(|why| ran.unreadable(&d.label(), what, "containers", &why))?,
        ),
        _ => {
            let f = ran.failure(&d.label(), what, "containers", STDERR_TAIL_LINES);
            return Err(f.into());
        }
    };
    let dry_run = d.run.dry_run_file.as_ref().map(|_| {
        ran.secs
            .get("dry-run")
            .filter(|x| x.success())
            .map(|x| x.stdout.clone())
    });
    Ok((containers, dry_run))
}

/// Warns about every container not selected whose id changed (compose #10308).
fn report_recreated(hc: HostCtx, before: &Containers, after: &Containers, selected: &[String]) {
    let recreated: Vec<&String> = before
        .iter()
        .filter(|(s, c)| !selected.contains(s) && after.get(*s).is_none_or(|a| a.id != c.id))
        .map(|(s, _)| s)
        .collect();
    if !recreated.is_empty() {
        hc.report.warn(&format!(
            "{}: compose also recreated or removed {:?}, which were not selected (depends_on, compose #10308)",
            hc.label(),
            recreated
        ));
    }
}

/// After an `up --no-deps` on a #12069 version: whether a plain `up` would recreate a deployed
/// service, as `--dry-run up` says; warns only when it would.
fn warn_plain_up_recreates(d: &HostDeploy, text: &str, after: &Containers) {
    let project = &d.hc.env.compose_project;
    let recreate: BTreeSet<String> = cc::parse_dry_run(text)
        .into_iter()
        .filter(|a| a.action == "Recreate")
        .filter_map(|a| service_of(project, &a.container, after))
        .filter(|s| d.selected.contains(s))
        .collect();
    for s in recreate {
        d.hc.report.warn(&format!(
            "{}: {s}: `docker compose --dry-run up` says a plain `docker compose up` would recreate it (compose #12069); deploy it with deploy-action instead, or upgrade compose to ≥ 2.29.3",
            d.label()
        ));
    }
}

/// What the record says each service runs after the change, and the release tags to make.
fn fill_record(
    d: &HostDeploy,
    record: &mut ReleaseRecord,
    after: &Containers,
    ok: bool,
) -> Vec<NewTag> {
    let failed = &d.run.failed;
    let running_before = crate::ledger::unit_versions(&d.run.records).services;
    let config = d.state.config.clone().unwrap_or_default();
    let mut new_tags = Vec::new();
    for (svc, c) in after {
        let passed = d.selected.contains(svc) && !failed.contains_key(svc);
        let reuse = running_before
            .get(svc)
            .map(|(_, p)| p)
            .filter(|p| p.image_id == c.image_id)
            .and_then(|p| p.release_tag.clone());
        let release_tag = tag_of(
            svc,
            c,
            passed,
            ok,
            reuse,
            record,
            &mut new_tags,
            &d.compose.project,
        );
        let tried = failed.contains_key(svc).then(|| {
            d.pins
                .get(svc)
                .or(config.get(svc).and_then(|c| c.image.as_ref()))
                .cloned()
                .unwrap_or_default()
        });
        let state = ServiceState {
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            container_id: Some(c.id.clone()),
            config_hash: c.config_hash.clone(),
            release_tag,
            deployed: d.selected.contains(svc),
            tried: tried.filter(|t| !t.is_empty()),
            secrets: secret_prints(d, svc),
            ..Default::default()
        };
        record.services.insert(svc.clone(), state);
    }
    new_tags
}

/// The release tag a service's record names. An unchanged service keeps the tag of the release
/// it came with (same image id): no docker call. A selected service that passed the gate runs
/// what this release brought: tagged `<repo>:<project>.<service>-release-<n>`, even when another
/// service failed.
#[allow(clippy::too_many_arguments)]
fn tag_of(
    svc: &str,
    c: &de::ContainerInfo,
    passed: bool,
    ok: bool,
    reuse: Option<String>,
    record: &ReleaseRecord,
    new_tags: &mut Vec<NewTag>,
    project: &str,
) -> Option<String> {
    match reuse {
        Some(t) if !passed => Some(t),
        _ if passed || ok => {
            let tag = pu::release_tag(&c.image, project, svc, record.number);
            new_tags.push((svc.to_string(), c.image_id.clone(), tag.clone()));
            Some(tag)
        }
        _ => record
            .previous
            .get(svc)
            .filter(|p| p.image_id == c.image_id)
            .and_then(|p| p.release_tag.clone()),
    }
}

/// The fingerprints of the secrets `svc` runs with after this release: those written now, or,
/// restoring release `n`'s files, those release `n` recorded.
fn secret_prints(d: &HostDeploy, svc: &str) -> BTreeMap<String, String> {
    let req = d.hc.req;
    match req.files_from {
        Some(n) => d
            .run
            .records
            .iter()
            .find(|r| r.number == n)
            .and_then(|r| r.services.get(svc))
            .map(|st| st.secrets.clone())
            .unwrap_or_default(),
        None => {
            crate::deploy::secrets::fingerprints(&d.hc.manifest.project, &req.env, &req.secrets)
                .remove(svc)
                .unwrap_or_default()
        }
    }
}

/// The record's outcome: status, finish time, and a note per failed service.
pub fn close_record(
    record: &mut ReleaseRecord,
    failed: &BTreeMap<String, String>,
    ok: bool,
    rolled_back: bool,
) {
    record.finished_at = Some(crate::clock::now_rfc3339());
    record.status = ReleaseStatusField(if ok {
        ReleaseStatus::Live
    } else if rolled_back {
        ReleaseStatus::RolledBack
    } else {
        ReleaseStatus::Failed
    });
    for (s, why) in failed {
        let tried = record
            .services
            .get(s)
            .and_then(|st| st.tried.clone())
            .map(|t| format!(" (tried {t})"))
            .unwrap_or_default();
        record.notes.push(format!("{s}{tried}: {why}"));
    }
    if rolled_back {
        record.notes.push(format!(
            "rolled back: {}",
            failed.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
}

/// The audit word of an outcome.
pub fn status_word(ok: bool, rolled_back: bool) -> &'static str {
    match (ok, rolled_back) {
        (true, _) => "live",
        (false, true) => "rolled_back",
        (false, false) => "failed",
    }
}

/// Fills the repo digest (`repo@sha256:…`) of every service of `record` and of its `previous`
/// entries from `docker image inspect` of their image ids: one round trip. A service whose image
/// has none (built or loaded on the host) keeps `None`.
fn record_digests(d: &mut HostDeploy, record: &mut ReleaseRecord) {
    let mut ids: Vec<String> = record
        .services
        .values()
        .chain(record.previous.values())
        .map(|s| s.image_id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return;
    }
    // Some ids may be gone (exit 1): the lines of the others still count.
    let Ok(out) = d.ex.read(&de::image_infos(&ids)) else {
        return;
    };
    let infos: BTreeMap<String, Vec<String>> = de::parse_image_infos(&out.stdout_str())
        .into_iter()
        .map(|i| (i.id, i.repo_digests))
        .collect();
    for st in record
        .services
        .values_mut()
        .chain(record.previous.values_mut())
    {
        if let Some(digests) = infos.get(&st.image_id) {
            st.digest = de::pick_digest(&st.image, digests);
        }
    }
}

/// The finish script (see the module header).
fn write_finish(
    d: &mut HostDeploy,
    record: &mut ReleaseRecord,
    ok: bool,
    new_tags: &[NewTag],
    running: &Containers,
) -> Result<()> {
    let hc = d.hc;
    let paths = hc.paths();
    let mut s = Script::new();
    for (svc, id, tag) in new_tags {
        s.run(&format!("tag:{svc}"), &de::tag(id, tag));
    }
    s.write_durable(
        "record",
        &paths.release(record.number),
        &hc.record_json(record),
        0o644,
    );
    s.raw("if [ \"$da_rc\" -eq 0 ]; then");
    let superseded = crate::ledger::current(&d.run.records)
        .filter(|p| p.number != record.number)
        .cloned();
    if ok && let Some(mut p) = superseded {
        p.status = ReleaseStatusField(ReleaseStatus::Superseded);
        s.write_durable(
            "superseded",
            &paths.release(p.number),
            &hc.record_json(&p),
            0o644,
        );
    }
    let prune = retention(d, &mut s, record);
    for (i, line) in d.run.audits.iter().enumerate() {
        s.append(&format!("audit:{i}"), &paths.audit_log(), line);
    }
    s.raw("fi");
    let ran = d.script(&s)?;
    let label = d.label();
    if !ran.ok("record") {
        let n = record.number;
        let status = crate::ledger::status_word(record.status.0);
        let failure = RecordFailure::new(
            &label,
            format!("write release record {n}"),
            paths.release(n),
        )
        .stderr(ran.out.stderr_tail(STDERR_TAIL_LINES));
        return Err(Error::from(failure).aftermath(format!(
            "release {n} is not recorded as {status}: it stays in_progress until the next run marks it interrupted. What runs now: {}",
            crate::ledger::describe_running(&running_list(running)),
        )));
    }
    if ran
        .secs
        .keys()
        .any(|k| k.starts_with("audit:") && !ran.ok(k))
    {
        hc.report.warn(&format!(
            "{label}: audit log not written: {}",
            ran.out.stderr_tail(3)
        ));
    }
    let untagged: Vec<&String> = new_tags
        .iter()
        .filter(|(svc, _, _)| !ran.ok(&format!("tag:{svc}")))
        .map(|(svc, _, _)| svc)
        .collect();
    if !untagged.is_empty() {
        for svc in &untagged {
            if let Some(st) = record.services.get_mut(*svc) {
                st.release_tag = None;
            }
        }
        hc.report.warn(&format!(
            "{label}: could not tag the images of {:?}: {}",
            untagged,
            ran.out.stderr_tail(3)
        ));
        crate::ledger::store::write(d.ex, hc.report, &hc.env.dir, record)?;
    }
    if !prune.records.is_empty() && !ran.recorded {
        hc.report.info(&format!(
            "{label}: retention: removed releases {:?} and {} image tag(s)",
            prune.records,
            prune.tags.len()
        ));
    }
    Ok(())
}

/// Adds retention to the finish script: the newest `keep_releases` records and every tag they
/// (or the pins) name are kept; file copies go with their records (a copy whose record is gone,
/// pruned by another command or never written, goes too).
fn retention(d: &HostDeploy, s: &mut Script, record: &ReleaseRecord) -> pu::Prune {
    let paths = d.hc.paths();
    let mut all: Vec<ReleaseRecord> = d
        .run
        .records
        .iter()
        .filter(|r| r.number != record.number)
        .cloned()
        .collect();
    all.push(record.clone());
    let mut prune = pu::retention(&all, d.hc.env.keep_releases);
    let pinned: BTreeSet<&String> = d.pins.values().collect();
    prune.tags.retain(|t| !pinned.contains(t));
    if !prune.tags.is_empty() {
        s.run("rmi", &Cmd::new("docker").arg("rmi").args(&prune.tags));
    }
    for n in &prune.records {
        s.run(&format!("prune:{n}"), &de::rm_f(&paths.release(*n)));
    }
    let kept: BTreeSet<u64> = all
        .iter()
        .map(|r| r.number)
        .filter(|n| !prune.records.contains(n))
        .collect();
    for n in d.state.copies.iter().filter(|n| !kept.contains(n)) {
        s.run(
            &format!("prune-files:{n}"),
            &de::rm_rf(&pu::files_dir(&d.hc.env.dir, *n)),
        );
    }
    prune
}

/// The host's row: per service what ran, what runs, its health and how to roll it back by hand.
fn host_result(d: &HostDeploy, record: ReleaseRecord) -> HostResult {
    let elapsed = d.run.t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let failed = &d.run.failed;
    let rolled_back = d.run.rolled_back;
    let services = d
        .selected
        .iter()
        .map(|s| {
            let mut row = service_row(
                d.hc,
                s,
                &d.state.before,
                &record,
                failed,
                rolled_back,
                &d.compose.project,
            );
            row.health = d.run.health_text.get(s).cloned().unwrap_or_default();
            row.duration_secs = elapsed;
            row
        })
        .collect();
    HostResult {
        host: d.label(),
        release: Some(record.number),
        ok: failed.is_empty(),
        rolled_back,
        services,
        error: d.run.gate.cancelled.then(cancel::reason),
        record: Some(record),
    }
}

/// One service's row (health and duration aside).
pub fn service_row(
    hc: HostCtx,
    s: &str,
    before: &Containers,
    record: &ReleaseRecord,
    failed: &BTreeMap<String, String>,
    rolled_back: bool,
    project: &str,
) -> ServiceResult {
    let old = before
        .get(s)
        .map(|c| c.image.clone())
        .unwrap_or_else(|| "(new)".into());
    let state = record.services.get(s);
    let running = state.map(|c| c.image.clone()).unwrap_or_default();
    // A failed service shows what was tried, and what it runs now.
    let new = match state.and_then(|st| st.tried.as_ref()) {
        Some(tried) if *tried != running => format!("{tried} (now {running})"),
        _ => running,
    };
    let res = if !failed.contains_key(s) {
        "deployed"
    } else if rolled_back {
        "rolled back"
    } else {
        "failed"
    };
    let name = hc.manifest_name(s);
    let env = &hc.req.env;
    let exact = record
        .previous
        .get(s)
        .and_then(|p| p.release_tag.as_deref())
        .map(|tag| pu::manual_image_hint(env, &name, tag))
        .unwrap_or_default();
    let (rollback, rollback_exact) = match res {
        "rolled back" => (String::new(), String::new()),
        "deployed" => (pu::manual_rollback_hint(env, &name), exact),
        // Failed and not rolled back: this host's previous image is the exact answer.
        _ if !exact.is_empty() => (exact, String::new()),
        _ => (
            format!("docker compose -p {project} stop {s}"),
            String::new(),
        ),
    };
    ServiceResult {
        service: s.to_string(),
        old_image: old,
        new_image: new,
        health: String::new(),
        duration_secs: 0.0,
        result: res.to_string(),
        rollback,
        rollback_exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_says_live_rolled_back_or_failed_with_a_note_per_failure() {
        let mut r = ReleaseRecord::default();
        r.services.insert(
            "web".into(),
            ServiceState {
                image: "shop/web:1".into(),
                tried: Some("shop/web:broken".into()),
                ..Default::default()
            },
        );
        let failed: BTreeMap<String, String> =
            [("web".to_string(), "container exited".to_string())].into();
        close_record(&mut r, &failed, false, true);
        assert_eq!(r.status.0, ReleaseStatus::RolledBack);
        assert_eq!(
            r.notes,
            [
                "web (tried shop/web:broken): container exited",
                "rolled back: web"
            ]
        );
        assert!(r.finished_at.is_some());
        assert_eq!(status_word(false, true), "rolled_back");
        assert_eq!(status_word(false, false), "failed");
        assert_eq!(status_word(true, false), "live");
        let mut ok = ReleaseRecord::default();
        close_record(&mut ok, &BTreeMap::new(), true, false);
        assert_eq!(ok.status.0, ReleaseStatus::Live);
        assert!(ok.notes.is_empty());
    }

    #[test]
    fn an_unchanged_service_keeps_its_tag_and_a_passed_one_gets_this_releases() {
        let c = de::ContainerInfo {
            image: "shop/web:2".into(),
            image_id: "sha256:22".into(),
            ..Default::default()
        };
        let record = ReleaseRecord {
            number: 7,
            ..Default::default()
        };
        let mut tags = Vec::new();
        let kept = tag_of(
            "web",
            &c,
            false,
            true,
            Some("shop/web:shop.web-release-3".into()),
            &record,
            &mut tags,
            "shop",
        );
        assert_eq!(kept.as_deref(), Some("shop/web:shop.web-release-3"));
        assert!(tags.is_empty(), "no docker call for an unchanged service");
        let new = tag_of("web", &c, true, false, None, &record, &mut tags, "shop");
        assert_eq!(new.as_deref(), Some("shop/web:shop.web-release-7"));
        assert_eq!(
            tags,
            [(
                "web".to_string(),
                "sha256:22".to_string(),
                "shop/web:shop.web-release-7".to_string()
            )]
        );
    }
}
