//! What a `pages` run tells people: the summary table of the sites deployed, the step outputs
//! (`deployment-url`, `alias-url`, `deployment-id`, `pages`), the `--json` document with the
//! run's steps, the text an approver reads, and the steps a dry run walks.
//!
//! Printing only: the steps decide nothing here.

use super::local::Walked;
use super::sites::{GitMeta, SiteJob};
use crate::context::Ctx;
use crate::engine::runner::{Observe, Trace};
use crate::guard::ChangePlan;
use crate::plan::{Action, Step};
use crate::report::Summary;
use crate::state::PagesState;

/// The summary table of the sites deployed, one row each.
pub fn summary(rows: &[Vec<String>]) -> Summary {
    let mut s = Summary::new(
        "Cloudflare Pages",
        &[
            "site",
            "project",
            "environment",
            "files",
            "uploaded",
            "url",
            "alias",
        ],
    );
    for r in rows {
        s.row(r.iter().cloned());
    }
    s
}

/// Every site's deployment as one JSON object: `{"<site>": {project, deployment_id, url, …}}`.
pub fn deployments(results: &[(String, PagesState)]) -> serde_json::Value {
    let doc: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(n, s)| {
            let v = serde_json::json!({
                "project": s.project,
                "deployment_id": s.deployment_id,
                "url": s.url,
                "alias_url": s.alias_url,
                "environment": s.environment,
                "branch": s.branch,
            });
            (n.clone(), v)
        })
        .collect();
    serde_json::Value::Object(doc)
}

/// `deployment-url`, `alias-url`, `deployment-id` (the last site's; contract names) and `pages`,
/// every site's deployment as one JSON object.
pub fn outputs(ctx: &Ctx, results: &[(String, PagesState)]) {
    if let Some((_, last)) = results.last() {
        ctx.report.output("deployment-url", &last.url);
        ctx.report
            .output("alias-url", last.alias_url.as_deref().unwrap_or(""));
        ctx.report.output("deployment-id", &last.deployment_id);
    }
    ctx.report
        .output("pages", &deployments(results).to_string());
}

/// The `--json` document: `{"pages": {…}, "steps": [{"id", "walked", "describe"}]}`, the steps
/// being the trace of the run (a dry run's lists the same ids as the real run's).
pub fn json_document(results: &[(String, PagesState)], trace: &Trace) -> serde_json::Value {
    serde_json::json!({ "pages": deployments(results), "steps": trace })
}

/// What a Pages run changes, as the text an approver reads: per site the project, the branch
/// (production or preview), and every file with its hash.
pub fn change_plan(env: &str, sites: &[(&SiteJob, &Walked)], git: &GitMeta) -> ChangePlan {
    let mut text = format!(
        "pages on {env}: branch {}, commit {}\n",
        git.branch.as_deref().unwrap_or("?"),
        git.commit_hash.as_deref().unwrap_or("?")
    );
    for (job, w) in sites {
        let site = &job.plan;
        let kind = match &site.production_branch {
            Some(p) if git.branch.as_deref() == Some(p.as_str()) => "production",
            Some(_) => "preview",
            None => "production branch of the project",
        };
        text.push_str(&format!(
            "site {} -> Pages project {} ({kind}), {} files:\n",
            site.name,
            site.project,
            w.site.assets.len()
        ));
        for a in &w.site.assets {
            text.push_str(&format!("  /{} {}\n", a.rel, a.hash));
        }
        for (name, bytes) in w.special.parts() {
            text.push_str(&format!(
                "  {name}: blake3 {}\n",
                blake3::hash(bytes).to_hex()
            ));
        }
    }
    ChangePlan::new("pages", env, text)
}

/// A dry run's observer: each step, as it is walked, with its id.
pub struct DryRunSteps<'a>(pub &'a Ctx);

/// The line a dry run prints for `step`.
pub fn dry_run_line(step: &Step, condition: Option<&str>) -> String {
    let verb = match step.action {
        Action::Run { .. } => "run: ",
        _ => "",
    };
    let when = condition.map(|c| format!(" ({c})")).unwrap_or_default();
    format!("dry run: {}: {verb}{}{when}", step.id, step.describe())
}

impl Observe for DryRunSteps<'_> {
    fn starting(&mut self, step: &Step, condition: Option<&str>) {
        self.0.report.info(&dry_run_line(step, condition));
    }
    fn done(&mut self, _: &Step) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runner::{TraceEntry, Walked as W};
    use crate::plan::pages::SitePlan;

    fn job(production_branch: Option<&str>) -> SiteJob {
        SiteJob {
            plan: SitePlan {
                name: "web".into(),
                project: "shop-web".into(),
                dir: "site".into(),
                build: None,
                production_branch: production_branch.map(str::to_string),
                origin: None,
            },
            path: "site".into(),
        }
    }

    fn git(branch: &str) -> GitMeta {
        GitMeta {
            branch: Some(branch.into()),
            commit_hash: Some("0123abcd".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_approved_text_names_every_file_its_hash_and_the_special_files() {
        let w = super::super::local::tests::walked(&[("index.html", "h1", 3)]);
        let j = job(Some("main"));
        let plan = change_plan("production", &[(&j, &w)], &git("main"));
        assert_eq!(
            plan.text,
            format!(
                "pages on production: branch main, commit 0123abcd\nsite web -> Pages project shop-web (production), 1 files:\n  /index.html h1\n  _headers: blake3 {}\n",
                blake3::hash(b"/*\n  X-Frame-Options: DENY\n").to_hex()
            )
        );
        let preview = change_plan("production", &[(&j, &w)], &git("feature"));
        assert!(preview.text.contains("(preview)"));
        assert_ne!(preview.hash(), plan.hash(), "the branch is approved too");
        let mut other = w.clone();
        other.site.assets[0].hash = "h2".into();
        assert_ne!(
            change_plan("production", &[(&j, &other)], &git("main")).hash(),
            plan.hash(),
            "a changed file is a changed plan"
        );
    }

    #[test]
    fn the_json_document_carries_the_deployments_and_the_steps() {
        let state = PagesState {
            project: "shop-web".into(),
            deployment_id: "d1".into(),
            url: "https://d1.shop-web.pages.dev".into(),
            environment: "production".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let trace = Trace(vec![TraceEntry {
            id: "pages:web:walk".into(),
            walked: W::Performed,
            describe: "walk".into(),
        }]);
        let v = json_document(&[("web".into(), state)], &trace);
        assert_eq!(v["pages"]["web"]["deployment_id"], "d1");
        assert_eq!(v["pages"]["web"]["alias_url"], serde_json::Value::Null);
        assert_eq!(
            v["steps"],
            serde_json::json!([{"id": "pages:web:walk", "walked": "performed", "describe": "walk"}])
        );
        let rows = vec![vec!["web".to_string(); 7]];
        assert!(summary(&rows).to_console().contains("Cloudflare Pages"));
    }

    #[test]
    fn a_dry_run_line_names_the_step() {
        let req = crate::plan::pages::Request {
            sites: vec![SitePlan {
                build: Some(crate::cmd::Cmd::shell("make")),
                ..job(None).plan
            }],
            env: None,
            concurrency: 3,
            wait_secs: 600,
        };
        let steps = crate::plan::pages::steps(&req);
        assert_eq!(
            dry_run_line(&steps[0], None),
            "dry run: pages:web:build: run: sh -c make"
        );
        assert!(
            dry_run_line(&steps[1], Some("if x"))
                .starts_with("dry run: pages:web:walk: walk and hash site")
                && dry_run_line(&steps[1], Some("if x")).ends_with(" (if x)")
        );
    }
}
