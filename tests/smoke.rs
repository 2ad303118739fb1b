//! The binary starts, prints help and version, and rejects bad usage with exit 2.

use crate::harness::Project;

#[test]
fn help_and_version() {
    let p = Project::new();
    p.run(&["--help"])
        .go()
        .status(0)
        .stdout_has("Usage: deploy-action");
    p.run(&["--version"])
        .go()
        .status(0)
        .stdout_has(env!("CARGO_PKG_VERSION"));
}

#[test]
fn unknown_subcommand_is_exit_2() {
    let p = Project::new();
    p.run(&["deploy-everything"])
        .go()
        .status(2)
        .stderr_has("unrecognized subcommand");
}
