//! The `build` stage plan: per affected unit, its build command run locally. Pure.
//!
//! Services build with their `build:` command (`sh -c`) or a `docker build` tagged with the commit;
//! sites with their `build:` command. Units without a build produce no step (the command lists them
//! as "nothing to do"). Shipping images to hosts belongs to the `up` stage, not here.

use super::stages::PlanInput;
use super::{Action, Step, Target};
use crate::cmd::{Cmd, docker};
use crate::manifest::Build;

/// The build steps of the affected units, in manifest order.
pub fn plan(input: &PlanInput) -> Vec<Step> {
    let m = input.manifest;
    let mut steps = Vec::new();
    for unit in &input.affected.units {
        let (cmd, why, origin) = if let Some(s) = m.services.get(unit) {
            match &s.build {
                Some(Build::Docker {
                    context,
                    dockerfile,
                    image,
                    span,
                }) => (
                    docker::build(image, &input.affected.head, context, dockerfile),
                    format!(
                        "build image {image}:{}",
                        crate::changes::short(&input.affected.head)
                    ),
                    *span,
                ),
                Some(Build::Command { command, span }) => (
                    Cmd::shell(command),
                    "run the service's build command".into(),
                    *span,
                ),
                None => continue,
            }
        } else if let Some(site) = m.sites.get(unit) {
            match &site.build {
                Some(command) => (
                    Cmd::shell(command),
                    format!("build the site into {}", site.dir),
                    site.span,
                ),
                None => continue,
            }
        } else {
            continue;
        };
        let cmd = match &input.root {
            Some(root) => cmd.cwd(root),
            None => cmd,
        };
        steps.push(Step {
            id: format!("build:{unit}"),
            stage: "build".into(),
            unit: Some(unit.clone()),
            target: Target::Local,
            action: Action::Run { cmd },
            why,
            guard: Default::default(),
            origin: Some(origin),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{Affected, Reason};

    #[test]
    fn docker_and_command_builds_in_the_root() {
        let m = crate::changes::tests::sample();
        let a = Affected {
            units: vec![
                "api".into(),
                "worker".into(),
                "web".into(),
                "migrations".into(),
            ],
            base: None,
            head: "cafe".into(),
            reason: Reason::All,
            changed_files: 0,
            notes: Vec::new(),
        };
        let input = PlanInput {
            manifest: &m,
            env: None,
            affected: &a,
            root: Some("/repo".into()),
        };
        let steps = plan(&input);
        let lines: Vec<String> = steps.iter().map(|s| s.describe()).collect();
        assert_eq!(
            lines,
            vec![
                "cd /repo && docker build -t shop/api:cafe -f services/api/Dockerfile services/api",
                "cd /repo && sh -c 'make worker'",
                "cd /repo && sh -c 'npm ci && npm run build'",
            ]
        );
        assert!(steps.iter().all(|s| s.target == Target::Local));
    }
}
