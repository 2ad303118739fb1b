//! What can go wrong talking to GitHub, told the caller's way (status, GitHub's message and
//! details, how hard it was tried), and the one retry classifier ([`verdict`]).

use super::LONGEST_WAIT;
use crate::api::retry::{RetryError, is_retryable_status, is_transient, parse_retry_after};
use http::HeaderMap;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub API is not configured: {0}")]
    Config(String),
    #[error("{method} {path}: {message}")]
    Http {
        method: &'static str,
        path: String,
        message: String,
        /// The HTTP status, 0 when no response came.
        status: u16,
    },
}

impl GitHubError {
    /// The HTTP status of the answer, when one came.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Http { status, .. } if *status != 0 => Some(*status),
            _ => None,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Try again, after the server's wait if it named one, else after the usual back-off.
    Retry(Option<Duration>),
    Fail,
}

/// The one classifier. Network failures are transient when [`is_transient`] says so; GitHub's
/// answers as [`status_verdict`] says.
pub(super) fn verdict(err: &octocrab::Error, now: SystemTime) -> Verdict {
    match err {
        octocrab::Error::GitHub { source, .. } => status_verdict(
            source.status_code.as_u16(),
            source.headers.as_ref().unwrap_or(&HeaderMap::new()),
            now,
        ),
        e if is_transient(e) => Verdict::Retry(None),
        _ => Verdict::Fail,
    }
}

/// 5xx, 408 and 429 are transient, and so is a 403 that carries rate-limit headers (GitHub's
/// secondary limits answer 403 with `retry-after`; an exhausted quota says
/// `x-ratelimit-remaining: 0`). A wait longer than [`LONGEST_WAIT`] is not worth it.
fn status_verdict(status: u16, headers: &HeaderMap, now: SystemTime) -> Verdict {
    let wait = server_wait(headers, now);
    let rate_limited = status == 429 || (status == 403 && wait.is_some());
    if !(rate_limited || is_retryable_status(status)) {
        return Verdict::Fail;
    }
    match wait {
        Some(w) if w > LONGEST_WAIT => Verdict::Fail,
        _ => Verdict::Retry(wait),
    }
}

/// How long the response asks us to wait: `retry-after`, else the time until
/// `x-ratelimit-reset` when `x-ratelimit-remaining` is 0.
fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(after) = header("retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(after);
    }
    if header("x-ratelimit-remaining").map(str::trim) != Some("0") {
        return None;
    }
    header("x-ratelimit-reset").and_then(|v| ratelimit_reset_wait(v, now))
}

