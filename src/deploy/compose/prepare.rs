//! Prepare: what goes on the host before anything it runs changes. Ship the images that are not
//! built there; install the release's compose and env files with their copy under
//! `.deploy-action/files/<n>` (or restore an earlier release's copy), the secrets files (0600,
//! in 0700 directories) and the override file; pull the registry images as their `pull:` says.
//!
//! A failed pull puts the pins back and removes this release's copy: no container has changed,
//! and the error says so. The files and pulls are one round trip each.

use super::{HostDeploy, Ran};
use crate::cmd::docker_engine::{self as de, ImageInfo, Script};
use crate::cmd::{Cmd, shell_quote};
use crate::error::{CommandFailure, Error, Result, STDERR_TAIL_LINES};
use crate::plan::up::action::{FileUpload, Files, PullOne};
use crate::plan::up::{self as pu, host::short};

/// Lines of a failed pull's output shown.
const PULL_TAIL_LINES: usize = 4;

/// Ships one image: `id` given (promote), the exact image from the source's host; else one built
/// on this machine.
pub fn ship(d: &mut HostDeploy, service: &str, image: &str, id: Option<&str>) -> Result<()> {
    let report = d.hc.report;
    let unit = d.hc.manifest_name(service);
    match id {
        Some(id) => {
            let Some(src) = d.source.as_deref_mut() else {
                return Err(Error::Bug(format!(
                    "{}: {service}: no source host to ship image {id} from",
                    d.label()
                )));
            };
            super::super::ship::ship_between(src, d.ex, report, image, id)
        }
        None => super::super::ship::ship(d.ex, d.local, report, image),
    }
    .map_err(|e| e.within(Some(&unit), None))
}

/// The files step: one round trip (plus one upload per file that is not text).
pub fn files(d: &mut HostDeploy, f: &Files) -> Result<()> {
    let mut s = Script::new();
    s.run("copy-clean", &de::rm_rf(&f.copy_dir));
    if let Some(from) = f.restore_from {
        let from = shell_quote(&pu::files_dir(&d.hc.env.dir, from)).into_owned();
        let copy = shell_quote(&f.copy_dir).into_owned();
        s.shell(
            "restore-files",
            &format!(
                "cp -R {from}/. {dir}/ && mkdir -p {copy} && cp -R {from}/. {copy}/",
                dir = shell_quote(&f.dir)
            ),
        );
    }
    for (i, u) in f.uploads.iter().enumerate() {
        upload(d, &mut s, i, u, &f.copy_dir)?;
    }
    write_secrets(d, &mut s, f)?;
    s.write(
        "pins",
        &d.hc.override_path(),
        &d.hc.pins_text(&f.pins, true),
        0o644,
    );
    let ran = d.script(&s)?;
    if let Some(name) = failed_section(&ran) {
        let f = ran.failure(&d.label(), "writing the files", &name, STDERR_TAIL_LINES);
        return Err(f.into());
    }
    Ok(())
}

/// The first section that failed, if any.
fn failed_section(ran: &Ran) -> Option<String> {
    ran.secs
        .iter()
        .find(|(name, _)| !ran.ok(name))
        .map(|(name, _)| name.clone())
}

/// One file from the repository and its release copy: in the script when it is text, else its
/// own uploads, byte for byte.
fn upload(
    d: &mut HostDeploy,
    s: &mut Script,
    i: usize,
    u: &FileUpload,
    copy_dir: &str,
) -> Result<()> {
    let data = std::fs::read(d.hc.req.repo_root.join(&u.local))
        .map_err(|e| Error::usage(format!("cannot read {} from the repository: {e}", u.local)))?;
    let copy = format!("{copy_dir}/{}", u.local);
    match String::from_utf8(data) {
        Ok(text) if !text.contains('\0') => {
            s.write(&format!("upload:{i}"), &u.remote, &text, u.mode);
            s.write(&format!("copy:{i}"), &copy, &text, u.mode);
        }
        Ok(text) => {
            d.ex.upload(&u.remote, text.as_bytes(), u.mode as i32)?;
            d.ex.upload(&copy, text.as_bytes(), u.mode as i32)?;
        }
        Err(e) => {
            let bytes = e.into_bytes();
            d.ex.upload(&u.remote, &bytes, u.mode as i32)?;
            d.ex.upload(&copy, &bytes, u.mode as i32)?;
        }
    }
    Ok(())
}

