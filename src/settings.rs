//! Resolved settings: command line + environment, validated, no clap types past this point.
//!
//! [`resolve`] turns the parsed command line into the global [`Settings`] and one plain settings
//! value per subcommand ([`CommandSettings`]); checks that need no I/O (durations, `--image`
//! references, flags that do not go together) happen here. Stays out of the manifest and of
//! everything that runs.

use crate::cli::{self, Cli, GlobalArgs};
use crate::error::{Error, Result};
use crate::manifest::{self, Environment, Manifest};
// The manifest is loaded by `context::Ctx::load_manifest`, which also registers its secrets.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The longest duration a flag (`--lock-wait`, `--approval-timeout`) accepts.
pub const MAX_FLAG_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What every command knows about how it was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub dry_run: bool,
    pub env: Option<String>,
    pub only: Vec<String>,
    pub all: bool,
    pub base: Option<String>,
    pub json: bool,
    pub manifest_path: PathBuf,
    pub yes: bool,
    /// `--tag`: record releases as local git tags too.
    pub tag: bool,
    /// `--allow-dirty`: deploy from a working tree with uncommitted changes.
    pub allow_dirty: bool,
    /// `--approval-timeout`, as typed (parsed by the guard).
    pub approval_timeout: String,
}

impl Settings {
    pub fn from_args(g: &GlobalArgs) -> Settings {
        Settings {
            dry_run: g.dry_run,
            env: g.env.clone(),
            only: g.only.clone(),
            all: g.all,
            base: g.base.clone(),
            json: g.json,
            manifest_path: g
                .manifest
                .clone()
                .unwrap_or_else(|| PathBuf::from(manifest::DEFAULT_FILE)),
            yes: g.yes,
            tag: g.tag,
            allow_dirty: g.allow_dirty,
            approval_timeout: g.approval_timeout.clone(),
        }
    }

    /// The environment named by `--env` (required), or an exit-2 error naming the choices.
    pub fn environment<'m>(&self, m: &'m Manifest) -> Result<&'m Environment> {
        let names: Vec<&str> = m.environments.keys().map(String::as_str).collect();
        let Some(name) = &self.env else {
            return Err(Error::usage_help(
                "this command needs --env ENV",
                format!("environments in the manifest: {}", names.join(", ")),
            ));
        };
        m.environments.get(name).ok_or_else(|| {
            let help = match crate::diag::suggest::closest(name, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? environments: {}", names.join(", ")),
                None => format!("environments in the manifest: {}", names.join(", ")),
            };
            Error::usage_help(format!("unknown environment `{name}`"), help)
        })
    }
}

/// What to run, with its own settings resolved.
#[derive(Clone, Debug)]
pub enum CommandSettings {
    Plan(PlanSettings),
    Build(BuildSettings),
    Test(BuildSettings),
    Exec(ExecSettings),
    Promote(PromoteSettings),
    Rollback(RollbackSettings),
    Status,
    Up(UpSettings),
    Lock(LockAction),
    Pages(PagesSettings),
    Migrate(MigrateSettings),
    Schema,
    Check,
    /// The completion script, generated for the shell asked for.
    Completions(Vec<u8>),
}

/// `build` and `test`.
#[derive(Clone, Debug, Default)]
pub struct BuildSettings {
    /// `--keep-going`: go on after a unit fails; report every result at the end.
    pub keep_going: bool,
}

/// `exec -- CMD...`.
#[derive(Clone, Debug, Default)]
pub struct ExecSettings {
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// `plan`: which run it plans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlanSettings {
    /// The change-driven stages (build, test, up, pages, migrate).
    #[default]
    Changes,
    /// `--promote`: the promotion into `--env` from its `promote_from`.
    Promote,
    /// `--rollback [TO]`: a rollback of `--env` (to `TO`, else the default release).
    Rollback { to: Option<String> },
}

impl PlanSettings {
    fn from_args(a: cli::PlanArgs) -> PlanSettings {
        match (a.promote, a.rollback) {
            (true, _) => PlanSettings::Promote,
            (false, Some(to)) => PlanSettings::Rollback { to },
            (false, None) => PlanSettings::Changes,
        }
    }
}

/// `promote`.
#[derive(Clone, Debug, Default)]
pub struct PromoteSettings {
    /// `--from`: the source environment (default: the target's `promote_from`).
    pub from: Option<String>,
    /// `--to`: the target environment (default: --env).
    pub to: Option<String>,
}

/// `rollback`.
#[derive(Clone, Debug, Default)]
pub struct RollbackSettings {
    /// `--to N|TAG|SHA`: the release to go back to.
    pub to: Option<String>,
}

