//! Drives `up` on one host: lock, inspect, upload, record, tag, override, `compose up`, health gate,
//! rollback of failed services, retention, audit. The policy lives here; the commands come from
//! `cmd/` and `plan/up.rs`, and every process goes through an [`Executor`].
//!
//! Stays out of: choosing services and hosts (`commands/up.rs`), printing (everything goes through
//! [`Report`]), building images (`build`).

pub mod clock;
pub mod lock;
pub mod ship;

use crate::cmd::compose::{self, Compose, Flavor, ServiceConfig, UpOptions};
use crate::cmd::{Cmd, docker_engine as de};
use crate::error::{Error, Result};
use crate::exec::{Executor, Output, Stream};
use crate::manifest::{Environment, Health, Host, Manifest};
use crate::plan::up::{self as pu, HostView, OVERRIDE_FILE, Probe, Stability, Verdict};
use crate::report::Report;
use crate::state::{
    AuditEntry, LockOwner, ReleaseRecord, ReleaseStatus, ReleaseStatusField, ServiceState,
    StatePaths,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Default health-gate timeout when the manifest gives none.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Consecutive good probes the stability window needs.
pub const STABLE_PASSES: u32 = 3;
/// The shortest stability window.
pub const STABLE_WINDOW: Duration = Duration::from_secs(5);
/// Log lines shown for a failing container.
pub const LOG_LINES: u32 = 50;

/// What the user asked `up` to do, resolved.
#[derive(Clone, Debug)]
pub struct UpRequest {
    pub env: String,
    /// Manifest service keys to deploy.
    pub services: Vec<String>,
    /// compose service → image reference to pin (`--image`, built images).
    pub images: BTreeMap<String, String>,
    /// Which of `images` came from `--image` (asked about, checked before anything changes).
    pub user_images: BTreeSet<String>,
    pub force: bool,
    pub lock_wait: Option<Duration>,
    pub dry_run: bool,
    pub yes: bool,
    pub owner: LockOwner,
    /// The repository root (compose files are relative to it).
    pub repo_root: PathBuf,
    /// `v1` or `v2` to force a compose flavor (DEPLOY_COMPOSE), else detected.
    pub compose_pref: Option<String>,
    /// Whether stdin is a terminal (for confirmations).
    pub interactive: bool,
    /// Notes for the release record (why it runs, what it rolls back or promotes).
    pub notes: Vec<String>,
}

/// The result for one service on one host.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub old_image: String,
    pub new_image: String,
    pub health: String,
    pub duration_secs: f64,
    pub result: String,
    pub rollback: String,
}

/// The result of one host.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HostResult {
    pub host: String,
    pub release: Option<u64>,
    pub ok: bool,
    pub rolled_back: bool,
    pub services: Vec<ServiceResult>,
    /// The release record as written on the host (none in a dry run).
    #[serde(skip)]
    pub record: Option<ReleaseRecord>,
}

/// One host's deploy.
pub struct HostDeploy<'a> {
    pub ex: &'a mut dyn Executor,
    pub report: &'a Report,
    pub host: Host,
    pub env: &'a Environment,
    pub manifest: &'a Manifest,
    pub req: &'a UpRequest,
}

/// Container state by compose service (the first container of each service).
type Containers = BTreeMap<String, de::ContainerInfo>;

