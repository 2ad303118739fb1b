//! Whom to trust: the known_hosts entries (from DEPLOY_KNOWN_HOSTS, DEPLOY_KNOWN_HOSTS_FILE or the
//! usual files), the key types offered first, and the check of the key a host presents right after
//! the handshake, before authentication: a known key passes, a revoked or changed one never, an
//! unknown one only with `DEPLOY_SSH_ACCEPT_NEW=1` (and is then remembered in the known_hosts file).

use super::{SshConfig, SshTarget};
use crate::env_vars;
use crate::exec::ExecError;
use crate::exec::known_hosts::{self, KnownHosts, Verdict};
use ssh2::{MethodType, Session};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// known_hosts from DEPLOY_KNOWN_HOSTS, else DEPLOY_KNOWN_HOSTS_FILE, else ~/.ssh/known_hosts and
/// /etc/ssh/ssh_known_hosts. Returns the entries and a description of where they came from.
pub(super) fn load_known_hosts(cfg: &SshConfig) -> Result<(KnownHosts, String), String> {
    if let Some(text) = &cfg.known_hosts_text {
        return Ok((
            KnownHosts::parse(text, env_vars::DEPLOY_KNOWN_HOSTS),
            env_vars::DEPLOY_KNOWN_HOSTS.to_string(),
        ));
    }
    if let Some(path) = cfg.known_hosts_file.clone() {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // Accepting new keys into a file that does not exist yet starts it.
            Err(e) if e.kind() == ErrorKind::NotFound && cfg.accept_new => String::new(),
            Err(e) => {
                return Err(format!(
                    "{}={path}: cannot read it: {e}",
                    env_vars::DEPLOY_KNOWN_HOSTS_FILE
                ));
            }
        };
        return Ok((KnownHosts::parse(&text, &path), path));
    }
    let mut kh = KnownHosts::default();
    let mut read = Vec::new();
    let user_file = cfg.home.as_ref().map(|h| h.join(".ssh/known_hosts"));
    for path in user_file
        .into_iter()
        .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
    {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let name = path.display().to_string();
            kh.add(&text, &name);
            read.push(name);
        }
    }
    let source = if read.is_empty() {
        "no known_hosts (DEPLOY_KNOWN_HOSTS, DEPLOY_KNOWN_HOSTS_FILE and ~/.ssh/known_hosts are all unset or missing)".to_string()
    } else {
        read.join(" and ")
    };
    Ok((kh, source))
}

/// Offers the key types known for this host first, so a host with several keys presents one that
/// known_hosts can check (as OpenSSH does).
pub(super) fn prefer_known_key_types(session: &Session, known: &KnownHosts, target: &SshTarget) {
    let types = known.known_types(&target.host, target.port);
    if types.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = types
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t))
        .filter(|a| supported.contains(a))
        .collect();
    for a in &supported {
        if !prefs.contains(a) {
            prefs.push(a);
        }
    }
    let _ = session.method_pref(MethodType::HostKey, &prefs.join(","));
}

