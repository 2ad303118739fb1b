//! The compose service performer: carries out the steps `plan::up` plans for one host, on that
//! host's executor ([`HostDeploy`], the engine's [`Perform`] for compose). One module per phase,
//! each a small policy with unit tests on plain data:
//!
//! - [`inspect`]: what the host is (read-only; real in a dry run too): preflight, the
//!   configuration of the files this run installs (resolved in a scratch directory), the start
//!   read under the lock.
//! - [`prepare`]: ship images, install the files (their copy per release, secrets, override),
//!   pull registry images.
//! - [`start`]: mark releases left `in_progress`, record the release and protect the running
//!   images, `compose up` (compose #12069's probe).
//! - [`gate`]: the health gate, one [`crate::engine::poll::poll`].
//! - [`rollback`]: the failed services back on what ran before.
//! - [`finish`]: what runs now, release tags, the record written durably, retention, audit, the
//!   host's result.
//!
//! Round trips are what a deploy over SSH costs: each step's host commands run through one
//! [`Script`] (one channel); `compose up` streams on its own, and each gate probe is one channel
//! (plus one for the HTTP checks that are due).
//!
//! A release is `live` only once its record says so on disk: records go through
//! [`Script::write_durable`], and a record that cannot be written fails the run, saying what
//! runs. A SIGINT or SIGTERM ([`crate::cancel`]) stops the waiting: what was being deployed goes
//! back to the previous images without a health gate, the release is recorded, and the fan-out
//! releases the environment lock.

pub mod finish;
pub mod gate;
pub mod inspect;
pub mod prepare;
pub mod rollback;
pub mod start;

use super::{HostResult, UpRequest};
use crate::cmd::Cmd;
use crate::cmd::compose::{self as cc, Compose};
use crate::cmd::docker_engine::{self as de, Script, Section, parse_sections};
use crate::engine::runner::{Perform, RunState};
use crate::error::{CommandFailure, Error, Result};
use crate::exec::{Executor, Output, Stream};
use crate::manifest::{Environment, Host, Manifest};
use crate::plan::up::{self as pu, ComposeAction, HostState, OVERRIDE_FILE};
use crate::plan::{Action, Step};
use crate::report::Report;
use crate::state::{AuditEntry, ReleaseRecord, StatePaths};
use std::collections::BTreeMap;
use std::time::Instant;

/// Containers by compose service (the first container of each service).
pub type Containers = BTreeMap<String, de::ContainerInfo>;

/// Containers by service, preferring a running one when a service has several.
pub fn by_service(list: Vec<de::ContainerInfo>) -> Containers {
    let mut map = Containers::new();
    for c in list {
        let replace = match map.get(&c.service) {
            None => true,
            Some(old) => old.status != "running" && c.status == "running",
        };
        if replace {
            map.insert(c.service.clone(), c);
        }
    }
    map
}

/// What one host's deploy works with: the run, the environment, the manifest. Cheap to copy.
#[derive(Clone, Copy)]
pub struct HostCtx<'a> {
    pub report: &'a Report,
    pub host: &'a Host,
    pub env: &'a Environment,
    pub manifest: &'a Manifest,
    pub req: &'a UpRequest,
}

