//! Migrations, the pure part: file names to versions, the `no-transaction` marker, checksums that
//! ignore line endings, the comparison of files with applied rows, the plan hash the approval gate
//! binds to, a statement splitter that knows SQL quoting, and (`tx_control.rs`) the scanner that
//! finds transaction-control statements a transactional migration must not contain.
//!
//! Stays out of I/O: the caller reads the directory and hands over (file name, text) pairs; `db/`
//! talks to databases, `plan/migrate.rs` decides what to run, `deploy/migrate/` runs it.

pub mod tx_control;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The tracking table, the same on every engine.
pub const TABLE: &str = "deploy_action_migrations";

/// The first-line marker for migrations that cannot run inside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- deploy-action: no-transaction";

/// One SQL file: an up migration or its `.down.sql`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlFile {
    /// The file name inside `migrations.dir` (`0003_add_index.sql`).
    pub file: String,
    pub sql: String,
    /// sha256 (hex) of the LF-normalised text.
    pub checksum: String,
    /// The first line is [`NO_TRANSACTION_MARKER`].
    pub no_transaction: bool,
}

impl SqlFile {
    pub fn new(file: impl Into<String>, sql: impl Into<String>) -> SqlFile {
        let sql = sql.into();
        SqlFile {
            file: file.into(),
            checksum: checksum(&sql),
            no_transaction: has_no_transaction_marker(&sql),
            sql,
        }
    }
}

/// A migration: its version, name, up file and optional down file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: u64,
    pub name: String,
    pub up: SqlFile,
    pub down: Option<SqlFile>,
}

/// A bad file in the migrations directory (exit 2, naming the file).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct NameError {
    pub file: String,
    pub message: String,
}

/// sha256 (hex) of the text with CRLF and lone CR turned into LF, so a checkout with other line
/// endings has the same checksum.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalize_newlines(text).as_bytes()))
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn has_no_transaction_marker(sql: &str) -> bool {
    let first = sql
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("");
    first.trim().eq_ignore_ascii_case(NO_TRANSACTION_MARKER)
}

/// Splits `NNNN_name.sql` / `NNNN_name.down.sql` into (version, name, is_down).
/// Files that do not end in `.sql` are not migrations (None); a `.sql` file with a bad name is an error.
pub fn parse_file_name(file: &str) -> Option<Result<(u64, String, bool), NameError>> {
    let stem = file.strip_suffix(".sql")?;
    let (stem, down) = match stem.strip_suffix(".down") {
        Some(s) => (s, true),
        None => (stem, false),
    };
    let bad = |message: &str| {
        Some(Err(NameError {
            file: file.to_string(),
            message: format!(
                "{message}; migration files are named NNNN_name.sql or NNNN_name.down.sql"
            ),
        }))
    };
    let digits: String = stem.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return bad("the name does not start with a version number");
    }
    let rest = &stem[digits.len()..];
    let Some(name) = rest.strip_prefix('_') else {
        return bad("the version number is not followed by `_`");
    };
    if name.is_empty() {
        return bad("the name after the version is empty");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return bad("the name may contain only letters, digits, `_` and `-`");
    }
    let Ok(version) = digits.parse::<u64>() else {
        return bad("the version number is too large");
    };
    Some(Ok((version, name.to_string(), down)))
}

/// Builds the ordered migrations from the directory's (file name, text) pairs. Files not ending in
/// `.sql` are ignored; bad names, duplicate versions and a down file without its up file are errors.
pub fn collect(files: Vec<(String, String)>) -> Result<Vec<Migration>, NameError> {
    let mut ups: BTreeMap<u64, (String, SqlFile)> = BTreeMap::new();
    let mut downs: BTreeMap<u64, (String, SqlFile)> = BTreeMap::new();
    for (file, text) in files {
        let Some(parsed) = parse_file_name(&file) else {
            continue;
        };
        let (version, name, down) = parsed?;
        let map = if down { &mut downs } else { &mut ups };
        if let Some((_, other)) = map.get(&version) {
            return Err(NameError {
                file: file.clone(),
                message: format!("version {version} is also used by {}", other.file),
            });
        }
        map.insert(version, (name, SqlFile::new(file, text)));
    }
    let mut out = Vec::new();
    for (version, (name, up)) in ups {
        let down = match downs.remove(&version) {
            Some((down_name, d)) if down_name != name => {
                return Err(NameError {
                    file: d.file,
                    message: format!("its name does not match the up migration {}", up.file),
                });
            }
            Some((_, d)) => Some(d),
            None => None,
        };
        out.push(Migration {
            version,
            name,
            up,
            down,
        });
    }
    if let Some((_, (_, d))) = downs.into_iter().next() {
        return Err(NameError {
            file: d.file,
            message: "a down migration without its up migration".into(),
        });
    }
    Ok(out)
}

