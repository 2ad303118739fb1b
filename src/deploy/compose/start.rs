//! Start: the steps that begin the change. Releases a dead run left `in_progress` are marked
//! `interrupted` (this run holds the lock, so nobody is deploying them); the release is recorded
//! `in_progress` with the running images tagged for rollback (one round trip); then `compose up`
//! of the selected services, streamed — after compose #12069's probe when the plan asks for it,
//! and never after a signal (nothing has changed yet: the finish step records that).

use super::{Containers, HostCtx, HostDeploy};
use crate::cancel;
use crate::cmd::compose as cc;
use crate::cmd::docker_engine::{self as de, Script};
use crate::cmd::{Cmd, shell_quote};
use crate::error::{RecordFailure, Result, STDERR_TAIL_LINES};
use crate::plan::up::action::{Check12069, Protect};
use crate::plan::up::host::up_options;
use crate::state::{ReleaseRecord, ReleaseStatus, ReleaseStatusField, ServiceState};
use std::collections::BTreeSet;
use std::time::Instant;

/// What each service runs, for messages and records.
pub fn running_list(containers: &Containers) -> Vec<crate::ledger::Running> {
    containers
        .iter()
        .map(|(svc, c)| {
            (
                svc.clone(),
                c.image.clone(),
                c.image_id.clone(),
                c.id.clone(),
            )
        })
        .collect()
}

/// Marks the releases left `in_progress` as `interrupted`, saying what each service runs, with an
/// audit line. (A dry run printed the step; nothing to mark.)
pub fn interrupted(d: &mut HostDeploy) -> Result<()> {
    if d.ex.records() {
        return Ok(());
    }
    let running = running_list(&d.state.before);
    let found_by = format!("release {} ({})", d.state.next, d.hc.req.owner.run_url);
    crate::ledger::store::mark_interrupted(
        d.ex,
        d.hc.report,
        d.hc.env,
        &d.hc.req.owner,
        &mut d.run.records,
        &running,
        &found_by,
    )
}

/// The record of release `n` before the change: `in_progress`, who runs it, the environment's
/// pages and migration carried forward, and what each protected service ran.
pub fn initial_record(
    hc: HostCtx,
    n: u64,
    now: &str,
    records: &[ReleaseRecord],
    protect: &[Protect],
    before: &Containers,
) -> ReleaseRecord {
    let req = hc.req;
    let mut record = ReleaseRecord {
        number: n,
        env: req.env.clone(),
        sha: req.owner.sha.clone(),
        status: ReleaseStatusField(ReleaseStatus::InProgress),
        created_at: now.to_string(),
        finished_at: None,
        actor: req.owner.actor.clone(),
        run_url: req.owner.run_url.clone(),
        ..Default::default()
    };
    // The record carries the environment's whole state: what `pages` and `migrate` recorded.
    let units = crate::ledger::unit_versions(records);
    record.pages = units.pages.into_iter().map(|(k, (_, p))| (k, p)).collect();
    record.migration_version = units.migration.map(|(_, v)| v);
    record.notes.extend(req.notes.iter().cloned());
    for p in protect {
        if let Some(cur) = before.get(&p.service) {
            record.previous.insert(
                p.service.clone(),
                ServiceState {
                    image: cur.image.clone(),
                    image_id: cur.image_id.clone(),
                    container_id: Some(cur.id.clone()),
                    config_hash: cur.config_hash.clone(),
                    release_tag: Some(p.tag.clone()),
                    ..Default::default()
                },
            );
        }
    }
    record
}

