//! The grammars of values that end up in a command line or a path: checked when the manifest is
//! loaded, so that nothing from `deploy.yml` (or `--image`) can become an option (`--remove-orphans`),
//! carry a NUL or a newline into argv, or point outside the repository. Pure.
//!
//! Each check returns `Err(why)` in words; `validate/` adds the location and a help line.

use std::path::{Component, Path};

/// A docker compose service name (compose's own rule): `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn compose_service(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a compose service name (letters, digits, `_`, `.`, `-`, starting with a letter or digit)",
            name.escape_debug()
        ))
    }
}

/// A docker compose project name (compose v2's rule): `[a-z0-9][a-z0-9_-]*`.
pub fn compose_project(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a compose project name (lowercase letters, digits, `_` and `-`, starting with a letter or digit)",
            name.escape_debug()
        ))
    }
}

/// One path component of an image name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn name_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`, between alphanumerics.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || start == i {
            return false;
        }
    }
    true
}

/// A registry host (`registry.example.com`, `localhost:5000`, `[::1]:5000`).
fn registry_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => (host, Some(port)),
        _ => (h, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5)
    {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An image name without tag or digest (`shop/api`, `registry:5000/team/api`).
pub fn image_name(name: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{}` is not an image name (lowercase path components such as `shop/api` or `registry.example.com/team/api`, no tag)",
            name.escape_debug()
        )
    };
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry when it looks like a host: has `.` or `:`, or is `localhost`.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            if !registry_host(first) {
                return Err(bad());
            }
            parts.remove(0);
        }
    }
    if parts.iter().all(|p| name_component(p)) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// An image reference: a name with an optional `:tag` and an optional `@algorithm:hex` digest.
pub fn image_reference(reference: &str) -> Result<(), String> {
    let bad = |what: &str| {
        format!(
            "`{}` is not an image reference ({what}; e.g. `shop/api:1.4.2` or `repo@sha256:<64 hex>`)",
            reference.escape_debug()
        )
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return Err(bad("a bad digest"));
        }
    }
    // A tag is after the last `:` that comes after the last `/` (a registry port is before it).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad("a bad tag"));
        }
    }
    image_name(name).map_err(|_| bad("a bad name"))
}

/// A database user or database name given to psql/pg_dump as an argument: an SQL identifier
/// (`[A-Za-z_][A-Za-z0-9_$]*`, at most 63 bytes).
pub fn sql_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a database identifier (letters, digits, `_` and `$`, starting with a letter or `_`, at most 63 bytes)",
            name.escape_debug()
        ))
    }
}

/// A Cloudflare Pages project name: lowercase letters, digits and `-`, 1–58 characters, no
/// leading or trailing `-`.
pub fn pages_project(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 58
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Cloudflare Pages project name (lowercase letters, digits and `-`, at most 58)",
            name.escape_debug()
        ))
    }
}

/// A git branch name as given to `--branch`-like places (git's check-ref-format, simplified):
/// no leading `-`, no spaces, control characters, `..`, `~^:?*[\`.
pub fn branch_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a git branch name",
            name.escape_debug()
        ))
    }
}

/// A path written in the manifest that names something in the repository: relative, and after
/// resolving `.` and `..` lexically still inside the repository (not the repository itself when
/// `allow_root` is false). No NUL, newline or other control characters.
pub fn repo_relative(path: &str, allow_root: bool) -> Result<(), String> {
    if path.chars().any(char::is_control) {
        return Err(format!(
            "`{}` contains a control character",
            path.escape_debug()
        ));
    }
    let p = Path::new(path);
    if p.is_absolute() || path.starts_with('~') {
        return Err(format!(
            "`{path}` is an absolute path; paths in deploy.yml are relative to the repository root"
        ));
    }
    let mut depth: i64 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("`{path}` leads outside the repository (`..`)"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is an absolute path"));
            }
        }
    }
    if depth == 0 && !allow_root {
        return Err(format!("`{path}` is the repository root itself"));
    }
    Ok(())
}

/// A path on a host (`dir:`): absolute or relative, but no control characters and no leading `-`.
pub fn host_path(path: &str) -> Result<(), String> {
    if path.chars().any(char::is_control) {
        return Err(format!(
            "`{}` contains a control character",
            path.escape_debug()
        ));
    }
    if path.starts_with('-') {
        return Err(format!(
            "`{path}` starts with `-` and would be read as an option"
        ));
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an environment variable name",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_names() {
        assert!(compose_service("api").is_ok());
        assert!(compose_service("web.v2_x-1").is_ok());
        assert!(compose_service("--remove-orphans").is_err());
        assert!(compose_service("a\0b").is_err());
        assert!(compose_service("").is_err());
        assert!(compose_project("shop_1-a").is_ok());
        assert!(compose_project("Shop").is_err());
        assert!(compose_project("-p").is_err());
    }

    #[test]
    fn image_names_and_references() {
        for ok in [
            "shop/api",
            "api",
            "registry.example.com/team/api",
            "localhost:5000/api",
            "a__b/c-d--e.f",
            "deploy-action-test/web",
        ] {
            assert!(image_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Shop/api", "--help", "api:1.0", "a/-b", "a//b", "api\n", "a___b",
        ] {
            assert!(image_name(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "shop/api:1.4.2",
            "localhost:5000/api:latest",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "repo:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "api",
        ] {
            assert!(image_reference(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--remove-orphans",
            "api:",
            "api:-x",
            "api@sha256:xyz",
            "api:1\0",
        ] {
            assert!(image_reference(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repository_paths_stay_inside() {
        assert!(repo_relative("compose.yml", false).is_ok());
        assert!(repo_relative("deploy/../compose.yml", false).is_ok());
        assert!(repo_relative("./clients/web/dist", false).is_ok());
        assert!(repo_relative("../../../etc/shadow", false).is_err());
        assert!(repo_relative("a/../../b", false).is_err());
        assert!(repo_relative("/etc/shadow", false).is_err());
        assert!(repo_relative("~/x", false).is_err());
        assert!(repo_relative(".", false).is_err());
        assert!(repo_relative(".", true).is_ok());
        assert!(repo_relative("a\nb", false).is_err());
    }

    #[test]
    fn identifiers_projects_branches_and_variables() {
        assert!(sql_identifier("app_user").is_ok());
        assert!(sql_identifier("-U").is_err());
        assert!(sql_identifier("a b").is_err());
        assert!(pages_project("shop-web").is_ok());
        assert!(pages_project("Shop").is_err());
        assert!(pages_project("-x").is_err());
        assert!(branch_name("release/1.2").is_ok());
        assert!(branch_name("--force").is_err());
        assert!(branch_name("a b").is_err());
        assert!(host_path("/srv/shop").is_ok());
        assert!(host_path("-rf").is_err());
        assert!(env_name("API_KEY").is_ok());
        assert!(env_name("1X").is_err());
        assert!(env_name("A-B").is_err());
    }
}
