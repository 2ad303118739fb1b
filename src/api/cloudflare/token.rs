//! The upload token of a run: the JWT's claims, the refresh policy ([`TokenBook`], pure: the
//! clock is passed in) and the client's calls that fetch, hand out and replace the token.

use super::{CfError, Cloudflare};
use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Fresh upload tokens refused in a row (each refused before any request with it succeeded) before
/// the run gives up. Tokens that worked and then expired, and tokens replaced before their `exp`,
/// do not count: a long upload may go through any number of them.
pub const MAX_JWT_REFRESHES: u32 = 5;
/// A token this close to its `exp` is replaced before use (at most half its lifetime).
const JWT_EXPIRY_MARGIN: u64 = 60;

/// The claims of an upload token that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadToken {
    pub jwt: String,
    /// Seconds since the epoch; `None` = never expires.
    pub exp: Option<u64>,
    pub max_file_count_allowed: u64,
}

impl UploadToken {
    /// Reads `exp` and `max_file_count_allowed` from the JWT's payload (the signature is not ours to
    /// check).
    pub fn parse(jwt: &str) -> Result<UploadToken, CfError> {
        let mut parts = jwt.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CfError::InvalidToken(
                "not three dot-separated segments".into(),
            ));
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| CfError::InvalidToken(format!("payload is not base64url: {e}")))?;
        let claims: Value = serde_json::from_slice(&bytes)
            .map_err(|e| CfError::InvalidToken(format!("payload is not JSON: {e}")))?;
        Ok(UploadToken {
            jwt: jwt.to_string(),
            exp: claims.get("exp").and_then(Value::as_u64),
            max_file_count_allowed: claims
                .get("max_file_count_allowed")
                .and_then(Value::as_u64)
                .unwrap_or(crate::pages::DEFAULT_MAX_FILES),
        })
    }

    /// Expired, or expiring within `margin` seconds of `now`.
    pub fn expires_within(&self, now: SystemTime, margin: u64) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.exp.is_some_and(|exp| exp <= now + margin)
    }
}

/// The run's upload token and how it has fared: the refresh policy, kept pure (the clock is passed
/// in) so it can be tested without waiting.
#[derive(Debug, Default)]
pub struct TokenBook {
    pub project: Option<String>,
    pub token: Option<UploadToken>,
    /// Local time (seconds since the epoch) when `token` was fetched.
    pub fetched_at: u64,
    /// A request with `token` succeeded.
    pub accepted: bool,
    /// Tokens refused in a row, each before any request with it succeeded.
    pub refused_in_a_row: u32,
}

/// What to do about a refused token.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another request already replaced it: retry with the current token.
    AlreadyReplaced,
    /// Fetch a new token, then retry.
    Refresh,
    /// Too many fresh tokens refused in a row.
    GiveUp(u32),
}

impl TokenBook {
    /// Whether the current token should be replaced before it is used at `now`: within
    /// [`JWT_EXPIRY_MARGIN`] of its `exp`, but never more than half its lifetime early (a token
    /// that lives 30 s is used for 15 s). A token that looked expired when it was fetched (the
    /// local clock is ahead of the server's) is left to the server to refuse.
    pub fn wants_refresh(&self, now: u64) -> bool {
        let Some(exp) = self.token.as_ref().and_then(|t| t.exp) else {
            return false;
        };
        let Some(lifetime) = exp.checked_sub(self.fetched_at).filter(|l| *l > 0) else {
            return false;
        };
        let margin = JWT_EXPIRY_MARGIN.min(lifetime / 2);
        exp <= now.saturating_add(margin)
    }

    /// A new token arrived.
    pub fn install(&mut self, token: UploadToken, now: u64) {
        self.token = Some(token);
        self.fetched_at = now;
        self.accepted = false;
    }

    /// A request with `jwt` succeeded.
    pub fn accepted(&mut self, jwt: &str) {
        if self.token.as_ref().is_some_and(|t| t.jwt == jwt) {
            self.accepted = true;
        }
        self.refused_in_a_row = 0;
    }

    /// A request with `jwt` was refused (8000013 or `Expired JWT`).
    pub fn refused(&mut self, jwt: &str) -> Refusal {
        if self.token.as_ref().is_some_and(|t| t.jwt != jwt) {
            return Refusal::AlreadyReplaced;
        }
        if !self.accepted {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > MAX_JWT_REFRESHES {
                return Refusal::GiveUp(self.refused_in_a_row);
            }
        }
        Refusal::Refresh
    }
}

impl Cloudflare {
    /// `GET …/projects/{p}/upload-token`, parsed.
    pub fn fetch_upload_token(&self, project: &str) -> Result<UploadToken, CfError> {
        let v = self.api_call(
            Method::GET,
            &format!("{}/upload-token", self.project_path(project)),
            &Ok,
        )?;
        let jwt = v
            .get("jwt")
            .and_then(Value::as_str)
            .ok_or_else(|| CfError::InvalidToken("no `jwt` in the response".into()))?;
        UploadToken::parse(jwt)
    }

    /// Gets the run's upload token for `project` and remembers it for the asset calls.
    pub fn start_upload_session(&self, project: &str) -> Result<UploadToken, CfError> {
        let t = self.fetch_upload_token(project)?;
        let mut book = self.book();
        *book = TokenBook {
            project: Some(project.to_string()),
            ..TokenBook::default()
        };
        book.install(t.clone(), unix_now());
        Ok(t)
    }