/// The record step: protective tags, the `in_progress` record (durably) and the audit line, one
/// round trip. A tag that failed is taken out of the record (rewritten); a record that cannot be
/// written fails the host before anything runs differently.
pub fn record(d: &mut HostDeploy, n: u64, protect: &[Protect]) -> Result<()> {
    let hc = d.hc;
    let paths = hc.paths();
    let now = crate::clock::now_rfc3339();
    let mut record = initial_record(hc, n, &now, &d.run.records, protect, &d.state.before);
    let mut s = Script::new();
    for p in protect {
        s.run(&format!("tag:{}", p.service), &de::tag(&p.image_id, &p.tag));
    }
    s.write_durable("record", &paths.release(n), &hc.record_json(&record), 0o644);
    s.raw("if [ \"$da_rc\" -eq 0 ]; then");
    let audit = hc.audit_entry("up.start", Some(n), &d.selected, "started", None);
    s.append("audit", &paths.audit_log(), &audit);
    s.raw("fi");
    let ran = d.script(&s)?;
    if !ran.ok("record") {
        let f = RecordFailure::new(
            d.label(),
            format!("write release record {n}"),
            paths.release(n),
        )
        .stderr(ran.out.stderr_tail(STDERR_TAIL_LINES));
        return Err(f.into());
    }
    let untagged: Vec<String> = record
        .previous
        .keys()
        .filter(|svc| !ran.ok(&format!("tag:{svc}")))
        .cloned()
        .collect();
    if !untagged.is_empty() {
        for svc in &untagged {
            if let Some(p) = record.previous.get_mut(svc) {
                p.release_tag = None;
            }
        }
        hc.report.warn(&format!(
            "{}: could not tag the running image of {:?}: {}",
            d.label(),
            untagged,
            ran.out.stderr_tail(3)
        ));
        crate::ledger::store::write(d.ex, hc.report, &hc.env.dir, &record)?;
    }
    d.run.records.push(record.clone());
    d.run.record = Some(record);
    if !ran.recorded {
        hc.report.info(&format!(
            "{}: release {n}: deploying {}",
            d.label(),
            d.selected.join(", ")
        ));
    }
    Ok(())
}

/// `compose up` of the selected services (`planned`: the plan's command). Compose #12069: with
/// [`Check12069::PlainIfSafe`], a plain `up` when its dry run touches no other service; with
/// [`Check12069::Background`], the dry run is started on the host to run during the gate. After a
/// signal nothing runs: the finish step records that nothing changed.
pub fn up(d: &mut HostDeploy, planned: &Cmd, check: Check12069) -> Result<()> {
    if cancel::requested().is_some() {
        d.run.cancelled_before_up = true;
        return Ok(());
    }
    let selected = d.selected.clone();
    let mut opts = up_options(d.hc.req.force);
    let cmd = if check == Check12069::PlainIfSafe && plain_up_is_safe(d, &selected)? {
        opts.with_deps = true;
        d.compose.up(&selected, &opts)
    } else {
        planned.clone()
    };
    d.run.t0 = Some(Instant::now());
    let status = d.stream(&cmd)?;
    if status != 0 {
        d.hc.report.error(
            &format!(
                "{}: `docker compose up` failed (exit {status}); the health gate tells which services are affected",
                d.label()
            ),
            None,
        );
    }
    d.run.compose_status = status;
    if check == Check12069::Background && !opts.with_deps && status == 0 && !d.ex.records() {
        start_background_dry_run(d, &selected);
    }
    Ok(())
}

/// Compose #12069 after `--no-deps`: `--dry-run up` runs on the host while the gate waits; its
/// answer lands in a file the finish step reads (and its process is stopped if it has not
/// finished).
fn start_background_dry_run(d: &mut HostDeploy, selected: &[String]) {
    let file = dry_run_file_of(&d.hc.paths().root, d.state.next);
    let line = d.compose.dry_run_up(selected).to_shell_line();
    let (f, tmp, pid) = (
        shell_quote(&file).into_owned(),
        shell_quote(&format!("{file}.tmp")).into_owned(),
        shell_quote(&format!("{file}.pid")).into_owned(),
    );
    let _ = d.ex.capture(&Cmd::shell(format!(
        "( {line} > {tmp} 2>&1; mv -f {tmp} {f} ) </dev/null >/dev/null 2>&1 & echo $! > {pid}"
    )));
    d.run.dry_run_file = Some(file);
}

/// Where the background `--dry-run up` of release `n` writes its answer (compose #12069).
pub fn dry_run_file_of(state_root: &str, n: u64) -> String {
    format!("{state_root}/dry-run-{n}.txt")
}

/// The compose service a container name of a dry run belongs to: a known container's, else the
/// `<project>-<service>-<n>` of one that does not exist yet (v2 names).
pub fn service_of(project: &str, name: &str, known: &Containers) -> Option<String> {
    if let Some((svc, _)) = known.iter().find(|(_, c)| c.name == name) {
        return Some(svc.clone());
    }
    let rest = name.strip_prefix(&format!("{project}-"))?;
    let (svc, num) = rest.rsplit_once('-')?;
    num.parse::<u32>().ok().map(|_| svc.to_string())
}

/// The services other than `selected` that a `--dry-run up` output touches.
pub fn others_touched(
    text: &str,
    project: &str,
    selected: &[String],
    known: &Containers,
) -> BTreeSet<String> {
    cc::parse_dry_run(text)
        .into_iter()
        .filter(|a| a.touches())
        .filter_map(|a| service_of(project, &a.container, known))
        .filter(|s| !selected.contains(s))
        .collect()
}

