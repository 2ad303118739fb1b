//! The environment lock: `<dir>/.deploy-action/lock/` on every host of an environment, taken by an
//! atomic `mkdir`, with `owner.json` inside ([`LockOwner`]: who, which run, a run token and a
//! heartbeat).
//!
//! [`EnvLock`] is the one way a run takes it (`up`, `promote`, `rollback`, and the records that
//! `pages` and `migrate` append): every host in the manifest's order before anything changes,
//! held for the whole run, refreshed by a heartbeat thread, and released on every host at the end
//! — after a failure and after SIGINT/SIGTERM too ([`crate::cancel`] only records the signal, so
//! the run reaches its release). A held lock on any host releases the ones already taken and
//! exits 4 naming the holder; `--lock-wait` waits instead (holding the earlier hosts: a fixed
//! order cannot deadlock). So two runs never interleave across hosts.
//!
//! A run removes only a lock carrying its own token: a lock taken over (released by hand and
//! taken by another run) is left alone and reported. A lock whose heartbeat stopped (the holder
//! died: a killed runner, a third Ctrl-C) is reported as stale after [`stale_after`] — reported,
//! never broken silently: `deploy-action lock release` does that, and removes only the owner it
//! showed.
//!
//! The token is one per process (a process is one run), so a run that already holds the lock —
//! or meets on a later host the very lock it took on an earlier one (two hosts sharing a
//! directory) — takes nothing twice.

use crate::cmd::{Cmd, shell_quote};
use crate::env_vars;
use crate::error::{Error, RecordFailure, Result, STDERR_TAIL_LINES};
use crate::exec::Executor;
use crate::manifest::{Environment, Host};
use crate::report::Report;
use crate::state::{LockOwner, StatePaths};
use crate::{cancel, clock};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A lock whose heartbeat is older than this is reported as stale (see [`stale_after`]).
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often the holder refreshes the heartbeat, at most (see [`heartbeat_every`]).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(20);
/// How often a run waiting for a held lock asks again.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// When a lock counts as stale: [`STALE_AFTER`], or `DEPLOY_TEST_LOCK_STALE_AFTER`.
pub fn stale_after() -> Duration {
    env_vars::get(env_vars::DEPLOY_TEST_LOCK_STALE_AFTER)
        .and_then(|v| crate::settings::parse_duration(&v).ok())
        .unwrap_or(STALE_AFTER)
}

/// How often the holder beats: a quarter of [`stale_after`], at most [`HEARTBEAT_EVERY`].
pub fn heartbeat_every() -> Duration {
    HEARTBEAT_EVERY
        .min(stale_after() / 4)
        .max(Duration::from_millis(100))
}

/// This run's token: 128 random bits, hex (the same for every lock this process takes).
pub fn run_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        use std::io::Read;
        let mut bytes = [0u8; 16];
        let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if random.is_err() {
            let seed = format!(
                "{}:{:?}:{}",
                std::process::id(),
                Instant::now(),
                clock::now_rfc3339()
            );
            bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
        }
        hex::encode(bytes)
    })
}

/// The holder in `owner.json`, or a placeholder saying it is missing or unreadable.
pub fn parse_owner(bytes: &[u8]) -> LockOwner {
    serde_json::from_slice(bytes).unwrap_or_else(|_| LockOwner {
        run_url: "(owner.json missing or unreadable)".into(),
        actor: "?".into(),
        sha: "?".into(),
        started_at: "?".into(),
        ..Default::default()
    })
}

/// How long ago the holder last showed a sign of life: its heartbeat, else (an owner file from
/// before heartbeats) when it took the lock.
pub fn heartbeat_age(owner: &LockOwner) -> Option<Duration> {
    let at = if owner.heartbeat_at.is_empty() {
        &owner.started_at
    } else {
        &owner.heartbeat_at
    };
    clock::age(at)
}

