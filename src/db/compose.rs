//! PostgreSQL inside a compose service on the environment's host: `psql` run through
//! `docker compose -p P -f … exec -T <service> psql -v ON_ERROR_STOP=1` by an
//! [`Executor`] (local, or SSH to the VPS whose database the runner cannot reach).
//!
//! Reads and migrations are one psql session per call, fed on stdin. The migration lock lives in
//! a session of its own, held for the whole run: a long-lived `psql` started through a second
//! executor (for SSH, a second connection) on its own thread and fed query by query. It polls
//! `pg_try_advisory_lock` from this side, sleeping here between tries, so no transaction stays
//! open while it waits (a `DO` loop with `pg_sleep` would keep one open and stall
//! `CREATE INDEX CONCURRENTLY`). Every migration's transaction first checks that this session
//! still holds the lock, so a lost lock session stops the run instead of letting two migrators
//! interleave. Closing the session's stdin ends psql, and the server releases the lock with it: on
//! `unlock`, on drop, on every error path, and when this process dies (the pipe or SSH channel
//! closes).
//!
//! Backups stream `pg_dump -Fc` from the service into a local file (never held in memory), then
//! verify that file: with `pg_restore` on this machine when there is one (DEPLOY_PG_BIN or PATH)
//! that reads the archive, else by streaming the file back into `pg_restore -f /dev/null` inside
//! the service.

use super::{Bookkeeping, Database, DbError, create_table_sql};
use crate::cmd::Cmd;
// The lock session's thread opens its own executor through an [`ExecutorOpener`] (for SSH a
// second connection, so the lock session and the migrations never wait on each other).
use crate::exec::{ExecError, Executor, ExecutorOpener, Stream};
use crate::migrate::{AppliedRow, SqlFile, TABLE, split_statements, statement_at};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the compose service is and how to reach psql in it.
#[derive(Clone, Debug)]
pub struct ComposeTarget {
    /// The directory of the compose files on the host.
    pub dir: String,
    pub project: String,
    pub files: Vec<String>,
    pub service: String,
    pub user: String,
    pub database: String,
}

impl ComposeTarget {
    /// `docker compose -p P -f … exec -T <service> <argv…>`, run in `dir`.
    pub fn exec(&self, argv: &[&str]) -> Cmd {
        self.exec_env(&[], argv)
    }

    /// [`ComposeTarget::exec`] with `KEY=VALUE` variables set for the command in the container.
    fn exec_env(&self, env: &[String], argv: &[&str]) -> Cmd {
        let mut cmd = Cmd::new("docker").args(["compose", "-p", &self.project]);
        for f in &self.files {
            cmd = cmd.arg("-f").arg(f);
        }
        cmd = cmd.args(["exec", "-T"]);
        for kv in env {
            cmd = cmd.arg("-e").arg(kv);
        }
        cmd = cmd.arg(&self.service).args(argv.iter().copied());
        cmd.cwd = Some(self.dir.clone());
        cmd
    }

    /// psql reading a script from stdin, stopping at the first error, unaligned tab-separated
    /// output, no stdin given yet; `app` is its `application_name` (seen in `pg_stat_activity`).
    pub fn psql_session(&self, app: &str) -> Cmd {
        self.exec_env(
            &[format!("PGAPPNAME={app}")],
            &[
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                &self.user,
                "-d",
                &self.database,
                "-f",
                "-",
            ],
        )
    }

    /// One psql session with `script` as its whole stdin.
    pub fn psql(&self, script: String) -> Cmd {
        let mut cmd = self.psql_session(APP_NAME);
        cmd.stdin = Some(script.into_bytes());
        cmd
    }
}

/// The `application_name` of migration sessions, and of the lock session.
pub const APP_NAME: &str = "deploy-action migrate";
pub const LOCK_APP_NAME: &str = "deploy-action migrate (lock)";

/// How long the lock session sleeps between two `pg_try_advisory_lock` tries.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// The line psql echoes after each query of the lock session.
const END_MARKER: &str = "deploy-action:end-of-reply";

