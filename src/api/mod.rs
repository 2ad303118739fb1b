//! Clients of the SaaS APIs (GitHub, Cloudflare): the only layer that talks HTTP.

pub mod github;
