//! `docker` engine commands used by `up` (containers, images, tags, save/load) and the few host
//! file-system commands of the state directory (lock mkdir, record listing, audit append), plus the
//! parsers of `docker inspect` output and the HTTP probe run on the host, and [`Script`]: several of
//! these run through one `sh -s` (one SSH channel) with their outputs framed.
//!
//! Pure: builds [`Cmd`] values and parses text; never starts a process.

use super::{Cmd, shell_quote};
use std::collections::BTreeMap;

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

/// `docker inspect` of every container (running or not) of a compose project, in one command: a
/// JSON array, `[]` when there is none. Works with v1 and v2.
pub fn inspect_project(project: &str) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg(
            "ids=$(docker ps -a -q --no-trunc --filter \"label=$1=$2\") || exit\n\
             if [ -n \"$ids\" ]; then exec docker inspect $ids; else echo '[]'; fi",
        )
        .arg("sh")
        .arg(LABEL_PROJECT)
        .arg(project)
}

/// One probe of the health gate: the host's clock (`date +%s.%N`, first line), then `docker
/// inspect` of the containers of `services` only (a JSON array, `[]` when there is none). The
/// host's clock is what `.State.StartedAt` is measured against, so the runner's clock never
/// matters. Parse with [`parse_probe`].
pub fn probe_services(project: &str, services: &[String]) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg(
            "date +%s.%N; p=$1; shift\n\
             ids=$(docker ps -a --no-trunc --filter \"label=com.docker.compose.project=$p\" \
               --format '{{.ID}} {{.Label \"com.docker.compose.service\"}}' | \
               while read -r id svc; do for s in \"$@\"; do if [ \"$s\" = \"$svc\" ]; then echo \"$id\"; fi; done; done)\n\
             if [ -n \"$ids\" ]; then exec docker inspect $ids; else echo '[]'; fi",
        )
        .arg("sh")
        .arg(project)
        .args(services)
}

/// Parses [`probe_services`] output: the host's clock in seconds since the epoch (None when `date`
/// printed something else) and the containers.
pub fn parse_probe(text: &str) -> Result<(Option<f64>, Vec<ContainerInfo>), String> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let now = parse_epoch(first);
    Ok((now, parse_inspect(rest)?))
}

/// `1795440269.123456789` (or `1795440269.N` from a `date` without `%N`) → seconds.
pub fn parse_epoch(text: &str) -> Option<f64> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let secs: u64 = int.parse().ok()?;
    let frac: f64 = if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
        format!("0.{frac}").parse().unwrap_or(0.0)
    } else {
        0.0
    };
    Some(secs as f64 + frac)
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
///
/// Without the tool's secrets in its environment ([`super::TOOL_SECRET_VARS`]).
pub fn build(context: &str, dockerfile: &str, tag: &str) -> Cmd {
    Cmd::new("docker")
        .scrub_env(super::TOOL_SECRET_VARS.iter().copied())
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

/// Whether a reference names its image by digest (`repo@sha256:…`): what it names never changes.
pub fn is_digest_ref(reference: &str) -> bool {
    reference.contains('@')
}

/// A repository as docker shows it in `RepoDigests`: Docker Hub's `docker.io/` (and
/// `index.docker.io/`) and its `library/` dropped, so `docker.io/library/nginx:1` → `nginx`.
pub fn familiar_repository(reference: &str) -> &str {
    let repo = repository(reference);
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    match repo.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest,
        _ => repo,
    }
}

/// The repo digest (`repo@sha256:…`) that names `image`: the one of its own repository, else the
/// first. `None` when the image has none (built or loaded on the host, never pushed or pulled).
pub fn pick_digest(image: &str, repo_digests: &[String]) -> Option<String> {
    let repo = familiar_repository(image);
    repo_digests
        .iter()
        .find(|d| familiar_repository(d) == repo)
        .or(repo_digests.first())
        .cloned()
}

/// Whether `repo_digests` holds a digest of `image`'s own repository: the image on the host came
/// from (or went to) that registry, rather than being built or loaded there.
pub fn has_own_digest(image: &str, repo_digests: &[String]) -> bool {
    let repo = familiar_repository(image);
    repo_digests.iter().any(|d| familiar_repository(d) == repo)
}

/// The `sha256:…` part of a repo digest or digest reference (the whole text when it has no `@`).
pub fn digest_part(reference: &str) -> &str {
    reference
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(reference)
}

/// `docker image inspect --format '{{.Id}} {{json .RepoDigests}}' REFS…`: one line per image found
/// (read with [`parse_image_infos`]); a non-zero exit when one is missing.
pub fn image_infos(references: &[String]) -> Cmd {
    Cmd::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .RepoDigests}}",
        ])
        .args(references)
}

/// What a host has of an image: its id and its repo digests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub repo_digests: Vec<String>,
}

