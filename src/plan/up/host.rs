//! The planner of one compose host: from what the run asks ([`UpInput`]), the manifest and what
//! the host is now ([`HostState`], read by `deploy/compose/inspect.rs`) to the host's whole run as
//! steps — ship, interrupted, files, pull, record, up, gate, the rollback branch (guarded by the
//! gate's result), finish — plus the notes the run prints before it ([`HostPlan`]). Everything that
//! can be decided before a change is decided here: the release number, the pins, the tags, which
//! images are pulled, `--no-deps` or not (compose #12069), the upload list with modes, the
//! secrets files, the restored files.
//!
//! Pure: no I/O; unit tests build a [`HostState`] by hand.

use super::action::{
    Back, Check12069, ComposeAction, FileUpload, Files, GateCheck, Protect, PullOne,
};
pub use super::input::{DockerBuild, HostState, ShipImage, UpHosts, UpInput, docker_builds};
use super::{
    DEFAULT_HEALTH_TIMEOUT, DEFAULT_STABLE_WINDOW, PullDecision, before_tag, current_live,
    files_dir, pull_decision, pull_when, secret_names, upload_mode,
};
pub use super::{compose_for, new_pins, up_options, uses_override};
use crate::cmd::compose::{self, Compose, ServiceConfig};
use crate::manifest::{Environment, Host, Manifest};
use crate::plan::{Action, Guard, Step, Target};
use crate::state::{ReleaseRecord, ReleaseStatus, StatePaths};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Something the run says before the host's steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Info(String),
    Warn(String),
}

/// One host's run.
#[derive(Clone, Debug)]
pub struct HostPlan {
    pub release: u64,
    pub steps: Vec<Step>,
    pub notes: Vec<Note>,
}

/// Why a host cannot be planned (exit 2: a selected service compose does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub help: String,
}

/// The environment lock, one step per host, taken in the manifest's order before any host
/// changes.
pub fn lock_steps(env: &Environment, wait: Option<Duration>) -> Vec<Step> {
    let paths = StatePaths::new(&env.dir);
    env.hosts
        .iter()
        .map(|h| Step {
            id: format!("up:lock@{}", h.label()),
            stage: "up".into(),
            unit: None,
            target: Target::Host(h.clone()),
            action: Action::Compose(ComposeAction::Lock {
                env: env.name.clone(),
                lock_dir: paths.lock_dir(),
                wait_secs: wait.map(|w| w.as_secs()),
            }),
            why: "one run at a time on the environment, every host locked first".into(),
            guard: Guard::Always,
            origin: Some(env.span),
        })
        .collect()
}

/// The release whose copy of the compose and env files a rollback restores: the newest good
/// (live or superseded) release before `n` that has one.
pub fn restore_from(records: &[ReleaseRecord], copies: &BTreeSet<u64>, n: u64) -> Option<u64> {
    records
        .iter()
        .filter(|r| {
            r.number < n
                && matches!(r.status.0, ReleaseStatus::Live | ReleaseStatus::Superseded)
                && copies.contains(&r.number)
        })
        .map(|r| r.number)
        .max()
}

/// One service's gate, from its `health:`.
pub fn gate_check(m: &Manifest, compose_service: &str) -> GateCheck {
    let health = m
        .services
        .values()
        .find(|s| s.compose_service == compose_service)
        .and_then(|s| s.health.as_ref());
    GateCheck {
        service: compose_service.to_string(),
        timeout_secs: health
            .map_or(DEFAULT_HEALTH_TIMEOUT, |h| h.timeout)
            .as_secs(),
        window_ms: health
            .and_then(|h| h.stable)
            .unwrap_or(DEFAULT_STABLE_WINDOW)
            .as_millis() as u64,
        http: health.and_then(|h| {
            h.url.as_ref().map(|url| match &h.contains {
                Some(c) => format!("GET {url} expect {} containing {c:?}", h.expect_status),
                None => format!("GET {url} expect {}", h.expect_status),
            })
        }),
    }
}

