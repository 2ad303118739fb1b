//! A site: a static site published to Cloudflare Pages, with its project, directory, build
//! command, paths, production branch and the variables it may read.

use super::obj::Obj;
use super::values::{checked, globs, repo_path};
use super::{Result, err_help};
use crate::manifest::raw::Node;
use crate::manifest::{Site, grammar, keys};

pub(super) fn site(name: &str, k: &Node, v: &Node) -> Result<Site> {
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
