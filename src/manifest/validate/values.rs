//! The readers of single values: strings, lists, whole numbers, words from a fixed set, durations,
//! booleans, globs, names, lists of variable names and repository paths. Each checks the value's
//! type and form and points its error at the value (or the key), with a hint where one helps.

use super::obj::Obj;
use super::{Result, did_you_mean, err, err_help};
use crate::manifest::ManifestError;
use crate::manifest::grammar;
use crate::manifest::raw::{Kind, Node, ScalarType};
use std::time::Duration;

/// `[A-Za-z_][A-Za-z0-9_]*`: the name of an environment variable.
pub(super) fn is_var_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn key_name(k: &Node) -> &str {
    k.scalar_text().unwrap_or_default()
}

pub(super) fn wrong_type(k: &Node, v: &Node, expected: &str) -> ManifestError {
    let mut e = err(
        v.span,
        format!(
            "`{}`: expected {expected}, found {}",
            key_name(k),
            v.describe()
        ),
    );
    if matches!(
        v.scalar_type(),
        Some(ScalarType::Int | ScalarType::Float | ScalarType::Bool)
    ) && expected == "a string"
    {
        e.help = Some(format!(
            "put it in quotes if you mean the text: \"{}\"",
            v.scalar_text().unwrap_or_default()
        ));
    }
    if v.scalar_type() == Some(ScalarType::String) && expected.starts_with("a list") {
        e.help = Some(format!(
            "write a list: [\"{}\"]",
            v.scalar_text().unwrap_or_default()
        ));
    }
    e
}

pub(super) fn string(k: &Node, v: &Node) -> Result<String> {
    match v.as_str() {
        Some(s) => Ok(s.to_string()),
        None => Err(wrong_type(k, v, "a string")),
    }
}

pub(super) fn string_list<'a>(k: &Node, v: &'a Node) -> Result<Vec<(String, &'a Node)>> {
    let Kind::Seq(items) = &v.kind else {
        return Err(wrong_type(k, v, "a list of strings"));
    };
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(s) => Ok((s.to_string(), item)),
            None => {
                let mut e = err(
                    item.span,
                    format!(
                        "`{}`: expected a list of strings, found {} in the list",
                        key_name(k),
                        item.describe()
                    ),
                );
                if item.scalar_type().is_some() {
                    e.help = Some(format!(
                        "put it in quotes: \"{}\"",
                        item.scalar_text().unwrap_or_default()
                    ));
                }
                Err(e)
            }
        })
        .collect()
}

pub(super) fn int(k: &Node, v: &Node, min: i64, max: i64) -> Result<i64> {
    let n = match (v.scalar_type(), v.scalar_text()) {
        (Some(ScalarType::Int), Some(t)) => parse_int(t),
        _ => None,
    };
    let Some(n) = n else {
        return Err(wrong_type(k, v, "a whole number"));
    };
    if n < min || n > max {
        return Err(err(
            v.span,
            if min == max {
                format!("`{}` must be {min}, found {n}", key_name(k))
            } else {
                format!(
                    "`{}` must be between {min} and {max}, found {n}",
                    key_name(k)
                )
            },
        ));
    }
    Ok(n)
}

pub(super) fn parse_int(t: &str) -> Option<i64> {
    if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else {
        t.parse().ok()
    }
}

pub(super) fn word<'w>(k: &Node, v: &Node, allowed: &[&'w str]) -> Result<&'w str> {
    let s = match v.scalar_text() {
        Some(s) if v.scalar_type() != Some(ScalarType::Null) => s,
        _ => {
            return Err(wrong_type(k, v, &format!("one of {}", allowed.join(", "))));
        }
    };
    if let Some(w) = allowed.iter().find(|w| **w == s) {
        return Ok(w);
    }
    let mut e = err(
        v.span,
        format!(
            "unknown {} `{s}`; expected one of: {}",
            key_name(k),
            allowed.join(", ")
        ),
    );
    e.help = did_you_mean(s, allowed.iter().copied());
    Err(e)
}

/// Parses `500ms`, `60s`, `5m`, `1h30m` (units ms, s, m, h; at least one; total above zero).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
    }
    (total > Duration::ZERO).then_some(total)
}

pub(super) fn duration(k: &Node, v: &Node) -> Result<Duration> {
    let text = v.scalar_text().unwrap_or_default();
    if let Some(d) = v.as_str().and_then(parse_duration) {
        return Ok(d);
    }
    let mut e = if v.scalar_type() == Some(ScalarType::String) {
        err(
            v.span,
            format!("`{}`: `{text}` is not a duration", key_name(k)),
        )
    } else {
        wrong_type(k, v, "a duration")
    };
    e.help = Some(if v.scalar_type() == Some(ScalarType::Int) {
        format!("add a unit: `{text}s` (units: ms, s, m, h; e.g. 500ms, 60s, 5m, 1h30m)")
    } else {
        "write a duration such as 500ms, 60s, 5m or 1h30m".into()
    });
    Err(e)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn check_name(k: &Node, what: &str) -> Result<String> {
    let name = k.scalar_text().unwrap_or_default();
    if !valid_name(name) {
        return Err(err_help(
            k.span,
            format!("invalid {what} name `{name}`"),
            "use letters, digits, `-`, `_` and `.`, starting with a letter or digit",
        ));
    }
    Ok(name.to_string())
}

pub(super) fn named<'a>(k: &Node, v: &'a Node) -> Result<&'a [(Node, Node)]> {
    match &v.kind {
        Kind::Map(m) => Ok(m),
        _ if v.is_null() => Ok(&[]),
        _ => Err(wrong_type(k, v, "a mapping of names")),
    }
}

