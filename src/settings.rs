//! Resolved settings: command line + environment, validated, no clap types past this point.

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::manifest::{self, Environment, Manifest};
// The manifest is loaded by `context::Ctx::load_manifest`, which also registers its secrets.
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
