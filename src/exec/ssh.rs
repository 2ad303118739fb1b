//! The SSH executor: one TCP connection and one authenticated ssh2 session per host, reused for
//! every command (a channel per command).
//!
//! Fails closed: the host key is checked against known_hosts (see `known_hosts.rs`) right after the
//! handshake, before authentication and before any command; an unknown key is accepted only with
//! `DEPLOY_SSH_ACCEPT_NEW=1` (and then remembered in the known_hosts file, so later runs check
//! it), a changed one never. Output of both streams is read without blocking
//! and relayed line by line; the remote exit status (or signal) is returned as is.
//! Stays out of: what to run (plan/), printing (report/): warnings go through a callback.

use super::known_hosts::{self, KnownHosts, Verdict};
use super::{ExecError, Executor, Output, Stream};
use crate::cmd::Cmd;
use crate::env_vars;
use ssh2::{ErrorCode, MethodType, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default time to wait for a host to answer (TCP connect, then the SSH handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of SSH keepalive messages while a command runs.
const KEEPALIVE_SECS: u32 = 30;
/// libssh2's "would block".
const EAGAIN: i32 = -37;

/// Where an SSH host is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
    fn keyscan(&self) -> String {
        if self.port == 22 {
            format!("ssh-keyscan {}", self.host)
        } else {
            format!("ssh-keyscan -p {} {}", self.port, self.host)
        }
    }
}

/// How to authenticate and what to trust: read from the environment by [`SshConfig::from_env`]
/// (DEPLOY_SSH_*, DEPLOY_KNOWN_HOSTS*, HOME, SSH_AUTH_SOCK), or built directly in tests.
#[derive(Clone, Default)]
pub struct SshConfig {
    /// Private key text (DEPLOY_SSH_KEY): a secret, never printed.
    pub key_text: Option<crate::cmd::Secret>,
    pub key_file: Option<String>,
    pub passphrase: Option<crate::cmd::Secret>,
    pub known_hosts_text: Option<String>,
    pub known_hosts_file: Option<String>,
    pub accept_new: bool,
    pub connect_timeout: Option<Duration>,
    pub home: Option<PathBuf>,
    pub use_agent: bool,
}

impl SshConfig {
    pub fn from_env() -> SshConfig {
        use crate::cmd::Secret;
        SshConfig {
            key_text: env_vars::get(env_vars::DEPLOY_SSH_KEY).map(Secret::new),
            key_file: env_vars::get(env_vars::DEPLOY_SSH_KEY_FILE),
            passphrase: env_vars::get(env_vars::DEPLOY_SSH_KEY_PASSPHRASE).map(Secret::new),
            known_hosts_text: env_vars::get(env_vars::DEPLOY_KNOWN_HOSTS),
            known_hosts_file: env_vars::get(env_vars::DEPLOY_KNOWN_HOSTS_FILE),
            accept_new: env_vars::get(env_vars::DEPLOY_SSH_ACCEPT_NEW).as_deref() == Some("1"),
            connect_timeout: env_vars::get(env_vars::DEPLOY_SSH_CONNECT_TIMEOUT)
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            home: env_vars::get(env_vars::HOME).map(PathBuf::from),
            use_agent: env_vars::get(env_vars::SSH_AUTH_SOCK).is_some(),
        }
    }
}

/// Runs commands on one host over one SSH session.
pub struct SshExecutor {
    label: String,
    session: Session,
}

impl SshExecutor {
    /// Connects, checks the host key, authenticates. `warn` receives non-fatal notices (an accepted
    /// new host key, unusable known_hosts lines).
    pub fn connect(target: &SshTarget, warn: &dyn Fn(&str)) -> Result<SshExecutor, ExecError> {
        Self::connect_with(target, &SshConfig::from_env(), warn)
    }

    /// [`SshExecutor::connect`] with an explicit configuration.
    pub fn connect_with(
        target: &SshTarget,
        cfg: &SshConfig,
        warn: &dyn Fn(&str),
    ) -> Result<SshExecutor, ExecError> {
        let label = target.label();
        let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let connect_err = |message: String| ExecError::Connect {
            host: label.clone(),
            message,
        };

        let (known, known_source) =
            load_known_hosts(cfg).map_err(|message| ExecError::HostKey {
                host: label.clone(),
                message,
            })?;
        for p in &known.problems {
            warn(&format!("known_hosts: {p} (line ignored)"));
        }

        let tcp = tcp_connect(target, timeout).map_err(&connect_err)?;
        set_tcp_keepalive(&tcp);
        let mut session = Session::new().map_err(|e| connect_err(e.message().to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(timeout.as_millis() as u32);
        prefer_known_key_types(&session, &known, target);
        session.handshake().map_err(|e| {
            connect_err(format!(
                "SSH handshake with {}:{} failed: {}",
                target.host,
                target.port,
                e.message()
            ))
        })?;

        verify_host_key(&session, &known, &known_source, target, cfg, warn)?;

        session.set_keepalive(false, KEEPALIVE_SECS);
        authenticate(&session, target, cfg)?;
        // Channel opening and the final close wait may take longer than a connect.
        session.set_timeout(60_000);
        Ok(SshExecutor { label, session })
    }

    fn io_err(&self, what: &str, e: impl std::fmt::Display) -> ExecError {
        ExecError::Io {
            host: self.label.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Opens a channel, runs `line`, pumps stdin/stdout/stderr until the remote side closes, and
    /// returns the exit status. `on_data` gets raw output chunks.
    fn exec(
        &mut self,
        line: &str,
        stdin: Option<&[u8]>,
        input: Option<&mut dyn Read>,
        on_data: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32, ExecError> {
        self.session.set_blocking(true);
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.io_err("cannot open a channel", e.message()))?;
        channel
            .exec(line)
            .map_err(|e| self.io_err("cannot start the command", e.message()))?;
        self.session.set_blocking(false);
        let result = self.pump(&mut channel, stdin, input, on_data);
        self.session.set_blocking(true);
        result
    }

    fn pump(
        &self,
        channel: &mut ssh2::Channel,
        stdin: Option<&[u8]>,
        mut input: Option<&mut dyn Read>,
        on_data: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32, ExecError> {
        let mut fixed: &[u8] = stdin.unwrap_or_default();
        let mut pending: Vec<u8> = Vec::new();
        let mut pos = 0usize;
        let mut input_done = fixed.is_empty() && input.is_none();
        let mut eof_sent = false;
        let mut buf = vec![0u8; 32 * 1024];

        loop {
            let mut progress = false;

            // Feed stdin as far as the channel window allows, then send EOF.
            if !eof_sent {
                if pos == pending.len() && !input_done {
                    pending.clear();
                    pos = 0;
                    if !fixed.is_empty() {
                        pending.extend_from_slice(fixed);
                        fixed = &[];
                    } else if let Some(r) = input.as_mut() {
                        match r.read(&mut buf) {
                            Ok(0) => input_done = true,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                            // An interactive input with nothing to send yet: relay output meanwhile.
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::Interrupted
                                ) => {}
                            Err(e) => return Err(self.io_err("cannot read the input", e)),
                        }
                    } else {
                        input_done = true;
                    }
                }
                if pos < pending.len() {
                    match channel.write(&pending[pos..]) {
                        Ok(n) => {
                            pos += n;
                            progress |= n > 0;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        // The command stopped reading (it exited): its status tells the story.
                        Err(_) => {
                            pending.clear();
                            pos = 0;
                            input_done = true;
                        }
                    }
                }
                if pos == pending.len() && input_done {
                    match channel.send_eof() {
                        Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {}
                        _ => {
                            eof_sent = true;
                            progress = true;
                        }
                    }
                }
            }

            // Drain both output streams, a bounded number of reads each, so neither starves.
            for (id, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
                let mut s = channel.stream(id);
                for _ in 0..16 {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            on_data(stream, &buf[..n]);
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(self.io_err("connection lost", e)),
                    }
                }
            }

            if !progress {
                if channel.eof() {
                    break;
                }
                self.wait_socket()?;
            }
        }

        // Output is over; wait for the close that follows the exit status.
        loop {
            match channel.wait_close() {
                Ok(()) => break,
                Err(e) if e.code() == ErrorCode::Session(EAGAIN) => self.wait_socket()?,
                Err(e) => return Err(self.io_err("connection lost", e.message())),
            }
        }
        if let Ok(sig) = channel.exit_signal()
            && let Some(name) = sig.exit_signal
        {
            return Ok(128 + signal_number(&name));
        }
        channel
            .exit_status()
            .map_err(|e| self.io_err("no exit status", e.message()))
    }

    /// Waits until the socket is ready in the direction libssh2 is blocked on (at most 100 ms),
    /// sending a keepalive when one is due.
    fn wait_socket(&self) -> Result<(), ExecError> {
        let _ = self.session.keepalive_send();
        let events = match self.session.block_directions() {
            ssh2::BlockDirections::Outbound => libc::POLLOUT,
            ssh2::BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            _ => libc::POLLIN,
        };
        let mut fds = libc::pollfd {
            fd: self.session.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut fds, 1, 100) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(self.io_err("poll", e));
            }
        }
        Ok(())
    }
}

impl Drop for SshExecutor {
    fn drop(&mut self) {
        self.session.set_blocking(true);
        self.session.set_timeout(2_000);
        let _ = self.session.disconnect(None, "done", None);
    }
}

impl Executor for SshExecutor {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn run(
        &mut self,
        cmd: &Cmd,
        input: Option<&mut dyn Read>,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, ExecError> {
        let mut out = LineBuffer::default();
        let mut err = LineBuffer::default();
        let status = self.exec(
            &cmd.to_shell_line(),
            cmd.stdin.as_deref(),
            input,
            &mut |stream, data| match stream {
                Stream::Stdout => out.push(data, &mut |l| on_line(Stream::Stdout, l)),
                Stream::Stderr => err.push(data, &mut |l| on_line(Stream::Stderr, l)),
            },
        )?;
        out.finish(&mut |l| on_line(Stream::Stdout, l));
        err.finish(&mut |l| on_line(Stream::Stderr, l));
        Ok(status)
    }

    fn capture(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self.exec(
            &cmd.to_shell_line(),
            cmd.stdin.as_deref(),
            None,
            &mut |stream, data| match stream {
                Stream::Stdout => stdout.extend_from_slice(data),
                Stream::Stderr => stderr.extend_from_slice(data),
            },
        )?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn capture_to_file(&mut self, cmd: &Cmd, file: &std::fs::File) -> Result<Output, ExecError> {
        use std::io::Write;
        let mut sink = std::io::BufWriter::new(file);
        let mut stderr = Vec::new();
        let mut failed: Option<std::io::Error> = None;
        let status = self.exec(
            &cmd.to_shell_line(),
            cmd.stdin.as_deref(),
            None,
            &mut |stream, data| match stream {
                Stream::Stdout if failed.is_none() => {
                    if let Err(e) = sink.write_all(data) {
                        failed = Some(e);
                    }
                }
                Stream::Stdout => {}
                Stream::Stderr => stderr.extend_from_slice(data),
            },
        )?;
        if let Some(e) = failed.or_else(|| sink.flush().err()) {
            return Err(self.io_err("cannot write the command's output", e));
        }
        Ok(Output {
            status,
            stdout: Vec::new(),
            stderr,
        })
    }

    fn upload(&mut self, remote_path: &str, data: &[u8], mode: i32) -> Result<(), ExecError> {
        let out = self.capture(&upload_cmd(remote_path, data, mode))?;
        if out.success() {
            Ok(())
        } else {
            Err(self.io_err(
                &format!("cannot write {remote_path}"),
                format!("exit {}: {}", out.status, out.stderr_tail(5)),
            ))
        }
    }
}

/// The remote shell command of an upload: the data on standard input, written through a fresh
/// exclusive temporary file beside the target and renamed over it with `mode`
/// ([`crate::cmd::write_stdin_shell`]), so a reader never sees half a file and a planted symlink
/// is never followed.
pub fn upload_cmd(remote_path: &str, data: &[u8], mode: i32) -> Cmd {
    Cmd::shell(crate::cmd::write_stdin_shell(remote_path, mode as u32)).stdin(data.to_vec())
}

/// Splits a byte stream into lines (without the newline), keeping a partial last line.
#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(&str)) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..i]);
            emit(text.trim_end_matches('\r'));
        }
    }
    fn finish(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            emit(text.trim_end_matches('\r'));
        }
    }
}

/// The number of a signal named without its SIG prefix (as SSH reports it); unknown names count
/// as 127 so the status stays non-zero.
fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

fn tcp_connect(target: &SshTarget, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host `{}`: {e}", target.host))?
        .collect();
    let mut last = format!("host `{}` has no address", target.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                last = match e.kind() {
                    ErrorKind::ConnectionRefused => format!(
                        "connection refused by {addr} (is sshd running and listening on port {}?)",
                        target.port
                    ),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock => format!(
                        "no answer from {addr} within {}s (wrong address, or a firewall dropping packets?)",
                        timeout.as_secs()
                    ),
                    _ => format!("{addr}: {e}"),
                }
            }
        }
    }
    Err(last)
}