/// `up`.
#[derive(Clone, Debug, Default)]
pub struct UpSettings {
    /// `--image SERVICE=IMAGE`, parsed: manifest service → image reference.
    pub images: BTreeMap<String, String>,
    /// `--no-build`.
    pub no_build: bool,
    /// `--force`: recreate even when unchanged.
    pub force: bool,
    /// `--lock-wait`: wait this long for a held lock instead of exiting 4 at once.
    pub lock_wait: Option<Duration>,
}

/// `lock status|release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockAction {
    Status,
    Release,
}

/// `pages`.
#[derive(Clone, Debug, Default)]
pub struct PagesSettings {
    /// `--branch`: the branch of the deployment.
    pub branch: Option<String>,
    /// `--commit-hash`.
    pub commit_hash: Option<String>,
    /// `--commit-message`.
    pub commit_message: Option<String>,
    /// `--commit-dirty`.
    pub commit_dirty: Option<bool>,
    /// `--no-build`: do not run the sites' `build` commands.
    pub no_build: bool,
    /// `--concurrency`: upload requests in flight at once (1..=16).
    pub concurrency: u16,
    /// `--dir`: deploy this directory without a manifest (with `project`).
    pub dir: Option<PathBuf>,
    /// `--project`: the Pages project for `dir`.
    pub project: Option<String>,
    /// `--wait-timeout`: seconds to wait for the deployment to reach a final status.
    pub wait_timeout: u64,
}

/// Which of the three `migrate` commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateAction {
    /// `migrate`: apply the pending migrations.
    Up,
    /// `migrate status`.
    Status,
    /// `migrate down --to V`.
    Down { to: u64 },
}

/// `migrate [status | down --to V]`.
#[derive(Clone, Debug)]
pub struct MigrateSettings {
    pub action: MigrateAction,
    /// `--accept-changed VERSION`: re-baseline these versions' checksums.
    pub accept_changed: Vec<u64>,
    /// `--lock-wait`.
    pub lock_wait: Duration,
    /// `--backup-dir`.
    pub backup_dir: Option<PathBuf>,
    /// `--keep-backups` (at least 1).
    pub keep_backups: u64,
    /// `--target VERSION` (`migrate` only).
    pub target: Option<u64>,
}

/// The command line resolved: the global settings and the subcommand's. An invalid flag value is
/// an exit-2 error.
pub fn resolve(cli: Cli) -> Result<(Settings, CommandSettings)> {
    let settings = Settings::from_args(&cli.global);
    let command = match cli.command {
        cli::Command::Plan(a) => CommandSettings::Plan(PlanSettings::from_args(a)),
        cli::Command::Build(a) => CommandSettings::Build(BuildSettings {
            keep_going: a.keep_going,
        }),
        cli::Command::Test(a) => CommandSettings::Test(BuildSettings {
            keep_going: a.keep_going,
        }),
        cli::Command::Exec(a) => CommandSettings::Exec(ExecSettings { command: a.command }),
        cli::Command::Promote { from, to } => {
            CommandSettings::Promote(PromoteSettings { from, to })
        }
        cli::Command::Rollback { to } => CommandSettings::Rollback(RollbackSettings { to }),
        cli::Command::Status => CommandSettings::Status,
        cli::Command::Up(a) => CommandSettings::Up(up(a)?),
        cli::Command::Lock(a) => CommandSettings::Lock(match a.action {
            cli::LockAction::Status => LockAction::Status,
            cli::LockAction::Release => LockAction::Release,
        }),
        cli::Command::Pages(a) => CommandSettings::Pages(PagesSettings {
            branch: a.branch,
            commit_hash: a.commit_hash,
            commit_message: a.commit_message,
            commit_dirty: a.commit_dirty,
            no_build: a.no_build,
            concurrency: a.concurrency,
            dir: a.dir,
            project: a.project,
            wait_timeout: a.wait_timeout,
        }),
        cli::Command::Migrate(a) => CommandSettings::Migrate(migrate(a)?),
        cli::Command::Schema => CommandSettings::Schema,
        cli::Command::Check => CommandSettings::Check,
        cli::Command::Completions { shell } => CommandSettings::Completions(completions(shell)),
    };
    Ok((settings, command))
}

fn up(a: cli::UpArgs) -> Result<UpSettings> {
    let lock_wait = a
        .lock_wait
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| Error::usage(format!("--lock-wait: {e}")))?;
    let images = crate::plan::up::parse_image_overrides(&a.images).map_err(Error::usage)?;
    Ok(UpSettings {
        images,
        no_build: a.no_build,
        force: a.force,
        lock_wait,
    })
}

