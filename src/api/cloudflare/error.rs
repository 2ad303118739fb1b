//! What can go wrong talking to the Pages API, and the one classifier of the retry loop: which
//! failures are transient, which answers carry a wait, which refuse the upload token.

use super::body::CHANGED_MARK;
use super::{CODE_UNAUTHORIZED, CODE_UNKNOWN};
use crate::api::retry::{Attempt, RetryError, is_retryable_status, is_transient};
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    #[error("{method} {url}: HTTP {status}{}: {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Api {
        method: String,
        url: String,
        status: u16,
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: HTTP {status}: received a malformed response from the API: {body}")]
    Malformed {
        method: String,
        url: String,
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: {source}")]
    Network {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid upload token: {0}")]
    InvalidToken(String),
    #[error(
        "the upload token was refused: {0} tokens in a row were refused before any request with them succeeded; giving up (is CLOUDFLARE_ACCOUNT_ID right?)"
    )]
    RefreshBudget(u32),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error(transparent)]
    Retried(Box<RetryError<CfError>>),
}

impl CfError {
    /// The API error code (`errors[0].code`), looking through retries.
    pub fn code(&self) -> Option<i64> {
        match self {
            CfError::Api { code, .. } => *code,
            CfError::Retried(r) => r.last.code(),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when one came, looking through retries.
    pub fn status(&self) -> Option<u16> {
        match self {
            CfError::Api { status, .. } | CfError::Malformed { status, .. } => Some(*status),
            CfError::Retried(r) => r.last.status(),
            _ => None,
        }
    }

    /// The upload token was refused: 8000013, or a plain-text `Expired JWT`.
    pub(super) fn is_jwt_refused(&self) -> bool {
        match self {
            CfError::Api { code, .. } => *code == Some(CODE_UNAUTHORIZED),
            CfError::Malformed { status, body, .. } => {
                matches!(status, 401 | 403) && body.contains("Expired JWT")
            }
            _ => false,
        }
    }

    pub(super) fn is_transient(&self) -> bool {
        match self {
            CfError::Api { status, code, .. } => {
                is_retryable_status(*status) || *code == Some(CODE_UNKNOWN)
            }
            CfError::Malformed { status, .. } => is_retryable_status(*status),
            // A file that changed since it was hashed will not get better by retrying.
            CfError::Network { source, .. } => {
                is_transient(source) && !chain_mentions(source, CHANGED_MARK)
            }
            _ => false,
        }
    }

    /// The server certainly did not act on the request: the connection was never made, or it
    /// answered 429 (rate limited before processing).
    pub(super) fn certainly_not_processed(&self) -> bool {
        match self {
            CfError::Network { source, .. } => source.is_connect(),
            CfError::Api { status, .. } | CfError::Malformed { status, .. } => *status == 429,
            _ => false,
        }
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            CfError::Api { retry_after, .. } | CfError::Malformed { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    pub(super) fn is_gateway_timeout(&self) -> bool {
        matches!(
            self,
            CfError::Api { status: 524, .. } | CfError::Malformed { status: 524, .. }
        )
    }
}

fn chain_mentions(e: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string().contains(needle) {
            return true;
        }
        cur = e.source();
    }
    false
}
pub(super) fn classify<T>(r: Result<T, CfError>) -> Attempt<T, CfError> {
    match r {
        Ok(v) => Attempt::Done(v),
        Err(e) if e.is_transient() => Attempt::Retry {
            after: e.retry_after(),
            error: e,
        },
        Err(e) => Attempt::Fail(e),
    }
}

/// A retry error that never retried is just its error.
pub(super) fn flatten(r: RetryError<CfError>) -> CfError {
    if r.retries == 0 {
        r.last
    } else {
        CfError::Retried(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_tokens_are_recognised_in_both_shapes() {
        let api = CfError::Api {
            method: "POST".into(),
            url: "u".into(),
            status: 401,
            code: Some(CODE_UNAUTHORIZED),
            message: "Unauthorized".into(),
            retry_after: None,
        };
        assert!(api.is_jwt_refused());
        let text = CfError::Malformed {
            method: "POST".into(),
            url: "u".into(),
            status: 403,
            body: "Expired JWT".into(),
            retry_after: None,
        };
        assert!(text.is_jwt_refused() && !text.is_transient());
        let html = CfError::Malformed {
            method: "POST".into(),
            url: "u".into(),
            status: 502,
            body: "<html>Bad gateway</html>".into(),
            retry_after: None,
        };
        assert!(html.is_transient() && !html.is_jwt_refused());
    }
}
