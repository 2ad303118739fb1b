//! The health gate's policy for one service: what a probe of its container says
//! ([`container_probe`]) and when enough probes say healthy ([`Stability`]): a stability window
//! counted from the container's start, crash loops failing at once.
//!
//! Pure: no processes, no clock (durations are passed in).

use crate::cmd::docker_engine::ContainerInfo;
use std::time::Duration;

/// What one probe saw of a service's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub container: String,
    pub restarts: u64,
    /// How long the container has been running: the host's clock minus `.State.StartedAt`.
    pub up_for: Duration,
}

/// One probe of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Ready: running (healthy, when it has a healthcheck) and the HTTP check passed.
    Good(Seen),
    /// Not yet: starting, or the HTTP check failed; try again until the deadline.
    Pending(String, Option<Seen>),
    /// Definitely failed (unhealthy, exited, restarting): stop waiting.
    Failed(String),
}

/// The gate's verdict after a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Wait,
    Unhealthy(String),
}

/// What a container's state says before any HTTP check: `Ok` when it is ready for one (running,
/// and healthy when it has a healthcheck), else the probe to report. `restarting`, `exited`,
/// `dead` and `unhealthy` fail at once: a crash loop is never waited out.
pub fn container_probe(c: &ContainerInfo, up_for: Duration) -> Result<Seen, Probe> {
    let seen = Seen {
        container: c.id.clone(),
        restarts: c.restart_count,
        up_for,
    };
    match (c.status.as_str(), c.health.as_deref()) {
        ("exited" | "dead", _) => Err(Probe::Failed(format!(
            "container {} {}{}",
            c.name,
            c.status,
            c.exit_code
                .map(|e| format!(" (exit code {e})"))
                .unwrap_or_default()
        ))),
        ("restarting", _) => Err(Probe::Failed(format!(
            "container {} is restarting (it exited; crash loop)",
            c.name
        ))),
        (_, Some("unhealthy")) => Err(Probe::Failed(format!("container {} is unhealthy", c.name))),
        ("running", Some("starting")) => {
            Err(Probe::Pending("healthcheck starting".into(), Some(seen)))
        }
        ("running", _) => Ok(seen),
        (other, _) => Err(Probe::Pending(format!("container {other}"), None)),
    }
}

/// The health gate's stability rule for one service. Healthy means: the container has run for at
/// least `window` since it started (`.State.StartedAt`, so the time `compose up` took counts),
/// with the same container id and restart count all along, and the last `passes` probes were
/// good. A container compose left alone (its id is the one from before the deploy) needs one good
/// probe: there is nothing new to watch. A new container that has already restarted, a restart
/// count that moves, or a replaced container fail at once, so a crash loop never counts as
/// success.
#[derive(Clone, Debug)]
pub struct Stability {
    pub window: Duration,
    pub passes: u32,
    /// The container the service ran before the deploy.
    before: Option<String>,
    streak: u32,
    first: Option<(String, u64)>,
}

impl Stability {
    pub fn new(window: Duration, passes: u32, before: Option<String>) -> Self {
        Stability {
            window,
            passes: passes.max(1),
            before,
            streak: 0,
            first: None,
        }
    }

    /// How much of the window a container up for `up_for` still has to run.
    pub fn remaining(&self, up_for: Duration) -> Duration {
        self.window.saturating_sub(up_for)
    }

