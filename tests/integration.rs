//! Integration tests: the real binary against real services (scripts/test-env.sh).
//! One test binary, modules grouped by feature.

mod action;
mod build;
mod changes;
mod demo;
mod engine_up;
mod env_lock;
mod errors;
mod exec;
mod fake_cloudflare;
mod fake_github;
mod github;
mod github_api;
mod guard;
mod harness;
mod layers;
mod ledger;
mod migrate;
mod migrate_gate;
mod migrate_r10;
mod migrate_trace;
mod pages;
mod plan;
mod pull;
mod secrets;
mod smoke;
mod up;
