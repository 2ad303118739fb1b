//! Finds transaction-control statements in a migration that runs inside deploy-action's own
//! transaction: `BEGIN`, `COMMIT`, `END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`, and PostgreSQL's
//! `START TRANSACTION`, `ABORT` and `PREPARE TRANSACTION`. Such a statement would end (or nest
//! into) the transaction that holds the migration and its tracking row, so part of the file
//! would stay applied while the run reports it rolled back. `plan/migrate/pending.rs` refuses the
//! file before anything runs; files marked no-transaction are not checked.
//!
//! A small scanner, not a parser: it looks at the first word of each statement and skips what
//! cannot start one — comments, quoted strings and identifiers, PostgreSQL's dollar-quoted bodies
//! (`DO $$ BEGIN … END $$`), and the `BEGIN … END` bodies of SQLite's `CREATE TRIGGER` and
//! PostgreSQL's `CREATE FUNCTION|PROCEDURE … BEGIN ATOMIC … END`, where those words are legal.
//! Pure: no I/O.

/// Which SQL the file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A transaction-control statement: where it starts (1-based line and column, in characters)
/// and its keywords (`COMMIT`, `START TRANSACTION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxControl {
    pub line: usize,
    pub column: usize,
    pub keyword: String,
}

/// One token: a word (upper-cased) with its byte offset, or a punctuation character.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(usize, String),
    Punct(char),
}

/// The first transaction-control statement of `sql`, if any.
pub fn find(sql: &str, dialect: Dialect) -> Option<TxControl> {
    let mut scan = Scan::default();
    for token in tokens(sql, dialect) {
        if let Some((offset, keyword)) = scan.push(token, dialect) {
            let (line, column) = line_column(sql, offset);
            return Some(TxControl {
                line,
                column,
                keyword,
            });
        }
    }
    None
}

/// Statement-level state over the tokens.
#[derive(Default)]
struct Scan {
    /// The next word starts a statement.
    started: bool,
    /// The first word of the current statement.
    first: Option<String>,
    /// This statement may carry a BEGIN … END body (CREATE TRIGGER / FUNCTION / PROCEDURE).
    has_body: bool,
    /// Nesting inside such a body (BEGIN and CASE open, END closes).
    depth: usize,
    parens: usize,
    /// `START` or `PREPARE` opened the statement: transaction control if TRANSACTION follows.
    pending: Option<(usize, String)>,
}

const ALWAYS: [&str; 7] = [
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ABORT",
];

impl Scan {
    fn push(&mut self, token: Token, dialect: Dialect) -> Option<(usize, String)> {
        let (offset, word) = match token {
            Token::Punct(';') if self.depth == 0 && self.parens == 0 => {
                *self = Scan::default();
                return None;
            }
            Token::Punct('(') => {
                self.parens += 1;
                return None;
            }
            Token::Punct(')') => {
                self.parens = self.parens.saturating_sub(1);
                return None;
            }
            Token::Punct(_) => return None,
            Token::Word(offset, word) => (offset, word),
        };
        if let Some((at, first)) = self.pending.take()
            && word == "TRANSACTION"
        {
            return Some((at, format!("{first} TRANSACTION")));
        }
        if !self.started {
            self.started = true;
            if ALWAYS.contains(&word.as_str()) {
                return Some((offset, word));
            }
            if word == "START" || word == "PREPARE" {
                self.pending = Some((offset, word.clone()));
            }
            self.first = Some(word);
            return None;
        }
        self.track_body(&word, dialect);
        None
    }