    /// Feeds one probe and says what to do.
    pub fn observe(&mut self, probe: Probe) -> Verdict {
        let seen = match &probe {
            Probe::Failed(why) => return Verdict::Unhealthy(why.clone()),
            Probe::Good(s) => Some(s),
            Probe::Pending(_, s) => s.as_ref(),
        };
        if let Some(s) = seen {
            let fresh = self.before.as_deref() != Some(s.container.as_str());
            match &self.first {
                None if fresh && s.restarts > 0 => {
                    return Verdict::Unhealthy(format!(
                        "the new container restarted {} time(s) since it was created (crash loop)",
                        s.restarts
                    ));
                }
                None => self.first = Some((s.container.clone(), s.restarts)),
                Some((c, _)) if *c != s.container => {
                    return Verdict::Unhealthy(
                        "the container was replaced during the health gate".into(),
                    );
                }
                Some((_, r)) if *r != s.restarts => {
                    return Verdict::Unhealthy(format!(
                        "the container restarted during the health gate ({r} → {} restarts; crash loop)",
                        s.restarts
                    ));
                }
                Some(_) => {}
            }
        }
        match probe {
            Probe::Good(s) => {
                self.streak += 1;
                if self.before.as_deref() == Some(s.container.as_str()) {
                    // compose left the container alone: no new start to watch.
                    return Verdict::Healthy;
                }
                if self.streak >= self.passes && s.up_for >= self.window {
                    Verdict::Healthy
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                self.streak = 0;
                Verdict::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(c: &str, restarts: u64, up: u64) -> Probe {
        Probe::Good(Seen {
            container: c.into(),
            restarts,
            up_for: Duration::from_secs(up),
        })
    }

    #[test]
    fn stability_counts_the_window_from_the_container_start() {
        let mut g = Stability::new(Duration::from_secs(5), 2, Some("old".into()));
        assert_eq!(
            g.observe(Probe::Pending("healthcheck starting".into(), None)),
            Verdict::Wait
        );
        assert_eq!(g.observe(good("new", 0, 1)), Verdict::Wait);
        assert_eq!(g.remaining(Duration::from_secs(1)), Duration::from_secs(4));
        assert_eq!(g.observe(good("new", 0, 4)), Verdict::Wait, "4 s < 5 s");
        assert_eq!(g.observe(good("new", 0, 5)), Verdict::Healthy);
        // A container already up longer than the window (compose took its time) needs the
        // passes only.
        let mut late = Stability::new(Duration::from_secs(5), 2, None);
        assert_eq!(late.observe(good("new", 0, 9)), Verdict::Wait);
        assert_eq!(late.observe(good("new", 0, 9)), Verdict::Healthy);
        // A pending probe breaks the streak.
        let mut flaky = Stability::new(Duration::from_secs(5), 2, None);
        flaky.observe(good("new", 0, 6));
        flaky.observe(Probe::Pending("GET /: status 502".into(), None));
        assert_eq!(flaky.observe(good("new", 0, 7)), Verdict::Wait);
        assert_eq!(flaky.observe(good("new", 0, 7)), Verdict::Healthy);
    }

    #[test]
    fn a_container_compose_left_alone_skips_the_window() {
        let mut g = Stability::new(Duration::from_secs(5), 2, Some("same".into()));
        // Restarts from before the deploy are not this deploy's doing.
        assert_eq!(g.observe(good("same", 3, 0)), Verdict::Healthy);
    }

    #[test]
    fn crash_loops_fail_at_once() {
        let s = Duration::from_secs;
        // The restart count moves during the gate.
        let mut g = Stability::new(s(5), 2, Some("old".into()));
        assert_eq!(g.observe(good("new", 0, 1)), Verdict::Wait);
        assert!(
            matches!(g.observe(good("new", 1, 0)), Verdict::Unhealthy(w) if w.contains("0 → 1 restarts")),
        );
        // The new container restarted before the first probe saw it.
        let mut g = Stability::new(s(5), 2, Some("old".into()));
        assert!(
            matches!(g.observe(Probe::Pending("healthcheck starting".into(), Some(Seen { container: "new".into(), restarts: 2, up_for: s(0) }))), Verdict::Unhealthy(w) if w.contains("restarted 2 time(s)")),
        );
        // Replaced during the gate.
        let mut g = Stability::new(s(5), 2, None);
        g.observe(good("a", 0, 1));
        assert!(
            matches!(g.observe(good("b", 0, 1)), Verdict::Unhealthy(w) if w.contains("replaced"))
        );
        // Restarting, exited and unhealthy containers fail without waiting.
        let c = |status: &str, health: Option<&str>| ContainerInfo {
            id: "c1".into(),
            name: "shop-web-1".into(),
            status: status.into(),
            health: health.map(String::from),
            exit_code: Some(3),
            ..Default::default()
        };
        for (status, health, want) in [
            ("restarting", None, "crash loop"),
            ("exited", None, "exit code 3"),
            ("running", Some("unhealthy"), "unhealthy"),
        ] {
            match container_probe(&c(status, health), s(1)) {
                Err(Probe::Failed(w)) => assert!(w.contains(want), "{w}"),
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(
            container_probe(&c("running", Some("starting")), s(1)),
            Err(Probe::Pending(_, Some(_)))
        ));
        assert!(container_probe(&c("running", Some("healthy")), s(1)).is_ok());
        assert!(container_probe(&c("running", None), s(1)).is_ok());
        let mut failed = Stability::new(s(5), 2, None);
        assert_eq!(
            failed.observe(Probe::Failed("unhealthy".into())),
            Verdict::Unhealthy("unhealthy".into())
        );
    }
}
