//! The dry-run executor: records every command and upload, runs nothing, answers success with
//! empty output. Used by `--dry-run` (the caller prints the record) and by tests asserting on steps.
//! [`ReadThrough`] is the dry run of one real target: it records every change and sends reads
//! ([`Executor::read`]) to the target, so a dry run plans from what the host really is.

use super::{ExecError, Executor, Output, Stream};
use crate::cmd::Cmd;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// One thing a dry run would have done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// `command` is the displayed form (secrets as `***`).
    Run {
        host: String,
        command: String,
        stdin_bytes: usize,
    },
    Upload {
        host: String,
        path: String,
        mode: i32,
        bytes: usize,
    },
}

/// A shared, ordered list of what dry-run executors recorded (one list for every host).
#[derive(Clone, Debug, Default)]
pub struct Recording(Arc<Mutex<Vec<Recorded>>>);

impl Recording {
    /// Everything recorded so far, in order.
    pub fn list(&self) -> Vec<Recorded> {
        self.0.lock().expect("recording lock").clone()
    }
    fn push(&self, r: Recorded) {
        self.0.lock().expect("recording lock").push(r);
    }
}

/// Records instead of running.
pub struct DryRunExecutor {
    label: String,
    recording: Recording,
}

impl DryRunExecutor {
    pub fn new(label: impl Into<String>, recording: Recording) -> Self {
        DryRunExecutor {
            label: label.into(),
            recording,
        }
    }
    /// What this executor (and the others sharing its recording) recorded.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.recording.list()
    }
}

impl Executor for DryRunExecutor {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn run(
        &mut self,
        cmd: &Cmd,
        input: Option<&mut dyn Read>,
        _on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, ExecError> {
        // An input stream is not consumed: a dry run reads nothing.
        let _ = input;
        self.recording.push(Recorded::Run {
            host: self.label.clone(),
            command: cmd.display(),
            stdin_bytes: cmd.stdin.as_ref().map_or(0, Vec::len),
        });
        Ok(0)
    }

    fn capture(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.run(cmd, None, &mut |_, _| {})?;
        Ok(Output::default())
    }

    fn capture_to_file(&mut self, cmd: &Cmd, _file: &std::fs::File) -> Result<Output, ExecError> {
        self.capture(cmd)
    }

    fn upload(&mut self, remote_path: &str, data: &[u8], mode: i32) -> Result<(), ExecError> {
        self.recording.push(Recorded::Upload {
            host: self.label.clone(),
            path: remote_path.to_string(),
            mode,
            bytes: data.len(),
        });
        Ok(())
    }

    fn records(&self) -> bool {
        true
    }
}

/// A dry run of one real target: changes are recorded (as [`DryRunExecutor`] does), reads go to
/// the target.
pub struct ReadThrough {
    recorder: DryRunExecutor,
    target: Box<dyn Executor>,
}

impl ReadThrough {
    pub fn new(target: Box<dyn Executor>, recording: Recording) -> Self {
        ReadThrough {
            recorder: DryRunExecutor::new(target.label(), recording),
            target,
        }
    }
}

impl Executor for ReadThrough {
    fn label(&self) -> String {
        self.target.label()
    }

    fn run(
        &mut self,
        cmd: &Cmd,
        input: Option<&mut dyn Read>,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, ExecError> {
        self.recorder.run(cmd, input, on_line)
    }

    fn capture(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.recorder.capture(cmd)
    }

    fn capture_to_file(&mut self, cmd: &Cmd, file: &std::fs::File) -> Result<Output, ExecError> {
        self.recorder.capture_to_file(cmd, file)
    }

    fn upload(&mut self, remote_path: &str, data: &[u8], mode: i32) -> Result<(), ExecError> {
        self.recorder.upload(remote_path, data, mode)
    }

    fn read(&mut self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.target.capture(cmd)
    }

    fn records(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Secret;

    #[test]
    fn records_runs_and_uploads_in_order_with_secrets_hidden() {
        let rec = Recording::default();
        let mut a = DryRunExecutor::new("a", rec.clone());
        let mut b = DryRunExecutor::new("b", rec.clone());
        let out = a
            .capture(&Cmd::new("echo").secret(Secret::new("hunter2")))
            .unwrap();
        assert!(out.success() && out.stdout.is_empty());
        b.upload("/srv/x", b"abc", 0o644).unwrap();
        assert_eq!(
            b.recorded(),
            vec![
                Recorded::Run {
                    host: "a".into(),
                    command: "echo ***".into(),
                    stdin_bytes: 0
                },
                Recorded::Upload {
                    host: "b".into(),
                    path: "/srv/x".into(),
                    mode: 0o644,
                    bytes: 3
                },
            ]
        );
    }

    #[test]
    fn read_through_reads_the_target_and_records_every_change() {
        let rec = Recording::default();
        let mut ex = ReadThrough::new(Box::new(crate::exec::local::LocalExecutor), rec.clone());
        assert!(ex.records());
        let read = ex.read(&Cmd::new("echo").arg("real")).unwrap();
        assert_eq!(read.stdout_str(), "real\n");
        let changed = ex
            .capture(&Cmd::new("touch").arg("/nonexistent/x"))
            .unwrap();
        assert!(changed.success() && changed.stdout.is_empty());
        assert_eq!(
            rec.list(),
            [Recorded::Run {
                host: "local".into(),
                command: "touch /nonexistent/x".into(),
                stdin_bytes: 0
            }]
        );
    }
}