pub(super) fn globs(k: &Node, v: &Node) -> Result<Vec<String>> {
    let list = string_list(k, v)?;
    for (pattern, node) in &list {
        if let Err(e) = globset::Glob::new(pattern) {
            return Err(err_help(
                node.span,
                format!("invalid glob `{pattern}`: {}", e.kind()),
                "globs use *, **, ?, [abc] and {a,b}; e.g. \"services/api/**\"",
            ));
        }
    }
    Ok(list.into_iter().map(|(s, _)| s).collect())
}

pub(super) fn boolean(k: &Node, v: &Node) -> Result<bool> {
    match (v.scalar_type(), v.scalar_text()) {
        (Some(ScalarType::Bool), Some(t)) => Ok(matches!(t, "true" | "True" | "TRUE")),
        _ => Err(wrong_type(k, v, "true or false")),
    }
}

/// A list of environment variable names (`secrets:`), each checked, no duplicates.
pub(super) fn env_names(k: &Node, v: &Node) -> Result<Vec<String>> {
    let list = string_list(k, v)?;
    let mut out: Vec<String> = Vec::new();
    for (name, node) in list {
        if let Err(why) = grammar::env_name(&name) {
            return Err(err_help(
                node.span,
                why,
                format!(
                    "`{}` lists the NAMES of variables set on the runner (e.g. from ${{{{ secrets.API_KEY }}}}), not their values",
                    key_name(k)
                ),
            ));
        }
        if out.contains(&name) {
            return Err(err(node.span, format!("`{name}` is listed twice")));
        }
        out.push(name);
    }
    Ok(out)
}

/// Checks a string value against a grammar; the error points at the value.
pub(super) fn checked(
    o: &Obj,
    name: &str,
    check: fn(&str) -> std::result::Result<(), String>,
    help: &str,
) -> Result<Option<String>> {
    let Some((k, v)) = o.get(name) else {
        return Ok(None);
    };
    let s = string(k, v)?;
    check(&s).map_err(|why| err_help(v.span, why, help))?;
    Ok(Some(s))
}

/// A path in the repository (`compose_files`, a site's `dir`, …): relative and inside it.
pub(super) fn repo_path(node: &Node, path: &str) -> Result<()> {
    grammar::repo_relative(path, false).map_err(|why| {
        err_help(
            node.span,
            why,
            "paths in deploy.yml are relative to the repository root and stay inside it",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::validate::tests::fail;

    #[test]
    fn wrong_types() {
        let (l, c, m, _) = fail("environments:\n  s: {}\nservices:\n  api:\n    paths: 5\n");
        assert_eq!((l, c), (7, 12));
        assert_eq!(m, "`paths`: expected a list of strings, found a number");
        let (_, _, m, h) = fail("environments:\n  s: {}\nservices:\n  api:\n    test: true\n");
        assert_eq!(m, "`test`: expected a string, found a boolean");
        assert!(h.unwrap().contains("quotes"));
        let (_, _, m, _) = fail("environments: [a]\n");
        assert!(m.contains("found a list"), "{m}");
        let (l, c, m, _) = fail("environments:\n  s: {approvers: [alice, 3]}\n");
        assert_eq!((l, c), (4, 26));
        assert!(m.contains("found a number"), "{m}");
    }

    #[test]
    fn invalid_glob() {
        let (l, c, m, _) = fail(
            "environments:\n  s: {}\nsites:\n  web: {project: p, dir: d, paths: [\"ok/**\", \"bad/[\"]}\n",
        );
        assert_eq!(l, 6);
        assert_eq!(c, 46);
        assert!(m.starts_with("invalid glob `bad/[`"), "{m}");
    }

    #[test]
    fn unknown_engine_and_approval() {
        let (l, c, m, h) =
            fail("environments:\n  s: {}\nmigrations: {dir: m, engine: postgress}\n");
        assert_eq!((l, c), (5, 30));
        assert_eq!(
            m,
            "unknown engine `postgress`; expected one of: postgres, sqlite"
        );
        assert_eq!(h.as_deref(), Some("did you mean `postgres`?"));
        let (_, _, m, h) = fail("environments:\n  s: {approval: requird}\n");
        assert!(m.contains("unknown approval `requird`"));
        assert_eq!(h.as_deref(), Some("did you mean `required`?"));
        let (_, _, _, h) = fail("environments:\n  s: {approval: banana}\n");
        assert_eq!(h, None);
        let (_, _, m, _) = fail("environments:\n  s: {backup: sometimes}\n");
        assert!(m.contains("auto, always, never"));
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s);
        assert_eq!(d("60s"), Some(Duration::from_secs(60)));
        assert_eq!(d("5m"), Some(Duration::from_secs(300)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "60", "s", "5x", "0s", "1.5s", "-1s", "99999999999s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
        let (l, c, m, _) = fail(
            "environments:\n  s: {}\nservices:\n  api:\n    health: {url: \"http://x\", timeout: 5 minutes}\n",
        );
        assert_eq!((l, c), (7, 40));
        assert!(m.contains("is not a duration"), "{m}");
    }
}
