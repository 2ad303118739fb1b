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
        if let Some(text) = src.line_text(span.line) {
            let num = span.line.to_string();
            let pad = " ".repeat(num.len());
            let width = text
                .get(
                    span.offset
                        .saturating_sub(line_start(&src.text, span.offset))..,
                )
                .map_or(1, |rest| {
                    rest.chars()
                        .take(span.len.max(1))
                        .count()
                        .max(1)
                        .min(rest.chars().count().max(1))
                });
            let _ = writeln!(out, "{pad} {blue}|{reset}");
            let _ = writeln!(out, "{blue}{num} |{reset} {}", text.replace('\t', " "));
            let caret_pad = " ".repeat(span.col.saturating_sub(1) as usize);
            let _ = writeln!(
                out,
                "{pad} {blue}|{reset} {caret_pad}{red}{}{reset}",
                "^".repeat(width)
            );
        }
    }
    if let Some(help) = &diag.help {
        let _ = writeln!(out, "  {blue}={reset} {bold}help{reset}: {help}");
    }
    out
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}