/// Adds to `s` the secrets files of this release: with the repository's files, each service's
/// values and their copy for the release; a service that no longer has secrets loses its file.
/// Restoring release files (rollback), the restored copy is what runs. Either way every file the
/// override names exists (empty when nothing was ever written), so compose can read it.
fn write_secrets(d: &HostDeploy, s: &mut Script, f: &Files) -> Result<()> {
    let dir = &f.dir;
    let env_dir = format!("{dir}/.deploy-action/env");
    let copy_dir = format!("{}/.deploy-action/env", f.copy_dir);
    let q = |p: &str| shell_quote(p).into_owned();
    s.shell(
        "secrets-dir",
        &format!(
            "mkdir -p {e} {c} && chmod 700 {e} {c}",
            e = q(&env_dir),
            c = q(&copy_dir)
        ),
    );
    for svc in &f.secrets {
        let values = d.hc.req.secrets.get(svc).cloned().unwrap_or_default();
        let text = super::super::secrets::file_text(&values, d.state.flavor.is_v1())?;
        let rel = pu::secrets_file(svc);
        s.write(
            &format!("secrets:{svc}"),
            &format!("{dir}/{rel}"),
            &text,
            0o600,
        );
        s.write(
            &format!("secrets-copy:{svc}"),
            &format!("{}/{rel}", f.copy_dir),
            &text,
            0o600,
        );
    }
    for cs in &f.dropped {
        s.run(
            &format!("secrets-drop:{cs}"),
            &Cmd::new("rm")
                .arg("-f")
                .arg(format!("{dir}/{}", pu::secrets_file(cs))),
        );
    }
    for cs in d.hc.secret_files().keys() {
        let file = q(&format!("{dir}/{}", pu::secrets_file(cs)));
        s.shell(
            &format!("secrets-exists:{cs}"),
            &format!("[ -e {file} ] || ( umask 077 && : > {file} )"),
        );
    }
    Ok(())
}