fn migrate(a: cli::MigrateArgs) -> Result<MigrateSettings> {
    let action = match a.action {
        None => MigrateAction::Up,
        Some(cli::MigrateAction::Status) => MigrateAction::Status,
        Some(cli::MigrateAction::Down { to }) => MigrateAction::Down { to },
    };
    let lock_wait = parse_precise_duration(&a.lock_wait).ok_or_else(|| {
        Error::usage_help(
            format!("--lock-wait: `{}` is not a duration", a.lock_wait),
            "write it like 500ms, 30s, 2m or 1h",
        )
    })?;
    if let (Some(v), false) = (a.target, action == MigrateAction::Up) {
        return Err(Error::usage(format!(
            "--target {v} applies migrations up to a version; it does not go with `migrate status` or `migrate down` (use `down --to`)"
        )));
    }
    Ok(MigrateSettings {
        action,
        accept_changed: a.accept_changed,
        lock_wait,
        backup_dir: a.backup_dir,
        keep_backups: a.keep_backups,
        target: a.target,
    })
}

/// The completion script for `shell`, generated into memory (the command writes it: a closed
/// stdout is a clean exit there).
fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "deploy-action", &mut script);
    script
}

/// A parser for `--lock-wait` values: `90`, `90s`, `5m`, `1h`, at most [`MAX_FLAG_DURATION`].
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let invalid = || format!("invalid duration {text:?}: use e.g. 90s, 5m, 1h");
    let too_long = || {
        format!(
            "invalid duration {text:?}: longer than the longest allowed ({}h)",
            MAX_FLAG_DURATION.as_secs() / 3600
        )
    };
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(invalid()),
    };
    if num.is_empty() {
        return Err(invalid());
    }
    // All digits: a number that does not fit is too long, not malformed.
    let n: u64 = num.parse().map_err(|_| too_long())?;
    match n.checked_mul(unit_secs).map(Duration::from_secs) {
        Some(d) if d <= MAX_FLAG_DURATION => Ok(d),
        _ => Err(too_long()),
    }
}

/// A parser for `migrate --lock-wait` values: `500ms`, `30s`, `2m`, `1h` or a plain number of
/// seconds (fractions too), at most [`MAX_FLAG_DURATION`].
pub fn parse_precise_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // At most the longest flag duration: beyond it `from_secs_f64` panics (or a deadline overflows).
    let max = MAX_FLAG_DURATION.as_secs_f64();
    (secs.is_finite() && (0.0..=max).contains(&secs))
        .then(|| std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plan`'s options as the command line gives them.
    fn plan_settings(args: &[&str]) -> std::result::Result<PlanSettings, String> {
        use clap::Parser;
        let cli = Cli::try_parse_from(["deploy-action", "plan"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match resolve(cli).map_err(|e| e.to_string())?.1 {
            CommandSettings::Plan(p) => Ok(p),
            other => Err(format!("not plan: {other:?}")),
        }
    }

    #[test]
    fn plan_promote_and_rollback_options_resolve() {
        assert_eq!(plan_settings(&[]).unwrap(), PlanSettings::Changes);
        assert_eq!(
            plan_settings(&["--promote"]).unwrap(),
            PlanSettings::Promote
        );
        assert_eq!(
            plan_settings(&["--rollback"]).unwrap(),
            PlanSettings::Rollback { to: None }
        );
        assert_eq!(
            plan_settings(&["--rollback", "deploy/prod/3"]).unwrap(),
            PlanSettings::Rollback {
                to: Some("deploy/prod/3".into())
            }
        );
        // A global flag after a bare --rollback is not taken as its value.
        assert_eq!(
            plan_settings(&["--rollback", "--json"]).unwrap(),
            PlanSettings::Rollback { to: None }
        );
        let both = plan_settings(&["--promote", "--rollback"]).unwrap_err();
        assert!(both.contains("cannot be used with"), "{both}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn r10_lock_wait_99999999999999999999h_is_an_error_not_a_panic_or_a_wrap() {
        let e = parse_duration("99999999999999999999h").unwrap_err();
        assert!(e.contains("longer than the longest allowed (168h)"), "{e}");
        // Fits in u64 but wraps when multiplied by 3600 (what release builds did).
        assert!(parse_duration("5124095576030432h").is_err());
        assert!(parse_duration("18446744073709551615").is_err());
        assert!(parse_duration("169h").is_err());
        assert_eq!(
            parse_duration("168h").unwrap(),
            Duration::from_secs(168 * 3600)
        );
    }

    #[test]
    fn precise_durations_parse() {
        assert_eq!(
            parse_precise_duration("90s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_precise_duration("2m"),
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(
            parse_precise_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_precise_duration("5"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(parse_precise_duration("soon"), None);
        assert_eq!(parse_precise_duration("5d"), None);
    }
}
