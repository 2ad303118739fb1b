//! `docker` engine commands used by `up` (containers, images, tags, save/load) and the few host
//! file-system commands of the state directory (lock mkdir, record listing, audit append), plus the
//! parsers of `docker inspect` output and the HTTP probe run on the host.
//!
//! Pure: builds [`Cmd`] values and parses text; never starts a process.

use super::Cmd;

/// Label compose puts on every container of a project.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// Label compose puts on every container of a service.
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// Label holding compose's configuration hash of the container's service.
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// Full ids of every container (running or not) of a compose project: works with v1 and v2.
pub fn ps_project(project: &str) -> Cmd {
    Cmd::new("docker").args([
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_PROJECT}={project}"),
    ])
}

/// `docker inspect IDS…` (a JSON array).
pub fn inspect(ids: &[String]) -> Cmd {
    Cmd::new("docker").arg("inspect").args(ids)
}

/// `docker image inspect --format '{{.Id}}' REF`: the image id, or a non-zero exit when missing.
pub fn image_id(reference: &str) -> Cmd {
    Cmd::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(reference)
}

/// `docker pull REF`.
pub fn pull(reference: &str) -> Cmd {
    Cmd::new("docker").arg("pull").arg(reference)
}

/// `docker tag SRC DST`.
pub fn tag(src: &str, dst: &str) -> Cmd {
    Cmd::new("docker").arg("tag").arg(src).arg(dst)
}

/// `docker rmi REF` (removes the tag; the image only when no other tag or container holds it).
pub fn rmi(reference: &str) -> Cmd {
    Cmd::new("docker").arg("rmi").arg(reference)
}

/// `docker logs --tail N ID` (stdout and stderr).
pub fn logs(id: &str, tail: u32) -> Cmd {
    Cmd::new("docker")
        .args(["logs", "--tail"])
        .arg(tail.to_string())
        .arg(id)
}

/// `docker build -f DOCKERFILE -t TAG CONTEXT`.
pub fn build(context: &str, dockerfile: &str, tag: &str) -> Cmd {
    Cmd::new("docker")
        .arg("build")
        .arg("-f")
        .arg(format!("{}/{}", context.trim_end_matches('/'), dockerfile))
        .arg("-t")
        .arg(tag)
        .arg(context)
}

/// `docker push REF`.
pub fn push(reference: &str) -> Cmd {
    Cmd::new("docker").arg("push").arg(reference)
}

/// `docker save REF | gzip -1`: the compressed image on stdout.
pub fn save_gzip(reference: &str) -> Cmd {
    Cmd::new("bash")
        .arg("-c")
        .arg("set -o pipefail; docker save \"$1\" | gzip -1")
        .arg("bash")
        .arg(reference)
}

/// `gunzip | docker load` on the host, reading the compressed image from stdin.
pub fn load_gzip() -> Cmd {
    Cmd::new("sh").arg("-c").arg("gunzip -c | docker load")
}

/// Whether an image reference names a registry: the part before the first `/` has a dot or a colon,
/// or is `localhost` (the rule docker itself uses).
pub fn names_registry(reference: &str) -> bool {
    match reference.split_once('/') {
        Some((host, _)) => host.contains('.') || host.contains(':') || host == "localhost",
        None => false,
    }
}

/// The repository of a reference: `reg:5000/shop/api:1` → `reg:5000/shop/api`; digests dropped.
pub fn repository(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

// ---- the state directory on the host ----

/// `mkdir -p DIR`.
pub fn mkdir_p(dir: &str) -> Cmd {
    Cmd::new("mkdir").arg("-p").arg(dir)
}

/// `mkdir DIR`: atomic; fails when it exists (the lock).
pub fn mkdir_lock(dir: &str) -> Cmd {
    Cmd::new("mkdir").arg(dir)
}

/// `rm -rf PATH`.
pub fn rm_rf(path: &str) -> Cmd {
    Cmd::new("rm").arg("-rf").arg(path)
}

/// `rm -f PATH`.
pub fn rm_f(path: &str) -> Cmd {
    Cmd::new("rm").arg("-f").arg(path)
}

/// `cat PATH`.
pub fn cat(path: &str) -> Cmd {
    Cmd::new("cat").arg(path)
}

/// Prints every `*.json` of DIR, one per line (records are written on one line).
pub fn cat_json_files(dir: &str) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg("for f in \"$1\"/*.json; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true")
        .arg("sh")
        .arg(dir)
}

/// Appends stdin to FILE (the audit log), creating it.
pub fn append(file: &str, line: &str) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg("cat >> \"$1\"")
        .arg("sh")
        .arg(file)
        .stdin(format!("{}\n", line.trim_end()))
}

/// Which HTTP client the host has: prints `curl` or `wget`.
pub fn http_client_probe() -> Cmd {
    Cmd::new("sh").arg("-c").arg(
        "if command -v curl >/dev/null 2>&1; then echo curl; elif command -v wget >/dev/null 2>&1; then echo wget; else echo none; fi",
    )
}

/// A GET of `url` run on the host. With curl the body is followed by a line `__status__CODE`; wget
/// prints the body and exits non-zero on an error status.
pub fn http_get(client: &str, url: &str, timeout_secs: u64) -> Cmd {
    if client == "wget" {
        Cmd::new("wget")
            .args(["-q", "-O-", "-T"])
            .arg(timeout_secs.to_string())
            .arg(url)
    } else {
        Cmd::new("curl")
            .args(["-sS", "--max-time"])
            .arg(timeout_secs.to_string())
            .args(["-o", "-", "-w", "\n__status__%{http_code}"])
            .arg(url)
    }
}