/// Why a held lock is possibly stale, if it looks so.
pub fn staleness(owner: &LockOwner) -> Option<String> {
    if !owner.hostname.is_empty()
        && owner.hostname == this_hostname()
        && owner.pid != 0
        && !std::path::Path::new(&format!("/proc/{}", owner.pid)).exists()
    {
        return Some(format!(
            "process {} on this machine ({}) is gone",
            owner.pid, owner.hostname
        ));
    }
    let limit = stale_after();
    match heartbeat_age(owner) {
        Some(age) if age > limit => Some(format!(
            "no heartbeat for {}s (a running holder refreshes it every {}s)",
            age.as_secs(),
            heartbeat_every().as_secs_f64()
        )),
        _ => None,
    }
}

/// One line about the holder: who, which run, the heartbeat's age, and whether it looks stale.
pub fn describe(o: &LockOwner) -> String {
    let mut s = format!(
        "held by {} since {} (run {}, sha {}",
        o.actor, o.started_at, o.run_url, o.sha
    );
    if !o.command.is_empty() {
        s.push_str(&format!(", command {}", o.command));
    }
    if !o.hostname.is_empty() {
        s.push_str(&format!(", host {} pid {}", o.hostname, o.pid));
    }
    s.push(')');
    s.push_str(&liveness(o));
    s
}

/// "; heartbeat 12s ago", and "; possibly stale: …" when it looks so.
pub fn liveness(o: &LockOwner) -> String {
    let mut s = match heartbeat_age(o) {
        Some(age) if !o.heartbeat_at.is_empty() => format!("; heartbeat {}s ago", age.as_secs()),
        _ => "; no heartbeat recorded".to_string(),
    };
    if let Some(why) = staleness(o) {
        s.push_str(&format!(
            "; possibly stale: {why} — if no deploy is running, release it with `deploy-action lock release`"
        ));
    }
    s
}

/// This machine's host name.
pub fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A path quoted for the shell.
fn q(path: &str) -> String {
    shell_quote(path).into_owned()
}

/// `owner.json` as written: one line of JSON (so the token test below is exact).
fn owner_text(owner: &LockOwner) -> String {
    serde_json::to_string(owner).unwrap_or_default()
}

/// A shell test that is true when the lock's owner file carries `token` (hex: no quoting needed).
pub fn owns_test(paths: &StatePaths, token: &str) -> String {
    debug_assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    format!(
        "grep -q '\"token\": *\"{token}\"' {} 2>/dev/null",
        q(&paths.lock_owner())
    )
}

/// Writes the owner file (standard input) through a unique temporary name in the lock directory.
fn write_owner_sh(paths: &StatePaths) -> String {
    let lock = q(&paths.lock_dir());
    let owner = q(&paths.lock_owner());
    format!(
        "t=$(mktemp {lock}/.owner.XXXXXX) && cat > \"$t\" && chmod 644 \"$t\" && mv -f \"$t\" {owner}"
    )
}

/// Takes the lock on one host: prints `taken`, or `held` and the owner file, or `error`.
pub fn take_cmd(paths: &StatePaths, owner_json: &str) -> Cmd {
    let (root, lock) = (q(&paths.root), q(&paths.lock_dir()));
    let owner = q(&paths.lock_owner());
    Cmd::shell(format!(
        "if mkdir -p {root} && mkdir {lock} 2>/dev/null; then \
           if {write}; then echo taken; else rm -rf {lock}; echo error; fi; \
         elif [ -d {lock} ]; then echo held; cat {owner} 2>/dev/null; \
         else echo error; fi",
        write = write_owner_sh(paths)
    ))
    .stdin(owner_json.as_bytes().to_vec())
}

/// Removes the lock on one host only if it carries `token`: prints `released`, `gone` (no lock),
/// `other` and the owner file (someone else's now), or `error`.
pub fn release_cmd(paths: &StatePaths, token: &str) -> Cmd {
    let lock = q(&paths.lock_dir());
    let owner = q(&paths.lock_owner());
    Cmd::shell(format!(
        "if [ ! -d {lock} ]; then echo gone; \
         elif {test}; then rm -rf {lock} && echo released || echo error; \
         else echo other; cat {owner} 2>/dev/null; fi",
        test = owns_test(paths, token)
    ))
}

