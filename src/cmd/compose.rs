//! `docker compose` (v2 plugin) and `docker-compose` (v1) command builders, version gates and the
//! parsers of their output (`ps` JSON in both shapes, `config` for `depends_on` and images).
//!
//! Pure: builds [`Cmd`] values and parses text; never starts a process.

use super::Cmd;
use std::collections::{BTreeMap, BTreeSet};

/// Which compose implementation a host has, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The Go plugin `docker compose` (2.x, 5.x).
    V2(semver::Version),
    /// The Python `docker-compose` 1.x.
    V1(semver::Version),
}

impl Flavor {
    pub fn version(&self) -> &semver::Version {
        match self {
            Flavor::V2(v) | Flavor::V1(v) => v,
        }
    }
    pub fn is_v1(&self) -> bool {
        matches!(self, Flavor::V1(_))
    }
    /// `up --wait` (≥ 2.2.0).
    pub fn has_wait(&self) -> bool {
        matches!(self, Flavor::V2(v) if *v >= semver::Version::new(2, 2, 0))
    }
    /// `up --wait-timeout` (≥ 2.17.0).
    pub fn has_wait_timeout(&self) -> bool {
        matches!(self, Flavor::V2(v) if *v >= semver::Version::new(2, 17, 0))
    }
    /// `ps --format json` prints JSON Lines (≥ 2.21.0) rather than one array.
    pub fn ps_json_lines(&self) -> bool {
        matches!(self, Flavor::V2(v) if *v >= semver::Version::new(2, 21, 0))
    }
    /// The global `--dry-run` flag (2.19.0, as far as we know; `up` asks for it only on the #12069
    /// versions, 2.26.0–2.29.2, which all have it): prints what `up` would do, changes nothing.
    pub fn has_dry_run(&self) -> bool {
        matches!(self, Flavor::V2(v) if *v >= semver::Version::new(2, 19, 0))
    }
    /// `config --format json` (v2 only; v1 prints YAML).
    pub fn has_config_json(&self) -> bool {
        matches!(self, Flavor::V2(_))
    }
    /// `up --no-deps` stores a config hash that a later plain `up` disagrees with (compose #12069,
    /// 2.26.0 – 2.29.2; fixed in 2.29.3). These versions all have `--dry-run` (≥ 2.19), which is how
    /// deploy-action asks what a plain `up` would do.
    pub fn has_no_deps_hash_bug(&self) -> bool {
        matches!(self, Flavor::V2(v)
            if *v >= semver::Version::new(2, 26, 0) && *v < semver::Version::new(2, 29, 3))
    }
    /// A short label: `compose v2 2.26.1`, `docker-compose 1.29.2`.
    pub fn label(&self) -> String {
        match self {
            Flavor::V2(v) => format!("docker compose {v}"),
            Flavor::V1(v) => format!("docker-compose {v}"),
        }
    }
}

/// `docker compose version --short`.
pub fn version_probe_v2() -> Cmd {
    Cmd::new("docker").args(["compose", "version", "--short"])
}

/// `docker-compose version --short`.
pub fn version_probe_v1() -> Cmd {
    Cmd::new("docker-compose").args(["version", "--short"])
}

/// Parses `version --short` output (`2.26.1`, `v2.29.7`, `2.26.1-4` from Debian, `1.29.2`).
pub fn parse_version(text: &str) -> Option<semver::Version> {
    let t = text.trim().trim_start_matches('v');
    let core: String = t
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = core.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    let patch = parts.next().unwrap_or("0").parse().ok()?;
    Some(semver::Version::new(major, minor, patch))
}

/// A compose invocation for one project: flavor, project name, files, working directory.
#[derive(Clone, Debug)]
pub struct Compose {
    pub flavor: Flavor,
    pub project: String,
    /// `-f` files, absolute or relative to `dir`.
    pub files: Vec<String>,
    pub dir: String,
}

/// Options of `up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// `--wait` with this timeout in seconds (dropped or degraded by version). `up` leaves it out:
    /// its own health gate waits, with a stability window that `--wait` lacks.
    pub wait_secs: Option<u64>,
    pub force_recreate: bool,
    /// Leave out `--no-deps` (compose #12069 handling: only when a dry run shows that no other
    /// service would be touched).
    pub with_deps: bool,
    /// `--timeout N`: seconds a replaced container gets to stop (a cancelled run rolls back fast).
    pub stop_timeout: Option<u64>,
}

