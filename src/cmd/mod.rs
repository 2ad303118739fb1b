//! Commands as values: argv, environment, stdin and working directory.
//!
//! Pure: builds data, never starts a process. Only `exec/` runs a [`Cmd`]. Secret arguments are typed
//! ([`Arg::Secret`]) from the moment they are created, so every rendering (console, `--json`, the audit
//! log, the job summary) shows `***` and only an executor ever sees the value.
//!
//! A command also says which inherited variables its process must not see ([`Cmd::scrub_env`]):
//! a unit's own build and test commands do not get the tool's secrets ([`child_scrub`]).

pub mod compose;
pub mod docker;
pub mod docker_engine;

use crate::env_vars;
use std::borrow::Cow;
use std::fmt;

/// The tool's own secrets among the variables of the runner's environment. A unit's own commands
/// (build, test, Pages build, `docker build`) run without them unless the unit lists them in
/// `env:`, so a build script cannot print one (reversed, say, past the mask).
/// `DEPLOY_SSH_KEY_FILE` is a path, not a secret; the runtime and OIDC tokens of GitHub Actions
/// are secrets of the runner that only actions need.
pub const TOOL_SECRET_VARS: &[&str] = &[
    env_vars::DEPLOY_SSH_KEY,
    env_vars::DEPLOY_SSH_KEY_PASSPHRASE,
    env_vars::CLOUDFLARE_API_TOKEN,
    env_vars::GITHUB_TOKEN,
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
];

