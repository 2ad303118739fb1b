//! Text from outside (a child's output, a host's error message) made safe to print: split into the
//! lines a reader would see, control characters made visible, workflow commands defused.
//!
//! The GitHub Actions runner reads a step's output with .NET's `ReadLine`, which ends a line at
//! `\r\n`, `\n` and also at a bare `\r`. So `ok\r::add-mask::x` is two lines for the runner, the
//! second one a command, although a terminal (and our own line splitting on `\n`) shows one. We
//! split where the runner splits (and at the other Unicode line breaks, VT, FF, NEL, LS and PS, so
//! no other reader finds a line start we did not see), and give every piece its own prefix.
//!
//! Every other control character is shown as its control picture (`␛` for ESC, `␇` for BEL), except
//! TAB and SGR colour sequences (`ESC [ 1;31 m`): a cursor movement or a line erase cannot hide or
//! rewrite what is shown, and an 8-bit C1 control (CSI, NEL) cannot act as one.
//!
//! Pure: no printing (that is `Report`'s job).

use std::borrow::Cow;

/// True for the characters that end a line for some reader: `\n` and `\r` (the runner), VT, FF, and
/// the Unicode NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR.
fn is_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// `text` cut into the lines its readers would see: at `\r\n` (one break), `\r`, `\n` and the other
/// line breaks of [`is_break`]. A break at the very end ends the last line and starts no new one.
pub fn runner_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_break(c) {
            continue;
        }
        out.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r'
            && let Some((j, '\n')) = chars.peek().copied()
        {
            chars.next();
            end = j + 1;
        }
        start = end;
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

/// A line with its control characters made visible: C0 controls (but TAB) and DEL as their control
/// pictures (U+2400 + code, `␡`), C1 controls as `�`; an SGR colour sequence (`ESC [` digits and
/// `;`/`:` then `m`) is kept. Line breaks do not reach here (see [`runner_lines`]), but would be
/// made visible too.
pub fn visible_controls(line: &str) -> Cow<'_, str> {
    let needs = line
        .chars()
        .any(|c| (c.is_control() && c != '\t') || is_break(c));
    if !needs {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(len) = sgr_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        out.push(visible(c));
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The control picture of `c` when it is a control character other than TAB, else `c`.
fn visible(c: char) -> char {
    match c as u32 {
        0x09 => c,
        n @ 0x00..=0x1f => char::from_u32(0x2400 + n).unwrap_or('\u{fffd}'),
        0x7f => '\u{2421}',
        0x80..=0x9f | 0x2028 | 0x2029 => '\u{fffd}',
        _ => c,
    }
}

/// The length of the SGR sequence (`ESC [ params m`) at the start of `s`, if there is one.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

/// Neutralises a line that the runner would read as a workflow command: `::cmd::` at the start of
/// the line (after leading white space, which the runner skips), or the legacy `##[cmd]` anywhere in
/// it. A zero-width space goes between the two characters, so the text reads the same.
pub fn defuse_workflow_command(line: &str) -> String {
    let mut out = line.replace("##[", "#\u{200b}#[");
    // Skip what a reader may skip: white space, and invisible format characters for good measure.
    let lead = out
        .char_indices()
        .find(|(_, c)| !(c.is_whitespace() || is_invisible(*c)))
        .map_or(out.len(), |(i, _)| i);
    if out[lead..].starts_with("::") {
        out = format!(" {}:\u{200b}{}", &out[..lead], &out[lead + 1..]);
    }
    out
}

/// Zero-width and byte-order characters, which some readers drop or skip.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'
    )
}

/// Outside text as the lines to print: cut at every line break ([`runner_lines`]) and control
/// characters made visible. (Defusing is the printer's job: it depends on what precedes a line.)
pub fn lines(text: &str) -> Vec<String> {
    runner_lines(text)
        .into_iter()
        .map(|l| visible_controls(l).into_owned())
        .collect()
}

/// The text of an annotation or a group title: colour removed, control characters visible, line
/// breaks as `\n` (the workflow command escapes them).
pub fn annotation_text(text: &str) -> String {
    lines(&strip_ansi(text)).join("\n")
}

/// Removes ANSI escape sequences (`ESC [` … final letter), as annotations carry plain text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_where_the_runner_breaks() {
        assert_eq!(runner_lines("a\r\nb\rc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(runner_lines("a\r\r\nb"), ["a", "", "b"]);
        assert_eq!(runner_lines("a\n"), ["a"]);
        assert_eq!(runner_lines(""), [""]);
        assert_eq!(runner_lines("\r"), [""]);
        assert_eq!(
            runner_lines("x\u{0b}y\u{0c}z\u{85}w\u{2028}v\u{2029}u"),
            ["x", "y", "z", "w", "v", "u"]
        );
    }

    #[test]
    fn controls_become_visible_but_colour_stays() {
        assert_eq!(visible_controls("plain\ttab"), "plain\ttab");
        assert_eq!(
            visible_controls("\x1b[1;31mred\x1b[0m"),
            "\x1b[1;31mred\x1b[0m"
        );
        assert_eq!(visible_controls("\x1b[2Kx\x1b]0;t\x07"), "␛[2Kx␛]0;t␇");
        assert_eq!(visible_controls("\u{9b}31m\u{7f}\0"), "\u{fffd}31m␡␀");
        assert_eq!(visible_controls("\x1b"), "␛");
    }

    #[test]
    fn defusing_skips_white_space_and_invisible_characters() {
        assert_eq!(defuse_workflow_command("::x::y"), " :\u{200b}:x::y");
        assert_eq!(
            defuse_workflow_command("\u{feff} \u{a0}::x::y"),
            " \u{feff} \u{a0}:\u{200b}:x::y"
        );
        assert_eq!(defuse_workflow_command("a ::x::"), "a ::x::");
        assert_eq!(defuse_workflow_command("a##[b]"), "a#\u{200b}#[b]");
    }

    #[test]
    fn annotation_text_is_plain() {
        assert_eq!(
            annotation_text("\x1b[31merror\x1b[0m: a\rb\x07"),
            "error: a\nb␇"
        );
    }
}