/// A row of the tracking table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppliedRow {
    pub version: u64,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
    pub duration_ms: i64,
    pub applied_by: String,
    pub release: Option<String>,
}

/// The state of one version, files against the tracking table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Applied,
    Pending,
    /// Applied, but the file's checksum differs from the recorded one.
    Changed {
        recorded: String,
        current: String,
    },
    /// Recorded as applied, but no file has this version any more.
    MissingFile,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Pending => "pending",
            Status::Changed { .. } => "changed",
            Status::MissingFile => "missing-file",
        }
    }
}

/// One line of the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub version: u64,
    pub name: String,
    /// The up file name, or None for a missing file.
    pub file: Option<String>,
    pub status: Status,
}

/// Files and applied rows, merged in version order.
pub fn compare(migrations: &[Migration], applied: &[AppliedRow]) -> Vec<Entry> {
    let rows: BTreeMap<u64, &AppliedRow> = applied.iter().map(|r| (r.version, r)).collect();
    let mut out: BTreeMap<u64, Entry> = BTreeMap::new();
    for m in migrations {
        let status = match rows.get(&m.version) {
            None => Status::Pending,
            Some(r) if r.checksum == m.up.checksum => Status::Applied,
            Some(r) => Status::Changed {
                recorded: r.checksum.clone(),
                current: m.up.checksum.clone(),
            },
        };
        out.insert(
            m.version,
            Entry {
                version: m.version,
                name: m.name.clone(),
                file: Some(m.up.file.clone()),
                status,
            },
        );
    }
    for r in applied {
        out.entry(r.version).or_insert_with(|| Entry {
            version: r.version,
            name: r.name.clone(),
            file: None,
            status: Status::MissingFile,
        });
    }
    out.into_values().collect()
}

/// The hash the approval gate binds to: sha256 over the direction and, for each step in order, its
/// version, file name, transaction mode and LF-normalised SQL. Any change to what would run changes it.
pub fn plan_hash(direction: &str, steps: &[(&Migration, &SqlFile)]) -> String {
    let mut h = Sha256::new();
    h.update(b"deploy-action migrate plan v1\n");
    h.update(direction.as_bytes());
    h.update(b"\n");
    for (m, f) in steps {
        let sql = normalize_newlines(&f.sql);
        h.update(
            format!(
                "{}\0{}\0{}\0{}\0",
                m.version,
                f.file,
                f.no_transaction,
                sql.len()
            )
            .as_bytes(),
        );
        h.update(sql.as_bytes());
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// Splits SQL into statements at top-level `;`, respecting '…', "…", $tag$…$tag$, -- and /* */
/// comments. Each statement comes with its byte offset; empty (comment-only) pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<(usize, String)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |out: &mut Vec<(usize, String)>, from: usize, to: usize| {
        let piece = &sql[from..to];
        if !strip_comments(piece).trim().is_empty() {
            let lead = leading_trivia(piece);
            out.push((from + lead, piece[lead..].trim_end().to_string()));
        }
    };
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // $tag$ … $tag$ (tag: letters, digits, _; not starting with a digit)
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let tag_ok = j < b.len()
                    && b[j] == b'$'
                    && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if tag_ok {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b';' => {
                push(&mut out, start, i);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        push(&mut out, start, b.len());
    }
    out
}

/// The length of the whitespace and comments that open `piece`.
fn leading_trivia(piece: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &piece[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            i += trimmed.find('\n').map_or(trimmed.len(), |n| n + 1);
        } else if trimmed.starts_with("/*") {
            i += trimmed.find("*/").map_or(trimmed.len(), |n| n + 2);
        } else {
            return i;
        }
    }
}

