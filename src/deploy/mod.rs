//! Drives `up` on one host: preflight, inspect, upload, record, tag, override, `compose up`,
//! health gate, rollback of failed services, retention, audit. The policy lives here; the commands
//! come from `cmd/` and `plan/up.rs`, and every process goes through an [`Executor`]. The caller
//! holds the environment lock on every host ([`lock::EnvLock`]); each host checks it still does.
//!
//! Round trips are what a deploy over SSH costs, so the host state operations of each phase run
//! through one [`Script`] (one SSH channel): preflight (compose version, HTTP client, `--image`
//! checks); start (this run's lock token, records, pins, containers); prepare (files, their
//! per-release copy, pins, `config`); pull ([`pull`]: what the host has of the registry images,
//! then their pulls); record (protective tags, the `in_progress` record, audit); digests (the
//! repo digests of what runs and ran); finish (release tags, the record written durably, then
//! superseded record, retention, audit).
//! `compose up` streams on its own channel, and each gate probe is one channel (plus one for the
//! HTTP checks that are due).
//!
//! A release is `live` only once its record says so on disk: records go through
//! [`Script::write_durable`], and a record that cannot be written (a full disk) fails the run,
//! saying what runs. A release a dead run left `in_progress` is marked `interrupted` by the next.
//!
//! A SIGINT or SIGTERM ([`cancel`]) stops the waiting: what was being deployed goes back to the
//! previous images without a health gate, the release is recorded, and the command releases the
//! environment lock.
//!
//! Beside it, the other kinds of units and the parts `up` shares: `migrate.rs` (SQL migrations),
//! `pages.rs` (sites to Cloudflare Pages, and their redeploy and rollback for promote and
//! rollback), `summary.rs` (the host × service matrix of a multi-host run), `ship.rs`, `pull.rs`,
//! `secrets.rs`.
//!
//! Stays out of: choosing services and hosts (`commands/up.rs`), printing (everything goes through
//! [`Report`]), building images (`build`).

pub mod migrate;
pub mod pages;
mod pull;
pub mod secrets;
pub mod ship;
pub mod summary;

use crate::cmd::compose::{self, Compose, Flavor, ServiceConfig, UpOptions};
use crate::cmd::docker_engine::{self as de, Script, Section, parse_sections};
use crate::cmd::{Cmd, shell_quote};
use crate::error::{Error, Result};
use crate::exec::{Executor, Output, Stream};
use crate::ledger::lock;
use crate::manifest::{Environment, Health, Host, Manifest};
use crate::plan::up::{self as pu, HostView, OVERRIDE_FILE, Probe, Seen, Stability, Verdict};
use crate::report::Report;
use crate::state::{
    AuditEntry, LockOwner, ReleaseRecord, ReleaseStatus, ReleaseStatusField, ServiceState,
    StatePaths,
};
use crate::{cancel, clock};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Default health-gate timeout when the manifest gives none.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Consecutive good probes the gate needs for a new container.
pub const STABLE_PASSES: u32 = 2;
/// The stability window when `health.stable` gives none: how long a new container must have run.
pub const DEFAULT_STABLE_WINDOW: Duration = Duration::from_secs(5);
/// Time between gate probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// The longest nap between probes while services only wait for their window.
const MAX_NAP: Duration = Duration::from_secs(1);
/// Seconds an HTTP health check may take.
pub const HTTP_TIMEOUT_SECS: u64 = 3;
/// Seconds a replaced container gets to stop when a cancelled run rolls back.
pub const CANCEL_STOP_TIMEOUT: u64 = 2;
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
    /// Restore the compose and env files release `n` uploaded (kept on each host under
    /// `.deploy-action/files/<n>`) instead of uploading the repository's: a rollback puts the
    /// configuration back with the images.
    pub files_from: Option<u64>,
    /// The `secrets:` values written to the hosts (read by the command before anything changed).
    /// Not used with `files_from`: a rollback restores the secrets files its release ran with.
    pub secrets: secrets::Values,
}

impl UpRequest {
    /// A deploy of recorded artifacts (rollback, promote): the given images for `services`, no
    /// build, no questions (the command asked or gated already), notes for the record.
    pub fn recorded(
        env: &str,
        services: Vec<String>,
        images: BTreeMap<String, String>,
        owner: LockOwner,
        repo_root: PathBuf,
        notes: Vec<String>,
    ) -> UpRequest {
        UpRequest {
            env: env.to_string(),
            services,
            images,
            user_images: BTreeSet::new(),
            force: false,
            lock_wait: None,
            dry_run: false,
            yes: true,
            owner,
            repo_root,
            compose_pref: crate::env_vars::get(crate::env_vars::DEPLOY_COMPOSE),
            interactive: false,
            notes,
            files_from: None,
            secrets: secrets::Values::new(),
        }
    }
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
    /// The command that rolls the service back by hand (`rollback --only`), empty when it was
    /// already rolled back.
    pub rollback: String,
    /// The exact command for this host: `up --image SVC=<the …-before tag>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rollback_exact: String,
}

/// The result of one host.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HostResult {
    pub host: String,
    pub release: Option<u64>,
    pub ok: bool,
    pub rolled_back: bool,
    pub services: Vec<ServiceResult>,
    /// Why the host failed when that is not a service's health (unreachable, lock held,
    /// cancelled, not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The release record as written on the host (none in a dry run).
    #[serde(skip)]
    pub record: Option<ReleaseRecord>,
}

impl HostResult {
    /// A host where nothing was deployed: `error` says why (or `not run`).
    pub fn without_release(host: &Host, error: impl Into<String>) -> HostResult {
        HostResult {
            host: host.label(),
            release: None,
            ok: false,
            rolled_back: false,
            services: Vec::new(),
            error: Some(error.into()),
            record: None,
        }
    }
}

/// What the preflight learnt about a host (read-only, before any host changes).
#[derive(Clone, Debug)]
pub struct Preflight {
    pub flavor: Flavor,
    /// `curl`, `wget` or `none`: the HTTP client the health checks use.
    pub http_client: String,
}

/// The mode of a file `up` uploads (and of its copy under [`files_dir`]): a compose file 0644;
/// anything else uploaded with them is an env file, which holds secrets: 0600.
pub fn upload_mode(compose_files: &[String], local: &str) -> u32 {
    if compose_files.iter().any(|f| f == local) {
        0o644
    } else {
        0o600
    }
}

