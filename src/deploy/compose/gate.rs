//! The health gate: the selected services probed together until each is healthy, has failed, or
//! its deadline (timeout + stability window) passed — one [`poll`] with the probe as its check.
//! A probe is one round trip: the services' containers (state, restarts, start time on the host's
//! clock) and the manifest's HTTP checks, run on the host, of the services whose container was
//! ready at the previous probe (a service that just became ready gets its first check in a second
//! round trip). [`Book`] is the pure part: what the probes mean for each pending service, and how
//! long to nap (the first stability window to end, within [`PROBE_INTERVAL`]..[`MAX_NAP`]).
//!
//! A signal stops the gate: the services still pending fail with the signal's name. On a
//! recording executor (a dry run) the gate records its probe and assumes a pass.

use super::{Containers, HostDeploy, by_service};
use crate::cancel;
use crate::clock;
use crate::cmd::docker_engine::{self as de, ContainerInfo, Script, Section};
use crate::engine::poll::{Backoff, Check, Polled, RealClock, poll};
use crate::engine::runner::RunState;
use crate::error::Result;
use crate::manifest::Health;
use crate::plan::up::action::GateCheck;
use crate::plan::up::{Probe, Seen, Stability, Verdict, container_probe};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Consecutive good probes the gate needs for a new container.
pub const STABLE_PASSES: u32 = 2;
/// Time between gate probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// The longest nap between probes while services only wait for their window.
pub const MAX_NAP: Duration = Duration::from_secs(1);
/// Seconds an HTTP health check may take.
pub const HTTP_TIMEOUT_SECS: u64 = 3;
/// Log lines shown for a failing container.
pub const LOG_LINES: u32 = 50;

/// What the health gate found.
#[derive(Clone, Debug, Default)]
pub struct GateResult {
    /// Failed services with the reason.
    pub failed: BTreeMap<String, String>,
    /// A signal stopped the gate; the services still pending are in `failed`.
    pub cancelled: bool,
    /// The last container seen per service.
    pub last: Containers,
}

/// One pending service.
struct Pending {
    stable: Stability,
    deadline: Duration,
    last: String,
}

/// The gate's account of the pending services (pure: probes and elapsed time in, verdicts out).
pub struct Book {
    pending: BTreeMap<String, Pending>,
    /// Services whose container was ready for an HTTP check at the last probe.
    ready: BTreeSet<String>,
    pub result: GateResult,
}

impl Book {
    /// `before`: the containers before the change (a container compose left alone skips the
    /// window); `None`: every container is new to the gate.
    pub fn new(checks: &[GateCheck], before: Option<&Containers>) -> Book {
        let pending = checks
            .iter()
            .map(|c| {
                let window = Duration::from_millis(c.window_ms);
                let before_id = before.and_then(|b| b.get(&c.service)).map(|x| x.id.clone());
                let p = Pending {
                    stable: Stability::new(window, STABLE_PASSES, before_id),
                    deadline: Duration::from_secs(c.timeout_secs) + window,
                    last: "no probe yet".to_string(),
                };
                (c.service.clone(), p)
            })
            .collect();
        Book {
            pending,
            ready: BTreeSet::new(),
            result: GateResult::default(),
        }
    }

