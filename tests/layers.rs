//! The layers point one way (issue 11): every `crate::<module>` reference in `src/` is checked
//! against an explicit table of what each top-level module may import, the modules form no cycle,
//! nothing but `lib.rs` imports `commands/`, no command file imports another, and processes start
//! only in `exec/`. A failure names the file and line of the offending reference.
//!
//! A reference is `crate::x` (or `crate::{x, ..}`) outside comments. The git reader of change
//! detection (`src/changes/git.rs`) is a module of its own here, `changes::git`, so that the pure
//! part of `changes` is checked as pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure layers: no processes, no network, no terminal, no clock (see src/lib.rs). They may
/// import only each other (and the shared error type).
const PURE: &[&str] = &[
    "manifest", "diag", "cmd", "plan", "state", "changes", "migrate", "env_vars", "exit", "cli",
    "settings", "error",
];

/// What each top-level module may import. Adding an import across modules means adding it here,
/// where review sees it. `commands` is imported by nobody (but `lib.rs`, which is not checked).
const ALLOWED: &[(&str, &[&str])] = &[
    // Pure: data, parsing, argv builders, plans.
    ("diag", &[]),
    ("exit", &[]),
    ("env_vars", &[]),
    ("cli", &[]),
    ("state", &[]),
    ("migrate", &[]),
    ("pages", &[]),
    ("manifest", &["diag"]),
    ("cmd", &["env_vars", "manifest"]),
    ("changes", &["diag", "error", "manifest"]),
    (
        "plan",
        &["changes", "cmd", "diag", "manifest", "migrate", "state"],
    ),
    ("settings", &["cli", "diag", "error", "manifest", "plan"]),
    // The error type wraps the layers' errors (the executor's among them), and renders them.
    ("error", &["cmd", "diag", "exec", "exit", "manifest"]),
    // Effects: processes and SSH, HTTP, databases, the clock, signals, printing.
    ("clock", &[]),
    ("cancel", &["error"]),
    ("exec", &["cmd", "env_vars", "manifest"]),
    (
        "changes::git",
        &["changes", "cmd", "env_vars", "exec", "manifest"],
    ),
    ("report", &["env_vars", "exec"]),
    ("api", &["cmd", "env_vars", "pages"]),
    ("db", &["cmd", "env_vars", "exec", "migrate"]),
    // The engine: runs plans' steps (no unit kind of its own).
    (
        "engine",
        &["cancel", "cmd", "error", "exec", "plan", "report"],
    ),
    // The run: approvals, its context, the guard, the ledger, the deploy engine.
    ("approval", &["api", "env_vars", "error", "report"]),
    (
        "context",
        &[
            "approval", "diag", "env_vars", "error", "manifest", "report", "settings",
        ],
    ),
    (
        "guard",
        &[
            "approval", "cmd", "context", "env_vars", "error", "exec", "exit", "manifest",
        ],
    ),
    (
        "ledger",
        &[
            "api", "cancel", "changes", "clock", "cmd", "context", "env_vars", "error", "exec",
            "exit", "manifest", "plan", "report", "settings", "state",
        ],
    ),
    (
        "deploy",
        &[
            "api",
            "approval",
            "cancel",
            "changes",
            "changes::git",
            "clock",
            "cmd",
            "context",
            "db",
            "diag",
            "engine",
            "env_vars",
            "error",
            "exec",
            "exit",
            "guard",
            "ledger",
            "manifest",
            "migrate",
            "pages",
            "plan",
            "report",
            "settings",
            "state",
        ],
    ),
    // Glue: one short file per subcommand. Everything but the command line (settings.rs resolves it).
    (
        "commands",
        &[
            "api",
            "approval",
            "cancel",
            "changes",
            "changes::git",
            "clock",
            "cmd",
            "context",
            "db",
            "deploy",
            "engine",
            "diag",
            "env_vars",
            "error",
            "exec",
            "exit",
            "guard",
            "ledger",
            "manifest",
            "migrate",
            "pages",
            "plan",
            "report",
            "settings",
            "state",
        ],
    ),
];

