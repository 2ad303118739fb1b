//! Database drivers for `migrate`: the only layer that opens database connections.
//!
//! [`Database`] is what `deploy/migrate/` needs: read the tracking table, take and release the
//! migration lock, run one migration together with its bookkeeping, and write a verified backup.
//! `sqlite.rs` (rusqlite, embedded), `postgres.rs` (rust-postgres, sync, TLS from `tls.rs`),
//! `compose.rs` (psql inside a compose service on the environment's host, through an
//! [`Executor`](crate::exec::Executor)).
//! Deciding what to run is `migrate/`'s business, not this layer's.

pub mod compose;
pub mod postgres;
pub mod sqlite;
pub mod tls;

use crate::migrate::tx_control::Dialect;
use crate::migrate::{AppliedRow, SqlFile};
use std::path::Path;
use std::time::Duration;

/// What a driver reports when something goes wrong.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The database settings cannot be used as given (a bad URL, `sslmode`, `sslrootcert`): an
    /// input error (exit 2).
    #[error("{0}")]
    Config(String),
    /// A migration's statement failed; its transaction was rolled back.
    #[error("{message}")]
    Statement {
        statement: Option<String>,
        message: String,
    },
    /// A transactional migration could not be rolled back as a whole: the file ended the
    /// transaction itself, or closing it failed. Part of it may be applied, even recorded.
    #[error("{message}")]
    NotRolledBack {
        statement: Option<String>,
        message: String,
    },
    /// The migration lock stayed held by someone else for the whole wait.
    #[error("the migration lock is held by another run (waited {}){}", seconds(*waited), holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    LockTimeout {
        waited: Duration,
        holder: Option<String>,
    },
    #[error("backup failed: {0}")]
    Backup(String),
    #[error("{0}")]
    Other(String),
}

/// What to record together with a migration, in the same transaction.
#[derive(Clone, Debug)]
pub enum Bookkeeping {
    /// An up migration: insert its row.
    Insert {
        version: u64,
        name: String,
        checksum: String,
        applied_by: String,
        release: Option<String>,
    },
    /// A down migration: delete the row of its version.
    Delete { version: u64 },
}

impl Bookkeeping {
    pub fn version(&self) -> u64 {
        match self {
            Bookkeeping::Insert { version, .. } | Bookkeeping::Delete { version } => *version,
        }
    }
}

/// One database, as `migrate` uses it.
pub trait Database {
    /// `sqlite app.db`, `postgres app@127.0.0.1:5432/app`: never the password.
    fn describe(&self) -> String;

    /// The rows of the tracking table in version order; empty when the table does not exist yet.
    fn applied(&mut self) -> Result<Vec<AppliedRow>, DbError>;

    /// Creates the tracking table if missing.
    fn ensure_table(&mut self) -> Result<(), DbError>;

    /// Takes the migration lock, retrying for at most `wait`; [`DbError::LockTimeout`] after that.
    fn lock(&mut self, wait: Duration) -> Result<(), DbError>;

    /// Releases the lock (also done on drop).
    fn unlock(&mut self) -> Result<(), DbError>;

    /// Runs `file` and `book` in one transaction (for a no-transaction file: runs the statements
    /// one by one, then records). Returns the duration in milliseconds.
    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError>;

    /// Sets the recorded checksum of `version` (`--accept-changed`).
    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<(), DbError>;

    /// Writes a backup of the whole database to `dest` and verifies it; returns how and where it
    /// was verified (for the report).
    fn backup(&mut self, dest: &Path) -> Result<String, DbError>;

    /// The extension of backup files (`sqlite3`, `dump`).
    fn backup_extension(&self) -> &'static str;

    /// The SQL dialect of the migrations run here.
    fn dialect(&self) -> Dialect;
}

/// A PostgreSQL string literal that reads the same whatever `standard_conforming_strings` says.
pub fn pg_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// PostgreSQL: a migration's bookkeeping as SQL with literal values and the server's clock
/// (`applied_at` = the transaction's start, `duration_ms` = time since then), so it can travel in
/// the same batch as the migration.
pub fn pg_record_sql(book: &Bookkeeping) -> String {
    let t = crate::migrate::TABLE;
    match book {
        Bookkeeping::Insert {
            version,
            name,
            checksum,
            applied_by,
            release,
        } => format!(
            "INSERT INTO {t} (version, name, checksum, applied_at, duration_ms, applied_by, release) VALUES ({version}, {}, {}, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint, {}, {});\n",
            pg_literal(name),
            pg_literal(checksum),
            pg_literal(applied_by),
            release
                .as_deref()
                .map(pg_literal)
                .unwrap_or_else(|| "NULL".into())
        ),
        Bookkeeping::Delete { version } => format!("DELETE FROM {t} WHERE version = {version};\n"),
    }
}

/// The DDL of the tracking table (portable between PostgreSQL and SQLite).
pub fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    applied_by TEXT NOT NULL,
    release TEXT
)",
        t = crate::migrate::TABLE
    )
}

/// A wait as people read it: `0.6s`, `12.0s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn pg_literals_survive_quotes_and_backslashes() {
        assert_eq!(super::pg_literal(r"it's a\b"), r"E'it''s a\\b'");
    }

    #[test]
    fn lock_timeout_says_how_long_it_waited() {
        let e = super::DbError::LockTimeout {
            waited: std::time::Duration::from_millis(620),
            holder: None,
        };
        assert_eq!(
            e.to_string(),
            "the migration lock is held by another run (waited 0.6s)"
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }
}
