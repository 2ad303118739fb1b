//! The integration-test harness: runs the real `deploy-action` binary in a throwaway directory
//! (usually a git repository made for the test) and checks status, stdout and stderr together.

#![allow(dead_code)]

pub mod http;
pub mod runner;
pub mod services;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_deploy-action");

/// A temporary project directory with helpers to write files and make commits.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty directory (no git).
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("da-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// A git repository with an identity configured and one empty initial commit.
    pub fn git() -> Project {
        let p = Project::new();
        p.git_cmd(&["init", "-q", "-b", "main"]);
        p.git_cmd(&["config", "user.email", "test@example.com"]);
        p.git_cmd(&["config", "user.name", "Test"]);
        p.git_cmd(&["config", "commit.gpgsign", "false"]);
        p.git_cmd(&["commit", "-q", "--allow-empty", "-m", "initial"]);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parent directories) and returns self for chaining.
    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// Writes deploy.yml.
    pub fn manifest(&self, yaml: &str) -> &Self {
        self.file("deploy.yml", yaml)
    }

    /// Stages everything and commits; returns the new HEAD sha.
    pub fn commit(&self, message: &str) -> String {
        self.git_cmd(&["add", "-A"]);
        self.git_cmd(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git_cmd(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Runs git in the project and returns stdout; panics on failure.
    pub fn git_cmd(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command builder running the binary in this project.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::new(self.path(), args)
    }
}

/// One invocation of the binary.
#[must_use]
pub struct Run {
    cwd: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    stdin: Option<Vec<u8>>,
}

/// The outcome of a [`Run`].
#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts the exit status, showing both streams when it differs.
    #[track_caller]
    pub fn status(&self, expected: i32) -> &Self {
        assert_eq!(
            self.status, expected,
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that neither stream contains `needle` (a secret, say).
    #[track_caller]
    pub fn nowhere(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "{needle:?} was printed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Run {
    pub fn new(cwd: &Path, args: &[&str]) -> Run {
        let mut env = BTreeMap::new();
        env.insert("NO_COLOR".into(), "1".into());
        env.insert("DEPLOY_TEST_NO_PROGRESS".into(), "1".into());
        env.insert("DEPLOY_TEST_NO_RETRY_DELAY".into(), "1".into());
        Run {
            cwd: cwd.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env,
            stdin: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.env.insert(key.into(), value.as_ref().into());
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        for (k, v) in vars {
            self.env.insert(k.into(), v);
        }
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the binary with a clean environment (only PATH, HOME and what the test set), so the
    /// developer's or CI's own variables (GITHUB_ACTIONS on a runner) cannot change the outcome.
    pub fn go(self) -> Outcome {
        use std::io::Write;
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args).current_dir(&self.cwd).env_clear();
        for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.env);
        cmd.stdin(if self.stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn deploy-action");
        if let (Some(bytes), Some(mut stdin)) = (self.stdin, child.stdin.take()) {
            std::thread::spawn(move || stdin.write_all(&bytes));
        }
        let out = child.wait_with_output().expect("wait deploy-action");
        Outcome {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
