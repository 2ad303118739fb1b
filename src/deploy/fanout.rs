//! The one fan-out of the multi-host compose stages (`up`, `promote`, `rollback`):
//!
//! 1. connect and check every host ([`inspect::check`]) before any host changes: a problem on a
//!    later host stops the run with nothing changed;
//! 2. `--image`'s confirmation, once, for every host;
//! 3. the environment lock, one step per host in the manifest's order ([`lock_steps`]), held
//!    until the last host is done (then released on all, whatever happened);
//! 4. the hosts in order — the place where batches and roles go ([`Fanout::order`]): each one's
//!    state read under the lock ([`inspect::read`]), its plan ([`host_plan`]) walked by the
//!    engine's runner with the compose performer; a signal stops the run between hosts (and the
//!    performers honour it within a host); the first failing host stops the run;
//! 5. the host × service matrix ([`HostResult`] per host, for `summary.rs`) and the trace of every
//!    step walked.
//!
//! `--dry-run` is the same fan-out on recording executors that read through to the hosts
//! ([`ReadThrough`]): the same checks, the same plans, the same walk; its trace lists the same
//! step ids as the real run's.

use super::compose::inspect::{self, Checked};
use super::compose::{HostCtx, HostDeploy};
use super::{HostResult, ServiceResult, UpRequest, repo_uploads};
use crate::engine::runner::{self, Lines, Observe, Perform, RunState, Trace};
use crate::error::{Error, GateFailure, Result};
use crate::exec::dry_run::{ReadThrough, Recording};
use crate::exec::local::LocalExecutor;
use crate::exec::{self, Executor};
use crate::ledger::lock::EnvLock;
use crate::manifest::{Environment, Host, Manifest};
use crate::plan::Step;
use crate::plan::up::host::{ShipImage, UpInput};
use crate::plan::up::{HostState, Note, host_plan, lock_steps};
use crate::report::{Report, StepId};

/// A multi-host compose run.
pub struct Fanout<'a> {
    pub report: &'a Report,
    pub env: &'a Environment,
    pub manifest: &'a Manifest,
    pub req: &'a UpRequest,
    /// The stage's name in messages (`up`, `promote`, `rollback`).
    pub stage: &'a str,
    /// Record instead of changing: the executors record and read through to the hosts.
    pub dry_run: bool,
    /// Called once every host is locked, before the first change (an approval bound to the
    /// plan is checked again there).
    pub confirm: &'a dyn Fn() -> Result<()>,
    /// Called after each host that succeeded; an error stops the run (promote checks that the
    /// host runs the source's image ids).
    pub after_host: &'a dyn Fn(&Host, &HostResult) -> Result<()>,
}

/// What a fan-out did.
pub struct Outcome {
    /// A result for every host that was reached or failed (a later host not reached has none:
    /// the summary shows it as `not run`).
    pub results: Vec<HostResult>,
    /// Every step walked, in order.
    pub trace: Trace,
    /// The error that stopped the run.
    pub failure: Option<Error>,
}

/// A host ready to deploy: its executor and what the check found.
struct Ready {
    host: Host,
    ex: Box<dyn Executor>,
    checked: Checked,
}