/// The variables a unit's own command must not inherit: [`TOOL_SECRET_VARS`] and `extra` (the
/// secrets the manifest names: database URL variables, `secrets:` lists), except those in
/// `allowed` (the unit's `env:`). Sorted, without repeats.
pub fn child_scrub<'a>(
    extra: impl IntoIterator<Item = &'a str>,
    allowed: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = TOOL_SECRET_VARS
        .iter()
        .copied()
        .chain(extra)
        .filter(|v| !allowed.iter().any(|a| a == v))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A secret value. `Debug` and `Display` print `***`; [`Secret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One argument or environment value of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Plain(String),
    Secret(Secret),
}

impl Arg {
    /// The text shown to people: secrets as `***`.
    pub fn display(&self) -> &str {
        match self {
            Arg::Plain(s) => s,
            Arg::Secret(_) => "***",
        }
    }
    /// The real value, for executors only.
    pub fn expose(&self) -> &str {
        match self {
            Arg::Plain(s) => s,
            Arg::Secret(s) => s.expose(),
        }
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Plain(s.to_string())
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Plain(s)
    }
}
impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::Plain(s.clone())
    }
}
impl From<Secret> for Arg {
    fn from(s: Secret) -> Self {
        Arg::Secret(s)
    }
}

/// A command to run: program, arguments, environment, optional stdin bytes and working directory.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<Arg>,
    pub env: Vec<(String, Arg)>,
    pub stdin: Option<Vec<u8>>,
    pub cwd: Option<String>,
    /// Inherited variables the process must not see (a local child; a remote command inherits
    /// nothing from us). Not shown by [`Cmd::display`]: the names are no secret, but noise.
    pub scrub: Vec<String>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            ..Default::default()
        }
    }

    /// `sh -c SCRIPT` (a user's `build:`/`test:` command line, run as written).
    pub fn shell(script: impl Into<String>) -> Self {
        Cmd::new("sh").arg("-c").arg(script.into())
    }

    pub fn arg(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Arg>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn secret(mut self, value: Secret) -> Self {
        self.args.push(Arg::Secret(value));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<Arg>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the inherited variables the process must not see (replacing the list), e.g.
    /// [`child_scrub`]. Variables set with [`Cmd::env`] are still given.
    pub fn scrub_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scrub = names.into_iter().map(Into::into).collect();
        self
    }

    /// The command as people see it: shell-quoted, secrets as `***`, prefixed by `cd DIR &&` and
    /// `KEY=VALUE` assignments when present.
    pub fn display(&self) -> String {
        self.render(false)
    }

    /// The command as an error message names it: the script of a `sh -c SCRIPT` command as the
    /// manifest wrote it (a `build:` or `test:` line), else [`Cmd::display`]. Secrets as `***`.
    pub fn shown(&self) -> String {
        match self.args.as_slice() {
            [c, script] if self.program == "sh" && c.display() == "-c" => {
                script.display().to_string()
            }
            _ => self.display(),
        }
    }

    /// The command as one POSIX shell line with real values, for an executor that must go through a
    /// remote shell (SSH `exec` takes a single string).
    pub fn to_shell_line(&self) -> String {
        self.render(true)
    }

    fn render(&self, expose: bool) -> String {
        let pick = |a: &Arg| {
            if expose {
                a.expose().to_string()
            } else {
                a.display().to_string()
            }
        };
        let mut out = String::new();
        if let Some(dir) = &self.cwd {
            out.push_str("cd ");
            out.push_str(&shell_quote(dir));
            out.push_str(" && ");
        }
        for (k, v) in &self.env {
            out.push_str(k);
            out.push('=');
            let value = pick(v);
            if !expose && matches!(v, Arg::Secret(_)) {
                out.push_str(&value);
            } else {
                out.push_str(&shell_quote(&value));
            }
            out.push(' ');
        }
        out.push_str(&shell_quote(&self.program));
        for a in &self.args {
            out.push(' ');
            if !expose && matches!(a, Arg::Secret(_)) {
                out.push_str("***");
            } else {
                out.push_str(&shell_quote(&pick(a)));
            }
        }
        out
    }

    /// The program and plain arguments, secrets exposed: for local executors.
    pub fn argv_exposed(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| a.expose().to_string()))
            .collect()
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Shell text that writes its standard input to `path` with `mode`, atomically and without
/// following a planted link: a fresh temporary file with an unguessable name is created
/// exclusively beside the target (`mktemp`: `O_EXCL`, mode 0600 from the start), filled, given
/// `mode`, then renamed over the target (a rename replaces a symlink at `path`, never writes
/// through it). Two writers of one path never share a temporary file; the last rename wins whole.
/// The temporary file is removed on failure; parent directories are created.
pub fn write_stdin_shell(path: &str, mode: u32) -> String {
    let p = std::path::Path::new(path);
    let dir = p
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    let base = p
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let template = format!("{dir}/.{base}.deploy-action-XXXXXXXX");
    format!(
        "mkdir -p {d} && t=$(mktemp {tpl}) && {{ cat > \"$t\" && chmod {mode:o} \"$t\" && mv -f \"$t\" {p} || {{ rc=$?; rm -f \"$t\"; exit $rc; }}; }}",
        d = shell_quote(&dir),
        tpl = shell_quote(&template),
        p = shell_quote(path),
    )
}

/// The one audited POSIX shell quoting function: leaves safe words alone, single-quotes the rest.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// The variables the children of `unit` (its build and test commands, its `docker build`, a
/// site's Pages build) must not inherit: the tool's own secrets and those the manifest names
/// ([`Manifest::secret_vars`](crate::manifest::Manifest::secret_vars): database URL variables, `secrets:` lists), except what the unit's
/// `env:` lets through. See [`child_scrub`].
pub fn unit_child_scrub(m: &crate::manifest::Manifest, unit: &str) -> Vec<String> {
    let manifest_secrets = m.secret_vars();
    let allowed = match (m.services.get(unit), m.sites.get(unit)) {
        (Some(s), _) => s.env.as_slice(),
        (None, Some(s)) => s.env.as_slice(),
        (None, None) => &[],
    };
    child_scrub(manifest_secrets, allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_safe_words_and_escapes_quotes() {
        assert_eq!(shell_quote("docker"), "docker");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn children_lose_the_tool_secrets_unless_allowed() {
        let allowed = vec!["CLOUDFLARE_API_TOKEN".to_string()];
        let list = child_scrub(["STAGING_DATABASE_URL", "GITHUB_TOKEN"], &allowed);
        assert!(list.contains(&"GITHUB_TOKEN".to_string()));
        assert!(list.contains(&"DEPLOY_SSH_KEY".to_string()));
        assert!(list.contains(&"ACTIONS_RUNTIME_TOKEN".to_string()));
        assert!(list.contains(&"STAGING_DATABASE_URL".to_string()));
        assert!(!list.contains(&"CLOUDFLARE_API_TOKEN".to_string()));
        assert!(!list.contains(&"DEPLOY_SSH_KEY_FILE".to_string()));
        assert_eq!(list.iter().filter(|v| *v == "GITHUB_TOKEN").count(), 1);
        let c = Cmd::shell("make").scrub_env(list.clone());
        assert_eq!(c.scrub, list);
        assert_eq!(c.display(), "sh -c make", "not shown");
    }

    #[test]
    fn a_shell_command_is_shown_as_its_script_and_others_as_displayed() {
        let c = Cmd::shell("npm run build").cwd("/repo");
        assert_eq!(c.shown(), "npm run build");
        let c = Cmd::new("psql")
            .arg("-c")
            .secret(Secret::new("pw"))
            .cwd("/r");
        assert_eq!(c.shown(), "cd /r && psql -c ***");
    }

    #[test]
    fn writes_go_through_a_fresh_exclusive_temporary_file() {
        let s = write_stdin_shell("/srv/my app/.env", 0o600);
        assert_eq!(
            s,
            "mkdir -p '/srv/my app' && t=$(mktemp '/srv/my app/..env.deploy-action-XXXXXXXX') && { cat > \"$t\" && chmod 600 \"$t\" && mv -f \"$t\" '/srv/my app/.env' || { rc=$?; rm -f \"$t\"; exit $rc; }; }"
        );
        assert!(
            write_stdin_shell("x", 0o644)
                .starts_with("mkdir -p . && t=$(mktemp ./.x.deploy-action-XXXXXXXX)")
        );
    }

    #[test]
    fn secrets_never_show_in_display() {
        let c = Cmd::new("psql")
            .arg("-c")
            .arg("select 1")
            .env("PGPASSWORD", Secret::new("hunter2"))
            .secret(Secret::new("tok"))
            .cwd("/srv/my app");
        assert_eq!(
            c.display(),
            "cd '/srv/my app' && PGPASSWORD=*** psql -c 'select 1' ***"
        );
        assert_eq!(
            c.to_shell_line(),
            "cd '/srv/my app' && PGPASSWORD=hunter2 psql -c 'select 1' tok"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
