//! `secrets:` delivered to the hosts: the values of the runner's variables that an environment and
//! its services name, read once before anything changes. They travel only inside the script `up`
//! sends on the SSH session's standard input (never on a command line), land in
//! `<dir>/.deploy-action/env/<service>.env` (0600, in a 0700 directory) with a 0600 copy per
//! release, and reach the container through the override file's `env_file:`. Releases record a
//! fingerprint per value, never the value.

use crate::cmd::Secret;
use crate::error::{Error, Result};
use crate::manifest::{Environment, Manifest};
use crate::plan::up as pu;
use std::collections::BTreeMap;

/// compose service → its secrets, in the order the manifest names them (the environment's first,
/// then the service's own; a name in both appears once).
pub type Values = BTreeMap<String, Vec<(String, Secret)>>;

/// The variable names each compose service gets: the environment's `secrets:` and its own.
pub fn names(m: &Manifest, env: &Environment) -> BTreeMap<String, Vec<String>> {
    pu::secret_names(m, env)
}

/// Reads the values from the runner's environment through `get`. Every variable that is not set
/// (or empty) is named in one error (exit 2), with the services that need it, before anything
/// changes.
pub fn resolve(
    m: &Manifest,
    env: &Environment,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Values> {
    let mut out = Values::new();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (svc, names) in names(m, env) {
        let mut values = Vec::new();
        for name in names {
            match get(&name).filter(|v| !v.is_empty()) {
                Some(v) => values.push((name, Secret::new(v))),
                None => missing.entry(name).or_default().push(svc.clone()),
            }
        }
        out.insert(svc, values);
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(name, svcs)| format!("{name} (for {})", svcs.join(", ")))
        .collect();
    Err(Error::usage_help(
        format!(
            "environment `{}`: secret variable{} not set: {}; nothing was changed",
            env.name,
            if missing.len() == 1 { " is" } else { "s are" },
            list.join(", ")
        ),
        "set them in the runner's environment, e.g. in a workflow `env: { API_KEY: ${{ secrets.API_KEY }} }`",
    ))
}

/// The env file text for one service's values in the syntax of the host's compose (`v1`).
pub fn file_text(values: &[(String, Secret)], v1: bool) -> Result<String> {
    let plain: Vec<(String, String)> = values
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_string()))
        .collect();
    pu::env_file_text(&plain, v1).map_err(Error::usage)
}

/// compose service → (name → fingerprint), for the release record.
pub fn fingerprints(
    project: &str,
    env: &str,
    values: &Values,
) -> BTreeMap<String, BTreeMap<String, String>> {
    values
        .iter()
        .map(|(svc, vs)| {
            let prints = vs
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        pu::secret_fingerprint(project, env, n, v.expose()),
                    )
                })
                .collect();
            (svc.clone(), prints)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn manifest() -> Manifest {
        crate::manifest::parse(Source::new(
            "deploy.yml",
            "version: 1\nproject: shop\nenvironments:\n  prod:\n    hosts: [local]\n    dir: /srv\n    secrets: [SHARED]\nservices:\n  api:\n    secrets: [API_KEY, SHARED]\n  web:\n    compose_service: front\n",
        ))
        .unwrap()
    }

    #[test]
    fn every_service_gets_the_environments_secrets_and_its_own() {
        let m = manifest();
        let n = names(&m, &m.environments["prod"]);
        assert_eq!(n["api"], ["SHARED", "API_KEY"]);
        assert_eq!(n["front"], ["SHARED"]);
    }

    #[test]
    fn missing_variables_are_named_with_their_services_and_values_never_shown() {
        let m = manifest();
        let env = &m.environments["prod"];
        let e = resolve(&m, env, &|_| None).unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Input);
        let text = e.to_string();
        assert!(
            text.contains("API_KEY (for api)") && text.contains("SHARED (for api, front)"),
            "{text}"
        );
        let v = resolve(&m, env, &|n| Some(format!("value-of-{n}"))).unwrap();
        assert_eq!(
            format!("{v:?}").matches("value-of").count(),
            0,
            "Debug hides values"
        );
        assert_eq!(v["api"][1].1.expose(), "value-of-API_KEY");
        let prints = fingerprints("shop", "prod", &v);
        assert!(prints["api"]["API_KEY"].starts_with("blake3:"));
        assert!(!format!("{prints:?}").contains("value-of"));
        assert_ne!(prints["api"]["API_KEY"], prints["api"]["SHARED"]);
        assert_eq!(prints["api"]["SHARED"], prints["front"]["SHARED"]);
    }
}
