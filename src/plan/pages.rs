//! The `pages` stage plan: for each affected site, its build command (which `pages` runs first
//! unless `--no-build`), then the upload of its directory to its Cloudflare Pages project. Pure: no
//! walking of the directory, no API call; which files are uploaded is decided at run time by
//! asking Cloudflare which hashes it lacks.
//!
//! Only with an environment: `pages` is a deploy stage and needs `--env`.

use super::stages::PlanInput;
use super::{Action, Step, Target};
use crate::cmd::Cmd;

/// The pages steps of the affected sites, in manifest order.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    if input.env.is_none() {
        return Vec::new();
    }
    let mut steps = Vec::new();
    for unit in &input.affected.units {
        let Some(site) = input.manifest.sites.get(unit) else {
            continue;
        };
        if let Some(build) = &site.build {
            let cmd = Cmd::shell(build);
            let cmd = match &input.root {
                Some(root) => cmd.cwd(root),
                None => cmd,
            };
            steps.push(Step {
                id: format!("pages:{unit}:build"),
                stage: "pages".into(),
                unit: Some(unit.clone()),
                target: Target::Local,
                action: Action::Run { cmd },
                why: format!(
                    "`pages` builds the site into {} first (skip with --no-build)",
                    site.dir
                ),
                guard: Default::default(),
                origin: Some(site.span),
            });
        }
        let dir = match &input.root {
            Some(root) => format!("{}/{}", root.trim_end_matches('/'), site.dir),
            None => site.dir.clone(),
        };
        steps.push(Step {
            id: format!("pages:{unit}"),
            stage: "pages".into(),
            unit: Some(unit.clone()),
            target: Target::Local,
            action: Action::PagesUpload {
                dir,
                project: site.project.clone(),
                production_branch: site.production_branch.clone(),
            },
            why: "direct upload, byte-compatible with wrangler: files are hashed, and only the hashes Cloudflare lacks are sent".into(),
            guard: Default::default(),
            origin: Some(site.span),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::tests::affected;

    #[test]
    fn a_site_is_built_then_uploaded_to_its_project() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api", "web", "migrations"]);
        let input = PlanInput {
            manifest: &m,
            env: m.environments.get("staging"),
            affected: &a,
            root: Some("/repo".into()),
        };
        let steps = plan(&input);
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["pages:web:build", "pages:web"]);
        assert!(
            steps
                .iter()
                .all(|s| s.stage == "pages" && s.target == Target::Local)
        );
        assert_eq!(
            steps[0].describe(),
            "cd /repo && sh -c 'npm ci && npm run build'"
        );
        assert_eq!(
            steps[1].describe(),
            "upload /repo/clients/web/dist to Cloudflare Pages project shop-web (only files it lacks); production branch main, other branches get a preview"
        );
        let v = serde_json::to_value(&steps[1].action).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "pages_upload", "dir": "/repo/clients/web/dist",
                "project": "shop-web", "production_branch": "main"})
        );
    }

    #[test]
    fn no_environment_no_pages() {
        let m = crate::changes::tests::sample();
        let a = affected(&["web"]);
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: None,
        };
        assert!(plan(&input).is_empty());
    }
}
