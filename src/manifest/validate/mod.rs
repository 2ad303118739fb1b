//! The raw YAML tree → the typed [`Manifest`]. Every key is checked against the tables in `keys.rs`
//! (unknown keys are rejected with the closest valid key), every value against its type, and the
//! cross-references (promote_from, unit names) are resolved. Errors carry the span of the offending
//! node and, where there is one, a "did you mean".
//!
//! Stays out of: YAML syntax (raw.rs), rendering (diag), and anything that needs I/O.

use super::ManifestError;
use super::grammar;
use super::keys::{self, Table};
use super::model::*;
use super::raw::{Kind, Node, ScalarType};
use crate::diag::suggest::closest;
use crate::diag::{Source, Span};
use indexmap::IndexMap;
use std::time::Duration;

type Result<T> = std::result::Result<T, ManifestError>;

fn err(span: Span, message: impl Into<String>) -> ManifestError {
    ManifestError {
        message: message.into(),
        span: Some(span),
        help: None,
        source: None,
    }
}

fn err_help(span: Span, message: impl Into<String>, help: impl Into<String>) -> ManifestError {
    ManifestError {
        help: Some(help.into()),
        ..err(span, message)
    }
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// A mapping checked against a key table.
struct Obj<'a> {
    table: &'static Table,
    entries: &'a [(Node, Node)],
    /// Where "missing key" errors point (the key that introduces this mapping).
    at: Span,
    /// How to name this mapping in messages (`environment \`staging\``).
    label: String,
}

