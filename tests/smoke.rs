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

/// Runs the binary with stdout on a pipe whose reading end is already closed (what `| head -3`
/// becomes once head has its lines): every write fails with EPIPE, deterministically.
fn run_with_closed_stdout(args: &[&str]) -> std::process::Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: a valid two-element array for pipe(2).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let p = Project::new();
    std::process::Command::new(crate::harness::BIN)
        .args(args)
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run deploy-action")
}

#[test]
fn completions_into_a_closed_pipe_exit_cleanly() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_with_closed_stdout(&["completions", shell]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert!(!stderr.contains("panicked"), "{shell}: {stderr}");
        assert_eq!(stderr, "", "{shell}");
    }
    // The same holds for the other commands that print a document.
    let out = run_with_closed_stdout(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn completions_print_a_script() {
    let p = Project::new();
    p.run(&["completions", "bash"])
        .go()
        .status(0)
        .stdout_has("_deploy__action()")
        .stdout_has("complete -F _deploy__action");
}
