//! What the GitHub Actions runner would act on in a step's output: it reads each stream with
//! .NET's `ReadLine` (a line ends at `\r\n`, `\n` or a bare `\r`), skips leading white space, takes
//! `::name ...::data` at the start of a line or the legacy `##[name ...]data` anywhere in it, and
//! between `::stop-commands::TOKEN` and `::TOKEN::` acts on nothing but the resume.

/// The workflow commands (`name::data`, or `##[name]rest` for the legacy form) the runner would
/// act on in one stream's text; panics when a stop-commands block is left open.
pub fn commands(text: &str) -> Vec<String> {
    let mut acted = Vec::new();
    let mut stopped: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        let t = line.trim_start();
        let command = if let Some(rest) = t.strip_prefix("::") {
            rest.split_once("::")
                .map(|(name, data)| (name.to_string(), data.to_string()))
        } else {
            line.find("##[")
                .and_then(|i| line[i + 3..].split_once(']'))
                .map(|(name, data)| (name.to_string(), data.to_string()))
        };
        let Some((name, data)) = command else {
            continue;
        };
        match &stopped {
            Some(token) if name.eq_ignore_ascii_case(token) => stopped = None,
            Some(_) => {}
            None if name == "stop-commands" => stopped = Some(data),
            None => acted.push(format!("{name}::{data}")),
        }
    }
    assert!(
        stopped.is_none(),
        "a stop-commands block was left open:\n{text}"
    );
    acted
}

/// Asserts that the runner would act on no command carrying `payload` in stdout or stderr.
#[track_caller]
pub fn assert_no_forged(stdout: &str, stderr: &str, payload: &str) {
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        let forged: Vec<String> = commands(text)
            .into_iter()
            .filter(|c| c.contains(payload))
            .collect();
        assert!(
            forged.is_empty(),
            "the runner would act on {forged:?} in {name}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
}
