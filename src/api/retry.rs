//! The one retry loop: bounded, jittered exponential back-off; `Retry-After` honoured (seconds or
//! HTTP date); a budget per request in attempts and in time spent waiting between them (each
//! attempt is bounded by its own HTTP timeout, which the caller scales with the body, so a slow
//! upload that fails is still retried); errors that say "failed after N retries in X s".
//! `DEPLOY_TEST_NO_RETRY_DELAY` zeroes every delay. Generic: callers classify their own failures
//! into [`Attempt`].

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How hard to try one request.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First back-off delay; doubled per retry.
    pub base: Duration,
    /// Largest single delay (also caps `Retry-After`).
    pub cap: Duration,
    /// No retry starts once this much time has been spent waiting between attempts (back-off and
    /// `Retry-After`). Time inside attempts does not count: each is bounded by its HTTP timeout.
    pub max_elapsed: Duration,
    /// Test switch: never sleep.
    pub no_delay: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
            no_delay: false,
        }
    }
}

impl RetryPolicy {
    /// The default policy, with delays zeroed when `DEPLOY_TEST_NO_RETRY_DELAY` is set.
    pub fn from_env() -> Self {
        RetryPolicy {
            no_delay: crate::env_vars::get(crate::env_vars::DEPLOY_TEST_NO_RETRY_DELAY).is_some(),
            ..Self::default()
        }
    }

    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The delay before retry number `retry` (1-based): `base · 2^(retry-1)`, capped, with "equal
    /// jitter" (between half and all of it).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.cap);
        let half = exp / 2;
        half + half.mul_f64(jitter_fraction())
    }

    /// Sleeps for `d` (capped), unless delays are off.
    pub fn sleep(&self, d: Duration) {
        if !self.no_delay && !d.is_zero() {
            std::thread::sleep(d.min(self.cap));
        }
    }
}

/// A number in [0, 1) that differs between calls; good enough for jitter, no crate needed.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The outcome of one attempt, as the caller classifies it.
pub enum Attempt<T, E> {
    Done(T),
    /// Worth another try; `after` is the server's `Retry-After`, if any.
    Retry {
        error: E,
        after: Option<Duration>,
    },
    /// Retrying would not help.
    Fail(E),
    /// Try again at once without counting a retry: the caller fixed what was wrong (a replaced
    /// upload token) and bounds how often that may happen. Capped at [`MAX_AGAIN`] as a backstop.
    Again(E),
}

/// Uncounted [`Attempt::Again`] rounds allowed per request.
pub const MAX_AGAIN: u32 = 64;

/// A request that did not succeed, with how hard it was tried.
#[derive(Debug)]
pub struct RetryError<E> {
    pub what: String,
    pub retries: u32,
    pub elapsed: Duration,
    pub last: E,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.retries == 0 {
            write!(f, "{}: {}", self.what, self.last)
        } else {
            write!(
                f,
                "{} failed after {} {} in {:.1}s: {}",
                self.what,
                self.retries,
                if self.retries == 1 {
                    "retry"
                } else {
                    "retries"
                },
                self.elapsed.as_secs_f64(),
                self.last
            )
        }
    }
}

impl<E: StdError + 'static> StdError for RetryError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.last)
    }
}

/// Runs `attempt(n)` (n = retries so far) until it is done, fails, or the budget is spent.
pub fn retry<T, E>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: impl FnMut(u32) -> Attempt<T, E>,
) -> Result<T, RetryError<E>> {
    let start = Instant::now();
    let mut waited = Duration::ZERO;
    let mut retries = 0;
    let mut again = 0;
    loop {
        let fail = |retries, last| RetryError {
            what: what.to_string(),
            retries,
            elapsed: start.elapsed(),
            last,
        };
        match attempt(retries) {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(last) => return Err(fail(retries, last)),
            Attempt::Again(last) => {
                again += 1;
                if again > MAX_AGAIN {
                    return Err(fail(retries, last));
                }
            }
            Attempt::Retry { error, after } => {
                if retries >= policy.max_retries || waited >= policy.max_elapsed {
                    return Err(fail(retries, error));
                }
                retries += 1;
                let delay = after
                    .unwrap_or_else(|| policy.backoff(retries))
                    .min(policy.cap);
                policy.sleep(delay);
                waited += delay;
            }
        }
    }
}