impl Fanout<'_> {
    /// Runs the stage on every host of the environment (see the module header).
    pub fn run(&self) -> Outcome {
        crate::cancel::install();
        let mut out = Outcome {
            results: Vec::new(),
            trace: Trace::default(),
            failure: None,
        };
        if self.env.hosts.is_empty() {
            return out;
        }
        let recording = Recording::default();
        let ready = match self.check_all(&recording, &mut out.results) {
            Ok(r) => r,
            Err(e) => return out.failed(e),
        };
        let hc = self.ctx(&self.env.hosts[0]);
        let shown: Vec<(String, &super::compose::Containers)> = ready
            .iter()
            .map(|r| (r.host.label(), &r.checked.containers))
            .collect();
        if let Err(e) = inspect::confirm_images(hc, &shown, self.dry_run) {
            return out.not_run(self.env, "the --image change was not confirmed", e);
        }
        let mut lock = (!self.dry_run)
            .then(|| EnvLock::begin(self.report, self.env, &self.req.owner, self.req.lock_wait));
        let (trace, locked) = self.lock_all(lock.as_mut());
        out.trace.0.extend(trace.0);
        if let Err(e) = locked {
            return out.not_run(self.env, "the environment lock was not taken", e);
        }
        if let Err(e) = (self.confirm)() {
            return out.not_run(self.env, "the plan changed after it was approved", e);
        }
        let failure = self.each(ready, &recording, lock.is_some(), &mut out);
        out.failure = failure;
        if let Some(l) = lock {
            l.release_all();
        }
        out
    }

    fn ctx<'h>(&'h self, host: &'h Host) -> HostCtx<'h> {
        HostCtx {
            report: self.report,
            host,
            env: self.env,
            manifest: self.manifest,
            req: self.req,
        }
    }

    /// An executor for a host: the real one, or (dry run) a recorder reading through to it.
    fn executor(&self, real: Box<dyn Executor>, recording: &Recording) -> Box<dyn Executor> {
        if self.dry_run {
            Box::new(ReadThrough::new(real, recording.clone()))
        } else {
            real
        }
    }

    /// Reaches and checks every host before changing any.
    fn check_all(
        &self,
        recording: &Recording,
        results: &mut Vec<HostResult>,
    ) -> Result<Vec<Ready>> {
        let mut ready = Vec::new();
        for (i, host) in self.env.hosts.iter().enumerate() {
            let report = self.report;
            let checked = exec::connect(host, &|w: &str| report.warn(w))
                .map_err(Error::from)
                .and_then(|real| {
                    let mut ex = self.executor(real, recording);
                    let checked = inspect::check(ex.as_mut(), self.ctx(host))?;
                    Ok((ex, checked))
                });
            match checked {
                Ok((ex, checked)) => ready.push(Ready {
                    host: host.clone(),
                    ex,
                    checked,
                }),
                Err(e) => {
                    for earlier in &self.env.hosts[..i] {
                        results.push(HostResult::without_release(
                            earlier,
                            format!("not run: {} failed its check", host.label()),
                        ));
                    }
                    results.push(HostResult::without_release(
                        host,
                        format!("failed before any host changed: {e}"),
                    ));
                    return Err(match e {
                        Error::Usage { message, help } => Error::Usage {
                            message: format!("{message}; no host was changed"),
                            help,
                        },
                        other => other.aftermath(
                            "no host was changed (every host is checked before the first is deployed)",
                        ),
                    });
                }
            }
        }
        Ok(ready)
    }

    /// The lock steps, walked: taken on every host in order (a dry run records them).
    fn lock_all(&self, lock: Option<&mut EnvLock>) -> (Trace, Result<()>) {
        let steps = lock_steps(self.env, self.req.lock_wait);
        let dry_run = lock.is_none();
        let mut performer = Locking { lock };
        let mut state = RunState {
            dry_run,
            ..RunState::default()
        };
        let (trace, r) = if dry_run {
            self.report
                .info(&format!("{}: every host first:", self.env.name));
            runner::run(&steps, &mut performer, &mut Lines(self.report), &mut state)
        } else {
            runner::run(
                &steps,
                &mut performer,
                &mut Spinner::new(self.report),
                &mut state,
            )
        };
        if let (Ok(()), Some(l)) = (&r, performer.lock) {
            l.hold();
        }
        (trace, r)
    }

    /// The order the hosts are deployed in, and (issue 14) where batches and roles will group
    /// them: today every host on its own, in the manifest's order.
    fn order(&self, ready: Vec<Ready>) -> Vec<Vec<Ready>> {
        ready.into_iter().map(|r| vec![r]).collect()
    }

    /// The hosts one after the other, under the lock; stops at the first failing host.
    fn each(
        &self,
        ready: Vec<Ready>,
        recording: &Recording,
        held: bool,
        out: &mut Outcome,
    ) -> Option<Error> {
        let total = self.env.hosts.len();
        let mut local = self.executor(Box::new(LocalExecutor), recording);
        let mut source = match self.source(recording) {
            Ok(s) => s,
            Err(e) => return Some(e),
        };
        let mut done = 0;
        for batch in self.order(ready) {
            for r in batch {
                done += 1;
                let tail = if total > done { LATER_HOSTS } else { "" };
                if let Some(sig) = crate::cancel::requested() {
                    out.results
                        .push(HostResult::without_release(&r.host, "not run: cancelled"));
                    return Some(Error::Cancelled {
                        host: Some(r.host.label()),
                        reason: format!(
                            "{} was cancelled ({} before this host)",
                            self.stage,
                            crate::cancel::name(sig)
                        ),
                        consequence: "it and later hosts were not touched".into(),
                    });
                }
                let host = r.host.clone();
                let src = source.as_deref_mut().map(|s| s as &mut dyn Executor);
                let ran = self.one(r, local.as_mut(), src, held, &mut out.trace);
                if let Some(e) = self.judge(&host, ran, tail, &mut out.results) {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Promote's source host, connected (a recorder reading through in a dry run).
    fn source(&self, recording: &Recording) -> Result<Option<Box<dyn Executor>>> {
        let Some(host) = self
            .req
            .ship_from
            .as_ref()
            .filter(|_| !self.req.ship_ids.is_empty())
        else {
            return Ok(None);
        };
        let report = self.report;
        let real = exec::connect(host, &|w: &str| report.warn(w))?;
        Ok(Some(self.executor(real, recording)))
    }

    /// One host: its state under the lock, its plan, the walk.
    fn one(
        &self,
        mut r: Ready,
        local: &mut dyn Executor,
        source: Option<&mut dyn Executor>,
        held: bool,
        trace: &mut Trace,
    ) -> Result<HostResult> {
        let hc = self.ctx(&r.host);
        let label = r.host.label();
        let state = inspect::read(r.ex.as_mut(), hc, r.checked, held)?;
        let plan = host_plan(&self.input(), self.manifest, self.env, &r.host, &state)
            .map_err(|x| Error::usage_help(x.message, x.help))?;
        for note in &plan.notes {
            match note {
                Note::Info(t) => self.report.info(&format!("{label}: {t}")),
                Note::Warn(t) => self.report.warn(&format!("{label}: {t}")),
            }
        }
        let dry_run = r.ex.records();
        // Shorter borrows of the shared executors, for this host only.
        let local = &mut *local as &mut dyn Executor;
        let source = source.map(|s| &mut *s as &mut dyn Executor);
        let mut d = HostDeploy::new(hc, r.ex.as_mut(), local, source, state);
        let (walked, result) = walk(
            self.report,
            &plan.steps,
            &mut d,
            dry_run,
            &label,
            plan.release,
        );
        trace.0.extend(walked.0);
        result?;
        let planned = d.planned_images();
        let result = d
            .into_result()
            .ok_or_else(|| Error::Bug(format!("{label}: the run ended without a result")))?;
        Ok(if dry_run {
            result.as_dry_run(&planned)
        } else {
            result
        })
    }

    /// What every host's plan is made from.
    fn input(&self) -> UpInput {
        up_input(self.env, self.manifest, self.req)
    }

    /// Turns a host's outcome into its row and, when it failed, the error that stops the run,
    /// with `tail` (empty, or [`LATER_HOSTS`]) after it. A failed lock or input keeps its kind
    /// (exit 4, 2); any other error stops the stage (exit 1).
    fn judge(
        &self,
        host: &Host,
        ran: Result<HostResult>,
        tail: &str,
        results: &mut Vec<HostResult>,
    ) -> Option<Error> {
        let stage = self.stage;
        match ran {
            Ok(r) if r.ok => {
                let checked = (self.after_host)(host, &r);
                results.push(r);
                checked.err()
            }
            Ok(r) => {
                let e = match host_failure(stage, self.manifest, &r) {
                    e if tail.is_empty() => e,
                    e => e.aftermath(after(tail)),
                };
                results.push(r);
                Some(e)
            }
            Err(e) => {
                results.push(HostResult::without_release(host, format!("failed: {e}")));
                Some(match e {
                    Error::LockHeld(msg) => Error::LockHeld(format!("{msg}{tail}")),
                    Error::Usage { message, help } => Error::Usage {
                        message: format!("{message}{tail}"),
                        help,
                    },
                    other => other.aftermath(after(tail)),
                })
            }
        }
    }
}

/// What a host that failed leaves of the hosts after it.
const LATER_HOSTS: &str = "; later hosts were not touched";

/// `tail` without its `; `.
fn after(tail: &str) -> &str {
    tail.trim_start_matches("; ")
}

/// Why a host whose run ended with a result failed: a signal during the health gate (its
/// services were put back), or the health gate, at the first failed service's `health:` entry
/// (its own entry when it has none). What failed is said as the result table says it, with the
/// gate's reason.
fn host_failure(stage: &str, m: &Manifest, r: &HostResult) -> Error {
    let failed: Vec<&ServiceResult> = r
        .services
        .iter()
        .filter(|sv| sv.result != "deployed")
        .collect();
    let list = failed
        .iter()
        .map(|sv| match sv.health.strip_prefix("failed: ") {
            Some(why) if r.error.is_none() => format!("{} {} ({why})", sv.service, sv.result),
            _ => format!("{} {}", sv.service, sv.result),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let serving = if r.rolled_back {
        "; the previous version is serving"
    } else {
        ""
    };
    if let Some(why) = &r.error {
        return Error::Cancelled {
            host: Some(r.host.clone()),
            reason: format!("{stage} was {why}"),
            consequence: format!("{list}{serving}"),
        };
    }
    let service = failed.first().and_then(|sv| {
        m.services
            .values()
            .find(|s| s.compose_service == sv.service)
    });
    let mut gate = GateFailure::new(format!("{stage} failed: {list}{serving}")).host(&r.host);
    if let Some(s) = service {
        // Its `health:` entry; a service without one is gated on its container: its own entry.
        let at = s.health.as_ref().map_or(s.span, |h| h.span);
        gate = gate.unit(&s.name).origin(Some(at));
    }
    gate.into()
}

impl Outcome {
    fn failed(mut self, e: Error) -> Outcome {
        self.failure = Some(e);
        self
    }

    /// Every host `not run: why`, and the error.
    fn not_run(mut self, env: &Environment, why: &str, e: Error) -> Outcome {
        self.results = env
            .hosts
            .iter()
            .map(|h| HostResult::without_release(h, format!("not run: {why}")))
            .collect();
        self.failed(e)
    }
}

/// Walks one host's steps; a dry run prints them under a heading.
fn walk(
    report: &Report,
    steps: &[Step],
    d: &mut HostDeploy,
    dry_run: bool,
    label: &str,
    release: u64,
) -> (Trace, Result<()>) {
    let mut state = RunState {
        dry_run,
        ..RunState::default()
    };
    if dry_run {
        report.info(&format!(
            "{label}: would run (release {}):",
            crate::plan::up::action::release_word(release)
        ));
        runner::run(steps, d, &mut Lines(report), &mut state)
    } else {
        runner::run(steps, d, &mut Spinner::new(report), &mut state)
    }
}

/// The lock steps' performer: takes the lock on each host (none in a dry run).
struct Locking<'l, 'r> {
    lock: Option<&'l mut EnvLock<'r>>,
}

impl Perform for Locking<'_, '_> {
    fn perform(&mut self, step: &Step, _: &mut RunState) -> Result<()> {
        match (&mut self.lock, &step.target) {
            (Some(lock), crate::plan::Target::Host(h)) => lock.take_host(h),
            _ => Ok(()),
        }
    }
}

/// What every host's plan is made from: the request's pure part, the repository's compose and
/// env files, the images to ship (built here, or promote's from the source's host).
pub fn up_input(env: &Environment, m: &Manifest, req: &UpRequest) -> UpInput {
    let mut ship: Vec<ShipImage> = req
        .images
        .iter()
        .filter(|(_, image)| req.built.contains(image))
        .map(|(svc, image)| ShipImage {
            service: svc.clone(),
            image: image.clone(),
            id: None,
            from: None,
        })
        .collect();
    ship.extend(req.ship_ids.iter().map(|(svc, id)| ShipImage {
        service: svc.clone(),
        image: req.images.get(svc).cloned().unwrap_or_default(),
        id: Some(id.clone()),
        from: req.ship_from.clone(),
    }));
    UpInput {
        env: req.env.clone(),
        services: req
            .services
            .iter()
            .filter_map(|s| m.services.get(s))
            .map(|s| s.compose_service.clone())
            .collect(),
        images: req.images.clone(),
        user_images: req.user_images.clone(),
        force: req.force,
        files_from: req.files_from,
        uploads: repo_uploads(env, &req.repo_root),
        ship,
        secrets: req.secrets.keys().cloned().collect(),
    }
}

/// A real run's report: a spinner per step on a terminal (nothing elsewhere).
struct Spinner<'r> {
    report: &'r Report,
    current: Option<StepId>,
}

impl<'r> Spinner<'r> {
    fn new(report: &'r Report) -> Self {
        Spinner {
            report,
            current: None,
        }
    }
}

impl Observe for Spinner<'_> {
    fn starting(&mut self, step: &Step, _: Option<&str>) {
        self.current = Some(self.report.step_start(&step.describe()));
    }
    fn done(&mut self, _: &Step) {
        if let Some(id) = self.current.take() {
            self.report.step_done(id);
        }
    }
}

/// What `plan` shows of `up`: every host checked and read as `up` would (read-only, nothing
/// locked); a host that cannot be read is planned from the manifest alone, with a warning.
pub fn inspect_hosts(
    report: &Report,
    env: &Environment,
    manifest: &Manifest,
    req: &UpRequest,
) -> Vec<(Host, Option<HostState>)> {
    let f = Fanout {
        report,
        env,
        manifest,
        req,
        stage: "plan",
        dry_run: true,
        confirm: &|| Ok(()),
        after_host: &|_, _| Ok(()),
    };
    let recording = Recording::default();
    env.hosts
        .iter()
        .map(|host| {
            let hc = f.ctx(host);
            let state = exec::connect(host, &|w: &str| report.warn(w))
                .map_err(Error::from)
                .and_then(|real| {
                    let mut ex = f.executor(real, &recording);
                    let checked = inspect::check(ex.as_mut(), hc)?;
                    inspect::read(ex.as_mut(), hc, checked, false)
                });
            match state {
                Ok(s) => (host.clone(), Some(s)),
                Err(e) => {
                    report.warn(&format!(
                        "{}: not inspected ({e}); up's steps for it are planned from deploy.yml alone",
                        host.label()
                    ));
                    (host.clone(), None)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::ServiceResult;
    use crate::state::LockOwner;

    fn manifest() -> Manifest {
        crate::manifest::parse(crate::diag::Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [local, \"ssh://deploy@h2\"]\n    dir: /srv/shop\nservices:\n  web: {}\n  api:\n    compose_service: backend\n    health: { url: \"http://127.0.0.1:3000/health\" }\n",
        ))
        .unwrap()
    }

    #[test]
    fn a_failed_host_stops_the_run_with_what_failed_and_what_serves() {
        let m = manifest();
        let env = &m.environments["staging"];
        let report = Report::buffered(false, None);
        let req = UpRequest::recorded(
            "staging",
            vec!["web".into()],
            Default::default(),
            LockOwner::default(),
            ".".into(),
            Vec::new(),
        );
        let f = Fanout {
            report: &report,
            env,
            manifest: &m,
            req: &req,
            stage: "up",
            dry_run: false,
            confirm: &|| Ok(()),
            after_host: &|_, _| Ok(()),
        };
        let rolled_back = HostResult {
            host: "local".into(),
            release: Some(3),
            ok: false,
            rolled_back: true,
            services: vec![ServiceResult {
                service: "web".into(),
                old_image: String::new(),
                new_image: String::new(),
                health: String::new(),
                duration_secs: 0.0,
                result: "rolled back".into(),
                rollback: String::new(),
                rollback_exact: String::new(),
            }],
            error: None,
            record: None,
        };
        let mut results = Vec::new();
        let tail = "; later hosts were not touched";
        let e = f
            .judge(&Host::Local, Ok(rolled_back), tail, &mut results)
            .unwrap();
        assert_eq!(
            e.to_string(),
            "up failed: web rolled back; the previous version is serving; later hosts were not touched"
        );
        assert_eq!(e.exit().code(), 1);
        let e = f
            .judge(
                &Host::Local,
                Err(Error::LockHeld(
                    "local: the staging lock is held by x".into(),
                )),
                tail,
                &mut results,
            )
            .unwrap();
        assert!(
            matches!(e, Error::LockHeld(ref m) if m.ends_with(tail)),
            "{e}"
        );
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[1].error.as_deref(),
            Some("failed: local: the staging lock is held by x")
        );
        // Any other error of a host stops the run as it is, with what that left (exit 1).
        let e = f
            .judge(
                &Host::Local,
                Err(Error::Approval("approve it".into())),
                "",
                &mut results,
            )
            .unwrap();
        assert_eq!((e.to_string().as_str(), e.exit().code()), ("approve it", 1));
        // Every host is its own batch, in the manifest's order (issue 14 groups them here).
        assert_eq!(f.order(Vec::new()).len(), 0);
    }

    fn row(service: &str, health: &str, result: &str) -> ServiceResult {
        ServiceResult {
            service: service.into(),
            old_image: String::new(),
            new_image: String::new(),
            health: health.into(),
            duration_secs: 0.0,
            result: result.into(),
            rollback: String::new(),
            rollback_exact: String::new(),
        }
    }

    fn host_result(services: Vec<ServiceResult>, error: Option<&str>) -> HostResult {
        HostResult {
            host: "deploy@h2:22".into(),
            release: Some(4),
            ok: false,
            rolled_back: true,
            services,
            error: error.map(str::to_string),
            record: None,
        }
    }

    #[test]
    fn a_failed_health_gate_names_the_host_the_service_and_its_health_entry() {
        let m = manifest();
        let r = host_result(
            vec![
                row("web", "healthy", "deployed"),
                row(
                    "backend",
                    "failed: not healthy after 60s: HTTP 503",
                    "rolled back",
                ),
            ],
            None,
        );
        let e = host_failure("up", &m, &r);
        assert_eq!(
            e.to_string(),
            "deploy@h2:22: up failed: backend rolled back (not healthy after 60s: HTTP 503); the previous version is serving"
        );
        let health = m.services["api"].health.as_ref().unwrap().span;
        assert!(matches!(&e, Error::Gate(_)), "{e:?}");
        assert_eq!(
            (e.host(), e.unit(), e.origin()),
            (Some("deploy@h2:22"), Some("api"), Some(health))
        );
        assert_eq!((health.line, health.col), (11, 5), "api's `health:`");
        assert_eq!(e.exit().code(), 1);
        // A service gated on its container alone points at its own entry.
        let e = host_failure(
            "up",
            &m,
            &host_result(vec![row("web", "failed: exited (1)", "failed")], None),
        );
        assert_eq!(e.unit(), Some("web"));
        assert_eq!(e.origin(), Some(m.services["web"].span));
    }

    #[test]
    fn a_signal_during_the_health_gate_is_a_cancellation_naming_what_went_back() {
        let m = manifest();
        let r = host_result(
            vec![row(
                "web",
                "failed: cancelled by SIGINT while waiting for it to become healthy (last probe: starting)",
                "rolled back",
            )],
            Some("cancelled by SIGINT"),
        );
        let e = host_failure("up", &m, &r);
        assert!(matches!(&e, Error::Cancelled { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "deploy@h2:22: up was cancelled by SIGINT; web rolled back; the previous version is serving"
        );
        assert_eq!(e.exit().code(), 1);
    }
}