/// Refreshes the owner file (standard input) only if it still carries `token`: prints `beat`,
/// `lost` and the owner file, or `error`.
pub fn beat_cmd(paths: &StatePaths, token: &str, owner_json: &str) -> Cmd {
    let owner = q(&paths.lock_owner());
    Cmd::shell(format!(
        "if {test}; then {write} && echo beat || echo error; \
         else echo lost; cat {owner} 2>/dev/null; fi",
        test = owns_test(paths, token),
        write = write_owner_sh(paths)
    ))
    .stdin(owner_json.as_bytes().to_vec())
}

/// `lock release`: removes the lock only if its owner is still the one shown — the same token,
/// or (an owner file without one) the same bytes. Prints `released`, `gone`, or `changed` and
/// the owner file now there.
pub fn release_shown_cmd(paths: &StatePaths, shown: &Shown) -> Cmd {
    let lock = q(&paths.lock_dir());
    let owner = q(&paths.lock_owner());
    let token = &shown.owner.token;
    let same = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        owns_test(paths, token)
    } else if shown.text.is_empty() {
        format!("[ ! -e {owner} ]")
    } else {
        format!("cmp -s - {owner}")
    };
    Cmd::shell(format!(
        "if [ ! -d {lock} ]; then echo gone; \
         elif {same}; then rm -rf {lock} && echo released || echo error; \
         else echo changed; cat {owner} 2>/dev/null; fi"
    ))
    .stdin(shown.text.as_bytes().to_vec())
}

/// A lock as `lock status` showed it: the owner file's bytes and what they say.
#[derive(Clone, Debug)]
pub struct Shown {
    pub text: String,
    pub owner: LockOwner,
}

/// The holder of the lock on one host, if it is held (`None` when free).
pub fn status(ex: &mut dyn Executor, paths: &StatePaths) -> Result<Option<Shown>> {
    let lock = q(&paths.lock_dir());
    let owner = q(&paths.lock_owner());
    let out = ex.capture(&Cmd::shell(format!(
        "if [ -d {lock} ]; then echo held; cat {owner} 2>/dev/null; else echo free; fi"
    )))?;
    let (word, rest) = answer(&out.stdout_str());
    Ok((word == "held").then(|| Shown {
        owner: parse_owner(rest.as_bytes()),
        text: rest,
    }))
}

/// What `lock release` found when it came to remove a lock it showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    Released,
    /// Nobody holds it any more.
    Gone,
    /// Another owner holds it now: left in place.
    Changed(LockOwner),
    Failed(String),
}

/// Removes the lock on one host only if its owner is still the one `shown` ([`release_shown_cmd`]).
pub fn release_shown(ex: &mut dyn Executor, paths: &StatePaths, shown: &Shown) -> Result<Released> {
    let out = ex.capture(&release_shown_cmd(paths, shown))?;
    let (word, rest) = answer(&out.stdout_str());
    Ok(match word.as_str() {
        "released" => Released::Released,
        "gone" => Released::Gone,
        "changed" => Released::Changed(parse_owner(rest.as_bytes())),
        _ => Released::Failed(out.stderr_tail(3)),
    })
}