    /// Follows BEGIN … END bodies, whose words are not statements of the file.
    fn track_body(&mut self, word: &str, dialect: Dialect) {
        if self.first.as_deref() == Some("CREATE") && self.depth == 0 {
            let opens = match dialect {
                Dialect::Sqlite => word == "TRIGGER",
                Dialect::Postgres => word == "FUNCTION" || word == "PROCEDURE",
            };
            self.has_body |= opens;
        }
        match word {
            "BEGIN" if self.has_body && self.depth == 0 => self.depth = 1,
            "CASE" if self.depth > 0 => self.depth += 1,
            "END" if self.depth > 0 => self.depth -= 1,
            _ => {}
        }
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(sql: &str, offset: usize) -> (usize, usize) {
    let before = &sql[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || !c.is_ascii()
}

/// The words and punctuation of `sql`, without comments, strings, quoted identifiers and
/// dollar-quoted bodies. An unterminated one swallows the rest (the database reports it).
fn tokens(sql: &str, dialect: Dialect) -> Vec<Token> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let next = at(i + 1);
        i = match c {
            _ if c.is_whitespace() => i + 1,
            '-' if next == Some('-') => skip_until(&chars, i + 2, "\n"),
            '/' if next == Some('*') => skip_block_comment(&chars, i + 2, dialect),
            '\'' => skip_quoted(&chars, i + 1, '\'', false),
            '"' => skip_quoted(&chars, i + 1, '"', false),
            '`' if dialect == Dialect::Sqlite => skip_quoted(&chars, i + 1, '`', false),
            '[' if dialect == Dialect::Sqlite => skip_until(&chars, i + 1, "]"),
            '$' if dialect == Dialect::Postgres => match dollar_tag(&chars, i) {
                Some(tag) => skip_until(&chars, i + tag.chars().count(), &tag),
                None => i + 1,
            },
            _ if is_word_char(c) => {
                let start = i;
                let mut j = i;
                while at(j).is_some_and(|c| is_word_char(c) || c == '$') {
                    j += 1;
                }
                let word: String = chars[start..j].iter().map(|&(_, c)| c).collect();
                // E'…' (PostgreSQL): backslash escapes inside.
                let escape = dialect == Dialect::Postgres && word.eq_ignore_ascii_case("E");
                if escape && at(j) == Some('\'') {
                    skip_quoted(&chars, j + 1, '\'', true)
                } else {
                    out.push(Token::Word(chars[start].0, word.to_ascii_uppercase()));
                    j
                }
            }
            _ => {
                out.push(Token::Punct(c));
                i + 1
            }
        };
    }
    out
}

/// Past the first `end` at or after `from` (or the end of the text).
fn skip_until(chars: &[(usize, char)], from: usize, end: &str) -> usize {
    let end: Vec<char> = end.chars().collect();
    let mut i = from;
    while i < chars.len() {
        if chars[i..]
            .iter()
            .map(|&(_, c)| c)
            .take(end.len())
            .eq(end.iter().copied())
        {
            return i + end.len();
        }
        i += 1;
    }
    chars.len()
}

/// Past the `*/` closing a comment opened before `from`; PostgreSQL nests them, SQLite does not.
fn skip_block_comment(chars: &[(usize, char)], from: usize, dialect: Dialect) -> usize {
    let mut depth = 1;
    let mut i = from;
    while i < chars.len() {
        let pair = (chars[i].1, chars.get(i + 1).map(|&(_, c)| c));
        match pair {
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            ('/', Some('*')) if dialect == Dialect::Postgres => {
                depth += 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Past the `quote` closing a string or identifier opened before `from` (a doubled quote is one
/// quote; with `backslash`, `\x` escapes any character).
fn skip_quoted(chars: &[(usize, char)], from: usize, quote: char, backslash: bool) -> usize {
    let mut i = from;
    while i < chars.len() {
        let c = chars[i].1;
        if backslash && c == '\\' {
            i += 2;
        } else if c == quote {
            if chars.get(i + 1).map(|&(_, c)| c) == Some(quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    chars.len()
}

/// The `$tag$` opening a dollar-quoted body at `i`, if there is one (not `$1`, not inside an
/// identifier such as `a$b`).
fn dollar_tag(chars: &[(usize, char)], i: usize) -> Option<String> {
    if i > 0 && (is_word_char(chars[i - 1].1) || chars[i - 1].1 == '$') {
        return None;
    }
    let mut j = i + 1;
    while j < chars.len() && (is_word_char(chars[j].1)) {
        j += 1;
    }
    let tag: String = chars[i..=j.min(chars.len() - 1)]
        .iter()
        .map(|&(_, c)| c)
        .collect();
    let first_ok = chars.get(i + 1).is_some_and(|&(_, c)| !c.is_ascii_digit());
    (chars.get(j).map(|&(_, c)| c) == Some('$') && first_ok).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::{Dialect, find};

    fn hit(sql: &str, d: Dialect) -> Option<(usize, usize, String)> {
        find(sql, d).map(|t| (t.line, t.column, t.keyword))
    }

    #[test]
    fn transaction_control_is_found_with_its_line_and_column() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            let sql = "CREATE TABLE a (id int);\n  commit;\nINSERT INTO a VALUES (1);";
            assert_eq!(hit(sql, d), Some((2, 3, "COMMIT".into())));
            assert_eq!(hit("BEGIN;\nSELECT 1;", d), Some((1, 1, "BEGIN".into())));
            assert_eq!(hit("select 1; End", d), Some((1, 11, "END".into())));
            for kw in [
                "ROLLBACK",
                "SAVEPOINT s",
                "RELEASE s",
                "ROLLBACK TO s",
                "ABORT",
            ] {
                assert!(hit(&format!("select 1;\n{kw};"), d).is_some(), "{kw}");
            }
        }
        assert_eq!(
            hit("SELECT 1;\nSTART\n TRANSACTION;", Dialect::Postgres),
            Some((2, 1, "START TRANSACTION".into()))
        );
        assert_eq!(
            hit("PREPARE TRANSACTION 'x';", Dialect::Postgres),
            Some((1, 1, "PREPARE TRANSACTION".into()))
        );
    }

    #[test]
    fn comments_strings_and_identifiers_are_not_statements() {
        let sql = "-- COMMIT;\n/* ROLLBACK; */ SELECT 'a; COMMIT', \"b; END\";\nINSERT INTO t VALUES ('it''s; BEGIN');";
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            assert_eq!(hit(sql, d), None, "{d:?}");
        }
        assert_eq!(
            hit("SELECT E'\\'; COMMIT; \\''; SELECT 1;", Dialect::Postgres),
            None
        );
        assert_eq!(
            hit(
                "/* a /* nested */ ; COMMIT; */ SELECT 1;",
                Dialect::Postgres
            ),
            None
        );
        assert_eq!(
            hit("SELECT `x; COMMIT`, [y; END] FROM t;", Dialect::Sqlite),
            None
        );
        assert_eq!(
            hit("PREPARE q AS SELECT 1; START_X;", Dialect::Postgres),
            None
        );
    }

    #[test]
    fn dollar_quoted_bodies_are_skipped_on_postgres() {
        let sql = "DO $$ BEGIN PERFORM 1; COMMIT; END $$;\n\
CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\n\
SELECT $1, a$b FROM t;";
        assert_eq!(hit(sql, Dialect::Postgres), None);
        // Once the body is closed, the next statement counts again.
        assert_eq!(
            hit("DO $x$ BEGIN END $x$;\nCOMMIT;", Dialect::Postgres),
            Some((2, 1, "COMMIT".into()))
        );
    }

    #[test]
    fn trigger_and_atomic_bodies_may_say_begin_and_end() {
        let trigger = "CREATE TABLE log (m TEXT);\n\
CREATE TEMP TRIGGER t AFTER INSERT ON a WHEN new.id > 0 BEGIN\n\
  INSERT INTO log VALUES (CASE WHEN new.id > 1 THEN 'big' ELSE 'small' END);\n\
  UPDATE a SET id = id WHERE 0;\n\
END;\n\
INSERT INTO a VALUES (1);";
        assert_eq!(hit(trigger, Dialect::Sqlite), None);
        assert_eq!(
            hit(&format!("{trigger}\nEND;"), Dialect::Sqlite),
            Some((7, 1, "END".into()))
        );
        let atomic = "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\n\
BEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT f(1);";
        assert_eq!(hit(atomic, Dialect::Postgres), None);
        assert_eq!(
            hit(&format!("{atomic}\nROLLBACK;"), Dialect::Postgres),
            Some((7, 1, "ROLLBACK".into()))
        );
    }

    #[test]
    fn parenthesised_statements_of_a_rule_are_one_statement() {
        let sql = "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); UPDATE u SET a = 2);\nSELECT 1;";
        assert_eq!(hit(sql, Dialect::Postgres), None);
    }
}