impl<'a> Obj<'a> {
    fn new(node: &'a Node, table: &'static Table, at: Span, label: String) -> Result<Self> {
        let entries: &'a [(Node, Node)] = match &node.kind {
            Kind::Map(entries) => entries,
            // `name:` with nothing after it: a mapping with no keys.
            _ if node.is_null() => &[],
            _ => {
                return Err(err(
                    if node.is_null() { at } else { node.span },
                    format!("{label}: expected a mapping, found {}", node.describe()),
                ));
            }
        };
        for (k, _) in entries {
            let name = k.scalar_text().unwrap_or_default();
            if table.field(name).is_none() {
                if name == "<<" {
                    return Err(err_help(
                        k.span,
                        "YAML merge keys (`<<`) are not supported",
                        "repeat the keys, or reuse a whole value with an anchor and alias (`&name`, `*name`)",
                    ));
                }
                let help = did_you_mean(name, table.names()).unwrap_or_else(|| {
                    format!(
                        "valid keys here: {}",
                        table.names().collect::<Vec<_>>().join(", ")
                    )
                });
                return Err(err_help(
                    k.span,
                    format!("unknown key `{}` in {label}", name.escape_debug()),
                    help,
                ));
            }
        }
        Ok(Obj {
            table,
            entries,
            at,
            label,
        })
    }

    /// The key and value of `name`; a `null` value counts as absent.
    fn get(&self, name: &str) -> Option<(&'a Node, &'a Node)> {
        debug_assert!(
            self.table.field(name).is_some(),
            "key `{name}` missing from table {}",
            self.table.what
        );
        self.entries
            .iter()
            .find(|(k, v)| k.scalar_text() == Some(name) && !v.is_null())
            .map(|(k, v)| (k, v))
    }

    fn has(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| k.scalar_text() == Some(name))
    }

    fn required(&self, name: &str) -> Result<(&'a Node, &'a Node)> {
        self.get(name).ok_or_else(|| {
            let desc = self.table.field(name).map_or("", |f| f.description);
            let mut chars = desc.chars();
            let desc: String = chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default();
            err_help(
                self.at,
                format!("missing required key `{name}` in {}", self.label),
                format!("add `{name}:`, {}", desc.trim_end_matches('.')),
            )
        })
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        self.get(name).map(|(k, v)| string(k, v)).transpose()
    }

    fn req_string(&self, name: &str) -> Result<String> {
        let (k, v) = self.required(name)?;
        string(k, v)
    }

    /// A list of environment variable names (`env:`); an item that is not one is an error at it.
    fn var_list(&self, name: &str) -> Result<Vec<String>> {
        let Some((k, v)) = self.get(name) else {
            return Ok(Vec::new());
        };
        let list = string_list(k, v)?;
        for (var, node) in &list {
            if !is_var_name(var) {
                return Err(err_help(
                    node.span,
                    format!(
                        "`{}`: `{}` is not the name of an environment variable",
                        key_name(k),
                        var.escape_debug()
                    ),
                    "a name is letters, digits and `_`, not starting with a digit, e.g. CLOUDFLARE_API_TOKEN",
                ));
            }
        }
        Ok(list.into_iter().map(|(s, _)| s).collect())
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: the name of an environment variable.
fn is_var_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn key_name(k: &Node) -> &str {
    k.scalar_text().unwrap_or_default()
}

fn wrong_type(k: &Node, v: &Node, expected: &str) -> ManifestError {
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

fn string(k: &Node, v: &Node) -> Result<String> {
    match v.as_str() {
        Some(s) => Ok(s.to_string()),
        None => Err(wrong_type(k, v, "a string")),
    }
}

fn string_list<'a>(k: &Node, v: &'a Node) -> Result<Vec<(String, &'a Node)>> {
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

fn int(k: &Node, v: &Node, min: i64, max: i64) -> Result<i64> {
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

fn parse_int(t: &str) -> Option<i64> {
    if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else {
        t.parse().ok()
    }
}

fn word<'w>(k: &Node, v: &Node, allowed: &[&'w str]) -> Result<&'w str> {
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

fn duration(k: &Node, v: &Node) -> Result<Duration> {
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

const HOST_EXAMPLE: &str = "write `local` or `ssh://user@host[:port]`, e.g. ssh://deploy@staging.example.com:22 or ssh://deploy@[2001:db8::1]:2222";

/// The help for a host that does not parse: "did you mean" for a misspelt `local` (`lcoal`,
/// `Local`) or scheme (`shh://`), else the forms a host takes.
fn host_help(s: &str) -> String {
    match s.split_once("://") {
        None if !s.contains(['@', ':', '/', '.']) && closest(s, ["local"]).is_some() => {
            return "did you mean `local`?".into();
        }
        Some((scheme, rest)) if scheme != "ssh" && closest(scheme, ["ssh"]).is_some() => {
            return format!("did you mean `ssh://{rest}`?");
        }
        _ => {}
    }
    HOST_EXAMPLE.to_string()
}

/// Parses `local` or `ssh://user@host[:port]` (port 22 by default; IPv6 in brackets).
pub fn parse_host(s: &str) -> std::result::Result<Host, String> {
    if s == "local" {
        return Ok(Host::Local);
    }
    let rest = match s.split_once("://") {
        Some(("ssh", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "unsupported scheme `{scheme}://` in host `{s}`; only ssh:// is supported"
            ));
        }
        None if s.contains('@') => {
            return Err(format!("host `{s}` lacks the ssh:// scheme"));
        }
        None => return Err(format!("invalid host `{s}`")),
    };
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "host `{s}` has a path; a host is only user@host[:port]"
        ));
    }
    let Some((user, hostport)) = rest.rsplit_once('@') else {
        return Err(format!("host `{s}` is missing the user (ssh://USER@host)"));
    };
    if user.is_empty() {
        return Err(format!("host `{s}` is missing the user (ssh://USER@host)"));
    }
    if user.contains(':') {
        return Err(format!(
            "host `{s}` contains a password; passwords are not supported (use DEPLOY_SSH_KEY)"
        ));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("invalid user `{user}` in host `{s}`"));
    }
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(format!("host `{s}` has an unclosed `[`"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` in host `{s}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("unexpected `{p}` after `]` in host `{s}`")),
            },
        };
        (addr, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(format!(
                        "host `{s}` looks like an IPv6 address without brackets; write it as [ADDRESS]"
                    ));
                }
                (h, Some(p))
            }
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("host `{s}` is missing the host name"));
    }
    if !hostport.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("invalid host name `{host}` in `{s}`"));
    }
    let port = match port {
        None => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("bad port `{p}` in host `{s}` (1-65535)")),
        },
    };
    Ok(Host::Ssh {
        user: user.to_string(),
        host: host.to_string(),
        port,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_name(k: &Node, what: &str) -> Result<String> {
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

fn named<'a>(k: &Node, v: &'a Node) -> Result<&'a [(Node, Node)]> {
    match &v.kind {
        Kind::Map(m) => Ok(m),
        _ if v.is_null() => Ok(&[]),
        _ => Err(wrong_type(k, v, "a mapping of names")),
    }
}

fn globs(k: &Node, v: &Node) -> Result<Vec<String>> {
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

fn boolean(k: &Node, v: &Node) -> Result<bool> {
    match (v.scalar_type(), v.scalar_text()) {
        (Some(ScalarType::Bool), Some(t)) => Ok(matches!(t, "true" | "True" | "TRUE")),
        _ => Err(wrong_type(k, v, "true or false")),
    }
}

/// A list of environment variable names (`secrets:`), each checked, no duplicates.
fn env_names(k: &Node, v: &Node) -> Result<Vec<String>> {
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
fn checked(
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
fn repo_path(node: &Node, path: &str) -> Result<()> {
    grammar::repo_relative(path, false).map_err(|why| {
        err_help(
            node.span,
            why,
            "paths in deploy.yml are relative to the repository root and stay inside it",
        )
    })
}

/// Validates the raw tree into a [`Manifest`]. Errors have no source attached (the caller adds it).
pub fn validate(root: &Node, source: &Source) -> Result<Manifest> {
    let at = Span {
        offset: 0,
        len: 0,
        line: 1,
        col: 1,
    };
    let top = Obj::new(root, &keys::ROOT, at, "the manifest".into())?;

    let (vk, vv) = top.required("version")?;
    if vv.scalar_type() == Some(ScalarType::Int) {
        let n = parse_int(vv.scalar_text().unwrap_or_default());
        if n != Some(1) {
            return Err(err_help(
                vv.span,
                format!(
                    "unsupported manifest version {}; this deploy-action reads version 1",
                    vv.scalar_text().unwrap_or_default()
                ),
                "write `version: 1`",
            ));
        }
    } else {
        return Err(ManifestError {
            help: Some("write `version: 1`".into()),
            ..wrong_type(vk, vv, "the number 1")
        });
    }
    let project = top.req_string("project")?;

    // Environments.
    // Optional: a manifest that only builds and tests needs no environment.
    let mut environments: IndexMap<String, Environment> = IndexMap::new();
    let mut promote_refs: Vec<(&Node, &Node, String)> = Vec::new();
    let env_entries = match top.get("environments") {
        Some((ek, ev)) => named(ek, ev)?,
        None => &[],
    };
    for (k, v) in env_entries {
        let name = check_name(k, "environment")?;
        let env = environment(&name, k, v, &project)?;
        if let Some((pk, pv)) = Obj::new(v, &keys::ENVIRONMENT, k.span, String::new())
            .ok()
            .and_then(|o| o.get("promote_from"))
        {
            promote_refs.push((pk, pv, name.clone()));
        }
        environments.insert(name, env);
    }
    for (pk, pv, name) in promote_refs {
        let target = string(pk, pv)?;
        if target == name {
            return Err(err(
                pv.span,
                format!("environment `{name}` cannot promote from itself"),
            ));
        }
        if !environments.contains_key(&target) {
            let help = did_you_mean(&target, environments.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    format!(
                        "environments: {}",
                        environments.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                });
            return Err(err_help(
                pv.span,
                format!("promote_from names environment `{target}`, which does not exist"),
                help,
            ));
        }
    }

    // Units share one namespace; `migrations` is reserved for the migrations unit.
    let mut unit_spans: IndexMap<String, Span> = IndexMap::new();
    let mut claim = |k: &Node, what: &str| -> Result<String> {
        let name = check_name(k, what)?;
        if name == MIGRATIONS_UNIT {
            return Err(err_help(
                k.span,
                format!("`{MIGRATIONS_UNIT}` is a reserved unit name and cannot name a {what}"),
                "rename it; the `migrations:` block is the unit named `migrations`",
            ));
        }
        if let Some(first) = unit_spans.get(&name) {
            return Err(err_help(
                k.span,
                format!(
                    "unit name `{name}` is used twice (first on line {})",
                    first.line
                ),
                "services and sites share one set of unit names; rename one",
            ));
        }
        unit_spans.insert(name.clone(), k.span);
        Ok(name)
    };

    let mut services = IndexMap::new();
    if let Some((sk, sv)) = top.get("services") {
        for (k, v) in named(sk, sv)? {
            let name = claim(k, "service")?;
            services.insert(name.clone(), service(&name, k, v)?);
        }
    }
    let mut sites = IndexMap::new();
    if let Some((sk, sv)) = top.get("sites") {
        for (k, v) in named(sk, sv)? {
            let name = claim(k, "site")?;
            sites.insert(name.clone(), site(&name, k, v)?);
        }
    }
    let migrations = match top.get("migrations") {
        Some((k, v)) => Some(migrations(k, v)?),
        None => None,
    };

    Ok(Manifest {
        source: source.clone(),
        version: 1,
        project,
        environments,
        services,
        sites,
        migrations,
    })
}

fn environment(name: &str, k: &Node, v: &Node, project: &str) -> Result<Environment> {
    let o = Obj::new(
        v,
        &keys::ENVIRONMENT,
        k.span,
        format!("environment `{name}`"),
    )?;
    let mut hosts = Vec::new();
    if let Some((hk, hv)) = o.get("hosts") {
        for (s, node) in string_list(hk, hv)? {
            match parse_host(&s) {
                Ok(h) => {
                    if hosts.contains(&h) {
                        return Err(err(node.span, format!("host `{s}` is listed twice")));
                    }
                    hosts.push(h)
                }
                Err(msg) => return Err(err_help(node.span, msg, host_help(&s))),
            }
        }
    }
    let dir = match o.get("dir") {
        Some((dk, dv)) => {
            let d = string(dk, dv)?;
            if let Err(why) = grammar::host_path(&d) {
                return Err(err_help(dv.span, why, format!("e.g. dir: /srv/{project}")));
            }
            let any_ssh = hosts.iter().any(|h| matches!(h, Host::Ssh { .. }));
            if any_ssh && !d.starts_with('/') {
                return Err(err_help(
                    dv.span,
                    format!("`dir` must be an absolute path when a host is ssh://, found `{d}`"),
                    format!("e.g. dir: /srv/{project}"),
                ));
            }
            d
        }
        None if !hosts.is_empty() => {
            return Err(err_help(
                k.span,
                format!("environment `{name}` has hosts but no `dir`"),
                format!(
                    "add `dir:` (where the compose files live on the hosts), e.g. dir: /srv/{project}"
                ),
            ));
        }
        None => String::new(),
    };
    let approval = match o.get("approval") {
        Some((ak, av)) => match word(ak, av, keys::APPROVALS)? {
            "required" => Approval::Required,
            _ => Approval::None,
        },
        None => Approval::None,
    };
    let backup = match o.get("backup") {
        Some((bk, bv)) => match word(bk, bv, keys::BACKUPS)? {
            "always" => BackupPolicy::Always,
            "never" => BackupPolicy::Never,
            _ => BackupPolicy::Auto,
        },
        None => BackupPolicy::Auto,
    };
    let keep_releases = match o.get("keep_releases") {
        Some((kk, kv)) => int(kk, kv, 1, 1000)? as u32,
        None => 5,
    };
    let database = match o.get("database") {
        Some((dk, dv)) => Some(database(dk, dv, name)?),
        None => None,
    };
    let url = o.string("url")?;
    if let (Some(u), Some((_, uv))) = (&url, o.get("url"))
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(err_help(
            uv.span,
            format!("`url` must start with http:// or https://, found `{u}`"),
            "e.g. url: https://shop.example.com",
        ));
    }
    let mut compose_files = Vec::new();
    if let Some((ck, cv)) = o.get("compose_files") {
        for (f, node) in string_list(ck, cv)? {
            repo_path(node, &f)?;
            compose_files.push(f);
        }
    }
    let compose_project = match checked(
        &o,
        "compose_project",
        grammar::compose_project,
        "e.g. compose_project: shop",
    )? {
        Some(p) => p,
        None => {
            if !hosts.is_empty()
                && let Err(why) = grammar::compose_project(project)
            {
                return Err(err_help(
                    k.span,
                    format!(
                        "environment `{name}` needs a `compose_project`: the default, the project name, cannot be one: {why}"
                    ),
                    format!(
                        "add e.g. compose_project: {}",
                        project.to_ascii_lowercase().replace(
                            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                            "-"
                        )
                    ),
                ));
            }
            project.to_string()
        }
    };
    let min_approvals = match o.get("min_approvals") {
        Some((mk, mv)) => int(mk, mv, 1, 10)? as u32,
        None => 1,
    };
    let allow_self_approval = match o.get("allow_self_approval") {
        Some((ak, av)) => boolean(ak, av)?,
        None => false,
    };
    let branches = match o.get("branches") {
        Some((bk, bv)) => globs(bk, bv)?,
        None => Vec::new(),
    };
    let secrets = match o.get("secrets") {
        Some((sk, sv)) => env_names(sk, sv)?,
        None => Vec::new(),
    };
    Ok(Environment {
        name: name.to_string(),
        span: k.span,
        hosts,
        dir,
        compose_files,
        compose_project,
        approval,
        approvers: approvers(&o)?,
        database,
        url,
        promote_from: o.string("promote_from")?,
        keep_releases,
        backup,
        min_approvals,
        allow_self_approval,
        branches,
        secrets,
    })
}

/// GitHub logins: letters, digits and single hyphens, at most 39 characters.
fn approvers(o: &Obj) -> Result<Vec<String>> {
    let Some((k, v)) = o.get("approvers") else {
        return Ok(Vec::new());
    };
    let list = string_list(k, v)?;
    for (login, node) in &list {
        let login = login.strip_prefix('@').unwrap_or(login);
        let ok = !login.is_empty()
            && login.len() <= 39
            && !login.starts_with('-')
            && !login.ends_with('-')
            && !login.contains("--")
            && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(err_help(
                node.span,
                format!("`{login}` is not a GitHub login"),
                "approvers are GitHub user names, e.g. approvers: [alice, bob]",
            ));
        }
    }
    Ok(list
        .into_iter()
        .map(|(s, _)| s.trim_start_matches('@').to_string())
        .collect())
}

fn engine(k: &Node, v: &Node) -> Result<Engine> {
    Ok(match word(k, v, keys::ENGINES)? {
        "postgres" => Engine::Postgres,
        _ => Engine::Sqlite,
    })
}

fn database(k: &Node, v: &Node, env: &str) -> Result<Database> {
    let o = Obj::new(
        v,
        &keys::DATABASE_ANY,
        k.span,
        format!("the database of `{env}`"),
    )?;
    if o.has("url_env") {
        for other in ["compose_service", "engine", "user", "name"] {
            if let Some((ok, _)) = o.get(other) {
                return Err(err_help(
                    ok.span,
                    format!("`{other}` cannot be combined with `url_env`"),
                    "use either { url_env } or { compose_service, engine, user, name }",
                ));
            }
        }
        let var = o.req_string("url_env")?;
        let valid = var
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let (_, vv) = o.required("url_env")?;
            return Err(err_help(
                vv.span,
                "`url_env` must be the name of an environment variable, which this is not",
                "e.g. url_env: STAGING_DATABASE_URL (the URL itself goes in that variable, not here)",
            ));
        }
        return Ok(Database::UrlEnv { var, span: k.span });
    }
    if !o.has("compose_service") {
        return Err(err_help(
            k.span,
            format!("the database of `{env}` needs `url_env` or `compose_service`"),
            "use either { url_env: STAGING_DATABASE_URL } or { compose_service: db, engine: postgres, user: app, name: app }",
        ));
    }
    let (ek, ev) = o.required("engine")?;
    o.required("user")?;
    o.required("name")?;
    let req = |key: &str, check: fn(&str) -> std::result::Result<(), String>, help: &str| {
        o.required(key)?;
        checked(&o, key, check, help).map(Option::unwrap_or_default)
    };
    Ok(Database::ComposeService {
        service: req(
            "compose_service",
            grammar::compose_service,
            "e.g. compose_service: db",
        )?,
        engine: engine(ek, ev)?,
        user: req("user", grammar::sql_identifier, "e.g. user: app")?,
        name: req("name", grammar::sql_identifier, "e.g. name: app")?,
        span: k.span,
    })
}

fn service(name: &str, k: &Node, v: &Node) -> Result<Service> {
    let o = Obj::new(v, &keys::SERVICE, k.span, format!("service `{name}`"))?;
    let paths = match o.get("paths") {
        Some((pk, pv)) => globs(pk, pv)?,
        None => Vec::new(),
    };
    let build = match o.get("build") {
        None => None,
        Some((bk, bv)) => Some(build(name, bk, bv)?),
    };
    let health = match o.get("health") {
        None => None,
        Some((hk, hv)) => {
            let h = Obj::new(
                hv,
                &keys::HEALTH,
                hk.span,
                format!("the health check of `{name}`"),
            )?;
            let url = h.string("url")?;
            if let Some(url) = url
                .as_deref()
                .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                let (_, uv) = h.required("url")?;
                return Err(err_help(
                    uv.span,
                    format!("health `url` must start with http:// or https://, found `{url}`"),
                    "e.g. url: http://127.0.0.1:3000/health",
                ));
            }
            Some(Health {
                span: hk.span,
                url,
                timeout: match h.get("timeout") {
                    Some((tk, tv)) => duration(tk, tv)?,
                    None => Duration::from_secs(60),
                },
                expect_status: match h.get("expect_status") {
                    Some((sk, sv)) => int(sk, sv, 100, 599)? as u16,
                    None => 200,
                },
                contains: h.string("contains")?,
                stable: match h.get("stable") {
                    Some((sk, sv)) => Some(duration(sk, sv)?),
                    None => None,
                },
            })
        }
    };
    let compose_service = match checked(
        &o,
        "compose_service",
        grammar::compose_service,
        "the name of the service in the compose file, e.g. compose_service: api",
    )? {
        Some(c) => c,
        None => {
            grammar::compose_service(name).map_err(|why| {
                err_help(
                    k.span,
                    why,
                    "add `compose_service:` with the compose file's name for it",
                )
            })?;
            name.to_string()
        }
    };
    let pull = match o.get("pull") {
        Some((pk, pv)) => match word(pk, pv, keys::PULLS)? {
            "missing" => Pull::Missing,
            "never" => Pull::Never,
            _ => Pull::Always,
        },
        None => Pull::Always,
    };
    Ok(Service {
        name: name.to_string(),
        span: k.span,
        compose_service,
        paths,
        build,
        test: o.string("test")?,
        health,
        secrets: match o.get("secrets") {
            Some((sk, sv)) => env_names(sk, sv)?,
            None => Vec::new(),
        },
        pull,
        env: o.var_list("env")?,
    })
}

