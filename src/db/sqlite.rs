//! SQLite through rusqlite (bundled): the default engine for local use.
//!
//! The lock is SQLite's own: `BEGIN EXCLUSIVE` held for the whole run (a second migrator waits in
//! the busy handler up to `--lock-wait`). Each migration runs inside a `SAVEPOINT` of that
//! transaction together with its row; a failure rolls back to the savepoint and the migrations
//! before it are committed when the lock is released (a crash mid-run rolls back the whole run,
//! never half a migration). A no-transaction file commits what came
//! before, runs outside any transaction, and takes the lock again. Backups use the online backup
//! API (never a file copy of a live WAL database) and are verified with `PRAGMA integrity_check`.
//!
//! A missing database file is created only when something is written (the lock, the tracking
//! table): `--dry-run`, `migrate status` and a refused approval read it as empty and leave no file.

use super::{Bookkeeping, Database, DbError, create_table_sql, now_rfc3339};
use crate::migrate::{AppliedRow, SqlFile, TABLE};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Connection, OpenFlags, params};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct SqliteDatabase {
    path: PathBuf,
    /// None until the file exists (or is created by a write).
    handle: Option<Connection>,
    label: String,
    locked: bool,
    lock_wait: Duration,
}

/// SQLITE_BUSY / SQLITE_LOCKED: another connection kept the database past the busy timeout.
fn busy_code(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
    if matches!(
        f.code,
        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
    ))
}

impl SqliteDatabase {
    /// The database file at `path`, opened now if it exists; a missing file is created only by
    /// the first write. `label` is how it is shown. Reads and writes wait up to `busy` for
    /// another connection's lock.
    pub fn open(path: &Path, label: &str, busy: Duration) -> Result<SqliteDatabase, DbError> {
        let mut db = SqliteDatabase {
            path: path.to_path_buf(),
            handle: None,
            label: label.to_string(),
            locked: false,
            lock_wait: busy,
        };
        if path.exists() {
            db.connect(false)?;
        }
        Ok(db)
    }