/// HTTP statuses worth retrying: 408, 429, and 5xx (including Cloudflare's 52x).
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether an error (or anything in its `source()` chain) is a transient network failure.
pub fn is_transient(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            // Timeouts and failed connects are worth another try; a builder error is not.
            if r.is_timeout() || r.is_connect() || r.is_request() || r.is_body() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                // The peer went away or reset us mid-request: typical of overloaded edges.
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => return true,
                // Slow networks and refused connects during restarts.
                TimedOut | ConnectionRefused | Interrupted => return true,
                _ => {}
            }
        }
        cur = e.source();
    }
    false
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (IMF-fixdate), relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → time.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == mon)? as u32
        + 1;
    let year: i64 = year.parse().ok()?;
    let mut t = hms.split(':').map(|x| x.parse::<u64>());
    let (h, m, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days.checked_mul(86_400)? + (h * 3600 + m * 60 + sec) as i64;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = at(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:47 GMT", now),
            None
        );
    }

    #[test]
    fn http_dates_known_values() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(at(0))
        );
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(at(1_445_412_480))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(at(1_709_208_000))
        );
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy::default();
        for retry in 1..=10 {
            let d = p.backoff(retry);
            let full = p.base.saturating_mul(1 << (retry - 1)).min(p.cap);
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
        assert!(p.backoff(30) <= p.cap);
    }

    #[derive(Debug)]
    struct E(&'static str);
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for E {}

    #[test]
    fn loop_counts_retries_and_reports_them() {
        let p = RetryPolicy {
            no_delay: true,
            ..RetryPolicy::default()
        }
        .with_max_retries(3);
        let mut calls = 0;
        let r: Result<(), _> = retry(&p, "POST /x", |_| {
            calls += 1;
            Attempt::Retry {
                error: E("HTTP 502"),
                after: None,
            }
        });
        let e = r.unwrap_err();
        assert_eq!(calls, 4);
        assert!(
            e.to_string()
                .starts_with("POST /x failed after 3 retries in "),
            "{e}"
        );
        assert!(e.to_string().ends_with("s: HTTP 502"), "{e}");

        let mut calls = 0;
        let r = retry(&p, "GET /y", |n| {
            calls += 1;
            if n < 2 {
                Attempt::Retry {
                    error: E("reset"),
                    after: Some(Duration::from_secs(2)),
                }
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls, 3);

        let r: Result<(), _> = retry(&p, "GET /z", |_| Attempt::Fail(E("HTTP 400")));
        assert_eq!(r.unwrap_err().to_string(), "GET /z: HTTP 400");
    }

    #[test]
    fn the_time_budget_counts_waiting_not_attempts() {
        // Delays are off, but the budget counts the delays the loop would have slept: 30 s each
        // (Retry-After 120 s, capped), so the 300 s budget allows exactly 10 retries.
        let p = RetryPolicy {
            no_delay: true,
            ..RetryPolicy::default()
        }
        .with_max_retries(100);
        let mut calls = 0;
        let r: Result<(), _> = retry(&p, "POST /slow", |_| {
            calls += 1;
            Attempt::Retry {
                error: E("HTTP 429"),
                after: Some(Duration::from_secs(120)),
            }
        });
        assert_eq!(r.unwrap_err().retries, 10);
        assert_eq!(calls, 11);
    }

    #[test]
    fn again_is_not_a_retry_but_is_capped() {
        let p = RetryPolicy {
            no_delay: true,
            ..RetryPolicy::default()
        }
        .with_max_retries(2);
        let mut calls = 0;
        let r = retry(&p, "POST /a", |n| {
            calls += 1;
            match calls {
                1..=4 => Attempt::Again(E("token replaced")),
                5 => Attempt::Retry {
                    error: E("HTTP 502"),
                    after: None,
                },
                _ => Attempt::Done(n),
            }
        });
        assert_eq!(r.unwrap(), 1, "four uncounted rounds, one retry");
        let mut calls = 0;
        let r: Result<(), _> = retry(&p, "POST /b", |_| {
            calls += 1;
            Attempt::Again(E("refused"))
        });
        assert_eq!(r.unwrap_err().retries, 0);
        assert_eq!(calls, MAX_AGAIN + 1);
    }

    #[test]
    fn transient_errors_are_found_down_the_source_chain() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let reset = Wrap(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_transient(&reset));
        let denied = Wrap(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!is_transient(&denied));
        assert!(is_retryable_status(524) && is_retryable_status(429) && is_retryable_status(502));
        assert!(!is_retryable_status(404) && !is_retryable_status(401));
    }
}