impl Compose {
    fn base(&self) -> Cmd {
        let mut c = match self.flavor {
            Flavor::V2(_) => Cmd::new("docker").arg("compose"),
            Flavor::V1(_) => Cmd::new("docker-compose"),
        };
        c = c.arg("-p").arg(&self.project);
        for f in &self.files {
            c = c.arg("-f").arg(f);
        }
        c.cwd(&self.dir)
    }

    /// `up -d --no-deps [--force-recreate] [--wait [--wait-timeout N]] SERVICES…`
    pub fn up(&self, services: &[String], opts: &UpOptions) -> Cmd {
        let mut c = self.base().args(["up", "-d"]);
        if !opts.with_deps {
            c = c.arg("--no-deps");
        }
        if opts.force_recreate {
            c = c.arg("--force-recreate");
        }
        if let Some(secs) = opts.stop_timeout {
            c = c.arg("--timeout").arg(secs.to_string());
        }
        if let Some(secs) = opts.wait_secs
            && self.flavor.has_wait()
        {
            c = c.arg("--wait");
            if self.flavor.has_wait_timeout() {
                c = c.arg("--wait-timeout").arg(secs.to_string());
            }
        }
        c.args(services)
    }

    /// `config` as JSON (v2) or YAML (v1): parse with [`parse_config`].
    pub fn config(&self) -> Cmd {
        let c = self.base().arg("config");
        if self.flavor.has_config_json() {
            c.args(["--format", "json"])
        } else {
            c
        }
    }

    /// `--dry-run up -d SERVICES` (v2 ≥ 2.19), without `--no-deps`: what a plain `up` of these
    /// services would do to every container, changing nothing. Parse with [`parse_dry_run`].
    pub fn dry_run_up(&self, services: &[String]) -> Cmd {
        let mut c = Cmd::new("docker").args(["compose", "--dry-run"]);
        c = c.arg("-p").arg(&self.project);
        for f in &self.files {
            c = c.arg("-f").arg(f);
        }
        c.cwd(&self.dir).args(["up", "-d"]).args(services)
    }

    /// `ps -a --format json` (v2 only; on v1 use [`super::docker_engine::ps_project`]).
    pub fn ps_json(&self) -> Cmd {
        self.base().args(["ps", "-a", "--format", "json"])
    }

    /// `stop SERVICES`.
    pub fn stop(&self, services: &[String]) -> Cmd {
        self.base().arg("stop").args(services)
    }

    /// `pull SERVICES`.
    pub fn pull(&self, services: &[String]) -> Cmd {
        self.base().arg("pull").args(services)
    }
}

/// One container from `ps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsEntry {
    pub id: String,
    pub service: String,
    pub state: String,
}

/// Parses YAML (v1 `config` output, compose files) into a JSON value with the manifest's YAML
/// reader: scalars become strings, except null and booleans.
pub fn yaml_value(text: &str) -> Result<serde_json::Value, String> {
    use crate::manifest::raw::{self, Kind, ScalarType};
    fn conv(n: &raw::Node) -> serde_json::Value {
        match &n.kind {
            Kind::Scalar { value, .. } => match n.scalar_type() {
                Some(ScalarType::Null) => serde_json::Value::Null,
                Some(ScalarType::Bool) => {
                    serde_json::Value::Bool(value == "true" || value == "True" || value == "TRUE")
                }
                _ => serde_json::Value::String(value.clone()),
            },
            Kind::Seq(v) => serde_json::Value::Array(v.iter().map(conv).collect()),
            Kind::Map(v) => serde_json::Value::Object(
                v.iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_string(), conv(v)))
                    .collect(),
            ),
        }
    }
    raw::parse(text)
        .map(|n| conv(&n))
        .map_err(|e| e.to_string())
}

/// Parses `docker compose ps --format json`: one JSON array (2.0–2.20) or JSON Lines (≥ 2.21).
pub fn parse_ps(text: &str) -> Result<Vec<PsEntry>, String> {
    let t = text.trim_start();
    let values: Vec<serde_json::Value> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| format!("compose ps: {e}"))?
    } else {
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("compose ps: {e}")))
            .collect::<Result<_, _>>()?
    };
    Ok(values
        .iter()
        .map(|v| {
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            PsEntry {
                id: s("ID"),
                service: s("Service"),
                state: s("State"),
            }
        })
        .collect())
}

