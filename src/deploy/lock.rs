//! The environment lock on a host: `<dir>/.deploy-action/lock/` taken by an atomic `mkdir`, with
//! `owner.json` inside. A held lock is reported with its holder (exit 4); `--lock-wait` polls; a lock
//! that looks stale is reported as such and never broken silently.

use super::{cancel, clock};
use crate::cmd::docker_engine as de;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::manifest::Host;
use crate::report::Report;
use crate::state::{LockOwner, StatePaths};
use std::time::{Duration, Instant};

/// A lock older than this is reported as possibly stale.
pub const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

/// The holder of the lock, if it is held (`None` when free).
pub fn status(ex: &mut dyn Executor, paths: &StatePaths) -> Result<Option<LockOwner>> {
    let held = ex
        .capture(&crate::cmd::Cmd::new("test").arg("-d").arg(paths.lock_dir()))?
        .success();
    if !held {
        return Ok(None);
    }
    let out = ex.capture(&de::cat(&paths.lock_owner()))?;
    Ok(Some(parse_owner(&out.stdout)))
}

/// The holder in `owner.json`, or a placeholder saying it is missing or unreadable.
pub fn parse_owner(bytes: &[u8]) -> LockOwner {
    serde_json::from_slice(bytes).unwrap_or_else(|_| LockOwner {
        run_url: "(owner.json missing or unreadable)".into(),
        actor: "?".into(),
        sha: "?".into(),
        started_at: "?".into(),
        command: String::new(),
        hostname: String::new(),
        pid: 0,
    })
}

/// Why a held lock may be stale, if it looks so.
pub fn staleness(owner: &LockOwner) -> Option<String> {
    if !owner.hostname.is_empty()
        && owner.hostname == this_hostname()
        && owner.pid != 0
        && !std::path::Path::new(&format!("/proc/{}", owner.pid)).exists()
    {
        return Some(format!(
            "process {} on this machine ({}) is gone",
            owner.pid, owner.hostname
        ));
    }
    match clock::age(&owner.started_at) {
        Some(age) if age > STALE_AFTER => Some(format!("taken {} minutes ago", age.as_secs() / 60)),
        _ => None,
    }
}

/// One line about the holder.
pub fn describe(o: &LockOwner) -> String {
    let mut s = format!(
        "held by {} since {} (run {}, sha {}",
        o.actor, o.started_at, o.run_url, o.sha
    );
    if !o.command.is_empty() {
        s.push_str(&format!(", command {}", o.command));
    }
    if !o.hostname.is_empty() {
        s.push_str(&format!(", host {} pid {}", o.hostname, o.pid));
    }
    s.push(')');
    if let Some(why) = staleness(o) {
        s.push_str(&format!(
            "; possibly stale: {why} — if no deploy is running, release it with `deploy-action lock release`"
        ));
    }
    s
}

/// Takes the lock, waiting up to `wait`; a held lock after that is exit 4 with the holder.
pub fn acquire(
    ex: &mut dyn Executor,
    report: &Report,
    host: &Host,
    paths: &StatePaths,
    owner: &LockOwner,
    env: &str,
    wait: Option<Duration>,
) -> Result<()> {
    let start = Instant::now();
    let mut announced = false;
    let out = ex.capture(&de::mkdir_p(&paths.root))?;
    if !out.success() {
        return Err(Error::StageFailed(format!(
            "{}: cannot create {}: {}",
            host.label(),
            paths.root,
            out.stderr_tail(3)
        )));
    }
    loop {
        let out = ex.capture(&de::mkdir_lock(&paths.lock_dir()))?;
        if out.success() {
            let text = serde_json::to_string_pretty(owner).map_err(|e| Error::Other(e.into()))?;
            if let Err(e) = ex.upload(&paths.lock_owner(), text.as_bytes(), 0o644) {
                let _ = ex.capture(&de::rm_rf(&paths.lock_dir()));
                return Err(e.into());
            }
            return Ok(());
        }
        let holder = status(ex, paths)?;
        let Some(holder) = holder else {
            return Err(Error::StageFailed(format!(
                "{}: cannot take the lock {}: {}",
                host.label(),
                paths.lock_dir(),
                out.stderr_tail(3)
            )));
        };
        let waited = start.elapsed();
        match wait {
            Some(w) if waited < w => {
                if !announced {
                    report.info(&format!(
                        "{}: the {env} lock is {}; waiting up to {}s",
                        host.label(),
                        describe(&holder),
                        w.as_secs()
                    ));
                    announced = true;
                }
                if cancel::sleep(Duration::from_millis(1000).min(w - waited)) {
                    return Err(Error::StageFailed(format!(
                        "{}: {} while waiting for the {env} lock",
                        host.label(),
                        cancel::reason()
                    )));
                }
            }
            _ => {
                return Err(Error::LockHeld(format!(
                    "{}: the {env} lock is {}",
                    host.label(),
                    describe(&holder)
                )));
            }
        }
    }
}

/// Releases the lock (removes the directory).
pub fn release(ex: &mut dyn Executor, paths: &StatePaths) -> Result<()> {
    let out = ex.capture(&de::rm_rf(&paths.lock_dir()))?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::StageFailed(out.stderr_tail(3)))
    }
}

/// This machine's host name.
pub fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A parser for `--lock-wait` values: `90`, `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 90s, 5m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration {text:?}: use e.g. 90s, 5m, 1h")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(host: &str, pid: u32, at: &str) -> LockOwner {
        LockOwner {
            run_url: "local".into(),
            actor: "alice".into(),
            sha: "abc".into(),
            started_at: at.into(),
            command: "up".into(),
            hostname: host.into(),
            pid,
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn staleness_is_reported_not_acted_on() {
        let now = clock::now_rfc3339();
        let me = this_hostname();
        assert_eq!(staleness(&owner(&me, std::process::id(), &now)), None);
        assert!(
            staleness(&owner(&me, u32::MAX - 1, &now))
                .unwrap()
                .contains("is gone")
        );
        assert!(
            staleness(&owner("elsewhere", 1, "2020-01-01T00:00:00Z"))
                .unwrap()
                .contains("minutes ago")
        );
        let d = describe(&owner("elsewhere", 1, "2020-01-01T00:00:00Z"));
        assert!(
            d.contains("held by alice") && d.contains("possibly stale"),
            "{d}"
        );
    }
}
