//! The runners of the deploy stages. Compose services (`up`, and `promote` and `rollback`, which
//! deploy compose services through the same engine) run as a plan:
//!
//! ```text
//! fanout.rs          connect and inspect every host, the environment lock on all, the hosts in order
//!   compose/inspect  what a host is now (read-only, real in a dry run too)   → plan::up::HostState
//!   plan::up         the host's whole run as steps (pure)                     → Vec<Step>
//!   engine::runner   walks the steps: guards, trace, report
//!   compose/*        the performer: prepare (ship, files, pull), start (interrupted, record,
//!                    compose up), gate, rollback, finish
//! ```
//!
//! `--dry-run` is the same walk with a recording executor that reads through to the host
//! ([`crate::exec::dry_run::ReadThrough`]): the steps it prints are the steps a real run takes.
//!
//! Beside them, the other kinds of units and the parts `up` shares: `migrate.rs` (SQL migrations),
//! `pages.rs` (sites to Cloudflare Pages, and their redeploy and rollback for promote and
//! rollback), `summary.rs` (the host × service matrix of a multi-host run), `ship.rs`,
//! `secrets.rs`.
//!
//! Stays out of: choosing services and hosts (`commands/`), printing (everything goes through
//! [`Report`](crate::report::Report)), building images (`build`).

pub mod compose;
pub mod fanout;
pub mod migrate;
pub mod pages;
pub mod release;
pub mod secrets;
pub mod ship;
pub mod summary;

use crate::cmd::compose as cc;
use crate::manifest::{Environment, Host};
use crate::state::{LockOwner, ReleaseRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::plan::up::{DEFAULT_HEALTH_TIMEOUT, DEFAULT_STABLE_WINDOW, files_dir, upload_mode};

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
    /// Images built on this machine (shipped to the hosts that are not `local`).
    pub built: Vec<String>,
    pub force: bool,
    pub lock_wait: Option<Duration>,
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
    /// Promote: compose service → the exact image id to ship from `ship_from` (the source
    /// environment's host) before the deploy.
    pub ship_ids: BTreeMap<String, String>,
    pub ship_from: Option<Host>,
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
            built: Vec::new(),
            force: false,
            lock_wait: None,
            yes: true,
            owner,
            repo_root,
            compose_pref: crate::env_vars::get(crate::env_vars::DEPLOY_COMPOSE),
            interactive: false,
            notes,
            files_from: None,
            secrets: secrets::Values::new(),
            ship_ids: BTreeMap::new(),
            ship_from: None,
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

    /// What a dry run says of the host: no release, every service `dry-run` with the image it
    /// would run (`planned`, by compose service).
    pub fn as_dry_run(mut self, planned: &BTreeMap<String, String>) -> HostResult {
        self.release = None;
        self.record = None;
        self.ok = true;
        self.rolled_back = false;
        for s in &mut self.services {
            s.new_image = planned.get(&s.service).cloned().unwrap_or_default();
            s.health = "-".into();
            s.duration_secs = 0.0;
            s.result = "dry-run".into();
            s.rollback = String::new();
            s.rollback_exact = String::new();
        }
        self
    }
}

/// The files `up` uploads from the repository at `root` to each host: the environment's compose
/// files and the env files they name that exist in the repository, as (local path relative to
/// `root`, remote path under `dir`).
pub fn repo_uploads(env: &Environment, root: &std::path::Path) -> Vec<(String, String)> {
    let dir = env.dir.trim_end_matches('/');
    let mut out = Vec::new();
    for f in &env.compose_files {
        out.push((f.clone(), format!("{dir}/{f}")));
        for rel in env_files_of(root, f) {
            if root.join(&rel).is_file() && !out.iter().any(|(l, _)| *l == rel) {
                out.push((rel.clone(), format!("{dir}/{rel}")));
            }
        }
    }
    out
}

/// The env files (`env_file:`) that the compose file `compose_file` of the repository at `root`
/// names, relative to `root`, in its order. Absolute paths and paths with `..` are the host's own,
/// not the repository's: left out. An unreadable or unparsable file names none.
pub fn env_files_of(root: &std::path::Path, compose_file: &str) -> Vec<String> {
    let Some(value) = std::fs::read_to_string(root.join(compose_file))
        .ok()
        .and_then(|text| cc::yaml_value(&text).ok())
    else {
        return Vec::new();
    };
    let base = std::path::Path::new(compose_file)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    let Some(services) = value.get("services").and_then(|s| s.as_object()) else {
        return Vec::new();
    };
    services
        .values()
        .flat_map(|s| cc::env_file_list(s.get("env_file")))
        .filter(|e| !e.starts_with('/') && !e.contains(".."))
        .map(|e| base.join(&e).to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::cmd::Cmd;
    use crate::cmd::docker_engine::{self as de, Script, parse_sections};
    use crate::exec::Executor;
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