/// The modules of `commands/` that the command files share (every other file is one subcommand).
const COMMANDS_SHARED: &[&str] = &["units"];

/// One reference from a file to another module.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ref {
    from: String,
    to: String,
    file: String,
    line: usize,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as (path relative to `src/`, text).
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The module a file belongs to: `src/x.rs` and `src/x/**` are `x`; `src/changes/git.rs` is
/// `changes::git`. `None` for the crate root (`lib.rs`, `main.rs`).
fn module_of(rel: &str) -> Option<String> {
    if rel == "changes/git.rs" {
        return Some("changes::git".into());
    }
    let first = rel.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The line without its comment (`//`, `///`, `//!`). Good enough for this code base: no string
/// literal in `src/` holds `//` before a `crate::` path.
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// The top-level modules a line of code names: `crate::x…` and the names in `crate::{x, y::…}`.
fn named_modules(line: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut top = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ if depth == 0 => top.push(c),
                    _ => {}
                }
            }
            for item in top.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name == "changes" && after["changes".len()..].starts_with("::git") {
                out.insert("changes::git".into());
            } else if !name.is_empty() {
                out.insert(name);
            }
        }
        rest = after;
    }
    out
}

/// Every reference from one module to another in `files` (path relative to `src/`, text).
fn references(files: &[(String, String)]) -> Vec<Ref> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some(from) = module_of(rel) else { continue };
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            let mut named = named_modules(code);
            // `changes::git` reaches the pure part as `super::`.
            if from == "changes::git" && code.contains("super::") {
                named.insert("changes".into());
            }
            for to in named {
                if to != from && !(from == "changes" && to == "changes::git") {
                    out.push(Ref {
                        from: from.clone(),
                        to,
                        file: format!("src/{rel}"),
                        line: i + 1,
                    });
                }
            }
        }
    }
    out
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect()
}

/// The references the table does not allow, one line each: `file:line: a imports b`.
fn violations(refs: &[Ref]) -> Vec<String> {
    let table = allowed();
    refs.iter()
        .filter(|r| {
            !table
                .get(r.from.as_str())
                .is_some_and(|ok| ok.contains(r.to.as_str()))
        })
        .map(|r| {
            let why = if !table.contains_key(r.from.as_str()) {
                format!("`{}` is not in the table of tests/layers.rs", r.from)
            } else if r.to == "commands" {
                "nothing but lib.rs imports commands/".to_string()
            } else if PURE.contains(&r.from.as_str()) && !PURE.contains(&r.to.as_str()) {
                format!("`{}` is pure and `{}` is not", r.from, r.to)
            } else {
                format!("`{}` may not import `{}` (see ALLOWED)", r.from, r.to)
            };
            format!("{}:{}: {} imports {}: {why}", r.file, r.line, r.from, r.to)
        })
        .collect()
}

