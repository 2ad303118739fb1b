//! The choices made from the records: the current release, which releases can be gone back to,
//! the rollback target (by default or as `--to` names it), and what each unit runs and since
//! which release. Pure: records in, decisions out.

use super::status_word;
use crate::state::{ReleaseRecord, ReleaseStatus};

/// The current release: the newest one that is live.
pub fn current(releases: &[ReleaseRecord]) -> Option<&ReleaseRecord> {
    releases
        .iter()
        .filter(|r| r.status.0 == ReleaseStatus::Live)
        .max_by_key(|r| r.number)
}

/// Whether a release can be gone back to: it went live once (and may since have been superseded)
/// and was never abandoned.
pub fn is_good(r: &ReleaseRecord) -> bool {
    matches!(r.status.0, ReleaseStatus::Live | ReleaseStatus::Superseded)
}

/// What `--to` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Number(u64),
    /// `deploy/<env>/<n>`.
    Tag(String),
    /// A git commit (at least 7 hex digits, a prefix is enough).
    Sha(String),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("--to needs a release number, a deploy/<env>/<n> tag or a commit".into());
        }
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Selector::Number(n));
        }
        if t.starts_with("deploy/") {
            return Ok(Selector::Tag(t.to_string()));
        }
        if t.len() >= 7 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Selector::Sha(t.to_ascii_lowercase()));
        }
        Err(format!(
            "--to {t}: not a release number, a deploy/<env>/<n> tag or a commit sha (7+ hex digits)"
        ))
    }
}

/// Why no rollback target could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("nothing to roll back to: {0}")]
    Nothing(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unusable(String),
}

/// The release to roll back to: by default the newest good release older than the current one
/// (releases marked bad or that failed are skipped); with `to`, the release it names, which must
/// have gone live and not be marked bad.
pub fn rollback_target<'a>(
    env: &str,
    releases: &'a [ReleaseRecord],
    to: Option<&Selector>,
) -> Result<&'a ReleaseRecord, TargetError> {
    let cur = current(releases);
    let Some(sel) = to else {
        let Some(cur) = cur else {
            return Err(TargetError::Nothing(format!(
                "environment `{env}` has no live release"
            )));
        };
        return releases
            .iter()
            .filter(|r| r.number < cur.number && is_good(r))
            .max_by_key(|r| r.number)
            .ok_or_else(|| {
                TargetError::Nothing(format!(
                    "release {} is the only good release of `{env}`",
                    cur.number
                ))
            });
    };
    let found = match sel {
        Selector::Number(n) => releases.iter().find(|r| r.number == *n),
        Selector::Tag(tag) => {
            let prefix = format!("deploy/{env}/");
            let Some(n) = tag
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<u64>().ok())
            else {
                return Err(TargetError::NotFound(format!(
                    "--to {tag}: tags of `{env}` are named {prefix}<n>"
                )));
            };
            releases.iter().find(|r| r.number == n)
        }
        Selector::Sha(sha) => releases
            .iter()
            .filter(|r| is_good(r) && r.sha.to_ascii_lowercase().starts_with(sha.as_str()))
            .max_by_key(|r| r.number),
    };
    let Some(r) = found else {
        return Err(TargetError::NotFound(format!(
            "--to {}: no such release of `{env}`",
            match sel {
                Selector::Number(n) => n.to_string(),
                Selector::Tag(t) | Selector::Sha(t) => t.clone(),
            }
        )));
    };
    if !is_good(r) {
        return Err(TargetError::Unusable(format!(
            "release {} of `{env}` is {}; only releases that went live and are not marked bad can be rolled back to",
            r.number,
            status_word(r.status.0)
        )));
    }
    if cur.map(|c| c.number) == Some(r.number) {
        return Err(TargetError::Nothing(format!(
            "release {} is already the current release of `{env}`",
            r.number
        )));
    }
    Ok(r)
}