impl HostCtx<'_> {
    pub fn label(&self) -> String {
        self.host.label()
    }

    pub fn paths(&self) -> StatePaths {
        StatePaths::new(&self.env.dir)
    }

    pub fn override_path(&self) -> String {
        format!("{}/{OVERRIDE_FILE}", self.env.dir.trim_end_matches('/'))
    }

    /// The compose services the run deploys.
    pub fn selected(&self) -> Vec<String> {
        self.req
            .services
            .iter()
            .filter_map(|s| self.manifest.services.get(s))
            .map(|s| s.compose_service.clone())
            .collect()
    }

    /// The manifest key of a compose service.
    pub fn manifest_name(&self, compose_service: &str) -> String {
        self.manifest
            .services
            .iter()
            .find(|(_, s)| s.compose_service == compose_service)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| compose_service.to_string())
    }

    /// compose service → its secrets file as the override names it, for every service with
    /// `secrets:` (its own or the environment's).
    pub fn secret_files(&self) -> BTreeMap<String, String> {
        pu::secret_names(self.manifest, self.env)
            .into_keys()
            .map(|cs| {
                let f = pu::secrets_file_ref(&self.env.dir, &self.env.compose_files, &cs);
                (cs, f)
            })
            .collect()
    }

    /// The override file's text for `pins`, with the secrets files (`secrets`) or without (the
    /// staged copy `config` resolves).
    pub fn pins_text(&self, pins: &BTreeMap<String, String>, secrets: bool) -> String {
        let files = if secrets {
            self.secret_files()
        } else {
            BTreeMap::new()
        };
        let mut text = pu::override_yaml(pins, &files);
        // v1 needs every file to declare the same `version:` as the first one.
        if let Some(v) = self.compose_file_version() {
            text.push_str(&format!(
                "version: {}\n",
                serde_json::to_string(&v).unwrap_or_default()
            ));
        }
        text
    }

    /// The `version:` of the first compose file in the repository, if it declares one.
    fn compose_file_version(&self) -> Option<String> {
        let first = self.env.compose_files.first()?;
        let text = std::fs::read_to_string(self.req.repo_root.join(first)).ok()?;
        let v: serde_json::Value = cc::yaml_value(&text).ok()?;
        match v.get("version")? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// An audit line of this run.
    pub fn audit_entry(
        &self,
        action: &str,
        release: Option<u64>,
        services: &[String],
        result: &str,
        detail: Option<String>,
    ) -> String {
        let entry = AuditEntry {
            time: crate::clock::now_rfc3339(),
            actor: self.req.owner.actor.clone(),
            run_url: self.req.owner.run_url.clone(),
            action: action.into(),
            env: self.req.env.clone(),
            release,
            services: services.to_vec(),
            result: result.into(),
            detail,
        };
        crate::ledger::store::audit_line(self.report, &entry)
    }

    /// A release record as written on the host: one line of JSON, masked.
    pub fn record_json(&self, r: &ReleaseRecord) -> String {
        crate::ledger::store::record_text(self.report, r)
    }
}

/// A script's answer. On a recording executor (a dry run) every section "would have worked".
pub struct Ran {
    pub out: Output,
    pub secs: BTreeMap<String, Section>,
    pub recorded: bool,
    /// Each section's command as people see it ([`Script::shown`]).
    pub shown: BTreeMap<String, String>,
}

impl Ran {
    pub fn ok(&self, name: &str) -> bool {
        self.recorded || self.secs.get(name).is_some_and(Section::success)
    }

    /// The failure of section `name` on `host`, `what` it was for: its command as shown, its exit
    /// status, and the last `lines` of the script's stderr. A section that did not run has the
    /// script's status (none when the script succeeded: it stopped before the section).
    pub fn failure(
        &self,
        host: &str,
        what: impl Into<String>,
        name: &str,
        lines: usize,
    ) -> CommandFailure {
        let shown = self.shown.get(name).cloned().unwrap_or_else(|| name.into());
        let f = CommandFailure::shown(host, what, shown).stderr(self.out.stderr_tail(lines));
        match self.secs.get(name).map(|s| s.status) {
            Some(status) => f.status(status),
            None if self.out.status != 0 => f.status(self.out.status),
            None => f,
        }
    }

    /// Section `name` succeeded but its output cannot be read (`why`).
    pub fn unreadable(&self, host: &str, what: impl Into<String>, name: &str, why: &str) -> Error {
        let shown = self.shown.get(name).cloned().unwrap_or_else(|| name.into());
        CommandFailure::shown(host, what, shown)
            .status(0)
            .stderr(why)
            .into()
    }
}

