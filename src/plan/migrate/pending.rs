//! What a `migrate` run has to do, decided from the migration files and the rows of the tracking
//! table: the files to apply (or, for `down`, to revert), the checksums to re-baseline
//! (`--accept-changed`), and the refusals (a changed file, a missing down file, a bad `--target`,
//! transaction control inside a transactional file). Its hash is what the approval gate binds to.
//!
//! Pure: the caller reads the directory and the table and hands both over.

use crate::migrate::tx_control::{self, Dialect};
use crate::migrate::{self, AppliedRow, Migration, SqlFile, Status};

/// Which way a run goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// What the run was asked to reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Apply the pending files, up to and including `target` when given (it must be the version
    /// of a file).
    Up { target: Option<u64> },
    /// Revert the applied versions above `to`, newest first.
    Down { to: u64 },
}

/// Why a run cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Bad input (exit 2), with a hint when there is one.
    Input {
        message: String,
        help: Option<String>,
    },
    /// The run cannot go on as asked (exit 1): a changed file nobody accepted, a missing down file.
    Refused(String),
}

fn input(message: String) -> PlanError {
    PlanError::Input {
        message,
        help: None,
    }
}

/// What is to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending<'m> {
    pub direction: Direction,
    /// The files to run with their migration, in order.
    pub files: Vec<(&'m Migration, &'m SqlFile)>,
    /// (version, checksum of the file now) to record instead of the changed one.
    pub rebaseline: Vec<(u64, String)>,
    /// Said once to the user: `--accept-changed` flags with nothing left to do.
    pub notes: Vec<String>,
}

impl Pending<'_> {
    /// The hash the approval gate binds to: the direction, the re-baselines, every file.
    pub fn hash(&self) -> String {
        let mut dir = self.direction.as_str().to_string();
        for (v, sum) in &self.rebaseline {
            dir.push_str(&format!(" accept {v}={sum}"));
        }
        migrate::plan_hash(&dir, &self.files)
    }

    /// The SQL that would run, as the approval shows it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (v, _) in &self.rebaseline {
            out.push_str(&format!("-- re-baseline the checksum of version {v}\n"));
        }
        for (_, f) in &self.files {
            out.push_str(&file_text(f));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.rebaseline.is_empty()
    }
}

