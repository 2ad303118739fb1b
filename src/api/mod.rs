//! HTTP integrations: one client builder (`http`), one retry loop (`retry`), and the typed API
//! clients built on them (`cloudflare`). Clients return typed results and never print.

pub mod cloudflare;
pub mod http;
pub mod retry;
