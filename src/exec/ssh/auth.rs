//! Logging in: with DEPLOY_SSH_KEY (the key text, as CI secrets deliver it), else
//! DEPLOY_SSH_KEY_FILE, else the ssh-agent and the default key files. Errors name what was tried,
//! never the key itself.

use super::{SshConfig, SshTarget};
use crate::env_vars;
use crate::exec::ExecError;
use ssh2::{ErrorCode, Session};
use std::path::Path;

/// Authenticates with DEPLOY_SSH_KEY, else DEPLOY_SSH_KEY_FILE, else the ssh-agent and the default
/// key files. Errors name what was tried, never the key itself.
pub(super) fn authenticate(
    session: &Session,
    target: &SshTarget,
    cfg: &SshConfig,
) -> Result<(), ExecError> {
    let fail = |message: String| ExecError::Auth {
        host: target.label(),
        message,
    };
    let pass = cfg.passphrase.as_ref().map(|p| p.expose());
    if let Some(text) = &cfg.key_text {
        return with_key_text(session, target, text.expose(), pass).map_err(fail);
    }
    if let Some(path) = &cfg.key_file {
        return with_key_file(session, target, path, pass).map_err(fail);
    }
    with_default_keys(session, target, cfg, pass).map_err(fail)
}

/// `user@host`, as messages name the login.
fn who(target: &SshTarget) -> String {
    format!("{}@{}", target.user, target.host)
}

/// Logs in with the private key text of DEPLOY_SSH_KEY.
fn with_key_text(
    session: &Session,
    target: &SshTarget,
    text: &str,
    pass: Option<&str>,
) -> Result<(), String> {
    let text = normalize_key_text(text);
    if !text.starts_with("-----BEGIN ") {
        return Err(format!(
            "{} does not hold a private key: it should start with `-----BEGIN ... PRIVATE KEY-----` \
             (for a path, use {})",
            env_vars::DEPLOY_SSH_KEY,
            env_vars::DEPLOY_SSH_KEY_FILE
        ));
    }
    session
        .userauth_pubkey_memory(&target.user, None, &text, pass)
        .map_err(|e| explain_key_error(&e, "the key in DEPLOY_SSH_KEY", &who(target), &target.user))
}

/// Logs in with the key file DEPLOY_SSH_KEY_FILE names.
fn with_key_file(
    session: &Session,
    target: &SshTarget,
    path: &str,
    pass: Option<&str>,
) -> Result<(), String> {
    if !Path::new(path).is_file() {
        return Err(format!(
            "{}={path}: no such file",
            env_vars::DEPLOY_SSH_KEY_FILE
        ));
    }
    session
        .userauth_pubkey_file(&target.user, None, Path::new(path), pass)
        .map_err(|e| {
            explain_key_error(
                &e,
                &format!("the key file {path}"),
                &who(target),
                &target.user,
            )
        })
}

/// Logs in with the ssh-agent's keys, then ~/.ssh/id_ed25519, id_ecdsa and id_rsa; the error
/// names what was tried (or that there was nothing to try).
fn with_default_keys(
    session: &Session,
    target: &SshTarget,
    cfg: &SshConfig,
    pass: Option<&str>,
) -> Result<(), String> {
    let who = who(target);
    let mut tried: Vec<String> = Vec::new();
    if cfg.use_agent
        && let Ok(mut agent) = session.agent()
        && agent.connect().is_ok()
    {
        let _ = agent.list_identities();
        let ids = agent.identities().unwrap_or_default();
        for id in &ids {
            if agent.userauth(&target.user, id).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        tried.push(format!("the ssh-agent ({} keys)", ids.len()));
        let _ = agent.disconnect();
    }
    if let Some(home) = &cfg.home {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = home.join(".ssh").join(name);
            if path.is_file() {
                match session.userauth_pubkey_file(&target.user, None, &path, pass) {
                    Ok(()) if session.authenticated() => return Ok(()),
                    _ => tried.push(path.display().to_string()),
                }
            }
        }
    }
    if tried.is_empty() {
        Err(format!(
            "no SSH key to log in as {who}: set {} (the private key text, e.g. from a secret) or {}, \
             or start an ssh-agent, or create ~/.ssh/id_ed25519",
            env_vars::DEPLOY_SSH_KEY,
            env_vars::DEPLOY_SSH_KEY_FILE
        ))
    } else {
        Err(format!(
            "{who} rejected every key tried: {}. Is the public key in ~{}/.ssh/authorized_keys on the host?",
            tried.join(", "),
            target.user
        ))
    }
}

fn explain_key_error(e: &ssh2::Error, what: &str, who: &str, user: &str) -> String {
    match e.code() {
        // LIBSSH2_ERROR_FILE: the key could not be read or decrypted.
        ErrorCode::Session(-16) => format!(
            "cannot use {what}: not a readable private key, or it needs a passphrase ({}): {}",
            env_vars::DEPLOY_SSH_KEY_PASSPHRASE,
            e.message()
        ),
        // AUTHENTICATION_FAILED / PUBLICKEY_UNVERIFIED
        ErrorCode::Session(-18) | ErrorCode::Session(-19) => format!(
            "{who} rejected {what}. Is its public key in ~{user}/.ssh/authorized_keys on the host?"
        ),
        _ => format!("{what}: {}", e.message()),
    }
}

/// Key text as it arrives from CI secrets: CRLF line ends, `\n` escapes, missing final newline.
fn normalize_key_text(text: &str) -> String {
    let mut t = text.trim().replace("\r\n", "\n");
    if !t.contains('\n') && t.contains("\\n") {
        t = t.replace("\\n", "\n");
    }
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_is_normalized() {
        assert_eq!(
            normalize_key_text("-----BEGIN X-----\\nabc\\n-----END X-----"),
            "-----BEGIN X-----\nabc\n-----END X-----\n"
        );
        assert_eq!(normalize_key_text("a\r\nb\r\n"), "a\nb\n");
    }
}
