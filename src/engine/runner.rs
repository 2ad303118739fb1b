//! The runner: walks a plan's steps in order, evaluates each step's guard, hands the step to the
//! stage's [`Perform`]er, and keeps a [`Trace`]. The same walk serves a real run and a dry run:
//! in a dry run nothing can be known about results, so a guarded step is walked as
//! [`Walked::Conditional`] (shown with its condition) and a real run's trace marks the steps its
//! guards skipped ([`Walked::Skipped`]): both traces list the same steps, in the same order.

use crate::error::Result;
use crate::plan::{Guard, Step};
use std::collections::BTreeSet;

/// What earlier steps found, for the guards of later ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    /// A dry run: no result is known, every guard is "maybe".
    pub dry_run: bool,
    /// Units whose health gate failed.
    pub gate_failed: BTreeSet<String>,
    /// Units whose health gate passed.
    pub gate_passed: BTreeSet<String>,
    /// A step failed in a way the plan has a branch for (a migration that failed and was rolled
    /// back): the steps guarded by [`Guard::Outstanding`] are skipped from then on.
    pub failed: bool,
    /// Steps (ids) found done already when the target was read again under the lock (a migration
    /// another run applied meanwhile): their [`Guard::Outstanding`] skips them.
    pub done: BTreeSet<String>,
}

/// Whether a guarded step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    No,
    /// A dry run cannot tell.
    Maybe,
}

impl RunState {
    pub fn admits(&self, guard: &Guard) -> Admit {
        let any = |units: &[String], set: &BTreeSet<String>| units.iter().any(|u| set.contains(u));
        match guard {
            Guard::Always => Admit::Yes,
            _ if self.dry_run => Admit::Maybe,
            Guard::GateFailed { units } if any(units, &self.gate_failed) => Admit::Yes,
            Guard::GatePassed { units } if any(units, &self.gate_passed) => Admit::Yes,
            Guard::Outstanding { steps }
                if !self.failed && steps.iter().any(|s| !self.done.contains(s)) =>
            {
                Admit::Yes
            }
            _ => Admit::No,
        }
    }
}

/// How the runner walked past a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Walked {
    /// Performed (for a dry run: recorded).
    Performed,
    /// Its guard said no.
    Skipped,
    /// A dry run of a guarded step: recorded with its condition.
    Conditional,
}

/// One step the runner walked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceEntry {
    pub id: String,
    pub walked: Walked,
    /// The step in words (what `plan` and `--dry-run` print).
    pub describe: String,
}

/// Every step the runner walked, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Trace(pub Vec<TraceEntry>);

impl Trace {
    /// The ids of the steps walked, in order: equal for a dry run and the real run of one plan.
    pub fn ids(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.id.as_str()).collect()
    }

    /// The steps performed for real (or recorded by a dry run).
    pub fn performed(&self) -> impl Iterator<Item = &TraceEntry> {
        self.0.iter().filter(|e| e.walked == Walked::Performed)
    }
}

/// Turns a step into effects: the one place that knows how a stage's actions are carried out.
pub trait Perform {
    /// Carries out `step` (on a recording executor: records it). May update `state` (the gate
    /// records which units passed).
    fn perform(&mut self, step: &Step, state: &mut RunState) -> Result<()>;
}

/// What the runner tells the reporter.
pub trait Observe {
    /// A step is about to be performed (`condition`: a dry run's guard, in words).
    fn starting(&mut self, step: &Step, condition: Option<&str>);
    /// The step was performed.
    fn done(&mut self, step: &Step);
}

/// An observer that says nothing (tests, inner runs).
pub struct Quiet;

/// A dry run's report of a deploy run (`up`, `promote`, `rollback`): every step as the runner
/// reaches it, a guarded one after its condition (`  if the health gate fails for api: …`).
pub struct Lines<'r>(pub &'r crate::report::Report);

impl Observe for Lines<'_> {
    fn starting(&mut self, step: &Step, condition: Option<&str>) {
        match condition {
            Some(c) => self.0.info(&format!("  {c}: {}", step.describe())),
            None => self.0.info(&format!("  {}", step.describe())),
        }
    }
    fn done(&mut self, _: &Step) {}
}

impl Observe for Quiet {
    fn starting(&mut self, _: &Step, _: Option<&str>) {}
    fn done(&mut self, _: &Step) {}
}