/// The refusal of a run whose selected services the resolved configuration lacks.
pub fn missing_services(
    config: &BTreeMap<String, ServiceConfig>,
    selected: &[String],
    compose_files: &[String],
) -> Option<Refusal> {
    let missing: Vec<&String> = selected
        .iter()
        .filter(|s| !config.contains_key(*s))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = config.keys().map(String::as_str).collect();
    Some(Refusal {
        message: format!(
            "compose has no service {:?} in {}",
            missing,
            compose_files.join(", ")
        ),
        help: format!("compose services: {}", names.join(", ")),
    })
}

/// Plans one host's run. Refuses (exit 2, before anything changes) a selected service that the
/// resolved configuration lacks.
pub fn host_plan(
    input: &UpInput,
    m: &Manifest,
    env: &Environment,
    host: &Host,
    st: &HostState,
) -> Result<HostPlan, Refusal> {
    let selected = &input.services;
    if let Some(r) = st
        .config
        .as_ref()
        .and_then(|c| missing_services(c, selected, &env.compose_files))
    {
        return Err(r);
    }
    let n = st.next;
    let pins = new_pins(&st.pins, selected, &input.images);
    let c = compose_for(env, st.flavor.clone(), uses_override(m, env, &pins));
    let mut p = Planner {
        host,
        env,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    p.ship(input);
    p.interrupted(st);
    p.files(input, m, n, &pins);
    p.pulls(input, m, st, &c);
    p.record(selected, st, &c, n);
    p.up(input, st, &c);
    let gate: Vec<GateCheck> = selected.iter().map(|s| gate_check(m, s)).collect();
    p.push(
        "gate",
        Action::Compose(ComposeAction::Gate { services: gate }),
        "new containers must stay up and healthy for their window",
        selected,
        Guard::Always,
    );
    p.rollback(selected, st, &c, n);
    p.push(
        "finish",
        Action::Compose(ComposeAction::Finish {
            release: n,
            superseded: current_live(&st.records).map(|r| r.number),
            keep: env.keep_releases,
        }),
        "what this release runs, recorded; old releases pruned",
        selected,
        Guard::Always,
    );
    Ok(HostPlan {
        release: n,
        steps: p.steps,
        notes: p.notes,
    })
}

/// Builds one host's steps.
struct Planner<'a> {
    host: &'a Host,
    env: &'a Environment,
    steps: Vec<Step>,
    notes: Vec<Note>,
}

