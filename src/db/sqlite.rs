//! SQLite through rusqlite (bundled): the default engine for local use.
//!
//! The lock is SQLite's own: `BEGIN EXCLUSIVE` held for the whole run (a second migrator waits in
//! the busy handler up to `--lock-wait`). Each migration runs inside a `SAVEPOINT` of that
//! transaction together with its row; a failure rolls back to the savepoint and the migrations
//! before it are committed when the lock is released (a crash mid-run rolls back the whole run,
//! never half a migration). A no-transaction file commits what came
//! before, runs outside any transaction, and takes the lock again. Backups use the online backup
//! API (never a file copy of a live WAL database) and are verified with `PRAGMA integrity_check`.

use super::{Bookkeeping, Database, DbError, create_table_sql, now_rfc3339};
use crate::migrate::{AppliedRow, SqlFile, TABLE};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct SqliteDatabase {
    conn: Connection,
    label: String,
    locked: bool,
    lock_wait: Duration,
}

impl SqliteDatabase {
    /// Opens (creating if missing) the database file at `path`; `label` is how it is shown.
    /// Reads and writes wait up to `busy` for another connection's lock.
    pub fn open(path: &Path, label: &str, busy: Duration) -> Result<SqliteDatabase, DbError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| DbError::Connect(format!("{label}: {e}")))?;
        conn.busy_timeout(busy)
            .map_err(|e| DbError::Connect(format!("{label}: {e}")))?;
        Ok(SqliteDatabase {
            conn,
            label: label.to_string(),
            locked: false,
            lock_wait: busy,
        })
    }

    fn other(e: rusqlite::Error) -> DbError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                DbError::LockTimeout {
                    waited: Duration::ZERO,
                    holder: Some(format!("another connection holds the database: {e}")),
                }
            }
            _ => DbError::Other(e.to_string()),
        }
    }

    fn begin_exclusive(&mut self, wait: Duration) -> Result<(), DbError> {
        self.conn.busy_timeout(wait).map_err(Self::other)?;
        let started = Instant::now();
        match self.conn.execute_batch("BEGIN EXCLUSIVE") {
            Ok(()) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                Err(DbError::LockTimeout {
                    waited: started.elapsed(),
                    holder: Some(format!("another connection writes to {}", self.label)),
                })
            }
            Err(e) => Err(Self::other(e)),
        }
    }

    fn record(&self, book: &Bookkeeping, duration_ms: u64) -> rusqlite::Result<()> {
        match book {
            Bookkeeping::Insert {
                version,
                name,
                checksum,
                applied_by,
                release,
            } => self
                .conn
                .execute(
                    &format!(
                        "INSERT INTO {TABLE} (version, name, checksum, applied_at, duration_ms, applied_by, release) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ),
                    params![
                        *version as i64,
                        name,
                        checksum,
                        now_rfc3339(),
                        duration_ms as i64,
                        applied_by,
                        release
                    ],
                )
                .map(|_| ()),
            Bookkeeping::Delete { version } => self
                .conn
                .execute(
                    &format!("DELETE FROM {TABLE} WHERE version = ?1"),
                    params![*version as i64],
                )
                .map(|_| ()),
        }
    }

    /// Runs every statement of `sql`, naming the one that fails.
    fn run_statements(&self, sql: &str) -> Result<(), DbError> {
        let mut batch = rusqlite::Batch::new(&self.conn, sql);
        // Byte offset just past the last statement that ran, to find the one that did not prepare.
        let mut cursor = 0;
        loop {
            match batch.next() {
                Ok(Some(mut stmt)) => {
                    let text = stmt.expanded_sql().unwrap_or_default();
                    if let Some(p) = sql[cursor..].find(text.as_str()) {
                        cursor += p + text.len();
                    }
                    if let Err(e) = stmt.raw_execute() {
                        return Err(DbError::Statement {
                            statement: Some(text.trim().to_string()),
                            message: e.to_string(),
                        });
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    // The next statement did not prepare (syntax error, unknown table).
                    let rest =
                        sql[cursor..].trim_start_matches(|c: char| c == ';' || c.is_whitespace());
                    let statement = crate::migrate::split_statements(rest)
                        .into_iter()
                        .next()
                        .map(|(_, s)| s);
                    return Err(DbError::Statement {
                        statement,
                        message: e.to_string(),
                    });
                }
            }
        }
    }
}

impl Database for SqliteDatabase {
    fn describe(&self) -> String {
        format!("sqlite {}", self.label)
    }

    fn applied(&mut self) -> Result<Vec<AppliedRow>, DbError> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [TABLE],
                |r| r.get::<_, i64>(0),
            )
            .map_err(Self::other)?
            > 0;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT version, name, checksum, applied_at, duration_ms, applied_by, release FROM {TABLE} ORDER BY version"
            ))
            .map_err(Self::other)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AppliedRow {
                    version: r.get::<_, i64>(0)? as u64,
                    name: r.get(1)?,
                    checksum: r.get(2)?,
                    applied_at: r.get(3)?,
                    duration_ms: r.get(4)?,
                    applied_by: r.get(5)?,
                    release: r.get(6)?,
                })
            })
            .map_err(Self::other)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(Self::other)?;
        Ok(rows)
    }

    fn ensure_table(&mut self) -> Result<(), DbError> {
        self.conn
            .execute_batch(&create_table_sql())
            .map_err(Self::other)
    }

    fn lock(&mut self, wait: Duration) -> Result<(), DbError> {
        self.lock_wait = wait;
        self.begin_exclusive(wait)?;
        self.locked = true;
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if self.locked {
            self.locked = false;
            if !self.conn.is_autocommit() {
                self.conn.execute_batch("COMMIT").map_err(Self::other)?;
            }
        }
        Ok(())
    }

    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError> {
        let started = Instant::now();
        if file.no_transaction {
            if !self.conn.is_autocommit() {
                self.conn.execute_batch("COMMIT").map_err(Self::other)?;
            }
            let result = self.run_statements(&file.sql);
            let ms = started.elapsed().as_millis() as u64;
            let recorded = result.and_then(|()| self.record(book, ms).map_err(Self::other));
            if self.locked {
                self.begin_exclusive(self.lock_wait)?;
            }
            return recorded.map(|()| ms);
        }
        let in_outer = !self.conn.is_autocommit();
        if in_outer {
            self.conn
                .execute_batch("SAVEPOINT deploy_action_migration")
                .map_err(Self::other)?;
        } else {
            self.conn.execute_batch("BEGIN").map_err(Self::other)?;
        }
        let result = self.run_statements(&file.sql).and_then(|()| {
            let ms = started.elapsed().as_millis() as u64;
            self.record(book, ms).map_err(Self::other).map(|()| ms)
        });
        let end = match (&result, in_outer) {
            (Ok(_), true) => "RELEASE deploy_action_migration",
            (Ok(_), false) => "COMMIT",
            (Err(_), true) => {
                "ROLLBACK TO deploy_action_migration; RELEASE deploy_action_migration"
            }
            (Err(_), false) => "ROLLBACK",
        };
        self.conn.execute_batch(end).map_err(Self::other)?;
        result
    }

    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                &format!("UPDATE {TABLE} SET checksum = ?1 WHERE version = ?2"),
                params![checksum, version as i64],
            )
            .map(|_| ())
            .map_err(Self::other)
    }

    fn backup(&mut self, dest: &Path) -> Result<(), DbError> {
        let bad = |m: String| DbError::Backup(format!("{}: {m}", dest.display()));
        // The backup API cannot read through a connection that holds a write transaction: let go
        // of the lock (nothing was written yet), copy, and take it again. The caller plans again
        // under the lock afterwards, so a run that got in between is noticed.
        let relock = self.locked && !self.conn.is_autocommit();
        if relock {
            self.conn.execute_batch("COMMIT").map_err(Self::other)?;
        }
        let copied = (|| {
            let mut dst = Connection::open(dest).map_err(|e| bad(e.to_string()))?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut dst)
                .map_err(|e| bad(e.to_string()))?;
            let started = Instant::now();
            loop {
                match backup.step(-1).map_err(|e| bad(e.to_string()))? {
                    rusqlite::backup::StepResult::Done => return Ok(()),
                    rusqlite::backup::StepResult::More => {}
                    _ if started.elapsed() < self.lock_wait => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => return Err(bad("the database stayed busy".into())),
                }
            }
        })();
        if relock {
            self.begin_exclusive(self.lock_wait)?;
        }
        copied?;
        let check = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
            .map_err(|e| bad(format!("verification failed: {e}")))?;
        if check != "ok" {
            return Err(bad(format!("PRAGMA integrity_check says: {check}")));
        }
        Ok(())
    }

    fn backup_extension(&self) -> &'static str {
        "sqlite3"
    }
}

impl Drop for SqliteDatabase {
    fn drop(&mut self) {
        // Whatever was committed stays; an open transaction here holds only finished migrations.
        let _ = self.unlock();
    }
}