/// What each unit of an environment runs, and since which release.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Units {
    /// compose service → (the release since which it runs this image, state).
    pub services: std::collections::BTreeMap<String, (u64, crate::state::ServiceState)>,
    /// site → (since release, Pages deployment).
    pub pages: std::collections::BTreeMap<String, (u64, crate::state::PagesState)>,
    /// (since release, migration version).
    pub migration: Option<(u64, String)>,
}

/// Each unit's version after the newest good release: every unit is looked up on its own, newest
/// good release first (a record written before records carried the whole state may name only the
/// units it changed), and dated back to the oldest release in the unbroken run of good releases
/// that show the same version.
pub fn unit_versions(releases: &[ReleaseRecord]) -> Units {
    state_at(releases, u64::MAX)
}

/// [`unit_versions`] as of release `n`: only good releases numbered `n` or lower count.
pub fn state_at(releases: &[ReleaseRecord], n: u64) -> Units {
    let mut good: Vec<&ReleaseRecord> = releases
        .iter()
        .filter(|r| is_good(r) && r.number <= n)
        .collect();
    good.sort_by_key(|r| std::cmp::Reverse(r.number));
    let mut units = Units::default();
    // Newest first: the first release naming a unit sets its version; older ones naming the same
    // version move its "since" back, until one names another version.
    let mut settled: std::collections::BTreeSet<String> = Default::default();
    for r in good {
        for (name, s) in &r.services {
            let key = format!("s:{name}");
            match units.services.get_mut(name) {
                None => {
                    units.services.insert(name.clone(), (r.number, s.clone()));
                }
                Some(e) if !settled.contains(&key) && same_image(&e.1, s) => e.0 = r.number,
                Some(_) => {
                    settled.insert(key);
                }
            }
        }
        for (name, p) in &r.pages {
            let key = format!("p:{name}");
            match units.pages.get_mut(name) {
                None => {
                    units.pages.insert(name.clone(), (r.number, p.clone()));
                }
                Some(e) if !settled.contains(&key) && e.1.deployment_id == p.deployment_id => {
                    e.0 = r.number
                }
                Some(_) => {
                    settled.insert(key);
                }
            }
        }
        if let Some(v) = &r.migration_version {
            match &mut units.migration {
                None => units.migration = Some((r.number, v.clone())),
                Some(e) if !settled.contains("m") && e.1 == *v => e.0 = r.number,
                Some(_) => {
                    settled.insert("m".into());
                }
            }
        }
    }
    units
}

