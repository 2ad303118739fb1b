//! `deploy-action check`: validate deploy.yml and print a short summary (project, environments with
//! their hosts, units with their kinds); `--json` prints the same as one JSON object. Errors exit 2.
//! Stays out of: git, hosts, anything beyond reading the manifest.

use crate::context::Ctx;
use crate::error::Result;
use crate::manifest::Manifest;
use serde_json::json;

pub fn run(ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    if ctx.report.json() {
        ctx.report.json_document(&summary_json(&m));
    } else {
        ctx.report.info(&summary_text(&m));
    }
    Ok(())
}

/// The summary as JSON: `{ok, manifest, project, environments: [{name, hosts}], units: [{name, kind}]}`.
pub fn summary_json(m: &Manifest) -> serde_json::Value {
    json!({
        "ok": true,
        "manifest": m.source.path.display().to_string(),
        "project": m.project,
        "environments": m.environments.values().map(|e| json!({
            "name": e.name,
            "hosts": e.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "units": m.units().into_iter().map(|(name, kind)| json!({
            "name": name,
            "kind": kind,
        })).collect::<Vec<_>>(),
    })
}

/// The summary as text, aligned in columns.
pub fn summary_text(m: &Manifest) -> String {
    let mut out = format!(
        "{}: ok (project {})\nenvironments:{}\n",
        m.source.path.display(),
        m.project,
        if m.environments.is_empty() {
            " (none)"
        } else {
            ""
        }
    );
    let width = m
        .environments
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0);
    for e in m.environments.values() {
        let hosts = if e.hosts.is_empty() {
            "(no hosts)".to_string()
        } else {
            e.hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("  {:width$}  {hosts}\n", e.name));
    }
    let units = m.units();
    if units.is_empty() {
        out.push_str("units: (none)");
    } else {
        out.push_str("units:\n");
        let width = units
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, kind) in units {
            let kind = match kind {
                crate::manifest::UnitKind::Service => "service",
                crate::manifest::UnitKind::Site => "site",
                crate::manifest::UnitKind::Migrations => "migrations",
            };
            out.push_str(&format!("  {name:width$}  {kind}\n"));
        }
    }
    out.trim_end().to_string()
}
