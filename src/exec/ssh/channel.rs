//! One command on an open session: a channel per command, its standard input fed as far as the
//! channel window allows, both output streams drained without blocking (neither starves), and the
//! exit status (or signal) read once the remote side closes. Waits on the socket with `poll`,
//! sending keepalives while a long command runs.

use super::SshExecutor;
use crate::exec::{ExecError, Stream};
use ssh2::{Channel, ErrorCode};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::AsRawFd;

/// libssh2's "would block".
const EAGAIN: i32 = -37;

impl SshExecutor {
    /// Opens a channel, runs `line`, pumps stdin/stdout/stderr until the remote side closes, and
    /// returns the exit status. `on_data` gets raw output chunks.
    pub(super) fn exec(
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

    /// Moves data until the command's output is over: stdin in, both output streams out, waiting
    /// on the socket when neither moved. Returns the exit status.
    fn pump(
        &self,
        channel: &mut Channel,
        stdin: Option<&[u8]>,
        input: Option<&mut dyn Read>,
        on_data: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32, ExecError> {
        let mut feed = StdinFeed::new(stdin, input);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut progress = feed
                .feed(channel, &mut buf)
                .map_err(|e| self.io_err("cannot read the input", e))?;
            progress |= self.drain(channel, &mut buf, on_data)?;
            if !progress {
                if channel.eof() {
                    break;
                }
                self.wait_socket()?;
            }
        }
        self.exit_status(channel)
    }

    /// Drains both output streams, a bounded number of reads each, so neither starves. Returns
    /// whether any output came.
    fn drain(
        &self,
        channel: &mut Channel,
        buf: &mut [u8],
        on_data: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<bool, ExecError> {
        let mut progress = false;
        for (id, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let mut s = channel.stream(id);
            for _ in 0..16 {
                match s.read(buf) {
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
        Ok(progress)
    }

    /// Once output is over: waits for the close that follows the exit status, and returns the
    /// status (128 + the signal's number when a signal ended the command).
    fn exit_status(&self, channel: &mut Channel) -> Result<i32, ExecError> {
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

/// A command's standard input on its way to the channel: the fixed bytes (`Cmd::stdin`) first,
/// then the reader, then EOF.
struct StdinFeed<'a, 'r> {
    fixed: &'a [u8],
    input: Option<&'r mut dyn Read>,
    /// Bytes read and not yet written from `pos` on.
    pending: Vec<u8>,
    pos: usize,
    /// Nothing more to read (or the command stopped reading).
    input_done: bool,
    eof_sent: bool,
}

impl<'a, 'r> StdinFeed<'a, 'r> {
    fn new(stdin: Option<&'a [u8]>, input: Option<&'r mut dyn Read>) -> Self {
        let fixed = stdin.unwrap_or_default();
        StdinFeed {
            input_done: fixed.is_empty() && input.is_none(),
            fixed,
            input,
            pending: Vec::new(),
            pos: 0,
            eof_sent: false,
        }
    }

    /// Feeds stdin as far as the channel window allows, then sends EOF. Returns whether anything
    /// moved; fails only when the input cannot be read.
    fn feed(&mut self, channel: &mut Channel, buf: &mut [u8]) -> std::io::Result<bool> {
        if self.eof_sent {
            return Ok(false);
        }
        let mut progress = false;
        if self.pos == self.pending.len() && !self.input_done {
            self.refill(buf)?;
        }
        if self.pos < self.pending.len() {
            match channel.write(&self.pending[self.pos..]) {
                Ok(n) => {
                    self.pos += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The command stopped reading (it exited): its status tells the story.
                Err(_) => {
                    self.pending.clear();
                    self.pos = 0;
                    self.input_done = true;
                }
            }
        }
        if self.pos == self.pending.len() && self.input_done {
            match channel.send_eof() {
                Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {}
                _ => {
                    self.eof_sent = true;
                    progress = true;
                }
            }
        }
        Ok(progress)
    }

    /// Takes the next bytes to send: the fixed ones, else a read of the input.
    fn refill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.pending.clear();
        self.pos = 0;
        if !self.fixed.is_empty() {
            self.pending.extend_from_slice(self.fixed);
            self.fixed = &[];
        } else if let Some(r) = self.input.as_mut() {
            match r.read(buf) {
                Ok(0) => self.input_done = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                // An interactive input with nothing to send yet: relay output meanwhile.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        } else {
            self.input_done = true;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_non_zero() {
        assert_eq!(signal_number("KILL"), 9);
        assert_eq!(signal_number("WEIRD"), 127);
    }
}