/// Whether two service states run the same image: by repo digest when both have one (the same
/// content, whatever repository or host it came through), else by id when both know it, else by
/// reference.
pub fn same_image(a: &crate::state::ServiceState, b: &crate::state::ServiceState) -> bool {
    use crate::cmd::docker_engine::digest_part;
    if let (Some(x), Some(y)) = (&a.digest, &b.digest)
        && digest_part(x) == digest_part(y)
    {
        return true;
    }
    if !a.image_id.is_empty() && !b.image_id.is_empty() {
        a.image_id == b.image_id
    } else {
        a.image == b.image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::next_number;
    use crate::ledger::tests::rel;

    #[test]
    fn the_same_digest_is_the_same_image_whatever_the_repository_or_id() {
        use crate::state::ServiceState;
        let st = |image: &str, id: &str, digest: Option<&str>| ServiceState {
            image: image.into(),
            image_id: id.into(),
            digest: digest.map(String::from),
            ..Default::default()
        };
        let a = st("r/web:latest", "sha256:11", Some("r/web@sha256:aa"));
        assert!(same_image(
            &a,
            &st("r/web@sha256:aa", "sha256:99", Some("mirror/web@sha256:aa"))
        ));
        // A moved tag: same reference, another digest and id.
        assert!(!same_image(
            &a,
            &st("r/web:latest", "sha256:22", Some("r/web@sha256:bb"))
        ));
        assert!(same_image(&a, &st("other:1", "sha256:11", None)));
        assert!(same_image(&st("x:1", "", None), &st("x:1", "", None)));
    }

    #[test]
    fn current_is_the_newest_live_release() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a"),
            rel(2, Live, "b"),
            rel(3, Failed, "c"),
            rel(4, RolledBack, "d"),
        ];
        assert_eq!(current(&rs).unwrap().number, 2);
        assert_eq!(next_number(&rs), 5);
        assert_eq!(current(&[]), None);
        assert_eq!(next_number(&[]), 1);
    }

    #[test]
    fn default_target_skips_bad_and_failed_releases() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a1a1a1a1"),
            rel(2, Bad, "b2b2b2b2"),
            rel(3, Failed, "c3c3c3c3"),
            rel(4, Live, "d4d4d4d4"),
            rel(5, RolledBack, "e5e5e5e5"),
        ];
        assert_eq!(rollback_target("production", &rs, None).unwrap().number, 1);
    }

    #[test]
    fn nothing_to_roll_back_to_is_a_clear_error() {
        use ReleaseStatus::*;
        let e = rollback_target("production", &[], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to roll back to: environment `production` has no live release"
        );
        let rs = vec![rel(1, Bad, "a"), rel(2, Live, "b")];
        let e = rollback_target("production", &rs, None).unwrap_err();
        assert!(matches!(e, TargetError::Nothing(_)), "{e}");
        assert!(e.to_string().contains("only good release"), "{e}");
    }

    #[test]
    fn explicit_targets_by_number_tag_and_sha() {
        use ReleaseStatus::*;
        let rs = vec![
            rel(1, Superseded, "a1a1a1a1ff"),
            rel(2, Superseded, "b2b2b2b2ff"),
            rel(3, Bad, "c3c3c3c3ff"),
            rel(4, Live, "d4d4d4d4ff"),
        ];
        let to = |s: &str| Selector::parse(s).unwrap();
        assert_eq!(
            rollback_target("production", &rs, Some(&to("1")))
                .unwrap()
                .number,
            1
        );
        assert_eq!(
            rollback_target("production", &rs, Some(&to("deploy/production/2")))
                .unwrap()
                .number,
            2
        );
        assert_eq!(
            rollback_target("production", &rs, Some(&to("B2B2B2B")))
                .unwrap()
                .number,
            2
        );
        let e = rollback_target("production", &rs, Some(&to("3"))).unwrap_err();
        assert!(
            e.to_string().contains("release 3 of `production` is bad"),
            "{e}"
        );
        let e = rollback_target("production", &rs, Some(&to("9"))).unwrap_err();
        assert_eq!(e.to_string(), "--to 9: no such release of `production`");
        let e = rollback_target("production", &rs, Some(&to("deploy/staging/1"))).unwrap_err();
        assert!(e.to_string().contains("deploy/production/<n>"), "{e}");
        let e = rollback_target("production", &rs, Some(&to("4"))).unwrap_err();
        assert!(e.to_string().contains("already the current release"), "{e}");
        assert!(Selector::parse("main").is_err());
        assert!(Selector::parse("").is_err());
    }

    #[test]
    fn unit_versions_come_from_the_newest_good_release_naming_each_unit() {
        use ReleaseStatus::*;
        let mut r1 = rel(1, Superseded, "a");
        r1.services.insert(
            "api".into(),
            crate::state::ServiceState {
                image: "api:1".into(),
                ..Default::default()
            },
        );
        r1.services.insert(
            "web".into(),
            crate::state::ServiceState {
                image: "web:1".into(),
                ..Default::default()
            },
        );
        r1.migration_version = Some("0001".into());
        let mut r2 = rel(2, Live, "b");
        r2.services.insert(
            "web".into(),
            crate::state::ServiceState {
                image: "web:2".into(),
                ..Default::default()
            },
        );
        let mut r3 = rel(3, Bad, "c");
        r3.services.insert(
            "api".into(),
            crate::state::ServiceState {
                image: "api:3".into(),
                ..Default::default()
            },
        );
        let u = unit_versions(&[r1, r2, r3]);
        assert_eq!(u.services["web"].1.image, "web:2");
        assert_eq!(
            u.services["api"],
            (
                1,
                crate::state::ServiceState {
                    image: "api:1".into(),
                    ..Default::default()
                }
            )
        );
        assert_eq!(u.migration, Some((1, "0001".into())));
    }
}