/// Parses [`image_infos`] output; lines that are not `ID [digests…]` are skipped.
pub fn parse_image_infos(text: &str) -> Vec<ImageInfo> {
    text.lines()
        .filter_map(|l| {
            let (id, digests) = l.trim().split_once(' ')?;
            if !id.starts_with("sha256:") {
                return None;
            }
            let repo_digests: Vec<String> = match serde_json::from_str(digests.trim()) {
                Ok(Some(v)) => v,
                Ok(None) => Vec::new(),
                Err(_) => return None,
            };
            Some(ImageInfo {
                id: id.to_string(),
                repo_digests,
            })
        })
        .collect()
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
    /// The exit code (`.State.ExitCode`), for an exited container.
    pub exit_code: Option<i64>,
    /// `healthy`, `unhealthy`, `starting`, or None without a healthcheck.
    pub health: Option<String>,
    pub restart_count: u64,
    /// `.State.StartedAt` as docker prints it (RFC 3339 with nanoseconds, the host's clock);
    /// `0001-01-01T00:00:00Z` for a container never started.
    pub started_at: String,
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
                exit_code: v.pointer("/State/ExitCode").and_then(|x| x.as_i64()),
                health: v
                    .pointer("/State/Health/Status")
                    .and_then(|x| x.as_str())
                    .map(String::from),
                restart_count: v
                    .pointer("/RestartCount")
                    .and_then(|x| x.as_u64())
                    .unwrap_or(0),
                started_at: s("/State/StartedAt"),
                health_log,
            }
        })
        .collect())
}

// ---- several commands through one shell ----

/// Marks the start of a section in a [`Script`]'s output.
const SECTION_START: &str = "@@deploy-action-section";
/// Marks the end of a section, with its exit status.
const SECTION_END: &str = "@@deploy-action-end";

/// Several host commands run through one `sh -s`, so they cost one SSH channel instead of one
/// each. Every section's standard output is framed by marker lines and followed by its exit
/// status; standard error is the script's. The script travels on standard input, so file contents
/// are embedded as here-documents with no command-line length limit; every command reads
/// `/dev/null`, never the script. Each section's command is kept as people see it (secrets
/// masked), for the error that reports its failure ([`Script::shown`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    text: String,
    shown: BTreeMap<String, String>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Shell text that is not a section (a condition around sections, a variable). After each
    /// section `$da_rc` holds its exit status.
    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self.text.push('\n');
        self
    }

    /// Section `name`'s command as people see it: a command's [`Cmd::shown`], a shell text as
    /// written, a write as `write PATH`.
    pub fn shown(&self, name: &str) -> Option<&str> {
        self.shown.get(name).map(String::as_str)
    }

    /// Every section's command as people see it, by section.
    pub fn shown_all(&self) -> &BTreeMap<String, String> {
        &self.shown
    }

    fn start(&mut self, name: &str) {
        let q = shell_quote(name);
        self.raw(&format!("printf '\\n{SECTION_START} %s\\n' {q}"));
    }

    fn end(&mut self, name: &str) {
        let q = shell_quote(name);
        self.raw(&format!(
            "da_rc=$?; printf '\\n{SECTION_END} %s %d\\n' {q} \"$da_rc\""
        ));
    }

    /// Runs `cmd` (in a subshell, so its `cd` stays there) as section `name`.
    pub fn run(&mut self, name: &str, cmd: &Cmd) -> &mut Self {
        debug_assert!(cmd.stdin.is_none(), "a script section reads /dev/null");
        self.shown.insert(name.to_string(), cmd.shown());
        self.start(name);
        self.raw(&format!("( {} ) </dev/null", cmd.to_shell_line()));
        self.end(name);
        self
    }

    /// Runs shell text (in a subshell; the script's variables are visible) as section `name`.
    pub fn shell(&mut self, name: &str, text: &str) -> &mut Self {
        self.shown.insert(name.to_string(), text.trim().to_string());
        self.start(name);
        self.raw(&format!("( {text} ) </dev/null"));
        self.end(name);
        self
    }

    /// Writes `content` to `path` with `mode` as section `name`: through a fresh exclusive
    /// temporary file beside it, then a rename ([`super::write_stdin_shell`]), so a reader never
    /// sees half a file and a planted symlink is never followed. A here-document ends with a
    /// newline, so content that lacks a final newline gets one (harmless for the JSON, YAML and
    /// env files written here).
    pub fn write(&mut self, name: &str, path: &str, content: &str, mode: u32) -> &mut Self {
        self.shown.insert(name.to_string(), format!("write {path}"));
        self.start(name);
        self.raw(&format!(
            "( {} ) {}",
            super::write_stdin_shell(path, mode),
            here_doc(content)
        ));
        self.end(name);
        self
    }

    /// Appends `line` (and a newline) to `path` as section `name`.
    pub fn append(&mut self, name: &str, path: &str, line: &str) -> &mut Self {
        self.shown
            .insert(name.to_string(), format!("append to {path}"));
        self.start(name);
        self.raw(&format!(
            "cat >> {} {}",
            shell_quote(path),
            here_doc(&format!("{}\n", line.trim_end()))
        ));
        self.end(name);
        self
    }

    /// Writes `content` to `path` durably as section `name` (release records): a unique
    /// temporary file beside it, created exclusively by `mktemp`, then `chmod`, `sync FILE`
    /// (fsync), the rename, and `sync DIR` (fsync of the directory). Once the section succeeded
    /// the file survives a crash; a full disk or an I/O error fails the section and leaves the
    /// old file as it was.
    pub fn write_durable(&mut self, name: &str, path: &str, content: &str, mode: u32) -> &mut Self {
        let p = std::path::Path::new(path);
        let dir = p
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        let base = p
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        let template = format!("{dir}/.{base}.XXXXXX");
        let (d, t, p) = (shell_quote(&dir), shell_quote(&template), shell_quote(path));
        self.shown
            .insert(name.to_string(), format!("write {path} (durably)"));
        self.start(name);
        self.raw(&format!(
            "( t=; mkdir -p {d} && t=$(mktemp {t}) && cat > \"$t\" && chmod {mode:o} \"$t\" && sync \"$t\" && mv -f \"$t\" {p} && sync {d} || {{ rc=$?; [ -z \"$t\" ] || rm -f \"$t\"; exit $rc; }} ) {}",
            here_doc(content)
        ));
        self.end(name);
        self
    }

    /// The command: `sh -s` with the script on standard input.
    pub fn cmd(&self) -> Cmd {
        Cmd::new("sh").arg("-s").stdin(self.text.clone())
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `<<'DELIM'`, the content, and the delimiter line: a delimiter the content does not contain.
fn here_doc(content: &str) -> String {
    let mut n = 0u32;
    let delim = loop {
        let d = format!("DEPLOY_ACTION_EOF_{n}");
        if !content.lines().any(|l| l == d) {
            break d;
        }
        n += 1;
    };
    let mut body = content.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    format!("<<'{delim}'\n{body}{delim}")
}

/// One section of a [`Script`]'s output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub status: i32,
    pub stdout: String,
}