impl Planner<'_> {
    /// Adds step `up:<name>@<host>`; its unit is the service when it works for exactly one.
    fn push(&mut self, name: &str, action: Action, why: &str, units: &[String], guard: Guard) {
        self.steps.push(Step {
            id: format!("up:{name}@{}", self.host.label()),
            stage: "up".into(),
            unit: (units.len() == 1).then(|| units[0].clone()),
            target: Target::Host(self.host.clone()),
            action,
            why: why.into(),
            guard,
            origin: Some(self.env.span),
        });
    }

    fn ship(&mut self, input: &UpInput) {
        for s in &input.ship {
            if s.from.is_none() && *self.host == Host::Local {
                continue;
            }
            let action = Action::Compose(ComposeAction::Ship {
                service: s.service.clone(),
                image: s.image.clone(),
                id: s.id.clone(),
                from: s.from.as_ref().map_or_else(|| "local".into(), Host::label),
            });
            let name = format!("ship:{}", s.service);
            self.push(
                &name,
                action,
                "the image is not built on the host",
                std::slice::from_ref(&s.service),
                Guard::Always,
            );
        }
    }

    fn interrupted(&mut self, st: &HostState) {
        let releases: Vec<u64> = st
            .records
            .iter()
            .filter(|r| r.status.0 == ReleaseStatus::InProgress)
            .map(|r| r.number)
            .collect();
        if !releases.is_empty() {
            let action = Action::Compose(ComposeAction::Interrupted { releases });
            self.push(
                "interrupted",
                action,
                "this run holds the lock: nobody is deploying them",
                &[],
                Guard::Always,
            );
        }
    }

    fn files(&mut self, input: &UpInput, m: &Manifest, n: u64, pins: &BTreeMap<String, String>) {
        let env = self.env;
        let wanted = secret_names(m, env);
        let (uploads, secrets, dropped) = match input.files_from {
            Some(_) => (Vec::new(), Vec::new(), Vec::new()),
            None => (
                input
                    .uploads
                    .iter()
                    .map(|(local, remote)| FileUpload {
                        local: local.clone(),
                        remote: remote.clone(),
                        mode: upload_mode(&env.compose_files, local),
                    })
                    .collect(),
                input
                    .secrets
                    .iter()
                    .filter(|s| wanted.contains_key(*s))
                    .cloned()
                    .collect(),
                m.services
                    .values()
                    .map(|s| s.compose_service.clone())
                    .filter(|cs| !wanted.contains_key(cs))
                    .collect(),
            ),
        };
        let files = Files {
            release: n,
            dir: env.dir.trim_end_matches('/').to_string(),
            copy_dir: match n {
                0 => files_dir(&env.dir, 0).trim_end_matches('0').to_string() + "<n>",
                n => files_dir(&env.dir, n),
            },
            uploads,
            restore_from: input.files_from,
            secrets,
            dropped,
            pins: pins.clone(),
        };
        let why = match input.files_from {
            Some(_) => "the configuration goes back with the images",
            None => "compose and env files from this commit, kept per release for rollbacks",
        };
        self.push(
            "files",
            Action::Compose(ComposeAction::Files(files)),
            why,
            &[],
            Guard::Always,
        );
    }

    fn pulls(&mut self, input: &UpInput, m: &Manifest, st: &HostState, c: &Compose) {
        let mut pulls = Vec::new();
        for svc in &input.services {
            let policy = m
                .services
                .values()
                .find(|s| s.compose_service == *svc)
                .map(|s| s.pull)
                .unwrap_or_default();
            let pinned = input.images.get(svc).map(String::as_str);
            let user = input.user_images.contains(svc);
            let image = match &st.config {
                // No image: compose builds it on the host; nothing to pull.
                Some(config) => match config.get(svc).and_then(|c| c.image.clone()) {
                    Some(i) => Some(i),
                    None => continue,
                },
                None => None,
            };
            let Some(when) = pull_when(policy, pinned, user, image.as_deref()) else {
                continue;
            };
            let Some(image) = image else {
                // Not reached: the policy alone.
                if when != super::PullWhen::Never {
                    pulls.push(PullOne {
                        service: svc.clone(),
                        image: String::new(),
                        cmd: c.pull(std::slice::from_ref(svc)),
                    });
                }
                continue;
            };
            let local = st.images.get(&image).cloned().flatten();
            match pull_decision(when, &image, local.as_ref()) {
                PullDecision::Pull => pulls.push(PullOne {
                    service: svc.clone(),
                    cmd: c.pull(std::slice::from_ref(svc)),
                    image,
                }),
                PullDecision::Keep(why) => self.notes.push(Note::Info(format!(
                    "{svc}: {image} not pulled: {why}{}",
                    local
                        .as_ref()
                        .map(|i| format!("; the host's image {} is used", short(&i.id)))
                        .unwrap_or_default()
                ))),
            }
        }
        if !pulls.is_empty() {
            let units: Vec<String> = pulls.iter().map(|p| p.service.clone()).collect();
            let why = "registry images as their `pull:` says, before any container changes";
            self.push(
                "pull",
                Action::Compose(ComposeAction::Pull { pulls }),
                why,
                &units,
                Guard::Always,
            );
        }
    }

    fn record(&mut self, selected: &[String], st: &HostState, c: &Compose, n: u64) {
        let protect = selected
            .iter()
            .filter_map(|svc| {
                let cur = st.before.get(svc)?;
                Some(Protect {
                    service: svc.clone(),
                    image_id: cur.image_id.clone(),
                    tag: before_tag(&cur.image, &c.project, svc, n),
                })
            })
            .collect();
        let action = Action::Compose(ComposeAction::Record {
            release: n,
            protect,
        });
        self.push(
            "record",
            action,
            "the state before the change, and what rollback needs",
            &[],
            Guard::Always,
        );
    }

    fn up(&mut self, input: &UpInput, st: &HostState, c: &Compose) {
        let selected = &input.services;
        let flavor = &st.flavor;
        let config = st.config.clone().unwrap_or_default();
        if !flavor.is_v1() {
            let dependents = compose::reverse_dependents(&config, selected);
            let running: Vec<&String> = dependents
                .iter()
                .filter(|d| st.before.contains_key(*d))
                .collect();
            if !running.is_empty() {
                self.notes.push(Note::Warn(format!(
                    "{:?} depend on {:?} (depends_on); compose may recreate them too (compose #10308). Set `depends_on: {{svc: {{restart: false}}}}` to prevent it.",
                    running, selected
                )));
            }
        }
        let affected = flavor.has_no_deps_hash_bug()
            && flavor.has_dry_run()
            && selected
                .iter()
                .any(|s| config.get(s).is_some_and(|c| !c.depends_on.is_empty()));
        let check = if !affected {
            Check12069::None
        } else if compose::waits_on_health(&config, selected) {
            // A plain `up` (and its dry run) would poll every healthy dependency in the chain,
            // 0.5 s each: keep `--no-deps` and ask in the background, during the gate.
            self.notes.push(Note::Info(format!(
                "compose #12069: {:?} wait on healthy dependencies, which a plain `up` polls 0.5 s each: `up --no-deps` is used, and `docker compose --dry-run up` runs during the health gate to tell whether a later plain `up` would recreate them",
                selected
            )));
            Check12069::Background
        } else {
            Check12069::PlainIfSafe
        };
        let action = Action::Compose(ComposeAction::Up {
            cmd: c.up(selected, &up_options(input.force)),
            services: selected.clone(),
            check_12069: check,
        });
        self.push(
            "compose-up",
            action,
            "recreate only the selected services",
            selected,
            Guard::Always,
        );
    }

    fn rollback(&mut self, selected: &[String], st: &HostState, c: &Compose, n: u64) {
        let services = selected
            .iter()
            .map(|svc| Back {
                service: svc.clone(),
                to: st
                    .before
                    .get(svc)
                    .map(|cur| before_tag(&cur.image, &c.project, svc, n)),
            })
            .collect();
        let action = Action::Compose(ComposeAction::Rollback {
            release: n,
            services,
            restore_from: restore_from(&st.records, &st.copies, n),
        });
        let guard = Guard::GateFailed {
            units: selected.to_vec(),
        };
        self.push(
            "rollback",
            action,
            "a failed service goes back; the others keep running",
            selected,
            guard,
        );
    }
}

