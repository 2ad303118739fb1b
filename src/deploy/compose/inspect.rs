//! What a host is, before the run changes it: everything here reads (through
//! [`Executor::read`], so a dry run reads the real host too) or works in a scratch directory it
//! removes. Two parts:
//!
//! - [`check`], for every host before the lock: compose flavour and version, the HTTP client,
//!   every `--image` (present, or pullable), the containers (for `--image`'s confirmation), and
//!   `docker compose config` of the files this run installs, resolved on a staged copy in a
//!   `mktemp -d` directory with an override holding only this run's pins. A selected service
//!   compose does not know stops the run here, before anything changed (exit 2).
//! - [`read`], per host under the lock: that this run holds it, the release records, the pins,
//!   the kept file copies, the containers, and what the host has of the images the pull step
//!   considers.
//!
//! Together they are the [`HostState`] the planner plans from. One round trip each.

use super::{Containers, HostCtx, by_service, read_script};
use crate::cancel;
use crate::cmd::compose::{self as cc, Compose, Flavor, ServiceConfig};
use crate::cmd::docker_engine::{self as de, ImageInfo, Script, Section};
use crate::cmd::shell_quote;
use crate::error::{Error, GateFailure, RecordFailure, Result, STDERR_TAIL_LINES};
use crate::exec::{Executor, Output};
use crate::ledger::lock;
use crate::plan::up::{self as pu, HostState, OVERRIDE_FILE};
use std::collections::{BTreeMap, BTreeSet};

/// Lines of stderr kept when `config` refuses the compose files: compose lists every problem.
const CONFIG_TAIL_LINES: usize = 20;

/// What [`check`] learnt.
#[derive(Clone, Debug)]
pub struct Checked {
    pub flavor: Flavor,
    pub http_client: String,
    pub config: BTreeMap<String, ServiceConfig>,
    /// The containers now (for `--image`'s confirmation; [`read`] reads them again under the
    /// lock).
    pub containers: Containers,
}

/// The read-only checks of a host before any host changes (see the module header): one round
/// trip, the preflight and the staged `config` (for both compose flavors when the flavor is not
/// known yet: the script runs the one the probes found).
pub fn check(ex: &mut dyn Executor, hc: HostCtx) -> Result<Checked> {
    let pref = hc.req.compose_pref.clone();
    let (try_v2, try_v1) = (pref.as_deref() != Some("v1"), pref.as_deref() != Some("v2"));
    let images = user_images(hc);
    let mut s = Script::new();
    preflight_sections(&mut s, hc, try_v2, try_v1, &images);
    stage_sections(&mut s, hc)?;
    config_sections(&mut s, hc, try_v2, try_v1);
    s.raw("cd / && [ -z \"$da_scratch\" ] || rm -rf \"$da_scratch\"");
    let ran = read_script(ex, &s)?;
    let flavor = flavor_of(ex, hc, &ran, try_v1)?;
    let http_client = ran
        .secs
        .get("http-client")
        .map(|s| s.stdout.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    let missing: Vec<&(String, String)> = images
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !ran.secs
                .get(&format!("image:{i}"))
                .is_some_and(Section::success)
        })
        .map(|(_, x)| x)
        .collect();
    pull_missing(ex, hc, &missing)?;
    let containers = ran
        .secs
        .get("containers")
        .filter(|c| c.success())
        .and_then(|c| de::parse_inspect(&c.stdout).ok())
        .map(by_service)
        .unwrap_or_default();
    let config = match config_of(hc, &flavor, &ran)? {
        Some(c) => c,
        // The probes disagreed with the flavor the script guessed: resolve it on its own.
        None => {
            let mut s = Script::new();
            stage_sections(&mut s, hc)?;
            s.run("config", &staged_compose(hc, &flavor).config());
            s.raw("cd / && [ -z \"$da_scratch\" ] || rm -rf \"$da_scratch\"");
            let ran = read_script(ex, &s)?;
            config_of_section(hc, &flavor, &ran, "config")?
        }
    };
    if let Some(r) = pu::host::missing_services(&config, &hc.selected(), &hc.env.compose_files) {
        return Err(Error::usage_help(r.message, r.help));
    }
    Ok(Checked {
        flavor,
        http_client,
        config,
        containers,
    })
}