/// The first line of a lock command's output, and the rest (an owner file).
fn answer(stdout: &str) -> (String, String) {
    let (first, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    (first.trim().to_string(), rest.to_string())
}

/// An executor for the heartbeat thread, which keeps its own connections (notices go nowhere:
/// the run's own connection to the host has reported them already).
fn open_quiet(host: &Host) -> Result<Box<dyn Executor>> {
    Ok(crate::exec::connect(host, &|_: &str| {})?)
}

/// The background heartbeat: refreshes the owner file on every host this run locked, every
/// [`heartbeat_every`], through its own connection to each host — so it keeps beating while
/// the run waits on a health gate, a pull or a lock. Returns its warnings when stopped.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Heartbeat {
    fn start(hosts: Vec<Host>, paths: StatePaths, owner: LockOwner) -> Heartbeat {
        let (stop, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let mut beating: Vec<Beating> = hosts
                .into_iter()
                .map(|host| Beating {
                    host,
                    ex: None,
                    warned: false,
                })
                .collect();
            let mut warnings = Vec::new();
            let every = heartbeat_every();
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let mut o = owner.clone();
                o.heartbeat_at = clock::now_rfc3339();
                let text = owner_text(&o);
                beating.retain_mut(|b| b.beat(&paths, &o.token, &text, &mut warnings));
            }
            warnings
        });
        Heartbeat { stop, handle }
    }

    fn stop(self) -> Vec<String> {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

/// One host the heartbeat thread keeps alive: its own connection (opened on the first beat, and
/// again after an error), and whether a problem there was reported already.
struct Beating {
    host: Host,
    ex: Option<Box<dyn Executor>>,
    warned: bool,
}

impl Beating {
    /// One beat; false once the lock is no longer this run's (stop beating there).
    fn beat(
        &mut self,
        paths: &StatePaths,
        token: &str,
        text: &str,
        warnings: &mut Vec<String>,
    ) -> bool {
        let label = self.host.label();
        if self.ex.is_none() {
            match open_quiet(&self.host) {
                Ok(x) => self.ex = Some(x),
                Err(e) => {
                    self.warn(format!("{label}: lock heartbeat: {e}"), warnings);
                    return true;
                }
            }
        }
        let Some(x) = self.ex.as_mut() else {
            return true;
        };
        let out = match x.capture(&beat_cmd(paths, token, text)) {
            Ok(out) => out,
            Err(e) => {
                self.ex = None;
                self.warn(format!("{label}: lock heartbeat: {e}"), warnings);
                return true;
            }
        };
        match answer(&out.stdout_str()) {
            (w, _) if w == "beat" => true,
            (w, now) if w == "lost" => {
                let who = if now.trim().is_empty() {
                    "it was removed".to_string()
                } else {
                    format!("it is now {}", describe(&parse_owner(now.as_bytes())))
                };
                warnings.push(format!(
                    "{label}: this run's lock was taken away while it ran ({who}); the heartbeat stopped there"
                ));
                false
            }
            _ => {
                let why = format!("{label}: lock heartbeat failed: {}", out.stderr_tail(2));
                self.warn(why, warnings);
                true
            }
        }
    }

    /// Reports the first problem on this host only (a heartbeat runs every few seconds).
    fn warn(&mut self, w: String, warnings: &mut Vec<String>) {
        if !std::mem::replace(&mut self.warned, true) {
            warnings.push(w);
        }
    }
}

/// The environment lock of one run, held on every host of the environment (see the module
/// header). Released by [`EnvLock::release_all`], or when dropped.
pub struct EnvLock<'r> {
    report: &'r Report,
    env: String,
    paths: StatePaths,
    owner: LockOwner,
    /// The hosts whose lock this guard took, in order, with the connection that took it.
    taken: Vec<(Host, Box<dyn Executor>)>,
    heartbeat: Option<Heartbeat>,
    /// `--lock-wait`, counted from `begun` for every host together.
    wait: Option<Duration>,
    begun: Instant,
}