/// TCP keepalive, so a silently dropped connection is noticed while a long command runs.
fn set_tcp_keepalive(tcp: &TcpStream) {
    let fd = tcp.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    #[cfg(target_os = "linux")]
    {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    }
    let _ = tcp.set_nodelay(true);
}

/// known_hosts from DEPLOY_KNOWN_HOSTS, else DEPLOY_KNOWN_HOSTS_FILE, else ~/.ssh/known_hosts and
/// /etc/ssh/ssh_known_hosts. Returns the entries and a description of where they came from.
fn load_known_hosts(cfg: &SshConfig) -> Result<(KnownHosts, String), String> {
    if let Some(text) = &cfg.known_hosts_text {
        return Ok((
            KnownHosts::parse(text, env_vars::DEPLOY_KNOWN_HOSTS),
            env_vars::DEPLOY_KNOWN_HOSTS.to_string(),
        ));
    }
    if let Some(path) = cfg.known_hosts_file.clone() {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // Accepting new keys into a file that does not exist yet starts it.
            Err(e) if e.kind() == ErrorKind::NotFound && cfg.accept_new => String::new(),
            Err(e) => {
                return Err(format!(
                    "{}={path}: cannot read it: {e}",
                    env_vars::DEPLOY_KNOWN_HOSTS_FILE
                ));
            }
        };
        return Ok((KnownHosts::parse(&text, &path), path));
    }
    let mut kh = KnownHosts::default();
    let mut read = Vec::new();
    let user_file = cfg.home.as_ref().map(|h| h.join(".ssh/known_hosts"));
    for path in user_file
        .into_iter()
        .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
    {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let name = path.display().to_string();
            kh.add(&text, &name);
            read.push(name);
        }
    }
    let source = if read.is_empty() {
        "no known_hosts (DEPLOY_KNOWN_HOSTS, DEPLOY_KNOWN_HOSTS_FILE and ~/.ssh/known_hosts are all unset or missing)".to_string()
    } else {
        read.join(" and ")
    };
    Ok((kh, source))
}

