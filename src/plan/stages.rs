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
    ("up", up),
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

/// What `up` does on each host of the environment for the affected services: take the lock,
/// upload the compose files, pull each registry image (a service the tool does not build, as its
/// `pull:` says), `compose up --no-deps` each service, run its health gate, record the
/// release and release the lock. (Images are built in the `build` stage; the runner ships them and
/// rolls back a service that fails its gate.)
pub fn up(input: &PlanInput) -> Vec<Step> {
    let Some(env) = input.env else {
        return Vec::new();
    };
    let services: Vec<(&String, &crate::manifest::Service)> = input
        .affected
        .units
        .iter()
        .filter_map(|u| input.manifest.services.get(u).map(|s| (u, s)))
        .collect();
    if services.is_empty() {
        return Vec::new();
    }
    let state = crate::state::StatePaths::new(&env.dir);
    let dir = env.dir.trim_end_matches('/');
    let mut steps = Vec::new();
    for host in &env.hosts {
        let at = host.label();
        let step = |id: String, unit: Option<&String>, action: Action, why: String| Step {
            id,
            stage: "up".into(),
            unit: unit.cloned(),
            target: Target::Host(host.clone()),
            action,
            why,
            guard: Default::default(),
            origin: unit
                .and_then(|u| input.manifest.services.get(u))
                .map(|s| s.span)
                .or(Some(env.span)),
        };
        steps.push(step(
            format!("up:lock@{at}"),
            None,
            Action::Run {
                cmd: Cmd::new("mkdir").arg(state.lock_dir()),
            },
            "take the environment lock (exit 4 while another run holds it)".into(),
        ));
        for f in &env.compose_files {
            steps.push(step(
                format!("up:upload:{f}@{at}"),
                None,
                Action::Upload {
                    local: f.clone(),
                    remote: format!("{dir}/{f}"),
                    mode: 0o644,
                },
                "the compose file from this commit (and the env files it names)".into(),
            ));
        }
        for (unit, service) in &services {
            let mut compose = Cmd::new("docker")
                .arg("compose")
                .arg("-p")
                .arg(&env.compose_project);
            for f in &env.compose_files {
                compose = compose.arg("-f").arg(f);
            }
            // An image the tool does not build comes from a registry: pulled first, per `pull:`.
            let built = matches!(service.build, Some(crate::manifest::Build::Docker { .. }));
            let when = super::up::pull_when(service.pull, None, false, None)
                .filter(|w| !built && *w != super::up::PullWhen::Never);
            if let Some(when) = when {
                steps.push(step(
                    format!("up:{unit}:pull@{at}"),
                    Some(unit),
                    Action::Run {
                        cmd: compose
                            .clone()
                            .arg("pull")
                            .arg(&service.compose_service)
                            .cwd(&env.dir),
                    },
                    super::up::pull_why(when).into(),
                ));
            }
            let cmd = compose
                .args(["up", "-d", "--no-deps"])
                .arg(&service.compose_service)
                .cwd(&env.dir);
            steps.push(step(
                format!("up:{unit}@{at}"),
                Some(unit),
                Action::Run { cmd },
                format!(
                    "restart only `{}` with the new image; the others keep their containers",
                    service.compose_service
                ),
            ));
            if let Some(h) = service
                .health
                .as_ref()
                .and_then(|h| h.url.as_ref().map(|u| (h, u)))
            {
                let (h, url) = h;
                steps.push(step(
                    format!("up:{unit}:health@{at}"),
                    Some(unit),
                    Action::HttpCheck {
                        url: url.clone(),
                        expect_status: h.expect_status,
                        contains: h.contains.clone(),
                        timeout_secs: h.timeout.as_secs(),
                    },
                    "health gate, from the host; a failing service goes back to its previous image"
                        .into(),
                ));
            }
        }
        steps.push(step(
            format!("up:release@{at}"),
            None,
            Action::Upload {
                local: "(release record)".into(),
                remote: format!("{}/<n>.json", state.releases_dir()),
                mode: 0o644,
            },
            "record the release, then release the lock".into(),
        ));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::tests::affected;

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
                "up:lock@local",
                "up:upload:compose.yml@local",
                "up:upload:compose.staging.yml@local",
                "up:api@local",
                "up:release@local",
                "up:lock@deploy@staging.example.com:22",
                "up:upload:compose.yml@deploy@staging.example.com:22",
                "up:upload:compose.staging.yml@deploy@staging.example.com:22",
                "up:api@deploy@staging.example.com:22",
                "up:release@deploy@staging.example.com:22",
                "pages:rules",
                "pages:web:build",
                "pages:web:walk",
                "pages:git",
                "pages:start",
                "pages:web:check-missing",
                "pages:web:upload",
                "pages:web:upsert-hashes",
                "pages:web:deploy",
                "pages:web:wait",
                "pages:record",
                "migrate:migrations:apply",
            ]
        );
        let up = &plan_all(&input).steps[6];
        assert_eq!(
            plan_all(&input).steps[3].describe(),
            "mkdir /srv/shop/.deploy-action/lock"
        );
        assert_eq!(
            up.describe(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml up -d --no-deps api"
        );
    }

    #[test]
    fn a_registry_image_is_pulled_before_its_service_is_recreated() {
        let mut m = crate::changes::tests::sample();
        let api = m.services.get_mut("api").unwrap();
        api.build = None;
        let a = affected(&["api"]);
        let steps = |m: &Manifest| -> Vec<String> {
            let input = PlanInput {
                manifest: m,
                env: m.environments.get("staging"),
                affected: &a,
                root: None,
            };
            plan_all(&input)
                .steps
                .iter()
                .filter(|s| s.target.label() == "local")
                .map(|s| s.describe())
                .collect()
        };
        let lines = steps(&m);
        let pull =
            "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml pull api";
        let at = |l: &str| lines.iter().position(|x| x == l).unwrap();
        assert!(
            at(pull) + 1
                == at(
                    "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml up -d --no-deps api"
                ),
            "{lines:#?}"
        );
        m.services.get_mut("api").unwrap().pull = crate::manifest::Pull::Never;
        assert!(!steps(&m).iter().any(|l| l.contains(" pull ")));
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
        let last = v.as_array().unwrap().len() - 1;
        assert_eq!(
            v[last]["target"]["host"],
            "ssh://deploy@staging.example.com:22"
        );
        assert_eq!(v[4]["action"]["kind"], "upload");
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
