//! The environment lock against the real binary, Docker engine and sshd: every host locked before
//! anything changes and released on all, two runs never interleaving across hosts, a run removing
//! only its own lock, `lock release` removing only the owner it showed, a killed run's lock
//! reported stale once its heartbeat stops, and its release marked `interrupted` by the next run.
//!
//! Two hosts on one machine: `local` and the test sshd share the file system, so to give them two
//! lock directories the binary runs in its own mount namespace (`unshare --mount`) where the
//! environment's `dir` is a bind mount of another directory. `local` (in the namespace) sees that
//! one — host A; the ssh host (sshd, outside) sees the real `dir` — host B.

use crate::harness::{BIN, Outcome, Project, services};
use crate::up::{Stack, WEB_V1, WEB_V2, sh, ssh_env};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for something a run is about to do.
const PATIENCE: Duration = Duration::from_secs(120);

/// The binary, wrapped by `wrapper` (a namespace), with the harness's clean environment.
pub(crate) fn command(
    cwd: &Path,
    wrapper: &[String],
    args: &[&str],
    env: &[(&str, String)],
) -> Command {
    let mut argv: Vec<String> = wrapper.to_vec();
    argv.push(BIN.to_string());
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    clean_env(&mut cmd, cwd, env);
    cmd
}

/// The harness's clean environment (PATH, HOME, LANG, TMPDIR, no colour, no progress) and `env`.
fn clean_env(cmd: &mut Command, cwd: &Path, env: &[(&str, String)]) {
    cmd.current_dir(cwd).env_clear();
    for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("NO_COLOR", "1").env("DEPLOY_TEST_NO_PROGRESS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// Runs in a mount namespace where `dir` shows `host_a` (see the module header).
pub(crate) fn as_host_a(host_a: &Path, dir: &Path) -> Vec<String> {
    [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"",
        "sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([host_a.display().to_string(), dir.display().to_string()])
    .collect()
}

/// Runs on a machine named `other-runner` (its own UTS namespace): its lock then cannot be
/// judged by its process id, only by its heartbeat, as on another CI runner.
fn on_another_runner() -> Vec<String> {
    [
        "unshare",
        "--uts",
        "sh",
        "-c",
        "hostname other-runner && exec \"$@\"",
        "sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A run in the background whose output the test watches line by line. The process id is the
/// binary's (the wrappers `exec` it).
pub(crate) struct Bg {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Bg {
    pub(crate) fn spawn(cmd: Command) -> Bg {
        Bg::start(cmd, false)
    }

    /// [`Bg::spawn`] with a pipe to its standard input ([`Bg::answer`]).
    pub(crate) fn spawn_with_stdin(cmd: Command) -> Bg {
        Bg::start(cmd, true)
    }

    /// Writes `text` to the run's standard input.
    pub(crate) fn answer(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("spawned with a stdin pipe");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn start(mut cmd: Command, with_stdin: bool) -> Bg {
        let mut child = cmd
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn deploy-action");
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Bg {
            stdin: child.stdin.take(),
            child,
            lines,
            stdout: String::new(),
            stderr,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until a line contains `needle`; fails (showing the output) otherwise.
    #[track_caller]
    pub(crate) fn wait_for(&mut self, needle: &str) {
        let end = Instant::now() + PATIENCE;
        while Instant::now() < end {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("the run never printed {needle:?}:\n{}", self.stdout);
    }

    pub(crate) fn finish(mut self) -> Outcome {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        for line in self.lines.iter() {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        Outcome {
            status: status.code().unwrap_or(-1),
            stdout: self.stdout,
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

/// Runs a command to the end.
pub(crate) fn go(mut cmd: Command) -> Outcome {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run deploy-action");
    Outcome {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `f` until it gives something, failing after [`PATIENCE`] with `what`.
#[track_caller]
pub(crate) fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `web` serves only after `secs` seconds (its Docker health check waits meanwhile), so a run
/// holds its lock in the health gate for that long.
pub(crate) fn slow_web(s: &Stack, secs: u32) {
    s.compose_web_extra(
        WEB_V2,
        WEB_V1,
        &format!("    command: [\"sh\", \"-c\", \"sleep {secs}; exec httpd -f -p 80 -h /www\"]\n"),
    );
    let text = std::fs::read_to_string(s.project.path().join("compose.yml")).unwrap();
    s.project.file(
        "compose.yml",
        &text.replacen(
            "      retries: 3\n",
            "      retries: 3\n      start_period: 120s\n",
            1,
        ),
    );
}

/// The owner file of the lock under `dir`, if there is one.
pub(crate) fn owner(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(".deploy-action/lock/owner.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// An owner file of another run, written by hand under `dir`.
fn foreign_lock(dir: &Path, actor: &str, token: &str) {
    let lock = dir.join(".deploy-action/lock");
    std::fs::create_dir_all(&lock).unwrap();
    let now = sh("date -u +%Y-%m-%dT%H:%M:%SZ");
    std::fs::write(
        lock.join("owner.json"),
        format!(
            r#"{{"run_url":"https://github.com/o/r/actions/runs/42","actor":"{actor}","sha":"abc123","started_at":"{now}","command":"up","hostname":"ci-runner","pid":7,"token":"{token}","heartbeat_at":"{now}"}}"#
        ),
    )
    .unwrap();
}

/// A stack on two hosts: `local` (host A, a directory of its own) and the test sshd (host B, the
/// real `dir`).
fn two_hosts(tag: &str) -> (Stack, tempfile::TempDir, String) {
    let s = Stack::new(tag, "\"local\"", 5);
    let url = services::var("DA_TEST_SSH_URL");
    s.hosts(&format!("\"local\", \"{url}\""));
    s.project.commit("two hosts");
    let a = tempfile::Builder::new()
        .prefix("da-host-a-")
        .tempdir()
        .unwrap();
    (s, a, url.trim_start_matches("ssh://").to_string())
}

fn up_two_hosts(s: &Stack, a: &Path, extra: &[(&str, String)]) -> Command {
    let mut env = ssh_env();
    env.extend(extra.iter().cloned());
    command(
        s.project.path(),
        &as_host_a(a, s.host_dir.path()),
        &["up", "--env", "test", "--all"],
        &env,
    )
}

#[test]
fn a_lock_held_on_the_second_host_exits_4_and_releases_the_lock_taken_on_the_first() {
    let (s, a, host_b) = two_hosts("elock1");
    foreign_lock(
        s.host_dir.path(),
        "octocat",
        "feedfacefeedfacefeedfacefeedface",
    );
    let out = go(up_two_hosts(&s, a.path(), &[]));
    out.status(4)
        .stderr_has(&format!("{host_b}: the test lock is held by octocat"))
        .stdout_has("released the test lock again on local: nothing was changed");
    assert!(
        a.path().join(".deploy-action").is_dir() && !a.path().join(".deploy-action/lock").exists(),
        "host A's lock was taken, then released"
    );
    assert_eq!(owner(s.host_dir.path()).unwrap()["actor"], "octocat");
    assert!(!a.path().join(".deploy-action/releases").exists());
    assert!(s.container("web").is_empty(), "nothing was deployed");
}

#[test]
fn two_concurrent_runs_on_two_hosts_never_interleave() {
    let (s, a, _) = two_hosts("elock2");
    slow_web(&s, 8);
    s.project.commit("slow web");
    let stale = [("DEPLOY_TEST_LOCK_STALE_AFTER", "2s".to_string())];
    let mut x = Bg::spawn(up_two_hosts(&s, a.path(), &stale));
    x.wait_for("local: health gate:");
    // While X is still deploying host A, host B's lock is X's already: every host first.
    let (oa, ob) = (owner(a.path()).unwrap(), owner(s.host_dir.path()).unwrap());
    assert_eq!(ob["pid"], x.pid(), "{ob}");
    assert_eq!(oa["token"], ob["token"]);
    assert!(!s.host_dir.path().join(".deploy-action/releases").exists());
    // The heartbeat goes on while the health gate waits.
    let first = ob["heartbeat_at"].clone();
    eventually("host B's heartbeat moves during the gate", || {
        owner(s.host_dir.path()).filter(|o| o["heartbeat_at"] != first)
    });
    // A second run meets X's lock on the first host: exit 4 naming X, nothing taken.
    let y = go(up_two_hosts(&s, a.path(), &[]));
    y.status(4)
        .stderr_has("local: the test lock is held by")
        .stderr_has(&format!("pid {}", x.pid()));
    assert!(
        !y.stdout.contains("released the test lock again"),
        "{}",
        y.stdout
    );
    let x = x.finish();
    x.status(0);
    for dir in [a.path(), s.host_dir.path()] {
        assert!(
            !dir.join(".deploy-action/lock").exists(),
            "{}",
            dir.display()
        );
        let audit = std::fs::read_to_string(dir.join(".deploy-action/audit.log")).unwrap();
        assert_eq!(audit.lines().count(), 2, "X's start and end only:\n{audit}");
        assert!(!dir.join(".deploy-action/releases/2.json").exists());
    }
}

#[test]
fn a_run_does_not_remove_a_lock_it_does_not_own() {
    let s = Stack::new("elock3", "\"local\"", 5);
    slow_web(&s, 6);
    s.project.commit("slow web");
    let mut x = Bg::spawn(command(
        s.project.path(),
        &[],
        &["up", "--env", "test", "--all"],
        &[("DEPLOY_TEST_LOCK_STALE_AFTER", "2s".into())],
    ));
    x.wait_for("local: health gate:");
    // Someone releases X's lock by hand, and another run takes it.
    s.project
        .run(&["lock", "release", "--env", "test", "--yes"])
        .go()
        .status(0)
        .stdout_has("lock released");
    foreign_lock(
        s.host_dir.path(),
        "octocat",
        "0123456789abcdef0123456789abcdef",
    );
    let x = x.finish();
    x.status(0)
        .stdout_has("this run's lock was taken away while it ran")
        .stdout_has(
            "the test lock was taken over while this run held it; it is now held by octocat",
        )
        .stdout_has("left in place");
    let o = owner(s.host_dir.path()).expect("the other run's lock is left in place");
    assert_eq!(o["token"], "0123456789abcdef0123456789abcdef");
}

#[test]
fn lock_release_refuses_when_the_owner_changed_after_it_was_shown() {
    let host = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [\"local\"]\n    dir: {}\n",
        host.path().display()
    ));
    foreign_lock(host.path(), "octocat", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    // On a terminal (`script` gives the binary one), `lock release` shows the owner and asks.
    let mut cmd = Command::new("script");
    cmd.args([
        "-q",
        "-e",
        "-c",
        &format!("{BIN} lock release --env staging"),
        "/dev/null",
    ]);
    clean_env(&mut cmd, p.path(), &[]);
    let mut bg = Bg::spawn_with_stdin(cmd);
    bg.wait_for("[y/N]");
    // Between the question and the answer, octocat's run ended and hubot's took the lock.
    std::fs::remove_dir_all(host.path().join(".deploy-action/lock")).unwrap();
    foreign_lock(host.path(), "hubot", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    bg.answer("y\n");
    let out = bg.finish();
    out.status(4)
        .stdout_has("held by octocat")
        .stdout_has("changed hands after it was shown: it is now held by hubot");
    assert_eq!(
        owner(host.path()).unwrap()["actor"],
        "hubot",
        "left in place"
    );
    // Unchanged, it is removed.
    p.run(&["lock", "release", "--env", "staging", "--yes"])
        .go()
        .status(0)
        .stdout_has("held by hubot")
        .stdout_has("staging lock released");
    assert!(owner(host.path()).is_none());
}

#[test]
fn a_killed_runs_lock_is_reported_stale_and_its_release_marked_interrupted_by_the_next_run() {
    let s = Stack::new("elock5", "\"local\"", 5);
    slow_web(&s, 60);
    s.project.commit("slow web");
    let stale = [("DEPLOY_TEST_LOCK_STALE_AFTER", "3s".to_string())];
    let mut x = Bg::spawn(command(
        s.project.path(),
        &on_another_runner(),
        &["up", "--env", "test", "--all"],
        &stale,
    ));
    x.wait_for("local: health gate:");
    let status = || {
        go(command(
            s.project.path(),
            &[],
            &["lock", "status", "--env", "test"],
            &stale,
        ))
    };
    // Alive: past the staleness threshold since it took the lock, its heartbeat keeps it fresh.
    let taken = owner(s.host_dir.path()).unwrap()["started_at"].clone();
    assert_eq!(
        owner(s.host_dir.path()).unwrap()["hostname"],
        "other-runner"
    );
    eventually("4 s of heartbeats", || {
        let o = owner(s.host_dir.path())?;
        let secs = |v: &serde_json::Value| {
            sh(&format!("date -u -d {} +%s", v.as_str().unwrap()))
                .parse::<u64>()
                .ok()
        };
        (secs(&o["heartbeat_at"])? >= secs(&taken)? + 4).then_some(())
    });
    let alive = status();
    alive.status(0).stdout_has("heartbeat");
    assert!(!alive.stdout.contains("possibly stale"), "{}", alive.stdout);
    // Killed (SIGKILL: nothing can be cleaned up): reported stale once the heartbeat stops.
    sh(&format!("kill -KILL {}", x.pid()));
    x.finish();
    let stale_report = eventually("the lock reported stale", || {
        let out = status();
        out.stdout.contains("possibly stale").then_some(out)
    });
    stale_report
        .stdout_has("no heartbeat for")
        .stdout_has("deploy-action lock release");
    assert_eq!(s.record(1)["status"], "in_progress");
    // Never broken silently: the next run exits 4 until someone releases it.
    s.project
        .run(&["up", "--env", "test", "--all"])
        .envs(stale.clone())
        .go()
        .status(4)
        .stderr_has("possibly stale: no heartbeat for");
    s.project
        .run(&["lock", "release", "--env", "test", "--yes"])
        .go()
        .status(0);
    // The next run marks the killed run's release interrupted and says what runs.
    s.compose(WEB_V2, WEB_V1);
    s.project.commit("web v2, fast");
    let next = s.up(&["--all"]);
    next.status(0)
        .stdout_has(
            "release 1 was left in_progress by a run that did not finish; marked interrupted",
        )
        .stdout_has(&format!("web runs {WEB_V2}"))
        .stdout_has(&format!("api runs {WEB_V1}"));
    let r1 = s.record(1);
    assert_eq!(r1["status"], "interrupted", "{r1}");
    assert!(r1["notes"].to_string().contains("running then: "), "{r1}");
    assert_eq!(s.record(2)["status"], "live");
    let audit = s.state("audit.log");
    let line = audit
        .lines()
        .find(|l| l.contains("\"action\":\"interrupted\""))
        .unwrap_or_else(|| panic!("no audit line:\n{audit}"));
    assert!(
        line.contains("\"release\":1") && line.contains(&format!("web runs {WEB_V2}")),
        "{line}"
    );
}