impl<'r> EnvLock<'r> {
    /// Takes the lock on every host of `env`, in the manifest's order, as `owner` (its token is
    /// set to this run's). A held lock waits up to `wait`, else releases what was taken and is
    /// exit 4 with the holder; a signal stops the waiting. An environment without hosts has
    /// nothing to lock.
    pub fn acquire_all(
        report: &'r Report,
        env: &Environment,
        owner: &LockOwner,
        wait: Option<Duration>,
    ) -> Result<EnvLock<'r>> {
        let mut lock = EnvLock::begin(report, env, owner, wait);
        for host in &env.hosts {
            lock.take_host(host)?;
        }
        lock.hold();
        Ok(lock)
    }

    /// A lock of `env` that holds no host yet ([`EnvLock::take_host`] takes them one by one, in
    /// the manifest's order; [`EnvLock::hold`] starts the heartbeat once all are taken). `wait`
    /// counts from now, for all the hosts together.
    pub fn begin(
        report: &'r Report,
        env: &Environment,
        owner: &LockOwner,
        wait: Option<Duration>,
    ) -> EnvLock<'r> {
        cancel::install();
        let mut owner: LockOwner =
            serde_json::from_str(&crate::ledger::masked_json(owner, &|s| report.redact(s)))
                .unwrap_or_else(|_| owner.clone());
        owner.token = run_token().to_string();
        owner.heartbeat_at = clock::now_rfc3339();
        EnvLock {
            report,
            env: env.name.clone(),
            paths: StatePaths::new(&env.dir),
            owner,
            taken: Vec::new(),
            heartbeat: None,
            wait,
            begun: Instant::now(),
        }
    }

    /// Takes the lock on one more host (see [`EnvLock::acquire_all`]). On an error the hosts
    /// taken so far are released again, saying so.
    pub fn take_host(&mut self, host: &Host) -> Result<()> {
        let report = self.report;
        let (wait, begun) = (self.wait, self.begun);
        let taken = crate::exec::connect(host, &|w: &str| report.warn(w))
            .map_err(Error::from)
            .and_then(|ex| self.take(host, ex, wait, begun));
        if let Err(e) = taken {
            let released = self.release_taken();
            if !released.is_empty() {
                report.info(&format!(
                    "released the {} lock again on {}: nothing was changed",
                    self.env,
                    released.join(", ")
                ));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Every host is taken: the heartbeat keeps the owner files fresh until the release.
    pub fn hold(&mut self) {
        if !self.taken.is_empty() && self.heartbeat.is_none() {
            let hosts = self.taken.iter().map(|(h, _)| h.clone()).collect();
            self.heartbeat = Some(Heartbeat::start(
                hosts,
                self.paths.clone(),
                self.owner.clone(),
            ));
        }
    }

    /// The owner written on the hosts (with this run's token).
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    /// Takes the lock on one host, waiting while it is held (up to `wait` from `begun`).
    fn take(
        &mut self,
        host: &Host,
        mut ex: Box<dyn Executor>,
        wait: Option<Duration>,
        begun: Instant,
    ) -> Result<()> {
        let mut announced = false;
        let mut last_beat = Instant::now();
        loop {
            if cancel::requested().is_some() {
                return Err(Error::Cancelled {
                    host: Some(host.label()),
                    reason: format!("{} while taking the {} lock", cancel::reason(), self.env),
                    consequence: "nothing was changed".into(),
                });
            }
            let text = owner_text(&self.owner);
            let out = ex.capture(&take_cmd(&self.paths, &text))?;
            let (word, rest) = answer(&out.stdout_str());
            let holder = match word.as_str() {
                "taken" => {
                    self.taken.push((host.clone(), ex));
                    return Ok(());
                }
                "held" => parse_owner(rest.as_bytes()),
                _ => {
                    let what = format!("take the {} lock", self.env);
                    return Err(
                        RecordFailure::new(host.label(), what, self.paths.lock_dir())
                            .stderr(out.stderr_tail(STDERR_TAIL_LINES))
                            .into(),
                    );
                }
            };
            if holder.token == self.owner.token {
                // This run's own lock: taken on an earlier host sharing the directory, or held
                // already by the command that called this one.
                return Ok(());
            }
            let waited = begun.elapsed();
            let Some(left) = wait
                .and_then(|w| w.checked_sub(waited))
                .filter(|l| !l.is_zero())
            else {
                return Err(Error::LockHeld(format!(
                    "{}: the {} lock is {}",
                    host.label(),
                    self.env,
                    describe(&holder)
                )));
            };
            if !std::mem::replace(&mut announced, true) {
                self.report.info(&format!(
                    "{}: the {} lock is {}; waiting up to {}s",
                    host.label(),
                    self.env,
                    describe(&holder),
                    wait.unwrap_or_default().as_secs()
                ));
            }
            if last_beat.elapsed() >= heartbeat_every() {
                self.beat_taken();
                last_beat = Instant::now();
            }
            cancel::sleep(WAIT_POLL.min(left));
        }
    }

    /// While waiting for a later host: keeps the locks already taken alive.
    fn beat_taken(&mut self) {
        let mut o = self.owner.clone();
        o.heartbeat_at = clock::now_rfc3339();
        let text = owner_text(&o);
        for (_, ex) in self.taken.iter_mut() {
            let _ = ex.capture(&beat_cmd(&self.paths, &o.token, &text));
        }
    }

    /// Releases every lock this guard took (only where it is still this run's); returns the
    /// hosts released. Problems are reported as warnings.
    fn release_taken(&mut self) -> Vec<String> {
        if let Some(hb) = self.heartbeat.take() {
            for w in hb.stop() {
                self.report.warn(&w);
            }
        }
        let mut released = Vec::new();
        let token = self.owner.token.clone();
        for (host, mut ex) in std::mem::take(&mut self.taken).into_iter().rev() {
            let out = ex.capture(&release_cmd(&self.paths, &token));
            let label = host.label();
            match out.as_ref().map(|o| answer(&o.stdout_str())) {
                Ok((w, _)) if w == "released" => released.push(label),
                Ok((w, _)) if w == "gone" => self.report.warn(&format!(
                    "{label}: the {} lock had already been removed (by `lock release`?) while this run held it",
                    self.env
                )),
                Ok((w, now)) if w == "other" => self.report.warn(&format!(
                    "{label}: the {} lock was taken over while this run held it; it is now {} — left in place",
                    self.env,
                    describe(&parse_owner(now.as_bytes()))
                )),
                Ok(_) => self.report.warn(&format!(
                    "{label}: could not release the {} lock: {}; release it with `deploy-action lock release`",
                    self.env,
                    out.map(|o| o.stderr_tail(3)).unwrap_or_default()
                )),
                Err(e) => self.report.warn(&format!(
                    "{label}: could not release the {} lock: {e}; release it with `deploy-action lock release`",
                    self.env
                )),
            }
        }
        released.reverse();
        released
    }

    /// Releases the lock on every host this run took it on (reverse order).
    pub fn release_all(mut self) {
        self.release_taken();
    }
}

impl Drop for EnvLock<'_> {
    fn drop(&mut self) {
        if !self.taken.is_empty() || self.heartbeat.is_some() {
            self.release_taken();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(host: &str, pid: u32, at: &str) -> LockOwner {
        LockOwner {
            run_url: "local".into(),
            actor: "alice".into(),
            sha: "abc".into(),
            started_at: at.into(),
            command: "up".into(),
            hostname: host.into(),
            pid,
            ..Default::default()
        }
    }

    #[test]
    fn staleness_is_reported_not_acted_on() {
        let now = clock::now_rfc3339();
        let me = this_hostname();
        assert_eq!(staleness(&owner(&me, std::process::id(), &now)), None);
        assert!(
            staleness(&owner(&me, u32::MAX - 1, &now))
                .unwrap()
                .contains("is gone")
        );
        let old = owner("elsewhere", 1, "2020-01-01T00:00:00Z");
        assert!(staleness(&old).unwrap().contains("no heartbeat for"));
        let d = describe(&old);
        assert!(
            d.contains("held by alice") && d.contains("possibly stale"),
            "{d}"
        );
        // A holder taken long ago whose heartbeat is fresh is alive.
        let mut beating = old.clone();
        beating.heartbeat_at = now;
        assert_eq!(staleness(&beating), None);
        assert!(describe(&beating).contains("heartbeat 0s ago"));
    }

    #[test]
    fn the_run_token_is_hex_and_the_same_for_the_whole_run() {
        let t = run_token();
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(t, run_token());
    }

    #[test]
    fn lock_commands_take_beat_and_release_only_their_own_lock() {
        use crate::exec::local::LocalExecutor;
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(&dir.path().display().to_string());
        let mine = LockOwner {
            token: "aa11".into(),
            ..owner("h", 1, "2026-01-01T00:00:00Z")
        };
        let text = owner_text(&mine);
        let run = |c: Cmd| answer(&LocalExecutor.capture(&c).unwrap().stdout_str());
        assert_eq!(run(take_cmd(&paths, &text)).0, "taken");
        let (w, held) = run(take_cmd(&paths, &text));
        assert_eq!(
            (w.as_str(), parse_owner(held.as_bytes())),
            ("held", mine.clone())
        );
        assert_eq!(run(beat_cmd(&paths, "aa11", &text)).0, "beat");
        assert_eq!(run(beat_cmd(&paths, "bb22", &text)).0, "lost");
        let (w, now) = run(release_cmd(&paths, "bb22"));
        assert_eq!(
            (w.as_str(), parse_owner(now.as_bytes()).token),
            ("other", "aa11".into())
        );
        assert!(std::path::Path::new(&paths.lock_owner()).exists());
        assert_eq!(run(release_cmd(&paths, "aa11")).0, "released");
        assert_eq!(run(release_cmd(&paths, "aa11")).0, "gone");
    }
}
