//! `docker` command builders (pure argv; nothing runs here).

use super::Cmd;

/// `docker build -t IMAGE:TAG -f CONTEXT/DOCKERFILE CONTEXT`, without the tool's secrets in its
/// environment ([`super::TOOL_SECRET_VARS`]; the `build` stage widens this to the manifest's).
pub fn build(image: &str, tag: &str, context: &str, dockerfile: &str) -> Cmd {
    Cmd::new("docker")
        .scrub_env(super::TOOL_SECRET_VARS.iter().copied())
        .arg("build")
        .arg("-t")
        .arg(format!("{image}:{tag}"))
        .arg("-f")
        .arg(dockerfile_path(context, dockerfile))
        .arg(context)
}

/// The Dockerfile path as docker sees it from the repository root: relative to the context unless
/// absolute.
pub fn dockerfile_path(context: &str, dockerfile: &str) -> String {
    if dockerfile.starts_with('/') {
        return dockerfile.to_string();
    }
    let ctx = context.trim_end_matches('/');
    if ctx.is_empty() || ctx == "." {
        dockerfile.to_string()
    } else {
        format!("{ctx}/{dockerfile}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_build_runs_without_the_tool_secrets() {
        let c = build("shop/api", "cafe", "services/api", "Dockerfile");
        for v in super::super::TOOL_SECRET_VARS {
            assert!(c.scrub.iter().any(|s| s == v), "{v}");
        }
        let e = crate::cmd::docker_engine::build("ctx", "Dockerfile", "x:1");
        assert_eq!(e.scrub, c.scrub);
    }

    #[test]
    fn docker_build_argv() {
        assert_eq!(
            build("shop/api", "abc123", "services/api", "Dockerfile").display(),
            "docker build -t shop/api:abc123 -f services/api/Dockerfile services/api"
        );
        assert_eq!(
            build("x", "t", ".", "ops/Dockerfile.x").display(),
            "docker build -t x:t -f ops/Dockerfile.x ."
        );
        assert_eq!(
            dockerfile_path("ctx/", "/abs/Dockerfile"),
            "/abs/Dockerfile"
        );
    }
}