/// Walks `steps` in order. A step's error stops the walk: the trace so far and the error are
/// returned (the caller's finishing steps — unlocking, recording the failure — are its own). The
/// error learns the step's unit and `deploy.yml` entry when it does not name them itself.
pub fn run(
    steps: &[Step],
    performer: &mut dyn Perform,
    observer: &mut dyn Observe,
    state: &mut RunState,
) -> (Trace, Result<()>) {
    let mut trace = Trace::default();
    for step in steps {
        let admit = state.admits(&step.guard);
        let walked = match admit {
            Admit::No => Walked::Skipped,
            Admit::Yes => Walked::Performed,
            Admit::Maybe => Walked::Conditional,
        };
        trace.0.push(TraceEntry {
            id: step.id.clone(),
            walked,
            describe: step.describe(),
        });
        if admit == Admit::No {
            continue;
        }
        let condition = (admit == Admit::Maybe)
            .then(|| step.guard.describe())
            .flatten();
        observer.starting(step, condition.as_deref());
        if let Err(e) = performer.perform(step, state) {
            return (trace, Err(e.within(step.unit.as_deref(), step.origin)));
        }
        observer.done(step);
    }
    (trace, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Cmd;
    use crate::error::{Error, GateFailure};
    use crate::plan::{Action, Target};

    fn step(id: &str, guard: Guard) -> Step {
        Step {
            id: id.into(),
            stage: "up".into(),
            unit: None,
            target: Target::Local,
            action: Action::Run {
                cmd: Cmd::new("true").arg(id),
            },
            why: String::new(),
            guard,
            origin: None,
        }
    }

    /// Performs by name: `gate` fails `web`, `boom` errors, the rest succeed.
    struct Script(Vec<String>);

    impl Perform for Script {
        fn perform(&mut self, step: &Step, state: &mut RunState) -> Result<()> {
            self.0.push(step.id.clone());
            match step.id.as_str() {
                "gate" if !state.dry_run => {
                    state.gate_failed.insert("web".into());
                    state.gate_passed.insert("api".into());
                    Ok(())
                }
                "boom" => Err(GateFailure::new("boom").into()),
                _ => Ok(()),
            }
        }
    }

    fn plan() -> Vec<Step> {
        let units = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            step("up", Guard::Always),
            step("gate", Guard::Always),
            step(
                "rollback:web",
                Guard::GateFailed {
                    units: units(&["web"]),
                },
            ),
            step(
                "rollback:api",
                Guard::GateFailed {
                    units: units(&["api"]),
                },
            ),
            step(
                "tag:api",
                Guard::GatePassed {
                    units: units(&["api"]),
                },
            ),
            step("record", Guard::Always),
        ]
    }

    #[test]
    fn a_real_run_skips_what_its_guards_refuse_and_traces_it() {
        let mut p = Script(Vec::new());
        let mut state = RunState::default();
        let (trace, r) = run(&plan(), &mut p, &mut Quiet, &mut state);
        assert!(r.is_ok());
        assert_eq!(p.0, ["up", "gate", "rollback:web", "tag:api", "record"]);
        let walked: Vec<Walked> = trace.0.iter().map(|e| e.walked).collect();
        assert_eq!(
            walked,
            [
                Walked::Performed,
                Walked::Performed,
                Walked::Performed,
                Walked::Skipped,
                Walked::Performed,
                Walked::Performed
            ]
        );
    }

    #[test]
    fn a_dry_run_walks_the_same_steps_with_their_conditions() {
        let mut real = Script(Vec::new());
        let (real_trace, _) = run(&plan(), &mut real, &mut Quiet, &mut RunState::default());
        let mut dry = Script(Vec::new());
        let mut state = RunState {
            dry_run: true,
            ..RunState::default()
        };
        let (dry_trace, r) = run(&plan(), &mut dry, &mut Quiet, &mut state);
        assert!(r.is_ok());
        assert_eq!(dry_trace.ids(), real_trace.ids());
        assert_eq!(dry.0.len(), 6, "every step is recorded");
        assert_eq!(dry_trace.0[2].walked, Walked::Conditional);
        assert_eq!(
            plan()[2].guard.describe().as_deref(),
            Some("if the health gate fails for web")
        );
    }

    #[test]
    fn outstanding_steps_stop_after_a_failure_and_skip_what_was_done_meanwhile() {
        let g = |ids: &[&str]| Guard::Outstanding {
            steps: ids.iter().map(|s| s.to_string()).collect(),
        };
        let mut state = RunState::default();
        assert_eq!(state.admits(&g(&["a", "b"])), Admit::Yes);
        state.done.insert("a".into());
        assert_eq!(state.admits(&g(&["a"])), Admit::No);
        assert_eq!(
            state.admits(&g(&["a", "b"])),
            Admit::Yes,
            "b is still to do"
        );
        state.failed = true;
        assert_eq!(state.admits(&g(&["b"])), Admit::No);
        assert_eq!(state.admits(&Guard::Always), Admit::Yes);
        let dry = RunState {
            dry_run: true,
            ..RunState::default()
        };
        assert_eq!(dry.admits(&g(&["a"])), Admit::Maybe);
    }

    #[test]
    fn an_error_stops_the_walk_with_the_trace_so_far() {
        let mut steps = plan();
        let mut boom = step("boom", Guard::Always);
        boom.unit = Some("api".into());
        let mut origin = boom.origin.unwrap_or_default();
        (origin.line, origin.col) = (5, 5);
        boom.origin = Some(origin);
        steps.insert(1, boom);
        let mut p = Script(Vec::new());
        let (trace, r) = run(&steps, &mut p, &mut Quiet, &mut RunState::default());
        assert_eq!(trace.ids(), ["up", "boom"]);
        // The error learns the failed step's unit and deploy.yml entry.
        let e = r.unwrap_err();
        assert!(matches!(&e, Error::Gate(_)), "{e:?}");
        assert_eq!(e.unit(), Some("api"));
        assert_eq!(e.origin().map(|s| (s.line, s.col)), Some((5, 5)));
    }
}
