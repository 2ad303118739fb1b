//! Renders a diagnostic: `error: message`, ` --> file:line:column`, the offending line with a caret,
//! notes (`= stderr:` with the last lines of a child's error output, `= statement: …`), then
//! `help: did you mean ...`. Colour is passed in, never detected here.
//!
//! Sizes are bounded whatever the input: a line longer than [`MAX_EXCERPT`] characters is shown as a
//! window around the column with `…` where text was left out, a `quoted` value longer than
//! [`MAX_QUOTED`] characters in the message or help is cut the same way (a manifest with one
//! 200 KB line must not give a 200 KB error), and a note shows at most its last [`MAX_NOTE_LINES`]
//! lines of at most [`MAX_NOTE_LINE`] characters each.

use super::{Source, Span};
use std::fmt::Write;

/// The most characters of a source line an excerpt shows.
pub const MAX_EXCERPT: usize = 120;
/// Characters kept before the column when a long line is cut.
const EXCERPT_LEAD: usize = 40;
/// The most characters of a `quoted` value a message shows.
pub const MAX_QUOTED: usize = 80;
/// The most lines of a note shown (its last ones: the end of a child's stderr says why it failed).
pub const MAX_NOTE_LINES: usize = 20;
/// The most characters of one line of a note.
pub const MAX_NOTE_LINE: usize = 300;

/// One diagnostic ready to render.
#[derive(Clone, Debug, Default)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    /// What else is known, in order: `stderr` with a child's last lines, `statement`, `host`.
    pub notes: Vec<Note>,
    pub help: Option<String>,
}

/// A labelled part of a diagnostic: `= label: text` on one line, or `= label:` followed by the
/// text's lines, indented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub label: String,
    pub text: String,
}

impl Note {
    pub fn new(label: impl Into<String>, text: impl Into<String>) -> Note {
        Note {
            label: label.into(),
            text: text.into(),
        }
    }

    /// The lines shown: the last [`MAX_NOTE_LINES`], each cut to [`MAX_NOTE_LINE`] characters,
    /// with a first line saying how many were left out.
    pub fn lines(&self) -> Vec<String> {
        let all: Vec<&str> = self.text.trim_end().lines().collect();
        let skip = all.len().saturating_sub(MAX_NOTE_LINES);
        let mut out = Vec::with_capacity(all.len() - skip + 1);
        if skip > 0 {
            out.push(format!("… ({skip} earlier lines)"));
        }
        out.extend(all[skip..].iter().map(|l| cut_line(l)));
        out
    }
}

/// `line` without its trailing `\r`, cut to [`MAX_NOTE_LINE`] characters with `…`.
fn cut_line(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    if line.chars().count() <= MAX_NOTE_LINE {
        return line.to_string();
    }
    let mut s: String = line.chars().take(MAX_NOTE_LINE - 1).collect();
    s.push('…');
    s
}

/// Renders `diag` against `source` (if any) as plain or coloured text.
pub fn render(diag: &Diagnostic, source: Option<&Source>, color: bool) -> String {
    let (red, blue, bold, reset) = if color {
        ("\x1b[31;1m", "\x1b[34;1m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{red}error{reset}{bold}: {}{reset}",
        shorten_quoted(&diag.message)
    );
    if let (Some(span), Some(src)) = (diag.span, source) {
        let _ = writeln!(
            out,
            "  {blue}-->{reset} {}:{}:{}",
            src.path.display(),
            span.line,
            span.col
        );
        if let Some((text, pad_width, caret_width)) = excerpt(src, span) {
            let num = span.line.to_string();
            let pad = " ".repeat(num.len());
            let _ = writeln!(out, "{pad} {blue}|{reset}");
            let _ = writeln!(out, "{blue}{num} |{reset} {text}");
            let _ = writeln!(
                out,
                "{pad} {blue}|{reset} {}{red}{}{reset}",
                " ".repeat(pad_width),
                "^".repeat(caret_width)
            );
        }
    }
    for note in &diag.notes {
        let lines = note.lines();
        match lines.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(out, "  {blue}={reset} {bold}{}{reset}: {one}", note.label);
            }
            many => {
                let _ = writeln!(out, "  {blue}={reset} {bold}{}{reset}:", note.label);
                for l in many {
                    let _ = writeln!(out, "      {l}");
                }
            }
        }
    }
    if let Some(help) = &diag.help {
        let _ = writeln!(
            out,
            "  {blue}={reset} {bold}help{reset}: {}",
            shorten_quoted(help)
        );
    }
    out
}