/// Offers the key types known for this host first, so a host with several keys presents one that
/// known_hosts can check (as OpenSSH does).
fn prefer_known_key_types(session: &Session, known: &KnownHosts, target: &SshTarget) {
    let types = known.known_types(&target.host, target.port);
    if types.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = types
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t))
        .filter(|a| supported.contains(a))
        .collect();
    for a in &supported {
        if !prefs.contains(a) {
            prefs.push(a);
        }
    }
    let _ = session.method_pref(MethodType::HostKey, &prefs.join(","));
}

fn verify_host_key(
    session: &Session,
    known: &KnownHosts,
    source: &str,
    target: &SshTarget,
    cfg: &SshConfig,
    warn: &dyn Fn(&str),
) -> Result<(), ExecError> {
    let refuse = |message: String| ExecError::HostKey {
        host: target.label(),
        message,
    };
    let Some((blob, _)) = session.host_key() else {
        return Err(refuse("the server presented no host key".into()));
    };
    let key_type = known_hosts::key_type_of(blob).unwrap_or_else(|| "unknown".into());
    let fp = known_hosts::fingerprint_sha256(blob);
    let name = known_hosts::lookup_name(&target.host, target.port);
    let keyscan = target.keyscan();
    match known.check(&target.host, target.port, blob) {
        Verdict::Known => Ok(()),
        Verdict::Revoked { origin } => Err(refuse(format!(
            "{name} presented the {key_type} key {fp}, which {origin} marks @revoked. Nothing was run on this host."
        ))),
        Verdict::Changed { known } => {
            let expected: Vec<String> = known
                .iter()
                .map(|k| format!("{} {} ({})", k.key_type, k.fingerprint, k.origin))
                .collect();
            Err(refuse(format!(
                "the host key of {name} has CHANGED. Nothing was run on this host.\n  \
                 presented: {key_type} {fp}\n  \
                 expected:  {}\n  \
                 This may be a man-in-the-middle attack, or the host was reinstalled. If the change is \
                 expected, check the new fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
                 then replace the entry in {source} with the line printed by `{keyscan}`.",
                expected.join("\n             ")
            )))
        }
        Verdict::Unknown => {
            if cfg.accept_new {
                let line = known_hosts::entry_line(&target.host, target.port, blob);
                let remembered = match remember_file(cfg) {
                    Ok(path) => match remember_host_key(&path, &line, target, blob) {
                        Ok(()) => format!(
                            "remembered in {}: later runs check it, and refuse a changed key",
                            path.display()
                        ),
                        Err(e) => format!(
                            "for this run only: cannot write {}: {e}. Pin it: add this line to it or to DEPLOY_KNOWN_HOSTS: {line}",
                            path.display()
                        ),
                    },
                    Err(why) => format!(
                        "for this run only: it cannot be remembered, because {why}. Pin it: add this line to DEPLOY_KNOWN_HOSTS: {line}"
                    ),
                };
                warn(&format!(
                    "{}: accepting the unknown host key of {name}: {key_type} {fp} \
                     (DEPLOY_SSH_ACCEPT_NEW=1), {remembered}",
                    target.label()
                ));
                Ok(())
            } else {
                Err(refuse(format!(
                    "the host key of {name} is not known. Nothing was run on this host.\n  \
                     presented: {key_type} {fp}\n  \
                     known hosts read: {source} ({} entries)\n  \
                     To trust it, check the fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
                     then add the line printed by `{keyscan}` to DEPLOY_KNOWN_HOSTS (a secret or variable of the \
                     workflow) or to the file named by DEPLOY_KNOWN_HOSTS_FILE. DEPLOY_SSH_ACCEPT_NEW=1 accepts an \
                     unknown key (never a changed one).",
                    known.len()
                )))
            }
        }
    }
}

