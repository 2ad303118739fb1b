//! The rollback branch (its step runs only when the gate failed for a selected service): the
//! services that failed go back to the images they ran before (their `…-release-<n>-before`
//! tags, pinned in the override file) and, when the host keeps a copy, to the previous release's
//! compose and env files; a service that ran nothing before is stopped. Then their own gate.
//! After a signal every service this run changed goes back at once: containers get
//! [`CANCEL_STOP_TIMEOUT`] to stop and no gate runs.

use super::{HostDeploy, gate};
use crate::cancel;
use crate::cmd::docker_engine::Script;
use crate::cmd::shell_quote;
use crate::error::{RecordFailure, Result, STDERR_TAIL_LINES};
use crate::plan::up as pu;
use crate::plan::up::action::Back;
use crate::plan::up::host::{compose_for, gate_check, up_options};
use crate::state::ServiceState;
use std::collections::BTreeMap;

/// Seconds a replaced container gets to stop when a cancelled run rolls back.
pub const CANCEL_STOP_TIMEOUT: u64 = 2;

/// The rollback step (see the module header).
pub fn perform(d: &mut HostDeploy, candidates: &[Back], restore: Option<u64>) -> Result<()> {
    if d.run.cancelled_before_up {
        return Ok(());
    }
    let in_plan = |s: &String| candidates.iter().any(|b| b.service == *s);
    if d.run.gate.cancelled {
        let changed: Vec<String> = gate::changed(&d.selected, &d.state.before, &d.run.gate.last)
            .into_iter()
            .filter(in_plan)
            .collect();
        d.hc.report.warn(&format!(
            "{}: {}: rolling back {} to the previous images without waiting for health checks",
            d.label(),
            cancel::reason(),
            if changed.is_empty() {
                "nothing".to_string()
            } else {
                changed.join(", ")
            }
        ));
        if !changed.is_empty() {
            let (_, back) = rollback(d, &changed, restore, true)?;
            d.run.rolled_back = !back.is_empty();
        }
        return Ok(());
    }
    let failed: Vec<String> = d
        .run
        .failed
        .keys()
        .filter(|s| in_plan(s))
        .cloned()
        .collect();
    if !failed.is_empty() {
        let (ok, _) = rollback(d, &failed, restore, false)?;
        d.run.rolled_back = ok;
    }
    Ok(())
}

/// The pins of a rollback: each service with a previous image pinned to it (`back`), the others
/// (`fresh`: nothing ran before) left for a `stop`.
pub fn rollback_pins(
    previous: &BTreeMap<String, ServiceState>,
    services: &[String],
    pins: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>, Vec<String>) {
    let mut pins = pins.clone();
    let (mut back, mut fresh) = (Vec::new(), Vec::new());
    for s in services {
        match previous.get(s).and_then(|p| p.release_tag.clone()) {
            Some(tag) => {
                pins.insert(s.clone(), tag);
                back.push(s.clone());
            }
            None => fresh.push(s.clone()),
        }
    }
    (pins, back, fresh)
}

/// Puts `services` back; returns whether every one is back and healthy, and those brought back.
fn rollback(
    d: &mut HostDeploy,
    services: &[String],
    restore: Option<u64>,
    fast: bool,
) -> Result<(bool, Vec<String>)> {
    let label = d.label();
    let report = d.hc.report;
    let record = d.run.record.clone().unwrap_or_default();
    let (pins, back, fresh) = rollback_pins(&record.previous, services, &d.pins);
    for s in &fresh {
        report.warn(&format!(
            "{label}: {s} has no previous image to roll back to (first deploy); stopping it"
        ));
    }
    let mut s = Script::new();
    if !fresh.is_empty() {
        s.run("stop", &d.compose.stop(&fresh));
    }
    if !back.is_empty() {
        if let Some(p) = restore {
            s.shell(
                "restore",
                &format!(
                    "cp -R {}/. {}/",
                    shell_quote(&pu::files_dir(&d.hc.env.dir, p)),
                    shell_quote(d.hc.env.dir.trim_end_matches('/'))
                ),
            );
        }
        s.write(
            "pins",
            &d.hc.override_path(),
            &d.hc.pins_text(&pins, true),
            0o644,
        );
    }
    let ran = d.script(&s)?;
    if back.is_empty() {
        return Ok((false, back));
    }
    if !ran.ok("pins") {
        let f = RecordFailure::new(&label, "write the rollback pins", d.hc.override_path())
            .stderr(ran.out.stderr_tail(STDERR_TAIL_LINES));
        return Err(f.into());
    }
    let joined = back.join(", ");
    match restore {
        Some(p) if ran.ok("restore") => report.warn(&format!(
            "{label}: rolling back {joined} to the previous release's images, with release {p}'s compose and env files"
        )),
        Some(p) => report.warn(&format!(
            "{label}: could not restore release {p}'s compose files ({}); rolling back {joined} to the previous images only",
            ran.out.stderr_tail(2)
        )),
        None => report.warn(&format!(
            "{label}: rolling back {joined} to the previous release's images (the host keeps no copy of the previous compose files, so they stay as uploaded)"
        )),
    }
    let ok = bring_back(d, &back, fast)?;
    let result = match (fast, ok) {
        (true, _) => "cancelled",
        (false, true) => "ok",
        (false, false) => "failed",
    };
    let audit = d.hc.audit_entry(
        "up.rollback",
        Some(record.number),
        &back,
        result,
        fast.then(cancel::reason),
    );
    d.run.audits.push(audit);
    Ok((ok && fresh.is_empty(), back))
}

/// `compose up` of the services going back (with the override), then their gate (none after a
/// signal). Whether they are healthy.
fn bring_back(d: &mut HostDeploy, back: &[String], fast: bool) -> Result<bool> {
    let label = d.label();
    let report = d.hc.report;
    let c = compose_for(d.hc.env, d.state.flavor.clone(), true);
    let opts = crate::cmd::compose::UpOptions {
        stop_timeout: fast.then_some(CANCEL_STOP_TIMEOUT),
        ..up_options(d.hc.req.force)
    };
    let status = d.stream(&c.up(back, &opts))?;
    let mut ok = status == 0;
    if fast {
        report.warn(&format!(
            "{label}: {} started again without a health check ({})",
            back.join(", "),
            cancel::reason()
        ));
        return Ok(ok);
    }
    let checks: Vec<_> = back.iter().map(|s| gate_check(d.hc.manifest, s)).collect();
    let client = d.state.http_client.clone();
    let result = gate::run(d, &checks, None, status != 0, &client);
    for (s, why) in result.failed {
        report.error(
            &format!("{label}: {s}: rollback is not healthy either: {why}"),
            None,
        );
        ok = false;
    }
    if ok {
        report.warn(&format!(
            "{label}: rolled back {}: the previous version is serving",
            back.join(", ")
        ));
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_with_a_previous_image_are_pinned_back_the_others_stopped() {
        let previous: BTreeMap<String, ServiceState> = [(
            "web".to_string(),
            ServiceState {
                release_tag: Some("shop/web:shop.web-release-2-before".into()),
                ..Default::default()
            },
        )]
        .into();
        let pins: BTreeMap<String, String> = [("api".to_string(), "shop/api:9".to_string())].into();
        let (pins, back, fresh) =
            rollback_pins(&previous, &["web".to_string(), "db".to_string()], &pins);
        assert_eq!(back, ["web"]);
        assert_eq!(fresh, ["db"]);
        assert_eq!(pins["web"], "shop/web:shop.web-release-2-before");
        assert_eq!(pins["api"], "shop/api:9", "the other pins stay");
    }
}
