//! The one polling loop: ask `check` until it decides, the deadline passes or a signal arrives,
//! sleeping a bounded, growing back-off in between. Health gates, lock waits and approval waits are
//! instances of it. The clock is passed in ([`Clock`]), so the loop's tests never sleep.

use std::time::{Duration, Instant};

/// What a check says on one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check<T> {
    /// Decided: stop with this value.
    Done(T),
    /// Not yet: ask again after the back-off.
    Again,
    /// Not yet: ask again after this delay instead of the back-off (the check knows when the
    /// next answer can change, a health gate's stability window say); still cut to the deadline.
    After(std::time::Duration),
}

/// How a poll ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled<T> {
    Done(T),
    /// The deadline passed before `check` decided.
    TimedOut,
    /// `cancelled` said stop (a signal).
    Cancelled,
}

/// The delay between rounds: starts at `first`, multiplied by `factor` each round, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Backoff {
    /// The same delay every round.
    pub fn fixed(d: Duration) -> Backoff {
        Backoff {
            first: d,
            factor: 1.0,
            max: d,
        }
    }

    /// The delay before round `n` (0-based: the delay after the first check is `delay(0)`).
    pub fn delay(&self, n: u32) -> Duration {
        let grown = self.first.as_secs_f64() * self.factor.max(1.0).powi(n.min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }
}

/// Time, as the poll sees it: now, and a sleep that may be cut short by a signal (true: cut).
pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration) -> bool;
}

/// The real clock; a sleep ends early when the run is cancelled (SIGINT, SIGTERM).
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) -> bool {
        crate::cancel::sleep(d)
    }
}

/// Asks `check` until it is [`Check::Done`], `deadline` passes ([`Polled::TimedOut`]), or
/// `cancelled` returns true or a sleep is cut short ([`Polled::Cancelled`]). `check` always runs at
/// least once; the last sleep is cut to the deadline, so a poll never overruns it by a back-off.
pub fn poll<T>(
    clock: &dyn Clock,
    deadline: Instant,
    backoff: Backoff,
    cancelled: &dyn Fn() -> bool,
    check: &mut dyn FnMut(u32) -> Check<T>,
) -> Polled<T> {
    let mut round = 0u32;
    loop {
        let delay = match check(round) {
            Check::Done(v) => return Polled::Done(v),
            Check::Again => backoff.delay(round),
            Check::After(d) => d,
        };
        if cancelled() {
            return Polled::Cancelled;
        }
        let now = clock.now();
        if now >= deadline {
            return Polled::TimedOut;
        }
        let wait = delay.min(deadline - now);
        if clock.sleep(wait) {
            return Polled::Cancelled;
        }
        round = round.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that moves only when slept on.
    struct FakeClock {
        start: Instant,
        elapsed: Cell<Duration>,
        slept: std::cell::RefCell<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock {
                start: Instant::now(),
                elapsed: Cell::new(Duration::ZERO),
                slept: Default::default(),
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + self.elapsed.get()
        }
        fn sleep(&self, d: Duration) -> bool {
            self.elapsed.set(self.elapsed.get() + d);
            self.slept.borrow_mut().push(d);
            false
        }
    }

    #[test]
    fn stops_when_the_check_decides() {
        let c = FakeClock::new();
        let r = poll(
            &c,
            c.now() + Duration::from_secs(10),
            Backoff::fixed(Duration::from_secs(1)),
            &|| false,
            &mut |n| {
                if n == 2 {
                    Check::Done("ok")
                } else {
                    Check::Again
                }
            },
        );
        assert_eq!(r, Polled::Done("ok"));
        assert_eq!(c.slept.borrow().len(), 2);
    }

    #[test]
    fn times_out_at_the_deadline_without_overrunning_it() {
        let c = FakeClock::new();
        let b = Backoff {
            first: Duration::from_millis(400),
            factor: 2.0,
            max: Duration::from_secs(2),
        };
        let r: Polled<()> = poll(
            &c,
            c.now() + Duration::from_secs(3),
            b,
            &|| false,
            &mut |_| Check::Again,
        );
        assert_eq!(r, Polled::TimedOut);
        assert_eq!(c.elapsed.get(), Duration::from_secs(3));
        assert_eq!(
            *c.slept.borrow(),
            [400, 800, 1600, 200].map(Duration::from_millis)
        );
    }

    #[test]
    fn a_cancelled_run_stops_after_the_round_in_progress() {
        let c = FakeClock::new();
        let rounds = Cell::new(0);
        let r: Polled<()> = poll(
            &c,
            c.now() + Duration::from_secs(60),
            Backoff::fixed(Duration::from_secs(1)),
            &|| rounds.get() >= 2,
            &mut |_| {
                rounds.set(rounds.get() + 1);
                Check::Again
            },
        );
        assert_eq!(r, Polled::Cancelled);
        assert_eq!(rounds.get(), 2);
    }

    #[test]
    fn a_check_may_set_its_own_delay() {
        let c = FakeClock::new();
        let r: Polled<()> = poll(
            &c,
            c.now() + Duration::from_secs(2),
            Backoff::fixed(Duration::from_millis(250)),
            &|| false,
            &mut |n| match n {
                0 => Check::After(Duration::from_millis(700)),
                _ => Check::Again,
            },
        );
        assert_eq!(r, Polled::TimedOut);
        assert_eq!(
            c.slept.borrow()[..3],
            [700, 250, 250].map(Duration::from_millis)
        );
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let b = Backoff {
            first: Duration::from_millis(250),
            factor: 2.0,
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::from_millis(250));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(40), Duration::from_secs(1));
    }
}
