//! Every environment variable the tool reads, as a documented constant.
//!
//! Secrets among them are registered with the masker before anything could print them:
//! [`SECRET_VARS`] and the files of [`SECRET_FILE_VARS`] when the reporter starts, and the password
//! of each environment's `database.url_env` URL as soon as the manifest is loaded
//! (`context::Ctx::load_manifest`).

/// Private key text for SSH (masked).
pub const DEPLOY_SSH_KEY: &str = "DEPLOY_SSH_KEY";
/// Path of a private key file for SSH (its contents are masked).
pub const DEPLOY_SSH_KEY_FILE: &str = "DEPLOY_SSH_KEY_FILE";
/// known_hosts lines (plain or hashed).
pub const DEPLOY_KNOWN_HOSTS: &str = "DEPLOY_KNOWN_HOSTS";
/// Path of a known_hosts file.
pub const DEPLOY_KNOWN_HOSTS_FILE: &str = "DEPLOY_KNOWN_HOSTS_FILE";
/// `1` accepts an UNKNOWN host key (never a changed one), prints its fingerprint as a warning and
/// remembers it in DEPLOY_KNOWN_HOSTS_FILE or ~/.ssh/known_hosts.
pub const DEPLOY_SSH_ACCEPT_NEW: &str = "DEPLOY_SSH_ACCEPT_NEW";
/// Passphrase of the SSH private key, if it has one (masked).
pub const DEPLOY_SSH_KEY_PASSPHRASE: &str = "DEPLOY_SSH_KEY_PASSPHRASE";
/// Seconds to wait for an SSH host to answer (default 10).
pub const DEPLOY_SSH_CONNECT_TIMEOUT: &str = "DEPLOY_SSH_CONNECT_TIMEOUT";
/// The ssh-agent socket, used when no key is given.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";
/// The home directory (for ~/.ssh).
pub const HOME: &str = "HOME";
/// Cloudflare API token (masked).
pub const CLOUDFLARE_API_TOKEN: &str = "CLOUDFLARE_API_TOKEN";
/// Cloudflare account id.
pub const CLOUDFLARE_ACCOUNT_ID: &str = "CLOUDFLARE_ACCOUNT_ID";
/// Cloudflare API base URL, default `https://api.cloudflare.com/client/v4`.
pub const CLOUDFLARE_API_BASE_URL: &str = "CLOUDFLARE_API_BASE_URL";
/// GitHub token (masked).
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// `true` inside GitHub Actions.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
pub const GITHUB_SHA: &str = "GITHUB_SHA";
pub const GITHUB_REF_NAME: &str = "GITHUB_REF_NAME";
/// The full ref the run was started from (`refs/heads/main`, `refs/pull/7/merge`): checked
/// against an environment's `branches:`.
pub const GITHUB_REF: &str = "GITHUB_REF";
pub const GITHUB_HEAD_REF: &str = "GITHUB_HEAD_REF";
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
pub const GITHUB_RUN_ATTEMPT: &str = "GITHUB_RUN_ATTEMPT";
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// The directory of pg_dump / pg_restore used for migration backups (default: PATH).
pub const DEPLOY_PG_BIN: &str = "DEPLOY_PG_BIN";
/// The system's CA bundle (OpenSSL's convention): the roots PostgreSQL `sslmode=verify-full` checks
/// against when the URL gives no `sslrootcert`.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// Disables colour (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Test switch: never draw progress bars or spinners.
pub const DEPLOY_TEST_NO_PROGRESS: &str = "DEPLOY_TEST_NO_PROGRESS";
/// Test switch: retry immediately instead of backing off.
pub const DEPLOY_TEST_NO_RETRY_DELAY: &str = "DEPLOY_TEST_NO_RETRY_DELAY";
/// `up`: force the compose flavor on every host (`v1` = `docker-compose`, `v2` = `docker compose`);
/// detected per host when unset.
pub const DEPLOY_COMPOSE: &str = "DEPLOY_COMPOSE";
/// Test switch: how long a lock's heartbeat may be silent before the lock is reported as stale
/// (a duration such as `3s`; default 2 minutes). The holder beats at a quarter of it, at most
/// every 20 s, so a test sees a killed holder's lock reported stale within seconds.
pub const DEPLOY_TEST_LOCK_STALE_AFTER: &str = "DEPLOY_TEST_LOCK_STALE_AFTER";
/// Test switch: ship built images even when the host already has the same image id (the test
/// host over SSH drives the same Docker engine as the runner).
pub const DEPLOY_TEST_ALWAYS_SHIP: &str = "DEPLOY_TEST_ALWAYS_SHIP";
/// Where the Pages hash cache lives (`pages::hash_cache`): a directory, or `off` (also `0`,
/// `false`, `no`) for none. Default: `$XDG_CACHE_HOME/deploy-action/pages-hashes`, else
/// `$HOME/.cache/deploy-action/pages-hashes`.
pub const DEPLOY_PAGES_HASH_CACHE: &str = "DEPLOY_PAGES_HASH_CACHE";
/// Why a deploy, promote or rollback runs: recorded in the release notes, the audit log and the
/// GitHub deployment's payload.
pub const DEPLOY_REASON: &str = "DEPLOY_REASON";
/// The person or bot running a deploy outside GitHub Actions (else `$LOGNAME`, else the account).
pub const USER: &str = "USER";
pub const LOGNAME: &str = "LOGNAME";

/// Variables whose values are secrets and are masked wherever they could appear.
pub const SECRET_VARS: &[&str] = &[
    DEPLOY_SSH_KEY,
    DEPLOY_SSH_KEY_PASSPHRASE,
    CLOUDFLARE_API_TOKEN,
    GITHUB_TOKEN,
];

/// Variables naming a file whose contents are secrets: the file is read and its contents masked
/// like [`SECRET_VARS`] (each non-empty line of a key too).
pub const SECRET_FILE_VARS: &[&str] = &[DEPLOY_SSH_KEY_FILE];

/// Reads a variable, treating an empty value as unset.
pub fn get(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// True when running inside GitHub Actions.
pub fn in_github_actions() -> bool {
    get(GITHUB_ACTIONS).as_deref() == Some("true")
}

/// Who runs this: GITHUB_ACTOR in Actions, else USER, LOGNAME, or the account's name.
pub fn actor() -> String {
    get(GITHUB_ACTOR)
        .or_else(|| get(USER))
        .or_else(|| get(LOGNAME))
        .or_else(account_name)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of the effective user, from the password database.
fn account_name() -> Option<String> {
    // SAFETY: getpwuid returns null or a pointer to a static record valid until the next call;
    // the name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_str()
            .ok()
            .map(String::from)
    }
}

/// The URL of this GitHub Actions run, from the runner's variables.
pub fn run_url() -> Option<String> {
    let server = get(GITHUB_SERVER_URL)?;
    let repo = get(GITHUB_REPOSITORY)?;
    let run = get(GITHUB_RUN_ID)?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}