/// Compose #12069 (2.26.0–2.29.2): `up --no-deps` stores a config hash that a later plain `up`
/// disagrees with, for a service with `depends_on`. A plain `up SERVICES` stores the right one,
/// and is safe when it would touch no other service: `--dry-run up` says so (0.1 s).
fn plain_up_is_safe(d: &mut HostDeploy, selected: &[String]) -> Result<bool> {
    let out = d.ex.read(&d.compose.dry_run_up(selected))?;
    if !out.success() {
        return Ok(false);
    }
    let text = format!(
        "{}\n{}",
        out.stdout_str(),
        String::from_utf8_lossy(&out.stderr)
    );
    let others = others_touched(&text, &d.hc.env.compose_project, selected, &d.state.before);
    let label = d.label();
    if others.is_empty() {
        d.hc.report.info(&format!(
            "{label}: compose #12069: a plain `up` of {selected:?} touches no other service, so `up` runs without --no-deps and stores the config hash a later plain `up` agrees with"
        ));
        Ok(true)
    } else {
        d.hc.report.warn(&format!(
            "{label}: compose #12069: a plain `up` of {selected:?} would also touch {others:?}, so `up --no-deps` is used; a later plain `docker compose up` may recreate {selected:?}"
        ));
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::docker_engine::ContainerInfo;

    fn containers() -> Containers {
        [(
            "api".to_string(),
            ContainerInfo {
                id: "c1".into(),
                name: "shop-api-1".into(),
                image: "shop/api:1".into(),
                image_id: "sha256:aa".into(),
                service: "api".into(),
                ..Default::default()
            },
        )]
        .into()
    }

    #[test]
    fn the_record_before_the_change_carries_the_environment_and_what_ran() {
        let m = crate::manifest::parse(crate::diag::Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [local]\n    dir: /srv/shop\nservices:\n  api: {}\n",
        ))
        .unwrap();
        let report = crate::report::Report::buffered(false, None);
        let owner = crate::state::LockOwner {
            sha: "abc".into(),
            actor: "ann".into(),
            ..Default::default()
        };
        let req = crate::deploy::UpRequest::recorded(
            "staging",
            vec!["api".into()],
            Default::default(),
            owner,
            ".".into(),
            vec!["reason: hotfix".into()],
        );
        let hc = HostCtx {
            report: &report,
            host: &crate::manifest::Host::Local,
            env: &m.environments["staging"],
            manifest: &m,
            req: &req,
        };
        let mut migrated = ReleaseRecord {
            number: 3,
            status: ReleaseStatusField(ReleaseStatus::Live),
            migration_version: Some("7".into()),
            ..Default::default()
        };
        migrated.notes.push("old".into());
        let protect = [Protect {
            service: "api".into(),
            image_id: "sha256:aa".into(),
            tag: "shop/api:shop.api-release-4-before".into(),
        }];
        let r = initial_record(
            hc,
            4,
            "2026-01-01T00:00:00Z",
            &[migrated],
            &protect,
            &containers(),
        );
        assert_eq!(r.number, 4);
        assert_eq!(r.status.0, ReleaseStatus::InProgress);
        assert_eq!((r.sha.as_str(), r.actor.as_str()), ("abc", "ann"));
        assert_eq!(r.migration_version.as_deref(), Some("7"), "carried forward");
        assert_eq!(r.notes, ["reason: hotfix"]);
        let before = &r.previous["api"];
        assert_eq!(before.image, "shop/api:1");
        assert_eq!(before.container_id.as_deref(), Some("c1"));
        assert_eq!(
            before.release_tag.as_deref(),
            Some("shop/api:shop.api-release-4-before")
        );
    }

    #[test]
    fn dry_run_containers_map_to_services_known_or_new() {
        let known = containers();
        assert_eq!(
            service_of("shop", "shop-api-1", &known).as_deref(),
            Some("api")
        );
        assert_eq!(
            service_of("shop", "shop-web-2", &known).as_deref(),
            Some("web")
        );
        assert_eq!(service_of("shop", "other-web-2", &known), None);
        assert_eq!(
            running_list(&known),
            [(
                "api".to_string(),
                "shop/api:1".to_string(),
                "sha256:aa".to_string(),
                "c1".to_string()
            )]
        );
    }
}