pub(super) fn verify_host_key(
    session: &Session,
    known: &KnownHosts,
    source: &str,
    target: &SshTarget,
    cfg: &SshConfig,
    warn: &dyn Fn(&str),
) -> Result<(), ExecError> {
    let refuse = |message: String| ExecError::HostKey {
        host: target.label(),
        message,
    };
    let Some((blob, _)) = session.host_key() else {
        return Err(refuse("the server presented no host key".into()));
    };
    let key_type = known_hosts::key_type_of(blob).unwrap_or_else(|| "unknown".into());
    let fp = known_hosts::fingerprint_sha256(blob);
    let name = known_hosts::lookup_name(&target.host, target.port);
    let keyscan = target.keyscan();
    match known.check(&target.host, target.port, blob) {
        Verdict::Known => Ok(()),
        Verdict::Revoked { origin } => Err(refuse(format!(
            "{name} presented the {key_type} key {fp}, which {origin} marks @revoked. Nothing was run on this host."
        ))),
        Verdict::Changed { known } => {
            let expected: Vec<String> = known
                .iter()
                .map(|k| format!("{} {} ({})", k.key_type, k.fingerprint, k.origin))
                .collect();
            Err(refuse(format!(
                "the host key of {name} has CHANGED. Nothing was run on this host.\n  \
                 presented: {key_type} {fp}\n  \
                 expected:  {}\n  \
                 This may be a man-in-the-middle attack, or the host was reinstalled. If the change is \
                 expected, check the new fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
                 then replace the entry in {source} with the line printed by `{keyscan}`.",
                expected.join("\n             ")
            )))
        }
        Verdict::Unknown => {
            if cfg.accept_new {
                let line = known_hosts::entry_line(&target.host, target.port, blob);
                let remembered = match remember_file(cfg) {
                    Ok(path) => match remember_host_key(&path, &line, target, blob) {
                        Ok(()) => format!(
                            "remembered in {}: later runs check it, and refuse a changed key",
                            path.display()
                        ),
                        Err(e) => format!(
                            "for this run only: cannot write {}: {e}. Pin it: add this line to it or to DEPLOY_KNOWN_HOSTS: {line}",
                            path.display()
                        ),
                    },
                    Err(why) => format!(
                        "for this run only: it cannot be remembered, because {why}. Pin it: add this line to DEPLOY_KNOWN_HOSTS: {line}"
                    ),
                };
                warn(&format!(
                    "{}: accepting the unknown host key of {name}: {key_type} {fp} \
                     (DEPLOY_SSH_ACCEPT_NEW=1), {remembered}",
                    target.label()
                ));
                Ok(())
            } else {
                Err(refuse(format!(
                    "the host key of {name} is not known. Nothing was run on this host.\n  \
                     presented: {key_type} {fp}\n  \
                     known hosts read: {source} ({} entries)\n  \
                     To trust it, check the fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
                     then add the line printed by `{keyscan}` to DEPLOY_KNOWN_HOSTS (a secret or variable of the \
                     workflow) or to the file named by DEPLOY_KNOWN_HOSTS_FILE. DEPLOY_SSH_ACCEPT_NEW=1 accepts an \
                     unknown key (never a changed one).",
                    known.len()
                )))
            }
        }
    }
}

/// Where `DEPLOY_SSH_ACCEPT_NEW=1` remembers an accepted key: DEPLOY_KNOWN_HOSTS_FILE, else
/// ~/.ssh/known_hosts. None (and why) when the known hosts come from DEPLOY_KNOWN_HOSTS text,
/// which the tool cannot change, or there is no home directory.
fn remember_file(cfg: &SshConfig) -> Result<PathBuf, String> {
    if cfg.known_hosts_text.is_some() {
        return Err(format!(
            "the known hosts come from {}",
            env_vars::DEPLOY_KNOWN_HOSTS
        ));
    }
    if let Some(path) = &cfg.known_hosts_file {
        return Ok(PathBuf::from(path));
    }
    match &cfg.home {
        Some(home) => Ok(home.join(".ssh").join("known_hosts")),
        None => Err(format!(
            "neither {} nor HOME is set",
            env_vars::DEPLOY_KNOWN_HOSTS_FILE
        )),
    }
}

/// Appends `line` (the accepted key of `target`) to the known_hosts file `path`: the file is
/// created 0600 (its directory 0700) when missing; nothing is written when the file already trusts
/// the key (another connection of this run remembered it). One writer at a time in this process.
fn remember_host_key(
    path: &Path,
    line: &str,
    target: &SshTarget,
    blob: &[u8],
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    static ONE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut text = line.to_string();
    match std::fs::read_to_string(path) {
        Ok(existing) => {
            let known = KnownHosts::parse(&existing, "");
            if known.check(&target.host, target.port, blob) == Verdict::Known {
                return Ok(());
            }
            if !existing.is_empty() && !existing.ends_with('\n') {
                text.insert(0, '\n');
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
