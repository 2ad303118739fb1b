//! PostgreSQL inside a compose service on the environment's host: `psql` run through
//! `docker compose -p P -f … exec -T <service> psql -v ON_ERROR_STOP=1` by an
//! [`Executor`] (local, or SSH to the VPS whose database the runner cannot reach).
//!
//! Every call is one psql session fed on stdin. A session cannot outlive a call, so the advisory
//! lock is taken inside each migration's session by a `pg_try_advisory_lock` loop (never the
//! blocking form) and released when the session ends; between two migrations another migrator may
//! get in, and then finds the version recorded and the duplicate row fails its transaction whole.
//! Backups stream `pg_dump -Fc` from the service to a local file, verified with local `pg_restore`.

use super::{Bookkeeping, Database, DbError, create_table_sql};
use crate::cmd::Cmd;
use crate::exec::Executor;
use crate::migrate::{AppliedRow, SqlFile, TABLE, split_statements, statement_at};
use std::path::Path;
use std::time::Duration;

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
        let mut cmd = Cmd::new("docker").args(["compose", "-p", &self.project]);
        for f in &self.files {
            cmd = cmd.arg("-f").arg(f);
        }
        cmd = cmd
            .args(["exec", "-T", &self.service])
            .args(argv.iter().copied());
        cmd.cwd = Some(self.dir.clone());
        cmd
    }

    /// psql reading a script from stdin, stopping at the first error, unaligned tab-separated output.
    pub fn psql(&self, script: String) -> Cmd {
        let mut cmd = self.exec(&[
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
        ]);
        cmd.stdin = Some(script.into_bytes());
        cmd
    }
}

pub struct ComposeDatabase<'e> {
    target: ComposeTarget,
    exec: &'e mut dyn Executor,
    lock_wait: Duration,
    locked: bool,
}

/// SQL text as a literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl<'e> ComposeDatabase<'e> {
    pub fn new(target: ComposeTarget, exec: &'e mut dyn Executor) -> Self {
        ComposeDatabase {
            target,
            exec,
            lock_wait: Duration::from_secs(60),
            locked: false,
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

    fn lock_block(&self) -> String {
        let tries = (self.lock_wait.as_millis() / 200).max(1);
        format!(
            "DO $deploy_action$ BEGIN
  FOR i IN 0..{tries} LOOP
    IF pg_try_advisory_lock({key}) THEN RETURN; END IF;
    PERFORM pg_sleep(0.2);
  END LOOP;
  RAISE EXCEPTION 'deploy-action: the migration lock is held by another run';
END $deploy_action$;\n",
            key = super::postgres::lock_key()
        )
    }

    fn record_sql(book: &Bookkeeping) -> String {
        match book {
            Bookkeeping::Insert {
                version,
                name,
                checksum,
                applied_by,
                release,
            } => format!(
                "INSERT INTO {TABLE} (version, name, checksum, applied_at, duration_ms, applied_by, release) VALUES ({version}, {}, {}, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint, {}, {});\n",
                lit(name),
                lit(checksum),
                lit(applied_by),
                release.as_deref().map(lit).unwrap_or_else(|| "NULL".into())
            ),
            Bookkeeping::Delete { version } => {
                format!("DELETE FROM {TABLE} WHERE version = {version};\n")
            }
        }
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
        let (status, out, err) =
            self.psql(format!("SELECT to_regclass({}) IS NOT NULL;\n", lit(TABLE)))?;
        if status != 0 {
            return Err(DbError::Connect(err.trim().to_string()));
        }
        if out.trim() != "t" {
            return Ok(Vec::new());
        }
        let (status, out, err) = self.psql(format!(
            "SELECT version, name, checksum, applied_at, duration_ms, applied_by, coalesce(release, '') FROM {TABLE} ORDER BY version;\n"
        ))?;
        if status != 0 {
            return Err(DbError::Other(err.trim().to_string()));
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
        // Check now that the lock is free within the wait; each migration takes it again.
        self.lock_wait = wait;
        let script = format!(
            "{}SELECT pg_advisory_unlock({});\n",
            self.lock_block(),
            super::postgres::lock_key()
        );
        let (status, _, err) = self.psql(script)?;
        if status != 0 {
            if err.contains("migration lock is held") {
                return Err(DbError::LockTimeout {
                    waited: wait,
                    holder: None,
                });
            }
            return Err(DbError::Other(err.trim().to_string()));
        }
        self.locked = true;
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        self.locked = false;
        Ok(())
    }

    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError> {
        let started = std::time::Instant::now();
        let mut script = String::new();
        if self.locked {
            script.push_str(&self.lock_block());
        }
        let body_start_line;
        if file.no_transaction {
            body_start_line = script.lines().count() + 1;
            for (_, stmt) in split_statements(&file.sql) {
                script.push_str(&stmt);
                script.push_str(";\n");
            }
            script.push_str(&Self::record_sql(book));
        } else {
            script.push_str("BEGIN;\n");
            body_start_line = script.lines().count() + 1;
            script.push_str(&file.sql);
            if !file.sql.ends_with('\n') {
                script.push('\n');
            }
            script.push_str(";\n");
            script.push_str(&Self::record_sql(book));
            script.push_str("COMMIT;\n");
        }
        let (status, _, err) = self.psql(script)?;
        if status != 0 {
            if err.contains("migration lock is held") {
                return Err(DbError::LockTimeout {
                    waited: self.lock_wait,
                    holder: None,
                });
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

    fn backup(&mut self, dest: &Path) -> Result<(), DbError> {
        let cmd = self.target.exec(&[
            "pg_dump",
            "-Fc",
            "-U",
            &self.target.user,
            "-d",
            &self.target.database,
        ]);
        let out = self
            .exec
            .capture(&cmd)
            .map_err(|e| DbError::Backup(e.to_string()))?;
        if !out.success() || out.stdout.is_empty() {
            return Err(DbError::Backup(format!(
                "pg_dump in `{}` exited with {}: {}",
                self.target.service,
                out.status,
                out.stderr_tail(5)
            )));
        }
        std::fs::write(dest, &out.stdout)
            .map_err(|e| DbError::Backup(format!("{}: {e}", dest.display())))?;
        let pg_restore = match crate::env_vars::get(crate::env_vars::DEPLOY_PG_BIN) {
            Some(d) => format!("{}/pg_restore", d.trim_end_matches('/')),
            None => "pg_restore".into(),
        };
        super::postgres::verify_dump(
            &mut crate::exec::local::LocalExecutor,
            &pg_restore,
            &dest.display().to_string(),
        )
    }

    fn backup_extension(&self) -> &'static str {
        "dump"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_goes_through_docker_compose_exec() {
        let t = ComposeTarget {
            dir: "/srv/shop".into(),
            project: "shop".into(),
            files: vec!["compose.yml".into(), "compose.prod.yml".into()],
            service: "db".into(),
            user: "app".into(),
            database: "app".into(),
        };
        let cmd = t.psql("select 1;".into());
        let argv: Vec<&str> = cmd.args.iter().map(|a| a.display()).collect();
        assert_eq!(cmd.program, "docker");
        assert_eq!(
            &argv[..10],
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
                "db"
            ]
        );
        assert!(argv.contains(&"ON_ERROR_STOP=1"));
        assert_eq!(cmd.cwd.as_deref(), Some("/srv/shop"));
        assert_eq!(psql_error_line("psql:<stdin>:12: ERROR:  boom"), Some(12));
    }
}