/// `sha256:` and the first 12 hex digits of an image id.
pub fn short(id: &str) -> String {
    id.chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::compose::Flavor;
    use crate::cmd::docker_engine::{ContainerInfo, ImageInfo};
    use crate::state::ReleaseStatusField;

    fn manifest() -> Manifest {
        crate::manifest::parse(crate::diag::Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  staging:\n    hosts: [local]\n    dir: /srv/shop\n    compose_files: [compose.yml]\nservices:\n  api:\n    health: { url: \"http://127.0.0.1:3100/health\", timeout: 30s, expect_status: 200, contains: ok }\n  web:\n    pull: never\n",
        ))
        .unwrap()
    }

    fn container(id: &str, image: &str, image_id: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            image: image.into(),
            image_id: image_id.into(),
            status: "running".into(),
            ..Default::default()
        }
    }

    fn state() -> HostState {
        let mut config = BTreeMap::new();
        for (svc, image) in [("api", "reg/api:1"), ("web", "reg/web:1")] {
            config.insert(
                svc.to_string(),
                ServiceConfig {
                    image: Some(image.into()),
                    ..Default::default()
                },
            );
        }
        HostState {
            flavor: Flavor::V2(semver::Version::new(2, 30, 0)),
            http_client: "curl".into(),
            next: 4,
            records: vec![ReleaseRecord {
                number: 3,
                status: ReleaseStatusField(ReleaseStatus::Live),
                ..Default::default()
            }],
            pins: BTreeMap::new(),
            before: [("api".to_string(), container("c1", "reg/api:0", "sha256:aa"))].into(),
            copies: [3].into(),
            config: Some(config),
            images: [(
                "reg/api:1".to_string(),
                Some(ImageInfo {
                    id: "sha256:bb".into(),
                    repo_digests: vec!["reg/api@sha256:cc".into()],
                }),
            )]
            .into(),
        }
    }

    fn input(services: &[&str]) -> UpInput {
        UpInput {
            env: "staging".into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            uploads: vec![("compose.yml".into(), "/srv/shop/compose.yml".into())],
            ..Default::default()
        }
    }

    fn plan(input: &UpInput, st: &HostState) -> HostPlan {
        let m = manifest();
        let env = &m.environments["staging"];
        host_plan(input, &m, env, &Host::Local, st).unwrap()
    }

    fn ids(p: &HostPlan) -> Vec<&str> {
        p.steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn a_host_runs_files_pull_record_up_gate_the_rollback_branch_and_finish() {
        let p = plan(&input(&["api", "web"]), &state());
        assert_eq!(
            ids(&p),
            [
                "up:files@local",
                "up:pull@local",
                "up:record@local",
                "up:compose-up@local",
                "up:gate@local",
                "up:rollback@local",
                "up:finish@local"
            ]
        );
        let line = |id: &str| {
            p.steps
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.describe())
                .unwrap()
        };
        assert_eq!(
            line("up:compose-up@local"),
            "cd /srv/shop && docker compose -p shop -f compose.yml up -d --no-deps api web"
        );
        assert_eq!(
            line("up:pull@local"),
            "cd /srv/shop && docker compose -p shop -f compose.yml pull api",
            "web is `pull: never`"
        );
        assert!(
            line("up:record@local")
                .contains("docker tag sha256:aa reg/api:shop.api-release-4-before"),
            "{}",
            line("up:record@local")
        );
        assert!(line("up:files@local").starts_with(
            "install compose.yml into /srv/shop and copy them to /srv/shop/.deploy-action/files/4"
        ));
        assert!(line("up:gate@local").contains(
            "api running (healthy, with a healthcheck) and GET http://127.0.0.1:3100/health expect 200 containing \"ok\" for a 5.0s stability window, within 30s"
        ));
        assert!(
            line("up:rollback@local").contains("api on reg/api:shop.api-release-4-before")
                && line("up:rollback@local").contains("web stopped (nothing ran before)")
                && line("up:rollback@local").contains("release 3's compose and env files"),
            "{}",
            line("up:rollback@local")
        );
        assert!(line("up:finish@local").contains("release 3 superseded"));
        let rollback = &p.steps[5];
        assert_eq!(
            rollback.guard,
            Guard::GateFailed {
                units: vec!["api".into(), "web".into()]
            }
        );
        assert_eq!(
            p.notes,
            [Note::Info(
                "web: reg/web:1 not pulled: pull: never, and the host does not have it (compose may pull it when it creates the container)".into()
            )]
        );
    }

    #[test]
    fn a_left_in_progress_release_pins_and_built_images_shape_the_plan() {
        let mut st = state();
        st.records.push(ReleaseRecord {
            number: 2,
            status: ReleaseStatusField(ReleaseStatus::InProgress),
            ..Default::default()
        });
        let mut inp = input(&["api"]);
        inp.images.insert("api".into(), "shop/api:abc".into());
        inp.ship.push(ShipImage {
            service: "api".into(),
            image: "shop/api:abc".into(),
            id: None,
            from: None,
        });
        let p = plan(&inp, &st);
        // A built image is pinned (not pulled) and never shipped to `local`.
        assert_eq!(
            ids(&p),
            [
                "up:interrupted@local",
                "up:files@local",
                "up:record@local",
                "up:compose-up@local",
                "up:gate@local",
                "up:rollback@local",
                "up:finish@local"
            ]
        );
        assert!(p.steps[1].describe().ends_with("pinning api=shop/api:abc"));
        assert_eq!(
            p.steps[3].describe(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f .deploy-action/override.yml up -d --no-deps api"
        );
        assert_eq!(p.steps[3].unit.as_deref(), Some("api"));
        let remote = Host::Ssh {
            user: "deploy".into(),
            host: "h".into(),
            port: 22,
        };
        let m = manifest();
        let p = host_plan(&inp, &m, &m.environments["staging"], &remote, &st).unwrap();
        assert_eq!(p.steps[0].id, "up:ship:api@deploy@h:22");
    }

    #[test]
    fn a_service_compose_does_not_know_is_refused_before_anything_changes() {
        let m = manifest();
        let mut st = state();
        st.config.as_mut().unwrap().remove("web");
        let r = host_plan(
            &input(&["web"]),
            &m,
            &m.environments["staging"],
            &Host::Local,
            &st,
        );
        let refusal = r.unwrap_err();
        assert_eq!(
            refusal.message,
            "compose has no service [\"web\"] in compose.yml"
        );
        assert_eq!(refusal.help, "compose services: api");
    }

    #[test]
    fn compose_12069_is_decided_from_the_configuration() {
        let mut st = state();
        st.flavor = Flavor::V2(semver::Version::new(2, 26, 1));
        let config = st.config.as_mut().unwrap();
        config.get_mut("web").unwrap().depends_on = ["api".to_string()].into();
        let up = |st: &HostState| match &plan(&input(&["web"]), st)
            .steps
            .into_iter()
            .find(|s| s.id == "up:compose-up@local")
            .unwrap()
            .action
        {
            Action::Compose(ComposeAction::Up { check_12069, .. }) => *check_12069,
            other => panic!("{other:?}"),
        };
        assert_eq!(up(&st), Check12069::PlainIfSafe);
        st.config.as_mut().unwrap().get_mut("web").unwrap().waits_on = ["api".to_string()].into();
        assert_eq!(up(&st), Check12069::Background);
        let p = plan(&input(&["web"]), &st);
        assert!(
            matches!(&p.notes[..], [_, Note::Info(i)] if i.contains("wait on healthy dependencies"))
        );
        // A running dependent of api is recreated with it (compose #10308): said first.
        st.before
            .insert("web".into(), container("c2", "reg/web:0", "sha256:dd"));
        let p = plan(&input(&["api"]), &st);
        assert!(matches!(&p.notes[0], Note::Warn(w) if w.contains("compose #10308")));
    }

    #[test]
    fn an_unknown_host_is_planned_from_the_manifest_alone() {
        let p = plan(&input(&["api", "web"]), &HostState::unknown());
        assert_eq!(p.release, 0);
        assert!(
            p.steps[0]
                .describe()
                .contains("copy them to /srv/shop/.deploy-action/files/<n>")
        );
        // Pulls follow the policy alone: api pulls, web is `pull: never`.
        assert_eq!(
            p.steps[1].describe(),
            "cd /srv/shop && docker compose -p shop -f compose.yml pull api"
        );
        assert!(
            p.steps[2]
                .describe()
                .starts_with("record release <n> as in_progress")
        );
    }

    #[test]
    fn a_restore_and_the_lock_steps() {
        let mut inp = input(&["api"]);
        inp.files_from = Some(3);
        let p = plan(&inp, &state());
        assert!(p.steps[0].describe().starts_with(
            "restore release 3's compose and env files into /srv/shop and copy them to /srv/shop/.deploy-action/files/4"
        ));
        let m = manifest();
        let env = &m.environments["staging"];
        let locks = lock_steps(env, Some(Duration::from_secs(30)));
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].id, "up:lock@local");
        assert!(locks[0].describe().starts_with(
            "take the staging lock: mkdir /srv/shop/.deploy-action/lock with this run's owner file (exit 4 while another run holds it, after waiting up to 30s)"
        ));
        assert_eq!(restore_from(&state().records, &[3].into(), 3), None);
        assert_eq!(restore_from(&state().records, &[3].into(), 4), Some(3));
    }
}
