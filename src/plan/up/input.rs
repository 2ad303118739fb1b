//! What the planner of a compose host is given: what the run asks of every host ([`UpInput`]),
//! what a host is now ([`HostState`], read by `deploy/compose/inspect.rs`), what `plan` knows of
//! `up` ([`UpHosts`]), and the images `up` builds ([`docker_builds`]).
//!
//! Pure: data.

use super::secret_names;
use crate::cmd::compose::{Flavor, ServiceConfig};
use crate::cmd::docker_engine::{ContainerInfo, ImageInfo};
use crate::manifest::{Environment, Host, Manifest};
use crate::state::ReleaseRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a run asks of every host (the pure part of `deploy::UpRequest`).
#[derive(Clone, Debug, Default)]
pub struct UpInput {
    pub env: String,
    /// The compose services to deploy.
    pub services: Vec<String>,
    /// compose service → the image to pin (`--image`, built, recorded).
    pub images: BTreeMap<String, String>,
    /// The services of `images` that came from `--image`.
    pub user_images: BTreeSet<String>,
    pub force: bool,
    /// Restore the compose and env files release `n` uploaded instead of the repository's.
    pub files_from: Option<u64>,
    /// The compose and env files from the repository: (path in the repository, path on the host).
    pub uploads: Vec<(String, String)>,
    /// Images brought to the hosts before anything else.
    pub ship: Vec<ShipImage>,
    /// The compose services whose `secrets:` values this run writes.
    pub secrets: Vec<String>,
}

/// An image a run brings to its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipImage {
    pub service: String,
    pub image: String,
    /// The exact image id to ship (promote).
    pub id: Option<String>,
    /// The host it comes from; `None`: built on this machine (not shipped to `local`).
    pub from: Option<Host>,
}

/// What `up` would deploy on an environment's hosts and what they are now: `plan`'s view of
/// `up` (the state of a host that could not be read is `None`).
#[derive(Clone, Debug, Default)]
pub struct UpHosts {
    pub input: UpInput,
    pub lock_wait: Option<Duration>,
    pub hosts: Vec<(Host, Option<HostState>)>,
}

impl UpHosts {
    /// From the manifest alone: the affected services, the images built at commit `sha`, the
    /// compose files, no host read.
    pub fn from_manifest(m: &Manifest, env: &Environment, units: &[String], sha: &str) -> UpHosts {
        let dir = env.dir.trim_end_matches('/');
        let builds = docker_builds(m, units, sha, &BTreeMap::new());
        UpHosts {
            input: UpInput {
                env: env.name.clone(),
                services: units
                    .iter()
                    .filter_map(|u| m.services.get(u))
                    .map(|s| s.compose_service.clone())
                    .collect(),
                images: builds
                    .iter()
                    .map(|b| (b.compose_service.clone(), b.tag.clone()))
                    .collect(),
                ship: builds
                    .iter()
                    .map(|b| ShipImage {
                        service: b.compose_service.clone(),
                        image: b.tag.clone(),
                        id: None,
                        from: None,
                    })
                    .collect(),
                uploads: env
                    .compose_files
                    .iter()
                    .map(|f| (f.clone(), format!("{dir}/{f}")))
                    .collect(),
                secrets: secret_names(m, env).into_keys().collect(),
                ..UpInput::default()
            },
            lock_wait: None,
            hosts: env.hosts.iter().map(|h| (h.clone(), None)).collect(),
        }
    }
}

/// What a host is before the run (read-only inspection), as the planner needs it.
#[derive(Clone, Debug)]
pub struct HostState {
    pub flavor: Flavor,
    /// `curl`, `wget` or `none`.
    pub http_client: String,
    /// The number this run's release gets (0: unknown, the host was not reached).
    pub next: u64,
    pub records: Vec<ReleaseRecord>,
    /// The override file's pins now.
    pub pins: BTreeMap<String, String>,
    /// The containers by compose service before the run.
    pub before: BTreeMap<String, ContainerInfo>,
    /// Releases whose compose and env files the host keeps.
    pub copies: BTreeSet<u64>,
    /// `docker compose config` of the files this run installs; `None`: unknown.
    pub config: Option<BTreeMap<String, ServiceConfig>>,
    /// What the host has of the images the pull step considers (`None`: not there).
    pub images: BTreeMap<String, Option<ImageInfo>>,
}

impl HostState {
    /// A host that could not be read (`plan` without reaching it): no releases, no containers,
    /// configuration unknown, a compose v2 without known bugs.
    pub fn unknown() -> HostState {
        HostState {
            flavor: Flavor::V2(semver::Version::new(2, 0, 0)),
            http_client: "curl".into(),
            next: 0,
            records: Vec::new(),
            pins: BTreeMap::new(),
            before: BTreeMap::new(),
            copies: BTreeSet::new(),
            config: None,
            images: BTreeMap::new(),
        }
    }
}

/// A docker image `up` builds on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerBuild {
    /// The manifest key.
    pub service: String,
    pub compose_service: String,
    pub context: String,
    pub dockerfile: String,
    /// `<image>:<sha>`.
    pub tag: String,
}

/// The images `up` builds for `services` (manifest keys) at commit `sha`: every service with a
/// docker `build:` whose compose service `pinned` (`--image`) does not name.
pub fn docker_builds(
    m: &Manifest,
    services: &[String],
    sha: &str,
    pinned: &BTreeMap<String, String>,
) -> Vec<DockerBuild> {
    services
        .iter()
        .filter_map(|key| {
            let s = m.services.get(key)?;
            let Some(crate::manifest::Build::Docker {
                context,
                dockerfile,
                image,
                ..
            }) = &s.build
            else {
                return None;
            };
            (!pinned.contains_key(&s.compose_service)).then(|| DockerBuild {
                service: key.clone(),
                compose_service: s.compose_service.clone(),
                context: context.clone(),
                dockerfile: dockerfile.clone(),
                tag: format!("{image}:{sha}"),
            })
        })
        .collect()
}