/// What `config` says about each service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    pub image: Option<String>,
    pub depends_on: BTreeSet<String>,
    /// The dependencies whose `condition:` makes `up` wait for them (`service_healthy`,
    /// `service_completed_successfully`).
    pub waits_on: BTreeSet<String>,
    pub env_files: Vec<String>,
    pub has_healthcheck: bool,
}

/// The services of a resolved compose configuration (`config` output as a JSON value; v1's YAML
/// parsed into the same shape). `depends_on` may be a list or a map.
pub fn parse_config(v: &serde_json::Value) -> BTreeMap<String, ServiceConfig> {
    let mut out = BTreeMap::new();
    let Some(services) = v.get("services").and_then(|s| s.as_object()) else {
        return out;
    };
    for (name, s) in services {
        let mut c = ServiceConfig {
            image: s.get("image").and_then(|i| i.as_str()).map(String::from),
            ..Default::default()
        };
        match s.get("depends_on") {
            Some(serde_json::Value::Array(a)) => {
                c.depends_on = a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .map(String::from)
                    .collect();
            }
            Some(serde_json::Value::Object(m)) => {
                c.depends_on = m.keys().cloned().collect();
                c.waits_on = m
                    .iter()
                    .filter(|(_, d)| {
                        matches!(
                            d.get("condition").and_then(|x| x.as_str()),
                            Some("service_healthy" | "service_completed_successfully")
                        )
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
            }
            _ => {}
        }
        c.env_files = env_file_list(s.get("env_file"));
        c.has_healthcheck = s
            .get("healthcheck")
            .map(|h| !h.get("disable").and_then(|d| d.as_bool()).unwrap_or(false))
            .unwrap_or(false);
        out.insert(name.clone(), c);
    }
    out
}

/// `env_file:` as a string, a list of strings, or a list of `{path: …}` maps.
pub fn env_file_list(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| {
                x.as_str()
                    .map(String::from)
                    .or_else(|| x.get("path").and_then(|p| p.as_str()).map(String::from))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Services that depend (directly or transitively) on any of `changed` and are not in it: compose v2
/// recreates them along with `changed` (compose #10308).
pub fn reverse_dependents(
    config: &BTreeMap<String, ServiceConfig>,
    changed: &[String],
) -> BTreeSet<String> {
    let mut hit: BTreeSet<String> = changed.iter().cloned().collect();
    loop {
        let before = hit.len();
        for (name, c) in config {
            if c.depends_on.iter().any(|d| hit.contains(d)) {
                hit.insert(name.clone());
            }
        }
        if hit.len() == before {
            break;
        }
    }
    changed.iter().for_each(|c| {
        hit.remove(c);
    });
    hit
}

/// Every service `services` depend on, transitively, excluding `services` themselves.
pub fn dependencies(
    config: &BTreeMap<String, ServiceConfig>,
    services: &[String],
) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = services.to_vec();
    while let Some(s) = stack.pop() {
        for d in config
            .get(&s)
            .map(|c| c.depends_on.clone())
            .unwrap_or_default()
        {
            if seen.insert(d.clone()) {
                stack.push(d);
            }
        }
    }
    services.iter().for_each(|s| {
        seen.remove(s);
    });
    seen
}

/// Whether a plain `up` of `services` would wait on a dependency's health: compose then polls each
/// such dependency in the chain every 0.5 s, healthy or not, in a `--dry-run` too.
pub fn waits_on_health(config: &BTreeMap<String, ServiceConfig>, services: &[String]) -> bool {
    services
        .iter()
        .cloned()
        .chain(dependencies(config, services))
        .any(|s| config.get(&s).is_some_and(|c| !c.waits_on.is_empty()))
}

/// What a `--dry-run up` would do to one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DryRunAction {
    /// The container name (`shop-api-1`), without the `<id>_` prefix compose gives a container
    /// while it replaces it.
    pub container: String,
    /// `Recreate`, `Create`, `Start`, `Running`, … (the `-d`/`-ed` forms folded into one).
    pub action: String,
}

impl DryRunAction {
    /// Whether the container would be replaced or started (anything but `Running`).
    pub fn touches(&self) -> bool {
        matches!(
            self.action.as_str(),
            "Recreate" | "Create" | "Start" | "Restart" | "Stop" | "Remove"
        )
    }
}

/// Parses `--dry-run up` output (stderr and stdout together): lines such as
/// ` DRY-RUN MODE -  Container shop-web-1  Recreate`.
pub fn parse_dry_run(text: &str) -> Vec<DryRunAction> {
    let mut out: Vec<DryRunAction> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.split("Container ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(action)) = (words.next(), words.next()) else {
            continue;
        };
        let name = match name.split_once('_') {
            Some((id, n)) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) => n,
            _ => name,
        };
        let action = match action {
            "Recreated" => "Recreate",
            "Created" | "Creating" => "Create",
            "Started" | "Starting" => "Start",
            "Restarted" | "Restarting" => "Restart",
            "Stopped" | "Stopping" => "Stop",
            "Removed" | "Removing" => "Remove",
            other => other,
        };
        let a = DryRunAction {
            container: name.to_string(),
            action: action.to_string(),
        };
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        parse_version(s).unwrap()
    }

    fn compose(flavor: Flavor) -> Compose {
        Compose {
            flavor,
            project: "shop".into(),
            files: vec!["compose.yml".into(), ".deploy-action/override.yml".into()],
            dir: "/srv/shop".into(),
        }
    }

    #[test]
    fn versions_parse_in_every_shape() {
        assert_eq!(v("2.26.1-4"), semver::Version::new(2, 26, 1));
        assert_eq!(v("v2.29.7\n"), semver::Version::new(2, 29, 7));
        assert_eq!(v("1.29.2"), semver::Version::new(1, 29, 2));
        assert_eq!(v("5.0"), semver::Version::new(5, 0, 0));
        assert!(parse_version("garbage").is_none());
    }

    #[test]
    fn up_flags_are_gated_by_version() {
        let svc = vec!["api".to_string()];
        let opts = UpOptions {
            wait_secs: Some(60),
            force_recreate: false,
            ..Default::default()
        };
        assert_eq!(
            compose(Flavor::V2(v("2.26.1"))).up(&svc, &opts).display(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f .deploy-action/override.yml up -d --no-deps --wait --wait-timeout 60 api"
        );
        assert_eq!(
            compose(Flavor::V2(v("2.10.0"))).up(&svc, &opts).display(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f .deploy-action/override.yml up -d --no-deps --wait api"
        );
        assert_eq!(
            compose(Flavor::V2(v("2.1.0"))).up(&svc, &opts).display(),
            "cd /srv/shop && docker compose -p shop -f compose.yml -f .deploy-action/override.yml up -d --no-deps api"
        );
        assert_eq!(
            compose(Flavor::V1(v("1.29.2")))
                .up(&svc, &opts)
                .argv_exposed(),
            [
                "docker-compose",
                "-p",
                "shop",
                "-f",
                "compose.yml",
                "-f",
                ".deploy-action/override.yml",
                "up",
                "-d",
                "--no-deps",
                "api"
            ]
        );
        assert_eq!(
            compose(Flavor::V1(v("1.29.2")))
                .config()
                .argv_exposed()
                .last()
                .unwrap(),
            "config"
        );
        assert!(
            compose(Flavor::V2(v("2.26.1")))
                .config()
                .display()
                .ends_with("config --format json")
        );
    }

    #[test]
    fn hash_regression_window_is_exact() {
        assert!(!Flavor::V2(v("2.25.0")).has_no_deps_hash_bug());
        assert!(Flavor::V2(v("2.26.1")).has_no_deps_hash_bug());
        assert!(Flavor::V2(v("2.29.2")).has_no_deps_hash_bug());
        assert!(!Flavor::V2(v("2.29.3")).has_no_deps_hash_bug());
        assert!(!Flavor::V1(v("1.29.2")).has_no_deps_hash_bug());
        assert!(!Flavor::V2(v("2.20.3")).ps_json_lines());
        assert!(Flavor::V2(v("2.21.0")).ps_json_lines());
    }

    #[test]
    fn ps_parses_array_and_json_lines() {
        let array = r#"[{"ID":"abc","Service":"api","State":"running"},{"ID":"def","Service":"db","State":"exited"}]"#;
        let lines = "{\"ID\":\"abc\",\"Service\":\"api\",\"State\":\"running\"}\n{\"ID\":\"def\",\"Service\":\"db\",\"State\":\"exited\"}\n";
        assert_eq!(parse_ps(array).unwrap(), parse_ps(lines).unwrap());
        assert_eq!(parse_ps(lines).unwrap()[1].service, "db");
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("{oops").is_err());
    }

    #[test]
    fn config_gives_dependents_images_and_env_files() {
        let cfg: serde_json::Value = serde_json::json!({"services": {
            "db": {"image": "postgres:16"},
            "api": {"image": "shop/api:1", "depends_on": {"db": {"condition": "service_started"}},
                    "env_file": [{"path": "/srv/shop/api.env", "required": true}],
                    "healthcheck": {"test": ["CMD", "true"]}},
            "web": {"image": "shop/web:1", "depends_on": ["api"], "env_file": "web.env"},
            "cron": {"image": "shop/cron:1"}
        }});
        let c = parse_config(&cfg);
        assert_eq!(c["api"].image.as_deref(), Some("shop/api:1"));
        assert!(c["api"].has_healthcheck && !c["web"].has_healthcheck);
        assert_eq!(c["api"].env_files, ["/srv/shop/api.env"]);
        assert_eq!(c["web"].env_files, ["web.env"]);
        assert_eq!(
            dependencies(&c, &["web".to_string()])
                .into_iter()
                .collect::<Vec<_>>(),
            ["api", "db"]
        );
        assert!(
            c["api"].waits_on.is_empty(),
            "service_started does not wait"
        );
        assert!(!waits_on_health(&c, &["web".to_string()]));
        let mut waiting = c.clone();
        waiting.get_mut("api").unwrap().waits_on.insert("db".into());
        assert!(
            waits_on_health(&waiting, &["web".to_string()]),
            "through api"
        );
        let healthy = parse_config(&serde_json::json!({"services": {
            "api": {"depends_on": {"db": {"condition": "service_healthy"}}}, "db": {}}}));
        assert_eq!(healthy["api"].waits_on.iter().collect::<Vec<_>>(), ["db"]);
        let deps = reverse_dependents(&c, &["db".to_string()]);
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["api", "web"]);
        assert!(reverse_dependents(&c, &["web".to_string()]).is_empty());
    }

    #[test]
    fn yaml_config_reads_like_json() {
        let v = yaml_value("version: \"3.9\"\nservices:\n  web:\n    image: shop/web:1\n    depends_on: [api]\n    env_file: web.env\n    healthcheck:\n      disable: true\n  api:\n    image: shop/api:2\n").unwrap();
        let c = parse_config(&v);
        assert_eq!(v["version"], "3.9");
        assert_eq!(c["web"].depends_on.iter().collect::<Vec<_>>(), ["api"]);
        assert_eq!(c["web"].env_files, ["web.env"]);
        assert!(!c["web"].has_healthcheck);
        assert_eq!(c["api"].image.as_deref(), Some("shop/api:2"));
        assert!(yaml_value("a: [").is_err());
    }

    #[test]
    fn dry_run_names_what_a_plain_up_would_touch() {
        let text = " DRY-RUN MODE -  Container shop-api-1  Running\n DRY-RUN MODE -  Container shop-web-1  Recreate\n DRY-RUN MODE -  Container shop-web-1  Recreated\n DRY-RUN MODE -  Container 6783d04533c0_shop-web-1  Starting\n DRY-RUN MODE -  Container 6783d04533c0_shop-web-1  Started\n";
        let a = parse_dry_run(text);
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(a[0].container, "shop-api-1");
        assert!(!a[0].touches());
        assert!(a[1].touches() && a[1].action == "Recreate");
        assert_eq!(a[2].container, "shop-web-1");
        assert!(parse_dry_run("").is_empty());
        let c = compose(Flavor::V2(v("2.26.1"))).dry_run_up(&["web".to_string()]);
        assert_eq!(
            c.display(),
            "cd /srv/shop && docker compose --dry-run -p shop -f compose.yml -f .deploy-action/override.yml up -d web"
        );
        assert!(Flavor::V2(v("2.26.1")).has_dry_run() && !Flavor::V1(v("1.29.2")).has_dry_run());
    }
}