impl Section {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Parses a [`Script`]'s standard output into its sections by name. A section that did not run
/// (a condition skipped it, or the script stopped) is absent.
pub fn parse_sections(text: &str) -> BTreeMap<String, Section> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(name) = bare
            .strip_prefix(SECTION_START)
            .and_then(|r| r.strip_prefix(' '))
        {
            current = Some((name.to_string(), String::new()));
            continue;
        }
        if let Some(rest) = bare
            .strip_prefix(SECTION_END)
            .and_then(|r| r.strip_prefix(' '))
        {
            if let Some((name, mut body)) = current.take() {
                let status = rest
                    .rsplit_once(' ')
                    .and_then(|(n, rc)| (n == name).then(|| rc.parse().ok()).flatten())
                    .unwrap_or(-1);
                // The end marker's printf starts with a newline of its own.
                if body.ends_with('\n') {
                    body.pop();
                }
                out.insert(
                    name,
                    Section {
                        status,
                        stdout: body,
                    },
                );
            }
            continue;
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    out
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
    fn digests_are_picked_by_repository_and_parsed_from_inspect() {
        let d = |s: &str| s.to_string();
        let digests = [
            d("127.0.0.1:5005/other/web@sha256:aa"),
            d("127.0.0.1:5005/shop/web@sha256:bb"),
        ];
        assert_eq!(
            pick_digest("127.0.0.1:5005/shop/web:latest", &digests).as_deref(),
            Some("127.0.0.1:5005/shop/web@sha256:bb")
        );
        assert_eq!(
            pick_digest("shop/web:v1", &digests).as_deref(),
            Some("127.0.0.1:5005/other/web@sha256:aa"),
            "no digest of its own repository: the first"
        );
        assert_eq!(pick_digest("shop/web:v1", &[]), None);
        // Docker Hub names as RepoDigests show them.
        let hub = [d("nginx@sha256:cc")];
        assert!(has_own_digest("docker.io/library/nginx:1.27", &hub));
        assert!(has_own_digest("nginx", &hub));
        assert!(!has_own_digest("shop/nginx:1", &hub));
        assert!(!has_own_digest(
            "127.0.0.1:5005/shop/web:latest",
            &digests[..1]
        ));
        assert_eq!(familiar_repository("docker.io/org/api:1"), "org/api");
        assert_eq!(digest_part("r/x@sha256:ff"), "sha256:ff");
        assert!(is_digest_ref("r/x@sha256:ff") && !is_digest_ref("r:5000/x:1"));
        let infos = parse_image_infos(
            "sha256:11 [\"r/x@sha256:ff\"]\nsha256:22 []\nsha256:33 null\nError: No such image: y\n",
        );
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[0].repo_digests, ["r/x@sha256:ff"]);
        assert!(infos[1].repo_digests.is_empty() && infos[2].id == "sha256:33");
        assert_eq!(
            image_infos(&[d("sha256:11"), d("r/x:1")]).display(),
            "docker image inspect --format '{{.Id}} {{json .RepoDigests}}' sha256:11 r/x:1"
        );
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