/// stdin of the lock session's psql: bytes sent by [`LockSession::query`]; "nothing yet" while the
/// channel is empty, end of input once it is closed.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(bytes) if !bytes.is_empty() => {
                    self.buf = bytes;
                    self.pos = 0;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A long-lived psql on its own thread and executor, fed query by query.
struct LockSession {
    input: Option<Sender<Vec<u8>>>,
    output: Receiver<(Stream, String)>,
    thread: Option<JoinHandle<Result<i32, ExecError>>>,
    stderr: Vec<String>,
}

impl LockSession {
    fn start(opener: ExecutorOpener, cmd: Cmd) -> LockSession {
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>();
        let (out_tx, out_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut exec = opener()?;
            let mut stdin = ChannelReader {
                rx: in_rx,
                buf: Vec::new(),
                pos: 0,
            };
            exec.run(&cmd, Some(&mut stdin), &mut |stream, line| {
                let _ = out_tx.send((stream, line.to_string()));
            })
        });
        LockSession {
            input: Some(in_tx),
            output: out_rx,
            thread: Some(thread),
            stderr: Vec::new(),
        }
    }

    /// Sends `sql` and returns the stdout lines of its reply.
    fn query(&mut self, sql: &str) -> Result<Vec<String>, DbError> {
        let sent = self.input.as_ref().is_some_and(|tx| {
            tx.send(format!("{sql}\n\\echo {END_MARKER}\n").into_bytes())
                .is_ok()
        });
        if !sent {
            return Err(self.ended());
        }
        let mut lines = Vec::new();
        loop {
            match self.output.recv() {
                Ok((Stream::Stdout, l)) if l == END_MARKER => return Ok(lines),
                Ok((Stream::Stdout, l)) => lines.push(l),
                Ok((Stream::Stderr, l)) => self.stderr.push(l),
                Err(_) => return Err(self.ended()),
            }
        }
    }

    /// Ends psql (end of its input) and waits for it; the server drops the session's locks.
    fn close(&mut self) -> Result<i32, ExecError> {
        self.input = None;
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or(Ok(-1)),
            None => Ok(0),
        };
        while let Ok((stream, line)) = self.output.try_recv() {
            if stream == Stream::Stderr {
                self.stderr.push(line);
            }
        }
        result
    }

    /// The session ended under us: why, with psql's own words.
    fn ended(&mut self) -> DbError {
        let how = match self.close() {
            Ok(status) => format!("psql exited with {status}"),
            Err(e) => e.to_string(),
        };
        let tail = self.stderr[self.stderr.len().saturating_sub(5)..].join("\n");
        DbError::Connect(format!(
            "the migration lock session ended ({how}){}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ))
    }
}

impl Drop for LockSession {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

pub struct ComposeDatabase<'e> {
    target: ComposeTarget,
    exec: &'e mut dyn Executor,
    opener: ExecutorOpener,
    session: Option<LockSession>,
    /// The backend pid of the lock session while it holds the lock.
    lock_pid: Option<i64>,
}

/// SQL text as a literal.
fn lit(s: &str) -> String {
    super::pg_literal(s)
}

/// The `pg_locks` condition matching the migration lock (a bigint key: classid holds the high
/// 32 bits, objid the low 32, objsubid 1), in the current database.
fn lock_row_condition() -> String {
    let key = super::postgres::lock_key();
    format!(
        "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid = ((({key})::bigint >> 32) & 4294967295)::oid
   AND l.objid = (({key})::bigint & 4294967295)::oid"
    )
}

/// The message of the guard that opens every migration.
const LOCK_LOST: &str = "deploy-action: the migration lock is no longer held";

impl<'e> ComposeDatabase<'e> {
    /// `exec` runs reads, migrations and backups; `opener` makes the lock session's executor.
    pub fn new(target: ComposeTarget, exec: &'e mut dyn Executor, opener: ExecutorOpener) -> Self {
        ComposeDatabase {
            target,
            exec,
            opener,
            session: None,
            lock_pid: None,
        }
    }

    fn psql(&mut self, script: String) -> Result<(i32, String, String), DbError> {
        let out = self
            .exec
            .capture(&self.target.psql(script))
            .map_err(|e| DbError::Connect(e.to_string()))?;
        Ok((
            out.status,
            out.stdout_str(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// A `DO` block that fails unless the lock session (`pid`) still holds the migration lock.
    fn guard_sql(pid: i64) -> String {
        format!(
            "DO $deploy_action$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = {pid} AND {cond}) THEN
    RAISE EXCEPTION '{LOCK_LOST} (its session ended); this migration did not run';
  END IF;
END $deploy_action$;\n",
            cond = lock_row_condition()
        )
    }

    /// Who holds the lock, asked through the lock session.
    fn holder(session: &mut LockSession) -> Option<String> {
        let lines = session
            .query(&format!(
                "SELECT coalesce(a.application_name, ''), a.pid, coalesce(a.client_addr::text, ''), coalesce(a.backend_start::text, '')
   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE {} LIMIT 1;",
                lock_row_condition()
            ))
            .ok()?;
        let f: Vec<&str> = lines.first()?.split('\t').collect();
        let [app, pid, addr, since] = f[..] else {
            return None;
        };
        Some(format!(
            "held by `{app}` (pid {pid}{}{})",
            if addr.is_empty() {
                String::new()
            } else {
                format!(", from {addr}")
            },
            if since.is_empty() {
                String::new()
            } else {
                format!(", connected since {since}")
            }
        ))
    }

    /// Streams the file back into `pg_restore -f /dev/null` inside the service.
    fn verify_in_service(&mut self, dest: &Path) -> Result<(), DbError> {
        let mut file = std::fs::File::open(dest)
            .map_err(|e| DbError::Backup(format!("{}: {e}", dest.display())))?;
        let mut stderr = Vec::new();
        let status = self
            .exec
            .run(
                &self.target.exec(&["pg_restore", "-f", "/dev/null"]),
                Some(&mut file),
                &mut |stream, line| {
                    if stream == Stream::Stderr {
                        stderr.push(line.to_string());
                    }
                },
            )
            .map_err(|e| DbError::Backup(e.to_string()))?;
        if status != 0 {
            return Err(DbError::Backup(format!(
                "verification of {} failed (pg_restore -f /dev/null in `{}` on {} exited with {status}): {}",
                dest.display(),
                self.target.service,
                self.exec.label(),
                stderr[stderr.len().saturating_sub(5)..].join("\n")
            )));
        }
        Ok(())
    }
}

/// The line number in `psql:<stdin>:LINE: ERROR: …`.
fn psql_error_line(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|l| {
        let rest = l.strip_prefix("psql:")?;
        let mut parts = rest.splitn(3, ':');
        let _file = parts.next()?;
        parts.next()?.trim().parse().ok()
    })
}

impl Database for ComposeDatabase<'_> {
    fn describe(&self) -> String {
        format!(
            "postgres in compose service `{}` on {} ({}@{})",
            self.target.service,
            self.exec.label(),
            self.target.user,
            self.target.database
        )
    }

    fn applied(&mut self) -> Result<Vec<AppliedRow>, DbError> {
        // One session: ask whether the table exists, read it only then (psql's \if).
        let (status, out, err) = self.psql(format!(
            "SELECT to_regclass({}) IS NOT NULL AS deploy_action_has_table \\gset
\\if :deploy_action_has_table
SELECT version, name, checksum, applied_at, duration_ms, applied_by, coalesce(release, '') FROM {TABLE} ORDER BY version;
\\endif\n",
            lit(TABLE)
        ))?;
        if status != 0 {
            return Err(DbError::Connect(err.trim().to_string()));
        }
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                if f.len() != 7 {
                    return Err(DbError::Other(format!("unexpected psql output: {l}")));
                }
                Ok(AppliedRow {
                    version: f[0].parse().unwrap_or(0),
                    name: f[1].into(),
                    checksum: f[2].into(),
                    applied_at: f[3].into(),
                    duration_ms: f[4].parse().unwrap_or(0),
                    applied_by: f[5].into(),
                    release: (!f[6].is_empty()).then(|| f[6].to_string()),
                })
            })
            .collect()
    }

    fn ensure_table(&mut self) -> Result<(), DbError> {
        let (status, _, err) = self.psql(format!("{};\n", create_table_sql()))?;
        if status != 0 {
            return Err(DbError::Other(err.trim().to_string()));
        }
        Ok(())
    }

    fn lock(&mut self, wait: Duration) -> Result<(), DbError> {
        let key = super::postgres::lock_key();
        let mut session =
            LockSession::start(self.opener.clone(), self.target.psql_session(LOCK_APP_NAME));
        let pid: i64 = session
            .query("SELECT pg_backend_pid();")?
            .first()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| DbError::Other("the lock session did not say its pid".into()))?;
        let started = Instant::now();
        loop {
            // Each try is its own short statement: between tries the session is idle, in no
            // transaction, and this side sleeps.
            let got = session.query(&format!("SELECT pg_try_advisory_lock(({key})::bigint);"))?;
            if got.first().map(String::as_str) == Some("t") {
                self.session = Some(session);
                self.lock_pid = Some(pid);
                return Ok(());
            }
            if started.elapsed() >= wait {
                let holder = Self::holder(&mut session);
                let _ = session.close();
                return Err(DbError::LockTimeout {
                    waited: started.elapsed(),
                    holder,
                });
            }
            std::thread::sleep(LOCK_RETRY.min(wait.saturating_sub(started.elapsed())));
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        self.lock_pid = None;
        let Some(mut session) = self.session.take() else {
            return Ok(());
        };
        let key = super::postgres::lock_key();
        let unlocked = session.query(&format!("SELECT pg_advisory_unlock(({key})::bigint);"));
        // Ending the session releases the lock in any case.
        let closed = session.close();
        unlocked?;
        closed
            .map(|_| ())
            .map_err(|e| DbError::Other(format!("closing the lock session: {e}")))
    }

    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError> {
        let started = Instant::now();
        let mut script = String::new();
        let body_start_line;
        if file.no_transaction {
            if let Some(pid) = self.lock_pid {
                script.push_str(&Self::guard_sql(pid));
            }
            body_start_line = script.lines().count() + 1;
            for (_, stmt) in split_statements(&file.sql) {
                script.push_str(&stmt);
                script.push_str(";\n");
            }
            script.push_str(&super::pg_record_sql(book));
        } else {
            script.push_str("BEGIN;\n");
            if let Some(pid) = self.lock_pid {
                script.push_str(&Self::guard_sql(pid));
            }
            body_start_line = script.lines().count() + 1;
            script.push_str(&file.sql);
            if !file.sql.ends_with('\n') {
                script.push('\n');
            }
            script.push_str(";\n");
            script.push_str(&super::pg_record_sql(book));
            script.push_str("COMMIT;\n");
        }
        let (status, out, err) = self.psql(script)?;
        if status != 0 {
            if err.contains(LOCK_LOST) {
                return Err(DbError::Other(format!(
                    "{LOCK_LOST}: its session ended, so {} did not run and the run stops here",
                    file.file
                )));
            }
            let statement = psql_error_line(&err).and_then(|line| {
                let rel = line.checked_sub(body_start_line)?;
                if file.no_transaction {
                    return split_statements(&file.sql).get(rel).map(|(_, s)| s.clone());
                }
                let offset: usize = file
                    .sql
                    .split_inclusive('\n')
                    .take(rel)
                    .map(|l| l.chars().count())
                    .sum();
                statement_at(&file.sql, offset + 1)
            });
            let message = err
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    l.split_once(": ERROR:")
                        .map_or(l.to_string(), |(_, m)| format!("ERROR:{m}"))
                })
                .collect::<Vec<_>>()
                .join("\n");
            // Never an empty reason: what psql (or docker compose) said, wherever it said it.
            let message = if message.is_empty() {
                let tail: Vec<&str> = out.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("psql exited with {status}: {}", tail.join("\n"))
                    .trim_end_matches(": ")
                    .to_string()
            } else {
                message
            };
            return Err(DbError::Statement { statement, message });
        }
        Ok(started.elapsed().as_millis() as u64)
    }

    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<(), DbError> {
        let (status, _, err) = self.psql(format!(
            "UPDATE {TABLE} SET checksum = {} WHERE version = {version};\n",
            lit(checksum)
        ))?;
        if status != 0 {
            return Err(DbError::Other(err.trim().to_string()));
        }
        Ok(())
    }

    fn backup(&mut self, dest: &Path) -> Result<String, DbError> {
        let cmd = self.target.exec(&[
            "pg_dump",
            "-Fc",
            "-U",
            &self.target.user,
            "-d",
            &self.target.database,
        ]);
        let file = std::fs::File::create(dest)
            .map_err(|e| DbError::Backup(format!("{}: {e}", dest.display())))?;
        let out = self
            .exec
            .capture_to_file(&cmd, &file)
            .map_err(|e| DbError::Backup(e.to_string()))?;
        file.sync_all()
            .map_err(|e| DbError::Backup(format!("{}: {e}", dest.display())))?;
        drop(file);
        let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        if !out.success() || size == 0 {
            return Err(DbError::Backup(format!(
                "pg_dump in `{}` on {} exited with {}: {}",
                self.target.service,
                self.exec.label(),
                out.status,
                out.stderr_tail(5)
            )));
        }
        // Verify the bytes that were kept, here when this machine has a pg_restore that reads
        // the archive; else inside the service, whose pg_restore matches its pg_dump.
        let pg_restore = super::postgres::tool("pg_restore");
        let local = super::postgres::verify_dump(
            &mut crate::exec::local::LocalExecutor,
            &pg_restore,
            &dest.display().to_string(),
        );
        match local {
            Ok(()) => Ok("pg_restore -l and -f /dev/null on this machine".into()),
            Err(super::postgres::VerifyError::Unusable(why)) => {
                self.verify_in_service(dest)?;
                Ok(format!(
                    "pg_restore -f /dev/null in `{}` on {} ({why} here)",
                    self.target.service,
                    self.exec.label()
                ))
            }
            Err(super::postgres::VerifyError::Failed(e)) => Err(e),
        }
    }

    fn backup_extension(&self) -> &'static str {
        "dump"
    }

    fn dialect(&self) -> crate::migrate::tx_control::Dialect {
        crate::migrate::tx_control::Dialect::Postgres
    }
}