/// The preflight: compose v2 (else v1) version, the HTTP client, the `--image` references, the
/// containers.
fn preflight_sections(
    s: &mut Script,
    hc: HostCtx,
    try_v2: bool,
    try_v1: bool,
    images: &[(String, String)],
) {
    s.raw("da_v2=1");
    if try_v2 {
        s.run("compose-v2", &cc::version_probe_v2());
        s.raw("da_v2=$da_rc");
    }
    if try_v1 {
        if try_v2 {
            s.raw("if [ \"$da_v2\" -ne 0 ]; then");
        }
        s.run("compose-v1", &cc::version_probe_v1());
        if try_v2 {
            s.raw("fi");
        }
    }
    s.run("http-client", &de::http_client_probe());
    for (i, (_, image)) in images.iter().enumerate() {
        s.run(&format!("image:{i}"), &de::image_id(image));
    }
    s.run("containers", &de::inspect_project(&hc.env.compose_project));
}

/// `config` of the staged files, in the scratch directory: for the flavor the probe found.
fn config_sections(s: &mut Script, hc: HostCtx, try_v2: bool, try_v1: bool) {
    let v2 = Flavor::V2(semver::Version::new(2, 0, 0));
    let v1 = Flavor::V1(semver::Version::new(1, 0, 0));
    s.raw("if [ -n \"$da_staged\" ]; then");
    match (try_v2, try_v1) {
        (true, true) => {
            s.raw("if [ \"$da_v2\" -eq 0 ]; then");
            s.run("config-v2", &staged_compose(hc, &v2).config());
            s.raw("else");
            s.run("config-v1", &staged_compose(hc, &v1).config());
            s.raw("fi");
        }
        (true, false) => {
            s.run("config-v2", &staged_compose(hc, &v2).config());
        }
        _ => {
            s.run("config-v1", &staged_compose(hc, &v1).config());
        }
    }
    s.raw("fi");
}

/// The resolved configuration from the script's `config` section for `flavor`; `None` when the
/// script ran the other flavor's.
fn config_of(
    hc: HostCtx,
    flavor: &Flavor,
    ran: &super::Ran,
) -> Result<Option<BTreeMap<String, ServiceConfig>>> {
    let name = if flavor.is_v1() {
        "config-v1"
    } else {
        "config-v2"
    };
    let other = if flavor.is_v1() {
        "config-v2"
    } else {
        "config-v1"
    };
    if !ran.secs.contains_key(name) && ran.secs.contains_key(other) {
        return Ok(None);
    }
    config_of_section(hc, flavor, ran, name).map(Some)
}

/// The configuration in section `name`, or why there is none (staging or `config` failed).
fn config_of_section(
    hc: HostCtx,
    flavor: &Flavor,
    ran: &super::Ran,
    name: &str,
) -> Result<BTreeMap<String, ServiceConfig>> {
    let label = hc.label();
    for (section, sec) in &ran.secs {
        if section.starts_with("stage") && !sec.success() {
            let what = "staging the files for `config`";
            return Err(ran.failure(&label, what, section, STDERR_TAIL_LINES).into());
        }
    }
    let what = "checking the compose configuration";
    match ran.secs.get(name) {
        Some(cfg) if cfg.success() => parse_config(flavor, &cfg.stdout)
            .map_err(|why| ran.unreadable(&label, what, name, &why)),
        _ => Err(ran
            .failure(&label, what, name, CONFIG_TAIL_LINES)
            .help("the compose files of this run are invalid as compose on this host reads them")
            .into()),
    }
}

/// The `--image` references: (compose service, reference).
fn user_images(hc: HostCtx) -> Vec<(String, String)> {
    hc.req
        .images
        .iter()
        .filter(|(svc, _)| hc.req.user_images.contains(*svc))
        .map(|(svc, i)| (svc.clone(), i.clone()))
        .collect()
}

