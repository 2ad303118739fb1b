//! Databases: an environment's `database:` (a URL in an environment variable, or a compose service
//! with engine, user and name, never both) and the `migrations:` block (its directory, engine and
//! the paths that mark it changed).

use super::obj::Obj;
use super::values::{checked, globs, repo_path, word};
use super::{Result, err_help};
use crate::manifest::raw::Node;
use crate::manifest::{Database, Engine, Migrations, grammar, keys};

fn engine(k: &Node, v: &Node) -> Result<Engine> {
    Ok(match word(k, v, keys::ENGINES)? {
        "postgres" => Engine::Postgres,
        _ => Engine::Sqlite,
    })
}

pub(super) fn database(k: &Node, v: &Node, env: &str) -> Result<Database> {
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

pub(super) fn migrations(k: &Node, v: &Node) -> Result<Migrations> {
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
    use crate::manifest::validate::tests::fail;

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
}
