//! Renders a diagnostic: `error: message`, ` --> file:line:column`, the offending line with a caret,
//! `help: did you mean ...`. Colour is passed in, never detected here.

use super::{Source, Span};
use std::fmt::Write;

/// One diagnostic ready to render.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
}

/// Renders `diag` against `source` (if any) as plain or coloured text.
pub fn render(diag: &Diagnostic, source: Option<&Source>, color: bool) -> String {
    let (red, blue, bold, reset) = if color {
        ("\x1b[31;1m", "\x1b[34;1m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    let mut out = String::new();
    let _ = writeln!(out, "{red}error{reset}{bold}: {}{reset}", diag.message);
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
    if let Some(help) = &diag.help {
        let _ = writeln!(out, "  {blue}={reset} {bold}help{reset}: {help}");
    }
    out
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
    let pad = console::measure_text_width(&before);
    let width = console::measure_text_width(&token).max(1);
    Some((line, pad, width))
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
    fn tabs_and_colour() {
        let out = show("a:\n\tb: 1\n", "b");
        assert!(out.contains("2 |  b: 1\n  |  ^\n"), "{out}");
        let diag = Diagnostic {
            message: "bad".into(),
            span: None,
            help: None,
        };
        assert!(render(&diag, None, true).contains("\x1b["));
        assert!(!render(&diag, None, false).contains('\x1b'));
    }
}
