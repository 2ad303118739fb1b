//! The engine: runs a [`Plan`](crate::plan::Plan)'s steps on an [`Executor`](crate::exec::Executor).
//!
//! ```text
//! plan (pure: steps with guards)  →  runner (guards, report, trace)  →  performer (step → commands)
//!                                                                       →  executor (local, ssh, dry run)
//! ```
//!
//! - [`runner`]: walks every step in order, evaluates its [`Guard`](crate::plan::Guard) against
//!   the [`RunState`](runner::RunState), hands it to the stage's performer, and keeps a
//!   [`Trace`](runner::Trace) of what it walked. A dry run is the same walk with the recording
//!   executor: guards cannot be evaluated, so every step is walked and the conditional ones are
//!   shown with their condition — which is why `--dry-run` prints exactly the steps a real run
//!   takes (a real run's trace lists the steps a guard skipped too).
//! - [`poll`]: the one polling loop (a deadline, a back-off, a check), for health gates and waits.
//!
//! The engine knows no unit kind: a kind brings a planner (`plan/`) and a performer.

pub mod poll;
pub mod runner;