    pub fn pending(&self) -> Vec<String> {
        self.pending.keys().cloned().collect()
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The longest deadline: the poll's.
    pub fn deadline(&self) -> Duration {
        self.pending
            .values()
            .map(|p| p.deadline)
            .max()
            .unwrap_or_default()
    }

    /// Whether `service` gets its HTTP check in the probe's round trip.
    pub fn ready(&self, service: &str) -> bool {
        self.ready.contains(service)
    }

    /// Feeds one round of probes seen at `elapsed`; returns the services that became healthy and
    /// how long to wait before the next probe.
    pub fn feed(
        &mut self,
        probes: BTreeMap<String, Probe>,
        elapsed: Duration,
    ) -> (Vec<String>, Duration) {
        self.ready = probes
            .iter()
            .filter(|(_, p)| matches!(p, Probe::Good(_) | Probe::Pending(_, Some(_))))
            .map(|(s, _)| s.clone())
            .collect();
        let mut healthy = Vec::new();
        // Every pending service that only waits for its window: when the first one ends.
        let mut nap: Option<Duration> = Some(MAX_NAP);
        for (s, probe) in probes {
            let Some(p) = self.pending.get_mut(&s) else {
                continue;
            };
            let up_for = match &probe {
                Probe::Good(seen) => Some(seen.up_for),
                _ => None,
            };
            if let Probe::Pending(why, _) | Probe::Failed(why) = &probe {
                p.last = why.clone();
            }
            match p.stable.observe(probe) {
                Verdict::Healthy => {
                    healthy.push(s.clone());
                    self.pending.remove(&s);
                }
                Verdict::Unhealthy(why) => {
                    self.result.failed.insert(s.clone(), why);
                    self.pending.remove(&s);
                }
                Verdict::Wait if elapsed >= p.deadline => {
                    let why = format!("not healthy after {}s: {}", p.deadline.as_secs(), p.last);
                    self.result.failed.insert(s.clone(), why);
                    self.pending.remove(&s);
                }
                Verdict::Wait => {
                    nap = match (nap, up_for) {
                        (Some(n), Some(u)) => Some(n.min(p.stable.remaining(u))),
                        _ => None,
                    };
                }
            }
        }
        (healthy, nap.unwrap_or(PROBE_INTERVAL).max(PROBE_INTERVAL))
    }

    /// The poll ended without every service deciding: the rest fail, with `why` (a signal) or
    /// as timed out.
    pub fn stop(&mut self, signal: Option<String>) {
        for (s, p) in std::mem::take(&mut self.pending) {
            let why = match &signal {
                Some(reason) => format!(
                    "{reason} while waiting for it to become healthy (last probe: {})",
                    p.last
                ),
                None => format!("not healthy after {}s: {}", p.deadline.as_secs(), p.last),
            };
            self.result.failed.insert(s, why);
        }
        self.result.cancelled = signal.is_some();
    }
}

/// What one probe says of each service (pure). `seen`: the host's clock and the containers, or
/// why the probe failed; `http`: the HTTP checks that ran in the same round trip; returns the
/// probes, and the services whose HTTP check is now due (their container just became ready).
pub struct Round<'a> {
    pub names: &'a [String],
    pub compose_failed: bool,
    pub client: &'a str,
    pub health: &'a dyn Fn(&str) -> Option<Health>,
}

/// A service whose container is ready and whose HTTP check has not run in this round trip.
pub type HttpDue = (String, Seen, Health);

impl Round<'_> {
    #[allow(clippy::type_complexity)]
    pub fn probes(
        &self,
        seen: std::result::Result<(Option<f64>, Vec<ContainerInfo>), String>,
        http: &BTreeMap<String, Section>,
        stderr: &str,
        first_seen: &mut BTreeMap<String, Instant>,
        last: &mut Containers,
    ) -> (BTreeMap<String, Probe>, Vec<HttpDue>) {
        let mut probes = BTreeMap::new();
        let mut due = Vec::new();
        let (host_now, list) = match seen {
            Err(e) => {
                for s in self.names {
                    probes.insert(s.clone(), Probe::Pending(e.clone(), None));
                }
                return (probes, due);
            }
            Ok(x) => x,
        };
        let by = by_service(list);
        for s in self.names {
            let probe = match by.get(s) {
                None if self.compose_failed => {
                    Probe::Failed(format!("compose up failed and {s} has no container"))
                }
                None => Probe::Pending("no container yet".into(), None),
                Some(c) if self.compose_failed && c.status == "created" => Probe::Failed(format!(
                    "compose up failed and container {} was never started",
                    c.name
                )),
                Some(c) => {
                    last.insert(s.clone(), c.clone());
                    let up_for = match (host_now, clock::parse_unix_f64(&c.started_at)) {
                        (Some(now), Some(at)) => Duration::from_secs_f64((now - at).max(0.0)),
                        _ => first_seen
                            .entry(c.id.clone())
                            .or_insert_with(Instant::now)
                            .elapsed(),
                    };
                    match container_probe(c, up_for) {
                        Err(p) => p,
                        Ok(seen) => match (self.health)(s).filter(|h| h.url.is_some()) {
                            None => Probe::Good(seen),
                            Some(h) => match http.get(&format!("http:{s}")) {
                                Some(sec) => http_verdict(self.client, &h, sec, stderr, seen),
                                None => {
                                    due.push((s.clone(), seen, h));
                                    continue;
                                }
                            },
                        },
                    }
                }
            };
            probes.insert(s.clone(), probe);
        }
        (probes, due)
    }
}