/// One file as the approval and a dry run show it: a `-- <file>` line, then its SQL.
pub fn file_text(f: &SqlFile) -> String {
    let mode = if f.no_transaction {
        " (no transaction)"
    } else {
        ""
    };
    let mut out = format!("-- {}{mode}\n{}", f.file, f.sql);
    if !f.sql.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Works out what to run toward `goal` from `files` and the `applied` rows; refuses changed files
/// that are not in `accept_changed`. `dir` names the migrations directory in messages.
pub fn pending<'m>(
    goal: &Goal,
    accept_changed: &[u64],
    files: &'m [Migration],
    applied: &[AppliedRow],
    dir: &str,
) -> Result<Pending<'m>, PlanError> {
    let entries = migrate::compare(files, applied);
    let (rebaseline, notes) = accepted(accept_changed, &entries, dir)?;
    let by_version = |v: u64| files.iter().find(|m| m.version == v);
    if let Goal::Up { target: Some(t) } = goal
        && by_version(*t).is_none()
    {
        let known: Vec<String> = files.iter().map(|m| m.version.to_string()).collect();
        return Err(input(format!(
            "--target {t}: no migration file in {dir} has version {t} (versions: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let (direction, files) = match goal {
        Goal::Down { to } => (Direction::Down, down_files(*to, &entries, files, dir)?),
        Goal::Up { target } => {
            let up = entries
                .iter()
                .filter(|e| e.status == Status::Pending)
                .filter(|e| target.is_none_or(|t| e.version <= t))
                .filter_map(|e| by_version(e.version).map(|m| (m, &m.up)))
                .collect();
            (Direction::Up, up)
        }
    };
    Ok(Pending {
        direction,
        files,
        rebaseline,
        notes,
    })
}

/// What `--accept-changed` comes to: the re-baselines (version, checksum now), and the notes for
/// flags with nothing left to do.
type Accepted = (Vec<(u64, String)>, Vec<String>);

/// The re-baselines `--accept-changed` asks for, and the notes for flags with nothing left to do;
/// a changed file that was not accepted is refused by name.
fn accepted(
    accept_changed: &[u64],
    entries: &[migrate::Entry],
    dir: &str,
) -> Result<Accepted, PlanError> {
    let mut rebaseline = Vec::new();
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    for e in entries {
        if let Status::Changed { recorded, current } = &e.status {
            if accept_changed.contains(&e.version) {
                rebaseline.push((e.version, current.clone()));
            } else {
                refused.push(format!(
                    "{dir}/{} was changed after it was applied (recorded checksum {recorded}, file now {current}); \
restore the file, or pass --accept-changed {} to re-baseline it on purpose",
                    e.file.clone().unwrap_or_default(),
                    e.version
                ));
            }
        }
    }
    for v in accept_changed {
        if rebaseline.iter().any(|(x, _)| x == v) {
            continue;
        }
        match entries.iter().find(|e| e.version == *v) {
            // Re-baselined by an earlier run (a workflow that keeps the flag): nothing to do.
            Some(e) if e.status == Status::Applied => notes.push(format!(
                "--accept-changed {v}: the recorded checksum of {} already matches the file; nothing to re-baseline",
                e.file.as_deref().unwrap_or(&e.name)
            )),
            Some(e) => {
                return Err(input(format!(
                    "--accept-changed {v}: version {v} is {}, not an applied migration whose file changed",
                    e.status.label()
                )));
            }
            None => {
                return Err(input(format!(
                    "--accept-changed {v}: no migration file and no applied row has version {v}"
                )));
            }
        }
    }
    if !refused.is_empty() {
        return Err(PlanError::Refused(refused.join("\n")));
    }
    Ok((rebaseline, notes))
}

/// The down files of the applied versions above `to`, newest first; a version without one stops
/// the plan (nothing is reverted).
fn down_files<'m>(
    to: u64,
    entries: &[migrate::Entry],
    files: &'m [Migration],
    dir: &str,
) -> Result<Vec<(&'m Migration, &'m SqlFile)>, PlanError> {
    let mut out = Vec::new();
    for e in entries.iter().rev() {
        if e.version <= to || matches!(e.status, Status::Pending) {
            continue;
        }
        let m = files.iter().find(|m| m.version == e.version);
        match m.and_then(|m| m.down.as_ref().map(|d| (m, d))) {
            Some(pair) => out.push(pair),
            None => {
                return Err(PlanError::Refused(format!(
                    "version {} ({}) has no down migration {dir}/{:04}_{}.down.sql; nothing was changed",
                    e.version, e.name, e.version, e.name
                )));
            }
        }
    }
    Ok(out)
}

/// Exit 2, naming file:line:column, when a file that runs inside deploy-action's transaction
/// contains transaction control (it would commit part of itself; see `migrate::tx_control`).
pub fn refuse_transaction_control(
    pending: &Pending,
    dialect: Dialect,
    dir: &str,
) -> Result<(), PlanError> {
    let found: Vec<String> = pending
        .files
        .iter()
        .filter(|(_, f)| !f.no_transaction)
        .filter_map(|(_, f)| {
            tx_control::find(&f.sql, dialect).map(|t| {
                format!(
                    "{dir}/{}:{}:{}: `{}` controls the transaction, but this migration runs inside deploy-action's own transaction",
                    f.file, t.line, t.column, t.keyword
                )
            })
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(PlanError::Input {
        message: format!("{}\nnothing was run", found.join("\n")),
        help: Some(format!(
            "each migration runs in one transaction together with its row in the tracking table, so it must not \
BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT or RELEASE itself: remove the statement, or put `{}` on the file's first \
line to run its statements one by one without a transaction",
            migrate::NO_TRANSACTION_MARKER
        )),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Migrations from (file name, SQL) pairs.
    pub fn files(list: &[(&str, &str)]) -> Vec<Migration> {
        migrate::collect(
            list.iter()
                .map(|(f, s)| (f.to_string(), s.to_string()))
                .collect(),
        )
        .unwrap()
    }

    /// A row recording `m` as applied (with `checksum`, or the file's own).
    pub fn row(m: &Migration, checksum: Option<&str>) -> AppliedRow {
        AppliedRow {
            version: m.version,
            name: m.name.clone(),
            checksum: checksum.map_or_else(|| m.up.checksum.clone(), str::to_string),
            applied_at: "2024-01-01T00:00:00Z".into(),
            duration_ms: 1,
            applied_by: "t".into(),
            release: None,
        }
    }

    fn three() -> Vec<Migration> {
        files(&[
            ("0001_a.sql", "CREATE TABLE a (id int);"),
            ("0001_a.down.sql", "DROP TABLE a;"),
            ("0002_b.sql", "CREATE TABLE b (id int);"),
            ("0002_b.down.sql", "DROP TABLE b;"),
            ("0003_c.sql", "CREATE TABLE c (id int);"),
        ])
    }

    fn versions(p: &Pending) -> Vec<u64> {
        p.files.iter().map(|(m, _)| m.version).collect()
    }

    const UP: Goal = Goal::Up { target: None };

    #[test]
    fn up_runs_the_pending_files_in_order_and_a_target_stops_there() {
        let f = three();
        let p = pending(&UP, &[], &f, &[row(&f[0], None)], "m").unwrap();
        assert_eq!(versions(&p), [2, 3]);
        assert_eq!(p.direction, Direction::Up);
        let t = pending(&Goal::Up { target: Some(2) }, &[], &f, &[], "m").unwrap();
        assert_eq!(versions(&t), [1, 2]);
        assert_ne!(t.hash(), p.hash());
        let Err(PlanError::Input { message, .. }) =
            pending(&Goal::Up { target: Some(9) }, &[], &f, &[], "m")
        else {
            panic!("a target without a file is an input error");
        };
        assert!(message.contains("(versions: 1, 2, 3)"), "{message}");
    }

    #[test]
    fn down_reverts_newest_first_and_needs_every_down_file() {
        let f = three();
        let rows: Vec<AppliedRow> = f[..2].iter().map(|m| row(m, None)).collect();
        let p = pending(&Goal::Down { to: 0 }, &[], &f, &rows, "m").unwrap();
        assert_eq!(versions(&p), [2, 1]);
        assert_eq!(p.files[0].1.file, "0002_b.down.sql");
        let all: Vec<AppliedRow> = f.iter().map(|m| row(m, None)).collect();
        let Err(PlanError::Refused(msg)) = pending(&Goal::Down { to: 1 }, &[], &f, &all, "m")
        else {
            panic!("0003 has no down file");
        };
        assert!(msg.contains("m/0003_c.down.sql"), "{msg}");
    }

    #[test]
    fn a_changed_file_is_refused_unless_accepted_and_accepting_twice_is_a_note() {
        let f = three();
        let rows = [row(&f[0], Some("old"))];
        let Err(PlanError::Refused(msg)) = pending(&UP, &[], &f, &rows, "m") else {
            panic!("changed file refused");
        };
        assert!(
            msg.contains("m/0001_a.sql was changed") && msg.contains("--accept-changed 1"),
            "{msg}"
        );
        let p = pending(&UP, &[1], &f, &rows, "m").unwrap();
        assert_eq!(p.rebaseline, [(1, f[0].up.checksum.clone())]);
        assert!(
            p.text()
                .starts_with("-- re-baseline the checksum of version 1\n")
        );
        let again = pending(&UP, &[1], &f, &[row(&f[0], None)], "m").unwrap();
        assert!(again.rebaseline.is_empty());
        assert!(
            again.notes[0].contains("already matches"),
            "{:?}",
            again.notes
        );
        let Err(PlanError::Input { message, .. }) = pending(&UP, &[2], &f, &rows, "m") else {
            panic!("accepting a pending version is an input error");
        };
        assert!(message.contains("version 2 is pending"), "{message}");
    }

    #[test]
    fn transaction_control_is_refused_with_its_place_unless_marked() {
        let f = files(&[
            ("0001_a.sql", "CREATE TABLE a (id int);\n  COMMIT;\n"),
            (
                "0002_b.sql",
                "-- deploy-action: no-transaction\nBEGIN;\nCOMMIT;\n",
            ),
        ]);
        let p = pending(&UP, &[], &f, &[], "m").unwrap();
        let Err(PlanError::Input { message, help }) =
            refuse_transaction_control(&p, Dialect::Sqlite, "m")
        else {
            panic!("COMMIT refused");
        };
        assert!(
            message.starts_with("m/0001_a.sql:2:3: `COMMIT`"),
            "{message}"
        );
        assert!(!message.contains("0002_b.sql"), "{message}");
        assert!(help.unwrap().contains("no-transaction"));
    }

    #[test]
    fn the_text_shows_each_file_and_its_mode() {
        let f = files(&[
            ("0001_a.sql", "CREATE TABLE a (id int);"),
            ("0002_b.sql", "-- deploy-action: no-transaction\nVACUUM;\n"),
        ]);
        let p = pending(&UP, &[], &f, &[], "m").unwrap();
        assert_eq!(
            p.text(),
            "-- 0001_a.sql\nCREATE TABLE a (id int);\n-- 0002_b.sql (no transaction)\n-- deploy-action: no-transaction\nVACUUM;\n"
        );
    }
}