/// Where `DEPLOY_SSH_ACCEPT_NEW=1` remembers an accepted key: DEPLOY_KNOWN_HOSTS_FILE, else
/// ~/.ssh/known_hosts. None (and why) when the known hosts come from DEPLOY_KNOWN_HOSTS text,
/// which the tool cannot change, or there is no home directory.
fn remember_file(cfg: &SshConfig) -> Result<PathBuf, String> {
    if cfg.known_hosts_text.is_some() {
        return Err(format!(
            "the known hosts come from {}",
            env_vars::DEPLOY_KNOWN_HOSTS
        ));
    }
    if let Some(path) = &cfg.known_hosts_file {
        return Ok(PathBuf::from(path));
    }
    match &cfg.home {
        Some(home) => Ok(home.join(".ssh").join("known_hosts")),
        None => Err(format!(
            "neither {} nor HOME is set",
            env_vars::DEPLOY_KNOWN_HOSTS_FILE
        )),
    }
}

/// Appends `line` (the accepted key of `target`) to the known_hosts file `path`: the file is
/// created 0600 (its directory 0700) when missing; nothing is written when the file already trusts
/// the key (another connection of this run remembered it). One writer at a time in this process.
fn remember_host_key(
    path: &Path,
    line: &str,
    target: &SshTarget,
    blob: &[u8],
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    static ONE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut text = line.to_string();
    match std::fs::read_to_string(path) {
        Ok(existing) => {
            let known = KnownHosts::parse(&existing, "");
            if known.check(&target.host, target.port, blob) == Verdict::Known {
                return Ok(());
            }
            if !existing.is_empty() && !existing.ends_with('\n') {
                text.insert(0, '\n');
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Authenticates with DEPLOY_SSH_KEY, else DEPLOY_SSH_KEY_FILE, else the ssh-agent and the default
/// key files. Errors name what was tried, never the key itself.
fn authenticate(session: &Session, target: &SshTarget, cfg: &SshConfig) -> Result<(), ExecError> {
    let who = format!("{}@{}", target.user, target.host);
    let fail = |message: String| ExecError::Auth {
        host: target.label(),
        message,
    };
    let pass = cfg.passphrase.as_ref().map(|p| p.expose());

    if let Some(text) = &cfg.key_text {
        let text = normalize_key_text(text.expose());
        if !text.starts_with("-----BEGIN ") {
            return Err(fail(format!(
                "{} does not hold a private key: it should start with `-----BEGIN ... PRIVATE KEY-----` \
                 (for a path, use {})",
                env_vars::DEPLOY_SSH_KEY,
                env_vars::DEPLOY_SSH_KEY_FILE
            )));
        }
        return session
            .userauth_pubkey_memory(&target.user, None, &text, pass)
            .map_err(|e| {
                fail(explain_key_error(
                    &e,
                    "the key in DEPLOY_SSH_KEY",
                    &who,
                    &target.user,
                ))
            });
    }

    if let Some(path) = &cfg.key_file {
        if !Path::new(path).is_file() {
            return Err(fail(format!(
                "{}={path}: no such file",
                env_vars::DEPLOY_SSH_KEY_FILE
            )));
        }
        return session
            .userauth_pubkey_file(&target.user, None, Path::new(path), pass)
            .map_err(|e| {
                fail(explain_key_error(
                    &e,
                    &format!("the key file {path}"),
                    &who,
                    &target.user,
                ))
            });
    }

    let mut tried: Vec<String> = Vec::new();
    if cfg.use_agent
        && let Ok(mut agent) = session.agent()
        && agent.connect().is_ok()
    {
        let _ = agent.list_identities();
        let ids = agent.identities().unwrap_or_default();
        for id in &ids {
            if agent.userauth(&target.user, id).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        tried.push(format!("the ssh-agent ({} keys)", ids.len()));
        let _ = agent.disconnect();
    }
    if let Some(home) = &cfg.home {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = home.join(".ssh").join(name);
            if path.is_file() {
                match session.userauth_pubkey_file(&target.user, None, &path, pass) {
                    Ok(()) if session.authenticated() => return Ok(()),
                    _ => tried.push(path.display().to_string()),
                }
            }
        }
    }
    if tried.is_empty() {
        Err(fail(format!(
            "no SSH key to log in as {who}: set {} (the private key text, e.g. from a secret) or {}, \
             or start an ssh-agent, or create ~/.ssh/id_ed25519",
            env_vars::DEPLOY_SSH_KEY,
            env_vars::DEPLOY_SSH_KEY_FILE
        )))
    } else {
        Err(fail(format!(
            "{who} rejected every key tried: {}. Is the public key in ~{}/.ssh/authorized_keys on the host?",
            tried.join(", "),
            target.user
        )))
    }
}

fn explain_key_error(e: &ssh2::Error, what: &str, who: &str, user: &str) -> String {
    match e.code() {
        // LIBSSH2_ERROR_FILE: the key could not be read or decrypted.
        ErrorCode::Session(-16) => format!(
            "cannot use {what}: not a readable private key, or it needs a passphrase ({}): {}",
            env_vars::DEPLOY_SSH_KEY_PASSPHRASE,
            e.message()
        ),
        // AUTHENTICATION_FAILED / PUBLICKEY_UNVERIFIED
        ErrorCode::Session(-18) | ErrorCode::Session(-19) => format!(
            "{who} rejected {what}. Is its public key in ~{user}/.ssh/authorized_keys on the host?"
        ),
        _ => format!("{what}: {}", e.message()),
    }
}

/// Key text as it arrives from CI secrets: CRLF line ends, `\n` escapes, missing final newline.
fn normalize_key_text(text: &str) -> String {
    let mut t = text.trim().replace("\r\n", "\n");
    if !t.contains('\n') && t.contains("\\n") {
        t = t.replace("\\n", "\n");
    }
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_splits_and_keeps_partial_lines() {
        let mut b = LineBuffer::default();
        let mut lines = Vec::new();
        b.push(b"a\r\nb", &mut |l| lines.push(l.to_string()));
        b.push(b"c\n\nd", &mut |l| lines.push(l.to_string()));
        b.finish(&mut |l| lines.push(l.to_string()));
        assert_eq!(lines, ["a", "bc", "", "d"]);
    }

    #[test]
    fn upload_command_writes_atomically() {
        let c = upload_cmd("/srv/my app/.env", b"X=1\n", 0o600);
        assert_eq!(c.stdin.as_deref(), Some(&b"X=1\n"[..]));
        let line = c.to_shell_line();
        assert!(line.contains("mkdir -p '\\''/srv/my app'\\''"), "{line}");
        assert!(line.contains("mktemp"), "{line}");
        assert!(line.contains("chmod 600"), "{line}");
        assert!(line.contains("mv -f"), "{line}");
        assert!(
            !line.contains(".deploy-action-tmp"),
            "no fixed name: {line}"
        );
    }

    #[test]
    fn key_text_is_normalized() {
        assert_eq!(
            normalize_key_text("-----BEGIN X-----\\nabc\\n-----END X-----"),
            "-----BEGIN X-----\nabc\n-----END X-----\n"
        );
        assert_eq!(normalize_key_text("a\r\nb\r\n"), "a\nb\n");
    }

    #[test]
    fn signals_are_non_zero() {
        assert_eq!(signal_number("KILL"), 9);
        assert_eq!(signal_number("WEIRD"), 127);
    }

    #[test]
    fn refused_port_names_the_address() {
        // Port 1 on loopback: nothing listens there.
        let t = SshTarget {
            user: "u".into(),
            host: "127.0.0.1".into(),
            port: 1,
        };
        let err = tcp_connect(&t, Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("connection refused by 127.0.0.1:1"), "{err}");
    }
}
