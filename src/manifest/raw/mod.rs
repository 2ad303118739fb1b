//! YAML text → a small tree ([`Node`]) in which every node keeps its [`Span`] (byte offset, length,
//! 1-based line and column). Built on the `saphyr-parser` event API, so that every key and every
//! value has a location, not only the ones a deserializer chooses to report.
//!
//! Resource limits: the text is at most [`MAX_BYTES`]; nesting is at most [`MAX_DEPTH`]; anchors and
//! aliases are supported, but alias expansion may add at most [`MAX_ALIAS_NODES`] nodes. Duplicate keys,
//! tabs used for indentation and several documents in one file are rejected here.
//!
//! `tree.rs` turns the parser's events into the tree; this file has the node types, the limits,
//! the map from parser positions to spans and the wording of YAML syntax errors.
//!
//! Stays out of: what the keys mean (that is `validate/`). Pure: no I/O.

mod tree;

use super::ManifestError;
use crate::diag::Span;
use saphyr_parser::ScanError;

/// The largest manifest accepted (1 MiB).
pub const MAX_BYTES: usize = 1024 * 1024;
/// The deepest nesting of mappings and lists accepted.
pub const MAX_DEPTH: usize = 32;
/// The most nodes that alias expansion (`*name`) may add in total.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// One YAML node with its place in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A scalar; `quoted` is true for quoted and block scalars (always strings) and for `!!str`.
    Scalar {
        value: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys in source order; keys are unique (duplicates are rejected while parsing).
    Map(Vec<(Node, Node)>),
}

/// What a scalar is under the YAML 1.2 core schema, for type checks and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    Null,
    Bool,
    Int,
    Float,
    String,
}

impl Node {
    /// The YAML type of this node in words, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } => match self.scalar_type() {
                Some(ScalarType::Null) => "nothing (null)",
                Some(ScalarType::Bool) => "a boolean",
                Some(ScalarType::Int) | Some(ScalarType::Float) => "a number",
                _ => "a string",
            },
        }
    }

    /// The core-schema type of a scalar (None for lists and mappings).
    pub fn scalar_type(&self) -> Option<ScalarType> {
        let Kind::Scalar { value, quoted } = &self.kind else {
            return None;
        };
        if *quoted {
            return Some(ScalarType::String);
        }
        Some(scalar_type(value))
    }

    /// The text of a scalar that is a string (not null, bool or number).
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } if self.scalar_type() == Some(ScalarType::String) => {
                Some(value)
            }
            _ => None,
        }
    }

    /// The raw text of any scalar.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar_type() == Some(ScalarType::Null)
    }

    fn count(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 1,
            Kind::Seq(v) => 1 + v.iter().map(Node::count).sum::<usize>(),
            Kind::Map(v) => 1 + v.iter().map(|(k, v)| k.count() + v.count()).sum::<usize>(),
        }
    }

    fn depth(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 0,
            Kind::Seq(v) => 1 + v.iter().map(Node::depth).max().unwrap_or(0),
            Kind::Map(v) => {
                1 + v
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
        }
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub fn scalar_type(v: &str) -> ScalarType {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return ScalarType::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return ScalarType::Float,
        _ => {}
    }
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarType::Int;
    }
    if let Some(h) = v.strip_prefix("0x")
        && !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return ScalarType::Int;
    }
    if let Some(o) = v.strip_prefix("0o")
        && !o.is_empty()
        && o.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return ScalarType::Int;
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mant, exp) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let mant_ok =
        match mant.split_once('.') {
            Some((a, b)) => {
                (!a.is_empty() || !b.is_empty())
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            }
            None => false,
        } || (!mant.is_empty() && mant.bytes().all(|c| c.is_ascii_digit()) && exp.is_some());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    if mant_ok && exp_ok {
        return ScalarType::Float;
    }
    ScalarType::String
}

/// Maps saphyr's character positions to byte offsets.
struct Locator<'a> {
    text: &'a str,
    /// Byte offset of the start of each line (0-based line index).
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator { text, line_starts }
    }

    /// Byte offset of a 1-based line and 0-based character column (clamped to the text).
    fn byte(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(col)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    fn point(&self, m: &saphyr_parser::Marker) -> Span {
        Span {
            offset: self.byte(m.line(), m.col()),
            len: 0,
            line: m.line().max(1) as u32,
            col: m.col() as u32 + 1,
        }
    }

    fn span(&self, s: &saphyr_parser::Span) -> Span {
        let mut sp = self.point(&s.start);
        let end = self.byte(s.end.line(), s.end.col());
        sp.len = end.saturating_sub(sp.offset);
        // Never let a span run past the end of its first line: excerpts show one line.
        let line_end = self.text[sp.offset.min(self.text.len())..]
            .find('\n')
            .map_or(self.text.len(), |i| sp.offset + i);
        sp.len = sp.len.min(line_end.saturating_sub(sp.offset));
        sp
    }

    /// A one-character span at a byte offset.
    fn at_offset(&self, offset: usize) -> Span {
        let idx = self.line_starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.line_starts[idx];
        Span {
            offset,
            len: 1,
            line: idx as u32 + 1,
            col: self.text[start..offset].chars().count() as u32 + 1,
        }
    }

    /// A span from a 1-based line and 1-based character column.
    fn at(&self, line: usize, col1: usize, len: usize) -> Span {
        Span {
            offset: self.byte(line, col1.saturating_sub(1)),
            len,
            line: line as u32,
            col: col1 as u32,
        }
    }
}

