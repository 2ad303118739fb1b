//! The outcome of a multi-host run (`up`, `promote`, `rollback`) as people and machines read it:
//! the host × service matrix for the console and the job summary, the outputs (`release`,
//! `services`) and the `--json` document, whose `steps` are the steps the run walked
//! (`{id, walked, describe}`: a dry run's list is the real run's, `walked` aside).
//!
//! Pure apart from handing them to the [`Report`]; stays out of deploying.

use super::HostResult;
use crate::engine::runner::Trace;
use crate::manifest::Host;
use crate::report::{Report, Summary};

/// Prints the matrix (console and job summary) and writes the outputs and the `--json` document.
pub fn summarize(
    report: &Report,
    env: &str,
    hosts: &[Host],
    results: &[HostResult],
    steps: &Trace,
) {
    let (summary, outputs, mut json) = summary_of(env, hosts, results);
    json["steps"] = serde_json::to_value(&steps.0).unwrap_or_default();
    report.summary(&summary);
    if let Some(n) = &outputs.release {
        report.output("release", n);
    }
    report.output("services", &outputs.services);
    if report.json() {
        report.json_document(&json);
    }
}

/// The outputs of `up`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpOutputs {
    /// `release`: the highest release number a host got, if any.
    pub release: Option<String>,
    /// `services`: JSON array of `{host, service, old, new, health, result}`.
    pub services: String,
}

/// The per host × service matrix, the outputs (`release` when a host got one, `services`) and the
/// `--json` document. Every host of `hosts` has a row: its services, its error (unreachable, lock
/// held, cancelled), or `not run` for a host after the one that stopped the run.
pub fn summary_of(
    env: &str,
    hosts: &[Host],
    results: &[HostResult],
) -> (Summary, UpOutputs, serde_json::Value) {
    let mut s = Summary::new(
        format!("up {env}"),
        &[
            "host",
            "service",
            "old image",
            "new image",
            "health",
            "duration",
            "result",
        ],
    );
    for r in results {
        if r.services.is_empty() {
            s.row([
                r.host.clone(),
                "-".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                r.error.clone().unwrap_or_else(|| "nothing deployed".into()),
            ]);
        }
        for sv in &r.services {
            s.row([
                r.host.clone(),
                sv.service.clone(),
                sv.old_image.clone(),
                sv.new_image.clone(),
                sv.health.clone(),
                format!("{:.1}s", sv.duration_secs),
                sv.result.clone(),
            ]);
        }
    }
    for h in hosts.iter().skip(results.len()) {
        s.row([
            h.label(),
            "-".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "not run".into(),
        ]);
    }
    for r in results {
        if let Some(n) = r.release {
            s.note(format!(
                "{}: release {n}{}",
                r.host,
                if r.rolled_back { " (rolled back)" } else { "" }
            ));
        }
        if let (Some(e), false) = (&r.error, r.services.is_empty()) {
            s.note(format!("{}: {e}", r.host));
        }
        for sv in r.services.iter().filter(|sv| !sv.rollback.is_empty()) {
            let exact = if sv.rollback_exact.is_empty() {
                String::new()
            } else {
                format!(
                    " (this host's exact previous image: `{}`)",
                    sv.rollback_exact
                )
            };
            s.note(format!(
                "roll back {} on {} by hand: `{}`{exact}",
                sv.service, r.host, sv.rollback
            ));
        }
    }
    let release = results.iter().filter_map(|r| r.release).max();
    let services: serde_json::Value = results
        .iter()
        .flat_map(|r| r.services.iter().map(move |sv| (r, sv)))
        .map(|(r, sv)| {
            serde_json::json!({"host": r.host, "service": sv.service, "old": sv.old_image,
                "new": sv.new_image, "health": sv.health, "result": sv.result})
        })
        .collect();
    let outputs = UpOutputs {
        release: release.map(|n| n.to_string()),
        services: services.to_string(),
    };
    let json = serde_json::json!({
        "env": env, "release": release, "services": services,
        "hosts": results,
    });
    (s, outputs, json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::ServiceResult;

    fn host(port: u16) -> Host {
        Host::Ssh {
            user: "deploy".into(),
            host: "10.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn a_later_host_failing_keeps_the_matrix_outputs_and_the_first_hosts_release() {
        let hosts = [host(1), host(2), host(3)];
        let first = HostResult {
            host: hosts[0].label(),
            release: Some(7),
            ok: true,
            rolled_back: false,
            services: vec![ServiceResult {
                service: "web".into(),
                old_image: "shop/web:1".into(),
                new_image: "shop/web:2".into(),
                health: "healthy".into(),
                duration_secs: 1.5,
                result: "deployed".into(),
                rollback: "deploy-action rollback --env production --only web".into(),
                rollback_exact: "deploy-action up --env production --only web --image web=shop/web:shop.web-release-7-before --yes".into(),
            }],
            error: None,
            record: None,
        };
        let second = HostResult::without_release(
            &hosts[1],
            "failed: deploy@10.0.0.1:2: cannot connect: connection refused",
        );
        let (s, outputs, json) = summary_of("production", &hosts, &[first, second]);
        let md = s.to_markdown();
        assert!(
            md.contains(
                "| deploy@10.0.0.1:1 | web | shop/web:1 | shop/web:2 | healthy | 1.5s | deployed |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| deploy@10.0.0.1:2 | - |  |  |  |  | failed: deploy@10.0.0.1:2: cannot connect"
            ),
            "{md}"
        );
        assert!(
            md.contains("| deploy@10.0.0.1:3 | - |  |  |  |  | not run |"),
            "{md}"
        );
        assert!(
            md.contains("`deploy-action rollback --env production --only web`"),
            "{md}"
        );
        assert!(
            md.contains("--image web=shop/web:shop.web-release-7-before"),
            "{md}"
        );
        assert_eq!(outputs.release.as_deref(), Some("7"));
        assert!(
            outputs.services.contains("\"service\":\"web\""),
            "{outputs:?}"
        );
        assert_eq!(json["hosts"].as_array().unwrap().len(), 2);
        assert!(
            json["hosts"][1]["error"]
                .as_str()
                .unwrap()
                .contains("cannot connect")
        );
    }
}
