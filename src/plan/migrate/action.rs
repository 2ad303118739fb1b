//! The actions only `migrate` takes, as data (the performer in `deploy/migrate/` carries them
//! out), each said in words by [`MigrationAction::describe`]. Pure.

use super::Direction;
use serde::Serialize;

/// A step only `migrate` takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum MigrationAction {
    /// The deploy rules of an environment without `approval: required`.
    Rules { environment: String },
    /// Take the migration lock (waiting at most `wait_ms`), then read the tracking table again.
    Lock { wait_ms: u64 },
    /// Create the tracking table if it does not exist.
    Table,
    /// Record the file's checksum now as the applied one (`--accept-changed`).
    Rebaseline { version: u64, checksum: String },
    /// Run one file with its tracking row (inserted; for `down` deleted) in one transaction.
    Apply {
        direction: Direction,
        version: u64,
        name: String,
        file: String,
        checksum: String,
        no_transaction: bool,
        /// The SQL read when the run was planned: what runs (and what was approved).
        #[serde(skip)]
        sql: String,
    },
    /// Record the run as a release of the environment (a GitHub deployment too, in Actions).
    Release { environment: String },
    /// Release the migration lock.
    Unlock,
}

impl MigrationAction {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            MigrationAction::Rules { environment } => format!(
                "check the deploy rules of {environment} (`branches:`, no uncommitted changes unless --allow-dirty)"
            ),
            MigrationAction::Lock { wait_ms } => format!(
                "take the migration lock (wait at most {}, then exit 4) and read the tracking table again under it",
                wait(*wait_ms)
            ),
            MigrationAction::Table => format!(
                "create the tracking table {} if it does not exist",
                crate::migrate::TABLE
            ),
            MigrationAction::Rebaseline { version, checksum } => format!(
                "re-baseline the recorded checksum of version {version} to {}… (--accept-changed)",
                checksum.chars().take(12).collect::<String>()
            ),
            MigrationAction::Apply {
                direction,
                version,
                file,
                no_transaction,
                ..
            } => match (direction, no_transaction) {
                (Direction::Up, false) => {
                    format!("apply {file} and record version {version}, in one transaction")
                }
                (Direction::Up, true) => format!(
                    "apply {file} without a transaction (statement by statement), then record version {version}"
                ),
                (Direction::Down, false) => format!(
                    "revert with {file} and delete the row of version {version}, in one transaction"
                ),
                (Direction::Down, true) => format!(
                    "revert with {file} without a transaction (statement by statement), then delete the row of version {version}"
                ),
            },
            MigrationAction::Release { environment } => format!(
                "record the release of {environment} (its migration version) and the GitHub deployment deploy:migrations; a failed run is a failed deployment"
            ),
            MigrationAction::Unlock => "release the migration lock".into(),
        }
    }

    /// The file an [`MigrationAction::Apply`] runs, as it was read.
    pub fn sql_file(&self) -> Option<crate::migrate::SqlFile> {
        match self {
            MigrationAction::Apply {
                file,
                checksum,
                no_transaction,
                sql,
                ..
            } => Some(crate::migrate::SqlFile {
                file: file.clone(),
                sql: sql.clone(),
                checksum: checksum.clone(),
                no_transaction: *no_transaction,
            }),
            _ => None,
        }
    }
}

/// A wait in milliseconds as people read it: `60s`, `0.3s`.
fn wait(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_in_seconds() {
        assert_eq!(wait(60_000), "60s");
        assert_eq!(wait(300), "0.3s");
        assert_eq!(
            MigrationAction::Lock { wait_ms: 1500 }.describe(),
            "take the migration lock (wait at most 1.5s, then exit 4) and read the tracking table again under it"
        );
    }
}