fn strip_comments(piece: &str) -> String {
    piece
        .lines()
        .map(|l| match l.find("--") {
            Some(p) => &l[..p],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/*", " ")
        .replace("*/", " ")
}

/// The statement containing the 1-based character `position` of `sql` (PostgreSQL error positions).
pub fn statement_at(sql: &str, position: usize) -> Option<String> {
    let byte = sql
        .char_indices()
        .nth(position.saturating_sub(1))
        .map(|(b, _)| b)?;
    let stmts = split_statements(sql);
    stmts
        .iter()
        .rev()
        .find(|(off, _)| *off <= byte)
        .map(|(_, s)| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[(&str, &str)]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn versions_are_numeric_and_downs_pair_up() {
        let ms = collect(files(&[
            ("10_ten.sql", "select 10;"),
            ("2_two.sql", "select 2;"),
            ("2_two.down.sql", "select -2;"),
            ("README.md", "not a migration"),
        ]))
        .unwrap();
        assert_eq!(
            ms.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![2, 10]
        );
        assert_eq!(ms[0].down.as_ref().unwrap().file, "2_two.down.sql");
        assert!(ms[1].down.is_none());
    }

    #[test]
    fn bad_names_are_errors_naming_the_file() {
        for bad in ["abc.sql", "0001-x.sql", "0001_.sql", "0001_a b.sql"] {
            let e = collect(files(&[(bad, "")])).unwrap_err();
            assert_eq!(e.file, bad);
        }
        let e = collect(files(&[("1_a.sql", ""), ("01_b.sql", "")])).unwrap_err();
        assert!(e.message.contains("also used by"), "{e}");
        let e = collect(files(&[("3_x.down.sql", "")])).unwrap_err();
        assert_eq!(e.file, "3_x.down.sql");
    }

    #[test]
    fn checksums_ignore_line_endings_and_marker_is_detected() {
        assert_eq!(checksum("a\r\nb\r\n"), checksum("a\nb\n"));
        assert_ne!(checksum("a\nb\n"), checksum("a\nc\n"));
        let f = SqlFile::new(
            "1_x.sql",
            "-- deploy-action: no-transaction\r\nCREATE INDEX CONCURRENTLY i ON t(a);",
        );
        assert!(f.no_transaction);
        assert!(
            !SqlFile::new("1_x.sql", "select 1;\n-- deploy-action: no-transaction").no_transaction
        );
    }

    #[test]
    fn compare_reports_each_status() {
        let ms = collect(files(&[
            ("1_a.sql", "A"),
            ("2_b.sql", "B2"),
            ("3_c.sql", "C"),
        ]))
        .unwrap();
        let row = |v: u64, sum: String| AppliedRow {
            version: v,
            name: "x".into(),
            checksum: sum,
            applied_at: String::new(),
            duration_ms: 0,
            applied_by: String::new(),
            release: None,
        };
        let applied = vec![
            row(1, checksum("A")),
            row(2, checksum("B")),
            row(9, "z".into()),
        ];
        let c = compare(&ms, &applied);
        let labels: Vec<_> = c.iter().map(|e| (e.version, e.status.label())).collect();
        assert_eq!(
            labels,
            vec![
                (1, "applied"),
                (2, "changed"),
                (3, "pending"),
                (9, "missing-file")
            ]
        );
    }

    #[test]
    fn plan_hash_changes_with_the_sql() {
        let a = collect(files(&[("1_a.sql", "select 1;")])).unwrap();
        let b = collect(files(&[("1_a.sql", "select 2;")])).unwrap();
        let crlf = collect(files(&[("1_a.sql", "select 1;\r\n")])).unwrap();
        let lf = collect(files(&[("1_a.sql", "select 1;\n")])).unwrap();
        let h = |m: &[Migration]| plan_hash("up", &[(&m[0], &m[0].up)]);
        assert_ne!(h(&a), h(&b));
        assert_eq!(h(&crlf), h(&lf));
        assert_ne!(
            plan_hash("up", &[(&a[0], &a[0].up)]),
            plan_hash("down", &[(&a[0], &a[0].up)])
        );
    }

    #[test]
    fn splitter_respects_quotes_comments_and_dollar_bodies() {
        let sql = "create table t(a text); -- c;\ninsert into t values ('x;y');\n/* ; */\ncreate function f() returns int as $$ select 1; $$ language sql;\nselect 'it''s;'";
        let s: Vec<String> = split_statements(sql).into_iter().map(|(_, s)| s).collect();
        assert_eq!(s.len(), 4, "{s:#?}");
        assert!(s[2].contains("$$ select 1; $$"));
        assert_eq!(s[3], "select 'it''s;'");
        let pos = sql.find("insert").unwrap() + 3;
        assert!(statement_at(sql, pos).unwrap().starts_with("insert"));
    }
}