/// The probe an HTTP check's answer gives.
pub fn http_verdict(client: &str, h: &Health, sec: &Section, stderr: &str, seen: Seen) -> Probe {
    let url = h.url.as_deref().unwrap_or_default();
    let (status, body) = if client == "curl" {
        match de::parse_curl(&sec.stdout) {
            Some(sb) => sb,
            None => {
                return Probe::Pending(format!("GET {url}: {stderr}"), Some(seen));
            }
        }
    } else if sec.success() {
        (200, sec.stdout.clone())
    } else {
        return Probe::Pending(format!("GET {url}: {stderr}"), Some(seen));
    };
    if status != h.expect_status {
        return Probe::Pending(
            format!("GET {url}: status {status}, expected {}", h.expect_status),
            Some(seen),
        );
    }
    if let Some(want) = &h.contains
        && !body.contains(want.as_str())
    {
        return Probe::Pending(format!("GET {url}: body lacks {want:?}"), Some(seen));
    }
    Probe::Good(seen)
}

/// The gate step after `compose up`: the gate of the selected services, then (after a signal)
/// every service this run changed counts as failed; the failures are shown and handed to the
/// runner's state for the rollback branch's guard.
pub fn perform(d: &mut HostDeploy, checks: &[GateCheck], state: &mut RunState) -> Result<()> {
    if d.ex.records() {
        let _ =
            d.ex.capture(&de::probe_services(&d.compose.project, &d.selected));
        state.gate_passed.extend(d.selected.iter().cloned());
        return Ok(());
    }
    if d.run.cancelled_before_up {
        return Ok(());
    }
    let client = d.state.http_client.clone();
    let before = d.state.before.clone();
    let gate = run(d, checks, Some(&before), d.run.compose_status != 0, &client);
    let mut failed = gate.failed.clone();
    for s in &d.selected {
        let text = match failed.get(s) {
            Some(why) => format!("failed: {why}"),
            None => "healthy".into(),
        };
        d.run.health_text.insert(s.clone(), text);
    }
    let status = d.run.compose_status;
    if status != 0 && failed.is_empty() {
        let note = format!(
            "compose up exited {status}, but every selected service passed the health gate"
        );
        d.hc.report.warn(&format!("{}: {note}", d.label()));
        if let Some(r) = d.run.record.as_mut() {
            r.notes.push(note);
        }
    }
    if gate.cancelled {
        for s in changed(&d.selected, &before, &gate.last) {
            failed
                .entry(s)
                .or_insert_with(|| format!("{} during the health gate", cancel::reason()));
        }
    } else {
        for s in failed.keys() {
            show_failure(d, s, &gate.last);
        }
    }
    state.gate_failed.extend(failed.keys().cloned());
    state.gate_passed.extend(
        d.selected
            .iter()
            .filter(|s| !failed.contains_key(*s))
            .cloned(),
    );
    d.run.failed = failed;
    d.run.gate = gate;
    Ok(())
}

/// The services whose container this run replaced (or whose container is unknown).
pub fn changed(selected: &[String], before: &Containers, last: &Containers) -> Vec<String> {
    selected
        .iter()
        .filter(|s| match (before.get(*s), last.get(*s)) {
            (Some(b), Some(now)) => b.id != now.id,
            _ => true,
        })
        .cloned()
        .collect()
}

