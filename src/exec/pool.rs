//! One executor per host, made on first use and reused by every stage: `local` → the local
//! executor, `ssh://…` → an SSH session (connected lazily), or dry-run executors sharing one
//! [`Recording`]. Executors of different hosts are used from different threads (one per host);
//! a host that cannot be reached keeps its error, so later stages do not wait for it again.

use super::dry_run::{DryRunExecutor, Recording};
use super::local::LocalExecutor;
use super::ssh::{SshExecutor, SshTarget};
use super::{ExecError, Executor};
use crate::manifest::Host;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An executor shared between the stages of a run.
pub type SharedExecutor = Arc<Mutex<Box<dyn Executor + Send>>>;

type Slot = Arc<Mutex<Option<Result<SharedExecutor, ExecError>>>>;

/// The executors of a run, one per host.
#[derive(Default)]
pub struct ExecutorPool {
    dry_run: Option<Recording>,
    slots: Mutex<HashMap<Host, Slot>>,
}

impl ExecutorPool {
    /// Real executors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dry-run executors recording into `recording`.
    pub fn dry_run(recording: Recording) -> Self {
        ExecutorPool {
            dry_run: Some(recording),
            slots: Mutex::default(),
        }
    }

    /// The executor of `host`, connecting on first use. `warn` receives non-fatal notices of the
    /// connection (an accepted new host key). Two threads asking for one host get one session.
    pub fn get(&self, host: &Host, warn: &dyn Fn(&str)) -> Result<SharedExecutor, ExecError> {
        let slot = self
            .slots
            .lock()
            .expect("pool lock")
            .entry(host.clone())
            .or_default()
            .clone();
        // Only this host's slot is held while connecting: other hosts connect in parallel.
        let mut slot = slot.lock().expect("slot lock");
        if slot.is_none() {
            *slot = Some(self.make(host, warn));
        }
        slot.clone().expect("filled above")
    }

    fn make(&self, host: &Host, warn: &dyn Fn(&str)) -> Result<SharedExecutor, ExecError> {
        let ex: Box<dyn Executor + Send> = match (&self.dry_run, host) {
            (Some(rec), h) => Box::new(DryRunExecutor::new(h.label(), rec.clone())),
            (None, Host::Local) => Box::new(LocalExecutor),
            (None, Host::Ssh { user, host, port }) => Box::new(SshExecutor::connect(
                &SshTarget {
                    user: user.clone(),
                    host: host.clone(),
                    port: *port,
                },
                warn,
            )?),
        };
        Ok(Arc::new(Mutex::new(ex)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Cmd;

    #[test]
    fn one_executor_per_host_reused_across_threads() {
        let rec = Recording::default();
        let pool = ExecutorPool::dry_run(rec.clone());
        let hosts = [
            Host::Local,
            Host::Ssh {
                user: "root".into(),
                host: "h".into(),
                port: 22,
            },
        ];
        std::thread::scope(|s| {
            for h in &hosts {
                let pool = &pool;
                s.spawn(move || {
                    let ex = pool.get(h, &|_| {}).unwrap();
                    ex.lock().unwrap().capture(&Cmd::new("true")).unwrap();
                });
            }
        });
        let a = pool.get(&hosts[0], &|_| {}).unwrap();
        let b = pool.get(&hosts[0], &|_| {}).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(rec.list().len(), 2);
    }

    #[test]
    fn an_unreachable_host_keeps_its_error() {
        let pool = ExecutorPool::new();
        let h = Host::Ssh {
            user: "u".into(),
            host: "127.0.0.1".into(),
            port: 1,
        };
        let e1 = pool.get(&h, &|_| {}).err().unwrap().to_string();
        let e2 = pool.get(&h, &|_| {}).err().unwrap().to_string();
        assert!(e1.contains("u@127.0.0.1:1: cannot connect"), "{e1}");
        assert_eq!(e1, e2);
    }
}