/// `text` with every backtick-quoted part longer than [`MAX_QUOTED`] characters cut in its middle
/// to `…`.
pub fn shorten_quoted(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len() < 3 {
        return text.to_string();
    }
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            // Odd parts sit between two backticks (an unpaired last one is left alone).
            let quoted = i % 2 == 1 && i != last;
            let n = part.chars().count();
            if quoted && n > MAX_QUOTED {
                let head: String = part.chars().take(MAX_QUOTED / 2).collect();
                let tail: String = part.chars().skip(n - MAX_QUOTED / 2 + 1).collect();
                format!("{head}…{tail}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// The line of `span` (tabs shown as one space, control characters as `?`), the display width
/// before the caret and the caret's width. Widths are terminal columns, so wide and combining
/// characters line up; the caret covers the span's token on that line, at least one column.
fn excerpt(src: &Source, span: Span) -> Option<(String, usize, usize)> {
    let text: &str = &src.text;
    let offset = span.offset.min(text.len());
    if !text.is_char_boundary(offset) {
        return None;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let clean = |s: &str| -> String {
        s.trim_end_matches('\r')
            .chars()
            .map(|c| {
                if c == '\t' {
                    ' '
                } else if c.is_control() {
                    '?'
                } else {
                    c
                }
            })
            .collect()
    };
    let line = clean(&text[start..end]);
    let before = clean(&text[start..offset]);
    let mut tok_end = (offset + span.len).min(end);
    while !text.is_char_boundary(tok_end) {
        tok_end -= 1;
    }
    let token = clean(&text[offset..tok_end]);
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= MAX_EXCERPT {
        let pad = console::measure_text_width(&before);
        let width = console::measure_text_width(&token).max(1);
        return Some((line, pad, width));
    }
    // A long line: a window of MAX_EXCERPT characters that starts a little before the column.
    let caret = before.chars().count().min(chars.len());
    let mut first = caret.saturating_sub(EXCERPT_LEAD);
    let last = (first + MAX_EXCERPT).min(chars.len());
    first = first.min(last.saturating_sub(MAX_EXCERPT));
    let cut_before = first > 0;
    let mut shown: String = if cut_before {
        "…".into()
    } else {
        String::new()
    };
    shown.extend(&chars[first..last]);
    if last < chars.len() {
        shown.push('…');
    }
    let lead: String = chars[first..caret.min(last)].iter().collect();
    let pad = usize::from(cut_before) + console::measure_text_width(&lead);
    let tok_last = (caret + token.chars().count()).min(last);
    let tok: String = chars[caret.min(last)..tok_last].iter().collect();
    let width = console::measure_text_width(&tok).max(1);
    Some((shown, pad, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str, needle: &str) -> String {
        let offset = text.find(needle).unwrap();
        let line = text[..offset].matches('\n').count() as u32 + 1;
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let span = Span {
            offset,
            len: needle.len(),
            line,
            col: text[start..offset].chars().count() as u32 + 1,
        };
        let diag = Diagnostic {
            message: "bad".into(),
            span: Some(span),
            help: Some("did you mean `x`?".into()),
            ..Default::default()
        };
        render(&diag, Some(&Source::new("deploy.yml", text)), false)
    }

    #[test]
    fn caret_under_the_token() {
        assert_eq!(
            show("a: 1\nkey: value\n", "value"),
            "error: bad\n  --> deploy.yml:2:6\n  |\n2 | key: value\n  |      ^^^^^\n  = help: did you mean `x`?\n"
        );
    }

    #[test]
    fn caret_counts_display_columns() {
        // é is two bytes and one column; 日本 is two characters and four columns.
        let out = show("name: é日本 oops\n", "oops");
        assert!(
            out.contains("1 | name: é日本 oops\n  |             ^^^^\n"),
            "{out}"
        );
        let out = show("name: 日本\n", "日本");
        assert!(out.contains("  |       ^^^^\n"), "{out}");
    }

    #[test]
    fn a_huge_line_is_cut_around_the_column() {
        let text = format!(
            "a: 1\nkey: {}OOPS{}\n",
            "x".repeat(100_000),
            "y".repeat(100_000)
        );
        let out = show(&text, "OOPS");
        assert!(out.len() < 600, "{} bytes", out.len());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "  --> deploy.yml:2:100006");
        let shown = lines[3].strip_prefix("2 | ").unwrap();
        assert_eq!(
            shown.chars().count(),
            MAX_EXCERPT + 2,
            "120 characters and two `…`"
        );
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        // The caret still sits under the token.
        let caret = lines[4].strip_prefix("  | ").unwrap();
        let col = caret.find('^').unwrap();
        let under: String = shown.chars().skip(col).take(4).collect();
        assert_eq!(under, "OOPS");
        assert_eq!(caret.trim(), "^^^^");
        // At the start and the end of a long line only one side is cut.
        let out = show(&format!("{}\n", "z".repeat(500)), "zz");
        assert!(out.contains("1 | zzzz"), "{out}");
        assert!(out.lines().nth(3).unwrap().ends_with('…'));
        let text = format!("{}END\n", "q".repeat(500));
        let out = show(&text, "END");
        let shown = out.lines().nth(3).unwrap().strip_prefix("1 | ").unwrap();
        assert!(shown.starts_with('…') && shown.ends_with("END"), "{shown}");
        let caret = out.lines().nth(4).unwrap().strip_prefix("  | ").unwrap();
        assert_eq!(caret.find('^').unwrap(), shown.chars().count() - 3);
    }

    #[test]
    fn long_quoted_values_in_messages_are_cut() {
        let long = "v".repeat(10_000);
        let msg = format!("invalid host `{long}` in `short` and `{long}`");
        let cut = shorten_quoted(&msg);
        assert!(cut.len() < 300, "{cut}");
        assert!(cut.contains("` in `short` and `"), "{cut}");
        assert_eq!(shorten_quoted("a `b` c"), "a `b` c");
        assert_eq!(shorten_quoted("odd ` one"), "odd ` one");
    }

    #[test]
    fn tabs_and_colour() {
        let out = show("a:\n\tb: 1\n", "b");
        assert!(out.contains("2 |  b: 1\n  |  ^\n"), "{out}");
        let diag = Diagnostic {
            message: "bad".into(),
            ..Default::default()
        };
        assert!(render(&diag, None, true).contains("\x1b["));
        assert!(!render(&diag, None, false).contains('\x1b'));
    }

    #[test]
    fn notes_come_after_the_excerpt_and_before_the_help() {
        let text = "services:\n  api:\n    build: make\n";
        let offset = text.find("build").unwrap();
        let diag = Diagnostic {
            message: "build api failed (exit status 2): `make`".into(),
            span: Some(Span {
                offset,
                len: 5,
                line: 3,
                col: 5,
            }),
            notes: vec![
                Note::new("host", "local"),
                Note::new("stderr", "make: *** No rule\nmake: stop.\n"),
            ],
            help: Some("run it yourself".into()),
        };
        assert_eq!(
            render(&diag, Some(&Source::new("deploy.yml", text)), false),
            "error: build api failed (exit status 2): `make`
  --> deploy.yml:3:5
  |
3 |     build: make
  |     ^^^^^
  = host: local
  = stderr:
      make: *** No rule
      make: stop.
  = help: run it yourself
"
        );
    }

    #[test]
    fn a_long_note_keeps_its_last_lines_and_cuts_long_ones() {
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let shown = Note::new("stderr", text).lines();
        assert_eq!(shown.len(), MAX_NOTE_LINES + 1);
        assert_eq!(shown[0], "… (30 earlier lines)");
        assert_eq!(shown[1], "line 31");
        assert_eq!(shown.last().unwrap(), "line 50");
        let long = Note::new("stderr", "x".repeat(100_000)).lines();
        assert_eq!(long[0].chars().count(), MAX_NOTE_LINE);
        assert!(long[0].ends_with('…'));
        assert!(Note::new("stderr", "").lines().is_empty());
    }
}