/// The gate of `checks` (see the module header). `compose_failed`: `up` failed, so a service
/// with no started container has failed.
pub fn run(
    d: &mut HostDeploy,
    checks: &[GateCheck],
    before: Option<&Containers>,
    compose_failed: bool,
    client: &str,
) -> GateResult {
    let label = d.label();
    let names: Vec<String> = checks.iter().map(|c| c.service.clone()).collect();
    d.hc.report.info(&format!(
        "{label}: health gate: {} (stability window {}, timeout {})",
        names.join(", "),
        checks
            .iter()
            .map(|c| format!("{} {:.1}s", c.service, c.window_ms as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(", "),
        checks
            .iter()
            .map(|c| format!("{} {}s", c.service, c.timeout_secs))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    let mut book = Book::new(checks, before);
    let start = Instant::now();
    let deadline = start + book.deadline();
    // Fallback clock (the host's `date` failed): when the gate first saw each container.
    let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
    let report = d.hc.report;
    let polled = poll(
        &RealClock,
        deadline,
        Backoff::fixed(PROBE_INTERVAL),
        &|| cancel::requested().is_some(),
        &mut |_| {
            let (probes, last) = probe(d, &book, compose_failed, client, &mut first_seen);
            book.result.last.extend(last);
            let (healthy, nap) = book.feed(probes, start.elapsed());
            for s in healthy {
                report.info(&format!("{label}: {s} is healthy"));
            }
            if book.is_done() {
                Check::Done(())
            } else {
                Check::After(nap)
            }
        },
    );
    match polled {
        Polled::Done(()) => {}
        Polled::Cancelled => book.stop(Some(cancel::reason())),
        Polled::TimedOut => book.stop(None),
    }
    book.result
}

/// One probe round: the containers and the HTTP checks that are due, then (a second round trip)
/// the first HTTP checks of the services that just became ready.
fn probe(
    d: &mut HostDeploy,
    book: &Book,
    compose_failed: bool,
    client: &str,
    first_seen: &mut BTreeMap<String, Instant>,
) -> (BTreeMap<String, Probe>, Containers) {
    let names = book.pending();
    let m = d.hc.manifest;
    let health = move |s: &str| health_of(m, s);
    let mut script = Script::new();
    script.run("probe", &de::probe_services(&d.compose.project, &names));
    if client != "none" {
        for s in names.iter().filter(|s| book.ready(s)) {
            if let Some(url) = health(s).and_then(|h| h.url) {
                script.run(
                    &format!("http:{s}"),
                    &de::http_get(client, &url, HTTP_TIMEOUT_SECS),
                );
            }
        }
    }
    let ran = d.read_script(&script);
    let (stderr, secs) = match &ran {
        Ok(r) => (r.out.stderr_tail(2), r.secs.clone()),
        Err(_) => (String::new(), BTreeMap::new()),
    };
    let seen = match (&ran, secs.get("probe")) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), Some(p)) if p.success() => de::parse_probe(&p.stdout),
        (Ok(_), Some(p)) => Err(format!(
            "the container probe failed (exit {}): {stderr}",
            p.status
        )),
        (Ok(_), None) => Err(format!("the container probe did not run: {stderr}")),
    };
    let round = Round {
        names: &names,
        compose_failed,
        client,
        health: &health,
    };
    let mut last = Containers::new();
    let (mut probes, due) = round.probes(seen, &secs, &stderr, first_seen, &mut last);
    if !due.is_empty() {
        probes.extend(http_checks(d, client, due));
    }
    (probes, last)
}

/// The `health:` of a compose service.
fn health_of(m: &crate::manifest::Manifest, compose_service: &str) -> Option<Health> {
    m.services
        .values()
        .find(|s| s.compose_service == compose_service)
        .and_then(|s| s.health.clone())
}

/// The HTTP checks that are due, run on the host in one round trip.
fn http_checks(d: &mut HostDeploy, client: &str, due: Vec<HttpDue>) -> BTreeMap<String, Probe> {
    let mut out = BTreeMap::new();
    if client == "none" {
        for (s, _, _) in due {
            let why = "neither curl nor wget is installed on the host for the health check";
            out.insert(s, Probe::Failed(why.into()));
        }
        return out;
    }
    let mut script = Script::new();
    for (i, (_, _, h)) in due.iter().enumerate() {
        let url = h.url.as_deref().unwrap_or_default();
        script.run(
            &format!("http:{i}"),
            &de::http_get(client, url, HTTP_TIMEOUT_SECS),
        );
    }
    let ran = d.read_script(&script);
    for (i, (s, seen, h)) in due.into_iter().enumerate() {
        let probe = match &ran {
            Err(e) => Probe::Pending(e.to_string(), Some(seen)),
            Ok(r) => match r.secs.get(&format!("http:{i}")) {
                None => Probe::Pending(
                    format!(
                        "GET {}: no answer: {}",
                        h.url.as_deref().unwrap_or_default(),
                        r.out.stderr_tail(1)
                    ),
                    Some(seen),
                ),
                Some(sec) => http_verdict(client, &h, sec, &r.out.stderr_tail(1), seen),
            },
        };
        out.insert(s, probe);
    }
    out
}

/// Prints the failing container's last log lines and its health log.
fn show_failure(d: &mut HostDeploy, service: &str, seen: &Containers) {
    let Some(c) = seen.get(service).cloned() else {
        return;
    };
    let label = d.label();
    let report = d.hc.report;
    report.group_start(&format!(
        "{label}: {service}: last {LOG_LINES} log lines of {}",
        c.name
    ));
    let prefix = format!("{label}/{service}");
    let _ = d.ex.run(&de::logs(&c.id, LOG_LINES), None, &mut |s, l| {
        report.relay(&prefix, s, l)
    });
    if !c.health_log.is_empty() {
        report.info(&format!("health log of {}:", c.name));
        for l in &c.health_log {
            report.info(&format!("  {l}"));
        }
    }
    report.group_end();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(svc: &str, timeout: u64, window_ms: u64) -> GateCheck {
        GateCheck {
            service: svc.into(),
            timeout_secs: timeout,
            window_ms,
            http: None,
        }
    }

    fn good(c: &str, up: u64) -> Probe {
        Probe::Good(Seen {
            container: c.into(),
            restarts: 0,
            up_for: Duration::from_secs(up),
        })
    }

    #[test]
    fn the_book_passes_fails_and_naps_until_the_first_window_ends() {
        let mut b = Book::new(&[check("web", 10, 5000), check("api", 10, 5000)], None);
        assert_eq!(b.deadline(), Duration::from_secs(15));
        let s = Duration::from_secs;
        let probes: BTreeMap<String, Probe> = [
            ("web".to_string(), good("w1", 4)),
            ("api".to_string(), good("a1", 2)),
        ]
        .into();
        let (healthy, nap) = b.feed(probes, s(1));
        assert!(healthy.is_empty());
        assert_eq!(nap, s(1), "at most a second");
        assert!(b.ready("web") && b.ready("api"));
        let probes: BTreeMap<String, Probe> = [
            ("web".to_string(), good("w1", 5)),
            ("api".to_string(), Probe::Failed("container exited".into())),
        ]
        .into();
        let (healthy, _) = b.feed(probes, s(2));
        assert_eq!(healthy, ["web"]);
        assert_eq!(b.result.failed["api"], "container exited");
        assert!(b.is_done());
    }

    #[test]
    fn a_deadline_or_a_signal_fails_what_is_still_pending() {
        let s = Duration::from_secs;
        let mut b = Book::new(&[check("web", 1, 1000)], None);
        let pending = |why: &str| -> BTreeMap<String, Probe> {
            [("web".to_string(), Probe::Pending(why.into(), None))].into()
        };
        let (_, nap) = b.feed(pending("no container yet"), s(0));
        assert_eq!(nap, PROBE_INTERVAL);
        b.feed(pending("GET /: status 502, expected 200"), s(2));
        assert_eq!(
            b.result.failed["web"],
            "not healthy after 2s: GET /: status 502, expected 200"
        );
        let mut b = Book::new(&[check("web", 60, 1000)], None);
        b.feed(pending("healthcheck starting"), s(1));
        b.stop(Some("cancelled by SIGINT".into()));
        assert!(b.result.cancelled);
        assert_eq!(
            b.result.failed["web"],
            "cancelled by SIGINT while waiting for it to become healthy (last probe: healthcheck starting)"
        );
    }

    #[test]
    fn a_round_reads_containers_and_http_answers() {
        let names = vec!["web".to_string(), "api".to_string()];
        let health = |s: &str| {
            (s == "web").then(|| Health {
                span: Default::default(),
                url: Some("http://127.0.0.1:8080/".into()),
                timeout: Duration::from_secs(30),
                expect_status: 200,
                contains: Some("ok".into()),
                stable: None,
            })
        };
        let round = Round {
            names: &names,
            compose_failed: true,
            client: "curl",
            health: &health,
        };
        let web = ContainerInfo {
            id: "w1".into(),
            name: "shop-web-1".into(),
            service: "web".into(),
            status: "running".into(),
            started_at: "1970-01-01T00:01:40Z".into(),
            ..Default::default()
        };
        let mut first = BTreeMap::new();
        let mut last = Containers::new();
        let (probes, due) = round.probes(
            Ok((Some(103.0), vec![web.clone()])),
            &BTreeMap::new(),
            "",
            &mut first,
            &mut last,
        );
        assert!(
            matches!(&probes["api"], Probe::Failed(w) if w == "compose up failed and api has no container")
        );
        assert_eq!(due.len(), 1, "web's first HTTP check is due");
        assert_eq!(due[0].1.up_for, Duration::from_secs(3));
        let http: BTreeMap<String, Section> = [(
            "http:web".to_string(),
            Section {
                status: 0,
                stdout: "all ok\n__status__200".into(),
            },
        )]
        .into();
        let (probes, due) = round.probes(
            Ok((Some(104.0), vec![web])),
            &http,
            "",
            &mut first,
            &mut last,
        );
        assert!(due.is_empty());
        assert!(
            matches!(probes["web"], Probe::Good(_)),
            "{:?}",
            probes["web"]
        );
        assert_eq!(last["web"].id, "w1");
    }
}
