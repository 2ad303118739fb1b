//! The SSH executor: one TCP connection and one authenticated ssh2 session per host, reused for
//! every command (a channel per command).
//!
//! Fails closed: the host key is checked against known_hosts (see `known_hosts.rs`) right after the
//! handshake, before authentication and before any command; an unknown key is accepted only with
//! `DEPLOY_SSH_ACCEPT_NEW=1` (and then remembered in the known_hosts file, so later runs check
//! it), a changed one never. Output of both streams is read without blocking
//! and relayed line by line; the remote exit status (or signal) is returned as is.
//! Stays out of: what to run (plan/), printing (report/): warnings go through a callback.
//!
//! Here: the target, the configuration, connecting and the [`Executor`] verbs. The parts of a
//! session live beside it: `host_key.rs` (known_hosts and the host key check), `auth.rs`
//! (logging in), `channel.rs` (one command on a channel: stdin in, output out, the exit status).

use super::{ExecError, Executor, Output, Stream};
use crate::cmd::Cmd;
use crate::env_vars;
use auth::authenticate;
use host_key::{load_known_hosts, prefer_known_key_types, verify_host_key};
use ssh2::Session;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

mod auth;
mod channel;
mod host_key;

/// Default time to wait for a host to answer (TCP connect, then the SSH handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of SSH keepalive messages while a command runs.
const KEEPALIVE_SECS: u32 = 30;

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
