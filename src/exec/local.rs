//! The local executor: child processes on this machine (duct for captured runs; std pipes with
//! reader threads for streamed runs, which relay stdout and stderr line by line as they arrive).

use super::{ExecError, Executor, Output, Stream};
use crate::cmd::Cmd;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

/// Runs commands on this machine.
#[derive(Default)]
pub struct LocalExecutor;

impl LocalExecutor {
    fn command(cmd: &Cmd) -> Command {
        let mut c = Command::new(&cmd.program);
        c.args(cmd.args.iter().map(|a| a.expose()));
        for k in &cmd.scrub {
            c.env_remove(k);
        }
        for (k, v) in &cmd.env {
            c.env(k, v.expose());
        }
        if let Some(dir) = &cmd.cwd {
            c.current_dir(dir);
        }
        c
    }

    fn spawn_error(cmd: &Cmd, e: std::io::Error) -> ExecError {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{}` not found on PATH", cmd.program)
        } else {
            e.to_string()
        };
        ExecError::Spawn {
            host: "local".into(),
            program: cmd.program.clone(),
            message,
        }
    }
}

/// `cmd` as a duct expression: program, arguments, environment, directory and stdin (its bytes, or
/// nothing), stderr captured, a non-zero exit not an error. Callers choose stdout.
fn expression(cmd: &Cmd) -> duct::Expression {
    let mut expr = duct::cmd(&cmd.program, cmd.args.iter().map(|a| a.expose()))
        .stderr_capture()
        .unchecked();
    for k in &cmd.scrub {
        expr = expr.env_remove(k);
    }
    for (k, v) in &cmd.env {
        expr = expr.env(k, v.expose());
    }
    if let Some(dir) = &cmd.cwd {
        expr = expr.dir(dir);
    }
    match &cmd.stdin {
        Some(bytes) => expr.stdin_bytes(bytes.clone()),
        None => expr.stdin_null(),
    }
}

impl Executor for LocalExecutor {
    fn label(&self) -> String {
        "local".into()
    }

    fn run(
        &mut self,
        cmd: &Cmd,
        input: Option<&mut dyn Read>,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, ExecError> {
        let mut c = Self::command(cmd);
        let wants_stdin = cmd.stdin.is_some() || input.is_some();
        c.stdin(if wants_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| Self::spawn_error(cmd, e))?;
        let io_err = |e: std::io::Error| ExecError::Io {
            host: "local".into(),
            message: e.to_string(),
        };

        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel::<(Stream, String)>();
        let readers: Vec<_> = [
            (Stream::Stdout, Box::new(stdout) as Box<dyn Read + Send>),
            (Stream::Stderr, Box::new(stderr)),
        ]
        .into_iter()
        .map(|(stream, pipe)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                while reader
                    .read_until(b'\n', &mut buf)
                    .map(|n| n > 0)
                    .unwrap_or(false)
                {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                    buf.clear();
                }
            })
        })
        .collect();
        drop(tx);

        if let Some(mut stdin) = child.stdin.take() {
            // Feed stdin on this thread while the readers drain the pipes; a closed pipe (the child
            // exited early) is not an error of ours: its exit status tells the story. While an
            // interactive input has nothing to send (WouldBlock), relay the output that came.
            let feed = || -> std::io::Result<()> {
                if let Some(bytes) = &cmd.stdin {
                    stdin.write_all(bytes)?;
                }
                let Some(input) = input else {
                    return Ok(());
                };
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match input.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => stdin.write_all(&buf[..n])?,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                                Ok((stream, line)) => on_line(stream, &line),
                                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                                // Both output pipes closed: the child is gone, stop feeding it.
                                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                                    return Ok(());
                                }
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match feed() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(io_err(e)),
                _ => {}
            }
        }
        for (stream, line) in rx {
            on_line(stream, &line);
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child.wait().map_err(io_err)?;
        Ok(exit_code(status))
    }

    fn capture(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = expression(cmd)
            .stdout_capture()
            .run()
            .map_err(|e| Self::spawn_error(cmd, e))?;
        Ok(Output {
            status: exit_code(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn capture_to_file(&mut self, cmd: &Cmd, file: &std::fs::File) -> Result<Output, ExecError> {
        let sink = file.try_clone().map_err(|e| ExecError::Io {
            host: "local".into(),
            message: format!("cannot write the output of `{}`: {e}", cmd.program),
        })?;
        let out = expression(cmd)
            .stdout_file(sink)
            .run()
            .map_err(|e| Self::spawn_error(cmd, e))?;
        Ok(Output {
            status: exit_code(out.status),
            stdout: Vec::new(),
            stderr: out.stderr,
        })
    }

    fn upload(&mut self, remote_path: &str, data: &[u8], mode: i32) -> Result<(), ExecError> {
        use std::os::unix::fs::PermissionsExt;
        let io_err = |e: std::io::Error| ExecError::Io {
            host: "local".into(),
            message: format!("{remote_path}: {e}"),
        };
        let path = std::path::Path::new(remote_path);
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        std::fs::create_dir_all(parent).map_err(io_err)?;
        // A fresh temporary file beside the target, created exclusively (0600, never a planted
        // link), given the mode, then renamed over the target: a reader never sees half a file.
        let base = path
            .file_name()
            .map_or_else(|| "file".into(), |b| b.to_string_lossy().into_owned());
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{base}.deploy-action-"))
            .tempfile_in(parent)
            .map_err(io_err)?;
        tmp.write_all(data).map_err(io_err)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode as u32))
            .map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        Ok(())
    }
}

/// The exit code, or 128 + signal for a killed process (as shells report it).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_streams_and_reports_status() {
        let mut ex = LocalExecutor;
        let mut lines = Vec::new();
        let status = ex
            .run(
                &Cmd::shell("echo out; echo err >&2; cat; exit 3").stdin("in\n"),
                None,
                &mut |s, l| lines.push((s, l.to_string())),
            )
            .unwrap();
        assert_eq!(status, 3);
        assert!(lines.contains(&(Stream::Stdout, "out".into())));
        assert!(lines.contains(&(Stream::Stderr, "err".into())));
        assert!(lines.contains(&(Stream::Stdout, "in".into())));
    }

    /// An input that sends one line, then has nothing to send (WouldBlock) until the executor has
    /// relayed that line's echo, then ends: proves output is relayed while the input is still open.
    struct Interactive {
        step: usize,
        echoed: std::sync::Arc<std::sync::atomic::AtomicBool>,
        waits: usize,
    }

    impl Read for Interactive {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            use std::sync::atomic::Ordering;
            match self.step {
                0 => {
                    self.step = 1;
                    buf[..6].copy_from_slice(b"first\n");
                    Ok(6)
                }
                // Bounded, so an executor that does not relay meanwhile fails instead of hanging.
                1 if !self.echoed.load(Ordering::SeqCst) && self.waits < 1000 => {
                    self.waits += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    Err(std::io::ErrorKind::WouldBlock.into())
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn interactive_input_sees_output_before_it_ends() {
        let echoed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut input = Interactive {
            step: 0,
            echoed: echoed.clone(),
            waits: 0,
        };
        let mut seen_while_open = false;
        let status = LocalExecutor
            .run(&Cmd::new("cat"), Some(&mut input), &mut |_, l| {
                if l == "first" {
                    seen_while_open = true;
                    echoed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            })
            .unwrap();
        assert_eq!(status, 0);
        assert!(seen_while_open);
        assert!(
            input.waits < 1000,
            "the line was relayed only after the input ended"
        );
    }

    #[test]
    fn capture_to_file_streams_binary_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::File::create(&path).unwrap();
        let o = LocalExecutor
            .capture_to_file(&Cmd::shell("printf 'a\\000b'; echo err >&2; exit 2"), &file)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\0b");
        assert_eq!(o.status, 2);
        assert_eq!(o.stderr, b"err\n");
        assert!(o.stdout.is_empty());
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = LocalExecutor
            .capture(&Cmd::new("no-such-program-xyz"))
            .unwrap_err();
        assert!(
            err.to_string().contains("`no-such-program-xyz` not found"),
            "{err}"
        );
    }
}