    pub(super) fn book(&self) -> std::sync::MutexGuard<'_, TokenBook> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token to send now, replaced first when it is about to expire. The lock is held while a
    /// new one is fetched, so parallel uploads wait for it rather than fetch their own.
    pub(super) fn current_jwt(&self) -> Result<String, CfError> {
        let mut book = self.book();
        if book.wants_refresh(unix_now()) {
            self.fetch_into(&mut book)?;
        }
        book.token
            .as_ref()
            .map(|t| t.jwt.clone())
            .ok_or_else(|| CfError::InvalidToken("no upload session".into()))
    }

    /// The server refused `stale`: replace it, unless another request already did; give up after
    /// [`MAX_JWT_REFRESHES`] fresh tokens refused in a row.
    pub(super) fn replace_refused(&self, stale: &str) -> Result<(), CfError> {
        let mut book = self.book();
        match book.refused(stale) {
            Refusal::AlreadyReplaced => Ok(()),
            Refusal::GiveUp(n) => Err(CfError::RefreshBudget(n)),
            Refusal::Refresh => self.fetch_into(&mut book),
        }
    }

    fn fetch_into(&self, book: &mut TokenBook) -> Result<(), CfError> {
        let project = book
            .project
            .clone()
            .ok_or_else(|| CfError::InvalidToken("no upload session".into()))?;
        let t = self.fetch_upload_token(&project)?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        book.install(t, unix_now());
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn jwt(claims: &str) -> String {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
        format!("eyJhbGciOiJIUzI1NiJ9.{p}.sig")
    }

    #[test]
    fn upload_token_claims() {
        let t =
            UploadToken::parse(&jwt(r#"{"exp":1000,"max_file_count_allowed":100000}"#)).unwrap();
        assert_eq!(t.exp, Some(1000));
        assert_eq!(t.max_file_count_allowed, 100_000);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert!(t.expires_within(at(1000), 0));
        assert!(t.expires_within(at(950), 60));
        assert!(!t.expires_within(at(900), 60));

        let t = UploadToken::parse(&jwt("{}")).unwrap();
        assert_eq!(t.exp, None);
        assert_eq!(t.max_file_count_allowed, 20_000);
        assert!(!t.expires_within(at(u32::MAX as u64), 60));

        assert!(UploadToken::parse("abc").is_err());
        assert!(UploadToken::parse("a.!!!.c").is_err());
    }

    fn book_with(exp: Option<u64>, fetched_at: u64, jwt: &str) -> TokenBook {
        let mut b = TokenBook {
            project: Some("p".into()),
            ..TokenBook::default()
        };
        b.install(
            UploadToken {
                jwt: jwt.into(),
                exp,
                max_file_count_allowed: 20_000,
            },
            fetched_at,
        );
        b
    }

    #[test]
    fn tokens_are_replaced_before_expiry_within_half_their_lifetime() {
        // A 600 s token: replaced in its last 60 s.
        let b = book_with(Some(1600), 1000, "a");
        assert!(!b.wants_refresh(1539));
        assert!(b.wants_refresh(1540));
        // A 30 s token: used for 15 s, not replaced before every request.
        let b = book_with(Some(1030), 1000, "a");
        assert!(!b.wants_refresh(1014));
        assert!(b.wants_refresh(1015));
        // No exp, or a token that looked expired on arrival (clock skew): the server decides.
        assert!(!book_with(None, 1000, "a").wants_refresh(u32::MAX as u64));
        assert!(!book_with(Some(990), 1000, "a").wants_refresh(2000));
    }

    #[test]
    fn only_fresh_tokens_refused_in_a_row_count() {
        let mut b = book_with(Some(2000), 1000, "t0");
        // Any number of tokens that worked and then expired (or were replaced early) is fine.
        for i in 1..=50 {
            let old = format!("t{}", i - 1);
            b.accepted(&old);
            assert_eq!(b.refused(&old), Refusal::Refresh, "token {i}");
            b.install(
                UploadToken {
                    jwt: format!("t{i}"),
                    exp: Some(2000),
                    max_file_count_allowed: 1,
                },
                1000,
            );
        }
        assert_eq!(b.refused_in_a_row, 0);
        // A refusal of a token already replaced by another request costs nothing.
        assert_eq!(b.refused("t3"), Refusal::AlreadyReplaced);
        // Fresh tokens refused at once: five new ones are tried, then the run gives up.
        for i in 0..MAX_JWT_REFRESHES {
            let cur = b.token.as_ref().unwrap().jwt.clone();
            assert_eq!(b.refused(&cur), Refusal::Refresh, "refusal {i}");
            b.install(
                UploadToken {
                    jwt: format!("fresh{i}"),
                    exp: None,
                    max_file_count_allowed: 1,
                },
                1000,
            );
        }
        let cur = b.token.as_ref().unwrap().jwt.clone();
        assert_eq!(b.refused(&cur), Refusal::GiveUp(MAX_JWT_REFRESHES + 1));
        // One success resets the count.
        b.accepted(&cur);
        assert_eq!(b.refused_in_a_row, 0);
    }
}
