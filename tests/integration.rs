//! Integration tests: the real binary against real services (scripts/test-env.sh).
//! One test binary, modules grouped by feature.

mod build;
mod changes;
mod github;
mod harness;
mod plan;
mod smoke;
mod up;