fn build(name: &str, k: &Node, v: &Node) -> Result<Build> {
    if let Some(command) = v.as_str() {
        return Ok(Build::Command {
            command: command.to_string(),
            span: k.span,
        });
    }
    if !matches!(v.kind, Kind::Map(_)) {
        return Err(wrong_type(
            k,
            v,
            "a command string, { command } or { context, dockerfile, image }",
        ));
    }
    let o = Obj::new(
        v,
        &keys::BUILD_ANY,
        k.span,
        format!("the build of `{name}`"),
    )?;
    if o.has("command") {
        for other in ["context", "dockerfile", "image"] {
            if let Some((ok, _)) = o.get(other) {
                return Err(err_help(
                    ok.span,
                    format!("`{other}` cannot be combined with `command`"),
                    "use either { command } or { context, dockerfile, image }",
                ));
            }
        }
        return Ok(Build::Command {
            command: o.req_string("command")?,
            span: k.span,
        });
    }
    if !o.has("context") && !o.has("image") {
        return Err(err_help(
            k.span,
            format!("the build of `{name}` needs `command` or `context` and `image`"),
            "e.g. build: { context: services/api, image: shop/api } or build: \"make api\"",
        ));
    }
    let (_, cv) = o.required("context")?;
    let context = o.req_string("context")?;
    grammar::repo_relative(&context, true).map_err(|why| {
        err_help(
            cv.span,
            why,
            "the build context is a directory of the repository, e.g. context: services/api",
        )
    })?;
    let dockerfile = match o.get("dockerfile") {
        Some((dk, dv)) => {
            let d = string(dk, dv)?;
            repo_path(dv, &d)?;
            d
        }
        None => "Dockerfile".to_string(),
    };
    o.required("image")?;
    let image = checked(
        &o,
        "image",
        grammar::image_name,
        "the image name without a tag (the tool tags it), e.g. image: shop/api",
    )?
    .unwrap_or_default();
    Ok(Build::Docker {
        context,
        dockerfile,
        image,
        span: k.span,
    })
}

