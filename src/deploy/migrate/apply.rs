//! One migration file with its tracking row: what is recorded with it (inserted, for `down`
//! deleted, in the same transaction), what the user is told, the database's version afterwards,
//! and the message of a failure (rolled back whole, not rolled back, or run without a
//! transaction). Pure: the performer runs the file (`Database::run`).

use crate::db::{Bookkeeping, DbError};
use crate::error::MigrationFailure;
use crate::migrate::SqlFile;
use crate::plan::migrate::{Direction, MigrationAction};

/// What is recorded with an [`MigrationAction::Apply`]: its row, inserted (by `applied_by`, for
/// the commit `release`) or, for `down`, deleted.
pub fn bookkeeping(
    action: &MigrationAction,
    applied_by: String,
    release: Option<String>,
) -> Option<Bookkeeping> {
    let MigrationAction::Apply {
        direction,
        version,
        name,
        checksum,
        ..
    } = action
    else {
        return None;
    };
    Some(match direction {
        Direction::Down => Bookkeeping::Delete { version: *version },
        Direction::Up => Bookkeeping::Insert {
            version: *version,
            name: name.clone(),
            checksum: checksum.clone(),
            applied_by,
            release,
        },
    })
}

/// The line said before a file runs: `applying 0002_b.sql`, `reverting 0002_b.down.sql (…)`.
pub fn announce(direction: Direction, file: &SqlFile) -> String {
    format!(
        "{} {}{}",
        match direction {
            Direction::Down => "reverting",
            Direction::Up => "applying",
        },
        file.file,
        if file.no_transaction {
            " (no transaction: statements run one by one, then recorded)"
        } else {
            ""
        }
    )
}

/// The database's version once `version` ran: the highest applied for `up`; for `down` the
/// highest of `recorded` (the rows under the lock) below it.
pub fn version_after(
    direction: Direction,
    before: Option<u64>,
    version: u64,
    recorded: &[u64],
) -> Option<u64> {
    match direction {
        Direction::Up => before.max(Some(version)),
        Direction::Down => recorded.iter().copied().filter(|v| *v < version).max(),
    }
}

/// What went wrong with `file` in `dir`, and what is left of it: the failing statement and the
/// database's own message (the performer adds the origin, the `migrations:` entry).
pub fn failure(dir: &str, file: &SqlFile, e: &DbError) -> MigrationFailure {
    let (statement, message) = match e {
        DbError::Statement { statement, message }
        | DbError::NotRolledBack { statement, message } => (statement.clone(), message.clone()),
        other => (None, other.to_string()),
    };
    let aftermath = if matches!(e, DbError::NotRolledBack { .. }) {
        "it could NOT be rolled back: part of it may be applied (even recorded); check the database and the tracking table before running again"
    } else if file.no_transaction {
        "it ran without a transaction: statements before the failing one stay applied, and it is not recorded"
    } else {
        "it was rolled back whole; earlier migrations stay applied"
    };
    MigrationFailure {
        file: format!("{dir}/{}", file.file),
        aftermath: aftermath.into(),
        statement,
        database: message,
        origin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(direction: Direction) -> MigrationAction {
        MigrationAction::Apply {
            direction,
            version: 2,
            name: "b".into(),
            file: "0002_b.sql".into(),
            checksum: "c2".into(),
            no_transaction: false,
            sql: "CREATE TABLE b (id int);".into(),
        }
    }

    #[test]
    fn up_inserts_the_row_and_down_deletes_it() {
        let up = bookkeeping(&action(Direction::Up), "carol".into(), Some("abc".into()));
        let Some(Bookkeeping::Insert {
            version,
            checksum,
            applied_by,
            release,
            ..
        }) = up
        else {
            panic!("an insert: {up:?}");
        };
        assert_eq!(
            (version, checksum.as_str(), applied_by.as_str()),
            (2, "c2", "carol")
        );
        assert_eq!(release.as_deref(), Some("abc"));
        let down = bookkeeping(&action(Direction::Down), "carol".into(), None);
        assert!(matches!(down, Some(Bookkeeping::Delete { version: 2 })));
        assert!(bookkeeping(&MigrationAction::Table, "c".into(), None).is_none());
    }

    #[test]
    fn the_version_after_a_step() {
        assert_eq!(version_after(Direction::Up, Some(1), 2, &[]), Some(2));
        assert_eq!(version_after(Direction::Up, None, 1, &[]), Some(1));
        assert_eq!(
            version_after(Direction::Down, Some(3), 3, &[1, 2, 3]),
            Some(2)
        );
        assert_eq!(version_after(Direction::Down, Some(1), 1, &[1, 2, 3]), None);
    }

    #[test]
    fn a_failure_says_what_is_left_of_the_migration() {
        let f = SqlFile::new("0002_b.sql", "INSERT INTO nope VALUES (1);");
        let e = DbError::Statement {
            statement: Some("INSERT INTO nope VALUES (1)".into()),
            message: "relation \"nope\" does not exist".into(),
        };
        assert_eq!(
            failure("m", &f, &e).to_string(),
            "m/0002_b.sql failed; it was rolled back whole; earlier migrations stay applied\n  statement: INSERT INTO nope VALUES (1)\n  database: relation \"nope\" does not exist"
        );
        let e = DbError::NotRolledBack {
            statement: None,
            message: "boom".into(),
        };
        assert!(
            failure("m", &f, &e)
                .aftermath
                .contains("could NOT be rolled back")
        );
        let marked = SqlFile::new("0003_c.sql", "-- deploy-action: no-transaction\nVACUUM;");
        let e = DbError::Other("x".into());
        let f = failure("m", &marked, &e);
        assert!(f.aftermath.contains("ran without a transaction"));
        assert_eq!((f.statement, f.database.as_str()), (None, "x"));
        assert_eq!(
            announce(Direction::Down, &marked),
            "reverting 0003_c.sql (no transaction: statements run one by one, then recorded)"
        );
    }
}