/// The compose flavor the probes found, with the warnings it deserves.
fn flavor_of(ex: &mut dyn Executor, hc: HostCtx, ran: &super::Ran, try_v1: bool) -> Result<Flavor> {
    let secs = &ran.secs;
    let version = |name: &str| {
        secs.get(name)
            .filter(|s| s.success())
            .and_then(|s| cc::parse_version(&s.stdout))
    };
    let mut flavor = match version("compose-v2") {
        Some(v) if v.major >= 2 => Some(Flavor::V2(v)),
        _ => None,
    };
    if flavor.is_none() && try_v1 {
        let v1 = match version("compose-v1") {
            Some(v) => Some(v),
            // v2 answered with something that is not a v2 version: ask v1 on its own.
            None if !secs.contains_key("compose-v1") => ex
                .read(&cc::version_probe_v1())
                .ok()
                .filter(Output::success)
                .and_then(|o| cc::parse_version(&o.stdout_str())),
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
    let label = hc.label();
    let Some(flavor) = flavor else {
        let probe = if secs.contains_key("compose-v2") {
            "compose-v2"
        } else {
            "compose-v1"
        };
        let what =
            "the compose probe (neither `docker compose` nor `docker-compose` works on this host)";
        return Err(ran.failure(&label, what, probe, STDERR_TAIL_LINES).into());
    };
    hc.report.info(&format!("{label}: {}", flavor.label()));
    if flavor.has_no_deps_hash_bug() {
        hc.report.warn(&format!(
            "{label}: {} has compose bug #12069 (2.26.0–2.29.2): after `up --no-deps`, a later plain `docker compose up` may recreate a service with depends_on needlessly; deploy-action asks `docker compose --dry-run up` to avoid it, or to tell when it cannot. Upgrade to ≥ 2.29.3.",
            flavor.label()
        ));
    }
    if flavor.is_v1() {
        hc.report.warn(&format!(
            "{label}: docker-compose {} (v1) is unmaintained since 2023; `--wait` is emulated by polling `docker inspect`",
            flavor.version()
        ));
    }
    Ok(flavor)
}

/// Pulls the `--image` references the host lacks; one that cannot be pulled is exit 2 before any
/// host changes. A dry run says it would pull them.
fn pull_missing(ex: &mut dyn Executor, hc: HostCtx, missing: &[&(String, String)]) -> Result<()> {
    let label = hc.label();
    for (svc, image) in missing {
        if ex.records() {
            hc.report.info(&format!(
                "{label}: {image} is not on the host; `up` would pull it"
            ));
            continue;
        }
        let pulled = ex.capture(&de::pull(image))?;
        if !pulled.success() {
            return Err(Error::usage_help(
                format!(
                    "{label}: image `{image}` for `{svc}` is not on the host and cannot be pulled"
                ),
                format!("docker pull said: {}", pulled.stderr_tail(3).trim()),
            ));
        }
    }
    Ok(())
}

/// The files this run installs, staged in a scratch directory (`mktemp -d`; the caller's script
/// removes it): the repository's compose and env files (or the release copy a rollback
/// restores), the live directory's `.env` and the env files compose names that the repository
/// lacks, and an override with this run's pins only. `$da_staged` says the directory is there.
fn stage_sections(s: &mut Script, hc: HostCtx) -> Result<()> {
    let live = hc.env.dir.trim_end_matches('/');
    let q = |p: &str| shell_quote(p).into_owned();
    s.raw(
        "da_home=$(pwd); da_staged=; da_scratch=$(mktemp -d) && cd \"$da_scratch\" && da_staged=1",
    );
    s.raw("if [ -n \"$da_staged\" ]; then");
    match hc.req.files_from {
        Some(n) => {
            let from = from_home(&pu::files_dir(&hc.env.dir, n));
            s.shell("stage:restore", &format!("cp -R {from}/. ."));
        }
        None => stage_uploads(s, hc)?,
    }
    for rel in std::iter::once(".env".to_string()).chain(unstaged_env_files(hc)) {
        let (from, to) = (from_home(&format!("{live}/{rel}")), q(&rel));
        s.shell(
            &format!("stage:live:{rel}"),
            &format!("[ ! -f {from} ] || [ -e {to} ] || {{ mkdir -p \"$(dirname {to})\" && cp {from} {to}; }}"),
        );
    }
    let pins = staged_pins(hc);
    if !pins.is_empty() {
        s.write(
            "stage:pins",
            OVERRIDE_FILE,
            &hc.pins_text(&pins, false),
            0o644,
        );
    }
    s.raw("fi");
    Ok(())
}

/// A host path for the staging script, which works in its scratch directory: an absolute path
/// quoted, a relative one (an environment `dir` relative to where commands start: the repository
/// for `local`, the login directory over SSH) resolved against `$da_home`, where the script began.
fn from_home(path: &str) -> String {
    let quoted = shell_quote(path).into_owned();
    if path.starts_with('/') {
        quoted
    } else {
        format!("\"$da_home\"/{quoted}")
    }
}

/// This run's pins of the selected services (the override `config` resolves with).
fn staged_pins(hc: HostCtx) -> BTreeMap<String, String> {
    let selected = hc.selected();
    hc.req
        .images
        .iter()
        .filter(|(s, _)| selected.contains(s))
        .map(|(s, i)| (s.clone(), i.clone()))
        .collect()
}

/// The compose invocation in the scratch directory (relative files, the override when it pins).
fn staged_compose(hc: HostCtx, flavor: &Flavor) -> Compose {
    let mut files = hc.env.compose_files.clone();
    if !staged_pins(hc).is_empty() {
        files.push(OVERRIDE_FILE.to_string());
    }
    Compose {
        flavor: flavor.clone(),
        project: hc.env.compose_project.clone(),
        files,
        dir: ".".into(),
    }
}

/// Writes the repository's compose and env files into the scratch directory (relative paths).
fn stage_uploads(s: &mut Script, hc: HostCtx) -> Result<()> {
    for (i, (local, _)) in super::super::repo_uploads(hc.env, &hc.req.repo_root)
        .iter()
        .enumerate()
    {
        let data = std::fs::read(hc.req.repo_root.join(local))
            .map_err(|e| Error::usage(format!("cannot read {local} from the repository: {e}")))?;
        let text = String::from_utf8_lossy(&data).replace('\0', "");
        let mode = pu::upload_mode(&hc.env.compose_files, local);
        s.write(&format!("stage:{i}"), local, &text, mode);
    }
    Ok(())
}

/// The relative env files the compose files name that the repository does not have (the host's
/// own, copied into the scratch directory when it has them).
fn unstaged_env_files(hc: HostCtx) -> Vec<String> {
    let root = &hc.req.repo_root;
    let uploaded: BTreeSet<String> = super::super::repo_uploads(hc.env, root)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let mut out: Vec<String> = hc
        .env
        .compose_files
        .iter()
        .flat_map(|f| super::super::env_files_of(root, f))
        .filter(|rel| !uploaded.contains(rel))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Parses `config` output as the host resolved it; why it cannot be read.
fn parse_config(
    flavor: &Flavor,
    text: &str,
) -> std::result::Result<BTreeMap<String, ServiceConfig>, String> {
    let value: serde_json::Value = if flavor.has_config_json() {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        cc::yaml_value(text).map_err(|e| e.to_string())?
    };
    Ok(cc::parse_config(&value))
}

/// Shows current → new for the `--image` services on every host and asks once, unless `--yes`
/// (a dry run only shows). Before the lock: a refusal changes nothing.
pub fn confirm_images(hc: HostCtx, hosts: &[(String, &Containers)], dry_run: bool) -> Result<()> {
    let req = hc.req;
    if req.user_images.is_empty() {
        return Ok(());
    }
    for (label, before) in hosts {
        for s in &req.user_images {
            let cur = before
                .get(s)
                .map(|c| c.image.as_str())
                .unwrap_or("(not running)");
            hc.report.info(&format!(
                "{label}: {s}: {cur} → {}",
                req.images.get(s).map(String::as_str).unwrap_or("?")
            ));
        }
    }
    if req.yes || dry_run {
        return Ok(());
    }
    if !req.interactive {
        return Err(Error::usage_help(
            "--image changes what runs on the host and needs a confirmation",
            "pass --yes to confirm without a terminal",
        ));
    }
    hc.report.info("Deploy these images? [y/N]");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::usage("cancelled: nothing was changed"))
    }
}

/// The start read under the lock (see the module header). `held`: the run holds the environment
/// lock, and this host must say so (its token in the owner file), else exit 4 (taken over) or 1;
/// without (a dry run, `plan`), a holder is only reported.
pub fn read(ex: &mut dyn Executor, hc: HostCtx, checked: Checked, held: bool) -> Result<HostState> {
    let label = hc.label();
    if held && cancel::requested().is_some() {
        return Err(Error::Cancelled {
            host: Some(label),
            reason: format!("{} before this host changed", cancel::reason()),
            consequence: "nothing was changed here".into(),
        });
    }
    let images = pull_candidates(hc, &checked.config);
    let ran = read_script(ex, &start_script(hc, &images))?;
    let (out, secs) = (&ran.out, &ran.secs);
    let state = secs
        .get("lock")
        .map(|s| s.stdout.trim().to_string())
        .unwrap_or_default();
    let holder = secs
        .get("holder")
        .map(|h| h.stdout.trim().to_string())
        .filter(|h| !h.is_empty());
    if held && state != "ours" {
        let env = &hc.req.env;
        return Err(match (state.as_str(), holder) {
            ("other", Some(h)) => Error::LockHeld(format!(
                "{label}: the {env} lock this run took was taken over: it is {}; nothing was changed here",
                lock::describe(&lock::parse_owner(h.as_bytes()))
            )),
            ("free", _) => GateFailure::new(format!(
                "this run does not hold the {env} lock here (it was released while the run went on); nothing was changed here"
            ))
            .host(label)
            .into(),
            _ => RecordFailure::new(label, format!("check the {env} lock"), hc.paths().lock_dir())
                .stderr(out.stderr_tail(STDERR_TAIL_LINES))
                .into(),
        });
    }
    if !held
        && state != "free"
        && let Some(Ok(Some(owner))) = holder.map(|h| crate::ledger::parse_lock(&h))
    {
        hc.report.warn(&format!(
            "{label}: the {} lock is {}; a real run would exit 4",
            hc.req.env,
            lock::describe(&owner)
        ));
    }
    state_of(hc, checked, &ran, &images)
}

/// The images of the selected services as compose resolves them: what the pull step considers.
fn pull_candidates(hc: HostCtx, config: &BTreeMap<String, ServiceConfig>) -> Vec<String> {
    let mut images: Vec<String> = hc
        .selected()
        .iter()
        .filter_map(|s| config.get(s)?.image.clone())
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The lock state (`ours`, `other`, `free`), the holder, the records, pins, copies, containers,
/// and the images.
fn start_script(hc: HostCtx, images: &[String]) -> Script {
    let paths = hc.paths();
    let q = |s: &str| shell_quote(s).into_owned();
    let mut s = Script::new();
    s.raw(&format!(
        "if {}; then da_lock=ours; elif [ -d {} ]; then da_lock=other; else da_lock=free; fi",
        lock::owns_test(&paths, &hc.req.owner.token),
        q(&paths.lock_dir())
    ));
    s.shell("lock", "echo \"$da_lock\"");
    s.run("holder", &crate::ledger::lock_cmd(&paths));
    s.run("records", &crate::ledger::list_cmd(&paths));
    s.shell(
        "pins",
        &format!("cat {} 2>/dev/null; true", q(&hc.override_path())),
    );
    s.shell(
        "copies",
        &format!(
            "ls {} 2>/dev/null; true",
            q(&format!("{}/files", paths.root))
        ),
    );
    s.run("containers", &de::inspect_project(&hc.env.compose_project));
    for (i, image) in images.iter().enumerate() {
        s.run(
            &format!("have:{i}"),
            &de::image_infos(std::slice::from_ref(image)),
        );
    }
    s
}

/// The host's state from the start read's sections.
fn state_of(
    hc: HostCtx,
    checked: Checked,
    ran: &super::Ran,
    images: &[String],
) -> Result<HostState> {
    let secs = &ran.secs;
    let label = hc.label();
    let failed = |name: &str, what: &str| {
        Error::from(ran.failure(
            &label,
            format!("reading the {what}"),
            name,
            STDERR_TAIL_LINES,
        ))
    };
    let records = secs
        .get("records")
        .filter(|s| s.success())
        .ok_or_else(|| failed("records", "release records"))?;
    let ledger = crate::ledger::parse_listing(&records.stdout);
    for p in &ledger.problems {
        hc.report.warn(&format!(
            "{label}: {}: {} (ignored; its number is not reused)",
            p.file, p.message
        ));
    }
    let containers = secs
        .get("containers")
        .filter(|s| s.success())
        .ok_or_else(|| failed("containers", "containers"))?;
    let list = de::parse_inspect(&containers.stdout)
        .map_err(|why| ran.unreadable(&label, "reading the containers", "containers", &why))?;
    let have: BTreeMap<String, Option<ImageInfo>> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let info = secs
                .get(&format!("have:{i}"))
                .filter(|sec| sec.success())
                .and_then(|sec| de::parse_image_infos(&sec.stdout).into_iter().next());
            (image.clone(), info)
        })
        .collect();
    Ok(HostState {
        flavor: checked.flavor,
        http_client: checked.http_client,
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
        config: Some(checked.config),
        images: have,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::UpRequest;
    use crate::manifest::Host;
    use crate::report::Report;
    use crate::state::LockOwner;

    fn manifest() -> crate::manifest::Manifest {
        crate::manifest::parse(crate::diag::Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [local]\n    dir: /srv/shop\n    compose_files: [compose.yml]\nservices:\n  web: {}\n",
        ))
        .unwrap()
    }

    fn section(stdout: &str) -> Section {
        Section {
            status: 0,
            stdout: stdout.into(),
        }
    }

    #[test]
    fn staging_paths_relative_to_where_the_script_began_are_resolved_against_it() {
        assert_eq!(from_home("/srv/shop/.env"), "/srv/shop/.env");
        assert_eq!(
            from_home(".deploy-action/local/.deploy-action/files/1"),
            "\"$da_home\"/.deploy-action/local/.deploy-action/files/1"
        );
        assert_eq!(from_home("my app/.env"), "\"$da_home\"/'my app/.env'");
    }

    #[test]
    fn the_start_read_becomes_the_hosts_state() {
        let m = manifest();
        let env = &m.environments["staging"];
        let report = Report::buffered(false, None);
        let req = UpRequest::recorded(
            "staging",
            vec!["web".into()],
            Default::default(),
            LockOwner::default(),
            ".".into(),
            Vec::new(),
        );
        let hc = HostCtx {
            report: &report,
            host: &Host::Local,
            env,
            manifest: &m,
            req: &req,
        };
        let record = |n: u64, status: crate::state::ReleaseStatus| {
            let r = crate::state::ReleaseRecord {
                number: n,
                status: crate::state::ReleaseStatusField(status),
                ..Default::default()
            };
            format!(
                "\n==> deploy-action-file /srv/shop/.deploy-action/releases/{n}.json\n{}\n",
                serde_json::to_string(&r).unwrap()
            )
        };
        let listing = format!(
            "{}{}\n==> deploy-action-file /srv/shop/.deploy-action/releases/7.json\nnot json\n",
            record(2, crate::state::ReleaseStatus::Superseded),
            record(3, crate::state::ReleaseStatus::Live)
        );
        let containers = r#"[{"Id":"c1","Name":"/shop-web-1","Image":"sha256:aa","Config":{"Image":"shop/web:1","Labels":{"com.docker.compose.service":"web","com.docker.compose.project":"shop"}},"State":{"Status":"running"}}]"#;
        let secs: BTreeMap<String, Section> = [
            ("lock", section("ours\n")),
            ("records", section(&listing)),
            (
                "pins",
                section("services:\n  \"web\":\n    image: \"shop/web:9\"\n"),
            ),
            ("copies", section("2\n3\nnotanumber\n")),
            ("containers", section(containers)),
            ("have:0", section("sha256:bb [\"shop/web@sha256:cc\"]\n")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let checked = Checked {
            flavor: Flavor::V2(semver::Version::new(2, 30, 0)),
            http_client: "curl".into(),
            config: BTreeMap::new(),
            containers: Containers::new(),
        };
        let ran = |secs: BTreeMap<String, Section>| super::super::Ran {
            out: Output {
                status: 0,
                stdout: Vec::new(),
                stderr: b"Cannot connect to the Docker daemon\n".to_vec(),
            },
            secs,
            recorded: false,
            shown: start_script(hc, &[]).shown_all().clone(),
        };
        let st = state_of(hc, checked, &ran(secs.clone()), &["shop/web:1".to_string()]).unwrap();
        assert_eq!(st.next, 8, "a corrupt newest record keeps its number");
        assert_eq!(
            st.records.iter().map(|r| r.number).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(st.pins["web"], "shop/web:9");
        assert_eq!(st.copies, [2, 3].into());
        assert_eq!(st.before["web"].image, "shop/web:1");
        assert_eq!(
            st.images["shop/web:1"].as_ref().unwrap().repo_digests,
            ["shop/web@sha256:cc"]
        );
        assert!(
            report
                .printed()
                .iter()
                .any(|(_, l)| l.contains("7.json") && l.contains("its number is not reused")),
            "the corrupt record is reported"
        );
        // Without the containers section the read fails, naming what it could not read.
        let mut broken = secs.clone();
        broken.remove("containers");
        let checked = Checked {
            flavor: Flavor::V2(semver::Version::new(2, 30, 0)),
            http_client: "curl".into(),
            config: BTreeMap::new(),
            containers: Containers::new(),
        };
        let e = state_of(hc, checked, &ran(broken), &[]).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("reading the containers could not start: `sh -c ")
                && shown.ends_with("…`\n  cause: Cannot connect to the Docker daemon"),
            "{shown}"
        );
    }
}
