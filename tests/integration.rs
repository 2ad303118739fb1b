//! Integration tests: the real binary against real services (scripts/test-env.sh).
//! One test binary, modules grouped by feature.

mod harness;
mod smoke;
mod up;
