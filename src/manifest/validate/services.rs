//! A service: a compose service deployed to an environment's hosts, with the paths that mark it
//! changed, its build (a command, or a Docker build of a context into an image), test command,
//! health check, secrets, pull policy and the variables it may read.

use super::obj::Obj;
use super::values::{
    checked, duration, env_names, globs, int, repo_path, string, word, wrong_type,
};
use super::{Result, err_help};
use crate::manifest::raw::{Kind, Node};
use crate::manifest::{Build, Health, Pull, Service, grammar, keys};
use std::time::Duration;

pub(super) fn service(name: &str, k: &Node, v: &Node) -> Result<Service> {
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
        Some((hk, hv)) => Some(health(name, hk, hv)?),
    };
    let compose_service = compose_service(&o, name, k)?;
    let pull = pull(&o)?;
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

/// `health:` of service `name`: an optional http(s) URL, a timeout (60s), the expected status
/// (200), text the body contains, and the window the service must stay up.
fn health(name: &str, hk: &Node, hv: &Node) -> Result<Health> {
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
    Ok(Health {
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

/// `compose_service:`, by default the unit's name, which must then be a valid compose service name.
fn compose_service(o: &Obj, name: &str, k: &Node) -> Result<String> {
    if let Some(c) = checked(
        o,
        "compose_service",
        grammar::compose_service,
        "the name of the service in the compose file, e.g. compose_service: api",
    )? {
        return Ok(c);
    }
    grammar::compose_service(name).map_err(|why| {
        err_help(
            k.span,
            why,
            "add `compose_service:` with the compose file's name for it",
        )
    })?;
    Ok(name.to_string())
}

fn pull(o: &Obj) -> Result<Pull> {
    Ok(match o.get("pull") {
        Some((pk, pv)) => match word(pk, pv, keys::PULLS)? {
            "missing" => Pull::Missing,
            "never" => Pull::Never,
            _ => Pull::Always,
        },
        None => Pull::Always,
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