/// Runs a script that changes the host (recorded in a dry run).
pub fn run_script(ex: &mut dyn Executor, s: &Script) -> Result<Ran> {
    let out = ex.capture(&s.cmd())?;
    let secs = parse_sections(&out.stdout_str());
    Ok(Ran {
        out,
        secs,
        recorded: ex.records(),
        shown: s.shown_all().clone(),
    })
}

/// Runs a script that only reads (real in a dry run too).
pub fn read_script(ex: &mut dyn Executor, s: &Script) -> Result<Ran> {
    let out = ex.read(&s.cmd())?;
    let secs = parse_sections(&out.stdout_str());
    Ok(Ran {
        out,
        secs,
        recorded: false,
        shown: s.shown_all().clone(),
    })
}

/// What the steps of one host found so far.
#[derive(Default)]
pub struct HostRun {
    /// The environment's releases (as read, then as this run changed them).
    pub records: Vec<ReleaseRecord>,
    /// This run's release record, once the record step wrote it.
    pub record: Option<ReleaseRecord>,
    pub audits: Vec<String>,
    pub t0: Option<Instant>,
    /// `compose up`'s exit status.
    pub compose_status: i32,
    /// A signal came before `compose up`: nothing was changed.
    pub cancelled_before_up: bool,
    /// Where compose #12069's background `--dry-run up` writes its answer.
    pub dry_run_file: Option<String>,
    pub gate: gate::GateResult,
    /// Failed services and why (the gate's, and after a signal every changed one).
    pub failed: BTreeMap<String, String>,
    pub health_text: BTreeMap<String, String>,
    pub rolled_back: bool,
    /// The host's result, once the finish step made it.
    pub result: Option<HostResult>,
}

/// One host's deploy: performs the compose steps of its plan on its executor.
pub struct HostDeploy<'a> {
    pub hc: HostCtx<'a>,
    pub ex: &'a mut dyn Executor,
    /// This machine, for the images built here (a recorder in a dry run).
    pub local: &'a mut dyn Executor,
    /// Promote: the source environment's host, for the images shipped from it.
    pub source: Option<&'a mut dyn Executor>,
    pub state: HostState,
    /// The pins after this run, and the compose invocation that reads them.
    pub pins: BTreeMap<String, String>,
    pub compose: Compose,
    pub selected: Vec<String>,
    pub run: HostRun,
}

impl<'a> HostDeploy<'a> {
    pub fn new(
        hc: HostCtx<'a>,
        ex: &'a mut dyn Executor,
        local: &'a mut dyn Executor,
        source: Option<&'a mut dyn Executor>,
        state: HostState,
    ) -> HostDeploy<'a> {
        let selected = hc.selected();
        let pins = pu::host::new_pins(&state.pins, &selected, &hc.req.images);
        let with_override = pu::host::uses_override(hc.manifest, hc.env, &pins);
        let compose = pu::host::compose_for(hc.env, state.flavor.clone(), with_override);
        HostDeploy {
            run: HostRun {
                records: state.records.clone(),
                ..HostRun::default()
            },
            hc,
            ex,
            local,
            source,
            state,
            pins,
            compose,
            selected,
        }
    }

    pub fn label(&self) -> String {
        self.hc.label()
    }

    pub fn script(&mut self, s: &Script) -> Result<Ran> {
        run_script(self.ex, s)
    }

    pub fn read_script(&mut self, s: &Script) -> Result<Ran> {
        read_script(self.ex, s)
    }

    /// Runs a command streaming its output with the host as prefix; returns the exit status.
    pub fn stream(&mut self, cmd: &Cmd) -> Result<i32> {
        let prefix = self.label();
        let report = self.hc.report;
        Ok(self.ex.run(cmd, None, &mut |s: Stream, l: &str| {
            report.relay(&prefix, s, l)
        })?)
    }

    /// The image each selected service runs after this run, as planned: its pin, else what
    /// compose resolves.
    pub fn planned_images(&self) -> BTreeMap<String, String> {
        self.selected
            .iter()
            .map(|s| {
                let config = self.state.config.as_ref().and_then(|c| c.get(s));
                let image = self
                    .pins
                    .get(s)
                    .cloned()
                    .or_else(|| config.and_then(|c| c.image.clone()))
                    .unwrap_or_default();
                (s.clone(), image)
            })
            .collect()
    }

    /// The host's result (made by the finish step; a run that stopped before has none).
    pub fn into_result(self) -> Option<HostResult> {
        self.run.result
    }
}