impl HostDeploy<'_> {
    fn label(&self) -> String {
        self.host.label()
    }

    fn paths(&self) -> StatePaths {
        StatePaths::new(&self.env.dir)
    }

    /// Runs a command, collecting output; executor failures become errors.
    fn capture(&mut self, cmd: &Cmd) -> Result<Output> {
        Ok(self.ex.capture(cmd)?)
    }

    /// Runs a command that must succeed.
    fn must(&mut self, cmd: &Cmd) -> Result<Output> {
        let out = self.capture(cmd)?;
        if !out.success() {
            return Err(Error::StageFailed(format!(
                "{}: `{}` failed (exit {}): {}",
                self.label(),
                cmd.display(),
                out.status,
                out.stderr_tail(10)
            )));
        }
        Ok(out)
    }

    /// Runs a command streaming its output with the host as prefix; returns the exit status.
    fn stream(&mut self, cmd: &Cmd) -> Result<i32> {
        let prefix = self.label();
        let report = self.report;
        Ok(self.ex.run(cmd, None, &mut |s: Stream, l: &str| {
            report.relay(&prefix, s, l)
        })?)
    }

    fn upload(&mut self, path: &str, data: &[u8]) -> Result<()> {
        Ok(self.ex.upload(path, data, 0o644)?)
    }

    /// Finds compose on the host: v2 first, then v1 (or the one DEPLOY_COMPOSE names).
    pub fn detect_compose(&mut self) -> Result<Flavor> {
        let pref = self.req.compose_pref.clone();
        let try_v2 = pref.as_deref() != Some("v1");
        let try_v1 = pref.as_deref() != Some("v2");
        if try_v2 {
            if let Ok(out) = self.ex.capture(&compose::version_probe_v2()) {
                if out.success() {
                    if let Some(v) = compose::parse_version(&out.stdout_str()) {
                        if v.major >= 2 {
                            return Ok(Flavor::V2(v));
                        }
                    }
                }
            }
        }
        if try_v1 {
            if let Ok(out) = self.ex.capture(&compose::version_probe_v1()) {
                if out.success() {
                    if let Some(v) = compose::parse_version(&out.stdout_str()) {
                        return Ok(if v.major >= 2 {
                            Flavor::V2(v)
                        } else {
                            Flavor::V1(v)
                        });
                    }
                }
            }
        }
        Err(Error::StageFailed(format!(
            "{}: neither `docker compose` nor `docker-compose` works on this host",
            self.label()
        )))
    }

    /// The compose invocation; the override file joins the `-f` list only when it pins something
    /// (v1 rejects an empty extension file as a version mismatch).
    fn compose(&self, flavor: Flavor, with_override: bool) -> Compose {
        let mut files = self.env.compose_files.clone();
        if with_override {
            files.push(OVERRIDE_FILE.to_string());
        }
        Compose {
            flavor,
            project: self.env.compose_project.clone(),
            files,
            dir: self.env.dir.clone(),
        }
    }

    /// Every container of the project, by compose service.
    fn containers(&mut self, project: &str) -> Result<Containers> {
        let ids = self.must(&de::ps_project(project))?.stdout_str();
        let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
        if ids.is_empty() {
            return Ok(Containers::new());
        }
        let out = self.must(&de::inspect(&ids))?;
        let list = de::parse_inspect(&out.stdout_str()).map_err(Error::StageFailed)?;
        let mut map = Containers::new();
        for c in list {
            // Prefer a running container when a service has several.
            let replace = match map.get(&c.service) {
                None => true,
                Some(old) => old.status != "running" && c.status == "running",
            };
            if replace {
                map.insert(c.service.clone(), c);
            }
        }
        Ok(map)
    }

    fn read_records(&mut self) -> Result<Vec<ReleaseRecord>> {
        let state = crate::ledger::read(self.ex, &self.env.dir)?;
        for p in &state.ledger.problems {
            self.report.warn(&format!(
                "{}: {}: {} (ignored)",
                self.label(),
                p.file,
                p.message
            ));
        }
        Ok(state.ledger.releases)
    }

    fn write_record(&mut self, r: &ReleaseRecord) -> Result<()> {
        crate::ledger::store::write(self.ex, &self.env.dir, r)
    }

    fn audit(
        &mut self,
        action: &str,
        release: Option<u64>,
        services: &[String],
        result: &str,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            time: clock::now_rfc3339(),
            actor: self.req.owner.actor.clone(),
            run_url: self.req.owner.run_url.clone(),
            action: action.into(),
            env: self.req.env.clone(),
            release,
            services: services.to_vec(),
            result: result.into(),
            detail,
        };
        let line = serde_json::to_string(&entry).unwrap_or_default();
        let cmd = de::append(&self.paths().audit_log(), &line);
        if let Err(e) = self.must(&cmd) {
            self.report.warn(&format!("audit log not written: {e}"));
        }
    }

    /// The compose configuration as the host resolves it.
    fn config(&mut self, c: &Compose) -> Result<BTreeMap<String, ServiceConfig>> {
        let out = self.capture(&c.config())?;
        if !out.success() {
            return Err(Error::StageFailed(format!(
                "{}: the compose configuration is invalid:\n{}",
                self.label(),
                out.stderr_tail(20)
            )));
        }
        let text = out.stdout_str();
        let value: serde_json::Value = if c.flavor.has_config_json() {
            serde_json::from_str(&text).map_err(|e| Error::Other(e.into()))?
        } else {
            compose::yaml_value(&text)
                .map_err(|e| Error::StageFailed(format!("compose config: {e}")))?
        };
        Ok(compose::parse_config(&value))
    }

    /// The full run on this host: lock, deploy, always unlock.
    pub fn run(mut self) -> Result<HostResult> {
        let flavor = self.detect_compose()?;
        self.report
            .info(&format!("{}: {}", self.label(), flavor.label()));
        if flavor.has_no_deps_hash_bug() {
            self.report.warn(&format!(
                "{}: {} has compose bug #12069 (2.26.0–2.29.2): after `up --no-deps` a later plain `docker compose up` may recreate the service needlessly; deploy-action checks the stored config hash after each deploy. Upgrade to ≥ 2.29.3.",
                self.label(),
                flavor.label()
            ));
        }
        if flavor.is_v1() {
            self.report.warn(&format!(
                "{}: docker-compose {} (v1) is unmaintained since 2023; `--wait` is emulated by polling `docker inspect`",
                self.label(),
                flavor.version()
            ));
        }
        if self.req.dry_run {
            return self.dry_run(flavor);
        }
        let paths = self.paths();
        lock::acquire(
            self.ex,
            self.report,
            &self.host,
            &paths,
            &self.req.owner,
            &self.req.env,
            self.req.lock_wait,
        )?;
        let result = self.locked(flavor);
        let release = lock::release(self.ex, &paths);
        if let Err(e) = release {
            self.report.warn(&format!(
                "{}: could not release the lock: {e}",
                self.label()
            ));
        }
        result
    }

    fn selected_compose_services(&self) -> Vec<String> {
        self.req
            .services
            .iter()
            .filter_map(|s| self.manifest.services.get(s))
            .map(|s| s.compose_service.clone())
            .collect()
    }

    fn health_of(&self, compose_service: &str) -> Option<&Health> {
        self.manifest
            .services
            .values()
            .find(|s| s.compose_service == compose_service)
            .and_then(|s| s.health.as_ref())
    }

    /// The files to upload: compose files and the env files they name that exist in the repository.
    fn uploads(&self) -> Vec<(String, String)> {
        let dir = self.env.dir.trim_end_matches('/');
        let mut out = Vec::new();
        for f in &self.env.compose_files {
            out.push((f.clone(), format!("{dir}/{f}")));
            let local = self.req.repo_root.join(f);
            let Ok(text) = std::fs::read_to_string(&local) else {
                continue;
            };
            let Ok(value) = compose::yaml_value(&text) else {
                continue;
            };
            let base = std::path::Path::new(f)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            let Some(services) = value.get("services").and_then(|s| s.as_object()) else {
                continue;
            };
            for s in services.values() {
                for e in compose::env_file_list(s.get("env_file")) {
                    if e.starts_with('/') || e.contains("..") {
                        continue;
                    }
                    let rel = base.join(&e).to_string_lossy().into_owned();
                    if self.req.repo_root.join(&rel).is_file()
                        && !out.iter().any(|(l, _)| *l == rel)
                    {
                        out.push((rel.clone(), format!("{dir}/{rel}")));
                    }
                }
            }
        }
        out
    }

    fn read_pins(&mut self) -> Result<BTreeMap<String, String>> {
        let path = format!("{}/{OVERRIDE_FILE}", self.env.dir.trim_end_matches('/'));
        let out = self.capture(&de::cat(&path))?;
        Ok(if out.success() {
            pu::parse_override(&out.stdout_str())
        } else {
            BTreeMap::new()
        })
    }

    fn write_pins(&mut self, pins: &BTreeMap<String, String>) -> Result<()> {
        let path = format!("{}/{OVERRIDE_FILE}", self.env.dir.trim_end_matches('/'));
        let mut text = pu::override_yaml(pins);
        // v1 needs every file to declare the same `version:` as the first one.
        if let Some(v) = self.compose_file_version() {
            text.push_str(&format!(
                "version: {}\n",
                serde_json::to_string(&v).unwrap_or_default()
            ));
        }
        self.upload(&path, text.as_bytes())
    }

    /// The `version:` of the first compose file in the repository, if it declares one.
    fn compose_file_version(&self) -> Option<String> {
        let first = self.env.compose_files.first()?;
        let text = std::fs::read_to_string(self.req.repo_root.join(first)).ok()?;
        let v: serde_json::Value = compose::yaml_value(&text).ok()?;
        match v.get("version")? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The pins after this run: `--image` (and built) images for the selected services, no pin for
    /// the other selected services (back to the compose files), untouched for the rest.
    fn new_pins(
        &self,
        old: &BTreeMap<String, String>,
        selected: &[String],
    ) -> BTreeMap<String, String> {
        let mut pins = old.clone();
        for s in selected {
            match self.req.images.get(s) {
                Some(i) => pins.insert(s.clone(), i.clone()),
                None => pins.remove(s),
            };
        }
        pins
    }

    /// Checks every `--image` exists on the host or can be pulled, before anything changes.
    fn check_images(&mut self) -> Result<()> {
        let images: Vec<(String, String)> = self
            .req
            .images
            .iter()
            .filter(|(s, _)| self.req.user_images.contains(*s))
            .map(|(s, i)| (s.clone(), i.clone()))
            .collect();
        for (svc, image) in images {
            if self.capture(&de::image_id(&image))?.success() {
                continue;
            }
            if self.req.dry_run {
                self.report.info(&format!(
                    "{}: {image} is not on the host; `up` would pull it",
                    self.label()
                ));
                continue;
            }
            let pulled = self.capture(&de::pull(&image))?;
            if !pulled.success() {
                return Err(Error::usage_help(
                    format!(
                        "{}: image `{image}` for `{svc}` is not on the host and cannot be pulled",
                        self.label()
                    ),
                    format!("docker pull said: {}", pulled.stderr_tail(3).trim()),
                ));
            }
        }
        Ok(())
    }

    /// Shows current → new for `--image` services and asks, unless --yes.
    fn confirm_images(&self, before: &Containers) -> Result<()> {
        if self.req.user_images.is_empty() {
            return Ok(());
        }
        for s in &self.req.user_images {
            let cur = before
                .get(s)
                .map(|c| c.image.as_str())
                .unwrap_or("(not running)");
            self.report.info(&format!(
                "{}: {s}: {cur} → {}",
                self.label(),
                self.req.images.get(s).map(String::as_str).unwrap_or("?")
            ));
        }
        if self.req.yes || self.req.dry_run {
            return Ok(());
        }
        if !self.req.interactive {
            return Err(Error::usage_help(
                "--image changes what runs on the host and needs a confirmation",
                "pass --yes to confirm without a terminal",
            ));
        }
        self.report.info("Deploy these images? [y/N]");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Ok(())
        } else {
            Err(Error::usage("cancelled: nothing was changed"))
        }
    }

    fn dry_run(mut self, flavor: Flavor) -> Result<HostResult> {
        let c = self.compose(flavor, true);
        let selected = self.selected_compose_services();
        let paths = self.paths();
        let status = lock::status(self.ex, &paths)?;
        if let Some(owner) = status {
            self.report.warn(&format!(
                "{}: the {} lock is held: {}; a real run would exit 4",
                self.label(),
                self.req.env,
                lock::describe(&owner)
            ));
        }
        let records = self.read_records()?;
        let before = self.containers(&c.project)?;
        self.check_images()?;
        self.confirm_images(&before)?;
        let old_pins = self.read_pins()?;
        let new_pins = self.new_pins(&old_pins, &selected);
        let c = self.compose(c.flavor.clone(), !new_pins.is_empty());
        let view = HostView {
            host: self.host.clone(),
            compose: c.clone(),
            release: crate::ledger::next_number(&records),
            uploads: self.uploads(),
            current: selected
                .iter()
                .filter_map(|s| {
                    before
                        .get(s)
                        .map(|c| (s.clone(), (c.image.clone(), c.image_id.clone())))
                })
                .collect(),
            pins: new_pins,
            ship: vec![],
        };
        let steps = pu::host_steps(&view, &self.req.env, &selected, &self.up_options(&c));
        self.report.info(&format!(
            "{}: would run (release {}):",
            self.label(),
            view.release
        ));
        for s in &steps {
            self.report.info(&format!("  {}", s.describe()));
        }
        if !view.pins.is_empty() {
            self.report
                .info(&format!("  override.yml would pin: {:?}", view.pins));
        }
        self.report
            .info("  then: health gate, rollback of failed services, retention, audit log, unlock");
        Ok(HostResult {
            host: self.label(),
            release: None,
            ok: true,
            rolled_back: false,
            record: None,
            services: selected
                .iter()
                .map(|s| ServiceResult {
                    service: s.clone(),
                    old_image: before.get(s).map(|c| c.image.clone()).unwrap_or_default(),
                    new_image: view.pins.get(s).cloned().unwrap_or_default(),
                    health: "-".into(),
                    duration_secs: 0.0,
                    result: "dry-run".into(),
                    rollback: String::new(),
                })
                .collect(),
        })
    }

    fn up_options(&self, c: &Compose) -> UpOptions {
        let wait = self
            .selected_compose_services()
            .iter()
            .map(|s| {
                self.health_of(s)
                    .map(|h| h.timeout)
                    .unwrap_or(DEFAULT_HEALTH_TIMEOUT)
            })
            .max()
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT);
        UpOptions {
            wait_secs: c.flavor.has_wait().then_some(wait.as_secs().max(1)),
            force_recreate: self.req.force,
            with_deps: false,
        }
    }

    /// Everything done while holding the lock.
    fn locked(&mut self, flavor: Flavor) -> Result<HostResult> {
        let c = self.compose(flavor.clone(), false);
        let selected = self.selected_compose_services();
        let mut records = self.read_records()?;
        let n = crate::ledger::next_number(&records);
        let prev_live = crate::ledger::current(&records).map(|r| r.number);

        // Read-only checks first: nothing changes before they pass.
        self.check_images()?;
        let before = self.containers(&c.project)?;
        self.confirm_images(&before)?;

        // Upload compose and env files, then check the configuration and the selection.
        for (local, remote) in self.uploads() {
            let data = std::fs::read(self.req.repo_root.join(&local)).map_err(|e| {
                Error::usage(format!("cannot read {local} from the repository: {e}"))
            })?;
            self.upload(&remote, &data)?;
        }
        let old_pins = self.read_pins()?;
        let pins = self.new_pins(&old_pins, &selected);
        self.write_pins(&pins)?;
        let c = self.compose(flavor.clone(), !pins.is_empty());
        let config = self.config(&c)?;
        let missing: Vec<&String> = selected
            .iter()
            .filter(|s| !config.contains_key(*s))
            .collect();
        if !missing.is_empty() {
            self.write_pins(&old_pins)?;
            let names: Vec<&str> = config.keys().map(String::as_str).collect();
            return Err(Error::usage_help(
                format!(
                    "compose has no service {:?} in {}",
                    missing,
                    self.env.compose_files.join(", ")
                ),
                format!("compose services: {}", names.join(", ")),
            ));
        }
        if !flavor.is_v1() {
            let dependents = compose::reverse_dependents(&config, &selected);
            let running: Vec<&String> = dependents
                .iter()
                .filter(|d| before.contains_key(*d))
                .collect();
            if !running.is_empty() {
                self.report.warn(&format!(
                    "{}: {:?} depend on {:?} (depends_on); compose may recreate them too (compose #10308). Set `depends_on: {{svc: {{restart: false}}}}` to prevent it.",
                    self.label(), running, selected
                ));
            }
        }

        // Record the state before the change and protect the running images.
        let started = clock::now_rfc3339();
        let mut record = ReleaseRecord {
            number: n,
            env: self.req.env.clone(),
            sha: self.req.owner.sha.clone(),
            status: ReleaseStatusField(ReleaseStatus::InProgress),
            created_at: started.clone(),
            finished_at: None,
            actor: self.req.owner.actor.clone(),
            run_url: self.req.owner.run_url.clone(),
            ..Default::default()
        };
        // The record carries the environment's whole state: what `pages` and `migrate` recorded.
        let units = crate::ledger::unit_versions(&records);
        record.pages = units.pages.into_iter().map(|(k, (_, p))| (k, p)).collect();
        record.migration_version = units.migration.map(|(_, v)| v);
        record.notes.extend(self.req.notes.iter().cloned());
        for s in &selected {
            if let Some(cur) = before.get(s) {
                let tag = pu::before_tag(&cur.image, &c.project, n);
                let tagged = self.capture(&de::tag(&cur.image_id, &tag))?.success();
                record.previous.insert(
                    s.clone(),
                    ServiceState {
                        image: cur.image.clone(),
                        image_id: cur.image_id.clone(),
                        container_id: Some(cur.id.clone()),
                        config_hash: cur.config_hash.clone(),
                        release_tag: tagged.then_some(tag),
                        ..Default::default()
                    },
                );
            }
        }
        self.write_record(&record)?;
        records.push(record.clone());
        self.audit("up.start", Some(n), &selected, "started", None);
        self.report.info(&format!(
            "{}: release {n}: deploying {}",
            self.label(),
            selected.join(", ")
        ));

        // compose up for the selected services only.
        let t0 = Instant::now();
        let mut opts = self.up_options(&c);
        if flavor.has_no_deps_hash_bug() {
            opts.with_deps = self.deps_up_to_date(&c, &config, &selected, &before)?;
        }
        let status = self.stream(&c.up(&selected, &opts))?;
        let mut failed: BTreeMap<String, String>;
        let mut health_text: BTreeMap<String, String> = BTreeMap::new();
        if status != 0 {
            self.report.error(
                &format!(
                    "{}: `docker compose up` failed (exit {status})",
                    self.label()
                ),
                None,
            );
        }
        // The gate runs even when `up --wait` failed, to name the failing services precisely.
        failed = self.gate(&c.project, &selected, status != 0);
        for s in &selected {
            let text = match failed.get(s) {
                Some(why) => format!("failed: {why}"),
                None => "healthy".into(),
            };
            health_text.insert(s.clone(), text);
        }
        if status != 0 && failed.is_empty() {
            for s in &selected {
                failed.insert(s.clone(), format!("compose up exited {status}"));
            }
        }
        let after = self.containers(&c.project)?;
        self.report_recreated(&before, &after, &selected);
        if flavor.has_no_deps_hash_bug() && failed.is_empty() {
            self.check_config_hash(&c, &selected, &after)?;
        }

        // Roll back the failed services only.
        let mut rolled_back = false;
        if !failed.is_empty() {
            for s in failed.keys() {
                self.show_failure(s, &after);
            }
            rolled_back = self.rollback(&c, &record, &failed, &pins)?;
        }
        let after = if failed.is_empty() {
            after
        } else {
            self.containers(&c.project)?
        };

        // The record after the change.
        let ok = failed.is_empty();
        let running_before = crate::ledger::unit_versions(&records).services;
        for (svc, cinfo) in &after {
            // An unchanged service keeps the tag of the release it came with (same image id): no
            // docker call; a changed one gets `<repo>:<project>-release-<n>`.
            let reuse = running_before
                .get(svc)
                .map(|(_, p)| p)
                .filter(|p| p.image_id == cinfo.image_id)
                .and_then(|p| p.release_tag.clone());
            let release_tag = match reuse {
                Some(t) if !selected.contains(svc) => Some(t),
                _ => {
                    let tag = pu::release_tag(&cinfo.image, &c.project, n);
                    let tagged = ok && self.capture(&de::tag(&cinfo.image_id, &tag))?.success();
                    tagged.then_some(tag)
                }
            };
            record.services.insert(
                svc.clone(),
                ServiceState {
                    image: cinfo.image.clone(),
                    image_id: cinfo.image_id.clone(),
                    container_id: Some(cinfo.id.clone()),
                    config_hash: cinfo.config_hash.clone(),
                    release_tag,
                    deployed: selected.contains(svc),
                    ..Default::default()
                },
            );
        }
        record.finished_at = Some(clock::now_rfc3339());
        record.status = ReleaseStatusField(if ok {
            ReleaseStatus::Live
        } else if rolled_back {
            ReleaseStatus::RolledBack
        } else {
            ReleaseStatus::Failed
        });
        for (s, why) in &failed {
            record.notes.push(format!("{s}: {why}"));
        }
        if rolled_back {
            record.notes.push(format!(
                "rolled back: {}",
                failed.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        self.write_record(&record)?;
        if ok {
            if let Some(p) = prev_live.and_then(|p| records.iter_mut().find(|r| r.number == p)) {
                p.status = ReleaseStatusField(ReleaseStatus::Superseded);
                let p = p.clone();
                self.write_record(&p)?;
            }
        }
        if let Some(r) = records.iter_mut().find(|r| r.number == n) {
            *r = record.clone();
        }
        self.retention(&records)?;
        let result = if ok {
            "live"
        } else if rolled_back {
            "rolled_back"
        } else {
            "failed"
        };
        self.audit(
            "up",
            Some(n),
            &selected,
            result,
            (!failed.is_empty()).then(|| record.notes.join("; ")),
        );

        let elapsed = t0.elapsed().as_secs_f64();
        let services = selected
            .iter()
            .map(|s| {
                let old = before
                    .get(s)
                    .map(|c| c.image.clone())
                    .unwrap_or_else(|| "(new)".into());
                let running = record
                    .services
                    .get(s)
                    .map(|c| c.image.clone())
                    .unwrap_or_default();
                // A failed service shows what was tried, and what it runs now.
                let new = match (
                    failed.contains_key(s),
                    pins.get(s).or(config.get(s).and_then(|c| c.image.as_ref())),
                ) {
                    (true, Some(tried)) if *tried != running => format!("{tried} (now {running})"),
                    _ => running,
                };
                let res = if !failed.contains_key(s) {
                    "deployed".to_string()
                } else if rolled_back {
                    "rolled back".to_string()
                } else {
                    "failed".to_string()
                };
                let hint = match record.previous.get(s).and_then(|p| p.release_tag.clone()) {
                    Some(tag) => format!(
                        "deploy-action up --env {} --only {} --image {}={} --yes",
                        self.req.env,
                        self.manifest_name(s),
                        s,
                        tag
                    ),
                    None => format!("docker compose -p {} stop {s}", c.project),
                };
                ServiceResult {
                    service: s.clone(),
                    old_image: old,
                    new_image: new,
                    health: health_text.get(s).cloned().unwrap_or_default(),
                    duration_secs: elapsed,
                    result: res,
                    rollback: hint,
                }
            })
            .collect();
        Ok(HostResult {
            host: self.label(),
            release: Some(n),
            ok,
            rolled_back,
            services,
            record: Some(record),
        })
    }

    fn manifest_name(&self, compose_service: &str) -> String {
        self.manifest
            .services
            .iter()
            .find(|(_, s)| s.compose_service == compose_service)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| compose_service.to_string())
    }

    /// Warns about every container not selected whose id changed (compose #10308).
    fn report_recreated(&self, before: &Containers, after: &Containers, selected: &[String]) {
        let recreated: Vec<&String> = before
            .iter()
            .filter(|(s, c)| {
                !selected.contains(s) && after.get(*s).map(|a| a.id != c.id).unwrap_or(true)
            })
            .map(|(s, _)| s)
            .collect();
        if !recreated.is_empty() {
            self.report.warn(&format!(
                "{}: compose also recreated or removed {:?}, which were not selected (depends_on, compose #10308)",
                self.label(),
                recreated
            ));
        }
    }

    /// Compose #12069 handling (2.26.0–2.29.2): `up --no-deps` stores a wrong config hash for a
    /// service with `depends_on`, so a later plain `up` recreates it. When every dependency runs with
    /// an up-to-date config hash, a plain `up SERVICES` recreates nothing else and stores the right
    /// hash: use it. Otherwise keep `--no-deps` (never touch unselected services) and warn.
    fn deps_up_to_date(
        &mut self,
        c: &Compose,
        config: &BTreeMap<String, ServiceConfig>,
        selected: &[String],
        before: &Containers,
    ) -> Result<bool> {
        let has_edges = selected
            .iter()
            .any(|s| config.get(s).is_some_and(|c| !c.depends_on.is_empty()));
        if !has_edges {
            return Ok(false);
        }
        let deps: Vec<String> = compose::dependencies(config, selected)
            .into_iter()
            .collect();
        if deps.is_empty() {
            return Ok(true);
        }
        let out = self.capture(&c.config_hash(&deps))?;
        let hashes = compose::parse_config_hash(&out.stdout_str());
        let stale: Vec<&String> = deps
            .iter()
            .filter(|d| {
                let running = before.get(*d);
                !(out.success()
                    && running.is_some_and(|r| r.status == "running")
                    && running.and_then(|r| r.config_hash.as_ref()) == hashes.get(*d))
            })
            .collect();
        if stale.is_empty() {
            self.report.info(&format!(
                "{}: compose #12069: dependencies {:?} are up to date, so `up` runs without --no-deps and stores the right config hash",
                self.label(),
                deps
            ));
            Ok(true)
        } else {
            self.report.warn(&format!(
                "{}: compose #12069: dependencies {:?} are not up to date, so `up --no-deps` is used and a later plain `docker compose up` may recreate {:?}",
                self.label(),
                stale,
                selected
            ));
            Ok(false)
        }
    }

    /// On compose 2.26–2.29.2, compares the stored config hash with what a plain `up` computes.
    fn check_config_hash(
        &mut self,
        c: &Compose,
        selected: &[String],
        after: &Containers,
    ) -> Result<()> {
        let out = self.capture(&c.config_hash(selected))?;
        if !out.success() {
            return Ok(());
        }
        let hashes = compose::parse_config_hash(&out.stdout_str());
        for s in selected {
            let (Some(want), Some(have)) = (
                hashes.get(s),
                after.get(s).and_then(|a| a.config_hash.as_ref()),
            ) else {
                continue;
            };
            if want != have {
                self.report.warn(&format!(
                    "{}: {s}: stored config hash {} differs from `config --hash` {} (compose #12069): a plain `docker compose up` would recreate it; deploy it with deploy-action instead",
                    self.label(),
                    &have[..have.len().min(12)],
                    &want[..want.len().min(12)]
                ));
            }
        }
        Ok(())
    }

    /// Health gate for `services`, probed together: container state, the manifest's HTTP check run
    /// on the host, and a stability window. `compose_failed`: `up` already failed, so only collect a
    /// verdict briefly. Returns the failure reason per failed service.
    fn gate(
        &mut self,
        project: &str,
        services: &[String],
        compose_failed: bool,
    ) -> BTreeMap<String, String> {
        let start = Instant::now();
        let mut client: Option<String> = None;
        let mut pending: BTreeMap<String, (Stability, Duration, String)> = services
            .iter()
            .map(|s| {
                let timeout = self
                    .health_of(s)
                    .map(|h| h.timeout)
                    .unwrap_or(DEFAULT_HEALTH_TIMEOUT);
                let deadline = if compose_failed {
                    Duration::from_secs(5)
                } else {
                    timeout + STABLE_WINDOW
                };
                (
                    s.clone(),
                    (
                        Stability::new(STABLE_PASSES, STABLE_WINDOW),
                        deadline,
                        "no probe yet".to_string(),
                    ),
                )
            })
            .collect();
        let mut failed = BTreeMap::new();
        while !pending.is_empty() {
            let containers = self.containers(project);
            let names: Vec<String> = pending.keys().cloned().collect();
            for svc in names {
                let health = self.health_of(&svc).cloned();
                let probe = match &containers {
                    Ok(c) => self.probe(c, &svc, health.as_ref(), &mut client),
                    Err(e) => Probe::Pending(e.to_string()),
                };
                let (stable, deadline, last) = pending.get_mut(&svc).expect("pending");
                if let Probe::Pending(why) | Probe::Failed(why) = &probe {
                    *last = why.clone();
                }
                match stable.observe(probe, start.elapsed()) {
                    Verdict::Healthy => {
                        self.report
                            .info(&format!("{}: {svc} is healthy", self.label()));
                        pending.remove(&svc);
                    }
                    Verdict::Unhealthy(why) => {
                        failed.insert(svc.clone(), why);
                        pending.remove(&svc);
                    }
                    Verdict::Wait if start.elapsed() >= *deadline => {
                        failed.insert(
                            svc.clone(),
                            format!("not healthy after {}s: {last}", deadline.as_secs()),
                        );
                        pending.remove(&svc);
                    }
                    Verdict::Wait => {}
                }
            }
            if !pending.is_empty() {
                // Probe every second, but land exactly on the end of a stability window.
                let step = if compose_failed {
                    Duration::from_millis(500)
                } else {
                    Duration::from_secs(1)
                };
                let now = start.elapsed();
                let until_ready = pending
                    .values()
                    .filter_map(|(st, _, _)| st.ready_at())
                    .filter(|t| *t > now)
                    .map(|t| t - now)
                    .min()
                    .unwrap_or(step);
                std::thread::sleep(step.min(until_ready));
            }
        }
        failed
    }

    fn probe(
        &mut self,
        containers: &Containers,
        service: &str,
        health: Option<&Health>,
        client: &mut Option<String>,
    ) -> Probe {
        let Some(c) = containers.get(service) else {
            return Probe::Pending("no container yet".into());
        };
        match (c.status.as_str(), c.health.as_deref()) {
            ("exited" | "dead", _) => {
                return Probe::Failed(format!("container {} {}", c.name, c.status));
            }
            (_, Some("unhealthy")) => {
                return Probe::Failed(format!("container {} is unhealthy", c.name));
            }
            (_, Some("starting")) => return Probe::Pending("healthcheck starting".into()),
            ("running", _) => {}
            (other, _) => return Probe::Pending(format!("container {other}")),
        }
        if let Some(h) = health {
            if client.is_none() {
                let out = self.ex.capture(&de::http_client_probe()).ok();
                *client = Some(
                    out.map(|o| o.stdout_str().trim().to_string())
                        .unwrap_or_else(|| "none".into()),
                );
            }
            let cl = client.clone().unwrap_or_default();
            if cl == "none" {
                return Probe::Failed(
                    "neither curl nor wget is installed on the host for the health check".into(),
                );
            }
            let out = match self.ex.capture(&de::http_get(&cl, &h.url, 5)) {
                Ok(o) => o,
                Err(e) => return Probe::Pending(e.to_string()),
            };
            let text = out.stdout_str();
            let (status, body) = if cl == "curl" {
                match de::parse_curl(&text) {
                    Some(sb) => sb,
                    None => {
                        return Probe::Pending(format!("GET {}: {}", h.url, out.stderr_tail(1)));
                    }
                }
            } else if out.success() {
                (200, text)
            } else {
                return Probe::Pending(format!("GET {}: {}", h.url, out.stderr_tail(1)));
            };
            if status != h.expect_status {
                return Probe::Pending(format!(
                    "GET {}: status {status}, expected {}",
                    h.url, h.expect_status
                ));
            }
            if let Some(want) = &h.contains {
                if !body.contains(want.as_str()) {
                    return Probe::Pending(format!("GET {}: body lacks {want:?}", h.url));
                }
            }
        }
        Probe::Good {
            container: c.id.clone(),
            restarts: c.restart_count,
        }
    }

    /// Prints the failing container's last log lines and its health log.
    fn show_failure(&mut self, service: &str, after: &Containers) {
        let Some(c) = after.get(service).cloned() else {
            return;
        };
        self.report.group_start(&format!(
            "{}: {service}: last {LOG_LINES} log lines of {}",
            self.label(),
            c.name
        ));
        let prefix = format!("{}/{service}", self.label());
        let report = self.report;
        let _ = self.ex.run(&de::logs(&c.id, LOG_LINES), None, &mut |s, l| {
            report.relay(&prefix, s, l)
        });
        if !c.health_log.is_empty() {
            self.report.info(&format!("health log of {}:", c.name));
            for l in &c.health_log {
                self.report.info(&format!("  {l}"));
            }
        }
        self.report.group_end();
    }

    /// Puts the failed services back on their pre-release images; true when all are healthy again.
    fn rollback(
        &mut self,
        c: &Compose,
        record: &ReleaseRecord,
        failed: &BTreeMap<String, String>,
        pins: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let mut pins = pins.clone();
        let mut back = Vec::new();
        for s in failed.keys() {
            match record.previous.get(s).and_then(|p| p.release_tag.clone()) {
                Some(tag) => {
                    pins.insert(s.clone(), tag);
                    back.push(s.clone());
                }
                None => self.report.warn(&format!(
                    "{}: {s} has no previous image to roll back to (first deploy); stopping it",
                    self.label()
                )),
            }
        }
        let fresh: Vec<String> = failed
            .keys()
            .filter(|s| !back.contains(s))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            let _ = self.capture(&c.stop(&fresh))?;
        }
        if back.is_empty() {
            return Ok(false);
        }
        self.report.warn(&format!(
            "{}: rolling back {} to the previous release's images",
            self.label(),
            back.join(", ")
        ));
        self.write_pins(&pins)?;
        let c = &self.compose(c.flavor.clone(), true);
        let opts = UpOptions {
            wait_secs: self.up_options(c).wait_secs,
            ..Default::default()
        };
        let status = self.stream(&c.up(&back, &opts))?;
        let mut ok = status == 0;
        for (s, why) in self.gate(&c.project, &back, false) {
            {
                self.report.error(
                    &format!(
                        "{}: {s}: rollback is not healthy either: {why}",
                        self.label()
                    ),
                    None,
                );
                ok = false;
            }
        }
        if ok {
            self.report.warn(&format!(
                "{}: rolled back {}: the previous version is serving",
                self.label(),
                back.join(", ")
            ));
        }
        self.audit(
            "up.rollback",
            Some(record.number),
            &back,
            if ok { "ok" } else { "failed" },
            None,
        );
        Ok(ok && fresh.is_empty())
    }

    /// Keeps the newest `keep_releases` records; removes older records and the tags only they use.
    fn retention(&mut self, records: &[ReleaseRecord]) -> Result<()> {
        let mut prune = pu::retention(records, self.env.keep_releases);
        // A tag the override file pins (a rolled-back service runs it) stays.
        let pinned: BTreeSet<String> = self.read_pins()?.into_values().collect();
        prune.tags.retain(|t| !pinned.contains(t));
        for t in &prune.tags {
            let _ = self.capture(&de::rmi(t))?;
        }
        for n in &prune.records {
            self.must(&de::rm_f(&self.paths().release(*n)))?;
        }
        if !prune.records.is_empty() {
            self.report.info(&format!(
                "{}: retention: removed releases {:?} and {} image tag(s)",
                self.label(),
                prune.records,
                prune.tags.len()
            ));
        }
        Ok(())
    }
}