/// Splits curl output into (status, body). `None` when the marker is missing.
pub fn parse_curl(stdout: &str) -> Option<(u16, String)> {
    let (body, status) = stdout.rsplit_once("\n__status__")?;
    Some((status.trim().parse().ok()?, body.to_string()))
}

/// What `docker inspect` says about one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub service: String,
    pub project: String,
    /// The image reference it was created from (`Config.Image`).
    pub image: String,
    /// The image id (`Image`).
    pub image_id: String,
    pub config_hash: Option<String>,
    /// `running`, `exited`, `restarting`, …
    pub status: String,
    /// `healthy`, `unhealthy`, `starting`, or None without a healthcheck.
    pub health: Option<String>,
    pub restart_count: u64,
    /// The last health probe outputs.
    pub health_log: Vec<String>,
}

/// Parses `docker inspect` output (a JSON array of containers).
pub fn parse_inspect(text: &str) -> Result<Vec<ContainerInfo>, String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text.trim()).map_err(|e| format!("docker inspect: {e}"))?;
    Ok(values
        .iter()
        .map(|v| {
            let s = |p: &str| {
                v.pointer(p)
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let label = |k: &str| {
                v.pointer("/Config/Labels")
                    .and_then(|l| l.get(k))
                    .and_then(|x| x.as_str())
                    .map(String::from)
            };
            let health_log = v
                .pointer("/State/Health/Log")
                .and_then(|l| l.as_array())
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            format!(
                                "exit {}: {}",
                                e.get("ExitCode").and_then(|x| x.as_i64()).unwrap_or(-1),
                                e.get("Output")
                                    .and_then(|x| x.as_str())
                                    .unwrap_or("")
                                    .trim()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            ContainerInfo {
                id: s("/Id"),
                name: s("/Name").trim_start_matches('/').to_string(),
                service: label(LABEL_SERVICE).unwrap_or_default(),
                project: label(LABEL_PROJECT).unwrap_or_default(),
                image: s("/Config/Image"),
                image_id: s("/Image"),
                config_hash: label(LABEL_CONFIG_HASH),
                status: s("/State/Status"),
                health: v
                    .pointer("/State/Health/Status")
                    .and_then(|x| x.as_str())
                    .map(String::from),
                restart_count: v
                    .pointer("/RestartCount")
                    .and_then(|x| x.as_u64())
                    .unwrap_or(0),
                health_log,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_detection_follows_docker() {
        assert!(names_registry("ghcr.io/org/api:1"));
        assert!(names_registry("reg:5000/api"));
        assert!(names_registry("localhost/api"));
        assert!(!names_registry("shop/api:1"));
        assert!(!names_registry("api"));
    }

    #[test]
    fn repository_strips_tag_and_digest_only() {
        assert_eq!(repository("reg:5000/shop/api:1"), "reg:5000/shop/api");
        assert_eq!(repository("reg:5000/shop/api"), "reg:5000/shop/api");
        assert_eq!(repository("shop/api@sha256:abc"), "shop/api");
        assert_eq!(repository("nginx"), "nginx");
    }

    #[test]
    fn state_commands_are_exact() {
        assert_eq!(
            mkdir_lock("/srv/a b/.deploy-action/lock").display(),
            "mkdir '/srv/a b/.deploy-action/lock'"
        );
        let a = append("/srv/.deploy-action/audit.log", "{\"x\":1}");
        assert_eq!(a.stdin.as_deref(), Some(&b"{\"x\":1}\n"[..]));
        assert_eq!(
            ps_project("shop").display(),
            "docker ps -a -q --no-trunc --filter label=com.docker.compose.project=shop"
        );
        assert_eq!(
            save_gzip("shop/api:abc").argv_exposed().last().unwrap(),
            "shop/api:abc"
        );
    }

    #[test]
    fn curl_output_splits_status_and_body() {
        assert_eq!(
            parse_curl("v1 ok\n__status__200"),
            Some((200, "v1 ok".to_string()))
        );
        assert_eq!(parse_curl("\n__status__000"), Some((0, String::new())));
        assert_eq!(parse_curl("no marker"), None);
        assert!(
            http_get("wget", "http://127.0.0.1/", 5)
                .display()
                .starts_with("wget -q -O-")
        );
    }

    #[test]
    fn inspect_parses_health_labels_and_restarts() {
        let text = r#"[{"Id":"c1","Name":"/shop-api-1","Image":"sha256:aa","RestartCount":2,
          "Config":{"Image":"shop/api:1","Labels":{"com.docker.compose.service":"api",
            "com.docker.compose.project":"shop","com.docker.compose.config-hash":"h1"}},
          "State":{"Status":"running","Health":{"Status":"unhealthy",
            "Log":[{"ExitCode":1,"Output":"wget: server returned error\n"}]}}}]"#;
        let c = &parse_inspect(text).unwrap()[0];
        assert_eq!(c.service, "api");
        assert_eq!(c.name, "shop-api-1");
        assert_eq!(c.image_id, "sha256:aa");
        assert_eq!(c.health.as_deref(), Some("unhealthy"));
        assert_eq!(c.restart_count, 2);
        assert_eq!(c.config_hash.as_deref(), Some("h1"));
        assert_eq!(c.health_log, ["exit 1: wget: server returned error"]);
        assert!(parse_inspect("nope").is_err());
    }
}