/// `<dir>/.deploy-action/files/<n>`: the compose and env files release `n` uploaded.
pub fn files_dir(env_dir: &str, n: u64) -> String {
    format!("{}/files/{n}", StatePaths::new(env_dir).root)
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

/// Containers by service, preferring a running one when a service has several.
fn by_service(list: Vec<de::ContainerInfo>) -> Containers {
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

/// What the start script read under the lock.
struct Start {
    /// The number this run's release gets: above every record, readable or not.
    next: u64,
    records: Vec<ReleaseRecord>,
    pins: BTreeMap<String, String>,
    before: Containers,
    /// Releases with a copy of their compose and env files on the host.
    copies: BTreeSet<u64>,
}

/// What the health gate found.
#[derive(Default)]
struct GateResult {
    /// Failed services with the reason.
    failed: BTreeMap<String, String>,
    /// A signal stopped the gate; the services still pending are in `failed`.
    cancelled: bool,
    /// The last container seen per service.
    last: Containers,
}

/// A gate probe's HTTP check to run: service, what the container probe saw, the check.
type HttpDue = (String, Seen, Health);

impl HostDeploy<'_> {
    fn label(&self) -> String {
        self.host.label()
    }

    fn paths(&self) -> StatePaths {
        StatePaths::new(&self.env.dir)
    }

    /// `<dir>/.deploy-action/files/<n>`: the compose and env files release `n` uploaded.
    fn files_dir(&self, n: u64) -> String {
        files_dir(&self.env.dir, n)
    }

    fn override_path(&self) -> String {
        format!("{}/{OVERRIDE_FILE}", self.env.dir.trim_end_matches('/'))
    }

    /// Runs a command, collecting output; executor failures become errors.
    fn capture(&mut self, cmd: &Cmd) -> Result<Output> {
        Ok(self.ex.capture(cmd)?)
    }

    /// Runs a script and returns its output and sections.
    fn script(&mut self, s: &Script) -> Result<(Output, BTreeMap<String, Section>)> {
        let out = self.capture(&s.cmd())?;
        let sections = parse_sections(&out.stdout_str());
        Ok((out, sections))
    }

    /// Runs a command streaming its output with the host as prefix; returns the exit status.
    fn stream(&mut self, cmd: &Cmd) -> Result<i32> {
        let prefix = self.label();
        let report = self.report;
        Ok(self.ex.run(cmd, None, &mut |s: Stream, l: &str| {
            report.relay(&prefix, s, l)
        })?)
    }

    /// Read-only checks of this host, before any host changes: compose flavor and version, the
    /// HTTP client for health checks, and every `--image` (present, or `docker pull` works). One
    /// round trip, plus a pull per missing image.
    pub fn preflight(&mut self) -> Result<Preflight> {
        let pref = self.req.compose_pref.clone();
        let try_v2 = pref.as_deref() != Some("v1");
        let try_v1 = pref.as_deref() != Some("v2");
        let mut s = Script::new();
        if try_v2 {
            s.run("compose-v2", &compose::version_probe_v2());
        }
        if try_v1 {
            if try_v2 {
                s.raw("if [ \"$da_rc\" -ne 0 ]; then");
            }
            s.run("compose-v1", &compose::version_probe_v1());
            if try_v2 {
                s.raw("fi");
            }
        }
        s.run("http-client", &de::http_client_probe());
        let images: Vec<(String, String)> = self
            .req
            .images
            .iter()
            .filter(|(svc, _)| self.req.user_images.contains(*svc))
            .map(|(svc, i)| (svc.clone(), i.clone()))
            .collect();
        for (i, (_, image)) in images.iter().enumerate() {
            s.run(&format!("image:{i}"), &de::image_id(image));
        }
        let (_, secs) = self.script(&s)?;
        let version = |name: &str| {
            secs.get(name)
                .filter(|s| s.success())
                .and_then(|s| compose::parse_version(&s.stdout))
        };
        let mut flavor = match version("compose-v2") {
            Some(v) if v.major >= 2 => Some(Flavor::V2(v)),
            _ => None,
        };
        if flavor.is_none() && try_v1 {
            let v1 = match version("compose-v1") {
                Some(v) => Some(v),
                // v2 answered with something that is not a v2 version: ask v1 on its own.
                None if !secs.contains_key("compose-v1") => self
                    .capture(&compose::version_probe_v1())
                    .ok()
                    .filter(Output::success)
                    .and_then(|o| compose::parse_version(&o.stdout_str())),
                None => None,
            };
            flavor = v1.map(|v| {
                if v.major >= 2 {
                    Flavor::V2(v)
                } else {
                    Flavor::V1(v)
                }
            });
        }
        let Some(flavor) = flavor else {
            return Err(Error::StageFailed(format!(
                "{}: neither `docker compose` nor `docker-compose` works on this host",
                self.label()
            )));
        };
        self.report
            .info(&format!("{}: {}", self.label(), flavor.label()));
        if flavor.has_no_deps_hash_bug() {
            self.report.warn(&format!(
                "{}: {} has compose bug #12069 (2.26.0–2.29.2): after `up --no-deps`, a later plain `docker compose up` may recreate a service with depends_on needlessly; deploy-action asks `docker compose --dry-run up` to avoid it, or to tell when it cannot. Upgrade to ≥ 2.29.3.",
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
        let http_client = secs
            .get("http-client")
            .map(|s| s.stdout.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into());
        for (i, (svc, image)) in images.iter().enumerate() {
            if secs
                .get(&format!("image:{i}"))
                .is_some_and(Section::success)
            {
                continue;
            }
            if self.req.dry_run {
                self.report.info(&format!(
                    "{}: {image} is not on the host; `up` would pull it",
                    self.label()
                ));
                continue;
            }
            let pulled = self.capture(&de::pull(image))?;
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
        Ok(Preflight {
            flavor,
            http_client,
        })
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

    fn audit_entry(
        &self,
        action: &str,
        release: Option<u64>,
        services: &[String],
        result: &str,
        detail: Option<String>,
    ) -> String {
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
        crate::ledger::store::audit_line(self.report, &entry)
    }

    /// A release record as written on the host: one line of JSON, masked.
    fn record_json(&self, r: &ReleaseRecord) -> String {
        crate::ledger::store::record_text(self.report, r)
    }

    /// Parses `config` output as the host resolved it.
    fn parse_config(&self, flavor: &Flavor, text: &str) -> Result<BTreeMap<String, ServiceConfig>> {
        let value: serde_json::Value = if flavor.has_config_json() {
            serde_json::from_str(text).map_err(|e| Error::Other(e.into()))?
        } else {
            compose::yaml_value(text)
                .map_err(|e| Error::StageFailed(format!("compose config: {e}")))?
        };
        Ok(compose::parse_config(&value))
    }

    /// The full run on this host: preflight, then the deploy. The caller holds the environment
    /// lock ([`lock::EnvLock`]) for the whole run; this checks that it still does on this host.
    pub fn run(self) -> Result<HostResult> {
        self.run_with(None)
    }

    /// [`HostDeploy::run`] with the preflight already done (`up` checks every host first).
    pub fn run_with(mut self, pre: Option<Preflight>) -> Result<HostResult> {
        cancel::install();
        let pre = match pre {
            Some(p) => p,
            None => self.preflight()?,
        };
        if self.req.dry_run {
            return self.dry_run(pre);
        }
        let start = self.start(true)?;
        self.locked(&pre, start)
    }

    /// The start script: with `held`, the check that this run holds the lock here (its token in
    /// the owner file), then (only then) the reads; without (dry run), the reads and the holder.
    fn start_script(&self, held: bool) -> Script {
        let paths = self.paths();
        let q = |s: &str| shell_quote(s).into_owned();
        let mut s = Script::new();
        let reads = |s: &mut Script| {
            s.run("records", &crate::ledger::list_cmd(&paths));
            s.shell(
                "pins",
                &format!("cat {} 2>/dev/null; true", q(&self.override_path())),
            );
            s.shell(
                "copies",
                &format!(
                    "ls {} 2>/dev/null; true",
                    q(&format!("{}/files", paths.root))
                ),
            );
            s.run(
                "containers",
                &de::inspect_project(&self.env.compose_project),
            );
        };
        if held {
            let lock = q(&paths.lock_dir());
            s.raw(&format!(
                "if {}; then da_lock=ours; elif [ -d {lock} ]; then da_lock=other; else da_lock=free; fi",
                lock::owns_test(&paths, &self.req.owner.token)
            ));
            s.shell("lock", "echo \"$da_lock\"");
            s.raw("if [ \"$da_lock\" = ours ]; then");
            reads(&mut s);
            s.raw("else");
            s.run("holder", &crate::ledger::lock_cmd(&paths));
            s.raw("fi");
        } else {
            s.run("holder", &crate::ledger::lock_cmd(&paths));
            reads(&mut s);
        }
        s
    }

    /// Reads the host's state in one round trip; with `held`, refuses unless this run holds the
    /// environment lock here (taken over by another run: exit 4 with the holder). Without
    /// (dry run) only reads.
    fn start(&mut self, held: bool) -> Result<Start> {
        let script = self.start_script(held);
        if held && cancel::requested().is_some() {
            return Err(Error::StageFailed(format!(
                "{}: {} before this host changed; nothing was changed here",
                self.label(),
                cancel::reason()
            )));
        }
        let (out, secs) = self.script(&script)?;
        let state = secs
            .get("lock")
            .map(|s| s.stdout.trim().to_string())
            .unwrap_or_default();
        if held && state != "ours" {
            let holder = secs
                .get("holder")
                .map(|h| h.stdout.trim().to_string())
                .filter(|h| !h.is_empty());
            let env = &self.req.env;
            return Err(match (state.as_str(), holder) {
                ("other", Some(h)) => Error::LockHeld(format!(
                    "{}: the {env} lock this run took was taken over: it is {}; nothing was changed here",
                    self.label(),
                    lock::describe(&lock::parse_owner(h.as_bytes()))
                )),
                ("free", _) => Error::StageFailed(format!(
                    "{}: this run does not hold the {env} lock here (it was released while the run went on); nothing was changed here",
                    self.label()
                )),
                _ => Error::StageFailed(format!(
                    "{}: cannot check the {env} lock {}: {}",
                    self.label(),
                    self.paths().lock_dir(),
                    out.stderr_tail(3)
                )),
            });
        }
        self.read_start(&secs, &out)
    }

    fn read_start(&self, secs: &BTreeMap<String, Section>, out: &Output) -> Result<Start> {
        let failed = |name: &str| {
            Error::StageFailed(format!(
                "{}: reading the state ({name}) failed: {}",
                self.label(),
                out.stderr_tail(5)
            ))
        };
        if secs.get("owner").is_some_and(|s| !s.success()) {
            return Err(failed("lock owner"));
        }
        let records = secs
            .get("records")
            .filter(|s| s.success())
            .ok_or_else(|| failed("release records"))?;
        let ledger = crate::ledger::parse_listing(&records.stdout);
        for p in &ledger.problems {
            self.report.warn(&format!(
                "{}: {}: {} (ignored; its number is not reused)",
                self.label(),
                p.file,
                p.message
            ));
        }
        if let Some(h) = secs.get("holder").filter(|h| !h.stdout.trim().is_empty()) {
            // Dry run: say what a real run would meet.
            if let Ok(Some(owner)) = crate::ledger::parse_lock(&h.stdout) {
                self.report.warn(&format!(
                    "{}: the {} lock is {}; a real run would exit 4",
                    self.label(),
                    self.req.env,
                    lock::describe(&owner)
                ));
            }
        }
        let containers = secs
            .get("containers")
            .filter(|s| s.success())
            .ok_or_else(|| failed("containers"))?;
        let list = de::parse_inspect(&containers.stdout).map_err(Error::StageFailed)?;
        Ok(Start {
            next: ledger.next_number(),
            records: ledger.releases,
            pins: secs
                .get("pins")
                .map(|s| pu::parse_override(&s.stdout))
                .unwrap_or_default(),
            before: by_service(list),
            copies: secs
                .get("copies")
                .map(|s| {
                    s.stdout
                        .split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        })
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

    /// The service's HTTP check, when it has one.
    fn http_of(&self, compose_service: &str) -> Option<(&Health, &str)> {
        self.health_of(compose_service)
            .and_then(|h| h.url.as_deref().map(|u| (h, u)))
    }

    fn window_of(&self, compose_service: &str) -> Duration {
        self.health_of(compose_service)
            .and_then(|h| h.stable)
            .unwrap_or(DEFAULT_STABLE_WINDOW)
    }

    fn timeout_of(&self, compose_service: &str) -> Duration {
        self.health_of(compose_service)
            .map(|h| h.timeout)
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT)
    }

    /// The files to upload: compose files and the env files they name that exist in the repository.
    fn uploads(&self) -> Vec<(String, String)> {
        repo_uploads(self.env, &self.req.repo_root)
    }

    /// compose service → its secrets file as the override names it, for every service with
    /// `secrets:` (its own or the environment's).
    fn secret_files(&self) -> BTreeMap<String, String> {
        self.manifest
            .services
            .values()
            .filter(|s| !self.env.secrets.is_empty() || !s.secrets.is_empty())
            .map(|s| {
                (
                    s.compose_service.clone(),
                    pu::secrets_file_ref(
                        &self.env.dir,
                        &self.env.compose_files,
                        &s.compose_service,
                    ),
                )
            })
            .collect()
    }

    /// Adds to `s` the secrets files of this release: with the repository's files, each service's
    /// values (0600, in 0700 directories) and their copy for release `n`; a service that no
    /// longer has secrets loses its file. Restoring release files (rollback), the restored copy
    /// is what runs. Either way every file the override names exists (empty when nothing was ever
    /// written), so compose can read it.
    fn write_secrets(&self, s: &mut Script, n: u64, flavor: &Flavor) -> Result<()> {
        let dir = self.env.dir.trim_end_matches('/');
        let env_dir = format!("{dir}/.deploy-action/env");
        let copy_dir = format!("{}/.deploy-action/env", self.files_dir(n));
        let q = |p: &str| shell_quote(p).into_owned();
        s.shell(
            "secrets-dir",
            &format!(
                "mkdir -p {e} {c} && chmod 700 {e} {c}",
                e = q(&env_dir),
                c = q(&copy_dir)
            ),
        );
        let wanted = self.secret_files();
        if self.req.files_from.is_none() {
            for (svc, values) in &self.req.secrets {
                let text = secrets::file_text(values, flavor.is_v1())?;
                let rel = pu::secrets_file(svc);
                s.write(
                    &format!("secrets:{svc}"),
                    &format!("{dir}/{rel}"),
                    &text,
                    0o600,
                );
                s.write(
                    &format!("secrets-copy:{svc}"),
                    &format!("{}/{rel}", self.files_dir(n)),
                    &text,
                    0o600,
                );
            }
            for svc in self.manifest.services.values() {
                let cs = &svc.compose_service;
                if !wanted.contains_key(cs) {
                    s.run(
                        &format!("secrets-drop:{cs}"),
                        &Cmd::new("rm")
                            .arg("-f")
                            .arg(format!("{dir}/{}", pu::secrets_file(cs))),
                    );
                }
            }
        }
        for cs in wanted.keys() {
            let f = q(&format!("{dir}/{}", pu::secrets_file(cs)));
            s.shell(
                &format!("secrets-exists:{cs}"),
                &format!("[ -e {f} ] || ( umask 077 && : > {f} )"),
            );
        }
        Ok(())
    }

    /// The fingerprints of the secrets `svc` runs with after this release: those written now, or,
    /// restoring release `n`'s files, those release `n` recorded.
    fn secret_prints(&self, svc: &str, records: &[ReleaseRecord]) -> BTreeMap<String, String> {
        match self.req.files_from {
            Some(n) => records
                .iter()
                .find(|r| r.number == n)
                .and_then(|r| r.services.get(svc))
                .map(|st| st.secrets.clone())
                .unwrap_or_default(),
            None => secrets::fingerprints(&self.manifest.project, &self.req.env, &self.req.secrets)
                .remove(svc)
                .unwrap_or_default(),
        }
    }

    /// Whether compose reads the override file: when it pins an image or names a secrets file (v1
    /// rejects an empty extension file).
    fn uses_override(&self, pins: &BTreeMap<String, String>) -> bool {
        !pins.is_empty() || !self.secret_files().is_empty()
    }

    /// The override file's text for `pins`.
    fn pins_text(&self, pins: &BTreeMap<String, String>) -> String {
        let mut text = pu::override_yaml(pins, &self.secret_files());
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

    fn dry_run(mut self, pre: Preflight) -> Result<HostResult> {
        let selected = self.selected_compose_services();
        let st = self.start(false)?;
        self.confirm_images(&st.before)?;
        let new_pins = self.new_pins(&st.pins, &selected);
        let c = self.compose(pre.flavor.clone(), self.uses_override(&new_pins));
        let view = HostView {
            host: self.host.clone(),
            compose: c.clone(),
            release: st.next,
            uploads: self.uploads(),
            current: selected
                .iter()
                .filter_map(|s| {
                    st.before
                        .get(s)
                        .map(|c| (s.clone(), (c.image.clone(), c.image_id.clone())))
                })
                .collect(),
            pins: new_pins,
            ship: vec![],
            pulls: self.pull_preview(&selected),
        };
        let steps = pu::host_steps(&view, &self.req.env, &selected, &self.up_options());
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
        self.report.info(
            "  then: health gate, rollback of failed services, release tags, the record (durably), retention, audit log",
        );
        Ok(HostResult {
            host: self.label(),
            release: None,
            ok: true,
            rolled_back: false,
            record: None,
            error: None,
            services: selected
                .iter()
                .map(|s| ServiceResult {
                    service: s.clone(),
                    old_image: st
                        .before
                        .get(s)
                        .map(|c| c.image.clone())
                        .unwrap_or_default(),
                    new_image: view.pins.get(s).cloned().unwrap_or_default(),
                    health: "-".into(),
                    duration_secs: 0.0,
                    result: "dry-run".into(),
                    rollback: String::new(),
                    rollback_exact: String::new(),
                })
                .collect(),
        })
    }

    /// `up -d --no-deps [--force-recreate]`: no `--wait`, the gate below waits (with a stability
    /// window `--wait` lacks, and without holding up the services that are already healthy).
    fn up_options(&self) -> UpOptions {
        UpOptions {
            wait_secs: None,
            force_recreate: self.req.force,
            with_deps: false,
            stop_timeout: None,
        }
    }

    /// Everything done while holding the lock.
    fn locked(&mut self, pre: &Preflight, st: Start) -> Result<HostResult> {
        let flavor = pre.flavor.clone();
        let selected = self.selected_compose_services();
        let Start {
            next: n,
            mut records,
            pins: old_pins,
            before,
            copies,
        } = st;
        self.mark_interrupted(&mut records, &before, n)?;
        let prev_live = crate::ledger::current(&records).map(|r| r.number);
        self.confirm_images(&before)?;

        // Upload compose and env files (and this release's copy of them), pins, then `config`.
        let pins = self.new_pins(&old_pins, &selected);
        let c = self.compose(flavor.clone(), self.uses_override(&pins));
        let config = self.prepare(n, &c, &pins)?;
        let missing: Vec<&String> = selected
            .iter()
            .filter(|s| !config.contains_key(*s))
            .collect();
        if !missing.is_empty() {
            let mut s = Script::new();
            s.write(
                "pins",
                &self.override_path(),
                &self.pins_text(&old_pins),
                0o644,
            );
            s.run("copy", &de::rm_rf(&self.files_dir(n)));
            self.script(&s)?;
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
        // Registry images, as compose resolves them with the pins: before anything changes.
        if let Err(e) = self.pull_images(&c, &config, &selected) {
            self.undo_prepare(n, &old_pins);
            return Err(e);
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
        let needs_12069 = flavor.has_no_deps_hash_bug()
            && flavor.has_dry_run()
            && selected
                .iter()
                .any(|s| config.get(s).is_some_and(|c| !c.depends_on.is_empty()));
        let mut opts = self.up_options();
        if needs_12069 && compose::waits_on_health(&config, &selected) {
            // A plain `up` (and its dry run) would poll every healthy dependency in the chain,
            // 0.5 s each: keep `--no-deps` and ask in the background, during the gate, whether a
            // later plain `up` would recreate what was deployed.
            self.report.info(&format!(
                "{}: compose #12069: {:?} wait on healthy dependencies, which a plain `up` polls 0.5 s each: `up --no-deps` is used, and `docker compose --dry-run up` runs during the health gate to tell whether a later plain `up` would recreate them",
                self.label(),
                selected
            ));
        } else if needs_12069 {
            opts.with_deps = self.plain_up_is_safe(&c, &selected, &before)?;
        }

        // Record the state before the change and protect the running images: one round trip.
        let mut record = ReleaseRecord {
            number: n,
            env: self.req.env.clone(),
            sha: self.req.owner.sha.clone(),
            status: ReleaseStatusField(ReleaseStatus::InProgress),
            created_at: clock::now_rfc3339(),
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
        let mut s = Script::new();
        for svc in &selected {
            if let Some(cur) = before.get(svc) {
                let tag = pu::before_tag(&cur.image, &c.project, svc, n);
                s.run(&format!("tag:{svc}"), &de::tag(&cur.image_id, &tag));
                record.previous.insert(
                    svc.clone(),
                    ServiceState {
                        image: cur.image.clone(),
                        image_id: cur.image_id.clone(),
                        container_id: Some(cur.id.clone()),
                        config_hash: cur.config_hash.clone(),
                        release_tag: Some(tag),
                        ..Default::default()
                    },
                );
            }
        }
        s.write_durable(
            "record",
            &self.paths().release(n),
            &self.record_json(&record),
            0o644,
        );
        s.raw("if [ \"$da_rc\" -eq 0 ]; then");
        s.append(
            "audit",
            &self.paths().audit_log(),
            &self.audit_entry("up.start", Some(n), &selected, "started", None),
        );
        s.raw("fi");
        let (out, secs) = self.script(&s)?;
        if !secs.get("record").is_some_and(Section::success) {
            return Err(Error::StageFailed(format!(
                "{}: cannot write release record {n}: {}",
                self.label(),
                out.stderr_tail(5)
            )));
        }
        let untagged: Vec<String> = record
            .previous
            .keys()
            .filter(|svc| {
                !secs
                    .get(&format!("tag:{svc}"))
                    .is_some_and(Section::success)
            })
            .cloned()
            .collect();
        if !untagged.is_empty() {
            for svc in &untagged {
                if let Some(p) = record.previous.get_mut(svc) {
                    p.release_tag = None;
                }
            }
            self.report.warn(&format!(
                "{}: could not tag the running image of {:?}: {}",
                self.label(),
                untagged,
                out.stderr_tail(3)
            ));
            crate::ledger::store::write(self.ex, self.report, &self.env.dir, &record)?;
        }
        records.push(record.clone());
        self.report.info(&format!(
            "{}: release {n}: deploying {}",
            self.label(),
            selected.join(", ")
        ));
        let mut audits: Vec<String> = Vec::new();

        if cancel::requested().is_some() {
            // Nothing changed yet: record that and stop.
            record.status = ReleaseStatusField(ReleaseStatus::Failed);
            record.finished_at = Some(clock::now_rfc3339());
            record.notes.push(format!(
                "{} before compose up; nothing was changed",
                cancel::reason()
            ));
            audits.push(self.audit_entry(
                "up",
                Some(n),
                &selected,
                "failed",
                Some(cancel::reason()),
            ));
            self.finish(
                &mut record,
                &records,
                &pins,
                prev_live,
                false,
                &[],
                &copies,
                audits,
                &before,
            )?;
            return Err(Error::StageFailed(format!(
                "{}: {} before compose up; nothing was changed",
                self.label(),
                cancel::reason()
            )));
        }

        // compose up for the selected services only.
        let t0 = Instant::now();
        let status = self.stream(&c.up(&selected, &opts))?;
        if status != 0 {
            self.report.error(
                &format!(
                    "{}: `docker compose up` failed (exit {status}); the health gate tells which services are affected",
                    self.label()
                ),
                None,
            );
        }
        // compose #12069 after `--no-deps`: the dry run runs on the host while the gate waits.
        let dry_run_file = (needs_12069 && !opts.with_deps && status == 0)
            .then(|| dry_run_file_of(&self.paths().root, n));
        if let Some(f) = &dry_run_file {
            let line = c.dry_run_up(&selected).to_shell_line();
            let (f, tmp) = (
                shell_quote(f).into_owned(),
                shell_quote(&format!("{f}.tmp")).into_owned(),
            );
            let pid = shell_quote(&format!("{}.pid", dry_run_file_of(&self.paths().root, n)))
                .into_owned();
            let _ = self.capture(&Cmd::shell(format!(
                "( {line} > {tmp} 2>&1; mv -f {tmp} {f} ) </dev/null >/dev/null 2>&1 & echo $! > {pid}"
            )));
        }
        let gate = self.gate(
            &c.project,
            &selected,
            Some(&before),
            status != 0,
            &pre.http_client,
        );
        let mut failed = gate.failed.clone();
        let mut health_text: BTreeMap<String, String> = BTreeMap::new();
        for s in &selected {
            let text = match failed.get(s) {
                Some(why) => format!("failed: {why}"),
                None => "healthy".into(),
            };
            health_text.insert(s.clone(), text);
        }
        if status != 0 && failed.is_empty() {
            let note = format!(
                "compose up exited {status}, but every selected service passed the health gate"
            );
            self.report.warn(&format!("{}: {note}", self.label()));
            record.notes.push(note);
        }

        // Roll back: the failed services only; after a signal, everything this run changed.
        let mut rolled_back = false;
        if gate.cancelled {
            let changed: Vec<String> = selected
                .iter()
                .filter(|s| match (before.get(*s), gate.last.get(*s)) {
                    (Some(b), Some(now)) => b.id != now.id,
                    _ => true,
                })
                .cloned()
                .collect();
            for s in &changed {
                failed
                    .entry(s.clone())
                    .or_insert_with(|| format!("{} during the health gate", cancel::reason()));
            }
            self.report.warn(&format!(
                "{}: {}: rolling back {} to the previous images without waiting for health checks",
                self.label(),
                cancel::reason(),
                if changed.is_empty() {
                    "nothing".to_string()
                } else {
                    changed.join(", ")
                }
            ));
            if !changed.is_empty() {
                let restore = self.restore_from(&records, &copies, n);
                let (_, back) =
                    self.rollback(&c, &record, &changed, &pins, restore, true, &mut audits)?;
                rolled_back = !back.is_empty();
            }
        } else if !failed.is_empty() {
            for s in failed.keys() {
                self.show_failure(s, &gate.last);
            }
            let to_roll: Vec<String> = failed.keys().cloned().collect();
            let restore = self.restore_from(&records, &copies, n);
            let (ok, _) =
                self.rollback(&c, &record, &to_roll, &pins, restore, false, &mut audits)?;
            rolled_back = ok;
        }
        let (after, dry_run) = self.after(&c.project, dry_run_file.as_deref())?;
        self.report_recreated(&before, &after, &selected);
        match (dry_run, failed.is_empty()) {
            (Some(Some(text)), true) => self.warn_plain_up_recreates(&text, &selected, &after),
            (Some(None), true) => self.report.info(&format!(
                "{}: compose #12069: the dry run had not finished when the health gate did, so it was stopped; a later plain `docker compose up` may recreate {:?}",
                self.label(),
                selected
            )),
            _ => {}
        }

        // The record after the change.
        let ok = failed.is_empty();
        let running_before = crate::ledger::unit_versions(&records).services;
        let mut new_tags: Vec<(String, String, String)> = Vec::new();
        for (svc, cinfo) in &after {
            // An unchanged service keeps the tag of the release it came with (same image id): no
            // docker call; a changed one gets `<repo>:<project>.<service>-release-<n>`.
            let reuse = running_before
                .get(svc)
                .map(|(_, p)| p)
                .filter(|p| p.image_id == cinfo.image_id)
                .and_then(|p| p.release_tag.clone());
            // A selected service that passed the gate runs what this release brought: tag it,
            // even when another service failed and the release is rolled back.
            let passed = selected.contains(svc) && !failed.contains_key(svc);
            let release_tag = match reuse {
                Some(t) if !passed => Some(t),
                _ if passed || ok => {
                    let tag = pu::release_tag(&cinfo.image, &c.project, svc, n);
                    new_tags.push((svc.clone(), cinfo.image_id.clone(), tag.clone()));
                    Some(tag)
                }
                _ => record
                    .previous
                    .get(svc)
                    .filter(|p| p.image_id == cinfo.image_id)
                    .and_then(|p| p.release_tag.clone()),
            };
            let tried = failed.contains_key(svc).then(|| {
                pins.get(svc)
                    .or(config.get(svc).and_then(|c| c.image.as_ref()))
                    .cloned()
                    .unwrap_or_default()
            });
            record.services.insert(
                svc.clone(),
                ServiceState {
                    image: cinfo.image.clone(),
                    image_id: cinfo.image_id.clone(),
                    container_id: Some(cinfo.id.clone()),
                    config_hash: cinfo.config_hash.clone(),
                    release_tag,
                    deployed: selected.contains(svc),
                    tried: tried.filter(|t| !t.is_empty()),
                    secrets: self.secret_prints(svc, &records),
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
        let result = if ok {
            "live"
        } else if rolled_back {
            "rolled_back"
        } else {
            "failed"
        };
        self.record_digests(&mut record);
        audits.push(self.audit_entry(
            "up",
            Some(n),
            &selected,
            result,
            (!failed.is_empty()).then(|| record.notes.join("; ")),
        ));
        self.finish(
            &mut record,
            &records,
            &pins,
            prev_live,
            ok,
            &new_tags,
            &copies,
            audits,
            &after,
        )?;

        let elapsed = t0.elapsed().as_secs_f64();
        let services = selected
            .iter()
            .map(|s| {
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
                let name = self.manifest_name(s);
                let exact = record
                    .previous
                    .get(s)
                    .and_then(|p| p.release_tag.as_deref())
                    .map(|tag| pu::manual_image_hint(&self.req.env, &name, tag))
                    .unwrap_or_default();
                let (rollback, rollback_exact) = match res {
                    "rolled back" => (String::new(), String::new()),
                    "deployed" => (pu::manual_rollback_hint(&self.req.env, &name), exact),
                    // Failed and not rolled back: this host's previous image is the exact answer.
                    _ if !exact.is_empty() => (exact, String::new()),
                    _ => (
                        format!("docker compose -p {} stop {s}", c.project),
                        String::new(),
                    ),
                };
                ServiceResult {
                    service: s.clone(),
                    old_image: old,
                    new_image: new,
                    health: health_text.get(s).cloned().unwrap_or_default(),
                    duration_secs: elapsed,
                    result: res.to_string(),
                    rollback,
                    rollback_exact,
                }
            })
            .collect();
        Ok(HostResult {
            host: self.label(),
            release: Some(n),
            ok,
            rolled_back,
            services,
            error: gate.cancelled.then(cancel::reason),
            record: Some(record),
        })
    }

    /// Uploads the compose and env files with this release's copy of them, writes the pins, and
    /// returns `config` as the host resolves it: one round trip.
    fn prepare(
        &mut self,
        n: u64,
        c: &Compose,
        pins: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, ServiceConfig>> {
        let mut s = Script::new();
        s.run("copy-clean", &de::rm_rf(&self.files_dir(n)));
        let uploads = if let Some(from) = self.req.files_from {
            let from = shell_quote(&self.files_dir(from)).into_owned();
            let copy = shell_quote(&self.files_dir(n)).into_owned();
            s.shell(
                "restore-files",
                &format!(
                    "cp -R {from}/. {dir}/ && mkdir -p {copy} && cp -R {from}/. {copy}/",
                    dir = shell_quote(self.env.dir.trim_end_matches('/'))
                ),
            );
            Vec::new()
        } else {
            self.uploads()
        };
        for (i, (local, remote)) in uploads.into_iter().enumerate() {
            let data = std::fs::read(self.req.repo_root.join(&local)).map_err(|e| {
                Error::usage(format!("cannot read {local} from the repository: {e}"))
            })?;
            let copy = format!("{}/{local}", self.files_dir(n));
            let mode = upload_mode(&self.env.compose_files, &local);
            match String::from_utf8(data) {
                Ok(text) if !text.contains('\0') => {
                    s.write(&format!("upload:{i}"), &remote, &text, mode);
                    s.write(&format!("copy:{i}"), &copy, &text, mode);
                }
                // Not text: its own uploads, byte for byte.
                Ok(text) => {
                    self.ex.upload(&remote, text.as_bytes(), mode as i32)?;
                    self.ex.upload(&copy, text.as_bytes(), mode as i32)?;
                }
                Err(e) => {
                    let bytes = e.into_bytes();
                    self.ex.upload(&remote, &bytes, mode as i32)?;
                    self.ex.upload(&copy, &bytes, mode as i32)?;
                }
            }
        }
        self.write_secrets(&mut s, n, &c.flavor)?;
        s.write("pins", &self.override_path(), &self.pins_text(pins), 0o644);
        s.run("config", &c.config());
        let (out, secs) = self.script(&s)?;
        for (name, sec) in &secs {
            if name != "config" && !sec.success() {
                return Err(Error::StageFailed(format!(
                    "{}: writing the files failed ({name}): {}",
                    self.label(),
                    out.stderr_tail(5)
                )));
            }
        }
        match secs.get("config") {
            Some(cfg) if cfg.success() => self.parse_config(&c.flavor, &cfg.stdout),
            _ => Err(Error::StageFailed(format!(
                "{}: the compose configuration is invalid:\n{}",
                self.label(),
                out.stderr_tail(20)
            ))),
        }
    }

    /// The finish script: release tags, the record (durably), then — only once the record is
    /// written — the superseded one, retention and the audit lines. One round trip; a tag that
    /// failed is taken out of the record afterwards. A record that cannot be written fails the
    /// run, saying what runs (`running`): the release is not `live` until its record says so.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        record: &mut ReleaseRecord,
        records: &[ReleaseRecord],
        pins: &BTreeMap<String, String>,
        prev_live: Option<u64>,
        ok: bool,
        new_tags: &[(String, String, String)],
        copies: &BTreeSet<u64>,
        audits: Vec<String>,
        running: &Containers,
    ) -> Result<()> {
        let paths = self.paths();
        let mut s = Script::new();
        for (svc, id, tag) in new_tags {
            s.run(&format!("tag:{svc}"), &de::tag(id, tag));
        }
        s.write_durable(
            "record",
            &paths.release(record.number),
            &self.record_json(record),
            0o644,
        );
        s.raw("if [ \"$da_rc\" -eq 0 ]; then");
        if ok && let Some(p) = prev_live.and_then(|p| records.iter().find(|r| r.number == p)) {
            let mut p = p.clone();
            p.status = ReleaseStatusField(ReleaseStatus::Superseded);
            s.write_durable(
                "superseded",
                &paths.release(p.number),
                &self.record_json(&p),
                0o644,
            );
        }
        let prune = self.retention(&mut s, record, records, pins, copies);
        for (i, line) in audits.iter().enumerate() {
            s.append(&format!("audit:{i}"), &paths.audit_log(), line);
        }
        s.raw("fi");
        let (out, secs) = self.script(&s)?;
        if !secs.get("record").is_some_and(Section::success) {
            let status = crate::ledger::status_word(record.status.0);
            return Err(Error::StageFailed(format!(
                "{}: release {n} is not recorded as {status}: its record could not be written ({}). What runs now: {}. The record stays in_progress until the next run marks it interrupted",
                self.label(),
                out.stderr_tail(3).trim(),
                crate::ledger::describe_running(&running_list(running)),
                n = record.number,
            )));
        }
        if secs
            .keys()
            .any(|k| k.starts_with("audit:") && !secs[k].success())
        {
            self.report.warn(&format!(
                "{}: audit log not written: {}",
                self.label(),
                out.stderr_tail(3)
            ));
        }
        let untagged: Vec<&String> = new_tags
            .iter()
            .filter(|(svc, _, _)| {
                !secs
                    .get(&format!("tag:{svc}"))
                    .is_some_and(Section::success)
            })
            .map(|(svc, _, _)| svc)
            .collect();
        if !untagged.is_empty() {
            for svc in &untagged {
                if let Some(st) = record.services.get_mut(*svc) {
                    st.release_tag = None;
                }
            }
            self.report.warn(&format!(
                "{}: could not tag the images of {:?}: {}",
                self.label(),
                untagged,
                out.stderr_tail(3)
            ));
            crate::ledger::store::write(self.ex, self.report, &self.env.dir, record)?;
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

    /// Adds retention to the finish script: the newest `keep_releases` records and every tag they
    /// (or the pins) name are kept; file copies go with their records (a copy whose record is
    /// gone, pruned by another command or never written, goes too).
    fn retention(
        &self,
        s: &mut Script,
        record: &ReleaseRecord,
        records: &[ReleaseRecord],
        pins: &BTreeMap<String, String>,
        copies: &BTreeSet<u64>,
    ) -> pu::Prune {
        let paths = self.paths();
        let mut all: Vec<ReleaseRecord> = records
            .iter()
            .filter(|r| r.number != record.number)
            .cloned()
            .collect();
        all.push(record.clone());
        let mut prune = pu::retention(&all, self.env.keep_releases);
        let pinned: BTreeSet<&String> = pins.values().collect();
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
        for n in copies.iter().filter(|n| !kept.contains(n)) {
            s.run(&format!("prune-files:{n}"), &de::rm_rf(&self.files_dir(*n)));
        }
        prune
    }

    /// Marks the releases a dead run left `in_progress` (this run holds the lock, so nobody is
    /// deploying them) as `interrupted`, saying what each service runs (`before`), with an audit
    /// line.
    fn mark_interrupted(
        &mut self,
        records: &mut [ReleaseRecord],
        before: &Containers,
        n: u64,
    ) -> Result<()> {
        if !records
            .iter()
            .any(|r| r.status.0 == ReleaseStatus::InProgress)
        {
            return Ok(());
        }
        let env = self.env;
        crate::ledger::store::mark_interrupted(
            self.ex,
            self.report,
            env,
            &self.req.owner,
            records,
            &running_list(before),
            &format!("release {n} ({})", self.req.owner.run_url),
        )
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

    /// The compose service a container name of a dry run belongs to.
    fn service_of(&self, name: &str, known: &Containers) -> Option<String> {
        if let Some((svc, _)) = known.iter().find(|(_, c)| c.name == name) {
            return Some(svc.clone());
        }
        // A container that does not exist yet: `<project>-<service>-<n>` (v2 names).
        let rest = name.strip_prefix(&format!("{}-", self.env.compose_project))?;
        let (svc, num) = rest.rsplit_once('-')?;
        num.parse::<u32>().ok().map(|_| svc.to_string())
    }

    /// Compose #12069 (2.26.0–2.29.2): `up --no-deps` stores a config hash that a later plain `up`
    /// disagrees with, for a service with `depends_on`. A plain `up SERVICES` stores the right
    /// one, and is safe when it would touch no other service: `--dry-run up` says so (0.1 s).
    fn plain_up_is_safe(
        &mut self,
        c: &Compose,
        selected: &[String],
        before: &Containers,
    ) -> Result<bool> {
        let out = self.capture(&c.dry_run_up(selected))?;
        if !out.success() {
            return Ok(false);
        }
        let text = format!(
            "{}\n{}",
            out.stdout_str(),
            String::from_utf8_lossy(&out.stderr)
        );
        let others: BTreeSet<String> = compose::parse_dry_run(&text)
            .into_iter()
            .filter(|a| a.touches())
            .filter_map(|a| self.service_of(&a.container, before))
            .filter(|s| !selected.contains(s))
            .collect();
        if others.is_empty() {
            self.report.info(&format!(
                "{}: compose #12069: a plain `up` of {:?} touches no other service, so `up` runs without --no-deps and stores the config hash a later plain `up` agrees with",
                self.label(),
                selected
            ));
            Ok(true)
        } else {
            self.report.warn(&format!(
                "{}: compose #12069: a plain `up` of {:?} would also touch {:?}, so `up --no-deps` is used; a later plain `docker compose up` may recreate {:?}",
                self.label(),
                selected,
                others,
                selected
            ));
            Ok(false)
        }
    }

    /// What runs after the deploy (every container of the project), and, when a background
    /// `--dry-run up` was started, its output (`Some(None)`: it had not finished, so it was
    /// stopped rather than waited for): one round trip.
    #[allow(clippy::type_complexity)]
    fn after(
        &mut self,
        project: &str,
        dry_run_file: Option<&str>,
    ) -> Result<(Containers, Option<Option<String>>)> {
        let mut s = Script::new();
        s.run("containers", &de::inspect_project(project));
        if let Some(f) = dry_run_file {
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
        let (out, secs) = self.script(&s)?;
        let containers = match secs.get("containers") {
            Some(c) if c.success() => {
                by_service(de::parse_inspect(&c.stdout).map_err(Error::StageFailed)?)
            }
            _ => {
                return Err(Error::StageFailed(format!(
                    "{}: cannot list the containers of {project}: {}",
                    self.label(),
                    out.stderr_tail(5)
                )));
            }
        };
        let dry_run = dry_run_file.map(|_| {
            secs.get("dry-run")
                .filter(|d| d.success())
                .map(|d| d.stdout.clone())
        });
        Ok((containers, dry_run))
    }

    /// After an `up --no-deps` on a #12069 version: `--dry-run up` output says whether a plain
    /// `up` would recreate a deployed service; warns only when it would.
    fn warn_plain_up_recreates(&self, text: &str, selected: &[String], after: &Containers) {
        let recreate: BTreeSet<String> = compose::parse_dry_run(text)
            .into_iter()
            .filter(|a| a.action == "Recreate")
            .filter_map(|a| self.service_of(&a.container, after))
            .filter(|s| selected.contains(s))
            .collect();
        for s in recreate {
            self.report.warn(&format!(
                "{}: {s}: `docker compose --dry-run up` says a plain `docker compose up` would recreate it (compose #12069); deploy it with deploy-action instead, or upgrade compose to ≥ 2.29.3",
                self.label()
            ));
        }
    }

    /// Health gate for `services`, probed together every [`PROBE_INTERVAL`]: container state and
    /// restarts (only these services' containers are inspected), the manifest's HTTP check run on
    /// the host, and the stability window counted from each container's start. `before`: the
    /// containers before the change (a container compose left alone skips the window; `None`
    /// means every container is new to the gate). `compose_failed`: `up` failed, so a service
    /// with no started container has failed. A signal stops the gate. Returns the failures.
    fn gate(
        &mut self,
        project: &str,
        services: &[String],
        before: Option<&Containers>,
        compose_failed: bool,
        client: &str,
    ) -> GateResult {
        struct Pending {
            stable: Stability,
            deadline: Duration,
            last: String,
        }
        let start = Instant::now();
        let mut pending: BTreeMap<String, Pending> = services
            .iter()
            .map(|s| {
                let window = self.window_of(s);
                let before_id = before.and_then(|b| b.get(s)).map(|c| c.id.clone());
                (
                    s.clone(),
                    Pending {
                        stable: Stability::new(window, STABLE_PASSES, before_id),
                        deadline: self.timeout_of(s) + window,
                        last: "no probe yet".to_string(),
                    },
                )
            })
            .collect();
        self.report.info(&format!(
            "{}: health gate: {} (stability window {}, timeout {})",
            self.label(),
            services.join(", "),
            services
                .iter()
                .map(|s| format!("{s} {:.1}s", self.window_of(s).as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            services
                .iter()
                .map(|s| format!("{s} {}s", self.timeout_of(s).as_secs()))
                .collect::<Vec<_>>()
                .join(", "),
        ));
        let mut result = GateResult::default();
        // Fallback clock (the host's `date` failed): when the gate first saw each container.
        let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
        // Services whose container was ready for an HTTP check at the last probe.
        let mut ready: BTreeSet<String> = BTreeSet::new();
        while !pending.is_empty() {
            if cancel::requested().is_some() {
                for (s, p) in std::mem::take(&mut pending) {
                    result.failed.insert(
                        s,
                        format!(
                            "{} while waiting for it to become healthy (last probe: {})",
                            cancel::reason(),
                            p.last
                        ),
                    );
                }
                result.cancelled = true;
                break;
            }
            let names: Vec<String> = pending.keys().cloned().collect();
            // One round trip: the containers, and the HTTP checks of the services whose container
            // was ready at the previous probe (a service that just became ready gets its first
            // check in a second round trip below).
            let mut script = Script::new();
            script.run("probe", &de::probe_services(project, &names));
            if client != "none" {
                for s in names.iter().filter(|s| ready.contains(*s)) {
                    if let Some((_, url)) = self.http_of(s) {
                        script.run(
                            &format!("http:{s}"),
                            &de::http_get(client, url, HTTP_TIMEOUT_SECS),
                        );
                    }
                }
            }
            let ran = self.script(&script);
            let (stderr, secs) = match &ran {
                Ok((o, secs)) => (o.stderr_tail(2), Some(secs)),
                Err(_) => (String::new(), None),
            };
            let seen = match (&ran, secs.and_then(|s| s.get("probe"))) {
                (Err(e), _) => Err(e.to_string()),
                (Ok(_), Some(p)) if p.success() => de::parse_probe(&p.stdout),
                (Ok(_), Some(p)) => Err(format!(
                    "the container probe failed (exit {}): {stderr}",
                    p.status
                )),
                (Ok(_), None) => Err(format!("the container probe did not run: {stderr}")),
            };
            let mut probes: BTreeMap<String, Probe> = BTreeMap::new();
            let mut http_due: Vec<HttpDue> = Vec::new();
            match seen {
                Err(e) => {
                    for s in &names {
                        probes.insert(s.clone(), Probe::Pending(e.clone(), None));
                    }
                }
                Ok((host_now, list)) => {
                    let by = by_service(list);
                    for s in &names {
                        let probe = match by.get(s) {
                            None if compose_failed => {
                                Probe::Failed(format!("compose up failed and {s} has no container"))
                            }
                            None => Probe::Pending("no container yet".into(), None),
                            Some(c) if compose_failed && c.status == "created" => {
                                Probe::Failed(format!(
                                    "compose up failed and container {} was never started",
                                    c.name
                                ))
                            }
                            Some(c) => {
                                result.last.insert(s.clone(), c.clone());
                                let up_for = match (host_now, clock::parse_unix_f64(&c.started_at))
                                {
                                    (Some(now), Some(at)) => {
                                        Duration::from_secs_f64((now - at).max(0.0))
                                    }
                                    _ => first_seen
                                        .entry(c.id.clone())
                                        .or_insert_with(Instant::now)
                                        .elapsed(),
                                };
                                match pu::container_probe(c, up_for) {
                                    Err(p) => p,
                                    Ok(seen) => match self.http_of(s) {
                                        Some((h, _)) => {
                                            let checked =
                                                secs.and_then(|x| x.get(&format!("http:{s}")));
                                            match checked {
                                                Some(sec) => {
                                                    http_verdict(client, h, sec, &stderr, seen)
                                                }
                                                None => {
                                                    http_due.push((s.clone(), seen, h.clone()));
                                                    continue;
                                                }
                                            }
                                        }
                                        None => Probe::Good(seen),
                                    },
                                }
                            }
                        };
                        probes.insert(s.clone(), probe);
                    }
                }
            }
            ready = probes
                .iter()
                .filter(|(_, p)| matches!(p, Probe::Good(_) | Probe::Pending(_, Some(_))))
                .map(|(s, _)| s.clone())
                .chain(http_due.iter().map(|(s, _, _)| s.clone()))
                .collect();
            if !http_due.is_empty() {
                probes.extend(self.http_checks(client, http_due));
            }
            // Every pending service that only waits for its window: when the first one ends.
            let mut nap: Option<Duration> = Some(MAX_NAP);
            for (s, probe) in probes {
                let Some(p) = pending.get_mut(&s) else {
                    continue;
                };
                let up_for = match &probe {
                    Probe::Good(seen) => Some(seen.up_for),
                    _ => None,
                };
                if let Probe::Pending(why, _) | Probe::Failed(why) = &probe {
                    p.last = why.clone();
                }
                match p.stable.observe(probe) {
                    Verdict::Healthy => {
                        self.report
                            .info(&format!("{}: {s} is healthy", self.label()));
                        pending.remove(&s);
                    }
                    Verdict::Unhealthy(why) => {
                        result.failed.insert(s.clone(), why);
                        pending.remove(&s);
                    }
                    Verdict::Wait if start.elapsed() >= p.deadline => {
                        let why =
                            format!("not healthy after {}s: {}", p.deadline.as_secs(), p.last);
                        result.failed.insert(s.clone(), why);
                        pending.remove(&s);
                    }
                    Verdict::Wait => {
                        nap = match (nap, up_for) {
                            (Some(n), Some(u)) => Some(n.min(p.stable.remaining(u))),
                            _ => None,
                        };
                    }
                }
            }
            if !pending.is_empty() {
                let d = nap.unwrap_or(PROBE_INTERVAL).max(PROBE_INTERVAL);
                cancel::sleep(d);
            }
        }
        result
    }

    /// The HTTP checks that are due, run on the host in one round trip.
    fn http_checks(&mut self, client: &str, due: Vec<HttpDue>) -> BTreeMap<String, Probe> {
        let mut out = BTreeMap::new();
        if client == "none" {
            for (s, _, _) in due {
                out.insert(
                    s,
                    Probe::Failed(
                        "neither curl nor wget is installed on the host for the health check"
                            .into(),
                    ),
                );
            }
            return out;
        }
        let mut script = Script::new();
        for (i, (_, _, h)) in due.iter().enumerate() {
            script.run(
                &format!("http:{i}"),
                &de::http_get(
                    client,
                    h.url.as_deref().unwrap_or_default(),
                    HTTP_TIMEOUT_SECS,
                ),
            );
        }
        let ran = self.script(&script);
        for (i, (s, seen, h)) in due.into_iter().enumerate() {
            let probe = match &ran {
                Err(e) => Probe::Pending(e.to_string(), Some(seen)),
                Ok((o, secs)) => match secs.get(&format!("http:{i}")) {
                    None => Probe::Pending(
                        format!(
                            "GET {}: no answer: {}",
                            h.url.as_deref().unwrap_or_default(),
                            o.stderr_tail(1)
                        ),
                        Some(seen),
                    ),
                    Some(sec) => http_verdict(client, &h, sec, &o.stderr_tail(1), seen),
                },
            };
            out.insert(s, probe);
        }
        out
    }

    /// Prints the failing container's last log lines and its health log.
    fn show_failure(&mut self, service: &str, seen: &Containers) {
        let Some(c) = seen.get(service).cloned() else {
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

    /// The release whose copy of the compose and env files a rollback restores: the newest good
    /// release before `n` that has one.
    fn restore_from(
        &self,
        records: &[ReleaseRecord],
        copies: &BTreeSet<u64>,
        n: u64,
    ) -> Option<u64> {
        records
            .iter()
            .filter(|r| r.number < n && crate::ledger::is_good(r) && copies.contains(&r.number))
            .map(|r| r.number)
            .max()
    }

    /// Puts `services` back on their pre-release images (and, when the host has a copy, the
    /// previous release's compose and env files). `fast` (a signal): containers get
    /// [`CANCEL_STOP_TIMEOUT`] to stop and no health gate runs. Returns whether every service is
    /// back and healthy, and the services brought back.
    #[allow(clippy::too_many_arguments)]
    fn rollback(
        &mut self,
        c: &Compose,
        record: &ReleaseRecord,
        services: &[String],
        pins: &BTreeMap<String, String>,
        restore: Option<u64>,
        fast: bool,
        audits: &mut Vec<String>,
    ) -> Result<(bool, Vec<String>)> {
        let mut pins = pins.clone();
        let mut back = Vec::new();
        for s in services {
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
        let fresh: Vec<String> = services
            .iter()
            .filter(|s| !back.contains(s))
            .cloned()
            .collect();
        let mut s = Script::new();
        if !fresh.is_empty() {
            s.run("stop", &c.stop(&fresh));
        }
        if !back.is_empty() {
            if let Some(p) = restore {
                s.shell(
                    "restore",
                    &format!(
                        "cp -R {}/. {}/",
                        shell_quote(&self.files_dir(p)),
                        shell_quote(self.env.dir.trim_end_matches('/'))
                    ),
                );
            }
            s.write("pins", &self.override_path(), &self.pins_text(&pins), 0o644);
        }
        let (out, secs) = self.script(&s)?;
        if back.is_empty() {
            return Ok((false, back));
        }
        if !secs.get("pins").is_some_and(Section::success) {
            return Err(Error::StageFailed(format!(
                "{}: cannot write the rollback pins: {}",
                self.label(),
                out.stderr_tail(5)
            )));
        }
        match restore {
            Some(p) if secs.get("restore").is_some_and(Section::success) => {
                self.report.warn(&format!(
                    "{}: rolling back {} to the previous release's images, with release {p}'s compose and env files",
                    self.label(),
                    back.join(", ")
                ));
            }
            Some(p) => self.report.warn(&format!(
                "{}: could not restore release {p}'s compose files ({}); rolling back {} to the previous images only",
                self.label(),
                out.stderr_tail(2),
                back.join(", ")
            )),
            None => self.report.warn(&format!(
                "{}: rolling back {} to the previous release's images (the host keeps no copy of the previous compose files, so they stay as uploaded)",
                self.label(),
                back.join(", ")
            )),
        }
        let c = &self.compose(c.flavor.clone(), true);
        let opts = UpOptions {
            stop_timeout: fast.then_some(CANCEL_STOP_TIMEOUT),
            ..self.up_options()
        };
        let status = self.stream(&c.up(&back, &opts))?;
        let mut ok = status == 0;
        if fast {
            self.report.warn(&format!(
                "{}: {} started again without a health check ({})",
                self.label(),
                back.join(", "),
                cancel::reason()
            ));
        } else {
            let client = self.http_client();
            let gate = self.gate(&c.project, &back, None, status != 0, &client);
            for (s, why) in gate.failed {
                self.report.error(
                    &format!(
                        "{}: {s}: rollback is not healthy either: {why}",
                        self.label()
                    ),
                    None,
                );
                ok = false;
            }
            if ok {
                self.report.warn(&format!(
                    "{}: rolled back {}: the previous version is serving",
                    self.label(),
                    back.join(", ")
                ));
            }
        }
        audits.push(self.audit_entry(
            "up.rollback",
            Some(record.number),
            &back,
            if fast {
                "cancelled"
            } else if ok {
                "ok"
            } else {
                "failed"
            },
            fast.then(cancel::reason),
        ));
        Ok((ok && fresh.is_empty(), back))
    }

    /// The host's HTTP client (for the rollback gate, after the preflight's answer was used).
    fn http_client(&mut self) -> String {
        self.ex
            .capture(&de::http_client_probe())
            .ok()
            .map(|o| o.stdout_str().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    }
}

/// Where the background `--dry-run up` of release `n` writes its answer (compose #12069).
/// The files `up` uploads from the repository at `root` to each host: the environment's compose
/// files and the env files they name that exist in the repository, as (local path relative to
/// `root`, remote path under `dir`).
pub fn repo_uploads(env: &Environment, root: &std::path::Path) -> Vec<(String, String)> {
    let dir = env.dir.trim_end_matches('/');
    let mut out = Vec::new();
    for f in &env.compose_files {
        out.push((f.clone(), format!("{dir}/{f}")));
        let local = root.join(f);
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
                if root.join(&rel).is_file() && !out.iter().any(|(l, _)| *l == rel) {
                    out.push((rel.clone(), format!("{dir}/{rel}")));
                }
            }
        }
    }
    out
}

fn dry_run_file_of(state_root: &str, n: u64) -> String {
    format!("{state_root}/dry-run-{n}.txt")
}

/// What each service runs, for messages and records.
fn running_list(containers: &Containers) -> Vec<crate::ledger::Running> {
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

/// The probe an HTTP check's answer gives.
fn http_verdict(client: &str, h: &Health, sec: &Section, stderr: &str, seen: Seen) -> Probe {
    let url = h.url.as_deref().unwrap_or_default();
    let (status, body) = if client == "curl" {
        match de::parse_curl(&sec.stdout) {
            Some(sb) => sb,
            None => {
                return Probe::Pending(format!("GET {url}: {stderr}"), Some(seen));
            }
        }
    } else if sec.success() {
        (200, sec.stdout.clone())
    } else {
        return Probe::Pending(format!("GET {url}: {stderr}"), Some(seen));
    };
    if status != h.expect_status {
        return Probe::Pending(
            format!("GET {url}: status {status}, expected {}", h.expect_status),
            Some(seen),
        );
    }
    if let Some(want) = &h.contains
        && !body.contains(want.as_str())
    {
        return Probe::Pending(format!("GET {url}: body lacks {want:?}"), Some(seen));
    }
    Probe::Good(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::local::LocalExecutor;

    #[test]
    fn a_script_runs_sections_writes_files_and_reports_each_status() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/record.json");
        let log = dir.path().join("audit.log");
        let tricky = "{\"a\":\"it's $HOME `x`\"}\nDEPLOY_ACTION_EOF_0\nlast line";
        let mut s = Script::new();
        s.run("echo", &Cmd::new("echo").arg("hello world"));
        s.run(
            "fails",
            &Cmd::new("sh").arg("-c").arg("echo partial; exit 3"),
        );
        s.run("reads-null", &Cmd::new("cat"));
        s.write("write", &file.to_string_lossy(), tricky, 0o600);
        s.append("audit", &log.to_string_lossy(), "{\"x\":1}");
        s.append("audit2", &log.to_string_lossy(), "{\"x\":2}");
        s.raw("if [ \"$da_rc\" -eq 0 ]; then");
        s.shell("cond", "echo ran");
        s.raw("fi");
        let out = LocalExecutor.capture(&s.cmd()).unwrap();
        let secs = parse_sections(&out.stdout_str());
        assert_eq!(secs["echo"].stdout, "hello world\n");
        assert!(secs["echo"].success());
        assert_eq!(
            (secs["fails"].status, secs["fails"].stdout.as_str()),
            (3, "partial\n")
        );
        assert_eq!(
            secs["reads-null"].stdout, "",
            "a section never reads the script"
        );
        assert!(secs["write"].success());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{tricky}\n")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"x\":1}\n{\"x\":2}\n"
        );
        assert_eq!(secs["cond"].stdout, "ran\n");
    }

    #[test]
    fn a_durable_write_replaces_the_file_whole_and_fails_without_leaving_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("releases/7.json");
        let mut s = Script::new();
        s.write_durable("one", &file.to_string_lossy(), "{\"a\":1}", 0o644);
        s.write_durable("two", &file.to_string_lossy(), "{\"a\":2}", 0o640);
        // A parent that is a file: mkdir fails, the section says so.
        let blocked = dir.path().join("releases/7.json/x.json");
        s.write_durable("blocked", &blocked.to_string_lossy(), "{}", 0o644);
        let out = LocalExecutor.capture(&s.cmd()).unwrap();
        let secs = parse_sections(&out.stdout_str());
        assert!(secs["one"].success() && secs["two"].success());
        assert!(!secs["blocked"].success());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"a\":2}\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<String> = std::fs::read_dir(dir.path().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["7.json"], "no temporary file is left behind");
    }

    #[test]
    fn probe_and_project_commands_read_the_host_clock_and_containers() {
        let (now, list) = de::parse_probe("1795440269.5\n[]\n").unwrap();
        assert_eq!((now, list.len()), (Some(1_795_440_269.5), 0));
        let (now, _) = de::parse_probe("1795440269.N\n[]").unwrap();
        assert_eq!(now, Some(1_795_440_269.0), "a `date` without %N");
        assert!(de::parse_probe("x\nnot json").is_err());
    }
}
