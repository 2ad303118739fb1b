//! HTTP integrations, the only layer that talks to SaaS APIs: one client builder (`http`), one retry
//! loop (`retry`), and the typed clients built on them (`cloudflare`; `github`, on octocrab over the
//! same reqwest, with the same user agent and retry loop). Clients return typed results and never
//! print.

pub mod cloudflare;
pub mod github;
pub mod http;
pub mod retry;