impl Perform for HostDeploy<'_> {
    fn perform(&mut self, step: &Step, state: &mut RunState) -> Result<()> {
        let Action::Compose(action) = &step.action else {
            return Err(Error::Bug(format!(
                "{}: step {} is not a compose step",
                self.label(),
                step.id
            )));
        };
        match action {
            ComposeAction::Ship {
                service, image, id, ..
            } => prepare::ship(self, service, image, id.as_deref()),
            ComposeAction::Interrupted { .. } => start::interrupted(self),
            ComposeAction::Files(f) => prepare::files(self, f),
            ComposeAction::Pull { pulls } => prepare::pull(self, pulls),
            ComposeAction::Record { release, protect } => start::record(self, *release, protect),
            ComposeAction::Up {
                cmd, check_12069, ..
            } => start::up(self, cmd, *check_12069),
            ComposeAction::Gate { services } => gate::perform(self, services, state),
            ComposeAction::Rollback {
                services,
                restore_from,
                ..
            } => rollback::perform(self, services, *restore_from),
            ComposeAction::Finish { .. } => finish::perform(self),
            ComposeAction::Lock { .. } => Err(Error::Bug(format!(
                "{}: the lock is the fan-out's step, not the host's",
                self.label()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script of three sections and an answer in which `pins` failed and `audit` did not run.
    fn answered(script_status: i32) -> Ran {
        let mut s = Script::new();
        s.run("containers", &de::inspect_project("shop"));
        s.shell(
            "restore",
            "cp -R /srv/shop/.deploy-action/files/3/. /srv/shop/",
        );
        s.write("pins", "/srv/shop/override.yml", "services: {}\n", 0o644);
        s.append("audit", "/srv/shop/.deploy-action/audit.log", "{}");
        let text = format!(
            "{}{}",
            "\n@@deploy-action-section containers\n[]\n@@deploy-action-end containers 0\n",
            "\n@@deploy-action-section pins\n\n@@deploy-action-end pins 1\n"
        );
        Ran {
            secs: parse_sections(&text),
            out: Output {
                status: script_status,
                stdout: text.into_bytes(),
                stderr:
                    b"one\nsh: cannot create /srv/shop/.override.yml.tmp: Read-only file system\n"
                        .to_vec(),
            },
            recorded: false,
            shown: s.shown_all().clone(),
        }
    }

    #[test]
    fn a_failed_section_is_named_by_its_command_with_its_status_and_the_stderr_tail() {
        let ran = answered(0);
        assert_eq!(
            ran.failure("deploy@h:22", "writing the files", "pins", 1)
                .to_string(),
            "deploy@h:22: writing the files failed (exit status 1): `write /srv/shop/override.yml`\n  stderr: sh: cannot create /srv/shop/.override.yml.tmp: Read-only file system"
        );
        assert_eq!(
            ran.failure("local", "restoring", "restore", 1).cmd,
            "cp -R /srv/shop/.deploy-action/files/3/. /srv/shop/"
        );
        // A section that did not run: the script's status, or (it succeeded) none.
        let f = ran.failure("local", "the audit line", "audit", 1);
        assert_eq!(
            (f.cmd.as_str(), f.status),
            ("append to /srv/shop/.deploy-action/audit.log", None)
        );
        let f = answered(2).failure("local", "the audit line", "audit", 1);
        assert_eq!(f.status, Some(2));
        let e = ran.unreadable("local", "listing", "containers", "not JSON");
        assert!(
            matches!(&e, Error::Command(c) if c.status == Some(0)
                && c.cmd == de::inspect_project("shop").shown()
                && c.stderr_tail == "not JSON"),
            "{e:?}"
        );
    }
}