impl Drop for ComposeDatabase<'_> {
    fn drop(&mut self) {
        // Ends the lock session if a path forgot to: the server releases the lock with it.
        self.session = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ComposeTarget {
        ComposeTarget {
            dir: "/srv/shop".into(),
            project: "shop".into(),
            files: vec!["compose.yml".into(), "compose.prod.yml".into()],
            service: "db".into(),
            user: "app".into(),
            database: "app".into(),
        }
    }

    #[test]
    fn psql_goes_through_docker_compose_exec() {
        let cmd = target().psql("select 1;".into());
        let argv: Vec<&str> = cmd.args.iter().map(|a| a.display()).collect();
        assert_eq!(cmd.program, "docker");
        assert_eq!(
            &argv[..12],
            &[
                "compose",
                "-p",
                "shop",
                "-f",
                "compose.yml",
                "-f",
                "compose.prod.yml",
                "exec",
                "-T",
                "-e",
                "PGAPPNAME=deploy-action migrate",
                "db"
            ]
        );
        assert!(argv.contains(&"ON_ERROR_STOP=1"));
        assert_eq!(cmd.cwd.as_deref(), Some("/srv/shop"));
        assert_eq!(psql_error_line("psql:<stdin>:12: ERROR:  boom"), Some(12));
    }

    #[test]
    fn every_migration_checks_the_lock_session_first() {
        let guard = ComposeDatabase::guard_sql(4242);
        assert!(guard.contains("l.pid = 4242"), "{guard}");
        assert!(guard.contains(LOCK_LOST), "{guard}");
        assert!(!guard.contains("pg_sleep"), "{guard}");
    }

    #[test]
    fn channel_reader_says_would_block_then_eof() {
        let (tx, rx) = mpsc::channel();
        let mut r = ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        };
        let mut buf = [0u8; 4];
        assert_eq!(
            r.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        tx.send(b"select".to_vec()).unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ct");
        drop(tx);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }
}
