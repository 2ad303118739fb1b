//! Stage composition: the list of stage planners `plan` runs, in order. Pure.
//!
//! Each planner is a plain function from [`PlanInput`] to steps. Adding a stage is one line in
//! [`STAGES`]. The deploy stages (`up`, `pages`, `migrate`) plan only with an environment.

use super::up::{HostState, UpHosts};
use super::{Plan, Step};
use crate::changes::Affected;
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
    plan_all_with(input, None)
}

/// What `up` does for the affected services, planned from the manifest alone (every host
/// [`HostState::unknown`]). `plan` reads the hosts and uses [`plan_all_with`].
pub fn up(input: &PlanInput) -> Vec<Step> {
    let Some(env) = input.env else {
        return Vec::new();
    };
    let units = &input.affected.units;
    let up = UpHosts::from_manifest(input.manifest, env, units, &input.affected.head);
    up_with(input, &up)
}

/// Every stage's steps, with `up`'s planned from the state its hosts are in (read by the caller,
/// the same inspection `up` makes).
pub fn plan_all_with(input: &PlanInput, up_hosts: Option<&UpHosts>) -> Plan {
    Plan {
        steps: STAGES
            .iter()
            .flat_map(|(name, planner)| match (*name, up_hosts) {
                ("up", Some(u)) => up_with(input, u),
                _ => planner(input),
            })
            .collect(),
    }
}

/// The environment lock on every host, then each host's whole run as
/// [`super::up::host_plan`] plans it: the steps `up` walks, with the same ids. A host whose state
/// is unknown (or refused) is planned from the manifest alone.
fn up_with(input: &PlanInput, up: &UpHosts) -> Vec<Step> {
    let Some(env) = input.env else {
        return Vec::new();
    };
    if up.input.services.is_empty() {
        return Vec::new();
    }
    let mut steps = super::up::lock_steps(env, up.lock_wait);
    let unknown = HostState::unknown();
    for (host, state) in &up.hosts {
        let st = state.as_ref().unwrap_or(&unknown);
        let plan = super::up::host_plan(&up.input, input.manifest, env, host, st)
            .or_else(|_| super::up::host_plan(&up.input, input.manifest, env, host, &unknown));
        steps.extend(plan.map(|p| p.steps).unwrap_or_default());
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
                "up:lock@deploy@staging.example.com:22",
                "up:files@local",
                "up:record@local",
                "up:compose-up@local",
                "up:gate@local",
                "up:rollback@local",
                "up:finish@local",
                "up:ship:api@deploy@staging.example.com:22",
                "up:files@deploy@staging.example.com:22",
                "up:record@deploy@staging.example.com:22",
                "up:compose-up@deploy@staging.example.com:22",
                "up:gate@deploy@staging.example.com:22",
                "up:rollback@deploy@staging.example.com:22",
                "up:finish@deploy@staging.example.com:22",
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
        // The image built at this commit is pinned (and shipped to the host that is not local).
        let up = &plan_all(&input).steps[7];
        assert!(
            plan_all(&input).steps[3]
                .describe()
                .starts_with("take the staging lock: mkdir /srv/shop/.deploy-action/lock")
        );
        assert_eq!(
            up.describe(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml -f .deploy-action/override.yml up -d --no-deps api"
        );
        assert!(
            plan_all(&input).steps[5]
                .describe()
                .ends_with("pinning api=shop/api:0123456789abcdef0123456789abcdef01234567")
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
        let up = "cd /srv/shop && docker compose -p shop -f compose.yml -f compose.staging.yml up -d --no-deps api";
        // Pulled after the files are installed, before the record and `compose up`.
        assert!(at(pull) + 2 == at(up), "{lines:#?}");
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
        assert_eq!(v[4]["action"]["kind"], "compose");
        assert_eq!(v[4]["action"]["op"], "files");
        assert_eq!(v[4]["action"]["uploads"][0]["local"], "compose.yml");
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