/// The pull step: every pull with what each image is after it, one round trip. Says per service
/// whether the image changed; a failed pull undoes the files step and fails naming every image
/// that could not be pulled.
pub fn pull(d: &mut HostDeploy, pulls: &[PullOne]) -> Result<()> {
    let label = d.label();
    let report = d.hc.report;
    let mut s = Script::new();
    for (i, p) in pulls.iter().enumerate() {
        s.shell(
            &format!("pull:{i}"),
            &format!("{} 2>&1", p.cmd.to_shell_line()),
        );
        s.run(
            &format!("now:{i}"),
            &de::image_infos(std::slice::from_ref(&p.image)),
        );
    }
    if !d.ex.records() {
        report.info(&format!(
            "{label}: pulling {}",
            pulls
                .iter()
                .map(|p| format!("{} ({})", p.image, p.service))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let ran = d.script(&s)?;
    if ran.recorded {
        return Ok(());
    }
    let mut failed = Vec::new();
    for (i, p) in pulls.iter().enumerate() {
        let before = d.state.images.get(&p.image).cloned().flatten();
        match pulled(&ran, &label, i, p, before.as_ref()) {
            Ok(change) => report.info(&format!(
                "{label}: {}: pulled {}: {change}",
                p.service, p.image
            )),
            Err(f) => {
                // At the service's entry (where its `pull:` is), not the environment's.
                let unit = d.hc.manifest_name(&p.service);
                let at = d.hc.manifest.services.get(&unit).map(|s| s.span);
                failed.push((*f).unit(unit).origin(at));
            }
        }
    }
    let mut failed = failed.into_iter();
    let Some(first) = failed.next() else {
        return Ok(());
    };
    undo_files(d);
    let mut left: Vec<String> = failed.map(|f| format!("{} failed too", f.what)).collect();
    left.push("nothing was deployed on this host: its containers run what they ran before".into());
    Err(Error::from(first).aftermath(left.join("; ")))
}

/// What pull `i` did on `host`: how the image changed, or the failure of its pull (with the last
/// lines docker said).
fn pulled(
    ran: &Ran,
    host: &str,
    i: usize,
    p: &PullOne,
    before: Option<&ImageInfo>,
) -> std::result::Result<String, Box<CommandFailure>> {
    let section = ran.secs.get(&format!("pull:{i}"));
    if !section.is_some_and(|s| s.success()) {
        let said = section
            .map(|s| tail(&s.stdout, PULL_TAIL_LINES))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| ran.out.stderr_tail(PULL_TAIL_LINES).trim().to_string());
        let what = format!("pulling {} for {}", p.image, p.service);
        let status = section.map_or(ran.out.status, |s| s.status);
        return Err(Box::new(
            CommandFailure::new(host, what, &p.cmd)
                .status(status)
                .stderr(said),
        ));
    }
    let now = ran
        .secs
        .get(&format!("now:{i}"))
        .and_then(|n| de::parse_image_infos(&n.stdout).into_iter().next());
    Ok(change(before, now.as_ref()))
}

/// How an image changed with a pull.
fn change(before: Option<&ImageInfo>, now: Option<&ImageInfo>) -> String {
    match (before, now) {
        (Some(b), Some(n)) if b.id == n.id => format!("unchanged ({})", short(&n.id)),
        (Some(b), Some(n)) => format!("the image changed ({} → {})", short(&b.id), short(&n.id)),
        (None, Some(n)) => format!("new on this host ({})", short(&n.id)),
        (_, None) => "pulled, but the host does not show it".to_string(),
    }
}

/// After a failed pull: the pins as they were, and no copy of this release's files.
fn undo_files(d: &mut HostDeploy) {
    let mut s = Script::new();
    let old = d.state.pins.clone();
    s.write(
        "pins",
        &d.hc.override_path(),
        &d.hc.pins_text(&old, true),
        0o644,
    );
    s.run(
        "copy",
        &de::rm_rf(&pu::files_dir(&d.hc.env.dir, d.state.next)),
    );
    if let Err(e) = d.script(&s) {
        d.hc.report
            .warn(&format!("{}: could not restore the pins: {e}", d.label()));
    }
}

/// The last `n` non-empty lines of `text`, trimmed.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::docker_engine::Section;

    fn info(id: &str) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_digests: Vec::new(),
        }
    }

    #[test]
    fn a_pull_failure_keeps_the_last_lines_of_what_docker_said() {
        let said = " web Pulling \n web Error manifest unknown\n\nError response from daemon: manifest for r/x:nope not found\n";
        assert_eq!(
            tail(said, 2),
            "web Error manifest unknown\nError response from daemon: manifest for r/x:nope not found"
        );
        assert_eq!(tail("", 3), "");
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
    }

    #[test]
    fn each_pull_says_how_its_image_changed_or_why_it_failed() {
        let p = PullOne {
            service: "web".into(),
            image: "r/web:1".into(),
            cmd: Cmd::new("docker").args(["compose", "pull", "web"]),
        };
        let ran = |secs: &[(&str, i32, &str)]| Ran {
            out: Default::default(),
            secs: secs
                .iter()
                .map(|(n, status, out)| {
                    (
                        n.to_string(),
                        Section {
                            status: *status,
                            stdout: out.to_string(),
                        },
                    )
                })
                .collect(),
            recorded: false,
            shown: Default::default(),
        };
        let infos = "sha256:2222222222222222 []\n";
        let ok = ran(&[("pull:0", 0, "done"), ("now:0", 0, infos)]);
        assert!(
            pulled(&ok, "local", 0, &p, None)
                .unwrap()
                .starts_with("new on this host")
        );
        assert!(
            pulled(&ok, "local", 0, &p, Some(&info("sha256:1111")))
                .unwrap()
                .starts_with("the image changed (sha256:1111 → ")
        );
        let failed = ran(&[("pull:0", 1, "web Pulling\nmanifest unknown\n")]);
        let f = pulled(&failed, "deploy@h:22", 0, &p, None).unwrap_err();
        assert_eq!(
            f.to_string(),
            "deploy@h:22: pulling r/web:1 for web failed (exit status 1): `docker compose pull web`\n  stderr:\n    web Pulling\n    manifest unknown"
        );
        assert_eq!(change(Some(&info("a")), Some(&info("a"))), "unchanged (a)");
        assert_eq!(change(None, None), "pulled, but the host does not show it");
    }
}