/// A cycle among the modules, if any, as `a -> b (file:line) -> … -> a`.
fn cycle(refs: &[Ref]) -> Option<String> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Ref>> = BTreeMap::new();
    for r in refs {
        edges.entry(&r.from).or_default().entry(&r.to).or_insert(r);
    }
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Ref>>,
        path: &mut Vec<&'a Ref>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if done.contains(n) {
            return None;
        }
        if let Some(start) = path.iter().position(|r| r.from == n) {
            let ring: Vec<String> = path[start..]
                .iter()
                .map(|r| format!("{} -> {} ({}:{})", r.from, r.to, r.file, r.line))
                .collect();
            return Some(ring.join(", "));
        }
        for (_, r) in edges.get(n).into_iter().flatten() {
            path.push(r);
            if let Some(c) = visit(&r.to, edges, path, done) {
                return Some(c);
            }
            path.pop();
        }
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Command files that import another command file (`super::x` or `crate::commands::x`, `x` not
/// shared), one line each.
fn command_cross_imports(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some(name) = rel.strip_prefix("commands/") else {
            continue;
        };
        let me = name.trim_end_matches(".rs");
        if me == "mod" || COMMANDS_SHARED.contains(&me) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            for prefix in ["super::", "crate::commands::"] {
                for (at, _) in code.match_indices(prefix) {
                    let other: String = code[at + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !other.is_empty() && !COMMANDS_SHARED.contains(&other.as_str()) {
                        out.push(format!(
                            "src/{rel}:{}: command file `{me}` imports `{other}`: what command files share belongs in a layer (or in {COMMANDS_SHARED:?})",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_import_between_modules_is_in_the_allowed_table() {
    let v = violations(&references(&sources(&src_dir())));
    assert!(v.is_empty(), "imports the layers forbid:\n{}", v.join("\n"));
}

#[test]
fn the_modules_import_no_cycle() {
    let refs = references(&sources(&src_dir()));
    assert_eq!(cycle(&refs), None, "an import cycle");
}

#[test]
fn no_command_file_imports_another() {
    let v = command_cross_imports(&sources(&src_dir()));
    assert!(v.is_empty(), "{}", v.join("\n"));
}

#[test]
fn every_module_is_in_the_table_and_the_table_keeps_the_rules() {
    let table = allowed();
    let files = sources(&src_dir());
    for (rel, _) in &files {
        if let Some(m) = module_of(rel) {
            assert!(
                table.contains_key(m.as_str()),
                "src/{rel}: module `{m}` is not in the table of tests/layers.rs"
            );
        }
    }
    for (m, deps) in &table {
        assert!(!deps.contains("commands"), "`{m}` may not import commands/");
        if PURE.contains(m) {
            for d in deps {
                // The error type is data shared by every layer.
                assert!(
                    PURE.contains(d) || (*m == "error" && *d == "exec"),
                    "pure `{m}` is allowed the effectful `{d}`"
                );
            }
        }
    }
}

#[test]
fn processes_start_only_in_exec() {
    let mut found = Vec::new();
    for (rel, text) in sources(&src_dir()) {
        if rel.starts_with("exec/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            if ["duct::", "std::process::Command", "process::Stdio"]
                .iter()
                .any(|t| code.contains(t))
            {
                found.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "processes are started through an Executor (exec/):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_forbidden_import_is_reported_with_its_file_and_line() {
    let files = vec![
        (
            "ledger/store.rs".to_string(),
            "//! a doc naming crate::commands is not an import\nuse crate::commands::up::connect;\n"
                .to_string(),
        ),
        (
            "plan/up.rs".to_string(),
            "use crate::{cmd::Cmd, exec::{Executor, local}};\n".to_string(),
        ),
        (
            "commands/promote.rs".to_string(),
            "use super::up::lock_owner;\nuse super::units::Loaded;\n".to_string(),
        ),
    ];
    let v = violations(&references(&files));
    assert_eq!(
        v,
        [
            "src/ledger/store.rs:2: ledger imports commands: nothing but lib.rs imports commands/",
            "src/plan/up.rs:1: plan imports exec: `plan` is pure and `exec` is not",
        ]
    );
    let c = command_cross_imports(&files);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].starts_with("src/commands/promote.rs:1: command file `promote` imports `up`"));
    let ring = vec![
        (
            "deploy/mod.rs".to_string(),
            "use crate::ledger::store;\n".to_string(),
        ),
        (
            "ledger/store.rs".to_string(),
            "\nuse crate::deploy::clock;\n".to_string(),
        ),
    ];
    let found = cycle(&references(&ring)).expect("a cycle");
    assert!(
        found.contains("ledger -> deploy (src/ledger/store.rs:2)"),
        "{found}"
    );
}
