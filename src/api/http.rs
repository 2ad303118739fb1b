//! The one place that builds HTTP clients: timeouts, user agent, TLS (rustls), and URLs made safe
//! to print. Generic: no knowledge of any particular API.

use std::time::Duration;

/// The user agent every request carries.
pub fn user_agent() -> String {
    format!("deploy-action/{}", env!("CARGO_PKG_VERSION"))
}

/// Builds an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    user_agent: String,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            user_agent: user_agent(),
        }
    }
}

impl HttpClientBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    /// Time allowed to open a connection.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Time allowed for a whole request, body included.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
    pub fn build(self) -> Result<HttpClient, reqwest::Error> {
        let inner = reqwest::blocking::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(self.user_agent)
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(HttpClient { inner })
    }
}

/// A configured blocking client; cheap to clone (connections are pooled and shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::blocking::Client,
}

impl HttpClient {
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::new()
    }
    pub fn inner(&self) -> &reqwest::blocking::Client {
        &self.inner
    }
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
        self.inner.request(method, url)
    }
}

/// The slowest upload rate a request timeout allows for: 64 KiB/s, about a 0.5 Mbit/s uplink
/// (slow ADSL, workers-sdk #1015).
pub const MIN_THROUGHPUT_BYTES_PER_SEC: u64 = 64 * 1024;

/// The timeout of a request that sends `body_bytes`: `base` plus the time the body needs at
/// [`MIN_THROUGHPUT_BYTES_PER_SEC`]. A 54 MB upload body gets about 14 minutes, a small JSON body
/// little more than `base`.
pub fn timeout_for_body(base: Duration, body_bytes: u64) -> Duration {
    base + Duration::from_secs(body_bytes.div_ceil(MIN_THROUGHPUT_BYTES_PER_SEC))
}

/// A URL safe to print: user info and the query string are dropped.
pub fn display_safe_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{host}/{path}")
        }
        None => rest.rsplit('@').next().unwrap_or(rest).to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

/// The first `n` characters of a response body, on one line, for error messages.
pub fn excerpt(body: &str, n: usize) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            display_safe_url("https://user:pw@api.example.com/a/b?token=x#f"),
            "https://api.example.com/a/b"
        );
        assert_eq!(
            display_safe_url("http://127.0.0.1:8080/client/v4"),
            "http://127.0.0.1:8080/client/v4"
        );
    }

    #[test]
    fn excerpts_are_one_line_and_cut() {
        assert_eq!(
            excerpt("<html>\n <b>502</b>\n</html>", 100),
            "<html> <b>502</b> </html>"
        );
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }

    #[test]
    fn timeouts_grow_with_the_body() {
        let base = Duration::from_secs(60);
        assert_eq!(timeout_for_body(base, 0), base);
        assert_eq!(timeout_for_body(base, 1), base + Duration::from_secs(1));
        // A full bucket: 40 MiB raw is ~53.3 MiB of base64 JSON.
        let t = timeout_for_body(base, 40 * 1024 * 1024 / 3 * 4);
        assert_eq!(t, base + Duration::from_secs(854));
    }

    #[test]
    fn builder_builds() {
        let c = HttpClient::builder()
            .timeout(Duration::from_secs(5))
            .user_agent("x/1")
            .build();
        assert!(c.is_ok());
        assert!(user_agent().starts_with("deploy-action/"));
    }
}