/// `x-ratelimit-reset` (epoch seconds) → the wait from `now`; a reset in the past means now.
fn ratelimit_reset_wait(value: &str, now: SystemTime) -> Option<Duration> {
    let reset = UNIX_EPOCH + Duration::from_secs(value.trim().parse().ok()?);
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The caller's error: status and GitHub's message, how hard it was tried.
pub(super) fn http_error(
    method: &'static str,
    path: &str,
    r: RetryError<octocrab::Error>,
) -> GitHubError {
    let (status, message) = describe(&r.last);
    GitHubError::Http {
        method,
        path: path.to_string(),
        message: message + &retries_note(r.retries, r.elapsed),
        status,
    }
}

/// (status, message): GitHub's answer as [`status_message`] puts it; for failures without a
/// response, status 0 and the error with its causes.
fn describe(err: &octocrab::Error) -> (u16, String) {
    if let octocrab::Error::GitHub { source, .. } = err {
        let status = source.status_code.as_u16();
        return (
            status,
            status_message(status, &source.message, source.errors.as_deref()),
        );
    }
    let mut message = match err {
        // A 2xx whose body is not what the endpoint documents (a 202 instead of a deployment).
        octocrab::Error::Json { .. } | octocrab::Error::Serde { .. } => {
            format!("unexpected answer: {err}")
        }
        _ => err.to_string(),
    };
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    (0, message)
}

/// `HTTP 422: Validation Failed (sha: Object does not exist)`: the status, GitHub's `message`,
/// and the details it lists in `errors`.
fn status_message(status: u16, message: &str, errors: Option<&[Value]>) -> String {
    let details: Vec<String> = errors
        .unwrap_or_default()
        .iter()
        .filter_map(|e| match e {
            Value::String(s) => Some(s.clone()),
            e => e
                .get("message")
                .or_else(|| e.get("code"))
                .and_then(Value::as_str)
                .map(|m| match e.get("field").and_then(Value::as_str) {
                    Some(f) => format!("{f}: {m}"),
                    None => m.to_string(),
                }),
        })
        .collect();
    if details.is_empty() {
        format!("HTTP {status}: {message}")
    } else {
        format!("HTTP {status}: {message} ({})", details.join("; "))
    }
}

/// ` (failed after 2 retries in 1.5s)`, or nothing when there was no retry.
fn retries_note(retries: u32, elapsed: Duration) -> String {
    match retries {
        0 => String::new(),
        1 => format!(" (failed after 1 retry in {:.1}s)", elapsed.as_secs_f64()),
        n => format!(
            " (failed after {n} retries in {:.1}s)",
            elapsed.as_secs_f64()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn verdict_of(status: u16, pairs: &[(&'static str, &str)]) -> Verdict {
        status_verdict(status, &headers(pairs), at(1_700_000_000))
    }

    #[test]
    fn transient_statuses_retry_and_honour_the_server_wait() {
        assert_eq!(verdict_of(502, &[]), Verdict::Retry(None));
        assert_eq!(verdict_of(503, &[]), Verdict::Retry(None));
        assert_eq!(
            verdict_of(429, &[("retry-after", "7")]),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
        // A secondary rate limit is a 403 with retry-after.
        assert_eq!(
            verdict_of(403, &[("retry-after", "60")]),
            Verdict::Retry(Some(Duration::from_secs(60)))
        );
        // An exhausted quota that resets soon is waited for.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000012")
                ]
            ),
            Verdict::Retry(Some(Duration::from_secs(12)))
        );
    }

    #[test]
    fn permanent_failures_and_long_waits_fail_at_once() {
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(verdict_of(status, &[]), Verdict::Fail, "{status}");
        }
        // Quota left: a plain permission problem.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "12"),
                    ("x-ratelimit-reset", "1700000012")
                ]
            ),
            Verdict::Fail
        );
        // An hour until the quota resets is not worth waiting for.
        assert_eq!(
            verdict_of(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700003600")
                ]
            ),
            Verdict::Fail
        );
        assert_eq!(verdict_of(429, &[("retry-after", "3600")]), Verdict::Fail);
    }

    #[test]
    fn reset_times_are_relative_to_now() {
        assert_eq!(
            ratelimit_reset_wait("1000", at(990)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(ratelimit_reset_wait("1000", at(2000)), Some(Duration::ZERO));
        assert_eq!(ratelimit_reset_wait("soon", at(0)), None);
    }

    #[test]
    fn messages_carry_status_details_and_retries() {
        assert_eq!(
            status_message(422, "Reference already exists", None),
            "HTTP 422: Reference already exists"
        );
        let errors = [
            serde_json::json!({"resource": "Deployment", "field": "required_contexts", "code": "invalid"}),
        ];
        assert_eq!(
            status_message(
                409,
                "Conflict: Commit status checks failed for main.",
                Some(&errors)
            ),
            "HTTP 409: Conflict: Commit status checks failed for main. (required_contexts: invalid)"
        );
        assert_eq!(retries_note(0, Duration::from_secs(1)), "");
        assert_eq!(
            retries_note(1, Duration::from_millis(500)),
            " (failed after 1 retry in 0.5s)"
        );
        assert_eq!(
            retries_note(3, Duration::from_millis(1500)),
            " (failed after 3 retries in 1.5s)"
        );
    }
}