fn site(name: &str, k: &Node, v: &Node) -> Result<Site> {
    let o = Obj::new(v, &keys::SITE, k.span, format!("site `{name}`"))?;
    o.required("project")?;
    let project = checked(
        &o,
        "project",
        grammar::pages_project,
        "the Cloudflare Pages project name, e.g. project: shop-web",
    )?
    .unwrap_or_default();
    let (_, dv) = o.required("dir")?;
    let dir = o.req_string("dir")?;
    repo_path(dv, &dir)?;
    if let Some((_, bv)) = o.get("production_branch") {
        let b = o.string("production_branch")?.unwrap_or_default();
        grammar::branch_name(&b)
            .map_err(|why| err_help(bv.span, why, "e.g. production_branch: main"))?;
    }
    Ok(Site {
        name: name.to_string(),
        span: k.span,
        project,
        dir,
        build: o.string("build")?,
        paths: match o.get("paths") {
            Some((pk, pv)) => globs(pk, pv)?,
            None => Vec::new(),
        },
        production_branch: o
            .string("production_branch")?
            .unwrap_or_else(|| "main".to_string()),
        env: o.var_list("env")?,
    })
}

fn migrations(k: &Node, v: &Node) -> Result<Migrations> {
    let o = Obj::new(v, &keys::MIGRATIONS, k.span, "`migrations`".into())?;
    let (_, dv) = o.required("dir")?;
    let dir = o.req_string("dir")?;
    repo_path(dv, &dir)?;
    let engine = match o.get("engine") {
        Some((ek, ev)) => engine(ek, ev)?,
        None => Engine::Sqlite,
    };
    let paths = match o.get("paths") {
        Some((pk, pv)) => globs(pk, pv)?,
        None => vec![format!("{}/**", dir.trim_end_matches('/'))],
    };
    Ok(Migrations {
        span: k.span,
        dir,
        engine,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = include_str!("../../../examples/deploy.full.yml");

    fn parse(text: &str) -> Result<Manifest> {
        crate::manifest::parse(Source::new("deploy.yml", text))
    }

    #[test]
    fn full_example_parses() {
        let m = parse(FULL).unwrap();
        assert_eq!(m.project, "shop");
        assert_eq!(m.environments.len(), 3);
        let prod = &m.environments["production"];
        assert_eq!(prod.approval, Approval::Required);
        assert_eq!(prod.compose_project, "shop");
        assert_eq!(prod.keep_releases, 5);
        assert_eq!(
            prod.hosts[1],
            Host::Ssh {
                user: "deploy".into(),
                host: "2001:db8::10".into(),
                port: 2222
            }
        );
        assert!(matches!(
            prod.database,
            Some(Database::ComposeService {
                engine: Engine::Postgres,
                ..
            })
        ));
        assert_eq!(m.environments["dev"].hosts, vec![Host::Local]);
        let api = &m.services["api"];
        assert_eq!(
            api.health.as_ref().unwrap().timeout,
            Duration::from_secs(90)
        );
        assert!(matches!(
            m.services["worker"].build,
            Some(Build::Command { .. })
        ));
        assert_eq!(
            m.services["worker"].health.as_ref().unwrap().expect_status,
            200
        );
        assert_eq!(m.sites["web"].production_branch, "main");
        assert_eq!(m.units().len(), 6);
        let prod = &m.environments["production"];
        assert_eq!(prod.min_approvals, 2);
        assert!(!prod.allow_self_approval);
        assert_eq!(prod.branches, ["main", "release/*"]);
        assert_eq!(prod.secrets, ["SENTRY_DSN"]);
        assert_eq!(m.services["api"].secrets, ["API_KEY", "PAYMENT_TOKEN"]);
        assert_eq!(m.services["cache"].pull, Pull::Missing);
        assert_eq!(m.services["api"].pull, Pull::Always);
    }

    #[test]
    fn unknown_key_has_location_and_suggestion() {
        let text = "version: 1\nproject: shop\nenvironments:\n  staging:\n    hsots: [local]\n";
        let e = parse(text).unwrap_err();
        let s = e.span.unwrap();
        assert_eq!((s.line, s.col), (5, 5));
        assert_eq!(e.help.as_deref(), Some("did you mean `hosts`?"));
    }

    const HEAD: &str = "version: 1\nproject: shop\n";

    /// Parses HEAD + `body`, expects an error, returns (line, col, message, help).
    fn fail(body: &str) -> (u32, u32, String, Option<String>) {
        let text = format!("{HEAD}{body}");
        let e = parse(&text).expect_err("expected an error");
        let s = e.span.unwrap_or_else(|| panic!("no span: {}", e.message));
        assert!(e.source.is_some());
        (s.line, s.col, e.message, e.help)
    }

    #[test]
    fn yaml_syntax_error() {
        let (l, c, m, _) = fail("environments:\n  staging: {hosts: [local}\n");
        assert!(m.starts_with("YAML syntax error"), "{m}");
        assert_eq!(l, 4);
        assert!(c > 1);
    }

    #[test]
    fn tab_indentation() {
        let (l, c, m, h) = fail("environments:\n  staging:\n\t  dir: /srv\n");
        assert_eq!((l, c), (5, 1));
        assert!(m.contains("tab is used for indentation"), "{m}");
        assert_eq!(h.as_deref(), Some("replace the tab with spaces"));
    }

    #[test]
    fn duplicate_key() {
        let (l, c, m, _) = fail("environments:\n  s: {}\nenvironments:\n  t: {}\n");
        assert_eq!((l, c), (5, 1));
        assert!(m.contains("first defined on line 3"), "{m}");
    }

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
    fn unknown_keys_suggest_per_mapping() {
        let (l, c, m, h) =
            fail("environments:\n  s: {}\nservices:\n  api:\n    helth: {url: http://x}\n");
        assert_eq!((l, c), (7, 5));
        assert_eq!(m, "unknown key `helth` in service `api`");
        assert_eq!(h.as_deref(), Some("did you mean `health`?"));
        let (l, c, _, h) = fail("environment:\n  s: {}\n");
        assert_eq!((l, c), (3, 1));
        assert_eq!(h.as_deref(), Some("did you mean `environments`?"));
        let (_, _, _, h) = fail("environments:\n  s: {zzzzzz: 1}\n");
        assert!(h.unwrap().starts_with("valid keys here: hosts, dir"));
        let (_, _, m, h) = fail(
            "environments:\n  s: {}\nsites:\n  web: {project: p, dir: d, production_brnach: main}\n",
        );
        assert!(m.contains("site `web`"));
        assert_eq!(h.as_deref(), Some("did you mean `production_branch`?"));
    }

    #[test]
    fn missing_required_key() {
        let (l, c, m, h) = fail("environments:\n  s: {}\nsites:\n  web: {project: p}\n");
        assert_eq!((l, c), (6, 3));
        assert_eq!(m, "missing required key `dir` in site `web`");
        assert!(h.unwrap().starts_with("add `dir:`"));
        let e = crate::manifest::parse(Source::new("deploy.yml", "version: 1\nenvironments: {}\n"))
            .unwrap_err();
        assert_eq!(e.message, "missing required key `project` in the manifest");
    }

    #[test]
    fn unsupported_version() {
        let e = parse("version: 2\nproject: p\nenvironments: {}\n").unwrap_err();
        let s = e.span.unwrap();
        assert_eq!((s.line, s.col), (1, 10));
        assert!(e.message.contains("unsupported manifest version 2"));
        let e = parse("version: \"1\"\nproject: p\nenvironments: {}\n").unwrap_err();
        assert!(
            e.message.contains("expected the number 1, found a string"),
            "{}",
            e.message
        );
    }

    #[test]
    fn promote_from_unknown_environment() {
        let (l, c, m, h) =
            fail("environments:\n  staging: {}\n  prod:\n    promote_from: stagng\n");
        assert_eq!((l, c), (6, 19));
        assert!(m.contains("`stagng`, which does not exist"));
        assert_eq!(h.as_deref(), Some("did you mean `staging`?"));
        let (_, _, m, _) = fail("environments:\n  prod:\n    promote_from: prod\n");
        assert!(m.contains("itself"));
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
    fn hosts() {
        let ok = |s: &str| parse_host(s).unwrap();
        assert_eq!(ok("local"), Host::Local);
        assert_eq!(
            ok("ssh://deploy@h.example.com"),
            Host::Ssh {
                user: "deploy".into(),
                host: "h.example.com".into(),
                port: 22
            }
        );
        assert_eq!(
            ok("ssh://d@[::1]:2222"),
            Host::Ssh {
                user: "d".into(),
                host: "::1".into(),
                port: 2222
            }
        );
        assert_eq!(ok("ssh://d@10.0.0.1:22").to_string(), "ssh://d@10.0.0.1:22");
        for (bad, says) in [
            ("http://d@h", "unsupported scheme `http://`"),
            ("ssh://h.example.com", "missing the user"),
            ("ssh://@h", "missing the user"),
            ("ssh://d@h:0", "bad port `0`"),
            ("ssh://d@h:70000", "bad port `70000`"),
            ("ssh://d@h:x", "bad port"),
            ("ssh://d@::1", "without brackets"),
            ("ssh://d@[nope]", "not an IPv6 address"),
            ("ssh://d:pw@h", "password"),
            ("ssh://d@h/srv", "has a path"),
            ("d@h", "lacks the ssh:// scheme"),
            ("locl", "invalid host"),
        ] {
            let e = parse_host(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let (l, c, m, h) = fail(
            "environments:\n  s:\n    dir: /srv\n    hosts:\n      - local\n      - ssh://deploy@h:99999\n",
        );
        assert_eq!((l, c), (8, 9));
        assert!(m.contains("bad port"));
        assert!(h.unwrap().contains("ssh://deploy@staging.example.com:22"));
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
    fn unit_names() {
        let (l, c, m, _) = fail(
            "environments:\n  s: {}\nservices:\n  web: {}\nsites:\n  web: {project: p, dir: d}\n",
        );
        assert_eq!((l, c), (8, 3));
        assert!(m.contains("used twice (first on line 6)"), "{m}");
        let (l, c, m, _) =
            fail("environments:\n  s: {}\nsites:\n  migrations: {project: p, dir: d}\n");
        assert_eq!((l, c), (6, 3));
        assert!(m.contains("reserved"));
        let (_, _, m, _) = fail("environments:\n  \"bad name\": {}\n");
        assert!(m.contains("invalid environment name"));
    }

    #[test]
    fn environment_dir_rules() {
        let (l, c, m, _) = fail("environments:\n  s:\n    hosts: [local]\n");
        assert_eq!((l, c), (4, 3));
        assert!(m.contains("has hosts but no `dir`"));
        let (l, c, m, _) = fail("environments:\n  s:\n    hosts: [\"ssh://d@h\"]\n    dir: srv\n");
        assert_eq!((l, c), (6, 10));
        assert!(m.contains("absolute"));
        let m = parse(&format!(
            "{HEAD}environments:\n  s:\n    hosts: [local]\n    dir: deploy/dev\n"
        ))
        .unwrap();
        assert_eq!(m.environments["s"].dir, "deploy/dev");
    }

    /// Issue 10: `compose_files`, `sites.*.dir` and `migrations.dir` accepted absolute paths and
    /// `..` escapes (a plan uploaded `../../../etc/shadow`).
    #[test]
    fn r10_repository_paths_must_be_relative_and_stay_inside() {
        let env = "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n";
        let (l, c, m, h) = fail(&format!(
            "{env}    compose_files: [compose.yml, ../../../etc/shadow]\n"
        ));
        assert_eq!((l, c), (7, 34));
        assert!(m.contains("leads outside the repository"), "{m}");
        assert!(h.unwrap().contains("relative to the repository root"));
        let (l, _, m, _) = fail(&format!("{env}    compose_files: [/etc/shadow]\n"));
        assert_eq!(l, 7);
        assert!(m.contains("absolute"), "{m}");
        let (l, c, m, _) = fail("sites:\n  web:\n    project: web\n    dir: /etc\n");
        assert_eq!((l, c), (6, 10));
        assert!(m.contains("absolute"), "{m}");
        let (l, _, m, _) = fail("sites:\n  web:\n    project: web\n    dir: dist/../..\n");
        assert_eq!(l, 6);
        assert!(m.contains("outside"), "{m}");
        let (l, _, m, _) = fail("migrations:\n  dir: ../other/migrations\n");
        assert_eq!(l, 4);
        assert!(m.contains("outside"), "{m}");
        let (l, _, m, _) =
            fail("services:\n  api:\n    build: { context: ../.., image: shop/api }\n");
        assert_eq!(l, 5);
        assert!(m.contains("outside"), "{m}");
        // Inside, after `..`: fine; and the repository root is a valid build context.
        parse(&format!(
            "{HEAD}{env}    compose_files: [deploy/../compose.yml]\nservices:\n  api:\n    build: {{ context: ., image: shop/api }}\n"
        ))
        .unwrap();
    }

    /// Issue 10: `compose_service`, `image`, `compose_project`, the database user and similar
    /// values went into argv unchecked (`--remove-orphans` became an option; NUL was accepted).
    #[test]
    fn r10_argv_values_are_checked_against_their_grammar() {
        let (l, c, m, _) = fail("services:\n  api:\n    compose_service: --remove-orphans\n");
        assert_eq!((l, c), (5, 22));
        assert!(m.contains("not a compose service name"), "{m}");
        let (l, _, m, _) = fail("services:\n  api:\n    compose_service: \"a\\0b\"\n");
        assert_eq!(l, 5);
        assert!(m.contains("not a compose service name"), "{m}");
        let (l, _, m, _) =
            fail("services:\n  api:\n    build: { context: api, image: \"--privileged\" }\n");
        assert_eq!(l, 5);
        assert!(m.contains("not an image name"), "{m}");
        let (l, _, m, _) = fail(
            "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n    compose_project: \"-f\"\n",
        );
        assert_eq!(l, 7);
        assert!(m.contains("not a compose project name"), "{m}");
        let (l, _, m, _) = fail(
            "environments:\n  s:\n    hosts: [local]\n    dir: /srv\n    database: { compose_service: db, engine: postgres, user: \"-U\", name: app }\n",
        );
        assert_eq!(l, 7);
        assert!(m.contains("not a database identifier"), "{m}");
        let (l, _, m, _) = fail("sites:\n  web:\n    project: \"--branch=x\"\n    dir: d\n");
        assert_eq!(l, 5);
        assert!(m.contains("Pages project"), "{m}");
        let (l, _, m, _) = fail("environments:\n  s:\n    hosts: [local]\n    dir: \"-rf\"\n");
        assert_eq!(l, 6);
        assert!(m.contains("option"), "{m}");
        // The default compose project is the project name: checked when there are hosts.
        let e = parse(
            "version: 1\nproject: Shop\nenvironments:\n  s:\n    hosts: [local]\n    dir: /srv\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("needs a `compose_project`"),
            "{}",
            e.message
        );
        assert_eq!(e.help.as_deref(), Some("add e.g. compose_project: shop"));
    }

    #[test]
    fn second_wave_keys_are_typed() {
        let env = "environments:\n  s:\n";
        let (l, _, m, _) = fail(&format!("{env}    allow_self_approval: yes please\n"));
        assert_eq!(l, 5);
        assert!(m.contains("true or false"), "{m}");
        let (_, _, m, _) = fail(&format!("{env}    min_approvals: 0\n"));
        assert!(m.contains("between 1 and 10"), "{m}");
        let (l, c, m, h) = fail(&format!("{env}    secrets: [API_KEY, \"sk-live-123\"]\n"));
        assert_eq!((l, c), (5, 24));
        assert!(m.contains("not an environment variable name"), "{m}");
        assert!(h.unwrap().contains("NAMES"));
        let (_, _, m, _) = fail(&format!("{env}    secrets: [A, A]\n"));
        assert!(m.contains("listed twice"), "{m}");
        let (_, _, m, h) = fail("services:\n  api:\n    pull: allways\n");
        assert!(m.contains("unknown pull `allways`"), "{m}");
        assert_eq!(h.as_deref(), Some("did you mean `always`?"));
        let (_, _, m, _) = fail(&format!("{env}    branches: [\"[\"]\n"));
        assert!(m.contains("invalid glob"), "{m}");
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

    #[test]
    fn defaults() {
        let m = parse(&format!("{HEAD}environments:\n  s:\nservices:\n  api:\n    build: {{context: a, image: i}}\n    health: {{url: \"http://x\"}}\nsites:\n  web: {{project: p, dir: d}}\nmigrations: {{dir: db/migrations/}}\n")).unwrap();
        let s = &m.environments["s"];
        assert_eq!(
            (s.approval, s.backup, s.keep_releases),
            (Approval::None, BackupPolicy::Auto, 5)
        );
        assert_eq!(s.compose_project, "shop");
        assert!(s.hosts.is_empty());
        let api = &m.services["api"];
        assert_eq!(api.compose_service, "api");
        assert!(
            matches!(&api.build, Some(Build::Docker { dockerfile, .. }) if dockerfile == "Dockerfile")
        );
        let h = api.health.as_ref().unwrap();
        assert_eq!((h.timeout, h.expect_status), (Duration::from_secs(60), 200));
        assert_eq!(h.stable, None, "the default window is the deploy runner's");
        // A worker with no HTTP endpoint can still set its window.
        let windowed = parse(&format!(
            "{HEAD}environments:\n  s:\nservices:\n  worker:\n    health: {{stable: 1500ms}}\n"
        ))
        .unwrap();
        let h = windowed.services["worker"].health.as_ref().unwrap();
        assert_eq!(
            (h.stable, h.url.as_deref()),
            (Some(Duration::from_millis(1500)), None)
        );
        assert_eq!(m.sites["web"].production_branch, "main");
        let mig = m.migrations.as_ref().unwrap();
        assert_eq!(mig.engine, Engine::Sqlite);
        assert_eq!(mig.paths, vec!["db/migrations/**".to_string()]);
    }

    #[test]
    fn database_forms() {
        let (_, _, m, _) =
            fail("environments:\n  s:\n    database: {url_env: X, engine: postgres}\n");
        assert!(m.contains("cannot be combined with `url_env`"));
        let (l, c, m, _) = fail(
            "environments:\n  s:\n    database: {compose_service: db, engine: postgres, user: u}\n",
        );
        assert_eq!((l, c), (5, 5));
        assert!(m.contains("missing required key `name`"), "{m}");
    }

    /// Truncations and byte mutations of the full example: parse() returns, never panics.
    #[test]
    fn never_panics_on_mangled_input() {
        let text = FULL;
        let mut cuts: Vec<usize> = (0..text.len()).step_by(5).collect();
        cuts.push(text.len());
        for cut in cuts {
            if text.is_char_boundary(cut) {
                let _ = parse(&text[..cut]);
            }
        }
        let replacements: [&str; 14] = [
            "\t", ":", "-", "[", "]", "{", "}", "&a ", "*a", "\"", "'", "\n", "é", "|",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..800 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut pos = (seed % text.len() as u64) as usize;
            while !text.is_char_boundary(pos) {
                pos -= 1;
            }
            let rep = replacements[(seed >> 32) as usize % replacements.len()];
            let mutated = format!("{}{}{}", &text[..pos], rep, &text[pos..]);
            match parse(&mutated) {
                Ok(_) => {}
                Err(e) => {
                    // Every error renders without panicking, with a location when it has a span.
                    let out = e.render(false);
                    assert!(out.starts_with("error: "));
                }
            }
        }
    }

    #[test]
    fn misspelt_hosts_get_a_suggestion() {
        let host = |h: &str| {
            fail(&format!(
                "environments:\n  s:\n    hosts: [\"{h}\"]\n    dir: /srv\n"
            ))
        };
        let (l, c, m, help) = host("lcoal");
        assert_eq!((l, c), (5, 13));
        assert_eq!(m, "invalid host `lcoal`");
        assert_eq!(help.as_deref(), Some("did you mean `local`?"));
        assert_eq!(host("Local").3.as_deref(), Some("did you mean `local`?"));
        assert_eq!(
            host("shh://deploy@prod.example.com").3.as_deref(),
            Some("did you mean `ssh://deploy@prod.example.com`?")
        );
        // Nothing close: the forms a host takes.
        assert_eq!(host("banana").3.as_deref(), Some(HOST_EXAMPLE));
        assert_eq!(
            host("https://deploy@prod.example.com").3.as_deref(),
            Some(HOST_EXAMPLE)
        );
    }

    #[test]
    fn approvers_and_url_env() {
        let (l, c, m, _) = fail("environments:\n  s: {approvers: [alice, \"bob smith\"]}\n");
        assert_eq!((l, c), (4, 26));
        assert!(m.contains("not a GitHub login"), "{m}");
        let m = parse(&format!(
            "{HEAD}environments:\n  s: {{approvers: [\"@alice\"]}}\n"
        ))
        .unwrap();
        assert_eq!(m.environments["s"].approvers, vec!["alice".to_string()]);
        let (_, _, m, _) =
            fail("environments:\n  s: {database: {url_env: \"postgres://u:p@h/db\"}}\n");
        assert!(
            m.contains("must be the name of an environment variable"),
            "{m}"
        );
        assert!(!m.contains("u:p@"), "the value is not echoed: {m}");
    }

    #[test]
    fn env_lists_variable_names_of_services_and_sites() {
        let m = parse(&format!(
            "{HEAD}services:\n  api: {{env: [GITHUB_TOKEN, _X1]}}\nsites:\n  web: {{project: w, dir: d, env: [CLOUDFLARE_API_TOKEN]}}\n"
        ))
        .unwrap();
        assert_eq!(m.services["api"].env, ["GITHUB_TOKEN", "_X1"]);
        assert_eq!(m.sites["web"].env, ["CLOUDFLARE_API_TOKEN"]);
        let (l, c, m, h) = fail("services:\n  api:\n    env: [OK, \"NOT-A-VAR\"]\n");
        assert_eq!((l, c), (5, 15));
        assert!(
            m.contains("`NOT-A-VAR` is not the name of an environment variable"),
            "{m}"
        );
        assert!(h.unwrap().contains("CLOUDFLARE_API_TOKEN"));
        let (l, c, m, _) = fail("sites:\n  web: {project: w, dir: d, env: [\"1X\"]}\n");
        assert_eq!((l, c), (4, 35));
        assert!(m.contains("`1X`"), "{m}");
        let (_, _, m, _) = fail("services:\n  api: {env: GITHUB_TOKEN}\n");
        assert!(m.contains("expected a list of strings"), "{m}");
    }
}
