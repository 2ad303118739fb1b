//! The environments, each with its `promote_from` resolved against the others. An environment: its
//! hosts and directory on them, the compose files and project, approval (policy, approvers, how
//! many, self-approval), the branches and secrets it allows, its database, URL, release retention
//! and backup policy.

use super::database::database;
use super::hosts;
use super::obj::Obj;
use super::values::{
    boolean, check_name, checked, env_names, globs, int, named, repo_path, string, string_list,
    word,
};
use super::{Result, did_you_mean, err, err_help};
use crate::manifest::raw::Node;
use crate::manifest::{Approval, BackupPolicy, Environment, Host, grammar, keys};
use indexmap::IndexMap;

/// The `environments:` mapping (absent: none), each environment read, then every `promote_from`
/// resolved against the others.
pub(super) fn environments(top: &Obj, project: &str) -> Result<IndexMap<String, Environment>> {
    let mut environments: IndexMap<String, Environment> = IndexMap::new();
    let mut promote_refs: Vec<(&Node, &Node, String)> = Vec::new();
    let env_entries = match top.get("environments") {
        Some((ek, ev)) => named(ek, ev)?,
        None => &[],
    };
    for (k, v) in env_entries {
        let name = check_name(k, "environment")?;
        let env = environment(&name, k, v, project)?;
        if let Some((pk, pv)) = Obj::new(v, &keys::ENVIRONMENT, k.span, String::new())
            .ok()
            .and_then(|o| o.get("promote_from"))
        {
            promote_refs.push((pk, pv, name.clone()));
        }
        environments.insert(name, env);
    }
    for (pk, pv, name) in promote_refs {
        promote_from(pk, pv, &name, &environments)?;
    }
    Ok(environments)
}

/// `promote_from` of environment `name` names another environment that exists.
fn promote_from(
    pk: &Node,
    pv: &Node,
    name: &str,
    environments: &IndexMap<String, Environment>,
) -> Result<()> {
    let target = string(pk, pv)?;
    if target == name {
        return Err(err(
            pv.span,
            format!("environment `{name}` cannot promote from itself"),
        ));
    }
    if !environments.contains_key(&target) {
        let help =
            did_you_mean(&target, environments.keys().map(String::as_str)).unwrap_or_else(|| {
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
    Ok(())
}

fn environment(name: &str, k: &Node, v: &Node, project: &str) -> Result<Environment> {
    let o = Obj::new(
        v,
        &keys::ENVIRONMENT,
        k.span,
        format!("environment `{name}`"),
    )?;
    let hosts = hosts::list(&o)?;
    let dir = dir(&o, k, name, project, &hosts)?;
    let approval = approval(&o)?;
    let backup = backup(&o)?;
    let keep_releases = match o.get("keep_releases") {
        Some((kk, kv)) => int(kk, kv, 1, 1000)? as u32,
        None => 5,
    };
    let database = match o.get("database") {
        Some((dk, dv)) => Some(database(dk, dv, name)?),
        None => None,
    };
    let url = url(&o)?;
    let compose_files = compose_files(&o)?;
    let compose_project = compose_project(&o, k, name, project, !hosts.is_empty())?;
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

/// `dir:`, where the compose files live on the hosts: required when there are hosts, absolute when
/// one of them is ssh://.
fn dir(o: &Obj, k: &Node, name: &str, project: &str, hosts: &[Host]) -> Result<String> {
    match o.get("dir") {
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
            Ok(d)
        }
        None if !hosts.is_empty() => Err(err_help(
            k.span,
            format!("environment `{name}` has hosts but no `dir`"),
            format!(
                "add `dir:` (where the compose files live on the hosts), e.g. dir: /srv/{project}"
            ),
        )),
        None => Ok(String::new()),
    }
}

fn approval(o: &Obj) -> Result<Approval> {
    Ok(match o.get("approval") {
        Some((ak, av)) => match word(ak, av, keys::APPROVALS)? {
            "required" => Approval::Required,
            _ => Approval::None,
        },
        None => Approval::None,
    })
}

fn backup(o: &Obj) -> Result<BackupPolicy> {
    Ok(match o.get("backup") {
        Some((bk, bv)) => match word(bk, bv, keys::BACKUPS)? {
            "always" => BackupPolicy::Always,
            "never" => BackupPolicy::Never,
            _ => BackupPolicy::Auto,
        },
        None => BackupPolicy::Auto,
    })
}

/// `url:`, an http:// or https:// address.
fn url(o: &Obj) -> Result<Option<String>> {
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
    Ok(url)
}

/// `compose_files:`, paths in the repository.
fn compose_files(o: &Obj) -> Result<Vec<String>> {
    let mut compose_files = Vec::new();
    if let Some((ck, cv)) = o.get("compose_files") {
        for (f, node) in string_list(ck, cv)? {
            repo_path(node, &f)?;
            compose_files.push(f);
        }
    }
    Ok(compose_files)
}

/// `compose_project:`, by default the project name, which must then be a valid compose project name
/// when the environment has hosts.
fn compose_project(
    o: &Obj,
    k: &Node,
    name: &str,
    project: &str,
    has_hosts: bool,
) -> Result<String> {
    if let Some(p) = checked(
        o,
        "compose_project",
        grammar::compose_project,
        "e.g. compose_project: shop",
    )? {
        return Ok(p);
    }
    if has_hosts && let Err(why) = grammar::compose_project(project) {
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
    Ok(project.to_string())
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

#[cfg(test)]
mod tests {
    use crate::manifest::validate::tests::{HEAD, fail, parse};

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
}