    fn connect(&mut self, create: bool) -> Result<(), DbError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&self.path, flags)
            .map_err(|e| DbError::Connect(format!("{}: {e}", self.label)))?;
        conn.busy_timeout(self.lock_wait)
            .map_err(|e| DbError::Connect(format!("{}: {e}", self.label)))?;
        self.handle = Some(conn);
        Ok(())
    }

    /// The connection, creating the database file if it is still missing (a write follows).
    fn conn(&mut self) -> Result<&Connection, DbError> {
        if self.handle.is_none() {
            self.connect(true)?;
        }
        Ok(self.handle.as_ref().expect("connected above"))
    }

    /// Maps an error of an operation that began at `started`: busy means another connection kept
    /// the database for the whole busy timeout.
    fn fail(&self, started: Instant) -> impl Fn(rusqlite::Error) -> DbError + use<> {
        let label = self.label.clone();
        move |e| {
            if busy_code(&e) {
                DbError::LockTimeout {
                    waited: started.elapsed(),
                    holder: Some(format!("another connection holds {label}: {e}")),
                }
            } else {
                DbError::Other(e.to_string())
            }
        }
    }

    fn begin_exclusive(&mut self, wait: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        let fail = self.fail(started);
        self.conn()?.busy_timeout(wait).map_err(&fail)?;
        match self.conn()?.execute_batch("BEGIN EXCLUSIVE") {
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
            Err(e) => Err(fail(e)),
        }
    }

    fn record(conn: &Connection, book: &Bookkeeping, duration_ms: u64) -> rusqlite::Result<()> {
        match book {
            Bookkeeping::Insert {
                version,
                name,
                checksum,
                applied_by,
                release,
            } => conn
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
            Bookkeeping::Delete { version } => conn
                .execute(
                    &format!("DELETE FROM {TABLE} WHERE version = ?1"),
                    params![*version as i64],
                )
                .map(|_| ()),
        }
    }

    /// Runs every statement of `sql`, naming the one that fails.
    fn run_statements(conn: &Connection, sql: &str) -> Result<(), DbError> {
        let mut batch = rusqlite::Batch::new(conn, sql);
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

/// Closing a migration's transaction failed (`end` is what closed it): keep the migration's own
/// error, add why closing failed, and never claim it was rolled back whole.
fn not_rolled_back(result: Result<u64, DbError>, end: &str, e: &rusqlite::Error) -> DbError {
    let (statement, first) = match result {
        Ok(_) => (None, "the migration ran".to_string()),
        Err(DbError::Statement { statement, message }) => (statement, message),
        Err(other) => (None, other.to_string()),
    };
    DbError::NotRolledBack {
        statement,
        message: format!(
            "{first}\nthen `{end}` failed: {e}; the migration most likely ended deploy-action's transaction \
itself (a COMMIT, END or ROLLBACK in the file), so what ran before that point stays committed"
        ),
    }
}

impl Database for SqliteDatabase {
    fn describe(&self) -> String {
        format!("sqlite {}", self.label)
    }

    fn applied(&mut self) -> Result<Vec<AppliedRow>, DbError> {
        if self.handle.is_none() {
            if !self.path.exists() {
                // No file, no table: read as empty without creating anything.
                return Ok(Vec::new());
            }
            self.connect(false)?;
        }
        let fail = self.fail(Instant::now());
        let conn = self.conn()?;
        let exists: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [TABLE],
                |r| r.get::<_, i64>(0),
            )
            .map_err(&fail)?
            > 0;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = conn
            .prepare(&format!(
                "SELECT version, name, checksum, applied_at, duration_ms, applied_by, release FROM {TABLE} ORDER BY version"
            ))
            .map_err(&fail)?;
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
            .map_err(&fail)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&fail)?;
        Ok(rows)
    }

    fn ensure_table(&mut self) -> Result<(), DbError> {
        let fail = self.fail(Instant::now());
        self.conn()?
            .execute_batch(&create_table_sql())
            .map_err(fail)
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
            let fail = self.fail(Instant::now());
            if let Some(conn) = &self.handle
                && !conn.is_autocommit()
            {
                conn.execute_batch("COMMIT").map_err(fail)?;
            }
        }
        Ok(())
    }

    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError> {
        let started = Instant::now();
        let fail = self.fail(started);
        if file.no_transaction {
            let conn = self.conn()?;
            if !conn.is_autocommit() {
                conn.execute_batch("COMMIT").map_err(&fail)?;
            }
            let result = Self::run_statements(conn, &file.sql);
            let ms = started.elapsed().as_millis() as u64;
            let recorded = result.and_then(|()| Self::record(conn, book, ms).map_err(&fail));
            let relocked = if self.locked {
                self.begin_exclusive(self.lock_wait)
            } else {
                Ok(())
            };
            // The migration's own error first: it is what the user must see.
            return recorded.and(relocked).map(|()| ms);
        }
        let conn = self.conn()?;
        let in_outer = !conn.is_autocommit();
        if in_outer {
            conn.execute_batch("SAVEPOINT deploy_action_migration")
                .map_err(&fail)?;
        } else {
            conn.execute_batch("BEGIN").map_err(&fail)?;
        }
        let result = Self::run_statements(conn, &file.sql).and_then(|()| {
            let ms = started.elapsed().as_millis() as u64;
            Self::record(conn, book, ms).map_err(&fail).map(|()| ms)
        });
        let end = match (&result, in_outer) {
            (Ok(_), true) => "RELEASE deploy_action_migration",
            (Ok(_), false) => "COMMIT",
            (Err(_), true) => {
                "ROLLBACK TO deploy_action_migration; RELEASE deploy_action_migration"
            }
            (Err(_), false) => "ROLLBACK",
        };
        match conn.execute_batch(end) {
            Ok(()) => result,
            Err(e) if busy_code(&e) => Err(fail(e)),
            Err(e) => Err(not_rolled_back(result, end, &e)),
        }
    }

    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<(), DbError> {
        let fail = self.fail(Instant::now());
        self.conn()?
            .execute(
                &format!("UPDATE {TABLE} SET checksum = ?1 WHERE version = ?2"),
                params![checksum, version as i64],
            )
            .map(|_| ())
            .map_err(fail)
    }

    fn backup(&mut self, dest: &Path) -> Result<String, DbError> {
        let bad = |m: String| DbError::Backup(format!("{}: {m}", dest.display()));
        let fail = self.fail(Instant::now());
        // The backup API cannot read through a connection that holds a write transaction: let go
        // of the lock (nothing was written yet), copy, and take it again. The caller plans again
        // under the lock afterwards, so a run that got in between is noticed.
        let relock = self.locked && !self.conn()?.is_autocommit();
        if relock {
            self.conn()?.execute_batch("COMMIT").map_err(&fail)?;
        }
        let lock_wait = self.lock_wait;
        let src = self.conn()?;
        let copied = (|| {
            let mut dst = Connection::open(dest).map_err(|e| bad(e.to_string()))?;
            let backup =
                rusqlite::backup::Backup::new(src, &mut dst).map_err(|e| bad(e.to_string()))?;
            let started = Instant::now();
            loop {
                match backup.step(-1).map_err(|e| bad(e.to_string()))? {
                    rusqlite::backup::StepResult::Done => return Ok(()),
                    rusqlite::backup::StepResult::More => {}
                    _ if started.elapsed() < lock_wait => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => return Err(bad("the database stayed busy".into())),
                }
            }
        })();
        // The copy's own error first; then whether the lock came back.
        let relocked = if relock {
            self.begin_exclusive(self.lock_wait)
        } else {
            Ok(())
        };
        copied?;
        relocked?;
        let check = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
            .map_err(|e| bad(format!("verification failed: {e}")))?;
        if check != "ok" {
            return Err(bad(format!("PRAGMA integrity_check says: {check}")));
        }
        Ok("PRAGMA integrity_check".into())
    }

    fn backup_extension(&self) -> &'static str {
        "sqlite3"
    }

    fn dialect(&self) -> crate::migrate::tx_control::Dialect {
        crate::migrate::tx_control::Dialect::Sqlite
    }
}

impl Drop for SqliteDatabase {
    fn drop(&mut self) {
        // Whatever was committed stays; an open transaction here holds only finished migrations.
        let _ = self.unlock();
    }
}