fn err(span: Span, message: impl Into<String>, help: Option<String>) -> ManifestError {
    ManifestError {
        message: message.into(),
        span: Some(span),
        help,
        source: None,
    }
}

/// Parses one YAML document into a [`Node`]. The error has no source attached (the caller adds it).
pub fn parse(text: &str) -> Result<Node, ManifestError> {
    if text.len() > MAX_BYTES {
        return Err(ManifestError {
            message: format!(
                "the manifest is {} bytes; the limit is {} bytes (1 MiB)",
                text.len(),
                MAX_BYTES
            ),
            span: None,
            help: None,
            source: None,
        });
    }
    let loc = Locator::new(text);
    match tree::build(text, &loc) {
        Ok(node) => Ok(node),
        Err(Failure::Scan(e, open)) => Err(scan_error(text, &loc, &e, open)),
        Err(Failure::Manifest(e)) => Err(e),
    }
}

enum Failure {
    /// A syntax error, with the start of the innermost flow collection (`[` or `{`) still open.
    Scan(ScanError, Option<Span>),
    Manifest(ManifestError),
}

/// The byte offset of the innermost `[` or `{` opened at or after `from` and still open at `to`.
/// Inside a flow collection brackets are always indicators, except in quoted scalars and comments,
/// which are skipped.
fn innermost_open(text: &str, from: usize, to: usize) -> Option<usize> {
    let to = to.min(text.len());
    if from >= to || !text.is_char_boundary(from) || !text.is_char_boundary(to) {
        return None;
    }
    let mut open: Vec<usize> = Vec::new();
    let mut chars = text[from..to].char_indices().peekable();
    let mut prev = ' ';
    while let Some((i, c)) = chars.next() {
        let token_start = prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':');
        match c {
            '[' | '{' => open.push(from + i),
            ']' | '}' => {
                open.pop();
            }
            '\'' if token_start => {
                // 'single quoted', '' is an escaped quote.
                while let Some((_, q)) = chars.next() {
                    if q == '\'' {
                        if chars.peek().map(|(_, n)| *n) == Some('\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '"' if token_start => {
                while let Some((_, q)) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '#' if prev.is_whitespace() => {
                for (_, q) in chars.by_ref() {
                    if q == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
        prev = c;
    }
    open.last().copied()
}

impl From<ManifestError> for Failure {
    fn from(e: ManifestError) -> Self {
        Failure::Manifest(e)
    }
}

/// Turns a YAML syntax error into a manifest error, recognising tabs used for indentation, the
/// parser's own nesting limit, and a flow collection left open on an earlier line (the parser
/// notices only later, so the help points back at the `[` or `{`).
fn scan_error(text: &str, loc: &Locator, e: &ScanError, open: Option<Span>) -> ManifestError {
    let m = e.marker();
    let line = m.line().max(1);
    // A tab in the indentation of any line up to the error is almost always the cause.
    for (i, l) in text.lines().enumerate().take(line + 1) {
        let indent: &str = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        if let Some(col) = indent.find('\t') {
            if l.trim().is_empty() {
                continue;
            }
            return err(
                loc.at(i + 1, col + 1, 1),
                "a tab is used for indentation; YAML allows only spaces there",
                Some("replace the tab with spaces".into()),
            );
        }
    }
    if e.info().contains("recursion limit") {
        return too_deep(loc.point(m));
    }
    let mut info = e.info().to_string();
    if let Some(first) = info.get(..1) {
        info = first.to_lowercase() + &info[1..];
    }
    let mut span = loc.point(m);
    // At the end of the input, point just after the last character instead of at an empty line.
    if text[span.offset.min(text.len())..].trim().is_empty() {
        let body = text.trim_end();
        let last = body.lines().count().max(1);
        let last_line = body.lines().last().unwrap_or_default();
        span = loc.at(last, last_line.chars().count() + 1, 0);
        info.push_str(" (the file ends here)");
    }
    let help = open
        .and_then(|o| innermost_open(text, o.offset, span.offset))
        .map(|offset| loc.at_offset(offset))
        .filter(|o| o.line < span.line)
        .map(|o| {
            let (what, close) = if text[o.offset..].starts_with('[') {
                ("list `[`", ']')
            } else {
                ("mapping `{`", '}')
            };
            format!(
                "the flow {what} opened at line {}, column {} is not closed: end it with `{close}`",
                o.line, o.col
            )
        });
    err(span, format!("YAML syntax error: {info}"), help)
}

fn too_deep(span: Span) -> ManifestError {
    err(
        span,
        format!("the manifest nests deeper than {MAX_DEPTH} levels"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: &Node) -> &Vec<(Node, Node)> {
        match &n.kind {
            Kind::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "version: 1\nproject: shop\nenvironments:\n  staging:\n    dir: /srv\n";
        let root = parse(text).unwrap();
        let m = map(&root);
        assert_eq!(m[1].0.span.line, 2);
        assert_eq!(m[1].0.span.col, 1);
        assert_eq!(m[1].1.span.col, 10);
        assert_eq!(&text[m[1].1.span.offset..][..m[1].1.span.len], "shop");
        let envs = map(&m[2].1);
        let staging = map(&envs[0].1);
        assert_eq!(staging[0].0.span.line, 5);
        assert_eq!(staging[0].0.span.col, 5);
    }

    #[test]
    fn columns_count_characters_and_offsets_count_bytes() {
        let text = "project: \"é\"\nkey: été\n";
        let root = parse(text).unwrap();
        let m = map(&root);
        let v = &m[1].1;
        assert_eq!(v.span.col, 6);
        assert_eq!(&text[v.span.offset..][..v.span.len], "été");
    }

    #[test]
    fn duplicate_key_points_at_the_second() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        let s = e.span.unwrap();
        assert_eq!((s.line, s.col), (3, 1));
        assert!(
            e.message.contains("first defined on line 1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn tab_indentation_is_named() {
        let e = parse("a:\n\tb: 1\n").unwrap_err();
        let s = e.span.unwrap();
        assert_eq!((s.line, s.col), (2, 1));
        assert!(e.message.contains("tab"), "{}", e.message);
    }

    #[test]
    fn scalar_types() {
        assert_eq!(scalar_type("1"), ScalarType::Int);
        assert_eq!(scalar_type("1.5"), ScalarType::Float);
        assert_eq!(scalar_type("1e3"), ScalarType::Float);
        assert_eq!(scalar_type("yes"), ScalarType::String);
        assert_eq!(scalar_type("~"), ScalarType::Null);
        assert_eq!(scalar_type("1h30m"), ScalarType::String);
        assert_eq!(scalar_type("."), ScalarType::String);
    }

    #[test]
    fn limits() {
        let big = "a: ".to_string() + &"x".repeat(MAX_BYTES);
        assert!(parse(&big).unwrap_err().message.contains("1 MiB"));
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            laughs.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(
            parse(&laughs)
                .unwrap_err()
                .message
                .contains("alias expansion")
        );
        let ok = parse("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(map(&ok)[1].1.kind, map(&ok)[0].1.kind);
    }

    #[test]
    fn the_parsers_own_nesting_limit_reads_like_ours() {
        let deep = "a: ".to_string() + &"[".repeat(100_000) + &"]".repeat(100_000);
        let e = parse(&deep).unwrap_err();
        assert_eq!(
            e.message,
            format!("the manifest nests deeper than {MAX_DEPTH} levels")
        );
    }

    #[test]
    fn an_unclosed_flow_collection_is_pointed_at() {
        let e = parse("a: 1\nb: [x, y\nc: 2\n").unwrap_err();
        assert_eq!(e.span.map(|s| s.line), Some(3));
        assert_eq!(
            e.help.as_deref(),
            Some("the flow list `[` opened at line 2, column 4 is not closed: end it with `]`")
        );
        // The innermost one that is still open, past quoted brackets and comments.
        let e = parse("b: [[[x, y]], \"]\", '[', {k: v} # ]\n  , z\nc: 2\n").unwrap_err();
        assert_eq!(
            e.help.as_deref(),
            Some("the flow list `[` opened at line 1, column 4 is not closed: end it with `]`")
        );
        let e = parse("b: [[x, y]\nc: 2\n").unwrap_err();
        assert!(e.help.unwrap().contains("line 1, column 4"));
        let e = parse("b: {k: [v]\nc: 2\n").unwrap_err();
        assert_eq!(
            e.help.as_deref(),
            Some("the flow mapping `{` opened at line 1, column 4 is not closed: end it with `}`")
        );
        // An error on the line of the bracket needs no note.
        assert_eq!(parse("b: [x, y]]\n").unwrap_err().help, None);
    }

    #[test]
    fn second_document_rejected() {
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("one YAML document")
        );
    }
}
