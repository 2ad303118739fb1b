//! Stage composition: the list of stage planners `plan` runs, in order. Pure.
//!
//! Each planner is a plain function from [`PlanInput`] to steps. Adding a stage is one line in
//! [`STAGES`]. The deploy stages (`up`, `pages`, `migrate`) plan only with an environment.

use super::{Action, Plan, Step, Target};
use crate::changes::Affected;
use crate::cmd::Cmd;
use crate::manifest::{Environment, Manifest};

/// Everything a stage planner may look at.
pub struct PlanInput<'a> {
    pub manifest: &'a Manifest,
    /// The environment (`--env`), when the run names one.
    pub env: Option<&'a Environment>,
    pub affected: &'a Affected,
    /// The working directory of local commands (the directory holding deploy.yml); `None` means the
    /// current directory.
    pub root: Option<String>,
}

/// A stage planner.
pub type StagePlanner = fn(&PlanInput) -> Vec<Step>;

/// The stages `plan` shows, in the order they run.
pub const STAGES: &[(&str, StagePlanner)] = &[
    ("build", super::build::plan),
    ("test", super::test::plan),
    ("up", up_placeholder),
    ("pages", super::pages::plan),
    ("migrate", super::migrate::plan),
];

/// Every stage's steps, in stage order.
pub fn plan_all(input: &PlanInput) -> Plan {
    Plan {
        steps: STAGES
            .iter()
            .flat_map(|(_, planner)| planner(input))
            .collect(),
    }
}

/// What `up` will run for each affected service on each host of the environment: a placeholder until
/// the `up` stage lands with its real plan (lock, release record, health gate, rollback).
pub fn up_placeholder(input: &PlanInput) -> Vec<Step> {
    let Some(env) = input.env else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for unit in &input.affected.units {
        let Some(service) = input.manifest.services.get(unit) else {
            continue;
        };
        for host in &env.hosts {
            let mut cmd = Cmd::new("docker")
                .arg("compose")
                .arg("-p")
                .arg(&env.compose_project);
            for f in &env.compose_files {
                cmd = cmd.arg("-f").arg(f);
            }
            let cmd = cmd
                .args(["up", "-d", "--no-deps"])
                .arg(&service.compose_service)
                .cwd(&env.dir);
            steps.push(Step {
                id: format!("up:{unit}@{}", host.label()),
                stage: "up".into(),
                unit: Some(unit.clone()),
                target: Target::Host(host.clone()),
                action: Action::Run { cmd },
                why: format!(
                    "restart only `{}` with the new image",
                    service.compose_service
                ),
                origin: Some(service.span),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{Affected, Reason};

    fn affected(units: &[&str]) -> Affected {
        Affected {
            units: units.iter().map(|u| u.to_string()).collect(),
            base: None,
            head: "0123456789abcdef0123456789abcdef01234567".into(),
            reason: Reason::All,
            changed_files: 0,
        }
    }

    #[test]
    fn stages_compose_in_order_with_up_per_host() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api", "web", "migrations"]);
        let input = PlanInput {
            manifest: &m,
            env: m.environments.get("staging"),
            affected: &a,
            root: None,
        };
        let ids: Vec<String> = plan_all(&input)
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(
            ids,
            vec![
                "build:api",
                "build:web",
                "test:api",
                "up:api@local",
                "up:api@deploy@staging.example.com:22",
                "pages:web:build",
                "pages:web",
                "migrate:migrations",
            ]
        );
        let up = &plan_all(&input).steps[3];
        assert_eq!(
            up.describe(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml up -d --no-deps api"
        );
    }

    #[test]
    fn steps_serialize_with_target_and_action_kind() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api"]);
        let input = PlanInput {
            manifest: &m,
            env: m.environments.get("staging"),
            affected: &a,
            root: None,
        };
        let v = serde_json::to_value(plan_all(&input).steps).unwrap();
        assert_eq!(v[0]["target"], "local");
        assert_eq!(v[0]["action"]["kind"], "run");
        assert_eq!(
            v[0]["action"]["cmd"],
            "docker build -t shop/api:0123456789abcdef0123456789abcdef01234567 -f services/api/Dockerfile services/api"
        );
        assert_eq!(
            v[3]["target"]["host"],
            "ssh://deploy@staging.example.com:22"
        );
        assert!(v[0].get("origin").is_none(), "spans stay out of the JSON");
    }

    #[test]
    fn without_an_environment_there_are_no_deploy_stages() {
        let m = crate::changes::tests::sample();
        let a = affected(&["api", "web", "migrations"]);
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: None,
        };
        let stages: Vec<String> = plan_all(&input)
            .steps
            .iter()
            .map(|s| s.stage.clone())
            .collect();
        assert_eq!(stages, ["build", "build", "test"]);
    }
}
